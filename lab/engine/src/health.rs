//! Health checking of real servers, the part that needs no sockets: per-server state
//! (up/down, consecutive failures), the transitions keepalived's checkers make, the ipvsadm
//! lines each transition sends through the [`crate::Balancer`] seam, and the state file
//! `lvslab status` and the scenario runner read.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lvslab_netns::{HealthSpec, RealServerSpec, ServiceSpec};
use serde::{Deserialize, Serialize};

use crate::{EngineError, Result};
use lvslab_director::IpvsadmFlag;

/// One real server's health as the state file records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerHealth {
    /// The service, e.g. `TCP 192.168.1.250:80`.
    pub service: String,
    /// The real server's node.
    pub node: String,
    /// RIP:port.
    pub address: SocketAddr,
    /// Whether its checks pass.
    pub up: bool,
    /// When it last changed (or the daemon started), in ms since the Unix epoch.
    pub since_ms: u64,
    /// Consecutive failed checks.
    pub failures: u32,
}

/// The health state file of one director.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthFile {
    /// Every checked real server, in service and file order.
    pub servers: Vec<ServerHealth>,
}

/// Where director `node` of the lab in `run_dir` keeps its health state.
pub fn health_path(run_dir: &Path, node: &str) -> PathBuf {
    run_dir.join(format!("health-{node}.json"))
}

/// Writes `file` atomically (a reader never sees half of it).
pub fn write_health(path: &Path, file: &HealthFile) -> Result<()> {
    let io = |e: std::io::Error| EngineError::HealthState {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let text = serde_json::to_string_pretty(file).map_err(|e| EngineError::HealthState {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let tmp = path.with_extension(format!("json.{}", std::process::id()));
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Every health state file of the lab in `run_dir`, merged; empty when no check runs.
pub fn read_health(run_dir: &Path) -> Result<Vec<ServerHealth>> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir(run_dir) else {
        return Ok(out);
    };
    let mut files: Vec<PathBuf> = dir
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("health-") && n.ends_with(".json"))
        })
        .collect();
    files.sort();
    for p in files {
        let text = std::fs::read_to_string(&p).map_err(|e| EngineError::HealthState {
            path: p.clone(),
            message: e.to_string(),
        })?;
        let f: HealthFile = serde_json::from_str(&text).map_err(|e| EngineError::HealthState {
            path: p.clone(),
            message: e.to_string(),
        })?;
        out.extend(f.servers);
    }
    Ok(out)
}

/// A change of one real server's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Its checks failed more than `retries` times in a row.
    Down,
    /// A check passed again.
    Up,
}

/// One real server's checker state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checker {
    /// Whether it counts as healthy; servers start healthy, as in keepalived.
    pub up: bool,
    /// Consecutive failed checks.
    pub failures: u32,
    retries: u32,
    interval: Duration,
    retry_delay: Duration,
}

impl Checker {
    /// A healthy server checked as `spec` says.
    pub fn new(spec: &HealthSpec) -> Self {
        Self {
            up: true,
            failures: 0,
            retries: spec.retries,
            interval: Duration::from_millis(spec.interval_ms),
            retry_delay: Duration::from_millis(spec.delay_before_retry_ms),
        }
    }

    /// Records one check's result; says whether the server changed state.
    pub fn record(&mut self, ok: bool) -> Option<Transition> {
        if ok {
            self.failures = 0;
            if !self.up {
                self.up = true;
                return Some(Transition::Up);
            }
            return None;
        }
        self.failures = self.failures.saturating_add(1);
        if self.up && self.failures > self.retries {
            self.up = false;
            return Some(Transition::Down);
        }
        None
    }

    /// How long to wait before the next check: a failing but still healthy server is
    /// retried sooner, as keepalived's delay_before_retry does.
    pub fn next_delay(&self) -> Duration {
        if self.up && self.failures > 0 {
            self.retry_delay
        } else {
            self.interval
        }
    }
}

/// A service's real servers under health checking, and the ipvsadm lines their
/// transitions need.
#[derive(Debug, Clone)]
pub struct ServiceHealth {
    /// The service as the topology has it.
    pub spec: ServiceSpec,
    /// One checker per real server, in file order.
    pub checkers: Vec<Checker>,
    /// Whether the sorry server is in the table now.
    pub sorry_active: bool,
}

