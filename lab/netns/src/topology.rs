//! Topology files: parse (serde + toml, keeping spans), validate, and the checked model.
//!
//! The file format is documented field by field in `docs/topology.md`.
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::diag::{Diagnostic, Source};
use crate::label::Label;

mod reach;
mod validate;
mod write;
use validate::Validator;

/// What a node is for; decides its default sysctls and daemons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sends requests to the virtual service.
    Client,
    /// Forwards packets (net.ipv4.ip_forward=1).
    Router,
    /// Runs the load balancer for the services that name it.
    Director,
    /// Serves requests; `lvslab serve` runs here unless `serve = false`.
    Realserver,
    /// Any other machine; gets no special treatment.
    Host,
}

impl Role {
    const ALL: [(&'static str, Role); 5] = [
        ("client", Role::Client),
        ("router", Role::Router),
        ("director", Role::Director),
        ("realserver", Role::Realserver),
        ("host", Role::Host),
    ];
    /// The lower-case name used in topology files.
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, r)| *r == self)
            .map_or("host", |(n, _)| n)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Transport protocol of a virtual service: the balancer core's own type.
pub use lvslab_core::Protocol;

/// How the director forwards to real servers (`nat`, `dr`, `tun` in files): the core's type.
pub use lvslab_core::ForwardMethod;
/// An ipvsadm scheduler: the core's type, so the two never disagree on names.
pub use lvslab_core::Scheduler;

/// A checked topology.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Topology {
    /// File stem, the default lab name.
    pub name: String,
    /// Where it was loaded from.
    pub path: PathBuf,
    /// Free text from the file.
    pub description: String,
    /// Nodes in file order.
    pub nodes: Vec<NodeSpec>,
    /// Point-to-point veth links.
    pub links: Vec<LinkSpec>,
    /// LAN segments (bridges in the switch namespace).
    pub lans: Vec<LanSpec>,
    /// Virtual services.
    pub services: Vec<ServiceSpec>,
}

/// One machine of the lab (one network namespace).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeSpec {
    /// Node name, e.g. `rs1`.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Interfaces sorted by name.
    pub interfaces: Vec<IfaceSpec>,
    /// Static routes.
    pub routes: Vec<RouteSpec>,
    /// Extra sysctls (`net.*` keys), applied last.
    pub sysctls: Vec<(String, String)>,
    /// Whether `up` starts `lvslab serve` here (realservers only).
    pub serve: bool,
    /// Whether IPv6 stays on in this namespace.
    pub ipv6: bool,
    /// Deliberate misconfigurations this node is built with (`mistakes = [...]`), to show a
    /// pitfall; each one raises a warning. Left out of saved state when empty, so state
    /// files of ordinary labs do not change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mistakes: Vec<Mistake>,
}

/// A deliberate misconfiguration (`mistakes = ["no-arp-ignore"]` on a node): the lab is set
/// up wrong on purpose, the way production often finds it, so a scenario can show the
/// failure. Each one is loudly marked: `validate` and `up` warn about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mistake {
    /// On a DR/TUN real server: keep arp_ignore=0 and arp_announce=0 although the VIP is
    /// on lo, so the server answers ARP for the VIP and sends ARP from it.
    NoArpIgnore,
    /// On a NAT real server: its route to the clients goes via another gateway than the
    /// director (an error otherwise).
    NatRouteBypassesDirector,
    /// On a client: it sits on the LAN of a NAT service's real servers, which answer it
    /// directly instead of through the director (an error otherwise).
    ClientOnRsLan,
}

impl Mistake {
    /// Every mistake with its name in files.
    pub const ALL: [(&'static str, Mistake); 3] = [
        ("no-arp-ignore", Mistake::NoArpIgnore),
        (
            "nat-route-bypasses-director",
            Mistake::NatRouteBypassesDirector,
        ),
        ("client-on-rs-lan", Mistake::ClientOnRsLan),
    ];

    /// The name used in topology files.
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, m)| *m == self)
            .map_or("unknown", |(n, _)| n)
    }

    /// The mistake named `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Mistake> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, m)| *m)
    }

    /// The known names, comma-separated, for messages.
    pub fn names() -> String {
        Self::ALL.map(|(n, _)| n).join(", ")
    }
}

impl fmt::Display for Mistake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One interface of a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IfaceSpec {
    /// Interface name inside the node, e.g. `eth0`.
    pub name: String,
    /// Addresses with prefix length.
    pub addresses: Vec<IpNet>,
    /// Role label from the LVS docs, e.g. `CIP`, `DIP`, `RIP1`: the first address's.
    pub label: Option<Label>,
    /// Labels of the further addresses, in order (`labels = [...]` in files): a client
    /// holding CIP1..CIP6 shows each source by name in captures.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more_labels: Vec<Label>,
}

/// A static route: `default via GW` or `CIDR via GW`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteSpec {
    /// Destination; `None` is the default route.
    pub dest: Option<IpNet>,
    /// Next hop.
    pub via: IpAddr,
}

impl fmt::Display for RouteSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.dest {
            None => write!(f, "default via {}", self.via),
            Some(d) => write!(f, "{d} via {}", self.via),
        }
    }
}

