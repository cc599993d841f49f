// Over-long messages: text that would make the message longer than data-max characters is not
// let in (a paste, a drop or typing), and a line under the input says why (data-message, with
// {n} for the length it would have had). The server refuses such a message too, but past
// Engine.IO's 16 MB limit it never reaches the server: the connection drops it, and the user
// would see nothing happen. The insertion is cancelled before it happens rather than undone
// after, so the box keeps what it had and Taipy's copy of the text stays the same as the
// page's. Listeners on the document in the capture phase run before React's.
(() => {
  const max = Number(document.currentScript.dataset.max);
  const message = document.currentScript.dataset.message;
  const say = (text) => {
    let p = document.querySelector('#message_limit');
    if (!text) { if (p) p.remove(); return; }
    if (!p) {
      p = document.createElement('p');
      p.id = 'message_limit';
      p.className = 'lc-message-limit';
      p.setAttribute('role', 'alert');
      const box = document.querySelector('.lc-message');
      if (box) box.after(p); else document.body.append(p);
    }
    p.textContent = text;
  };
  const inBox = (e) => e.target && e.target.closest && e.target.closest('#message');
  const guard = (e, added) => {
    const box = e.target;
    if (!inBox(e) || added === null) return;
    const n = box.value.length - (box.selectionEnd - box.selectionStart) + added.length;
    if (n <= max) return;
    e.preventDefault();
    e.stopImmediatePropagation();
    say(message.replace('{n}', n.toLocaleString('en-US')));
  };
  const text = (data) => (data ? data.getData('text/plain') : null);
  document.addEventListener('paste', (e) => guard(e, text(e.clipboardData)), true);
  document.addEventListener('drop', (e) => guard(e, text(e.dataTransfer)), true);
  // the line goes once the text changes or is sent
  document.addEventListener('input', (e) => { if (inBox(e)) say(''); }, true);
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && inBox(e)) say('');
  }, true);
  document.addEventListener('beforeinput', (e) => {
    if (e.inputType === 'insertText' || e.inputType === 'insertLineBreak') {
      guard(e, e.data || '\n');
    }
  }, true);
})();
