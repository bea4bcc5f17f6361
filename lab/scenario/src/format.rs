//! The scenario file format (`scenarios/*.toml`); docs/scenarios.md describes it for users.

use lvslab_netns::diag::{Diagnostic, Source};
use lvslab_netns::{ForwardMethod, Protocol, Scheduler};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// Errors loading a scenario file.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML does not parse or does not fit the format.
    #[error("{path}: {message}\n  (the format is described in docs/scenarios.md)")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's message, with line and column.
        message: String,
    },
    /// Problems located in the scenario file, shown with the line, a caret and a fix.
    #[error("{}", .src.render_all(.diagnostics))]
    Located {
        /// The scenario file's text.
        src: Box<Source>,
        /// Every problem, in file order.
        diagnostics: Vec<Diagnostic>,
    },
    /// The content parses but is inconsistent.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },
}

/// Which balancer forwards the virtual service: the lab's own notion of it.
pub use lvslab_netns::Backend;

/// A scenario: a lab, a virtual service, traffic and events, and what must come out.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// One sentence: what this scenario shows.
    pub description: String,
    /// Topology name (in `topologies/`) or path.
    pub topology: String,
    /// The balancer (default userspace); `lvslab test --backend` overrides it.
    #[serde(default)]
    pub backend: Backend,
    /// The backends the scenario can run on (default: both); on another it is skipped,
    /// with `why` as the reason.
    pub backends: Option<Vec<Backend>>,
    /// Why the scenario runs on `backends` only.
    pub why: Option<String>,
    /// Changes to the topology's first virtual service.
    #[serde(default)]
    pub service: ServiceOverride,
    /// Where and what to capture.
    #[serde(default)]
    pub capture: CaptureSpec,
    /// What happens, in order.
    #[serde(default)]
    pub steps: Vec<Step>,
    /// What must come out.
    #[serde(default)]
    pub expect: Expect,
    /// The file's text, so later checks (the service overrides) can point into it.
    #[serde(skip)]
    pub source: Option<Source>,
}

/// Changes to the topology's first virtual service; unset fields keep the topology's.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceOverride {
    /// ipvsadm scheduler (rr, wrr, lc, wlc, sed, nq, sh, dh, lblc, lblcr, mh, fo, ovf, twos).
    pub scheduler: Option<Spanned<Scheduler>>,
    /// nat, dr or tun.
    pub method: Option<Spanned<ForwardMethod>>,
    /// Persistence timeout in seconds.
    pub persistence: Option<u32>,
    /// tcp or udp.
    pub protocol: Option<Spanned<Protocol>>,
    /// Virtual service port, 1 to 65535 (real servers keep theirs unless `rs_port` is set).
    pub port: Option<Spanned<i64>>,
    /// Real-server port for every real server, 1 to 65535.
    pub rs_port: Option<Spanned<i64>>,
    /// Weight per real-server node.
    #[serde(default)]
    pub weights: BTreeMap<Spanned<String>, u32>,
    /// Upper connection threshold per real-server node.
    #[serde(default)]
    pub u_thresholds: BTreeMap<Spanned<String>, u32>,
    /// Lower connection threshold per real-server node.
    #[serde(default)]
    pub l_thresholds: BTreeMap<Spanned<String>, u32>,
    /// Real-server nodes to leave out of the service.
    #[serde(default)]
    pub without: Vec<Spanned<String>>,
    /// The service's `health` table, as a topology file writes it (docs/topology.md).
    pub health: Option<Spanned<toml::Table>>,
    /// The service's `vrrp` table (replacing the topology's), for a service with a backup.
    pub vrrp: Option<Spanned<toml::Table>>,
    /// The services imported from a configuration file people already have (replacing the
    /// topology's; the other `[service]` changes then apply to the first of them).
    pub import: Option<Spanned<ImportFile>>,
}

/// A configuration file a scenario takes its services from, relative to the scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportFile {
    /// A keepalived.conf.
    pub keepalived: Option<String>,
    /// An ipvsadm rule set (`ipvsadm-save` output or a script of ipvsadm lines).
    pub ipvsadm: Option<String>,
}

/// Capture settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureSpec {
    /// Nodes to capture on (all interfaces of each); default every node.
    pub nodes: Option<Vec<String>>,
    /// tcpdump filter applied at every hop.
    pub filter: Option<String>,
    /// Keep ARP and IPv6 Neighbour Discovery in the path text.
    #[serde(default)]
    pub arp: bool,
}

