//! Every fixture in tests/bad/ fails validation with its expected message at its expected
//! place, without root: the validator alone, as `lvslab validate` runs it.
use std::path::{Path, PathBuf};

use lvslab_netns::Topology;

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/bad exists")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_bad_fixture_fails_with_its_located_message_and_a_help() {
    let files = fixtures();
    assert!(
        files.len() >= 19,
        "a fixture per error class, found {}",
        files.len()
    );
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read fixture");
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| {
                panic!("{}: first line is # expect: LINE:COL: MESSAGE", f.display())
            });
        let (loc, msg) = expect.split_once(": ").expect("LINE:COL: MESSAGE");
        let err = match Topology::load(&f) {
            Ok(_) => panic!("{} validated", f.display()),
            Err(e) => e,
        };
        let d = err
            .diagnostics()
            .first()
            .unwrap_or_else(|| panic!("{}: no located diagnostic: {err}", f.display()));
        assert_eq!(
            format!("{}:{}", d.line, d.col),
            loc,
            "{}: {err}",
            f.display()
        );
        assert!(
            d.message.starts_with(msg),
            "{}: want {msg:?}, got {:?}",
            f.display(),
            d.message
        );
        let shown = err.to_string();
        let want = format!("{}:{loc}: error: {msg}", f.display());
        assert!(shown.starts_with(&want), "want prefix {want}\ngot {shown}");
        assert!(shown.contains("help: "), "no help line: {shown}");
    }
}

#[test]
fn every_shipped_topology_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../topologies");
    for e in std::fs::read_dir(dir).expect("topologies/").flatten() {
        if let Err(err) = Topology::load(e.path()) {
            panic!("{err}");
        }
    }
}

/// The shipped HA topology with `vrrp` inserted into its service, after `backup = ...`.
fn ha_with_vrrp(vrrp: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../topologies/ha-topology.toml");
    let text = std::fs::read_to_string(path).expect("topologies/ha-topology.toml");
    let backup = text
        .lines()
        .find(|l| l.starts_with("backup = "))
        .expect("ha-topology names a backup");
    text.replacen(backup, &format!("{backup}\nvrrp = {vrrp}"), 1)
}

#[test]
fn every_vrrp_error_class_has_a_fixture() {
    let vrrp = fixtures()
        .iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vrrp-"))
        })
        .count();
    assert_eq!(vrrp, 10, "tests/bad/vrrp-*.toml");
}

#[test]
fn a_vrrp_table_loads_with_its_values_and_round_trips() {
    use lvslab_netns::VrrpSpec;
    let text = ha_with_vrrp("{ version = 3, advert_int_ms = 200, preempt = false, sync = false }");
    let t = Topology::parse("ha.toml", text).unwrap_or_else(|e| panic!("{e}"));
    let svc = &t.services[0];
    assert_eq!(svc.backup.as_deref(), Some("director2"));
    let v = svc.vrrp.clone().expect("a backup brings a vrrp spec");
    assert_eq!(
        v,
        VrrpSpec {
            version: 3,
            advert_int_ms: 200,
            preempt: false,
            sync: false,
            // Everything not named keeps keepalived's defaults.
            ..VrrpSpec::new()
        }
    );
    assert_eq!(
        (v.vrid, v.priority, v.backup_priority, v.sync_id),
        (51, 150, 100, 51)
    );
    assert_eq!(v.priority_of(svc, "director"), Some(150));
    assert_eq!(v.priority_of(svc, "director2"), Some(100));
    assert_eq!(v.priority_of(svc, "rs1"), None);

    let written = t.to_toml().unwrap();
    let back =
        Topology::parse("ha.toml", written.clone()).unwrap_or_else(|e| panic!("{e}\n{written}"));
    assert_eq!(back.services, t.services, "{written}");
    assert_eq!(back.services[0].vrrp.as_ref(), Some(&v));
}

#[test]
fn a_backup_without_a_vrrp_table_gets_the_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../topologies/ha-topology.toml");
    let t = Topology::load(path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        t.services[0].vrrp,
        Some(lvslab_netns::VrrpSpec::new()),
        "keepalived's defaults: v2, 1 s, 150/100, preempt, sync"
    );
}
