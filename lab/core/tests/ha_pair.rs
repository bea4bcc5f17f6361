//! A director pair at the `Director` level: two userspace directors on one simulated LAN in
//! simulated time, joined by VRRP (and IPVS connection sync). A tiny wire delivers each
//! director's frames to the other, answers ARP for the router and the real servers, and
//! records what reaches the router (ARP replies, GARPs, RSTs) and the real servers
//! (forwarded frames). The router keeps one neighbour entry, the VIP's MAC, learned from
//! ARP replies and gratuitous ARPs, and sends the client's packets there.
use etherparse::{ArpEthIpv4Packet, ArpOperation, PacketBuilder, SlicedPacket, TransportSlice};
use lvslab_core::director::{
    Director, DirectorConfig, HaInstance, IfaceId, Interface, Route, SyncCounters,
};
use lvslab_core::vrrp::{
    advert_frame, parse_advert_frame, Advert, VrrpConfig, VrrpState, VrrpVersion,
    GARP_MASTER_REPEAT,
};
use lvslab_core::wire::{self, Ipv4Cidr, MacAddr, Parsed};
use lvslab_core::{ipvsadm, ConnState, ForwardMethod, Ipvs, IpvsConfig};
use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

const ROUTER_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0x01, 0x01]);
const D_MAC: [MacAddr; 2] = [
    MacAddr([0x02, 0, 0, 0, 0x02, 0x02]),
    MacAddr([0x02, 0, 0, 0, 0x02, 0x04]),
];
const RS_MAC: [MacAddr; 2] = [
    MacAddr([0x02, 0, 0, 0, 0x03, 0x01]),
    MacAddr([0x02, 0, 0, 0, 0x03, 0x03]),
];
const GW: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);
const DIP: [Ipv4Addr; 2] = [
    Ipv4Addr::new(192, 168, 1, 202),
    Ipv4Addr::new(192, 168, 1, 204),
];
const RIP: [Ipv4Addr; 2] = [
    Ipv4Addr::new(192, 168, 1, 201),
    Ipv4Addr::new(192, 168, 1, 203),
];
const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 250);
const CIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
const CPORT: u16 = 40000;
const VRID: u8 = 51;
const SYNC_ID: u8 = 51;
const PRIO: [u8; 2] = [150, 100];
const ADVERT_INT: Duration = Duration::from_secs(1);
/// The wire's timer round: each alive director is polled this often.
const STEP: Duration = Duration::from_millis(1);

/// RFC 3768 Master_Down_Interval of a v2 router: 3 × advert_int + (256 - priority)/256 s.
fn master_down(priority: u8) -> Duration {
    3 * ADVERT_INT + Duration::from_secs(1) * u32::from(256 - u16::from(priority)) / 256
}

/// RFC 3768 Skew_Time of a v2 router.
fn skew(priority: u8) -> Duration {
    Duration::from_secs(1) * u32::from(256 - u16::from(priority)) / 256
}

fn director(i: usize) -> Director {
    let ipvs = Ipvs::new(IpvsConfig::default());
    let cfg = DirectorConfig {
        interfaces: vec![Interface {
            name: "eth0".into(),
            mac: D_MAC[i],
            addrs: vec![Ipv4Cidr::new(DIP[i], 24)],
            mtu: 1500,
            addrs6: vec![],
            answers_vip_arp: true,
        }],
        routes: vec![Route {
            dest: Ipv4Cidr::new(Ipv4Addr::UNSPECIFIED, 0),
            via: GW,
        }],
        routes6: vec![],
    };
    let mut d = Director::new(cfg, ipvs).unwrap();
    // Through Director::apply, so the VIPs the director answers for follow the table.
    for l in [
        "-A -t 192.168.1.250:80 -s rr",
        "-a -t 192.168.1.250:80 -r 192.168.1.201:80 -g -w 1",
        "-a -t 192.168.1.250:80 -r 192.168.1.203:80 -g -w 1",
    ] {
        d.apply(Duration::ZERO, ipvsadm::parse(l).unwrap()).unwrap();
    }
    d
}

/// Who put a frame on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sender {
    Director(usize),
    Router,
}

