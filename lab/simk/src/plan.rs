//! From a parsed script to the lab it needs (pure: no root, no namespaces).
//!
//! The lab is a star around the director: one veth to the client namespace, one to each
//! real server's namespace. Every link is a /30 out of [`TRANSIT`] (director `.1`, the other
//! end `.2`); the script's own addresses sit on top as /32s, so a client and a VIP in the
//! same /24 (the kernel examples use 10.0.1.2 and 10.0.1.100) never meet on a link. The
//! director's default route leads to the client side, each real server's default route to
//! the director: NAT replies come back through IPVS. A script with IPv6 addresses gets
//! the same star twice: every link also carries a /64 out of [`TRANSIT6`] (director `::1`,
//! the other end `::2`) and the script's IPv6 addresses sit on top as /128s.
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use lvslab_core::sim::{ScriptLine, Step};
use lvslab_core::{ForwardMethod, IpvsCommand, Protocol, ServiceKey};
use lvslab_netns::{Endpoint, IfaceSpec, LinkSpec, NodeSpec, Role, RouteSpec, Topology};

/// The transit range the lab's links are numbered from (RFC 6598 shared space, /16 of it).
pub const TRANSIT: Ipv4Net = match Ipv4Net::new(Ipv4Addr::new(100, 64, 0, 0), 16) {
    Ok(n) => n,
    Err(_) => panic!("a /16 is a valid prefix"),
};

/// The IPv6 transit range (documentation space, like every IPv6 address in a lab): link k
/// is `2001:db8:ffff:k::/64`.
pub const TRANSIT6: Ipv6Net =
    match Ipv6Net::new(Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 0), 48) {
        Ok(n) => n,
        Err(_) => panic!("a /48 is a valid prefix"),
    };

/// At most this many real server addresses: one /30 each out of [`TRANSIT`]'s third octet.
pub const MAX_SERVERS: usize = 250;

/// A script the kernel backend cannot lay out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// One address in two roles.
    #[error("line {line}: {addr} is used as {first} and as {second}; the kernel backend puts each in its own namespace, so give them different addresses")]
    Clash {
        /// Script line.
        line: usize,
        /// The address.
        addr: IpAddr,
        /// Its earlier role.
        first: &'static str,
        /// Its role on this line.
        second: &'static str,
    },
    /// An address that cannot be a host in the lab.
    #[error("line {line}: {addr} cannot be a {role} in the lab ({why})")]
    Unusable {
        /// Script line.
        line: usize,
        /// The address.
        addr: IpAddr,
        /// client, VIP or real server.
        role: &'static str,
        /// Why not.
        why: &'static str,
    },
    /// More real servers than the transit range numbers.
    #[error("the script names {0} real server addresses; the kernel backend lays out at most {MAX_SERVERS}")]
    TooManyServers(usize),
    /// The same 4-tuple with two different marks.
    #[error("line {line}: {client} > {vip} is marked {mark} here and {earlier} on an earlier line; the kernel backend marks packets per flow in nftables, so one flow has one mark")]
    MarkConflict {
        /// Script line.
        line: usize,
        /// Client.
        client: SocketAddr,
        /// Destination.
        vip: SocketAddr,
        /// The mark on this line.
        mark: u32,
        /// The mark seen before.
        earlier: u32,
    },
    /// `load`: only the core can add conn entries without connections.
    #[error("line {line}: `load` is for the core only: it sets a server's counts with placeholder entries, and the kernel counts only real connections; translating it into connections would move the scheduler's own state (rr cursor, wrr weight, lblc cache) where the core's does not. On the kernel, hold conns with `open LABEL CIP:PORT > VIP:PORT` (quiescing the other servers with `-e ... -w 0` while opening, as lab/core/tests/kernel-examples/sed-classic-123-held.sim does), or run this script with --backend userspace")]
    Load {
        /// Script line.
        line: usize,
    },
}

/// A real server's namespace: its address and what it listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerPlan {
    /// Node name in the lab (`rs1`, `rs2`, ... in address order).
    pub node: String,
    /// Its address (RIP).
    pub addr: IpAddr,
    /// TCP ports it accepts on.
    pub tcp: Vec<u16>,
    /// UDP ports it answers on.
    pub udp: Vec<u16>,
}

