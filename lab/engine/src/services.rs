//! A lab's virtual services as ipvsadm command lines: what the userspace director is
//! started with and what kernel IPVS is configured with, so both backends read one source.

use lvslab_director::IpvsadmFlag;
use lvslab_netns::{ServiceSpec, Topology};
use std::net::SocketAddr;

/// The `ipvsadm -A` and `-a` lines that build service `s`.
pub fn service_lines(s: &ServiceSpec) -> Vec<String> {
    let key = format!(
        "{} {}",
        s.protocol.ipvsadm_flag(),
        SocketAddr::new(s.vip, s.port)
    );
    let mut head = format!("-A {key} -s {}", s.scheduler);
    if let Some(p) = s.persistence {
        head.push_str(&format!(" -p {p}"));
    }
    let mut lines = vec![head];
    for r in &s.real_servers {
        let mut l = format!(
            "-a {key} -r {} {} -w {}",
            SocketAddr::new(r.address, r.port),
            s.method.ipvsadm_flag(),
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

/// Every line of the services director `node` runs, in file order: those it balances, and
/// as lvslab BACKUP of a pair those it stands by for (the table must be ready the moment
/// the VIPs move to it).
pub fn director_lines(topo: &Topology, node: &str) -> Vec<String> {
    let backup = !crate::pair::runs_keepalived(topo, node);
    topo.services
        .iter()
        .filter(|s| s.director == node || (backup && s.backup.as_deref() == Some(node)))
        .flat_map(service_lines)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_nat_service_as_ipvsadm_lines() {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../topologies/nat-topology.toml");
        let t = Topology::load(&p).expect("shipped topology");
        assert_eq!(
            director_lines(&t, "director"),
            [
                "-A -t 192.168.1.250:80 -s rr",
                "-a -t 192.168.1.250:80 -r 192.168.1.201:80 -m -w 1",
                "-a -t 192.168.1.250:80 -r 192.168.1.203:80 -m -w 1",
            ]
        );
        assert!(director_lines(&t, "router").is_empty());
        // Each line is one the ipvsadm parser (both backends' input) takes.
        for l in director_lines(&t, "director") {
            lvslab_core::ipvsadm::parse(&l).expect(&l);
        }
    }
}
