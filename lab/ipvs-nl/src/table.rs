//! The IPVS table through netlink: an [`IpvsCommand`] becomes the message ipvsadm would
//! send, and dumps come back as the same configuration types the userspace balancer uses.

use crate::attr::{
    af_of, cmd, cmd_attr, daemon, dest, fwd, inet_addr, info, stats, svc, svc_flags, Attr, Attrs,
    AF_INET6,
};
use crate::socket::{IpvsMsg, IpvsSocket};
use crate::Error;
use lvslab_core::{
    Counters, DestConfig, Family, ForwardMethod, IpvsCommand, Persistence, Protocol, SchedFlags,
    Scheduler, ServiceConfig, ServiceFlags, ServiceKey, Timeouts, Vip,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

const IPPROTO_TCP: u16 = 6;
const IPPROTO_UDP: u16 = 17;

/// A virtual service as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEntry {
    /// Its configuration, in the userspace balancer's types.
    pub config: ServiceConfig,
    /// Its counters (the 64-bit ones where the kernel has them).
    pub stats: Counters,
    /// Its real servers, in the kernel's list order (newest first).
    pub dests: Vec<DestEntry>,
}

/// A real server as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestEntry {
    /// Its configuration.
    pub config: DestConfig,
    /// ActiveConn.
    pub active: u32,
    /// InActConn.
    pub inactive: u32,
    /// Connections held by persistence templates.
    pub persistent: u32,
    /// Its counters.
    pub stats: Counters,
}

/// `ipvsadm --version`'s facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Info {
    /// IPVS version, e.g. 0x010201 for 1.2.1.
    pub version: u32,
    /// Connection hash table size.
    pub conn_tab_size: u32,
}

impl Info {
    /// `1.2.1`.
    pub fn version_string(&self) -> String {
        format!(
            "{}.{}.{}",
            (self.version >> 16) & 0xff,
            (self.version >> 8) & 0xff,
            self.version & 0xff
        )
    }
}

/// The role of a connection-sync daemon (IP_VS_STATE_MASTER / BACKUP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncState {
    /// Sends connection updates.
    Master,
    /// Receives them.
    Backup,
}

impl SyncState {
    fn value(self) -> u32 {
        match self {
            SyncState::Master => 1,
            SyncState::Backup => 2,
        }
    }
}

/// A connection-sync daemon (`ipvsadm --start-daemon`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncDaemon {
    /// Master or backup.
    pub state: SyncState,
    /// The interface its multicast goes through.
    pub mcast_ifn: String,
    /// The sync id.
    pub syncid: u32,
}

/// Kernel IPVS in the calling thread's network namespace.
pub struct KernelIpvs {
    sock: IpvsSocket,
}

impl KernelIpvs {
    /// Opens the IPVS family; [`Error::NoIpvs`] where the kernel has none.
    pub fn open() -> Result<Self, Error> {
        Ok(KernelIpvs {
            sock: IpvsSocket::open()?,
        })
    }

    /// Applies one table change, as `ipvsadm` with the same line would.
    pub fn apply(&mut self, command: &IpvsCommand) -> Result<(), Error> {
        self.sock.request(message_for(command)?)
    }

    /// Every service with its real servers.
    pub fn services(&mut self) -> Result<Vec<ServiceEntry>, Error> {
        let mut out = Vec::new();
        for reply in self.sock.dump(IpvsMsg::new(cmd::GET_SERVICE, Vec::new()))? {
            let s = reply
                .nested(cmd_attr::SERVICE)
                .map_err(|e| Error::Protocol(e.to_string()))?
                .ok_or_else(|| Error::Protocol("a service dump without a service".into()))?;
            let (config, stats) = parse_service(&s)?;
            let ident = service_ident(&config.key);
            let mut dests = Vec::new();
            for d in self.sock.dump(IpvsMsg::new(
                cmd::GET_DEST,
                vec![Attr::Nested(cmd_attr::SERVICE, ident)],
            ))? {
                let d = d
                    .nested(cmd_attr::DEST)
                    .map_err(|e| Error::Protocol(e.to_string()))?
                    .ok_or_else(|| Error::Protocol("a dest dump without a dest".into()))?;
                dests.push(parse_dest(&d)?);
            }
            out.push(ServiceEntry {
                config,
                stats,
                dests,
            });
        }
        Ok(out)
    }

