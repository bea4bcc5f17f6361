//! Frames drawn from fuzz input: mostly well-formed Ethernet frames between the seed NAT
//! lab's addresses (so the fuzzer reaches the balancer and not only the header checks),
//! then optionally mutated byte by byte, plus raw bytes.
//!
//! Raw bytes alone almost never form a TCP SYN to the VIP with the director's MAC, so a
//! byte-only harness would spend its time in `wire::parse`; drawing the fields from small
//! pools of the lab's own addresses makes most frames belong to a service or a connection.

use arbitrary::{Result, Unstructured};
use etherparse::{EtherType, Ethernet2Header, IpNumber, Ipv4Header, PacketBuilder};
use lvslab_core::wire::{self, MacAddr};
use std::net::Ipv4Addr;

/// The director's eth0 (towards the router).
pub const DIR_ETH0: [u8; 6] = [0x02, 0, 0, 0, 0x02, 0x00];
/// The director's eth1 (the real servers' LAN).
pub const DIR_ETH1: [u8; 6] = [0x02, 0, 0, 0, 0x02, 0x01];
/// The router's eth1.
pub const ROUTER: [u8; 6] = [0x02, 0, 0, 0, 0x01, 0x01];
/// Real server 1.
pub const RS1: [u8; 6] = [0x02, 0, 0, 0, 0x03, 0x01];
/// Real server 2.
pub const RS2: [u8; 6] = [0x02, 0, 0, 0, 0x03, 0x02];
/// A second director (a VRRP peer).
pub const PEER: [u8; 6] = [0x02, 0, 0, 0, 0x02, 0x10];
const BROADCAST: [u8; 6] = [0xff; 6];
const VRRP_MAC: [u8; 6] = [0x00, 0x00, 0x5e, 0x00, 0x01, 51];
const SYNC_MAC: [u8; 6] = [0x01, 0x00, 0x5e, 0x00, 0x00, 0x51];

/// Client.
pub const CIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
/// Another client.
pub const CIP2: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 11);
/// The router's address on the director's side (the director's default gateway).
pub const GW: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
/// The director's eth0 address.
pub const DIR0: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
/// The VIP.
pub const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 250);
/// The director's eth1 address.
pub const DIP: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 202);
/// The peer director's address.
pub const DIP2: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 204);
/// Real server 1.
pub const RIP1: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 201);
/// Real server 2.
pub const RIP2: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 203);

const MACS: [[u8; 6]; 8] = [
    DIR_ETH0, DIR_ETH1, ROUTER, RS1, RS2, PEER, BROADCAST, VRRP_MAC,
];
const IPS: [Ipv4Addr; 11] = [
    CIP,
    CIP2,
    GW,
    DIR0,
    VIP,
    DIP,
    DIP2,
    RIP1,
    RIP2,
    Ipv4Addr::new(224, 0, 0, 18),
    Ipv4Addr::new(224, 0, 0, 81),
];
const PORTS: [u16; 8] = [80, 53, 443, 0, 8848, 40000, 40001, 65535];

fn mac(u: &mut Unstructured) -> Result<[u8; 6]> {
    // One in eight is any MAC at all; the rest are the lab's.
    if u.ratio(1, 8)? {
        u.arbitrary()
    } else {
        Ok(*u.choose(&MACS)?)
    }
}

fn ip(u: &mut Unstructured) -> Result<Ipv4Addr> {
    if u.ratio(1, 8)? {
        Ok(Ipv4Addr::from(u.arbitrary::<[u8; 4]>()?))
    } else {
        Ok(*u.choose(&IPS)?)
    }
}

fn port(u: &mut Unstructured) -> Result<u16> {
    if u.ratio(1, 6)? {
        u.arbitrary()
    } else {
        Ok(*u.choose(&PORTS)?)
    }
}

fn payload(u: &mut Unstructured, max: usize) -> Result<Vec<u8>> {
    let n = u.int_in_range(0..=max)?;
    Ok(u.bytes(n.min(u.len()))?.to_vec())
}

