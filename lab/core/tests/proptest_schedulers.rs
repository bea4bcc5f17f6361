//! Property tests: every pick `Ipvs` makes equals the pick of a slow reference model.
//!
//! The model is a direct transcription of the kernel's ip_vs_<sched>.c (and the dest
//! accounting of ip_vs_conn.c / ip_vs_ctl.c) over a plain `Vec` of addresses in list order,
//! newest first. Cursors and caches name servers by address, tables are rebuilt from scratch
//! whenever the kernel rebuilds them, and nothing is cached for speed.
//!
//! Random sequences add, edit (weight, thresholds) and delete real servers, open conns, move
//! them through ESTABLISHED, FIN and RST, and let time pass so conns expire. After every step
//! the picks and each server's active/inactive/overload state must agree.
//!
//! The default is 64 cases per scheduler so the suite stays fast; for a deeper run:
//! `PROPTEST_CASES=5000 cargo test -p lvslab-core --release --test proptest_schedulers`.
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use lvslab_core::{
    ipvsadm, FlowPacket, InVerdict, Ipvs, IpvsConfig, Protocol, Scheduler, TcpFlags, Timeouts,
};
use proptest::prelude::*;
use rand_core::{RngCore, SeedableRng};
use rand_pcg::Pcg32;

const SEED: u64 = 0x5eed_2024;
const SERVERS: u8 = 6;

fn server(i: u8) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(10, 1, 0, 1 + i % SERVERS), 80))
}

/// One step of a random run.
#[derive(Debug, Clone)]
enum Op {
    Add { s: u8, w: u32, u: u32, l: u32 },
    Edit { s: u8, w: u32, u: u32, l: u32 },
    Del { s: u8 },
    Open { src: u8, dst: u8 },
    Ack { k: usize },
    Fin { k: usize },
    Rst { k: usize },
    Advance { ms: u64 },
}

fn thresholds() -> impl Strategy<Value = (u32, u32)> {
    (0u32..4).prop_flat_map(|u| (Just(u), 0..=u.max(1)))
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..SERVERS, 0u32..6, thresholds()).prop_map(|(s, w, (u, l))| Op::Add { s, w, u, l }),
        2 => (0..SERVERS, 0u32..6, thresholds()).prop_map(|(s, w, (u, l))| Op::Edit { s, w, u, l }),
        1 => (0..SERVERS).prop_map(|s| Op::Del { s }),
        8 => (0u8..8, 0u8..4).prop_map(|(src, dst)| Op::Open { src, dst }),
        3 => any::<usize>().prop_map(|k| Op::Ack { k }),
        2 => any::<usize>().prop_map(|k| Op::Fin { k }),
        1 => any::<usize>().prop_map(|k| Op::Rst { k }),
        1 => prop_oneof![0u64..20_000, 0u64..200_000].prop_map(|ms| Op::Advance { ms }),
    ]
}

/// struct ip_vs_dest, only what scheduling and accounting read.
#[derive(Debug, Clone)]
struct MDest {
    weight: u32,
    last_weight: u32,
    u: u32,
    l: u32,
    active: u32,
    inactive: u32,
    overloaded: bool,
}

/// The model's own TCP states, named and ordered as the columns of tcp_states[] in the
/// kernel's ip_vs_proto_tcp.c (sNO, sES, sSS, sSR, sFW, sTW, sCL, sCW, sLA, sLI, sSA), so the
/// model does not lean on the implementation's state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tcp {
    No,
    Es,
    Ss,
    Sr,
    Fw,
    Tw,
    Cl,
    Cw,
    La,
    Li,
    #[expect(
        dead_code,
        reason = "sSA names the last column; no INPUT transition leads there"
    )]
    Sa,
}

/// The INPUT half of tcp_states[] (client to director; the model's conns see nothing else):
/// rows syn, fin, ack, rst as tcp_state_idx() numbers them, columns in `Tcp` order.
const TCP_INPUT: [[Tcp; 11]; 4] = {
    use Tcp::*;
    [
        /* syn */ [Sr, Es, Es, Sr, Sr, Sr, Sr, Sr, Sr, Sr, Sr],
        /* fin */ [Cl, Cw, Ss, Tw, Tw, Tw, Cl, Cw, La, Li, Tw],
        /* ack */ [Cl, Es, Ss, Es, Fw, Tw, Cl, Cw, Cl, Li, Es],
        /* rst */ [Cl, Cl, Cl, Sr, Cl, Cl, Cl, Cl, La, Li, Sr],
    ]
};

