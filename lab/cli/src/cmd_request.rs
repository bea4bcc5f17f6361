//! `lvslab request`: send N requests from a node and count which server answered.
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use lvslab_netns::{netns, Lab};
use serde::Serialize;

/// Send requests from inside a node and count answers per real server.
///
/// Each request uses a new connection (a new source port). TCP without a payload sends an HTTP
/// GET and keys the answer by the body (the server's node name). With --payload or
/// --random-bytes the bytes are sent raw and the echo is checked; TCP echoes carry no name, so
/// they are counted under "echo". UDP answers are "<node>\n<payload>". Exit code 1 if any
/// request failed.
///
/// When some fail, more requests are sent one by one while every hop of the lab is captured
/// (with the userspace director explaining its picks), until one fails again, and the
/// causes the trace finds are printed, e.g. a NAT reply that bypassed the director and the
/// route that sent it there. `--no-diagnose` skips that.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The lab (default: the only lab that is up).
    #[arg(long)]
    pub lab: Option<String>,
    /// Node to send from, e.g. client.
    #[arg(long)]
    pub from: String,
    /// Destination ADDR:PORT, e.g. 192.168.1.250:80 or [2001:db8:1::250]:80.
    #[arg(long)]
    pub to: SocketAddr,
    /// Number of requests.
    #[arg(short = 'n', long, default_value_t = 1)]
    pub count: usize,
    /// Use UDP instead of TCP.
    #[arg(long)]
    pub udp: bool,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 1)]
    pub parallel: usize,
    /// Raw payload as hex (e.g. 68656c6c6f); the echo must come back intact.
    #[arg(long, conflicts_with = "random_bytes")]
    pub payload: Option<String>,
    /// Raw payload of N random bytes; the echo must come back intact.
    #[arg(long)]
    pub random_bytes: Option<usize>,
    /// Per-request timeout in milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub timeout_ms: u64,
    /// Print JSON: {servers: {node: count}, ok, failed, errors, latency_ms, diagnosis}.
    #[arg(long)]
    pub json: bool,
    /// On failures, do not capture more attempts to find their cause.
    #[arg(long)]
    pub no_diagnose: bool,
    /// Where those captures go (under LAB/request-failed-*). Set by lvslab itself for a lab
    /// in its VM, whose view of this directory is read-only.
    #[arg(long, hide = true, default_value = "captures")]
    pub captures_root: std::path::PathBuf,
}

#[derive(Serialize)]
struct Report {
    from: String,
    to: String,
    protocol: &'static str,
    requests: usize,
    ok: usize,
    failed: usize,
    servers: BTreeMap<String, usize>,
    errors: BTreeMap<String, usize>,
    latency_ms: BTreeMap<&'static str, f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    diagnosis: Option<crate::diagnose::Diagnosis>,
}