struct Lan {
    now: Duration,
    d: [Director; 2],
    alive: [bool; 2],
    /// Frames that reached the router, with the director that sent them.
    router: Vec<(usize, Vec<u8>)>,
    /// Frames that reached a real server, with the director that sent them.
    servers: Vec<(usize, Vec<u8>)>,
    /// The router's neighbour entry for the VIP.
    vip_mac: Option<MacAddr>,
    /// When each director's last VRRP advert went out on the wire.
    last_advert: [Option<Duration>; 2],
}

impl Lan {
    /// Both directors up, each joined to the pair as BACKUP at time zero.
    fn new(sync_id: Option<u8>) -> Lan {
        let mut lan = Lan {
            now: Duration::ZERO,
            d: [director(0), director(1)],
            alive: [true, true],
            router: Vec::new(),
            servers: Vec::new(),
            vip_mac: None,
            last_advert: [None, None],
        };
        for i in 0..2 {
            let inst = HaInstance {
                iface: IfaceId(0),
                vrrp: VrrpConfig {
                    vrid: VRID,
                    priority: PRIO[i],
                    advert_int: ADVERT_INT,
                    version: VrrpVersion::V2,
                    preempt: true,
                    vips: vec![VIP],
                    src: DIP[i],
                },
                sync_id,
            };
            let tx = lan.d[i].add_ha(Duration::ZERO, inst).unwrap();
            lan.send(i, tx);
        }
        lan
    }

    fn state(&self, i: usize) -> VrrpState {
        self.d[i].ha_status()[0].vrrp.state
    }

    fn masters(&self) -> Vec<usize> {
        (0..2)
            .filter(|&i| self.state(i) == VrrpState::Master)
            .collect()
    }

    /// When director `i` last entered `to`.
    fn entered(&self, i: usize, to: VrrpState) -> Option<Duration> {
        self.d[i]
            .ha_events()
            .filter(|e| e.to == to)
            .map(|e| e.at)
            .last()
    }

    /// Director `i`'s output frames go on the wire.
    fn send(&mut self, i: usize, tx: Vec<(IfaceId, Vec<u8>)>) {
        let mut q = VecDeque::new();
        for (_, f) in tx {
            self.wire(Sender::Director(i), f, &mut q);
        }
        self.run_queue(q);
    }

    /// A frame from the router (to a director's MAC, or broadcast).
    fn router_sends(&mut self, frame: Vec<u8>) {
        let mut q = VecDeque::new();
        self.wire(Sender::Router, frame, &mut q);
        self.run_queue(q);
    }

    /// Hand queued frames to their directors until nobody has anything more to say.
    fn run_queue(&mut self, mut q: VecDeque<(usize, Vec<u8>)>) {
        while let Some((to, f)) = q.pop_front() {
            if !self.alive[to] {
                continue;
            }
            let tx = self.d[to].handle_frame(self.now, IfaceId(0), &f);
            for (_, out) in tx {
                self.wire(Sender::Director(to), out, &mut q);
            }
        }
    }

    /// One frame on the LAN: a learning switch floods broadcast and multicast and sends
    /// unicast to its owner. The router and the real servers answer ARP for themselves.
    fn wire(&mut self, from: Sender, f: Vec<u8>, q: &mut VecDeque<(usize, Vec<u8>)>) {
        if let Sender::Director(i) = from {
            if !self.alive[i] {
                return;
            }
            if matches!(parse_advert_frame(&f), Some(Ok(_))) {
                self.last_advert[i] = Some(self.now);
            }
        }
        let dst = MacAddr(f[0..6].try_into().unwrap());
        let flood = dst.0[0] & 1 == 1;
        for (j, mac) in D_MAC.iter().enumerate() {
            if from != Sender::Director(j) && (flood || dst == *mac) {
                q.push_back((j, f.clone()));
            }
        }
        let Sender::Director(i) = from else { return };
        if dst == ROUTER_MAC || flood {
            if let Ok(Parsed::Arp { arp, .. }) = wire::parse(&f) {
                let sender = Ipv4Addr::from(arp.sender_ipv4);
                let target = Ipv4Addr::from(arp.target_ipv4);
                if sender == VIP {
                    // An ARP reply for the VIP or a gratuitous ARP: the router's entry moves.
                    self.vip_mac = Some(MacAddr(arp.sender_mac));
                    self.router.push((i, f.clone()));
                } else if arp.operation == ArpOperation::REQUEST {
                    let owner = if target == GW {
                        Some(ROUTER_MAC)
                    } else {
                        RIP.iter().position(|&r| r == target).map(|k| RS_MAC[k])
                    };
                    if let Some(mac) = owner {
                        let reply = ArpEthIpv4Packet {
                            operation: ArpOperation::REPLY,
                            sender_mac: mac.0,
                            sender_ipv4: arp.target_ipv4,
                            target_mac: arp.sender_mac,
                            target_ipv4: arp.sender_ipv4,
                        };
                        q.push_back((i, wire::arp_frame(MacAddr(arp.sender_mac), mac, &reply)));
                    }
                }
            } else if dst == ROUTER_MAC {
                self.router.push((i, f));
            }
        } else if RS_MAC.contains(&dst) {
            self.servers.push((i, f));
        }
    }

