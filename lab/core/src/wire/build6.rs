//! IPv6 frames the director originates: Neighbour Discovery (RFC 4861) in place of ARP,
//! ICMPv6 errors and echo replies (RFC 4443), and the TCP reset a host answers with.
//!
//! Every builder leaves the Ethernet addresses for the caller unless the frame's
//! destination is fixed by the protocol (a solicitation to a solicited-node group).

use super::checksum::{get16, ipv6_pseudo_checksum, put16};
use super::ipv6::{Ipv6Meta, ETHERTYPE_IPV6, IPPROTO_ICMPV6, IPV6_HDR_LEN};
use super::{MacAddr, ETH_HDR_LEN, IPPROTO_TCP, L4};
use std::net::Ipv6Addr;

/// ICMPv6 type of a Neighbour Solicitation.
pub const ND_NEIGHBOR_SOLICIT: u8 = 135;
/// ICMPv6 type of a Neighbour Advertisement.
pub const ND_NEIGHBOR_ADVERT: u8 = 136;
/// ICMPv6 type of an echo request.
pub const ICMPV6_ECHO_REQUEST: u8 = 128;
/// ICMPv6 type of an echo reply.
pub const ICMPV6_ECHO_REPLY: u8 = 129;

/// ND option: source link-layer address.
const OPT_SLLAO: u8 = 1;
/// ND option: target link-layer address.
const OPT_TLLAO: u8 = 2;
/// The hop limit every ND message carries (and a receiver insists on): proof it was not
/// forwarded.
const ND_HOP_LIMIT: u8 = 255;
/// The kernel's default hop limit for what it originates (`ipv6.conf.*.hop_limit`).
const DEFAULT_HOP_LIMIT: u8 = 64;
/// Like `icmp6_send`: the error fits the IPv6 minimum MTU, so at most
/// 1280 - 40 - 8 bytes of the offending packet are quoted.
const ICMP6_QUOTE_MAX: usize = 1280 - IPV6_HDR_LEN - 8;

/// A Neighbour Discovery message the director acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nd {
    /// "Who has `target`?"; `lladdr` from the source link-layer address option.
    Solicit {
        /// The address asked for.
        target: Ipv6Addr,
        /// The asker's MAC, when it gave one.
        lladdr: Option<MacAddr>,
    },
    /// "`target` is at `lladdr`".
    Advert {
        /// The address advertised.
        target: Ipv6Addr,
        /// Its MAC, from the target link-layer address option.
        lladdr: Option<MacAddr>,
        /// The solicited flag.
        solicited: bool,
    },
}

/// The flags of a Neighbour Advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NaFlags {
    /// R: the sender is a router.
    pub router: bool,
    /// S: an answer to a solicitation.
    pub solicited: bool,
    /// O: replace a cached link-layer address.
    pub override_: bool,
}

/// The Neighbour Discovery message in an IPv6 frame, if it is a valid solicitation or
/// advertisement: hop limit 255, code 0, a correct checksum, no option of length zero
/// (RFC 4861 7.1.1/7.1.2, what `ndisc_recv_ns`/`ndisc_recv_na` check).
pub fn parse_nd(frame: &[u8], meta: &Ipv6Meta) -> Option<Nd> {
    let L4::Icmp { icmp_type, code } = meta.l4 else {
        return None;
    };
    if !(icmp_type == ND_NEIGHBOR_SOLICIT || icmp_type == ND_NEIGHBOR_ADVERT)
        || code != 0
        || meta.hop_limit != ND_HOP_LIMIT
        || meta.fragment
    {
        return None;
    }
    let body = frame.get(meta.l4_off()..ETH_HDR_LEN + meta.total_len)?;
    if body.len() < 24 || ipv6_pseudo_checksum(meta.src, meta.dst, IPPROTO_ICMPV6, body) != 0 {
        return None;
    }
    let mut t = [0u8; 16];
    t.copy_from_slice(&body[8..24]);
    let target = Ipv6Addr::from(t);
    if target.is_multicast() {
        return None;
    }
    let mut sllao = None;
    let mut tllao = None;
    let mut opts = &body[24..];
    while !opts.is_empty() {
        let len = usize::from(*opts.get(1)?) * 8;
        if len == 0 || len > opts.len() {
            return None;
        }
        if len >= 8 {
            let mac = MacAddr([opts[2], opts[3], opts[4], opts[5], opts[6], opts[7]]);
            match opts[0] {
                OPT_SLLAO => sllao = Some(mac),
                OPT_TLLAO => tllao = Some(mac),
                _ => {}
            }
        }
        opts = &opts[len..];
    }
    Some(if icmp_type == ND_NEIGHBOR_SOLICIT {
        // A solicitation from the unspecified address (DAD) must not carry a source
        // link-layer address (RFC 4861 7.1.1).
        if meta.src.is_unspecified() && sllao.is_some() {
            return None;
        }
        Nd::Solicit {
            target,
            lladdr: sllao,
        }
    } else {
        Nd::Advert {
            target,
            lladdr: tllao,
            solicited: body[4] & 0x40 != 0,
        }
    })
}

