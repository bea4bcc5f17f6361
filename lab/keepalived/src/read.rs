//! The keyword tree into lvslab services, with keepalived 2.2.7's defaults and checks.
//! Each default cites where keepalived sets it.
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use lvslab_netns::{
    ForwardMethod, HealthCheck, HealthSpec, Protocol, RealServerSpec, Scheduler, ServiceSpec,
    VrrpSpec,
};

use crate::keywords as kw;
use crate::lex::{whitespace_hint, Node, Reader};
use crate::{ImportError, ImportWarning, Imported, Problem};

/// keepalived's timers are in microseconds (lib/timer.h `TIMER_HZ` 1000000).
const HZ: u64 = 1_000_000;
/// check_data.c `alloc_vs`: `new->delay_loop = KEEPALIVED_DEFAULT_DELAY` (60 * TIMER_HZ).
const DEFAULT_DELAY_LOOP: u64 = 60 * HZ;
/// check_data.c `alloc_vs`: `new->connection_to = 5 * TIMER_HZ`.
const DEFAULT_CONNECT_TIMEOUT: u64 = 5 * HZ;
/// check_api.c `queue_checker`: `checker->default_retry = 1`.
const DEFAULT_RETRY: u32 = 1;
/// check_misc.c `misc_check_handler`: "Set non-standard default value" `default_retry = 0`.
const DEFAULT_MISC_RETRY: u32 = 0;
/// check_api.c `queue_checker`: `default_delay_before_retry = 1 * TIMER_HZ`.
const DEFAULT_DELAY_BEFORE_RETRY: u64 = HZ;
/// check_http.c `http_get_handler`: `default_delay_before_retry = 3 * TIMER_HZ`.
const DEFAULT_HTTP_DELAY_BEFORE_RETRY: u64 = 3 * HZ;
/// libipvs.h `IPVS_SVC_PERSISTENT_TIMEOUT` (6*60): a bare persistence_timeout.
const PERSISTENT_TIMEOUT: u32 = 360;
/// global_data.h `LVS_MAX_TIMEOUT` (86400*31).
const LVS_MAX_TIMEOUT: u32 = 86400 * 31;
/// ip_vs.h `IPVS_WEIGHT_LIMIT` (IPVS_WEIGHT_MAX, 65535).
const WEIGHT_LIMIT: u32 = 65535;
/// vrrp.h `VRRP_PRIO_DFL` 100 and `VRRP_PRIO_OWNER` 255.
const PRIO_DFL: u32 = 100;
const PRIO_OWNER: u32 = 255;
/// What lvslab gives the side of the pair the file does not describe: the gap of
/// keepalived's own example pair (MASTER 150, BACKUP 100) and lvslab's defaults.
const PRIO_GAP: u8 = VrrpSpec::PRIORITY - VrrpSpec::BACKUP_PRIORITY;

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Master,
    Backup,
}

#[derive(Debug, Clone)]
struct Instance {
    name: String,
    file: usize,
    line: usize,
    state: Option<State>,
    priority: Option<u32>,
    vrid: Option<u8>,
    version: Option<u8>,
    advert_us: Option<u64>,
    nopreempt: Option<usize>,
    vips: Vec<IpAddr>,
    sync_iface: bool,
}

#[derive(Debug, Clone, Default)]
struct Timings {
    delay_loop: Option<u64>,
    connect_timeout: Option<u64>,
    retry: Option<u32>,
    delay_before_retry: Option<u64>,
}

#[derive(Debug, Clone)]
enum CheckKind {
    Tcp,
    Http {
        ssl: bool,
        urls: Vec<Url>,
    },
    Udp {
        payload: Option<String>,
        reply: Option<Option<String>>,
    },
    Misc {
        args: Vec<String>,
    },
}

#[derive(Debug, Clone)]
struct Url {
    path: Option<String>,
    status: Vec<(u16, u16)>,
    digest: Option<String>,
}

#[derive(Debug, Clone)]
struct Checker {
    file: usize,
    line: usize,
    name: String,
    kind: CheckKind,
    connect_port: Option<u16>,
    t: Timings,
}

#[derive(Debug, Clone)]
struct Rs {
    file: usize,
    line: usize,
    ip: IpAddr,
    port: Option<u16>,
    weight: Option<u32>,
    method: Option<ForwardMethod>,
    inhibit: Option<bool>,
    uthreshold: u32,
    lthreshold: u32,
    t: Timings,
    checkers: Vec<Checker>,
}

#[derive(Debug, Clone)]
enum VsKey {
    Addr(IpAddr, u16),
    Fwmark(u32),
    Group(String),
}

#[derive(Debug, Clone)]
struct Vs {
    file: usize,
    line: usize,
    key: VsKey,
    sched: Option<Scheduler>,
    method: Option<ForwardMethod>,
    persistence: Option<u32>,
    granularity: Option<(usize, usize, String)>,
    protocol: Option<Protocol>,
    t: Timings,
    inhibit: bool,
    weight: u32,
    sorry: Option<(usize, usize, IpAddr, Option<u16>)>,
    rs: Vec<Rs>,
    /// `ip_family inet6` (true) or `inet` (false), when given.
    ip_family_v6: Option<bool>,
}

impl Vs {
    /// Is the virtual server IPv6, as keepalived decides (check_parser.c): `ip_family` when
    /// given, else the first real server that is not tunnelled (rs_end_handler), else the
    /// tunnelled ones when they agree (vs_end_handler), else IPv4. What matters for a
    /// fwmark service, which has no address of its own.
    fn is_ipv6(&self) -> bool {
        if let Some(v6) = self.ip_family_v6 {
            return v6;
        }
        let tunnelled = |r: &Rs| r.method.or(self.method) == Some(ForwardMethod::Tun);
        if let Some(r) = self.rs.iter().find(|r| !tunnelled(r)) {
            return r.ip.is_ipv6();
        }
        let mut all = self.rs.iter().map(|r| r.ip.is_ipv6());
        let first = all.next().unwrap_or(false);
        first && all.all(|v6| v6)
    }
}

#[derive(Debug, Clone)]
enum GroupEntry {
    Addrs(Vec<IpAddr>, u16),
    Fwmark(u32),
}

struct Cx {
    files: Vec<PathBuf>,
    problems: Vec<Problem>,
    warnings: Vec<ImportWarning>,
    /// Known keywords lvslab does not model: first place and how often.
    ignored: BTreeMap<(usize, usize, String), usize>,
    ignored_index: BTreeMap<String, (usize, usize, String)>,
    vrrp_version: Option<u8>,
    sync_daemon: Option<(Option<String>, Option<u8>)>,
    instances: Vec<Instance>,
    sync_groups: Vec<(usize, usize, String, Vec<String>)>,
    groups: BTreeMap<String, Vec<(usize, usize, GroupEntry)>>,
    vss: Vec<Vs>,
}

pub(crate) fn interpret(r: Reader, tree: &[Node]) -> Result<Imported, ImportError> {
    let mut cx = Cx {
        files: r.files,
        problems: r.problems,
        warnings: r.warnings,
        ignored: BTreeMap::new(),
        ignored_index: BTreeMap::new(),
        vrrp_version: None,
        sync_daemon: None,
        instances: Vec::new(),
        sync_groups: Vec::new(),
        groups: BTreeMap::new(),
        vss: Vec::new(),
    };
    for n in tree {
        cx.root(n);
    }
    let services = cx.services();
    for ((file, line, key), count) in std::mem::take(&mut cx.ignored) {
        let more = if count > 1 {
            format!(" (here and {} more times)", count - 1)
        } else {
            String::new()
        };
        cx.warn_at(
            file,
            line,
            format!("`{key}` is not modelled by lvslab: ignored{more}"),
        );
    }
    let mut warnings = cx.warnings;
    warnings.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    if cx.problems.is_empty() {
        Ok(Imported { services, warnings })
    } else {
        let mut problems = cx.problems;
        problems.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
        problems.dedup();
        Err(ImportError::Unsupported { problems, warnings })
    }
}

