//! The scenario client: requests sent from inside a lab node, one connection each.
//!
//! It talks to `lvslab serve`: TCP with an HTTP request gets the server's node name back,
//! other TCP payloads are echoed until the client closes its side, a UDP datagram gets
//! `<node>\n` followed by itself.

use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use nix::sys::socket::{
    bind, connect, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrStorage,
};
use nix::sys::time::TimeVal;

/// How long one request may take before it counts as failed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_millis(1500);

/// The outcome of one request.
#[derive(Debug)]
pub struct Reply {
    /// Bytes received (None when the request failed).
    pub bytes: Option<Vec<u8>>,
    /// Why it failed.
    pub error: Option<String>,
    /// The client's own address and port, once it had one: the director's connection
    /// table knows the connection by it.
    pub local: Option<SocketAddr>,
}

/// A TCP connection to `to`, from source address `from` when given (the node must hold
/// it): the schedulers that hash the source see the address the step chose.
fn tcp_connect(from: Option<IpAddr>, to: SocketAddr) -> std::io::Result<TcpStream> {
    let Some(from) = from else {
        return TcpStream::connect_timeout(&to, REQUEST_TIMEOUT);
    };
    // std cannot bind before connecting, so the socket is made by hand.
    let family = if to.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    bind(
        fd.as_raw_fd(),
        &SockaddrStorage::from(SocketAddr::new(from, 0)),
    )?;
    // On Linux SO_SNDTIMEO bounds a blocking connect() too: connect_timeout's limit.
    let limit = TimeVal::new(
        REQUEST_TIMEOUT.as_secs() as _,
        REQUEST_TIMEOUT.subsec_micros() as _,
    );
    setsockopt(&fd, sockopt::SendTimeout, &limit)?;
    match connect(fd.as_raw_fd(), &SockaddrStorage::from(to)) {
        Ok(()) => Ok(TcpStream::from(fd)),
        Err(nix::errno::Errno::EINPROGRESS) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "connection timed out",
        )),
        Err(e) => Err(e.into()),
    }
}

/// Sends one TCP request from `from` (any local address when `None`): the payload, then
/// half-close, then read until the server closes. With `hold` the connection stays open
/// and idle (returned) instead.
pub fn tcp_request(
    from: Option<IpAddr>,
    to: SocketAddr,
    payload: &[u8],
    hold: bool,
) -> (Reply, Option<TcpStream>) {
    let mut local = None;
    let fail = |e: std::io::Error, local| {
        (
            Reply {
                bytes: None,
                error: Some(e.to_string()),
                local,
            },
            None,
        )
    };
    let mut s = match tcp_connect(from, to) {
        Ok(s) => s,
        Err(e) => return fail(e, local),
    };
    local = s.local_addr().ok();
    if hold {
        return (
            Reply {
                bytes: Some(Vec::new()),
                error: None,
                local,
            },
            Some(s),
        );
    }
    let _ = s.set_read_timeout(Some(REQUEST_TIMEOUT));
    let _ = s.set_nodelay(true);
    if let Err(e) = s.write_all(payload) {
        return fail(e, local);
    }
    // HTTP requests are answered and closed by the server; echo needs our FIN to finish.
    if !payload.starts_with(b"GET ") {
        let _ = s.shutdown(Shutdown::Write);
    }
    let mut buf = Vec::new();
    match s.read_to_end(&mut buf) {
        Ok(_) => (
            Reply {
                bytes: Some(buf),
                error: None,
                local,
            },
            None,
        ),
        Err(e) => fail(e, local),
    }
}

/// Sends one UDP datagram from a fresh socket (bound to `from` when given) and waits for
/// one answer.
pub fn udp_request(from: Option<IpAddr>, to: SocketAddr, payload: &[u8]) -> Reply {
    let mut local = None;
    let mut go = || -> std::io::Result<Vec<u8>> {
        let any: IpAddr = if to.is_ipv4() {
            std::net::Ipv4Addr::UNSPECIFIED.into()
        } else {
            std::net::Ipv6Addr::UNSPECIFIED.into()
        };
        let s = UdpSocket::bind(SocketAddr::new(from.unwrap_or(any), 0))?;
        // Connected, so an ICMP port unreachable comes back as ECONNREFUSED.
        s.connect(to)?;
        local = s.local_addr().ok();
        s.set_read_timeout(Some(REQUEST_TIMEOUT))?;
        s.send(payload)?;
        let mut buf = vec![0u8; 65536];
        let n = s.recv(&mut buf)?;
        buf.truncate(n);
        Ok(buf)
    };
    let result = go();
    match result {
        Ok(b) => Reply {
            bytes: Some(b),
            error: None,
            local,
        },
        Err(e) => Reply {
            bytes: None,
            error: Some(e.to_string()),
            local,
        },
    }
}
