//! The harnesses. Each takes any bytes and panics only on a bug.

use crate::frames::{self, DIP, DIR_ETH0, DIR_ETH1, GW, VIP};
use arbitrary::{Result, Unstructured};
use lvslab_core::director::{
    Director, DirectorConfig, HaInstance, IfaceId, Interface, Route, Route6, Tx,
};
use lvslab_core::mark::MarkRule;
use lvslab_core::vrrp::{VrrpConfig, VrrpVersion};
use lvslab_core::wire::{self, Ipv4Cidr, MacAddr};
use lvslab_core::{ipvsadm, Ipvs, IpvsConfig, Protocol};
use lvslab_director::control::{Request, Response};
use lvslab_director::engine::answer_line;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

/// Service tables the frame path starts from: every forwarding method, TCP and UDP, a
/// persistent port-0 service, a firewall-mark service and a service without servers.
const SETUPS: &[&[&str]] = &[
    &[
        "-A -t 192.168.1.250:80 -s rr",
        "-a -t 192.168.1.250:80 -r 192.168.1.201:80 -m",
        "-a -t 192.168.1.250:80 -r 192.168.1.203:80 -m -w 2",
        "-A -u 192.168.1.250:53 -s wrr",
        "-a -u 192.168.1.250:53 -r 192.168.1.201:53 -m",
    ],
    &[
        "-A -t 192.168.1.250:80 -s wlc -p 30",
        "-a -t 192.168.1.250:80 -r 192.168.1.201:80 -g",
        "-a -t 192.168.1.250:80 -r 192.168.1.203:80 -g",
    ],
    &[
        "-A -u 192.168.1.250:53 -s sh",
        "-a -u 192.168.1.250:53 -r 192.168.1.201:53 -i",
        "-a -u 192.168.1.250:53 -r 192.168.1.203:53 -i",
        "-A -t 192.168.1.250:80 -s mh",
        "-a -t 192.168.1.250:80 -r 192.168.1.201:80 -i",
    ],
    &[
        "-A -t 192.168.1.250:0 -s lc -p 60",
        "-a -t 192.168.1.250:0 -r 192.168.1.201:0 -m",
        "-a -t 192.168.1.250:0 -r 192.168.1.203:0 -g",
    ],
    &[
        "-A -f 1 -s lblc",
        "-a -f 1 -r 192.168.1.201:0 -g",
        "-a -f 1 -r 192.168.1.203:0 -g",
    ],
    &["-A -t 192.168.1.250:80 -s rr"],
];

/// IPv6 services added to each of [`SETUPS`] in the dual-stack harness: the same methods
/// and schedulers over the dual-stack lab's IPv6 addresses.
const SETUPS6: &[&[&str]] = &[
    &[
        "-A -t [2001:db8:1::250]:80 -s rr",
        "-a -t [2001:db8:1::250]:80 -r [2001:db8:1::201]:80 -m",
        "-a -t [2001:db8:1::250]:80 -r [2001:db8:1::203]:80 -m -w 2",
        "-A -u [2001:db8:1::250]:53 -s wrr",
        "-a -u [2001:db8:1::250]:53 -r [2001:db8:1::201]:53 -m",
    ],
    &[
        "-A -t [2001:db8:1::250]:80 -s wlc -p 30",
        "-a -t [2001:db8:1::250]:80 -r [2001:db8:1::201]:80 -g",
        "-a -t [2001:db8:1::250]:80 -r [2001:db8:1::203]:80 -g",
    ],
    &[
        "-A -u [2001:db8:1::250]:53 -s sh",
        "-a -u [2001:db8:1::250]:53 -r [2001:db8:1::201]:53 -i",
        "-a -u [2001:db8:1::250]:53 -r [2001:db8:1::203]:53 -i",
        "-A -t [2001:db8:1::250]:80 -s mh",
        "-a -t [2001:db8:1::250]:80 -r [2001:db8:1::201]:80 -i",
    ],
    &[
        "-A -t [2001:db8:1::250]:0 -s lc -p 60 -M 64",
        "-a -t [2001:db8:1::250]:0 -r [2001:db8:1::201]:0 -m",
        "-a -t [2001:db8:1::250]:0 -r [2001:db8:1::203]:0 -g",
    ],
    &[
        "-A -t [2001:db8:1::250]:80 -s lblcr",
        "-a -t [2001:db8:1::250]:80 -r [2001:db8:1::201]:80 -i",
        "-a -t [2001:db8:1::250]:80 -r [2001:db8:1::203]:80 -m",
    ],
    &["-A -t [2001:db8:1::250]:80 -s rr"],
];

