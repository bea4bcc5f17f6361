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

/// The VRRP state of keepalived on `node`, read from the node itself, since keepalived has
/// no control socket here: `MASTER` when the VIPs of its first instance are addresses of
/// its VRRP interface (keepalived adds them on entering MASTER and removes them on leaving
/// it), else `BACKUP`. A stopped keepalived reads as BACKUP too: it removed its VIPs.
pub fn keepalived_state(lab: &Lab, node: &str) -> crate::Result<&'static str> {
    let topo = &lab.state.topology;
    let inst = instances(topo, node);
    let first = inst.first().ok_or_else(|| {
        lvslab_netns::Error::Msg(format!("{node} speaks VRRP for no IPv4 service"))
    })?;
    let mut cmd = std::process::Command::new("ip");
    cmd.args(["-o", "-4", "addr", "show", "dev", &first.iface]);
    let out = lvslab_netns::netns::command_in(&lab.netns_of(node)?, cmd)?
        .output()
        .map_err(|e| lvslab_netns::Error::Msg(format!("ip addr show in {node}: {e}")))?;
    if !out.status.success() {
        return Err(lvslab_netns::Error::Msg(format!(
            "ip addr show dev {} in {node}: {}",
            first.iface,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
        .into());
    }
    let have = addresses_of(&String::from_utf8_lossy(&out.stdout));
    Ok(if first.vips.iter().all(|v| have.contains(v)) {
        "MASTER"
    } else {
        "BACKUP"
    })
}

/// The IPv4 addresses in `ip -o -4 addr show` output ("3: eth0    inet 192.168.1.250/32 ...").
fn addresses_of(text: &str) -> Vec<Ipv4Addr> {
    text.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            words.find(|w| *w == "inet")?;
            words.next()?.split('/').next()?.parse().ok()
        })
        .collect()
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

    /// The seed pair with keepalived on `node`, VRRPv3 at 200 ms adverts.
    fn ha_keepalived_v3(node: &str) -> Topology {
        let t = ha();
        let text = std::fs::read_to_string(&t.path).expect("shipped topology");
        let vrrp = format!(
            "method = \"dr\"\nvrrp = {{ version = 3, advert_int_ms = 200, keepalived = [\"{node}\"] }}"
        );
        let text = text.replacen("method = \"dr\"", &vrrp, 1);
        Topology::parse("ha-keepalived.toml", text).expect("valid")
    }

    #[test]
    fn a_v3_200_ms_instance_in_keepalived_syntax() {
        let t = ha_keepalived_v3("director2");
        let c = keepalived_conf(&t, "director2");
        // keepalived takes advert_int in seconds with decimals; VRRPv3 carries centiseconds.
        for want in [
            "    vrrp_version 3\n",
            "vrrp_instance VI_51 {\n",
            "    state BACKUP\n",
            "    interface eth0\n",
            "    virtual_router_id 51\n",
            "    priority 100\n",
            "    advert_int 0.20\n",
            "        192.168.1.250/32 dev eth0\n",
        ] {
            assert!(c.contains(want), "{want:?} missing in\n{c}");
        }
        assert!(!c.contains("nopreempt"), "preempt is on by default:\n{c}");
        let d = keepalived_conf(&t, "director");
        assert!(d.contains("priority 150"), "{d}");
        assert!(!ha_specs(&t, "director").is_empty() && ha_specs(&t, "director2").is_empty());
    }

    /// Runs `keepalived --config-test` on `conf` in a network namespace of its own holding an
    /// `eth0` (keepalived checks that the instance's interface exists); None when this host
    /// cannot (no keepalived, no unshare, not root).
    fn keepalived_config_test(conf: &str) -> Option<(bool, String)> {
        let file = std::env::temp_dir().join(format!(
            "lvslab-keepalived-config-test-{}.conf",
            std::process::id()
        ));
        std::fs::write(&file, conf).ok()?;
        let script = format!(
            "ip link add eth0 type veth peer name peer0 || exit 111; exec {KEEPALIVED} --config-test -f {}",
            file.display()
        );
        let out = std::process::Command::new("unshare")
            .args(["--net", "sh", "-c", &script])
            .output();
        let _ = std::fs::remove_file(&file);
        let out = out.ok()?;
        if out.status.code() == Some(111) || out.status.code() == Some(127) {
            return None;
        }
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if stderr.contains("unshare failed") || stderr.contains("not found") {
            return None;
        }
        Some((out.status.success(), stderr))
    }

    fn have_keepalived() -> bool {
        std::process::Command::new(KEEPALIVED)
            .arg("--version")
            .output()
            .is_ok()
    }

    #[test]
    fn keepalived_itself_accepts_the_generated_v3_conf() {
        if !have_keepalived() {
            eprintln!("SKIPPED: no keepalived executable (apt-get install keepalived)");
            return;
        }
        let t = ha_keepalived_v3("director2");
        let conf = keepalived_conf(&t, "director2");
        let Some((ok, stderr)) = keepalived_config_test(&conf) else {
            eprintln!("SKIPPED: cannot make a network namespace with an eth0 (needs root)");
            return;
        };
        assert!(
            ok && stderr.trim().is_empty(),
            "keepalived --config-test:\n{stderr}\n{conf}"
        );
        // The check has teeth: the same interval under VRRPv2, which advertises whole
        // seconds, is what keepalived complains about (and rounds when it runs).
        let v2 = conf.replace("vrrp_version 3", "vrrp_version 2");
        let (ok, stderr) = keepalived_config_test(&v2).expect("ran once already");
        assert!(!ok && stderr.contains("must be an integer"), "{stderr}");
    }

    #[test]
    fn addresses_are_read_from_ip_addr_output() {
        let out = "32: eth0    inet 192.168.1.204/24 brd 192.168.1.255 scope global eth0\\       valid_lft forever preferred_lft forever\n32: eth0    inet 192.168.1.250/32 scope global eth0\\       valid_lft forever preferred_lft forever\n";
        assert_eq!(
            addresses_of(out),
            [
                Ipv4Addr::new(192, 168, 1, 204),
                Ipv4Addr::new(192, 168, 1, 250)
            ]
        );
        assert!(addresses_of("").is_empty());
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
