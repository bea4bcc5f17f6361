//! The userspace director: an [`Ipvs`] table plus the packet path around it, still I/O-free.
//!
//! A device layer hands every received frame to [`Director::handle_frame`] and calls
//! [`Director::poll`] now and then; both return frames to transmit on named interfaces.
//!
//! Routing is deliberately small: the director's connected subnets (from its interface
//! addresses) plus static routes "PREFIX via GATEWAY" (typically the topology's
//! `default via ...`), longest prefix first, connected before static on a tie, per address
//! family. The director forwards only virtual-service traffic and answers ARP, Neighbour
//! Solicitations and ping for the VIPs (the director's kernel does not hold them);
//! everything else addressed to it (ARP and ND for its own addresses, pings to the DIP,
//! ssh, ...) is left to its kernel. IPv6 (the `v6` module) is handled only when an interface
//! has an IPv6 address or a service has an IPv6 VIP; otherwise IPv6 frames are ignored as
//! before.

use crate::wire::{
    self, IcmpError, IcmpInner, Ipv4Cidr, Ipv4Meta, MacAddr, Parsed, ETH_HDR_LEN, L4,
};
use crate::{
    FlowPacket, ForwardMethod, InVerdict, Ipvs, IpvsCommand, IpvsError, OutVerdict, Protocol,
    ServiceKey, TcpFlags,
};
use etherparse::{ArpEthIpv4Packet, ArpOperation};
use ipnet::Ipv6Net;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

mod ha;
mod v6;
pub use ha::{HaEvent, HaInstance, HaStatus, SyncCounters, EVENTS_KEPT};

/// Index of one of the director's interfaces, in the order of [`DirectorConfig::interfaces`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IfaceId(pub usize);

/// One of the director's network interfaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Interface name inside the director's namespace, e.g. `eth1`.
    pub name: String,
    /// Its MAC address (the director sends from it and answers ARP with it).
    pub mac: MacAddr,
    /// Its IPv4 addresses with prefixes; the prefixes are the connected subnets.
    pub addrs: Vec<Ipv4Cidr>,
    /// Its IPv6 addresses (global ones; link-local addresses stay the kernel's) with
    /// prefixes, the connected IPv6 subnets. Empty on an IPv4-only lab.
    pub addrs6: Vec<Ipv6Net>,
    /// Its MTU (for TUN's fragmentation-needed / packet-too-big check).
    pub mtu: u16,
    /// Whether the director answers ARP and Neighbour Solicitations for the VIPs here
    /// (interfaces facing clients).
    pub answers_vip_arp: bool,
}

/// A static route: `dest` is reached through the gateway `via` on a connected subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Destination prefix (0.0.0.0/0 for the default route).
    pub dest: Ipv4Cidr,
    /// Next hop; must lie in one of the interfaces' subnets.
    pub via: Ipv4Addr,
}

/// A static IPv6 route: `dest` is reached through the gateway `via` on a connected subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route6 {
    /// Destination prefix (::/0 for the default route).
    pub dest: Ipv6Net,
    /// Next hop; must lie in one of the interfaces' IPv6 subnets.
    pub via: Ipv6Addr,
}

/// Everything the director needs to know about its own host.
#[derive(Debug, Clone, Default)]
pub struct DirectorConfig {
    /// The interfaces the device layer attaches to.
    pub interfaces: Vec<Interface>,
    /// Static IPv4 routes besides the connected subnets.
    pub routes: Vec<Route>,
    /// Static IPv6 routes besides the connected subnets.
    pub routes6: Vec<Route6>,
}

/// A configuration the director cannot work with.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DirectorError {
    /// A static route's gateway is on none of the interfaces' subnets.
    #[error("route {dest} via {via}: the gateway is on no connected subnet of the director; give it an interface address in that subnet or fix the route")]
    UnreachableGateway {
        /// The route's prefix.
        dest: Ipv4Cidr,
        /// Its gateway.
        via: Ipv4Addr,
    },
    /// A static IPv6 route's gateway is on none of the interfaces' IPv6 subnets.
    #[error("route {dest} via {via}: the gateway is on no connected IPv6 subnet of the director; give it an interface address in that subnet or fix the route")]
    UnreachableGateway6 {
        /// The route's prefix.
        dest: Ipv6Net,
        /// Its gateway.
        via: Ipv6Addr,
    },
    /// Two interfaces share a name.
    #[error("interface {0} is listed twice")]
    DuplicateInterface(String),
    /// A VRRP instance the director cannot run.
    #[error("{0}")]
    HaSetup(String),
}

/// Counters of what the packet path did (beside the Ipvs service counters).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectorStats {
    /// Frames handed to `handle_frame`.
    pub rx_frames: u64,
    /// Frames returned for transmission.
    pub tx_frames: u64,
    /// Packets forwarded to a real server (any method).
    pub forwarded: u64,
    /// NAT replies rewritten to the VIP and sent to the client.
    pub masqueraded: u64,
    /// ICMP errors related to a connection and passed on.
    pub icmp_related: u64,
    /// ICMP errors the director generated (port unreachable, frag needed, time exceeded).
    pub icmp_sent: u64,
    /// Frames the director could not parse.
    pub malformed: u64,
    /// IPv4 packets to the director's MAC that belong to no service and no connection.
    pub not_ours: u64,
    /// Packets IPVS said to drop (e.g. a TCP non-SYN with no connection).
    pub ipvs_drops: u64,
    /// Packets with no route to their next hop.
    pub no_route: u64,
    /// Packets dropped because the next hop never answered ARP or a Neighbour Solicitation
    /// (or its queue overflowed).
    pub arp_failed: u64,
    /// Fragments of virtual-service traffic (the director does not reassemble).
    pub fragments: u64,
    /// ICMP echo requests to a VIP answered with an echo reply.
    pub echo_replies: u64,
    /// TCP segments to a VIP that opened no connection, answered with a RST as the
    /// director's own stack would.
    pub resets: u64,
    /// Packets to a VIP this director holds on standby (VRRP BACKUP), not balanced.
    pub standby: u64,
    /// VRRP advertisements sent.
    pub vrrp_adverts: u64,
    /// Gratuitous ARPs sent on becoming VRRP MASTER.
    pub garps: u64,
    /// VRRP packets that failed their checks (checksum, TTL, version, length).
    pub vrrp_bad: u64,
}

