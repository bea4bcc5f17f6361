//! The lab's static routing as the validator judges it: which way a node sends a packet for
//! an address (longest prefix over its connected subnets and its `routes`), and a hop-by-hop
//! trace across the nodes, so a check can say exactly where a path breaks.
//!
//! What it models: the connected subnet of every interface address; `routes` (default and
//! prefix, gateway on a connected subnet); which node holds a gateway address and whether it
//! shares a link or LAN with the sender (a gateway on the same subnet but another segment
//! never answers ARP); whether a node forwards (role router, unless its sysctls say
//! otherwise, or any node whose sysctls turn forwarding on).
//!
//! What it does not model, because the file does not say or the lab adds it at run time:
//! policy routing and extra tables, metrics and multipath, device routes without a gateway,
//! iptables or NAT on routers, proxy ARP, ICMP redirects, reverse-path filtering, addresses
//! added by `up` or daemons (VIPs on lo, VRRP moving the VIP), and a kernel-IPVS director's
//! forwarding (`--backend ipvs` turns it on; the file does not know the backend).
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use ipnet::IpNet;

use super::{LanSpec, LinkSpec, NodeSpec, Role, RouteSpec};

/// Loops are reported, but a trace also stops after this many hops (a real TTL would).
const MAX_HOPS: usize = 32;

/// The lab's nodes and which link or LAN each interface is plugged into.
pub(super) struct Net<'a> {
    nodes: &'a [NodeSpec],
    /// (node, iface) -> segment: one number per link and per LAN.
    segment: HashMap<(&'a str, &'a str), usize>,
}

/// Where a node sends a packet for some address.
#[derive(Debug, Clone, Copy)]
pub(super) enum Hop<'a> {
    /// Straight onto the subnet `net` of its interface `iface` (a connected route).
    Connected { iface: &'a str, net: IpNet },
    /// To gateway `gw`, reached on its interface `iface`, by a static route.
    Via {
        iface: &'a str,
        gw: IpAddr,
        route: &'a RouteSpec,
    },
}

/// What a trace looks for at the end of the path.
pub(super) enum Goal<'a> {
    /// The node holding this address.
    Address(IpAddr),
    /// A VIP: reached once a packet arrives at one of these directors, as the gateway of a
    /// hop or by ARP on a segment a director is plugged into (the director answers ARP for
    /// its VIPs without holding them; DR/TUN real servers hold them with arp_ignore=1).
    Director {
        vip: IpAddr,
        directors: &'a [&'a str],
    },
}

impl Goal<'_> {
    fn dst(&self) -> IpAddr {
        match self {
            Goal::Address(a) => *a,
            Goal::Director { vip, .. } => *vip,
        }
    }
}

/// One hop of a trace: the packet went to gateway `gw`, held by `node`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Step<'a> {
    pub(super) gw: IpAddr,
    pub(super) node: &'a NodeSpec,
}