/// The solicited-node multicast group of `addr`: ff02::1:ffXX:XXXX (RFC 4291 2.7.1).
pub fn solicited_node(addr: Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

/// The Ethernet group address of an IPv6 multicast group: 33:33 and its low 32 bits
/// (RFC 2464 7).
pub fn multicast_mac(group: Ipv6Addr) -> MacAddr {
    let o = group.octets();
    MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// A zeroed Ethernet frame holding an IPv6 header for `payload_len` bytes of `next`.
fn ipv6_frame(
    tclass: u8,
    next: u8,
    hop_limit: u8,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    payload_len: usize,
) -> Vec<u8> {
    let mut out = vec![0u8; ETH_HDR_LEN + IPV6_HDR_LEN + payload_len];
    put16(&mut out, 12, ETHERTYPE_IPV6);
    let ip = &mut out[ETH_HDR_LEN..ETH_HDR_LEN + IPV6_HDR_LEN];
    ip[0] = 0x60 | (tclass >> 4);
    ip[1] = tclass << 4;
    put16(ip, 4, payload_len as u16);
    ip[6] = next;
    ip[7] = hop_limit;
    ip[8..24].copy_from_slice(&src.octets());
    ip[24..40].copy_from_slice(&dst.octets());
    out
}

/// Fill in the ICMPv6 checksum of a frame [`ipv6_frame`] built.
fn fill_icmp6_checksum(out: &mut [u8], src: Ipv6Addr, dst: Ipv6Addr) {
    let icmp = &mut out[ETH_HDR_LEN + IPV6_HDR_LEN..];
    put16(icmp, 2, 0);
    let c = ipv6_pseudo_checksum(src, dst, IPPROTO_ICMPV6, icmp);
    put16(icmp, 2, c);
}

/// The interface's link-local address from its MAC (modified EUI-64, RFC 4291 appendix A:
/// the universal/local bit flipped, ff:fe in the middle), what Linux gives an interface with
/// `addr_gen_mode` 0.
pub fn link_local(mac: MacAddr) -> Ipv6Addr {
    let m = mac.0;
    Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        m[0] ^ 0x02,
        m[1],
        m[2],
        0xff,
        0xfe,
        m[3],
        m[4],
        m[5],
    ])
}

/// A Neighbour Solicitation for `target` from `(mac, src)` with the source link-layer
/// address option, as `ndisc_send_ns` sends it: to the target's solicited-node group, or,
/// re-confirming a cached entry (`probe_mac`), unicast to the target at that MAC.
pub fn neighbour_solicitation(
    mac: MacAddr,
    src: Ipv6Addr,
    target: Ipv6Addr,
    probe_mac: Option<MacAddr>,
) -> Vec<u8> {
    let (dst, dst_mac) = match probe_mac {
        Some(m) => (target, m),
        None => {
            let g = solicited_node(target);
            (g, multicast_mac(g))
        }
    };
    let mut out = ipv6_frame(0, IPPROTO_ICMPV6, ND_HOP_LIMIT, src, dst, 32);
    out[0..6].copy_from_slice(&dst_mac.0);
    out[6..12].copy_from_slice(&mac.0);
    let icmp = &mut out[ETH_HDR_LEN + IPV6_HDR_LEN..];
    icmp[0] = ND_NEIGHBOR_SOLICIT;
    icmp[8..24].copy_from_slice(&target.octets());
    icmp[24] = OPT_SLLAO;
    icmp[25] = 1;
    icmp[26..32].copy_from_slice(&mac.0);
    fill_icmp6_checksum(&mut out, src, dst);
    out
}

