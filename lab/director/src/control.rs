//! The director's control socket: one JSON request line in, one JSON response line out.
//!
//! `/run/lvslab/<lab>/director-<node>.sock`. Table changes travel as ipvsadm command lines
//! and go through `lvslab_core::ipvsadm::parse`, exactly like a saved ipvsadm rule set.
//! [`ControlClient`] is the one client; [`answer`] is the director's side.

use lvslab_core::director::{Director, DirectorStats, Pick, Tx};
use lvslab_core::{ipvsadm, DestConfig, Ipvs, ServiceConfig};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A request to the director.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Apply one ipvsadm command line (e.g. `-e -t 192.168.1.250:80 -r 192.168.1.201:80 -w 0`).
    Ipvsadm {
        /// The command line, with or without a leading `ipvsadm`.
        line: String,
    },
    /// Services, real servers and their counters.
    Stats,
    /// The connection table.
    Conns,
    /// Start or stop keeping the scheduler's reasoning for each new connection.
    Explain {
        /// On or off.
        on: bool,
    },
    /// The explained picks kept so far (newest last).
    Picks,
    /// Whether the director keeps explanations now.
    Explaining,
    /// The director pair: VRRP state of each instance, its transitions, sync counters.
    Vrrp,
    /// Give up mastership (`lvslab failover`): priority-0 advert, then BACKUP.
    Failover,
    /// Set a `net.ipv4.vs.*` sysctl the balancer models, by its name under
    /// /proc/sys/net/ipv4/vs/ (e.g. `expire_nodest_conn`), as `sysctl -w` would on a
    /// kernel director.
    Sysctl {
        /// e.g. `expire_nodest_conn`.
        name: String,
        /// e.g. `1`.
        value: String,
    },
    /// The whole table as `ipvsadm -L` and `-S` print it (flags, thresholds, timeouts).
    Table,
    /// Zero the counters of one service, or of all (`ipvsadm -Z`).
    Zero {
        /// The service; none: every service.
        service: Option<crate::listing::ListedKey>,
    },
}

/// The director's answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    /// The command was applied.
    Ok,
    /// The request failed; `message` says why.
    Error {
        /// What went wrong.
        message: String,
    },
    /// Answer to [`Request::Stats`].
    Stats(Stats),
    /// Answer to [`Request::Conns`].
    Conns {
        /// One entry per connection.
        conns: Vec<ConnRow>,
    },
    /// Answer to [`Request::Picks`].
    Picks {
        /// One entry per new connection scheduled while explaining was on.
        picks: Vec<PickRow>,
    },
    /// Answer to [`Request::Vrrp`] and [`Request::Failover`].
    Vrrp(VrrpReport),
    /// Answer to [`Request::Explaining`].
    Explaining {
        /// On or off.
        on: bool,
    },
    /// Answer to [`Request::Table`].
    Table(crate::listing::Table),
}

/// A director's part in a VRRP pair.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct VrrpReport {
    /// One entry per VRRP instance (none: the director balances alone).
    pub instances: Vec<VrrpRow>,
    /// State changes, oldest first.
    pub events: Vec<VrrpEventRow>,
    /// Connection sync counters.
    pub sync: BTreeMap<String, u64>,
}

/// One VRRP instance as `lvslab status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VrrpRow {
    /// The interface it speaks on.
    pub iface: String,
    /// Virtual router id.
    pub vrid: u8,
    /// VRRP version (2 or 3).
    pub version: u8,
    /// MASTER, BACKUP or INIT.
    pub state: String,
    /// This director's priority.
    pub priority: u8,
    /// The master it hears (itself when MASTER).
    pub master: Option<std::net::Ipv4Addr>,
    /// That master's priority.
    pub master_priority: Option<u8>,
    /// The VIPs the instance owns when MASTER.
    pub vips: Vec<std::net::Ipv4Addr>,
    /// IPVS sync id, when the pair syncs connections.
    pub sync_id: Option<u8>,
    /// State changes so far.
    pub transitions: u64,
}

