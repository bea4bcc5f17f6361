//! The path normalizer: the captures of one run become stable text, one line per packet
//! per hop, that a snapshot can hold.
//!
//! Raw capture order is not stable: two interfaces see racing packets in either order,
//! and timestamps of different hops interleave. So the text is ordered by structure, not
//! by the clock:
//! 1. every sighting of the same packet (same conversation, direction and content, with
//!    addresses left out because NAT rewrites them) forms one *journey*, its hops in path
//!    order;
//! 2. journeys are grouped by *conversation* (the client's endpoint, which no LVS method
//!    rewrites), conversations ordered by when they started;
//! 3. inside a conversation the two directions are merged causally: a TCP segment comes
//!    after the segments it acknowledges, and when both directions are free to go the
//!    client's goes first — whichever way the race went on the wire.
//!
//! Ephemeral ports, ICMP echo ids, TCP sequence numbers, payload contents and unknown
//! MACs become tokens (`p1`, `i1`, relative seq/ack, `d1`, `mac1`); times, IP ids, TTLs
//! and checksums are not shown at all.

use crate::decode::{
    decode_ethernet, is_mld, is_neighbor_discovery, Body, Frame, Ip, Mac, Payload, L4,
};
use crate::files::HopCapture;
use crate::roles::{Hop, RoleMap};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

/// Ports from here up are the kernel's ephemeral range (net.ipv4.ip_local_port_range
/// starts at 32768); they change every run and so become tokens.
pub const EPHEMERAL_PORT_MIN: u16 = 32768;

/// What to leave in that is left out by default.
#[derive(Debug, Clone, Copy, Default)]
pub struct NormalizeOptions {
    /// Show ARP requests and replies.
    pub arp: bool,
    /// Show IPv6 neighbor and router discovery (ARP's IPv6 twin; scenarios' `arp = true`
    /// turns both on).
    pub neighbor_discovery: bool,
    /// Show TCP retransmissions (a second copy of an identical segment), ARP retries (a
    /// second copy of the same request or reply) and repeated ICMP errors about a TCP
    /// segment (each retransmitted SYN can draw one).
    pub retransmissions: bool,
    /// Show TCP pure ACKs that the next segment in the same direction covers (an ack
    /// number at least as high). Whether a receiver acknowledges at once or lets its next
    /// segment carry the ACK depends on delayed-ACK timers and on what arrives meanwhile
    /// (the peer's FIN, more data), so by default such ACKs are left out; the handshake's
    /// ACK is always shown.
    pub superseded_acks: bool,
    /// Show IGMP and other link-local multicast (224.0.0.0/24), e.g. a bridge's
    /// membership reports, which come whenever the kernel feels like it.
    pub multicast: bool,
}

/// IGMP, MLD (IPv6's IGMP: Linux sends reports from `::` when a lab's IPv6 addresses come
/// up), or anything sent to link-local multicast (224.0.0.0/24, ff02::/16).
fn is_link_local_multicast(ip: &Ip) -> bool {
    let to_link_local = match ip.dst {
        IpAddr::V4(a) => a.octets()[..3] == [224, 0, 0],
        IpAddr::V6(a) => a.segments()[0] == 0xff02,
    };
    to_link_local || matches!(ip.l4, L4::Other { protocol: 2, .. }) || is_mld(&ip.l4)
}

/// One packet seen at one hop.
#[derive(Debug, Clone)]
struct Sighting {
    hop: Hop,
    out: Option<bool>,
    ts: Duration,
    frame: Frame,
}

/// Which conversation a packet belongs to; stable across NAT rewrites.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum ConvKey {
    /// TCP or UDP, keyed by the client's endpoint.
    Flow { proto: u8, client: (IpAddr, u16) },
    /// ICMP echo, keyed by the pinger and the echo id.
    Echo { client: IpAddr, id: u16 },
    /// Any other IP protocol, keyed by its address pair.
    Pair { proto: u8, a: IpAddr, b: IpAddr },
    /// ARP and other non-IP frames.
    Link,
}

/// Packet content minus addresses: equal for every sighting of the same packet.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Sig {
    Tcp {
        seq: u32,
        ack: u32,
        flags: crate::decode::TcpFlagSet,
        payload: Payload,
    },
    Udp(Payload),
    Echo {
        reply: bool,
        seq: u16,
        payload: Payload,
    },
    IcmpError {
        icmp_type: u8,
        code: u8,
        inner: Option<Box<Sig>>,
    },
    IcmpOther(u8, u8),
    Arp {
        op: u16,
        sender: IpAddr,
        target: IpAddr,
    },
    /// Keyed by sender and receiver too: two nodes asking for the same address (both real
    /// servers resolving their gateway) are two exchanges, not a retry.
    Nd {
        solicit: bool,
        target: std::net::Ipv6Addr,
        src: IpAddr,
        dst: IpAddr,
    },
    Other(u8, usize),
    NonIp(u16, usize),
}

/// TCP facts a journey needs for causal ordering.
#[derive(Debug, Clone, Copy)]
struct TcpMeta {
    seq: u32,
    ack: Option<u32>,
    syn: bool,
    fin: bool,
    rst: bool,
    consumed: u32,
}

impl TcpMeta {
    /// An ACK and nothing else: no data, no SYN, FIN or RST.
    fn pure_ack(&self) -> bool {
        self.consumed == 0 && !self.rst && self.ack.is_some()
    }
}

