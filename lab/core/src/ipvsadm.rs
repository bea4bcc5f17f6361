//! Parse one ipvsadm command line as ipvsadm 1.31 reads it (ipvsadm.c: popt's option
//! scanning in `parse_options`, `parse_service`, `generic_opt_check` and the checks of
//! `process_options`), into an [`IpvsCommand`] with ipvsadm's defaults: scheduler wlc,
//! method -g (direct routing), weight 1, real-server port = service port, bare `-p` = 360 s.
//! Like ipvsadm, `-E` and `-e` send every field, so an omitted option resets to its default.
//!
//! What popt accepts is accepted: bundled short options (`-At 10.0.0.1:80`, `-Ln`), an
//! argument glued to its option (`-t10.0.0.1:80`, `--weight=3`), `-p` with or without a
//! timeout (a following word that does not start with `-` is the timeout). Service names
//! (`-t 10.0.0.1:http`) come from [`service_port`], a built-in table copied from Debian's
//! /etc/services (netbase 6.4), not the host's file, so a parse never depends on the host.
//! Listing and other commands that leave the table alone (`-L`, `-Z`, `-S`,
//! `--start-daemon`...) parse to [`Action::NoOp`] with [`parse_line`].
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use crate::types::{
    DestConfig, Family, ForwardMethod, IpvsCommand, Persistence, Protocol, SchedFlags, Scheduler,
    ServiceConfig, ServiceFlags, ServiceKey, Timeouts, Vip,
};

/// A line ipvsadm would refuse, or one lvslab cannot model; the message says what is wrong
/// and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct IpvsadmError {
    /// What is wrong, then the fix.
    pub message: String,
}

fn err<T>(message: impl Into<String>) -> Result<T, IpvsadmError> {
    Err(IpvsadmError {
        message: message.into(),
    })
}

/// A parsed line: what it does, and what ipvsadm does silently that a reader should know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The table change, or the command that changes nothing.
    pub action: Action,
    /// Things ipvsadm accepts without a word that change what the line says (a real-server
    /// port it replaces with the service port, a `-M` without `-p`).
    pub notes: Vec<String>,
}

/// What a line does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A change to the IPVS table.
    Table(IpvsCommand),
    /// A command that leaves the table as it is.
    NoOp(NoOp),
}

/// The ipvsadm commands that do not change the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoOp {
    /// `-L`, `-l` or a bare `ipvsadm`: list the table.
    List,
    /// `-Z`: zero the counters.
    Zero,
    /// `-S`: print the table in its save format.
    Save,
    /// `-h`: help.
    Help,
    /// `-v`: version.
    Version,
    /// `--start-daemon master|backup`: the connection sync daemon.
    StartDaemon,
    /// `--stop-daemon master|backup`.
    StopDaemon,
}

impl NoOp {
    /// The command as a person would name it.
    pub fn describe(self) -> &'static str {
        match self {
            NoOp::List => "lists the table (-L)",
            NoOp::Zero => "zeroes the counters (-Z)",
            NoOp::Save => "prints the table (-S)",
            NoOp::Help => "prints help (-h)",
            NoOp::Version => "prints the version (-v)",
            NoOp::StartDaemon => "starts a connection sync daemon (--start-daemon)",
            NoOp::StopDaemon => "stops a connection sync daemon (--stop-daemon)",
        }
    }
}

/// ipvsadm's commands, in the order of its `commands_v_options` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Add,
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
    Help,
    Version,
}

impl Cmd {
    /// ipvsadm's `cmdnames`.
    fn name(self) -> &'static str {
        match self {
            Cmd::Help => "help",
            Cmd::Version => "version",
            c => CMD_NAMES.get(c as usize).copied().unwrap_or("?"),
        }
    }

    /// The command's row of ipvsadm 1.31's `commands_v_options` (one column per [`OPT_NAMES`]
    /// entry): '+' compulsory, 'x' illegal, '1' at most one of them, ' ' optional.
    fn row(self) -> Option<&'static [u8; N_OPT]> {
        match self {
            Cmd::Help | Cmd::Version => None,
            c => COMMANDS_V_OPTIONS.get(c as usize),
        }
    }
}

/// How many options ipvsadm 1.31's tables have (its OPTC_* count).
pub const N_OPT: usize = 34;

/// ipvsadm 1.31's `cmdnames`, in its `CMD_*` order (the rows of [`COMMANDS_V_OPTIONS`]).
pub const CMD_NAMES: [&str; 14] = [
    "add-service",
    "edit-service",
    "delete-service",
    "flush",
    "list",
    "add-server",
    "delete-server",
    "edit-server",
    "set",
    "start-daemon",
    "stop-daemon",
    "restore",
    "save",
    "zero",
];

/// ipvsadm 1.31's `commands_v_options`, one row per [`CMD_NAMES`] entry and one column per
/// [`OPT_NAMES`] entry: '+' compulsory, 'x' illegal, '1' at most one of them, ' ' optional.
pub const COMMANDS_V_OPTIONS: [[u8; N_OPT]; 14] = [
    *b"xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx", // add-service
    *b"xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx", // edit-service
    *b"xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // delete-service
    *b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // flush
    *b" 11xxxxxxxxx11       xxxxxxx xxxxx", // list
    *b"xx+xxx+    xxxxxxxxxxxxxxxxxx     ", // add-server
    *b"xx+xxx+xxxxxxxxxxxxxxxxxxxxxxxxxxx", // delete-server
    *b"xx+xxx+    xxxxxxxxxxxxxxxxxx     ", // edit-server
    *b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // set (timeout)
    *b"xxxxxxxxxxx xxxxxxx xxxx    xxxxxx", // start-daemon
    *b"xxxxxxxxxxxxxxxxxxx xxxxxxxxxxxxxx", // stop-daemon
    *b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // restore
    *b" xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // save
    *b"xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // zero
];

/// ipvsadm's `optnames`, the columns of its option table.
pub const OPT_NAMES: [&str; N_OPT] = [
    "numeric",
    "connection",
    "service-address",
    "scheduler",
    "persistent",
    "netmask",
    "real-server",
    "forwarding-method",
    "weight",
    "u-threshold",
    "l-threshold",
    "mcast-interface",
    "timeout",
    "daemon",
    "stats",
    "rate",
    "thresholds",
    "persistent-conn",
    "nosort",
    "syncid",
    "exact",
    "ops",
    "pe",
    "sched-flags",
    "mcast-group",
    "mcast-port",
    "mcast-ttl",
    "sync-maxlen",
    "tun-info",
    "tun-type",
    "tun-port",
    "tun-nocsum",
    "tun-csum",
    "tun-remcsum",
];

// Column numbers (OPTC_* in ipvsadm.c) of the options this parser looks at again.
const C_NUMERIC: usize = 0;
const C_CONNECTION: usize = 1;
const C_SERVICE: usize = 2;
const C_SCHED: usize = 3;
const C_PERSIST: usize = 4;
const C_NETMASK: usize = 5;
const C_SERVER: usize = 6;
const C_FORWARD: usize = 7;
const C_WEIGHT: usize = 8;
const C_UTHR: usize = 9;
const C_LTHR: usize = 10;
const C_MCAST_IF: usize = 11;
const C_TIMEOUT: usize = 12;
const C_DAEMON: usize = 13;
const C_STATS: usize = 14;
const C_RATE: usize = 15;
const C_THRESHOLDS: usize = 16;
const C_PCONN: usize = 17;
const C_NOSORT: usize = 18;
const C_SYNCID: usize = 19;
const C_EXACT: usize = 20;
const C_OPS: usize = 21;
const C_PE: usize = 22;
const C_SCHED_FLAGS: usize = 23;
const C_MCAST_GROUP: usize = 24;
const C_MCAST_PORT: usize = 25;
const C_MCAST_TTL: usize = 26;
const C_SYNC_MAXLEN: usize = 27;
const C_TUN_INFO: usize = 28;
const C_TUN_TYPE: usize = 29;
const C_TUN_PORT: usize = 30;
const C_TUN_NOCSUM: usize = 31;
const C_TUN_CSUM: usize = 32;
const C_TUN_REMCSUM: usize = 33;