/// A flow whose packets the director must mark (`mark N`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Marked {
    /// TCP or UDP.
    pub protocol: Protocol,
    /// Client address and port.
    pub client: SocketAddr,
    /// Destination address and port.
    pub vip: SocketAddr,
    /// The mark.
    pub mark: u32,
}

/// A real server the kernel runs with a different forwarding method than the script says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Converted {
    /// Script line.
    pub line: usize,
    /// The real server.
    pub dest: SocketAddr,
    /// What the script asked for (DR or TUN).
    pub method: ForwardMethod,
}

impl std::fmt::Display for Converted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let flag = match self.method {
            ForwardMethod::Dr => "-g",
            ForwardMethod::Tun => "-i",
            ForwardMethod::Nat => "-m",
        };
        write!(
            f,
            "line {}: real server {} is {flag}; the kernel backend runs it as NAT (-m): the pick does not depend on the method",
            self.line, self.dest
        )
    }
}

/// Everything the lab for one script needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Client addresses, sorted.
    pub clients: Vec<IpAddr>,
    /// Addresses the director holds: service VIPs and every flow's destination, sorted.
    pub vips: Vec<IpAddr>,
    /// Real servers in address order.
    pub servers: Vec<ServerPlan>,
    /// Flows to mark in the director's nftables, sorted.
    pub marks: Vec<Marked>,
    /// DR/TUN real servers run as NAT.
    pub converted: Vec<Converted>,
    /// Client addresses of flows without a mark, sorted.
    pub unmarked_clients: Vec<IpAddr>,
}

#[derive(Default)]
struct Roles {
    seen: BTreeMap<IpAddr, &'static str>,
}

impl Roles {
    fn claim(
        &mut self,
        line: usize,
        addr: IpAddr,
        role: &'static str,
    ) -> Result<IpAddr, PlanError> {
        let a = addr;
        let why = if a.is_unspecified() {
            Some("unspecified")
        } else if a.is_loopback() {
            Some("loopback")
        } else {
            match a {
                IpAddr::V4(v4) if v4.is_multicast() || v4.is_broadcast() => Some("not unicast"),
                IpAddr::V4(v4) if TRANSIT.contains(&v4) => {
                    Some("100.64.0.0/16 numbers the lab's own links")
                }
                IpAddr::V6(v6) if v6.is_multicast() => Some("not unicast"),
                IpAddr::V6(v6) if v6.is_unicast_link_local() => {
                    Some("link-local: each namespace makes its own")
                }
                IpAddr::V6(v6) if TRANSIT6.contains(&v6) => {
                    Some("2001:db8:ffff::/48 numbers the lab's own links")
                }
                _ => None,
            }
        };
        if let Some(why) = why {
            return Err(PlanError::Unusable {
                line,
                addr: a,
                role,
                why,
            });
        }
        match self.seen.get(&a) {
            Some(first) if *first != role => Err(PlanError::Clash {
                line,
                addr: a,
                first,
                second: role,
            }),
            _ => {
                self.seen.insert(a, role);
                Ok(a)
            }
        }
    }
}

const CLIENT: &str = "a client";
const VIP: &str = "a virtual address";
const SERVER: &str = "a real server";

/// The command the kernel gets for a script's: DR and TUN real servers become NAT.
pub fn kernel_command(cmd: &IpvsCommand) -> (IpvsCommand, Option<(SocketAddr, ForwardMethod)>) {
    match cmd {
        IpvsCommand::AddDest(k, d) | IpvsCommand::EditDest(k, d)
            if d.method != ForwardMethod::Nat =>
        {
            let mut nat = *d;
            nat.method = ForwardMethod::Nat;
            let out = if matches!(cmd, IpvsCommand::AddDest(..)) {
                IpvsCommand::AddDest(*k, nat)
            } else {
                IpvsCommand::EditDest(*k, nat)
            };
            (out, Some((d.addr, d.method)))
        }
        other => (other.clone(), None),
    }
}

