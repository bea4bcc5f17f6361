//! A bounded flood at a virtual service from inside a lab (the `flood` step, and `lvslab
//! bench flood`): SYNs, UDP datagrams or ICMP errors written with a raw socket in a node's
//! namespace, while the connections the scenario holds open keep exchanging data. It
//! watches the userspace director's conn table against its bound and the director's
//! resident memory, and counts how many of the legitimate exchanges were served: those on
//! connections held from before, and new connections (or, for a UDP flood, new UDP flows)
//! opened between the flood's packets once it has had time to fill the table.
//!
//! Honest traffic only: every packet leaves from the node's own address (CIP), so the real
//! server's answers route back to it and its kernel resets what it never opened, as a host
//! under a real flood from one source would. Source ports come from [`FLOOD_PORTS`], below
//! the `transfer` step's port and Linux's ephemeral range, so a capture filter
//! (`not portrange 1024-29999`) leaves the flood out of a scenario's path and keeps the
//! legitimate client's. The new connections come from [`NEW_PORTS`] (fixed ports between
//! the transfer step's 30000 and Linux's ephemeral range): whether one gets through
//! depends on timing without a defence, and which real server it reaches depends on how
//! many flood packets the scheduler saw before it, so scenarios leave them out of the path
//! too (`not portrange 31000-31999`) and check their rate instead.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use lvslab_netns::{Backend, Lab, NodeInfo, ServiceSpec};
use serde::Deserialize;

/// The flood's source ports: 1024 to 29999, each used once (28976 of them).
pub const FLOOD_PORTS: std::ops::RangeInclusive<u16> = 1024..=29_999;

/// The source ports of the new legitimate connections made during a flood, taken in turn
/// by every flood of the process (labs run side by side in one `lvslab test`; a port
/// used again within a minute could meet its own TIME_WAIT in the client).
pub const NEW_PORTS: std::ops::RangeInclusive<u16> = 31_000..=31_999;

/// How long a new connection during a flood waits for its handshake: below Linux's first
/// SYN retransmission (1 s), so a refused SYN is one SYN, whatever the timing.
const NEW_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

static NEXT_NEW_PORT: AtomicU32 = AtomicU32::new(0);

/// What the flood sends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FloodKind {
    /// TCP SYNs to the VIP and port: each a new flow, an entry in the conn table.
    #[default]
    Syn,
    /// UDP datagrams to the VIP and port: a new flow each when the service is UDP.
    Udp,
    /// ICMP port-unreachable errors to the VIP quoting flows the director never saw: it
    /// must look each up and drop it, making no entry.
    Icmp,
}

impl FloodKind {
    /// The name the step uses.
    pub fn name(self) -> &'static str {
        match self {
            FloodKind::Syn => "syn",
            FloodKind::Udp => "udp",
            FloodKind::Icmp => "icmp",
        }
    }
}

/// What to send and what must hold.
#[derive(Debug, Clone)]
pub struct FloodSpec {
    /// What the packets are.
    pub kind: FloodKind,
    /// How many (at most [`FLOOD_PORTS`]'s size).
    pub count: u32,
    /// Packets per second.
    pub rate: u32,
    /// The flood stops after this long even if `count` were not sent.
    pub within: Duration,
    /// The director's conn table bound to set first (lvslab's `lvslab_max_conns`).
    pub max_conns: Option<u32>,
    /// Exchanges on held connections, spread evenly over the flood.
    pub exchanges: u32,
    /// New connections (a UDP flood: new UDP flows) during the flood, each opened, one
    /// request answered, closed; spread evenly over the packets that follow the first
    /// `bound` ones (by then the table is full, unless entries were refused or evicted).
    pub new_exchanges: u32,
    /// The share of `new_exchanges` that must be served, 0 to 1 (None: reported only).
    pub min_new_success: Option<f64>,
    /// New connections to open (and close) after the flood, while its entries are still in
    /// the table (each gives up connecting after 500 ms).
    pub new_conns: u32,
    /// The share of exchanges that must be served, 0 to 1.
    pub min_success: f64,
    /// How much the director's VmRSS may grow, KiB.
    pub max_rss_growth_kb: u64,
}

