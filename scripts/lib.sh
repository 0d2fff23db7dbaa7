# Shared settings for the project's scripts. Source it; do not run it.
# Everything a machine keeps between runs (installed tools, cargo target, ClickHouse data)
# lives under MM_CACHE so a fresh clone on the same machine is fast.
set -euo pipefail

MM_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MM_CACHE="${MM_CACHE:-$HOME/.cache/millimetric}"
MM_TOOLS="$MM_CACHE/tools"
export MM_FIXTURES="${MM_FIXTURES:-$MM_CACHE/fixtures}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$MM_CACHE/target}"
export WRANGLER_SEND_METRICS=false
export CLOUDFLARE_CF_FETCH_ENABLED=false
export PATH="$MM_TOOLS/bin:$HOME/.cargo/bin:$PATH"

# Versions pinned here and in Cargo.toml / package.json; bump them together.
WORKER_BUILD_VERSION=0.8.7
WASM_BINDGEN_VERSION=0.2.130

log() { printf '[millimetric] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
