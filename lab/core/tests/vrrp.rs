//! VRRP: the wire format against real packets, and pairs of instances in simulated time.

use lvslab_core::vrrp::{
    advert_frame, garp_frame, parse_advert_frame, Advert, Vrrp, VrrpConfig, VrrpError, VrrpOutput,
    VrrpState, VrrpVersion, GARP_MASTER_DELAY, GARP_MASTER_REPEAT, VRRP_GROUP,
};
use lvslab_core::wire::MacAddr;
use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::time::Duration;

const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 250);
const IP_A: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 201);
const IP_B: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 202);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn cfg(version: VrrpVersion, priority: u8, advert_int: Duration, src: Ipv4Addr) -> VrrpConfig {
    VrrpConfig {
        vrid: 51,
        priority,
        advert_int,
        version,
        preempt: true,
        vips: vec![VIP],
        src,
    }
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

// ---- wire ----

// Frames 2 and 3 of tcpdump's tests/vrrp.pcap (the-tcpdump-group/tcpdump), captured from
// keepalived in 2014; tcpdump -v prints them as
// "VRRPv2, Advertisement, vrid 43, prio 191, authtype none, intvl 10s, length 20, addrs: 10.4.43.150"
// "VRRPv3, Advertisement, vrid 44, prio 191, intvl 1000cs, length 16, addrs(2): 10.4.44.100,10.4.44.200".
// Both carry Ethernet padding after the IP packet.
const REAL_V2: &str = "01005e00001200005e00012b08004500002812340000ff70bec40a00005be0000012212bbf01000aea2e0a042b960000000000000000000000000000";
const REAL_V3: &str = "01005e00001200005e00012c08004500002412340000ff70bec80a00005be0000012312cbf0203e8b3c60a042c640a042cc800000000000000000000";
// Frame 1 of the same file: VRRPv2 with simple-password auth ("abcdefgh").
const REAL_V2_PASS: &str = "01005e00001200005e00012a08004500003012340000ff70bebc0a00005be0000012212abf03010af11f0a042a010a042a020a042a036162636465666768";

#[test]
fn decodes_real_keepalived_adverts() {
    let (src, a) = parse_advert_frame(&hex(REAL_V2)).unwrap().unwrap();
    assert_eq!(src, Ipv4Addr::new(10, 0, 0, 91));
    assert_eq!(
        a,
        Advert {
            version: VrrpVersion::V2,
            vrid: 43,
            priority: 191,
            advert_int: secs(10),
            addrs: vec![Ipv4Addr::new(10, 4, 43, 150)],
        }
    );
    let (_, a) = parse_advert_frame(&hex(REAL_V3)).unwrap().unwrap();
    assert_eq!(
        a,
        Advert {
            version: VrrpVersion::V3,
            vrid: 44,
            priority: 191,
            advert_int: secs(10),
            addrs: vec![Ipv4Addr::new(10, 4, 44, 100), Ipv4Addr::new(10, 4, 44, 200)],
        }
    );
    assert_eq!(
        parse_advert_frame(&hex(REAL_V2_PASS)),
        Some(Err(VrrpError::BadAuthType(1)))
    );
}

#[test]
fn our_encoding_matches_the_real_bytes() {
    // Re-encode the real adverts: the VRRP payloads must come out byte for byte.
    let src = Ipv4Addr::new(10, 0, 0, 91);
    for real in [REAL_V2, REAL_V3] {
        let frame = hex(real);
        let (_, a) = parse_advert_frame(&frame).unwrap().unwrap();
        let total = usize::from(u16::from_be_bytes([frame[16], frame[17]]));
        assert_eq!(a.encode(src), frame[34..14 + total], "{a:?}");
    }
}

#[test]
fn encode_decode_round_trips() {
    let src = IP_A;
    let addrs = vec![
        VIP,
        Ipv4Addr::new(10, 0, 0, 1),
        Ipv4Addr::new(172, 16, 0, 9),
    ];
    for (version, int) in [
        (VrrpVersion::V2, secs(1)),
        (VrrpVersion::V2, secs(255)),
        (VrrpVersion::V3, ms(10)),
        (VrrpVersion::V3, ms(40_950)),
    ] {
        for priority in [0, 1, 100, 254, 255] {
            let a = Advert {
                version,
                vrid: 255,
                priority,
                advert_int: int,
                addrs: addrs.clone(),
            };
            assert_eq!(
                Advert::decode(&a.encode(src), src, VRRP_GROUP),
                Ok(a.clone())
            );
            let frame = advert_frame(MacAddr([2, 0, 0, 0, 0, 1]), src, &a);
            assert_eq!(parse_advert_frame(&frame), Some(Ok((src, a))));
        }
    }
}

#[test]
fn advert_frame_is_what_keepalived_sends() {
    let a = Advert {
        version: VrrpVersion::V2,
        vrid: 51,
        priority: 150,
        advert_int: secs(1),
        addrs: vec![VIP],
    };
    let f = advert_frame(MacAddr([2, 0, 0, 0, 0, 0xa]), IP_A, &a);
    assert_eq!(f[..6], [0x01, 0x00, 0x5e, 0x00, 0x00, 0x12]);
    assert_eq!(f[6..12], [2, 0, 0, 0, 0, 0xa]);
    assert_eq!(f[12..14], [0x08, 0x00]);
    let ip = &f[14..34];
    assert_eq!(ip[0], 0x45);
    assert_eq!(ip[1], 0xc0, "TOS internetwork control");
    assert_eq!(u16::from_be_bytes([ip[2], ip[3]]), 40);
    assert_eq!(ip[6] & 0x40, 0, "no DF");
    assert_eq!((ip[8], ip[9]), (255, 112));
    assert_eq!(ip[16..20], VRRP_GROUP.octets());
    assert_eq!(f.len(), 14 + 40);
}

#[test]
fn checksum_and_header_errors_are_refused() {
    let a = Advert {
        version: VrrpVersion::V3,
        vrid: 51,
        priority: 100,
        advert_int: ms(100),
        addrs: vec![VIP],
    };
    let good = a.encode(IP_A);
    // Each byte flip must be caught (the checksum covers all of it).
    for i in 0..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x01;
        assert!(Advert::decode(&bad, IP_A, VRRP_GROUP).is_err(), "byte {i}");
    }
    let mut bad = good.clone();
    bad[10] ^= 0x80;
    assert!(matches!(
        Advert::decode(&bad, IP_A, VRRP_GROUP),
        Err(VrrpError::BadChecksum(_))
    ));
    let mut v = good.clone();
    v[0] = 0x41;
    assert_eq!(
        Advert::decode(&v, IP_A, VRRP_GROUP),
        Err(VrrpError::BadVersion(4))
    );
    v[0] = 0x32;
    assert_eq!(
        Advert::decode(&v, IP_A, VRRP_GROUP),
        Err(VrrpError::BadType(2))
    );
    assert_eq!(
        Advert::decode(&good[..11], IP_A, VRRP_GROUP),
        Err(VrrpError::BadLength {
            got: 11,
            expected: 12,
            count: 1
        })
    );
    assert_eq!(
        Advert::decode(&good[..7], IP_A, VRRP_GROUP),
        Err(VrrpError::Truncated(7))
    );

    let mut frame = advert_frame(MacAddr([2, 0, 0, 0, 0, 1]), IP_A, &a);
    frame[14 + 8] = 254;
    // Refill the IPv4 header checksum so only the TTL is wrong.
    lvslab_core::wire::checksum::ipv4_header_fill(&mut frame[14..34]);
    assert_eq!(
        parse_advert_frame(&frame),
        Some(Err(VrrpError::BadTtl(254)))
    );
    frame[14 + 8] = 255;
    assert_eq!(
        parse_advert_frame(&frame),
        Some(Err(VrrpError::BadIpChecksum))
    );
}

