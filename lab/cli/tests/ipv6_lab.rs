//! The dual-stack labs as the kernel builds them (root): nat6-topology's namespaces hold
//! exactly the topology's IPv6 addresses (and EUI-64 link-local ones), its IPv6 routes and the
//! quiet IPv6 sysctls; the hops the kernel routes carry IPv6 (client to router and through
//! it to the director, director to real server, TCP and UDP); nothing but MLD reports
//! appears on a wire after `up`; dr6's real servers hold the IPv6 VIP on lo as a /128; and
//! an IPv4 lab has IPv6 off everywhere.
mod support;
use std::process::Command;

use serde_json::Value;
use support::{ok, require_root, run};

/// Takes a lab down when the test ends, however it ends.
struct Down(String);
impl Drop for Down {
    fn drop(&mut self) {
        let _ = run(&["down", &self.0]);
    }
}

fn up(topology: &str, tag: &str) -> Down {
    let lab = format!("v6t{}{tag}", std::process::id());
    ok(&["up", "-q", topology, "--name", &lab]);
    Down(lab)
}

/// Runs a command inside a node's namespace; its stdout.
fn in_ns(lab: &str, node: &str, cmd: &[&str]) -> String {
    let o = Command::new("ip")
        .args(["netns", "exec", &format!("lvs-{lab}-{node}")])
        .args(cmd)
        .output()
        .expect("ip netns exec");
    assert!(
        o.status.success(),
        "{cmd:?} in {node}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn sysctl(lab: &str, node: &str, key: &str) -> String {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    in_ns(lab, node, &["cat", &path]).trim().to_owned()
}

/// `ip -j -6 addr` of a node: (interface, address/prefix) for every IPv6 address.
fn v6_addrs(lab: &str, node: &str) -> Vec<(String, String)> {
    let json: Value =
        serde_json::from_str(&in_ns(lab, node, &["ip", "-j", "-6", "addr"])).unwrap_or(Value::Null);
    let mut out = Vec::new();
    for link in json.as_array().into_iter().flatten() {
        let name = link["ifname"].as_str().unwrap_or_default().to_owned();
        for a in link["addr_info"].as_array().into_iter().flatten() {
            out.push((
                name.clone(),
                format!("{}/{}", a["local"].as_str().unwrap_or("?"), a["prefixlen"]),
            ));
        }
    }
    out
}

#[test]
fn nat6_builds_quiet_ipv6_with_the_topologys_addresses_routes_and_sysctls() {
    require_root();
    let lab = up("nat6-topology", "n");
    let l = lab.0.as_str();
    let want: [(&str, &[(&str, &str)]); 5] = [
        ("client", &[("eth0", "2001:db8:100::10/64")]),
        (
            "router",
            &[
                ("eth0", "2001:db8:100::1/64"),
                ("eth1", "2001:db8:203::1/64"),
            ],
        ),
        (
            "director",
            &[
                ("eth0", "2001:db8:203::2/64"),
                ("eth1", "2001:db8:1::202/64"),
            ],
        ),
        ("rs1", &[("eth0", "2001:db8:1::201/64")]),
        ("rs2", &[("eth0", "2001:db8:1::203/64")]),
    ];
    for (n, (node, addrs)) in want.into_iter().enumerate() {
        let mut expect: Vec<(String, String)> = vec![("lo".into(), "::1/128".into())];
        for (k, (i, a)) in addrs.iter().enumerate() {
            expect.push((i.to_string(), a.to_string()));
            // The EUI-64 link-local address of the fixed MAC 02:00:00:00:<node#>:<iface#>
            // (U/L bit flipped, ff:fe in the middle): the same every run.
            expect.push((
                i.to_string(),
                format!("fe80::ff:fe00:{:x}{k:02x}/64", n + 1),
            ));
        }
        let mut got = v6_addrs(l, node);
        got.sort();
        expect.sort();
        assert_eq!(got, expect, "{node}");
        let forwards = node == "router";
        for (key, value) in [
            ("net.ipv6.conf.all.disable_ipv6", "0"),
            ("net.ipv6.conf.eth0.addr_gen_mode", "0"),
            ("net.ipv6.conf.eth0.accept_ra", "0"),
            ("net.ipv6.conf.eth0.autoconf", "0"),
            ("net.ipv6.conf.eth0.router_solicitations", "0"),
            ("net.ipv6.conf.eth0.accept_dad", "0"),
            ("net.ipv6.conf.eth0.dad_transmits", "0"),
            (
                "net.ipv6.conf.eth0.forwarding",
                if forwards { "1" } else { "0" },
            ),
            ("net.ipv4.ip_forward", if forwards { "1" } else { "0" }),
        ] {
            assert_eq!(sysctl(l, node, key), value, "{node} {key}");
        }
    }
    let routes = |node| in_ns(l, node, &["ip", "-6", "route", "show", "proto", "boot"]);
    assert!(
        routes("client").contains("default via 2001:db8:100::1 dev eth0"),
        "{}",
        routes("client")
    );
    assert!(
        routes("router").contains("2001:db8:1::/64 via 2001:db8:203::2 dev eth1"),
        "{}",
        routes("router")
    );
    assert!(routes("rs1").contains("default via 2001:db8:1::202 dev eth0"));
    // The IPv4 half is as in nat-topology.
    assert!(in_ns(l, "rs1", &["ip", "-4", "route"]).contains("default via 192.168.1.202"));

    // Quiet: whatever the kernel sends by itself after `up` is an MLD report (to ff02::16,
    // left out by the normaliser); no router solicitation, DAD or RA ever.
    let pcap = tempfile::NamedTempFile::new().expect("temp file");
    let path = pcap.path().to_str().expect("utf-8").to_owned();
    // `timeout` ends tcpdump after 2 s and exits 124: the file is what counts.
    let _ = Command::new("ip")
        .args(["netns", "exec", &format!("lvs-{l}-router")])
        .args([
            "timeout", "-s", "INT", "2", "tcpdump", "-q", "-i", "eth0", "-w", &path,
        ])
        .output()
        .expect("tcpdump in the router");
    let seen = Command::new("tcpdump")
        .args(["-nr", &path, "not", "(ip6", "dst", "ff02::16)"])
        .output()
        .expect("tcpdump");
    let text = String::from_utf8_lossy(&seen.stdout);
    assert!(text.trim().is_empty(), "spontaneous packets:\n{text}");

    // The hops the kernel routes: director -> rs1 over IPv6, TCP and UDP (serve listens on
    // [::] beside 0.0.0.0), and the IPv4 VIP beside it.
    let json = |args: &[&str]| -> Value {
        let mut a = vec!["request", "--lab", l, "--json", "--no-diagnose"];
        a.extend_from_slice(args);
        serde_json::from_slice(&run(&a).stdout).expect("request --json")
    };
    let r = json(&[
        "--from",
        "director",
        "--to",
        "[2001:db8:1::201]:80",
        "-n",
        "2",
    ]);
    assert_eq!(r["servers"]["rs1"], 2, "{r}");
    assert_eq!(r["to"], "[2001:db8:1::201]:80", "{r}");
    let r = json(&[
        "--from",
        "director",
        "--to",
        "[2001:db8:1::203]:80",
        "--udp",
        "--payload",
        "6869",
    ]);
    assert_eq!(r["servers"]["rs2"], 1, "{r}");
    let r = json(&["--from", "client", "--to", "192.168.1.250:80", "-n", "2"]);
    assert_eq!(r["ok"], 2, "{r}");
    // Client -> router's far side and the director's uplink, routed by the router's
    // forwarding=1: nothing listens there, so the kernel answers with a reset.
    for to in ["[2001:db8:203::1]:80", "[2001:db8:203::2]:80"] {
        let r = json(&["--from", "client", "--to", to]);
        let errors = r["errors"].to_string();
        assert!(errors.contains("refused"), "{to}: {r}");
    }
}

#[test]
fn dr6_real_servers_hold_the_ipv6_vip_on_lo_and_ipv4_labs_have_no_ipv6() {
    require_root();
    let lab = up("dr6-topology", "d");
    let lo = in_ns(&lab.0, "rs1", &["ip", "addr", "show", "dev", "lo"]);
    assert!(lo.contains("inet 192.168.1.250/32"), "{lo}");
    assert!(lo.contains("inet6 2001:db8:1::250/128"), "{lo}");
    // Neither the director nor the router holds the VIP.
    for node in ["director", "router"] {
        let a = in_ns(&lab.0, node, &["ip", "-6", "addr"]);
        assert!(!a.contains("2001:db8:1::250"), "{node}: {a}");
    }
    drop(lab);

    let lab = up("nat-topology", "4");
    for node in ["client", "router", "director", "rs1", "rs2"] {
        assert_eq!(v6_addrs(&lab.0, node), Vec::new(), "{node}");
        assert_eq!(sysctl(&lab.0, node, "net.ipv6.conf.all.disable_ipv6"), "1");
        assert_eq!(sysctl(&lab.0, node, "net.ipv6.conf.eth0.disable_ipv6"), "1");
    }
}
