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
