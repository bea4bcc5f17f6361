//! Connection sync: the message bytes against the kernel's structs laid out by hand, and a
//! master/backup pair of balancers where the backup carries the master's flows after a
//! failover (mid-stream ACKs, no SYN) to the same real servers.
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use lvslab_core::ipvs::sync::{
    self, parse_sync_frame, sync_frame, SyncConn, SyncError, SyncIgnored, SyncMessage, SyncRole,
    CONN_F_DROUTE, CONN_F_INACTIVE, CONN_F_NOOUTPUT, CONN_F_TEMPLATE, SYNC_MAX_PAYLOAD,
};
use lvslab_core::wire::checksum::internet_checksum;
use lvslab_core::wire::MacAddr;
use lvslab_core::{
    ipvsadm, ConnState, FlowPacket, InVerdict, Ipvs, IpvsConfig, Protocol, TcpFlags,
};

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn est(client: &str, vip: &str, dest: &str) -> SyncConn {
    SyncConn {
        protocol: Protocol::Tcp,
        client: sa(client),
        vip: sa(vip),
        dest: sa(dest),
        fwmark: 0,
        state: ConnState::Established,
        flags: 0,
        timeout: Duration::from_secs(900),
    }
}

// ---------------------------------------------------------------------------------------
// Encoding, checked against bytes laid out from struct ip_vs_sync_mesg / ip_vs_sync_v4.

/// struct ip_vs_sync_mesg: reserved, syncid, size (be16), nr_conns, version, spare (be16).
fn header(syncid: u8, size: u16, nr: u8) -> Vec<u8> {
    let s = size.to_be_bytes();
    vec![0, syncid, s[0], s[1], nr, 1, 0, 0]
}

#[test]
fn encode_matches_the_kernel_structs() {
    struct Case {
        name: &'static str,
        conn: SyncConn,
        entry: Vec<u8>,
    }
    let cases = vec![
        Case {
            name: "NAT flow, ESTABLISHED",
            conn: est(
                "198.51.100.10:40000",
                "192.168.1.250:80",
                "192.168.1.201:8080",
            ),
            entry: vec![
                0x00, // 0 type: IPv4
                0x06, // 1 protocol: TCP
                0x00, 0x24, // 2 ver_size: version 0, size 36
                0x00, 0x00, 0x00, 0x00, // 4 flags: IP_VS_CONN_F_MASQ
                0x00, 0x01, // 8 state: IP_VS_TCP_S_ESTABLISHED
                0x9c, 0x40, // 10 cport 40000
                0x00, 0x50, // 12 vport 80
                0x1f, 0x90, // 14 dport 8080
                0x00, 0x00, 0x00, 0x00, // 16 fwmark
                0x00, 0x00, 0x03, 0x84, // 20 timeout 900 s
                198, 51, 100, 10, // 24 caddr
                192, 168, 1, 250, // 28 vaddr
                192, 168, 1, 201, // 32 daddr
            ],
        },
        Case {
            name: "DR flow, SYN_RECV, inactive, no output",
            conn: SyncConn {
                state: ConnState::SynRecv,
                flags: CONN_F_DROUTE | CONN_F_NOOUTPUT | CONN_F_INACTIVE,
                timeout: Duration::from_secs(60),
                ..est(
                    "198.51.100.10:40001",
                    "192.168.1.250:80",
                    "192.168.1.202:80",
                )
            },
            entry: vec![
                0x00, 0x06, 0x00, 0x24, // type, TCP, size 36
                0x00, 0x00, 0x01, 0x83, // flags: INACTIVE 0x100 | NOOUTPUT 0x80 | DROUTE 3
                0x00, 0x03, // state: IP_VS_TCP_S_SYN_RECV
                0x9c, 0x41, 0x00, 0x50, 0x00, 0x50, // cport, vport, dport
                0x00, 0x00, 0x00, 0x00, // fwmark
                0x00, 0x00, 0x00, 0x3c, // timeout 60
                198, 51, 100, 10, 192, 168, 1, 250, 192, 168, 1, 202,
            ],
        },
        Case {
            name: "UDP flow: IP_VS_UDP_S_NORMAL is 0, fwmark service",
            conn: SyncConn {
                protocol: Protocol::Udp,
                state: ConnState::Udp,
                fwmark: 7,
                timeout: Duration::from_secs(300),
                ..est("198.51.100.10:5353", "192.168.1.250:53", "192.168.1.201:53")
            },
            entry: vec![
                0x00, 0x11, 0x00, 0x24, // type, UDP (17), size 36
                0x00, 0x00, 0x00, 0x00, // flags
                0x00, 0x00, // state 0
                0x14, 0xe9, 0x00, 0x35, 0x00, 0x35, // 5353, 53, 53
                0x00, 0x00, 0x00, 0x07, // fwmark 7
                0x00, 0x00, 0x01, 0x2c, // timeout 300
                198, 51, 100, 10, 192, 168, 1, 250, 192, 168, 1, 201,
            ],
        },
        Case {
            name: "persistence template",
            conn: SyncConn {
                state: ConnState::None,
                flags: CONN_F_TEMPLATE | CONN_F_INACTIVE,
                timeout: Duration::from_secs(360),
                ..est("198.51.100.0:0", "192.168.1.250:80", "192.168.1.201:80")
            },
            entry: vec![
                0x00, 0x06, 0x00, 0x24, // type, TCP, size 36
                0x00, 0x00, 0x11, 0x00, // flags: TEMPLATE 0x1000 | INACTIVE 0x100 | MASQ
                0x00, 0x00, // state: none
                0x00, 0x00, 0x00, 0x50, 0x00, 0x50, // cport 0
                0x00, 0x00, 0x00, 0x00, // fwmark
                0x00, 0x00, 0x01, 0x68, // timeout 360
                198, 51, 100, 0, 192, 168, 1, 250, 192, 168, 1, 201,
            ],
        },
    ];
    for c in cases {
        let msg = SyncMessage {
            syncid: 9,
            conns: vec![c.conn.clone()],
        };
        let mut want = header(9, 8 + 36, 1);
        want.extend_from_slice(&c.entry);
        assert_eq!(msg.encode(), want, "{}", c.name);
        assert_eq!(SyncMessage::decode(&want).unwrap(), msg, "{}", c.name);
    }
}

