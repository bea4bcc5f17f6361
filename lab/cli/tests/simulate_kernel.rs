//! `lvslab simulate --backend ipvs` from the outside: where the kernel has IPVS (inside the
//! VM, as root) it prints exactly what the userspace backend prints; where it has none it
//! fails with an error that says how the kernel backend runs (the VM).
use std::path::Path;
use std::process::Command;

fn lvslab() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lvslab"))
}

#[test]
fn the_kernel_backend_prints_what_the_core_prints_or_says_where_it_runs() {
    let rr = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/simulate/rr.sim");
    let kernel = lvslab()
        .args(["simulate", "--backend", "ipvs", "--here"])
        .arg(&rr)
        .output()
        .expect("lvslab runs");
    if !Path::new("/proc/net/ip_vs").exists() {
        assert_eq!(kernel.status.code(), Some(1));
        let err = String::from_utf8_lossy(&kernel.stderr);
        assert!(
            err.contains("has no IPVS") && err.contains("lvslab vm run --"),
            "{err}"
        );
        assert!(kernel.stdout.is_empty());
        return;
    }
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "the kernel backend builds namespaces: run this test as root"
    );
    let core = lvslab()
        .arg("simulate")
        .arg(&rr)
        .output()
        .expect("lvslab runs");
    assert!(
        kernel.status.success(),
        "{}",
        String::from_utf8_lossy(&kernel.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&kernel.stdout),
        String::from_utf8_lossy(&core.stdout)
    );
}
