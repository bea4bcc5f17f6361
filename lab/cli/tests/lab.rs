//! End-to-end lab tests: they build real network namespaces, so they need root. They never
//! skip: without root they fail and say why. Every lab gets a unique name and a Drop guard.
mod support;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::{repo, require_root};

fn lvslab() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lvslab"));
    c.current_dir(repo());
    c
}

fn run(args: &[&str]) -> Output {
    lvslab().args(args).output().expect("run lvslab")
}

fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(
        o.status.success(),
        "lvslab {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// Namespaces of lab `lab` as `ip netns list` shows them.
fn netns_of(lab: &str) -> Vec<String> {
    let o = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    let prefix = format!("lvs-{lab}-");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&prefix))
        .map(str::to_string)
        .collect()
}

fn unique(test: &str) -> String {
    format!("t{}-{test}", std::process::id())
}

/// Tears the lab down even when the test panics.
struct Guard(String);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = run(&["down", &self.0]);
    }
}

fn up(topology: &str, lab: &str) -> Guard {
    ok(&["up", "-q", topology, "--name", lab]);
    Guard(lab.to_string())
}

fn request_json(lab: &str, from: &str, to: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "request", "--lab", lab, "--from", from, "--to", to, "--json",
    ];
    args.extend_from_slice(extra);
    serde_json::from_str(&ok(&args)).expect("request --json")
}

#[test]
fn up_status_down_leaves_no_namespace() {
    require_root();
    let lab = unique("usd");
    let g = up("nat-topology", &lab);
    assert_eq!(netns_of(&lab).len(), 6, "5 nodes + the switch");
    let st: serde_json::Value =
        serde_json::from_str(&ok(&["status", &lab, "--json"])).expect("status json");
    let nodes = st["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 5);
    let rs1 = nodes.iter().find(|n| n["name"] == "rs1").expect("rs1");
    assert_eq!(rs1["role"], "realserver");
    assert_eq!(rs1["interfaces"][0]["label"], "RIP1");
    assert_eq!(rs1["interfaces"][0]["addresses"][0], "192.168.1.201/24");
    assert_eq!(rs1["routes"][0]["via"], "192.168.1.202");
    let daemons = st["daemons"].as_array().expect("daemons");
    assert_eq!(
        daemons.len(),
        3,
        "serve on rs1 and rs2, the userspace director: {daemons:?}"
    );
    assert!(
        daemons.iter().any(|d| d["name"] == "director-director"),
        "{daemons:?}"
    );
    assert!(daemons.iter().all(|d| d["running"] == true), "{daemons:?}");
    // The real servers answer with their node names.
    let r = request_json(&lab, "director", "192.168.1.201:80", &["-n", "3"]);
    assert_eq!(r["servers"]["rs1"], 3, "{r}");
    let r = request_json(
        &lab,
        "director",
        "192.168.1.203:80",
        &["--udp", "--payload", "00ff10"],
    );
    assert_eq!(r["servers"]["rs2"], 1, "{r}");
    let r = request_json(
        &lab,
        "director",
        "192.168.1.203:80",
        &["--random-bytes", "200000"],
    );
    assert_eq!(r["servers"]["echo"], 1, "{r}");
    // Offloads are off on lab veths.
    let k = ok(&["exec", "--lab", &lab, "rs1", "--", "ethtool", "-k", "eth0"]);
    for f in [
        "tx-checksumming: off",
        "tcp-segmentation-offload: off",
        "generic-segmentation-offload: off",
        "generic-receive-offload: off",
    ] {
        assert!(k.contains(f), "{f} missing in:\n{k}");
    }
    // exec passes the exit code through.
    assert_eq!(
        run(&["exec", "--lab", &lab, "rs1", "--", "sh", "-c", "exit 7"])
            .status
            .code(),
        Some(7)
    );
    let pids: Vec<u64> = daemons.iter().filter_map(|d| d["pid"].as_u64()).collect();
    drop(g);
    assert!(
        netns_of(&lab).is_empty(),
        "namespaces left: {:?}",
        netns_of(&lab)
    );
    assert!(!Path::new("/run/lvslab").join(&lab).exists());
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(
            stat.is_empty() || stat.contains(") Z "),
            "daemon {pid} still running"
        );
    }
}

#[test]
fn two_labs_of_one_topology_side_by_side() {
    require_root();
    let (a, b) = (unique("side-a"), unique("side-b"));
    let _ga = up("nat-topology", &a);
    let _gb = up("nat-topology", &b);
    assert_eq!(netns_of(&a).len(), 6);
    assert_eq!(netns_of(&b).len(), 6);
    for lab in [&a, &b] {
        let r = request_json(lab, "director", "192.168.1.203:80", &["-n", "2"]);
        assert_eq!(r["servers"]["rs2"], 2, "{r}");
    }
    // Same name twice is refused and leaves the first lab intact.
    let o = run(&["up", "nat-topology", "--name", &a]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("already up"));
    assert_eq!(netns_of(&a).len(), 6);
}

