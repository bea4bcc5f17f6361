//! The part of ip_vs_conn.c that ties conn table entries to services and dests:
//! ip_vs_bind_dest / ip_vs_unbind_dest, the protocol state change (set_tcp_state in
//! ip_vs_proto_tcp.c moving a conn between active and inactive), ip_vs_conn_expire, and the
//! entry view ipvsadm -Lnc reads. The table itself is `crate::conn`.
use std::net::SocketAddr;
use std::time::Duration;

use super::ctl::TRASH_PERIOD;
use super::{ms, ConnView, Ipvs, IpvsError};
use crate::conn::{Conn, EVICT_WINDOW, F_INACTIVE, F_NOOUTPUT, F_TEMPLATE};
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
            ServiceKey::FwMark { .. } => (Protocol::Tcp, SocketAddr::new(dest.ip(), 0)),
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

    /// update_defense_level's drop_entry part: whether the defence is on, given whether
    /// memory is short (for lvslab: the table at its bound). As in the kernel, 1 turns into
    /// 2 when memory runs short and 2 back into 1 when it no longer is, so the sysctl
    /// reads 2 while the defence is working.
    fn update_defense_level(&mut self, nomem: bool) -> bool {
        match self.cfg.drop_entry {
            0 => false,
            1 if nomem => {
                self.cfg.drop_entry = 2;
                true
            }
            1 => false,
            2 if nomem => true,
            2 => {
                self.cfg.drop_entry = 1;
                false
            }
            _ => true,
        }
    }

    /// defense_work_handler: once a second, check the level and, while the defence is on,
    /// sweep 1/32 of the table as ip_vs_random_dropentry does (from the cursor rather than
    /// from random buckets). With the table full, new flows do not wait for this: they
    /// make room themselves (`make_room`).
    pub(super) fn defense_timer(&mut self, now: Duration) {
        self.defense_at = now + Duration::from_secs(1);
        let full = self.conns.is_full();
        if self.update_defense_level(full) {
            let window = (self.conns.slot_count() / 32).max(1);
            self.drop_entries(now, usize::MAX, window);
        }
    }

    /// Make room for `need` more entries in a full table by the drop_entry defence, when it
    /// is on; returns whether there is room now. With drop_entry 0 it only says whether
    /// there was room, so the bound policy is exactly the conn module's.
    pub(super) fn make_room(&mut self, now: Duration, need: usize) -> bool {
        let over = |s: &Self| (s.conns.len() + need).saturating_sub(s.conns.max);
        if over(self) == 0 {
            return true;
        }
        if self.cfg.drop_entry == 0 || !self.update_defense_level(true) {
            return false;
        }
        let want = over(self);
        self.drop_entries(now, want, EVICT_WINDOW);
        over(self) == 0
    }

    /// ip_vs_random_dropentry over `window` slots from the table's cursor, stopping once
    /// `want` entries are free; returns how many went. The victims are the kernel's:
    /// - TCP in SYN_RECV or SYNACK (half-open: what a SYN flood leaves) always;
    /// - TCP ESTABLISHED and every non-TCP flow only when `todrop_entry` says so;
    /// - a template only when it controls no flow and its service is one-packet (OPS),
    ///   and then by `todrop_entry` too;
    /// - everything else (TIME_WAIT, CLOSE, FIN_WAIT, ...) never: it expires soon anyway.
    ///
    /// A dropped flow's template goes with it when it then controls nothing
    /// (ip_vs_conn_expire_now on cp->control; a template still in use lives on).
    pub(super) fn drop_entries(&mut self, now: Duration, want: usize, window: usize) -> usize {
        let slots = self.conns.slot_count();
        if slots == 0 || want == 0 {
            return 0;
        }
        let now_ms = ms(now);
        let mut pos = self.conns.cursor % slots;
        let mut freed = 0;
        for _ in 0..window.min(slots) {
            let id = pos as u32;
            pos = (pos + 1) % slots;
            if !self.is_drop_victim(id, now_ms) {
                continue;
            }
            let control = self.conns.get(id).and_then(Conn::control);
            self.remove_conn(now, id);
            freed += 1;
            if let Some(t) = control {
                if self.conns.get(t).is_some_and(|t| t.n_control == 0) {
                    self.remove_conn(now, t);
                    freed += 1;
                }
            }
            if freed >= want {
                break;
            }
        }
        self.conns.cursor = pos;
        self.stats.evicted_drop_entry += freed as u64;
        freed
    }

    /// ip_vs_random_dropentry's choice for one entry (see `drop_entries`).
    fn is_drop_victim(&mut self, id: u32, now_ms: u64) -> bool {
        let Some(c) = self.conns.get(id) else {
            return false;
        };
        if c.flags & F_TEMPLATE != 0 {
            // ip_vs_conn_ops_mode: the template's service schedules one packet at a time.
            let ops = self
                .services
                .get(c.svc as usize)
                .and_then(Option::as_ref)
                .is_some_and(|s| s.cfg.flags.one_packet);
            if c.n_control > 0 || !ops {
                return false;
            }
            return self.todrop_entry(id, now_ms);
        }
        match (c.protocol, c.state) {
            (Protocol::Tcp, ConnState::SynRecv | ConnState::SynAck) => true,
            (Protocol::Tcp, ConnState::Established) => self.todrop_entry(id, now_ms),
            (Protocol::Tcp, _) => false,
            (Protocol::Udp, _) => self.todrop_entry(id, now_ms),
        }
    }

    /// todrop_entry (ip_vs_conn.c): an entry whose timer was last restarted less than 60 s
    /// ago is kept ("enough time for normal connection to get through"), and so is one
    /// that has seen no incoming packet or more than 8; of the others with i incoming
    /// packets, one in i is dropped (the rate counters, `todrop_rate[i] = i`).
    fn todrop_entry(&mut self, id: u32, now_ms: u64) -> bool {
        let Some(c) = self.conns.get(id) else {
            return false;
        };
        // time_before(cp->timeout + jiffies, cp->timer.expires + 60 * HZ): the timer is
        // armed at timeout from the last packet, so this is "idle for under 60 s".
        if u64::from(c.timeout_ms) + now_ms < c.expires_ms + 60_000 {
            return false;
        }
        let i = usize::from(c.in_pkts);
        if !(1..=8).contains(&i) {
            return false;
        }
        let counter = &mut self.dropentry_counters[i];
        *counter -= 1;
        if *counter > 0 {
            return false;
        }
        *counter = i as i8;
        true
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
