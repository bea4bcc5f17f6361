//! The scenario runner: one lab per scenario (unique name), capture on every hop, the
//! steps, then the path compared with its snapshot and the expectations checked. It always
//! takes its lab down, also when a step fails or the runner panics.

use crate::format::{payload_bytes, Backend, Scenario, Step};
use crate::snapshot::{self, Outcome};
use crate::traffic;
use lvslab_capture::normalize::PathReport;
use lvslab_capture::{analyze, CaptureTarget, Hop, LiveCapture, NormalizeOptions, RoleMap};
use lvslab_netns::{Lab, Role, ServiceSpec};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Environment variable the userspace director reads for a deliberate, test-only fault
/// (`nat-source-rewrite`: replies leave the director with the real server's address).
pub const BREAK_ENV: &str = "LVSLAB_BREAK";

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
    /// The `lvslab` executable that brings labs up and down (`lvslab up`/`down`).
    pub lvslab: PathBuf,
    /// Where `captures/<lab>/<scenario>/` go.
    pub captures_dir: PathBuf,
    /// Where `<scenario>.snap` files live.
    pub snapshots_dir: PathBuf,
    /// Overrides every scenario's backend.
    pub backend: Option<Backend>,
    /// A test-only fault for the director (e.g. `nat-source-rewrite`), handed to the
    /// daemons `lvslab up` starts through the [`BREAK_ENV`] environment variable.
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
}

impl ScenarioResult {
    /// Did it pass?
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Takes a lab down when dropped (so a failing or panicking scenario cleans up too).
struct LabGuard<'a> {
    lvslab: &'a Path,
    name: String,
}