/// Table changes made while traffic flows (errors are fine: they are refused).
const EDITS: &[&str] = &[
    "-e -t 192.168.1.250:80 -r 192.168.1.201:80 -m -w 0",
    "-e -t 192.168.1.250:80 -r 192.168.1.201:80 -g -w 3",
    "-d -t 192.168.1.250:80 -r 192.168.1.201:80",
    "-d -u 192.168.1.250:53 -r 192.168.1.201:53",
    "-a -t 192.168.1.250:80 -r 192.168.1.205:80 -m",
    "-a -u 192.168.1.250:53 -r 192.168.1.203:53 -m",
    "-D -t 192.168.1.250:80",
    "-E -t 192.168.1.250:80 -s sed",
    "-E -t 192.168.1.250:80 -s rr -p 5",
    "-A -t 192.168.1.250:80 -s nq",
    "-C",
    "--set 1 1 1",
    "-e -t [2001:db8:1::250]:80 -r [2001:db8:1::201]:80 -i -w 0",
    "-d -t [2001:db8:1::250]:80 -r [2001:db8:1::201]:80",
    "-D -t [2001:db8:1::250]:80",
    "-a -t [2001:db8:1::250]:80 -r [2001:db8:1::205]:80 -g",
];

/// The dual-stack lab's director: [`director_config`] with an IPv6 address beside each
/// IPv4 one and an IPv6 default route.
fn director_config6() -> DirectorConfig {
    let mut c = director_config();
    c.interfaces[0].addrs6 = vec!["2001:db8:203::2/64".parse().expect("a prefix")];
    c.interfaces[1].addrs6 = vec!["2001:db8:1::202/64".parse().expect("a prefix")];
    c.routes6 = vec![Route6 {
        dest: "::/0".parse().expect("a prefix"),
        via: frames::v6::GW,
    }];
    c
}

fn director_config() -> DirectorConfig {
    DirectorConfig {
        interfaces: vec![
            Interface {
                name: "eth0".into(),
                mac: MacAddr(DIR_ETH0),
                addrs: vec![Ipv4Cidr::new(Ipv4Addr::new(203, 0, 113, 2), 24)],
                mtu: 1500,
                addrs6: vec![],
                answers_vip_arp: true,
            },
            Interface {
                name: "eth1".into(),
                mac: MacAddr(DIR_ETH1),
                addrs: vec![Ipv4Cidr::new(DIP, 24)],
                mtu: 1500,
                addrs6: vec![],
                answers_vip_arp: true,
            },
        ],
        routes: vec![Route {
            dest: Ipv4Cidr::new(Ipv4Addr::UNSPECIFIED, 0),
            via: GW,
        }],
        routes6: vec![],
    }
}

/// The seed NAT lab's director with table `setup` (an index into [`SETUPS`]).
fn director(setup: usize, max_conns: usize, rng_seed: u64, v6: bool) -> Director {
    let mut ipvs = Ipvs::new(IpvsConfig {
        max_conns,
        rng_seed,
        ..IpvsConfig::default()
    });
    let extra: &[&str] = if v6 {
        SETUPS6[setup % SETUPS6.len()]
    } else {
        &[]
    };
    for line in SETUPS[setup % SETUPS.len()].iter().chain(extra) {
        let cmd = ipvsadm::parse(line).expect("the harness's own rules parse");
        ipvs.apply(Duration::ZERO, cmd)
            .expect("the harness's own rules apply");
    }
    let config = if v6 {
        director_config6()
    } else {
        director_config()
    };
    let mut d = Director::new(config, ipvs).expect("the harness's own config");
    if setup % SETUPS.len() == 4 {
        d.add_mark(MarkRule {
            dst: VIP.into(),
            protocol: Protocol::Tcp,
            port: None,
            mark: 1,
        });
    }
    d
}

/// The director's counters and table must agree with what the harness did.
struct Books {
    max_conns: usize,
    frames_in: u64,
    frames_out: u64,
}