/// `node:iface`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Endpoint {
    /// Node name.
    pub node: String,
    /// Interface name on that node.
    pub iface: String,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.node, self.iface)
    }
}

/// A veth pair between two node interfaces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkSpec {
    /// The two ends.
    pub endpoints: [Endpoint; 2],
}

/// A LAN: a bridge in the switch namespace with one veth per member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LanSpec {
    /// LAN name, also the bridge name.
    pub name: String,
    /// Attached node interfaces.
    pub members: Vec<Endpoint>,
}

/// A virtual service (one `ipvsadm -A` plus its `-a` lines).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceSpec {
    /// Director node that balances it (the MASTER in HA labs).
    pub director: String,
    /// Optional BACKUP director node.
    pub backup: Option<String>,
    /// Virtual IP.
    pub vip: IpAddr,
    /// Virtual port.
    pub port: u16,
    /// tcp or udp.
    pub protocol: Protocol,
    /// The ipvsadm scheduler.
    pub scheduler: Scheduler,
    /// nat, dr or tun.
    pub method: ForwardMethod,
    /// Persistence timeout in seconds (`ipvsadm -p`).
    pub persistence: Option<u32>,
    /// A firewall-mark service (`ipvsadm -A -f MARK`): the director marks packets to
    /// `vip` and `vips` on `port`, as an iptables mangle MARK rule would, and one
    /// scheduler table covers them all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fwmark: Option<u32>,
    /// Further VIPs of a firewall-mark service, after `vip`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vips: Vec<IpAddr>,
    /// Real servers in file order.
    pub real_servers: Vec<RealServerSpec>,
    /// Health checking of the real servers (`health = { ... }`), if any.
    #[serde(default)]
    pub health: Option<HealthSpec>,
    /// The MASTER/BACKUP pair's VRRP and connection sync; set exactly when `backup` is.
    #[serde(default)]
    pub vrrp: Option<VrrpSpec>,
}

/// How a service's director pair runs VRRP (keepalived's vrrp_instance) and syncs its
/// connections (the kernel's sync daemons).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VrrpSpec {
    /// Virtual router id, 1..=255 (keepalived's virtual_router_id).
    pub vrid: u8,
    /// VRRP version: 2 (keepalived's default) or 3.
    pub version: u8,
    /// Advertisement interval in ms: whole seconds for version 2, 10 ms steps for 3.
    pub advert_int_ms: u64,
    /// The `director`'s priority (the MASTER's).
    pub priority: u8,
    /// The `backup`'s priority.
    pub backup_priority: u8,
    /// A recovered higher-priority director takes the VIP back (keepalived's default;
    /// `nopreempt` is `false`).
    pub preempt: bool,
    /// The master sends its connections to the backup (IPVS sync, version 1).
    pub sync: bool,
    /// The IPVS sync id both sides use.
    pub sync_id: u8,
    /// Nodes of the pair whose VRRP is spoken by Debian's keepalived instead of lvslab.
    pub keepalived: Vec<String>,
}

impl VrrpSpec {
    /// keepalived's own example virtual_router_id.
    pub const VRID: u8 = 51;
    /// keepalived's default vrrp_version.
    pub const VERSION: u8 = 2;
    /// keepalived's default advert_int: 1 s.
    pub const ADVERT_INT_MS: u64 = 1000;
    /// The MASTER's default priority (keepalived's examples: 150 over the default 100).
    pub const PRIORITY: u8 = 150;
    /// The BACKUP's default priority (keepalived's default priority).
    pub const BACKUP_PRIORITY: u8 = 100;

    /// The pair's defaults: keepalived's where it has one.
    pub fn new() -> Self {
        VrrpSpec {
            vrid: Self::VRID,
            version: Self::VERSION,
            advert_int_ms: Self::ADVERT_INT_MS,
            priority: Self::PRIORITY,
            backup_priority: Self::BACKUP_PRIORITY,
            preempt: true,
            sync: true,
            sync_id: Self::VRID,
            keepalived: Vec::new(),
        }
    }

    /// `node`'s priority in the pair of `svc` (None: not one of the pair).
    pub fn priority_of(&self, svc: &ServiceSpec, node: &str) -> Option<u8> {
        if svc.director == node {
            Some(self.priority)
        } else if svc.backup.as_deref() == Some(node) {
            Some(self.backup_priority)
        } else {
            None
        }
    }
}

impl Default for VrrpSpec {
    fn default() -> Self {
        Self::new()
    }
}

/// What a health check does against one real server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "check", rename_all = "lowercase")]
pub enum HealthCheck {
    /// Connect to RIP:port; a completed handshake is healthy.
    Tcp,
    /// `GET path HTTP/1.0`; the answer's status must be `status` and, with `digest`, the
    /// MD5 of its body must be `digest` (keepalived's HTTP_GET `digest`).
    Http {
        /// The request path.
        path: String,
        /// The expected status code.
        status: u16,
        /// The body's MD5, 32 lower-case hex digits.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        digest: Option<String>,
    },
    /// Send `payload` to RIP:port; any answer is healthy, or with `expect` an answer that
    /// contains it (keepalived's UDP_CHECK `require_reply`).
    Udp {
        /// The datagram sent.
        payload: String,
        /// Text the answer must contain.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect: Option<String>,
    },
    /// Run a program in the director's namespace; exit status 0 is healthy.
    Command {
        /// Program and arguments.
        command: Vec<String>,
    },
}

