//! Deliberate, test-only faults, as devices that wrap another device.
//!
//! The core knows nothing of them: a fault changes what leaves (or when), exactly as a
//! broken director or a busy network would, so the scenario suite can prove it would notice.
//! They are chosen through the [`BREAK_ENV`] environment variable, e.g.
//! `LVSLAB_BREAK=nat-source-rewrite` or `LVSLAB_BREAK=timing:seed=7,max_ms=3`; several
//! faults are separated by commas (`timing,nat-source-rewrite`), a `key=value` after a
//! fault's name being one of its parameters.
//!
//! - `nat-source-rewrite`: NAT replies leave the director with the real server's address
//!   instead of the VIP.
//! - `timing[:seed=N,max_ms=M]`: every frame the director sends is held back for a
//!   seeded pseudo-random delay in `0..=M` ms (default seed 1, 3 ms), which reorders frames
//!   within and across interfaces: the netem this host lacks.

use crate::device::{Device, Readiness, SendReport};
use crate::Error;
use lvslab_core::wire::{self, Parsed, IPPROTO_TCP, IPPROTO_UDP, L4};
use rand_core::{RngCore, SeedableRng};
use rand_pcg::Pcg32;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::os::fd::RawFd;
use std::str::FromStr;
use std::time::Duration;

/// Environment variable the userspace director reads for deliberate, test-only faults.
pub const BREAK_ENV: &str = "LVSLAB_BREAK";

/// The fault names and their parameters, for error messages and `--help`.
pub const KNOWN_FAULTS: &str = "nat-source-rewrite, timing[:seed=N,max_ms=M]";

/// A fault named in [`BREAK_ENV`] that cannot be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultError {
    /// No such fault.
    #[error("unknown director fault `{0}` (known: {KNOWN_FAULTS})")]
    Unknown(String),
    /// A parameter the fault does not take, or a value it cannot use.
    #[error("director fault `{fault}`: bad parameter `{param}` ({KNOWN_FAULTS})")]
    BadParam {
        /// The fault.
        fault: String,
        /// The parameter as written.
        param: String,
    },
}

/// One test-only fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// NAT replies leave with the real server's address: the source rewrite is undone.
    NatSourceRewrite,
    /// Every sent frame is delayed by a seeded pseudo-random time in `0..=max`.
    Timing {
        /// Seed of the generator.
        seed: u64,
        /// The longest delay.
        max: Duration,
    },
}

/// Default seed of the `timing` fault.
pub const TIMING_SEED: u64 = 1;
/// Default longest delay of the `timing` fault.
pub const TIMING_MAX: Duration = Duration::from_millis(3);

/// The faults to run with, innermost first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultSpec(pub Vec<Fault>);

impl FromStr for FaultSpec {
    type Err = FaultError;

    fn from_str(s: &str) -> Result<Self, FaultError> {
        let mut faults: Vec<Fault> = Vec::new();
        for piece in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            // `key=value` without a fault name continues the previous fault's parameters.
            if piece.contains('=') && !piece.contains(':') {
                let Some(last) = faults.last_mut() else {
                    return Err(FaultError::Unknown(piece.to_string()));
                };
                set_param(last, piece)?;
                continue;
            }
            let (name, params) = piece.split_once(':').unwrap_or((piece, ""));
            let mut fault = match name {
                "nat-source-rewrite" => Fault::NatSourceRewrite,
                "timing" => Fault::Timing {
                    seed: TIMING_SEED,
                    max: TIMING_MAX,
                },
                other => return Err(FaultError::Unknown(other.to_string())),
            };
            for p in params.split(',').filter(|p| !p.is_empty()) {
                set_param(&mut fault, p)?;
            }
            faults.push(fault);
        }
        Ok(FaultSpec(faults))
    }
}

fn set_param(fault: &mut Fault, param: &str) -> Result<(), FaultError> {
    let bad = |name: &str| FaultError::BadParam {
        fault: name.to_string(),
        param: param.to_string(),
    };
    match fault {
        Fault::NatSourceRewrite => Err(bad("nat-source-rewrite")),
        Fault::Timing { seed, max } => {
            let (k, v) = param.split_once('=').ok_or_else(|| bad("timing"))?;
            let v: u64 = v.trim().parse().map_err(|_| bad("timing"))?;
            match k.trim() {
                "seed" => *seed = v,
                "max_ms" => *max = Duration::from_millis(v),
                _ => return Err(bad("timing")),
            }
            Ok(())
        }
    }
}

impl FaultSpec {
    /// The faults [`BREAK_ENV`] asks for; none when it is unset or empty.
    pub fn from_env() -> Result<Self, FaultError> {
        match std::env::var(BREAK_ENV) {
            Ok(v) => v.parse(),
            Err(_) => Ok(FaultSpec::default()),
        }
    }

    /// No fault at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `device` wrapped in every fault, the first one innermost.
    pub fn wrap<'a, D: Device + 'a>(&self, device: D) -> Box<dyn Device + 'a> {
        let mut dev: Box<dyn Device + 'a> = Box::new(device);
        for f in &self.0 {
            dev = match *f {
                Fault::NatSourceRewrite => Box::new(NatSourceRewrite::new(dev)),
                Fault::Timing { seed, max } => Box::new(Timing::new(dev, seed, max)),
            };
        }
        dev
    }
}