/// A decimal unsigned number as keepalived's read_unsigned takes it (digits only).
fn unsigned(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// read_timer: seconds with up to six decimals, in microseconds.
fn timer(s: &str) -> Option<u64> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 6 || (!frac.is_empty() && !frac.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    let i = unsigned(int)?;
    let f = if frac.is_empty() {
        0
    } else {
        unsigned(&format!("{frac:0<6}"))?
    };
    i.checked_mul(HZ)?.checked_add(f)
}

fn parse_ip(s: &str) -> Option<IpAddr> {
    s.parse().ok()
}

impl Cx {
    fn path(&self, file: usize) -> PathBuf {
        self.files.get(file).cloned().unwrap_or_default()
    }
    fn warn_at(&mut self, file: usize, line: usize, message: impl Into<String>) {
        self.warnings.push(ImportWarning {
            file: self.path(file),
            line,
            message: message.into(),
        });
    }
    fn warn(&mut self, n: &Node, message: impl Into<String>) {
        self.warn_at(n.file, n.line, message);
    }
    fn error_at(&mut self, file: usize, line: usize, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.path(file),
            line,
            message: message.into(),
        });
    }
    fn error(&mut self, n: &Node, message: impl Into<String>) {
        self.error_at(n.file, n.line, message);
    }

    fn ignore(&mut self, n: &Node) {
        let key = n.key().to_string();
        let at = self
            .ignored_index
            .entry(key.clone())
            .or_insert((n.file, n.line, key))
            .clone();
        *self.ignored.entry(at).or_insert(0) += 1;
    }

    /// A keyword this level does not have: keepalived reports "Unknown keyword" and goes on.
    fn unknown(&mut self, n: &Node) {
        let hint = whitespace_hint(n.key()).unwrap_or_default();
        let msg = format!(
            "unknown keyword `{}`: keepalived 2.2.7 ignores it too{hint}",
            n.key().escape_debug()
        );
        self.warn(n, msg);
    }

    /// Keywords known at this level but not modelled, or unknown.
    fn other(&mut self, n: &Node, table: &[&str]) {
        if table.contains(&n.key()) {
            self.ignore(n);
        } else {
            self.unknown(n);
        }
    }

    fn bad_value(&mut self, n: &Node, what: &str) {
        let v = n.arg(1).unwrap_or("");
        let hint = whitespace_hint(v).unwrap_or_default();
        self.warn(
            n,
            format!("{what} {:?} is invalid: keepalived ignores it{hint}", v),
        );
    }

    fn root(&mut self, n: &Node) {
        match n.key() {
            "global_defs" => {
                for c in n.children() {
                    self.global(c);
                }
            }
            "vrrp_instance" => self.instance(n),
            "vrrp_sync_group" => self.sync_group(n),
            "virtual_server_group" => self.group(n),
            "virtual_server" => self.virtual_server(n),
            k if kw::ROOT.contains(&k) => self.ignore(n),
            _ => self.unknown(n),
        }
    }

    fn global(&mut self, n: &Node) {
        match n.key() {
            "vrrp_version" => match n.arg(1).and_then(unsigned) {
                Some(v @ (2 | 3)) => self.vrrp_version = Some(v as u8),
                _ => self.bad_value(n, "vrrp_version"),
            },
            "lvs_sync_daemon" => {
                // global_parser.c lvs_syncd_handler: IFNAME [inst NAME] [id N] ..., or the
                // old IFNAME VRRP_INSTANCE [SYNC_ID]; the sync id defaults to the vrid.
                let mut inst = None;
                let mut id = None;
                let mut i = 2;
                while let Some(w) = n.arg(i) {
                    match w {
                        "inst" => {
                            inst = n.arg(i + 1).map(str::to_string);
                            i += 1;
                        }
                        "id" => {
                            id = n
                                .arg(i + 1)
                                .and_then(unsigned)
                                .and_then(|v| u8::try_from(v).ok());
                            i += 1;
                        }
                        "maxlen" | "port" | "ttl" | "group" => i += 1,
                        _ if i == 2 => inst = Some(w.to_string()),
                        _ if i == 3 => id = unsigned(w).and_then(|v| u8::try_from(v).ok()),
                        _ => {}
                    }
                    i += 1;
                }
                if n.arg(1).is_none() {
                    self.warn(
                        n,
                        "lvs_sync_daemon requires an interface: keepalived ignores it",
                    );
                } else if self.sync_daemon.is_some() {
                    self.warn(
                        n,
                        "lvs_sync_daemon has already been specified: keepalived ignores this one",
                    );
                } else {
                    self.sync_daemon = Some((inst, id));
                }
            }
            "router_id" => {}
            k => {
                let k = k.to_string();
                let _ = k;
                self.other(n, kw::GLOBAL_DEFS);
            }
        }
    }

    fn instance(&mut self, n: &Node) {
        let mut inst = Instance {
            name: n.arg(1).unwrap_or("").to_string(),
            file: n.file,
            line: n.line,
            state: None,
            priority: None,
            vrid: None,
            version: None,
            advert_us: None,
            nopreempt: None,
            vips: Vec::new(),
            sync_iface: false,
        };
        for c in n.children() {
            match c.key() {
                // vrrp_parser.c vrrp_state_handler: unknown states default to BACKUP, and
                // BACKUP after MASTER is ignored.
                "state" => match c.arg(1) {
                    Some("MASTER") => inst.state = Some(State::Master),
                    Some("BACKUP") => {
                        if inst.state == Some(State::Master) {
                            self.warn(
                                c,
                                "state previously set as MASTER: keepalived ignores BACKUP",
                            );
                        } else {
                            inst.state = Some(State::Backup);
                        }
                    }
                    other => {
                        self.warn(
                            c,
                            format!(
                                "unknown state {:?}: keepalived defaults to BACKUP",
                                other.unwrap_or("")
                            ),
                        );
                        inst.state = Some(State::Backup);
                    }
                },
                "virtual_router_id" => match c.arg(1).and_then(unsigned) {
                    Some(v @ 1..=255) => inst.vrid = Some(v as u8),
                    _ => self.bad_value(c, "virtual_router_id (1 to 255)"),
                },
                // vrrp_prio_handler: invalid -> VRRP_PRIO_DFL with an error.
                "priority" => match c.arg(1).and_then(unsigned) {
                    Some(v @ 1..=255) => inst.priority = Some(v as u32),
                    _ => {
                        let v = c.arg(1).unwrap_or("");
                        self.warn(c, format!("priority {v:?} is not 1 to 255: keepalived uses its default {PRIO_DFL}"));
                        inst.priority = Some(PRIO_DFL);
                    }
                },
                "version" => match c.arg(1).and_then(unsigned) {
                    Some(v @ (2 | 3)) => inst.version = Some(v as u8),
                    _ => self.bad_value(c, "version"),
                },
                // vrrp_adv_handler: 0.01 s to 255 s, decimal seconds.
                "advert_int" => match c.arg(1).and_then(timer) {
                    Some(us) if (HZ / 100..=255 * HZ).contains(&us) => inst.advert_us = Some(us),
                    _ => self.bad_value(c, "advert_int"),
                },
                "nopreempt" => inst.nopreempt = Some(c.line),
                "preempt" => inst.nopreempt = None,
                "virtual_ipaddress" => {
                    for a in c.children() {
                        // "ADDR[/LEN] [dev IF] [label L] ...": the address is the first word.
                        let w = a.key();
                        let addr = w.split('/').next().unwrap_or(w);
                        match parse_ip(addr) {
                            Some(ip) => inst.vips.push(ip),
                            None => {
                                let hint = whitespace_hint(w).unwrap_or_default();
                                self.warn(a, format!("virtual_ipaddress {w:?} is not an address: keepalived skips it{hint}"));
                            }
                        }
                    }
                }
                "lvs_sync_daemon_interface" => {
                    self.warn(c, "lvs_sync_daemon_interface in a vrrp_instance is deprecated (keepalived says so too); read as global lvs_sync_daemon for this instance");
                    inst.sync_iface = true;
                }
                // The VIP takes packets either way in lvslab, so accept changes nothing.
                "accept" | "interface" => {}
                _ => self.other(c, kw::VRRP_INSTANCE),
            }
        }
        self.instances.push(inst);
    }

    fn sync_group(&mut self, n: &Node) {
        let name = n.arg(1).unwrap_or("").to_string();
        let mut members = Vec::new();
        for c in n.children() {
            match c.key() {
                "group" => {
                    for m in c.children() {
                        members.extend(m.words.iter().cloned());
                    }
                }
                _ => self.other(c, kw::SYNC_GROUP),
            }
        }
        self.sync_groups.push((n.file, n.line, name, members));
    }

    /// check_data.c alloc_vsg_entry: `ADDR [PORT]`, `ADDR-LAST [PORT]` (last byte, or last
    /// 16-bit group for IPv6), `ADDR-ENDADDR`, `ADDR/LEN`, `fwmark N`.
    fn group(&mut self, n: &Node) {
        let name = n.arg(1).unwrap_or("").to_string();
        let mut entries = Vec::new();
        for e in n.children() {
            if e.key() == "fwmark" {
                match e
                    .arg(1)
                    .and_then(unsigned)
                    .and_then(|v| u32::try_from(v).ok())
                {
                    Some(m) => entries.push((e.file, e.line, GroupEntry::Fwmark(m))),
                    None => self.bad_value(e, "fwmark"),
                }
                continue;
            }
            let port = match e.arg(1) {
                None => 0,
                Some(p) => match unsigned(p).and_then(|v| u16::try_from(v).ok()) {
                    Some(p) => p,
                    None => {
                        self.warn(e, format!("invalid virtual server group port {p:?}: keepalived skips the entry"));
                        continue;
                    }
                },
            };
            match expand_range(e.key()) {
                Ok(addrs) => entries.push((e.file, e.line, GroupEntry::Addrs(addrs, port))),
                Err(why) => self.warn(e, format!("{why}: keepalived skips the entry")),
            }
        }
        if entries.is_empty() {
            self.warn(
                n,
                format!("virtual server group {name} has no entries: keepalived removes it"),
            );
        }
        self.groups.insert(name, entries);
    }

    fn timing(&mut self, c: &Node, t: &mut Timings) -> bool {
        match c.key() {
            "delay_loop" => match c.arg(1).and_then(timer) {
                Some(v) if v >= 1 => t.delay_loop = Some(v),
                _ => self.bad_value(c, "delay_loop"),
            },
            "connect_timeout" => match c.arg(1).and_then(timer) {
                Some(v) if v >= 1 => t.connect_timeout = Some(v),
                _ => self.bad_value(c, "connect_timeout"),
            },
            "delay_before_retry" => match c.arg(1).and_then(timer) {
                Some(v) => t.delay_before_retry = Some(v),
                _ => self.bad_value(c, "delay_before_retry"),
            },
            "retry" => {
                match c
                    .arg(1)
                    .and_then(unsigned)
                    .and_then(|v| u32::try_from(v).ok())
                {
                    Some(v) => t.retry = Some(v),
                    None => self.bad_value(c, c.key()),
                }
            }
            _ => return false,
        }
        true
    }

    fn virtual_server(&mut self, n: &Node) {
        let key = match (n.arg(1), n.arg(2)) {
            (Some("group"), Some(g)) => VsKey::Group(g.to_string()),
            (Some("fwmark"), Some(m)) => match unsigned(m).and_then(|v| u32::try_from(v).ok()) {
                Some(m) => VsKey::Fwmark(m),
                None => {
                    let hint = whitespace_hint(m).unwrap_or_default();
                    self.warn(n, format!("virtual server fwmark {m:?} is invalid: keepalived skips the block{hint}"));
                    return;
                }
            },
            (Some(a), p) => {
                let port = match p.map(|p| unsigned(p).and_then(|v| u16::try_from(v).ok())) {
                    None => Some(0),
                    Some(v) => v,
                };
                match (parse_ip(a), port) {
                    (Some(ip), Some(port)) => VsKey::Addr(ip, port),
                    _ => {
                        let hint = whitespace_hint(a)
                            .or_else(|| p.and_then(whitespace_hint))
                            .unwrap_or_default();
                        self.error(n, format!("invalid virtual server address/port {:?}: keepalived skips the whole block{hint}", n.words[1..].join(" ")));
                        return;
                    }
                }
            }
            (None, _) => {
                self.error(n, "virtual_server without an address");
                return;
            }
        };
        let mut vs = Vs {
            file: n.file,
            line: n.line,
            key,
            sched: None,
            method: None,
            persistence: None,
            granularity: None,
            protocol: None,
            t: Timings::default(),
            inhibit: false,
            weight: 1,
            sorry: None,
            rs: Vec::new(),
            ip_family_v6: None,
        };
        for c in n.children() {
            if self.timing(c, &mut vs.t) {
                continue;
            }
            match c.key() {
                // check_parser.c lbalgo_handler: an unknown name is ignored (the default
                // applies later).
                "lb_algo" | "lvs_sched" => match c.arg(1).and_then(|s| s.parse::<Scheduler>().ok())
                {
                    Some(s) => vs.sched = Some(s),
                    None => self.warn(
                        c,
                        format!(
                            "invalid lvs_scheduler {:?}: keepalived ignores it",
                            c.arg(1).unwrap_or("")
                        ),
                    ),
                },
                "lb_kind" | "lvs_method" => match method(c) {
                    Ok(m) => vs.method = Some(m),
                    Err(e) => self.warn(c, e),
                },
                // pto_handler: bare -> IPVS_SVC_PERSISTENT_TIMEOUT; 1..LVS_MAX_TIMEOUT.
                "persistence_timeout" => match c.arg(1) {
                    None => vs.persistence = Some(PERSISTENT_TIMEOUT),
                    Some(v) => match unsigned(v).and_then(|v| u32::try_from(v).ok()) {
                        Some(t @ 1..=LVS_MAX_TIMEOUT) => vs.persistence = Some(t),
                        _ => self.bad_value(c, "persistence_timeout"),
                    },
                },
                "persistence_granularity" => {
                    vs.granularity = Some((c.file, c.line, c.arg(1).unwrap_or("").to_string()));
                }
                // proto_handler: strcasecmp TCP/UDP/SCTP.
                "protocol" => match c.arg(1).map(str::to_ascii_uppercase).as_deref() {
                    Some("TCP") => vs.protocol = Some(Protocol::Tcp),
                    Some("UDP") => vs.protocol = Some(Protocol::Udp),
                    Some("SCTP") => {
                        self.error(c, "protocol SCTP: lvslab balances TCP and UDP only")
                    }
                    _ => self.warn(
                        c,
                        format!(
                            "unknown protocol {:?}: keepalived ignores it",
                            c.arg(1).unwrap_or("")
                        ),
                    ),
                },
                "inhibit_on_failure" => vs.inhibit = true,
                "weight" => match c
                    .arg(1)
                    .and_then(unsigned)
                    .and_then(|v| u32::try_from(v).ok())
                {
                    Some(w) if w <= WEIGHT_LIMIT => vs.weight = w,
                    _ => self.bad_value(c, "weight"),
                },
                "sorry_server" => {
                    let ip = c.arg(1).and_then(parse_ip);
                    let port = c
                        .arg(2)
                        .and_then(unsigned)
                        .and_then(|v| u16::try_from(v).ok());
                    match ip {
                        Some(ip) => vs.sorry = Some((c.file, c.line, ip, port.filter(|p| *p != 0))),
                        None => self.warn(c, "invalid sorry server address: keepalived skips it"),
                    }
                }
                "real_server" => {
                    if let Some(rs) = self.real_server(c, &vs) {
                        vs.rs.push(rs);
                    }
                }
                // ip_family_handler: read for a fwmark service's family, otherwise listed
                // as ignored as before (an address service's VIP names its family).
                "ip_family" => {
                    match c.arg(1) {
                        Some("inet") => vs.ip_family_v6 = Some(false),
                        Some("inet6") => vs.ip_family_v6 = Some(true),
                        _ => {}
                    }
                    self.other(c, kw::VIRTUAL_SERVER);
                }
                _ => self.other(c, kw::VIRTUAL_SERVER),
            }
        }
        self.vss.push(vs);
    }

    fn real_server(&mut self, n: &Node, vs: &Vs) -> Option<Rs> {
        let ip = n.arg(1).and_then(parse_ip);
        let port = match n.arg(2) {
            None => Some(None),
            Some(p) => unsigned(p)
                .and_then(|v| u16::try_from(v).ok())
                .map(|p| (p != 0).then_some(p)),
        };
        let (Some(ip), Some(port)) = (ip, port) else {
            let words = n.words[1..].join(" ");
            let hint = n.words[1..]
                .iter()
                .find_map(|w| whitespace_hint(w))
                .unwrap_or_default();
            self.warn(n, format!("invalid real server address/port {words:?}: keepalived skips this real server{hint}"));
            return None;
        };
        let _ = vs;
        let mut rs = Rs {
            file: n.file,
            line: n.line,
            ip,
            port,
            weight: None,
            method: None,
            inhibit: None,
            uthreshold: 0,
            lthreshold: 0,
            t: Timings::default(),
            checkers: Vec::new(),
        };
        for c in n.children() {
            if self.timing(c, &mut rs.t) {
                continue;
            }
            match c.key() {
                // rs_weight_handler: 0..IPVS_WEIGHT_LIMIT, invalid ignored.
                "weight" => match c
                    .arg(1)
                    .and_then(unsigned)
                    .and_then(|v| u32::try_from(v).ok())
                {
                    Some(w) if w <= WEIGHT_LIMIT => rs.weight = Some(w),
                    _ => self.bad_value(c, "real server weight"),
                },
                "lvs_method" => match method(c) {
                    Ok(m) => rs.method = Some(m),
                    Err(e) => self.warn(c, e),
                },
                "inhibit_on_failure" => match c.arg(1) {
                    None => rs.inhibit = Some(true),
                    Some("true" | "on" | "yes") => rs.inhibit = Some(true),
                    Some("false" | "off" | "no") => rs.inhibit = Some(false),
                    Some(_) => self.bad_value(c, "inhibit_on_failure"),
                },
                "uthreshold" => match c
                    .arg(1)
                    .and_then(unsigned)
                    .and_then(|v| u32::try_from(v).ok())
                {
                    Some(v) => rs.uthreshold = v,
                    None => self.bad_value(c, "uthreshold"),
                },
                "lthreshold" => match c
                    .arg(1)
                    .and_then(unsigned)
                    .and_then(|v| u32::try_from(v).ok())
                {
                    Some(v) => rs.lthreshold = v,
                    None => self.bad_value(c, "lthreshold"),
                },
                "TCP_CHECK" | "HTTP_GET" | "SSL_GET" | "UDP_CHECK" | "MISC_CHECK" => {
                    if let Some(ch) = self.checker(c) {
                        rs.checkers.push(ch);
                    }
                }
                "SMTP_CHECK" | "DNS_CHECK" | "PING_CHECK" | "FILE_CHECK" | "BFD_CHECK" => {
                    self.warn(c, format!("{}: lvslab's health checks are tcp, http, udp and command; this checker is not run (the server counts as up, as with no checker)", c.key()));
                }
                _ => self.other(c, kw::REAL_SERVER),
            }
        }
        Some(rs)
    }

    fn checker(&mut self, n: &Node) -> Option<Checker> {
        let mut kind = match n.key() {
            "TCP_CHECK" => CheckKind::Tcp,
            "HTTP_GET" => CheckKind::Http {
                ssl: false,
                urls: Vec::new(),
            },
            "SSL_GET" => CheckKind::Http {
                ssl: true,
                urls: Vec::new(),
            },
            "UDP_CHECK" => CheckKind::Udp {
                payload: None,
                reply: None,
            },
            _ => CheckKind::Misc { args: Vec::new() },
        };
        let mut ch = Checker {
            file: n.file,
            line: n.line,
            name: n.key().to_string(),
            kind: CheckKind::Tcp,
            connect_port: None,
            t: Timings::default(),
        };
        let connects = !matches!(kind, CheckKind::Misc { .. });
        for c in n.children() {
            if (connects || c.key() != "connect_timeout") && self.timing(c, &mut ch.t) {
                continue;
            }
            match (c.key(), &mut kind) {
                // check_http.c: nb_get_retry is an HTTP_GET/SSL_GET keyword only (deprecated);
                // in any other checker keepalived reports it unknown and keeps its retry.
                ("nb_get_retry", CheckKind::Http { .. }) => {
                    self.warn(c, "nb_get_retry is deprecated - please use 'retry' (keepalived's own warning); read as retry");
                    match c
                        .arg(1)
                        .and_then(unsigned)
                        .and_then(|v| u32::try_from(v).ok())
                    {
                        Some(v) => ch.t.retry = Some(v),
                        None => self.bad_value(c, "nb_get_retry"),
                    }
                }
                ("connect_port", _) if connects => {
                    match c
                        .arg(1)
                        .and_then(unsigned)
                        .and_then(|v| u16::try_from(v).ok())
                    {
                        Some(p) => ch.connect_port = Some(p),
                        None => self.bad_value(c, "connect_port"),
                    }
                }
                ("url", CheckKind::Http { urls, .. }) => {
                    let mut u = Url {
                        path: None,
                        status: Vec::new(),
                        digest: None,
                    };
                    for k in c.children() {
                        match k.key() {
                            "path" => u.path = k.arg(1).map(str::to_string),
                            // digest_handler: 32 hex digits, else ignored.
                            "digest" => match k.arg(1) {
                                Some(d)
                                    if d.len() == 32
                                        && d.bytes().all(|b| b.is_ascii_hexdigit()) =>
                                {
                                    u.digest = Some(d.to_ascii_lowercase());
                                }
                                _ => self.bad_value(k, "digest"),
                            },
                            // status_code_handler: codes and ranges, 100..=599.
                            "status_code" => {
                                for w in &k.words[1..] {
                                    let (a, b) = w.split_once('-').unwrap_or((w, w));
                                    match (unsigned(a), unsigned(b)) {
                                        (Some(a), Some(b)) if (100..=599).contains(&a) && (a..=599).contains(&b) => {
                                            u.status.push((a as u16, b as u16));
                                        }
                                        _ => self.warn(k, format!("invalid HTTP_GET status code {w:?}: keepalived ignores it")),
                                    }
                                }
                            }
                            _ => self.other(k, kw::URL),
                        }
                    }
                    // url_check: a url without a path is dropped.
                    if u.path.is_none() {
                        self.warn(
                            c,
                            "HTTP/SSL_GET checker url has no path: keepalived ignores it",
                        );
                    } else {
                        urls.push(u);
                    }
                }
                // misc_timeout_handler: whole seconds.
                ("misc_timeout", CheckKind::Misc { .. }) => match c.arg(1).and_then(unsigned) {
                    Some(v) => ch.t.connect_timeout = Some(v * HZ),
                    None => self.bad_value(c, "misc_timeout"),
                },
                ("payload", CheckKind::Udp { payload, .. }) => {
                    *payload = Some(c.words[1..].concat());
                }
                ("require_reply", CheckKind::Udp { reply, .. }) => {
                    *reply = Some((c.words.len() > 1).then(|| c.words[1..].concat()));
                }
                ("misc_path", CheckKind::Misc { args }) => {
                    // check_misc.c misc_path_handler: the line is re-read with quotes and
                    // escapes, and only its first argument is split into the command's words.
                    let first = c.arg(1).unwrap_or("");
                    *args = split_quoted(first);
                    if c.words.len() > 2 {
                        self.warn(c, format!("misc_path takes one (quoted) argument: keepalived runs {first:?} without {:?}; quote the whole command", c.words[2..].join(" ")));
                    }
                }
                _ => {
                    let table: Vec<&str> = kw::CHECKER_COMMON
                        .iter()
                        .chain(if connects { kw::CHECKER_CONNECT } else { &[] })
                        .chain(match &kind {
                            CheckKind::Http { .. } => kw::HTTP,
                            CheckKind::Udp { .. } => kw::UDP,
                            CheckKind::Misc { .. } => kw::MISC,
                            CheckKind::Tcp => &[],
                        })
                        .copied()
                        .collect();
                    self.other(c, &table);
                }
            }
        }
        if let CheckKind::Misc { args } = &kind {
            if args.is_empty() {
                self.warn(
                    n,
                    "no script path has been specified for MISC_CHECK: keepalived skips it",
                );
                return None;
            }
        }
        ch.kind = kind;
        Some(ch)
    }

    // -----------------------------------------------------------------------------------

    fn services(&mut self) -> Vec<ServiceSpec> {
        let vss = std::mem::take(&mut self.vss);
        let mut out = Vec::new();
        let mut names: Vec<IpAddr> = Vec::new();
        let mut used_instances: Vec<String> = Vec::new();
        for vs in &vss {
            self.service(vs, &mut out, &mut names, &mut used_instances);
        }
        self.vrrp_notes(&used_instances);
        out
    }

    fn vrrp_notes(&mut self, used: &[String]) {
        let insts = self.instances.clone();
        for i in &insts {
            if !used.contains(&i.name) {
                self.warn_at(i.file, i.line, format!("vrrp_instance {} holds no virtual server's VIP: lvslab has no service to pair it with and leaves it out", i.name));
            }
        }
        for (file, line, name, members) in self.sync_groups.clone() {
            if members.len() > 1 {
                self.warn_at(file, line, format!("vrrp_sync_group {name}: lvslab pairs are one VRRP instance per vrid and service, so {} no longer change state together", members.join(", ")));
            }
        }
    }

    fn service(
        &mut self,
        vs: &Vs,
        out: &mut Vec<ServiceSpec>,
        names: &mut Vec<IpAddr>,
        used: &mut Vec<String>,
    ) {
        let what = match &vs.key {
            VsKey::Addr(ip, port) => format!("virtual server {}", sock(*ip, *port)),
            VsKey::Fwmark(m) => format!("virtual server fwmark {m}"),
            VsKey::Group(g) => format!("virtual server group {g}"),
        };
        // check_data.c validate_check_config: a virtual server without real servers is removed.
        if vs.rs.is_empty() {
            self.warn_at(
                vs.file,
                vs.line,
                format!("{what} has no real servers: keepalived ignores it"),
            );
            return;
        }
        // The addresses and ports this virtual server stands for.
        let mut targets: Vec<(IpAddr, u16, usize, usize)> = Vec::new();
        match &vs.key {
            VsKey::Addr(ip, port) => targets.push((*ip, *port, vs.file, vs.line)),
            VsKey::Fwmark(m) if vs.is_ipv6() => {
                self.error_at(vs.file, vs.line, format!("virtual_server fwmark {m} is IPv6 (keepalived takes the family from `ip_family` or its real servers, so it is `ipvsadm -A -f {m} -6`): which packets carry mark {m} is decided outside keepalived.conf (an ip6tables or nft rule), so lvslab cannot tell the VIPs and ports; write each IPv6 address as a `virtual_server ADDR PORT` block, or build the firewall-mark service in the topology (fwmark, an IPv6 vip, vips)"));
                return;
            }
            VsKey::Fwmark(m) => {
                self.error_at(vs.file, vs.line, format!("virtual_server fwmark {m}: which packets carry mark {m} is decided outside keepalived.conf (an iptables or nft rule), so lvslab cannot tell the VIPs and ports; write the addresses as `virtual_server ADDR PORT` blocks or a virtual_server_group, or build a firewall-mark service in the topology (fwmark, vip, vips)"));
                return;
            }
            VsKey::Group(g) => {
                let Some(entries) = self.groups.get(g).cloned() else {
                    self.error_at(vs.file, vs.line, format!("virtual_server group {g}: no virtual_server_group {g} is defined (keepalived skips the virtual server)"));
                    return;
                };
                for (file, line, e) in entries {
                    match e {
                        GroupEntry::Addrs(addrs, port) => {
                            targets.extend(addrs.into_iter().map(|a| (a, port, file, line)));
                        }
                        GroupEntry::Fwmark(m) => self.error_at(file, line, format!("fwmark {m} in virtual_server_group {g}: which packets carry the mark is decided outside keepalived.conf, so lvslab cannot tell its VIPs; list the addresses instead")),
                    }
                }
            }
        }
        // check_data.c: "no protocol set - defaulting to UDP" (the kernel's 0 is UDP).
        let protocol = vs.protocol.unwrap_or_else(|| {
            self.warn_at(
                vs.file,
                vs.line,
                format!("{what}: no protocol set - keepalived defaults to UDP"),
            );
            Protocol::Udp
        });
        // IPVS_DEF_SCHED "wlc".
        let scheduler = vs.sched.unwrap_or_else(|| {
            self.warn_at(
                vs.file,
                vs.line,
                format!("{what}: no scheduler set - keepalived sets the default wlc"),
            );
            Scheduler::Wlc
        });
        // "no forwarding method set, setting default NAT".
        let method = vs.method.unwrap_or_else(|| {
            self.warn_at(
                vs.file,
                vs.line,
                format!("{what}: no forwarding method set - keepalived sets the default NAT"),
            );
            ForwardMethod::Nat
        });
        let mut persistence = vs.persistence;
        if let Some((file, line, g)) = &vs.granularity {
            // pgr_handler also makes the service persistent.
            persistence.get_or_insert(PERSISTENT_TIMEOUT);
            if g != "255.255.255.255" && g != "128" {
                self.warn_at(*file, *line, format!("persistence_granularity {g}: lvslab keeps persistence per client address (a /32 netmask)"));
            }
        }
        for rs in &vs.rs {
            if let Some(m) = rs.method {
                if m != method {
                    self.error_at(rs.file, rs.line, format!("real server {} forwards by {} while its virtual server uses {}: lvslab has one forwarding method per service", rs.ip, m.word(), method.word()));
                }
            }
        }
        let health = self.health(vs, &what);
        let mut real_servers: Vec<RealServerSpec> = Vec::new();
        let vport = targets.first().map_or(0, |t| t.1);
        for rs in &vs.rs {
            if rs.ip.is_ipv4() != targets.first().is_none_or(|t| t.0.is_ipv4()) {
                self.warn_at(rs.file, rs.line, format!("address family of virtual server and real server {} don't match: keepalived skips the real server", rs.ip));
                continue;
            }
            // Real servers are rs1, rs2, ... by the order their address first appears.
            let idx = match names.iter().position(|a| *a == rs.ip) {
                Some(i) => i,
                None => {
                    names.push(rs.ip);
                    names.len() - 1
                }
            };
            // check_data.c: a port-less NAT real server takes the virtual port; DR/TUN real
            // servers always get the virtual port ("ports don't match - resetting").
            let port = match (method, rs.port) {
                (ForwardMethod::Nat, Some(p)) => p,
                (_, None) => vport,
                (_, Some(p)) => {
                    if p != vport {
                        self.warn_at(rs.file, rs.line, format!("virtual server and real server {} ports don't match - keepalived resets it to {vport} ({} cannot change the port)", sock(rs.ip, p), method.word()));
                    }
                    vport
                }
            };
            if real_servers
                .iter()
                .any(|r| r.address == rs.ip && r.port == port)
            {
                self.warn_at(
                    rs.file,
                    rs.line,
                    format!(
                        "real server {} is duplicated: keepalived removes the second",
                        sock(rs.ip, port)
                    ),
                );
                continue;
            }
            real_servers.push(RealServerSpec {
                node: format!("rs{}", idx + 1),
                address: rs.ip,
                port,
                // rs weight defaults to the virtual server's `weight` (default 1).
                weight: rs.weight.unwrap_or(vs.weight),
                u_threshold: rs.uthreshold,
                l_threshold: rs.lthreshold,
            });
        }
        for (vip, port, file, line) in targets {
            if port == 0 {
                self.error_at(file, line, format!("{what}: {vip} without a port is an all-ports persistent service in keepalived; lvslab services have one port"));
                continue;
            }
            let vrrp = self.vrrp_for(vip, used);
            let mut rss = real_servers.clone();
            if method != ForwardMethod::Nat {
                for r in &mut rss {
                    r.port = port;
                }
            }
            out.push(ServiceSpec {
                director: "director".into(),
                backup: vrrp.as_ref().map(|_| "director2".to_string()),
                vip,
                port,
                protocol,
                scheduler,
                method,
                persistence,
                fwmark: None,
                vips: Vec::new(),
                real_servers: rss,
                health: health.clone(),
                vrrp,
            });
        }
    }

    /// The service's health from its real servers' checkers: lvslab has one check per
    /// service, so the first real server's first checker decides, and differences warn.
    fn health(&mut self, vs: &Vs, what: &str) -> Option<HealthSpec> {
        let first = vs.rs.iter().find(|r| !r.checkers.is_empty());
        let Some(rs0) = first else {
            if let Some((file, line, ..)) = vs.sorry {
                self.warn_at(file, line, format!("{what}: sorry_server without health checkers is never used (no real server ever fails): lvslab leaves it out"));
            }
            return None;
        };
        let ch = rs0.checkers[0].clone();
        for extra in rs0.checkers.iter().skip(1) {
            self.warn_at(
                extra.file,
                extra.line,
                format!(
                    "{}: lvslab runs one check per service, the first ({} at line {})",
                    extra.name, ch.name, ch.line
                ),
            );
        }
        for rs in &vs.rs {
            if std::ptr::eq(rs, rs0) {
                continue;
            }
            match rs.checkers.first() {
                None => self.warn_at(rs.file, rs.line, format!("real server {} has no checker (keepalived keeps it up always); lvslab checks every real server of the service with {}", rs.ip, ch.name)),
                Some(c) if c.name != ch.name => self.warn_at(c.file, c.line, format!("{}: lvslab checks every real server of the service with the first real server's {}", c.name, ch.name)),
                Some(_) => {}
            }
        }
        if let Some(p) = ch.connect_port {
            let rport = rs0.port.unwrap_or(match vs.key {
                VsKey::Addr(_, p) => p,
                _ => 0,
            });
            if p != rport {
                self.warn_at(ch.file, ch.line, format!("connect_port {p}: lvslab checks each real server on its own port ({rport})"));
            }
        }
        let check = match &ch.kind {
            CheckKind::Tcp => HealthCheck::Tcp,
            CheckKind::Http { ssl, urls } => {
                if *ssl {
                    self.warn_at(ch.file, ch.line, "SSL_GET: lvslab's http check does not speak TLS; it sends the same GET in clear text to the real server's port (a TLS server will fail it)");
                }
                let Some(u) = urls.first() else {
                    self.warn_at(
                        ch.file,
                        ch.line,
                        format!("{}: no url with a path; lvslab checks GET /", ch.name),
                    );
                    return Some(self.spec(
                        vs,
                        rs0,
                        &ch,
                        HealthCheck::Http {
                            path: "/".into(),
                            status: 200,
                            digest: None,
                        },
                    ));
                };
                if urls.len() > 1 {
                    self.warn_at(
                        ch.file,
                        ch.line,
                        format!(
                            "{}: {} urls; lvslab checks the first ({}) only",
                            ch.name,
                            urls.len(),
                            u.path.as_deref().unwrap_or("/")
                        ),
                    );
                }
                // url_check: no status_code -> HTTP_DEFAULT_STATUS_CODE_MIN..MAX (200-299).
                let status = match u.status.first() {
                    None => 200,
                    Some(&(a, b)) => {
                        if u.status.len() > 1 || a != b {
                            self.warn_at(
                                ch.file,
                                ch.line,
                                format!(
                                    "{}: several status codes accepted; lvslab expects {a} only",
                                    ch.name
                                ),
                            );
                        }
                        a
                    }
                };
                if u.status.is_empty() && u.digest.is_none() {
                    self.warn_at(ch.file, ch.line, format!("{}: keepalived accepts any 2xx status without status_code; lvslab expects 200", ch.name));
                }
                HealthCheck::Http {
                    path: u.path.clone().unwrap_or_else(|| "/".into()),
                    status,
                    digest: u.digest.clone(),
                }
            }
            CheckKind::Udp { payload, reply } => HealthCheck::Udp {
                // check_udp.c: without `payload` keepalived sends an empty datagram.
                payload: payload.as_deref().map_or_else(String::new, hex_text),
                expect: match reply {
                    Some(Some(h)) => Some(hex_text(h)),
                    Some(None) => {
                        self.warn_at(ch.file, ch.line, "require_reply without data: lvslab takes any answer, as keepalived does");
                        None
                    }
                    None => None,
                },
            },
            CheckKind::Misc { args } => HealthCheck::Command {
                command: args.clone(),
            },
        };
        Some(self.spec(vs, rs0, &ch, check))
    }

    fn spec(&mut self, vs: &Vs, rs: &Rs, ch: &Checker, check: HealthCheck) -> HealthSpec {
        let misc = matches!(ch.kind, CheckKind::Misc { .. });
        let http = matches!(ch.kind, CheckKind::Http { .. });
        // Checker, then real server, then virtual server, then keepalived's defaults
        // (check_data.c validate_check_config "Take default values from ...").
        let delay_loop =
            ch.t.delay_loop
                .or(rs.t.delay_loop)
                .or(vs.t.delay_loop)
                .unwrap_or(DEFAULT_DELAY_LOOP);
        // check_misc.c misc_check_thread: a script without misc_timeout gets the virtual
        // server's delay_loop.
        let connect = if misc {
            ch.t.connect_timeout
                .unwrap_or(vs.t.delay_loop.unwrap_or(DEFAULT_DELAY_LOOP))
        } else {
            ch.t.connect_timeout
                .or(rs.t.connect_timeout)
                .or(vs.t.connect_timeout)
                .unwrap_or(DEFAULT_CONNECT_TIMEOUT)
        };
        let retry = ch.t.retry.or(rs.t.retry).or(vs.t.retry).unwrap_or(if misc {
            DEFAULT_MISC_RETRY
        } else {
            DEFAULT_RETRY
        });
        let dbr =
            ch.t.delay_before_retry
                .or(rs.t.delay_before_retry)
                .or(vs.t.delay_before_retry)
                .unwrap_or(if http {
                    DEFAULT_HTTP_DELAY_BEFORE_RETRY
                } else {
                    DEFAULT_DELAY_BEFORE_RETRY
                });
        let inhibit = rs.inhibit.unwrap_or(vs.inhibit);
        let sorry = vs.sorry.map(|(_, _, ip, port)| {
            let vport = match vs.key {
                VsKey::Addr(_, p) => p,
                _ => 0,
            };
            SocketAddr::new(ip, port.unwrap_or(vport))
        });
        // lvslab's limits (docs/topology.md): ms, interval up to an hour, timeout up to a
        // minute, retries up to 100.
        let ms = |us: u64| us.div_ceil(1000);
        let clamp = |cx: &mut Cx, what: &str, v: u64, lo: u64, hi: u64| -> u64 {
            let c = v.clamp(lo, hi);
            if c != v {
                cx.warn_at(
                    ch.file,
                    ch.line,
                    format!("{what} {v} ms is outside lvslab's {lo}..={hi} ms: using {c}"),
                );
            }
            c
        };
        let interval_ms = clamp(self, "delay_loop", ms(delay_loop), 1, 3_600_000);
        let timeout_ms = clamp(self, "connect_timeout", ms(connect), 1, 60_000);
        let delay_before_retry_ms = clamp(self, "delay_before_retry", ms(dbr), 1, 3_600_000);
        for (what, us) in [
            ("delay_loop", delay_loop),
            ("connect_timeout", connect),
            ("delay_before_retry", dbr),
        ] {
            if us % 1000 != 0 {
                self.warn_at(
                    ch.file,
                    ch.line,
                    format!(
                        "{what} {} s is finer than lvslab's milliseconds: rounded up",
                        us as f64 / HZ as f64
                    ),
                );
            }
        }
        let retries = if retry > 100 {
            self.warn_at(
                ch.file,
                ch.line,
                format!("retry {retry} is more than lvslab's 100: using 100"),
            );
            100
        } else {
            retry
        };
        HealthSpec {
            check,
            interval_ms,
            timeout_ms,
            retries,
            delay_before_retry_ms,
            inhibit_on_failure: inhibit,
            sorry_server: sorry,
        }
    }

    /// The VRRP pair of the service whose VIP is `vip`: the instance whose virtual_ipaddress
    /// holds it (the first such).
    fn vrrp_for(&mut self, vip: IpAddr, used: &mut Vec<String>) -> Option<VrrpSpec> {
        let holders: Vec<Instance> = self
            .instances
            .iter()
            .filter(|i| i.vips.contains(&vip))
            .cloned()
            .collect();
        let i = holders.first()?.clone();
        if holders.len() > 1 {
            self.warn_at(holders[1].file, holders[1].line, format!("VIP {vip} is in vrrp_instance {} too: lvslab pairs the service by {} (line {})", holders[1].name, i.name, i.line));
        }
        if !used.contains(&i.name) {
            used.push(i.name.clone());
        }
        let Some(vrid) = i.vrid else {
            self.error_at(
                i.file,
                i.line,
                format!(
                    "vrrp_instance {} has no virtual_router_id (keepalived refuses the instance)",
                    i.name
                ),
            );
            return None;
        };
        // vrrp.c vrrp_complete_instance: version from the instance, else global_defs
        // vrrp_version (global_data.c default VRRP_VERSION_2), IPv6 forces 3.
        let version = i
            .version
            .or(self.vrrp_version)
            .unwrap_or(if vip.is_ipv6() { 3 } else { 2 });
        // No priority: MASTER -> VRRP_PRIO_OWNER, else VRRP_PRIO_DFL.
        let prio = i.priority.unwrap_or(if i.state == Some(State::Master) {
            PRIO_OWNER
        } else {
            PRIO_DFL
        });
        let mut nopreempt = i.nopreempt.is_some();
        if nopreempt && (i.state == Some(State::Master) || prio == PRIO_OWNER) {
            self.warn_at(i.file, i.line, format!("vrrp_instance {}: nopreempt does not work with initial state MASTER or priority 255 - keepalived clears it", i.name));
            nopreempt = false;
        }
        let p = if prio >= PRIO_OWNER {
            self.warn_at(i.file, i.line, format!("vrrp_instance {}: priority 255 (the address owner) is outside lvslab's 1..=254: using 254", i.name));
            254
        } else {
            prio as u8
        };
        // The file describes one side of the pair: the director when it starts as MASTER,
        // owns the address, or both start as BACKUP without preemption (lvslab's own
        // keepalived.conf does that); otherwise the backup.
        let is_master = i.state == Some(State::Master) || prio == PRIO_OWNER || nopreempt;
        let (priority, backup_priority) = if is_master {
            let b = p.saturating_sub(PRIO_GAP).max(1);
            self.warn_at(i.file, i.line, format!("vrrp_instance {}: lvslab reads this file as the director's side of the pair (priority {p}); director2's priority is not here, lvslab gives it {b}", i.name));
            (p, b)
        } else {
            let m = p.saturating_add(PRIO_GAP).min(254);
            self.warn_at(i.file, i.line, format!("vrrp_instance {}: lvslab reads this file as the BACKUP's, director2 (priority {p}); the director's priority is not here, lvslab gives it {m}", i.name));
            (m, p)
        };
        // vrrp.c: VRRPv2 adverts are whole seconds below 256 ("must be an integer. rounding").
        let mut advert = i.advert_us.unwrap_or(HZ);
        if version == 2 && advert % HZ != 0 {
            let r = ((advert + HZ / 2) / HZ * HZ).max(HZ);
            self.warn_at(i.file, i.line, format!("vrrp_instance {}: VRRPv2 advertisement interval {} s must be an integer - keepalived rounds it to {} s", i.name, advert as f64 / HZ as f64, r / HZ));
            advert = r;
        }
        if version == 3 && advert % (HZ / 100) != 0 {
            let r = advert / (HZ / 100) * (HZ / 100);
            self.warn_at(
                i.file,
                i.line,
                format!(
                    "vrrp_instance {}: VRRPv3 advertises centiseconds: {} s sent as {} s",
                    i.name,
                    advert as f64 / HZ as f64,
                    r as f64 / HZ as f64
                ),
            );
            advert = r;
        }
        let (sync, sync_id) = match &self.sync_daemon {
            Some((inst, id)) if inst.as_deref().is_none_or(|n| n == i.name) => {
                (true, id.unwrap_or(vrid))
            }
            _ if i.sync_iface => (true, vrid),
            _ => (false, vrid),
        };
        Some(VrrpSpec {
            vrid,
            version,
            advert_int_ms: advert / 1000,
            priority,
            backup_priority,
            preempt: !nopreempt,
            sync,
            sync_id,
            keepalived: Vec::new(),
        })
    }
}

