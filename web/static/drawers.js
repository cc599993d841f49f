// On a narrow screen the chat list and the settings are drawers over the conversation, opened
// by the chat bar's buttons #open_chats and #open_settings (main.css hides those on a wide
// screen, where both are columns). A drawer closes with its button, Escape, a tap beside it, or
// once a chat is chosen in it; the focus goes into an opened drawer and back to its button.
(() => {
  const DRAWERS = { open_chats: 'chats_drawer', open_settings: 'settings_drawer' };
  const OPEN = 'lc-drawer-open';
  let opener = null; // the button of the open drawer

  const drawerOf = (button) => document.getElementById(DRAWERS[button.id]);
  const label = () => {
    for (const [id, drawer] of Object.entries(DRAWERS)) {
      const button = document.getElementById(id);
      if (!button) continue;
      const expanded = String(opener === button);
      // Only what changed: this runs on every change of the page (a streamed reply's too).
      if (button.getAttribute('aria-controls') !== drawer) button.setAttribute('aria-controls', drawer);
      if (button.getAttribute('aria-expanded') !== expanded) button.setAttribute('aria-expanded', expanded);
    }
  };
  const close = (refocus) => {
    if (!opener) return;
    const button = opener;
    drawerOf(button)?.classList.remove(OPEN);
    document.body.classList.remove('lc-drawer-shown');
    opener = null;
    label();
    if (refocus) button.focus();
  };
  const open = (button) => {
    close(false);
    const drawer = drawerOf(button);
    if (!drawer) return;
    opener = button;
    drawer.classList.add(OPEN);
    document.body.classList.add('lc-drawer-shown');
    label();
    // After the slide starts: a hidden element cannot take the focus.
    setTimeout(() => {
      const first = [...drawer.querySelectorAll('input, textarea, button, [role=button]')]
        .find((e) => !e.disabled && e.getAttribute('aria-hidden') !== 'true' && e.offsetParent);
      first?.focus();
    }, 30);
  };

  document.addEventListener('click', (event) => {
    const button = event.target.closest?.('#open_chats, #open_settings');
    if (button) {
      if (opener === button) close(true);
      else open(button);
      return;
    }
    if (!opener) return;
    const drawer = drawerOf(opener);
    if (drawer && !drawer.contains(event.target) && !event.target.closest?.('[role=presentation], .MuiPopover-root, .MuiDialog-root')) {
      close(false); // a tap beside the drawer (not in a menu it opened)
    } else if (drawer && drawer.id === 'chats_drawer' && event.target.closest?.('#chat_list .lc-chat-title, .lc-hit')) {
      setTimeout(() => close(false), 0); // a chat was chosen: show it
    }
  }, true);
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && opener) close(true);
  });
  new MutationObserver(label).observe(document.documentElement, { childList: true, subtree: true });
})();
