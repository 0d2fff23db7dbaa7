//! The key's side of the per-key limit: what its Durable Object decides when an isolate asks.
//!
//! Isolates do not pre-book blocks of the minute. An isolate asks when it has no allowance
//! left (or it lapsed); the object admits that request if it fits, and may hand the isolate an
//! *allowance*: a few more events it may admit on its own for `ALLOWANCE_MS`, sized to the
//! isolate's observed rate (scaled down to its share when the key is over its limit) and to the
//! room the window has. With its next ask the isolate hands the allowance back, saying how much
//! of it it used: only that is counted; the rest is free again at once. An allowance never
//! handed back (its isolate vanished) is counted as spent in full once it is `SETTLE_GRACE_MS`
//! past its end, which errs towards refusing, never towards admitting too much.
//!
//! Invariant, for every admission and every allowance granted: counted events + events held in
//! live allowances + the cost <= limit, where "counted" is the window's count at the latest
//! moment the allowance can be spent in this minute. Since every admitted event is either
//! counted or inside a live allowance, no calendar minute admits more than the limit (the
//! window's own bound applies otherwise: at most twice the limit in a 60 s span straddling two
//! minutes). Exceptions: the limiter fails open when the object cannot be reached, and a
//! restarted object has forgotten the last minute.

use super::window::SlidingWindow;
use super::WINDOW_MS;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};

/// How long an isolate may spend an allowance on its own (less when the minute ends sooner).
pub const ALLOWANCE_MS: i64 = 10_000;
/// No allowance is more than 1/MAX_SHARE of the limit, so what vanished isolates took with
/// them, or holds at a minute's end, is a small part of it; keys with limits under MAX_SHARE
/// get no allowances at all: every event is counted by the object, exactly.
pub const MAX_SHARE: u64 = 50;
/// What a slow isolate is handed at once, for as long as it takes it to see that many.
pub const SLOW_EVENTS: u64 = 2;
/// Too little of the minute left for an allowance to be worth handing out.
pub const MIN_ALLOWANCE_MS: i64 = 500;
/// How long past its end an allowance waits to be handed back before it is counted in full.
pub const SETTLE_GRACE_MS: i64 = 20_000;
/// A refused isolate does not ask again for at least this long (it refuses locally meanwhile),
/// so a key far over its limit costs each isolate at most one ask a second.
pub const MIN_REFUSAL_MS: i64 = 1_000;
/// Rates are measured over at least this long, so two events a millisecond apart do not look
/// like thousands a second.
pub const MIN_RATE_SPAN_MS: i64 = 2_000;
/// Allowance ids a millisecond (see `KeyBudget::ask`).
const ID_BLOCK: u64 = 1 << 20;
/// Live allowances the object keeps track of; past this it admits without handing out more.
pub const MAX_ALLOWANCES: usize = 4_096;

/// What an isolate sends the key's object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ask {
    /// Events in the request at hand.
    pub cost: u64,
    pub limit: u32,
    /// The allowances handed back, if the isolate held any (more than one when answers to
    /// concurrent asks arrived together).
    #[serde(default)]
    pub settle: Vec<Settle>,
    /// Events this isolate saw for the key since its previous ask (admitted or refused, the
    /// request at hand included), and over how many ms (0: no previous ask).
    pub seen: u64,
    pub seen_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settle {
    pub allowance: u64,
    /// Events the isolate admitted under it, the request it was granted with included.
    pub used: u64,
}

/// The object's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    pub admitted: bool,
    /// Events beyond this request the isolate may admit on its own, until `valid_ms` from now.
    pub extra: u64,
    /// The allowance's id, to hand back with the next ask (0: none was granted).
    pub allowance: u64,
    pub valid_ms: i64,
    /// When refused: ask again no sooner than this (the Retry-After, in ms).
    pub retry_after_ms: i64,
}

#[derive(Debug, Clone, Copy)]
struct Held {
    /// The request it was granted with plus its extra.
    events: u64,
    /// Allowances end with the minute they were granted in, so their events are counted in it.
    granted_ms: i64,
    counted_at_ms: i64,
}

