//! Where an isolate's group of accepted rows goes: straight into ClickHouse, or onto the
//! events queue, whose batch writer stores it later.
//!
//! Straight in is the cheap way: a queue message costs three billed operations (written, read,
//! deleted) and a browser event rarely shares one, while an insert costs Cloudflare nothing.
//! The queue stays as the fallback whenever ClickHouse fails or is slow, so a client never
//! waits on an outage and nothing is acknowledged before it is durable: either ClickHouse
//! answered the insert, or the queue took the rows.
//!
//! `Breaker` decides per isolate. It sends a group straight in unless ClickHouse failed or was
//! slow within the last `COOL_OFF_MS`, or an insert of this isolate has now been in flight for
//! longer than `SLOW_MS`. After the cool-off one group tries again, alone: the groups behind it
//! take the queue until it is answered, so while ClickHouse is still down, or frozen, that group
//! alone pays for finding out.
//!
//! An insert nobody answers is waited on for `GIVE_UP_MS`, then its rows go to the queue
//! *delayed* by `HANDOFF_DELAY_S`: a frozen server that wakes up and completes that insert
//! does so long before the batch writer looks up those ids, so it finds them stored and the
//! first write still wins, with no second copy. So do the rows of an insert that failed in a
//! way that does not say it was refused (`queue_delay_s`).

use crate::storage::clickhouse::InsertOutcome;

/// An insert in flight longer than this is slow: the next groups take the queue.
pub const SLOW_MS: i64 = 1_000;
/// After a failed or slow insert, groups take the queue for this long.
pub const COOL_OFF_MS: i64 = 10_000;
/// How long a group waits on an insert ClickHouse does not answer before its rows go to the
/// queue instead (delayed by HANDOFF_DELAY_S).
pub const GIVE_UP_MS: i64 = 20_000;
/// How long rows handed over after GIVE_UP_MS wait in the queue before the batch writer may
/// see them: longer than a frozen server takes to finish what it had received.
pub const HANDOFF_DELAY_S: u32 = 120;

/// How long a group's rows wait in the queue before the batch writer may see them, by how its
/// direct insert ended. An insert not answered, or failed in a way that does not say it was
/// refused (a lost connection, a 5xx: `Retry`) once it was sent, may still land: its rows wait
/// HANDOFF_DELAY_S. One refused for what it is, or never sent (its id lookup failed), can be
/// written again at once.
/// `failure`: what ClickHouse answered to a failed insert.
pub fn queue_delay_s(ended: Ended, failure: Option<&InsertOutcome>, insert_sent: bool) -> Option<u32> {
    let may_land = match ended {
        Ended::Stored => false,
        Ended::GaveUp => true,
        Ended::Failed => insert_sent && matches!(failure, Some(InsertOutcome::Retry { .. })),
    };
    may_land.then_some(HANDOFF_DELAY_S)
}

/// How rows are written, from the `INGEST_WRITE` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Straight into ClickHouse where the server takes async inserts (21.11 and newer,
    /// ClickHouse Cloud), else through the queue (the default). A server without them makes one
    /// part per insert: a group a few milliseconds long per isolate would swamp its merges (on
    /// 18.16 here, inserts stalled for seconds under load), while async inserts gather them.
    Auto,
    /// Straight into ClickHouse whatever the server, the queue as the fallback.
    Direct,
    /// Every group through the queue (as before direct writes).
    Queue,
}

impl Mode {
    pub fn parse(setting: Option<&str>) -> Mode {
        match setting.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
            Some("queue") => Mode::Queue,
            Some("direct") => Mode::Direct,
            _ => Mode::Auto,
        }
    }

    /// Whether groups go straight in, given whether the server takes async inserts (None: not
    /// known yet, until its first answer).
    pub fn writes_direct(self, async_inserts: Option<bool>) -> bool {
        match self {
            Mode::Queue => false,
            Mode::Direct => true,
            Mode::Auto => async_inserts != Some(false),
        }
    }
}

/// Where one group goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// Insert it; hand `Ticket` back to `Breaker::finished` with how it went.
    Direct(Ticket),
    Queue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(u64);

/// How a direct insert ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Stored,
    Failed,
    /// Not answered within GIVE_UP_MS.
    GaveUp,
}

#[derive(Debug, Default)]
pub struct Breaker {
    open_until_ms: i64,
    /// Inserts in flight: ticket and start.
    in_flight: Vec<(u64, i64)>,
    next: u64,
    /// Opened since the last insert that went well: after the cool-off one group probes.
    tripped: bool,
    probe: Option<u64>,
}

impl Breaker {
    pub fn choose(&mut self, mode: Mode, now_ms: i64) -> Path {
        self.forget_lost(now_ms);
        if mode == Mode::Queue || now_ms < self.open_until_ms || self.probe.is_some() {
            return Path::Queue;
        }
        if self.in_flight.iter().any(|&(_, start)| now_ms - start > SLOW_MS) {
            self.open(now_ms);
            return Path::Queue;
        }
        self.next += 1;
        self.in_flight.push((self.next, now_ms));
        if self.tripped {
            self.probe = Some(self.next);
        }
        Path::Direct(Ticket(self.next))
    }

