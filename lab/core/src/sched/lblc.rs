//! ip_vs_lblc.c: locality-based least connection: a destination address sticks to one
//! server while that server is not overloaded; otherwise weighted least connection.
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use super::locality::{bucket_of, dest_opt, is_overloaded, wlc_fallback, CacheEntry, Table};
use super::{Dests, SchedInput};

/// What ip_vs_lblc_schedule picks by.
pub(super) const RULE: &str = "per destination address cache, else weighted least connection";

impl CacheEntry for LblcEntry {
    fn lastuse(&self) -> Duration {
        self.lastuse
    }

    fn holds(&self, id: u32) -> bool {
        self.dest == id
    }
}

/// struct ip_vs_lblc_entry.
#[derive(Debug, Clone)]
pub(crate) struct LblcEntry {
    addr: IpAddr,
    dest: u32,
    lastuse: Duration,
}

/// lblc state: 1024 buckets, newest entry first in each; the full check drops entries
/// unused for sysctl lblc_expiration.
pub(crate) type Lblc = Table<LblcEntry>;

impl Lblc {
    /// ip_vs_lblc_schedule (with ip_vs_lblc_get and ip_vs_lblc_new).
    pub fn schedule(
        &mut self,
        list: &[u32],
        dests: &Dests,
        input: &SchedInput,
        why: Option<&mut String>,
    ) -> Option<u32> {
        let b = bucket_of(input.dst);
        if let Some(en) = self.buckets[b].iter_mut().find(|e| e.addr == input.dst) {
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
        let id = wlc_fallback(list, dests, why, |inner| {
            format!(
                "no usable cache entry for {}: weighted least connection, {inner}",
                input.dst
            )
        })?;
        // ip_vs_lblc_new: replace an entry pointing elsewhere, unless the table is full.
        let bucket = &mut self.buckets[b];
        if let Some(pos) = bucket.iter().position(|e| e.addr == input.dst) {
            if bucket[pos].dest == id {
                return Some(id);
            }
            bucket.remove(pos);
            self.entries -= 1;
        }
        let entry = LblcEntry {
            addr: input.dst,
            dest: id,
            lastuse: input.now,
        };
        self.insert_new(b, entry);
        Some(id)
    }
}
