// Typing on after a reply: the message input is disabled while a reply runs, which takes the
// focus away; when it is enabled again and nothing else has the focus, it gets it back.
(() => {
  let wasDisabled = false;
  new MutationObserver(() => {
    const input = document.querySelector('#message');
    if (!input) { wasDisabled = false; return; }
    const idle = !document.activeElement || document.activeElement === document.body;
    if (wasDisabled && !input.disabled && idle) input.focus();
    wasDisabled = input.disabled;
  }).observe(document.documentElement, {
    subtree: true, attributes: true, attributeFilter: ['disabled'], childList: true,
  });
})();