/// What an option is, as ipvsadm's popt table declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opt {
    Cmd(Cmd),
    Tcp,
    Udp,
    Fwmark,
    Sched,
    Persistent,
    Netmask,
    Real,
    Masq,
    Ipip,
    Gate,
    Weight,
    UThr,
    LThr,
    /// Options that only set a column (listing and daemon options).
    Column(usize),
    /// Daemon options that take a value (checked, then ignored: the sync daemon is no rule).
    ColumnArg(usize),
    Sort,
    Ipv6,
    Ops,
    Pe,
    SchedFlags,
    TunType,
    TunPort,
    TunNocsum,
    TunCsum,
    TunRemcsum,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arg {
    None,
    Required,
    Optional,
}

/// ipvsadm 1.31's popt option table: long name, short letter, argument, meaning.
const OPTIONS: &[(&str, Option<char>, Arg, Opt)] = &[
    ("add-service", Some('A'), Arg::None, Opt::Cmd(Cmd::Add)),
    ("edit-service", Some('E'), Arg::None, Opt::Cmd(Cmd::Edit)),
    ("delete-service", Some('D'), Arg::None, Opt::Cmd(Cmd::Del)),
    ("clear", Some('C'), Arg::None, Opt::Cmd(Cmd::Flush)),
    ("list", Some('L'), Arg::None, Opt::Cmd(Cmd::List)),
    ("list", Some('l'), Arg::None, Opt::Cmd(Cmd::List)),
    ("zero", Some('Z'), Arg::None, Opt::Cmd(Cmd::Zero)),
    ("add-server", Some('a'), Arg::None, Opt::Cmd(Cmd::AddDest)),
    ("edit-server", Some('e'), Arg::None, Opt::Cmd(Cmd::EditDest)),
    (
        "delete-server",
        Some('d'),
        Arg::None,
        Opt::Cmd(Cmd::DelDest),
    ),
    ("set", None, Arg::None, Opt::Cmd(Cmd::Timeout)),
    ("help", Some('h'), Arg::None, Opt::Cmd(Cmd::Help)),
    ("version", Some('v'), Arg::None, Opt::Cmd(Cmd::Version)),
    ("restore", Some('R'), Arg::None, Opt::Cmd(Cmd::Restore)),
    ("save", Some('S'), Arg::None, Opt::Cmd(Cmd::Save)),
    (
        "start-daemon",
        None,
        Arg::Required,
        Opt::Cmd(Cmd::StartDaemon),
    ),
    (
        "stop-daemon",
        None,
        Arg::Required,
        Opt::Cmd(Cmd::StopDaemon),
    ),
    ("tcp-service", Some('t'), Arg::Required, Opt::Tcp),
    ("udp-service", Some('u'), Arg::Required, Opt::Udp),
    ("fwmark-service", Some('f'), Arg::Required, Opt::Fwmark),
    ("scheduler", Some('s'), Arg::Required, Opt::Sched),
    ("persistent", Some('p'), Arg::Optional, Opt::Persistent),
    ("netmask", Some('M'), Arg::Required, Opt::Netmask),
    ("real-server", Some('r'), Arg::Required, Opt::Real),
    ("masquerading", Some('m'), Arg::None, Opt::Masq),
    ("ipip", Some('i'), Arg::None, Opt::Ipip),
    ("gatewaying", Some('g'), Arg::None, Opt::Gate),
    ("weight", Some('w'), Arg::Required, Opt::Weight),
    ("u-threshold", Some('x'), Arg::Required, Opt::UThr),
    ("l-threshold", Some('y'), Arg::Required, Opt::LThr),
    ("numeric", Some('n'), Arg::None, Opt::Column(C_NUMERIC)),
    (
        "connection",
        Some('c'),
        Arg::None,
        Opt::Column(C_CONNECTION),
    ),
    (
        "mcast-interface",
        None,
        Arg::Required,
        Opt::ColumnArg(C_MCAST_IF),
    ),
    ("syncid", None, Arg::Required, Opt::ColumnArg(C_SYNCID)),
    ("timeout", None, Arg::None, Opt::Column(C_TIMEOUT)),
    ("daemon", None, Arg::None, Opt::Column(C_DAEMON)),
    ("stats", None, Arg::None, Opt::Column(C_STATS)),
    ("rate", None, Arg::None, Opt::Column(C_RATE)),
    ("thresholds", None, Arg::None, Opt::Column(C_THRESHOLDS)),
    ("persistent-conn", None, Arg::None, Opt::Column(C_PCONN)),
    ("nosort", None, Arg::None, Opt::Column(C_NOSORT)),
    ("sort", None, Arg::None, Opt::Sort),
    ("exact", Some('X'), Arg::None, Opt::Column(C_EXACT)),
    ("ipv6", Some('6'), Arg::None, Opt::Ipv6),
    ("ops", Some('o'), Arg::None, Opt::Ops),
    ("pe", None, Arg::Required, Opt::Pe),
    ("sched-flags", Some('b'), Arg::Required, Opt::SchedFlags),
    (
        "mcast-group",
        None,
        Arg::Required,
        Opt::ColumnArg(C_MCAST_GROUP),
    ),
    (
        "mcast-port",
        None,
        Arg::Required,
        Opt::ColumnArg(C_MCAST_PORT),
    ),
    (
        "mcast-ttl",
        None,
        Arg::Required,
        Opt::ColumnArg(C_MCAST_TTL),
    ),
    (
        "sync-maxlen",
        None,
        Arg::Required,
        Opt::ColumnArg(C_SYNC_MAXLEN),
    ),
    ("tun-info", None, Arg::None, Opt::Column(C_TUN_INFO)),
    ("tun-type", None, Arg::Required, Opt::TunType),
    ("tun-port", None, Arg::Required, Opt::TunPort),
    ("tun-nocsum", None, Arg::None, Opt::TunNocsum),
    ("tun-csum", None, Arg::None, Opt::TunCsum),
    ("tun-remcsum", None, Arg::None, Opt::TunRemcsum),
];

/// One option as popt hands it over: what it is, its argument, and how it was written.
struct Event {
    opt: Opt,
    arg: Option<String>,
    written: String,
}

