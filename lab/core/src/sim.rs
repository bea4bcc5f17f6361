//! Run `lvslab simulate` scripts: ipvsadm lines and connection steps, one a line.
//!
//! ```text
//! ipvsadm -A -t 10.0.1.100:80 -s wrr          # any ipvsadm command line
//! conn 10.0.1.2:20001 > 10.0.1.100:80         # open, one request, client closes (FIN)
//! open web1 10.0.1.2:20002 > 10.0.1.100:80    # open and hold (active)
//! close web1                                  # close a held conn with FIN
//! rst 10.0.1.2:20003 > 10.0.1.100:80 udp      # open, then the client resets it
//! sleep 120                                   # let time pass (timers run)
//! load 10.0.2.11:80 active=1 inactive=2       # set a server's counts (see below)
//! ```
//! Flow options after the addresses: `udp`, `mark N`.
//!
//! `load [-t|-u VIP:PORT | -f MARK] RIP:PORT [active=N] [inactive=M]` brings a real server's
//! counts up to N active and M inactive (an omitted count stays as it is; the service may be
//! omitted when only one has that server). It adds placeholder conn entries bound to the
//! server without asking the scheduler ([`Ipvs::place_conn`]): active ones ESTABLISHED,
//! inactive ones in TIME_WAIT, each expiring on its own timer as a held or closed conn
//! would. Setting the counters instead would drift from the kernel's view as soon as a
//! timer or a close moved them, and opening the conns through the scheduler would move its
//! state (rr cursor, wrr weight, lblc cache). `load` only adds: a count below the current
//! one is an error. Placeholders use clients in 198.18.0.0/15 (2001:2::/48 for IPv6), so
//! script flows should not. The kernel backend refuses `load` (it cannot add entries
//! without real connections); there, hold conns with `open` while the other servers are
//! quiesced (weight 0), as lab/core/tests/kernel-examples/sed-classic-123-held.sim does.
//!
//! A `# kernel: ADDR` comment on a step records the server the kernel picked (`refused` when
//! it refused; free text may follow the address), and the report says whether the core
//! agrees.
//!
//! Every step is driven through [`Ipvs::packet_in`] / [`Ipvs::packet_out`] with real TCP flag
//! sequences, so a script exercises the same state machine as traffic on the wire.
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

use crate::explain::PickExplain;
use crate::ipvs::{InVerdict, Ipvs, IpvsConfig};
use crate::types::{FlowPacket, ForwardMethod, IpvsCommand, Protocol, ServiceKey, TcpFlags};

/// A script line that cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct SimError {
    /// 1-based line number in the script.
    pub line: usize,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// Which connection step produced a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Event {
    /// `conn`.
    Conn,
    /// `open`.
    Open,
    /// `rst`.
    Rst,
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Event::Conn => "conn",
            Event::Open => "open",
            Event::Rst => "rst",
        })
    }
}

/// The outcome of one connection step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepReport {
    /// 1-based script line.
    pub line: usize,
    /// Which step.
    pub event: Event,
    /// Client address.
    pub client: SocketAddr,
    /// Virtual address.
    pub vip: SocketAddr,
    /// The real server picked, None when refused.
    pub server: Option<SocketAddr>,
    /// What the `# kernel:` comment says the kernel picked (None = no comment, Some(None) = refused).
    pub kernel: Option<Option<SocketAddr>>,
    /// Why, when explaining.
    pub explain: Option<PickExplain>,
}

impl StepReport {
    /// Whether the pick agrees with a `# kernel:` comment (None when there is none).
    pub fn matches_kernel(&self) -> Option<bool> {
        self.kernel.map(|k| k == self.server)
    }
}

