//! lvslab's sync messages against the kernel's IPVS sync daemon (net/netfilter/ipvs/
//! ip_vs_sync.c). Two namespaces joined by a veth (192.0.2.0/24): B runs kernel IPVS with a
//! BACKUP daemon; A multicasts lvslab's encoded `SyncMessage` to 224.0.0.81:8848, and B's
//! kernel must create those conns (read back from /proc/net/ip_vs_conn). Then the other
//! way: B runs a MASTER daemon, a local UDP client in B makes a conn the kernel syncs, and
//! A decodes the kernel's datagram with `SyncMessage::decode`. Needs root and kernel IPVS:
//! inside lvslab's VM (scripts/test-kernel runs it there); elsewhere it says SKIPPED.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use lvslab_core::ipvs::sync::{
    SyncConn, SyncMessage, CONN_F_DROUTE, CONN_F_INACTIVE, CONN_F_NOOUTPUT, CONN_F_TEMPLATE,
    SYNC_GROUP, SYNC_PORT,
};
use lvslab_core::{ipvsadm, ConnState, Protocol};
use lvslab_ipvs_nl::{KernelConn, KernelIpvs, SyncDaemon, SyncState};
use lvslab_netns::netns;

const A_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const B_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const SYNCID: u8 = 7;

fn skip(why: &str) {
    // Printed past cargo's capture so a run that never met the kernel is seen.
    let msg = format!("\n*** SKIPPED sync_kernel: {why} ***\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr(), msg.as_bytes());
}

/// Both namespaces go, whatever happens.
struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = netns::delete(n);
        }
    }
}

fn ip_in(ns: &str, args: &[&str]) {
    let mut c = Command::new("ip");
    c.args(args);
    let st = netns::command_in(ns, c)
        .expect("command in the namespace")
        .status()
        .expect("ip runs");
    assert!(st.success(), "ip {args:?} in {ns}");
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn conns_in(ns: &str) -> Vec<KernelConn> {
    netns::run_in(ns, || {
        lvslab_ipvs_nl::conns::read().expect("/proc/net/ip_vs_conn")
    })
    .expect("enter namespace")
}

/// Set up A <-> B; returns the guard.
fn pair() -> (Namespaces, String, String) {
    let pid = std::process::id();
    let (a, b) = (format!("lvs-synca-{pid}"), format!("lvs-syncb-{pid}"));
    // Deleting a namespace that was never made is fine: guard first.
    let guard = Namespaces(vec![a.clone(), b.clone()]);
    netns::create_with(&a, || Ok(())).expect("namespace A");
    netns::create_with(&b, || Ok(())).expect("namespace B");
    ip_in(
        &a,
        &[
            "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", &b,
        ],
    );
    for (ns, dev, addr) in [(&a, "va", A_ADDR), (&b, "vb", B_ADDR)] {
        ip_in(ns, &["addr", "add", &format!("{addr}/24"), "dev", dev]);
        ip_in(ns, &["link", "set", dev, "up"]);
        // IPVS refuses a NAT real server while lo is down.
        ip_in(ns, &["link", "set", "lo", "up"]);
        // Multicast leaves through the veth (the sync daemon sets IP_MULTICAST_IF to it).
        ip_in(ns, &["route", "add", "224.0.0.0/4", "dev", dev]);
    }
    (guard, a, b)
}

const TABLE: &[&str] = &[
    "-A -t 192.168.1.250:80 -s rr",
    "-a -t 192.168.1.250:80 -r 192.0.2.201:80 -m",
    "-A -t 192.168.1.251:80 -s rr",
    "-a -t 192.168.1.251:80 -r 192.0.2.211:80 -g",
    "-A -t 192.168.1.252:80 -s rr -p 360",
    "-a -t 192.168.1.252:80 -r 192.0.2.221:80 -m",
];

fn entry(client: &str, vip: &str, dest: &str, state: ConnState, flags: u32) -> SyncConn {
    SyncConn {
        protocol: Protocol::Tcp,
        client: sa(client),
        vip: sa(vip),
        dest: sa(dest),
        fwmark: 0,
        state,
        flags,
        timeout: Duration::from_secs(match state {
            ConnState::Established => 900,
            ConnState::SynRecv => 60,
            _ => 360,
        }),
    }
}

/// Multicast a payload from A the way a master's socket does: bound to the interface's
/// address (bind_mcastif_addr), TTL 1, no loop.
fn send_from(ns: &str, payloads: Vec<Vec<u8>>) {
    netns::run_in(ns, move || {
        let s = UdpSocket::bind(SocketAddr::from((A_ADDR, 0))).expect("bind");
        s.set_multicast_ttl_v4(1).expect("ttl");
        s.set_multicast_loop_v4(false).expect("loop");
        for p in payloads {
            s.send_to(&p, SocketAddr::from((SYNC_GROUP, SYNC_PORT)))
                .expect("send");
        }
    })
    .expect("enter namespace A");
}

fn find<'a>(conns: &'a [KernelConn], client: &str, vip: &str) -> Option<&'a KernelConn> {
    conns
        .iter()
        .find(|c| c.client == sa(client) && c.virtual_addr == sa(vip))
}