#[test]
fn garp_is_keepalived_s() {
    let mac = MacAddr([2, 0, 0, 0, 0, 0xa]);
    let f = garp_frame(mac, VIP);
    let mut want = vec![0xff; 6];
    want.extend_from_slice(&mac.0);
    want.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    want.extend_from_slice(&mac.0);
    want.extend_from_slice(&VIP.octets());
    want.extend_from_slice(&[0xff; 6]);
    want.extend_from_slice(&VIP.octets());
    assert_eq!(f, want);
}

#[test]
fn config_is_validated() {
    let ok = cfg(VrrpVersion::V2, 100, secs(1), IP_A);
    assert!(Vrrp::new(ok.clone()).is_ok());
    let err = |c: VrrpConfig| Vrrp::new(c).unwrap_err();
    assert_eq!(
        err(VrrpConfig {
            vrid: 0,
            ..ok.clone()
        }),
        VrrpError::ZeroVrid
    );
    assert_eq!(
        err(VrrpConfig {
            priority: 0,
            ..ok.clone()
        }),
        VrrpError::ZeroPriority
    );
    assert!(Vrrp::new(VrrpConfig {
        priority: 255,
        ..ok.clone()
    })
    .is_ok());
    let e = err(VrrpConfig {
        advert_int: ms(1500),
        ..ok.clone()
    });
    assert!(e.to_string().contains("whole seconds"), "{e}");
    assert!(matches!(
        err(VrrpConfig {
            advert_int: secs(256),
            ..ok.clone()
        }),
        VrrpError::BadInterval { .. }
    ));
    let v3 = cfg(VrrpVersion::V3, 100, ms(100), IP_A);
    assert!(Vrrp::new(v3.clone()).is_ok());
    for bad in [ms(5), ms(15), ms(40_960), Duration::ZERO] {
        assert!(
            matches!(
                err(VrrpConfig {
                    advert_int: bad,
                    ..v3.clone()
                }),
                VrrpError::BadInterval { .. }
            ),
            "{bad:?}"
        );
    }
    assert_eq!(
        err(VrrpConfig {
            vips: vec![],
            ..ok.clone()
        }),
        VrrpError::NoVips
    );
    assert_eq!(VrrpState::Master.to_string(), "MASTER");
    assert_eq!(VrrpState::Backup.to_string(), "BACKUP");
    assert_eq!(VrrpState::Init.to_string(), "INIT");
}