    /// An insert whose request was cancelled (its client went away) never reports back: once it
    /// is past the time its leader would have given up, count it as given up then.
    fn forget_lost(&mut self, now_ms: i64) {
        let lost: Vec<(u64, i64)> = self.in_flight.iter().copied().filter(|&(_, start)| now_ms - start > GIVE_UP_MS + SLOW_MS).collect();
        for (ticket, start) in lost {
            self.in_flight.retain(|&(t, _)| t != ticket);
            if self.probe == Some(ticket) {
                self.probe = None;
            }
            self.open(start + GIVE_UP_MS);
        }
    }

    /// A ticket whose group did not try an insert after all (the server turned out not to take
    /// async inserts): no longer in flight, and no news about ClickHouse.
    pub fn release(&mut self, ticket: Ticket) {
        self.in_flight.retain(|&(t, _)| t != ticket.0);
        if self.probe == Some(ticket.0) {
            self.probe = None;
        }
    }

    fn open(&mut self, now_ms: i64) {
        self.open_until_ms = self.open_until_ms.max(now_ms + COOL_OFF_MS);
        self.tripped = true;
    }

    pub fn finished(&mut self, ticket: Ticket, ended: Ended, now_ms: i64) {
        let started = self.in_flight.iter().find(|(t, _)| *t == ticket.0).map(|&(_, s)| s);
        self.in_flight.retain(|(t, _)| *t != ticket.0);
        let slow = started.is_some_and(|s| now_ms - s > SLOW_MS);
        if self.probe == Some(ticket.0) {
            self.probe = None;
        }
        if ended != Ended::Stored || slow {
            self.open(now_ms);
        } else if self.probe.is_none() && !self.is_open(now_ms) {
            self.tripped = false;
        }
    }

