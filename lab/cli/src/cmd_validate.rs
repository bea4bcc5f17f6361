//! `lvslab validate FILE`: check a topology file without building anything.
use anyhow::Result;
use lvslab_netns::Topology;

/// Check a topology file and report every problem with file:line:col and a fix (warnings
/// too, which do not make it fail).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Topology file (or a name from topologies/).
    pub file: String,
}

/// Run the command.
pub fn run(args: Args) -> Result<()> {
    let (t, warnings) = Topology::find_with_warnings(&args.file)?;
    // Warnings go to stderr before the verdict: the file is usable, but probably not as meant.
    if !warnings.is_empty() {
        eprintln!("{warnings}");
    }
    println!(
        "{}: ok ({} nodes, {} links, {} LANs, {} services)",
        t.path.display(),
        t.nodes.len(),
        t.links.len(),
        t.lans.len(),
        t.services.len()
    );
    Ok(())
}