#[derive(Debug)]
struct Journey {
    conv: ConvKey,
    c2s: bool,
    sightings: Vec<Sighting>,
    first_ts: Duration,
    last_ts: Duration,
    tcp: Option<TcpMeta>,
}

/// The innermost packet that decides conversation and content: IPIP is unwrapped.
fn innermost(ip: &Ip) -> &Ip {
    match &ip.l4 {
        L4::Ipip(inner) => innermost(inner),
        _ => ip,
    }
}

fn ports(ip: &Ip) -> Option<(u8, u16, u16)> {
    match &ip.l4 {
        L4::Tcp(t) => Some((6, t.sport, t.dport)),
        L4::Udp { sport, dport, .. } => Some((17, *sport, *dport)),
        _ => None,
    }
}

/// Picks the client endpoint of a flow: the ephemeral port's side; failing that the
/// higher port's; failing that the lower address.
fn client_of(src: (IpAddr, u16), dst: (IpAddr, u16)) -> (IpAddr, u16) {
    let eph = |p: u16| p >= EPHEMERAL_PORT_MIN;
    match (eph(src.1), eph(dst.1)) {
        (true, false) => src,
        (false, true) => dst,
        _ if src.1 != dst.1 => {
            if src.1 > dst.1 {
                src
            } else {
                dst
            }
        }
        _ => src.min(dst),
    }
}

/// Conversation and direction (client to server?) of an IP packet as sent.
fn conv_of(ip: &Ip) -> (ConvKey, bool) {
    let ip = innermost(ip);
    if let Some((proto, sport, dport)) = ports(ip) {
        let client = client_of((ip.src, sport), (ip.dst, dport));
        let c2s = client == (ip.src, sport);
        return (ConvKey::Flow { proto, client }, c2s);
    }
    match &ip.l4 {
        L4::Echo { reply, id, .. } => {
            let client = if *reply { ip.dst } else { ip.src };
            (ConvKey::Echo { client, id: *id }, !*reply)
        }
        // An error travels back towards the sender of the packet it quotes.
        L4::IcmpError {
            inner: Some(inner), ..
        } => {
            let (conv, inner_c2s) = conv_of(inner);
            (conv, !inner_c2s)
        }
        other => {
            let proto = match other {
                L4::Other { protocol, .. } => *protocol,
                L4::IcmpError { v6: true, .. } | L4::IcmpOther { v6: true, .. } => 58,
                _ => 1,
            };
            let (a, b) = (ip.src.min(ip.dst), ip.src.max(ip.dst));
            (ConvKey::Pair { proto, a, b }, ip.src == a)
        }
    }
}

fn sig_of_ip(ip: &Ip) -> Sig {
    let ip = innermost(ip);
    match &ip.l4 {
        L4::Tcp(t) => Sig::Tcp {
            seq: t.seq,
            ack: t.ack,
            flags: t.flags,
            payload: t.payload,
        },
        L4::Udp { payload, .. } => Sig::Udp(*payload),
        L4::Echo {
            reply,
            seq,
            payload,
            ..
        } => Sig::Echo {
            reply: *reply,
            seq: *seq,
            payload: *payload,
        },
        L4::IcmpError {
            icmp_type,
            code,
            inner,
            ..
        } => Sig::IcmpError {
            icmp_type: *icmp_type,
            code: *code,
            inner: inner.as_ref().map(|i| Box::new(sig_of_ip(i))),
        },
        L4::IcmpOther {
            icmp_type, code, ..
        } => Sig::IcmpOther(*icmp_type, *code),
        L4::Nd {
            solicit, target, ..
        } => Sig::Nd {
            solicit: *solicit,
            target: *target,
            src: ip.src,
            dst: ip.dst,
        },
        L4::Other { protocol, len } => Sig::Other(*protocol, *len),
        L4::Ipip(_) => Sig::Other(4, 0),
    }
}

fn tcp_meta(frame: &Frame) -> Option<TcpMeta> {
    let Body::Ip(ip) = &frame.body else {
        return None;
    };
    let L4::Tcp(t) = &innermost(ip).l4 else {
        return None;
    };
    let len = u32::try_from(t.payload.len).unwrap_or(u32::MAX);
    Some(TcpMeta {
        seq: t.seq,
        ack: t.flags.ack.then_some(t.ack),
        syn: t.flags.syn,
        fin: t.flags.fin,
        rst: t.flags.rst,
        consumed: len + u32::from(t.flags.syn) + u32::from(t.flags.fin),
    })
}

/// Turns the captures of one run into path text.
pub fn normalize(captures: &[HopCapture], roles: &RoleMap, opts: NormalizeOptions) -> String {
    analyze(captures, roles, opts).text
}

/// The path of a run: its text plus, per conversation, what a checker needs.
#[derive(Debug, Clone)]
pub struct PathReport {
    /// The normalized text (what [`normalize`] returns).
    pub text: String,
    /// Conversations in text order.
    pub conversations: Vec<ConversationSummary>,
    /// The token each ephemeral port of an address got in the text (`(CIP, 49054)` -> `p1`).
    pub ports: BTreeMap<(IpAddr, u16), String>,
}