impl Books {
    fn sent(&mut self, d: &Director, tx: &Tx) {
        self.frames_out += tx.len() as u64;
        for (iface, frame) in tx {
            assert!(
                iface.0 < d.interfaces().len(),
                "sent on interface #{} of {}",
                iface.0,
                d.interfaces().len()
            );
            // Whatever the director sends must be a frame it would itself accept.
            if let Err(e) = wire::parse(frame) {
                panic!("the director sent a frame it cannot parse ({e}): {frame:02x?}");
            }
        }
    }

    fn check(&self, d: &Director, now: Duration) {
        let s = d.stats();
        let ipvs = d.ipvs();
        assert!(
            ipvs.conn_count() <= self.max_conns,
            "conn table {} over its bound {}",
            ipvs.conn_count(),
            self.max_conns
        );
        assert_eq!(
            s.rx_frames, self.frames_in,
            "rx_frames counts every frame handed in"
        );
        assert_eq!(
            s.tx_frames, self.frames_out,
            "tx_frames counts every frame handed out"
        );
        // One frame in is at most one forwarded, masqueraded, dropped ... packet.
        for (what, n) in [
            ("forwarded", s.forwarded),
            ("masqueraded", s.masqueraded),
            ("malformed", s.malformed),
            ("not_ours", s.not_ours),
            ("ipvs_drops", s.ipvs_drops),
            ("echo_replies", s.echo_replies),
            ("resets", s.resets),
            ("fragments", s.fragments),
        ] {
            assert!(n <= s.rx_frames, "{what} {n} > rx_frames {}", s.rx_frames);
        }
        let listed = ipvs.conns(now).len();
        assert!(
            listed <= ipvs.conn_count(),
            "conns() lists {listed} of {}",
            ipvs.conn_count()
        );
        // Every entry counted on a server is in the table (servers deleted since hold
        // entries that no service lists, hence <=).
        let counted: u64 = ipvs
            .services()
            .iter()
            .flat_map(|s| &s.dests)
            .map(|d| u64::from(d.active) + u64::from(d.inactive) + u64::from(d.persistent))
            .sum();
        assert!(
            counted <= ipvs.conn_count() as u64,
            "servers count {counted} entries, the table holds {}",
            ipvs.conn_count()
        );
    }
}

/// How far the clock moves before an operation: mostly little, sometimes past every
/// timeout (TCP's 15 min, persistence, ARP's 3 s).
fn advance(u: &mut Unstructured) -> Result<Duration> {
    Ok(match u.int_in_range(0u8..=7)? {
        0..=4 => Duration::from_millis(u.int_in_range(0..=50)?),
        5 | 6 => Duration::from_millis(u.int_in_range(0..=5_000)?),
        _ => Duration::from_secs(u.int_in_range(0..=1_000)?),
    })
}

/// The director's frame path: any frames on any interface, timers, live table edits.
/// Checks: no panic, the conn table within its bound, the counters consistent, and every
/// frame sent parseable.
pub fn frame_path(data: &[u8]) {
    let _ = frame_path_run(&mut Unstructured::new(data), false);
}

/// [`frame_path`] on a dual-stack director (IPv6 addresses, routes and services beside the
/// IPv4 ones), with IPv6 frames (Neighbour Discovery, ICMPv6, extension headers,
/// IPv6-in-IPv6) mixed into the IPv4 ones. A separate target, so the kept IPv4 inputs of
/// `frame_path` still decode to the frames they were found with.
pub fn frame_path_v6(data: &[u8]) {
    let _ = frame_path_run(&mut Unstructured::new(data), true);
}

