//! The fourteen IPVS schedulers, each a twin of net/netfilter/ipvs/ip_vs_<name>.c.
//!
//! A service's real servers live in a list, newest first (the kernel adds at the head).
//! Schedulers walk that list; those comparing loads keep the first candidate on a tie.
pub mod hash;
mod locality;
mod maglev;

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rand_core::RngCore;

use crate::dest::{Dest, DestLoad, DestSlab};
use crate::types::{SchedFlags, Scheduler};
use hash::{addr_fold, hash_32};
pub(crate) use locality::{Lblc, Lblcr};
pub(crate) use maglev::Maglev;

/// The slab of all dests, indexed by dest id; a service's list holds ids into it.
pub(crate) type Dests = DestSlab;

/// What a scheduler may look at in the packet that opens a conn.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SchedInput {
    pub src: SocketAddr,
    pub dst: IpAddr,
    pub now: Duration,
}

const NONE: u32 = u32::MAX;
const HASH_BITS: u32 = 8;
const HASH_SIZE: usize = 1 << HASH_BITS;

/// Per-service scheduler state (the kernel's svc->sched_data).
#[derive(Debug, Clone)]
pub(crate) enum SchedState {
    /// rr: the last picked position (None = list head).
    Rr { cur: Option<usize> },
    /// wrr: ip_vs_wrr_mark.
    Wrr {
        cl: Option<usize>,
        cw: i64,
        mw: i64,
        di: i64,
    },
    /// dh and sh: 256 buckets of dest ids.
    Buckets(Box<[u32; HASH_SIZE]>),
    /// mh: the Maglev lookup table.
    Mh(Maglev),
    /// lblc: destination address -> dest cache.
    Lblc(Box<Lblc>),
    /// lblcr: destination address -> dest set cache.
    Lblcr(Box<Lblcr>),
    /// Schedulers with no state of their own.
    Stateless,
}

