//! The namespace builder: topology -> namespaces, veths, bridges, addresses, routes, sysctls.
//!
//! Three phases, the first and last in parallel (one thread per namespace):
//! 1. create each namespace, set its base sysctls, bring lo up, open its netlink socket;
//! 2. create bridges and veth pairs, each end born directly in its own namespace;
//! 3. addresses, routes, offloads off, the topology's own sysctls.
//!
//! A failure anywhere removes every namespace made so far.
use std::fs::File;
use std::os::fd::AsRawFd;
use std::time::{SystemTime, UNIX_EPOCH};

use ipnet::IpNet;
use netlink_packet_route::address::{
    AddressAttribute, AddressHeaderFlags, AddressMessage, CacheInfo,
};
use netlink_packet_route::link::{
    BridgeStpState, InfoBridge, InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo,
    LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::{Error, Result};
use crate::ethtool::Ethtool;
use crate::netns;
use crate::nl::{Nl, Req, CHANGE, CREATE};
use crate::state::{self, check_lab_name, IfaceInfo, Lab, LabState, Mac, NodeInfo, Peer};
use crate::topology::{ForwardMethod, Mistake, Role, Topology};
use crate::Backend;

/// Where a build can be made to fail on purpose (for rollback tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildStep {
    /// After all namespaces exist.
    Namespaces,
    /// After all links exist.
    Links,
    /// After addresses and routes.
    Addresses,
}

impl BuildStep {
    /// The name used by `LVSLAB_INJECT_FAILURE`.
    pub fn name(self) -> &'static str {
        match self {
            BuildStep::Namespaces => "namespaces",
            BuildStep::Links => "links",
            BuildStep::Addresses => "addresses",
        }
    }
}

impl std::str::FromStr for BuildStep {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "namespaces" => Ok(BuildStep::Namespaces),
            "links" => Ok(BuildStep::Links),
            "addresses" => Ok(BuildStep::Addresses),
            _ => Err(Error::Msg(format!(
                "unknown build step {s:?} (namespaces, links, addresses)"
            ))),
        }
    }
}

/// Build options.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Fail right after this step (tests rollback).
    pub fail_after: Option<BuildStep>,
    /// The balancer the lab's directors run; with kernel IPVS a director owns its VIPs and
    /// forwards, as a real LVS director does.
    pub backend: Backend,
}

/// Per-namespace handles opened inside it.
struct NsHandle {
    name: String,
    fd: File,
    nl: Nl,
    eth: Ethtool,
}

/// What one namespace must get in phase 3.
#[derive(Default)]
struct NsWork {
    /// ifindex, address, where (for errors), and whether it is a deprecated VIP.
    addrs: Vec<(u32, IpNet, String, bool)>,
    routes: Vec<crate::topology::RouteSpec>,
    veths: Vec<(String, u32)>,
    sysctls: Vec<(String, String)>,
}

/// Build a lab from a topology. On success the lab is up and its state saved; daemons are not
/// started here (see `Lab::spawn_daemon`).
pub fn build(lab: &str, topo: &Topology, opts: &BuildOptions) -> Result<Lab> {
    check_lab_name(lab)?;
    let dir = state::run_dir(lab);
    if dir.join("state.json").exists() {
        return Err(Error::Msg(format!(
            "lab {lab:?} is already up\n  help: `lvslab down {lab}` first, or pick another name with --name"
        )));
    }
    let mut lab_state = plan(lab, topo, opts.backend);
    let mut l = Lab {
        state: lab_state.clone(),
    };
    // Saved before anything exists so that a crash mid-build can still be cleaned by `down`.
    l.save()?;
    match build_planned(&lab_state, topo, opts) {
        Ok(()) => {
            lab_state.complete = true;
            l.state = lab_state;
            l.save()?;
            Ok(l)
        }
        Err(e) => {
            for ns in &lab_state.netns {
                let _ = netns::delete(ns);
            }
            let _ = std::fs::remove_dir_all(&dir);
            Err(e)
        }
    }
}