/// One conversation (a TCP connection, a UDP flow, a ping) of a run.
#[derive(Debug, Clone)]
pub struct ConversationSummary {
    /// Its title line, e.g. `TCP CIP=198.51.100.10:p1 -> VIP=192.168.1.250:80`.
    pub title: String,
    /// Its packets, in text order.
    pub journeys: Vec<JourneySummary>,
}

/// One packet's trip through the lab.
#[derive(Debug, Clone)]
pub struct JourneySummary {
    /// Client to server?
    pub c2s: bool,
    /// Transport payload length (innermost packet).
    pub payload_len: usize,
    /// The hop where it was first seen.
    pub first: Hop,
    /// Hops where it was seen arriving.
    pub arrived: Vec<Hop>,
    /// Interfaces it was sent to (owners of the destination MAC where it was seen leaving).
    pub handed_to: Vec<Hop>,
    /// ICMP error name if it is one (e.g. `port-unreachable`).
    pub icmp_error: Option<String>,
    /// Every sighting, in path order: what the text's lines show, decoded.
    pub hops: Vec<HopPacket>,
}

/// One packet at one hop, decoded, with the names its path-text line uses.
#[derive(Debug, Clone)]
pub struct HopPacket {
    /// Where it was seen.
    pub hop: Hop,
    /// Leaving (`Some(true)`), arriving (`Some(false)`) or unknown (foreign source MAC).
    pub out: Option<bool>,
    /// Capture time.
    pub ts: Duration,
    /// The decoded frame, headers as they were at this hop.
    pub frame: Frame,
    /// Source MAC as the text names it (`node:iface`, `mac1`, `broadcast`).
    pub src_mac: String,
    /// Destination MAC as the text names it.
    pub dst_mac: String,
    /// The rest of the text's line: addresses, ports, flags, relative seq/ack, payload.
    pub packet: String,
}

/// Like [`normalize`], plus per-conversation summaries.
pub fn analyze(captures: &[HopCapture], roles: &RoleMap, opts: NormalizeOptions) -> PathReport {
    let journeys = build_journeys(captures, roles, opts);
    let ordered = order(journeys);
    let ordered: Vec<Vec<Journey>> = ordered
        .into_iter()
        .map(|js| drop_timing_noise(js, opts))
        .collect();
    let (text, rendered) = render(&ordered, roles);
    let titles: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(|l| l.split_once(": ").map_or(l, |(_, t)| t).to_owned())
        .collect();
    let conversations = ordered
        .iter()
        .zip(rendered.conversations)
        .zip(titles)
        .map(|((js, lines), title)| ConversationSummary {
            title,
            journeys: js
                .iter()
                .zip(lines)
                .map(|(j, l)| summarize(j, l, roles))
                .collect(),
        })
        .collect();
    PathReport {
        text,
        conversations,
        ports: rendered.ports,
    }
}

fn summarize(j: &Journey, lines: Vec<RenderedLine>, roles: &RoleMap) -> JourneySummary {
    let frame = j.sightings.first().map(|s| &s.frame);
    let inner = frame.and_then(|f| match &f.body {
        Body::Ip(ip) => Some(innermost(ip)),
        _ => None,
    });
    let payload_len = match inner.map(|i| &i.l4) {
        Some(L4::Tcp(t)) => t.payload.len,
        Some(L4::Udp { payload, .. }) | Some(L4::Echo { payload, .. }) => payload.len,
        _ => 0,
    };
    let icmp_error = match inner.map(|i| &i.l4) {
        Some(L4::IcmpError {
            v6,
            icmp_type,
            code,
            ..
        }) => Some(icmp_error_name(*v6, *icmp_type, *code).to_owned()),
        _ => None,
    };
    JourneySummary {
        c2s: j.c2s,
        payload_len,
        first: j
            .sightings
            .first()
            .map(|s| s.hop.clone())
            .unwrap_or_else(|| Hop::new("-", "-")),
        arrived: j
            .sightings
            .iter()
            .filter(|s| s.out == Some(false))
            .map(|s| s.hop.clone())
            .collect(),
        handed_to: j
            .sightings
            .iter()
            .filter(|s| s.out == Some(true))
            .filter_map(|s| roles.owner_of(&s.frame.dst_mac).cloned())
            .collect(),
        icmp_error,
        hops: j
            .sightings
            .iter()
            .zip(lines)
            .map(|(s, l)| HopPacket {
                hop: s.hop.clone(),
                out: s.out,
                ts: s.ts,
                frame: s.frame.clone(),
                src_mac: l.src_mac,
                dst_mac: l.dst_mac,
                packet: l.packet,
            })
            .collect(),
    }
}

