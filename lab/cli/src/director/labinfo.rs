//! What `lvslab director` needs from a lab: the director node, its namespace, its services
//! as ipvsadm lines (the engine's, the same the kernel backend is configured with) and its
//! control socket.

use anyhow::Result;
use lvslab_netns::Lab;
use std::path::PathBuf;

/// Everything `lvslab director` needs to start.
#[derive(Debug, Clone)]
pub struct DirectorPlan {
    /// The director node.
    pub node: String,
    /// Its namespace.
    pub netns: String,
    /// Its services as ipvsadm command lines.
    pub lines: Vec<String>,
    /// Its control socket.
    pub socket: PathBuf,
    /// The VRRP instances it joins (empty: it balances alone).
    pub ha: Vec<lvslab_director::HaSpec>,
}

/// The plan for `lvslab director --lab LAB [--node NODE]`.
pub fn director_plan(lab: &str, node: Option<&str>) -> Result<DirectorPlan> {
    let lab = Lab::load(lab)?;
    let topo = &lab.state.topology;
    let node = lvslab_engine::pick_director(topo, node)?;
    Ok(DirectorPlan {
        netns: lab.netns_of(&node)?,
        socket: lvslab_director::control::socket_path(&lab.run_dir(), &node),
        lines: lvslab_engine::director_lines(topo, &node),
        ha: lvslab_engine::ha_specs(topo, &node),
        node,
    })
}

/// The control socket of the userspace director of `lab` (picked as in [`director_plan`]).
pub fn control_socket(lab: &str, node: Option<&str>) -> Result<PathBuf> {
    let lab = Lab::load(lab)?;
    let node = lvslab_engine::pick_director(&lab.state.topology, node)?;
    Ok(lvslab_director::control::socket_path(&lab.run_dir(), &node))
}
