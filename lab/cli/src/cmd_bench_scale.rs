//! `lvslab bench labs` (many NAT labs side by side) and `lvslab bench flood` (SYN, UDP and
//! ICMP-error floods at a lab's userspace director). Both print ratios against a baseline
//! measured in the same run, and take down every lab they brought up, on errors and on
//! Ctrl-C too (interrupts are held back while labs are up and checked between steps).
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use lvslab_capture::LiveCapture;
use lvslab_engine::{capture_targets, DaemonConfig, DeferredInterrupts, LabGuard, UpOptions};
use lvslab_netns::{Lab, Topology};
use lvslab_scenario::flood::{self, FloodKind, FloodSpec};

/// `lvslab bench labs` options.
#[derive(clap::Args, Debug)]
pub struct LabsArgs {
    /// How many NAT labs to bring up side by side.
    #[arg(long, default_value_t = 50)]
    pub count: usize,
}

/// `lvslab bench flood` options.
#[derive(clap::Args, Debug)]
pub struct FloodArgs {
    /// Packets per flood.
    #[arg(long, default_value_t = 10_000)]
    pub count: u32,
    /// Packets per second.
    #[arg(long, default_value_t = 5_000)]
    pub rate: u32,
    /// The director's conn table bound during the floods.
    #[arg(long, default_value_t = 2_000)]
    pub max_conns: u32,
}

fn interrupted(hold: &DeferredInterrupts) -> Result<()> {
    match hold.pending() {
        Some(sig) => bail!("{sig} received: taking the labs down"),
        None => Ok(()),
    }
}