fn build_journeys(
    captures: &[HopCapture],
    roles: &RoleMap,
    opts: NormalizeOptions,
) -> Vec<Journey> {
    // (conv, c2s, sig) -> (hop, out) -> sightings in capture order
    type Groups = HashMap<(ConvKey, bool, Sig), BTreeMap<(Hop, Option<bool>), Vec<Sighting>>>;
    let mut groups: Groups = HashMap::new();
    let mut group_order: Vec<(ConvKey, bool, Sig)> = Vec::new();
    for cap in captures {
        for p in &cap.packets {
            let Some(frame) = decode_ethernet(&p.data) else {
                continue;
            };
            let (conv, c2s, sig) = match &frame.body {
                Body::Ip(ip) => {
                    let nd = is_neighbor_discovery(&innermost(ip).l4);
                    if !opts.neighbor_discovery && nd {
                        continue;
                    }
                    let inner = innermost(ip);
                    if let L4::Nd {
                        solicit, target, ..
                    } = &inner.l4
                    {
                        // Like ARP: one link-layer conversation, a solicitation and its
                        // answer grouped by the address asked about (NS goes to a
                        // solicited-node multicast group, so it passes the filter below).
                        (
                            ConvKey::Link,
                            true,
                            Sig::Nd {
                                solicit: *solicit,
                                target: *target,
                                src: inner.src,
                                dst: inner.dst,
                            },
                        )
                    } else {
                        if !opts.multicast && is_link_local_multicast(ip) {
                            continue;
                        }
                        let (conv, c2s) = conv_of(ip);
                        (conv, c2s, sig_of_ip(ip))
                    }
                }
                Body::Arp(a) => {
                    if !opts.arp {
                        continue;
                    }
                    let sig = Sig::Arp {
                        op: a.op,
                        sender: a.sender_ip,
                        target: a.target_ip,
                    };
                    (ConvKey::Link, true, sig)
                }
                Body::Other { ether_type, len } => {
                    (ConvKey::Link, true, Sig::NonIp(*ether_type, *len))
                }
            };
            let out = if roles.owns(&cap.hop, &frame.src_mac) {
                Some(true)
            } else if roles.owner_of(&frame.src_mac).is_some() {
                Some(false)
            } else {
                None
            };
            let key = (conv, c2s, sig);
            let slot = groups.entry(key.clone()).or_insert_with(|| {
                group_order.push(key);
                BTreeMap::new()
            });
            slot.entry((cap.hop.clone(), out))
                .or_default()
                .push(Sighting {
                    hop: cap.hop.clone(),
                    out,
                    ts: p.ts,
                    frame,
                });
        }
    }

    let mut journeys = Vec::new();
    for key in group_order {
        let Some(mut by_hop) = groups.remove(&key) else {
            continue;
        };
        let (conv, c2s, sig) = key;
        // Copies after the first are retransmissions (TCP), retries (ARP) or answers to
        // them (an ICMP error quoting a TCP segment): how many there are is up to timers.
        let timer_copies = match &sig {
            Sig::Tcp { .. } | Sig::Arp { .. } | Sig::Nd { .. } => true,
            Sig::IcmpError { inner: Some(i), .. } => matches!(**i, Sig::Tcp { .. }),
            _ => false,
        };
        // The k-th copy at every hop is the k-th trip of this packet.
        let copies = by_hop.values().map(Vec::len).max().unwrap_or(0);
        for k in 0..copies {
            if k > 0 && timer_copies && !opts.retransmissions {
                break;
            }
            let mut sightings: Vec<Sighting> = by_hop
                .values_mut()
                .filter_map(|v| v.get(k).cloned())
                .collect();
            order_hops(&mut sightings, roles);
            let (Some(first), Some(last)) = (sightings.first(), sightings.last()) else {
                continue;
            };
            let first_ts = sightings.iter().map(|s| s.ts).min().unwrap_or(first.ts);
            let last_ts = sightings.iter().map(|s| s.ts).max().unwrap_or(last.ts);
            let tcp = tcp_meta(&first.frame);
            journeys.push(Journey {
                conv: conv.clone(),
                c2s,
                sightings,
                first_ts,
                last_ts,
                tcp,
            });
        }
    }
    journeys
}

/// Must `a` come before `b` on the path, whatever their timestamps say?
fn path_before(a: &Sighting, b: &Sighting, roles: &RoleMap) -> bool {
    // Leaving an interface comes before arriving at the one that owns the destination MAC.
    let handoff = a.out == Some(true)
        && b.out == Some(false)
        && roles.owns(&b.hop, &a.frame.dst_mac)
        && a.frame.src_mac == b.frame.src_mac;
    // Arriving at a node comes before leaving it.
    let through = a.out == Some(false) && b.out == Some(true) && a.hop.node == b.hop.node;
    handoff || through
}

/// Orders one journey's sightings along the path: by time, with ties (equal timestamps)
/// settled by the path itself (a topological order of the tied group).
fn order_hops(s: &mut Vec<Sighting>, roles: &RoleMap) {
    s.sort_by(|a, b| a.ts.cmp(&b.ts).then_with(|| a.hop.cmp(&b.hop)));
    let mut out = Vec::with_capacity(s.len());
    let mut rest: Vec<Sighting> = std::mem::take(s);
    while !rest.is_empty() {
        let ts = rest[0].ts;
        let tied = rest.iter().take_while(|x| x.ts == ts).count();
        let mut group: Vec<Sighting> = rest.drain(..tied).collect();
        while !group.is_empty() {
            let pick = (0..group.len())
                .find(|&i| {
                    !group
                        .iter()
                        .enumerate()
                        .any(|(k, o)| k != i && path_before(o, &group[i], roles))
                })
                .unwrap_or(0);
            out.push(group.remove(pick));
        }
    }
    *s = out;
}

