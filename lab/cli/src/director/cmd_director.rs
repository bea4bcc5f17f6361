//! `lvslab director`: the userspace director daemon (AF_PACKET device layer + control socket).
//!
//! Keeping the director's kernel out of the way: the VIP is not configured in the director's
//! kernel and its `ip_forward` stays 0, so the kernel silently drops the packets the
//! userspace director handles (to the VIP, and NAT replies to clients) while still doing its
//! own chores (ARP for the DIP, pings). AF_PACKET gets a copy of every frame before that.

use crate::director::afpacket::{poll_readable, PacketSocket, RecvBatch, BATCH};
use crate::director::control::{ConnRow, DestStats, Request, Response, ServiceStats};
use anyhow::{bail, Context, Result};
use lvslab_core::director::{Director, DirectorConfig, DirectorStats, Fault, IfaceId};
use lvslab_core::{ipvsadm, Ipvs, IpvsConfig, ServiceKey};
use lvslab_scenario::runner::BREAK_ENV;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Arguments of `lvslab director`.
#[derive(clap::Args, Debug)]
pub struct DirectorArgs {
    /// The lab (default: the only lab that is up).
    #[arg(long)]
    pub lab: Option<String>,
    /// The director node; needed only when the lab has several directors with services.
    #[arg(long)]
    pub node: Option<String>,
}

/// Run the director of the lab in the foreground until killed.
pub fn run(args: DirectorArgs) -> Result<()> {
    crate::director::logging::init();
    let lab = lvslab_engine::resolve_lab(args.lab.as_deref())?;
    let plan = crate::director::labinfo::director_plan(&lab, args.node.as_deref())?;
    tracing::info!(lab = %lab, node = %plan.node, netns = %plan.netns, "starting the userspace director");
    let netns = plan.netns.clone();
    lvslab_netns::netns::run_in(&netns, move || serve(&plan.lines, &plan.socket))
        .with_context(|| format!("enter namespace {netns}"))?
}

/// Build the director from the calling thread's namespace and serve until an I/O error.
pub fn serve(lines: &[String], socket: &Path) -> Result<()> {
    let start = Instant::now();
    let mut ipvs = Ipvs::new(IpvsConfig::default());
    for line in lines {
        let cmd = ipvsadm::parse(line).with_context(|| format!("service rule `{line}`"))?;
        ipvs.apply(start.elapsed(), cmd)
            .with_context(|| format!("service rule `{line}`"))?;
    }
    let vips = vips_of(lines);
    let routes = crate::director::hostinfo::gateway_routes()?;
    let interfaces = crate::director::hostinfo::interfaces(&routes, &vips)?;
    if interfaces.is_empty() {
        bail!("the director's namespace has no interface with an IPv4 address");
    }
    let sockets = interfaces
        .iter()
        .map(|i| PacketSocket::open(&i.name))
        .collect::<Result<Vec<_>>>()?;
    for i in &interfaces {
        tracing::info!(iface = %i.name, mac = %i.mac, addrs = ?i.addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(), answers_vip_arp = i.answers_vip_arp, "attached");
    }
    // A deliberate fault only when a test asks for one (the scenario runner's --break).
    let fault = match std::env::var(BREAK_ENV) {
        Ok(v) if !v.is_empty() => {
            let f: Fault = v.parse().map_err(anyhow::Error::msg)?;
            tracing::warn!(fault = %v, "running with a deliberate fault ({BREAK_ENV})");
            Some(f)
        }
        _ => None,
    };
    let mut director = Director::new(
        DirectorConfig {
            interfaces,
            routes,
            fault,
        },
        ipvs,
    )?;
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket)
        .with_context(|| format!("bind control socket {}", socket.display()))?;
    listener.set_nonblocking(true)?;
    let _cleanup = RemoveOnDrop(socket.to_path_buf());
    tracing::info!(socket = %socket.display(), "control socket ready");
    lvslab_netns::netns::notify_ready();

    let mut fds: Vec<_> = sockets.iter().map(|s| s.as_raw_fd()).collect();
    fds.push(listener.as_raw_fd());
    let mut batch = RecvBatch::default();
    let mut out: Vec<Vec<Vec<u8>>> = vec![Vec::new(); sockets.len()];
    let mut last_poll = Duration::ZERO;
    loop {
        let ready = poll_readable(&fds, 100)?;
        let now = start.elapsed();
        for (idx, sock) in sockets.iter().enumerate() {
            if !ready[idx] {
                continue;
            }
            // Bounded rounds keep one busy interface from starving the others; frames to
            // send are gathered per interface and leave with one sendmmsg per round.
            for _ in 0..8 {
                let n = sock
                    .recv_batch(&mut batch)
                    .with_context(|| format!("recv on {}", sock.name))?;
                for frame in batch.frames() {
                    for (iface, f) in director.handle_frame(now, IfaceId(idx), frame) {
                        if let Some(q) = out.get_mut(iface.0) {
                            q.push(f);
                        }
                    }
                }
                flush(&sockets, &mut out);
                if n < BATCH {
                    break;
                }
            }
        }
        if ready[sockets.len()] {
            accept_all(&listener, &mut director, now);
        }
        if now.saturating_sub(last_poll) >= Duration::from_millis(100) {
            last_poll = now;
            for (iface, f) in director.poll(now) {
                if let Some(q) = out.get_mut(iface.0) {
                    q.push(f);
                }
            }
            flush(&sockets, &mut out);
        }
    }
}