#[inline]
fn d(dests: &Dests, id: u32) -> &Dest {
    // Ids on a service list always point at live dests; the slab never frees a listed one.
    dests
        .get(id)
        .unwrap_or_else(|| unreachable!("listed dest {id} freed"))
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl SchedState {
    /// init_service.
    pub fn new(kind: Scheduler, list: &[u32], dests: &Dests, now: Duration) -> Self {
        let mut s = match kind {
            Scheduler::Rr => SchedState::Rr { cur: None },
            Scheduler::Wrr => SchedState::Wrr {
                cl: None,
                cw: 0,
                mw: 0,
                di: 1,
            },
            Scheduler::Dh | Scheduler::Sh => SchedState::Buckets(Box::new([NONE; HASH_SIZE])),
            Scheduler::Mh => SchedState::Mh(Maglev::new()),
            Scheduler::Lblc => SchedState::Lblc(Box::new(Lblc::new(now))),
            Scheduler::Lblcr => SchedState::Lblcr(Box::new(Lblcr::new(now))),
            _ => SchedState::Stateless,
        };
        if let SchedState::Wrr { cl, cw, mw, di } = &mut s {
            // init_svc sets cw = mw outright.
            *di = wrr_gcd(list, dests);
            *mw = wrr_max(list, dests) - (*di - 1);
            *cw = *mw;
            *cl = None;
        }
        s.rebuild(kind, list, dests);
        s
    }

    fn rebuild(&mut self, kind: Scheduler, list: &[u32], dests: &Dests) {
        match self {
            SchedState::Buckets(b) if kind == Scheduler::Dh => {
                for (i, slot) in b.iter_mut().enumerate() {
                    *slot = if list.is_empty() {
                        NONE
                    } else {
                        list[i % list.len()]
                    };
                }
            }
            SchedState::Buckets(b) => {
                // sh fills weight-many buckets per dest (at least one), wrapping around the list.
                let mut p = 0usize;
                let mut count = 0u32;
                for slot in b.iter_mut() {
                    if list.is_empty() {
                        *slot = NONE;
                        continue;
                    }
                    let id = list[p];
                    *slot = id;
                    count += 1;
                    if count >= d(dests, id).weight() {
                        p = (p + 1) % list.len();
                        count = 0;
                    }
                }
            }
            SchedState::Mh(m) => m.reassign(list, dests),
            _ => {}
        }
    }

    /// add_dest hook; the new dest is already at list[0].
    pub fn dest_added(&mut self, kind: Scheduler, list: &[u32], dests: &Dests) {
        match self {
            SchedState::Rr { cur: Some(i) } => *i += 1,
            SchedState::Wrr { .. } => self.wrr_changed(list, dests),
            SchedState::Buckets(_) | SchedState::Mh(_) => self.rebuild(kind, list, dests),
            _ => {}
        }
    }

    /// del_dest hook; `idx` is where the dest was, the list no longer holds it.
    pub fn dest_removed(&mut self, kind: Scheduler, idx: usize, list: &[u32], dests: &Dests) {
        match self {
            SchedState::Rr { cur } => {
                // ip_vs_rr_del_dest: a cursor on the deleted dest steps back to its predecessor.
                if let Some(i) = *cur {
                    if i == idx {
                        *cur = idx.checked_sub(1);
                    } else if i > idx {
                        *cur = Some(i - 1);
                    }
                }
            }
            SchedState::Wrr { .. } => self.wrr_changed(list, dests),
            SchedState::Buckets(_) | SchedState::Mh(_) => self.rebuild(kind, list, dests),
            _ => {}
        }
    }

    /// upd_dest hook (weight or threshold edit). dh has none.
    pub fn dest_updated(&mut self, kind: Scheduler, list: &[u32], dests: &Dests) {
        match self {
            SchedState::Wrr { .. } => self.wrr_changed(list, dests),
            SchedState::Buckets(_) if kind == Scheduler::Sh => self.rebuild(kind, list, dests),
            SchedState::Mh(_) => self.rebuild(kind, list, dests),
            _ => {}
        }
    }

    /// ip_vs_wrr_dest_changed: keep cw unless it is 0 or above the new maximum.
    fn wrr_changed(&mut self, list: &[u32], dests: &Dests) {
        if let SchedState::Wrr { cl, cw, mw, di } = self {
            *cl = None;
            *di = wrr_gcd(list, dests);
            *mw = wrr_max(list, dests) - (*di - 1);
            if *cw > *mw || *cw == 0 {
                *cw = *mw;
            } else if *di > 1 {
                *cw = (*cw / *di) * *di + 1;
            }
        }
    }

    /// Whether the scheduler's cache references dest `id`, keeping it out of the trash's reach.
    pub fn holds(&self, id: u32) -> bool {
        match self {
            SchedState::Lblc(t) => t.holds(id),
            SchedState::Lblcr(t) => t.holds(id),
            _ => false,
        }
    }

    /// When `expire` next has work to do, if ever.
    pub fn next_timer(&self) -> Option<Duration> {
        match self {
            SchedState::Lblc(c) => Some(c.t.next_tick()),
            SchedState::Lblcr(c) => Some(c.t.next_tick()),
            _ => None,
        }
    }

    /// Run timers (lblc/lblcr cache expiry).
    pub fn expire(&mut self, now: Duration) {
        match self {
            SchedState::Lblc(c) => c.t.expire(now),
            SchedState::Lblcr(c) => c.t.expire(now),
            _ => {}
        }
    }

    /// Pick a dest for a new conn. `why` receives the deciding step when explaining.
    #[allow(clippy::too_many_arguments)]
    pub fn schedule(
        &mut self,
        kind: Scheduler,
        flags: SchedFlags,
        list: &[u32],
        dests: &Dests,
        input: &SchedInput,
        rng: &mut dyn RngCore,
        why: Option<&mut String>,
    ) -> Option<u32> {
        match kind {
            Scheduler::Rr => self.rr(list, dests, why),
            Scheduler::Wrr => self.wrr(list, dests, why),
            Scheduler::Lc => least(list, dests, Load::Lc, why),
            Scheduler::Wlc => least(list, dests, Load::Wlc, why),
            Scheduler::Sed => least(list, dests, Load::Sed, why),
            Scheduler::Nq => nq(list, dests, why),
            Scheduler::Fo => fo(list, dests, why),
            Scheduler::Ovf => ovf(list, dests, why),
            Scheduler::Twos => twos(list, dests, rng, why),
            Scheduler::Dh => self.dh(list, dests, input, why),
            Scheduler::Sh => self.sh(flags, dests, input, why),
            Scheduler::Mh => match self {
                SchedState::Mh(m) => m.schedule(flags, dests, input, why),
                _ => None,
            },
            Scheduler::Lblc => match self {
                SchedState::Lblc(t) => t.schedule(list, dests, input, why),
                _ => None,
            },
            Scheduler::Lblcr => match self {
                SchedState::Lblcr(t) => t.schedule(list, dests, input, why),
                _ => None,
            },
        }
    }

    fn rr(&mut self, list: &[u32], dests: &Dests, why: Option<&mut String>) -> Option<u32> {
        let SchedState::Rr { cur } = self else {
            return None;
        };
        let last = *cur;
        let mut pos = last;
        let mut pass = 0;
        loop {
            let start = pos.map_or(0, |i| i + 1);
            for (i, &id) in list.iter().enumerate().skip(start) {
                if dests.load(id).usable() {
                    *cur = Some(i);
                    if let Some(w) = why {
                        let _ = write!(
                            w,
                            "the next server after {} with weight > 0 and not overloaded",
                            last.map_or("the list head".to_string(), |l| format!(
                                "position {}",
                                l + 1
                            ))
                        );
                    }
                    return Some(id);
                }
                if Some(i) == last {
                    return nothing(why);
                }
            }
            pos = None;
            pass += 1;
            if pass >= 2 || last.is_none() {
                return nothing(why);
            }
        }
    }

    fn wrr(&mut self, list: &[u32], dests: &Dests, why: Option<&mut String>) -> Option<u32> {
        let SchedState::Wrr { cl, cw, mw, di } = self else {
            return None;
        };
        if *mw == 0 {
            return nothing(why);
        }
        let last = *cl;
        let mut pos = *cl;
        let mut stop: Option<usize> = None;
        let mut last_pass = false;
        let mut restarted = false;
        loop {
            let start = pos.map_or(0, |i| i + 1);
            for (i, &id) in list.iter().enumerate().skip(start) {
                let x = dests.load(id);
                if x.overloaded == 0 && i64::from(x.weight) >= *cw {
                    *cl = Some(i);
                    if let Some(w) = why {
                        let _ = write!(
                            w,
                            "current weight cw={} (max {} step {}): first server from the cursor with weight >= cw",
                            cw, mw, di
                        );
                    }
                    return Some(id);
                }
                if stop == Some(i) {
                    *cl = Some(i);
                    return nothing(why);
                }
            }
            pos = None;
            *cw -= *di;
            if *cw <= 0 {
                *cw = *mw;
                if last_pass || last.is_none() {
                    *cl = None;
                    return nothing(why);
                }
                restarted = true;
            }
            last_pass = *cw <= *di;
            if last_pass && restarted && last.is_some() {
                stop = last;
            }
        }
    }

    fn dh(
        &self,
        _list: &[u32],
        dests: &Dests,
        input: &SchedInput,
        why: Option<&mut String>,
    ) -> Option<u32> {
        let SchedState::Buckets(b) = self else {
            return None;
        };
        let bucket = hash_32(addr_fold(input.dst), HASH_BITS) as usize;
        let id = b[bucket];
        let ok = id != NONE && {
            let dest = d(dests, id);
            dest.available && dest.weight() > 0 && !dest.overloaded
        };
        if let Some(w) = why {
            let _ = write!(
                w,
                "hash_32({}, 8) = bucket {bucket}{}",
                input.dst,
                if ok {
                    ""
                } else {
                    ", whose server is unavailable"
                }
            );
        }
        ok.then_some(id)
    }

    fn sh(
        &self,
        flags: SchedFlags,
        dests: &Dests,
        input: &SchedInput,
        why: Option<&mut String>,
    ) -> Option<u32> {
        let SchedState::Buckets(b) = self else {
            return None;
        };
        let port = if flags.port { input.src.port() } else { 0 };
        let key = u32::from(port).wrapping_add(addr_fold(input.src.ip()));
        let hashkey = |offset: u32| (offset.wrapping_add(hash_32(key, HASH_BITS))) as usize & 0xff;
        let unavailable = |id: u32| !dests.load(id).usable();
        let ihash = hashkey(0);
        let id = b[ihash];
        let describe = |w: &mut String, bucket: usize, fell_back: bool| {
            let _ = write!(
                w,
                "hash_32({}{}, 8) = bucket {ihash}{}",
                input.src.ip(),
                if flags.port {
                    format!(" + port {port}")
                } else {
                    String::new()
                },
                if fell_back {
                    format!(", unavailable; fallback walked to bucket {bucket}")
                } else {
                    String::new()
                }
            );
        };
        if id == NONE {
            return nothing(why);
        }
        if !unavailable(id) {
            if let Some(w) = why {
                describe(w, ihash, false);
            }
            return Some(id);
        }
        if !flags.fallback {
            if let Some(w) = why {
                let _ = write!(
                    w,
                    "bucket {ihash} holds an unavailable server and sh-fallback is off"
                );
            }
            return None;
        }
        for offset in 0..HASH_SIZE as u32 {
            let roffset = (offset + ihash as u32) % HASH_SIZE as u32;
            let bucket = hashkey(roffset);
            let id = b[bucket];
            if !unavailable(id) {
                if let Some(w) = why {
                    describe(w, bucket, true);
                }
                return Some(id);
            }
        }
        nothing(why)
    }
}

fn nothing(why: Option<&mut String>) -> Option<u32> {
    if let Some(w) = why {
        w.push_str("no server has weight > 0 and is below its upper threshold");
    }
    None
}

fn wrr_gcd(list: &[u32], dests: &Dests) -> i64 {
    let mut g = 0i64;
    for &id in list {
        let w = i64::from(d(dests, id).weight());
        if w > 0 {
            g = if g > 0 { gcd(w, g) } else { w };
        }
    }
    if g > 0 {
        g
    } else {
        1
    }
}

fn wrr_max(list: &[u32], dests: &Dests) -> i64 {
    list.iter()
        .map(|&id| i64::from(d(dests, id).weight()))
        .max()
        .unwrap_or(0)
        .max(0)
}

/// Which load a least-loaded scheduler compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Load {
    /// (active << 8) + inactive, unweighted.
    Lc,
    /// (active << 8) + inactive over weight.
    Wlc,
    /// (active + 1) over weight.
    Sed,
}

