//! Change detection: compares a packet's headers between consecutive sightings and names
//! what happened, first per hop pair, then with the whole conversation in view (which
//! node acted as the director, whether the replies came back through it).

use crate::{
    hop_layers, Direction, Endpoint, Forwarding, Outer, PacketTrace, Pick, Step, StepKind,
    TcpSummary, Trace, TraceHop,
};
use lvslab_capture::decode::{Ip, L4};
use lvslab_capture::normalize::{ConversationSummary, HopPacket, JourneySummary};
use lvslab_capture::RoleMap;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

/// Names addresses and ports the way the path text does.
struct Namer<'a> {
    roles: &'a RoleMap,
    ports: &'a BTreeMap<(IpAddr, u16), String>,
}

impl Namer<'_> {
    fn endpoint(&self, ip: &Ip, src: bool) -> Endpoint {
        let addr = if src { ip.src } else { ip.dst };
        let port = ports_of(ip).map(|(s, d)| if src { s } else { d });
        Endpoint {
            addr,
            label: self.roles.label_of(&addr).map(|l| l.to_string()),
            port,
            port_name: port.map(|p| self.ports.get(&(addr, p)).cloned().unwrap_or(p.to_string())),
        }
    }

    /// Which node owns a MAC shown as `node:iface` (the text's name for it).
    fn node_of_mac_name(name: &str) -> &str {
        name.split_once(':').map_or(name, |(n, _)| n)
    }
}

fn ports_of(ip: &Ip) -> Option<(u16, u16)> {
    match &ip.l4 {
        L4::Tcp(t) => Some((t.sport, t.dport)),
        L4::Udp { sport, dport, .. } => Some((*sport, *dport)),
        _ => None,
    }
}

fn protocol_name(ip: &Ip) -> String {
    match &ip.l4 {
        L4::Tcp(_) => "TCP".into(),
        L4::Udp { .. } => "UDP".into(),
        L4::Echo { v6: false, .. }
        | L4::IcmpError { v6: false, .. }
        | L4::IcmpOther { v6: false, .. } => "ICMP".into(),
        L4::Echo { .. } | L4::IcmpError { .. } | L4::IcmpOther { .. } | L4::Nd { .. } => {
            "ICMPv6".into()
        }
        L4::Ipip(_) => "IPIP".into(),
        L4::Other { protocol, .. } => format!("proto {protocol}"),
    }
}

/// What a packet is, in a word or two.
fn summary_of(j: &JourneySummary) -> String {
    let Some((ip, _)) = j.hops.first().and_then(hop_layers) else {
        return "non-IP frame".into();
    };
    match &ip.l4 {
        L4::Tcp(t) => {
            let f = t.flags;
            let len = t.payload.len;
            let mut s = if f.rst {
                "RST".to_owned()
            } else if f.syn && f.ack {
                "SYN-ACK".to_owned()
            } else if f.syn {
                "SYN".to_owned()
            } else if len > 0 {
                format!("data ({len} bytes)")
            } else if f.fin {
                String::new()
            } else {
                "ACK".to_owned()
            };
            if f.fin {
                s = if s.is_empty() {
                    "FIN".into()
                } else {
                    format!("{s} + FIN")
                };
            }
            s
        }
        L4::Udp { payload, .. } => format!("UDP datagram ({} bytes)", payload.len),
        L4::Echo { reply: false, .. } => "echo request".into(),
        L4::Echo { reply: true, .. } => "echo reply".into(),
        L4::IcmpError { .. } => match &j.icmp_error {
            Some(name) => format!("ICMP {name}"),
            None => "ICMP error".into(),
        },
        L4::IcmpOther {
            icmp_type, code, ..
        } => format!("ICMP type {icmp_type} code {code}"),
        L4::Nd { solicit: true, .. } => "neighbour solicitation".into(),
        L4::Nd { solicit: false, .. } => "neighbour advertisement".into(),
        L4::Ipip(_) | L4::Other { .. } => "packet".into(),
    }
}

/// First sequence number per direction (c2s = 0), from the SYN when seen: the same base
/// the path text's relative numbers use.
fn isns(conv: &ConversationSummary) -> [Option<u32>; 2] {
    let mut isn = [None, None];
    for j in &conv.journeys {
        let Some((ip, _)) = j.hops.first().and_then(hop_layers) else {
            continue;
        };
        if let L4::Tcp(t) = &ip.l4 {
            let d = usize::from(!j.c2s);
            if t.flags.syn || isn[d].is_none() {
                isn[d] = Some(t.seq);
            }
        }
    }
    isn
}

fn trace_hop(h: &HopPacket, n: &Namer, c2s: bool, isn: &[Option<u32>; 2]) -> TraceHop {
    let dir = match h.out {
        Some(true) => "out",
        Some(false) => "in",
        None => "?",
    }
    .to_owned();
    let (inner, outer) = match hop_layers(h) {
        Some(l) => l,
        None => {
            // Only IP conversations are traced; a non-IP frame still gets a hop line.
            let none = Endpoint {
                addr: std::net::IpAddr::from([0, 0, 0, 0]),
                label: None,
                port: None,
                port_name: None,
            };
            return TraceHop {
                hop: h.hop.to_string(),
                dir,
                src_mac: h.src_mac.clone(),
                dst_mac: h.dst_mac.clone(),
                outer: None,
                src: none.clone(),
                dst: none,
                protocol: "non-IP".into(),
                tcp: None,
                ttl: 0,
                packet: h.packet.clone(),
            };
        }
    };
    let tcp = match &inner.l4 {
        L4::Tcp(t) => {
            let d = usize::from(!c2s);
            Some(TcpSummary {
                flags: t.flags.render(),
                seq: t.seq.wrapping_sub(isn[d].unwrap_or(0)),
                ack: t
                    .flags
                    .ack
                    .then(|| t.ack.wrapping_sub(isn[1 - d].unwrap_or(0))),
                len: t.payload.len,
            })
        }
        _ => None,
    };
    TraceHop {
        hop: h.hop.to_string(),
        dir,
        src_mac: h.src_mac.clone(),
        dst_mac: h.dst_mac.clone(),
        outer: outer.map(|o| Outer {
            src: n.endpoint(o, true),
            dst: n.endpoint(o, false),
        }),
        src: n.endpoint(inner, true),
        dst: n.endpoint(inner, false),
        protocol: protocol_name(inner),
        tcp,
        ttl: outer.unwrap_or(inner).ttl,
        packet: h.packet.clone(),
    }
}

