//! In-place rewrites of an Ethernet/IPv4 frame with incremental checksum updates.
//!
//! Every rewrite goes through [`Ipv4Frame`], a view that checks once, in its constructor,
//! that the frame really holds every header its [`Ipv4Meta`] describes (smoltcp's
//! `new_checked` / `check_len`). After that the offsets it writes at are inside the frame by
//! construction, so a short or odd frame is refused with an error instead of a panic.

use super::checksum::{get16, internet_checksum, ipv4_header_fill, put16, update};
use super::{IcmpInner, Ipv4Meta, MacAddr, WireError, ETHERTYPE_IPV4, ETH_HDR_LEN, IPPROTO_IPIP};
use super::{IPPROTO_TCP, IPPROTO_UDP, L4};
use std::net::Ipv4Addr;

const IP_SRC: usize = ETH_HDR_LEN + 12;
const IP_DST: usize = ETH_HDR_LEN + 16;
const IP_CSUM: usize = ETH_HDR_LEN + 10;
const IP_TTL: usize = ETH_HDR_LEN + 8;
/// The fixed part of an IPv4 header.
const IPV4_MIN_HDR: usize = 20;
/// Source and destination ports: what an ICMP error must quote of TCP or UDP.
const PORTS_LEN: usize = 4;

/// Set the Ethernet addresses (and the IPv4 EtherType) of a frame. A buffer shorter than an
/// Ethernet header has nothing to set and is left alone.
pub fn set_macs(frame: &mut [u8], dst: MacAddr, src: MacAddr) {
    let Some(eth) = frame.get_mut(..ETH_HDR_LEN) else {
        return;
    };
    eth[0..6].copy_from_slice(&dst.0);
    eth[6..12].copy_from_slice(&src.0);
    put16(eth, 12, ETHERTYPE_IPV4);
}

/// The packet's TTL ran out while the director forwarded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtlExpired;

/// An Ethernet/IPv4 frame checked against the [`Ipv4Meta`] that [`super::parse`] made of it.
#[derive(Debug)]
pub struct Ipv4Frame<'m, T> {
    buffer: T,
    meta: &'m Ipv4Meta,
}

fn short(what: &str) -> WireError {
    WireError::Truncated(format!("{what} is not all in the frame"))
}

/// The quoted header of an ICMP error: its IHL byte agrees with the parse and its ports are in.
fn check_inner(frame: &[u8], meta: &Ipv4Meta, inner: &IcmpInner) -> Result<(), WireError> {
    let end = ETH_HDR_LEN + meta.total_len;
    if inner.off < meta.l4_off() + 8 || inner.ihl_len < IPV4_MIN_HDR {
        return Err(WireError::Malformed(
            "quoted IPv4 header out of place".into(),
        ));
    }
    let ports_end = inner.off + inner.ihl_len + PORTS_LEN;
    if ports_end > end {
        return Err(short("the quoted header"));
    }
    if usize::from(frame[inner.off] & 0x0f) * 4 != inner.ihl_len {
        return Err(WireError::Malformed(
            "quoted IHL differs from the parse".into(),
        ));
    }
    Ok(())
}

impl<'m, T: AsRef<[u8]>> Ipv4Frame<'m, T> {
    /// Wrap without checking; accessors may then panic on a frame `meta` does not describe.
    pub fn new_unchecked(buffer: T, meta: &'m Ipv4Meta) -> Self {
        Ipv4Frame { buffer, meta }
    }

    /// Wrap after [`Ipv4Frame::check_len`] succeeds.
    pub fn new_checked(buffer: T, meta: &'m Ipv4Meta) -> Result<Self, WireError> {
        let f = Self::new_unchecked(buffer, meta);
        f.check_len()?;
        Ok(f)
    }

