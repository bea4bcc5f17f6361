//! pcap-in / pcap-out fixtures for the userspace director, no namespaces, no root.
//!
//! Each case is a pair of pcapng files in `tests/fixtures/`: `<case>.in.pcapng` holds the
//! frames the director receives (interface = pcapng interface name, time = timestamp), and
//! `<case>.out.pcapng` the frames it must send. The inputs are built by [`cases`]; run with
//! `LVSLAB_BLESS=1` to (re)write both files after reviewing a change, e.g. with
//! `tshark -r lab/core/tests/fixtures/nat.out.pcapng -V`. Besides the byte comparison each
//! case checks the facts the mode is about, so a wrong blessing still fails.

use etherparse::{ArpEthIpv4Packet, ArpOperation, PacketBuilder, SlicedPacket, TransportSlice};
use lvslab_core::director::{Director, DirectorConfig, IfaceId, Interface, Route};
use lvslab_core::wire::{self, Ipv4Cidr, MacAddr, Parsed, L4};
use lvslab_core::{ipvsadm, Ipvs, IpvsConfig};
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::{Block, PcapNgReader, PcapNgWriter};
use pcap_file::DataLink;
use std::borrow::Cow;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

const DIR_ETH0: MacAddr = MacAddr([0x02, 0, 0, 0, 0x02, 0x00]);
const DIR_ETH1: MacAddr = MacAddr([0x02, 0, 0, 0, 0x02, 0x01]);
const ROUTER: MacAddr = MacAddr([0x02, 0, 0, 0, 0x01, 0x01]);
const RS1: MacAddr = MacAddr([0x02, 0, 0, 0, 0x03, 0x01]);
const RS2: MacAddr = MacAddr([0x02, 0, 0, 0, 0x03, 0x02]);
const CIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
const GW: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 250);
const DIP: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 202);
const RIP1: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 201);
const RIP2: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 203);
const IFACES: [&str; 2] = ["eth0", "eth1"];

/// One received or sent frame.
#[derive(Clone, PartialEq, Eq)]
struct Frame {
    at: Duration,
    iface: usize,
    data: Vec<u8>,
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} {} {}",
            self.at,
            IFACES[self.iface],
            summary(&self.data)
        )
    }
}

/// The nat-topology director: eth0 towards the router, eth1 on the real servers' LAN.
fn director(lines: &[&str]) -> Director {
    let mut ipvs = Ipvs::new(IpvsConfig::default());
    for l in lines {
        ipvs.apply(Duration::ZERO, ipvsadm::parse(l).unwrap())
            .unwrap();
    }
    let cfg = DirectorConfig {
        interfaces: vec![
            Interface {
                name: "eth0".into(),
                mac: DIR_ETH0,
                addrs: vec!["203.0.113.2/24".parse().unwrap()],
                mtu: 1500,
                addrs6: vec![],
                answers_vip_arp: true,
            },
            Interface {
                name: "eth1".into(),
                mac: DIR_ETH1,
                addrs: vec!["192.168.1.202/24".parse().unwrap()],
                mtu: 1500,
                addrs6: vec![],
                answers_vip_arp: true,
            },
        ],
        routes: vec![Route {
            dest: Ipv4Cidr::new(Ipv4Addr::UNSPECIFIED, 0),
            via: GW,
        }],
        routes6: vec![],
    };
    Director::new(cfg, ipvs).unwrap()
}

fn tcp(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    flags: &str,
    payload: &[u8],
) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(src_mac.0, dst_mac.0)
        .ipv4(src.0.octets(), dst.0.octets(), 64)
        .tcp(src.1, dst.1, 1000, 64240);
    for f in flags.chars() {
        b = match f {
            'S' => b.syn(),
            'A' => b.ack(2000),
            'F' => b.fin(),
            'P' => b.psh(),
            _ => b,
        };
    }
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

