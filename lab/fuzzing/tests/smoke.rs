//! The fuzz targets on stable, bounded (seconds each): every seed file and kept regression
//! input, then pseudo-random and mutated inputs from a fixed seed. No root, no lab.
//! The long runs are libFuzzer's: scripts/fuzz.

use lvslab_fuzzing::{smoke, TARGETS};
use std::path::{Path, PathBuf};
use std::time::Instant;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Run one target: `random` pseudo-random inputs, `mutated` mutations of its seeds.
fn smoke_run(target: &str, random: usize, mutated: usize, max_len: usize) {
    let (_, harness) = TARGETS
        .iter()
        .find(|(n, _)| *n == target)
        .unwrap_or_else(|| panic!("no target {target}"));
    let crash_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-smoke");
    let t = Instant::now();
    let s = smoke::run(
        &root(),
        target,
        *harness,
        random,
        mutated,
        max_len,
        &crash_dir,
    );
    println!(
        "{target}: {} seeds, {} random, {} mutated inputs in {:.2?}",
        s.seeds,
        s.random,
        s.mutated,
        t.elapsed()
    );
    // A seed directory that moved would silently shrink the run to random bytes.
    if !lvslab_fuzzing::seed_dirs(target).is_empty() {
        assert!(s.seeds >= 5, "{target}: only {} seed files found", s.seeds);
    }
}

#[test]
fn fuzz_smoke_frame_path() {
    smoke_run("frame_path", 3000, 0, 4096);
}

#[test]
fn fuzz_smoke_frame_path_v6() {
    smoke_run("frame_path_v6", 3000, 0, 4096);
}

#[test]
fn fuzz_smoke_topology() {
    smoke_run("topology", 1000, 6000, 512);
}

#[test]
fn fuzz_smoke_scenario() {
    smoke_run("scenario", 1000, 6000, 512);
}

#[test]
fn fuzz_smoke_simulate() {
    smoke_run("simulate", 1000, 6000, 512);
}

#[test]
fn fuzz_smoke_control() {
    smoke_run("control", 2000, 0, 2048);
}

#[test]
fn fuzz_smoke_capture() {
    smoke_run("capture", 1500, 0, 4096);
}

#[test]
fn fuzz_smoke_import_ipvsadm() {
    smoke_run("import_ipvsadm", 1000, 6000, 512);
}

#[test]
fn fuzz_smoke_import_keepalived() {
    smoke_run("import_keepalived", 1000, 6000, 512);
}

/// scripts/fuzz hands libFuzzer the same seed directories as the smoke runs use, and has
/// a cargo-fuzz target for every harness.
#[test]
fn scripts_fuzz_and_fuzz_crate_list_every_target_with_its_seeds() {
    let script = std::fs::read_to_string(root().join("scripts/fuzz")).expect("scripts/fuzz");
    let manifest =
        std::fs::read_to_string(root().join("fuzz/Cargo.toml")).expect("fuzz/Cargo.toml");
    for (t, _) in TARGETS {
        let want = format!("seeds[{t}]=\"{}\"", lvslab_fuzzing::seed_dirs(t).join(" "));
        assert!(script.contains(&want), "scripts/fuzz lacks `{want}`");
        assert!(
            manifest.contains(&format!("name = \"{t}\"")),
            "fuzz/Cargo.toml has no [[bin]] {t}"
        );
        let src = root().join(format!("fuzz/fuzz_targets/{t}.rs"));
        let body =
            std::fs::read_to_string(&src).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
        assert!(
            body.contains(&format!("lvslab_fuzzing::{t}(")),
            "{} calls another harness",
            src.display()
        );
    }
}