    /// Whether the buffer holds every byte the meta points at: the IPv4 header (with the IHL
    /// the parse saw), the whole packet up to its total length, the transport header the
    /// rewrites touch and, for an ICMP error, the quoted header and ports.
    pub fn check_len(&self) -> Result<(), WireError> {
        let (frame, m) = (self.buffer.as_ref(), self.meta);
        let end = ETH_HDR_LEN
            .checked_add(m.total_len)
            .ok_or_else(|| short("the IPv4 packet"))?;
        if end > frame.len() {
            return Err(short("the IPv4 packet"));
        }
        if m.ihl_len < IPV4_MIN_HDR || m.ihl_len > m.total_len {
            return Err(WireError::Malformed(format!(
                "IPv4 header length {}",
                m.ihl_len
            )));
        }
        if usize::from(frame[ETH_HDR_LEN] & 0x0f) * 4 != m.ihl_len {
            return Err(WireError::Malformed("IHL differs from the parse".into()));
        }
        let l4_len = match m.l4 {
            L4::Tcp { .. } => 20,
            L4::Udp { .. } | L4::Icmp { .. } | L4::IcmpError { .. } => 8,
            L4::Other(_) => 0,
        };
        if m.l4_off() + l4_len > end {
            return Err(short("the transport header"));
        }
        if let L4::IcmpError { ref inner, .. } = m.l4 {
            check_inner(frame, m, inner)?;
        }
        Ok(())
    }

    /// What the frame was checked against.
    pub fn meta(&self) -> &Ipv4Meta {
        self.meta
    }

    /// The IPv4 packet without the Ethernet header or padding.
    pub fn ip_packet(&self) -> &[u8] {
        &self.buffer.as_ref()[ETH_HDR_LEN..ETH_HDR_LEN + self.meta.total_len]
    }

    /// Time to live as the frame holds it now.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[IP_TTL]
    }

    /// The buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Offset of the transport checksum field, if the packet has one we must keep right.
    fn l4_csum_off(&self) -> Option<usize> {
        let off = self.meta.l4_off();
        match self.meta.l4 {
            L4::Tcp { .. } => Some(off + 16),
            // A zero UDP checksum means "none" and must stay zero.
            L4::Udp { .. } if get16(self.buffer.as_ref(), off + 6) != 0 => Some(off + 6),
            _ => None,
        }
    }

    /// Wrap the IPv4 packet in an outer IPv4 header (protocol 4) from `src` to `dst`, as
    /// `ip_vs_tunnel_xmit` does: TOS, TTL and DF copied from the inner header. The Ethernet
    /// addresses of the result are zero until [`set_macs`] fills them.
    pub fn encap_ipip(&self, src: Ipv4Addr, dst: Ipv4Addr, id: u16) -> Vec<u8> {
        let inner = self.ip_packet();
        let total = IPV4_MIN_HDR + inner.len();
        let mut out = vec![0u8; ETH_HDR_LEN + total];
        put16(&mut out, 12, ETHERTYPE_IPV4);
        let ip = &mut out[ETH_HDR_LEN..ETH_HDR_LEN + IPV4_MIN_HDR];
        ip[0] = 0x45;
        ip[1] = self.meta.tos;
        put16(ip, 2, total as u16);
        put16(ip, 4, id);
        ip[6] = if self.meta.df { 0x40 } else { 0 };
        ip[8] = self.ttl();
        ip[9] = IPPROTO_IPIP;
        ip[12..16].copy_from_slice(&src.octets());
        ip[16..20].copy_from_slice(&dst.octets());
        ipv4_header_fill(ip);
        out[ETH_HDR_LEN + IPV4_MIN_HDR..].copy_from_slice(inner);
        out
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Frame<'_, T> {
    /// Decrement the IPv4 TTL as IPVS does before it transmits (see [`decrement_ttl`]).
    pub fn decrement_ttl(&mut self) -> Result<(), TtlExpired> {
        decrement_ttl(self.buffer.as_mut())
    }

    fn fix_l4(&mut self, old: &[u8], new: &[u8]) {
        if let Some(off) = self.l4_csum_off() {
            let udp = matches!(self.meta.l4, L4::Udp { .. });
            let frame = self.buffer.as_mut();
            let mut c = update(get16(frame, off), old, new);
            if c == 0 && udp {
                c = 0xffff;
            }
            put16(frame, off, c);
        }
    }

    /// Replace the 4 address bytes at `off` in the IPv4 header, patching its checksum; the
    /// old bytes come back for the pseudo-header.
    fn set_ip_addr(&mut self, off: usize, ip: Ipv4Addr) -> [u8; 4] {
        let frame = self.buffer.as_mut();
        let mut old = [0u8; 4];
        old.copy_from_slice(&frame[off..off + 4]);
        let new = ip.octets();
        frame[off..off + 4].copy_from_slice(&new);
        let c = update(get16(frame, IP_CSUM), &old, &new);
        put16(frame, IP_CSUM, c);
        old
    }

    /// Replace one address and port of a TCP/UDP packet (`addr_off` is IP_SRC or IP_DST,
    /// `port_off` 0 for the source port or 2 for the destination port).
    fn rewrite(&mut self, addr_off: usize, port_off: usize, ip: Ipv4Addr, port: u16) {
        let old_ip = self.set_ip_addr(addr_off, ip);
        // The pseudo-header covers the addresses, so the transport checksum moves with them.
        self.fix_l4(&old_ip, &ip.octets());
        if matches!(self.meta.l4, L4::Tcp { .. } | L4::Udp { .. }) {
            let poff = self.meta.l4_off() + port_off;
            let frame = self.buffer.as_mut();
            let old_p = [frame[poff], frame[poff + 1]];
            put16(frame, poff, port);
            self.fix_l4(&old_p, &port.to_be_bytes());
        }
    }

    /// NAT inbound: destination VIP:vport becomes RIP:rport.
    pub fn rewrite_dst(&mut self, ip: Ipv4Addr, port: u16) {
        self.rewrite(IP_DST, 2, ip, port);
    }

    /// NAT outbound: source RIP:rport becomes VIP:vport.
    pub fn rewrite_src(&mut self, ip: Ipv4Addr, port: u16) {
        self.rewrite(IP_SRC, 0, ip, port);
    }

    /// NAT an ICMP error that belongs to a connection, like `ip_vs_nat_icmp`: inbound
    /// (`inbound = true`) the outer destination and the quoted source become RIP:rport;
    /// outbound the outer source and the quoted destination become VIP:vport. The quoted
    /// transport checksum is left alone (the kernel does too); the ICMP checksum is
    /// recomputed. Anything but an ICMP error is refused.
    pub fn nat_icmp(&mut self, inbound: bool, ip: Ipv4Addr, port: u16) -> Result<(), WireError> {
        let L4::IcmpError { ref inner, .. } = self.meta.l4 else {
            return Err(WireError::Malformed("not an ICMP error".into()));
        };
        let (off, ihl_len, proto) = (inner.off, inner.ihl_len, inner.proto);
        self.set_ip_addr(if inbound { IP_DST } else { IP_SRC }, ip);
        let icmp = self.meta.l4_off();
        let end = ETH_HDR_LEN + self.meta.total_len;
        let frame = self.buffer.as_mut();
        let inner_addr = off + if inbound { 12 } else { 16 };
        frame[inner_addr..inner_addr + 4].copy_from_slice(&ip.octets());
        ipv4_header_fill(&mut frame[off..off + ihl_len]);
        if proto == IPPROTO_TCP || proto == IPPROTO_UDP {
            let poff = off + ihl_len + if inbound { 0 } else { 2 };
            put16(frame, poff, port);
        }
        put16(frame, icmp + 2, 0);
        let c = internet_checksum(&frame[icmp..end]);
        put16(frame, icmp + 2, c);
        Ok(())
    }
}

