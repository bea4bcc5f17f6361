//! The device loop over the in-memory device, without root: fed the core's recorded
//! fixture frames (`lab/core/tests/fixtures/<case>.in.pcapng`) at their timestamps, it must
//! send exactly the frames of `<case>.out.pcapng`, at the same times, on the same
//! interfaces — what it would hand to AF_PACKET. The faults are checked against the same
//! fixtures: `nat-source-rewrite` differs from them exactly in the source of NAT replies,
//! `timing` sends the same frames, later and in another order, reproducibly per seed.

use lvslab_core::director::{Interface, Route};
use lvslab_core::wire::{self, Ipv4Cidr, MacAddr, Parsed, L4};
use lvslab_director::control::{ControlClient, ControlError};
use lvslab_director::engine::{build_director, ControlServer, DeviceLoop};
use lvslab_director::memory::SentFrame;
use lvslab_director::{Clock, Device, FaultSpec, MemDevice, SimClock};
use pcap_file::pcapng::{Block, PcapNgReader};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 250);
const CIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
const RIP1: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 201);
const RIP2: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 203);

/// The service lines each fixture case was recorded with (lab/core/tests/director_fixtures.rs).
fn lines(case: &str) -> Vec<String> {
    let tcp = |flag: &str| {
        vec![
            "-A -t 192.168.1.250:80 -s rr".to_string(),
            format!("-a -t 192.168.1.250:80 -r 192.168.1.201:80 {flag} -w 1"),
            format!("-a -t 192.168.1.250:80 -r 192.168.1.203:80 {flag} -w 1"),
        ]
    };
    match case {
        "nat" | "echo" => tcp("-m"),
        "dr" => tcp("-g"),
        "tun" | "tun-frag-needed" => tcp("-i"),
        "udp-nat-icmp" => vec![
            "-A -u 192.168.1.250:53 -s rr".into(),
            "-a -u 192.168.1.250:53 -r 192.168.1.201:5353 -m -w 1".into(),
        ],
        "reject" => vec![
            "-A -t 192.168.1.250:80 -s rr".into(),
            "-A -u 192.168.1.250:53 -s rr".into(),
        ],
        other => panic!("no service lines for {other}"),
    }
}

const CASES: [&str; 7] = [
    "nat",
    "dr",
    "tun",
    "echo",
    "udp-nat-icmp",
    "reject",
    "tun-frag-needed",
];

/// The nat-topology director the fixtures assume: eth0 towards the router, eth1 on the
/// real servers' LAN, default route via the router.
fn host() -> (Vec<Interface>, Vec<Route>) {
    let iface = |name: &str, last: u8, addr: &str| Interface {
        name: name.into(),
        mac: MacAddr([0x02, 0, 0, 0, 0x02, last]),
        addrs: vec![addr.parse().unwrap()],
        mtu: 1500,
        addrs6: vec![],
        answers_vip_arp: true,
    };
    (
        vec![
            iface("eth0", 0, "203.0.113.2/24"),
            iface("eth1", 1, "192.168.1.202/24"),
        ],
        vec![Route {
            dest: Ipv4Cidr::new(Ipv4Addr::UNSPECIFIED, 0),
            via: Ipv4Addr::new(203, 0, 113, 1),
        }],
    )
}

fn read_pcapng(name: &str) -> Vec<SentFrame> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../core/tests/fixtures")
        .join(name);
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut r = PcapNgReader::new(file).unwrap();
    let mut out = Vec::new();
    while let Some(block) = r.next_block() {
        if let Block::EnhancedPacket(p) = block.unwrap() {
            out.push(SentFrame {
                at: p.timestamp,
                iface: p.interface_id as usize,
                data: p.data.into_owned(),
            });
        }
    }
    out
}

/// Run the loop over `case`'s input with `faults` until everything is received and sent.
fn run_case(case: &str, faults: &str) -> Vec<SentFrame> {
    let input = read_pcapng(&format!("{case}.in.pcapng"));
    let (ifaces, routes) = host();
    let director = build_director(&lines(case), ifaces, routes, Duration::ZERO).unwrap();
    let clock = SimClock::new();
    let mut mem = MemDevice::new(["eth0", "eth1"], clock.clone());
    for f in &input {
        mem.push_rx(f.at, f.iface, f.data.clone());
    }
    let last = input.iter().map(|f| f.at).max().unwrap_or_default();
    let spec: FaultSpec = faults.parse().unwrap();
    {
        let mut lp = DeviceLoop::new(director, spec.wrap(&mut mem));
        // Well before the first ARP retry (1 s), well after the longest delay.
        let end = last + Duration::from_millis(200);
        lp.run(&clock, None, |_, now| now < end).unwrap();
        assert_eq!(
            lp.device().poll_at(),
            None,
            "{case}: frames still held back"
        );
    }
    assert_eq!(mem.rx_pending(), 0);
    mem.take_sent()
}

