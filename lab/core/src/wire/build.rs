//! Building frames the director originates: ARP, ICMP errors and ICMP echo replies.

use super::checksum::{internet_checksum, ipv4_header_fill, put16};
use super::{MacAddr, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETH_HDR_LEN, IPPROTO_ICMP, IPPROTO_TCP};
use etherparse::{ArpEthIpv4Packet, ArpOperation};
use std::net::Ipv4Addr;

/// An Ethernet frame carrying `arp`, from `src` to `dst`.
pub fn arp_frame(dst: MacAddr, src: MacAddr, arp: &ArpEthIpv4Packet) -> Vec<u8> {
    let mut out = Vec::with_capacity(ETH_HDR_LEN + ArpEthIpv4Packet::LEN);
    out.extend_from_slice(&dst.0);
    out.extend_from_slice(&src.0);
    out.extend_from_slice(&ETHERTYPE_ARP.to_be_bytes());
    out.extend_from_slice(&arp.to_bytes());
    out
}

/// The broadcast ARP request for `target` from `(mac, ip)`.
pub fn arp_request(mac: MacAddr, ip: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let arp = ArpEthIpv4Packet {
        operation: ArpOperation::REQUEST,
        sender_mac: mac.0,
        sender_ipv4: ip.octets(),
        target_mac: MacAddr::ZERO.0,
        target_ipv4: target.octets(),
    };
    arp_frame(MacAddr::BROADCAST, mac, &arp)
}

/// The ICMP errors the director sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpError {
    /// Destination unreachable, port unreachable (type 3 code 3): no real server available.
    PortUnreachable,
    /// Destination unreachable, fragmentation needed (type 3 code 4) with the next-hop MTU.
    FragNeeded {
        /// The MTU the packet must fit.
        mtu: u16,
    },
    /// Time exceeded in transit (type 11 code 0).
    TtlExceeded,
}

/// Like `icmp_send`: at most 576 bytes of IP packet, so 548 bytes of the offending packet.
const ICMP_QUOTE_MAX: usize = 576 - 20 - 8;

/// An ICMP error about `offending` (an IPv4 packet without its Ethernet header), from `src`
/// to the offending packet's source, as the kernel's `icmp_send` builds it: TOS with
/// precedence "internetwork control", TTL 64, no DF, at most 576 bytes.
/// The Ethernet addresses are left zero for the caller.
pub fn icmp_error(kind: IcmpError, offending: &[u8], src: Ipv4Addr, id: u16) -> Vec<u8> {
    let quote = &offending[..offending.len().min(ICMP_QUOTE_MAX)];
    let dst = Ipv4Addr::new(offending[12], offending[13], offending[14], offending[15]);
    let (icmp_type, code, rest) = match kind {
        IcmpError::PortUnreachable => (3u8, 3u8, [0u8; 4]),
        IcmpError::FragNeeded { mtu } => {
            let m = mtu.to_be_bytes();
            (3, 4, [0, 0, m[0], m[1]])
        }
        IcmpError::TtlExceeded => (11, 0, [0; 4]),
    };
    let tos = (offending[1] & 0x1e) | 0xc0;
    let mut out = icmp_frame(tos, id, src, dst, 8 + quote.len());
    let icmp = &mut out[ETH_HDR_LEN + 20..];
    icmp[0] = icmp_type;
    icmp[1] = code;
    icmp[4..8].copy_from_slice(&rest);
    icmp[8..].copy_from_slice(quote);
    let c = internet_checksum(icmp);
    put16(icmp, 2, c);
    out
}

/// A zeroed Ethernet frame holding an IPv4 header for `icmp_len` bytes of ICMP, as the
/// kernel's ICMP socket sends it: no options, no DF, TTL 64 (`sysctl_ip_default_ttl`).
fn icmp_frame(tos: u8, id: u16, src: Ipv4Addr, dst: Ipv4Addr, icmp_len: usize) -> Vec<u8> {
    let total = 20 + icmp_len;
    let mut out = vec![0u8; ETH_HDR_LEN + total];
    put16(&mut out, 12, ETHERTYPE_IPV4);
    let ip = &mut out[ETH_HDR_LEN..ETH_HDR_LEN + 20];
    ip[0] = 0x45;
    ip[1] = tos;
    put16(ip, 2, total as u16);
    put16(ip, 4, id);
    ip[8] = 64;
    ip[9] = IPPROTO_ICMP;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    ipv4_header_fill(ip);
    out
}

/// ICMP type of an echo request.
pub const ICMP_ECHO: u8 = 8;
/// ICMP type of an echo reply.
pub const ICMP_ECHOREPLY: u8 = 0;

