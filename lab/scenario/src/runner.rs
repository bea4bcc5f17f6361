//! The scenario runner: one lab per scenario (unique name), capture on every hop, the
//! steps, then the path compared with its snapshot and the expectations checked. It always
//! takes its lab down, also when a step fails or the runner panics.

use crate::format::{payload_bytes, HealthState, Scenario, Step, TransferOutcome};
use crate::ha;
use crate::snapshot::{self, Outcome};
use crate::{settle, traffic};
use lvslab_capture::normalize::PathReport;
use lvslab_capture::{analyze, LiveCapture, NormalizeOptions};
use lvslab_director::control::ControlError;
use lvslab_director::control::{Protocol, Stats};
use lvslab_engine::{
    capture_targets, role_map, Balancer, DaemonConfig, EngineError, LabGuard, UpOptions,
};
use lvslab_netns::{Backend, Lab, Label, NodeInfo, Role, ServiceSpec, Topology};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Environment variable the userspace director reads for deliberate, test-only faults.
pub use lvslab_director::BREAK_ENV;

/// File name of the lab's topology (overrides applied) inside a run directory.
pub const TOPOLOGY_FILE: &str = "topology.toml";

/// Capture stops once no hop has seen a packet for this long after the last step (a
/// delayed ACK waits at most 40 ms on Linux)...
const QUIET: Duration = Duration::from_millis(120);
/// ...or after this long in any case.
const QUIET_MAX: Duration = Duration::from_secs(3);

