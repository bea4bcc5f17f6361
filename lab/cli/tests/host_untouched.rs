//! The host untouched (issue 15): the root network namespace's links, addresses, routes (v4
//! and v6), neighbours, nftables ruleset and the sysctls lvslab sets inside labs read the
//! same before and after every shipped topology is brought up, sent a request and taken
//! down, and after a few scenarios (NAT, DR, TUN, UDP, a firewall-mark service, a
//! MASTER/BACKUP failover, a pitfall).
//!
//! Root; never skips (nftables is compared only where `nft` is installed, and the test says
//! so when it is not). Fields that change by themselves are left out: address lifetimes
//! (`valid_life_time`, `preferred_life_time`), route `expires`, and the state, timers and
//! very existence of dynamic neighbour entries (the host's own traffic makes and ages
//! them); what is compared of the neighbours is every static entry (PERMANENT, NOARP) and
//! that no dynamic entry for a lab address appears that was not there before.
mod support;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::repo;

use serde_json::Value;

fn lvslab(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lvslab"))
        .current_dir(repo())
        .args(args)
        .output()
        .expect("run lvslab")
}

fn ok(args: &[&str]) -> String {
    let o = lvslab(args);
    assert!(
        o.status.success(),
        "lvslab {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ip_json(args: &[&str]) -> Value {
    let o = Command::new("ip")
        .arg("-j")
        .args(args)
        .output()
        .expect("ip (iproute2) must be installed");
    assert!(
        o.status.success(),
        "ip -j {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap_or(Value::Array(Vec::new()))
}

/// Removes `keys` from every object in `v`, at any depth.
fn strip(v: &mut Value, keys: &[&str]) {
    match v {
        Value::Object(m) => {
            for k in keys {
                m.remove(*k);
            }
            m.values_mut().for_each(|x| strip(x, keys));
        }
        Value::Array(a) => a.iter_mut().for_each(|x| strip(x, keys)),
        _ => {}
    }
}

fn lines(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .map(|a| a.iter().map(Value::to_string).collect())
        .unwrap_or_default()
}

/// Every readable file under these /proc/sys directories (one level of subdirectories).
fn sysctls() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut read = |p: &Path| {
        if let Ok(v) = std::fs::read_to_string(p) {
            out.insert(p.display().to_string(), v.trim().to_owned());
        }
    };
    // What lvslab sets in its namespaces (lab/netns/src/build.rs base_sysctls, the TUN
    // real servers' tunl0, the bridge's netfilter hook, topology `sysctls`, which take
    // net.* keys) and the IPVS knobs the director models: all of ipv4/ipv6 conf, for every
    // interface of the root namespace, all, and default.
    read(Path::new("/proc/sys/net/ipv4/ip_forward"));
    for dir in [
        "/proc/sys/net/ipv4/conf",
        "/proc/sys/net/ipv6/conf",
        "/proc/sys/net/bridge",
        "/proc/sys/net/ipv4/vs",
    ] {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                for f in std::fs::read_dir(&p).into_iter().flatten().flatten() {
                    read(&f.path());
                }
            } else {
                read(&p);
            }
        }
    }
    out
}

#[derive(Debug, PartialEq)]
struct Host {
    links: BTreeSet<String>,
    addresses: BTreeSet<String>,
    routes4: BTreeSet<String>,
    routes6: BTreeSet<String>,
    static_neighbours: BTreeSet<String>,
    neighbours: BTreeSet<(String, String)>,
    nft: Option<String>,
    sysctls: BTreeMap<String, String>,
}