/// Decrement the IPv4 TTL as IPVS does before it transmits (`decrement_ttl` in ip_vs_xmit.c),
/// patching the header checksum. A buffer too short for an IPv4 header is left alone.
pub fn decrement_ttl(frame: &mut [u8]) -> Result<(), TtlExpired> {
    let Some(hdr) = frame.get_mut(ETH_HDR_LEN..ETH_HDR_LEN + IPV4_MIN_HDR) else {
        return Ok(());
    };
    let (ttl, csum) = (IP_TTL - ETH_HDR_LEN, IP_CSUM - ETH_HDR_LEN);
    if hdr[ttl] <= 1 {
        return Err(TtlExpired);
    }
    let old = [hdr[ttl], hdr[ttl + 1]];
    hdr[ttl] -= 1;
    let new = [hdr[ttl], hdr[ttl + 1]];
    let c = update(get16(hdr, csum), &old, &new);
    put16(hdr, csum, c);
    Ok(())
}

/// NAT inbound through [`Ipv4Frame::rewrite_dst`]; a frame that fails
/// [`Ipv4Frame::check_len`] is left unchanged (check it first to learn why).
pub fn rewrite_dst(frame: &mut [u8], meta: &Ipv4Meta, ip: Ipv4Addr, port: u16) {
    if let Ok(mut f) = Ipv4Frame::new_checked(frame, meta) {
        f.rewrite_dst(ip, port);
    }
}