/// Errors that stop a scenario before it can be judged.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The scenario file is bad.
    #[error(transparent)]
    Format(#[from] crate::format::FormatError),
    /// Something about the lab (up, down, state) failed.
    #[error("{0}")]
    Lab(String),
    /// The lab did not come up (and was removed again).
    #[error(transparent)]
    Engine(#[from] lvslab_engine::EngineError),
    /// Capture failed.
    #[error(transparent)]
    Capture(#[from] lvslab_capture::CaptureError),
    /// Writing capture files failed.
    #[error(transparent)]
    Files(#[from] lvslab_capture::files::FileError),
    /// A step failed.
    #[error("step {step}: {message}")]
    Step {
        /// 1-based step number.
        step: usize,
        /// What went wrong.
        message: String,
    },
    /// Reading or writing the snapshot failed.
    #[error(transparent)]
    Snapshot(#[from] snapshot::SnapshotError),
}

/// Where things are and how to run them.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// The `lvslab` executable the lab's daemons run from (`serve`, `director`,
    /// `tunnel`); the runner itself builds and removes labs through lvslab-engine.
    pub lvslab: PathBuf,
    /// Where `captures/<lab>/<scenario>/` go.
    pub captures_dir: PathBuf,
    /// Where `<scenario>.snap` files live.
    pub snapshots_dir: PathBuf,
    /// Where changed paths are offered (`.snap.new`), when not beside the snapshots: a
    /// run in lvslab's VM, which sees the repository read-only, writes them to its share.
    pub pending_dir: Option<PathBuf>,
    /// Overrides every scenario's backend.
    pub backend: Option<Backend>,
    /// A test-only fault for the director (e.g. `nat-source-rewrite`), handed to the
    /// lab's daemons through the [`BREAK_ENV`] environment variable.
    pub break_director: Option<String>,
}

/// The result of one scenario.
#[derive(Debug)]
pub struct ScenarioResult {
    /// Scenario name (file stem).
    pub name: String,
    /// Wall time.
    pub time: Duration,
    /// Every problem found; empty means it passed.
    pub failures: Vec<String>,
    /// The snapshot comparison, when it got that far.
    pub snapshot: Option<Outcome>,
    /// Where the captures were written.
    pub captures: Option<PathBuf>,
    /// Not run on this backend, and why (the scenario's `backends` and `why`).
    pub skipped: Option<String>,
}

impl ScenarioResult {
    /// Did it pass?
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// A unique, valid lab name for a scenario run (lower-case, at most 32 characters).
pub fn lab_name(scenario: &str, slot: usize) -> String {
    let pid = std::process::id() % 100_000;
    let mut stem: String = scenario
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    stem.truncate(18);
    format!("t{pid}-{slot}-{stem}")
}

/// Runs one scenario file in a lab called `lab`.
pub fn run(path: &Path, lab: &str, cfg: &RunnerConfig) -> ScenarioResult {
    let name = Scenario::name_of(path);
    let t0 = Instant::now();
    let mut result = ScenarioResult {
        name: name.clone(),
        time: Duration::ZERO,
        failures: Vec::new(),
        snapshot: None,
        captures: None,
        skipped: None,
    };
    if let Err(e) = run_inner(path, lab, cfg, &mut result) {
        result.failures.push(e.to_string());
    }
    result.time = t0.elapsed();
    result
}

fn run_inner(
    path: &Path,
    lab: &str,
    cfg: &RunnerConfig,
    result: &mut ScenarioResult,
) -> Result<(), RunError> {
    let scenario = Scenario::load(path)?;
    let backend = cfg.backend.unwrap_or(scenario.backend);
    if let Some(only) = scenario.backends.as_ref().filter(|b| !b.contains(&backend)) {
        let only: Vec<String> = only.iter().map(ToString::to_string).collect();
        result.skipped = Some(format!(
            "runs on {} only: {}",
            only.join(", "),
            scenario.why.as_deref().unwrap_or("see its description")
        ));
        return Ok(());
    }
    let topo_file = write_topology(path, &scenario, lab)?;
    let topo = Topology::load(&topo_file);
    let _ = std::fs::remove_file(&topo_file);
    let topo = topo.map_err(|e| RunError::Lab(e.to_string()))?;
    // Takes the lab down however this function ends, panics included.
    let _guard = lab_up(cfg, &topo, lab, backend)?;
    let lab_state = Lab::load(lab).map_err(|e| RunError::Lab(e.to_string()))?;
    let service = lab_state
        .state
        .topology
        .services
        .first()
        .cloned()
        .ok_or_else(|| {
            RunError::Lab(format!(
                "{}: the topology has no [[services]]",
                path.display()
            ))
        })?;
    let roles = role_map(&lab_state);
    // The director's reasons for its picks, saved beside the captures for `lvslab trace`;
    // only the userspace director keeps them (kernel IPVS has no such record).
    let explainer = director(&lab_state, &service)
        .ok()
        .filter(|b| b.backend() == Backend::Userspace && b.explain(true).is_ok());

    let targets = capture_targets(&lab_state, scenario.capture.nodes.as_deref().unwrap_or(&[]));
    let capture = LiveCapture::start(&targets, scenario.capture.filter.as_deref())?;
    let mut ctx = StepCtx {
        lab: &lab_state,
        daemons: daemon_config(cfg),
        service: &service,
        held: Vec::new(),
        failed: 0,
        requests: 0,
        transfers: Vec::new(),
        outcomes: Vec::new(),
    };
    let mut step_err = None;
    for (i, step) in scenario.steps.iter().enumerate() {
        if let Err(message) = ctx.step(step) {
            step_err = Some(RunError::Step {
                step: i + 1,
                message,
            });
            break;
        }
    }
    let counters = match backend {
        // Kernel IPVS folds its per-CPU counters into what netlink reports when its
        // estimator runs, every 2 s: wait for the expected values, at most 5 s.
        Backend::Ipvs if !scenario.expect.counters.is_empty() => {
            let mut last = director_stats(&lab_state, &service);
            let _ = settle::poll_until(|| {
                last = director_stats(&lab_state, &service);
                Ok(last
                    .as_ref()
                    .is_ok_and(|got| counters_match(&scenario.expect.counters, got)))
            });
            last
        }
        _ => director_stats(&lab_state, &service),
    };
    // Transfers still running end (or time out) before the path is taken.
    ctx.wait_transfers(Duration::from_secs(30));
    // Held connections close now; their closing handshakes belong to the path.
    let tally = Tally {
        failed: ctx.failed,
        requests: ctx.requests,
        transfers: ctx.outcomes.clone(),
    };
    if let Err(message) = ctx.release() {
        step_err.get_or_insert(RunError::Step {
            step: scenario.steps.len(),
            message: format!("closing the held connections: {message}"),
        });
    }
    drop(ctx);
    // Every connection has settled; this only lets stray frames (ARP, UDP) finish.
    capture.wait_quiet(QUIET, QUIET_MAX);
    let caps = capture.stop()?;
    let run_dir = cfg.captures_dir.join(lab).join(&result.name);
    lvslab_capture::files::write_run_dir(&run_dir, &caps)?;
    // The roles beside the captures let anyone rebuild the path text from the files alone.
    let _ = std::fs::write(run_dir.join("roles.txt"), roles.to_text());
    // ...and the lab's topology lets a report draw the lab the run saw.
    if let Ok(text) = topo.to_toml() {
        let _ = std::fs::write(run_dir.join(TOPOLOGY_FILE), text);
    }
    // The daemons' logs go with the lab's run directory on teardown; keepalived's is the
    // only account of its VRRP transitions, so keep them beside the captures.
    copy_daemon_logs(&lab_state.run_dir(), &run_dir.join("logs"));
    if let Some(picks) = explainer.and_then(|b| b.picks().ok()) {
        if let Ok(json) = serde_json::to_string_pretty(&picks) {
            let _ = std::fs::write(run_dir.join("picks.json"), json + "\n");
        }
    }
    result.captures = Some(run_dir);
    if let Some(e) = step_err {
        return Err(e);
    }
    let opts = NormalizeOptions {
        arp: scenario.capture.arp,
        // Neighbour Discovery is IPv6's ARP: asked for together.
        neighbor_discovery: scenario.capture.arp,
        ..Default::default()
    };
    let report = analyze(&caps, &roles, opts);
    check_expectations(&scenario, &lab_state, &report, tally, counters, result);
    if scenario.expect.snapshot {
        let (snap, mut pending) = snapshot::paths_for(&cfg.snapshots_dir, &result.name, backend);
        if let (Some(dir), Some(file)) = (&cfg.pending_dir, pending.file_name()) {
            pending = dir.join(file);
        }
        let source = format!("scenarios/{}.toml", result.name);
        let outcome = snapshot::check_against(
            &snap,
            &pending,
            &source,
            &scenario.description,
            &report.text,
        )?;
        match &outcome {
            Outcome::Same => {}
            Outcome::New { pending } => result.failures.push(format!(
                "no snapshot yet: wrote {} for review (see docs/scenarios.md, \"Reviewing a changed path\")",
                pending.display()
            )),
            Outcome::Changed { pending, diff } => result.failures.push(format!(
                "the packet path differs from {} (new path in {}):\n{}",
                snap.display(),
                pending.display(),
                diff
            )),
        }
        result.snapshot = Some(outcome);
    }
    Ok(())
}

/// Copies every `*.log` of the lab's run directory to `to` (best effort: a missing log is
/// no reason to fail a scenario).
fn copy_daemon_logs(from: &Path, to: &Path) {
    let Ok(dir) = std::fs::read_dir(from) else {
        return;
    };
    if std::fs::create_dir_all(to).is_err() {
        return;
    }
    for e in dir.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "log") {
            if let Some(name) = p.file_name() {
                let _ = std::fs::copy(&p, to.join(name));
            }
        }
    }
}

/// The scenario's topology with its `[service]` overrides applied, as a typed value.
pub fn scenario_topology(
    path: &Path,
    scenario: &Scenario,
) -> Result<lvslab_netns::Topology, RunError> {
    let topo_path = locate_topology(path, &scenario.topology)?;
    let topo =
        lvslab_netns::Topology::load(&topo_path).map_err(|e| RunError::Lab(e.to_string()))?;
    Ok(crate::overrides::apply_overrides(scenario, topo)?)
}

/// Writes the scenario's topology where `lvslab up` can read it, named after the lab (a
/// topology's name is its file stem, and lab names are valid ones).
fn write_topology(path: &Path, scenario: &Scenario, lab: &str) -> Result<PathBuf, RunError> {
    let topo = scenario_topology(path, scenario)?;
    let dir = std::env::temp_dir().join("lvslab-scenarios");
    std::fs::create_dir_all(&dir).map_err(|e| RunError::Lab(format!("{}: {e}", dir.display())))?;
    let out = dir.join(format!("{lab}.toml"));
    let text = topo
        .to_toml()
        .map_err(|e| RunError::Lab(format!("{}: {e}", out.display())))?;
    // Overrides can break what the topology file alone satisfied (a NAT lab made dr).
    lvslab_netns::Topology::parse(&out, text.clone()).map_err(|e| {
        RunError::Lab(format!(
            "{}: [service] overrides do not fit topology {}:\n{e}",
            path.display(),
            scenario.topology
        ))
    })?;
    std::fs::write(&out, text).map_err(|e| RunError::Lab(format!("{}: {e}", out.display())))?;
    Ok(out)
}

/// Finds the scenario's topology: a path, a name in `../topologies/` next to the scenario
/// directory, or wherever `lvslab up` would look.
fn locate_topology(scenario_path: &Path, topology: &str) -> Result<PathBuf, RunError> {
    let file = if topology.ends_with(".toml") {
        topology.to_owned()
    } else {
        format!("{topology}.toml")
    };
    if let Some(dir) = scenario_path.parent() {
        let beside = dir.join("..").join("topologies").join(&file);
        if beside.is_file() {
            return Ok(beside);
        }
    }
    lvslab_netns::Topology::locate(topology).map_err(|e| {
        RunError::Lab(format!(
            "{}: topology {topology:?}: {e}",
            scenario_path.display()
        ))
    })
}

/// How the lab's daemons are started, by `up` and by `start_server` alike.
fn daemon_config(cfg: &RunnerConfig) -> DaemonConfig {
    DaemonConfig::new(&cfg.lvslab).env(BREAK_ENV, cfg.break_director.as_deref())
}

fn lab_up(
    cfg: &RunnerConfig,
    topo: &Topology,
    lab: &str,
    backend: Backend,
) -> Result<LabGuard, RunError> {
    let daemons = daemon_config(cfg);
    let opts = UpOptions {
        backend,
        ..UpOptions::new(daemons)
    };
    Ok(LabGuard::up(lab, topo, &opts)?)
}

/// Requests sent and failed, and how the transfers ended.
#[derive(Clone)]
struct Tally {
    failed: u32,
    requests: u32,
    transfers: Vec<Result<TransferOutcome, String>>,
}

/// A connection a `request` step holds open, and where its client end lives.
struct Held {
    stream: TcpStream,
    netns: String,
    local: Option<SocketAddr>,
    /// Reset by the network (e.g. a backup director that never heard of it): the real
    /// server's end stays open, so closing it is not waited for.
    broken: bool,
}

struct StepCtx<'a> {
    lab: &'a Lab,
    daemons: DaemonConfig,
    service: &'a ServiceSpec,
    held: Vec<Held>,
    failed: u32,
    requests: u32,
    transfers: Vec<ha::Transfer>,
    outcomes: Vec<Result<TransferOutcome, String>>,
}

impl Drop for StepCtx<'_> {
    fn drop(&mut self) {
        // Held connections close now; their closing handshakes belong to the path.
        if let Err(e) = self.release() {
            tracing::warn!("closing held connections: {e}");
        }
    }
}