fn summary(f: &SentFrame) -> String {
    let what = match wire::parse(&f.data) {
        Ok(Parsed::Ipv4(m)) => format!("{} > {} {:?}", m.src, m.dst, m.l4),
        Ok(Parsed::Arp { arp, .. }) => format!(
            "ARP {:?} {}",
            arp.operation,
            Ipv4Addr::from(arp.target_ipv4)
        ),
        other => format!("{other:?}"),
    };
    format!("{:?} eth{} {what}", f.at, f.iface)
}

fn summaries(frames: &[SentFrame]) -> Vec<String> {
    frames.iter().map(summary).collect()
}

#[test]
fn the_loop_sends_exactly_the_recorded_frames() {
    for case in CASES {
        let got = run_case(case, "");
        let want = read_pcapng(&format!("{case}.out.pcapng"));
        assert!(!want.is_empty(), "{case}: empty reference");
        assert_eq!(
            summaries(&got),
            summaries(&want),
            "{case}: frames, times or interfaces differ"
        );
        assert_eq!(got, want, "{case}: bytes differ");
    }
}

/// The frame's (src, sport) when it is TCP or UDP.
fn tcp_udp_src(f: &SentFrame) -> Option<(Ipv4Addr, u16, wire::Ipv4Meta)> {
    match wire::parse(&f.data) {
        Ok(Parsed::Ipv4(m)) => match m.l4 {
            L4::Tcp { sport, .. } | L4::Udp { sport, .. } => Some((m.src, sport, m)),
            _ => None,
        },
        _ => None,
    }
}

#[test]
fn nat_source_rewrite_changes_only_the_source_of_nat_replies() {
    let got = run_case("nat", "nat-source-rewrite");
    let want = read_pcapng("nat.out.pcapng");
    assert_eq!(got.len(), want.len());
    let mut broken = 0;
    for (g, w) in got.iter().zip(&want) {
        assert_eq!((g.at, g.iface), (w.at, w.iface));
        match (tcp_udp_src(g), tcp_udp_src(w)) {
            (Some((gsrc, gport, gmeta)), Some((VIP, 80, wmeta))) => {
                assert_eq!(wmeta.dst, CIP);
                assert_eq!(
                    (gsrc, gport),
                    (RIP2, 80),
                    "the reply leaves with rs2's address: {}",
                    summary(g)
                );
                assert_eq!((gmeta.dst, g.iface), (CIP, 0));
                // Putting the VIP back gives the recorded frame, checksums included.
                let mut fixed = g.data.clone();
                wire::rewrite_src(&mut fixed, &gmeta, VIP, 80);
                assert_eq!(fixed, w.data, "only the source differs: {}", summary(g));
                broken += 1;
            }
            _ => assert_eq!(g, w, "untouched: {}", summary(w)),
        }
    }
    assert_eq!(broken, 2, "the SYN-ACK and the response");
    // The fault touches NAT replies only: the other methods and the rest are unchanged.
    for case in ["dr", "tun", "echo", "reject"] {
        assert_eq!(
            run_case(case, "nat-source-rewrite"),
            read_pcapng(&format!("{case}.out.pcapng")),
            "{case}"
        );
    }
    let udp = run_case("udp-nat-icmp", "nat-source-rewrite");
    let replies: Vec<_> = udp
        .iter()
        .filter_map(tcp_udp_src)
        .filter(|(_, _, m)| m.dst == CIP)
        .map(|(s, p, _)| (s, p))
        .collect();
    assert_eq!(replies, vec![(RIP1, 5353)]);
}

/// Each frame of `got` paired with a frame of `want` with the same interface and bytes.
fn pair_up<'a>(got: &'a [SentFrame], want: &'a [SentFrame]) -> Vec<(&'a SentFrame, &'a SentFrame)> {
    let mut used = vec![false; want.len()];
    got.iter()
        .map(|g| {
            let i = (0..want.len())
                .find(|&i| !used[i] && want[i].iface == g.iface && want[i].data == g.data)
                .unwrap_or_else(|| panic!("not in the reference: {}", summary(g)));
            used[i] = true;
            (g, &want[i])
        })
        .collect()
}