#[test]
fn encode_ipv6_entry_is_type_1_of_72_bytes() {
    let c = est(
        "[2001:db8::10]:40000",
        "[2001:db8::250]:80",
        "[2001:db8::201]:80",
    );
    let msg = SyncMessage {
        syncid: 0,
        conns: vec![c.clone(), est("10.0.0.1:1", "10.0.0.2:2", "10.0.0.3:3")],
    };
    let b = msg.encode();
    assert_eq!(b.len(), 8 + 72 + 36);
    assert_eq!(&b[..8], &header(0, 116, 2)[..]);
    // type STYPE_F_INET6, TCP, ver_size 72
    assert_eq!(&b[8..12], &[1, 6, 0, 72]);
    // caddr at offset 24 of the entry (struct ip_vs_sync_v6)
    assert_eq!(
        &b[8 + 24..8 + 40],
        &"2001:db8::10"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets()
    );
    assert_eq!(&b[8 + 72..8 + 76], &[0, 6, 0, 36]);
    assert_eq!(SyncMessage::decode(&b).unwrap(), msg);
}

#[test]
fn decode_refuses_bad_messages_without_panicking() {
    let good = SyncMessage {
        syncid: 1,
        conns: vec![est(
            "198.51.100.10:40000",
            "192.168.1.250:80",
            "192.168.1.201:80",
        )],
    }
    .encode();
    assert!(matches!(
        SyncMessage::decode(&[]),
        Err(SyncError::TooShort { .. })
    ));
    assert!(matches!(
        SyncMessage::decode(&good[..20]),
        Err(SyncError::BadSize { .. })
    ));
    // A v0 header: nr_conns first, no version byte.
    let v0 = [1u8, 1, 0, 28, 0, 6, 0x9c, 0x40];
    let v0 = [&v0[..], &[0u8; 20]].concat();
    assert_eq!(
        SyncMessage::decode(&v0),
        Err(SyncError::Version0 { nr_conns: 1 })
    );
    // An entry whose size runs past the end.
    let mut long = good.clone();
    long[11] = 40;
    assert!(matches!(
        SyncMessage::decode(&long),
        Err(SyncError::Truncated { index: 0 })
    ));
    // Two entries announced, one present.
    let mut two = good.clone();
    two[4] = 2;
    assert!(matches!(
        SyncMessage::decode(&two),
        Err(SyncError::Truncated { index: 1 })
    ));
    // An unknown entry version.
    let mut ver = good.clone();
    ver[10] = 0x10;
    assert!(matches!(
        SyncMessage::decode(&ver),
        Err(SyncError::EntryVersion { .. })
    ));
    // A TCP state past IP_VS_TCP_S_LAST: that entry alone is skipped, as the kernel does.
    let mut st = good.clone();
    st[17] = 11;
    assert_eq!(SyncMessage::decode(&st).unwrap().conns.len(), 0);
    // Every prefix and every single-byte corruption: an answer, never a panic.
    for n in 0..good.len() {
        let _ = SyncMessage::decode(&good[..n]);
    }
    for i in 0..good.len() {
        for v in [0u8, 1, 0x7f, 0xff] {
            let mut b = good.clone();
            b[i] = v;
            let _ = SyncMessage::decode(&b);
        }
    }
}

