//! `lvslab ipvsadm [--lab LAB] [--node N] -- ARGS...`: ipvsadm's own command line against a
//! lab's director, whichever backend it runs.
//!
//! The arguments are read as ipvsadm 1.31 reads them (ipvsadm.c `parse_options` with popt:
//! bundled short options, `--long=value`, `-p` with an optional timeout, the command
//! first; `generic_opt_check`'s table of legal command/option pairs; its messages and
//! exit codes). A table change becomes one plain ipvsadm line for the core parser and goes
//! the way `lvslab service`/`real` go ([`lvslab_engine::Balancer::ipvsadm`]); listings are
//! laid out by [`lvslab_director::listing`] exactly as ipvsadm lays them out.

use anyhow::{Context, Result};
use lvslab_core::Protocol;
use lvslab_director::listing::{self, Format, Fwd, ListedKey, Names, Numeric, Table};
use lvslab_engine::Balancer;
use std::ffi::{CStr, CString};
use std::io::{BufRead, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Run ipvsadm's command line against a lab's director: `-A -E -D -C -a -e -d -L -S -R -Z
/// --set` with ipvsadm's options; output and exit codes as ipvsadm's.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The lab (default: the only lab that is up).
    #[arg(long)]
    pub lab: Option<String>,
    /// The director node, when the lab has several.
    #[arg(long)]
    pub node: Option<String>,
    /// Read `-R`'s rules from this file instead of stdin.
    #[arg(long, hide = true, value_name = "FILE")]
    pub stdin_file: Option<PathBuf>,
    /// ipvsadm's arguments, e.g. `-Ln`, `-A -t 192.168.1.250:80 -s rr`, `-S -n`, `-R`.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "IPVSADM_ARGS"
    )]
    pub args: Vec<String>,
}

/// The program name ipvsadm's messages use.
const PROG: &str = "ipvsadm";
/// IPVS_SVC_PERSISTENT_TIMEOUT: a bare `-p`.
const DEFAULT_PERSISTENT: u32 = 360;
/// MAX_TIMEOUT: 31 days.
const MAX_TIMEOUT: i64 = 86400 * 31;

/// How ipvsadm ends: the message it prints on stderr and its exit code.
#[derive(Debug, PartialEq, Eq)]
struct Exit {
    code: i32,
    message: String,
}

fn fail<T>(message: impl Into<String>) -> std::result::Result<T, Exit> {
    Err(Exit {
        code: 2,
        message: message.into(),
    })
}

fn tryhelp<T>() -> std::result::Result<T, Exit> {
    Err(Exit {
        code: 255,
        message: format!("Try `{PROG} -h' or '{PROG} --help' for more information."),
    })
}

/// Something ipvsadm does that lvslab's director does not: exit 2, naming the option.
fn unsupported<T>(option: &str, why: &str) -> std::result::Result<T, Exit> {
    fail(format!("lvslab ipvsadm: {option} is not supported: {why}"))
}

type Res<T> = std::result::Result<T, Exit>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Add = 1,
    Edit,
    Del,
    Flush,
    List,
    AddDest,
    DelDest,
    EditDest,
    Timeout,
    StartDaemon,
    StopDaemon,
    Restore,
    Save,
    Zero,
}

// Option bits, ipvsadm's OPTC_* order.
const O_NUMERIC: u32 = 0;
const O_CONNECTION: u32 = 1;
const O_SERVICE: u32 = 2;
const O_SCHEDULER: u32 = 3;
const O_PERSISTENT: u32 = 4;
const O_NETMASK: u32 = 5;
const O_SERVER: u32 = 6;
const O_FORWARD: u32 = 7;
const O_WEIGHT: u32 = 8;
const O_UTHRESHOLD: u32 = 9;
const O_LTHRESHOLD: u32 = 10;
const O_MCAST: u32 = 11;
const O_TIMEOUT: u32 = 12;
const O_DAEMON: u32 = 13;
const O_STATS: u32 = 14;
const O_RATE: u32 = 15;
const O_THRESHOLDS: u32 = 16;
const O_PERSISTENTCONN: u32 = 17;
const O_NOSORT: u32 = 18;
const O_SYNCID: u32 = 19;
const O_EXACT: u32 = 20;
const O_ONEPACKET: u32 = 21;
const O_PE: u32 = 22;
const O_SCHED_FLAGS: u32 = 23;
const O_MCAST_GROUP: u32 = 24;
const O_MCAST_PORT: u32 = 25;
const O_MCAST_TTL: u32 = 26;
const O_SYNC_MAXLEN: u32 = 27;
const O_TUN_INFO: u32 = 28;
const O_TUN_TYPE: u32 = 29;
const O_TUN_PORT: u32 = 30;
const O_TUN_NOCSUM: u32 = 31;
const O_TUN_CSUM: u32 = 32;
const O_TUN_REMCSUM: u32 = 33;

// ipvsadm.c's tables, one transcription shared with the core's line parser.
use lvslab_core::ipvsadm::{CMD_NAMES as CMDNAMES, COMMANDS_V_OPTIONS, OPT_NAMES as OPTNAMES};

/// What an option takes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Arg {
    None,
    Required,
    Optional,
}

/// popt's option table of ipvsadm 1.31: long name, short name, argument.
const OPTIONS: &[(&str, Option<char>, Arg)] = &[
    ("add-service", Some('A'), Arg::None),
    ("edit-service", Some('E'), Arg::None),
    ("delete-service", Some('D'), Arg::None),
    ("clear", Some('C'), Arg::None),
    ("list", Some('L'), Arg::None),
    ("list", Some('l'), Arg::None),
    ("zero", Some('Z'), Arg::None),
    ("add-server", Some('a'), Arg::None),
    ("edit-server", Some('e'), Arg::None),
    ("delete-server", Some('d'), Arg::None),
    ("set", None, Arg::None),
    ("help", Some('h'), Arg::None),
    ("version", Some('v'), Arg::None),
    ("restore", Some('R'), Arg::None),
    ("save", Some('S'), Arg::None),
    ("start-daemon", None, Arg::Required),
    ("stop-daemon", None, Arg::Required),
    ("tcp-service", Some('t'), Arg::Required),
    ("udp-service", Some('u'), Arg::Required),
    ("sctp-service", None, Arg::Required),
    ("fwmark-service", Some('f'), Arg::Required),
    ("scheduler", Some('s'), Arg::Required),
    ("persistent", Some('p'), Arg::Optional),
    ("netmask", Some('M'), Arg::Required),
    ("real-server", Some('r'), Arg::Required),
    ("masquerading", Some('m'), Arg::None),
    ("ipip", Some('i'), Arg::None),
    ("gatewaying", Some('g'), Arg::None),
    ("weight", Some('w'), Arg::Required),
    ("u-threshold", Some('x'), Arg::Required),
    ("l-threshold", Some('y'), Arg::Required),
    ("numeric", Some('n'), Arg::None),
    ("connection", Some('c'), Arg::None),
    ("mcast-interface", None, Arg::Required),
    ("syncid", None, Arg::Required),
    ("timeout", None, Arg::None),
    ("daemon", None, Arg::None),
    ("stats", None, Arg::None),
    ("rate", None, Arg::None),
    ("thresholds", None, Arg::None),
    ("persistent-conn", None, Arg::None),
    ("nosort", None, Arg::None),
    ("sort", None, Arg::None),
    ("exact", Some('X'), Arg::None),
    ("ipv6", Some('6'), Arg::None),
    ("ops", Some('o'), Arg::None),
    ("pe", None, Arg::Required),
    ("sched-flags", Some('b'), Arg::Required),
    ("mcast-group", None, Arg::Required),
    ("mcast-port", None, Arg::Required),
    ("mcast-ttl", None, Arg::Required),
    ("sync-maxlen", None, Arg::Required),
    ("tun-info", None, Arg::None),
    ("tun-type", None, Arg::Required),
    ("tun-port", None, Arg::Required),
    ("tun-nocsum", None, Arg::None),
    ("tun-csum", None, Arg::None),
    ("tun-remcsum", None, Arg::None),
];