impl Load {
    #[inline]
    fn of(self, x: DestLoad) -> i64 {
        match self {
            Load::Lc | Load::Wlc => x.overhead(),
            Load::Sed => i64::from(x.active) + 1,
        }
    }
}

/// lc, wlc and sed: the least (weighted) load, strict comparisons so ties keep the earlier.
///
/// Inlined so each caller's constant `load` folds into the loop: the walk reads one 16-byte
/// `DestLoad` per server and compares with one i64 multiply pair, no per-step branching on
/// the kind.
#[inline(always)]
pub(crate) fn least(
    list: &[u32],
    dests: &Dests,
    load: Load,
    why: Option<&mut String>,
) -> Option<u32> {
    // The first usable server leads until a strictly lighter one follows.
    let Some(first) = list.iter().position(|&id| dests.load(id).usable()) else {
        return nothing(why);
    };
    let mut lid = list[first];
    let head = dests.load(lid);
    let (mut loh, mut lw) = (load.of(head), i64::from(head.weight));
    let mut decided = String::new();
    let explain = why.is_some();
    for &id in &list[first + 1..] {
        let x = dests.load(id);
        if !x.usable() {
            continue;
        }
        let (doh, dw) = (load.of(x), i64::from(x.weight));
        let better = if load == Load::Lc {
            doh < loh
        } else {
            loh * dw > doh * lw
        };
        if explain {
            decided = describe_compare(load, dests, lid, loh, id, doh, better);
        }
        if better {
            (lid, loh, lw) = (id, doh, dw);
        }
    }
    if let Some(w) = why {
        w.push_str(if decided.is_empty() {
            "the only available server"
        } else {
            &decided
        });
    }
    Some(lid)
}

