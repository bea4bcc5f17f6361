//! The `lvslab` command line.
use clap::Parser;

/// Build Linux Virtual Server labs out of network namespaces and check how packets flow.
#[derive(Parser, Debug)]
#[command(name = "lvslab", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {}
}
