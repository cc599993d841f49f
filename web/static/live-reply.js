// The reply being written (web/live.py): when #live_key (a hidden element bound to the tab's
// live_key) shows a new key, read that reply's event stream into #live_stream; a key gone or
// changed closes the old one. The text is also kept here and put back if the element was
// re-created meanwhile.
(() => {
  let key = '';
  let source = null;
  let text = '';
  const show = () => {
    const out = document.querySelector('#live_stream');
    if (out && out.textContent !== text) out.textContent = text;
  };
  const check = () => {
    const el = document.querySelector('#live_key');
    const now = el ? el.textContent.trim() : '';
    if (now === key) { if (key) show(); return; }
    if (source) { source.close(); source = null; }
    key = now;
    text = '';
    if (!key) return;
    const from = new EventSource('/lc-live/' + encodeURIComponent(key));
    source = from;
    from.onmessage = (e) => {
      if (source !== from) return;
      const change = JSON.parse(e.data);
      const out = document.querySelector('#live_stream');
      if ('t' in change) {
        text = change.t;
        if (out) out.textContent = text;
      } else if (change.a) {
        const inPlace = out && out.textContent === text;
        text += change.a;
        if (inPlace) out.append(change.a); else show();
      }
    };
    from.addEventListener('done', () => { from.close(); });
    from.onerror = () => { from.close(); };
  };
  new MutationObserver(check).observe(document.documentElement,
    { subtree: true, childList: true, characterData: true });
})();
