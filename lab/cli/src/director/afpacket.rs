//! AF_PACKET sockets: the director's device layer.
//!
//! One raw socket per interface, bound to that interface, non-blocking. The kernel hands an
//! AF_PACKET socket the frames this host sends as well as those it receives; the director
//! must not re-read its own (or its kernel's) output, so the socket sets
//! PACKET_IGNORE_OUTGOING (Linux 4.20+) and still drops any `PACKET_OUTGOING` frame it sees.

use anyhow::{bail, Context, Result};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A raw Ethernet socket bound to one interface of the calling thread's network namespace.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
    ifindex: i32,
    /// The interface name.
    pub name: String,
}

/// The interface index of `name` in the calling thread's namespace.
pub fn ifindex(name: &str) -> Result<i32> {
    let c = CString::new(name).context("interface name has a NUL byte")?;
    // SAFETY: c is a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        bail!(
            "no interface {name} in this namespace: {}",
            io::Error::last_os_error()
        );
    }
    Ok(idx as i32)
}

impl PacketSocket {
    /// Open a non-blocking AF_PACKET socket on `name` (call from a thread inside the namespace).
    pub fn open(name: &str) -> Result<Self> {
        let ifindex = ifindex(name)?;
        let proto = (libc::ETH_P_ALL as u16).to_be() as i32;
        // SAFETY: plain socket(2) call; the result is checked.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                proto,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error()).context("socket(AF_PACKET) (are you root?)");
        }
        // SAFETY: raw is a fresh, owned descriptor.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let one: libc::c_int = 1;
        // SAFETY: setsockopt with a valid int option value.
        let rc = unsafe {
            libc::setsockopt(
                raw,
                libc::SOL_PACKET,
                libc::PACKET_IGNORE_OUTGOING,
                &one as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            tracing::warn!(
                iface = name,
                "PACKET_IGNORE_OUTGOING unsupported; filtering by pkttype only"
            );
        }
        let bufsize: libc::c_int = 4 << 20;
        for opt in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
            // SAFETY: as above. A failure only leaves the default buffer size.
            unsafe {
                libc::setsockopt(
                    raw,
                    libc::SOL_SOCKET,
                    opt,
                    &bufsize as *const _ as *const libc::c_void,
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
        }
        // SAFETY: zeroed sockaddr_ll is a valid starting value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = ifindex;
        // SAFETY: sll is a valid sockaddr_ll of the given size.
        let rc = unsafe {
            libc::bind(
                raw,
                &sll as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error())
                .with_context(|| format!("bind AF_PACKET to {name}"));
        }
        Ok(PacketSocket {
            fd,
            ifindex,
            name: name.to_string(),
        })
    }

    /// Send one complete Ethernet frame.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: zeroed sockaddr_ll is valid.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = self.ifindex;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&frame[..6]);
        loop {
            // SAFETY: frame and sll are valid for the given lengths.
            let n = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    frame.as_ptr() as *const libc::c_void,
                    frame.len(),
                    0,
                    &sll as *const _ as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            };
            if n >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                // The TX queue is full: wait for room rather than drop.
                io::ErrorKind::WouldBlock => wait_fd(self.fd.as_raw_fd(), libc::POLLOUT, 10),
                _ => return Err(e),
            }
        }
    }
}

impl AsRawFd for PacketSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

fn wait_fd(fd: RawFd, events: i16, timeout_ms: i32) {
    let mut p = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut p, 1, timeout_ms) };
}

/// Wait until one of `fds` is readable or `timeout_ms` passes; returns which are readable.
pub fn poll_readable(fds: &[RawFd], timeout_ms: i32) -> io::Result<Vec<bool>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: pfds is a valid array of pollfd of the given length.
    let rc = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout_ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(vec![false; fds.len()]);
        }
        return Err(e);
    }
    Ok(pfds
        .iter()
        .map(|p| p.revents & (libc::POLLIN | libc::POLLERR) != 0)
        .collect())
}

