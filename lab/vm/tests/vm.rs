//! Boots the real VM and checks kernel IPVS inside it. Needs root; fetches the cache on
//! first use (running `apt-get update` if the package lists are empty), so it works on a
//! fresh machine. Skipped only when LVSLAB_SKIP_VM=1 says so, and then loudly.
use lvslab_vm::{FetchOptions, Vm, VmConfig};
use std::time::{Duration, Instant};

/// A kernel IPVS NAT check in namespaces inside the VM, cleaned up whatever happens.
const NAT_CHECK: &str = r#"
BB=@BB@
cleanup() {
  for n in nc nd nr1 nr2; do
    for p in $(ip netns pids $n 2>/dev/null); do kill $p; done
    ip netns del $n 2>/dev/null
  done
}
trap cleanup EXIT
set -e
for n in nc nd nr1 nr2; do ip netns add $n; ip -n $n link set lo up; done
ip link add c0 netns nc type veth peer d0 netns nd
ip link add d1 netns nd type veth peer e0 netns nr1
ip link add d2 netns nd type veth peer e0 netns nr2
ip -n nc addr add 198.51.100.10/24 dev c0; ip -n nc link set c0 up
ip -n nc route add default via 198.51.100.1
ip -n nd addr add 198.51.100.1/24 dev d0; ip -n nd addr add 198.51.100.250/32 dev d0
ip -n nd addr add 192.168.1.1/24 dev d1; ip -n nd addr add 192.168.2.1/24 dev d2
for l in d0 d1 d2; do ip -n nd link set $l up; done
ip -n nr1 addr add 192.168.1.201/24 dev e0; ip -n nr1 link set e0 up
ip -n nr1 route add default via 192.168.1.1
ip -n nr2 addr add 192.168.2.203/24 dev e0; ip -n nr2 link set e0 up
ip -n nr2 route add default via 192.168.2.1
ip netns exec nd sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward'
ip netns exec nd ipvsadm -A -t 198.51.100.250:80 -s rr
ip netns exec nd ipvsadm -a -t 198.51.100.250:80 -r 192.168.1.201:80 -m
ip netns exec nd ipvsadm -a -t 198.51.100.250:80 -r 192.168.2.203:80 -m
for r in 1 2; do
  mkdir -p $TMPDIR/www$r && echo rs$r > $TMPDIR/www$r/index.html
  ip netns exec nr$r $BB httpd -f -p 80 -h $TMPDIR/www$r &
done
for i in $(seq 50); do
  ip netns exec nr1 $BB wget -q -O /dev/null http://127.0.0.1/ 2>/dev/null &&
    ip netns exec nr2 $BB wget -q -O /dev/null http://127.0.0.1/ 2>/dev/null && break
  sleep 0.1
done
# (busybox 1.35's wget -T segfaults: bound it with timeout instead)
for i in 1 2; do ip netns exec nc $BB timeout 10 $BB wget -q -O - http://198.51.100.250/; done
ip netns exec nd ipvsadm -Lnc
"#;

/// Stops the VM this test booted, however the test ends.
struct Guard {
    vm: Vm,
    pid: i32,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let stopped = self.vm.stop();
        // stop() signals only a pid that still looks like this VM's qemu; make sure the
        // pid this test started is gone whatever the pid file says.
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", self.pid)).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains("qemu-system") {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(self.pid), None);
        }
        eprintln!("stopped the test VM (qemu pid {}): {stopped:?}", self.pid);
    }
}