// ---- state machine in simulated time ----

struct Node {
    vrrp: Vrrp,
    mac: MacAddr,
    /// A dead node is neither polled nor heard.
    alive: bool,
    /// When each output was produced.
    log: Vec<(Duration, VrrpOutput)>,
}

/// Routers on one segment; adverts travel as frames through `advert_frame` and
/// `parse_advert_frame`, instantly.
struct Lan {
    nodes: Vec<Node>,
    now: Duration,
    step: Duration,
    /// Adverts are lost (a split brain).
    partitioned: bool,
}

impl Lan {
    fn new(step: Duration, cfgs: Vec<VrrpConfig>) -> Lan {
        let nodes = cfgs
            .into_iter()
            .enumerate()
            .map(|(i, c)| Node {
                vrrp: Vrrp::new(c).unwrap(),
                mac: MacAddr([2, 0, 0, 0, 0, i as u8 + 1]),
                alive: true,
                log: Vec::new(),
            })
            .collect();
        Lan {
            nodes,
            now: Duration::ZERO,
            step,
            partitioned: false,
        }
    }

    fn deliver(&mut self, from: usize, outs: Vec<VrrpOutput>) {
        let mut queue: VecDeque<(usize, VrrpOutput)> =
            outs.into_iter().map(|o| (from, o)).collect();
        while let Some((from, out)) = queue.pop_front() {
            let now = self.now;
            self.nodes[from].log.push((now, out.clone()));
            let VrrpOutput::Advert(adv) = out else {
                continue;
            };
            if self.partitioned {
                continue;
            }
            let node = &self.nodes[from];
            let frame = advert_frame(node.mac, node.vrrp.config().src, &adv);
            let (src, adv) = parse_advert_frame(&frame).unwrap().unwrap();
            for to in 0..self.nodes.len() {
                if to != from && self.nodes[to].alive {
                    let more = self.nodes[to].vrrp.on_advert(now, src, &adv);
                    queue.extend(more.into_iter().map(|o| (to, o)));
                }
            }
        }
    }

    fn start(&mut self, i: usize) {
        let outs = self.nodes[i].vrrp.start(self.now);
        self.deliver(i, outs);
    }

    fn kill(&mut self, i: usize) {
        self.nodes[i].alive = false;
    }

