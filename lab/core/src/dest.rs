//! Real servers ("dests") and the counters IPVS keeps for them.
use std::time::Duration;

use serde::Serialize;

use crate::types::DestConfig;

/// Packet and byte counters (ipvsadm -L --stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
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
