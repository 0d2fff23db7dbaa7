// Drives Debian's Chromium (headless) through the page's life beyond a plain load, and prints
// what the page saw as JSON. Like drive.mjs it judges nothing: tests/e2e_snippet.rs reads what
// reached the ingest host and what was stored. The walks, each named on the command line:
//   prerender  a page prerendered before it is shown: Chromium refuses to prerender while
//              DevTools drives it ("PrerenderingDisabledByDevTools"), so the page is given
//              what a prerendered page has, `document.prerendering` true and a hidden state,
//              until it is activated (`prerenderingchange`). A mark, GET /health?step=activate
//              on the ingest host, tells the test what came before the activation. A router
//              writes the URL (replaceState) and the page tracks an event while the page is
//              still prerendered.
//   bfcache    a page left, then restored from the back/forward cache (Playwright turns that
//              cache off by default; it is on here). `restored` says it really was.
//   burst      80 events of about 1 KB each tracked at once: more than the 64 KiB that
//              Chromium lets keepalive requests hold in flight.
//   hostile    `track` called as a careless page might: properties with a cycle, a BigInt or
//              a getter that throws. `threw` says whether any call threw into the page.
//   hidden     a client-side navigation (pushState) while the tab is hidden (the state forced,
//              as a phone's background tab has it), then a mark, GET /health?step=hidden-mark,
//              300 ms later: a hidden page's timers may never fire again, so its view must not
//              wait for one.
//   anchor     a hash-routed page opened on a #/route, an in-page #anchor clicked there, then
//              back to the route: one page throughout.
//   anchor-restore  a hash-routed page opened on an in-page #anchor, left, and restored from
//              the back/forward cache: two page loads.
// Usage: node lifecycle.mjs <page origin> <ingest origin> <walk>...
import { chromium } from "playwright-core";

const [site, ingest, ...walks] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  ignoreDefaultArgs: ["--disable-back-forward-cache"],
  args: ["--no-sandbox", "--no-proxy-server", "--host-resolver-rules=MAP *.site.test 127.0.0.1"],
});
const BURST = 80;
try {
  const context = await browser.newContext();
  await context.addInitScript(() => {
    addEventListener("pageshow", (e) => { if (e.persisted) window.__restored = true; });
    if (location.pathname !== "/prerendered/") return;
    let prerendering = true;
    Object.defineProperty(Document.prototype, "prerendering", { configurable: true, get: () => prerendering });
    Object.defineProperty(Document.prototype, "visibilityState", { configurable: true, get: () => (prerendering ? "hidden" : "visible") });
    window.__activate = () => {
      prerendering = false;
      document.dispatchEvent(new Event("prerenderingchange"));
      document.dispatchEvent(new Event("visibilitychange"));
    };
  });
  const page = await context.newPage();
  const mark = (step) =>
    page.evaluate(([o, s]) => fetch(`${o}/health?step=${s}`, { mode: "no-cors", credentials: "omit" }).then(() => {}, () => {}), [ingest, step]);
  let restored = null;
  // Opens `url`, goes to another page, and comes back: whether it came back from the
  // back/forward cache.
  const leaveAndComeBack = async (url) => {
    await page.goto(url);
    await page.waitForTimeout(1000);
    await page.goto(`${site}/bf/two/`);
    await page.waitForTimeout(1000);
    await page.goBack({ waitUntil: "commit" });
    await page.waitForTimeout(1500);
    return page.evaluate(() => window.__restored === true);
  };
  let threw = null;
  let anchorRestored = null;

  for (const walk of walks) {
    if (walk === "prerender") {
      await page.goto(`${site}/prerendered/`);
      // A single-page app's router starts while the page is prerendered, and writes its URL;
      // the page's code tracks an event.
      await page.evaluate(() => history.replaceState(null, "", location.href));
      await page.evaluate(() => window.millimetric.track("prerender_ready"));
      await page.waitForTimeout(1500);
      await mark("activate");
      await page.evaluate(() => window.__activate());
      await page.waitForTimeout(1500);
    } else if (walk === "bfcache") {
      restored = await leaveAndComeBack(`${site}/bf/one/`);
    } else if (walk === "burst") {
      await page.goto(`${site}/burst/`);
      await page.waitForTimeout(1000);
      // Waits until each event's request has been answered (a refused one is sent again).
      const answered = new Set();
      page.on("requestfinished", (r) => {
        if (r.url() !== `${ingest}/collect`) return;
        try {
          const ev = JSON.parse(r.postData() || "{}");
          if (ev.name === "burst") answered.add(ev.props.n);
        } catch (e) { /* not an event of the burst */ }
      });
      await page.evaluate((n) => {
        for (let i = 0; i < n; i++) window.millimetric.track("burst", { n: i, a: "a".repeat(450), b: "b".repeat(450) });
      }, BURST);
      for (let t = 0; t < 100 && answered.size < BURST; t++) await page.waitForTimeout(100);
    } else if (walk === "hostile") {
      await page.goto(`${site}/hostile/`);
      await page.waitForTimeout(500);
      threw = await page.evaluate(() => {
        const calls = [
          () => { const o = { plan: "pro" }; o.self = o; window.millimetric.track("cyclic", o); },
          () => window.millimetric.track("bigint", { n: 1n }),
          () => window.millimetric.track("getter", { get boom() { throw new Error("a getter that throws"); } }),
        ];
        return calls.map((call) => { try { call(); return null; } catch (e) { return String(e); } }).filter((e) => e !== null);
      });
      await page.waitForTimeout(1500);
    } else if (walk === "hidden") {
      await page.goto(`${site}/hidden/`);
      await page.waitForTimeout(500);
      await page.evaluate(() => {
        Object.defineProperty(Document.prototype, "visibilityState", { configurable: true, get: () => "hidden" });
        Object.defineProperty(Document.prototype, "hidden", { configurable: true, get: () => true });
        document.dispatchEvent(new Event("visibilitychange"));
        history.pushState({}, "", "/hidden/next");
      });
      await page.waitForTimeout(300);
      await mark("hidden-mark");
      await page.waitForTimeout(1500);
    } else if (walk === "anchor") {
      await page.goto(`${site}/hash/#/first`);
      await page.waitForTimeout(500);
      await page.click("#hash-anchor");
      await page.waitForTimeout(1500);
      await page.goBack();
      await page.waitForTimeout(1500);
    } else if (walk === "anchor-restore") {
      // From another document first: a goto that changes only the fragment loads no page.
      await page.goto(`${site}/elsewhere/`);
      anchorRestored = await leaveAndComeBack(`${site}/hash/restore/#details`);
    } else {
      throw new Error(`no walk named ${walk}`);
    }
  }

  console.log(JSON.stringify({ aidBefore: await page.evaluate(() => localStorage.getItem("mm_aid")), restored, threw, anchorRestored }));
} finally {
  await browser.close();
}
