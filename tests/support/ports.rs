//! Ports for the servers a test starts. Never a fixed number, and never one in Linux's
//! ephemeral range (32768-60999), where any outgoing connection on the machine (thousands of
//! them from an earlier test, lingering in TIME_WAIT) may hold it. Each test binary walks its
//! own stretch of 12000-31999 (bench/ keeps its fixed ports below), chosen from its name, and takes a port only after binding it
//! once to see that it is free; this process never hands the same port out twice. A server
//! may still lose the race for a port to another process: every start in this harness then
//! tries again on new ports (`Stack::start_*`, `start_read`).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::TcpListener;
use std::sync::Mutex;

/// Ports handed out from here: below the ephemeral range, and (with a ClickHouse TCP port
/// beside an HTTP port) well away from the privileged ones.
pub const LOWEST: u16 = 12_000;
pub const ABOVE_HIGHEST: u16 = 32_000;
/// Each binary starts its walk at one of these slots, so two binaries run side by side
/// rarely even try the same port.
const SLOT: u16 = 500;

static NEXT: Mutex<Option<u16>> = Mutex::new(None);

/// Where this binary's walk starts: a slot picked by the binary's name (cargo names test
/// binaries `NAME-HASH`, so the hash keeps two checkouts' binaries apart too).
fn first_port(binary: &str) -> u16 {
    let mut h = DefaultHasher::new();
    binary.hash(&mut h);
    let slots = (ABOVE_HIGHEST - LOWEST) / SLOT;
    LOWEST + (h.finish() % slots as u64) as u16 * SLOT
}

fn binary_name() -> String {
    std::env::current_exe().ok().and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned())).unwrap_or_default()
}

/// The port after `p` in the walk, wrapping within [LOWEST, ABOVE_HIGHEST).
fn after(p: u16) -> u16 {
    if p + 1 >= ABOVE_HIGHEST {
        LOWEST
    } else {
        p + 1
    }
}

/// A port no one listens on right now, never handed out before by this process.
pub fn free_port() -> u16 {
    let mut next = NEXT.lock().unwrap_or_else(|e| e.into_inner());
    let mut p = next.unwrap_or_else(|| first_port(&binary_name()));
    for _ in LOWEST..ABOVE_HIGHEST {
        let candidate = p;
        p = after(p);
        if TcpListener::bind(("127.0.0.1", candidate)).is_ok() {
            *next = Some(p);
            return candidate;
        }
    }
    panic!("no free port between {LOWEST} and {ABOVE_HIGHEST}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_below_the_ephemeral_range_and_never_repeat() {
        let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
        for p in &ports {
            assert!((LOWEST..ABOVE_HIGHEST).contains(p), "{p}");
            assert!(*p < 32_768, "{p} is in the ephemeral range");
        }
        let mut unique = ports.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ports.len(), "a port handed out twice: {ports:?}");
    }

    #[test]
    fn a_taken_port_is_skipped() {
        let taken = free_port();
        let _hold = TcpListener::bind(("127.0.0.1", taken + 1)).ok();
        let next = free_port();
        assert_ne!(next, taken + 1, "a port someone listens on was handed out");
    }

    #[test]
    fn binaries_start_in_different_slots_within_the_range() {
        let a = first_port("e2e_read-0123456789abcdef");
        let b = first_port("e2e_ingest-0123456789abcdef");
        assert!((LOWEST..ABOVE_HIGHEST).contains(&a) && (LOWEST..ABOVE_HIGHEST).contains(&b));
        assert_ne!(a, b);
        assert_eq!(after(ABOVE_HIGHEST - 1), LOWEST);
    }
}