fn frame_path_run(u: &mut Unstructured, v6: bool) -> Result<()> {
    // A small table, so a few hundred frames reach its bound.
    let max_conns = u.int_in_range(1..=64)?;
    let setup = u.int_in_range(0..=SETUPS.len() - 1)?;
    let mut d = director(setup, max_conns, u.arbitrary()?, v6);
    let mut books = Books {
        max_conns,
        frames_in: 0,
        frames_out: 0,
    };
    if u.ratio(1, 4)? {
        // Half of a director pair: VRRP adverts, sync messages, standby.
        let inst = HaInstance {
            iface: IfaceId(1),
            vrrp: VrrpConfig {
                vrid: 51,
                priority: *u.choose(&[100u8, 150, 255])?,
                advert_int: Duration::from_secs(1),
                version: if u.arbitrary()? {
                    VrrpVersion::V2
                } else {
                    VrrpVersion::V3
                },
                preempt: u.arbitrary()?,
                vips: vec![VIP],
                // The peer's adverts come from DIP2 (frames::IPS).
                src: DIP,
            },
            sync_id: if u.arbitrary()? {
                Some(u.arbitrary()?)
            } else {
                None
            },
        };
        let tx = d.add_ha(Duration::ZERO, inst).expect("a valid instance");
        // add_ha's frames are not the packet path's: they are not in tx_frames.
        books.frames_out = d.stats().tx_frames;
        drop(tx);
    }
    let mut now = Duration::ZERO;
    for _ in 0..512 {
        if u.is_empty() {
            break;
        }
        now += advance(u)?;
        match u.int_in_range(0u8..=15)? {
            0..=11 => {
                // Interface #2 does not exist: the director must ignore it, not index it.
                let iface = IfaceId(*u.choose(&[0usize, 1, 1, 2])?);
                let frame = if v6 && u.ratio(2, 3)? {
                    frames::frame6(u)?
                } else {
                    frames::frame(u)?
                };
                books.frames_in += 1;
                let tx = d.handle_frame(now, iface, &frame);
                books.sent(&d, &tx);
            }
            12 => {
                let n = u.int_in_range(0..=1600)?;
                let frame = u.bytes(n.min(u.len()))?;
                books.frames_in += 1;
                let tx = d.handle_frame(now, IfaceId(0), frame);
                books.sent(&d, &tx);
            }
            13 => {
                let tx = d.poll(now);
                books.sent(&d, &tx);
            }
            14 => {
                let line = u.choose(EDITS)?;
                let cmd = ipvsadm::parse(line).expect("the harness's own edits parse");
                let _ = d.apply(now, cmd);
            }
            _ => {
                let v = if u.arbitrary()? { "1" } else { "0" };
                d.set_sysctl("expire_nodest_conn", v)
                    .expect("expire_nodest_conn is modelled");
                d.set_explain(u.arbitrary()?);
            }
        }
        books.check(&d, now);
    }
    Ok(())
}

/// Words an ipvsadm line of the control protocol is made of.
const IPVSADM_WORDS: &[&str] = &[
    "ipvsadm",
    "-A",
    "-E",
    "-D",
    "-C",
    "-a",
    "-e",
    "-d",
    "-t",
    "-u",
    "-f",
    "-s",
    "-r",
    "-w",
    "-x",
    "-y",
    "-m",
    "-g",
    "-i",
    "-p",
    "-M",
    "-b",
    "-L",
    "-n",
    "--set",
    "--tun-type",
    "192.168.1.250:80",
    "192.168.1.250:53",
    "192.168.1.201:80",
    "192.168.1.203:80",
    "192.168.1.250",
    "[::1]:80",
    "rr",
    "wrr",
    "wlc",
    "sh",
    "mh",
    "twos",
    "sh-port",
    "0",
    "1",
    "65536",
    "-1",
    "4294967296",
    "ipip",
    "gue",
    "gre",
    "http",
    "-At",
    "-at",
    "-Ln",
];
const SYSCTLS: &[&str] = &[
    "expire_nodest_conn",
    "conn_reuse_mode",
    "sloppy_tcp",
    "",
    "../x",
];
const VALUES: &[&str] = &["0", "1", "2", "-1", "99999999999999999999", "", "yes"];