/// What happened.
#[derive(Debug, Clone, Default)]
pub struct FloodReport {
    /// What was sent.
    pub kind: Option<FloodKind>,
    /// Packets sent.
    pub sent: u32,
    /// How long sending took (the pauses for new connections not counted).
    pub elapsed: Duration,
    /// How long the flood paused for the new connections.
    pub paused: Duration,
    /// The conn table bound in force.
    pub bound: u64,
    /// Table entries before the flood.
    pub entries_before: u64,
    /// The most entries any sample saw.
    pub max_entries: u64,
    /// Entries once the flood had been processed.
    pub entries_after: u64,
    /// New flows the director refused because the table was full, during the flood.
    pub dropped_table_full: u64,
    /// Entries the director's drop_entry defence evicted during the flood.
    pub evicted: u64,
    /// The director's drop_entry sysctl when the flood began.
    pub drop_entry: u64,
    /// The director's VmRSS before, at its highest, and after, KiB.
    pub rss_kb: (u64, u64, u64),
    /// Exchanges on held connections served, of those tried.
    pub legit: (u32, u32),
    /// New connections (UDP flows) during the flood that were answered, of those tried.
    pub new_during: (u32, u32),
    /// New connections that opened and were answered, of those tried.
    pub new_conns: (u32, u32),
}

impl FloodReport {
    /// One paragraph for a log or a terminal.
    pub fn summary(&self) -> String {
        let pct = |(ok, n): (u32, u32)| {
            if n == 0 {
                "none tried".to_owned()
            } else {
                format!("{ok}/{n} ({:.1} %)", 100.0 * f64::from(ok) / f64::from(n))
            }
        };
        let new_what = if self.kind == Some(FloodKind::Udp) {
            "UDP flows"
        } else {
            "connections"
        };
        format!(
            "{} flood: {} packets in {:.2} s (and {:.2} s paused for new {new_what})\n\
             conn table: bound {}, {} entries before, at most {} during, {} after; {} new flows refused (table full), {} entries evicted (drop_entry {})\n\
             director VmRSS: {} KiB before, {} KiB peak, {} KiB after (+{} KiB)\n\
             legitimate exchanges on held connections: {}\n\
             new {new_what} during the flood: {}\n\
             new connections after the flood: {}",
            self.kind.map_or("no", FloodKind::name),
            self.sent,
            self.elapsed.as_secs_f64(),
            self.paused.as_secs_f64(),
            self.bound,
            self.entries_before,
            self.max_entries,
            self.entries_after,
            self.dropped_table_full,
            self.evicted,
            self.drop_entry,
            self.rss_kb.0,
            self.rss_kb.1,
            self.rss_kb.2,
            self.rss_kb.1.saturating_sub(self.rss_kb.0),
            pct(self.legit),
            pct(self.new_during),
            pct(self.new_conns),
        )
    }

    /// Whether the bound held, memory stayed flat and enough exchanges were served.
    pub fn check(&self, spec: &FloodSpec) -> Result<(), String> {
        let mut bad = Vec::new();
        if self.max_entries > self.bound || self.entries_after > self.bound {
            bad.push(format!(
                "the conn table grew past its bound: {} entries, bound {}",
                self.max_entries.max(self.entries_after),
                self.bound
            ));
        }
        let growth = self.rss_kb.1.saturating_sub(self.rss_kb.0);
        if growth > spec.max_rss_growth_kb {
            bad.push(format!(
                "the director's VmRSS grew by {growth} KiB, more than max_rss_growth_kb = {}",
                spec.max_rss_growth_kb
            ));
        }
        let (ok, n) = self.legit;
        if n > 0 && f64::from(ok) < spec.min_success * f64::from(n) {
            bad.push(format!(
                "only {ok} of {n} legitimate exchanges were served, below min_success = {}",
                spec.min_success
            ));
        }
        let (ok, n) = self.new_during;
        if let Some(min) = spec.min_new_success {
            if n > 0 && f64::from(ok) < min * f64::from(n) {
                bad.push(format!(
                    "only {ok} of {n} new legitimate connections during the flood were served, below min_new_success = {min}"
                ));
            }
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(format!("{}\n{}", bad.join("\n"), self.summary()))
        }
    }
}

