//! ipvsadm's output, laid out as ipvsadm 1.31 lays it out (ipvsadm.c: `list_all`,
//! `print_title`, `print_service_entry`, `print_largenum`, `print_conn`, `list_timeout`,
//! `list_daemon`; libipvs.c: `ipvs_cmp_services`, `ipvs_cmp_dests`), for a table read from
//! either backend. [`Table`] is what the director's control socket answers to
//! [`crate::control::Request::Table`]; kernel IPVS fills the same rows from netlink.
//!
//! Names: without `-n` ipvsadm asks the resolver for host and service names; the caller
//! passes a [`Names`] that does so (or [`Numeric`]).

use crate::control::ConnRow;
use lvslab_core::{
    Counters, DestConfig, Family, ForwardMethod, Protocol, ServiceConfig, ServiceKey, Timeouts, Vip,
};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// The kernel's IP_VS_SVC_F_SCHED1..3 bits, as the flags field carries them.
pub const SCHED1: u32 = 0x0008;
/// IP_VS_SVC_F_SCHED2.
pub const SCHED2: u32 = 0x0010;
/// IP_VS_SVC_F_SCHED3.
pub const SCHED3: u32 = 0x0020;

/// IPVS 1.2.1, the version every Linux since 2.6.10 reports.
pub const IPVS_VERSION: u32 = 0x0001_0201;
/// The kernel's default connection hash table size (CONFIG_IP_VS_TAB_BITS=12).
pub const DEFAULT_CONN_TAB_SIZE: u32 = 4096;

/// How ipvsadm finds a virtual service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ListedKey {
    /// `-t`/`-u` VIP:port.
    Addr {
        /// TCP or UDP.
        protocol: Protocol,
        /// VIP and port.
        addr: SocketAddr,
    },
    /// `-f MARK` (`-f MARK -6` for IPv6).
    FwMark {
        /// The firewall mark.
        mark: u32,
        /// The service's family; left out of the wire form for IPv4, which is all older
        /// directors know.
        #[serde(default = "ipv4", skip_serializing_if = "is_ipv4")]
        family: Family,
    },
}

fn ipv4() -> Family {
    Family::Ipv4
}

fn is_ipv4(f: &Family) -> bool {
    *f == Family::Ipv4
}

impl From<ServiceKey> for ListedKey {
    fn from(k: ServiceKey) -> Self {
        match k {
            ServiceKey::Addr {
                protocol,
                vip,
                port,
            } => ListedKey::Addr {
                protocol,
                addr: SocketAddr::new(vip.0, port),
            },
            ServiceKey::FwMark { mark, family } => ListedKey::FwMark { mark, family },
        }
    }
}

impl From<ListedKey> for ServiceKey {
    fn from(k: ListedKey) -> Self {
        match k {
            ListedKey::Addr { protocol, addr } => ServiceKey::Addr {
                protocol,
                vip: Vip(addr.ip()),
                port: addr.port(),
            },
            ListedKey::FwMark { mark, family } => ServiceKey::FwMark { mark, family },
        }
    }
}

/// ipvsadm's forwarding methods (`fwd_name`, `fwd_switch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fwd {
    /// Masq, `-m`.
    Masq,
    /// Route, `-g`.
    Route,
    /// Tunnel, `-i`.
    Tunnel,
}

impl From<ForwardMethod> for Fwd {
    fn from(m: ForwardMethod) -> Self {
        match m {
            ForwardMethod::Nat => Fwd::Masq,
            ForwardMethod::Dr => Fwd::Route,
            ForwardMethod::Tun => Fwd::Tunnel,
        }
    }
}

impl Fwd {
    fn name(self) -> &'static str {
        match self {
            Fwd::Masq => "Masq",
            Fwd::Route => "Route",
            Fwd::Tunnel => "Tunnel",
        }
    }

    fn switch(self) -> &'static str {
        match self {
            Fwd::Masq => "-m",
            Fwd::Route => "-g",
            Fwd::Tunnel => "-i",
        }
    }
}

/// A virtual service with everything `ipvsadm -L` and `-S` print of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedService {
    /// How packets find it.
    pub key: ListedKey,
    /// Scheduler name.
    pub scheduler: String,
    /// Persistence timeout in seconds, when persistent.
    pub persistent: Option<u32>,
    /// Persistence netmask (a host mask when not given).
    pub netmask: Option<IpAddr>,
    /// One-packet scheduling (`-o`).
    pub ops: bool,
    /// IP_VS_SVC_F_SCHED1..3 bits ([`SCHED1`], [`SCHED2`], [`SCHED3`]).
    pub sched_flags: u32,
    /// Counters (or, for `--rate`, per-second rates).
    pub counters: Counters,
    /// Real servers, in the table's order (newest first).
    pub dests: Vec<ListedDest>,
}

