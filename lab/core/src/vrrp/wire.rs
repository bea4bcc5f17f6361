//! VRRP adverts on the wire: the payload (RFC 3768 5.1 / RFC 5798 5.1), its Ethernet/IPv4
//! framing and keepalived's gratuitous ARP.

use super::{VrrpError, VrrpVersion, IPPROTO_VRRP, VRRP_GROUP};
use crate::wire::checksum::{internet_checksum, ipv4_header_fill};
use crate::wire::{arp_frame, parse, MacAddr, Parsed, ETHERTYPE_IPV4, ETH_HDR_LEN, L4};
use etherparse::{ArpEthIpv4Packet, ArpOperation};
use std::net::Ipv4Addr;
use std::time::Duration;

/// The Ethernet address of [`VRRP_GROUP`] (RFC 1112 mapping).
pub const VRRP_GROUP_MAC: MacAddr = MacAddr([0x01, 0x00, 0x5e, 0x00, 0x00, 0x12]);

/// Fixed VRRP header: version/type, vrid, priority, count, (auth type, interval | interval), checksum.
const HDR_LEN: usize = 8;
/// v2's trailing authentication data (RFC 3768 5.3.10), zero with auth type 0.
const V2_AUTH_LEN: usize = 8;
/// The only packet type VRRP defines.
const TYPE_ADVERT: u8 = 1;
/// RFC 5798 7.1 / keepalived's `VRRP_IP_TTL`.
const VRRP_TTL: u8 = 255;
/// keepalived's `vrrp_build_ip4`: TOS "internetwork control".
const VRRP_TOS: u8 = 0xc0;
/// v3's 12-bit interval field, in centiseconds.
const V3_MAX_CS: u64 = 0x0fff;

/// One VRRP advertisement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advert {
    /// Protocol version.
    pub version: VrrpVersion,
    /// Virtual router id.
    pub vrid: u8,
    /// Sender's priority; 0 means the master is giving up.
    pub priority: u8,
    /// v2: whole seconds; v3: centiseconds (finer parts are dropped on encode).
    pub advert_int: Duration,
    /// The virtual addresses (at most 255 are encoded).
    pub addrs: Vec<Ipv4Addr>,
}

impl Advert {
    /// The VRRP payload (IP protocol 112) from `src` to [`VRRP_GROUP`], checksum filled in
    /// as keepalived's `vrrp_build_vrrp_v2` / `vrrp_build_vrrp_v3` do. Auth type is 0 (none).
    pub fn encode(&self, src: Ipv4Addr) -> Vec<u8> {
        let addrs = &self.addrs[..self.addrs.len().min(255)];
        let len = payload_len(self.version, addrs.len());
        let mut out = Vec::with_capacity(len);
        out.push((self.version.number() << 4) | TYPE_ADVERT);
        out.push(self.vrid);
        out.push(self.priority);
        out.push(addrs.len() as u8);
        match self.version {
            VrrpVersion::V2 => {
                out.push(0);
                out.push(self.advert_int.as_secs().min(255) as u8);
            }
            VrrpVersion::V3 => {
                let cs = (self.advert_int.as_millis() / 10).min(u128::from(V3_MAX_CS)) as u16;
                out.extend_from_slice(&cs.to_be_bytes());
            }
        }
        out.extend_from_slice(&[0, 0]);
        for a in addrs {
            out.extend_from_slice(&a.octets());
        }
        if self.version == VrrpVersion::V2 {
            out.extend_from_slice(&[0; V2_AUTH_LEN]);
        }
        let c = checksum(self.version, &out, src, VRRP_GROUP);
        out[6..8].copy_from_slice(&c.to_be_bytes());
        out
    }

