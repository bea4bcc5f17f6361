//! Speed and memory goals of the balancer core (see docs/benchmarks.md):
//! - `sched_pick`: one scheduler pick on a prepared list of 10/100/1000 servers
//!   (goal: O(1) schedulers <= 50 ns at 1000 servers, O(n) ones <= 5 us);
//! - `packet_in_new_flow`: the whole packet path for a new flow (pick + entry bookkeeping);
//! - `conn_table_1M`: lookups and steady-state inserts with 1M entries, bytes per entry (<= 128).
//!
//! Short run: `cargo bench -p lvslab-core --bench core -- --warm-up-time 1 --measurement-time 2`.
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use lvslab_core::{
    ipvsadm, FlowPacket, InVerdict, Ipvs, IpvsConfig, PickBench, Protocol, SchedFlags, Scheduler,
    TcpFlags,
};

const SIZES: [u32; 3] = [10, 100, 1000];

fn client(i: u32) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::from(0xc000_0200 + (i >> 16)), i as u16))
}

fn sched_flags(s: Scheduler) -> SchedFlags {
    SchedFlags {
        port: matches!(s, Scheduler::Sh | Scheduler::Mh),
        ..SchedFlags::default()
    }
}

/// The scheduler alone: weights 1..5 and a spread of loads so least-load walks compare.
fn sched_pick(c: &mut Criterion) {
    let mut g = c.benchmark_group("sched_pick");
    for s in Scheduler::ALL {
        for n in SIZES {
            let servers: Vec<_> = (0..n)
                .map(|i| {
                    let addr = SocketAddr::from((Ipv4Addr::from(0x0a01_0000 + i), 80));
                    (addr, 1 + i % 5, (i * 7) % 13, (i * 11) % 17)
                })
                .collect();
            let mut bench = PickBench::new(s, sched_flags(s), &servers);
            let mut i = 0u32;
            g.bench_with_input(BenchmarkId::new(s.name(), n), &n, |b, _| {
                b.iter(|| {
                    i = i.wrapping_add(1);
                    // lblc/lblcr/dh key on the destination: vary it over 256 addresses.
                    let dst = IpAddr::V4(Ipv4Addr::from(0xcb00_7100 + (i & 0xff)));
                    black_box(bench.pick(client(i), dst))
                })
            });
        }
    }
    g.finish();
}

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
    let add = format!("-A -u 10.0.0.1:53 -s {s} -o {flags}");
    ipvs.apply(t, ipvsadm::parse(&add).expect("bench service parses"))
        .expect("bench service adds");
    for i in 0..servers {
        let ip = Ipv4Addr::from(0x0a01_0000 + i);
        let w = 1 + i % 5;
        let line = format!("-a -u 10.0.0.1:53 -r {ip}:53 -m -w {w}");
        ipvs.apply(t, ipvsadm::parse(&line).expect("bench server parses"))
            .expect("bench server adds");
    }
    ipvs
}

/// The whole packet path for a new flow.
fn packet_in_new_flow(c: &mut Criterion) {
    let mut g = c.benchmark_group("packet_in_new_flow");
    let dst: SocketAddr = "10.0.0.1:53".parse().expect("literal address");
    for s in Scheduler::ALL {
        for n in SIZES {
            let mut ipvs = balancer(s, n);
            let mut i = 0u32;
            g.bench_with_input(BenchmarkId::new(s.name(), n), &n, |b, _| {
                b.iter(|| {
                    i = i.wrapping_add(1);
                    let pkt = FlowPacket {
                        protocol: Protocol::Udp,
                        src: client(i),
                        dst,
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
        dst: SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1), 80)),
        tcp: Some(TcpFlags::SYN),
        fwmark: 0,
        len: 60,
    }
}

/// SYN_RECV lives 60 s; stepping the clock 60 s / 1M per new flow keeps 1M entries live, so
/// every insert in the steady state also expires the oldest entry.
const N: u32 = 1_000_000;
const STEP_NS: u64 = 60_000_000_000 / N as u64;

fn at(i: u64) -> Duration {
    Duration::from_nanos(i * STEP_NS)
}

fn conn_table(c: &mut Criterion) {
    let mut ipvs = Ipvs::new(IpvsConfig {
        max_conns: 2 * N as usize,
        ..IpvsConfig::default()
    });
    let t = Duration::ZERO;
    ipvs.apply(
        t,
        ipvsadm::parse("-A -t 10.0.0.1:80 -s rr").expect("parses"),
    )
    .expect("adds");
    for i in 0..10 {
        let line = format!("-a -t 10.0.0.1:80 -r 10.1.0.{}:80 -m", i + 1);
        ipvs.apply(t, ipvsadm::parse(&line).expect("parses"))
            .expect("adds");
    }
    let start = std::time::Instant::now();
    for i in 0..N {
        assert!(matches!(
            ipvs.packet_in(at(u64::from(i)), &syn(i)),
            InVerdict::Forward(_)
        ));
    }
    let took = start.elapsed();
    println!(
        "conn table: {} entries inserted in {:?} ({:.0} ns/insert while growing), {:.1} bytes per conn (goal <= 128)",
        ipvs.conn_count(),
        took,
        took.as_nanos() as f64 / f64::from(N),
        ipvs.conn_bytes_per_entry()
    );
    let mut g = c.benchmark_group("conn_table_1M");
    let mut next = u64::from(N);
    g.bench_function("insert_steady_state", |b| {
        b.iter(|| {
            next += 1;
            black_box(ipvs.packet_in(at(next), &syn(next as u32)))
        })
    });
    let mut k = 0u32;
    let now = at(next);
    g.bench_function("lookup_existing", |b| {
        b.iter(|| {
            // The newest half of the live entries: still alive at `now`.
            k = (k + 7919) % (N / 2);
            let mut p = syn((next - u64::from(N / 2)) as u32 + k);
            p.tcp = Some(TcpFlags::ACK);
            black_box(ipvs.packet_in(now, &p))
        })
    });
    g.finish();
    println!(
        "conn table after steady-state inserts: {} entries, {:.1} bytes per conn",
        ipvs.conn_count(),
        ipvs.conn_bytes_per_entry()
    );
}

criterion_group!(benches, sched_pick, packet_in_new_flow, conn_table);
criterion_main!(benches);