    /// The connection timeouts (`ipvsadm -L --timeout`).
    pub fn timeouts(&mut self) -> Result<Timeouts, Error> {
        let a = self.sock.get(IpvsMsg::new(cmd::GET_CONFIG, Vec::new()))?;
        let secs = |k| Duration::from_secs(u64::from(a.u32(k).unwrap_or(0)));
        Ok(Timeouts {
            tcp: secs(cmd_attr::TIMEOUT_TCP),
            tcp_fin: secs(cmd_attr::TIMEOUT_TCP_FIN),
            udp: secs(cmd_attr::TIMEOUT_UDP),
        })
    }

    /// Version and connection table size.
    pub fn info(&mut self) -> Result<Info, Error> {
        let a = self.sock.get(IpvsMsg::new(cmd::GET_INFO, Vec::new()))?;
        Ok(Info {
            version: a.u32(info::VERSION).unwrap_or(0),
            conn_tab_size: a.u32(info::CONN_TAB_SIZE).unwrap_or(0),
        })
    }

    /// Zeroes the counters of one service, or of all (`ipvsadm -Z`).
    pub fn zero(&mut self, key: Option<&ServiceKey>) -> Result<(), Error> {
        let attrs = key
            .map(|k| vec![Attr::Nested(cmd_attr::SERVICE, service_ident(k))])
            .unwrap_or_default();
        self.sock.request(IpvsMsg::new(cmd::ZERO, attrs))
    }

    /// Starts a connection-sync daemon (`ipvsadm --start-daemon`).
    pub fn start_daemon(&mut self, d: &SyncDaemon) -> Result<(), Error> {
        self.sock.request(IpvsMsg::new(
            cmd::NEW_DAEMON,
            vec![Attr::Nested(
                cmd_attr::DAEMON,
                vec![
                    Attr::U32(daemon::STATE, d.state.value()),
                    Attr::Str(daemon::MCAST_IFN, d.mcast_ifn.clone()),
                    Attr::U32(daemon::SYNC_ID, d.syncid),
                ],
            )],
        ))
    }

    /// Stops a connection-sync daemon (`ipvsadm --stop-daemon`).
    pub fn stop_daemon(&mut self, state: SyncState) -> Result<(), Error> {
        self.sock.request(IpvsMsg::new(
            cmd::DEL_DAEMON,
            vec![Attr::Nested(
                cmd_attr::DAEMON,
                vec![Attr::U32(daemon::STATE, state.value())],
            )],
        ))
    }

    /// The running sync daemons.
    pub fn daemons(&mut self) -> Result<Vec<SyncDaemon>, Error> {
        let mut out = Vec::new();
        for r in self.sock.dump(IpvsMsg::new(cmd::GET_DAEMON, Vec::new()))? {
            let Some(d) = r
                .nested(cmd_attr::DAEMON)
                .map_err(|e| Error::Protocol(e.to_string()))?
            else {
                continue;
            };
            let state = match d.u32(daemon::STATE) {
                Some(1) => SyncState::Master,
                Some(2) => SyncState::Backup,
                other => return Err(Error::Protocol(format!("sync daemon state {other:?}"))),
            };
            out.push(SyncDaemon {
                state,
                mcast_ifn: d.string(daemon::MCAST_IFN).unwrap_or_default(),
                syncid: d.u32(daemon::SYNC_ID).unwrap_or(0),
            });
        }
        Ok(out)
    }
}