/// Lay out the lab for a script.
pub fn plan(lines: &[ScriptLine]) -> Result<Plan, PlanError> {
    let mut roles = Roles::default();
    let mut clients = BTreeSet::new();
    let mut vips = BTreeSet::new();
    // Per server: explicit (protocol or None for fwmark, port) and whether a port-0 dest exists.
    let mut explicit: BTreeMap<IpAddr, BTreeSet<(Option<Protocol>, u16)>> = BTreeMap::new();
    let mut flow_ports: BTreeSet<(Protocol, u16)> = BTreeSet::new();
    let mut marks: BTreeMap<(Protocol, SocketAddr, SocketAddr), u32> = BTreeMap::new();
    let mut converted = Vec::new();
    let mut unmarked_clients = BTreeSet::new();
    for l in lines {
        match &l.step {
            Step::Ipvsadm(cmd) => {
                let key = match cmd {
                    IpvsCommand::AddService(s) | IpvsCommand::EditService(s) => Some(s.key),
                    IpvsCommand::DelService(k) => Some(*k),
                    IpvsCommand::AddDest(k, _)
                    | IpvsCommand::EditDest(k, _)
                    | IpvsCommand::DelDest(k, _) => Some(*k),
                    IpvsCommand::Clear | IpvsCommand::SetTimeouts(_) => None,
                };
                let proto = match key {
                    Some(ServiceKey::Addr { protocol, vip, .. }) => {
                        vips.insert(roles.claim(l.line, vip.0, VIP)?);
                        Some(protocol)
                    }
                    _ => None,
                };
                if let IpvsCommand::AddDest(_, d) | IpvsCommand::EditDest(_, d) = cmd {
                    let a = roles.claim(l.line, d.addr.ip(), SERVER)?;
                    explicit
                        .entry(a)
                        .or_default()
                        .insert((proto, d.addr.port()));
                    if let (_, Some((dest, method))) = kernel_command(cmd) {
                        converted.push(Converted {
                            line: l.line,
                            dest,
                            method,
                        });
                    }
                }
            }
            Step::Conn { flow, .. } | Step::Open { flow, .. } => {
                let c = roles.claim(l.line, flow.client.ip(), CLIENT)?;
                clients.insert(c);
                if flow.fwmark == 0 {
                    unmarked_clients.insert(c);
                }
                vips.insert(roles.claim(l.line, flow.vip.ip(), VIP)?);
                flow_ports.insert((flow.protocol, flow.vip.port()));
                let k = (flow.protocol, flow.client, flow.vip);
                match marks.get(&k) {
                    Some(&m) if m != flow.fwmark => {
                        return Err(PlanError::MarkConflict {
                            line: l.line,
                            client: flow.client,
                            vip: flow.vip,
                            mark: flow.fwmark,
                            earlier: m,
                        })
                    }
                    _ => {
                        marks.insert(k, flow.fwmark);
                    }
                }
            }
            Step::Load { .. } => return Err(PlanError::Load { line: l.line }),
            Step::Sleep(_) | Step::Close { .. } => {}
        }
    }
    if explicit.len() > MAX_SERVERS {
        return Err(PlanError::TooManyServers(explicit.len()));
    }
    let servers = explicit
        .into_iter()
        .enumerate()
        .map(|(i, (addr, ports))| {
            let mut tcp = BTreeSet::new();
            let mut udp = BTreeSet::new();
            for (proto, port) in ports {
                // Port 0 (fwmark and port-0 services) means the packet's own port.
                let wanted: Vec<(Protocol, u16)> = if port == 0 {
                    flow_ports
                        .iter()
                        .filter(|(p, _)| proto.is_none_or(|q| q == *p))
                        .copied()
                        .collect()
                } else {
                    match proto {
                        Some(p) => vec![(p, port)],
                        None => vec![(Protocol::Tcp, port), (Protocol::Udp, port)],
                    }
                };
                for (p, port) in wanted {
                    match p {
                        Protocol::Tcp => tcp.insert(port),
                        Protocol::Udp => udp.insert(port),
                    };
                }
            }
            ServerPlan {
                node: format!("rs{}", i + 1),
                addr,
                tcp: tcp.into_iter().collect(),
                udp: udp.into_iter().collect(),
            }
        })
        .collect();
    Ok(Plan {
        clients: clients.into_iter().collect(),
        vips: vips.into_iter().collect(),
        servers,
        marks: marks
            .into_iter()
            .filter(|(_, m)| *m != 0)
            .map(|((protocol, client, vip), mark)| Marked {
                protocol,
                client,
                vip,
                mark,
            })
            .collect(),
        converted,
        unmarked_clients: unmarked_clients.into_iter().collect(),
    })
}