/// One step.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "do", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// Send requests, one after the other, each on a new connection.
    Request {
        /// Client node.
        from: String,
        /// `vip` (the service's VIP and port, the default) or `ADDR:PORT`.
        #[serde(default = "default_target")]
        to: String,
        /// How many requests.
        #[serde(default = "one")]
        count: u32,
        /// tcp or udp; default the service's protocol.
        protocol: Option<String>,
        /// Request payload as text.
        payload: Option<String>,
        /// Request payload of this many pseudo-random bytes (fixed seed: the same every run).
        random: Option<usize>,
        /// Keep TCP connections open (established, idle) until a `release` step or the end.
        #[serde(default)]
        hold: bool,
        /// Source addresses of `from`, by label (`CIP2`) or address, used in turn by the
        /// requests (the first request the first); default the node's own choice.
        #[serde(default)]
        sources: Vec<String>,
        /// Destinations used in turn instead of `to`: `vip`, a VIP label (`VIP2`), an
        /// address (the service's port) or `ADDR:PORT`.
        #[serde(default)]
        destinations: Vec<String>,
    },
    /// Set a real server's weight through the director (weight 0 quiesces it).
    Weight {
        /// Real-server node.
        server: String,
        /// New weight.
        weight: u32,
    },
    /// Send any ipvsadm command line to the director.
    Ipvsadm {
        /// e.g. `-e -t 192.168.1.250:80 -r 192.168.1.201:80 -m -w 3`.
        line: String,
    },
    /// Stop the serve daemon on a real server (its port then refuses).
    StopServer {
        /// Real-server node.
        node: String,
    },
    /// Start the serve daemon on a real server again, as `up` starts it.
    StartServer {
        /// Real-server node.
        node: String,
    },
    /// Wait until the health checker reports a real server `up` or `down`.
    WaitHealth {
        /// Real-server node.
        node: String,
        /// `up` or `down`.
        state: HealthState,
        /// How long to wait at most, ms (default 5000).
        #[serde(default = "five_seconds")]
        timeout_ms: u64,
    },
    /// Close every held connection.
    Release,
    /// Send `payload` on every held connection and read its echo back (the connection
    /// stays open): after a failover this shows which director carries it now.
    SendHeld {
        /// The bytes sent on each (`serve` echoes anything that is not HTTP).
        #[serde(default = "held_payload")]
        payload: String,
    },
    /// Stop a director of a pair: lvslab's director, or keepalived on a node the service's
    /// `vrrp.keepalived` names. With `signal = "kill"` (the default) its whole process
    /// group gets SIGKILL and the step waits until every process of it is gone: it sends
    /// nothing more, not even VRRP's priority 0, so its backup takes over only after the
    /// master-down interval. With `signal = "term"` it gets SIGTERM, the normal shutdown:
    /// keepalived sends priority 0 (its backup takes over after its skew time) and removes
    /// its VIPs. Then the step returns once the signal is sent, so a `wait_vrrp` right after
    /// measures the takeover from the signal on; keepalived's exit, about a second later,
    /// is waited for by `start_director` and the lab's teardown. (lvslab's director has no
    /// SIGTERM handler: term ends it as kill does; `failover` is how it gives up.)
    KillDirector {
        /// The director node.
        node: String,
        /// `kill` (default) or `term`.
        #[serde(default)]
        signal: StopSignal,
    },
    /// Start a stopped director again, as `up` started it (it rejoins its pair as BACKUP
    /// and takes the VIPs back if its priority is higher and it preempts).
    StartDirector {
        /// The director node.
        node: String,
    },
    /// `lvslab failover`: the VRRP MASTER gives up (priority 0); waits for the new master.
    Failover {
        /// Fail the step unless the new master has taken over within this many ms.
        within_ms: Option<u64>,
    },
    /// Wait until a director's VRRP instance is in `state`; for MASTER also until the
    /// lab's routers send the VIPs to it (its gratuitous ARP arrived). lvslab's director
    /// says its state; keepalived's is read from its node: MASTER when the VIPs are on its
    /// VRRP interface.
    WaitVrrp {
        /// The director node.
        node: String,
        /// `master` or `backup`.
        state: VrrpWant,
        /// How long to wait at most, ms (default 5000).
        #[serde(default = "five_seconds")]
        timeout_ms: u64,
    },
    /// Wait until a director's table holds every held connection (the master's sync
    /// messages arrived), or `timeout_ms` passed.
    WaitSynced {
        /// The backup director node.
        node: String,
        /// How long to wait at most, ms (default 5000).
        #[serde(default = "five_seconds")]
        timeout_ms: u64,
    },
    /// Start a long TCP transfer in the background: `bytes` pseudo-random bytes written to
    /// the VIP at an even pace over `duration_ms` from client port `port`, every byte of the
    /// echo checked; `wait_transfer` collects the outcome.
    Transfer {
        /// Client node.
        from: String,
        /// Bytes sent (and echoed back).
        #[serde(default = "transfer_bytes")]
        bytes: usize,
        /// How long the writing takes, ms.
        #[serde(default = "transfer_ms")]
        duration_ms: u64,
        /// The client's port (so a capture filter can leave the transfer out).
        #[serde(default = "transfer_port")]
        port: u16,
    },
    /// Wait for the background transfers to end.
    WaitTransfer {
        /// How long to wait at most, ms (default 30000).
        #[serde(default = "thirty_seconds")]
        timeout_ms: u64,
    },
    /// Sleep.
    Wait {
        /// Milliseconds.
        ms: u64,
    },
    /// Set a `net.ipv4.vs.*` sysctl of the service's director, as `sysctl -w
    /// net.ipv4.vs.NAME=VALUE` does on a kernel director (lvslab's director models
    /// `expire_nodest_conn`).
    Sysctl {
        /// The name under /proc/sys/net/ipv4/vs/, e.g. `expire_nodest_conn`.
        name: String,
        /// The value, e.g. 1.
        value: u32,
    },
    /// Send one UDP datagram from a node, from a source address of its own choosing (e.g.
    /// a real server's own traffic leaving from the VIP it holds on lo): what the node's
    /// kernel does on the way (ARP from that source) is the point. The step returns once an
    /// answer or an ICMP error came back, or after 3 s without one (not a failure).
    SendUdp {
        /// The sending node.
        node: String,
        /// The source address (one of the node's, lo included).
        source: std::net::IpAddr,
        /// `ADDR:PORT`.
        to: std::net::SocketAddr,
        /// The datagram.
        #[serde(default = "held_payload")]
        payload: String,
        /// The source port (default: any free one); a fixed one makes later datagrams the
        /// same flow to IPVS, as a resolver's or a game client's are.
        #[serde(default)]
        source_port: u16,
        /// How long to wait for an answer, ms (default 3000).
        #[serde(default = "three_seconds")]
        timeout_ms: u64,
        /// Fail the step unless the datagram was answered (`true`) or not (`false`).
        answered: Option<bool>,
    },
    /// One HTTP request to the service from a client that gives up connecting after
    /// `timeout_ms` (default 500): below Linux's first SYN retransmission (1 s), so a
    /// connection that cannot open shows exactly one SYN and whatever answered it, and the
    /// path does not depend on retransmission timing. Counts as a request (failed when it
    /// does not open or is reset).
    Connect {
        /// Client node.
        from: String,
        /// The connect timeout, ms.
        #[serde(default = "half_second")]
        timeout_ms: u64,
    },
    /// A bounded flood at the service from a node (inside the lab: the node's own address,
    /// source ports 1024-29999, so `not portrange 1024-29999` as the capture filter keeps it
    /// out of the path), while the connections held open by earlier `request` steps
    /// exchange data between its packets, and `new_exchanges` new connections (new UDP
    /// flows for a UDP flood) from source ports 31000-31999 are made once the flood has had
    /// time to fill the table. Fails unless the director's conn table stayed within its
    /// bound, its VmRSS grew by at most `max_rss_growth_kb`, at least `min_success` of the
    /// held exchanges and `min_new_success` of the new ones were served. Userspace
    /// director only. The numbers go to `logs/flood-N.log` beside the captures.
    Flood {
        /// The node the flood leaves from.
        from: String,
        /// `syn` (default), `udp` or `icmp` (port unreachable about unknown flows).
        #[serde(default)]
        kind: crate::flood::FloodKind,
        /// Packets, at most 28976.
        count: u32,
        /// Packets per second (default 2000).
        #[serde(default = "flood_rate")]
        rate: u32,
        /// The flood stops after this many ms whatever `count` says (default 10000).
        #[serde(default = "ten_seconds")]
        within_ms: u64,
        /// Set the director's conn table bound first (lvslab's `lvslab_max_conns`).
        max_conns: Option<u32>,
        /// Exchanges on the held connections, spread evenly over the flood (default 10).
        #[serde(default = "ten")]
        exchanges: u32,
        /// The share of exchanges that must be served, 0 to 1 (default 1).
        #[serde(default = "all")]
        min_success: f64,
        /// New connections during the flood, each opened, one request answered, closed
        /// (default 0); for a UDP flood new UDP flows, one datagram answered.
        #[serde(default)]
        new_exchanges: u32,
        /// The share of `new_exchanges` that must be served, 0 to 1 (default: reported,
        /// not checked).
        min_new_success: Option<f64>,
        /// How much the director's VmRSS may grow, KiB (default 16384).
        #[serde(default = "sixteen_mib")]
        max_rss_growth_kb: u64,
    },
}

