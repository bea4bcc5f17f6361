//! `lvslab trace`: the story of each connection, hop by hop, from the real captures.

use anyhow::{bail, Context, Result};
use lvslab_capture::{analyze, files, LiveCapture, NormalizeOptions};
use lvslab_director::control::PickRow;
use lvslab_engine::{capture_targets, role_map, Balancer};
use lvslab_netns::{Backend, Lab};
use lvslab_trace::{load_run, render_all, trace_report, Style, PICKS_FILE, ROLES_FILE};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Tell, hop by hop, what happened to each packet of a connection: where a router
/// forwarded it (TTL, MACs), where the director rewrote it (NAT), handed it on by MAC
/// only (DR) or wrapped it in IPIP (TUN), and, from the userspace director's own
/// explanation, why it picked that real server. Everything is read from the packets, so
/// a misconfigured lab is described as it really behaved.
///
/// Examples:
///   lvslab trace -- lvslab request --from client --to 192.168.1.250:80
///   lvslab trace --conn 2 --json -- lvslab request --from client --count 2
///   lvslab trace --run captures/t1234-0-nat-rr/nat-rr
///
/// Without --conn every conversation of the capture is traced, in path-text order (a
/// command may open several connections and ARP or health checks may add others). The
/// command's own output goes to stderr, so stdout holds only the trace.
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The lab (default: the only lab that is up).
    #[arg(long)]
    pub lab: Option<String>,
    /// Trace a finished run directory (of `lvslab test` or `lvslab capture --out`)
    /// instead of capturing around a command.
    #[arg(long, value_name = "DIR", conflicts_with = "cmd")]
    pub run: Option<PathBuf>,
    /// Only conversation N (numbered from 1 as in the path text; default: all).
    #[arg(long, value_name = "N")]
    pub conn: Option<usize>,
    /// JSON (an array of traces) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Write the run as one HTML page instead (every connection, the lab drawn, the
    /// picks, links to the captures); stdout only says where.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["json", "conn"])]
    pub html: Option<PathBuf>,
    /// Where the captures go (default: captures/<lab>/trace-<unix time>).
    #[arg(long, conflicts_with = "run")]
    pub out: Option<PathBuf>,
    /// The command to run while capturing.
    #[arg(last = true, value_name = "CMD", required_unless_present = "run")]
    pub cmd: Vec<String>,
}

/// Run the command.
pub fn run(args: Args) -> Result<()> {
    let (dir, cmd_result) = match &args.run {
        Some(dir) => (dir.clone(), Ok(())),
        None => capture_around(&args)?,
    };
    let lab = lvslab_engine::resolve_lab(args.lab.as_deref())
        .ok()
        .and_then(|n| Lab::load(&n).ok());
    let fallback = lab.as_ref().map(role_map);
    if let Some(html) = &args.html {
        let topo = lab.map(|l| l.state.topology);
        let report = lvslab_report::Report::from_run_dir(&dir, topo, fallback)
            .with_context(|| format!("reading {}", dir.display()))?;
        lvslab_report::write(&report, html)?;
        println!("lvslab trace: wrote {}", html.display());
        return cmd_result;
    }
    let run = load_run(&dir, fallback).with_context(|| format!("reading {}", dir.display()))?;
    let report = analyze(&run.captures, &run.roles, NormalizeOptions::default());
    if report.conversations.is_empty() {
        bail!(
            "{}: the captures hold no IP conversation to trace",
            dir.display()
        );
    }
    let traces = trace_report(&report, &run.roles, &run.picks, args.conn)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&traces)?);
    } else {
        let stdout = std::io::stdout();
        let color = stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none();
        print!("{}", render_all(&traces, Style { color }));
    }
    cmd_result
}