/// One VRRP state change.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VrrpEventRow {
    /// Milliseconds since the director started.
    pub at_ms: u64,
    /// Virtual router id.
    pub vrid: u8,
    /// Old state.
    pub from: String,
    /// New state.
    pub to: String,
    /// Why.
    pub reason: String,
}

/// Services with their counters, and the director's packet-path counters.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Stats {
    /// One entry per virtual service.
    pub services: Vec<ServiceStats>,
    /// Packet-path counters of the director.
    pub director: BTreeMap<String, u64>,
}

/// Traffic counters as `ipvsadm -L --stats` shows them: the core's own, sent as they are.
pub use lvslab_core::Counters;
/// The typed protocol and forwarding method control lines are built from.
pub use lvslab_core::{ForwardMethod, Protocol};

/// A virtual service with its real servers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServiceStats {
    /// `TCP 192.168.1.250:80`, `UDP ...` or `FWM 1`, as ipvsadm prints it.
    pub service: String,
    /// Scheduler name.
    pub scheduler: String,
    /// Persistence timeout in seconds, if persistent.
    pub persistent: Option<u64>,
    /// Service counters.
    pub counters: Counters,
    /// Real servers, in the table's order.
    pub dests: Vec<DestStats>,
}

/// A real server of a service.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DestStats {
    /// RIP:port.
    pub addr: SocketAddr,
    /// `Masq`, `Route` or `Tunnel`, as ipvsadm prints the forwarding method.
    pub forward: String,
    /// Weight.
    pub weight: u32,
    /// Active connections.
    pub active: u64,
    /// Inactive connections.
    pub inactive: u64,
    /// Counters.
    pub counters: Counters,
}

impl ServiceStats {
    /// The row of a service: its configuration, counters and real servers, from either
    /// backend.
    pub fn new(
        config: &ServiceConfig,
        counters: Counters,
        dests: impl IntoIterator<Item = DestStats>,
    ) -> Self {
        ServiceStats {
            // ServiceKey's Display is ipvsadm -Ln's: `TCP  192.168.1.250:80`, `FWM  1`.
            service: config.key.to_string(),
            scheduler: config.scheduler.to_string(),
            persistent: config.persistence.map(|p| p.timeout.as_secs()),
            counters,
            dests: dests.into_iter().collect(),
        }
    }
}

impl DestStats {
    /// The row of a real server, from either backend.
    pub fn new(config: &DestConfig, active: u64, inactive: u64, counters: Counters) -> Self {
        DestStats {
            addr: config.addr,
            // Display gives ipvsadm's Forward column names (Masq, Route, Tunnel).
            forward: config.method.to_string(),
            weight: config.weight,
            active,
            inactive,
            counters,
        }
    }
}

/// Why the scheduler sent one new connection where it did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PickRow {
    /// The client's address and port.
    pub client: SocketAddr,
    /// The virtual service address.
    pub vip: SocketAddr,
    /// The scheduler.
    pub scheduler: String,
    /// The real server picked (None: none was available).
    pub chosen: Option<SocketAddr>,
    /// The step that decided (a comparison, a hash bucket, a cursor position).
    pub decision: String,
    /// The whole explanation, every candidate's load included, as `simulate --explain`
    /// prints it.
    pub text: String,
}

impl From<&Pick> for PickRow {
    fn from(p: &Pick) -> Self {
        PickRow {
            client: p.client,
            vip: p.vip,
            scheduler: p.explain.scheduler.to_string(),
            chosen: p.explain.chosen,
            decision: p.explain.decision.clone(),
            text: p.explain.to_string(),
        }
    }
}

/// One connection as `ipvsadm -Lnc` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ConnRow {
    /// TCP or UDP.
    pub pro: String,
    /// Seconds until it expires.
    pub expire_secs: u64,
    /// Protocol state (ESTABLISHED, SYN_RECV, UDP, ...).
    pub state: String,
    /// Client address and port (for a persistence template the masked client, port 0).
    pub source: SocketAddr,
    /// Virtual service address.
    pub virtual_addr: SocketAddr,
    /// Real server address.
    pub destination: SocketAddr,
    /// Counted as an active connection of its real server (ActiveConn in `ipvsadm -Ln`).
    #[serde(default)]
    pub active: bool,
    /// A persistence template rather than a flow.
    #[serde(default)]
    pub template: bool,
}

