//! Helpers the lab tests of the lvslab binary share: the repository root, running the
//! binary from it, and the root check. Each test binary uses some of them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// The repository root (where `topologies/` and `scenarios/` are).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

/// Runs the lvslab binary under test from the repository root.
pub fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lvslab"))
        .current_dir(repo())
        .args(args)
        .output()
        .expect("run lvslab")
}

/// Runs it and returns its stdout, failing the test (with both outputs) on a non-zero exit.
pub fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(
        o.status.success(),
        "lvslab {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// Lab tests build network namespaces: fail loudly, never skip, without root.
pub fn require_root() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "lab tests build network namespaces and must run as root (sudo ./scripts/test)"
    );
}

/// Starts `cmd` (output discarded), kills it with SIGKILL after `delay` and reaps it.
/// Returns whether the kill came before it had finished.
pub fn kill_after(mut cmd: Command, delay: Duration) -> bool {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start lvslab");
    std::thread::sleep(delay);
    let finished = child.try_wait().expect("try_wait").is_some();
    let _ = child.kill();
    let _ = child.wait();
    !finished
}
