//! The fourteen IPVS schedulers, one file per net/netfilter/ipvs/ip_vs_<name>.c.
//!
//! A service's real servers live in a list, newest first (the kernel adds at the head).
//! Schedulers walk that list; those comparing loads keep the first candidate on a tie.
//! This module is the kernel's struct ip_vs_scheduler: the per-service state and the hooks
//! (init_service, add_dest, del_dest, upd_dest, schedule) that dispatch to each file.
//! What several schedulers share lives once: the kernel hashes in [`hash`], the least-load
//! walk in `least`, the lblc/lblcr destination cache in `locality`.
pub mod hash;
mod least;
mod locality;

mod dh;
mod fo;
mod lblc;
mod lblcr;
mod lc;
mod mh;
mod nq;
mod ovf;
mod rr;
mod sed;
mod sh;
mod twos;
mod wlc;
mod wrr;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rand_core::RngCore;

use crate::dest::{Dest, DestSlab};
use crate::types::{SchedFlags, Scheduler};

/// The slab of all dests, indexed by dest id; a service's list holds ids into it.
pub(crate) type Dests = DestSlab;

/// What a scheduler may look at in the packet that opens a conn.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SchedInput {
    pub src: SocketAddr,
    pub dst: IpAddr,
    pub now: Duration,
}

/// An empty bucket or table slot.
const NONE: u32 = u32::MAX;