/// What went wrong talking to the director.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Nobody listens on the socket.
    #[error("connect to the director at {path} (is the lab up and its director running?)")]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// The kernel's answer.
        #[source]
        source: std::io::Error,
    },
    /// Sending or receiving failed.
    #[error("talk to the director at {path}")]
    Io {
        /// The socket path.
        path: PathBuf,
        /// The kernel's answer.
        #[source]
        source: std::io::Error,
    },
    /// The director hung up without an answer.
    #[error("the director at {0} closed the connection without answering")]
    Closed(PathBuf),
    /// The answer is not the protocol.
    #[error("bad answer from the director: {answer}")]
    BadAnswer {
        /// The line received.
        answer: String,
        /// Why it does not parse.
        #[source]
        source: serde_json::Error,
    },
    /// A well-formed answer to another question.
    #[error("unexpected answer from the director: {0:?}")]
    Unexpected(Box<Response>),
    /// The director refused the request.
    #[error("{0}")]
    Refused(String),
}

/// The control socket path of director `node` of a lab whose run directory is `run_dir`.
pub fn socket_path(run_dir: &Path, node: &str) -> PathBuf {
    run_dir.join(format!("director-{node}.sock"))
}

/// A typed client of one director's control socket; each call is one connection.
#[derive(Debug, Clone)]
pub struct ControlClient {
    path: PathBuf,
    timeout: Duration,
}

