//! ip_vs_lblcr.c: locality-based least connection with replication: a destination address
//! maps to a server set that grows under load and shrinks when left unchanged.
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use super::locality::{bucket_of, dest_opt, is_overloaded, wlc_fallback, CacheEntry, Table};
use super::{d, Dests, SchedInput};

/// What ip_vs_lblcr_schedule picks by.
pub(super) const RULE: &str = "per destination address server set, else weighted least connection";

impl CacheEntry for LblcrEntry {
    fn lastuse(&self) -> Duration {
        self.lastuse
    }

    fn holds(&self, id: u32) -> bool {
        self.set.contains(&id)
    }
}

/// struct ip_vs_lblcr_entry.
#[derive(Debug, Clone)]
pub(crate) struct LblcrEntry {
    addr: IpAddr,
    /// The server set, newest first.
    set: Vec<u32>,
    lastmod: Duration,
    lastuse: Duration,
}

/// lblcr state: destination address -> a set of servers that grows under load; sysctl
/// lblcr_expiration is both the set shrink and the full-check horizon.
pub(crate) type Lblcr = Table<LblcrEntry>;

impl Lblcr {
    /// ip_vs_lblcr_schedule.
    pub fn schedule(
        &mut self,
        list: &[u32],
        dests: &Dests,
        input: &SchedInput,
        why: Option<&mut String>,
    ) -> Option<u32> {
        let b = bucket_of(input.dst);
        let exp = self.expiration;
        if let Some(en) = self.buckets[b].iter_mut().find(|e| e.addr == input.dst) {
            en.lastuse = input.now;
            let min = set_min(&en.set, dests);
            if en.set.len() > 1 && input.now > en.lastmod + exp {
                if let Some(m) = set_max(&en.set, dests) {
                    en.set.retain(|&x| x != m);
                    en.lastmod = input.now;
                }
            }
            if let Some(id) = min {
                if !is_overloaded(d(dests, id), list, dests) {
                    if let Some(w) = why {
                        let _ = write!(
                            w,
                            "cache hit: least loaded of the {} server set for {}",
                            en.set.len(),
                            input.dst
                        );
                    }
                    return Some(id);
                }
            }
            let id = wlc_fallback(list, dests, why, |inner| {
                format!(
                    "set for {} busy: weighted least connection over all, added to the set: {inner}",
                    input.dst
                )
            })?;
            if !en.set.contains(&id) {
                en.set.insert(0, id);
                en.lastmod = input.now;
            }
            return Some(id);
        }
        let id = wlc_fallback(list, dests, why, |inner| {
            format!(
                "no cache entry for {}: weighted least connection, {inner}",
                input.dst
            )
        })?;
        let entry = LblcrEntry {
            addr: input.dst,
            set: vec![id],
            lastmod: input.now,
            lastuse: input.now,
        };
        self.insert_new(b, entry);
        Some(id)
    }
}

/// ip_vs_dest_set_min: least weighted load in the set, skipping overloaded and unavailable.
fn set_min(set: &[u32], dests: &Dests) -> Option<u32> {
    let mut best: Option<(u32, i64)> = None;
    for &id in set {
        let Some(x) = dest_opt(dests, id) else {
            continue;
        };
        if x.overloaded {
            continue;
        }
        match best {
            None => {
                if x.weight() > 0 && x.available {
                    best = Some((id, x.overhead()));
                }
            }
            Some((lid, loh)) => {
                let lw = dest_opt(dests, lid).map_or(0, |l| i64::from(l.weight()));
                let doh = x.overhead();
                if loh * i64::from(x.weight()) > doh * lw && x.available {
                    best = Some((id, doh));
                }
            }
        }
    }
    best.map(|(id, _)| id)
}

/// ip_vs_dest_set_max: most weighted load in the set (the one to drop when it shrinks).
fn set_max(set: &[u32], dests: &Dests) -> Option<u32> {
    let mut best: Option<(u32, i64)> = None;
    for &id in set {
        let Some(x) = dest_opt(dests, id) else {
            continue;
        };
        match best {
            None => {
                if x.weight() > 0 {
                    best = Some((id, x.overhead()));
                }
            }
            Some((mid, moh)) => {
                let mw = dest_opt(dests, mid).map_or(0, |m| i64::from(m.weight()));
                let doh = x.overhead();
                if moh * i64::from(x.weight()) < doh * mw && x.weight() > 0 {
                    best = Some((id, doh));
                }
            }
        }
    }
    best.map(|(id, _)| id)
}