impl HealthCheck {
    /// The name used in files: `tcp`, `http`, `udp` or `command`.
    pub fn kind(&self) -> &'static str {
        match self {
            HealthCheck::Tcp => "tcp",
            HealthCheck::Http { .. } => "http",
            HealthCheck::Udp { .. } => "udp",
            HealthCheck::Command { .. } => "command",
        }
    }
}

/// Health checking of a service's real servers (keepalived's checker settings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthSpec {
    /// The check.
    #[serde(flatten)]
    pub check: HealthCheck,
    /// Time between two checks of a healthy server (keepalived's delay_loop), ms.
    pub interval_ms: u64,
    /// How long one check may take (keepalived's connect_timeout), ms.
    pub timeout_ms: u64,
    /// Failed checks tolerated before a server is down (keepalived's retry).
    pub retries: u32,
    /// Time before a failed check is retried (keepalived's delay_before_retry), ms.
    pub delay_before_retry_ms: u64,
    /// Quiesce a failing server to weight 0 instead of removing it.
    pub inhibit_on_failure: bool,
    /// Where the service sends clients while no real server is healthy.
    pub sorry_server: Option<std::net::SocketAddr>,
}

impl HealthSpec {
    /// Default `interval_ms`: keepalived's delay_loop is 60 s, far too slow for a lab.
    pub const INTERVAL_MS: u64 = 1000;
    /// Default `timeout_ms`: keepalived's connect_timeout is 5 s; a lab's LAN answers in µs.
    pub const TIMEOUT_MS: u64 = 500;
    /// Default `retries` (keepalived's retry default is 1).
    pub const RETRIES: u32 = 1;
    /// Default `delay_before_retry_ms`: keepalived waits 1 s; a lab wants quick answers.
    pub const DELAY_BEFORE_RETRY_MS: u64 = 200;
}

impl ServiceSpec {
    /// Every address the service answers on: `vip`, then a firewall-mark service's `vips`.
    pub fn all_vips(&self) -> Vec<IpAddr> {
        std::iter::once(self.vip)
            .chain(self.vips.iter().copied())
            .collect()
    }
}

impl fmt::Display for ServiceSpec {
    /// One line, e.g. `TCP 192.168.1.250:80 rr nat on director -> rs1 192.168.1.201:80 w1, ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {} on {} ->",
            self.protocol,
            // VIP:port, an IPv6 VIP in brackets as ipvsadm writes it.
            std::net::SocketAddr::new(self.vip, self.port),
            self.scheduler,
            self.method.word(),
            self.director
        )?;
        for (i, r) in self.real_servers.iter().enumerate() {
            let sep = if i == 0 { " " } else { ", " };
            let rip = std::net::SocketAddr::new(r.address, r.port);
            write!(f, "{sep}{} {rip} w{}", r.node, r.weight)?;
        }
        Ok(())
    }
}

/// A real server of a service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RealServerSpec {
    /// Node that runs it.
    pub node: String,
    /// Its address (RIP).
    pub address: IpAddr,
    /// Its port.
    pub port: u16,
    /// Scheduling weight (0 quiesces).
    pub weight: u32,
    /// Upper connection threshold (0 = none).
    pub u_threshold: u32,
    /// Lower connection threshold (0 = none).
    pub l_threshold: u32,
}

/// A topology that failed to load: every problem found, renderable with locations.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// The file could not be read.
    #[error("cannot read topology {path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// No such topology name or path.
    #[error("no topology named {name:?}: looked for {tried}\n  help: give a path to a .toml file, or one of the names in topologies/ ({known})")]
    NotFound {
        /// What the user asked for.
        name: String,
        /// Paths tried.
        tried: String,
        /// Names that do exist.
        known: String,
    },
    /// The file has errors.
    #[error("{}", .src.render_all(.diagnostics))]
    Invalid {
        /// The file text.
        src: Box<Source>,
        /// All problems, in file order.
        diagnostics: Vec<Diagnostic>,
    },
}

impl TopologyError {
    /// The located problems (empty for I/O errors).
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            TopologyError::Invalid { diagnostics, .. } => diagnostics,
            _ => &[],
        }
    }
}

/// Warnings a topology that loaded still raised (`lvslab validate` shows them): located like
/// errors, but nothing stops the lab from being built.
#[derive(Debug, Clone)]
pub struct Warnings {
    src: Box<Source>,
    diagnostics: Vec<Diagnostic>,
}

impl Warnings {
    /// The located warnings, in file order.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.diagnostics.is_empty()
    }
}

impl fmt::Display for Warnings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.src.render_all(&self.diagnostics))
    }
}

// ---------------------------------------------------------------------------
// Raw, spanned file structure.

