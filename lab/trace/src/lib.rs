//! lvslab-trace: the story of one connection, hop by hop, told from the real captures.
//!
//! The path normalizer ([`lvslab_capture::analyze`]) groups a run's per-hop captures into
//! conversations and packets ("journeys"), each with its sightings in path order. This
//! crate compares the headers between consecutive sightings and says, in plain words,
//! what changed and why: a router's TTL and MACs, a NAT director's address rewrite, DR's
//! MAC-only hand-off, TUN's outer IPIP header; and, when the userspace director explained
//! its scheduling decision, why it picked that real server.
//!
//! Everything is derived from the packets, not from the topology's declared method, so a
//! misconfigured lab is described as it really behaved.
//!
//! - [`trace_conversation`] / [`trace_report`]: build [`Trace`]s;
//! - [`render`]: text for a terminal (optionally coloured);
//! - [`load_run`]: a finished run directory (captures, `roles.txt`, `picks.json`).

mod detect;
pub mod render;

use lvslab_capture::decode::{Body, Ip, L4};
use lvslab_capture::files::{read_run_dir, FileError};
use lvslab_capture::normalize::{ConversationSummary, HopPacket, PathReport};
use lvslab_capture::{HopCapture, RoleMap};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

pub use render::{render, render_all, Style};

/// File name of the director's explained picks inside a run directory.
pub const PICKS_FILE: &str = "picks.json";
/// File name of the role map inside a run directory.
pub const ROLES_FILE: &str = "roles.txt";

/// Errors loading a run directory.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The captures could not be read.
    #[error(transparent)]
    Captures(#[from] FileError),
    /// A file of the run could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `roles.txt` does not parse.
    #[error("{path}: {message}")]
    Roles {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// `picks.json` does not parse.
    #[error("{path}: {source}")]
    Picks {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: serde_json::Error,
    },
    /// The run directory holds no per-hop captures.
    #[error("{0}: no <node>-<iface>.pcap files (is it a run directory of `lvslab test` or `lvslab capture --out`?)")]
    NoCaptures(PathBuf),
    /// The asked-for conversation does not exist.
    #[error("there is no conversation {asked}: the run has {count} (numbered from 1, as in the path text)")]
    NoSuchConversation {
        /// The number asked for.
        asked: usize,
        /// How many there are.
        count: usize,
    },
}

/// Why the director sent one new connection where it did: the userspace director's
/// explanation (`lvslab explain show --json`), as saved in `picks.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pick {
    /// The client's address and port.
    pub client: SocketAddr,
    /// The virtual service address.
    pub vip: SocketAddr,
    /// The scheduler.
    pub scheduler: String,
    /// The real server picked (None: none was available).
    pub chosen: Option<SocketAddr>,
    /// The step that decided.
    pub decision: String,
    /// The whole explanation, every candidate's load included.
    pub text: String,
}

/// A finished run: its captures, role map and (if saved) the director's picks.
#[derive(Debug, Clone)]
pub struct Run {
    /// Per-hop captures.
    pub captures: Vec<HopCapture>,
    /// Names of addresses and MACs.
    pub roles: RoleMap,
    /// Explained picks, oldest first; empty when none were saved.
    pub picks: Vec<Pick>,
}