/// Per-service scheduler state (the kernel's svc->sched_data).
#[derive(Debug, Clone)]
pub(crate) enum SchedState {
    /// rr: the cursor.
    Rr(rr::Rr),
    /// wrr: ip_vs_wrr_mark.
    Wrr(wrr::Wrr),
    /// dh: 256 buckets.
    Dh(dh::Dh),
    /// sh: 256 weighted buckets.
    Sh(sh::Sh),
    /// mh: the Maglev lookup table.
    Mh(mh::Maglev),
    /// lblc: destination address -> dest cache.
    Lblc(Box<lblc::Lblc>),
    /// lblcr: destination address -> dest set cache.
    Lblcr(Box<lblcr::Lblcr>),
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

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The gcd of the positive weights, 0 when there is none (ip_vs_wrr_gcd_weight and
/// ip_vs_mh_gcd_weight share the loop).
fn gcd_weight(weights: impl Iterator<Item = u32>) -> u32 {
    weights
        .filter(|&w| w > 0)
        .fold(0, |g, w| if g > 0 { gcd(w, g) } else { w })
}

/// Explain that nothing could be picked, and pick nothing.
fn nothing(why: Option<&mut String>) -> Option<u32> {
    if let Some(w) = why {
        w.push_str("no server has weight > 0 and is below its upper threshold");
    }
    None
}

impl SchedState {
    /// init_service.
    pub fn new(kind: Scheduler, list: &[u32], dests: &Dests, now: Duration) -> Self {
        match kind {
            Scheduler::Rr => SchedState::Rr(rr::Rr::default()),
            Scheduler::Wrr => SchedState::Wrr(wrr::Wrr::new(list, dests)),
            Scheduler::Dh => SchedState::Dh(dh::Dh::new(list)),
            Scheduler::Sh => SchedState::Sh(sh::Sh::new(list, dests)),
            Scheduler::Mh => {
                let mut m = mh::Maglev::new();
                m.reassign(list, dests);
                SchedState::Mh(m)
            }
            Scheduler::Lblc => SchedState::Lblc(Box::new(lblc::Lblc::new(now))),
            Scheduler::Lblcr => SchedState::Lblcr(Box::new(lblcr::Lblcr::new(now))),
            Scheduler::Lc
            | Scheduler::Wlc
            | Scheduler::Sed
            | Scheduler::Nq
            | Scheduler::Fo
            | Scheduler::Ovf
            | Scheduler::Twos => SchedState::Stateless,
        }
    }

    /// add_dest hook; the new dest is already at list[0].
    pub fn dest_added(&mut self, list: &[u32], dests: &Dests) {
        match self {
            SchedState::Rr(r) => r.dest_added(),
            SchedState::Wrr(w) => w.dest_changed(list, dests),
            SchedState::Dh(h) => h.reassign(list),
            SchedState::Sh(h) => h.reassign(list, dests),
            SchedState::Mh(m) => m.reassign(list, dests),
            _ => {}
        }
    }

    /// del_dest hook; `idx` is where the dest was, the list no longer holds it.
    pub fn dest_removed(&mut self, idx: usize, list: &[u32], dests: &Dests) {
        match self {
            SchedState::Rr(r) => r.dest_removed(idx),
            SchedState::Wrr(w) => w.dest_changed(list, dests),
            SchedState::Dh(h) => h.reassign(list),
            SchedState::Sh(h) => h.reassign(list, dests),
            SchedState::Mh(m) => m.reassign(list, dests),
            _ => {}
        }
    }

    /// upd_dest hook (weight or threshold edit). dh has none.
    pub fn dest_updated(&mut self, list: &[u32], dests: &Dests) {
        match self {
            SchedState::Wrr(w) => w.dest_changed(list, dests),
            SchedState::Sh(h) => h.reassign(list, dests),
            SchedState::Mh(m) => m.reassign(list, dests),
            _ => {}
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
            SchedState::Lblc(c) => Some(c.next_tick()),
            SchedState::Lblcr(c) => Some(c.next_tick()),
            _ => None,
        }
    }

    /// Run timers (lblc/lblcr cache expiry).
    pub fn expire(&mut self, now: Duration) {
        match self {
            SchedState::Lblc(c) => c.expire(now),
            SchedState::Lblcr(c) => c.expire(now),
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
        match (kind, self) {
            (Scheduler::Rr, SchedState::Rr(r)) => r.schedule(list, dests, why),
            (Scheduler::Wrr, SchedState::Wrr(w)) => w.schedule(list, dests, why),
            (Scheduler::Lc, _) => lc::schedule(list, dests, why),
            (Scheduler::Wlc, _) => wlc::schedule(list, dests, why),
            (Scheduler::Sed, _) => sed::schedule(list, dests, why),
            (Scheduler::Nq, _) => nq::schedule(list, dests, why),
            (Scheduler::Fo, _) => fo::schedule(list, dests, why),
            (Scheduler::Ovf, _) => ovf::schedule(list, dests, why),
            (Scheduler::Twos, _) => twos::schedule(list, dests, rng, why),
            (Scheduler::Dh, SchedState::Dh(h)) => h.schedule(dests, input, why),
            (Scheduler::Sh, SchedState::Sh(h)) => h.schedule(flags, dests, input, why),
            (Scheduler::Mh, SchedState::Mh(m)) => m.schedule(flags, dests, input, why),
            (Scheduler::Lblc, SchedState::Lblc(t)) => t.schedule(list, dests, input, why),
            (Scheduler::Lblcr, SchedState::Lblcr(t)) => t.schedule(list, dests, input, why),
            // The state is built from the kind and rebuilt when it changes, so they agree.
            _ => None,
        }
    }
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
        Scheduler::Rr => rr::RULE,
        Scheduler::Wrr => wrr::RULE,
        Scheduler::Lc => lc::RULE,
        Scheduler::Wlc => wlc::RULE,
        Scheduler::Lblc => lblc::RULE,
        Scheduler::Lblcr => lblcr::RULE,
        Scheduler::Dh => dh::RULE,
        Scheduler::Sh => sh::RULE,
        Scheduler::Sed => sed::RULE,
        Scheduler::Nq => nq::RULE,
        Scheduler::Mh => mh::RULE,
        Scheduler::Fo => fo::RULE,
        Scheduler::Ovf => ovf::RULE,
        Scheduler::Twos => twos::RULE,
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
            state.dest_added(&list, &dests);
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
