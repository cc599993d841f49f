// The chat list, drawn by LocalChat itself from JSON (web/chat_view.py serves it at
// /lc-view/<key>/chats; pages/chat_list.py says what it holds), as the conversation is
// (conversation.js, whose `el` it uses). Hosts in the page: #chat_list (the rows) and
// #chat_notice (what the last action came to). Hidden page elements: #view_key (the tab's
// view key) and #list_version (changes when the list did: fetch it again).
// Chats are grouped by their last activity in the browser's own time zone: Pinned, Today,
// Yesterday, Previous 7 days, Previous 30 days, then one group per month, named in the
// page's language. Each row: the chat's title (a button that opens it; the open chat has
// aria-current) and a "⋯" menu (Rename in the row, Pin/Unpin, Export Markdown / JSON,
// Delete after a question in the row). Actions are posted as the conversation's are, and
// the server checks each chat id.
(() => {
  const { el, viewReader } = window.LocalChatView;
  const fill = (template, values) =>
    template.replace(/\{(\w+)\}/g, (m, name) => (name in values ? String(values[name]) : m));
  const DAY_CHANGE_CHECK_MS = 60_000; // groups move at midnight even if nothing else changes
  const OK_NOTICE_MS = 10_000; // a result stays this long; an error until dismissed

  let labels = {};
  const S = {
    key: '', version: null, data: null, fetching: false, again: false,
    menu: 0, // the chat whose menu is open
    renaming: 0, // the chat whose title is being edited in its row
    confirming: 0, // the chat whose deletion is being asked about
    openId: undefined, // the open chat drawn last (scrolled into view when it changes)
    noticeSeq: 0, day: 0,
  };
  // What the list did, counted and timed (tests and bench read them).
  const stats = { draws: 0, lastDrawMs: 0, rows: 0, firstRowsAt: 0 };
  const root = el('div', { class: 'lc-chats', role: 'navigation' });
  const noticeBox = el('div', { class: 'lc-chat-notice-box' });
  const base = () => '/lc-view/' + encodeURIComponent(S.key);

  // --- Talking to the server ----------------------------------------------------------------
  const refresh = viewReader(S, '/chats', (data) => {
    S.data = data;
    render();
    showServerNotice();
  }, () => mount());

  async function act(body) {
    try {
      const response = await fetch(base() + '/action', {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
      });
      const answer = await response.json();
      if (!answer.ok) showNotice('error', answer.error);
      return answer;
    } catch (e) {
      showNotice('error', String(e));
      return { ok: false, error: String(e) };
    }
  }

  // --- What the last action came to ----------------------------------------------------------
  let noticeTimer = 0;
  function showNotice(kind, text) {
    clearTimeout(noticeTimer);
    noticeBox.replaceChildren();
    if (!text) return;
    // A new element each time, so a screen reader announces it (alert: an error).
    noticeBox.append(el('div', { class: `lc-notice lc-notice-${kind}`, role: kind === 'error' ? 'alert' : 'status' },
      el('span', { class: 'lc-notice-text', text }),
      el('button', { type: 'button', class: 'lc-notice-close', 'aria-label': labels.notice_close, onclick: () => showNotice('', '') }, '×')));
    if (kind !== 'error') noticeTimer = setTimeout(() => showNotice('', ''), OK_NOTICE_MS);
  }
  function showServerNotice() {
    const notice = S.data.notice;
    if (notice.seq && notice.seq !== S.noticeSeq) showNotice(notice.kind, notice.text);
    S.noticeSeq = notice.seq;
  }

  // --- Date groups ----------------------------------------------------------------------------
  function dayStart(offsetDays) {
    const d = new Date();
    d.setHours(0, 0, 0, 0);
    d.setDate(d.getDate() - offsetDays); // calendar days: right across a summer-time change
    return d.getTime();
  }
  function groupsOf(chats) {
    const today = dayStart(0);
    const bounds = [
      ['today', today], ['yesterday', dayStart(1)], ['week', dayStart(7)], ['month', dayStart(30)],
    ];
    const months = new Intl.DateTimeFormat(labels.locale || undefined, { year: 'numeric', month: 'long' });
    const groups = [];
    let current = null;
    for (const chat of chats) {
      let key;
      let title;
      if (chat.pinned) {
        key = 'pinned';
        title = labels.list_pinned;
      } else {
        const found = bounds.find(([, start]) => chat.updated >= start);
        if (found) {
          key = found[0];
          title = labels[`list_${key}`];
        } else {
          const date = new Date(chat.updated);
          key = `${date.getFullYear()}-${date.getMonth()}`;
          title = months.format(date);
        }
      }
      // The server sends pinned chats first, then the most recent: groups come in order.
      if (!current || current.key !== key) {
        current = groups.find((g) => g.key === key) || null;
        if (!current) {
          current = { key, title, chats: [] };
          groups.push(current);
        }
      }
      current.chats.push(chat);
    }
    S.day = today;
    groupsOf.lastKeys = groups.map((g) => g.key);
    return groups;
  }

  // --- Rows -------------------------------------------------------------------------------------
  const rowOf = (id) => root.querySelector(`.lc-chat-row[data-chat="${id}"]`);
  const focusIn = (id, selector) => {
    const target = rowOf(id)?.querySelector(selector);
    if (target) target.focus();
    return target;
  };

  function menuItem(act, label, onClick) {
    return el('button', { type: 'button', role: 'menuitem', tabindex: '-1', class: 'lc-menu-item', 'data-act': act, onclick: onClick }, label);
  }

  function chatMenu(chat) {
    const close = () => { S.menu = 0; render(); focusIn(chat.id, '.lc-chat-more'); };
    const menu = el('div', { class: 'lc-chat-menu', role: 'menu', id: `chat_menu_${chat.id}`, 'aria-label': fill(labels.chat_menu, { title: chat.title }) },
      menuItem('rename', labels.rename, () => {
        S.menu = 0;
        S.renaming = chat.id;
        render();
        const box = focusIn(chat.id, '.lc-rename');
        if (box) box.select();
      }),
      menuItem('pin', chat.pinned ? labels.unpin_chat : labels.pin_chat, () => {
        close();
        act({ action: 'pin', chat_id: chat.id, pinned: !chat.pinned });
      }),
      menuItem('export-md', labels.export_md, () => { close(); act({ action: 'export', chat_id: chat.id, format: 'md' }); }),
      menuItem('export-json', labels.export_json, () => { close(); act({ action: 'export', chat_id: chat.id, format: 'json' }); }),
      menuItem('delete', labels.delete, () => {
        S.menu = 0;
        S.confirming = chat.id;
        render();
        focusIn(chat.id, '[data-act="delete-no"]');
      }));
    menu.addEventListener('keydown', (e) => {
      const items = [...menu.querySelectorAll('[role=menuitem]')];
      const at = items.indexOf(document.activeElement);
      const to = { ArrowDown: at + 1, ArrowUp: at - 1, Home: 0, End: items.length - 1 }[e.key];
      if (to !== undefined) {
        e.preventDefault();
        items[(to + items.length) % items.length].focus();
      } else if (e.key === 'Escape') {
        e.preventDefault();
        e.stopPropagation(); // not the drawer's Escape too
        close();
      } else if (e.key === 'Tab') {
        S.menu = 0;
        setTimeout(render, 0); // the focus moves on first
      }
    });
    return menu;
  }

  function renameRow(chat) {
    const box = el('input', {
      type: 'text', class: 'lc-rename', maxlength: 200,
      'aria-label': fill(labels.rename_field, { title: chat.title }),
    });
    box.value = chat.title;
    let done = false; // saved, cancelled, or being saved
    const finish = async (save, left) => {
      if (done || S.renaming !== chat.id) return;
      done = true;
      const title = box.value;
      if (save && title !== chat.title) {
        const answer = await act({ action: 'rename', chat_id: chat.id, title });
        if (!answer.ok && !left) { // said in the notice; the field stays to fix it
          done = false;
          box.focus();
          return;
        }
        if (answer.ok) chat.title = title.trim(); // until the list comes back with it stored
      }
      S.renaming = 0;
      render();
      if (!left) focusIn(chat.id, '.lc-chat-more');
    };
    box.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') { e.preventDefault(); finish(true, false); }
      if (e.key === 'Escape') { e.preventDefault(); e.stopPropagation(); finish(false, false); }
    });
    // Leaving the field saves what it holds (an empty field: nothing); a refused title is
    // said in the notice, and the focus is not pulled back.
    box.addEventListener('blur', () => finish(box.value.trim() !== '', true));
    return [box];
  }

  function confirmRow(chat) {
    const keep = () => { S.confirming = 0; render(); focusIn(chat.id, '.lc-chat-more'); };
    const box = el('div', { class: 'lc-chat-confirm', role: 'group' },
      el('span', { class: 'lc-confirm-text', text: fill(labels.delete_question, { title: chat.title }) }),
      el('button', { type: 'button', class: 'lc-act lc-confirm-yes', 'data-act': 'delete-yes', onclick: () => {
        S.confirming = 0;
        act({ action: 'delete_chat', chat_id: chat.id });
      } }, labels.delete),
      el('button', { type: 'button', class: 'lc-act', 'data-act': 'delete-no', onclick: keep }, labels.keep));
    box.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') { e.preventDefault(); e.stopPropagation(); keep(); }
    });
    return [box];
  }

  function rowView(chat, isOpen) {
    const row = el('li', { class: `lc-chat-row${isOpen ? ' lc-chat-current' : ''}`, 'data-chat': chat.id });
    if (S.renaming === chat.id) {
      row.classList.add('lc-chat-renaming');
      row.append(...renameRow(chat));
      return row;
    }
    if (S.confirming === chat.id) {
      row.append(...confirmRow(chat));
      return row;
    }
    const menuOpen = S.menu === chat.id;
    row.append(
      el('button', {
        type: 'button', class: 'lc-chat-title', 'aria-current': isOpen ? 'page' : null, title: chat.title,
        onclick: () => act({ action: 'open', chat_id: chat.id }),
      }, chat.title),
      el('button', {
        type: 'button', class: 'lc-chat-more', 'aria-label': fill(labels.chat_menu, { title: chat.title }),
        'aria-haspopup': 'menu', 'aria-expanded': String(menuOpen), 'aria-controls': menuOpen ? `chat_menu_${chat.id}` : null,
        onclick: () => {
          S.menu = menuOpen ? 0 : chat.id;
          S.confirming = 0;
          render();
          if (S.menu) focusIn(chat.id, '[role=menuitem]');
        },
      }, '⋯'));
    if (menuOpen) row.append(chatMenu(chat));
    return row;
  }

  const drawn = new Map(); // chat id -> {facts, node}: what render() drew last
  const drawnGroups = new Map(); // group key -> {node, heading, list}
  const same = (parent, nodes) =>
    parent.children.length === nodes.length && nodes.every((n, i) => parent.children[i] === n);
  function render() {
    const data = S.data;
    if (!data) return;
    const began = performance.now();
    labels = data.labels;
    root.setAttribute('aria-label', labels.chats);
    const ids = new Set(data.chats.map((c) => c.id));
    for (const name of ['menu', 'renaming', 'confirming']) if (!ids.has(S[name])) S[name] = 0;
    // Moving an element in the page drops its focus: keyboard users keep their place.
    const active = root.contains(document.activeElement) ? document.activeElement : null;
    const place = active && {
      chat: active.closest('.lc-chat-row')?.dataset.chat,
      selector: active.dataset.act ? `[data-act="${active.dataset.act}"]` : `.${active.classList[0]}`,
    };
    const sections = groupsOf(data.chats).map((group) => {
      const rows = group.chats.map((chat) => {
        const isOpen = chat.id === data.open_id;
        const facts = JSON.stringify([chat.title, chat.pinned, isOpen, labels.locale,
          S.menu === chat.id, S.renaming === chat.id, S.confirming === chat.id]);
        const kept = drawn.get(chat.id);
        if (kept && kept.facts === facts) return kept.node;
        const node = rowView(chat, isOpen);
        drawn.set(chat.id, { facts, node });
        return node;
      });
      let section = drawnGroups.get(group.key);
      if (!section) {
        const heading = el('h3', { class: 'lc-chat-group-title', id: `chat_group_${group.key}` });
        const list = el('ul', { class: 'lc-chat-rows-list' });
        section = { node: el('section', { class: 'lc-chat-group', 'aria-labelledby': heading.id }, heading, list), heading, list };
        drawnGroups.set(group.key, section);
      }
      if (section.heading.textContent !== group.title) section.heading.textContent = group.title;
      if (!same(section.list, rows)) section.list.replaceChildren(...rows);
      return section.node;
    });
    const keys = new Set(groupsOf.lastKeys);
    for (const id of drawn.keys()) if (!ids.has(id)) drawn.delete(id);
    for (const key of drawnGroups.keys()) if (!keys.has(key)) drawnGroups.delete(key);
    if (!sections.length) sections.push(el('p', { class: 'lc-chat-empty', text: labels.list_empty }));
    if (!same(root, sections)) root.replaceChildren(...sections);
    if (active && document.activeElement !== active) {
      const again = active.isConnected ? active : (place.chat && rowOf(place.chat)?.querySelector(place.selector));
      if (again) again.focus({ preventScroll: true });
    }
    if (data.open_id !== S.openId) {
      S.openId = data.open_id;
      const row = data.open_id ? rowOf(data.open_id) : null;
      if (row && root.offsetParent) row.scrollIntoView({ block: 'nearest' });
    }
    stats.draws += 1;
    stats.rows = data.chats.length;
    stats.lastDrawMs = performance.now() - began;
    if (!stats.firstRowsAt && data.chats.length) stats.firstRowsAt = performance.now();
  }

  // Up and Down move between the chats' titles (one Tab stop per row is a lot with many).
  root.addEventListener('keydown', (e) => {
    if (!e.target.classList || !e.target.classList.contains('lc-chat-title')) return;
    if (e.key !== 'ArrowDown' && e.key !== 'ArrowUp') return;
    const titles = [...root.querySelectorAll('.lc-chat-title')];
    const next = titles[titles.indexOf(e.target) + (e.key === 'ArrowDown' ? 1 : -1)];
    if (next) { e.preventDefault(); next.focus(); }
  });
  // A click anywhere but in the open menu closes it.
  document.addEventListener('click', (e) => {
    if (!S.menu || !e.target.closest) return;
    if (e.target.closest('.lc-chat-menu') || e.target.closest('.lc-chat-more')) return;
    S.menu = 0;
    render();
  }, true);
  setInterval(() => { if (S.data && dayStart(0) !== S.day && !document.hidden) render(); }, DAY_CHANGE_CHECK_MS);

  // --- Mounting -------------------------------------------------------------------------------
  const shown = (id) => {
    const node = document.getElementById(id);
    return node ? node.textContent.trim() : '';
  };
  const attach = (hostId, piece) => {
    const host = document.getElementById(hostId);
    if (host && piece.parentNode !== host) host.append(piece);
  };
  const mount = () => {
    const key = shown('view_key');
    if (key && key !== S.key) { S.key = key; S.version = null; }
    const version = shown('list_version');
    if (S.key && version !== S.version && !document.hidden) { S.version = version; refresh(); }
    attach('chat_list', root);
    attach('chat_notice', noticeBox);
  };
  new MutationObserver(mount).observe(document.documentElement,
    { subtree: true, childList: true, characterData: true });
  mount();
  document.addEventListener('visibilitychange', () => { if (!document.hidden) mount(); });
  window.LocalChatList = { stats, groupsOf };
})();