/// One option as popt returned it: its long name (the key), how the user wrote it, its
/// argument.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Opt {
    long: &'static str,
    written: String,
    arg: Option<String>,
}

/// popt's pass over argv: options in order, and the arguments left over. An error comes
/// with the number of options read before it (ipvsadm answers an error in the very first
/// one differently).
fn popt(args: &[String]) -> std::result::Result<(Vec<Opt>, Vec<String>), (usize, Exit)> {
    let mut opts = Vec::new();
    match popt_into(args, &mut opts) {
        Ok(rest) => Ok((opts, rest)),
        Err(e) => Err((opts.len(), e)),
    }
}

fn popt_into(args: &[String], opts: &mut Vec<Opt>) -> Res<Vec<String>> {
    let bad = |written: &str, what: &str| Exit {
        code: 255,
        message: format!("{written}: {what}"),
    };
    let mut rest = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let t = &args[i];
        i += 1;
        if t == "--" {
            rest.extend(args[i..].iter().cloned());
            break;
        }
        if let Some(body) = t.strip_prefix("--") {
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (body, None),
            };
            let Some(&(long, _, kind)) = OPTIONS.iter().find(|(l, _, _)| *l == name) else {
                return Err(bad(t, "unknown option"));
            };
            let arg = match (kind, inline) {
                (Arg::None, Some(_)) => return Err(bad(t, "option does not take an argument")),
                (Arg::None, None) => None,
                (_, Some(v)) => Some(v),
                (Arg::Required, None) => match args.get(i) {
                    Some(v) => {
                        i += 1;
                        Some(v.clone())
                    }
                    None => return Err(bad(t, "missing argument")),
                },
                (Arg::Optional, None) => match args.get(i) {
                    Some(v) if !v.starts_with('-') => {
                        i += 1;
                        Some(v.clone())
                    }
                    _ => None,
                },
            };
            opts.push(Opt {
                long,
                written: format!("--{name}"),
                arg,
            });
        } else if t.len() > 1 && t.starts_with('-') {
            let chars: Vec<char> = t[1..].chars().collect();
            let mut j = 0;
            while j < chars.len() {
                let c = chars[j];
                j += 1;
                let written = format!("-{c}");
                // popt names the whole word in its complaint (`-Lx: missing argument`).
                let Some(&(long, _, kind)) = OPTIONS.iter().find(|(_, s, _)| *s == Some(c)) else {
                    return Err(bad(t, "unknown option"));
                };
                let tail: String = chars[j..].iter().collect();
                let arg = match kind {
                    Arg::None => None,
                    _ if !tail.is_empty() => {
                        j = chars.len();
                        Some(tail)
                    }
                    Arg::Required => match args.get(i) {
                        Some(v) => {
                            i += 1;
                            Some(v.clone())
                        }
                        None => return Err(bad(t, "missing argument")),
                    },
                    Arg::Optional => match args.get(i) {
                        Some(v) if !v.starts_with('-') => {
                            i += 1;
                            Some(v.clone())
                        }
                        _ => None,
                    },
                };
                opts.push(Opt { long, written, arg });
            }
        } else {
            rest.push(t.clone());
        }
    }
    Ok(rest)
}

/// A virtual service as parsed (ipvs_service_t).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Svc {
    protocol: Option<Protocol>,
    addr: Option<IpAddr>,
    port: u16,
    fwmark: u32,
    /// `-6` after `-f`: an AF_INET6 firewall-mark service.
    fwmark_v6: bool,
    sched: String,
    persistent: Option<u32>,
    netmask: Option<Ipv4Addr>,
    ops: bool,
    sched_flags: u32,
}

/// A real server as parsed (ipvs_dest_t).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Dest {
    addr: Option<IpAddr>,
    port: u16,
    fwd: Fwd,
    weight: u32,
    u_threshold: u32,
    l_threshold: u32,
}

/// One ipvsadm invocation, parsed (ipvs_command_entry plus options and format).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    cmd: Cmd,
    options: u64,
    format: Format,
    svc: Svc,
    dest: Dest,
    timeouts: [u32; 3],
}

impl Entry {
    fn has(&self, o: u32) -> bool {
        self.options & (1 << o) != 0
    }
}

/// What a parsed command line asks for.
#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    /// `-h`: the usage.
    Help,
    /// `-v`: the version.
    Version,
    /// Anything else.
    Run(Box<Entry>),
}

/// Host and service names, both ways: hosts from /etc/hosts (never DNS), services from
/// the system's services database (what ipvsadm's getservbyname/getservbyport answer).
pub struct Resolver;

fn proto_name(p: Option<Protocol>) -> Option<&'static CStr> {
    match p {
        Some(Protocol::Tcp) => Some(c"tcp"),
        Some(Protocol::Udp) => Some(c"udp"),
        None => None,
    }
}

/// The first name /etc/hosts gives `ip` (`text` is the file).
fn hosts_name(text: &str, ip: IpAddr) -> Option<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or_default())
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let addr: IpAddr = w.next()?.parse().ok()?;
            (addr == ip).then(|| w.next().map(str::to_owned)).flatten()
        })
        .next()
}

impl Names for Resolver {
    /// From /etc/hosts only: ipvsadm asks the system resolver, which may ask DNS, and lvslab
    /// never sends traffic outside its labs; an address /etc/hosts does not name prints as
    /// the number, as ipvsadm prints it when no resolver answers.
    fn host(&self, ip: IpAddr) -> Option<String> {
        let hosts = std::fs::read_to_string("/etc/hosts").ok()?;
        hosts_name(&hosts, ip)
    }

