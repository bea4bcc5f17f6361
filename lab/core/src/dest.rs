//! Real servers ("dests") and the counters IPVS keeps for them.
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::types::DestConfig;

/// Packet and byte counters (ipvsadm -L --stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Connections scheduled.
    pub conns: u64,
    /// Packets client -> server.
    pub inpkts: u64,
    /// Packets server -> client through the director.
    pub outpkts: u64,
    /// Bytes client -> server.
    pub inbytes: u64,
    /// Bytes server -> client through the director.
    pub outbytes: u64,
}

/// A real server as the kernel's struct ip_vs_dest: config plus live counters.
#[derive(Debug, Clone)]
pub(crate) struct Dest {
    pub cfg: DestConfig,
    /// Index of the owning service.
    pub svc: u32,
    /// The latest non-zero weight (mh builds its table from it).
    pub last_weight: u32,
    pub active: u32,
    pub inactive: u32,
    pub persistent: u32,
    /// IP_VS_DEST_F_OVERLOAD, set and cleared by the thresholds.
    pub overloaded: bool,
    /// IP_VS_DEST_F_AVAILABLE: false once deleted (waiting in the trash).
    pub available: bool,
    pub stats: Counters,
    /// When a trashed dest lost its last conn.
    pub idle_since: Option<Duration>,
}

impl Dest {
    pub fn new(cfg: DestConfig, svc: u32) -> Self {
        Dest {
            cfg,
            svc,
            last_weight: cfg.weight,
            active: 0,
            inactive: 0,
            persistent: 0,
            overloaded: false,
            available: true,
            stats: Counters::default(),
            idle_since: None,
        }
    }

    #[inline]
    pub fn weight(&self) -> u32 {
        self.cfg.weight
    }

    /// ip_vs_dest_conn_overhead(): active conns weigh 256 times an inactive one.
    #[inline]
    pub fn overhead(&self) -> i64 {
        ((self.active as i64) << 8) + self.inactive as i64
    }

    /// Every conn and template still pointing here.
    pub fn refs(&self) -> u32 {
        self.active + self.inactive + self.persistent
    }

    /// ip_vs_dest_totalconns(): what the thresholds compare.
    pub fn total_conns(&self) -> u32 {
        self.active + self.inactive
    }
}

impl Dest {
    /// The scheduler-facing copy of this dest's live fields.
    #[inline]
    fn load(&self) -> DestLoad {
        DestLoad {
            weight: self.cfg.weight,
            active: self.active,
            inactive: self.inactive,
            overloaded: u32::from(self.overloaded),
        }
    }
}

/// The 16 bytes a scheduler's walk reads per server, a copy of the owning `Dest`'s fields.
///
/// Walks over a list of 1000 servers read 16 KB from here instead of touching a whole
/// ~130-byte `Dest` (several cache lines) per server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct DestLoad {
    pub weight: u32,
    pub active: u32,
    pub inactive: u32,
    /// 1 while IP_VS_DEST_F_OVERLOAD is set (u32 so the struct stays 16 bytes, no padding).
    pub overloaded: u32,
}

impl DestLoad {
    /// Weight > 0 and not overloaded: what most schedulers require of a candidate.
    #[inline]
    pub fn usable(self) -> bool {
        // Non-short-circuit `&`: one branch per server in the walks instead of two.
        (self.overloaded == 0) & (self.weight > 0)
    }

    /// ip_vs_dest_conn_overhead(), as `Dest::overhead`.
    #[inline]
    pub fn overhead(self) -> i64 {
        (i64::from(self.active) << 8) + i64::from(self.inactive)
    }
}

/// The slab of all dests, indexed by dest id, with a dense `DestLoad` per id kept in step.
///
/// Every mutation goes through `get_mut`, whose guard rewrites the id's `DestLoad` when dropped,
/// so the copy cannot go stale.
#[derive(Debug, Clone, Default)]
pub(crate) struct DestSlab {
    slots: Vec<Option<Dest>>,
    loads: Vec<DestLoad>,
}

impl DestSlab {
    /// Store a new dest and return its id.
    pub fn push(&mut self, dest: Dest) -> u32 {
        self.loads.push(dest.load());
        self.slots.push(Some(dest));
        (self.slots.len() - 1) as u32
    }

    /// The dest with this id, unless freed.
    #[inline]
    pub fn get(&self, id: u32) -> Option<&Dest> {
        self.slots.get(id as usize).and_then(|x| x.as_ref())
    }

    /// Mutable access; the id's `DestLoad` is refreshed when the guard drops.
    #[inline]
    pub fn get_mut(&mut self, id: u32) -> Option<DestMut<'_>> {
        let dest = self.slots.get_mut(id as usize)?.as_mut()?;
        let load = &mut self.loads[id as usize];
        Some(DestMut { dest, load })
    }

    /// Free a dest's slot (it left the trash); its id is never reused.
    pub fn free(&mut self, id: u32) {
        if let Some(slot) = self.slots.get_mut(id as usize) {
            *slot = None;
            self.loads[id as usize] = DestLoad::default();
        }
    }

    /// The walk-friendly copy of dest `id`'s live fields. Ids on a service list are
    /// always in range (the slab never shrinks).
    #[inline]
    pub fn load(&self, id: u32) -> DestLoad {
        self.loads[id as usize]
    }
}

/// A `&mut Dest` that copies the fields schedulers walk into the slab's `DestLoad` on drop.
pub(crate) struct DestMut<'a> {
    dest: &'a mut Dest,
    load: &'a mut DestLoad,
}

impl std::ops::Deref for DestMut<'_> {
    type Target = Dest;
    fn deref(&self) -> &Dest {
        self.dest
    }
}

impl std::ops::DerefMut for DestMut<'_> {
    fn deref_mut(&mut self) -> &mut Dest {
        self.dest
    }
}

impl Drop for DestMut<'_> {
    fn drop(&mut self) {
        *self.load = self.dest.load();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{DestConfig, ForwardMethod};

    #[test]
    fn load_is_16_bytes_and_follows_every_mutation() {
        assert_eq!(std::mem::size_of::<DestLoad>(), 16);
        let mut slab = DestSlab::default();
        let cfg = DestConfig::new("192.168.1.201:80".parse().unwrap(), ForwardMethod::Nat);
        let id = slab.push(Dest::new(cfg, 0));
        assert_eq!(slab.load(id).weight, 1);
        if let Some(mut d) = slab.get_mut(id) {
            d.active = 3;
            d.inactive = 2;
            d.overloaded = true;
            d.cfg.weight = 7;
        }
        let l = slab.load(id);
        assert_eq!((l.weight, l.active, l.inactive, l.overloaded), (7, 3, 2, 1));
        assert!(!l.usable());
        assert_eq!(l.overhead(), slab.get(id).unwrap().overhead());
        slab.free(id);
        assert!(slab.get(id).is_none());
        assert_eq!(slab.load(id), DestLoad::default());
    }
}
