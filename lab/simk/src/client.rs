//! The client side of a step: sockets made inside the client namespace, bound to the
//! script's client address and port, and the kernel's connection table read back.
use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use lvslab_core::sim::Flow;
use lvslab_core::Protocol;
use lvslab_ipvs_nl::{conns, KernelConn};
use nix::errno::Errno;
use nix::sys::socket::{
    bind, connect, send, setsockopt, socket, sockopt, AddressFamily, MsgFlags, SockFlag, SockType,
    SockaddrStorage,
};
use nix::sys::time::TimeVal;

use crate::lab::{MarkMode, SimLab};
use crate::Error;

const REQUEST: &[u8] = b"lvslab-simk request\n";

fn fresh(kind: SockType, flow: &Flow, timeout: Duration, mark: bool) -> Result<OwnedFd, Errno> {
    let family = match flow.client {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd = socket(family, kind, SockFlag::SOCK_CLOEXEC, None)?;
    if mark {
        setsockopt(&fd, sockopt::Mark, &flow.fwmark)?;
    }
    // A script may reuse a client port whose last conn is still in TIME_WAIT here.
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    let tv = TimeVal::new(
        i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
        i64::from(timeout.subsec_micros()),
    );
    // SO_SNDTIMEO bounds a blocking connect(); SO_RCVTIMEO bounds every read.
    setsockopt(&fd, sockopt::SendTimeout, &tv)?;
    setsockopt(&fd, sockopt::ReceiveTimeout, &tv)?;
    bind(fd.as_raw_fd(), &SockaddrStorage::from(flow.client))?;
    Ok(fd)
}

/// The flow's client socket: in the client namespace, or for a marked flow without
/// nf_tables, on the director with SO_MARK ([`MarkMode::LocalClient`]).
fn client_socket(
    lab: &SimLab,
    kind: SockType,
    flow: &Flow,
    timeout: Duration,
) -> Result<OwnedFd, Error> {
    let local = flow.fwmark != 0 && lab.marks == MarkMode::LocalClient;
    let made = if local {
        lab.in_director(|| fresh(kind, flow, timeout, true))?
    } else {
        lab.in_client(|| fresh(kind, flow, timeout, false))?
    };
    made.map_err(|e| Error::Step(format!("client socket {}: {e}", flow.client)))
}

/// A TCP connection from the flow's client to its VIP: Some(stream) once the answer came
/// back, None when the director refused it (no server available).
pub fn tcp_open(lab: &SimLab, flow: &Flow, timeout: Duration) -> Result<Option<TcpStream>, Error> {
    let vip = SockaddrStorage::from(flow.vip);
    let fd = client_socket(lab, SockType::Stream, flow, timeout)?;
    match connect(fd.as_raw_fd(), &vip) {
        Ok(()) => {}
        Err(Errno::ECONNREFUSED) => return Ok(None),
        Err(Errno::EADDRNOTAVAIL) => {
            return Err(Error::Step(format!(
                "{} > {} again: the client's socket from the earlier conn on this 4-tuple is still in TIME_WAIT (60 s) and real TCP cannot reuse it yet; give this step a fresh client port",
                flow.client, flow.vip
            )))
        }
        Err(Errno::EINPROGRESS | Errno::EAGAIN | Errno::ETIMEDOUT) => {
            return Err(Error::Step(format!(
                "{} > {}: no answer to the SYN within {timeout:?}",
                flow.client, flow.vip
            )))
        }
        Err(e) => {
            return Err(Error::Step(format!(
                "connect {} > {}: {e}",
                flow.client, flow.vip
            )))
        }
    }
    let mut s = TcpStream::from(fd);
    send(s.as_raw_fd(), REQUEST, MsgFlags::MSG_NOSIGNAL)
        .map_err(|e| Error::Step(format!("request {} > {}: {e}", flow.client, flow.vip)))?;
    read_answer(&mut s, flow)?;
    Ok(Some(s))
}

fn read_answer(s: &mut TcpStream, flow: &Flow) -> Result<String, Error> {
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !got.contains(&b'\n') {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(Error::Step(format!(
                    "waiting for the answer on {} > {}: {e}",
                    flow.client, flow.vip
                )))
            }
        }
    }
    Ok(String::from_utf8_lossy(&got).trim().to_string())
}