/// What differs between two sightings of the same packet.
#[derive(Debug, Default)]
struct Diff {
    encap: Option<(Endpoint, Endpoint)>,
    decap: Option<(Endpoint, Endpoint)>,
    outer: Option<((Endpoint, Endpoint), (Endpoint, Endpoint))>,
    src: Option<(Endpoint, Endpoint)>,
    dst: Option<(Endpoint, Endpoint)>,
    /// Innermost TTL before and after, when it changed.
    ttl: Option<(u8, u8)>,
    src_mac: Option<(String, String)>,
    dst_mac: Option<(String, String)>,
}

impl Diff {
    fn of(a: &TraceHop, b: &TraceHop, a_inner_ttl: u8, b_inner_ttl: u8) -> Diff {
        let changed = |x: &Endpoint, y: &Endpoint| (x.addr, x.port) != (y.addr, y.port);
        let mut d = Diff::default();
        match (&a.outer, &b.outer) {
            (None, Some(o)) => d.encap = Some((o.src.clone(), o.dst.clone())),
            (Some(o), None) => d.decap = Some((o.src.clone(), o.dst.clone())),
            (Some(x), Some(y)) if changed(&x.src, &y.src) || changed(&x.dst, &y.dst) => {
                d.outer = Some((
                    (x.src.clone(), x.dst.clone()),
                    (y.src.clone(), y.dst.clone()),
                ));
            }
            _ => {}
        }
        if changed(&a.src, &b.src) {
            d.src = Some((a.src.clone(), b.src.clone()));
        }
        if changed(&a.dst, &b.dst) {
            d.dst = Some((a.dst.clone(), b.dst.clone()));
        }
        if a_inner_ttl != b_inner_ttl {
            d.ttl = Some((a_inner_ttl, b_inner_ttl));
        }
        if a.src_mac != b.src_mac {
            d.src_mac = Some((a.src_mac.clone(), b.src_mac.clone()));
        }
        if a.dst_mac != b.dst_mac {
            d.dst_mac = Some((a.dst_mac.clone(), b.dst_mac.clone()));
        }
        d
    }

    fn addresses_kept(&self) -> bool {
        self.encap.is_none()
            && self.decap.is_none()
            && self.outer.is_none()
            && self.src.is_none()
            && self.dst.is_none()
    }

    fn nothing(&self) -> bool {
        self.addresses_kept()
            && self.ttl.is_none()
            && self.src_mac.is_none()
            && self.dst_mac.is_none()
    }

    /// Every change, listed.
    fn list(&self) -> String {
        let mut parts = Vec::new();
        if let Some((s, d)) = &self.encap {
            parts.push(format!(
                "an outer IPIP header {} -> {} was added",
                s.name(),
                d.name()
            ));
        }
        if let Some((s, d)) = &self.decap {
            parts.push(format!(
                "the outer IPIP header {} -> {} was removed",
                s.name(),
                d.name()
            ));
        }
        if let Some(((s0, d0), (s1, d1))) = &self.outer {
            parts.push(format!(
                "the outer header {} -> {} became {} -> {}",
                s0.name(),
                d0.name(),
                s1.name(),
                d1.name()
            ));
        }
        if let Some((x, y)) = &self.src {
            parts.push(format!("src {}", rewrite(x, y)));
        }
        if let Some((x, y)) = &self.dst {
            parts.push(format!("dst {}", rewrite(x, y)));
        }
        if let Some(t) = self.ttl {
            parts.push(ttl_text(t));
        }
        if self.src_mac.is_some() || self.dst_mac.is_some() {
            parts.push("MACs re-written".into());
        }
        if parts.is_empty() {
            "unchanged".into()
        } else {
            parts.join(", ")
        }
    }
}

/// `VIP -> RIP2`, with ports only when they changed too.
fn rewrite(x: &Endpoint, y: &Endpoint) -> String {
    if x.port == y.port {
        format!("{} -> {}", x.name(), y.name())
    } else {
        format!("{} -> {}", x.name_port(), y.name_port())
    }
}

fn ttl_text((a, b): (u8, u8)) -> String {
    let delta = i16::from(b) - i16::from(a);
    format!("TTL {a} -> {b} ({delta:+})")
}

/// A step as first seen, before the conversation says who the director is.
#[derive(Debug)]
enum Raw {
    /// Crossed a link; `None` when unchanged.
    Wire(Option<Diff>),
    /// A node took it in and sent it on.
    Forward { node: String, diff: Diff },
    /// Hops in between were not captured.
    Gap(Diff),
}

fn inner_ttl(h: &HopPacket) -> u8 {
    hop_layers(h).map_or(0, |(i, _)| i.ttl)
}

