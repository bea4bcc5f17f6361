//! Live capture on lab interfaces: one libpcap handle per hop, each opened from a thread
//! that has entered the node's network namespace.
//!
//! libpcap's read timeout does not fire on an idle interface, so every handle is put in
//! non-blocking mode and its selectable fd is polled together with a stop pipe.

use crate::files::{CapturedPacket, HopCapture};
use crate::roles::Hop;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

/// Snapshot length: whole frames. veth offloads are off in labs, so frames stay within the
/// MTU; libpcap's ring has one snaplen-sized slot per frame, so a small snaplen means many
/// slots (a 256 KiB snaplen would leave a few dozen and drop bursts).
const SNAPLEN: i32 = 4096;
/// Kernel ring per handle: about 4000 frame slots at this snaplen.
const BUFFER_SIZE: i32 = 16 << 20;

/// Errors from live capture.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// Entering the node's namespace failed.
    #[error("{hop}: cannot enter network namespace {netns}: {reason}")]
    Netns {
        /// Where.
        hop: Hop,
        /// The namespace.
        netns: String,
        /// Why.
        reason: String,
    },
    /// libpcap refused to open or configure the interface.
    #[error("{hop}: {what}: {source}")]
    Pcap {
        /// Where.
        hop: Hop,
        /// What was being done.
        what: &'static str,
        /// libpcap's error.
        source: pcap::Error,
    },
    /// The filter expression is not valid tcpdump syntax.
    #[error(
        "bad capture filter {filter:?}: {source} (use tcpdump filter syntax, e.g. \"tcp port 80\")"
    )]
    Filter {
        /// The expression.
        filter: String,
        /// libpcap's error.
        source: pcap::Error,
    },
    /// The kernel dropped packets: the capture is incomplete.
    #[error("{hop}: the kernel dropped {dropped} packets; the capture is incomplete")]
    Dropped {
        /// Where.
        hop: Hop,
        /// How many.
        dropped: u32,
    },
    /// Polling or the stop pipe failed.
    #[error("{hop}: {source}")]
    Sys {
        /// Where.
        hop: Hop,
        /// Why.
        source: nix::Error,
    },
    /// A capture thread died.
    #[error("capture thread for {0} panicked")]
    Thread(Hop),
}

/// Where to capture: a hop and the namespace its interface lives in.
#[derive(Debug, Clone)]
pub struct CaptureTarget {
    /// The namespace (`lvs-<lab>-<node>`).
    pub netns: String,
    /// The node and interface.
    pub hop: Hop,
}

/// A running capture on a set of hops.
pub struct LiveCapture {
    seen: Arc<AtomicU64>,
    stop: Option<OwnedFd>,
    threads: Vec<(Hop, JoinHandle<Result<HopCapture, CaptureError>>)>,
}

