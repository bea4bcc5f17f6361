//! `lvslab simulate`: run a script of ipvsadm lines and connection steps through the core,
//! through kernel IPVS (`--backend ipvs`, lvslab-simk), or both (`--compare`).
use std::io::{Read, Write};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use lvslab_core::sim::{parse_script, ScriptLine, Sim, StepReport};
use lvslab_core::IpvsConfig;
use lvslab_engine::DeferredInterrupts;
use lvslab_simk::{KernelOptions, Outcome, DEFAULT_MAX_SLEEP_SECS};

/// Which balancer runs the script.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimBackend {
    /// lvslab's balancer core, in simulated time (no root, instant).
    Userspace,
    /// The kernel's IPVS with real connections in a throw-away namespace lab (root).
    Ipvs,
}

/// Run a script of ipvsadm lines and connection steps through the balancer core, kernel IPVS, or both.
///
/// Scripts: see examples/simulate/*.sim; one line per connection step says the server picked.
///
/// `--backend ipvs` runs the same script on the kernel's IPVS and prints the same lines: a
/// throw-away lab of network namespaces (`lvs-simk-PID-N-*`: a client holding every client
/// address, a director with the VIPs and kernel IPVS, one namespace per real server address)
/// is built, each ipvsadm line goes to the kernel over generic netlink, and each connection
/// step is a real connection whose server is read from the kernel's connection table. The lab
/// is removed at the end, on error and on Ctrl-C. Where the kernel backend differs from the
/// script: DR (-g) and TUN (-i) real servers run as NAT (-m), said on stderr (the pick does
/// not depend on the method); time is real, so a `sleep` longer than --max-sleep stops the
/// run (exit status 2) and says why (TIME_WAIT's 120 s and the lblc/lblcr cache sweep have no
/// knob in Linux 6.1); `mark N` is an nftables rule per flow (`nft`), or where the kernel has
/// no nf_tables, a client socket on the director with SO_MARK N (said on stderr); a scheduler
/// the kernel lacks (twos is not in Linux 6.1) is an error naming it and the kernel; `load`
/// (placeholder conns, the core only) is an error naming the line and the alternative, `open`. Needs
/// root and a kernel with IPVS; on a host without it the script runs in lvslab's VM (booted
/// on first use; `lvslab vm status`), with the same output and exit status.
///
/// `--compare` runs the script on both and prints each step with `both:` when the picks
/// agree; at the first step where they differ it prints the core's and the kernel's pick
/// (`core:` / `kernel:`) and exits 1, naming the line. Exit status 2: the kernel run stopped
/// early (a long sleep, marks that cannot be set), the rest is printed with `core:` only.
#[derive(clap::Args, Debug)]
pub struct SimulateArgs {
    /// Script file, or `-` for standard input.
    #[arg(default_value = "-")]
    pub file: String,
    /// One JSON object per connection step: {"line": N, "event": "conn", "server": "ADDR"|null},
    /// with --explain an "explain" object too (candidates, decision, chosen).
    /// With --compare each also names its "backend" (both, core, kernel), and a last object
    /// holds the "summary".
    #[arg(long)]
    pub json: bool,
    /// Explain each pick: candidates, loads and the deciding comparison (the core's view).
    #[arg(long)]
    pub explain: bool,
    /// Which balancer runs the script.
    #[arg(long, value_enum, default_value_t = SimBackend::Userspace)]
    pub backend: SimBackend,
    /// Run on both backends and stop at the first step where they pick differently.
    #[arg(long, conflicts_with = "backend")]
    pub compare: bool,
    /// Kernel backend: run on this machine's kernel (inside the VM, or on a host with IPVS);
    /// never start a VM.
    #[arg(long)]
    pub here: bool,
    /// Kernel backend: the longest `sleep` waited out in real time; a longer one stops the run.
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_MAX_SLEEP_SECS as f64)]
    pub max_sleep: f64,
}

