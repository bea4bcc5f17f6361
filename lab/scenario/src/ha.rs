//! Scenario steps for director pairs: kill or restart a director, fail over, wait for a
//! VRRP state or for sync, and a long transfer whose every byte is checked across the event.

use crate::format::{payload_bytes, StopSignal, TransferOutcome, VrrpWant};
use lvslab_director::control::socket_path;
use lvslab_director::ControlClient;
use lvslab_netns::{netns, Lab, Role};
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::{FromRawFd, IntoRawFd};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A transfer running in the background.
pub struct Transfer {
    /// Where it runs from, for messages.
    pub label: String,
    /// The client's address once connected.
    pub local: Option<SocketAddr>,
    handle: JoinHandle<Result<TransferOutcome, String>>,
}

impl Transfer {
    /// Wait for the outcome, at most until `deadline`.
    pub fn wait(self, deadline: Instant) -> Result<TransferOutcome, String> {
        while !self.handle.is_finished() {
            if Instant::now() >= deadline {
                return Err(format!("{}: still running at the deadline", self.label));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.handle
            .join()
            .map_err(|_| format!("{}: the transfer thread panicked", self.label))?
    }
}

/// Start a transfer of `bytes` from `netns` (client port `port`) to `to`, written over
/// `duration`; the echo is read back and compared byte for byte. Returns once the
/// connection is established (or failed), so the next step acts on a running transfer.
pub fn start_transfer(
    netns: String,
    to: SocketAddr,
    port: u16,
    bytes: usize,
    duration: Duration,
) -> Transfer {
    let label = format!("transfer of {bytes} bytes from port {port} to {to}");
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        netns::run_in(&netns, move || transfer(to, port, bytes, duration, tx))
            .map_err(|e| e.to_string())?
    });
    let local = rx.recv_timeout(Duration::from_secs(10)).ok();
    Transfer {
        label,
        local,
        handle,
    }
}

/// A TCP connection from local port `port` (SO_REUSEADDR, so a TIME_WAIT of an earlier
/// run in this namespace does not block it).
fn connect_from(port: u16, to: SocketAddr) -> Result<TcpStream, String> {
    use nix::sys::socket::{
        bind, connect, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn,
    };
    let IpAddr::V4(ip) = to.ip() else {
        return Err("transfer: IPv4 only".to_owned());
    };
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| format!("socket: {e}"))?;
    setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(|e| format!("SO_REUSEADDR: {e}"))?;
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::new(0, 0, 0, 0, port),
    )
    .map_err(|e| format!("bind client port {port}: {e}"))?;
    let [a, b, c, d] = ip.octets();
    connect(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::new(a, b, c, d, to.port()),
    )
    .map_err(|e| format!("connect to {to} from port {port}: {e}"))?;
    // SAFETY: fd is a connected TCP socket we own; the stream takes it over.
    Ok(unsafe { TcpStream::from_raw_fd(fd.into_raw_fd()) })
}