impl StepCtx<'_> {
    fn step(&mut self, step: &Step) -> Result<(), String> {
        match step {
            Step::Request {
                from,
                to,
                count,
                protocol,
                payload,
                random,
                hold,
                sources,
                destinations,
            } => {
                let node = self.lab.node(from).map_err(|e| e.to_string())?;
                let target: SocketAddr = if to == "vip" {
                    SocketAddr::new(self.service.vip, self.service.port)
                } else {
                    to.parse().map_err(|_| {
                        format!("`to = {to:?}`: use \"vip\" or ADDR:PORT like \"192.168.1.201:80\" or \"[2001:db8:1::201]:80\"")
                    })?
                };
                let sources = sources
                    .iter()
                    .map(|s| source_addr(node, s, target.is_ipv4()))
                    .collect::<Result<Vec<IpAddr>, String>>()?;
                let destinations = destinations
                    .iter()
                    .map(|d| self.destination(d))
                    .collect::<Result<Vec<SocketAddr>, String>>()?;
                let udp = match protocol.as_deref() {
                    Some("udp") => true,
                    Some("tcp") => false,
                    Some(other) => return Err(format!("protocol {other:?}: use tcp or udp")),
                    None => self.service.protocol == Protocol::Udp,
                };
                let bytes = if payload.is_none() && random.is_none() && !udp {
                    b"GET / HTTP/1.0\r\n\r\n".to_vec()
                } else {
                    payload_bytes(payload.as_deref(), *random)
                };
                for i in 0..*count as usize {
                    let b = bytes.clone();
                    let hold = *hold;
                    // Sources and destinations are used in turn, each list on its own.
                    let from = (!sources.is_empty()).then(|| sources[i % sources.len()]);
                    let target = if destinations.is_empty() {
                        target
                    } else {
                        destinations[i % destinations.len()]
                    };
                    let (reply, stream) = lvslab_netns::netns::run_in(&node.netns, move || {
                        if udp {
                            (traffic::udp_request(from, target, &b), None)
                        } else {
                            traffic::tcp_request(from, target, &b, hold)
                        }
                    })
                    .map_err(|e| e.to_string())?;
                    self.requests += 1;
                    if let Some(e) = &reply.error {
                        tracing::debug!("request {} to {target} failed: {e}", self.requests);
                        self.failed += 1;
                    }
                    if udp {
                        continue;
                    }
                    // The next connection is scheduled only once this one counts as the
                    // scenario assumes: held ones active, the others closed.
                    match (stream, reply.local) {
                        (Some(stream), local) => {
                            if let Some(local) = local {
                                self.settle_established(local)?;
                            }
                            self.held.push(Held {
                                stream,
                                netns: node.netns.clone(),
                                local,
                                broken: false,
                            });
                        }
                        (None, Some(local)) => self.settle_closed(&node.netns, local)?,
                        (None, None) => {}
                    }
                }
                Ok(())
            }
            Step::Weight { server, weight } => {
                let rs = self
                    .service
                    .real_servers
                    .iter()
                    .find(|r| &r.node == server)
                    .ok_or_else(|| format!("{server:?} is not a real server of the service"))?;
                let line = lvslab_engine::weight_line(
                    self.service,
                    SocketAddr::new(rs.address, rs.port),
                    *weight,
                );
                director_ipvsadm(self.lab, self.service, &line)
            }
            Step::Ipvsadm { line } => director_ipvsadm(self.lab, self.service, line),
            Step::StopServer { node } => {
                // The saved state: a start_server step may have started a newer serve.
                let fresh = Lab::load(self.lab.name()).map_err(|e| e.to_string())?;
                let serves: Vec<&lvslab_netns::state::DaemonInfo> = fresh
                    .state
                    .daemons
                    .iter()
                    .filter(|d| &d.node == node && d.name.starts_with("serve"))
                    .collect();
                let d = serves
                    .iter()
                    .find(|d| d.alive())
                    .or(serves.last())
                    .ok_or_else(|| format!("no serve daemon runs on {node:?}"))?;
                if !d.alive() {
                    return Err(format!("serve on {node} (pid {}) is not running", d.pid));
                }
                let pid =
                    nix::unistd::Pid::from_raw(i32::try_from(d.pid).map_err(|e| e.to_string())?);
                nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)
                    .map_err(|e| format!("stopping serve on {node}: {e}"))?;
                let t0 = Instant::now();
                while d.alive() && t0.elapsed() < Duration::from_secs(2) {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Ok(())
            }
            Step::StartServer { node } => {
                let mut fresh = Lab::load(self.lab.name()).map_err(|e| e.to_string())?;
                lvslab_engine::restart_serve(&mut fresh, node, &self.daemons)
                    .map(|_| ())
                    .map_err(|e| format!("starting serve on {node}: {}", with_causes(&e)))
            }
            Step::WaitHealth {
                node,
                state,
                timeout_ms,
            } => self.wait_health(node, *state, Duration::from_millis(*timeout_ms)),
            Step::Release => self.release(),
            Step::SendHeld { payload } => {
                for h in &mut self.held {
                    if let Err(e) = ha::echo_on(&mut h.stream, payload.as_bytes()) {
                        tracing::debug!("{e}");
                        self.failed += 1;
                        h.broken = true;
                    }
                    self.requests += 1;
                }
                Ok(())
            }
            Step::KillDirector { node, signal } => ha::kill_director(self.lab, node, *signal),
            Step::StartDirector { node } => ha::start_director(self.lab, node, &self.daemons),
            Step::Failover { within_ms } => {
                let (new, took) = ha::failover(self.lab, Duration::from_secs(10))?;
                tracing::info!(%new, took_ms = took.as_millis() as u64, "failover");
                match within_ms {
                    Some(ms) if took > Duration::from_millis(*ms) => Err(format!(
                        "{new} became MASTER {} ms after the failover, more than {ms} ms",
                        took.as_millis()
                    )),
                    _ => Ok(()),
                }
            }
            Step::WaitVrrp {
                node,
                state,
                timeout_ms,
            } => ha::wait_vrrp(self.lab, node, *state, Duration::from_millis(*timeout_ms)),
            Step::WaitSynced { node, timeout_ms } => {
                let clients: Vec<SocketAddr> = self
                    .held
                    .iter()
                    .filter_map(|h| h.local)
                    .chain(self.transfers.iter().filter_map(|t| t.local))
                    .collect();
                ha::wait_synced(self.lab, node, &clients, Duration::from_millis(*timeout_ms))
            }
            Step::Transfer {
                from,
                bytes,
                duration_ms,
                port,
            } => {
                let node = self.lab.node(from).map_err(|e| e.to_string())?;
                let to = SocketAddr::new(self.service.vip, self.service.port);
                let t = ha::start_transfer(
                    node.netns.clone(),
                    to,
                    *port,
                    *bytes,
                    Duration::from_millis(*duration_ms),
                );
                let local = t.local;
                self.transfers.push(t);
                match local {
                    // The director must hold it before the next step (a kill) acts.
                    Some(local) => self.settle_established(local),
                    None => Err("the transfer's connection was not established".to_owned()),
                }
            }
            Step::WaitTransfer { timeout_ms } => {
                self.wait_transfers(Duration::from_millis(*timeout_ms));
                Ok(())
            }
            Step::Wait { ms } => {
                std::thread::sleep(Duration::from_millis(*ms));
                Ok(())
            }
            Step::Sysctl { name, value } => director_sysctl(self.lab, self.service, name, *value),
            Step::SendUdp {
                node,
                source,
                to,
                payload,
                source_port,
                timeout_ms,
                answered,
            } => {
                let n = self.lab.node(node).map_err(|e| e.to_string())?;
                let (source, to, bytes) = (*source, *to, payload.clone().into_bytes());
                let (port, wait) = (*source_port, Duration::from_millis(*timeout_ms));
                // Connected, so the answer or the ICMP error comes back to this socket: the
                // step waits for either, so what the datagram set off (ARP on both sides,
                // a first ARP retried when a fresh lab's bridge lost it) is over before the
                // next step. No answer at all is no failure: sending was the point.
                let got =
                    lvslab_netns::netns::run_in(&n.netns, move || -> std::io::Result<bool> {
                        let s = bind_udp(SocketAddr::new(source, port))?;
                        s.connect(to)?;
                        s.set_read_timeout(Some(wait))?;
                        s.send(&bytes)?;
                        let mut buf = [0u8; 2048];
                        match s.recv(&mut buf) {
                            Ok(_) => Ok(true),
                            Err(e) => {
                                tracing::debug!("no answer to the datagram to {to}: {e}");
                                Ok(false)
                            }
                        }
                    })
                    .map_err(|e| e.to_string())?
                    .map_err(|e| format!("sending from {node} ({source}) to {to}: {e}"))?;
                match answered {
                    Some(want) if *want != got => Err(format!(
                        "the datagram from {node} ({source}:{port}) to {to} was {}answered, expected {}",
                        if got { "" } else { "not " },
                        if *want { "an answer" } else { "none" }
                    )),
                    _ => Ok(()),
                }
            }
            Step::Flood {
                from,
                kind,
                count,
                rate,
                within_ms,
                max_conns,
                exchanges,
                min_success,
                new_exchanges,
                min_new_success,
                max_rss_growth_kb,
            } => {
                let spec = crate::flood::FloodSpec {
                    kind: *kind,
                    count: *count,
                    rate: *rate,
                    within: Duration::from_millis(*within_ms),
                    max_conns: *max_conns,
                    exchanges: *exchanges,
                    new_exchanges: *new_exchanges,
                    min_new_success: *min_new_success,
                    new_conns: 0,
                    min_success: *min_success,
                    max_rss_growth_kb: *max_rss_growth_kb,
                };
                self.flood(from, &spec)
            }
            Step::Connect { from, timeout_ms } => {
                let node = self.lab.node(from).map_err(|e| e.to_string())?;
                let to = SocketAddr::new(self.service.vip, self.service.port);
                let timeout = Duration::from_millis(*timeout_ms);
                let (outcome, local) =
                    lvslab_netns::netns::run_in(&node.netns, move || quick_get(to, timeout))
                        .map_err(|e| e.to_string())?;
                self.requests += 1;
                if let Err(e) = outcome {
                    tracing::debug!("request {} to {to} failed: {e}", self.requests);
                    self.failed += 1;
                    return Ok(());
                }
                match local {
                    Some(local) => self.settle_closed(&node.netns, local),
                    None => Ok(()),
                }
            }
        }
    }
}

