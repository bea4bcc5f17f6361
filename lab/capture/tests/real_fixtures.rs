//! The normalizer on real captures (no root needed): per-hop pcaps recorded by `lvslab test`
//! from the userspace director, normalized with the lab's roles, must give exactly the
//! reviewed snapshot of that scenario.

use lvslab_capture::files::read_run_dir;
use lvslab_capture::{normalize, NormalizeOptions, RoleMap};
use std::path::Path;

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// `roles.txt`, written by the scenario runner beside the captures.
fn roles(dir: &Path) -> RoleMap {
    let text = std::fs::read_to_string(dir.join("roles.txt")).unwrap();
    RoleMap::from_text(&text).unwrap()
}

/// The text of an insta snapshot: everything after the header's closing `---`.
fn snapshot(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../scenarios/snapshots")
        .join(format!("{name}.snap"));
    let text = std::fs::read_to_string(p).unwrap();
    let body = text.splitn(3, "---\n").nth(2).unwrap();
    body.trim_end().to_owned()
}

fn check(name: &str) {
    let dir = fixture(name);
    let caps = read_run_dir(&dir).unwrap();
    assert!(caps.len() >= 5, "{name}: {} hops", caps.len());
    let text = normalize(&caps, &roles(&dir), NormalizeOptions::default());
    assert_eq!(text.trim_end(), snapshot(name), "{name}");
}

#[test]
fn real_nat_capture_gives_the_reviewed_path() {
    check("nat-rr");
}

#[test]
fn real_tun_capture_gives_the_reviewed_path() {
    check("tun-rr");
}

#[test]
fn reading_order_of_the_hops_does_not_matter() {
    let dir = fixture("nat-rr");
    let mut caps = read_run_dir(&dir).unwrap();
    let roles = roles(&dir);
    let want = normalize(&caps, &roles, NormalizeOptions::default());
    caps.reverse();
    assert_eq!(normalize(&caps, &roles, NormalizeOptions::default()), want);
    caps.rotate_left(3);
    assert_eq!(normalize(&caps, &roles, NormalizeOptions::default()), want);
}

#[test]
fn role_map_text_round_trips() {
    let dir = fixture("nat-rr");
    let r = roles(&dir);
    assert_eq!(
        RoleMap::from_text(&r.to_text()).unwrap().to_text(),
        r.to_text()
    );
    let e = RoleMap::from_text("mac 02:00 client eth0").unwrap_err();
    assert!(e.contains("line 1"), "{e}");
}