/// popt's scan of argv: options (bundled short ones split, `--long=value` and glued short
/// arguments taken apart) and the words left over.
fn scan(toks: &[&str]) -> Result<(Vec<Event>, Vec<String>), IpvsadmError> {
    let mut events = Vec::new();
    let mut rest = Vec::new();
    let mut i = 0;
    // The word after an option, taken as its argument.
    let next_arg = |i: &mut usize, optional: bool| -> Option<String> {
        let v = toks.get(*i + 1)?;
        // popt leaves a word that starts with '-' alone for an optional argument.
        if optional && v.starts_with('-') {
            return None;
        }
        *i += 1;
        Some((*v).to_string())
    };
    while i < toks.len() {
        let t = toks[i];
        if let Some(long) = t.strip_prefix("--") {
            if long.is_empty() {
                // "--" ends the options: popt hands the rest over as words.
                rest.extend(toks[i + 1..].iter().map(|s| s.to_string()));
                break;
            }
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let Some(&(_, _, arg, opt)) = OPTIONS.iter().find(|o| o.0 == name) else {
                return err(format!(
                    "unknown option `--{name}`: ipvsadm 1.31 has no such option (see `ipvsadm -h`)"
                ));
            };
            let value = match arg {
                Arg::None => {
                    if inline.is_some() {
                        return err(format!(
                            "option `--{name}` takes no value: drop `={}`",
                            inline.unwrap_or_default()
                        ));
                    }
                    None
                }
                Arg::Required => match inline {
                    Some(v) => Some(v),
                    None => Some(next_arg(&mut i, false).ok_or_else(|| IpvsadmError {
                        message: format!("option `--{name}` needs a value"),
                    })?),
                },
                Arg::Optional => inline.or_else(|| next_arg(&mut i, true)),
            };
            events.push(Event {
                opt,
                arg: value,
                written: format!("--{name}"),
            });
        } else if t.len() > 1 && t.starts_with('-') {
            let letters: Vec<char> = t[1..].chars().collect();
            let mut k = 0;
            while k < letters.len() {
                let c = letters[k];
                let Some(&(_, _, arg, opt)) = OPTIONS.iter().find(|o| o.1 == Some(c)) else {
                    return err(format!(
                        "unknown option `-{c}` in `{t}`: ipvsadm has no such short option (see `ipvsadm -h`)"
                    ));
                };
                let glued: String = letters[k + 1..].iter().collect();
                let value = match arg {
                    Arg::None => None,
                    // popt: the rest of the word is the argument, else the next word.
                    Arg::Required if !glued.is_empty() => Some(glued.clone()),
                    Arg::Required => Some(next_arg(&mut i, false).ok_or_else(|| IpvsadmError {
                        message: format!("option `-{c}` needs a value"),
                    })?),
                    Arg::Optional if !glued.is_empty() => Some(glued.clone()),
                    Arg::Optional => next_arg(&mut i, true),
                };
                events.push(Event {
                    opt,
                    arg: value,
                    written: format!("-{c}"),
                });
                if arg != Arg::None {
                    break;
                }
                k += 1;
            }
        } else {
            rest.push(t.to_string());
        }
        i += 1;
    }
    Ok((events, rest))
}

/// Everything one line sets, as ipvsadm's `struct ipvs_command_entry` holds it.
struct Entry {
    cmd: Option<Cmd>,
    options: [bool; N_OPT],
    protocol: Option<Protocol>,
    vip: Option<IpAddr>,
    port: u16,
    fwmark: Option<u32>,
    fwmark_v6: bool,
    scheduler: Option<String>,
    persistent: Option<Duration>,
    netmask: Option<IpAddr>,
    one_packet: bool,
    sched_flags: Option<String>,
    dest: Option<(IpAddr, Option<u16>)>,
    method: ForwardMethod,
    weight: u32,
    uth: u32,
    lth: u32,
    tun_type: &'static str,
}

/// ipvsadm's MAX_TIMEOUT: 31 days.
const MAX_TIMEOUT: u64 = 86400 * 31;

/// Parse `[ipvsadm] COMMAND OPTIONS...` into a table change. A command that changes
/// nothing (`-L`...) is an error here; [`parse_line`] returns it as [`Action::NoOp`].
pub fn parse(line: &str) -> Result<IpvsCommand, IpvsadmError> {
    match parse_line(line)?.action {
        Action::Table(c) => Ok(c),
        Action::NoOp(n) => err(format!(
            "this line {}: it changes no rule; give a table command such as -A, -a, -e, -d, -D, -C or --set",
            n.describe()
        )),
    }
}