fn method(c: &Node) -> Result<ForwardMethod, String> {
    // svr_forwarding_handler: exact NAT, DR, TUN (TUN may carry `type ipip` options).
    match c.arg(1) {
        Some("NAT") => Ok(ForwardMethod::Nat),
        Some("DR") => Ok(ForwardMethod::Dr),
        Some("TUN") => Ok(ForwardMethod::Tun),
        other => Err(format!(
            "unknown [{}] routing method: keepalived ignores it (NAT, DR and TUN, in capitals){}",
            other.unwrap_or(""),
            other.and_then(whitespace_hint).unwrap_or_default()
        )),
    }
}

/// parser.c alloc_strvec_quoted_escaped: words split on whitespace, '...' and "..." quote,
/// a backslash escapes the next character.
fn split_quoted(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut have = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (_, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                    have = true;
                }
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                have = true;
            }
            (None, c) if c.is_ascii_whitespace() => {
                if have {
                    out.push(std::mem::take(&mut cur));
                    have = false;
                }
            }
            (None, c) => {
                cur.push(c);
                have = true;
            }
        }
    }
    if have {
        out.push(cur);
    }
    out
}

fn sock(ip: IpAddr, port: u16) -> String {
    SocketAddr::new(ip, port).to_string()
}

/// UDP_CHECK payloads are hex (read_hex_str); lvslab's are text: printable bytes become the
/// text, anything else is kept as keepalived's hex.
fn hex_text(h: &str) -> String {
    let digits: String = h.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes: Option<Vec<u8>> = (0..digits.len() / 2)
        .map(|i| u8::from_str_radix(digits.get(2 * i..2 * i + 2)?, 16).ok())
        .collect();
    match bytes {
        Some(b)
            if digits.len().is_multiple_of(2)
                && b.iter().all(|c| c.is_ascii_graphic() || *c == b' ') =>
        {
            String::from_utf8_lossy(&b).into_owned()
        }
        _ => digits,
    }
}