/// Like the kernel's `retrans_time_ms` and `mcast_solicit`: ask once a second, three times.
const ARP_RETRY: Duration = Duration::from_secs(1);
const ARP_TRIES: u32 = 3;
/// After this long without confirmation an entry is re-probed while still in use.
const NEIGH_REACHABLE: Duration = Duration::from_secs(30);
/// Entries unconfirmed this long are forgotten.
const NEIGH_GC: Duration = Duration::from_secs(300);
/// The kernel's default `unres_qlen_bytes`: frames queued per unresolved neighbour.
const UNRES_QLEN_BYTES: usize = 212_992;

#[derive(Debug)]
struct Neighbour {
    mac: MacAddr,
    confirmed: Duration,
    last_probe: Option<Duration>,
}

#[derive(Debug, Default)]
struct Pending {
    frames: std::collections::VecDeque<Vec<u8>>,
    bytes: usize,
    tries: u32,
    last_sent: Duration,
}

/// Where a packet goes next (`A` is the address family's address type).
#[derive(Debug, Clone, Copy)]
struct NextHop<A = Ipv4Addr> {
    iface: IfaceId,
    gateway: A,
    src: A,
}

/// Frames to transmit: interface and the full Ethernet frame.
pub type Tx = Vec<(IfaceId, Vec<u8>)>;

/// The userspace director.
pub struct Director {
    ipvs: Ipvs,
    ifaces: Vec<Interface>,
    routes: Vec<Route>,
    routes6: Vec<Route6>,
    vips: Vec<Ipv4Addr>,
    vips6: Vec<Ipv6Addr>,
    /// Whether IPv6 frames are the director's business at all (an IPv6 address or VIP).
    v6_on: bool,
    marks: Vec<crate::mark::MarkRule>,
    /// Neighbour caches of both families: ARP for IPv4, Neighbour Discovery for IPv6.
    neigh: HashMap<(IfaceId, IpAddr), Neighbour>,
    pending: HashMap<(IfaceId, IpAddr), Pending>,
    ip_id: u16,
    stats: DirectorStats,
    picks: std::collections::VecDeque<Pick>,
    ha: Vec<ha::Ha>,
    ha_events: std::collections::VecDeque<HaEvent>,
    sync: SyncCounters,
}

/// How many explained picks a director keeps (the newest).
pub const PICKS_KEPT: usize = 256;

/// Why the scheduler sent a new connection where it did, kept while explaining is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pick {
    /// The client's address and port.
    pub client: SocketAddr,
    /// The virtual service address it asked for.
    pub vip: SocketAddr,
    /// The scheduler's reasoning, as `lvslab simulate --explain` prints it.
    pub explain: crate::PickExplain,
}

/// What the IPVS table said of a TCP or UDP packet, for either address family's path.
enum Step {
    /// Send to `dest` by `method`.
    Forward {
        method: ForwardMethod,
        dest: SocketAddr,
    },
    /// No server available: an ICMP port unreachable to the client.
    Reject,
    /// Ours but dropped; a stray TCP segment to a VIP gets a RST.
    Drop,
    /// A NAT reply: its source becomes `vip`.
    Masquerade(SocketAddr),
    /// Nothing more to do (counted).
    Done,
}

impl Director {
    /// A director with `ipvs` as its table, on the interfaces and routes of `config`.
    pub fn new(config: DirectorConfig, ipvs: Ipvs) -> Result<Self, DirectorError> {
        for (i, a) in config.interfaces.iter().enumerate() {
            if config.interfaces[..i].iter().any(|b| b.name == a.name) {
                return Err(DirectorError::DuplicateInterface(a.name.clone()));
            }
        }
        for r in &config.routes {
            let on_link = config
                .interfaces
                .iter()
                .any(|i| i.addrs.iter().any(|a| a.contains(r.via)));
            if !on_link {
                return Err(DirectorError::UnreachableGateway {
                    dest: r.dest,
                    via: r.via,
                });
            }
        }
        for r in &config.routes6 {
            let on_link = config
                .interfaces
                .iter()
                .any(|i| i.addrs6.iter().any(|a| a.contains(&r.via)));
            if !on_link {
                return Err(DirectorError::UnreachableGateway6 {
                    dest: r.dest,
                    via: r.via,
                });
            }
        }
        let mut d = Director {
            ipvs,
            ifaces: config.interfaces,
            routes: config.routes,
            routes6: config.routes6,
            vips: Vec::new(),
            vips6: Vec::new(),
            v6_on: false,
            marks: Vec::new(),
            neigh: HashMap::new(),
            pending: HashMap::new(),
            ip_id: 1,
            stats: DirectorStats::default(),
            picks: std::collections::VecDeque::new(),
            ha: Vec::new(),
            ha_events: std::collections::VecDeque::new(),
            sync: SyncCounters::default(),
        };
        d.refresh_vips();
        Ok(d)
    }

    /// The balancing table (services, counters, connections).
    pub fn ipvs(&self) -> &Ipvs {
        &self.ipvs
    }