/// The netlink message that carries out `command` (what ipvsadm's libipvs sends).
pub fn message_for(command: &IpvsCommand) -> Result<IpvsMsg, Error> {
    let service = |k: &ServiceKey| Attr::Nested(cmd_attr::SERVICE, service_ident(k));
    Ok(match command {
        IpvsCommand::AddService(c) => IpvsMsg::new(
            cmd::NEW_SERVICE,
            vec![Attr::Nested(cmd_attr::SERVICE, service_full(c))],
        ),
        IpvsCommand::EditService(c) => IpvsMsg::new(
            cmd::SET_SERVICE,
            vec![Attr::Nested(cmd_attr::SERVICE, service_full(c))],
        ),
        IpvsCommand::DelService(k) => IpvsMsg::new(cmd::DEL_SERVICE, vec![service(k)]),
        IpvsCommand::Clear => IpvsMsg::new(cmd::FLUSH, Vec::new()),
        IpvsCommand::AddDest(k, d) => IpvsMsg::new(
            cmd::NEW_DEST,
            vec![service(k), Attr::Nested(cmd_attr::DEST, dest_full(d))],
        ),
        IpvsCommand::EditDest(k, d) => IpvsMsg::new(
            cmd::SET_DEST,
            vec![service(k), Attr::Nested(cmd_attr::DEST, dest_full(d))],
        ),
        IpvsCommand::DelDest(k, addr) => IpvsMsg::new(
            cmd::DEL_DEST,
            vec![service(k), Attr::Nested(cmd_attr::DEST, dest_ident(*addr))],
        ),
        IpvsCommand::SetTimeouts(t) => {
            // A zero keeps the kernel's value (ip_vs_set_timeout skips it), as in ipvsadm.
            let secs = |d: Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
            IpvsMsg::new(
                cmd::SET_CONFIG,
                vec![
                    Attr::U32(cmd_attr::TIMEOUT_TCP, secs(t.tcp)),
                    Attr::U32(cmd_attr::TIMEOUT_TCP_FIN, secs(t.tcp_fin)),
                    Attr::U32(cmd_attr::TIMEOUT_UDP, secs(t.udp)),
                ],
            )
        }
    })
}

fn protocol_number(p: Protocol) -> u16 {
    match p {
        Protocol::Tcp => IPPROTO_TCP,
        Protocol::Udp => IPPROTO_UDP,
    }
}

/// The attributes that name a service (ip_vs_genl_parse_service's mandatory ones).
fn service_ident(key: &ServiceKey) -> Vec<Attr> {
    match key {
        ServiceKey::Addr {
            protocol,
            vip,
            port,
        } => vec![
            Attr::U16(svc::AF, af_of(vip.0)),
            Attr::U16(svc::PROTOCOL, protocol_number(*protocol)),
            Attr::Bytes(svc::ADDR, inet_addr(vip.0)),
            Attr::Be16(svc::PORT, *port),
        ],
        // libipvs ipvs_nl_fill_service_attr: the af (AF_INET6 for `-f MARK -6`) and the
        // mark; the kernel keys the service by both (ip_vs_service_fwm_get).
        ServiceKey::FwMark { mark, family } => vec![
            Attr::U16(svc::AF, family_af(*family)),
            Attr::U32(svc::FWMARK, *mark),
        ],
    }
}

fn family_af(f: Family) -> u16 {
    match f {
        Family::Ipv4 => crate::attr::AF_INET,
        Family::Ipv6 => AF_INET6,
    }
}

fn is_v6(key: &ServiceKey) -> bool {
    key.family().is_ipv6()
}

/// A full service entry, as `ipvsadm -A/-E` sends it.
fn service_full(c: &ServiceConfig) -> Vec<Attr> {
    let mut flags = 0u32;
    if c.persistence.is_some() {
        flags |= svc_flags::PERSISTENT;
    }
    if c.flags.one_packet {
        flags |= svc_flags::ONEPACKET;
    }
    if c.flags.sched.fallback {
        flags |= svc_flags::SCHED1;
    }
    if c.flags.sched.port {
        flags |= svc_flags::SCHED2;
    }
    if c.flags.sched.flag3 {
        flags |= svc_flags::SCHED3;
    }
    // struct ip_vs_flags { flags, mask }: ipvsadm sets every bit it knows, mask ~0.
    let mut fl = flags.to_ne_bytes().to_vec();
    fl.extend_from_slice(&u32::MAX.to_ne_bytes());
    let v6 = is_v6(&c.key);
    let timeout = c.persistence.map_or(0, |p| {
        u32::try_from(p.timeout.as_secs()).unwrap_or(u32::MAX)
    });
    let netmask = match c.persistence.map(|p| p.netmask) {
        // The kernel keeps the raw __be32: mask octets for IPv4, a prefix length for IPv6.
        Some(IpAddr::V4(m)) => Attr::Be32(svc::NETMASK, u32::from(m)),
        Some(IpAddr::V6(m)) => Attr::U32(svc::NETMASK, u128::from(m).count_ones()),
        None if v6 => Attr::U32(svc::NETMASK, 128),
        None => Attr::Be32(svc::NETMASK, u32::MAX),
    };
    let mut attrs = service_ident(&c.key);
    attrs.extend([
        Attr::Str(svc::SCHED_NAME, c.scheduler.name().to_owned()),
        Attr::Bytes(svc::FLAGS, fl),
        Attr::U32(svc::TIMEOUT, timeout),
        netmask,
    ]);
    attrs
}

