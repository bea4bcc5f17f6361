//! The lab lifecycle as library calls (needs root: every test builds namespaces). Each
//! test uses its own lab name and takes its lab down when it ends, also on panic. The
//! daemons are a stand-in script, which also proves the engine runs the executable it is
//! given rather than its own.

use lvslab_engine::{
    down, up, DaemonConfig, DeferredInterrupts, EngineError, Injection, LabGuard, Topology,
    UpOptions,
};
use lvslab_netns::{netns, state};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn require_root() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "engine lab tests build network namespaces: run them as root (scripts/test does)"
    );
}

fn topology(name: &str) -> Topology {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../topologies")
        .join(format!("{name}.toml"));
    Topology::load(&p).expect("shipped topology")
}

fn unique(tag: &str) -> String {
    format!("e{}-{tag}", std::process::id() % 100_000)
}

/// Takes the lab down however the test ends, independently of the code under test.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = down(&self.0);
        for ns in lab_netns(&self.0) {
            let _ = netns::delete(&ns);
        }
        let _ = std::fs::remove_dir_all(state::run_dir(&self.0));
        let _ = std::fs::remove_file(script_path(&self.0));
    }
}

fn lab_netns(lab: &str) -> Vec<String> {
    netns::list_prefixed(&format!("lvs-{lab}-"))
}

fn script_path(lab: &str) -> PathBuf {
    std::env::temp_dir().join(format!("lvslab-engine-test-{lab}.sh"))
}

/// A stand-in for `lvslab serve|director|tunnel`: reports ready, then waits to be stopped.
fn fake_daemon(lab: &str, body: &str) -> PathBuf {
    let p = script_path(lab);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    p
}

const READY_THEN_WAIT: &str = "eval \"printf r >&$LVSLAB_READY_FD\"\nexec sleep 600";

fn assert_gone(lab: &str) {
    assert!(lab_netns(lab).is_empty(), "left {:?}", lab_netns(lab));
    assert!(!state::run_dir(lab).exists(), "run dir of {lab} left");
}

fn alive(pid: u32) -> bool {
    state::proc_start_time(pid).is_some()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        })
}

/// Whether process `pid`'s environment holds `var` (NAME=VALUE). The fake daemon says
/// ready and then execs sleep: while the exec runs, /proc/PID/environ reads empty (the new
/// image's environment is not laid out yet), so a read that lands there is taken again.
fn has_env(pid: u32, var: &[u8]) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        if !environ.is_empty() || std::time::Instant::now() > deadline {
            return environ.split(|b| *b == 0).any(|v| v == var);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn up_and_down_as_library_calls() {
    require_root();
    let name = unique("updown");
    let _c = Cleanup(name.clone());
    let exe = fake_daemon(&name, READY_THEN_WAIT);
    let cfg = DaemonConfig::new(&exe).env("LVSLAB_ENGINE_TEST", Some("yes"));
    let lab = up(&name, &topology("nat-topology"), &UpOptions::new(cfg)).expect("up");

    assert!(lab.state.complete);
    for n in &lab.state.nodes {
        assert!(netns::exists(&n.netns), "{} missing", n.netns);
    }
    let names: Vec<&str> = lab.state.daemons.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["serve-rs1", "serve-rs2", "director-director"]);
    for d in &lab.state.daemons {
        assert!(d.alive(), "{} not running", d.name);
        assert_eq!(d.argv[0], exe.to_string_lossy(), "{d:?}");
        assert!(
            has_env(d.pid, b"LVSLAB_ENGINE_TEST=yes"),
            "{} lacks the configured environment",
            d.name
        );
    }
    assert_eq!(
        lab.state.daemons[2].argv[1..],
        ["director", "--lab", name.as_str(), "--node", "director"]
    );
    // A second lab of the same name is refused and leaves the first one alone.
    let again = up(
        &name,
        &topology("nat-topology"),
        &UpOptions::new(DaemonConfig::new(&exe)),
    );
    assert!(matches!(again, Err(EngineError::AlreadyUp(_))), "{again:?}");
    assert!(lab.state.daemons.iter().all(|d| d.alive()));
    assert!(lab.state.nodes.iter().all(|n| netns::exists(&n.netns)));
    // The saved state is what other commands see.
    assert_eq!(
        lvslab_netns::Lab::load(&name)
            .expect("load")
            .state
            .daemons
            .len(),
        3
    );

    let pids: Vec<u32> = lab.state.daemons.iter().map(|d| d.pid).collect();
    let removed = down(&name).expect("down");
    assert_eq!(removed.len(), lab.state.netns.len(), "{removed:?}");
    assert_gone(&name);
    assert!(pids.iter().all(|p| !alive(*p)), "daemons survived down");
}

#[test]
fn a_daemon_that_never_gets_ready_rolls_the_lab_back() {
    require_root();
    let name = unique("baddaemon");
    let _c = Cleanup(name.clone());
    let exe = fake_daemon(&name, "exit 3");
    let err = up(
        &name,
        &topology("nat-topology"),
        &UpOptions::new(DaemonConfig::new(&exe)),
    )
    .expect_err("a daemon exited");
    let msg = err.to_string();
    assert!(matches!(err, EngineError::Daemons { .. }), "{msg}");
    assert!(
        msg.contains("serve-rs1") && msg.contains("the lab was removed"),
        "{msg}"
    );
    assert_gone(&name);
}