type Endpoint = (u8, Ipv4Addr, u16);

fn endpoints(meta: &wire::Ipv4Meta) -> Option<(Endpoint, Endpoint)> {
    let (proto, sport, dport) = match meta.l4 {
        L4::Tcp { sport, dport, .. } => (IPPROTO_TCP, sport, dport),
        L4::Udp { sport, dport } => (IPPROTO_UDP, sport, dport),
        _ => return None,
    };
    Some(((proto, meta.src, sport), (proto, meta.dst, dport)))
}

/// The `nat-source-rewrite` fault: puts a NAT reply's real-server source back.
///
/// It remembers, per TCP/UDP destination, the source of the last frame received for it,
/// and every destination frames were received for. A frame the director sends from such a
/// destination (a VIP:port clients talk to) to a remembered destination (a client a real
/// server answered) leaves with that real server's address and port instead, checksums
/// fixed by the core's own rewrite. Frames the director passes on unchanged (DR, TUN,
/// NAT inbound) never come from an address it received traffic for, so they are untouched.
pub struct NatSourceRewrite<D> {
    inner: D,
    seen: Seen,
}

#[derive(Default)]
struct Seen {
    source_for: HashMap<Endpoint, Endpoint>,
    destinations: HashSet<Endpoint>,
}

/// Forget everything past this many flows: a test fault must not grow without bound.
const SEEN_MAX: usize = 1 << 16;

impl Seen {
    fn learn(&mut self, frame: &[u8]) {
        let Ok(Parsed::Ipv4(meta)) = wire::parse(frame) else {
            return;
        };
        let Some((src, dst)) = endpoints(&meta) else {
            return;
        };
        if self.source_for.len() >= SEEN_MAX || self.destinations.len() >= SEEN_MAX {
            self.source_for.clear();
            self.destinations.clear();
        }
        self.source_for.insert(dst, src);
        self.destinations.insert(dst);
    }

    fn undo(&self, frame: &mut [u8]) {
        let Ok(Parsed::Ipv4(meta)) = wire::parse(frame) else {
            return;
        };
        let Some((src, dst)) = endpoints(&meta) else {
            return;
        };
        if let Some(&(_, rip, rport)) = self.source_for.get(&dst) {
            if (rip, rport) != (src.1, src.2) && self.destinations.contains(&src) {
                wire::rewrite_src(frame, &meta, rip, rport);
            }
        }
    }
}

impl<D: Device> NatSourceRewrite<D> {
    /// `inner` with NAT replies leaving un-masqueraded.
    pub fn new(inner: D) -> Self {
        NatSourceRewrite {
            inner,
            seen: Seen::default(),
        }
    }
}

impl<D: Device> Device for NatSourceRewrite<D> {
    fn iface_count(&self) -> usize {
        self.inner.iface_count()
    }
    fn iface_name(&self, iface: usize) -> &str {
        self.inner.iface_name(iface)
    }
    fn recv(
        &mut self,
        now: Duration,
        iface: usize,
        rx: &mut dyn FnMut(&[u8]),
    ) -> Result<bool, Error> {
        let seen = &mut self.seen;
        self.inner.recv(now, iface, &mut |f| {
            seen.learn(f);
            rx(f)
        })
    }
    fn send(&mut self, now: Duration, iface: usize, frames: &[Vec<u8>]) -> SendReport {
        let mut frames = frames.to_vec();
        for f in &mut frames {
            self.seen.undo(f);
        }
        self.inner.send(now, iface, &frames)
    }
    fn wait(&mut self, timeout: Duration, extra: &[RawFd]) -> Result<Readiness, Error> {
        self.inner.wait(timeout, extra)
    }
    fn poll_at(&self) -> Option<Duration> {
        self.inner.poll_at()
    }
    fn flush(&mut self, now: Duration) -> SendReport {
        self.inner.flush(now)
    }
}

/// The `timing` fault: every sent frame waits a seeded pseudo-random delay.
///
/// Frames are released in order of their due time (ties in the order they were sent), so a
/// later frame with a shorter delay overtakes an earlier one, on the same interface or on
/// another. The same seed and the same sends at the same times give the same result.
pub struct Timing<D> {
    inner: D,
    rng: Pcg32,
    max_us: u64,
    /// Held frames by (due time, sequence number).
    held: BTreeMap<(Duration, u64), (usize, Vec<u8>)>,
    seq: u64,
}

impl<D: Device> Timing<D> {
    /// `inner` with every sent frame delayed by up to `max`, drawn from a generator seeded
    /// with `seed`.
    pub fn new(inner: D, seed: u64, max: Duration) -> Self {
        Timing {
            inner,
            rng: Pcg32::seed_from_u64(seed),
            max_us: u64::try_from(max.as_micros()).unwrap_or(u64::MAX),
            held: BTreeMap::new(),
            seq: 0,
        }
    }

    /// Frames held back now.
    pub fn held(&self) -> usize {
        self.held.len()
    }
}