/// set_tcp_state() for a client packet: tcp_state_idx() tries rst, syn, fin, ack in that
/// order; a segment with none of them closes the conn.
fn tcp_input(state: Tcp, f: TcpFlags) -> Tcp {
    let row = match (f.rst, f.syn, f.fin, f.ack) {
        (true, ..) => 3,
        (_, true, ..) => 0,
        (_, _, true, _) => 1,
        (_, _, _, true) => 2,
        _ => return Tcp::Cl,
    };
    TCP_INPUT[row][state as usize]
}

/// tcp_timeouts[] of ip_vs_proto_tcp.c, ESTABLISHED and FIN_WAIT as ipvsadm --set left them.
fn tcp_timeout(state: Tcp, t: &Timeouts) -> Duration {
    let secs = match state {
        Tcp::Es => return t.tcp,
        Tcp::Fw => return t.tcp_fin,
        Tcp::No => 2,
        Tcp::Ss | Tcp::Tw | Tcp::Li | Tcp::Sa => 2 * 60,
        Tcp::Sr | Tcp::Cw => 60,
        Tcp::Cl => 10,
        Tcp::La => 30,
    };
    Duration::from_secs(secs)
}

#[derive(Debug, Clone)]
struct MConn {
    client: SocketAddr,
    dst: SocketAddr,
    dest: SocketAddr,
    state: Tcp,
    expires_ms: u64,
}

/// The reference model of one fwmark service.
struct Model {
    kind: Scheduler,
    fallback: bool,
    port: bool,
    timeouts: Timeouts,
    now_ms: u64,
    /// Every dest ever added; a deleted one keeps its counters (the kernel's trash).
    dests: HashMap<SocketAddr, MDest>,
    /// svc->destinations, newest first.
    list: Vec<SocketAddr>,
    conns: Vec<MConn>,
    /// rr's sched_data and wrr's mark->cl: None is the list head.
    cursor: Option<SocketAddr>,
    cw: i64,
    mw: i64,
    di: i64,
    /// dh/sh buckets or the mh lookup table.
    table: Vec<Option<SocketAddr>>,
    /// lblc: daddr -> dest.
    lblc: HashMap<IpAddr, SocketAddr>,
    /// lblcr: daddr -> (set newest first, lastmod ms).
    lblcr: HashMap<IpAddr, (Vec<SocketAddr>, u64)>,
    rng: Pcg32,
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn hash_32(v: u32, bits: u32) -> u32 {
    v.wrapping_mul(0x61C8_8647) >> (32 - bits)
}

fn fold(ip: IpAddr) -> u32 {
    match ip {
        IpAddr::V4(a) => u32::from(a),
        IpAddr::V6(_) => unreachable!("the model runs IPv4 only"),
    }
}

/// lib/siphash.c hsiphash() on a 64-bit kernel (SipHash-1-3) for a 4-byte input.
fn hsiphash(v: u32, key: (u64, u64)) -> u32 {
    let mut s = [
        0x736f_6d65_7073_6575u64 ^ key.0,
        0x646f_7261_6e64_6f6du64 ^ key.1,
        0x6c79_6765_6e65_7261u64 ^ key.0,
        0x7465_6462_7974_6573u64 ^ key.1,
    ];
    let round = |s: &mut [u64; 4]| {
        s[0] = s[0].wrapping_add(s[1]);
        s[1] = s[1].rotate_left(13) ^ s[0];
        s[0] = s[0].rotate_left(32);
        s[2] = s[2].wrapping_add(s[3]);
        s[3] = s[3].rotate_left(16) ^ s[2];
        s[0] = s[0].wrapping_add(s[3]);
        s[3] = s[3].rotate_left(21) ^ s[0];
        s[2] = s[2].wrapping_add(s[1]);
        s[1] = s[1].rotate_left(17) ^ s[2];
        s[2] = s[2].rotate_left(32);
    };
    let b = (4u64 << 56) | u64::from(v);
    s[3] ^= b;
    round(&mut s);
    s[0] ^= b;
    s[2] ^= 0xff;
    for _ in 0..3 {
        round(&mut s);
    }
    (s[0] ^ s[1] ^ s[2] ^ s[3]) as u32
}

#[test]
fn model_hsiphash_matches_the_siphash13_reference() {
    // SipHash-1-3, key 00..0f, message 00 01 02 03: cf75576088d38328 from Rust's libcore
    // SipHasher13 and an independent Python transcription of the paper; hsiphash keeps the
    // low 32 bits.
    let key = (0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908);
    assert_eq!(hsiphash(u32::from_le_bytes([0, 1, 2, 3]), key), 0x88d3_8328);
}

const MH_SIZE: u32 = 4093;
const MH_KEY1: (u64, u64) = (2_654_435_761, 2_654_435_761);
const MH_KEY2: (u64, u64) = (2_654_446_892, 2_654_446_892);

fn mh_hashkey(addr: IpAddr, port: u16, key: (u64, u64), offset: u32) -> u32 {
    hsiphash(
        offset
            .wrapping_add(u32::from(port))
            .wrapping_add(fold(addr)),
        key,
    )
}

impl Model {
    fn new(kind: Scheduler, fallback: bool, port: bool) -> Self {
        let mut m = Model {
            kind,
            fallback,
            port,
            timeouts: Timeouts::default(),
            now_ms: 0,
            dests: HashMap::new(),
            list: Vec::new(),
            conns: Vec::new(),
            cursor: None,
            cw: 0,
            mw: 0,
            di: 1,
            table: Vec::new(),
            lblc: HashMap::new(),
            lblcr: HashMap::new(),
            rng: Pcg32::seed_from_u64(SEED),
        };
        // init_service
        m.wrr_marks();
        m.cw = m.mw;
        m.rebuild();
        m
    }