fn raw_steps(j: &JourneySummary, hops: &[TraceHop]) -> Vec<Raw> {
    let mut out = Vec::new();
    for i in 0..hops.len().saturating_sub(1) {
        let (a, b) = (&hops[i], &hops[i + 1]);
        let (ha, hb) = (&j.hops[i], &j.hops[i + 1]);
        let diff = Diff::of(a, b, inner_ttl(ha), inner_ttl(hb));
        let raw = if ha.out == Some(true) && hb.out == Some(false) && ha.hop.node != hb.hop.node {
            Raw::Wire((!diff.nothing()).then_some(diff))
        } else if ha.out == Some(false) && hb.out == Some(true) && ha.hop.node == hb.hop.node {
            Raw::Forward {
                node: ha.hop.node.clone(),
                diff,
            }
        } else {
            Raw::Gap(diff)
        };
        out.push(raw);
    }
    out
}

/// The node the journey ends at, when it was seen arriving there.
fn delivered_to(j: &JourneySummary) -> Option<&str> {
    j.hops
        .last()
        .filter(|h| h.out == Some(false))
        .map(|h| h.hop.node.as_str())
}

/// The node that sent it (seen leaving there first).
fn origin(j: &JourneySummary) -> Option<&str> {
    j.hops
        .first()
        .filter(|h| h.out == Some(true))
        .map(|h| h.hop.node.as_str())
}

/// The node the first sighting hands it to (owner of its destination MAC).
fn handed_to(hops: &[TraceHop]) -> Option<String> {
    let first = hops.first()?;
    first
        .dst_mac
        .contains(':')
        .then(|| Namer::node_of_mac_name(&first.dst_mac).to_owned())
}

/// The conversation's endpoints as the client sent them: (client, service).
fn endpoints(conv: &ConversationSummary) -> Option<(SocketAddr, SocketAddr)> {
    let j = conv.journeys.iter().find(|j| j.c2s)?;
    let (ip, _) = j.hops.first().and_then(hop_layers)?;
    let (sp, dp) = ports_of(ip)?;
    Some((SocketAddr::new(ip.src, sp), SocketAddr::new(ip.dst, dp)))
}

/// Where the director sent the connection: the first c2s step that shows its hand.
struct Scheduling {
    forwarding: Forwarding,
    director: String,
}

fn scheduling(
    conv: &ConversationSummary,
    raws: &[Vec<Raw>],
    pick: Option<&Pick>,
) -> Option<Scheduling> {
    for (j, steps) in conv.journeys.iter().zip(raws) {
        if !j.c2s {
            continue;
        }
        for r in steps {
            if let Raw::Forward { node, diff } = r {
                let forwarding = if diff.encap.is_some() {
                    Forwarding::Tun
                } else if diff.dst.is_some() {
                    Forwarding::Nat
                } else {
                    continue;
                };
                return Some(Scheduling {
                    forwarding,
                    director: node.clone(),
                });
            }
        }
    }
    // No rewrite: DR if the last node that forwarded the client's packets unchanged
    // handed them to a node that kept them, and that node's answers went around it
    // (or the director's own explanation says it picked a server).
    for (j, steps) in conv.journeys.iter().zip(raws) {
        if !j.c2s {
            continue;
        }
        let Some(server) = delivered_to(j) else {
            continue;
        };
        let Some(node) = steps.iter().rev().find_map(|r| match r {
            Raw::Forward { node, diff } if diff.addresses_kept() => Some(node.as_str()),
            _ => None,
        }) else {
            continue;
        };
        if node == server {
            continue;
        }
        let replies_bypass = conv.journeys.iter().any(|r| {
            !r.c2s && origin(r) == Some(server) && r.hops.iter().all(|h| h.hop.node != node)
        });
        let picked = pick.is_some_and(|p| p.chosen.is_some());
        if replies_bypass || picked {
            return Some(Scheduling {
                forwarding: Forwarding::Dr,
                director: node.to_owned(),
            });
        }
        return None;
    }
    None
}

pub(crate) fn trace(
    number: usize,
    conv: &ConversationSummary,
    roles: &RoleMap,
    ports: &BTreeMap<(std::net::IpAddr, u16), String>,
    picks: &[Pick],
) -> Trace {
    let namer = Namer { roles, ports };
    let isn = isns(conv);
    let ends = endpoints(conv);
    let pick = ends.and_then(|(client, service)| {
        picks
            .iter()
            .rev()
            .find(|p| p.client == client && p.vip == service)
            .cloned()
    });
    let hops: Vec<Vec<TraceHop>> = conv
        .journeys
        .iter()
        .map(|j| {
            j.hops
                .iter()
                .map(|h| trace_hop(h, &namer, j.c2s, &isn))
                .collect()
        })
        .collect();
    let raws: Vec<Vec<Raw>> = conv
        .journeys
        .iter()
        .zip(&hops)
        .map(|(j, h)| raw_steps(j, h))
        .collect();
    let sched = scheduling(conv, &raws, pick.as_ref());
    let forwarding = match &sched {
        Some(s) => s.forwarding,
        None if raws.iter().flatten().next().is_some() => Forwarding::Routed,
        None => Forwarding::Unknown,
    };
    let director = sched.as_ref().map(|s| s.director.clone());
    let server = conv
        .journeys
        .iter()
        .filter(|j| j.c2s)
        .find_map(delivered_to)
        .map(str::to_owned);
    let client_node = conv
        .journeys
        .iter()
        .find(|j| j.c2s)
        .and_then(origin)
        .map(str::to_owned);

    let mut findings = Vec::new();
    if forwarding == Forwarding::Routed {
        findings.extend(vip_reached_without_director(
            ends.map(|(_, service)| service),
            &hops,
            conv,
            roles,
            server.as_deref(),
        ));
    }
    let mut scheduled_at: Option<usize> = None;
    let mut packets = Vec::new();
    for (k, ((j, hops), raws)) in conv.journeys.iter().zip(hops).zip(raws).enumerate() {
        let number = k + 1;
        let summary = summary_of(j);
        let mut steps = Vec::new();
        for (i, raw) in raws.into_iter().enumerate() {
            let step = describe(
                i,
                raw,
                j.c2s,
                &hops,
                director.as_deref(),
                forwarding,
                server.as_deref(),
            );
            let step = match step {
                Some(mut s)
                    if matches!(s.kind, StepKind::NatDst | StepKind::Encap | StepKind::Dr) =>
                {
                    match scheduled_at {
                        None => {
                            scheduled_at = Some(number);
                            if let Some(p) = &pick {
                                add_pick(
                                    &mut s,
                                    p,
                                    &hops[i + 1],
                                    server.as_deref(),
                                    roles,
                                    &mut findings,
                                );
                            }
                        }
                        Some(first) => {
                            let client =
                                hops.first().map(|h| h.src.name_port()).unwrap_or_default();
                            s.text.push_str(&format!(
                                ", following its connection entry for {client} (scheduled at packet {first})"
                            ));
                        }
                    }
                    Some(s)
                }
                other => other,
            };
            steps.extend(step);
        }
        let mut notes = Vec::new();
        notes.extend(delivery_note(j, &hops, forwarding, server.as_deref()));
        if !j.c2s {
            reply_notes(
                number,
                &summary,
                j,
                &hops,
                &steps,
                director.as_deref(),
                forwarding,
                &mut notes,
                &mut findings,
            );
            client_view(
                number,
                &summary,
                j,
                &hops,
                client_node.as_deref(),
                &packets_first_c2s(&conv.journeys, &namer),
                &mut findings,
            );
        }
        packets.push(PacketTrace {
            number,
            direction: if j.c2s {
                Direction::ClientToServer
            } else {
                Direction::ServerToClient
            },
            summary,
            hops,
            steps,
            notes,
        });
    }
    Trace {
        conversation: number,
        title: conv.title.clone(),
        forwarding,
        director,
        server,
        pick,
        findings,
        packets,
    }
}