/// An IPv4 packet (no Ethernet header) carrying TCP or UDP, for ICMP quotes and IPIP.
fn inner_ipv4(u: &mut Unstructured) -> Result<Vec<u8>> {
    let b = PacketBuilder::ipv4(ip(u)?.octets(), ip(u)?.octets(), u.arbitrary()?);
    let mut out = Vec::new();
    let body = payload(u, 32)?;
    let r = if u.arbitrary()? {
        b.tcp(port(u)?, port(u)?, u.arbitrary()?, u.arbitrary()?)
            .write(&mut out, &body)
    } else {
        b.udp(port(u)?, port(u)?).write(&mut out, &body)
    };
    // The builder only fails on sizes far beyond what is drawn here.
    r.map_err(|_| arbitrary::Error::IncorrectFormat)?;
    Ok(out)
}

/// Ethernet + an IPv4 header with `proto` around `body`.
fn ipv4_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ttl: u8,
    proto: u8,
    body: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(34 + body.len());
    let eth = Ethernet2Header {
        source: src_mac,
        destination: dst_mac,
        ether_type: EtherType::IPV4,
    };
    out.extend_from_slice(&eth.to_bytes());
    let len = u16::try_from(body.len())
        .unwrap_or(u16::MAX - 20)
        .min(u16::MAX - 20);
    if let Ok(mut h) = Ipv4Header::new(len, ttl, IpNumber(proto), src.octets(), dst.octets()) {
        h.header_checksum = h.calc_header_checksum();
        out.extend_from_slice(&h.to_bytes());
    }
    out.extend_from_slice(body);
    out
}

/// One frame, as the director (or a capture) could receive it.
pub fn frame(u: &mut Unstructured) -> Result<Vec<u8>> {
    let (src_mac, dst_mac) = (mac(u)?, mac(u)?);
    let ttl = if u.ratio(1, 8)? {
        u.int_in_range(0..=2)?
    } else {
        64
    };
    let mut f = Vec::new();
    let fail = |_| arbitrary::Error::IncorrectFormat;
    match u.int_in_range(0u8..=10)? {
        // TCP, the most interesting: any flag combination, any seq/ack.
        0..=3 => {
            let mut t = PacketBuilder::ethernet2(src_mac, dst_mac)
                .ipv4(ip(u)?.octets(), ip(u)?.octets(), ttl)
                .tcp(port(u)?, port(u)?, u.arbitrary()?, u.arbitrary()?);
            let flags: u8 = u.arbitrary()?;
            if flags & 1 != 0 {
                t = t.fin();
            }
            if flags & 2 != 0 {
                t = t.syn();
            }
            if flags & 4 != 0 {
                t = t.rst();
            }
            if flags & 8 != 0 {
                t = t.psh();
            }
            if flags & 16 != 0 {
                t = t.ack(u.arbitrary()?);
            }
            let body = payload(u, 64)?;
            t.write(&mut f, &body).map_err(fail)?;
        }
        4 | 5 => {
            let body = payload(u, 64)?;
            PacketBuilder::ethernet2(src_mac, dst_mac)
                .ipv4(ip(u)?.octets(), ip(u)?.octets(), ttl)
                .udp(port(u)?, port(u)?)
                .write(&mut f, &body)
                .map_err(fail)?;
        }
        6 => {
            let b = PacketBuilder::ethernet2(src_mac, dst_mac).ipv4(
                ip(u)?.octets(),
                ip(u)?.octets(),
                ttl,
            );
            let (id, seq) = (u.arbitrary()?, u.arbitrary()?);
            let body = payload(u, 32)?;
            let r = if u.arbitrary()? {
                b.icmpv4_echo_request(id, seq).write(&mut f, &body)
            } else {
                b.icmpv4_echo_reply(id, seq).write(&mut f, &body)
            };
            r.map_err(fail)?;
        }
        // An ICMP error quoting a packet (possibly cut short), as routers and hosts send.
        7 => {
            let ty = *u.choose(&[3u8, 4, 11, 12, 5, 0])?;
            let code = if u.ratio(1, 2)? {
                3
            } else {
                u.int_in_range(0..=15)?
            };
            let mut quote = inner_ipv4(u)?;
            if u.ratio(1, 3)? {
                let keep = u.int_in_range(0..=quote.len())?;
                quote.truncate(keep);
            }
            let mtu: [u8; 4] = if u.ratio(1, 2)? {
                [0, 0, 0x05, 0xb4]
            } else {
                u.arbitrary()?
            };
            PacketBuilder::ethernet2(src_mac, dst_mac)
                .ipv4(ip(u)?.octets(), ip(u)?.octets(), ttl)
                .icmpv4_raw(ty, code, mtu)
                .write(&mut f, &quote)
                .map_err(fail)?;
        }
        8 => {
            // ARP request or reply, Ethernet/IPv4.
            f.extend_from_slice(&dst_mac);
            f.extend_from_slice(&src_mac);
            f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0]);
            f.push(if u.arbitrary()? { 1 } else { 2 });
            f.extend_from_slice(&src_mac);
            f.extend_from_slice(&ip(u)?.octets());
            f.extend_from_slice(&mac(u)?);
            f.extend_from_slice(&ip(u)?.octets());
        }
        // IPIP (TUN), VRRP (112) and sync (UDP 8848) to the multicast groups, any other protocol.
        9 => {
            let (src, dst) = (ip(u)?, ip(u)?);
            match u.int_in_range(0u8..=3)? {
                0 => f = ipv4_frame(src_mac, dst_mac, src, dst, ttl, 4, &inner_ipv4(u)?),
                1 => {
                    let mut body = vec![*u.choose(&[0x21u8, 0x31])?, 51, u.arbitrary()?, 1];
                    body.extend(payload(u, 40)?);
                    let dst = Ipv4Addr::new(224, 0, 0, 18);
                    f = ipv4_frame(src_mac, VRRP_MAC, src, dst, 255, 112, &body);
                }
                2 => {
                    let body = payload(u, 200)?;
                    PacketBuilder::ethernet2(src_mac, SYNC_MAC)
                        .ipv4(src.octets(), [224, 0, 0, 81], 1)
                        .udp(port(u)?, 8848)
                        .write(&mut f, &body)
                        .map_err(fail)?;
                }
                _ => {
                    let body = payload(u, 64)?;
                    f = ipv4_frame(src_mac, dst_mac, src, dst, ttl, u.arbitrary()?, &body);
                }
            }
        }
        // Anything at all after an Ethernet header.
        _ => {
            f.extend_from_slice(&dst_mac);
            f.extend_from_slice(&src_mac);
            let et: [u8; 2] =
                *u.choose(&[[0x08, 0x00], [0x08, 0x06], [0x86, 0xdd], [0x81, 0x00]])?;
            f.extend_from_slice(&et);
            f.extend(payload(u, 1600)?);
        }
    }
    mutate(u, &mut f)?;
    Ok(f)
}