fn word(u: &mut Unstructured, words: &[&'static str]) -> Result<String> {
    if u.ratio(1, 10)? {
        u.arbitrary()
    } else {
        Ok(u.choose(words)?.to_string())
    }
}

fn request(u: &mut Unstructured) -> Result<Request> {
    Ok(match u.int_in_range(0u8..=9)? {
        0..=3 => {
            let n = u.int_in_range(0..=10)?;
            let mut words = Vec::with_capacity(n);
            for _ in 0..n {
                words.push(word(u, IPVSADM_WORDS)?);
            }
            Request::Ipvsadm {
                line: words.join(" "),
            }
        }
        4 => Request::Stats,
        5 => Request::Conns,
        6 => Request::Explain { on: u.arbitrary()? },
        7 => u
            .choose(&[
                Request::Picks,
                Request::Explaining,
                Request::Vrrp,
                Request::Failover,
            ])?
            .clone(),
        _ => Request::Sysctl {
            name: word(u, SYSCTLS)?,
            value: word(u, VALUES)?,
        },
    })
}

/// The control socket: a request line as the director reads it (JSON, possibly mangled)
/// through `answer`, with traffic in between. Checks: no panic, every response serialises
/// to one JSON line that reads back.
pub fn control(data: &[u8]) {
    let _ = control_run(&mut Unstructured::new(data));
}

fn control_run(u: &mut Unstructured) -> Result<()> {
    let mut d = director(u.int_in_range(0..=SETUPS.len() - 1)?, 64, 1, false);
    let mut now = Duration::ZERO;
    let mut tx = Tx::new();
    for _ in 0..32 {
        if u.is_empty() {
            break;
        }
        now += advance(u)?;
        if u.ratio(1, 3)? {
            let frame = frames::frame(u)?;
            tx.extend(d.handle_frame(now, IfaceId(*u.choose(&[0usize, 1])?), &frame));
            continue;
        }
        let mut line = match u.int_in_range(0u8..=5)? {
            0 => u.arbitrary::<String>()?,
            _ => serde_json::to_string(&request(u)?).expect("a request serialises"),
        };
        if u.ratio(1, 4)? && !line.is_empty() {
            // Cut the line short or splice bytes in, as a broken client would.
            let at = u.int_in_range(0..=line.len())?;
            let at = (0..=at)
                .rev()
                .find(|&i| line.is_char_boundary(i))
                .unwrap_or(0);
            if u.arbitrary()? {
                line.truncate(at);
            } else {
                line.insert_str(at, &u.arbitrary::<String>()?);
            }
        }
        // What the director's control socket does with the line.
        let out = answer_line(&line, &mut d, now, &mut tx).expect("a response serialises");
        let Some(out) = out.strip_suffix('\n') else {
            panic!("a response ends its line: {out:?}");
        };
        assert!(!out.contains('\n'), "a response is one line: {out}");
        if let Err(e) = serde_json::from_str::<Response>(out) {
            panic!("a response does not read back ({e}): {out}");
        }
        tx.clear();
    }
    Ok(())
}

/// The capture normaliser: captures of up to six hops (any frames, any times, cut short
/// as by a snaplen) through `decode_ethernet`, `normalize` and `analyze`; role maps from
/// the seed NAT lab or from `RoleMap::from_text` of the input.
pub fn capture(data: &[u8]) {
    let _ = capture_run(&mut Unstructured::new(data));
}

fn capture_run(u: &mut Unstructured) -> Result<()> {
    use lvslab_capture::decode::{decode_ethernet, Mac};
    use lvslab_capture::{
        analyze, normalize, CapturedPacket, Hop, HopCapture, NormalizeOptions, RoleMap,
    };
    use std::net::IpAddr;

    let hops = [
        (Hop::new("client", "eth0"), [0x02, 0, 0, 0, 0x00, 0x01]),
        (Hop::new("router", "eth1"), frames::ROUTER),
        (Hop::new("director", "eth0"), DIR_ETH0),
        (Hop::new("director", "eth1"), DIR_ETH1),
        (Hop::new("rs1", "eth0"), frames::RS1),
        (Hop::new("rs2", "eth0"), frames::RS2),
    ];
    let mut roles = RoleMap::new();
    if u.ratio(1, 4)? {
        let text: String = u.arbitrary()?;
        if let Ok(r) = RoleMap::from_text(&text) {
            roles = r;
        }
    } else {
        for (h, m) in &hops {
            roles.mac(Mac(*m), h.clone());
        }
        for (ip, l) in [
            (frames::CIP, "CIP"),
            (frames::CIP2, "CIP2"),
            (VIP, "VIP"),
            (DIP, "DIP"),
            (frames::RIP1, "RIP1"),
            (frames::RIP2, "RIP2"),
            (GW, "GWIP"),
        ] {
            roles.label(IpAddr::V4(ip), l.parse().expect("a known label"));
        }
    }
    let mut caps: Vec<HopCapture> = hops
        .iter()
        .map(|(h, _)| HopCapture {
            hop: h.clone(),
            packets: Vec::new(),
        })
        .collect();
    let mut ts = Duration::from_secs(1_700_000_000);
    for _ in 0..u.int_in_range(0..=64)? {
        // Hops' clocks interleave; a capture can even go back in time a little.
        if u.ratio(1, 8)? {
            ts = ts.saturating_sub(Duration::from_micros(u.int_in_range(0..=1000)?));
        } else {
            ts += Duration::from_micros(u.int_in_range(0..=100_000)?);
        }
        let data = frames::frame(u)?;
        let _ = decode_ethernet(&data).map(|f| format!("{f:?}"));
        let orig_len = data.len() as u32
            + if u.ratio(1, 8)? {
                u.int_in_range(0..=100)?
            } else {
                0
            };
        let hop = u.int_in_range(0..=caps.len() - 1)?;
        caps[hop]
            .packets
            .push(CapturedPacket { ts, data, orig_len });
    }
    let opts = NormalizeOptions {
        arp: u.arbitrary()?,
        neighbor_discovery: u.arbitrary()?,
        retransmissions: u.arbitrary()?,
        superseded_acks: u.arbitrary()?,
        multicast: u.arbitrary()?,
    };
    let text = normalize(&caps, &roles, opts);
    let report = analyze(&caps, &roles, opts);
    // The same captures give the same text: the snapshots depend on it.
    assert_eq!(text, report.text, "normalize and analyze disagree");
    let _ = RoleMap::from_text(&roles.to_text()).expect("a role map reads back its own text");
    Ok(())
}

fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// The topology parser and validator (`lvslab validate`), error rendering included.
pub fn topology(data: &[u8]) {
    match lvslab_netns::Topology::parse_with_warnings("fuzz.toml", text(data)) {
        Ok((t, w)) => {
            let _ = format!("{t:?}{w:?}");
        }
        Err(e) => {
            let shown = e.to_string();
            assert!(!shown.is_empty(), "an error says something");
        }
    }
}

/// The scenario parser (`lvslab test` reading `scenarios/*.toml`).
pub fn scenario(data: &[u8]) {
    match lvslab_scenario::Scenario::parse(Path::new("fuzz.toml"), &text(data)) {
        Ok(s) => {
            let _ = format!("{s:?}");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// The simulate script: parsed, then run on the core with explanations, every report
/// rendered (`lvslab simulate --explain`).
pub fn simulate(data: &[u8]) {
    use lvslab_core::sim::{parse_script, Sim};
    let script = text(data);
    if parse_script(&script).is_err() {
        return;
    }
    // A small table: `load active=4000000000` must meet its bound, not the machine's.
    let mut sim = Sim::new(IpvsConfig {
        max_conns: 4096,
        explain: true,
        ..IpvsConfig::default()
    });
    if let Ok(reports) = sim.run_script(&script) {
        for r in reports {
            let _ = (r.text(true), r.text(false), r.matches_kernel());
        }
    }
    assert!(sim.ipvs.conn_count() <= 4096);
}

/// `lvslab import ipvsadm`, then every way back out.
pub fn import_ipvsadm(data: &[u8]) {
    match lvslab_import::import_ipvsadm(Path::new("fuzz.rules"), &text(data)) {
        Ok(imported) => {
            let _ = lvslab_import::to_ipvsadm_save(&imported.services);
            let _ = lvslab_import::to_ipvsadm_rules(&imported.services);
            let _ = lvslab_import::to_toml(&imported);
            let _ = lvslab_import::to_json(&imported);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// `lvslab import keepalived`, then every way back out. `include` lines are disarmed
/// (same length, no longer the keyword): the harness must not read the host's files.
pub fn import_keepalived(data: &[u8]) {
    let conf = text(data).replace("include", "inclvde");
    let path = Path::new("/nonexistent/lvslab-fuzz/keepalived.conf");
    match lvslab_keepalived::import_keepalived_str(path, &conf) {
        Ok(imported) => {
            let _ = lvslab_keepalived::to_keepalived(&imported.services);
            let _ = lvslab_keepalived::to_toml(&imported.services);
            let _ = lvslab_keepalived::to_json(&imported.services);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}
