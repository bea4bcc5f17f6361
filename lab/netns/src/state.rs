//! Lab state: what `up` made (namespaces, interfaces, daemons), saved in
//! /run/lvslab/<lab>/state.json so `down`, `status` and other helpers can find it.
use std::fs::OpenOptions;
use std::io::Read;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};
use crate::label::Label;
use crate::netns;
use crate::topology::{valid_name, Role, RouteSpec, Topology};

/// Root of all lab run dirs.
pub const RUN_ROOT: &str = "/run/lvslab";
/// Every namespace lvslab makes starts with this.
pub const NETNS_PREFIX: &str = "lvs-";

/// An Ethernet address: the balancer core's type, serialised as `02:00:00:00:01:02`.
pub use lvslab_core::Mac;

/// What the other end of an interface is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum Peer {
    /// A veth link straight to another node.
    Link {
        /// Peer node.
        node: String,
        /// Peer interface.
        iface: String,
    },
    /// A port of a LAN bridge in the switch namespace.
    Lan {
        /// LAN (bridge) name.
        lan: String,
        /// Port device name in the switch namespace.
        port: String,
    },
}

/// One interface as built.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IfaceInfo {
    /// Name inside the node (`eth0`).
    pub name: String,
    /// Interface index inside the node's namespace.
    pub ifindex: u32,
    /// Its MAC address (lvslab assigns them, so they are stable across runs).
    pub mac: Mac,
    /// Addresses with prefix.
    pub addresses: Vec<IpNet>,
    /// LVS role label (CIP, GWIP, DIP, RIP1...) of the first address.
    pub label: Option<Label>,
    /// Labels of the further addresses, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more_labels: Vec<Label>,
    /// What it is wired to.
    pub peer: Peer,
}

/// One node as built.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Node name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Namespace name (`lvs-<lab>-<node>`).
    pub netns: String,
    /// Interfaces other than lo.
    pub interfaces: Vec<IfaceInfo>,
    /// Addresses put on lo (DR/TUN VIPs).
    pub lo_addresses: Vec<IpNet>,
    /// Static routes.
    pub routes: Vec<RouteSpec>,
}

impl NodeInfo {
    /// The interface with this name.
    pub fn iface(&self, name: &str) -> Option<&IfaceInfo> {
        self.interfaces.iter().find(|i| i.name == name)
    }

    /// The interface carrying `label` (e.g. `DIP`).
    pub fn iface_by_label(&self, label: Label) -> Option<&IfaceInfo> {
        self.interfaces.iter().find(|i| i.label == Some(label))
    }

    /// The interface whose subnet contains `addr` (where a packet to it leaves).
    pub fn iface_towards(&self, addr: IpAddr) -> Option<&IfaceInfo> {
        self.interfaces
            .iter()
            .find(|i| i.addresses.iter().any(|n| n.contains(&addr)))
    }
}

/// A daemon started by the lab.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DaemonInfo {
    /// Short unique name, e.g. `serve-rs1`; also the log file stem.
    pub name: String,
    /// Node whose namespace it runs in.
    pub node: String,
    /// Process id.
    pub pid: u32,
    /// Kernel start time (clock ticks since boot) so a recycled pid is never signalled.
    pub start_time: u64,
    /// Command line.
    pub argv: Vec<String>,
    /// Log file (stdout and stderr).
    pub log: PathBuf,
}

impl DaemonInfo {
    /// Whether this very process is still running.
    pub fn alive(&self) -> bool {
        proc_start_time(self.pid) == Some(self.start_time)
    }
}

/// Everything `up` made, as stored in state.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabState {
    /// Lab name.
    pub lab: String,
    /// The topology it was built from (a copy, so later edits of the file do not matter).
    pub topology: Topology,
    /// Every namespace made (nodes and switch), to delete on `down`.
    pub netns: Vec<String>,
    /// The hidden switch namespace holding LAN bridges, if any.
    pub switch_netns: Option<String>,
    /// Nodes as built.
    pub nodes: Vec<NodeInfo>,
    /// Daemons started.
    pub daemons: Vec<DaemonInfo>,
    /// Unix time in ms when `up` started.
    pub created_unix_ms: u64,
    /// False while `up` is still building.
    pub complete: bool,
    /// The balancer behind its director (state files from before backends read as
    /// userspace).
    #[serde(default)]
    pub backend: crate::Backend,
}

/// A lab that is (being) up: its state plus where it lives.
#[derive(Debug, Clone)]
pub struct Lab {
    /// The saved state.
    pub state: LabState,
}

/// Run dir of a lab.
pub fn run_dir(lab: &str) -> PathBuf {
    Path::new(RUN_ROOT).join(lab)
}

/// Namespace name of a node.
pub fn netns_name(lab: &str, node: &str) -> String {
    format!("{NETNS_PREFIX}{lab}-{node}")
}

/// Namespace name of a lab's hidden switch.
pub fn switch_netns_name(lab: &str) -> String {
    format!("{NETNS_PREFIX}{lab}-sw")
}