impl ControlClient {
    /// A client of the director listening on `path` (10 s answer timeout).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        ControlClient {
            path: path.into(),
            timeout: Duration::from_secs(10),
        }
    }

    /// The same client with another answer timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Send `req` and wait for the answer, whatever it is.
    pub fn call(&self, req: &Request) -> Result<Response, ControlError> {
        let io = |source| ControlError::Io {
            path: self.path.clone(),
            source,
        };
        let stream = UnixStream::connect(&self.path).map_err(|source| ControlError::Connect {
            path: self.path.clone(),
            source,
        })?;
        stream.set_read_timeout(Some(self.timeout)).map_err(io)?;
        let mut line = serde_json::to_string(req).map_err(|source| ControlError::BadAnswer {
            answer: format!("{req:?}"),
            source,
        })?;
        line.push('\n');
        (&stream).write_all(line.as_bytes()).map_err(io)?;
        let mut answer = String::new();
        BufReader::new(&stream).read_line(&mut answer).map_err(io)?;
        if answer.is_empty() {
            return Err(ControlError::Closed(self.path.clone()));
        }
        serde_json::from_str(&answer).map_err(|source| ControlError::BadAnswer { answer, source })
    }

    /// Like [`ControlClient::call`], with [`Response::Error`] as [`ControlError::Refused`].
    pub fn call_ok(&self, req: &Request) -> Result<Response, ControlError> {
        match self.call(req)? {
            Response::Error { message } => Err(ControlError::Refused(message)),
            other => Ok(other),
        }
    }

    /// Set a `net.ipv4.vs.*` sysctl (its name under /proc/sys/net/ipv4/vs/).
    pub fn sysctl(&self, name: &str, value: &str) -> Result<(), ControlError> {
        match self.call_ok(&Request::Sysctl {
            name: name.to_string(),
            value: value.to_string(),
        })? {
            Response::Ok => Ok(()),
            other => Err(ControlError::Unexpected(Box::new(other))),
        }
    }

    /// Apply one ipvsadm command line.
    pub fn ipvsadm(&self, line: &str) -> Result<(), ControlError> {
        match self.call_ok(&Request::Ipvsadm {
            line: line.to_string(),
        })? {
            Response::Ok => Ok(()),
            other => Err(ControlError::Unexpected(Box::new(other))),
        }
    }

    /// Services, real servers and counters.
    pub fn stats(&self) -> Result<Stats, ControlError> {
        match self.call_ok(&Request::Stats)? {
            Response::Stats(s) => Ok(s),
            other => Err(ControlError::Unexpected(Box::new(other))),
        }
    }

    /// The connection table.
    pub fn conns(&self) -> Result<Vec<ConnRow>, ControlError> {
        match self.call_ok(&Request::Conns)? {
            Response::Conns { conns } => Ok(conns),
            other => Err(ControlError::Unexpected(Box::new(other))),
        }
    }

    /// Start or stop explaining picks.
    pub fn explain(&self, on: bool) -> Result<(), ControlError> {
        match self.call_ok(&Request::Explain { on })? {
            Response::Ok => Ok(()),
            other => Err(ControlError::Unexpected(Box::new(other))),
        }
    }

    /// The explained picks kept so far.
    pub fn picks(&self) -> Result<Vec<PickRow>, ControlError> {
        match self.call_ok(&Request::Picks)? {
            Response::Picks { picks } => Ok(picks),
            other => Err(ControlError::Unexpected(Box::new(other))),
        }
    }

    /// Whether the director keeps explanations now.
    pub fn explaining(&self) -> Result<bool, ControlError> {
        match self.call_ok(&Request::Explaining)? {
            Response::Explaining { on } => Ok(on),
            other => Err(ControlError::Unexpected(Box::new(other))),
        }
    }

    /// The whole table, as `ipvsadm -L` and `-S` print it.
    pub fn table(&self) -> Result<crate::listing::Table, ControlError> {
        match self.call_ok(&Request::Table)? {
            Response::Table(t) => Ok(t),
            other => Err(ControlError::Unexpected(Box::new(other))),
        }
    }

    /// Zero the counters of `service`, or of every service.
    pub fn zero(&self, service: Option<crate::listing::ListedKey>) -> Result<(), ControlError> {
        match self.call_ok(&Request::Zero { service })? {
            Response::Ok => Ok(()),
            other => Err(ControlError::Unexpected(Box::new(other))),
        }
    }

    /// The director's VRRP instances, their state changes and sync counters.
    pub fn vrrp(&self) -> Result<VrrpReport, ControlError> {
        match self.call_ok(&Request::Vrrp)? {
            Response::Vrrp(r) => Ok(r),
            other => Err(ControlError::Unexpected(Box::new(other))),
        }
    }

    /// Make the director give up mastership; answers the report after the change.
    pub fn failover(&self) -> Result<VrrpReport, ControlError> {
        match self.call_ok(&Request::Failover)? {
            Response::Vrrp(r) => Ok(r),
            other => Err(ControlError::Unexpected(Box::new(other))),
        }
    }

    /// The connection (not a persistence template) of the client at `client`, if the
    /// director has one; for a step that must wait until the director has seen a state.
    pub fn conn_of(&self, client: SocketAddr) -> Result<Option<ConnRow>, ControlError> {
        Ok(self
            .conns()?
            .into_iter()
            .find(|c| c.source == client && !c.template))
    }
}

/// ipvsadm's command-line flag for a typed value.
pub trait IpvsadmFlag {
    /// `-t`/`-u` for a protocol, `-m`/`-g`/`-i` for a forwarding method.
    fn ipvsadm_flag(&self) -> &'static str;
}

impl IpvsadmFlag for Protocol {
    fn ipvsadm_flag(&self) -> &'static str {
        match self {
            Protocol::Tcp => "-t",
            Protocol::Udp => "-u",
        }
    }
}

impl IpvsadmFlag for ForwardMethod {
    fn ipvsadm_flag(&self) -> &'static str {
        match self {
            ForwardMethod::Nat => "-m",
            ForwardMethod::Dr => "-g",
            ForwardMethod::Tun => "-i",
        }
    }
}

/// `-e -t VIP:port -r RIP:port -m -w W`: change a real server's weight.
pub fn edit_weight_line(
    protocol: Protocol,
    vip: SocketAddr,
    rip: SocketAddr,
    method: ForwardMethod,
    weight: u32,
) -> String {
    format!(
        "-e {} {vip} -r {rip} {} -w {weight}",
        protocol.ipvsadm_flag(),
        method.ipvsadm_flag()
    )
}

