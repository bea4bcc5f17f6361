//! ipvsadm rules in and out.
//!
//! [`import_ipvsadm`] reads what people have: `ipvsadm-save` output, `ipvsadm -R` input,
//! and the shell scripts around ipvsadm (init scripts, rc.local snippets) with variables,
//! `\` continuations, `case "$1" in start)` branches (the start path is taken), loops and
//! functions, `ipvsadm`, `/sbin/ipvsadm`, `$IPVSADM` or `sudo ipvsadm` prefixes. Each
//! ipvsadm line is parsed by lvslab's own parser ([`lvslab_core::ipvsadm`], which reads
//! options as ipvsadm 1.31 does) and applied in order to lvslab's balancer
//! ([`lvslab_core::Ipvs`]), so `-E`, `-d`, `-D` and `-C` have their real effect; the
//! services are read back from it. An ipvsadm line lvslab cannot take is an error naming
//! file and line; what ipvsadm does silently, or what is left out, is a warning naming them.
//!
//! The result is the topology's service model: one [`ServiceSpec`] per virtual service,
//! balanced by the node `director`, its real servers on nodes `rs1`, `rs2`, ... numbered by
//! the first appearance of their address (services in `ipvsadm-save` order, real servers in
//! the order they were added). A firewall-mark service takes its addresses and port from
//! the script's `iptables -t mangle ... -j MARK --set-mark N` rules, as the topology models
//! one.
//!
//! [`to_ipvsadm_save`] writes services back exactly as `ipvsadm-save -n` (ipvsadm 1.31)
//! prints them; [`to_toml`] writes the `[[services]]` part of a topology file and
//! [`to_json`] the same as JSON.
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use lvslab_core::ipvsadm::{self, Action, NoOp};
use lvslab_core::{
    Family, ForwardMethod, Ipvs, IpvsCommand, IpvsConfig, Persistence, Protocol, ServiceKey,
};
use lvslab_netns::topology::{RealServerSpec, ServiceSpec};
use serde::Serialize;

mod shell;

/// The director node every imported service names.
pub const DIRECTOR: &str = "director";

/// Services read from an ipvsadm file, and what the reader has to say about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Imported {
    /// The virtual services in `ipvsadm-save` order.
    pub services: Vec<ServiceSpec>,
    /// Things left out or changed on the way, each with its file and line.
    pub warnings: Vec<ImportWarning>,
}

/// A warning tied to a line of the input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportWarning {
    /// The file, as the caller named it.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// What happened and why.
    pub text: String,
}

impl std::fmt::Display for ImportWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: warning: {}",
            self.file.display(),
            self.line,
            self.text
        )
    }
}

/// Why a file could not be imported: always its file and line, and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}: {message}", file.display())]
pub struct ImportError {
    /// The file, as the caller named it.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// What is wrong, then the fix.
    pub message: String,
}

/// Where each service and real server was last configured, for errors after the fact.
#[derive(Default)]
struct Lines {
    service: HashMap<ServiceKey, usize>,
    dest: HashMap<(ServiceKey, SocketAddr), usize>,
}

