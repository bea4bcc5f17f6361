//! `lvslab up TOPOLOGY [--name LAB]`: build a lab and start its daemons.
use std::time::Instant;

use anyhow::{Context, Result};
use lvslab_engine::{DaemonConfig, DeferredInterrupts, EngineError, Injection, UpOptions};
use lvslab_netns::{Lab, Role, Topology};

/// Build a lab: one network namespace per node, wired as the topology says, real servers
/// serving. The lab is named after the topology file unless --name is given, so the same
/// topology can run several times side by side.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A name from topologies/ (e.g. nat-topology) or a path to a .toml file.
    pub topology: String,
    /// Lab name (default: the topology file's stem). Namespaces are called lvs-<LAB>-<node>.
    #[arg(long)]
    pub name: Option<String>,
    /// The balancer: lvslab's userspace director, or kernel IPVS (the director owns the
    /// VIP and forwards, as the seed's director does; needs a kernel with IPVS).
    #[arg(long, default_value = "userspace", value_name = "userspace|ipvs")]
    pub backend: lvslab_netns::Backend,
    /// Print nothing on success.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Run the command.
pub fn run(args: Args) -> Result<()> {
    let (topo, warnings) = Topology::find_with_warnings(&args.topology)?;
    // As `validate` does, and even with --quiet: a lab built wrong on purpose (`mistakes`)
    // or by accident must say so where its builder looks.
    if !warnings.is_empty() {
        eprintln!("{warnings}");
    }
    // Checked before anything is made: without root the first mkdir under /run/lvslab
    // fails with a bare "Permission denied" that does not say what to do.
    let uid = nix::unistd::Uid::effective();
    if !uid.is_root() {
        anyhow::bail!(
            "lvslab up builds network namespaces, which needs root (running as uid {uid})\n  help: run it as root, e.g. sudo lvslab up {}",
            args.topology
        );
    }
    let name = args.name.clone().unwrap_or_else(|| topo.name.clone());
    let inject = Injection::from_env()?;
    let daemons = DaemonConfig::new(std::env::current_exe().context("find the lvslab executable")?);
    let t0 = Instant::now();
    let interrupts = DeferredInterrupts::block()?;
    let opts = UpOptions {
        daemons,
        inject,
        interrupts: Some(&interrupts),
        backend: args.backend,
    };
    match lvslab_engine::up(&name, &topo, &opts) {
        Ok(lab) => {
            drop(interrupts);
            if !args.quiet {
                print_summary(&lab, t0.elapsed());
            }
            Ok(())
        }
        Err(e @ EngineError::Interrupted { signal, .. }) => {
            eprintln!("lvslab up: {e}");
            // Exit with the signal still held back: the usual 128+signal status.
            std::process::exit(128 + signal as i32);
        }
        Err(e) => Err(e.into()),
    }
}

fn print_summary(lab: &Lab, took: std::time::Duration) {
    let st = &lab.state;
    let t = &st.topology;
    println!(
        "lab {} is up ({} backend): {} nodes, {} links, {} LANs in {:.0} ms (namespaces lvs-{}-*)",
        st.lab,
        st.backend,
        st.nodes.len(),
        t.links.len(),
        t.lans.len(),
        took.as_secs_f64() * 1000.0,
        st.lab
    );
    for n in &st.nodes {
        let addrs: Vec<String> = n
            .interfaces
            .iter()
            .map(|i| {
                let a: Vec<String> = i.addresses.iter().map(ToString::to_string).collect();
                match &i.label {
                    Some(l) => format!("{} {} ({l})", i.name, a.join(",")),
                    None => format!("{} {}", i.name, a.join(",")),
                }
            })
            .chain(n.lo_addresses.iter().map(|a| format!("lo {a} (VIP)")))
            .collect();
        println!(
            "  {:<10} {:<10} {}",
            n.name,
            n.role.to_string(),
            addrs.join("  ")
        );
    }
    for s in &t.services {
        println!("  service {s}");
    }
    let l = &st.lab;
    println!("try:");
    println!("  lvslab status --lab {l}");
    if let Some(s) = t.services.first() {
        if let Some(client) = t.nodes.iter().find(|n| n.role == Role::Client) {
            println!(
                "  lvslab request --lab {l} --from {} --to {}:{} -n 10",
                client.name, s.vip, s.port
            );
        }
        if let Some(rs) = s.real_servers.first() {
            println!(
                "  lvslab request --lab {l} --from {} --to {}:{}",
                s.director, rs.address, rs.port
            );
        }
    }
    if let Some(n) = st.nodes.first() {
        println!("  lvslab exec --lab {l} {} -- ip addr", n.name);
    }
    println!("  lvslab down --lab {l}");
}
