/*! Millimetric browser snippet · Apache-2.0 · https://millimetric.dev
 *
 *   <script defer src="https://YOUR-INGEST-HOST/mm.js" data-key="pk_live_..."></script>
 *
 * Sends a pageview for each page and each client-side navigation, and custom events through
 * `millimetric.track("signup", { plan: "pro" })` (flat properties: strings, numbers, booleans).
 * It keeps one random anonymous id, `mm_aid`, in this site's localStorage. It never sets or
 * reads a cookie, never reads a form field, and sends nothing but the page's URL, referrer and
 * title, that id, and what you pass to `track`. Never pass card numbers or passwords there.
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

  // text/plain with the key in the body: a "simple" request, so no CORS preflight, and
  // sendBeacon still delivers when the page is closing. Each event carries its own id, so a
  // resend is stored once.
  function send(event) {
    event.mm_aid = aid;
    event.id = uuid();
    event.key = key;
    var body = JSON.stringify(event);
    try {
      if (navigator.sendBeacon && navigator.sendBeacon(endpoint, body)) return;
    } catch (e) { /* fall through */ }
    try {
      fetch(endpoint, { method: "POST", body: body, keepalive: true, credentials: "omit", headers: { "Content-Type": "text/plain;charset=UTF-8" } })
        .catch(function () {});
    } catch (e) { /* analytics must never break the page */ }
  }

  function here() {
    return location.origin + location.pathname + location.search + (hashRouting ? location.hash : "");
  }

  var last = null;
  function pageview() {
    var url = here();
    if (url === last) return;
    // The first page's referrer is the browser's; after a client-side navigation it is the
    // previous page (same-site, so it is not counted as a source).
    var referrer = last === null ? document.referrer : last;
    last = url;
    var ev = { type: "pageview", url: location.href, title: document.title };
    if (referrer) ev.referrer = referrer;
    send(ev);
  }

  function track(name, props) {
    var ev = { type: "event", name: String(name), url: location.href };
    if (props && typeof props === "object") ev.props = props;
    send(ev);
  }

  // Client-side navigation: history API calls and back/forward.
  ["pushState", "replaceState"].forEach(function (fn) {
    var orig = history[fn];
    history[fn] = function () {
      var r = orig.apply(this, arguments);
      pageview();
      return r;
    };
  });
  window.addEventListener("popstate", pageview);
  if (hashRouting) window.addEventListener("hashchange", pageview);

  window.millimetric = { track: track, anonymousId: function () { return aid; } };
  if (document.visibilityState === "prerender") {
    document.addEventListener("visibilitychange", pageview, { once: true });
  } else {
    pageview();
  }
})();
