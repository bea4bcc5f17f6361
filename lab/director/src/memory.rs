//! An in-memory device for tests: frames to receive wait in per-interface queues with the
//! time they arrive, and every frame sent is recorded with the time it left.
//!
//! Time is simulated: [`MemDevice::wait`] does not sleep but moves the shared [`SimClock`]
//! forward to the next arrival or to the end of the timeout, so a loop over this device
//! runs as fast as the CPU allows and gives the same result on any machine.

use crate::device::{Clock, Device, Readiness, SendReport};
use crate::Error;
use std::cell::Cell;
use std::collections::VecDeque;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::time::Duration;

/// A clock that moves only when told to; clones share the same time.
#[derive(Debug, Clone, Default)]
pub struct SimClock(Rc<Cell<Duration>>);

impl SimClock {
    /// A clock at time zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Move the clock to `t` (never backwards).
    pub fn advance_to(&self, t: Duration) {
        if t > self.0.get() {
            self.0.set(t);
        }
    }
}

impl Clock for SimClock {
    fn now(&self) -> Duration {
        self.0.get()
    }
}

/// A frame the device sent: when, on which interface, what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentFrame {
    /// The clock when it was sent.
    pub at: Duration,
    /// The interface index.
    pub iface: usize,
    /// The Ethernet frame.
    pub data: Vec<u8>,
}

/// Frames a [`MemDevice::recv`] call hands over at most, like one recvmmsg.
const MEM_BATCH: usize = crate::afpacket::BATCH;

/// Interfaces made of queues.
#[derive(Debug)]
pub struct MemDevice {
    names: Vec<String>,
    clock: SimClock,
    rx: Vec<VecDeque<(Duration, Vec<u8>)>>,
    sent: Vec<SentFrame>,
}

impl MemDevice {
    /// A device with interfaces `names`, reading time from `clock`.
    pub fn new<S: Into<String>>(names: impl IntoIterator<Item = S>, clock: SimClock) -> Self {
        let names: Vec<String> = names.into_iter().map(Into::into).collect();
        MemDevice {
            rx: names.iter().map(|_| VecDeque::new()).collect(),
            names,
            clock,
            sent: Vec::new(),
        }
    }

    /// Queue `frame` to arrive on `iface` at `at`; frames of one interface must be queued in
    /// time order. Unknown interfaces are ignored.
    pub fn push_rx(&mut self, at: Duration, iface: usize, frame: Vec<u8>) {
        if let Some(q) = self.rx.get_mut(iface) {
            q.push_back((at, frame));
        }
    }

    /// Frames still waiting to be received.
    pub fn rx_pending(&self) -> usize {
        self.rx.iter().map(VecDeque::len).sum()
    }

    /// Everything sent so far, in order.
    pub fn sent(&self) -> &[SentFrame] {
        &self.sent
    }

    /// Take everything sent so far.
    pub fn take_sent(&mut self) -> Vec<SentFrame> {
        std::mem::take(&mut self.sent)
    }

    fn next_arrival(&self) -> Option<Duration> {
        self.rx.iter().filter_map(|q| q.front().map(|f| f.0)).min()
    }
}

impl Device for MemDevice {
    fn iface_count(&self) -> usize {
        self.names.len()
    }

    fn iface_name(&self, iface: usize) -> &str {
        self.names.get(iface).map_or("?", String::as_str)
    }

    fn recv(
        &mut self,
        now: Duration,
        iface: usize,
        rx: &mut dyn FnMut(&[u8]),
    ) -> Result<bool, Error> {
        let Some(q) = self.rx.get_mut(iface) else {
            return Ok(false);
        };
        let mut n = 0;
        while n < MEM_BATCH && q.front().is_some_and(|f| f.0 <= now) {
            if let Some((_, frame)) = q.pop_front() {
                rx(&frame);
                n += 1;
            }
        }
        Ok(n == MEM_BATCH)
    }

    fn send(&mut self, now: Duration, iface: usize, frames: &[Vec<u8>]) -> SendReport {
        if iface >= self.names.len() {
            return SendReport {
                dropped: frames.len(),
                ..SendReport::default()
            };
        }
        self.sent.extend(frames.iter().map(|f| SentFrame {
            at: now,
            iface,
            data: f.clone(),
        }));
        SendReport {
            sent: frames.len(),
            ..SendReport::default()
        }
    }

    /// Extra descriptors are never reported readable: tests talk to the loop directly.
    fn wait(&mut self, timeout: Duration, extra: &[RawFd]) -> Result<Readiness, Error> {
        let now = self.clock.now();
        let deadline = now.saturating_add(timeout);
        let wake = self.next_arrival().map_or(deadline, |a| a.min(deadline));
        self.clock.advance_to(wake);
        let now = self.clock.now();
        Ok(Readiness {
            ifaces: self
                .rx
                .iter()
                .map(|q| q.front().is_some_and(|f| f.0 <= now))
                .collect(),
            extra: vec![false; extra.len()],
        })
    }
}