fn nft_ruleset() -> Option<String> {
    let o = Command::new("nft")
        .args(["list", "ruleset"])
        .output()
        .ok()?;
    assert!(
        o.status.success(),
        "nft list ruleset failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    Some(String::from_utf8_lossy(&o.stdout).into_owned())
}

fn snapshot() -> Host {
    let mut links = ip_json(&["-d", "link", "show"]);
    strip(&mut links, &["stats", "stats64"]);
    let mut addresses = ip_json(&["addr", "show"]);
    strip(&mut addresses, &["valid_life_time", "preferred_life_time"]);
    let mut routes4 = ip_json(&["-4", "route", "show", "table", "all"]);
    strip(&mut routes4, &["expires"]);
    let mut routes6 = ip_json(&["-6", "route", "show", "table", "all"]);
    strip(&mut routes6, &["expires"]);
    let neigh = ip_json(&["neigh", "show"]);
    let mut static_neighbours = BTreeSet::new();
    let mut neighbours = BTreeSet::new();
    for n in neigh.as_array().into_iter().flatten() {
        let states: Vec<&str> = n["state"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if states.iter().any(|s| *s == "PERMANENT" || *s == "NOARP") {
            static_neighbours.insert(n.to_string());
        }
        neighbours.insert((
            n["dst"].as_str().unwrap_or_default().to_owned(),
            n["dev"].as_str().unwrap_or_default().to_owned(),
        ));
    }
    Host {
        links: lines(&links),
        addresses: lines(&addresses),
        routes4: lines(&routes4),
        routes6: lines(&routes6),
        static_neighbours,
        neighbours,
        nft: nft_ruleset(),
        sysctls: sysctls(),
    }
}

fn diff<T: Ord + std::fmt::Debug>(what: &str, a: &BTreeSet<T>, b: &BTreeSet<T>) -> Vec<String> {
    let mut v: Vec<String> = a
        .difference(b)
        .map(|x| format!("{what} gone: {x:?}"))
        .collect();
    v.extend(b.difference(a).map(|x| format!("{what} new: {x:?}")));
    v
}

/// What changed between two snapshots; `lab_addrs` are the addresses the labs use.
fn changes(a: &Host, b: &Host, lab_addrs: &BTreeSet<IpAddr>) -> Vec<String> {
    let mut v = Vec::new();
    v.extend(diff("link", &a.links, &b.links));
    v.extend(diff("address", &a.addresses, &b.addresses));
    v.extend(diff("IPv4 route", &a.routes4, &b.routes4));
    v.extend(diff("IPv6 route", &a.routes6, &b.routes6));
    v.extend(diff(
        "static neighbour",
        &a.static_neighbours,
        &b.static_neighbours,
    ));
    for (dst, dev) in b.neighbours.difference(&a.neighbours) {
        if dst.parse().is_ok_and(|ip| lab_addrs.contains(&ip)) {
            v.push(format!("neighbour new for a lab address: {dst} dev {dev}"));
        }
    }
    if a.nft != b.nft {
        v.push(format!(
            "nftables ruleset changed:\n--- before\n{}\n--- after\n{}",
            a.nft.as_deref().unwrap_or(""),
            b.nft.as_deref().unwrap_or("")
        ));
    }
    for (k, x) in &a.sysctls {
        match b.sysctls.get(k) {
            Some(y) if y == x => {}
            Some(y) => v.push(format!("sysctl {k}: {x} -> {y}")),
            None => v.push(format!("sysctl {k} gone (was {x})")),
        }
    }
    for k in b.sysctls.keys().filter(|k| !a.sysctls.contains_key(*k)) {
        v.push(format!("sysctl {k} new"));
    }
    v
}

/// Tears a lab down even when the test panics.
struct Guard(String);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = lvslab(&["down", &self.0]);
    }
}