/// Read an ipvsadm file (`ipvsadm-save` output, `ipvsadm -R` input or a shell script) into
/// lvslab's services. `path_for_messages` names the file in warnings and errors.
pub fn import_ipvsadm(path_for_messages: &Path, text: &str) -> Result<Imported, ImportError> {
    let file = path_for_messages.to_path_buf();
    let fail = |line: usize, message: String| ImportError {
        file: file.clone(),
        line,
        message,
    };
    let run = shell::read(text).map_err(|e| fail(e.line, e.message))?;
    let mut warnings: Vec<ImportWarning> = run
        .warnings
        .iter()
        .map(|(line, text)| ImportWarning {
            file: file.clone(),
            line: *line,
            text: text.clone(),
        })
        .collect();
    let warn = |warnings: &mut Vec<ImportWarning>, line: usize, text: String| {
        warnings.push(ImportWarning {
            file: file.clone(),
            line,
            text,
        })
    };
    let mut ipvs = Ipvs::new(IpvsConfig::default());
    let mut lines = Lines::default();
    for found in &run.ipvsadm {
        let text = found.args.join(" ");
        let parsed = ipvsadm::parse_line(&format!("ipvsadm {text}"))
            .map_err(|e| fail(found.line, format!("`ipvsadm {text}`: {}", e.message)))?;
        for n in parsed.notes {
            warn(&mut warnings, found.line, n);
        }
        let cmd = match parsed.action {
            Action::NoOp(NoOp::StartDaemon | NoOp::StopDaemon) => {
                warn(
                    &mut warnings,
                    found.line,
                    format!("`ipvsadm {text}` not carried over: the connection sync daemon is no rule (a topology's `vrrp.sync` runs one for a director pair)"),
                );
                continue;
            }
            // Listing, saving, zeroing counters: no rule changes.
            Action::NoOp(_) => continue,
            Action::Table(c) => c,
        };
        match &cmd {
            IpvsCommand::AddService(c) | IpvsCommand::EditService(c) => {
                lines.service.insert(c.key, found.line);
            }
            IpvsCommand::AddDest(k, d) | IpvsCommand::EditDest(k, d) => {
                lines.dest.insert((*k, d.addr), found.line);
            }
            IpvsCommand::SetTimeouts(_) => warn(
                &mut warnings,
                found.line,
                "`--set` timeouts are not part of a topology's services: applied here, left out of what is written back".into(),
            ),
            _ => {}
        }
        ipvs.apply(Duration::ZERO, cmd)
            .map_err(|e| fail(found.line, format!("`ipvsadm {text}`: {e}")))?;
    }
    let views = ipvs.services();
    let mut services = Vec::new();
    for v in views {
        let key = v.config.key;
        let line = lines.service.get(&key).copied().unwrap_or(0);
        let (vip, vips, port, protocol, fwmark) = match key {
            ServiceKey::Addr {
                protocol,
                vip,
                port,
            } => (vip.0, Vec::new(), port, protocol, None),
            ServiceKey::FwMark { mark: m, family } => {
                // iptables marks IPv4 packets and feeds `-f M`; ip6tables marks IPv6 ones and
                // feeds `-f M -6` (the kernel looks a mark up per family).
                let v6 = family == Family::Ipv6;
                let rules: Vec<&shell::MarkRule> = run
                    .marks
                    .iter()
                    .filter(|r| r.mark == m && r.vip.is_ipv6() == v6)
                    .collect();
                let tool = if v6 { "ip6tables" } else { "iptables" };
                let vip_word = if v6 { "VIP6" } else { "VIP" };
                let Some(first) = rules.first() else {
                    return Err(fail(line, format!(
                        "firewall-mark service {m}{}: the file has no `{tool} -t mangle -A PREROUTING -d {vip_word} -p tcp --dport PORT -j MARK --set-mark {m}` rule, and a topology's fwmark service needs its VIPs and port from one; add the rule to the file",
                        if v6 { " -6" } else { "" }
                    )));
                };
                if let Some(r) = rules
                    .iter()
                    .find(|r| r.port != first.port || r.protocol != first.protocol)
                {
                    return Err(fail(r.line, format!(
                        "firewall-mark service {m}: its MARK rules name {} port {} and {} port {}; a topology's fwmark service has one protocol and port for all its VIPs",
                        first.protocol, first.port, r.protocol, r.port
                    )));
                }
                let mut vips: Vec<IpAddr> = Vec::new();
                for r in &rules[1..] {
                    if r.vip != first.vip && !vips.contains(&r.vip) {
                        vips.push(r.vip);
                    }
                }
                (first.vip, vips, first.port, first.protocol, Some(m))
            }
        };
        if let Some(p) = &v.config.persistence {
            let host_mask = Persistence::new(p.timeout, vip.is_ipv6()).netmask;
            if p.netmask != host_mask {
                return Err(fail(line, format!(
                    "-M {}: a topology's service has no persistence netmask (only `persistence` seconds); drop -M or keep this service out of lvslab",
                    p.netmask
                )));
            }
        }
        if v.config.flags.one_packet {
            return Err(fail(
                line,
                "-o (one-packet scheduling): a topology's service has no field for it; drop -o"
                    .into(),
            ));
        }
        let sf = v.config.flags.sched;
        if sf.fallback || sf.port || sf.flag3 {
            return Err(fail(
                line,
                "-b (scheduler flags): a topology's service has no field for them; drop -b".into(),
            ));
        }
        // The kernel's list is newest first; a topology lists servers in the order added.
        let dests: Vec<_> = v.dests.iter().rev().collect();
        let method = dests.first().map_or(ForwardMethod::Dr, |d| d.config.method);
        if let Some(d) = dests.iter().find(|d| d.config.method != method) {
            let dl = lines
                .dest
                .get(&(key, d.config.addr))
                .copied()
                .unwrap_or(line);
            return Err(fail(dl, format!(
                "real server {} is {} while the service's first real server is {}: a topology's service has one forwarding method for all its real servers",
                d.config.addr,
                d.config.method.word(),
                method.word()
            )));
        }
        if port == 0 {
            warn(
                &mut warnings,
                line,
                format!("service {key} has port 0 (all ports, persistent): a topology file wants a port 1-65535, so `lvslab up` refuses this service"),
            );
        }
        let real_servers = dests
            .iter()
            .map(|d| {
                let addr = d.config.addr;
                RealServerSpec {
                    // Named below, once the services are in their final order.
                    node: String::new(),
                    address: addr.ip(),
                    port: addr.port(),
                    weight: d.config.weight,
                    u_threshold: d.config.u_threshold,
                    l_threshold: d.config.l_threshold,
                }
            })
            .collect();
        services.push(ServiceSpec {
            director: DIRECTOR.to_string(),
            backup: None,
            vip,
            port,
            protocol,
            scheduler: v.config.scheduler,
            method,
            persistence: v
                .config
                .persistence
                .map(|p| u32::try_from(p.timeout.as_secs()).unwrap_or(u32::MAX)),
            fwmark,
            vips,
            real_servers,
            health: None,
            vrrp: None,
        });
    }
    msort(&mut services, &cmp_services);
    let mut nodes: HashMap<IpAddr, String> = HashMap::new();
    for r in services.iter_mut().flat_map(|s| s.real_servers.iter_mut()) {
        let n = nodes.len() + 1;
        r.node = nodes
            .entry(r.address)
            .or_insert_with(|| format!("rs{n}"))
            .clone();
    }
    warnings.sort_by_key(|w| w.line);
    Ok(Imported { services, warnings })
}