/// A real server with everything `ipvsadm -L` and `-S` print of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedDest {
    /// RIP:port.
    pub addr: SocketAddr,
    /// Forwarding method.
    pub fwd: Fwd,
    /// Weight.
    pub weight: u32,
    /// Upper connection threshold.
    pub u_threshold: u32,
    /// Lower connection threshold.
    pub l_threshold: u32,
    /// ActiveConn.
    pub active: u32,
    /// InActConn.
    pub inactive: u32,
    /// PersistConn: templates pointing here.
    pub persistent: u32,
    /// Counters (or rates).
    pub counters: Counters,
}

/// A connection-sync daemon, as `ipvsadm -L --daemon` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedDaemon {
    /// `master` or `backup`.
    pub state: String,
    /// Multicast interface.
    pub mcast_ifn: String,
    /// Sync id.
    pub syncid: u32,
}

/// The whole table of one director, as ipvsadm reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    /// IPVS version (0x010201 is 1.2.1).
    pub version: u32,
    /// Connection hash table size.
    pub conn_tab_size: u32,
    /// Services, in the table's order.
    pub services: Vec<ListedService>,
    /// tcp, tcpfin and udp timeouts in seconds.
    pub timeouts: [u64; 3],
    /// Sync daemons running.
    #[serde(default)]
    pub daemons: Vec<ListedDaemon>,
}

impl ListedService {
    /// The row of a service from its configuration, counters and real servers.
    pub fn new(
        config: &ServiceConfig,
        counters: Counters,
        dests: impl IntoIterator<Item = ListedDest>,
    ) -> Self {
        let mut flags = 0;
        if config.flags.sched.fallback {
            flags |= SCHED1;
        }
        if config.flags.sched.port {
            flags |= SCHED2;
        }
        if config.flags.sched.flag3 {
            flags |= SCHED3;
        }
        ListedService {
            key: config.key.into(),
            scheduler: config.scheduler.name().to_owned(),
            persistent: config
                .persistence
                .map(|p| u32::try_from(p.timeout.as_secs()).unwrap_or(u32::MAX)),
            netmask: config.persistence.map(|p| p.netmask),
            ops: config.flags.one_packet,
            sched_flags: flags,
            counters,
            dests: dests.into_iter().collect(),
        }
    }
}

impl ListedDest {
    /// The row of a real server from its configuration and live numbers.
    pub fn new(
        config: &DestConfig,
        active: u32,
        inactive: u32,
        persistent: u32,
        counters: Counters,
    ) -> Self {
        ListedDest {
            addr: config.addr,
            fwd: config.method.into(),
            weight: config.weight,
            u_threshold: config.u_threshold,
            l_threshold: config.l_threshold,
            active,
            inactive,
            persistent,
            counters,
        }
    }
}

impl Table {
    /// A table with the kernel's version and size, and `timeouts`.
    pub fn new(services: Vec<ListedService>, timeouts: Timeouts) -> Self {
        Table {
            version: IPVS_VERSION,
            conn_tab_size: DEFAULT_CONN_TAB_SIZE,
            services,
            timeouts: [
                timeouts.tcp.as_secs(),
                timeouts.tcp_fin.as_secs(),
                timeouts.udp.as_secs(),
            ],
            daemons: Vec::new(),
        }
    }

    /// The service with this key.
    pub fn service(&self, key: &ListedKey) -> Option<&ListedService> {
        self.services.iter().find(|s| s.key == *key)
    }
}

/// ipvsadm's print format flags (FMT_*).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Format {
    /// `-n`: numbers, no resolver.
    pub numeric: bool,
    /// `-S`: rules, as ipvsadm-save writes them.
    pub rule: bool,
    /// `--stats`.
    pub stats: bool,
    /// `--rate`.
    pub rate: bool,
    /// `--thresholds`.
    pub thresholds: bool,
    /// `--persistent-conn`.
    pub persistent_conn: bool,
    /// `--nosort`: the table's order.
    pub nosort: bool,
    /// `--exact`: counters unabbreviated.
    pub exact: bool,
    /// `--tun-info`.
    pub tun_info: bool,
}

/// Host and service names for addresses and ports (ipvsadm's gethostbyaddr and
/// getservbyport), used without `-n`.
pub trait Names {
    /// The host name of `ip`, if the resolver has one.
    fn host(&self, ip: IpAddr) -> Option<String>;
    /// The service name of `port` for `protocol` (None: not TCP or UDP), if any.
    fn service(&self, port: u16, protocol: Option<Protocol>) -> Option<String>;
}

