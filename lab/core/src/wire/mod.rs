//! Packet views and rewrites for the director: Ethernet, ARP, IPv4, TCP, UDP, ICMP and IPIP;
//! IPv6 with Neighbour Discovery, ICMPv6 and IPv6-in-IPv6 beside them.
//!
//! Parsing leans on `etherparse` for validation; rewrites work in place on the frame bytes and
//! patch checksums incrementally (RFC 1624), the way the kernel's IPVS `*_snat_handler` /
//! `*_dnat_handler` do, so a NAT rewrite costs a few adds instead of a pass over the payload.

mod build;
mod build6;
pub mod checksum;
mod frame;
mod ipv6;
mod rewrite;

pub use build::{
    arp_frame, arp_request, icmp_echo_reply, icmp_error, tcp_reset, IcmpError, ICMP_ECHO,
    ICMP_ECHOREPLY,
};
pub use build6::{
    icmp6_echo_reply, icmp6_error, icmp6_type_and_word, link_local, multicast_mac,
    neighbour_advertisement, neighbour_solicitation, parse_nd, solicited_node, tcp6_reset,
    Icmp6Error, NaFlags, Nd, ICMPV6_ECHO_REPLY, ICMPV6_ECHO_REQUEST, ND_NEIGHBOR_ADVERT,
    ND_NEIGHBOR_SOLICIT,
};
pub use frame::{parse, IcmpInner, Ipv4Meta, Parsed, L4};
pub use ipv6::{
    check_ipv6, decrement_hop_limit, encap_ip6ip6, nat_icmp6, rewrite6_dst, rewrite6_src,
    set_macs6, IcmpInner6, Ipv6Meta, ETHERTYPE_IPV6, IPPROTO_ICMPV6, IPPROTO_IPV6, IPV6_HDR_LEN,
    IPV6_MIN_MTU,
};
pub use rewrite::{
    decrement_ttl, encap_ipip, nat_icmp_inner, rewrite_dst, rewrite_src, set_macs, Ipv4Frame,
    TtlExpired,
};

use std::fmt;
use std::net::Ipv4Addr;

/// Length of an Ethernet II header (no VLAN tag).
pub const ETH_HDR_LEN: usize = 14;
/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// IP protocol number of ICMP.
pub const IPPROTO_ICMP: u8 = 1;
/// IP protocol number of IP-in-IP (what IPVS TUN mode sends).
pub const IPPROTO_IPIP: u8 = 4;
/// IP protocol number of TCP.
pub const IPPROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
pub const IPPROTO_UDP: u8 = 17;

/// An Ethernet MAC address: the one lvslab-wide type, named as the wire code always has.
pub use crate::types::Mac as MacAddr;

/// An IPv4 address with its prefix length, e.g. 192.168.1.202/24.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Ipv4Cidr {
    /// The address.
    pub addr: Ipv4Addr,
    /// Prefix length, 0..=32.
    pub prefix: u8,
}

impl Ipv4Cidr {
    /// A CIDR; the prefix is clamped to 32.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Self {
        Ipv4Cidr {
            addr,
            prefix: prefix.min(32),
        }
    }

    fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        }
    }

    /// Whether `ip` lies in this prefix.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        (u32::from(ip) & self.mask()) == (u32::from(self.addr) & self.mask())
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl std::str::FromStr for Ipv4Cidr {
    type Err = WireError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || WireError::BadCidr(s.to_string());
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, p.parse::<u8>().map_err(|_| bad())?),
            None => (s, 32),
        };
        if prefix > 32 {
            return Err(bad());
        }
        Ok(Ipv4Cidr {
            addr: addr.parse().map_err(|_| bad())?,
            prefix,
        })
    }
}

/// Why a frame could not be parsed or rewritten.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// Shorter than the headers it claims.
    #[error("truncated frame: {0}")]
    Truncated(String),
    /// A header field makes no sense (bad IHL, total length, ...).
    #[error("malformed packet: {0}")]
    Malformed(String),
    /// Not a MAC address like 02:00:00:00:00:01.
    #[error("`{0}` is not a MAC address (expected six hex bytes like 02:00:5e:00:00:01)")]
    BadMac(String),
    /// Not an IPv4 prefix like 192.168.1.202/24.
    #[error("`{0}` is not an IPv4 address with prefix (expected e.g. 192.168.1.202/24)")]
    BadCidr(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_contains_and_parses() {
        let c: Ipv4Cidr = "192.168.1.202/24".parse().unwrap();
        assert!(c.contains(Ipv4Addr::new(192, 168, 1, 7)));
        assert!(!c.contains(Ipv4Addr::new(192, 168, 2, 7)));
        let d: Ipv4Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(d.contains(Ipv4Addr::new(8, 8, 8, 8)));
        assert!("1.2.3.4/33".parse::<Ipv4Cidr>().is_err());
    }

    #[test]
    fn mac_round_trip() {
        let m: MacAddr = "02:00:5e:00:00:0a".parse().unwrap();
        assert_eq!(m.to_string(), "02:00:5e:00:00:0a");
        assert!("02:00".parse::<MacAddr>().is_err());
    }
}