fn describe_compare(
    load: Load,
    dests: &Dests,
    lid: u32,
    loh: i64,
    id: u32,
    doh: i64,
    better: bool,
) -> String {
    let (l, c) = (d(dests, lid), d(dests, id));
    let (lw, cw) = (i64::from(l.weight()), i64::from(c.weight()));
    if load == Load::Lc {
        return format!(
            "last comparison: {} load {} vs {} load {}: {}",
            c.cfg.addr,
            doh,
            l.cfg.addr,
            loh,
            if better {
                "strictly less, so it takes the lead"
            } else {
                "not strictly less, the earlier keeps the lead"
            }
        );
    }
    format!(
        "last comparison: {} {}*{} = {} vs {} {}*{} = {}: {}",
        l.cfg.addr,
        loh,
        cw,
        loh * cw,
        c.cfg.addr,
        doh,
        lw,
        doh * lw,
        if better {
            "the later is strictly lighter and takes the lead"
        } else {
            "not strictly lighter, the earlier keeps the lead"
        }
    )
}

/// nq: the first server with no active conns, else sed's rule.
fn nq(list: &[u32], dests: &Dests, why: Option<&mut String>) -> Option<u32> {
    // (id, (active+1), weight) of the leader.
    let mut best: Option<(u32, i64, i64)> = None;
    for &id in list {
        let x = dests.load(id);
        if !x.usable() {
            continue;
        }
        if x.active == 0 {
            if let Some(w) = why {
                let _ = write!(
                    w,
                    "{} has no active conn: taken at once",
                    d(dests, id).cfg.addr
                );
            }
            return Some(id);
        }
        let (doh, dw) = (i64::from(x.active) + 1, i64::from(x.weight));
        let better = match best {
            None => true,
            Some((_, loh, lw)) => loh * dw > doh * lw,
        };
        if better {
            best = Some((id, doh, dw));
        }
    }
    if let Some(w) = why {
        if best.is_none() {
            return nothing(Some(w));
        }
        w.push_str("every server is busy: least (active+1)/weight as sed");
    }
    best.map(|(id, _, _)| id)
}

