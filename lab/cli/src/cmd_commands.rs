//! `lvslab commands TOPOLOGY`: the lab `lvslab up` builds, printed as the bash commands a
//! person types (the generator is `lvslab_engine::commands`). It builds nothing.
use std::io::Write;

use anyhow::{Context, Result};
use lvslab_engine::commands::{lab_commands, CommandsOptions, DEFAULT_PREFIX};
use lvslab_netns::{Backend, Topology};

/// Print a bash script that builds the lab by hand, node by node, in the seed tutorial's
/// four steps: the topology as comments, the plumbing (ip netns, veths, bridges, addresses,
/// routes, sysctls), the director, the real servers, a test with tcpdump at every role,
/// and the teardown. `bash SCRIPT up` builds and tests it, `bash SCRIPT down` removes it.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A name from topologies/ (e.g. nat-topology) or a path to a .toml file.
    pub topology: String,
    /// Kernel IPVS set up with ipvsadm (what a person at a shell uses; needs a kernel with
    /// IPVS and ipvsadm), or lvslab's userspace director started by hand.
    #[arg(long, default_value = "ipvs", value_name = "ipvs|userspace")]
    pub backend: Backend,
    /// Namespace names are PREFIX + node name; the default never collides with lvslab's
    /// own `lvs-` labs.
    #[arg(long, default_value = DEFAULT_PREFIX)]
    pub prefix: String,
}

/// Run the command.
pub fn run(args: Args) -> Result<()> {
    let topo = Topology::find(&args.topology)?;
    let script = lab_commands(
        &topo,
        &CommandsOptions {
            backend: args.backend,
            prefix: args.prefix,
        },
    )?;
    let mut out = std::io::stdout().lock();
    // A reader that went away (`| head`) is not an error of this command.
    match out.write_all(script.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("write the script to stdout"),
    }
}
