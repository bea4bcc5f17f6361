//! The balancer: services, real servers, conns and persistence, driven by packets and time.
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rand_core::SeedableRng;
use rand_pcg::Pcg32;
use serde::Serialize;

use crate::conn::{Conn, ConnTable, F_INACTIVE, F_NOOUTPUT, F_TEMPLATE};
use crate::dest::{Counters, Dest, DestMut, DestSlab};
use crate::explain::{Candidate, PickExplain};
use crate::sched::{self, SchedInput, SchedState};
use crate::tcp::{next_state, ConnState, Direction};
use crate::types::{
    ConnId, DestConfig, FlowPacket, ForwardMethod, IpvsCommand, Protocol, ServiceConfig,
    ServiceKey, Timeouts,
};

/// How long a deleted dest with no conns left waits in the trash (IP_VS_DEST_TRASH_PERIOD).
const TRASH_PERIOD: Duration = Duration::from_secs(120);
/// A new conn's first timeout before its first state change (ip_vs_conn_new).
const INITIAL_TIMEOUT_MS: u32 = 3000;

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
}

impl Default for IpvsConfig {
    fn default() -> Self {
        IpvsConfig {
            max_conns: 1 << 20,
            rng_seed: 0x1f5_1ab,
            timeouts: Timeouts::default(),
            explain: false,
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
    /// Port 0 without persistence.
    #[error("service {0} has port 0, which only works with persistence: add -p")]
    ZeroPortNotPersistent(ServiceKey),
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
        }
    }