fn flush(sockets: &[PacketSocket], out: &mut [Vec<Vec<u8>>]) {
    for (sock, q) in sockets.iter().zip(out.iter_mut()) {
        if !q.is_empty() {
            let r = sock.send_batch(q);
            if r.dropped > 0 {
                let error = r.first_errno.map(std::io::Error::from_raw_os_error);
                tracing::debug!(iface = %sock.name, dropped = r.dropped, ?error, "the kernel refused frames; dropped, not resent");
            }
            q.clear();
        }
    }
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The VIPs named by `-A -t/-u VIP:port` rules.
fn vips_of(lines: &[String]) -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    for line in lines {
        let words: Vec<&str> = line.split_whitespace().collect();
        for w in words.windows(2) {
            if matches!(w[0], "-t" | "-u" | "--tcp-service" | "--udp-service") {
                if let Some(ip) = w[1].rsplit_once(':').and_then(|(ip, _)| ip.parse().ok()) {
                    if !out.contains(&ip) {
                        out.push(ip);
                    }
                }
            }
        }
    }
    out
}

fn accept_all(listener: &UnixListener, director: &mut Director, now: Duration) {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                if let Err(e) = handle_client(stream, director, now) {
                    tracing::warn!(error = %e, "control client");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(e) => {
                tracing::warn!(error = %e, "accept on the control socket");
                return;
            }
        }
    }
}

fn handle_client(stream: UnixStream, director: &mut Director, now: Duration) -> Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line)?;
    let resp = match serde_json::from_str::<Request>(&line) {
        Err(e) => Response::Error {
            message: format!("bad request: {e}"),
        },
        Ok(req) => answer(req, director, now),
    };
    let mut out = serde_json::to_string(&resp)?;
    out.push('\n');
    (&stream).write_all(out.as_bytes())?;
    Ok(())
}

/// Answer one control request.
pub fn answer(req: Request, director: &mut Director, now: Duration) -> Response {
    match req {
        Request::Ipvsadm { line } => {
            let applied = ipvsadm::parse(&line)
                .map_err(|e| e.to_string())
                .and_then(|cmd| director.apply(now, cmd).map_err(|e| e.to_string()));
            match applied {
                Ok(()) => {
                    tracing::info!(%line, "applied");
                    Response::Ok
                }
                Err(message) => Response::Error {
                    message: format!("`{line}`: {message}"),
                },
            }
        }
        Request::Stats => Response::Stats {
            services: service_stats(director.ipvs()),
            director: director_counters(director.stats()),
        },
        Request::Conns => Response::Conns {
            conns: conn_rows(director.ipvs(), now),
        },
    }
}

fn director_counters(s: &DirectorStats) -> BTreeMap<String, u64> {
    [
        ("rx_frames", s.rx_frames),
        ("tx_frames", s.tx_frames),
        ("forwarded", s.forwarded),
        ("masqueraded", s.masqueraded),
        ("icmp_related", s.icmp_related),
        ("icmp_sent", s.icmp_sent),
        ("malformed", s.malformed),
        ("not_ours", s.not_ours),
        ("ipvs_drops", s.ipvs_drops),
        ("no_route", s.no_route),
        ("arp_failed", s.arp_failed),
        ("fragments", s.fragments),
        ("echo_replies", s.echo_replies),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// `TCP  192.168.1.250:80` as ipvsadm -Ln prints a service.
fn service_name(key: &ServiceKey) -> String {
    match key {
        ServiceKey::Addr {
            protocol,
            vip,
            port,
        } => {
            format!("{protocol}  {}", SocketAddr::new(vip.0, *port))
        }
        ServiceKey::FwMark(m) => format!("FWM  {m}"),
    }
}

fn service_stats(ipvs: &Ipvs) -> Vec<ServiceStats> {
    ipvs.services()
        .iter()
        .map(|s| ServiceStats {
            service: service_name(&s.config.key),
            scheduler: s.config.scheduler.to_string(),
            persistent: s.config.persistence.as_ref().map(|p| p.timeout.as_secs()),
            counters: s.stats,
            dests: s
                .dests
                .iter()
                .map(|d| DestStats {
                    addr: d.config.addr.to_string(),
                    // Display gives ipvsadm's Forward column names (Masq, Route, Tunnel).
                    forward: d.config.method.to_string(),
                    weight: d.config.weight,
                    active: u64::from(d.active),
                    inactive: u64::from(d.inactive),
                    counters: d.stats,
                })
                .collect(),
        })
        .collect()
}

fn conn_rows(ipvs: &Ipvs, now: Duration) -> Vec<ConnRow> {
    ipvs.conns(now)
        .iter()
        .map(|c| ConnRow {
            pro: c.protocol.to_string(),
            expire_secs: c.expires_in.as_secs(),
            state: c.state.to_string(),
            source: c.client.to_string(),
            virtual_addr: c.vip.to_string(),
            destination: c.dest.to_string(),
        })
        .collect()
}