/// The DR ARP problem, seen from the packets: the client's packets to a VIP reached a real
/// server with no node acting as director on the way, so the last router must have
/// resolved the VIP to that server's MAC (the server answered ARP for a VIP it holds).
fn vip_reached_without_director(
    service: Option<SocketAddr>,
    hops: &[Vec<TraceHop>],
    conv: &ConversationSummary,
    roles: &RoleMap,
    server: Option<&str>,
) -> Option<String> {
    let service = service?;
    let label = roles.label_of(&service.ip())?.to_string();
    if !label.starts_with("VIP") {
        return None;
    }
    let server = server?;
    // A node that only answered with an ICMP error (a director with no real server
    // available, ip_vs_leave) took nothing for itself: that is not the ARP problem.
    let answered = conv
        .journeys
        .iter()
        .filter(|j| !j.c2s)
        .any(|j| !is_icmp_error(j));
    if !answered {
        return None;
    }
    let (k, _) = conv.journeys.iter().enumerate().find(|(_, j)| j.c2s)?;
    let last = hops.get(k)?.last()?;
    let from = hops.get(k)?.iter().rev().find(|h| h.dir == "out")?;
    Some(format!(
        "the client's packets to {label}={} reached {server} with no director on the way: {} sent them to {} ({server} answered ARP for the VIP it holds), so nothing balanced them; a DR/TUN real server must hold the VIP without answering ARP for it (arp_ignore=1, arp_announce=2)",
        service.ip(),
        from.hop,
        last.dst_mac,
    ))
}

/// Whether a journey's packet is an ICMP(v6) error.
fn is_icmp_error(j: &JourneySummary) -> bool {
    j.hops
        .first()
        .and_then(hop_layers)
        .is_some_and(|(ip, _)| matches!(ip.l4, L4::IcmpError { .. }))
}

/// The service endpoint the client addressed (first c2s sighting's destination).
fn packets_first_c2s(js: &[JourneySummary], n: &Namer) -> Option<Endpoint> {
    let j = js.iter().find(|j| j.c2s)?;
    let (ip, _) = j.hops.first().and_then(hop_layers)?;
    Some(n.endpoint(ip, false))
}

