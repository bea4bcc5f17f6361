//! Every step of the scripts recorded from Linux 6.1 IPVS must pick the kernel's server.
use std::path::Path;

use lvslab_core::sim::Sim;
use lvslab_core::IpvsConfig;

#[test]
fn core_matches_every_recorded_kernel_pick() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kernel-examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("kernel-examples directory")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "sim"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 4,
        "expected the four recorded scripts, found {files:?}"
    );
    let mut checked = 0;
    for f in files {
        let script = std::fs::read_to_string(&f).expect("read script");
        let mut sim = Sim::new(IpvsConfig::default());
        let reports = sim
            .run_script(&script)
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        for r in &reports {
            let Some(k) = r.kernel else { continue };
            assert_eq!(r.server, k, "{}: {r}", f.display());
            checked += 1;
        }
    }
    assert!(checked >= 60, "only {checked} steps carried a kernel pick");
}