/// Puts back a pure ACK that was overtaken on the way by the segment its sender sent next.
/// A sender's pure ACK carries seq = snd_nxt, so one with the seq a data (or FIN) segment
/// starts at was sent before that segment: after it, snd_nxt is past it. Seen between
/// CPUs: the handshake's ACK leaves from the softirq that took the SYN-ACK, the request
/// from the woken client on the other CPU, and each veth queues on its own CPU's backlog,
/// so the first hop can see the data first (the text then lost the handshake's ACK as a
/// duplicate and changed with load).
fn pure_acks_in_sender_order(q: &mut Vec<Journey>) {
    let mut i = 0;
    while i < q.len() {
        let overtaken = q[i].tcp.filter(TcpMeta::pure_ack).and_then(|a| {
            q[..i]
                .iter()
                .position(|j| j.tcp.is_some_and(|t| t.seq == a.seq && t.consumed > 0))
        });
        if let Some(k) = overtaken {
            let ack = q.remove(i);
            q.insert(k, ack);
        }
        i += 1;
    }
}

/// Does journey `b` causally depend on `a` (which travels the other way)?
fn depends(b: &Journey, a: &Journey, isn: &[Option<u32>; 2]) -> bool {
    if let (Some(bt), Some(at)) = (b.tcp, a.tcp) {
        // Sequence numbers are compared relative to their direction's ISN, modulo 2^32.
        let a_dir = usize::from(!a.c2s);
        let Some(a_isn) = isn[a_dir] else {
            return b.first_ts > a.last_ts;
        };
        let Some(ack) = bt.ack else {
            // No ACK flag (a bare RST): its sequence numbers say nothing about what it
            // answers, so the clock decides.
            return b.first_ts > a.last_ts;
        };
        if at.consumed == 0 {
            return false;
        }
        let a_end = at.seq.wrapping_sub(a_isn).wrapping_add(at.consumed);
        let b_ack = ack.wrapping_sub(a_isn);
        return b_ack.wrapping_sub(a_end) as i32 >= 0;
    }
    b.first_ts > a.last_ts
}

/// Orders journeys: conversations by start, inside each a causal merge of both directions.
fn order(journeys: Vec<Journey>) -> Vec<Vec<Journey>> {
    let mut convs: BTreeMap<ConvKey, Vec<Journey>> = BTreeMap::new();
    for j in journeys {
        convs.entry(j.conv.clone()).or_default().push(j);
    }
    let mut convs: Vec<Vec<Journey>> = convs.into_values().collect();
    convs.sort_by_key(|js| js.iter().map(|j| j.first_ts).min());
    convs.into_iter().map(merge_directions).collect()
}

fn merge_directions(js: Vec<Journey>) -> Vec<Journey> {
    // queues[0]: client to server, queues[1]: server to client; each in sender order.
    let mut queues: [Vec<Journey>; 2] = [Vec::new(), Vec::new()];
    for j in js {
        queues[usize::from(!j.c2s)].push(j);
    }
    for q in queues.iter_mut() {
        q.sort_by_key(|j| j.first_ts);
        pure_acks_in_sender_order(q);
    }
    let mut isn: [Option<u32>; 2] = [None, None];
    for (d, q) in queues.iter().enumerate() {
        isn[d] = q
            .iter()
            .find_map(|j| j.tcp.filter(|t| t.syn).map(|t| t.seq))
            .or_else(|| q.iter().find_map(|j| j.tcp.map(|t| t.seq)));
    }
    let mut idx = [0usize; 2];
    let mut picks: Vec<usize> = Vec::new();
    let total = queues[0].len() + queues[1].len();
    while picks.len() < total {
        let free = |d: usize| {
            idx[d] < queues[d].len()
                && !queues[1 - d][idx[1 - d]..]
                    .iter()
                    .any(|a| depends(&queues[d][idx[d]], a, &isn))
        };
        let d = if free(0) {
            0
        } else if free(1) || idx[0] >= queues[0].len() {
            1
        } else if idx[1] >= queues[1].len() {
            0
        } else {
            // Contradictory evidence (e.g. a broken rewrite): fall back to time.
            usize::from(queues[1][idx[1]].first_ts < queues[0][idx[0]].first_ts)
        };
        picks.push(d);
        idx[d] += 1;
    }
    let [c2s, s2c] = queues;
    let mut iters = [c2s.into_iter(), s2c.into_iter()];
    picks.into_iter().filter_map(|d| iters[d].next()).collect()
}

