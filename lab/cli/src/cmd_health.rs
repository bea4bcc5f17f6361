//! `lvslab health`: the health-check daemon `up` starts for every director whose services
//! have a `health` table. It checks each real server from inside the director's namespace
//! and, on a transition, changes the table through the engine's balancer seam, so it works
//! with the userspace director and with kernel IPVS alike.
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::cmd_status::now_ms;

use anyhow::{bail, Result};
use lvslab_engine::health::{health_path, write_health, HealthFile, ServiceHealth};
use lvslab_netns::{HealthCheck, HealthSpec, Lab};

/// Health-check daemon of one director (`up` starts it): runs each service's checks
/// against its real servers and removes, quiesces or restores them on a transition.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The lab (default: the only lab that is up).
    #[arg(long)]
    pub lab: Option<String>,
    /// The director node; needed only when the lab has several directors with services.
    #[arg(long)]
    pub node: Option<String>,
}

/// Run the checks until killed.
pub fn run(args: Args) -> Result<()> {
    crate::director::logging::init();
    let lab = Lab::load(&lvslab_engine::resolve_lab(args.lab.as_deref())?)?;
    let node = lvslab_engine::pick_director(&lab.state.topology, args.node.as_deref())?;
    let netns = lab.netns_of(&node)?;
    let mut services: Vec<ServiceHealth> = lab
        .state
        .topology
        .services
        .iter()
        .filter(|s| s.director == node)
        .filter_map(ServiceHealth::new)
        .collect();
    if services.is_empty() {
        bail!("no service of director {node} has a health table");
    }
    let balancer = lvslab_engine::balancer(&lab, Some(&node))?;
    let path = health_path(&lab.run_dir(), &node);
    let start = now_ms();
    let mut since: Vec<Vec<u64>> = services
        .iter()
        .map(|s| vec![start; s.checkers.len()])
        .collect();
    let save = |services: &[ServiceHealth], since: &[Vec<u64>]| {
        let file = HealthFile {
            servers: services
                .iter()
                .zip(since)
                .flat_map(|(s, t)| s.rows(t))
                .collect(),
        };
        if let Err(e) = write_health(&path, &file) {
            tracing::warn!("{e}");
        }
    };
    save(&services, &since);

    let (results, inbox) = mpsc::channel::<(usize, usize, bool)>();
    let mut delays = Vec::new();
    for (si, s) in services.iter().enumerate() {
        let Some(spec) = s.spec.health.clone() else {
            continue;
        };
        let mut row = Vec::new();
        for (ri, rs) in s.spec.real_servers.iter().enumerate() {
            let (delay_tx, delay_rx) = mpsc::channel::<Duration>();
            row.push(delay_tx);
            let target = SocketAddr::new(rs.address, rs.port);
            let (results, netns, spec) = (results.clone(), netns.clone(), spec.clone());
            // A thread that entered the director's namespace: its sockets and the
            // programs it starts belong there, whoever started this daemon.
            std::thread::spawn(move || {
                let ns = netns.clone();
                let r = lvslab_netns::netns::run_in(&ns, move || loop {
                    let ok = check(&spec, target);
                    if results.send((si, ri, ok)).is_err() {
                        return;
                    }
                    match delay_rx.recv() {
                        Ok(d) => std::thread::sleep(d),
                        Err(_) => return,
                    }
                });
                if let Err(e) = r {
                    tracing::error!("checker of {target} cannot enter {netns}: {e}");
                }
            });
        }
        delays.push(row);
    }
    drop(results);
    tracing::info!(%node, %netns, "health checks running");
    lvslab_netns::netns::notify_ready();

    for (si, ri, ok) in inbox {
        let s = &mut services[si];
        let (transition, lines) = s.observe(ri, ok);
        let rs = &s.spec.real_servers[ri];
        if let Some(t) = transition {
            tracing::info!(
                service = %s.label(),
                server = %rs.node,
                address = %SocketAddr::new(rs.address, rs.port),
                "{}",
                match t {
                    lvslab_engine::health::Transition::Down => "down: checks failed",
                    lvslab_engine::health::Transition::Up => "up: a check passed",
                }
            );
            for l in &lines {
                match balancer.ipvsadm(l) {
                    Ok(()) => tracing::info!("ipvsadm {l}"),
                    Err(e) => tracing::warn!("ipvsadm {l}: {e}"),
                }
            }
            since[si][ri] = now_ms();
        }
        let delay = s.checkers[ri].next_delay();
        save(&services, &since);
        if delays[si][ri].send(delay).is_err() {
            tracing::warn!("checker {si}/{ri} stopped");
        }
    }
    Ok(())
}

/// One check of `target`; `true` is healthy.
fn check(spec: &HealthSpec, target: SocketAddr) -> bool {
    let timeout = Duration::from_millis(spec.timeout_ms);
    let r: std::io::Result<bool> = match &spec.check {
        HealthCheck::Tcp => TcpStream::connect_timeout(&target, timeout).map(|_| true),
        HealthCheck::Http {
            path,
            status,
            digest,
        } => http(target, path, *status, digest.as_deref(), timeout),
        HealthCheck::Udp { payload, expect } => {
            udp(target, payload.as_bytes(), expect.as_deref(), timeout)
        }
        HealthCheck::Command { command } => run_command(command, timeout),
    };
    r.unwrap_or(false)
}