fn fwd_method(m: ForwardMethod) -> u32 {
    match m {
        ForwardMethod::Nat => fwd::MASQ,
        ForwardMethod::Dr => fwd::DROUTE,
        ForwardMethod::Tun => fwd::TUNNEL,
    }
}

fn dest_ident(addr: SocketAddr) -> Vec<Attr> {
    vec![
        Attr::Bytes(dest::ADDR, inet_addr(addr.ip())),
        Attr::Be16(dest::PORT, addr.port()),
        Attr::U16(dest::ADDR_FAMILY, af_of(addr.ip())),
    ]
}

/// A full destination entry, as `ipvsadm -a/-e` sends it.
fn dest_full(d: &DestConfig) -> Vec<Attr> {
    let mut attrs = dest_ident(d.addr);
    attrs.extend([
        Attr::U32(dest::FWD_METHOD, fwd_method(d.method)),
        Attr::U32(dest::WEIGHT, d.weight),
        Attr::U32(dest::U_THRESH, d.u_threshold),
        Attr::U32(dest::L_THRESH, d.l_threshold),
    ]);
    attrs
}

fn protocol_of(n: u16) -> Result<Protocol, Error> {
    match n {
        IPPROTO_TCP => Ok(Protocol::Tcp),
        IPPROTO_UDP => Ok(Protocol::Udp),
        other => Err(Error::Unsupported(format!(
            "a kernel service with IP protocol {other} (lvslab knows TCP and UDP)"
        ))),
    }
}

fn counters(nest: Option<Attrs>, wide: bool) -> Counters {
    let Some(s) = nest else {
        return Counters::default();
    };
    let n = |k| {
        if wide {
            s.u64(k).unwrap_or(0)
        } else {
            u64::from(s.u32(k).unwrap_or(0))
        }
    };
    Counters {
        conns: n(stats::CONNS),
        inpkts: n(stats::INPKTS),
        outpkts: n(stats::OUTPKTS),
        // Bytes are 64-bit in both nests.
        inbytes: s.u64(stats::INBYTES).unwrap_or(0),
        outbytes: s.u64(stats::OUTBYTES).unwrap_or(0),
    }
}

/// Prefers IPVS_*_ATTR_STATS64 (Linux 4.1 and later) over the 32-bit nest.
fn stats_of(a: &Attrs, wide: u16, narrow: u16) -> Result<Counters, Error> {
    let p = |e: netlink_packet_core::DecodeError| Error::Protocol(e.to_string());
    Ok(match a.nested(wide).map_err(p)? {
        Some(s) => counters(Some(s), true),
        None => counters(a.nested(narrow).map_err(p)?, false),
    })
}

