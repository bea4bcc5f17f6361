//! ip_vs_nq.c: never queue: an idle server at once, else shortest expected delay.
use std::fmt::Write as _;

use super::{d, nothing, Dests};

/// What ip_vs_nq_schedule picks by.
pub(super) const RULE: &str = "first server with no active conn, else least (active+1)/weight";

/// ip_vs_nq_schedule: the first server with no active conns, else sed's rule.
pub(super) fn schedule(list: &[u32], dests: &Dests, why: Option<&mut String>) -> Option<u32> {
    // (id, (active+1), weight) of the leader.
    let mut best: Option<(u32, i64, i64)> = None;
    // The comparisons so far, in list order, for when no server turns out idle.
    let mut decided: Vec<String> = Vec::new();
    for &id in list {
        let x = dests.load(id);
        if !x.usable() {
            continue;
        }
        if x.active == 0 {
            if let Some(w) = why {
                let _ = write!(
                    w,
                    "{} has no active conn: taken at once",
                    d(dests, id).cfg.addr
                );
            }
            return Some(id);
        }
        let (doh, dw) = (i64::from(x.active) + 1, i64::from(x.weight));
        let better = match best {
            None => true,
            Some((lid, loh, lw)) => {
                let better = loh * dw > doh * lw;
                if why.is_some() {
                    decided.push(format!(
                        "{} {loh}*{dw} = {} vs {} {doh}*{lw} = {}: {}",
                        d(dests, lid).cfg.addr,
                        loh * dw,
                        d(dests, id).cfg.addr,
                        doh * lw,
                        if better {
                            "the later is strictly lighter and takes the lead"
                        } else {
                            "not strictly lighter, the earlier keeps the lead"
                        }
                    ));
                }
                better
            }
        };
        if better {
            best = Some((id, doh, dw));
        }
    }
    if let Some(w) = why {
        if best.is_none() {
            return nothing(Some(w));
        }
        w.push_str("no available server is idle, so least (active+1)/weight as sed");
        if !decided.is_empty() {
            w.push_str(": ");
            w.push_str(&decided.join("; "));
        }
    }
    best.map(|(id, _, _)| id)
}