/// The first ifindex a lab asks for. Where ipip, sit or gre are loaded (Debian's kernel in
/// lvslab's VM loads ipip for TUN), every new namespace is born with fallback tunnels
/// (`tunl0`, `sit0`, ...) at ifindex 2 and up, and a veth asking for one of those fails
/// with EEXIST.
pub const FIRST_IFINDEX: u32 = 32;

fn mac(a: u8, b: u8, c: u8) -> Mac {
    Mac([0x02, 0x00, 0x00, a, b, c])
}

/// Decide names, ifindexes and MACs (pure): what [`build`] makes, before it makes it.
/// `lvslab commands` reads it too, so a lab typed by hand gets the same switch port names
/// and VIP placement as one `lvslab up` builds.
pub fn plan(lab: &str, topo: &Topology, backend: Backend) -> LabState {
    let switch = (!topo.lans.is_empty()).then(|| state::switch_netns_name(lab));
    let mut nodes = Vec::new();
    for (ni, n) in topo.nodes.iter().enumerate() {
        let mut interfaces = Vec::new();
        for (ii, i) in n.interfaces.iter().enumerate() {
            let ep_peer = topo
                .links
                .iter()
                .find_map(|l| {
                    let [a, b] = &l.endpoints;
                    if a.node == n.name && a.iface == i.name {
                        Some(Peer::Link {
                            node: b.node.clone(),
                            iface: b.iface.clone(),
                        })
                    } else if b.node == n.name && b.iface == i.name {
                        Some(Peer::Link {
                            node: a.node.clone(),
                            iface: a.iface.clone(),
                        })
                    } else {
                        None
                    }
                })
                .or_else(|| {
                    topo.lans.iter().find_map(|lan| {
                        lan.members
                            .iter()
                            .any(|m| m.node == n.name && m.iface == i.name)
                            .then(|| Peer::Lan {
                                lan: lan.name.clone(),
                                port: String::new(),
                            })
                    })
                });
            interfaces.push(IfaceInfo {
                name: i.name.clone(),
                ifindex: FIRST_IFINDEX + ii as u32,
                mac: mac(0, ni as u8 + 1, ii as u8),
                addresses: i.addresses.clone(),
                label: i.label,
                more_labels: i.more_labels.clone(),
                peer: ep_peer.unwrap_or(Peer::Lan {
                    lan: String::new(),
                    port: String::new(),
                }),
            });
        }
        let mut lo_addresses: Vec<IpNet> = if n.role == Role::Realserver {
            topo.vips_on_lo(&n.name)
                .into_iter()
                .map(IpNet::from)
                .collect()
        } else {
            Vec::new()
        };
        if backend == Backend::Ipvs && n.role == Role::Director {
            // Kernel IPVS takes packets for a VIP the director owns: on the interface whose
            // subnet holds it (so the director answers ARP for it there, as the seed's
            // director does), else on lo.
            for vip in topo
                .services
                .iter()
                .filter(|s| s.director == n.name)
                .flat_map(|s| s.all_vips())
            {
                let host = IpNet::from(vip);
                let owner = interfaces
                    .iter_mut()
                    .find(|i| i.addresses.iter().any(|a| a.contains(&vip)));
                match owner {
                    Some(i) if !i.addresses.contains(&host) => i.addresses.push(host),
                    Some(_) => {}
                    None if !lo_addresses.contains(&host) => lo_addresses.push(host),
                    None => {}
                }
            }
        }
        nodes.push(NodeInfo {
            name: n.name.clone(),
            role: n.role,
            netns: state::netns_name(lab, &n.name),
            interfaces,
            lo_addresses,
            routes: n.routes.clone(),
        });
    }
    // Switch port names: readable `node-iface` when it fits in IFNAMSIZ, else `pN`.
    let mut port_no = 0;
    for lan in &topo.lans {
        for m in &lan.members {
            let readable = format!("{}-{}", m.node, m.iface);
            let port = if readable.len() <= 15 {
                readable
            } else {
                format!("p{port_no}")
            };
            port_no += 1;
            if let Some(i) = nodes
                .iter_mut()
                .find(|n| n.name == m.node)
                .and_then(|n| n.interfaces.iter_mut().find(|i| i.name == m.iface))
            {
                i.peer = Peer::Lan {
                    lan: lan.name.clone(),
                    port,
                };
            }
        }
    }
    let mut all_ns: Vec<String> = nodes.iter().map(|n| n.netns.clone()).collect();
    all_ns.extend(switch.clone());
    LabState {
        lab: lab.to_string(),
        topology: topo.clone(),
        netns: all_ns,
        switch_netns: switch,
        nodes,
        daemons: Vec::new(),
        created_unix_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        complete: false,
        backend,
    }
}

