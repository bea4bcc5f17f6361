//! Domain types shared by the balancer, the ipvsadm parser and the simulator (contract A).
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Transport protocol of a virtual service or flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP (`ipvsadm -t`).
    Tcp,
    /// UDP (`ipvsadm -u`).
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        })
    }
}

/// How the director hands a packet to a real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ForwardMethod {
    /// Masquerading: rewrite VIP to RIP and back (`-m`).
    Nat,
    /// Direct routing: only the destination MAC changes (`-g`, ipvsadm's default).
    Dr,
    /// IP-in-IP tunnelling (`-i`).
    Tun,
}

impl fmt::Display for ForwardMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The names ipvsadm -L prints in its Forward column.
        f.write_str(match self {
            ForwardMethod::Nat => "Masq",
            ForwardMethod::Dr => "Route",
            ForwardMethod::Tun => "Tunnel",
        })
    }
}

/// The fourteen IPVS schedulers, named as ipvsadm spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheduler {
    /// Round robin.
    Rr,
    /// Weighted round robin.
    Wrr,
    /// Least connection.
    Lc,
    /// Weighted least connection (ipvsadm's default).
    Wlc,
    /// Locality-based least connection.
    Lblc,
    /// Locality-based least connection with replication.
    Lblcr,
    /// Destination hashing.
    Dh,
    /// Source hashing.
    Sh,
    /// Shortest expected delay.
    Sed,
    /// Never queue.
    Nq,
    /// Maglev hashing.
    Mh,
    /// Weighted failover.
    Fo,
    /// Weighted overflow.
    Ovf,
    /// Power of two choices.
    Twos,
}

impl Scheduler {
    /// Every scheduler, in ipvsadm's man page order.
    pub const ALL: [Scheduler; 14] = [
        Scheduler::Rr,
        Scheduler::Wrr,
        Scheduler::Lc,
        Scheduler::Wlc,
        Scheduler::Lblc,
        Scheduler::Lblcr,
        Scheduler::Dh,
        Scheduler::Sh,
        Scheduler::Sed,
        Scheduler::Nq,
        Scheduler::Mh,
        Scheduler::Fo,
        Scheduler::Ovf,
        Scheduler::Twos,
    ];

    /// The ipvsadm name (`rr`, `wlc`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Scheduler::Rr => "rr",
            Scheduler::Wrr => "wrr",
            Scheduler::Lc => "lc",
            Scheduler::Wlc => "wlc",
            Scheduler::Lblc => "lblc",
            Scheduler::Lblcr => "lblcr",
            Scheduler::Dh => "dh",
            Scheduler::Sh => "sh",
            Scheduler::Sed => "sed",
            Scheduler::Nq => "nq",
            Scheduler::Mh => "mh",
            Scheduler::Fo => "fo",
            Scheduler::Ovf => "ovf",
            Scheduler::Twos => "twos",
        }
    }
}

impl fmt::Display for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown scheduler name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scheduler `{0}`: use one of rr wrr lc wlc lblc lblcr dh sh sed nq mh fo ovf twos")]
pub struct UnknownScheduler(pub String);

impl FromStr for Scheduler {
    type Err = UnknownScheduler;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scheduler::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| UnknownScheduler(s.to_string()))
    }
}

/// A virtual IP address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Vip(pub IpAddr);

impl fmt::Display for Vip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An address family: what a firewall-mark service matches besides its mark (the kernel
/// keys one by (af, fwmark), ip_vs_service_fwm_get, so mark 1 over IPv4 and mark 1 over
/// IPv6 are two services).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// AF_INET.
    Ipv4,
    /// AF_INET6 (`ipvsadm -f MARK -6`).
    Ipv6,
}

impl Family {
    /// The family of an address.
    pub fn of(ip: IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::Ipv4,
            IpAddr::V6(_) => Family::Ipv6,
        }
    }

    /// Is this AF_INET6?
    pub fn is_ipv6(self) -> bool {
        self == Family::Ipv6
    }
}