impl StepReport {
    /// The report as `lvslab simulate` prints it: the step's line, then with `explain` the
    /// explanation indented under it.
    pub fn text(&self, explain: bool) -> String {
        let mut out = format!("{self}\n");
        if let Some(e) = self.explain.as_ref().filter(|_| explain) {
            for l in e.to_string().lines() {
                out.push_str("    ");
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }
}

impl fmt::Display for StepReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {:>3}  {:<4} {} > {}  ->  {}",
            self.line,
            self.event,
            self.client,
            self.vip,
            self.server
                .map_or("refused (no server available)".to_string(), |s| s
                    .to_string())
        )?;
        if let Some(k) = self.kernel {
            let ks = k.map_or("refused".to_string(), |s| s.to_string());
            if k == self.server {
                write!(f, "   (kernel: {ks}, match)")?;
            } else {
                write!(f, "   (kernel: {ks}, MISMATCH)")?;
            }
        }
        Ok(())
    }
}

/// One flow a step drives: protocol, endpoints and the packets' fwmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    /// TCP unless the step says `udp`.
    pub protocol: Protocol,
    /// Client address and port.
    pub client: SocketAddr,
    /// Virtual address and port (for a fwmark service, the packets' destination).
    pub vip: SocketAddr,
    /// The mark the packets carry (`mark N`), 0 for none.
    pub fwmark: u32,
}

/// What one script line asks for, parsed but not yet run.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// An ipvsadm command line.
    Ipvsadm(IpvsCommand),
    /// `sleep SECONDS`.
    Sleep(Duration),
    /// `conn` or `rst`: a whole connection, closed by the client with FIN or RST.
    Conn {
        /// [`Event::Conn`] or [`Event::Rst`].
        event: Event,
        /// The connection.
        flow: Flow,
    },
    /// `open LABEL flow`: a connection held open.
    Open {
        /// The name `close` refers to.
        label: String,
        /// The connection.
        flow: Flow,
    },
    /// `close LABEL`.
    Close {
        /// The label given to `open`.
        label: String,
    },
    /// `load [SERVICE] RIP:PORT [active=N] [inactive=M]`: placeholder conns up to the counts.
    Load {
        /// The service, when the line names one.
        service: Option<ServiceKey>,
        /// The real server.
        server: SocketAddr,
        /// The active count wanted (None = as it is).
        active: Option<u32>,
        /// The inactive count wanted (None = as it is).
        inactive: Option<u32>,
    },
}

/// A parsed script line: its number, what it does and its `# kernel:` comment.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptLine {
    /// 1-based script line.
    pub line: usize,
    /// The step.
    pub step: Step,
    /// What the `# kernel:` comment says (None = no comment, Some(None) = refused).
    pub kernel: Option<Option<SocketAddr>>,
}