    /// Advance simulated time to `end`, polling every alive director each STEP.
    fn run_until(&mut self, end: Duration) {
        while self.now < end {
            self.now += STEP;
            for i in 0..2 {
                if self.alive[i] {
                    let tx = self.d[i].poll(self.now);
                    self.send(i, tx);
                }
            }
        }
    }

    fn run_for(&mut self, d: Duration) {
        self.run_until(self.now + d);
    }

    /// Run until the election is over: director 0 (priority 150) is MASTER.
    fn elect(&mut self) {
        self.run_until(master_down(PRIO[0]) + 10 * STEP);
        assert_eq!(self.masters(), vec![0], "director 0 wins the election");
        assert_eq!(
            self.vip_mac,
            Some(D_MAC[0]),
            "the router learned the master"
        );
    }

    /// The router sends a client's segment towards the VIP, to the MAC it has for it.
    fn client(&mut self, seg: &Segment) -> Vec<u8> {
        let mac = self.vip_mac.expect("the router knows the VIP's MAC");
        let f = seg.frame(mac);
        self.router_sends(f.clone());
        f
    }

    /// The router asks who has the VIP; the ARP replies that came back, by director.
    fn who_has_vip(&mut self) -> Vec<(usize, ArpEthIpv4Packet)> {
        let before = self.router.len();
        let req = ArpEthIpv4Packet {
            operation: ArpOperation::REQUEST,
            sender_mac: ROUTER_MAC.0,
            sender_ipv4: GW.octets(),
            target_mac: [0; 6],
            target_ipv4: VIP.octets(),
        };
        self.router_sends(wire::arp_frame(MacAddr::BROADCAST, ROUTER_MAC, &req));
        self.router[before..]
            .iter()
            .filter_map(|(i, f)| match wire::parse(f) {
                Ok(Parsed::Arp { arp, .. }) if arp.operation == ArpOperation::REPLY => {
                    Some((*i, arp))
                }
                _ => None,
            })
            .collect()
    }
}

/// A client TCP segment to VIP:80.
#[derive(Clone)]
struct Segment {
    flags: &'static str,
    seq: u32,
    ack: u32,
    payload: &'static [u8],
}

impl Segment {
    fn frame(&self, dst_mac: MacAddr) -> Vec<u8> {
        let mut b = PacketBuilder::ethernet2(ROUTER_MAC.0, dst_mac.0)
            .ipv4(CIP.octets(), VIP.octets(), 63)
            .tcp(CPORT, 80, self.seq, 64240);
        for c in self.flags.chars() {
            b = match c {
                'S' => b.syn(),
                'A' => b.ack(self.ack),
                'P' => b.psh(),
                _ => panic!("flag {c}"),
            };
        }
        let mut out = Vec::new();
        b.write(&mut out, self.payload).unwrap();
        out
    }
}

const REQUEST: &[u8] = b"GET / HTTP/1.0\r\n\r\n";
const MORE: &[u8] = b"X-Next: 1\r\n";
/// The server's ISN + 1 plus the 100 bytes it answered (straight to the client, DR).
const SERVER_NEXT: u32 = 5001 + 100;

fn syn() -> Segment {
    Segment {
        flags: "S",
        seq: 1000,
        ack: 0,
        payload: &[],
    }
}

fn ack() -> Segment {
    Segment {
        flags: "A",
        seq: 1001,
        ack: 5001,
        payload: &[],
    }
}

