//! `lvslab bench director`: the userspace director against the kernel on the same lab.
//!
//! One NAT lab, two modes measured in the same run, alternating round by round (U K, K U,
//! U K, ...) so host load drifting during the run falls on both: (1) the userspace director;
//! (2) the userspace director stopped, `ip_forward=1` and an nftables DNAT rule on the
//! director (the kernel baseline from DESIGN.md). Each round measures iperf3 TCP throughput
//! client -> VIP -> rs1 and the time to open a fixed number of new TCP connections
//! client -> VIP:80. Medians over the rounds are compared; the goal is >= 0.5 for throughput.
//!
//! Connection rounds go to the bench's own listeners on the real servers (port 8080, backlog
//! 4096, every accepted connection reset at once, as the client resets its side) and bind
//! each connection to a client port never used before in the run. The kernel baseline used
//! to swing 3k..16k conns/s: the rounds went to `lvslab serve` on port 80, whose accept
//! queue (backlog 128) overflowed whenever the host was busy; a full accept queue drops the
//! SYN (TcpExtListenOverflows on the real servers matched the client's failed connects one
//! for one), and each drop cost the loop a 1 s SYN retransmission. The faster path hit it
//! more often, and 1..3 such seconds in a 5 s run made the spread.

use anyhow::{bail, Context, Result};
use lvslab_director::ControlClient;
use lvslab_netns::{netns, Lab};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Arguments of `lvslab bench director`.
#[derive(clap::Args, Debug)]
pub struct BenchDirectorArgs {
    /// Seconds per iperf3 run.
    #[arg(long, default_value_t = 3)]
    pub seconds: u64,
    /// Rounds per mode; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub rounds: u32,
    /// New connections per connection-rate round (each on a fresh client port).
    #[arg(long, default_value_t = 3000)]
    pub conns: u16,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

const VIP: &str = "192.168.1.250";
const IPERF_PORT: u16 = 5201;
/// The port of the bench's own connection sinks on the real servers.
const CONN_PORT: u16 = 8080;
const REAL_SERVERS: [(&str, &str); 2] = [("rs1", "192.168.1.201"), ("rs2", "192.168.1.203")];

/// First client port of the connection rounds; each round takes the next `conns` ports.
const FIRST_PORT: u32 = 10_000;

/// One round's numbers.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Round {
    /// iperf3 receiver throughput, bit/s.
    pub throughput_bps: f64,
    /// Completed TCP handshakes per second.
    pub conns_per_sec: f64,
    /// Connection attempts that failed or timed out (1 s) in this round.
    pub conn_failures: u64,
}

/// The two packet paths the benchmark compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Userspace,
    Kernel,
}

/// A child we started; killed by pid when dropped.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn in_ns(lab: &Lab, node: &str, program: &str, args: &[&str]) -> Result<Command> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    Ok(netns::command_in(&lab.netns_of(node)?, cmd)?)
}