/// Parse `[ipvsadm] COMMAND OPTIONS...`: the table change or no-op, with notes.
pub fn parse_line(line: &str) -> Result<Parsed, IpvsadmError> {
    let mut toks: Vec<&str> = line.split_whitespace().collect();
    if toks.is_empty() {
        return err("empty ipvsadm line: give a command such as -A, -a, -e, -d, -D, -C or --set");
    }
    if toks.first() == Some(&"ipvsadm") {
        toks.remove(0);
    }
    let mut notes = Vec::new();
    if toks.is_empty() {
        // ipvsadm with no arguments lists the table.
        return Ok(Parsed {
            action: Action::NoOp(NoOp::List),
            notes,
        });
    }
    let (events, words) = scan(&toks)?;
    let mut e = Entry {
        cmd: None,
        options: [false; N_OPT],
        protocol: None,
        vip: None,
        port: 0,
        fwmark: None,
        fwmark_v6: false,
        scheduler: None,
        persistent: None,
        netmask: None,
        one_packet: false,
        sched_flags: None,
        dest: None,
        method: ForwardMethod::Dr,
        weight: 1,
        uth: 0,
        lth: 0,
        tun_type: "ipip",
    };
    let Some(first) = events.first() else {
        return err(format!(
            "no command in `{}`: start with -A (add service), -E, -D, -C, -a (add server), -e, -d, --set or -L",
            toks.join(" ")
        ));
    };
    if !matches!(first.opt, Opt::Cmd(_)) {
        return err(format!(
            "`{}` comes before the command: ipvsadm wants the command first, e.g. `-A -t VIP:PORT ...` or `-a -t VIP:PORT -r RIP ...`",
            first.written
        ));
    }
    // The real-server port ipvsadm copies from the service when -r gives none: the
    // service's port as it stands when -r is read.
    let mut dest_port_default = 0u16;
    for ev in &events {
        let set = |e: &mut Entry, col: usize| -> Result<(), IpvsadmError> {
            if e.options[col] {
                return err(format!(
                    "multiple '{}' options specified (`{}` again): give it once",
                    OPT_NAMES[col], ev.written
                ));
            }
            e.options[col] = true;
            Ok(())
        };
        let arg = ev.arg.clone().unwrap_or_default();
        match ev.opt {
            Opt::Cmd(c) => {
                if let Some(old) = e.cmd {
                    return err(format!(
                        "multiple commands specified (`{}` after {}): one line takes one command",
                        ev.written,
                        old.name()
                    ));
                }
                if matches!(c, Cmd::StartDaemon | Cmd::StopDaemon)
                    && arg != "master"
                    && arg != "backup"
                {
                    return err(format!(
                        "{} `{arg}`: the sync daemon state is master or backup",
                        ev.written
                    ));
                }
                e.cmd = Some(c);
            }
            Opt::Tcp | Opt::Udp => {
                set(&mut e, C_SERVICE)?;
                let protocol = if ev.opt == Opt::Tcp {
                    Protocol::Tcp
                } else {
                    Protocol::Udp
                };
                e.protocol = Some(protocol);
                let (ip, port) =
                    parse_service(&arg, Some(protocol), &ev.written, "virtual server")?;
                e.vip = Some(ip);
                e.port = port.unwrap_or(0);
            }
            Opt::Fwmark => {
                set(&mut e, C_SERVICE)?;
                e.protocol = Some(Protocol::Tcp);
                e.fwmark = Some(parse_fwmark(&arg)?);
            }
            Opt::Sched => {
                set(&mut e, C_SCHED)?;
                e.scheduler = Some(arg);
            }
            Opt::Persistent => {
                set(&mut e, C_PERSIST)?;
                e.persistent = Some(match &ev.arg {
                    None => Persistence::DEFAULT_TIMEOUT,
                    Some(v) => Duration::from_secs(parse_timeout(v, 1, &ev.written)?),
                });
            }
            Opt::Netmask => {
                set(&mut e, C_NETMASK)?;
                let v6 = e.vip.is_some_and(|v| v.is_ipv6()) || e.fwmark_v6;
                e.netmask = Some(parse_netmask(&arg, v6)?);
            }
            Opt::Real => {
                set(&mut e, C_SERVER)?;
                let (ip, port) = parse_service(&arg, e.protocol, &ev.written, "real server")?;
                dest_port_default = e.port;
                e.dest = Some((ip, port));
            }
            Opt::Masq | Opt::Ipip | Opt::Gate => {
                set(&mut e, C_FORWARD)?;
                e.method = match ev.opt {
                    Opt::Masq => ForwardMethod::Nat,
                    Opt::Ipip => ForwardMethod::Tun,
                    _ => ForwardMethod::Dr,
                };
            }
            Opt::Weight => {
                set(&mut e, C_WEIGHT)?;
                e.weight = parse_ranged(&arg, &ev.written, "weight", MAX_WEIGHT)?;
            }
            Opt::UThr => {
                set(&mut e, C_UTHR)?;
                e.uth = parse_ranged(&arg, &ev.written, "upper threshold", MAX_THRESHOLD)?;
            }
            Opt::LThr => {
                set(&mut e, C_LTHR)?;
                e.lth = parse_ranged(&arg, &ev.written, "lower threshold", MAX_THRESHOLD)?;
            }
            Opt::Column(col) | Opt::ColumnArg(col) => set(&mut e, col)?,
            Opt::Sort => {}
            // ipvsadm.c case '6': only after -f (with -t/-u the address says the family),
            // sets the service's af to AF_INET6 and its netmask to 128, so a -M read before
            // it (as an IPv4 mask) is dropped; one after it is a prefix length.
            Opt::Ipv6 => {
                if e.fwmark.is_none() {
                    return err("-6 used before -f: write `-f MARK -6` (-6 only makes a firewall-mark service IPv6; -t/-u take the family from the address)");
                }
                e.fwmark_v6 = true;
                if let Some(m) = e.netmask.take() {
                    notes.push(format!(
                        "-M {m} before -6: ipvsadm resets the mask to 128 at -6, so it is dropped; put -M PREFIXLEN after -6"
                    ));
                }
            }
            Opt::Ops => {
                set(&mut e, C_OPS)?;
                e.one_packet = true;
            }
            Opt::Pe => {
                set(&mut e, C_PE)?;
            }
            Opt::SchedFlags => {
                set(&mut e, C_SCHED_FLAGS)?;
                e.sched_flags = Some(arg);
            }
            Opt::TunType => {
                set(&mut e, C_TUN_TYPE)?;
                e.tun_type = match arg.as_str() {
                    "ipip" => "ipip",
                    "gue" => "gue",
                    "gre" => "gre",
                    _ => {
                        return err(format!(
                            "illegal tunnel type `{arg}`: ipvsadm knows ipip, gue and gre"
                        ))
                    }
                };
            }
            Opt::TunPort => {
                set(&mut e, C_TUN_PORT)?;
                if !(1..=65535).contains(&parse_num(&arg, &ev.written)?) {
                    return err(format!(
                        "--tun-port {arg}: illegal tunnel port, use 1-65535"
                    ));
                }
            }
            Opt::TunNocsum => set(&mut e, C_TUN_NOCSUM)?,
            Opt::TunCsum => set(&mut e, C_TUN_CSUM)?,
            Opt::TunRemcsum => set(&mut e, C_TUN_REMCSUM)?,
        }
    }
    let Some(cmd) = e.cmd else {
        return err("no command: start with -A, -E, -D, -C, -a, -e, -d, --set or -L");
    };
    // --set takes its three values from the words left over; any other leftover is an error.
    let mut words = words.into_iter();
    let mut timeouts = None;
    if cmd == Cmd::Timeout {
        let vals: Vec<String> = words.by_ref().take(3).collect();
        if vals.len() < 3 {
            return err("--set option requires 3 timeout values: --set TCP TCPFIN UDP");
        }
        let secs = |v: &str| parse_timeout(v, 0, "--set").map(Duration::from_secs);
        timeouts = Some(Timeouts {
            tcp: secs(&vals[0])?,
            tcp_fin: secs(&vals[1])?,
            udp: secs(&vals[2])?,
        });
    }
    if let Some(w) = words.next() {
        return err(format!(
            "unexpected argument `{w}`: every value belongs to an option (a comment in a rules file must be on a line of its own)"
        ));
    }
    generic_opt_check(cmd, &e.options)?;
    let noop = |n| {
        Ok(Parsed {
            action: Action::NoOp(n),
            notes: Vec::new(),
        })
    };
    match cmd {
        Cmd::Help => return noop(NoOp::Help),
        Cmd::Version => return noop(NoOp::Version),
        Cmd::List => return noop(NoOp::List),
        Cmd::Save => return noop(NoOp::Save),
        Cmd::Zero => return noop(NoOp::Zero),
        Cmd::StartDaemon => return noop(NoOp::StartDaemon),
        Cmd::StopDaemon => return noop(NoOp::StopDaemon),
        Cmd::Restore => {
            return err(
                "-R reads rules from standard input, which lvslab cannot follow: give lvslab the rules file itself",
            )
        }
        Cmd::Flush => {
            return Ok(Parsed {
                action: Action::Table(IpvsCommand::Clear),
                notes,
            })
        }
        Cmd::Timeout => {
            let t = timeouts.ok_or_else(|| IpvsadmError {
                message: "--set needs three values: --set TCP TCPFIN UDP".into(),
            })?;
            return Ok(Parsed {
                action: Action::Table(IpvsCommand::SetTimeouts(t)),
                notes,
            });
        }
        _ => {}
    }
    if e.options[C_PE] {
        return err("--pe: lvslab does not model persistence engines (sip); drop --pe");
    }
    let key = match (e.fwmark, e.vip, e.protocol) {
        (Some(mark), _, _) => ServiceKey::FwMark {
            mark,
            family: if e.fwmark_v6 {
                Family::Ipv6
            } else {
                Family::Ipv4
            },
        },
        (None, Some(vip), Some(protocol)) => ServiceKey::Addr {
            protocol,
            vip: Vip(vip),
            port: e.port,
        },
        _ => return err("no service given: add -t VIP:PORT, -u VIP:PORT or -f MARK"),
    };
    let svc_v6 = key.family().is_ipv6();
    match cmd {
        Cmd::Del => Ok(Parsed {
            action: Action::Table(IpvsCommand::DelService(key)),
            notes,
        }),
        Cmd::Add | Cmd::Edit => {
            if e.fwmark.is_none() && e.port == 0 && e.persistent.is_none() {
                return err(format!(
                    "Zero port specified for non-persistent service ({key}): give a port, or add -p to make a persistent all-ports service"
                ));
            }
            if e.one_packet && e.fwmark.is_none() && e.protocol != Some(Protocol::Udp) {
                return err(
                    "One-Packet Scheduling is only for UDP virtual services: drop -o or use -u",
                );
            }
            let scheduler: Scheduler = e.scheduler.as_deref().unwrap_or("wlc").parse().map_err(
                |x: crate::types::UnknownScheduler| IpvsadmError {
                    message: x.to_string(),
                },
            )?;
            let mut flags = ServiceFlags {
                one_packet: e.one_packet,
                ..ServiceFlags::default()
            };
            if let Some(names) = &e.sched_flags {
                flags.sched = sched_flags(names, scheduler)?;
            }
            if e.netmask.is_some() && e.persistent.is_none() {
                notes.push(
                    "-M without -p: ipvsadm accepts it, but the mask only matters to a persistent service, so it is dropped".to_string(),
                );
            }
            let persistence = e.persistent.map(|t| {
                let mut p = Persistence::new(t, svc_v6);
                if let Some(m) = e.netmask {
                    p.netmask = m;
                }
                p
            });
            let cfg = ServiceConfig {
                key,
                scheduler,
                persistence,
                flags,
            };
            Ok(Parsed {
                action: Action::Table(if cmd == Cmd::Add {
                    IpvsCommand::AddService(cfg)
                } else {
                    IpvsCommand::EditService(cfg)
                }),
                notes,
            })
        }
        Cmd::AddDest | Cmd::EditDest | Cmd::DelDest => {
            let Some((ip, port)) = e.dest else {
                return err("no real server given: add -r ADDRESS[:PORT]");
            };
            let given = port;
            let mut port = port.unwrap_or(dest_port_default);
            if cmd != Cmd::DelDest {
                let fwd = e.method;
                if e.fwmark.is_none() && fwd != ForwardMethod::Nat {
                    // process_options: DR and TUN cannot change the port, so ipvsadm puts
                    // the service's in, whatever -r said.
                    if let Some(p) = given.filter(|&p| p != e.port) {
                        notes.push(format!(
                            "real server {ip} port {p}: ipvsadm uses the service port {} with {} (only -m maps ports)",
                            e.port,
                            if fwd == ForwardMethod::Dr { "-g" } else { "-i" }
                        ));
                    }
                    port = e.port;
                }
                let dest_v6 = ip.is_ipv6();
                if dest_v6 != svc_v6 {
                    if fwd != ForwardMethod::Tun {
                        return err(format!(
                            "real server {ip}: Different address family is allowed only for tunneling servers (-i)"
                        ));
                    }
                    return err(format!(
                        "real server {ip}: lvslab does not model a tunnel to another address family than the service's"
                    ));
                }
                let tun_opt = [
                    C_TUN_TYPE,
                    C_TUN_PORT,
                    C_TUN_NOCSUM,
                    C_TUN_CSUM,
                    C_TUN_REMCSUM,
                ]
                .into_iter()
                .find(|&c| e.options[c]);
                if let Some(c) = tun_opt {
                    if fwd != ForwardMethod::Tun {
                        return err(format!(
                            "--{}: Tunnel options conflict with forward method: they go with -i",
                            OPT_NAMES[c]
                        ));
                    }
                }
                match e.tun_type {
                    "ipip" => {
                        if let Some(c) = [C_TUN_PORT, C_TUN_NOCSUM, C_TUN_CSUM, C_TUN_REMCSUM]
                            .into_iter()
                            .find(|&c| e.options[c])
                        {
                            return err(format!(
                                "Illegal '{}' option with the 'ipip' tunnel type",
                                OPT_NAMES[c]
                            ));
                        }
                    }
                    other => {
                        return err(format!(
                            "--tun-type {other}: lvslab models IP-in-IP tunnels only (--tun-type ipip, the default)"
                        ))
                    }
                }
            }
            let addr = SocketAddr::new(ip, port);
            if cmd == Cmd::DelDest {
                return Ok(Parsed {
                    action: Action::Table(IpvsCommand::DelDest(key, addr)),
                    notes,
                });
            }
            let dc = DestConfig {
                addr,
                method: e.method,
                weight: e.weight,
                u_threshold: e.uth,
                l_threshold: e.lth,
            };
            Ok(Parsed {
                action: Action::Table(if cmd == Cmd::AddDest {
                    IpvsCommand::AddDest(key, dc)
                } else {
                    IpvsCommand::EditDest(key, dc)
                }),
                notes,
            })
        }
        _ => err(format!("the {} command changes no rule", cmd.name())),
    }
}

