//! A lab's virtual services as ipvsadm command lines: what the userspace director is
//! started with and what kernel IPVS is configured with, so both backends read one source.

use lvslab_core::mark::MarkRule;
use lvslab_director::IpvsadmFlag;
use lvslab_netns::{ServiceSpec, Topology};
use std::net::SocketAddr;

/// The `ipvsadm -A` and `-a` lines that build service `s`; a firewall-mark service's end
/// with the iptables mangle rules that mark its packets (one per VIP).
pub fn service_lines(s: &ServiceSpec) -> Vec<String> {
    let key = match s.fwmark {
        // A fwmark service's family is its VIPs' (`-6` for IPv6, as ipvsadm-save writes it).
        Some(m) if s.vip.is_ipv6() => format!("-f {m} -6"),
        Some(m) => format!("-f {m}"),
        None => format!(
            "{} {}",
            s.protocol.ipvsadm_flag(),
            SocketAddr::new(s.vip, s.port)
        ),
    };
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
    if let Some(mark) = s.fwmark {
        for dst in s.all_vips() {
            // iptables for IPv4 VIPs, ip6tables for IPv6 ones (MarkRule writes either).
            let rule = MarkRule {
                dst,
                protocol: s.protocol,
                port: Some(s.port),
                mark,
            };
            lines.push(rule.to_string());
        }
    }
    lines
}

/// The `-e` line that sets a real server's weight in service `s`.
pub fn weight_line(s: &ServiceSpec, rip: SocketAddr, weight: u32) -> String {
    match s.fwmark {
        Some(m) => format!(
            "-e -f {m}{} -r {rip} {} -w {weight}",
            if s.vip.is_ipv6() { " -6" } else { "" },
            s.method.ipvsadm_flag()
        ),
        None => lvslab_director::control::edit_weight_line(
            s.protocol,
            SocketAddr::new(s.vip, s.port),
            rip,
            s.method,
            weight,
        ),
    }
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

    #[test]
    fn a_firewall_mark_service_is_one_table_and_a_mark_rule_per_vip() {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../topologies/nat-topology.toml");
        let text = std::fs::read_to_string(&p)
            .expect("shipped topology")
            .replace(
                "method = \"nat\"\n",
                "method = \"nat\"\nfwmark = 1\nvips = [\"192.168.1.251\"]\n",
            );
        let t = Topology::parse(&p, text).expect("fwmark topology");
        let lines = director_lines(&t, "director");
        assert_eq!(
            lines,
            [
                "-A -f 1 -s rr",
                "-a -f 1 -r 192.168.1.201:80 -m -w 1",
                "-a -f 1 -r 192.168.1.203:80 -m -w 1",
                "iptables -t mangle -A PREROUTING -d 192.168.1.250/32 -p tcp --dport 80 -j MARK --set-mark 1",
                "iptables -t mangle -A PREROUTING -d 192.168.1.251/32 -p tcp --dport 80 -j MARK --set-mark 1",
            ]
        );
        assert_eq!(
            lvslab_director::engine::vips_of(&lines),
            [
                std::net::Ipv4Addr::new(192, 168, 1, 250),
                std::net::Ipv4Addr::new(192, 168, 1, 251)
            ]
        );
        let rip = SocketAddr::new(t.services[0].real_servers[0].address, 80);
        let w = weight_line(&t.services[0], rip, 0);
        assert_eq!(w, "-e -f 1 -r 192.168.1.201:80 -m -w 0");
        lvslab_core::ipvsadm::parse(&w).expect(&w);
    }
}