/// Captures around the command; returns the run directory and how the command ended (a
/// failed command is still traced: that is when a trace helps most).
fn capture_around(args: &Args) -> Result<(PathBuf, Result<()>)> {
    let Some((prog, rest)) = args.cmd.split_first() else {
        bail!("give a command after --, or --run DIR");
    };
    let name = lvslab_engine::resolve_lab(args.lab.as_deref())?;
    let lab = Lab::load(&name).with_context(|| {
        format!("lab {name} (a lab in lvslab's VM: `lvslab capture --lab {name} --out DIR -- CMD`, then `lvslab trace --run DIR`)")
    })?;
    let out = args.out.clone().unwrap_or_else(|| {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        PathBuf::from("captures")
            .join(&name)
            .join(format!("trace-{secs}"))
    });
    let targets = capture_targets(&lab, &[]);
    let explainer = Explainer::start(&lab);
    let cap = LiveCapture::start(&targets, None)?;
    // The command's own output goes to stderr: stdout is the trace's (and its JSON's).
    let status = Command::new(prog)
        .args(rest)
        // Every hop is captured already: a failing `lvslab request` sends no extra tries.
        .env(crate::diagnose::CAPTURING_ENV, "1")
        .stdout(std::io::stderr())
        .status()
        .with_context(|| format!("running {prog}"));
    // Let the last replies and closing segments arrive before stopping.
    cap.wait_quiet(
        std::time::Duration::from_millis(150),
        std::time::Duration::from_secs(3),
    );
    let caps = cap.stop()?;
    let picks = explainer.as_ref().map(Explainer::picks);
    drop(explainer);
    files::write_run_dir(&out, &caps)?;
    write_roles(&out, &lab)?;
    if let Some(picks) = picks {
        write_picks(&out, &picks)?;
    }
    eprintln!("lvslab trace: captures in {}", out.display());
    let cmd_result = match status {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(anyhow::anyhow!("{prog} exited with {s}")),
        Err(e) => Err(e),
    };
    Ok((out, cmd_result))
}

/// Writes the lab's role map (and its topology, for a report's picture) beside its
/// captures, so the run can be traced offline.
pub(crate) fn write_roles(dir: &Path, lab: &Lab) -> Result<()> {
    if let Ok(text) = lab.state.topology.to_toml() {
        let _ = std::fs::write(dir.join(lvslab_scenario::runner::TOPOLOGY_FILE), text);
    }
    let path = dir.join(ROLES_FILE);
    std::fs::write(&path, role_map(lab).to_text())
        .with_context(|| format!("writing {}", path.display()))
}

/// Writes the director's explained picks beside the captures (`picks.json`).
pub(crate) fn write_picks(dir: &Path, picks: &[PickRow]) -> Result<()> {
    let path = dir.join(PICKS_FILE);
    let json = serde_json::to_string_pretty(picks)? + "\n";
    std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))
}

/// Keeps the userspace director explaining its picks while a command runs, and puts
/// explaining back as it was when dropped.
pub(crate) struct Explainer {
    balancer: Box<dyn Balancer>,
    turn_off: bool,
}

impl Explainer {
    /// Turns explaining on; `None` for kernel IPVS (it keeps no reasons) or a lab
    /// without a reachable director.
    pub(crate) fn start(lab: &Lab) -> Option<Explainer> {
        if lab.state.backend != Backend::Userspace {
            return None;
        }
        let balancer = lvslab_engine::balancer(lab, None).ok()?;
        let was_on = balancer.explaining().ok()?;
        balancer.explain(true).ok()?;
        Some(Explainer {
            balancer,
            turn_off: !was_on,
        })
    }

    /// The picks kept so far (empty if the director cannot be asked).
    pub(crate) fn picks(&self) -> Vec<PickRow> {
        self.balancer.picks().unwrap_or_default()
    }
}

impl Drop for Explainer {
    fn drop(&mut self) {
        if self.turn_off {
            if let Err(e) = self.balancer.explain(false) {
                tracing::warn!("turning the director's explain off again: {e}");
            }
        }
    }
}
