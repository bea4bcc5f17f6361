//! Parsing a received Ethernet frame into what the director needs to decide on it.

use super::{MacAddr, WireError, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETH_HDR_LEN};
use super::{IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP};
use etherparse::{ArpEthIpv4Packet, ArpPacketSlice, Ethernet2HeaderSlice, Ipv4HeaderSlice};
use std::net::Ipv4Addr;

/// A frame, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// An Ethernet/IPv4 ARP packet.
    Arp {
        /// Destination MAC of the Ethernet header.
        dst_mac: MacAddr,
        /// The ARP body.
        arp: ArpEthIpv4Packet,
    },
    /// An IPv4 packet.
    Ipv4(Ipv4Meta),
    /// An IPv6 packet.
    Ipv6(super::Ipv6Meta),
    /// Anything else (VLAN, LLDP, ...): not the director's business.
    Other,
}

/// Where the IPv4 packet's headers are and what they say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv4Meta {
    /// Destination MAC.
    pub dst_mac: MacAddr,
    /// Source MAC.
    pub src_mac: MacAddr,
    /// IPv4 header length in bytes (the header starts at [`ETH_HDR_LEN`]).
    pub ihl_len: usize,
    /// IPv4 total length: the frame may carry Ethernet padding after it.
    pub total_len: usize,
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Time to live.
    pub ttl: u8,
    /// Don't-fragment bit.
    pub df: bool,
    /// A fragment (MF set or a non-zero offset): the director does not reassemble.
    pub fragment: bool,
    /// Type of service byte.
    pub tos: u8,
    /// The transport header, as far as the director cares.
    pub l4: L4,
}

impl Ipv4Meta {
    /// Offset of the transport header in the frame.
    pub fn l4_off(&self) -> usize {
        ETH_HDR_LEN + self.ihl_len
    }
}

/// The transport part of an IP packet; `I` is the quoted packet of an ICMP error
/// ([`IcmpInner`] for IPv4, [`super::IcmpInner6`] for IPv6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum L4<I = IcmpInner> {
    /// TCP with its ports and the flags IPVS's state machine looks at.
    Tcp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// SYN.
        syn: bool,
        /// ACK.
        ack: bool,
        /// FIN.
        fin: bool,
        /// RST.
        rst: bool,
    },
    /// UDP with its ports.
    Udp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
    },
    /// An ICMP error (destination unreachable, source quench, time exceeded, parameter
    /// problem) quoting a TCP or UDP packet: IPVS relates these to a connection.
    IcmpError {
        /// ICMP type.
        icmp_type: u8,
        /// ICMP code.
        code: u8,
        /// The quoted packet.
        inner: I,
    },
    /// Any other ICMP message.
    Icmp {
        /// ICMP type.
        icmp_type: u8,
        /// ICMP code.
        code: u8,
    },
    /// Another protocol, or a fragment whose transport header is not here.
    Other(u8),
}

/// The packet quoted inside an ICMP error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcmpInner {
    /// Offset of the inner IPv4 header in the frame.
    pub off: usize,
    /// Inner IPv4 header length.
    pub ihl_len: usize,
    /// Inner protocol (TCP or UDP).
    pub proto: u8,
    /// Inner source address.
    pub src: Ipv4Addr,
    /// Inner destination address.
    pub dst: Ipv4Addr,
    /// Inner source port.
    pub sport: u16,
    /// Inner destination port.
    pub dport: u16,
}

const ICMP_DEST_UNREACH: u8 = 3;
const ICMP_SOURCE_QUENCH: u8 = 4;
const ICMP_TIME_EXCEEDED: u8 = 11;
const ICMP_PARAMETERPROB: u8 = 12;

/// Classify a frame. Errors only for IPv4/ARP frames whose headers are broken.
pub fn parse(frame: &[u8]) -> Result<Parsed, WireError> {
    let eth =
        Ethernet2HeaderSlice::from_slice(frame).map_err(|e| WireError::Truncated(e.to_string()))?;
    let dst_mac = MacAddr(eth.destination());
    let src_mac = MacAddr(eth.source());
    let payload = &frame[ETH_HDR_LEN..];
    match eth.ether_type().0 {
        ETHERTYPE_ARP => {
            let arp = ArpPacketSlice::from_slice(payload)
                .map_err(|e| WireError::Truncated(e.to_string()))?
                .to_packet()
                .try_eth_ipv4();
            match arp {
                Ok(arp) => Ok(Parsed::Arp { dst_mac, arp }),
                Err(_) => Ok(Parsed::Other),
            }
        }
        ETHERTYPE_IPV4 => parse_ipv4(dst_mac, src_mac, payload).map(Parsed::Ipv4),
        super::ETHERTYPE_IPV6 => {
            super::ipv6::parse_ipv6(dst_mac, src_mac, payload).map(Parsed::Ipv6)
        }
        _ => Ok(Parsed::Other),
    }
}