/// A Neighbour Advertisement that `target` is at `mac`, from `target` to `(dst, dst_mac)`,
/// as `ndisc_send_na` builds it: hop limit 255, the flags given, the target link-layer
/// address option only when `with_tllao` (Linux adds it when the solicitation was
/// multicast).
pub fn neighbour_advertisement(
    mac: MacAddr,
    target: Ipv6Addr,
    dst: Ipv6Addr,
    dst_mac: MacAddr,
    flags: NaFlags,
    with_tllao: bool,
) -> Vec<u8> {
    let len = if with_tllao { 32 } else { 24 };
    let mut out = ipv6_frame(0, IPPROTO_ICMPV6, ND_HOP_LIMIT, target, dst, len);
    out[0..6].copy_from_slice(&dst_mac.0);
    out[6..12].copy_from_slice(&mac.0);
    let icmp = &mut out[ETH_HDR_LEN + IPV6_HDR_LEN..];
    icmp[0] = ND_NEIGHBOR_ADVERT;
    icmp[4] = (u8::from(flags.router) << 7)
        | (u8::from(flags.solicited) << 6)
        | (u8::from(flags.override_) << 5);
    icmp[8..24].copy_from_slice(&target.octets());
    if with_tllao {
        icmp[24] = OPT_TLLAO;
        icmp[25] = 1;
        icmp[26..32].copy_from_slice(&mac.0);
    }
    fill_icmp6_checksum(&mut out, target, dst);
    out
}

/// The ICMPv6 errors the director sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icmp6Error {
    /// Destination unreachable, port unreachable (type 1 code 4): no real server available
    /// (`ip_vs_leave` for an IPv6 service).
    PortUnreachable,
    /// Packet too big (type 2) with the MTU the packet must fit (`ensure_mtu_is_adequate`).
    PacketTooBig {
        /// The MTU.
        mtu: u32,
    },
    /// Time exceeded, hop limit exceeded in transit (type 3 code 0).
    HopLimitExceeded,
}

/// An ICMPv6 error about `offending` (an IPv6 packet without its Ethernet header), from
/// `src` to the offending packet's source, as the kernel's `icmp6_send` builds it: traffic
/// class 0, hop limit 64, at most 1280 bytes in all. The flow label is 0 (the kernel's
/// automatic flow label is a per-boot hash; 0 keeps captures stable). The Ethernet
/// addresses are left zero. `None` when `offending` is shorter than an IPv6 header.
pub fn icmp6_error(kind: Icmp6Error, offending: &[u8], src: Ipv6Addr) -> Option<Vec<u8>> {
    let hdr = offending.get(..IPV6_HDR_LEN)?;
    let mut d = [0u8; 16];
    d.copy_from_slice(&hdr[8..24]);
    let dst = Ipv6Addr::from(d);
    let quote = &offending[..offending.len().min(ICMP6_QUOTE_MAX)];
    let (icmp_type, code, rest) = match kind {
        Icmp6Error::PortUnreachable => (1u8, 4u8, 0u32),
        Icmp6Error::PacketTooBig { mtu } => (2, 0, mtu),
        Icmp6Error::HopLimitExceeded => (3, 0, 0),
    };
    let mut out = ipv6_frame(
        0,
        IPPROTO_ICMPV6,
        DEFAULT_HOP_LIMIT,
        src,
        dst,
        8 + quote.len(),
    );
    let icmp = &mut out[ETH_HDR_LEN + IPV6_HDR_LEN..];
    icmp[0] = icmp_type;
    icmp[1] = code;
    icmp[4..8].copy_from_slice(&rest.to_be_bytes());
    icmp[8..].copy_from_slice(quote);
    fill_icmp6_checksum(&mut out, src, dst);
    Some(out)
}