fn transfer(
    to: SocketAddr,
    port: u16,
    bytes: usize,
    duration: Duration,
    connected: std::sync::mpsc::Sender<SocketAddr>,
) -> Result<TransferOutcome, String> {
    let data = payload_bytes(None, Some(bytes));
    let stream = connect_from(port, to)?;
    if let Ok(local) = stream.local_addr() {
        let _ = connected.send(local);
    }
    let _ = stream.set_nodelay(true);
    // Long enough for a master-down interval and retransmissions after it.
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    let to_send = data.clone();
    let chunks = 100usize;
    let chunk = bytes.div_ceil(chunks).max(1);
    let pace = duration / chunks as u32;
    let w = std::thread::spawn(move || -> std::io::Result<()> {
        let t0 = Instant::now();
        for (i, c) in to_send.chunks(chunk).enumerate() {
            let due = t0 + pace * i as u32;
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            writer.write_all(c)?;
        }
        writer.shutdown(std::net::Shutdown::Write)
    });
    let mut got = Vec::with_capacity(bytes);
    let mut buf = vec![0u8; 64 * 1024];
    let mut reader = stream;
    let read = loop {
        match reader.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => break Err(e),
        }
    };
    let written = w
        .join()
        .map_err(|_| "the writer thread panicked".to_owned())?;
    let reset = |e: &std::io::Error| {
        matches!(
            e.kind(),
            ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::ConnectionAborted
        )
    };
    match (read, written) {
        (Err(e), _) | (Ok(()), Err(e)) if reset(&e) => Ok(TransferOutcome::Reset),
        (Err(e), _) => Err(format!("reading the echo after {} bytes: {e}", got.len())),
        (Ok(()), Err(e)) => Err(format!("writing: {e}")),
        (Ok(()), Ok(())) if got == data => Ok(TransferOutcome::Intact),
        (Ok(()), Ok(())) => {
            let at = got.iter().zip(&data).position(|(a, b)| a != b);
            Err(format!(
                "the echo differs: {} of {} bytes came back{}",
                got.len(),
                data.len(),
                at.map(|i| format!(", first difference at byte {i}"))
                    .unwrap_or_default()
            ))
        }
    }
}

/// The daemon that speaks VRRP on `node`: keepalived where the topology says so, else
/// lvslab's director.
fn pair_daemon(lab: &Lab, node: &str) -> String {
    if lvslab_engine::pair::runs_keepalived(&lab.state.topology, node) {
        format!("keepalived-{node}")
    } else {
        format!("director-{node}")
    }
}

/// Stop the director of a pair on `node` (lvslab's or keepalived) with `signal`: see
/// [`Step::KillDirector`](crate::format::Step::KillDirector).
pub fn kill_director(lab: &Lab, node: &str, signal: StopSignal) -> Result<(), String> {
    use nix::sys::signal::{kill, killpg, Signal};
    let fresh = Lab::load(lab.name()).map_err(|e| e.to_string())?;
    let name = pair_daemon(lab, node);
    let d = fresh
        .state
        .daemons
        .iter()
        .rev()
        .find(|d| d.name == name && d.alive())
        .ok_or_else(|| format!("no running {name} daemon on {node:?}"))?;
    let pid = nix::unistd::Pid::from_raw(i32::try_from(d.pid).map_err(|e| e.to_string())?);
    match signal {
        StopSignal::Term => {
            // Only the main process, as systemd stops keepalived (KillMode=process): it
            // tells its VRRP child, which sends priority 0 and removes the VIPs.
            kill(pid, Signal::SIGTERM).map_err(|e| format!("SIGTERM to {name}: {e}"))?;
            Ok(())
        }
        StopSignal::Kill => {
            // The whole group (each daemon leads its own session): SIGKILL to keepalived's
            // main process alone would not crash it, its VRRP child gets SIGTERM when its
            // parent dies and shuts down cleanly, priority 0 included.
            killpg(pid, Signal::SIGKILL).map_err(|e| format!("SIGKILL to {name}: {e}"))?;
            wait_group_gone(d.pid, &name, Duration::from_secs(5))
        }
    }
}

/// Wait until no process of group `pgid` runs any more (zombies aside), reaping the
/// group's leader when it is our child (the runner started the lab).
pub fn wait_group_gone(pgid: u32, name: &str, timeout: Duration) -> Result<(), String> {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(pgid).map_err(|e| e.to_string())?);
    let t0 = Instant::now();
    loop {
        let _ = nix::sys::wait::waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
        let left = group_members(pgid);
        if left.is_empty() {
            // The leader may have turned zombie after the wait above: reap it now (when it
            // is our child) so no zombie of the lab outlives this step.
            let _ = nix::sys::wait::waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
            return Ok(());
        }
        if t0.elapsed() >= timeout {
            return Err(format!(
                "{name} (process group {pgid}) still runs after {} ms: pids {left:?}",
                timeout.as_millis()
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Processes of group `pgid` that are not zombies (from /proc/PID/stat: state, ppid, pgrp).
fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // The command name may hold spaces and parentheses; the fields after the last
            // ')' are fixed.
            let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                return false;
            };
            let f: Vec<&str> = rest.split_whitespace().collect();
            f.first().is_some_and(|st| *st != "Z")
                && f.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(pgid)
        })
        .collect()
}

