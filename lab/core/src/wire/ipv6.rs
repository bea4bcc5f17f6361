//! IPv6: parsing a frame into what the director needs, in-place NAT rewrites with incremental
//! checksum updates over the IPv6 pseudo-header, hop-limit decrement and IPv6-in-IPv6
//! encapsulation (`ip_vs_tunnel_xmit_v6`).
//!
//! IPv6 has no header checksum, so a rewrite only patches the transport checksum, whose
//! pseudo-header covers both addresses (RFC 8200 section 8.1).

use super::checksum::{get16, ipv6_pseudo_checksum, put16, update};
use super::frame::{parse_tcp_udp, ports};
use super::{MacAddr, TtlExpired, WireError, ETH_HDR_LEN, L4};
use etherparse::{Ipv6Slice, LaxIpv6Slice};
use std::net::Ipv6Addr;

/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// Next-header number of ICMPv6.
pub const IPPROTO_ICMPV6: u8 = 58;
/// Next-header number of IPv6 encapsulated in IPv6 (what IPVS TUN mode sends for IPv6).
pub const IPPROTO_IPV6: u8 = 41;
/// Length of the fixed IPv6 header.
pub const IPV6_HDR_LEN: usize = 40;
/// The minimum link MTU of IPv6 (RFC 8200): a tunnel path below it is refused, as
/// `__ip_vs_get_out_rt_v6` does.
pub const IPV6_MIN_MTU: u16 = 1280;

const IP6_HLIM: usize = ETH_HDR_LEN + 7;
const IP6_SRC: usize = ETH_HDR_LEN + 8;
const IP6_DST: usize = ETH_HDR_LEN + 24;
/// Source and destination ports: what an ICMPv6 error must quote of TCP or UDP.
const PORTS_LEN: usize = 4;

/// Where the IPv6 packet's headers are and what they say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv6Meta {
    /// Destination MAC.
    pub dst_mac: MacAddr,
    /// Source MAC.
    pub src_mac: MacAddr,
    /// The fixed header plus the extension headers skipped to reach the transport header
    /// (the header starts at [`ETH_HDR_LEN`]).
    pub hdr_len: usize,
    /// 40 + payload length: the frame may carry Ethernet padding after it.
    pub total_len: usize,
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
    /// Hop limit.
    pub hop_limit: u8,
    /// Traffic class.
    pub tclass: u8,
    /// Carries a fragment header with an offset or more fragments: the director does not
    /// reassemble.
    pub fragment: bool,
    /// The transport header (after the extension headers), as far as the director cares.
    pub l4: L4<IcmpInner6>,
}

impl Ipv6Meta {
    /// Offset of the transport header in the frame.
    pub fn l4_off(&self) -> usize {
        ETH_HDR_LEN + self.hdr_len
    }
}

/// The packet quoted inside an ICMPv6 error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcmpInner6 {
    /// Offset of the inner IPv6 header in the frame.
    pub off: usize,
    /// Inner fixed header plus extension headers.
    pub hdr_len: usize,
    /// Inner transport protocol (TCP or UDP).
    pub proto: u8,
    /// Inner source address.
    pub src: Ipv6Addr,
    /// Inner destination address.
    pub dst: Ipv6Addr,
    /// Inner source port.
    pub sport: u16,
    /// Inner destination port.
    pub dport: u16,
}

/// ICMPv6 error types (RFC 4443): destination unreachable, packet too big, time exceeded,
/// parameter problem. `ip_vs_in_icmp_v6` relates every non-informational message.
const ICMP6_ERRORS: std::ops::RangeInclusive<u8> = 1..=4;

