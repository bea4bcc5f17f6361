//! ip_vs_twos.c: the power of two choices, two weighted random draws, the less loaded wins.
//!
//! The kernel draws with get_random_u32(); here a seeded generator makes runs reproducible.
use std::fmt::Write as _;

use rand_core::RngCore;

use super::{d, nothing, Dests};

/// What ip_vs_twos_schedule picks by.
pub(super) const RULE: &str = "two weighted random picks, keep the less loaded";

/// A twos draw: dest id, weight, overhead.
type Choice = (u32, i64, i64);

/// ip_vs_twos_schedule: two draws below the total weight; the second wins only if strictly
/// lighter per weight.
pub(super) fn schedule(
    list: &[u32],
    dests: &Dests,
    rng: &mut dyn RngCore,
    why: Option<&mut String>,
) -> Option<u32> {
    let total: i64 = list
        .iter()
        .map(|&id| dests.load(id))
        .filter(|x| x.usable())
        .map(|x| i64::from(x.weight))
        .sum();
    if total == 0 {
        return nothing(why);
    }
    let below = |rng: &mut dyn RngCore| (u64::from(rng.next_u32()) % (total as u64 + 1)) as i64;
    let mut r1 = below(rng);
    let mut r2 = below(rng);
    let mut c1: Option<Choice> = None;
    let mut c2: Option<Choice> = None;
    for &id in list {
        let x = dests.load(id);
        if !x.usable() {
            continue;
        }
        let w = i64::from(x.weight);
        r1 -= w;
        r2 -= w;
        if r1 <= 0 && c1.is_none() {
            c1 = Some((id, w, x.overhead()));
        }
        if r2 <= 0 && c2.is_none() {
            c2 = Some((id, w, x.overhead()));
        }
        if c1.is_some() && c2.is_some() {
            break;
        }
    }
    let (id1, w1, o1) = c1?;
    let pick = match c2 {
        Some((id2, w2, o2)) if w2 * o1 > w1 * o2 => id2,
        _ => id1,
    };
    if let Some(w) = why {
        let _ =
            write!(
            w,
            "random draws chose {} and {}; the second wins only if strictly lighter per weight: {}",
            d(dests, id1).cfg.addr,
            c2.map_or("nothing".to_string(), |c| d(dests, c.0)
                .cfg
                .addr
                .to_string()),
            match c2 {
                Some((_, w2, o2)) => format!(
                    "{o1}*{w2} = {} vs {o2}*{w1} = {}: {}",
                    o1 * w2,
                    o2 * w1,
                    if pick == id1 { "the first kept" } else { "the second" }
                ),
                None => "the first kept".to_string(),
            }
        );
    }
    Some(pick)
}
