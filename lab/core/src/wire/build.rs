//! Building frames the director originates: ARP and ICMP errors.

use super::checksum::{internet_checksum, ipv4_header_fill, put16};
use super::{MacAddr, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETH_HDR_LEN, IPPROTO_ICMP};
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
    let total = 20 + 8 + quote.len();
    let mut out = vec![0u8; ETH_HDR_LEN + total];
    put16(&mut out, 12, ETHERTYPE_IPV4);
    {
        let ip = &mut out[ETH_HDR_LEN..ETH_HDR_LEN + 20];
        ip[0] = 0x45;
        ip[1] = (offending[1] & 0x1e) | 0xc0;
        put16(ip, 2, total as u16);
        put16(ip, 4, id);
        ip[8] = 64;
        ip[9] = IPPROTO_ICMP;
        ip[12..16].copy_from_slice(&src.octets());
        ip[16..20].copy_from_slice(&dst.octets());
        ipv4_header_fill(ip);
    }
    let icmp = &mut out[ETH_HDR_LEN + 20..];
    icmp[0] = icmp_type;
    icmp[1] = code;
    icmp[4..8].copy_from_slice(&rest);
    icmp[8..].copy_from_slice(quote);
    let c = internet_checksum(icmp);
    put16(icmp, 2, c);
    out
}