    fn service(&self, port: u16, protocol: Option<Protocol>) -> Option<String> {
        let proto = proto_name(protocol)?;
        // SAFETY: getservbyport reads a NUL-terminated protocol name and returns a pointer
        // into static storage (or NULL); the name is copied out at once, on this thread.
        unsafe {
            let s = libc::getservbyport(libc::c_int::from(port.to_be()), proto.as_ptr());
            (!s.is_null()).then(|| CStr::from_ptr((*s).s_name).to_string_lossy().into_owned())
        }
    }
}

impl Resolver {
    fn port_of(name: &str, protocol: Option<Protocol>) -> Option<u16> {
        let proto = proto_name(protocol)?;
        let name = CString::new(name).ok()?;
        // SAFETY: both arguments are NUL-terminated; the result points to static storage
        // read at once.
        unsafe {
            let s = libc::getservbyname(name.as_ptr(), proto.as_ptr());
            (!s.is_null()).then(|| u16::from_be((*s).s_port as u16))
        }
    }

    /// A host name's IPv4 address from /etc/hosts only (never DNS: see `host`).
    fn addr_of(name: &str) -> Option<Ipv4Addr> {
        let hosts = std::fs::read_to_string("/etc/hosts").ok()?;
        hosts.lines().find_map(|l| {
            let mut w = l.split('#').next().unwrap_or_default().split_whitespace();
            let addr: Ipv4Addr = w.next()?.parse().ok()?;
            w.any(|n| n == name).then_some(addr)
        })
    }
}

fn string_to_number(s: &str, min: i64, max: i64) -> Option<i64> {
    // strtol: leading blanks and a sign are allowed, trailing garbage is not.
    let n: i64 = s.trim_start().parse().ok()?;
    (min..=max).contains(&n).then_some(n)
}

/// `parse_service`: ADDR, and PORT if given; None when the text is no address.
fn parse_service(buf: &str, protocol: Option<Protocol>) -> Option<(IpAddr, Option<u16>)> {
    if buf.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let port_of = |p: &str| -> Option<u16> {
        string_to_number(p, 0, 65535)
            .map(|n| n as u16)
            .or_else(|| Resolver::port_of(p, protocol))
    };
    if let Some(rest) = buf.strip_prefix('[') {
        let (a, p) = rest.split_once(']')?;
        let p = p.strip_prefix(':')?;
        let ip: std::net::Ipv6Addr = a.parse().ok()?;
        return Some((IpAddr::V6(ip), Some(port_of(p)?)));
    }
    if let Ok(ip) = buf.parse::<std::net::Ipv6Addr>() {
        return Some((IpAddr::V6(ip), None));
    }
    let (host, port) = match buf.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (buf, None),
    };
    let ip = host
        .parse::<Ipv4Addr>()
        .ok()
        .or_else(|| Resolver::addr_of(host))?;
    let port = match port {
        Some(p) => Some(port_of(p)?),
        None => None,
    };
    Some((IpAddr::V4(ip), port))
}

/// `parse_timeout`.
fn parse_timeout(buf: Option<&str>, min: i64, max: i64) -> Res<u32> {
    let Some(buf) = buf else {
        return Ok(DEFAULT_PERSISTENT);
    };
    match string_to_number(buf, min, max) {
        Some(n) => Ok(n as u32),
        None => fail(format!("invalid timeout value `{buf}' specified")),
    }
}

/// `parse_sched_flags`.
fn parse_sched_flags(sched: &str, arg: &str) -> Res<u32> {
    let sched = if sched.is_empty() { "wlc" } else { sched };
    let mut flags = 0;
    for flag in arg.split(',').filter(|f| !f.is_empty()) {
        let (bit, only) = match flag {
            "flag-1" => (listing::SCHED1, None),
            "flag-2" => (listing::SCHED2, None),
            "flag-3" => (listing::SCHED3, None),
            "sh-fallback" => (listing::SCHED1, Some("sh")),
            "sh-port" => (listing::SCHED2, Some("sh")),
            "mh-fallback" => (listing::SCHED1, Some("mh")),
            "mh-port" => (listing::SCHED2, Some("mh")),
            _ => return fail(format!("invalid scheduler flag `{flag}'")),
        };
        if only.is_some_and(|s| s != sched) {
            return fail(format!("incompatible scheduler flag `{flag}'"));
        }
        flags |= bit;
    }
    Ok(flags)
}

fn set_option(options: &mut u64, o: u32) -> Res<()> {
    if *options & (1 << o) != 0 {
        return fail(format!(
            "multiple '{}' options specified",
            OPTNAMES[o as usize]
        ));
    }
    *options |= 1 << o;
    Ok(())
}

/// `generic_opt_check`.
fn generic_opt_check(cmd: Cmd, options: u64) -> Res<()> {
    let i = cmd as usize - 1;
    let mut last: Option<usize> = None;
    for (j, rule) in COMMANDS_V_OPTIONS[i].iter().enumerate() {
        let given = options & (1 << j) != 0;
        match (given, rule) {
            (false, b'+') => {
                return fail(format!(
                    "You need to supply the '{}' option for the '{}' command",
                    OPTNAMES[j], CMDNAMES[i]
                ))
            }
            (true, b'x') => {
                return fail(format!(
                    "Illegal '{}' option with the '{}' command",
                    OPTNAMES[j], CMDNAMES[i]
                ))
            }
            (true, b'1') => match last {
                None => last = Some(j),
                Some(l) => {
                    return fail(format!(
                        "The option '{}' conflicts with the '{}' option in the '{}' command",
                        OPTNAMES[j], OPTNAMES[l], CMDNAMES[i]
                    ))
                }
            },
            _ => {}
        }
    }
    Ok(())
}

