//! The balancer: services, real servers, conns and persistence, driven by packets and time.
//!
//! Shaped like net/netfilter/ipvs: `ctl` is ip_vs_ctl.c (table changes, the trash, the
//! views ipvsadm -L reads), `core` is ip_vs_core.c (packets in and out, scheduling and
//! persistence templates), `conn` is the part of ip_vs_conn.c that ties entries of the conn
//! table to services and dests (binding, state changes, expiry). This file holds the types
//! they share and the read-only accessors.
mod conn;
mod core;
mod ctl;
pub mod sync;
mod syncwire;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rand_core::SeedableRng;
use rand_pcg::Pcg32;
use serde::Serialize;

pub use sync::{
    parse_sync_frame, sync_frame, SyncApplied, SyncConn, SyncError, SyncIgnored, SyncMessage,
    SyncRole, SYNC_GROUP, SYNC_PORT,
};

use crate::conn::ConnTable;
use crate::dest::{Counters, Dest, DestMut, DestSlab};
use crate::explain::PickExplain;
use crate::sched::SchedState;
use crate::tcp::ConnState;
use crate::types::{
    ConnId, DestConfig, ForwardMethod, Protocol, ServiceConfig, ServiceKey, Timeouts,
};

/// The name of lvslab's own setting for the conn table bound ([`IpvsConfig::max_conns`]),
/// set like a sysctl through [`Ipvs::set_sysctl`]; kernel IPVS has no such sysctl.
pub const MAX_CONNS_SYSCTL: &str = "lvslab_max_conns";

/// Settings for a balancer instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpvsConfig {
    /// Maximum entries (conns + persistence templates); see the conn module for the policy.
    pub max_conns: usize,
    /// Seed for the twos scheduler's random draws.
    pub rng_seed: u64,
    /// Connection timeouts.
    pub timeouts: Timeouts,
    /// Attach a `PickExplain` to every new conn's `Forward`.
    pub explain: bool,
    /// The kernel's `net.ipv4.vs.expire_nodest_conn` (default 0): a packet of a conn whose
    /// real server was deleted expires the entry at once and is then handled as a packet
    /// without one (a UDP datagram is scheduled again, a TCP segment that is no SYN is not),
    /// and a SYN on an entry whose server has weight 0 is scheduled anew. Off, such packets
    /// are dropped and the entry lives out its timeout.
    pub expire_nodest_conn: bool,
    /// The kernel's `net.ipv4.vs.drop_entry` (0 to 3, default 0): the defence that drops
    /// entries a flood makes (half-open TCP, idle low-traffic flows) when memory is short.
    /// lvslab's "memory short" is the conn table at its bound (`max_conns`): 0 never drops,
    /// 1 drops while the table is full and then reads 2 until it is not, 3 always drops
    /// (also in the once-a-second sweep while the table has room). Which entries go and
    /// why is `Ipvs::drop_entries`.
    pub drop_entry: u8,
}

impl Default for IpvsConfig {
    fn default() -> Self {
        IpvsConfig {
            max_conns: 1 << 20,
            rng_seed: 0x1f5_1ab,
            timeouts: Timeouts::default(),
            explain: false,
            expire_nodest_conn: false,
            drop_entry: 0,
        }
    }
}

/// Why a table change was refused; each names the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpvsError {
    /// -A for a key that exists.
    #[error("service {0} already exists: edit it with -E or delete it with -D first")]
    ServiceExists(ServiceKey),
    /// A command named a service that does not exist.
    #[error("no such service {0}: add it with -A first")]
    NoService(ServiceKey),
    /// -a for a real server already in the service.
    #[error("real server {1} is already in service {0}: edit it with -e")]
    DestExists(ServiceKey, SocketAddr),
    /// -e/-d for a real server not in the service.
    #[error("no real server {1} in service {0}: add it with -a first")]
    NoDest(ServiceKey, SocketAddr),
    /// A real server of another address family than its service's.
    #[error("real server {1} is not of service {0}'s address family: lvslab models no tunnel across families (an IPv6 firewall-mark service takes IPv6 real servers)")]
    DestFamily(ServiceKey, SocketAddr),
    /// Port 0 without persistence.
    #[error("service {0} has port 0, which only works with persistence: add -p")]
    ZeroPortNotPersistent(ServiceKey),
    /// The conn table is at its limit.
    #[error("the conn table is full: raise its size or let conns expire")]
    ConnTableFull,
    /// A `net.ipv4.vs.*` sysctl the core does not model, or a bad value.
    #[error("sysctl net.ipv4.vs.{0}")]
    Sysctl(String),
}

/// What to do with a packet going client -> virtual service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InVerdict {
    /// Send to `forward.dest` by `forward.method`.
    Forward(Forward),
    /// A service matched but no server is available: ICMP port unreachable to the client.
    Reject,
    /// Not for any virtual service.
    Pass,
    /// Ours but not to be forwarded (TCP non-SYN with no conn, conn to a deleted server,
    /// table full).
    Drop,
}

