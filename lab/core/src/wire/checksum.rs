//! Internet checksum helpers: full sums (via etherparse) and RFC 1624 incremental updates.

use etherparse::checksum::u32_16bit_word;

/// The one's-complement checksum of `data` (as stored in IPv4/ICMP headers).
pub fn internet_checksum(data: &[u8]) -> u16 {
    // etherparse sums native-endian words, so its result's native bytes are the wire bytes.
    let folded = u32_16bit_word::ones_complement(u32_16bit_word::add_slice(0, data));
    u16::from_be_bytes(folded.to_ne_bytes())
}

/// Update checksum `check` (as stored, big-endian value) after 16-bit words `old` became `new`:
/// HC' = ~(~HC + ~m + m') from RFC 1624 eqn. 3, folded over all replaced words.
pub fn update(check: u16, old: &[u8], new: &[u8]) -> u16 {
    debug_assert_eq!(old.len(), new.len());
    debug_assert_eq!(old.len() % 2, 0);
    let mut sum = u32::from(!check);
    for (o, n) in old.chunks_exact(2).zip(new.chunks_exact(2)) {
        sum += u32::from(!u16::from_be_bytes([o[0], o[1]]));
        sum += u32::from(u16::from_be_bytes([n[0], n[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The checksum of `data` (a transport or ICMPv6 message) behind the IPv6 pseudo-header
/// of RFC 8200 8.1: both addresses, the upper-layer length and the next-header value. Over a
/// message whose checksum field is filled in it is 0 when the checksum is right.
pub fn ipv6_pseudo_checksum(
    src: std::net::Ipv6Addr,
    dst: std::net::Ipv6Addr,
    next: u8,
    data: &[u8],
) -> u16 {
    let mut buf = Vec::with_capacity(40 + data.len());
    buf.extend_from_slice(&src.octets());
    buf.extend_from_slice(&dst.octets());
    buf.extend_from_slice(&(data.len() as u32).to_be_bytes());
    buf.extend_from_slice(&[0, 0, 0, next]);
    buf.extend_from_slice(data);
    internet_checksum(&buf)
}

/// Read the big-endian u16 at `off`.
pub(crate) fn get16(buf: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([buf[off], buf[off + 1]])
}

/// Write a big-endian u16 at `off`.
pub(crate) fn put16(buf: &mut [u8], off: usize, v: u16) {
    buf[off..off + 2].copy_from_slice(&v.to_be_bytes());
}

/// Recompute the IPv4 header checksum of the header at `buf[..ihl*4]` from scratch.
pub fn ipv4_header_fill(buf: &mut [u8]) {
    let hlen = usize::from(buf[0] & 0x0f) * 4;
    buf[10] = 0;
    buf[11] = 0;
    let c = internet_checksum(&buf[..hlen]);
    put16(buf, 10, c);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incremental_matches_full() {
        let mut hdr = [
            0x45u8, 0, 0, 60, 0x1c, 0x46, 0x40, 0, 64, 6, 0, 0, 198, 51, 100, 10, 192, 168, 1, 250,
        ];
        ipv4_header_fill(&mut hdr);
        let before = get16(&hdr, 10);
        let old = [192, 168, 1, 250];
        let new = [192, 168, 1, 201];
        hdr[16..20].copy_from_slice(&new);
        let inc = update(before, &old, &new);
        ipv4_header_fill(&mut hdr);
        assert_eq!(inc, get16(&hdr, 10));
        assert_eq!(internet_checksum(&hdr), 0);
    }
}