impl<D: Device> Device for Timing<D> {
    fn iface_count(&self) -> usize {
        self.inner.iface_count()
    }
    fn iface_name(&self, iface: usize) -> &str {
        self.inner.iface_name(iface)
    }
    fn recv(
        &mut self,
        now: Duration,
        iface: usize,
        rx: &mut dyn FnMut(&[u8]),
    ) -> Result<bool, Error> {
        self.inner.recv(now, iface, rx)
    }
    fn send(&mut self, now: Duration, iface: usize, frames: &[Vec<u8>]) -> SendReport {
        for f in frames {
            let delay = match self.max_us {
                0 => 0,
                m => self.rng.next_u64() % (m + 1),
            };
            self.seq += 1;
            self.held.insert(
                (now + Duration::from_micros(delay), self.seq),
                (iface, f.clone()),
            );
        }
        let mut report = SendReport {
            sent: frames.len(),
            ..SendReport::default()
        };
        // A zero delay leaves at once rather than waiting for the loop's next turn.
        let due = self.flush(now);
        report.dropped += due.dropped;
        report.first_errno = due.first_errno;
        report.sent -= due.dropped.min(report.sent);
        report
    }
    fn wait(&mut self, timeout: Duration, extra: &[RawFd]) -> Result<Readiness, Error> {
        self.inner.wait(timeout, extra)
    }
    fn poll_at(&self) -> Option<Duration> {
        let mine = self.held.keys().next().map(|k| k.0);
        match (mine, self.inner.poll_at()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
    fn flush(&mut self, now: Duration) -> SendReport {
        let mut report = self.inner.flush(now);
        // Consecutive due frames for one interface leave in one batch.
        let mut run: Option<(usize, Vec<Vec<u8>>)> = None;
        while let Some(entry) = self.held.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (iface, frame) = entry.remove();
            match &mut run {
                Some((i, frames)) if *i == iface => frames.push(frame),
                _ => {
                    if let Some((i, frames)) = run.take() {
                        report.merge(self.inner.send(now, i, &frames));
                    }
                    run = Some((iface, vec![frame]));
                }
            }
        }
        if let Some((i, frames)) = run {
            report.merge(self.inner.send(now, i, &frames));
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_parameters() {
        assert_eq!("".parse::<FaultSpec>().unwrap(), FaultSpec::default());
        assert_eq!(
            "nat-source-rewrite".parse::<FaultSpec>().unwrap().0,
            vec![Fault::NatSourceRewrite]
        );
        assert_eq!(
            "timing".parse::<FaultSpec>().unwrap().0,
            vec![Fault::Timing {
                seed: TIMING_SEED,
                max: TIMING_MAX
            }]
        );
        assert_eq!(
            "timing:seed=7,max_ms=5,nat-source-rewrite"
                .parse::<FaultSpec>()
                .unwrap()
                .0,
            vec![
                Fault::Timing {
                    seed: 7,
                    max: Duration::from_millis(5)
                },
                Fault::NatSourceRewrite
            ]
        );
    }

    fn timed(seed: u64) -> Vec<crate::memory::SentFrame> {
        let clock = crate::SimClock::new();
        let mut mem = crate::MemDevice::new(["eth0", "eth1"], clock);
        {
            let mut t = Timing::new(&mut mem, seed, Duration::from_millis(3));
            for i in 0..10u8 {
                t.send(Duration::ZERO, usize::from(i % 2), &[vec![i; 60]]);
            }
            let mut now = Duration::ZERO;
            while let Some(due) = t.poll_at() {
                assert!(due >= now && due <= Duration::from_millis(3));
                now = due;
                t.flush(now);
            }
            assert_eq!(t.held(), 0);
        }
        mem.take_sent()
    }

    #[test]
    fn timing_reorders_within_and_across_interfaces_by_seed() {
        let order =
            |v: &[crate::memory::SentFrame]| v.iter().map(|f| f.data[0]).collect::<Vec<u8>>();
        let a = timed(7);
        let mut sorted = order(&a);
        sorted.sort();
        assert_eq!(sorted, (0..10).collect::<Vec<u8>>(), "every frame, once");
        assert_ne!(order(&a), sorted, "seed 7 reorders");
        let eth0: Vec<u8> = a
            .iter()
            .filter(|f| f.iface == 0)
            .map(|f| f.data[0])
            .collect();
        assert!(
            eth0.windows(2).any(|w| w[0] > w[1]),
            "within one interface: {eth0:?}"
        );
        assert_eq!(a, timed(7), "the same seed, the same times and order");
        assert_ne!(a, timed(8));
    }

    #[test]
    fn unknown_names_list_the_known_ones() {
        let e = "nat-src".parse::<FaultSpec>().unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("nat-src") && msg.contains("nat-source-rewrite") && msg.contains("timing"),
            "{msg}"
        );
        assert!(matches!(
            "timing:speed=3".parse::<FaultSpec>(),
            Err(FaultError::BadParam { .. })
        ));
        assert!(matches!(
            "nat-source-rewrite:x=1".parse::<FaultSpec>(),
            Err(FaultError::BadParam { .. })
        ));
    }
}
