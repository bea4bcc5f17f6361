//! `lvslab bench up`: time lvslab's up+request+down against an iproute2 shell script.
//! Up and down are lvslab-engine calls, as every lvslab command makes them; the request is
//! a `lvslab request` process, as a user would send it.
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use lvslab_engine::{DaemonConfig, LabGuard, UpOptions};
use lvslab_netns::topology::topology_dirs;
use lvslab_netns::Topology;

/// Benchmarks that print ratios against a baseline measured in the same run.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub what: What,
}

/// What to benchmark.
#[derive(clap::Subcommand, Debug)]
pub enum What {
    /// Seed NAT lab: up, one request, down — lvslab vs bench/nat-lab.sh (iproute2).
    Up {
        /// Runs of each.
        #[arg(long, default_value_t = 10)]
        runs: usize,
    },
    /// Userspace director vs kernel forwarding + nftables DNAT: throughput and conns/s.
    Director(crate::director::cmd_bench_director::BenchDirectorArgs),
    /// N NAT labs side by side: time and memory per lab against one alone, `list` and
    /// `status` with N up, and that a request in one lab reaches no other.
    Labs(crate::cmd_bench_scale::LabsArgs),
    /// SYN, UDP and ICMP-error floods at a lab's userspace director: its conn table against
    /// its bound, its VmRSS against a flood-free baseline, the legitimate client's success.
    Flood(crate::cmd_bench_scale::FloodArgs),
}

/// Run the command.
pub fn run(args: Args) -> Result<()> {
    if cfg!(debug_assertions) {
        // The goals are stated for an optimised build; a debug build misleads.
        eprintln!(
            "note: this is a debug build; for numbers worth comparing with the goals run\n  \
             cargo build --release && ./target/release/lvslab bench ..."
        );
    }
    match args.what {
        What::Up { runs } => bench_up(runs.max(1)),
        What::Director(a) => crate::director::cmd_bench_director::run(a),
        What::Labs(a) => crate::cmd_bench_scale::labs(a),
        What::Flood(a) => crate::cmd_bench_scale::floods(a),
    }
}

fn run_ok(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("run {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn script_path() -> Result<PathBuf> {
    topology_dirs()
        .into_iter()
        .filter_map(|d| d.parent().map(|p| p.join("bench/nat-lab.sh")))
        .find(|p| p.is_file())
        .context("bench/nat-lab.sh not found (run from the lvslab source tree)")
}

/// Alternate lvslab and the shell script so both see the same machine state.
fn bench_up(runs: usize) -> Result<()> {
    let exe = std::env::current_exe()?;
    let topo = Topology::find("nat-topology")?;
    let script = script_path()?;
    let pid = std::process::id();
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for i in 0..runs {
        let lab = format!("bench{pid}-{i}");
        let t = Instant::now();
        let guard = LabGuard::up(&lab, &topo, &UpOptions::new(DaemonConfig::new(&exe)))?;
        let req = run_ok(
            Command::new(&exe).args([
                "request",
                "--lab",
                &lab,
                "--from",
                "director",
                "--to",
                "192.168.1.201:80",
            ]),
            "lvslab request",
        );
        let down = guard.down();
        ours.push(t.elapsed());
        req?;
        down?;
        let t = Instant::now();
        run_ok(
            Command::new("bash")
                .arg(&script)
                .env("PREFIX", format!("lvs-sh{pid}-{i}-")),
            "bench/nat-lab.sh",
        )?;
        theirs.push(t.elapsed());
    }
    let (a, b) = (median(&mut ours), median(&mut theirs));
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("seed NAT lab: up + one request + down, median of {runs} runs each");
    println!(
        "  lvslab (netlink, serve daemons, HTTP request): {:8.1} ms",
        ms(a)
    );
    println!(
        "  bench/nat-lab.sh (iproute2, TCP probe):         {:8.1} ms",
        ms(b)
    );
    println!("  ratio lvslab/script: {:.2} (goal <= 0.25)", ms(a) / ms(b));
    Ok(())
}