/// The object's state for one key: a window of counted events, events isolates said they saw
/// (for their share when the key is over its limit), and the allowances out there.
#[derive(Debug, Default)]
pub struct KeyBudget {
    counted: SlidingWindow,
    seen: SlidingWindow,
    held: HashMap<u64, Held>,
    /// (when counted in full, id): the order in which unreturned allowances lapse.
    lapse: BTreeSet<(i64, u64)>,
    outstanding: u64,
    last_id: u64,
}

impl KeyBudget {
    /// Answer one ask at `now_ms`.
    pub fn ask(&mut self, now_ms: i64, ask: &Ask) -> Answer {
        self.lapse_until(now_ms);
        for s in &ask.settle {
            // An id of an earlier life of this object, still held: never hand out another of
            // its millisecond's block.
            self.last_id = self.last_id.max(s.allowance | (ID_BLOCK - 1));
            if let Some(held) = self.take(s.allowance) {
                self.counted.add_at(now_ms, held.granted_ms, s.used.min(held.events));
            }
            // else: it lapsed already and was counted in full (or the object restarted)
        }
        self.seen.add(now_ms, ask.seen.max(ask.cost));
        let limit = ask.limit as u64;
        let cost = ask.cost;
        let busy = self.counted.count(now_ms).saturating_add(self.outstanding);
        if busy.saturating_add(cost) > limit {
            let target = limit.saturating_sub(self.outstanding.saturating_add(cost));
            let wait = self.counted.ms_until_count_at_most(now_ms, target);
            return Answer { admitted: false, extra: 0, allowance: 0, valid_ms: 0, retry_after_ms: wait.clamp(MIN_REFUSAL_MS, WINDOW_MS) };
        }
        // An allowance ends with the minute (so what it admits counts in this minute) and takes
        // at most half of the room there is at its end, so the isolates asking next find some.
        let (valid_ms, extra) = self.size(now_ms, ask, limit, limit - busy - cost);
        let later = self.counted.count_at(now_ms, now_ms + valid_ms);
        let room = limit.saturating_sub(later + self.outstanding + cost) / 2; // all <= limit here
        let extra = if valid_ms < MIN_ALLOWANCE_MS { 0 } else { extra.min(room).min(limit / MAX_SHARE) };
        if extra == 0 || self.held.len() >= MAX_ALLOWANCES {
            self.counted.add(now_ms, cost);
            return Answer { admitted: true, extra: 0, allowance: 0, valid_ms: 0, retry_after_ms: 0 };
        }
        // A restarted object must never hand out an id its last life did: an isolate still
        // holding that one would settle it against another isolate's allowance. Ids follow the
        // clock, a block of 2^20 a millisecond, so a later life's are beyond an earlier one's
        // (and beyond every id settled so far, above). They cross as JSON read by serde_json
        // on both sides (workers/edge/src/key_limiter.rs), so all 64 bits arrive.
        self.last_id = self.last_id.max((now_ms.max(0) as u64) * ID_BLOCK).saturating_add(1);
        let id = self.last_id;
        let held = Held { events: cost + extra, granted_ms: now_ms, counted_at_ms: now_ms + valid_ms + SETTLE_GRACE_MS };
        self.held.insert(id, held);
        self.lapse.insert((held.counted_at_ms, id));
        self.outstanding += held.events;
        Answer { admitted: true, extra, allowance: id, valid_ms, retry_after_ms: 0 }
    }

