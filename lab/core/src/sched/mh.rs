//! ip_vs_mh.c: Maglev hashing with the kernel's default table of 4093 entries, keyed by the
//! client's address (and port with mh-port), with mh-fallback rehashing from a dead slot.
use std::fmt::Write as _;

use super::hash::{addr_fold, hsiphash_u32};
use super::{d, gcd_weight, Dests, SchedInput, NONE};
use crate::types::SchedFlags;

/// What ip_vs_mh_schedule picks by.
pub(super) const RULE: &str =
    "Maglev lookup table of 4093 entries keyed by the source address (and port with mh-port)";

/// primes[CONFIG_IP_VS_MH_TAB_INDEX - 8] with the default index 12.
pub const TAB_SIZE: u32 = 4093;
/// IP_VS_MH_TAB_BITS: weights are shifted down to fit this many bits.
const TAB_BITS: u32 = 6;
// generate_hash_secret(): fixed keys, so every director builds the same table.
const HASH1: (u64, u64) = (2_654_435_761, 2_654_435_761);
const HASH2: (u64, u64) = (2_654_446_892, 2_654_446_892);

/// ip_vs_mh_hashkey.
fn hashkey(addr: std::net::IpAddr, port: u16, key: (u64, u64), offset: u32) -> u32 {
    let v = offset
        .wrapping_add(u32::from(port))
        .wrapping_add(addr_fold(addr));
    hsiphash_u32(v, key.0, key.1)
}

/// The Maglev lookup table: one dest id per slot.
#[derive(Debug, Clone)]
pub(crate) struct Maglev {
    lookup: Box<[u32]>,
}

impl Maglev {
    /// An empty table (ip_vs_mh_init_svc before its first reassign).
    pub fn new() -> Self {
        Maglev {
            lookup: vec![NONE; TAB_SIZE as usize].into_boxed_slice(),
        }
    }

    /// ip_vs_mh_reassign: permutate then populate, from last_weight.
    pub fn reassign(&mut self, list: &[u32], dests: &Dests) {
        let last_weight = |&id: &u32| d(dests, id).last_weight;
        let g = gcd_weight(list.iter().map(last_weight));
        let max = list.iter().map(last_weight).max().unwrap_or(0);
        if g < 1 {
            self.lookup.fill(NONE);
            return;
        }
        let mw = max / g;
        let fls = 32 - mw.leading_zeros();
        let rshift = fls.saturating_sub(TAB_BITS);
        struct Setup {
            perm: u32,
            skip: u32,
            turns: u32,
        }
        let mut setup: Vec<Setup> = list
            .iter()
            .map(|&id| {
                let dest = d(dests, id);
                let (ip, port) = (dest.cfg.addr.ip(), dest.cfg.addr.port());
                let offset = hashkey(ip, port, HASH1, 0) % TAB_SIZE;
                let skip = hashkey(ip, port, HASH2, 0) % (TAB_SIZE - 1) + 1;
                let lw = dest.last_weight;
                let t = (lw / g) >> rshift;
                Setup {
                    perm: offset,
                    skip,
                    turns: if t > 0 { t } else { u32::from(lw != 0) },
                }
            })
            .collect();
        let mut taken = vec![false; TAB_SIZE as usize];
        let mut n = 0u32;
        let mut dt_count = 0u32;
        'outer: loop {
            let mut i = 0usize;
            while i < list.len() {
                let ds = &mut setup[i];
                if ds.turns < 1 {
                    i += 1;
                    continue;
                }
                let mut c = ds.perm;
                while taken[c as usize] {
                    ds.perm += ds.skip;
                    if ds.perm >= TAB_SIZE {
                        ds.perm -= TAB_SIZE;
                    }
                    c = ds.perm;
                }
                taken[c as usize] = true;
                self.lookup[c as usize] = list[i];
                n += 1;
                if n == TAB_SIZE {
                    break 'outer;
                }
                dt_count += 1;
                if dt_count >= ds.turns {
                    dt_count = 0;
                    i += 1;
                }
            }
        }
    }

    /// ip_vs_mh_schedule with ip_vs_mh_get / ip_vs_mh_get_fallback.
    pub fn schedule(
        &self,
        flags: SchedFlags,
        dests: &Dests,
        input: &SchedInput,
        why: Option<&mut String>,
    ) -> Option<u32> {
        let port = if flags.port { input.src.port() } else { 0 };
        let ip = input.src.ip();
        let unavailable = |id: u32| !dests.load(id).usable();
        let ihash = hashkey(ip, port, HASH1, 0) % TAB_SIZE;
        let id = self.lookup[ihash as usize];
        let mut found = None;
        let mut slot = ihash;
        if id != NONE {
            if !unavailable(id) {
                found = Some(id);
            } else if flags.fallback {
                for offset in 0..TAB_SIZE {
                    let roffset = (offset + ihash) % TAB_SIZE;
                    let h = hashkey(ip, port, HASH1, roffset) % TAB_SIZE;
                    let id = self.lookup[h as usize];
                    if id == NONE {
                        break;
                    }
                    if !unavailable(id) {
                        found = Some(id);
                        slot = h;
                        break;
                    }
                }
            }
        }
        if let Some(w) = why {
            match found {
                Some(_) if slot == ihash => {
                    let _ = write!(w, "hsiphash({ip}, port {port}) -> slot {ihash} of 4093");
                }
                Some(_) => {
                    let _ = write!(
                        w,
                        "slot {ihash} unavailable; mh-fallback rehashed to slot {slot}"
                    );
                }
                None => {
                    let _ = write!(w, "slot {ihash} holds no available server");
                }
            }
        }
        found
    }
}