/// ipvsadm's `generic_opt_check`: every option allowed with the command, the compulsory
/// ones there, at most one of the exclusive ones.
fn generic_opt_check(cmd: Cmd, options: &[bool; N_OPT]) -> Result<(), IpvsadmError> {
    let Some(row) = cmd.row() else {
        return Ok(());
    };
    let mut exclusive: Option<usize> = None;
    for (j, &given) in options.iter().enumerate() {
        let rule = row[j];
        if !given {
            if rule == b'+' {
                let how = match j {
                    C_SERVICE => ": add -t VIP:PORT, -u VIP:PORT or -f MARK",
                    C_SERVER => ": add -r ADDRESS[:PORT]",
                    _ => "",
                };
                return err(format!(
                    "You need to supply the '{}' option for the '{}' command{how}",
                    OPT_NAMES[j],
                    cmd.name()
                ));
            }
            continue;
        }
        if rule == b'x' {
            let why = match (cmd, j) {
                (Cmd::Add | Cmd::Edit, C_SERVER | C_FORWARD | C_WEIGHT | C_UTHR | C_LTHR) => {
                    ": -r/-g/-i/-m/-w/-x/-y belong to real-server commands (-a/-e)"
                }
                (
                    Cmd::AddDest | Cmd::EditDest | Cmd::DelDest,
                    C_SCHED | C_PERSIST | C_NETMASK | C_OPS | C_SCHED_FLAGS | C_PE,
                ) => ": -s/-p/-M/-o/-b belong to service commands (-A/-E)",
                _ => "",
            };
            return err(format!(
                "Illegal '{}' option with the '{}' command{why}",
                OPT_NAMES[j],
                cmd.name()
            ));
        }
        if rule == b'1' {
            if let Some(last) = exclusive {
                return err(format!(
                    "The option '{}' conflicts with the '{}' option in the '{}' command",
                    OPT_NAMES[j],
                    OPT_NAMES[last],
                    cmd.name()
                ));
            }
            exclusive = Some(j);
        }
    }
    // ipvsadm's CMD_LIST conflicts.
    if cmd == Cmd::List {
        let any = |cols: &[usize]| cols.iter().any(|&c| options[c]);
        if (any(&[C_CONNECTION, C_TIMEOUT, C_DAEMON]) && any(&[C_STATS, C_RATE, C_THRESHOLDS]))
            || (any(&[C_TIMEOUT, C_DAEMON]) && options[C_PCONN])
        {
            return err("options conflicts in the list command");
        }
    }
    Ok(())
}

/// ipvsadm's `string_to_number` for a u32 that is no more than ipvsadm's limit.
fn parse_num(v: &str, opt: &str) -> Result<u32, IpvsadmError> {
    v.parse::<u32>().map_err(|_| IpvsadmError {
        message: format!("{opt} `{v}`: expected a whole number"),
    })
}

/// ipvsadm's `parse_timeout`: whole seconds from `min` to 31 days.
fn parse_timeout(v: &str, min: u64, opt: &str) -> Result<u64, IpvsadmError> {
    match v.parse::<u64>() {
        Ok(n) if (min..=MAX_TIMEOUT).contains(&n) => Ok(n),
        _ => err(format!(
            "{opt} `{v}`: invalid timeout value: use whole seconds from {min} to {MAX_TIMEOUT} (31 days)"
        )),
    }
}

/// ipvsadm's `parse_fwmark`: 1..=4294967295.
fn parse_fwmark(v: &str) -> Result<u32, IpvsadmError> {
    match v.parse::<u32>() {
        Ok(m) if m > 0 => Ok(m),
        _ => err(format!(
            "-f `{v}`: invalid fwmark value: a firewall mark is a whole number from 1 to 4294967295"
        )),
    }
}

/// ipvsadm's limits: weights are 0..65535, thresholds 0..INT_MAX.
const MAX_WEIGHT: u32 = 65535;
const MAX_THRESHOLD: u32 = i32::MAX as u32;

/// A whole number no larger than `max`; a number that is merely too big says so and names
/// the range rather than claiming it is not a number.
fn parse_ranged(v: &str, opt: &str, what: &str, max: u32) -> Result<u32, IpvsadmError> {
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        if let Some(n) = v.parse::<u32>().ok().filter(|&n| n <= max) {
            return Ok(n);
        }
        return err(format!(
            "{opt} {v}: {what} {v} is out of range: use 0-{max}"
        ));
    }
    parse_num(v, opt)
}

/// inet_aton: `a`, `a.b`, `a.b.c` or `a.b.c.d`, each part decimal, octal (leading 0) or
/// hex (0x), the last part filling the remaining bytes.
fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut nums = Vec::with_capacity(4);
    for p in &parts {
        let n = if let Some(h) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
            if h.is_empty() {
                0
            } else {
                u64::from_str_radix(h, 16).ok()?
            }
        } else if p.len() > 1 && p.starts_with('0') {
            u64::from_str_radix(&p[1..], 8).ok()?
        } else {
            if p.is_empty() {
                return None;
            }
            p.parse::<u64>().ok()?
        };
        nums.push(n);
    }
    let (head, last) = nums.split_at(nums.len() - 1);
    if head.iter().any(|&n| n > 255) {
        return None;
    }
    let last_bits = 8 * (4 - head.len() as u32);
    if last_bits < 64 && last[0] >> last_bits != 0 {
        return None;
    }
    let mut v: u32 = 0;
    for (i, &n) in head.iter().enumerate() {
        v |= (n as u32) << (24 - 8 * i as u32);
    }
    v |= last[0] as u32;
    Some(Ipv4Addr::from(v))
}

