//! The `drop_entry` defence (net.ipv4.vs.drop_entry, ip_vs_random_dropentry and
//! todrop_entry in the kernel's ip_vs_conn.c): with the conn table at its bound ("memory
//! short" for lvslab), a new flow evicts an entry the kernel would drop (half-open TCP,
//! idle low-traffic flows) instead of being refused; flows the kernel keeps are kept; with
//! drop_entry 0 nothing changes.
use std::net::SocketAddr;
use std::time::Duration;

use lvslab_core::{
    ipvsadm, ConnState, ConnView, FlowPacket, InVerdict, Ipvs, IpvsConfig, Protocol, TcpFlags,
};

const T0: Duration = Duration::from_secs(10);
const VIP: &str = "192.168.1.250:80";
const BOUND: usize = 16;

fn packet(protocol: Protocol, port: u16, tcp: Option<TcpFlags>) -> FlowPacket {
    FlowPacket {
        protocol,
        src: SocketAddr::new("198.51.100.10".parse().expect("ip"), port),
        dst: VIP.parse().expect("vip"),
        tcp,
        fwmark: 0,
        len: 60,
    }
}

fn syn(port: u16) -> FlowPacket {
    packet(Protocol::Tcp, port, Some(TcpFlags::SYN))
}

fn ack(port: u16) -> FlowPacket {
    packet(Protocol::Tcp, port, Some(TcpFlags::ACK))
}

fn udp(port: u16) -> FlowPacket {
    packet(Protocol::Udp, port, None)
}

/// A TCP and a UDP service on the VIP, one NAT real server each, the table bounded at
/// BOUND entries and drop_entry set to `drop_entry` (None: never set).
fn ipvs(drop_entry: Option<&str>) -> Ipvs {
    let mut ipvs = Ipvs::new(IpvsConfig {
        max_conns: BOUND,
        ..IpvsConfig::default()
    });
    for l in [
        format!("-A -t {VIP} -s rr"),
        format!("-a -t {VIP} -r 192.168.1.201:80 -m"),
        format!("-A -u {VIP} -s rr"),
        format!("-a -u {VIP} -r 192.168.1.201:80 -m"),
    ] {
        ipvs.apply(T0, ipvsadm::parse(&l).expect("line parses"))
            .expect("line applies");
    }
    if let Some(v) = drop_entry {
        ipvs.set_sysctl("drop_entry", v).expect("0 to 3");
    }
    ipvs
}

fn forwarded(v: &InVerdict) -> bool {
    matches!(v, InVerdict::Forward(_))
}

fn ports(conns: &[ConnView]) -> Vec<u16> {
    let mut p: Vec<u16> = conns.iter().map(|c| c.client.port()).collect();
    p.sort_unstable();
    p
}

#[test]
fn a_full_table_of_half_open_flows_admits_a_new_syn_by_evicting_one() {
    let mut ipvs = ipvs(Some("1"));
    for p in 0..BOUND as u16 {
        assert!(forwarded(&ipvs.packet_in(T0, &syn(1000 + p))));
    }
    assert_eq!(ipvs.conn_count(), BOUND);
    assert!(ipvs.conns(T0).iter().all(|c| c.state == ConnState::SynRecv));
    // The next SYN, at once (no 60 s wait: half-open entries always go), gets in.
    let t = T0 + Duration::from_millis(1);
    assert!(forwarded(&ipvs.packet_in(t, &syn(40000))));
    assert_eq!(ipvs.conn_count(), BOUND, "one out, one in: the bound holds");
    assert_eq!(ipvs.stats().evicted_drop_entry, 1);
    assert_eq!(ipvs.stats().dropped_table_full, 0);
    // The scan starts at the first slot: the oldest flood entry went.
    let left = ports(&ipvs.conns(t));
    assert!(!left.contains(&1000) && left.contains(&1001) && left.contains(&40000));
    // Memory is short, so the sysctl reads 2 as the kernel's does ...
    assert_eq!(ipvs.config().drop_entry, 2);
    // ... and the new flow completes its handshake and carries on like any other.
    assert!(forwarded(&ipvs.packet_in(t, &ack(40000))));
    // Once the table has room again, the once-a-second check sets it back to 1.
    let later = T0 + Duration::from_secs(61);
    ipvs.expire(later);
    assert!(ipvs.conn_count() < BOUND);
    ipvs.expire(later + Duration::from_secs(1));
    assert_eq!(ipvs.config().drop_entry, 1);
}