fn udp(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    payload: &[u8],
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(src_mac.0, dst_mac.0)
        .ipv4(src.0.octets(), dst.0.octets(), 64)
        .udp(src.1, dst.1);
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

fn echo_request(dst: Ipv4Addr, id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(ROUTER.0, DIR_ETH0.0)
        .ipv4(CIP.octets(), dst.octets(), 64)
        .icmpv4_echo_request(id, seq);
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

const PING_ID: u16 = 0x4c56;
const PING_DATA: &[u8] = b"lvslab ping payload 0123456789";

fn arp(
    op: ArpOperation,
    sender: (MacAddr, Ipv4Addr),
    target: (MacAddr, Ipv4Addr),
    eth_dst: MacAddr,
) -> Vec<u8> {
    let p = ArpEthIpv4Packet {
        operation: op,
        sender_mac: sender.0 .0,
        sender_ipv4: sender.1.octets(),
        target_mac: target.0 .0,
        target_ipv4: target.1.octets(),
    };
    wire::arp_frame(eth_dst, sender.0, &p)
}

fn arp_reply_to_director(from: (MacAddr, Ipv4Addr), dir: (MacAddr, Ipv4Addr)) -> Vec<u8> {
    arp(ArpOperation::REPLY, from, dir, dir.0)
}

fn at(ms: u64, iface: usize, data: Vec<u8>) -> Frame {
    Frame {
        at: Duration::from_millis(ms),
        iface,
        data,
    }
}

/// A two-way TCP exchange plus ARP, with rs1 answering for `method`; for DR and TUN the
/// reply does not pass the director, so only the client side is fed.
fn tcp_case(method: &str) -> (Vec<&'static str>, Vec<Frame>) {
    let flag = match method {
        "nat" => "-m",
        "dr" => "-g",
        _ => "-i",
    };
    let lines: Vec<&'static str> = vec![
        "-A -t 192.168.1.250:80 -s rr",
        Box::leak(
            format!("-a -t 192.168.1.250:80 -r 192.168.1.201:80 {flag} -w 1").into_boxed_str(),
        ),
        Box::leak(
            format!("-a -t 192.168.1.250:80 -r 192.168.1.203:80 {flag} -w 1").into_boxed_str(),
        ),
    ];
    let c = (CIP, 40000);
    let v = (VIP, 80);
    let mut frames = vec![
        // The router asks who has the VIP.
        at(
            0,
            0,
            arp(
                ArpOperation::REQUEST,
                (ROUTER, GW),
                (MacAddr::ZERO, VIP),
                MacAddr::BROADCAST,
            ),
        ),
        at(1, 0, tcp(ROUTER, DIR_ETH0, c, v, "S", b"")),
        // The director asked for the real server's MAC; the answer releases the SYN.
        at(2, 1, arp_reply_to_director((RS2, RIP2), (DIR_ETH1, DIP))),
    ];
    if method == "nat" {
        frames.extend([
            at(3, 1, tcp(RS2, DIR_ETH1, (RIP2, 80), c, "SA", b"")),
            at(
                4,
                0,
                arp_reply_to_director((ROUTER, GW), (DIR_ETH0, "203.0.113.2".parse().unwrap())),
            ),
        ]);
    }
    frames.extend([
        at(
            5,
            0,
            tcp(ROUTER, DIR_ETH0, c, v, "AP", b"GET / HTTP/1.0\r\n\r\n"),
        ),
        // A second client connection goes to the other server (rr).
        at(6, 0, tcp(ROUTER, DIR_ETH0, (CIP, 40001), v, "S", b"")),
        at(7, 1, arp_reply_to_director((RS1, RIP1), (DIR_ETH1, DIP))),
    ]);
    if method == "nat" {
        frames.push(at(
            8,
            1,
            tcp(
                RS2,
                DIR_ETH1,
                (RIP2, 80),
                c,
                "AP",
                b"HTTP/1.0 200 OK\r\n\r\n",
            ),
        ));
    }
    (lines, frames)
}

/// All cases: name, ipvsadm lines, input frames.
fn cases() -> Vec<(&'static str, Vec<&'static str>, Vec<Frame>)> {
    let (nat_l, nat_f) = tcp_case("nat");
    let (dr_l, dr_f) = tcp_case("dr");
    let (tun_l, tun_f) = tcp_case("tun");
    let udp_lines = vec![
        "-A -u 192.168.1.250:53 -s rr",
        "-a -u 192.168.1.250:53 -r 192.168.1.201:5353 -m -w 1",
    ];
    let udp_frames = vec![
        at(
            0,
            0,
            udp(ROUTER, DIR_ETH0, (CIP, 50000), (VIP, 53), b"query"),
        ),
        at(1, 1, arp_reply_to_director((RS1, RIP1), (DIR_ETH1, DIP))),
        at(
            2,
            1,
            udp(RS1, DIR_ETH1, (RIP1, 5353), (CIP, 50000), b"answer"),
        ),
        at(
            3,
            0,
            arp_reply_to_director((ROUTER, GW), (DIR_ETH0, "203.0.113.2".parse().unwrap())),
        ),
        // The client's side refuses the answer: port unreachable quoting VIP:53 -> CIP:50000
        // goes to the real server with the quoted source turned back into RIP:5353.
        at(
            4,
            0,
            icmp_port_unreach(
                ROUTER,
                DIR_ETH0,
                CIP,
                &udp(ROUTER, DIR_ETH0, (VIP, 53), (CIP, 50000), b"answer"),
            ),
        ),
    ];
    let reject_lines = vec![
        "-A -t 192.168.1.250:80 -s rr",
        "-A -u 192.168.1.250:53 -s rr",
    ];
    let reject_frames = vec![
        at(
            0,
            0,
            tcp(ROUTER, DIR_ETH0, (CIP, 40000), (VIP, 80), "S", b""),
        ),
        at(
            1,
            0,
            arp_reply_to_director((ROUTER, GW), (DIR_ETH0, "203.0.113.2".parse().unwrap())),
        ),
        at(
            2,
            0,
            udp(ROUTER, DIR_ETH0, (CIP, 50000), (VIP, 53), b"query"),
        ),
    ];
    let mut big = tcp(
        ROUTER,
        DIR_ETH0,
        (CIP, 40000),
        (VIP, 80),
        "AP",
        &[0x55; 1460],
    );
    let mut tun_big_frames = tun_f.clone();
    tun_big_frames.truncate(3);
    // A full-size segment with DF does not fit in the tunnel: fragmentation needed, MTU 1480.
    big[ETH_IP_FLAGS] |= 0x40;
    fix_ip_checksum(&mut big);
    tun_big_frames.push(at(5, 0, big));
    tun_big_frames.push(at(
        6,
        0,
        arp_reply_to_director((ROUTER, GW), (DIR_ETH0, "203.0.113.2".parse().unwrap())),
    ));
    let mut bad_sum = echo_request(VIP, PING_ID, 9, PING_DATA);
    bad_sum[14 + 20 + 2] ^= 0xff;
    let echo_frames = vec![
        // The router's MAC is not known yet: the reply waits for the ARP answer.
        at(0, 0, echo_request(VIP, PING_ID, 1, PING_DATA)),
        at(
            1,
            0,
            arp_reply_to_director((ROUTER, GW), (DIR_ETH0, "203.0.113.2".parse().unwrap())),
        ),
        at(2, 0, echo_request(VIP, PING_ID, 2, PING_DATA)),
        // Not the director's business: a real server's address, and the director's own
        // address (its kernel answers that one).
        at(3, 0, echo_request(RIP1, PING_ID, 3, PING_DATA)),
        at(
            4,
            0,
            echo_request("203.0.113.2".parse().unwrap(), PING_ID, 4, PING_DATA),
        ),
        // A corrupted request is dropped, as icmp_rcv drops it.
        at(5, 0, bad_sum),
    ];
    vec![
        ("echo", nat_l.clone(), echo_frames),
        ("nat", nat_l, nat_f),
        ("dr", dr_l, dr_f),
        ("tun", tun_l.clone(), tun_f),
        ("udp-nat-icmp", udp_lines, udp_frames),
        ("reject", reject_lines, reject_frames),
        ("tun-frag-needed", tun_l, tun_big_frames),
    ]
}

const ETH_IP_FLAGS: usize = 14 + 6;

fn fix_ip_checksum(f: &mut [u8]) {
    f[24] = 0;
    f[25] = 0;
    let c = wire::checksum::internet_checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
}

fn icmp_port_unreach(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    from: Ipv4Addr,
    quoted_frame: &[u8],
) -> Vec<u8> {
    let mut f = wire::icmp_error(
        wire::IcmpError::PortUnreachable,
        &quoted_frame[14..],
        from,
        99,
    );
    // icmp_error addresses the offending packet's source, here the VIP.
    wire::set_macs(&mut f, dst_mac, src_mac);
    f
}

fn run(lines: &[&str], input: &[Frame]) -> Vec<Frame> {
    let mut d = director(lines);
    let mut out = Vec::new();
    for f in input {
        for (iface, data) in d.handle_frame(f.at, IfaceId(f.iface), &f.data) {
            out.push(Frame {
                at: f.at,
                iface: iface.0,
                data,
            });
        }
    }
    out
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn write_pcapng(path: &PathBuf, frames: &[Frame]) {
    let file = std::fs::File::create(path).unwrap();
    let mut w = PcapNgWriter::new(file).unwrap();
    for name in IFACES {
        w.write_pcapng_block(InterfaceDescriptionBlock {
            linktype: DataLink::ETHERNET,
            snaplen: 0xffff,
            options: vec![InterfaceDescriptionOption::IfName(Cow::Borrowed(name))],
        })
        .unwrap();
    }
    for f in frames {
        w.write_pcapng_block(EnhancedPacketBlock {
            interface_id: f.iface as u32,
            timestamp: f.at,
            original_len: f.data.len() as u32,
            data: Cow::Borrowed(&f.data),
            options: vec![],
        })
        .unwrap();
    }
}

fn read_pcapng(path: &PathBuf) -> Vec<Frame> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with LVSLAB_BLESS=1 to create it",
            path.display()
        )
    });
    let mut r = PcapNgReader::new(file).unwrap();
    let mut out = Vec::new();
    while let Some(block) = r.next_block() {
        if let Block::EnhancedPacket(p) = block.unwrap() {
            out.push(Frame {
                at: p.timestamp,
                iface: p.interface_id as usize,
                data: p.data.into_owned(),
            });
        }
    }
    out
}