#[test]
fn decode_skips_options_it_may_and_refuses_broken_ones() {
    let base = est(
        "198.51.100.10:40000",
        "192.168.1.250:80",
        "192.168.1.201:80",
    );
    let msg = SyncMessage {
        syncid: 0,
        conns: vec![base.clone()],
    }
    .encode();
    let with_opt = |opt: &[u8]| {
        let mut b = msg.clone();
        let size = 36 + opt.len();
        b[10..12].copy_from_slice(&(size as u16).to_be_bytes());
        b.extend_from_slice(opt);
        let total = b.len() as u16;
        b[2..4].copy_from_slice(&total.to_be_bytes());
        b
    };
    // IPVS_OPT_SEQ_DATA with its 24 bytes: accepted, the conn decodes.
    let mut seq = vec![1u8, 24];
    seq.extend_from_slice(&[0; 24]);
    assert_eq!(
        SyncMessage::decode(&with_opt(&seq)).unwrap().conns,
        vec![base.clone()]
    );
    // A seq option of the wrong length: the kernel drops the buffer (-50).
    assert!(matches!(
        SyncMessage::decode(&with_opt(&[1, 2, 0, 0])),
        Err(SyncError::BadOption { .. })
    ));
    // An unknown optional parameter (IPVS_OPT_F_PARAM set) is passed over.
    assert_eq!(
        SyncMessage::decode(&with_opt(&[0x40 | 9, 2, 0, 0]))
            .unwrap()
            .conns
            .len(),
        1
    );
    // An unknown mandatory one drops that entry only.
    assert_eq!(
        SyncMessage::decode(&with_opt(&[9, 2, 0, 0]))
            .unwrap()
            .conns
            .len(),
        0
    );
}

#[test]
fn split_fills_buffers_like_the_master() {
    let conns: Vec<SyncConn> = (0..100)
        .map(|i| {
            est(
                &format!("198.51.100.10:{}", 10000 + i),
                "192.168.1.250:80",
                "192.168.1.201:80",
            )
        })
        .collect();
    let msgs = SyncMessage::split(3, conns.clone(), SYNC_MAX_PAYLOAD);
    // (1472 - 8) / 36 = 40 entries per 1472-byte buffer.
    assert_eq!(
        msgs.iter().map(|m| m.conns.len()).collect::<Vec<_>>(),
        vec![40, 40, 20]
    );
    for m in &msgs {
        let b = m.encode();
        assert!(b.len() <= SYNC_MAX_PAYLOAD);
        assert_eq!(SyncMessage::decode(&b).unwrap(), *m);
    }
    let back: Vec<SyncConn> = msgs.into_iter().flat_map(|m| m.conns).collect();
    assert_eq!(back, conns);
    // A payload limit below one entry still sends every entry, one per message.
    assert_eq!(SyncMessage::split(0, conns[..3].to_vec(), 10).len(), 3);
}

