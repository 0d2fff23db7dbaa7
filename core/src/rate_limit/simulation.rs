//! The per-key limiter, simulated: 1 to 1,000 isolates, uneven traffic, isolates that appear
//! and vanish, keys with tiny and huge limits. It runs the code the Durable Object
//! (`KeyBudget`) and the isolates (`LocalBudget`) run. The object answers each ask when it is
//! sent; the answer reaches the isolate `latency_ms` later, and the isolate's requests in
//! between see no allowance and ask too (as concurrent requests do in a real isolate).
//!
//! Traffic: the key's events are evenly paced in time (so "50% of the limit" holds in every
//! minute, and any refusal is the distributed limiter's doing, not a burst over the limit),
//! spread at random over isolates, every fifth of which gets 10x the traffic of the others.
//! Every second each isolate vanishes with probability `churn_per_s`, with whatever it held,
//! and a fresh one takes its place; in `ramp` scenarios the fleet also grows from 1 isolate to
//! all of them and shrinks back (traffic moves to the live ones).
//!
//! `cargo test --lib rate_limit::simulation -- --nocapture` prints the table.

use super::*;
use crate::sim_rng::Rng;
use std::collections::VecDeque;

#[derive(Debug, Clone, Copy)]
struct Scenario {
    isolates: usize,
    /// Offered traffic as a share of the limit (0.5, 2.0).
    load: f64,
    limit: u32,
    minutes: i64,
    /// Every second each isolate vanishes with this probability (a new one appears instead).
    churn_per_s: f64,
    /// From the object's answer to the isolate.
    latency_ms: i64,
    /// The fleet grows from 1 isolate to all over the first half and shrinks back over the second.
    ramp: bool,
    /// Events per request (a server SDK's batches); 1 for the browser.
    batch: u64,
}

#[derive(Debug, Clone)]
struct Outcome {
    offered: u64,
    refused: u64,
    round_trips: u64,
    /// Events accepted in each calendar minute (by the request's time).
    accepted_per_minute: Vec<u64>,
}

impl Outcome {
    fn refused_pct(&self) -> f64 {
        100.0 * self.refused as f64 / self.offered.max(1) as f64
    }
    fn round_trips_per_1000(&self) -> f64 {
        1000.0 * self.round_trips as f64 / self.offered.max(1) as f64
    }
    /// Mean accepted per minute over the steady-state minutes: all but the first two (the
    /// first minute starts from an empty window, the second still has its decaying weight).
    fn steady_accepted_per_minute(&self) -> f64 {
        let steady = &self.accepted_per_minute[2..];
        steady.iter().sum::<u64>() as f64 / steady.len() as f64
    }
}

/// Minute-aligned start, so calendar minutes are the window's minutes.
const T0: i64 = 1_800_000_000_000;

struct Pending {
    at_ms: i64,
    isolate: usize,
    generation: u64,
    sent_ms: i64,
    answer: Answer,
}

/// The key's object and its isolates.
struct Fleet {
    object: KeyBudget,
    isolates: Vec<LocalBudget>,
    /// Bumped when an isolate is replaced: answers on their way to the old one are lost with it.
    generation: Vec<u64>,
    pending: VecDeque<Pending>,
}

impl Fleet {
    fn replace(&mut self, i: usize) {
        self.isolates[i] = LocalBudget::default();
        self.generation[i] += 1;
    }

    /// Answers that have arrived by `now`: (request time, admitted).
    fn deliver(&mut self, now: i64, cost: u64, out: &mut Outcome) {
        while self.pending.front().is_some_and(|p| p.at_ms <= now) {
            let p = self.pending.pop_front().expect("front");
            if self.generation[p.isolate] == p.generation {
                self.isolates[p.isolate].answer(p.at_ms, cost, &p.answer);
            }
            // The request was decided by the object's answer, whether or not its isolate lives.
            out.record(p.sent_ms, cost, p.answer.admitted);
        }
    }
}

impl Outcome {
    fn record(&mut self, at_ms: i64, cost: u64, admitted: bool) {
        if admitted {
            self.accepted_per_minute[((at_ms - T0) / WINDOW_MS) as usize] += cost;
        } else {
            self.refused += cost;
        }
    }
}

