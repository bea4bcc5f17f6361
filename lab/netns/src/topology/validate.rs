//! The topology validator, in passes: names and addresses, routes, wiring, services and the
//! path back to the client. Each pass reports every problem it finds with its location.
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::ops::Range;
use std::str::FromStr;

use ipnet::IpNet;
use toml::Spanned;

use super::reach::{self, Failure, Goal, Hop, Net};
use super::{
    scheduler_help, valid_name, Endpoint, ForwardMethod, HealthCheck, HealthSpec, IfaceSpec,
    LanSpec, LinkSpec, Mistake, NodeSpec, Protocol, RawHealth, RawLan, RawLink, RawNode,
    RawRealServer, RawService, RawTopology, RawVrrp, RealServerSpec, Role, RouteSpec, Scheduler,
    ServiceSpec, Topology, VrrpSpec, METHOD_HELP,
};
use crate::diag::{Diagnostic, Source};
use crate::label::{Label, LABEL_HELP};

type S<T> = Spanned<T>;

/// Checks raw file structure in named passes, collecting every problem with its location.
pub(super) struct Validator<'a> {
    pub(super) src: &'a Source,
    pub(super) diags: Vec<Diagnostic>,
    /// Problems that do not stop the lab from being built.
    pub(super) warnings: Vec<Diagnostic>,
}

/// Where an address was assigned, for duplicate detection and route checks.
struct Assigned {
    node: String,
    iface: String,
    net: IpNet,
    span: Range<usize>,
}

/// What earlier passes learnt that later ones look up, with spans to point at.
#[derive(Default)]
struct Scope {
    assigned: Vec<Assigned>,
    node_spans: HashMap<String, Range<usize>>,
    route_spans: HashMap<String, Option<Range<usize>>>,
    iface_spans: HashMap<(String, String), Range<usize>>,
    /// (node, sysctl key) -> the key's span, for warnings about a sysctl's value.
    sysctl_spans: HashMap<(String, String), Range<usize>>,
    /// (node, mistake) -> where `mistakes = [...]` names it, for its warning.
    mistake_spans: HashMap<(String, Mistake), Range<usize>>,
    /// Deliberate mistakes the path checks found at work (the first message for each):
    /// a declared mistake that changes nothing is an error, not a lesson.
    mistakes_seen: HashMap<(String, Mistake), String>,
}