/// Check a lab name is usable in paths and namespace names.
pub fn check_lab_name(lab: &str) -> Result<()> {
    if valid_name(lab) {
        Ok(())
    } else {
        Err(Error::Msg(format!(
            "lab name {lab:?} cannot be used\n  help: use lower-case letters, digits, '-' or '_' (at most 32), e.g. --name nat2"
        )))
    }
}

/// Names of labs with a state file, sorted.
pub fn list_labs() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(RUN_ROOT)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("state.json").is_file())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    v.sort();
    v
}

impl Lab {
    /// Load the state of a running lab.
    pub fn load(lab: &str) -> Result<Lab> {
        let p = run_dir(lab).join("state.json");
        let text = std::fs::read_to_string(&p).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                let up = list_labs();
                Error::Msg(format!(
                    "lab {lab:?} is not up (no {})\n  help: {}",
                    p.display(),
                    if up.is_empty() {
                        "start it with `lvslab up TOPOLOGY --name NAME`".to_string()
                    } else {
                        format!("labs that are up: {}", up.join(", "))
                    }
                ))
            } else {
                Error::Io {
                    context: format!("read {}", p.display()),
                    error: e,
                }
            }
        })?;
        let state: LabState = serde_json::from_str(&text).map_err(|e| {
            Error::Msg(format!(
                "{} is corrupt: {e}\n  help: `lvslab down --all` removes leftovers",
                p.display()
            ))
        })?;
        Ok(Lab { state })
    }

    /// Lab name.
    pub fn name(&self) -> &str {
        &self.state.lab
    }

    /// Run dir (/run/lvslab/<lab>).
    pub fn run_dir(&self) -> PathBuf {
        run_dir(&self.state.lab)
    }

    /// The node with this name.
    pub fn node(&self, name: &str) -> Result<&NodeInfo> {
        self.state
            .nodes
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| {
                let names: Vec<&str> = self.state.nodes.iter().map(|n| n.name.as_str()).collect();
                Error::Msg(format!(
                    "lab {} has no node {name:?}\n  help: nodes are: {}",
                    self.state.lab,
                    names.join(", ")
                ))
            })
    }

    /// Namespace name of a node (error if unknown).
    pub fn netns_of(&self, node: &str) -> Result<String> {
        Ok(self.node(node)?.netns.clone())
    }

    /// Write state.json atomically.
    pub fn save(&self) -> Result<()> {
        let dir = self.run_dir();
        std::fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
        let tmp = dir.join(format!(".state.json.{}", std::process::id()));
        let text = serde_json::to_string_pretty(&self.state)
            .map_err(|e| Error::Msg(format!("serialise state: {e}")))?;
        std::fs::write(&tmp, text).ctx(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, dir.join("state.json"))
            .ctx(|| format!("write {}/state.json", dir.display()))
    }

    /// Start `cmd` as a daemon in `node`'s namespace, with stdout/stderr in `<run dir>/<name>.log`,
    /// record its pid in the state, and (if `wait_ready`) wait until it calls
    /// [`netns::notify_ready`] (5 s at most).
    pub fn spawn_daemon(
        &mut self,
        node: &str,
        name: &str,
        cmd: Command,
        wait_ready: bool,
    ) -> Result<u32> {
        let ns = self.netns_of(node)?;
        let log = self.run_dir().join(format!("{name}.log"));
        let logf = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .ctx(|| format!("open {}", log.display()))?;
        let argv: Vec<String> = std::iter::once(cmd.get_program())
            .chain(cmd.get_args())
            .map(|s| s.to_string_lossy().to_string())
            .collect();
        let mut cmd = netns::command_in(&ns, cmd)?;
        cmd.stdin(Stdio::null())
            .stdout(logf.try_clone().ctx(|| "dup log fd".into())?)
            .stderr(logf);
        let ready: Option<(OwnedFd, OwnedFd)> = if wait_ready {
            Some(nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(|| "pipe".into())?)
        } else {
            None
        };
        const CHILD_FD: i32 = 3;
        if let Some((_, w)) = &ready {
            let wfd = w.as_raw_fd();
            cmd.env(netns::READY_FD_ENV, CHILD_FD.to_string());
            // SAFETY: only async-signal-safe calls (dup2, fcntl, setsid) between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    if wfd == CHILD_FD {
                        if libc::fcntl(wfd, libc::F_SETFD, 0) < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    } else if libc::dup2(wfd, CHILD_FD) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        // SAFETY: setsid and sigprocmask are async-signal-safe. setsid detaches the daemon
        // from our terminal; the empty mask undoes whatever signals the caller holds back
        // (`up` holds Ctrl-C while it builds), so `down` can always stop the daemon.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                let mut none = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
                libc::sigemptyset(none.as_mut_ptr());
                libc::sigprocmask(libc::SIG_SETMASK, none.as_ptr(), std::ptr::null_mut());
                Ok(())
            });
        }
        let child = cmd.spawn().ctx(|| format!("start {name} in {ns}"))?;
        let pid = child.id();
        let start_time = proc_start_time(pid).unwrap_or(0);
        self.state.daemons.push(DaemonInfo {
            name: name.to_string(),
            node: node.to_string(),
            pid,
            start_time,
            argv,
            log: log.clone(),
        });
        self.save()?;
        if let Some((r, w)) = ready {
            drop(w);
            wait_ready_fd(r, Duration::from_secs(5)).map_err(|why| {
                let tail = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = tail
                    .lines()
                    .rev()
                    .take(5)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                Error::Msg(format!(
                    "{name} (pid {pid}) {why}; log {}:\n{}",
                    log.display(),
                    tail.join("\n")
                ))
            })?;
        }
        // The child is reaped by init once we exit; keep no handle.
        drop(child);
        Ok(pid)
    }

    /// Stop every daemon of the lab (SIGTERM, then SIGKILL after 1 s), newest first.
    pub fn stop_daemons(&mut self) {
        let alive: Vec<DaemonInfo> = self
            .state
            .daemons
            .iter()
            .rev()
            .filter(|d| d.alive())
            .cloned()
            .collect();
        stop_pids(alive.iter().map(|d| (d.pid, d.start_time)).collect());
        self.state.daemons.clear();
    }

    /// Tear the lab down: daemons, namespaces, run dir. Returns the namespaces removed.
    pub fn down(mut self) -> Result<Vec<String>> {
        self.stop_daemons();
        // What the daemons left behind: keepalived's VRRP child outlives its parent when
        // the parent needs the whole second to shut down and is killed, and deleting a
        // namespace does not end the processes in it. Never the namespace this process runs
        // in: a state file naming it by mistake must not make `down` stop the host's processes.
        let ino = |p: &std::path::Path| {
            std::fs::metadata(p)
                .ok()
                .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        };
        let own = ino(std::path::Path::new("/proc/self/ns/net"));
        let inodes: Vec<u64> = self
            .state
            .netns
            .iter()
            .filter_map(|n| ino(&netns::path(n)))
            .filter(|i| Some(*i) != own)
            .collect();
        stop_pids(pids_in_netns(&inodes));
        let mut removed = Vec::new();
        let mut first_err = None;
        for ns in &self.state.netns {
            if netns::exists(ns) {
                match netns::delete(ns) {
                    Ok(()) => removed.push(ns.clone()),
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                }
            }
        }
        let _ = std::fs::remove_dir_all(self.run_dir());
        first_err.map_or(Ok(removed), Err)
    }
}