fn run_ok(mut cmd: Command, what: &str) -> Result<String> {
    let out = cmd.output().with_context(|| format!("run {what}"))?;
    if !out.status.success() {
        bail!("{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn iperf(lab: &Lab, secs: u64) -> Result<f64> {
    let t = secs.to_string();
    let port = IPERF_PORT.to_string();
    let cmd = in_ns(
        lab,
        "client",
        "iperf3",
        &["-c", VIP, "-p", &port, "-t", &t, "-J"],
    )?;
    let text = run_ok(cmd, "iperf3 -c (is iperf3 installed?)")?;
    let v: serde_json::Value = serde_json::from_str(&text).context("iperf3 -J output")?;
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .with_context(|| {
            format!(
                "no end.sum_received.bits_per_second in iperf3 output: {}",
                v["error"]
            )
        })
}

/// Open `ports.len()` connections to VIP:[`CONN_PORT`] from the client, each bound to its own port of
/// `ports`, and reset each right after the handshake (SO_LINGER 0), so neither side keeps a
/// TIME_WAIT; returns (handshakes per second, failures).
fn conn_rate(lab: &Lab, ports: std::ops::Range<u16>) -> Result<(f64, u64)> {
    let ns = lab.netns_of("client")?;
    let vip: std::net::Ipv4Addr = VIP.parse()?;
    let (ok, failed, took) = netns::run_in(&ns, move || -> Result<(u64, u64, Duration)> {
        let start = Instant::now();
        let (mut ok, mut failed) = (0u64, 0u64);
        for port in ports {
            match connect_once(port, vip) {
                Ok(()) => ok += 1,
                // The sink accepted and reset before this thread ran again: ECONNRESET
                // (not ECONNREFUSED) means the socket had reached ESTABLISHED.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => ok += 1,
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                    bail!("client port {port} is taken; free ports {FIRST_PORT}.. in the client namespace")
                }
                Err(e) => {
                    failed += 1;
                    tracing::warn!(port, error = %e, elapsed = ?start.elapsed(), "connect failed");
                }
            }
        }
        Ok((ok, failed, start.elapsed()))
    })??;
    Ok((ok as f64 / took.as_secs_f64(), failed))
}

/// One connection from local `port` to `vip`:[`CONN_PORT`] with a 1 s connect timeout, closed with RST.
fn connect_once(port: u16, vip: std::net::Ipv4Addr) -> std::io::Result<()> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    fn sockaddr(ip: std::net::Ipv4Addr, port: u16) -> libc::sockaddr_in {
        // SAFETY: an all-zero sockaddr_in is valid.
        let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        sa.sin_family = libc::AF_INET as libc::sa_family_t;
        sa.sin_port = port.to_be();
        sa.sin_addr.s_addr = u32::from(ip).to_be();
        sa
    }
    // SAFETY: plain socket(2); the result is checked before use.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    check(raw)?;
    // SAFETY: raw is a fresh descriptor we own; dropping `fd` closes it (with RST, below).
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let raw = fd.as_raw_fd();
    linger_zero(raw)?;
    // A blocking connect gives up after SO_SNDTIMEO (one SYN retransmission at 1 s).
    let timeout = libc::timeval {
        tv_sec: 1,
        tv_usec: 0,
    };
    setopt(raw, libc::SO_SNDTIMEO, &timeout)?;
    let local = sockaddr(std::net::Ipv4Addr::UNSPECIFIED, port);
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: `local` and `remote` are valid sockaddr_in of `len` bytes.
    check(unsafe { libc::bind(raw, &local as *const _ as *const libc::sockaddr, len) })?;
    let remote = sockaddr(vip, CONN_PORT);
    // SAFETY: as above.
    check(unsafe { libc::connect(raw, &remote as *const _ as *const libc::sockaddr, len) })
}

/// Switches the lab's director between the two modes.
struct Modes<'a> {
    lab: &'a Lab,
    exe: std::path::PathBuf,
    socket: std::path::PathBuf,
    director: Option<Daemon>,
    kernel_on: bool,
}

