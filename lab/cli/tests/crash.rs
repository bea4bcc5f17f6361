//! Crash-safe cleanup (issue 15): `lvslab up` killed with SIGKILL at seeded pseudo-random
//! points, running daemons and `capture` killed, `lvslab test` killed mid-suite; after
//! `down` nothing of those labs may remain: no namespace, no mount under /run/netns, no
//! process (found by the `LVSLAB_LAB` environment variable every daemon carries and by
//! `--lab LAB` on its command line, so a process whose namespace is already gone is found
//! too), no /run/lvslab entry, and the root namespace's links unchanged.
//!
//! Root; never skips. Every lab has a name unique to this test process. `down --all`
//! removes every lab on the host, so its test runs it in a private mount namespace whose
//! /run/netns and /run/lvslab are empty tmpfs mounts: it sees (and removes) only the labs
//! made there, and the labs of tests running beside it are invisible to it.
//!
//! `LVSLAB_CRASH_ITERS=N` (default 32) sets how many `up`s are killed, spread over the
//! nat, dr, tun and ha topologies; `LVSLAB_CRASH_SEED=S` the seed (printed, so a failing
//! run can be replayed).
mod support;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::repo;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const TOPOLOGIES: [(&str, u64); 4] = [
    // How late a kill may come, in ms: past the whole `up` for nat/dr/tun (60-130 ms on
    // this host, debug build), past the daemons' start for ha (whose `up` then waits
    // seconds for the pair's election, with nothing new to kill).
    ("nat-topology", 120),
    ("dr-topology", 120),
    ("tun-topology", 180),
    ("ha-topology", 700),
];

fn require_root() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "the crash tests build network namespaces and must run as root (sudo ./scripts/test)"
    );
}

/// Where lvslab commands run: the host's mount namespace, or a private one (see the top).
#[derive(Clone, Copy)]
enum Place<'a> {
    Host,
    Private(&'a PrivateRun),
}

impl Place<'_> {
    fn lvslab(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_lvslab"));
        c.current_dir(repo());
        if let Place::Private(p) = self {
            let fd = p.mnt.try_clone().expect("dup mount namespace fd");
            // SAFETY: setns is async-signal-safe; the child is single-threaded after fork,
            // which entering a mount namespace requires.
            unsafe {
                c.pre_exec(move || {
                    nix::sched::setns(fd.as_fd(), nix::sched::CloneFlags::CLONE_NEWNS)
                        .map_err(std::io::Error::from)
                });
            }
        }
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.lvslab().args(args).output().expect("run lvslab")
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "lvslab {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Entries of a directory as this place sees it.
    fn ls(&self, dir: &str) -> Vec<String> {
        let o = match self {
            Place::Host => {
                return std::fs::read_dir(dir)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            }
            Place::Private(p) => Command::new("ls")
                .arg("-1A")
                .arg(dir)
                .pre_exec_mnt(p)
                .output()
                .expect("ls"),
        };
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn mountinfo(&self) -> String {
        match self {
            Place::Host => std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo"),
            Place::Private(p) => String::from_utf8_lossy(
                &Command::new("cat")
                    .arg("/proc/self/mountinfo")
                    .pre_exec_mnt(p)
                    .output()
                    .expect("cat")
                    .stdout,
            )
            .into_owned(),
        }
    }
}

trait InMnt {
    fn pre_exec_mnt(&mut self, p: &PrivateRun) -> &mut Self;
}
impl InMnt for Command {
    fn pre_exec_mnt(&mut self, p: &PrivateRun) -> &mut Self {
        let fd = p.mnt.try_clone().expect("dup");
        // SAFETY: as in Place::lvslab.
        unsafe {
            self.pre_exec(move || {
                nix::sched::setns(fd.as_fd(), nix::sched::CloneFlags::CLONE_NEWNS)
                    .map_err(std::io::Error::from)
            });
        }
        self
    }
}

/// A private mount namespace with empty /run/netns and /run/lvslab, held by a `sleep`
/// this test started (killed by pid on drop; the mounts go with the namespace).
struct PrivateRun {
    holder: Child,
    mnt: OwnedFd,
}

impl PrivateRun {
    fn new() -> PrivateRun {
        let mut holder = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(
                "mkdir -p /run/netns /run/lvslab && mount -t tmpfs lvslab-crash /run/netns \
                 && mount -t tmpfs lvslab-crash /run/lvslab && echo ready && exec sleep 900",
            )
            .stdout(Stdio::piped())
            .spawn()
            .expect("unshare (util-linux) must be installed");
        let mut line = String::new();
        let out = holder.stdout.take().expect("stdout");
        std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line).expect("read");
        if line.trim() != "ready" {
            let _ = holder.kill();
            let _ = holder.wait();
            panic!("could not make a private mount namespace with tmpfs run dirs");
        }
        let mnt = std::fs::File::open(format!("/proc/{}/ns/mnt", holder.id()))
            .expect("open the holder's mount namespace")
            .into();
        PrivateRun { holder, mnt }
    }
}