impl ServiceHealth {
    /// Every real server healthy; `None` when the service has no `health` table.
    pub fn new(spec: &ServiceSpec) -> Option<Self> {
        let h = spec.health.as_ref()?;
        Some(Self {
            checkers: spec.real_servers.iter().map(|_| Checker::new(h)).collect(),
            spec: spec.clone(),
            sorry_active: false,
        })
    }

    fn key(&self) -> String {
        format!(
            "{} {}",
            self.spec.protocol.ipvsadm_flag(),
            SocketAddr::new(self.spec.vip, self.spec.port)
        )
    }

    fn inhibit(&self) -> bool {
        self.spec
            .health
            .as_ref()
            .is_some_and(|h| h.inhibit_on_failure)
    }

    /// The service as the state file names it.
    pub fn label(&self) -> String {
        format!(
            "{} {}",
            self.spec.protocol,
            SocketAddr::new(self.spec.vip, self.spec.port)
        )
    }

    fn dest_line(&self, op: &str, rs: &RealServerSpec, weight: u32) -> String {
        let mut l = format!(
            "{op} {} -r {} {} -w {weight}",
            self.key(),
            SocketAddr::new(rs.address, rs.port),
            self.spec.method.ipvsadm_flag()
        );
        if rs.u_threshold > 0 {
            l.push_str(&format!(" -x {}", rs.u_threshold));
        }
        if rs.l_threshold > 0 {
            l.push_str(&format!(" -y {}", rs.l_threshold));
        }
        l
    }

    /// Records check result `ok` of real server `idx` (file order); returns the
    /// transition, if any, and the ipvsadm lines that apply it, in order.
    pub fn observe(&mut self, idx: usize, ok: bool) -> (Option<Transition>, Vec<String>) {
        let Some(checker) = self.checkers.get_mut(idx) else {
            return (None, Vec::new());
        };
        let t = checker.record(ok);
        let Some(t) = t else {
            return (None, Vec::new());
        };
        let rs = self.spec.real_servers[idx].clone();
        let sorry = self.spec.health.as_ref().and_then(|h| h.sorry_server);
        let healthy = self.checkers.iter().filter(|c| c.up).count();
        let mut lines = Vec::new();
        match t {
            Transition::Down => {
                lines.push(if self.inhibit() {
                    self.dest_line("-e", &rs, 0)
                } else {
                    format!(
                        "-d {} -r {}",
                        self.key(),
                        SocketAddr::new(rs.address, rs.port)
                    )
                });
                if let (Some(s), 0, false) = (sorry, healthy, self.sorry_active) {
                    lines.push(format!(
                        "-a {} -r {s} {} -w 1",
                        self.key(),
                        self.spec.method.ipvsadm_flag()
                    ));
                    self.sorry_active = true;
                }
            }
            Transition::Up => {
                let op = if self.inhibit() { "-e" } else { "-a" };
                lines.push(self.dest_line(op, &rs, rs.weight));
                // The real server is back in before the sorry server leaves: no gap.
                if let (Some(s), true) = (sorry, self.sorry_active) {
                    lines.push(format!("-d {} -r {s}", self.key()));
                    self.sorry_active = false;
                }
            }
        }
        (Some(t), lines)
    }

