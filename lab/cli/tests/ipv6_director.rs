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