fn flood_rate() -> u32 {
    2000
}

fn ten_seconds() -> u64 {
    10_000
}

fn ten() -> u32 {
    10
}

fn all() -> f64 {
    1.0
}

fn sixteen_mib() -> u64 {
    16 * 1024
}

fn half_second() -> u64 {
    500
}

/// A real server's health as a `wait_health` step names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthState {
    /// Its checks pass.
    Up,
    /// Its checks failed more than `retries` times in a row.
    Down,
}

fn five_seconds() -> u64 {
    5000
}

fn three_seconds() -> u64 {
    3000
}

fn thirty_seconds() -> u64 {
    30_000
}

fn held_payload() -> String {
    "still there?\n".to_owned()
}

fn transfer_bytes() -> usize {
    256 * 1024
}

fn transfer_ms() -> u64 {
    3000
}

/// The default client port of a `transfer` step: outside Linux's ephemeral range
/// (32768-60999), so no other connection of the run takes it.
pub const TRANSFER_PORT: u16 = 30_000;

fn transfer_port() -> u16 {
    TRANSFER_PORT
}

/// How a `kill_director` step stops a director.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StopSignal {
    /// SIGKILL to its process group: a crash.
    #[default]
    Kill,
    /// SIGTERM to the daemon: a normal shutdown.
    Term,
}

