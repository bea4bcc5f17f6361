//! The host side of the guest agent's line protocol (see `initramfs::INIT`).
//!
//! The channel is a virtio-serial port backed by qemu's `pipe` chardev (two FIFOs), not
//! a unix socket: a socket port reads EOF in the guest whenever no host client is
//! connected, which forced the agent to poll and kept an idle TCG guest at 30% of a CPU;
//! a FIFO port stays connected, so the agent blocks in read().
//!
//! Every request carries an id, and answers with another id are skipped: a client that
//! gave up (timeout, Ctrl-C) leaves its late answer in the port for the next client, and
//! pings sent while the guest was still booting are answered in a burst.
use crate::error::{IoAt, VmError};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What a command run in the VM left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// Exit status as the guest's shell reports it (128+N for signal N).
    pub status: i32,
    /// Standard output, byte for byte.
    pub stdout: Vec<u8>,
    /// Standard error, byte for byte.
    pub stderr: Vec<u8>,
}

/// A connection to the guest agent: the two FIFOs of qemu's `pipe` chardev, held
/// under an exclusive lock so that requests of concurrent clients do not interleave.
pub(crate) struct AgentClient {
    _lock: File,
    writer: File,
    reader: File,
    pending: Vec<u8>,
}

/// The agent's answer to a ping.
pub(crate) struct Pong {
    pub release: String,
    pub uptime_secs: f64,
}

fn next_id() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}-{}-{}",
        std::process::id(),
        nanos,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn proto(e: std::io::Error) -> VmError {
    VmError::Protocol(e.to_string())
}

