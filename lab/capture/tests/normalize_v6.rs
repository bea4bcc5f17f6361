//! The normalizer on IPv6 frames built by hand (etherparse, no root): dual-stack role names,
//! bracketed `[addr]:port` endpoints, IPv6-in-IPv6 like IPIP, and Neighbour Discovery and
//! MLD left out like ARP and IGMP.

use etherparse::{IpNumber, PacketBuilder};
use lvslab_capture::decode::{decode_ethernet, Body, Mac, L4};
use lvslab_capture::files::{read_run_dir, write_run_dir};
use lvslab_capture::{normalize, CapturedPacket, Hop, HopCapture, NormalizeOptions, RoleMap};
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

fn v6(s: &str) -> Ipv6Addr {
    s.parse().expect("an IPv6 address")
}

fn cip() -> Ipv6Addr {
    v6("2001:db8:100::10")
}
fn vip() -> Ipv6Addr {
    v6("2001:db8:1::250")
}
fn dip() -> Ipv6Addr {
    v6("2001:db8:1::202")
}
fn rip1() -> Ipv6Addr {
    v6("2001:db8:1::201")
}

fn mac(n: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, 0, n]
}

/// The nat6 lab's interfaces (the same MAC plan as the IPv4 tests).
fn hops() -> Vec<(Hop, [u8; 6])> {
    vec![
        (Hop::new("client", "eth0"), mac(1)),
        (Hop::new("router", "eth0"), mac(2)),
        (Hop::new("router", "eth1"), mac(3)),
        (Hop::new("director", "eth0"), mac(4)),
        (Hop::new("director", "eth1"), mac(5)),
        (Hop::new("rs1", "eth0"), mac(6)),
    ]
}

fn label(s: &str) -> lvslab_netns::Label {
    s.parse().expect("a known label")
}

/// Labels as a dual-stack topology gives them: one label names both families.
fn roles() -> RoleMap {
    let mut r = RoleMap::new();
    for (h, m) in hops() {
        r.mac(Mac(m), h);
    }
    r.label(IpAddr::from(cip()), label("CIP"))
        .label(IpAddr::from([198, 51, 100, 10]), label("CIP"))
        .label(IpAddr::from(vip()), label("VIP"))
        .label(IpAddr::from(rip1()), label("RIP1"))
        .label(IpAddr::from(dip()), label("DIP"));
    r
}

#[derive(Default)]
struct Sim {
    caps: std::collections::BTreeMap<Hop, Vec<CapturedPacket>>,
}

impl Sim {
    fn put(&mut self, node: &str, iface: &str, ns: u64, data: Vec<u8>) {
        let len = u32::try_from(data.len()).expect("small frame");
        self.caps
            .entry(Hop::new(node, iface))
            .or_default()
            .push(CapturedPacket {
                ts: Duration::from_nanos(1_700_000_000_000_000_000 + ns),
                data,
                orig_len: len,
            });
    }

    fn captures(&self) -> Vec<HopCapture> {
        self.caps
            .iter()
            .map(|(h, p)| HopCapture {
                hop: h.clone(),
                packets: p.clone(),
            })
            .collect()
    }
}

fn syn6(src_mac: u8, dst_mac: u8, src: Ipv6Addr, dst: Ipv6Addr, sport: u16) -> Vec<u8> {
    let mut b = Vec::new();
    PacketBuilder::ethernet2(mac(src_mac), mac(dst_mac))
        .ipv6(src.octets(), dst.octets(), 64)
        .tcp(sport, 80, 7, 64800)
        .syn()
        .write(&mut b, &[])
        .expect("build");
    b
}

/// ICMPv6 with raw bytes after the first four (type, code, checksum 0: not checked).
fn icmp6(src: Ipv6Addr, dst: Ipv6Addr, dst_mac: [u8; 6], ty: u8, rest: &[u8]) -> Vec<u8> {
    let mut payload = vec![ty, 0, 0, 0];
    payload.extend_from_slice(rest);
    let mut b = Vec::new();
    PacketBuilder::ethernet2(mac(1), dst_mac)
        .ipv6(src.octets(), dst.octets(), 255)
        .write(&mut b, IpNumber::IPV6_ICMP, &payload)
        .expect("build");
    b
}

