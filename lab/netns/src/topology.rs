//! Topology files: parse (serde + toml, keeping spans), validate, and the checked model.
//!
//! The file format is documented field by field in `docs/topology.md`.
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::diag::{Diagnostic, Source};
use crate::label::{Label, LABEL_HELP};

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
}

/// One interface of a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IfaceSpec {
    /// Interface name inside the node, e.g. `eth0`.
    pub name: String,
    /// Addresses with prefix length.
    pub addresses: Vec<IpNet>,
    /// Role label from the LVS docs, e.g. `CIP`, `DIP`, `RIP1`.
    pub label: Option<Label>,
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
    /// Real servers in file order.
    pub real_servers: Vec<RealServerSpec>,
}

impl fmt::Display for ServiceSpec {
    /// One line, e.g. `TCP 192.168.1.250:80 rr nat on director -> rs1 192.168.1.201:80 w1, ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}:{} {} {} on {} ->",
            self.protocol,
            self.vip,
            self.port,
            self.scheduler,
            self.method.word(),
            self.director
        )?;
        for (i, r) in self.real_servers.iter().enumerate() {
            let sep = if i == 0 { " " } else { ", " };
            write!(f, "{sep}{} {}:{} w{}", r.node, r.address, r.port, r.weight)?;
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
    #[error("{}", render(.src, .diagnostics))]
    Invalid {
        /// The file text.
        src: Box<Source>,
        /// All problems, in file order.
        diagnostics: Vec<Diagnostic>,
    },
}

fn render(src: &Source, diags: &[Diagnostic]) -> String {
    let mut s: String = diags
        .iter()
        .map(|d| src.render(d))
        .collect::<Vec<_>>()
        .join("\n");
    if diags.len() > 1 {
        s.push_str(&format!(
            "\n{} errors in {}",
            diags.len(),
            src.path.display()
        ));
    }
    s.trim_end().to_string()
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
    real_servers: S<Vec<S<RawRealServer>>>,
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
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|error| TopologyError::Io {
            path: path.to_path_buf(),
            error,
        })?;
        Self::parse(path, text)
    }

    /// Parse and validate topology text; `path` names it in errors and gives the default lab name.
    pub fn parse(path: impl AsRef<Path>, text: String) -> Result<Topology, TopologyError> {
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
        };
        let topo = v.check(raw);
        if v.diags.is_empty() {
            Ok(topo)
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

    /// VIPs a realserver must hold on `lo` (services with method dr or tun that name it).
    pub fn vips_on_lo(&self, node: &str) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = self
            .services
            .iter()
            .filter(|s| matches!(s.method, ForwardMethod::Dr | ForwardMethod::Tun))
            .filter(|s| s.real_servers.iter().any(|r| r.node == node))
            .map(|s| s.vip)
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

struct Validator<'a> {
    src: &'a Source,
    diags: Vec<Diagnostic>,
}

/// Where an address was assigned, for duplicate detection and route checks.
struct Assigned {
    node: String,
    iface: String,
    net: IpNet,
    span: Range<usize>,
}