/// Parse one script line (numbered `line` for errors); None for blank lines and comments.
pub fn parse_line(line: usize, raw: &str) -> Result<Option<ScriptLine>, SimError> {
    let fail = |message: String| SimError { line, message };
    let (body, comment) = match raw.split_once('#') {
        Some((b, c)) => (b.trim(), Some(c.trim())),
        None => (raw.trim(), None),
    };
    if body.is_empty() {
        return Ok(None);
    }
    let kernel = match comment.and_then(|c| c.strip_prefix("kernel:")) {
        Some(k) => {
            // The pick is the first word; the rest of the comment is free text (why).
            let k = k
                .split_whitespace()
                .next()
                .unwrap_or("")
                .trim_end_matches([',', ';']);
            Some(if k == "refused" || k == "none" {
                None
            } else {
                Some(k.parse::<SocketAddr>().map_err(|_| {
                    fail(format!(
                        "`# kernel: {k}`: expected the kernel's pick as ADDRESS:PORT or `refused`"
                    ))
                })?)
            })
        }
        None => None,
    };
    let words: Vec<&str> = body.split_whitespace().collect();
    let step = match words[0] {
        // Any option word starts an ipvsadm line (`-At VIP:80`, `-Ln`), as ipvsadm -R reads it.
        w if w == "ipvsadm" || w.starts_with('-') => {
            match crate::ipvsadm::parse_line(body)
                .map_err(|e| fail(e.message))?
                .action
            {
                crate::ipvsadm::Action::Table(c) => Step::Ipvsadm(c),
                // -L and the like change no rule: the runner skips them.
                crate::ipvsadm::Action::NoOp(_) => return Ok(None),
            }
        }
        "sleep" => {
            let usage = || fail("sleep needs a number of seconds, e.g. `sleep 120`".into());
            let secs: f64 = words
                .get(1)
                .and_then(|s| s.parse().ok())
                .filter(|s: &f64| s.is_finite() && *s >= 0.0)
                .ok_or_else(usage)?;
            Step::Sleep(Duration::try_from_secs_f64(secs).map_err(|_| usage())?)
        }
        "conn" | "rst" => Step::Conn {
            event: if words[0] == "conn" {
                Event::Conn
            } else {
                Event::Rst
            },
            flow: parse_flow(&words[1..]).map_err(fail)?,
        },
        "open" => {
            let label = words.get(1).ok_or_else(|| {
                fail("open needs a label: `open NAME CIP:PORT > VIP:PORT`".into())
            })?;
            Step::Open {
                label: label.to_string(),
                flow: parse_flow(&words[2..]).map_err(fail)?,
            }
        }
        "close" => Step::Close {
            label: words
                .get(1)
                .ok_or_else(|| fail("close needs the label given to open".into()))?
                .to_string(),
        },
        "load" => parse_load(&words[1..]).map_err(fail)?,
        other => {
            return Err(fail(format!(
                "unknown step `{other}`: use ipvsadm, conn, open, close, rst, load or sleep"
            )))
        }
    };
    Ok(Some(ScriptLine { line, step, kernel }))
}

/// Parse a whole script; the first line that cannot be read is the error.
pub fn parse_script(script: &str) -> Result<Vec<ScriptLine>, SimError> {
    let mut out = Vec::new();
    for (i, raw) in script.lines().enumerate() {
        out.extend(parse_line(i + 1, raw)?);
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy)]
struct Held {
    flow: Flow,
    /// Server address and method, once forwarded.
    dest: Option<(SocketAddr, ForwardMethod)>,
}

/// A running simulation: a balancer plus a clock and the held conns.
#[derive(Debug)]
pub struct Sim {
    /// The balancer under test.
    pub ipvs: Ipvs,
    /// Simulated time.
    pub now: Duration,
    held: HashMap<String, Held>,
    explain: bool,
    /// How many `load` placeholders exist (each gets its own client address).
    placeholders: u32,
}

const PKT_LEN: u32 = 60;

impl Sim {
    /// A simulation with a fresh balancer.
    pub fn new(cfg: IpvsConfig) -> Self {
        Sim {
            explain: cfg.explain,
            ipvs: Ipvs::new(cfg),
            now: Duration::ZERO,
            held: HashMap::new(),
            placeholders: 0,
        }
    }

