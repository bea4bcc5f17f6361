//! `lvslab up TOPOLOGY [--name LAB]`: build a lab and start its daemons.
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};
use lvslab_netns::{build, BuildOptions, Lab, Role, Topology};
use nix::sys::signal::{SigSet, Signal};

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
    /// Print nothing on success.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Environment variable that makes `up` fail on purpose after a step
/// (namespaces, links, addresses, daemons), or be interrupted (`interrupt`), so rollback
/// can be tested.
pub const INJECT_ENV: &str = "LVSLAB_INJECT_FAILURE";

/// Run the command.
pub fn run(args: Args) -> Result<()> {
    let topo = Topology::find(&args.topology)?;
    let name = args.name.clone().unwrap_or_else(|| topo.name.clone());
    let inject = std::env::var(INJECT_ENV).ok();
    let opts = BuildOptions {
        fail_after: inject
            .as_deref()
            .filter(|s| !matches!(*s, "daemons" | "interrupt"))
            .map(str::parse)
            .transpose()?,
    };
    let t0 = Instant::now();
    let interrupts = DeferredInterrupts::block()?;
    let mut lab = build(&name, &topo, &opts)
        .with_context(|| format!("building lab {name} failed; everything it made was removed"))?;
    let started = start_daemons(&mut lab).and_then(|()| {
        match inject.as_deref() {
            Some("daemons") => anyhow::bail!("injected failure after step daemons"),
            // Ctrl-C arriving while the lab is half built (held back until now).
            Some("interrupt") => {
                nix::sys::signal::raise(Signal::SIGINT).context("raise the injected interrupt")
            }
            _ => Ok(()),
        }
    });
    if let Err(e) = started {
        let _ = lab.down();
        return Err(e.context(format!(
            "starting daemons of lab {name} failed; the lab was removed"
        )));
    }
    if let Some(sig) = interrupts.pending() {
        let _ = lab.down();
        eprintln!("lvslab up: interrupted by {sig}; lab {name} was taken down again");
        // Exit with the signal still blocked: the usual 128+signal status, nothing half built.
        std::process::exit(128 + sig as i32);
    }
    drop(interrupts);
    if !args.quiet {
        print_summary(&lab, t0.elapsed());
    }
    Ok(())
}

/// Holds Ctrl-C, SIGTERM and SIGHUP back while a lab is half built, so an interrupt makes
/// `up` take the lab down again instead of leaving namespaces behind. Threads the builder
/// starts inherit the mask; spawned daemons do not (std resets the mask before exec).
struct DeferredInterrupts {
    set: SigSet,
}

impl DeferredInterrupts {
    const SIGNALS: [Signal; 3] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

    fn block() -> Result<Self> {
        let mut set = SigSet::empty();
        for s in Self::SIGNALS {
            set.add(s);
        }
        set.thread_block()
            .context("block interrupts while the lab is built")?;
        Ok(Self { set })
    }

    /// The first held-back interrupt that arrived, if any.
    fn pending(&self) -> Option<Signal> {
        let mut pending = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigpending fills the set it is given; it is read only after success.
        if unsafe { libc::sigpending(pending.as_mut_ptr()) } != 0 {
            return None;
        }
        // SAFETY: initialised by the successful sigpending above.
        let pending = unsafe { pending.assume_init() };
        Self::SIGNALS
            .into_iter()
            // SAFETY: sigismember only reads the initialised set.
            .find(|s| unsafe { libc::sigismember(&pending, *s as libc::c_int) } == 1)
    }
}

impl Drop for DeferredInterrupts {
    fn drop(&mut self) {
        let _ = self.set.thread_unblock();
    }
}

/// Start the per-node daemons `up` owns: `lvslab serve` on every real server (unless
/// `serve = false`).
pub fn start_daemons(lab: &mut Lab) -> Result<()> {
    let exe = std::env::current_exe().context("find the lvslab executable")?;
    let servers: Vec<String> = lab
        .state
        .topology
        .nodes
        .iter()
        .filter(|n| n.role == Role::Realserver && n.serve)
        .map(|n| n.name.clone())
        .collect();
    for node in servers {
        let mut cmd = Command::new(&exe);
        cmd.args(["serve", "--lab", lab.name(), "--node", &node]);
        lab.spawn_daemon(&node, &format!("serve-{node}"), cmd, true)?;
    }
    crate::director::labinfo::start_director_daemons(lab)
}

fn print_summary(lab: &Lab, took: std::time::Duration) {
    let st = &lab.state;
    let t = &st.topology;
    println!(
        "lab {} is up: {} nodes, {} links, {} LANs in {:.0} ms (namespaces lvs-{}-*)",
        st.lab,
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
    println!("  lvslab status {l}");
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
    println!("  lvslab down {l}");
}