/// Turns one raw step into words, now that the conversation's director is known.
fn describe(
    i: usize,
    raw: Raw,
    c2s: bool,
    hops: &[TraceHop],
    director: Option<&str>,
    forwarding: Forwarding,
    server: Option<&str>,
) -> Option<Step> {
    let step = |kind, text: String| {
        Some(Step {
            after: i,
            kind,
            text,
            detail: None,
        })
    };
    let (a, b) = (&hops[i], &hops[i + 1]);
    match raw {
        Raw::Wire(None) => step(
            StepKind::Wire,
            format!("on the wire {} -> {}", a.hop, b.hop),
        ),
        Raw::Wire(Some(d)) => step(
            StepKind::Other,
            format!(
                "changed on the wire between {} and {}: {}",
                a.hop,
                b.hop,
                d.list()
            ),
        ),
        Raw::Gap(d) => step(
            StepKind::Other,
            format!(
                "{} -> {} (what lies between was not captured): {}",
                a.hop,
                b.hop,
                d.list()
            ),
        ),
        Raw::Forward { node, diff } => {
            let at_director = director == Some(node.as_str());
            if let Some((s, d)) = &diff.encap {
                let inner = format!("{} -> {}", b.src.name_port(), b.dst.name_port());
                return step(
                    StepKind::Encap,
                    format!(
                        "TUN: {node} added an outer {} header {} -> {} (the inner packet {inner} untouched)",
                        tunnel_name(s),
                        s.name(),
                        d.name()
                    ),
                );
            }
            if let Some((s, d)) = &diff.decap {
                return step(
                    StepKind::Decap,
                    format!(
                        "{node} removed the outer {} header {} -> {} and sent the inner packet on",
                        tunnel_name(s),
                        s.name(),
                        d.name()
                    ),
                );
            }
            if diff.dst.is_some() || diff.src.is_some() || diff.outer.is_some() {
                let mut parts = Vec::new();
                let mut kind = StepKind::Rewrite;
                if let Some((x, y)) = &diff.dst {
                    if c2s {
                        kind = StepKind::NatDst;
                        parts.push(format!("{node} rewrote dst {} (NAT)", rewrite(x, y)));
                    } else {
                        parts.push(format!("{node} rewrote dst {}", rewrite(x, y)));
                    }
                }
                if let Some((x, y)) = &diff.src {
                    let nat_reply = !c2s
                        && x.label.as_deref().is_some_and(|l| l.starts_with("RIP"))
                        && is_vip(y.label.as_deref());
                    if nat_reply {
                        kind = StepKind::NatSrc;
                        parts.push(format!("NAT reply: {node} rewrote src {}", rewrite(x, y)));
                    } else if parts.is_empty() {
                        parts.push(format!("{node} rewrote src {} (source NAT)", rewrite(x, y)));
                    } else {
                        parts.push(format!("and src {}", rewrite(x, y)));
                    }
                }
                if let Some(((s0, d0), (s1, d1))) = &diff.outer {
                    parts.push(format!(
                        "{node} changed the outer header {} -> {} into {} -> {}",
                        s0.name(),
                        d0.name(),
                        s1.name(),
                        d1.name()
                    ));
                }
                return step(kind, parts.join(" "));
            }
            // Addresses kept: DR's hand-off at the director, routing anywhere else.
            if forwarding == Forwarding::Dr && at_director && c2s {
                let _ = server;
                let mac = match &diff.dst_mac {
                    Some((x, y)) => format!("{x} -> {y}"),
                    None => format!("stays {}", b.dst_mac),
                };
                let ttl = diff
                    .ttl
                    .map(|t| format!(", {}", ttl_text(t)))
                    .unwrap_or_default();
                return step(
                    StepKind::Dr,
                    format!(
                        "DR: {node} changed only the destination MAC, {mac} (the IP header still says {} -> {}; src MAC now its own {}{ttl})",
                        b.src.name_port(),
                        b.dst.name_port(),
                        b.src_mac
                    ),
                );
            }
            let ttl = diff.ttl.map_or("TTL kept".to_owned(), ttl_text);
            let macs = if diff.src_mac.is_some() || diff.dst_mac.is_some() {
                format!("MACs re-written ({} > {})", b.src_mac, b.dst_mac)
            } else {
                "MACs kept".to_owned()
            };
            let mut text = format!("{node} routed it: {ttl}, {macs}");
            if forwarding == Forwarding::Nat
                && at_director
                && !c2s
                && b.src.label.as_deref().is_some_and(|l| l.starts_with("RIP"))
            {
                text.push_str(&format!(
                    " -- but without rewriting src {} to the VIP, as a NAT director must",
                    b.src.name()
                ));
            }
            step(StepKind::Routed, text)
        }
    }
}

/// Says why the director sent the connection where it did, from its own explanation.
fn add_pick(
    s: &mut Step,
    p: &Pick,
    after: &TraceHop,
    server: Option<&str>,
    roles: &RoleMap,
    findings: &mut Vec<String>,
) {
    let Some(chosen) = p.chosen else {
        s.text.push_str(&format!(
            " although {} found no server ({})",
            p.scheduler, p.decision
        ));
        s.detail = Some(p.text.trim_end().to_owned());
        return;
    };
    let label = roles
        .label_of(&chosen.ip())
        .map(|l| format!("{l}="))
        .unwrap_or_default();
    let who = match server {
        Some(n) => format!("{n} ({label}{chosen})"),
        None => format!("{label}{chosen}"),
    };
    s.text.push_str(&format!(
        " because {} picked {who}: {}",
        p.scheduler, p.decision
    ));
    s.detail = Some(p.text.trim_end().to_owned());
    // Where the packet went must be what the director says it picked; DR keeps the
    // VIP, so only NAT (dst) and TUN (outer dst) can be checked against it.
    let went = match (s.kind, &after.outer) {
        (StepKind::Encap, Some(o)) => Some(o.dst.addr),
        (StepKind::NatDst, _) => Some(after.dst.addr),
        _ => None,
    };
    if let Some(went) = went.filter(|a| *a != chosen.ip()) {
        findings.push(format!(
            "the director says it picked {chosen}, but the packet went to {went}"
        ));
    }
}

/// Where the packet ended up.
fn delivery_note(
    j: &JourneySummary,
    hops: &[TraceHop],
    forwarding: Forwarding,
    server: Option<&str>,
) -> Option<String> {
    let last = hops.last()?;
    let node = j.hops.last()?.hop.node.as_str();
    match j.hops.last()?.out {
        Some(false) => Some(match &last.outer {
            Some(o) => format!(
                "{node} decapsulated it (outer {} {} -> {} removed) and accepted the inner packet for {}, an address it holds itself",
                tunnel_name(&o.src),
                o.src.name(),
                o.dst.name(),
                last.dst.name()
            ),
            None if j.c2s
                && forwarding == Forwarding::Dr
                && server == Some(node)
                && is_vip(last.dst.label.as_deref()) =>
            {
                format!(
                    "{node} accepted it: dst {} is its own address too (a DR real server holds the VIP without answering ARP for it)",
                    last.dst.name()
                )
            }
            None => format!("delivered to {node}"),
        }),
        Some(true) => Some(format!(
            "last seen leaving {} towards {}; never seen arriving",
            last.hop, last.dst_mac
        )),
        None => Some(format!("last seen at {}", last.hop)),
    }
}