    /// Turn pick explanations on or off.
    pub fn set_explain(&mut self, on: bool) {
        self.cfg.explain = on;
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

    /// Apply one table change, as ipvsadm would through the kernel.
    pub fn apply(&mut self, now: Duration, cmd: IpvsCommand) -> Result<(), IpvsError> {
        self.expire(now);
        // Table changes add caches and trash entries: recompute the housekeeping deadline.
        self.housekeeping_at = now;
        match cmd {
            IpvsCommand::AddService(cfg) => {
                if self.by_key.contains_key(&cfg.key) {
                    return Err(IpvsError::ServiceExists(cfg.key));
                }
                check_zero_port(&cfg)?;
                let sched = SchedState::new(cfg.scheduler, &[], &self.dests, now);
                let id = self.services.len() as u32;
                self.by_key.insert(cfg.key, id);
                self.services.push(Some(Service {
                    cfg,
                    list: Vec::new(),
                    sched,
                    stats: Counters::default(),
                    templates: HashMap::new(),
                }));
            }
            IpvsCommand::EditService(cfg) => {
                let id = self.svc_id(&cfg.key)?;
                check_zero_port(&cfg)?;
                let dests = &self.dests;
                let svc = self.services[id as usize]
                    .as_mut()
                    .ok_or(IpvsError::NoService(cfg.key))?;
                if svc.cfg.scheduler != cfg.scheduler {
                    // ip_vs_edit_service: a new scheduler starts from fresh state.
                    svc.sched = SchedState::new(cfg.scheduler, &svc.list, dests, now);
                }
                svc.cfg = cfg;
            }
            IpvsCommand::DelService(key) => self.del_service(now, key)?,
            IpvsCommand::Clear => {
                let keys: Vec<ServiceKey> = self.by_key.keys().copied().collect();
                for k in keys {
                    self.del_service(now, k)?;
                }
            }
            IpvsCommand::AddDest(key, dc) => self.add_dest(now, key, dc)?,
            IpvsCommand::EditDest(key, dc) => self.edit_dest(key, dc)?,
            IpvsCommand::DelDest(key, addr) => self.del_dest(now, key, addr)?,
            IpvsCommand::SetTimeouts(t) => {
                if !t.tcp.is_zero() {
                    self.timeouts.tcp = t.tcp;
                }
                if !t.tcp_fin.is_zero() {
                    self.timeouts.tcp_fin = t.tcp_fin;
                }
                if !t.udp.is_zero() {
                    self.timeouts.udp = t.udp;
                }
            }
        }
        Ok(())
    }

    fn del_service(&mut self, now: Duration, key: ServiceKey) -> Result<(), IpvsError> {
        let id = self.svc_id(&key)?;
        let list = self.svc(id).list.clone();
        for did in list {
            if let Some(addr) = self.dest(did).map(|d| d.cfg.addr) {
                self.del_dest(now, key, addr)?;
            }
        }
        self.by_key.remove(&key);
        // The conns of a deleted service live on until they expire, their dests in the trash.
        self.services[id as usize] = None;
        Ok(())
    }

    fn find_dest(&self, svc: u32, addr: SocketAddr) -> Option<(usize, u32)> {
        self.svc(svc)
            .list
            .iter()
            .enumerate()
            .find(|(_, &id)| self.dest(id).is_some_and(|d| d.cfg.addr == addr))
            .map(|(i, &id)| (i, id))
    }

    fn add_dest(
        &mut self,
        now: Duration,
        key: ServiceKey,
        dc: DestConfig,
    ) -> Result<(), IpvsError> {
        let sid = self.svc_id(&key)?;
        if self.find_dest(sid, dc.addr).is_some() {
            return Err(IpvsError::DestExists(key, dc.addr));
        }
        // ip_vs_trash_get_dest: a deleted dest of this service comes back with its counters.
        let from_trash = self.trash.iter().position(|&t| {
            self.dest(t)
                .is_some_and(|d| d.svc == sid && d.cfg.addr == dc.addr)
        });
        let did = match from_trash {
            Some(pos) => {
                let did = self.trash.swap_remove(pos);
                if let Some(mut d) = self.dest_mut(did) {
                    d.available = true;
                    d.idle_since = None;
                }
                did
            }
            None => self.dests.push(Dest::new(dc, sid)),
        };
        self.update_dest(did, dc, true);
        let dests = &self.dests;
        let svc = self.services[sid as usize]
            .as_mut()
            .ok_or(IpvsError::NoService(key))?;
        svc.list.insert(0, did);
        svc.sched.dest_added(svc.cfg.scheduler, &svc.list, dests);
        let _ = now;
        Ok(())
    }

    /// __ip_vs_update_dest: weight, thresholds, method; last_weight keeps the latest non-zero.
    fn update_dest(&mut self, did: u32, dc: DestConfig, add: bool) {
        if let Some(mut d) = self.dest_mut(did) {
            if dc.u_threshold == 0 || dc.u_threshold > d.cfg.u_threshold {
                d.overloaded = false;
            }
            if add || dc.weight != 0 {
                d.last_weight = dc.weight;
            }
            d.cfg = dc;
        }
    }

    fn edit_dest(&mut self, key: ServiceKey, dc: DestConfig) -> Result<(), IpvsError> {
        let sid = self.svc_id(&key)?;
        let (_, did) = self
            .find_dest(sid, dc.addr)
            .ok_or(IpvsError::NoDest(key, dc.addr))?;
        self.update_dest(did, dc, false);
        let dests = &self.dests;
        let svc = self.services[sid as usize]
            .as_mut()
            .ok_or(IpvsError::NoService(key))?;
        svc.sched.dest_updated(svc.cfg.scheduler, &svc.list, dests);
        Ok(())
    }

    fn del_dest(
        &mut self,
        now: Duration,
        key: ServiceKey,
        addr: SocketAddr,
    ) -> Result<(), IpvsError> {
        let sid = self.svc_id(&key)?;
        let (idx, did) = self
            .find_dest(sid, addr)
            .ok_or(IpvsError::NoDest(key, addr))?;
        if let Some(mut d) = self.dest_mut(did) {
            d.available = false;
            if d.refs() == 0 {
                d.idle_since = Some(now);
            }
        }
        self.trash.push(did);
        let dests = &self.dests;
        let svc = self.services[sid as usize]
            .as_mut()
            .ok_or(IpvsError::NoService(key))?;
        svc.list.remove(idx);
        svc.sched
            .dest_removed(svc.cfg.scheduler, idx, &svc.list, dests);
        Ok(())
    }

    fn find_service(&self, pkt: &FlowPacket) -> Option<u32> {
        if pkt.fwmark != 0 {
            if let Some(&id) = self.by_key.get(&ServiceKey::FwMark(pkt.fwmark)) {
                return Some(id);
            }
        }
        let key = |port| ServiceKey::Addr {
            protocol: pkt.protocol,
            vip: crate::types::Vip(pkt.dst.ip()),
            port,
        };
        self.by_key
            .get(&key(pkt.dst.port()))
            .or_else(|| self.by_key.get(&key(0)))
            .copied()
    }

    fn timeout_for(&self, state: ConnState) -> Duration {
        match state {
            ConnState::Established => self.timeouts.tcp,
            ConnState::FinWait => self.timeouts.tcp_fin,
            ConnState::Udp => self.timeouts.udp,
            s => s.default_timeout(),
        }
    }

    /// A packet travelling client -> virtual service.
    pub fn packet_in(&mut self, now: Duration, pkt: &FlowPacket) -> InVerdict {
        self.expire(now);
        let now_ms = ms(now);
        let mut found = self.conns.find_in(pkt.protocol, pkt.src, pkt.dst);
        if let (Some(id), Some(flags)) = (found, pkt.tcp) {
            // conn_reuse_mode 1: a fresh SYN on a TIME_WAIT entry reschedules the flow.
            let reuse = self
                .conns
                .get(id)
                .is_some_and(|c| c.state == ConnState::TimeWait && c.n_control == 0);
            if reuse && flags.syn && !flags.ack && !flags.rst && !flags.fin {
                self.remove_conn(now, id);
                found = None;
            }
        }
        if let Some(id) = found {
            return self.existing_in(now, now_ms, id, pkt);
        }
        let Some(sid) = self.find_service(pkt) else {
            return InVerdict::Pass;
        };
        if let Some(f) = pkt.tcp {
            // tcp_conn_schedule: only a SYN without RST opens a conn.
            if !f.syn || f.rst {
                return InVerdict::Drop;
            }
        }
        if self.conns.is_full() {
            self.stats.dropped_table_full += 1;
            return InVerdict::Drop;
        }
        let (did, pick) = match self.schedule(now, sid, pkt) {
            Ok(x) => x,
            Err(()) => return InVerdict::Reject,
        };
        self.new_conn(now, sid, did, pkt, pick)
    }

    fn existing_in(&mut self, now: Duration, now_ms: u64, id: u32, pkt: &FlowPacket) -> InVerdict {
        let Some(c) = self.conns.get(id) else {
            return InVerdict::Drop;
        };
        let did = c.dest;
        let Some(dest) = self.dest(did) else {
            return InVerdict::Drop;
        };
        if !dest.available {
            // The server was deleted: drop silently and leave the timer alone (ip_vs_in).
            return InVerdict::Drop;
        }
        let (addr, method, svc) = (dest.cfg.addr, dest.cfg.method, c.svc);
        let dir = if c.flags & F_NOOUTPUT != 0 {
            Direction::InputOnly
        } else {
            Direction::Input
        };
        self.count(svc, did, pkt.len, true);
        self.transition(now, id, dir, pkt);
        self.conns.arm(id, now_ms);
        let c = match self.conns.get(id) {
            Some(c) => c,
            None => return InVerdict::Drop,
        };
        InVerdict::Forward(Forward {
            conn: ConnId(id),
            vip: c.vip(),
            dest: SocketAddr::new(addr.ip(), c.dport),
            method,
            new_conn: false,
            pick: None,
        })
    }

    fn count(&mut self, sid: u32, did: u32, len: u32, inbound: bool) {
        let bump = |c: &mut Counters| {
            if inbound {
                c.inpkts += 1;
                c.inbytes += u64::from(len);
            } else {
                c.outpkts += 1;
                c.outbytes += u64::from(len);
            }
        };
        if let Some(mut d) = self.dest_mut(did) {
            bump(&mut d.stats);
        }
        if let Some(Some(s)) = self.services.get_mut(sid as usize) {
            bump(&mut s.stats);
        }
    }

    /// Run the protocol state machine and move the conn between active and inactive.
    fn transition(&mut self, _now: Duration, id: u32, dir: Direction, pkt: &FlowPacket) {
        let Some(c) = self.conns.get(id) else {
            return;
        };
        let (old, flags, did) = (c.state, c.flags, c.dest);
        let new = match pkt.tcp {
            Some(f) => next_state(old, dir, f),
            None => ConnState::Udp,
        };
        let timeout = self.timeout_for(new);
        let mut new_flags = flags;
        if dir == Direction::Output {
            new_flags &= !F_NOOUTPUT;
        }
        if new != old && pkt.tcp.is_some() {
            let dest = self.dests.get_mut(did);
            if flags & F_INACTIVE == 0 && new != ConnState::Established {
                if let Some(mut d) = dest {
                    d.active -= 1;
                    d.inactive += 1;
                }
                new_flags |= F_INACTIVE;
            } else if flags & F_INACTIVE != 0 && new == ConnState::Established {
                if let Some(mut d) = dest {
                    d.active += 1;
                    d.inactive -= 1;
                }
                new_flags &= !F_INACTIVE;
            }
        }
        if let Some(c) = self.conns.get_mut(id) {
            c.state = new;
            c.flags = new_flags;
            c.timeout_ms = ms(timeout) as u32;
        }
    }

    /// Pick a dest for a new flow, through the persistence template when the service has one.
    fn schedule(
        &mut self,
        now: Duration,
        sid: u32,
        pkt: &FlowPacket,
    ) -> Result<(u32, Option<PickExplain>), ()> {
        let persistence = self.svc(sid).cfg.persistence;
        if let Some(p) = persistence {
            let snet = mask(pkt.src.ip(), p.netmask);
            if let Some(&tid) = self.svc(sid).templates.get(&snet) {
                // ip_vs_check_template: a template to a deleted dest is dropped, not used.
                let tdest = self.conns.get(tid).map(|t| t.dest);
                if let Some(did) = tdest.filter(|&d| self.dest(d).is_some_and(|d| d.available)) {
                    let pick = self.cfg.explain.then(|| {
                        let mut e = self.explain_base(sid);
                        e.chosen = self.dest(did).map(|d| d.cfg.addr);
                        e.decision = format!(
                            "persistence: the template for {snet} still points at this server"
                        );
                        e
                    });
                    return Ok((did, pick));
                }
                self.remove_conn(now, tid);
            }
        }
        let mut why = self.cfg.explain.then(String::new);
        let input = SchedInput {
            src: pkt.src,
            dst: pkt.dst.ip(),
            now,
        };
        let base = self.cfg.explain.then(|| self.explain_base(sid));
        let svc = self.services[sid as usize].as_mut().ok_or(())?;
        let picked = svc.sched.schedule(
            svc.cfg.scheduler,
            svc.cfg.flags.sched,
            &svc.list,
            &self.dests,
            &input,
            &mut self.rng,
            why.as_mut(),
        );
        let pick = base.map(|mut e| {
            e.chosen = picked.and_then(|d| self.dest(d).map(|d| d.cfg.addr));
            e.decision = why.unwrap_or_default();
            e
        });
        let Some(did) = picked else {
            return Err(());
        };
        if let Some(p) = persistence {
            let snet = mask(pkt.src.ip(), p.netmask);
            let vport = match self.svc(sid).cfg.key {
                ServiceKey::Addr { port, .. } => port,
                ServiceKey::FwMark(_) => 0,
            };
            let mut t = Conn::new_flow(
                pkt.protocol,
                SocketAddr::new(snet, 0),
                SocketAddr::new(pkt.dst.ip(), vport),
                self.dest(did).map_or(0, |d| d.cfg.addr.port()),
                sid,
                did,
            );
            t.flags = F_TEMPLATE;
            t.timeout_ms = ms(p.timeout) as u32;
            let tid = self.conns.insert(t);
            self.conns.arm(tid, ms(now));
            if let Some(mut d) = self.dest_mut(did) {
                d.persistent += 1;
            }
            self.svc_mut(sid).templates.insert(snet, tid);
        }
        Ok((did, pick))
    }

    fn explain_base(&self, sid: u32) -> PickExplain {
        let svc = self.svc(sid);
        let kind = svc.cfg.scheduler;
        PickExplain {
            scheduler: kind,
            rule: sched::rule(kind),
            candidates: svc
                .list
                .iter()
                .filter_map(|&id| self.dest(id))
                .map(|d| Candidate {
                    server: d.cfg.addr,
                    weight: d.weight(),
                    active: d.active,
                    inactive: d.inactive,
                    overloaded: d.overloaded,
                    load: sched::load_text(kind, d),
                })
                .collect(),
            decision: String::new(),
            chosen: None,
        }
    }

    fn new_conn(
        &mut self,
        now: Duration,
        sid: u32,
        did: u32,
        pkt: &FlowPacket,
        pick: Option<PickExplain>,
    ) -> InVerdict {
        let now_ms = ms(now);
        let Some(dest) = self.dest(did) else {
            return InVerdict::Reject;
        };
        let (addr, method) = (dest.cfg.addr, dest.cfg.method);
        let svc = self.svc(sid);
        // A port-0 (all ports) service keeps the client's destination port.
        let dport = match svc.cfg.key {
            ServiceKey::Addr { port: 0, .. } | ServiceKey::FwMark(_) if addr.port() == 0 => {
                pkt.dst.port()
            }
            _ => addr.port(),
        };
        let one_packet = svc.cfg.flags.one_packet && pkt.protocol == Protocol::Udp;
        let template = svc
            .cfg
            .persistence
            .map(|p| mask(pkt.src.ip(), p.netmask))
            .and_then(|snet| svc.templates.get(&snet).copied());
        let mut c = Conn::new_flow(pkt.protocol, pkt.src, pkt.dst, dport, sid, did);
        // __ip_vs_update_dest sets IP_VS_CONN_F_INACTIVE in every dest's conn flags, and
        // everything but NAT replies bypasses us.
        c.flags = F_INACTIVE;
        if method != ForwardMethod::Nat {
            c.flags |= F_NOOUTPUT;
        }
        c.timeout_ms = INITIAL_TIMEOUT_MS;
        if let Some(t) = template {
            c.control = t;
        }
        let id = self.conns.insert(c);
        if let Some(t) = template {
            if let Some(tc) = self.conns.get_mut(t) {
                tc.n_control += 1;
            }
            // Using a template restarts its timer (ip_vs_conn_put on the template).
            self.conns.arm(t, now_ms);
        }
        if !one_packet {
            self.conns.hash_in(id);
            if method == ForwardMethod::Nat {
                let dests = &self.dests;
                self.conns
                    .hash_out(id, |d| dests.get(d).map(|x| x.cfg.addr.ip()));
            }
        }
        self.bind(did);
        if let Some(mut d) = self.dest_mut(did) {
            d.stats.conns += 1;
        }
        self.svc_mut(sid).stats.conns += 1;
        self.count(sid, did, pkt.len, true);
        let dir = if method == ForwardMethod::Nat {
            Direction::Input
        } else {
            Direction::InputOnly
        };
        self.transition(now, id, dir, pkt);
        if one_packet {
            // One-packet scheduling: the entry lives only for this datagram.
            self.remove_conn(now, id);
        } else {
            self.conns.arm(id, now_ms);
        }
        InVerdict::Forward(Forward {
            conn: ConnId(id),
            vip: pkt.dst,
            dest: SocketAddr::new(addr.ip(), dport),
            method,
            new_conn: true,
            pick,
        })
    }

    /// ip_vs_bind_dest: count the new (inactive) conn and check the upper threshold.
    fn bind(&mut self, did: u32) {
        if let Some(mut d) = self.dest_mut(did) {
            d.inactive += 1;
            if d.cfg.u_threshold != 0 && d.total_conns() >= d.cfg.u_threshold {
                d.overloaded = true;
            }
        }
    }

    /// ip_vs_unbind_dest: uncount and maybe clear the overload flag.
    fn unbind(&mut self, now: Duration, did: u32, flags: u8) {
        let Some(mut d) = self.dest_mut(did) else {
            return;
        };
        if flags & F_TEMPLATE != 0 {
            d.persistent = d.persistent.saturating_sub(1);
        } else if flags & F_INACTIVE != 0 {
            d.inactive = d.inactive.saturating_sub(1);
        } else {
            d.active = d.active.saturating_sub(1);
        }
        if flags & F_TEMPLATE == 0 {
            let total = d.total_conns();
            if d.cfg.l_threshold != 0 {
                if total < d.cfg.l_threshold {
                    d.overloaded = false;
                }
            } else if d.cfg.u_threshold != 0 {
                if total * 4 < d.cfg.u_threshold * 3 {
                    d.overloaded = false;
                }
            } else {
                d.overloaded = false;
            }
        }
        let idle = !d.available && d.refs() == 0;
        if idle {
            d.idle_since = Some(now);
        }
        drop(d);
        if idle {
            self.housekeeping_at = self.housekeeping_at.min(now + TRASH_PERIOD);
        }
    }

    fn remove_conn(&mut self, now: Duration, id: u32) {
        let Some(c) = self.conns.get(id) else {
            return;
        };
        let rs = self.dest(c.dest).map(|d| d.cfg.addr.ip());
        let Some(c) = self.conns.remove(id, rs) else {
            return;
        };
        if c.flags & F_TEMPLATE != 0 {
            if let Some(Some(s)) = self.services.get_mut(c.svc as usize) {
                if s.templates.get(&c.client_ip) == Some(&id) {
                    s.templates.remove(&c.client_ip);
                }
            }
        }
        if let Some(t) = c.control() {
            if let Some(tc) = self.conns.get_mut(t) {
                tc.n_control = tc.n_control.saturating_sub(1);
            }
        }
        self.unbind(now, c.dest, c.flags);
    }

    /// A packet travelling real server -> client (only NAT conns see this direction).
    pub fn packet_out(&mut self, now: Duration, pkt: &FlowPacket) -> OutVerdict {
        self.expire(now);
        let dests = &self.dests;
        let found = self.conns.find_out(pkt.protocol, pkt.src, pkt.dst, |d| {
            dests.get(d).map(|x| x.cfg.addr.ip())
        });
        let Some(id) = found else {
            return OutVerdict::Pass;
        };
        let Some(c) = self.conns.get(id) else {
            return OutVerdict::Pass;
        };
        let (svc, did, vip) = (c.svc, c.dest, c.vip());
        self.count(svc, did, pkt.len, false);
        self.transition(now, id, Direction::Output, pkt);
        self.conns.arm(id, ms(now));
        OutVerdict::Masquerade {
            conn: ConnId(id),
            vip,
        }
    }

    /// Run timers: expire conns and templates, lblc/lblcr caches, and empty the trash.
    pub fn expire(&mut self, now: Duration) {
        let now_ms = ms(now);
        while let Some(id) = self.conns.next_due(now_ms) {
            let Some(c) = self.conns.get(id) else {
                continue;
            };
            if c.flags & F_TEMPLATE != 0 && c.n_control > 0 {
                // A template that still controls conns lives on (ip_vs_conn_expire).
                self.conns.arm(id, now_ms);
                continue;
            }
            self.remove_conn(now, id);
        }
        if now < self.housekeeping_at {
            return;
        }
        let mut next = Duration::MAX;
        for svc in self.services.iter_mut().flatten() {
            svc.sched.expire(now);
            if let Some(t) = svc.sched.next_timer() {
                next = next.min(t);
            }
        }
        let dests = &mut self.dests;
        let services = &self.services;
        self.trash.retain(|&id| {
            let Some(d) = dests.get(id) else {
                return false;
            };
            let Some(idle) = d.idle_since.filter(|_| d.refs() == 0) else {
                return true;
            };
            // A cache entry holds a reference, as in the kernel: the dest stays until the
            // cache lets go (at one of its ticks, already in `next`).
            let cached = services
                .get(d.svc as usize)
                .and_then(|s| s.as_ref())
                .is_some_and(|s| s.sched.holds(id));
            if cached {
                return true;
            }
            if idle + TRASH_PERIOD <= now {
                dests.free(id);
                return false;
            }
            next = next.min(idle + TRASH_PERIOD);
            true
        });
        self.housekeeping_at = next;
    }

    /// Look a flow up by its client side (for ICMP errors from the client).
    pub fn find_in(
        &self,
        protocol: Protocol,
        client: SocketAddr,
        vip: SocketAddr,
    ) -> Option<ConnView> {
        self.conns
            .find_in(protocol, client, vip)
            .and_then(|id| self.view(id, Duration::ZERO))
    }

    /// Look a NAT flow up by its server side (for ICMP errors from the real server).
    pub fn find_out(
        &self,
        protocol: Protocol,
        rs: SocketAddr,
        client: SocketAddr,
    ) -> Option<ConnView> {
        self.conns
            .find_out(protocol, rs, client, |d| {
                self.dest(d).map(|x| x.cfg.addr.ip())
            })
            .and_then(|id| self.view(id, Duration::ZERO))
    }

    fn view(&self, id: u32, now: Duration) -> Option<ConnView> {
        let c = self.conns.get(id)?;
        let d = self.dest(c.dest)?;
        Some(ConnView {
            id: ConnId(id),
            protocol: c.protocol,
            state: c.state,
            expires_in: Duration::from_millis(c.expires_ms.saturating_sub(ms(now))),
            client: c.client(),
            vip: c.vip(),
            dest: SocketAddr::new(d.cfg.addr.ip(), c.dport),
            method: d.cfg.method,
            template: c.flags & F_TEMPLATE != 0,
            active: c.flags & (F_INACTIVE | F_TEMPLATE) == 0,
        })
    }

    /// Every service with its counters and real servers in list order.
    pub fn services(&self) -> Vec<ServiceView> {
        let mut v: Vec<ServiceView> = self
            .services
            .iter()
            .flatten()
            .map(|s| ServiceView {
                config: s.cfg.clone(),
                stats: s.stats,
                dests: s
                    .list
                    .iter()
                    .filter_map(|&id| self.dest(id))
                    .map(|d| DestView {
                        config: d.cfg,
                        active: d.active,
                        inactive: d.inactive,
                        persistent: d.persistent,
                        overloaded: d.overloaded,
                        stats: d.stats,
                    })
                    .collect(),
            })
            .collect();
        v.sort_by_key(|s| s.config.key);
        v
    }

    /// Every entry like `ipvsadm -Lnc`, oldest slot first.
    pub fn conns(&self, now: Duration) -> Vec<ConnView> {
        self.conns
            .iter()
            .filter_map(|(id, _)| self.view(id.0, now))
            .collect()
    }
}

fn check_zero_port(cfg: &ServiceConfig) -> Result<(), IpvsError> {
    if let ServiceKey::Addr { port: 0, .. } = cfg.key {
        if cfg.persistence.is_none() {
            return Err(IpvsError::ZeroPortNotPersistent(cfg.key));
        }
    }
    Ok(())
}