/// A few edits to a well-formed frame: headers that lie about lengths, fragments, options,
/// cut-off packets. Header checksums are left wrong on purpose (the director must not care).
fn mutate(u: &mut Unstructured, f: &mut Vec<u8>) -> Result<()> {
    if !u.ratio(1, 3)? {
        return Ok(());
    }
    for _ in 0..u.int_in_range(1..=4)? {
        match u.int_in_range(0u8..=4)? {
            0 if !f.is_empty() => {
                let i = u.int_in_range(0..=f.len() - 1)?;
                f[i] = u.arbitrary()?;
            }
            1 => {
                let keep = u.int_in_range(0..=f.len())?;
                f.truncate(keep);
            }
            // The IPv4 header's interesting bytes: version/IHL, total length, flags/offset.
            2 if f.len() > 22 => {
                let i = *u.choose(&[14usize, 16, 17, 20, 21])?;
                f[i] = u.arbitrary()?;
            }
            3 => {
                let n = u.int_in_range(0..=64)?;
                f.extend(u.bytes(n.min(u.len()))?);
            }
            _ => {}
        }
    }
    Ok(())
}

/// The dual-stack lab's IPv6 addresses (topologies/nat6-topology.toml's plan).
pub mod v6 {
    use std::net::Ipv6Addr;

    /// Client.
    pub const CIP: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0x10);
    /// The router on the director's side (its default gateway).
    pub const GW: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x203, 0, 0, 0, 0, 1);
    /// The director's eth0 address.
    pub const DIR0: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x203, 0, 0, 0, 0, 2);
    /// The VIP.
    pub const VIP: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x250);
    /// The director's eth1 address.
    pub const DIP: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x202);
    /// Real server 1.
    pub const RIP1: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x201);
    /// Real server 2.
    pub const RIP2: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x203);

    pub(super) const IPS: [Ipv6Addr; 11] = [
        CIP,
        GW,
        DIR0,
        VIP,
        DIP,
        RIP1,
        RIP2,
        // All nodes, the VIP's solicited-node group, a link-local router, unspecified (DAD).
        Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
        Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00, 0x250),
        Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1),
        Ipv6Addr::UNSPECIFIED,
    ];
}

