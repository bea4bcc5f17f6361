//! `lvslab failover [LAB]`: the current VRRP MASTER of a director pair gives up, as
//! keepalived does when it stops (an advert with priority 0), and the BACKUP takes the VIPs
//! over after its skew time. Waits until the new master is seen and says who it is.

use anyhow::{bail, Context, Result};
use lvslab_director::{control::socket_path, ControlClient, VrrpReport};
use lvslab_engine::pair::pair_states;
use lvslab_netns::Lab;
use std::time::{Duration, Instant};

use crate::labarg::LabArg;

/// Make the VRRP MASTER of the lab's director pair give up; the BACKUP takes over.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub lab: LabArg,
    /// The director to demote (default: the one that is MASTER now).
    #[arg(long)]
    pub node: Option<String>,
    /// How long to wait for the new master, in ms.
    #[arg(long, default_value_t = 5000)]
    pub timeout_ms: u64,
}

/// One line per instance: `director2 vrid 51 MASTER prio 100 (was BACKUP)`.
pub fn report_lines(node: &str, r: &VrrpReport) -> Vec<String> {
    r.instances
        .iter()
        .map(|i| {
            let master = match (i.master, i.master_priority) {
                (Some(m), Some(p)) if i.state != "MASTER" => format!(", master {m} prio {p}"),
                _ => String::new(),
            };
            format!(
                "vrrp {node} {} vrid {} v{} {} prio {}{master}",
                i.iface, i.vrid, i.version, i.state, i.priority
            )
        })
        .collect()
}

/// Run the command.
pub fn run(args: Args) -> Result<()> {
    let lab = Lab::load(&lvslab_engine::resolve_lab(args.lab.name())?)?;
    let before = pair_states(&lab);
    if before.is_empty() {
        bail!(
            "lab {} has no director pair: failover needs a service with backup = \"NODE\" (see topologies/ha-topology.toml)",
            lab.name()
        );
    }
    let node = match &args.node {
        Some(n) => n.clone(),
        None => before
            .iter()
            .find(|(_, i)| i.state == "MASTER")
            .map(|(n, _)| n.clone())
            .context("no lvslab director of the pair is MASTER now (is the master keepalived? then stop keepalived to fail over)")?,
    };
    let client = ControlClient::new(socket_path(&lab.run_dir(), &node));
    let t0 = Instant::now();
    client
        .failover()
        .with_context(|| format!("ask director {node} to give up mastership"))?;
    println!("failover: {node} sent priority 0 and is BACKUP now");
    let deadline = t0 + Duration::from_millis(args.timeout_ms);
    loop {
        let now = pair_states(&lab);
        if let Some((n, i)) = now.iter().find(|(n, i)| *n != node && i.state == "MASTER") {
            println!(
                "failover: {n} is MASTER of vrid {} after {:.0} ms",
                i.vrid,
                t0.elapsed().as_secs_f64() * 1000.0
            );
            return Ok(());
        }
        // A keepalived peer: lvslab's side hears it as master.
        if let Some((_, i)) = now
            .iter()
            .find(|(n, i)| *n == node && i.master.is_some() && i.state != "MASTER")
        {
            if let Some(m) = i.master {
                println!(
                    "failover: {m} (keepalived) is MASTER of vrid {} after {:.0} ms",
                    i.vrid,
                    t0.elapsed().as_secs_f64() * 1000.0
                );
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            bail!(
                "no new VRRP master within {} ms after {node} gave up (is the backup director running? see lvslab status)",
                args.timeout_ms
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
