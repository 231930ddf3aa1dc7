/* leaderboard.js — the Arena leaderboard page (served at /arena/leaderboard):
 * fetches /arena/leaderboard.json and fills #leaderboard (one
 * tr[data-model] per model: rank, Bradley–Terry rating with its 95% interval
 * written "1012 (+18/−20)" plus a small interval bar, online Elo, votes,
 * W/L/T, both-bad) and the #win-rate matrix (row model vs column model).
 * Relies on chat.js (`Chat`) for the API key and error messages. */
'use strict';
(() => {
  const $ = id => document.getElementById(id);
  const fin = x => typeof x === 'number' && Number.isFinite(x);
  const add = (tr, tag, text, cls) => {
    const c = tr.appendChild(document.createElement(tag));
    c.textContent = text;
    if (cls) c.className = cls;
    return c;
  };
  /** "1012 (+18/−20)": the rating, then how far the interval reaches above and below it. */
  function btText(b) {
    if (!b || !fin(b.rating)) return '–';
    const r = b.rating, ci = fin(b.lo) && fin(b.hi) ? ` (+${Math.round(b.hi - r)}/\u2212${Math.round(r - b.lo)})` : '';
    return `${Math.round(r)}${ci}`;
  }
  function ciBar(b, lo, hi) {
    const bar = document.createElement('div');
    bar.className = 'ci';
    if (!b || !fin(b.lo) || !fin(b.hi) || !(hi > lo)) return bar;
    const at = x => `${(((x - lo) / (hi - lo)) * 100).toFixed(1)}%`;
    const range = bar.appendChild(document.createElement('span'));
    range.className = 'range';
    range.style.left = at(b.lo);
    range.style.width = `calc(${at(b.hi)} - ${at(b.lo)})`;
    const dot = bar.appendChild(document.createElement('span'));
    dot.className = 'dot';
    dot.style.left = at(b.rating);
    return bar;
  }

  function table(list) {
    const body = $('leaderboard').tBodies[0];
    body.textContent = '';
    const los = list.map(m => m.bt && m.bt.lo).filter(fin), his = list.map(m => m.bt && m.bt.hi).filter(fin);
    const lo = Math.min(...los), hi = Math.max(...his);
    list.forEach((m, i) => {
      const tr = body.appendChild(document.createElement('tr'));
      tr.dataset.model = m.model;
      add(tr, 'td', String(i + 1), 'num rank');
      add(tr, 'th', m.model, 'model').scope = 'row';
      add(tr, 'td', btText(m.bt), 'num bt').title = m.bt && fin(m.bt.median) ? `bootstrap median ${Math.round(m.bt.median)}` : '';
      add(tr, 'td', '', 'ci-col').appendChild(ciBar(m.bt, lo, hi));
      add(tr, 'td', fin(m.elo) ? String(Math.round(m.elo)) : '–', 'num elo');
      add(tr, 'td', String(m.votes ?? 0), 'num vote-count');
      add(tr, 'td', `${m.wins ?? 0} / ${m.losses ?? 0} / ${m.ties ?? 0}`, 'num wlt');
      add(tr, 'td', String(m.both_bad ?? 0), 'num');
    });
    if (!list.length) add(body.appendChild(document.createElement('tr')), 'td', 'No models yet.', 'empty').colSpan = 8;
  }

  function matrix(list, rates) {
    const t = $('win-rate'), names = list.map(m => m.model);
    t.tHead.textContent = '';
    t.tBodies[0].textContent = '';
    if (!names.length) return;
    const hr = t.tHead.appendChild(document.createElement('tr'));
    add(hr, 'th', 'vs →', 'corner');
    names.forEach(n => { const c = add(hr, 'th', n, 'col'); c.scope = 'col'; c.dataset.model = n; });
    for (const a of names) {
      const tr = t.tBodies[0].appendChild(document.createElement('tr'));
      tr.dataset.model = a;
      add(tr, 'th', a, 'model').scope = 'row';
      for (const b of names) {
        const rate = (rates[a] || {})[b];
        const c = add(tr, 'td', a === b ? '' : fin(rate) ? `${Math.round(rate * 100)}%` : '–', 'num rate');
        c.dataset.opponent = b;
        if (a === b) c.classList.add('self');
        else if (fin(rate)) {
          c.dataset.rate = String(rate);
          c.title = `${a} beat ${b} in ${(rate * 100).toFixed(1)}% of their rounds`;
          c.style.background = `hsla(${Math.round(rate * 120)}, 70%, 50%, 0.28)`;
        }
      }
    }
  }

  async function load() {
    const st = $('lb-status');
    st.textContent = 'loading…';
    st.classList.remove('error');
    try {
      const j = await Chat.getJSON('/arena/leaderboard.json');
      const list = Array.isArray(j.models) ? j.models : [];
      table(list);
      matrix(list, j.win_rate || {});
      $('lb-summary').textContent = `${j.votes ?? 0} votes · ${list.length} models`;
      st.textContent = j.votes ? '' : 'No votes yet: play a round in the Arena.';
      const m = j.method || {}, parts = [];
      if (m.bt) parts.push(`Ratings: ${m.bt}.`);
      if (m.resamples) parts.push(`95% intervals from ${m.resamples} bootstrap resamples${m.seed != null ? ` (seed ${m.seed})` : ''}.`);
      if (m.elo_k != null) parts.push(`Elo: online, in vote order, K = ${m.elo_k}.`);
      $('method').textContent = parts.join(' ');
    } catch (e) {
      st.textContent = `Could not load the leaderboard: ${e.message}`;
      st.classList.add('error');
    }
  }

  $('refresh').addEventListener('click', load);
  Chat.bindApiKey($('api-key'), load);
  load();
})();