fn transit(link: u8, host: u8) -> Ipv4Addr {
    let o = TRANSIT.network().octets();
    Ipv4Addr::new(o[0], o[1], link, host)
}

fn transit6(link: u8, host: u16) -> Ipv6Addr {
    let s = TRANSIT6.network().segments();
    Ipv6Addr::new(s[0], s[1], s[2], u16::from(link), 0, 0, 0, host)
}

fn net(a: Ipv4Addr, len: u8) -> IpNet {
    IpNet::V4(Ipv4Net::new(a, len).unwrap_or_else(|_| Ipv4Net::from(a)))
}

fn net6(a: Ipv6Addr, len: u8) -> IpNet {
    IpNet::V6(Ipv6Net::new(a, len).unwrap_or_else(|_| Ipv6Net::from(a)))
}

/// One host: a /32 or a /128.
fn host(a: IpAddr) -> IpNet {
    IpNet::from(a)
}

fn iface(name: &str, addrs: Vec<IpNet>, label: &str) -> IfaceSpec {
    IfaceSpec {
        name: name.into(),
        addresses: addrs,
        // The labels here are fixed words (CIP, VIP, DIP, RIPn), which always parse.
        label: label.parse().ok(),
        more_labels: Vec::new(),
    }
}

fn node(name: &str, role: Role, interfaces: Vec<IfaceSpec>, routes: Vec<RouteSpec>) -> NodeSpec {
    NodeSpec {
        name: name.into(),
        role,
        interfaces,
        routes,
        sysctls: Vec::new(),
        serve: false,
        ipv6: false,
        mistakes: Vec::new(),
    }
}

fn ep(node: &str, iface: &str) -> Endpoint {
    Endpoint {
        node: node.into(),
        iface: iface.into(),
    }
}

impl Plan {
    /// Client addresses of marked flows, sorted.
    pub fn marked_clients(&self) -> Vec<IpAddr> {
        let s: BTreeSet<IpAddr> = self.marks.iter().map(|m| m.client.ip()).collect();
        s.into_iter().collect()
    }

    /// Whether any address of the script is IPv6 (the lab then carries both families).
    pub fn has_ipv6(&self) -> bool {
        self.clients
            .iter()
            .chain(&self.vips)
            .chain(self.servers.iter().map(|s| &s.addr))
            .any(IpAddr::is_ipv6)
    }

    /// A client address with both marked and unmarked flows: such a script cannot run its
    /// marked flows as local clients of the director (see [`Plan::topology_with`]).
    pub fn local_marks_clash(&self) -> Option<IpAddr> {
        self.marked_clients()
            .into_iter()
            .find(|a| self.unmarked_clients.contains(a))
    }

    /// The namespace topology: client, director and one node per real server, in a star.
    pub fn topology(&self, name: &str) -> Topology {
        self.topology_with(name, false)
    }

