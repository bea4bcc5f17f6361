//! Waiting on state, never on the clock: a scenario step that opens or closes a TCP
//! connection returns only once the connection has reached the state the next step
//! assumes.
//!
//! Schedulers that weigh load (lc, wlc, sed, nq, ovf, fo, lblc, lblcr, thresholds) pick by
//! how many connections the director counts as active (ESTABLISHED) or inactive when the
//! next SYN arrives. Whether the previous connection's last segments reached the director
//! before that SYN is a race between interfaces and CPUs, so the runner settles it:
//! - a held connection is handed on only once the director counts it ESTABLISHED;
//! - a closed one only once both ends have finished with it (socket gone or in TIME_WAIT,
//!   read from `/proc/net/tcp` inside each namespace) and the director no longer counts it
//!   as active. By then every segment of it has passed every hop, so the capture holds
//!   the whole conversation however slowly the machine ran.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

/// How long a connection may take to settle before the step gives up.
pub const SETTLE_MAX: Duration = Duration::from_secs(5);
/// Between two looks at the tables.
const POLL: Duration = Duration::from_millis(2);

/// A socket as `/proc/net/tcp` lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSocket {
    /// Local address.
    pub local: SocketAddrV4,
    /// Remote address (0.0.0.0:0 for a listener).
    pub remote: SocketAddrV4,
    /// The kernel's state number (`include/net/tcp_states.h`: 1 ESTABLISHED ... 6 TIME_WAIT).
    pub state: u8,
}

/// TCP_TIME_WAIT in include/net/tcp_states.h.
const TCP_TIME_WAIT: u8 = 6;

impl TcpSocket {
    /// Has this end nothing more to send or receive? TIME_WAIT has sent its last ACK.
    pub fn finished(&self) -> bool {
        self.state == TCP_TIME_WAIT
    }
}

/// `0A01A8C0:0050` (little-endian address, big-endian port) as /proc/net/tcp writes it.
fn parse_endpoint(s: &str) -> Option<SocketAddrV4> {
    let (a, p) = s.split_once(':')?;
    let addr = u32::from_str_radix(a, 16).ok()?;
    let port = u16::from_str_radix(p, 16).ok()?;
    // The kernel prints the raw __be32 as a host-order number: native bytes undo it.
    Some(SocketAddrV4::new(Ipv4Addr::from(addr.to_ne_bytes()), port))
}

/// Parses the text of `/proc/net/tcp`.
pub fn parse_proc_net_tcp(text: &str) -> Vec<TcpSocket> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split_whitespace().skip(1);
            let local = parse_endpoint(f.next()?)?;
            let remote = parse_endpoint(f.next()?)?;
            let state = u8::from_str_radix(f.next()?, 16).ok()?;
            Some(TcpSocket {
                local,
                remote,
                state,
            })
        })
        .collect()
}

/// The IPv4 TCP sockets of namespace `netns`.
pub fn tcp_sockets(netns: &str) -> Result<Vec<TcpSocket>, String> {
    // /proc/thread-self/net follows the calling thread's namespace, which run_in set.
    let text = lvslab_netns::netns::run_in(netns, || {
        std::fs::read_to_string("/proc/thread-self/net/tcp")
    })
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("reading /proc/net/tcp in {netns}: {e}"))?;
    Ok(parse_proc_net_tcp(&text))
}

/// Is the connection from `client` (the client's own address and port) done at both ends:
/// in the client's namespace and in every server namespace given?
pub fn closed_everywhere(
    client_netns: &str,
    client: SocketAddr,
    server_netns: &[String],
) -> Result<bool, String> {
    let SocketAddr::V4(client) = client else {
        return Ok(true);
    };
    let open = |s: &TcpSocket, mine: bool| {
        let me = if mine { s.local } else { s.remote };
        me == client && !s.finished()
    };
    if tcp_sockets(client_netns)?.iter().any(|s| open(s, true)) {
        return Ok(false);
    }
    for ns in server_netns {
        if tcp_sockets(ns)?.iter().any(|s| open(s, false)) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Polls `ready` until it says yes or [`SETTLE_MAX`] has passed; `Ok(false)` on time-out.
pub fn poll_until(mut ready: impl FnMut() -> Result<bool, String>) -> Result<bool, String> {
    let t0 = Instant::now();
    loop {
        if ready()? {
            return Ok(true);
        }
        if t0.elapsed() >= SETTLE_MAX {
            return Ok(false);
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_tcp_lines_parse() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0\n   1: FA01A8C0:0050 0A6433C6:9C40 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000\n";
        let s = parse_proc_net_tcp(text);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].local, "0.0.0.0:80".parse().unwrap());
        assert_eq!(s[0].state, 0x0a);
        assert!(!s[0].finished());
        assert_eq!(s[1].local, "192.168.1.250:80".parse().unwrap());
        assert_eq!(s[1].remote, "198.51.100.10:40000".parse().unwrap());
        assert!(s[1].finished());
    }

    #[test]
    fn polling_stops_at_the_first_yes_and_passes_errors_on() {
        let mut n = 0;
        assert_eq!(
            poll_until(|| {
                n += 1;
                Ok(n == 3)
            }),
            Ok(true)
        );
        assert_eq!(n, 3);
        assert_eq!(
            poll_until(|| Err("gone".to_owned())),
            Err("gone".to_owned())
        );
    }
}
