//! Director pairs: which nodes speak VRRP for which services, as lvslab or as Debian's
//! keepalived, and the keepalived.conf of a keepalived node.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use lvslab_director::control::socket_path;
use lvslab_director::{ControlClient, HaSpec};
use lvslab_netns::{Lab, NodeSpec, ServiceSpec, Topology, VrrpSpec};

/// The keepalived executable a keepalived node of a pair runs (Debian's package).
pub const KEEPALIVED: &str = "keepalived";

/// The services `node` balances as director or backup, with their pair settings.
fn pair_services<'a>(
    topo: &'a Topology,
    node: &'a str,
) -> impl Iterator<Item = (&'a ServiceSpec, &'a VrrpSpec)> + 'a {
    topo.services.iter().filter_map(move |s| {
        let v = s.vrrp.as_ref()?;
        (s.director == node || s.backup.as_deref() == Some(node)).then_some((s, v))
    })
}

/// True when `node`'s VRRP is spoken by keepalived rather than lvslab.
pub fn runs_keepalived(topo: &Topology, node: &str) -> bool {
    pair_services(topo, node).any(|(_, v)| v.keepalived.iter().any(|k| k == node))
}

/// Nodes whose lvslab director takes part in a pair as BACKUP of some service (they run a
/// director daemon although `director` names another node).
pub fn lvslab_backups(topo: &Topology) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in &topo.services {
        if let Some(b) = &s.backup {
            if !runs_keepalived(topo, b) && !out.contains(b) {
                out.push(b.clone());
            }
        }
    }
    out
}

/// Nodes that run keepalived for a pair.
pub fn keepalived_nodes(topo: &Topology) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in &topo.services {
        for k in s.vrrp.iter().flat_map(|v| &v.keepalived) {
            if !out.contains(k) {
                out.push(k.clone());
            }
        }
    }
    out
}

/// The interface of `node` that VRRP speaks on for `vip`: the one whose subnet holds the
/// VIP, else the first (the LAN the pair shares).
fn vrrp_iface(node: &NodeSpec, vip: IpAddr) -> Option<String> {
    node.interfaces
        .iter()
        .find(|i| i.addresses.iter().any(|a| a.contains(&vip)))
        .or(node.interfaces.first())
        .map(|i| i.name.clone())
}

/// One instance per virtual router id: its settings (from the first service naming it),
/// the interface and every IPv4 VIP of the services sharing it.
struct Instance<'a> {
    spec: &'a VrrpSpec,
    iface: String,
    priority: u8,
    vips: Vec<Ipv4Addr>,
}

fn instances<'a>(topo: &'a Topology, node: &'a str) -> Vec<Instance<'a>> {
    let Some(n) = topo.nodes.iter().find(|n| n.name == node) else {
        return Vec::new();
    };
    let mut out: Vec<Instance> = Vec::new();
    for (s, v) in pair_services(topo, node) {
        let IpAddr::V4(vip) = s.vip else { continue };
        match out.iter_mut().find(|i| i.spec.vrid == v.vrid) {
            Some(i) if !i.vips.contains(&vip) => i.vips.push(vip),
            Some(_) => {}
            None => {
                let (Some(iface), Some(priority)) = (vrrp_iface(n, s.vip), v.priority_of(s, node))
                else {
                    continue;
                };
                out.push(Instance {
                    spec: v,
                    iface,
                    priority,
                    vips: vec![vip],
                });
            }
        }
    }
    out
}

/// The VRRP instances lvslab's director on `node` joins (none when keepalived speaks for
/// it or it is in no pair).
pub fn ha_specs(topo: &Topology, node: &str) -> Vec<HaSpec> {
    if runs_keepalived(topo, node) {
        return Vec::new();
    }
    instances(topo, node)
        .into_iter()
        .map(|i| HaSpec {
            iface: i.iface,
            vrid: i.spec.vrid,
            version: i.spec.version,
            advert_int: Duration::from_millis(i.spec.advert_int_ms),
            priority: i.priority,
            preempt: i.spec.preempt,
            vips: i.vips,
            sync_id: i.spec.sync.then_some(i.spec.sync_id),
        })
        .collect()
}

/// keepalived.conf for `node`: VRRP only (this host's kernel has no IPVS, so keepalived runs
/// with `--vrrp`), one vrrp_instance per virtual router id, the VIPs as /32 on the VRRP
/// interface exactly as keepalived adds them by default.
pub fn keepalived_conf(topo: &Topology, node: &str) -> String {
    let mut c = String::new();
    let _ = writeln!(
        c,
        "# Written by lvslab for node {node} of this lab; keepalived -P reads it."
    );
    let _ = writeln!(c, "global_defs {{");
    let _ = writeln!(c, "    router_id lvslab_{node}");
    let version = instances(topo, node).first().map_or(2, |i| i.spec.version);
    let _ = writeln!(c, "    vrrp_version {version}");
    // Scripts are not used; without this keepalived warns about script security each start.
    let _ = writeln!(c, "    script_user root");
    let _ = writeln!(c, "    enable_script_security");
    let _ = writeln!(c, "}}");
    for i in instances(topo, node) {
        let _ = writeln!(c);
        let _ = writeln!(c, "vrrp_instance VI_{} {{", i.spec.vrid);
        // keepalived takes `nopreempt` only with an initial state of BACKUP; every node
        // starts as BACKUP (the RFC's Init -> Backup) and the priorities elect the master.
        let _ = writeln!(c, "    state BACKUP");
        let _ = writeln!(c, "    interface {}", i.iface);
        let _ = writeln!(c, "    virtual_router_id {}", i.spec.vrid);
        let _ = writeln!(c, "    priority {}", i.priority);
        let ms = i.spec.advert_int_ms;
        if ms % 1000 == 0 {
            let _ = writeln!(c, "    advert_int {}", ms / 1000);
        } else {
            let _ = writeln!(c, "    advert_int {}.{:02}", ms / 1000, (ms % 1000) / 10);
        }
        if !i.spec.preempt {
            let _ = writeln!(c, "    nopreempt");
        }
        let _ = writeln!(c, "    virtual_ipaddress {{");
        for v in &i.vips {
            let _ = writeln!(c, "        {v}/32 dev {}", i.iface);
        }
        let _ = writeln!(c, "    }}");
        let _ = writeln!(c, "}}");
    }
    c
}