#[test]
fn established_flows_idle_under_60_s_are_never_evicted() {
    let mut ipvs = ipvs(Some("1"));
    for p in 0..BOUND as u16 {
        ipvs.packet_in(T0, &syn(2000 + p));
        ipvs.packet_in(T0, &ack(2000 + p));
    }
    assert!(ipvs
        .conns(T0)
        .iter()
        .all(|c| c.state == ConnState::Established));
    let before = ports(&ipvs.conns(T0));
    // 59 s after their last packet every new SYN is refused, every held flow stays.
    for (i, p) in (3000..3100).enumerate() {
        let t = T0 + Duration::from_millis(59_000 + i as u64);
        assert_eq!(ipvs.packet_in(t, &syn(p)), InVerdict::Drop);
    }
    let t = T0 + Duration::from_millis(59_100);
    assert_eq!(ports(&ipvs.conns(t)), before);
    assert_eq!(ipvs.stats().evicted_drop_entry, 0);
    assert_eq!(ipvs.stats().dropped_table_full, 100);
    // Idle for 60 s with two incoming packets each (SYN, ACK), they are fair game: one
    // in two goes (the rate counter), the first one first.
    let t = T0 + Duration::from_secs(60);
    assert!(forwarded(&ipvs.packet_in(t, &syn(4000))));
    assert_eq!(ipvs.stats().evicted_drop_entry, 1);
    let left = ports(&ipvs.conns(t));
    assert_eq!(
        left.iter().filter(|p| before.contains(p)).count(),
        BOUND - 1
    );
}

#[test]
fn busy_udp_flows_are_never_evicted_and_young_ones_are_kept() {
    let mut ipvs = ipvs(Some("3"));
    // Half the table: flows with 9 datagrams each (more than todrop_entry's 8).
    for p in 0..(BOUND / 2) as u16 {
        for _ in 0..9 {
            ipvs.packet_in(T0, &udp(5000 + p));
        }
    }
    // The other half: one datagram each, the way a UDP flood makes them.
    for p in 0..(BOUND / 2) as u16 {
        ipvs.packet_in(T0, &udp(6000 + p));
    }
    assert_eq!(ipvs.conn_count(), BOUND);
    // Young (idle under 60 s): a new flow is refused, nothing goes, even with drop_entry 3
    // and its once-a-second sweeps.
    for s in 1..60 {
        ipvs.expire(T0 + Duration::from_secs(s));
    }
    let t = T0 + Duration::from_millis(59_500);
    assert_eq!(ipvs.packet_in(t, &udp(7000)), InVerdict::Drop);
    assert_eq!(ipvs.stats().evicted_drop_entry, 0);
    // Idle past 60 s the one-datagram flows go (rate 1 in 1), the busy ones never do.
    let t = T0 + Duration::from_secs(61);
    assert!(forwarded(&ipvs.packet_in(t, &udp(7000))));
    for s in 62..200 {
        ipvs.expire(T0 + Duration::from_secs(s));
    }
    let left = ports(&ipvs.conns(T0 + Duration::from_secs(200)));
    let busy: Vec<u16> = (5000..5000 + (BOUND / 2) as u16).collect();
    assert_eq!(
        left.iter()
            .filter(|p| **p < 6000)
            .copied()
            .collect::<Vec<_>>(),
        busy,
        "every busy flow is still there: {left:?}"
    );
    assert!(left.iter().all(|p| !(6000..7000).contains(p)), "{left:?}");
}

#[test]
fn entries_the_kernel_keeps_are_kept() {
    // CLOSE_WAIT (a closing connection, as TIME_WAIT, CLOSE, ...) is no victim in any
    // state of the defence.
    let mut ipvs = ipvs(Some("3"));
    let fin = TcpFlags {
        fin: true,
        ..TcpFlags::ACK
    };
    for p in 0..BOUND as u16 {
        ipvs.packet_in(T0, &syn(8000 + p));
        ipvs.packet_in(T0, &ack(8000 + p));
        ipvs.packet_in(T0, &packet(Protocol::Tcp, 8000 + p, Some(fin)));
    }
    assert!(ipvs
        .conns(T0)
        .iter()
        .all(|c| c.state == ConnState::CloseWait));
    let t = T0 + Duration::from_secs(50);
    assert_eq!(ipvs.packet_in(t, &syn(9000)), InVerdict::Drop);
    assert_eq!(ipvs.stats().evicted_drop_entry, 0);
}

