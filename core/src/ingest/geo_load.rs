//! When an isolate loads its geo database, and what a request does meanwhile. Pure: the
//! Worker adapter (`workers/edge/src/geo.rs`) asks [`GeoLoad::decide`] with the current time and does
//! what it answers; it reports the load's outcome with [`GeoLoad::finish`].
//!
//! The database is tens of MB and loaded whole into wasm memory, so the rules are:
//! - at most one load at a time in an isolate: two concurrent loads would hold the database
//!   twice and could take the isolate past its 128 MB;
//! - concurrent first requests share that load: the first one loads, the others wait for it
//!   (workerd lets no request resolve another's promise, so waiters ask again on a timer) and
//!   give up waiting after [`Policy::wait_ms`], going on without geo, never loading themselves;
//! - a missing database (no object) is remembered for [`Policy::missing_ms`] and a failed load
//!   is retried with a doubling backoff, so neither costs a fetch per event;
//! - a database larger than [`Policy::max_bytes`] is refused before it is read (it would not
//!   fit in the isolate next to the request's working memory), remembered like a missing one;
//! - a load that never reported back (its request was cancelled) is taken over after
//!   [`Policy::stale_ms`].

/// Limits of the load policy, in milliseconds and bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// How long a missing (or refused) database is remembered before it is looked for again.
    pub missing_ms: i64,
    /// Backoff after the first failed load; doubled per further failure up to `max_backoff_ms`.
    pub first_backoff_ms: i64,
    pub max_backoff_ms: i64,
    /// A load this old without an outcome is presumed dead and may be started again.
    pub stale_ms: i64,
    /// How long a request waits for another request's load before it goes on without geo.
    pub wait_ms: i64,
    /// The largest database this isolate loads (see docs/performance.md, "Geo database and memory").
    pub max_bytes: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            missing_ms: 5 * 60_000,
            first_backoff_ms: 5_000,
            max_backoff_ms: 5 * 60_000,
            stale_ms: 60_000,
            wait_ms: 5_000,
            max_bytes: MAX_DATABASE_BYTES,
        }
    }
}

/// 24 MiB. Measured inside workerd (bench/geo-memory, docs/performance.md, "Geo database and memory"): at
/// 20,000 events the Worker itself needs ~16 MiB of wasm memory and 15-35 MiB of JS heap next
/// to the database, and an isolate has 128 MB (122 MiB) for both. DB-IP Lite Country (7.8 MiB,
/// IPv4+IPv6) leaves ~80 MiB of room; DB-IP Lite City IPv4 (60.1 MiB; its search tree alone
/// is 44 MB) left 8-26 MiB, too little to survive a burst, so a city database is refused
/// (logged) rather than let it take the isolate past its limit.
pub const MAX_DATABASE_BYTES: u64 = 24 * 1024 * 1024;

/// Identifies one load, so a late outcome of an abandoned load cannot overwrite a newer one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(u64);

#[derive(Debug, Clone)]
enum State<T> {
    NotLoaded,
    /// `failures`: how many loads in a row failed before this one (for the next backoff).
    Loading {
        ticket: Ticket,
        started_ms: i64,
        failures: u32,
    },
    Loaded(T),
    /// No database, or one refused as too large, until `until_ms`.
    Missing {
        until_ms: i64,
    },
    /// `failures` loads in a row failed; the next may start at `until_ms`.
    Failed {
        until_ms: i64,
        failures: u32,
    },
}

/// What a request should do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step<T> {
    /// The database is loaded: look up with it.
    Use(T),
    /// This request loads it (fetch, then [`GeoLoad::finish`] with the ticket).
    Load(Ticket),
    /// Another request is loading it: ask again shortly, until the caller's own deadline.
    Wait,
    /// No database for now (missing, refused, or failed and backing off): go on without geo.
    Skip,
}

/// How a load ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T> {
    Loaded(T),
    /// The store has no such object.
    Missing,
    /// The object is larger than [`Policy::max_bytes`] (it was not read).
    TooLarge,
    /// Reading or parsing failed.
    Failed,
}

#[derive(Debug, Clone)]
pub struct GeoLoad<T> {
    state: State<T>,
    policy: Policy,
    next_ticket: u64,
    loads_started: u64,
}