/// NAT outbound through [`Ipv4Frame::rewrite_src`]; a frame that fails
/// [`Ipv4Frame::check_len`] is left unchanged (check it first to learn why).
pub fn rewrite_src(frame: &mut [u8], meta: &Ipv4Meta, ip: Ipv4Addr, port: u16) {
    if let Ok(mut f) = Ipv4Frame::new_checked(frame, meta) {
        f.rewrite_src(ip, port);
    }
}

/// [`Ipv4Frame::nat_icmp`] for the ICMP error `meta` describes, which must quote `inner`;
/// a frame that fails the check, or another quote, is left unchanged.
pub fn nat_icmp_inner(
    frame: &mut [u8],
    meta: &Ipv4Meta,
    inner: &IcmpInner,
    inbound: bool,
    ip: Ipv4Addr,
    port: u16,
) {
    let quoted = matches!(&meta.l4, L4::IcmpError { inner: i, .. } if i == inner);
    if let (true, Ok(mut f)) = (quoted, Ipv4Frame::new_checked(frame, meta)) {
        // The view has the ICMP error, so nat_icmp cannot refuse it.
        let _ = f.nat_icmp(inbound, ip, port);
    }
}

/// [`Ipv4Frame::encap_ipip`] of a checked frame; empty when the frame fails
/// [`Ipv4Frame::check_len`], since there is no packet to wrap.
pub fn encap_ipip(frame: &[u8], meta: &Ipv4Meta, src: Ipv4Addr, dst: Ipv4Addr, id: u16) -> Vec<u8> {
    Ipv4Frame::new_checked(frame, meta)
        .map(|f| f.encap_ipip(src, dst, id))
        .unwrap_or_default()
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

    /// An ICMP port unreachable from the client about a NAT reply VIP:80 -> CIP:40000,
    /// quoting the whole offending packet.
    fn icmp_error_frame() -> Vec<u8> {
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([192, 168, 1, 250], [198, 51, 100, 10], 64)
            .tcp(80, 40000, 1, 64240)
            .ack(1);
        let mut reply = Vec::new();
        b.write(&mut reply, b"hi").unwrap();
        let offending = &reply[ETH_HDR_LEN..];
        let mut f = crate::wire::icmp_error(
            crate::wire::IcmpError::PortUnreachable,
            offending,
            Ipv4Addr::new(198, 51, 100, 10),
            9,
        );
        set_macs(
            &mut f,
            MacAddr([2, 0, 0, 0, 0, 3]),
            MacAddr([2, 0, 0, 0, 0, 4]),
        );
        f
    }

    /// Every rewrite the director may apply, through the free functions and the view.
    fn rewrite_all(frame: &[u8], meta: &Ipv4Meta) {
        let ip = Ipv4Addr::new(192, 168, 1, 201);
        let mut f = frame.to_vec();
        rewrite_dst(&mut f, meta, ip, 8080);
        rewrite_src(&mut f, meta, ip, 8080);
        if let L4::IcmpError { ref inner, .. } = meta.l4 {
            nat_icmp_inner(&mut f, meta, inner, true, ip, 8080);
            nat_icmp_inner(&mut f, meta, inner, false, ip, 8080);
        }
        let _ = decrement_ttl(&mut f);
        let _ = encap_ipip(&f, meta, ip, ip, 1);
        set_macs(&mut f, MacAddr::ZERO, MacAddr::BROADCAST);
        if let Ok(mut v) = Ipv4Frame::new_checked(&mut f[..], meta) {
            v.rewrite_dst(ip, 1);
            v.rewrite_src(ip, 2);
            let _ = v.nat_icmp(true, ip, 3);
            let _ = v.decrement_ttl();
            let _ = v.encap_ipip(ip, ip, 2);
        }
    }

    /// NAT (TCP, UDP), TUN (IPIP) and ICMP error frames the rewrites see.
    fn valid_frames() -> Vec<(&'static str, Vec<u8>)> {
        let tcp = tcp_frame();
        let tun = encap_ipip(
            &tcp,
            &meta(&tcp),
            Ipv4Addr::new(192, 168, 1, 202),
            Ipv4Addr::new(192, 168, 1, 201),
            7,
        );
        vec![
            ("nat tcp", tcp),
            ("nat udp", udp_frame()),
            ("tun", tun),
            ("icmp error", icmp_error_frame()),
        ]
    }

    #[test]
    fn every_prefix_of_a_valid_frame_is_refused_or_rewritten_without_panic() {
        for (name, full) in valid_frames() {
            let full_meta = meta(&full);
            assert!(
                Ipv4Frame::new_checked(&full[..], &full_meta).is_ok(),
                "{name}"
            );
            for len in 0..full.len() {
                let prefix = &full[..len];
                // The prefix's own parse, if any, is safe to rewrite by.
                if let Ok(Parsed::Ipv4(m)) = parse(prefix) {
                    rewrite_all(prefix, &m);
                }
                // The whole frame's meta on a prefix: the contract with parse is broken, and
                // the view must say so instead of indexing past the end.
                let ipv4_end = ETH_HDR_LEN + full_meta.total_len;
                let checked = Ipv4Frame::new_checked(prefix, &full_meta);
                assert_eq!(checked.is_err(), len < ipv4_end, "{name}: prefix {len}");
                rewrite_all(prefix, &full_meta);
                let mut untouched = prefix.to_vec();
                rewrite_dst(&mut untouched, &full_meta, Ipv4Addr::LOCALHOST, 1);
                if len < ipv4_end {
                    assert_eq!(untouched, prefix, "{name}: prefix {len} was written to");
                }
            }
        }
    }

    #[test]
    fn odd_frames_are_refused() {
        let f = icmp_error_frame();
        let m = meta(&f);
        let L4::IcmpError { ref inner, .. } = m.l4 else {
            panic!("not an ICMP error: {m:?}")
        };
        // An IHL byte that disagrees with the parse, outer then quoted.
        for off in [ETH_HDR_LEN, inner.off] {
            let mut odd = f.clone();
            odd[off] = 0x4f;
            assert!(
                Ipv4Frame::new_checked(&odd[..], &m).is_err(),
                "IHL at {off}"
            );
            rewrite_all(&odd, &m);
        }
        // A meta whose offsets point past the packet.
        let mut far = m.clone();
        far.total_len = usize::MAX - 1;
        assert!(Ipv4Frame::new_checked(&f[..], &far).is_err());
        let mut tiny = m.clone();
        tiny.ihl_len = 4;
        assert!(Ipv4Frame::new_checked(&f[..], &tiny).is_err());
        let mut quoted_far = m.clone();
        if let L4::IcmpError { ref mut inner, .. } = quoted_far.l4 {
            inner.off = f.len();
        }
        assert!(Ipv4Frame::new_checked(&f[..], &quoted_far).is_err());
        rewrite_all(&f, &quoted_far);
        // A UDP meta on a TCP frame cut after 8 transport bytes.
        let t = tcp_frame();
        let cut = &t[..ETH_HDR_LEN + 20 + 8];
        let mut udp_meta = meta(&t);
        udp_meta.total_len = 28;
        udp_meta.l4 = L4::Tcp {
            sport: 1,
            dport: 2,
            syn: true,
            ack: false,
            fin: false,
            rst: false,
        };
        assert!(Ipv4Frame::new_checked(cut, &udp_meta).is_err());
        rewrite_all(cut, &udp_meta);
    }

    #[test]
    fn nat_icmp_through_the_view_matches_the_free_function() {
        let f = icmp_error_frame();
        let m = meta(&f);
        let L4::IcmpError { ref inner, .. } = m.l4 else {
            panic!("not an ICMP error")
        };
        let ip = Ipv4Addr::new(192, 168, 1, 201);
        let mut a = f.clone();
        nat_icmp_inner(&mut a, &m, inner, true, ip, 8080);
        let mut b = f.clone();
        Ipv4Frame::new_checked(&mut b[..], &m)
            .unwrap()
            .nat_icmp(true, ip, 8080)
            .unwrap();
        assert_eq!(a, b);
        assert_ne!(a, f, "the rewrite happened");
        let Parsed::Ipv4(after) = parse(&a).unwrap() else {
            panic!("not ipv4")
        };
        assert_eq!(after.dst, ip);
        let mut c = tcp_frame();
        let tm = meta(&c);
        let view = Ipv4Frame::new_checked(&mut c[..], &tm);
        assert!(
            view.unwrap().nat_icmp(true, ip, 1).is_err(),
            "not an ICMP error"
        );
    }
}