/// The VRRP state a `wait_vrrp` step waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VrrpWant {
    /// It owns the VIPs.
    Master,
    /// It stands by.
    Backup,
}

impl VrrpWant {
    /// The state as the director reports it.
    pub fn word(self) -> &'static str {
        match self {
            VrrpWant::Master => "MASTER",
            VrrpWant::Backup => "BACKUP",
        }
    }
}

/// How a `transfer` step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TransferOutcome {
    /// Every byte came back, in order and unchanged.
    Intact,
    /// The connection was reset (RST) before the end.
    Reset,
}

fn default_target() -> String {
    "vip".to_owned()
}

fn one() -> u32 {
    1
}

/// Expectations; each one that is set is checked.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Connections per real-server node, as seen arriving in the captures.
    pub responses: Option<BTreeMap<String, u32>>,
    /// Allowed difference per node for `responses` (default 0: exact).
    #[serde(default)]
    pub tolerance: u32,
    /// The real-server node of each request to the service, in order.
    pub sequence: Option<Vec<String>>,
    /// Requests that must fail (refused, reset or timed out); default 0.
    #[serde(default)]
    pub failed: u32,
    /// Every request payload must arrive unchanged at a real server and every reply
    /// unchanged at the client (default true).
    #[serde(default = "yes")]
    pub payload_intact: bool,
    /// An ICMP error that must appear in the path, by name (e.g. `port-unreachable`).
    pub icmp: Option<String>,
    /// Director counters per real-server node (`conns`, `inpkts`, `outpkts`, `active`, ...).
    #[serde(default)]
    pub counters: BTreeMap<String, BTreeMap<String, u64>>,
    /// Compare the path with the snapshot (default true).
    #[serde(default = "yes")]
    pub snapshot: bool,
    /// How every `transfer` must end.
    pub transfer: Option<TransferOutcome>,
}

