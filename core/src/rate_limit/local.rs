//! The isolate's side of the per-key limit: spend the allowance the key's object handed out,
//! refuse locally for a while after the object refused, else ask (handing the allowance back).

use super::budget::{Answer, Ask, Settle};
use super::window::seconds;

/// Allowances an isolate holds at once for one key: more than one only when the answers to
/// concurrent asks arrive while one is held. Past this, the newest is left to lapse.
pub const MAX_HELD: usize = 4;

/// One isolate's state for one key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalBudget {
    /// The allowances held, (id, events: the request each came with plus its extra).
    held: Vec<(u64, u64)>,
    /// Events left to admit locally, events admitted under the allowances, and until when.
    left: u64,
    used: u64,
    valid_until_ms: i64,
    /// The object refused: refuse locally until then without asking.
    refused_until_ms: i64,
    /// Events seen since the last ask, and when that was (0: never).
    seen: u64,
    last_ask_ms: i64,
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Admit,
    Refuse {
        retry_after_s: u32,
    },
    /// Send this to the key's object, then pass its answer to `LocalBudget::answer`.
    Ask(Ask),
}

impl LocalBudget {
    pub fn step(&mut self, now_ms: i64, cost: u64, limit: u32) -> Step {
        self.seen = self.seen.saturating_add(cost);
        if now_ms < self.valid_until_ms && self.left >= cost {
            self.left -= cost;
            self.used = self.used.saturating_add(cost);
            return Step::Admit;
        }
        if now_ms < self.refused_until_ms {
            return Step::Refuse { retry_after_s: seconds(self.refused_until_ms - now_ms) };
        }
        // Hand the allowances back now, so that requests arriving while this ask is under way
        // ask for themselves rather than report them again. What was used is spread over them
        // in order, none taking more than it holds.
        let mut used = self.used;
        let settle = self
            .held
            .iter()
            .map(|&(allowance, events)| {
                let part = used.min(events);
                used -= part;
                Settle { allowance, used: part }
            })
            .collect();
        let seen_ms = if self.last_ask_ms == 0 { 0 } else { (now_ms - self.last_ask_ms).max(1) };
        let ask = Ask { cost, limit, settle, seen: self.seen, seen_ms };
        *self = LocalBudget { last_ask_ms: now_ms, refused_until_ms: self.refused_until_ms, ..LocalBudget::default() };
        Step::Ask(ask)
    }

    /// The object's answer to the ask `step` returned for a request of `cost`: None when the
    /// request is admitted, else the Retry-After in seconds.
    pub fn answer(&mut self, now_ms: i64, cost: u64, answer: &Answer) -> Option<u32> {
        if !answer.admitted {
            self.refused_until_ms = now_ms.saturating_add(answer.retry_after_ms.max(0));
            return Some(seconds(answer.retry_after_ms));
        }
        self.refused_until_ms = 0;
        if answer.allowance == 0 {
            return None;
        }
        let until = now_ms.saturating_add(answer.valid_ms.max(0));
        if now_ms >= self.valid_until_ms {
            // nothing live held (what lapsed was handed back with the ask, or will lapse)
            self.held.clear();
            self.left = 0;
            self.used = 0;
            self.valid_until_ms = until;
        } else if self.held.len() >= MAX_HELD {
            return None; // the object counts it in full when it lapses
        }
        // Answers to concurrent asks: hold them together, spendable until the earliest ends.
        self.held.push((answer.allowance, cost + answer.extra));
        self.left = self.left.saturating_add(answer.extra);
        self.used = self.used.saturating_add(cost);
        self.valid_until_ms = self.valid_until_ms.min(until);
        None
    }

    /// Whether this state still matters (an allowance, a refusal or a recent ask): an isolate
    /// may drop the others when it bounds its memory.
    pub fn is_live(&self, now_ms: i64) -> bool {
        now_ms < self.valid_until_ms || now_ms < self.refused_until_ms || now_ms - self.last_ask_ms < super::WINDOW_MS
    }
}

#[cfg(test)]
mod tests {
    use super::super::budget::KeyBudget;
    use super::*;

    const T0: i64 = 1_800_000_000_000;