/// An HTTP GET whose connect gives up after `timeout`; the client's address once it had
/// one (the director's table knows the connection by it).
fn quick_get(to: SocketAddr, timeout: Duration) -> (std::io::Result<Vec<u8>>, Option<SocketAddr>) {
    use std::io::{Read, Write};
    let mut s = match TcpStream::connect_timeout(&to, timeout) {
        Ok(s) => s,
        Err(e) => return (Err(e), None),
    };
    let local = s.local_addr().ok();
    let mut buf = Vec::new();
    let r = s
        .set_read_timeout(Some(traffic::REQUEST_TIMEOUT))
        .and_then(|()| s.write_all(b"GET / HTTP/1.0\r\n\r\n"))
        .and_then(|()| s.read_to_end(&mut buf))
        .map(|_| buf);
    (r, local)
}

/// `sysctl -w net.ipv4.vs.NAME=VALUE` on the service's director: through lvslab's director's
/// control socket, or in the namespace of a kernel-IPVS director.
fn director_sysctl(lab: &Lab, service: &ServiceSpec, name: &str, value: u32) -> Result<(), String> {
    let value = value.to_string();
    if name.is_empty() || name.contains(['/', '.']) {
        return Err(format!(
            "sysctl {name:?}: give the name under /proc/sys/net/ipv4/vs/, e.g. expire_nodest_conn"
        ));
    }
    let node = &service.director;
    match lab.state.backend {
        Backend::Userspace => {
            let sock = lvslab_director::control::socket_path(&lab.run_dir(), node);
            lvslab_director::control::ControlClient::new(sock)
                .sysctl(name, &value)
                .map_err(|e| format!("director {node}: {}", with_causes(&e)))
        }
        Backend::Ipvs => {
            let netns = lab.netns_of(node).map_err(|e| e.to_string())?;
            let key = format!("net.ipv4.vs.{name}");
            lvslab_netns::netns::run_in(&netns, || lvslab_netns::netns::set_sysctl(&key, &value))
                .and_then(|r| r)
                .map_err(|e| format!("director {node}: {e}"))
        }
    }
}

