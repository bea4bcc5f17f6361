//! Frame decoding: an Ethernet frame becomes a [`Frame`] holding just what the path
//! normalizer shows (addresses, protocol, flags, payload length and digest).
//!
//! Header parsing is etherparse's; this module only picks fields and follows the two
//! nestings LVS produces: IPIP (TUN forwarding) and the quoted packet inside ICMP errors.

use etherparse::{
    EtherType, Ethernet2HeaderSlice, IpNumber, Ipv4HeaderSlice, LaxIpv6Slice, TcpHeaderSlice,
    UdpHeaderSlice,
};
use std::net::IpAddr;

/// An Ethernet address: lvslab's one MAC type.
pub use lvslab_core::Mac;

/// One decoded Ethernet frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Ethernet source address.
    pub src_mac: Mac,
    /// Ethernet destination address.
    pub dst_mac: Mac,
    /// What the frame carries.
    pub body: Body,
}

/// The layer-3 content of a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// An IP packet (possibly IPIP-encapsulated: see [`Ip::encap`]).
    Ip(Ip),
    /// An ARP request or reply.
    Arp(Arp),
    /// Anything else, by EtherType.
    Other {
        /// The frame's EtherType.
        ether_type: u16,
        /// Frame length in bytes.
        len: usize,
    },
}

/// An ARP packet (IPv4 over Ethernet only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arp {
    /// 1 = request, 2 = reply.
    pub op: u16,
    /// Sender hardware address.
    pub sender_mac: Mac,
    /// Sender protocol address.
    pub sender_ip: IpAddr,
    /// Target protocol address.
    pub target_ip: IpAddr,
}

/// An IP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ip {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Time to live (IPv4) or hop limit (IPv6): shows who routed the packet.
    pub ttl: u8,
    /// The transport content.
    pub l4: L4,
}

/// Transport content of an IP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum L4 {
    /// TCP segment.
    Tcp(Tcp),
    /// UDP datagram.
    Udp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// Payload.
        payload: Payload,
    },
    /// ICMP echo request (`reply == false`) or reply.
    Echo {
        /// Is it a reply?
        reply: bool,
        /// ICMPv6 rather than ICMPv4.
        v6: bool,
        /// Identifier.
        id: u16,
        /// Sequence number.
        seq: u16,
        /// Payload.
        payload: Payload,
    },
    /// ICMP error quoting an earlier packet.
    IcmpError {
        /// ICMPv6 rather than ICMPv4.
        v6: bool,
        /// ICMP type.
        icmp_type: u8,
        /// ICMP code.
        code: u8,
        /// The quoted packet (header plus the first transport bytes), if it parses.
        inner: Option<Box<Ip>>,
    },
    /// Any other ICMP message.
    IcmpOther {
        /// ICMPv6 rather than ICMPv4.
        v6: bool,
        /// ICMP type.
        icmp_type: u8,
        /// ICMP code.
        code: u8,
    },
    /// IPv6 Neighbour Solicitation (135) or Advertisement (136): ARP's IPv6 twin.
    Nd {
        /// A solicitation ("who has target?") rather than an advertisement.
        solicit: bool,
        /// The address asked about or announced.
        target: std::net::Ipv6Addr,
        /// The link-layer address option: the sender's (NS) or the target's (NA), if given.
        lladdr: Option<Mac>,
    },
    /// IP-in-IP: the director's TUN forwarding (IPv4 protocol 4, or IPv6 next header 41 for
    /// IPv6-in-IPv6).
    Ipip(Box<Ip>),
    /// Any other protocol number.
    Other {
        /// IP protocol number.
        protocol: u8,
        /// Payload length.
        len: usize,
    },
}

/// A TCP segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tcp {
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// Flags.
    pub flags: TcpFlagSet,
    /// Payload.
    pub payload: Payload,
}

/// TCP flags as shown by tcpdump.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TcpFlagSet {
    /// SYN.
    pub syn: bool,
    /// FIN.
    pub fin: bool,
    /// RST.
    pub rst: bool,
    /// PSH.
    pub psh: bool,
    /// ACK.
    pub ack: bool,
}

impl TcpFlagSet {
    /// tcpdump's rendering: `S`, `S.`, `P.`, `F.`, `R`, `.`.
    pub fn render(&self) -> String {
        let mut s = String::new();
        if self.syn {
            s.push('S');
        }
        if self.fin {
            s.push('F');
        }
        if self.rst {
            s.push('R');
        }
        if self.psh {
            s.push('P');
        }
        if self.ack {
            s.push('.');
        }
        if s.is_empty() {
            s.push_str("none");
        }
        s
    }
}

