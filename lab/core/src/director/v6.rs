//! The director's IPv6 packet path: Neighbour Discovery in place of ARP, then the same
//! forwarding as IPv4 (`ip_vs_in`/`ip_vs_out` with the `*_v6` transmitters of
//! ip_vs_xmit.c): NAT with IPv6 checksums, DR by MAC, TUN as IPv6-in-IPv6, ICMPv6 errors
//! and echo replies for the VIPs.

use super::{Director, IfaceId, Neighbour, NextHop, Step, Tx};
use crate::wire::{self, Icmp6Error, IcmpInner6, Ipv6Meta, MacAddr, NaFlags, Nd, ETH_HDR_LEN, L4};
use crate::{FlowPacket, ForwardMethod};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// ff02::1, where an answer to a duplicate-address probe goes.
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

fn v6(addr: SocketAddr) -> Option<Ipv6Addr> {
    match addr.ip() {
        IpAddr::V6(v) => Some(v),
        IpAddr::V4(_) => None,
    }
}

impl Director {
    /// An address the director's kernel answers for: its own IPv6 addresses, and every
    /// link-local address (the kernel's business, never forwarded).
    fn is_local6(&self, ip: Ipv6Addr) -> bool {
        ip.is_unicast_link_local()
            || self
                .ifaces
                .iter()
                .any(|i| i.addrs6.iter().any(|a| a.addr() == ip))
    }

    /// An IPv6 frame, with IPv6 on: Neighbour Discovery first, then virtual-service traffic
    /// to the director's MAC.
    pub(super) fn on_ipv6_frame(
        &mut self,
        now: Duration,
        iface: IfaceId,
        my_mac: MacAddr,
        frame: &[u8],
        meta: &Ipv6Meta,
        tx: &mut Tx,
    ) {
        // Checked once here, the rewrites below cannot meet a frame shorter than its meta.
        if wire::check_ipv6(frame, meta).is_err() {
            self.stats.malformed += 1;
            return;
        }
        if let Some(nd) = wire::parse_nd(frame, meta) {
            return self.on_nd(now, iface, meta, nd, tx);
        }
        if meta.dst_mac == my_mac && !meta.dst.is_multicast() && !self.is_local6(meta.dst) {
            self.on_ipv6(now, iface, frame, meta, tx);
        }
    }

    /// Remember that `ip` is at `mac` on `iface` and send what waited for it.
    fn learn6(&mut self, now: Duration, iface: IfaceId, ip: Ipv6Addr, mac: MacAddr, tx: &mut Tx) {
        self.neigh.insert(
            (iface, IpAddr::V6(ip)),
            Neighbour {
                mac,
                confirmed: now,
                last_probe: None,
            },
        );
        self.release_pending(iface, IpAddr::V6(ip), mac, tx);
    }

    /// Neighbour Discovery, as `ndisc_recv_ns`/`ndisc_recv_na` handle it for addresses the
    /// director owns: the VIPs (its kernel does not hold them) on interfaces facing clients.
    fn on_nd(&mut self, now: Duration, iface: IfaceId, meta: &Ipv6Meta, nd: Nd, tx: &mut Tx) {
        match nd {
            Nd::Solicit { target, lladdr } => {
                let vip = self.vips6.contains(&target);
                let ours = vip || self.is_local6(target);
                let key = (iface, IpAddr::V6(meta.src));
                // Learn like ARP: from whoever asks for one of our addresses (they talk to us
                // next) and from anyone we know or wait for.
                if let Some(mac) = lladdr {
                    if !meta.src.is_unspecified()
                        && (ours
                            || self.neigh.contains_key(&key)
                            || self.pending.contains_key(&key))
                    {
                        self.learn6(now, iface, meta.src, mac, tx);
                    }
                }
                let to_target = meta.dst == target || meta.dst == wire::solicited_node(target);
                if !(vip && to_target && self.ifaces[iface.0].answers_vip_arp) {
                    return;
                }
                // ndisc_recv_ns: a duplicate-address probe (from ::) is answered to all
                // nodes, unsolicited, with override; otherwise to the asker, solicited, with
                // override and our link-layer address only when the question was multicast.
                // R stays clear: the director's kernel does not forward (forwarding=0).
                let dad = meta.src.is_unspecified();
                let multicast = meta.dst.is_multicast();
                let (dst, dst_mac) = if dad {
                    (ALL_NODES, wire::multicast_mac(ALL_NODES))
                } else {
                    (meta.src, lladdr.unwrap_or(meta.src_mac))
                };
                let flags = NaFlags {
                    router: false,
                    solicited: !dad,
                    override_: dad || multicast,
                };
                let mac = self.ifaces[iface.0].mac;
                let na = wire::neighbour_advertisement(
                    mac,
                    target,
                    dst,
                    dst_mac,
                    flags,
                    dad || multicast,
                );
                tx.push((iface, na));
            }
            Nd::Advert {
                target,
                lladdr,
                solicited,
            } => {
                let key = (iface, IpAddr::V6(target));
                // ndisc_recv_na updates only an entry it has or is resolving.
                if !(self.neigh.contains_key(&key) || self.pending.contains_key(&key)) {
                    return;
                }
                match lladdr {
                    Some(mac) => self.learn6(now, iface, target, mac, tx),
                    // An answer to a unicast probe may leave the address out: it confirms
                    // the one we have.
                    None if solicited => {
                        if let Some(n) = self.neigh.get_mut(&key) {
                            n.confirmed = now;
                        }
                    }
                    None => {}
                }
            }
        }
    }