impl StepCtx<'_> {
    /// Runs a flood step; its numbers go to `flood-N.log` in the lab's run directory, which
    /// the runner copies beside the captures.
    fn flood(&mut self, from: &str, spec: &crate::flood::FloodSpec) -> Result<(), String> {
        let node = self.lab.node(from).map_err(|e| e.to_string())?;
        let held: Vec<&TcpStream> = self
            .held
            .iter()
            .filter(|h| !h.broken)
            .map(|h| &h.stream)
            .collect();
        let report = crate::flood::run(self.lab, self.service, node, spec, &held)?;
        let run_dir = self.lab.run_dir();
        let n = (1..)
            .find(|n| !run_dir.join(format!("flood-{n}.log")).exists())
            .unwrap_or(1);
        let _ = std::fs::write(
            run_dir.join(format!("flood-{n}.log")),
            report.summary() + "\n",
        );
        tracing::info!("{}", report.summary());
        report.check(spec)
    }

    /// Polls the director's health state file until `node` is in `want`.
    fn wait_health(&self, node: &str, want: HealthState, timeout: Duration) -> Result<(), String> {
        let run_dir = self.lab.run_dir();
        let t0 = Instant::now();
        loop {
            let rows = lvslab_engine::health::read_health(&run_dir).map_err(|e| e.to_string())?;
            let row = rows.iter().find(|r| r.node == node);
            if row.is_some_and(|r| r.up == (want == HealthState::Up)) {
                return Ok(());
            }
            if t0.elapsed() >= timeout {
                let now = match row {
                    Some(r) if r.up => "up".to_owned(),
                    Some(r) => format!("down ({} failed checks)", r.failures),
                    None => "not health-checked (no health table names it)".to_owned(),
                };
                return Err(format!(
                    "{node} is still {now} after {} ms, expected {}",
                    timeout.as_millis(),
                    match want {
                        HealthState::Up => "up",
                        HealthState::Down => "down",
                    }
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Collects the outcome of every running transfer (an error for one still running after
    /// `timeout`).
    fn wait_transfers(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for t in std::mem::take(&mut self.transfers) {
            let label = t.label.clone();
            let r = t.wait(deadline);
            if let Err(e) = &r {
                tracing::warn!("{label}: {e}");
            }
            self.outcomes.push(r);
        }
    }

    /// Closes every held connection and waits until each is closed everywhere.
    fn release(&mut self) -> Result<(), String> {
        let held = std::mem::take(&mut self.held);
        let mut open = Vec::new();
        for h in held {
            drop(h.stream);
            if !h.broken {
                open.extend(h.local.map(|l| (h.netns, l)));
            }
        }
        for (netns, local) in open {
            self.settle_closed(&netns, local)?;
        }
        Ok(())
    }

    /// A request destination: `vip`, a VIP label (`VIP2`), an address (the service's
    /// port) or `ADDR:PORT`.
    fn destination(&self, d: &str) -> Result<SocketAddr, String> {
        let port = self.service.port;
        if d == "vip" {
            return Ok(SocketAddr::new(self.service.vip, port));
        }
        if let Ok(a) = d.parse::<SocketAddr>() {
            return Ok(a);
        }
        if let Ok(ip) = d.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, port));
        }
        let roles = lvslab_engine::role_map(self.lab);
        let known = || {
            let v: Vec<String> = roles.labels().map(|(_, l)| l.to_string()).collect();
            v.join(", ")
        };
        let label: Label = d.parse().map_err(|_| {
            format!(
                "destination {d:?}: use \"vip\", a label ({}), an address or ADDR:PORT",
                known()
            )
        })?;
        let found = roles
            .labels()
            .find(|(_, l)| *l == label)
            .map(|(a, _)| SocketAddr::new(*a, port));
        found.ok_or_else(|| {
            format!(
                "destination {d:?}: no address of this lab has that label; it has {}",
                known()
            )
        })
    }

    /// The namespaces where the server end of a connection can live.
    fn server_netns(&self) -> Vec<String> {
        self.lab
            .state
            .nodes
            .iter()
            .filter(|n| n.role == Role::Realserver)
            .map(|n| n.netns.clone())
            .collect()
    }

    /// Waits until the director counts the connection from `local` as ESTABLISHED.
    fn settle_established(&self, local: SocketAddr) -> Result<(), String> {
        let mut last = None;
        let done = settle::poll_until(|| {
            last = director_conn_state(self.lab, self.service, local)?;
            Ok(last.as_deref() == Some("ESTABLISHED"))
        })?;
        if done {
            return Ok(());
        }
        Err(format!(
            "the held connection from {local} is {} in the director's table after {} s, not ESTABLISHED",
            last.as_deref().unwrap_or("absent"),
            settle::SETTLE_MAX.as_secs()
        ))
    }

    /// Waits until the connection from `local` is finished at both ends and the director no
    /// longer counts it as active.
    fn settle_closed(&self, client_netns: &str, local: SocketAddr) -> Result<(), String> {
        let servers = self.server_netns();
        let ends = settle::poll_until(|| settle::closed_everywhere(client_netns, local, &servers))?;
        if !ends {
            // A broken path (a test fault) can leave a half-open end behind; the path and
            // the expectations show what went wrong, so this is not the step's failure.
            tracing::warn!(
                "the connection from {local} was not closed at both ends after {} s",
                settle::SETTLE_MAX.as_secs()
            );
        }
        let mut last = None;
        let inactive = settle::poll_until(|| {
            last = director_conn_state(self.lab, self.service, local)?;
            Ok(last.as_deref() != Some("ESTABLISHED"))
        })?;
        if inactive {
            return Ok(());
        }
        Err(format!(
            "the director still counts the closed connection from {local} as ESTABLISHED after {} s",
            settle::SETTLE_MAX.as_secs()
        ))
    }
}

/// A source address of `node`, by label (`CIP2`) or written out; either way one the node
/// holds, so a typo is a step error rather than requests that fail to bind.
/// A source address of `node` by address or label; a label that names addresses of both
/// families (a dual-stack CIP) gives the one of the target's family (`v4`).
fn source_addr(node: &NodeInfo, s: &str, v4: bool) -> Result<IpAddr, String> {
    let held: Vec<(IpAddr, Option<Label>)> = node
        .interfaces
        .iter()
        .flat_map(|i| {
            let labels = i.label.iter().chain(&i.more_labels).copied().map(Some);
            i.addresses
                .iter()
                .map(|a| a.addr())
                .zip(labels.chain(std::iter::repeat(None)))
        })
        .collect();
    let found = match s.parse::<IpAddr>() {
        Ok(ip) => held.iter().find(|(a, _)| *a == ip),
        Err(_) => {
            let label = s.parse::<Label>().ok();
            let named = |(_, l): &&(IpAddr, Option<Label>)| label.is_some() && *l == label;
            held.iter()
                .filter(named)
                .find(|(a, _)| a.is_ipv4() == v4)
                .or_else(|| held.iter().find(named))
        }
    };
    found.map(|(a, _)| *a).ok_or_else(|| {
        let have: Vec<String> = held
            .iter()
            .map(|(a, l)| match l {
                Some(l) => format!("{l}={a}"),
                None => a.to_string(),
            })
            .collect();
        format!(
            "source {s:?}: node {} has no such address; it has {}",
            node.name,
            have.join(", ")
        )
    })
}

/// The state of the director's connection from `client` (its address and port), if any.
fn director_conn_state(
    lab: &Lab,
    service: &ServiceSpec,
    client: SocketAddr,
) -> Result<Option<String>, String> {
    director(lab, service)?
        .conn_of(client)
        .map(|row| row.map(|r| r.state))
        .map_err(|e| with_causes(&e))
}

/// The balancer of the service's director, whichever backend the lab runs; of a pair, the
/// director that is VRRP MASTER now.
fn director(lab: &Lab, service: &ServiceSpec) -> Result<Box<dyn Balancer>, String> {
    let node = match ha::current_master(lab) {
        Some(master) if service.backup.is_some() => master,
        _ => service.director.clone(),
    };
    lvslab_engine::balancer(lab, Some(&node)).map_err(|e| with_causes(&e))
}

/// An error with its causes, for a step's one-line message.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let _ = write!(out, ": {c}");
        cause = c.source();
    }
    out
}

