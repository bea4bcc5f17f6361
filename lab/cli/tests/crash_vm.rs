//! Crash-safe cleanup on the kernel backend (issue 15): `lvslab up --backend ipvs` killed
//! with SIGKILL at seeded points, while qemu boots or while the guest builds the lab, then
//! `lvslab down LAB`. Afterwards nothing may remain: no VM lab marker, no qemu process, no
//! VM run directory, no host namespace or /run/lvslab entry of the lab.
//!
//! Found by this test: an `up` killed while the VM booted left qemu running for ever (the
//! lab was recorded only after the guest had built it, so `down LAB` said "not up").
//!
//! It needs the VM to itself (one VM per host, and `down` stops it with its last lab), so it
//! is ignored by `cargo test` and run by scripts/test-kernel before anything else boots it.
//! `LVSLAB_CRASH_VM_ITERS=N` (default 4) kills, `LVSLAB_CRASH_SEED=S` the seed (printed).
mod support;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::{repo, require_root, run};

/// How late a kill may come: past a TCG boot (4-6 s here) into the guest's `up`.
const MAX_DELAY_MS: u64 = 9000;

fn vm_run_dir() -> PathBuf {
    std::env::var_os("LVSLAB_VM_RUN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/lvslab/vm"))
}

/// qemu processes of lvslab's VM (their command line names the VM's agent FIFOs).
fn qemu_processes() -> Vec<String> {
    let needle = vm_run_dir().join("agent").to_string_lossy().into_owned();
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains("qemu-system") && cmd.contains(&needle) {
            v.push(format!(
                "{name}: {}",
                cmd.chars().take(120).collect::<String>()
            ));
        }
    }
    v
}

fn leftovers(lab: &str) -> Vec<String> {
    let mut left: Vec<String> = qemu_processes()
        .into_iter()
        .map(|p| format!("qemu process {p}"))
        .collect();
    let marker = vm_run_dir().join("labs").join(lab);
    if marker.exists() {
        left.push(format!("VM lab marker {}", marker.display()));
    }
    if vm_run_dir().exists() {
        left.push(format!("VM run directory {}", vm_run_dir().display()));
    }
    if Path::new("/run/lvslab").join(lab).exists() {
        left.push(format!("/run/lvslab/{lab}"));
    }
    for e in std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
    {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with(&format!("lvs-{lab}-")) {
            left.push(format!("namespace /run/netns/{n}"));
        }
    }
    left
}

/// Stops whatever a failed iteration left, so the next test meets no VM.
struct Scrub(String);
impl Drop for Scrub {
    fn drop(&mut self) {
        let _ = run(&["down", &self.0]);
        let _ = run(&["vm", "clean"]);
    }
}

#[test]
#[ignore = "needs lvslab's VM to itself: scripts/test-kernel runs it"]
fn up_on_the_kernel_backend_killed_anywhere_then_down_leaves_nothing() {
    require_root();
    assert!(
        qemu_processes().is_empty(),
        "a VM is already running; this test needs it to itself (lvslab vm clean)"
    );
    let seed: u64 = std::env::var("LVSLAB_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x15a5_eed2);
    let iters: u64 = std::env::var("LVSLAB_CRASH_VM_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    eprintln!(
        "crash_vm: seed {seed:#x}, {iters} kills (LVSLAB_CRASH_SEED / LVSLAB_CRASH_VM_ITERS)"
    );
    let mut x = seed | 1;
    let mut killed_early = 0;
    for i in 0..iters {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let r = x.wrapping_mul(0x2545_f491_4f6c_dd1d);
        // Spread the kills evenly over the window, each at a seeded point in its slice.
        let slice = MAX_DELAY_MS * 1000 / iters;
        let delay = Duration::from_micros(i * slice + r % slice);
        let lab = format!("kv{}x{i}", std::process::id());
        let _scrub = Scrub(lab.clone());
        let mut up = Command::new(env!("CARGO_BIN_EXE_lvslab"));
        up.current_dir(repo()).env_remove("LVSLAB_VM_KEEP").args([
            "up",
            "-q",
            "nat-topology",
            "--backend",
            "ipvs",
            "--name",
            &lab,
        ]);
        let finished = !support::kill_after(up, delay);
        if !finished {
            killed_early += 1;
        }
        let o = Command::new(env!("CARGO_BIN_EXE_lvslab"))
            .current_dir(repo())
            .env_remove("LVSLAB_VM_KEEP")
            .args(["down", &lab])
            .output()
            .expect("lvslab down");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            o.status.success() || err.contains("is not up"),
            "lvslab down {lab} after a kill at {delay:?} failed:\n{err}"
        );
        // qemu, stopped by its pid, may take a moment to go.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut left = leftovers(&lab);
        while !left.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            left = leftovers(&lab);
        }
        assert!(
            left.is_empty(),
            "`up --backend ipvs` killed after {delay:?} (seed {seed:#x}, finished: {finished}), then `down {lab}`: left behind:\n{}",
            left.join("\n")
        );
        eprintln!("crash_vm: kill {i} at {delay:?} (up had finished: {finished}): nothing left");
    }
    assert!(
        iters < 2 || killed_early > 0,
        "no kill came before `up` finished: the window no longer covers the boot"
    );
}