impl Modes<'_> {
    fn enter(&mut self, mode: Mode) -> Result<()> {
        match mode {
            Mode::Userspace => {
                if self.kernel_on {
                    run_ok(
                        in_ns(
                            self.lab,
                            "director",
                            "nft",
                            &["delete", "table", "ip", "lvsbench"],
                        )?,
                        "nft delete table",
                    )?;
                    set_ip_forward(self.lab, false)?;
                    self.kernel_on = false;
                }
                if self.director.is_none() {
                    self.director = Some(self.start_director()?);
                }
            }
            Mode::Kernel => {
                // Dropping the daemon kills it by pid.
                self.director = None;
                if !self.kernel_on {
                    nft_load(self.lab, &kernel_ruleset())?;
                    set_ip_forward(self.lab, true)?;
                    self.kernel_on = true;
                }
            }
        }
        Ok(())
    }

    /// Start `lvslab director` for the lab (our child) and give it the iperf3 service.
    fn start_director(&self) -> Result<Daemon> {
        let _ = std::fs::remove_file(&self.socket);
        let child = Command::new(&self.exe)
            .args(["director", "--lab", self.lab.name()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start lvslab director")?;
        let daemon = Daemon(child);
        let t = Instant::now();
        let client = ControlClient::new(&self.socket);
        while client.stats().is_err() {
            if t.elapsed() > Duration::from_secs(10) {
                bail!(
                    "the userspace director did not answer on {} within 10 s",
                    self.socket.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut lines = vec![
            format!("-A -t {VIP}:{IPERF_PORT} -s rr"),
            format!("-a -t {VIP}:{IPERF_PORT} -r 192.168.1.201:{IPERF_PORT} -m"),
            format!("-A -t {VIP}:{CONN_PORT} -s rr"),
        ];
        for (_, rip) in REAL_SERVERS {
            lines.push(format!("-a -t {VIP}:{CONN_PORT} -r {rip}:{CONN_PORT} -m"));
        }
        for line in lines {
            client.ipvsadm(&line)?;
        }
        Ok(daemon)
    }
}

fn kernel_ruleset() -> String {
    format!(
        "table ip lvsbench {{\n  chain pre {{\n    type nat hook prerouting priority dstnat; policy accept;\n    \
         ip daddr {VIP} tcp dport {IPERF_PORT} dnat to 192.168.1.201:{IPERF_PORT}\n    \
         ip daddr {VIP} tcp dport {CONN_PORT} dnat to numgen inc mod 2 map {{ 0 : {}, 1 : {} }}\n  }}\n}}\n",
        REAL_SERVERS[0].1,
        REAL_SERVERS[1].1
    )
}

/// The bench's connection sink on one real server: accepts on [`CONN_PORT`] with a deep
/// backlog and resets every connection; stops (and is joined) when dropped.
struct Sink {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sink {
    fn start(lab: &Lab, node: &str) -> Result<Sink> {
        use std::os::fd::AsRawFd;
        let ns = lab.netns_of(node)?;
        // A socket belongs to the namespace it was created in; the accepting thread need not.
        let listener = netns::run_in(&ns, || std::net::TcpListener::bind(("0.0.0.0", CONN_PORT)))?
            .with_context(|| format!("listen on port {CONN_PORT} in {node}"))?;
        // Re-listening only deepens the backlog (std uses 128; the kernel caps at somaxconn).
        // SAFETY: listen(2) on a valid listening socket.
        if unsafe { libc::listen(listener.as_raw_fd(), 4096) } < 0 {
            return Err(std::io::Error::last_os_error()).context("listen backlog 4096");
        }
        listener.set_nonblocking(true)?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let _ = linger_zero(s.as_raw_fd());
                    }
                    Err(_) => {
                        let fds = [listener.as_raw_fd()];
                        let _ = lvslab_director::afpacket::poll_readable(&fds, 100);
                    }
                }
            }
        });
        Ok(Sink {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Make closing `fd` send RST instead of FIN, so no side keeps a TIME_WAIT.
fn linger_zero(fd: libc::c_int) -> std::io::Result<()> {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    setopt(fd, libc::SO_LINGER, &linger)
}

fn check(rc: libc::c_int) -> std::io::Result<()> {
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// setsockopt(2) at SOL_SOCKET.
fn setopt<T>(fd: libc::c_int, opt: libc::c_int, v: &T) -> std::io::Result<()> {
    // SAFETY: `v` is a valid option value of its own size.
    check(unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            opt,
            v as *const T as *const libc::c_void,
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    })
}

fn set_ip_forward(lab: &Lab, on: bool) -> Result<()> {
    let kv = format!("net.ipv4.ip_forward={}", u8::from(on));
    run_ok(
        in_ns(lab, "director", "sysctl", &["-qw", &kv])?,
        "sysctl ip_forward",
    )?;
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Medians and the individual rounds of one mode.
#[derive(Debug, serde::Serialize)]
struct Summary {
    throughput_bps: f64,
    conns_per_sec: f64,
    conn_failures: u64,
    rounds: Vec<Round>,
}

impl Summary {
    fn of(rounds: Vec<Round>) -> Self {
        Summary {
            throughput_bps: median(rounds.iter().map(|r| r.throughput_bps).collect()),
            conns_per_sec: median(rounds.iter().map(|r| r.conns_per_sec).collect()),
            conn_failures: rounds.iter().map(|r| r.conn_failures).sum(),
            rounds,
        }
    }

    fn spread(&self, f: impl Fn(&Round) -> f64, scale: f64) -> String {
        let v: Vec<f64> = self.rounds.iter().map(|r| f(r) / scale).collect();
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        format!("{lo:.2}..{hi:.2}")
    }
}

/// Run the benchmark.
pub fn run(args: BenchDirectorArgs) -> Result<()> {
    crate::director::logging::init();
    let rounds = args.rounds.max(1);
    let last_port = FIRST_PORT + 2 * rounds * u32::from(args.conns);
    if last_port > 65_535 {
        bail!(
            "--rounds {rounds} x 2 modes x --conns {} needs client ports {FIRST_PORT}..{last_port}; \
             lower --conns or --rounds so that fits below 65536",
            args.conns
        );
    }
    let exe = std::env::current_exe()?;
    let name = format!("benchdir{}", std::process::id());
    let topo = lvslab_netns::Topology::find("nat-topology")?;
    let daemons = lvslab_engine::DaemonConfig::new(&exe);
    // Taken down when the benchmark ends, however it ends.
    let _down = lvslab_engine::LabGuard::up(&name, &topo, &lvslab_engine::UpOptions::new(daemons))?;
    let lab = Lab::load(&name)?;
    let port = IPERF_PORT.to_string();
    let server = in_ns(&lab, "rs1", "iperf3", &["-s", "-p", &port])?
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start iperf3 -s in rs1 (is iperf3 installed?)")?;
    let _server = Daemon(server);
    std::thread::sleep(Duration::from_millis(300));

    let _sinks = REAL_SERVERS
        .iter()
        .map(|(node, _)| Sink::start(&lab, node))
        .collect::<Result<Vec<_>>>()?;
    // The director `up` started is replaced by one this run starts and stops at will.
    stop_director(&lab)?;
    let mut modes = Modes {
        lab: &lab,
        exe,
        socket: crate::director::labinfo::control_socket(&name, None)?,
        director: None,
        kernel_on: false,
    };
    let (mut user, mut kernel) = (Vec::new(), Vec::new());
    let mut next_port = FIRST_PORT;
    for i in 0..rounds {
        let order = if i % 2 == 0 {
            [Mode::Userspace, Mode::Kernel]
        } else {
            [Mode::Kernel, Mode::Userspace]
        };
        for mode in order {
            modes.enter(mode)?;
            let what = format!("{mode:?} round {}", i + 1);
            let throughput_bps = iperf(&lab, args.seconds).with_context(|| what.clone())?;
            // Both ends fit in u16: checked against 65535 above.
            let ports = next_port as u16..(next_port + u32::from(args.conns)) as u16;
            next_port += u32::from(args.conns);
            let (conns_per_sec, conn_failures) = conn_rate(&lab, ports).context(what)?;
            let r = Round {
                throughput_bps,
                conns_per_sec,
                conn_failures,
            };
            match mode {
                Mode::Userspace => user.push(r),
                Mode::Kernel => kernel.push(r),
            }
        }
    }
    drop(modes);
    let (user, kernel) = (Summary::of(user), Summary::of(kernel));
    let ratio_tp = user.throughput_bps / kernel.throughput_bps;
    let ratio_cps = user.conns_per_sec / kernel.conns_per_sec;
    if args.json {
        let v = serde_json::json!({
            "userspace": user, "kernel_nft": kernel,
            "ratio_throughput": ratio_tp, "ratio_conns_per_sec": ratio_cps,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "director bench: nat-topology, client -> {VIP} -> rs; {rounds} alternating rounds per mode \
             ({} s iperf3, {} fresh-port connections to :{CONN_PORT} each); medians, [min..max]",
            args.seconds, args.conns
        );
        println!(
            "{:<16}{:>26}{:>26}{:>8}",
            "", "userspace", "kernel+nft", "ratio"
        );
        let gbit = |s: &Summary| {
            format!(
                "{:.2} Gbit/s [{}]",
                s.throughput_bps / 1e9,
                s.spread(|r| r.throughput_bps, 1e9)
            )
        };
        println!(
            "{:<16}{:>26}{:>26}{:>8.2}",
            "TCP throughput",
            gbit(&user),
            gbit(&kernel),
            ratio_tp
        );
        let cps = |s: &Summary| {
            format!(
                "{:.0} [{}k]",
                s.conns_per_sec,
                s.spread(|r| r.conns_per_sec, 1e3)
            )
        };
        println!(
            "{:<16}{:>26}{:>26}{:>8.2}",
            "new conns/s",
            cps(&user),
            cps(&kernel),
            ratio_cps
        );
        println!(
            "{:<16}{:>26}{:>26}",
            "conn failures", user.conn_failures, kernel.conn_failures
        );
    }
    Ok(())
}

/// Load an nftables ruleset into the director's namespace (`nft -f -`).
fn nft_load(lab: &Lab, ruleset: &str) -> Result<()> {
    use std::io::Write;
    let mut child = in_ns(lab, "director", "nft", &["-f", "-"])?
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("run nft (is nftables installed?)")?;
    child
        .stdin
        .take()
        .context("nft stdin")?
        .write_all(ruleset.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "nft -f failed: {}\n{ruleset}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Stop the lab's userspace director (by the pid `up` recorded).
fn stop_director(lab: &Lab) -> Result<()> {
    let d = lab
        .state
        .daemons
        .iter()
        .find(|d| d.name.starts_with("director-"))
        .context("the lab has no director daemon")?;
    if d.alive() {
        let pid = nix::unistd::Pid::from_raw(d.pid as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)
            .context("stop the director")?;
        let t = Instant::now();
        while d.alive() && t.elapsed() < Duration::from_secs(3) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_and_even_rounds() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(Vec::new()).is_nan());
    }
}
