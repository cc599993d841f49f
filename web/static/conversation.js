// The conversation, drawn by LocalChat itself (web/chat_view.py says why and serves it).
// Hosts in the page (Taipy parts): #conversation (the messages), #context_used (the tokens
// line), #chat_search (the chat search box). Hidden page elements: #view_key (the tab's view
// key), #view_version (changes when the conversation did: fetch it again), #reply_status (the
// queue position of the reply waiting its turn). Each host can sit anywhere in a page: the
// pieces are re-attached whenever Taipy re-creates a host.
// Markdown: markdown-it with raw HTML off (so no HTML from a message is ever rendered), its
// own link check (no javascript: links), images shown as their text; code highlighted by
// highlight.js (a language it does not know stays a plain code block). The reply being
// written goes through the same renderer as the finished one, so nothing jumps at its end.
(() => {
  const md = window.markdownit({ html: false, linkify: true, breaks: true });
  const hljs = window.hljs;
  const el = (tag, props, ...children) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') node.className = v;
      else if (k === 'text') node.textContent = v;
      else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children) if (c) node.append(c);
    return node;
  };
  const fill = (template, values) =>
    template.replace(/\{(\w+)\}/g, (m, name) => (name in values ? String(values[name]) : m));

  // --- Markdown --------------------------------------------------------------------------
  const escape = md.utils.escapeHtml;
  md.renderer.rules.fence = (tokens, idx) => {
    const token = tokens[idx];
    const lang = (token.info || '').trim().split(/\s+/)[0].toLowerCase();
    const known = lang && hljs && hljs.getLanguage(lang);
    const body = known
      ? hljs.highlight(token.content, { language: lang, ignoreIllegals: true }).value
      : escape(token.content);
    const cls = known ? `hljs language-${escape(lang)}` : 'hljs';
    return '<div class="lc-code"><div class="lc-code-bar">'
      + `<span class="lc-code-lang">${escape(lang)}</span>`
      + `<button type="button" class="lc-code-copy" data-act="code-copy">${escape(labels.code_copy || 'Copy code')}</button>`
      + `</div><pre><code class="${cls}">${body}</code></pre></div>`;
  };
  // Images would be fetched from wherever a reply points: their text is shown instead.
  md.renderer.rules.image = (tokens, idx) => escape(tokens[idx].content || '');
  const linkOpen = md.renderer.rules.link_open
    || ((tokens, idx, options, env, self) => self.renderToken(tokens, idx, options));
  md.renderer.rules.link_open = (tokens, idx, options, env, self) => {
    tokens[idx].attrSet('target', '_blank');
    tokens[idx].attrSet('rel', 'noopener noreferrer');
    return linkOpen(tokens, idx, options, env, self);
  };
  // What the page did, counted (bench/chromium_cpu.py and tests read them).
  const stats = { renders: 0, liveRenders: 0, streamEvents: 0 };
  const renderMarkdown = (node, text) => {
    if (node.dataset.source === text) return;
    node.innerHTML = md.render(text).trimEnd(); // message HTML comes out escaped (html: false)
    node.dataset.source = text;
  };

  // --- Reading the tab's view -----------------------------------------------------------
  // A reader of one of the view's JSON routes, for a component's state S {key, version,
  // fetching, again}: one fetch at a time (a change meanwhile fetches once more after it), an
  // answer for a key the tab no longer holds is dropped, and a fetch that fails (a busy or
  // restarting server) is tried again by `retry` after a pause doubling up to 8 s: without
  // it a tab stayed empty until something else changed.
  const RETRY_FIRST_MS = 250;
  const RETRY_MAX_MS = 8000;
  const viewReader = (S, path, use, retry) => {
    let pause = RETRY_FIRST_MS;
    const read = async () => {
      if (S.fetching) { S.again = true; return; }
      S.fetching = true;
      const key = S.key;
      let ok = false;
      try {
        const response = await fetch('/lc-view/' + encodeURIComponent(key) + path, { cache: 'no-store' });
        ok = response.ok;
        if (ok && key === S.key) use(await response.json());
      } catch (e) { ok = false; } finally {
        S.fetching = false;
        if (S.again) {
          S.again = false;
          read();
        } else if (ok) {
          pause = RETRY_FIRST_MS;
        } else {
          S.version = null; // the next look at the page fetches again
          setTimeout(retry, pause);
          pause = Math.min(2 * pause, RETRY_MAX_MS);
        }
      }
    };
    return read;
  };

  // --- State -----------------------------------------------------------------------------
  let labels = {};
  const S = {
    key: '', source: null, data: null, chatId: undefined,
    fetching: false, again: false,
    version: null, status: '',
    live: { key: '', id: 0, text: '', done: false },
    editing: null, // {id, text, error}
    confirmDelete: 0,
    error: '',
  };
  const thread = el('div', { class: 'lc-thread', role: 'log', 'aria-live': 'polite' });
  const errorLine = el('p', { class: 'lc-view-error', role: 'alert' });
  const root = el('div', { class: 'lc-view' }, thread, errorLine);
  const contextLine = el('div', { class: 'lc-context-line' });
  const searchBox = el('input', { type: 'search', class: 'lc-search-input', id: 'chat_search_input' });
  const searchResults = el('ul', { class: 'lc-search-results', id: 'chat_search_results' });
  const searchRoot = el('div', { class: 'lc-search' }, searchBox, searchResults);

  const base = () => '/lc-view/' + encodeURIComponent(S.key);
  const showError = (text) => { S.error = text || ''; errorLine.textContent = S.error; };

  async function post(body) {
    try {
      const response = await fetch(base() + '/action', {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
      });
      const answer = await response.json();
      showError(answer.ok ? '' : answer.error);
      return answer;
    } catch (e) {
      showError(String(e));
      return { ok: false, error: String(e) };
    }
  }

  const refresh = viewReader(S, '', (data) => {
    S.data = data;
    follow(S.data);
    render();
  }, () => mount());

  // The reply being written: its text from its own stream (web/live.py), opened only while
  // it runs (a browser keeps few connections per site) and while the tab is seen: a hidden
  // tab reads nothing and draws nothing; shown again, it reopens the stream, whose first
  // event is the whole text so far.
  function follow(data) {
    const message = data.messages.find((m) => m.live);
    const key = message ? data.live_key : '';
    if (key === S.live.key) return;
    closeStream();
    S.live = { key, id: message ? message.id : 0, text: message ? message.text : '', done: false };
    openStream();
  }

  function closeStream() {
    if (S.source) { S.source.close(); S.source = null; }
  }

  function openStream() {
    const live = S.live;
    if (!live.key || live.done || S.source || document.hidden) return;
    const source = new EventSource('/lc-live/' + encodeURIComponent(live.key));
    S.source = source;
    source.onmessage = (e) => {
      if (S.source !== source) return;
      stats.streamEvents += 1;
      const change = JSON.parse(e.data);
      if ('t' in change) live.text = change.t;
      else if (change.a) live.text += change.a;
      queueLive();
    };
    const end = () => {
      source.close();
      if (S.source === source) S.source = null;
    };
    source.addEventListener('done', () => { live.done = true; end(); });
    source.onerror = end;
  }

  // The live text reaches the screen at most once an animation frame and at most every
  // LIVE_GAP_MS (web/live.py sends at most 10 changes a second; a burst of events, e.g.
  // after a busy moment, is drawn once): each drawing renders the reply's Markdown and lays
  // out its box, the browser's main cost while a reply streams.
  const LIVE_GAP_MS = 100;
  let liveQueued = false;
  let liveDrawnAt = -Infinity;
  function queueLive() {
    if (liveQueued || document.hidden) return;
    liveQueued = true;
    const wait = Math.max(0, liveDrawnAt + LIVE_GAP_MS - performance.now());
    const draw = () => requestAnimationFrame(() => {
      liveQueued = false;
      liveDrawnAt = performance.now();
      showLive();
    });
    if (wait > 0) setTimeout(draw, wait); else draw();
  }

  // --- Pieces (each a function a page layout can place where it likes) --------------------
  const stickToBottom = () => thread.scrollHeight - thread.scrollTop - thread.clientHeight < 48;
  // Read to the end, the conversation stays at its end when its box changes size (a phone
  // turned, its keyboard opened, the window resized).
  let atEnd = true;
  thread.addEventListener('scroll', () => { atEnd = stickToBottom(); }, { passive: true });
  new ResizeObserver(() => { if (atEnd) thread.scrollTop = thread.scrollHeight; }).observe(thread);

  function showLive() {
    const node = thread.querySelector('.lc-streaming');
    if (!node) return;
    const stick = stickToBottom();
    const text = String(S.live.id) === node.dataset.id ? S.live.text : '';
    const body = node.querySelector('.lc-md');
    if (text && body.dataset.source !== text) { stats.liveRenders += 1; renderMarkdown(body, text); }
    const foot = text ? '…' : (S.status || '…');
    const footer = node.querySelector('.lc-msg-footer');
    if (footer.textContent !== foot) footer.textContent = foot; // unchanged: no style or layout
    if (stick) thread.scrollTop = thread.scrollHeight;
  }

  function actionButton(act, label, onClick, extra) {
    return el('button', { type: 'button', class: `lc-act lc-act-${act}`, 'data-act': act, onclick: onClick, ...extra }, label);
  }

  async function copyText(text, button) {
    let ok = false;
    try {
      await navigator.clipboard.writeText(text);
      ok = true;
    } catch (e) { // an http page on another machine has no clipboard API: the old way
      const area = el('textarea', { class: 'lc-offscreen' });
      area.value = text;
      document.body.append(area);
      area.select();
      try { ok = document.execCommand('copy'); } catch (e2) { ok = false; }
      area.remove();
    }
    if (!ok) { showError(labels.msg_copy_failed); return; }
    const before = button.textContent;
    button.textContent = labels.msg_copied;
    setTimeout(() => { button.textContent = before; }, 1500);
  }

  function siblingSwitch(msg, busy) {
    const n = msg.siblings.length;
    if (n < 2) return null;
    const i = msg.index;
    const go = (to) => () => post({ action: 'switch', message_id: msg.siblings[to] });
    return el('span', { class: 'lc-siblings', role: 'group' },
      actionButton('previous', '‹', go(i - 1), { 'aria-label': labels.msg_previous, disabled: busy || i === 0 }),
      el('span', { class: 'lc-sibling-pos', 'aria-label': fill(labels.msg_version, { i: i + 1, n }) }, `${i + 1} / ${n}`),
      actionButton('next', '›', go(i + 1), { 'aria-label': labels.msg_next, disabled: busy || i === n - 1 }));
  }

  function messageActions(msg, isLast, busy) {
    const bar = el('div', { class: 'lc-msg-actions', role: 'toolbar', 'aria-label': labels.msg_actions });
    if (S.confirmDelete === msg.id) {
      bar.append(el('span', { class: 'lc-confirm-text', text: labels.msg_delete_question }),
        actionButton('delete-yes', labels.msg_delete_yes, () => {
          S.confirmDelete = 0;
          post({ action: 'delete', message_id: msg.id });
        }, { disabled: busy }),
        actionButton('delete-no', labels.msg_delete_no, () => { S.confirmDelete = 0; render(); }));
      return bar;
    }
    bar.append(actionButton('copy', labels.msg_copy, (e) => copyText(msg.text, e.currentTarget)));
    if (msg.role === 'user') {
      bar.append(actionButton('edit', labels.msg_edit, () => {
        S.editing = { id: msg.id, text: msg.text, error: '' };
        render();
      }, { disabled: busy }));
    } else if (!msg.live) {
      bar.append(actionButton('regenerate', labels.msg_regenerate,
        () => post({ action: 'regenerate', message_id: msg.id }), { disabled: busy }));
      if (isLast && msg.can_continue) {
        bar.append(actionButton('continue', labels.msg_continue,
          () => post({ action: 'continue', message_id: msg.id }), { disabled: busy }));
      } else if (isLast && msg.continue_refusal) {
        bar.append(el('span', { class: 'lc-continue-refused', text: msg.continue_refusal }));
      }
    }
    const siblings = siblingSwitch(msg, busy);
    if (siblings) bar.append(siblings);
    if (!msg.live) {
      bar.append(actionButton('delete', labels.msg_delete, () => { S.confirmDelete = msg.id; render(); },
        { disabled: busy }));
    }
    return bar;
  }

  function editor(msg) {
    const box = el('textarea', { class: 'lc-editor', 'aria-label': labels.msg_editor, rows: 4 });
    box.value = S.editing.text;
    box.addEventListener('input', () => { S.editing.text = box.value; });
    const save = async () => {
      if (!box.value.trim()) return;
      const answer = await post({ action: 'edit', message_id: msg.id, text: box.value });
      if (answer.ok) { S.editing = null; render(); }
    };
    const cancel = () => { S.editing = null; render(); };
    box.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') { e.preventDefault(); cancel(); }
      if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); save(); }
    });
    return el('div', { class: 'lc-edit' }, box,
      el('div', { class: 'lc-msg-actions' },
        actionButton('save', labels.msg_save, save),
        actionButton('cancel', labels.msg_cancel, cancel)));
  }

  // A reply's sources (documents it was given): each label opens its passage, as text.
  function sourcesView(msg) {
    const sources = msg.sources || [];
    if (!sources.length) return null;
    const items = sources.map((src) => el('li', {},
      el('details', { class: 'lc-source' },
        el('summary', { text: src.label }),
        el('p', { class: 'lc-passage', text: src.text }))));
    return el('details', { class: 'lc-sources' },
      el('summary', { text: `${labels.docs_sources} (${sources.length})` }),
      el('ol', {}, ...items));
  }

  function messageView(msg, pos, isLast, busy) {
    const mine = msg.role === 'user';
    const streaming = msg.live;
    const article = el('article', {
      class: `lc-msg ${mine ? 'lc-msg-user' : 'lc-msg-assistant'}${streaming ? ' lc-streaming' : ''}`,
      'data-id': msg.id, 'data-pos': pos, 'aria-label': mine ? labels.you : labels.assistant,
      id: streaming ? 'live_reply' : null,
    });
    if (S.editing && S.editing.id === msg.id) {
      article.classList.add('lc-editing');
      article.append(editor(msg));
      return article;
    }
    const bubble = el('div', { class: 'lc-bubble' });
    if (mine) { // Markdown too (a pasted code block is highlighted); Copy gives it as typed
      const body = el('div', { class: 'lc-md' });
      renderMarkdown(body, msg.text);
      bubble.append(body);
    } else {
      const body = el('div', { class: 'lc-md' });
      const text = streaming && S.live.id === msg.id && S.live.text ? S.live.text : msg.text;
      if (text.trim()) renderMarkdown(body, text);
      else if (!streaming) body.textContent = labels.empty_reply;
      const foot = streaming ? (!text && S.status) || '…' : msg.footer;
      bubble.append(body, el('div', { class: 'lc-msg-footer', text: foot }));
    }
    article.append(bubble);
    if (!streaming) {
      const sources = sourcesView(msg);
      if (sources) article.append(sources);
      article.append(messageActions(msg, isLast, busy)); // Stop is its action
    }
    return article;
  }

  const drawn = new Map(); // message id -> {facts, node}: what render() drew last
  function render() {
    const data = S.data;
    if (!data) return;
    stats.renders += 1;
    labels = data.labels;
    thread.setAttribute('aria-label', labels.conversation);
    const opened = data.chat_id !== S.chatId;
    S.chatId = data.chat_id;
    const ids = new Set(data.messages.map((m) => m.id));
    if (S.editing && !ids.has(S.editing.id)) S.editing = null;
    if (!ids.has(S.confirmDelete)) S.confirmDelete = 0;
    // Keyboard users keep their place: the same button of the message at the same position.
    const active = document.activeElement;
    const focus = active && thread.contains(active) && active.dataset.act
      ? { act: active.dataset.act, pos: active.closest('.lc-msg')?.dataset.pos } : null;
    const stick = opened || stickToBottom();
    const last = data.messages.length - 1;
    // A message whose facts did not change keeps its element (and a selection in it).
    const nodes = data.messages.map((m, i) => {
      const facts = JSON.stringify([m, i, i === last, data.busy, S.editing && S.editing.id === m.id,
        S.confirmDelete === m.id, m.live ? [S.live.text, S.status] : '']);
      const kept = drawn.get(m.id);
      if (kept && kept.facts === facts) return kept.node;
      const node = messageView(m, i, i === last, data.busy);
      drawn.set(m.id, { facts, node });
      return node;
    });
    for (const id of drawn.keys()) if (!ids.has(id)) drawn.delete(id);
    if (nodes.length !== thread.children.length || nodes.some((n, i) => thread.children[i] !== n)) {
      thread.replaceChildren(...nodes);
    }
    if (S.editing) thread.querySelector('.lc-editor')?.focus();
    else if (focus) {
      const again = thread.querySelector(`.lc-msg[data-pos="${focus.pos}"] [data-act="${focus.act}"]`);
      if (again && !again.disabled) again.focus();
    }
    if (stick) thread.scrollTop = thread.scrollHeight;
    contextLine.replaceChildren();
    if (data.context.text) {
      contextLine.append(el('span', { class: 'lc-context-used', text: data.context.text }));
      if (data.context.notice) contextLine.append(el('span', { class: 'lc-context-notice', role: 'status', text: data.context.notice }));
    }
    searchBox.placeholder = labels.search_chats;
    searchBox.setAttribute('aria-label', labels.search_chats);
    searchResults.setAttribute('aria-label', labels.search_results);
  }

  // Code blocks' Copy buttons: the code exactly as written (without the fence's last newline).
  thread.addEventListener('click', (e) => {
    const button = e.target.closest && e.target.closest('.lc-code-copy');
    if (!button) return;
    const code = button.closest('.lc-code').querySelector('code').textContent;
    copyText(code.endsWith('\n') ? code.slice(0, -1) : code, button);
  });

  // --- Search ----------------------------------------------------------------------------
  let searchTimer = 0;
  let searchSeq = 0;
  function showHits(hits, words) {
    searchResults.replaceChildren();
    if (!words.trim()) return;
    if (!hits.length) {
      searchResults.append(el('li', { class: 'lc-search-none', text: labels.search_none }));
      return;
    }
    for (const hit of hits) {
      const snippet = el('span', { class: 'lc-hit-snippet' });
      for (const [text, matched] of hit.snippet) {
        snippet.append(matched ? el('mark', { text }) : document.createTextNode(text));
      }
      searchResults.append(el('li', {}, el('button', {
        type: 'button', class: 'lc-hit', 'data-chat': hit.chat_id,
        onclick: () => post({ action: 'open', chat_id: hit.chat_id, message_id: hit.message_id || undefined }),
      }, el('span', { class: 'lc-hit-title', text: hit.title }), snippet)));
    }
  }
  searchBox.addEventListener('input', () => {
    clearTimeout(searchTimer);
    const words = searchBox.value;
    searchTimer = setTimeout(async () => {
      const seq = ++searchSeq;
      if (!words.trim()) { showHits([], ''); return; }
      try {
        const response = await fetch(base() + '/search?q=' + encodeURIComponent(words), { cache: 'no-store' });
        const answer = await response.json();
        if (seq === searchSeq) showHits(answer.hits || [], words);
      } catch (e) { /* typing again searches again */ }
    }, 200);
  });

  // --- Mounting ----------------------------------------------------------------------------
  const attach = (hostId, piece) => {
    const host = document.getElementById(hostId);
    if (host && piece.parentNode !== host) host.append(piece);
  };
  const shown = (id) => {
    const node = document.getElementById(id);
    return node ? node.textContent.trim() : '';
  };
  // The page's hidden #view_key, #view_version (bumped at each change) and #reply_status.
  const mount = () => {
    const key = shown('view_key');
    if (key && key !== S.key) { S.key = key; S.version = null; }
    // A hidden tab leaves the conversation as it is; shown again, it catches up.
    const version = shown('view_version');
    if (S.key && version !== S.version && !document.hidden) { S.version = version; refresh(); }
    const status = shown('reply_status');
    if (status !== S.status && !document.hidden) { S.status = status; showLive(); }
    attach('conversation', root);
    attach('context_used', contextLine);
    attach('chat_search', searchRoot);
  };
  new MutationObserver(mount).observe(document.documentElement,
    { subtree: true, childList: true, characterData: true });
  mount();
  document.addEventListener('visibilitychange', () => {
    if (document.hidden) { closeStream(); return; }
    mount();
    openStream();
  });
  window.LocalChatView = { stats, el, viewReader, actionButton, messageView, messageActions, siblingSwitch, sourcesView, editor, copyText, renderMarkdown };
})();