fn director_ipvsadm(lab: &Lab, service: &ServiceSpec, line: &str) -> Result<(), String> {
    director(lab, service)?.ipvsadm(line).map_err(|e| match e {
        EngineError::Control(ControlError::Refused(message)) => {
            format!("director refused `ipvsadm {line}`: {message}")
        }
        other => with_causes(&other),
    })
}

/// Director counters per real-server node (`conns`, `inpkts`, ..., `active`, `inactive`).
fn director_stats(
    lab: &Lab,
    service: &ServiceSpec,
) -> Result<BTreeMap<String, BTreeMap<String, u64>>, String> {
    let Stats { services, .. } = director(lab, service)?
        .stats()
        .map_err(|e| with_causes(&e))?;
    let mut out = BTreeMap::new();
    for d in services
        .first()
        .map(|s| s.dests.as_slice())
        .unwrap_or_default()
    {
        let Some(rs) = service
            .real_servers
            .iter()
            .find(|r| SocketAddr::new(r.address, r.port) == d.addr)
        else {
            continue;
        };
        let c = &d.counters;
        let m = [
            ("active", d.active),
            ("inactive", d.inactive),
            ("weight", u64::from(d.weight)),
            ("conns", c.conns),
            ("inpkts", c.inpkts),
            ("outpkts", c.outpkts),
            ("inbytes", c.inbytes),
            ("outbytes", c.outbytes),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        out.insert(rs.node.clone(), m);
    }
    Ok(out)
}

/// Do the director's counters hold every expected value?
fn counters_match(
    want: &BTreeMap<String, BTreeMap<String, u64>>,
    got: &BTreeMap<String, BTreeMap<String, u64>>,
) -> bool {
    want.iter().all(|(node, w)| {
        w.iter()
            .all(|(k, v)| got.get(node).and_then(|m| m.get(k)) == Some(v))
    })
}

/// The real-server node each conversation to the service reached, in order.
fn served_by(lab: &Lab, report: &PathReport) -> Vec<Option<String>> {
    let is_rs = |node: &str| {
        lab.state
            .nodes
            .iter()
            .any(|n| n.name == node && n.role == Role::Realserver)
    };
    report
        .conversations
        .iter()
        .filter(|c| c.title.starts_with("TCP ") || c.title.starts_with("UDP "))
        .map(|c| {
            c.journeys
                .iter()
                .filter(|j| j.c2s)
                .flat_map(|j| j.arrived.iter().chain(j.handed_to.iter()))
                .find(|h| is_rs(&h.node))
                .map(|h| h.node.clone())
        })
        .collect()
}

fn check_expectations(
    scenario: &Scenario,
    lab: &Lab,
    report: &PathReport,
    ctx: Tally,
    counters: Result<BTreeMap<String, BTreeMap<String, u64>>, String>,
    result: &mut ScenarioResult,
) {
    let e = &scenario.expect;
    let f = &mut result.failures;
    for (i, t) in ctx.transfers.iter().enumerate() {
        match (t, e.transfer) {
            (Err(why), _) => f.push(format!("transfer {}: {why}", i + 1)),
            (Ok(got), Some(want)) if *got != want => f.push(format!(
                "transfer {} ended {got:?}, expected {want:?}",
                i + 1
            )),
            (Ok(TransferOutcome::Reset), None) => f.push(format!(
                "transfer {} was reset (say expect.transfer = \"reset\" if that is the point)",
                i + 1
            )),
            _ => {}
        }
    }
    if e.transfer.is_some() && ctx.transfers.is_empty() {
        f.push("expect.transfer is set but no transfer step ran".to_owned());
    }
    if ctx.failed != e.failed {
        f.push(format!(
            "{} of {} requests failed, expected {}",
            ctx.failed, ctx.requests, e.failed
        ));
    }
    let served = served_by(lab, report);
    if let Some(want) = &e.responses {
        let mut got: BTreeMap<String, u32> = BTreeMap::new();
        for s in served.iter().flatten() {
            *got.entry(s.clone()).or_default() += 1;
        }
        let nodes: std::collections::BTreeSet<&String> = want.keys().chain(got.keys()).collect();
        for n in nodes {
            let (w, g) = (
                want.get(n).copied().unwrap_or(0),
                got.get(n).copied().unwrap_or(0),
            );
            if w.abs_diff(g) > e.tolerance {
                f.push(format!(
                    "{n} got {g} connections, expected {w}{}",
                    if e.tolerance > 0 {
                        format!(" ± {}", e.tolerance)
                    } else {
                        String::new()
                    }
                ));
            }
        }
    }
    if let Some(want) = &e.sequence {
        let got: Vec<String> = served
            .iter()
            .map(|s| s.clone().unwrap_or_else(|| "none".to_owned()))
            .collect();
        if &got != want {
            f.push(format!(
                "servers in order: got [{}], expected [{}]",
                got.join(", "),
                want.join(", ")
            ));
        }
    }
    if e.payload_intact {
        // The ends are the nodes requests were sent from and the real servers.
        let client_nodes: Vec<&str> = scenario
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::Request { from, .. } => Some(from.as_str()),
                _ => None,
            })
            .collect();
        let is_rs = |node: &str| {
            lab.state
                .nodes
                .iter()
                .any(|n| n.name == node && n.role == Role::Realserver)
        };
        // Only conversations a real server took part in: a refused request carries its
        // payload no further than the director, as it should.
        let served = report.conversations.iter().filter(|c| {
            c.journeys
                .iter()
                .any(|j| j.arrived.iter().chain(&j.handed_to).any(|h| is_rs(&h.node)))
        });
        for c in served {
            for j in c
                .journeys
                .iter()
                .filter(|j| j.payload_len > 0 && j.icmp_error.is_none())
            {
                let ok = if j.c2s && client_nodes.contains(&j.first.node.as_str()) {
                    j.arrived.iter().chain(&j.handed_to).any(|h| is_rs(&h.node))
                } else if !j.c2s && is_rs(&j.first.node) {
                    j.arrived
                        .iter()
                        .any(|h| client_nodes.contains(&h.node.as_str()))
                } else {
                    true
                };
                if !ok {
                    f.push(format!(
                        "{}: a {}-byte payload sent at {} never arrived unchanged at the other end",
                        c.title, j.payload_len, j.first
                    ));
                }
            }
        }
    }
    if let Some(name) = &e.icmp {
        let seen = report
            .conversations
            .iter()
            .flat_map(|c| c.journeys.iter())
            .any(|j| j.icmp_error.as_deref() == Some(name.as_str()));
        if !seen {
            f.push(format!("no ICMP {name} in the path"));
        }
    }
    if !e.counters.is_empty() {
        match counters {
            Err(msg) => f.push(format!("reading director counters: {msg}")),
            Ok(got) => {
                for (node, want) in &e.counters {
                    for (k, w) in want {
                        let g = got.get(node).and_then(|m| m.get(k)).copied();
                        if g != Some(*w) {
                            let mut s = String::new();
                            let _ = write!(
                                s,
                                "director counter {k} of {node}: got {}, expected {w}",
                                g.map_or("none".to_owned(), |g| g.to_string())
                            );
                            f.push(s);
                        }
                    }
                }
            }
        }
    }
}