/// A virtual_server_group address entry expanded as alloc_vsg_entry does.
fn expand_range(s: &str) -> Result<Vec<IpAddr>, String> {
    if let Some((a, len)) = s.split_once('/') {
        let ip =
            parse_ip(a).ok_or_else(|| format!("invalid virtual server group address {s:?}"))?;
        let len: u32 = len.parse().map_err(|_| format!("invalid netmask {s:?}"))?;
        let IpAddr::V4(v4) = ip else {
            return Err(format!("IPv6 block {s:?}: lvslab expands IPv4 blocks only"));
        };
        if len == 0 || len > 32 {
            return Err(format!("invalid netmask {s:?}"));
        }
        let start = u32::from(v4);
        let host = if len == 32 { 0 } else { u32::MAX >> len };
        if start & host != 0 {
            return Err(format!("address mask bits not empty {s:?}"));
        }
        if host > 1024 {
            return Err(format!(
                "{s:?} is {} addresses: too many services for a lab",
                u64::from(host) + 1
            ));
        }
        return Ok((start..=start | host)
            .map(|a| IpAddr::V4(Ipv4Addr::from(a)))
            .collect());
    }
    let Some((a, end)) = s.split_once('-') else {
        return parse_ip(s)
            .map(|ip| vec![ip])
            .ok_or_else(|| format!("invalid virtual server group address {s:?}"));
    };
    let ip = parse_ip(a).ok_or_else(|| format!("invalid virtual server group address {s:?}"))?;
    match ip {
        IpAddr::V4(v4) => {
            let start = u32::from(v4);
            let last = if end.contains('.') {
                let e: Ipv4Addr = end
                    .parse()
                    .map_err(|_| format!("invalid range end {s:?}"))?;
                u32::from(e)
            } else {
                let b: u32 = unsigned(end)
                    .filter(|v| *v <= 255)
                    .ok_or_else(|| format!("invalid range {s:?}"))?
                    as u32;
                (start & !0xff) | b
            };
            if last <= start && !end.contains('.') || last < start {
                return Err(format!(
                    "address range end is not greater than address range start {s:?}"
                ));
            }
            if last - start > 1024 {
                return Err(format!("{s:?} is too many services for a lab"));
            }
            Ok((start..=last)
                .map(|a| IpAddr::V4(Ipv4Addr::from(a)))
                .collect())
        }
        IpAddr::V6(v6) => {
            let start = u128::from(v6);
            let last = if end.contains(':') {
                let e: Ipv6Addr = end
                    .parse()
                    .map_err(|_| format!("invalid range end {s:?}"))?;
                u128::from(e)
            } else {
                let g = u128::from_str_radix(end, 16)
                    .ok()
                    .filter(|v| *v <= 0xffff)
                    .ok_or_else(|| format!("invalid range {s:?}"))?;
                (start & !0xffff) | g
            };
            if last < start || (last == start && !end.contains(':')) {
                return Err(format!(
                    "address range end is not greater than address range start {s:?}"
                ));
            }
            if last - start > 1024 {
                return Err(format!("{s:?} is too many services for a lab"));
            }
            Ok((start..=last)
                .map(|a| IpAddr::V6(Ipv6Addr::from(a)))
                .collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_and_ranges() {
        assert_eq!(timer("6"), Some(6 * HZ));
        assert_eq!(timer("0.5"), Some(HZ / 2));
        assert_eq!(timer("1.2345678"), None);
        assert_eq!(timer("-1"), None);
        let r = expand_range("192.168.200.3-10").unwrap();
        assert_eq!(r.len(), 8);
        assert_eq!(r[0].to_string(), "192.168.200.3");
        assert_eq!(r[7].to_string(), "192.168.200.10");
        assert!(expand_range("10.0.0.5-5").is_err());
        assert_eq!(expand_range("10.0.0.0/30").unwrap().len(), 4);
        assert_eq!(expand_range("2001:db8::1-3").unwrap().len(), 3);
        assert_eq!(hex_text("70696e67"), "ping");
        assert_eq!(hex_text("00ff"), "00ff");
    }
}