/// Parse the IPv6 packet after the Ethernet header. Extension headers (hop-by-hop,
/// routing, fragment, destination options, authentication) are skipped to the transport
/// header as the kernel's `ipv6_find_hdr` does; a broken chain is refused.
pub(super) fn parse_ipv6(
    dst_mac: MacAddr,
    src_mac: MacAddr,
    pkt: &[u8],
) -> Result<Ipv6Meta, WireError> {
    if pkt.len() < IPV6_HDR_LEN {
        return Err(WireError::Truncated(format!(
            "IPv6 header needs 40 bytes, {} after the Ethernet header",
            pkt.len()
        )));
    }
    let total_len = IPV6_HDR_LEN + usize::from(get16(pkt, 4));
    if total_len > pkt.len() {
        return Err(WireError::Truncated(format!(
            "IPv6 payload length {} but {} bytes after the header",
            total_len - IPV6_HDR_LEN,
            pkt.len() - IPV6_HDR_LEN
        )));
    }
    // Cut the Ethernet padding (and a jumbogram's body: payload length 0 means "see the
    // hop-by-hop option", which a 1500-byte link never carries) before etherparse sees it.
    let ip = Ipv6Slice::from_slice(&pkt[..total_len])
        .map_err(|e| WireError::Malformed(format!("IPv6: {e}")))?;
    let h = ip.header();
    let hdr_len = IPV6_HDR_LEN + ip.extensions().slice().len();
    let payload = ip.payload();
    let proto = payload.ip_number.0;
    let fragment = payload.fragmented;
    let l4 = if fragment {
        L4::Other(proto)
    } else {
        parse_l4_6(proto, payload.payload, ETH_HDR_LEN + hdr_len)?
    };
    Ok(Ipv6Meta {
        dst_mac,
        src_mac,
        hdr_len,
        total_len,
        src: h.source_addr(),
        dst: h.destination_addr(),
        hop_limit: h.hop_limit(),
        tclass: h.traffic_class(),
        fragment,
        l4,
    })
}

fn parse_l4_6(proto: u8, body: &[u8], body_off: usize) -> Result<L4<IcmpInner6>, WireError> {
    if let Some(l4) = parse_tcp_udp(proto, body)? {
        return Ok(l4);
    }
    if proto != IPPROTO_ICMPV6 {
        return Ok(L4::Other(proto));
    }
    if body.len() < 8 {
        return Err(WireError::Truncated("ICMPv6 header".into()));
    }
    let (icmp_type, code) = (body[0], body[1]);
    let inner = ICMP6_ERRORS
        .contains(&icmp_type)
        .then(|| parse_inner6(&body[8..], body_off + 8))
        .flatten();
    Ok(match inner {
        Some(inner) => L4::IcmpError {
            icmp_type,
            code,
            inner,
        },
        None => L4::Icmp { icmp_type, code },
    })
}

/// The quoted packet of an ICMPv6 error: `None` unless it is an unfragmented TCP/UDP packet
/// with at least its ports quoted. The quote is cut short by design, so it is read laxly.
fn parse_inner6(quoted: &[u8], off: usize) -> Option<IcmpInner6> {
    let (ip, stop) = LaxIpv6Slice::from_slice(quoted).ok()?;
    if stop.is_some() || ip.is_payload_fragmented() {
        return None;
    }
    let proto = ip.payload().ip_number.0;
    if !(proto == super::IPPROTO_TCP || proto == super::IPPROTO_UDP) {
        return None;
    }
    let (sport, dport) = ports(ip.payload().payload, "quoted").ok()?;
    let h = ip.header();
    Some(IcmpInner6 {
        off,
        hdr_len: IPV6_HDR_LEN + ip.extensions().slice().len(),
        proto,
        src: h.source_addr(),
        dst: h.destination_addr(),
        sport,
        dport,
    })
}

fn short(what: &str) -> WireError {
    WireError::Truncated(format!("{what} is not all in the frame"))
}

/// Whether `frame` holds every byte `meta` (from [`super::parse`]) points at: the whole
/// packet, the transport header the rewrites touch and, for an ICMPv6 error, the quoted
/// header and ports. Every rewrite below checks this first and refuses a frame that fails.
pub fn check_ipv6(frame: &[u8], meta: &Ipv6Meta) -> Result<(), WireError> {
    let end = ETH_HDR_LEN
        .checked_add(meta.total_len)
        .ok_or_else(|| short("the IPv6 packet"))?;
    if end > frame.len() {
        return Err(short("the IPv6 packet"));
    }
    if meta.hdr_len < IPV6_HDR_LEN || meta.hdr_len > meta.total_len {
        return Err(WireError::Malformed(format!(
            "IPv6 header length {}",
            meta.hdr_len
        )));
    }
    if frame[ETH_HDR_LEN] >> 4 != 6 {
        return Err(WireError::Malformed("not IPv6".into()));
    }
    let l4_len = match meta.l4 {
        L4::Tcp { .. } => 20,
        L4::Udp { .. } | L4::Icmp { .. } | L4::IcmpError { .. } => 8,
        L4::Other(_) => 0,
    };
    if meta.l4_off() + l4_len > end {
        return Err(short("the transport header"));
    }
    if let L4::IcmpError { ref inner, .. } = meta.l4 {
        if inner.off < meta.l4_off() + 8 || inner.hdr_len < IPV6_HDR_LEN {
            return Err(WireError::Malformed(
                "quoted IPv6 header out of place".into(),
            ));
        }
        if inner.off + inner.hdr_len + PORTS_LEN > end {
            return Err(short("the quoted header"));
        }
    }
    Ok(())
}

