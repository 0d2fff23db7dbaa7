// Segment's and PostHog's own Node SDKs (npm, pinned in package.json) sending to the edge
// Worker, for tests/e2e_compat.rs. Usage: node server.mjs HOST KEY RUN. Prints one JSON line:
// what the SDKs reported as failed (nothing, when all is well).
import { Analytics } from '@segment/analytics-node'
import { PostHog } from 'posthog-node'

const [host, key, run] = process.argv.slice(2)
const failed = []
const tagged = (sdk, props = {}) => ({ sdk, run, ...props })

// Segment: track, page, identify, a batch of 1,000, and one the test proxy answers 503.
const seg = new Analytics({ writeKey: key, host, flushAt: 1000, flushInterval: 1000, maxRetries: 4 })
seg.on('error', (e) => failed.push({ error: String(e?.reason ?? e?.code ?? e) }))
let sdk = 'segment-node'
seg.track({
  userId: `jane+${run}@example.com`,
  event: 'Signed Up',
  properties: tagged(sdk, { plan: 'pro', email: 'jane@example.com' }),
  context: { ip: '81.2.69.142', page: { url: 'https://shop.example.com/signup?utm_source=newsletter' }, campaign: { medium: 'email', name: 'spring' } },
})
seg.track({ anonymousId: `anon-${run}-node`, event: 'Order Completed', properties: tagged(sdk, { revenue: 19.99, currency: 'EUR' }) })
seg.page({
  anonymousId: `anon-${run}-node`,
  name: 'Pricing',
  properties: tagged(sdk, { url: 'https://shop.example.com/pricing', referrer: 'https://www.google.com/', title: 'Pricing' }),
})
seg.identify({ userId: `jane+${run}@example.com`, traits: { email: 'jane@example.com', name: 'Jane Doe' } })
for (let i = 0; i < 1000; i++) seg.track({ anonymousId: `bulk-${run}-${i % 50}`, event: 'bulk', properties: tagged(sdk, { i }) })
await seg.flush()
seg.track({ anonymousId: `anon-${run}-node`, event: 'retry-me', properties: tagged(sdk) })
await seg.closeAndFlush({ timeout: 60000 })

// PostHog: capture, a batch, an identify, gzip (posthog-node's default).
const ph = new PostHog(key, { host, flushAt: 50, flushInterval: 500, fetchRetryCount: 3, disableCompression: false })
ph.on('error', (e) => failed.push({ error: String(e) }))
sdk = 'posthog-node'
ph.capture({ distinctId: `jane+${run}@example.com`, event: 'signed up', properties: tagged(sdk, { plan: 'team', $ip: '81.2.69.142' }) })
for (let i = 0; i < 120; i++) ph.capture({ distinctId: `ph-bulk-${run}-${i % 10}`, event: 'bulk', properties: tagged(sdk, { i }) })
ph.identify({ distinctId: `jane+${run}@example.com`, properties: { email: 'jane@example.com', name: 'Jane Doe' } })
await ph.shutdown(60000)

console.log(JSON.stringify({ failed }))