/// A UDP socket bound to `addr`, a fixed port a previous step used too. That step's socket
/// is closed, but a child another thread of this process forks at that moment (the other
/// scenario's daemons, `jobs = 2`) holds a copy of it until its exec, and the port stays
/// bound for that long: EADDRINUSE is waited out, up to 3 s.
fn bind_udp(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        match std::net::UdpSocket::bind(addr) {
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario_in(dir: &Path, body: &str) -> (PathBuf, Scenario) {
        let topo_dir = dir.join("topologies");
        std::fs::create_dir_all(&topo_dir).unwrap();
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../topologies/nat-topology.toml"),
            topo_dir.join("nat-topology.toml"),
        )
        .unwrap();
        let sdir = dir.join("scenarios");
        std::fs::create_dir_all(&sdir).unwrap();
        let p = sdir.join("x.toml");
        let text = format!("description = \"d\"\ntopology = \"nat-topology\"\n{body}");
        std::fs::write(&p, &text).unwrap();
        let s = Scenario::parse(&p, &text).unwrap();
        (p, s)
    }

    #[test]
    fn service_overrides_land_in_the_topology_given_to_up() {
        let dir = tempfile::tempdir().unwrap();
        let (p, s) = scenario_in(
            dir.path(),
            "[service]\nscheduler = \"wlc\"\npersistence = 60\nweights = { rs2 = 3 }\nwithout = [\"rs1\"]\n",
        );
        let out = write_topology(&p, &s, "unit-override").unwrap();
        let topo = lvslab_netns::Topology::load(&out).unwrap();
        let _ = std::fs::remove_file(&out);
        let svc = &topo.services[0];
        assert_eq!(svc.scheduler, lvslab_netns::Scheduler::Wlc);
        assert_eq!(svc.persistence, Some(60));
        assert_eq!(svc.real_servers.len(), 1);
        assert_eq!(
            (
                svc.real_servers[0].node.as_str(),
                svc.real_servers[0].weight
            ),
            ("rs2", 3)
        );
    }

    #[test]
    fn an_override_for_an_unknown_server_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let (p, s) = scenario_in(dir.path(), "[service]\nweights = { rs9 = 1 }\n");
        let e = write_topology(&p, &s, "unit-unknown")
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.toml:4:13: error: "), "{e}");
        assert!(e.contains("\"rs9\"") && e.contains("rs1, rs2"), "{e}");
    }

    #[test]
    fn lab_names_are_valid_and_distinct() {
        let a = lab_name("sched-lblcr-very-long-name", 0);
        let b = lab_name("sched-lblcr-very-long-name", 1);
        assert_ne!(a, b);
        assert!(lvslab_netns::topology::valid_name(&a), "{a}");
    }
}