    /// Like [`Plan::topology`]; with `local_marks` the director also holds the client
    /// addresses of marked flows, which then start on the director itself with SO_MARK
    /// (IPVS schedules local clients at LOCAL_OUT): the way to mark without nf_tables.
    pub fn topology_with(&self, name: &str, local_marks: bool) -> Topology {
        let v6 = self.has_ipv6();
        // A link's own addresses: its /30, and its /64 when the script has IPv6.
        let link = |k: u8, end: u8| {
            let mut v = vec![net(transit(k, end), 30)];
            if v6 {
                v.push(net6(transit6(k, u16::from(end)), 64));
            }
            v
        };
        // Default routes (one per family) towards the other end of link k.
        let defaults = |k: u8, end: u8| {
            let mut v = vec![RouteSpec {
                dest: None,
                via: transit(k, end).into(),
            }];
            if v6 {
                v.push(RouteSpec {
                    dest: None,
                    via: transit6(k, u16::from(end)).into(),
                });
            }
            v
        };
        let mut client_addrs = link(0, 2);
        client_addrs.extend(self.clients.iter().map(|a| host(*a)));
        let client = node(
            "client",
            Role::Client,
            vec![iface("eth0", client_addrs, "CIP")],
            defaults(0, 1),
        );
        let mut dir_eth0 = link(0, 1);
        dir_eth0.extend(self.vips.iter().map(|a| host(*a)));
        if local_marks {
            dir_eth0.extend(self.marked_clients().iter().map(|a| host(*a)));
        }
        let mut dir_ifaces = vec![iface("eth0", dir_eth0, "VIP")];
        let mut dir_routes = defaults(0, 2);
        let mut nodes = Vec::new();
        let mut links = vec![LinkSpec {
            endpoints: [ep("client", "eth0"), ep("director", "eth0")],
        }];
        for (i, s) in self.servers.iter().enumerate() {
            let k = i as u8 + 1;
            let ifn = format!("eth{k}");
            dir_ifaces.push(iface(&ifn, link(k, 1), "DIP"));
            dir_routes.push(RouteSpec {
                dest: Some(host(s.addr)),
                via: match s.addr {
                    IpAddr::V4(_) => transit(k, 2).into(),
                    IpAddr::V6(_) => transit6(k, 2).into(),
                },
            });
            let mut rs_addrs = link(k, 2);
            rs_addrs.push(host(s.addr));
            nodes.push(node(
                &s.node,
                Role::Realserver,
                vec![iface("eth0", rs_addrs, &format!("RIP{k}"))],
                defaults(k, 1),
            ));
            links.push(LinkSpec {
                endpoints: [ep("director", &ifn), ep(&s.node, "eth0")],
            });
        }
        let mut director = node("director", Role::Director, dir_ifaces, dir_routes);
        let mut sysctls = vec![
            // NAT: the director routes between the client side and the real servers.
            ("net.ipv4.ip_forward", "1"),
            // A refused step is an ICMP port unreachable; a burst of them must not be limited.
            ("net.ipv4.icmp_ratelimit", "0"),
            ("net.ipv4.icmp_msgs_per_sec", "100000"),
        ];
        if v6 {
            // NAT replies pass the FORWARD hook, where IPVS rewrites them.
            sysctls.push(("net.ipv6.conf.all.forwarding", "1"));
            sysctls.push(("net.ipv6.icmp.ratelimit", "0"));
        }
        director.sysctls = sysctls
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut all = vec![client, director];
        all.extend(nodes);
        Topology {
            name: name.into(),
            path: Default::default(),
            description: "lvslab simulate --backend ipvs: a throw-away lab".into(),
            nodes: all,
            links,
            lans: Vec::new(),
            services: Vec::new(),
        }
    }

