//! Real-world ipvsadm files (tests/fixtures, each with a `.source` naming repository, path
//! and commit) imported into lvslab's services and written back: each must give the rules
//! in its `.expected` file (`ipvsadm-save -n` form, reviewed by hand against what ipvsadm
//! does with the file) and the warnings in its `.warnings` file (each naming file:line).
//! Then the round trip: the written rules, imported again, give the same services, and
//! written again the same text. `BLESS=1` rewrites the expected files for review.
use std::path::{Path, PathBuf};

use lvslab_import::{import_ipvsadm, to_ipvsadm_save};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Every fixture: the files that have a `.source` beside them.
pub fn fixtures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir())
        .expect("fixtures dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let s = p.to_string_lossy();
            !s.ends_with(".source")
                && !s.ends_with(".expected")
                && !s.ends_with(".warnings")
                && PathBuf::from(format!("{s}.source")).exists()
        })
        .collect();
    v.sort();
    v
}

fn check(path: &Path, suffix: &str, got: &str) {
    let want_path = PathBuf::from(format!("{}.{suffix}", path.display()));
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&want_path, got).expect("bless");
        return;
    }
    let want = std::fs::read_to_string(&want_path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with BLESS=1 and review)", want_path.display()));
    assert_eq!(got, want, "{}", path.display());
}

/// Services with their real servers sorted by address and their node names dropped.
fn unordered(
    s: &[lvslab_netns::topology::ServiceSpec],
) -> Vec<lvslab_netns::topology::ServiceSpec> {
    s.iter()
        .cloned()
        .map(|mut s| {
            s.real_servers.sort_by_key(|r| (r.address, r.port));
            for r in &mut s.real_servers {
                r.node.clear();
            }
            s
        })
        .collect()
}

#[test]
fn every_real_world_file_gives_its_reviewed_rules() {
    let all = fixtures();
    assert!(all.len() >= 12, "{} fixtures", all.len());
    for path in &all {
        let name = PathBuf::from(path.file_name().expect("name"));
        let text = std::fs::read_to_string(path).expect("fixture");
        let imported =
            import_ipvsadm(&name, &text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let save = to_ipvsadm_save(&imported.services);
        check(path, "expected", &save);
        let warnings: String = imported.warnings.iter().map(|w| format!("{w}\n")).collect();
        check(path, "warnings", &warnings);
        for w in &imported.warnings {
            assert_eq!(w.file, name);
            assert!(w.line >= 1 && w.line <= text.lines().count(), "{w}");
        }
        // Round trip: ipvsadm -> lvslab -> ipvsadm -> lvslab gives the same services and text.
        let again = import_ipvsadm(Path::new("again"), &save)
            .unwrap_or_else(|e| panic!("{}: written rules re-read: {e}\n{save}", path.display()));
        // ipvsadm-save lists real servers sorted by address, not in the kernel's list order,
        // so the order (and the rsN names that follow it) is the one thing it does not keep.
        assert_eq!(
            unordered(&again.services),
            unordered(&imported.services),
            "{}",
            path.display()
        );
        assert!(again.warnings.is_empty(), "{:?}", again.warnings);
        assert_eq!(to_ipvsadm_save(&again.services), save);
    }
}
