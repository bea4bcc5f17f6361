//! The scenario client: requests sent from inside a lab node, one connection each.
//!
//! It talks to `lvslab serve`: TCP with an HTTP request gets the server's node name back,
//! other TCP payloads are echoed until the client closes its side, a UDP datagram gets
//! `<node>\n` followed by itself.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

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

/// Sends one TCP request: the payload, then half-close, then read until the server closes.
/// With `hold` the connection stays open and idle (returned) instead.
pub fn tcp_request(to: SocketAddr, payload: &[u8], hold: bool) -> (Reply, Option<TcpStream>) {
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
    let mut s = match TcpStream::connect_timeout(&to, REQUEST_TIMEOUT) {
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

/// Sends one UDP datagram from a fresh socket and waits for one answer.
pub fn udp_request(to: SocketAddr, payload: &[u8]) -> Reply {
    let mut local = None;
    let mut go = || -> std::io::Result<Vec<u8>> {
        let bind: SocketAddr = if to.is_ipv4() {
            "0.0.0.0:0".parse().map_err(std::io::Error::other)?
        } else {
            "[::]:0".parse().map_err(std::io::Error::other)?
        };
        let s = UdpSocket::bind(bind)?;
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