fn data() -> Segment {
    Segment {
        flags: "PA",
        seq: 1001,
        ack: 5001,
        payload: REQUEST,
    }
}

/// The segment the client sends after the failover, in the middle of the flow.
fn next_data() -> Segment {
    Segment {
        flags: "PA",
        seq: 1001 + REQUEST.len() as u32,
        ack: SERVER_NEXT,
        payload: MORE,
    }
}

fn rs_of(mac: MacAddr) -> usize {
    RS_MAC
        .iter()
        .position(|&m| m == mac)
        .unwrap_or_else(|| panic!("{mac} is no real server"))
}

/// The IP packet of a frame, from its header to its end, with TTL and header checksum
/// blanked: what DR must leave alone.
fn ip_but_ttl(frame: &[u8]) -> Vec<u8> {
    let mut ip = frame[14..].to_vec();
    ip[8] = 0;
    ip[10] = 0;
    ip[11] = 0;
    ip
}

fn vip_sock() -> SocketAddr {
    SocketAddr::new(VIP.into(), 80)
}

fn client_sock() -> SocketAddr {
    SocketAddr::new(CIP.into(), CPORT)
}

/// The master forwards the handshake and the request; returns the real server it picked.
fn open_flow(lan: &mut Lan) -> usize {
    let before = lan.servers.len();
    lan.client(&syn());
    lan.client(&ack());
    lan.client(&data());
    let got: Vec<_> = lan.servers[before..].to_vec();
    assert_eq!(got.len(), 3, "the master forwards SYN, ACK and data");
    assert!(got.iter().all(|(i, _)| *i == 0), "only the master forwards");
    let rs = rs_of(MacAddr(got[0].1[0..6].try_into().unwrap()));
    for (_, f) in &got {
        assert_eq!(rs_of(MacAddr(f[0..6].try_into().unwrap())), rs);
    }
    let conns = lan.d[0].ipvs().conns(lan.now);
    assert_eq!(conns.len(), 1, "{conns:?}");
    assert_eq!(conns[0].dest, SocketAddr::new(RIP[rs].into(), 80));
    rs
}

// ---------------------------------------------------------------------------------------

#[test]
fn election_leaves_one_master_that_alone_answers_arp_and_balances() {
    let mut lan = Lan::new(Some(SYNC_ID));
    assert_eq!(
        (lan.state(0), lan.state(1)),
        (VrrpState::Backup, VrrpState::Backup),
        "both start as BACKUP"
    );
    // Before the higher priority's Master_Down_Interval nobody owns the VIP.
    lan.run_until(master_down(PRIO[0]) - STEP);
    assert!(lan.masters().is_empty());
    assert!(lan.who_has_vip().is_empty(), "no ARP answer from a BACKUP");

    lan.run_for(20 * STEP);
    assert_eq!(
        lan.masters(),
        vec![0],
        "exactly one MASTER, the higher priority"
    );
    let at = lan.entered(0, VrrpState::Master).unwrap();
    assert!(
        at >= master_down(PRIO[0]) && at <= master_down(PRIO[0]) + STEP,
        "MASTER at {at:?}, Master_Down_Interval is {:?}",
        master_down(PRIO[0])
    );
    assert_eq!(lan.entered(1, VrrpState::Master), None);
    let st = &lan.d[1].ha_status()[0];
    assert_eq!(st.vrrp.master, Some(DIP[0]), "the backup hears the master");
    assert_eq!(st.vrrp.master_priority, Some(PRIO[0]));

    // Stays that way while the master advertises.
    lan.run_for(Duration::from_secs(10));
    assert_eq!(lan.masters(), vec![0]);

    let replies = lan.who_has_vip();
    assert_eq!(replies.len(), 1, "only the MASTER answers: {replies:?}");
    let (i, arp) = &replies[0];
    assert_eq!(*i, 0);
    assert_eq!(arp.sender_mac, D_MAC[0].0);
    assert_eq!(arp.sender_ipv4, VIP.octets());
    assert_eq!(arp.target_mac, ROUTER_MAC.0);

    // A SYN to the VIP at the BACKUP's MAC (a stale router entry) is not balanced.
    let before = lan.servers.len();
    lan.router_sends(syn().frame(D_MAC[1]));
    assert_eq!(lan.d[1].stats().standby, 1);
    assert_eq!(lan.d[1].stats().forwarded, 0);
    assert!(lan.d[1].ipvs().conns(lan.now).is_empty());
    assert_eq!(lan.servers.len(), before, "nothing reached a real server");
    assert_eq!(lan.d[0].stats().standby, 0);
    // The same SYN at the MASTER's MAC is.
    lan.router_sends(syn().frame(D_MAC[0]));
    assert_eq!(lan.d[0].stats().forwarded, 1);
    assert_eq!(lan.servers.len(), before + 1);
}