    fn on_ipv6(
        &mut self,
        now: Duration,
        iface: IfaceId,
        frame: &[u8],
        meta: &Ipv6Meta,
        tx: &mut Tx,
    ) {
        let Some(pkt) =
            self.flow_packet(&meta.l4, meta.src.into(), meta.dst.into(), meta.total_len)
        else {
            match meta.l4 {
                L4::IcmpError { ref inner, .. } => {
                    self.on_icmp6_error(now, iface, frame, meta, inner, tx)
                }
                L4::Icmp { icmp_type, .. } => {
                    if icmp_type == wire::ICMPV6_ECHO_REQUEST && self.vips6.contains(&meta.dst) {
                        self.echo_reply6(now, frame, meta, tx);
                    }
                }
                _ => {
                    if meta.fragment && self.vips6.contains(&meta.dst) {
                        self.stats.fragments += 1;
                    }
                }
            }
            return;
        };
        match self.consult(now, &pkt) {
            Step::Forward { method, dest } => {
                if let Some(ip) = v6(dest) {
                    self.forward6(now, frame, meta, method, ip, dest.port(), None, tx);
                }
            }
            // ip_vs_leave for an IPv6 service: ICMPV6_DEST_UNREACH / ICMPV6_PORT_UNREACH.
            Step::Reject => {
                self.send_icmp6(now, frame, meta, Icmp6Error::PortUnreachable, meta.dst, tx)
            }
            Step::Drop => self.reset_unscheduled6(now, frame, meta, &pkt, tx),
            Step::Masquerade(vip) => {
                if let Some(vip_ip) = v6(vip) {
                    self.masquerade6(now, iface, frame, meta, vip_ip, vip.port(), tx);
                }
            }
            Step::Done => {}
        }
    }

    /// The IPv6 twin of `reset_unscheduled`: a TCP segment to a VIP that opens no
    /// connection is answered with a RST, as the kernel holding the VIP would.
    fn reset_unscheduled6(
        &mut self,
        now: Duration,
        frame: &[u8],
        meta: &Ipv6Meta,
        pkt: &FlowPacket,
        tx: &mut Tx,
    ) {
        if !self.wants_reset(pkt, self.vips6.contains(&meta.dst)) {
            return;
        }
        let Some(rst) = wire::tcp6_reset(frame, meta) else {
            return;
        };
        let Some(hop) = self.route6(meta.src) else {
            self.stats.no_route += 1;
            return;
        };
        self.stats.resets += 1;
        self.emit(now, hop.iface, hop.gateway, rst, tx);
    }

