//! `lvslab bench director`: the userspace director against the kernel on the same lab.
//!
//! One NAT lab, two rounds in the same run: (1) the userspace director; (2) the same
//! topology with the userspace director stopped, `ip_forward=1` and an nftables DNAT rule on
//! the director (the kernel baseline from DESIGN.md). Each round measures iperf3 TCP
//! throughput client -> VIP -> rs1 and new TCP connections per second client -> VIP:80.
//! Ratios userspace/kernel are printed; the goal is >= 0.5 for throughput.

use crate::director::control::{self, Request};
use anyhow::{bail, Context, Result};
use lvslab_netns::{netns, Lab};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Arguments of `lvslab bench director`.
#[derive(clap::Args, Debug)]
pub struct BenchDirectorArgs {
    /// Seconds per iperf3 run and per connection-rate run.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

const VIP: &str = "192.168.1.250";
const IPERF_PORT: u16 = 5201;

/// One round's numbers.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Round {
    /// iperf3 receiver throughput, bit/s.
    pub throughput_bps: f64,
    /// Completed TCP handshakes per second.
    pub conns_per_sec: f64,
}

struct LabDown(String);

impl Drop for LabDown {
    fn drop(&mut self) {
        let exe = std::env::current_exe().ok();
        if let Some(exe) = exe {
            let _ = Command::new(exe).args(["down", &self.0]).status();
        }
    }
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

/// Connect, then reset (SO_LINGER 0) so the client keeps no TIME_WAIT, as fast as one
/// thread can for `secs`.
fn conn_rate(lab: &Lab, secs: u64) -> Result<f64> {
    let vip: SocketAddr = format!("{VIP}:80").parse()?;
    let ns = lab.netns_of("client")?;
    let (n, took) = netns::run_in(&ns, move || {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < Duration::from_secs(secs) {
            if let Ok(s) = TcpStream::connect_timeout(&vip, Duration::from_secs(1)) {
                let _ = socket_linger_zero(&s);
                n += 1;
            }
        }
        (n, start.elapsed())
    })?;
    Ok(n as f64 / took.as_secs_f64())
}

fn socket_linger_zero(s: &TcpStream) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: valid socket fd and a linger struct of the right size.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn round(lab: &Lab, secs: u64) -> Result<Round> {
    Ok(Round {
        throughput_bps: iperf(lab, secs)?,
        conns_per_sec: conn_rate(lab, secs)?,
    })
}

/// Run the benchmark.
pub fn run(args: BenchDirectorArgs) -> Result<()> {
    let exe = std::env::current_exe()?;
    let name = format!("benchdir{}", std::process::id());
    let up = Command::new(&exe)
        .args(["up", "nat-topology", "--name", &name, "--quiet"])
        .status()?;
    let _down = LabDown(name.clone());
    if !up.success() {
        bail!("lvslab up nat-topology failed");
    }
    let lab = Lab::load(&name)?;
    let port = IPERF_PORT.to_string();
    let server = in_ns(&lab, "rs1", "iperf3", &["-s", "-p", &port])?
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start iperf3 -s in rs1 (is iperf3 installed?)")?;
    let _server = Daemon(server);
    std::thread::sleep(Duration::from_millis(300));

    let socket = crate::director::labinfo::control_socket(&name, None)?;
    for line in [
        format!("-A -t {VIP}:{IPERF_PORT} -s rr"),
        format!("-a -t {VIP}:{IPERF_PORT} -r 192.168.1.201:{IPERF_PORT} -m"),
    ] {
        control::call_ok(&socket, &Request::Ipvsadm { line })?;
    }
    let user = round(&lab, args.seconds).context("userspace round")?;

    stop_director(&lab)?;
    let nft = format!(
        "table ip lvsbench {{\n  chain pre {{\n    type nat hook prerouting priority dstnat; policy accept;\n    \
         ip daddr {VIP} tcp dport {IPERF_PORT} dnat to 192.168.1.201:{IPERF_PORT}\n    \
         ip daddr {VIP} tcp dport 80 dnat to numgen inc mod 2 map {{ 0 : 192.168.1.201, 1 : 192.168.1.203 }}\n  }}\n}}\n"
    );
    nft_load(&lab, &nft)?;
    run_ok(
        in_ns(
            &lab,
            "director",
            "sysctl",
            &["-qw", "net.ipv4.ip_forward=1"],
        )?,
        "sysctl ip_forward",
    )?;
    let kernel = round(&lab, args.seconds).context("kernel round")?;

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
            "director bench: nat-topology, client -> {VIP} -> rs, {} s per run",
            args.seconds
        );
        println!(
            "{:<22}{:>16}{:>16}{:>8}",
            "", "userspace", "kernel+nft", "ratio"
        );
        println!(
            "{:<22}{:>16}{:>16}{:>8.2}",
            "TCP throughput",
            format!("{:.2} Gbit/s", user.throughput_bps / 1e9),
            format!("{:.2} Gbit/s", kernel.throughput_bps / 1e9),
            ratio_tp
        );
        println!(
            "{:<22}{:>16.0}{:>16.0}{:>8.2}",
            "new conns/s", user.conns_per_sec, kernel.conns_per_sec, ratio_cps
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
