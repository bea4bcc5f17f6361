//! A sans-IO VRRP (RFC 3768 v2, RFC 5798 v3, IPv4 only) instance, as keepalived runs one.
//!
//! [`Vrrp`] is the state machine of RFC 5798 section 6.4 with keepalived's choices where the
//! RFC leaves room (each is marked in the code with the keepalived function it follows);
//! [`Advert`] is the packet, [`advert_frame`] / [`parse_advert_frame`] / [`garp_frame`] put
//! it on and take it off the wire. Nothing here sends, sleeps or reads a clock: the caller
//! feeds time and received adverts in and acts on the [`VrrpOutput`]s that come back.

mod state;
mod wire;

pub use state::{Vrrp, VrrpOutput, VrrpStatus, GARP_MASTER_DELAY, GARP_MASTER_REPEAT};
pub use wire::{advert_frame, garp_frame, parse_advert_frame, Advert, VRRP_GROUP_MAC};

use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

/// The IPv4 multicast group VRRP adverts go to (RFC 5798 5.1.1.2).
pub const VRRP_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// IP protocol number of VRRP.
pub const IPPROTO_VRRP: u8 = 112;
/// Priority of the address owner, which takes over at once on start (RFC 5798 5.2.4).
pub const PRIORITY_OWNER: u8 = 255;

/// The protocol version an instance speaks; v2 and v3 routers ignore each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VrrpVersion {
    /// RFC 3768: intervals in whole seconds, auth fields, checksum over the VRRP message only.
    V2,
    /// RFC 5798: intervals in centiseconds, checksum over an IPv4 pseudo-header too.
    V3,
}

impl VrrpVersion {
    /// The number in the packet's version nibble.
    pub fn number(self) -> u8 {
        match self {
            VrrpVersion::V2 => 2,
            VrrpVersion::V3 => 3,
        }
    }
}

impl fmt::Display for VrrpVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VRRPv{}", self.number())
    }
}

/// Where an instance stands in RFC 5798's state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VrrpState {
    /// Not started, or shut down.
    Init,
    /// Listening to a master, ready to take over when it goes quiet.
    Backup,
    /// Owning the VIPs and advertising.
    Master,
}

impl fmt::Display for VrrpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // keepalived's words, as in "Entering MASTER STATE".
        f.write_str(match self {
            VrrpState::Init => "INIT",
            VrrpState::Backup => "BACKUP",
            VrrpState::Master => "MASTER",
        })
    }
}

/// One virtual router's configuration (a keepalived `vrrp_instance`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrrpConfig {
    /// Virtual router id, 1..=255.
    pub vrid: u8,
    /// 1..=254; 255 makes this router the address owner.
    pub priority: u8,
    /// v2: whole seconds, 1..=255 s; v3: whole centiseconds, 10 ms..=40.95 s.
    pub advert_int: Duration,
    /// Protocol version.
    pub version: VrrpVersion,
    /// Take over from a lower-priority master (keepalived's default); false is `nopreempt`.
    pub preempt: bool,
    /// The virtual addresses, in advert order.
    pub vips: Vec<Ipv4Addr>,
    /// This router's primary address on the interface: the adverts' source and tie-breaker.
    pub src: Ipv4Addr,
}

/// A bad configuration or a bad VRRP packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VrrpError {
    /// vrid 0.
    #[error("vrid 0 is invalid: virtual router ids are 1..=255")]
    ZeroVrid,
    /// priority 0.
    #[error(
        "priority 0 is reserved for a master that gives up; use 1..=254 (255 = address owner)"
    )]
    ZeroPriority,
    /// An advert interval the version cannot carry.
    #[error("advert_int {got:?} is invalid for {version}: {why}")]
    BadInterval {
        /// The version the interval is for.
        version: VrrpVersion,
        /// The configured interval.
        got: Duration,
        /// What the version allows.
        why: &'static str,
    },
    /// No VIPs.
    #[error("no virtual addresses: a VRRP instance needs at least one VIP")]
    NoVips,
    /// More VIPs than the one-byte count can say.
    #[error("{0} virtual addresses: a VRRP advert carries at most 255")]
    TooManyVips(usize),
    /// Shorter than the 8-byte VRRP header.
    #[error("VRRP packet of {0} bytes is shorter than its 8-byte header")]
    Truncated(usize),
    /// Version nibble not 2 or 3.
    #[error("VRRP version {0} is not supported (2 or 3)")]
    BadVersion(u8),
    /// Type nibble not 1.
    #[error("VRRP packet type {0} is not an advertisement (1)")]
    BadType(u8),
    /// Length does not fit the address count.
    #[error("VRRP packet of {got} bytes with {count} addresses, expected {expected} bytes")]
    BadLength {
        /// Bytes received.
        got: usize,
        /// Bytes the header's count implies.
        expected: usize,
        /// The header's address count.
        count: u8,
    },
    /// A v2 auth type other than 0 (none).
    #[error("VRRPv2 auth type {0} is not supported (only 0, none)")]
    BadAuthType(u8),
    /// The VRRP checksum does not add up.
    #[error("bad VRRP checksum {0:#06x}")]
    BadChecksum(u16),
    /// An advert interval of 0.
    #[error("VRRP advert interval 0")]
    ZeroInterval,
    /// IPv4 TTL not 255: the advert crossed a router (RFC 5798 7.1).
    #[error("VRRP packet with TTL {0}, must be 255 (RFC 5798 7.1)")]
    BadTtl(u8),
    /// The IPv4 header checksum does not add up.
    #[error("bad IPv4 header checksum on a VRRP packet")]
    BadIpChecksum,
    /// A fragment: adverts are never fragmented.
    #[error("VRRP packet in an IP fragment")]
    Fragment,
}