/// Wait up to `timeout` (forever if None) for `fd` to be readable.
fn wait_readable(fd: &File, timeout: Option<Duration>) -> std::io::Result<bool> {
    let ms = match timeout {
        None => -1,
        Some(t) => i32::try_from(t.as_millis()).unwrap_or(i32::MAX),
    };
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n >= 0 {
            return Ok(n > 0);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Take the agent lock, waiting at most `wait` (forever if None).
fn lock(path: &Path, wait: Option<Duration>) -> Result<Option<File>, VmError> {
    let f = File::create(path).at(path)?;
    let deadline = wait.map(|w| Instant::now() + w);
    loop {
        let op = if deadline.is_some() {
            libc::LOCK_EX | libc::LOCK_NB
        } else {
            libc::LOCK_EX
        };
        // SAFETY: flock on an fd owned here.
        if unsafe { libc::flock(f.as_raw_fd(), op) } == 0 {
            return Ok(Some(f));
        }
        let e = std::io::Error::last_os_error();
        match (e.kind(), deadline) {
            (std::io::ErrorKind::Interrupted, _) => {}
            (std::io::ErrorKind::WouldBlock, Some(d)) if Instant::now() < d => {
                std::thread::sleep(Duration::from_millis(20));
            }
            (std::io::ErrorKind::WouldBlock, Some(_)) => return Ok(None),
            _ => return Err(e).at(path),
        }
    }
}

impl AgentClient {
    /// Open the agent's FIFOs (`BASE.in`, `BASE.out`). `None` when another client held
    /// the lock for longer than `wait`.
    pub fn connect(base: &Path, wait: Option<Duration>) -> Result<Option<Self>, VmError> {
        let lock_path = base.with_extension("lock");
        let Some(lock) = lock(&lock_path, wait)? else {
            return Ok(None);
        };
        let inp = base.with_extension("in");
        let out = base.with_extension("out");
        // Non-blocking open: with no qemu holding the FIFO, a plain open for writing
        // would wait forever; this fails with ENXIO instead.
        let writer = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&inp)
            .at(&inp)?;
        let reader = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&out)
            .at(&out)?;
        // Writes may block (a long script fills the pipe); reads are paced by poll.
        // SAFETY: fcntl on an fd owned here.
        unsafe { libc::fcntl(writer.as_raw_fd(), libc::F_SETFL, 0) };
        Ok(Some(Self {
            _lock: lock,
            writer,
            reader,
            pending: Vec::new(),
        }))
    }

    /// Read one line, or `Ok(None)` when `deadline` passes first.
    fn line(&mut self, deadline: Option<Instant>) -> Result<Option<String>, VmError> {
        loop {
            if let Some(i) = self.pending.iter().position(|&b| b == b'\n') {
                let rest = self.pending.split_off(i + 1);
                let mut l = std::mem::replace(&mut self.pending, rest);
                l.pop();
                return Ok(Some(String::from_utf8_lossy(&l).into_owned()));
            }
            let left = match deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(None);
                    }
                    Some(left)
                }
                None => None,
            };
            if !wait_readable(&self.reader, left).map_err(proto)? {
                continue;
            }
            let mut buf = [0u8; 65536];
            match self.reader.read(&mut buf) {
                // Every writer gone: qemu, which holds the FIFO open, has exited.
                Ok(0) => return Err(VmError::Protocol("qemu went away (the VM stopped)".into())),
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(proto(e)),
            }
        }
    }

    /// Ping every `interval` until the agent answers or `deadline` passes.
    pub fn wait_ready(
        &mut self,
        deadline: Instant,
        interval: Duration,
    ) -> Result<Option<Pong>, VmError> {
        let mut ids = Vec::new();
        while Instant::now() < deadline {
            let id = next_id();
            writeln!(self.writer, "PING {id}").map_err(proto)?;
            ids.push(id);
            let step = (Instant::now() + interval).min(deadline);
            while let Some(l) = self.line(Some(step))? {
                let mut w = l.split_whitespace();
                if w.next() == Some("PONG") && w.next().is_some_and(|i| ids.iter().any(|x| x == i))
                {
                    return Ok(Some(Pong {
                        release: w.next().unwrap_or_default().to_string(),
                        uptime_secs: w.next().and_then(|u| u.parse().ok()).unwrap_or(0.0),
                    }));
                }
            }
        }
        Ok(None)
    }

    /// Run a shell script in the guest (as `/bin/sh SCRIPT` in the host root).
    pub fn run(
        &mut self,
        script: &str,
        timeout: Option<Duration>,
    ) -> Result<CommandOutput, VmError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let id = next_id();
        writeln!(self.writer, "RUN {id} {}", encode(script.as_bytes())).map_err(proto)?;
        let too_late = || VmError::Timeout(timeout.map(|t| t.as_secs()).unwrap_or(0));
        loop {
            let Some(l) = self.line(deadline)? else {
                return Err(too_late());
            };
            let mut w = l.split_whitespace();
            if w.next() != Some("RES") || w.next() != Some(id.as_str()) {
                continue;
            }
            let status = w
                .next()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| VmError::Protocol(format!("bad answer `{l}`")))?;
            let out = self.line(deadline)?.ok_or_else(too_late)?;
            let err = self.line(deadline)?.ok_or_else(too_late)?;
            let dec = |s: &str| {
                decode(s).ok_or_else(|| VmError::Protocol("bad base64 from the guest".into()))
            };
            return Ok(CommandOutput {
                status,
                stdout: dec(&out)?,
                stderr: dec(&err)?,
            });
        }
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding, as busybox's `base64` reads and writes it.
pub(crate) fn encode(data: &[u8]) -> String {
    let mut s = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= c.len() {
                s.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// Decode standard base64; `None` on a character outside the alphabet.
pub(crate) fn decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let mut acc = 0u32;
    let mut bits = 0;
    for ch in s.bytes() {
        let v = match ch {
            b'A'..=b'Z' => ch - b'A',
            b'a'..=b'z' => ch - b'a' + 26,
            b'0'..=b'9' => ch - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' | b'\r' | b'\n' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_every_length_and_byte() {
        assert_eq!(encode(b""), "");
        assert_eq!(encode(b"f"), "Zg==");
        assert_eq!(encode(b"fo"), "Zm8=");
        assert_eq!(encode(b"foo"), "Zm9v");
        let all: Vec<u8> = (0..=255u8).collect();
        for n in 0..all.len() {
            assert_eq!(decode(&encode(&all[..n])).unwrap(), &all[..n]);
        }
        assert_eq!(decode("Zm9v!"), None);
    }
}