/// Reads a run directory: `<node>-<iface>.pcap` files, `roles.txt` and `picks.json`
/// (optional: kernel IPVS explains nothing). Without `roles.txt`, `fallback_roles` is used.
pub fn load_run(dir: &Path, fallback_roles: Option<RoleMap>) -> Result<Run, TraceError> {
    let captures = read_run_dir(dir)?;
    if captures.is_empty() {
        return Err(TraceError::NoCaptures(dir.to_owned()));
    }
    let roles_path = dir.join(ROLES_FILE);
    let roles = match std::fs::read_to_string(&roles_path) {
        Ok(text) => RoleMap::from_text(&text).map_err(|message| TraceError::Roles {
            path: roles_path,
            message,
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fallback_roles.unwrap_or_default(),
        Err(source) => {
            return Err(TraceError::Io {
                path: roles_path,
                source,
            })
        }
    };
    Ok(Run {
        captures,
        roles,
        picks: read_picks(dir)?,
    })
}

/// Reads `picks.json` of a run directory; no file means no picks.
pub fn read_picks(dir: &Path) -> Result<Vec<Pick>, TraceError> {
    let path = dir.join(PICKS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(TraceError::Io { path, source }),
    };
    serde_json::from_str(&text).map_err(|source| TraceError::Picks { path, source })
}

/// The story of one conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Trace {
    /// Its number in the path text (from 1).
    pub conversation: usize,
    /// Its title, as in the path text.
    pub title: String,
    /// The forwarding method the packets show (not the one the topology declares).
    pub forwarding: Forwarding,
    /// The node that scheduled the connection, as seen from its rewrite or hand-off.
    pub director: Option<String>,
    /// The node that received the client's packets in the end.
    pub server: Option<String>,
    /// The director's explanation of its pick, when it was recorded.
    pub pick: Option<Pick>,
    /// What looks wrong, in plain words; empty for a healthy conversation.
    pub findings: Vec<String>,
    /// Its packets, in path-text order.
    pub packets: Vec<PacketTrace>,
}

/// A forwarding method, as observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Forwarding {
    /// The director rewrote the destination address (and the replies' source).
    Nat,
    /// The director handed the unchanged IP packet to a real server's MAC.
    Dr,
    /// The director wrapped the packet in an outer IPIP header.
    Tun,
    /// Routed only: no node acted as a director (e.g. traffic straight to a server).
    Routed,
    /// Nothing to tell (a single hop, or no client-to-server packet).
    Unknown,
}

impl Forwarding {
    /// The usual name: `NAT`, `DR`, `TUN`, `routed`, `unknown`.
    pub fn name(self) -> &'static str {
        match self {
            Forwarding::Nat => "NAT",
            Forwarding::Dr => "DR",
            Forwarding::Tun => "TUN",
            Forwarding::Routed => "routed",
            Forwarding::Unknown => "unknown",
        }
    }
}

/// Which way a packet travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From the client to the service.
    ClientToServer,
    /// From the service back to the client.
    ServerToClient,
}

/// One packet's trip: its sightings and what happened between them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PacketTrace {
    /// Its number inside the conversation (from 1).
    pub number: usize,
    /// Which way it travels.
    pub direction: Direction,
    /// What it is: `SYN`, `SYN-ACK`, `ACK`, `data (18 bytes)`, `FIN`, ...
    pub summary: String,
    /// Where it was seen, in path order.
    pub hops: Vec<TraceHop>,
    /// What changed between consecutive hops (`after` indexes `hops`).
    pub steps: Vec<Step>,
    /// What happened to it at the end, or on its way, in plain words.
    pub notes: Vec<String>,
}

/// The packet as seen at one hop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TraceHop {
    /// `node:iface`.
    pub hop: String,
    /// `in`, `out` or `?` (a source MAC no lab interface owns).
    pub dir: String,
    /// Source MAC as `node:iface` (or `mac1`... for unknown ones).
    pub src_mac: String,
    /// Destination MAC, named the same way.
    pub dst_mac: String,
    /// The outer IPIP header (TUN), if any.
    pub outer: Option<Outer>,
    /// Source of the (inner) packet.
    pub src: Endpoint,
    /// Destination of the (inner) packet.
    pub dst: Endpoint,
    /// `TCP`, `UDP`, `ICMP`, ...
    pub protocol: String,
    /// TCP flags and relative sequence numbers.
    pub tcp: Option<TcpSummary>,
    /// TTL (hop limit) of the outermost header.
    pub ttl: u8,
    /// The path text's rendering of the packet at this hop.
    pub packet: String,
}

/// An outer IPIP header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outer {
    /// Its source.
    pub src: Endpoint,
    /// Its destination.
    pub dst: Endpoint,
}