/// One line per frame for failure messages.
fn summary(data: &[u8]) -> String {
    match wire::parse(data) {
        Ok(Parsed::Arp { arp, .. }) => format!(
            "ARP {:?} {}->{}",
            arp.operation,
            Ipv4Addr::from(arp.sender_ipv4),
            Ipv4Addr::from(arp.target_ipv4)
        ),
        Ok(Parsed::Ipv4(m)) => format!(
            "{}>{} {} -> {} ttl {} {:?}",
            m.src_mac, m.dst_mac, m.src, m.dst, m.ttl, m.l4
        ),
        other => format!("{other:?}"),
    }
}

/// Every IPv4 checksum (header, TCP/UDP, ICMP, inner IPIP) must verify.
fn assert_checksums(f: &Frame) {
    let p = SlicedPacket::from_ethernet(&f.data).unwrap();
    let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net else {
        return;
    };
    let h = ip.header().to_header();
    assert_eq!(h.calc_header_checksum(), h.header_checksum, "{f:?}");
    match &p.transport {
        Some(TransportSlice::Tcp(t)) => {
            assert_eq!(
                t.to_header().calc_checksum_ipv4(&h, t.payload()).unwrap(),
                t.checksum(),
                "{f:?}"
            )
        }
        Some(TransportSlice::Udp(u)) => {
            assert_eq!(
                u.to_header().calc_checksum_ipv4(&h, u.payload()).unwrap(),
                u.checksum(),
                "{f:?}"
            )
        }
        Some(TransportSlice::Icmpv4(_)) => {
            let body = &f.data[14 + h.header_len()..14 + usize::from(h.total_len)];
            assert_eq!(wire::checksum::internet_checksum(body), 0, "{f:?}");
        }
        _ => {}
    }
}