/// Floods the service of `lab` from `from` (its first IPv4 address), doing the exchanges on
/// `held` in turn between packets. The lab's director must be lvslab's: the bound and the
/// memory watched are its own.
pub fn run(
    lab: &Lab,
    service: &ServiceSpec,
    from: &NodeInfo,
    spec: &FloodSpec,
    held: &[&TcpStream],
) -> Result<FloodReport, String> {
    if lab.state.backend != Backend::Userspace {
        return Err("a flood watches lvslab's userspace director (its conn table bound and memory); this lab runs kernel IPVS".into());
    }
    let ports = usize::from(FLOOD_PORTS.end() - FLOOD_PORTS.start()) + 1;
    if spec.count == 0 || spec.count as usize > ports {
        return Err(format!(
            "count {}: from 1 to {ports} (one source port each)",
            spec.count
        ));
    }
    if spec.exchanges > 0 && held.is_empty() {
        return Err("no held connection to exchange on: hold some before the flood (a `request` step with hold = true)".into());
    }
    let IpAddr::V4(vip) = service.vip else {
        return Err(format!("VIP {}: floods are IPv4 only", service.vip));
    };
    let src = from
        .interfaces
        .iter()
        .flat_map(|i| i.addresses.iter())
        .find_map(|a| match a.addr() {
            IpAddr::V4(v4) if !v4.is_loopback() => Some(v4),
            _ => None,
        })
        .ok_or_else(|| format!("node {} has no IPv4 address to flood from", from.name))?;
    let ctl = lvslab_director::control::ControlClient::new(lvslab_director::control::socket_path(
        &lab.run_dir(),
        &service.director,
    ));
    let err =
        |e: lvslab_director::control::ControlError| format!("director {}: {e}", service.director);
    if let Some(max) = spec.max_conns {
        ctl.sysctl(lvslab_core::MAX_CONNS_SYSCTL, &max.to_string())
            .map_err(err)?;
    }
    let pid = lab
        .state
        .daemons
        .iter()
        .find(|d| d.name == format!("director-{}", service.director) && d.alive())
        .map(|d| d.pid)
        .ok_or_else(|| format!("director {} is not running", service.director))?;
    let table = |key: &str| -> Result<u64, String> {
        let s = ctl.stats().map_err(err)?;
        Ok(s.director.get(key).copied().unwrap_or(0))
    };
    let mut report = FloodReport {
        kind: Some(spec.kind),
        bound: table("max_conns")?,
        entries_before: table("conn_entries")?,
        ..FloodReport::default()
    };
    let dropped_before = table("dropped_table_full")?;
    let evicted_before = table("evicted_drop_entry")?;
    report.drop_entry = table("drop_entry")?;
    let rss_before = vm_rss_kb(pid)?;

    let sock = lvslab_netns::netns::run_in(&from.netns, raw_socket)
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("a raw socket in {}: {e}", from.netns))?;
    let stop = AtomicBool::new(false);
    let (max_entries, rss_peak) = std::thread::scope(|s| {
        // Samples the table and the memory while the flood runs; a sample is one control
        // round trip, so this also shows the director still answering its socket.
        let sampler = s.spawn(|| {
            let (mut most, mut peak) = (0u64, rss_before);
            loop {
                let done = stop.load(Ordering::Relaxed);
                if let Ok(st) = ctl.stats() {
                    most = most.max(st.director.get("conn_entries").copied().unwrap_or(0));
                }
                peak = peak.max(vm_rss_kb(pid).unwrap_or(0));
                if done {
                    return (most, peak);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        let target = NewTarget {
            netns: &from.netns,
            to: SocketAddr::new(service.vip, service.port),
            udp: spec.kind == FloodKind::Udp,
        };
        let sent = flood(&sock, spec, src, vip, &target, held, &mut report);
        // Let what is in flight reach the director before the last sample.
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        report.sent = sent;
        sampler.join().unwrap_or((u64::MAX, u64::MAX))
    });
    report.max_entries = max_entries;
    report.entries_after = table("conn_entries")?;
    report.max_entries = report.max_entries.max(report.entries_after);
    report.dropped_table_full = table("dropped_table_full")?.saturating_sub(dropped_before);
    report.evicted = table("evicted_drop_entry")?.saturating_sub(evicted_before);
    let target = SocketAddr::new(service.vip, service.port);
    let mut opened = 0;
    for _ in 0..spec.new_conns {
        let ok = lvslab_netns::netns::run_in(&from.netns, move || quick_exchange(target))
            .unwrap_or(false);
        opened += u32::from(ok);
    }
    report.new_conns = (opened, spec.new_conns);
    let rss_after = vm_rss_kb(pid)?;
    report.rss_kb = (rss_before, rss_peak.max(rss_after), rss_after);
    Ok(report)
}

/// Where the new legitimate connections go, and from which namespace.
struct NewTarget<'a> {
    netns: &'a str,
    to: SocketAddr,
    /// New UDP flows (a UDP flood's service) rather than TCP connections.
    udp: bool,
}

/// After which packet (1-based) the k-th of `n` new connections is made: evenly over the
/// packets after the first `fill` (the whole flood when it is no larger than that).
fn new_exchange_at(k: u32, n: u32, count: u32, fill: u64) -> u64 {
    let count = u64::from(count);
    let fill = if fill >= count { 0 } else { fill };
    fill + (u64::from(k) + 1) * (count - fill) / (u64::from(n) + 1)
}

/// Sends the packets at `spec.rate`, stopping at `spec.within`; between them, at even
/// intervals, one exchange on the next held connection, and once the table has had time
/// to fill, the new connections. Returns the packets sent.
fn flood(
    sock: &OwnedFd,
    spec: &FloodSpec,
    src: Ipv4Addr,
    vip: Ipv4Addr,
    target: &NewTarget<'_>,
    held: &[&TcpStream],
    report: &mut FloodReport,
) -> u32 {
    let vport = target.to.port();
    let t0 = Instant::now();
    let (mut ok, mut tried) = (0u32, 0u32);
    let (mut new_ok, mut new_tried) = (0u32, 0u32);
    let mut paused = Duration::ZERO;
    let fill = report.bound.saturating_sub(report.entries_before);
    let mut sent = 0u32;
    let every = u64::from(spec.count) / (u64::from(spec.exchanges) + 1);
    let per_packet = Duration::from_secs(1) / spec.rate.max(1);
    for i in 0..spec.count {
        if t0.elapsed().saturating_sub(paused) > spec.within {
            break;
        }
        let sport = flood_port(i);
        let pkt = match spec.kind {
            FloodKind::Syn => tcp_syn(src, vip, sport, vport, i),
            FloodKind::Udp => udp(src, vip, sport, vport),
            FloodKind::Icmp => icmp_unreachable(src, vip, sport, vport),
        };
        if send_to(sock, &pkt, vip) {
            sent += 1;
        }
        if every > 0 && (u64::from(i) + 1) % every == 0 && tried < spec.exchanges {
            let stream = held[tried as usize % held.len()];
            ok += u32::from(exchange(stream));
            tried += 1;
        }
        while new_tried < spec.new_exchanges
            && new_exchange_at(new_tried, spec.new_exchanges, spec.count, fill) <= u64::from(i) + 1
        {
            // The flood waits while the client connects (a refused SYN costs the whole
            // connect timeout); the pause is taken out of its schedule, so it does not
            // catch up afterwards in a burst.
            let t = Instant::now();
            new_ok += u32::from(new_exchange(target));
            new_tried += 1;
            paused += t.elapsed();
        }
        // Pace by the schedule, not by sleeping a fixed time per packet, so slow sends
        // and exchanges do not stretch the flood.
        let due = per_packet * (i + 1) + paused;
        if let Some(wait) = due.checked_sub(t0.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    report.elapsed = t0.elapsed().saturating_sub(paused);
    report.paused = paused;
    // A flood cut short by its time limit still owes the exchanges: they are the point.
    while tried < spec.exchanges && !held.is_empty() {
        ok += u32::from(exchange(held[tried as usize % held.len()]));
        tried += 1;
    }
    while new_tried < spec.new_exchanges {
        new_ok += u32::from(new_exchange(target));
        new_tried += 1;
    }
    report.legit = (ok, tried);
    report.new_during = (new_ok, new_tried);
    sent
}

/// One new legitimate connection (or UDP flow) from the next of [`NEW_PORTS`], in the
/// flooding node's namespace: opened, one request answered, closed.
fn new_exchange(target: &NewTarget<'_>) -> bool {
    let span = u32::from(NEW_PORTS.end() - NEW_PORTS.start()) + 1;
    let port = NEW_PORTS.start() + (NEXT_NEW_PORT.fetch_add(1, Ordering::Relaxed) % span) as u16;
    let (to, udp) = (target.to, target.udp);
    let r = lvslab_netns::netns::run_in(target.netns, move || {
        if udp {
            udp_exchange_from(port, to)
        } else {
            tcp_exchange_from(port, to)
        }
    });
    match r {
        Ok(Ok(answered)) => answered,
        Ok(Err(e)) => {
            tracing::debug!("new connection from port {port} to {to}: {e}");
            false
        }
        Err(e) => {
            tracing::debug!("new connection from port {port}: {e}");
            false
        }
    }
}

/// A TCP connection from `port` that gives up connecting after [`NEW_CONNECT_TIMEOUT`],
/// one HTTP request on it, read to the end.
fn tcp_exchange_from(port: u16, to: SocketAddr) -> std::io::Result<bool> {
    use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn};
    use nix::sys::time::TimeVal;
    let SocketAddr::V4(to) = to else {
        return Err(std::io::Error::other("floods are IPv4 only"));
    };
    let fd = socket::socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    // Linux's connect(2) on a blocking socket gives up after SO_SNDTIMEO.
    let limit = TimeVal::new(0, NEW_CONNECT_TIMEOUT.as_micros() as i64);
    socket::setsockopt(&fd, sockopt::SendTimeout, &limit)?;
    let local = std::net::SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port);
    socket::bind(fd.as_raw_fd(), &SockaddrIn::from(local))?;
    if socket::connect(fd.as_raw_fd(), &SockaddrIn::from(to)).is_err() {
        return Ok(false);
    }
    let mut s = TcpStream::from(fd);
    s.set_write_timeout(Some(Duration::from_secs(3)))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    let mut buf = Vec::new();
    Ok(s.write_all(b"GET / HTTP/1.0\r\n\r\n")
        .and_then(|()| s.read_to_end(&mut buf))
        .is_ok_and(|n| n > 0))
}

/// A UDP datagram from `port`, answered within [`NEW_CONNECT_TIMEOUT`] (`serve` echoes).
fn udp_exchange_from(port: u16, to: SocketAddr) -> std::io::Result<bool> {
    const PAYLOAD: &[u8] = b"new flow\n";
    let s = std::net::UdpSocket::bind(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port))?;
    s.connect(to)?;
    s.set_read_timeout(Some(NEW_CONNECT_TIMEOUT))?;
    s.send(PAYLOAD)?;
    let mut buf = [0u8; 64];
    Ok(s.recv(&mut buf).is_ok_and(|n| n > 0))
}

/// The i-th flood port: a fixed permutation of [`FLOOD_PORTS`] (7919 is prime and shares
/// no factor with 28976 = 2^4 * 1811), so ports spread out and none repeats.
fn flood_port(i: u32) -> u16 {
    let n = u32::from(FLOOD_PORTS.end() - FLOOD_PORTS.start()) + 1;
    FLOOD_PORTS.start() + ((u64::from(i) * 7919 % u64::from(n)) as u16)
}

/// One request on a held connection: `serve` echoes what is not HTTP.
fn exchange(stream: &TcpStream) -> bool {
    const PAYLOAD: &[u8] = b"still there?\n";
    let mut s = stream;
    let mut buf = [0u8; PAYLOAD.len()];
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .and_then(|()| s.write_all(PAYLOAD))
        .and_then(|()| s.read_exact(&mut buf))
        .is_ok_and(|()| buf == PAYLOAD)
}

/// A new connection that gives up connecting after 500 ms, one HTTP request on it.
fn quick_exchange(to: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&to, Duration::from_millis(500)) else {
        return false;
    };
    let mut buf = Vec::new();
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .and_then(|()| s.write_all(b"GET / HTTP/1.0\r\n\r\n"))
        .and_then(|()| s.read_to_end(&mut buf))
        .is_ok_and(|n| n > 0)
}