/// The echo reply to the echo request in `frame` (as `meta` describes it), from the address
/// it was sent to back to its source, as `icmpv6_echo_reply` answers: same identifier,
/// sequence and data, the request's traffic class, hop limit 64, no extension headers,
/// flow label 0. `None` when it is no echo request or its checksum fails (`icmpv6_rcv`
/// drops those). The Ethernet addresses are left zero.
pub fn icmp6_echo_reply(frame: &[u8], meta: &Ipv6Meta) -> Option<Vec<u8>> {
    let body = frame.get(meta.l4_off()..ETH_HDR_LEN + meta.total_len)?;
    if body.len() < 8 || body[0] != ICMPV6_ECHO_REQUEST || body[1] != 0 {
        return None;
    }
    if ipv6_pseudo_checksum(meta.src, meta.dst, IPPROTO_ICMPV6, body) != 0 {
        return None;
    }
    let (src, dst) = (meta.dst, meta.src);
    let mut out = ipv6_frame(
        meta.tclass,
        IPPROTO_ICMPV6,
        DEFAULT_HOP_LIMIT,
        src,
        dst,
        body.len(),
    );
    let icmp = &mut out[ETH_HDR_LEN + IPV6_HDR_LEN..];
    icmp.copy_from_slice(body);
    icmp[0] = ICMPV6_ECHO_REPLY;
    fill_icmp6_checksum(&mut out, src, dst);
    Some(out)
}

/// The RST a host's TCP stack answers the segment in `frame` with when no socket wants it,
/// as `tcp_v6_send_reset` builds it (the same sequence rules as IPv4's): from the address
/// the segment was sent to, the segment's traffic class, hop limit 64, flow label 0. `None`
/// for a RST (never answered) or a segment too short to read. Ethernet addresses zero.
pub fn tcp6_reset(frame: &[u8], meta: &Ipv6Meta) -> Option<Vec<u8>> {
    let tcp = frame.get(meta.l4_off()..ETH_HDR_LEN + meta.total_len)?;
    let header = super::build::reset_header(tcp)?;
    let (src, dst) = (meta.dst, meta.src);
    let mut out = ipv6_frame(meta.tclass, IPPROTO_TCP, DEFAULT_HOP_LIMIT, src, dst, 20);
    let t = &mut out[ETH_HDR_LEN + IPV6_HDR_LEN..];
    t.copy_from_slice(&header);
    let c = ipv6_pseudo_checksum(src, dst, IPPROTO_TCP, t);
    put16(t, 16, c);
    Some(out)
}

