//! The conn table's bound holds for persistent services too, whose first flow per client
//! makes two entries (the template and the flow). Found by fuzzing the frame path
//! (fuzz/regressions/frame_path/conn-table-bound-persistence-template).
use lvslab_core::{ipvsadm, FlowPacket, InVerdict, Ipvs, IpvsConfig, Protocol, TcpFlags};
use std::net::SocketAddr;
use std::time::Duration;

fn syn(client: &str) -> FlowPacket {
    FlowPacket {
        protocol: Protocol::Tcp,
        src: client.parse::<SocketAddr>().expect("client"),
        dst: "192.168.1.250:80".parse().expect("vip"),
        tcp: Some(TcpFlags {
            syn: true,
            ack: false,
            fin: false,
            rst: false,
        }),
        fwmark: 0,
        len: 60,
    }
}

fn persistent(max_conns: usize) -> Ipvs {
    let mut ipvs = Ipvs::new(IpvsConfig {
        max_conns,
        ..IpvsConfig::default()
    });
    for l in [
        "-A -t 192.168.1.250:80 -s rr -p 60",
        "-a -t 192.168.1.250:80 -r 192.168.1.201:80 -m",
    ] {
        ipvs.apply(Duration::ZERO, ipvsadm::parse(l).expect("rule"))
            .expect("apply");
    }
    ipvs
}

#[test]
fn a_persistent_service_never_grows_the_table_past_its_bound() {
    // One slot: a template and a flow do not fit, so the SYN is dropped as table-full.
    let mut ipvs = persistent(1);
    assert_eq!(
        ipvs.packet_in(Duration::ZERO, &syn("198.51.100.10:40000")),
        InVerdict::Drop
    );
    assert_eq!(ipvs.conn_count(), 0);
    assert_eq!(ipvs.stats().dropped_table_full, 1);

    // Three slots: client A takes two; client B would need two more and is dropped; A's
    // next flow reuses its template and takes the last slot.
    let mut ipvs = persistent(3);
    let t = Duration::from_millis(1);
    assert!(matches!(
        ipvs.packet_in(t, &syn("198.51.100.10:40000")),
        InVerdict::Forward(_)
    ));
    assert_eq!(ipvs.conn_count(), 2);
    assert_eq!(
        ipvs.packet_in(t, &syn("198.51.100.11:40000")),
        InVerdict::Drop
    );
    assert_eq!(ipvs.conn_count(), 2);
    assert!(matches!(
        ipvs.packet_in(t, &syn("198.51.100.10:40001")),
        InVerdict::Forward(_)
    ));
    assert_eq!(ipvs.conn_count(), 3);
    assert_eq!(
        ipvs.packet_in(t, &syn("198.51.100.10:40002")),
        InVerdict::Drop
    );
    assert_eq!(ipvs.conn_count(), 3);
}