/// ipvsadm's sort of services (libipvs `ipvs_cmp_services`): fwmark, address family,
/// protocol, address, port, each compared as the C code does, by a subtraction taken as
/// an int, so addresses more than 2^31 apart compare the "wrong" way round (192.168.x
/// before 10.x) exactly as `ipvsadm -S` prints them.
fn cmp_services(a: &ServiceSpec, b: &ServiceSpec) -> i32 {
    let k = |s: &ServiceSpec| -> (u32, u32, u32, IpAddr, u16) {
        let fw = s.fwmark.unwrap_or(0);
        // A fwmark service has no address or port, TCP as protocol, and its family (-6).
        let (addr, port) = match (s.fwmark, s.vip) {
            (Some(_), IpAddr::V4(_)) => (IpAddr::from([0u8; 4]), 0),
            (Some(_), IpAddr::V6(_)) => (IpAddr::from([0u8; 16]), 0),
            (None, vip) => (vip, s.port),
        };
        let af = if addr.is_ipv6() { 10 } else { 2 };
        let proto = match (s.fwmark, s.protocol) {
            (Some(_), _) | (None, Protocol::Tcp) => 6,
            (None, Protocol::Udp) => 17,
        };
        (fw, af, proto, addr, port)
    };
    let (a, b) = (k(a), k(b));
    let diff = |x: u32, y: u32| x.wrapping_sub(y) as i32;
    let r = diff(a.0, b.0);
    if r != 0 {
        return r;
    }
    let r = diff(a.1, b.1);
    if r != 0 {
        return r;
    }
    let r = diff(a.2, b.2);
    if r != 0 {
        return r;
    }
    let r = cmp_addr(a.3, b.3);
    if r != 0 {
        return r;
    }
    i32::from(a.4) - i32::from(b.4)
}