/// Run the command.
pub fn run(args: SimulateArgs) -> Result<()> {
    let kernel = args.compare || args.backend != SimBackend::Userspace;
    if kernel && !args.here && !crate::vmlab::host_has_ipvs() {
        eprintln!("lvslab: this host's kernel has no IPVS; the script runs against the kernel in lvslab's VM");
        let file = (args.file != "-").then(|| std::path::Path::new(&args.file));
        std::process::exit(crate::vmlab::simulate(file)?);
    }
    let (name, script) = read_script(&args.file)?;
    if !args.compare && args.backend == SimBackend::Userspace {
        return run_userspace(&args, &name, &script);
    }
    let lines =
        parse_script(&script).map_err(|e| anyhow::anyhow!("{name}:{}: {}", e.line, e.message))?;
    if args.explain && !args.compare {
        bail!("--explain shows the core's reasoning; the kernel backend has none to show (use --compare --explain)");
    }
    let max_sleep = Duration::try_from_secs_f64(args.max_sleep)
        .map_err(|_| anyhow::anyhow!("--max-sleep needs a number of seconds >= 0"))?;
    lvslab_simk::check_host()?;
    let p = lvslab_simk::plan(&lines).with_context(|| format!("in {name}"))?;
    for c in &p.converted {
        if args.compare {
            eprintln!("note: {c} (--compare runs the core with NAT there too, so both sides see the same method)");
        } else {
            eprintln!("note: {c}");
        }
    }
    let interrupts = DeferredInterrupts::block()?;
    let pending = || interrupts.pending().is_some();
    let opts = KernelOptions {
        max_sleep,
        interrupted: Some(&pending),
        ..KernelOptions::default()
    };
    let started = Instant::now();
    let res = if args.compare {
        run_compare(&args, &lines, &opts)
    } else {
        run_kernel(&args, &lines, &opts)
    };
    let res = res.with_context(|| format!("in {name}"));
    if std::env::var_os("LVSLAB_SIMK_TIME").is_some() {
        eprintln!("kernel backend: {:.2} s", started.elapsed().as_secs_f64());
    }
    match res {
        Ok(Outcome::Complete) => Ok(()),
        Ok(Outcome::Stopped { reason, .. }) => {
            eprintln!("stopped: {reason}");
            drop(interrupts);
            std::process::exit(2);
        }
        Err(e) => Err(e),
    }
}

fn read_script(file: &str) -> Result<(String, String)> {
    if file == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the script from standard input")?;
        Ok(("<stdin>".to_string(), s))
    } else {
        let path = PathBuf::from(file);
        let s = std::fs::read_to_string(&path).map_err(|e| {
            anyhow::anyhow!(
                "reading simulate script {}: {e}\n  help: give a script's path (examples/simulate/ has one per scheduler) or - for standard input",
                path.display()
            )
        })?;
        Ok((path.display().to_string(), s))
    }
}

fn run_userspace(args: &SimulateArgs, name: &str, script: &str) -> Result<()> {
    let mut sim = Sim::new(IpvsConfig {
        explain: args.explain,
        ..IpvsConfig::default()
    });
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for (i, line) in script.lines().enumerate() {
        // FILE:LINE: as compilers say it, so editors jump to the line.
        let report = sim
            .step(i + 1, line)
            .map_err(|e| anyhow::anyhow!("{name}:{}: {}", e.line, e.message))?;
        if let Some(r) = report {
            print_report(&mut out, &r, args.json, args.explain)?;
        }
    }
    Ok(())
}

fn run_kernel(
    args: &SimulateArgs,
    lines: &[ScriptLine],
    opts: &KernelOptions<'_>,
) -> Result<Outcome> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut write_err = None;
    let run = lvslab_simk::run_kernel(lines, opts, &mut |r| match print_report(
        &mut out, r, args.json, false,
    )
    .and_then(|()| Ok(out.flush()?))
    {
        Ok(()) => ControlFlow::Continue(()),
        Err(e) => {
            write_err = Some(e);
            ControlFlow::Break(())
        }
    })?;
    if let Some(e) = write_err {
        return Err(e);
    }
    for n in &run.notes {
        eprintln!("note: {n}");
    }
    Ok(run.outcome)
}