/// ipvsadm's `parse_service`: `ADDRESS[:PORT]` or `[V6ADDRESS]:PORT`; a port may be a
/// service name of `protocol` (see [`service_port`]). An address that is all digits is
/// refused, as ipvsadm does (`-r 80`).
fn parse_service(
    v: &str,
    protocol: Option<Protocol>,
    opt: &str,
    what: &str,
) -> Result<(IpAddr, Option<u16>), IpvsadmError> {
    let bad = || {
        IpvsadmError {
        message: format!(
            "{opt} `{v}`: illegal {what} address[:port]: expected ADDRESS[:PORT] such as 192.168.1.250:80 or [2001:db8::1]:80"
        ),
    }
    };
    if v.is_empty() || v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let (host, port) = if let Some(rest) = v.strip_prefix('[') {
        let (ip, tail) = rest.split_once(']').ok_or_else(bad)?;
        // ipvsadm wants a port after a bracketed address.
        let p = tail.strip_prefix(':').ok_or_else(bad)?;
        (ip, Some(p))
    } else if v.parse::<Ipv6Addr>().is_ok() {
        (v, None)
    } else {
        match v.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (v, None),
        }
    };
    let ip: IpAddr = if let Ok(a) = host.parse::<Ipv6Addr>() {
        if v.starts_with('[') || port.is_none() {
            IpAddr::V6(a)
        } else {
            return Err(bad());
        }
    } else if let Some(a) = inet_aton(host) {
        IpAddr::V4(a)
    } else if host.bytes().any(|b| b.is_ascii_alphabetic()) {
        return err(format!(
            "{opt} `{v}`: `{host}` is a host name: ipvsadm would ask the resolver, lvslab does not (so a lab never depends on DNS); write the address"
        ));
    } else {
        return Err(bad());
    };
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            match p.parse::<u16>() {
                Ok(n) => Some(n),
                Err(_) => {
                    return err(format!(
                        "{opt} `{v}`: port {p} is out of range: use 0-65535"
                    ))
                }
            }
        }
        Some(p) => Some(match protocol.and_then(|pr| service_port(p, pr)) {
            Some(n) => n,
            None => {
                let proto = match protocol {
                    Some(Protocol::Udp) => "udp",
                    Some(Protocol::Tcp) => "tcp",
                    None => {
                        return err(format!(
                            "{opt} `{v}`: a service name needs the protocol first: put -t/-u before -r, or write the port number"
                        ))
                    }
                };
                return err(format!(
                    "{opt} `{v}`: `{p}` is not a {proto} service name lvslab knows (its table holds the common ones from /etc/services: {}); write the port number",
                    known_services(protocol.unwrap_or(Protocol::Tcp))
                ));
            }
        }),
    };
    Ok((ip, port))
}

/// Service names as ipvsadm resolves them through getservbyname(3): a built-in table of the
/// common entries (names and aliases) of Debian's /etc/services (netbase 6.4), so parsing
/// never depends on the host's file.
const SERVICES: &[(&str, u16, bool, bool)] = &[
    // (name, port, tcp, udp)
    ("ftp-data", 20, true, false),
    ("ftp", 21, true, false),
    ("ssh", 22, true, false),
    ("telnet", 23, true, false),
    ("smtp", 25, true, false),
    ("mail", 25, true, false),
    ("domain", 53, true, true),
    ("http", 80, true, false),
    ("www", 80, true, false),
    ("kerberos", 88, true, true),
    ("pop3", 110, true, false),
    ("pop-3", 110, true, false),
    ("ntp", 123, false, true),
    ("imap2", 143, true, false),
    ("imap", 143, true, false),
    ("snmp", 161, true, true),
    ("ldap", 389, true, true),
    ("https", 443, true, true),
    ("submission", 587, true, false),
    ("ldaps", 636, true, true),
    ("rsync", 873, true, false),
    ("imaps", 993, true, false),
    ("pop3s", 995, true, false),
    ("openvpn", 1194, true, true),
    ("ms-sql-s", 1433, true, false),
    ("mysql", 3306, true, false),
    ("sip", 5060, true, true),
    ("postgresql", 5432, true, false),
    ("postgres", 5432, true, false),
    ("redis", 6379, true, false),
];

/// The port of service `name` for `protocol`, from lvslab's built-in copy of the common
/// /etc/services entries (not the host's file: a parse must not depend on the host).
pub fn service_port(name: &str, protocol: Protocol) -> Option<u16> {
    SERVICES
        .iter()
        .find(|s| {
            s.0 == name
                && match protocol {
                    Protocol::Tcp => s.2,
                    Protocol::Udp => s.3,
                }
        })
        .map(|s| s.1)
}

fn known_services(protocol: Protocol) -> String {
    SERVICES
        .iter()
        .filter(|s| match protocol {
            Protocol::Tcp => s.2,
            Protocol::Udp => s.3,
        })
        .map(|s| s.0)
        .collect::<Vec<_>>()
        .join(" ")
}

/// ipvsadm's `-M`: for an IPv4 service a mask as inet_aton reads it (`255.255.255.0`); for
/// an IPv6 one a prefix length 1..=128.
fn parse_netmask(v: &str, v6: bool) -> Result<IpAddr, IpvsadmError> {
    if v6 {
        return match v.parse::<u32>() {
            Ok(bits) if (1..=128).contains(&bits) => {
                Ok(IpAddr::V6((u128::MAX << (128 - bits)).into()))
            }
            _ => err(format!(
                "-M `{v}`: illegal ipv6 netmask: give a prefix length 1-128"
            )),
        };
    }
    match inet_aton(v) {
        Some(m) => Ok(IpAddr::V4(m)),
        None => err(format!(
            "-M `{v}`: illegal virtual server persistent mask: give a mask such as 255.255.255.0"
        )),
    }
}

