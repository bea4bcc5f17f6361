//! Known sequences from the kernel's source, run through the public API.
use std::net::SocketAddr;
use std::time::Duration;

use lvslab_core::sim::Sim;
use lvslab_core::{ipvsadm, FlowPacket, InVerdict, Ipvs, IpvsConfig, Protocol, TcpFlags};

fn picks(script: &str) -> Vec<String> {
    let mut sim = Sim::new(IpvsConfig::default());
    sim.run_script(script)
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|r| r.server.map_or("-".into(), |s| s.ip().to_string()))
        .collect()
}

fn short(v: &[String]) -> String {
    v.iter()
        .map(|s| match s.as_str() {
            "10.0.2.11" => "A",
            "10.0.2.12" => "B",
            "10.0.2.13" => "C",
            "10.0.2.14" => "D",
            _ => "?",
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn setup(sched: &str, weights: &[u32]) -> String {
    let mut s = format!("ipvsadm -A -t 10.0.1.100:80 -s {sched}\n");
    for (i, w) in weights.iter().enumerate() {
        s += &format!(
            "ipvsadm -a -t 10.0.1.100:80 -r 10.0.2.1{}:80 -m -w {w}\n",
            i + 1
        );
    }
    s
}

fn conns(n: usize, first_port: u16) -> String {
    (0..n)
        .map(|i| {
            format!(
                "conn 10.0.1.2:{} > 10.0.1.100:80\n",
                first_port as usize + i
            )
        })
        .collect()
}

#[test]
fn wrr_432_added_one_by_one_repeats_kernel_cycle() {
    let p = picks(&(setup("wrr", &[4, 3, 2]) + &conns(18, 20000)));
    assert_eq!(short(&p), "C B A A B A C B A C B A A B A C B A");
}

#[test]
fn rr_walks_newest_first() {
    let p = picks(&(setup("rr", &[4, 3, 2]) + &conns(6, 20000)));
    assert_eq!(short(&p), "C B A C B A");
}

#[test]
fn lc_counts_inactive_as_one_256th() {
    // A holds one open conn (256); B gets closed ones (TIME_WAIT, 1 each) until 256 of them.
    let mut s = setup("lc", &[1, 1]);
    s += "open h 10.0.1.2:30000 > 10.0.1.100:80\n"; // list is B, A: B first on the tie
    s += &conns(3, 20000);
    let p = picks(&s);
    assert_eq!(short(&p), "B A A A");
}

#[test]
fn wlc_weights_by_cross_multiplication() {
    let mut s = setup("wlc", &[1, 3]);
    for i in 0..8 {
        s += &format!("open h{i} 10.0.1.2:{} > 10.0.1.100:80\n", 30000 + i);
    }
    // B (weight 3) takes 3 conns for each one A (weight 1) takes.
    let p = picks(&s);
    let b = p.iter().filter(|x| *x == "10.0.2.12").count();
    let a = p.iter().filter(|x| *x == "10.0.2.11").count();
    assert_eq!((a, b), (2, 6), "{p:?}");
}

#[test]
fn quiesced_server_keeps_its_conns_but_gets_no_new_ones() {
    let mut ipvs = Ipvs::new(IpvsConfig::default());
    let t = Duration::ZERO;
    for l in [
        "-A -t 10.0.1.100:80 -s rr",
        "-a -t 10.0.1.100:80 -r 10.0.2.11:80 -m",
        "-a -t 10.0.1.100:80 -r 10.0.2.12:80 -m",
    ] {
        ipvs.apply(t, ipvsadm::parse(l).unwrap()).unwrap();
    }
    let syn = |port: u16| FlowPacket {
        protocol: Protocol::Tcp,
        src: SocketAddr::from(([10, 0, 1, 2], port)),
        dst: "10.0.1.100:80".parse().unwrap(),
        tcp: Some(TcpFlags::SYN),
        fwmark: 0,
        len: 60,
    };
    let InVerdict::Forward(first) = ipvs.packet_in(t, &syn(1000)) else {
        panic!()
    };
    assert_eq!(first.dest.to_string(), "10.0.2.12:80");
    ipvs.apply(
        t,
        ipvsadm::parse("-e -t 10.0.1.100:80 -r 10.0.2.12:80 -m -w 0").unwrap(),
    )
    .unwrap();
    let mut ack = syn(1000);
    ack.tcp = Some(TcpFlags::ACK);
    let InVerdict::Forward(again) = ipvs.packet_in(t, &ack) else {
        panic!()
    };
    assert_eq!(again.dest, first.dest, "existing conn keeps flowing");
    for p in 1001..1004 {
        let InVerdict::Forward(f) = ipvs.packet_in(t, &syn(p)) else {
            panic!()
        };
        assert_eq!(f.dest.to_string(), "10.0.2.11:80");
    }
    // A non-SYN for an unknown flow is ours but not forwarded.
    assert_eq!(
        ipvs.packet_in(t, &{
            let mut a = syn(5000);
            a.tcp = Some(TcpFlags::ACK);
            a
        }),
        InVerdict::Drop
    );
}

#[test]
fn thresholds_set_on_bind_and_clear_below_lower() {
    let mut s = String::from("ipvsadm -A -t 10.0.1.100:80 -s rr\n");
    s += "ipvsadm -a -t 10.0.1.100:80 -r 10.0.2.11:80 -m -x 2 -y 1\n";
    s += "open a 10.0.1.2:1 > 10.0.1.100:80\n";
    s += "open b 10.0.1.2:2 > 10.0.1.100:80\n"; // total 2 >= 2: overloaded
    s += "open c 10.0.1.2:3 > 10.0.1.100:80\n"; // refused
    s += "close a\nsleep 121\n"; // a unbinds: total 1, not < 1: still overloaded
    s += "open d 10.0.1.2:4 > 10.0.1.100:80\n"; // refused
    s += "close b\nsleep 121\n"; // total 0 < 1: cleared
    s += "open e 10.0.1.2:5 > 10.0.1.100:80\n";
    let p = picks(&s);
    assert_eq!(short(&p), "A A ? ? A");
}

#[test]
fn sed_seed_example_picks_the_third_server() {
    let script = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/simulate/sed.sim"
    ))
    .unwrap();
    let p = picks(&script);
    assert_eq!(p.last().map(String::as_str), Some("10.0.2.13"));
}

#[test]
fn nq_gives_an_idle_server_the_next_conn() {
    let mut s = setup("nq", &[1, 5]);
    for i in 0..3 {
        s += &format!("open h{i} 10.0.1.2:{} > 10.0.1.100:80\n", 30000 + i);
    }
    assert_eq!(short(&picks(&s)), "B A B");
}

#[test]
fn sh_sticks_and_falls_back_only_with_the_flag() {
    let base = |flag: &str| {
        let mut s = format!("ipvsadm -A -t 10.0.1.100:80 -s sh {flag}\n");
        for i in 1..=3 {
            s += &format!("ipvsadm -a -t 10.0.1.100:80 -r 10.0.2.1{i}:80 -m\n");
        }
        s += "conn 10.0.1.2:1 > 10.0.1.100:80\nconn 10.0.1.2:2 > 10.0.1.100:80\n";
        s
    };
    let p = picks(&base(""));
    assert_eq!(p[0], p[1], "one client, one server");
    let quiesce = format!("ipvsadm -e -t 10.0.1.100:80 -r {}:80 -m -w 0\n", p[0]);
    let p2 = picks(&(base("") + &quiesce + "conn 10.0.1.2:3 > 10.0.1.100:80\n"));
    assert_eq!(p2[2], "-", "no fallback without sh-fallback");
    let p3 = picks(&(base("-b sh-fallback") + &quiesce + "conn 10.0.1.2:3 > 10.0.1.100:80\n"));
    assert_ne!(p3[2], "-");
    assert_ne!(p3[2], p[0]);
}

#[test]
fn dh_maps_each_destination_to_one_server() {
    let mut s = String::from("ipvsadm -A -f 1 -s dh\n");
    for i in 1..=3 {
        s += &format!("ipvsadm -a -f 1 -r 10.0.2.1{i}:0 -g\n");
    }
    for c in 0..6 {
        for d in 1..=4 {
            s += &format!("conn 10.0.1.{c}:1000 > 198.51.100.{d}:80 mark 1\n");
        }
    }
    let p = picks(&s);
    for d in 0..4 {
        let servers: std::collections::BTreeSet<_> = (0..6).map(|c| &p[c * 4 + d]).collect();
        assert_eq!(servers.len(), 1, "destination {d}: {servers:?}");
    }
}

#[test]
fn lblc_cache_expires_after_a_day_unused() {
    let mut s = String::from("ipvsadm -A -f 1 -s lblc\n");
    s += "ipvsadm -a -f 1 -r 10.0.2.11:0 -g\nipvsadm -a -f 1 -r 10.0.2.12:0 -g\n";
    // ESTABLISHED lasts longer than the test so held conns keep their weight.
    s += "ipvsadm --set 500000 120 300\n";
    s += "open x 10.0.1.2:1 > 198.51.100.7:80 mark 1\n"; // list B, A: tie -> B, cached for .7
    s += "open v 10.0.1.2:9 > 198.51.100.8:80 mark 1\n"; // .8: least loaded -> A
    s += "open y 10.0.1.2:2 > 198.51.100.7:80 mark 1\n"; // cache hit: B (1 active, not above weight 1)
    s += "sleep 90000\n"; // > 24 h unused: the full check drops both entries
    s += "open w 10.0.1.2:4 > 198.51.100.7:80 mark 1\n"; // fresh: B has 2 active, A 1 -> A
    assert_eq!(short(&picks(&s)), "B A B A");
}

#[test]
fn lblcr_grows_its_set_when_the_server_is_overloaded() {
    let mut s = String::from("ipvsadm -A -f 1 -s lblcr\n");
    s += "ipvsadm -a -f 1 -r 10.0.2.11:0 -g -w 1\nipvsadm -a -f 1 -r 10.0.2.12:0 -g -w 4\n";
    for i in 0..4 {
        s += &format!("open h{i} 10.0.1.2:{} > 198.51.100.7:80 mark 1\n", 10 + i);
    }
    // B (w4) takes the first; its set {B} serves until B.active > 4 while A is idle (0*2 < 1).
    s += &(0..2)
        .map(|i| format!("open k{i} 10.0.1.2:{} > 198.51.100.7:80 mark 1\n", 20 + i))
        .collect::<String>();
    let p = picks(&s);
    assert_eq!(short(&p), "B B B B B A");
}

#[test]
fn mh_remaps_a_small_share_when_a_server_leaves() {
    let n_servers = 10;
    let clients = 2000u32;
    let run = |delete: Option<usize>| {
        let mut s = String::from("ipvsadm -A -t 10.0.1.100:80 -s mh\n");
        for i in 0..n_servers {
            s += &format!("ipvsadm -a -t 10.0.1.100:80 -r 10.0.3.{}:80 -m\n", i + 1);
        }
        if let Some(d) = delete {
            s += &format!("ipvsadm -d -t 10.0.1.100:80 -r 10.0.3.{}:80\n", d + 1);
        }
        for c in 0..clients {
            s += &format!(
                "conn 198.51.{}.{}:1000 > 10.0.1.100:80\n",
                c / 250,
                c % 250 + 1
            );
        }
        picks(&s)
    };
    let before = run(None);
    let after = run(Some(3));
    let gone = "10.0.3.4";
    let mut moved_other = 0;
    let mut on_gone = 0;
    for (b, a) in before.iter().zip(&after) {
        if b == gone {
            on_gone += 1;
            assert_ne!(a, gone);
        } else if a != b {
            moved_other += 1;
        }
    }
    assert!(on_gone > 0);
    // Maglev's promise: clients of surviving servers mostly stay. Allow 5% churn.
    let share = moved_other as f64 / f64::from(clients);
    assert!(
        share < 0.05,
        "{moved_other} of {clients} clients of surviving servers moved"
    );
}

#[test]
fn deleted_server_returns_from_trash_with_its_counters() {
    let mut ipvs = Ipvs::new(IpvsConfig::default());
    let t = Duration::ZERO;
    for l in [
        "-A -t 10.0.1.100:80 -s rr",
        "-a -t 10.0.1.100:80 -r 10.0.2.11:80 -m",
    ] {
        ipvs.apply(t, ipvsadm::parse(l).unwrap()).unwrap();
    }
    let syn = FlowPacket {
        protocol: Protocol::Tcp,
        src: "10.0.1.2:1000".parse().unwrap(),
        dst: "10.0.1.100:80".parse().unwrap(),
        tcp: Some(TcpFlags::SYN),
        fwmark: 0,
        len: 60,
    };
    assert!(matches!(ipvs.packet_in(t, &syn), InVerdict::Forward(_)));
    ipvs.apply(
        t,
        ipvsadm::parse("-d -t 10.0.1.100:80 -r 10.0.2.11:80").unwrap(),
    )
    .unwrap();
    // Like the kernel, packets of a conn whose server was deleted are dropped.
    assert_eq!(ipvs.packet_in(t, &syn), InVerdict::Drop);
    ipvs.apply(
        t,
        ipvsadm::parse("-a -t 10.0.1.100:80 -r 10.0.2.11:80 -m").unwrap(),
    )
    .unwrap();
    let d = &ipvs.services()[0].dests[0];
    assert_eq!((d.stats.conns, d.inactive), (1, 1), "{d:?}");
}

#[test]
fn persistence_sticks_per_netmask() {
    let mut s = String::from("ipvsadm -A -t 10.0.1.100:80 -s rr -p 60 -M 255.255.255.0\n");
    s += "ipvsadm -a -t 10.0.1.100:80 -r 10.0.2.11:80 -m\nipvsadm -a -t 10.0.1.100:80 -r 10.0.2.12:80 -m\n";
    s += "conn 10.0.1.2:1 > 10.0.1.100:80\nconn 10.0.1.3:1 > 10.0.1.100:80\nconn 10.0.9.3:1 > 10.0.1.100:80\n";
    // Within the template's life the same /24 sticks even though rr moved on.
    s += "sleep 30\nconn 10.0.1.9:2 > 10.0.1.100:80\n";
    // Conns end after TIME_WAIT (120 s), the template 60 s later; then rr decides again.
    s += "sleep 200\nconn 10.0.1.2:2 > 10.0.1.100:80\n";
    assert_eq!(short(&picks(&s)), "B B A B B");
}
