//! `lvslab status [--lab LAB] [--json]`: what a lab is made of and what runs in it.
use anyhow::Result;
use lvslab_netns::{netns, Lab, Peer};

use crate::labarg::LabArg;
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
    Ok(())
}
