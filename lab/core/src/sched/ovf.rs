//! ip_vs_ovf.c: overflow, the highest weight until its active conns exceed its weight.
use std::fmt::Write as _;

use super::Dests;

/// What ip_vs_ovf_schedule picks by.
pub(super) const RULE: &str = "highest weight whose active conns do not exceed its weight";

/// ip_vs_ovf_schedule: the highest weight among servers whose active conns do not exceed it.
pub(super) fn schedule(list: &[u32], dests: &Dests, why: Option<&mut String>) -> Option<u32> {
    let mut best: Option<u32> = None;
    let mut hw = 0;
    for &id in list {
        let x = dests.load(id);
        let w = x.weight;
        if x.overloaded != 0 || x.active > w || w == 0 {
            continue;
        }
        if best.is_none() || w > hw {
            best = Some(id);
            hw = w;
        }
    }
    if let Some(why) = why {
        match best {
            Some(_) => {
                let _ = write!(
                    why,
                    "highest weight {hw} among servers with active conns <= weight"
                );
            }
            None => {
                why.push_str("every server has more active conns than its weight");
            }
        }
    }
    best
}
