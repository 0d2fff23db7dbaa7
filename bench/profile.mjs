// V8's CPU profile of a Worker's isolate under `wrangler dev`, through its inspector (bench/profile).
// usage: node bench/profile.mjs record INSPECTOR_PORT SECONDS OUT.json
//        node bench/profile.mjs summary OUT.json REQUESTS TOP
// `summary` prints the busy samples per request, then the functions with the most samples per
// 1,000 requests, counting each sample once for every function on its stack (inclusive).
import { createRequire } from "node:module";
const WebSocket = createRequire(import.meta.url)("ws"); // miniflare's dependency
import { readFileSync, writeFileSync } from "node:fs";
const [mode, ...args] = process.argv.slice(2);
if (mode === "record") {
  const [port, secs, out] = args;
  const [target] = await (await fetch(`http://127.0.0.1:${port}/json`)).json();
  const ws = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise((ok) => ws.on("open", ok));
  let id = 0;
  const waiting = new Map();
  ws.on("message", (m) => { const d = JSON.parse(m); waiting.get(d.id)?.(d); waiting.delete(d.id); });
  const call = (method, params = {}) => new Promise((ok) => { waiting.set(++id, ok); ws.send(JSON.stringify({ id, method, params })); });
  await call("Profiler.enable");
  await call("Profiler.setSamplingInterval", { interval: 200 });
  await call("Profiler.start");
  await new Promise((ok) => setTimeout(ok, Number(secs) * 1000));
  const { result } = await call("Profiler.stop");
  ws.close();
  writeFileSync(out, JSON.stringify(result.profile));
  process.exit(0);
}
const [file, requestsArg, top] = args;
const profile = JSON.parse(readFileSync(file, "utf8"));
const requests = Number(requestsArg);
const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const name = (n) => `${n.callFrame.functionName.replace(/::h[0-9a-f]{16}$/, "") || "(anonymous)"} ${n.callFrame.url.split("/").pop().split("-")[0]}${process.env.MM_LINES && n.callFrame.url ? `:${n.callFrame.lineNumber}:${n.callFrame.columnNumber}` : ""}`;
const inclusive = new Map();
let busy = 0;
for (const s of profile.samples) {
  if (nodes.get(s).callFrame.functionName !== "(idle)") busy++;
  const seen = new Set();
  for (let x = s; x !== undefined; x = parent.get(x)) seen.add(name(nodes.get(x)));
  for (const k of seen) inclusive.set(k, (inclusive.get(k) ?? 0) + 1);
}
console.log(`profile: ${profile.samples.length} samples, ${busy} busy, over ${requests} requests: ${(busy / requests).toFixed(3)} busy samples a request`);
for (const [k, c] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, Number(top)))
  console.log(`  ${((c / requests) * 1000).toFixed(1).padStart(7)} per 1,000 requests  ${k.slice(0, 140)}`);
// Self time: where the samples end, so the leaves that cost most stand out.
const self = new Map();
for (const s of profile.samples) {
  const k = name(nodes.get(s));
  self.set(k, (self.get(k) ?? 0) + 1);
}
console.log("self (the function a sample ended in):");
for (const [k, c] of [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(top)))
  console.log(`  ${((c / requests) * 1000).toFixed(1).padStart(7)} per 1,000 requests  ${k.slice(0, 140)}`);