type S<T> = Spanned<T>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTopology {
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    nodes: BTreeMap<S<String>, S<RawNode>>,
    #[serde(default)]
    links: Vec<S<RawLink>>,
    #[serde(default)]
    lans: BTreeMap<S<String>, S<RawLan>>,
    #[serde(default)]
    services: Vec<S<RawService>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    role: S<String>,
    #[serde(default)]
    interfaces: BTreeMap<S<String>, S<RawIface>>,
    #[serde(default)]
    routes: Option<S<Vec<S<String>>>>,
    #[serde(default)]
    sysctls: BTreeMap<S<String>, S<toml::Value>>,
    #[serde(default)]
    serve: Option<bool>,
    #[serde(default)]
    ipv6: Option<bool>,
    #[serde(default)]
    mistakes: Option<S<Vec<S<String>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIface {
    #[serde(default)]
    address: Option<S<String>>,
    #[serde(default)]
    addresses: Vec<S<String>>,
    #[serde(default)]
    label: Option<S<String>>,
    #[serde(default)]
    labels: Option<S<Vec<S<String>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLink {
    endpoints: S<Vec<S<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLan {
    members: Vec<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    director: S<String>,
    #[serde(default)]
    backup: Option<S<String>>,
    vip: S<String>,
    port: S<i64>,
    #[serde(default)]
    protocol: Option<S<String>>,
    scheduler: S<String>,
    method: S<String>,
    #[serde(default)]
    persistence: Option<S<i64>>,
    #[serde(default)]
    fwmark: Option<S<i64>>,
    #[serde(default)]
    vips: Option<S<Vec<S<String>>>>,
    real_servers: S<Vec<S<RawRealServer>>>,
    #[serde(default)]
    health: Option<S<RawHealth>>,
    #[serde(default)]
    vrrp: Option<S<RawVrrp>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVrrp {
    #[serde(default)]
    vrid: Option<S<i64>>,
    #[serde(default)]
    version: Option<S<i64>>,
    #[serde(default)]
    advert_int_ms: Option<S<i64>>,
    #[serde(default)]
    priority: Option<S<i64>>,
    #[serde(default)]
    backup_priority: Option<S<i64>>,
    #[serde(default)]
    preempt: Option<bool>,
    #[serde(default)]
    sync: Option<bool>,
    #[serde(default)]
    sync_id: Option<S<i64>>,
    #[serde(default)]
    keepalived: Option<S<Vec<S<String>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    #[serde(default)]
    check: Option<S<String>>,
    #[serde(default)]
    interval_ms: Option<S<i64>>,
    #[serde(default)]
    timeout_ms: Option<S<i64>>,
    #[serde(default)]
    retries: Option<S<i64>>,
    #[serde(default)]
    delay_before_retry_ms: Option<S<i64>>,
    #[serde(default)]
    inhibit_on_failure: Option<bool>,
    #[serde(default)]
    sorry_server: Option<S<String>>,
    #[serde(default)]
    path: Option<S<String>>,
    #[serde(default)]
    status: Option<S<i64>>,
    #[serde(default)]
    payload: Option<S<String>>,
    #[serde(default)]
    command: Option<S<Vec<String>>>,
    #[serde(default)]
    digest: Option<S<String>>,
    #[serde(default)]
    expect: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRealServer {
    node: S<String>,
    #[serde(default)]
    address: Option<S<String>>,
    #[serde(default)]
    port: Option<S<i64>>,
    #[serde(default)]
    weight: Option<S<i64>>,
    #[serde(default)]
    u_threshold: Option<S<i64>>,
    #[serde(default)]
    l_threshold: Option<S<i64>>,
}

// ---------------------------------------------------------------------------

impl Topology {
    /// Read, parse and validate a topology file.
    pub fn load(path: impl AsRef<Path>) -> Result<Topology, TopologyError> {
        Self::load_with_warnings(path).map(|(t, _)| t)
    }

    /// [`Topology::load`], also returning the warnings of a file that loaded.
    pub fn load_with_warnings(
        path: impl AsRef<Path>,
    ) -> Result<(Topology, Warnings), TopologyError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|error| TopologyError::Io {
            path: path.to_path_buf(),
            error,
        })?;
        Self::parse_with_warnings(path, text)
    }

    /// Parse and validate topology text; `path` names it in errors and gives the default lab name.
    pub fn parse(path: impl AsRef<Path>, text: String) -> Result<Topology, TopologyError> {
        Self::parse_with_warnings(path, text).map(|(t, _)| t)
    }

    /// [`Topology::parse`], also returning the warnings of text that validated.
    pub fn parse_with_warnings(
        path: impl AsRef<Path>,
        text: String,
    ) -> Result<(Topology, Warnings), TopologyError> {
        let src = Source::new(path, text);
        let raw: RawTopology = match toml::from_str(&src.text) {
            Ok(r) => r,
            Err(e) => {
                let span = e.span().unwrap_or(0..0);
                let msg = e.message().trim().to_string();
                let help = toml_help(&msg);
                let d = src.diag(span, msg, help);
                return Err(TopologyError::Invalid {
                    src: Box::new(src),
                    diagnostics: vec![d],
                });
            }
        };
        let mut v = Validator {
            src: &src,
            diags: Vec::new(),
            warnings: Vec::new(),
        };
        let topo = v.check(raw);
        if v.diags.is_empty() {
            let mut diagnostics = v.warnings;
            diagnostics.sort_by_key(|d| (d.span.start, d.span.end));
            diagnostics.dedup();
            let warnings = Warnings {
                src: Box::new(src),
                diagnostics,
            };
            Ok((topo, warnings))
        } else {
            let mut diags = v.diags;
            diags.sort_by_key(|d| (d.span.start, d.span.end));
            diags.dedup();
            Err(TopologyError::Invalid {
                src: Box::new(src),
                diagnostics: diags,
            })
        }
    }

    /// Resolve a topology name (looked up in `topologies/`) or a path, then load it.
    pub fn find(name_or_path: &str) -> Result<Topology, TopologyError> {
        Self::load(Self::locate(name_or_path)?)
    }

    /// [`Topology::find`], also returning the warnings of a file that loaded.
    pub fn find_with_warnings(name_or_path: &str) -> Result<(Topology, Warnings), TopologyError> {
        Self::load_with_warnings(Self::locate(name_or_path)?)
    }

    /// Resolve a topology name or path to a file path without loading it.
    pub fn locate(name_or_path: &str) -> Result<PathBuf, TopologyError> {
        let p = Path::new(name_or_path);
        if p.is_file() {
            return Ok(p.to_path_buf());
        }
        let file = if name_or_path.ends_with(".toml") {
            name_or_path.to_string()
        } else {
            format!("{name_or_path}.toml")
        };
        let mut tried = Vec::new();
        for dir in topology_dirs() {
            let cand = dir.join(&file);
            if cand.is_file() {
                return Ok(cand);
            }
            tried.push(cand.display().to_string());
        }
        let known = topology_dirs()
            .into_iter()
            .flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten())
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().to_string();
                n.strip_suffix(".toml").map(str::to_string)
            })
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
            .join(", ");
        Err(TopologyError::NotFound {
            name: name_or_path.to_string(),
            tried: tried.join(", "),
            known,
        })
    }

    /// The node with this name.
    pub fn node(&self, name: &str) -> Option<&NodeSpec> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Whether the lab asks for IPv6: any IPv6 interface address or VIP. Such a lab has
    /// IPv6 on in every node; any other stays IPv4-only, as its snapshots expect.
    pub fn has_ipv6(&self) -> bool {
        self.nodes
            .iter()
            .flat_map(|n| &n.interfaces)
            .flat_map(|i| &i.addresses)
            .any(|a| a.addr().is_ipv6())
            || self
                .services
                .iter()
                .flat_map(ServiceSpec::all_vips)
                .any(|v| v.is_ipv6())
    }

    /// VIPs a realserver must hold on `lo` (services with method dr or tun that name it).
    pub fn vips_on_lo(&self, node: &str) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = self
            .services
            .iter()
            .filter(|s| matches!(s.method, ForwardMethod::Dr | ForwardMethod::Tun))
            .filter(|s| s.real_servers.iter().any(|r| r.node == node))
            .flat_map(|s| s.all_vips())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// (protocol, port) pairs of the services that name `node` as a real server.
    pub fn served_ports(&self, node: &str) -> Vec<(Protocol, u16)> {
        let mut v: Vec<(Protocol, u16)> = self
            .services
            .iter()
            .flat_map(|s| {
                s.real_servers
                    .iter()
                    .filter(|r| r.node == node)
                    .map(|r| (s.protocol, r.port))
            })
            .collect();
        v.sort_by_key(|(p, port)| (*port, *p as u8));
        v.dedup();
        v
    }
}