    /// One isolate against one object, answers arriving at once.
    fn offer(local: &mut LocalBudget, object: &mut KeyBudget, now: i64, cost: u64, limit: u32) -> (bool, bool) {
        match local.step(now, cost, limit) {
            Step::Admit => (true, false),
            Step::Refuse { .. } => (false, false),
            Step::Ask(ask) => (local.answer(now, cost, &object.ask(now, &ask)).is_none(), true),
        }
    }

    #[test]
    fn a_steady_isolate_asks_rarely_and_hands_back_what_it_did_not_use() {
        let (mut local, mut object) = (LocalBudget::default(), KeyBudget::default());
        let mut asks = 0;
        // 10 events a second for a minute
        for i in 0..600 {
            let (ok, asked) = offer(&mut local, &mut object, T0 + i * 100, 1, 6000);
            assert!(ok);
            asks += asked as u32;
        }
        assert!(asks <= 12, "{asks} asks for 600 events");
        // it vanishes: what it held is counted in full once lapsed, no more
        let later = T0 + 60_000 + super::super::budget::ALLOWANCE_MS + super::super::budget::SETTLE_GRACE_MS;
        assert!(object.busy(later) <= 600 + 100);
    }

    #[test]
    fn after_a_refusal_it_refuses_locally_then_asks_again() {
        let (mut local, mut object) = (LocalBudget::default(), KeyBudget::default());
        for i in 0..5 {
            assert!(offer(&mut local, &mut object, T0 + i, 1, 5).0);
        }
        assert_eq!(offer(&mut local, &mut object, T0 + 10, 1, 5), (false, true));
        match local.step(T0 + 20, 1, 5) {
            Step::Refuse { retry_after_s } => assert!(retry_after_s >= 1),
            other => panic!("{other:?}"),
        }
        // next minute: room again
        assert!(offer(&mut local, &mut object, T0 + 60_000 + 59_000, 1, 5).0);
    }

    #[test]
    fn answers_to_concurrent_asks_are_held_together_and_all_handed_back() {
        let (mut local, mut object) = (LocalBudget::default(), KeyBudget::default());
        assert!(offer(&mut local, &mut object, T0, 1, 6000).0);
        // two requests 1 s later, both asking before either answer arrives
        let (Step::Ask(a1), Step::Ask(a2)) = (local.step(T0 + 1000, 1, 6000), local.step(T0 + 1001, 1, 6000)) else {
            panic!("both ask");
        };
        let (g1, g2) = (object.ask(T0 + 1000, &a1), object.ask(T0 + 1001, &a2));
        assert!(g1.extra > 0 && g2.extra > 0, "{g1:?} {g2:?}");
        assert_eq!(local.answer(T0 + 1010, 1, &g1), None);
        assert_eq!(local.answer(T0 + 1011, 1, &g2), None);
        for i in 0..g1.extra + g2.extra {
            assert_eq!(local.step(T0 + 1100 + i as i64, 1, 6000), Step::Admit);
        }
        let Step::Ask(last) = local.step(T0 + 5000, 1, 6000) else { panic!("spent: asks") };
        let used: Vec<u64> = last.settle.iter().map(|s| s.used).collect();
        assert_eq!(used, [1 + g1.extra, 1 + g2.extra]);
        let answer = object.ask(T0 + 5000, &last);
        assert_eq!(object.allowances(), (answer.allowance != 0) as usize, "nothing else left to lapse");
    }

    #[test]
    fn a_batch_bigger_than_what_is_left_asks_and_hands_the_allowance_back() {
        let (mut local, mut object) = (LocalBudget::default(), KeyBudget::default());
        assert!(offer(&mut local, &mut object, T0, 1, 6000).0);
        assert!(offer(&mut local, &mut object, T0 + 1000, 1, 6000).0); // now with an allowance
        let busy = object.busy(T0 + 1000);
        assert!(busy > 2);
        match local.step(T0 + 1001, 10_000, 6000) {
            Step::Ask(ask) => {
                assert_eq!(ask.settle.iter().map(|s| s.used).collect::<Vec<_>>(), [1]);
                let a = object.ask(T0 + 1001, &ask);
                assert!(!a.admitted);
                assert_eq!(object.busy(T0 + 1001), 2, "the unused part is free again");
            }
            other => panic!("{other:?}"),
        }
    }
}