/// A VIP's label: `VIP`, or `VIP1`, `VIP2`, ... in a lab with several.
fn is_vip(label: Option<&str>) -> bool {
    label.is_some_and(|l| l.starts_with("VIP"))
}

/// What kernel IPVS calls the encapsulation with this outer source: IPIP, or IPv6-in-IPv6.
fn tunnel_name(outer_src: &crate::Endpoint) -> &'static str {
    if outer_src.addr.is_ipv6() {
        "IPv6-in-IPv6"
    } else {
        "IPIP"
    }
}

/// The reply's way back, against the director's.
#[allow(clippy::too_many_arguments)]
fn reply_notes(
    number: usize,
    summary: &str,
    j: &JourneySummary,
    hops: &[TraceHop],
    steps: &[Step],
    director: Option<&str>,
    forwarding: Forwarding,
    notes: &mut Vec<String>,
    findings: &mut Vec<String>,
) {
    let (Some(director), Some(from)) = (director, origin(j)) else {
        return;
    };
    if from == director {
        return;
    }
    let passes = j.hops.iter().any(|h| h.hop.node == director);
    let Some(first) = hops.first() else {
        return;
    };
    let next = handed_to(hops).unwrap_or_else(|| first.dst_mac.clone());
    match forwarding {
        Forwarding::Nat if !passes => {
            let text = format!(
                "{summary} left {from} with src {} towards {next}, bypassing {director}, the director: nothing rewrites it back to the address the client talks to",
                first.src.name()
            );
            findings.push(format!("packet {number}: {text}"));
            notes.push(text);
        }
        Forwarding::Dr | Forwarding::Tun if !passes => notes.push(format!(
            "the reply leaves {from} with src {} for {next} and never passes the director ({}: replies go straight back to the client)",
            first.src.name(),
            forwarding.name()
        )),
        Forwarding::Nat
            if passes
                && !steps.iter().any(|s| s.kind == StepKind::NatSrc)
                && first.src.label.as_deref().is_some_and(|l| l.starts_with("RIP")) =>
        {
            findings.push(format!(
                "packet {number} ({summary}) passed through {director}, the director, but its src {} was not rewritten to the VIP",
                first.src.name()
            ));
        }
        _ => {}
    }
}

/// A reply the client receives from another address than it sent to matches no socket.
fn client_view(
    number: usize,
    summary: &str,
    j: &JourneySummary,
    hops: &[TraceHop],
    client_node: Option<&str>,
    service: &Option<Endpoint>,
    findings: &mut Vec<String>,
) {
    let (Some(client), Some(service), Some(last)) = (client_node, service, hops.last()) else {
        return;
    };
    // An ICMP error is matched to the client's socket by the packet it quotes, not by its
    // own source: one from the VIP about the client's SYN reaches the connect() call.
    if delivered_to(j) != Some(client) || is_icmp_error(j) {
        return;
    }
    if (last.src.addr, last.src.port) != (service.addr, service.port) {
        findings.push(format!(
            "packet {number} ({summary}) reached {client} from {}, but the client talks to {}: no socket matches, so the client drops it or answers with a reset",
            last.src.name_port(),
            service.name_port()
        ));
    }
}

#[cfg(test)]
mod tests {
    //! Change detection on hand-built packets: each case is a journey written out hop by
    //! hop the way the normalizer hands it over.
    use super::*;
    use lvslab_capture::decode::{Body, Frame, Mac, Payload, Tcp, TcpFlagSet};
    use lvslab_capture::Hop;
    use std::net::IpAddr;
    use std::time::Duration;

    const CIP: [u8; 4] = [198, 51, 100, 10];
    const VIP: [u8; 4] = [192, 168, 1, 250];
    const DIP: [u8; 4] = [192, 168, 1, 202];
    const RIP1: [u8; 4] = [192, 168, 1, 201];

    /// MACs: client 1, router eth0 2, router eth1 3, director eth0 4, director eth1 5,
    /// rs1 6.
    fn roles() -> RoleMap {
        let mut r = RoleMap::new();
        for (n, node, iface) in [
            (1, "client", "eth0"),
            (2, "router", "eth0"),
            (3, "router", "eth1"),
            (4, "director", "eth0"),
            (5, "director", "eth1"),
            (6, "rs1", "eth0"),
        ] {
            r.mac(mac(n), Hop::new(node, iface));
        }
        for (a, l) in [(CIP, "CIP"), (VIP, "VIP"), (DIP, "DIP"), (RIP1, "RIP1")] {
            r.label(IpAddr::from(a), l.parse().unwrap());
        }
        r
    }

    fn mac(n: u8) -> Mac {
        Mac([2, 0, 0, 0, 0, n])
    }