/// `parse_options` and the checks of `process_options`, for one command line.
fn parse(args: &[String], reading_stdin: bool) -> Res<Parsed> {
    let (opts, mut rest) = match popt(args) {
        Ok(x) => x,
        // popt fails on the first option: ipvsadm says only "Try ... -h".
        Err((0, _)) => return tryhelp(),
        Err((_, e)) => return Err(e),
    };
    let Some(first) = opts.first() else {
        return tryhelp();
    };
    let cmd = match first.long {
        "add-service" => Cmd::Add,
        "edit-service" => Cmd::Edit,
        "delete-service" => Cmd::Del,
        "add-server" => Cmd::AddDest,
        "edit-server" => Cmd::EditDest,
        "delete-server" => Cmd::DelDest,
        "clear" => Cmd::Flush,
        "list" => Cmd::List,
        "zero" => Cmd::Zero,
        "set" => Cmd::Timeout,
        "restore" => Cmd::Restore,
        "save" => Cmd::Save,
        "start-daemon" | "stop-daemon" => {
            let a = first.arg.as_deref().unwrap_or("");
            if a != "master" && a != "backup" {
                return fail(if first.long == "start-daemon" {
                    "illegal start-daemon parameter specified"
                } else {
                    "illegal start_daemon specified"
                });
            }
            if first.long == "start-daemon" {
                Cmd::StartDaemon
            } else {
                Cmd::StopDaemon
            }
        }
        "help" => return Ok(Parsed::Help),
        "version" => return Ok(Parsed::Version),
        _ => return tryhelp(),
    };
    let mut e = Entry {
        cmd,
        options: 0,
        format: Format::default(),
        svc: Svc::default(),
        dest: Dest {
            addr: None,
            port: 0,
            // Direct routing is ipvsadm's default forwarding method.
            fwd: Fwd::Route,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
        },
        timeouts: [0; 3],
    };
    let mut sched_flags_arg: Option<String> = None;
    for o in &opts[1..] {
        let arg = o.arg.as_deref();
        let val = || arg.unwrap_or("");
        match o.long {
            "tcp-service" | "udp-service" => {
                set_option(&mut e.options, O_SERVICE)?;
                let p = if o.long == "tcp-service" {
                    Protocol::Tcp
                } else {
                    Protocol::Udp
                };
                e.svc.protocol = Some(p);
                let Some((ip, port)) = parse_service(val(), Some(p)) else {
                    return fail("illegal virtual server address[:port] specified");
                };
                e.svc.addr = Some(ip);
                if let Some(port) = port {
                    e.svc.port = port;
                }
            }
            "sctp-service" => {
                return unsupported(&o.written, "lvslab's directors balance TCP and UDP")
            }
            "fwmark-service" => {
                set_option(&mut e.options, O_SERVICE)?;
                e.svc.protocol = Some(Protocol::Tcp);
                match string_to_number(val(), 1, i64::from(u32::MAX)) {
                    Some(n) => e.svc.fwmark = n as u32,
                    None => return fail(format!("invalid fwmark value `{}' specified", val())),
                }
            }
            "scheduler" => {
                set_option(&mut e.options, O_SCHEDULER)?;
                e.svc.sched = val().chars().take(15).collect();
            }
            "persistent" => {
                set_option(&mut e.options, O_PERSISTENT)?;
                e.svc.persistent = Some(parse_timeout(arg, 1, MAX_TIMEOUT)?);
            }
            "netmask" => {
                set_option(&mut e.options, O_NETMASK)?;
                if e.svc.fwmark_v6 || e.svc.addr.is_some_and(|a| a.is_ipv6()) {
                    return unsupported(
                        &o.written,
                        "IPv6 persistence netmasks are not supported by lvslab ipvsadm",
                    );
                }
                let m = val()
                    .parse::<Ipv4Addr>()
                    .ok()
                    .or_else(|| Resolver::addr_of(val()));
                match m {
                    Some(m) => e.svc.netmask = Some(m),
                    None => return fail("illegal virtual server persistent mask specified"),
                }
            }
            "real-server" => {
                set_option(&mut e.options, O_SERVER)?;
                let Some((ip, port)) = parse_service(val(), e.svc.protocol) else {
                    return fail("illegal real server address[:port] specified");
                };
                e.dest.addr = Some(ip);
                // No port: the service's (as parsed so far, like ipvsadm).
                e.dest.port = port.unwrap_or(e.svc.port);
            }
            "ipip" | "gatewaying" | "masquerading" => {
                set_option(&mut e.options, O_FORWARD)?;
                e.dest.fwd = match o.long {
                    "ipip" => Fwd::Tunnel,
                    "gatewaying" => Fwd::Route,
                    _ => Fwd::Masq,
                };
            }
            "weight" => {
                set_option(&mut e.options, O_WEIGHT)?;
                match string_to_number(val(), 0, 65535) {
                    Some(n) => e.dest.weight = n as u32,
                    None => return fail("illegal weight specified"),
                }
            }
            "u-threshold" => {
                set_option(&mut e.options, O_UTHRESHOLD)?;
                match string_to_number(val(), 0, i64::from(i32::MAX)) {
                    Some(n) => e.dest.u_threshold = n as u32,
                    None => return fail("illegal u_threshold specified"),
                }
            }
            "l-threshold" => {
                set_option(&mut e.options, O_LTHRESHOLD)?;
                match string_to_number(val(), 0, i64::from(i32::MAX)) {
                    Some(n) => e.dest.l_threshold = n as u32,
                    None => return fail("illegal l_threshold specified"),
                }
            }
            "connection" => set_option(&mut e.options, O_CONNECTION)?,
            "numeric" => {
                set_option(&mut e.options, O_NUMERIC)?;
                e.format.numeric = true;
            }
            "mcast-interface" => set_option(&mut e.options, O_MCAST)?,
            "syncid" => {
                set_option(&mut e.options, O_SYNCID)?;
                if string_to_number(val(), 0, 255).is_none() {
                    return fail("illegal syncid specified");
                }
            }
            "timeout" => set_option(&mut e.options, O_TIMEOUT)?,
            "daemon" => set_option(&mut e.options, O_DAEMON)?,
            "stats" => {
                set_option(&mut e.options, O_STATS)?;
                e.format.stats = true;
            }
            "rate" => {
                set_option(&mut e.options, O_RATE)?;
                e.format.rate = true;
            }
            "thresholds" => {
                set_option(&mut e.options, O_THRESHOLDS)?;
                e.format.thresholds = true;
            }
            "persistent-conn" => {
                set_option(&mut e.options, O_PERSISTENTCONN)?;
                e.format.persistent_conn = true;
            }
            "nosort" => {
                set_option(&mut e.options, O_NOSORT)?;
                e.format.nosort = true;
            }
            // Sorting is the default; --sort is accepted for compatibility.
            "sort" => {}
            "exact" => {
                set_option(&mut e.options, O_EXACT)?;
                e.format.exact = true;
            }
            "ipv6" => {
                if e.svc.fwmark == 0 {
                    return fail("-6 used before -f\n");
                }
                // ipvsadm.c sets af AF_INET6 and netmask 128: an earlier -M is dropped.
                e.svc.fwmark_v6 = true;
                e.svc.netmask = None;
            }
            "ops" => {
                set_option(&mut e.options, O_ONEPACKET)?;
                e.svc.ops = true;
            }
            "pe" => set_option(&mut e.options, O_PE)?,
            "sched-flags" => {
                set_option(&mut e.options, O_SCHED_FLAGS)?;
                sched_flags_arg = Some(val().to_owned());
            }
            "mcast-group" => set_option(&mut e.options, O_MCAST_GROUP)?,
            "mcast-port" => set_option(&mut e.options, O_MCAST_PORT)?,
            "mcast-ttl" => set_option(&mut e.options, O_MCAST_TTL)?,
            "sync-maxlen" => set_option(&mut e.options, O_SYNC_MAXLEN)?,
            "tun-info" => {
                set_option(&mut e.options, O_TUN_INFO)?;
                e.format.tun_info = true;
            }
            "tun-type" => {
                set_option(&mut e.options, O_TUN_TYPE)?;
                match val() {
                    "ipip" => {}
                    "gue" | "gre" => {
                        return unsupported(
                            &format!("--tun-type {}", val()),
                            "lvslab's TUN method is IP-in-IP (ipip) only",
                        )
                    }
                    _ => return fail("illegal tunnel type specified"),
                }
            }
            "tun-port" => set_option(&mut e.options, O_TUN_PORT)?,
            "tun-nocsum" => set_option(&mut e.options, O_TUN_NOCSUM)?,
            "tun-csum" => set_option(&mut e.options, O_TUN_CSUM)?,
            "tun-remcsum" => set_option(&mut e.options, O_TUN_REMCSUM)?,
            // A second command (popt hands it back like any option).
            _ => return fail(format!("invalid option `{}'", o.written)),
        }
    }
    if cmd == Cmd::Timeout {
        if rest.len() < 3 {
            return fail("--set option requires 3 timeout values");
        }
        let vals: Vec<String> = rest.drain(..3).collect();
        for (k, v) in vals.iter().enumerate() {
            e.timeouts[k] = parse_timeout(Some(v), 0, MAX_TIMEOUT)?;
        }
    }
    if let Some(a) = rest.first() {
        return fail(format!("unexpected argument {a}"));
    }
    if let Some(a) = sched_flags_arg {
        e.svc.sched_flags = parse_sched_flags(&e.svc.sched, &a)?;
    }

    generic_opt_check(cmd, e.options)?;

    if matches!(cmd, Cmd::Add | Cmd::Edit) {
        if e.svc.fwmark == 0 && e.svc.port == 0 && e.svc.persistent.is_none() {
            return fail("Zero port specified for non-persistent service");
        }
        if e.svc.ops && e.svc.fwmark == 0 && e.svc.protocol != Some(Protocol::Udp) {
            return fail("One-Packet Scheduling is only for UDP virtual services");
        }
        if e.svc.sched.is_empty() {
            e.svc.sched = "wlc".into();
        }
    }
    if matches!(cmd, Cmd::AddDest | Cmd::EditDest) {
        // DR and TUN cannot change the port: the real server's is the service's.
        if e.svc.fwmark == 0 && matches!(e.dest.fwd, Fwd::Tunnel | Fwd::Route) {
            e.dest.port = e.svc.port;
        }
        let svc_v6 = e.svc.fwmark_v6 || e.svc.addr.is_some_and(|a| a.is_ipv6());
        if e.dest.addr.is_some_and(|a| a.is_ipv6()) != svc_v6 && e.dest.fwd != Fwd::Tunnel {
            return fail("Different address family is allowed only for tunneling servers");
        }
        let tun_opts = (1u64 << O_TUN_TYPE)
            | (1 << O_TUN_PORT)
            | (1 << O_TUN_NOCSUM)
            | (1 << O_TUN_CSUM)
            | (1 << O_TUN_REMCSUM);
        if e.options & tun_opts != 0 && e.dest.fwd != Fwd::Tunnel {
            return fail("Tunnel options conflict with forward method");
        }
        // tunnel_opt_check for ipip, the only type that gets here: no tunnel options.
        for o in [O_TUN_PORT, O_TUN_NOCSUM, O_TUN_CSUM, O_TUN_REMCSUM] {
            if e.has(o) {
                return fail(format!(
                    "Illegal '{}' option with the 'ipip' tunnel type",
                    OPTNAMES[o as usize]
                ));
            }
        }
    }
    if cmd == Cmd::List {
        let conn_like = e.has(O_CONNECTION) || e.has(O_TIMEOUT) || e.has(O_DAEMON);
        let counters = e.has(O_STATS) || e.has(O_RATE) || e.has(O_THRESHOLDS);
        if (conn_like && counters)
            || ((e.has(O_TIMEOUT) || e.has(O_DAEMON)) && e.has(O_PERSISTENTCONN))
        {
            return fail("options conflicts in the list command");
        }
    }
    if cmd == Cmd::Restore && reading_stdin {
        return tryhelp();
    }
    // What ipvsadm accepts but lvslab's directors cannot do: refused by name.
    if e.has(O_PE) {
        return unsupported(
            "--pe",
            "lvslab's directors have no persistence engines (sip)",
        );
    }
    if matches!(cmd, Cmd::StartDaemon | Cmd::StopDaemon) {
        return unsupported(
            CMDNAMES[cmd as usize - 1],
            "a lab's directors sync connections as its topology's `backup` sets up",
        );
    }
    Ok(Parsed::Run(Box::new(e)))
}