/// The echo reply to `request` (an IPv4 packet carrying an ICMP echo request, without its
/// Ethernet header), from the address it was sent to back to its source, as the kernel's
/// `icmp_echo`/`icmp_reply` answers: same identifier, sequence and data, the request's TOS,
/// TTL 64, no DF (the ICMP socket's `IP_PMTUDISC_DONT`), IP identification `id`.
/// IP options are not echoed. `None` when `request` is no echo request or its ICMP checksum
/// fails (the kernel drops those in `icmp_rcv`). The Ethernet addresses are left zero.
pub fn icmp_echo_reply(request: &[u8], id: u16) -> Option<Vec<u8>> {
    let ihl = usize::from(*request.first()? & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([*request.get(2)?, *request.get(3)?]));
    let icmp_in = request.get(ihl..total)?;
    if ihl < 20 || icmp_in.len() < 8 || icmp_in[0] != ICMP_ECHO {
        return None;
    }
    if internet_checksum(icmp_in) != 0 {
        return None;
    }
    let src = Ipv4Addr::new(request[16], request[17], request[18], request[19]);
    let dst = Ipv4Addr::new(request[12], request[13], request[14], request[15]);
    let mut out = icmp_frame(request[1], id, src, dst, icmp_in.len());
    let icmp = &mut out[ETH_HDR_LEN + 20..];
    icmp.copy_from_slice(icmp_in);
    icmp[0] = ICMP_ECHOREPLY;
    icmp[2] = 0;
    icmp[3] = 0;
    let c = internet_checksum(icmp);
    put16(icmp, 2, c);
    Some(out)
}