fn fail_if(opts: &BuildOptions, step: BuildStep) -> Result<()> {
    if opts.fail_after == Some(step) {
        return Err(Error::Msg(format!(
            "injected failure after step {}",
            step.name()
        )));
    }
    Ok(())
}

/// Base sysctls for a namespace, applied before any interface exists so `default` covers them.
fn base_sysctls(
    role: Option<Role>,
    ipv6: bool,
    dr_rs: bool,
    kernel_director: bool,
) -> Vec<(&'static str, &'static str)> {
    // Routers forward; so does a kernel-IPVS director (NAT replies reach IPVS in FORWARD).
    let forwards = role == Some(Role::Router) || kernel_director;
    let mut v = vec![
        // IPv4 devconf is copied from the host's namespace; pin what the lab relies on.
        ("net.ipv4.ip_forward", if forwards { "1" } else { "0" }),
        // Asymmetric DR/TUN paths must not be dropped by reverse-path filtering.
        ("net.ipv4.conf.all.rp_filter", "0"),
        ("net.ipv4.conf.default.rp_filter", "0"),
        // DR/TUN real servers hold the VIP on lo but must not answer ARP for it.
        (
            "net.ipv4.conf.all.arp_ignore",
            if dr_rs { "1" } else { "0" },
        ),
        (
            "net.ipv4.conf.all.arp_announce",
            if dr_rs { "2" } else { "0" },
        ),
    ];
    if ipv6 {
        // Quiet IPv6: nothing may appear on the wire that the lab did not send, so captures
        // stay deterministic. `default` is copied into every interface created after this
        // (all of them: lo exists already but sends nothing).
        v.extend([
            ("net.ipv6.conf.all.disable_ipv6", "0"),
            ("net.ipv6.conf.default.disable_ipv6", "0"),
            // Link-local addresses from the MAC (0 = EUI-64): the fixed MACs make them the
            // same every run. They are needed: a Neighbour Solicitation for a packet whose
            // source is not on the outgoing interface (a router forwarding, a DR real
            // server answering from the VIP on lo) is sent from the link-local address,
            // and without one the kernel sends none (ndisc_send_ns) and the packet is lost.
            ("net.ipv6.conf.default.addr_gen_mode", "0"),
            ("net.ipv6.conf.all.accept_ra", "0"),
            ("net.ipv6.conf.default.accept_ra", "0"),
            ("net.ipv6.conf.all.autoconf", "0"),
            ("net.ipv6.conf.default.autoconf", "0"),
            ("net.ipv6.conf.all.router_solicitations", "0"),
            ("net.ipv6.conf.default.router_solicitations", "0"),
            ("net.ipv6.conf.all.accept_dad", "0"),
            ("net.ipv6.conf.default.accept_dad", "0"),
            ("net.ipv6.conf.all.dad_transmits", "0"),
            ("net.ipv6.conf.default.dad_transmits", "0"),
            // Forwarding where IPv4 forwards (all.forwarding also sets `default`).
            (
                "net.ipv6.conf.all.forwarding",
                if forwards { "1" } else { "0" },
            ),
        ]);
    } else {
        // Router solicitations and DAD would make captures non-deterministic.
        v.extend([
            ("net.ipv6.conf.all.disable_ipv6", "1"),
            ("net.ipv6.conf.default.disable_ipv6", "1"),
        ]);
    }
    v
}