#[test]
fn the_kernel_backup_takes_lvslabs_sync_messages_and_lvslab_reads_the_kernels() {
    if !nix::unistd::Uid::effective().is_root() {
        return skip("needs root (network namespaces of its own)");
    }
    if !std::path::Path::new("/proc/net/ip_vs").exists() {
        return skip("no kernel IPVS here; scripts/test-kernel runs it in lvslab's VM");
    }
    let (_guard, a, b) = pair();

    // B: kernel IPVS with the services and a BACKUP daemon on vb.
    netns::run_in(&b, || {
        let mut k = KernelIpvs::open().expect("IPVS");
        for l in TABLE {
            k.apply(&ipvsadm::parse(l).unwrap())
                .unwrap_or_else(|e| panic!("{l}: {e}"));
        }
        k.start_daemon(&SyncDaemon {
            state: SyncState::Backup,
            mcast_ifn: "vb".into(),
            syncid: u32::from(SYNCID),
        })
        .expect("start the backup daemon");
    })
    .expect("enter namespace B");

    // A: lvslab's messages. One with another sync id first: the kernel must ignore it.
    let stranger = SyncMessage {
        syncid: SYNCID + 1,
        conns: vec![entry(
            "198.51.100.99:1",
            "192.168.1.250:80",
            "192.0.2.201:80",
            ConnState::Established,
            0,
        )],
    };
    let ours = SyncMessage {
        syncid: SYNCID,
        conns: vec![
            entry(
                "198.51.100.10:40000",
                "192.168.1.250:80",
                "192.0.2.201:80",
                ConnState::Established,
                0,
            ),
            entry(
                "198.51.100.11:40001",
                "192.168.1.251:80",
                "192.0.2.211:80",
                ConnState::Established,
                CONN_F_DROUTE | CONN_F_NOOUTPUT,
            ),
            entry(
                "198.51.100.12:40002",
                "192.168.1.250:80",
                "192.0.2.201:80",
                ConnState::SynRecv,
                CONN_F_INACTIVE,
            ),
            entry(
                "198.51.100.0:0",
                "192.168.1.252:80",
                "192.0.2.221:80",
                ConnState::None,
                CONN_F_TEMPLATE | CONN_F_INACTIVE,
            ),
        ],
    };
    send_from(&a, vec![stranger.encode(), ours.encode()]);

    let deadline = Instant::now() + Duration::from_secs(5);
    let seen = loop {
        let c = conns_in(&b);
        if c.len() >= ours.conns.len() || Instant::now() > deadline {
            break c;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let table: String = seen.iter().map(|c| format!("  {c:?}\n")).collect();
    eprintln!("kernel backup's /proc/net/ip_vs_conn after lvslab's messages:\n{table}");
    let want = [
        (
            "198.51.100.10:40000",
            "192.168.1.250:80",
            "192.0.2.201:80",
            "ESTABLISHED",
        ),
        (
            "198.51.100.11:40001",
            "192.168.1.251:80",
            "192.0.2.211:80",
            "ESTABLISHED",
        ),
        (
            "198.51.100.12:40002",
            "192.168.1.250:80",
            "192.0.2.201:80",
            "SYN_RECV",
        ),
        (
            "198.51.100.0:0",
            "192.168.1.252:80",
            "192.0.2.221:80",
            "NONE",
        ),
    ];
    for (client, vip, dest, state) in want {
        let c = find(&seen, client, vip)
            .unwrap_or_else(|| panic!("{client} -> {vip} not synced:\n{table}"));
        assert_eq!((c.dest, c.state.as_str()), (sa(dest), state), "{c:?}");
        assert_eq!(c.protocol, "TCP", "{c:?}");
    }
    let est = find(&seen, "198.51.100.10:40000", "192.168.1.250:80").unwrap();
    assert!(
        (890..=900).contains(&est.expires_secs),
        "the master's timeout: {est:?}"
    );
    assert!(
        find(&seen, "198.51.100.99:1", "192.168.1.250:80").is_none(),
        "a message with another sync id was applied:\n{table}"
    );
    // The kernel counts synced conns on their dests: ESTABLISHED active, SYN_RECV inactive.
    let services = netns::run_in(&b, || KernelIpvs::open().unwrap().services().unwrap())
        .expect("enter namespace B");
    let dest = |addr: &str| {
        services
            .iter()
            .flat_map(|s| s.dests.iter())
            .find(|d| d.config.addr == sa(addr))
            .map(|d| (d.active, d.inactive, d.persistent))
            .unwrap()
    };
    eprintln!(
        "kernel dest counters (active, inactive, persistent): 201 {:?}, 211 {:?}, 221 {:?}",
        dest("192.0.2.201:80"),
        dest("192.0.2.211:80"),
        dest("192.0.2.221:80")
    );
    assert_eq!(dest("192.0.2.201:80"), (1, 1, 0));
    assert_eq!(dest("192.0.2.211:80"), (1, 0, 0));
    assert_eq!(dest("192.0.2.221:80"), (0, 0, 1));

    the_kernel_master_speaks_what_lvslab_decodes(&a, &b);
}

/// B's kernel as MASTER: a UDP flow from a local client through a NAT service is synced at
/// its 3rd packet (sync_threshold 3); A receives the datagram and decodes it.
fn the_kernel_master_speaks_what_lvslab_decodes(a: &str, b: &str) {
    netns::run_in(b, || {
        let mut k = KernelIpvs::open().expect("IPVS");
        for l in [
            "-A -u 10.9.9.9:53 -s rr",
            "-a -u 10.9.9.9:53 -r 192.0.2.1:5353 -m",
        ] {
            k.apply(&ipvsadm::parse(l).unwrap())
                .unwrap_or_else(|e| panic!("{l}: {e}"));
        }
        k.start_daemon(&SyncDaemon {
            state: SyncState::Master,
            mcast_ifn: "vb".into(),
            syncid: u32::from(SYNCID),
        })
        .expect("start the master daemon");
    })
    .expect("enter namespace B");
    ip_in(b, &["route", "add", "10.9.9.9/32", "dev", "vb"]);

    let a_name = a.to_owned();
    let listener = std::thread::spawn(move || {
        netns::run_in(&a_name, || {
            let s = UdpSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, SYNC_PORT)))
                .expect("bind 8848");
            s.join_multicast_v4(&SYNC_GROUP, &A_ADDR).expect("join");
            s.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
            let mut buf = [0u8; 2048];
            s.recv_from(&mut buf)
                .map(|(n, from)| (buf[..n].to_vec(), from))
        })
        .expect("enter namespace A")
    });
    // Let A join before B's traffic.
    std::thread::sleep(Duration::from_millis(300));
    netns::run_in(b, || {
        let s = UdpSocket::bind(SocketAddr::from((B_ADDR, 40053))).expect("bind client");
        for _ in 0..3 {
            s.send_to(b"q", sa("10.9.9.9:53")).expect("send");
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .expect("enter namespace B");
    let (payload, from) = listener
        .join()
        .expect("listener thread")
        .expect("a sync datagram from the kernel master within 6 s");
    let hex: String = payload.iter().map(|b| format!("{b:02x}")).collect();
    eprintln!(
        "kernel master's datagram from {from}: {} bytes: {hex}",
        payload.len()
    );
    let msg = SyncMessage::decode(&payload).expect("lvslab decodes the kernel's message");
    eprintln!("decoded: {msg:?}");
    assert_eq!(msg.syncid, SYNCID);
    let c = msg
        .conns
        .iter()
        .find(|c| c.vip == sa("10.9.9.9:53"))
        .unwrap_or_else(|| panic!("no conn to 10.9.9.9:53 in {msg:?}"));
    assert_eq!(c.protocol, Protocol::Udp);
    assert_eq!(c.client, SocketAddr::from((B_ADDR, 40053)));
    assert_eq!(c.dest, sa("192.0.2.1:5353"));
    assert_eq!(c.state, ConnState::Udp);
    assert_eq!(c.timeout, Duration::from_secs(300));
    // Re-encoding what was decoded gives the kernel's bytes back.
    assert_eq!(msg.encode(), payload);
}