/// Answer one control request (the director's side).
pub fn answer(req: Request, director: &mut Director, now: Duration, tx: &mut Tx) -> Response {
    match req {
        Request::Ipvsadm { line } => {
            let applied = ipvsadm::parse(&line)
                .map_err(|e| e.to_string())
                .and_then(|cmd| director.apply(now, cmd).map_err(|e| e.to_string()));
            match applied {
                Ok(()) => {
                    tracing::info!(%line, "applied");
                    Response::Ok
                }
                Err(message) => Response::Error {
                    message: format!("`{line}`: {message}"),
                },
            }
        }
        Request::Stats => {
            let mut counters = director_counters(director.stats());
            // The conn table's size against its bound: what a flood test watches.
            let ipvs = director.ipvs();
            counters.insert("conn_entries".into(), ipvs.conn_count() as u64);
            counters.insert("max_conns".into(), ipvs.config().max_conns as u64);
            counters.insert("dropped_table_full".into(), ipvs.stats().dropped_table_full);
            // The drop_entry defence: entries it evicted, and the sysctl as the kernel's
            // reads (2 while the table is full and the defence is working).
            counters.insert("evicted_drop_entry".into(), ipvs.stats().evicted_drop_entry);
            counters.insert("drop_entry".into(), u64::from(ipvs.config().drop_entry));
            Response::Stats(Stats {
                services: service_stats(ipvs),
                director: counters,
            })
        }
        Request::Conns => Response::Conns {
            conns: conn_rows(director.ipvs(), now),
        },
        Request::Explain { on } => {
            director.set_explain(on);
            Response::Ok
        }
        Request::Picks => Response::Picks {
            picks: director.picks().map(PickRow::from).collect(),
        },
        Request::Vrrp => Response::Vrrp(vrrp_report(director)),
        Request::Table => Response::Table(crate::listing::Table::new(
            listed_services(director.ipvs()),
            director.ipvs().timeouts(),
        )),
        Request::Zero { service } => match director.zero(service.map(Into::into).as_ref()) {
            Ok(()) => Response::Ok,
            Err(e) => Response::Error {
                message: e.to_string(),
            },
        },
        Request::Explaining => Response::Explaining {
            on: director.ipvs().explaining(),
        },
        Request::Failover => {
            if director.ha_status().is_empty() {
                return Response::Error {
                    message: "this director is not part of a VRRP pair (its services name no backup director)".into(),
                };
            }
            tx.extend(director.failover(now));
            tracing::info!("failover asked for: giving up mastership");
            Response::Vrrp(vrrp_report(director))
        }
        Request::Sysctl { name, value } => match director.set_sysctl(&name, &value) {
            Ok(()) => {
                tracing::info!(%name, %value, "sysctl set");
                Response::Ok
            }
            Err(e) => Response::Error {
                message: e.to_string(),
            },
        },
    }
}