    /// The interfaces, indexed by [`IfaceId`].
    pub fn interfaces(&self) -> &[Interface] {
        &self.ifaces
    }

    /// The interface called `name`.
    pub fn iface_id(&self, name: &str) -> Option<IfaceId> {
        self.ifaces.iter().position(|i| i.name == name).map(IfaceId)
    }

    /// Packet-path counters.
    pub fn stats(&self) -> &DirectorStats {
        &self.stats
    }

    /// Start or stop keeping the scheduler's reasoning for each new connection (it costs a
    /// candidate list per new connection, so it is off unless asked for).
    pub fn set_explain(&mut self, on: bool) {
        self.ipvs.set_explain(on);
        if !on {
            self.picks.clear();
        }
    }

    /// Set a `net.ipv4.vs.*` sysctl the balancer models (`Ipvs::set_sysctl`).
    pub fn set_sysctl(&mut self, name: &str, value: &str) -> Result<(), IpvsError> {
        self.ipvs.set_sysctl(name, value)
    }

    /// The newest explained picks, oldest first (at most [`PICKS_KEPT`]).
    pub fn picks(&self) -> impl Iterator<Item = &Pick> {
        self.picks.iter()
    }

    /// Change the table (an ipvsadm command); the VIPs the director answers ARP for follow.
    pub fn apply(&mut self, now: Duration, cmd: IpvsCommand) -> Result<(), IpvsError> {
        let r = self.ipvs.apply(now, cmd);
        self.refresh_vips();
        r
    }

    /// Zero the counters of one service or of all (`ipvsadm -Z`).
    pub fn zero(&mut self, key: Option<&crate::types::ServiceKey>) -> Result<(), IpvsError> {
        self.ipvs.zero(key)
    }

    /// Add a mangle MARK rule: packets it matches reach IPVS with its mark, as netfilter
    /// marks them before IPVS in the kernel. Its address is a VIP the director answers for.
    pub fn add_mark(&mut self, rule: crate::mark::MarkRule) {
        self.marks.push(rule);
        self.refresh_vips();
    }

    /// The mark the rules give a packet: the first matching rule's (iptables' MARK target
    /// does not stop the chain, so a later match would overwrite it; lvslab's rules never
    /// overlap, and the first is what `add_mark` callers can reason about), else 0.
    fn mark_of(&self, protocol: Protocol, dst: IpAddr, port: u16) -> u32 {
        self.marks
            .iter()
            .find(|r| r.matches(protocol, dst, port))
            .map_or(0, |r| r.mark)
    }

    fn refresh_vips(&mut self) {
        let mut vips: Vec<Ipv4Addr> = self
            .ipvs
            .services()
            .iter()
            .filter_map(|s| match s.config.key {
                ServiceKey::Addr { vip, .. } => match vip.0 {
                    IpAddr::V4(v4) => Some(v4),
                    IpAddr::V6(_) => None,
                },
                ServiceKey::FwMark { .. } => None,
            })
            .chain(self.marks.iter().filter_map(|r| match r.dst {
                IpAddr::V4(v4) => Some(v4),
                IpAddr::V6(_) => None,
            }))
            .collect();
        vips.sort();
        vips.dedup();
        self.vips = vips;
        let mut vips6: Vec<Ipv6Addr> = self
            .ipvs
            .services()
            .iter()
            .filter_map(|s| match s.config.key {
                ServiceKey::Addr { vip, .. } => match vip.0 {
                    IpAddr::V6(v6) => Some(v6),
                    IpAddr::V4(_) => None,
                },
                ServiceKey::FwMark { .. } => None,
            })
            .chain(self.marks.iter().filter_map(|r| match r.dst {
                IpAddr::V6(v6) => Some(v6),
                IpAddr::V4(_) => None,
            }))
            .collect();
        vips6.sort();
        vips6.dedup();
        self.vips6 = vips6;
        self.v6_on = !self.vips6.is_empty() || self.ifaces.iter().any(|i| !i.addrs6.is_empty());
    }

    /// Handle one received frame; returns the frames to send.
    pub fn handle_frame(&mut self, now: Duration, iface: IfaceId, frame: &[u8]) -> Tx {
        let mut tx = Vec::new();
        self.stats.rx_frames += 1;
        let Some(my_mac) = self.ifaces.get(iface.0).map(|i| i.mac) else {
            return tx;
        };
        match wire::parse(frame) {
            // Before the director knew IPv6 every IPv6 frame was "other": a broken one
            // still is, unless IPv6 is on.
            Err(_) if !self.v6_on && is_ipv6(frame) => {}
            Err(_) => self.stats.malformed += 1,
            Ok(Parsed::Other) => {}
            Ok(Parsed::Arp { arp, .. }) => self.on_arp(now, iface, &arp, &mut tx),
            // Checked once here, the rewrites below cannot meet a frame shorter than its meta.
            Ok(Parsed::Ipv4(meta)) if wire::Ipv4Frame::new_checked(frame, &meta).is_err() => {
                self.stats.malformed += 1
            }
            Ok(Parsed::Ipv4(meta)) if self.on_ha_frame(now, iface, frame, &meta, &mut tx) => {}
            Ok(Parsed::Ipv4(meta)) => {
                if meta.dst_mac == my_mac && !self.is_local(meta.dst) {
                    self.on_ipv4(now, iface, frame, &meta, &mut tx);
                }
            }
            // An IPv4-only director leaves IPv6 alone, as it did before it knew IPv6.
            Ok(Parsed::Ipv6(_)) if !self.v6_on => {}
            Ok(Parsed::Ipv6(meta)) => self.on_ipv6_frame(now, iface, my_mac, frame, &meta, &mut tx),
        }
        self.stats.tx_frames += tx.len() as u64;
        tx
    }