/// A forwarding decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    /// The conn entry.
    pub conn: ConnId,
    /// The virtual address the client used.
    pub vip: SocketAddr,
    /// The real server (its port is the conn's destination port).
    pub dest: SocketAddr,
    /// How to forward.
    pub method: ForwardMethod,
    /// True for the packet that created the conn.
    pub new_conn: bool,
    /// Why this server, when explaining is on and the conn is new.
    pub pick: Option<PickExplain>,
}

/// What to do with a packet going real server -> client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutVerdict {
    /// A NAT reply: rewrite its source to `vip`.
    Masquerade {
        /// The conn entry.
        conn: ConnId,
        /// The new source address.
        vip: SocketAddr,
    },
    /// Not a NAT conn of ours.
    Pass,
}

/// A real server as `ipvsadm -L` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DestView {
    /// Configuration.
    pub config: DestConfig,
    /// ESTABLISHED conns.
    pub active: u32,
    /// Other conns.
    pub inactive: u32,
    /// Persistence templates pointing here.
    pub persistent: u32,
    /// Over the upper threshold.
    pub overloaded: bool,
    /// Counters.
    pub stats: Counters,
}

/// A virtual service as `ipvsadm -L` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceView {
    /// Configuration.
    pub config: ServiceConfig,
    /// Counters.
    pub stats: Counters,
    /// Real servers in list order (newest first, the order schedulers walk).
    pub dests: Vec<DestView>,
}

/// A conn as `ipvsadm -Lnc` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnView {
    /// Entry handle.
    pub id: ConnId,
    /// Protocol.
    pub protocol: Protocol,
    /// State.
    pub state: ConnState,
    /// Time until expiry.
    pub expires_in: Duration,
    /// Client address (for a template, the masked client with port 0).
    pub client: SocketAddr,
    /// Virtual address.
    pub vip: SocketAddr,
    /// Real server address and conn port.
    pub dest: SocketAddr,
    /// Forwarding method.
    pub method: ForwardMethod,
    /// A persistence template rather than a flow.
    pub template: bool,
    /// Counted as active on the dest.
    pub active: bool,
}

/// Counters of the balancer itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct IpvsStats {
    /// New flows refused because the conn table was full.
    pub dropped_table_full: u64,
    /// Entries dropped early by the `drop_entry` defence (flows and the templates that
    /// went with them), to make room or in its once-a-second sweep.
    pub evicted_drop_entry: u64,
}

#[derive(Debug, Clone)]
struct Service {
    cfg: ServiceConfig,
    /// Dest ids, head first: a new dest is inserted at index 0.
    list: Vec<u32>,
    sched: SchedState,
    stats: Counters,
    /// Persistence templates by masked client address.
    templates: HashMap<IpAddr, u32>,
}

/// The balancer. See the crate docs for the data flow.
#[derive(Debug)]
pub struct Ipvs {
    cfg: IpvsConfig,
    timeouts: Timeouts,
    services: Vec<Option<Service>>,
    by_key: HashMap<ServiceKey, u32>,
    dests: DestSlab,
    trash: Vec<u32>,
    conns: ConnTable,
    rng: Pcg32,
    stats: IpvsStats,
    /// The earliest time the scheduler caches or the trash may have work; until then
    /// `expire` only looks at the conn timer heap, so packets do not pay for housekeeping.
    housekeeping_at: Duration,
    /// Connection sync; None (one check per packet) while it is off.
    sync: Option<Box<sync::SyncState>>,
    /// todrop_entry's rate counters, one per in_pkts count 1 to 8 (index 0 unused): an
    /// idle entry with i incoming packets is dropped once in i times.
    dropentry_counters: [i8; 9],
    /// When the next once-a-second defence check (update_defense_level) is due.
    defense_at: Duration,
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

fn mask(ip: IpAddr, netmask: IpAddr) -> IpAddr {
    match (ip, netmask) {
        (IpAddr::V4(a), IpAddr::V4(m)) => IpAddr::V4((u32::from(a) & u32::from(m)).into()),
        (IpAddr::V6(a), IpAddr::V6(m)) => IpAddr::V6((u128::from(a) & u128::from(m)).into()),
        (a, _) => a,
    }
}

impl Ipvs {
    /// A balancer with an empty table.
    pub fn new(cfg: IpvsConfig) -> Self {
        Ipvs {
            cfg,
            timeouts: cfg.timeouts,
            services: Vec::new(),
            by_key: HashMap::new(),
            dests: DestSlab::default(),
            trash: Vec::new(),
            conns: ConnTable::new(cfg.max_conns),
            rng: Pcg32::seed_from_u64(cfg.rng_seed),
            stats: IpvsStats::default(),
            housekeeping_at: Duration::ZERO,
            sync: None,
            dropentry_counters: [0; 9],
            defense_at: Duration::ZERO,
        }
    }