/// fo: the highest weight, first on a tie.
fn fo(list: &[u32], dests: &Dests, why: Option<&mut String>) -> Option<u32> {
    let mut best: Option<u32> = None;
    let mut hw = 0;
    for &id in list {
        let x = dests.load(id);
        if x.overloaded == 0 && x.weight > hw {
            best = Some(id);
            hw = x.weight;
        }
    }
    if let Some(w) = why {
        match best {
            Some(_) => {
                let _ = write!(w, "highest weight {hw}, the first on a tie");
            }
            None => return nothing(Some(w)),
        }
    }
    best
}

/// ovf: the highest weight among servers whose active conns do not exceed their weight.
fn ovf(list: &[u32], dests: &Dests, why: Option<&mut String>) -> Option<u32> {
    let mut best: Option<u32> = None;
    let mut hw = 0;
    for &id in list {
        let x = dests.load(id);
        let w = x.weight;
        if x.overloaded != 0 || x.active > w || w == 0 {
            continue;
        }
        if best.is_none() || w > hw {
            best = Some(id);
            hw = w;
        }
    }
    if let Some(why) = why {
        match best {
            Some(_) => {
                let _ = write!(
                    why,
                    "highest weight {hw} among servers with active conns <= weight"
                );
            }
            None => {
                why.push_str("every server has more active conns than its weight");
            }
        }
    }
    best
}

/// A twos draw: dest id, weight, overhead.
type Choice = (u32, i64, i64);

/// twos: two weighted random picks, keep the less loaded (the second only if strictly lighter).
fn twos(
    list: &[u32],
    dests: &Dests,
    rng: &mut dyn RngCore,
    why: Option<&mut String>,
) -> Option<u32> {
    let total: i64 = list
        .iter()
        .map(|&id| dests.load(id))
        .filter(|x| x.usable())
        .map(|x| i64::from(x.weight))
        .sum();
    if total == 0 {
        return nothing(why);
    }
    let below = |rng: &mut dyn RngCore| (u64::from(rng.next_u32()) % (total as u64 + 1)) as i64;
    let mut r1 = below(rng);
    let mut r2 = below(rng);
    let mut c1: Option<Choice> = None;
    let mut c2: Option<Choice> = None;
    for &id in list {
        let x = dests.load(id);
        if !x.usable() {
            continue;
        }
        let w = i64::from(x.weight);
        r1 -= w;
        r2 -= w;
        if r1 <= 0 && c1.is_none() {
            c1 = Some((id, w, x.overhead()));
        }
        if r2 <= 0 && c2.is_none() {
            c2 = Some((id, w, x.overhead()));
        }
        if c1.is_some() && c2.is_some() {
            break;
        }
    }
    let (id1, w1, o1) = c1?;
    let pick = match c2 {
        Some((id2, w2, o2)) if w2 * o1 > w1 * o2 => id2,
        _ => id1,
    };
    if let Some(w) = why {
        let _ = write!(
            w,
            "random draws chose {} and {}; kept the one with less load per weight",
            d(dests, id1).cfg.addr,
            c2.map_or("nothing".to_string(), |c| d(dests, c.0)
                .cfg
                .addr
                .to_string())
        );
    }
    Some(pick)
}