#[test]
fn the_master_syncs_a_flow_at_its_third_packet() {
    let mut lan = Lan::new(Some(SYNC_ID));
    lan.elect();
    lan.client(&syn());
    lan.client(&ack());
    lan.run_for(10 * STEP);
    assert_eq!(
        lan.d[0].sync_counters().sent,
        0,
        "not synced before sync_threshold's 3rd packet"
    );
    assert!(lan.d[1].ipvs().conns(lan.now).is_empty());

    lan.client(&data());
    let conns = lan.d[0].ipvs().conns(lan.now);
    assert_eq!(conns.len(), 1);
    let rs = RIP
        .iter()
        .position(|r| SocketAddr::new((*r).into(), 80) == conns[0].dest)
        .unwrap();
    assert_eq!(lan.servers.len(), 3);
    assert!(lan
        .servers
        .iter()
        .all(|(i, f)| *i == 0 && f[0..6] == RS_MAC[rs].0));

    // The next timer round sends it.
    lan.run_for(STEP);
    let m: SyncCounters = lan.d[0].sync_counters();
    let b: SyncCounters = lan.d[1].sync_counters();
    assert_eq!((m.sent, m.messages_sent), (1, 1), "{m:?}");
    assert_eq!((b.applied, b.ignored, b.bad), (m.sent, 0, 0), "{b:?}");
    let conns = lan.d[1].ipvs().conns(lan.now);
    assert_eq!(conns.len(), 1, "{conns:?}");
    let c = &conns[0];
    assert_eq!(c.client, client_sock());
    assert_eq!(c.vip, vip_sock());
    assert_eq!(c.dest, SocketAddr::new(RIP[rs].into(), 80));
    assert_eq!(c.method, ForwardMethod::Dr);
    assert_eq!(c.state, ConnState::Established);
    assert_eq!(lan.d[1].stats().forwarded, 0, "the backup only listens");
}

#[test]
fn after_the_master_dies_the_backup_carries_the_synced_flow_to_the_same_server() {
    let mut lan = Lan::new(Some(SYNC_ID));
    lan.elect();
    let rs = open_flow(&mut lan);
    let master_frame = lan.servers.last().unwrap().1.clone();
    lan.run_for(STEP);
    assert_eq!(lan.d[1].sync_counters().applied, 1);

    // The master dies: its frames stop, its timers stop.
    lan.alive[0] = false;
    let last = lan.last_advert[0].unwrap();
    let router_before = lan.router.len();
    lan.run_until(last + master_down(PRIO[1]) - STEP);
    assert_eq!(
        lan.state(1),
        VrrpState::Backup,
        "not before Master_Down_Interval"
    );
    lan.run_for(10 * STEP);
    assert_eq!(lan.state(1), VrrpState::Master);
    let at = lan.entered(1, VrrpState::Master).unwrap();
    assert!(
        at >= last + master_down(PRIO[1]) && at <= last + master_down(PRIO[1]) + STEP,
        "MASTER at {at:?}, last advert {last:?}"
    );

    // It announces the VIP with its own MAC.
    let garps: Vec<_> = lan.router[router_before..]
        .iter()
        .filter(|(i, _)| *i == 1)
        .map(|(_, f)| f.clone())
        .collect();
    assert_eq!(garps.len(), GARP_MASTER_REPEAT, "one burst at takeover");
    for f in &garps {
        assert_eq!(f[0..6], MacAddr::BROADCAST.0, "to everyone");
        assert_eq!(f[6..12], D_MAC[1].0, "from the new master");
        let Ok(Parsed::Arp { arp, .. }) = wire::parse(f) else {
            panic!("not ARP")
        };
        assert_eq!(arp.operation, ArpOperation::REQUEST);
        assert_eq!(arp.sender_mac, D_MAC[1].0);
        assert_eq!(
            (arp.sender_ipv4, arp.target_ipv4),
            (VIP.octets(), VIP.octets())
        );
    }
    assert_eq!(lan.vip_mac, Some(D_MAC[1]), "the router follows the GARP");

    // The client's next segment of the synced flow: no SYN, same real server.
    let sent = lan.client(&next_data());
    let (i, fwd) = lan.servers.last().unwrap().clone();
    assert_eq!(i, 1, "the new master forwards it");
    assert_eq!(
        fwd[0..6],
        RS_MAC[rs].0,
        "to the real server the master chose"
    );
    assert_eq!(fwd[0..6], master_frame[0..6]);
    assert_eq!(fwd[6..12], D_MAC[1].0);
    assert_eq!(fwd.len(), sent.len());
    // DR: only the MAC header changes (and the TTL with its checksum, as for any hop).
    assert_eq!(ip_but_ttl(&fwd), ip_but_ttl(&sent));
    assert_eq!(fwd[14 + 8], sent[14 + 8] - 1);
    assert_eq!(lan.d[1].stats().resets, 0);
    assert_eq!(lan.d[1].stats().forwarded, 1);
}