fn sched_flags(names: &str, s: Scheduler) -> Result<SchedFlags, IpvsadmError> {
    let mut f = SchedFlags::default();
    for n in names.split(',').filter(|n| !n.is_empty()) {
        let needs = |want: Scheduler| -> Result<(), IpvsadmError> {
            if s != want {
                return err(format!(
                    "-b {n}: incompatible scheduler flag: it only applies to the {want} scheduler, this service uses {s}"
                ));
            }
            Ok(())
        };
        match n {
            "flag-1" => f.fallback = true,
            "flag-2" => f.port = true,
            "flag-3" => f.flag3 = true,
            "sh-fallback" => {
                needs(Scheduler::Sh)?;
                f.fallback = true
            }
            "sh-port" => {
                needs(Scheduler::Sh)?;
                f.port = true
            }
            "mh-fallback" => {
                needs(Scheduler::Mh)?;
                f.fallback = true
            }
            "mh-port" => {
                needs(Scheduler::Mh)?;
                f.port = true
            }
            other => {
                return err(format!(
                    "invalid scheduler flag `{other}`: use sh-fallback, sh-port, mh-fallback, mh-port or flag-1..flag-3"
                ))
            }
        }
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_nat_dest_with_weight() {
        let c = parse("ipvsadm -a -t 10.0.1.100:8005 -r 10.0.2.11:80 -m -w 4").unwrap();
        let IpvsCommand::AddDest(key, dc) = c else {
            panic!("{c:?}")
        };
        assert_eq!(key.to_string(), "TCP  10.0.1.100:8005");
        assert_eq!(dc.addr, "10.0.2.11:80".parse().unwrap());
        assert_eq!(dc.method, ForwardMethod::Nat);
        assert_eq!(dc.weight, 4);
    }

    #[test]
    fn bare_persistent_is_360s_and_defaults() {
        let c = parse("-A -t 192.168.1.250:80 -p -s rr").unwrap();
        let IpvsCommand::AddService(cfg) = c else {
            panic!()
        };
        assert_eq!(cfg.scheduler, Scheduler::Rr);
        assert_eq!(cfg.persistence.unwrap().timeout, Duration::from_secs(360));
        let c = parse("--add-service --udp-service 192.168.1.250:53 --persistent 60").unwrap();
        let IpvsCommand::AddService(cfg) = c else {
            panic!()
        };
        assert_eq!(cfg.scheduler, Scheduler::Wlc);
        assert_eq!(cfg.persistence.unwrap().timeout, Duration::from_secs(60));
        // popt gives -p the next word unless it starts with '-': a word is a bad timeout.
        let e = parse("-A -t 192.168.1.250:80 -p rr").unwrap_err();
        assert!(e.message.contains("invalid timeout value"), "{e}");
        // Last on the line, -p has no value.
        let IpvsCommand::AddService(cfg) = parse("-A -t 192.168.1.250:80 -s rr -p").unwrap() else {
            panic!()
        };
        assert_eq!(cfg.persistence.unwrap().timeout, Duration::from_secs(360));
    }

    #[test]
    fn dr_default_and_port_from_service() {
        let IpvsCommand::AddDest(_, dc) = parse("-a -t 1.2.3.4:80 -r 10.0.0.1").unwrap() else {
            panic!()
        };
        assert_eq!(dc.method, ForwardMethod::Dr);
        assert_eq!(dc.addr.port(), 80);
        assert_eq!(dc.weight, 1);
    }

    #[test]
    fn errors_name_the_fix() {
        let e = parse("-A -t 1.2.3.4:80 -s fastest").unwrap_err();
        assert!(e.message.contains("rr wrr"), "{e}");
        let e = parse("-a -t 1.2.3.4:80").unwrap_err();
        assert!(e.message.contains("-r ADDRESS"), "{e}");
        let e = parse("-A -t 1.2.3.4:80 -s rr -b sh-port").unwrap_err();
        assert!(e.message.contains("sh scheduler"), "{e}");
        let e = parse("-A -t 1.2.3.4 -s rr").unwrap_err();
        assert!(e.message.contains("Zero port specified"), "{e}");
        assert!(parse("-Z").is_err());
        let e = parse("-a -t 1.2.3.4:80 -s wlc -r 10.0.0.1 -g").unwrap_err();
        assert!(
            e.message
                .contains("Illegal 'scheduler' option with the 'add-server' command"),
            "{e}"
        );
        let e = parse("-t 1.2.3.4:80 -A").unwrap_err();
        assert!(e.message.contains("command first"), "{e}");
        let e = parse("-a -t 1.2.3.4:80 -r 10.0.0.1 -g -m").unwrap_err();
        assert!(e.message.contains("multiple 'forwarding-method'"), "{e}");
        let e = parse("-A -t 1.2.3.4:80 -a").unwrap_err();
        assert!(e.message.contains("multiple commands"), "{e}");
        let e = parse("-A -t www.example.com:80").unwrap_err();
        assert!(e.message.contains("host name"), "{e}");
        let e = parse("-A -t 1.2.3.4:80 # web").unwrap_err();
        assert!(e.message.contains("unexpected argument `#`"), "{e}");
    }

    #[test]
    fn set_timeouts_and_flags() {
        assert_eq!(
            parse("ipvsadm --set 900 120 300").unwrap(),
            IpvsCommand::SetTimeouts(Timeouts::default())
        );
        let IpvsCommand::AddService(cfg) =
            parse("-A -f 7 -s sh -b sh-fallback,sh-port -p 30 -M 255.255.255.0").unwrap()
        else {
            panic!()
        };
        assert!(cfg.flags.sched.fallback && cfg.flags.sched.port);
        assert_eq!(cfg.key, ServiceKey::fwmark(7));
        assert_eq!(
            cfg.persistence.unwrap().netmask,
            "255.255.255.0".parse::<IpAddr>().unwrap()
        );
        let IpvsCommand::EditDest(_, dc) =
            parse("-e -u [2001:db8::1]:53 -r [2001:db8::2]:53 -i -w 0 -x 10 -y 5").unwrap()
        else {
            panic!()
        };
        assert_eq!((dc.weight, dc.u_threshold, dc.l_threshold), (0, 10, 5));
        assert_eq!(dc.method, ForwardMethod::Tun);
    }

    fn message(line: &str) -> String {
        parse(line).unwrap_err().to_string()
    }

    #[test]
    fn out_of_range_ports_name_the_range() {
        for (line, opt, v) in [
            ("-A -t 1.2.3.4:99999 -s rr", "-t", "1.2.3.4:99999"),
            (
                "-A -u [2001:db8::1]:65536 -s rr",
                "-u",
                "[2001:db8::1]:65536",
            ),
            (
                "-a -t 1.2.3.4:80 -r 10.0.0.1:70000 -m",
                "-r",
                "10.0.0.1:70000",
            ),
        ] {
            let port = v.rsplit(':').next().unwrap();
            assert_eq!(
                message(line),
                format!("{opt} `{v}`: port {port} is out of range: use 0-65535"),
                "{line}"
            );
        }
        assert!(parse("-A -t 1.2.3.4:65535 -s rr").is_ok());
        assert!(message("-A -t 1.2.3.4:gopher -s rr").contains("not a tcp service name"));
    }

    #[test]
    fn out_of_range_weights_and_thresholds_name_the_range() {
        let base = "-a -t 1.2.3.4:80 -r 10.0.0.1 -g";
        assert_eq!(
            message(&format!("{base} -w 65536")),
            "-w 65536: weight 65536 is out of range: use 0-65535"
        );
        assert_eq!(
            message(&format!("{base} -w 99999999999")),
            "-w 99999999999: weight 99999999999 is out of range: use 0-65535"
        );
        assert_eq!(
            message(&format!("{base} -x 2147483648")),
            "-x 2147483648: upper threshold 2147483648 is out of range: use 0-2147483647"
        );
        assert_eq!(
            message(&format!("{base} --l-threshold 5000000000")),
            "--l-threshold 5000000000: lower threshold 5000000000 is out of range: use 0-2147483647"
        );
        assert!(parse(&format!("{base} -w 65535 -x 2147483647 -y 1")).is_ok());
        assert!(message(&format!("{base} -w -1")).contains("expected a whole number"));
    }

    // The lines a new user fed to `lvslab simulate` that the real ipvsadm takes.

    #[test]
    fn bundled_short_options_as_popt_splits_them() {
        assert_eq!(
            parse("-At 10.0.0.1:80 -s rr").unwrap(),
            parse("-A -t 10.0.0.1:80 -s rr").unwrap()
        );
        assert_eq!(
            parse("ipvsadm -at 200.168.10.10:80 -r 200.168.10.2:80 -i").unwrap(),
            parse("-a -t 200.168.10.10:80 -r 200.168.10.2:80 -i").unwrap()
        );
        // The rest of a bundle is the argument of an option that takes one.
        assert_eq!(
            parse("-At10.0.0.1:80 -srr -p600").unwrap(),
            parse("-A -t 10.0.0.1:80 -s rr -p 600").unwrap()
        );
        assert_eq!(
            parse("-a -t 10.0.0.1:80 -r 10.0.0.2 -mw3").unwrap(),
            parse("-a -t 10.0.0.1:80 -r 10.0.0.2 -m -w 3").unwrap()
        );
        assert_eq!(
            parse("--add-server --tcp-service=10.0.0.1:80 --real-server=10.0.0.2 --weight=3")
                .unwrap(),
            parse("-a -t 10.0.0.1:80 -r 10.0.0.2 -w 3").unwrap()
        );
    }

    #[test]
    fn service_names_come_from_the_built_in_table() {
        let IpvsCommand::AddService(cfg) = parse("-A -t 10.0.0.1:http -s rr").unwrap() else {
            panic!()
        };
        assert_eq!(cfg.key.to_string(), "TCP  10.0.0.1:80");
        let IpvsCommand::AddDest(k, dc) =
            parse("-a -t 192.168.1.112:https -r 10.0.0.64:8443 -m -w 1").unwrap()
        else {
            panic!()
        };
        assert_eq!(k.to_string(), "TCP  192.168.1.112:443");
        assert_eq!(dc.addr.port(), 8443);
        let IpvsCommand::AddService(cfg) = parse("-A -u 10.0.0.1:domain").unwrap() else {
            panic!()
        };
        assert_eq!(cfg.key.to_string(), "UDP  10.0.0.1:53");
        // /etc/services has http for tcp only (netbase 6.4): ipvsadm -u VIP:http fails too.
        let e = message("-A -u 10.0.0.1:http -s rr");
        assert!(e.contains("not a udp service name"), "{e}");
        assert!(e.contains("domain"), "{e}");
        assert_eq!(service_port("mysql", Protocol::Tcp), Some(3306));
        assert_eq!(service_port("www", Protocol::Tcp), Some(80));
    }

    #[test]
    fn tun_type_ipip_as_ipvsadm_save_writes_it() {
        let c = parse("-a -t 10.0.0.1:80 -r 10.0.1.2:80 -i -w 1 --tun-type ipip").unwrap();
        assert_eq!(
            c,
            parse("-a -t 10.0.0.1:80 -r 10.0.1.2:80 -i -w 1").unwrap()
        );
        let e = message("-a -t 10.0.0.1:80 -r 10.0.1.2:80 -g --tun-type ipip");
        assert!(
            e.contains("Tunnel options conflict with forward method"),
            "{e}"
        );
        let e = message("-a -t 10.0.0.1:80 -r 10.0.1.2:80 -i --tun-type gue --tun-port 6080");
        assert!(e.contains("IP-in-IP tunnels only"), "{e}");
        let e = message("-a -t 10.0.0.1:80 -r 10.0.1.2:80 -i --tun-port 6080");
        assert!(
            e.contains("Illegal 'tun-port' option with the 'ipip' tunnel type"),
            "{e}"
        );
    }

    #[test]
    fn fwmark_real_server_keeps_its_port() {
        let IpvsCommand::AddDest(k, dc) = parse("-a -f 3 -r 10.0.1.220:80 -i").unwrap() else {
            panic!()
        };
        assert_eq!(k, ServiceKey::fwmark(3));
        assert_eq!(dc.addr, "10.0.1.220:80".parse().unwrap());
        assert_eq!(dc.method, ForwardMethod::Tun);
        // Without a port it is the service's, 0 for a fwmark service.
        let IpvsCommand::AddDest(_, dc) = parse("-a -f 3 -r 10.0.1.220 -g").unwrap() else {
            panic!()
        };
        assert_eq!(dc.addr.port(), 0);
    }

    #[test]
    fn dash_6_makes_a_firewall_mark_service_ipv6_as_ipvsadm_reads_it() {
        let IpvsCommand::AddService(cfg) = parse("-A -f 1 -6 -s dh").unwrap() else {
            panic!()
        };
        assert_eq!(cfg.key, ServiceKey::fwmark6(1));
        assert_eq!(cfg.key.to_string(), "FWM  1 IPv6");
        assert_eq!(ServiceKey::fwmark(1).to_string(), "FWM  1");
        // Its real servers are IPv6 ones; an IPv4 one is refused as ipvsadm refuses it,
        // and an IPv6 one without -6 too (the service is then IPv4).
        let IpvsCommand::AddDest(k, dc) = parse("-a -f 1 -6 -r [2001:db8:1::201]:80 -g").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (k, dc.addr),
            (
                ServiceKey::fwmark6(1),
                "[2001:db8:1::201]:80".parse().unwrap()
            )
        );
        for bad in [
            "-a -f 1 -6 -r 192.168.1.201:80 -g",
            "-a -f 1 -r [2001:db8:1::201]:80 -m",
        ] {
            let e = parse(bad).unwrap_err().message;
            assert!(
                e.contains("Different address family is allowed only for tunneling servers"),
                "{bad}: {e}"
            );
        }
        // -6 comes after -f, and only there: with -t/-u the address decides.
        for bad in [
            "-A -6 -f 1 -s dh",
            "-A -t [2001:db8::1]:80 -6 -s rr",
            "-A -6 -t 10.0.0.1:80",
        ] {
            let e = parse(bad).unwrap_err().message;
            assert!(e.starts_with("-6 used before -f"), "{bad}: {e}");
        }
        // -M after -6 is a prefix length; before it, ipvsadm drops it when -6 resets the mask.
        let IpvsCommand::AddService(cfg) = parse("-A -f 1 -6 -s sh -p 60 -M 64").unwrap() else {
            panic!()
        };
        assert_eq!(
            cfg.persistence.map(|p| p.netmask),
            Some("ffff:ffff:ffff:ffff::".parse().unwrap())
        );
        let p = parse_line("-A -f 1 -p 60 -M 64 -6 -s sh").unwrap();
        let Action::Table(IpvsCommand::AddService(cfg)) = p.action else {
            panic!()
        };
        assert_eq!(
            cfg.persistence.map(|p| p.netmask),
            Some(IpAddr::V6(u128::MAX.into())),
            "a bare -p on an IPv6 service masks nothing"
        );
        assert!(
            p.notes[0].contains("resets the mask to 128"),
            "{:?}",
            p.notes
        );
        assert!(parse("-A -f 1 -6 -s sh -p -M 255.255.255.0").is_err());
        // Deleting and editing name the IPv6 service too.
        assert_eq!(
            parse("-D -f 9 -6").unwrap(),
            IpvsCommand::DelService(ServiceKey::fwmark6(9))
        );
    }

    #[test]
    fn dr_real_server_port_is_the_service_port_with_a_note() {
        let p = parse_line("-a -t 10.0.0.1:80 -r 10.0.0.2:8080 -g").unwrap();
        let Action::Table(IpvsCommand::AddDest(_, dc)) = p.action else {
            panic!()
        };
        assert_eq!(dc.addr.port(), 80);
        assert!(p.notes[0].contains("service port 80"), "{:?}", p.notes);
        assert!(parse_line("-a -t 10.0.0.1:80 -r 10.0.0.2:80 -g")
            .unwrap()
            .notes
            .is_empty());
    }

    #[test]
    fn listing_commands_are_no_ops() {
        for (line, what) in [
            ("-L", NoOp::List),
            ("-Ln", NoOp::List),
            ("ipvsadm -L -n", NoOp::List),
            ("ipvsadm -l -c", NoOp::List),
            ("ipvsadm", NoOp::List),
            ("-L -n --stats", NoOp::List),
            ("-L -t 10.0.0.1:80", NoOp::List),
            ("-Z", NoOp::Zero),
            ("-Sn", NoOp::Save),
            (
                "--start-daemon master --mcast-interface eth0 --syncid 5",
                NoOp::StartDaemon,
            ),
            ("--stop-daemon backup", NoOp::StopDaemon),
        ] {
            assert_eq!(
                parse_line(line).unwrap().action,
                Action::NoOp(what),
                "{line}"
            );
        }
        assert!(message("-L -c --stats").contains("options conflicts"));
        assert!(message("-L -s rr").contains("Illegal 'scheduler' option with the 'list'"));
        assert!(message("-R").contains("standard input"));
    }

    #[test]
    fn inet_aton_forms() {
        assert_eq!(inet_aton("10.1"), Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(inet_aton("0x0a.0.0.010"), Some(Ipv4Addr::new(10, 0, 0, 8)));
        assert_eq!(inet_aton("256.0.0.1"), None);
        assert_eq!(inet_aton("1.2.3.4.5"), None);
    }
}