/// Directories searched for bare topology names: `./topologies`, its ancestors' `topologies/`,
/// then the source tree this binary was built from.
pub fn topology_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        for a in cwd.ancestors() {
            let d = a.join("topologies");
            if d.is_dir() {
                dirs.push(d);
                break;
            }
        }
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../topologies");
    if let Ok(b) = built.canonicalize() {
        if !dirs
            .iter()
            .any(|d| d.canonicalize().ok().as_ref() == Some(&b))
        {
            dirs.push(b);
        }
    }
    dirs
}

fn toml_help(msg: &str) -> Option<String> {
    if msg.contains("unknown field") {
        Some("check the spelling; every field is listed in docs/topology.md".into())
    } else if msg.contains("missing field") {
        Some("add the field; docs/topology.md says what it means".into())
    } else if msg.contains("invalid type") {
        Some(
            "check the value's type against docs/topology.md (strings need quotes, numbers do not)"
                .into(),
        )
    } else {
        Some("this is not valid TOML here; compare with topologies/nat-topology.toml".into())
    }
}

/// A name usable in namespace and interface names.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && s.as_bytes()[0].is_ascii_alphanumeric()
}

/// How to fix an unknown scheduler name; scenario files give the same advice.
pub fn scheduler_help() -> String {
    format!(
        "use one of the ipvsadm schedulers: {}",
        Scheduler::ALL.map(|s| s.to_string()).join(" ")
    )
}

