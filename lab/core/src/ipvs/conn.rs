//! The part of ip_vs_conn.c that ties conn table entries to services and dests:
//! ip_vs_bind_dest / ip_vs_unbind_dest, the protocol state change (set_tcp_state in
//! ip_vs_proto_tcp.c moving a conn between active and inactive), ip_vs_conn_expire, and the
//! entry view ipvsadm -Lnc reads. The table itself is `crate::conn`.
use std::net::SocketAddr;
use std::time::Duration;

use super::ctl::TRASH_PERIOD;
use super::{ms, ConnView, Ipvs, IpvsError};
use crate::conn::{Conn, F_INACTIVE, F_NOOUTPUT, F_TEMPLATE};
use crate::tcp::{next_state, ConnState, Direction};
use crate::types::{ConnId, FlowPacket, ForwardMethod, Protocol, ServiceKey};

impl Ipvs {
    /// A conn entry bound to `dest` without asking the scheduler: ip_vs_conn_new with a
    /// chosen dest, as the backup's sync daemon creates entries. `established` makes it
    /// active (ESTABLISHED, the TCP timeout), otherwise inactive (TIME_WAIT, 120 s).
    ///
    /// It exists so `load` in a simulate script can set up a server's counts exactly as
    /// held and closed connections would: ip_vs_bind_dest counts it, its timer expires it,
    /// and no scheduler state (rr cursor, wrr weight, sh/mh tables, lblc cache) moves, as it
    /// would if connections were scheduled to get there.
    pub fn place_conn(
        &mut self,
        now: Duration,
        key: ServiceKey,
        dest: SocketAddr,
        client: SocketAddr,
        established: bool,
    ) -> Result<(), IpvsError> {
        let sid = *self.by_key.get(&key).ok_or(IpvsError::NoService(key))?;
        let did = self
            .svc(sid)
            .list
            .iter()
            .copied()
            .find(|&id| self.dest(id).is_some_and(|d| d.cfg.addr == dest))
            .ok_or(IpvsError::NoDest(key, dest))?;
        if self.conns.is_full() {
            return Err(IpvsError::ConnTableFull);
        }
        let (protocol, vip) = match key {
            ServiceKey::Addr {
                protocol,
                vip,
                port,
            } => (protocol, SocketAddr::new(vip.0, port)),
            // A fwmark service has no address of its own; the entry needs one to be hashed.
            ServiceKey::FwMark(_) => (Protocol::Tcp, SocketAddr::new(dest.ip(), 0)),
        };
        let method = self.dest(did).map_or(ForwardMethod::Nat, |d| d.cfg.method);
        let state = if established {
            ConnState::Established
        } else {
            ConnState::TimeWait
        };
        let mut c = Conn::new_flow(protocol, client, vip, dest.port(), sid, did);
        c.flags = if established { 0 } else { F_INACTIVE };
        if method != ForwardMethod::Nat {
            c.flags |= F_NOOUTPUT;
        }
        c.state = state;
        c.timeout_ms = ms(self.timeout_for(state)) as u32;
        let id = self.conns.insert(c);
        self.conns.hash_in(id);
        if method == ForwardMethod::Nat {
            let dests = &self.dests;
            self.conns
                .hash_out(id, |d| dests.get(d).map(|x| x.cfg.addr.ip()));
        }
        // ip_vs_bind_dest: counted by the entry's flags, then the upper threshold.
        if let Some(mut d) = self.dest_mut(did) {
            if established {
                d.active += 1;
            } else {
                d.inactive += 1;
            }
            if d.cfg.u_threshold != 0 && d.total_conns() >= d.cfg.u_threshold {
                d.overloaded = true;
            }
        }
        self.conns.arm(id, ms(now));
        Ok(())
    }

    /// ip_vs_conn_expire for every entry due by `now`.
    pub(super) fn expire_conns(&mut self, now: Duration) {
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
    }

    /// The timeout of a state, ipvsadm --set overriding three of them.
    pub(super) fn timeout_for(&self, state: ConnState) -> Duration {
        match state {
            ConnState::Established => self.timeouts.tcp,
            ConnState::FinWait => self.timeouts.tcp_fin,
            ConnState::Udp => self.timeouts.udp,
            s => s.default_timeout(),
        }
    }

    /// Run the protocol state machine and move the conn between active and inactive.
    pub(super) fn transition(&mut self, _now: Duration, id: u32, dir: Direction, pkt: &FlowPacket) {
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

    /// ip_vs_bind_dest: count the new (inactive) conn and check the upper threshold.
    pub(super) fn bind(&mut self, did: u32) {
        if let Some(mut d) = self.dest_mut(did) {
            d.inactive += 1;
            if d.cfg.u_threshold != 0 && d.total_conns() >= d.cfg.u_threshold {
                d.overloaded = true;
            }
        }
    }

    /// ip_vs_unbind_dest: uncount and maybe clear the overload flag.
    pub(super) fn unbind(&mut self, now: Duration, did: u32, flags: u8) {
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

    /// Unlink an entry from the table, its template and its dest.
    pub(super) fn remove_conn(&mut self, now: Duration, id: u32) {
        let Some(c) = self.conns.get(id) else {
            return;
        };
        let rs = self.dest(c.dest).map(|d| d.cfg.addr.ip());
        let Some(c) = self.conns.remove(id, rs) else {
            return;
        };
        if let Some(s) = self.sync.as_deref_mut() {
            s.forget(id);
        }
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

    /// An entry as ipvsadm -Lnc shows it.
    pub(super) fn view(&self, id: u32, now: Duration) -> Option<ConnView> {
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

    /// Every entry like `ipvsadm -Lnc`, oldest slot first.
    pub fn conns(&self, now: Duration) -> Vec<ConnView> {
        self.conns
            .iter()
            .filter_map(|(id, _)| self.view(id.0, now))
            .collect()
    }
}