/// How IPVS finds a virtual service: protocol+VIP+port, or a firewall mark and family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum ServiceKey {
    /// `-t VIP:PORT` or `-u VIP:PORT`.
    Addr {
        /// TCP or UDP.
        protocol: Protocol,
        /// The virtual address.
        vip: Vip,
        /// The virtual port (0 = all ports, persistent services only).
        port: u16,
    },
    /// `-f MARK` (IPv4) or `-f MARK -6` (IPv6).
    FwMark {
        /// The firewall mark, 1..=u32::MAX.
        mark: u32,
        /// The packets' family: `-6` makes it IPv6.
        family: Family,
    },
}

impl ServiceKey {
    /// `-f MARK`: an IPv4 firewall-mark service.
    pub fn fwmark(mark: u32) -> ServiceKey {
        ServiceKey::FwMark {
            mark,
            family: Family::Ipv4,
        }
    }

    /// `-f MARK -6`: an IPv6 firewall-mark service.
    pub fn fwmark6(mark: u32) -> ServiceKey {
        ServiceKey::FwMark {
            mark,
            family: Family::Ipv6,
        }
    }

    /// The service's address family: its VIP's, or a fwmark service's own.
    pub fn family(&self) -> Family {
        match self {
            ServiceKey::Addr { vip, .. } => Family::of(vip.0),
            ServiceKey::FwMark { family, .. } => *family,
        }
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceKey::Addr {
                protocol,
                vip,
                port,
            } => write!(f, "{protocol}  {}", SocketAddr::new(vip.0, *port)),
            // print_service_entry: "FWM  %d IPv6" for an AF_INET6 fwmark service.
            ServiceKey::FwMark {
                mark,
                family: Family::Ipv4,
            } => write!(f, "FWM  {mark}"),
            ServiceKey::FwMark {
                mark,
                family: Family::Ipv6,
            } => write!(f, "FWM  {mark} IPv6"),
        }
    }
}

/// Persistence (`-p [timeout] [-M netmask]`): one client netmask sticks to one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Persistence {
    /// Template lifetime after its last use.
    pub timeout: Duration,
    /// Client addresses are masked with this before lookup (`-M`).
    pub netmask: IpAddr,
}

impl Persistence {
    /// ipvsadm's value for a bare `-p` (its man page says 300, its code uses 360).
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(360);

    /// Persistence with ipvsadm's defaults: 360 s and a host mask.
    pub fn new(timeout: Duration, v6: bool) -> Self {
        Persistence {
            timeout,
            netmask: if v6 {
                IpAddr::V6(Ipv6Addr::from(u128::MAX))
            } else {
                IpAddr::V4(Ipv4Addr::BROADCAST)
            },
        }
    }
}

/// Scheduler flags (`-b`): the kernel's IP_VS_SVC_F_SCHED1..3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct SchedFlags {
    /// flag-1: sh-fallback / mh-fallback: try another server when the hashed one is unavailable.
    pub fallback: bool,
    /// flag-2: sh-port / mh-port: hash the source port too.
    pub port: bool,
    /// flag-3: reserved, accepted as ipvsadm does.
    pub flag3: bool,
}

/// Service flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ServiceFlags {
    /// One-packet scheduling (`-o`, `--ops`): each UDP datagram is scheduled on its own.
    pub one_packet: bool,
    /// Scheduler flags (`-b`).
    pub sched: SchedFlags,
}

/// A virtual service's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceConfig {
    /// How packets find this service.
    pub key: ServiceKey,
    /// Which scheduler picks real servers.
    pub scheduler: Scheduler,
    /// Persistence, if any.
    pub persistence: Option<Persistence>,
    /// Flags (`-o`, `-b`).
    pub flags: ServiceFlags,
}

impl ServiceConfig {
    /// A service with ipvsadm's defaults for everything but key and scheduler.
    pub fn new(key: ServiceKey, scheduler: Scheduler) -> Self {
        ServiceConfig {
            key,
            scheduler,
            persistence: None,
            flags: ServiceFlags::default(),
        }
    }
}