    fn run_until(&mut self, end: Duration) {
        while self.now < end {
            self.now += self.step;
            for i in 0..self.nodes.len() {
                if self.nodes[i].alive {
                    let outs = self.nodes[i].vrrp.poll(self.now);
                    self.deliver(i, outs);
                }
            }
        }
    }

    fn state(&self, i: usize) -> VrrpState {
        self.nodes[i].vrrp.status().state
    }

    /// Times node `i` entered `to`.
    fn entered(&self, i: usize, to: VrrpState) -> Vec<Duration> {
        self.nodes[i]
            .log
            .iter()
            .filter(|(_, o)| matches!(o, VrrpOutput::Transition { to: t, .. } if *t == to))
            .map(|(t, _)| *t)
            .collect()
    }

    fn last_advert(&self, i: usize) -> Duration {
        self.nodes[i]
            .log
            .iter()
            .rev()
            .find(|(_, o)| matches!(o, VrrpOutput::Advert(_)))
            .unwrap()
            .0
    }

    fn reasons(&self, i: usize) -> Vec<String> {
        self.nodes[i]
            .log
            .iter()
            .filter_map(|(_, o)| match o {
                VrrpOutput::Transition { reason, .. } => Some(reason.clone()),
                _ => None,
            })
            .collect()
    }
}

const A: usize = 0;
const B: usize = 1;

fn pair_v2(step: Duration) -> Lan {
    let mut lan = Lan::new(
        step,
        vec![
            cfg(VrrpVersion::V2, 150, secs(1), IP_A),
            cfg(VrrpVersion::V2, 100, secs(1), IP_B),
        ],
    );
    lan.start(A);
    lan.start(B);
    lan
}

fn assert_within(t: Duration, want: Duration, step: Duration) {
    assert!(
        t >= want && t <= want + step,
        "at {t:?}, want {want:?} within one step of {step:?}"
    );
}

#[test]
fn higher_priority_becomes_master() {
    let step = ms(10);
    let mut lan = pair_v2(step);
    lan.run_until(secs(10));
    assert_eq!(lan.state(A), VrrpState::Master);
    assert_eq!(lan.state(B), VrrpState::Backup);
    // A waited its own Master_Down_Interval: 3 s + (256-150)/256 s.
    let mdi_a = secs(3) + Duration::from_nanos(1_000_000_000 * 106 / 256);
    assert_within(lan.entered(A, VrrpState::Master)[0], mdi_a, step);
    assert!(lan.entered(B, VrrpState::Master).is_empty());
    let sb = lan.nodes[B].vrrp.status();
    assert_eq!((sb.master, sb.master_priority), (Some(IP_A), Some(150)));
    let sa = lan.nodes[A].vrrp.status();
    assert_eq!((sa.master, sa.master_priority), (Some(IP_A), Some(150)));
    assert_eq!((sa.transitions, sb.transitions), (2, 1));
    // An advert every second after taking over.
    let adverts = lan.nodes[A]
        .log
        .iter()
        .filter(|(_, o)| matches!(o, VrrpOutput::Advert(_)))
        .count();
    assert_eq!(adverts, 7, "at ~3.41 s and then each second to 10 s");
}

#[test]
fn becoming_master_sends_advert_then_garps() {
    let mut lan = pair_v2(ms(10));
    lan.run_until(secs(4));
    let outs: Vec<&VrrpOutput> = lan.nodes[A].log.iter().map(|(_, o)| o).collect();
    let i = outs
        .iter()
        .position(|o| {
            matches!(
                o,
                VrrpOutput::Transition {
                    to: VrrpState::Master,
                    ..
                }
            )
        })
        .unwrap();
    assert!(matches!(outs[i + 1], VrrpOutput::Advert(a) if a.priority == 150));
    for k in 0..GARP_MASTER_REPEAT {
        assert_eq!(outs[i + 2 + k], &VrrpOutput::Garp(VIP));
    }
    assert_eq!(outs.len(), i + 2 + GARP_MASTER_REPEAT);
    // keepalived's garp_master_delay: a second burst 5 s later.
    let became = lan.entered(A, VrrpState::Master)[0];
    lan.run_until(secs(12));
    let garps: Vec<Duration> = lan.nodes[A]
        .log
        .iter()
        .filter(|(_, o)| matches!(o, VrrpOutput::Garp(_)))
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(garps.len(), 2 * GARP_MASTER_REPEAT);
    assert_within(
        garps[GARP_MASTER_REPEAT],
        became + GARP_MASTER_DELAY,
        ms(10),
    );
}