/// `-t VIP:PORT`, `-u ...` or `-f MARK` for the core parser.
fn key_flag(svc: &Svc) -> String {
    if svc.fwmark != 0 {
        let v6 = if svc.fwmark_v6 { " -6" } else { "" };
        return format!("-f {}{v6}", svc.fwmark);
    }
    let addr = SocketAddr::new(
        svc.addr.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        svc.port,
    );
    match svc.protocol {
        Some(Protocol::Udp) => format!("-u {addr}"),
        _ => format!("-t {addr}"),
    }
}

fn listed_key(svc: &Svc) -> ListedKey {
    if svc.fwmark != 0 {
        return ListedKey::FwMark {
            mark: svc.fwmark,
            family: if svc.fwmark_v6 {
                lvslab_core::Family::Ipv6
            } else {
                lvslab_core::Family::Ipv4
            },
        };
    }
    ListedKey::Addr {
        protocol: svc.protocol.unwrap_or(Protocol::Tcp),
        addr: SocketAddr::new(
            svc.addr.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            svc.port,
        ),
    }
}

/// The plain ipvsadm line the core parser reads for a table change (every value numeric,
/// every option short), or None for a command that is no table change.
fn core_line(e: &Entry) -> Option<String> {
    let key = key_flag(&e.svc);
    let svc_opts = || {
        let mut s = format!(" -s {}", e.svc.sched);
        if let Some(t) = e.svc.persistent {
            s.push_str(&format!(" -p {t}"));
            if let Some(m) = e.svc.netmask {
                s.push_str(&format!(" -M {m}"));
            }
        }
        if e.svc.ops {
            s.push_str(" -o");
        }
        if e.svc.sched_flags != 0 {
            let names: Vec<&str> = [
                (listing::SCHED1, "flag-1"),
                (listing::SCHED2, "flag-2"),
                (listing::SCHED3, "flag-3"),
            ]
            .iter()
            .filter(|(b, _)| e.svc.sched_flags & b != 0)
            .map(|(_, n)| *n)
            .collect();
            s.push_str(&format!(" -b {}", names.join(",")));
        }
        s
    };
    let dest_opts = || {
        let rip = SocketAddr::new(
            e.dest.addr.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            e.dest.port,
        );
        let switch = match e.dest.fwd {
            Fwd::Masq => "-m",
            Fwd::Route => "-g",
            Fwd::Tunnel => "-i",
        };
        format!(
            " -r {rip} {switch} -w {} -x {} -y {}",
            e.dest.weight, e.dest.u_threshold, e.dest.l_threshold
        )
    };
    Some(match e.cmd {
        Cmd::Add => format!("-A {key}{}", svc_opts()),
        Cmd::Edit => format!("-E {key}{}", svc_opts()),
        Cmd::Del => format!("-D {key}"),
        Cmd::Flush => "-C".to_owned(),
        Cmd::AddDest => format!("-a {key}{}", dest_opts()),
        Cmd::EditDest => format!("-e {key}{}", dest_opts()),
        Cmd::DelDest => {
            let rip = SocketAddr::new(
                e.dest.addr.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                e.dest.port,
            );
            format!("-d {key} -r {rip}")
        }
        Cmd::Timeout => format!(
            "--set {} {} {}",
            e.timeouts[0], e.timeouts[1], e.timeouts[2]
        ),
        _ => return None,
    })
}