#[test]
fn without_sync_the_new_master_resets_the_orphaned_flow() {
    let mut lan = Lan::new(None);
    lan.elect();
    open_flow(&mut lan);
    lan.run_for(STEP);
    assert_eq!(lan.d[0].sync_counters(), SyncCounters::default());
    assert_eq!(lan.d[1].sync_counters(), SyncCounters::default());
    assert!(lan.d[1].ipvs().conns(lan.now).is_empty());

    lan.alive[0] = false;
    let last = lan.last_advert[0].unwrap();
    lan.run_until(last + master_down(PRIO[1]) + 10 * STEP);
    assert_eq!(lan.state(1), VrrpState::Master);
    assert_eq!(lan.vip_mac, Some(D_MAC[1]));

    let servers_before = lan.servers.len();
    let router_before = lan.router.len();
    let seg = next_data();
    lan.client(&seg);
    assert_eq!(lan.servers.len(), servers_before, "nothing forwarded");
    assert_eq!(lan.d[1].stats().resets, 1);
    let rsts: Vec<_> = lan.router[router_before..]
        .iter()
        .filter(|(i, _)| *i == 1)
        .collect();
    assert_eq!(rsts.len(), 1, "{}", rsts.len());
    let f = &rsts[0].1;
    assert_eq!(
        f[0..6],
        ROUTER_MAC.0,
        "back towards the client, via the router"
    );
    assert_eq!(f[6..12], D_MAC[1].0);
    let p = SlicedPacket::from_ethernet(f).unwrap();
    let ip = match p.net {
        Some(etherparse::NetSlice::Ipv4(ip)) => ip,
        other => panic!("{other:?}"),
    };
    assert_eq!(ip.header().source_addr(), VIP);
    assert_eq!(ip.header().destination_addr(), CIP);
    let Some(TransportSlice::Tcp(t)) = p.transport else {
        panic!("not TCP")
    };
    assert_eq!((t.source_port(), t.destination_port()), (80, CPORT));
    assert!(t.rst(), "RST");
    assert!(
        !(t.ack() || t.syn() || t.fin() || t.psh()),
        "a bare RST for a segment that carried an ACK"
    );
    assert_eq!(t.sequence_number(), seg.ack, "seq = the segment's ack");
    let sum = t
        .to_header()
        .calc_checksum_ipv4(&ip.header().to_header(), t.payload())
        .unwrap();
    assert_eq!(t.checksum(), sum, "TCP checksum");
}