#[test]
fn sync_frame_is_udp_to_the_group_with_ttl_1_and_good_checksums() {
    let msg = SyncMessage {
        syncid: 5,
        conns: vec![est(
            "198.51.100.10:40000",
            "192.168.1.250:80",
            "192.168.1.201:80",
        )],
    };
    let payload = msg.encode();
    let src = Ipv4Addr::new(192, 0, 2, 1);
    let f = sync_frame(MacAddr([2, 0, 0, 0, 0, 1]), src, &payload);
    assert_eq!(&f[..6], &[0x01, 0x00, 0x5e, 0x00, 0x00, 0x51]);
    assert_eq!(&f[12..14], &[0x08, 0x00]);
    let ip = &f[14..34];
    assert_eq!(ip[8], 1, "TTL 1");
    assert_eq!(ip[6] & 0x40, 0, "DF clear (IP_PMTUDISC_DONT)");
    assert_eq!(ip[9], 17);
    assert_eq!(&ip[16..20], &[224, 0, 0, 81]);
    assert_eq!(internet_checksum(ip), 0, "IPv4 header checksum");
    let udp = &f[34..];
    assert_eq!(&udp[2..4], &8848u16.to_be_bytes());
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&[224, 0, 0, 81, 0, 17]);
    pseudo.extend_from_slice(&(udp.len() as u16).to_be_bytes());
    pseudo.extend_from_slice(udp);
    assert_eq!(internet_checksum(&pseudo), 0, "UDP checksum");
    assert_eq!(parse_sync_frame(&f), Some(Ok((src, msg))));
    // Not a sync frame: another port.
    let mut other = f.clone();
    other[36..38].copy_from_slice(&8849u16.to_be_bytes());
    assert_eq!(parse_sync_frame(&other), None);
    assert_eq!(parse_sync_frame(&f[..20]), None);
}

// ---------------------------------------------------------------------------------------
// A master and a backup balancer.

const T0: Duration = Duration::from_secs(10);

fn balancer(lines: &[&str]) -> Ipvs {
    let mut ipvs = Ipvs::new(IpvsConfig::default());
    for l in lines {
        ipvs.apply(T0, ipvsadm::parse(l).unwrap()).unwrap();
    }
    ipvs
}

fn tcp(client: &str, vip: &str, flags: TcpFlags) -> FlowPacket {
    FlowPacket {
        protocol: Protocol::Tcp,
        src: sa(client),
        dst: sa(vip),
        tcp: Some(flags),
        fwmark: 0,
        len: 60,
    }
}

fn forward_dest(v: InVerdict) -> SocketAddr {
    match v {
        InVerdict::Forward(f) => f.dest,
        other => panic!("not forwarded: {other:?}"),
    }
}

/// (active, inactive, persistent) of a real server.
fn counts(ipvs: &Ipvs, rs: &str) -> (u32, u32, u32) {
    let rs = sa(rs);
    ipvs.services()
        .iter()
        .flat_map(|s| s.dests.iter())
        .find(|d| d.config.addr == rs)
        .map(|d| (d.active, d.inactive, d.persistent))
        .unwrap()
}

/// Master -> wire -> backup, as a Director pair would.
fn ship(master: &mut Ipvs, backup: &mut Ipvs, now: Duration) -> (usize, sync::SyncApplied) {
    let conns = master.take_sync(now);
    let n = conns.len();
    let mut total = sync::SyncApplied::default();
    let SyncRole::Master { syncid } = master.sync_role() else {
        panic!("not a master");
    };
    for m in SyncMessage::split(syncid, conns, SYNC_MAX_PAYLOAD) {
        let frame = sync_frame(
            MacAddr([2, 0, 0, 0, 0, 1]),
            Ipv4Addr::new(192, 0, 2, 1),
            &m.encode(),
        );
        let (_, got) = parse_sync_frame(&frame).unwrap().unwrap();
        let a = backup.apply_sync(now, &got);
        total.applied += a.applied;
        total.ignored += a.ignored;
        total.reasons.extend(a.reasons);
    }
    (n, total)
}