    fn tcp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, ttl: u8, syn_ack: bool) -> Ip {
        Ip {
            src: src.into(),
            dst: dst.into(),
            ttl,
            l4: L4::Tcp(Tcp {
                sport,
                dport,
                seq: 1000,
                ack: if syn_ack { 501 } else { 0 },
                flags: TcpFlagSet {
                    syn: true,
                    fin: false,
                    rst: false,
                    psh: false,
                    ack: syn_ack,
                },
                payload: Payload { len: 0, digest: 0 },
            }),
        }
    }

    fn ipip(src: [u8; 4], dst: [u8; 4], inner: Ip) -> Ip {
        Ip {
            src: src.into(),
            dst: dst.into(),
            ttl: inner.ttl,
            l4: L4::Ipip(Box::new(inner)),
        }
    }

    /// One sighting: at node:iface, leaving or arriving, MACs by number.
    fn at(node: &str, iface: &str, out: bool, src_mac: u8, dst_mac: u8, ip: Ip) -> HopPacket {
        let roles = roles();
        let name = |n: u8| roles.owner_of(&mac(n)).unwrap().to_string();
        HopPacket {
            hop: Hop::new(node, iface),
            out: Some(out),
            ts: Duration::ZERO,
            frame: Frame {
                src_mac: mac(src_mac),
                dst_mac: mac(dst_mac),
                body: Body::Ip(ip),
            },
            src_mac: name(src_mac),
            dst_mac: name(dst_mac),
            packet: String::new(),
        }
    }

    fn journey(c2s: bool, hops: Vec<HopPacket>) -> JourneySummary {
        JourneySummary {
            c2s,
            payload_len: 0,
            first: hops[0].hop.clone(),
            arrived: Vec::new(),
            handed_to: Vec::new(),
            icmp_error: None,
            hops,
        }
    }

    fn run(journeys: Vec<JourneySummary>, picks: &[Pick]) -> Trace {
        let conv = ConversationSummary {
            title: "TCP test".into(),
            journeys,
        };
        trace(1, &conv, &roles(), &BTreeMap::new(), picks)
    }

    /// client -> router -> director, common to every method.
    fn to_director(ip: &dyn Fn(u8) -> Ip) -> Vec<HopPacket> {
        vec![
            at("client", "eth0", true, 1, 2, ip(64)),
            at("router", "eth0", false, 1, 2, ip(64)),
            at("router", "eth1", true, 3, 4, ip(63)),
            at("director", "eth0", false, 3, 4, ip(63)),
        ]
    }

    fn syn(ttl: u8) -> Ip {
        tcp(CIP, 40000, VIP, 80, ttl, false)
    }

    fn kinds(p: &PacketTrace) -> Vec<StepKind> {
        p.steps.iter().map(|s| s.kind).collect()
    }

    fn pick() -> Pick {
        Pick {
            client: "198.51.100.10:40000".parse().unwrap(),
            vip: "192.168.1.250:80".parse().unwrap(),
            scheduler: "wlc".into(),
            chosen: Some("192.168.1.201:80".parse().unwrap()),
            decision: "(0+1)/1 < (1+1)/1".into(),
            text: "wlc picked 192.168.1.201:80: least weighted connections\n  decided by: (0+1)/1 < (1+1)/1".into(),
        }
    }

    #[test]
    fn nat_rewrites_are_named_with_the_pick() {
        let mut c2s = to_director(&syn);
        c2s.push(at(
            "director",
            "eth1",
            true,
            5,
            6,
            tcp(CIP, 40000, RIP1, 80, 62, false),
        ));
        c2s.push(at(
            "rs1",
            "eth0",
            false,
            5,
            6,
            tcp(CIP, 40000, RIP1, 80, 62, false),
        ));
        let reply = |ttl| tcp(RIP1, 80, CIP, 40000, ttl, true);
        let vip_reply = |ttl| tcp(VIP, 80, CIP, 40000, ttl, true);
        let s2c = vec![
            at("rs1", "eth0", true, 6, 5, reply(64)),
            at("director", "eth1", false, 6, 5, reply(64)),
            at("director", "eth0", true, 4, 3, vip_reply(63)),
            at("router", "eth1", false, 4, 3, vip_reply(63)),
            at("router", "eth0", true, 2, 1, vip_reply(62)),
            at("client", "eth0", false, 2, 1, vip_reply(62)),
        ];
        let t = run(vec![journey(true, c2s), journey(false, s2c)], &[pick()]);
        assert_eq!(t.forwarding, Forwarding::Nat);
        assert_eq!(t.director.as_deref(), Some("director"));
        assert_eq!(t.server.as_deref(), Some("rs1"));
        assert!(t.findings.is_empty(), "{:?}", t.findings);
        let p = &t.packets[0];
        use StepKind::*;
        assert_eq!(kinds(p), [Wire, Routed, Wire, NatDst, Wire]);
        assert_eq!(
            p.steps[1].text,
            "router routed it: TTL 64 -> 63 (-1), MACs re-written (router:eth1 > director:eth0)"
        );
        assert_eq!(
            p.steps[3].text,
            "director rewrote dst VIP -> RIP1 (NAT) because wlc picked rs1 (RIP1=192.168.1.201:80): (0+1)/1 < (1+1)/1"
        );
        let r = &t.packets[1];
        assert_eq!(kinds(r), [Wire, NatSrc, Wire, Routed, Wire]);
        assert_eq!(
            r.steps[1].text,
            "NAT reply: director rewrote src RIP1 -> VIP"
        );
        assert_eq!(r.notes, ["delivered to client"]);
    }

    /// A NAT real server whose default route is the router, not the director: the
    /// SYN-ACK goes around the director with src RIP1 and the client does not know it.
    #[test]
    fn nat_reply_bypassing_the_director_is_a_finding() {
        let mut c2s = to_director(&syn);
        c2s.push(at(
            "director",
            "eth1",
            true,
            5,
            6,
            tcp(CIP, 40000, RIP1, 80, 62, false),
        ));
        c2s.push(at(
            "rs1",
            "eth0",
            false,
            5,
            6,
            tcp(CIP, 40000, RIP1, 80, 62, false),
        ));
        let reply = |ttl| tcp(RIP1, 80, CIP, 40000, ttl, true);
        let s2c = vec![
            at("rs1", "eth0", true, 6, 3, reply(64)),
            at("router", "eth1", false, 6, 3, reply(64)),
            at("router", "eth0", true, 2, 1, reply(63)),
            at("client", "eth0", false, 2, 1, reply(63)),
        ];
        let t = run(vec![journey(true, c2s), journey(false, s2c)], &[]);
        assert_eq!(t.forwarding, Forwarding::Nat);
        let r = &t.packets[1];
        assert!(r.notes.iter().any(|n| n
            == "SYN-ACK left rs1 with src RIP1 towards router, bypassing director, the director: nothing rewrites it back to the address the client talks to"), "{:?}", r.notes);
        assert_eq!(t.findings.len(), 2, "{:?}", t.findings);
        assert!(t.findings[0].starts_with(
            "packet 2: SYN-ACK left rs1 with src RIP1 towards router, bypassing director"
        ));
        assert!(
            t.findings[1].contains("reached client from RIP1:80, but the client talks to VIP:80")
        );
    }

    #[test]
    fn dr_changes_only_the_mac_and_replies_go_around_the_director() {
        let mut c2s = to_director(&syn);
        c2s.push(at("director", "eth0", true, 4, 6, syn(62)));
        c2s.push(at("rs1", "eth0", false, 4, 6, syn(62)));
        let reply = |ttl| tcp(VIP, 80, CIP, 40000, ttl, true);
        let s2c = vec![
            at("rs1", "eth0", true, 6, 3, reply(64)),
            at("router", "eth1", false, 6, 3, reply(64)),
            at("router", "eth0", true, 2, 1, reply(63)),
            at("client", "eth0", false, 2, 1, reply(63)),
        ];
        // No pick: the reply's way around the director is what shows DR.
        let t = run(vec![journey(true, c2s), journey(false, s2c)], &[]);
        assert_eq!(t.forwarding, Forwarding::Dr);
        assert!(t.findings.is_empty(), "{:?}", t.findings);
        let p = &t.packets[0];
        assert_eq!(p.steps[3].kind, StepKind::Dr);
        assert_eq!(
            p.steps[3].text,
            "DR: director changed only the destination MAC, director:eth0 -> rs1:eth0 (the IP header still says CIP:40000 -> VIP:80; src MAC now its own director:eth0, TTL 63 -> 62 (-1))"
        );
        assert!(p.notes[0].starts_with("rs1 accepted it: dst VIP is its own address too"));
        assert_eq!(
            t.packets[1].notes[1],
            "the reply leaves rs1 with src VIP for router and never passes the director (DR: replies go straight back to the client)"
        );
    }

    /// A router alone (no director in the path, the reply comes back the same way) is
    /// not mistaken for DR.
    #[test]
    fn plain_routing_is_not_dr() {
        let c2s = to_director(&syn);
        let reply = |ttl| tcp(VIP, 80, CIP, 40000, ttl, true);
        let s2c = vec![
            at("director", "eth0", true, 4, 3, reply(64)),
            at("router", "eth1", false, 4, 3, reply(64)),
            at("router", "eth0", true, 2, 1, reply(63)),
            at("client", "eth0", false, 2, 1, reply(63)),
        ];
        let t = run(vec![journey(true, c2s), journey(false, s2c)], &[]);
        assert_eq!(t.forwarding, Forwarding::Routed);
        assert_eq!(t.director, None);
        assert!(t
            .packets
            .iter()
            .flat_map(|p| &p.steps)
            .all(|s| matches!(s.kind, StepKind::Wire | StepKind::Routed)));
    }

    #[test]
    fn tun_adds_an_outer_header_and_the_server_decapsulates() {
        let mut c2s = to_director(&syn);
        c2s.push(at("director", "eth0", true, 4, 6, ipip(DIP, RIP1, syn(62))));
        c2s.push(at("rs1", "eth0", false, 4, 6, ipip(DIP, RIP1, syn(62))));
        let t = run(vec![journey(true, c2s)], &[pick()]);
        assert_eq!(t.forwarding, Forwarding::Tun);
        let p = &t.packets[0];
        assert_eq!(p.steps[3].kind, StepKind::Encap);
        assert!(p.steps[3].text.starts_with(
            "TUN: director added an outer IPIP header DIP -> RIP1 (the inner packet CIP:40000 -> VIP:80 untouched) because wlc picked rs1"
        ), "{}", p.steps[3].text);
        assert_eq!(
            p.notes,
            ["rs1 decapsulated it (outer IPIP DIP -> RIP1 removed) and accepted the inner packet for VIP, an address it holds itself"]
        );
        let hop = &p.hops[4];
        assert_eq!(
            hop.outer.as_ref().map(|o| o.dst.name()),
            Some("RIP1".into())
        );
        assert_eq!(hop.dst.name_port(), "VIP:80");
    }

    #[test]
    fn a_pick_that_disagrees_with_the_packet_is_a_finding() {
        let mut c2s = to_director(&syn);
        let rip2 = [192, 168, 1, 203];
        c2s.push(at(
            "director",
            "eth1",
            true,
            5,
            6,
            tcp(CIP, 40000, rip2, 80, 62, false),
        ));
        let t = run(vec![journey(true, c2s)], &[pick()]);
        assert_eq!(t.findings, ["the director says it picked 192.168.1.201:80, but the packet went to 192.168.1.203"]);
        assert_eq!(
            t.packets[0].notes,
            ["last seen leaving director:eth1 towards rs1:eth0; never seen arriving"]
        );
    }

    #[test]
    fn a_change_on_the_wire_is_reported() {
        let hops = vec![
            at("client", "eth0", true, 1, 2, syn(64)),
            at(
                "router",
                "eth0",
                false,
                1,
                2,
                tcp(CIP, 40001, VIP, 80, 64, false),
            ),
        ];
        let t = run(vec![journey(true, hops)], &[]);
        assert_eq!(t.packets[0].steps[0].kind, StepKind::Other);
        assert_eq!(
            t.packets[0].steps[0].text,
            "changed on the wire between client:eth0 and router:eth0: src CIP:40000 -> CIP:40001"
        );
    }
}
