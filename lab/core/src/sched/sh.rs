//! ip_vs_sh.c: source hashing, 256 buckets filled weight-many per server, keyed by the
//! client's address (and port with sh-port), with sh-fallback walking on from a dead bucket.
use std::fmt::Write as _;

use super::hash::{addr_fold, hash_32};
use super::{d, nothing, Dests, SchedInput, NONE};
use crate::types::SchedFlags;

/// What ip_vs_sh_schedule picks by.
pub(super) const RULE: &str =
    "hash of the source address (and port with sh-port) into 256 weighted buckets";

/// IP_VS_SH_TAB_BITS.
const TAB_BITS: u32 = 8;
const TAB_SIZE: usize = 1 << TAB_BITS;

/// The bucket table: one dest id per bucket.
#[derive(Debug, Clone)]
pub(crate) struct Sh {
    buckets: Box<[u32; TAB_SIZE]>,
}

impl Sh {
    /// ip_vs_sh_init_svc.
    pub fn new(list: &[u32], dests: &Dests) -> Self {
        let mut sh = Sh {
            buckets: Box::new([NONE; TAB_SIZE]),
        };
        sh.reassign(list, dests);
        sh
    }

    /// ip_vs_sh_reassign: weight-many buckets per dest (at least one), wrapping the list.
    pub fn reassign(&mut self, list: &[u32], dests: &Dests) {
        let mut p = 0usize;
        let mut count = 0u32;
        for slot in self.buckets.iter_mut() {
            if list.is_empty() {
                *slot = NONE;
                continue;
            }
            let id = list[p];
            *slot = id;
            count += 1;
            if count >= d(dests, id).weight() {
                p = (p + 1) % list.len();
                count = 0;
            }
        }
    }

    /// ip_vs_sh_schedule with ip_vs_sh_get / ip_vs_sh_get_fallback.
    pub fn schedule(
        &self,
        flags: SchedFlags,
        dests: &Dests,
        input: &SchedInput,
        why: Option<&mut String>,
    ) -> Option<u32> {
        let b = &self.buckets;
        let port = if flags.port { input.src.port() } else { 0 };
        let key = u32::from(port).wrapping_add(addr_fold(input.src.ip()));
        // ip_vs_sh_hashkey.
        let hashkey = |offset: u32| (offset.wrapping_add(hash_32(key, TAB_BITS))) as usize & 0xff;
        let unavailable = |id: u32| !dests.load(id).usable();
        let ihash = hashkey(0);
        let id = b[ihash];
        let describe = |w: &mut String, bucket: usize, fell_back: bool| {
            let _ = write!(
                w,
                "hash_32({}{}, 8) = bucket {ihash}{}",
                input.src.ip(),
                if flags.port {
                    format!(" + port {port}")
                } else {
                    String::new()
                },
                if fell_back {
                    format!(", unavailable; fallback walked to bucket {bucket}")
                } else {
                    String::new()
                }
            );
        };
        if id == NONE {
            return nothing(why);
        }
        if !unavailable(id) {
            if let Some(w) = why {
                describe(w, ihash, false);
            }
            return Some(id);
        }
        if !flags.fallback {
            if let Some(w) = why {
                let _ = write!(
                    w,
                    "bucket {ihash} holds an unavailable server and sh-fallback is off"
                );
            }
            return None;
        }
        for offset in 0..TAB_SIZE as u32 {
            let roffset = (offset + ihash as u32) % TAB_SIZE as u32;
            let bucket = hashkey(roffset);
            let id = b[bucket];
            if !unavailable(id) {
                if let Some(w) = why {
                    describe(w, bucket, true);
                }
                return Some(id);
            }
        }
        nothing(why)
    }
}
