//! AF_PACKET sockets: the director's device layer.
//!
//! One raw socket per interface, bound to that interface, non-blocking. The kernel hands an
//! AF_PACKET socket the frames this host sends as well as those it receives; the director
//! must not re-read its own (or its kernel's) output, so the socket sets
//! PACKET_IGNORE_OUTGOING (Linux 4.20+) and still drops any `PACKET_OUTGOING` frame it sees.
//! [`PacketDevice`] is one such socket per interface behind the [`Device`] trait.

use crate::device::{Device, Readiness, SendReport};
use crate::Error;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// A raw Ethernet socket bound to one interface of the calling thread's network namespace.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
    ifindex: i32,
    /// The interface name.
    pub name: String,
}

/// The interface index of `name` in the calling thread's namespace.
pub fn ifindex(name: &str) -> Result<i32, Error> {
    let c = CString::new(name).map_err(|_| Error::BadInterfaceName(name.to_string()))?;
    // SAFETY: c is a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        return Err(Error::NoInterface {
            name: name.to_string(),
            source: io::Error::last_os_error(),
        });
    }
    Ok(idx as i32)
}

impl PacketSocket {
    /// Open a non-blocking AF_PACKET socket on `name` (call from a thread inside the namespace).
    pub fn open(name: &str) -> Result<Self, Error> {
        let ifindex = ifindex(name)?;
        // Protocol 0: a socket opened with ETH_P_ALL taps every interface of the namespace
        // until bind(2) narrows it to one, so frames of the other interfaces would wait in
        // its queue and be handled as if they came in here. bind sets ETH_P_ALL instead.
        // SAFETY: plain socket(2) call; the result is checked.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if raw < 0 {
            return Err(Error::io(
                "socket(AF_PACKET) (are you root?)",
                io::Error::last_os_error(),
            ));
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
            return Err(Error::io(
                format!("bind AF_PACKET to {name}"),
                io::Error::last_os_error(),
            ));
        }
        Ok(PacketSocket {
            fd,
            ifindex,
            name: name.to_string(),
        })
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
    /// were filled (0: nothing waiting). Outgoing, truncated and other interfaces' frames get
    /// length 0.
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
            let elsewhere = addrs[i].sll_ifindex != self.ifindex;
            batch.lens[i] = if trunc || ours || elsewhere {
                0
            } else {
                msgs[i].msg_len as usize
            };
        }
        batch.count = n;
        Ok(n)
    }

    /// Send `frames` with as few sendmmsg(2) calls as the socket allows; see [`send_frames`]
    /// for what happens to a frame the kernel refuses.
    pub fn send_batch(&self, frames: &[Vec<u8>]) -> SendReport {
        let fd = self.fd.as_raw_fd();
        send_frames(
            frames,
            |chunk| sendmmsg(fd, chunk),
            || wait_fd(fd, libc::POLLOUT, 10),
        )
    }
}

/// One sendmmsg(2) of up to [`BATCH`] frames on a socket bound to its interface.
fn sendmmsg(fd: RawFd, chunk: &[Vec<u8>]) -> io::Result<usize> {
    let chunk = &chunk[..chunk.len().min(BATCH)];
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
    let n = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), chunk.len() as u32, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Hand `frames` to `sendmmsg` in order, each frame at most once after the kernel has seen it.
///
/// sendmmsg stops at the first message that fails and, when some went out before it, returns
/// their count and loses the error. That failed message may well have reached the device:
/// a veth whose peer backlog is full returns NET_XMIT_DROP (ENOBUFS) *after* the packet taps
/// (tcpdump, `lvslab capture`) saw the frame. Sending it again would put a second identical
/// frame on the capture — exactly the "two identical ACKs out of eth1" once seen under load —
/// so, like the kernel's forwarding path, a refused frame is dropped and counted, and the
/// batch goes on with the next frame. Only a refusal of the *first* message with
/// EAGAIN/EINTR is certain to precede the device (the socket's send buffer was full), so
/// only that is waited out and retried.
pub fn send_frames(
    frames: &[Vec<u8>],
    mut sendmmsg: impl FnMut(&[Vec<u8>]) -> io::Result<usize>,
    mut wait_writable: impl FnMut(),
) -> SendReport {
    let mut report = SendReport::default();
    let mut done = 0;
    while done < frames.len() {
        let chunk = &frames[done..frames.len().min(done + BATCH)];
        match sendmmsg(chunk) {
            Ok(n) if n >= chunk.len() => {
                report.sent += chunk.len();
                done += chunk.len();
            }
            Ok(n) => {
                // Message `n` failed with an error the kernel did not report.
                report.sent += n;
                report.dropped += 1;
                done += n + 1;
            }
            Err(e) => match e.kind() {
                io::ErrorKind::Interrupted => {}
                io::ErrorKind::WouldBlock => wait_writable(),
                _ => {
                    if report.first_errno.is_none() {
                        report.first_errno = e.raw_os_error();
                    }
                    report.dropped += 1;
                    done += 1;
                }
            },
        }
    }
    report
}

