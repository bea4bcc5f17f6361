//! `lvslab trace` on real labs (root): fresh scenario runs must trace exactly as the
//! reviewed fixture traces of lvslab-trace, and tracing around a command in a live lab
//! must explain the director's pick and leave its `explain` setting as it was.
mod support;
use support::{ok, repo, require_root, run};

/// The body of a reviewed trace snapshot of lvslab-trace's fixture tests.
fn reviewed(name: &str) -> String {
    let p = repo().join(format!("lab/trace/tests/snapshots/fixtures__{name}.snap"));
    let text = std::fs::read_to_string(&p).expect("snapshot");
    text.splitn(3, "---\n")
        .nth(2)
        .expect("snapshot body")
        .trim_end()
        .to_owned()
}

/// Takes the lab down however the test ends.
struct Guard(String);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = run(&["down", &self.0]);
    }
}

#[test]
fn fresh_nat_dr_tun_runs_trace_as_reviewed() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let caps = tmp.path().join("captures");
    let pending = tmp.path().join("pending");
    std::fs::create_dir_all(&pending).unwrap();
    // The scenario runner brings each lab up and always takes it down.
    ok(&[
        "test",
        "nat-rr",
        "dr-rr",
        "tun-rr",
        "--captures",
        caps.to_str().unwrap(),
        "--pending",
        pending.to_str().unwrap(),
    ]);
    for name in ["nat-rr", "dr-rr", "tun-rr"] {
        let lab = std::fs::read_dir(&caps)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.join(name).is_dir())
            .unwrap_or_else(|| panic!("no run dir for {name}"));
        let dir = lab.join(name);
        assert!(dir.join("picks.json").is_file(), "{name}: no picks.json");
        let text = ok(&["trace", "--run", dir.to_str().unwrap()]);
        assert!(!text.contains('\x1b'), "colour codes in piped output");
        assert_eq!(text.trim_end(), reviewed(name), "{name}");
    }
}

#[test]
fn trace_around_a_command_explains_the_pick_and_restores_explain() {
    require_root();
    let lab = format!("trace{}", std::process::id() % 100_000);
    ok(&["up", "-q", "nat-topology", "--name", &lab]);
    let _guard = Guard(lab.clone());
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let text = ok(&[
        "trace",
        "--lab",
        &lab,
        "--out",
        out.to_str().unwrap(),
        "--",
        env!("CARGO_BIN_EXE_lvslab"),
        "request",
        "--lab",
        &lab,
        "--from",
        "client",
        "--to",
        "192.168.1.250:80",
    ]);
    assert!(
        text.contains("forwarding seen: NAT (director: director"),
        "{text}"
    );
    assert!(text.contains("director rewrote dst VIP -> RIP"), "{text}");
    assert!(text.contains("(NAT) because rr picked rs"), "{text}");
    assert!(
        text.contains("NAT reply: director rewrote src RIP"),
        "{text}"
    );
    assert!(
        text.contains("router routed it: TTL 64 -> 63 (-1)"),
        "{text}"
    );
    for f in ["roles.txt", "picks.json", "path.pcapng"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    // Explaining was off before, so it is off again (off forgets every pick).
    let shown = ok(&["explain", "show", "--lab", &lab]);
    assert!(shown.contains("no picks kept"), "{shown}");
    // The saved run traces the same offline.
    let again = ok(&["trace", "--run", out.to_str().unwrap()]);
    assert_eq!(again, text);
    let json: serde_json::Value = serde_json::from_str(&ok(&[
        "trace",
        "--run",
        out.to_str().unwrap(),
        "--conn",
        "1",
        "--json",
    ]))
    .unwrap();
    assert_eq!(json[0]["forwarding"], "nat");
    assert_eq!(json[0]["packets"][0]["hops"][0]["hop"], "client:eth0");
}
