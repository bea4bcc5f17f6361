//! The userspace director over IPv6, end to end (root): in each dual-stack lab (nat6, dr6,
//! tun6) requests from the client to the IPv6 VIP are balanced over both real servers by
//! rr while the IPv4 VIP keeps working beside it, and `lvslab stats` lists the IPv6 service
//! as `ipvsadm -Ln` does.
mod support;

use support::{ok, require_root, run};

/// Takes a lab down when the test ends, however it ends.
struct Down(String);
impl Drop for Down {
    fn drop(&mut self) {
        let _ = run(&["down", &self.0]);
    }
}

fn up(topology: &str, tag: &str) -> Down {
    let lab = format!("v6d{}{tag}", std::process::id());
    ok(&["up", "-q", topology, "--name", &lab]);
    Down(lab)
}

/// `lvslab request` from the client to `to`, `n` times: the answers per real server.
fn spread(lab: &str, to: &str, n: usize) -> Vec<(String, usize)> {
    let out = ok(&[
        "request",
        "--lab",
        lab,
        "--from",
        "client",
        "--to",
        to,
        "-n",
        &n.to_string(),
    ]);
    assert!(
        out.contains(&format!("{n} ok, 0 failed")),
        "requests to {to} failed:\n{out}"
    );
    let mut per: Vec<(String, usize)> = out
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            match w.as_slice() {
                [name, count, pct] if pct.ends_with('%') => {
                    Some((name.to_string(), count.parse().ok()?))
                }
                _ => None,
            }
        })
        .collect();
    per.sort();
    per
}

fn balanced_both_families(topology: &str, tag: &str) {
    require_root();
    let lab = up(topology, tag);
    let l = lab.0.as_str();
    let both = |n| vec![("rs1".to_string(), n), ("rs2".to_string(), n)];
    assert_eq!(spread(l, "[2001:db8:1::250]:80", 10), both(5));
    assert_eq!(spread(l, "192.168.1.250:80", 4), both(2));
    let stats = ok(&["stats", "--lab", l]);
    for want in [
        "TCP  [2001:db8:1::250]:80               10",
        "  -> [2001:db8:1::201]:80                5",
        "  -> [2001:db8:1::203]:80                5",
    ] {
        assert!(stats.contains(want), "no `{want}` in:\n{stats}");
    }
}

#[test]
fn nat6_balances_the_ipv6_vip_beside_the_ipv4_one() {
    balanced_both_families("nat6-topology", "n");
}

#[test]
fn dr6_balances_the_ipv6_vip_beside_the_ipv4_one() {
    balanced_both_families("dr6-topology", "d");
}

#[test]
fn tun6_balances_the_ipv6_vip_beside_the_ipv4_one() {
    balanced_both_families("tun6-topology", "t");
}

/// `topology` with its IPv6 service turned into the firewall-mark service `-f 6 -6` over two
/// IPv6 VIPs (`vip` and 2001:db8:1::249), written to a scratch file.
fn with_ipv6_fwmark(topology: &str, dir: &std::path::Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(support::repo().join(format!("topologies/{topology}.toml")))
        .expect("shipped topology");
    let service = "vip = \"2001:db8:1::250\"\n";
    assert!(text.contains(service), "{topology} has no IPv6 service");
    let text = text.replace(
        service,
        "vip = \"2001:db8:1::250\"\nvips = [\"2001:db8:1::249\"]\nfwmark = 6\n",
    );
    let path = dir.join(format!("{topology}-fwmark6.toml"));
    std::fs::write(&path, text).expect("write topology");
    path
}

/// An IPv6 firewall-mark service from a topology file: ip6tables MARK rules for both IPv6
/// VIPs feed one rr table, so requests to either VIP alternate over the real servers, the
/// IPv4 service beside it is untouched, and stats shows `FWM  6 IPv6` as ipvsadm -Ln does.
fn ipv6_fwmark_service(topology: &str, tag: &str) {
    require_root();
    let dir = tempfile::tempdir().expect("scratch dir");
    let file = with_ipv6_fwmark(topology, dir.path());
    let lab = format!("v6f{}{tag}", std::process::id());
    ok(&[
        "up",
        "-q",
        file.to_str().expect("utf-8 path"),
        "--name",
        &lab,
    ]);
    let lab = Down(lab);
    let l = lab.0.as_str();
    let both = |n| vec![("rs1".to_string(), n), ("rs2".to_string(), n)];
    // One table for both VIPs: rr's turn carries over from one VIP to the other, so three
    // requests to each split 2:1 one way and 1:2 the other (two tables would split both
    // the same way).
    let first = spread(l, "[2001:db8:1::250]:80", 3);
    let second = spread(l, "[2001:db8:1::249]:80", 3);
    assert_eq!(first.len(), 2, "{first:?}");
    let total: Vec<(String, usize)> = first
        .iter()
        .zip(&second)
        .map(|((a, x), (b, y))| {
            assert_eq!(a, b);
            (a.clone(), x + y)
        })
        .collect();
    assert_eq!(total, both(3), "{first:?} then {second:?}");
    assert_eq!(spread(l, "192.168.1.250:80", 4), both(2));
    // ipvsadm -Ln --stats: the service line `FWM  6 IPv6` with its 6 connections.
    let stats = ok(&["stats", "--lab", l]);
    let fwm = stats
        .lines()
        .find_map(|line| line.strip_prefix("FWM  6 IPv6"))
        .unwrap_or_else(|| panic!("no FWM  6 IPv6 service in:\n{stats}"));
    assert_eq!(fwm.split_whitespace().next(), Some("6"), "{stats}");
    assert!(stats.contains("TCP  192.168.1.250:80"), "{stats}");
}

#[test]
fn nat6_runs_an_ipv6_firewall_mark_service_from_the_topology() {
    ipv6_fwmark_service("nat6-topology", "n");
}

#[test]
fn dr6_runs_an_ipv6_firewall_mark_service_from_the_topology() {
    ipv6_fwmark_service("dr6-topology", "d");
}
