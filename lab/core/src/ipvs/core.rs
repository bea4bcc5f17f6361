//! ip_vs_core.c: the packet path. A packet in (ip_vs_in) finds its conn or, for a new flow,
//! its service and a real server (ip_vs_schedule, with persistence templates as in
//! ip_vs_sched_persist); a NAT reply out (ip_vs_out) finds its conn by the server side; ICMP
//! errors look conns up by the quoted packet (ip_vs_in_icmp, ip_vs_out_icmp).
use std::net::SocketAddr;
use std::time::Duration;

use super::{mask, ms, ConnView, Forward, InVerdict, Ipvs, OutVerdict};
use crate::conn::{Conn, F_INACTIVE, F_NOOUTPUT, F_TEMPLATE};
use crate::dest::Counters;
use crate::explain::{Candidate, PickExplain};
use crate::sched::{self, SchedInput};
use crate::tcp::{ConnState, Direction};
use crate::types::{ConnId, FlowPacket, ForwardMethod, Protocol, ServiceKey};

/// A new conn's first timeout before its first state change (ip_vs_conn_new).
const INITIAL_TIMEOUT_MS: u32 = 3000;

impl Ipvs {
    /// A packet travelling client -> virtual service.
    pub fn packet_in(&mut self, now: Duration, pkt: &FlowPacket) -> InVerdict {
        self.expire(now);
        let now_ms = ms(now);
        let mut found = self.conns.find_in(pkt.protocol, pkt.src, pkt.dst);
        if let (Some(id), Some(flags)) = (found, pkt.tcp) {
            // conn_reuse_mode 1: a fresh SYN on a TIME_WAIT entry reschedules the flow;
            // with expire_nodest_conn so does one on an entry whose server has weight 0
            // (ip_vs_in; the kernel skips controlled conns, and the core reschedules only an
            // entry nothing depends on, as it would expire it).
            let quiesced = |c: &Conn| {
                self.cfg.expire_nodest_conn
                    && c.control().is_none()
                    && self.dest(c.dest).is_some_and(|d| d.weight() == 0)
            };
            let reuse = self.conns.get(id).is_some_and(|c| {
                c.n_control == 0 && (c.state == ConnState::TimeWait || quiesced(c))
            });
            if reuse && flags.syn && !flags.ack && !flags.rst && !flags.fin {
                self.remove_conn(now, id);
                found = None;
            }
        }
        if let Some(id) = found {
            let gone = self
                .conns
                .get(id)
                .and_then(|c| self.dest(c.dest))
                .is_some_and(|d| !d.available);
            if gone {
                // The server was deleted (ip_vs_in, "Check the server status"). Without
                // expire_nodest_conn the packet is dropped and the timer left alone, so the
                // client's flow hangs until the entry times out; with it the entry goes now
                // and the packet carries on as one without a conn.
                if !self.cfg.expire_nodest_conn {
                    return InVerdict::Drop;
                }
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
        // The first flow of a client of a persistent service makes its template too: room
        // for both, or the table outgrows its bound (found by fuzzing the frame path: two
        // entries in a table of one; fuzz/regressions/frame_path/).
        let needs_template = |s: &Self| {
            let svc = s.svc(sid);
            svc.cfg
                .persistence
                .is_some_and(|p| !svc.templates.contains_key(&mask(pkt.src.ip(), p.netmask)))
        };
        // A full table first makes room by the drop_entry defence when it is on; that may
        // drop this client's template with its last flow, so its need is asked again.
        let room = self.make_room(now, 1 + usize::from(needs_template(self)))
            && self.make_room(now, 1 + usize::from(needs_template(self)));
        if !room {
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
            // packet_in handled a deleted server before; kept as a guard.
            return InVerdict::Drop;
        }
        let (addr, method, svc) = (dest.cfg.addr, dest.cfg.method, c.svc);
        let dir = if c.flags & F_NOOUTPUT != 0 {
            Direction::InputOnly
        } else {
            Direction::Input
        };
        self.count(svc, did, pkt.len, true);
        self.count_in_pkt(id);
        self.transition(now, id, dir, pkt);
        self.conns.arm(id, now_ms);
        if self.sync.is_some() {
            self.sync_conn_in(id, false);
        }
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

    /// cp->in_pkts: ip_vs_in counts every packet of a flow from the client, the first
    /// included (todrop_entry reads it; it stops counting where the rule stops looking).
    fn count_in_pkt(&mut self, id: u32) {
        if let Some(c) = self.conns.get_mut(id) {
            c.in_pkts = c.in_pkts.saturating_add(1);
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
                ServiceKey::FwMark { .. } => 0,
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
        let key = svc.cfg.key;
        let dport = conn_dport(key, addr, pkt.dst.port());
        // The explanation names every server as the conn would reach it, the way the step's
        // report and the kernel's conn table (ipvsadm -Lnc) do: a port-0 dest of a fwmark
        // service written as 192.168.1.201:80 there is not 192.168.1.201:0 here.
        let pick = pick.map(|e| {
            e.with_server_addrs(|a| SocketAddr::new(a.ip(), conn_dport(key, a, pkt.dst.port())))
        });
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
        self.count_in_pkt(id);
        let dir = if method == ForwardMethod::Nat {
            Direction::Input
        } else {
            Direction::InputOnly
        };
        self.transition(now, id, dir, pkt);
        if self.sync.is_some() {
            self.sync_conn_in(id, one_packet);
        }
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
}

/// The port a new conn to real server `dest` uses (ip_vs_conn_new's dport): a port-0 dest
/// of a port-0 (all ports) or fwmark service keeps the client's destination port.
fn conn_dport(key: ServiceKey, dest: SocketAddr, pkt_dport: u16) -> u16 {
    match key {
        ServiceKey::Addr { port: 0, .. } | ServiceKey::FwMark { .. } if dest.port() == 0 => {
            pkt_dport
        }
        _ => dest.port(),
    }
}