/// How to fix an unknown forwarding method; scenario files give the same advice.
pub const METHOD_HELP: &str = "method is \"nat\" (ipvsadm -m), \"dr\" (-g) or \"tun\" (-i)";

#[cfg(test)]
mod tests {
    use super::*;

    fn nat() -> String {
        std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../topologies/nat-topology.toml"),
        )
        .unwrap()
    }

    #[test]
    fn seed_nat_topology_loads() {
        let t = Topology::parse("nat-topology.toml", nat()).unwrap();
        assert_eq!(t.name, "nat-topology");
        assert_eq!(t.nodes.len(), 5);
        assert_eq!(t.nodes[0].name, "client");
        assert_eq!(t.services[0].real_servers.len(), 2);
        assert_eq!(t.served_ports("rs1"), vec![(Protocol::Tcp, 80)]);
        assert!(t.vips_on_lo("rs1").is_empty());
    }

    #[test]
    fn an_empty_file_is_a_located_error_with_a_fix() {
        let e = Topology::parse("e.toml", String::new()).unwrap_err();
        let d = &e.diagnostics()[0];
        assert_eq!((d.line, d.col), (1, 1));
        assert_eq!(d.message, "the topology declares no nodes");
        let shown = e.to_string();
        assert!(shown.contains("^") && shown.contains("help: "), "{shown}");
    }

    #[test]
    fn mistakes_survive_writing_the_topology_back() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../topologies/pitfall-dr-arp.toml");
        let (t, w) = Topology::load_with_warnings(&path).unwrap();
        assert_eq!(w.diagnostics().len(), 2, "{w}");
        let rs1 = t.node("rs1").unwrap();
        assert_eq!(rs1.mistakes, vec![Mistake::NoArpIgnore]);
        let back = Topology::parse("t.toml", t.to_toml().unwrap()).unwrap();
        assert_eq!(back.nodes, t.nodes);
        assert!(t.node("client").unwrap().mistakes.is_empty());
    }

    #[test]
    fn unknown_scheduler_is_located() {
        let text = nat().replace("scheduler = \"rr\"", "scheduler = \"roundrobin\"");
        let e = Topology::parse("t.toml", text.clone()).unwrap_err();
        let d = &e.diagnostics()[0];
        assert_eq!(d.message, "unknown scheduler \"roundrobin\"");
        let line = text.lines().position(|l| l.contains("roundrobin")).unwrap() + 1;
        assert_eq!(d.line, line);
        assert!(e.to_string().contains(&format!("t.toml:{line}:")), "{e}");
    }
}

#[cfg(test)]
mod several_addresses_tests {
    use super::*;

    fn shipped(name: &str) -> Topology {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../topologies/{name}.toml"));
        Topology::load(p).unwrap()
    }