/// Wait until every process of `node`'s pair daemons started before is gone (a SIGTERMed
/// keepalived takes about a second to exit), then start it again as `up` did.
pub fn start_director(
    lab: &Lab,
    node: &str,
    cfg: &lvslab_engine::DaemonConfig,
) -> Result<(), String> {
    let name = pair_daemon(lab, node);
    let mut fresh = Lab::load(lab.name()).map_err(|e| e.to_string())?;
    let old: Vec<u32> = fresh
        .state
        .daemons
        .iter()
        .filter(|d| d.name == name)
        .map(|d| d.pid)
        .collect();
    for pid in old {
        wait_group_gone(pid, &name, Duration::from_secs(5))?;
    }
    let started = if name.starts_with("keepalived-") {
        lvslab_engine::restart_keepalived(&mut fresh, node, cfg)
    } else {
        lvslab_engine::restart_director(&mut fresh, node, cfg)
    };
    started
        .map(|_| ())
        .map_err(|e| format!("starting {name}: {}", with_causes(&e)))
}

fn with_causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

fn client(lab: &Lab, node: &str) -> ControlClient {
    ControlClient::new(socket_path(&lab.run_dir(), node)).with_timeout(Duration::from_secs(2))
}

/// The state of `node`'s first VRRP instance, if its director answers; keepalived's is
/// read from its node.
fn vrrp_state(lab: &Lab, node: &str) -> Option<String> {
    if lvslab_engine::pair::runs_keepalived(&lab.state.topology, node) {
        return lvslab_engine::pair::keepalived_state(lab, node)
            .ok()
            .map(str::to_owned);
    }
    let r = client(lab, node).vrrp().ok()?;
    r.instances.first().map(|i| i.state.clone())
}