impl Validator<'_> {
    fn err(&mut self, span: Range<usize>, msg: impl Into<String>, help: impl Into<String>) {
        let d = self.src.diag(span, msg, Some(help.into()));
        self.diags.push(d);
    }

    fn line_of(&self, span: &Range<usize>) -> usize {
        self.src.line_col(span.start).0
    }

    fn check(&mut self, raw: RawTopology) -> Topology {
        let name = self
            .src
            .path
            .file_stem()
            .map_or_else(|| "lab".to_string(), |s| s.to_string_lossy().to_string());
        let mut nodes_raw: Vec<(S<String>, S<RawNode>)> = raw.nodes.into_iter().collect();
        nodes_raw.sort_by_key(|(k, _)| k.span().start);

        let mut nodes = Vec::new();
        let mut assigned: Vec<Assigned> = Vec::new();
        let mut node_spans: HashMap<String, Range<usize>> = HashMap::new();
        let mut route_spans: HashMap<String, Option<Range<usize>>> = HashMap::new();
        let mut iface_spans: HashMap<(String, String), Range<usize>> = HashMap::new();
        let mut route_items: Vec<(String, S<String>)> = Vec::new();

        for (key, node) in nodes_raw {
            let nname = key.get_ref().clone();
            if !valid_name(&nname) {
                self.err(
                    key.span(),
                    format!("node name {nname:?} cannot be used in namespace names"),
                    "use lower-case letters, digits, '-' or '_' (at most 32 characters), starting with a letter or digit",
                );
            }
            if nname == "sw" {
                self.err(
                    key.span(),
                    "node name \"sw\" is reserved for the lab's hidden switch namespace",
                    "rename the node, e.g. switch1 or host1",
                );
            }
            node_spans.insert(nname.clone(), key.span());
            let node = node.into_inner();
            let role = match Role::ALL.iter().find(|(n, _)| *n == node.role.get_ref()) {
                Some((_, r)) => *r,
                None => {
                    self.err(
                        node.role.span(),
                        format!("unknown role {:?} for node {nname}", node.role.get_ref()),
                        "role is one of: client, router, director, realserver, host",
                    );
                    Role::Host
                }
            };
            let mut interfaces = Vec::new();
            let mut any_v6 = false;
            for (ikey, iface) in node.interfaces {
                let iname = ikey.get_ref().clone();
                iface_spans.insert((nname.clone(), iname.clone()), ikey.span());
                if iname.is_empty()
                    || iname.len() > 15
                    || iname == "lo"
                    || !iname
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
                {
                    self.err(
                        ikey.span(),
                        format!("interface name {iname:?} is not a usable Linux interface name"),
                        "use 1 to 15 letters, digits, '-', '_' or '.', e.g. eth0 (and not lo)",
                    );
                }
                let iface = iface.into_inner();
                let mut addrs_raw: Vec<S<String>> = iface.address.into_iter().collect();
                addrs_raw.extend(iface.addresses);
                let mut addresses = Vec::new();
                for a in addrs_raw {
                    match parse_cidr(a.get_ref()) {
                        Ok(net) => {
                            any_v6 |= net.addr().is_ipv6();
                            if let Some(prev) = assigned.iter().find(|p| p.net.addr() == net.addr())
                            {
                                let line = self.line_of(&prev.span);
                                self.err(
                                    a.span(),
                                    format!("duplicate address {}: already on {}:{} (line {line})", net.addr(), prev.node, prev.iface),
                                    "every interface address must be unique in the lab; pick a free one",
                                );
                            } else {
                                assigned.push(Assigned {
                                    node: nname.clone(),
                                    iface: iname.clone(),
                                    net,
                                    span: a.span(),
                                });
                            }
                            addresses.push(net);
                        }
                        Err(help) => {
                            self.err(a.span(), format!("bad CIDR {:?}", a.get_ref()), help)
                        }
                    }
                }
                let label = iface.label.and_then(|l| self.label(&l, &nname, role));
                interfaces.push(IfaceSpec {
                    name: iname,
                    addresses,
                    label,
                });
            }
            let routes_span = node.routes.as_ref().map(|r| r.span());
            route_spans.insert(nname.clone(), routes_span);
            for r in node.routes.map(|r| r.into_inner()).unwrap_or_default() {
                route_items.push((nname.clone(), r));
            }
            let mut sysctls = Vec::new();
            for (k, val) in node.sysctls {
                let key = k.get_ref().clone();
                if !key.starts_with("net.") || key.contains("..") || key.contains('/') {
                    self.err(
                        k.span(),
                        format!("sysctl {key:?} is not a per-namespace network sysctl"),
                        "only net.* keys can be set in a lab namespace, e.g. \"net.ipv4.ip_forward\" = 1",
                    );
                }
                let v = match val.get_ref() {
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::String(s) => s.clone(),
                    toml::Value::Boolean(b) => u8::from(*b).to_string(),
                    _ => {
                        self.err(
                            val.span(),
                            format!("sysctl {key} needs a number or a string"),
                            "write e.g. \"net.ipv4.conf.all.rp_filter\" = 0",
                        );
                        continue;
                    }
                };
                sysctls.push((key, v));
            }
            let serve = node.serve.unwrap_or(true);
            nodes.push(NodeSpec {
                name: nname,
                role,
                interfaces,
                routes: Vec::new(),
                sysctls,
                serve,
                ipv6: node.ipv6.unwrap_or(false) || any_v6,
            });
        }

        // Routes: the gateway must sit on a subnet of one of the node's own interfaces.
        for (nname, r) in route_items {
            let route = match parse_route(r.get_ref()) {
                Ok(route) => route,
                Err(help) => {
                    self.err(
                        r.span(),
                        format!("cannot read route {:?}", r.get_ref()),
                        help,
                    );
                    continue;
                }
            };
            let own: Vec<&Assigned> = assigned.iter().filter(|a| a.node == nname).collect();
            let on_subnet = own
                .iter()
                .any(|a| a.net.contains(&route.via) && a.net.addr() != route.via);
            if !on_subnet {
                let subnets: Vec<String> = own.iter().map(|a| a.net.trunc().to_string()).collect();
                self.err(
                    r.span(),
                    format!(
                        "gateway {} of node {nname} is not on any subnet attached to it",
                        route.via
                    ),
                    if subnets.is_empty() {
                        "give the node an interface address on the gateway's subnet first"
                            .to_string()
                    } else {
                        format!(
                            "use a gateway inside one of {} (another node's address there)",
                            subnets.join(", ")
                        )
                    },
                );
            }
            if let Some(n) = nodes.iter_mut().find(|n| n.name == nname) {
                n.routes.push(route);
            }
        }

        // Links and LANs: every endpoint names a real node:iface, each used once.
        let mut used: HashMap<Endpoint, usize> = HashMap::new();
        let mut links = Vec::new();
        for link in raw.links {
            let link_span = link.span();
            let eps = link.into_inner().endpoints;
            if eps.get_ref().len() != 2 {
                self.err(
                    eps.span(),
                    format!(
                        "a link joins exactly 2 endpoints, this one lists {}",
                        eps.get_ref().len()
                    ),
                    "write endpoints = [\"a:eth0\", \"b:eth0\"]; use [lans.NAME] for more than two",
                );
                continue;
            }
            let mut out = Vec::new();
            for e in eps.into_inner() {
                if let Some(ep) = self.endpoint(&e, &nodes, &mut used) {
                    out.push(ep);
                }
            }
            if let Ok([a, b]) = <[Endpoint; 2]>::try_from(out) {
                if a.node == b.node {
                    self.err(
                        link_span,
                        format!("link joins node {} to itself", a.node),
                        "a veth link joins two different nodes",
                    );
                }
                links.push(LinkSpec { endpoints: [a, b] });
            }
        }
        let mut lans = Vec::new();
        let mut lans_raw: Vec<(S<String>, S<RawLan>)> = raw.lans.into_iter().collect();
        lans_raw.sort_by_key(|(k, _)| k.span().start);
        for (key, lan) in lans_raw {
            let lname = key.get_ref().clone();
            if !valid_name(&lname) || lname.len() > 15 {
                self.err(
                    key.span(),
                    format!("LAN name {lname:?} cannot name a bridge"),
                    "use at most 15 lower-case letters, digits, '-' or '_'",
                );
            }
            let mut members = Vec::new();
            for m in lan.into_inner().members {
                if let Some(ep) = self.endpoint(&m, &nodes, &mut used) {
                    members.push(ep);
                }
            }
            lans.push(LanSpec {
                name: lname,
                members,
            });
        }
        // Interfaces nobody attached would silently stay down (not reported when an endpoint
        // was already wrong: that error is the cause).
        let wiring_ok = self.diags.is_empty();
        for n in nodes.iter().filter(|_| wiring_ok) {
            for i in &n.interfaces {
                let ep = Endpoint {
                    node: n.name.clone(),
                    iface: i.name.clone(),
                };
                if !used.contains_key(&ep) {
                    if let Some(span) = iface_spans.get(&(n.name.clone(), i.name.clone())) {
                        self.err(span.clone(), format!("interface {ep} is not attached to any link or LAN"), format!("add \"{ep}\" to a [[links]] endpoints list or a [lans.NAME] members list, or remove the interface"));
                    }
                }
            }
        }

        let services: Vec<ServiceSpec> = raw
            .services
            .into_iter()
            .filter_map(|s| self.service(s.into_inner(), &nodes, &assigned))
            .collect();

        // Path back to the client: replies must leave the real server the right way.
        for svc in &services {
            for rs in &svc.real_servers {
                let Some(node) = nodes.iter().find(|n| n.name == rs.node) else {
                    continue;
                };
                let default = node
                    .routes
                    .iter()
                    .find(|r| r.dest.is_none() && r.via.is_ipv4() == svc.vip.is_ipv4());
                let gw_owner =
                    default.and_then(|r| assigned.iter().find(|a| a.net.addr() == r.via));
                let ok = match svc.method {
                    ForwardMethod::Nat => gw_owner.is_some_and(|a| {
                        a.node == svc.director || Some(&a.node) == svc.backup.as_ref()
                    }),
                    ForwardMethod::Dr | ForwardMethod::Tun => gw_owner
                        .and_then(|a| nodes.iter().find(|n| n.name == a.node))
                        .is_some_and(|n| n.role == Role::Router),
                };
                if ok {
                    continue;
                }
                let span = route_spans
                    .get(&rs.node)
                    .cloned()
                    .flatten()
                    .or_else(|| node_spans.get(&rs.node).cloned())
                    .unwrap_or(0..0);
                let rs_nets: Vec<IpNet> = assigned
                    .iter()
                    .filter(|a| a.node == rs.node)
                    .map(|a| a.net)
                    .collect();
                let want = assigned
                    .iter()
                    .filter(|a| match svc.method {
                        ForwardMethod::Nat => a.node == svc.director,
                        _ => nodes
                            .iter()
                            .any(|n| n.name == a.node && n.role == Role::Router),
                    })
                    .find(|a| rs_nets.iter().any(|n| n.contains(&a.net.addr())));
                let (what, fix) = match svc.method {
                    ForwardMethod::Nat => (
                        "NAT replies must go back through the director's DIP",
                        "the director",
                    ),
                    _ => (
                        "DR/TUN replies go straight to the client, through a router",
                        "a router",
                    ),
                };
                let found = match default {
                    None => "it has no default route".to_string(),
                    Some(r) => format!("its default route goes via {}", r.via),
                };
                let help = match want {
                    Some(a) => format!(
                        "set routes = [\"default via {}\"] on {} ({}'s address on its subnet)",
                        a.net.addr(),
                        rs.node,
                        a.node
                    ),
                    None => format!(
                        "put {} and {fix} on a common subnet and route {}'s default via {fix}",
                        rs.node, rs.node
                    ),
                };
                self.err(span, format!("real server {} has no path back to the client for {} service {}:{}: {found}; {what}", rs.node, svc.method.word(), svc.vip, svc.port), help);
            }
        }

        Topology {
            name,
            path: self.src.path.clone(),
            description: raw.description.unwrap_or_default(),
            nodes,
            links,
            lans,
            services,
        }
    }

    fn endpoint(
        &mut self,
        e: &S<String>,
        nodes: &[NodeSpec],
        used: &mut HashMap<Endpoint, usize>,
    ) -> Option<Endpoint> {
        let Some((n, i)) = e.get_ref().split_once(':') else {
            self.err(
                e.span(),
                format!("endpoint {:?} is not NODE:IFACE", e.get_ref()),
                "write it like \"rs1:eth0\"",
            );
            return None;
        };
        let Some(node) = nodes.iter().find(|x| x.name == n) else {
            let names: Vec<&str> = nodes.iter().map(|x| x.name.as_str()).collect();
            self.err(
                e.span(),
                format!("unknown node {n:?}"),
                format!("declare [nodes.{n}] or use one of: {}", names.join(", ")),
            );
            return None;
        };
        if !node.interfaces.iter().any(|x| x.name == i) {
            let names: Vec<&str> = node.interfaces.iter().map(|x| x.name.as_str()).collect();
            self.err(
                e.span(),
                format!("unknown interface {i:?} on node {n}"),
                if names.is_empty() {
                    format!("add interfaces.{i} = {{ address = \"...\" }} under [nodes.{n}]")
                } else {
                    format!(
                        "node {n} has: {}; or add interfaces.{i} under [nodes.{n}]",
                        names.join(", ")
                    )
                },
            );
            return None;
        }
        let ep = Endpoint {
            node: n.to_string(),
            iface: i.to_string(),
        };
        if let Some(prev) = used.get(&ep) {
            let line = self.src.line_col(*prev).0;
            self.err(e.span(), format!("interface {ep} is already attached (line {line})"), "an interface joins one link or one LAN; add another interface for a second attachment");
            return None;
        }
        used.insert(ep.clone(), e.span().start);
        Some(ep)
    }

    fn node_of_role(
        &mut self,
        s: &S<String>,
        nodes: &[NodeSpec],
        role: Role,
        what: &str,
    ) -> Option<String> {
        match nodes.iter().find(|n| n.name == *s.get_ref()) {
            None => {
                let cands: Vec<&str> = nodes
                    .iter()
                    .filter(|n| n.role == role)
                    .map(|n| n.name.as_str())
                    .collect();
                self.err(
                    s.span(),
                    format!("unknown node {:?} as {what}", s.get_ref()),
                    format!("name a node with role = \"{role}\": {}", cands.join(", ")),
                );
                None
            }
            Some(n) if n.role != role => {
                self.err(
                    s.span(),
                    format!(
                        "node {} is a {}, not a {role}, so it cannot be the {what}",
                        n.name, n.role
                    ),
                    format!(
                        "set role = \"{role}\" on [nodes.{}] or name another node",
                        n.name
                    ),
                );
                None
            }
            Some(n) => Some(n.name.clone()),
        }
    }

    /// A typed label that fits the node's role (a RIP on a real server, a DIP on a director).
    fn label(&mut self, l: &S<String>, node: &str, role: Role) -> Option<Label> {
        let Ok(label) = l.get_ref().parse::<Label>() else {
            self.err(
                l.span(),
                format!("unknown address label {:?} on node {node}", l.get_ref()),
                LABEL_HELP,
            );
            return None;
        };
        match label.role.node_role() {
            Some(want) if want != role && role != Role::Host => {
                self.err(
                    l.span(),
                    format!("label {label} belongs on a {want}, but node {node} is a {role}"),
                    format!("use the label of a {role}'s address, or set role = \"{want}\""),
                );
                None
            }
            _ => Some(label),
        }
    }

    fn port(&mut self, p: &S<i64>, what: &str) -> Option<u16> {
        match u16::try_from(*p.get_ref()) {
            Ok(v) if v > 0 => Some(v),
            _ => {
                self.err(
                    p.span(),
                    format!("{what} {} is out of range", p.get_ref()),
                    "a port is 1 to 65535",
                );
                None
            }
        }
    }

    fn u32_field(&mut self, p: &Option<S<i64>>, what: &str, default: u32) -> u32 {
        match p {
            None => default,
            Some(v) => match u32::try_from(*v.get_ref()) {
                Ok(x) => x,
                Err(_) => {
                    self.err(
                        v.span(),
                        format!("{what} {} is out of range", v.get_ref()),
                        format!("{what} is a whole number from 0 to {}", u32::MAX),
                    );
                    default
                }
            },
        }
    }

    fn service(
        &mut self,
        s: RawService,
        nodes: &[NodeSpec],
        assigned: &[Assigned],
    ) -> Option<ServiceSpec> {
        let before = self.diags.len();
        let director = self.node_of_role(&s.director, nodes, Role::Director, "director");
        let backup = s
            .backup
            .as_ref()
            .and_then(|b| self.node_of_role(b, nodes, Role::Director, "backup director"));
        let vip = match IpAddr::from_str(s.vip.get_ref()) {
            Ok(v) => Some(v),
            Err(_) => {
                self.err(
                    s.vip.span(),
                    format!("bad VIP {:?}", s.vip.get_ref()),
                    "write a plain address without prefix, e.g. \"192.168.1.250\"",
                );
                None
            }
        };
        let port = self.port(&s.port, "service port");
        let protocol = match s.protocol.as_ref().map(|p| p.get_ref().as_str()) {
            None | Some("tcp") => Protocol::Tcp,
            Some("udp") => Protocol::Udp,
            Some(other) => {
                let span = s.protocol.as_ref().map_or(0..0, |p| p.span());
                self.err(
                    span,
                    format!("unknown protocol {other:?}"),
                    "protocol is \"tcp\" or \"udp\"",
                );
                Protocol::Tcp
            }
        };
        let scheduler = match s.scheduler.get_ref().parse::<Scheduler>() {
            Ok(k) => k,
            Err(_) => {
                self.err(
                    s.scheduler.span(),
                    format!("unknown scheduler {:?}", s.scheduler.get_ref()),
                    scheduler_help(),
                );
                Scheduler::Wlc
            }
        };
        let method = match s.method.get_ref().parse::<ForwardMethod>() {
            Ok(m) => m,
            Err(_) => {
                self.err(
                    s.method.span(),
                    format!("unknown forwarding method {:?}", s.method.get_ref()),
                    METHOD_HELP,
                );
                ForwardMethod::Nat
            }
        };
        let persistence = s
            .persistence
            .as_ref()
            .map(|_| self.u32_field(&s.persistence, "persistence", 360));
        let mut real_servers = Vec::new();
        for r in s.real_servers.into_inner() {
            let r_span = r.span();
            let r = r.into_inner();
            let Some(node) = self.node_of_role(&r.node, nodes, Role::Realserver, "real server")
            else {
                continue;
            };
            let own: Vec<IpAddr> = assigned
                .iter()
                .filter(|a| a.node == node)
                .map(|a| a.net.addr())
                .collect();
            let address = match &r.address {
                Some(a) => match IpAddr::from_str(a.get_ref()) {
                    Ok(ip) if own.contains(&ip) => Some(ip),
                    Ok(ip) => {
                        let owned: Vec<String> = own.iter().map(ToString::to_string).collect();
                        self.err(
                            a.span(),
                            format!("address {ip} is not on node {node}"),
                            format!("use one of {node}'s addresses: {}", owned.join(", ")),
                        );
                        None
                    }
                    Err(_) => {
                        self.err(
                            a.span(),
                            format!("bad address {:?}", a.get_ref()),
                            "write a plain address without prefix, e.g. \"192.168.1.201\"",
                        );
                        None
                    }
                },
                None => {
                    let want_v4 = vip.is_none_or(|v| v.is_ipv4());
                    let found = own.iter().find(|ip| ip.is_ipv4() == want_v4).copied();
                    if found.is_none() {
                        self.err(
                            r_span.clone(),
                            format!("real server {node} has no address to use"),
                            "give it address = \"...\" or an interface address",
                        );
                    }
                    found
                }
            };
            let rport = match &r.port {
                Some(p) => self.port(p, "real server port"),
                None => port,
            };
            let weight = self.u32_field(&r.weight, "weight", 1);
            let u_threshold = self.u32_field(&r.u_threshold, "u_threshold", 0);
            let l_threshold = self.u32_field(&r.l_threshold, "l_threshold", 0);
            if let (Some(address), Some(port)) = (address, rport) {
                real_servers.push(RealServerSpec {
                    node,
                    address,
                    port,
                    weight,
                    u_threshold,
                    l_threshold,
                });
            }
        }
        if self.diags.len() != before {
            return None;
        }
        Some(ServiceSpec {
            director: director?,
            backup,
            vip: vip?,
            port: port?,
            protocol,
            scheduler,
            method,
            persistence,
            real_servers,
        })
    }
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

fn parse_cidr(s: &str) -> Result<IpNet, String> {
    if !s.contains('/') {
        return Err(format!("add a prefix length, e.g. \"{s}/24\""));
    }
    IpNet::from_str(s).map_err(|_| {
        "write an address with prefix length, e.g. \"192.168.1.201/24\" or \"2001:db8::1/64\""
            .to_string()
    })
}

fn parse_route(s: &str) -> Result<RouteSpec, String> {
    let words: Vec<&str> = s.split_whitespace().collect();
    let help = "write \"default via 192.168.1.202\" or \"10.0.0.0/8 via 192.168.1.1\"".to_string();
    let [dest, "via", gw] = words.as_slice() else {
        return Err(help);
    };
    let via = IpAddr::from_str(gw).map_err(|_| help.clone())?;
    let dest = if *dest == "default" {
        None
    } else {
        let net = IpNet::from_str(dest).map_err(|_| help.clone())?;
        if matches!(net, IpNet::V4(_)) != via.is_ipv4() {
            return Err("destination and gateway must both be IPv4 or both IPv6".into());
        }
        Some(net.trunc())
    };
    Ok(RouteSpec { dest, via })
}

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