fn run_compare(
    args: &SimulateArgs,
    lines: &[ScriptLine],
    opts: &KernelOptions<'_>,
) -> Result<Outcome> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut write_err = None;
    let cfg = IpvsConfig {
        explain: args.explain,
        ..IpvsConfig::default()
    };
    let cmp = lvslab_simk::compare(lines, cfg, opts, &mut |c, k| {
        let res = if c.server == k.server {
            print_marked(&mut out, "both:  ", c, args)
        } else {
            print_marked(&mut out, "core:  ", c, args)
                .and_then(|()| print_marked(&mut out, "kernel:", k, args))
        };
        if let Err(e) = res.and_then(|()| Ok(out.flush()?)) {
            write_err.get_or_insert(e);
        }
    })?;
    if let Some(e) = write_err {
        return Err(e);
    }
    for n in &cmp.notes {
        eprintln!("note: {n}");
    }
    let release = lvslab_simk::kernel_release();
    if let Some(d) = &cmp.difference {
        bail!(
            "{d}\n  ({} earlier steps agree; kernel: Linux {release})",
            cmp.agreed()
        );
    }
    if let Outcome::Stopped { line, .. } = &cmp.outcome {
        for r in cmp.core.iter().filter(|r| r.line >= *line) {
            print_marked(&mut out, "core:  ", r, args)?;
        }
    }
    let summary = match &cmp.outcome {
        Outcome::Complete => format!(
            "summary: {} of {} steps compared, both backends agree on every one (kernel: Linux {release})",
            cmp.agreed(),
            cmp.core.len()
        ),
        Outcome::Stopped { line, .. } => format!(
            "summary: {} of {} steps compared, both backends agree on every one; not compared from line {line} on (kernel: Linux {release})",
            cmp.agreed(),
            cmp.core.len()
        ),
    };
    if args.json {
        let v = serde_json::json!({
            "summary": {
                "steps": cmp.core.len(),
                "compared": cmp.agreed(),
                "agree": true,
                "stopped_at": match &cmp.outcome {
                    Outcome::Stopped { line, .. } => Some(*line),
                    Outcome::Complete => None,
                },
                "kernel": release,
            }
        });
        writeln!(out, "{v}")?;
    } else {
        writeln!(out, "{summary}")?;
    }
    Ok(cmp.outcome)
}

fn print_marked(
    out: &mut impl Write,
    mark: &str,
    r: &StepReport,
    args: &SimulateArgs,
) -> Result<()> {
    if args.json {
        let mut v = report_json(r, args.explain);
        v["backend"] = mark.trim().trim_end_matches(':').into();
        writeln!(out, "{v}")?;
    } else {
        write!(out, "{mark} ")?;
        print_report(out, r, false, args.explain)?;
    }
    Ok(())
}

fn print_report(out: &mut impl Write, r: &StepReport, json: bool, explain: bool) -> Result<()> {
    if json {
        writeln!(out, "{}", report_json(r, explain))?;
    } else {
        write!(out, "{}", r.text(explain))?;
    }
    Ok(())
}

/// One step as JSON; with `explain`, the core's explanation too, its servers written as the
/// text output writes them (ADDRESS:PORT as the conn reaches the server).
fn report_json(r: &StepReport, explain: bool) -> serde_json::Value {
    let mut v = serde_json::json!({
        "line": r.line,
        "event": r.event,
        "server": r.server.map(|s| s.to_string()),
    });
    if let Some(e) = r.explain.as_ref().filter(|_| explain) {
        v["explain"] = serde_json::to_value(e).unwrap_or(serde_json::Value::Null);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// dh.sim lists its fwmark servers without a port (`-r 192.168.1.201`, port 0); the
    /// JSON's "server", the explanation's "chosen" and its candidate rows must all write the
    /// address the conn reaches, as the text does.
    #[test]
    fn json_writes_each_server_as_the_text_does() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/simulate/dh.sim"
        );
        let script = std::fs::read_to_string(path).expect("dh.sim");
        let mut sim = Sim::new(IpvsConfig {
            explain: true,
            ..IpvsConfig::default()
        });
        let reports = sim.run_script(&script).expect("runs");
        assert!(!reports.is_empty());
        for r in &reports {
            let v = report_json(r, true);
            let server = v["server"].as_str().expect("a server");
            assert_eq!(v["explain"]["chosen"], server, "{v}");
            let rows: Vec<&str> = v["explain"]["candidates"]
                .as_array()
                .expect("candidates")
                .iter()
                .filter_map(|c| c["server"].as_str())
                .collect();
            assert!(rows.contains(&server), "{v}");
            assert!(rows.iter().all(|s| !s.ends_with(":0")), "{v}");
            assert!(r.text(true).contains(server));
            assert!(report_json(r, false).get("explain").is_none());
        }
    }
}
