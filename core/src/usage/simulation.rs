//! The counters, simulated across many isolates: counts land on isolates at random; each
//! isolate flushes now and then, and a flush fails outright or fails after ClickHouse wrote it
//! (a timeout), as a slow or flapping server does. What readers see (one value per flush id
//! and slot, summed: `sql::counters_sql`) must equal what was counted, exactly. The same run
//! with failed counts merged into the next flush (the mistake `Tally` avoids) over-counts,
//! which shows the check can fail.
//!
//! `cargo test --lib usage::simulation -- --nocapture` prints the figures.

use super::tally::{Flush, Slot, Tally};
use super::Counter;
use crate::sim_rng::Rng;
use std::collections::{BTreeMap, HashMap};

#[derive(Clone, Copy)]
enum Retry {
    /// As `Tally` does: a failed flush is resent as it was.
    AsItWas,
    /// Failed counts added back to the pending ones (a new id): wrong.
    Merged,
}

/// What was counted, and what the store ends up showing, per slot.
fn run(isolates: usize, counts: u64, fail_pct: u64, seed: u64, retry: Retry) -> (BTreeMap<Slot, u64>, BTreeMap<Slot, u64>, u64) {
    let mut rng = Rng(seed);
    let mut fleet: Vec<Tally> = (0..isolates).map(|_| Tally::default()).collect();
    let mut truth: BTreeMap<Slot, u64> = BTreeMap::new();
    let mut store: Vec<(Slot, String, u64)> = Vec::new();
    let mut next_id = 0u64;
    let mut inserts = 0u64;
    let mut flush = |t: &mut Tally, rng: &mut Rng, store: &mut Vec<(Slot, String, u64)>, must_land: bool| {
        next_id += 1;
        let flushes: Vec<Flush> = t.take(format!("f{next_id}"));
        if flushes.is_empty() {
            return;
        }
        inserts += 1;
        let roll = if must_land { 100 } else { rng.below(100) };
        let written = roll >= fail_pct / 2; // half the failures wrote the rows anyway
        let answered_ok = roll >= fail_pct;
        if written {
            for f in &flushes {
                store.extend(f.counts.iter().map(|(s, n)| (s.clone(), f.id.clone(), *n)));
            }
        }
        if !answered_ok {
            match retry {
                Retry::AsItWas => t.failed(flushes),
                Retry::Merged => {
                    for (s, n) in flushes.into_iter().flat_map(|f| f.counts) {
                        t.add(s, n, 0);
                    }
                }
            }
        }
    };
    for i in 0..counts {
        let slot = Slot {
            project_id: format!("p{}", rng.below(5)),
            day: format!("d{}", i * 3 / counts),
            counter: Counter::ALL[rng.below(3) as usize],
            dim: format!("c{}", rng.below(4)),
        };
        let n = 1 + rng.below(3);
        *truth.entry(slot.clone()).or_insert(0) += n;
        let who = rng.below(isolates as u64) as usize;
        fleet[who].add(slot, n, i as i64);
        // Now and then an isolate's flush is due.
        if rng.below(20) == 0 {
            let who = rng.below(isolates as u64) as usize;
            flush(&mut fleet[who], &mut rng, &mut store, false);
        }
    }
    // In the end every isolate gets a flush through (ClickHouse back up).
    for t in fleet.iter_mut() {
        while !t.is_empty() {
            flush(t, &mut rng, &mut store, true);
        }
    }
    // What readers see: any(n) per (slot, flush id), summed.
    let mut per_flush: HashMap<(Slot, String), u64> = HashMap::new();
    for (s, id, n) in store {
        per_flush.entry((s, id)).or_insert(n);
    }
    let mut seen: BTreeMap<Slot, u64> = BTreeMap::new();
    for ((s, _), n) in per_flush {
        *seen.entry(s).or_insert(0) += n;
    }
    (truth, seen, inserts)
}

#[test]
fn counters_stay_exact_across_isolates_with_failing_and_duplicated_flushes() {
    println!("isolates  counts  failed flushes  inserts  counted  seen");
    for (isolates, fail_pct, seed) in [(1, 0, 1), (10, 20, 2), (200, 30, 3), (1_000, 50, 4), (1_000, 90, 5)] {
        let (truth, seen, inserts) = run(isolates, 50_000, fail_pct, seed, Retry::AsItWas);
        let (a, b): (u64, u64) = (truth.values().sum(), seen.values().sum());
        println!("{isolates:>8}  {:>6}  {fail_pct:>13}%  {inserts:>7}  {a:>7}  {b:>5}", 50_000);
        assert_eq!(truth, seen, "{isolates} isolates, {fail_pct}% failed flushes");
        assert!(inserts < 50_000 / 10, "an insert per flush, not per count");
    }
}

#[test]
fn merging_failed_counts_into_a_new_flush_would_count_twice() {
    let (truth, seen, _) = run(200, 50_000, 30, 3, Retry::Merged);
    let (a, b): (u64, u64) = (truth.values().sum(), seen.values().sum());
    assert!(b > a, "the check must see double counting: counted {a}, seen {b}");
}
