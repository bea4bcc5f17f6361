//! External evidence for the director's IPv6 packet path: tcpdump must decode what the
//! sans-IO director sends over IPv6 (Neighbour Discovery, NAT both ways, DR, IPv6-in-IPv6,
//! ICMPv6 errors, echo reply, reset) as the packets we mean, with every checksum right.

use etherparse::PacketBuilder;
use lvslab_core::director::{Director, DirectorConfig, IfaceId, Interface, Route6};
use lvslab_core::wire::{self, MacAddr, NaFlags};
use lvslab_core::{ipvsadm, Ipvs, IpvsConfig};
use pcap_file::pcap::{PcapPacket, PcapWriter};
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const MAC0: MacAddr = MacAddr([2, 0, 0, 0, 2, 0]);
const MAC1: MacAddr = MacAddr([2, 0, 0, 0, 2, 1]);
const ROUTER: MacAddr = MacAddr([2, 0, 0, 0, 1, 1]);
const RS1: MacAddr = MacAddr([2, 0, 0, 0, 3, 1]);
const T0: Duration = Duration::ZERO;

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn director(method: &str) -> Director {
    let mut ipvs = Ipvs::new(IpvsConfig::default());
    for l in [
        "-A -t [2001:db8:1::250]:80 -s rr".to_string(),
        format!("-a -t [2001:db8:1::250]:80 -r [2001:db8:1::201]:80 {method}"),
        "-A -t [2001:db8:1::250]:81 -s rr".to_string(),
    ] {
        ipvs.apply(T0, ipvsadm::parse(&l).unwrap()).unwrap();
    }
    let iface = |name: &str, mac, v6: &str, answers| Interface {
        name: name.into(),
        mac,
        addrs: vec![],
        addrs6: vec![v6.parse().unwrap()],
        mtu: 1500,
        answers_vip_arp: answers,
    };
    let cfg = DirectorConfig {
        interfaces: vec![
            iface("eth0", MAC0, "2001:db8:203::2/64", true),
            iface("eth1", MAC1, "2001:db8:1::202/64", false),
        ],
        routes: vec![],
        routes6: vec![Route6 {
            dest: "::/0".parse().unwrap(),
            via: a("2001:db8:203::1"),
        }],
    };
    Director::new(cfg, ipvs).unwrap()
}

fn tcp(src: &str, dst: &str, sport: u16, dport: u16, hl: u8, body: usize, syn: bool) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(ROUTER.0, MAC0.0)
        .ipv6(a(src).octets(), a(dst).octets(), hl)
        .tcp(sport, dport, 1000, 64240);
    let b = if syn { b.syn() } else { b.ack(1) };
    let mut out = Vec::new();
    b.write(&mut out, &vec![b'x'; body]).unwrap();
    out
}

/// Everything a director sends in one session of each method, in order.
fn session(method: &str) -> Vec<Vec<u8>> {
    let mut d = director(method);
    let mut out = Vec::new();
    let mut push = |tx: Vec<(IfaceId, Vec<u8>)>| out.extend(tx.into_iter().map(|(_, f)| f));
    // The router asks for the VIP.
    let group = wire::solicited_node(a("2001:db8:1::250"));
    let ns = wire::neighbour_solicitation(ROUTER, a("2001:db8:203::1"), a("2001:db8:1::250"), None);
    assert_eq!(&ns[0..6], &wire::multicast_mac(group).0);
    push(d.handle_frame(T0, IfaceId(0), &ns));
    // The client's SYN: the director solicits rs1, which answers; the SYN follows.
    let syn = tcp(
        "2001:db8:100::10",
        "2001:db8:1::250",
        40000,
        80,
        64,
        0,
        true,
    );
    push(d.handle_frame(T0, IfaceId(0), &syn));
    let flags = NaFlags {
        router: false,
        solicited: true,
        override_: true,
    };
    let na = wire::neighbour_advertisement(
        RS1,
        a("2001:db8:1::201"),
        a("2001:db8:1::202"),
        MAC1,
        flags,
        true,
    );
    push(d.handle_frame(T0, IfaceId(1), &na));
    if method == "-m" {
        let mut reply = Vec::new();
        PacketBuilder::ethernet2(RS1.0, MAC1.0)
            .ipv6(
                a("2001:db8:1::201").octets(),
                a("2001:db8:100::10").octets(),
                64,
            )
            .tcp(80, 40000, 5000, 64240)
            .syn()
            .ack(1001)
            .write(&mut reply, b"")
            .unwrap();
        push(d.handle_frame(T0, IfaceId(1), &reply));
    }
    if method == "-i" {
        // Over the tunnel's MTU (1500 - 40): packet too big, MTU 1460.
        let big = tcp(
            "2001:db8:100::10",
            "2001:db8:1::250",
            40001,
            80,
            64,
            1401,
            true,
        );
        push(d.handle_frame(T0, IfaceId(0), &big));
    }
    // Hop limit 1, no server on port 81, a ping, a stray ACK.
    push(d.handle_frame(
        T0,
        IfaceId(0),
        &tcp("2001:db8:100::10", "2001:db8:1::250", 40002, 80, 1, 0, true),
    ));
    push(d.handle_frame(
        T0,
        IfaceId(0),
        &tcp(
            "2001:db8:100::10",
            "2001:db8:1::250",
            40003,
            81,
            64,
            0,
            true,
        ),
    ));
    let mut ping = Vec::new();
    PacketBuilder::ethernet2(ROUTER.0, MAC0.0)
        .ipv6(
            a("2001:db8:100::10").octets(),
            a("2001:db8:1::250").octets(),
            64,
        )
        .icmpv6_echo_request(7, 1)
        .write(&mut ping, b"ping")
        .unwrap();
    push(d.handle_frame(T0, IfaceId(0), &ping));
    push(d.handle_frame(
        T0,
        IfaceId(0),
        &tcp(
            "2001:db8:100::10",
            "2001:db8:1::250",
            40004,
            80,
            64,
            0,
            false,
        ),
    ));
    out
}