    /// Whether pick explanations are kept.
    pub fn explaining(&self) -> bool {
        self.cfg.explain
    }

    /// Turn pick explanations on or off.
    pub fn set_explain(&mut self, on: bool) {
        self.cfg.explain = on;
    }

    /// Set one of the kernel's `net.ipv4.vs.*` sysctls that the core models, by its name
    /// under /proc/sys/net/ipv4/vs/ (`expire_nodest_conn`, `drop_entry`); the value is the
    /// sysctl's text.
    pub fn set_sysctl(&mut self, name: &str, value: &str) -> Result<(), IpvsError> {
        let bad = || IpvsError::Sysctl(format!("{name} = {value:?}: the value is 0 or 1"));
        match name {
            // proc_do_defense_mode: 0 to 3, anything else is EINVAL.
            "drop_entry" => {
                self.cfg.drop_entry = match value.trim() {
                    "0" => 0,
                    "1" => 1,
                    "2" => 2,
                    "3" => 3,
                    _ => {
                        return Err(IpvsError::Sysctl(format!(
                            "{name} = {value:?}: the value is 0 (off), 1 (on when the table \
                             is full), 2 (on now, back to 1 when it has room) or 3 (always on)"
                        )))
                    }
                };
                // The kernel runs update_defense_level on every write.
                self.defense_at = Duration::ZERO;
                Ok(())
            }
            // The kernel's trigger is free memory under amemthresh pages; lvslab's is the
            // table at its bound, so this one has nothing to set.
            "amemthresh" => Err(IpvsError::Sysctl(format!(
                "{name}: lvslab's director counts the table full (its {MAX_CONNS_SYSCTL}) as \
                 memory short, not free pages; set {MAX_CONNS_SYSCTL} instead"
            ))),
            "expire_nodest_conn" => {
                self.cfg.expire_nodest_conn = match value.trim() {
                    "0" => false,
                    "1" => true,
                    _ => return Err(bad()),
                };
                Ok(())
            }
            // Not a kernel sysctl (kernel IPVS has no bound but memory): lvslab's own knob
            // for the table bound, so a flood can show the bound holding without needing
            // a million packets. Lowering it below the current size drops no entry; new
            // flows are refused until enough expire (the conn module's policy).
            MAX_CONNS_SYSCTL => {
                let max: usize = value
                    .trim()
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| {
                        IpvsError::Sysctl(format!(
                            "{name} = {value:?}: the value is a number of entries, at least 1"
                        ))
                    })?;
                self.cfg.max_conns = max;
                self.conns.max = max;
                Ok(())
            }
            _ => Err(IpvsError::Sysctl(format!(
                "{name}: lvslab's director models only expire_nodest_conn and drop_entry of \
                 net.ipv4.vs.* (and its own {MAX_CONNS_SYSCTL})"
            ))),
        }
    }

    /// The settings in force (sysctls changed at run time included).
    pub fn config(&self) -> IpvsConfig {
        self.cfg
    }

    /// Current timeouts.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// The balancer's own counters.
    pub fn stats(&self) -> IpvsStats {
        self.stats
    }

    /// Entries in the conn table (flows and templates).
    pub fn conn_count(&self) -> usize {
        self.conns.len()
    }

    /// Memory held by the conn table per entry, in bytes.
    pub fn conn_bytes_per_entry(&self) -> f64 {
        self.conns.bytes_per_entry()
    }

    fn svc_id(&self, key: &ServiceKey) -> Result<u32, IpvsError> {
        self.by_key
            .get(key)
            .copied()
            .ok_or(IpvsError::NoService(*key))
    }

    fn svc(&self, id: u32) -> &Service {
        self.services[id as usize]
            .as_ref()
            .unwrap_or_else(|| unreachable!("service id {id} without service"))
    }

    fn svc_mut(&mut self, id: u32) -> &mut Service {
        self.services[id as usize]
            .as_mut()
            .unwrap_or_else(|| unreachable!("service id {id} without service"))
    }

    fn dest(&self, id: u32) -> Option<&Dest> {
        self.dests.get(id)
    }

    fn dest_mut(&mut self, id: u32) -> Option<DestMut<'_>> {
        self.dests.get_mut(id)
    }

    /// Run timers: expire conns and templates, lblc/lblcr caches, and empty the trash.
    pub fn expire(&mut self, now: Duration) {
        self.expire_conns(now);
        if self.cfg.drop_entry != 0 && now >= self.defense_at {
            self.defense_timer(now);
        }
        if now < self.housekeeping_at {
            return;
        }
        self.housekeeping(now);
    }
}