impl<T: Clone> GeoLoad<T> {
    pub const fn new(policy: Policy) -> Self {
        GeoLoad { state: State::NotLoaded, policy, next_ticket: 0, loads_started: 0 }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// How many loads this isolate has started (for tests and the load log line).
    pub fn loads_started(&self) -> u64 {
        self.loads_started
    }

    /// What a request that needs the database does at `now_ms`. Calling it is the only way to
    /// start a load, so at most one is ever in flight (a stale one excepted, see module doc).
    pub fn decide(&mut self, now_ms: i64) -> Step<T> {
        match &self.state {
            State::Loaded(db) => return Step::Use(db.clone()),
            State::Loading { started_ms, .. } if now_ms - started_ms < self.policy.stale_ms => return Step::Wait,
            State::Missing { until_ms } | State::Failed { until_ms, .. } if now_ms < *until_ms => return Step::Skip,
            _ => {}
        }
        let failures = match self.state {
            State::Failed { failures, .. } | State::Loading { failures, .. } => failures,
            _ => 0,
        };
        self.next_ticket += 1;
        self.loads_started += 1;
        let ticket = Ticket(self.next_ticket);
        self.state = State::Loading { ticket, started_ms: now_ms, failures };
        Step::Load(ticket)
    }

    /// Record how the load with `ticket` ended at `now_ms`. An outcome for a load that is no
    /// longer the current one (it went stale and another took over) is ignored.
    pub fn finish(&mut self, ticket: Ticket, outcome: Outcome<T>, now_ms: i64) {
        let failures = match self.state {
            State::Loading { ticket: t, failures, .. } if t == ticket => failures,
            _ => return,
        };
        self.state = match outcome {
            Outcome::Loaded(db) => State::Loaded(db),
            Outcome::Missing | Outcome::TooLarge => State::Missing { until_ms: now_ms + self.policy.missing_ms },
            Outcome::Failed => {
                let failures = failures + 1;
                let backoff = self.policy.first_backoff_ms.saturating_mul(1i64 << (failures - 1).min(20)).min(self.policy.max_backoff_ms);
                State::Failed { until_ms: now_ms + backoff, failures }
            }
        };
    }

    /// Whether an object of `size` bytes may be loaded at all.
    pub fn fits(&self, size: u64) -> bool {
        size <= self.policy.max_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Load = GeoLoad<&'static str>;

    fn load() -> Load {
        GeoLoad::new(Policy::default())
    }

    fn ticket(step: Step<&'static str>) -> Ticket {
        match step {
            Step::Load(t) => t,
            other => panic!("expected Load, got {other:?}"),
        }
    }

    #[test]
    fn concurrent_first_requests_share_one_load() {
        let mut l = load();
        // Ten requests arrive together: the first loads, the other nine wait.
        let first = ticket(l.decide(0));
        for i in 1..10 {
            assert_eq!(l.decide(i), Step::Wait, "request {i}");
        }
        // They keep asking while the load runs (3 s here): still one load.
        for now in (10..3_000).step_by(10) {
            assert_eq!(l.decide(now), Step::Wait);
        }
        l.finish(first, Outcome::Loaded("db"), 3_000);
        for i in 0..10 {
            assert_eq!(l.decide(3_000 + i), Step::Use("db"));
        }
        // And much later, still the same database: no reload.
        assert_eq!(l.decide(86_400_000), Step::Use("db"));
        assert_eq!(l.loads_started(), 1);
    }

    #[test]
    fn a_missing_database_is_not_fetched_per_event() {
        let mut l = load();
        let t = ticket(l.decide(0));
        l.finish(t, Outcome::Missing, 100);
        // One event every 10 ms for the next five minutes: no fetch.
        for now in (101..100 + 5 * 60_000).step_by(10) {
            assert_eq!(l.decide(now), Step::Skip);
        }
        assert_eq!(l.loads_started(), 1);
        // After five minutes it is looked for again (it may have been uploaded meanwhile).
        let t = ticket(l.decide(100 + 5 * 60_000));
        l.finish(t, Outcome::Loaded("db"), 100 + 5 * 60_000 + 500);
        assert_eq!(l.decide(100 + 5 * 60_000 + 501), Step::Use("db"));
        assert_eq!(l.loads_started(), 2);
    }

    #[test]
    fn too_large_is_remembered_like_missing() {
        let mut l = load();
        assert!(l.fits(8_207_345), "DB-IP Lite Country (IPv4+IPv6) fits");
        assert!(!l.fits(63_069_790), "DB-IP Lite City IPv4 does not");
        let t = ticket(l.decide(0));
        l.finish(t, Outcome::TooLarge, 10);
        assert_eq!(l.decide(60_000), Step::Skip);
        assert!(matches!(l.decide(10 + 5 * 60_000), Step::Load(_)));
    }

    #[test]
    fn failures_back_off_doubling_up_to_five_minutes() {
        let mut l = load();
        let mut now = 0;
        let mut t = ticket(l.decide(now));
        let mut waits = Vec::new();
        for _ in 0..9 {
            l.finish(t, Outcome::Failed, now);
            let failed_at = now;
            // Skipped until the backoff has passed, then exactly one new load.
            let next = loop {
                match l.decide(now) {
                    Step::Skip => now += 100,
                    Step::Load(next) => break next,
                    other => panic!("{other:?}"),
                }
            };
            waits.push(now - failed_at);
            t = next;
        }
        assert_eq!(waits, [5_000, 10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000, 300_000]);
        assert_eq!(l.loads_started(), 10);
        // A success resets the count: a later failure backs off 5 s again.
        l.finish(t, Outcome::Loaded("db"), now);
        assert_eq!(l.decide(now + 1), Step::Use("db"));
    }

    #[test]
    fn a_failure_then_success_then_nothing_more() {
        let mut l = load();
        let t = ticket(l.decide(0));
        l.finish(t, Outcome::Failed, 50);
        assert_eq!(l.decide(1_000), Step::Skip);
        let t = ticket(l.decide(5_050));
        assert_eq!(l.decide(5_060), Step::Wait, "the retry is shared as well");
        l.finish(t, Outcome::Loaded("db"), 6_000);
        assert_eq!(l.decide(6_001), Step::Use("db"));
        assert_eq!(l.loads_started(), 2);
    }

    #[test]
    fn a_load_that_never_reports_is_taken_over_once_stale() {
        let mut l = load();
        let abandoned = ticket(l.decide(0));
        assert_eq!(l.decide(59_999), Step::Wait);
        let second = ticket(l.decide(60_000));
        assert_ne!(abandoned, second);
        assert_eq!(l.decide(60_001), Step::Wait, "only the new load is in flight");
        // The abandoned load's late outcome does not overwrite the current one.
        l.finish(abandoned, Outcome::Missing, 60_100);
        assert_eq!(l.decide(60_200), Step::Wait);
        l.finish(second, Outcome::Loaded("db"), 61_000);
        assert_eq!(l.decide(61_001), Step::Use("db"));
        // Nor does a late outcome of an old load replace a loaded database.
        l.finish(abandoned, Outcome::Failed, 62_000);
        assert_eq!(l.decide(62_001), Step::Use("db"));
    }
}
