//! `lvslab exec [--lab LAB] NODE -- CMD...`: run a command inside a node's namespace.
use std::process::Command;

use anyhow::Result;
use lvslab_netns::{netns, Lab};

/// Run a command in a node's network namespace (like `ip netns exec lvs-LAB-NODE CMD`);
/// its exit code is passed through.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The lab (default: the only lab that is up).
    #[arg(long)]
    pub lab: Option<String>,
    /// Node name, e.g. rs1.
    pub node: String,
    /// The command and its arguments (after `--`).
    #[arg(last = true, required = true)]
    pub cmd: Vec<String>,
}

/// Run the command.
pub fn run(args: Args) -> Result<()> {
    let lab = Lab::load(&lvslab_engine::resolve_lab(args.lab.as_deref())?)?;
    let ns = lab.netns_of(&args.node)?;
    let mut cmd = Command::new(&args.cmd[0]);
    cmd.args(&args.cmd[1..]);
    crate::cmd_ipvsadm::put_shim_on_path(&lab, &args.node, &mut cmd);
    let status = netns::command_in(&ns, cmd)?.status().map_err(|e| {
        // "No such file or directory" alone does not say that the program is the missing
        // file, nor what to do about it.
        let help = if e.kind() == std::io::ErrorKind::NotFound {
            format!(
                "\n  help: {:?} is not on PATH ({}); install it (e.g. apt-get install tcpdump) or give its full path",
                args.cmd[0],
                std::env::var("PATH").unwrap_or_default()
            )
        } else {
            String::new()
        };
        anyhow::anyhow!("run {:?} in {ns}: {e}{help}", args.cmd[0])
    })?;
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    std::process::exit(code);
}
