//! The throw-away lab: namespaces built by lvslab-netns from a [`Plan`], real-server
//! listeners on threads, and teardown on drop (also when a step fails or panics).
use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use lvslab_netns::netns;
use lvslab_netns::{BuildOptions, Lab};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{send, MsgFlags};

use crate::plan::Plan;
use crate::Error;

/// How often idle server threads look at the stop flag.
const TICK: Duration = Duration::from_millis(100);

/// What a real server answers: its own address, so a reply can be checked against the
/// kernel's connection table.
pub fn answer(local: SocketAddr) -> String {
    format!("lvslab-simk {local}\n")
}

/// A lab that is up, with its real servers answering.
pub struct SimLab {
    lab: Option<Lab>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    /// The client namespace's name.
    pub client_ns: String,
    /// The director namespace's name.
    pub director_ns: String,
    /// How `mark N` flows get their mark.
    pub marks: MarkMode,
}

/// How the packets of `mark N` flows get their mark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkMode {
    /// The script has no marked flow.
    NotNeeded,
    /// An nftables rule per flow in the director's prerouting (`meta mark set N`).
    Nft,
    /// No nf_tables in this kernel: marked flows start on the director itself from a socket
    /// with SO_MARK N, and IPVS schedules them as local clients (at LOCAL_OUT).
    LocalClient,
    /// Marked flows cannot run; why, in words for the user.
    Unavailable(String),
}

/// Whether this kernel has nfnetlink (nft's only way in); a socket made and closed at once.
pub fn kernel_has_nfnetlink() -> bool {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockProtocol, SockType};
    socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkNetFilter,
    )
    .is_ok()
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// `simk-PID-N`: unique per process and per run, so tests can run labs one after another.
pub fn lab_name() -> String {
    format!(
        "simk-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::SeqCst)
    )
}

impl SimLab {
    /// Build the lab and start every listener.
    pub fn up(plan: &Plan) -> Result<SimLab, Error> {
        let name = lab_name();
        let mut marks = if plan.marks.is_empty() {
            MarkMode::NotNeeded
        } else if kernel_has_nfnetlink() {
            MarkMode::Nft
        } else if let Some(a) = plan.local_marks_clash() {
            MarkMode::Unavailable(format!(
                "this kernel has no nf_tables, and marked flows can only start on the director itself, which cannot hold {a}: it also has unmarked flows (give those another client address)"
            ))
        } else {
            MarkMode::LocalClient
        };
        let topo = plan.topology_with(&name, marks == MarkMode::LocalClient);
        let lab = lvslab_netns::build(&name, &topo, &BuildOptions::default())
            .map_err(|e| Error::Lab(format!("building the throw-away lab {name}: {e}")))?;
        let ns = |node: &str| lvslab_netns::state::netns_name(&name, node);
        let mut me = SimLab {
            client_ns: ns("client"),
            director_ns: ns("director"),
            lab: Some(lab),
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
            marks: MarkMode::NotNeeded,
        };
        for s in &plan.servers {
            let rs_ns = ns(&s.node);
            for &port in &s.tcp {
                let addr = SocketAddr::new(s.addr, port);
                let l = netns::run_in(&rs_ns, || TcpListener::bind(addr))
                    .map_err(|e| Error::Lab(e.to_string()))?
                    .map_err(|e| Error::Lab(format!("listen on {addr} in {rs_ns}: {e}")))?;
                let stop = me.stop.clone();
                me.threads
                    .push(std::thread::spawn(move || tcp_server(l, addr, stop)));
            }
            for &port in &s.udp {
                let addr = SocketAddr::new(s.addr, port);
                let u = netns::run_in(&rs_ns, || UdpSocket::bind(addr))
                    .map_err(|e| Error::Lab(e.to_string()))?
                    .map_err(|e| Error::Lab(format!("bind UDP {addr} in {rs_ns}: {e}")))?;
                let stop = me.stop.clone();
                me.threads
                    .push(std::thread::spawn(move || udp_server(u, addr, stop)));
            }
        }
        if marks == MarkMode::Nft {
            if let Some(rules) = plan.nft_ruleset() {
                if let Err(why) = nft(&me.director_ns, &rules) {
                    marks = MarkMode::Unavailable(why);
                }
            }
        }
        me.marks = marks;
        Ok(me)
    }