/// A process's resident memory, KiB (VmRSS in /proc/PID/status).
pub fn vm_rss_kb(pid: u32) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("/proc/{pid}/status has no VmRSS"))
}

/// An IPv4 raw socket that takes whole IP packets (IPPROTO_RAW implies IP_HDRINCL), in the
/// namespace the calling thread is in.
fn raw_socket() -> std::io::Result<OwnedFd> {
    use nix::libc;
    // SAFETY: socket(2) with constant arguments; the descriptor is owned at once.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sends one IP packet; a full send buffer drops it (a flood does not wait).
fn send_to(sock: &OwnedFd, pkt: &[u8], dst: Ipv4Addr) -> bool {
    use nix::libc;
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(dst).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: pkt and addr are valid for the lengths given for the duration of the call.
    let n = unsafe {
        libc::sendto(
            sock.as_raw_fd(),
            pkt.as_ptr().cast(),
            pkt.len(),
            libc::MSG_DONTWAIT,
            std::ptr::from_ref(&addr).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    n == pkt.len() as isize
}

/// The Internet checksum of `parts` laid end to end (each part of even length but the last).
fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for part in parts {
        for c in part.chunks(2) {
            let w = u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)]);
            sum += u32::from(w);
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn ipv4_header(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload_len: usize) -> Vec<u8> {
    let total = (20 + payload_len) as u16;
    let mut h = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0];
    h[2..4].copy_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    let c = checksum(&[&h]);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h
}

fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(12);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&[0, proto]);
    p.extend_from_slice(&(len as u16).to_be_bytes());
    p
}