fn ip6(u: &mut Unstructured) -> Result<std::net::Ipv6Addr> {
    if u.ratio(1, 8)? {
        Ok(std::net::Ipv6Addr::from(u.arbitrary::<[u8; 16]>()?))
    } else {
        Ok(*u.choose(&v6::IPS)?)
    }
}

/// An IPv6 packet (no Ethernet header) carrying TCP or UDP, for ICMPv6 quotes and
/// IPv6-in-IPv6.
fn inner_ipv6(u: &mut Unstructured) -> Result<Vec<u8>> {
    let b = PacketBuilder::ipv6(ip6(u)?.octets(), ip6(u)?.octets(), u.arbitrary()?);
    let mut out = Vec::new();
    let body = payload(u, 32)?;
    let r = if u.arbitrary()? {
        b.tcp(port(u)?, port(u)?, u.arbitrary()?, u.arbitrary()?)
            .write(&mut out, &body)
    } else {
        b.udp(port(u)?, port(u)?).write(&mut out, &body)
    };
    r.map_err(|_| arbitrary::Error::IncorrectFormat)?;
    Ok(out)
}

/// Ethernet + a fixed IPv6 header with next header `next` around `body` (payload length
/// from the body: extension headers and odd protocols go in `body`).
fn ipv6_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: std::net::Ipv6Addr,
    dst: std::net::Ipv6Addr,
    hop_limit: u8,
    next: u8,
    body: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(54 + body.len());
    out.extend_from_slice(&dst_mac);
    out.extend_from_slice(&src_mac);
    out.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
    let len = u16::try_from(body.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&[next, hop_limit]);
    out.extend_from_slice(&src.octets());
    out.extend_from_slice(&dst.octets());
    out.extend_from_slice(body);
    out
}

