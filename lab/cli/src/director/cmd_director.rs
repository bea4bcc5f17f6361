//! `lvslab director`: the userspace director daemon in the foreground (lvslab-director's
//! device loop over AF_PACKET, inside the director node's namespace).

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
}

/// Run the director of the lab in the foreground until killed.
pub fn run(args: DirectorArgs) -> Result<()> {
    crate::director::logging::init();
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
