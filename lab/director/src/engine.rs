//! The director's device loop: frames from a [`Device`] into the sans-IO
//! [`Director`], its answers back out, the control socket in between.
//!
//! Keeping the director's kernel out of the way: the VIP is not configured in the director's
//! kernel and its `ip_forward` stays 0, so the kernel silently drops the packets the
//! userspace director handles (to the VIP, and NAT replies to clients) while still doing its
//! own chores (ARP for the DIP, pings). AF_PACKET gets a copy of every frame before that.
//!
//! The loop sleeps in [`Device::wait`] until a frame or a control client arrives, the
//! director's timers are due (every [`TIMER_INTERVAL`]) or the device has held-back frames
//! due ([`Device::poll_at`]). Time comes from a [`Clock`], so the same loop runs over
//! AF_PACKET with the wall clock and over [`crate::MemDevice`] with simulated time.

use crate::afpacket::PacketDevice;
use crate::control::{answer, Request, Response};
use crate::device::{Clock, Device, MonotonicClock, SendReport};
use crate::faults::{FaultSpec, BREAK_ENV};
use crate::Error;
use lvslab_core::director::{Director, DirectorConfig, HaInstance, IfaceId, Interface, Route, Tx};
use lvslab_core::mark::MarkRule;
use lvslab_core::vrrp::{VrrpConfig, VrrpVersion};
use lvslab_core::{ipvsadm, Ipvs, IpvsConfig};
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often the director's timers (ARP retries, connection expiry) run.
pub const TIMER_INTERVAL: Duration = Duration::from_millis(100);

/// Receive rounds per ready interface and turn: bounded so one busy interface cannot
/// starve the others.
const RECV_ROUNDS: usize = 8;

/// A director attached to a device.
pub struct DeviceLoop<D> {
    director: Director,
    device: D,
    /// Frames to send, per interface; gathered so each interface gets one batch per round.
    out: Vec<Vec<Vec<u8>>>,
    last_timers: Duration,
}

impl<D: Device> DeviceLoop<D> {
    /// `director` on `device`; interface `i` of one is interface `i` of the other.
    pub fn new(director: Director, device: D) -> Self {
        let n = device.iface_count();
        DeviceLoop {
            director,
            device,
            out: vec![Vec::new(); n],
            last_timers: Duration::ZERO,
        }
    }

    /// The director.
    pub fn director(&self) -> &Director {
        &self.director
    }

    /// The director, to change it (as the control socket does).
    pub fn director_mut(&mut self) -> &mut Director {
        &mut self.director
    }

    /// The device.
    pub fn device(&self) -> &D {
        &self.device
    }

    /// How long the loop may sleep at `now` before something is due.
    pub fn timeout(&self, now: Duration) -> Duration {
        let timers = (self.last_timers + TIMER_INTERVAL).saturating_sub(now);
        match self.device.poll_at() {
            Some(at) => timers.min(at.saturating_sub(now)),
            None => timers,
        }
    }