    /// Run timers: ARP retries and neighbour expiry, connection expiry.
    pub fn poll(&mut self, now: Duration) -> Tx {
        let mut tx = Vec::new();
        self.ipvs.expire(now);
        let mut give_up = Vec::new();
        let mut ask = Vec::new();
        for (key, p) in self.pending.iter_mut() {
            if now.saturating_sub(p.last_sent) >= ARP_RETRY {
                if p.tries >= ARP_TRIES {
                    give_up.push(*key);
                } else {
                    p.tries += 1;
                    p.last_sent = now;
                    ask.push(*key);
                }
            }
        }
        for key in give_up {
            if let Some(p) = self.pending.remove(&key) {
                self.stats.arp_failed += p.frames.len() as u64;
            }
        }
        for (iface, ip) in ask {
            if let Some(f) = self.solicit(iface, ip, None) {
                tx.push((iface, f));
            }
        }
        self.neigh
            .retain(|_, n| now.saturating_sub(n.confirmed) < NEIGH_GC);
        self.poll_ha(now, &mut tx);
        self.stats.tx_frames += tx.len() as u64;
        tx
    }

    fn is_local(&self, ip: Ipv4Addr) -> bool {
        self.ifaces
            .iter()
            .any(|i| i.addrs.iter().any(|a| a.addr == ip))
    }

    fn next_id(&mut self) -> u16 {
        let id = self.ip_id;
        self.ip_id = self.ip_id.wrapping_add(1);
        id
    }

    fn on_arp(&mut self, now: Duration, iface: IfaceId, arp: &ArpEthIpv4Packet, tx: &mut Tx) {
        let sender = Ipv4Addr::from(arp.sender_ipv4);
        let target = Ipv4Addr::from(arp.target_ipv4);
        let ours = self.vips.contains(&target) || self.is_local(target);
        let key = (iface, IpAddr::V4(sender));
        // Learn like the kernel: from anyone we are waiting for or already know, and from
        // whoever asks for one of our addresses (they will talk to us next).
        if !sender.is_unspecified()
            && (ours || self.neigh.contains_key(&key) || self.pending.contains_key(&key))
        {
            let mac = MacAddr(arp.sender_mac);
            self.neigh.insert(
                key,
                Neighbour {
                    mac,
                    confirmed: now,
                    last_probe: None,
                },
            );
            self.release_pending(iface, key.1, mac, tx);
        }
        let answers = self.ifaces[iface.0].answers_vip_arp;
        if arp.operation == ArpOperation::REQUEST
            && answers
            && self.vips.contains(&target)
            && !self.standby_vip(target)
        {
            let mac = self.ifaces[iface.0].mac;
            let reply = ArpEthIpv4Packet {
                operation: ArpOperation::REPLY,
                sender_mac: mac.0,
                sender_ipv4: arp.target_ipv4,
                target_mac: arp.sender_mac,
                target_ipv4: arp.sender_ipv4,
            };
            tx.push((iface, wire::arp_frame(MacAddr(arp.sender_mac), mac, &reply)));
        }
    }

    fn on_ipv4(
        &mut self,
        now: Duration,
        iface: IfaceId,
        frame: &[u8],
        meta: &Ipv4Meta,
        tx: &mut Tx,
    ) {
        if self.standby_vip(meta.dst) {
            self.stats.standby += 1;
            return;
        }
        let Some(pkt) =
            self.flow_packet(&meta.l4, meta.src.into(), meta.dst.into(), meta.total_len)
        else {
            match meta.l4 {
                L4::IcmpError { ref inner, .. } => {
                    self.on_icmp_error(now, iface, frame, meta, inner, tx)
                }
                L4::Icmp { icmp_type, .. } => {
                    if icmp_type == wire::ICMP_ECHO && self.vips.contains(&meta.dst) {
                        self.echo_reply(now, frame, meta, tx);
                    }
                }
                _ => {
                    if meta.fragment && self.vips.contains(&meta.dst) {
                        self.stats.fragments += 1;
                    }
                }
            }
            return;
        };
        match self.consult(now, &pkt) {
            Step::Forward { method, dest } => {
                if let Some(ip) = v4(dest) {
                    self.forward(now, frame, meta, method, ip, dest.port(), None, tx);
                }
            }
            Step::Reject => {
                self.send_icmp(now, frame, meta, IcmpError::PortUnreachable, meta.dst, tx)
            }
            Step::Drop => self.reset_unscheduled(now, frame, meta, &pkt, tx),
            Step::Masquerade(vip) => {
                if let Some(vip_ip) = v4(vip) {
                    self.masquerade(now, iface, frame, meta, vip_ip, vip.port(), tx);
                }
            }
            Step::Done => {}
        }
    }

    /// The flow a TCP or UDP packet belongs to, as IPVS keys it (either family); `None` for
    /// ICMP and other protocols, which each family's path handles itself.
    fn flow_packet<I>(
        &self,
        l4: &L4<I>,
        src: IpAddr,
        dst: IpAddr,
        total_len: usize,
    ) -> Option<FlowPacket> {
        let (protocol, sport, dport, tcp) = match *l4 {
            L4::Tcp {
                sport,
                dport,
                syn,
                ack,
                fin,
                rst,
            } => (
                Protocol::Tcp,
                sport,
                dport,
                Some(TcpFlags { syn, ack, fin, rst }),
            ),
            L4::Udp { sport, dport } => (Protocol::Udp, sport, dport, None),
            _ => return None,
        };
        Some(FlowPacket {
            protocol,
            src: SocketAddr::new(src, sport),
            dst: SocketAddr::new(dst, dport),
            tcp,
            // iptables/ip6tables mangle MARK rules, as netfilter marks before IPVS sees the
            // packet.
            fwmark: self.mark_of(protocol, dst, dport),
            len: total_len as u32,
        })
    }