    /// Whether groups take the queue now (for the isolate's log and the meter).
    pub fn is_open(&self, now_ms: i64) -> bool {
        now_ms < self.open_until_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket(p: Path) -> Ticket {
        match p {
            Path::Direct(t) => t,
            Path::Queue => panic!("expected a direct insert"),
        }
    }

    #[test]
    fn healthy_inserts_go_straight_in() {
        let mut b = Breaker::default();
        for i in 0..100 {
            let t = ticket(b.choose(Mode::Direct, i * 10));
            b.finished(t, Ended::Stored, i * 10 + 5);
        }
        assert!(!b.is_open(1_000));
    }

    #[test]
    fn queue_mode_never_inserts() {
        assert_eq!(Breaker::default().choose(Mode::Queue, 0), Path::Queue);
        assert_eq!(Mode::parse(Some(" Queue ")), Mode::Queue);
        assert_eq!(Mode::parse(Some("direct")), Mode::Direct);
        assert_eq!(Mode::parse(None), Mode::Auto);
        assert_eq!(Mode::parse(Some("auto")), Mode::Auto);
    }

    #[test]
    fn auto_inserts_straight_in_only_where_the_server_takes_async_inserts() {
        assert!(Mode::Auto.writes_direct(Some(true)));
        assert!(!Mode::Auto.writes_direct(Some(false)), "18.16: one part per group would swamp its merges");
        assert!(Mode::Direct.writes_direct(Some(false)));
        assert!(!Mode::Queue.writes_direct(Some(true)));
        // Not known yet (no answer so far): try, so the server's answer is learnt.
        assert!(Mode::Auto.writes_direct(None));
    }

    #[test]
    fn a_released_ticket_leaves_the_breaker_as_it_was() {
        let mut b = Breaker::default();
        let t = ticket(b.choose(Mode::Auto, 0));
        b.release(t);
        assert!(matches!(b.choose(Mode::Auto, 5_000), Path::Direct(_)), "not counted as in flight, nor as a failure");
    }

    #[test]
    fn a_failure_sends_groups_to_the_queue_until_the_cool_off_ends_then_one_tries_again() {
        let mut b = Breaker::default();
        let t = ticket(b.choose(Mode::Direct, 0));
        b.finished(t, Ended::Failed, 3);
        assert_eq!(b.choose(Mode::Direct, 4), Path::Queue);
        assert_eq!(b.choose(Mode::Direct, 3 + COOL_OFF_MS - 1), Path::Queue);
        let probe = ticket(b.choose(Mode::Direct, 3 + COOL_OFF_MS));
        b.finished(probe, Ended::Stored, 3 + COOL_OFF_MS + 5);
        assert!(matches!(b.choose(Mode::Direct, 3 + COOL_OFF_MS + 6), Path::Direct(_)));
    }

    #[test]
    fn after_the_cool_off_one_group_probes_and_the_others_take_the_queue_until_it_is_answered() {
        let mut b = Breaker::default();
        let t = ticket(b.choose(Mode::Direct, 0));
        b.finished(t, Ended::Failed, 0);
        let probe = ticket(b.choose(Mode::Direct, COOL_OFF_MS));
        // A frozen server holds the probe: the groups behind it must not pile up on it too.
        assert_eq!(b.choose(Mode::Direct, COOL_OFF_MS + 10), Path::Queue);
        assert_eq!(b.choose(Mode::Direct, COOL_OFF_MS + 500), Path::Queue);
        b.finished(probe, Ended::Stored, COOL_OFF_MS + 600);
        assert!(matches!(b.choose(Mode::Direct, COOL_OFF_MS + 601), Path::Direct(_)));
        assert!(matches!(b.choose(Mode::Direct, COOL_OFF_MS + 602), Path::Direct(_)), "closed again: no more probing");
    }

    #[test]
    fn an_insert_in_flight_too_long_diverts_the_next_groups_before_it_ends() {
        let mut b = Breaker::default();
        let hung = ticket(b.choose(Mode::Direct, 0));
        assert!(matches!(b.choose(Mode::Direct, SLOW_MS), Path::Direct(_)), "not slow yet");
        assert_eq!(b.choose(Mode::Direct, SLOW_MS + 1), Path::Queue);
        // Still queued while the cool-off lasts, even if the hung insert then succeeds late.
        b.finished(hung, Ended::Stored, 5_000);
        assert_eq!(b.choose(Mode::Direct, 5_001), Path::Queue);
        assert!(b.is_open(5_000 + COOL_OFF_MS - 1));
    }

    #[test]
    fn an_insert_whose_request_vanished_stops_counting_after_the_give_up_time() {
        // The leader's request was cancelled mid-insert: `finished` never comes.
        let mut b = Breaker::default();
        let _lost = b.choose(Mode::Direct, 0);
        assert_eq!(b.choose(Mode::Direct, SLOW_MS + 1), Path::Queue);
        // Counted as given up at GIVE_UP_MS, so the cool-off runs from there.
        assert_eq!(b.choose(Mode::Direct, GIVE_UP_MS + SLOW_MS + 1), Path::Queue);
        let after = GIVE_UP_MS + COOL_OFF_MS + SLOW_MS + 1;
        let probe = ticket(b.choose(Mode::Direct, after));
        b.finished(probe, Ended::Stored, after + 5);
        assert!(matches!(b.choose(Mode::Direct, after + 6), Path::Direct(_)), "the lost insert no longer holds the breaker open");
    }

    #[test]
    fn a_probe_whose_request_vanished_does_not_hold_the_breaker_forever() {
        let mut b = Breaker::default();
        let t = ticket(b.choose(Mode::Direct, 0));
        b.finished(t, Ended::Failed, 0);
        let _lost_probe = b.choose(Mode::Direct, COOL_OFF_MS);
        assert_eq!(b.choose(Mode::Direct, COOL_OFF_MS + 1), Path::Queue);
        let later = COOL_OFF_MS + GIVE_UP_MS + COOL_OFF_MS + 1;
        assert!(matches!(b.choose(Mode::Direct, later), Path::Direct(_)));
    }

    #[test]
    fn rows_that_may_still_land_wait_in_the_queue_and_refused_ones_do_not() {
        let retry = InsertOutcome::Retry { reason: "connection lost".into() };
        let refused = InsertOutcome::Fatal { code: Some(117), reason: "unknown field".into() };
        let auth = InsertOutcome::AuthFailed { code: Some(516), reason: "password".into() };
        assert_eq!(queue_delay_s(Ended::GaveUp, None, true), Some(HANDOFF_DELAY_S));
        assert_eq!(queue_delay_s(Ended::Failed, Some(&retry), true), Some(HANDOFF_DELAY_S), "sent, then the connection broke");
        assert_eq!(queue_delay_s(Ended::Failed, Some(&retry), false), None, "the lookup failed: nothing was sent");
        assert_eq!(queue_delay_s(Ended::Failed, Some(&refused), true), None);
        assert_eq!(queue_delay_s(Ended::Failed, Some(&auth), true), None);
    }

    #[test]
    fn a_slow_success_opens_the_breaker_too() {
        let mut b = Breaker::default();
        let t = ticket(b.choose(Mode::Direct, 0));
        b.finished(t, Ended::Stored, SLOW_MS + 1);
        assert_eq!(b.choose(Mode::Direct, SLOW_MS + 2), Path::Queue);
    }

    #[test]
    fn a_given_up_insert_is_handed_over_later_than_any_retry_and_the_wait_fits_the_waiters() {
        let mut b = Breaker::default();
        let t = ticket(b.choose(Mode::Direct, 0));
        b.finished(t, Ended::GaveUp, GIVE_UP_MS);
        assert!(b.is_open(GIVE_UP_MS + 1));
        // The handed-over rows wait far longer than the insert was waited on.
        const { assert!(HANDOFF_DELAY_S as i64 * 1_000 > 5 * GIVE_UP_MS) };
        const { assert!(SLOW_MS < GIVE_UP_MS && COOL_OFF_MS < GIVE_UP_MS) };
    }
}