/// Leaves out TCP segments whose presence depends on timers rather than on the balancer,
/// so the text does not change with load:
/// - a pure ACK that the next segment in the same direction covers (its ack number at
///   least as high: delayed ACK or not, FIN before or after it), unless `superseded_acks`;
///   the handshake's ACK always stays;
/// - a pure ACK that acknowledges nothing new (a duplicate ACK: the echo of a
///   retransmission), unless `retransmissions`;
/// - pure ACKs and RSTs after both FINs were acknowledged (TIME_WAIT echoes of a late
///   duplicate and the RST a closed socket answers them with), unless `retransmissions`.
fn drop_timing_noise(js: Vec<Journey>, opts: NormalizeOptions) -> Vec<Journey> {
    let mut isn: [Option<u32>; 2] = [None, None];
    for j in &js {
        if let Some(m) = j.tcp.filter(|m| m.syn) {
            isn[usize::from(!j.c2s)] = Some(m.seq);
        }
    }
    // Per direction: highest ack sent (relative to the peer's ISN), end of our FIN.
    let mut last_ack: [Option<u32>; 2] = [None, None];
    let mut fin_end: [Option<u32>; 2] = [None, None];
    let mut fin_acked = [false; 2];
    let mut keep = Vec::with_capacity(js.len());
    for (i, j) in js.iter().enumerate() {
        let Some(m) = j.tcp else {
            keep.push(true);
            continue;
        };
        let d = usize::from(!j.c2s);
        let closed = fin_acked[0] && fin_acked[1];
        let rel_ack = m.ack.zip(isn[1 - d]).map(|(a, p)| a.wrapping_sub(p));
        let pure = m.pure_ack();
        let handshake = isn[d].is_some_and(|o| m.seq == o.wrapping_add(1))
            && rel_ack == Some(1)
            && last_ack[d].is_none();
        // Covered: the next segment from the same side acknowledges at least as much, so
        // whether this ACK went out on its own or rode on that segment was a timer's call
        // (delayed ACK, or the peer's FIN arriving before the ACK left).
        let superseded = js[i + 1..]
            .iter()
            .find(|n| n.c2s == j.c2s)
            .and_then(|n| n.tcp)
            .and_then(|n| n.ack.zip(m.ack))
            .is_some_and(|(later, ours)| later.wrapping_sub(ours) as i32 >= 0);
        let duplicate = rel_ack
            .zip(last_ack[d])
            .is_some_and(|(a, l)| a.wrapping_sub(l) as i32 <= 0);
        let drop = if pure && !handshake {
            (superseded && !opts.superseded_acks)
                || ((duplicate || closed) && !opts.retransmissions)
        } else {
            closed && m.consumed == 0 && !opts.retransmissions
        };
        keep.push(!drop);
        if drop {
            continue;
        }
        if let Some(a) = rel_ack {
            last_ack[d] =
                Some(last_ack[d].map_or(a, |l| if a.wrapping_sub(l) as i32 > 0 { a } else { l }));
            if fin_end[1 - d].is_some_and(|e| a.wrapping_sub(e) as i32 >= 0) {
                fin_acked[1 - d] = true;
            }
        }
        if m.fin {
            if let Some(o) = isn[d] {
                fin_end[d] = Some(m.seq.wrapping_sub(o).wrapping_add(m.consumed));
            }
        }
    }
    js.into_iter()
        .zip(keep)
        .filter_map(|(j, k)| k.then_some(j))
        .collect()
}

/// Stable names for values that change every run.
#[derive(Default)]
struct Tokens {
    /// Keyed by address too: with several client addresses the kernel may give two of them
    /// the same ephemeral port number, and they are two different ends.
    ports: HashMap<(IpAddr, u16), usize>,
    echo_ids: HashMap<u16, usize>,
    payloads: HashMap<u64, usize>,
    macs: HashMap<Mac, usize>,
    isn: HashMap<(ConvKey, bool), u32>,
}

fn token<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, k: K) -> usize {
    let n = map.len() + 1;
    *map.entry(k).or_insert(n)
}

impl Tokens {
    fn port(&mut self, ip: IpAddr, p: u16) -> String {
        if p >= EPHEMERAL_PORT_MIN {
            format!("p{}", token(&mut self.ports, (ip, p)))
        } else {
            p.to_string()
        }
    }

    fn payload(&mut self, p: &Payload) -> String {
        if p.len == 0 {
            "len 0".to_owned()
        } else {
            format!(
                "len {} data d{}",
                p.len,
                token(&mut self.payloads, p.digest)
            )
        }
    }

    fn mac(&mut self, mac: &Mac, roles: &RoleMap) -> String {
        if let Some(h) = roles.owner_of(mac) {
            h.to_string()
        } else if *mac == Mac::BROADCAST {
            "broadcast".to_owned()
        } else if mac.0[0] & 1 == 1 {
            mac.to_string()
        } else {
            format!("mac{}", token(&mut self.macs, *mac))
        }
    }
}

/// An address and its port (or port token): `CIP=198.51.100.10:p1`, and an IPv6 address in
/// brackets as in URLs and ipvsadm, `CIP=[2001:db8:100::10]:p1`.
fn ep(a: &IpAddr, port: &str, roles: &RoleMap) -> String {
    let bare = match a {
        IpAddr::V4(_) => format!("{a}:{port}"),
        IpAddr::V6(_) => format!("[{a}]:{port}"),
    };
    match roles.label_of(a) {
        Some(l) => format!("{l}={bare}"),
        None => bare,
    }
}

fn addr(a: &IpAddr, roles: &RoleMap) -> String {
    match roles.label_of(a) {
        Some(l) => format!("{l}={a}"),
        None => a.to_string(),
    }
}

/// The parts of one rendered line, kept for [`HopPacket`].
struct RenderedLine {
    src_mac: String,
    dst_mac: String,
    packet: String,
}

/// Per conversation (with or without a title), per journey, per sighting: its line's parts.
struct Rendered {
    conversations: Vec<Vec<Vec<RenderedLine>>>,
    ports: BTreeMap<(IpAddr, u16), String>,
}

