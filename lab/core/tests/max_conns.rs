//! The conn table bound set at run time (`lvslab_max_conns`, lvslab's own setting): a SYN
//! flood past it is refused and counted, the flows already in the table keep working, and
//! new flows are accepted again once flood entries expire.
use std::net::SocketAddr;
use std::time::Duration;

use lvslab_core::{
    ipvsadm, FlowPacket, InVerdict, Ipvs, IpvsConfig, Protocol, TcpFlags, MAX_CONNS_SYSCTL,
};

const T0: Duration = Duration::from_secs(10);
const VIP: &str = "192.168.1.250:80";

fn sa(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

fn syn(port: u16) -> FlowPacket {
    FlowPacket {
        protocol: Protocol::Tcp,
        src: SocketAddr::new("198.51.100.10".parse().expect("ip"), port),
        dst: sa(VIP),
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

#[test]
fn a_flood_past_the_bound_is_refused_and_counted() {
    let mut ipvs = Ipvs::new(IpvsConfig::default());
    for l in [
        format!("-A -t {VIP} -s rr"),
        format!("-a -t {VIP} -r 192.168.1.201:80 -m"),
    ] {
        ipvs.apply(T0, ipvsadm::parse(&l).expect("line parses"))
            .expect("line applies");
    }
    ipvs.set_sysctl(MAX_CONNS_SYSCTL, "8").expect("known");
    assert_eq!(ipvs.config().max_conns, 8);
    let held = ipvs.packet_in(T0, &syn(40000));
    assert!(matches!(held, InVerdict::Forward(_)), "{held:?}");
    let mut dropped = 0;
    for p in 1000..1100 {
        if ipvs.packet_in(T0, &syn(p)) == InVerdict::Drop {
            dropped += 1;
        }
        assert!(ipvs.conn_count() <= 8, "the bound held");
    }
    assert_eq!(dropped, 93);
    assert_eq!(ipvs.stats().dropped_table_full, 93);
    // The flow that was there first still is.
    assert!(matches!(
        ipvs.packet_in(T0, &syn(40000)),
        InVerdict::Forward(_)
    ));
    // SYN_RECV lives 60 s: after it the table has room again.
    let later = T0 + Duration::from_secs(61);
    ipvs.expire(later);
    assert!(matches!(
        ipvs.packet_in(later, &syn(2000)),
        InVerdict::Forward(_)
    ));
    for bad in ["0", "-1", "many"] {
        assert!(ipvs.set_sysctl(MAX_CONNS_SYSCTL, bad).is_err(), "{bad}");
    }
}