    /// The allowance's life and events: what the isolate is expected to see over
    /// `ALLOWANCE_MS` at its observed rate, scaled to its share of the limit when the key sees
    /// more than its limit. An isolate too slow to expect `SLOW_EVENTS` that soon gets that many
    /// for longer (up to the minute's end), while the allowances of every isolate at the key's
    /// rate would take at most half the room left: so the slow isolates of a key far from its
    /// limit need not ask for every event, and one that vanishes takes little with it.
    fn size(&mut self, now_ms: i64, ask: &Ask, limit: u64, room: u64) -> (i64, u64) {
        let left = self.counted.ms_left(now_ms);
        let valid = ALLOWANCE_MS.min(left);
        if ask.seen_ms <= 0 {
            return (valid, 0); // a new isolate: no rate yet
        }
        let span = ask.seen_ms.max(MIN_RATE_SPAN_MS) as u128;
        let seen = ask.seen as u128;
        let demand = self.seen.count(now_ms) as u128;
        let expected = seen * valid as u128 / span;
        if demand > limit as u128 {
            return (valid, (expected * limit as u128 / demand).min(u64::MAX as u128) as u64);
        }
        if expected >= SLOW_EVENTS as u128 {
            return (valid, expected.min(u64::MAX as u128) as u64);
        }
        let fits_ms = room as u128 * WINDOW_MS as u128 / (2 * demand.max(1));
        let slow_ms = (SLOW_EVENTS as u128 * span).div_ceil(seen.max(1));
        let valid = (slow_ms.min(fits_ms) as i64).clamp(valid, left);
        (valid, (seen * valid as u128 / span).min(SLOW_EVENTS as u128) as u64)
    }

    fn take(&mut self, id: u64) -> Option<Held> {
        let held = self.held.remove(&id)?;
        self.lapse.remove(&(held.counted_at_ms, id));
        self.outstanding -= held.events;
        Some(held)
    }

    /// Allowances not handed back in time: their isolate is gone, count them as spent.
    fn lapse_until(&mut self, now_ms: i64) {
        while let Some(&(at, id)) = self.lapse.first() {
            if at > now_ms {
                break;
            }
            if let Some(held) = self.take(id) {
                self.counted.add_at(now_ms, held.granted_ms, held.events);
            }
        }
    }

    /// Events counted plus events held in allowances, now (for tests and the simulation).
    pub fn busy(&mut self, now_ms: i64) -> u64 {
        self.lapse_until(now_ms);
        self.counted.count(now_ms) + self.outstanding
    }

