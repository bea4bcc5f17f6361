//! ip_vs_nq.c: never queue: an idle server at once, else shortest expected delay.
use std::fmt::Write as _;

use super::{d, nothing, Dests};

/// What ip_vs_nq_schedule picks by.
pub(super) const RULE: &str = "first server with no active conn, else least (active+1)/weight";

/// ip_vs_nq_schedule: the first server with no active conns, else sed's rule.
pub(super) fn schedule(list: &[u32], dests: &Dests, why: Option<&mut String>) -> Option<u32> {
    // (id, (active+1), weight) of the leader.
    let mut best: Option<(u32, i64, i64)> = None;
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
            Some((_, loh, lw)) => loh * dw > doh * lw,
        };
        if better {
            best = Some((id, doh, dw));
        }
    }
    if let Some(w) = why {
        if best.is_none() {
            return nothing(Some(w));
        }
        w.push_str("every server is busy: least (active+1)/weight as sed");
    }
    best.map(|(id, _, _)| id)
}