    fn d(&self, a: SocketAddr) -> &MDest {
        &self.dests[&a]
    }

    fn dests_in_list(&self) -> impl Iterator<Item = (SocketAddr, &MDest)> {
        self.list.iter().map(|&a| (a, self.d(a)))
    }

    fn overhead(d: &MDest) -> i64 {
        (i64::from(d.active) << 8) + i64::from(d.inactive)
    }

    // ---- ip_vs_ctl.c ----

    fn add(&mut self, a: SocketAddr, w: u32, u: u32, l: u32) -> bool {
        if self.list.contains(&a) {
            return false;
        }
        let d = self.dests.entry(a).or_insert(MDest {
            weight: w,
            last_weight: w,
            u,
            l,
            active: 0,
            inactive: 0,
            overloaded: false,
        });
        Self::update(d, w, u, l, true);
        self.list.insert(0, a);
        self.dest_changed(false);
        true
    }

    fn edit(&mut self, a: SocketAddr, w: u32, u: u32, l: u32) -> bool {
        if !self.list.contains(&a) {
            return false;
        }
        if let Some(d) = self.dests.get_mut(&a) {
            Self::update(d, w, u, l, false);
        }
        // dh has no upd_dest hook; rr, lc, ... have none either.
        if matches!(self.kind, Scheduler::Wrr | Scheduler::Sh | Scheduler::Mh) {
            self.dest_changed(false);
        }
        true
    }

    fn del(&mut self, a: SocketAddr) -> bool {
        let Some(idx) = self.list.iter().position(|&x| x == a) else {
            return false;
        };
        self.list.remove(idx);
        // ip_vs_rr_del_dest: a cursor on the deleted dest moves to its predecessor.
        if self.kind == Scheduler::Rr && self.cursor == Some(a) {
            self.cursor = idx.checked_sub(1).map(|i| self.list[i]);
        }
        if self.kind != Scheduler::Rr {
            self.dest_changed(true);
        }
        true
    }

    /// __ip_vs_update_dest.
    fn update(d: &mut MDest, w: u32, u: u32, l: u32, add: bool) {
        if u == 0 || u > d.u {
            d.overloaded = false;
        }
        if add || w != 0 {
            d.last_weight = w;
        }
        d.weight = w;
        d.u = u;
        d.l = l;
    }

    /// add_dest / del_dest / upd_dest hooks of the schedulers that have them.
    fn dest_changed(&mut self, _deleted: bool) {
        match self.kind {
            Scheduler::Wrr => {
                // ip_vs_wrr_dest_changed
                self.cursor = None;
                self.wrr_marks();
                if self.cw > self.mw || self.cw == 0 {
                    self.cw = self.mw;
                } else if self.di > 1 {
                    self.cw = (self.cw / self.di) * self.di + 1;
                }
            }
            Scheduler::Dh | Scheduler::Sh | Scheduler::Mh => self.rebuild(),
            _ => {}
        }
    }

    fn wrr_marks(&mut self) {
        let mut g = 0i64;
        let mut max = 0i64;
        for (_, d) in self.dests_in_list() {
            let w = i64::from(d.weight);
            if w > 0 {
                g = if g > 0 { gcd(w, g) } else { w };
            }
            max = max.max(w);
        }
        self.di = if g > 0 { g } else { 1 };
        self.mw = max - (self.di - 1);
    }

