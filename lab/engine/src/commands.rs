//! A lab as the commands a person types: `lvslab commands TOPOLOGY` prints a bash script
//! that builds, node by node, the lab `lvslab up` builds over netlink, in the seed
//! tutorial's four steps (gather the topology, configure the director, configure the real
//! servers, test), then tears it down.
//!
//! Names and addresses come from the builder's own plan ([`lvslab_netns::build::plan`]:
//! switch port names, where a kernel director's VIP goes) and the director's table from
//! [`crate::director_lines`], so the script and `up` cannot drift apart. Nothing here runs
//! a command: the output is text, the same for the same topology and options.
use std::fmt::Write as _;
use std::net::IpAddr;

use lvslab_netns::build::plan;
use lvslab_netns::{
    Backend, ForwardMethod, IfaceInfo, LabState, NodeInfo, Peer, Protocol, Role, ServiceSpec,
    Topology,
};

/// The namespace prefix when none is given: not `lvs-`, so a lab typed by hand never
/// collides with lvslab's own labs (nor is removed by `lvslab down --all`, which clears
/// leftover `lvs-*` namespaces).
pub const DEFAULT_PREFIX: &str = "lvsh-";

/// What the script looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandsOptions {
    /// Kernel IPVS configured with ipvsadm (what a person at a shell uses), or lvslab's
    /// userspace director started by hand.
    pub backend: Backend,
    /// Namespace names are `PREFIX` + node name (and `PREFIX` + `sw` for the LAN switch).
    pub prefix: String,
}

impl Default for CommandsOptions {
    fn default() -> Self {
        Self {
            backend: Backend::Ipvs,
            prefix: DEFAULT_PREFIX.to_owned(),
        }
    }
}

/// A prefix that cannot name the script's namespaces.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("namespace prefix {prefix:?} cannot be used: {why}\n  help: e.g. --prefix {DEFAULT_PREFIX} or --prefix lab1-")]
pub struct BadPrefix {
    /// The prefix given.
    pub prefix: String,
    /// What is wrong with it.
    pub why: &'static str,
}

/// Check a namespace prefix: it ends up in namespace names, file names under /run and an
/// unquoted shell word.
pub fn check_prefix(prefix: &str) -> Result<(), BadPrefix> {
    let bad = |why| {
        Err(BadPrefix {
            prefix: prefix.to_owned(),
            why,
        })
    };
    if prefix.is_empty() {
        return bad("it is empty");
    }
    if prefix.len() > 32 {
        return bad("it is longer than 32 characters");
    }
    if !prefix
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return bad("use lower-case letters, digits, '-' or '_'");
    }
    if prefix.starts_with(lvslab_netns::state::NETNS_PREFIX) {
        return bad(
            "lvslab's own labs use lvs-, and `lvslab down --all` removes leftover lvs-* namespaces",
        );
    }
    Ok(())
}

/// The bash script that builds `topo` by hand. Fails only on a bad prefix.
pub fn lab_commands(topo: &Topology, opts: &CommandsOptions) -> Result<String, BadPrefix> {
    check_prefix(&opts.prefix)?;
    // The kernel plan says where a director's VIP goes; the userspace form shows those
    // commands as what its director replaces.
    let st = plan("commands", topo, Backend::Ipvs);
    let g = Gen {
        topo,
        st: &st,
        p: &opts.prefix,
        backend: opts.backend,
    };
    let mut s = Script::default();
    g.header(&mut s);
    g.step1(&mut s);
    g.plumbing(&mut s);
    g.step2(&mut s);
    g.step3(&mut s);
    g.step4(&mut s);
    g.teardown(&mut s);
    g.dispatch(&mut s);
    Ok(s.out)
}

/// Text being written, with the current indentation.
#[derive(Default)]
struct Script {
    out: String,
    indent: usize,
}

impl Script {
    fn line(&mut self, text: &str) {
        if text.is_empty() {
            self.out.push('\n');
            return;
        }
        for _ in 0..self.indent {
            self.out.push_str("    ");
        }
        self.out.push_str(text);
        self.out.push('\n');
    }

    /// A comment line (a heading, a reason, a table row).
    fn why(&mut self, text: &str) {
        self.line(&format!("# {text}"));
    }

    fn blank(&mut self) {
        self.out.push('\n');
    }