/// MemAvailable from /proc/meminfo, KiB: what the whole machine has left.
fn mem_available_kb() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemAvailable:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// A process's proportional set size, KiB: unlike VmRSS it shares the lvslab binary's
/// pages among the processes mapping them, so a lab's daemons add up to what they cost.
fn pss_kb(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// The summed PSS of a lab's daemons, KiB.
fn daemons_pss_kb(lab: &str) -> u64 {
    Lab::load(lab)
        .map(|l| l.state.daemons.iter().filter_map(|d| pss_kb(d.pid)).sum())
        .unwrap_or(0)
}

/// How long an lvslab command takes (median of `runs`), its output thrown away.
fn time_command(args: &[&str], runs: usize) -> Result<Duration> {
    let exe = std::env::current_exe()?;
    let mut times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let out = Command::new(&exe)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .with_context(|| format!("lvslab {}", args.join(" ")))?;
        if !out.status.success() {
            bail!(
                "lvslab {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        times.push(t.elapsed());
    }
    times.sort();
    Ok(times[times.len() / 2])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn request(lab: &str) -> Result<()> {
    let exe = std::env::current_exe()?;
    let out = Command::new(exe)
        .args([
            "request",
            "--lab",
            lab,
            "--from",
            "client",
            "--to",
            "192.168.1.250:80",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()?;
    if !out.status.success() {
        bail!(
            "request in {lab}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Packets on port 80 seen in every hop of `watch` while a request runs in `lab`.
fn seen_during_request(lab: &str, watch: &str) -> Result<u64> {
    let state = Lab::load(watch)?;
    let cap = LiveCapture::start(&capture_targets(&state, &[]), Some("tcp port 80"))?;
    let r = request(lab);
    cap.wait_quiet(Duration::from_millis(200), Duration::from_secs(3));
    let n = cap.packets_seen();
    cap.stop()?;
    r?;
    Ok(n)
}

/// N NAT labs side by side: time and memory per lab against one lab alone, the cost of
/// `list` and `status` with N up, and that a request in one lab reaches no other.
pub fn labs(args: LabsArgs) -> Result<()> {
    let n = args.count.max(2);
    let exe = std::env::current_exe()?;
    let topo = Topology::find("nat-topology")?;
    let opts = UpOptions::new(DaemonConfig::new(&exe));
    let pid = std::process::id() % 100_000;
    let name = |i: usize| format!("bl{pid}-{i}");
    let hold = DeferredInterrupts::block()?;

    // The baseline: one lab alone, in this run, on this machine as it is now.
    let mem0 = mem_available_kb();
    let t = Instant::now();
    let one = LabGuard::up(&name(0), &topo, &opts)?;
    let up1 = t.elapsed();
    request(&name(0))?;
    let mem1 = mem0.saturating_sub(mem_available_kb());
    let rss1 = daemons_pss_kb(&name(0));
    let list1 = time_command(&["list"], 5)?;
    let status1 = time_command(&["status", "--lab", &name(0)], 5)?;
    let t = Instant::now();
    one.down()?;
    let down1 = t.elapsed();
    interrupted(&hold)?;

    // N at once. Guards in a Vec: an error or Ctrl-C below drops them all (each takes its
    // lab down), in reverse order of coming up.
    let mem0 = mem_available_kb();
    let mut guards = Vec::with_capacity(n);
    let mut ups = Vec::with_capacity(n);
    let t_all = Instant::now();
    for i in 1..=n {
        let t = Instant::now();
        guards.push(LabGuard::up(&name(i), &topo, &opts)?);
        ups.push(t.elapsed());
        interrupted(&hold)?;
    }
    let up_all = t_all.elapsed();
    let mut failed = 0;
    for i in 1..=n {
        failed += usize::from(request(&name(i)).is_err());
    }
    let mem_n = mem0.saturating_sub(mem_available_kb());
    let rss_n: u64 = (1..=n).map(|i| daemons_pss_kb(&name(i))).sum();
    let list_n = time_command(&["list"], 5)?;
    let status_n = time_command(&["status", "--lab", &name(n)], 5)?;
    interrupted(&hold)?;

    // Independence: lab 1's own capture sees its request (the capture works), lab 2's
    // sees nothing of it, and the other way round.
    let own = seen_during_request(&name(1), &name(1))?;
    let other = seen_during_request(&name(1), &name(2))?;
    let back = seen_during_request(&name(2), &name(1))?;

    let t = Instant::now();
    let mut down_err = None;
    while let Some(g) = guards.pop() {
        if let Err(e) = g.down() {
            down_err.get_or_insert(e);
        }
    }
    let down_all = t.elapsed();
    if let Some(e) = down_err {
        return Err(e.into());
    }

    ups.sort();
    let median = ups[ups.len() / 2];
    let last = ups[ups.len() - 1];
    let per = |x: u64| x as f64 / n as f64;
    println!("{n} NAT labs side by side (baseline: one lab alone, measured first in this run)");
    println!("  labs: {} to {} (all down now)", name(0), name(n));
    println!(
        "  up:      one alone {:7.1} ms | {n}: total {:7.1} ms, median {:6.1} ms, slowest {:6.1} ms per lab (median/alone {:.2})",
        ms(up1),
        ms(up_all),
        ms(median),
        ms(last),
        ms(median) / ms(up1).max(0.001)
    );
    println!(
        "  down:    one alone {:7.1} ms | {n}: total {:7.1} ms, {:6.1} ms per lab (per lab/alone {:.2})",
        ms(down1),
        ms(down_all),
        ms(down_all) / n as f64,
        ms(down_all) / n as f64 / ms(down1).max(0.001)
    );
    println!(
        "  memory:  one alone {mem1} KiB of MemAvailable, daemons' PSS {rss1} KiB | {n}: {:.0} KiB and {:.0} KiB per lab (ratios {:.2}, {:.2}); MemAvailable is the whole machine's, noisy on a shared host",
        per(mem_n),
        per(rss_n),
        per(mem_n) / (mem1.max(1) as f64),
        per(rss_n) / (rss1.max(1) as f64)
    );
    println!(
        "  list:    {:6.1} ms with one lab, {:6.1} ms with {n} (ratio {:.2})",
        ms(list1),
        ms(list_n),
        ms(list_n) / ms(list1).max(0.001)
    );
    println!(
        "  status:  {:6.1} ms with one lab, {:6.1} ms with {n} (ratio {:.2})",
        ms(status1),
        ms(status_n),
        ms(status_n) / ms(status1).max(0.001)
    );
    println!("  requests: {} of {n} labs answered", n - failed);
    println!(
        "  independence: a request in lab 1 left {own} packets in lab 1's captures, {other} in lab 2's; one in lab 2 left {back} in lab 1's"
    );
    if failed > 0 || own == 0 || other > 0 || back > 0 {
        bail!("labs are not independent, or some did not answer (see above)");
    }
    Ok(())
}

/// The connections the legitimate client holds open through the floods.
fn hold(lab: &Lab, to: SocketAddr, n: usize) -> Result<Vec<TcpStream>> {
    let netns = lab.netns_of("client")?;
    (0..n)
        .map(|_| {
            lvslab_netns::netns::run_in(&netns, move || {
                TcpStream::connect_timeout(&to, Duration::from_secs(2))
            })?
            .with_context(|| format!("holding a connection to {to}"))
        })
        .collect()
}

/// A SYN, a UDP and an ICMP-error flood, each at a fresh NAT lab, and the same exchanges
/// without a flood as the baseline.
pub fn floods(args: FloodArgs) -> Result<()> {
    let exe = std::env::current_exe()?;
    let topo = Topology::find("nat-topology")?;
    let opts = UpOptions::new(DaemonConfig::new(&exe));
    let pid = std::process::id() % 100_000;
    let hold_ints = DeferredInterrupts::block()?;
    let runs: [(&str, Option<FloodKind>); 4] = [
        ("baseline", None),
        ("syn", Some(FloodKind::Syn)),
        ("udp", Some(FloodKind::Udp)),
        ("icmp", Some(FloodKind::Icmp)),
    ];
    let mut base_rss = 0;
    for (what, kind) in runs {
        let name = format!("bf{pid}-{what}");
        let guard = LabGuard::up(&name, &topo, &opts)?;
        let lab = Lab::load(&name)?;
        let service = lab
            .state
            .topology
            .services
            .first()
            .cloned()
            .context("nat-topology has no service")?;
        let to = SocketAddr::new(service.vip, service.port);
        if kind == Some(FloodKind::Udp) {
            // A UDP service on the same VIP and port, so each datagram is a new flow.
            let ctl = lvslab_director::control::ControlClient::new(
                lvslab_director::control::socket_path(&lab.run_dir(), &service.director),
            );
            ctl.ipvsadm(&format!("-A -u {to} -s rr"))?;
            for rs in &service.real_servers {
                ctl.ipvsadm(&format!("-a -u {to} -r {}:{} -m", rs.address, rs.port))?;
            }
        }
        let held = hold(&lab, to, 2)?;
        let refs: Vec<&TcpStream> = held.iter().collect();
        let spec = FloodSpec {
            kind: kind.unwrap_or_default(),
            // The baseline sends one packet (a single SYN, into the bound like any other)
            // so it runs the same code; its numbers are the director at rest.
            count: if kind.is_some() { args.count } else { 1 },
            rate: args.rate,
            within: Duration::from_secs(60),
            max_conns: Some(args.max_conns),
            exchanges: 20,
            new_conns: 10,
            new_exchanges: 0,
            min_new_success: None,
            min_success: 0.0,
            max_rss_growth_kb: u64::MAX,
        };
        let client = lab.node("client")?.clone();
        let report = flood::run(&lab, &service, &client, &spec, &refs).map_err(anyhow::Error::msg);
        drop(held);
        guard.down()?;
        let report = report?;
        if kind.is_none() {
            base_rss = report.rss_kb.1;
            println!("baseline (no flood): director VmRSS {base_rss} KiB; legitimate exchanges {}/{}, new connections {}/{}", report.legit.0, report.legit.1, report.new_conns.0, report.new_conns.1);
        } else {
            println!("\n{}", report.summary());
            println!(
                "  peak VmRSS / baseline: {:.2}; bound held: {}",
                report.rss_kb.1 as f64 / base_rss.max(1) as f64,
                report.max_entries <= report.bound
            );
        }
        interrupted(&hold_ints)?;
    }
    Ok(())
}
