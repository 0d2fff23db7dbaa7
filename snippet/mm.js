/*! Millimetric browser snippet · Apache-2.0 · https://millimetric.dev
 *
 *   <script defer crossorigin="anonymous" src="https://YOUR-INGEST-HOST/mm.js" data-key="pk_live_..."></script>
 *
 * Sends a pageview for each page (a prerendered one once it is shown, one restored from the
 * back/forward cache again) and each client-side navigation that changes the path (not
 * the query alone), and custom events through `millimetric.track("signup", { plan: "pro" })`
 * (flat properties: strings, numbers, booleans). It keeps one random anonymous id, `mm_aid`,
 * in this site's localStorage. It never sets or reads a cookie, sends none to the ingest host
 * (crossorigin="anonymous" keeps them off the script's own request too), never reads a form
 * field, and sends nothing but the page's URL (without its #fragment unless it is a #/route,
 * with hash routing on), referrer and title, that id, and what you pass to `track`. Never
 * pass card numbers or passwords there. A GET form's fields become the address of the page it
 * loads, so they are sent as that page's URL (the ingest host removes e-mail addresses and
 * the like from URLs).
 *
 * Optional attributes: data-endpoint (default: /collect on the script's own host),
 * data-hash-routing="true" (count #/route changes as pages; the key must allow hash routing).
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.millimetric) return;
  var key = script.getAttribute("data-key") || "";
  if (key.indexOf("pk_live_") !== 0) {
    console.warn("millimetric: data-key must be your project's pk_live_ key; nothing is sent.");
    return;
  }
  var endpoint = script.getAttribute("data-endpoint") || new URL("/collect", script.src).href;
  var hashRouting = script.getAttribute("data-hash-routing") === "true";

  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) { return (x + 0x100).toString(16).slice(1); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }

  // The anonymous id. Where storage is blocked it lives for this page only (never a cookie).
  var aid;
  try {
    aid = localStorage.getItem("mm_aid");
    if (!aid) {
      aid = uuid();
      localStorage.setItem("mm_aid", aid);
    }
  } catch (e) {
    aid = aid || uuid();
  }

  // text/plain with the key in the body: a "simple" request, so no CORS preflight. fetch with
  // keepalive outlives the page as sendBeacon does, and with credentials "omit" it never
  // carries the site's cookies, even to an ingest host on a subdomain of the site; sendBeacon
  // always would, so it is never used. (Where keepalive is missing, e.g. Firefox before 133, an
  // event sent while the page closes may be lost: never a cookie sent instead.) Each event
  // carries its own id, so a resend is stored once.
  function request(body, keepalive) {
    return fetch(endpoint, { method: "POST", body: body, keepalive: keepalive, credentials: "omit", headers: { "Content-Type": "text/plain;charset=UTF-8" } });
  }
  // Browsers let keepalive requests hold at most 64 KiB in flight and refuse the rest at once
  // (a burst of events): those go again as plain requests, which only the page's end cancels.
  function resend(body) {
    try {
      request(body, false).catch(function () {});
    } catch (e) { /* as post */ }
  }
  function post(body) {
    try {
      if (window.fetch) {
        request(body, true).catch(function () { resend(body); });
      } else {
        var x = new XMLHttpRequest(); // cross-origin, withCredentials false: no cookies either
        x.open("POST", endpoint);
        x.setRequestHeader("Content-Type", "text/plain;charset=UTF-8");
        x.send(body);
      }
    } catch (e) { /* analytics must never break the page */ }
  }

  function send(event) {
    event.mm_aid = aid;
    event.id = uuid();
    event.key = key;
    var body;
    try {
      body = JSON.stringify(event);
    } catch (e) {
      // Properties that do not serialize (a cycle, a BigInt, a getter that throws) are left
      // out: the event itself still counts.
      delete event.props;
      body = JSON.stringify(event);
    }
    post(body);
  }

  // With hash routing, a fragment is a route when it starts with "#/" (or "#!/"); an in-page
  // #anchor is not one.
  function route() {
    var h = location.hash.split("?")[0];
    return hashRouting && /^#!?\//.test(h) ? h : "";
  }

  // The address sent: no fragment unless it is a route (a fragment is often a token).
  function here() {
    return location.origin + location.pathname + location.search + (route() ? location.hash : "");
  }

  // What makes a page: its path, and with hash routing its #/route (the fragment up to "?").
  // A client-side navigation (pushState, replaceState, back/forward, a #/route change) is a
  // new pageview only when that changes: a change of the query alone (a search box or filter
  // that rewrites ?q= as you type) is not.
  function page() {
    return location.pathname + route();
  }

  // After a client-side navigation apps set document.title, often a render or a data load
  // later. The pageview waits for it: it is sent 100 ms after the title changes, or 1 s after
  // the navigation if the title has not changed by then; at once if the page is hidden or
  // closed, or another event is sent, first (or was hidden already).
  var counted = null, countedPath = null; // the page last counted, and its path
  var current = null; // the address last seen: the next page's referrer
  var waiting = null, timer = 0, since = 0, titleSeen = "";
  var watcher = window.MutationObserver ? new MutationObserver(titleChanged) : null;

  function flush() {
    if (!waiting) return;
    var ev = waiting;
    waiting = null;
    clearTimeout(timer);
    if (watcher) watcher.disconnect();
    ev.title = document.title;
    send(ev);
  }

  function titleChanged() {
    if (!waiting || document.title === titleSeen) return;
    titleSeen = document.title;
    clearTimeout(timer);
    timer = setTimeout(flush, Math.max(0, Math.min(100, since + 1000 - Date.now())));
  }

  function pageview(first) {
    // A prerendered page counts once shown (below): a router writing its URL before then is
    // not a view.
    if (document.prerendering) return;
    var url = here(), previous = current;
    current = url;
    if (page() === counted) return;
    // With hash routing, an in-page #anchor on the page counted (and the way back from it to
    // its #/route) is no new page.
    if (first !== true && hashRouting && location.hash && !route() && location.pathname === countedPath) return;
    flush();
    counted = page();
    countedPath = location.pathname;
    // The first page's referrer is the browser's; after a client-side navigation it is the
    // address before it (same-site, so it is not counted as a source).
    var ev = { type: "pageview", url: url };
    var referrer = first === true ? document.referrer : previous;
    if (referrer) ev.referrer = referrer;
    // A hidden page's timers may never fire again (a background tab, frozen or discarded
    // without a pagehide): its view goes at once.
    if (first === true || document.visibilityState === "hidden") {
      ev.title = document.title;
      send(ev);
      return;
    }
    waiting = ev;
    since = Date.now();
    titleSeen = document.title;
    timer = setTimeout(flush, 1000);
    if (watcher) watcher.observe(document.head || document.documentElement, { subtree: true, childList: true, characterData: true });
  }

  // Events tracked while the page is prerendered wait until it is shown (at most 50): a page
  // never shown sends nothing, as it counts no view.
  var held = [];
  function track(name, props) {
    try {
      var ev = { type: "event", name: String(name), url: here() };
      if (props && typeof props === "object") ev.props = props;
      if (document.prerendering) return void (held.length < 50 && held.push(ev));
      flush();
      send(ev);
    } catch (e) { /* analytics must never break the page */ }
  }

  window.addEventListener("pagehide", flush);
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") flush();
  });

  // Client-side navigation: history API calls and back/forward.
  ["pushState", "replaceState"].forEach(function (fn) {
    var orig = history[fn];
    history[fn] = function () {
      var r = orig.apply(this, arguments);
      pageview();
      return r;
    };
  });
  window.addEventListener("popstate", function () { pageview(); });
  if (hashRouting) window.addEventListener("hashchange", function () { pageview(); });

  // A page restored from the back/forward cache is shown again without loading: a view, as
  // the reload it stands for would have been.
  function restored(e) {
    if (!e.persisted) return;
    counted = null;
    pageview(true);
  }
  window.addEventListener("pageshow", restored);

  window.millimetric = { track: track, anonymousId: function () { return aid; } };
  // A prerendered page (speculation rules) may never be shown: it counts once it is.
  if (document.prerendering) {
    document.addEventListener("prerenderingchange", function () { pageview(true); held.splice(0).forEach(send); }, { once: true });
  } else {
    pageview(true);
  }
})();