/// The TCP header (20 bytes, checksum left zero) of the RST answering `tcp` (a segment's
/// TCP header and payload), by the rules tcp_v4_send_reset and tcp_v6_send_reset share: to
/// an ACK, sequence number = its ack number and RST alone; otherwise sequence 0 and RST|ACK
/// acknowledging the segment (SYN and FIN count one each). `None` for a RST (never
/// answered) or a segment too short to read.
pub(super) fn reset_header(tcp: &[u8]) -> Option<[u8; 20]> {
    if tcp.len() < 20 {
        return None;
    }
    let (flags, doff) = (tcp[13], usize::from(tcp[12] >> 4) * 4);
    let (syn, fin, rst, ack) = (
        flags & 0x02 != 0,
        flags & 0x01 != 0,
        flags & 0x04 != 0,
        flags & 0x10 != 0,
    );
    if rst || doff < 20 || doff > tcp.len() {
        return None;
    }
    let seq_in = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
    let ack_in = u32::from_be_bytes([tcp[8], tcp[9], tcp[10], tcp[11]]);
    let (seq, ack_no, out_flags) = if ack {
        (ack_in, 0, 0x04)
    } else {
        let len = (tcp.len() - doff) as u32 + u32::from(syn) + u32::from(fin);
        (0, seq_in.wrapping_add(len), 0x14)
    };
    let mut t = [0u8; 20];
    t[0..2].copy_from_slice(&tcp[2..4]);
    t[2..4].copy_from_slice(&tcp[0..2]);
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[8..12].copy_from_slice(&ack_no.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = out_flags;
    Some(t)
}

/// The RST a host's TCP stack answers `segment` (an IPv4 packet carrying TCP, without its
/// Ethernet header) with when no socket wants it, as tcp_v4_send_reset builds it: to an ACK,
/// sequence number = its ack number and RST alone; otherwise sequence 0 and RST|ACK
/// acknowledging the segment (SYN and FIN count one each). From the address the segment was
/// sent to; the per-netns control socket sends with DF set, IP id 0 (ip_select_ident with
/// DF) and TTL 64, with the segment's TOS. `None` for a RST (never answered) or a segment
/// too short to read. The Ethernet addresses are left zero.
pub fn tcp_reset(segment: &[u8]) -> Option<Vec<u8>> {
    let ihl = usize::from(*segment.first()? & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([*segment.get(2)?, *segment.get(3)?]));
    let tcp = segment.get(ihl..total)?;
    if ihl < 20 {
        return None;
    }
    let header = reset_header(tcp)?;
    let src = Ipv4Addr::new(segment[16], segment[17], segment[18], segment[19]);
    let dst = Ipv4Addr::new(segment[12], segment[13], segment[14], segment[15]);
    let mut out = vec![0u8; ETH_HDR_LEN + 40];
    put16(&mut out, 12, ETHERTYPE_IPV4);
    let ip = &mut out[ETH_HDR_LEN..ETH_HDR_LEN + 20];
    ip[0] = 0x45;
    ip[1] = segment[1];
    put16(ip, 2, 40);
    put16(ip, 6, 0x4000);
    ip[8] = 64;
    ip[9] = IPPROTO_TCP;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    ipv4_header_fill(ip);
    let t = &mut out[ETH_HDR_LEN + 20..];
    t.copy_from_slice(&header);
    let mut pseudo = Vec::with_capacity(32);
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, IPPROTO_TCP, 0, 20]);
    pseudo.extend_from_slice(t);
    let c = internet_checksum(&pseudo);
    put16(t, 16, c);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{IcmpEchoHeader, Icmpv4Type, PacketBuilder, SlicedPacket, TransportSlice};

    fn request(tos: u8, payload: &[u8]) -> Vec<u8> {
        let mut ip = etherparse::Ipv4Header::new(
            0,
            64,
            etherparse::IpNumber::ICMP,
            [198, 51, 100, 10],
            [192, 168, 1, 250],
        )
        .unwrap();
        ip.dscp = etherparse::IpDscp::try_new(tos >> 2).unwrap();
        let b = PacketBuilder::ip(etherparse::IpHeaders::Ipv4(ip, Default::default()))
            .icmpv4_echo_request(7, 300);
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    }

    #[test]
    fn echo_reply_swaps_addresses_and_keeps_id_seq_data_and_tos() {
        // An odd payload length exercises the checksum's padding byte.
        let req = request(0x28, b"odd");
        let reply = icmp_echo_reply(&req, 42).unwrap();
        let p = SlicedPacket::from_ethernet(&reply).unwrap();
        let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net else {
            panic!("not IPv4")
        };
        let h = ip.header().to_header();
        assert_eq!(
            (h.source, h.destination),
            ([192, 168, 1, 250], [198, 51, 100, 10])
        );
        assert_eq!(
            (h.time_to_live, h.identification, h.dont_fragment),
            (64, 42, false)
        );
        assert_eq!(h.dscp.value(), 0x28 >> 2);
        assert_eq!(h.calc_header_checksum(), h.header_checksum);
        let Some(TransportSlice::Icmpv4(icmp)) = &p.transport else {
            panic!("not ICMP")
        };
        let t = Icmpv4Type::EchoReply(IcmpEchoHeader { id: 7, seq: 300 });
        assert_eq!(icmp.icmp_type(), t);
        assert_eq!(icmp.payload(), b"odd");
        assert_eq!(t.calc_checksum(b"odd"), icmp.checksum());
    }

    #[test]
    fn only_intact_echo_requests_get_a_reply() {
        let mut bad = request(0, b"data");
        bad[20 + 2] ^= 1;
        assert_eq!(icmp_echo_reply(&bad, 1), None);
        let reply = icmp_echo_reply(&request(0, b"data"), 1).unwrap();
        assert_eq!(
            icmp_echo_reply(&reply[ETH_HDR_LEN..], 1),
            None,
            "not a request"
        );
    }

    fn segment(flags: &dyn Fn(PacketBuilderStep) -> PacketBuilderStep, payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ipv4([198, 51, 100, 10], [192, 168, 1, 250], 63)
            .tcp(40000, 80, 1000, 500);
        let b = flags(b);
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    }
    type PacketBuilderStep = etherparse::PacketBuilderStep<etherparse::TcpHeader>;

    fn parsed(frame: &[u8]) -> (etherparse::Ipv4Header, etherparse::TcpHeader) {
        let p = etherparse::PacketHeaders::from_ethernet_slice(frame).unwrap();
        let Some(etherparse::NetHeaders::Ipv4(ip, _)) = p.net else {
            panic!("not ipv4")
        };
        let Some(etherparse::TransportHeader::Tcp(tcp)) = p.transport else {
            panic!("not tcp")
        };
        let sum = tcp.calc_checksum_ipv4(&ip, p.payload.slice()).unwrap();
        assert_eq!(sum, tcp.checksum, "TCP checksum");
        (ip, tcp)
    }

    #[test]
    fn a_reset_answers_an_ack_with_its_ack_number_and_data_with_rst_ack() {
        let ack = segment(&|b| b.ack(7777), b"hello");
        let (ip, tcp) = parsed(&tcp_reset(&ack).unwrap());
        assert_eq!(
            (ip.source, ip.destination),
            ([192, 168, 1, 250], [198, 51, 100, 10])
        );
        assert!(ip.dont_fragment && ip.time_to_live == 64 && ip.identification == 0);
        assert_eq!((tcp.source_port, tcp.destination_port), (80, 40000));
        assert!(tcp.rst && !tcp.ack && tcp.sequence_number == 7777);
        let fin = segment(&|b| b.fin(), b"ab");
        let (_, tcp) = parsed(&tcp_reset(&fin).unwrap());
        assert!(tcp.rst && tcp.ack && tcp.sequence_number == 0);
        assert_eq!(tcp.acknowledgment_number, 1000 + 2 + 1);
        let rst = segment(&|b| b.rst(), b"");
        assert!(tcp_reset(&rst).is_none(), "a RST is never answered");
    }
}
