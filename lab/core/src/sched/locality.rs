//! lblc and lblcr (ip_vs_lblc.c, ip_vs_lblcr.c): caches keyed by the packet's destination.
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use super::hash::{addr_fold, hash_32};
use super::{d, least, Dests, Load, SchedInput};
use crate::dest::Dest;

const TAB_BITS: u32 = 10;
const TAB_SIZE: usize = 1 << TAB_BITS;
const MAX_SIZE: usize = TAB_SIZE * 16;
const CHECK_EXPIRE_INTERVAL: Duration = Duration::from_secs(60);
const ENTRY_TIMEOUT: Duration = Duration::from_secs(6 * 60);
/// sysctl lblc_expiration / lblcr_expiration default: one day.
pub const DEFAULT_EXPIRATION: Duration = Duration::from_secs(24 * 60 * 60);
const COUNT_FOR_FULL_EXPIRATION: u32 = 30;

fn bucket_of(addr: IpAddr) -> usize {
    hash_32(addr_fold(addr), TAB_BITS) as usize
}

fn dest_opt(dests: &Dests, id: u32) -> Option<&Dest> {
    dests.get(id)
}

/// The lblc/lblcr is_overloaded(): busier than its weight while another is under half of its.
fn is_overloaded(dest: &Dest, list: &[u32], dests: &Dests) -> bool {
    dest.active > dest.weight()
        && list.iter().any(|&id| {
            let x = dests.load(id);
            x.active * 2 < x.weight
        })
}

/// The periodic garbage collector both caches share (check_expire + full_check).
#[derive(Debug, Clone)]
struct Gc {
    next_tick: Duration,
    counter: u32,
    rover: usize,
}

impl Gc {
    fn new(now: Duration) -> Self {
        Gc {
            next_tick: now + CHECK_EXPIRE_INTERVAL,
            counter: 1,
            rover: 0,
        }
    }
}

/// What the shared garbage collector needs to know about an entry.
pub(crate) trait CacheEntry {
    /// The last time a lookup used it.
    fn lastuse(&self) -> Duration;
}

/// The hash table both caches share, newest entry first in each bucket, with its collector.
#[derive(Debug, Clone)]
pub(crate) struct Table<E> {
    buckets: Vec<Vec<E>>,
    entries: usize,
    gc: Gc,
    /// Entries unused this long are dropped by the full check (sysctl lblc(r)_expiration).
    pub expiration: Duration,
}

impl<E: CacheEntry + Clone> Table<E> {
    fn new(now: Duration) -> Self {
        Table {
            buckets: vec![Vec::new(); TAB_SIZE],
            entries: 0,
            gc: Gc::new(now),
            expiration: DEFAULT_EXPIRATION,
        }
    }

    /// When the garbage collector next has work.
    pub fn next_tick(&self) -> Duration {
        self.gc.next_tick
    }

    /// Run every collector tick due by `now`.
    pub fn expire(&mut self, now: Duration) {
        while self.gc.next_tick <= now {
            let tick = self.gc.next_tick;
            self.check_expire(tick);
            self.gc.next_tick += CHECK_EXPIRE_INTERVAL;
        }
    }

    /// ip_vs_lblc(r)_check_expire: a full sweep every 30 ticks, else trim an oversized table.
    fn check_expire(&mut self, now: Duration) {
        if self.gc.counter.is_multiple_of(COUNT_FOR_FULL_EXPIRATION) {
            let exp = self.expiration;
            self.sweep(|e| e.lastuse() + exp <= now, usize::MAX);
            self.gc.counter = 1;
            return;
        }
        if self.entries <= MAX_SIZE {
            self.gc.counter += 1;
            return;
        }
        let goal = ((self.entries - MAX_SIZE) * 4 / 3).min(MAX_SIZE / 2);
        self.sweep(|e| e.lastuse() + ENTRY_TIMEOUT <= now, goal);
    }

    fn sweep(&mut self, stale: impl Fn(&E) -> bool, goal: usize) {
        let mut removed = 0usize;
        let mut j = self.gc.rover;
        for _ in 0..TAB_SIZE {
            j = (j + 1) & (TAB_SIZE - 1);
            let before = self.buckets[j].len();
            self.buckets[j].retain(|e| !stale(e));
            let n = before - self.buckets[j].len();
            self.entries -= n;
            removed += n;
            if goal != usize::MAX && removed >= goal {
                break;
            }
        }
        self.gc.rover = j;
    }
}

impl CacheEntry for LblcEntry {
    fn lastuse(&self) -> Duration {
        self.lastuse
    }
}

impl CacheEntry for LblcrEntry {
    fn lastuse(&self) -> Duration {
        self.lastuse
    }
}

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

#[derive(Debug, Clone)]
pub(crate) struct LblcrEntry {
    addr: IpAddr,
    /// The server set, newest first.
    set: Vec<u32>,
    lastmod: Duration,
    lastuse: Duration,
}

/// lblcr state: destination address -> a set of servers that grows under load.
#[derive(Debug, Clone)]
pub(crate) struct Lblcr {
    /// The cache; sysctl lblcr_expiration is both the set shrink and full-check horizon.
    pub t: Table<LblcrEntry>,
}

impl Lblcr {
    pub fn new(now: Duration) -> Self {
        Lblcr { t: Table::new(now) }
    }

    pub fn schedule(
        &mut self,
        list: &[u32],
        dests: &Dests,
        input: &SchedInput,
        why: Option<&mut String>,
    ) -> Option<u32> {
        let b = bucket_of(input.dst);
        let exp = self.t.expiration;
        let mut inner = why.as_ref().map(|_| String::new());
        if let Some(en) = self.t.buckets[b].iter_mut().find(|e| e.addr == input.dst) {
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
            let id = least(list, dests, Load::Wlc, inner.as_mut());
            if let (Some(w), Some(inner)) = (why, inner) {
                let _ = write!(
                    w,
                    "set for {} busy: weighted least connection over all, added to the set: {inner}",
                    input.dst
                );
            }
            let id = id?;
            if !en.set.contains(&id) {
                en.set.insert(0, id);
                en.lastmod = input.now;
            }
            return Some(id);
        }
        let id = least(list, dests, Load::Wlc, inner.as_mut());
        if let (Some(w), Some(inner)) = (why, inner) {
            let _ = write!(
                w,
                "no cache entry for {}: weighted least connection, {inner}",
                input.dst
            );
        }
        let id = id?;
        if self.t.entries <= MAX_SIZE {
            self.t.buckets[b].insert(
                0,
                LblcrEntry {
                    addr: input.dst,
                    set: vec![id],
                    lastmod: input.now,
                    lastuse: input.now,
                },
            );
            self.t.entries += 1;
        }
        Some(id)
    }

    /// Whether a cached set holds `id` (the kernel's set element holds a dest reference).
    pub fn holds(&self, id: u32) -> bool {
        self.t.buckets.iter().flatten().any(|e| e.set.contains(&id))
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