    /// The state file's rows for this service; `since_ms[i]` is when server `i` changed.
    pub fn rows(&self, since_ms: &[u64]) -> Vec<ServerHealth> {
        self.spec
            .real_servers
            .iter()
            .zip(&self.checkers)
            .enumerate()
            .map(|(i, (rs, c))| ServerHealth {
                service: self.label(),
                node: rs.node.clone(),
                address: SocketAddr::new(rs.address, rs.port),
                up: c.up,
                since_ms: since_ms.get(i).copied().unwrap_or(0),
                failures: c.failures,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lvslab_netns::{HealthCheck, Topology};

    fn service(extra: &str) -> ServiceSpec {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../topologies/nat-topology.toml");
        let text = std::fs::read_to_string(p)
            .expect("shipped topology")
            .replace(
                "method = \"nat\"\n",
                &format!("method = \"nat\"\nhealth = {{ check = \"tcp\", retries = 2{extra} }}\n"),
            );
        Topology::parse("t.toml", text).expect("valid").services[0].clone()
    }

    #[test]
    fn a_server_goes_down_after_retries_plus_one_failures_and_up_after_one_pass() {
        let s = service("");
        let mut c = Checker::new(s.health.as_ref().expect("health"));
        assert_eq!(c.record(false), None);
        assert_eq!(c.next_delay(), Duration::from_millis(200));
        assert_eq!(c.record(false), None);
        assert_eq!(c.record(false), Some(Transition::Down));
        assert_eq!(c.next_delay(), Duration::from_millis(1000));
        assert_eq!(
            c.record(false),
            None,
            "down stays down without a second transition"
        );
        assert_eq!(c.record(true), Some(Transition::Up));
        assert_eq!(c.record(true), None);
        // A pass in between resets the count.
        c.record(false);
        c.record(false);
        c.record(true);
        assert_eq!(c.record(false), None);
        assert!(c.up);
    }

    fn fail(h: &mut ServiceHealth, idx: usize) -> Vec<String> {
        let mut all = Vec::new();
        for _ in 0..3 {
            all.extend(h.observe(idx, false).1);
        }
        all
    }

    #[test]
    fn a_failing_server_is_removed_and_added_back_with_its_weight() {
        let mut h = ServiceHealth::new(&service("")).expect("health");
        assert_eq!(
            fail(&mut h, 1),
            ["-d -t 192.168.1.250:80 -r 192.168.1.203:80"]
        );
        assert_eq!(
            h.observe(1, true),
            (
                Some(Transition::Up),
                vec!["-a -t 192.168.1.250:80 -r 192.168.1.203:80 -m -w 1".to_owned()]
            )
        );
        let l = "-d -t 192.168.1.250:80 -r 192.168.1.203:80";
        lvslab_core::ipvsadm::parse(l).expect(l);
    }

    #[test]
    fn inhibit_on_failure_quiesces_and_restores_the_weight() {
        let mut spec = service(", inhibit_on_failure = true");
        spec.real_servers[0].weight = 3;
        let mut h = ServiceHealth::new(&spec).expect("health");
        assert_eq!(
            fail(&mut h, 0),
            ["-e -t 192.168.1.250:80 -r 192.168.1.201:80 -m -w 0"]
        );
        assert_eq!(
            h.observe(0, true).1,
            ["-e -t 192.168.1.250:80 -r 192.168.1.201:80 -m -w 3"]
        );
    }

    #[test]
    fn the_sorry_server_stands_in_while_no_server_is_healthy() {
        let mut h =
            ServiceHealth::new(&service(", sorry_server = \"192.168.1.210:80\"")).expect("health");
        assert_eq!(
            fail(&mut h, 0),
            ["-d -t 192.168.1.250:80 -r 192.168.1.201:80"]
        );
        let lines = fail(&mut h, 1);
        assert_eq!(
            lines,
            [
                "-d -t 192.168.1.250:80 -r 192.168.1.203:80",
                "-a -t 192.168.1.250:80 -r 192.168.1.210:80 -m -w 1"
            ]
        );
        assert_eq!(
            h.observe(1, true).1,
            [
                "-a -t 192.168.1.250:80 -r 192.168.1.203:80 -m -w 1",
                "-d -t 192.168.1.250:80 -r 192.168.1.210:80"
            ]
        );
        // The other one coming back touches only itself.
        assert_eq!(
            h.observe(0, true).1,
            ["-a -t 192.168.1.250:80 -r 192.168.1.201:80 -m -w 1"]
        );
        for l in lines {
            lvslab_core::ipvsadm::parse(&l).expect(&l);
        }
        let rows = h.rows(&[5, 6]);
        assert!(rows.iter().all(|r| r.up) && rows[1].since_ms == 6);
        assert_eq!(rows[0].service, "TCP 192.168.1.250:80");
        assert_eq!(
            h.spec.health.as_ref().map(|h| &h.check),
            Some(&HealthCheck::Tcp)
        );
    }

    #[test]
    fn state_files_are_merged_per_lab() {
        let dir = std::env::temp_dir().join(format!("lvslab-health-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let h = ServiceHealth::new(&service("")).expect("health");
        write_health(
            &health_path(&dir, "director"),
            &HealthFile {
                servers: h.rows(&[1, 2]),
            },
        )
        .expect("write");
        let got = read_health(&dir).expect("read");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].node, "rs2");
        assert!(read_health(Path::new("/nonexistent/lvslab"))
            .expect("none")
            .is_empty());
    }
}