fn run(s: Scenario, seed: u64) -> Outcome {
    let mut rng = Rng(seed ^ ((s.isolates as u64) << 32) ^ s.limit as u64);
    let weights: Vec<f64> = (0..s.isolates).map(|i| if i % 5 == 0 { 10.0 } else { 1.0 }).collect();
    let cumulative: Vec<f64> = weights
        .iter()
        .scan(0.0, |sum, w| {
            *sum += w;
            Some(*sum)
        })
        .collect();
    let mut fleet = Fleet {
        object: KeyBudget::default(),
        isolates: vec![LocalBudget::default(); s.isolates],
        generation: vec![0; s.isolates],
        pending: VecDeque::new(),
    };
    let requests_per_minute = s.load * s.limit as f64 / s.batch as f64;
    let gap_ms = 60_000.0 / requests_per_minute;
    let total = (requests_per_minute * s.minutes as f64).round() as u64;
    let span_ms = (s.minutes * WINDOW_MS) as f64;
    let mut out = Outcome { offered: 0, refused: 0, round_trips: 0, accepted_per_minute: vec![0; s.minutes as usize] };
    let mut next_second = T0 + 1000;
    let mut live = s.isolates;
    for n in 0..total {
        let now = T0 + (n as f64 * gap_ms) as i64;
        fleet.deliver(now, s.batch, &mut out);
        while now >= next_second {
            for i in 0..live {
                if rng.unit() < s.churn_per_s {
                    fleet.replace(i);
                }
            }
            if s.ramp {
                let x = (next_second - T0) as f64 / span_ms; // 0..1: up, then down
                let share = 1.0 - (2.0 * x - 1.0).abs();
                let now_live = ((s.isolates as f64 * share).ceil() as usize).clamp(1, s.isolates);
                for i in now_live..live {
                    fleet.replace(i); // gone
                }
                live = now_live;
            }
            next_second += 1000;
        }
        let pick = rng.unit() * cumulative[live - 1];
        let i = cumulative[..live].partition_point(|c| *c <= pick).min(live - 1);
        out.offered += s.batch;
        match fleet.isolates[i].step(now, s.batch, s.limit) {
            Step::Admit => out.record(now, s.batch, true),
            Step::Refuse { .. } => out.record(now, s.batch, false),
            Step::Ask(ask) => {
                out.round_trips += 1;
                let answer = fleet.object.ask(now, &ask);
                if s.latency_ms == 0 {
                    fleet.isolates[i].answer(now, s.batch, &answer);
                    out.record(now, s.batch, answer.admitted);
                } else {
                    let generation = fleet.generation[i];
                    fleet.pending.push_back(Pending { at_ms: now + s.latency_ms, isolate: i, generation, sent_ms: now, answer });
                }
            }
        }
    }
    fleet.deliver(i64::MAX, s.batch, &mut out);
    out
}

fn scenarios() -> Vec<Scenario> {
    let base = Scenario { isolates: 1, load: 0.5, limit: 6_000, minutes: 5, churn_per_s: 1.0 / 60.0, latency_ms: 0, ramp: false, batch: 1 };
    let mut v = Vec::new();
    for &isolates in &[1, 10, 100, 300, 1000] {
        for &load in &[0.5, 2.0] {
            v.push(Scenario { isolates, load, ..base });
        }
    }
    for &limit in &[5, 60, 60_000, 1_000_000] {
        for &isolates in &[1, 100, 1000] {
            for &load in &[0.5, 2.0] {
                let minutes = if limit >= 1_000_000 { 4 } else { 6 };
                v.push(Scenario { isolates, load, limit, minutes, ..base });
            }
        }
    }
    // Answers 25 ms after the ask; a fleet that grows to 1,000 and shrinks back; batches.
    for &load in &[0.5, 2.0] {
        v.push(Scenario { isolates: 100, load, latency_ms: 25, ..base });
        v.push(Scenario { isolates: 100, load, limit: 1_000_000, minutes: 4, latency_ms: 25, ..base });
        v.push(Scenario { isolates: 1000, load, minutes: 6, ramp: true, ..base });
        v.push(Scenario { isolates: 1000, load, limit: 60_000, minutes: 6, ramp: true, latency_ms: 25, ..base });
        v.push(Scenario { isolates: 10, load, limit: 60_000, batch: 50, latency_ms: 25, ..base });
    }
    v
}

/// What the limiter must do.
fn check(s: &Scenario, o: &Outcome) -> Vec<String> {
    let mut failures = Vec::new();
    let what = format!("{} isolates, {:.0}% of {}/min", s.isolates, s.load * 100.0, s.limit);
    if s.load <= 0.5 && o.refused > 0 {
        failures.push(format!("{what}: {} refused ({:.2}%)", o.refused, o.refused_pct()));
    }
    if s.load >= 2.0 {
        let steady = o.steady_accepted_per_minute();
        let ratio = steady / s.limit as f64;
        if !(0.9..=1.1).contains(&ratio) {
            failures.push(format!("{what}: {steady:.1} accepted per minute ({:.1}% of the limit)", ratio * 100.0));
        }
    }
    // Never more than the limit in any calendar minute (see rate_limit::budget).
    for (m, a) in o.accepted_per_minute.iter().enumerate() {
        if *a > s.limit as u64 {
            failures.push(format!("{what}: minute {m} accepted {a}"));
        }
    }
    failures
}

#[test]
fn allowances_hold_the_limit_across_isolates() {
    println!("\nper-key limiter: allowances sized to each isolate's rate, unused parts handed back");
    println!("(churn: each isolate vanishes with p=1/60 per second; steady = minutes 3 and on)");
    println!("isolates  fleet  traffic    limit  batch  latency  refused %  accepted/min steady  vs limit  most in a minute  round trips/1000 events");
    let mut failures = Vec::new();
    for s in scenarios() {
        let o = run(s, 0x5eed);
        let steady = o.steady_accepted_per_minute();
        println!(
            "{:>8}  {:>5}  {:>6.0}%  {:>7}  {:>5}  {:>5} ms  {:>8.2}%  {:>19.1}  {:>7.1}%  {:>16}  {:>23.1}",
            s.isolates,
            if s.ramp { "ramp" } else { "fixed" },
            s.load * 100.0,
            s.limit,
            s.batch,
            s.latency_ms,
            o.refused_pct(),
            steady,
            100.0 * steady / s.limit as f64,
            o.accepted_per_minute.iter().max().unwrap_or(&0),
            o.round_trips_per_1000()
        );
        failures.extend(check(&s, &o));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