/// libipvs's ipvs_strerror for what the table shows will fail: ipvsadm's own words, for
/// both backends (each says it in its own words otherwise).
fn refusal(e: &Entry, table: &Table) -> Option<&'static str> {
    let key = listed_key(&e.svc);
    let svc = table.service(&key);
    let rip = e.dest.addr.map(|a| SocketAddr::new(a, e.dest.port));
    let has_dest = svc.is_some_and(|s| s.dests.iter().any(|d| Some(d.addr) == rip));
    let known_sched = e.svc.sched.parse::<lvslab_core::Scheduler>().is_ok();
    match e.cmd {
        Cmd::Add if svc.is_some() => Some("Service already exists"),
        Cmd::Add | Cmd::Edit if !known_sched && (e.cmd == Cmd::Add || svc.is_some()) => {
            Some("Scheduler or persistence engine not found")
        }
        Cmd::Edit | Cmd::Del | Cmd::Zero if svc.is_none() && e.has(O_SERVICE) => {
            Some("No such service")
        }
        Cmd::AddDest | Cmd::EditDest | Cmd::DelDest if svc.is_none() => Some("Service not defined"),
        Cmd::AddDest if has_dest => Some("Destination already exists"),
        Cmd::EditDest | Cmd::DelDest if !has_dest => Some("No such destination"),
        _ => None,
    }
}

/// The director a command acts on, opened when first needed (`-h` needs none).
struct Target<'a> {
    lab: Option<&'a str>,
    node: Option<&'a str>,
    balancer: Option<Box<dyn Balancer>>,
}

impl Target<'_> {
    fn get(&mut self) -> Result<&dyn Balancer> {
        if self.balancer.is_none() {
            let b = crate::director::cmd_stats::balancer(self.lab, self.node)?;
            self.balancer = Some(b);
        }
        self.balancer.as_deref().context("the director's balancer")
    }
}

/// Output and exit code of one command line.
struct Outcome {
    stdout: String,
    stderr: String,
    code: i32,
}

impl Outcome {
    fn ok(stdout: String) -> Self {
        Outcome {
            stdout,
            stderr: String::new(),
            code: 0,
        }
    }
}

fn usage() -> String {
    format!(
        "{}\nUsage (lvslab ipvsadm: ipvsadm's command line against a lab's director):\n  \
lvslab ipvsadm [--lab LAB] [--node N] -- -A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [-o] [-b sched-flags]\n  \
lvslab ipvsadm ... -- -D virtual-service\n  \
lvslab ipvsadm ... -- -C\n  \
lvslab ipvsadm ... -- -R            (rules from stdin, as ipvsadm-restore)\n  \
lvslab ipvsadm ... -- -S [-n]       (as ipvsadm-save)\n  \
lvslab ipvsadm ... -- -a|e virtual-service -r server-address [-g|i|m] [-w weight] [-x upper] [-y lower]\n  \
lvslab ipvsadm ... -- -d virtual-service -r server-address\n  \
lvslab ipvsadm ... -- -L|l [virtual-service] [-n] [-c] [--stats|--rate|--thresholds|--persistent-conn] [--exact] [--nosort] [--tun-info]\n  \
lvslab ipvsadm ... -- -L --timeout | --daemon\n  \
lvslab ipvsadm ... -- -Z [virtual-service]\n  \
lvslab ipvsadm ... -- --set tcp tcpfin udp\n\
virtual-service: --tcp-service|-t service-address | --udp-service|-u service-address | --fwmark-service|-f fwmark\n\
Not supported (an error names them): --sctp-service, --pe, -6, --tun-type gue|gre, --tun-port, --tun-*csum, --start-daemon, --stop-daemon",
        version_line()
    )
}

fn version_line() -> String {
    format!(
        "ipvsadm v1.31 command line of lvslab {} (against a lab's director; IPVS v1.2.1)",
        env!("CARGO_PKG_VERSION")
    )
}