    /// Ask the IPVS table about a packet (ip_vs_in, then ip_vs_out for what is not a
    /// client's), keeping the pick's explanation and the counters; the caller does the
    /// family's rewrite.
    fn consult(&mut self, now: Duration, pkt: &FlowPacket) -> Step {
        match self.ipvs.packet_in(now, pkt) {
            InVerdict::Forward(mut f) => {
                if let Some(explain) = f.pick.take() {
                    if self.picks.len() == PICKS_KEPT {
                        self.picks.pop_front();
                    }
                    self.picks.push_back(Pick {
                        client: pkt.src,
                        vip: f.vip,
                        explain,
                    });
                }
                Step::Forward {
                    method: f.method,
                    dest: f.dest,
                }
            }
            InVerdict::Reject => Step::Reject,
            InVerdict::Drop => {
                self.stats.ipvs_drops += 1;
                Step::Drop
            }
            InVerdict::Pass => match self.ipvs.packet_out(now, pkt) {
                OutVerdict::Masquerade { vip, .. } => Step::Masquerade(vip),
                OutVerdict::Pass => {
                    self.stats.not_ours += 1;
                    Step::Done
                }
            },
        }
    }

    /// A TCP segment that IPVS dropped is answered with a RST when it is to a VIP and
    /// opens no connection: not a SYN or RST, and no entry for it.
    fn wants_reset(&self, pkt: &FlowPacket, to_vip: bool) -> bool {
        let Some(f) = pkt.tcp else { return false };
        to_vip && !f.syn && !f.rst && self.ipvs.find_in(pkt.protocol, pkt.src, pkt.dst).is_none()
    }

    /// Kernel IPVS hands a TCP segment to a VIP that opens no connection (no SYN, no entry)
    /// to the director's own stack, which holds the VIP and answers with a RST; the
    /// userspace director's kernel has no VIP, so the director answers in its place. A
    /// segment of a known connection (e.g. to a deleted server) stays dropped, as ip_vs_in
    /// drops it.
    fn reset_unscheduled(
        &mut self,
        now: Duration,
        frame: &[u8],
        meta: &Ipv4Meta,
        pkt: &FlowPacket,
        tx: &mut Tx,
    ) {
        if !self.wants_reset(pkt, self.vips.contains(&meta.dst)) {
            return;
        }
        let Some(rst) = ha::rst_for(frame, meta) else {
            return;
        };
        let Some(hop) = self.route(meta.src) else {
            self.stats.no_route += 1;
            return;
        };
        self.stats.resets += 1;
        self.emit(now, hop.iface, hop.gateway, rst, tx);
    }

