//! A body's JSON is bounded in memory, not only in bytes: a small compressed body can decode to
//! millions of tiny values (`[0,0,0,...]`), and a tree of them takes many times its bytes. Every
//! way in refuses such a body before it builds the tree, in memory a fraction of the isolate's
//! 128 MB (measured here by counting the test's own allocations).
use millimetric_core::compat;
use millimetric_core::ingest::event::{parse_envelope, LIMITS};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;

struct Counting;
static NOW: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let now = NOW.fetch_add(l.size(), Relaxed) + l.size();
        PEAK.fetch_max(now, Relaxed);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        NOW.fetch_sub(l.size(), Relaxed);
        System.dealloc(p, l)
    }
}

#[global_allocator]
static A: Counting = Counting;
/// The tests share the counters: one at a time.
static ONE: Mutex<()> = Mutex::new(());

/// What `f` allocates at most beyond what was live when it started.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let start = NOW.load(Relaxed);
    PEAK.store(start, Relaxed);
    let out = f();
    (out, PEAK.load(Relaxed) - start)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

const BUDGET: usize = 48 << 20;

/// Bodies at each protocol's decoded cap, of values as small as JSON writes them.
fn hostile(max_bytes: usize) -> Vec<Vec<u8>> {
    let n = max_bytes / 2 - 2;
    let array = format!("[{}0]", "0,".repeat(n)).into_bytes();
    let batch_of_one = format!("{{\"batch\":[[{}0]]}}", "0,".repeat(n - 8)).into_bytes();
    // Unique keys of four letters or digits: 9 bytes an entry.
    const ABC: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let keys = (max_bytes - 16) / 9;
    let mut object = String::from("{\"a\":{");
    for i in 0..keys {
        let k: String = [i / 238_328, i / 3_844 % 62, i / 62 % 62, i % 62].iter().map(|&d| ABC[d % 62] as char).collect();
        object.push_str(&format!("\"{k}\":0,"));
    }
    object.push_str("\"z\":0}}");
    vec![array, batch_of_one, object.into_bytes()]
}

#[test]
fn a_posthog_body_of_tiny_values_is_refused_in_bounded_memory() {
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    for body in hostile(compat::POSTHOG_LIMITS.max_decoded_bytes) {
        assert!(body.len() <= compat::POSTHOG_LIMITS.max_decoded_bytes);
        let (answer, peak) = peak_of(|| compat::posthog::parse(&body, now_ms(), None).map(|_| ()));
        assert!(peak < BUDGET, "{} MiB to refuse a {} MiB body", peak >> 20, body.len() >> 20);
        let e = answer.expect_err("refused");
        assert_eq!((e.status, e.code), (413, "too_many_values"), "{e:?}");
    }
}

#[test]
fn a_collect_body_of_tiny_values_is_refused_in_bounded_memory() {
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    for body in hostile(LIMITS.max_decoded_bytes) {
        let (answer, peak) = peak_of(|| parse_envelope(&body, &LIMITS).map(|_| ()));
        // Within the bound either way: the 1 MiB body holds fewer values than the cap.
        assert!(peak < BUDGET, "{} MiB for a {} KiB body ({answer:?})", peak >> 20, body.len() >> 10);
    }
}

/// A dense batch a real SDK may send still goes in: 2,500 PostHog events of 100 properties
/// (posthog-python's batches are 100 events by default, posthog-js's fewer).
#[test]
fn a_full_batch_of_real_events_is_taken() {
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let props: String = (0..100).map(|i| format!("\"p{i}\":{i},")).collect();
    let event = format!("{{\"event\":\"e\",\"distinct_id\":\"d\",\"properties\":{{{props}\"$lib\":\"posthog-python\"}}}}");
    let body = format!("{{\"api_key\":\"phc_x\",\"batch\":[{}]}}", vec![event; 2_500].join(","));
    assert!(body.len() <= compat::POSTHOG_LIMITS.max_decoded_bytes);
    compat::posthog::parse(body.as_bytes(), now_ms(), None).expect("taken");
}

/// Plausible's `p` may be a JSON string holding JSON: it is bounded in values as a body is, and
/// a `p` past the bound is left out, not parsed (the event is kept).
#[test]
fn a_plausible_props_string_of_tiny_values_is_not_parsed() {
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let inner = format!("[{}0]", "0,".repeat((LIMITS.max_decoded_bytes * 2) / 2 - 64));
    let body = serde_json::json!({"n": "x", "u": "https://a.com/", "d": "a.com", "p": inner}).to_string();
    assert!(body.len() <= compat::LIMITS.max_decoded_bytes, "{}", body.len());
    let (answer, peak) = peak_of(|| compat::plausible::parse(body.as_bytes()).map(|r| format!("{:?}", r.message)));
    assert!(peak < 16 << 20, "{} MiB to read a {} KiB body", peak >> 20, body.len() >> 10);
    assert!(answer.expect("the event is kept").contains("\"props\": Object {}"));
}