/// One IPv6 frame, as a dual-stack director could receive it: TCP and UDP between the
/// lab's addresses, echo, ICMPv6 errors quoting a packet, Neighbour Discovery (mostly valid,
/// so the solicitation path is reached), extension-header chains, IPv6-in-IPv6, anything.
pub fn frame6(u: &mut Unstructured) -> Result<Vec<u8>> {
    let (src_mac, dst_mac) = (mac(u)?, mac(u)?);
    let hl = if u.ratio(1, 8)? {
        u.int_in_range(0..=2)?
    } else {
        64
    };
    let mut f = Vec::new();
    let fail = |_| arbitrary::Error::IncorrectFormat;
    match u.int_in_range(0u8..=9)? {
        0..=2 => {
            let mut t = PacketBuilder::ethernet2(src_mac, dst_mac)
                .ipv6(ip6(u)?.octets(), ip6(u)?.octets(), hl)
                .tcp(port(u)?, port(u)?, u.arbitrary()?, u.arbitrary()?);
            let flags: u8 = u.arbitrary()?;
            if flags & 1 != 0 {
                t = t.fin();
            }
            if flags & 2 != 0 {
                t = t.syn();
            }
            if flags & 4 != 0 {
                t = t.rst();
            }
            if flags & 16 != 0 {
                t = t.ack(u.arbitrary()?);
            }
            let body = payload(u, 1500)?;
            t.write(&mut f, &body).map_err(fail)?;
        }
        3 => {
            let body = payload(u, 64)?;
            PacketBuilder::ethernet2(src_mac, dst_mac)
                .ipv6(ip6(u)?.octets(), ip6(u)?.octets(), hl)
                .udp(port(u)?, port(u)?)
                .write(&mut f, &body)
                .map_err(fail)?;
        }
        4 => {
            let b = PacketBuilder::ethernet2(src_mac, dst_mac).ipv6(
                ip6(u)?.octets(),
                ip6(u)?.octets(),
                hl,
            );
            let (id, seq) = (u.arbitrary()?, u.arbitrary()?);
            let body = payload(u, 32)?;
            let r = if u.arbitrary()? {
                b.icmpv6_echo_request(id, seq).write(&mut f, &body)
            } else {
                b.icmpv6_echo_reply(id, seq).write(&mut f, &body)
            };
            r.map_err(fail)?;
        }
        5 => {
            let ty = *u.choose(&[1u8, 2, 3, 4, 128])?;
            let mut quote = inner_ipv6(u)?;
            if u.ratio(1, 3)? {
                let keep = u.int_in_range(0..=quote.len())?;
                quote.truncate(keep);
            }
            PacketBuilder::ethernet2(src_mac, dst_mac)
                .ipv6(ip6(u)?.octets(), ip6(u)?.octets(), hl)
                .icmpv6_raw(ty, u.int_in_range(0..=5)?, u.arbitrary()?)
                .write(&mut f, &quote)
                .map_err(fail)?;
        }
        // Neighbour Discovery, built right (checksum and all) most of the time.
        6 => {
            let (src, target) = (ip6(u)?, ip6(u)?);
            let mac_opt = MacAddr(mac(u)?);
            f = if u.arbitrary()? {
                let probe = if u.arbitrary()? {
                    Some(MacAddr(dst_mac))
                } else {
                    None
                };
                wire::neighbour_solicitation(mac_opt, src, target, probe)
            } else {
                let flags = wire::NaFlags {
                    router: u.arbitrary()?,
                    solicited: u.arbitrary()?,
                    override_: u.arbitrary()?,
                };
                wire::neighbour_advertisement(
                    mac_opt,
                    target,
                    ip6(u)?,
                    MacAddr(dst_mac),
                    flags,
                    u.arbitrary()?,
                )
            };
            if u.ratio(1, 4)? {
                // Options of any length (0 is invalid and must be refused).
                f.extend(payload(u, 24)?);
                let pl = (f.len() - 54) as u16;
                f[18..20].copy_from_slice(&pl.to_be_bytes());
            }
        }
        // Extension headers before a transport header, possibly a fragment header.
        7 => {
            let inner = inner_ipv6(u)?;
            let (src, dst) = (ip6(u)?, ip6(u)?);
            let mut body = Vec::new();
            let mut next = inner.get(6).copied().unwrap_or(59);
            for _ in 0..u.int_in_range(1..=3)? {
                let kind = *u.choose(&[0u8, 43, 44, 60, 51])?;
                let mut h = vec![next, 0, 0, 0, 0, 0, 0, 0];
                if kind == 44 {
                    h[2] = u.arbitrary()?;
                    h[3] = u.arbitrary()?;
                } else if u.ratio(1, 4)? {
                    h[1] = u.arbitrary()?;
                }
                h.extend(body);
                body = h;
                next = kind;
            }
            body.extend_from_slice(inner.get(40..).unwrap_or(&[]));
            f = ipv6_frame(src_mac, dst_mac, src, dst, hl, next, &body);
        }
        8 => {
            let (src, dst) = (ip6(u)?, ip6(u)?);
            let body = if u.arbitrary()? {
                inner_ipv6(u)?
            } else {
                payload(u, 64)?
            };
            let next = if u.ratio(3, 4)? { 41 } else { u.arbitrary()? };
            f = ipv6_frame(src_mac, dst_mac, src, dst, hl, next, &body);
        }
        _ => {
            f.extend_from_slice(&dst_mac);
            f.extend_from_slice(&src_mac);
            f.extend_from_slice(&[0x86, 0xdd]);
            f.extend(payload(u, 1600)?);
        }
    }
    mutate6(u, &mut f)?;
    Ok(f)
}

/// A few edits to a well-formed IPv6 frame: payload lengths that lie, next headers that
/// change, cut-off packets.
fn mutate6(u: &mut Unstructured, f: &mut Vec<u8>) -> Result<()> {
    if !u.ratio(1, 3)? {
        return Ok(());
    }
    for _ in 0..u.int_in_range(1..=4)? {
        match u.int_in_range(0u8..=3)? {
            0 if !f.is_empty() => {
                let i = u.int_in_range(0..=f.len() - 1)?;
                f[i] = u.arbitrary()?;
            }
            1 => {
                let keep = u.int_in_range(0..=f.len())?;
                f.truncate(keep);
            }
            // Version, payload length, next header, hop limit.
            2 if f.len() > 22 => {
                let i = *u.choose(&[14usize, 18, 19, 20, 21])?;
                f[i] = u.arbitrary()?;
            }
            _ => {
                let n = u.int_in_range(0..=64)?;
                f.extend(u.bytes(n.min(u.len()))?);
            }
        }
    }
    Ok(())
}
