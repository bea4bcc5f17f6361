//! End-to-end checks of the userspace director in real labs (root; run in CI).
//!
//! Each test builds its own lab with a unique name, and a guard takes it down even when an
//! assertion fails. What they show: NAT, DR and TUN answered in the scheduler's exact
//! proportion, 32 random bytes echoed intact (like the kernel's ipvs.sh selftest), UDP
//! answered, curl works, the packets look right in tcpdump, and `lvslab real edit` steers
//! new connections without touching established ones.

use lvslab_netns::netns;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const VIP: &str = "192.168.1.250:80";

fn lvslab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lvslab"))
        .args(args)
        .output()
        .expect("run lvslab")
}

fn ok(args: &[&str]) -> String {
    let out = lvslab(args);
    assert!(
        out.status.success(),
        "lvslab {args:?} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A lab that is taken down when the test ends, however it ends.
struct LabGuard {
    name: String,
}

impl LabGuard {
    fn up(topology: &str, tag: &str) -> LabGuard {
        assert!(
            nix::unistd::Uid::effective().is_root(),
            "lab tests need root"
        );
        let guard = LabGuard {
            name: format!("d{tag}{}", std::process::id()),
        };
        ok(&["up", topology, "--name", &guard.name, "--quiet"]);
        guard
    }

    fn netns(&self, node: &str) -> String {
        format!("lvs-{}-{node}", self.name)
    }

    /// `lvslab request --json` from the client.
    fn request(&self, extra: &[&str]) -> Value {
        let mut args = vec![
            "request", "--lab", &self.name, "--from", "client", "--to", VIP, "--json",
        ];
        args.extend_from_slice(extra);
        serde_json::from_str(&ok(&args)).expect("request --json prints JSON")
    }

    fn ctl(&self, what: &str, action: &str, flags: &str) {
        let mut args = vec![what, action, "--lab", &self.name];
        args.extend(flags.split_whitespace());
        ok(&args);
    }

    fn conns(&self) -> Vec<Value> {
        let v: Value = serde_json::from_str(&ok(&["conns", &self.name, "--json"])).unwrap();
        v.as_array().cloned().unwrap_or_default()
    }
}

impl Drop for LabGuard {
    fn drop(&mut self) {
        let _ = lvslab(&["down", &self.name]);
    }
}

fn served(v: &Value, node: &str) -> u64 {
    v["servers"][node].as_u64().unwrap_or(0)
}

fn assert_all_ok(v: &Value, n: u64) {
    assert_eq!(v["ok"].as_u64(), Some(n), "{v:#}");
    assert_eq!(v["failed"].as_u64(), Some(0), "{v:#}");
}

/// tcpdump in a node's namespace, writing a pcap, until [`Capture::finish`].
struct Capture {
    child: Child,
    file: PathBuf,
}

impl Capture {
    fn start(lab: &LabGuard, node: &str, iface: &str) -> Capture {
        let file = std::env::temp_dir().join(format!("{}-{node}-{iface}.pcap", lab.name));
        let mut cmd = Command::new("tcpdump");
        cmd.args(["-i", iface, "-nn", "-U", "--immediate-mode", "-w"])
            .arg(&file);
        cmd.args(["ip", "and", "not", "arp"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = netns::command_in(&lab.netns(node), cmd)
            .unwrap()
            .spawn()
            .expect("tcpdump");
        // tcpdump says "listening on" once its socket is attached.
        let mut err = child.stderr.take().unwrap();
        let mut seen = Vec::new();
        let mut byte = [0u8; 1];
        while !String::from_utf8_lossy(&seen).contains("listening on") {
            if err.read(&mut byte).unwrap_or(0) == 0 {
                panic!(
                    "tcpdump in {node} exited: {}",
                    String::from_utf8_lossy(&seen)
                );
            }
            seen.push(byte[0]);
        }
        // tcpdump prints "listening on" a moment before its ring delivers packets.
        std::thread::sleep(Duration::from_secs(1));
        Capture { child, file }
    }

    /// Stop tcpdump (SIGINT, by pid) and return its packets as `tcpdump -r -e -nn -v` text.
    fn finish(mut self) -> String {
        std::thread::sleep(Duration::from_millis(300));
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        let _ = self.child.wait();
        let out = Command::new("tcpdump")
            .args(["-r"])
            .arg(&self.file)
            .args(["-e", "-nn", "-v"])
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&self.file);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

/// tcpdump at each `(node, interface)` while two requests pass; the text of each capture.
fn capture_requests<const N: usize>(lab: &LabGuard, points: [(&str, &str); N]) -> [String; N] {
    let caps = points.map(|(node, iface)| Capture::start(lab, node, iface));
    assert_all_ok(&lab.request(&["-n", "2"]), 2);
    caps.map(Capture::finish)
}

/// The common checks: rr 50/50 over 100, wrr 1:2 over 99, 32 random bytes, UDP, curl.
fn balances_and_echoes(lab: &LabGuard, method_flag: &str) {
    let v = lab.request(&["-n", "100"]);
    assert_all_ok(&v, 100);
    assert_eq!(
        (served(&v, "rs1"), served(&v, "rs2")),
        (50, 50),
        "rr: {v:#}"
    );

    let v = lab.request(&["-n", "5", "--random-bytes", "32"]);
    assert_all_ok(&v, 5);

    let curl = lvslab(&[
        "exec",
        "--lab",
        &lab.name,
        "client",
        "--",
        "curl",
        "-s",
        "-m",
        "5",
        "http://192.168.1.250/",
    ]);
    let body = String::from_utf8_lossy(&curl.stdout).into_owned();
    assert!(
        curl.status.success() && (body == "rs1\n" || body == "rs2\n"),
        "curl: {body:?} {curl:?}"
    );

    // UDP: a second service, added live.
    lab.ctl("service", "add", "-u 192.168.1.250:80 -s rr");
    lab.ctl(
        "real",
        "add",
        &format!("-u 192.168.1.250:80 -r 192.168.1.201:80 {method_flag} -w 1"),
    );
    lab.ctl(
        "real",
        "add",
        &format!("-u 192.168.1.250:80 -r 192.168.1.203:80 {method_flag} -w 1"),
    );
    let v = lab.request(&["--udp", "-n", "10"]);
    assert_all_ok(&v, 10);
    assert_eq!(
        (served(&v, "rs1"), served(&v, "rs2")),
        (5, 5),
        "udp rr: {v:#}"
    );

    // wrr with weights 1 and 2: exactly a third and two thirds of 99.
    lab.ctl("service", "edit", "-t 192.168.1.250:80 -s wrr");
    lab.ctl(
        "real",
        "edit",
        &format!("-t 192.168.1.250:80 -r 192.168.1.203:80 {method_flag} -w 2"),
    );
    let v = lab.request(&["-n", "99"]);
    assert_all_ok(&v, 99);
    assert_eq!(
        (served(&v, "rs1"), served(&v, "rs2")),
        (33, 66),
        "wrr 1:2: {v:#}"
    );

    let stats = ok(&["stats", &lab.name]);
    assert!(stats.contains("TCP  192.168.1.250:80"), "{stats}");
    assert!(stats.contains("  -> 192.168.1.201:80"), "{stats}");
}

#[test]
fn nat_end_to_end() {
    let lab = LabGuard::up("nat-topology", "nat");
    balances_and_echoes(&lab, "-m");

    let [lan, wan] = capture_requests(&lab, [("director", "eth1"), ("director", "eth0")]);
    assert!(
        lan.contains("198.51.100.10.") && lan.contains("> 192.168.1.201.80:"),
        "NAT rewrote the destination to a RIP:\n{lan}"
    );
    assert!(
        !lan.contains("> 192.168.1.250.80:"),
        "no VIP on the real-server LAN:\n{lan}"
    );
    assert!(
        wan.contains("192.168.1.250.80 > 198.51.100.10."),
        "replies leave with source VIP:\n{wan}"
    );
    assert!(
        !wan.contains("192.168.1.201.80 >") && !wan.contains("192.168.1.203.80 >"),
        "no RIP towards the client:\n{wan}"
    );
}

#[test]
fn dr_end_to_end() {
    let lab = LabGuard::up("dr-topology", "dr");
    balances_and_echoes(&lab, "-g");

    let [dir, rs] = capture_requests(&lab, [("director", "eth0"), ("rs1", "eth0")]);
    assert!(
        rs.contains("198.51.100.10.") && rs.contains("> 192.168.1.250.80:"),
        "the real server gets the packet addressed to the VIP:\n{rs}"
    );
    assert!(
        rs.contains("192.168.1.250.80 > 198.51.100.10."),
        "and answers from the VIP:\n{rs}"
    );
    let dir_mac = mac_of(&lab, "director", "eth0");
    let sent_reply = dir.lines().any(|l| {
        l.starts_with_mac_field(&dir_mac) && l.contains("192.168.1.250.80 > 198.51.100.10.")
    });
    assert!(!sent_reply, "the reply does not pass the director:\n{dir}");
}

#[test]
fn tun_end_to_end() {
    let lab = LabGuard::up("tun-topology", "tun");
    balances_and_echoes(&lab, "-i");

    let [rs] = capture_requests(&lab, [("rs1", "eth0")]);
    assert!(rs.contains("proto IPIP (4)"), "IPIP on the wire:\n{rs}");
    assert!(
        rs.contains("192.168.1.202 > 192.168.1.201: ") && rs.contains("> 192.168.1.250.80:"),
        "outer DIP -> RIP, inner dst VIP:\n{rs}"
    );
    assert!(
        rs.contains("192.168.1.250.80 > 198.51.100.10."),
        "the reply leaves from the VIP:\n{rs}"
    );

    // Full-size DF segments do not fit the tunnel: the director's ICMP fragmentation
    // needed (MTU 1500 - 20) teaches the client a path MTU of 1480, and bulk data flows.
    let v = lab.request(&["-n", "2", "--random-bytes", "20000"]);
    assert_all_ok(&v, 2);
    let route = ok(&[
        "exec",
        "--lab",
        &lab.name,
        "client",
        "--",
        "ip",
        "route",
        "get",
        "192.168.1.250",
    ]);
    assert!(
        route.contains("mtu 1480"),
        "path MTU learnt from the director: {route}"
    );
}

#[test]
fn weight_zero_quiesces_without_breaking_established() {
    let lab = LabGuard::up("nat-topology", "quiesce");
    let vip: SocketAddr = VIP.parse().unwrap();
    let mut stream = netns::run_in(&lab.netns("client"), move || {
        TcpStream::connect_timeout(&vip, Duration::from_secs(3))
    })
    .unwrap()
    .expect("connect to the VIP");
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let echo = |s: &mut TcpStream, msg: &[u8]| {
        s.write_all(msg).unwrap();
        let mut buf = vec![0u8; msg.len()];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(buf, msg);
    };
    echo(&mut stream, b"hello before\n");
    let conns = lab.conns();
    let dest = conns
        .iter()
        .find(|c| c["state"] == "ESTABLISHED")
        .and_then(|c| c["destination"].as_str())
        .expect("the open connection is in the table")
        .to_string();
    let (busy, other) = if dest.starts_with("192.168.1.201") {
        ("rs1", "rs2")
    } else {
        ("rs2", "rs1")
    };

    lab.ctl("real", "edit", &format!("-t {VIP} -r {dest} -m -w 0"));
    let v = lab.request(&["-n", "10"]);
    assert_all_ok(&v, 10);
    assert_eq!(
        (served(&v, other), served(&v, busy)),
        (10, 0),
        "quiesced {busy} gets no new conns: {v:#}"
    );
    echo(&mut stream, b"after quiesce, still flowing\n");

    lab.ctl("real", "edit", &format!("-t {VIP} -r {dest} -m -w 1"));
    let v = lab.request(&["-n", "10"]);
    assert_eq!(
        (served(&v, "rs1"), served(&v, "rs2")),
        (5, 5),
        "back in rotation: {v:#}"
    );
}

fn mac_of(lab: &LabGuard, node: &str, iface: &str) -> String {
    // /sys/class/net shows the root namespace only: ask iproute2 inside the namespace.
    let mut cmd = Command::new("ip");
    cmd.args(["-o", "link", "show", "dev", iface]);
    let out = netns::command_in(&lab.netns(node), cmd)
        .unwrap()
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut words = text.split_whitespace();
    words.find(|w| *w == "link/ether");
    words
        .next()
        .unwrap_or_else(|| panic!("no MAC in {text:?}"))
        .to_string()
}

trait MacField {
    fn starts_with_mac_field(&self, mac: &str) -> bool;
}

impl MacField for str {
    /// `tcpdump -e` lines read `TIME SRC_MAC > DST_MAC, ...`.
    fn starts_with_mac_field(&self, mac: &str) -> bool {
        self.split_whitespace().nth(1) == Some(mac)
    }
}