    /// Run `f` on a thread inside the director namespace.
    pub fn in_director<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, Error> {
        netns::run_in(&self.director_ns, f).map_err(|e| Error::Lab(e.to_string()))
    }

    /// Run `f` on a thread inside the client namespace (sockets it makes stay there).
    pub fn in_client<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, Error> {
        netns::run_in(&self.client_ns, f).map_err(|e| Error::Lab(e.to_string()))
    }

    /// The namespaces of the lab (for messages and tests).
    pub fn namespaces(&self) -> Vec<String> {
        self.lab
            .as_ref()
            .map(|l| l.state.netns.clone())
            .unwrap_or_default()
    }
}

impl Drop for SimLab {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if let Some(lab) = self.lab.take() {
            if let Err(e) = lab.down() {
                eprintln!("warning: taking the throw-away lab down: {e} (`lvslab down --all` removes leftovers)");
            }
        }
    }
}

/// Load the mark rules into the director's nftables; the error says why marks cannot be used.
fn nft(director_ns: &str, rules: &str) -> Result<(), String> {
    let mut cmd = Command::new("nft");
    cmd.args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut cmd = netns::command_in(director_ns, cmd).map_err(|e| e.to_string())?;
    let mut child = cmd.spawn().map_err(|e| {
        if e.kind() == ErrorKind::NotFound {
            "`nft` is not installed (Debian: apt-get install nftables)".to_string()
        } else {
            format!("starting nft: {e}")
        }
    })?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        stdin
            .write_all(rules.as_bytes())
            .map_err(|e| format!("writing rules to nft: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("waiting for nft: {e}"))?;
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        Ok(())
    } else if err.contains("Protocol not supported") {
        Err(format!(
            "this kernel has no nf_tables (nft: {}); lvslab's VM needs the nfnetlink and nf_tables modules in its initramfs for `mark N`",
            err.trim()
        ))
    } else {
        Err(format!(
            "nft refused the mark rules ({}): {}",
            out.status,
            err.trim()
        ))
    }
}

/// Wait until `fd` is readable or a tick passes.
fn readable(fd: std::os::fd::BorrowedFd<'_>) -> bool {
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    let ms = u16::try_from(TICK.as_millis()).unwrap_or(u16::MAX);
    matches!(poll(&mut fds, PollTimeout::from(ms)), Ok(n) if n > 0)
}

fn tcp_server(l: TcpListener, addr: SocketAddr, stop: Arc<AtomicBool>) {
    let mut conns = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        if !readable(l.as_fd()) {
            continue;
        }
        if let Ok((s, _)) = l.accept() {
            let stop = stop.clone();
            conns.push(std::thread::spawn(move || tcp_conn(s, addr, stop)));
        }
        conns.retain(|t: &JoinHandle<()>| !t.is_finished());
    }
    for t in conns {
        let _ = t.join();
    }
}

/// Answer the first request, then hold until the client closes (EOF or reset) and close too.
fn tcp_conn(mut s: TcpStream, addr: SocketAddr, stop: Arc<AtomicBool>) {
    let _ = s.set_read_timeout(Some(TICK));
    let mut buf = [0u8; 512];
    let mut answered = false;
    while !stop.load(Ordering::SeqCst) {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {
                if !answered {
                    answered = true;
                    // MSG_NOSIGNAL: a client that reset must not kill the process with SIGPIPE.
                    if send(
                        std::os::fd::AsRawFd::as_raw_fd(&s),
                        answer(addr).as_bytes(),
                        MsgFlags::MSG_NOSIGNAL,
                    )
                    .is_err()
                    {
                        return;
                    }
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

fn udp_server(u: UdpSocket, addr: SocketAddr, stop: Arc<AtomicBool>) {
    let _ = u.set_read_timeout(Some(TICK));
    let mut buf = [0u8; 512];
    while !stop.load(Ordering::SeqCst) {
        if let Ok((_, from)) = u.recv_from(&mut buf) {
            let _ = u.send_to(answer(addr).as_bytes(), from);
        }
    }
}
