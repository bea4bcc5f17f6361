//! `lvslab down [LAB] [--all]`: tear a lab down.
use anyhow::Result;
use lvslab_netns::{state, Lab};

/// Stop a lab's daemons and delete its namespaces (exactly what `up` recorded).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Lab name (optional when exactly one lab is up).
    pub lab: Option<String>,
    /// Remove every lab, and also leftover lvs-* namespaces (and processes in them) whose state is gone.
    #[arg(long, conflicts_with = "lab")]
    pub all: bool,
}

/// Run the command.
pub fn run(args: Args) -> Result<()> {
    let removed = if args.all {
        state::down_all()?
    } else {
        let name = state::resolve_lab(args.lab.as_deref())?;
        Lab::load(&name)?.down()?
    };
    println!(
        "removed {} namespaces{}",
        removed.len(),
        if removed.is_empty() {
            String::new()
        } else {
            format!(": {}", removed.join(" "))
        }
    );
    Ok(())
}
