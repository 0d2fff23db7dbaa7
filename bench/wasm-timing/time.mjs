// Times `enrich` call by call over a varied corpus; prints p50/p90/p99/max in microseconds.
// node time.mjs <dir with wasm-bindgen nodejs output> <browsers.txt> [events]
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
const require = createRequire(import.meta.url);
const [dir, uaFile, count = "20000"] = process.argv.slice(2);
const { enrich } = require(`${dir}/mm_bench_wasm_timing.js`);
const uas = readFileSync(uaFile, "utf8").split("\n").filter(Boolean);
const pages = ["/", "/pricing", "/docs/getting-started", "/blog/2026/11/launch", "/products/blue-widget", "/account/settings"];
const queries = ["", "?utm_source=newsletter&utm_medium=email&utm_campaign=bf26", "?gclid=Cj0KCQiA6Ou5BhCrARIsAPoTxrAX9mJq2Q4yqY0cEv1RkQW8vN3T5pF7sL2dH9kB_aEaAkkLEALw_wcB",
  "?ref=producthunt&page=2", "?email=jane%40example.com&token=abc123def456ghi789jkl012mno345pqr678", "?q=blue+widget&sort=price&fbclid=IwAR2F4-dbP0l7Mn1IawQQGC"];
const refs = [null, "https://www.google.com/", "https://chatgpt.com/", "https://news.ycombinator.com/item?id=1", "https://example.com/", "https://t.co/abc"];
const n = Number(count);
const events = [];
for (let i = 0; i < n; i++) {
  const ev = { type: i % 5 ? "pageview" : "event", url: `https://shop.example.com${pages[i % pages.length]}${queries[(i * 7) % queries.length]}`,
    title: "Example shop", mm_aid: `aid-${i % 997}`, id: `ev-${i}` };
  if (ev.type === "event") { ev.name = "add_to_cart"; ev.props = { plan: "pro", seats: i % 10, trial: i % 2 === 0 }; }
  const r = refs[(i * 3) % refs.length]; if (r) ev.referrer = r;
  events.push([JSON.stringify(ev), uas[(i * 7919) % uas.length]]);
}
const now = Date.now();
for (let i = 0; i < 2000; i++) enrich(events[i % n][0], events[i % n][1], now); // warm-up (tier-up)
const t = new Float64Array(n);
for (let i = 0; i < n; i++) {
  const a = process.hrtime.bigint();
  if (!enrich(events[i][0], events[i][1], now)) throw new Error(`event ${i} failed: ${events[i][0]}`);
  t[i] = Number(process.hrtime.bigint() - a) / 1000;
}
t.sort();
const p = (q) => t[Math.min(n - 1, Math.floor(q * n))].toFixed(1);
console.log(`${n} ${p(0.5)} ${p(0.9)} ${p(0.99)} ${t[n - 1].toFixed(1)} ${uas.length}`);
