//! `lvslab director`: the userspace director daemon in the foreground (lvslab-director's
//! device loop over AF_PACKET, inside the director node's namespace).

use std::path::PathBuf;

use anyhow::{Context, Result};

/// Arguments of `lvslab director`.
#[derive(clap::Args, Debug)]
pub struct DirectorArgs {
    /// The lab (default: the only lab that is up).
    #[arg(long)]
    pub lab: Option<String>,
    /// The director node; needed only when the lab has several directors with services.
    #[arg(long)]
    pub node: Option<String>,
    /// Run without a lab, in the current network namespace, with this ipvsadm line
    /// (repeatable, e.g. --rule='-A -t 192.168.1.250:80 -s rr'): how a lab built by hand
    /// (`lvslab commands --backend userspace`) starts it.
    #[arg(
        long = "rule",
        value_name = "IPVSADM-LINE",
        allow_hyphen_values = true,
        conflicts_with_all = ["lab", "node"]
    )]
    pub rules: Vec<String>,
    /// The control socket of a director started with --rule.
    #[arg(
        long,
        requires = "rules",
        value_name = "PATH",
        default_value = "/run/lvslab-director.sock"
    )]
    pub socket: PathBuf,
}

/// Run the director of the lab in the foreground until killed.
pub fn run(args: DirectorArgs) -> Result<()> {
    crate::director::logging::init();
    if !args.rules.is_empty() {
        return run_standalone(&args.rules, &args.socket);
    }
    let lab = lvslab_engine::resolve_lab(args.lab.as_deref())?;
    let plan = crate::director::labinfo::director_plan(&lab, args.node.as_deref())?;
    tracing::info!(lab = %lab, node = %plan.node, netns = %plan.netns, "starting the userspace director");
    let netns = plan.netns.clone();
    lvslab_netns::netns::run_in(&netns, move || {
        lvslab_director::serve(
            &plan.lines,
            &plan.ha,
            &plan.socket,
            lvslab_netns::netns::notify_ready,
        )
    })
    .with_context(|| format!("enter namespace {netns}"))??;
    Ok(())
}

/// The director of a lab built by hand: its table from the command line, the namespace
/// it was started in (`ip netns exec NS lvslab director --rule ...`), no VRRP.
fn run_standalone(rules: &[String], socket: &std::path::Path) -> Result<()> {
    // A typo should be named here, with its line, not as a failed table build later.
    for r in rules {
        lvslab_core::ipvsadm::parse(r).with_context(|| format!("--rule {r:?}"))?;
    }
    tracing::info!(rules = rules.len(), socket = %socket.display(), "starting the userspace director without a lab");
    lvslab_director::serve(rules, &[], socket, lvslab_netns::netns::notify_ready)?;
    Ok(())
}
