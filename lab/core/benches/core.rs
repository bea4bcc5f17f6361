//! Pick cost per scheduler at 10/100/1000 servers, and the conn table at 1M entries.
use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use lvslab_core::{
    ipvsadm, FlowPacket, InVerdict, Ipvs, IpvsConfig, Protocol, Scheduler, TcpFlags,
};

fn balancer(s: Scheduler, servers: u32) -> Ipvs {
    let mut ipvs = Ipvs::new(IpvsConfig::default());
    let t = Duration::ZERO;
    // One-packet UDP: every datagram is scheduled and its entry freed at once, so the loop
    // measures a pick plus entry bookkeeping without the table growing.
    let flags = match s {
        Scheduler::Sh => "-b sh-port",
        Scheduler::Mh => "-b mh-port",
        _ => "",
    };
    ipvs.apply(
        t,
        ipvsadm::parse(&format!("-A -u 10.0.0.1:53 -s {s} -o {flags}")).unwrap(),
    )
    .unwrap();
    for i in 0..servers {
        let ip = Ipv4Addr::from(0x0a01_0000 + i);
        let w = 1 + i % 5;
        ipvs.apply(
            t,
            ipvsadm::parse(&format!("-a -u 10.0.0.1:53 -r {ip}:53 -m -w {w}")).unwrap(),
        )
        .unwrap();
    }
    ipvs
}

fn picks(c: &mut Criterion) {
    let mut g = c.benchmark_group("pick");
    g.measurement_time(Duration::from_millis(600))
        .warm_up_time(Duration::from_millis(200))
        .sample_size(10);
    for s in Scheduler::ALL {
        for n in [10u32, 100, 1000] {
            let mut ipvs = balancer(s, n);
            let mut port = 0u32;
            g.bench_with_input(BenchmarkId::new(s.name(), n), &n, |b, _| {
                b.iter(|| {
                    port = port.wrapping_add(1);
                    let pkt = FlowPacket {
                        protocol: Protocol::Udp,
                        src: SocketAddr::from((
                            Ipv4Addr::from(0xc000_0200 + (port >> 16)),
                            port as u16,
                        )),
                        dst: "10.0.0.1:53".parse().unwrap(),
                        tcp: None,
                        fwmark: 0,
                        len: 60,
                    };
                    black_box(ipvs.packet_in(Duration::ZERO, &pkt))
                })
            });
        }
    }
    g.finish();
}

fn syn(i: u32) -> FlowPacket {
    FlowPacket {
        protocol: Protocol::Tcp,
        src: SocketAddr::from((
            Ipv4Addr::from(0xc633_0000 + (i >> 12)),
            (i & 0xfff) as u16 + 1024,
        )),
        dst: "10.0.0.1:80".parse().unwrap(),
        tcp: Some(TcpFlags::SYN),
        fwmark: 0,
        len: 60,
    }
}

fn conn_table(c: &mut Criterion) {
    const N: u32 = 1_000_000;
    let mut ipvs = Ipvs::new(IpvsConfig {
        max_conns: 2 * N as usize,
        ..IpvsConfig::default()
    });
    let t = Duration::ZERO;
    ipvs.apply(t, ipvsadm::parse("-A -t 10.0.0.1:80 -s rr").unwrap())
        .unwrap();
    for i in 0..10 {
        ipvs.apply(
            t,
            ipvsadm::parse(&format!("-a -t 10.0.0.1:80 -r 10.1.0.{}:80 -m", i + 1)).unwrap(),
        )
        .unwrap();
    }
    let start = std::time::Instant::now();
    for i in 0..N {
        assert!(matches!(ipvs.packet_in(t, &syn(i)), InVerdict::Forward(_)));
    }
    let took = start.elapsed();
    println!(
        "conn table: {} entries inserted in {:?} ({:.0} ns/insert), {:.1} bytes per conn (goal <= 128)",
        ipvs.conn_count(),
        took,
        took.as_nanos() as f64 / f64::from(N),
        ipvs.conn_bytes_per_entry()
    );
    let mut g = c.benchmark_group("conn_table_1M");
    g.measurement_time(Duration::from_millis(800))
        .sample_size(10);
    let mut i = 0u32;
    g.bench_function("lookup_existing", |b| {
        b.iter(|| {
            i = (i + 7919) % N;
            let mut p = syn(i);
            p.tcp = Some(TcpFlags::ACK);
            black_box(ipvs.packet_in(t, &p))
        })
    });
    g.finish();
}

criterion_group!(benches, picks, conn_table);
criterion_main!(benches);
