//! ip_vs_dh.c: destination hashing, 256 buckets filled in list order, keyed by the packet's
//! destination address (a cache-cluster scheduler).
use std::fmt::Write as _;

use super::hash::{addr_fold, hash_32};
use super::{d, Dests, SchedInput, NONE};

/// What ip_vs_dh_schedule picks by.
pub(super) const RULE: &str = "hash of the destination address into 256 buckets";

/// IP_VS_DH_TAB_BITS.
const TAB_BITS: u32 = 8;
const TAB_SIZE: usize = 1 << TAB_BITS;

/// The bucket table: one dest id per bucket.
#[derive(Debug, Clone)]
pub(crate) struct Dh {
    buckets: Box<[u32; TAB_SIZE]>,
}

impl Dh {
    /// ip_vs_dh_init_svc.
    pub fn new(list: &[u32]) -> Self {
        let mut dh = Dh {
            buckets: Box::new([NONE; TAB_SIZE]),
        };
        dh.reassign(list);
        dh
    }

    /// ip_vs_dh_reassign: bucket i gets the (i mod n)-th server, weights ignored.
    pub fn reassign(&mut self, list: &[u32]) {
        for (i, slot) in self.buckets.iter_mut().enumerate() {
            *slot = if list.is_empty() {
                NONE
            } else {
                list[i % list.len()]
            };
        }
    }

    /// ip_vs_dh_schedule: the bucket's server, if available with weight > 0 and not overloaded.
    pub fn schedule(
        &self,
        dests: &Dests,
        input: &SchedInput,
        why: Option<&mut String>,
    ) -> Option<u32> {
        let bucket = hash_32(addr_fold(input.dst), TAB_BITS) as usize;
        let id = self.buckets[bucket];
        let ok = id != NONE && {
            let dest = d(dests, id);
            dest.available && dest.weight() > 0 && !dest.overloaded
        };
        if let Some(w) = why {
            let _ = write!(
                w,
                "hash_32({}, 8) = bucket {bucket}{}",
                input.dst,
                if ok {
                    ""
                } else {
                    ", whose server is unavailable"
                }
            );
        }
        ok.then_some(id)
    }
}
