// Drives Debian's Chromium (headless) through the snippet test page and prints what the
// browser saw as JSON: the anonymous id before and after a reload, cookies, and every request
// to /collect. Usage: node drive.mjs <page url>   (run by tests/e2e_snippet.rs)
import { chromium } from "playwright-core";

const pageUrl = process.argv[2];
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  const requests = [];
  const setCookies = [];
  page.on("request", (r) => {
    if (r.url().includes("/collect")) requests.push({ method: r.method(), contentType: r.headers()["content-type"] || "", body: r.postData() || "" });
  });
  page.on("response", async (r) => {
    const h = await r.allHeaders().catch(() => ({}));
    if (h["set-cookie"]) setCookies.push(r.url());
  });
  const collected = () => page.waitForResponse((r) => r.url().includes("/collect") && r.request().method() === "POST", { timeout: 30000 });

  let next = collected();
  await page.goto(pageUrl);
  const first = await next;

  // Values typed into a form and submitted: none of them may leave the page.
  await page.fill("#email", "jane.doe@example.com");
  await page.fill("#card", "4242 4242 4242 4242");
  await page.fill("#password", "hunter2-secret");
  await page.click("#pay");

  next = collected();
  await page.click("#spa");
  await next;

  next = collected();
  await page.evaluate(() => window.millimetric.track("signup", { plan: "pro", seats: 3 }));
  await next;

  const aidBefore = await page.evaluate(() => localStorage.getItem("mm_aid"));
  const documentCookie = await page.evaluate(() => document.cookie);
  next = collected();
  await page.reload();
  await next;
  const aidAfter = await page.evaluate(() => localStorage.getItem("mm_aid"));
  const apiId = await page.evaluate(() => window.millimetric.anonymousId());

  console.log(JSON.stringify({
    firstStatus: first.status(),
    aidBefore, aidAfter, apiId, documentCookie,
    cookies: await context.cookies(),
    setCookies, requests,
  }));
} finally {
  await browser.close();
}