    /// Parse and check a VRRP payload received from `src` to `dst`, as keepalived's
    /// `vrrp_check_packet` does: version, type, length against the address count, v2 auth
    /// type, checksum (v3: over the IPv4 pseudo-header). The length must be exact: the IP
    /// total length already cut off any Ethernet padding.
    pub fn decode(payload: &[u8], src: Ipv4Addr, dst: Ipv4Addr) -> Result<Advert, VrrpError> {
        if payload.len() < HDR_LEN {
            return Err(VrrpError::Truncated(payload.len()));
        }
        let version = match payload[0] >> 4 {
            2 => VrrpVersion::V2,
            3 => VrrpVersion::V3,
            v => return Err(VrrpError::BadVersion(v)),
        };
        let kind = payload[0] & 0x0f;
        if kind != TYPE_ADVERT {
            return Err(VrrpError::BadType(kind));
        }
        let count = payload[3];
        let expected = payload_len(version, usize::from(count));
        if payload.len() != expected {
            return Err(VrrpError::BadLength {
                got: payload.len(),
                expected,
                count,
            });
        }
        let advert_int = match version {
            VrrpVersion::V2 => {
                if payload[4] != 0 {
                    return Err(VrrpError::BadAuthType(payload[4]));
                }
                Duration::from_secs(u64::from(payload[5]))
            }
            VrrpVersion::V3 => {
                let cs = u16::from_be_bytes([payload[4], payload[5]]) & V3_MAX_CS as u16;
                Duration::from_millis(u64::from(cs) * 10)
            }
        };
        if checksum(version, payload, src, dst) != 0 {
            return Err(VrrpError::BadChecksum(u16::from_be_bytes([
                payload[6], payload[7],
            ])));
        }
        if advert_int.is_zero() {
            return Err(VrrpError::ZeroInterval);
        }
        let addrs = payload[HDR_LEN..HDR_LEN + 4 * usize::from(count)]
            .chunks_exact(4)
            .map(|a| Ipv4Addr::new(a[0], a[1], a[2], a[3]))
            .collect();
        Ok(Advert {
            version,
            vrid: payload[1],
            priority: payload[2],
            advert_int,
            addrs,
        })
    }
}

fn payload_len(version: VrrpVersion, count: usize) -> usize {
    let auth = match version {
        VrrpVersion::V2 => V2_AUTH_LEN,
        VrrpVersion::V3 => 0,
    };
    HDR_LEN + 4 * count + auth
}

/// The one's-complement sum over `payload` (v3: behind the IPv4 pseudo-header of RFC 5798
/// 5.2.8): the value to store when the checksum field is zero, 0 when a filled one checks out.
fn checksum(version: VrrpVersion, payload: &[u8], src: Ipv4Addr, dst: Ipv4Addr) -> u16 {
    match version {
        VrrpVersion::V2 => internet_checksum(payload),
        VrrpVersion::V3 => {
            let mut buf = Vec::with_capacity(12 + payload.len());
            buf.extend_from_slice(&src.octets());
            buf.extend_from_slice(&dst.octets());
            buf.push(0);
            buf.push(IPPROTO_VRRP);
            // A payload is at most 8 + 4 * 255 bytes.
            buf.extend_from_slice(&(payload.len() as u16).to_be_bytes());
            buf.extend_from_slice(payload);
            internet_checksum(&buf)
        }
    }
}

/// The Ethernet frame keepalived sends for `advert` (`vrrp_build_ip4` + `vrrp_build_vrrp`):
/// to 01:00:5e:00:00:12 / 224.0.0.18, TOS 0xc0, TTL 255, id 0, no DF, no options.
pub fn advert_frame(src_mac: MacAddr, src_ip: Ipv4Addr, advert: &Advert) -> Vec<u8> {
    let payload = advert.encode(src_ip);
    let total = 20 + payload.len();
    let mut out = Vec::with_capacity(ETH_HDR_LEN + total);
    out.extend_from_slice(&VRRP_GROUP_MAC.0);
    out.extend_from_slice(&src_mac.0);
    out.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[1] = VRRP_TOS;
    ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    ip[8] = VRRP_TTL;
    ip[9] = IPPROTO_VRRP;
    ip[12..16].copy_from_slice(&src_ip.octets());
    ip[16..20].copy_from_slice(&VRRP_GROUP.octets());
    ipv4_header_fill(&mut ip);
    out.extend_from_slice(&ip);
    out.extend_from_slice(&payload);
    out
}

