// Drives Debian's Chromium (headless) through the snippet test page and prints what the page
// saw as JSON: the anonymous id before and after a reload, document.cookie and the cookie jar.
// What reached the ingest host (bodies, Cookie headers) is recorded by tests/e2e_snippet.rs
// in front of the Worker: Playwright's view of request headers leaves out the cookies Chromium
// attaches to subresource requests, so a check made here could not fail. It judges nothing:
// the Rust test does, for the real snippet and for broken copies.
// Usage: node drive.mjs <page origin> <ingest origin>
// Both are names under site.test (the ingest host a subdomain of the site), mapped to loopback.
import { chromium } from "playwright-core";

const [site, ingest] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--no-proxy-server", "--host-resolver-rules=MAP *.site.test 127.0.0.1"],
});
try {
  const context = await browser.newContext();
  // The site's own session cookie, for the whole site: a careless snippet (sendBeacon) would
  // carry it to the ingest host on the subdomain.
  await context.addCookies([{ name: "site_session", value: "cookie-secret-8842", domain: ".site.test", path: "/" }]);
  const page = await context.newPage();
  const collected = () => page.waitForResponse((r) => r.url() === `${ingest}/collect` && r.request().method() === "POST", { timeout: 30000 });
  const track = async (name, props) => {
    const next = collected();
    await page.evaluate(([n, p]) => window.millimetric.track(n, p), [name, props]);
    await next;
  };

  // 1. The first page, opened with a fragment (as an OAuth implicit flow leaves one).
  let next = collected();
  await page.goto(`${site}/#token-fragment-4e8a`);
  const first = await next;

  // Control: a request of the page's own that includes credentials does carry the site's
  // cookie to the ingest host, so the absence of one on the snippet's requests means something.
  await page.evaluate((o) => fetch(`${o}/health`, { credentials: "include", mode: "no-cors" }).then(() => {}, () => {}), ingest);

  // 2. Values typed into both forms and left there while the page sends an event. The GET
  // form's box holds a draft first: a value that never becomes part of any address.
  await page.fill("#email", "jane.doe@example.com");
  await page.fill("#card", "4242 4242 4242 4242");
  await page.fill("#password", "hunter2-secret");
  await page.fill("#q", "draft-7c1f");
  await track("typed");

  // 3. Search as you type: replaceState changes only the query, keystroke by keystroke.
  await page.locator("#filter").pressSequentially("filter-typed", { delay: 20 });
  await page.waitForTimeout(1500);
  await track("filtered");

  // 4. A client-side navigation whose title is set a render after the URL.
  next = collected();
  await page.click("#spa");
  await next;

  // 5. An in-page anchor (a fragment change), then an event there.
  await page.click("#faq");
  await page.waitForTimeout(300);
  await track("faq");
  await track("signup", { plan: "pro", seats: 3 });

  // 6. The POST form is submitted (a page load of /checkout), then the GET form with its real
  // query: /search?q=query-5e2a is that page's own address, so it is sent as its URL.
  next = collected();
  await page.click("#pay");
  await next;
  await page.fill("#q", "query-5e2a");
  next = collected();
  await page.click("#find");
  await next;

  // 7. A reload: the same anonymous id.
  const aidBefore = await page.evaluate(() => localStorage.getItem("mm_aid"));
  const documentCookie = await page.evaluate(() => document.cookie);
  next = collected();
  await page.reload();
  await next;
  const aidAfter = await page.evaluate(() => localStorage.getItem("mm_aid"));
  const apiId = await page.evaluate(() => window.millimetric.anonymousId());

  // 8. A hash-routed page (data-hash-routing="true"): #/routes are pages, fragment and all;
  // an in-page #anchor is no route, so nothing is sent for it.
  next = collected();
  await page.goto(`${site}/hash/`);
  await next;
  await page.click("#hash-anchor");
  await page.waitForTimeout(1500);
  next = collected();
  await page.click("#hash-first");
  await next;
  next = collected();
  await page.click("#hash-next");
  await next;

  await page.waitForTimeout(500);
  console.log(JSON.stringify({
    firstStatus: first.status(),
    aidBefore, aidAfter, apiId, documentCookie,
    cookies: (await context.cookies()).map((c) => `${c.name}@${c.domain}`),
  }));
} finally {
  await browser.close();
}
