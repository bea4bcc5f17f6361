//! In-place rewrites of an Ethernet/IPv4 frame with incremental checksum updates.

use super::checksum::{get16, internet_checksum, ipv4_header_fill, put16, update};
use super::{IcmpInner, Ipv4Meta, MacAddr, ETHERTYPE_IPV4, ETH_HDR_LEN, IPPROTO_IPIP, L4};
use super::{IPPROTO_TCP, IPPROTO_UDP};
use std::net::Ipv4Addr;

const IP_SRC: usize = ETH_HDR_LEN + 12;
const IP_DST: usize = ETH_HDR_LEN + 16;
const IP_CSUM: usize = ETH_HDR_LEN + 10;
const IP_TTL: usize = ETH_HDR_LEN + 8;

/// Set the Ethernet addresses (and the IPv4 EtherType) of a frame.
pub fn set_macs(frame: &mut [u8], dst: MacAddr, src: MacAddr) {
    frame[0..6].copy_from_slice(&dst.0);
    frame[6..12].copy_from_slice(&src.0);
    put16(frame, 12, ETHERTYPE_IPV4);
}

/// The packet's TTL ran out while the director forwarded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtlExpired;

/// Decrement the IPv4 TTL as IPVS does before it transmits (`decrement_ttl` in ip_vs_xmit.c).
pub fn decrement_ttl(frame: &mut [u8]) -> Result<(), TtlExpired> {
    let ttl = frame[IP_TTL];
    if ttl <= 1 {
        return Err(TtlExpired);
    }
    let old = [frame[IP_TTL], frame[IP_TTL + 1]];
    frame[IP_TTL] = ttl - 1;
    let new = [frame[IP_TTL], frame[IP_TTL + 1]];
    let c = update(get16(frame, IP_CSUM), &old, &new);
    put16(frame, IP_CSUM, c);
    Ok(())
}

/// Offset of the transport checksum field, if the packet has one we must keep right.
fn l4_csum_off(meta: &Ipv4Meta, frame: &[u8]) -> Option<usize> {
    let off = meta.l4_off();
    match meta.l4 {
        L4::Tcp { .. } => Some(off + 16),
        // A zero UDP checksum means "none" and must stay zero.
        L4::Udp { .. } if get16(frame, off + 6) != 0 => Some(off + 6),
        _ => None,
    }
}

fn fix_l4(frame: &mut [u8], meta: &Ipv4Meta, old: &[u8], new: &[u8]) {
    if let Some(off) = l4_csum_off(meta, frame) {
        let mut c = update(get16(frame, off), old, new);
        if c == 0 && matches!(meta.l4, L4::Udp { .. }) {
            c = 0xffff;
        }
        put16(frame, off, c);
    }
}

/// Replace one address and port of a TCP/UDP packet (`addr_off` is IP_SRC or IP_DST,
/// `port_off` 0 for the source port or 2 for the destination port).
fn rewrite(
    frame: &mut [u8],
    meta: &Ipv4Meta,
    addr_off: usize,
    port_off: usize,
    ip: Ipv4Addr,
    port: u16,
) {
    let old_ip: [u8; 4] = [
        frame[addr_off],
        frame[addr_off + 1],
        frame[addr_off + 2],
        frame[addr_off + 3],
    ];
    let new_ip = ip.octets();
    frame[addr_off..addr_off + 4].copy_from_slice(&new_ip);
    let c = update(get16(frame, IP_CSUM), &old_ip, &new_ip);
    put16(frame, IP_CSUM, c);
    // The pseudo-header covers the addresses, so the transport checksum moves with them.
    fix_l4(frame, meta, &old_ip, &new_ip);
    if matches!(meta.l4, L4::Tcp { .. } | L4::Udp { .. }) {
        let poff = meta.l4_off() + port_off;
        let old_p = [frame[poff], frame[poff + 1]];
        put16(frame, poff, port);
        let new_p = [frame[poff], frame[poff + 1]];
        fix_l4(frame, meta, &old_p, &new_p);
    }
}