/// The ICMPv6 type and first four body bytes of an ICMPv6 message frame (for tests and
/// callers that want the MTU of a packet-too-big).
pub fn icmp6_type_and_word(frame: &[u8], meta: &Ipv6Meta) -> Option<(u8, u8, u32)> {
    let b = frame.get(meta.l4_off()..meta.l4_off() + 8)?;
    Some((
        b[0],
        b[1],
        (u32::from(get16(b, 4)) << 16) | u32::from(get16(b, 6)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{parse, Parsed};
    use etherparse::{Icmpv6Type, PacketBuilder, SlicedPacket, TransportSlice};

    fn meta(f: &[u8]) -> Ipv6Meta {
        match parse(f).unwrap() {
            Parsed::Ipv6(m) => m,
            other => panic!("not ipv6: {other:?}"),
        }
    }

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    /// etherparse's view of an ICMPv6 frame, with its checksum verified independently.
    fn icmp6(f: &[u8]) -> (etherparse::Ipv6Header, Icmpv6Type, Vec<u8>) {
        let p = SlicedPacket::from_ethernet(f).unwrap();
        let Some(etherparse::NetSlice::Ipv6(ip)) = p.net else {
            panic!("not ipv6")
        };
        let h = ip.header().to_header();
        let Some(TransportSlice::Icmpv6(i)) = p.transport else {
            panic!("not icmpv6")
        };
        let want = i
            .icmp_type()
            .calc_checksum(h.source, h.destination, i.payload())
            .unwrap();
        assert_eq!(want, i.checksum(), "icmpv6 checksum");
        (h, i.icmp_type(), i.payload().to_vec())
    }

    #[test]
    fn link_local_is_the_modified_eui64_linux_derives() {
        // A lab director's eth0 (02:00:00:00:03:00): `ip -6 addr` there shows this.
        let mac = MacAddr([0x02, 0, 0, 0, 0x03, 0]);
        assert_eq!(link_local(mac), a("fe80::ff:fe00:300"));
        let mac = MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        assert_eq!(link_local(mac), a("fe80::5054:ff:fe12:3456"));
    }

    #[test]
    fn solicited_node_group_and_its_mac() {
        let g = solicited_node(a("2001:db8:1::250"));
        assert_eq!(g, a("ff02::1:ff00:250"));
        assert_eq!(multicast_mac(g).to_string(), "33:33:ff:00:02:50");
    }

    #[test]
    fn solicitation_round_trips_and_is_what_ndisc_sends() {
        let mac = MacAddr([2, 0, 0, 0, 2, 1]);
        let f = neighbour_solicitation(mac, a("2001:db8:1::202"), a("2001:db8:1::201"), None);
        let (h, t, _) = icmp6(&f);
        assert_eq!(h.hop_limit, 255);
        assert_eq!(h.destination, a("ff02::1:ff00:201").octets());
        assert_eq!(&f[0..6], &[0x33, 0x33, 0xff, 0, 0x02, 0x01]);
        assert_eq!(
            t,
            Icmpv6Type::Unknown {
                type_u8: 135,
                code_u8: 0,
                bytes5to8: [0; 4]
            }
        );
        assert_eq!(
            parse_nd(&f, &meta(&f)),
            Some(Nd::Solicit {
                target: a("2001:db8:1::201"),
                lladdr: Some(mac)
            })
        );
        // A bad checksum, or a hop limit that says "forwarded", is not ND.
        let mut bad = f.clone();
        bad[ETH_HDR_LEN + 40 + 10] ^= 1;
        assert_eq!(parse_nd(&bad, &meta(&bad)), None);
        let mut hop = f.clone();
        hop[ETH_HDR_LEN + 7] = 254;
        assert_eq!(parse_nd(&hop, &meta(&hop)), None);
        // A unicast probe goes to the target and its MAC.
        let peer = MacAddr([2, 0, 0, 0, 1, 1]);
        let p = neighbour_solicitation(mac, a("2001:db8:1::202"), a("2001:db8:1::201"), Some(peer));
        assert_eq!(&p[0..6], &peer.0);
        assert_eq!(icmp6(&p).0.destination, a("2001:db8:1::201").octets());
    }

    #[test]
    fn advertisement_flags_and_option() {
        let mac = MacAddr([2, 0, 0, 0, 2, 0]);
        let flags = NaFlags {
            router: false,
            solicited: true,
            override_: true,
        };
        let f = neighbour_advertisement(
            mac,
            a("2001:db8:1::250"),
            a("2001:db8:203::1"),
            MacAddr([2, 0, 0, 0, 1, 1]),
            flags,
            true,
        );
        let (h, _, payload) = icmp6(&f);
        assert_eq!(
            (h.hop_limit, h.source),
            (255, a("2001:db8:1::250").octets())
        );
        // Flags byte: S and O, not R.
        assert_eq!(f[ETH_HDR_LEN + 44], 0x60);
        assert_eq!(
            &payload[16..18],
            &[2, 1],
            "target link-layer address option"
        );
        assert_eq!(
            parse_nd(&f, &meta(&f)),
            Some(Nd::Advert {
                target: a("2001:db8:1::250"),
                lladdr: Some(mac),
                solicited: true
            })
        );
        let bare = neighbour_advertisement(
            mac,
            a("2001:db8:1::250"),
            a("2001:db8:203::1"),
            MacAddr([2, 0, 0, 0, 1, 1]),
            NaFlags::default(),
            false,
        );
        assert_eq!(icmp6(&bare).2.len(), 16, "no option");
    }

    fn echo_request(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut ip = etherparse::Ipv6Header {
            traffic_class: 0x28,
            hop_limit: 64,
            source: a("2001:db8:100::10").octets(),
            destination: a("2001:db8:1::250").octets(),
            ..Default::default()
        };
        ip.next_header = etherparse::IpNumber::IPV6_ICMP;
        PacketBuilder::ethernet2([2; 6], [3; 6])
            .ip(etherparse::IpHeaders::Ipv6(ip, Default::default()))
            .icmpv6_echo_request(7, 300)
            .write(&mut out, payload)
            .unwrap();
        out
    }

    #[test]
    fn echo_reply_swaps_addresses_keeps_id_seq_data_and_traffic_class() {
        let req = echo_request(b"odd");
        let reply = icmp6_echo_reply(&req, &meta(&req)).unwrap();
        let (h, t, payload) = icmp6(&reply);
        assert_eq!(
            (h.source, h.destination),
            (
                a("2001:db8:1::250").octets(),
                a("2001:db8:100::10").octets()
            )
        );
        assert_eq!((h.hop_limit, h.traffic_class), (64, 0x28));
        assert_eq!(
            t,
            Icmpv6Type::EchoReply(etherparse::IcmpEchoHeader { id: 7, seq: 300 })
        );
        assert_eq!(payload, b"odd");
        let mut bad = req.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(icmp6_echo_reply(&bad, &meta(&bad)), None);
        assert_eq!(
            icmp6_echo_reply(&reply, &meta(&reply)),
            None,
            "not a request"
        );
    }

    #[test]
    fn errors_quote_at_most_1232_bytes_and_carry_the_mtu() {
        let mut big = Vec::new();
        PacketBuilder::ethernet2([2; 6], [3; 6])
            .ipv6(
                a("2001:db8:100::10").octets(),
                a("2001:db8:1::250").octets(),
                63,
            )
            .udp(40000, 53)
            .write(&mut big, &[7u8; 1400])
            .unwrap();
        let vip = a("2001:db8:1::250");
        let e = icmp6_error(
            Icmp6Error::PacketTooBig { mtu: 1460 },
            &big[ETH_HDR_LEN..],
            vip,
        )
        .unwrap();
        let (h, t, payload) = icmp6(&e);
        assert_eq!(t, Icmpv6Type::PacketTooBig { mtu: 1460 });
        assert_eq!(payload.len(), 1232);
        assert_eq!(h.payload_length, 1240);
        assert_eq!(h.destination, a("2001:db8:100::10").octets());
        assert_eq!(&payload[..], &big[ETH_HDR_LEN..ETH_HDR_LEN + 1232]);
        let pu = icmp6_error(Icmp6Error::PortUnreachable, &big[ETH_HDR_LEN..], vip).unwrap();
        assert_eq!(
            icmp6(&pu).1,
            Icmpv6Type::DestinationUnreachable(etherparse::icmpv6::DestUnreachableCode::Port)
        );
        let te = icmp6_error(Icmp6Error::HopLimitExceeded, &big[ETH_HDR_LEN..], vip).unwrap();
        assert_eq!(
            icmp6(&te).1,
            Icmpv6Type::TimeExceeded(etherparse::icmpv6::TimeExceededCode::HopLimitExceeded)
        );
        assert_eq!(
            icmp6_error(Icmp6Error::PortUnreachable, &[0; 39], vip),
            None
        );
    }

    #[test]
    fn reset_answers_an_ack_with_its_ack_number() {
        let mut seg = Vec::new();
        PacketBuilder::ethernet2([2; 6], [3; 6])
            .ipv6(
                a("2001:db8:100::10").octets(),
                a("2001:db8:1::250").octets(),
                63,
            )
            .tcp(40000, 80, 1000, 500)
            .ack(7777)
            .write(&mut seg, b"hello")
            .unwrap();
        let r = tcp6_reset(&seg, &meta(&seg)).unwrap();
        let p = etherparse::PacketHeaders::from_ethernet_slice(&r).unwrap();
        let Some(etherparse::NetHeaders::Ipv6(ip, _)) = p.net else {
            panic!("not ipv6")
        };
        let Some(etherparse::TransportHeader::Tcp(tcp)) = p.transport else {
            panic!("not tcp")
        };
        assert_eq!(tcp.calc_checksum_ipv6(&ip, &[]).unwrap(), tcp.checksum);
        assert_eq!(ip.source, a("2001:db8:1::250").octets());
        assert!(tcp.rst && !tcp.ack && tcp.sequence_number == 7777);
        assert_eq!((tcp.source_port, tcp.destination_port), (80, 40000));
    }
}
