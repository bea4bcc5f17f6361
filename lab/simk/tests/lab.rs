//! The throw-away lab on any kernel (needs root; no IPVS needed): the plan's namespaces come
//! up, a client reaches every real server through the director (routes both ways), the
//! listeners answer with their address, and nothing is left once the lab is dropped.
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};

use lvslab_core::sim::parse_script;
use lvslab_simk::{lab, plan, SimLab};

fn root() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "these tests build network namespaces: run them as root"
    );
}

const SCRIPT: &str = "ipvsadm -A -t 10.0.1.100:8002 -s rr\n\
ipvsadm -a -t 10.0.1.100:8002 -r 10.0.2.11:80 -m\n\
ipvsadm -a -t 10.0.1.100:8002 -r 10.0.2.12 -g\n\
ipvsadm -A -u 10.0.1.100:53 -s rr\n\
ipvsadm -a -u 10.0.1.100:53 -r 10.0.2.12:53 -m\n\
conn 10.0.1.2:20010 > 10.0.1.100:8002\n\
conn 10.0.1.2:20011 > 10.0.1.100:53 udp\n";

#[test]
fn clients_reach_real_servers_through_the_director_and_nothing_is_left() {
    root();
    let p = plan(&parse_script(SCRIPT).expect("parses")).expect("plans");
    let names;
    {
        let l = SimLab::up(&p).expect("lab up");
        names = l.namespaces();
        assert_eq!(names.len(), 4, "{names:?}");
        assert!(names
            .iter()
            .all(|n| n.starts_with(&format!("lvs-simk-{}-", std::process::id()))));
        for (rip, port) in [("10.0.2.11", 80), ("10.0.2.12", 8002)] {
            let to: SocketAddr = format!("{rip}:{port}").parse().expect("addr");
            let mut s = l
                .in_client(|| TcpStream::connect_timeout(&to, std::time::Duration::from_secs(5)))
                .expect("in client")
                .unwrap_or_else(|e| panic!("client cannot reach {to} through the director: {e}"));
            s.write_all(b"hello\n").expect("request");
            let mut got = String::new();
            let mut buf = [0u8; 128];
            while !got.contains('\n') {
                let n = s.read(&mut buf).expect("answer");
                assert!(n > 0, "{to} closed without answering");
                got.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
            assert_eq!(got, lab::answer(to));
        }
        let to: SocketAddr = "10.0.2.12:53".parse().expect("addr");
        let u = l
            .in_client(|| UdpSocket::bind("10.0.1.2:20011"))
            .expect("in client")
            .expect("bind the script's client address");
        u.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .expect("timeout");
        u.send_to(b"hi", to).expect("send");
        let mut buf = [0u8; 128];
        let (n, from) = u.recv_from(&mut buf).expect("UDP answer");
        assert_eq!(from, to);
        assert_eq!(String::from_utf8_lossy(&buf[..n]), lab::answer(to));
    }
    for n in &names {
        assert!(
            !lvslab_netns::netns::exists(n),
            "namespace {n} was left behind"
        );
    }
}

#[test]
fn without_kernel_ipvs_the_error_says_where_the_kernel_backend_runs() {
    if std::path::Path::new("/proc/net/ip_vs").exists() {
        eprintln!("this kernel has IPVS: nothing to check here (tests/kernel.rs runs instead)");
        return;
    }
    let e = lvslab_simk::check_host().expect_err("no IPVS here");
    let msg = e.to_string();
    assert!(
        msg.contains("no IPVS") && msg.contains("lvslab vm run"),
        "{msg}"
    );
}

#[test]
fn mark_rules_load_into_the_directors_nftables() {
    root();
    if std::process::Command::new("nft")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("nft is not installed: the kernel backend would stop at a `mark N` step");
        return;
    }
    let p = plan(
        &parse_script(
            "ipvsadm -A -f 1 -s dh\nipvsadm -a -f 1 -r 192.168.1.201 -g\nconn 192.0.2.10:40001 > 198.51.100.7:80 mark 1\n\
             ipvsadm -A -f 1 -6 -s dh\nipvsadm -a -f 1 -6 -r [2001:db8:1::201]:80 -g\n\
             conn [2001:db8:100::10]:40002 > [2001:db8:2::1]:80 mark 1\n",
        )
        .expect("parses"),
    )
    .expect("plans");
    let l = SimLab::up(&p).expect("lab up");
    assert_eq!(l.marks, lvslab_simk::MarkMode::Nft);
    let mut cmd = lvslab_netns::netns::command_in(&l.director_ns, {
        let mut c = std::process::Command::new("nft");
        // One inet table marks both families.
        c.args(["list", "table", "inet", "lvslab_simk"]);
        c
    })
    .expect("command in the director");
    let out = cmd.output().expect("nft list");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("tcp sport 40001 tcp dport 80 meta mark set 0x00000001"),
        "{text}"
    );
    assert!(
        text.contains("ip6 saddr 2001:db8:100::10 ip6 daddr 2001:db8:2::1 tcp sport 40002 tcp dport 80 meta mark set 0x00000001"),
        "{text}"
    );
}