    /// Send a client's packet to real server `dest` by `method`
    /// (ip_vs_{nat,dr,tunnel}_xmit_v6).
    #[allow(clippy::too_many_arguments)]
    fn forward6(
        &mut self,
        now: Duration,
        frame: &[u8],
        meta: &Ipv6Meta,
        method: ForwardMethod,
        dest: Ipv6Addr,
        dport: u16,
        icmp_related: Option<&IcmpInner6>,
        tx: &mut Tx,
    ) {
        let Some(hop) = self.route6(dest) else {
            self.stats.no_route += 1;
            return;
        };
        let mut pkt = frame[..ETH_HDR_LEN + meta.total_len].to_vec();
        if wire::decrement_hop_limit(&mut pkt).is_err() {
            let kind = Icmp6Error::HopLimitExceeded;
            return self.send_icmp6(now, frame, meta, kind, meta.dst, tx);
        }
        // __ip_vs_get_out_rt_v6: the route's MTU, less the outer header through a tunnel;
        // a tunnel path below the IPv6 minimum MTU is refused.
        let link_mtu = self.ifaces[hop.iface.0].mtu;
        let mtu = match method {
            ForwardMethod::Tun => {
                let m = link_mtu.saturating_sub(wire::IPV6_HDR_LEN as u16);
                if m < wire::IPV6_MIN_MTU {
                    self.stats.no_route += 1;
                    return;
                }
                m
            }
            _ => link_mtu,
        };
        // ensure_mtu_is_adequate: IPv6 never fragments on the way, so a packet over the
        // MTU gets packet too big (not for ICMP errors), quoting it after the hop-limit
        // decrement as the kernel does.
        if meta.total_len > usize::from(mtu) {
            if icmp_related.is_none() {
                let kind = Icmp6Error::PacketTooBig {
                    mtu: u32::from(mtu),
                };
                return self.send_icmp6(now, &pkt, meta, kind, meta.dst, tx);
            }
            return;
        }
        let done = match method {
            ForwardMethod::Nat => {
                let r = match icmp_related {
                    Some(_) => wire::nat_icmp6(&mut pkt, meta, true, dest, dport),
                    None => wire::rewrite6_dst(&mut pkt, meta, dest, dport),
                };
                r.map(|()| (pkt, hop.gateway))
            }
            // The real server holds the VIP itself: only the MAC changes, so the RIP must be
            // the next hop (IP_VS_RT_MODE_KNOWN_NH).
            ForwardMethod::Dr => Ok((pkt, dest)),
            ForwardMethod::Tun => {
                wire::encap_ip6ip6(&pkt, meta, hop.src, dest).map(|p| (p, hop.gateway))
            }
        };
        let Ok((pkt, gateway)) = done else {
            self.stats.malformed += 1;
            return;
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
    fn masquerade6(
        &mut self,
        now: Duration,
        in_iface: IfaceId,
        frame: &[u8],
        meta: &Ipv6Meta,
        vip: Ipv6Addr,
        vport: u16,
        tx: &mut Tx,
    ) {
        let Some(hop) = self.route6(meta.dst) else {
            self.stats.no_route += 1;
            return;
        };
        let mut pkt = frame[..ETH_HDR_LEN + meta.total_len].to_vec();
        if wire::decrement_hop_limit(&mut pkt).is_err() {
            let src = self.iface_addr6(in_iface, meta.src).unwrap_or(vip);
            return self.send_icmp6(now, frame, meta, Icmp6Error::HopLimitExceeded, src, tx);
        }
        let r = match meta.l4 {
            L4::IcmpError { .. } => wire::nat_icmp6(&mut pkt, meta, false, vip, vport),
            _ => wire::rewrite6_src(&mut pkt, meta, vip, vport),
        };
        if r.is_err() {
            self.stats.malformed += 1;
            return;
        }
        if matches!(meta.l4, L4::IcmpError { .. }) {
            self.stats.icmp_related += 1;
        } else {
            self.stats.masqueraded += 1;
        }
        self.emit(now, hop.iface, hop.gateway, pkt, tx);
    }

    /// ICMPv6 errors quoting a connection's packet go where the connection goes
    /// (ip_vs_in_icmp_v6 / ip_vs_out_icmp_v6).
    fn on_icmp6_error(
        &mut self,
        now: Duration,
        iface: IfaceId,
        frame: &[u8],
        meta: &Ipv6Meta,
        inner: &IcmpInner6,
        tx: &mut Tx,
    ) {
        let step = self.relate_icmp(
            inner.proto,
            SocketAddr::new(inner.src.into(), inner.sport),
            SocketAddr::new(inner.dst.into(), inner.dport),
        );
        match step {
            Step::Forward { method, dest } => {
                if let Some(ip) = v6(dest) {
                    self.forward6(now, frame, meta, method, ip, dest.port(), Some(inner), tx);
                }
            }
            Step::Masquerade(vip) => {
                if let Some(vip_ip) = v6(vip) {
                    self.masquerade6(now, iface, frame, meta, vip_ip, vip.port(), tx);
                }
            }
            _ => {}
        }
    }

    /// Send an ICMPv6 error about `frame`'s packet back to its source, from `src`.
    fn send_icmp6(
        &mut self,
        now: Duration,
        frame: &[u8],
        meta: &Ipv6Meta,
        kind: Icmp6Error,
        src: Ipv6Addr,
        tx: &mut Tx,
    ) {
        // Never an error about an error (RFC 4443 2.4 e.1), as icmpv6_send refuses.
        if matches!(meta.l4, L4::IcmpError { .. }) {
            return;
        }
        let Some(hop) = self.route6(meta.src) else {
            self.stats.no_route += 1;
            return;
        };
        let offending = &frame[ETH_HDR_LEN..ETH_HDR_LEN + meta.total_len];
        let Some(pkt) = wire::icmp6_error(kind, offending, src) else {
            return;
        };
        self.stats.icmp_sent += 1;
        self.emit(now, hop.iface, hop.gateway, pkt, tx);
    }

    /// Answer a ping to a VIP like the kernel would if the VIP were configured on the
    /// director (`icmpv6_echo_reply`).
    fn echo_reply6(&mut self, now: Duration, frame: &[u8], meta: &Ipv6Meta, tx: &mut Tx) {
        let Some(pkt) = wire::icmp6_echo_reply(frame, meta) else {
            self.stats.malformed += 1;
            return;
        };
        let Some(hop) = self.route6(meta.src) else {
            self.stats.no_route += 1;
            return;
        };
        self.stats.echo_replies += 1;
        self.emit(now, hop.iface, hop.gateway, pkt, tx);
    }

    /// The interface's IPv6 address in `peer`'s subnet, else its first one.
    pub(super) fn iface_addr6(&self, iface: IfaceId, peer: Ipv6Addr) -> Option<Ipv6Addr> {
        let addrs = &self.ifaces.get(iface.0)?.addrs6;
        addrs
            .iter()
            .find(|a| a.contains(&peer))
            .or(addrs.first())
            .map(|a| a.addr())
    }

    /// Longest-prefix match over connected IPv6 subnets and static IPv6 routes.
    fn route6(&self, dst: Ipv6Addr) -> Option<NextHop<Ipv6Addr>> {
        let mut best: Option<(u8, NextHop<Ipv6Addr>)> = None;
        for (idx, i) in self.ifaces.iter().enumerate() {
            for a in &i.addrs6 {
                if a.contains(&dst) && best.is_none_or(|(p, _)| a.prefix_len() > p) {
                    let hop = NextHop {
                        iface: IfaceId(idx),
                        gateway: dst,
                        src: a.addr(),
                    };
                    best = Some((a.prefix_len(), hop));
                }
            }
        }
        for r in &self.routes6 {
            if r.dest.contains(&dst) && best.is_none_or(|(p, _)| r.dest.prefix_len() > p) {
                let Some(hop) = self.route_connected6(r.via) else {
                    continue;
                };
                best = Some((
                    r.dest.prefix_len(),
                    NextHop {
                        gateway: r.via,
                        ..hop
                    },
                ));
            }
        }
        best.map(|(_, h)| h)
    }

    fn route_connected6(&self, ip: Ipv6Addr) -> Option<NextHop<Ipv6Addr>> {
        self.ifaces.iter().enumerate().find_map(|(idx, i)| {
            i.addrs6.iter().find(|a| a.contains(&ip)).map(|a| NextHop {
                iface: IfaceId(idx),
                gateway: ip,
                src: a.addr(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{DirectorConfig, Interface, Route, Route6};
    use super::*;
    use crate::wire::{Parsed, ND_NEIGHBOR_ADVERT, ND_NEIGHBOR_SOLICIT};
    use crate::{ipvsadm, Ipvs, IpvsConfig};
    use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};

    const MAC0: MacAddr = MacAddr([2, 0, 0, 0, 2, 0]);
    const MAC1: MacAddr = MacAddr([2, 0, 0, 0, 2, 1]);
    const ROUTER: MacAddr = MacAddr([2, 0, 0, 0, 1, 1]);
    const RS1: MacAddr = MacAddr([2, 0, 0, 0, 3, 1]);
    const T0: Duration = Duration::ZERO;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }
    fn vip() -> Ipv6Addr {
        a("2001:db8:1::250")
    }
    fn rip() -> Ipv6Addr {
        a("2001:db8:1::201")
    }
    fn cip() -> Ipv6Addr {
        a("2001:db8:100::10")
    }
    fn gw() -> Ipv6Addr {
        a("2001:db8:203::1")
    }

    /// The dual-stack NAT lab's director: eth0 faces the router (answers for the VIPs),
    /// eth1 the real servers' LAN (does not); one IPv6 service with one real server.
    fn director(method: &str) -> Director {
        let mut ipvs = Ipvs::new(IpvsConfig::default());
        for l in [
            "-A -t [2001:db8:1::250]:80 -s rr".to_string(),
            format!("-a -t [2001:db8:1::250]:80 -r [2001:db8:1::201]:80 {method}"),
            "-A -t 192.168.1.250:80 -s rr".to_string(),
            "-a -t 192.168.1.250:80 -r 192.168.1.201:80 -m".to_string(),
        ] {
            ipvs.apply(T0, ipvsadm::parse(&l).unwrap()).unwrap();
        }
        let iface = |name: &str, mac, v4: &str, v6: &str, answers| Interface {
            name: name.into(),
            mac,
            addrs: vec![v4.parse().unwrap()],
            addrs6: vec![v6.parse().unwrap()],
            mtu: 1500,
            answers_vip_arp: answers,
        };
        let cfg = DirectorConfig {
            interfaces: vec![
                iface("eth0", MAC0, "203.0.113.2/24", "2001:db8:203::2/64", true),
                iface(
                    "eth1",
                    MAC1,
                    "192.168.1.202/24",
                    "2001:db8:1::202/64",
                    false,
                ),
            ],
            routes: vec![Route {
                dest: "0.0.0.0/0".parse().unwrap(),
                via: std::net::Ipv4Addr::new(203, 0, 113, 1),
            }],
            routes6: vec![Route6 {
                dest: "::/0".parse().unwrap(),
                via: gw(),
            }],
        };
        Director::new(cfg, ipvs).unwrap()
    }

    fn meta(f: &[u8]) -> Ipv6Meta {
        match wire::parse(f) {
            Ok(Parsed::Ipv6(m)) => m,
            other => panic!("not ipv6: {other:?}"),
        }
    }

    fn tcp(src: Ipv6Addr, dst: Ipv6Addr, sport: u16, dport: u16, hl: u8, syn: bool) -> Vec<u8> {
        let b = PacketBuilder::ethernet2(ROUTER.0, MAC0.0)
            .ipv6(src.octets(), dst.octets(), hl)
            .tcp(sport, dport, 1, 64240);
        let b = if syn { b.syn() } else { b.ack(5) };
        let mut out = Vec::new();
        b.write(&mut out, b"GET /").unwrap();
        out
    }

    fn syn(hl: u8) -> Vec<u8> {
        tcp(cip(), vip(), 40000, 80, hl, true)
    }

    /// The NA `who` (at `mac`) sends for itself, answering a multicast solicitation.
    fn na(mac: MacAddr, who: Ipv6Addr, to: Ipv6Addr, to_mac: MacAddr) -> Vec<u8> {
        let flags = NaFlags {
            router: false,
            solicited: true,
            override_: true,
        };
        wire::neighbour_advertisement(mac, who, to, to_mac, flags, true)
    }

    /// Teach the director where the router and rs1 are: the router asks for the VIP (and
    /// is learnt from its question), rs1 answers the director's solicitation.
    fn resolved(d: &mut Director) {
        let group = wire::solicited_node(vip());
        let asked = ns(vip(), group, wire::multicast_mac(group), gw());
        assert_eq!(d.handle_frame(T0, IfaceId(0), &asked).len(), 1);
        let probe = tcp(cip(), vip(), 1, 80, 64, true);
        d.handle_frame(T0, IfaceId(0), &probe);
        let tx = d.handle_frame(T0, IfaceId(1), &na(RS1, rip(), a("2001:db8:1::202"), MAC1));
        assert_eq!(tx.len(), 1, "the probe SYN was released");
    }

    /// A solicitation from the router (`src`) for `target`, to `dst` at `dst_mac`; with its
    /// link-layer address unless it is a duplicate-address probe (from ::).
    fn ns(target: Ipv6Addr, dst: Ipv6Addr, dst_mac: MacAddr, src: Ipv6Addr) -> Vec<u8> {
        let mut f = wire::neighbour_solicitation(ROUTER, src, target, Some(dst_mac));
        f[ETH_HDR_LEN + 24..ETH_HDR_LEN + 40].copy_from_slice(&dst.octets());
        if src.is_unspecified() {
            f.truncate(f.len() - 8);
            f[ETH_HDR_LEN + 5] -= 8;
        }
        let icmp = ETH_HDR_LEN + 40;
        f[icmp + 2] = 0;
        f[icmp + 3] = 0;
        let c = wire::checksum::ipv6_pseudo_checksum(src, dst, 58, &f[icmp..]);
        f[icmp + 2..icmp + 4].copy_from_slice(&c.to_be_bytes());
        f
    }

    /// The ND message in `f`: its type, destination, flags byte and whether it has an option.
    fn nd_of(f: &[u8]) -> (u8, Ipv6Addr, u8, bool) {
        let m = meta(f);
        let body = &f[m.l4_off()..];
        (body[0], m.dst, body[4], body.len() > 24)
    }

    #[test]
    fn answers_solicitations_for_the_vip_only_on_client_facing_interfaces() {
        let mut d = director("-m");
        let group = wire::solicited_node(vip());
        let gmac = wire::multicast_mac(group);
        // Multicast to the solicited-node group: NA with S and O and our MAC in an option,
        // from the VIP to the asker at its link-layer address.
        let tx = d.handle_frame(T0, IfaceId(0), &ns(vip(), group, gmac, gw()));
        assert_eq!(tx.len(), 1, "{tx:?}");
        let (iface, f) = &tx[0];
        assert_eq!(*iface, IfaceId(0));
        assert_eq!((&f[0..6], &f[6..12]), (&ROUTER.0[..], &MAC0.0[..]));
        assert_eq!(nd_of(f), (ND_NEIGHBOR_ADVERT, gw(), 0x60, true));
        assert_eq!(meta(f).src, vip());
        let Some(Nd::Advert { target, lladdr, .. }) = wire::parse_nd(f, &meta(f)) else {
            panic!("not an NA")
        };
        assert_eq!((target, lladdr), (vip(), Some(MAC0)));
        // Unicast: solicited, no override, no option (ndisc_recv_ns with inc = 0).
        let tx = d.handle_frame(T0, IfaceId(0), &ns(vip(), vip(), MAC0, gw()));
        assert_eq!(nd_of(&tx[0].1), (ND_NEIGHBOR_ADVERT, gw(), 0x40, false));
        // Duplicate-address probe: to all nodes, unsolicited, override.
        let tx = d.handle_frame(
            T0,
            IfaceId(0),
            &ns(vip(), group, gmac, Ipv6Addr::UNSPECIFIED),
        );
        assert_eq!(
            nd_of(&tx[0].1),
            (ND_NEIGHBOR_ADVERT, a("ff02::1"), 0x20, true)
        );
        // Never on the real servers' side, never for the director's own address (its
        // kernel answers), never for anyone else, never for a group that is not the target's.
        let rs_side = ns(vip(), group, gmac, a("2001:db8:1::201"));
        assert!(d.handle_frame(T0, IfaceId(1), &rs_side).is_empty());
        let dip = a("2001:db8:203::2");
        let own = ns(dip, wire::solicited_node(dip), gmac, gw());
        assert!(d.handle_frame(T0, IfaceId(0), &own).is_empty());
        let other = a("2001:db8:203::77");
        let theirs = ns(other, wire::solicited_node(other), gmac, gw());
        assert!(d.handle_frame(T0, IfaceId(0), &theirs).is_empty());
        let wrong_group = ns(vip(), wire::solicited_node(other), gmac, gw());
        assert!(d.handle_frame(T0, IfaceId(0), &wrong_group).is_empty());
    }

    #[test]
    fn next_hops_are_solicited_queued_and_released() {
        let mut d = director("-m");
        let tx = d.handle_frame(T0, IfaceId(0), &syn(64));
        assert_eq!(tx.len(), 1, "only the solicitation leaves, the SYN waits");
        let (iface, f) = &tx[0];
        assert_eq!(*iface, IfaceId(1));
        assert_eq!(&f[0..6], &[0x33, 0x33, 0xff, 0x00, 0x02, 0x01]);
        assert_eq!(nd_of(f).0, ND_NEIGHBOR_SOLICIT);
        // The interface's MAC in the test's director, as EUI-64: a link-local source, as the
        // kernel's director solicits for a forwarded packet (dr6-nd's snapshot, both backends).
        assert_eq!(
            meta(f).src,
            wire::link_local(d.interfaces()[1].mac),
            "from eth1's link-local address"
        );
        assert!(meta(f).src.is_unicast_link_local());
        // Asked three times a second apart, then the SYN is dropped.
        let mut asks = 1;
        for s in 1..=5 {
            asks += d.poll(Duration::from_secs(s)).len();
        }
        assert_eq!(asks, 3);
        assert_eq!(d.stats().arp_failed, 1);
        // Again, and this time rs1 answers: the SYN leaves at once to its MAC.
        let mut d = director("-m");
        d.handle_frame(T0, IfaceId(0), &syn(64));
        let tx = d.handle_frame(T0, IfaceId(1), &na(RS1, rip(), a("2001:db8:1::202"), MAC1));
        assert_eq!(tx.len(), 1);
        let f = &tx[0].1;
        assert_eq!(
            (&f[0..6], &f[6..12], &f[12..14]),
            (&RS1.0[..], &MAC1.0[..], &[0x86, 0xdd][..])
        );
        // An advertisement nobody asked for teaches nothing.
        let stranger = na(
            MacAddr([2, 9, 9, 9, 9, 9]),
            a("2001:db8:1::99"),
            a("2001:db8:1::202"),
            MAC1,
        );
        assert!(d.handle_frame(T0, IfaceId(1), &stranger).is_empty());
        assert!(!d
            .neigh
            .contains_key(&(IfaceId(1), IpAddr::V6(a("2001:db8:1::99")))));
    }

    /// The transport checksum etherparse computes for `f` equals the one it carries.
    fn assert_checksums(f: &[u8]) {
        let p = SlicedPacket::from_ethernet(f).unwrap();
        let Some(etherparse::NetSlice::Ipv6(ip)) = p.net else {
            panic!("no ipv6")
        };
        let h = ip.header().to_header();
        match p.transport {
            Some(TransportSlice::Tcp(t)) => assert_eq!(
                t.to_header().calc_checksum_ipv6(&h, t.payload()).unwrap(),
                t.checksum()
            ),
            Some(TransportSlice::Icmpv6(i)) => assert_eq!(
                i.icmp_type()
                    .calc_checksum(h.source, h.destination, i.payload())
                    .unwrap(),
                i.checksum()
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn nat_rewrites_both_ways_with_right_checksums() {
        let mut d = director("-m");
        resolved(&mut d);
        let tx = d.handle_frame(T0, IfaceId(0), &syn(64));
        let (iface, f) = &tx[0];
        assert_eq!(*iface, IfaceId(1));
        let m = meta(f);
        assert_eq!((m.src, m.dst, m.hop_limit), (cip(), rip(), 63));
        assert_checksums(f);
        // The reply: source becomes the VIP, off to the router.
        let mut reply = Vec::new();
        PacketBuilder::ethernet2(RS1.0, MAC1.0)
            .ipv6(rip().octets(), cip().octets(), 64)
            .tcp(80, 40000, 9, 64240)
            .syn()
            .ack(2)
            .write(&mut reply, b"")
            .unwrap();
        let tx = d.handle_frame(T0, IfaceId(1), &reply);
        let (iface, f) = &tx[0];
        assert_eq!(*iface, IfaceId(0));
        assert_eq!(&f[0..6], &ROUTER.0);
        let m = meta(f);
        assert_eq!((m.src, m.dst, m.hop_limit), (vip(), cip(), 63));
        assert!(matches!(
            m.l4,
            L4::Tcp {
                sport: 80,
                dport: 40000,
                ..
            }
        ));
        assert_checksums(f);
        assert_eq!(d.stats().masqueraded, 1);
    }

    #[test]
    fn nat_passes_icmp6_errors_of_a_connection_both_ways() {
        let mut d = director("-m");
        resolved(&mut d);
        let to_rs = d.handle_frame(T0, IfaceId(0), &syn(64)).remove(0).1;
        // rs1 says "port unreachable" about the NATed SYN: out to the client as from the VIP.
        let mut err = Vec::new();
        PacketBuilder::ethernet2(RS1.0, MAC1.0)
            .ipv6(rip().octets(), cip().octets(), 64)
            .icmpv6(etherparse::Icmpv6Type::DestinationUnreachable(
                etherparse::icmpv6::DestUnreachableCode::Port,
            ))
            .write(&mut err, &to_rs[ETH_HDR_LEN..])
            .unwrap();
        let tx = d.handle_frame(T0, IfaceId(1), &err);
        let f = &tx[0].1;
        let m = meta(f);
        assert_eq!((m.src, m.dst), (vip(), cip()));
        let L4::IcmpError { inner, .. } = &m.l4 else {
            panic!("{m:?}")
        };
        assert_eq!((inner.src, inner.dst, inner.dport), (cip(), vip(), 80));
        assert_checksums(f);
        // The client's side says "too big" about the VIP's reply: in to rs1 as about its packet.
        let mut reply = Vec::new();
        PacketBuilder::ipv6(vip().octets(), cip().octets(), 63)
            .tcp(80, 40000, 9, 64240)
            .ack(2)
            .write(&mut reply, b"")
            .unwrap();
        let mut err = Vec::new();
        PacketBuilder::ethernet2(ROUTER.0, MAC0.0)
            .ipv6(gw().octets(), vip().octets(), 64)
            .icmpv6(etherparse::Icmpv6Type::PacketTooBig { mtu: 1280 })
            .write(&mut err, &reply)
            .unwrap();
        let tx = d.handle_frame(T0, IfaceId(0), &err);
        let f = &tx[0].1;
        let m = meta(f);
        assert_eq!((m.src, m.dst), (gw(), rip()));
        let L4::IcmpError { inner, .. } = &m.l4 else {
            panic!("{m:?}")
        };
        assert_eq!((inner.src, inner.sport), (rip(), 80));
        assert_checksums(f);
        assert_eq!(d.stats().icmp_related, 2);
    }

    #[test]
    fn dr_changes_only_the_macs_and_the_hop_limit() {
        let mut d = director("-g");
        resolved(&mut d);
        let sent = syn(64);
        let tx = d.handle_frame(T0, IfaceId(0), &sent);
        let (iface, f) = &tx[0];
        assert_eq!(*iface, IfaceId(1));
        assert_eq!((&f[0..6], &f[6..12]), (&RS1.0[..], &MAC1.0[..]));
        let mut want = sent.clone();
        want[0..12].copy_from_slice(&[RS1.0, MAC1.0].concat());
        want[ETH_HDR_LEN + 7] = 63;
        assert_eq!(f, &want);
    }

    #[test]
    fn tun_wraps_ipv6_in_ipv6_and_says_packet_too_big_over_the_mtu() {
        let mut d = director("-i");
        resolved(&mut d);
        let sent = syn(64);
        let tx = d.handle_frame(T0, IfaceId(0), &sent);
        let f = &tx[0].1;
        // ip_vs_tunnel_xmit_v6: version 6, the inner traffic class, flow label 0, payload
        // length = inner packet, next header 41, the inner (decremented) hop limit, from the
        // DIP the route to rs1 leaves by, to rs1.
        let inner_len = sent.len() - ETH_HDR_LEN;
        let mut want = [RS1.0, MAC1.0].concat();
        want.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
        want.extend_from_slice(&(inner_len as u16).to_be_bytes());
        want.extend_from_slice(&[41, 63]);
        want.extend_from_slice(&a("2001:db8:1::202").octets());
        want.extend_from_slice(&rip().octets());
        let mut inner = sent[ETH_HDR_LEN..].to_vec();
        inner[7] = 63;
        want.extend_from_slice(&inner);
        assert_eq!(f, &want);
        // 1500 - 40 = 1460 fits at most: one byte more is too big, answered from the VIP
        // with the MTU the kernel reports.
        let mut big = Vec::new();
        PacketBuilder::ethernet2(ROUTER.0, MAC0.0)
            .ipv6(cip().octets(), vip().octets(), 64)
            .tcp(40001, 80, 1, 64240)
            .syn()
            .write(&mut big, &vec![0u8; 1461 - 40 - 20])
            .unwrap();
        let tx = d.handle_frame(T0, IfaceId(0), &big);
        let f = &tx[0].1;
        assert_eq!(tx[0].0, IfaceId(0));
        let m = meta(f);
        assert_eq!((m.src, m.dst), (vip(), cip()));
        assert_eq!(wire::icmp6_type_and_word(f, &m), Some((2, 0, 1460)));
        assert_checksums(f);
        let fits = &big[..big.len() - 1];
        let mut fits = fits.to_vec();
        let pl = (fits.len() - ETH_HDR_LEN - 40) as u16;
        fits[ETH_HDR_LEN + 4..ETH_HDR_LEN + 6].copy_from_slice(&pl.to_be_bytes());
        let tx = d.handle_frame(T0, IfaceId(0), &fits);
        assert_eq!(meta(&tx[0].1).l4, L4::Other(41), "tunnelled");
    }

    #[test]
    fn hop_limit_one_gets_time_exceeded_from_the_vip() {
        let mut d = director("-m");
        resolved(&mut d);
        let tx = d.handle_frame(T0, IfaceId(0), &syn(1));
        let f = &tx[0].1;
        let m = meta(f);
        assert_eq!((m.src, m.dst), (vip(), cip()));
        assert_eq!(wire::icmp6_type_and_word(f, &m), Some((3, 0, 0)));
        assert_checksums(f);
    }

    #[test]
    fn no_real_server_gets_port_unreachable_and_pings_get_echoed() {
        let mut d = director("-m");
        resolved(&mut d);
        d.apply(
            T0,
            ipvsadm::parse("-d -t [2001:db8:1::250]:80 -r [2001:db8:1::201]:80").unwrap(),
        )
        .unwrap();
        let tx = d.handle_frame(T0, IfaceId(0), &tcp(cip(), vip(), 40002, 80, 64, true));
        let f = &tx[0].1;
        let m = meta(f);
        assert_eq!((m.src, m.dst), (vip(), cip()));
        assert_eq!(wire::icmp6_type_and_word(f, &m), Some((1, 4, 0)));
        let mut ping = Vec::new();
        PacketBuilder::ethernet2(ROUTER.0, MAC0.0)
            .ipv6(cip().octets(), vip().octets(), 64)
            .icmpv6_echo_request(1, 2)
            .write(&mut ping, b"abc")
            .unwrap();
        let tx = d.handle_frame(T0, IfaceId(0), &ping);
        let f = &tx[0].1;
        let m = meta(f);
        assert_eq!((m.src, m.dst), (vip(), cip()));
        assert_eq!(
            wire::icmp6_type_and_word(f, &m),
            Some((129, 0, (1 << 16) | 2))
        );
        assert_checksums(f);
        assert_eq!(d.stats().echo_replies, 1);
        // A non-SYN to the VIP with no connection: reset, as the director's stack would.
        let tx = d.handle_frame(T0, IfaceId(0), &tcp(cip(), vip(), 40003, 80, 64, false));
        let m = meta(&tx[0].1);
        assert!(matches!(m.l4, L4::Tcp { rst: true, .. }));
        assert_checksums(&tx[0].1);
    }

    #[test]
    fn ip6tables_marks_reach_the_ipv6_firewall_mark_service_only() {
        let mut d = director("-m");
        for l in [
            "-A -f 1 -6 -s dh",
            "-a -f 1 -6 -r [2001:db8:1::201]:80 -m",
            // Mark 2 is an IPv4 service: an IPv6 packet with mark 2 finds nothing, as
            // ip_vs_service_fwm_get looks up (af, mark).
            "-A -f 2 -s rr",
            "-a -f 2 -r 192.168.1.201:80 -m",
        ] {
            d.apply(T0, ipvsadm::parse(l).unwrap()).unwrap();
        }
        for (vip, mark) in [("2001:db8:1::251", 1), ("2001:db8:1::252", 2)] {
            let rule = format!(
                "ip6tables -t mangle -A PREROUTING -d {vip}/128 -p tcp --dport 80 -j MARK --set-mark {mark}"
            );
            d.add_mark(crate::mark::MarkRule::parse(&rule).unwrap());
        }
        resolved(&mut d);
        // A marked address is answered for in Neighbour Discovery, as a VIP.
        let marked = a("2001:db8:1::251");
        let group = wire::solicited_node(marked);
        let tx = d.handle_frame(
            T0,
            IfaceId(0),
            &ns(marked, group, wire::multicast_mac(group), gw()),
        );
        assert_eq!(tx.len(), 1, "{tx:?}");
        // A SYN to it is scheduled by `-f 1 -6` and NATed to rs1 with its checksum right.
        let tx = d.handle_frame(T0, IfaceId(0), &tcp(cip(), marked, 40001, 80, 64, true));
        assert_eq!(tx.len(), 1, "{tx:?}");
        let m = meta(&tx[0].1);
        assert_eq!((m.src, m.dst), (cip(), rip()));
        assert_checksums(&tx[0].1);
        let svc = |d: &Director, k: crate::ServiceKey| {
            d.ipvs()
                .services()
                .into_iter()
                .find(|s| s.config.key == k)
                .map(|s| s.stats.conns)
        };
        assert_eq!(svc(&d, crate::ServiceKey::fwmark6(1)), Some(1));
        // Mark 2 over IPv6 reaches no service; the IPv4 `-f 2` is not asked.
        let forwarded = d.stats().forwarded;
        let tx = d.handle_frame(
            T0,
            IfaceId(0),
            &tcp(cip(), a("2001:db8:1::252"), 40002, 80, 64, true),
        );
        assert!(tx.iter().all(|(i, _)| *i != IfaceId(1)), "{tx:?}");
        assert_eq!(d.stats().forwarded, forwarded);
        assert_eq!(svc(&d, crate::ServiceKey::fwmark(2)), Some(0));
        // Another port of the marked address carries no mark.
        let tx = d.handle_frame(T0, IfaceId(0), &tcp(cip(), marked, 40003, 81, 64, true));
        assert!(tx.iter().all(|(i, _)| *i != IfaceId(1)), "{tx:?}");
    }

    #[test]
    fn an_ipv4_only_director_ignores_ipv6() {
        let mut ipvs = Ipvs::new(IpvsConfig::default());
        for l in [
            "-A -t 192.168.1.250:80 -s rr",
            "-a -t 192.168.1.250:80 -r 192.168.1.201:80 -m",
        ] {
            ipvs.apply(T0, ipvsadm::parse(l).unwrap()).unwrap();
        }
        let cfg = DirectorConfig {
            interfaces: vec![Interface {
                name: "eth0".into(),
                mac: MAC0,
                addrs: vec!["203.0.113.2/24".parse().unwrap()],
                addrs6: vec![],
                mtu: 1500,
                answers_vip_arp: true,
            }],
            ..Default::default()
        };
        let mut d = Director::new(cfg, ipvs).unwrap();
        let group = wire::solicited_node(vip());
        let frames = [
            syn(64),
            ns(vip(), group, wire::multicast_mac(group), gw()),
            syn(64)[..ETH_HDR_LEN + 30].to_vec(),
        ];
        for f in &frames {
            assert!(d.handle_frame(T0, IfaceId(0), f).is_empty());
        }
        let want = super::super::DirectorStats {
            rx_frames: 3,
            ..Default::default()
        };
        assert_eq!(d.stats(), &want);
    }
}