    fn rebuild(&mut self) {
        match self.kind {
            Scheduler::Dh => {
                // ip_vs_dh_reassign: one dest per bucket, round robin over the list.
                self.table = (0..256)
                    .map(|i| (!self.list.is_empty()).then(|| self.list[i % self.list.len()]))
                    .collect();
            }
            Scheduler::Sh => {
                // ip_vs_sh_reassign: weight-many buckets per dest before moving on.
                let mut t = Vec::new();
                let (mut p, mut count) = (0usize, 0u32);
                for _ in 0..256 {
                    if self.list.is_empty() {
                        t.push(None);
                        continue;
                    }
                    let a = self.list[p];
                    t.push(Some(a));
                    count += 1;
                    if count >= self.d(a).weight {
                        p = (p + 1) % self.list.len();
                        count = 0;
                    }
                }
                self.table = t;
            }
            Scheduler::Mh => self.mh_reassign(),
            _ => {}
        }
    }

    /// ip_vs_mh_gcd_weight, ip_vs_mh_shift_weight, ip_vs_mh_permutate, ip_vs_mh_populate.
    fn mh_reassign(&mut self) {
        if self.table.len() != MH_SIZE as usize {
            self.table = vec![None; MH_SIZE as usize];
        }
        let mut g = 0i64;
        for (_, d) in self.dests_in_list() {
            let w = i64::from(d.last_weight);
            if w > 0 {
                g = if g > 0 { gcd(w, g) } else { w };
            }
        }
        if g < 1 {
            self.table = vec![None; MH_SIZE as usize];
            return;
        }
        let max = self
            .dests_in_list()
            .map(|(_, d)| i64::from(d.last_weight))
            .max()
            .unwrap_or(0);
        let mw = max / g;
        let fls = 64 - i64::leading_zeros(mw) as i64;
        let rshift = (fls - 6).max(0);
        // (perm, skip, turns) per dest in list order.
        let mut setup: Vec<(u32, u32, i64)> = self
            .dests_in_list()
            .map(|(a, d)| {
                let offset = mh_hashkey(a.ip(), a.port(), MH_KEY1, 0) % MH_SIZE;
                let skip = mh_hashkey(a.ip(), a.port(), MH_KEY2, 0) % (MH_SIZE - 1) + 1;
                let lw = i64::from(d.last_weight);
                let t = (lw / g) >> rshift;
                (offset, skip, if t != 0 { t } else { i64::from(lw != 0) })
            })
            .collect();
        let mut taken = vec![false; MH_SIZE as usize];
        let mut n = 0u32;
        let mut dt_count = 0i64;
        'fill: while n < MH_SIZE {
            let mut i = 0;
            while i < self.list.len() {
                if setup[i].2 < 1 {
                    i += 1;
                    continue;
                }
                let mut c = setup[i].0;
                while taken[c as usize] {
                    setup[i].0 = (setup[i].0 + setup[i].1) % MH_SIZE;
                    c = setup[i].0;
                }
                taken[c as usize] = true;
                self.table[c as usize] = Some(self.list[i]);
                n += 1;
                if n == MH_SIZE {
                    break 'fill;
                }
                dt_count += 1;
                if dt_count >= setup[i].2 {
                    dt_count = 0;
                    i += 1;
                }
            }
        }
    }

    // ---- ip_vs_conn.c ----

    fn timeout(&self, s: Tcp) -> u64 {
        tcp_timeout(s, &self.timeouts).as_millis() as u64
    }

    /// ip_vs_bind_dest (a new conn starts inactive).
    fn bind(&mut self, a: SocketAddr) {
        let d = self.dests.get_mut(&a).expect("bound dest exists");
        d.inactive += 1;
        if d.u != 0 && d.active + d.inactive >= d.u {
            d.overloaded = true;
        }
    }

    /// ip_vs_unbind_dest.
    fn unbind(&mut self, a: SocketAddr, active: bool) {
        let d = self.dests.get_mut(&a).expect("bound dest exists");
        if active {
            d.active -= 1;
        } else {
            d.inactive -= 1;
        }
        let total = d.active + d.inactive;
        if d.l != 0 {
            if total < d.l {
                d.overloaded = false;
            }
        } else if d.u != 0 {
            if total * 4 < d.u * 3 {
                d.overloaded = false;
            }
        } else {
            d.overloaded = false;
        }
    }

    fn expire(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
        let (dead, live): (Vec<MConn>, Vec<MConn>) = std::mem::take(&mut self.conns)
            .into_iter()
            .partition(|c| c.expires_ms <= now_ms);
        self.conns = live;
        for c in dead {
            self.unbind(c.dest, c.state == Tcp::Es);
        }
    }

    /// A SYN from a new client: schedule, bind, enter SYN_RECV.
    fn open(&mut self, client: SocketAddr, dst: SocketAddr) -> Option<SocketAddr> {
        let a = self.schedule(client, dst.ip())?;
        self.bind(a);
        let state = tcp_input(Tcp::No, TcpFlags::SYN);
        self.conns.push(MConn {
            client,
            dst,
            dest: a,
            state,
            expires_ms: self.now_ms + self.timeout(state),
        });
        Some(a)
    }