#[test]
fn a_flows_template_goes_with_it_and_a_template_in_use_stays() {
    let mut ipvs = Ipvs::new(IpvsConfig {
        max_conns: 4,
        ..IpvsConfig::default()
    });
    for l in [
        format!("-A -t {VIP} -s rr -p 60"),
        format!("-a -t {VIP} -r 192.168.1.201:80 -m"),
    ] {
        ipvs.apply(T0, ipvsadm::parse(&l).expect("rule"))
            .expect("apply");
    }
    ipvs.set_sysctl("drop_entry", "1").expect("known");
    let from = |ip: &str, port: u16| FlowPacket {
        src: SocketAddr::new(ip.parse().expect("ip"), port),
        ..syn(port)
    };
    // Client A: a template and two half-open flows.
    ipvs.packet_in(T0, &from("198.51.100.10", 1000));
    ipvs.packet_in(T0, &from("198.51.100.10", 1001));
    assert_eq!(ipvs.conn_count(), 3);
    let clients = |ipvs: &Ipvs| {
        let mut c: Vec<(String, u16)> = ipvs
            .conns(T0)
            .iter()
            .map(|c| (c.client.ip().to_string(), c.client.port()))
            .collect();
        c.sort();
        c
    };
    // B needs two slots (its template and its flow), one is free: A's first flow goes,
    // A's template stays (it still controls 1001).
    assert!(forwarded(&ipvs.packet_in(T0, &from("198.51.100.11", 2000))));
    assert_eq!(
        clients(&ipvs),
        [
            ("198.51.100.10".into(), 0),
            ("198.51.100.10".into(), 1001),
            ("198.51.100.11".into(), 0),
            ("198.51.100.11".into(), 2000)
        ]
    );
    assert_eq!(ipvs.stats().evicted_drop_entry, 1);
    // C needs two: A's last flow goes and its template, now controlling nothing, with it;
    // that is room enough, so B's half-open flow stays.
    assert!(forwarded(&ipvs.packet_in(T0, &from("198.51.100.12", 3000))));
    assert_eq!(
        clients(&ipvs),
        [
            ("198.51.100.11".into(), 0),
            ("198.51.100.11".into(), 2000),
            ("198.51.100.12".into(), 0),
            ("198.51.100.12".into(), 3000)
        ]
    );
    assert_eq!(ipvs.stats().evicted_drop_entry, 3);
}

#[test]
fn the_same_packets_give_the_same_victims() {
    let run = || {
        let mut ipvs = ipvs(Some("1"));
        for i in 0..200u16 {
            let t = T0 + Duration::from_millis(u64::from(i) * 7);
            ipvs.packet_in(t, &syn(1000 + i));
            if i % 3 == 0 {
                ipvs.packet_in(t, &ack(1000 + i));
            }
        }
        (ports(&ipvs.conns(T0)), ipvs.stats())
    };
    let (a, b) = (run(), run());
    assert_eq!(a, b);
    assert!(a.1.evicted_drop_entry > 0);
}

#[test]
fn drop_entry_0_is_the_bound_policy_as_before() {
    // The same packets to a balancer that never heard of drop_entry and to one set to 0:
    // the same verdicts, the same table, the same counters, nothing evicted.
    let script = |ipvs: &mut Ipvs| {
        let mut verdicts = Vec::new();
        for i in 0..300u16 {
            let t = T0 + Duration::from_millis(u64::from(i) * 400);
            let pkt = match i % 4 {
                0 | 1 => syn(1000 + i),
                2 => ack(1000 + i - 1),
                _ => udp(1000 + i),
            };
            verdicts.push(ipvs.packet_in(t, &pkt));
            ipvs.expire(t);
        }
        (
            verdicts,
            ipvs.conns(T0 + Duration::from_secs(120)),
            ipvs.stats(),
        )
    };
    let (mut never, mut zero) = (ipvs(None), ipvs(Some("0")));
    let (a, b) = (script(&mut never), script(&mut zero));
    assert_eq!(a, b);
    assert_eq!(b.2.evicted_drop_entry, 0);
    assert!(b.2.dropped_table_full > 0, "the script fills the table");
    // And with the defence on, the same script is refused less.
    let on = script(&mut ipvs(Some("1")));
    assert!(on.2.evicted_drop_entry > 0);
    assert!(on.2.dropped_table_full < b.2.dropped_table_full);
}

#[test]
fn drop_entry_takes_the_kernels_values_only() {
    let mut ipvs = ipvs(None);
    for ok in ["0", "1", "2", "3", " 2\n"] {
        ipvs.set_sysctl("drop_entry", ok).expect(ok);
    }
    for bad in ["4", "-1", "on", ""] {
        let e = ipvs.set_sysctl("drop_entry", bad).expect_err(bad);
        assert!(e.to_string().contains("drop_entry"), "{e}");
    }
    let e = ipvs
        .set_sysctl("amemthresh", "1024")
        .expect_err("not modelled");
    assert!(e.to_string().contains("lvslab_max_conns"), "{e}");
}