/// An MLDv2 report as Linux sends it when a lab's addresses come up: from ::, to ff02::16,
/// behind a hop-by-hop header with the router alert option.
fn mld_report() -> Vec<u8> {
    let mut f = vec![0x33, 0x33, 0, 0, 0, 0x16];
    f.extend_from_slice(&mac(1));
    f.extend_from_slice(&[0x86, 0xdd]);
    // IPv6: version 6, payload 8 (hop-by-hop) + 8 (report, no records), next header 0.
    f.extend_from_slice(&[0x60, 0, 0, 0, 0, 16, 0, 1]);
    f.extend_from_slice(&Ipv6Addr::UNSPECIFIED.octets());
    f.extend_from_slice(&v6("ff02::16").octets());
    // Hop-by-hop: next header 58, length 0, router alert (5, 2, MLD 0), PadN.
    f.extend_from_slice(&[58, 0, 5, 2, 0, 0, 1, 0]);
    f.extend_from_slice(&[143, 0, 0, 0, 0, 0, 0, 0]);
    f
}

#[test]
fn ipv6_hops_carry_the_role_names_with_bracketed_ports() {
    let mut sim = Sim::default();
    sim.put("client", "eth0", 1, syn6(1, 2, cip(), vip(), 40000));
    sim.put("router", "eth0", 2, syn6(1, 2, cip(), vip(), 40000));
    sim.put("director", "eth1", 3, syn6(5, 6, cip(), rip1(), 40000));
    sim.put("rs1", "eth0", 4, syn6(5, 6, cip(), rip1(), 40000));
    let text = normalize(&sim.captures(), &roles(), NormalizeOptions::default());
    assert!(
        text.contains("client:eth0     out  client:eth0 > router:eth0       CIP=[2001:db8:100::10]:p1 > VIP=[2001:db8:1::250]:80 TCP [S] seq 0 len 0"),
        "{text}"
    );
    assert!(
        text.contains("director:eth1   out  director:eth1 > rs1:eth0        CIP=[2001:db8:100::10]:p1 > RIP1=[2001:db8:1::201]:80 TCP [S] seq 0 len 0"),
        "{text}"
    );
    assert!(
        text.starts_with("## 1: TCP CIP=[2001:db8:100::10]:p1 -> VIP=[2001:db8:1::250]:80"),
        "{text}"
    );
}

#[test]
fn ipv6_in_ipv6_is_shown_like_ipip() {
    let inner = {
        let mut b = Vec::new();
        PacketBuilder::ipv6(cip().octets(), vip().octets(), 63)
            .tcp(40000, 80, 7, 64800)
            .syn()
            .write(&mut b, &[])
            .expect("build");
        b
    };
    let mut outer = Vec::new();
    PacketBuilder::ethernet2(mac(5), mac(6))
        .ipv6(dip().octets(), rip1().octets(), 64)
        .write(&mut outer, IpNumber::IPV6, &inner)
        .expect("build");
    let frame = decode_ethernet(&outer).expect("decodes");
    let Body::Ip(ip) = &frame.body else {
        panic!("{frame:?}")
    };
    assert!(matches!(ip.l4, L4::Ipip(_)), "{ip:?}");
    let mut sim = Sim::default();
    sim.put("router", "eth1", 1, syn6(3, 4, cip(), vip(), 40000));
    sim.put("director", "eth1", 3, outer.clone());
    sim.put("rs1", "eth0", 4, outer);
    let text = normalize(&sim.captures(), &roles(), NormalizeOptions::default());
    assert!(
        text.contains("director:eth1   out  director:eth1 > rs1:eth0        IP6IP6 DIP=2001:db8:1::202 > RIP1=2001:db8:1::201 | CIP=[2001:db8:100::10]:p1 > VIP=[2001:db8:1::250]:80 TCP [S] seq 0 len 0"),
        "{text}"
    );
    // One journey: the plain and the encapsulated sightings belong together.
    assert_eq!(text.matches("\n\n").count(), 1, "{text}");
}