#[test]
fn timing_delays_and_reorders_the_same_frames_reproducibly() {
    let max = Duration::from_millis(3);
    let mut reordered = Vec::new();
    for case in CASES {
        let want = read_pcapng(&format!("{case}.out.pcapng"));
        for seed in 1..=8 {
            let spec = format!("timing:seed={seed},max_ms=3");
            let got = run_case(case, &spec);
            assert_eq!(got.len(), want.len(), "{case} {spec}: the same frames");
            for (g, w) in pair_up(&got, &want) {
                // The loop wakes up for each due frame, not on its 100 ms timer tick.
                assert!(
                    g.at >= w.at && g.at <= w.at + max,
                    "{case} {spec}: {} was due within 3 ms of {:?}",
                    summary(g),
                    w.at
                );
            }
            assert_eq!(got, run_case(case, &spec), "{case} {spec}: reproducible");
            let order = |v: &[SentFrame]| -> Vec<(usize, Vec<u8>)> {
                v.iter().map(|f| (f.iface, f.data.clone())).collect()
            };
            if order(&got) != order(&want) {
                reordered.push(format!("{case} seed {seed}"));
            }
        }
    }
    assert!(
        !reordered.is_empty(),
        "no seed reordered anything: the fault would prove nothing"
    );
    // Different seeds give different timings.
    assert_ne!(
        run_case("nat", "timing:seed=1"),
        run_case("nat", "timing:seed=2")
    );
    // Plain `timing` works, and max_ms=0 is the identity.
    assert_eq!(
        run_case("nat", "timing").len(),
        read_pcapng("nat.out.pcapng").len()
    );
    assert_eq!(
        run_case("nat", "timing:max_ms=0"),
        read_pcapng("nat.out.pcapng")
    );
}

#[test]
fn timing_and_nat_source_rewrite_combine() {
    let got = run_case("nat", "timing:seed=3,max_ms=2,nat-source-rewrite");
    let from_rs2 = got
        .iter()
        .filter_map(tcp_udp_src)
        .filter(|(s, _, m)| *s == RIP2 && m.dst == CIP)
        .count();
    assert_eq!(from_rs2, 2);
}

#[test]
fn a_burst_longer_than_one_batch_is_received_whole() {
    let (ifaces, routes) = host();
    let director = build_director(&lines("nat"), ifaces, routes, Duration::ZERO).unwrap();
    let clock = SimClock::new();
    let mut mem = MemDevice::new(["eth0", "eth1"], clock.clone());
    // The router asking for the VIP, 300 times at once: more than one recvmmsg batch.
    let who_has_vip = read_pcapng("nat.in.pcapng").remove(0);
    for _ in 0..300 {
        mem.push_rx(Duration::ZERO, 0, who_has_vip.data.clone());
    }
    let mut lp = DeviceLoop::new(director, &mut mem);
    lp.turn(&clock, &[]).unwrap();
    assert_eq!(clock.now(), Duration::ZERO);
    drop(lp);
    let sent = mem.take_sent();
    assert_eq!(sent.len(), 300, "one ARP reply per request, in one turn");
    assert!(sent.iter().all(|f| f.iface == 0 && f.at == Duration::ZERO));
}

#[test]
fn the_loop_sleeps_only_until_the_next_held_frame_is_due() {
    let (ifaces, routes) = host();
    let director = build_director(&lines("nat"), ifaces, routes, Duration::ZERO).unwrap();
    let clock = SimClock::new();
    let mut mem = MemDevice::new(["eth0", "eth1"], clock.clone());
    for f in read_pcapng("nat.in.pcapng").into_iter().take(2) {
        mem.push_rx(f.at, f.iface, f.data);
    }
    let spec: FaultSpec = "timing:seed=5,max_ms=40".parse().unwrap();
    let mut lp = DeviceLoop::new(director, spec.wrap(&mut mem));
    lp.turn(&clock, &[]).unwrap();
    let due = lp.device().poll_at().expect("the ARP reply is held back");
    assert!(due <= clock.now() + Duration::from_millis(40));
    assert!(lp.timeout(clock.now()) <= due - clock.now());
}

