//! Failures that name their cause (root): a deliberately broken NAT lab, whose rs1 routes
//! its replies via the router instead of the DIP, must make `lvslab request` say so; and a
//! scenario failed by a broken director must carry the trace's findings in `lvslab test`'s
//! failure list and JUnit report.
mod support;
use support::{ok, repo, require_root, run};

/// Takes the lab down however the test ends.
struct Guard(String);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = run(&["down", "--lab", &self.0]);
    }
}

/// LVS-NAT with the router, the director and the real servers on one LAN: valid as
/// written (both real servers route via the DIP), so the test can break rs1 at run time
/// by pointing its default route at the router, which is on the same LAN.
const ONE_LAN_NAT: &str = r#"
description = "LVS-NAT on one LAN: the router is the LAN's other gateway"
[nodes.client]
role = "client"
interfaces.eth0 = { address = "198.51.100.10/24", label = "CIP" }
routes = ["default via 198.51.100.1"]
[nodes.router]
role = "router"
interfaces.eth0 = { address = "198.51.100.1/24" }
interfaces.eth1 = { address = "192.168.1.1/24", label = "GWIP" }
[nodes.director]
role = "director"
interfaces.eth0 = { address = "192.168.1.202/24", label = "DIP" }
routes = ["default via 192.168.1.1"]
[nodes.rs1]
role = "realserver"
interfaces.eth0 = { address = "192.168.1.201/24", label = "RIP1" }
routes = ["default via 192.168.1.202"]
[nodes.rs2]
role = "realserver"
interfaces.eth0 = { address = "192.168.1.203/24", label = "RIP2" }
routes = ["default via 192.168.1.202"]
[[links]]
endpoints = ["client:eth0", "router:eth0"]
[lans.lan0]
members = ["router:eth1", "director:eth0", "rs1:eth0", "rs2:eth0"]
[[services]]
director = "director"
vip = "192.168.1.250"
port = 80
protocol = "tcp"
scheduler = "rr"
method = "nat"
real_servers = [
  { node = "rs1", address = "192.168.1.201", port = 80, weight = 1 },
  { node = "rs2", address = "192.168.1.203", port = 80, weight = 1 },
]
"#;

fn request_json(lab: &str, extra: &[&str]) -> (bool, serde_json::Value) {
    let mut args = vec![
        "request",
        "--lab",
        lab,
        "--from",
        "client",
        "--to",
        "192.168.1.250:80",
        "-n",
        "4",
        "--json",
    ];
    args.extend_from_slice(extra);
    let o = run(&args);
    let v = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "request --json: {e}\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    (o.status.success(), v)
}

#[test]
fn a_nat_reply_that_bypasses_the_director_is_named_with_its_route() {
    require_root();
    let dir = tempfile::tempdir().expect("tempdir");
    let topo = dir.path().join("one-lan-nat.toml");
    std::fs::write(&topo, ONE_LAN_NAT).expect("write topology");
    let lab = format!("diag{}", std::process::id() % 100_000);
    let topo = topo.to_str().expect("utf-8 path");
    ok(&["up", "-q", topo, "--name", &lab]);
    let _g = Guard(lab.clone());

    // Healthy first: no failures, so nothing is captured and no diagnosis is reported.
    let (good, v) = request_json(&lab, &[]);
    assert!(good, "{v}");
    assert!(v.get("diagnosis").is_none(), "{v}");

    // The mistake: rs1's replies go to the router, past the director.
    ok(&[
        "exec",
        "--lab",
        &lab,
        "rs1",
        "--",
        "ip",
        "route",
        "replace",
        "default",
        "via",
        "192.168.1.1",
    ]);
    let (good, v) = request_json(&lab, &[]);
    assert!(!good, "requests through rs1 must fail: {v}");
    assert_eq!(v["failed"], 2, "{v}");
    let d = &v["diagnosis"];
    assert_eq!(d["failed"], 1, "the captured tries must reach rs1: {v}");
    let causes: Vec<&str> = d["causes"]
        .as_array()
        .expect("causes")
        .iter()
        .filter_map(|c| c.as_str())
        .collect();
    assert_eq!(
        causes.first().copied(),
        Some("SYN-ACK left rs1 with src RIP1 towards the router, bypassing the director: rs1's default route is via GWIP (192.168.1.1), not the DIP (192.168.1.202)"),
        "{causes:?}"
    );
    // The captures stay for `lvslab trace --run`, which must tell the same story.
    let captures = repo().join(d["captures"].as_str().expect("captures"));
    let trace = ok(&["trace", "--run", captures.to_str().expect("utf-8")]);
    assert!(trace.contains("bypassing director"), "{trace}");
    std::fs::remove_dir_all(&captures).ok();

    // The text form says it in one place, and --no-diagnose sends nothing more.
    let o = run(&[
        "request",
        "--lab",
        &lab,
        "--from",
        "client",
        "--to",
        "192.168.1.250:80",
        "-n",
        "4",
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("2 of 4 requests failed;")
            && text.contains("rs1's default route is via GWIP (192.168.1.1), not the DIP"),
        "{text}"
    );
    let (good, v) = request_json(&lab, &["--no-diagnose"]);
    assert!(!good && v.get("diagnosis").is_none(), "{v}");
}

#[test]
fn a_failed_scenario_lists_the_trace_findings() {
    require_root();
    let dir = tempfile::tempdir().expect("tempdir");
    let caps = dir.path().join("captures");
    let pending = dir.path().join("pending");
    let junit = dir.path().join("junit.xml");
    let o = run(&[
        "test",
        "nat-rr",
        "--break",
        "nat-source-rewrite",
        "--captures",
        caps.to_str().expect("utf-8"),
        "--pending",
        pending.to_str().expect("utf-8"),
        "--junit",
        junit.to_str().expect("utf-8"),
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        !o.status.success(),
        "the broken director must fail nat-rr:\n{out}"
    );
    let finding = "trace: SYN-ACK passed through director, the director, but its src RIP";
    assert!(out.contains(&format!("  - {finding}")), "{out}");
    let xml = std::fs::read_to_string(&junit).expect("junit");
    assert!(xml.contains(finding), "{xml}");
}