/// Remove every lab, including leftovers whose state is gone (namespaces named `lvs-*`, and
/// processes still running inside them). Returns what was removed.
pub fn down_all() -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for lab in list_labs() {
        if let Ok(l) = Lab::load(&lab) {
            removed.extend(l.down()?);
        }
    }
    let leftovers = netns::list_prefixed(NETNS_PREFIX);
    let inodes: Vec<u64> = leftovers
        .iter()
        .filter_map(|n| std::fs::metadata(netns::path(n)).ok())
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .collect();
    stop_pids(pids_in_netns(&inodes));
    for ns in leftovers {
        netns::delete(&ns)?;
        removed.push(ns);
    }
    if let Ok(rd) = std::fs::read_dir(RUN_ROOT) {
        for e in rd.flatten() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
    Ok(removed)
}

/// Processes whose network namespace is one of `inodes` (found through /proc/PID/ns/net).
fn pids_in_netns(inodes: &[u64]) -> Vec<(u32, u64)> {
    if inodes.is_empty() {
        return Vec::new();
    }
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::metadata(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|m| inodes.contains(&std::os::unix::fs::MetadataExt::ino(&m)))
        })
        .filter_map(|pid| Some((pid, proc_start_time(pid)?)))
        .collect()
}

fn stop_pids(pids: Vec<(u32, u64)>) {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    for (pid, _) in &pids {
        let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(1);
    let still = |p: &(u32, u64)| proc_start_time(p.0) == Some(p.1) && !is_zombie(p.0);
    while pids.iter().any(still) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    for p in pids.iter().filter(|p| still(p)) {
        let _ = kill(Pid::from_raw(p.0 as i32), Signal::SIGKILL);
    }
}

fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; fields after the closing paren are fixed.
    let rest = &s[s.rfind(')')? + 2..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// Kernel start time of a process (field 22 of /proc/PID/stat), to tell it from a recycled pid.
pub fn proc_start_time(pid: u32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

fn is_zombie(pid: u32) -> bool {
    stat_fields(pid)
        .and_then(|f| f.first().cloned())
        .is_some_and(|s| s == "Z")
}

fn wait_ready_fd(r: OwnedFd, timeout: Duration) -> std::result::Result<(), String> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let mut fds = [PollFd::new(r.as_fd(), PollFlags::POLLIN)];
    let ms = PollTimeout::try_from(timeout.as_millis() as i32).unwrap_or(PollTimeout::MAX);
    match poll(&mut fds, ms) {
        Ok(0) => {
            return Err(format!(
                "did not report ready within {} s",
                timeout.as_secs()
            ))
        }
        Ok(_) => {}
        Err(e) => return Err(format!("wait for readiness: {e}")),
    }
    let mut f = std::fs::File::from(r);
    let mut b = [0u8; 1];
    match f.read(&mut b) {
        Ok(1) => Ok(()),
        _ => Err("exited before it was ready".to_string()),
    }
}
