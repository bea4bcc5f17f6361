//! The destination-address cache that ip_vs_lblc.c and ip_vs_lblcr.c each carry a copy of:
//! 1024 buckets keyed by hash_32 of the destination, trimmed and swept by a periodic
//! collector (ip_vs_lblc(r)_check_expire, ip_vs_lblc(r)_full_check). One copy serves both.
use std::net::IpAddr;
use std::time::Duration;

use super::hash::{addr_fold, hash_32};
use super::least::{least, Load};
use super::Dests;
use crate::dest::Dest;

const TAB_BITS: u32 = 10;
const TAB_SIZE: usize = 1 << TAB_BITS;
const MAX_SIZE: usize = TAB_SIZE * 16;
const CHECK_EXPIRE_INTERVAL: Duration = Duration::from_secs(60);
const ENTRY_TIMEOUT: Duration = Duration::from_secs(6 * 60);
/// sysctl lblc_expiration / lblcr_expiration default: one day.
pub const DEFAULT_EXPIRATION: Duration = Duration::from_secs(24 * 60 * 60);
const COUNT_FOR_FULL_EXPIRATION: u32 = 30;

/// The bucket of a destination address (ip_vs_lblc(r)_hashkey).
pub(super) fn bucket_of(addr: IpAddr) -> usize {
    hash_32(addr_fold(addr), TAB_BITS) as usize
}

/// A dest the cache points at, unless freed.
pub(super) fn dest_opt(dests: &Dests, id: u32) -> Option<&Dest> {
    dests.get(id)
}

/// The lblc/lblcr is_overloaded(): busier than its weight while another is under half of its.
pub(super) fn is_overloaded(dest: &Dest, list: &[u32], dests: &Dests) -> bool {
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
    /// Whether it points at dest `id` (the kernel's entry holds a dest reference).
    fn holds(&self, id: u32) -> bool;
}

/// The hash table both caches share, newest entry first in each bucket, with its collector.
#[derive(Debug, Clone)]
pub(crate) struct Table<E> {
    /// Newest entry first in each bucket.
    pub(super) buckets: Vec<Vec<E>>,
    /// Entries over all buckets.
    pub(super) entries: usize,
    gc: Gc,
    /// Entries unused this long are dropped by the full check (sysctl lblc(r)_expiration).
    pub expiration: Duration,
}

impl<E: CacheEntry + Clone> Table<E> {
    /// An empty table whose collector first runs one interval from `now`.
    pub fn new(now: Duration) -> Self {
        Table {
            buckets: vec![Vec::new(); TAB_SIZE],
            entries: 0,
            gc: Gc::new(now),
            expiration: DEFAULT_EXPIRATION,
        }
    }

    /// Whether an entry points at dest `id`, keeping it out of the trash's reach.
    pub fn holds(&self, id: u32) -> bool {
        self.buckets.iter().flatten().any(|e| e.holds(id))
    }

    /// Add a new entry at the head of bucket `b`, unless the table is full (max_size).
    pub(super) fn insert_new(&mut self, b: usize, entry: E) {
        if self.entries <= MAX_SIZE {
            self.buckets[b].insert(0, entry);
            self.entries += 1;
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

/// Weighted least connection over the whole list, the fallback of both caches; `say` wraps
/// the walk's explanation in the cache's own words.
pub(super) fn wlc_fallback(
    list: &[u32],
    dests: &Dests,
    why: Option<&mut String>,
    say: impl FnOnce(&str) -> String,
) -> Option<u32> {
    let mut inner = why.as_ref().map(|_| String::new());
    let id = least(list, dests, Load::Wlc, inner.as_mut());
    if let (Some(w), Some(inner)) = (why, inner) {
        w.push_str(&say(&inner));
    }
    id
}