#[test]
fn failover_hands_the_vip_over_within_skew_time_and_stays_handed_over() {
    let mut lan = Lan::new(Some(SYNC_ID));
    lan.elect();
    lan.run_for(Duration::from_millis(2500));
    let t = lan.now;
    let tx = lan.d[0].failover(t);
    assert_eq!(
        lan.state(0),
        VrrpState::Backup,
        "the old master steps down at once"
    );
    let adverts: Vec<Advert> = tx
        .iter()
        .filter_map(|(_, f)| parse_advert_frame(f))
        .map(|r| r.unwrap().1)
        .collect();
    assert_eq!(adverts.len(), 1, "one advert");
    assert_eq!(adverts[0].priority, 0, "priority 0: the master gives up");
    assert_eq!(adverts[0].vrid, VRID);
    lan.send(0, tx);

    lan.run_until(t + skew(PRIO[1]) + 10 * STEP);
    assert_eq!(lan.state(1), VrrpState::Master);
    let at = lan.entered(1, VrrpState::Master).unwrap();
    assert!(
        at > t && at <= t + skew(PRIO[1]) + STEP,
        "MASTER at {at:?}, failover at {t:?}, skew {:?}",
        skew(PRIO[1])
    );
    let reason = &lan.d[1].ha_events().last().unwrap().reason;
    assert!(reason.contains("priority 0"), "{reason}");
    assert_eq!(lan.vip_mac, Some(D_MAC[1]));

    // The old master has the higher priority but does not preempt back while it hears
    // the new one.
    lan.run_for(Duration::from_secs(30));
    assert_eq!(lan.masters(), vec![1]);
    assert!(
        lan.d[0]
            .ha_events()
            .all(|e| e.at <= t || e.to != VrrpState::Master),
        "the old master never took the VIP back"
    );
    let st = &lan.d[0].ha_status()[0];
    assert_eq!(st.vrrp.master, Some(DIP[1]));
    let replies = lan.who_has_vip();
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].0, 1, "only the new master answers ARP");
    assert_eq!(replies[0].1.sender_mac, D_MAC[1].0);
}

#[test]
fn an_advert_with_a_bad_checksum_is_counted_and_changes_nothing() {
    let mut lan = Lan::new(Some(SYNC_ID));
    lan.elect();
    lan.run_for(Duration::from_millis(1500));
    let intruder = MacAddr([0x02, 0, 0, 0, 0x02, 0x09]);
    let src = Ipv4Addr::new(192, 168, 1, 209);
    let higher = Advert {
        version: VrrpVersion::V2,
        vrid: VRID,
        priority: 254,
        advert_int: ADVERT_INT,
        addrs: vec![VIP],
    };
    let good = advert_frame(intruder, src, &higher);
    let mut bad = good.clone();
    // The VRRP checksum field (the IPv4 header and its checksum stay intact).
    bad[14 + 20 + 6] ^= 0x5a;
    assert!(matches!(
        parse_advert_frame(&bad),
        Some(Err(lvslab_core::vrrp::VrrpError::BadChecksum(_)))
    ));
    // A priority-0 advert in the master's name with a bad checksum: if the backup took
    // it, it would be MASTER after its skew time.
    let mut leave = advert_frame(
        D_MAC[0],
        DIP[0],
        &Advert {
            priority: 0,
            ..higher.clone()
        },
    );
    leave[14 + 20 + 7] ^= 0x01;

    let status = [lan.d[0].ha_status(), lan.d[1].ha_status()];
    let stats = [lan.d[0].stats().clone(), lan.d[1].stats().clone()];
    for i in 0..2 {
        assert!(lan.d[i].handle_frame(lan.now, IfaceId(0), &bad).is_empty());
    }
    assert!(lan.d[1]
        .handle_frame(lan.now, IfaceId(0), &leave)
        .is_empty());
    for (i, before) in status.iter().enumerate() {
        assert_eq!(&lan.d[i].ha_status(), before, "director {i}");
    }
    assert_eq!(lan.d[0].stats().vrrp_bad, stats[0].vrrp_bad + 1);
    assert_eq!(lan.d[1].stats().vrrp_bad, stats[1].vrrp_bad + 2);
    lan.run_for(skew(PRIO[1]) + 10 * STEP);
    assert_eq!(lan.masters(), vec![0], "nothing changed");
    assert_eq!(
        lan.d[1].ha_status()[0].vrrp.transitions,
        status[1][0].vrrp.transitions
    );

    // The same advert with its checksum intact does take the master down: the check above
    // is what kept it.
    lan.d[0].handle_frame(lan.now, IfaceId(0), &good);
    assert_eq!(lan.state(0), VrrpState::Backup);
    assert_eq!(lan.d[0].ha_status()[0].vrrp.master, Some(src));
}