/// Run the command.
pub fn run(args: Args) -> Result<()> {
    let lab = Lab::load(&lvslab_engine::resolve_lab(args.lab.as_deref())?)?;
    let ns = lab.netns_of(&args.from)?;
    let payload: Option<Vec<u8>> = match (&args.payload, args.random_bytes) {
        (Some(h), _) => Some(parse_hex(h)?),
        (None, Some(n)) => Some(random_bytes(n)),
        _ => None,
    };
    let timeout = Duration::from_millis(args.timeout_ms.max(1));
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(Result<String, String>, Duration)>> =
        Mutex::new(Vec::with_capacity(args.count));
    let workers = args.parallel.clamp(1, args.count.max(1));
    std::thread::scope(|s| -> Result<()> {
        let hs: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    netns::run_in(&ns, || {
                        let mut mine = Vec::new();
                        while next.fetch_add(1, Ordering::Relaxed) < args.count {
                            let t = Instant::now();
                            let r = if args.udp {
                                udp_once(args.to, payload.as_deref(), timeout)
                            } else {
                                tcp_once(args.to, payload.as_deref(), timeout)
                            };
                            mine.push((r, t.elapsed()));
                        }
                        if let Ok(mut all) = results.lock() {
                            all.extend(mine);
                        }
                    })
                })
            })
            .collect();
        for h in hs {
            h.join()
                .map_err(|_| anyhow::anyhow!("request worker panicked"))??;
        }
        Ok(())
    })?;
    let results = results.into_inner().unwrap_or_default();
    let mut servers = BTreeMap::new();
    let mut errors = BTreeMap::new();
    let mut lat: Vec<f64> = Vec::new();
    for (r, d) in &results {
        match r {
            Ok(name) => {
                *servers.entry(name.clone()).or_insert(0) += 1;
                lat.push(d.as_secs_f64() * 1000.0);
            }
            Err(e) => *errors.entry(e.clone()).or_insert(0) += 1,
        }
    }
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((p / 100.0) * (lat.len() - 1) as f64).round() as usize;
        lat[i.min(lat.len() - 1)]
    };
    let mut latency_ms = BTreeMap::new();
    if !lat.is_empty() {
        latency_ms.insert("min", pct(0.0));
        latency_ms.insert("p50", pct(50.0));
        latency_ms.insert("p90", pct(90.0));
        latency_ms.insert("p99", pct(99.0));
        latency_ms.insert("max", pct(100.0));
    }
    let ok: usize = servers.values().sum();
    let mut rep = Report {
        from: args.from.clone(),
        to: args.to.to_string(),
        protocol: if args.udp { "udp" } else { "tcp" },
        requests: results.len(),
        ok,
        failed: results.len() - ok,
        servers,
        errors,
        latency_ms,
        diagnosis: None,
    };
    if rep.failed > 0
        && !args.no_diagnose
        && std::env::var_os(crate::diagnose::CAPTURING_ENV).is_none()
    {
        // As many tries as the services have real servers (and one more): a scheduler
        // that spreads them reaches a failing server within that many.
        let servers: usize = lab
            .state
            .topology
            .services
            .iter()
            .map(|s| s.real_servers.len())
            .sum();
        let attempt = || {
            netns::run_in(&ns, || {
                if args.udp {
                    udp_once(args.to, payload.as_deref(), timeout)
                } else {
                    tcp_once(args.to, payload.as_deref(), timeout)
                }
            })
            .is_ok_and(|r| r.is_ok())
        };
        match crate::diagnose::capture_attempts(
            &lab,
            &args.captures_root,
            (servers + 1).clamp(2, 16),
            attempt,
        ) {
            Ok(d) => rep.diagnosis = Some(d),
            Err(e) => eprintln!("lvslab request: capturing one more attempt failed: {e:#}"),
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rep)?);
    } else {
        println!(
            "{} {} requests {} -> {}: {} ok, {} failed",
            rep.requests, rep.protocol, rep.from, rep.to, rep.ok, rep.failed
        );
        for (k, v) in &rep.servers {
            println!(
                "  {k:<12} {v:>6}  {:5.1}%",
                100.0 * *v as f64 / rep.requests.max(1) as f64
            );
        }
        for (k, v) in &rep.errors {
            println!("  error {k}: {v}");
        }
        if !rep.latency_ms.is_empty() {
            let l = &rep.latency_ms;
            println!(
                "  latency ms: min {:.3}  p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}",
                l["min"], l["p50"], l["p90"], l["p99"], l["max"]
            );
        }
        if let Some(d) = &rep.diagnosis {
            print_diagnosis(&rep, d);
        }
    }
    if rep.failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}

/// `2 of 4 requests failed; ...`, then each cause on a line of its own.
fn print_diagnosis(rep: &Report, d: &crate::diagnose::Diagnosis) {
    let head = format!("{} of {} requests failed", rep.failed, rep.requests);
    let tried = match (d.tries, d.failed) {
        (1, 1) => "one more, captured".to_owned(),
        (n, 1) => format!("{n} more, captured, the last failed"),
        (n, _) => format!("{n} more, captured, all answered"),
    };
    match d.causes.as_slice() {
        [] if d.failed == 0 => println!("{head}; {tried}: no cause seen"),
        [] => println!("{head}; {tried}: the trace finds no misrouted packet"),
        [one] => println!("{head}; {tried}: {one}"),
        many => {
            println!("{head}; {tried}:");
            for c in many {
                println!("  {c}");
            }
        }
    }
    println!("  every hop: lvslab trace --run {}", d.captures.display());
}