const TABLE: &[&str] = &[
    "-A -t 192.168.1.250:80 -s rr",
    "-a -t 192.168.1.250:80 -r 192.168.1.201:80 -m",
    "-a -t 192.168.1.250:80 -r 192.168.1.202:80 -m",
    "-A -t 192.168.1.251:80 -s rr",
    "-a -t 192.168.1.251:80 -r 192.168.1.211:80 -g",
    "-a -t 192.168.1.251:80 -r 192.168.1.212:80 -g",
];

#[test]
fn a_synced_flow_survives_failover_on_the_backup() {
    let mut master = balancer(TABLE);
    let mut backup = balancer(TABLE);
    master.set_sync(SyncRole::Master { syncid: 7 });
    backup.set_sync(SyncRole::Backup { syncid: 7 });
    assert_eq!(backup.sync_role(), SyncRole::Backup { syncid: 7 });

    let mut t = T0;
    let flows = [
        ("198.51.100.10:40000", "192.168.1.250:80"), // NAT
        ("198.51.100.10:40001", "192.168.1.250:80"), // NAT, the other server
        ("198.51.100.11:40000", "192.168.1.251:80"), // DR
    ];
    let mut dests = Vec::new();
    for (c, v) in flows {
        dests.push(forward_dest(master.packet_in(t, &tcp(c, v, TcpFlags::SYN))));
        t += Duration::from_millis(1);
        master.packet_in(t, &tcp(c, v, TcpFlags::ACK));
    }
    // SYN (SYN_RECV, not synced) and ACK (ESTABLISHED at pkts 2): sync_threshold is 3.
    assert!(master.take_sync(t).is_empty());
    for (c, v) in flows {
        master.packet_in(t, &tcp(c, v, TcpFlags::ACK));
    }
    let (sent, applied) = ship(&mut master, &mut backup, t);
    assert_eq!(sent, 3);
    assert_eq!((applied.applied, applied.ignored), (3, 0), "{applied:?}");

    // The synced entries on the backup: same client, vip, dest, state, ~full timeout.
    let view = backup.conns(t);
    assert_eq!(view.len(), 3);
    for ((c, v), d) in flows.iter().zip(&dests) {
        let e = view.iter().find(|e| e.client == sa(c)).unwrap();
        assert_eq!(
            (e.vip, e.dest, e.state),
            (sa(v), *d, ConnState::Established)
        );
        assert_eq!(e.expires_in, Duration::from_secs(900));
        assert!(e.active);
    }
    // Synced ESTABLISHED conns count as active (ip_vs_bind_dest with IP_VS_CONN_F_SYNC).
    assert_eq!(counts(&backup, "192.168.1.201:80"), (1, 0, 0));
    assert_eq!(counts(&backup, "192.168.1.202:80"), (1, 0, 0));
    let dr = dests[2].to_string();
    assert_eq!(counts(&backup, &dr), (1, 0, 0));

    // Failover: the backup gets mid-stream ACKs, no SYN, and forwards them to the same servers.
    t += Duration::from_secs(1);
    for ((c, v), d) in flows.iter().zip(&dests) {
        let got = forward_dest(backup.packet_in(t, &tcp(c, v, TcpFlags::ACK)));
        assert_eq!(got, *d, "flow {c} -> {v}");
    }
    // A NAT reply finds the synced conn from the server side.
    let reply = FlowPacket {
        src: dests[0],
        dst: sa(flows[0].0),
        ..tcp(flows[0].0, flows[0].1, TcpFlags::ACK)
    };
    assert!(matches!(
        backup.packet_out(t, &reply),
        lvslab_core::OutVerdict::Masquerade { .. }
    ));
    // An unsynced mid-stream ACK is still dropped, as before.
    assert_eq!(
        backup.packet_in(
            t,
            &tcp("198.51.100.99:1", "192.168.1.250:80", TcpFlags::ACK)
        ),
        InVerdict::Drop
    );
}

