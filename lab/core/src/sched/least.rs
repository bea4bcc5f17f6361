//! The least-load walk that ip_vs_lc.c, ip_vs_wlc.c and ip_vs_sed.c each spell out, and that
//! ip_vs_lblc.c / ip_vs_lblcr.c fall back to: one copy here, parameterised by the load.
use super::{d, nothing, Dests};
use crate::dest::DestLoad;

/// Which load a least-loaded scheduler compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Load {
    /// (active << 8) + inactive, unweighted.
    Lc,
    /// (active << 8) + inactive over weight.
    Wlc,
    /// (active + 1) over weight.
    Sed,
}

impl Load {
    #[inline]
    fn of(self, x: DestLoad) -> i64 {
        match self {
            Load::Lc | Load::Wlc => x.overhead(),
            Load::Sed => i64::from(x.active) + 1,
        }
    }
}

/// lc, wlc and sed: the least (weighted) load, strict comparisons so ties keep the earlier.
///
/// Inlined so each caller's constant `load` folds into the loop: the walk reads one 16-byte
/// `DestLoad` per server and compares with one i64 multiply pair, no per-step branching on
/// the kind.
#[inline(always)]
pub(crate) fn least(
    list: &[u32],
    dests: &Dests,
    load: Load,
    why: Option<&mut String>,
) -> Option<u32> {
    // The first usable server leads until a strictly lighter one follows.
    let Some(first) = list.iter().position(|&id| dests.load(id).usable()) else {
        return nothing(why);
    };
    let mut lid = list[first];
    let head = dests.load(lid);
    let (mut loh, mut lw) = (load.of(head), i64::from(head.weight));
    // Every comparison of the walk, in list order: the pick can turn on any of them.
    let mut decided: Vec<String> = Vec::new();
    let explain = why.is_some();
    for &id in &list[first + 1..] {
        let x = dests.load(id);
        if !x.usable() {
            continue;
        }
        let (doh, dw) = (load.of(x), i64::from(x.weight));
        let better = if load == Load::Lc {
            doh < loh
        } else {
            loh * dw > doh * lw
        };
        #[cfg(feature = "mutant-tiebreak")]
        let better = better
            || (crate::mutant::tiebreak()
                && if load == Load::Lc {
                    doh == loh
                } else {
                    loh * dw == doh * lw
                });
        if explain {
            decided.push(describe_compare(load, dests, lid, loh, id, doh, better));
        }
        if better {
            (lid, loh, lw) = (id, doh, dw);
        }
    }
    if let Some(w) = why {
        match decided.len() {
            0 => w.push_str("the only available server"),
            1 => {
                w.push_str("comparison: ");
                w.push_str(&decided[0]);
            }
            _ => {
                w.push_str("comparisons in list order: ");
                w.push_str(&decided.join("; "));
            }
        }
    }
    Some(lid)
}

fn describe_compare(
    load: Load,
    dests: &Dests,
    lid: u32,
    loh: i64,
    id: u32,
    doh: i64,
    better: bool,
) -> String {
    let (l, c) = (d(dests, lid), d(dests, id));
    let (lw, cw) = (i64::from(l.weight()), i64::from(c.weight()));
    if load == Load::Lc {
        return format!(
            "{} load {} vs {} load {}: {}",
            c.cfg.addr,
            doh,
            l.cfg.addr,
            loh,
            if better {
                "strictly less, so it takes the lead"
            } else {
                "not strictly less, the earlier keeps the lead"
            }
        );
    }
    format!(
        "{} {}*{} = {} vs {} {}*{} = {}: {}",
        l.cfg.addr,
        loh,
        cw,
        loh * cw,
        c.cfg.addr,
        doh,
        lw,
        doh * lw,
        if better {
            "the later is strictly lighter and takes the lead"
        } else {
            "not strictly lighter, the earlier keeps the lead"
        }
    )
}