fn parse_ipv4(dst_mac: MacAddr, src_mac: MacAddr, pkt: &[u8]) -> Result<Ipv4Meta, WireError> {
    let ip = Ipv4HeaderSlice::from_slice(pkt).map_err(|e| WireError::Malformed(e.to_string()))?;
    let ihl_len = ip.slice().len();
    let total_len = usize::from(ip.total_len());
    if total_len < ihl_len || total_len > pkt.len() {
        return Err(WireError::Truncated(format!(
            "IPv4 total length {total_len} but {} bytes after the Ethernet header",
            pkt.len()
        )));
    }
    let fragment = ip.more_fragments() || ip.fragments_offset().value() != 0;
    let body = &pkt[ihl_len..total_len];
    let proto = ip.protocol().0;
    let l4 = if fragment {
        L4::Other(proto)
    } else {
        parse_l4(proto, body, ETH_HDR_LEN + ihl_len)?
    };
    Ok(Ipv4Meta {
        dst_mac,
        src_mac,
        ihl_len,
        total_len,
        src: ip.source_addr(),
        dst: ip.destination_addr(),
        ttl: ip.ttl(),
        df: ip.dont_fragment(),
        fragment,
        tos: pkt[1],
        l4,
    })
}

pub(super) fn ports(body: &[u8], what: &str) -> Result<(u16, u16), WireError> {
    if body.len() < 4 {
        return Err(WireError::Truncated(format!("{what} header")));
    }
    Ok((
        u16::from_be_bytes([body[0], body[1]]),
        u16::from_be_bytes([body[2], body[3]]),
    ))
}

/// TCP or UDP (the same over both families); `None` for another protocol.
pub(super) fn parse_tcp_udp<I>(proto: u8, body: &[u8]) -> Result<Option<L4<I>>, WireError> {
    Ok(Some(match proto {
        IPPROTO_TCP => {
            if body.len() < 20 {
                return Err(WireError::Truncated("TCP header".into()));
            }
            let (sport, dport) = ports(body, "TCP")?;
            let flags = body[13];
            L4::Tcp {
                sport,
                dport,
                fin: flags & 0x01 != 0,
                syn: flags & 0x02 != 0,
                rst: flags & 0x04 != 0,
                ack: flags & 0x10 != 0,
            }
        }
        IPPROTO_UDP => {
            if body.len() < 8 {
                return Err(WireError::Truncated("UDP header".into()));
            }
            let (sport, dport) = ports(body, "UDP")?;
            L4::Udp { sport, dport }
        }
        _ => return Ok(None),
    }))
}

fn parse_l4(proto: u8, body: &[u8], body_off: usize) -> Result<L4, WireError> {
    if let Some(l4) = parse_tcp_udp(proto, body)? {
        return Ok(l4);
    }
    Ok(match proto {
        IPPROTO_ICMP => {
            if body.len() < 8 {
                return Err(WireError::Truncated("ICMP header".into()));
            }
            let (icmp_type, code) = (body[0], body[1]);
            let is_error = matches!(
                icmp_type,
                ICMP_DEST_UNREACH | ICMP_SOURCE_QUENCH | ICMP_TIME_EXCEEDED | ICMP_PARAMETERPROB
            );
            match is_error
                .then(|| parse_inner(&body[8..], body_off + 8))
                .flatten()
            {
                Some(inner) => L4::IcmpError {
                    icmp_type,
                    code,
                    inner,
                },
                None => L4::Icmp { icmp_type, code },
            }
        }
        other => L4::Other(other),
    })
}

/// The quoted header of an ICMP error; `None` when it is not a first-fragment TCP/UDP packet
/// with at least its ports quoted (RFC 792 guarantees 8 bytes past the IP header).
fn parse_inner(quoted: &[u8], off: usize) -> Option<IcmpInner> {
    let ip = Ipv4HeaderSlice::from_slice(quoted).ok()?;
    let ihl_len = ip.slice().len();
    let proto = ip.protocol().0;
    if !(proto == IPPROTO_TCP || proto == IPPROTO_UDP) || ip.fragments_offset().value() != 0 {
        return None;
    }
    let (sport, dport) = ports(quoted.get(ihl_len..)?, "quoted").ok()?;
    Some(IcmpInner {
        off,
        ihl_len,
        proto,
        src: ip.source_addr(),
        dst: ip.destination_addr(),
        sport,
        dport,
    })
}