    /// Send a client's packet to real server `dest` by `method` (ip_vs_{nat,dr,tunnel}_xmit).
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &mut self,
        now: Duration,
        frame: &[u8],
        meta: &Ipv4Meta,
        method: ForwardMethod,
        dest: Ipv4Addr,
        dport: u16,
        icmp_related: Option<&IcmpInner>,
        tx: &mut Tx,
    ) {
        let Some(hop) = self.route(dest) else {
            self.stats.no_route += 1;
            return;
        };
        let mut pkt = frame[..ETH_HDR_LEN + meta.total_len].to_vec();
        if wire::decrement_ttl(&mut pkt).is_err() {
            return self.send_icmp(now, frame, meta, IcmpError::TtlExceeded, meta.dst, tx);
        }
        let (pkt, gateway) = match method {
            ForwardMethod::Nat => {
                match icmp_related {
                    Some(inner) => wire::nat_icmp_inner(&mut pkt, meta, inner, true, dest, dport),
                    None => wire::rewrite_dst(&mut pkt, meta, dest, dport),
                }
                (pkt, hop.gateway)
            }
            // The real server holds the VIP itself: only the MAC changes, so the RIP must be
            // the next hop (IP_VS_RT_MODE_KNOWN_NH).
            ForwardMethod::Dr => (pkt, dest),
            ForwardMethod::Tun => {
                let mtu = self.ifaces[hop.iface.0].mtu.saturating_sub(20);
                if meta.df && meta.total_len > usize::from(mtu) && icmp_related.is_none() {
                    // The kernel checks the MTU after decrement_ttl, so it quotes TTL - 1.
                    let kind = IcmpError::FragNeeded { mtu };
                    return self.send_icmp(now, &pkt, meta, kind, meta.dst, tx);
                }
                let id = self.next_id();
                (wire::encap_ipip(&pkt, meta, hop.src, dest, id), hop.gateway)
            }
        };
        if icmp_related.is_some() {
            self.stats.icmp_related += 1;
        } else {
            self.stats.forwarded += 1;
        }
        self.emit(now, hop.iface, gateway, pkt, tx);
    }

    /// A NAT reply from a real server: source becomes the VIP, then on to the client.
    #[allow(clippy::too_many_arguments)]
    fn masquerade(
        &mut self,
        now: Duration,
        in_iface: IfaceId,
        frame: &[u8],
        meta: &Ipv4Meta,
        vip: Ipv4Addr,
        vport: u16,
        tx: &mut Tx,
    ) {
        let Some(hop) = self.route(meta.dst) else {
            self.stats.no_route += 1;
            return;
        };
        let mut pkt = frame[..ETH_HDR_LEN + meta.total_len].to_vec();
        if wire::decrement_ttl(&mut pkt).is_err() {
            let src = self.iface_addr(in_iface, meta.src);
            return self.send_icmp(now, frame, meta, IcmpError::TtlExceeded, src, tx);
        }
        match meta.l4 {
            L4::IcmpError { ref inner, .. } => {
                wire::nat_icmp_inner(&mut pkt, meta, inner, false, vip, vport);
                self.stats.icmp_related += 1;
            }
            _ => {
                wire::rewrite_src(&mut pkt, meta, vip, vport);
                self.stats.masqueraded += 1;
            }
        }
        self.emit(now, hop.iface, hop.gateway, pkt, tx);
    }

    /// ICMP errors quoting a connection's packet go where the connection goes
    /// (ip_vs_in_icmp / ip_vs_out_icmp).
    fn on_icmp_error(
        &mut self,
        now: Duration,
        iface: IfaceId,
        frame: &[u8],
        meta: &Ipv4Meta,
        inner: &IcmpInner,
        tx: &mut Tx,
    ) {
        let step = self.relate_icmp(
            inner.proto,
            SocketAddr::new(inner.src.into(), inner.sport),
            SocketAddr::new(inner.dst.into(), inner.dport),
        );
        match step {
            Step::Forward { method, dest } => {
                if let Some(ip) = v4(dest) {
                    self.forward(now, frame, meta, method, ip, dest.port(), Some(inner), tx);
                }
            }
            Step::Masquerade(vip) => {
                if let Some(vip_ip) = v4(vip) {
                    self.masquerade(now, iface, frame, meta, vip_ip, vip.port(), tx);
                }
            }
            _ => {}
        }
    }

    /// Where an ICMP error quoting `quoted_src -> quoted_dst` goes, for either family:
    /// after the connection it quotes, inbound when the quoted packet went VIP -> client (a
    /// reply the client's side refused), outbound when it went client -> RIP (only NAT
    /// replies pass the director).
    fn relate_icmp(&mut self, proto: u8, quoted_src: SocketAddr, quoted_dst: SocketAddr) -> Step {
        let protocol = if proto == wire::IPPROTO_TCP {
            Protocol::Tcp
        } else {
            Protocol::Udp
        };
        if let Some(conn) = self.ipvs.find_in(protocol, quoted_dst, quoted_src) {
            return Step::Forward {
                method: conn.method,
                dest: conn.dest,
            };
        }
        if let Some(conn) = self.ipvs.find_out(protocol, quoted_dst, quoted_src) {
            if conn.method == ForwardMethod::Nat {
                return Step::Masquerade(conn.vip);
            }
            return Step::Done;
        }
        self.stats.not_ours += 1;
        Step::Done
    }

    /// Send an ICMP error about `frame`'s packet back to its source, from `src`.
    fn send_icmp(
        &mut self,
        now: Duration,
        frame: &[u8],
        meta: &Ipv4Meta,
        kind: IcmpError,
        src: Ipv4Addr,
        tx: &mut Tx,
    ) {
        let Some(hop) = self.route(meta.src) else {
            self.stats.no_route += 1;
            return;
        };
        let id = self.next_id();
        let offending = &frame[ETH_HDR_LEN..ETH_HDR_LEN + meta.total_len];
        let pkt = wire::icmp_error(kind, offending, src, id);
        self.stats.icmp_sent += 1;
        self.emit(now, hop.iface, hop.gateway, pkt, tx);
    }

    /// Answer a ping to a VIP like the kernel would if the VIP were configured on the
    /// director (`icmp_echo`): the reply goes from the VIP back to the pinger.
    fn echo_reply(&mut self, now: Duration, frame: &[u8], meta: &Ipv4Meta, tx: &mut Tx) {
        if meta.fragment {
            // The kernel would answer after reassembly; the director does not reassemble.
            self.stats.fragments += 1;
            return;
        }
        let id = self.next_id();
        let request = &frame[ETH_HDR_LEN..ETH_HDR_LEN + meta.total_len];
        let Some(pkt) = wire::icmp_echo_reply(request, id) else {
            self.stats.malformed += 1;
            return;
        };
        let Some(hop) = self.route(meta.src) else {
            self.stats.no_route += 1;
            return;
        };
        self.stats.echo_replies += 1;
        self.emit(now, hop.iface, hop.gateway, pkt, tx);
    }

    /// Send the frames queued for `(iface, ip)`, now known to be at `mac`.
    fn release_pending(&mut self, iface: IfaceId, ip: IpAddr, mac: MacAddr, tx: &mut Tx) {
        if let Some(p) = self.pending.remove(&(iface, ip)) {
            let src = self.ifaces[iface.0].mac;
            for mut f in p.frames {
                set_macs_for(&mut f, ip, mac, src);
                tx.push((iface, f));
            }
        }
    }

    /// Put `pkt` (Ethernet header to be filled) on `iface` towards `gateway`, resolving its
    /// MAC with ARP (IPv4) or Neighbour Discovery (IPv6).
    fn emit(
        &mut self,
        now: Duration,
        iface: IfaceId,
        gateway: impl Into<IpAddr>,
        mut pkt: Vec<u8>,
        tx: &mut Tx,
    ) {
        let gateway: IpAddr = gateway.into();
        let src_mac = self.ifaces[iface.0].mac;
        if let Some(n) = self.neigh.get_mut(&(iface, gateway)) {
            set_macs_for(&mut pkt, gateway, n.mac, src_mac);
            tx.push((iface, pkt));
            let stale = now.saturating_sub(n.confirmed) >= NEIGH_REACHABLE;
            let probed_recently = n
                .last_probe
                .is_some_and(|t| now.saturating_sub(t) < ARP_RETRY);
            if stale && !probed_recently {
                n.last_probe = Some(now);
                // IPv6 re-confirms a known neighbour with a unicast solicitation (PROBE).
                let known = n.mac;
                if let Some(f) = self.solicit(iface, gateway, Some(known)) {
                    tx.push((iface, f));
                }
            }
            return;
        }
        let p = self.pending.entry((iface, gateway)).or_default();
        p.bytes += pkt.len();
        p.frames.push_back(pkt);
        while p.bytes > UNRES_QLEN_BYTES {
            match p.frames.pop_front() {
                Some(old) => {
                    p.bytes -= old.len();
                    self.stats.arp_failed += 1;
                }
                None => break,
            }
        }
        if p.tries == 0 {
            p.tries = 1;
            p.last_sent = now;
            if let Some(f) = self.solicit(iface, gateway, None) {
                tx.push((iface, f));
            }
        }
    }

    /// Ask who has `target`: a broadcast ARP request for IPv4 (re-probes too, as before); a
    /// Neighbour Solicitation for IPv6, to the solicited-node group, or unicast to
    /// `probe_mac` when re-confirming a known neighbour.
    fn solicit(
        &self,
        iface: IfaceId,
        target: IpAddr,
        probe_mac: Option<MacAddr>,
    ) -> Option<Vec<u8>> {
        let i = self.ifaces.get(iface.0)?;
        match target {
            IpAddr::V4(t) => Some(wire::arp_request(i.mac, self.iface_addr(iface, t), t)),
            IpAddr::V6(t) => {
                // From the link-local address, as ndisc_solicit does when the packet that
                // needs the neighbour does not come from one of the interface's own
                // addresses: the director only resolves next hops for forwarded traffic.
                let src = wire::link_local(i.mac);
                Some(wire::neighbour_solicitation(i.mac, src, t, probe_mac))
            }
        }
    }

    /// The interface's address in `peer`'s subnet, else its first address.
    fn iface_addr(&self, iface: IfaceId, peer: Ipv4Addr) -> Ipv4Addr {
        let addrs = &self.ifaces[iface.0].addrs;
        addrs
            .iter()
            .find(|a| a.contains(peer))
            .or(addrs.first())
            .map_or(Ipv4Addr::UNSPECIFIED, |a| a.addr)
    }

    /// Longest-prefix match over connected subnets and static routes.
    fn route(&self, dst: Ipv4Addr) -> Option<NextHop> {
        let mut best: Option<(u8, NextHop)> = None;
        for (idx, i) in self.ifaces.iter().enumerate() {
            for a in &i.addrs {
                if a.contains(dst) && best.is_none_or(|(p, _)| a.prefix > p) {
                    let hop = NextHop {
                        iface: IfaceId(idx),
                        gateway: dst,
                        src: a.addr,
                    };
                    best = Some((a.prefix, hop));
                }
            }
        }
        for r in &self.routes {
            if r.dest.contains(dst) && best.is_none_or(|(p, _)| r.dest.prefix > p) {
                let Some(hop) = self.route_connected(r.via) else {
                    continue;
                };
                best = Some((
                    r.dest.prefix,
                    NextHop {
                        gateway: r.via,
                        ..hop
                    },
                ));
            }
        }
        best.map(|(_, h)| h)
    }

    fn route_connected(&self, ip: Ipv4Addr) -> Option<NextHop> {
        self.ifaces.iter().enumerate().find_map(|(idx, i)| {
            i.addrs.iter().find(|a| a.contains(ip)).map(|a| NextHop {
                iface: IfaceId(idx),
                gateway: ip,
                src: a.addr,
            })
        })
    }
}

