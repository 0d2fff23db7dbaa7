# Shared by bench/mcp and bench/query (sourced, not run): a ClickHouse and the read Worker
# under `wrangler dev`, with the dev keys and the query rate limit out of the way.
# Before sourcing: CH_PORT, PORT. Defines TMP, WPID, the EXIT trap, and
#   start_clickhouse      ClickHouse 18.16 on CH_PORT with the migrations applied
#   start_read_worker     the built read Worker on PORT (this run's config only raises the
#                         query rate limit: the benchmarks ask more than 120 a minute)
TMP="$(mktemp -d)"
WPID=""
cleanup() {
  if [ -n "$WPID" ]; then kill -TERM -- "-$WPID" 2>/dev/null || true; sleep 1; kill -KILL -- "-$WPID" 2>/dev/null || true; fi
  MM_CH_HTTP_PORT=$CH_PORT MM_CH_STATE="$TMP/ch" scripts/clickhouse/ctl stop >/dev/null 2>&1 || true
  rm -rf "$TMP"
}
trap cleanup EXIT

start_clickhouse() {
  MM_CH_HTTP_PORT=$CH_PORT MM_CH_STATE="$TMP/ch" scripts/clickhouse/ctl start >/dev/null
  cargo run -q --release --bin migrate -- --url "http://127.0.0.1:$CH_PORT" --database millimetric >/dev/null
}

start_read_worker() {
  scripts/build-worker workers/read >/dev/null
  cargo run -q --bin dev-keys > "$TMP/keys.json"
  node_modules/.bin/wrangler kv bulk put --config workers/read/wrangler.toml --local --persist-to "$TMP/state" --binding KEYS "$TMP/keys.json" >/dev/null 2>&1 \
    || die "could not seed the dev keys into the read Worker's KV"
  python3 - "$MM_ROOT/workers/read" "$TMP/wrangler.toml" <<'PY'
import sys
src, out = sys.argv[1], sys.argv[2]
text, lines, skip = open(f"{src}/wrangler.toml").read(), [], False
for line in text.splitlines():
    t = line.strip()
    if t.startswith("["):
        skip = t == "[build]"
    if skip:
        continue
    if t.startswith("main = "):
        line = f'main = "{src}/build/index.js"'
    line = line.replace("simple = { limit = 120, period = 60 }", "simple = { limit = 100000000, period = 60 }")
    lines.append(line)
open(out, "w").write("\n".join(lines) + "\n")
PY
  grep -q 'limit = 100000000' "$TMP/wrangler.toml" || die "could not raise the rate limit in the bench config"
  setsid node_modules/.bin/wrangler dev --config "$TMP/wrangler.toml" --local --ip 127.0.0.1 --port $PORT --inspector-port $((PORT + 1000)) \
    --persist-to "$TMP/state" --var "CLICKHOUSE_URL:http://127.0.0.1:$CH_PORT" --var "CLICKHOUSE_READ_PASSWORD:${MM_CH_PASSWORD:-millimetric-dev}" \
    --var MM_ENV:development --show-interactive-dev-session=false >"$TMP/wrangler.log" 2>&1 </dev/null &
  WPID=$!
  for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break; sleep 0.3; done
  curl -sf "http://127.0.0.1:$PORT/health" >/dev/null || { cat "$TMP/wrangler.log"; die "the read Worker did not start"; }
}
