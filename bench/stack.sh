# The local stack for the benchmarks that drive it (bench/cost, bench/faults, bench/load).
# Source it after scripts/lib.sh, with TMP (a scratch directory) and PIDS (an array) set.

# Waits until something listens on 127.0.0.1:PORT.
wait_port() { local i; for i in $(seq 1 6000); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.02; done; die "nothing listens on $1"; }

# stack_clickhouse PORT: ClickHouse on PORT (state under $TMP/ch), migrated, and the dev keys
# in the edge Worker's local KV (persisted under $TMP/w; stack_keys for another).
stack_clickhouse() {
  cargo build -q --release --bin migrate --bin dev-keys
  MM_CH_HTTP_PORT=$1 MM_CH_STATE="$TMP/ch" scripts/clickhouse/ctl start >/dev/null
  "$CARGO_TARGET_DIR/release/migrate" --url "http://127.0.0.1:$1" --database millimetric >/dev/null
  "$CARGO_TARGET_DIR/release/dev-keys" > "$TMP/keys.json"
  stack_keys w
}

# stack_keys NAME: the dev keys in the local KV an edge Worker persisting under $TMP/NAME reads.
stack_keys() {
  node_modules/.bin/wrangler kv bulk put --config workers/edge/wrangler.toml --local --persist-to "$TMP/$1" --binding KEYS "$TMP/keys.json" >/dev/null 2>&1
}

# stack_worker DIR PORT NAME [wrangler args...]: `wrangler dev` of the Worker in DIR on PORT (its
# inspector on PORT+1000), in a process group of its own, persisting under $TMP/NAME and logging
# to $TMP/NAME.log; its pid in WORKER_PID (and PIDS). Waits until it listens.
stack_worker() {
  local dir="$1" port="$2" name="$3"; shift 3
  ( cd "$MM_ROOT/$dir" && exec setsid "$MM_ROOT/node_modules/.bin/wrangler" dev --local --ip 127.0.0.1 --port "$port" --inspector-port $((port + 1000)) \
      --persist-to "$TMP/$name" --show-interactive-dev-session=false --log-level warn "$@" >"$TMP/$name.log" 2>&1 ) &
  WORKER_PID=$!
  PIDS+=("$WORKER_PID")
  wait_port "$port"
}
