//! ip_vs_wrr.c: weighted round robin, passes over the list at a falling current weight.
use std::fmt::Write as _;

use super::{d, gcd_weight, nothing, Dests};

/// What ip_vs_wrr_schedule picks by.
pub(super) const RULE: &str = "weighted round robin: passes at falling current weight cw";

/// struct ip_vs_wrr_mark: cursor, current weight, maximum weight and the gcd step.
#[derive(Debug, Clone)]
pub(crate) struct Wrr {
    cl: Option<usize>,
    cw: i64,
    mw: i64,
    di: i64,
}

/// ip_vs_wrr_gcd_weight: 1 when no server has a positive weight.
fn wrr_gcd(list: &[u32], dests: &Dests) -> i64 {
    i64::from(gcd_weight(list.iter().map(|&id| d(dests, id).weight())).max(1))
}

/// ip_vs_wrr_max_weight.
fn wrr_max(list: &[u32], dests: &Dests) -> i64 {
    list.iter()
        .map(|&id| i64::from(d(dests, id).weight()))
        .max()
        .unwrap_or(0)
        .max(0)
}

impl Wrr {
    /// ip_vs_wrr_init_svc: cw starts at the maximum outright.
    pub fn new(list: &[u32], dests: &Dests) -> Self {
        let di = wrr_gcd(list, dests);
        let mw = wrr_max(list, dests) - (di - 1);
        Wrr {
            cl: None,
            cw: mw,
            mw,
            di,
        }
    }

    /// ip_vs_wrr_dest_changed: keep cw unless it is 0 or above the new maximum.
    pub fn dest_changed(&mut self, list: &[u32], dests: &Dests) {
        self.cl = None;
        self.di = wrr_gcd(list, dests);
        self.mw = wrr_max(list, dests) - (self.di - 1);
        if self.cw > self.mw || self.cw == 0 {
            self.cw = self.mw;
        } else if self.di > 1 {
            self.cw = (self.cw / self.di) * self.di + 1;
        }
    }

    /// ip_vs_wrr_schedule.
    pub fn schedule(
        &mut self,
        list: &[u32],
        dests: &Dests,
        why: Option<&mut String>,
    ) -> Option<u32> {
        let Wrr { cl, cw, mw, di } = self;
        if *mw == 0 {
            return nothing(why);
        }
        let last = *cl;
        let mut pos = *cl;
        let mut stop: Option<usize> = None;
        let mut last_pass = false;
        let mut restarted = false;
        loop {
            let start = pos.map_or(0, |i| i + 1);
            for (i, &id) in list.iter().enumerate().skip(start) {
                let x = dests.load(id);
                if x.overloaded == 0 && i64::from(x.weight) >= *cw {
                    *cl = Some(i);
                    if let Some(w) = why {
                        let _ = write!(
                            w,
                            "current weight cw={} (max {} step {}): first server from the cursor with weight >= cw",
                            cw, mw, di
                        );
                    }
                    return Some(id);
                }
                if stop == Some(i) {
                    *cl = Some(i);
                    return nothing(why);
                }
            }
            pos = None;
            *cw -= *di;
            if *cw <= 0 {
                *cw = *mw;
                if last_pass || last.is_none() {
                    *cl = None;
                    return nothing(why);
                }
                restarted = true;
            }
            last_pass = *cw <= *di;
            if last_pass && restarted && last.is_some() {
                stop = last;
            }
        }
    }
}