/// The load string a scheduler compares, for explanations.
pub(crate) fn load_text(kind: Scheduler, dest: &Dest) -> Option<String> {
    let w = dest.weight();
    match kind {
        Scheduler::Lc => Some(format!("{}", dest.overhead())),
        Scheduler::Wlc | Scheduler::Lblc | Scheduler::Lblcr | Scheduler::Twos => {
            Some(format!("{}/{}", dest.overhead(), w))
        }
        Scheduler::Sed | Scheduler::Nq => Some(format!("({}+1)/{}", dest.active, w)),
        Scheduler::Ovf => Some(format!("active {} vs weight {}", dest.active, w)),
        _ => None,
    }
}

/// The one-sentence rule each scheduler follows.
pub(crate) fn rule(kind: Scheduler) -> &'static str {
    match kind {
        Scheduler::Rr => "round robin over servers with weight > 0",
        Scheduler::Wrr => "weighted round robin: passes at falling current weight cw",
        Scheduler::Lc => "least (active<<8)+inactive; ties keep the earlier in list order",
        Scheduler::Wlc => {
            "least ((active<<8)+inactive)/weight by cross-multiplication; ties keep the earlier"
        }
        Scheduler::Lblc => "per destination address cache, else weighted least connection",
        Scheduler::Lblcr => "per destination address server set, else weighted least connection",
        Scheduler::Dh => "hash of the destination address into 256 buckets",
        Scheduler::Sh => "hash of the source address into 256 weighted buckets",
        Scheduler::Sed => "least (active+1)/weight by cross-multiplication; ties keep the earlier",
        Scheduler::Nq => "first server with no active conn, else least (active+1)/weight",
        Scheduler::Mh => "Maglev lookup table of 4093 entries keyed by the source address",
        Scheduler::Fo => "highest weight not overloaded",
        Scheduler::Ovf => "highest weight whose active conns do not exceed its weight",
        Scheduler::Twos => "two weighted random picks, keep the less loaded",
    }
}

/// One scheduler on its own over a prepared server list: no packets, conns or timers.
///
/// Benchmarks use it to time a pick as the kernel's schedule() hook would see it.
#[derive(Debug, Clone)]
pub struct PickBench {
    kind: Scheduler,
    flags: SchedFlags,
    list: Vec<u32>,
    dests: DestSlab,
    state: SchedState,
    rng: rand_pcg::Pcg32,
}

impl PickBench {
    /// A service with `kind` and one NAT server per `(address, weight, active, inactive)`,
    /// added in the given order (so the last one heads the list, as in the kernel).
    pub fn new(
        kind: Scheduler,
        flags: SchedFlags,
        servers: &[(SocketAddr, u32, u32, u32)],
    ) -> Self {
        let mut dests = DestSlab::default();
        let mut list = Vec::with_capacity(servers.len());
        let mut state = SchedState::new(kind, &list, &dests, Duration::ZERO);
        for &(addr, weight, active, inactive) in servers {
            let mut cfg = crate::types::DestConfig::new(addr, crate::types::ForwardMethod::Nat);
            cfg.weight = weight;
            let mut dest = Dest::new(cfg, 0);
            dest.active = active;
            dest.inactive = inactive;
            let id = dests.push(dest);
            list.insert(0, id);
            state.dest_added(kind, &list, &dests);
        }
        PickBench {
            kind,
            flags,
            list,
            dests,
            state,
            rng: rand_core::SeedableRng::seed_from_u64(1),
        }
    }

    /// Pick a server for a new flow from `src` to `dst`.
    pub fn pick(&mut self, src: SocketAddr, dst: IpAddr) -> Option<SocketAddr> {
        let input = SchedInput {
            src,
            dst,
            now: Duration::ZERO,
        };
        let id = self.state.schedule(
            self.kind,
            self.flags,
            &self.list,
            &self.dests,
            &input,
            &mut self.rng,
            None,
        )?;
        Some(d(&self.dests, id).cfg.addr)
    }
}