    /// Receive what waits on the interfaces flagged in `ready`, hand it to the director and
    /// send its answers.
    pub fn on_ready(&mut self, now: Duration, ready: &[bool]) -> Result<(), Error> {
        for (idx, _) in ready.iter().enumerate().filter(|(_, r)| **r) {
            for _ in 0..RECV_ROUNDS {
                let director = &mut self.director;
                let out = &mut self.out;
                let more = self.device.recv(now, idx, &mut |frame| {
                    for (iface, f) in director.handle_frame(now, IfaceId(idx), frame) {
                        if let Some(q) = out.get_mut(iface.0) {
                            q.push(f);
                        }
                    }
                })?;
                self.flush(now);
                if !more {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Release what the device holds back for `now`, and run the director's timers when due.
    pub fn on_timers(&mut self, now: Duration) {
        let r = self.device.flush(now);
        if r.dropped > 0 {
            log_drops("held-back frames", &r);
        }
        if now.saturating_sub(self.last_timers) >= TIMER_INTERVAL {
            self.last_timers = now;
            for (iface, f) in self.director.poll(now) {
                if let Some(q) = self.out.get_mut(iface.0) {
                    q.push(f);
                }
            }
            self.flush(now);
        }
    }

    /// Send frames the director produced outside a receive or timer round (VRRP's first
    /// words, a failover asked for over the control socket).
    pub fn send(&mut self, now: Duration, tx: Tx) {
        for (iface, f) in tx {
            if let Some(q) = self.out.get_mut(iface.0) {
                q.push(f);
            }
        }
        self.flush(now);
    }

    fn flush(&mut self, now: Duration) {
        for idx in 0..self.out.len() {
            if self.out[idx].is_empty() {
                continue;
            }
            let r = self.device.send(now, idx, &self.out[idx]);
            self.out[idx].clear();
            if r.dropped > 0 {
                log_drops(self.device.iface_name(idx), &r);
            }
        }
    }

    /// One turn: sleep until something is due or readable, then handle it. Returns which
    /// of `extra` are readable.
    pub fn turn(&mut self, clock: &impl Clock, extra: &[RawFd]) -> Result<Vec<bool>, Error> {
        let timeout = self.timeout(clock.now());
        let ready = self.device.wait(timeout, extra)?;
        let now = clock.now();
        self.on_ready(now, &ready.ifaces)?;
        self.on_timers(now);
        Ok(ready.extra)
    }

    /// Turn until `keep_going` says stop, answering `control`'s clients between turns.
    pub fn run(
        &mut self,
        clock: &impl Clock,
        control: Option<&ControlServer>,
        mut keep_going: impl FnMut(&Self, Duration) -> bool,
    ) -> Result<(), Error> {
        let extra: Vec<RawFd> = control.map(ControlServer::fd).into_iter().collect();
        while keep_going(self, clock.now()) {
            let ready = self.turn(clock, &extra)?;
            if let (Some(c), Some(true)) = (control, ready.first()) {
                let now = clock.now();
                let tx = c.accept_all(&mut self.director, now);
                self.send(now, tx);
            }
        }
        Ok(())
    }
}

fn log_drops(what: &str, r: &SendReport) {
    let error = r.first_errno.map(std::io::Error::from_raw_os_error);
    tracing::debug!(iface = %what, dropped = r.dropped, ?error, "the kernel refused frames; dropped, not resent");
}

/// A director with the table `lines` builds, at time `now` (IPv4 routes only).
pub fn build_director(
    lines: &[String],
    interfaces: Vec<Interface>,
    routes: Vec<Route>,
    now: Duration,
) -> Result<Director, Error> {
    let config = DirectorConfig {
        interfaces,
        routes,
        routes6: Vec::new(),
    };
    build_director_with(lines, config, now)
}

/// A director on `config` (interfaces and routes of both families) with the table `lines`
/// builds, at time `now`.
pub fn build_director_with(
    lines: &[String],
    config: DirectorConfig,
    now: Duration,
) -> Result<Director, Error> {
    let mut ipvs = Ipvs::new(IpvsConfig::default());
    let mut marks = Vec::new();
    for line in lines {
        let rule = |message: String| Error::Rule {
            line: line.clone(),
            message,
        };
        // A firewall-mark service comes with the mangle rules that mark its packets.
        if MarkRule::is_rule(line) {
            marks.push(MarkRule::parse(line).map_err(rule)?);
            continue;
        }
        let cmd = ipvsadm::parse(line).map_err(|e| rule(e.to_string()))?;
        ipvs.apply(now, cmd).map_err(|e| rule(e.to_string()))?;
    }
    let mut director = Director::new(config, ipvs)?;
    for m in marks {
        director.add_mark(m);
    }
    Ok(director)
}

/// One VRRP instance the director takes part in, as the lab's topology describes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HaSpec {
    /// The interface VRRP and sync messages use.
    pub iface: String,
    /// Virtual router id.
    pub vrid: u8,
    /// VRRP version, 2 or 3.
    pub version: u8,
    /// Advertisement interval.
    pub advert_int: Duration,
    /// This director's priority.
    pub priority: u8,
    /// Whether a higher priority takes the VIPs back.
    pub preempt: bool,
    /// The VIPs the MASTER owns.
    pub vips: Vec<Ipv4Addr>,
    /// IPVS sync id, when the pair syncs connections.
    pub sync_id: Option<u8>,
}

/// Join the director pairs of `ha`; returns the frames to send at once.
pub fn join_pairs(director: &mut Director, ha: &[HaSpec], now: Duration) -> Result<Tx, Error> {
    let mut tx = Tx::new();
    for h in ha {
        let setup = |message: String| Error::Ha {
            vrid: h.vrid,
            message,
        };
        let iface = director
            .iface_id(&h.iface)
            .ok_or_else(|| setup(format!("no interface {} to speak VRRP on", h.iface)))?;
        let src = director.interfaces()[iface.0]
            .addrs
            .first()
            .map(|a| a.addr)
            .ok_or_else(|| setup(format!("{} has no IPv4 address", h.iface)))?;
        let version = if h.version == 3 {
            VrrpVersion::V3
        } else {
            VrrpVersion::V2
        };
        let inst = HaInstance {
            iface,
            vrrp: VrrpConfig {
                vrid: h.vrid,
                priority: h.priority,
                advert_int: h.advert_int,
                version,
                preempt: h.preempt,
                vips: h.vips.clone(),
                src,
            },
            sync_id: h.sync_id,
        };
        tx.extend(
            director
                .add_ha(now, inst)
                .map_err(|e| setup(e.to_string()))?,
        );
        tracing::info!(vrid = h.vrid, iface = %h.iface, priority = h.priority, version = h.version, sync = ?h.sync_id, "joined the director pair");
    }
    Ok(tx)
}

/// Build the director from the calling thread's namespace and serve until an I/O error:
/// the table from `lines`, the pairs of `ha`, the control socket at `socket`, faults from
/// [`BREAK_ENV`]. `ready` runs once the control socket accepts clients.
pub fn serve(
    lines: &[String],
    ha: &[HaSpec],
    socket: &Path,
    ready: impl FnOnce(),
) -> Result<(), Error> {
    let clock = MonotonicClock::start();
    let vips: Vec<IpAddr> = vips_of(lines)
        .into_iter()
        .map(IpAddr::V4)
        .chain(vips6_of(lines).into_iter().map(IpAddr::V6))
        .collect();
    let routes = crate::hostinfo::gateway_routes()?;
    let routes6 = crate::hostinfo::gateway_routes6()?;
    let interfaces = crate::hostinfo::interfaces(&routes, &routes6, &vips)?;
    if interfaces.is_empty() {
        return Err(Error::NoInterfaces);
    }
    let names: Vec<&str> = interfaces.iter().map(|i| i.name.as_str()).collect();
    let device = PacketDevice::open(&names)?;
    for i in &interfaces {
        tracing::info!(iface = %i.name, mac = %i.mac, addrs = ?i.addrs.iter().map(|a| a.to_string()).chain(i.addrs6.iter().map(|a| a.to_string())).collect::<Vec<_>>(), answers_vip_arp = i.answers_vip_arp, "attached");
    }
    // A deliberate fault only when a test asks for one (the scenario runner's --break).
    let faults = FaultSpec::from_env()?;
    let config = DirectorConfig {
        interfaces,
        routes,
        routes6,
    };
    let mut director = build_director_with(lines, config, clock.now())?;
    let first = join_pairs(&mut director, ha, clock.now())?;
    let control = ControlServer::bind(socket)?;
    tracing::info!(socket = %socket.display(), "control socket ready");
    ready();
    if faults.is_empty() {
        let mut l = DeviceLoop::new(director, device);
        l.send(clock.now(), first);
        l.run(&clock, Some(&control), log_transitions())
    } else {
        tracing::warn!(?faults, "running with deliberate faults ({BREAK_ENV})");
        let mut l = DeviceLoop::new(director, faults.wrap(device));
        l.send(clock.now(), first);
        l.run(&clock, Some(&control), log_transitions())
    }
}

/// A keep-going callback that logs each new VRRP state change once (the daemon's log is
/// where `lvslab status` users look first when the VIP moved).
fn log_transitions<D: Device>() -> impl FnMut(&DeviceLoop<D>, Duration) -> bool {
    let mut seen = 0usize;
    move |l, _| {
        let events: Vec<_> = l.director().ha_events().collect();
        let total = l
            .director()
            .ha_status()
            .iter()
            .map(|h| h.vrrp.transitions as usize)
            .sum::<usize>();
        if total != seen {
            let new = total.saturating_sub(seen).min(events.len());
            for e in &events[events.len() - new..] {
                tracing::info!(vrid = e.vrid, from = %e.from, to = %e.to, reason = %e.reason, "VRRP");
            }
            seen = total;
        }
        true
    }
}

/// The IPv6 VIPs named by `-A -t/-u [VIP]:port` rules and by ip6tables mangle MARK rules.
pub fn vips6_of(lines: &[String]) -> Vec<Ipv6Addr> {
    named_vips(lines)
        .into_iter()
        .filter_map(|ip| match ip {
            IpAddr::V6(v) => Some(v),
            IpAddr::V4(_) => None,
        })
        .collect()
}

/// The VIPs named by `-A -t/-u VIP:port` rules and by iptables mangle MARK rules (`-d VIP`).
pub fn vips_of(lines: &[String]) -> Vec<Ipv4Addr> {
    named_vips(lines)
        .into_iter()
        .filter_map(|ip| match ip {
            IpAddr::V4(v) => Some(v),
            IpAddr::V6(_) => None,
        })
        .collect()
}

/// Every VIP the rules name, once each, in order: `-t/-u VIP:port` or `[VIP]:port`, and the
/// `-d` of MARK rules.
fn named_vips(lines: &[String]) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for line in lines {
        let named: Vec<IpAddr> = match MarkRule::parse(line) {
            Ok(m) => vec![m.dst],
            Err(_) => line
                .split_whitespace()
                .collect::<Vec<_>>()
                .windows(2)
                .filter(|w| matches!(w[0], "-t" | "-u" | "--tcp-service" | "--udp-service"))
                .filter_map(|w| service_ip(w[1]))
                .collect(),
        };
        for ip in named {
            if !out.contains(&ip) {
                out.push(ip);
            }
        }
    }
    out
}

/// The address of an ipvsadm service argument: `[2001:db8::10]:80` or `192.0.2.1:80`.
fn service_ip(arg: &str) -> Option<IpAddr> {
    match arg.strip_prefix('[') {
        Some(rest) => rest
            .split_once(']')?
            .0
            .parse::<Ipv6Addr>()
            .ok()
            .map(IpAddr::V6),
        None => arg
            .rsplit_once(':')?
            .0
            .parse::<Ipv4Addr>()
            .ok()
            .map(IpAddr::V4),
    }
}

/// The listening control socket; the socket file goes when this is dropped.
pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
}

impl ControlServer {
    /// Listen on `path`, replacing a stale socket file.
    pub fn bind(path: &Path) -> Result<Self, Error> {
        let _ = std::fs::remove_file(path);
        let what = || format!("bind control socket {}", path.display());
        let listener = UnixListener::bind(path).map_err(|e| Error::io(what(), e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io(what(), e))?;
        Ok(ControlServer {
            listener,
            path: path.to_path_buf(),
        })
    }

    /// The descriptor to wait on.
    pub fn fd(&self) -> RawFd {
        self.listener.as_raw_fd()
    }

    /// Answer every client waiting now, one request each; returns the frames the
    /// requests made the director send.
    pub fn accept_all(&self, director: &mut Director, now: Duration) -> Tx {
        let mut tx = Tx::new();
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if let Err(e) = handle_client(stream, director, now, &mut tx) {
                        tracing::warn!(error = %e, "control client");
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return tx,
                Err(e) => {
                    tracing::warn!(error = %e, "accept on the control socket");
                    return tx;
                }
            }
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn handle_client(
    stream: UnixStream,
    director: &mut Director,
    now: Duration,
    tx: &mut Tx,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line)?;
    let out = answer_line(&line, director, now, tx).map_err(std::io::Error::other)?;
    (&stream).write_all(out.as_bytes())
}

/// The control protocol on one line: a JSON [`Request`] in, its JSON [`Response`] out
/// (newline included). A line that is no request is answered with an error saying how to
/// write one. The fuzz harness (lab/fuzzing) calls this too, so it is what the socket runs.
pub fn answer_line(
    line: &str,
    director: &mut Director,
    now: Duration,
    tx: &mut Tx,
) -> Result<String, serde_json::Error> {
    let resp = match serde_json::from_str::<Request>(line) {
        Err(e) => Response::Error {
            message: format!(
                "bad request: {e}; send one JSON object per line, e.g. {{\"op\":\"stats\"}} or {{\"op\":\"ipvsadm\",\"line\":\"-L\"}} (lvslab_director::control::Request lists the ops)"
            ),
        },
        Ok(req) => answer(req, director, now, tx),
    };
    let mut out = serde_json::to_string(&resp)?;
    out.push('\n');
    Ok(out)
}