    fn section(&mut self, title: &str) {
        self.blank();
        let rule = "─".repeat(86usize.saturating_sub(title.chars().count()));
        self.line(&format!("# ── {title} {rule}"));
    }

    fn open(&mut self, func: &str) {
        self.line(&format!("{func}() {{"));
        self.indent += 1;
    }

    fn close(&mut self) {
        self.indent = self.indent.saturating_sub(1);
        self.line("}");
    }
}

struct Gen<'a> {
    topo: &'a Topology,
    st: &'a LabState,
    p: &'a str,
    backend: Backend,
}

/// How a method's packets reach a real server, in one phrase.
fn method_words(m: ForwardMethod) -> &'static str {
    match m {
        ForwardMethod::Nat => {
            "nat (ipvsadm -m, masquerading: the director rewrites addresses both ways)"
        }
        ForwardMethod::Dr => {
            "dr (ipvsadm -g, gatewaying: the director rewrites only the destination MAC)"
        }
        ForwardMethod::Tun => {
            "tun (ipvsadm -i, ipip: the director wraps the packet in IPIP to the RIP)"
        }
    }
}

fn host(a: IpAddr) -> String {
    match a {
        IpAddr::V4(v) => v.to_string(),
        IpAddr::V6(v) => format!("[{v}]"),
    }
}

/// `'text'` for bash (the script's own words only, but a quote must not break it).
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Rows of a comment table, columns padded to their widest cell.
fn table(s: &mut Script, rows: &[Vec<String>]) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|x| x.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in rows {
        let mut l = String::from("  ");
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == r.len() {
                l.push_str(cell);
            } else {
                let _ = write!(l, "{cell:<w$}  ", w = widths[c]);
            }
        }
        s.why(l.trim_end());
    }
}