/// Set the Ethernet addresses and the IPv6 EtherType of a frame. A buffer shorter than an
/// Ethernet header is left alone.
pub fn set_macs6(frame: &mut [u8], dst: MacAddr, src: MacAddr) {
    let Some(eth) = frame.get_mut(..ETH_HDR_LEN) else {
        return;
    };
    eth[0..6].copy_from_slice(&dst.0);
    eth[6..12].copy_from_slice(&src.0);
    put16(eth, 12, ETHERTYPE_IPV6);
}

/// Decrement the hop limit as IPVS does before it transmits (`decrement_ttl` in
/// ip_vs_xmit.c, IPv6 branch): a hop limit of 1 or less expires. No checksum covers it.
/// A buffer too short for an IPv6 header is left alone.
pub fn decrement_hop_limit(frame: &mut [u8]) -> Result<(), TtlExpired> {
    let Some(h) = frame.get_mut(IP6_HLIM) else {
        return Ok(());
    };
    if *h <= 1 {
        return Err(TtlExpired);
    }
    *h -= 1;
    Ok(())
}

/// Offset of the transport checksum a rewrite must keep right.
fn l4_csum_off(frame: &[u8], meta: &Ipv6Meta) -> Option<usize> {
    let off = meta.l4_off();
    match meta.l4 {
        L4::Tcp { .. } => Some(off + 16),
        // Zero is never a valid UDP/IPv6 checksum, but leave it as found (RFC 6935 tunnels).
        L4::Udp { .. } if get16(frame, off + 6) != 0 => Some(off + 6),
        _ => None,
    }
}

fn fix_l4(frame: &mut [u8], meta: &Ipv6Meta, old: &[u8], new: &[u8]) {
    if let Some(off) = l4_csum_off(frame, meta) {
        let mut c = update(get16(frame, off), old, new);
        if c == 0 && matches!(meta.l4, L4::Udp { .. }) {
            c = 0xffff;
        }
        put16(frame, off, c);
    }
}

fn rewrite(
    frame: &mut [u8],
    meta: &Ipv6Meta,
    addr_off: usize,
    port_off: usize,
    ip: Ipv6Addr,
    port: u16,
) -> Result<(), WireError> {
    check_ipv6(frame, meta)?;
    let mut old = [0u8; 16];
    old.copy_from_slice(&frame[addr_off..addr_off + 16]);
    frame[addr_off..addr_off + 16].copy_from_slice(&ip.octets());
    fix_l4(frame, meta, &old, &ip.octets());
    if matches!(meta.l4, L4::Tcp { .. } | L4::Udp { .. }) {
        let poff = meta.l4_off() + port_off;
        let old_p = [frame[poff], frame[poff + 1]];
        put16(frame, poff, port);
        fix_l4(frame, meta, &old_p, &port.to_be_bytes());
    }
    Ok(())
}

/// NAT inbound: destination VIP:vport becomes RIP:rport (`tcp_dnat_handler` for IPv6).
pub fn rewrite6_dst(
    frame: &mut [u8],
    meta: &Ipv6Meta,
    ip: Ipv6Addr,
    port: u16,
) -> Result<(), WireError> {
    rewrite(frame, meta, IP6_DST, 2, ip, port)
}

/// NAT outbound: source RIP:rport becomes VIP:vport (`tcp_snat_handler` for IPv6).
pub fn rewrite6_src(
    frame: &mut [u8],
    meta: &Ipv6Meta,
    ip: Ipv6Addr,
    port: u16,
) -> Result<(), WireError> {
    rewrite(frame, meta, IP6_SRC, 0, ip, port)
}

