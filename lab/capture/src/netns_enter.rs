//! Entering a named network namespace from the current thread (setns changes only the
//! calling thread, which is exactly what a per-hop capture thread wants).

use nix::sched::{setns, CloneFlags};

/// Moves the calling thread into `/run/netns/<name>`.
pub fn enter(name: &str) -> Result<(), String> {
    let path = format!("/run/netns/{name}");
    let f = std::fs::File::open(&path).map_err(|e| format!("{path}: {e}"))?;
    setns(&f, CloneFlags::CLONE_NEWNET).map_err(|e| format!("setns {path}: {e}"))
}