fn tcpdump(frames: &[Vec<u8>], name: &str) -> Option<String> {
    let path: PathBuf =
        std::env::temp_dir().join(format!("lvslab-ipv6-{}-{name}.pcap", std::process::id()));
    write(&path, frames);
    let out = Command::new("tcpdump")
        .args(["-n", "-vv", "-e", "-r"])
        .arg(&path)
        .output();
    let _ = std::fs::remove_file(&path);
    let out = match out {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("running tcpdump: {e}"),
    };
    assert!(
        out.status.success(),
        "tcpdump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn write(path: &Path, frames: &[Vec<u8>]) {
    let file = std::fs::File::create(path).unwrap();
    let mut w = PcapWriter::new(file).unwrap();
    for (i, f) in frames.iter().enumerate() {
        let ts = Duration::from_secs(1_700_000_000) + Duration::from_millis(i as u64);
        w.write_packet(&PcapPacket::new(ts, f.len() as u32, f))
            .unwrap();
    }
}

/// tcpdump's text with every checksum it checked right, and nothing it calls bad.
fn check(text: &str, wants: &[&str]) {
    for bad in ["bad", "incorrect", "truncated", "[|"] {
        assert!(!text.contains(bad), "tcpdump says {bad}:\n{text}");
    }
    for w in wants {
        assert!(text.contains(w), "no `{w}` in:\n{text}");
    }
}

#[test]
fn tcpdump_decodes_the_ipv6_nat_path() {
    let Some(text) = tcpdump(&session("-m"), "nat") else {
        println!("SKIPPED: tcpdump is not installed");
        return;
    };
    check(
        &text,
        &[
            "2001:db8:1::250 > 2001:db8:203::1: [icmp6 sum ok] ICMP6, neighbor advertisement, length 32, tgt is 2001:db8:1::250, Flags [solicited, override]",
            "destination link-address option (2), length 8 (1): 02:00:00:00:02:00",
            "fe80::ff:fe00:201 > ff02::1:ff00:201: [icmp6 sum ok] ICMP6, neighbor solicitation, length 32, who has 2001:db8:1::201",
            "2001:db8:100::10.40000 > 2001:db8:1::201.80: Flags [S], cksum",
            "2001:db8:1::250.80 > 2001:db8:100::10.40000: Flags [S.], cksum",
            "ICMP6, time exceeded in-transit for 2001:db8:1::250",
            "ICMP6, destination unreachable, unreachable port, 2001:db8:1::250 tcp port 81",
            "ICMP6, echo reply, id 7, seq 1",
            "2001:db8:1::250.80 > 2001:db8:100::10.40004: Flags [R]",
        ],
    );
    assert_eq!(text.matches("(correct)").count(), 3, "{text}");
    assert_eq!(text.matches("[icmp6 sum ok]").count(), 5, "{text}");
}

#[test]
fn tcpdump_decodes_ipv6_in_ipv6_and_packet_too_big() {
    let Some(text) = tcpdump(&session("-i"), "tun") else {
        println!("SKIPPED: tcpdump is not installed");
        return;
    };
    check(
        &text,
        &[
            "2001:db8:1::202 > 2001:db8:1::201: (hlim 63, next-header TCP (6) payload length: 20) 2001:db8:100::10.40000 > 2001:db8:1::250.80: Flags [S], cksum",
            "payload length: 1240) 2001:db8:1::250 > 2001:db8:100::10: [icmp6 sum ok] ICMP6, packet too big, mtu 1460",
        ],
    );
    assert!(text.contains("next-header IPv6 (41)"), "{text}");
}

#[test]
fn tcpdump_decodes_the_ipv6_dr_path() {
    let Some(text) = tcpdump(&session("-g"), "dr") else {
        println!("SKIPPED: tcpdump is not installed");
        return;
    };
    check(
        &text,
        &["02:00:00:00:02:01 > 02:00:00:00:03:01, ethertype IPv6 (0x86dd), length 74: (hlim 63, next-header TCP (6) payload length: 20) 2001:db8:100::10.40000 > 2001:db8:1::250.80: Flags [S], cksum"],
    );
}