impl Drop for PrivateRun {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// xorshift64*: the kill points, reproducible from the printed seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn env_num(key: &str, default: u64) -> u64 {
    match std::env::var(key) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{key}={v:?} is not a number")),
        Err(_) => default,
    }
}

/// NUL-separated file of a process as a string (empty once it is gone).
fn proc_file(pid: &str, f: &str) -> String {
    std::fs::read(format!("/proc/{pid}/{f}"))
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

fn pids() -> Vec<String> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        .collect()
}

/// Processes of lab `lab` (or of every lab whose name starts with `lab` when `prefix`):
/// its daemons carry LVSLAB_LAB=<lab>, lvslab commands about it `--lab <lab>`.
fn lab_processes(lab: &str, prefix: bool) -> Vec<String> {
    let me = std::process::id().to_string();
    let env_key = format!("\0LVSLAB_LAB={lab}");
    let arg_key = format!("\0--lab\0{lab}");
    let end = if prefix { "" } else { "\0" };
    pids()
        .into_iter()
        .filter(|p| *p != me)
        .filter_map(|p| {
            let environ = format!("\0{}", proc_file(&p, "environ"));
            let cmdline = format!("\0{}", proc_file(&p, "cmdline"));
            let hit = environ.contains(&format!("{env_key}{end}"))
                || cmdline.contains(&format!("{arg_key}{end}"));
            // A zombie has no environ or cmdline: it is only waiting to be reaped.
            hit.then(|| format!("{p}: {}", cmdline.replace('\0', " ").trim()))
        })
        .collect()
}

/// Links of the root namespace (this test runs in it), by name and kind.
fn root_links() -> Vec<String> {
    let o = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .expect("ip link");
    let mut v: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split(':').nth(1).map(|s| s.trim().to_owned()))
        .collect();
    v.sort();
    v
}

/// Everything of lab `lab` (or of every lab starting with `lab` when `prefix`) still
/// there, as lines for an assertion message.
fn leftovers(place: Place, lab: &str, prefix: bool) -> Vec<String> {
    let sep = if prefix { "" } else { "-" };
    let ns_prefix = format!("lvs-{lab}{sep}");
    let mut left = Vec::new();
    for n in place.ls("/run/netns") {
        if n.starts_with(&ns_prefix) {
            left.push(format!("namespace /run/netns/{n}"));
        }
    }
    for m in place.mountinfo().lines() {
        if let Some(point) = m.split(' ').nth(4) {
            if point.starts_with(&format!("/run/netns/{ns_prefix}")) {
                left.push(format!("mount {point}"));
            }
        }
    }
    for d in place.ls("/run/lvslab") {
        if (prefix && d.starts_with(lab)) || d == lab {
            left.push(format!("/run/lvslab/{d}"));
        }
    }
    left.extend(
        lab_processes(lab, prefix)
            .into_iter()
            .map(|p| format!("process {p}")),
    );
    left
}

/// Leftovers, waiting a little for processes already SIGKILLed to be reaped by init.
fn assert_nothing_left(place: Place, lab: &str, prefix: bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut left = leftovers(place, lab, prefix);
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        left = leftovers(place, lab, prefix);
    }
    assert!(left.is_empty(), "{what}: left behind:\n{}", left.join("\n"));
}

