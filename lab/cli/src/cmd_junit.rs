//! `lvslab junit-merge`: one JUnit report out of the shards' (`lvslab test --shard K/N
//! --junit FILE` on each machine of a CI matrix).
use std::path::PathBuf;

use anyhow::{Context, Result};
use lvslab_scenario::junit;

/// Merge JUnit XML files (e.g. one per `lvslab test --shard K/N`) into one; fails if a
/// test appears in two of them (overlapping shards).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The merged file to write (`-` for standard output).
    pub out: PathBuf,
    /// The JUnit files to merge.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// The merged testsuite's name.
    #[arg(long, default_value = "lvslab scenarios")]
    pub suite: String,
}

/// Run the command.
pub fn run(args: Args) -> Result<()> {
    let inputs = args
        .inputs
        .iter()
        .map(|p| {
            std::fs::read_to_string(p)
                .map(|t| (p.display().to_string(), t))
                .with_context(|| format!("reading {}", p.display()))
        })
        .collect::<Result<Vec<_>>>()?;
    let merged = junit::merge(&args.suite, &inputs)?;
    if args.out.as_os_str() == "-" {
        print!("{merged}");
    } else {
        std::fs::write(&args.out, &merged)
            .with_context(|| format!("writing {}", args.out.display()))?;
    }
    Ok(())
}
