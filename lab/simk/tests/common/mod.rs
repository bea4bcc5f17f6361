//! Shared by the tests that need kernel IPVS.
// Each test binary uses a different part of this module.
#![allow(dead_code)]
use std::io::Write;
use std::path::{Path, PathBuf};

/// A line on stderr that cargo test does not capture: a skip must be seen.
pub fn loud(msg: &str) {
    let _ = writeln!(std::io::stderr(), "{msg}");
}

/// Whether this kernel has IPVS and we are root; says loudly why not.
pub fn kernel_ipvs_here(test: &str) -> bool {
    if !nix::unistd::Uid::effective().is_root() {
        loud(&format!(
            "\n*** SKIPPED {test}: needs root (network namespaces) ***\n"
        ));
        return false;
    }
    if let Err(e) = lvslab_simk::check_host() {
        loud(&format!(
            "\n*** SKIPPED {test}: no kernel IPVS here ***\n{e}\n\
             run this test binary inside the VM: lvslab vm run -- {} --test-threads 1\n",
            std::env::args().next().unwrap_or_default()
        ));
        return false;
    }
    true
}

/// The shipped examples and the recorded kernel examples, sorted.
pub fn scripts() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut v = Vec::new();
    for dir in [
        "examples/simulate",
        "lab/core/tests/kernel-examples",
        "lab/simk/tests/scripts",
    ] {
        for e in std::fs::read_dir(root.join(dir))
            .expect("examples dir")
            .flatten()
        {
            if e.path().extension().is_some_and(|x| x == "sim") {
                v.push(e.path());
            }
        }
    }
    v.sort();
    v
}

/// No namespace of this process's throw-away labs is left.
pub fn nothing_left() {
    let left = lvslab_netns::netns::list_prefixed(&format!("lvs-simk-{}-", std::process::id()));
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
}