    /// The nftables ruleset that marks each `mark N` flow on its way into the director.
    pub fn nft_ruleset(&self) -> Option<String> {
        if self.marks.is_empty() {
            return None;
        }
        let mut s = String::from(
            "table inet lvslab_simk {\n  chain pre {\n    type filter hook prerouting priority mangle; policy accept;\n",
        );
        for m in &self.marks {
            let p = match m.protocol {
                Protocol::Tcp => "tcp",
                Protocol::Udp => "udp",
            };
            let family = if m.client.is_ipv6() { "ip6" } else { "ip" };
            s.push_str(&format!(
                "    {family} saddr {} {family} daddr {} {p} sport {} {p} dport {} meta mark set {}\n",
                m.client.ip(),
                m.vip.ip(),
                m.client.port(),
                m.vip.port(),
                m.mark
            ));
        }
        s.push_str("  }\n}\n");
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lvslab_core::sim::parse_script;

    fn plan_of(s: &str) -> Result<Plan, PlanError> {
        plan(&parse_script(s).expect("script parses"))
    }

    fn v4(s: &str) -> IpAddr {
        s.parse().expect("an IPv4 address")
    }

    #[test]
    fn load_is_refused_naming_the_line_and_open() {
        let e = plan_of(
            "ipvsadm -A -t 10.0.0.1:80 -s sed\nipvsadm -a -t 10.0.0.1:80 -r 10.0.2.11:80 -m\nload 10.0.2.11:80 active=1\n",
        )
        .expect_err("load has no kernel equivalent");
        assert_eq!(e, PlanError::Load { line: 3 });
        let m = e.to_string();
        assert!(m.starts_with("line 3: `load`"), "{m}");
        assert!(m.contains("`open LABEL"), "{m}");
    }

    #[test]
    fn a_nat_script_needs_its_clients_vip_and_one_listener_per_real_server_port() {
        let p = plan_of(
            "ipvsadm -A -t 192.168.1.250:80 -s rr\n\
             ipvsadm -a -t 192.168.1.250:80 -r 192.168.1.203:8080 -m\n\
             ipvsadm -a -t 192.168.1.250:80 -r 192.168.1.201:80 -m\n\
             conn 192.0.2.10:40001 > 192.168.1.250:80\n\
             open a 192.0.2.11:40002 > 192.168.1.250:80\n\
             close a\n",
        )
        .expect("plans");
        assert_eq!(p.clients, vec![v4("192.0.2.10"), v4("192.0.2.11")]);
        assert_eq!(p.vips, vec![v4("192.168.1.250")]);
        assert_eq!(
            p.servers,
            vec![
                ServerPlan {
                    node: "rs1".into(),
                    addr: v4("192.168.1.201"),
                    tcp: vec![80],
                    udp: vec![],
                },
                ServerPlan {
                    node: "rs2".into(),
                    addr: v4("192.168.1.203"),
                    tcp: vec![8080],
                    udp: vec![],
                },
            ]
        );
        assert!(p.marks.is_empty() && p.converted.is_empty());
        assert_eq!(p.nft_ruleset(), None);
    }

    #[test]
    fn a_fwmark_service_with_port_0_listens_on_the_flows_ports_and_marks_each_flow() {
        let p = plan_of(
            "ipvsadm -A -f 2 -s lblc\n\
             ipvsadm -a -f 2 -r 192.168.1.201:0 -g\n\
             conn 192.0.2.10:40001 > 198.51.100.7:80 mark 2\n\
             conn 192.0.2.10:40002 > 198.51.100.8:53 udp mark 2\n",
        )
        .expect("plans");
        assert_eq!(p.vips, vec![v4("198.51.100.7"), v4("198.51.100.8")]);
        assert_eq!(p.servers[0].tcp, vec![80]);
        assert_eq!(p.servers[0].udp, vec![53]);
        assert_eq!(p.marks.len(), 2);
        assert_eq!(
            p.converted,
            vec![Converted {
                line: 2,
                dest: "192.168.1.201:0".parse().expect("addr"),
                method: ForwardMethod::Dr,
            }]
        );
        let rules = p.nft_ruleset().expect("rules");
        assert!(rules.contains(
            "ip saddr 192.0.2.10 ip daddr 198.51.100.7 tcp sport 40001 tcp dport 80 meta mark set 2"
        ));
        assert!(rules.contains("udp sport 40002 udp dport 53 meta mark set 2"));
    }

    #[test]
    fn without_nf_tables_marked_clients_move_onto_the_director_unless_they_also_run_unmarked() {
        let p = plan_of(
            "conn 192.0.2.10:1 > 198.51.100.7:80 mark 1\nconn 192.0.2.11:1 > 198.51.100.7:80\n",
        )
        .expect("plans");
        assert_eq!(p.marked_clients(), vec![v4("192.0.2.10")]);
        assert_eq!(p.local_marks_clash(), None);
        let on_director = |local| {
            let t = p.topology_with("simk-1-0", local);
            let d = t.node("director").expect("director").interfaces[0]
                .addresses
                .clone();
            d.iter().any(|a| a.to_string() == "192.0.2.10/32")
        };
        assert!(on_director(true) && !on_director(false));
        let p = plan_of(
            "conn 192.0.2.10:1 > 198.51.100.7:80 mark 1\nconn 192.0.2.10:2 > 198.51.100.7:80\n",
        )
        .expect("plans");
        assert_eq!(p.local_marks_clash(), Some(v4("192.0.2.10")));
    }

    #[test]
    fn ipv6_marked_clients_go_onto_the_director_beside_ipv4_ones() {
        let script = "ipvsadm -A -f 1 -6 -s dh\n\
             ipvsadm -a -f 1 -6 -r [2001:db8:1::201]:80 -g\n\
             ipvsadm -A -f 1 -s rr\n\
             ipvsadm -a -f 1 -r 192.168.1.207:80 -m\n\
             conn [2001:db8:100::10]:40001 > [2001:db8:2::1]:80 mark 1\n\
             conn 198.51.100.10:40001 > 203.0.113.50:80 mark 1\n";
        let p = plan_of(script).expect("plans");
        assert!(p.has_ipv6());
        let v6: IpAddr = "2001:db8:100::10".parse().expect("addr");
        assert_eq!(p.marked_clients(), vec![v4("198.51.100.10"), v6]);
        let t = p.topology_with("simk-1-0", true);
        let held: Vec<String> = t.node("director").expect("director").interfaces[0]
            .addresses
            .iter()
            .map(ToString::to_string)
            .collect();
        for want in [
            "2001:db8:100::10/128",
            "198.51.100.10/32",
            "2001:db8:2::1/128",
            "203.0.113.50/32",
        ] {
            assert!(held.iter().any(|a| a == want), "{want} not in {held:?}");
        }
        // With nf_tables each family's flow is marked by its own match.
        let rules = p.nft_ruleset().expect("rules");
        assert!(rules.contains(
            "ip6 saddr 2001:db8:100::10 ip6 daddr 2001:db8:2::1 tcp sport 40001 tcp dport 80 meta mark set 1"
        ));
        assert!(rules.contains("ip saddr 198.51.100.10 ip daddr 203.0.113.50"));
        // The kernel gets the IPv6 service as `-f 1 -6`, its DR server as NAT.
        let l = parse_script(script).expect("parses");
        let Step::Ipvsadm(c) = &l[1].step else {
            panic!("not ipvsadm")
        };
        let (IpvsCommand::AddDest(k, d), Some(_)) = kernel_command(c) else {
            panic!("not converted")
        };
        assert_eq!(k, ServiceKey::fwmark6(1));
        assert_eq!(d.method, ForwardMethod::Nat);
    }

    #[test]
    fn dr_and_tun_become_nat_for_the_kernel_and_nat_stays() {
        let l = parse_script(
            "-a -t 10.0.0.1:80 -r 10.0.2.1:80 -g\n-e -t 10.0.0.1:80 -r 10.0.2.1:80 -i -w 3\n-a -t 10.0.0.1:80 -r 10.0.2.2:80 -m\n",
        )
        .expect("parses");
        for (i, want) in [Some(ForwardMethod::Dr), Some(ForwardMethod::Tun), None]
            .into_iter()
            .enumerate()
        {
            let Step::Ipvsadm(c) = &l[i].step else {
                panic!("line {i} is not ipvsadm")
            };
            let (k, conv) = kernel_command(c);
            assert_eq!(conv.map(|c| c.1), want);
            let (IpvsCommand::AddDest(_, d) | IpvsCommand::EditDest(_, d)) = k else {
                panic!("not a dest command: {k:?}")
            };
            assert_eq!(d.method, ForwardMethod::Nat);
        }
    }

    #[test]
    fn one_address_in_two_roles_is_refused_with_the_line() {
        let e = plan_of(
            "ipvsadm -A -t 10.0.1.100:80 -s rr\nipvsadm -a -t 10.0.1.100:80 -r 10.0.1.2:80 -m\nconn 10.0.1.2:1 > 10.0.1.100:80\n",
        )
        .expect_err("client is a real server");
        assert_eq!(
            e,
            PlanError::Clash {
                line: 3,
                addr: v4("10.0.1.2"),
                first: SERVER,
                second: CLIENT
            }
        );
        let e = plan_of("conn 100.64.0.2:1 > 10.0.1.100:80\n").expect_err("transit");
        assert!(matches!(e, PlanError::Unusable { line: 1, .. }), "{e}");
        let e = plan_of("conn [2001:db8:ffff:1::9]:1 > [2001:db8::2]:80\n").expect_err("transit6");
        assert!(matches!(e, PlanError::Unusable { line: 1, .. }), "{e}");
        let e = plan_of("conn [fe80::1]:1 > [2001:db8::2]:80\n").expect_err("link-local");
        assert!(matches!(e, PlanError::Unusable { line: 1, .. }), "{e}");
        let e = plan_of(
            "conn 192.0.2.1:1 > 198.51.100.1:80 mark 1\nconn 192.0.2.1:1 > 198.51.100.1:80 mark 2\n",
        )
        .expect_err("two marks");
        assert!(matches!(e, PlanError::MarkConflict { line: 2, .. }), "{e}");
    }

    #[test]
    fn an_ipv6_script_gets_both_families_on_every_link_and_v6_routes() {
        let p = plan_of(
            "ipvsadm -A -t [2001:db8:1::250]:80 -s sh\nipvsadm -a -t [2001:db8:1::250]:80 -r [2001:db8:1::201]:80 -m\nconn [2001:db8:100::10]:20000 > [2001:db8:1::250]:80\n",
        )
        .expect("plan");
        assert!(p.has_ipv6());
        let t = p.topology("s");
        let addrs = |n: &str| -> Vec<String> {
            t.node(n).expect(n).interfaces[0]
                .addresses
                .iter()
                .map(|a| a.to_string())
                .collect()
        };
        assert_eq!(
            addrs("client"),
            [
                "100.64.0.2/30",
                "2001:db8:ffff::2/64",
                "2001:db8:100::10/128"
            ]
        );
        assert_eq!(
            addrs("rs1"),
            [
                "100.64.1.2/30",
                "2001:db8:ffff:1::2/64",
                "2001:db8:1::201/128"
            ]
        );
        let d = t.node("director").expect("director");
        let routes: Vec<String> = d
            .routes
            .iter()
            .map(|r| format!("{:?} via {}", r.dest.map(|n| n.to_string()), r.via))
            .collect();
        assert_eq!(
            routes,
            [
                "None via 100.64.0.2",
                "None via 2001:db8:ffff::2",
                "Some(\"2001:db8:1::201/128\") via 2001:db8:ffff:1::2"
            ]
        );
        assert!(d
            .sysctls
            .iter()
            .any(|(k, v)| k == "net.ipv6.conf.all.forwarding" && v == "1"));
        // An IPv4 script's lab stays IPv4 only.
        let p4 = plan_of("conn 10.0.1.2:1 > 10.0.1.100:80\n").expect("plan");
        assert!(!p4.has_ipv6());
        assert!(!p4.topology("s").has_ipv6());
    }

    #[test]
    fn the_topology_is_a_star_with_transit_links_and_nat_routes() {
        let p = plan_of(
            "ipvsadm -A -t 10.0.1.100:80 -s rr\nipvsadm -a -t 10.0.1.100:80 -r 10.0.2.11:80 -m\nipvsadm -a -t 10.0.1.100:80 -r 10.0.2.12:80 -m\nconn 10.0.1.2:20000 > 10.0.1.100:80\n",
        )
        .expect("plans");
        let t = p.topology("simk-1-0");
        let names: Vec<&str> = t.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["client", "director", "rs1", "rs2"]);
        assert_eq!(t.links.len(), 3);
        let d = t.node("director").expect("director");
        assert!(d
            .sysctls
            .contains(&("net.ipv4.ip_forward".to_string(), "1".to_string())));
        let eth0: Vec<String> = d.interfaces[0]
            .addresses
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(eth0, ["100.64.0.1/30", "10.0.1.100/32"]);
        let routes: Vec<String> = d.routes.iter().map(|r| r.to_string()).collect();
        assert_eq!(
            routes,
            [
                "default via 100.64.0.2",
                "10.0.2.11/32 via 100.64.1.2",
                "10.0.2.12/32 via 100.64.2.2"
            ]
        );
        let rs2 = t.node("rs2").expect("rs2");
        assert_eq!(rs2.routes[0].to_string(), "default via 100.64.2.1");
        let c = t.node("client").expect("client");
        assert_eq!(c.interfaces[0].addresses[1].to_string(), "10.0.1.2/32");
    }

    #[test]
    fn every_shipped_example_plans() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/simulate");
        for e in std::fs::read_dir(&dir).expect("examples dir").flatten() {
            let path = e.path();
            if path.extension().is_none_or(|x| x != "sim") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("readable");
            let p = match plan_of(&text) {
                Ok(p) => p,
                // `load` is the core's alone; the kernel backend refuses it by design.
                Err(PlanError::Load { .. }) => continue,
                Err(e) => panic!("{}: {e}", path.display()),
            };
            assert!(!p.servers.is_empty(), "{}", path.display());
            for s in &p.servers {
                assert!(
                    !s.tcp.is_empty() || !s.udp.is_empty(),
                    "{}: {s:?}",
                    path.display()
                );
            }
        }
    }
}