    /// A later client packet: None when the conn's dest is deleted (dropped, nothing changes).
    fn packet(&mut self, k: usize, flags: TcpFlags) -> Option<SocketAddr> {
        let c = self.conns[k].clone();
        if !self.list.contains(&c.dest) {
            return None;
        }
        let new = tcp_input(c.state, flags);
        if new != c.state {
            let d = self.dests.get_mut(&c.dest).expect("conn dest exists");
            // set_tcp_state: only ESTABLISHED counts as active.
            if c.state == Tcp::Es {
                d.active -= 1;
                d.inactive += 1;
            } else if new == Tcp::Es {
                d.active += 1;
                d.inactive -= 1;
            }
        }
        let expires_ms = self.now_ms + self.timeout(new);
        let c = &mut self.conns[k];
        c.state = new;
        c.expires_ms = expires_ms;
        Some(c.dest)
    }

    // ---- the schedulers ----

    fn usable(d: &MDest) -> bool {
        !d.overloaded && d.weight > 0
    }

    fn schedule(&mut self, client: SocketAddr, daddr: IpAddr) -> Option<SocketAddr> {
        match self.kind {
            Scheduler::Rr => self.rr(),
            Scheduler::Wrr => self.wrr(),
            Scheduler::Lc => self.lc(),
            Scheduler::Wlc => self.wlc(),
            Scheduler::Sed => self.sed(),
            Scheduler::Nq => self.nq(),
            Scheduler::Fo => self.fo(),
            Scheduler::Ovf => self.ovf(),
            Scheduler::Twos => self.twos(),
            Scheduler::Dh => self.dh(daddr),
            Scheduler::Sh => self.sh(client),
            Scheduler::Mh => self.mh(client),
            Scheduler::Lblc => self.lblc(daddr),
            Scheduler::Lblcr => self.lblcr(daddr),
        }
    }

    /// Positions after the cursor to the end of the list (list_for_each_entry_continue).
    fn after(&self, cursor: Option<SocketAddr>) -> usize {
        cursor.map_or(0, |c| {
            self.list
                .iter()
                .position(|&x| x == c)
                .expect("cursor listed")
                + 1
        })
    }

    fn rr(&mut self) -> Option<SocketAddr> {
        let last = self.cursor;
        let mut start = self.after(last);
        for _pass in 0..2 {
            for i in start..self.list.len() {
                let a = self.list[i];
                if Self::usable(self.d(a)) {
                    self.cursor = Some(a);
                    return Some(a);
                }
                if Some(a) == last {
                    return None;
                }
            }
            if last.is_none() {
                break;
            }
            start = 0;
        }
        None
    }

    fn wrr(&mut self) -> Option<SocketAddr> {
        if self.mw == 0 {
            return None;
        }
        let last = self.cursor;
        let mut stop: Option<SocketAddr> = None;
        let (mut last_pass, mut restarted) = (false, false);
        let mut start = self.after(last);
        loop {
            for i in start..self.list.len() {
                let a = self.list[i];
                let d = self.d(a);
                if !d.overloaded && i64::from(d.weight) >= self.cw {
                    self.cursor = Some(a);
                    return Some(a);
                }
                if Some(a) == stop {
                    self.cursor = Some(a);
                    return None;
                }
            }
            start = 0;
            self.cw -= self.di;
            if self.cw <= 0 {
                self.cw = self.mw;
                if last_pass || last.is_none() {
                    self.cursor = None;
                    return None;
                }
                restarted = true;
            }
            last_pass = self.cw <= self.di;
            if last_pass && restarted && last.is_some() {
                stop = last;
            }
        }
    }

    fn lc(&self) -> Option<SocketAddr> {
        let mut least: Option<(SocketAddr, i64)> = None;
        for (a, d) in self.dests_in_list() {
            if d.overloaded || d.weight == 0 {
                continue;
            }
            let doh = Self::overhead(d);
            if least.is_none_or(|(_, loh)| doh < loh) {
                least = Some((a, doh));
            }
        }
        least.map(|(a, _)| a)
    }

    /// The shape wlc, sed and lblc/lblcr's inner pick share: first usable, then strictly
    /// lighter by cross-multiplication, skipping only overloaded dests in the second stage.
    fn weighted_least(&self, overhead: impl Fn(&MDest) -> i64) -> Option<SocketAddr> {
        let mut it = self.dests_in_list();
        let (mut least, mut loh) = loop {
            let (a, d) = it.next()?;
            if !d.overloaded && d.weight > 0 {
                break (a, overhead(d));
            }
        };
        for (a, d) in it {
            if d.overloaded {
                continue;
            }
            let doh = overhead(d);
            if loh * i64::from(d.weight) > doh * i64::from(self.d(least).weight) {
                least = a;
                loh = doh;
            }
        }
        Some(least)
    }