    fn nat_with(client_iface: &str, service: &str) -> String {
        std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../topologies/nat-topology.toml"),
        )
        .unwrap()
        .replace(
            "interfaces.eth0 = { address = \"198.51.100.10/24\", label = \"CIP\" }",
            &format!("interfaces.eth0 = {client_iface}"),
        )
        .replace(
            "method = \"nat\"\n",
            &format!("method = \"nat\"\n{service}"),
        )
    }

    fn errors(client_iface: &str, service: &str) -> Vec<String> {
        let e = Topology::parse("t.toml", nat_with(client_iface, service)).unwrap_err();
        assert!(e.to_string().contains("help: "), "{e}");
        e.diagnostics().iter().map(|d| d.message.clone()).collect()
    }

    const TWO: &str = "{ addresses = [\"198.51.100.11/24\", \"198.51.100.12/24\"], labels = [\"CIP1\", \"CIP2\"] }";

    #[test]
    fn a_client_labels_each_of_its_addresses() {
        let t = shipped("nat-clients-topology");
        let eth0 = &t.nodes[0].interfaces[0];
        assert_eq!(eth0.addresses.len(), 6);
        assert_eq!(eth0.label.map(|l| l.to_string()).as_deref(), Some("CIP1"));
        let more: Vec<String> = eth0.more_labels.iter().map(|l| l.to_string()).collect();
        assert_eq!(more, ["CIP2", "CIP3", "CIP4", "CIP5", "CIP6"]);
        let t = Topology::parse("t.toml", nat_with(TWO, "")).unwrap();
        assert_eq!(t.nodes[0].interfaces[0].more_labels.len(), 1);
    }

    #[test]
    fn a_dual_stack_lab_labels_both_families_and_asks_for_ipv6() {
        let t = shipped("nat6-topology");
        assert!(t.has_ipv6());
        assert!(!shipped("nat-topology").has_ipv6());
        let eth0 = &t.nodes[0].interfaces[0];
        assert_eq!(eth0.addresses.len(), 2);
        assert_eq!(eth0.label.map(|l| l.to_string()).as_deref(), Some("CIP"));
        let more: Vec<String> = eth0.more_labels.iter().map(|l| l.to_string()).collect();
        assert_eq!(more, ["CIP"]);
        let v6 = &t.services[1];
        assert_eq!(
            v6.to_string(),
            "TCP [2001:db8:1::250]:80 rr nat on director -> rs1 [2001:db8:1::201]:80 w1, rs2 [2001:db8:1::203]:80 w1"
        );
        // Real servers without `address` take the one of the VIP's family.
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../topologies/dr6-topology.toml"),
        )
        .unwrap()
        .replace("address = \"2001:db8:1::201\", ", "");
        let t = Topology::parse("t.toml", text).unwrap();
        assert_eq!(
            t.services[1].real_servers[0].address.to_string(),
            "2001:db8:1::201"
        );
        assert_eq!(
            t.vips_on_lo("rs1")
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>(),
            ["192.168.1.250", "2001:db8:1::250"]
        );
        let back = Topology::parse("t.toml", t.to_toml().unwrap()).unwrap();
        assert_eq!(back.nodes, t.nodes);
    }

    #[test]
    fn bad_labels_lists_are_located() {
        assert_eq!(
            errors(
                "{ addresses = [\"198.51.100.11/24\", \"198.51.100.12/24\"], labels = [\"CIP1\"] }",
                ""
            ),
            ["1 labels for 2 addresses on node client"]
        );
        assert_eq!(
            errors(
                "{ address = \"198.51.100.11/24\", label = \"CIP\", labels = [\"CIP1\"] }",
                ""
            ),
            ["an interface has `label` or `labels`, not both"]
        );
        assert_eq!(
            errors(
                "{ address = \"198.51.100.11/24\", labels = [\"RIP1\"] }",
                ""
            ),
            ["label RIP1 belongs on a realserver, but node client is a client"]
        );
    }

    #[test]
    fn a_firewall_mark_service_covers_its_vips() {
        let t = shipped("nat-cache-topology");
        let s = &t.services[0];
        assert_eq!(s.fwmark, Some(1));
        let all: Vec<String> = s.all_vips().iter().map(|v| v.to_string()).collect();
        assert_eq!(all, ["192.168.1.250", "192.168.1.249", "192.168.1.251"]);
        // Plain services have no mark and one VIP.
        let plain = shipped("nat-topology");
        assert_eq!(
            (plain.services[0].fwmark, plain.services[0].all_vips().len()),
            (None, 1)
        );
    }

    /// nat6-topology with its IPv6 service given `extra` (fwmark, vips) after its VIP.
    fn nat6_fwmark(extra: &str) -> Result<Topology, crate::topology::TopologyError> {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../topologies/nat6-topology.toml"),
        )
        .unwrap()
        .replace(
            "vip = \"2001:db8:1::250\"\n",
            &format!("vip = \"2001:db8:1::250\"\n{extra}"),
        );
        Topology::parse("t.toml", text)
    }

    #[test]
    fn an_ipv6_firewall_mark_service_covers_its_ipv6_vips() {
        let t = nat6_fwmark("fwmark = 6\nvips = [\"2001:db8:1::249\"]\n").unwrap();
        let s = t.services.iter().find(|s| s.vip.is_ipv6()).unwrap();
        assert_eq!(s.fwmark, Some(6));
        let all: Vec<String> = s.all_vips().iter().map(|v| v.to_string()).collect();
        assert_eq!(all, ["2001:db8:1::250", "2001:db8:1::249"]);
        let msgs = |extra: &str| -> Vec<String> {
            let e = nat6_fwmark(extra).unwrap_err();
            assert!(e.to_string().contains("help: "), "{e}");
            e.diagnostics().iter().map(|d| d.message.clone()).collect()
        };
        assert_eq!(
            msgs("fwmark = 6\nvips = [\"192.168.1.249\"]\n"),
            ["VIP 192.168.1.249 is not IPv6 like vip 2001:db8:1::250"]
        );
        assert_eq!(
            msgs("fwmark = 6\nvips = [\"fd00::249\"]\n"),
            ["IPv6 VIP fd00::249 is outside the documentation prefix 2001:db8::/32"]
        );
        assert_eq!(
            msgs("fwmark = 6\nvips = [\"2001:db8:1::250\"]\n"),
            ["VIP 2001:db8:1::250 is listed twice"]
        );
        assert_eq!(
            msgs("fwmark = 6\nvips = [\"2001:db8:1::201\"]\n"),
            ["VIP 2001:db8:1::201 is the interface address of rs1:eth0 (line 50)"]
        );
    }

    #[test]
    fn bad_firewall_mark_services_are_located() {
        let plain = "{ address = \"198.51.100.10/24\", label = \"CIP\" }";
        assert_eq!(
            errors(plain, "vips = [\"192.168.1.251\"]\n"),
            ["`vips` without `fwmark`"]
        );
        assert_eq!(errors(plain, "fwmark = 0\n"), ["fwmark 0 is out of range"]);
        assert_eq!(
            errors(plain, "fwmark = 1\nvips = [\"192.168.1.250\"]\n"),
            ["VIP 192.168.1.250 is listed twice"]
        );
        assert_eq!(
            errors(plain, "fwmark = 1\nvips = [\"192.168.1.300\"]\n"),
            ["bad VIP \"192.168.1.300\""]
        );
        // One family per firewall-mark service, as the kernel keys (af, mark).
        assert_eq!(
            errors(plain, "fwmark = 1\nvips = [\"2001:db8:1::249\"]\n"),
            ["VIP 2001:db8:1::249 is not IPv4 like vip 192.168.1.250"]
        );
        assert_eq!(
            errors(plain, "fwmark = 1\nvips = [\"192.168.1.201\"]\n"),
            ["VIP 192.168.1.201 is the interface address of rs1:eth0 (line 36)"]
        );
        assert_eq!(
            errors(plain, "fwmark = 1\nhealth = { check = \"tcp\" }\n"),
            ["a firewall-mark service with health checks is not supported"]
        );
    }
}