fn meta(f: &Frame) -> wire::Ipv4Meta {
    match wire::parse(&f.data).unwrap() {
        Parsed::Ipv4(m) => m,
        other => panic!("expected IPv4, got {other:?}"),
    }
}

fn ipv4_out(out: &[Frame]) -> Vec<(Frame, wire::Ipv4Meta)> {
    out.iter()
        .filter(|f| matches!(wire::parse(&f.data), Ok(Parsed::Ipv4(_))))
        .map(|f| (f.clone(), meta(f)))
        .collect()
}

fn check_semantics(case: &str, out: &[Frame]) {
    out.iter().for_each(assert_checksums);
    let ip = ipv4_out(out);
    let arp_reply = out.iter().any(|f| matches!(wire::parse(&f.data), Ok(Parsed::Arp { ref arp, .. }) if arp.operation == ArpOperation::REPLY && Ipv4Addr::from(arp.sender_ipv4) == VIP));
    match case {
        "nat" => {
            assert!(arp_reply, "the director answers ARP for the VIP");
            let to_rs: Vec<_> = ip.iter().filter(|(f, _)| f.iface == 1).collect();
            assert_eq!(
                to_rs.len(),
                3,
                "SYN and data to rs2, second SYN to rs1: {out:?}"
            );
            assert_eq!(
                (to_rs[0].1.dst, to_rs[0].0.data[0..6].to_vec()),
                (RIP2, RS2.0.to_vec())
            );
            assert_eq!(to_rs[2].1.dst, RIP1, "rr alternates");
            assert!(to_rs.iter().all(|(_, m)| m.src == CIP && m.ttl == 63));
            let to_client: Vec<_> = ip.iter().filter(|(f, _)| f.iface == 0).collect();
            assert_eq!(to_client.len(), 2, "SYN-ACK and response: {out:?}");
            for (f, m) in to_client {
                assert_eq!((m.src, m.dst), (VIP, CIP), "reply leaves with src VIP");
                assert!(matches!(
                    m.l4,
                    L4::Tcp {
                        sport: 80,
                        dport: 40000,
                        ..
                    }
                ));
                assert_eq!(&f.data[0..6], &ROUTER.0);
            }
        }
        "dr" => {
            assert_eq!(ip.len(), 3, "{out:?}");
            for (f, m) in &ip {
                assert_eq!((m.src, m.dst), (CIP, VIP), "DR leaves the addresses alone");
                assert_eq!(f.iface, 1);
            }
            assert_eq!(
                &ip[0].0.data[0..6],
                &RS2.0,
                "only the MAC says which server"
            );
            assert_eq!(&ip[2].0.data[0..6], &RS1.0);
        }
        "tun" => {
            assert_eq!(ip.len(), 3, "{out:?}");
            for (f, m) in &ip {
                assert_eq!(
                    (m.src, m.dst),
                    (DIP, if f.data[0..6] == RS2.0 { RIP2 } else { RIP1 })
                );
                assert_eq!(m.l4, L4::Other(4), "IPIP");
                let inner = &f.data[14 + 20..];
                assert_eq!(
                    Ipv4Addr::new(inner[16], inner[17], inner[18], inner[19]),
                    VIP,
                    "inner dst VIP"
                );
            }
        }
        "udp-nat-icmp" => {
            let (fwd, _) = &ip[0];
            assert_eq!(meta(fwd).dst, RIP1);
            assert!(matches!(meta(fwd).l4, L4::Udp { dport: 5353, .. }));
            assert_eq!(ip[1].1.src, VIP);
            assert!(matches!(
                ip[1].1.l4,
                L4::Udp {
                    sport: 53,
                    dport: 50000
                }
            ));
            let (_, icmp) = &ip[2];
            assert_eq!(
                icmp.dst, RIP1,
                "the related ICMP error goes to the real server"
            );
            match &icmp.l4 {
                L4::IcmpError { inner, .. } => {
                    assert_eq!(
                        (inner.src, inner.sport, inner.dst, inner.dport),
                        (RIP1, 5353, CIP, 50000)
                    )
                }
                other => panic!("{other:?}"),
            }
        }
        "reject" => {
            assert_eq!(ip.len(), 2, "one port unreachable per request: {out:?}");
            for (_, m) in &ip {
                assert_eq!((m.src, m.dst), (VIP, CIP));
                assert!(
                    matches!(
                        m.l4,
                        L4::IcmpError {
                            icmp_type: 3,
                            code: 3,
                            ..
                        }
                    ),
                    "{:?}",
                    m.l4
                );
            }
        }
        "tun-frag-needed" => {
            let last = &ip.last().unwrap().1;
            assert_eq!((last.src, last.dst), (VIP, CIP));
            assert!(matches!(
                last.l4,
                L4::IcmpError {
                    icmp_type: 3,
                    code: 4,
                    ..
                }
            ));
            let f = &ip.last().unwrap().0;
            assert_eq!(
                &f.data[14 + 20 + 6..14 + 20 + 8],
                &1480u16.to_be_bytes(),
                "next-hop MTU 1500 - 20"
            );
        }
        "echo" => {
            assert_eq!(
                out.len(),
                3,
                "ARP for the router, then two replies: {out:?}"
            );
            assert_eq!(
                ip.len(),
                2,
                "one reply per good request to the VIP: {out:?}"
            );
            for (seq, (f, m)) in (1..).zip(&ip) {
                assert_eq!((m.src, m.dst), (VIP, CIP), "the VIP answers the pinger");
                assert_eq!(m.ttl, 64);
                assert_eq!(f.iface, 0, "back the way the request came");
                assert_eq!(
                    (&f.data[0..6], &f.data[6..12]),
                    (&ROUTER.0[..], &DIR_ETH0.0[..])
                );
                let p = SlicedPacket::from_ethernet(&f.data).unwrap();
                let Some(TransportSlice::Icmpv4(icmp)) = &p.transport else {
                    panic!("not ICMP: {f:?}")
                };
                assert_eq!(
                    icmp.icmp_type(),
                    etherparse::Icmpv4Type::EchoReply(etherparse::IcmpEchoHeader {
                        id: PING_ID,
                        seq
                    })
                );
                assert_eq!(icmp.payload(), PING_DATA);
                assert_eq!(
                    icmp.icmp_type().calc_checksum(icmp.payload()),
                    icmp.checksum()
                );
            }
        }
        other => panic!("no semantic checks for case {other}"),
    }
}