/// libipvs's address comparison: big-endian 32-bit words subtracted as ints.
fn cmp_addr(a: IpAddr, b: IpAddr) -> i32 {
    let words = |x: IpAddr| -> Vec<u32> {
        match x {
            IpAddr::V4(v) => vec![u32::from(v)],
            IpAddr::V6(v) => v
                .octets()
                .chunks(4)
                .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        }
    };
    let (wa, wb) = (words(a), words(b));
    for (x, y) in wa.iter().zip(&wb) {
        let r = x.wrapping_sub(*y) as i32;
        if r != 0 {
            return r;
        }
    }
    0
}

/// libipvs `ipvs_cmp_dests`: address, then port.
fn cmp_dests(a: &RealServerSpec, b: &RealServerSpec) -> i32 {
    let r = cmp_addr(a.address, b.address);
    if r != 0 {
        return r;
    }
    i32::from(a.port) - i32::from(b.port)
}

/// glibc's qsort as Debian 12 has it (a top-down merge sort, msort_with_tmp), so that a
/// comparison that is not a total order (the int subtractions above) orders as ipvsadm's.
fn msort<T: Clone>(v: &mut [T], cmp: &dyn Fn(&T, &T) -> i32) {
    let n = v.len();
    if n <= 1 {
        return;
    }
    let n1 = n / 2;
    msort(&mut v[..n1], cmp);
    msort(&mut v[n1..], cmp);
    let (mut i, mut j) = (0, n1);
    let mut out = Vec::with_capacity(n);
    while i < n1 && j < n {
        if cmp(&v[i], &v[j]) <= 0 {
            out.push(v[i].clone());
            i += 1;
        } else {
            out.push(v[j].clone());
            j += 1;
        }
    }
    out.extend_from_slice(&v[i..n1]);
    out.extend_from_slice(&v[j..n]);
    v.clone_from_slice(&out);
}

fn addr_port(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(v) => format!("{v}:{port}"),
        IpAddr::V6(v) => format!("[{v}]:{port}"),
    }
}

/// The services as `ipvsadm-save -n` (ipvsadm 1.31) prints them: services sorted as
/// libipvs sorts them, each `-A` line followed by its `-a` lines sorted by address and
/// port, numeric addresses, `-p` only for a persistent service, `--tun-type ipip` after a
/// tunnelled real server. Like ipvsadm-save it leaves thresholds (`-x`/`-y`) out: use
/// [`to_ipvsadm_rules`] to keep them.
pub fn to_ipvsadm_save(services: &[ServiceSpec]) -> String {
    write_rules(services, false)
}

/// [`to_ipvsadm_save`] with `-x`/`-y` on the real servers that have thresholds, so
/// `ipvsadm -R` restores everything a topology's service holds.
pub fn to_ipvsadm_rules(services: &[ServiceSpec]) -> String {
    write_rules(services, true)
}

