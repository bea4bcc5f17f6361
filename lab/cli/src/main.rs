//! The `lvslab` command line.
use clap::Parser;

mod cmd_simulate;

/// Build Linux Virtual Server labs out of network namespaces and check how packets flow.
#[derive(Parser, Debug)]
#[command(name = "lvslab", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Run a script of ipvsadm lines and connection steps through the balancer core.
    Simulate(cmd_simulate::SimulateArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Simulate(a) => cmd_simulate::run(a),
    }
}