#[test]
fn director_fixtures() {
    let bless = std::env::var_os("LVSLAB_BLESS").is_some();
    for (name, lines, built) in cases() {
        let in_path = fixture(&format!("{name}.in.pcapng"));
        let out_path = fixture(&format!("{name}.out.pcapng"));
        if bless {
            write_pcapng(&in_path, &built);
            write_pcapng(&out_path, &run(&lines, &built));
        }
        let input = read_pcapng(&in_path);
        assert_eq!(
            input, built,
            "{name}: the input fixture no longer matches the case; re-bless"
        );
        let got = run(&lines, &input);
        check_semantics(name, &got);
        let want = read_pcapng(&out_path);
        assert_eq!(
            got.len(),
            want.len(),
            "{name}: frame count\n got {got:#?}\nwant {want:#?}"
        );
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(
                g, w,
                "{name}: frame {i} differs (LVSLAB_BLESS=1 rewrites after review)"
            );
        }
    }
}

/// Every prefix of every fixture frame, fed after the frames before it (so conns exist and
/// the rewrite paths are reached), is counted or dropped, never a panic.
#[test]
fn truncated_frames_do_not_panic() {
    for (name, lines, input) in cases() {
        for (k, f) in input.iter().enumerate() {
            for len in 0..f.data.len() {
                let mut d = director(&lines);
                for before in &input[..k] {
                    d.handle_frame(before.at, IfaceId(before.iface), &before.data);
                }
                let out = d.handle_frame(f.at, IfaceId(f.iface), &f.data[..len]);
                for (_, sent) in &out {
                    assert!(
                        wire::parse(sent).is_ok(),
                        "{name}: frame {k} cut at {len} made an unparsable frame"
                    );
                }
            }
        }
    }
}