/// Wait until `node`'s VRRP state is `want`; for MASTER also until every router of the lab
/// resolves the VIPs to `node`'s MAC.
pub fn wait_vrrp(lab: &Lab, node: &str, want: VrrpWant, timeout: Duration) -> Result<(), String> {
    let t0 = Instant::now();
    loop {
        let state = vrrp_state(lab, node);
        let arrived = state.as_deref() == Some(want.word())
            && (want == VrrpWant::Backup || routers_point_at(lab, node));
        if arrived {
            // How long a takeover took, for whoever tunes the step's timeout.
            tracing::info!(
                %node,
                state = want.word(),
                took_ms = t0.elapsed().as_millis() as u64,
                "wait_vrrp"
            );
            return Ok(());
        }
        if t0.elapsed() >= timeout {
            return Err(format!(
                "{node} is {} after {} ms, expected {}{}",
                state.as_deref().unwrap_or("not answering"),
                timeout.as_millis(),
                want.word(),
                if state.as_deref() == Some("MASTER") {
                    " with the routers sending the VIP to it"
                } else {
                    ""
                }
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// True when every router node resolves each VIP of `node`'s pair to one of `node`'s MACs.
fn routers_point_at(lab: &Lab, node: &str) -> bool {
    let Ok(info) = lab.node(node) else {
        return false;
    };
    let macs: Vec<String> = info
        .interfaces
        .iter()
        .map(|i| i.mac.to_string().to_lowercase())
        .collect();
    let vips: Vec<String> = lab
        .state
        .topology
        .services
        .iter()
        .filter(|s| s.director == node || s.backup.as_deref() == Some(node))
        .map(|s| s.vip.to_string())
        .collect();
    lab.state
        .nodes
        .iter()
        .filter(|n| n.role == Role::Router)
        .all(|r| {
            vips.iter().all(|vip| {
                let mut cmd = std::process::Command::new("ip");
                cmd.args(["neigh", "show", "to", vip]);
                let Ok(mut cmd) = netns::command_in(&r.netns, cmd) else {
                    return false;
                };
                let Ok(out) = cmd.output() else { return false };
                let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
                // No entry yet is fine: the router asks, and only the master answers.
                text.trim().is_empty() || macs.iter().any(|m| text.contains(m.as_str()))
            })
        })
}

/// Wait until `node`'s table holds a connection from each of `clients`.
pub fn wait_synced(
    lab: &Lab,
    node: &str,
    clients: &[SocketAddr],
    timeout: Duration,
) -> Result<(), String> {
    let t0 = Instant::now();
    loop {
        let conns = client(lab, node).conns().map_err(|e| e.to_string())?;
        let missing: Vec<&SocketAddr> = clients
            .iter()
            .filter(|c| !conns.iter().any(|r| r.source == **c && !r.template))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        if t0.elapsed() >= timeout {
            return Err(format!(
                "{node} has no connection from {missing:?} after {} ms (is sync on in the service's vrrp table?)",
                timeout.as_millis()
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Send `payload` on `stream` and read as many bytes back; Err describes a reset or a
/// short or changed echo.
pub fn echo_on(stream: &mut TcpStream, payload: &[u8]) -> Result<(), String> {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    stream
        .write_all(payload)
        .map_err(|e| format!("sending on a held connection: {e}"))?;
    let mut got = vec![0u8; payload.len()];
    stream
        .read_exact(&mut got)
        .map_err(|e| format!("reading the echo on a held connection: {e}"))?;
    if got != payload {
        return Err("the echo on a held connection differs from what was sent".to_owned());
    }
    Ok(())
}

/// The lvslab director of the pair that is MASTER now, if any.
pub fn current_master(lab: &Lab) -> Option<String> {
    lvslab_engine::pair::pair_states(lab)
        .into_iter()
        .find(|(_, i)| i.state == "MASTER")
        .map(|(n, _)| n)
}

/// `lvslab failover`: the MASTER gives up; returns the new master and how long it took.
pub fn failover(lab: &Lab, timeout: Duration) -> Result<(String, Duration), String> {
    let old = current_master(lab).ok_or("no lvslab director of the pair is MASTER")?;
    let t0 = Instant::now();
    client(lab, &old).failover().map_err(|e| e.to_string())?;
    loop {
        if let Some(new) = current_master(lab).filter(|n| *n != old) {
            let took = t0.elapsed();
            wait_vrrp(lab, &new, VrrpWant::Master, timeout.saturating_sub(took))?;
            return Ok((new, took));
        }
        if t0.elapsed() >= timeout {
            return Err(format!(
                "no new master {} ms after {old} gave up",
                timeout.as_millis()
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    #[test]
    fn a_killed_process_group_is_gone_with_every_member() {
        // A leader with a child in its group, as keepalived and its VRRP child are.
        let mut leader = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & sleep 30; wait"])
            .process_group(0)
            .spawn()
            .expect("sh");
        let pgid = leader.id();
        let t0 = Instant::now();
        while group_members(pgid).len() < 3 && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(group_members(pgid).len(), 3, "sh and its two sleeps");
        assert!(wait_group_gone(pgid, "sh", Duration::from_millis(50)).is_err());
        let pid = nix::unistd::Pid::from_raw(i32::try_from(pgid).expect("pid"));
        nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL).expect("killpg");
        wait_group_gone(pgid, "sh", Duration::from_secs(5)).expect("gone");
        assert!(group_members(pgid).is_empty());
        // wait_group_gone reaped the leader, our child: nothing is left to wait for.
        assert!(leader.try_wait().is_err());
    }
}
