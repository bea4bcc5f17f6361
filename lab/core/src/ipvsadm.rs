//! Parse one ipvsadm command line into an [`IpvsCommand`], with ipvsadm's defaults:
//! scheduler wlc, method -g (direct routing), weight 1, real-server port = service port,
//! bare `-p` = 360 s. Like ipvsadm, `-E` and `-e` send every field, so an omitted option
//! resets to its default.
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::types::{
    DestConfig, ForwardMethod, IpvsCommand, Persistence, Protocol, SchedFlags, Scheduler,
    ServiceConfig, ServiceFlags, ServiceKey, Timeouts, Vip,
};

/// A line ipvsadm would refuse; the message says what is wrong and how to fix it.
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    AddService,
    EditService,
    DelService,
    Clear,
    AddDest,
    EditDest,
    DelDest,
    Set,
}

/// Parse `[ipvsadm] COMMAND OPTIONS...`.
pub fn parse(line: &str) -> Result<IpvsCommand, IpvsadmError> {
    let mut toks: Vec<&str> = line.split_whitespace().collect();
    if toks.first() == Some(&"ipvsadm") {
        toks.remove(0);
    }
    if toks.is_empty() {
        return err("empty ipvsadm line: give a command such as -A, -a, -e, -d, -D, -C or --set");
    }
    let mut cmd: Option<Cmd> = None;
    let mut key: Option<ServiceKey> = None;
    let mut scheduler: Option<Scheduler> = None;
    let mut persistent: Option<Duration> = None;
    let mut netmask: Option<IpAddr> = None;
    let mut flags = ServiceFlags::default();
    let mut sched_flag_names: Vec<String> = Vec::new();
    let mut rs: Option<(IpAddr, Option<u16>)> = None;
    let mut method: Option<ForwardMethod> = None;
    let mut weight: Option<u32> = None;
    let mut uth: Option<u32> = None;
    let mut lth: Option<u32> = None;
    let mut set_vals: Option<Timeouts> = None;

    let mut i = 0;
    let value = |i: &mut usize, opt: &str| -> Result<String, IpvsadmError> {
        *i += 1;
        match toks.get(*i) {
            Some(v) => Ok((*v).to_string()),
            None => err(format!("option {opt} needs a value")),
        }
    };
    while i < toks.len() {
        let t = toks[i];
        // --opt=value is accepted like getopt_long does.
        let (opt, inline) = match t.split_once('=') {
            Some((o, v)) if o.starts_with("--") => (o, Some(v.to_string())),
            _ => (t, None),
        };
        let take = |i: &mut usize, opt: &str| match &inline {
            Some(v) => Ok(v.clone()),
            None => value(i, opt),
        };
        let mut set_cmd = |c: Cmd| -> Result<(), IpvsadmError> {
            if let Some(old) = cmd {
                if old != c {
                    return err(format!(
                        "two commands on one line ({t} after another): give one of -A -E -D -C -a -e -d --set"
                    ));
                }
            }
            cmd = Some(c);
            Ok(())
        };
        match opt {
            "-A" | "--add-service" => set_cmd(Cmd::AddService)?,
            "-E" | "--edit-service" => set_cmd(Cmd::EditService)?,
            "-D" | "--delete-service" => set_cmd(Cmd::DelService)?,
            "-C" | "--clear" => set_cmd(Cmd::Clear)?,
            "-a" | "--add-server" => set_cmd(Cmd::AddDest)?,
            "-e" | "--edit-server" => set_cmd(Cmd::EditDest)?,
            "-d" | "--delete-server" => set_cmd(Cmd::DelDest)?,
            "--set" => {
                set_cmd(Cmd::Set)?;
                let mut vals = [Duration::ZERO; 3];
                for (n, v) in vals.iter_mut().enumerate() {
                    let s = value(&mut i, "--set")?;
                    *v = Duration::from_secs(s.parse::<u64>().map_err(|_| IpvsadmError {
                        message: format!(
                            "--set takes three whole seconds (tcp tcpfin udp), value {} is `{s}`",
                            n + 1
                        ),
                    })?);
                }
                set_vals = Some(Timeouts {
                    tcp: vals[0],
                    tcp_fin: vals[1],
                    udp: vals[2],
                });
            }
            "-t" | "--tcp-service" | "-u" | "--udp-service" => {
                let protocol = if opt == "-t" || opt == "--tcp-service" {
                    Protocol::Tcp
                } else {
                    Protocol::Udp
                };
                let v = take(&mut i, opt)?;
                let (ip, port) = parse_addr(&v, opt)?;
                let Some(port) = port else {
                    return err(format!(
                        "{opt} {v}: the service needs a port, write {v}:PORT (0 for all ports with -p)"
                    ));
                };
                key = Some(ServiceKey::Addr {
                    protocol,
                    vip: Vip(ip),
                    port,
                });
            }
            "-f" | "--fwmark-service" => {
                let v = take(&mut i, opt)?;
                let m = parse_num(&v, opt)?;
                if m == 0 {
                    return err("-f 0: a firewall mark must be a positive integer");
                }
                key = Some(ServiceKey::FwMark(m));
            }
            "-s" | "--scheduler" => {
                let v = take(&mut i, opt)?;
                scheduler = Some(v.parse().map_err(|e: crate::types::UnknownScheduler| {
                    IpvsadmError {
                        message: e.to_string(),
                    }
                })?);
            }
            "-p" | "--persistent" => {
                // The timeout is optional: a following token that is a number belongs to -p.
                let next = inline.clone().or_else(|| {
                    toks.get(i + 1)
                        .filter(|s| s.chars().all(|c| c.is_ascii_digit()))
                        .map(|s| s.to_string())
                });
                match next {
                    Some(v) => {
                        if inline.is_none() {
                            i += 1;
                        }
                        let secs = parse_num(&v, opt)?;
                        if secs == 0 {
                            return err("-p 0: a persistence timeout must be at least 1 second");
                        }
                        persistent = Some(Duration::from_secs(u64::from(secs)));
                    }
                    None => persistent = Some(Persistence::DEFAULT_TIMEOUT),
                }
            }
            "-M" | "--netmask" => {
                let v = take(&mut i, opt)?;
                netmask = Some(parse_netmask(&v)?);
            }
            "-o" | "--ops" => flags.one_packet = true,
            "-b" | "--sched-flags" => {
                let v = take(&mut i, opt)?;
                sched_flag_names.extend(v.split(',').map(str::to_string));
            }
            "-r" | "--real-server" => {
                let v = take(&mut i, opt)?;
                rs = Some(parse_addr(&v, opt)?);
            }
            "-g" | "--gatewaying" => method = Some(ForwardMethod::Dr),
            "-i" | "--ipip" => method = Some(ForwardMethod::Tun),
            "-m" | "--masquerading" => method = Some(ForwardMethod::Nat),
            "-w" | "--weight" => {
                let v = take(&mut i, opt)?;
                weight = Some(parse_ranged(&v, opt, "weight", MAX_WEIGHT)?);
            }
            "-x" | "--u-threshold" => {
                let v = take(&mut i, opt)?;
                uth = Some(parse_ranged(&v, opt, "upper threshold", MAX_THRESHOLD)?);
            }
            "-y" | "--l-threshold" => {
                let v = take(&mut i, opt)?;
                lth = Some(parse_ranged(&v, opt, "lower threshold", MAX_THRESHOLD)?);
            }
            other => {
                return err(format!(
                    "unknown option `{other}`: lvslab understands -A -E -D -C -a -e -d --set -t -u -f -s -b -p -M -o -r -g -i -m -w -x -y and their long forms"
                ))
            }
        }
        i += 1;
    }

    let Some(cmd) = cmd else {
        return err(
            "no command: start with -A (add service), -E, -D, -C, -a (add server), -e, -d or --set",
        );
    };
    let need_key = |k: Option<ServiceKey>| {
        k.ok_or_else(|| IpvsadmError {
            message: "no service given: add -t VIP:PORT, -u VIP:PORT or -f MARK".into(),
        })
    };
    match cmd {
        Cmd::Clear => Ok(IpvsCommand::Clear),
        Cmd::Set => set_vals
            .map(IpvsCommand::SetTimeouts)
            .ok_or_else(|| IpvsadmError {
                message: "--set needs three values: --set TCP TCPFIN UDP".into(),
            }),
        Cmd::DelService => Ok(IpvsCommand::DelService(need_key(key)?)),
        Cmd::AddService | Cmd::EditService => {
            let key = need_key(key)?;
            if rs.is_some() || weight.is_some() || method.is_some() {
                return err("-r/-w/-g/-i/-m belong to real-server commands (-a/-e), not to -A/-E");
            }
            let scheduler = scheduler.unwrap_or(Scheduler::Wlc);
            flags.sched = sched_flags(&sched_flag_names, scheduler)?;
            let v6 = match key {
                ServiceKey::Addr { vip, .. } => vip.0.is_ipv6(),
                ServiceKey::FwMark(_) => false,
            };
            if netmask.is_some() && persistent.is_none() {
                return err("-M only makes sense with persistence: add -p");
            }
            let persistence = persistent.map(|t| {
                let mut p = Persistence::new(t, v6);
                if let Some(m) = netmask {
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
            Ok(if cmd == Cmd::AddService {
                IpvsCommand::AddService(cfg)
            } else {
                IpvsCommand::EditService(cfg)
            })
        }
        Cmd::AddDest | Cmd::EditDest | Cmd::DelDest => {
            let key = need_key(key)?;
            if scheduler.is_some() || persistent.is_some() {
                return err("-s/-p belong to service commands (-A/-E), not to -a/-e/-d");
            }
            let Some((ip, port)) = rs else {
                return err("no real server given: add -r ADDRESS[:PORT]");
            };
            let svc_port = match key {
                ServiceKey::Addr { port, .. } => port,
                ServiceKey::FwMark(_) => 0,
            };
            let addr = SocketAddr::new(ip, port.unwrap_or(svc_port));
            if cmd == Cmd::DelDest {
                return Ok(IpvsCommand::DelDest(key, addr));
            }
            let method = method.unwrap_or(ForwardMethod::Dr);
            if method != ForwardMethod::Nat && port.is_some_and(|p| p != svc_port) {
                return err(format!(
                    "real server port {} differs from the service port {svc_port}: only NAT (-m) can change ports; drop the port or use -m",
                    port.unwrap_or(0)
                ));
            }
            let dc = DestConfig {
                addr,
                method,
                weight: weight.unwrap_or(1),
                u_threshold: uth.unwrap_or(0),
                l_threshold: lth.unwrap_or(0),
            };
            if dc.l_threshold > dc.u_threshold && dc.u_threshold != 0 {
                return err(format!(
                    "-y {} is above -x {}: the lower threshold must not exceed the upper one",
                    dc.l_threshold, dc.u_threshold
                ));
            }
            Ok(if cmd == Cmd::AddDest {
                IpvsCommand::AddDest(key, dc)
            } else {
                IpvsCommand::EditDest(key, dc)
            })
        }
    }
}

fn parse_num(v: &str, opt: &str) -> Result<u32, IpvsadmError> {
    v.parse::<u32>().map_err(|_| IpvsadmError {
        message: format!("{opt} `{v}`: expected a whole number"),
    })
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

/// A port after `ADDRESS:`; `None` when it is not a number at all.
fn parse_port(p: &str, v: &str, opt: &str) -> Result<Option<u16>, IpvsadmError> {
    if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    match p.parse::<u16>() {
        Ok(port) => Ok(Some(port)),
        Err(_) => err(format!(
            "{opt} `{v}`: port {p} is out of range: use 0-65535"
        )),
    }
}

/// `1.2.3.4`, `1.2.3.4:80`, `[::1]`, `[::1]:80`.
fn parse_addr(v: &str, opt: &str) -> Result<(IpAddr, Option<u16>), IpvsadmError> {
    let bad = || {
        IpvsadmError {
        message: format!(
            "{opt} `{v}`: expected ADDRESS[:PORT] such as 192.168.1.250:80 or [2001:db8::1]:80 (ports are numbers)"
        ),
    }
    };
    if let Some(rest) = v.strip_prefix('[') {
        let (ip, tail) = rest.split_once(']').ok_or_else(bad)?;
        let ip: IpAddr = ip.parse().map_err(|_| bad())?;
        let port = match tail.strip_prefix(':') {
            Some(p) => Some(parse_port(p, v, opt)?.ok_or_else(bad)?),
            None if tail.is_empty() => None,
            None => return Err(bad()),
        };
        return Ok((ip, port));
    }
    if let Ok(ip) = v.parse::<IpAddr>() {
        return Ok((ip, None));
    }
    let (ip, port) = v.rsplit_once(':').ok_or_else(bad)?;
    let ip = ip.parse().map_err(|_| bad())?;
    Ok((ip, Some(parse_port(port, v, opt)?.ok_or_else(bad)?)))
}

/// `-M 255.255.255.0`, or a prefix length (`-M 24`, `-M 64` for IPv6 services).
fn parse_netmask(v: &str) -> Result<IpAddr, IpvsadmError> {
    if let Ok(ip) = v.parse::<IpAddr>() {
        return Ok(ip);
    }
    if let Ok(bits) = v.parse::<u32>() {
        if bits <= 32 {
            let m = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            return Ok(IpAddr::V4(m.into()));
        }
        if bits <= 128 {
            return Ok(IpAddr::V6((u128::MAX << (128 - bits)).into()));
        }
    }
    err(format!(
        "-M `{v}`: expected a netmask such as 255.255.255.0 or a prefix length such as 24"
    ))
}

fn sched_flags(names: &[String], s: Scheduler) -> Result<SchedFlags, IpvsadmError> {
    let mut f = SchedFlags::default();
    for n in names {
        let needs = |want: Scheduler| -> Result<(), IpvsadmError> {
            if s != want {
                return err(format!(
                    "-b {n} only applies to the {want} scheduler, this service uses {s}"
                ));
            }
            Ok(())
        };
        match n.as_str() {
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
                    "unknown scheduler flag `{other}`: use sh-fallback, sh-port, mh-fallback, mh-port or flag-1..flag-3"
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
        assert!(e.message.contains(":PORT"), "{e}");
        assert!(parse("-Z").is_err());
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
        assert_eq!(cfg.key, ServiceKey::FwMark(7));
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
        // The largest port is fine; a word is still "not a number".
        assert!(parse("-A -t 1.2.3.4:65535 -s rr").is_ok());
        assert!(message("-A -t 1.2.3.4:http -s rr").contains("ports are numbers"));
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
}