fn render(convs: &[Vec<Journey>], roles: &RoleMap) -> (String, Rendered) {
    let mut t = Tokens::default();
    let mut out = String::new();
    let mut parts: Vec<Vec<Vec<RenderedLine>>> = Vec::new();
    for (n, js) in convs.iter().enumerate() {
        let Some(first) = js.first().and_then(|j| j.sightings.first()) else {
            // Keeps `parts` aligned with `convs`.
            parts.push(Vec::new());
            continue;
        };
        // ISNs per direction, from the SYN if seen, for relative seq/ack numbers.
        for j in js {
            if let Some(m) = j.tcp {
                let e = t.isn.entry((j.conv.clone(), j.c2s)).or_insert(m.seq);
                if m.syn {
                    *e = m.seq;
                }
            }
        }
        if n > 0 {
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "## {}: {}",
            n + 1,
            conv_title(&first.frame, &mut t, roles)
        );
        let mut conv_parts = Vec::with_capacity(js.len());
        for j in js {
            out.push('\n');
            let mut lines = Vec::with_capacity(j.sightings.len());
            for s in &j.sightings {
                let (line, parts) = render_line(s, j, &mut t, roles);
                out.push_str(line.trim_end());
                out.push('\n');
                lines.push(parts);
            }
            conv_parts.push(lines);
        }
        parts.push(conv_parts);
    }
    let ports = t.ports.iter().map(|(p, n)| (*p, format!("p{n}"))).collect();
    (
        out,
        Rendered {
            conversations: parts,
            ports,
        },
    )
}

fn conv_title(frame: &Frame, t: &mut Tokens, roles: &RoleMap) -> String {
    match &frame.body {
        Body::Ip(ip) => {
            let ip = innermost(ip);
            match (&ip.l4, ports(ip)) {
                (L4::Nd { .. }, _) => "link layer".to_owned(),
                (L4::IcmpError { inner: Some(i), .. }, _) => {
                    format!("ICMP error about {}", conv_title_ip(i, t, roles))
                }
                _ => conv_title_ip(ip, t, roles),
            }
        }
        Body::Arp(_) | Body::Other { .. } => "link layer".to_owned(),
    }
}

fn conv_title_ip(ip: &Ip, t: &mut Tokens, roles: &RoleMap) -> String {
    let ip = innermost(ip);
    match ports(ip) {
        Some((proto, sport, dport)) => {
            let name = if proto == 6 { "TCP" } else { "UDP" };
            let (c, cp, s, sp) = if client_of((ip.src, sport), (ip.dst, dport)) == (ip.src, sport) {
                (ip.src, sport, ip.dst, dport)
            } else {
                (ip.dst, dport, ip.src, sport)
            };
            format!(
                "{name} {} -> {}",
                ep(&c, &t.port(c, cp), roles),
                ep(&s, &t.port(s, sp), roles)
            )
        }
        None => format!("{} <-> {}", addr(&ip.src, roles), addr(&ip.dst, roles)),
    }
}

fn render_line(
    s: &Sighting,
    j: &Journey,
    t: &mut Tokens,
    roles: &RoleMap,
) -> (String, RenderedLine) {
    let dir = match s.out {
        Some(true) => "out",
        Some(false) => "in",
        None => "?",
    };
    let src_mac = t.mac(&s.frame.src_mac, roles);
    let dst_mac = t.mac(&s.frame.dst_mac, roles);
    let macs = format!("{src_mac} > {dst_mac}");
    let what = match &s.frame.body {
        Body::Ip(ip) => render_ip(ip, j, t, roles),
        Body::Arp(a) => {
            if a.op == 1 {
                format!(
                    "ARP who-has {} tell {}",
                    addr(&a.target_ip, roles),
                    addr(&a.sender_ip, roles)
                )
            } else {
                format!(
                    "ARP reply {} is-at {}",
                    addr(&a.sender_ip, roles),
                    t.mac(&a.sender_mac, roles)
                )
            }
        }
        Body::Other { ether_type, len } => format!("ethertype 0x{ether_type:04x} len {len}"),
    };
    let line = format!(
        "{:<15} {:<3}  {:<31} {}",
        s.hop.to_string(),
        dir,
        macs,
        what
    );
    let parts = RenderedLine {
        src_mac,
        dst_mac,
        packet: what.trim_end().to_owned(),
    };
    (line, parts)
}