#[test]
fn neighbour_discovery_is_left_out_unless_asked_for() {
    let mut sim = Sim::default();
    // Neighbour Solicitation for the VIP, to its solicited-node group, and the answer.
    let mut ns = vec![0; 4];
    ns.extend_from_slice(&vip().octets());
    sim.put(
        "router",
        "eth1",
        1,
        icmp6(
            v6("2001:db8:203::1"),
            v6("ff02::1:ff00:250"),
            [0x33, 0x33, 0xff, 0, 0x02, 0x50],
            135,
            &ns,
        ),
    );
    sim.put(
        "director",
        "eth0",
        2,
        icmp6(vip(), v6("2001:db8:203::1"), mac(3), 136, &ns),
    );
    sim.put("client", "eth0", 5, syn6(1, 2, cip(), vip(), 40000));
    let plain = normalize(&sim.captures(), &roles(), NormalizeOptions::default());
    assert!(!plain.contains("ICMPv6"), "{plain}");
    assert!(plain.contains("TCP [S]"), "{plain}");
    let opts = NormalizeOptions {
        neighbor_discovery: true,
        ..Default::default()
    };
    let with = normalize(&sim.captures(), &roles(), opts);
    // Shown like ARP: what is asked and who answers, in one link-layer conversation, even
    // though the solicitation goes to a (link-local) multicast group.
    assert!(with.contains("## 1: link layer"), "{with}");
    assert!(
        with.contains("ND who-has VIP=2001:db8:1::250 tell 2001:db8:203::1"),
        "{with}"
    );
    assert!(
        with.contains("ND advert VIP=2001:db8:1::250 > 2001:db8:203::1: VIP=2001:db8:1::250"),
        "{with}"
    );
}

#[test]
fn mld_reports_behind_a_hop_by_hop_header_are_decoded_and_left_out() {
    let frame = decode_ethernet(&mld_report()).expect("decodes");
    let Body::Ip(ip) = &frame.body else {
        panic!("{frame:?}")
    };
    assert!(
        matches!(
            ip.l4,
            L4::IcmpOther {
                v6: true,
                icmp_type: 143,
                ..
            }
        ),
        "the hop-by-hop header is skipped: {ip:?}"
    );
    let mut sim = Sim::default();
    sim.put("client", "eth0", 1, mld_report());
    sim.put("client", "eth0", 5, syn6(1, 2, cip(), vip(), 40000));
    for opts in [
        NormalizeOptions::default(),
        NormalizeOptions {
            arp: true,
            neighbor_discovery: true,
            ..Default::default()
        },
    ] {
        let text = normalize(&sim.captures(), &roles(), opts);
        assert!(!text.contains("ff02::16"), "{text}");
    }
    let opts = NormalizeOptions {
        multicast: true,
        ..Default::default()
    };
    assert!(normalize(&sim.captures(), &roles(), opts).contains("ff02::16"));
}

#[test]
fn ipv6_frames_round_trip_through_the_run_dir_pcaps() {
    let mut sim = Sim::default();
    sim.put("client", "eth0", 1, syn6(1, 2, cip(), vip(), 40000));
    sim.put("client", "eth0", 2, mld_report());
    let caps = sim.captures();
    let dir = tempfile::tempdir().expect("tempdir");
    write_run_dir(dir.path(), &caps).expect("write");
    let back = read_run_dir(dir.path()).expect("read");
    assert_eq!(back, caps);
    assert_eq!(
        normalize(&back, &roles(), NormalizeOptions::default()),
        normalize(&caps, &roles(), NormalizeOptions::default())
    );
}
