// Covenant explorer: the live parts. Every page works without this script; it counts down to
// the times that matter (on the chain's clock, estimated from the finalized block's timestamp)
// and, when the indexer's change feed announces a new finalized block, refreshes the regions
// marked `data-live` from the page as the server renders it then.
(() => {
  'use strict';
  let offset = 0; // chain time minus wall time, in seconds

  const setClock = (doc) => {
    const t = Number(doc.body.dataset.chainTime);
    if (t > 0) offset = t - Date.now() / 1000;
  };

  const span = (seconds) => {
    const s = Math.max(0, Math.floor(seconds));
    const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24;
    const m = Math.floor(s / 60) % 60, x = s % 60;
    if (d) return `${d} d ${h} h`;
    if (h) return `${h} h ${m} min`;
    if (m) return `${m} min ${x} s`;
    return `${x} s`;
  };

  const tick = () => {
    const now = Date.now() / 1000 + offset;
    for (const el of document.querySelectorAll('[data-countdown]')) {
      const left = Number(el.dataset.countdown) - now;
      el.textContent = left >= 1 ? `in ${span(left)}` : 'now';
    }
  };

  let busy = false;
  let again = false;
  const refresh = async () => {
    if (busy) { again = true; return; }
    busy = true;
    try {
      const res = await fetch(location.pathname + location.search, {
        headers: { Accept: 'text/html' },
        cache: 'no-store',
      });
      if (!res.ok) return;
      const doc = new DOMParser().parseFromString(await res.text(), 'text/html');
      for (const fresh of doc.querySelectorAll('[data-live][id]')) {
        const old = document.getElementById(fresh.id);
        if (old && old.innerHTML !== fresh.innerHTML) old.innerHTML = fresh.innerHTML;
      }
      setClock(doc);
      tick();
    } catch (_) {
      // The next finalized block tries again.
    } finally {
      busy = false;
      if (again) { again = false; refresh(); }
    }
  };

  setClock(document);
  tick();
  setInterval(tick, 1000);
  if ('EventSource' in window) {
    new EventSource('/v1/feed').addEventListener('finalized', refresh);
  }
})();