/// One command line (ipvsadm's `process_options`); `stdin` holds `-R`'s rules.
fn process(
    args: &[String],
    target: &mut Target<'_>,
    stdin: &mut dyn FnMut() -> Result<String>,
    reading_stdin: bool,
) -> Result<Outcome> {
    // No argument at all: the table, resolving names (ipvsadm's main).
    if args.is_empty() {
        let t = target.get()?.table()?;
        return Ok(Outcome::ok(listing::render_all(
            &t,
            &Format::default(),
            &Resolver,
        )));
    }
    let e = match parse(args, reading_stdin) {
        Ok(Parsed::Help) => return Ok(Outcome::ok(usage() + "\n")),
        Ok(Parsed::Version) => return Ok(Outcome::ok(version_line() + "\n")),
        Ok(Parsed::Run(e)) => e,
        Err(x) => {
            return Ok(Outcome {
                stdout: String::new(),
                stderr: x.message + "\n",
                code: x.code,
            })
        }
    };
    let names: &dyn Names = if e.format.numeric {
        &Numeric
    } else {
        &Resolver
    };
    let b = target.get()?;
    match e.cmd {
        Cmd::List => {
            if e.has(O_CONNECTION) {
                let conns = b.conns()?;
                return Ok(Outcome::ok(listing::render_conns(&conns, &e.format, names)));
            }
            let mut t = b.table()?;
            if e.format.rate {
                // Kernel and userspace alike: the change over one second.
                let t0 = Instant::now();
                std::thread::sleep(Duration::from_secs(1));
                let after = b.table()?;
                t = listing::rates(&t, &after, t0.elapsed());
            }
            if e.has(O_SERVICE) {
                return Ok(match t.service(&listed_key(&e.svc)) {
                    Some(s) => Outcome::ok(listing::render_service(s, &e.format, names)),
                    None => Outcome {
                        stdout: String::new(),
                        stderr: "No such service\n".into(),
                        code: 1,
                    },
                });
            }
            if e.has(O_TIMEOUT) {
                return Ok(Outcome::ok(listing::render_timeouts(&t)));
            }
            if e.has(O_DAEMON) {
                return Ok(Outcome::ok(listing::render_daemons(&t)));
            }
            Ok(Outcome::ok(listing::render_all(&t, &e.format, names)))
        }
        Cmd::Save => {
            let t = b.table()?;
            let f = Format {
                rule: true,
                ..e.format
            };
            Ok(Outcome::ok(listing::render_all(&t, &f, names)))
        }
        Cmd::Restore => {
            let text = stdin()?;
            let mut out = Outcome::ok(String::new());
            for line in text.lines() {
                // config_stream_read: whitespace-separated words, the word `ipvsadm` dropped.
                let words: Vec<String> = line
                    .split_whitespace()
                    .filter(|w| *w != "ipvsadm")
                    .map(str::to_owned)
                    .collect();
                if words.is_empty() || words[0].starts_with('#') {
                    continue;
                }
                let o = process(&words, target, stdin, true)?;
                out.stdout.push_str(&o.stdout);
                out.stderr.push_str(&o.stderr);
                out.code = o.code;
                // ipvsadm's fail() ends the whole restore.
                if o.code == 2 || o.code == 255 {
                    break;
                }
            }
            Ok(out)
        }
        Cmd::Zero => {
            let t = b.table()?;
            if let Some(msg) = refusal(&e, &t) {
                return Ok(Outcome {
                    stdout: String::new(),
                    stderr: format!("{msg}\n"),
                    code: 255,
                });
            }
            b.zero(e.has(O_SERVICE).then(|| listed_key(&e.svc)))?;
            Ok(Outcome::ok(String::new()))
        }
        _ => {
            let Some(line) = core_line(&e) else {
                return Ok(Outcome::ok(String::new()));
            };
            if e.cmd != Cmd::Timeout && e.cmd != Cmd::Flush {
                let t = b.table()?;
                if let Some(msg) = refusal(&e, &t) {
                    return Ok(Outcome {
                        stdout: String::new(),
                        stderr: format!("{msg}\n"),
                        code: 255,
                    });
                }
            }
            // ipvsadm prints the kernel's refusal and returns -1 (exit status 255).
            Ok(match b.ipvsadm(&line) {
                Ok(()) => Outcome::ok(String::new()),
                Err(err) => Outcome {
                    stdout: String::new(),
                    stderr: format!("{err}\n"),
                    code: 255,
                },
            })
        }
    }
}

/// Run `lvslab ipvsadm`.
pub fn run(args: Args) -> Result<()> {
    let mut target = Target {
        lab: args.lab.as_deref(),
        node: args.node.as_deref(),
        balancer: None,
    };
    let file = args.stdin_file.clone();
    let mut stdin = move || -> Result<String> {
        match &file {
            Some(f) => std::fs::read_to_string(f).with_context(|| format!("read {}", f.display())),
            None => {
                let mut s = String::new();
                for l in std::io::stdin().lock().lines() {
                    s.push_str(&l?);
                    s.push('\n');
                }
                Ok(s)
            }
        }
    };
    let out = process(&args.args, &mut target, &mut stdin, false)?;
    std::io::stdout().write_all(out.stdout.as_bytes())?;
    std::io::stdout().flush()?;
    std::io::stderr().write_all(out.stderr.as_bytes())?;
    std::process::exit(out.code);
}

/// Runs the command in lvslab's VM when the lab lives there; `-R`'s rules are read here
/// and handed over in a file, since the VM's command gets no stdin.
pub fn route_to_vm(args: &Args) -> Result<Option<i32>> {
    let Some(_) = crate::vmlab::vm_lab_for(args.lab.as_deref()) else {
        return Ok(None);
    };
    let mut own = crate::vmlab::own_args();
    let restores = args.stdin_file.is_none()
        && args.args.iter().any(|a| {
            a == "--restore" || (a.starts_with('-') && !a.starts_with("--") && a.contains('R'))
        });
    let mut scratch = None;
    if restores {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
        // The guest sees the host's tree (its /run and /var/tmp are its own).
        let f = std::env::current_dir()?
            .join(format!(".lvslab-ipvsadm-restore-{}", std::process::id()));
        std::fs::write(&f, text).with_context(|| format!("write -R's rules to {}", f.display()))?;
        // Put before the ipvsadm arguments, which run to the end of the line.
        let at = own.iter().position(|a| a == "ipvsadm").map_or(0, |i| i + 1);
        own.insert(at, f.clone().into_os_string());
        own.insert(at, "--stdin-file".into());
        scratch = Some(f);
    }
    let code = crate::vmlab::forward(&own);
    if let Some(f) = scratch {
        let _ = std::fs::remove_file(f);
    }
    Ok(Some(code?))
}

