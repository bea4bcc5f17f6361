//! The device seam: a set of interfaces the director loop receives from and sends on.
//!
//! Interfaces are numbered as the director's [`lvslab_core::director::IfaceId`]s. The loop
//! asks the device to [`Device::wait`] until an interface (or one of the loop's own
//! descriptors, the control socket) is readable, drains ready interfaces with
//! [`Device::recv`] and hands each answer back with [`Device::send`]. A device that holds
//! frames back (the `timing` fault) says when it next needs the loop with
//! [`Device::poll_at`] and releases them in [`Device::flush`].

use crate::Error;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

/// Which interfaces, and which of the extra descriptors, are readable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Readiness {
    /// One flag per interface.
    pub ifaces: Vec<bool>,
    /// One flag per extra descriptor given to [`Device::wait`].
    pub extra: Vec<bool>,
}

/// What became of frames handed to a device.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SendReport {
    /// Frames the device took (or queued, for a delaying device).
    pub sent: usize,
    /// Frames the device refused; each was offered once and is not sent again.
    pub dropped: usize,
    /// The errno of the first refused frame, when the kernel told it.
    pub first_errno: Option<i32>,
}

impl SendReport {
    /// Add `other` to this report.
    pub fn merge(&mut self, other: SendReport) {
        self.sent += other.sent;
        self.dropped += other.dropped;
        self.first_errno = self.first_errno.or(other.first_errno);
    }
}

/// A set of network interfaces that receive and send whole Ethernet frames.
pub trait Device {
    /// How many interfaces there are; they are numbered from 0.
    fn iface_count(&self) -> usize;

    /// Name of interface `iface`, for logs.
    fn iface_name(&self, iface: usize) -> &str;

    /// Hand every frame waiting on `iface`, up to one batch, to `rx`; returns whether more
    /// may be waiting (the batch was full).
    fn recv(
        &mut self,
        now: Duration,
        iface: usize,
        rx: &mut dyn FnMut(&[u8]),
    ) -> Result<bool, Error>;

    /// Send `frames` on `iface`, in order. A refused frame is dropped and counted, never
    /// retried after the device may have seen it.
    fn send(&mut self, now: Duration, iface: usize, frames: &[Vec<u8>]) -> SendReport;

    /// Block until an interface or one of `extra` is readable, or `timeout` passes.
    fn wait(&mut self, timeout: Duration, extra: &[RawFd]) -> Result<Readiness, Error>;

    /// When the device next has something to do in [`Device::flush`], if ever.
    fn poll_at(&self) -> Option<Duration> {
        None
    }

    /// Do what is due at `now` (send frames held back until now).
    fn flush(&mut self, _now: Duration) -> SendReport {
        SendReport::default()
    }
}

/// A device behind a box or a `&mut` is the device itself.
macro_rules! forward_device {
    ($($ty:ty),*) => {$(
        impl<D: Device + ?Sized> Device for $ty {
            fn iface_count(&self) -> usize {
                (**self).iface_count()
            }
            fn iface_name(&self, iface: usize) -> &str {
                (**self).iface_name(iface)
            }
            fn recv(
                &mut self,
                now: Duration,
                iface: usize,
                rx: &mut dyn FnMut(&[u8]),
            ) -> Result<bool, Error> {
                (**self).recv(now, iface, rx)
            }
            fn send(&mut self, now: Duration, iface: usize, frames: &[Vec<u8>]) -> SendReport {
                (**self).send(now, iface, frames)
            }
            fn wait(&mut self, timeout: Duration, extra: &[RawFd]) -> Result<Readiness, Error> {
                (**self).wait(timeout, extra)
            }
            fn poll_at(&self) -> Option<Duration> {
                (**self).poll_at()
            }
            fn flush(&mut self, now: Duration) -> SendReport {
                (**self).flush(now)
            }
        }
    )*};
}

forward_device!(Box<D>, &mut D);

/// The loop's notion of time: a `Duration` since an arbitrary epoch, as the core takes it.
pub trait Clock {
    /// The current time.
    fn now(&self) -> Duration;
}

/// Wall-clock time since the clock was made (monotonic).
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock(Instant);

impl MonotonicClock {
    /// A clock whose epoch is now.
    pub fn start() -> Self {
        MonotonicClock(Instant::now())
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> Duration {
        self.0.elapsed()
    }
}