/// Kills every process of these labs (a failed test must not leave them to others).
fn scrub(place: Place, labs: &[String], prefix: bool) {
    for lab in labs {
        if prefix {
            for d in place.ls("/run/lvslab") {
                if d.starts_with(lab.as_str()) {
                    let _ = place.run(&["down", &d]);
                }
            }
        } else {
            let _ = place.run(&["down", lab]);
        }
        for p in lab_processes(lab, prefix) {
            if let Some(pid) = p.split(':').next().and_then(|p| p.parse().ok()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

struct Scrub<'a> {
    place: Place<'a>,
    labs: Vec<String>,
    prefix: bool,
}
impl Drop for Scrub<'_> {
    fn drop(&mut self) {
        scrub(self.place, &self.labs, self.prefix);
    }
}

/// Starts `up TOPOLOGY --name LAB`, kills it with SIGKILL after `delay`, and reaps it.
/// Returns whether the kill came before `up` had finished.
fn kill_up(place: Place, topology: &str, lab: &str, delay: Duration) -> bool {
    let mut up = place.lvslab();
    up.args(["up", "-q", topology, "--name", lab]);
    support::kill_after(up, delay)
}

/// `down LAB`: it may say the lab is not up (killed before its first save), nothing else.
fn down(place: Place, lab: &str) {
    let o = place.run(&["down", lab]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() || err.contains("is not up"),
        "lvslab down {lab} failed:\n{err}"
    );
}

fn plan(tag: &str) -> (u64, Vec<(&'static str, String, Duration)>) {
    let seed = env_num("LVSLAB_CRASH_SEED", 0x15a5_eed1);
    let iters = env_num("LVSLAB_CRASH_ITERS", 32);
    let mut rng = Rng(seed | 1);
    let pid = std::process::id();
    let v = (0..iters)
        .map(|i| {
            let (topo, max_ms) = TOPOLOGIES[(i % TOPOLOGIES.len() as u64) as usize];
            let delay = Duration::from_micros(rng.next() % (max_ms * 1000));
            // Names with no '-' of their own: no lab's namespaces prefix another's.
            (topo, format!("k{pid}{tag}{i}"), delay)
        })
        .collect();
    (seed, v)
}

#[test]
fn up_killed_anywhere_then_down_lab_leaves_nothing() {
    require_root();
    let links = root_links();
    let (seed, plan) = plan("d");
    eprintln!(
        "crash: seed {seed:#x}, {} kills (LVSLAB_CRASH_SEED / LVSLAB_CRASH_ITERS)",
        plan.len()
    );
    let _scrub = Scrub {
        place: Place::Host,
        labs: plan.iter().map(|(_, l, _)| l.clone()).collect(),
        prefix: false,
    };
    let t0 = Instant::now();
    let mut mid = 0;
    for (topo, lab, delay) in &plan {
        mid += usize::from(kill_up(Place::Host, topo, lab, *delay));
        down(Place::Host, lab);
        assert_nothing_left(
            Place::Host,
            lab,
            false,
            &format!("`up {topo} --name {lab}` killed after {delay:?} (seed {seed:#x}), then `down {lab}`"),
        );
    }
    assert_eq!(root_links(), links, "the root namespace's links changed");
    eprintln!(
        "crash: {} kills ({mid} before `up` finished) in {:.1} s, nothing left",
        plan.len(),
        t0.elapsed().as_secs_f64()
    );
}

#[test]
fn up_killed_anywhere_then_down_all_leaves_nothing() {
    require_root();
    let private = PrivateRun::new();
    let place = Place::Private(&private);
    let (seed, plan) = plan("a");
    let _scrub = Scrub {
        place,
        labs: plan.iter().map(|(_, l, _)| l.clone()).collect(),
        prefix: false,
    };
    let mut mid = 0;
    for (topo, lab, delay) in &plan {
        mid += usize::from(kill_up(place, topo, lab, *delay));
    }
    place.ok(&["down", "--all"]);
    for (topo, lab, delay) in &plan {
        assert_nothing_left(
            place,
            lab,
            false,
            &format!("`up {topo} --name {lab}` killed after {delay:?} (seed {seed:#x}), then `down --all`"),
        );
    }
    let rest = place.ls("/run/lvslab");
    assert!(rest.is_empty(), "/run/lvslab after down --all: {rest:?}");
    let rest = place.ls("/run/netns");
    assert!(rest.is_empty(), "/run/netns after down --all: {rest:?}");
    eprintln!(
        "crash: {} kills ({mid} before `up` finished), `down --all` left nothing",
        plan.len()
    );
}

fn daemon_pid(lab: &str, name: &str) -> i32 {
    let text = std::fs::read_to_string(format!("/run/lvslab/{lab}/state.json")).expect("state");
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    v["daemons"]
        .as_array()
        .expect("daemons")
        .iter()
        .find(|d| d["name"] == name)
        .and_then(|d| d["pid"].as_i64())
        .unwrap_or_else(|| panic!("no daemon {name} in {lab}: {text}")) as i32
}

fn netns_inode(ns: &str) -> Option<u64> {
    std::fs::metadata(format!("/run/netns/{ns}"))
        .ok()
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
}

fn pids_in_netns(ino: u64) -> Vec<String> {
    pids()
        .into_iter()
        .filter(|p| {
            std::fs::metadata(format!("/proc/{p}/ns/net"))
                .is_ok_and(|m| std::os::unix::fs::MetadataExt::ino(&m) == ino)
        })
        .collect()
}

fn wait_until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn killed_director_serve_tunnel_and_capture_then_down_leaves_nothing_and_up_works_again() {
    require_root();
    let lab = format!("k{}daemons", std::process::id());
    let _scrub = Scrub {
        place: Place::Host,
        labs: vec![lab.clone()],
        prefix: false,
    };
    let place = Place::Host;
    place.ok(&["up", "-q", "tun-topology", "--name", &lab]);
    let out = tempfile::tempdir().expect("tempdir");
    // A capture around a command that stays in the client's namespace until killed.
    let mut capture = place
        .lvslab()
        .args(["capture", "--lab", &lab, "--out"])
        .arg(out.path())
        .args(["--", env!("CARGO_BIN_EXE_lvslab"), "exec", "--lab", &lab])
        .args(["client", "--", "sleep", "300"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start capture");
    let client = netns_inode(&format!("lvs-{lab}-client")).expect("client namespace");
    wait_until(
        "capture's command runs in the client",
        Duration::from_secs(30),
        || {
            pids_in_netns(client)
                .iter()
                .any(|p| proc_file(p, "cmdline").starts_with("sleep\0"))
        },
    );
    for name in ["director-director", "serve-rs1", "tunnel-rs2"] {
        let pid = daemon_pid(&lab, name);
        kill(Pid::from_raw(pid), Signal::SIGKILL).expect("kill daemon");
    }
    let _ = capture.kill();
    let _ = capture.wait();
    place.ok(&["down", &lab]);
    assert_nothing_left(
        place,
        &lab,
        false,
        "director, serve, tunnel and capture killed, then `down`",
    );
    assert!(
        pids_in_netns(client).is_empty(),
        "processes still in the client's namespace"
    );
    // The same name again: nothing stale stands in the way.
    place.ok(&["up", "-q", "tun-topology", "--name", &lab]);
    let o = place.ok(&[
        "request",
        "--lab",
        &lab,
        "--from",
        "client",
        "--to",
        "192.168.1.250:80",
        "-n",
        "2",
    ]);
    assert!(o.contains("rs1") && o.contains("rs2"), "{o}");
    place.ok(&["down", &lab]);
    assert_nothing_left(place, &lab, false, "second up, then down");
}

#[test]
fn test_killed_mid_suite_leaves_labs_down_removes_and_a_rerun_passes() {
    require_root();
    let place = Place::Host;
    let caps = tempfile::tempdir().expect("tempdir");
    let pending = tempfile::tempdir().expect("tempdir");
    let suite = |names: &[&str]| {
        let mut c = place.lvslab();
        c.arg("test")
            .args(names)
            .arg("--captures")
            .arg(caps.path())
            .arg("--pending")
            .arg(pending.path());
        c
    };
    let mut child = suite(&["nat-rr", "dr-rr", "tun-rr", "nat-wrr"])
        .args(["--jobs", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start lvslab test");
    // Its labs are t<pid % 100000>-<slot>-<scenario> (lvslab_scenario::runner::lab_name).
    let prefix = format!("t{}-", child.id() % 100_000);
    let _scrub = Scrub {
        place,
        labs: vec![prefix.clone()],
        prefix: true,
    };
    let labs_up = || -> Vec<String> {
        place
            .ls("/run/lvslab")
            .into_iter()
            .filter(|d| d.starts_with(&prefix))
            .filter(|d| {
                std::fs::read_to_string(format!("/run/lvslab/{d}/state.json"))
                    .is_ok_and(|s| s.contains("\"complete\": true"))
            })
            .collect()
    };
    wait_until(
        "`lvslab test` has a lab up",
        Duration::from_secs(60),
        || !labs_up().is_empty(),
    );
    // A little further in: traffic flowing, captures being written.
    std::thread::sleep(Duration::from_millis(150));
    let _ = child.kill();
    let _ = child.wait();
    let left: Vec<String> = place
        .ls("/run/lvslab")
        .into_iter()
        .filter(|d| d.starts_with(&prefix))
        .collect();
    assert!(!left.is_empty(), "the killed suite left no lab to remove");
    for lab in &left {
        down(place, lab);
    }
    assert_nothing_left(
        place,
        &prefix,
        true,
        "`lvslab test` killed, then `down` of its labs",
    );
    let o = suite(&["nat-rr"]).output().expect("rerun lvslab test");
    assert!(
        o.status.success(),
        "the rerun failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}