/// The director's interfaces as AF_PACKET sockets, in [`IfaceId`](lvslab_core::director::IfaceId) order.
pub struct PacketDevice {
    sockets: Vec<PacketSocket>,
    batch: RecvBatch,
}

impl PacketDevice {
    /// Open one socket per name (call from a thread inside the namespace).
    pub fn open<S: AsRef<str>>(names: &[S]) -> Result<Self, Error> {
        let sockets = names
            .iter()
            .map(|n| PacketSocket::open(n.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PacketDevice {
            sockets,
            batch: RecvBatch::default(),
        })
    }

    /// Frames dropped so far because they did not fit a receive buffer.
    pub fn truncated(&self) -> u64 {
        self.batch.truncated
    }
}

impl Device for PacketDevice {
    fn iface_count(&self) -> usize {
        self.sockets.len()
    }

    fn iface_name(&self, iface: usize) -> &str {
        self.sockets.get(iface).map_or("?", |s| s.name.as_str())
    }

    fn recv(
        &mut self,
        _now: Duration,
        iface: usize,
        rx: &mut dyn FnMut(&[u8]),
    ) -> Result<bool, Error> {
        let Some(sock) = self.sockets.get(iface) else {
            return Ok(false);
        };
        let n = sock
            .recv_batch(&mut self.batch)
            .map_err(|e| Error::io(format!("recv on {}", sock.name), e))?;
        for frame in self.batch.frames() {
            rx(frame);
        }
        Ok(n >= BATCH)
    }

    fn send(&mut self, _now: Duration, iface: usize, frames: &[Vec<u8>]) -> SendReport {
        match self.sockets.get(iface) {
            Some(sock) => sock.send_batch(frames),
            None => SendReport {
                dropped: frames.len(),
                ..SendReport::default()
            },
        }
    }

    fn wait(&mut self, timeout: Duration, extra: &[RawFd]) -> Result<Readiness, Error> {
        let mut fds: Vec<RawFd> = self.sockets.iter().map(|s| s.as_raw_fd()).collect();
        fds.extend_from_slice(extra);
        // Round up, so a frame due in 0.4 ms is not polled for with a busy 0 ms timeout.
        let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        let mut ready = poll_readable(&fds, ms).map_err(|e| Error::io("poll", e))?;
        let extra = ready.split_off(self.sockets.len());
        Ok(Readiness {
            ifaces: ready,
            extra,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake kernel: which frames it was offered, and which (by index) its device drops
    /// the first time after the taps saw them.
    struct FakeKernel {
        offered: Vec<u8>,
        fail_once: Vec<u8>,
        eagain_first: u32,
    }

    impl FakeKernel {
        fn sendmmsg(&mut self, chunk: &[Vec<u8>]) -> io::Result<usize> {
            if self.eagain_first > 0 {
                self.eagain_first -= 1;
                return Err(io::Error::from(io::ErrorKind::WouldBlock));
            }
            for (i, f) in chunk.iter().enumerate() {
                self.offered.push(f[0]);
                if let Some(pos) = self.fail_once.iter().position(|&x| x == f[0]) {
                    self.fail_once.remove(pos);
                    // ENOBUFS: returned as an error only when nothing went out before it.
                    return if i == 0 {
                        Err(io::Error::from_raw_os_error(libc::ENOBUFS))
                    } else {
                        Ok(i)
                    };
                }
            }
            Ok(chunk.len())
        }
    }

    fn frames(n: u8) -> Vec<Vec<u8>> {
        (0..n).map(|i| vec![i; 60]).collect()
    }

    #[test]
    fn a_frame_the_device_dropped_mid_batch_is_not_sent_twice() {
        let mut k = FakeKernel {
            offered: Vec::new(),
            fail_once: vec![2],
            eagain_first: 0,
        };
        let r = send_frames(&frames(5), |c| k.sendmmsg(c), || {});
        assert_eq!(
            k.offered,
            vec![0, 1, 2, 3, 4],
            "each frame reaches the taps once"
        );
        assert_eq!((r.sent, r.dropped), (4, 1));
    }

    #[test]
    fn a_refused_first_frame_does_not_take_the_rest_of_the_batch_with_it() {
        let mut k = FakeKernel {
            offered: Vec::new(),
            fail_once: vec![0],
            eagain_first: 0,
        };
        let r = send_frames(&frames(3), |c| k.sendmmsg(c), || {});
        assert_eq!(k.offered, vec![0, 1, 2]);
        assert_eq!((r.sent, r.dropped), (2, 1));
        assert_eq!(r.first_errno, Some(libc::ENOBUFS));
    }

    #[test]
    fn a_full_send_buffer_is_waited_out_and_nothing_is_lost() {
        let mut k = FakeKernel {
            offered: Vec::new(),
            fail_once: Vec::new(),
            eagain_first: 2,
        };
        let mut waits = 0;
        let r = send_frames(&frames(70), |c| k.sendmmsg(c), || waits += 1);
        assert_eq!(waits, 2);
        assert_eq!(k.offered, (0..70).collect::<Vec<u8>>());
        assert_eq!((r.sent, r.dropped), (70, 0));
    }
}
