//! net.ipv4.vs.expire_nodest_conn as ip_vs_in applies it: off (the kernel's default), a
//! packet of a conn whose real server was deleted is dropped and the entry lives on; on,
//! the entry is expired at once and the packet is handled as one without a conn.
use std::net::SocketAddr;
use std::time::Duration;

use lvslab_core::{ipvsadm, FlowPacket, InVerdict, Ipvs, IpvsConfig, Protocol, TcpFlags};

const T0: Duration = Duration::from_secs(10);
const CLIENT: &str = "198.51.100.10:40000";
const VIP: &str = "192.168.1.250:80";
const RS1: &str = "192.168.1.201:80";
const RS2: &str = "192.168.1.203:80";

fn sa(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

/// rr over rs1 then rs2 (the newest server heads the list, so rs1 is added last).
fn balancer(proto: &str, expire_nodest_conn: bool) -> Ipvs {
    let mut ipvs = Ipvs::new(IpvsConfig {
        expire_nodest_conn,
        ..IpvsConfig::default()
    });
    for l in [
        format!("-A {proto} {VIP} -s rr"),
        format!("-a {proto} {VIP} -r {RS2} -m"),
        format!("-a {proto} {VIP} -r {RS1} -m"),
    ] {
        ipvs.apply(T0, ipvsadm::parse(&l).expect("line parses"))
            .expect("line applies");
    }
    ipvs
}

fn tcp(syn: bool, ack: bool) -> FlowPacket {
    FlowPacket {
        protocol: Protocol::Tcp,
        src: sa(CLIENT),
        dst: sa(VIP),
        tcp: Some(TcpFlags {
            syn,
            ack,
            fin: false,
            rst: false,
        }),
        fwmark: 0,
        len: 60,
    }
}

fn udp() -> FlowPacket {
    FlowPacket {
        protocol: Protocol::Udp,
        src: sa(CLIENT),
        dst: sa(VIP),
        tcp: None,
        fwmark: 0,
        len: 40,
    }
}

fn dest(v: &InVerdict) -> Option<SocketAddr> {
    match v {
        InVerdict::Forward(f) => Some(f.dest),
        _ => None,
    }
}

fn at(ms: u64) -> Duration {
    T0 + Duration::from_millis(ms)
}

fn delete(ipvs: &mut Ipvs, proto: &str, rs: &str, now: Duration) {
    let line = format!("-d {proto} {VIP} -r {rs}");
    ipvs.apply(now, ipvsadm::parse(&line).expect("line parses"))
        .expect("server deleted");
}

#[test]
fn off_a_deleted_servers_tcp_conn_drops_its_packets_and_stays() {
    let mut ipvs = balancer("-t", false);
    assert_eq!(
        dest(&ipvs.packet_in(at(0), &tcp(true, false))),
        Some(sa(RS1))
    );
    assert!(dest(&ipvs.packet_in(at(1), &tcp(false, true))).is_some());
    delete(&mut ipvs, "-t", RS1, at(2));
    assert_eq!(ipvs.packet_in(at(3), &tcp(false, true)), InVerdict::Drop);
    assert_eq!(ipvs.packet_in(at(4), &tcp(false, true)), InVerdict::Drop);
    assert!(ipvs.find_in(Protocol::Tcp, sa(CLIENT), sa(VIP)).is_some());
}

#[test]
fn on_a_deleted_servers_tcp_conn_is_expired_and_the_segment_not_scheduled() {
    let mut ipvs = balancer("-t", true);
    assert_eq!(
        dest(&ipvs.packet_in(at(0), &tcp(true, false))),
        Some(sa(RS1))
    );
    assert!(dest(&ipvs.packet_in(at(1), &tcp(false, true))).is_some());
    delete(&mut ipvs, "-t", RS1, at(2));
    // No SYN: tcp_conn_schedule opens nothing, so the director's stack answers (a RST).
    assert_eq!(ipvs.packet_in(at(3), &tcp(false, true)), InVerdict::Drop);
    assert!(ipvs.find_in(Protocol::Tcp, sa(CLIENT), sa(VIP)).is_none());
    // The client's next connection from the same port is scheduled on a living server.
    assert_eq!(
        dest(&ipvs.packet_in(at(4), &tcp(true, false))),
        Some(sa(RS2))
    );
}

#[test]
fn udp_to_a_deleted_server_hangs_off_and_is_rescheduled_on() {
    let mut off = balancer("-u", false);
    assert_eq!(dest(&off.packet_in(at(0), &udp())), Some(sa(RS1)));
    delete(&mut off, "-u", RS1, at(1));
    assert_eq!(off.packet_in(at(2), &udp()), InVerdict::Drop);
    assert_eq!(off.packet_in(at(3), &udp()), InVerdict::Drop);

    let mut on = balancer("-u", true);
    assert_eq!(dest(&on.packet_in(at(0), &udp())), Some(sa(RS1)));
    delete(&mut on, "-u", RS1, at(1));
    assert_eq!(dest(&on.packet_in(at(2), &udp())), Some(sa(RS2)));
    assert_eq!(dest(&on.packet_in(at(3), &udp())), Some(sa(RS2)));
}

#[test]
fn on_a_syn_on_an_entry_to_a_quiesced_server_is_rescheduled() {
    for (expire, want) in [(false, RS1), (true, RS2)] {
        let mut ipvs = balancer("-t", expire);
        assert_eq!(
            dest(&ipvs.packet_in(at(0), &tcp(true, false))),
            Some(sa(RS1))
        );
        let line = format!("-e -t {VIP} -r {RS1} -m -w 0");
        ipvs.apply(at(1), ipvsadm::parse(&line).expect("line parses"))
            .expect("quiesced");
        // A new SYN from the same client port (a client reusing it quickly).
        let v = ipvs.packet_in(at(2), &tcp(true, false));
        assert_eq!(dest(&v), Some(sa(want)), "expire_nodest_conn={expire}");
    }
}

#[test]
fn the_sysctl_is_set_by_name_and_checked() {
    let mut ipvs = balancer("-t", false);
    ipvs.set_sysctl("expire_nodest_conn", "1").expect("known");
    assert!(ipvs.config().expire_nodest_conn);
    ipvs.set_sysctl("expire_nodest_conn", "0").expect("known");
    assert!(!ipvs.config().expire_nodest_conn);
    assert!(ipvs.set_sysctl("expire_nodest_conn", "yes").is_err());
    let e = ipvs.set_sysctl("conntrack", "1").unwrap_err().to_string();
    assert!(e.contains("conntrack"), "{e}");
}
