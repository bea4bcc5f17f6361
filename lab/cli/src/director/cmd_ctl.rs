//! `lvslab service add|edit|del` and `lvslab real add|edit|del`: live changes to a running
//! director, written with ipvsadm's own flags and carried to it as an ipvsadm line.

use anyhow::{Context, Result};

/// What to do with a virtual service or real server.
#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// Add it (ipvsadm -A / -a).
    Add(Target),
    /// Change it (ipvsadm -E / -e).
    Edit(Target),
    /// Delete it (ipvsadm -D / -d).
    Del(Target),
    /// Show the table with weights and active/inactive connections (ipvsadm -Ln).
    List(crate::director::cmd_stats::ListArgs),
}

/// Which director, and ipvsadm's flags for the rest.
#[derive(clap::Args, Debug)]
pub struct Target {
    /// The lab (default: the only lab that is up).
    #[arg(long)]
    pub lab: Option<String>,
    /// The director node, when the lab has several.
    #[arg(long)]
    pub node: Option<String>,
    /// ipvsadm flags, e.g. `-t 192.168.1.250:80 -r 192.168.1.201:80 -m -w 2`.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        required = true,
        value_name = "IPVSADM_FLAGS"
    )]
    pub flags: Vec<String>,
}

/// `lvslab service ...`.
#[derive(clap::Args, Debug)]
pub struct ServiceArgs {
    #[command(subcommand)]
    pub action: Action,
}

/// `lvslab real ...`.
#[derive(clap::Args, Debug)]
pub struct RealArgs {
    #[command(subcommand)]
    pub action: Action,
}

/// The ipvsadm command line for a change to a service (`real = false`) or real server;
/// `None` for `list`, which changes nothing.
pub fn ipvsadm_line(action: &Action, real: bool) -> Option<(String, &Target)> {
    let (flag, target) = match (action, real) {
        (Action::List(_), _) => return None,
        (Action::Add(t), false) => ("-A", t),
        (Action::Edit(t), false) => ("-E", t),
        (Action::Del(t), false) => ("-D", t),
        (Action::Add(t), true) => ("-a", t),
        (Action::Edit(t), true) => ("-e", t),
        (Action::Del(t), true) => ("-d", t),
    };
    Some((format!("{flag} {}", target.flags.join(" ")), target))
}

fn send(action: &Action, real: bool) -> Result<()> {
    let Some((line, target)) = ipvsadm_line(action, real) else {
        if let Action::List(args) = action {
            return crate::director::cmd_stats::run_list(args);
        }
        return Ok(());
    };
    // Parse here too, so a typo is reported before anything is sent.
    lvslab_core::ipvsadm::parse(&line).with_context(|| format!("`ipvsadm {line}`"))?;
    crate::director::cmd_stats::balancer(target.lab.as_deref(), target.node.as_deref())?
        .ipvsadm(&line)?;
    println!("applied: ipvsadm {line}");
    Ok(())
}

impl Action {
    /// The lab named on the command line, if any.
    pub fn lab(&self) -> Option<&str> {
        match self {
            Action::Add(t) | Action::Edit(t) | Action::Del(t) => t.lab.as_deref(),
            Action::List(l) => l.lab.name(),
        }
    }
}

/// Run `lvslab service ...`.
pub fn run_service(args: ServiceArgs) -> Result<()> {
    send(&args.action, false)
}

/// Run `lvslab real ...`.
pub fn run_real(args: RealArgs) -> Result<()> {
    send(&args.action, true)
}