/// A payload summary: its length and a digest that tells equal contents apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Payload {
    /// Length in bytes (as carried, which can be less than claimed when quoted).
    pub len: usize,
    /// FNV-1a of the bytes; 0 for an empty payload.
    pub digest: u64,
}

impl Payload {
    fn of(bytes: &[u8]) -> Self {
        if bytes.is_empty() {
            return Payload { len: 0, digest: 0 };
        }
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Payload {
            len: bytes.len(),
            digest: h,
        }
    }
}

/// Decodes an Ethernet II frame. `None` for a frame too short to hold an Ethernet header.
pub fn decode_ethernet(data: &[u8]) -> Option<Frame> {
    let eth = Ethernet2HeaderSlice::from_slice(data).ok()?;
    let rest = &data[eth.slice().len()..];
    let ether_type = eth.ether_type();
    let body = match ether_type {
        EtherType::IPV4 | EtherType::IPV6 => match decode_ip(rest, false) {
            Some(ip) => Body::Ip(ip),
            None => Body::Other {
                ether_type: ether_type.0,
                len: data.len(),
            },
        },
        EtherType::ARP => match decode_arp(rest) {
            Some(arp) => Body::Arp(arp),
            None => Body::Other {
                ether_type: ether_type.0,
                len: data.len(),
            },
        },
        other => Body::Other {
            ether_type: other.0,
            len: data.len(),
        },
    };
    Some(Frame {
        src_mac: Mac(eth.source()),
        dst_mac: Mac(eth.destination()),
        body,
    })
}

fn decode_arp(b: &[u8]) -> Option<Arp> {
    // htype 1 (Ethernet), ptype 0x0800, hlen 6, plen 4.
    if b.len() < 28 || b[0..2] != [0, 1] || b[2..4] != [8, 0] || b[4] != 6 || b[5] != 4 {
        return None;
    }
    let op = u16::from_be_bytes([b[6], b[7]]);
    let mut sender_mac = [0u8; 6];
    sender_mac.copy_from_slice(&b[8..14]);
    let sender_ip = IpAddr::from([b[14], b[15], b[16], b[17]]);
    let target_ip = IpAddr::from([b[24], b[25], b[26], b[27]]);
    Some(Arp {
        op,
        sender_mac: Mac(sender_mac),
        sender_ip,
        target_ip,
    })
}

/// Decodes an IP packet. `quoted` marks the truncated copy inside an ICMP error, whose
/// transport header may be cut after the ports.
pub fn decode_ip(b: &[u8], quoted: bool) -> Option<Ip> {
    let version = b.first()? >> 4;
    let (src, dst, ttl, protocol, payload): (IpAddr, IpAddr, u8, IpNumber, &[u8]) = match version {
        4 => {
            let h = Ipv4HeaderSlice::from_slice(b).ok()?;
            let hl = h.slice().len();
            let end = if quoted {
                b.len()
            } else {
                usize::from(h.total_len()).clamp(hl, b.len())
            };
            (
                h.source_addr().into(),
                h.destination_addr().into(),
                h.ttl(),
                h.protocol(),
                &b[hl..end],
            )
        }
        6 => {
            // Extension headers (MLD's hop-by-hop, a tunnel's destination options) are
            // skipped to the transport header; a quoted copy may be cut anywhere, which the
            // lax slice tolerates (payload_length larger than what is there).
            let (v6, _) = LaxIpv6Slice::from_slice(b).ok()?;
            let h = v6.header();
            let p = v6.payload();
            if p.fragmented {
                let l4 = L4::Other {
                    protocol: p.ip_number.0,
                    len: p.payload.len(),
                };
                return Some(Ip {
                    src: h.source_addr().into(),
                    dst: h.destination_addr().into(),
                    ttl: h.hop_limit(),
                    l4,
                });
            }
            (
                h.source_addr().into(),
                h.destination_addr().into(),
                h.hop_limit(),
                p.ip_number,
                p.payload,
            )
        }
        _ => return None,
    };
    let l4 = decode_l4(protocol, payload, quoted);
    Some(Ip { src, dst, ttl, l4 })
}