/// No names: every address and port as a number (what `-n` prints).
pub struct Numeric;

impl Names for Numeric {
    fn host(&self, _: IpAddr) -> Option<String> {
        None
    }
    fn service(&self, _: u16, _: Option<Protocol>) -> Option<String> {
        None
    }
}

/// `addrport_to_anyname`: `IP:PORT` (`[IP]:PORT` for IPv6), names unless numeric; the C
/// buffer is 60 bytes.
fn addrport(addr: SocketAddr, proto: Option<Protocol>, fmt: &Format, names: &dyn Names) -> String {
    let (host, port) = if fmt.numeric {
        (addr.ip().to_string(), addr.port().to_string())
    } else {
        (
            names
                .host(addr.ip())
                .unwrap_or_else(|| addr.ip().to_string()),
            names
                .service(addr.port(), proto)
                .unwrap_or_else(|| addr.port().to_string()),
        )
    };
    let mut s = match addr.ip() {
        IpAddr::V4(_) => format!("{host}:{port}"),
        IpAddr::V6(_) => format!("[{host}]:{port}"),
    };
    truncate(&mut s, 59);
    s
}

fn truncate(s: &mut String, len: usize) {
    if s.len() > len {
        let mut cut = len;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

/// `print_largenum`: nine columns, K/M/G/T past 100 million unless `--exact`.
fn largenum(out: &mut String, i: u64, fmt: &Format) {
    let _ = if fmt.exact {
        let len = i.to_string().len();
        let w = if len <= 8 { 9 } else { len + 1 };
        write!(out, "{i:>w$}")
    } else if i < 100_000_000 {
        write!(out, "{i:>9}")
    } else if i < 1_000_000_000 {
        write!(out, "{:>8}K", i / 1000)
    } else if i < 100_000_000_000 {
        write!(out, "{:>8}M", i / 1_000_000)
    } else if i < 100_000_000_000_000 {
        write!(out, "{:>8}G", i / 1_000_000_000)
    } else {
        write!(out, "{:>8}T", i / 1_000_000_000_000)
    };
}

fn counters5(out: &mut String, c: &Counters, fmt: &Format) {
    for v in [c.conns, c.inpkts, c.outpkts, c.inbytes, c.outbytes] {
        largenum(out, v, fmt);
    }
}

/// `print_title`.
fn title(out: &mut String, fmt: &Format) {
    let head = "Prot LocalAddress:Port";
    let _ = if fmt.stats {
        write!(
            out,
            "{head:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port\n",
            "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"
        )
    } else if fmt.rate {
        write!(
            out,
            "{head:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port\n",
            "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"
        )
    } else if fmt.thresholds {
        write!(
            out,
            "{head:<33} {:<10} {:<10} {:<10} {:<10}\n  -> RemoteAddress:Port\n",
            "Uthreshold", "Lthreshold", "ActiveConn", "InActConn"
        )
    } else if fmt.persistent_conn {
        write!(
            out,
            "{head:<33} {:<9} {:<11} {:<10} {:<10}\n  -> RemoteAddress:Port\n",
            "Weight", "PersistConn", "ActiveConn", "InActConn"
        )
    } else if fmt.tun_info {
        out.write_str("Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n")
    } else if !fmt.rule {
        out.write_str("Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n")
    } else {
        Ok(())
    };
}

/// `print_sched_flags`: the names depend on the scheduler.
fn sched_flags(s: &ListedService) -> String {
    let f = s.sched_flags;
    let names: &[(u32, &str)] = match s.scheduler.as_str() {
        "sh" => &[(SCHED1, "sh-fallback"), (SCHED2, "sh-port")],
        "mh" => &[(SCHED1, "mh-fallback"), (SCHED2, "mh-port")],
        _ => &[(SCHED1, "flag-1"), (SCHED2, "flag-2"), (SCHED3, "flag-3")],
    };
    names
        .iter()
        .filter(|(bit, _)| f & bit != 0)
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join(",")
}

fn protocol_of(s: &ListedService) -> Option<Protocol> {
    match s.key {
        ListedKey::Addr { protocol, .. } => Some(protocol),
        // ipvsadm gives a fwmark service IPPROTO_TCP, so its ports get TCP names.
        ListedKey::FwMark { .. } => Some(Protocol::Tcp),
    }
}

/// The netmask as ipvsadm prints it when it is not a host mask: dotted for IPv4, the
/// prefix length for IPv6.
fn netmask_text(s: &ListedService) -> Option<String> {
    match s.netmask? {
        IpAddr::V4(m) if u32::from(m) != u32::MAX => Some(m.to_string()),
        IpAddr::V6(m) => {
            let len = u128::from(m).leading_ones();
            (len != 128).then(|| len.to_string())
        }
        IpAddr::V4(_) => None,
    }
}

/// `print_service_entry`.
fn service_entry(out: &mut String, s: &ListedService, fmt: &Format, names: &dyn Names) {
    let proto = protocol_of(s);
    let svc_name = match s.key {
        // print_service_entry: "-f %d -6" / "FWM  %d IPv6" for an AF_INET6 fwmark service.
        ListedKey::FwMark {
            mark,
            family: Family::Ipv6,
        } if fmt.rule => format!("-f {mark} -6"),
        ListedKey::FwMark {
            mark,
            family: Family::Ipv6,
        } => format!("FWM  {mark} IPv6"),
        ListedKey::FwMark { mark, .. } if fmt.rule => format!("-f {mark}"),
        ListedKey::FwMark { mark, .. } => format!("FWM  {mark}"),
        ListedKey::Addr { protocol, addr } => {
            let vname = addrport(addr, proto, fmt, names);
            if fmt.rule {
                let flag = match protocol {
                    Protocol::Tcp => "-t",
                    Protocol::Udp => "-u",
                };
                format!("{flag} {vname}")
            } else {
                let mut n = format!("{:<4} {vname}", protocol.to_string());
                if !addr.is_ipv6() {
                    truncate(&mut n, 33);
                }
                n
            }
        }
    };
    let has_sched_flags = s.sched_flags & (SCHED1 | SCHED2 | SCHED3) != 0;
    if fmt.rule {
        let _ = write!(out, "-A {svc_name} -s {}", s.scheduler);
        if let Some(t) = s.persistent {
            let _ = write!(out, " -p {t}");
            if let Some(m) = netmask_text(s) {
                let _ = write!(out, " -M {m}");
            }
        }
        if s.ops {
            out.push_str(" -o");
        }
        if has_sched_flags {
            let _ = write!(out, " -b {}", sched_flags(s));
        }
    } else if fmt.stats || fmt.rate {
        let _ = write!(out, "{svc_name:<33}");
        counters5(out, &s.counters, fmt);
    } else {
        let _ = write!(out, "{svc_name} {}", s.scheduler);
        if has_sched_flags {
            let _ = write!(out, " ({})", sched_flags(s));
        }
        if let Some(t) = s.persistent {
            let _ = write!(out, " persistent {t}");
            if let Some(m) = netmask_text(s) {
                let _ = write!(out, " mask {m}");
            }
        }
        if s.ops {
            out.push_str(" ops");
        }
    }
    out.push('\n');

    let mut dests: Vec<&ListedDest> = s.dests.iter().collect();
    if !fmt.nosort {
        dests.sort_by(|a, b| cmp_dests(a, b));
    }
    for e in dests {
        let mut dname = addrport(e.addr, proto, fmt, names);
        if !fmt.rule && !e.addr.is_ipv6() {
            truncate(&mut dname, 28);
        }
        let _ = if fmt.rule {
            if e.fwd == Fwd::Tunnel {
                // libipvs leaves tun_type 0 (ipip) where the kernel reports none.
                writeln!(
                    out,
                    "-a {svc_name} -r {dname} {} -w {} --tun-type ipip",
                    e.fwd.switch(),
                    e.weight
                )
            } else {
                writeln!(
                    out,
                    "-a {svc_name} -r {dname} {} -w {}",
                    e.fwd.switch(),
                    e.weight
                )
            }
        } else if fmt.stats {
            let _ = write!(out, "  -> {dname:<28}");
            counters5(out, &e.counters, fmt);
            writeln!(out)
        } else if fmt.rate {
            let c = &e.counters;
            let _ = write!(
                out,
                "  -> {dname:<28} {:>8} {:>8} {:>8}",
                c.conns, c.inpkts, c.outpkts
            );
            largenum(out, c.inbytes, fmt);
            largenum(out, c.outbytes, fmt);
            writeln!(out)
        } else if fmt.thresholds {
            writeln!(
                out,
                "  -> {dname:<28} {:<10} {:<10} {:<10} {:<10}",
                e.u_threshold, e.l_threshold, e.active, e.inactive
            )
        } else if fmt.persistent_conn {
            writeln!(
                out,
                "  -> {dname:<28} {:<9} {:<11} {:<10} {:<10}",
                e.weight, e.persistent, e.active, e.inactive
            )
        } else if fmt.tun_info {
            let ti = if e.fwd == Fwd::Tunnel { "ipip" } else { "n/a" };
            writeln!(
                out,
                "  -> {dname:<28} {:<7} {ti:<13} {:<6} {:<10} {:<10}",
                e.fwd.name(),
                e.weight,
                e.active,
                e.inactive
            )
        } else {
            writeln!(
                out,
                "  -> {dname:<28} {:<7} {:<6} {:<10} {:<10}",
                e.fwd.name(),
                e.weight,
                e.active,
                e.inactive
            )
        };
    }
}

/// `(int)(a - b)` on unsigned values, as libipvs compares: a difference past 2^31 flips
/// the sign, and ipvsadm's order follows it.
fn c_diff(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

fn addr_words(ip: IpAddr) -> (u16, Vec<u32>) {
    match ip {
        IpAddr::V4(a) => (2, vec![u32::from(a)]),
        IpAddr::V6(a) => {
            let o = a.octets();
            (
                10,
                o.chunks(4)
                    .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            )
        }
    }
}

fn cmp_addr(a: IpAddr, b: IpAddr) -> i32 {
    let (_, wa) = addr_words(a);
    let (_, wb) = addr_words(b);
    wa.iter()
        .zip(wb.iter())
        .map(|(x, y)| c_diff(*x, *y))
        .find(|r| *r != 0)
        .unwrap_or(0)
}

/// libipvs `ipvs_cmp_dests`.
fn cmp_dests(a: &ListedDest, b: &ListedDest) -> std::cmp::Ordering {
    let r = cmp_addr(a.addr.ip(), b.addr.ip());
    let r = if r != 0 {
        r
    } else {
        i32::from(a.addr.port()) - i32::from(b.addr.port())
    };
    r.cmp(&0)
}

/// The kernel's view of a service for ordering: fwmark, af, protocol, address, port.
fn svc_sort_key(s: &ListedService) -> (u32, u16, i32, Option<SocketAddr>) {
    match s.key {
        ListedKey::FwMark { mark, family } => {
            let af = match family {
                Family::Ipv4 => 2,
                Family::Ipv6 => 10,
            };
            (mark, af, 6, None)
        }
        ListedKey::Addr { protocol, addr } => {
            let p = match protocol {
                Protocol::Tcp => 6,
                Protocol::Udp => 17,
            };
            (0, addr_words(addr.ip()).0, p, Some(addr))
        }
    }
}

/// libipvs `ipvs_cmp_services`.
fn cmp_services(a: &ListedService, b: &ListedService) -> std::cmp::Ordering {
    let (fa, afa, pa, aa) = svc_sort_key(a);
    let (fb, afb, pb, ab) = svc_sort_key(b);
    let mut r = c_diff(fa, fb);
    if r == 0 {
        r = i32::from(afa) - i32::from(afb);
    }
    if r == 0 {
        r = pa - pb;
    }
    if r == 0 {
        if let (Some(x), Some(y)) = (aa, ab) {
            r = cmp_addr(x.ip(), y.ip());
            if r == 0 {
                r = i32::from(x.port()) - i32::from(y.port());
            }
        }
    }
    r.cmp(&0)
}

/// `ipvsadm -L` / `-S` of the whole table (`list_all`): the version line unless `-S`,
/// the title, every service sorted as libipvs sorts them unless `--nosort`.
pub fn render_all(table: &Table, fmt: &Format, names: &dyn Names) -> String {
    let mut out = String::new();
    if !fmt.rule {
        let v = table.version;
        let _ = writeln!(
            out,
            "IP Virtual Server version {}.{}.{} (size={})",
            (v >> 16) & 0xff,
            (v >> 8) & 0xff,
            v & 0xff,
            table.conn_tab_size
        );
    }
    let mut services: Vec<&ListedService> = table.services.iter().collect();
    if !fmt.nosort {
        services.sort_by(|a, b| cmp_services(a, b));
    }
    title(&mut out, fmt);
    for s in services {
        service_entry(&mut out, s, fmt, names);
    }
    out
}

/// `ipvsadm -L -t VIP:PORT` (`list_service`): the title and that one service.
pub fn render_service(s: &ListedService, fmt: &Format, names: &dyn Names) -> String {
    let mut out = String::new();
    title(&mut out, fmt);
    service_entry(&mut out, s, fmt, names);
    out
}

/// `ipvsadm -Lc` (`list_conn`): one line per entry of the connection table, templates as
/// protocol `IP`, in the order given.
pub fn render_conns(conns: &[ConnRow], fmt: &Format, names: &dyn Names) -> String {
    let mut out = String::from("IPVS connection entries\n");
    let _ = if fmt.persistent_conn {
        writeln!(
            out,
            "pro expire {:<11} {:<18} {:<18} {:<18} {:<16} pe_data",
            "state", "source", "virtual", "destination", "pe name"
        )
    } else {
        writeln!(
            out,
            "pro expire {:<11} {:<18} {:<18} destination",
            "state", "source", "virtual"
        )
    };
    for c in conns {
        let pro = if c.template { "IP" } else { c.pro.as_str() };
        let proto = match pro {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            _ => None,
        };
        let expire = format!("{:02}:{:02}", c.expire_secs / 60, c.expire_secs % 60);
        let _ = writeln!(
            out,
            "{pro:<3} {expire:<6} {:<11} {:<18} {:<18} {}",
            c.state,
            addrport(c.source, proto, fmt, names),
            addrport(c.virtual_addr, proto, fmt, names),
            addrport(c.destination, proto, fmt, names),
        );
    }
    out
}

/// `ipvsadm -L --timeout`.
pub fn render_timeouts(table: &Table) -> String {
    let [tcp, fin, udp] = table.timeouts;
    format!("Timeout (tcp tcpfin udp): {tcp} {fin} {udp}\n")
}

/// `ipvsadm -L --daemon`.
pub fn render_daemons(table: &Table) -> String {
    table
        .daemons
        .iter()
        .map(|d| {
            format!(
                "{} sync daemon (mcast={}, syncid={})\n",
                d.state, d.mcast_ifn, d.syncid
            )
        })
        .collect()
}

fn rate(before: &Counters, after: &Counters, secs: f64) -> Counters {
    let r = |a: u64, b: u64| (b.saturating_sub(a) as f64 / secs).round() as u64;
    Counters {
        conns: r(before.conns, after.conns),
        inpkts: r(before.inpkts, after.inpkts),
        outpkts: r(before.outpkts, after.outpkts),
        inbytes: r(before.inbytes, after.inbytes),
        outbytes: r(before.outbytes, after.outbytes),
    }
}

/// `after` with every counter replaced by its rate per second since `before` (what
/// `--rate` prints: cps, inpps, outpps, inbps, outbps in the counters' places).
pub fn rates(before: &Table, after: &Table, elapsed: Duration) -> Table {
    let secs = elapsed.as_secs_f64().max(1e-3);
    let zero = Counters::default();
    let mut t = after.clone();
    for s in &mut t.services {
        let prev = before.service(&s.key);
        s.counters = rate(prev.map_or(&zero, |p| &p.counters), &s.counters, secs);
        for d in &mut s.dests {
            let pd = prev.and_then(|p| p.dests.iter().find(|x| x.addr == d.addr));
            d.counters = rate(pd.map_or(&zero, |p| &p.counters), &d.counters, secs);
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(key: ListedKey, sched: &str, dests: &[(&str, Fwd, u32)]) -> ListedService {
        ListedService {
            key,
            scheduler: sched.into(),
            persistent: None,
            netmask: None,
            ops: false,
            sched_flags: 0,
            counters: Counters::default(),
            dests: dests
                .iter()
                .map(|(a, fwd, w)| ListedDest {
                    addr: a.parse().unwrap(),
                    fwd: *fwd,
                    weight: *w,
                    u_threshold: 0,
                    l_threshold: 0,
                    active: 0,
                    inactive: 0,
                    persistent: 0,
                    counters: Counters::default(),
                })
                .collect(),
        }
    }

    fn tcp(a: &str) -> ListedKey {
        ListedKey::Addr {
            protocol: Protocol::Tcp,
            addr: a.parse().unwrap(),
        }
    }

    fn table(services: Vec<ListedService>) -> Table {
        Table::new(services, Timeouts::default())
    }

    fn numeric() -> Format {
        Format {
            numeric: true,
            ..Format::default()
        }
    }

    #[test]
    fn list_is_ipvsadm_ln() {
        let mut s = svc(
            tcp("192.168.1.250:80"),
            "rr",
            &[
                ("192.168.1.203:80", Fwd::Masq, 1),
                ("192.168.1.201:80", Fwd::Masq, 2),
            ],
        );
        s.dests[1].active = 1;
        s.dests[1].inactive = 4;
        let t = render_all(&table(vec![s]), &numeric(), &Numeric);
        assert_eq!(
            t,
            "IP Virtual Server version 1.2.1 (size=4096)\n\
             Prot LocalAddress:Port Scheduler Flags\n\
             \x20 -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
             TCP  192.168.1.250:80 rr\n\
             \x20 -> 192.168.1.201:80             Masq    2      1          4         \n\
             \x20 -> 192.168.1.203:80             Masq    1      0          0         \n"
        );
    }

    #[test]
    fn persistence_mask_ops_and_sched_flags_are_flags() {
        let mut s = svc(
            ListedKey::Addr {
                protocol: Protocol::Udp,
                addr: "10.0.0.1:53".parse().unwrap(),
            },
            "sh",
            &[],
        );
        s.persistent = Some(360);
        s.netmask = Some("255.255.255.0".parse().unwrap());
        s.ops = true;
        s.sched_flags = SCHED1 | SCHED2;
        let t = render_all(&table(vec![s.clone()]), &numeric(), &Numeric);
        assert!(
            t.contains(
                "UDP  10.0.0.1:53 sh (sh-fallback,sh-port) persistent 360 mask 255.255.255.0 ops\n"
            ),
            "{t}"
        );
        let rule = Format {
            numeric: true,
            rule: true,
            ..Format::default()
        };
        assert_eq!(
            render_all(&table(vec![s]), &rule, &Numeric),
            "-A -u 10.0.0.1:53 -s sh -p 360 -M 255.255.255.0 -o -b sh-fallback,sh-port\n"
        );
    }

    #[test]
    fn save_form_is_ipvsadm_save() {
        let s = svc(
            tcp("192.168.1.250:80"),
            "wlc",
            &[
                ("192.168.1.201:80", Fwd::Route, 1),
                ("192.168.1.202:80", Fwd::Tunnel, 3),
            ],
        );
        let f = ListedService {
            key: ListedKey::FwMark {
                mark: 1,
                family: Family::Ipv4,
            },
            ..svc(tcp("0.0.0.0:0"), "rr", &[("10.0.0.1:0", Fwd::Masq, 0)])
        };
        let rule = Format {
            numeric: true,
            rule: true,
            ..Format::default()
        };
        assert_eq!(
            render_all(&table(vec![f, s]), &rule, &Numeric),
            "-A -t 192.168.1.250:80 -s wlc\n\
             -a -t 192.168.1.250:80 -r 192.168.1.201:80 -g -w 1\n\
             -a -t 192.168.1.250:80 -r 192.168.1.202:80 -i -w 3 --tun-type ipip\n\
             -A -f 1 -s rr\n\
             -a -f 1 -r 10.0.0.1:0 -m -w 0\n"
        );
    }

    #[test]
    fn ipv6_fwmark_services_list_and_save_with_their_family() {
        let fwm = |family| ListedKey::FwMark { mark: 1, family };
        let v6 = ListedService {
            key: fwm(Family::Ipv6),
            ..svc(
                tcp("0.0.0.0:0"),
                "dh",
                &[
                    ("[2001:db8:1::201]:80", Fwd::Route, 1),
                    ("[2001:db8:1::203]:80", Fwd::Route, 1),
                ],
            )
        };
        let v4 = ListedService {
            key: fwm(Family::Ipv4),
            ..svc(
                tcp("0.0.0.0:0"),
                "dh",
                &[("192.168.1.201:80", Fwd::Route, 1)],
            )
        };
        // libipvs sorts by mark, then af: AF_INET (2) before AF_INET6 (10).
        let t = table(vec![v6, v4]);
        let text = render_all(&t, &numeric(), &Numeric);
        // ipvsadm pads the last column; the order and the family are what is checked here.
        let body: Vec<&str> = text.lines().skip(3).map(str::trim_end).collect();
        assert_eq!(
            body,
            [
                "FWM  1 dh",
                "  -> 192.168.1.201:80             Route   1      0          0",
                "FWM  1 IPv6 dh",
                "  -> [2001:db8:1::201]:80         Route   1      0          0",
                "  -> [2001:db8:1::203]:80         Route   1      0          0",
            ]
        );
        let rule = Format {
            numeric: true,
            rule: true,
            ..Format::default()
        };
        assert_eq!(
            render_all(&t, &rule, &Numeric),
            "-A -f 1 -s dh\n\
             -a -f 1 -r 192.168.1.201:80 -g -w 1\n\
             -A -f 1 -6 -s dh\n\
             -a -f 1 -6 -r [2001:db8:1::201]:80 -g -w 1\n\
             -a -f 1 -6 -r [2001:db8:1::203]:80 -g -w 1\n"
        );
        // The control protocol's form of an IPv4 key is what it was; IPv6 says so.
        assert_eq!(
            serde_json::to_string(&fwm(Family::Ipv4)).unwrap(),
            r#"{"kind":"fw_mark","mark":1}"#
        );
        let j = serde_json::to_string(&fwm(Family::Ipv6)).unwrap();
        assert_eq!(j, r#"{"kind":"fw_mark","mark":1,"family":"ipv6"}"#);
        assert_eq!(
            serde_json::from_str::<ListedKey>(&j).unwrap(),
            fwm(Family::Ipv6)
        );
        assert_eq!(ServiceKey::from(fwm(Family::Ipv6)), ServiceKey::fwmark6(1));
    }

    #[test]
    fn services_sort_as_libipvs_with_its_signed_difference() {
        // 10.0.0.1 - 192.168.1.1 wraps to a positive int: libipvs puts 192.168.1.1 first.
        let t = table(vec![
            svc(tcp("10.0.0.1:80"), "rr", &[]),
            svc(tcp("192.168.1.1:80"), "rr", &[]),
            svc(tcp("10.0.0.1:22"), "rr", &[]),
        ]);
        let text = render_all(&t, &numeric(), &Numeric);
        let order: Vec<&str> = text.lines().skip(3).collect();
        assert_eq!(
            order,
            [
                "TCP  192.168.1.1:80 rr",
                "TCP  10.0.0.1:22 rr",
                "TCP  10.0.0.1:80 rr"
            ]
        );
    }

    #[test]
    fn stats_columns_and_big_numbers() {
        let mut s = svc(
            tcp("192.168.1.250:80"),
            "rr",
            &[("192.168.1.201:80", Fwd::Masq, 1)],
        );
        s.counters = Counters {
            conns: 100,
            inpkts: 600,
            outpkts: 123_456_789,
            inbytes: 2_000_000_000,
            outbytes: 0,
        };
        let f = Format {
            numeric: true,
            stats: true,
            ..Format::default()
        };
        let text = render_all(&table(vec![s.clone()]), &f, &Numeric);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[1],
            "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes"
        );
        assert_eq!(lines[2], "  -> RemoteAddress:Port");
        assert_eq!(
            lines[3],
            "TCP  192.168.1.250:80                  100      600  123456K    2000M        0"
        );
        let exact = Format { exact: true, ..f };
        let text = render_all(&table(vec![s]), &exact, &Numeric);
        assert!(
            text.contains("      600 123456789 2000000000        0"),
            "{text}"
        );
    }

    #[test]
    fn conns_are_ipvsadm_lnc() {
        let row = ConnRow {
            pro: "TCP".into(),
            expire_secs: 899,
            state: "ESTABLISHED".into(),
            source: "198.51.100.10:40000".parse().unwrap(),
            virtual_addr: "192.168.1.250:80".parse().unwrap(),
            destination: "192.168.1.201:80".parse().unwrap(),
            active: true,
            template: false,
        };
        let tpl = ConnRow {
            pro: "TCP".into(),
            state: "NONE".into(),
            template: true,
            source: "198.51.100.10:0".parse().unwrap(),
            ..row.clone()
        };
        assert_eq!(
            render_conns(&[row, tpl], &numeric(), &Numeric),
            "IPVS connection entries\n\
             pro expire state       source             virtual            destination\n\
             TCP 14:59  ESTABLISHED 198.51.100.10:40000 192.168.1.250:80   192.168.1.201:80\n\
             IP  14:59  NONE        198.51.100.10:0    192.168.1.250:80   192.168.1.201:80\n"
        );
    }

    #[test]
    fn thresholds_and_persistent_conn_columns() {
        let mut s = svc(
            tcp("192.168.1.250:80"),
            "wlc",
            &[("192.168.1.201:80", Fwd::Route, 1)],
        );
        s.dests[0].u_threshold = 100;
        s.dests[0].l_threshold = 75;
        let f = Format {
            numeric: true,
            thresholds: true,
            ..Format::default()
        };
        let t = render_service(&s, &f, &Numeric);
        assert_eq!(
            t,
            "Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn \n\
             \x20 -> RemoteAddress:Port\n\
             TCP  192.168.1.250:80 wlc\n\
             \x20 -> 192.168.1.201:80             100        75         0          0         \n"
        );
    }

    #[test]
    fn names_replace_numbers_without_n() {
        struct Fake;
        impl Names for Fake {
            fn host(&self, ip: IpAddr) -> Option<String> {
                (ip.to_string() == "192.168.1.250").then(|| "www.example".into())
            }
            fn service(&self, port: u16, p: Option<Protocol>) -> Option<String> {
                (port == 80 && p == Some(Protocol::Tcp)).then(|| "http".into())
            }
        }
        let s = svc(
            tcp("192.168.1.250:80"),
            "rr",
            &[("192.168.1.201:80", Fwd::Masq, 1)],
        );
        let t = render_all(&table(vec![s]), &Format::default(), &Fake);
        assert!(t.contains("TCP  www.example:http rr\n"), "{t}");
        assert!(t.contains("  -> 192.168.1.201:http           Masq"), "{t}");
    }
}