#[test]
fn backup_takes_over_exactly_master_down_interval_after_the_last_advert() {
    let step = ms(10);
    let mut lan = pair_v2(step);
    lan.run_until(secs(10));
    lan.kill(A);
    let last = lan.last_advert(A);
    lan.run_until(secs(20));
    assert_eq!(lan.state(B), VrrpState::Master);
    // Master_Down_Interval of B: 3 × 1 s + (256-100)/256 s = 3.609375 s.
    let mdi_b = ms(3609) + Duration::from_micros(375);
    assert_eq!(lan.nodes[B].vrrp.master_down_interval(), mdi_b);
    assert_within(lan.entered(B, VrrpState::Master)[0], last + mdi_b, step);
    assert_eq!(
        lan.reasons(B).last().unwrap(),
        "master down interval 3.61 s passed"
    );
}

#[test]
fn release_moves_mastership_within_one_advert_and_does_not_preempt_back() {
    let step = ms(10);
    let mut lan = pair_v2(step);
    lan.run_until(secs(10));
    let t = lan.now;
    let outs = lan.nodes[A].vrrp.release(t);
    assert!(matches!(&outs[..], [
        VrrpOutput::Transition { from: VrrpState::Master, to: VrrpState::Backup, .. },
        VrrpOutput::Advert(a),
    ] if a.priority == 0));
    lan.deliver(A, outs);
    lan.run_until(t + secs(1));
    assert_eq!(lan.state(B), VrrpState::Master);
    // B waited only its Skew_Time, (256-100)/256 s.
    let skew_b = ms(609) + Duration::from_micros(375);
    assert_within(lan.entered(B, VrrpState::Master)[0], t + skew_b, step);
    assert_eq!(
        lan.reasons(B).last().unwrap(),
        &format!("priority 0 from master {IP_A}")
    );
    // A (150, preempt) hears B (100) and leaves it be.
    lan.run_until(t + secs(60));
    assert_eq!(lan.state(A), VrrpState::Backup);
    assert_eq!(lan.state(B), VrrpState::Master);
    assert_eq!(lan.nodes[A].vrrp.status().master, Some(IP_B));
    // B goes away: A takes over after its Master_Down_Interval and then preempts again.
    let mut lan2 = pair_v2(step);
    lan2.run_until(secs(10));
    let outs = lan2.nodes[A].vrrp.release(lan2.now);
    lan2.deliver(A, outs);
    lan2.run_until(secs(20));
    lan2.kill(B);
    let last = lan2.last_advert(B);
    lan2.run_until(secs(30));
    let mdi_a = secs(3) + Duration::from_nanos(1_000_000_000 * 106 / 256);
    assert_within(lan2.entered(A, VrrpState::Master)[1], last + mdi_a, step);
}

#[test]
fn release_on_a_backup_is_a_no_op() {
    let mut lan = pair_v2(ms(10));
    lan.run_until(secs(10));
    assert!(lan.nodes[B].vrrp.release(lan.now).is_empty());
    assert_eq!(lan.state(B), VrrpState::Backup);
}

#[test]
fn a_released_master_takes_back_over_when_the_other_gives_up() {
    let step = ms(10);
    let mut lan = pair_v2(step);
    lan.run_until(secs(10));
    let outs = lan.nodes[A].vrrp.release(lan.now);
    lan.deliver(A, outs);
    lan.run_until(secs(20));
    assert_eq!(lan.state(B), VrrpState::Master);
    let t = lan.now;
    let outs = lan.nodes[B].vrrp.release(t);
    lan.deliver(B, outs);
    lan.run_until(secs(30));
    assert_eq!(lan.state(A), VrrpState::Master);
    let skew_a = Duration::from_nanos(1_000_000_000 * 106 / 256);
    assert_within(lan.entered(A, VrrpState::Master)[1], t + skew_a, step);
    // Both released once; A (higher) holds, B stays Backup.
    assert_eq!(lan.state(B), VrrpState::Backup);
}