/// NAT inbound: destination VIP:vport becomes RIP:rport.
pub fn rewrite_dst(frame: &mut [u8], meta: &Ipv4Meta, ip: Ipv4Addr, port: u16) {
    rewrite(frame, meta, IP_DST, 2, ip, port);
}

/// NAT outbound: source RIP:rport becomes VIP:vport.
pub fn rewrite_src(frame: &mut [u8], meta: &Ipv4Meta, ip: Ipv4Addr, port: u16) {
    rewrite(frame, meta, IP_SRC, 0, ip, port);
}

/// NAT an ICMP error that belongs to a connection, like `ip_vs_nat_icmp`: inbound
/// (`inbound = true`) the outer destination and the quoted source become RIP:rport;
/// outbound the outer source and the quoted destination become VIP:vport. The quoted
/// transport checksum is left alone (the kernel does too); the ICMP checksum is recomputed.
pub fn nat_icmp_inner(
    frame: &mut [u8],
    meta: &Ipv4Meta,
    inner: &IcmpInner,
    inbound: bool,
    ip: Ipv4Addr,
    port: u16,
) {
    let outer_off = if inbound { IP_DST } else { IP_SRC };
    let old: [u8; 4] = [
        frame[outer_off],
        frame[outer_off + 1],
        frame[outer_off + 2],
        frame[outer_off + 3],
    ];
    frame[outer_off..outer_off + 4].copy_from_slice(&ip.octets());
    let c = update(get16(frame, IP_CSUM), &old, &ip.octets());
    put16(frame, IP_CSUM, c);

    let inner_addr = inner.off + if inbound { 12 } else { 16 };
    frame[inner_addr..inner_addr + 4].copy_from_slice(&ip.octets());
    ipv4_header_fill(&mut frame[inner.off..inner.off + inner.ihl_len]);
    if inner.proto == IPPROTO_TCP || inner.proto == IPPROTO_UDP {
        let poff = inner.off + inner.ihl_len + if inbound { 0 } else { 2 };
        put16(frame, poff, port);
    }
    let icmp = meta.l4_off();
    let end = ETH_HDR_LEN + meta.total_len;
    put16(frame, icmp + 2, 0);
    let c = internet_checksum(&frame[icmp..end]);
    put16(frame, icmp + 2, c);
}