/// NAT an ICMPv6 error that belongs to a connection, like `ip_vs_nat_icmp_v6`: inbound the
/// outer destination and the quoted source become RIP:rport; outbound the outer source and
/// the quoted destination become VIP:vport. The quoted transport checksum is left alone (the
/// kernel does too); the ICMPv6 checksum is recomputed over the new pseudo-header.
pub fn nat_icmp6(
    frame: &mut [u8],
    meta: &Ipv6Meta,
    inbound: bool,
    ip: Ipv6Addr,
    port: u16,
) -> Result<(), WireError> {
    check_ipv6(frame, meta)?;
    let L4::IcmpError { ref inner, .. } = meta.l4 else {
        return Err(WireError::Malformed("not an ICMPv6 error".into()));
    };
    let outer = if inbound { IP6_DST } else { IP6_SRC };
    frame[outer..outer + 16].copy_from_slice(&ip.octets());
    let quoted = inner.off + if inbound { 8 } else { 24 };
    frame[quoted..quoted + 16].copy_from_slice(&ip.octets());
    let poff = inner.off + inner.hdr_len + if inbound { 0 } else { 2 };
    put16(frame, poff, port);
    let icmp = meta.l4_off();
    let end = ETH_HDR_LEN + meta.total_len;
    put16(frame, icmp + 2, 0);
    let (src, dst) = (addr_at(frame, IP6_SRC), addr_at(frame, IP6_DST));
    let c = ipv6_pseudo_checksum(src, dst, IPPROTO_ICMPV6, &frame[icmp..end]);
    put16(frame, icmp + 2, c);
    Ok(())
}

fn addr_at(buf: &[u8], off: usize) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&buf[off..off + 16]);
    Ipv6Addr::from(a)
}