/// B is master alone; A (higher priority) joins later.
fn late_higher(preempt: bool) -> Lan {
    let mut a = cfg(VrrpVersion::V2, 150, secs(1), IP_A);
    a.preempt = preempt;
    let mut lan = Lan::new(ms(10), vec![a, cfg(VrrpVersion::V2, 100, secs(1), IP_B)]);
    lan.start(B);
    lan.nodes[A].alive = false;
    lan.run_until(secs(10));
    assert_eq!(lan.state(B), VrrpState::Master);
    lan.nodes[A].alive = true;
    lan.start(A);
    lan
}

#[test]
fn preempt_takes_over_from_a_lower_priority_master() {
    let mut lan = late_higher(true);
    let t = lan.now;
    lan.run_until(secs(30));
    assert_eq!(lan.state(A), VrrpState::Master);
    assert_eq!(lan.state(B), VrrpState::Backup);
    // Adverts from B were discarded, so A's Master_Down_Timer from start ran out.
    let mdi_a = secs(3) + Duration::from_nanos(1_000_000_000 * 106 / 256);
    assert_within(lan.entered(A, VrrpState::Master)[0], t + mdi_a, ms(10));
    assert_eq!(
        lan.reasons(A).last().unwrap(),
        &format!("preempted master {IP_B} of lower priority 100")
    );
    assert_eq!(
        lan.reasons(B).last().unwrap(),
        &format!("higher priority 150 from {IP_A}")
    );
}

#[test]
fn nopreempt_leaves_a_lower_priority_master_alone() {
    let mut lan = late_higher(false);
    lan.run_until(secs(60));
    assert_eq!(lan.state(A), VrrpState::Backup);
    assert_eq!(lan.state(B), VrrpState::Master);
    let s = lan.nodes[A].vrrp.status();
    assert_eq!((s.master, s.master_priority), (Some(IP_B), Some(100)));
}

#[test]
fn equal_priority_masters_leave_it_to_the_higher_address() {
    let mut lan = Lan::new(
        ms(10),
        vec![
            cfg(VrrpVersion::V2, 100, secs(1), IP_A),
            cfg(VrrpVersion::V2, 100, secs(1), IP_B),
        ],
    );
    // A split brain: both become master; then the link heals.
    lan.partitioned = true;
    lan.start(A);
    lan.start(B);
    lan.run_until(secs(10));
    assert_eq!(
        (lan.state(A), lan.state(B)),
        (VrrpState::Master, VrrpState::Master)
    );
    lan.partitioned = false;
    lan.run_until(secs(12));
    assert_eq!(lan.state(B), VrrpState::Master);
    assert_eq!(lan.state(A), VrrpState::Backup);
    assert_eq!(
        lan.reasons(A).last().unwrap(),
        &format!("same priority 100 from higher address {IP_B}")
    );
}

#[test]
fn v3_with_100ms_adverts_and_a_learned_interval() {
    let step = ms(1);
    // B is configured with 1 s but must run its down timer on A's 100 ms (RFC 5798 6.4.2).
    let mut lan = Lan::new(
        step,
        vec![
            cfg(VrrpVersion::V3, 150, ms(100), IP_A),
            cfg(VrrpVersion::V3, 100, secs(1), IP_B),
        ],
    );
    lan.start(A);
    lan.start(B);
    lan.run_until(secs(2));
    assert_eq!(lan.state(A), VrrpState::Master);
    // A: 3 × 100 ms + 106/256 × 100 ms = 341.40625 ms.
    assert_within(
        lan.entered(A, VrrpState::Master)[0],
        ms(341) + Duration::from_nanos(406_250),
        step,
    );
    assert_eq!(lan.nodes[B].vrrp.status().master_adver_int, ms(100));
    lan.kill(A);
    let last = lan.last_advert(A);
    lan.run_until(secs(4));
    assert_eq!(lan.state(B), VrrpState::Master);
    // B: 3 × 100 ms + 156/256 × 100 ms = 360.9375 ms.
    let mdi_b = ms(360) + Duration::from_nanos(937_500);
    assert_within(lan.entered(B, VrrpState::Master)[0], last + mdi_b, step);
    // As master, B advertises its own interval again.
    assert_eq!(lan.nodes[B].vrrp.status().master_adver_int, secs(1));
}

