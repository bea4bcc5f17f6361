//! What a diagram shows, independent of the output format: boxes with text lines, the
//! wiring between them and the service notes. Every renderer draws this same model so the
//! three formats never disagree on content.
use std::net::{IpAddr, SocketAddr};

use lvslab_netns::{ForwardMethod, LabState, Protocol, Role, Topology};

/// A node box: its lines of text, the first being `name  [role]`.
pub(crate) struct NodeBox {
    pub name: String,
    pub role: Role,
    pub lines: Vec<Line>,
}

/// One line of a node box; `iface` is set on the line wires attach to.
pub(crate) struct Line {
    pub text: String,
    pub iface: Option<String>,
}

/// One end of a wire: a node (index into `Model::nodes`) and its interface.
#[derive(Clone)]
pub(crate) struct End {
    pub node: usize,
    pub iface: String,
}

/// A LAN (bridge) and its members.
pub(crate) struct Lan {
    pub name: String,
    pub members: Vec<End>,
}

/// A service note.
pub(crate) struct Svc {
    /// `VIP 192.168.1.250:80 tcp rr nat`.
    pub headline: String,
    /// Who balances it, the real servers, the method in words.
    pub lines: Vec<String>,
    /// Director node indices with `MASTER`/`BACKUP` when the service has a pair.
    pub directors: Vec<(usize, Option<&'static str>)>,
    /// Real-server node indices.
    pub reals: Vec<usize>,
    /// `nat`, `dr` or `tun`.
    pub method: &'static str,
}

/// Everything a renderer draws.
pub(crate) struct Model {
    pub name: String,
    pub description: String,
    pub nodes: Vec<NodeBox>,
    pub links: Vec<[End; 2]>,
    pub lans: Vec<Lan>,
    pub services: Vec<Svc>,
}

/// The plain-words account of a forwarding method a service note carries: where requests go
/// and, above all, which way the replies come back.
pub fn method_explained(method: ForwardMethod) -> [&'static str; 2] {
    match method {
        ForwardMethod::Nat => [
            "NAT (ipvsadm -m): the director rewrites VIP to RIP on the way in and back on the way out;",
            "replies return through the director (the real servers' gateway is the DIP).",
        ],
        ForwardMethod::Dr => [
            "DR (ipvsadm -g): the director changes only the destination MAC; real servers hold the VIP on lo",
            "and answer the client directly, not through the director.",
        ],
        ForwardMethod::Tun => [
            "TUN (ipvsadm -i): the director wraps each packet in IPIP to the RIP; real servers hold the VIP on lo",
            "and answer the client directly, not through the director.",
        ],
    }
}

/// Left-to-right place of a role: the order a request meets them.
pub(crate) fn role_rank(role: Role) -> usize {
    match role {
        Role::Client => 0,
        Role::Router => 1,
        Role::Director => 2,
        Role::Realserver => 3,
        Role::Host => 4,
    }
}

/// Fill and stroke colours of a role's boxes, shared by every format.
pub(crate) fn role_colours(role: Role) -> (&'static str, &'static str) {
    match role {
        Role::Client => ("#dbeafe", "#1d4ed8"),
        Role::Router => ("#e5e7eb", "#374151"),
        Role::Director => ("#ffedd5", "#c2410c"),
        Role::Realserver => ("#dcfce7", "#15803d"),
        Role::Host => ("#f5f5f4", "#57534e"),
    }
}

fn proto_word(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    }
}

fn host_prefix(a: IpAddr) -> u8 {
    if a.is_ipv4() {
        32
    } else {
        128
    }
}

