//! ip_vs_fo.c: weighted failover, the highest weight takes everything.
use std::fmt::Write as _;

use super::{nothing, Dests};

/// What ip_vs_fo_schedule picks by.
pub(super) const RULE: &str = "highest weight (> 0) not overloaded";

/// ip_vs_fo_schedule: the highest weight, first on a tie (strict `>`).
pub(super) fn schedule(list: &[u32], dests: &Dests, why: Option<&mut String>) -> Option<u32> {
    let mut best: Option<u32> = None;
    let mut hw = 0;
    for &id in list {
        let x = dests.load(id);
        if x.overloaded == 0 && x.weight > hw {
            best = Some(id);
            hw = x.weight;
        }
    }
    if let Some(w) = why {
        match best {
            Some(_) => {
                let _ = write!(w, "highest weight {hw}, the first on a tie");
            }
            None => return nothing(Some(w)),
        }
    }
    best
}