#[test]
fn v2_and_v3_and_other_vrids_ignore_each_other() {
    let mut b = Vrrp::new(cfg(VrrpVersion::V2, 100, secs(1), IP_B)).unwrap();
    b.start(Duration::ZERO);
    let due = b.next_due();
    let v3 = Advert {
        version: VrrpVersion::V3,
        vrid: 51,
        priority: 200,
        advert_int: secs(1),
        addrs: vec![VIP],
    };
    assert!(b.on_advert(secs(1), IP_A, &v3).is_empty());
    let other_vrid = Advert {
        version: VrrpVersion::V2,
        vrid: 52,
        ..v3.clone()
    };
    assert!(b.on_advert(secs(1), IP_A, &other_vrid).is_empty());
    let other_int = Advert {
        version: VrrpVersion::V2,
        advert_int: secs(2),
        ..v3.clone()
    };
    assert!(b.on_advert(secs(1), IP_A, &other_int).is_empty());
    assert_eq!(b.next_due(), due, "none of them reset the down timer");
    let s = b.status();
    assert_eq!((s.master, s.mismatched), (None, 2));
}

#[test]
fn owner_starts_as_master_and_shutdown_sends_priority_zero() {
    let mut c = cfg(VrrpVersion::V2, 255, secs(1), IP_A);
    c.vips.push(Ipv4Addr::new(192, 168, 1, 251));
    let mut lan = Lan::new(ms(10), vec![c, cfg(VrrpVersion::V2, 100, secs(1), IP_B)]);
    lan.start(A);
    lan.start(B);
    assert_eq!(lan.state(A), VrrpState::Master);
    // One advert, then 5 rounds over both VIPs.
    let garps: Vec<&VrrpOutput> = lan.nodes[A].log[2..].iter().map(|(_, o)| o).collect();
    assert_eq!(garps.len(), 2 * GARP_MASTER_REPEAT);
    assert_eq!(garps[0], &VrrpOutput::Garp(VIP));
    assert_eq!(garps[1], &VrrpOutput::Garp(Ipv4Addr::new(192, 168, 1, 251)));
    lan.run_until(secs(5));
    let t = lan.now;
    let outs = lan.nodes[A].vrrp.shutdown(t);
    assert!(matches!(&outs[..], [
        VrrpOutput::Transition { to: VrrpState::Init, .. },
        VrrpOutput::Advert(a),
    ] if a.priority == 0));
    lan.deliver(A, outs);
    assert_eq!(lan.nodes[A].vrrp.next_due(), None);
    lan.run_until(secs(8));
    assert_eq!(lan.state(A), VrrpState::Init);
    assert_eq!(lan.state(B), VrrpState::Master);
    let skew_b = ms(609) + Duration::from_micros(375);
    assert_within(lan.entered(B, VrrpState::Master)[0], t + skew_b, ms(10));
}

#[test]
fn master_answers_priority_zero_and_lower_priority_with_an_advert() {
    let mut a = Vrrp::new(cfg(VrrpVersion::V3, 150, ms(100), IP_A)).unwrap();
    a.start(Duration::ZERO);
    let outs = a.poll(secs(1));
    assert_eq!(a.status().state, VrrpState::Master, "{outs:?}");
    let lower = Advert {
        version: VrrpVersion::V3,
        vrid: 51,
        priority: 100,
        advert_int: ms(100),
        addrs: vec![VIP],
    };
    let outs = a.on_advert(secs(1), IP_B, &lower);
    assert!(matches!(&outs[..], [VrrpOutput::Advert(x)] if x.priority == 150));
    let zero = Advert {
        priority: 0,
        ..lower
    };
    let outs = a.on_advert(secs(1) + ms(50), IP_B, &zero);
    assert!(matches!(&outs[..], [VrrpOutput::Advert(x)] if x.priority == 150));
    assert_eq!(a.next_due(), Some(secs(1) + ms(150)), "adver timer reset");
    assert_eq!(a.status().state, VrrpState::Master);
}