/// keepalived's command line for `node`: VRRP only, in the foreground, logging to the
/// console (the lab's log file), pid files in the lab's run directory.
pub fn keepalived_args(run_dir: &std::path::Path, node: &str) -> Vec<String> {
    let f = |name: &str| run_dir.join(name).display().to_string();
    vec![
        "--vrrp".into(),
        "--dont-fork".into(),
        "--log-console".into(),
        "--log-detail".into(),
        "--no-syslog".into(),
        "--use-file".into(),
        f(&format!("keepalived-{node}.conf")),
        "--pid".into(),
        f(&format!("keepalived-{node}.pid")),
        "--vrrp_pid".into(),
        f(&format!("keepalived-{node}-vrrp.pid")),
    ]
}

/// The longest a pair of `topo` may take to elect its master: the backup's
/// Master_Down_Interval (3 adverts + skew, under one advert) plus a second for the daemons
/// to start.
fn election_time(topo: &Topology) -> Duration {
    let slowest = topo
        .services
        .iter()
        .filter_map(|s| s.vrrp.as_ref())
        .map(|v| v.advert_int_ms)
        .max()
        .unwrap_or(0);
    Duration::from_millis(4 * slowest + 1000)
}

/// What the lvslab directors of `lab` say about each pair: (node, vrid, state, master).
pub fn pair_states(lab: &Lab) -> Vec<(String, lvslab_director::VrrpRow)> {
    let mut out = Vec::new();
    let topo = &lab.state.topology;
    let mut nodes = crate::directors_with_services(topo);
    nodes.extend(lvslab_backups(topo));
    nodes.dedup();
    for node in nodes.into_iter().filter(|n| !runs_keepalived(topo, n)) {
        let client = ControlClient::new(socket_path(&lab.run_dir(), &node))
            .with_timeout(Duration::from_secs(2));
        if let Ok(r) = client.vrrp() {
            out.extend(r.instances.into_iter().map(|i| (node.clone(), i)));
        }
    }
    out
}

/// Wait until every VRRP instance of `lab` has a MASTER that an lvslab director of the pair
/// sees (itself, or the keepalived peer it hears), so the lab answers on its VIPs when `up`
/// returns.
pub fn wait_for_masters(lab: &Lab) -> crate::Result<()> {
    let topo = &lab.state.topology;
    let mut vrids: Vec<u8> = topo
        .services
        .iter()
        .filter_map(|s| s.vrrp.as_ref().map(|v| v.vrid))
        .collect();
    vrids.sort_unstable();
    vrids.dedup();
    if vrids.is_empty() {
        return Ok(());
    }
    let deadline = std::time::Instant::now() + election_time(topo);
    loop {
        let states = pair_states(lab);
        let missing: Vec<u8> = vrids
            .iter()
            .copied()
            .filter(|v| {
                !states
                    .iter()
                    .any(|(_, i)| i.vrid == *v && i.master.is_some())
            })
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(lvslab_netns::Error::Msg(format!(
                "no VRRP master elected for virtual router {missing:?} within {:.1} s: see the director and keepalived logs in {}",
                election_time(topo).as_secs_f64(),
                lab.run_dir().display()
            ))
            .into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ha() -> Topology {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../topologies/ha-topology.toml");
        Topology::load(&p).expect("shipped topology")
    }

    #[test]
    fn both_directors_of_the_seed_pair_join_one_instance_with_their_priorities() {
        let t = ha();
        let m = ha_specs(&t, "director");
        let b = ha_specs(&t, "director2");
        assert_eq!(m.len(), 1);
        assert_eq!((m[0].vrid, m[0].priority, b[0].priority), (51, 150, 100));
        assert_eq!(m[0].iface, "eth0");
        assert_eq!(m[0].vips, [Ipv4Addr::new(192, 168, 1, 250)]);
        assert_eq!(m[0].sync_id, Some(51));
        assert!(ha_specs(&t, "rs1").is_empty());
        assert_eq!(lvslab_backups(&t), ["director2"]);
    }

    #[test]
    fn keepalived_conf_names_the_instance_as_keepalived_reads_it() {
        let t = ha();
        let c = keepalived_conf(&t, "director2");
        for want in [
            "vrrp_version 2",
            "vrrp_instance VI_51 {",
            "interface eth0",
            "virtual_router_id 51",
            "priority 100",
            "advert_int 1\n",
            "192.168.1.250/32 dev eth0",
        ] {
            assert!(c.contains(want), "{want:?} missing in\n{c}");
        }
    }
}
