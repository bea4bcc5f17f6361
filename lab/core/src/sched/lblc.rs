//! ip_vs_lblc.c: locality-based least connection: a destination address sticks to one
//! server while that server is not overloaded; otherwise weighted least connection.
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use super::least::{least, Load};
use super::locality::{bucket_of, dest_opt, is_overloaded, CacheEntry, Table, MAX_SIZE};
use super::{Dests, SchedInput};

/// What ip_vs_lblc_schedule picks by.
pub(super) const RULE: &str = "per destination address cache, else weighted least connection";

impl CacheEntry for LblcEntry {
    fn lastuse(&self) -> Duration {
        self.lastuse
    }
}

/// struct ip_vs_lblc_entry.
#[derive(Debug, Clone)]
pub(crate) struct LblcEntry {
    addr: IpAddr,
    dest: u32,
    lastuse: Duration,
}

/// lblc state: 1024 buckets, newest entry first in each.
#[derive(Debug, Clone)]
pub(crate) struct Lblc {
    /// The cache; the full check drops entries unused for sysctl lblc_expiration.
    pub t: Table<LblcEntry>,
}

impl Lblc {
    pub fn new(now: Duration) -> Self {
        Lblc { t: Table::new(now) }
    }

    /// ip_vs_lblc_schedule (with ip_vs_lblc_get and ip_vs_lblc_new).
    pub fn schedule(
        &mut self,
        list: &[u32],
        dests: &Dests,
        input: &SchedInput,
        why: Option<&mut String>,
    ) -> Option<u32> {
        let b = bucket_of(input.dst);
        if let Some(en) = self.t.buckets[b].iter_mut().find(|e| e.addr == input.dst) {
            en.lastuse = input.now;
            if let Some(dest) = dest_opt(dests, en.dest) {
                if dest.available && dest.weight() > 0 && !is_overloaded(dest, list, dests) {
                    if let Some(w) = why {
                        let _ = write!(w, "cache hit: {} -> {}", input.dst, dest.cfg.addr);
                    }
                    return Some(en.dest);
                }
            }
        }
        let mut inner = why.as_ref().map(|_| String::new());
        let id = least(list, dests, Load::Wlc, inner.as_mut());
        if let (Some(w), Some(inner)) = (why, inner) {
            let _ = write!(
                w,
                "no usable cache entry for {}: weighted least connection, {inner}",
                input.dst
            );
        }
        let id = id?;
        // ip_vs_lblc_new: replace an entry pointing elsewhere, unless the table is full.
        let bucket = &mut self.t.buckets[b];
        if let Some(pos) = bucket.iter().position(|e| e.addr == input.dst) {
            if bucket[pos].dest == id {
                return Some(id);
            }
            bucket.remove(pos);
            self.t.entries -= 1;
        }
        if self.t.entries <= MAX_SIZE {
            bucket.insert(
                0,
                LblcEntry {
                    addr: input.dst,
                    dest: id,
                    lastuse: input.now,
                },
            );
            self.t.entries += 1;
        }
        Some(id)
    }

    /// Whether a cache entry points at `id` (the kernel's entry holds a dest reference).
    pub fn holds(&self, id: u32) -> bool {
        self.t.buckets.iter().flatten().any(|e| e.dest == id)
    }
}