fn link_up(index: u32) -> RouteNetlinkMessage {
    let mut m = LinkMessage::default();
    m.header.index = index;
    m.header.flags = LinkFlags::Up;
    m.header.change_mask = LinkFlags::Up;
    RouteNetlinkMessage::SetLink(m)
}

fn link_msg(name: &str, index: u32, mac: Mac) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.header.index = index;
    m.attributes.push(LinkAttribute::IfName(name.to_string()));
    m.attributes.push(LinkAttribute::Address(mac.0.to_vec()));
    m
}

/// A veth pair created from the socket's namespace: `local` lands there, `peer` in `peer_ns`.
fn veth(
    local: (&str, u32, Mac),
    controller: Option<u32>,
    peer: (&str, u32, Mac),
    peer_ns: &File,
) -> RouteNetlinkMessage {
    // Both ends are created down: veth_open fails with ENOTCONN before the pair is linked.
    let mut m = link_msg(local.0, local.1, local.2);
    if let Some(c) = controller {
        m.attributes.push(LinkAttribute::Controller(c));
    }
    let mut p = link_msg(peer.0, peer.1, peer.2);
    p.attributes
        .push(LinkAttribute::NetNsFd(peer_ns.as_raw_fd()));
    m.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Veth),
        LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p))),
    ]));
    RouteNetlinkMessage::NewLink(m)
}

fn bridge(name: &str, index: u32, mac: Mac) -> RouteNetlinkMessage {
    let mut m = link_msg(name, index, mac);
    // A veth cannot be created up (its peer does not exist yet: ENOTCONN), a bridge can.
    m.header.flags = LinkFlags::Up;
    m.header.change_mask = LinkFlags::Up;
    // No STP and no forward delay: ports forward the moment they are up.
    m.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Bridge),
        LinkInfo::Data(InfoData::Bridge(vec![
            InfoBridge::StpState(BridgeStpState::Disabled),
            InfoBridge::ForwardDelay(0),
        ])),
    ]));
    RouteNetlinkMessage::NewLink(m)
}

fn address(index: u32, net: IpNet, deprecated: bool) -> RouteNetlinkMessage {
    let mut m = AddressMessage::default();
    m.header.family = if net.addr().is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    m.header.prefix_len = net.prefix_len();
    m.header.index = index;
    if net.addr().is_ipv6() {
        m.header.flags = AddressHeaderFlags::Nodad;
    }
    m.attributes.push(AddressAttribute::Local(net.addr()));
    m.attributes.push(AddressAttribute::Address(net.addr()));
    if deprecated {
        let mut ci = CacheInfo::default();
        ci.ifa_preferred = 0;
        ci.ifa_valid = u32::MAX;
        m.attributes.push(AddressAttribute::CacheInfo(ci));
    }
    RouteNetlinkMessage::NewAddress(m)
}

