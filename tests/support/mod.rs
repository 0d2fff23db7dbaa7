//! End-to-end harness: a real ClickHouse server and `wrangler dev` (workerd) started by the
//! test itself on ports of its own (`ports`), with a fresh state directory; both are stopped
//! by PID (process group) when the `Stack` is dropped, pass or fail.
#![allow(dead_code)]

pub mod events;
pub mod ports;
pub mod proxy;
pub mod rng;
pub use ports::free_port;

use millimetric_core::keys::KeyRecord;
use millimetric_tools::clickhouse_client::Client;
use millimetric_tools::dev_keys;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ADMIN_TOKEN: &str = "test-admin-token";
pub const CH_PASSWORD: &str = "millimetric-dev";

pub struct Stack {
    pub root: PathBuf,
    pub state: PathBuf,
    pub port: u16,
    pub ch_port: u16,
    ch_tcp_port: u16,
    inspector_port: u16,
    wrangler: Option<Child>,
    extra_vars: Vec<(String, String)>,
    geo_db: Option<PathBuf>,
    /// Key records to seed, and whether each is stored with its metadata (as the Worker writes
    /// them) or without (as records written before metadata was).
    extra_keys: Vec<(String, KeyRecord, bool)>,
}

pub struct Reply {
    pub status: u16,
    pub body: serde_json::Value,
    pub headers: Vec<(String, String)>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

/// Whether `cond` holds within `timeout`, asking every 200 ms.
pub fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn fixtures() -> PathBuf {
    millimetric_tools::fixtures_dir()
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where scripts/setup keeps what it installs (`MM_CACHE`, else ~/.cache/millimetric).
pub fn cache_dir() -> PathBuf {
    std::env::var_os("MM_CACHE").map(Into::into).unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/millimetric"))
}

/// A client program that prints one JSON value: run, checked, its JSON.
pub fn run_json(cmd: &mut Command) -> serde_json::Value {
    let out = cmd.output().unwrap_or_else(|e| panic!("could not run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed:\n{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{cmd:?} printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// How often a server is started on new ports before its start counts as failed.
const START_ATTEMPTS: u32 = 5;

struct StartError {
    port_taken: bool,
    output: String,
}

impl StartError {
    /// A server that exited with `logs`: its ports were taken if its output says it could not
    /// listen on them.
    fn from_logs(logs: String) -> StartError {
        StartError { port_taken: logs.contains("Address already in use") || logs.contains("EADDRINUSE"), output: logs }
    }
}

/// Starts `what` with `try_start`, which takes new ports each time it is called, again (up to
/// START_ATTEMPTS times) while the ones it took turn out to be taken.
fn start_on_free_ports<T>(what: &str, mut try_start: impl FnMut() -> Result<T, StartError>) -> T {
    for attempt in 1..=START_ATTEMPTS {
        match try_start() {
            Ok(started) => return started,
            Err(e) if attempt < START_ATTEMPTS && e.port_taken => eprintln!("{what}: ports taken, trying others:\n{}", e.output),
            Err(e) => panic!("{what} did not start:\n{}", e.output),
        }
    }
    unreachable!("the last attempt returns or panics")
}

/// How many times a `wrangler --local` state command is tried when the local state answers 500.
const LOCAL_STATE_ATTEMPTS: usize = 4;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("could not run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed:\n{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What a test's stack starts with, and the one way to start it:
/// `Stack::named("name")`, then any of `.var(k, v)`, `.geo(db)`, `.key(raw, record)`, `.start()`.
pub struct StackSpec {
    name: String,
    vars: Vec<(String, String)>,
    geo_db: Option<PathBuf>,
    keys: Vec<(String, KeyRecord, bool)>,
}

impl StackSpec {
    /// A `--var` for the edge Worker (`MM_ENV` replaces the default `development`).
    pub fn var(mut self, key: &str, value: &str) -> Self {
        self.vars.push((key.to_string(), value.to_string()));
        self
    }

    /// `db` as the R2 object `city.mmdb` of the `GEO` bucket, or no such object (by default
    /// MaxMind's test City database, whose data never changes: 81.2.69.142 is GB / England /
    /// London).
    pub fn geo(mut self, db: Option<&Path>) -> Self {
        self.geo_db = db.map(Path::to_path_buf);
        self
    }

    /// A key record of the test's own next to the dev keys (e.g. a publishable key whose
    /// allowed origin is the test's page).
    pub fn key(mut self, raw: &str, record: KeyRecord) -> Self {
        self.keys.push((raw.to_string(), record, true));
        self
    }

    /// A key record stored without its KV metadata, as records written before it was.
    pub fn unlabelled_key(mut self, raw: &str, record: KeyRecord) -> Self {
        self.keys.push((raw.to_string(), record, false));
        self
    }

    /// ClickHouse with the migrations, the keys seeded, the edge Worker under `wrangler dev`.
    pub fn start(self) -> Stack {
        Stack::start_full(&self.name, self.vars, self.geo_db, self.keys)
    }
}

impl Stack {
    /// `name` keeps state dirs apart; the ports are the harness's own (`ports::free_port`).
    pub fn named(name: &str) -> StackSpec {
        StackSpec {
            name: name.to_string(),
            vars: Vec::new(),
            geo_db: Some(fixtures().join("mmdb/GeoIP2-City-Test.mmdb")),
            keys: Vec::new(),
        }
    }

    fn start_full(
        name: &str,
        extra_vars: Vec<(String, String)>,
        geo_db: Option<PathBuf>,
        extra_keys: Vec<(String, KeyRecord, bool)>,
    ) -> Stack {
        let root = root();
        assert!(root.join("node_modules/.bin/wrangler").exists(), "wrangler is not installed: run scripts/test (or scripts/setup) first");
        let state = std::env::temp_dir().join(format!("mm-e2e-{name}"));
        let _ = std::fs::remove_dir_all(&state);
        std::fs::create_dir_all(&state).unwrap();
        let mut stack =
            Stack { root, state, port: 0, ch_port: 0, ch_tcp_port: 0, inspector_port: 0, wrangler: None, extra_vars, geo_db, extra_keys };
        stack.start_clickhouse_on_free_ports();
        let applied =
            millimetric_tools::migrate::run(&stack.ch_server(), "millimetric", &stack.root.join("migrations")).expect("migrations apply");
        assert!(!applied.is_empty(), "a fresh server gets every migration");
        stack.seed_keys();
        stack.start_worker();
        stack
    }

    fn ch_env(&self, cmd: &mut Command) {
        cmd.env("MM_CH_HTTP_PORT", self.ch_port.to_string())
            .env("MM_CH_TCP_PORT", self.ch_tcp_port.to_string())
            .env("MM_CH_STATE", self.state.join("clickhouse"))
            .env("MM_CH_EXCLUSIVE", "1");
    }

    /// The first start: on new ports each time the ones picked turn out to be taken.
    fn start_clickhouse_on_free_ports(&mut self) {
        start_on_free_ports("clickhouse", || {
            (self.ch_port, self.ch_tcp_port) = (free_port(), free_port());
            self.try_start_clickhouse(None)
        })
    }

    /// A restart, on the ports the Worker already knows.
    pub fn start_clickhouse(&self) {
        if let Err(e) = self.try_start_clickhouse(None) {
            panic!("clickhouse did not start:\n{}", e.output);
        }
    }

    fn try_start_clickhouse(&self, password: Option<&str>) -> Result<(), StartError> {
        let mut cmd = Command::new(self.root.join("scripts/clickhouse/ctl"));
        cmd.arg("start");
        self.ch_env(&mut cmd);
        if let Some(p) = password {
            cmd.env("MM_CH_PASSWORD", p);
        }
        let out = cmd.output().unwrap_or_else(|e| panic!("could not run {cmd:?}: {e}"));
        if out.status.success() {
            return Ok(());
        }
        let output = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        Err(StartError { port_taken: out.status.code() == Some(3), output })
    }

    /// Restart ClickHouse with the Worker's user under another password (a rotation the
    /// Worker's secret has not caught up with), or back under the right one.
    pub fn restart_clickhouse_with_password(&self, password: &str) {
        self.stop_clickhouse();
        if let Err(e) = self.try_start_clickhouse(Some(password)) {
            panic!("clickhouse did not start:\n{}", e.output);
        }
    }

    pub fn stop_clickhouse(&self) {
        let mut cmd = Command::new(self.root.join("scripts/clickhouse/ctl"));
        cmd.arg("stop");
        self.ch_env(&mut cmd);
        run(&mut cmd);
    }

    pub fn ch_server(&self) -> Client {
        Client::new(&format!("http://127.0.0.1:{}", self.ch_port))
    }

    pub fn ch(&self) -> Client {
        self.ch_server().with_database("millimetric")
    }

    pub fn wrangler_state(&self) -> PathBuf {
        self.state.join("wrangler")
    }

    fn seed_keys(&self) {
        let file = self.state.join("keys.json");
        let mut items: Vec<serde_json::Value> = serde_json::from_str(&dev_keys::bulk_json()).unwrap();
        for (raw, rec, with_metadata) in &self.extra_keys {
            let mut item = dev_keys::bulk_item(raw, rec);
            if !with_metadata {
                item.as_object_mut().unwrap().remove("metadata");
            }
            items.push(item);
        }
        std::fs::write(&file, serde_json::to_string(&items).unwrap()).unwrap();
        self.wrangler_local(&["kv", "bulk", "put", file.to_str().unwrap(), "--binding", "KEYS"]);
        // The geo database for forwarded IPs, in local R2 (bucket `millimetric-geo` of wrangler.toml).
        let Some(geo_db) = &self.geo_db else { return };
        assert!(geo_db.exists(), "{}: missing; run scripts/setup", geo_db.display());
        self.wrangler_local(&["r2", "object", "put", "millimetric-geo/city.mmdb", "--file", geo_db.to_str().unwrap()]);
    }

    /// `wrangler ARGS --local --persist-to STATE` in the edge Worker's folder (its bindings).
    /// The CLI reads the state the running `wrangler dev` writes; now and then its local KV
    /// answers `500 Internal Server Error` mid-write, so that (and only that) is asked again.
    fn wrangler_local(&self, args: &[&str]) -> String {
        let attempt = || {
            Command::new(self.root.join("node_modules/.bin/wrangler"))
                .current_dir(self.edge_dir())
                .env("WRANGLER_SEND_METRICS", "false")
                .args(args)
                .args(["--local", "--persist-to"])
                .arg(self.wrangler_state())
                .output()
                .unwrap_or_else(|e| panic!("could not run wrangler {args:?}: {e}"))
        };
        for _ in 1..LOCAL_STATE_ATTEMPTS {
            let out = attempt();
            let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            if out.status.success() || !said.contains("500 Internal Server Error") {
                assert!(out.status.success(), "wrangler {args:?} failed:\n{said}");
                return String::from_utf8_lossy(&out.stdout).into_owned();
            }
            eprintln!("wrangler {args:?}: the local state answered 500; asking again");
            std::thread::sleep(Duration::from_millis(500));
        }
        let out = attempt();
        assert!(
            out.status.success(),
            "wrangler {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Every key of the edge Worker's KV `binding`, as its local state holds them.
    pub fn kv_keys(&self, binding: &str) -> Vec<String> {
        self.kv_list(binding, "").iter().filter_map(|k| k["name"].as_str().map(str::to_string)).collect()
    }

    /// The edge Worker's KV `binding` as its local state lists it (`name`, `expiration`, `metadata`), the
    /// keys starting with `prefix`.
    pub fn kv_list(&self, binding: &str, prefix: &str) -> Vec<serde_json::Value> {
        let mut args = vec!["kv", "key", "list", "--binding", binding];
        if !prefix.is_empty() {
            args.extend(["--prefix", prefix]);
        }
        let out = self.wrangler_local(&args);
        let json = &out[out.find('[').unwrap_or(0)..];
        serde_json::from_str(json).unwrap_or_else(|e| panic!("kv key list {binding}: {e}: {out}"))
    }

    /// The value under `key` in the edge Worker's KV `binding`.
    pub fn kv_get(&self, binding: &str, key: &str) -> String {
        self.wrangler_local(&["kv", "key", "get", key, "--binding", binding, "--text"])
    }

    /// Puts `value` under `key` in the edge Worker's KV `binding`.
    pub fn kv_put(&self, binding: &str, key: &str, value: &str) {
        self.wrangler_local(&["kv", "key", "put", key, value, "--binding", binding]);
    }

    /// Puts many entries in one go: `[{"key", "value", "metadata"?, "expiration_ttl"?}]`, as
    /// `wrangler kv bulk put` takes them.
    pub fn kv_bulk_put(&self, binding: &str, entries: &serde_json::Value) {
        let file = self.state.join(format!("bulk-{binding}.json"));
        std::fs::write(&file, entries.to_string()).expect("write the bulk file");
        self.wrangler_local(&["kv", "bulk", "put", file.to_str().expect("a UTF-8 path"), "--binding", binding]);
    }

    /// Deletes these keys in one go.
    pub fn kv_bulk_delete(&self, binding: &str, keys: &[String]) {
        let file = self.state.join(format!("bulk-delete-{binding}.json"));
        std::fs::write(&file, serde_json::to_string(keys).expect("keys")).expect("write the bulk file");
        self.wrangler_local(&["kv", "bulk", "delete", file.to_str().expect("a UTF-8 path"), "--binding", binding, "--force"]);
    }

    /// Puts `value` under `key`, dropped by KV at `expiration` (unix seconds).
    pub fn kv_put_expiring(&self, binding: &str, key: &str, value: &str, expiration: u64) {
        self.wrangler_local(&["kv", "key", "put", key, value, "--binding", binding, "--expiration", &expiration.to_string()]);
    }

    /// When KV drops `key` of `binding` (unix seconds), as its listing says.
    pub fn kv_expiration(&self, binding: &str, key: &str) -> Option<u64> {
        self.kv_list(binding, key).iter().find(|k| k["name"] == key).and_then(|k| k["expiration"].as_u64())
    }

    pub fn log_path(&self) -> PathBuf {
        self.state.join("wrangler.log")
    }

    /// Starts wrangler dev, on new ports each time the ones picked turn out to be taken.
    fn start_worker(&mut self) {
        start_on_free_ports("wrangler dev", || {
            (self.port, self.inspector_port) = (free_port(), free_port());
            self.try_start_worker().map_err(StartError::from_logs)
        })
    }

    fn try_start_worker(&mut self) -> Result<(), String> {
        let log = std::fs::File::create(self.log_path()).unwrap();
        let mut cmd = Command::new(self.root.join("node_modules/.bin/wrangler"));
        cmd.current_dir(self.edge_dir())
            .arg("--config")
            .arg(self.test_config())
            .env("WRANGLER_SEND_METRICS", "false")
            .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
            .args(["dev", "--local", "--ip", "127.0.0.1", "--show-interactive-dev-session=false"])
            // MM_WRANGLER_LOG=debug: wrangler's own log too (its proxy, the inspector), by hand.
            .env("WRANGLER_LOG", std::env::var("MM_WRANGLER_LOG").unwrap_or_else(|_| "log".into()))
            // GET /__scheduled runs the Cron Trigger's handler (retention, erasures re-applied).
            .arg("--test-scheduled")
            .args(["--port", &self.port.to_string(), "--inspector-port", &self.inspector_port.to_string()])
            .arg("--persist-to")
            .arg(self.wrangler_state())
            .args(["--var", &format!("CLICKHOUSE_PASSWORD:{CH_PASSWORD}")])
            .args(["--var", &format!("ADMIN_TOKEN:{ADMIN_TOKEN}")]);
        // ClickHouse as the harness started it, unless a test puts something in between.
        if !self.extra_vars.iter().any(|(k, _)| k == "CLICKHOUSE_URL") {
            cmd.args(["--var", &format!("CLICKHOUSE_URL:http://127.0.0.1:{}", self.ch_port)]);
        }
        // Local development (core/src/config_check.rs), unless a test says otherwise.
        if !self.extra_vars.iter().any(|(k, _)| k == "MM_ENV") {
            cmd.args(["--var", "MM_ENV:development"]);
        }
        for (k, v) in &self.extra_vars {
            cmd.args(["--var", &format!("{k}:{v}")]);
        }
        cmd.stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log).process_group(0);
        self.wrangler = Some(cmd.spawn().expect("start wrangler dev"));
        let deadline = Instant::now() + Duration::from_secs(240);
        while Instant::now() < deadline {
            if let Ok(r) = ureq::get(&self.url("/health")).timeout(Duration::from_secs(2)).call() {
                if r.status() == 200 {
                    return Ok(());
                }
            }
            if let Some(Ok(Some(status))) = self.wrangler.as_mut().map(|c| c.try_wait()) {
                self.wrangler = None;
                return Err(format!("({status})\n{}", self.logs()));
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        panic!("wrangler dev did not answer /health in time:\n{}", self.logs());
    }

    /// wrangler.toml for this run: the Worker scripts/test already built, by absolute path, and
    /// no `[build]` section, so wrangler neither rebuilds nor restarts the Worker mid-test when a
    /// source file changes (it watches `src/` for its custom build).
    fn test_config(&self) -> PathBuf {
        self.test_config_for(&self.edge_dir(), "wrangler.toml")
    }

    /// The edge Worker's crate (its wrangler.toml and build/).
    fn edge_dir(&self) -> PathBuf {
        self.root.join("workers/edge")
    }

    /// The same for the Worker crate in `dir`, written to the state dir as `name`.
    fn test_config_for(&self, dir: &Path, name: &str) -> PathBuf {
        let original = std::fs::read_to_string(dir.join("wrangler.toml")).expect("wrangler.toml");
        let mut out = String::new();
        let (mut in_build, mut in_assets) = (false, false);
        for line in original.lines() {
            let t = line.trim();
            if t.starts_with('[') {
                in_build = t == "[build]";
                in_assets = t == "[assets]";
            }
            if in_build {
                continue;
            }
            if t.starts_with("main = ") {
                out.push_str(&format!("main = {:?}\n", dir.join("build/index.js").display().to_string()));
            } else if let Some(relative) = t.strip_prefix("directory").filter(|_| in_assets).and_then(|r| r.trim_start().strip_prefix('='))
            {
                // The static assets' folder, relative to the crate, not to the state dir.
                let relative = relative.trim().trim_start_matches(['"', '\'']);
                let relative = &relative[..relative.find(['"', '\'']).unwrap_or(relative.len())];
                out.push_str(&format!("directory = {:?}\n", dir.join(relative).display().to_string()));
            } else {
                out.push_str(line);
                out.push('\n');
            }
        }
        assert!(dir.join("build/index.js").exists(), "build the Worker first: scripts/build-worker {}", dir.display());
        let path = self.state.join(name);
        std::fs::write(&path, out).unwrap();
        path
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// How much the Worker has logged so far (for `log_shows_after`).
    pub fn log_len(&self) -> usize {
        self.logs().len()
    }

    /// Whether the log, past byte `offset`, holds `needle` within `timeout`: a line this
    /// step caused, not one an earlier step printed.
    pub fn log_shows_after(&self, offset: usize, needle: &str, timeout: Duration) -> bool {
        eventually(timeout, || self.logs().get(offset..).is_some_and(|l| l.contains(needle)))
    }

    /// Whether the Worker's log holds `needle` within `timeout`. Log lines reach the file
    /// through wrangler's own pipe, so one may land after the effect it reports is visible.
    pub fn log_shows(&self, needle: &str, timeout: Duration) -> bool {
        eventually(timeout, || self.logs().contains(needle))
    }

    /// The `keys` command against this stack's admin API: whether it succeeded, and its JSON.
    pub fn keys_cli(&self, args: &[&str]) -> (bool, serde_json::Value) {
        let out = Command::new(env!("CARGO_BIN_EXE_keys"))
            .env("ADMIN_TOKEN", ADMIN_TOKEN)
            .arg("--url")
            .arg(self.url(""))
            .args(args)
            .output()
            .expect("run the keys command");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        (
            out.status.success(),
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("keys {args:?}: {text}\n{}", String::from_utf8_lossy(&out.stderr))),
        )
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// The Worker's meter (GET /admin/meter, local development only): billable operations so far.
    pub fn meter(&self, what: &str) -> u64 {
        let r = self.request("GET", "/admin/meter", &[("Authorization", &format!("Bearer {ADMIN_TOKEN}"))], b"");
        assert_eq!(r.status, 200, "{:?}", r.body);
        r.body["operations"][what].as_u64().unwrap_or(0)
    }

    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        http_request(&self.url(path), method, headers, body)
    }
}

/// One HTTP request to a local Worker; any status is an answer.
pub fn http_request(url: &str, method: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let reply = http_request_once(url, method, headers, body);
    // wrangler's dev proxy answers this when its runtime was swapped under a request (it retries
    // GET and HEAD itself, and says to resend the rest): the dev stack's, never the Worker's.
    if reply.status == 503 && reply.body.as_str().is_some_and(|b| b.starts_with("Your worker restarted mid-request")) {
        eprintln!("{method} {url}: wrangler's proxy restarted the runtime mid-request; sent again");
        std::thread::sleep(Duration::from_secs(1));
        return http_request_once(url, method, headers, body);
    }
    reply
}

fn http_request_once(url: &str, method: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut req = ureq::request(method, url).timeout(Duration::from_secs(60));
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let resp = match req.send_bytes(body) {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = resp.status();
    let headers = resp.headers_names().into_iter().map(|n| (n.clone(), resp.header(&n).unwrap_or("").to_string())).collect();
    let text = resp.into_string().unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    Reply { status, body, headers }
}

impl Stack {
    /// POST /collect with JSON and the given key as a Bearer token (and extra headers).
    pub fn collect(&self, key: &str, extra: &[(&str, &str)], body: &serde_json::Value) -> Reply {
        let auth = format!("Bearer {key}");
        let mut headers = vec![("Authorization", auth.as_str()), ("Content-Type", "application/json")];
        headers.extend_from_slice(extra);
        self.request("POST", "/collect", &headers, body.to_string().as_bytes())
    }

    /// Poll a `SELECT count() ...` until it reaches `want` or `timeout` passes; the last count.
    pub fn wait_count(&self, sql: &str, want: u64, timeout: Duration) -> u64 {
        let mut last = 0;
        eventually(timeout, || {
            if let Ok(s) = self.ch().query(sql) {
                last = s.trim().parse().unwrap_or(0);
            }
            last >= want
        });
        last
    }

    pub fn query(&self, sql: &str) -> String {
        self.ch().query(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Every line the Worker logged, plus every file wrangler persisted (KV, queues, caches).
    pub fn everything_written(&self) -> Vec<u8> {
        let mut all = self.logs().into_bytes();
        fn walk(dir: &Path, out: &mut Vec<u8>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else if let Ok(b) = std::fs::read(&p) {
                    out.extend_from_slice(&b);
                }
            }
        }
        walk(&self.wrangler_state(), &mut all);
        all
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Some(child) = self.wrangler.as_mut() {
            let pgid = child.id() as i32;
            // The whole group: wrangler and the workerd it started.
            let _ = Command::new("kill").args(["-s", "TERM", "--", &format!("-{pgid}")]).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = Command::new("kill").args(["-s", "KILL", "--", &format!("-{pgid}")]).status();
            let _ = child.wait();
        }
        self.stop_clickhouse();
    }
}

pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// A moment `ago` before now (the run's clock), whole seconds: the RFC 3339 text a client
/// sends and the `YYYY-MM-DD hh:mm:ss` ClickHouse answers with. Tests never pin a date that
/// expires: the ingest contract refuses timestamps older than 30 days.
pub fn time_ago(ago: Duration) -> (String, String) {
    let t = time::OffsetDateTime::now_utc() - ago;
    let t = t.replace_nanosecond(0).expect("0 ns is valid");
    let rfc = t.format(&time::format_description::well_known::Rfc3339).expect("formats");
    let ch = t.format(time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]")).expect("formats");
    (rfc, ch)
}

impl Stack {
    pub fn post_chunked(&self, path: &str, headers: &[(&str, &str)], total: usize) -> (u16, String, usize) {
        post_chunked(self.port, path, headers, total)
    }

    /// Resident memory (KiB) of the workerd processes this stack's wrangler started.
    pub fn workerd_rss_kib(&self) -> u64 {
        workerd_rss_kib(self.wrangler.as_ref().map(|c| c.id()).unwrap_or_default())
    }
}

/// POST `total` bytes to `path` on the local Worker at `port` as a chunked body (no
/// Content-Length), in 64 KiB chunks, over a raw socket so an early answer is read even if the
/// server stops reading. Returns the status, the answer's body, and how many bytes were written
/// before the server answered or closed.
pub fn post_chunked(port: u16, path: &str, headers: &[(&str, &str)], total: usize) -> (u16, String, usize) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = format!("POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    let chunk = vec![b' '; 64 * 1024];
    let mut sent = 0;
    s.set_nonblocking(false).unwrap();
    while sent < total {
        let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
        if s.write_all(&framed).is_err() {
            break;
        }
        sent += chunk.len();
    }
    let _ = s.write_all(b"0\r\n\r\n");
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).to_string();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body, sent)
}

/// Resident memory (KiB) of the workerd processes in process group `pgid` (a wrangler's).
pub fn workerd_rss_kib(pgid: u32) -> u64 {
    let pgid = pgid.to_string();
    let mut total = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // pid (comm) state ppid pgrp ...
        let Some(after) = stat.rsplit_once(')').map(|(_, r)| r.to_string()) else { continue };
        let in_group = after.split_whitespace().nth(2) == Some(pgid.as_str());
        if in_group && stat.contains("(workerd)") {
            let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
            total += status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    total
}

/// The read Worker (workers/read) under its own `wrangler dev`, beside a Stack's edge Worker:
/// the same ClickHouse and the same persisted KV (the key records the Stack seeded).
pub struct ReadWorker {
    pub port: u16,
    child: Child,
    log: PathBuf,
}

impl Stack {
    /// The read Worker, on new ports each time the ones picked turn out to be taken.
    pub fn start_read(&self) -> ReadWorker {
        self.start_read_with(&[])
    }

    /// The read Worker with more `--var`s (`(name, value)`).
    pub fn start_read_with(&self, vars: &[(&str, &str)]) -> ReadWorker {
        start_on_free_ports("the read Worker", || self.try_start_read(free_port(), free_port(), vars).map_err(StartError::from_logs))
    }

    fn try_start_read(&self, port: u16, inspector_port: u16, vars: &[(&str, &str)]) -> Result<ReadWorker, String> {
        let dir = self.root.join("workers/read");
        let log_path = self.state.join("read.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let mut cmd = Command::new(self.root.join("node_modules/.bin/wrangler"));
        cmd.current_dir(&dir)
            .arg("--config")
            .arg(self.test_config_for(&dir, "wrangler-read.toml"))
            .env("WRANGLER_SEND_METRICS", "false")
            .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
            .args(["dev", "--local", "--ip", "127.0.0.1", "--show-interactive-dev-session=false"])
            .args(["--port", &port.to_string(), "--inspector-port", &inspector_port.to_string()])
            .arg("--persist-to")
            .arg(self.wrangler_state())
            .args(["--var", &format!("CLICKHOUSE_URL:http://127.0.0.1:{}", self.ch_port)])
            .args(["--var", &format!("CLICKHOUSE_READ_PASSWORD:{CH_PASSWORD}")])
            .args(["--var", &format!("CLICKHOUSE_USAGE_PASSWORD:{CH_PASSWORD}")])
            .args(["--var", "MM_ENV:development"]);
        for (name, value) in vars {
            cmd.args(["--var", &format!("{name}:{value}")]);
        }
        cmd.stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log).process_group(0);
        let child = cmd.spawn().expect("start wrangler dev for the read Worker");
        // Dropped on every way out but success: the whole group is stopped.
        let mut read = ReadWorker { port, child, log: log_path };
        let url = format!("http://127.0.0.1:{port}/health");
        let deadline = Instant::now() + Duration::from_secs(240);
        while Instant::now() < deadline {
            if let Ok(r) = ureq::get(&url).timeout(Duration::from_secs(2)).call() {
                if r.status() == 200 {
                    return Ok(read);
                }
            }
            if let Ok(Some(status)) = read.child.try_wait() {
                return Err(format!("({status})\n{}", read.logs()));
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        panic!("the read Worker did not answer /health in time:\n{}", read.logs());
    }
}

impl ReadWorker {
    pub fn post_chunked(&self, path: &str, headers: &[(&str, &str)], total: usize) -> (u16, String, usize) {
        post_chunked(self.port, path, headers, total)
    }

    /// Resident memory (KiB) of this Worker's workerd processes.
    pub fn workerd_rss_kib(&self) -> u64 {
        workerd_rss_kib(self.child.id())
    }

    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        http_request(&format!("http://127.0.0.1:{}{path}", self.port), method, headers, body)
    }

    /// POST /v1/query with `key` as the Bearer token.
    pub fn query(&self, key: &str, body: &serde_json::Value) -> Reply {
        let auth = format!("Bearer {key}");
        self.request("POST", "/v1/query", &[("Authorization", &auth), ("Content-Type", "application/json")], body.to_string().as_bytes())
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ReadWorker {
    fn drop(&mut self) {
        let pgid = self.child.id() as i32;
        let _ = Command::new("kill").args(["-s", "TERM", "--", &format!("-{pgid}")]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("kill").args(["-s", "KILL", "--", &format!("-{pgid}")]).status();
        let _ = self.child.wait();
    }
}

/// A Unix time as ClickHouse writes a `DateTime` (UTC): `YYYY-MM-DD hh:mm:ss`.
pub fn ch_time(t: i64) -> String {
    jiff::Timestamp::from_second(t).expect("a time in range").strftime("%Y-%m-%d %H:%M:%S").to_string()
}

/// How long to wait, at `now`, until no midnight of `zone` lies within `margin` either side.
pub fn wait_for_midnight_to_pass(now: jiff::Timestamp, zone: &jiff::tz::TimeZone, margin: Duration) -> Duration {
    let here = now.to_zoned_datetime(zone.clone());
    let start = here.start_of_day().expect("a day has a start");
    let next = here.tomorrow().and_then(|d| d.start_of_day()).expect("a day has a next");
    let since = Duration::from_secs((now.as_second() - start.timestamp().as_second()).max(0) as u64);
    let until = Duration::from_secs((next.timestamp().as_second() - now.as_second()).max(0) as u64);
    if since < margin {
        margin - since
    } else if until < margin {
        until + margin
    } else {
        Duration::ZERO
    }
}

/// For a test whose dates come from one reading of the clock: waits, if need be, until no
/// midnight of these zones lies within `margin` of now, so no day turns while it runs (nor
/// just before: what it placed "a few minutes ago" is still today).
pub fn wait_clear_of_midnight(zones: &[&jiff::tz::TimeZone], margin: Duration) {
    loop {
        let now = jiff::Timestamp::now();
        let wait = zones.iter().map(|z| wait_for_midnight_to_pass(now, z, margin)).max().unwrap_or(Duration::ZERO);
        if wait.is_zero() {
            return;
        }
        eprintln!("waiting {} s for a midnight to pass: this test's days must not turn while it runs", wait.as_secs());
        std::thread::sleep(wait);
    }
}

/// How long to wait, at `now_ms`, until the rest of the current minute is at least `need`: the
/// per-key limiter counts whole minutes (`core/src/rate_limit/window.rs`), and a count that runs
/// across a minute's edge lets one more event through, as the previous minute's weight starts
/// to fall. A wait ends one second into the next minute.
pub fn wait_for_minute_edge_to_pass(now_ms: i64, need: Duration) -> Duration {
    let left = 60_000 - now_ms.rem_euclid(60_000);
    if left as u128 >= need.as_millis() {
        Duration::ZERO
    } else {
        Duration::from_millis(left as u64 + 1_000)
    }
}

/// For a test that counts requests against a per-minute limit: waits, if need be, so that the
/// next `need` all fall in one minute.
pub fn wait_clear_of_minute_edge(need: Duration) {
    let wait = wait_for_minute_edge_to_pass(jiff::Timestamp::now().as_millisecond(), need);
    if !wait.is_zero() {
        eprintln!("waiting {} ms for a minute to turn: this test's limit counts must not span two", wait.as_millis());
        std::thread::sleep(wait);
    }
}

#[cfg(test)]
mod midnight_tests {
    use super::*;

    #[test]
    fn the_wait_clears_midnight_by_the_margin_on_both_sides() {
        let zone = jiff::tz::TimeZone::UTC;
        let midnight = (jiff::Timestamp::now().as_second() / 86_400 + 1) * 86_400;
        let m = Duration::from_secs(600);
        let at = |s: i64| wait_for_midnight_to_pass(jiff::Timestamp::from_second(midnight + s).unwrap(), &zone, m);
        assert_eq!(at(-601), Duration::ZERO);
        assert_eq!(at(-599), Duration::from_secs(1199));
        assert_eq!(at(0), Duration::from_secs(600));
        assert_eq!(at(599), Duration::from_secs(1));
        assert_eq!(at(600), Duration::ZERO);
        assert_eq!(at(43_200), Duration::ZERO);
    }

    #[test]
    fn the_wait_leaves_a_whole_count_inside_one_minute() {
        let minute = (jiff::Timestamp::now().as_millisecond() / 60_000 + 1) * 60_000;
        let need = Duration::from_secs(20);
        let at = |ms: i64| wait_for_minute_edge_to_pass(minute + ms, need);
        assert_eq!(at(0), Duration::ZERO);
        assert_eq!(at(40_000), Duration::ZERO);
        assert_eq!(at(40_001), Duration::from_millis(20_999));
        assert_eq!(at(59_999), Duration::from_millis(1_001));
        // After the wait, the whole `need` lies in the next minute.
        let after = 59_999 + at(59_999).as_millis() as i64;
        assert_eq!(wait_for_minute_edge_to_pass(minute + after, need), Duration::ZERO);
    }
}