/// Wrap the IPv4 packet of `frame` in an outer IPv4 header (protocol 4) from `src` to `dst`,
/// as `ip_vs_tunnel_xmit` does: TOS, TTL and DF copied from the inner header. The Ethernet
/// addresses of the result are zero until [`set_macs`] fills them.
pub fn encap_ipip(frame: &[u8], meta: &Ipv4Meta, src: Ipv4Addr, dst: Ipv4Addr, id: u16) -> Vec<u8> {
    let inner = &frame[ETH_HDR_LEN..ETH_HDR_LEN + meta.total_len];
    let mut out = vec![0u8; ETH_HDR_LEN + 20 + inner.len()];
    put16(&mut out, 12, ETHERTYPE_IPV4);
    let total = 20 + inner.len();
    let ip = &mut out[ETH_HDR_LEN..ETH_HDR_LEN + 20];
    ip[0] = 0x45;
    ip[1] = meta.tos;
    put16(ip, 2, total as u16);
    put16(ip, 4, id);
    ip[6] = if meta.df { 0x40 } else { 0 };
    ip[8] = frame[IP_TTL];
    ip[9] = IPPROTO_IPIP;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    ipv4_header_fill(ip);
    out[ETH_HDR_LEN + 20..].copy_from_slice(inner);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{parse, Parsed};
    use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};

    fn tcp_frame() -> Vec<u8> {
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([198, 51, 100, 10], [192, 168, 1, 250], 64)
            .tcp(40000, 80, 1234, 64240)
            .syn();
        let mut out = Vec::new();
        b.write(&mut out, b"hello").unwrap();
        out
    }

    fn udp_frame() -> Vec<u8> {
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([192, 168, 1, 201], [198, 51, 100, 10], 64)
            .udp(53, 40000);
        let mut out = Vec::new();
        b.write(&mut out, b"answer!").unwrap();
        out
    }

    fn meta(f: &[u8]) -> Ipv4Meta {
        match parse(f).unwrap() {
            Parsed::Ipv4(m) => m,
            other => panic!("not ipv4: {other:?}"),
        }
    }

    /// Recompute every checksum with etherparse and compare with what the rewrite left.
    fn assert_checksums_valid(f: &[u8]) {
        let p = SlicedPacket::from_ethernet(f).unwrap();
        let Some(etherparse::NetSlice::Ipv4(ip)) = p.net else {
            panic!("no ipv4")
        };
        let h = ip.header().to_header();
        assert_eq!(h.calc_header_checksum(), h.header_checksum, "ip checksum");
        match p.transport {
            Some(TransportSlice::Tcp(t)) => {
                let want = t.to_header().calc_checksum_ipv4(&h, t.payload()).unwrap();
                assert_eq!(want, t.checksum(), "tcp checksum");
            }
            Some(TransportSlice::Udp(u)) => {
                let want = u.to_header().calc_checksum_ipv4(&h, u.payload()).unwrap();
                assert_eq!(want, u.checksum(), "udp checksum");
            }
            other => panic!("unexpected transport {other:?}"),
        }
    }

    #[test]
    fn dnat_and_snat_keep_checksums_right() {
        let mut f = tcp_frame();
        let m = meta(&f);
        rewrite_dst(&mut f, &m, Ipv4Addr::new(192, 168, 1, 201), 8080);
        decrement_ttl(&mut f).unwrap();
        assert_checksums_valid(&f);
        let m2 = meta(&f);
        assert_eq!(m2.dst, Ipv4Addr::new(192, 168, 1, 201));
        assert_eq!(m2.ttl, 63);
        assert!(matches!(
            m2.l4,
            L4::Tcp {
                dport: 8080,
                sport: 40000,
                syn: true,
                ..
            }
        ));

        let mut u = udp_frame();
        let m = meta(&u);
        rewrite_src(&mut u, &m, Ipv4Addr::new(192, 168, 1, 250), 5353);
        assert_checksums_valid(&u);
        assert!(matches!(
            meta(&u).l4,
            L4::Udp {
                sport: 5353,
                dport: 40000
            }
        ));
    }

    #[test]
    fn zero_udp_checksum_stays_zero() {
        let mut u = udp_frame();
        let off = ETH_HDR_LEN + 20 + 6;
        u[off] = 0;
        u[off + 1] = 0;
        let m = meta(&u);
        rewrite_src(&mut u, &m, Ipv4Addr::new(192, 168, 1, 250), 53);
        assert_eq!(get16(&u, off), 0);
    }

    #[test]
    fn ttl_one_expires() {
        let mut f = tcp_frame();
        f[IP_TTL] = 1;
        assert_eq!(decrement_ttl(&mut f), Err(TtlExpired));
    }

    #[test]
    fn ipip_wraps_the_whole_packet() {
        let f = tcp_frame();
        let m = meta(&f);
        let out = encap_ipip(
            &f,
            &m,
            Ipv4Addr::new(192, 168, 1, 202),
            Ipv4Addr::new(192, 168, 1, 201),
            7,
        );
        let outer = meta(&out);
        assert_eq!(outer.l4, L4::Other(IPPROTO_IPIP));
        assert_eq!(outer.total_len, 20 + m.total_len);
        assert!(outer.df, "DF copied from the inner header");
        assert_eq!(internet_checksum(&out[ETH_HDR_LEN..ETH_HDR_LEN + 20]), 0);
        assert_eq!(&out[ETH_HDR_LEN + 20..], &f[ETH_HDR_LEN..]);
    }
}