fn sh(vm: &Vm, script: &str) -> (i32, String, String) {
    let o = vm
        .run_script(script, Some(Duration::from_secs(120)))
        .unwrap_or_else(|e| panic!("running `{script}` in the VM: {e}"));
    (
        o.status,
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn kernel_ipvs_runs_in_the_vm() {
    if std::env::var("LVSLAB_SKIP_VM").as_deref() == Ok("1") {
        eprintln!("SKIPPED: LVSLAB_SKIP_VM=1: the kernel-IPVS VM test did not run");
        return;
    }
    assert!(
        lvslab_vm::is_root(),
        "this test boots a qemu VM sharing / over 9p and needs root; run it as root, \
         or set LVSLAB_SKIP_VM=1 to skip it explicitly"
    );
    // The shared cache (fetched once per machine), but a run directory of its own, so a
    // VM the user has up is neither reused nor stopped.
    let run = tempfile::tempdir().expect("temp dir");
    let mut cfg = VmConfig::from_env();
    cfg.run_dir = run.path().to_path_buf();
    let t = Instant::now();
    let stamp = lvslab_vm::fetch(
        &cfg,
        FetchOptions {
            apt_update: true,
            force: false,
            progress: &mut |l| eprintln!("fetch: {l}"),
        },
    )
    .expect("fetch the VM");
    eprintln!("fetch: {:.1} s", t.elapsed().as_secs_f64());

    let vm = Vm::new(cfg);
    let t = Instant::now();
    let (pid, booted) = vm
        .ensure_running(&mut |l| eprintln!("{l}"))
        .expect("boot the VM");
    let _guard = Guard {
        vm: vm.clone(),
        pid,
    };
    assert!(booted, "a fresh run directory must boot a new VM");
    eprintln!("boot: {:.1} s", t.elapsed().as_secs_f64());

    // The guest's kernel, not the host's.
    let (st, release, _) = sh(&vm, "uname -r");
    assert_eq!(st, 0);
    assert_eq!(release.trim(), stamp.kernel);

    let t = Instant::now();
    let (st, out, err) = sh(
        &vm,
        "ipvsadm -A -t 192.0.2.1:80 -s wlc && ipvsadm -a -t 192.0.2.1:80 -r 192.0.2.2:80 -m -w 3 && ipvsadm -Ln",
    );
    eprintln!("ipvsadm round trip: {:.2} s", t.elapsed().as_secs_f64());
    assert_eq!(st, 0, "ipvsadm failed: {err}");
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(
        out.starts_with("IP Virtual Server version "),
        "not the kernel's table:\n{out}"
    );
    assert!(
        rows.contains(&vec!["TCP", "192.0.2.1:80", "wlc"]),
        "service missing:\n{out}"
    );
    assert!(
        rows.contains(&vec!["->", "192.0.2.2:80", "Masq", "3", "0", "0"]),
        "real server missing:\n{out}"
    );

    // The table is the kernel's: /proc agrees (addresses in hex there).
    let (st, proc_table, _) = sh(&vm, "cat /proc/net/ip_vs");
    assert_eq!(st, 0);
    assert!(
        proc_table.contains("TCP  C0000201:0050 wlc"),
        "{proc_table}"
    );
    assert!(
        proc_table.contains("-> C0000202:0050      Masq    3"),
        "{proc_table}"
    );

    // Every scheduler 6.1 has is loaded, without modprobe.
    let (st, modules, _) = sh(&vm, "cut -d' ' -f1 /proc/modules");
    assert_eq!(st, 0);
    let loaded: Vec<&str> = modules.lines().collect();
    for s in [
        "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh",
    ] {
        let m = format!("ip_vs_{s}");
        assert!(loaded.contains(&m.as_str()), "{m} not loaded: {loaded:?}");
    }

    // Exit codes, stderr and binary output come back intact.
    let o = vm
        .run_script(
            "printf 'a\\000\\377\\n'; echo oops >&2; exit 7",
            Some(Duration::from_secs(60)),
        )
        .expect("run");
    assert_eq!(o.status, 7);
    assert_eq!(o.stdout, b"a\0\xff\n");
    assert_eq!(o.stderr, b"oops\n");
    let o = vm
        .run(
            &[
                "printf".into(),
                "%s|".into(),
                "two words".into(),
                "it's".into(),
            ],
            None,
        )
        .expect("run argv");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "two words|it's|");

    // Kernel IPVS forwards: a NAT service in a director namespace, two real servers
    // (busybox httpd from the cache) on their own subnets, a client namespace; rr gives
    // each real server one of two requests, newest first as the kernel walks its list.
    let bb = vm.config().data_dir().join("root/bin/busybox");
    let (st, out, err) = sh(&vm, &NAT_CHECK.replace("@BB@", &bb.display().to_string()));
    eprintln!("NAT check:\n{out}{err}");
    assert_eq!(st, 0, "NAT check failed:\n{out}\n{err}");
    let answers: Vec<&str> = out.lines().filter(|l| l.starts_with("rs")).collect();
    assert_eq!(answers, ["rs2", "rs1"], "{out}");

    // The share is writable from inside and seen on the host at the same path.
    let share = vm.config().share_dir();
    let probe = share.join("probe");
    let (st, _, err) = sh(&vm, &format!("echo from-the-guest > {}", probe.display()));
    assert_eq!(st, 0, "{err}");
    assert_eq!(
        std::fs::read_to_string(&probe).expect("probe on the host"),
        "from-the-guest\n"
    );
    // The rest of the host root is read-only.
    let (st, _, _) = sh(&vm, "touch /etc/lvslab-vm-must-fail");
    assert_ne!(st, 0, "the host root is writable from the guest");

    let t = Instant::now();
    let (st, _, _) = sh(&vm, "true");
    assert_eq!(st, 0);
    eprintln!("warm round trip: {:.2} s", t.elapsed().as_secs_f64());
    assert!(vm.status().is_some_and(|r| r.pid == pid));
}