    fn wlc(&self) -> Option<SocketAddr> {
        self.weighted_least(Self::overhead)
    }

    fn sed(&self) -> Option<SocketAddr> {
        self.weighted_least(|d| i64::from(d.active) + 1)
    }

    fn nq(&self) -> Option<SocketAddr> {
        let mut least: Option<(SocketAddr, i64)> = None;
        for (a, d) in self.dests_in_list() {
            if d.overloaded || d.weight == 0 {
                continue;
            }
            let doh = i64::from(d.active) + 1;
            if d.active == 0 {
                return Some(a);
            }
            if least.is_none_or(|(l, loh)| {
                loh * i64::from(d.weight) > doh * i64::from(self.d(l).weight)
            }) {
                least = Some((a, doh));
            }
        }
        least.map(|(a, _)| a)
    }

    fn fo(&self) -> Option<SocketAddr> {
        let mut h = None;
        let mut hw = 0;
        for (a, d) in self.dests_in_list() {
            if !d.overloaded && d.weight > hw {
                h = Some(a);
                hw = d.weight;
            }
        }
        h
    }

    fn ovf(&self) -> Option<SocketAddr> {
        let mut h: Option<SocketAddr> = None;
        for (a, d) in self.dests_in_list() {
            let w = d.weight;
            if d.overloaded || d.active > w || w == 0 {
                continue;
            }
            if h.is_none_or(|h| w > self.d(h).weight) {
                h = Some(a);
            }
        }
        h
    }

    fn twos(&mut self) -> Option<SocketAddr> {
        let mut total: i64 = 0;
        for (_, d) in self.dests_in_list() {
            if Self::usable(d) {
                total += i64::from(d.weight);
            }
        }
        if total == 0 {
            return None;
        }
        total += 1;
        let mut r1 = i64::from(self.rng.next_u32()) % total;
        let mut r2 = i64::from(self.rng.next_u32()) % total;
        let mut c1: Option<(SocketAddr, i64, i64)> = None;
        let mut c2: Option<(SocketAddr, i64, i64)> = None;
        for (a, d) in self.dests_in_list() {
            if !Self::usable(d) {
                continue;
            }
            let w = i64::from(d.weight);
            r1 -= w;
            r2 -= w;
            if r1 <= 0 && c1.is_none() {
                c1 = Some((a, w, Self::overhead(d)));
            }
            if r2 <= 0 && c2.is_none() {
                c2 = Some((a, w, Self::overhead(d)));
            }
            if c1.is_some() && c2.is_some() {
                break;
            }
        }
        let (a1, w1, o1) = c1?;
        match c2 {
            Some((a2, w2, o2)) if w2 * o1 > w1 * o2 => Some(a2),
            _ => Some(a1),
        }
    }

    fn dh(&self, daddr: IpAddr) -> Option<SocketAddr> {
        let a = self.table[hash_32(fold(daddr), 8) as usize]?;
        // Listed dests are available; dh's is_overloaded is the flag.
        let d = self.d(a);
        (d.weight > 0 && !d.overloaded).then_some(a)
    }

    fn sh(&self, client: SocketAddr) -> Option<SocketAddr> {
        let port = if self.port { client.port() } else { 0 };
        let key = |offset: u32| {
            (offset.wrapping_add(hash_32(u32::from(port).wrapping_add(fold(client.ip())), 8)) % 256)
                as usize
        };
        let ihash = key(0);
        let a = self.table[ihash]?;
        if Self::usable(self.d(a)) {
            return Some(a);
        }
        if !self.fallback {
            return None;
        }
        for offset in 0..256u32 {
            let roffset = (offset + ihash as u32) % 256;
            let a = self.table[key(roffset)]?;
            if Self::usable(self.d(a)) {
                return Some(a);
            }
        }
        None
    }

    fn mh(&self, client: SocketAddr) -> Option<SocketAddr> {
        let port = if self.port { client.port() } else { 0 };
        let ip = client.ip();
        let ihash = mh_hashkey(ip, port, MH_KEY1, 0) % MH_SIZE;
        let a = self.table[ihash as usize]?;
        if Self::usable(self.d(a)) {
            return Some(a);
        }
        if !self.fallback {
            return None;
        }
        for offset in 0..MH_SIZE {
            let roffset = (offset + ihash) % MH_SIZE;
            let h = mh_hashkey(ip, port, MH_KEY1, roffset) % MH_SIZE;
            let a = self.table[h as usize]?;
            if Self::usable(self.d(a)) {
                return Some(a);
            }
        }
        None
    }

