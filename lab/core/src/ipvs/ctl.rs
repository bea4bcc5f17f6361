//! ip_vs_ctl.c: the service table. Services and real servers are added, edited and deleted
//! here (ip_vs_add_service, ip_vs_edit_service, ip_vs_del_service, ip_vs_add_dest,
//! ip_vs_edit_dest, ip_vs_del_dest, ip_vs_flush, ip_vs_set_timeout); a deleted dest waits in
//! the trash (ip_vs_trash_get_dest, ip_vs_dest_trash_expire); `services` is what
//! ip_vs_genl_dump_services hands to ipvsadm -L.
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::{DestView, Ipvs, IpvsError, Service, ServiceView};
use crate::dest::{Counters, Dest, DestSlab};
use crate::sched::SchedState;
use crate::types::{DestConfig, Family, FlowPacket, IpvsCommand, ServiceConfig, ServiceKey};

/// How long a deleted dest with no conns left waits in the trash (IP_VS_DEST_TRASH_PERIOD).
pub(super) const TRASH_PERIOD: Duration = Duration::from_secs(120);

impl Ipvs {
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
                let (svc, dests) = self.svc_with_dests(id, cfg.key)?;
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

    /// A service to change together with the dests its scheduler hooks read.
    fn svc_with_dests(
        &mut self,
        id: u32,
        key: ServiceKey,
    ) -> Result<(&mut Service, &DestSlab), IpvsError> {
        let svc = self.services[id as usize]
            .as_mut()
            .ok_or(IpvsError::NoService(key))?;
        Ok((svc, &self.dests))
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
        // The kernel takes another family only for a tunnelling dest (ip_vs_genl_set_cmd);
        // lvslab's transmitters keep to the service's family, so it takes none.
        if Family::of(dc.addr.ip()) != key.family() {
            return Err(IpvsError::DestFamily(key, dc.addr));
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
        let (svc, dests) = self.svc_with_dests(sid, key)?;
        svc.list.insert(0, did);
        svc.sched.dest_added(&svc.list, dests);
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
        let (svc, dests) = self.svc_with_dests(sid, key)?;
        svc.sched.dest_updated(&svc.list, dests);
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
        let (svc, dests) = self.svc_with_dests(sid, key)?;
        svc.list.remove(idx);
        svc.sched.dest_removed(idx, &svc.list, dests);
        Ok(())
    }

    /// ip_vs_service_find: a fwmark service of the packet's family first (the kernel
    /// passes the packet's af to ip_vs_service_fwm_get), then the address and port, then
    /// port 0.
    pub(super) fn find_service(&self, pkt: &FlowPacket) -> Option<u32> {
        if pkt.fwmark != 0 {
            let key = ServiceKey::FwMark {
                mark: pkt.fwmark,
                family: Family::of(pkt.dst.ip()),
            };
            if let Some(&id) = self.by_key.get(&key) {
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

    /// Scheduler timers and ip_vs_dest_trash_expire, when `housekeeping_at` says they are due.
    pub(super) fn housekeeping(&mut self, now: Duration) {
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

    /// `ipvsadm -Z [service]` (ip_vs_zero_service / ip_vs_zero_all): the counters of one
    /// service and its real servers, or of every service, start again from zero.
    pub fn zero(&mut self, key: Option<&ServiceKey>) -> Result<(), IpvsError> {
        let ids: Vec<u32> = match key {
            Some(k) => vec![self.svc_id(k)?],
            None => self.by_key.values().copied().collect(),
        };
        for id in ids {
            let svc = self.svc_mut(id);
            svc.stats = Counters::default();
            let list = svc.list.clone();
            for did in list {
                if let Some(mut d) = self.dests.get_mut(did) {
                    d.stats = Counters::default();
                }
            }
        }
        Ok(())
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
}

fn check_zero_port(cfg: &ServiceConfig) -> Result<(), IpvsError> {
    if let ServiceKey::Addr { port: 0, .. } = cfg.key {
        if cfg.persistence.is_none() {
            return Err(IpvsError::ZeroPortNotPersistent(cfg.key));
        }
    }
    Ok(())
}