fn decode_l4(protocol: IpNumber, p: &[u8], quoted: bool) -> L4 {
    let other = || L4::Other {
        protocol: protocol.0,
        len: p.len(),
    };
    match protocol {
        IpNumber::TCP => {
            if let Ok(t) = TcpHeaderSlice::from_slice(p) {
                return L4::Tcp(Tcp {
                    sport: t.source_port(),
                    dport: t.destination_port(),
                    seq: t.sequence_number(),
                    ack: t.acknowledgment_number(),
                    flags: TcpFlagSet {
                        syn: t.syn(),
                        fin: t.fin(),
                        rst: t.rst(),
                        psh: t.psh(),
                        ack: t.ack(),
                    },
                    payload: Payload::of(&p[t.slice().len()..]),
                });
            }
            if quoted && p.len() >= 8 {
                // An ICMP error quotes only 8 transport bytes: ports and sequence number.
                return L4::Tcp(Tcp {
                    sport: u16::from_be_bytes([p[0], p[1]]),
                    dport: u16::from_be_bytes([p[2], p[3]]),
                    seq: u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
                    ack: 0,
                    flags: TcpFlagSet {
                        syn: false,
                        fin: false,
                        rst: false,
                        psh: false,
                        ack: false,
                    },
                    payload: Payload::of(&[]),
                });
            }
            other()
        }
        IpNumber::UDP => match UdpHeaderSlice::from_slice(p) {
            Ok(u) => L4::Udp {
                sport: u.source_port(),
                dport: u.destination_port(),
                payload: Payload::of(&p[8..]),
            },
            Err(_) => other(),
        },
        IpNumber::ICMP => decode_icmp(p, false).unwrap_or_else(other),
        IpNumber::IPV6_ICMP => decode_icmp(p, true).unwrap_or_else(other),
        IpNumber::IPV4 | IpNumber::IPV6 if !quoted => match decode_ip(p, false) {
            Some(inner) => L4::Ipip(Box::new(inner)),
            None => other(),
        },
        _ => other(),
    }
}

fn decode_icmp(p: &[u8], v6: bool) -> Option<L4> {
    if p.len() < 8 {
        return None;
    }
    let (icmp_type, code) = (p[0], p[1]);
    let id = u16::from_be_bytes([p[4], p[5]]);
    let seq = u16::from_be_bytes([p[6], p[7]]);
    let body = &p[8..];
    let (echo_req, echo_rep, errors): (u8, u8, &[u8]) = if v6 {
        (128, 129, &[1, 2, 3, 4])
    } else {
        (8, 0, &[3, 4, 5, 11, 12])
    };
    Some(if icmp_type == echo_req || icmp_type == echo_rep {
        L4::Echo {
            reply: icmp_type == echo_rep,
            v6,
            id,
            seq,
            payload: Payload::of(body),
        }
    } else if v6 && (icmp_type == 135 || icmp_type == 136) && p.len() >= 24 {
        let mut t = [0u8; 16];
        t.copy_from_slice(&p[8..24]);
        // Options after the target: type, length in 8-byte units, value. NS carries the
        // source link-layer address (1), NA the target's (2).
        let want = if icmp_type == 135 { 1 } else { 2 };
        let mut lladdr = None;
        let mut o = &p[24..];
        while o.len() >= 8 && o[1] > 0 {
            let len = usize::from(o[1]) * 8;
            if o.len() < len {
                break;
            }
            if o[0] == want {
                let mut m = [0u8; 6];
                m.copy_from_slice(&o[2..8]);
                lladdr = Some(Mac(m));
            }
            o = &o[len..];
        }
        L4::Nd {
            solicit: icmp_type == 135,
            target: std::net::Ipv6Addr::from(t),
            lladdr,
        }
    } else if errors.contains(&icmp_type) {
        L4::IcmpError {
            v6,
            icmp_type,
            code,
            inner: decode_ip(body, true).map(Box::new),
        }
    } else {
        L4::IcmpOther {
            v6,
            icmp_type,
            code,
        }
    })
}

/// Is this ICMPv6 message Multicast Listener Discovery (queries and reports: 130-132, 143)?
pub fn is_mld(l4: &L4) -> bool {
    matches!(
        l4,
        L4::IcmpOther {
            v6: true,
            icmp_type: 130..=132 | 143,
            ..
        }
    )
}

/// Is this ICMPv6 message Neighbor Discovery or router discovery (types 133-137)?
pub fn is_neighbor_discovery(l4: &L4) -> bool {
    matches!(
        l4,
        L4::Nd { .. }
            | L4::IcmpOther {
                v6: true,
                icmp_type: 133..=137,
                ..
            }
    )
}
