//! Lab state: what `up` made (namespaces, interfaces, daemons), saved in
//! /run/lvslab/<lab>/state.json so `down`, `status` and other helpers can find it.
use std::fs::{File, OpenOptions};
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
/// The entry of [`RUN_ROOT`] that belongs to lvslab's VM (lvslab-vm's run dir), not to a lab:
/// no lab may take this name, and `down --all` leaves it to the VM's own teardown, which
/// needs the qemu pid file in it to stop the VM.
pub const VM_RUN_DIR: &str = "vm";
/// Environment variable every lab daemon gets, naming its lab: `down` does not need it, but
/// it lets anyone (the crash tests, a user with `grep -z /proc/*/environ`) tell a lab's
/// processes from the host's even after their namespace is gone.
pub const LAB_ENV: &str = "LVSLAB_LAB";
/// Directory in a lab's run dir where each daemon registers itself between fork and exec,
/// before it can do anything in the lab (see [`Lab::spawn_daemon`]).
const PROCS_DIR: &str = "procs";
/// Created in [`PROCS_DIR`] by `down` before it reads the registrations: a child that
/// registers afterwards sees it and exits instead of exec'ing.
const CLOSED: &str = ".closed";

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
    if lab == VM_RUN_DIR {
        Err(Error::Msg(format!(
            "lab name {lab:?} is reserved: {RUN_ROOT}/{VM_RUN_DIR} is lvslab's VM\n  help: pick another name with --name, e.g. --name {lab}1"
        )))
    } else if valid_name(lab) {
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
        // The registry is made before the fork so the child only has to create one file in it.
        let procs = self.run_dir().join(PROCS_DIR);
        std::fs::create_dir_all(&procs).ctx(|| format!("create {}", procs.display()))?;
        let procs_fd: OwnedFd = File::open(&procs)
            .ctx(|| format!("open {}", procs.display()))?
            .into();
        let mut cmd = netns::command_in(&ns, cmd)?;
        cmd.env(LAB_ENV, self.name());
        // SAFETY: register_self makes only async-signal-safe calls (getpid, openat, open,
        // read, write, close, faccessat, unlinkat) on stack buffers; the fd lives in the closure.
        unsafe {
            cmd.pre_exec(move || register_self(procs_fd.as_raw_fd()));
        }
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
        let child = cmd.spawn().map_err(|e| {
            if e.raw_os_error() == Some(libc::ESHUTDOWN) {
                Error::Msg(format!(
                    "lab {} is being taken down: {name} was not started",
                    self.name()
                ))
            } else {
                Error::Io {
                    context: format!("start {name} in {ns}"),
                    error: e,
                }
            }
        })?;
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
    ///
    /// Every process is stopped before any namespace is deleted: a deleted namespace hides
    /// the processes still in it from the namespace scan below. Daemons are found three
    /// ways, each covering what the others miss: the state's list (what `up` recorded), the
    /// registry (a daemon forked by an `up` killed before it could record it), and the scan
    /// of /proc/PID/ns/net (what the daemons forked themselves, `lvslab exec` commands).
    pub fn down(mut self) -> Result<Vec<String>> {
        stop_registered(&self.run_dir());
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
        stop_all_in_netns(&inodes);
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

/// Remove what is left of lab `lab` when it has a run dir but no state file: an `up`
/// killed between creating the run dir and its first save (nothing else exists yet then:
/// the state is saved before the first namespace is made). Returns whether there was such
/// a run dir.
pub fn remove_stateless(lab: &str) -> Result<bool> {
    check_lab_name(lab)?;
    let dir = run_dir(lab);
    if !dir.is_dir() || dir.join("state.json").exists() {
        return Ok(false);
    }
    stop_registered(&dir);
    std::fs::remove_dir_all(&dir).ctx(|| format!("remove {}", dir.display()))?;
    Ok(true)
}

/// Remove every lab, including leftovers whose state is gone (namespaces named `lvs-*`, and
/// processes still running inside them). Returns what was removed. Leaves [`VM_RUN_DIR`] to
/// the VM's own teardown.
pub fn down_all() -> Result<Vec<String>> {
    let mut removed = Vec::new();
    let mut first_err = None;
    // One lab failing to go down must not keep the others up.
    for lab in list_labs() {
        if let Ok(l) = Lab::load(&lab) {
            match l.down() {
                Ok(r) => removed.extend(r),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
    }
    // Run dirs without a readable state: an `up` killed before its first save, a corrupt
    // state file. Their registered daemons go first, while their namespaces still exist.
    let dirs: Vec<PathBuf> = std::fs::read_dir(RUN_ROOT)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name() != VM_RUN_DIR)
        .map(|e| e.path())
        .collect();
    for d in &dirs {
        stop_registered(d);
    }
    let leftovers = netns::list_prefixed(NETNS_PREFIX);
    let own = std::fs::metadata("/proc/self/ns/net")
        .ok()
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m));
    let inodes: Vec<u64> = leftovers
        .iter()
        .filter_map(|n| std::fs::metadata(netns::path(n)).ok())
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .filter(|i| Some(*i) != own)
        .collect();
    stop_all_in_netns(&inodes);
    for ns in leftovers {
        match netns::delete(&ns) {
            Ok(()) => removed.push(ns),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    for d in dirs {
        let _ = std::fs::remove_dir_all(d);
    }
    first_err.map_or(Ok(removed), Err)
}

/// Called in a daemon's child between fork and exec: records `<pid>` (holding the child's
/// /proc/self/stat, so `down` can tell it from a recycled pid) in the lab's registry
/// `dirfd`, then exits the child (ESHUTDOWN) if `down` has closed the registry. Together
/// with [`stop_registered`], which closes before it reads, no daemon can slip past `down`:
/// either its registration is there when `down` reads, or it sees the close and never runs.
/// A run dir already removed makes the `openat` fail, which also stops the child.
///
/// Only async-signal-safe calls on stack buffers: the parent may have other threads.
fn register_self(dirfd: std::os::fd::RawFd) -> std::io::Result<()> {
    // SAFETY (whole body): raw libc calls on NUL-terminated stack buffers and fds we own.
    let pid = unsafe { libc::getpid() } as u32;
    let mut name = [0u8; 16];
    let mut digits = [0u8; 10];
    let mut n = 0;
    let mut v = pid;
    loop {
        digits[n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    name[..n].copy_from_slice(&digits[..n]);
    name[..n].reverse();
    let name_ptr = name.as_ptr().cast::<libc::c_char>();
    let fd = unsafe {
        libc::openat(
            dirfd,
            name_ptr,
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
            0o644,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut stat = [0u8; 1024];
    let sfd = unsafe {
        libc::open(
            c"/proc/self/stat".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    let len = if sfd >= 0 {
        let r = unsafe { libc::read(sfd, stat.as_mut_ptr().cast(), stat.len()) };
        unsafe { libc::close(sfd) };
        r
    } else {
        -1
    };
    let wrote = if len > 0 {
        unsafe { libc::write(fd, stat.as_ptr().cast(), len as usize) }
    } else {
        -1
    };
    unsafe { libc::close(fd) };
    if len <= 0 || wrote != len {
        unsafe { libc::unlinkat(dirfd, name_ptr, 0) };
        return Err(std::io::Error::from_raw_os_error(libc::EIO));
    }
    let closed = [b'.', b'c', b'l', b'o', b's', b'e', b'd', 0];
    if unsafe { libc::faccessat(dirfd, closed.as_ptr().cast(), libc::F_OK, 0) } == 0 {
        unsafe { libc::unlinkat(dirfd, name_ptr, 0) };
        return Err(std::io::Error::from_raw_os_error(libc::ESHUTDOWN));
    }
    Ok(())
}

/// Close the registry of the lab whose run dir is `run_dir` (no daemon can start after this)
/// and stop every process registered in it that is still the process that registered.
fn stop_registered(run_dir: &Path) {
    let procs = run_dir.join(PROCS_DIR);
    if !procs.is_dir() {
        return;
    }
    // Closed before reading: see register_self for why this order leaves no gap.
    let _ = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(procs.join(CLOSED));
    let pids: Vec<(u32, u64)> = std::fs::read_dir(&procs)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let text = std::fs::read_to_string(e.path()).ok()?;
            let start = parse_start_time(&text)?;
            (proc_start_time(pid) == Some(start)).then_some((pid, start))
        })
        .collect();
    stop_pids(pids);
}

/// Stop every process in the namespaces `inodes`, looking again until none is left (a
/// daemon may fork while it is being stopped), at most a few rounds.
fn stop_all_in_netns(inodes: &[u64]) {
    for _ in 0..5 {
        let pids = pids_in_netns(inodes);
        if pids.is_empty() {
            return;
        }
        stop_pids(pids);
    }
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
    split_stat(&s)
}

/// The fields after the command name of a /proc/PID/stat text.
fn split_stat(s: &str) -> Option<Vec<String>> {
    // The command name may contain spaces; fields after the closing paren are fixed.
    let rest = s.get(s.rfind(')')? + 2..)?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// Start time in a saved /proc/PID/stat text (as [`proc_start_time`] reads it live).
fn parse_start_time(stat: &str) -> Option<u64> {
    split_stat(stat)?.get(19)?.parse().ok()
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Child;

    /// `sleep 30` registered in `run_dir`'s registry as spawn_daemon registers a daemon, but
    /// left in this namespace: a child caught between fork and setns looks just like it.
    fn registered_sleep(run_dir: &Path) -> std::io::Result<Child> {
        let procs = run_dir.join(PROCS_DIR);
        std::fs::create_dir_all(&procs)?;
        let fd: OwnedFd = File::open(&procs)?.into();
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        // SAFETY: register_self is async-signal-safe (see there).
        unsafe {
            cmd.pre_exec(move || register_self(fd.as_raw_fd()));
        }
        cmd.spawn()
    }

    fn exited_within(child: &mut Child, secs: u64) -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if child.try_wait().expect("wait").is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    #[test]
    fn down_stops_a_registered_process_wherever_it_runs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut child = registered_sleep(dir.path()).expect("spawn");
        let reg = dir.path().join(PROCS_DIR).join(child.id().to_string());
        let text = std::fs::read_to_string(&reg).expect("registration");
        assert_eq!(parse_start_time(&text), proc_start_time(child.id()));
        stop_registered(dir.path());
        let gone = exited_within(&mut child, 10);
        if !gone {
            let _ = child.kill();
        }
        assert!(gone, "the registered sleep survived stop_registered");
    }

    #[test]
    fn a_child_registering_after_down_closed_the_registry_never_runs() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join(PROCS_DIR)).expect("mkdir");
        stop_registered(dir.path());
        match registered_sleep(dir.path()) {
            Ok(mut c) => {
                let _ = c.kill();
                let _ = c.wait();
                panic!("a daemon started after down closed its registry");
            }
            Err(e) => assert_eq!(e.raw_os_error(), Some(libc::ESHUTDOWN), "{e}"),
        }
        let left: Vec<_> = std::fs::read_dir(dir.path().join(PROCS_DIR))
            .expect("read")
            .flatten()
            .map(|e| e.file_name())
            .filter(|n| n != CLOSED)
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn a_child_of_a_removed_run_dir_never_runs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let procs = dir.path().join(PROCS_DIR);
        std::fs::create_dir_all(&procs).expect("mkdir");
        let fd: OwnedFd = File::open(&procs).expect("open").into();
        std::fs::remove_dir_all(&procs).expect("rm");
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        // SAFETY: as in registered_sleep.
        unsafe {
            cmd.pre_exec(move || register_self(fd.as_raw_fd()));
        }
        if let Ok(mut c) = cmd.spawn() {
            let _ = c.kill();
            let _ = c.wait();
            panic!("a daemon started in a lab whose run dir was removed");
        }
    }

    #[test]
    fn a_stale_registration_never_signals_the_pid_now() {
        // The registration names a live process, with another start time: a recycled pid.
        let dir = tempfile::tempdir().expect("tempdir");
        let procs = dir.path().join(PROCS_DIR);
        std::fs::create_dir_all(&procs).expect("mkdir");
        let mut child = Command::new("sleep").arg("30").spawn().expect("spawn");
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id())).expect("stat");
        let mut f = split_stat(&stat).expect("fields");
        let start: u64 = f[19].parse().expect("start");
        f[19] = (start + 1).to_string();
        let head = &stat[..stat.rfind(')').expect(")") + 2];
        std::fs::write(
            procs.join(child.id().to_string()),
            format!("{head}{}", f.join(" ")),
        )
        .expect("write");
        stop_registered(dir.path());
        let survived = !exited_within(&mut child, 1);
        let _ = child.kill();
        let _ = child.wait();
        assert!(survived, "a process with another start time was signalled");
    }

    #[test]
    fn vm_is_not_a_lab_name() {
        let e = check_lab_name(VM_RUN_DIR).unwrap_err().to_string();
        assert!(e.contains("reserved") && e.contains("--name"), "{e}");
    }
}