fn tcp_syn(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, i: u32) -> Vec<u8> {
    let mut t = vec![0u8; 20];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    // A different initial sequence number per SYN, the same every run.
    t[4..8].copy_from_slice(&i.wrapping_mul(0x9e37_79b9).to_be_bytes());
    t[12] = 5 << 4;
    t[13] = 0x02; // SYN
    t[14..16].copy_from_slice(&64240u16.to_be_bytes());
    let c = checksum(&[&pseudo_header(src, dst, 6, t.len()), &t]);
    t[16..18].copy_from_slice(&c.to_be_bytes());
    let mut pkt = ipv4_header(src, dst, 6, t.len());
    pkt.extend_from_slice(&t);
    pkt
}

fn udp(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> Vec<u8> {
    let body = b"flood\n";
    let len = 8 + body.len();
    let mut u = Vec::with_capacity(len);
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&(len as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(body);
    let c = checksum(&[&pseudo_header(src, dst, 17, len), &u]);
    // 0 means "no checksum" in UDP; the all-ones form says the sum is zero.
    let c = if c == 0 { 0xffff } else { c };
    u[6..8].copy_from_slice(&c.to_be_bytes());
    let mut pkt = ipv4_header(src, dst, 17, len);
    pkt.extend_from_slice(&u);
    pkt
}

/// Port unreachable from `src` about a TCP segment VIP:vport -> src:sport it never got: as
/// if the client rejected a reply of a connection the director does not know.
fn icmp_unreachable(src: Ipv4Addr, vip: Ipv4Addr, sport: u16, vport: u16) -> Vec<u8> {
    let mut inner_tcp = vec![0u8; 8];
    inner_tcp[0..2].copy_from_slice(&vport.to_be_bytes());
    inner_tcp[2..4].copy_from_slice(&sport.to_be_bytes());
    let mut inner = ipv4_header(vip, src, 6, 20);
    inner.extend_from_slice(&inner_tcp);
    let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&inner);
    let c = checksum(&[&icmp]);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut pkt = ipv4_header(src, vip, 1, icmp.len());
    pkt.extend_from_slice(&icmp);
    pkt
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flood_ports_are_distinct_and_in_range() {
        let n = u32::from(FLOOD_PORTS.end() - FLOOD_PORTS.start()) + 1;
        let mut seen = std::collections::HashSet::new();
        for i in 0..n {
            let p = flood_port(i);
            assert!(FLOOD_PORTS.contains(&p), "{p}");
            assert!(seen.insert(p), "port {p} twice");
        }
    }

    #[test]
    fn packets_carry_valid_checksums() {
        let (a, b) = (
            Ipv4Addr::new(198, 51, 100, 10),
            Ipv4Addr::new(192, 168, 1, 250),
        );
        for (pkt, proto) in [
            (tcp_syn(a, b, 1024, 80, 7), 6u8),
            (udp(a, b, 1025, 53), 17),
            (icmp_unreachable(a, b, 1026, 80), 1),
        ] {
            assert_eq!(checksum(&[&pkt[..20]]), 0, "IP header");
            assert_eq!(usize::from(u16::from_be_bytes([pkt[2], pkt[3]])), pkt.len());
            let l4 = &pkt[20..];
            let sum = if proto == 1 {
                checksum(&[l4])
            } else {
                checksum(&[&pseudo_header(a, b, proto, l4.len()), l4])
            };
            assert_eq!(sum, 0, "protocol {proto}");
        }
    }

    #[test]
    fn the_report_fails_on_a_broken_bound_memory_or_service() {
        let spec = FloodSpec {
            kind: FloodKind::Syn,
            count: 10,
            rate: 1000,
            within: Duration::from_secs(1),
            max_conns: Some(5),
            exchanges: 4,
            new_conns: 0,
            new_exchanges: 0,
            min_new_success: None,
            min_success: 0.75,
            max_rss_growth_kb: 100,
        };
        let good = FloodReport {
            bound: 5,
            max_entries: 5,
            entries_after: 5,
            rss_kb: (1000, 1050, 1040),
            legit: (3, 4),
            ..FloodReport::default()
        };
        assert_eq!(good.check(&spec), Ok(()));
        let over = FloodReport {
            max_entries: 6,
            ..good.clone()
        };
        assert!(over
            .check(&spec)
            .is_err_and(|e| e.contains("past its bound")));
        let fat = FloodReport {
            rss_kb: (1000, 1200, 1200),
            ..good.clone()
        };
        assert!(fat.check(&spec).is_err_and(|e| e.contains("VmRSS")));
        let starved = FloodReport {
            legit: (2, 4),
            ..good.clone()
        };
        assert!(starved.check(&spec).is_err_and(|e| e.contains("2 of 4")));
        // New connections: reported only, unless a minimum is set.
        let refused = FloodReport {
            new_during: (1, 10),
            ..good
        };
        assert_eq!(refused.check(&spec), Ok(()));
        assert!(refused
            .summary()
            .contains("new connections during the flood: 1/10"));
        let demanding = FloodSpec {
            new_exchanges: 10,
            min_new_success: Some(0.9),
            ..spec
        };
        assert!(refused
            .check(&demanding)
            .is_err_and(|e| e.contains("1 of 10 new legitimate connections")));
        let served = FloodReport {
            new_during: (9, 10),
            ..refused
        };
        assert_eq!(served.check(&demanding), Ok(()));
    }

    #[test]
    fn new_connections_come_after_the_table_had_time_to_fill() {
        // 3000 packets, a table of 1000 empty: 10 new connections after packets 1181,
        // 1363, ..., 2818, so the first comes once 1000 SYNs went and the last before the
        // flood ends.
        let at: Vec<u64> = (0..10)
            .map(|k| new_exchange_at(k, 10, 3000, 1000))
            .collect();
        assert_eq!(at[0], 1000 + 2000 / 11);
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{at:?}");
        assert!(at[9] < 3000);
        // A flood no larger than the table spreads them over all of it.
        assert_eq!(new_exchange_at(0, 1, 500, 1000), 250);
    }
}
