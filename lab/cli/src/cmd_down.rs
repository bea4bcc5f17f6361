//! `lvslab down [--lab LAB] [--all]`: tear a lab down.
use anyhow::Result;

use crate::labarg::LabArg;

/// Stop a lab's daemons and delete its namespaces (exactly what `up` recorded).
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub lab: LabArg,
    /// Remove every lab, and also leftover lvs-* namespaces (and processes in them) whose state is gone.
    #[arg(long, conflicts_with_all = ["lab", "lab_positional"])]
    pub all: bool,
}

/// Run the command.
pub fn run(args: Args) -> Result<()> {
    let removed = if args.all {
        let removed = lvslab_engine::down_all()?;
        crate::vmlab::down_all()?;
        removed
    } else {
        lvslab_engine::down(&lvslab_engine::resolve_lab(args.lab.name())?)?
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