#[test]
fn state_changes_are_synced_and_move_the_backups_counters() {
    let mut master = balancer(TABLE);
    let mut backup = balancer(TABLE);
    master.set_sync(SyncRole::Master { syncid: 7 });
    backup.set_sync(SyncRole::Backup { syncid: 0 });
    let (c, v) = ("198.51.100.10:40000", "192.168.1.250:80");
    let mut t = T0;
    let d = forward_dest(master.packet_in(t, &tcp(c, v, TcpFlags::SYN)));
    for _ in 0..2 {
        t += Duration::from_millis(1);
        master.packet_in(t, &tcp(c, v, TcpFlags::ACK));
    }
    assert_eq!(ship(&mut master, &mut backup, t).0, 1);
    assert_eq!(counts(&backup, &d.to_string()), (1, 0, 0));
    // Packets 4..52 of an ESTABLISHED flow: nothing (sync_period 50).
    for _ in 0..49 {
        master.packet_in(t, &tcp(c, v, TcpFlags::ACK));
    }
    assert!(master.take_sync(t).is_empty());
    // The 53rd: refreshed.
    master.packet_in(t, &tcp(c, v, TcpFlags::ACK));
    assert_eq!(master.take_sync(t).len(), 1);
    // FIN: a state change other than to ESTABLISHED is sent at once.
    master.packet_in(t, &tcp(c, v, TcpFlags::FIN_ACK));
    let (sent, _) = ship(&mut master, &mut backup, t);
    assert_eq!(sent, 1);
    let e = backup
        .conns(t)
        .into_iter()
        .find(|e| e.client == sa(c))
        .unwrap();
    assert_eq!(e.state, ConnState::CloseWait);
    assert!(!e.active);
    assert_eq!(counts(&backup, &d.to_string()), (0, 1, 0));
}

#[test]
fn a_persistent_services_template_goes_along() {
    let table = [
        "-A -t 192.168.1.250:80 -s rr -p 360",
        "-a -t 192.168.1.250:80 -r 192.168.1.201:80 -m",
        "-a -t 192.168.1.250:80 -r 192.168.1.202:80 -m",
    ];
    let mut master = balancer(&table);
    let mut backup = balancer(&table);
    master.set_sync(SyncRole::Master { syncid: 1 });
    backup.set_sync(SyncRole::Backup { syncid: 1 });
    let v = "192.168.1.250:80";
    let mut t = T0;
    let d = forward_dest(master.packet_in(t, &tcp("198.51.100.10:40000", v, TcpFlags::SYN)));
    let sent = master.take_sync(t);
    // The SYN: the conn is not synced yet (SYN_RECV), its template is (every packet).
    assert_eq!(sent.len(), 1);
    let tpl = &sent[0];
    assert_eq!(tpl.flags & CONN_F_TEMPLATE, CONN_F_TEMPLATE);
    assert_eq!(
        (tpl.client, tpl.vip, tpl.dest),
        (sa("198.51.100.10:0"), sa(v), d)
    );
    assert_eq!(tpl.timeout, Duration::from_secs(360));
    let msg = SyncMessage {
        syncid: 1,
        conns: sent,
    };
    let a = backup.apply_sync(t, &SyncMessage::decode(&msg.encode()).unwrap());
    assert_eq!(a.applied, 1, "{a:?}");
    assert_eq!(counts(&backup, &d.to_string()), (0, 0, 1));
    t += Duration::from_millis(1);
    master.packet_in(t, &tcp("198.51.100.10:40000", v, TcpFlags::ACK));
    master.packet_in(t, &tcp("198.51.100.10:40000", v, TcpFlags::ACK));
    let (sent, a) = ship(&mut master, &mut backup, t);
    // Two more templates and, at the 3rd packet, the conn (conn first, then its template).
    assert_eq!(sent, 3);
    assert_eq!(a.applied, 3, "{a:?}");
    // A new connection from that client to the backup goes to the same server, though rr,
    // having just given that server to another client, would pick the other one.
    t += Duration::from_secs(1);
    let other = forward_dest(backup.packet_in(t, &tcp("198.51.100.77:1", v, TcpFlags::SYN)));
    assert_eq!(other, d);
    let got = forward_dest(backup.packet_in(t, &tcp("198.51.100.10:40002", v, TcpFlags::SYN)));
    assert_eq!(got, d);
    // And the synced flow itself carries on.
    let got = forward_dest(backup.packet_in(t, &tcp("198.51.100.10:40000", v, TcpFlags::ACK)));
    assert_eq!(got, d);
}