/// Wrap the IPv6 packet in an outer IPv6 header (next header 41) from `src` to `dst`, as
/// `ip_vs_tunnel_xmit_v6` builds it: traffic class and hop limit copied from the inner
/// header (`ip_vs_prepare_tunneled_skb`), flow label 0, no extension headers. The Ethernet
/// addresses are zero until [`set_macs6`] fills them.
pub fn encap_ip6ip6(
    frame: &[u8],
    meta: &Ipv6Meta,
    src: Ipv6Addr,
    dst: Ipv6Addr,
) -> Result<Vec<u8>, WireError> {
    check_ipv6(frame, meta)?;
    let inner = &frame[ETH_HDR_LEN..ETH_HDR_LEN + meta.total_len];
    let payload_len = u16::try_from(inner.len())
        .map_err(|_| WireError::Malformed("too long to encapsulate".into()))?;
    let mut out = vec![0u8; ETH_HDR_LEN + IPV6_HDR_LEN + inner.len()];
    put16(&mut out, 12, ETHERTYPE_IPV6);
    let ip = &mut out[ETH_HDR_LEN..ETH_HDR_LEN + IPV6_HDR_LEN];
    ip[0] = 0x60 | (meta.tclass >> 4);
    ip[1] = meta.tclass << 4;
    put16(ip, 4, payload_len);
    ip[6] = IPPROTO_IPV6;
    ip[7] = frame[IP6_HLIM];
    ip[8..24].copy_from_slice(&src.octets());
    ip[24..40].copy_from_slice(&dst.octets());
    out[ETH_HDR_LEN + IPV6_HDR_LEN..].copy_from_slice(inner);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{parse, Parsed};
    use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};

    const CIP: [u8; 16] = [
        0x20, 0x01, 0x0d, 0xb8, 0, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    const VIP: [u8; 16] = [
        0x20, 0x01, 0x0d, 0xb8, 0, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x50,
    ];

    fn rip() -> Ipv6Addr {
        "2001:db8:1::201".parse().unwrap()
    }

    fn tcp6(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv6(CIP, VIP, 64)
            .tcp(40000, 80, 1234, 64240)
            .syn()
            .write(&mut out, payload)
            .unwrap();
        out
    }

    fn udp6(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv6(VIP, CIP, 64)
            .udp(53, 40000)
            .write(&mut out, payload)
            .unwrap();
        out
    }

    fn meta(f: &[u8]) -> Ipv6Meta {
        match parse(f).unwrap() {
            Parsed::Ipv6(m) => m,
            other => panic!("not ipv6: {other:?}"),
        }
    }

    /// Recompute the transport checksum with etherparse and compare with what the rewrite left.
    fn assert_checksum_valid(f: &[u8]) {
        let p = SlicedPacket::from_ethernet(f).unwrap();
        let Some(etherparse::NetSlice::Ipv6(ip)) = p.net else {
            panic!("no ipv6")
        };
        let h = ip.header().to_header();
        match p.transport {
            Some(TransportSlice::Tcp(t)) => {
                let want = t.to_header().calc_checksum_ipv6(&h, t.payload()).unwrap();
                assert_eq!(want, t.checksum(), "tcp checksum");
            }
            Some(TransportSlice::Udp(u)) => {
                let want = u.to_header().calc_checksum_ipv6(&h, u.payload()).unwrap();
                assert_eq!(want, u.checksum(), "udp checksum");
            }
            Some(TransportSlice::Icmpv6(i)) => {
                let want = i
                    .icmp_type()
                    .calc_checksum(h.source, h.destination, i.payload())
                    .unwrap();
                assert_eq!(want, i.checksum(), "icmpv6 checksum");
            }
            other => panic!("unexpected transport {other:?}"),
        }
    }

    #[test]
    fn parses_tcp_udp_and_skips_extension_headers() {
        let m = meta(&tcp6(b"hi"));
        assert_eq!((m.src, m.dst), (Ipv6Addr::from(CIP), Ipv6Addr::from(VIP)));
        assert_eq!((m.hdr_len, m.total_len, m.hop_limit), (40, 40 + 20 + 2, 64));
        assert!(matches!(
            m.l4,
            L4::Tcp {
                sport: 40000,
                dport: 80,
                syn: true,
                ..
            }
        ));
        // A hop-by-hop and a destination-options header before UDP: skipped, as
        // ipv6_find_hdr skips them.
        let u = udp6(b"x");
        let mut f = u[..ETH_HDR_LEN + 40].to_vec();
        f[ETH_HDR_LEN + 6] = 0; // hop-by-hop next
        let body = &u[ETH_HDR_LEN + 40..];
        f.extend_from_slice(&[60, 0, 1, 4, 0, 0, 0, 0]); // HBH: PadN, next dest opts
        f.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]); // dest opts: PadN, next UDP
        f.extend_from_slice(body);
        let pl = (f.len() - ETH_HDR_LEN - 40) as u16;
        put16(&mut f, ETH_HDR_LEN + 4, pl);
        let m = meta(&f);
        assert_eq!(m.hdr_len, 56);
        assert!(matches!(
            m.l4,
            L4::Udp {
                sport: 53,
                dport: 40000
            }
        ));
        // Padding after the packet is not part of it.
        let mut padded = tcp6(b"");
        padded.extend_from_slice(&[0; 6]);
        assert_eq!(meta(&padded).total_len, 60);
        // A payload length past the frame, or a broken chain, is refused.
        let mut long = tcp6(b"");
        put16(&mut long, ETH_HDR_LEN + 4, 500);
        assert!(parse(&long).is_err());
        let mut bad = f.clone();
        bad[ETH_HDR_LEN + 41] = 200; // HBH length past the packet
        assert!(parse(&bad).is_err());
    }

    #[test]
    fn fragments_carry_no_transport() {
        let u = udp6(b"abcdefgh");
        let mut f = u[..ETH_HDR_LEN + 40].to_vec();
        f[ETH_HDR_LEN + 6] = 44;
        // Fragment header: next UDP, offset 0, more fragments.
        f.extend_from_slice(&[17, 0, 0, 1, 0, 0, 0, 7]);
        f.extend_from_slice(&u[ETH_HDR_LEN + 40..]);
        let pl = (f.len() - ETH_HDR_LEN - 40) as u16;
        put16(&mut f, ETH_HDR_LEN + 4, pl);
        let m = meta(&f);
        assert!(m.fragment);
        assert_eq!(m.l4, L4::Other(17));
    }

    #[test]
    fn dnat_and_snat_keep_checksums_right() {
        let mut f = tcp6(b"hello");
        let m = meta(&f);
        rewrite6_dst(&mut f, &m, rip(), 8080).unwrap();
        decrement_hop_limit(&mut f).unwrap();
        assert_checksum_valid(&f);
        let m2 = meta(&f);
        assert_eq!((m2.dst, m2.hop_limit), (rip(), 63));
        assert!(matches!(m2.l4, L4::Tcp { dport: 8080, .. }));

        // An odd payload exercises the padding byte of the sum.
        let mut u = udp6(b"odd");
        let m = meta(&u);
        let vip: Ipv6Addr = "2001:db8:1::250".parse().unwrap();
        rewrite6_src(&mut u, &m, vip, 5353).unwrap();
        assert_checksum_valid(&u);
        assert!(matches!(meta(&u).l4, L4::Udp { sport: 5353, .. }));
    }

    #[test]
    fn hop_limit_one_expires() {
        let mut f = tcp6(b"");
        f[IP6_HLIM] = 1;
        assert_eq!(decrement_hop_limit(&mut f), Err(TtlExpired));
        assert_eq!(f[IP6_HLIM], 1, "left as it was");
    }

    #[test]
    fn ip6ip6_matches_what_ip_vs_tunnel_xmit_v6_builds() {
        let mut f = tcp6(b"payload");
        // Traffic class 0xb8 (EF) so the copy is visible.
        f[ETH_HDR_LEN] = 0x6b;
        f[ETH_HDR_LEN + 1] = 0x80;
        let m = meta(&f);
        assert_eq!(m.tclass, 0xb8);
        decrement_hop_limit(&mut f).unwrap();
        let dip: Ipv6Addr = "2001:db8:1::202".parse().unwrap();
        let out = encap_ip6ip6(&f, &m, dip, rip()).unwrap();
        let inner = &f[ETH_HDR_LEN..ETH_HDR_LEN + m.total_len];
        let mut want = vec![0u8; 12];
        want.extend_from_slice(&[0x86, 0xdd]);
        // version 6, traffic class 0xb8, flow label 0
        want.extend_from_slice(&[0x6b, 0x80, 0, 0]);
        want.extend_from_slice(&(inner.len() as u16).to_be_bytes());
        want.extend_from_slice(&[41, 63]);
        want.extend_from_slice(&dip.octets());
        want.extend_from_slice(&rip().octets());
        want.extend_from_slice(inner);
        assert_eq!(out, want);
        // etherparse reads it as IPv6 carrying IPv6.
        let p = etherparse::PacketHeaders::from_ethernet_slice(&out).unwrap();
        let Some(etherparse::NetHeaders::Ipv6(h, _)) = p.net else {
            panic!("not ipv6")
        };
        assert_eq!(h.next_header, etherparse::IpNumber::IPV6);
    }

    fn icmp6_error_about(pkt: &[u8]) -> Vec<u8> {
        // Port unreachable from the real server about a (NATed) packet it received.
        let q = &pkt[ETH_HDR_LEN..];
        let mut out = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv6(rip().octets(), CIP, 64)
            .icmpv6(etherparse::Icmpv6Type::DestinationUnreachable(
                etherparse::icmpv6::DestUnreachableCode::Port,
            ))
            .write(&mut out, q)
            .unwrap();
        out
    }

    #[test]
    fn nat_icmp6_rewrites_outer_and_quoted_and_the_checksum() {
        // The client's UDP packet went to the real server as RIP:5353 ...
        let mut to_rs = Vec::new();
        PacketBuilder::ethernet2([2; 6], [3; 6])
            .ipv6(CIP, rip().octets(), 63)
            .udp(40000, 5353)
            .write(&mut to_rs, b"q")
            .unwrap();
        // ... which sends port unreachable back to the client; outbound it must say VIP:53.
        let mut f = icmp6_error_about(&to_rs);
        let m = meta(&f);
        let L4::IcmpError { ref inner, .. } = m.l4 else {
            panic!("not an error: {m:?}")
        };
        assert_eq!(
            (inner.src, inner.dst, inner.dport),
            (CIP.into(), rip(), 5353)
        );
        let vip = Ipv6Addr::from(VIP);
        nat_icmp6(&mut f, &m, false, vip, 53).unwrap();
        assert_checksum_valid(&f);
        let m2 = meta(&f);
        assert_eq!(m2.src, vip);
        let L4::IcmpError { inner, .. } = m2.l4 else {
            panic!()
        };
        assert_eq!((inner.dst, inner.dport), (vip, 53));
        // Not an ICMPv6 error: refused, untouched.
        let mut t = tcp6(b"");
        let before = t.clone();
        let tm = meta(&t);
        assert!(nat_icmp6(&mut t, &tm, true, vip, 1).is_err());
        assert_eq!(t, before);
    }

    #[test]
    fn short_frames_are_refused_not_written() {
        let f = tcp6(b"data");
        let m = meta(&f);
        for len in 0..f.len() {
            let mut cut = f[..len].to_vec();
            assert!(rewrite6_dst(&mut cut, &m, rip(), 1).is_err(), "len {len}");
            assert_eq!(cut, f[..len], "len {len} was written to");
            assert!(encap_ip6ip6(&cut, &m, rip(), rip()).is_err());
        }
    }
}
