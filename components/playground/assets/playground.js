/* playground.js — the Playground page (served at /): a model picker fed by
 * /v1/models (chat models only; the media buttons follow the chosen model's
 * input_modalities), a multi-turn conversation kept in the page (earlier
 * turns are sent along), answers streamed from /v1/chat/completions and
 * rendered as Markdown with reasoning folded, attachments from the file
 * picker, drag-and-drop, paste or the microphone, sampling settings kept in
 * localStorage, Stop (aborts the fetch), New chat, and a stats line under
 * each answer. Relies on chat.js (`Chat`). */
'use strict';
(() => {
  const $ = id => document.getElementById(id);
  const modelSel = $('model'), promptEl = $('prompt'), messagesEl = $('messages'), statusEl = $('status');
  const SETTINGS = 'reka.playground.settings', MODEL = 'reka.playground.model';
  const FIELDS = ['temperature', 'top-p', 'max-tokens', 'seed', 'thinking', 'system'];
  let models = [], history = [], controller = null, recorder = null, stick = true;

  const setStatus = (text, error = false) => { statusEl.textContent = text; statusEl.classList.toggle('error', error); };
  const current = () => models.find(m => m.id === modelSel.value);
  const accepts = kind => { const m = current(); return !!m && m.inputs.includes(kind); };
  const refusal = kind => (accepts(kind) ? null : `${modelSel.value || 'This model'} does not take ${kind} input.`);
  const tray = new Chat.Tray($('attachments'), () => { $('send').disabled = !!controller; });
  const store = (k, v) => { try { localStorage.setItem(k, v); } catch (_) { /* private mode */ } };
  const load = k => { try { return localStorage.getItem(k); } catch (_) { return null; } };

  /* ---------- models ---------- */
  async function loadModels() {
    try {
      models = await Chat.chatModels();
    } catch (e) {
      models = [];
      modelSel.textContent = '';
      setStatus(`Could not list models: ${e.message}`, true);
      onModel();
      return;
    }
    const keep = modelSel.value || load(MODEL);
    modelSel.textContent = '';
    for (const m of models) modelSel.appendChild(new Option(m.id, m.id));
    if (models.some(m => m.id === keep)) modelSel.value = keep;
    if (!models.length) setStatus('The server offers no chat model.', true);
    else if (statusEl.classList.contains('error')) setStatus('');
    onModel();
  }
  function onModel() {
    const m = current(), media = m ? m.inputs.filter(k => k !== 'text') : [];
    const badges = $('modalities');
    badges.textContent = '';
    for (const k of m ? m.inputs : []) badges.appendChild(Object.assign(document.createElement('span'), { className: 'badge', textContent: k }));
    $('attach').hidden = !media.length;
    $('attach').title = media.length ? `Attach ${media.join(', ')}` : '';
    $('record').hidden = !(accepts('audio') && Chat.canRecord());
    const dropped = tray.items.filter(a => !accepts(a.kind));
    dropped.forEach(a => tray.remove(a));
    if (dropped.length) setStatus(`Removed ${dropped.length} attachment(s) that ${modelSel.value} does not take.`, true);
    if (m) store(MODEL, m.id);
  }
  modelSel.addEventListener('change', onModel);
  Chat.bindApiKey($('api-key'), loadModels);

  /* ---------- settings ---------- */
  function loadSettings() {
    let s = {};
    try { s = JSON.parse(load(SETTINGS) || '{}'); } catch (_) { /* ignore */ }
    for (const f of FIELDS) $(f).value = s[f] == null ? '' : s[f];
  }
  function saveSettings() { store(SETTINGS, JSON.stringify(Object.fromEntries(FIELDS.map(f => [f, $(f).value])))); }
  FIELDS.forEach(f => $(f).addEventListener('change', saveSettings));
  $('reset-settings').addEventListener('click', () => { FIELDS.forEach(f => { $(f).value = ''; }); saveSettings(); });
  function params() {
    const p = {}, num = (id, key, int) => {
      const v = $(id).value.trim(), n = int ? parseInt(v, 10) : parseFloat(v);
      if (v !== '' && Number.isFinite(n)) p[key] = n;
    };
    num('temperature', 'temperature'); num('top-p', 'top_p'); num('max-tokens', 'max_tokens', true); num('seed', 'seed', true);
    if ($('thinking').value) p.chat_template_kwargs = { enable_thinking: $('thinking').value === 'on' };
    return p;
  }

  /* ---------- conversation ---------- */
  function message(role, label) {
    messagesEl.querySelector('.empty')?.remove();
    const el = messagesEl.appendChild(document.createElement('div'));
    el.className = `msg ${role}`;
    el.appendChild(Object.assign(document.createElement('div'), { className: 'who', textContent: label }));
    return el;
  }
  function follow() { if (stick) messagesEl.scrollTop = messagesEl.scrollHeight; }
  messagesEl.addEventListener('scroll', () => {
    stick = messagesEl.scrollHeight - messagesEl.scrollTop - messagesEl.clientHeight < 60;
  });
  function setStreaming(on) {
    $('stop').disabled = !on;
    $('send').disabled = on;
    document.body.classList.toggle('streaming', on);
  }

  async function send() {
    if (controller) return;
    const model = modelSel.value;
    if (!model) { setStatus('No chat model to send to (is the API key right?).', true); return; }
    if (tray.pending.size) { setStatus('encoding attachments…'); await tray.ready(); }
    const text = promptEl.value.trim();
    if (!text && !tray.items.length) { setStatus('Type a message first.', true); promptEl.focus(); return; }
    const bad = tray.items.find(a => !accepts(a.kind));
    if (bad) { setStatus(refusal(bad.kind), true); return; }
    const items = tray.take();
    const userMsg = { role: 'user', content: Chat.userContent(text, items) };

    const userEl = message('user', 'You');
    if (items.length) {
      const media = userEl.appendChild(document.createElement('div'));
      media.className = 'media';
      items.forEach(a => media.appendChild(Chat.preview(a)));
    }
    if (text) userEl.appendChild(Object.assign(document.createElement('div'), { className: 'content plain', textContent: text }));
    const el = message('assistant', model);
    el.classList.add('streaming');
    promptEl.value = '';
    stick = true;
    follow();

    const system = $('system').value.trim();
    const messages = [...(system ? [{ role: 'system', content: system }] : []), ...history, userMsg];
    const ctl = (controller = new AbortController());
    setStreaming(true);
    setStatus('streaming…');
    const view = Chat.answerView(el, follow);
    try {
      const stats = await Chat.streamChat({ model, messages, params: params(), signal: ctl.signal, onDelta: view.push });
      view.finish();
      history.push(userMsg, { role: 'assistant', content: view.content });
      el.appendChild(Chat.statsEl(stats));
      el.dataset.state = 'done';
      setStatus('done');
    } catch (e) {
      view.finish();
      if (!el.isConnected) return; // "New chat" cleared the page meanwhile
      if (ctl.signal.aborted) {
        if (view.content) history.push(userMsg, { role: 'assistant', content: view.content });
        else { userEl.classList.add('excluded'); userEl.title = 'Not sent along with later messages (no answer).'; }
        el.appendChild(Object.assign(document.createElement('div'), { className: 'note', textContent: 'stopped' }));
        el.dataset.state = 'stopped';
        setStatus('stopped');
      } else {
        el.classList.add('failed');
        userEl.classList.add('excluded');
        userEl.title = 'Not sent along with later messages (the request failed).';
        el.appendChild(Object.assign(document.createElement('div'), { className: 'error', textContent: e.message }));
        el.dataset.state = 'error';
        setStatus(e.message, true);
        if (!promptEl.value && !tray.items.length) { promptEl.value = text; tray.restore(items); }
      }
    } finally {
      el.classList.remove('streaming');
      el.dataset.done = 'true';
      if (controller === ctl) controller = null;
      setStreaming(!!controller);
      follow();
    }
  }
  function stop() { if (controller) controller.abort(); }
  function newChat() {
    stop();
    controller = null;
    setStreaming(false);
    history = [];
    messagesEl.innerHTML = '<div class="empty">Pick a model and ask something.</div>';
    tray.take();
    promptEl.value = '';
    setStatus('');
    promptEl.focus();
  }

  $('composer').addEventListener('submit', e => { e.preventDefault(); send(); });
  $('stop').addEventListener('click', stop);
  $('new-chat').addEventListener('click', newChat);
  promptEl.addEventListener('keydown', e => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); }
  });
  document.addEventListener('keydown', e => { if (e.key === 'Escape' && controller) stop(); });

  /* ---------- attachments: picker, drop, paste, microphone ---------- */
  const addFiles = files => tray.addFiles(files, { allow: refusal, onError: m => setStatus(m, true) });
  $('file').addEventListener('change', e => { addFiles([...e.target.files]); e.target.value = ''; });
  Chat.dropZone(addFiles);
  promptEl.addEventListener('paste', e => {
    const files = [...(e.clipboardData ? e.clipboardData.files : [])];
    if (files.length) { e.preventDefault(); addFiles(files); }
  });
  $('record').addEventListener('click', async () => {
    const btn = $('record');
    if (!recorder) {
      try {
        recorder = await Chat.record();
        btn.classList.add('recording');
        btn.textContent = '■ Stop recording';
        setStatus('recording…');
      } catch (e) { setStatus(`Microphone: ${e.message}`, true); }
      return;
    }
    const r = recorder;
    recorder = null;
    btn.classList.remove('recording');
    btn.textContent = '● Record';
    const blob = await r.stop();
    setStatus('');
    const ext = /ogg/.test(blob.type) ? 'ogg' : /mp4/.test(blob.type) ? 'm4a' : 'webm';
    addFiles([new File([blob], `recording.${ext}`, { type: blob.type.startsWith('audio/') ? blob.type : 'audio/webm' })]);
  });

  loadSettings();
  loadModels();
})();