#[test]
fn dr_real_servers_get_the_vip_on_lo_and_arp_sysctls() {
    require_root();
    let lab = unique("dr");
    let _g = up("dr-topology", &lab);
    let lo = ok(&[
        "exec", "--lab", &lab, "rs1", "--", "ip", "-br", "addr", "show", "lo",
    ]);
    assert!(lo.contains("192.168.1.250/32"), "{lo}");
    let sys = ok(&[
        "exec",
        "--lab",
        &lab,
        "rs1",
        "--",
        "cat",
        "/proc/sys/net/ipv4/conf/all/arp_ignore",
        "/proc/sys/net/ipv4/conf/all/arp_announce",
    ]);
    assert_eq!(sys.split_whitespace().collect::<Vec<_>>(), ["1", "2"]);
    let fwd = ok(&[
        "exec",
        "--lab",
        &lab,
        "router",
        "--",
        "cat",
        "/proc/sys/net/ipv4/ip_forward",
    ]);
    assert_eq!(fwd.trim(), "1");
    let v6 = ok(&[
        "exec",
        "--lab",
        &lab,
        "client",
        "--",
        "cat",
        "/proc/sys/net/ipv6/conf/all/disable_ipv6",
    ]);
    assert_eq!(v6.trim(), "1");
    // The real server answers for the VIP itself (bound to 0.0.0.0).
    let r = request_json(&lab, "rs1", "192.168.1.250:80", &[]);
    assert_eq!(r["servers"]["rs1"], 1, "{r}");
}

#[test]
fn every_bad_topology_class_gives_a_located_error_and_builds_nothing() {
    require_root();
    let dir = repo().join("lab/netns/tests/bad");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("bad dir")
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    assert!(
        files.len() >= 14,
        "expected a fixture per error class, found {}",
        files.len()
    );
    for (i, f) in files.iter().enumerate() {
        let text = std::fs::read_to_string(f).expect("read fixture");
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .expect("first line: # expect: LINE:COL: MESSAGE");
        let (loc, msg) = expect.split_at(expect.find(": ").expect("LINE:COL: MSG"));
        let want = format!("{}:{loc}: error: {}", f.display(), &msg[2..]);
        let path = f.to_str().expect("utf8 path");
        let lab = format!("{}{i}", unique("bad"));
        for args in [vec!["validate", path], vec!["up", path, "--name", &lab]] {
            let o = run(&args);
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(!o.status.success(), "{args:?} should fail");
            assert!(
                err.starts_with(&want),
                "{args:?}:\nwant prefix: {want}\ngot: {err}"
            );
            assert!(err.contains("help: "), "no help line: {err}");
        }
        assert!(netns_of(&lab).is_empty());
        assert!(!Path::new("/run/lvslab").join(&lab).exists());
    }
}

#[test]
fn failure_halfway_through_up_rolls_back() {
    require_root();
    for step in ["namespaces", "links", "addresses", "daemons"] {
        let lab = unique(&format!("rb-{step}"));
        let _g = Guard(lab.clone());
        let o = lvslab()
            .args(["up", "nat-topology", "--name", &lab])
            .env("LVSLAB_INJECT_FAILURE", step)
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{step}: up should fail");
        assert!(
            err.contains(&format!("injected failure after step {step}")),
            "{step}: {err}"
        );
        assert!(
            netns_of(&lab).is_empty(),
            "{step}: left {:?}",
            netns_of(&lab)
        );
        assert!(
            !Path::new("/run/lvslab").join(&lab).exists(),
            "{step}: run dir left"
        );
        // The same name can be used right after.
        let g = up("nat-topology", &lab);
        drop(g);
        assert!(netns_of(&lab).is_empty());
    }
}

#[test]
fn interrupt_halfway_through_up_takes_the_lab_down() {
    require_root();
    let lab = unique("intr");
    let _g = Guard(lab.clone());
    // Ctrl-C raised after the namespaces and daemons exist, while `up` holds it back.
    let o = lvslab()
        .args(["up", "nat-topology", "--name", &lab])
        .env("LVSLAB_INJECT_FAILURE", "interrupt")
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "exit status: {err}");
    assert!(err.contains("interrupted by SIGINT"), "{err}");
    assert!(netns_of(&lab).is_empty(), "left {:?}", netns_of(&lab));
    assert!(
        !Path::new("/run/lvslab").join(&lab).exists(),
        "run dir left"
    );
}

#[test]
fn daemons_start_with_no_signal_held_back() {
    require_root();
    let lab = unique("sigmask");
    let _g = up("nat-topology", &lab);
    let st: serde_json::Value =
        serde_json::from_str(&ok(&["status", &lab, "--json"])).expect("status json");
    let daemons = st["daemons"].as_array().expect("daemons");
    assert!(!daemons.is_empty());
    for d in daemons {
        let pid = d["pid"].as_u64().expect("pid");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
        let blocked = status
            .lines()
            .find_map(|l| l.strip_prefix("SigBlk:"))
            .expect("SigBlk line")
            .trim();
        // `up` holds Ctrl-C/SIGTERM back while building; a daemon that inherited that mask
        // could not be stopped by `down`.
        assert_eq!(blocked, "0000000000000000", "daemon {d}");
    }
}

#[test]
fn dash_dash_lab_and_the_positional_name_reach_the_same_lab() {
    require_root();
    let lab = unique("labflag");
    let _g = up("nat-topology", &lab);
    let by_flag: serde_json::Value =
        serde_json::from_str(&ok(&["status", "--lab", &lab, "--json"])).expect("status json");
    let by_pos: serde_json::Value =
        serde_json::from_str(&ok(&["status", &lab, "--json"])).expect("status json");
    assert_eq!(by_flag["lab"], lab.as_str());
    assert_eq!(by_flag, by_pos);
    assert!(ok(&["stats", "--lab", &lab]).contains("192.168.1.250:80"));
    assert!(ok(&["service", "list", &lab]).contains("192.168.1.250:80"));
    // Naming a lab that is not up lists those that are.
    let o = run(&["status", "--lab", &format!("{lab}-none")]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains(&lab));
    ok(&["down", "--lab", &lab]);
    assert!(netns_of(&lab).is_empty(), "left {:?}", netns_of(&lab));
}
