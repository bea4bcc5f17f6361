//! `lvslab status [--lab LAB] [--json]`: what a lab is made of and what runs in it.
use anyhow::Result;
use lvslab_netns::{netns, Lab, Peer};

use crate::labarg::LabArg;
use lvslab_engine::health::ServerHealth;
use serde::Serialize;

/// Show a lab's nodes, roles, interfaces (MAC, addresses, labels, wiring), routes, services
/// and daemons (with whether each is still running).
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub lab: LabArg,
    /// Print JSON (an object with lab, topology, nodes, services, daemons).
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct DaemonView<'a> {
    name: &'a str,
    node: &'a str,
    pid: u32,
    running: bool,
    argv: &'a [String],
    log: String,
}

#[derive(Serialize)]
struct NodeView<'a> {
    #[serde(flatten)]
    node: &'a lvslab_netns::NodeInfo,
    netns_present: bool,
}

#[derive(Serialize)]
struct View<'a> {
    lab: &'a str,
    topology: String,
    complete: bool,
    backend: lvslab_netns::Backend,
    switch_netns: Option<&'a str>,
    nodes: Vec<NodeView<'a>>,
    services: &'a [lvslab_netns::ServiceSpec],
    daemons: Vec<DaemonView<'a>>,
    health: Vec<ServerHealth>,
    vrrp: Vec<VrrpView>,
}

#[derive(Serialize)]
struct VrrpView {
    node: String,
    #[serde(flatten)]
    instance: lvslab_director::VrrpRow,
}

/// One line per health-checked real server: `up`/`down`, since when, failed checks.
pub fn health_lines(rows: &[ServerHealth], now_ms: u64) -> Vec<String> {
    rows.iter()
        .map(|h| {
            let secs = now_ms.saturating_sub(h.since_ms) as f64 / 1000.0;
            let failures = match h.failures {
                0 => String::new(),
                1 => ", 1 failed check".to_owned(),
                n => format!(", {n} failed checks"),
            };
            format!(
                "health {} {} ({}) {} for {secs:.1} s{failures}",
                h.node,
                h.address,
                h.service,
                if h.up { "up" } else { "down" }
            )
        })
        .collect()
}

/// The current time as the health state file counts it.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Run the command.
pub fn run(args: Args) -> Result<()> {
    let lab = Lab::load(&lvslab_engine::resolve_lab(args.lab.name())?)?;
    let st = &lab.state;
    let view = View {
        lab: &st.lab,
        topology: st.topology.path.display().to_string(),
        complete: st.complete,
        backend: st.backend,
        switch_netns: st.switch_netns.as_deref(),
        nodes: st
            .nodes
            .iter()
            .map(|n| NodeView {
                node: n,
                netns_present: netns::exists(&n.netns),
            })
            .collect(),
        services: &st.topology.services,
        daemons: st
            .daemons
            .iter()
            .map(|d| DaemonView {
                name: &d.name,
                node: &d.node,
                pid: d.pid,
                running: d.alive(),
                argv: &d.argv,
                log: d.log.display().to_string(),
            })
            .collect(),
        // A lab without checks, or one whose checker has not written yet, shows none.
        health: lvslab_engine::health::read_health(&lab.run_dir()).unwrap_or_default(),
        vrrp: lvslab_engine::pair::pair_states(&lab)
            .into_iter()
            .map(|(node, instance)| VrrpView { node, instance })
            .collect(),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&view)?);
        return Ok(());
    }
    println!(
        "lab {} (topology {}, {} backend){}",
        view.lab,
        view.topology,
        view.backend,
        if view.complete { "" } else { " -- INCOMPLETE" }
    );
    for n in &view.nodes {
        let node = n.node;
        println!(
            "{} [{}] netns {}{}",
            node.name,
            node.role,
            node.netns,
            if n.netns_present { "" } else { " (MISSING)" }
        );
        for i in &node.interfaces {
            let addrs: Vec<String> = i.addresses.iter().map(ToString::to_string).collect();
            let wire = match &i.peer {
                Peer::Link { node, iface } => format!("link to {node}:{iface}"),
                Peer::Lan { lan, port } => format!("LAN {lan} (port {port})"),
            };
            let label = i.label.map(|l| format!(" {l}")).unwrap_or_default();
            println!(
                "  {:<6} {} {:<20}{label}  {wire}",
                i.name,
                i.mac,
                addrs.join(",")
            );
        }
        for a in &node.lo_addresses {
            println!("  lo     {a} (VIP, arp_ignore=1 arp_announce=2)");
        }
        for r in &node.routes {
            println!("  route  {r}");
        }
    }
    for s in view.services {
        println!("service {s}");
    }
    for d in &view.daemons {
        println!(
            "daemon {} on {} pid {} {} (log {})",
            d.name,
            d.node,
            d.pid,
            if d.running { "running" } else { "EXITED" },
            d.log
        );
    }
    for l in health_lines(&view.health, now_ms()) {
        println!("{l}");
    }
    for v in &view.vrrp {
        let report = lvslab_director::VrrpReport {
            instances: vec![v.instance.clone()],
            ..Default::default()
        };
        for l in crate::cmd_failover::report_lines(&v.node, &report) {
            println!("{l}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_lines_say_up_or_down_and_for_how_long() {
        let row = |up, failures| ServerHealth {
            service: "TCP 192.168.1.250:80".into(),
            node: "rs2".into(),
            address: "192.168.1.203:80".parse().expect("addr"),
            up,
            since_ms: 1_000,
            failures,
        };
        assert_eq!(
            health_lines(&[row(false, 3), row(true, 0)], 3_500),
            [
                "health rs2 192.168.1.203:80 (TCP 192.168.1.250:80) down for 2.5 s, 3 failed checks",
                "health rs2 192.168.1.203:80 (TCP 192.168.1.250:80) up for 2.5 s"
            ]
        );
    }
}
