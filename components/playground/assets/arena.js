/* arena.js — the blind Arena page (served at /arena). One round: the prompt
 * (with any media) goes to POST /arena/api/battle, which draws two different
 * chat models; both answers then stream from /v1/chat/completions in
 * parallel under the labels "Model A" / "Model B" (names are not shown).
 * Once both have finished the four vote buttons unlock; POST
 * /arena/api/vote reveals the names, and "New round" starts over. When media
 * is attached, battles are redrawn (a few times) until both models take it.
 * Relies on chat.js (`Chat`). */
'use strict';
(() => {
  const $ = id => document.getElementById(id);
  const SIDES = ['left', 'right'], VOTES = ['left', 'right', 'tie', 'bothbad'];
  const statusEl = $('arena-status'), promptEl = $('arena-prompt');
  let models = [], battle = null, phase = 'idle', controller = null, stats = {}, round = 0, recorder = null;

  const setStatus = (text, error = false) => { statusEl.textContent = text; statusEl.classList.toggle('error', error); };
  const hint = text => { $('arena-hint').textContent = text; };
  const takers = kind => models.filter(m => m.inputs.includes(kind)).length;
  const refusal = kind => (models.length && takers(kind) < 2 ? `Fewer than two arena models take ${kind} input.` : null);
  const tray = new Chat.Tray($('arena-attachments'));

  function setPhase(p) {
    phase = p;
    const idle = p === 'idle';
    $('arena-send').disabled = !idle;
    promptEl.disabled = !idle;
    $('arena-file').disabled = !idle;
    $('arena-form').classList.toggle('locked', !idle);
    $('arena-stop').disabled = p !== 'streaming';
    VOTES.forEach(v => { $(`vote-${v}`).disabled = p !== 'vote'; });
    $('next-round').disabled = idle;
    document.body.dataset.phase = p;
  }

  async function loadModels() {
    try {
      models = await Chat.chatModels();
      if (models.length < 2) setStatus('The arena needs at least two chat models.', true);
      else if (statusEl.classList.contains('error') && phase === 'idle') setStatus('');
    } catch (e) {
      models = [];
      setStatus(`Could not list models: ${e.message}`, true);
    }
    $('arena-attach').hidden = models.length > 0 && !['image', 'video', 'audio'].some(k => takers(k) >= 2);
    $('arena-record').hidden = !(Chat.canRecord() && !refusal('audio') && models.length);
  }

  /** A battle whose two models both take every kind of media attached. */
  async function draw(kinds) {
    for (const k of kinds) if (refusal(k)) throw new Error(refusal(k));
    for (let tries = 0; tries < 12; tries++) {
      const b = await Chat.postJSON('/arena/api/battle', {});
      if (!b || !Array.isArray(b.models) || b.models.length !== 2) throw new Error('The arena answered without two models.');
      const fits = id => { const m = models.find(x => x.id === id); return !m || kinds.every(k => m.inputs.includes(k)); };
      if (b.models.every(fits)) return b;
    }
    throw new Error(`Could not draw two models that both take ${kinds.join(' and ')} input; try again or remove the attachment.`);
  }

  function showQuestion(text, items) {
    const q = $('arena-question');
    q.textContent = '';
    if (items.length) {
      const media = q.appendChild(document.createElement('div'));
      media.className = 'media';
      items.forEach(a => media.appendChild(Chat.preview(a)));
    }
    if (text) q.appendChild(Object.assign(document.createElement('div'), { className: 'plain', textContent: text }));
    q.hidden = false;
  }

  /* Both sides answer with the same budget (the field, kept in localStorage). */
  const MAX_KEY = 'reka.arenaMaxTokens';
  function maxTokens() {
    const n = parseInt($('arena-max-tokens').value, 10);
    return Number.isFinite(n) && n > 0 ? n : 256;
  }
  try { const saved = localStorage.getItem(MAX_KEY); if (saved) $('arena-max-tokens').value = saved; } catch (_) { /* private mode */ }
  $('arena-max-tokens').addEventListener('change', () => { try { localStorage.setItem(MAX_KEY, String(maxTokens())); } catch (_) { /* private mode */ } });

  async function runSide(side, model, messages, signal, r) {
    const box = $(side);
    box.classList.add('streaming');
    const view = Chat.answerView(box);
    try {
      stats[side] = await Chat.streamChat({ model, messages, params: { max_tokens: maxTokens() }, signal, onDelta: view.push });
      view.finish();
    } catch (e) {
      if (r !== round) throw e;
      view.finish();
      if (!signal.aborted) box.appendChild(Object.assign(document.createElement('div'), { className: 'error', textContent: e.message }));
      throw e;
    } finally {
      if (r === round) { box.classList.remove('streaming'); box.dataset.done = 'true'; }
    }
  }

  async function send() {
    if (phase !== 'idle') return;
    const r = round;
    if (tray.pending.size) { setStatus('encoding attachments…'); await tray.ready(); }
    const text = promptEl.value.trim(), items = tray.items.slice();
    if (!text && !items.length) { setStatus('Type a prompt first.', true); promptEl.focus(); return; }
    const kinds = [...new Set(items.map(a => a.kind))];
    const messages = [{ role: 'user', content: Chat.userContent(text, items) }];
    setPhase('streaming');
    setStatus('streaming…');
    hint('');
    try {
      battle = await draw(kinds);
    } catch (e) {
      if (r !== round) return;
      setPhase('idle');
      setStatus(e.message, true);
      return;
    }
    if (r !== round) return;
    showQuestion(text, tray.take());
    const ctl = (controller = new AbortController());
    const results = await Promise.allSettled(SIDES.map((s, k) => runSide(s, battle.models[k], messages, ctl.signal, r)));
    if (r !== round) return;
    controller = null;
    if (ctl.signal.aborted) {
      setPhase('stopped');
      setStatus('stopped');
      hint('A stopped round cannot be voted on.');
      return;
    }
    const failed = results.map((x, k) => (x.status === 'rejected' ? `Model ${'AB'[k]}: ${x.reason.message}` : '')).filter(Boolean);
    if (failed.length) {
      setPhase('error');
      setStatus(failed.join(' · '), true);
      hint('This round cannot be voted on.');
      return;
    }
    setPhase('vote');
    setStatus('vote');
    hint('Which answer is better? Cast your vote.');
  }

  async function vote(v) {
    if (phase !== 'vote' || !battle) return;
    const r = round;
    setPhase('voting');
    try {
      const names = await Chat.postJSON('/arena/api/vote', { id: battle.id, vote: v });
      if (r !== round) return;
      $('left-name').textContent = names.left || '';
      $('right-name').textContent = names.right || '';
      SIDES.forEach(s => { if (stats[s]) $(s).appendChild(Chat.statsEl(stats[s])); });
      if (v === 'left' || v === 'right') $(v).classList.add('winner');
      $(`vote-${v}`).classList.add('chosen');
      setPhase('voted');
      setStatus('voted');
      hint('Thanks! The names are shown above.');
    } catch (e) {
      if (r !== round) return;
      setPhase('vote');
      setStatus(e.message, true);
    }
  }

  function reset() {
    round++;
    if (controller) controller.abort();
    controller = null;
    battle = null;
    stats = {};
    for (const s of SIDES) {
      const box = $(s);
      [...box.children].forEach(n => { if (n.tagName !== 'H2') n.remove(); });
      box.appendChild(Object.assign(document.createElement('div'), { className: 'content' }));
      delete box.dataset.done;
      box.classList.remove('winner', 'streaming');
      $(`${s}-name`).textContent = '';
    }
    document.querySelectorAll('.votes .chosen').forEach(b => b.classList.remove('chosen'));
    $('arena-question').hidden = true;
    $('arena-question').textContent = '';
    promptEl.value = '';
    tray.take();
    setPhase('idle');
    setStatus('');
    hint('');
    promptEl.focus();
  }

  $('arena-form').addEventListener('submit', e => { e.preventDefault(); send(); });
  promptEl.addEventListener('keydown', e => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); }
  });
  $('arena-stop').addEventListener('click', () => { if (controller) controller.abort(); });
  $('next-round').addEventListener('click', reset);
  VOTES.forEach(v => $(`vote-${v}`).addEventListener('click', () => vote(v)));

  const addFiles = files => {
    if (phase !== 'idle') return;
    tray.addFiles(files, { allow: refusal, onError: m => setStatus(m, true) });
  };
  $('arena-file').addEventListener('change', e => { addFiles([...e.target.files]); e.target.value = ''; });
  Chat.dropZone(addFiles);
  promptEl.addEventListener('paste', e => {
    const files = [...(e.clipboardData ? e.clipboardData.files : [])];
    if (files.length) { e.preventDefault(); addFiles(files); }
  });
  $('arena-record').addEventListener('click', async () => {
    const btn = $('arena-record');
    if (!recorder) {
      try {
        recorder = await Chat.record();
        btn.classList.add('recording');
        btn.textContent = '■ Stop recording';
      } catch (e) { setStatus(`Microphone: ${e.message}`, true); }
      return;
    }
    const rec = recorder;
    recorder = null;
    btn.classList.remove('recording');
    btn.textContent = '● Record';
    const blob = await rec.stop();
    addFiles([new File([blob], 'recording.webm', { type: blob.type.startsWith('audio/') ? blob.type : 'audio/webm' })]);
  });

  Chat.bindApiKey($('api-key'), loadModels);
  setPhase('idle');
  loadModels();
})();