/// Fill in the Ethernet header of a frame for `gateway`'s family.
fn set_macs_for(frame: &mut [u8], gateway: IpAddr, dst: MacAddr, src: MacAddr) {
    match gateway {
        IpAddr::V4(_) => wire::set_macs(frame, dst, src),
        IpAddr::V6(_) => wire::set_macs6(frame, dst, src),
    }
}

/// Whether the frame's EtherType says IPv6.
fn is_ipv6(frame: &[u8]) -> bool {
    frame.get(12..14) == Some(&wire::ETHERTYPE_IPV6.to_be_bytes()[..])
}

fn v4(addr: SocketAddr) -> Option<Ipv4Addr> {
    match addr.ip() {
        IpAddr::V4(v) => Some(v),
        IpAddr::V6(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvsadm;
    use crate::IpvsConfig;
    use etherparse::PacketBuilder;

    const MAC0: MacAddr = MacAddr([2, 0, 0, 0, 2, 0]);
    const PEER: [u8; 6] = [2, 0, 0, 0, 1, 1];

    fn director() -> Director {
        let mut ipvs = Ipvs::new(IpvsConfig::default());
        for l in [
            "-A -t 192.168.1.250:80 -s rr",
            "-a -t 192.168.1.250:80 -r 192.168.1.201:80 -m",
        ] {
            ipvs.apply(Duration::ZERO, ipvsadm::parse(l).unwrap())
                .unwrap();
        }
        let iface = |name: &str, mac, addr: &str| Interface {
            name: name.into(),
            mac,
            addrs: vec![addr.parse().unwrap()],
            addrs6: vec![],
            mtu: 1500,
            answers_vip_arp: true,
        };
        let cfg = DirectorConfig {
            interfaces: vec![
                iface("eth0", MAC0, "203.0.113.2/24"),
                iface("eth1", MacAddr([2, 0, 0, 0, 2, 1]), "192.168.1.202/24"),
            ],
            routes: vec![Route {
                dest: "0.0.0.0/0".parse().unwrap(),
                via: Ipv4Addr::new(203, 0, 113, 1),
            }],
            routes6: vec![],
        };
        Director::new(cfg, ipvs).unwrap()
    }

    fn syn(dst_mac: MacAddr, dst: [u8; 4], ttl: u8) -> Vec<u8> {
        let b = PacketBuilder::ethernet2(PEER, dst_mac.0)
            .ipv4([198, 51, 100, 10], dst, ttl)
            .tcp(40000, 80, 1, 64240)
            .syn();
        let mut out = Vec::new();
        b.write(&mut out, &[]).unwrap();
        out
    }

    #[test]
    fn unresolved_next_hop_is_asked_three_times_then_dropped() {
        let mut d = director();
        let tx = d.handle_frame(
            Duration::ZERO,
            IfaceId(0),
            &syn(MAC0, [192, 168, 1, 250], 64),
        );
        assert_eq!(tx.len(), 1, "only the ARP request leaves, the SYN waits");
        let mut asks = 1;
        for s in 1..=5 {
            asks += d.poll(Duration::from_secs(s)).len();
        }
        assert_eq!(asks, 3);
        assert_eq!(d.stats().arp_failed, 1);
    }

    #[test]
    fn ttl_one_gets_time_exceeded_from_the_vip() {
        let mut d = director();
        // Learn the router's MAC first so the ICMP error leaves at once.
        let arp = ArpEthIpv4Packet {
            operation: ArpOperation::REQUEST,
            sender_mac: PEER,
            sender_ipv4: [203, 0, 113, 1],
            target_mac: [0; 6],
            target_ipv4: [192, 168, 1, 250],
        };
        let replies = d.handle_frame(
            Duration::ZERO,
            IfaceId(0),
            &wire::arp_frame(MacAddr::BROADCAST, MacAddr(PEER), &arp),
        );
        assert_eq!(replies.len(), 1);
        let tx = d.handle_frame(
            Duration::ZERO,
            IfaceId(0),
            &syn(MAC0, [192, 168, 1, 250], 1),
        );
        let Ok(Parsed::Ipv4(m)) = wire::parse(&tx[0].1) else {
            panic!("{tx:?}")
        };
        assert_eq!(
            (m.src, m.dst),
            (
                Ipv4Addr::new(192, 168, 1, 250),
                Ipv4Addr::new(198, 51, 100, 10)
            )
        );
        assert!(matches!(
            m.l4,
            L4::IcmpError {
                icmp_type: 11,
                code: 0,
                ..
            }
        ));
    }

    #[test]
    fn leaves_the_kernel_its_own_traffic() {
        let mut d = director();
        assert!(d
            .handle_frame(Duration::ZERO, IfaceId(0), &syn(MAC0, [203, 0, 113, 2], 64))
            .is_empty());
        let other_mac = MacAddr([2, 9, 9, 9, 9, 9]);
        assert!(d
            .handle_frame(
                Duration::ZERO,
                IfaceId(0),
                &syn(other_mac, [192, 168, 1, 250], 64)
            )
            .is_empty());
        assert_eq!(d.stats().forwarded, 0);
    }

    #[test]
    fn marked_vips_reach_the_firewall_mark_service_and_are_answered_for() {
        let mut d = director();
        for l in [
            "-A -f 1 -s dh",
            "-a -f 1 -r 192.168.1.201:80 -m",
            "-a -f 1 -r 192.168.1.203:80 -m",
        ] {
            d.apply(Duration::ZERO, ipvsadm::parse(l).unwrap()).unwrap();
        }
        for vip in ["192.168.1.251", "192.168.1.252"] {
            let rule = format!(
                "iptables -t mangle -A PREROUTING -d {vip} -p tcp --dport 80 -j MARK --set-mark 1"
            );
            d.add_mark(crate::mark::MarkRule::parse(&rule).unwrap());
        }
        // ARP for a marked VIP is answered, as for any VIP.
        let arp = ArpEthIpv4Packet {
            operation: ArpOperation::REQUEST,
            sender_mac: PEER,
            sender_ipv4: [203, 0, 113, 1],
            target_mac: [0; 6],
            target_ipv4: [192, 168, 1, 251],
        };
        let frame = wire::arp_frame(MacAddr::BROADCAST, MacAddr(PEER), &arp);
        assert_eq!(d.handle_frame(Duration::ZERO, IfaceId(0), &frame).len(), 1);
        // A SYN to a marked VIP is scheduled by the fwmark service: the director asks
        // for the chosen real server's MAC.
        let tx = d.handle_frame(
            Duration::ZERO,
            IfaceId(0),
            &syn(MAC0, [192, 168, 1, 251], 64),
        );
        let Some(Ok(Parsed::Arp { arp, .. })) = tx.first().map(|(_, f)| wire::parse(f)) else {
            panic!("{tx:?}")
        };
        assert!([[192, 168, 1, 201], [192, 168, 1, 203]].contains(&arp.target_ipv4));
        // Another port of the same address carries no mark and no service takes it.
        let mut other = Vec::new();
        PacketBuilder::ethernet2(PEER, MAC0.0)
            .ipv4([198, 51, 100, 10], [192, 168, 1, 251], 64)
            .tcp(40001, 81, 1, 64240)
            .syn()
            .write(&mut other, &[])
            .unwrap();
        let before = d.stats().forwarded;
        let tx = d.handle_frame(Duration::ZERO, IfaceId(0), &other);
        assert!(tx
            .iter()
            .all(|(_, f)| !matches!(wire::parse(f), Ok(Parsed::Arp { .. }))));
        assert_eq!(d.stats().forwarded, before);
    }

    #[test]
    fn rejects_a_gateway_off_every_subnet() {
        let cfg = DirectorConfig {
            interfaces: vec![],
            routes: vec![Route {
                dest: "0.0.0.0/0".parse().unwrap(),
                via: Ipv4Addr::new(10, 0, 0, 1),
            }],
            routes6: vec![],
        };
        assert!(matches!(
            Director::new(cfg, Ipvs::new(IpvsConfig::default())),
            Err(DirectorError::UnreachableGateway { .. })
        ));
    }
}
