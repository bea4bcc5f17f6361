//! The shipped scenarios as a cargo test (needs root: every scenario builds a lab), through
//! the same runner as `lvslab test`, plus a deliberately broken NAT rewrite that must fail
//! with a diff at the hop where the rewrite is missing. It is the `scenarios` test target
//! of the lvslab package, kept in this folder so that cargo-insta treats `scenarios/` as a
//! snapshot root and `cargo insta review` finds the `.snap.new` files written here.

use lvslab_scenario::{runner, suite, RunnerConfig};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn config(snapshots_dir: PathBuf) -> RunnerConfig {
    RunnerConfig {
        lvslab: PathBuf::from(env!("CARGO_BIN_EXE_lvslab")),
        captures_dir: std::env::temp_dir().join("lvslab-test-captures"),
        snapshots_dir,
        pending_dir: None,
        backend: None,
        break_director: None,
    }
}

fn require_root() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "scenario tests build network namespaces: run them as root (scripts/test does)"
    );
}

#[test]
fn shipped_scenarios_match_their_snapshots() {
    require_root();
    let dir = repo().join("scenarios");
    let files = suite::discover(&dir, &[]).expect("scenarios/");
    assert!(!files.is_empty());
    let cfg = config(dir.join("snapshots"));
    let results = suite::run_all(&files, 2, &cfg, &|r| eprintln!("{}", suite::render(r)));
    let failed: Vec<String> = results
        .iter()
        .filter(|r| !r.passed())
        .map(suite::render)
        .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn broken_nat_source_rewrite_fails_with_a_diff_at_the_director() {
    require_root();
    let scenario = repo().join("scenarios/nat-rr.toml");
    // A private copy of the snapshot, so the .snap.new this writes stays out of the repo.
    let snaps = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        repo().join("scenarios/snapshots/nat-rr.snap"),
        snaps.path().join("nat-rr.snap"),
    )
    .expect("nat-rr.snap is shipped");
    let mut cfg = config(snaps.path().to_owned());
    cfg.break_director = Some("nat-source-rewrite".to_owned());
    let lab = runner::lab_name("broken-nat", 99);
    let r = runner::run(&scenario, &lab, &cfg);
    assert!(
        !r.passed(),
        "a NAT director that does not rewrite the source passed"
    );
    let diff = match &r.snapshot {
        Some(lvslab_scenario::snapshot::Outcome::Changed { diff, .. }) => diff.clone(),
        other => panic!("expected a changed path, got {other:?}: {:?}", r.failures),
    };
    // The reply leaves the director towards the router still from the real server.
    assert!(
        diff.lines().any(|l| l.starts_with("+director:eth0")
            && l.contains(" out ")
            && (l.contains("RIP1=192.168.1.201:80 > CIP")
                || l.contains("RIP2=192.168.1.203:80 > CIP"))),
        "{diff}"
    );
    assert!(
        diff.lines().any(|l| l.starts_with("-director:eth0")
            && l.contains(" out ")
            && l.contains("VIP=192.168.1.250:80 > CIP")),
        "{diff}"
    );
}