fn http(
    target: SocketAddr,
    path: &str,
    status: u16,
    digest: Option<&str>,
    timeout: Duration,
) -> std::io::Result<bool> {
    let mut s = TcpStream::connect_timeout(&target, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {}\r\nUser-Agent: lvslab-health\r\n\r\n",
        target.ip()
    )?;
    if let Some(want) = digest {
        // The whole answer is needed: the body's MD5 is compared (keepalived's HTTP_GET).
        let mut all = Vec::new();
        s.read_to_end(&mut all)?;
        return Ok(http_answer_matches(&all, status, Some(want)));
    }
    let mut buf = [0u8; 64];
    let mut got = 0;
    // The status line is all that is needed; stop once it is in.
    while got < buf.len() {
        let n = s.read(&mut buf[got..])?;
        if n == 0 || buf[..got + n].contains(&b'\n') {
            got += n;
            break;
        }
        got += n;
    }
    let line = String::from_utf8_lossy(&buf[..got]);
    Ok(line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        == Some(status))
}

/// Does an HTTP answer have status `status` and, with `digest`, a body whose MD5 is it?
fn http_answer_matches(answer: &[u8], status: u16, digest: Option<&str>) -> bool {
    let line_end = answer
        .iter()
        .position(|b| *b == b'\n')
        .unwrap_or(answer.len());
    let line = String::from_utf8_lossy(&answer[..line_end]);
    let code = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok());
    if code != Some(status) {
        return false;
    }
    let Some(want) = digest else { return true };
    let body = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(&answer[answer.len()..], |i| &answer[i + 4..]);
    use md5::Digest as _;
    let got = md5::Md5::digest(body);
    let hex: String = got.iter().map(|b| format!("{b:02x}")).collect();
    hex == want
}

fn udp(
    target: SocketAddr,
    payload: &[u8],
    expect: Option<&str>,
    timeout: Duration,
) -> std::io::Result<bool> {
    let bind: SocketAddr = if target.is_ipv4() {
        "0.0.0.0:0".parse().map_err(std::io::Error::other)?
    } else {
        "[::]:0".parse().map_err(std::io::Error::other)?
    };
    let s = UdpSocket::bind(bind)?;
    s.connect(target)?;
    s.set_read_timeout(Some(timeout))?;
    s.send(payload)?;
    let mut buf = [0u8; 1500];
    // A refused port shows as an error here (ICMP port unreachable on a connected socket).
    let n = s.recv(&mut buf)?;
    Ok(match expect {
        None => true,
        Some(want) => String::from_utf8_lossy(&buf[..n]).contains(want),
    })
}

fn run_command(argv: &[String], timeout: Duration) -> std::io::Result<bool> {
    let Some((prog, rest)) = argv.split_first() else {
        return Ok(false);
    };
    let mut child = std::process::Command::new(prog)
        .args(rest)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let t0 = Instant::now();
    loop {
        if let Some(st) = child.try_wait()? {
            return Ok(st.success());
        }
        if t0.elapsed() >= timeout {
            // A check that overruns its timeout fails, as keepalived's MISC_CHECK does.
            let _ = child.kill();
            let _ = child.wait();
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn an_http_answer_passes_on_status_and_body_md5_as_keepalived_checks_it() {
        // `printf 'rs1\n' | md5sum`: what lvslab serve on rs1 answers a GET with.
        let md5 = "7a6c0d2ef5a9e6e1776090916c66ba3a";
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nrs1\n";
        assert!(http_answer_matches(ok, 200, None));
        assert!(http_answer_matches(ok, 200, Some(md5)));
        assert!(!http_answer_matches(ok, 404, None));
        let other = b"HTTP/1.1 200 OK\r\n\r\nrs2\n";
        assert!(!http_answer_matches(other, 200, Some(md5)));
        assert!(!http_answer_matches(b"garbage", 200, None));
    }

    use super::*;

    fn spec(check: HealthCheck) -> HealthSpec {
        HealthSpec {
            check,
            interval_ms: 100,
            timeout_ms: 300,
            retries: 0,
            delay_before_retry_ms: 100,
            inhibit_on_failure: false,
            sorry_server: None,
        }
    }

    #[test]
    fn command_checks_follow_the_exit_status_and_the_timeout() {
        let any: SocketAddr = "127.0.0.1:9".parse().expect("addr");
        let cmd = |s: &str| HealthCheck::Command {
            command: vec!["sh".into(), "-c".into(), s.into()],
        };
        assert!(check(&spec(cmd("exit 0")), any));
        assert!(!check(&spec(cmd("exit 3")), any));
        assert!(!check(&spec(cmd("sleep 5")), any));
        assert!(!check(
            &spec(HealthCheck::Command {
                command: vec!["/nonexistent/program".into()]
            }),
            any
        ));
    }
}
