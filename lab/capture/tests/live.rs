//! Live capture in real namespaces (needs root): two namespaces joined by a veth pair that
//! is created inside them (nothing touches the root namespace), a UDP burst between them.

use lvslab_capture::decode::Mac;
use lvslab_capture::{normalize, CaptureTarget, Hop, LiveCapture, NormalizeOptions, RoleMap};
use std::net::{IpAddr, UdpSocket};
use std::process::Command;

fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().expect("running ip");
    assert!(st.success(), "ip {args:?} failed");
}

/// Two namespaces `a` and `b` with `eth0` each, 10.x addresses are not used: RFC 5737 only.
struct Pair {
    a: String,
    b: String,
}

impl Pair {
    fn new(tag: &str) -> Pair {
        let pid = std::process::id();
        let p = Pair {
            a: format!("lvs-t{pid}{tag}-a"),
            b: format!("lvs-t{pid}{tag}-b"),
        };
        ip(&["netns", "add", &p.a]);
        ip(&["netns", "add", &p.b]);
        ip(&[
            "-n", &p.a, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns",
            &p.b,
        ]);
        ip(&["-n", &p.a, "addr", "add", "192.0.2.1/24", "dev", "eth0"]);
        ip(&["-n", &p.b, "addr", "add", "192.0.2.2/24", "dev", "eth0"]);
        for ns in [&p.a, &p.b] {
            ip(&["-n", ns, "link", "set", "eth0", "up"]);
        }
        p
    }

    fn mac(&self, ns: &str) -> Mac {
        let out = Command::new("ip")
            .args(["-n", ns, "-br", "link", "show", "eth0"])
            .output()
            .expect("ip link");
        let s = String::from_utf8_lossy(&out.stdout);
        let m = s.split_whitespace().nth(2).expect("mac column");
        m.parse().expect("mac")
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

#[test]
fn burst_is_captured_whole_at_both_ends_and_normalizes() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "the live capture test builds namespaces: run it as root (scripts/test does)"
    );
    let pair = Pair::new("burst");
    let targets = [
        CaptureTarget {
            netns: pair.a.clone(),
            hop: Hop::new("a", "eth0"),
        },
        CaptureTarget {
            netns: pair.b.clone(),
            hop: Hop::new("b", "eth0"),
        },
    ];
    let cap = LiveCapture::start(&targets, Some("udp")).unwrap();
    const N: usize = 3000;
    lvslab_netns::netns::run_in(&pair.a, || {
        let s = UdpSocket::bind("192.0.2.1:40000").unwrap();
        // Pace a little so the receiver's socket-less ICMP replies stay rate-limited noise.
        for i in 0..N {
            let msg = format!("datagram {i}");
            s.send_to(msg.as_bytes(), "192.0.2.2:9").unwrap();
        }
    })
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let caps = cap.stop().unwrap();
    assert_eq!(caps.len(), 2);
    for c in &caps {
        assert_eq!(
            c.packets.len(),
            N,
            "{} saw {} of {N}",
            c.hop,
            c.packets.len()
        );
    }
    let mut roles = RoleMap::new();
    roles
        .mac(pair.mac(&pair.a), Hop::new("a", "eth0"))
        .mac(pair.mac(&pair.b), Hop::new("b", "eth0"))
        .label(
            IpAddr::from([192, 0, 2, 1]),
            "CIP".parse().expect("a known label"),
        );
    let text = normalize(&caps, &roles, NormalizeOptions::default());
    let first: Vec<&str> = text.lines().take(4).collect();
    assert_eq!(first[0], "## 1: UDP CIP=192.0.2.1:p1 -> 192.0.2.2:9");
    assert!(
        first[2].starts_with("a:eth0          out  a:eth0 > b:eth0"),
        "{text:.400}"
    );
    assert!(
        first[3].starts_with("b:eth0          in   a:eth0 > b:eth0"),
        "{text:.400}"
    );
    assert_eq!(
        text.lines().filter(|l| l.contains(" UDP len ")).count(),
        2 * N
    );
}

#[test]
fn a_bad_filter_is_reported_with_the_expression() {
    assert!(nix::unistd::Uid::effective().is_root(), "run as root");
    let pair = Pair::new("filter");
    let targets = [CaptureTarget {
        netns: pair.a.clone(),
        hop: Hop::new("a", "eth0"),
    }];
    let err = LiveCapture::start(&targets, Some("tcp prot 80"))
        .err()
        .unwrap();
    assert!(err.to_string().contains("tcp prot 80"), "{err}");
}