/// The advert in `frame` and its IPv4 source. `None` when the frame is no IPv4 packet of
/// protocol 112 (or its IPv4 header is too broken to tell); `Some(Err)` when it is VRRP but
/// fails a check: TTL not 255, a fragment, a bad IPv4 header checksum, or [`Advert::decode`].
pub fn parse_advert_frame(frame: &[u8]) -> Option<Result<(Ipv4Addr, Advert), VrrpError>> {
    let Ok(Parsed::Ipv4(meta)) = parse(frame) else {
        return None;
    };
    if meta.l4 != L4::Other(IPPROTO_VRRP) {
        return None;
    }
    let ip = &frame[ETH_HDR_LEN..ETH_HDR_LEN + meta.ihl_len];
    let checked = if meta.fragment {
        Err(VrrpError::Fragment)
    } else if internet_checksum(ip) != 0 {
        Err(VrrpError::BadIpChecksum)
    } else if meta.ttl != VRRP_TTL {
        Err(VrrpError::BadTtl(meta.ttl))
    } else {
        let payload = &frame[meta.l4_off()..ETH_HDR_LEN + meta.total_len];
        Advert::decode(payload, meta.src, meta.dst).map(|a| (meta.src, a))
    };
    Some(checked)
}

/// A gratuitous ARP for `vip` as keepalived's `send_gratuitous_arp_immediate` builds it:
/// broadcast, an ARP request with sender = target = `vip`, sender MAC `mac` and the
/// broadcast address as target MAC (not the zero MAC of an ordinary request).
pub fn garp_frame(mac: MacAddr, vip: Ipv4Addr) -> Vec<u8> {
    let arp = ArpEthIpv4Packet {
        operation: ArpOperation::REQUEST,
        sender_mac: mac.0,
        sender_ipv4: vip.octets(),
        target_mac: MacAddr::BROADCAST.0,
        target_ipv4: vip.octets(),
    };
    arp_frame(MacAddr::BROADCAST, mac, &arp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v3() -> Advert {
        Advert {
            version: VrrpVersion::V3,
            vrid: 51,
            priority: 100,
            advert_int: Duration::from_millis(100),
            addrs: vec![Ipv4Addr::new(192, 168, 1, 250)],
        }
    }

    #[test]
    fn v3_checksum_covers_the_pseudo_header() {
        let src = Ipv4Addr::new(192, 168, 1, 201);
        let p = v3().encode(src);
        assert_eq!(Advert::decode(&p, src, VRRP_GROUP), Ok(v3()));
        let other = Ipv4Addr::new(192, 168, 1, 202);
        assert!(matches!(
            Advert::decode(&p, other, VRRP_GROUP),
            Err(VrrpError::BadChecksum(_))
        ));
    }

    #[test]
    fn v3_interval_ignores_the_reserved_bits() {
        let src = Ipv4Addr::new(192, 168, 1, 201);
        let mut p = v3().encode(src);
        p[4] |= 0xf0;
        p[6] = 0;
        p[7] = 0;
        let c = checksum(VrrpVersion::V3, &p, src, VRRP_GROUP);
        p[6..8].copy_from_slice(&c.to_be_bytes());
        assert_eq!(
            Advert::decode(&p, src, VRRP_GROUP).unwrap().advert_int,
            Duration::from_millis(100)
        );
    }

    #[test]
    fn non_vrrp_frames_are_none() {
        let garp = garp_frame(MacAddr([2, 0, 0, 0, 0, 1]), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(parse_advert_frame(&garp), None);
        assert_eq!(parse_advert_frame(&[0u8; 5]), None);
    }
}
