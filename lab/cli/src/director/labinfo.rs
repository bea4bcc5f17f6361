//! What the director commands need from a lab: its director nodes, their namespaces, the
//! services as ipvsadm lines and the control socket paths.

use anyhow::{bail, Result};
use lvslab_engine::directors_with_services;
use lvslab_netns::{ForwardMethod, Lab, Protocol, ServiceSpec, Topology};
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
}

/// ipvsadm's protocol flag for a service.
fn proto_flag(s: &ServiceSpec) -> &'static str {
    match s.protocol {
        Protocol::Tcp => "-t",
        Protocol::Udp => "-u",
    }
}

/// ipvsadm's forwarding flag for a real server.
fn method_flag(s: &ServiceSpec) -> &'static str {
    match s.method {
        ForwardMethod::Nat => "-m",
        ForwardMethod::Dr => "-g",
        ForwardMethod::Tun => "-i",
    }
}

fn addr(ip: std::net::IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(ip, port).to_string()
}

/// The `ipvsadm -A` and `-a` lines that build service `s`.
pub fn service_lines(s: &ServiceSpec) -> Vec<String> {
    let key = format!("{} {}", proto_flag(s), addr(s.vip, s.port));
    let mut head = format!("-A {key} -s {}", s.scheduler);
    if let Some(p) = s.persistence {
        head.push_str(&format!(" -p {p}"));
    }
    let mut lines = vec![head];
    for r in &s.real_servers {
        let mut l = format!(
            "-a {key} -r {} {} -w {}",
            addr(r.address, r.port),
            method_flag(s),
            r.weight
        );
        if r.u_threshold > 0 {
            l.push_str(&format!(" -x {}", r.u_threshold));
        }
        if r.l_threshold > 0 {
            l.push_str(&format!(" -y {}", r.l_threshold));
        }
        lines.push(l);
    }
    lines
}

/// Pick the director node: `node` if given, else the only one with services.
pub fn pick_director(topo: &Topology, node: Option<&str>) -> Result<String> {
    let all = directors_with_services(topo);
    match node {
        Some(n) if all.iter().any(|a| a == n) => Ok(n.to_string()),
        Some(n) => bail!(
            "node {n} directs no service in topology {}; directors: {}",
            topo.name,
            all.join(", ")
        ),
        None => match all.as_slice() {
            [one] => Ok(one.clone()),
            [] => bail!(
                "topology {} has no [[services]], so there is no director to run",
                topo.name
            ),
            many => bail!(
                "topology {} has several directors ({}); pick one with --node",
                topo.name,
                many.join(", ")
            ),
        },
    }
}

/// The plan for `lvslab director --lab LAB [--node NODE]`.
pub fn director_plan(lab: &str, node: Option<&str>) -> Result<DirectorPlan> {
    let lab = Lab::load(lab)?;
    let topo = &lab.state.topology;
    let node = pick_director(topo, node)?;
    let lines = topo
        .services
        .iter()
        .filter(|s| s.director == node)
        .flat_map(service_lines)
        .collect();
    Ok(DirectorPlan {
        netns: lab.netns_of(&node)?,
        socket: lvslab_director::control::socket_path(&lab.run_dir(), &node),
        node,
        lines,
    })
}

/// The control socket of the director of `lab` (picked as in [`director_plan`]).
pub fn control_socket(lab: &str, node: Option<&str>) -> Result<PathBuf> {
    let lab = Lab::load(lab)?;
    let node = pick_director(&lab.state.topology, node)?;
    Ok(lvslab_director::control::socket_path(&lab.run_dir(), &node))
}