fn route(r: &crate::topology::RouteSpec) -> RouteNetlinkMessage {
    let mut m = RouteMessage::default();
    let v4 = r.via.is_ipv4();
    m.header.address_family = if v4 {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    m.header.table = RouteHeader::RT_TABLE_MAIN;
    m.header.protocol = RouteProtocol::Boot;
    m.header.scope = RouteScope::Universe;
    m.header.kind = RouteType::Unicast;
    if let Some(d) = r.dest {
        m.header.destination_prefix_length = d.prefix_len();
        m.attributes
            .push(RouteAttribute::Destination(RouteAddress::from(d.addr())));
    }
    m.attributes
        .push(RouteAttribute::Gateway(RouteAddress::from(r.via)));
    RouteNetlinkMessage::NewRoute(m)
}

fn build_planned(st: &LabState, topo: &Topology, opts: &BuildOptions) -> Result<()> {
    // Phase 1: namespaces.
    let specs: Vec<(String, Option<Role>, bool, bool, bool)> = st
        .nodes
        .iter()
        .map(|n| {
            let spec = topo.node(&n.name);
            // A lab with any IPv6 address has IPv6 on in every node (the switch stays
            // IPv4-only: its bridges forward frames and need no addresses).
            let ipv6 = topo.has_ipv6() || spec.is_some_and(|s| s.ipv6);
            // A node built wrong on purpose (mistakes = ["no-arp-ignore"]) keeps the kernel's
            // defaults, 0 and 0, as a real server set up from a tutorial that forgot them.
            let dr_rs = n.role == Role::Realserver
                && !spec.is_some_and(|s| s.mistakes.contains(&Mistake::NoArpIgnore))
                && topo.services.iter().any(|s| {
                    matches!(s.method, ForwardMethod::Dr | ForwardMethod::Tun)
                        && s.real_servers.iter().any(|r| r.node == n.name)
                });
            let kernel_director = st.backend == Backend::Ipvs && n.role == Role::Director;
            (n.netns.clone(), Some(n.role), ipv6, dr_rs, kernel_director)
        })
        .chain(
            st.switch_netns
                .iter()
                .map(|s| (s.clone(), None, false, false, false)),
        )
        .collect();
    let results: Vec<Result<NsHandle>> = std::thread::scope(|s| {
        let hs: Vec<_> = specs
            .iter()
            .map(|(name, role, ipv6, dr_rs, kernel_director)| {
                s.spawn(move || {
                    netns::create_with(name, || {
                        for (k, v) in base_sysctls(*role, *ipv6, *dr_rs, *kernel_director) {
                            netns::set_sysctl(k, v)?;
                        }
                        if role.is_none() {
                            // Bridged frames must not be handed to the host's iptables (br_netfilter).
                            let _ = netns::set_sysctl("net.bridge.bridge-nf-call-iptables", "0");
                        }
                        let mut nl = Nl::open(name)?;
                        nl.batch(vec![Req {
                            what: "set lo up".into(),
                            msg: link_up(1),
                            flags: CHANGE,
                        }])?;
                        let eth = Ethtool::open()?;
                        let fd = File::open(netns::path(name)).map_err(|e| Error::Io {
                            context: format!("open namespace {name}"),
                            error: e,
                        })?;
                        Ok(NsHandle {
                            name: name.clone(),
                            fd,
                            nl,
                            eth,
                        })
                    })
                })
            })
            .collect();
        join_all(hs)
    });
    let mut handles = Vec::new();
    for r in results {
        handles.push(r?);
    }
    fail_if(opts, BuildStep::Namespaces)?;

    let names: Vec<String> = handles.iter().map(|h| h.name.clone()).collect();
    let idx = |ns: &str| names.iter().position(|h| h == ns);
    let node_ns = |node: &str| {
        st.nodes
            .iter()
            .find(|n| n.name == node)
            .map(|n| n.netns.clone())
            .unwrap_or_default()
    };
    let iface = |node: &str, ifn: &str| {
        st.nodes
            .iter()
            .find(|n| n.name == node)
            .and_then(|n| n.iface(ifn))
            .cloned()
    };

    // Phase 2: bridges and veths, batched per creating namespace.
    let mut batches: Vec<Vec<Req>> = handles.iter().map(|_| Vec::new()).collect();
    let mut work: Vec<NsWork> = handles.iter().map(|_| NsWork::default()).collect();
    if let Some(sw) = &st.switch_netns {
        let swi = idx(sw).ok_or_else(|| Error::Msg("switch namespace missing".into()))?;
        let nbr = topo.lans.len() as u32;
        let mut port_index = FIRST_IFINDEX + nbr;
        for (li, lan) in topo.lans.iter().enumerate() {
            let br_index = FIRST_IFINDEX + li as u32;
            batches[swi].push(Req {
                what: format!("create bridge {}", lan.name),
                msg: bridge(&lan.name, br_index, mac(0xfe, li as u8, 0)),
                flags: CREATE,
            });
            for (pi, m) in lan.members.iter().enumerate() {
                let Some(i) = iface(&m.node, &m.iface) else {
                    continue;
                };
                let Peer::Lan { port, .. } = &i.peer else {
                    continue;
                };
                let peer_ns = idx(&node_ns(&m.node))
                    .ok_or_else(|| Error::Msg(format!("namespace of {} missing", m.node)))?;
                let msg = veth(
                    (port, port_index, mac(0xff, li as u8, pi as u8)),
                    Some(br_index),
                    (&i.name, i.ifindex, i.mac),
                    &handles[peer_ns].fd,
                );
                batches[swi].push(Req {
                    what: format!("create veth {port} (in {sw}) <-> {}:{}", m.node, m.iface),
                    msg,
                    flags: CREATE,
                });
                work[swi].veths.push((port.clone(), port_index));
                port_index += 1;
            }
        }
    }
    for link in &topo.links {
        let [a, b] = &link.endpoints;
        let (Some(ia), Some(ib)) = (iface(&a.node, &a.iface), iface(&b.node, &b.iface)) else {
            continue;
        };
        let (Some(na), Some(nb)) = (idx(&node_ns(&a.node)), idx(&node_ns(&b.node))) else {
            continue;
        };
        let msg = veth(
            (&ia.name, ia.ifindex, ia.mac),
            None,
            (&ib.name, ib.ifindex, ib.mac),
            &handles[nb].fd,
        );
        batches[na].push(Req {
            what: format!("create veth {a} <-> {b}"),
            msg,
            flags: CREATE,
        });
    }
    for (h, reqs) in handles.iter_mut().zip(batches) {
        h.nl.batch(reqs)?;
    }
    fail_if(opts, BuildStep::Links)?;

    // Phase 3: addresses, routes, offloads, user sysctls.
    for n in &st.nodes {
        let Some(i) = idx(&n.netns) else { continue };
        let w = &mut work[i];
        // A kernel-IPVS director's IPv6 VIPs are deprecated (preferred lifetime 0): still
        // its own for packets and Neighbour Discovery, but never a source it picks. Linux
        // caps source selection's longest-match rule at an address's prefix length, so
        // a VIP/128 beats the DIP/64 towards every real server: IPv6-in-IPv6 would leave
        // with the VIP as outer source, and a TUN real server (which holds the VIP too)
        // drops it, ip6_tnl_rcv_ctl refusing a tunnel whose remote end is a local address.
        let deprecated: Vec<std::net::IpAddr> =
            if st.backend == Backend::Ipvs && n.role == Role::Director {
                topo.services
                    .iter()
                    .filter(|s| s.director == n.name)
                    .flat_map(|s| s.all_vips())
                    .filter(std::net::IpAddr::is_ipv6)
                    .collect()
            } else {
                Vec::new()
            };
        let is_deprecated = |a: &IpNet| a.prefix_len() == 128 && deprecated.contains(&a.addr());
        for f in &n.interfaces {
            w.veths.push((f.name.clone(), f.ifindex));
            for a in &f.addresses {
                w.addrs.push((
                    f.ifindex,
                    *a,
                    format!("{}:{}", n.name, f.name),
                    is_deprecated(a),
                ));
            }
        }
        for a in &n.lo_addresses {
            w.addrs
                .push((1, *a, format!("{}:lo", n.name), is_deprecated(a)));
        }
        w.routes = n.routes.clone();
        w.sysctls = topo
            .node(&n.name)
            .map(|s| s.sysctls.clone())
            .unwrap_or_default();
    }
    let results: Vec<Result<()>> = std::thread::scope(|s| {
        let hs: Vec<_> = handles
            .iter_mut()
            .zip(work)
            .map(|(h, w)| {
                s.spawn(move || -> Result<()> {
                    let mut reqs = Vec::new();
                    for (name, index) in &w.veths {
                        reqs.push(Req {
                            what: format!("set {name} up"),
                            msg: link_up(*index),
                            flags: CHANGE,
                        });
                    }
                    for (index, net, where_, deprecated) in &w.addrs {
                        reqs.push(Req {
                            what: format!("add address {net} to {where_}"),
                            msg: address(*index, *net, *deprecated),
                            flags: CREATE,
                        });
                    }
                    for r in &w.routes {
                        reqs.push(Req {
                            what: format!("add route {r}"),
                            msg: route(r),
                            flags: CREATE,
                        });
                    }
                    h.nl.batch(reqs)?;
                    for (v, _) in &w.veths {
                        h.eth.offloads_off(v)?;
                    }
                    if !w.sysctls.is_empty() {
                        netns::run_in_fd(&h.name, std::os::fd::AsFd::as_fd(&h.fd), || {
                            w.sysctls
                                .iter()
                                .try_for_each(|(k, v)| netns::set_sysctl(k, v))
                        })??;
                    }
                    Ok(())
                })
            })
            .collect();
        join_all(hs)
    });
    for r in results {
        r?;
    }
    fail_if(opts, BuildStep::Addresses)?;
    Ok(())
}

/// Wait for one worker thread per namespace; a panicked worker becomes an error.
fn join_all<T>(hs: Vec<std::thread::ScopedJoinHandle<'_, Result<T>>>) -> Vec<Result<T>> {
    hs.into_iter()
        .map(|h| {
            h.join()
                .unwrap_or_else(|_| Err(Error::Msg("namespace thread panicked".into())))
        })
        .collect()
}

/// Lets the kernel's own tunnel drivers decapsulate for a TUN real server where its kernel
/// has them (the namespace was born with their fallback devices): `tunl0` (ipip) for IPv4
/// VIPs, with reverse-path filtering off on it as the seed's TUN real servers are set up,
/// and `ip6tnl0` (ip6_tunnel, IPv6-in-IPv6, what kernel IPVS sends for an IPv6 service) for
/// IPv6 VIPs. Returns false, changing nothing, unless every family asked for has its device
/// (this host has neither: the userspace `lvslab tunnel` decapsulates both there instead).
/// A fallback device left down makes the kernel answer every tunnelled packet with ICMP
/// port unreachable, which the director turns into a refused connection.
pub fn enable_kernel_tunnels(ns: &str, ipv4: bool, ipv6: bool) -> Result<bool> {
    // The netlink socket belongs to the namespace of the thread that opens it.
    netns::run_in(ns, || -> Result<bool> {
        let mut nl = Nl::open(ns)?;
        let links = nl.dump(RouteNetlinkMessage::GetLink(LinkMessage::default()))?;
        let index_of = |name: &str| {
            links.iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l)
                    if l.attributes
                        .iter()
                        .any(|a| matches!(a, LinkAttribute::IfName(n) if n == name)) =>
                {
                    Some(l.header.index)
                }
                _ => None,
            })
        };
        let wanted: Vec<(&str, Option<u32>)> = [(ipv4, "tunl0"), (ipv6, "ip6tnl0")]
            .into_iter()
            .filter(|(want, _)| *want)
            .map(|(_, dev)| (dev, index_of(dev)))
            .collect();
        if wanted.is_empty() || wanted.iter().any(|(_, i)| i.is_none()) {
            return Ok(false);
        }
        let mut reqs = Vec::new();
        for (dev, index) in wanted {
            if dev == "tunl0" {
                netns::set_sysctl("net.ipv4.conf.tunl0.rp_filter", "0")?;
            }
            if let Some(index) = index {
                reqs.push(Req {
                    what: format!("set {dev} up"),
                    msg: link_up(index),
                    flags: CHANGE,
                });
            }
        }
        nl.batch(reqs)?;
        Ok(true)
    })?
}