    /// lblc/lblcr's is_overloaded().
    fn locality_overloaded(&self, a: SocketAddr) -> bool {
        let d = self.d(a);
        d.active > d.weight && self.dests_in_list().any(|(_, x)| x.active * 2 < x.weight)
    }

    fn lblc(&mut self, daddr: IpAddr) -> Option<SocketAddr> {
        if let Some(&a) = self.lblc.get(&daddr) {
            let d = self.d(a);
            if self.list.contains(&a) && d.weight > 0 && !self.locality_overloaded(a) {
                return Some(a);
            }
        }
        let a = self.wlc()?;
        self.lblc.insert(daddr, a);
        Some(a)
    }

    /// ip_vs_dest_set_min.
    fn set_min(&self, set: &[SocketAddr]) -> Option<SocketAddr> {
        let avail = |a: &SocketAddr| self.list.contains(a);
        let mut it = set.iter();
        let (mut least, mut loh) = loop {
            let a = *it.next()?;
            let d = self.d(a);
            if d.overloaded {
                continue;
            }
            if d.weight > 0 && avail(&a) {
                break (a, Self::overhead(d));
            }
        };
        for &a in it {
            let d = self.d(a);
            if d.overloaded {
                continue;
            }
            let doh = Self::overhead(d);
            if loh * i64::from(d.weight) > doh * i64::from(self.d(least).weight) && avail(&a) {
                least = a;
                loh = doh;
            }
        }
        Some(least)
    }

    /// ip_vs_dest_set_max.
    fn set_max(&self, set: &[SocketAddr]) -> Option<SocketAddr> {
        let mut it = set.iter();
        let (mut most, mut moh) = loop {
            let a = *it.next()?;
            let d = self.d(a);
            if d.weight > 0 {
                break (a, Self::overhead(d));
            }
        };
        for &a in it {
            let d = self.d(a);
            let doh = Self::overhead(d);
            if moh * i64::from(d.weight) < doh * i64::from(self.d(most).weight) && d.weight > 0 {
                most = a;
                moh = doh;
            }
        }
        Some(most)
    }

    fn lblcr(&mut self, daddr: IpAddr) -> Option<SocketAddr> {
        let exp = 24 * 60 * 60 * 1000;
        if let Some((set, lastmod)) = self.lblcr.get(&daddr).cloned() {
            let min = self.set_min(&set);
            let mut set = set;
            let mut lastmod = lastmod;
            if set.len() > 1 && self.now_ms > lastmod + exp {
                if let Some(m) = self.set_max(&set) {
                    set.retain(|&x| x != m);
                    lastmod = self.now_ms;
                }
            }
            self.lblcr.insert(daddr, (set.clone(), lastmod));
            if let Some(a) = min {
                if !self.locality_overloaded(a) {
                    return Some(a);
                }
            }
            let a = self.wlc()?;
            if !set.contains(&a) {
                set.insert(0, a);
                self.lblcr.insert(daddr, (set, self.now_ms));
            }
            return Some(a);
        }
        let a = self.wlc()?;
        self.lblcr.insert(daddr, (vec![a], self.now_ms));
        Some(a)
    }
}

fn cmd(ipvs: &mut Ipvs, now: Duration, line: &str) -> bool {
    let c = ipvsadm::parse(line).unwrap_or_else(|e| panic!("{line}: {e}"));
    ipvs.apply(now, c).is_ok()
}

fn packet(client: SocketAddr, dst: SocketAddr, flags: TcpFlags) -> FlowPacket {
    FlowPacket {
        protocol: Protocol::Tcp,
        src: client,
        dst,
        tcp: Some(flags),
        fwmark: 1,
        len: 60,
    }
}

fn dest_of(v: InVerdict) -> Option<SocketAddr> {
    match v {
        InVerdict::Forward(f) => Some(f.dest),
        InVerdict::Reject | InVerdict::Drop => None,
        InVerdict::Pass => panic!("fwmark 1 packet passed"),
    }
}