/// The client closes with FIN and waits for the server's FIN (EOF), as the userspace
/// simulation's close does.
pub fn tcp_close(mut s: TcpStream, flow: &Flow) -> Result<(), Error> {
    s.shutdown(std::net::Shutdown::Write)
        .map_err(|e| Error::Step(format!("FIN {} > {}: {e}", flow.client, flow.vip)))?;
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(Error::Step(format!(
                    "waiting for the server's FIN on {} > {}: {e}",
                    flow.client, flow.vip
                )))
            }
        }
    }
}

/// The client resets the connection (SO_LINGER 0, then close).
pub fn tcp_reset(s: TcpStream, flow: &Flow) -> Result<(), Error> {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    setsockopt(&s, sockopt::Linger, &linger)
        .map_err(|e| Error::Step(format!("SO_LINGER on {}: {e}", flow.client)))?;
    drop(s);
    Ok(())
}

/// One datagram and its answer: Some(answer) or None when refused (ICMP port unreachable).
/// `datagrams` > 1 sends more after the first answer (the `rst` step of a UDP flow).
pub fn udp_exchange(
    lab: &SimLab,
    flow: &Flow,
    timeout: Duration,
    datagrams: usize,
) -> Result<Option<String>, Error> {
    let vip = SockaddrStorage::from(flow.vip);
    let fd = client_socket(lab, SockType::Datagram, flow, timeout)?;
    connect(fd.as_raw_fd(), &vip)
        .map_err(|e| Error::Step(format!("connect UDP {} > {}: {e}", flow.client, flow.vip)))?;
    let u = UdpSocket::from(fd);
    let mut first = None;
    let mut buf = [0u8; 256];
    for _ in 0..datagrams.max(1) {
        u.send(REQUEST)
            .map_err(|e| Error::Step(format!("UDP {} > {}: {e}", flow.client, flow.vip)))?;
        match u.recv(&mut buf) {
            Ok(n) => {
                first.get_or_insert_with(|| String::from_utf8_lossy(&buf[..n]).trim().to_string());
            }
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => return Ok(None),
            Err(e) => {
                return Err(Error::Step(format!(
                    "no answer to UDP {} > {} within {timeout:?}: {e}",
                    flow.client, flow.vip
                )))
            }
        }
    }
    Ok(first)
}

fn proto_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
    }
}

/// The kernel's entry for a flow (not a persistence template), if any.
pub fn kernel_entry(lab: &SimLab, flow: &Flow) -> Result<Option<KernelConn>, Error> {
    let all = lab.in_director(conns::read)?.map_err(Error::Ipvs)?;
    Ok(all.into_iter().find(|c| {
        c.protocol == proto_name(flow.protocol)
            && c.client == flow.client
            && c.virtual_addr == flow.vip
    }))
}

/// Poll the kernel's table until the flow's entry is in one of `states`.
pub fn wait_state(
    lab: &SimLab,
    flow: &Flow,
    states: &[&str],
    timeout: Duration,
) -> Result<KernelConn, Error> {
    let deadline = Instant::now() + timeout;
    loop {
        let e = kernel_entry(lab, flow)?;
        if let Some(c) = &e {
            if states.contains(&c.state.as_str()) {
                return Ok(c.clone());
            }
        }
        if Instant::now() > deadline {
            return Err(Error::Step(format!(
                "{} > {}: the kernel's entry is {} after {timeout:?}, expected {}",
                flow.client,
                flow.vip,
                e.map_or("missing".to_string(), |c| c.state),
                states.join(" or ")
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