#[test]
fn injected_failures_at_every_step_roll_back() {
    require_root();
    for step in ["namespaces", "links", "addresses", "daemons"] {
        let name = unique(&format!("inj-{step}"));
        let _c = Cleanup(name.clone());
        let exe = fake_daemon(&name, READY_THEN_WAIT);
        let mut opts = UpOptions::new(DaemonConfig::new(&exe));
        opts.inject = Some(Injection::parse(step).expect("a step"));
        let msg = up(&name, &topology("tun-topology"), &opts)
            .expect_err("injected")
            .to_string();
        assert!(
            msg.contains(&format!("injected failure after step {step}")),
            "{step}: {msg}"
        );
        assert_gone(&name);
    }
    assert!(Injection::parse("everything").is_err());
}

#[test]
fn the_guard_takes_the_lab_down_on_panic() {
    require_root();
    let name = unique("guard");
    let _c = Cleanup(name.clone());
    let exe = fake_daemon(&name, READY_THEN_WAIT);
    let topo = topology("nat-topology");
    let n = name.clone();
    let panicked = std::thread::spawn(move || {
        let g = LabGuard::up(&n, &topo, &UpOptions::new(DaemonConfig::new(&exe))).expect("up");
        assert!(!lab_netns(g.name()).is_empty());
        panic!("a scenario step panicked");
    })
    .join();
    assert!(panicked.is_err());
    assert_gone(&name);
}

#[test]
fn an_interrupt_held_back_during_up_takes_the_lab_down() {
    require_root();
    let name = unique("intr");
    let _c = Cleanup(name.clone());
    let exe = fake_daemon(&name, READY_THEN_WAIT);
    // Its own thread: the held-back SIGINT is pending on this thread only.
    let err = std::thread::spawn(move || {
        let interrupts = DeferredInterrupts::block().expect("block");
        let mut opts = UpOptions::new(DaemonConfig::new(&exe));
        opts.inject = Some(Injection::Interrupt);
        opts.interrupts = Some(&interrupts);
        let err = up(&name, &topology("nat-topology"), &opts).expect_err("interrupted");
        // Consume the pending SIGINT so that unblocking does not end the test process.
        let mut set = nix::sys::signal::SigSet::empty();
        set.add(nix::sys::signal::Signal::SIGINT);
        assert_eq!(
            set.wait().expect("sigwait"),
            nix::sys::signal::Signal::SIGINT
        );
        drop(interrupts);
        assert_gone(&name);
        err
    })
    .join()
    .expect("no panic");
    match err {
        EngineError::Interrupted { signal, .. } => {
            assert_eq!(signal, nix::sys::signal::Signal::SIGINT)
        }
        other => panic!("expected Interrupted, got {other}"),
    }
}

#[test]
fn interrupt_injection_without_held_back_interrupts_is_refused() {
    let mut opts = UpOptions::new(DaemonConfig::new("/nonexistent"));
    opts.inject = Some(Injection::Interrupt);
    let err = up("never", &topology("nat-topology"), &opts).expect_err("refused");
    assert!(matches!(err, EngineError::InjectionNeedsInterrupts));
}

/// The kernel backend, on whatever kernel runs the test: where there is no IPVS (this
/// project's CI host) `up` says so plainly and leaves nothing behind; where there is (the
/// VM, a stock distribution kernel) the director owns the VIP, forwards, runs no userspace
/// director, and kernel IPVS holds exactly the topology's service.
#[test]
fn the_kernel_backend_is_set_up_like_the_seeds_director_or_refused_cleanly() {
    require_root();
    let name = unique("kernel");
    let _c = Cleanup(name.clone());
    let exe = fake_daemon(&name, READY_THEN_WAIT);
    let opts = UpOptions {
        backend: lvslab_engine::Backend::Ipvs,
        ..UpOptions::new(DaemonConfig::new(&exe))
    };
    let has_ipvs = Path::new("/proc/net/ip_vs").exists();
    match up(&name, &topology("nat-topology"), &opts) {
        Err(EngineError::KernelSetup { cause, .. }) if !has_ipvs => {
            assert!(
                matches!(*cause, EngineError::Kernel(lvslab_ipvs_nl::Error::NoIpvs)),
                "{cause}"
            );
            assert_gone(&name);
        }
        Ok(lab) if has_ipvs => {
            assert_eq!(lab.state.backend, lvslab_engine::Backend::Ipvs);
            let names: Vec<&str> = lab.state.daemons.iter().map(|d| d.name.as_str()).collect();
            assert_eq!(names, ["serve-rs1", "serve-rs2"], "no userspace director");
            let director = lab.node("director").expect("director");
            let vip: std::net::IpAddr = "192.168.1.250".parse().expect("vip");
            assert!(
                director
                    .interfaces
                    .iter()
                    .any(|i| i.name == "eth1" && i.addresses.iter().any(|a| a.addr() == vip)),
                "the VIP belongs on the director's LAN interface: {:?}",
                director.interfaces
            );
            let forward = netns::run_in(&director.netns, || {
                std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
            })
            .expect("enter")
            .expect("read");
            assert_eq!(forward.trim(), "1");
            let stats = lvslab_engine::balancer(&lab, None)
                .expect("balancer")
                .stats()
                .expect("stats");
            assert_eq!(stats.services.len(), 1, "{stats:?}");
            let s = &stats.services[0];
            assert_eq!(s.service, "TCP  192.168.1.250:80");
            assert_eq!(s.scheduler, "rr");
            let rips: Vec<String> = s.dests.iter().map(|d| d.addr.to_string()).collect();
            // The kernel lists the newest real server first.
            assert_eq!(rips, ["192.168.1.203:80", "192.168.1.201:80"]);
            assert!(s.dests.iter().all(|d| d.forward == "Masq"));
            down(&name).expect("down");
            assert_gone(&name);
        }
        other => panic!("kernel IPVS present: {has_ipvs}; up gave {other:?}"),
    }
}
