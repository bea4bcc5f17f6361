//! `lvslab capture`: capture on lab hops around any command.

use anyhow::{bail, Context, Result};
use lvslab_capture::{files, LiveCapture};
use lvslab_engine::{capture_targets, role_map};
use lvslab_netns::Lab;
use std::path::PathBuf;
use std::process::Command;

/// Capture every interface of every node (or of --node ones) while CMD runs, then write
/// `<node>-<iface>.pcap` per hop and a merged `path.pcapng`, and print the path.
///
/// Example: `lvslab capture -- lvslab request --from client --to 192.168.1.250:80`
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The lab (default: the only lab that is up).
    #[arg(long)]
    pub lab: Option<String>,
    /// Capture on this node only (repeatable).
    #[arg(long)]
    pub node: Vec<String>,
    /// tcpdump filter expression, e.g. "tcp port 80".
    #[arg(long)]
    pub filter: Option<String>,
    /// Output directory (default: captures/<lab>/run-<unix time>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the normalized packet path when done.
    #[arg(long)]
    pub path: bool,
    /// The command to run while capturing.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub cmd: Vec<String>,
}

/// Run the command.
pub fn run(args: Args) -> Result<()> {
    let name = lvslab_engine::resolve_lab(args.lab.as_deref())?;
    let lab = Lab::load(&name)?;
    for n in &args.node {
        lab.node(n)?;
    }
    let targets = capture_targets(&lab, &args.node);
    let out = match args.out.clone() {
        Some(o) => o,
        None => {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            PathBuf::from("captures")
                .join(&name)
                .join(format!("run-{secs}"))
        }
    };
    // Picks explained while CMD runs are saved as picks.json for `lvslab trace --run`.
    let explainer = crate::cmd_trace::Explainer::start(&lab);
    let cap = LiveCapture::start(&targets, args.filter.as_deref())?;
    let Some((prog, rest)) = args.cmd.split_first() else {
        bail!("give a command after --");
    };
    let status = Command::new(prog)
        .args(rest)
        // Every hop is captured already: a failing `lvslab request` sends no extra tries.
        .env(crate::diagnose::CAPTURING_ENV, "1")
        .status()
        .with_context(|| format!("running {prog}"));
    // Let the last replies and closing segments arrive before stopping.
    cap.wait_quiet(
        std::time::Duration::from_millis(150),
        std::time::Duration::from_secs(3),
    );
    let caps = cap.stop()?;
    let picks = explainer.as_ref().map(crate::cmd_trace::Explainer::picks);
    drop(explainer);
    let existed = out.exists();
    let write = || -> Result<Vec<PathBuf>> {
        let written = files::write_run_dir(&out, &caps)?;
        crate::cmd_trace::write_roles(&out, &lab)?;
        if let Some(picks) = &picks {
            crate::cmd_trace::write_picks(&out, picks)?;
        }
        Ok(written)
    };
    let written = match write() {
        Ok(w) => w,
        Err(e) => {
            // A run directory with some pcaps missing would be read later as a run where
            // those hops saw nothing: remove what this run made.
            if !existed {
                let _ = std::fs::remove_dir_all(&out);
            }
            // `{e:#}` would repeat an io error that the file error already shows.
            let mut msg = e.to_string();
            for cause in e.chain().skip(1).map(|c| c.to_string()) {
                if !msg.contains(&cause) {
                    msg = format!("{msg}: {cause}");
                }
            }
            bail!(
                "{msg}\n  help: free space there, or write the captures elsewhere with --out DIR (nothing of this run was kept)"
            );
        }
    };
    let total: usize = caps.iter().map(|c| c.packets.len()).sum();
    println!("captured {total} packets on {} hops:", caps.len());
    for p in &written {
        println!("  {}", p.display());
    }
    if args.path {
        let roles = role_map(&lab);
        print!(
            "\n{}",
            lvslab_capture::normalize(&caps, &roles, Default::default())
        );
    }
    let status = status?;
    if !status.success() {
        bail!("{prog} exited with {status}");
    }
    Ok(())
}