fn write_rules(services: &[ServiceSpec], thresholds: bool) -> String {
    let mut sorted: Vec<ServiceSpec> = services.to_vec();
    msort(&mut sorted, &cmp_services);
    let mut out = String::new();
    for s in &sorted {
        let svc = match s.fwmark {
            // ipvsadm-save writes an IPv6 firewall-mark service as `-f N -6`.
            Some(m) if s.vip.is_ipv6() => format!("-f {m} -6"),
            Some(m) => format!("-f {m}"),
            None => format!(
                "{} {}",
                match s.protocol {
                    Protocol::Tcp => "-t",
                    Protocol::Udp => "-u",
                },
                addr_port(s.vip, s.port)
            ),
        };
        let _ = write!(out, "-A {svc} -s {}", s.scheduler);
        if let Some(p) = s.persistence {
            let _ = write!(out, " -p {p}");
        }
        out.push('\n');
        let mut rs = s.real_servers.clone();
        msort(&mut rs, &cmp_dests);
        for r in &rs {
            let fwd = match s.method {
                ForwardMethod::Nat => "-m",
                ForwardMethod::Dr => "-g",
                ForwardMethod::Tun => "-i",
            };
            let _ = write!(
                out,
                "-a {svc} -r {} {fwd} -w {}",
                addr_port(r.address, r.port),
                r.weight
            );
            if s.method == ForwardMethod::Tun {
                out.push_str(" --tun-type ipip");
            }
            if thresholds {
                if r.u_threshold != 0 {
                    let _ = write!(out, " -x {}", r.u_threshold);
                }
                if r.l_threshold != 0 {
                    let _ = write!(out, " -y {}", r.l_threshold);
                }
            }
            out.push('\n');
        }
    }
    out
}

fn quote(s: &str) -> String {
    // TOML basic strings: addresses and node names need no escapes, but be safe.
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// The `[[services]]` part of a topology file (docs/topology.md), with the import's
/// warnings as comments; [`lvslab_netns::topology::Topology::parse`] reads it back once the
/// nodes it names (`director`, `rs1`, ...) are added.
pub fn to_toml(imported: &Imported) -> String {
    let mut out = String::new();
    for w in &imported.warnings {
        let _ = writeln!(out, "# {w}");
    }
    for s in &imported.services {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str("[[services]]\n");
        let _ = writeln!(out, "director = {}", quote(&s.director));
        if let Some(b) = &s.backup {
            let _ = writeln!(out, "backup = {}", quote(b));
        }
        let _ = writeln!(out, "vip = {}", quote(&s.vip.to_string()));
        let _ = writeln!(out, "port = {}", s.port);
        let _ = writeln!(
            out,
            "protocol = {}",
            quote(match s.protocol {
                Protocol::Tcp => "tcp",
                Protocol::Udp => "udp",
            })
        );
        let _ = writeln!(out, "scheduler = {}", quote(s.scheduler.name()));
        let _ = writeln!(out, "method = {}", quote(s.method.word()));
        if let Some(p) = s.persistence {
            let _ = writeln!(out, "persistence = {p}");
        }
        if let Some(m) = s.fwmark {
            let _ = writeln!(out, "fwmark = {m}");
        }
        if !s.vips.is_empty() {
            let v: Vec<String> = s.vips.iter().map(|v| quote(&v.to_string())).collect();
            let _ = writeln!(out, "vips = [{}]", v.join(", "));
        }
        out.push_str("real_servers = [\n");
        for r in &s.real_servers {
            let _ = write!(
                out,
                "  {{ node = {}, address = {}, port = {}, weight = {}",
                quote(&r.node),
                quote(&r.address.to_string()),
                r.port,
                r.weight
            );
            if r.u_threshold != 0 {
                let _ = write!(out, ", u_threshold = {}", r.u_threshold);
            }
            if r.l_threshold != 0 {
                let _ = write!(out, ", l_threshold = {}", r.l_threshold);
            }
            out.push_str(" },\n");
        }
        out.push_str("]\n");
    }
    out
}

/// The import as JSON: `{"services": [...], "warnings": [...]}`, services in the topology
/// model's field names.
pub fn to_json(imported: &Imported) -> String {
    serde_json::to_string_pretty(imported)
        .unwrap_or_else(|e| format!("{{\"error\": {}}}", quote(&e.to_string())))
}