impl Model {
    /// The model of `topo`; with `lab`, what `up` made is added (MACs, addresses on `lo`).
    pub fn from_topology(topo: &Topology, lab: Option<&LabState>) -> Model {
        let index = |name: &str| topo.nodes.iter().position(|n| n.name == name);
        let end = |e: &lvslab_netns::Endpoint| {
            index(&e.node).map(|node| End {
                node,
                iface: e.iface.clone(),
            })
        };
        let vips: Vec<IpAddr> = topo.services.iter().map(|s| s.vip).collect();
        let nodes = topo
            .nodes
            .iter()
            .map(|n| {
                let built = lab.and_then(|l| l.nodes.iter().find(|b| b.name == n.name));
                let pad = n
                    .interfaces
                    .iter()
                    .map(|i| i.name.len())
                    .chain([2])
                    .max()
                    .unwrap_or(2);
                let blank = " ".repeat(pad);
                let mut lines = vec![Line {
                    text: format!("{}  [{}]", n.name, n.role),
                    iface: None,
                }];
                for i in &n.interfaces {
                    let label = i.label.map(|l| format!("{l} ")).unwrap_or_default();
                    if i.addresses.is_empty() {
                        lines.push(Line {
                            text: format!("{:<pad$}  {label}(no address)", i.name),
                            iface: Some(i.name.clone()),
                        });
                    }
                    for (k, a) in i.addresses.iter().enumerate() {
                        let (name, iface) = if k == 0 {
                            (i.name.as_str(), Some(i.name.clone()))
                        } else {
                            (blank.as_str(), None)
                        };
                        lines.push(Line {
                            text: format!("{name:<pad$}  {label}{a}"),
                            iface,
                        });
                    }
                    if let Some(b) = built.and_then(|b| b.iface(&i.name)) {
                        lines.push(Line {
                            text: format!("{blank}  mac {}", b.mac),
                            iface: None,
                        });
                    }
                }
                // DR/TUN real servers hold the VIP on lo (arp_ignore keeps it quiet): the
                // reason they can answer the client directly, so it belongs in the box.
                let on_lo: Vec<String> = match built {
                    Some(b) => b
                        .lo_addresses
                        .iter()
                        .map(|a| (a.addr(), a.to_string()))
                        .collect(),
                    None => topo
                        .vips_on_lo(&n.name)
                        .into_iter()
                        .map(|v| (v, format!("{v}/{}", host_prefix(v))))
                        .collect::<Vec<_>>(),
                }
                .into_iter()
                .map(|(addr, text)| {
                    let label = if vips.contains(&addr) { "VIP " } else { "" };
                    format!("{:<pad$}  {label}{text}", "lo")
                })
                .collect();
                lines.extend(on_lo.into_iter().map(|text| Line { text, iface: None }));
                let mut held: Vec<String> = Vec::new();
                for s in &topo.services {
                    let state = if s.director == n.name {
                        Some(s.backup.as_ref().map(|_| "  MASTER"))
                    } else if s.backup.as_deref() == Some(&n.name) {
                        Some(Some("  BACKUP"))
                    } else {
                        None
                    };
                    if let Some(state) = state {
                        let t = format!("VIP {}{}", s.vip, state.unwrap_or(""));
                        if !held.contains(&t) {
                            held.push(t);
                        }
                    }
                }
                lines.extend(held.into_iter().map(|text| Line { text, iface: None }));
                lines.extend(n.routes.iter().map(|r| Line {
                    text: format!("route {r}"),
                    iface: None,
                }));
                NodeBox {
                    name: n.name.clone(),
                    role: n.role,
                    lines,
                }
            })
            .collect();
        let links = topo
            .links
            .iter()
            .filter_map(|l| Some([end(&l.endpoints[0])?, end(&l.endpoints[1])?]))
            .collect();
        let lans = topo
            .lans
            .iter()
            .map(|l| Lan {
                name: l.name.clone(),
                members: l.members.iter().filter_map(end).collect(),
            })
            .collect();
        let services = topo
            .services
            .iter()
            .map(|s| {
                let headline = format!(
                    "VIP {} {} {} {}",
                    SocketAddr::new(s.vip, s.port),
                    proto_word(s.protocol),
                    s.scheduler,
                    s.method.word()
                );
                let mut lines = Vec::new();
                let mut directors = Vec::new();
                match &s.backup {
                    Some(b) => {
                        let vrrp = s
                            .vrrp
                            .as_ref()
                            .map(|v| format!(", VRRP vrid {}", v.vrid))
                            .unwrap_or_default();
                        lines.push(format!(
                            "director: {} MASTER, {b} BACKUP (takes the VIP over if the master fails){vrrp}",
                            s.director
                        ));
                        directors.extend(index(&s.director).map(|i| (i, Some("MASTER"))));
                        directors.extend(index(b).map(|i| (i, Some("BACKUP"))));
                    }
                    None => {
                        lines.push(format!("director: {}", s.director));
                        directors.extend(index(&s.director).map(|i| (i, None)));
                    }
                }
                for r in &s.real_servers {
                    lines.push(format!(
                        "real server {}  RIP {}  weight {}",
                        r.node,
                        SocketAddr::new(r.address, r.port),
                        r.weight
                    ));
                }
                lines.extend(method_explained(s.method).map(str::to_owned));
                if let Some(p) = s.persistence {
                    lines.push(format!("persistent: {p} s (ipvsadm -p)"));
                }
                if let Some(h) = &s.health {
                    lines.push(format!(
                        "health check: {} every {} ms",
                        h.check.kind(),
                        h.interval_ms
                    ));
                }
                Svc {
                    headline,
                    lines,
                    directors,
                    reals: s.real_servers.iter().filter_map(|r| index(&r.node)).collect(),
                    method: s.method.word(),
                }
            })
            .collect();
        Model {
            name: topo.name.clone(),
            description: topo.description.clone(),
            nodes,
            links,
            lans,
            services,
        }
    }

    /// The node or LAN a path hop names: `Ok(node)` or `Err(lan)` index.
    pub fn hop(&self, name: &str) -> Option<Result<usize, usize>> {
        if let Some(i) = self.nodes.iter().position(|n| n.name == name) {
            return Some(Ok(i));
        }
        self.lans.iter().position(|l| l.name == name).map(Err)
    }

    /// The left-to-right column of each node's role among the roles present.
    pub fn columns(&self) -> (Vec<usize>, usize) {
        let mut ranks: Vec<usize> = self.nodes.iter().map(|n| role_rank(n.role)).collect();
        let mut present = ranks.clone();
        present.sort_unstable();
        present.dedup();
        for r in &mut ranks {
            *r = present.iter().position(|p| p == r).unwrap_or(0);
        }
        (ranks, present.len())
    }
}