fn run(kind: Scheduler, fallback: bool, port: bool, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut flags = Vec::new();
    let prefix = if kind == Scheduler::Mh { "mh" } else { "sh" };
    if fallback {
        flags.push(format!("{prefix}-fallback"));
    }
    if port {
        flags.push(format!("{prefix}-port"));
    }
    let b = if flags.is_empty() || !matches!(kind, Scheduler::Sh | Scheduler::Mh) {
        String::new()
    } else {
        format!(" -b {}", flags.join(","))
    };
    let mut ipvs = Ipvs::new(IpvsConfig {
        rng_seed: SEED,
        ..IpvsConfig::default()
    });
    let mut model = Model::new(kind, fallback && !b.is_empty(), port && !b.is_empty());
    let mut now_ms = 0u64;
    let at = |ms: u64| Duration::from_millis(ms);
    let add_service = format!("-A -f 1 -s {kind}{b}");
    prop_assert!(cmd(&mut ipvs, at(0), &add_service));
    let mut next_port = 1024u16;
    for (step, op) in ops.iter().enumerate() {
        let ctx = format!("step {step} {op:?}");
        match *op {
            Op::Add { s, w, u, l } | Op::Edit { s, w, u, l } => {
                let add = matches!(op, Op::Add { .. });
                let a = server(s);
                let line = format!(
                    "-{} -f 1 -r {a} -m -w {w} -x {u} -y {l}",
                    if add { 'a' } else { 'e' }
                );
                let got = cmd(&mut ipvs, at(now_ms), &line);
                model.expire(now_ms);
                let want = if add {
                    model.add(a, w, u, l)
                } else {
                    model.edit(a, w, u, l)
                };
                prop_assert_eq!(got, want, "{}", ctx);
            }
            Op::Del { s } => {
                let a = server(s);
                let got = cmd(&mut ipvs, at(now_ms), &format!("-d -f 1 -r {a}"));
                model.expire(now_ms);
                prop_assert_eq!(got, model.del(a), "{}", ctx);
            }
            Op::Open { src, dst } => {
                next_port = next_port.wrapping_add(1).max(1024);
                let client = SocketAddr::from((Ipv4Addr::new(192, 0, 2, 1 + src), next_port));
                let vip = SocketAddr::from((Ipv4Addr::new(203, 0, 113, 1 + dst), 80));
                let got = dest_of(ipvs.packet_in(at(now_ms), &packet(client, vip, TcpFlags::SYN)));
                model.expire(now_ms);
                prop_assert_eq!(got, model.open(client, vip), "{}", ctx);
            }
            Op::Ack { k } | Op::Fin { k } | Op::Rst { k } => {
                model.expire(now_ms);
                if model.conns.is_empty() {
                    continue;
                }
                let k = k % model.conns.len();
                let flags = match op {
                    Op::Ack { .. } => TcpFlags::ACK,
                    Op::Fin { .. } => TcpFlags::FIN_ACK,
                    _ => TcpFlags::RST,
                };
                let (client, dst) = (model.conns[k].client, model.conns[k].dst);
                let got = dest_of(ipvs.packet_in(at(now_ms), &packet(client, dst, flags)));
                prop_assert_eq!(got, model.packet(k, flags), "{}", ctx);
            }
            Op::Advance { ms } => {
                now_ms += ms;
                ipvs.expire(at(now_ms));
                model.expire(now_ms);
            }
        }
        // The accounting every scheduler reads must agree too, in list order.
        let svc = &ipvs.services()[0];
        let got: Vec<_> = svc
            .dests
            .iter()
            .map(|d| {
                (
                    d.config.addr,
                    d.config.weight,
                    d.active,
                    d.inactive,
                    d.overloaded,
                )
            })
            .collect();
        let want: Vec<_> = model
            .dests_in_list()
            .map(|(a, d)| (a, d.weight, d.active, d.inactive, d.overloaded))
            .collect();
        prop_assert_eq!(got, want, "after {}", ctx);
    }
    Ok(())
}

fn config() -> ProptestConfig {
    // PROPTEST_CASES in the environment overrides this default.
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(64),
        ..ProptestConfig::default()
    }
}

macro_rules! sched_props {
    ($($name:ident => $kind:expr),* $(,)?) => {
        proptest! {
            #![proptest_config(config())]
            $(
                #[test]
                fn $name(
                    fallback in any::<bool>(),
                    port in any::<bool>(),
                    ops in prop::collection::vec(op(), 1..120),
                ) {
                    run($kind, fallback, port, &ops)?;
                }
            )*
        }
    };
}

sched_props! {
    rr_matches_model => Scheduler::Rr,
    wrr_matches_model => Scheduler::Wrr,
    lc_matches_model => Scheduler::Lc,
    wlc_matches_model => Scheduler::Wlc,
    lblc_matches_model => Scheduler::Lblc,
    lblcr_matches_model => Scheduler::Lblcr,
    dh_matches_model => Scheduler::Dh,
    sh_matches_model => Scheduler::Sh,
    sed_matches_model => Scheduler::Sed,
    nq_matches_model => Scheduler::Nq,
    mh_matches_model => Scheduler::Mh,
    fo_matches_model => Scheduler::Fo,
    ovf_matches_model => Scheduler::Ovf,
    twos_matches_model => Scheduler::Twos,
}
