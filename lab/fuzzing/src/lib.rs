//! lvslab's fuzz harnesses: one function per target, each taking any bytes.
//!
//! The same functions run in two ways: as cargo-fuzz (libFuzzer) targets in `fuzz/`
//! (nightly, `scripts/fuzz`), and as bounded smoke runs on stable in `tests/smoke.rs`
//! (seed files, the kept regression inputs, and pseudo-random and mutated inputs from
//! [`smoke`]), which is part of the normal test suite. A harness panics only when it finds
//! a bug: a panic in lvslab's code, or a broken invariant it checks.
//!
//! Structured targets (the frame path, the control socket, the capture normaliser) draw
//! their input with `arbitrary`, so any bytes are a valid input and libFuzzer's mutations
//! of the bytes become mutations of the structure. Text targets take the bytes as (lossy)
//! UTF-8 text, as the CLI reads a file.

pub mod frames;
pub mod smoke;
mod targets;

pub use targets::{
    capture, control, frame_path, frame_path_v6, import_ipvsadm, import_keepalived, scenario,
    simulate, topology,
};

/// A fuzz target: its name (the cargo-fuzz target's name) and its harness.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, in the order `scripts/fuzz` runs them.
pub const TARGETS: &[Target] = &[
    ("frame_path", frame_path),
    ("frame_path_v6", frame_path_v6),
    ("topology", topology),
    ("scenario", scenario),
    ("simulate", simulate),
    ("control", control),
    ("capture", capture),
    ("import_ipvsadm", import_ipvsadm),
    ("import_keepalived", import_keepalived),
];

/// Seed inputs of a target, as directories relative to the repository root: the shipped
/// files of that kind (and the test fixtures, good and bad). `scripts/fuzz` passes the same
/// directories to libFuzzer (a test checks that the two lists agree). The structured
/// targets need no seeds: any bytes decode to an input.
pub fn seed_dirs(target: &str) -> &'static [&'static str] {
    match target {
        "topology" => &["topologies", "lab/netns/tests/bad", "lab/netns/tests/warn"],
        "scenario" => &["scenarios"],
        "simulate" => &[
            "examples/simulate",
            "lab/core/tests/kernel-examples",
            "lab/simk/tests/scripts",
        ],
        "import_ipvsadm" => &["lab/import/tests/fixtures"],
        "import_keepalived" => &["lab/keepalived/tests/fixtures"],
        _ => &[],
    }
}

/// Where a target's regression inputs live (every crash found, kept), relative to the
/// repository root; the smoke runs replay them all.
pub fn regression_dir(target: &str) -> String {
    format!("fuzz/regressions/{target}")
}