/// The pair as the director sees it now.
pub fn vrrp_report(director: &Director) -> VrrpReport {
    let s = director.sync_counters();
    VrrpReport {
        instances: director
            .ha_status()
            .into_iter()
            .map(|h| VrrpRow {
                iface: h.iface,
                vrid: h.vrid,
                version: h.version,
                state: h.vrrp.state.to_string(),
                priority: h.vrrp.priority,
                master: h.vrrp.master,
                master_priority: h.vrrp.master_priority,
                vips: h.vips,
                sync_id: h.sync_id,
                transitions: h.vrrp.transitions,
            })
            .collect(),
        events: director
            .ha_events()
            .map(|e| VrrpEventRow {
                at_ms: e.at.as_millis() as u64,
                vrid: e.vrid,
                from: e.from.to_string(),
                to: e.to.to_string(),
                reason: e.reason.clone(),
            })
            .collect(),
        sync: [
            ("sent", s.sent),
            ("messages_sent", s.messages_sent),
            ("applied", s.applied),
            ("ignored", s.ignored),
            ("bad", s.bad),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
    }
}

fn director_counters(s: &DirectorStats) -> BTreeMap<String, u64> {
    [
        ("rx_frames", s.rx_frames),
        ("tx_frames", s.tx_frames),
        ("forwarded", s.forwarded),
        ("masqueraded", s.masqueraded),
        ("icmp_related", s.icmp_related),
        ("icmp_sent", s.icmp_sent),
        ("malformed", s.malformed),
        ("not_ours", s.not_ours),
        ("ipvs_drops", s.ipvs_drops),
        ("no_route", s.no_route),
        ("arp_failed", s.arp_failed),
        ("fragments", s.fragments),
        ("echo_replies", s.echo_replies),
        ("resets", s.resets),
        ("standby", s.standby),
        ("vrrp_adverts", s.vrrp_adverts),
        ("garps", s.garps),
        ("vrrp_bad", s.vrrp_bad),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn service_stats(ipvs: &Ipvs) -> Vec<ServiceStats> {
    ipvs.services()
        .iter()
        .map(|s| {
            ServiceStats::new(
                &s.config,
                s.stats,
                s.dests.iter().map(|d| {
                    DestStats::new(
                        &d.config,
                        u64::from(d.active),
                        u64::from(d.inactive),
                        d.stats,
                    )
                }),
            )
        })
        .collect()
}

fn listed_services(ipvs: &Ipvs) -> Vec<crate::listing::ListedService> {
    use crate::listing::{ListedDest, ListedService};
    ipvs.services()
        .iter()
        .map(|s| {
            ListedService::new(
                &s.config,
                s.stats,
                s.dests.iter().map(|d| {
                    ListedDest::new(&d.config, d.active, d.inactive, d.persistent, d.stats)
                }),
            )
        })
        .collect()
}

fn conn_rows(ipvs: &Ipvs, now: Duration) -> Vec<ConnRow> {
    ipvs.conns(now)
        .iter()
        .map(|c| ConnRow {
            pro: c.protocol.to_string(),
            expire_secs: c.expires_in.as_secs(),
            state: c.state.to_string(),
            source: c.client,
            virtual_addr: c.vip,
            destination: c.dest,
            active: c.active,
            template: c.template,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_wire_format() {
        let r = Request::Ipvsadm {
            line: "-e -t 192.168.1.250:80 -r 192.168.1.201:80 -w 0".into(),
        };
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(
            s,
            r#"{"op":"ipvsadm","line":"-e -t 192.168.1.250:80 -r 192.168.1.201:80 -w 0"}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&s).unwrap(), r);
        assert_eq!(
            serde_json::to_string(&Request::Stats).unwrap(),
            r#"{"op":"stats"}"#
        );
    }

    #[test]
    fn stats_answer_keeps_its_wire_format() {
        let r = Response::Stats(Stats::default());
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"result":"stats","services":[],"director":{}}"#
        );
    }

    #[test]
    fn conn_rows_carry_typed_addresses_as_strings() {
        let row = ConnRow {
            pro: "TCP".into(),
            expire_secs: 5,
            state: "ESTABLISHED".into(),
            source: "198.51.100.10:40000".parse().unwrap(),
            virtual_addr: "192.168.1.250:80".parse().unwrap(),
            destination: "192.168.1.201:80".parse().unwrap(),
            active: true,
            template: false,
        };
        let v: serde_json::Value = serde_json::to_value(&row).unwrap();
        assert_eq!(v["source"], "198.51.100.10:40000");
        assert_eq!(serde_json::from_value::<ConnRow>(v).unwrap(), row);
    }

    #[test]
    fn weight_line_uses_ipvsadm_flags() {
        assert_eq!(
            edit_weight_line(
                Protocol::Udp,
                "192.168.1.250:53".parse().unwrap(),
                "192.168.1.201:53".parse().unwrap(),
                ForwardMethod::Tun,
                0
            ),
            "-e -u 192.168.1.250:53 -r 192.168.1.201:53 -i -w 0"
        );
    }
}
