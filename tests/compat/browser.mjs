// Drives Debian's Chromium (headless) through three pages of www.site.test, each running one
// vendor's browser SDK from the npm registry (posthog-js, @plausible-analytics/tracker,
// @segment/analytics-next) pointed at the ingest host ingest.site.test (a recording proxy in
// front of the edge Worker; both names mapped to loopback). On each page: the first pageview,
// a client-side navigation, a custom event. It prints what each page saw (cookies, errors) as
// JSON; tests/e2e_compat.rs judges what reached the ingest host and what was stored.
// Usage: node browser.mjs <site origin> <ingest origin> <run>
import { chromium } from 'playwright-core'

const [site, ingest, run] = process.argv.slice(2)
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--no-proxy-server', '--host-resolver-rules=MAP *.site.test 127.0.0.1', '--disable-background-networking'],
})
const CHROME = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36'
const out = {}
const requests = []
try {
  for (const sdk of ['ph', 'pl', 'seg']) {
    // A desktop Chrome's user agent: headless Chromium's own says HeadlessChrome, which
    // posthog-js (rightly) drops as a bot before sending.
    const context = await browser.newContext({ userAgent: CHROME })
    // The site's own session cookie, for the whole site: an SDK that sent credentials would
    // carry it to the ingest host on the subdomain.
    await context.addCookies([{ name: 'site_session', value: 'cookie-secret-8842', domain: '.site.test', path: '/' }])
    // Plausible's tracker skips webdriver-driven browsers unless the page opts in.
    await context.addInitScript(() => { window.__plausible = true })
    const page = await context.newPage()
    const errors = []
    page.on('pageerror', (e) => errors.push(String(e)))
    // On stderr, shown when the run fails: what the page logged and asked for.
    page.on('console', (m) => console.error(`[${sdk}] console.${m.type()}: ${m.text()}`))
    page.on('request', (r) => {
      console.error(`[${sdk}] ${r.method()} ${r.url()}`)
      requests.push({ sdk, method: r.method(), url: r.url(), type: r.resourceType() })
    })
    page.on('requestfailed', (r) => console.error(`[${sdk}] failed ${r.url()}: ${r.failure()?.errorText}`))
    const ingested = () => page.waitForResponse((r) => r.url().startsWith(ingest) && r.request().method() === 'POST', { timeout: 30000 })
    let next = ingested()
    const opened = Date.now()
    await page.goto(`${site}/${sdk}/${run}/?utm_source=browser-test`)
    await page.waitForFunction(() => window.sdkReady === true, null, { timeout: 30000 })
    await next
    if (sdk === 'ph') {
      // Control: a request of the page's own with credentials does carry the site's cookie to
      // the ingest host, so the absence of one on the SDKs' requests means something.
      await page.evaluate((o) => fetch(`${o}/health`, { credentials: 'include', mode: 'no-cors' }).then(() => {}, () => {}), ingest)
    }
    await page.waitForTimeout(500)
    next = ingested()
    await page.click('#spa')
    await page.waitForTimeout(300)
    await page.evaluate(() => window.sendSignup())
    await next
    await page.waitForTimeout(1500)
    // analytics-next sends its usage metrics every 30 s from its start: the page stays open
    // until they have gone (to whichever host), at most 60 s, so a request to any host but the
    // site's and the ingest host's is seen; `metricsSent` says they went.
    let metricsSent = null
    if (sdk === 'seg') {
      const sent = () => requests.some((r) => r.sdk === 'seg' && r.url.endsWith('/v1/m'))
      while (!sent() && Date.now() < opened + 60000) await page.waitForTimeout(500)
      metricsSent = sent()
    }
    out[sdk] = { metricsSent, cookie: await page.evaluate(() => document.cookie), errors, url: page.url() }
    await context.close()
  }
} finally {
  await browser.close()
}
console.log(JSON.stringify({ ...out, requests }))