#[test]
fn the_control_socket_speaks_the_typed_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let path = lvslab_director::control::socket_path(dir.path(), "director");
    let (ifaces, routes) = host();
    let mut director = build_director(&lines("nat"), ifaces, routes, Duration::ZERO).unwrap();
    // Open a connection: the client's SYN.
    let input = read_pcapng("nat.in.pcapng");
    let syn = &input[1];
    director.handle_frame(syn.at, lvslab_core::director::IfaceId(syn.iface), &syn.data);
    let server = ControlServer::bind(&path).unwrap();
    let client_path = path.clone();
    let client = std::thread::spawn(move || {
        let c = ControlClient::new(client_path);
        let before = c.stats().unwrap();
        c.ipvsadm("-e -t 192.168.1.250:80 -r 192.168.1.201:80 -m -w 0")
            .unwrap();
        let refused = c.ipvsadm("-e -t 192.168.1.250:81 -r 192.168.1.201:80 -m -w 0");
        let after = c.stats().unwrap();
        let conns = c.conns().unwrap();
        let one = c.conn_of("198.51.100.10:40000".parse().unwrap()).unwrap();
        let none = c.conn_of("198.51.100.10:40001".parse().unwrap()).unwrap();
        assert_eq!(one.as_ref(), conns.first());
        assert!(none.is_none());
        (before, refused, after, conns)
    });
    let clock = SimClock::new();
    clock.advance_to(Duration::from_millis(10));
    while !client.is_finished() {
        server.accept_all(&mut director, clock.now());
        std::thread::sleep(Duration::from_millis(1));
    }
    let (before, refused, after, conns) = client.join().unwrap();
    let rs1: SocketAddr = "192.168.1.201:80".parse().unwrap();
    let weight = |s: &lvslab_director::control::Stats| {
        s.services[0]
            .dests
            .iter()
            .find(|d| d.addr == rs1)
            .map(|d| d.weight)
    };
    assert_eq!((weight(&before), weight(&after)), (Some(1), Some(0)));
    assert!(
        matches!(refused, Err(ControlError::Refused(_))),
        "{refused:?}"
    );
    let client_addr: SocketAddr = "198.51.100.10:40000".parse().unwrap();
    let conn = conns
        .iter()
        .find(|c| c.source == client_addr)
        .expect("the connection, found by its client address and port");
    assert_eq!(conn.destination, "192.168.1.203:80".parse().unwrap());
    assert!(!conn.active, "a SYN alone is not ESTABLISHED: {conn:?}");
    let by_dest: BTreeMap<_, _> = after.services[0]
        .dests
        .iter()
        .map(|d| (d.addr, d.inactive))
        .collect();
    assert_eq!(by_dest[&"192.168.1.203:80".parse().unwrap()], 1);
    drop(server);
    assert!(!path.exists(), "the socket file goes with the server");
    assert!(matches!(
        ControlClient::new(&path).stats(),
        Err(ControlError::Connect { .. })
    ));
}

#[test]
fn explained_picks_are_kept_only_while_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let path = lvslab_director::control::socket_path(dir.path(), "director");
    let (ifaces, routes) = host();
    let mut director = build_director(&lines("nat"), ifaces, routes, Duration::ZERO).unwrap();
    let input = read_pcapng("nat.in.pcapng");
    let syn = &input[1];
    let server = ControlServer::bind(&path).unwrap();
    let clock = SimClock::new();
    let ask = |director: &mut lvslab_core::director::Director,
               f: fn(&ControlClient) -> Vec<lvslab_director::control::PickRow>| {
        let p = path.clone();
        let t = std::thread::spawn(move || f(&ControlClient::new(p)));
        while !t.is_finished() {
            server.accept_all(director, clock.now());
            std::thread::sleep(Duration::from_millis(1));
        }
        t.join().unwrap()
    };
    // Off by default: a new connection leaves no reasoning behind.
    director.handle_frame(syn.at, lvslab_core::director::IfaceId(syn.iface), &syn.data);
    assert!(ask(&mut director, |c| c.picks().unwrap()).is_empty());
    // On: the next new connection's pick is kept, with its candidates.
    ask(&mut director, |c| {
        c.explain(true).unwrap();
        Vec::new()
    });
    let mut second = syn.data.clone();
    // Another client port (bytes 34..36 of an Ethernet+IPv4 frame), checksum left alone:
    // the director does not verify TCP checksums, it rewrites them incrementally.
    second[34..36].copy_from_slice(&40001u16.to_be_bytes());
    director.handle_frame(syn.at, lvslab_core::director::IfaceId(syn.iface), &second);
    let picks = ask(&mut director, |c| c.picks().unwrap());
    assert_eq!(picks.len(), 1, "{picks:?}");
    let p = &picks[0];
    assert_eq!(p.client, "198.51.100.10:40001".parse().unwrap());
    assert_eq!(p.vip, "192.168.1.250:80".parse().unwrap());
    assert_eq!(p.scheduler, "rr");
    assert!(p.chosen.is_some());
    assert!(p.text.contains("<- picked"), "{}", p.text);
    // Off again: forgotten.
    let after = ask(&mut director, |c| {
        c.explain(false).unwrap();
        c.picks().unwrap()
    });
    assert!(after.is_empty());
}