/// A real server's configuration inside one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DestConfig {
    /// Real server address and port.
    pub addr: SocketAddr,
    /// Forwarding method.
    pub method: ForwardMethod,
    /// Weight (0 quiesces: no new connections).
    pub weight: u32,
    /// Upper connection threshold (0 = none).
    pub u_threshold: u32,
    /// Lower connection threshold (0 = 3/4 of the upper one).
    pub l_threshold: u32,
}

impl DestConfig {
    /// A real server with ipvsadm's defaults: weight 1, no thresholds.
    pub fn new(addr: SocketAddr, method: ForwardMethod) -> Self {
        DestConfig {
            addr,
            method,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
        }
    }
}

/// Connection timeouts as set by `ipvsadm --set tcp tcpfin udp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Timeouts {
    /// ESTABLISHED TCP (default 900 s).
    pub tcp: Duration,
    /// TCP FIN_WAIT (default 120 s); the kernel's --set changes only this state.
    pub tcp_fin: Duration,
    /// UDP (default 300 s).
    pub udp: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp: Duration::from_secs(900),
            tcp_fin: Duration::from_secs(120),
            udp: Duration::from_secs(300),
        }
    }
}

/// A change to the IPVS table: what one ipvsadm command line does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum IpvsCommand {
    /// `-A`: add a virtual service.
    AddService(ServiceConfig),
    /// `-E`: replace a virtual service's settings (keeps its real servers and conns).
    EditService(ServiceConfig),
    /// `-D`: delete a virtual service.
    DelService(ServiceKey),
    /// `-C`: delete every virtual service.
    Clear,
    /// `-a`: add a real server.
    AddDest(ServiceKey, DestConfig),
    /// `-e`: edit a real server.
    EditDest(ServiceKey, DestConfig),
    /// `-d`: delete a real server.
    DelDest(ServiceKey, SocketAddr),
    /// `--set tcp tcpfin udp` (a zero keeps the old value).
    SetTimeouts(Timeouts),
}

/// TCP header flags that drive the IPVS state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct TcpFlags {
    /// SYN.
    pub syn: bool,
    /// ACK.
    pub ack: bool,
    /// FIN.
    pub fin: bool,
    /// RST.
    pub rst: bool,
}

impl TcpFlags {
    /// A bare SYN.
    pub const SYN: TcpFlags = TcpFlags {
        syn: true,
        ack: false,
        fin: false,
        rst: false,
    };
    /// SYN+ACK.
    pub const SYN_ACK: TcpFlags = TcpFlags {
        syn: true,
        ack: true,
        fin: false,
        rst: false,
    };
    /// A bare ACK (also data segments).
    pub const ACK: TcpFlags = TcpFlags {
        syn: false,
        ack: true,
        fin: false,
        rst: false,
    };
    /// FIN+ACK.
    pub const FIN_ACK: TcpFlags = TcpFlags {
        syn: false,
        ack: true,
        fin: true,
        rst: false,
    };
    /// RST.
    pub const RST: TcpFlags = TcpFlags {
        syn: false,
        ack: false,
        fin: false,
        rst: true,
    };
}

/// What the core needs to know about one packet: its flow and TCP flags, not its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowPacket {
    /// TCP or UDP.
    pub protocol: Protocol,
    /// Source address and port.
    pub src: SocketAddr,
    /// Destination address and port.
    pub dst: SocketAddr,
    /// TCP flags (None for UDP).
    pub tcp: Option<TcpFlags>,
    /// Firewall mark of the packet (0 = none).
    pub fwmark: u32,
    /// IP length in bytes, for the byte counters.
    pub len: u32,
}

/// Handle of a connection entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ConnId(pub u32);