/// Why a trace did not reach its goal; `at` is the node that had the packet.
#[derive(Debug, Clone, Copy)]
pub(super) enum Failure<'a> {
    /// `at` has no route for the destination.
    NoRoute { at: &'a NodeSpec },
    /// `at` routes via `gw`, but no node on that link or LAN holds `gw`.
    NoGateway { at: &'a NodeSpec, gw: IpAddr },
    /// The last step's node got the packet but does not forward.
    NotForwarding { at: &'a NodeSpec },
    /// The destination is on `at`'s subnet `net`, but nothing on that link or LAN takes it.
    Unclaimed { at: &'a NodeSpec, net: IpNet },
    /// The path came back to a node it had passed.
    Loop { at: &'a NodeSpec },
}

/// The hops a packet took and, if it did not arrive, why.
#[derive(Debug, Clone)]
pub(super) struct Trace<'a> {
    pub(super) steps: Vec<Step<'a>>,
    pub(super) failure: Option<Failure<'a>>,
}

impl Trace<'_> {
    /// The hops as `via 192.168.1.1 (router), via 203.0.113.2 (director)`.
    pub(super) fn path(&self) -> String {
        self.steps
            .iter()
            .map(|s| format!("via {} ({})", s.gw, s.node.name))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl<'a> Net<'a> {
    pub(super) fn new(nodes: &'a [NodeSpec], links: &'a [LinkSpec], lans: &'a [LanSpec]) -> Self {
        let mut segment = HashMap::new();
        let ends = links
            .iter()
            .map(|l| l.endpoints.iter().collect::<Vec<_>>())
            .chain(lans.iter().map(|l| l.members.iter().collect()));
        for (i, members) in ends.enumerate() {
            for e in members {
                segment.insert((e.node.as_str(), e.iface.as_str()), i);
            }
        }
        Net { nodes, segment }
    }

    pub(super) fn nodes(&self) -> &'a [NodeSpec] {
        self.nodes
    }

    pub(super) fn node(&self, name: &str) -> Option<&'a NodeSpec> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Whether two interfaces are plugged into the same link or LAN.
    pub(super) fn same_segment(&self, a: (&str, &str), b: (&str, &str)) -> bool {
        match (self.segment.get(&a), self.segment.get(&b)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        }
    }

    /// The node (and its interface) holding `addr` on the segment of `from`'s `iface`.
    pub(super) fn holder_near(
        &self,
        from: &NodeSpec,
        iface: &str,
        addr: IpAddr,
    ) -> Option<&'a NodeSpec> {
        self.nodes.iter().find(|n| {
            n.name != from.name
                && n.interfaces.iter().any(|i| {
                    i.addresses.iter().any(|a| a.addr() == addr)
                        && self.same_segment((&from.name, iface), (&n.name, &i.name))
                })
        })
    }

    /// Whether `node` is plugged into the segment of `from`'s `iface`.
    fn on_segment(&self, node: &NodeSpec, from: &NodeSpec, iface: &str) -> bool {
        node.interfaces
            .iter()
            .any(|i| self.same_segment((&from.name, iface), (&node.name, &i.name)))
    }

    /// Where `node` sends a packet for `dst`: the longest matching prefix among its
    /// connected subnets and static routes, a connected subnet winning a tie (the kernel's
    /// connected route and a static one of equal length: the file's static one would be
    /// refused as a duplicate). A route whose gateway is on no connected subnet is skipped:
    /// the kernel refuses it too (and the routes pass has reported it).
    pub(super) fn lookup(&self, node: &'a NodeSpec, dst: IpAddr) -> Option<Hop<'a>> {
        let mut best: Option<(u8, bool, Hop<'a>)> = None;
        let mut offer = |len: u8, connected: bool, hop: Hop<'a>| {
            if best
                .as_ref()
                .is_none_or(|(l, c, _)| (len, connected) > (*l, *c))
            {
                best = Some((len, connected, hop));
            }
        };
        for i in &node.interfaces {
            for net in i.addresses.iter().filter(|n| n.contains(&dst)) {
                let net = net.trunc();
                let hop = Hop::Connected {
                    iface: &i.name,
                    net,
                };
                offer(net.prefix_len(), true, hop);
            }
        }
        for r in node
            .routes
            .iter()
            .filter(|r| r.via.is_ipv4() == dst.is_ipv4())
        {
            let len = match r.dest {
                None => 0,
                Some(d) if d.contains(&dst) => d.prefix_len(),
                Some(_) => continue,
            };
            let Some(iface) = self.iface_for(node, r.via) else {
                continue;
            };
            offer(
                len,
                false,
                Hop::Via {
                    iface,
                    gw: r.via,
                    route: r,
                },
            );
        }
        best.map(|(_, _, h)| h)
    }

    /// The interface of `node` whose subnet holds `gw` (longest prefix).
    fn iface_for(&self, node: &'a NodeSpec, gw: IpAddr) -> Option<&'a str> {
        node.interfaces
            .iter()
            .flat_map(|i| i.addresses.iter().map(move |a| (i, a)))
            .filter(|(_, a)| a.contains(&gw) && a.addr() != gw)
            .max_by_key(|(_, a)| a.prefix_len())
            .map(|(i, _)| i.name.as_str())
    }

    /// Follow `from`'s packet for the goal hop by hop.
    pub(super) fn trace(&self, from: &'a NodeSpec, goal: &Goal<'_>) -> Trace<'a> {
        let dst = goal.dst();
        let mut steps = Vec::new();
        let mut seen: HashSet<&str> = HashSet::from([from.name.as_str()]);
        let mut cur = from;
        let fail = |steps, f| Trace {
            steps,
            failure: Some(f),
        };
        for _ in 0..MAX_HOPS {
            let hop = match self.lookup(cur, dst) {
                None => return fail(steps, Failure::NoRoute { at: cur }),
                Some(h) => h,
            };
            let (iface, gw) = match hop {
                Hop::Connected { iface, net } => {
                    let arrived = match goal {
                        Goal::Address(a) => self.holder_near(cur, iface, *a).is_some(),
                        Goal::Director { directors, .. } => directors.iter().any(|d| {
                            self.node(d).is_some_and(|n| {
                                n.name != cur.name && self.on_segment(n, cur, iface)
                            })
                        }),
                    };
                    return if arrived {
                        Trace {
                            steps,
                            failure: None,
                        }
                    } else {
                        fail(steps, Failure::Unclaimed { at: cur, net })
                    };
                }
                Hop::Via { iface, gw, .. } => (iface, gw),
            };
            let Some(next) = self.holder_near(cur, iface, gw) else {
                return fail(steps, Failure::NoGateway { at: cur, gw });
            };
            steps.push(Step { gw, node: next });
            let arrived = match goal {
                Goal::Address(a) => next
                    .interfaces
                    .iter()
                    .any(|i| i.addresses.iter().any(|n| n.addr() == *a)),
                Goal::Director { directors, .. } => directors.contains(&next.name.as_str()),
            };
            if arrived {
                return Trace {
                    steps,
                    failure: None,
                };
            }
            if !forwards(next, dst.is_ipv4()) {
                return fail(steps, Failure::NotForwarding { at: next });
            }
            if !seen.insert(next.name.as_str()) {
                return fail(steps, Failure::Loop { at: next });
            }
            cur = next;
        }
        fail(steps, Failure::Loop { at: cur })
    }
}

/// Whether `node` forwards packets of that family: what `up` sets (routers forward, every
/// other node does not), unless the node's own sysctls, applied last, say otherwise.
pub(super) fn forwards(node: &NodeSpec, v4: bool) -> bool {
    let keys: &[&str] = if v4 {
        &["net.ipv4.ip_forward", "net.ipv4.conf.all.forwarding"]
    } else {
        &["net.ipv6.conf.all.forwarding"]
    };
    node.sysctls
        .iter()
        .rev()
        .find(|(k, _)| keys.contains(&k.as_str()))
        .map_or(node.role == Role::Router, |(_, v)| v.trim() != "0")
}