    pub fn allowances(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000_000;

    fn ask(cost: u64, limit: u32, settle: Option<Settle>, seen: u64, seen_ms: i64) -> Ask {
        Ask { cost, limit, settle: settle.into_iter().collect(), seen, seen_ms }
    }

    #[test]
    fn a_new_isolate_gets_its_request_and_no_allowance() {
        let mut b = KeyBudget::default();
        let a = b.ask(T0, &ask(1, 6000, None, 1, 0));
        assert!(a.admitted);
        assert_eq!((a.extra, a.allowance), (0, 0));
        assert_eq!(b.busy(T0), 1);
    }

    #[test]
    fn the_allowance_is_sized_to_the_rate_and_the_unused_part_comes_back() {
        let mut b = KeyBudget::default();
        // 20 events over 2 s: 10 a second, so 100 over an allowance's 10 s
        let a = b.ask(T0, &ask(1, 6000, None, 20, 2_000));
        assert!(a.admitted);
        assert_eq!(a.extra, 100);
        assert_eq!(a.valid_ms, ALLOWANCE_MS);
        assert_eq!(b.busy(T0), 101, "held while out");
        // handed back having used 31 of the 101: 31 counted, 70 free again
        let settle = Settle { allowance: a.allowance, used: 31 };
        let a2 = b.ask(T0 + 3_000, &ask(1, 6000, Some(settle), 31, 0));
        assert!(a2.admitted);
        assert_eq!(b.busy(T0 + 3_000), 31 + 1);
        // the same allowance handed back twice counts once
        b.ask(T0 + 4_000, &ask(1, 6000, Some(settle), 1, 0));
        assert_eq!(b.busy(T0 + 4_000), 31 + 1 + 1);
    }

    #[test]
    fn a_restarted_object_never_hands_out_an_id_its_last_life_did() {
        let mut before = KeyBudget::default();
        let held = before.ask(T0, &ask(1, 6000, None, 20, 2_000));
        assert!(held.allowance > 0);

        // Restarted (evicted, redeployed) moments later: its first allowance goes elsewhere,
        // and the isolate still holding `held` settles it with its next ask.
        let mut after = KeyBudget::default();
        let other = after.ask(T0 + 300, &ask(1, 6000, None, 20, 2_000));
        assert!(other.allowance > held.allowance, "ids {} then {}", held.allowance, other.allowance);
        let third = after.ask(T0 + 600, &ask(1, 6000, Some(Settle { allowance: held.allowance, used: 0 }), 1, 1_000));
        let own = usize::from(third.allowance > 0);
        assert_eq!(after.allowances(), 1 + own, "the other isolate's allowance is still out, not settled by a stranger's");
    }

    #[test]
    fn an_allowance_never_handed_back_is_counted_in_full() {
        let mut b = KeyBudget::default();
        let a = b.ask(T0, &ask(1, 6000, None, 100, 10_000));
        assert_eq!(a.extra, 100);
        let lapse = T0 + ALLOWANCE_MS + SETTLE_GRACE_MS;
        assert_eq!(b.busy(lapse - 1), 101);
        assert_eq!(b.busy(lapse), 101);
        assert_eq!(b.allowances(), 0);
        // handing it back late changes nothing
        b.ask(lapse + 1, &ask(1, 6000, Some(Settle { allowance: a.allowance, used: 0 }), 1, 0));
        assert_eq!(b.busy(lapse + 1), 102);
    }

    #[test]
    fn never_more_than_the_limit_however_many_ask() {
        let mut b = KeyBudget::default();
        let mut admitted_or_held = 0;
        for i in 0..10_000 {
            let a = b.ask(T0 + i, &ask(1, 1000, None, 1000, 1_000));
            if a.admitted {
                admitted_or_held += 1 + a.extra;
            }
            assert!(b.busy(T0 + i) <= 1000);
        }
        assert_eq!(admitted_or_held, 1000);
        let refused = b.ask(T0 + 20_000, &ask(1, 1000, None, 1, 0));
        assert!(!refused.admitted);
        assert!(refused.retry_after_ms >= MIN_REFUSAL_MS);
    }

    #[test]
    fn a_tiny_limit_is_exact() {
        let mut b = KeyBudget::default();
        // even a fast isolate gets no allowance out of 5 a minute beyond half of what is left
        let mut admitted = 0;
        for i in 0..100 {
            let a = b.ask(T0 + i * 100, &ask(1, 5, None, 10, 1_000));
            if a.admitted {
                admitted += 1 + a.extra;
            }
        }
        assert_eq!(admitted, 5);
    }

    #[test]
    fn absurd_asks_are_answered_without_panicking() {
        let mut b = KeyBudget::default();
        let a = b.ask(T0, &ask(u64::MAX, u32::MAX, Some(Settle { allowance: 7, used: u64::MAX }), u64::MAX, i64::MAX));
        assert!(!a.admitted);
        let a = b.ask(T0, &ask(1, u32::MAX, None, u64::MAX, 1));
        assert!(a.admitted);
        assert!(a.extra <= u32::MAX as u64 / MAX_SHARE);
        // (times are the runtime's clock, never input)
        let a = b.ask(T0 + 1, &ask(0, 0, None, 0, -5));
        assert!(a.admitted || a.retry_after_ms >= MIN_REFUSAL_MS);
    }

    #[test]
    fn a_batch_is_all_or_nothing() {
        let mut b = KeyBudget::default();
        assert!(b.ask(T0, &ask(3, 5, None, 3, 0)).admitted);
        assert!(!b.ask(T0 + 1, &ask(3, 5, None, 3, 0)).admitted);
        assert!(b.ask(T0 + 2, &ask(2, 5, None, 2, 0)).admitted);
    }

    #[test]
    fn over_the_limit_each_isolate_gets_its_share() {
        let mut b = KeyBudget::default();
        // the key has seen 12,000 events this minute against 6,000: allowances are halved
        b.ask(T0, &ask(1, 6000, None, 11_980, 0));
        // 20 events over 2 s would be 100 over an allowance's life: its share is 50
        let a = b.ask(T0 + 1, &ask(1, 6000, None, 20, 2_000));
        assert_eq!(a.extra, 50);
    }
}