impl LiveCapture {
    /// Opens a handle on every target and returns once all of them are capturing, so
    /// traffic sent after this returns is seen. `filter` is tcpdump syntax.
    pub fn start(targets: &[CaptureTarget], filter: Option<&str>) -> Result<Self, CaptureError> {
        let first_hop = targets
            .first()
            .map(|t| t.hop.clone())
            .unwrap_or_else(|| Hop::new("-", "-"));
        // Close-on-exec: a daemon started while capturing (a scenario's start_server) must
        // not inherit the write end, or closing ours would never signal EOF.
        let (stop_r, stop_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|source| {
                CaptureError::Sys {
                    hop: first_hop,
                    source,
                }
            })?;
        let stop_r = Arc::new(stop_r);
        let seen = Arc::new(AtomicU64::new(0));
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), CaptureError>>();
        let mut threads = Vec::new();
        for t in targets {
            let t = t.clone();
            let hop = t.hop.clone();
            let filter = filter.map(str::to_owned);
            let stop_r = stop_r.clone();
            let ready_tx = ready_tx.clone();
            let seen = seen.clone();
            let handle = std::thread::Builder::new()
                .name(format!("capture {}", t.hop))
                .spawn(move || capture_thread(t, filter, &stop_r, &seen, ready_tx))
                .map_err(|e| CaptureError::Netns {
                    hop: hop.clone(),
                    netns: String::new(),
                    reason: e.to_string(),
                })?;
            threads.push((hop, handle));
        }
        drop(ready_tx);
        let mut me = LiveCapture {
            seen,
            stop: Some(stop_w),
            threads,
        };
        let mut first_err = None;
        for _ in 0..me.threads.len() {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(_) => break,
            }
        }
        if let Some(e) = first_err {
            me.stop.take();
            for (_, h) in me.threads.drain(..) {
                let _ = h.join();
            }
            return Err(e);
        }
        Ok(me)
    }

    /// Packets captured so far, over all hops.
    pub fn packets_seen(&self) -> u64 {
        self.seen.load(Ordering::Relaxed)
    }

    /// Waits until no hop has captured anything for `quiet` (at most `max` in all), so the
    /// last replies and closing segments of a run are in before [`LiveCapture::stop`].
    pub fn wait_quiet(&self, quiet: Duration, max: Duration) {
        let t0 = std::time::Instant::now();
        let mut last = self.packets_seen();
        let mut since = std::time::Instant::now();
        while t0.elapsed() < max {
            std::thread::sleep(Duration::from_millis(10));
            let now = self.packets_seen();
            if now != last {
                last = now;
                since = std::time::Instant::now();
            } else if since.elapsed() >= quiet {
                return;
            }
        }
    }

    /// Stops every handle after draining what the kernel still holds; returns the
    /// captures in the order the targets were given.
    pub fn stop(mut self) -> Result<Vec<HopCapture>, CaptureError> {
        // Closing the write end makes the pipe readable (EOF) for every thread at once.
        self.stop.take();
        let mut out = Vec::new();
        let mut first_err = None;
        for (hop, h) in self.threads.drain(..) {
            match h.join() {
                Ok(Ok(c)) => out.push(c),
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(_) => {
                    first_err.get_or_insert(CaptureError::Thread(hop));
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }
}

impl Drop for LiveCapture {
    fn drop(&mut self) {
        self.stop.take();
        for (_, h) in self.threads.drain(..) {
            let _ = h.join();
        }
    }
}

fn capture_thread(
    t: CaptureTarget,
    filter: Option<String>,
    stop: &OwnedFd,
    seen: &AtomicU64,
    ready: mpsc::Sender<Result<(), CaptureError>>,
) -> Result<HopCapture, CaptureError> {
    let hop = t.hop.clone();
    let ready_err = ready.clone();
    // setns changes only the calling thread: run_in gives the handle a thread of its own
    // inside the node's namespace, so libpcap finds the node's interface there.
    match lvslab_netns::netns::run_in(&t.netns, move || {
        capture_in_netns(t.hop, filter.as_deref(), stop, seen, ready)
    }) {
        Ok(r) => r,
        Err(e) => {
            let err = CaptureError::Netns {
                hop: hop.clone(),
                netns: String::new(),
                reason: e.to_string(),
            };
            let _ = ready_err.send(Err(err));
            Err(CaptureError::Thread(hop))
        }
    }
}

fn capture_in_netns(
    hop: Hop,
    filter: Option<&str>,
    stop: &OwnedFd,
    seen: &AtomicU64,
    ready: mpsc::Sender<Result<(), CaptureError>>,
) -> Result<HopCapture, CaptureError> {
    let mut cap = match open(&hop, filter) {
        Ok(c) => {
            let _ = ready.send(Ok(()));
            c
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return Err(CaptureError::Thread(hop));
        }
    };
    let mut packets = Vec::new();
    let sys = |source| CaptureError::Sys {
        hop: hop.clone(),
        source,
    };
    loop {
        let mut fds = [
            PollFd::new(cap.as_fd(), PollFlags::POLLIN),
            PollFd::new(stop.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::from(200u16)) {
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(e) => return Err(sys(e)),
        }
        let stopping = fds[1].revents().is_some_and(|r| !r.is_empty());
        let before = packets.len();
        drain(&mut cap, &hop, &mut packets)?;
        seen.fetch_add((packets.len() - before) as u64, Ordering::Relaxed);
        if stopping {
            break;
        }
    }
    let stats = cap.stats().map_err(|source| CaptureError::Pcap {
        hop: hop.clone(),
        what: "reading capture statistics",
        source,
    })?;
    if stats.dropped > 0 {
        return Err(CaptureError::Dropped {
            hop,
            dropped: stats.dropped,
        });
    }
    Ok(HopCapture { hop, packets })
}

fn open(hop: &Hop, filter: Option<&str>) -> Result<pcap::Capture<pcap::Active>, CaptureError> {
    let err = |what| {
        let hop = hop.clone();
        move |source| CaptureError::Pcap { hop, what, source }
    };
    let mut cap = pcap::Capture::from_device(hop.iface.as_str())
        .map_err(err("finding the interface"))?
        .snaplen(SNAPLEN)
        .buffer_size(BUFFER_SIZE)
        .immediate_mode(true)
        .precision(pcap::Precision::Nano)
        .open()
        .map_err(err("opening the interface"))?
        .setnonblock()
        .map_err(err("switching to non-blocking mode"))?;
    if let Some(f) = filter {
        cap.filter(f, true).map_err(|source| CaptureError::Filter {
            filter: f.to_owned(),
            source,
        })?;
    }
    Ok(cap)
}

/// Reads everything the kernel has queued for this handle right now.
fn drain(
    cap: &mut pcap::Capture<pcap::Active>,
    hop: &Hop,
    out: &mut Vec<CapturedPacket>,
) -> Result<(), CaptureError> {
    loop {
        match cap.next_packet() {
            Ok(p) => {
                let secs = u64::try_from(p.header.ts.tv_sec).unwrap_or(0);
                // With nanosecond precision libpcap puts nanoseconds in tv_usec.
                let nanos = u32::try_from(p.header.ts.tv_usec).unwrap_or(0);
                out.push(CapturedPacket {
                    ts: Duration::new(secs, nanos),
                    data: p.data.to_vec(),
                    orig_len: p.header.len,
                });
            }
            Err(pcap::Error::TimeoutExpired) | Err(pcap::Error::NoMorePackets) => return Ok(()),
            Err(source) => {
                return Err(CaptureError::Pcap {
                    hop: hop.clone(),
                    what: "reading packets",
                    source,
                })
            }
        }
    }
}