    /// Run a whole script, returning one report per connection step.
    pub fn run_script(&mut self, script: &str) -> Result<Vec<StepReport>, SimError> {
        let mut out = Vec::new();
        for (i, raw) in script.lines().enumerate() {
            if let Some(r) = self.step(i + 1, raw)? {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Run one script line (numbered `line` for errors).
    pub fn step(&mut self, line: usize, raw: &str) -> Result<Option<StepReport>, SimError> {
        match parse_line(line, raw)? {
            Some(l) => self.exec(&l),
            None => Ok(None),
        }
    }

    /// Run one parsed line; a connection step returns its report.
    pub fn exec(&mut self, l: &ScriptLine) -> Result<Option<StepReport>, SimError> {
        let line = l.line;
        let kernel = l.kernel;
        let fail = |message: String| SimError { line, message };
        match &l.step {
            Step::Ipvsadm(cmd) => {
                self.ipvs
                    .apply(self.now, cmd.clone())
                    .map_err(|e| fail(e.to_string()))?;
                Ok(None)
            }
            Step::Sleep(d) => {
                self.now += *d;
                self.ipvs.expire(self.now);
                Ok(None)
            }
            Step::Conn { event, flow } => {
                let (event, flow) = (*event, *flow);
                let (dest, explain) = self.open_flow(flow);
                if let Some(d) = dest {
                    if event == Event::Conn {
                        self.request_and_close(flow, d);
                    } else {
                        self.send_in(flow, Some(TcpFlags::RST));
                    }
                }
                Ok(Some(self.report(line, event, flow, dest, kernel, explain)))
            }
            Step::Open { label, flow } => {
                if self.held.contains_key(label) {
                    return Err(fail(format!(
                        "label `{label}` is already open: close it first or pick another name"
                    )));
                }
                let flow = *flow;
                let (dest, explain) = self.open_flow(flow);
                self.held.insert(label.clone(), Held { flow, dest });
                Ok(Some(self.report(
                    line,
                    Event::Open,
                    flow,
                    dest,
                    kernel,
                    explain,
                )))
            }
            Step::Close { label } => {
                let held = self.held.remove(label).ok_or_else(|| {
                    fail(format!(
                        "no open conn labelled `{label}`: open it first with `open {label} ...`"
                    ))
                })?;
                if let Some(d) = held.dest {
                    self.close_flow(held.flow, d);
                }
                Ok(None)
            }
            Step::Load {
                service,
                server,
                active,
                inactive,
            } => {
                self.load(*service, *server, *active, *inactive)
                    .map_err(fail)?;
                Ok(None)
            }
        }
    }

    /// `load`: placeholder entries until the server has the counts asked for.
    fn load(
        &mut self,
        service: Option<ServiceKey>,
        server: SocketAddr,
        active: Option<u32>,
        inactive: Option<u32>,
    ) -> Result<(), String> {
        let views = self.ipvs.services();
        let mut with = views.iter().filter(|v| {
            service.is_none_or(|k| v.config.key == k)
                && v.dests.iter().any(|d| d.config.addr == server)
        });
        let (Some(svc), None) = (with.next(), with.next()) else {
            return Err(match service {
                Some(k) => format!("no real server {server} in service {k}: add it with -a first"),
                None if views
                    .iter()
                    .any(|v| v.dests.iter().any(|d| d.config.addr == server)) =>
                {
                    format!("{server} is in more than one service: name one, e.g. `load -t VIP:PORT {server} active=N`")
                }
                None => format!("no service has real server {server}: add it with -a first"),
            });
        };
        let key = svc.config.key;
        let Some(now) = svc.dests.iter().find(|d| d.config.addr == server) else {
            return Err(format!("no real server {server} in service {key}"));
        };
        let want_active = active.unwrap_or(now.active);
        let want_inactive = inactive.unwrap_or(now.inactive);
        for (what, want, has) in [
            ("active", want_active, now.active),
            ("inactive", want_inactive, now.inactive),
        ] {
            if want < has {
                return Err(format!(
                    "{server} already has {has} {what} conns: load only adds placeholder conns \
                     (it cannot end real ones); ask for {what}={has} or more, or close conns first"
                ));
            }
        }
        let udp = matches!(
            key,
            ServiceKey::Addr {
                protocol: Protocol::Udp,
                ..
            }
        );
        if udp && want_active > now.active {
            return Err(format!(
                "service {key} is UDP, and IPVS never counts a UDP entry as active: use inactive=N"
            ));
        }
        let (add_active, add_inactive) = (want_active - now.active, want_inactive - now.inactive);
        for established in std::iter::repeat_n(true, add_active as usize)
            .chain(std::iter::repeat_n(false, add_inactive as usize))
        {
            let client = placeholder_client(self.placeholders, server.is_ipv6());
            self.placeholders += 1;
            self.ipvs
                .place_conn(self.now, key, server, client, established)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn report(
        &self,
        line: usize,
        event: Event,
        flow: Flow,
        dest: Option<(SocketAddr, ForwardMethod)>,
        kernel: Option<Option<SocketAddr>>,
        explain: Option<PickExplain>,
    ) -> StepReport {
        StepReport {
            line,
            event,
            client: flow.client,
            vip: flow.vip,
            server: dest.map(|d| d.0),
            kernel,
            explain,
        }
    }

    fn packet(flow: Flow, src: SocketAddr, dst: SocketAddr, tcp: Option<TcpFlags>) -> FlowPacket {
        FlowPacket {
            protocol: flow.protocol,
            src,
            dst,
            tcp: if flow.protocol == Protocol::Tcp {
                tcp
            } else {
                None
            },
            fwmark: flow.fwmark,
            len: PKT_LEN,
        }
    }

    fn send_in(&mut self, flow: Flow, tcp: Option<TcpFlags>) -> InVerdict {
        let p = Self::packet(flow, flow.client, flow.vip, tcp);
        self.ipvs.packet_in(self.now, &p)
    }

    fn send_out(&mut self, flow: Flow, dest: (SocketAddr, ForwardMethod), tcp: Option<TcpFlags>) {
        // Only NAT replies come back through the director.
        if dest.1 == ForwardMethod::Nat {
            let p = Self::packet(flow, dest.0, flow.client, tcp);
            self.ipvs.packet_out(self.now, &p);
        }
    }

    /// Handshake plus one request and its reply; returns the server or None when refused.
    fn open_flow(
        &mut self,
        flow: Flow,
    ) -> (Option<(SocketAddr, ForwardMethod)>, Option<PickExplain>) {
        self.ipvs.set_explain(self.explain);
        let v = self.send_in(flow, Some(TcpFlags::SYN));
        self.ipvs.set_explain(false);
        let InVerdict::Forward(f) = v else {
            return (None, None);
        };
        let dest = (f.dest, f.method);
        if flow.protocol == Protocol::Tcp {
            self.send_out(flow, dest, Some(TcpFlags::SYN_ACK));
            self.send_in(flow, Some(TcpFlags::ACK));
            self.send_in(flow, Some(TcpFlags::ACK));
        }
        self.send_out(flow, dest, Some(TcpFlags::ACK));
        (Some(dest), f.pick)
    }

    fn request_and_close(&mut self, flow: Flow, dest: (SocketAddr, ForwardMethod)) {
        self.close_flow(flow, dest);
    }

    /// The client closes first: FIN in, ACK and FIN back (NAT only), last ACK in.
    fn close_flow(&mut self, flow: Flow, dest: (SocketAddr, ForwardMethod)) {
        if flow.protocol != Protocol::Tcp {
            return;
        }
        self.send_in(flow, Some(TcpFlags::FIN_ACK));
        self.send_out(flow, dest, Some(TcpFlags::ACK));
        self.send_out(flow, dest, Some(TcpFlags::FIN_ACK));
        self.send_in(flow, Some(TcpFlags::ACK));
    }
}

/// The client address of the `n`th `load` placeholder: benchmarking addresses (RFC 2544 /
/// RFC 5180), which no script needs for its own clients.
fn placeholder_client(n: u32, v6: bool) -> SocketAddr {
    let port = 1024 + (n % 64_000) as u16;
    let host = n / 64_000;
    if v6 {
        let ip =
            std::net::Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, (host >> 16) as u16, host as u16 + 1);
        SocketAddr::new(ip.into(), port)
    } else {
        let ip = std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(198, 18, 0, 1)) + host);
        SocketAddr::new(ip.into(), port)
    }
}

/// `load [-t|-u VIP:PORT | -f MARK] RIP:PORT [active=N] [inactive=M]`.
fn parse_load(words: &[&str]) -> Result<Step, String> {
    let usage = "expected `load [-t|-u VIP:PORT | -f MARK] RIP:PORT [active=N] [inactive=M]`";
    let (service, server, rest) = match words {
        [opt, spec, rip, rest @ ..] if opt.starts_with('-') => {
            // The ipvsadm parser reads the service and server as `-d` would, with its
            // address rules and messages.
            match crate::ipvsadm::parse(&format!("-d {opt} {spec} -r {rip}")) {
                Ok(IpvsCommand::DelDest(k, a)) => (Some(k), a, rest),
                Ok(_) => return Err(usage.to_string()),
                Err(e) => return Err(format!("{}: {usage}", e.message)),
            }
        }
        [rip, rest @ ..] => {
            let a = rip
                .parse()
                .map_err(|_| format!("real server `{rip}` is not ADDRESS:PORT: {usage}"))?;
            (None, a, rest)
        }
        [] => return Err(format!("load needs a real server: {usage}")),
    };
    let (mut active, mut inactive) = (None, None);
    for w in rest {
        let (name, value) = w
            .split_once('=')
            .ok_or_else(|| format!("`{w}` is not active=N or inactive=N: {usage}"))?;
        let n: u32 = value
            .parse()
            .ok()
            .filter(|&n| n <= 100_000)
            .ok_or_else(|| format!("`{w}`: the count must be a number up to 100000"))?;
        match name {
            "active" => active = Some(n),
            "inactive" => inactive = Some(n),
            _ => return Err(format!("unknown count `{name}`: {usage}")),
        }
    }
    if active.is_none() && inactive.is_none() {
        return Err(format!("load needs active=N, inactive=N or both: {usage}"));
    }
    Ok(Step::Load {
        service,
        server,
        active,
        inactive,
    })
}

fn parse_flow(words: &[&str]) -> Result<Flow, String> {
    let usage = "expected `CIP:CPORT > VIP:VPORT [udp] [mark N]`";
    if words.len() < 3 || words[1] != ">" {
        return Err(format!("bad flow `{}`: {usage}", words.join(" ")));
    }
    let client: SocketAddr = words[0]
        .parse()
        .map_err(|_| format!("client `{}` is not ADDRESS:PORT: {usage}", words[0]))?;
    let vip: SocketAddr = words[2].parse().map_err(|_| {
        format!(
            "virtual address `{}` is not ADDRESS:PORT: {usage}",
            words[2]
        )
    })?;
    let mut flow = Flow {
        protocol: Protocol::Tcp,
        client,
        vip,
        fwmark: 0,
    };
    let mut i = 3;
    while i < words.len() {
        match words[i] {
            "udp" => flow.protocol = Protocol::Udp,
            "tcp" => flow.protocol = Protocol::Tcp,
            "mark" => {
                i += 1;
                flow.fwmark = words
                    .get(i)
                    .and_then(|m| m.parse().ok())
                    .ok_or_else(|| format!("`mark` needs a number: {usage}"))?;
            }
            other => return Err(format!("unknown flow option `{other}`: {usage}")),
        }
        i += 1;
    }
    Ok(flow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipvsadm_lines_as_scripts_write_them_and_listings_are_skipped() {
        let s =
            "-At 10.0.0.1:http -s rr\nipvsadm -Ln\n-a -t 10.0.0.1:80 -r 10.0.2.1 -m\n-L\nipvsadm\n";
        let l = parse_script(s).expect("parses");
        assert_eq!(l.len(), 2, "{l:?}");
        assert_eq!((l[0].line, l[1].line), (1, 3));
        assert!(matches!(l[1].step, Step::Ipvsadm(IpvsCommand::AddDest(..))));
    }

    #[test]
    fn a_script_parses_into_steps_with_their_lines() {
        let s = "# c\nipvsadm -A -t 10.0.0.1:80 -s rr\n\nopen a 192.0.2.1:1 > 10.0.0.1:80 # kernel: 10.0.2.1:80\nsleep 1.5\nclose a\nrst 192.0.2.1:2 > 10.0.0.1:80 udp mark 3\n";
        let l = parse_script(s).expect("parses");
        assert_eq!(l.len(), 5);
        assert_eq!(l[0].line, 2);
        assert!(matches!(
            l[0].step,
            Step::Ipvsadm(IpvsCommand::AddService(_))
        ));
        assert_eq!(l[1].line, 4);
        assert_eq!(
            l[1].kernel,
            Some(Some("10.0.2.1:80".parse().expect("addr")))
        );
        assert_eq!(l[2].step, Step::Sleep(Duration::from_millis(1500)));
        assert_eq!(l[3].step, Step::Close { label: "a".into() });
        let Step::Conn { event, flow } = l[4].step else {
            panic!("not a conn: {:?}", l[4].step)
        };
        assert_eq!(event, Event::Rst);
        assert_eq!(flow.protocol, Protocol::Udp);
        assert_eq!(flow.fwmark, 3);
    }

    #[test]
    fn a_marked_flow_picks_the_fwmark_service_of_its_family() {
        let mut sim = Sim::new(IpvsConfig::default());
        let r = sim
            .run_script(
                "ipvsadm -A -f 1 -s rr\n\
                 ipvsadm -a -f 1 -r 192.168.1.201:80 -m\n\
                 ipvsadm -A -f 1 -6 -s dh\n\
                 ipvsadm -a -f 1 -6 -r [2001:db8:1::201]:80 -m\n\
                 ipvsadm -a -f 1 -6 -r [2001:db8:1::203]:80 -m\n\
                 conn [2001:db8:100::10]:40001 > [2001:db8:2::1]:80 mark 1\n\
                 conn 198.51.100.10:40001 > 192.0.2.1:80 mark 1\n\
                 conn [2001:db8:100::10]:40002 > [2001:db8:2::1]:80 mark 2\n",
            )
            .expect("runs");
        let v6 = r[0].server.expect("an IPv6 server");
        assert!(v6.is_ipv6(), "{v6}");
        assert_eq!(r[1].server, Some("192.168.1.201:80".parse().expect("addr")));
        // No service has mark 2 in either family: refused.
        assert_eq!(r[2].server, None);
    }

    fn counts(sim: &Sim, server: &str) -> (u32, u32) {
        let a: SocketAddr = server.parse().expect("addr");
        sim.ipvs
            .services()
            .iter()
            .flat_map(|v| v.dests.iter())
            .find(|d| d.config.addr == a)
            .map(|d| (d.active, d.inactive))
            .expect("server listed")
    }

    const SED: &str = "ipvsadm -A -t 10.0.0.1:80 -s sed\n\
        ipvsadm -a -t 10.0.0.1:80 -r 10.0.2.11:80 -m -w 1\n\
        ipvsadm -a -t 10.0.0.1:80 -r 10.0.2.12:80 -m -w 2\n\
        ipvsadm -a -t 10.0.0.1:80 -r 10.0.2.13:80 -m -w 3\n";

    #[test]
    fn load_sets_the_counts_the_scheduler_sees() {
        let mut sim = Sim::new(IpvsConfig::default());
        let script = format!(
            "{SED}load 10.0.2.11:80 active=1\nload -t 10.0.0.1:80 10.0.2.12:80 active=2 inactive=4\n\
             load 10.0.2.13:80 active=3\nopen n 192.0.2.1:1 > 10.0.0.1:80\n"
        );
        let r = sim.run_script(&script).expect("runs");
        assert_eq!(counts(&sim, "10.0.2.11:80"), (1, 0));
        assert_eq!(counts(&sim, "10.0.2.12:80"), (2, 4));
        assert_eq!(counts(&sim, "10.0.2.13:80"), (4, 0), "3 placeholders + n");
        assert_eq!(r[0].server, Some("10.0.2.13:80".parse().expect("addr")));
    }

    #[test]
    fn load_placeholders_expire_like_the_conns_they_stand_for() {
        let mut sim = Sim::new(IpvsConfig::default());
        sim.run_script(&format!(
            "{SED}load 10.0.2.11:80 active=1 inactive=2\nsleep 121\n"
        ))
        .expect("runs");
        // TIME_WAIT is 120 s, ESTABLISHED 900 s.
        assert_eq!(counts(&sim, "10.0.2.11:80"), (1, 0));
        sim.run_script("sleep 800\n").expect("runs");
        assert_eq!(counts(&sim, "10.0.2.11:80"), (0, 0));
    }

    #[test]
    fn load_leaves_the_schedulers_own_state_alone() {
        // rr's cursor: the pick after `load` is the pick without it.
        let rr = "ipvsadm -A -t 10.0.0.1:80 -s rr\n\
                  ipvsadm -a -t 10.0.0.1:80 -r 10.0.2.11:80 -m\n\
                  ipvsadm -a -t 10.0.0.1:80 -r 10.0.2.12:80 -m\n";
        let pick = |extra: &str| {
            let mut sim = Sim::new(IpvsConfig::default());
            let r = sim
                .run_script(&format!("{rr}{extra}conn 192.0.2.1:1 > 10.0.0.1:80\n"))
                .expect("runs");
            r[0].server
        };
        // Five scheduled conns would leave the cursor elsewhere than none does.
        assert_eq!(pick("load 10.0.2.11:80 active=5\n"), pick(""));
    }

    #[test]
    fn load_errors_name_the_line_and_the_fix() {
        let run = |s: &str| {
            Sim::new(IpvsConfig::default())
                .run_script(s)
                .expect_err("fails")
        };
        let e = run(&format!(
            "{SED}load 10.0.2.11:80 active=2\nload 10.0.2.11:80 active=1\n"
        ));
        assert_eq!(e.line, 6);
        assert!(e.message.contains("already has 2 active"), "{e}");
        let e = run(&format!("{SED}load 10.0.2.99:80 active=1\n"));
        assert!(e.message.contains("no service has real server"), "{e}");
        let two = format!(
            "{SED}ipvsadm -A -t 10.0.0.2:80 -s wlc\nipvsadm -a -t 10.0.0.2:80 -r 10.0.2.11:80 -m\n\
             load 10.0.2.11:80 active=1\n"
        );
        let e = run(&two);
        assert!(e.message.contains("more than one service"), "{e}");
        let udp = "ipvsadm -A -u 10.0.0.1:53 -s rr\nipvsadm -a -u 10.0.0.1:53 -r 10.0.2.11:53 -m\n\
                   load 10.0.2.11:53 active=1\n";
        assert!(run(udp)
            .message
            .contains("never counts a UDP entry as active"));
        assert!(parse_script("load 10.0.2.11:80\n").is_err());
        assert!(parse_script("load 10.0.2.11:80 busy=1\n").is_err());
        assert!(parse_script("load 10.0.2.11 active=1\n").is_err());
        assert!(parse_script("load -t 10.0.0.1:80 10.0.2.11:80 active=x\n").is_err());
    }

    #[test]
    fn a_kernel_comment_may_say_why_after_the_pick() {
        let l = parse_script("conn 192.0.2.1:1 > 10.0.0.1:80 # kernel: 10.0.2.1:80; bucket 3\n")
            .expect("parses");
        assert_eq!(
            l[0].kernel,
            Some(Some("10.0.2.1:80".parse().expect("addr")))
        );
        let l = parse_script("conn 192.0.2.1:1 > 10.0.0.1:80 # kernel: refused; none up\n")
            .expect("parses");
        assert_eq!(l[0].kernel, Some(None));
    }

    #[test]
    fn parse_errors_name_the_line() {
        let e = parse_script("sleep 1\nbogus 1\n").expect_err("bogus step");
        assert_eq!(e.line, 2);
        let e = parse_script("sleep 1e300\n").expect_err("too long a sleep");
        assert_eq!(e.line, 1);
    }
}