impl Drop for LabGuard<'_> {
    fn drop(&mut self) {
        let out = Command::new(self.lvslab)
            .args(["down", &self.name])
            .output();
        if let Ok(o) = out {
            if !o.status.success() {
                tracing::warn!(
                    "lvslab down {} failed: {}",
                    self.name,
                    String::from_utf8_lossy(&o.stderr)
                );
            }
        }
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
    if backend != Backend::Userspace {
        return Err(RunError::Lab(format!(
            "backend {backend} is not available on this host yet; run with --backend userspace"
        )));
    }
    let topo_file = write_topology(path, &scenario, lab)?;
    let guard = lab_up(cfg, &topo_file, lab);
    let _ = std::fs::remove_file(&topo_file);
    let _guard = guard?;
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

    let targets = capture_targets(&lab_state, scenario.capture.nodes.as_deref().unwrap_or(&[]));
    let capture = LiveCapture::start(&targets, scenario.capture.filter.as_deref())?;
    let mut ctx = StepCtx {
        capture: &capture,
        lab: &lab_state,
        service: &service,
        held: Vec::new(),
        failed: 0,
        requests: 0,
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
    capture.wait_quiet(QUIET, QUIET_MAX);
    let counters = director_stats(&lab_state, &service);
    // Held connections close now; their closing handshakes belong to the path.
    let tally = Tally {
        failed: ctx.failed,
        requests: ctx.requests,
    };
    drop(ctx);
    capture.wait_quiet(QUIET, QUIET_MAX);
    let caps = capture.stop()?;
    let run_dir = cfg.captures_dir.join(lab).join(&result.name);
    lvslab_capture::files::write_run_dir(&run_dir, &caps)?;
    // The roles beside the captures let anyone rebuild the path text from the files alone.
    let _ = std::fs::write(run_dir.join("roles.txt"), roles.to_text());
    result.captures = Some(run_dir);
    if let Some(e) = step_err {
        return Err(e);
    }
    let opts = NormalizeOptions {
        arp: scenario.capture.arp,
        ..Default::default()
    };
    let report = analyze(&caps, &roles, opts);
    check_expectations(&scenario, &lab_state, &report, tally, counters, result);
    if scenario.expect.snapshot {
        let snap = snapshot::snap_path(&cfg.snapshots_dir, &result.name);
        let source = format!("scenarios/{}.toml", result.name);
        let outcome = snapshot::check(&snap, &source, &scenario.description, &report.text)?;
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

/// Writes the scenario's topology with its service overrides applied, for `lvslab up`.
/// The scenario's topology with its `[service]` overrides applied, as a typed value.
fn scenario_topology(path: &Path, scenario: &Scenario) -> Result<lvslab_netns::Topology, RunError> {
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

fn lab_up<'a>(cfg: &'a RunnerConfig, topo: &Path, lab: &str) -> Result<LabGuard<'a>, RunError> {
    let mut cmd = Command::new(&cfg.lvslab);
    cmd.arg("up").arg(topo).args(["--name", lab, "--quiet"]);
    match &cfg.break_director {
        Some(b) => cmd.env(BREAK_ENV, b),
        None => cmd.env_remove(BREAK_ENV),
    };
    let out = cmd
        .output()
        .map_err(|e| RunError::Lab(format!("running {} up: {e}", cfg.lvslab.display())))?;
    // From here on the lab may exist (even half-built): the guard removes it.
    let guard = LabGuard {
        lvslab: &cfg.lvslab,
        name: lab.to_owned(),
    };
    if !out.status.success() {
        return Err(RunError::Lab(format!(
            "lvslab up failed for lab {lab}:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(guard)
}

/// Every interface of the given nodes (all nodes when `nodes` is empty) as capture targets.
pub fn capture_targets(lab: &Lab, nodes: &[String]) -> Vec<CaptureTarget> {
    lab.state
        .nodes
        .iter()
        .filter(|n| nodes.is_empty() || nodes.contains(&n.name))
        .flat_map(|n| {
            n.interfaces.iter().map(|i| CaptureTarget {
                netns: n.netns.clone(),
                hop: Hop::new(n.name.clone(), i.name.clone()),
            })
        })
        .collect()
}

/// Role names for the normalizer: interface labels, the service VIP, and MAC owners.
pub fn role_map(lab: &Lab) -> RoleMap {
    let mut roles = RoleMap::new();
    for n in &lab.state.nodes {
        for i in &n.interfaces {
            roles.mac(i.mac, Hop::new(n.name.clone(), i.name.clone()));
            if let Some(label) = &i.label {
                if let Some(a) = i.addresses.first() {
                    roles.label(a.addr(), *label);
                }
            }
        }
    }
    let services = &lab.state.topology.services;
    for (k, s) in services.iter().enumerate() {
        let index = (services.len() > 1).then_some(k as u32 + 1);
        let label = lvslab_netns::Label::new(lvslab_netns::AddrRole::Vip, index);
        roles.label(s.vip, label);
    }
    roles
}

/// Requests sent and failed.
#[derive(Clone, Copy)]
struct Tally {
    failed: u32,
    requests: u32,
}

struct StepCtx<'a> {
    capture: &'a LiveCapture,
    lab: &'a Lab,
    service: &'a ServiceSpec,
    held: Vec<TcpStream>,
    failed: u32,
    requests: u32,
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
            } => {
                let node = self.lab.node(from).map_err(|e| e.to_string())?;
                let target: SocketAddr = if to == "vip" {
                    SocketAddr::new(self.service.vip, self.service.port)
                } else {
                    to.parse().map_err(|_| {
                        format!("`to = {to:?}`: use \"vip\" or ADDR:PORT like \"192.168.1.201:80\"")
                    })?
                };
                let udp = match protocol.as_deref() {
                    Some("udp") => true,
                    Some("tcp") => false,
                    Some(other) => return Err(format!("protocol {other:?}: use tcp or udp")),
                    None => format!("{:?}", self.service.protocol).eq_ignore_ascii_case("udp"),
                };
                let bytes = if payload.is_none() && random.is_none() && !udp {
                    b"GET / HTTP/1.0\r\n\r\n".to_vec()
                } else {
                    payload_bytes(payload.as_deref(), *random)
                };
                for _ in 0..*count {
                    let b = bytes.clone();
                    let hold = *hold;
                    let (reply, stream) = lvslab_netns::netns::run_in(&node.netns, move || {
                        if udp {
                            (traffic::udp_request(target, &b), None)
                        } else {
                            traffic::tcp_request(target, &b, hold)
                        }
                    })
                    .map_err(|e| e.to_string())?;
                    self.requests += 1;
                    if let Some(e) = &reply.error {
                        tracing::debug!("request {} to {target} failed: {e}", self.requests);
                        self.failed += 1;
                    }
                    self.held.extend(stream);
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
                let line = format!(
                    "-e {} {} -r {} {} -w {weight}",
                    proto_flag(self.service),
                    SocketAddr::new(self.service.vip, self.service.port),
                    SocketAddr::new(rs.address, rs.port),
                    method_flag(self.service)
                );
                director_ipvsadm(self.lab, self.service, &line)
            }
            Step::Ipvsadm { line } => director_ipvsadm(self.lab, self.service, line),
            Step::StopServer { node } => {
                let d = self
                    .lab
                    .state
                    .daemons
                    .iter()
                    .find(|d| &d.node == node && d.name.starts_with("serve"))
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
            Step::Release => {
                self.held.clear();
                // Closed connections change schedulers' load: let the closes finish first.
                self.capture.wait_quiet(QUIET, QUIET_MAX);
                Ok(())
            }
            Step::Wait { ms } => {
                std::thread::sleep(Duration::from_millis(*ms));
                Ok(())
            }
        }
    }
}

fn proto_flag(s: &ServiceSpec) -> &'static str {
    if format!("{:?}", s.protocol).eq_ignore_ascii_case("udp") {
        "-u"
    } else {
        "-t"
    }
}

fn method_flag(s: &ServiceSpec) -> &'static str {
    match format!("{:?}", s.method).to_ascii_lowercase().as_str() {
        "dr" => "-g",
        "tun" => "-i",
        _ => "-m",
    }
}

fn control_request(
    lab: &Lab,
    service: &ServiceSpec,
    req: &str,
) -> Result<serde_json::Value, String> {
    let sock = lab
        .run_dir()
        .join(format!("director-{}.sock", service.director));
    let mut s = UnixStream::connect(&sock)
        .map_err(|e| format!("director control socket {}: {e}", sock.display()))?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    s.write_all(req.as_bytes())
        .and_then(|()| s.write_all(b"\n"))
        .map_err(|e| format!("{}: {e}", sock.display()))?;
    let mut line = String::new();
    BufReader::new(&s)
        .read_line(&mut line)
        .map_err(|e| format!("{}: {e}", sock.display()))?;
    serde_json::from_str(&line).map_err(|e| format!("{}: bad answer {line:?}: {e}", sock.display()))
}

fn director_ipvsadm(lab: &Lab, service: &ServiceSpec, line: &str) -> Result<(), String> {
    let req = serde_json::json!({"op": "ipvsadm", "line": line}).to_string();
    let v = control_request(lab, service, &req)?;
    match v.get("result").and_then(|r| r.as_str()) {
        Some("ok") => Ok(()),
        _ => Err(format!(
            "director refused `ipvsadm {line}`: {}",
            v.get("message")
                .and_then(|m| m.as_str())
                .unwrap_or("no message")
        )),
    }
}

/// Director counters per real-server node (`conns`, `inpkts`, ..., `active`, `inactive`).
fn director_stats(
    lab: &Lab,
    service: &ServiceSpec,
) -> Result<BTreeMap<String, BTreeMap<String, u64>>, String> {
    let v = control_request(lab, service, r#"{"op":"stats"}"#)?;
    let mut out = BTreeMap::new();
    let dests = v
        .get("services")
        .and_then(|s| s.as_array())
        .and_then(|a| a.first())
        .and_then(|s| s.get("dests"))
        .and_then(|d| d.as_array())
        .cloned()
        .unwrap_or_default();
    for d in dests {
        let addr = d.get("addr").and_then(|a| a.as_str()).unwrap_or("");
        let Some(rs) = service
            .real_servers
            .iter()
            .find(|r| SocketAddr::new(r.address, r.port).to_string() == addr)
        else {
            continue;
        };
        let mut m = BTreeMap::new();
        for k in ["active", "inactive", "weight"] {
            if let Some(n) = d.get(k).and_then(|x| x.as_u64()) {
                m.insert(k.to_owned(), n);
            }
        }
        if let Some(c) = d.get("counters").and_then(|c| c.as_object()) {
            for (k, x) in c {
                if let Some(n) = x.as_u64() {
                    m.insert(k.clone(), n);
                }
            }
        }
        out.insert(rs.node.clone(), m);
    }
    Ok(out)
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
