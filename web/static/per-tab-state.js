// One state per browser tab. Taipy's front end keeps its client id in localStorage, which
// every tab of the site shares, so a second tab would reconnect with the first tab's id and
// get the same state (one conversation mixed across tabs). This keeps that one key in
// sessionStorage instead: each tab has its own id, kept across reloads of that tab. It must
// run before Taipy's scripts, hence first in <head>.
(() => {
  const key = document.currentScript.dataset.key;
  const get = Storage.prototype.getItem;
  const set = Storage.prototype.setItem;
  const remove = Storage.prototype.removeItem;
  const store = (s, k) => (s === window.localStorage && k === key ? window.sessionStorage : s);
  Storage.prototype.getItem = function (k) { return get.call(store(this, k), k); };
  Storage.prototype.setItem = function (k, v) { return set.call(store(this, k), k, v); };
  Storage.prototype.removeItem = function (k) { return remove.call(store(this, k), k); };
})();