fn parse_service(a: &Attrs) -> Result<(ServiceConfig, Counters), Error> {
    let missing = |what: &str| Error::Protocol(format!("service without {what}"));
    let af = a.u16(svc::AF).ok_or_else(|| missing("AF"))?;
    let key = match a.u32(svc::FWMARK) {
        Some(mark) if mark != 0 => ServiceKey::FwMark {
            mark,
            family: match af {
                AF_INET6 => Family::Ipv6,
                crate::attr::AF_INET => Family::Ipv4,
                other => {
                    return Err(Error::Unsupported(format!(
                        "a kernel fwmark service {mark} of address family {other} (lvslab knows AF_INET and AF_INET6)"
                    )))
                }
            },
        },
        _ => ServiceKey::Addr {
            protocol: protocol_of(a.u16(svc::PROTOCOL).ok_or_else(|| missing("protocol"))?)?,
            vip: Vip(a.addr(svc::ADDR, af).ok_or_else(|| missing("address"))?),
            port: a.be16(svc::PORT).ok_or_else(|| missing("port"))?,
        },
    };
    let name = a
        .string(svc::SCHED_NAME)
        .ok_or_else(|| missing("scheduler"))?;
    let scheduler: Scheduler = name
        .parse()
        .map_err(|e| Error::Unsupported(format!("kernel service {key}: {e}")))?;
    let flags = a
        .get(svc::FLAGS)
        .and_then(|b| b.get(..4))
        .and_then(|b| b.try_into().ok())
        .map(u32::from_ne_bytes)
        .unwrap_or(0);
    let persistence = (flags & svc_flags::PERSISTENT != 0).then(|| {
        let timeout = Duration::from_secs(u64::from(a.u32(svc::TIMEOUT).unwrap_or(0)));
        let netmask = if af == AF_INET6 {
            let plen = a.u32(svc::NETMASK).unwrap_or(128).min(128);
            let bits = if plen == 0 {
                0
            } else {
                u128::MAX << (128 - plen)
            };
            IpAddr::V6(Ipv6Addr::from(bits))
        } else {
            IpAddr::V4(Ipv4Addr::from(a.be32(svc::NETMASK).unwrap_or(u32::MAX)))
        };
        Persistence { timeout, netmask }
    });
    let config = ServiceConfig {
        key,
        scheduler,
        persistence,
        flags: ServiceFlags {
            one_packet: flags & svc_flags::ONEPACKET != 0,
            sched: SchedFlags {
                fallback: flags & svc_flags::SCHED1 != 0,
                port: flags & svc_flags::SCHED2 != 0,
                flag3: flags & svc_flags::SCHED3 != 0,
            },
        },
    };
    Ok((config, stats_of(a, svc::STATS64, svc::STATS)?))
}

