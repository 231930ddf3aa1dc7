/* chat.js — the shared browser client behind the Playground, the Arena and
 * the Leaderboard: the API key (kept in localStorage, sent as a Bearer token
 * on every API call), JSON helpers that surface the server's
 * {"error": {"message"}} text, the chat-model list, the streaming
 * /v1/chat/completions client (server-sent events, abortable), a small safe
 * Markdown renderer (HTML is escaped first; only http(s) links), media
 * encoding (images as data: URLs, ~8 JPEG frames taken from a video file,
 * audio turned into 16 kHz mono 16-bit PCM WAV, microphone recording) and an
 * attachment tray with removable previews. Everything hangs off `Chat`. */
'use strict';
const Chat = (() => {
  /* ---------- API key and requests ---------- */
  const KEY = 'reka.apiKey';
  const apiKey = () => { try { return localStorage.getItem(KEY) || ''; } catch (_) { return ''; } };
  function bindApiKey(input, onChange) {
    input.value = apiKey();
    if (input.form) input.form.addEventListener('submit', e => e.preventDefault());
    let timer;
    input.addEventListener('input', () => {
      const v = input.value.trim();
      try { v ? localStorage.setItem(KEY, v) : localStorage.removeItem(KEY); } catch (_) { /* private mode */ }
      clearTimeout(timer);
      if (onChange) timer = setTimeout(onChange, 400);
    });
    if (onChange) input.addEventListener('change', () => { clearTimeout(timer); onChange(); });
  }
  function api(url, opts = {}) {
    const headers = new Headers(opts.headers || {});
    if (apiKey()) headers.set('Authorization', 'Bearer ' + apiKey());
    if (opts.body && !headers.has('Content-Type')) headers.set('Content-Type', 'application/json');
    return fetch(url, { ...opts, headers });
  }
  async function errorOf(resp) {
    let text = '';
    try {
      text = await resp.text();
      const j = JSON.parse(text);
      if (j && j.error) return j.error.message || JSON.stringify(j.error);
    } catch (_) { /* not JSON */ }
    const s = text.trim();
    return `HTTP ${resp.status}${resp.statusText ? ' ' + resp.statusText : ''}` + (s && s.length < 300 ? `: ${s}` : '');
  }
  async function getJSON(url) {
    const r = await api(url);
    if (!r.ok) throw new Error(await errorOf(r));
    return r.json();
  }
  async function postJSON(url, body, signal) {
    const r = await api(url, { method: 'POST', body: JSON.stringify(body), signal });
    if (!r.ok) throw new Error(await errorOf(r));
    return r.json();
  }
  /** The chat models: those whose output_modalities include "text". */
  async function chatModels() {
    const j = await getJSON('/v1/models');
    return (j.data || [])
      .filter(m => (m.output_modalities || ['text']).includes('text'))
      .map(m => ({ id: m.id, inputs: m.input_modalities || ['text'] }));
  }

  /* ---------- streaming chat completions ---------- */
  /** Streams one answer; onDelta(content, reasoning) gets each piece. Resolves
   * to {usage, ttft, tps, finish, elapsed}; rejects with the server's message
   * (or an AbortError once the signal is aborted). */
  async function streamChat({ model, messages, params = {}, signal, onDelta }) {
    const t0 = performance.now();
    let tFirst = null, sawDone = false;
    const stats = { usage: null, ttft: null, tps: null, finish: null, elapsed: 0 };
    const r = await api('/v1/chat/completions', {
      method: 'POST', signal,
      body: JSON.stringify({ model, messages, ...params, stream: true, stream_options: { include_usage: true } }),
    });
    if (!r.ok) throw new Error(await errorOf(r));
    const reader = r.body.getReader(), dec = new TextDecoder();
    let buf = '';
    const handle = data => {
      if (data === '[DONE]') return true;
      let j;
      try { j = JSON.parse(data); } catch (_) { return false; }
      if (j.error) throw new Error(j.error.message || 'The server reported an error.');
      if (j.usage) stats.usage = j.usage;
      const c = j.choices && j.choices[0];
      if (!c) return false;
      const d = c.delta || {}, content = d.content || '', reasoning = d.reasoning_content || '';
      if (content || reasoning) {
        if (tFirst === null) { tFirst = performance.now(); stats.ttft = tFirst - t0; }
        onDelta(content, reasoning);
      }
      if (c.finish_reason) stats.finish = c.finish_reason;
      return false;
    };
    read: for (;;) {
      const { value, done } = await reader.read();
      buf += dec.decode(value || new Uint8Array(0), { stream: !done });
      let m;
      while ((m = /\r?\n\r?\n/.exec(buf))) {
        const ev = buf.slice(0, m.index);
        buf = buf.slice(m.index + m[0].length);
        const data = ev.split(/\r?\n/).filter(l => l.startsWith('data:')).map(l => l.slice(5).replace(/^ /, '')).join('\n');
        if (data && handle(data)) { sawDone = true; break read; }
      }
      if (done) break;
    }
    reader.cancel().catch(() => {});
    const tEnd = performance.now();
    stats.elapsed = tEnd - t0;
    if (!sawDone && !stats.finish && !stats.usage) throw new Error('The connection closed before the answer was complete.');
    const n = stats.usage ? stats.usage.completion_tokens : 0;
    if (n > 1 && tFirst !== null && tEnd > tFirst) stats.tps = (n - 1) / ((tEnd - tFirst) / 1000);
    else if (n > 0 && stats.elapsed > 0) stats.tps = n / (stats.elapsed / 1000);
    return stats;
  }
  const fmtMs = ms => (ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`);
  /** The stats line: prompt/completion tokens, time to first token, tokens/s. */
  function statsEl(s) {
    const el = document.createElement('div'), u = s.usage || {}, parts = [];
    el.className = 'stats';
    if (u.prompt_tokens != null) { el.dataset.promptTokens = u.prompt_tokens; parts.push(`${u.prompt_tokens} prompt tokens`); }
    if (u.completion_tokens != null) { el.dataset.completionTokens = u.completion_tokens; parts.push(`${u.completion_tokens} completion tokens`); }
    if (s.ttft != null) { el.dataset.ttftMs = Math.round(s.ttft); parts.push(`first token ${fmtMs(s.ttft)}`); }
    if (s.tps != null) { el.dataset.tokensPerSecond = s.tps.toFixed(1); parts.push(`${s.tps.toFixed(1)} tokens/s`); }
    if (s.finish === 'length') parts.push('stopped at max_tokens');
    el.textContent = parts.join(' · ') || 'no usage reported';
    return el;
  }
  /** Renders a streamed answer into box: a folded <details> for reasoning and
   * a `.content` child (reused when the box already has one) for Markdown. */
  function answerView(box, onRender) {
    const content = box.querySelector('.content') || box.appendChild(Object.assign(document.createElement('div'), { className: 'content' }));
    let det = box.querySelector('details.reasoning');
    if (!det) {
      det = document.createElement('details');
      det.className = 'reasoning';
      det.innerHTML = '<summary>Reasoning</summary><div class="reasoning-text"></div>';
      box.insertBefore(det, content);
    }
    det.hidden = true;
    const view = { content: '', reasoning: '' };
    let timer = null;
    const render = () => {
      timer = null;
      content.innerHTML = md(view.content);
      if (view.reasoning) { det.hidden = false; det.lastChild.innerHTML = md(view.reasoning); }
      if (onRender) onRender();
    };
    view.push = (c, r) => { view.content += c; view.reasoning += r; if (!timer) timer = setTimeout(render, 40); };
    view.finish = () => { clearTimeout(timer); render(); };
    return view;
  }

  /* ---------- Markdown (escape first, then a few known tags) ---------- */
  const esc = s => String(s).replace(/[&<>"']/g, c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
  const emph = s => s
    .replace(/\*\*(?=\S)([\s\S]*?\S)\*\*/g, '<strong>$1</strong>')
    .replace(/(^|[^\w])__(?=\S)([\s\S]*?\S)__(?!\w)/g, '$1<strong>$2</strong>')
    .replace(/~~(?=\S)([\s\S]*?\S)~~/g, '<del>$1</del>')
    .replace(/\*(?=[^\s*])([^*\n]*?[^\s*]|[^\s*])\*/g, '<em>$1</em>')
    .replace(/(^|[^\w])_(?=[^\s_])([^_\n]*?[^\s_]|[^\s_])_(?!\w)/g, '$1<em>$2</em>');
  function inline(src, br) {
    const keep = [], put = html => `\u0000${keep.push(html) - 1}\u0000`;
    let s = String(src).replace(/\u0000/g, '');
    s = s.replace(/(`+)([\s\S]*?[^`])\1(?!`)/g, (_, t, code) => put(`<code>${esc(code.trim())}</code>`));
    s = esc(s);
    s = s.replace(/!?\[([^\]\n]+)\]\(\s*((?:[^()\s]|\([^()\s]*\))+)(?:\s+&quot;[^\n]*?&quot;)?\s*\)/g, (_, text, url) =>
      /^https?:\/\//i.test(url) ? put(`<a href="${url}" target="_blank" rel="noopener noreferrer">${emph(text)}</a>`) : emph(text));
    s = s.replace(/\bhttps?:\/\/[^\s\u0000]+/gi, m => {
      const cut = m.search(/&(?:lt|gt|quot);/), rest = cut < 0 ? '' : m.slice(cut);
      let url = cut < 0 ? m : m.slice(0, cut), tail = '', t;
      const count = ch => url.split(ch).length - 1;
      while ((t = /(?:[.,;:!?*_\]')]|&#39;)$/.exec(url)) && !(t[0] === ')' && count('(') >= count(')'))) {
        url = url.slice(0, -t[0].length);
        tail = t[0] + tail;
      }
      return (/^https?:\/\/./i.test(url) ? put(`<a href="${url}" target="_blank" rel="noopener noreferrer">${url}</a>`) : url) + tail + rest;
    });
    s = emph(s);
    if (br) s = s.replace(/\n/g, '<br>');
    const restore = t => t.replace(/\u0000(\d+)\u0000/g, (_, i) => restore(keep[+i]));
    return restore(s);
  }
  const LIST = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/, HR = /^\s{0,3}([-*_])(\s*\1){2,}\s*$/;
  const FENCE = /^\s{0,3}(`{3,}|~{3,})\s*([\w+#.-]*)/, QUOTE = /^\s{0,3}>/, HEAD = /^\s{0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$/;
  const SEP = /^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;
  const cells = l => l.trim().replace(/^\|/, '').replace(/\|$/, '').split('|').map(c => c.trim());
  const blank = l => /^\s*$/.test(l);
  function list(lines, i, out) {
    const items = [];
    while (i < lines.length) {
      const l = lines[i], m = LIST.exec(l);
      if (m && !HR.test(l)) {
        const indent = m[1].replace(/\t/g, '    ').length;
        items.push({ indent, inner: indent + m[2].length + 1, ordered: /\d/.test(m[2]), num: parseInt(m[2], 10), text: [m[3]] });
      } else if (blank(l)) {
        let j = i + 1;
        while (j < lines.length && blank(lines[j])) j++;
        if (j >= lines.length || !(LIST.test(lines[j]) || /^\s{2,}\S/.test(lines[j]))) break;
        items[items.length - 1].text.push('');
      } else if (/^\s{2,}\S/.test(l) || !(FENCE.test(l) || QUOTE.test(l) || HEAD.test(l) || HR.test(l))) {
        const it = items[items.length - 1], lead = /^\s*/.exec(l)[0].length;
        it.text.push(l.slice(Math.min(lead, it.inner)));
      } else break;
      i++;
    }
    let k = 0;
    const body = it => (it.text.length > 1 ? md(it.text.join('\n')) : inline(it.text[0]));
    const build = indent => {
      const first = items[k], tag = first.ordered ? 'ol' : 'ul';
      let h = `<${tag}${first.ordered && first.num !== 1 ? ` start="${first.num}"` : ''}>`;
      while (k < items.length && items[k].indent >= indent && (items[k].indent > indent || items[k].ordered === first.ordered)) {
        const it = items[k++];
        h += '<li>' + body(it);
        while (k < items.length && items[k].indent > it.indent) h += build(items[k].indent);
        h += '</li>';
      }
      return h + `</${tag}>`;
    };
    while (k < items.length) out.push(build(items[k].indent));
    return i;
  }
  function table(lines, i, out) {
    const head = cells(lines[i]);
    const align = cells(lines[i + 1]).map(c => (/^:.*:$/.test(c) ? 'center' : /:$/.test(c) ? 'right' : /^:/.test(c) ? 'left' : ''));
    const cell = (tag, c, j) => `<${tag}${align[j] ? ` style="text-align:${align[j]}"` : ''}>${inline(c)}</${tag}>`;
    let h = '<div class="table-wrap"><table><thead><tr>' + head.map((c, j) => cell('th', c, j)).join('') + '</tr></thead><tbody>';
    for (i += 2; i < lines.length && lines[i].includes('|') && !blank(lines[i]); i++) {
      h += '<tr>' + cells(lines[i]).map((c, j) => cell('td', c, j)).join('') + '</tr>';
    }
    out.push(h + '</tbody></table></div>');
    return i;
  }
  /** Markdown to safe HTML: headings, emphasis, code, fences, lists, quotes, tables, http(s) links. */
  function md(text) {
    const lines = String(text || '').replace(/\r\n?/g, '\n').split('\n'), out = [];
    let para = [], i = 0, m;
    const flush = () => { if (para.length) out.push(`<p>${inline(para.join('\n'), true)}</p>`); para = []; };
    while (i < lines.length) {
      const line = lines[i];
      if ((m = FENCE.exec(line))) {
        flush();
        const close = new RegExp(`^\\s{0,3}${m[1][0] === '`' ? '`' : '~'}{${m[1].length},}\\s*$`), code = [];
        for (i++; i < lines.length && !close.test(lines[i]); i++) code.push(lines[i]);
        i++;
        out.push(`<pre><code${m[2] ? ` class="language-${esc(m[2])}"` : ''}>${esc(code.join('\n'))}</code></pre>`);
      } else if (blank(line)) { flush(); i++; }
      else if ((m = HEAD.exec(line))) { flush(); out.push(`<h${m[1].length}>${inline(m[2])}</h${m[1].length}>`); i++; }
      else if (HR.test(line)) { flush(); out.push('<hr>'); i++; }
      else if (QUOTE.test(line)) {
        flush();
        const q = [];
        while (i < lines.length && QUOTE.test(lines[i])) q.push(lines[i++].replace(/^\s{0,3}>\s?/, ''));
        out.push(`<blockquote>${md(q.join('\n'))}</blockquote>`);
      } else if (LIST.test(line)) { flush(); i = list(lines, i, out); }
      else if (line.includes('|') && i + 1 < lines.length && lines[i + 1].includes('-') && SEP.test(lines[i + 1])
        && cells(lines[i + 1]).length === cells(line).length) { flush(); i = table(lines, i, out); }
      else { para.push(line.trim()); i++; }
    }
    flush();
    return out.join('\n');
  }

  /* ---------- media encoding ---------- */
  const IMAGE_OK = ['image/png', 'image/jpeg', 'image/webp', 'image/gif'];
  const readURL = blob => new Promise((ok, bad) => {
    const r = new FileReader();
    r.onload = () => ok(r.result);
    r.onerror = () => bad(r.error);
    r.readAsDataURL(blob);
  });
  /** Waits for one event on a media element (rejecting on its error or a timeout). */
  const once = (el, ev, ms = 15000) => new Promise((ok, bad) => {
    const done = (f, x) => { clearTimeout(t); el.removeEventListener(ev, yes); el.removeEventListener('error', no); f(x); };
    const yes = () => done(ok), no = () => done(bad, new Error('the browser cannot decode this file'));
    const t = setTimeout(() => done(bad, new Error(`timed out waiting for "${ev}"`)), ms);
    el.addEventListener(ev, yes);
    el.addEventListener('error', no);
  });
  function draw(src, w, h, maxSide, type, quality) {
    const s = Math.min(1, maxSide / Math.max(w, h)), c = document.createElement('canvas');
    c.width = Math.max(1, Math.round(w * s));
    c.height = Math.max(1, Math.round(h * s));
    const g = c.getContext('2d');
    if (type === 'image/jpeg') { g.fillStyle = '#fff'; g.fillRect(0, 0, c.width, c.height); }
    g.drawImage(src, 0, 0, c.width, c.height);
    return c.toDataURL(type, quality);
  }
  async function isAnimatedGif(file) {
    const b = new Uint8Array(await file.arrayBuffer());
    let n = 0;
    for (let i = 0; i + 3 < b.length; i++) if (b[i] === 0x21 && b[i + 1] === 0xf9 && b[i + 2] === 0x04 && ++n > 1) return true;
    return false;
  }
  /** An image as a data: URL; other formats (BMP, SVG, AVIF…) and files over 4 MiB are re-encoded. */
  async function imageURL(file) {
    if (IMAGE_OK.includes(file.type) && file.size <= 4 << 20) return readURL(file);
    const src = URL.createObjectURL(file), img = new Image();
    img.src = src;
    try { await once(img, 'load'); } finally { URL.revokeObjectURL(src); }
    const big = file.size > 4 << 20;
    return draw(img, img.naturalWidth || 512, img.naturalHeight || 512, big ? 2048 : 4096, big ? 'image/jpeg' : 'image/png', 0.9);
  }
  /** n frames, evenly spaced (at the middles of n equal spans), as JPEG data: URLs. */
  async function videoFrames(file, n = 8, maxSide = 768) {
    const v = document.createElement('video'), src = URL.createObjectURL(file);
    v.muted = true; v.playsInline = true; v.preload = 'auto'; v.src = src;
    try {
      await once(v, 'loadeddata');
      let d = v.duration;
      if (!isFinite(d)) { v.currentTime = 1e7; await once(v, 'seeked'); d = isFinite(v.duration) ? v.duration : v.currentTime; }
      const frames = [];
      for (let k = 0; k < n; k++) {
        v.currentTime = (d * (k + 0.5)) / n;
        await once(v, 'seeked');
        frames.push(draw(v, v.videoWidth, v.videoHeight, maxSide, 'image/jpeg', 0.85));
      }
      return { frames, duration: d };
    } finally { v.removeAttribute('src'); v.load(); URL.revokeObjectURL(src); }
  }
  /** Any audio the browser decodes, as a 16 kHz mono 16-bit PCM WAV blob. */
  async function toWav(blob, rate = 16000) {
    const decoded = await new OfflineAudioContext(1, 1, rate).decodeAudioData(await blob.arrayBuffer());
    const ctx = new OfflineAudioContext(1, Math.max(1, Math.ceil(decoded.duration * rate)), rate);
    const s = ctx.createBufferSource();
    s.buffer = decoded; s.connect(ctx.destination); s.start();
    const pcm = (await ctx.startRendering()).getChannelData(0), n = pcm.length;
    const b = new DataView(new ArrayBuffer(44 + n * 2));
    const str = (o, t) => { for (let i = 0; i < t.length; i++) b.setUint8(o + i, t.charCodeAt(i)); };
    str(0, 'RIFF'); b.setUint32(4, 36 + n * 2, true); str(8, 'WAVE'); str(12, 'fmt ');
    b.setUint32(16, 16, true); b.setUint16(20, 1, true); b.setUint16(22, 1, true); b.setUint32(24, rate, true);
    b.setUint32(28, rate * 2, true); b.setUint16(32, 2, true); b.setUint16(34, 16, true); str(36, 'data'); b.setUint32(40, n * 2, true);
    for (let i = 0; i < n; i++) { const x = Math.max(-1, Math.min(1, pcm[i])); b.setInt16(44 + 2 * i, x < 0 ? x * 0x8000 : x * 0x7fff, true); }
    return { wav: new Blob([b], { type: 'audio/wav' }), duration: decoded.duration };
  }
  const canRecord = () => !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia && window.MediaRecorder);
  /** Starts the microphone; resolves to {stop()} which resolves to the recorded blob. */
  async function record() {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const rec = new MediaRecorder(stream), chunks = [];
    rec.ondataavailable = e => { if (e.data.size) chunks.push(e.data); };
    const stopped = new Promise(ok => { rec.onstop = ok; });
    rec.start();
    return {
      async stop() {
        if (rec.state !== 'inactive') rec.stop();
        await stopped;
        stream.getTracks().forEach(t => t.stop());
        return new Blob(chunks, { type: rec.mimeType || 'audio/webm' });
      },
    };
  }
  const kindOf = f => {
    const t = f.type || '', ext = (/\.(\w+)$/.exec(f.name || '') || [])[1] || '';
    if (/^image\//.test(t) || /^(png|jpe?g|webp|gif|bmp|avif|svg)$/i.test(ext)) return 'image';
    if (/^video\//.test(t) || /^(mp4|webm|mov|mkv|m4v|ogv)$/i.test(ext)) return 'video';
    if (/^audio\//.test(t) || /^(wav|mp3|ogg|oga|flac|m4a|aac|opus)$/i.test(ext)) return 'audio';
    return null;
  };
  const mmss = s => `${Math.floor(s / 60)}:${String(Math.round(s % 60)).padStart(2, '0')}`;
  /** A file as an attachment {kind, name, part, thumb?, audio?, label}; `video` says whether an
   * animated GIF may go as a video_url part. */
  async function attachment(file, video = true) {
    const kind = kindOf(file), name = file.name || kind;
    if (!kind) throw new Error(`${name}: not an image, video or audio file`);
    if (kind === 'image') {
      const url = await imageURL(file);
      if (video && file.type === 'image/gif' && (await isAnimatedGif(file))) {
        return { kind: 'video', name, thumb: url, label: 'animated GIF', part: { type: 'video_url', video_url: { url } } };
      }
      return { kind, name, thumb: url, label: 'image', part: { type: 'image_url', image_url: { url } } };
    }
    if (kind === 'video') {
      const { frames, duration } = await videoFrames(file);
      return { kind, name, thumb: frames[0], label: `${frames.length} frames · ${mmss(duration)}`, part: { type: 'video', video: frames } };
    }
    const { wav, duration } = await toWav(file);
    const data = (await readURL(wav)).split(',')[1];
    return { kind, name, audio: URL.createObjectURL(wav), label: `${mmss(duration)} · 16 kHz WAV`, part: { type: 'input_audio', input_audio: { data, format: 'wav' } } };
  }
  /** A small preview of an attachment, with a remove button when onRemove is given. */
  function preview(a, onRemove) {
    const el = document.createElement('div');
    el.className = `chip ${a.kind || 'pending'}`;
    el.title = a.name;
    if (a.thumb) el.appendChild(Object.assign(new Image(), { src: a.thumb, alt: a.name }));
    if (a.audio) el.appendChild(Object.assign(document.createElement('audio'), { src: a.audio, controls: true, preload: 'none' }));
    const cap = el.appendChild(document.createElement('span'));
    cap.className = 'cap';
    cap.textContent = a.kind ? `${a.kind} · ${a.label}` : `encoding ${a.name}…`;
    if (onRemove) {
      const x = el.appendChild(document.createElement('button'));
      x.type = 'button'; x.className = 'remove'; x.textContent = '×'; x.title = 'Remove'; x.setAttribute('aria-label', `Remove ${a.name}`);
      x.addEventListener('click', onRemove);
    }
    return el;
  }
  /** The attachments waiting to be sent, shown in `el`. */
  class Tray {
    constructor(el, onChange) { this.el = el; this.items = []; this.seq = 0; this.pending = new Set(); this.onChange = onChange || (() => {}); }
    /** Encodes files; allow(kind) may refuse a kind by returning an error message. */
    addFiles(files, { allow = () => null, video = true, onError = () => {} } = {}) {
      for (const file of files) {
        const kind = kindOf(file), refused = kind ? allow(kind) : `${file.name}: not an image, video or audio file`;
        if (refused) { onError(refused); continue; }
        const chip = this.el.appendChild(preview({ name: file.name })), seq = ++this.seq;
        const job = attachment(file, video && !allow('video'))
          .then(a => {
            a.seq = seq;
            this.items.push(a);
            this.items.sort((x, y) => x.seq - y.seq); // keep the order the files were picked in
            chip.replaceWith(this.chip(a));
          })
          .catch(e => { chip.remove(); onError(`${file.name}: ${e.message}`); })
          .finally(() => { this.pending.delete(job); this.onChange(); });
        this.pending.add(job);
      }
      this.onChange();
    }
    chip(a) { const el = preview(a, () => this.remove(a)); a.el = el; return el; }
    remove(a) { this.items = this.items.filter(x => x !== a); if (a.el) a.el.remove(); this.onChange(); }
    restore(items) { items.forEach(a => { this.items.push(a); this.el.appendChild(this.chip(a)); }); this.onChange(); }
    /** Hands the items over and empties the tray. */
    take() { const items = this.items; this.items = []; this.el.textContent = ''; this.onChange(); return items; }
    ready() { return Promise.all([...this.pending]); }
  }
  /** Calls onFiles with files dropped anywhere on the page; adds body.dragging meanwhile. */
  function dropZone(onFiles) {
    let depth = 0;
    const files = e => e.dataTransfer && [...e.dataTransfer.types].includes('Files');
    const set = on => document.body.classList.toggle('dragging', on);
    document.addEventListener('dragenter', e => { if (files(e)) { e.preventDefault(); depth++; set(true); } });
    document.addEventListener('dragover', e => { if (files(e)) { e.preventDefault(); e.dataTransfer.dropEffect = 'copy'; } });
    document.addEventListener('dragleave', e => { if (files(e) && --depth <= 0) { depth = 0; set(false); } });
    document.addEventListener('drop', e => {
      if (!files(e)) return;
      e.preventDefault(); depth = 0; set(false);
      if (e.dataTransfer.files.length) onFiles([...e.dataTransfer.files]);
    });
  }
  /** A user message's content: media parts first, then the text (a plain string when there is no media). */
  const userContent = (text, items) => (items.length ? [...items.map(a => a.part), ...(text ? [{ type: 'text', text }] : [])] : text);

  return { apiKey, bindApiKey, api, errorOf, getJSON, postJSON, chatModels, streamChat, statsEl, answerView, md, esc,
    attachment, preview, Tray, dropZone, canRecord, record, toWav, videoFrames, userContent, kindOf };
})();