/// For `lvslab exec`: in a userspace lab's director namespace, `ipvsadm` is the lab's
/// script (written by `up`) that reaches lvslab's director; its directory goes first on PATH.
pub fn put_shim_on_path(lab: &lvslab_netns::Lab, node: &str, cmd: &mut std::process::Command) {
    if lab.state.backend != lvslab_netns::Backend::Userspace {
        return;
    }
    let dir = lvslab_engine::ipvsadm_shim_dir(&lab.run_dir(), node);
    if !dir.join("ipvsadm").exists() {
        return;
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    let dirs = std::iter::once(dir).chain(std::env::split_paths(&path));
    if let Ok(joined) = std::env::join_paths(dirs) {
        cmd.env("PATH", joined);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn host_names_come_from_the_hosts_file_only() {
        let hosts =
            "127.0.0.1 localhost\n# 192.168.1.250 commented\n192.168.1.250 vip www  # the VIP\n";
        assert_eq!(
            super::hosts_name(hosts, "192.168.1.250".parse().unwrap()),
            Some("vip".into())
        );
        assert_eq!(
            super::hosts_name(hosts, "192.168.1.201".parse().unwrap()),
            None
        );
    }

    use super::*;

    fn p(line: &str) -> Res<Parsed> {
        let args: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        parse(&args, false)
    }

    fn entry(line: &str) -> Entry {
        match p(line) {
            Ok(Parsed::Run(e)) => *e,
            other => panic!("{line}: {other:?}"),
        }
    }

    fn err(line: &str) -> (i32, String) {
        match p(line) {
            Err(e) => (e.code, e.message),
            Ok(other) => panic!("{line}: parsed as {other:?}"),
        }
    }

    #[test]
    fn bundled_short_options_and_long_ones_are_the_same_listing() {
        for line in [
            "-Ln",
            "-L -n",
            "--list --numeric",
            "-l -n",
            "-Lnc",
            "-L --stats -n",
        ] {
            let e = entry(line);
            assert_eq!(e.cmd, Cmd::List, "{line}");
            assert!(e.format.numeric, "{line}");
        }
        assert!(entry("-Lnc").has(O_CONNECTION));
        assert!(entry("-Ln --rate --exact").format.exact);
    }

    #[test]
    fn table_changes_become_plain_core_lines_with_ipvsadm_defaults() {
        let cases = [
            ("-A -t 192.168.1.250:80", "-A -t 192.168.1.250:80 -s wlc"),
            (
                "--add-service --tcp-service=192.168.1.250:80 --scheduler rr -p",
                "-A -t 192.168.1.250:80 -s rr -p 360",
            ),
            (
                "-A -u 10.0.0.1:53 -s sh -b sh-port -o -p 60 -M 255.255.255.0",
                "-A -u 10.0.0.1:53 -s sh -p 60 -M 255.255.255.0 -o -b flag-2",
            ),
            (
                "-a -t 192.168.1.250:80 -r 192.168.1.201",
                "-a -t 192.168.1.250:80 -r 192.168.1.201:80 -g -w 1 -x 0 -y 0",
            ),
            (
                "-a -m -t 192.168.1.250:80 -r 192.168.1.201:8080 -w 2",
                "-a -t 192.168.1.250:80 -r 192.168.1.201:8080 -m -w 2 -x 0 -y 0",
            ),
            // DR keeps the service port whatever -r says.
            (
                "-e -t 192.168.1.250:80 -r 192.168.1.201:8080 -g -w0",
                "-e -t 192.168.1.250:80 -r 192.168.1.201:80 -g -w 0 -x 0 -y 0",
            ),
            ("-d -f 7 -r 10.0.0.2", "-d -f 7 -r 10.0.0.2:0"),
            // -6 after -f: an IPv6 firewall-mark service, its real servers IPv6.
            ("-A -f 1 -6 -s dh", "-A -f 1 -6 -s dh"),
            (
                "-a -f 1 -6 -r [2001:db8:1::201]:80 -g",
                "-a -f 1 -6 -r [2001:db8:1::201]:80 -g -w 1 -x 0 -y 0",
            ),
            ("-D -t 192.168.1.250:80", "-D -t 192.168.1.250:80"),
            ("-C", "-C"),
            ("--set 900 120 300", "--set 900 120 300"),
            (
                "-a -i -t 1.2.3.4:80 -r 10.0.0.1 --tun-type ipip",
                "-a -t 1.2.3.4:80 -r 10.0.0.1:80 -i -w 1 -x 0 -y 0",
            ),
        ];
        for (line, want) in cases {
            assert_eq!(core_line(&entry(line)).as_deref(), Some(want), "{line}");
        }
    }

    #[test]
    fn ipvsadm_refuses_what_ipvsadm_refuses_with_its_words() {
        let cases = [
            ("-A -t 1.2.3.4:80 -r 10.0.0.1", (2, "Illegal 'real-server' option with the 'add-service' command")),
            ("-a -t 1.2.3.4:80", (2, "You need to supply the 'real-server' option for the 'add-server' command")),
            ("-Lc --stats", (2, "options conflicts in the list command")),
            ("-L -c -t 1.2.3.4:80", (2, "The option 'service-address' conflicts with the 'connection' option in the 'list' command")),
            ("-A -t 1.2.3.4:0", (2, "Zero port specified for non-persistent service")),
            ("-A -t 1.2.3.4:80 -o", (2, "One-Packet Scheduling is only for UDP virtual services")),
            ("-a -t 1.2.3.4:80 -r 10.0.0.1 -w 70000", (2, "illegal weight specified")),
            ("-A -t 1.2.3.4:80 -s rr -s wrr", (2, "multiple 'scheduler' options specified")),
            ("-A -t nonsense..:80", (2, "illegal virtual server address[:port] specified")),
            ("--set 1 2", (2, "--set option requires 3 timeout values")),
            ("-L extra", (2, "unexpected argument extra")),
            ("-A -t 1.2.3.4:80 -s sh -b mh-port", (2, "incompatible scheduler flag `mh-port'")),
            ("-L -A", (2, "invalid option `-A'")),
            ("-n -L", (255, "Try `ipvsadm -h' or 'ipvsadm --help' for more information.")),
            ("-Q", (255, "Try `ipvsadm -h' or 'ipvsadm --help' for more information.")),
            ("-L --bogus", (255, "--bogus: unknown option")),
            ("-Lx", (255, "-Lx: missing argument")),
            ("-Lq", (255, "-Lq: unknown option")),
            ("-a -m -t 1.2.3.4:80 -r 10.0.0.1 --tun-type ipip", (2, "Tunnel options conflict with forward method")),
            ("-A -6 -f 1 -s dh", (2, "-6 used before -f\n")),
            ("-a -f 1 -6 -r 10.0.0.1 -g", (2, "Different address family is allowed only for tunneling servers")),
            ("-a -f 1 -r [2001:db8::1]:80 -m", (2, "Different address family is allowed only for tunneling servers")),
        ];
        for (line, (code, msg)) in cases {
            assert_eq!(err(line), (code, msg.to_owned()), "{line}");
        }
    }

    #[test]
    fn what_lvslab_cannot_do_is_an_error_naming_the_option() {
        for (line, opt) in [
            ("-A -t 1.2.3.4:80 -p --pe sip", "--pe"),
            ("--start-daemon master", "start-daemon"),
            ("-A --sctp-service 1.2.3.4:80", "--sctp-service"),
            (
                "-a -i -t 1.2.3.4:80 -r 10.0.0.1 --tun-type gue",
                "--tun-type gue",
            ),
        ] {
            let (code, msg) = err(line);
            assert_eq!(code, 2, "{line}");
            assert!(
                msg.contains(opt) && msg.contains("not supported"),
                "{line}: {msg}"
            );
        }
    }

    #[test]
    fn p_takes_a_timeout_only_when_one_follows() {
        assert_eq!(entry("-A -t 1.2.3.4:80 -p").svc.persistent, Some(360));
        assert_eq!(entry("-A -t 1.2.3.4:80 -p 60").svc.persistent, Some(60));
        assert_eq!(entry("-A -t 1.2.3.4:80 -p -s rr").svc.sched, "rr");
        assert_eq!(entry("-A -t 1.2.3.4:80 -p600").svc.persistent, Some(600));
    }

    #[test]
    fn help_and_version_need_no_lab() {
        assert_eq!(p("-h"), Ok(Parsed::Help));
        assert_eq!(p("--version"), Ok(Parsed::Version));
    }
}