/// An address (and port), with its role label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    /// The address.
    pub addr: IpAddr,
    /// Its role (`CIP`, `VIP`, `RIP1`, ...), if the lab names it.
    pub label: Option<String>,
    /// The port, for TCP and UDP.
    pub port: Option<u16>,
    /// The port as the text shows it (`p1` for an ephemeral one).
    pub port_name: Option<String>,
}

impl Endpoint {
    /// Its short name: the label if any, else the address (no port).
    pub fn name(&self) -> String {
        self.label.clone().unwrap_or_else(|| self.addr.to_string())
    }

    /// Its short name with the port, if it has one.
    pub fn name_port(&self) -> String {
        match &self.port_name {
            Some(p) => format!("{}:{p}", self.name()),
            None => self.name(),
        }
    }
}

/// TCP header facts, sequence numbers relative to each side's first one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TcpSummary {
    /// tcpdump's flag letters (`S`, `S.`, `P.`, `F.`, `R`, `.`).
    pub flags: String,
    /// Relative sequence number.
    pub seq: u32,
    /// Relative acknowledgment number (with the ACK flag).
    pub ack: Option<u32>,
    /// Payload length.
    pub len: usize,
}

/// What happened between two consecutive sightings of a packet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// Index (in `hops`) of the sighting before the change.
    pub after: usize,
    /// What kind of change.
    pub kind: StepKind,
    /// In plain words.
    pub text: String,
    /// More, when there is more (the scheduler's whole explanation).
    pub detail: Option<String>,
}

/// Kinds of [`Step`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// Crossed a link unchanged.
    Wire,
    /// A router forwarded it: TTL down, MACs re-written, addresses kept.
    Routed,
    /// The director rewrote the destination (NAT, towards the real server).
    NatDst,
    /// The director rewrote the source (NAT reply).
    NatSrc,
    /// Some other address rewrite (source NAT by a router, port mapping, ...).
    Rewrite,
    /// The director handed the unchanged IP packet to a real server's MAC (DR).
    Dr,
    /// The director added an outer IPIP header (TUN).
    Encap,
    /// An outer IPIP header was removed on the way.
    Decap,
    /// Anything else: changed on a wire, or hops missing in between.
    Other,
}

/// Traces one conversation of a run (`number` counts from 1, as in the path text).
pub fn trace_conversation(
    number: usize,
    conv: &ConversationSummary,
    roles: &RoleMap,
    ports: &BTreeMap<(std::net::IpAddr, u16), String>,
    picks: &[Pick],
) -> Trace {
    detect::trace(number, conv, roles, ports, picks)
}

/// Traces conversation `only` of a report, or every conversation when `None`.
pub fn trace_report(
    report: &PathReport,
    roles: &RoleMap,
    picks: &[Pick],
    only: Option<usize>,
) -> Result<Vec<Trace>, TraceError> {
    let count = report.conversations.len();
    let wanted: Vec<usize> = match only {
        Some(n) if n == 0 || n > count => {
            return Err(TraceError::NoSuchConversation { asked: n, count })
        }
        Some(n) => vec![n],
        None => (1..=count).collect(),
    };
    Ok(wanted
        .into_iter()
        .map(|n| trace_conversation(n, &report.conversations[n - 1], roles, &report.ports, picks))
        .collect())
}

/// The innermost packet (IPIP unwrapped) and the outer header if there was one.
fn layers(frame: &lvslab_capture::decode::Frame) -> Option<(&Ip, Option<&Ip>)> {
    let Body::Ip(ip) = &frame.body else {
        return None;
    };
    match &ip.l4 {
        L4::Ipip(inner) => {
            let mut i: &Ip = inner;
            while let L4::Ipip(deeper) = &i.l4 {
                i = deeper;
            }
            Some((i, Some(ip)))
        }
        _ => Some((ip, None)),
    }
}

/// Shorthand used by [`detect`]: a hop's frame's layers.
fn hop_layers(h: &HopPacket) -> Option<(&Ip, Option<&Ip>)> {
    layers(&h.frame)
}