impl Gen<'_> {
    fn ns(&self, node: &str) -> String {
        format!("{}{node}", self.p)
    }

    fn sw(&self) -> String {
        format!("{}sw", self.p)
    }

    /// Every namespace, nodes in file order then the switch.
    fn all_ns(&self) -> Vec<String> {
        let mut v: Vec<String> = self.st.nodes.iter().map(|n| self.ns(&n.name)).collect();
        if self.st.switch_netns.is_some() {
            v.push(self.sw());
        }
        v
    }

    /// `ip netns exec NS CMD`.
    fn exec(&self, node: &str, cmd: &str) -> String {
        format!("ip netns exec {} {cmd}", self.ns(node))
    }

    fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.st.nodes.iter().find(|n| n.name == name)
    }

    /// The interface's addresses as the topology file gives them (the plan may add a
    /// kernel director's VIP, which step 2 adds by hand).
    fn file_addresses(&self, node: &str, iface: &str) -> Vec<String> {
        self.topo
            .node(node)
            .and_then(|n| n.interfaces.iter().find(|i| i.name == iface))
            .map(|i| i.addresses.iter().map(ToString::to_string).collect())
            .unwrap_or_default()
    }

    fn services_of_rs(&self, node: &str) -> Vec<&ServiceSpec> {
        self.topo
            .services
            .iter()
            .filter(|s| s.real_servers.iter().any(|r| r.node == node))
            .collect()
    }

    /// The interface a packet from `node` to `dst` leaves by: on-link first, else the
    /// longest matching route's gateway.
    fn egress<'n>(&self, node: &'n NodeInfo, dst: IpAddr) -> Option<&'n IfaceInfo> {
        if let Some(i) = node.iface_towards(dst) {
            return Some(i);
        }
        node.routes
            .iter()
            .filter(|r| r.dest.is_none_or(|d| d.contains(&dst)))
            .max_by_key(|r| r.dest.map_or(0, |d| d.prefix_len()))
            .and_then(|r| node.iface_towards(r.via))
    }

    fn label_of(&self, node: &str) -> String {
        self.node(node)
            .and_then(|n| n.interfaces.iter().find_map(|i| i.label))
            .map(|l| format!(" ({l})"))
            .unwrap_or_default()
    }

    fn header(&self, s: &mut Script) {
        let t = self.topo;
        s.line("#!/usr/bin/env bash");
        s.why(&format!("{} by hand: {}", t.name, t.description));
        s.why(&format!(
            "Printed by `lvslab commands {} --backend {} --prefix {}`: the lab `lvslab up {}` builds,",
            t.name, self.backend, self.p, t.name
        ));
        s.why("as the commands a person types, in the seed tutorial's four steps. Run it as root:");
        s.why("  bash THIS-FILE up     plumbing, step 2 (director), step 3 (real servers), step 4 (test)");
        s.why("  bash THIS-FILE down   the teardown: stop what it started, delete its namespaces");
        s.why(&format!(
            "Every node is a network namespace {}NODE; a command run inside one starts with",
            self.p
        ));
        s.why(&format!(
            "`ip netns exec {}NODE`. Each step is a function below; read them in order.",
            self.p
        ));
        s.line("set -euo pipefail");
        s.blank();
        s.why("wait_for WHAT CMD...: retry CMD for up to 5 s (a daemon started with & needs a moment).");
        s.open("wait_for");
        s.line("local what=$1");
        s.line("shift");
        s.line("for _ in $(seq 50); do");
        s.line("    \"$@\" 2>/dev/null && return 0");
        s.line("    sleep 0.1");
        s.line("done");
        s.line("echo \"timed out waiting for $what\" >&2");
        s.line("return 1");
        s.close();
    }

    fn step1(&self, s: &mut Script) {
        let kernel = self.backend == Backend::Ipvs;
        s.section("Step 1: gather the topology (no commands: the plan the rest follows)");
        s.why("IP plan. CIP: client, GWIP: router towards the real servers or clients, VIP: the service,");
        s.why("DIP: director towards the real servers, RIP: real servers.");
        let mut rows = vec![strs(&["node", "role", "interface", "address", "label"])];
        for n in &self.st.nodes {
            for i in &n.interfaces {
                for a in self.file_addresses(&n.name, &i.name) {
                    rows.push(vec![
                        n.name.clone(),
                        n.role.to_string(),
                        i.name.clone(),
                        a,
                        i.label.map_or_else(|| "-".to_owned(), |l| l.to_string()),
                    ]);
                }
            }
            for (iface, vip) in self.director_vips(n) {
                let (iface, label) = if kernel {
                    (iface, "VIP (step 2)".to_owned())
                } else {
                    (
                        "-".to_owned(),
                        "VIP (answered by lvslab director)".to_owned(),
                    )
                };
                rows.push(vec![n.name.clone(), n.role.to_string(), iface, vip, label]);
            }
            if n.role == Role::Realserver {
                for a in &n.lo_addresses {
                    rows.push(vec![
                        n.name.clone(),
                        n.role.to_string(),
                        "lo".to_owned(),
                        a.to_string(),
                        "VIP (hidden from ARP, step 3)".to_owned(),
                    ]);
                }
            }
        }
        table(s, &rows);
        s.why("Wiring:");
        let mut rows = Vec::new();
        for l in &self.topo.links {
            let [a, b] = &l.endpoints;
            rows.push(vec![
                "link".to_owned(),
                format!("{a} <-> {b}"),
                "a veth pair".to_owned(),
            ]);
        }
        for lan in &self.topo.lans {
            let members: Vec<String> = lan.members.iter().map(ToString::to_string).collect();
            rows.push(vec![
                format!("lan {}", lan.name),
                members.join(" "),
                format!("bridge {} in {}", lan.name, self.sw()),
            ]);
        }
        table(s, &rows);
        for svc in &self.topo.services {
            s.why("Service:");
            s.why(&format!(
                "  {} {}:{} on {}, scheduler {}",
                svc.protocol,
                host(svc.vip),
                svc.port,
                svc.director,
                svc.scheduler
            ));
            s.why(&format!("  method {}", method_words(svc.method)));
            let rows: Vec<Vec<String>> = svc
                .real_servers
                .iter()
                .map(|r| {
                    vec![
                        "    real server".to_owned(),
                        r.node.clone(),
                        format!("{}:{}", host(r.address), r.port),
                        format!("weight {}", r.weight),
                    ]
                })
                .collect();
            table(s, &rows);
        }
    }

    /// (interface, VIP/len) a kernel director puts its VIPs on, per the builder's plan.
    fn director_vips(&self, n: &NodeInfo) -> Vec<(String, String)> {
        if n.role != Role::Director {
            return Vec::new();
        }
        let mut v = Vec::new();
        for i in &n.interfaces {
            let file = self.file_addresses(&n.name, &i.name);
            for a in &i.addresses {
                if !file.contains(&a.to_string()) {
                    v.push((i.name.clone(), a.to_string()));
                }
            }
        }
        for a in &n.lo_addresses {
            v.push(("lo".to_owned(), a.to_string()));
        }
        v
    }

    fn plumbing(&self, s: &mut Script) {
        s.section("Plumbing: namespaces, links, the LAN switch, addresses, routes");
        s.open("plumbing");
        s.why("One network namespace per node; the LANs' bridges live in one more, the switch.");
        for ns in self.all_ns() {
            s.line(&format!("ip netns add {ns}"));
        }
        s.why("A new namespace copies the host's IPv4 settings: say which nodes forward (routers do).");
        for n in &self.st.nodes {
            let f = u8::from(n.role == Role::Router);
            s.line(&self.exec(&n.name, &format!("sysctl -qw net.ipv4.ip_forward={f}")));
        }
        if self.st.switch_netns.is_some() {
            s.why("Bridged frames must not go through iptables (the setting exists only with br_netfilter).");
            s.line(&format!(
                "ip netns exec {} sysctl -qw net.bridge.bridge-nf-call-iptables=0 2>/dev/null || true",
                self.sw()
            ));
        }
        s.why("lo starts down in a new namespace; local traffic (and a VIP on lo) needs it up.");
        for n in &self.st.nodes {
            s.line(&self.exec(&n.name, "ip link set lo up"));
        }
        for (li, lan) in self.topo.lans.iter().enumerate() {
            if li == 0 {
                s.why("A LAN is a bridge in the switch; no STP and no forward delay: ports forward at once.");
            }
            s.line(&format!(
                "ip netns exec {} ip link add {} type bridge stp_state 0 forward_delay 0",
                self.sw(),
                lan.name
            ));
            s.line(&format!(
                "ip netns exec {} ip link set {} up",
                self.sw(),
                lan.name
            ));
        }
        if !self.topo.links.is_empty() {
            s.why("A link is a veth pair, each end made straight in its node: no name can clash on the host.");
        }
        for l in &self.topo.links {
            let [a, b] = &l.endpoints;
            s.line(&self.exec(
                &a.node,
                &format!(
                    "ip link add {} type veth peer name {} netns {}",
                    a.iface,
                    b.iface,
                    self.ns(&b.node)
                ),
            ));
        }
        let ports = self.switch_ports();
        if !ports.is_empty() {
            s.why("A LAN member is a veth pair too: one end in its node, the other a port of the bridge.");
        }
        for (node, iface, lan, port) in &ports {
            s.line(&format!(
                "ip netns exec {} ip link add {port} type veth peer name {iface} netns {}",
                self.sw(),
                self.ns(node)
            ));
            s.line(&format!(
                "ip netns exec {} ip link set {port} master {lan} up",
                self.sw()
            ));
        }
        s.why("Addresses from the IP plan, then the interfaces up.");
        for n in &self.st.nodes {
            for i in &n.interfaces {
                for a in self.file_addresses(&n.name, &i.name) {
                    let nodad = if a.contains(':') { " nodad" } else { "" };
                    s.line(&self.exec(&n.name, &format!("ip addr add {a} dev {}{nodad}", i.name)));
                }
                s.line(&self.exec(&n.name, &format!("ip link set {} up", i.name)));
            }
        }
        s.why("Offloads off (as lvslab up does): tcpdump then shows real checksums and wire-sized");
        s.why("segments, and a userspace director reads finished frames.");
        const OFF: &str = "tx off rx off sg off tso off gso off gro off";
        for n in &self.st.nodes {
            for i in &n.interfaces {
                s.line(&self.exec(&n.name, &format!("ethtool -K {} {OFF} >/dev/null", i.name)));
            }
        }
        for (_, _, _, port) in &ports {
            s.line(&format!(
                "ip netns exec {} ethtool -K {port} {OFF} >/dev/null",
                self.sw()
            ));
        }
        let routed: Vec<&NodeInfo> = self
            .st
            .nodes
            .iter()
            .filter(|n| n.role != Role::Realserver && !n.routes.is_empty())
            .collect();
        if !routed.is_empty() {
            s.why("Routes (the real servers' come in step 3, with their reasons).");
        }
        for n in routed {
            for r in &n.routes {
                s.line(&self.exec(&n.name, &format!("ip route add {r}")));
            }
        }
        let sysctls: Vec<(&str, &(String, String))> = self
            .topo
            .nodes
            .iter()
            .flat_map(|n| n.sysctls.iter().map(move |kv| (n.name.as_str(), kv)))
            .collect();
        if !sysctls.is_empty() {
            s.why("Sysctls the topology file sets.");
        }
        for (node, (k, v)) in sysctls {
            s.line(&self.exec(node, &format!("sysctl -qw {k}={v}")));
        }
        s.close();
    }

    /// (node, iface, lan, switch port) of every LAN member, in file order.
    fn switch_ports(&self) -> Vec<(String, String, String, String)> {
        let mut v = Vec::new();
        for lan in &self.topo.lans {
            for m in &lan.members {
                let port =
                    self.node(&m.node)
                        .and_then(|n| n.iface(&m.iface))
                        .and_then(|i| match &i.peer {
                            Peer::Lan { port, .. } if !port.is_empty() => Some(port.clone()),
                            _ => None,
                        });
                if let Some(port) = port {
                    v.push((m.node.clone(), m.iface.clone(), lan.name.clone(), port));
                }
            }
        }
        v
    }

    fn step2(&self, s: &mut Script) {
        s.section("Step 2: configure the director");
        s.open("step2_director");
        let directors = crate::directors_with_services(self.topo);
        if directors.is_empty() {
            s.why("No service names a director: nothing to do.");
            s.line(":");
        }
        for d in &directors {
            let Some(n) = self.node(d) else { continue };
            let lines = crate::director_lines(self.topo, d);
            let mine: Vec<&ServiceSpec> = self
                .topo
                .services
                .iter()
                .filter(|x| &x.director == d)
                .collect();
            let nat = mine.iter().any(|x| x.method == ForwardMethod::Nat);
            s.why(&format!("{d}{}:", self.label_of(d)));
            for x in mine.iter().filter(|x| x.backup.is_some()) {
                s.why(&format!(
                    "{}:{} has a backup director (VRRP); by hand only this MASTER balances it.",
                    host(x.vip),
                    x.port
                ));
            }
            if mine.iter().any(|x| x.health.is_some()) {
                s.why("Health checks are lvslab's daemon; by hand the table stays as set here.");
            }
            let vips = self.director_vips(n);
            let mut kernel = Vec::new();
            for (iface, vip) in &vips {
                let on = if iface == "lo" {
                    "On lo: no interface's subnet holds it".to_owned()
                } else {
                    format!("On {iface}: the director answers ARP for it on that LAN")
                };
                kernel.push((
                    format!(
                        "IPVS sees packets on LOCAL_IN: the VIP must be the director's own. {on}."
                    ),
                    self.exec(d, &format!("ip addr add {vip} dev {iface}")),
                ));
            }
            if nat {
                kernel.push((
                    "NAT: the real servers' replies come back through here and are forwarded, source set to the VIP.".to_owned(),
                    self.exec(d, "sysctl -qw net.ipv4.ip_forward=1"),
                ));
            }
            if self.backend == Backend::Ipvs {
                for (why, cmd) in &kernel {
                    s.why(why);
                    s.line(cmd);
                }
                s.why("The virtual service, then its real servers: the ipvsadm lines lvslab up gives the kernel.");
                for l in &lines {
                    s.line(&self.exec(d, &format!("ipvsadm {l}")));
                }
                s.why("The table, as the kernel holds it.");
                s.line(&self.exec(d, "ipvsadm -Ln"));
            } else {
                s.why("lvslab's userspace director replaces kernel IPVS: it reads every frame of the node,");
                s.why("answers ARP for the VIP itself and forwards, so the kernel neither holds the VIP nor");
                s.why("forwards (ip_forward stays 0). With kernel IPVS (--backend ipvs) this step is:");
                for (_, cmd) in &kernel {
                    s.why(&format!("  {cmd}"));
                }
                for l in &lines {
                    s.why(&format!("  {}", self.exec(d, &format!("ipvsadm {l}"))));
                }
                let sock = format!("/run/{}.sock", self.ns(d));
                s.why("The same ipvsadm lines, as --rule; its log and control socket go to /run.");
                s.line(&format!(
                    "{} --socket {sock} \\",
                    self.exec(d, "lvslab director")
                ));
                for l in &lines {
                    s.line(&format!("    --rule={} \\", quote(l)));
                }
                s.line(&format!("    >/run/{}.director.log 2>&1 &", self.ns(d)));
                s.line(&format!("wait_for \"the director on {d}\" test -S {sock}"));
            }
        }
        s.close();
    }

    fn step3(&self, s: &mut Script) {
        s.section("Step 3: configure the real servers");
        s.open("step3_real_servers");
        let rss: Vec<&NodeInfo> = self
            .st
            .nodes
            .iter()
            .filter(|n| n.role == Role::Realserver)
            .collect();
        if rss.is_empty() {
            s.why("No real servers.");
            s.line(":");
        }
        let dips: Vec<IpAddr> = self
            .st
            .nodes
            .iter()
            .filter(|n| n.role == Role::Director)
            .flat_map(|n| n.interfaces.iter().flat_map(|i| i.addresses.iter()))
            .map(|a| a.addr())
            .collect();
        for n in &rss {
            let svcs = self.services_of_rs(&n.name);
            let has = |m| svcs.iter().any(|x| x.method == m);
            let (nat, dr, tun) = (
                has(ForwardMethod::Nat),
                has(ForwardMethod::Dr),
                has(ForwardMethod::Tun),
            );
            let m = match (dr, tun) {
                (true, true) => "DR/TUN",
                (true, false) => "DR",
                _ => "TUN",
            };
            s.why(&format!("{}{}:", n.name, self.label_of(&n.name)));
            for r in &n.routes {
                if nat && dips.contains(&r.via) {
                    s.why("NAT: the reply must pass the director to get the VIP back as its source: gateway = DIP.");
                } else if (dr || tun) && r.dest.is_none() {
                    s.why(&format!(
                        "{m}: the reply goes straight to the client through the router, not the director."
                    ));
                }
                s.line(&self.exec(&n.name, &format!("ip route add {r}")));
            }
            if dr || tun {
                let dev: Vec<&str> = n.interfaces.iter().map(|i| i.name.as_str()).collect();
                s.why(&format!(
                    "{m}: it must hold the VIP, but never answer ARP for it, or it takes the VIP's"
                ));
                s.why("traffic from the director. arp_ignore=1: answer only for addresses of the asking");
                s.why("interface; arp_announce=2: never send the VIP as the source of its own ARP requests.");
                let mut ignore = vec!["net.ipv4.conf.all.arp_ignore=1".to_owned()];
                let mut announce = vec!["net.ipv4.conf.all.arp_announce=2".to_owned()];
                for d in &dev {
                    ignore.push(format!("net.ipv4.conf.{d}.arp_ignore=1"));
                    announce.push(format!("net.ipv4.conf.{d}.arp_announce=2"));
                }
                s.line(&self.exec(&n.name, &format!("sysctl -qw {}", ignore.join(" "))));
                s.line(&self.exec(&n.name, &format!("sysctl -qw {}", announce.join(" "))));
                s.why("The VIP on lo as a host address (/32): it adds no route to the LAN.");
                for a in &n.lo_addresses {
                    s.line(&self.exec(&n.name, &format!("ip addr add {a} dev lo")));
                }
            }
            if tun {
                s.why("TUN: the kernel's ipip module unwraps the director's IPIP packets on tunl0 (one in");
                s.why("every namespace once ipip is loaded), which must be up.");
                s.line(&self.exec(&n.name, "ip link set tunl0 up"));
                s.why("The unwrapped packet arrives on tunl0 but the way back to the CIP is eth0: reverse-path");
                s.why("filtering would drop it.");
                s.line(&self.exec(
                    &n.name,
                    "sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.tunl0.rp_filter=0",
                ));
                let vips: Vec<String> = svcs
                    .iter()
                    .filter(|x| x.method == ForwardMethod::Tun)
                    .map(|x| format!("--vip {}", x.vip))
                    .collect();
                s.why(
                    "No ipip module (no tunl0)? lvslab's userspace decapsulator does the same job:",
                );
                s.why(&format!(
                    "  {} &",
                    self.exec(&n.name, &format!("lvslab tunnel {}", vips.join(" ")))
                ));
            }
            if self.topo.node(&n.name).is_some_and(|x| x.serve) {
                let ports = self.ports_of(&n.name);
                let args: Vec<String> = ports.iter().map(|p| format!("--port {p}")).collect();
                s.why("A server: lvslab serve answers HTTP with the node's name (over UDP too). Without lvslab,");
                s.why(&format!(
                    "`{} &` is a stand-in.",
                    self.exec(
                        &n.name,
                        &format!(
                            "python3 -m http.server {}",
                            ports.first().copied().unwrap_or(80)
                        )
                    )
                ));
                s.line(&format!(
                    "{} >/run/{}.serve.log 2>&1 &",
                    self.exec(
                        &n.name,
                        &format!("lvslab serve --name {} {}", n.name, args.join(" "))
                    ),
                    self.ns(&n.name)
                ));
                for p in &ports {
                    s.line(&format!(
                        "wait_for \"{} to listen on {p}\" {} bash -c {}",
                        n.name,
                        format_args!("ip netns exec {}", self.ns(&n.name)),
                        quote(&format!("</dev/tcp/127.0.0.1/{p}"))
                    ));
                }
            }
        }
        s.close();
    }

    /// Ports `serve` listens on for `node` (80 when no service names it).
    fn ports_of(&self, node: &str) -> Vec<u16> {
        let mut v: Vec<u16> = self
            .topo
            .served_ports(node)
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        v.dedup();
        if v.is_empty() {
            v.push(80);
        }
        v
    }

    /// (what, command) of each tcpdump of step 4, in the order a request meets them.
    fn tcpdumps(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        let mut push = |what: String, cmd: String| {
            if !out.iter().any(|(_, c)| *c == cmd) {
                out.push((what, cmd));
            }
        };
        let client = self.st.nodes.iter().find(|n| n.role == Role::Client);
        for svc in &self.topo.services {
            let vip = format!("host {}", svc.vip);
            let e = if svc.method == ForwardMethod::Dr {
                "e"
            } else {
                ""
            };
            if let Some(c) = client {
                if let Some(i) = self.egress(c, svc.vip) {
                    push(
                        format!("{} (CIP), the request and the answer", c.name),
                        self.exec(&c.name, &format!("tcpdump -lni {} {}", i.name, quote(&vip))),
                    );
                }
            }
            for r in self.st.nodes.iter().filter(|n| n.role == Role::Router) {
                push(
                    format!("{} (GWIP), both sides", r.name),
                    self.exec(&r.name, &format!("tcpdump -lni any {}", quote(&vip))),
                );
            }
            let Some(d) = self.node(&svc.director) else {
                continue;
            };
            let cip =
                client.and_then(|c| c.interfaces.first()?.addresses.first().map(|a| a.addr()));
            let din = cip.and_then(|a| self.egress(d, a)).map(|i| i.name.clone());
            let mut douts: Vec<String> = Vec::new();
            for r in &svc.real_servers {
                if let Some(i) = self.egress(d, r.address) {
                    if !douts.contains(&i.name) {
                        douts.push(i.name.clone());
                    }
                }
            }
            let rips: Vec<String> = svc
                .real_servers
                .iter()
                .map(|r| format!("host {}", r.address))
                .collect();
            let out_filter = match svc.method {
                ForwardMethod::Nat => rips.join(" or "),
                ForwardMethod::Dr => vip.clone(),
                ForwardMethod::Tun => "ip proto 4".to_owned(),
            };
            let out_words = match svc.method {
                ForwardMethod::Nat => "to the real servers: dst rewritten to a RIP, replies back",
                ForwardMethod::Dr => "to the real servers: the same packet, another MAC (-e)",
                ForwardMethod::Tun => "to the real servers: IPIP (protocol 4) to a RIP",
            };
            for o in &douts {
                if din.as_deref() == Some(o.as_str()) {
                    let f = if svc.method == ForwardMethod::Dr {
                        vip.clone()
                    } else {
                        format!("{vip} or {out_filter}")
                    };
                    push(
                        format!("{} in and out, {out_words}", d.name),
                        self.exec(&d.name, &format!("tcpdump -ln{e}i {o} {}", quote(&f))),
                    );
                } else {
                    if let Some(i) = &din {
                        push(
                            format!("{} in, from the client", d.name),
                            self.exec(&d.name, &format!("tcpdump -lni {i} {}", quote(&vip))),
                        );
                    }
                    push(
                        format!("{} out, {out_words}", d.name),
                        self.exec(
                            &d.name,
                            &format!("tcpdump -ln{e}i {o} {}", quote(&out_filter)),
                        ),
                    );
                }
            }
            for r in &svc.real_servers {
                let Some(n) = self.node(&r.node) else {
                    continue;
                };
                let Some(i) = n.iface_towards(r.address) else {
                    continue;
                };
                let f = match svc.method {
                    ForwardMethod::Nat => format!("host {}", r.address),
                    ForwardMethod::Dr => vip.clone(),
                    ForwardMethod::Tun => format!("ip proto 4 or {vip}"),
                };
                push(
                    format!("{}{}", n.name, self.label_of(&n.name)),
                    self.exec(
                        &n.name,
                        &format!("tcpdump -ln{e}i {} {}", i.name, quote(&f)),
                    ),
                );
            }
        }
        out
    }

    fn step4(&self, s: &mut Script) {
        s.section("Step 4: test, watching every role with tcpdump");
        s.open("step4_test");
        let dumps = self.tcpdumps();
        if !dumps.is_empty() {
            s.why("Watch a request pass: start each tcpdump in a terminal of its own, then the requests below.");
            for (what, cmd) in &dumps {
                s.why(&format!("{what}:"));
                s.why(&format!("  {cmd}"));
            }
        }
        let client = self.st.nodes.iter().find(|n| n.role == Role::Client);
        let Some(c) = client else {
            s.why("No client node: send requests to the VIP from any node.");
            s.line(":");
            s.close();
            return;
        };
        for svc in &self.topo.services {
            let n = svc.real_servers.len().max(1);
            let requests = if n == 1 {
                "1 request".to_owned()
            } else {
                format!("{n} requests")
            };
            s.why(&format!(
                "{requests} from the client to the VIP (scheduler {}), as many as real servers; each answers with its name.",
                svc.scheduler
            ));
            for _ in 0..n {
                let cmd = match svc.protocol {
                    Protocol::Tcp => format!(
                        "curl -sS --max-time 5 http://{}:{}/",
                        host(svc.vip),
                        svc.port
                    ),
                    Protocol::Udp => format!(
                        "bash -c {}",
                        quote(&format!(
                            "exec 3<>/dev/udp/{}/{}; echo hello >&3; timeout 5 head -n 1 <&3",
                            svc.vip, svc.port
                        ))
                    ),
                };
                s.line(&self.exec(&c.name, &cmd));
            }
        }
        if self.backend == Backend::Ipvs {
            for d in crate::directors_with_services(self.topo) {
                s.why("The director's connection table: which real server took each request.");
                s.line(&self.exec(&d, "ipvsadm -Lnc"));
            }
        }
        s.close();
    }

    fn teardown(&self, s: &mut Script) {
        s.section("Teardown");
        s.open("teardown");
        s.why("Keep going on errors: a half-built lab lacks some of what follows.");
        s.line("set +e");
        s.why("Deleting a namespace does not end its processes: stop them first, by pid.");
        for ns in self.all_ns() {
            s.line(&format!("ip netns pids {ns} | xargs -r kill"));
        }
        s.why("Deleting a namespace deletes its interfaces: a veth goes with its peer, the bridges with the switch.");
        for ns in self.all_ns() {
            s.line(&format!("ip netns del {ns}"));
        }
        let mut files = Vec::new();
        for n in &self.st.nodes {
            if n.role == Role::Realserver && self.topo.node(&n.name).is_some_and(|x| x.serve) {
                files.push(format!("/run/{}.serve.log", self.ns(&n.name)));
            }
        }
        if self.backend == Backend::Userspace {
            for d in crate::directors_with_services(self.topo) {
                files.push(format!("/run/{}.director.log", self.ns(&d)));
                files.push(format!("/run/{}.sock", self.ns(&d)));
            }
        }
        if !files.is_empty() {
            s.line(&format!("rm -f {}", files.join(" ")));
        }
        s.line("return 0");
        s.close();
    }

    fn dispatch(&self, s: &mut Script) {
        s.blank();
        s.line("case \"${1:-up}\" in");
        s.line("    up) plumbing; step2_director; step3_real_servers; step4_test ;;");
        s.line("    down) teardown ;;");
        s.line("    *) echo \"usage: bash $0 [up|down]\" >&2; exit 2 ;;");
        s.line("esac");
    }
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| (*x).to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_that_would_clash_or_break_are_refused() {
        assert!(check_prefix(DEFAULT_PREFIX).is_ok());
        assert!(check_prefix("lab1_").is_ok());
        for bad in ["", "lvs-", "lvs-x-", "Lab-", "a b", "a;b", &"x".repeat(33)] {
            assert!(check_prefix(bad).is_err(), "{bad:?}");
        }
    }
}