/// An Ethernet address, written `02:00:00:00:01:02` (also in serde, as lab state files store it).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: Mac = Mac([0xff; 6]);
    /// 00:00:00:00:00:00 (the target MAC of an ARP request).
    pub const ZERO: Mac = Mac([0; 6]);
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Text that is not six hex bytes separated by colons.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a MAC address (expected six hex bytes like 02:00:5e:00:00:01)")]
pub struct BadMac(pub String);

impl FromStr for Mac {
    type Err = BadMac;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadMac(s.to_string());
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in out.iter_mut() {
            let part = parts.next().ok_or_else(bad)?;
            if part.is_empty() || part.len() > 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Mac(out))
    }
}

impl Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Mac {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_str_de(d)
    }
}

impl ForwardMethod {
    /// Every method, in ipvsadm's flag order (`-m -g -i`).
    pub const ALL: [ForwardMethod; 3] = [ForwardMethod::Nat, ForwardMethod::Dr, ForwardMethod::Tun];

    /// The word topology and scenario files use: `nat`, `dr` or `tun` (Display is ipvsadm's).
    pub fn word(self) -> &'static str {
        match self {
            ForwardMethod::Nat => "nat",
            ForwardMethod::Dr => "dr",
            ForwardMethod::Tun => "tun",
        }
    }
}

/// A forwarding method word that is not `nat`, `dr` or `tun`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown forwarding method `{0}`: use nat (ipvsadm -m), dr (-g) or tun (-i)")]
pub struct UnknownMethod(pub String);

impl FromStr for ForwardMethod {
    type Err = UnknownMethod;
    /// Parses the file word (`nat`, `dr`, `tun`), the same word serde writes.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ForwardMethod::ALL
            .into_iter()
            .find(|m| m.word() == s)
            .ok_or_else(|| UnknownMethod(s.to_string()))
    }
}

/// Deserialises through `FromStr`, so a bad word carries the same message as everywhere else.
fn from_str_de<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: FromStr,
    T::Err: fmt::Display,
{
    let s = String::deserialize(d)?;
    s.parse().map_err(serde::de::Error::custom)
}

impl<'de> Deserialize<'de> for ForwardMethod {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_str_de(d)
    }
}

impl<'de> Deserialize<'de> for Scheduler {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_str_de(d)
    }
}

#[cfg(test)]
mod vocabulary_tests {
    use super::*;

    #[test]
    fn mac_reads_and_writes_one_form() {
        let m: Mac = "02:00:00:00:01:0a".parse().unwrap();
        assert_eq!(m, Mac([2, 0, 0, 0, 1, 10]));
        assert_eq!(m.to_string(), "02:00:00:00:01:0a");
        assert_eq!(serde_json::to_string(&m).unwrap(), "\"02:00:00:00:01:0a\"");
        assert_eq!(
            serde_json::from_str::<Mac>("\"02:00:00:00:01:0a\"").unwrap(),
            m
        );
        for bad in [
            "02:00",
            "02:00:00:00:01:0a:ff",
            "002:00:00:00:01:0a",
            "zz:00:00:00:01:0a",
        ] {
            assert!(bad.parse::<Mac>().is_err(), "{bad}");
        }
    }

    #[test]
    fn methods_read_file_words_and_print_ipvsadm_names() {
        for m in ForwardMethod::ALL {
            assert_eq!(m.word().parse::<ForwardMethod>(), Ok(m));
            let json = serde_json::to_string(&m).unwrap();
            assert_eq!(json, format!("\"{}\"", m.word()));
            assert_eq!(serde_json::from_str::<ForwardMethod>(&json).unwrap(), m);
        }
        assert_eq!(ForwardMethod::Nat.to_string(), "Masq");
        assert!("masq".parse::<ForwardMethod>().is_err());
    }

    #[test]
    fn schedulers_deserialise_by_name_and_refuse_others_with_the_list() {
        for k in Scheduler::ALL {
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(serde_json::from_str::<Scheduler>(&json).unwrap(), k);
        }
        let e = serde_json::from_str::<Scheduler>("\"roundrobin\"").unwrap_err();
        assert!(e.to_string().contains("rr wrr lc"), "{e}");
    }
}