fn render_ip(ip: &Ip, j: &Journey, t: &mut Tokens, roles: &RoleMap) -> String {
    match &ip.l4 {
        L4::Ipip(inner) => format!(
            "{} {} > {} | {}",
            tunnel_name(ip, inner),
            addr(&ip.src, roles),
            addr(&ip.dst, roles),
            render_ip(inner, j, t, roles)
        ),
        L4::Tcp(tcp) => {
            let seq_base = t.isn.get(&(j.conv.clone(), j.c2s)).copied().unwrap_or(0);
            let ack_base = t.isn.get(&(j.conv.clone(), !j.c2s)).copied();
            let mut s = format!(
                "{} > {} TCP [{}] seq {}",
                ep(&ip.src, &t.port(ip.src, tcp.sport), roles),
                ep(&ip.dst, &t.port(ip.dst, tcp.dport), roles),
                tcp.flags.render(),
                tcp.seq.wrapping_sub(seq_base)
            );
            if tcp.flags.ack {
                match ack_base {
                    Some(b) => {
                        let _ = write!(s, " ack {}", tcp.ack.wrapping_sub(b));
                    }
                    None => s.push_str(" ack ?"),
                }
            }
            let _ = write!(s, " {}", t.payload(&tcp.payload));
            s
        }
        L4::Udp {
            sport,
            dport,
            payload,
        } => format!(
            "{} > {} UDP {}",
            ep(&ip.src, &t.port(ip.src, *sport), roles),
            ep(&ip.dst, &t.port(ip.dst, *dport), roles),
            t.payload(payload)
        ),
        L4::Echo {
            reply,
            v6,
            id,
            seq,
            payload,
        } => format!(
            "{} > {} {} echo-{} id i{} seq {} {}",
            addr(&ip.src, roles),
            addr(&ip.dst, roles),
            if *v6 { "ICMPv6" } else { "ICMP" },
            if *reply { "reply" } else { "request" },
            token(&mut t.echo_ids, *id),
            seq,
            t.payload(payload)
        ),
        L4::IcmpError {
            v6,
            icmp_type,
            code,
            inner,
        } => {
            let quoted = match inner {
                Some(i) => render_quoted(i, t, roles),
                None => "unparsable".to_owned(),
            };
            format!(
                "{} > {} {} {} ({icmp_type}/{code}) for [{quoted}]",
                addr(&ip.src, roles),
                addr(&ip.dst, roles),
                if *v6 { "ICMPv6" } else { "ICMP" },
                icmp_error_name(*v6, *icmp_type, *code)
            )
        }
        L4::IcmpOther {
            v6,
            icmp_type,
            code,
        } => format!(
            "{} > {} {} type {icmp_type} code {code}",
            addr(&ip.src, roles),
            addr(&ip.dst, roles),
            if *v6 { "ICMPv6" } else { "ICMP" }
        ),
        L4::Nd {
            solicit: true,
            target,
            ..
        } => format!(
            "ND who-has {} tell {}",
            addr(&IpAddr::V6(*target), roles),
            addr(&ip.src, roles)
        ),
        L4::Nd {
            solicit: false,
            target,
            lladdr,
        } => {
            let mut s = format!(
                "ND advert {} > {}: {}",
                addr(&ip.src, roles),
                addr(&ip.dst, roles),
                addr(&IpAddr::V6(*target), roles)
            );
            // Linux puts the option in answers to multicast solicitations only.
            if let Some(m) = lladdr {
                let _ = write!(s, " is-at {}", t.mac(m, roles));
            }
            s
        }
        L4::Other { protocol, len } => format!(
            "{} > {} proto {protocol} len {len}",
            addr(&ip.src, roles),
            addr(&ip.dst, roles)
        ),
    }
}

/// A tunnel's name by its outer and inner families: `IPIP` (protocol 4), `IP6IP6` (next
/// header 41, Linux's ip6tnl mode ip6ip6), and the mixed `IPIP6` / `IP6IP` (sit).
fn tunnel_name(outer: &Ip, inner: &Ip) -> &'static str {
    match (outer.src.is_ipv4(), inner.src.is_ipv4()) {
        (true, true) => "IPIP",
        (false, false) => "IP6IP6",
        (false, true) => "IPIP6",
        (true, false) => "IP6IP",
    }
}

/// The packet quoted inside an ICMP error: addresses, ports and protocol only.
fn render_quoted(ip: &Ip, t: &mut Tokens, roles: &RoleMap) -> String {
    match &ip.l4 {
        L4::Tcp(tcp) => format!(
            "{} > {} TCP",
            ep(&ip.src, &t.port(ip.src, tcp.sport), roles),
            ep(&ip.dst, &t.port(ip.dst, tcp.dport), roles)
        ),
        L4::Udp { sport, dport, .. } => format!(
            "{} > {} UDP",
            ep(&ip.src, &t.port(ip.src, *sport), roles),
            ep(&ip.dst, &t.port(ip.dst, *dport), roles)
        ),
        _ => format!("{} > {}", addr(&ip.src, roles), addr(&ip.dst, roles)),
    }
}

fn icmp_error_name(v6: bool, ty: u8, code: u8) -> &'static str {
    match (v6, ty, code) {
        (false, 3, 0) => "net-unreachable",
        (false, 3, 1) => "host-unreachable",
        (false, 3, 2) => "protocol-unreachable",
        (false, 3, 3) => "port-unreachable",
        (false, 3, 4) => "fragmentation-needed",
        (false, 3, 13) => "admin-prohibited",
        (false, 3, _) => "unreachable",
        (false, 11, _) => "time-exceeded",
        (false, 5, _) => "redirect",
        (false, 12, _) => "parameter-problem",
        (false, 4, _) => "source-quench",
        (true, 1, 4) => "port-unreachable",
        (true, 1, _) => "unreachable",
        (true, 2, _) => "packet-too-big",
        (true, 3, _) => "time-exceeded",
        (true, 4, _) => "parameter-problem",
        _ => "error",
    }
}

#[cfg(test)]
mod token_tests {
    use super::Tokens;
    use std::net::IpAddr;

    #[test]
    fn one_port_number_at_two_client_addresses_is_two_names() {
        // The kernel picks ephemeral ports per source address: two clients of one node may
        // both get 40000, and the path must not depend on whether they did.
        let mut t = Tokens::default();
        let (a, b): (IpAddr, IpAddr) = (
            "198.51.100.11".parse().unwrap(),
            "198.51.100.12".parse().unwrap(),
        );
        assert_eq!(t.port(a, 40000), "p1");
        assert_eq!(t.port(b, 40000), "p2");
        assert_eq!(t.port(a, 40000), "p1");
        assert_eq!(t.port(a, 80), "80");
    }
}
