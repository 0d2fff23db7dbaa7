//! What the key's object forgets when Cloudflare evicts it, measured on the code it runs.
//!
//! The object keeps its minute in memory only. Cloudflare evicts an object that has had no
//! request for a while (70 to 140 s, by its lifecycle documentation), and restarts objects now
//! and then (a deploy, a host moving). Eviction after idling loses nothing a limit needs: the
//! object hands out allowances of at most `ALLOWANCE_MS`, so every event it admitted, or let an
//! isolate admit, is at least 70 - 10 = 60 s old when it is evicted, in an earlier calendar
//! minute than anything that comes after. A restart while a key is busy is different: the
//! object forgets the minute so far, and that minute may admit up to twice the limit, once.
//! Both are measured here, over sparse bursty traffic that a low-rate key sends.

use super::*;
use crate::sim_rng::Rng;
use std::collections::BTreeMap;

/// The shortest idle time after which Cloudflare evicts an object.
const EVICT_IDLE_MS: i64 = 70_000;
/// Minute-aligned start, so calendar minutes are the window's minutes.
const T0: i64 = 1_800_000_000_000;

/// Bursts of 1 to 3x the limit, each within 2 s, separated by idle gaps of 1 to 150 s, over
/// three isolates: (time, isolate), in time order.
fn sparse_bursts(limit: u32, seed: u64, hours: i64) -> Vec<(i64, usize)> {
    let mut rng = Rng(seed);
    let (mut t, mut out) = (T0, Vec::new());
    while t < T0 + hours * 3_600_000 {
        let n = 1 + (rng.unit() * 3.0 * limit as f64) as usize;
        for _ in 0..n {
            out.push((t + (rng.unit() * 2_000.0) as i64, (rng.unit() * 3.0) as usize));
        }
        t += 2_000 + 1_000 + (rng.unit() * 149_000.0) as i64;
    }
    out.sort_unstable();
    out
}

/// Accepted events per calendar minute when the object is replaced by a fresh one after
/// `evict_idle_ms` without a request, and at each time in `restarts`.
fn run(limit: u32, traffic: &[(i64, usize)], evict_idle_ms: i64, restarts: &[i64]) -> BTreeMap<i64, u64> {
    let mut object = KeyBudget::default();
    let mut isolates = vec![LocalBudget::default(); 3];
    let (mut last_request, mut next_restart) = (T0, 0);
    let mut accepted = BTreeMap::new();
    for &(now, i) in traffic {
        let admitted = match isolates[i].step(now, 1, limit) {
            Step::Admit => true,
            Step::Refuse { .. } => false,
            Step::Ask(ask) => {
                let restarted = next_restart < restarts.len() && restarts[next_restart] <= now;
                if restarted {
                    next_restart += 1;
                }
                if restarted || now - last_request >= evict_idle_ms {
                    object = KeyBudget::default();
                }
                last_request = now;
                let answer = object.ask(now, &ask);
                isolates[i].answer(now, 1, &answer);
                answer.admitted
            }
        };
        if admitted {
            *accepted.entry((now - T0) / WINDOW_MS).or_insert(0) += 1;
        }
    }
    accepted
}

fn most_in_a_minute(accepted: &BTreeMap<i64, u64>) -> u64 {
    accepted.values().copied().max().unwrap_or(0)
}

#[test]
fn eviction_after_idling_never_lets_a_minute_pass_its_limit() {
    println!("\nper-key limiter: the object evicted after {} s idle (Cloudflare: 70-140 s)", EVICT_IDLE_MS / 1000);
    println!("limit/min  seed  most accepted in a calendar minute: kept / evicted at 70 s / (evicted at 5 s)");
    for limit in [5, 10, 60, 600, 6_000] {
        for seed in 1..=5u64 {
            let traffic = sparse_bursts(limit, seed * 7919 + limit as u64, 6);
            let kept = most_in_a_minute(&run(limit, &traffic, i64::MAX, &[]));
            let evicted = most_in_a_minute(&run(limit, &traffic, EVICT_IDLE_MS, &[]));
            let too_soon = most_in_a_minute(&run(limit, &traffic, 5_000, &[]));
            println!("{limit:>9}  {seed:>4}  {kept:>6} / {evicted:>6} / ({too_soon})");
            assert!(kept <= limit as u64, "limit {limit}, seed {seed}: {kept} in a minute without eviction");
            assert!(evicted <= limit as u64, "limit {limit}, seed {seed}: {evicted} in a minute with eviction at 70 s idle");
        }
    }
}

/// The check above can fail: an object forgotten after 5 s of idling (which Cloudflare never
/// does) lets some minute pass its limit.
#[test]
fn eviction_soon_after_a_burst_would_break_the_limit() {
    let broken = [5u32, 10, 60].iter().any(|&limit| {
        (1..=5u64).any(|seed| {
            let traffic = sparse_bursts(limit, seed * 7919 + limit as u64, 6);
            most_in_a_minute(&run(limit, &traffic, 5_000, &[])) > limit as u64
        })
    });
    assert!(broken, "forgetting a burst 5 s later should let a minute pass its limit");
}

/// A restart while a key is busy forgets the minute so far: measured, at most twice the
/// limit in that minute, and only in the minutes a restart falls in.
#[test]
fn a_restart_while_busy_admits_at_most_one_extra_limit_in_its_minute() {
    for limit in [10u32, 600, 6_000] {
        // Three times the limit, evenly paced, for 30 minutes; a restart every 7 minutes.
        let per_ms = 3.0 * limit as f64 / 60_000.0;
        let traffic: Vec<(i64, usize)> =
            (0..(per_ms * 1_800_000.0) as i64).map(|n| (T0 + (n as f64 / per_ms) as i64, (n % 3) as usize)).collect();
        let restarts: Vec<i64> = (1..=4).map(|k| T0 + k * 7 * 60_000 + 20_000).collect();
        let accepted = run(limit, &traffic, EVICT_IDLE_MS, &restarts);
        let restart_minutes: Vec<i64> = restarts.iter().map(|r| (r - T0) / WINDOW_MS).collect();
        for (minute, n) in &accepted {
            let bound = if restart_minutes.contains(minute) { 2 * limit as u64 } else { limit as u64 };
            assert!(*n <= bound, "limit {limit}: minute {minute} accepted {n} (bound {bound})");
        }
        let worst = restart_minutes.iter().map(|m| accepted.get(m).copied().unwrap_or(0)).max().unwrap_or(0);
        println!("limit {limit}/min: a restart's minute accepted at most {worst} ({:.2}x the limit)", worst as f64 / limit as f64);
    }
}