impl Validator<'_> {
    fn err(&mut self, span: Range<usize>, msg: impl Into<String>, help: impl Into<String>) {
        let d = self.src.diag(span, msg, Some(help.into()));
        self.diags.push(d);
    }

    fn warn(&mut self, span: Range<usize>, msg: impl Into<String>, help: impl Into<String>) {
        let d = self.src.warning(span, msg, Some(help.into()));
        self.warnings.push(d);
    }

    fn line_of(&self, span: &Range<usize>) -> usize {
        self.src.line_col(span.start).0
    }

    /// Every pass in order; later passes see only what earlier ones accepted.
    pub(super) fn check(&mut self, raw: RawTopology) -> Topology {
        let name = self
            .src
            .path
            .file_stem()
            .map_or_else(|| "lab".to_string(), |s| s.to_string_lossy().to_string());
        self.not_empty(&raw);
        let mut scope = Scope::default();
        let (mut nodes, route_items) = self.nodes_and_addresses(raw.nodes, &mut scope);
        self.routes(route_items, &mut nodes, &scope);
        let (links, lans) = self.wiring(raw.links, raw.lans, &nodes, &scope);
        // Routing is judged only when nodes, routes and wiring are sound: a path through a
        // misspelt endpoint or a refused route would only repeat that error.
        let routing_sound = self.diags.is_empty();
        let services: Vec<ServiceSpec> = raw
            .services
            .into_iter()
            .filter_map(|s| self.service(s.into_inner(), &nodes, &scope.assigned))
            .collect();
        if routing_sound {
            let net = Net::new(&nodes, &links, &lans);
            self.paths_back(&services, &net, &mut scope);
            self.vips_reachable(&services, &net, &scope);
            self.mistakes(&services, &nodes, &scope);
        }
        self.tun_rp_filter(&services, &nodes, &scope);
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

    /// A file without nodes builds nothing, which is never what its author meant.
    fn not_empty(&mut self, raw: &RawTopology) {
        if raw.nodes.is_empty() {
            self.err(
                0..0,
                "the topology declares no nodes",
                "declare at least [nodes.NAME] with a role, wire them with [[links]] or [lans.NAME], and add [[services]]; topologies/nat-topology.toml is a complete example",
            );
        }
    }

    /// Node names, roles, interfaces, their addresses and labels, and sysctls.
    fn nodes_and_addresses(
        &mut self,
        raw: BTreeMap<S<String>, S<RawNode>>,
        scope: &mut Scope,
    ) -> (Vec<NodeSpec>, Vec<(String, S<String>)>) {
        let mut nodes_raw: Vec<(S<String>, S<RawNode>)> = raw.into_iter().collect();
        nodes_raw.sort_by_key(|(k, _)| k.span().start);
        let mut nodes = Vec::new();
        let mut route_items = Vec::new();
        for (key, node) in nodes_raw {
            let nname = key.get_ref().clone();
            self.node_name(&key);
            scope.node_spans.insert(nname.clone(), key.span());
            let node = node.into_inner();
            let role = self.role(&node.role, &nname);
            let mut interfaces = Vec::new();
            let mut any_v6 = false;
            for (ikey, iface) in node.interfaces {
                let iname = ikey.get_ref().clone();
                scope
                    .iface_spans
                    .insert((nname.clone(), iname.clone()), ikey.span());
                self.iface_name(&ikey);
                let iface = iface.into_inner();
                if let (Some(a), Some(first)) = (&iface.address, iface.addresses.first()) {
                    self.err(
                        a.span(),
                        "an interface has `address` or `addresses`, not both",
                        format!(
                            "`addresses` lists every address of the interface: write addresses = [\"{}\", \"{}\", ...] and drop `address`",
                            a.get_ref(),
                            first.get_ref()
                        ),
                    );
                }
                let mut addrs_raw: Vec<S<String>> = iface.address.into_iter().collect();
                addrs_raw.extend(iface.addresses);
                let n_addrs = addrs_raw.len();
                let mut addresses = Vec::new();
                for a in addrs_raw {
                    if let Some(net) = self.address(&a, &nname, &iname, &mut scope.assigned) {
                        any_v6 |= net.addr().is_ipv6();
                        addresses.push(net);
                    }
                }
                let (label, more_labels) =
                    self.iface_labels(iface.label, iface.labels, n_addrs, &nname, role);
                interfaces.push(IfaceSpec {
                    name: iname,
                    addresses,
                    label,
                    more_labels,
                });
            }
            let routes_span = node.routes.as_ref().map(|r| r.span());
            scope.route_spans.insert(nname.clone(), routes_span);
            for r in node.routes.map(|r| r.into_inner()).unwrap_or_default() {
                route_items.push((nname.clone(), r));
            }
            let sysctls = self.sysctls(node.sysctls, &nname, scope);
            let mistakes = self.mistake_names(node.mistakes, &nname, scope);
            nodes.push(NodeSpec {
                name: nname,
                role,
                interfaces,
                routes: Vec::new(),
                sysctls,
                serve: node.serve.unwrap_or(true),
                ipv6: node.ipv6.unwrap_or(false) || any_v6,
                mistakes,
            });
        }
        (nodes, route_items)
    }

    fn node_name(&mut self, key: &S<String>) {
        let nname = key.get_ref();
        if !valid_name(nname) {
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
    }

    fn role(&mut self, role: &S<String>, node: &str) -> Role {
        match Role::ALL.iter().find(|(n, _)| *n == role.get_ref()) {
            Some((_, r)) => *r,
            None => {
                self.err(
                    role.span(),
                    format!("unknown role {:?} for node {node}", role.get_ref()),
                    "role is one of: client, router, director, realserver, host",
                );
                Role::Host
            }
        }
    }

    fn iface_name(&mut self, ikey: &S<String>) {
        let iname = ikey.get_ref();
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
    }

    /// One interface address: well formed and unique in the lab.
    fn address(
        &mut self,
        a: &S<String>,
        node: &str,
        iface: &str,
        assigned: &mut Vec<Assigned>,
    ) -> Option<IpNet> {
        let net = match parse_cidr(a.get_ref()) {
            Ok(net) => net,
            Err(help) => {
                self.err(a.span(), format!("bad CIDR {:?}", a.get_ref()), help);
                return None;
            }
        };
        if let IpNet::V6(v6) = net {
            if !lab_v6(v6.addr()) {
                self.err(
                    a.span(),
                    format!(
                        "IPv6 address {} is outside the documentation prefix 2001:db8::/32",
                        net.addr()
                    ),
                    V6_HELP,
                );
                return None;
            }
        }
        if let Some(prev) = assigned.iter().find(|p| p.net.addr() == net.addr()) {
            let line = self.line_of(&prev.span);
            self.err(
                a.span(),
                format!(
                    "duplicate address {}: already on {}:{} (line {line})",
                    net.addr(),
                    prev.node,
                    prev.iface
                ),
                "every interface address must be unique in the lab; pick a free one",
            );
        } else {
            assigned.push(Assigned {
                node: node.to_string(),
                iface: iface.to_string(),
                net,
                span: a.span(),
            });
        }
        Some(net)
    }

    fn sysctls(
        &mut self,
        raw: BTreeMap<S<String>, S<toml::Value>>,
        node: &str,
        scope: &mut Scope,
    ) -> Vec<(String, String)> {
        let mut sysctls = Vec::new();
        for (k, val) in raw {
            let key = k.get_ref().clone();
            scope
                .sysctl_spans
                .insert((node.to_string(), key.clone()), k.span());
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
        sysctls
    }

    /// Routes: the gateway must sit on a subnet of one of the node's own interfaces.
    fn routes(
        &mut self,
        route_items: Vec<(String, S<String>)>,
        nodes: &mut [NodeSpec],
        scope: &Scope,
    ) {
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
            let own: Vec<&Assigned> = scope.assigned.iter().filter(|a| a.node == nname).collect();
            let on_subnet = own
                .iter()
                .any(|a| a.net.contains(&route.via) && a.net.addr() != route.via);
            let family = if route.via.is_ipv4() { "IPv4" } else { "IPv6" };
            let same_family: Vec<&&Assigned> = own
                .iter()
                .filter(|a| a.net.addr().is_ipv4() == route.via.is_ipv4())
                .collect();
            if !on_subnet && same_family.is_empty() && !own.is_empty() {
                // The family follows the gateway: an IPv6 route needs an IPv6 address.
                self.err(
                    r.span(),
                    format!(
                        "gateway {} of node {nname} is {family}, but node {nname} has no {family} address",
                        route.via
                    ),
                    format!(
                        "a route's family follows its gateway: give {nname} an {family} address on the gateway's subnet (addresses = [...] holds both families), or route via a gateway of the family it has"
                    ),
                );
            } else if !on_subnet {
                let subnets: Vec<String> = same_family
                    .iter()
                    .map(|a| a.net.trunc().to_string())
                    .collect();
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
    }

    /// Links and LANs: every endpoint names a real node:iface, each used once, and every
    /// interface is attached somewhere.
    fn wiring(
        &mut self,
        raw_links: Vec<S<RawLink>>,
        raw_lans: BTreeMap<S<String>, S<RawLan>>,
        nodes: &[NodeSpec],
        scope: &Scope,
    ) -> (Vec<LinkSpec>, Vec<LanSpec>) {
        let mut used: HashMap<Endpoint, usize> = HashMap::new();
        let mut links = Vec::new();
        for link in raw_links {
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
                if let Some(ep) = self.endpoint(&e, nodes, &mut used) {
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
        let mut lans_raw: Vec<(S<String>, S<RawLan>)> = raw_lans.into_iter().collect();
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
                if let Some(ep) = self.endpoint(&m, nodes, &mut used) {
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
        if self.diags.is_empty() {
            self.unattached(nodes, &used, scope);
        }
        (links, lans)
    }

    fn unattached(&mut self, nodes: &[NodeSpec], used: &HashMap<Endpoint, usize>, scope: &Scope) {
        for n in nodes {
            for i in &n.interfaces {
                let ep = Endpoint {
                    node: n.name.clone(),
                    iface: i.name.clone(),
                };
                if used.contains_key(&ep) {
                    continue;
                }
                if let Some(span) = scope.iface_spans.get(&(n.name.clone(), i.name.clone())) {
                    self.err(span.clone(), format!("interface {ep} is not attached to any link or LAN"), format!("add \"{ep}\" to a [[links]] endpoints list or a [lans.NAME] members list, or remove the interface"));
                }
            }
        }
    }

    /// Path back to the client, judged from the routes the lab really has: each real server
    /// must get its replies to every client of the lab the way the service's method needs.
    /// A lab without clients has nobody to answer, so nothing is checked.
    fn paths_back(&mut self, services: &[ServiceSpec], net: &Net<'_>, scope: &mut Scope) {
        for svc in services {
            let cips = client_addresses(net, svc.vip);
            for rs in &svc.real_servers {
                let Some(node) = net.node(&rs.node) else {
                    continue;
                };
                // One error per real server and service: the first client it cannot answer
                // shows the fix, which the other clients usually share.
                for cip in &cips {
                    let ok = match svc.method {
                        ForwardMethod::Nat => self.nat_path_back(svc, node, *cip, net, scope),
                        ForwardMethod::Dr | ForwardMethod::Tun => {
                            self.direct_path_back(svc, node, *cip, net, scope)
                        }
                    };
                    if !ok {
                        break;
                    }
                }
            }
        }
    }

    /// DR/TUN: the real server answers from the VIP straight to the client, so it must reach
    /// the client's address by a connected subnet or by routes through forwarding nodes
    /// (the kernel selftest's layout puts it on the client's subnet, with no default route).
    fn direct_path_back(
        &mut self,
        svc: &ServiceSpec,
        node: &NodeSpec,
        cip: IpAddr,
        net: &Net<'_>,
        scope: &Scope,
    ) -> bool {
        let t = net.trace(node, &Goal::Address(cip));
        let Some(failure) = t.failure else {
            return true;
        };
        let target = format!("client {cip}");
        let what = failure_words(
            &t,
            node,
            &failure,
            &format!("its replies to {target}"),
            (&target, cip),
            |whose, sub| format!("{target} is on {whose} subnet {sub} but not on that link or LAN"),
        );
        let decider = decider(&t, node, &failure);
        let client_net = client_net(net, cip).map_or(cip.to_string(), |n| n.to_string());
        let help = if let Failure::Unclaimed { at, net: sub } = failure {
            // A default route cannot help: the connected subnet is the longer prefix.
            format!(
                "plug {}'s interface on {sub} into the client's link or LAN, or move it off {sub} and route via a router",
                at.name
            )
        } else if decider.name == node.name {
            // A forwarding neighbour that does reach the client is the gateway to suggest.
            let gw = neighbours(net, node).into_iter().find(|(_, n)| {
                reach::forwards(n, cip.is_ipv4())
                    && net.trace(n, &Goal::Address(cip)).failure.is_none()
            });
            match gw {
                Some((gw, owner)) => format!(
                    "add routes = [\"default via {gw}\"] on {} ({}'s address on its subnet), or put {} on the client's LAN ({client_net})",
                    node.name, owner.name, node.name
                ),
                None => format!(
                    "give {} a route to {client_net} through a router (routes = [\"default via GWIP\"]), or put it on the client's LAN ({client_net})",
                    node.name
                ),
            }
        } else {
            format!(
                "give {} a route back to the client's subnet {client_net} (or put {} on the client's LAN)",
                decider.name, node.name
            )
        };
        let span = route_span(scope, &decider.name);
        self.err(
            span,
            format!(
                "real server {} has no path back to the client for {} service {}:{}: {what}; DR/TUN replies go straight to the client, not back through the director",
                node.name,
                svc.method.word(),
                svc.vip,
                svc.port
            ),
            help,
        );
        false
    }

    /// NAT: the director rewrites replies (source RIP -> VIP), so the route the real server
    /// uses to reach each client (longest prefix, connected first) must go via an address of
    /// the service's director or its backup. A connected client or another gateway bypasses it.
    fn nat_path_back(
        &mut self,
        svc: &ServiceSpec,
        node: &NodeSpec,
        cip: IpAddr,
        net: &Net<'_>,
        scope: &mut Scope,
    ) -> bool {
        let is_director =
            |n: &NodeSpec| n.name == svc.director || svc.backup.as_ref() == Some(&n.name);
        let dip = neighbours(net, node)
            .into_iter()
            .find(|(_, n)| is_director(n));
        let service = format!("nat service {}:{}", svc.vip, svc.port);
        let no_path = |what: String| {
            format!(
                "real server {} has no path back to the client for {service}: {what}; NAT replies must go back through the director's DIP",
                node.name
            )
        };
        let bypass = |how: String| {
            format!(
                "NAT return path bypasses the director: {} reaches {cip} {how}, not the DIP ({service})",
                node.name
            )
        };
        let hop = net.lookup(node, cip);
        let connected = matches!(hop, Some(Hop::Connected { .. }));
        // A bypass the file declares on purpose is the lesson of its lab, not an error: the
        // real server's route (nat-route-bypasses-director), or a client put on the real
        // servers' LAN (client-on-rs-lan).
        let deliberate = match hop {
            Some(Hop::Connected { .. }) => net
                .nodes()
                .iter()
                .find(|n| {
                    n.role == Role::Client
                        && n.interfaces
                            .iter()
                            .any(|i| i.addresses.iter().any(|a| a.addr() == cip))
                })
                .filter(|c| c.mistakes.contains(&Mistake::ClientOnRsLan))
                .map(|c| (c.name.clone(), Mistake::ClientOnRsLan)),
            Some(Hop::Via { iface, gw, .. }) => net
                .holder_near(node, iface, gw)
                .filter(|n| !is_director(n))
                .and(
                    node.mistakes
                        .contains(&Mistake::NatRouteBypassesDirector)
                        .then(|| (node.name.clone(), Mistake::NatRouteBypassesDirector)),
                ),
            None => None,
        };
        let (msg, route) = match hop {
            None => (no_path(format!("it has no route to client {cip}")), None),
            Some(Hop::Connected { net: sub, .. }) => {
                (bypass(format!("directly on its subnet {sub}")), None)
            }
            Some(Hop::Via { iface, gw, route }) => match net.holder_near(node, iface, gw) {
                Some(n) if is_director(n) => return true,
                Some(n) => (bypass(format!("via {gw} ({})", n.name)), Some(route)),
                None => (
                    no_path(format!(
                        "its route to client {cip} goes via {gw}, which no node on its link or LAN holds"
                    )),
                    Some(route),
                ),
            },
        };
        let help = match (dip, route) {
            (Some((dip, _)), _) if connected => format!(
                "the client shares {}'s subnet, so replies skip the director whatever the routes say: move {} to a LAN behind the director without clients, with routes = [\"default via {dip}\"]",
                node.name, node.name
            ),
            (Some((dip, d)), Some(r)) if r.dest.is_some() => format!(
                "make {}'s route \"{r}\" go via the DIP {dip} ({}'s address on its subnet), or remove it and set routes = [\"default via {dip}\"]: the director must rewrite the replies' source RIP back to the VIP",
                node.name, d.name
            ),
            (Some((dip, d)), _) => format!(
                "set routes = [\"default via {dip}\"] on {} (the DIP, {}'s address on its subnet): the director must rewrite the replies' source RIP back to the VIP",
                node.name, d.name
            ),
            (None, _) => format!(
                "put {} and the director on a common subnet and route {}'s default via the director's DIP",
                node.name, node.name
            ),
        };
        if let Some(key) = deliberate {
            scope.mistakes_seen.entry(key).or_insert(msg);
            return true;
        }
        self.err(route_span(scope, &node.name), msg, help);
        false
    }

    /// `mistakes = [...]` on a node: known names only, kept in file order without repeats.
    fn mistake_names(
        &mut self,
        raw: Option<S<Vec<S<String>>>>,
        node: &str,
        scope: &mut Scope,
    ) -> Vec<Mistake> {
        let mut out = Vec::new();
        for m in raw.map(S::into_inner).unwrap_or_default() {
            match Mistake::from_name(m.get_ref()) {
                Some(k) => {
                    if !out.contains(&k) {
                        out.push(k);
                        scope.mistake_spans.insert((node.to_string(), k), m.span());
                    }
                }
                None => self.err(
                    m.span(),
                    format!("unknown mistake {:?} on node {node}", m.get_ref()),
                    format!(
                        "a deliberate mistake is one of: {} (docs/topology.md, \"Deliberate mistakes\")",
                        Mistake::names()
                    ),
                ),
            }
        }
        out
    }

    /// Every declared mistake gets one loud warning at its name, saying what is wrong on
    /// purpose; a mistake that cannot happen where it is declared is an error, so a lab
    /// never claims a failure it does not build.
    fn mistakes(&mut self, services: &[ServiceSpec], nodes: &[NodeSpec], scope: &Scope) {
        for node in nodes {
            for &m in &node.mistakes {
                let span = scope
                    .mistake_spans
                    .get(&(node.name.clone(), m))
                    .cloned()
                    .unwrap_or(0..0);
                let name = &node.name;
                let seen = scope.mistakes_seen.get(&(name.clone(), m));
                match m {
                    Mistake::NoArpIgnore => {
                        let vips = nodes_vips_on_lo(services, name);
                        if node.role != Role::Realserver || vips.is_empty() {
                            self.err(
                                span,
                                format!("mistake no-arp-ignore does nothing on {name}: it is no real server of a dr or tun service"),
                                "only a DR/TUN real server holds the VIP on lo and needs arp_ignore/arp_announce; remove the mistake or put it on such a server",
                            );
                            continue;
                        }
                        self.warn(
                            span,
                            format!(
                                "deliberately wrong: no-arp-ignore: {name} holds the VIP {} on lo with arp_ignore=0 and arp_announce=0, so it answers ARP for the VIP and sends ARP from it: the router may send clients straight to {name}, past the director",
                                vips.join(", ")
                            ),
                            "a lab mistake on purpose (see its scenario); a real DR/TUN server needs net.ipv4.conf.all.arp_ignore=1 and arp_announce=2, which `up` sets without this mistake",
                        );
                    }
                    Mistake::NatRouteBypassesDirector | Mistake::ClientOnRsLan => {
                        let Some(msg) = seen else {
                            let why = if m == Mistake::ClientOnRsLan {
                                format!("{name} is a client no NAT real server answers directly")
                            } else {
                                format!("{name}'s replies to every client go through the director (or it is no NAT real server)")
                            };
                            self.err(
                                span,
                                format!("mistake {m} declared, but nothing bypasses the director: {why}"),
                                if m == Mistake::ClientOnRsLan {
                                    "put the client on the NAT real servers' LAN, or remove the mistake"
                                } else {
                                    "route the NAT real server's default via a router instead of the DIP, or remove the mistake"
                                },
                            );
                            continue;
                        };
                        let msg = msg.clone();
                        self.warn(
                            span,
                            format!("deliberately wrong: {m}: {msg}"),
                            "a lab mistake on purpose (see its scenario); NAT replies must go back through the director, which rewrites their source RIP to the VIP: route the real servers' default via the DIP and keep clients off their LAN",
                        );
                    }
                }
            }
        }
    }

    /// The VIP must be reachable through the director from every client: the client's route
    /// to the VIP must lead, through forwarding nodes, to an address of the service's director
    /// (or backup), or onto a link or LAN the director is on (it answers ARP for the VIP).
    /// What this does not model is listed in `reach.rs` (policy routing, NAT on routers,
    /// proxy ARP, run-time addresses, ...).
    fn vips_reachable(&mut self, services: &[ServiceSpec], net: &Net<'_>, scope: &Scope) {
        for svc in services {
            let dirs: Vec<&str> = [Some(svc.director.as_str()), svc.backup.as_deref()]
                .into_iter()
                .flatten()
                .collect();
            let clients = net.nodes().iter().filter(|n| {
                n.role == Role::Client
                    && n.interfaces
                        .iter()
                        .flat_map(|i| &i.addresses)
                        .any(|a| a.addr().is_ipv4() == svc.vip.is_ipv4())
            });
            for client in clients {
                let vip = svc.vip;
                let t = net.trace(
                    client,
                    &Goal::Director {
                        vip,
                        directors: &dirs,
                    },
                );
                let Some(failure) = t.failure else {
                    continue;
                };
                let target = vip.to_string();
                let what = failure_words(
                    &t,
                    client,
                    &failure,
                    "its packets",
                    (&target, vip),
                    |whose, sub| {
                        format!("{vip} is on {whose} subnet {sub}, but no director of the service is on that link or LAN to answer ARP for it")
                    },
                );
                let decider = decider(&t, client, &failure);
                let host = if vip.is_ipv4() { 32 } else { 128 };
                let near = neighbours(net, decider);
                let help = if let Some((dip, d)) =
                    near.iter().find(|(_, n)| dirs.contains(&n.name.as_str()))
                {
                    format!(
                        "add routes = [\"{vip}/{host} via {dip}\"] on {} ({}'s address on its subnet)",
                        decider.name, d.name
                    )
                } else if let Some((gw, r)) = near.iter().find(|(_, n)| {
                    reach::forwards(n, vip.is_ipv4())
                        && net
                            .trace(
                                n,
                                &Goal::Director {
                                    vip,
                                    directors: &dirs,
                                },
                            )
                            .failure
                            .is_none()
                }) {
                    format!(
                        "route {}'s packets for {vip} via {gw} ({}, which reaches the director), e.g. routes = [\"default via {gw}\"]",
                        decider.name, r.name
                    )
                } else {
                    format!(
                        "give {} a route to {vip} towards director {} (through routers, or onto the director's LAN)",
                        decider.name, svc.director
                    )
                };
                self.err(
                    route_span(scope, &decider.name),
                    format!(
                        "client {} cannot reach VIP {vip} through director {}: {what}",
                        client.name, svc.director
                    ),
                    help,
                );
            }
        }
    }

    /// TUN real servers with strict reverse-path filtering: the decapsulated packet (source
    /// CIP) arrives on tunl0 (lvstun0 for lvslab's userspace decapsulator) while the route
    /// back to the client leaves by another interface, so rp_filter=1 drops every request.
    /// The kernel uses the larger of `all` and the device's value, hence both are checked;
    /// 2 (loose) passes, as the client is reachable at all. A warning, not an error: `up`
    /// and the decapsulator pin these to 0 when they start, but the same file on a real
    /// kernel with tunl0 would not work.
    fn tun_rp_filter(&mut self, services: &[ServiceSpec], nodes: &[NodeSpec], scope: &Scope) {
        let mut tun_rs: Vec<&str> = services
            .iter()
            .filter(|s| s.method == ForwardMethod::Tun)
            .flat_map(|s| s.real_servers.iter().map(|r| r.node.as_str()))
            .collect();
        tun_rs.sort_unstable();
        tun_rs.dedup();
        for name in tun_rs {
            let Some(node) = nodes.iter().find(|n| n.name == name) else {
                continue;
            };
            for (key, value) in &node.sysctls {
                let dev = key
                    .strip_prefix("net.ipv4.conf.")
                    .and_then(|k| k.strip_suffix(".rp_filter"));
                if !matches!(dev, Some("all" | "tunl0" | "lvstun0")) || value.trim() != "1" {
                    continue;
                }
                let span = scope
                    .sysctl_spans
                    .get(&(name.to_string(), key.clone()))
                    .cloned()
                    .unwrap_or(0..0);
                self.warn(
                    span,
                    format!("strict rp_filter on TUN real server {name} drops the tunnelled requests ({key} = 1)"),
                    "decapsulated packets from the client arrive on tunl0 while the route back to the client leaves by another interface, and strict reverse-path filtering drops them; set it to 0 (what `up` sets) or 2 (loose)",
                );
            }
        }
    }

    /// DR and TUN hand the client's packet on unchanged (DR rewrites only the destination
    /// MAC, TUN wraps it in an outer header), so the real server sees the virtual port.
    fn same_port_for_dr_tun(&mut self, p: &S<i64>, rport: u16, vport: u16, method: ForwardMethod) {
        let how = match method {
            ForwardMethod::Nat => return,
            ForwardMethod::Dr => "only the destination MAC is rewritten",
            ForwardMethod::Tun => "it is only wrapped in an outer IP header",
        };
        if rport == vport {
            return;
        }
        let m = method.word();
        self.err(
            p.span(),
            format!("real server port {rport} differs from the virtual port {vport}, but {m} cannot change the port"),
            format!("{m} forwards the client's packet unchanged ({how}), so the real server sees port {vport}: set port = {vport} or leave it out, or use method = \"nat\" to map {vport} to {rport}"),
        );
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

    /// An interface's `label` (its first address's) or `labels` (one per address, in order).
    fn iface_labels(
        &mut self,
        label: Option<S<String>>,
        labels: Option<S<Vec<S<String>>>>,
        n_addrs: usize,
        node: &str,
        role: Role,
    ) -> (Option<Label>, Vec<Label>) {
        let Some(labels) = labels else {
            // One `label` names every address of the interface: a dual-stack client's v4
            // and v6 addresses are both its CIP.
            let label = label.and_then(|l| self.label(&l, node, role));
            let more = label
                .map(|l| vec![l; n_addrs.saturating_sub(1)])
                .unwrap_or_default();
            return (label, more);
        };
        if let Some(l) = &label {
            self.err(
                l.span(),
                "an interface has `label` or `labels`, not both",
                "`labels` names every address in order; drop `label`, or put it first in `labels`",
            );
        }
        if labels.get_ref().len() != n_addrs {
            self.err(
                labels.span(),
                format!(
                    "{} labels for {n_addrs} addresses on node {node}",
                    labels.get_ref().len()
                ),
                "`labels` gives one label per address, in the order of `addresses`",
            );
        }
        let typed: Vec<Label> = labels
            .into_inner()
            .iter()
            .filter_map(|l| self.label(l, node, role))
            .collect();
        let mut it = typed.into_iter();
        (it.next(), it.collect())
    }

    /// A firewall-mark service's `fwmark` and further `vips` (of `vip`'s family). The director marks and balances them itself, so the pair,
    /// health-check and tunnel machinery (which speak of one VIP) are not offered with it.
    fn fwmark(
        &mut self,
        s: &RawService,
        nodes: &[NodeSpec],
        assigned: &[Assigned],
    ) -> (Option<u32>, Vec<IpAddr>) {
        let mark = s
            .fwmark
            .as_ref()
            .and_then(|m| match u32::try_from(*m.get_ref()) {
                Ok(v) if v > 0 => Some(v),
                _ => {
                    self.err(
                        m.span(),
                        format!("fwmark {} is out of range", m.get_ref()),
                        format!("a firewall mark is a whole number from 1 to {}", u32::MAX),
                    );
                    None
                }
            });
        let mut vips = Vec::new();
        if let Some(list) = &s.vips {
            if s.fwmark.is_none() {
                self.err(
                    list.span(),
                    "`vips` without `fwmark`",
                    "several VIPs share one scheduler table only in a firewall-mark service: add fwmark = 1",
                );
            }
            // One table per family (ip_vs_service_fwm_get keys on af and mark): the further
            // VIPs are of `vip`'s family.
            let v6 = s.vip.get_ref().contains(':');
            let family = if v6 { "IPv6" } else { "IPv4" };
            for v in list.get_ref() {
                match IpAddr::from_str(v.get_ref()) {
                    Ok(ip) if ip.is_ipv6() != v6 => self.err(
                        v.span(),
                        format!("VIP {ip} is not {family} like vip {}", s.vip.get_ref()),
                        "a firewall-mark service is of one address family (ipvsadm -f N for IPv4, -f N -6 for IPv6): list VIPs of vip's family, and give the other family a service of its own",
                    ),
                    Ok(IpAddr::V6(a)) if !lab_v6(a) => self.err(
                        v.span(),
                        format!("IPv6 VIP {a} is outside the documentation prefix 2001:db8::/32"),
                        V6_HELP,
                    ),
                    Ok(ip) => {
                        if vips.contains(&ip) || IpAddr::from_str(s.vip.get_ref()) == Ok(ip) {
                            self.err(
                                v.span(),
                                format!("VIP {ip} is listed twice"),
                                "each address once: `vip` is the first, `vips` the others",
                            );
                        } else if let Some(ip) = self.vip_is_free(v, ip, nodes, assigned) {
                            vips.push(ip);
                        }
                    }
                    Err(_) => self.err(
                        v.span(),
                        format!("bad VIP {:?}", v.get_ref()),
                        "write a plain address without prefix, e.g. \"192.168.1.251\" or \"2001:db8:1::251\"",
                    ),
                }
            }
        }
        if let Some(m) = &s.fwmark {
            let unsupported = [
                (s.backup.is_some(), "a backup director"),
                (s.health.is_some(), "health checks"),
                (s.method.get_ref() == "tun", "method tun"),
            ];
            for (_, what) in unsupported.iter().filter(|(on, _)| *on) {
                self.err(
                    m.span(),
                    format!("a firewall-mark service with {what} is not supported"),
                    "use fwmark with a plain NAT or DR service, or drop fwmark and vips",
                );
            }
        }
        (mark, vips)
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

    /// A word of the core's vocabulary (a scheduler, a method), or a located error.
    fn word<T: FromStr>(
        &mut self,
        w: &S<String>,
        what: &str,
        help: impl Into<String>,
    ) -> Option<T> {
        let parsed = w.get_ref().parse().ok();
        if parsed.is_none() {
            self.err(w.span(), format!("unknown {what} {:?}", w.get_ref()), help);
        }
        parsed
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
        if let (Some(b), Some(d)) = (&s.backup, &director) {
            if b.get_ref() == d {
                self.err(
                    b.span(),
                    format!("{d} is both the director and its own backup"),
                    "backup names a second director node (role = \"director\") that takes the VIP over when this one fails",
                );
            }
        }
        let vip = match IpAddr::from_str(s.vip.get_ref()) {
            Ok(IpAddr::V6(v)) if !lab_v6(v) => {
                self.err(
                    s.vip.span(),
                    format!("IPv6 VIP {v} is outside the documentation prefix 2001:db8::/32"),
                    V6_HELP,
                );
                None
            }
            Ok(v) => self.vip_is_free(&s.vip, v, nodes, assigned),
            Err(_) => {
                self.err(
                    s.vip.span(),
                    format!("bad VIP {:?}", s.vip.get_ref()),
                    "write a plain address without prefix, e.g. \"192.168.1.250\"",
                );
                None
            }
        };
        let (fwmark, vips) = self.fwmark(&s, nodes, assigned);
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
        let scheduler = self
            .word(&s.scheduler, "scheduler", scheduler_help())
            .unwrap_or(Scheduler::Wlc);
        let method = self
            .word(&s.method, "forwarding method", METHOD_HELP)
            .unwrap_or(ForwardMethod::Nat);
        let persistence = s
            .persistence
            .as_ref()
            .map(|_| self.u32_field(&s.persistence, "persistence", 360));
        let real_servers = s
            .real_servers
            .into_inner()
            .into_iter()
            .filter_map(|r| self.real_server(r, nodes, assigned, vip, port, method))
            .collect();
        let health = s.health.map(|h| self.health(h));
        let vrrp = match (s.vrrp, &s.backup) {
            (Some(v), None) => {
                self.err(
                    v.span(),
                    "vrrp settings without a backup director",
                    "VRRP runs between a MASTER and a BACKUP: add backup = \"NODE\" (a second director) or remove vrrp",
                );
                None
            }
            (v, Some(_)) => self.vrrp(v, director.as_deref(), backup.as_deref()),
            (None, None) => None,
        };
        if self.diags.len() != before {
            return None;
        }
        Some(ServiceSpec {
            fwmark,
            vips,
            director: director?,
            backup,
            vip: vip?,
            port: port?,
            protocol,
            scheduler,
            method,
            persistence,
            real_servers,
            health: health.flatten(),
            vrrp,
        })
    }

    /// A whole number in `range` for `what`, or a located error and `default`.
    fn small(
        &mut self,
        v: &Option<S<i64>>,
        what: &str,
        range: Range<i64>,
        default: i64,
        help: &str,
    ) -> i64 {
        let Some(v) = v else { return default };
        if range.contains(v.get_ref()) {
            *v.get_ref()
        } else {
            self.err(
                v.span(),
                format!("{what} {} is out of range", v.get_ref()),
                help.to_owned(),
            );
            default
        }
    }

    /// A service's `vrrp = { ... }` (defaults when absent): keepalived's limits and defaults.
    fn vrrp(
        &mut self,
        v: Option<S<RawVrrp>>,
        director: Option<&str>,
        backup: Option<&str>,
    ) -> Option<VrrpSpec> {
        let d = VrrpSpec::new();
        let Some(v) = v else { return Some(d) };
        let span = v.span();
        let v = v.into_inner();
        let byte = |x: i64| u8::try_from(x).unwrap_or(0);
        let vrid = self.small(
            &v.vrid,
            "vrid",
            1..256,
            d.vrid.into(),
            "vrid is 1 to 255 (keepalived's virtual_router_id), the same on both directors",
        );
        let version = self.small(
            &v.version,
            "VRRP version",
            2..4,
            d.version.into(),
            "version is 2 (RFC 3768, keepalived's default) or 3 (RFC 5798)",
        );
        let priority = self.small(
            &v.priority,
            "priority",
            1..255,
            d.priority.into(),
            "priority is 1 to 254; the higher one is MASTER",
        );
        let backup_priority = self.small(
            &v.backup_priority,
            "backup_priority",
            1..255,
            d.backup_priority.into(),
            "backup_priority is 1 to 254; the higher one is MASTER",
        );
        let sync_id = self.small(
            &v.sync_id,
            "sync_id",
            0..256,
            d.sync_id.into(),
            "sync_id is 0 to 255, as ipvsadm --syncid takes it",
        );
        let advert_int_ms = match &v.advert_int_ms {
            None => d.advert_int_ms,
            Some(a) => {
                let x = *a.get_ref();
                let ok = if version == 2 {
                    (1000..=255_000).contains(&x) && x % 1000 == 0
                } else {
                    (10..=40_950).contains(&x) && x % 10 == 0
                };
                if !ok {
                    let help = if version == 2 {
                        "VRRPv2 advertises whole seconds: 1000 to 255000 in steps of 1000 (or set version = 3 for sub-second adverts)"
                    } else {
                        "VRRPv3 advertises centiseconds: 10 to 40950 in steps of 10"
                    };
                    self.err(
                        a.span(),
                        format!("advert_int_ms {x} is not a VRRPv{version} interval"),
                        help,
                    );
                }
                u64::try_from(x).unwrap_or(d.advert_int_ms)
            }
        };
        let mut keepalived = Vec::new();
        if let Some(k) = &v.keepalived {
            for n in k.get_ref() {
                if Some(n.get_ref().as_str()) == director || Some(n.get_ref().as_str()) == backup {
                    keepalived.push(n.get_ref().clone());
                } else {
                    self.err(
                        n.span(),
                        format!("{:?} is not one of this service's directors", n.get_ref()),
                        format!(
                            "keepalived names the director or the backup whose VRRP Debian's keepalived speaks: {}",
                            [director, backup].into_iter().flatten().collect::<Vec<_>>().join(" or ")
                        ),
                    );
                }
            }
            let named = |n: Option<&str>| n.is_some_and(|n| keepalived.iter().any(|k| k == n));
            if named(director) && named(backup) {
                self.err(
                    span,
                    "both directors run keepalived",
                    "keepalived = [...] names at most one of the pair: the interop lab pairs keepalived with lvslab",
                );
            }
        }
        Some(VrrpSpec {
            vrid: byte(vrid),
            version: byte(version),
            advert_int_ms,
            priority: byte(priority),
            backup_priority: byte(backup_priority),
            preempt: v.preempt.unwrap_or(d.preempt),
            sync: v.sync.unwrap_or(d.sync),
            sync_id: byte(sync_id),
            keepalived,
        })
    }

    /// A whole number of milliseconds in `1..=max`, or a located error.
    fn millis(&mut self, v: &Option<S<i64>>, what: &str, default: u64, max: u64) -> u64 {
        let Some(v) = v else { return default };
        match u64::try_from(*v.get_ref()) {
            Ok(x) if (1..=max).contains(&x) => x,
            _ => {
                self.err(
                    v.span(),
                    format!("{what} {} is out of range", v.get_ref()),
                    format!("{what} is 1 to {max} (milliseconds)"),
                );
                default
            }
        }
    }

    /// A `health = { ... }` table: the check and its own fields, timings, sorry server.
    fn health(&mut self, h: S<RawHealth>) -> Option<HealthSpec> {
        let before = self.diags.len();
        let h_span = h.span();
        let h = h.into_inner();
        let kind = h.check.as_ref().map_or("tcp", |c| c.get_ref().as_str());
        // Fields that belong to one check kind only: named on another, they would be ignored.
        let only = |field: &str| match field {
            "path" | "status" | "digest" => "http",
            "payload" | "expect" => "udp",
            _ => "command",
        };
        let extra: Vec<(&str, std::ops::Range<usize>)> = [
            ("path", h.path.as_ref().map(|v| v.span())),
            ("status", h.status.as_ref().map(|v| v.span())),
            ("payload", h.payload.as_ref().map(|v| v.span())),
            ("command", h.command.as_ref().map(|v| v.span())),
            ("digest", h.digest.as_ref().map(|v| v.span())),
            ("expect", h.expect.as_ref().map(|v| v.span())),
        ]
        .into_iter()
        .filter_map(|(f, s)| s.map(|s| (f, s)))
        .collect();
        let check = match kind {
            "tcp" => Some(HealthCheck::Tcp),
            "http" => {
                let status = match &h.status {
                    None => Some(200),
                    Some(s) => match u16::try_from(*s.get_ref()) {
                        Ok(v) if (100..=599).contains(&v) => Some(v),
                        _ => {
                            self.err(
                                s.span(),
                                format!("HTTP status {} is out of range", s.get_ref()),
                                "an HTTP status is 100 to 599, e.g. 200",
                            );
                            None
                        }
                    },
                };
                let path = h.path.as_ref().map_or("/", |p| p.get_ref().as_str());
                if !path.starts_with('/') || path.contains(char::is_whitespace) {
                    let span = h.path.as_ref().map_or(h_span.clone(), |p| p.span());
                    self.err(
                        span,
                        format!("bad HTTP path {path:?}"),
                        "a path starts with / and has no spaces, e.g. \"/health\"",
                    );
                }
                let digest = match &h.digest {
                    None => None,
                    Some(d) => {
                        let v = d.get_ref().to_ascii_lowercase();
                        if v.len() != 32 || !v.chars().all(|c| c.is_ascii_hexdigit()) {
                            self.err(
                                d.span(),
                                format!("bad digest {:?}", d.get_ref()),
                                "digest is the body's MD5 as 32 hex digits, as keepalived's genhash prints it (e.g. `curl -s URL | md5sum`)",
                            );
                        }
                        Some(v)
                    }
                };
                status.map(|status| HealthCheck::Http {
                    path: path.to_owned(),
                    status,
                    digest,
                })
            }
            "udp" => Some(HealthCheck::Udp {
                payload: h
                    .payload
                    .as_ref()
                    .map_or_else(|| "health".to_owned(), |p| p.get_ref().clone()),
                expect: h.expect.as_ref().map(|e| e.get_ref().clone()),
            }),
            "command" => match &h.command {
                Some(c) if !c.get_ref().is_empty() && !c.get_ref()[0].is_empty() => {
                    Some(HealthCheck::Command {
                        command: c.get_ref().clone(),
                    })
                }
                other => {
                    let span = other.as_ref().map_or(h_span.clone(), |c| c.span());
                    self.err(
                        span,
                        "a command check needs a program to run",
                        "add command = [\"sh\", \"-c\", \"...\"]; it runs in the director's namespace and exit status 0 means healthy",
                    );
                    None
                }
            },
            other => {
                let span = h.check.as_ref().map_or(h_span.clone(), |c| c.span());
                self.err(
                    span,
                    format!("unknown health check {other:?}"),
                    "check is \"tcp\", \"http\", \"udp\" or \"command\"",
                );
                None
            }
        };
        if check.is_some() {
            for (field, span) in extra.iter().filter(|(f, _)| only(f) != kind) {
                self.err(
                    span.clone(),
                    format!("`{field}` does not apply to a {kind} check"),
                    format!(
                        "`{field}` belongs to check = \"{}\"; remove it",
                        only(field)
                    ),
                );
            }
        }
        let interval_ms = self.millis(
            &h.interval_ms,
            "interval_ms",
            HealthSpec::INTERVAL_MS,
            3_600_000,
        );
        let timeout_ms = self.millis(&h.timeout_ms, "timeout_ms", HealthSpec::TIMEOUT_MS, 60_000);
        let delay_before_retry_ms = self.millis(
            &h.delay_before_retry_ms,
            "delay_before_retry_ms",
            HealthSpec::DELAY_BEFORE_RETRY_MS,
            3_600_000,
        );
        let retries = match &h.retries {
            None => HealthSpec::RETRIES,
            Some(r) => match u32::try_from(*r.get_ref()) {
                Ok(x) if x <= 100 => x,
                _ => {
                    self.err(
                        r.span(),
                        format!("retries {} is out of range", r.get_ref()),
                        "retries is 0 to 100: failed checks tolerated before a server is down",
                    );
                    HealthSpec::RETRIES
                }
            },
        };
        let sorry_server = match &h.sorry_server {
            None => None,
            Some(s) => match s.get_ref().parse::<std::net::SocketAddr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    self.err(
                        s.span(),
                        format!("bad sorry_server {:?}", s.get_ref()),
                        "write ADDR:PORT, e.g. \"192.168.1.210:80\"",
                    );
                    None
                }
            },
        };
        if self.diags.len() != before {
            return None;
        }
        Some(HealthSpec {
            check: check?,
            interval_ms,
            timeout_ms,
            retries,
            delay_before_retry_ms,
            inhibit_on_failure: h.inhibit_on_failure.unwrap_or(false),
            sorry_server,
        })
    }
    /// A VIP must not be an interface address of a director or real server: the director
    /// would then answer for it as a host instead of balancing it.
    fn vip_is_free(
        &mut self,
        at: &S<String>,
        vip: IpAddr,
        nodes: &[NodeSpec],
        assigned: &[Assigned],
    ) -> Option<IpAddr> {
        let taken = assigned.iter().find(|a| {
            a.net.addr() == vip
                && nodes.iter().any(|n| {
                    n.name == a.node && matches!(n.role, Role::Director | Role::Realserver)
                })
        });
        let Some(a) = taken else {
            return Some(vip);
        };
        let line = self.line_of(&a.span);
        self.err(
            at.span(),
            format!(
                "VIP {vip} is the interface address of {}:{} (line {line})",
                a.node, a.iface
            ),
            "the VIP is an address of its own: the director answers for it without holding it and DR/TUN real servers get it on lo; pick a free address on the real servers' subnet (the seed uses 192.168.1.250)",
        );
        None
    }

    fn real_server(
        &mut self,
        r: S<RawRealServer>,
        nodes: &[NodeSpec],
        assigned: &[Assigned],
        vip: Option<IpAddr>,
        port: Option<u16>,
        method: ForwardMethod,
    ) -> Option<RealServerSpec> {
        let r_span = r.span();
        let r = r.into_inner();
        let node = self.node_of_role(&r.node, nodes, Role::Realserver, "real server")?;
        let own: Vec<IpAddr> = assigned
            .iter()
            .filter(|a| a.node == node)
            .map(|a| a.net.addr())
            .collect();
        let address = match &r.address {
            Some(a) => match IpAddr::from_str(a.get_ref()) {
                Ok(ip) if vip.is_some_and(|v| v.is_ipv4() != ip.is_ipv4()) => {
                    let (fam, vip_fam) = if ip.is_ipv4() {
                        ("IPv4", "IPv6")
                    } else {
                        ("IPv6", "IPv4")
                    };
                    let same: Vec<String> = own
                        .iter()
                        .filter(|o| o.is_ipv4() != ip.is_ipv4())
                        .map(ToString::to_string)
                        .collect();
                    self.err(
                        a.span(),
                        format!("real server address {ip} is {fam}, but the service's VIP is {vip_fam}"),
                        if same.is_empty() {
                            format!("a service's VIP and real servers have one family: give {node} an {vip_fam} address, or write a second [[services]] for {fam}")
                        } else {
                            format!("a service's VIP and real servers have one family: use {node}'s {vip_fam} address ({}), and write a second [[services]] for {fam}", same.join(", "))
                        },
                    );
                    None
                }
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
                        r_span,
                        format!("real server {node} has no address to use"),
                        "give it address = \"...\" or an interface address",
                    );
                }
                found
            }
        };
        let rport = match &r.port {
            Some(p) => {
                let rp = self.port(p, "real server port");
                if let (Some(rp), Some(vport)) = (rp, port) {
                    self.same_port_for_dr_tun(p, rp, vport, method);
                }
                rp
            }
            None => port,
        };
        let weight = self.u32_field(&r.weight, "weight", 1);
        let u_threshold = self.u32_field(&r.u_threshold, "u_threshold", 0);
        let l_threshold = self.u32_field(&r.l_threshold, "l_threshold", 0);
        Some(RealServerSpec {
            node,
            address: address?,
            port: rport?,
            weight,
            u_threshold,
            l_threshold,
        })
    }
}

/// Lab IPv6 addresses come from the documentation prefix 2001:db8::/32 (RFC 3849) only, as
/// the client side of IPv4 comes from RFC 5737: nothing in a lab can look like a real host.
fn lab_v6(a: std::net::Ipv6Addr) -> bool {
    a.segments()[..2] == [0x2001, 0x0db8]
}

const V6_HELP: &str = "lab IPv6 addresses come from 2001:db8::/32 (RFC 3849), e.g. \"2001:db8:1::201/64\"; link-local and global addresses are not used in a lab";

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

/// Every client address of the VIP's family: whom DR/TUN and NAT replies must reach.
fn client_addresses(net: &Net<'_>, vip: IpAddr) -> Vec<IpAddr> {
    net.nodes()
        .iter()
        .filter(|n| n.role == Role::Client)
        .flat_map(|n| &n.interfaces)
        .flat_map(|i| &i.addresses)
        .map(IpNet::addr)
        .filter(|a| a.is_ipv4() == vip.is_ipv4())
        .collect()
}

/// The client subnet that holds `cip`, to name in a fix.
fn client_net(net: &Net<'_>, cip: IpAddr) -> Option<IpNet> {
    net.nodes()
        .iter()
        .flat_map(|n| &n.interfaces)
        .flat_map(|i| &i.addresses)
        .find(|a| a.addr() == cip)
        .map(IpNet::trunc)
}

/// Addresses of other nodes on `node`'s subnets and links or LANs: the gateways it could use.
fn neighbours<'a>(net: &Net<'a>, node: &NodeSpec) -> Vec<(IpAddr, &'a NodeSpec)> {
    let mut out = Vec::new();
    for i in &node.interfaces {
        for n in net.nodes().iter().filter(|n| n.name != node.name) {
            for j in &n.interfaces {
                if !net.same_segment((&node.name, &i.name), (&n.name, &j.name)) {
                    continue;
                }
                for b in &j.addresses {
                    if i.addresses.iter().any(|a| a.contains(&b.addr())) {
                        out.push((b.addr(), n));
                    }
                }
            }
        }
    }
    out
}

/// The node whose routing decision made a trace fail, where the fix goes: the sender that
/// chose a gateway that does not forward, else the node that had the packet.
fn decider<'a>(t: &reach::Trace<'a>, from: &'a NodeSpec, f: &Failure<'a>) -> &'a NodeSpec {
    match f {
        Failure::NotForwarding { .. } => t
            .steps
            .len()
            .checked_sub(2)
            .and_then(|i| t.steps.get(i))
            .map_or(from, |s| s.node),
        Failure::Loop { .. } => from,
        Failure::NoRoute { at } | Failure::NoGateway { at, .. } | Failure::Unclaimed { at, .. } => {
            at
        }
    }
}

/// A node's `routes = [...]` span, else its `[nodes.NAME]` header: where a routing fix goes.
fn route_span(scope: &Scope, node: &str) -> Range<usize> {
    scope
        .route_spans
        .get(node)
        .cloned()
        .flatten()
        .or_else(|| scope.node_spans.get(node).cloned())
        .unwrap_or(0..0)
}

/// Why a node does not forward, in the words of its settings.
fn not_forwarding(node: &NodeSpec, dst: IpAddr) -> String {
    let key = if dst.is_ipv4() {
        "ip_forward"
    } else {
        "forwarding"
    };
    format!("role {}, {key}=0", node.role)
}

/// A failed trace in words: `flow` names what travels ("its packets", "its replies to
/// client X"), `target` where to; `unclaimed` words the case of a subnet nobody on the
/// link answers for (given whose subnet and which).
fn failure_words(
    t: &reach::Trace<'_>,
    origin: &NodeSpec,
    failure: &Failure<'_>,
    flow: &str,
    (target, dst): (&str, IpAddr),
    unclaimed: impl Fn(&str, &str) -> String,
) -> String {
    let whose = |at: &NodeSpec| {
        if at.name == origin.name {
            "its".to_string()
        } else {
            format!("{}'s", at.name)
        }
    };
    match failure {
        Failure::NoRoute { at } if at.name == origin.name => {
            format!("it has no route to {target}")
        }
        Failure::NoRoute { at } => format!(
            "{flow} go {}, and {} has no route to {target}",
            t.path(),
            at.name
        ),
        Failure::NoGateway { at, gw } => format!(
            "{} route to {target} goes via {gw}, which no node on its link or LAN holds",
            whose(at)
        ),
        Failure::NotForwarding { at } => format!(
            "{flow} go {}, and {} does not forward ({})",
            t.path(),
            at.name,
            not_forwarding(at, dst)
        ),
        Failure::Unclaimed { at, net: sub } => unclaimed(&whose(at), &sub.to_string()),
        Failure::Loop { at } => format!("{flow} loop ({} back to {})", t.path(), at.name),
    }
}

/// The VIPs of the dr/tun services that name `node` as a real server (what `up` puts on lo).
fn nodes_vips_on_lo(services: &[ServiceSpec], node: &str) -> Vec<String> {
    let mut v: Vec<String> = services
        .iter()
        .filter(|s| matches!(s.method, ForwardMethod::Dr | ForwardMethod::Tun))
        .filter(|s| s.real_servers.iter().any(|r| r.node == node))
        .map(|s| s.vip.to_string())
        .collect();
    v.sort();
    v.dedup();
    v
}