fn parse_dest(a: &Attrs) -> Result<DestEntry, Error> {
    let missing = |what: &str| Error::Protocol(format!("real server without {what}"));
    let af = a.u16(dest::ADDR_FAMILY).unwrap_or(crate::attr::AF_INET);
    let ip = a.addr(dest::ADDR, af).ok_or_else(|| missing("address"))?;
    let port = a.be16(dest::PORT).ok_or_else(|| missing("port"))?;
    let method = match a.u32(dest::FWD_METHOD).map(|m| m & fwd::MASK) {
        Some(fwd::MASQ) => ForwardMethod::Nat,
        Some(fwd::TUNNEL) => ForwardMethod::Tun,
        Some(fwd::DROUTE) => ForwardMethod::Dr,
        other => {
            return Err(Error::Unsupported(format!(
                "real server {ip}: forwarding method {other:?} (local or bypass)"
            )))
        }
    };
    Ok(DestEntry {
        config: DestConfig {
            addr: SocketAddr::new(ip, port),
            method,
            weight: a.u32(dest::WEIGHT).unwrap_or(0),
            u_threshold: a.u32(dest::U_THRESH).unwrap_or(0),
            l_threshold: a.u32(dest::L_THRESH).unwrap_or(0),
        },
        active: a.u32(dest::ACTIVE_CONNS).unwrap_or(0),
        inactive: a.u32(dest::INACT_CONNS).unwrap_or(0),
        persistent: a.u32(dest::PERSIST_CONNS).unwrap_or(0),
        stats: stats_of(a, dest::STATS64, dest::STATS)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lvslab_core::ipvsadm;
    use netlink_packet_core::Emitable;

    /// The attributes of `line`'s message, emitted and read back as the kernel would.
    fn sent(line: &str) -> (u8, Attrs) {
        let m = message_for(&ipvsadm::parse(line).unwrap()).unwrap();
        let mut buf = vec![0u8; m.buffer_len()];
        m.emit(&mut buf);
        (m.cmd, Attrs::parse(&buf).unwrap())
    }

    #[test]
    fn add_service_carries_what_ipvsadm_sends() {
        let (c, a) =
            sent("-A -t 192.168.1.250:80 -s sh -b sh-fallback,sh-port -p 60 -M 255.255.255.0");
        assert_eq!(c, cmd::NEW_SERVICE);
        let s = a.nested(cmd_attr::SERVICE).unwrap().unwrap();
        assert_eq!(s.u16(svc::AF), Some(2));
        assert_eq!(s.u16(svc::PROTOCOL), Some(6));
        assert_eq!(&s.get(svc::ADDR).unwrap()[..4], &[192, 168, 1, 250]);
        assert_eq!(s.get(svc::PORT), Some(&[0u8, 80][..]));
        assert_eq!(s.string(svc::SCHED_NAME).as_deref(), Some("sh"));
        let fl = s.get(svc::FLAGS).unwrap();
        assert_eq!(
            u32::from_ne_bytes(fl[..4].try_into().unwrap()),
            svc_flags::PERSISTENT | svc_flags::SCHED1 | svc_flags::SCHED2
        );
        assert_eq!(u32::from_ne_bytes(fl[4..].try_into().unwrap()), u32::MAX);
        assert_eq!(s.u32(svc::TIMEOUT), Some(60));
        assert_eq!(s.get(svc::NETMASK), Some(&[255u8, 255, 255, 0][..]));
        // And it reads back as the same configuration.
        let (cfg, _) = parse_service(&s).unwrap();
        let IpvsCommand::AddService(want) = ipvsadm::parse(
            "-A -t 192.168.1.250:80 -s sh -b sh-fallback,sh-port -p 60 -M 255.255.255.0",
        )
        .unwrap() else {
            panic!("not an add")
        };
        assert_eq!(cfg, want);
    }

    #[test]
    fn real_servers_carry_method_weight_and_thresholds() {
        let (c, a) = sent("-a -t 192.168.1.250:80 -r 192.168.1.201:8080 -m -w 3 -x 10 -y 5");
        assert_eq!(c, cmd::NEW_DEST);
        assert!(a.nested(cmd_attr::SERVICE).unwrap().is_some());
        let d = a.nested(cmd_attr::DEST).unwrap().unwrap();
        assert_eq!(d.get(dest::PORT), Some(&[0x1fu8, 0x90][..]));
        assert_eq!(d.u32(dest::FWD_METHOD), Some(fwd::MASQ));
        assert_eq!(d.u32(dest::WEIGHT), Some(3));
        assert_eq!(d.u32(dest::U_THRESH), Some(10));
        assert_eq!(d.u32(dest::L_THRESH), Some(5));
        let e = parse_dest(&d).unwrap();
        assert_eq!(e.config.addr, "192.168.1.201:8080".parse().unwrap());
        assert_eq!(e.config.method, ForwardMethod::Nat);
        let (_, a) = sent("-a -t 192.168.1.250:80 -r 192.168.1.203 -i");
        let d = a.nested(cmd_attr::DEST).unwrap().unwrap();
        assert_eq!(d.u32(dest::FWD_METHOD), Some(fwd::TUNNEL));
        assert_eq!(d.be16(dest::PORT), Some(80));
        assert_eq!(parse_dest(&d).unwrap().config.method, ForwardMethod::Tun);
        let (c, _) = sent("-e -u 192.168.1.250:53 -r 192.168.1.201:53 -m -w 0");
        assert_eq!(c, cmd::SET_DEST);
        let (c, a) = sent("-d -f 7 -r 192.168.1.201:0");
        assert_eq!(c, cmd::DEL_DEST);
        let s = a.nested(cmd_attr::SERVICE).unwrap().unwrap();
        assert_eq!(s.u32(svc::FWMARK), Some(7));
    }

    #[test]
    fn an_ipv6_fwmark_service_is_af_inet6_with_its_mark() {
        let line = "-A -f 1 -6 -s sh -p 60 -M 64";
        let (c, a) = sent(line);
        assert_eq!(c, cmd::NEW_SERVICE);
        let s = a.nested(cmd_attr::SERVICE).unwrap().unwrap();
        // libipvs ipvs_nl_fill_service_attr: af and mark, no protocol, address or port.
        assert_eq!(s.u16(svc::AF), Some(AF_INET6));
        assert_eq!(s.u32(svc::FWMARK), Some(1));
        assert!(s.get(svc::PROTOCOL).is_none() && s.get(svc::ADDR).is_none());
        // An IPv6 netmask travels as a prefix length.
        assert_eq!(s.u32(svc::NETMASK), Some(64));
        let (cfg, _) = parse_service(&s).unwrap();
        let IpvsCommand::AddService(want) = ipvsadm::parse(line).unwrap() else {
            panic!("not an add")
        };
        assert_eq!(cfg, want);
        assert_eq!(cfg.key, ServiceKey::fwmark6(1));
        // Without persistence the host mask is 128, as ipvsadm's -6 sets it.
        let (_, a) = sent("-A -f 1 -6 -s dh");
        let s = a.nested(cmd_attr::SERVICE).unwrap().unwrap();
        assert_eq!(s.u32(svc::NETMASK), Some(128));
        // IPv4 mark 1 stays AF_INET: the kernel holds both as two services.
        let (_, a) = sent("-A -f 1 -s dh");
        let s = a.nested(cmd_attr::SERVICE).unwrap().unwrap();
        assert_eq!(s.u16(svc::AF), Some(crate::attr::AF_INET));
        assert_eq!(parse_service(&s).unwrap().0.key, ServiceKey::fwmark(1));
        // Its real servers are IPv6 ones, named with the service's af.
        let (c, a) = sent("-a -f 1 -6 -r [2001:db8:1::201]:80 -g -w 2");
        assert_eq!(c, cmd::NEW_DEST);
        let s = a.nested(cmd_attr::SERVICE).unwrap().unwrap();
        assert_eq!(s.u16(svc::AF), Some(AF_INET6));
        let d = a.nested(cmd_attr::DEST).unwrap().unwrap();
        assert_eq!(d.u16(dest::ADDR_FAMILY), Some(AF_INET6));
        let e = parse_dest(&d).unwrap();
        assert_eq!(e.config.addr, "[2001:db8:1::201]:80".parse().unwrap());
    }

    #[test]
    fn flush_delete_and_timeouts() {
        assert_eq!(sent("-C").0, cmd::FLUSH);
        assert_eq!(sent("-D -u 192.168.1.250:53").0, cmd::DEL_SERVICE);
        let (c, a) = sent("--set 900 120 300");
        assert_eq!(c, cmd::SET_CONFIG);
        assert_eq!(a.u32(cmd_attr::TIMEOUT_TCP), Some(900));
        assert_eq!(a.u32(cmd_attr::TIMEOUT_TCP_FIN), Some(120));
        assert_eq!(a.u32(cmd_attr::TIMEOUT_UDP), Some(300));
    }

    #[test]
    fn a_non_persistent_service_sends_a_host_mask_and_no_timeout() {
        let (_, a) = sent("-A -u 192.168.1.250:53 -s rr -o");
        let s = a.nested(cmd_attr::SERVICE).unwrap().unwrap();
        assert_eq!(s.u32(svc::TIMEOUT), Some(0));
        assert_eq!(s.get(svc::NETMASK), Some(&[255u8; 4][..]));
        let (cfg, _) = parse_service(&s).unwrap();
        assert!(cfg.persistence.is_none());
        assert!(cfg.flags.one_packet);
    }

    #[test]
    fn stats64_wins_over_the_32_bit_nest() {
        let mut narrow = Vec::new();
        narrow.extend_from_slice(&[8, 0, 1, 0]);
        narrow.extend_from_slice(&7u32.to_ne_bytes());
        let mut wide = Vec::new();
        wide.extend_from_slice(&[12, 0, 1, 0]);
        wide.extend_from_slice(&(5_000_000_000u64).to_ne_bytes());
        let a = Attrs(vec![(svc::STATS, narrow.clone()), (svc::STATS64, wide)]);
        assert_eq!(
            stats_of(&a, svc::STATS64, svc::STATS).unwrap().conns,
            5_000_000_000
        );
        let a = Attrs(vec![(svc::STATS, narrow)]);
        assert_eq!(stats_of(&a, svc::STATS64, svc::STATS).unwrap().conns, 7);
    }
}