#[test]
fn the_backup_says_what_it_refused() {
    let mut backup = balancer(TABLE);
    let msg = SyncMessage {
        syncid: 7,
        conns: vec![
            est("198.51.100.10:1", "192.168.1.250:80", "192.168.1.201:80"),
            est("198.51.100.10:2", "192.168.1.99:80", "192.168.1.201:80"),
            est("198.51.100.10:3", "192.168.1.250:80", "192.168.1.209:80"),
        ],
    };
    let a = backup.apply_sync(T0, &msg);
    assert_eq!((a.applied, a.ignored), (0, 3));
    assert_eq!(a.reasons, vec![SyncIgnored::NotBackup]);

    backup.set_sync(SyncRole::Backup { syncid: 8 });
    let a = backup.apply_sync(T0, &msg);
    assert_eq!(
        a.reasons,
        vec![SyncIgnored::WrongSyncId { got: 7, ours: 8 }]
    );

    backup.set_sync(SyncRole::Backup { syncid: 7 });
    let a = backup.apply_sync(T0, &msg);
    assert_eq!((a.applied, a.ignored), (1, 2));
    assert!(
        matches!(a.reasons[0], SyncIgnored::NoService { .. }),
        "{a:?}"
    );
    assert!(matches!(a.reasons[1], SyncIgnored::NoDest { .. }), "{a:?}");
    // The same entry again updates, it does not duplicate.
    let again = SyncMessage {
        syncid: 7,
        conns: vec![msg.conns[0].clone()],
    };
    assert_eq!(backup.apply_sync(T0, &again).applied, 1);
    assert_eq!(backup.conn_count(), 1);
    assert_eq!(counts(&backup, "192.168.1.201:80"), (1, 0, 0));
    // The flow moved to the other server on the master: the old entry is replaced.
    let moved = SyncMessage {
        syncid: 7,
        conns: vec![est(
            "198.51.100.10:1",
            "192.168.1.250:80",
            "192.168.1.202:80",
        )],
    };
    assert_eq!(backup.apply_sync(T0, &moved).applied, 1);
    assert_eq!(counts(&backup, "192.168.1.201:80"), (0, 0, 0));
    assert_eq!(counts(&backup, "192.168.1.202:80"), (1, 0, 0));
    // Off: nothing is queued, nothing applied.
    backup.set_sync(SyncRole::Off);
    assert!(backup.take_sync(T0).is_empty());
}

/// The datagram Linux 6.1's MASTER daemon sent for a UDP flow 192.0.2.2:40053 ->
/// 10.9.9.9:53 (NAT to 192.0.2.1:5353) at its 3rd packet, captured by
/// lab/ipvs-nl/tests/sync_kernel.rs in lvslab's VM.
const KERNEL_MASTER_UDP: &str =
    "0007002c01010000001100240000010000009c75003514e9000000000000012cc00002020a090909c0000201";

#[test]
fn the_master_sends_the_bytes_the_kernels_master_sent() {
    let mut master = balancer(&[
        "-A -u 10.9.9.9:53 -s rr",
        "-a -u 10.9.9.9:53 -r 192.0.2.1:5353 -m",
    ]);
    master.set_sync(SyncRole::Master { syncid: 7 });
    let pkt = FlowPacket {
        protocol: Protocol::Udp,
        src: sa("192.0.2.2:40053"),
        dst: sa("10.9.9.9:53"),
        tcp: None,
        fwmark: 0,
        len: 29,
    };
    for _ in 0..2 {
        master.packet_in(T0, &pkt);
    }
    assert!(master.take_sync(T0).is_empty());
    master.packet_in(T0, &pkt);
    let msgs = SyncMessage::split(7, master.take_sync(T0), SYNC_MAX_PAYLOAD);
    assert_eq!(msgs.len(), 1);
    let hex: String = msgs[0]
        .encode()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(hex, KERNEL_MASTER_UDP);
}