fn tcp_once(to: SocketAddr, payload: Option<&[u8]>, timeout: Duration) -> Result<String, String> {
    let mut s = TcpStream::connect_timeout(&to, timeout).map_err(|e| short(&e))?;
    s.set_read_timeout(Some(timeout)).map_err(|e| short(&e))?;
    s.set_write_timeout(Some(timeout)).map_err(|e| short(&e))?;
    let _ = s.set_nodelay(true);
    match payload {
        None => {
            let req = format!(
                "GET / HTTP/1.1\r\nHost: {to}\r\nUser-Agent: lvslab\r\nConnection: close\r\n\r\n"
            );
            s.write_all(req.as_bytes()).map_err(|e| short(&e))?;
            let mut resp = Vec::new();
            s.read_to_end(&mut resp).map_err(|e| short(&e))?;
            let text = String::from_utf8_lossy(&resp);
            let (head, body) = text
                .split_once("\r\n\r\n")
                .ok_or_else(|| "incomplete HTTP response".to_string())?;
            if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
                return Err(format!(
                    "HTTP status {:?}",
                    head.lines().next().unwrap_or_default()
                ));
            }
            let name = body.trim();
            if name.is_empty() {
                return Err("empty HTTP body".into());
            }
            Ok(name.to_string())
        }
        Some(p) => {
            // Write and read concurrently so large payloads cannot deadlock on full buffers.
            let mut w = s.try_clone().map_err(|e| short(&e))?;
            let back = std::thread::scope(|sc| {
                let writer = sc.spawn(move || -> std::io::Result<()> {
                    w.write_all(p)?;
                    w.shutdown(std::net::Shutdown::Write)
                });
                let mut back = Vec::with_capacity(p.len());
                let r = s.read_to_end(&mut back);
                let wr = writer
                    .join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("writer panicked")));
                wr.and(r).map(|_| back)
            })
            .map_err(|e| short(&e))?;
            if back != p {
                return Err(format!(
                    "echo mismatch ({} bytes sent, {} back)",
                    p.len(),
                    back.len()
                ));
            }
            Ok("echo".into())
        }
    }
}

fn udp_once(to: SocketAddr, payload: Option<&[u8]>, timeout: Duration) -> Result<String, String> {
    let bind: SocketAddr = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }
        .parse()
        .map_err(|_| "bad bind address".to_string())?;
    let u = UdpSocket::bind(bind).map_err(|e| short(&e))?;
    u.connect(to).map_err(|e| short(&e))?;
    u.set_read_timeout(Some(timeout)).map_err(|e| short(&e))?;
    let p = payload.unwrap_or_default();
    u.send(p).map_err(|e| short(&e))?;
    let mut buf = vec![0u8; 65536];
    let n = u.recv(&mut buf).map_err(|e| short(&e))?;
    let reply = &buf[..n];
    let nl = reply
        .iter()
        .position(|b| *b == b'\n')
        .ok_or_else(|| "UDP reply without a name line".to_string())?;
    let name = String::from_utf8_lossy(&reply[..nl]).to_string();
    if payload.is_some() && &reply[nl + 1..] != p {
        return Err(format!(
            "echo mismatch ({} bytes sent, {} back)",
            p.len(),
            n - nl - 1
        ));
    }
    Ok(name)
}

fn short(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => "timeout".into(),
        _ => e.to_string(),
    }
}

fn parse_hex(h: &str) -> Result<Vec<u8>> {
    let h = h.trim();
    if !h.len().is_multiple_of(2) {
        bail!("--payload needs an even number of hex digits");
    }
    (0..h.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&h[i..i + 2], 16)
                .with_context(|| format!("--payload: {:?} is not hex", &h[i..i + 2]))
        })
        .collect()
}

fn random_bytes(n: usize) -> Vec<u8> {
    // xorshift64*, seeded from the clock and pid: enough to make payloads unique per run.
    let mut x = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        ^ (u64::from(std::process::id()) << 32)
        | 1;
    (0..n)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}