#[cfg(test)]
mod health_tests {
    use super::*;

    fn nat_with(health: &str) -> String {
        std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../topologies/nat-topology.toml"),
        )
        .unwrap()
        .replace(
            "method = \"nat\"\n",
            &format!("method = \"nat\"\nhealth = {health}\n"),
        )
    }

    #[test]
    fn health_defaults_and_round_trip() {
        let t = Topology::parse("t.toml", nat_with("{ check = \"tcp\" }")).unwrap();
        let h = t.services[0].health.clone().unwrap();
        assert_eq!(h.check, HealthCheck::Tcp);
        assert_eq!(
            (
                h.interval_ms,
                h.timeout_ms,
                h.retries,
                h.delay_before_retry_ms
            ),
            (1000, 500, 1, 200)
        );
        assert!(!h.inhibit_on_failure && h.sorry_server.is_none());
        let full = "{ check = \"http\", path = \"/ok\", status = 204, digest = \"7A6C0D2EF5A9E6E1776090916C66BA3A\", interval_ms = 200, retries = 2, inhibit_on_failure = true, sorry_server = \"192.168.1.210:80\" }";
        let t = Topology::parse("t.toml", nat_with(full)).unwrap();
        let back = Topology::parse("t.toml", t.to_toml().unwrap()).unwrap();
        assert_eq!(back.services, t.services);
        let h = back.services[0].health.clone().unwrap();
        assert_eq!(
            h.check,
            HealthCheck::Http {
                path: "/ok".into(),
                status: 204,
                digest: Some("7a6c0d2ef5a9e6e1776090916c66ba3a".into())
            }
        );
        let udp = "{ check = \"udp\", payload = \"ping\", expect = \"rs1\" }";
        let t = Topology::parse("t.toml", nat_with(udp)).unwrap();
        assert_eq!(
            t.services[0].health.as_ref().map(|h| h.check.clone()),
            Some(HealthCheck::Udp {
                payload: "ping".into(),
                expect: Some("rs1".into())
            })
        );
        assert!(h.inhibit_on_failure);
        let json = serde_json::to_string(&t).unwrap();
        let again: Topology = serde_json::from_str(&json).unwrap();
        assert_eq!(again, t);
    }

    fn errors(health: &str) -> Vec<String> {
        let e = Topology::parse("t.toml", nat_with(health)).unwrap_err();
        let shown = e.to_string();
        assert!(
            shown.contains("t.toml:") && shown.contains("help: "),
            "{shown}"
        );
        e.diagnostics().iter().map(|d| d.message.clone()).collect()
    }

    #[test]
    fn bad_health_tables_are_located() {
        assert_eq!(
            errors("{ check = \"ping\" }"),
            ["unknown health check \"ping\""]
        );
        assert_eq!(
            errors("{ check = \"tcp\", interval_ms = 0 }"),
            ["interval_ms 0 is out of range"]
        );
        assert_eq!(
            errors("{ timeout_ms = 86400000 }"),
            ["timeout_ms 86400000 is out of range"]
        );
        assert_eq!(
            errors("{ check = \"tcp\", path = \"/\" }"),
            ["`path` does not apply to a tcp check"]
        );
        assert_eq!(
            errors("{ check = \"command\" }"),
            ["a command check needs a program to run"]
        );
        assert_eq!(
            errors("{ check = \"http\", status = 42 }"),
            ["HTTP status 42 is out of range"]
        );
        assert_eq!(
            errors("{ sorry_server = \"nowhere\" }"),
            ["bad sorry_server \"nowhere\""]
        );
        assert_eq!(errors("{ retries = -1 }"), ["retries -1 is out of range"]);
        assert_eq!(
            errors("{ check = \"http\", digest = \"abc\" }"),
            ["bad digest \"abc\""]
        );
        assert_eq!(
            errors("{ check = \"tcp\", expect = \"rs1\" }"),
            ["`expect` does not apply to a tcp check"]
        );
        let e = Topology::parse("t.toml", nat_with("{ check = \"ping\" }")).unwrap_err();
        let d = &e.diagnostics()[0];
        let line = nat_with("{ check = \"ping\" }")
            .lines()
            .position(|l| l.contains("ping"))
            .unwrap()
            + 1;
        assert_eq!(d.line, line);
    }
}