impl Default for Expect {
    fn default() -> Self {
        Expect {
            responses: None,
            tolerance: 0,
            sequence: None,
            failed: 0,
            payload_intact: true,
            icmp: None,
            counters: BTreeMap::new(),
            snapshot: true,
            transfer: None,
        }
    }
}

fn yes() -> bool {
    true
}

impl Scenario {
    /// Reads and checks a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, FormatError> {
        let text = std::fs::read_to_string(path).map_err(|source| FormatError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses scenario text; `path` is used in messages only.
    pub fn parse(path: &Path, text: &str) -> Result<Scenario, FormatError> {
        let src = Source::new(path, text.to_owned());
        let mut s: Scenario = toml::from_str(text).map_err(|e| match e.span() {
            Some(span) => {
                let message = e.message().trim().to_owned();
                let help = parse_help(&message);
                let d = src.diag(span, message, Some(help));
                FormatError::Located {
                    src: Box::new(src.clone()),
                    diagnostics: vec![d],
                }
            }
            None => FormatError::Parse {
                path: path.to_owned(),
                message: e.to_string(),
            },
        })?;
        s.source = Some(src);
        let invalid = |message: String| FormatError::Invalid {
            path: path.to_owned(),
            message,
        };
        for (i, step) in s.steps.iter().enumerate() {
            if let Step::Request {
                payload: Some(_),
                random: Some(_),
                ..
            } = step
            {
                return Err(invalid(format!(
                    "step {}: set either `payload` or `random`, not both",
                    i + 1
                )));
            }
            if let Step::Request {
                to, destinations, ..
            } = step
            {
                if !destinations.is_empty() && to != "vip" {
                    return Err(invalid(format!(
                        "step {}: set either `to` or `destinations`, not both",
                        i + 1
                    )));
                }
            }
            if let Step::Flood {
                count,
                min_success,
                new_exchanges,
                min_new_success,
                ..
            } = step
            {
                if *count == 0
                    || !(0.0..=1.0).contains(min_success)
                    || min_new_success.is_some_and(|m| !(0.0..=1.0).contains(&m))
                {
                    return Err(invalid(format!(
                        "step {}: a flood needs `count` of at least 1, and `min_success` and `min_new_success` from 0 to 1",
                        i + 1
                    )));
                }
                if min_new_success.is_some() && *new_exchanges == 0 {
                    return Err(invalid(format!(
                        "step {}: `min_new_success` needs `new_exchanges` of at least 1 to measure",
                        i + 1
                    )));
                }
            }
            if let Step::Request { count: 0, .. } = step {
                return Err(invalid(format!(
                    "step {}: `count` must be at least 1",
                    i + 1
                )));
            }
        }
        if s.expect.responses.is_some() && s.expect.sequence.is_some() {
            return Err(invalid(
                "[expect]: set `responses` (a distribution) or `sequence` (an order), not both"
                    .to_owned(),
            ));
        }
        Ok(s)
    }

    /// The scenario's name: its file stem.
    pub fn name_of(path: &Path) -> String {
        path.file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("scenario")
            .to_owned()
    }
}

/// A fix for a TOML or type error, by what toml says went wrong.
fn parse_help(message: &str) -> String {
    if message.starts_with("unknown scheduler") {
        lvslab_netns::topology::scheduler_help()
    } else if message.starts_with("unknown forwarding method") {
        lvslab_netns::topology::METHOD_HELP.to_owned()
    } else {
        "compare with docs/scenarios.md, which lists every field".to_owned()
    }
}

/// The request payload a step sends: text, or `n` bytes from a fixed-seed generator.
pub fn payload_bytes(payload: Option<&str>, random: Option<usize>) -> Vec<u8> {
    if let Some(n) = random {
        // xorshift64*: deterministic, so the same bytes every run.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        return (0..n)
            .map(|_| {
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
            })
            .collect();
    }
    payload.unwrap_or("ping\n").as_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_scenario() {
        let s = Scenario::parse(
            Path::new("x.toml"),
            r#"
description = "d"
topology = "nat-topology"
[service]
scheduler = "wrr"
weights = { rs1 = 1, rs2 = 3 }
[[steps]]
do = "request"
from = "client"
count = 4
[[steps]]
do = "weight"
server = "rs1"
weight = 0
[[steps]]
do = "wait"
ms = 10
[expect]
responses = { rs1 = 1, rs2 = 3 }
"#,
        )
        .unwrap();
        assert_eq!(s.backend, Backend::Userspace);
        assert_eq!(s.service.weights["rs2"], 3);
        assert!(matches!(&s.steps[0], Step::Request { count: 4, to, .. } if to == "vip"));
        assert!(s.expect.snapshot && s.expect.payload_intact);
    }

    #[test]
    fn unknown_fields_are_errors_with_a_line() {
        let e = Scenario::parse(
            Path::new("bad.toml"),
            "description = \"d\"\ntopology = \"t\"\n[[steps]]\ndo = \"request\"\nfrom = \"c\"\ncuont = 3\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("bad.toml:3:1: error: "), "{e}");
        assert!(e.contains("cuont") && e.contains("help: "), "{e}");
    }

    #[test]
    fn a_flood_checks_new_connections_only_when_it_makes_some() {
        let flood = |extra: &str| {
            Scenario::parse(
                Path::new("f.toml"),
                &format!("description = \"d\"\ntopology = \"t\"\n[[steps]]\ndo = \"flood\"\nfrom = \"client\"\ncount = 10\n{extra}"),
            )
        };
        let s = flood("new_exchanges = 5\nmin_new_success = 0.9\n").unwrap();
        assert!(matches!(
            s.steps[0],
            Step::Flood { new_exchanges: 5, min_new_success: Some(m), .. } if m == 0.9
        ));
        let e = flood("min_new_success = 0.9\n").unwrap_err().to_string();
        assert!(e.contains("needs `new_exchanges`"), "{e}");
        let e = flood("new_exchanges = 5\nmin_new_success = 1.5\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("from 0 to 1"), "{e}");
    }

    #[test]
    fn kill_director_takes_kill_by_default_or_term() {
        let body = |extra: &str| {
            format!("description = \"d\"\ntopology = \"t\"\n[[steps]]\ndo = \"kill_director\"\nnode = \"director\"\n{extra}")
        };
        let signal = |extra: &str| match Scenario::parse(Path::new("k.toml"), &body(extra)) {
            Ok(s) => match &s.steps[0] {
                Step::KillDirector { signal, .. } => Ok(*signal),
                other => panic!("{other:?}"),
            },
            Err(e) => Err(e.to_string()),
        };
        assert_eq!(signal(""), Ok(StopSignal::Kill));
        assert_eq!(signal("signal = \"term\"\n"), Ok(StopSignal::Term));
        let e = signal("signal = \"hup\"\n").unwrap_err();
        assert!(e.contains("hup") && e.starts_with("k.toml:"), "{e}");
    }

    #[test]
    fn requests_can_name_their_sources_and_destinations() {
        let base = "description = \"d\"\ntopology = \"t\"\n[[steps]]\ndo = \"request\"\nfrom = \"client\"\ncount = 3\n";
        let s = Scenario::parse(
            Path::new("x.toml"),
            &format!("{base}sources = [\"CIP1\", \"198.51.100.12\"]\ndestinations = [\"VIP1\", \"VIP2\"]\n"),
        )
        .unwrap();
        let Step::Request {
            sources,
            destinations,
            ..
        } = &s.steps[0]
        else {
            panic!("{:?}", s.steps[0])
        };
        assert_eq!(sources, &["CIP1", "198.51.100.12"]);
        assert_eq!(destinations, &["VIP1", "VIP2"]);
        let plain = Scenario::parse(Path::new("x.toml"), base).unwrap();
        assert!(
            matches!(&plain.steps[0], Step::Request { sources, destinations, .. } if sources.is_empty() && destinations.is_empty())
        );
        let both = Scenario::parse(
            Path::new("x.toml"),
            &format!("{base}to = \"192.168.1.201:80\"\ndestinations = [\"VIP1\"]\n"),
        )
        .unwrap_err()
        .to_string();
        assert!(both.contains("`to` or `destinations`"), "{both}");
        let typo = Scenario::parse(Path::new("x.toml"), &format!("{base}source = [\"CIP1\"]\n"))
            .unwrap_err()
            .to_string();
        assert!(typo.contains("source"), "{typo}");
    }

    #[test]
    fn random_payload_is_the_same_every_time() {
        assert_eq!(payload_bytes(None, Some(64)), payload_bytes(None, Some(64)));
        assert_ne!(payload_bytes(None, Some(64)), vec![0u8; 64]);
    }
}