/// Frames a [`PacketSocket::recv_batch`] call can return at once.
pub const BATCH: usize = 64;
/// Receive buffer per frame: ample for a 1500-byte MTU with offloads off; longer frames
/// (GRO/TSO left on) are reported truncated and dropped.
const FRAME_BUF: usize = 16 * 1024;

/// Reusable buffers for batched receive (recvmmsg) on one socket.
pub struct RecvBatch {
    bufs: Vec<Vec<u8>>,
    lens: Vec<usize>,
    count: usize,
    /// Frames dropped because they did not fit a buffer.
    pub truncated: u64,
}

impl Default for RecvBatch {
    fn default() -> Self {
        RecvBatch {
            bufs: (0..BATCH).map(|_| vec![0u8; FRAME_BUF]).collect(),
            lens: vec![0; BATCH],
            count: 0,
            truncated: 0,
        }
    }
}

impl RecvBatch {
    /// The frames of the last receive.
    pub fn frames(&self) -> impl Iterator<Item = &[u8]> {
        self.bufs
            .iter()
            .zip(&self.lens)
            .take(self.count)
            .filter(|(_, &l)| l > 0)
            .map(|(b, &l)| &b[..l])
    }
}

impl PacketSocket {
    /// Receive up to [`BATCH`] waiting frames with one recvmmsg(2); returns how many slots
    /// were filled (0: nothing waiting). Outgoing and truncated frames get length 0.
    pub fn recv_batch(&self, batch: &mut RecvBatch) -> io::Result<usize> {
        // SAFETY: zeroed sockaddr_ll/iovec/mmsghdr are valid starting values.
        let mut addrs: [libc::sockaddr_ll; BATCH] = unsafe { std::mem::zeroed() };
        let mut iovs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for i in 0..BATCH {
            iovs[i].iov_base = batch.bufs[i].as_mut_ptr() as *mut libc::c_void;
            iovs[i].iov_len = batch.bufs[i].len();
            msgs[i].msg_hdr.msg_iov = &mut iovs[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_name = &mut addrs[i] as *mut _ as *mut libc::c_void;
            msgs[i].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as u32;
        }
        let n = loop {
            // SAFETY: msgs, iovs, addrs and the buffers outlive the call.
            let n = unsafe {
                libc::recvmmsg(
                    self.fd.as_raw_fd(),
                    msgs.as_mut_ptr(),
                    BATCH as u32,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if n >= 0 {
                break n as usize;
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => break 0,
                _ => return Err(e),
            }
        };
        for i in 0..n {
            let trunc = msgs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            batch.truncated += u64::from(trunc);
            let ours = addrs[i].sll_pkttype == libc::PACKET_OUTGOING;
            batch.lens[i] = if trunc || ours {
                0
            } else {
                msgs[i].msg_len as usize
            };
        }
        batch.count = n;
        Ok(n)
    }

    /// Send `frames` with as few sendmmsg(2) calls as the socket allows.
    pub fn send_batch(&self, frames: &[Vec<u8>]) -> io::Result<()> {
        let mut done = 0;
        while done < frames.len() {
            let chunk = &frames[done..frames.len().min(done + BATCH)];
            // SAFETY: zeroed iovec/mmsghdr are valid; pointers refer to `chunk`, alive here.
            let mut iovs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
            let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
            for (i, f) in chunk.iter().enumerate() {
                iovs[i].iov_base = f.as_ptr() as *mut libc::c_void;
                iovs[i].iov_len = f.len();
                msgs[i].msg_hdr.msg_iov = &mut iovs[i];
                msgs[i].msg_hdr.msg_iovlen = 1;
            }
            // SAFETY: as above; the socket is bound to its interface, so no address is needed.
            let n = unsafe {
                libc::sendmmsg(
                    self.fd.as_raw_fd(),
                    msgs.as_mut_ptr(),
                    chunk.len() as u32,
                    0,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::WouldBlock => {
                        wait_fd(self.fd.as_raw_fd(), libc::POLLOUT, 10);
                        continue;
                    }
                    _ => return Err(e),
                }
            }
            done += n as usize;
        }
        Ok(())
    }
}