#[test]
fn every_topology_and_some_scenarios_leave_the_root_namespace_as_it_was() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "this test builds network namespaces and must run as root (sudo ./scripts/test)"
    );
    let before = snapshot();
    if before.nft.is_none() {
        println!("host_untouched: nftables SKIPPED (no nft executable; scripts/deps installs it)");
    }
    assert!(
        before
            .sysctls
            .contains_key("/proc/sys/net/ipv4/conf/all/rp_filter"),
        "could not read the root namespace's sysctls"
    );
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("topologies"))
        .expect("topologies/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "shipped topologies: {files:?}");
    let mut lab_addrs = BTreeSet::new();
    let pid = std::process::id();
    for (i, f) in files.iter().enumerate() {
        let file = f.to_str().expect("utf-8 path");
        let (topo, _) = lvslab_netns::Topology::find_with_warnings(file).expect("topology");
        for n in &topo.nodes {
            for iface in n.interfaces.iter() {
                lab_addrs.extend(iface.addresses.iter().map(|a| a.addr()));
            }
        }
        lab_addrs.extend(topo.services.iter().flat_map(|s| s.all_vips()));
        let lab = format!("h{pid}n{i}");
        ok(&["up", "-q", file, "--name", &lab]);
        let guard = Guard(lab.clone());
        let client = topo
            .nodes
            .iter()
            .find(|n| n.role == lvslab_netns::Role::Client);
        if let (Some(c), Some(s)) = (client, topo.services.first()) {
            let to = std::net::SocketAddr::new(s.vip, s.port).to_string();
            let mut args = vec!["request", "--lab", &lab, "--from", &c.name, "--to", &to];
            if s.protocol == lvslab_core::Protocol::Udp {
                args.push("--udp");
            }
            // Traffic is what matters here; a pitfall topology fails on purpose.
            let _ = lvslab(&args);
        }
        // A dual-stack lab's IPv6 service too: Neighbour Discovery and IPv6 routes must
        // stay in the lab as ARP does.
        for s in topo.services.iter().skip(1).filter(|s| s.vip.is_ipv6()) {
            let Some(c) = client else { break };
            let to = std::net::SocketAddr::new(s.vip, s.port).to_string();
            let _ = lvslab(&[
                "request",
                "--lab",
                &lab,
                "--from",
                &c.name,
                "--to",
                &to,
                "--no-diagnose",
                "--timeout-ms",
                "500",
            ]);
        }
        drop(guard);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let junit = dir.path().join("junit.xml");
    let scenarios = [
        "nat-rr",
        "dr-rr",
        "tun-rr",
        "nat-udp",
        "sched-dh",
        "ha-failover",
        "pitfall-dr-arp",
    ];
    let o = Command::new(env!("CARGO_BIN_EXE_lvslab"))
        .current_dir(repo())
        .arg("test")
        .args(scenarios)
        .arg("--captures")
        .arg(dir.path().join("captures"))
        .arg("--pending")
        .arg(dir.path().join("pending"))
        .arg("--junit")
        .arg(&junit)
        .output()
        .expect("lvslab test");
    // Each scenario must have run to a verdict (the verdicts are the suite's business).
    let report = std::fs::read_to_string(&junit).unwrap_or_else(|_| {
        panic!(
            "lvslab test wrote no JUnit:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    for s in scenarios {
        assert!(
            report.contains(&format!("\"{s}\"")),
            "{s} did not run:\n{report}"
        );
    }
    let after = snapshot();
    let changed = changes(&before, &after, &lab_addrs);
    assert!(
        changed.is_empty(),
        "the root namespace changed:\n{}",
        changed.join("\n")
    );
}

/// The comparison itself: in a namespace of its own (never the root), every kind of change
/// the test above looks for is reported.
#[test]
fn the_comparison_sees_every_kind_of_change() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "this test makes a network namespace and must run as root (sudo ./scripts/test)"
    );
    // A thread in a new namespace: its /proc/sys reads and the `ip`/`nft` it starts are there.
    let changed = std::thread::spawn(|| {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare a netns");
        let sh = |cmd: &str| {
            let o = Command::new("sh").args(["-c", cmd]).output().expect("sh");
            assert!(o.status.success(), "{cmd}: {}", String::from_utf8_lossy(&o.stderr));
        };
        sh("ip link set lo up && ip link add d0 type veth peer name d0p && ip link set d0p up && ip link set d0 up");
        let before = snapshot();
        sh("ip addr add 198.51.100.10/24 dev d0");
        sh("ip route add 192.168.1.0/24 via 198.51.100.1");
        sh("ip -6 route add 2001:db8::/64 dev d0");
        sh("ip neigh add 198.51.100.7 lladdr 02:00:00:00:00:07 dev d0 nud permanent");
        sh("echo 1 > /proc/sys/net/ipv4/ip_forward && echo 1 > /proc/sys/net/ipv4/conf/all/arp_ignore");
        if before.nft.is_some() {
            sh("nft add table inet lvslabtest");
        }
        sh("ip link add d1 type bridge");
        let after = snapshot();
        (before.nft.is_some(), changes(&before, &after, &BTreeSet::new()))
    })
    .join()
    .expect("thread");
    let (nft, changed) = changed;
    let text = changed.join("\n");
    for want in [
        "address new",
        "IPv4 route new",
        "IPv6 route new",
        "static neighbour new",
        "sysctl /proc/sys/net/ipv4/ip_forward: 0 -> 1",
        "sysctl /proc/sys/net/ipv4/conf/all/arp_ignore: 0 -> 1",
        "link new",
    ] {
        assert!(text.contains(want), "no {want:?} in:\n{text}");
    }
    assert_eq!(nft, text.contains("nftables ruleset changed"), "{text}");
}
