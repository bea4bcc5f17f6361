//! Failures that name their cause: capture a failing request again on every hop and read
//! the trace's findings (`lvslab request`), or read them from a failed scenario's captures
//! (`lvslab test`).
//!
//! Nothing here judges packets itself: the judging is lvslab-trace's (`Trace::findings`),
//! and the capture around the attempts is `lvslab trace`'s (its [`Explainer`] and run
//! directory files), so a failure is described in the same words as `lvslab trace` would.

use crate::cmd_trace::{write_picks, write_roles, Explainer};
use anyhow::{Context, Result};
use lvslab_capture::{analyze, files, LiveCapture, NormalizeOptions, RoleMap};
use lvslab_engine::capture_targets;
use lvslab_netns::{netns, Lab};
use lvslab_scenario::runner::ScenarioResult;
use lvslab_trace::{load_run, trace_report, Direction, Forwarding, Trace};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Set in the environment of a command that `lvslab trace` or `lvslab capture` runs: the
/// outer capture already records every hop, and a request that then sent more attempts of
/// its own would add conversations to it that nobody asked for.
pub const CAPTURING_ENV: &str = "LVSLAB_CAPTURING";

/// What the extra, captured attempts showed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Diagnosis {
    /// The run directory (`lvslab trace --run DIR` tells it hop by hop).
    pub captures: PathBuf,
    /// Attempts sent while capturing.
    pub tries: usize,
    /// How many of them failed (0 or 1: sending stops at the first failure).
    pub failed: usize,
    /// The causes the trace finds, in plain words; empty when it finds none.
    pub causes: Vec<String>,
}

/// Sends up to `max` more attempts while capturing every hop of the lab, stopping at the
/// first that fails (`attempt` returns false): a balanced service may send the next request
/// to a healthy server, so a single attempt could show nothing. Then traces the captures.
pub fn capture_attempts(
    lab: &Lab,
    root: &Path,
    max: usize,
    mut attempt: impl FnMut() -> bool,
) -> Result<Diagnosis> {
    // Milliseconds: two failing requests in one second must not share a directory.
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let dir = root
        .join(&lab.state.lab)
        .join(format!("request-failed-{ms}"));
    let targets = capture_targets(lab, &[]);
    // The director's own reasons for each pick, as `lvslab trace` records them.
    let explainer = Explainer::start(lab);
    let cap = LiveCapture::start(&targets, None)?;
    let mut tries = 0;
    let mut failed = 0;
    while tries < max.max(1) {
        tries += 1;
        if !attempt() {
            failed = 1;
            break;
        }
    }
    // Let the last replies, resets and retransmissions arrive before stopping.
    cap.wait_quiet(Duration::from_millis(150), Duration::from_secs(3));
    let caps = cap.stop()?;
    let picks = explainer.as_ref().map(Explainer::picks);
    drop(explainer);
    files::write_run_dir(&dir, &caps)?;
    write_roles(&dir, lab)?;
    if let Some(picks) = picks {
        write_picks(&dir, &picks)?;
    }
    let causes = run_causes(&dir, None, Some(lab))?;
    Ok(Diagnosis {
        captures: dir,
        tries,
        failed,
        causes,
    })
}

/// The trace's findings for every conversation of a run directory, each said once. With a
/// live `lab`, a NAT reply that bypassed the director also names the route that sent it
/// there, read from the real server's namespace. Without findings, where failed packets
/// were last seen ("never seen arriving") stands in for them.
pub fn run_causes(dir: &Path, fallback: Option<RoleMap>, lab: Option<&Lab>) -> Result<Vec<String>> {
    let run = load_run(dir, fallback).with_context(|| format!("reading {}", dir.display()))?;
    let report = analyze(&run.captures, &run.roles, NormalizeOptions::default());
    let traces = trace_report(&report, &run.roles, &run.picks, None)?;
    let mut causes: Vec<String> = Vec::new();
    let push = |causes: &mut Vec<String>, c: String| {
        if !causes.contains(&c) {
            causes.push(c);
        }
    };
    for t in &traces {
        // A bypass is the cause of what the client then sees, so it comes first, retold
        // with the route that sent it; the other findings as the trace says them.
        let bypasses = bypasses(t);
        for b in &bypasses {
            let route = lab.and_then(|l| route_cause(l, b, &run.roles));
            let text = match route {
                Some(r) => format!("{}: {r}", b.text),
                None => b.text.clone(),
            };
            push(&mut causes, text);
        }
        for f in &t.findings {
            if !bypasses.is_empty() && f.contains("bypassing") {
                continue;
            }
            push(&mut causes, strip_packet_number(f));
        }
    }
    if causes.is_empty() {
        for t in &traces {
            for p in &t.packets {
                for n in p.notes.iter().filter(|n| n.contains("never seen arriving")) {
                    push(&mut causes, format!("{} ({}): {n}", p.summary, t.title));
                }
            }
        }
    }
    Ok(causes)
}

/// `packet 2: X` and `packet 2 (SYN-ACK) X` name one conversation's packet; several
/// failed attempts give the same cause, which should then read the same.
fn strip_packet_number(f: &str) -> String {
    let Some(rest) = f.strip_prefix("packet ") else {
        return f.to_owned();
    };
    let digits = rest.chars().take_while(char::is_ascii_digit).count();
    if digits == 0 {
        return f.to_owned();
    }
    let rest = &rest[digits..];
    if let Some(r) = rest.strip_prefix(": ") {
        return r.to_owned();
    }
    if let Some(r) = rest.strip_prefix(" (") {
        if let Some((what, tail)) = r.split_once(") ") {
            return format!("{what} {tail}");
        }
    }
    f.to_owned()
}

/// A reply that left a real server of a NAT service and never passed its director.
struct Bypass {
    /// The real server's node.
    node: String,
    /// The real server's address (the reply's source).
    server: IpAddr,
    /// The client's address (the reply's destination).
    client: IpAddr,
    /// The director's node.
    director: String,
    /// In plain words, without the cause.
    text: String,
}

/// The replies of a NAT conversation that went around the director, from the trace's
/// packets (the same facts the trace's own finding is made of).
fn bypasses(t: &Trace) -> Vec<Bypass> {
    let (Forwarding::Nat, Some(director)) = (t.forwarding, &t.director) else {
        return Vec::new();
    };
    let node_of = |hop: &str| hop.split(':').next().unwrap_or(hop).to_owned();
    let mut out: Vec<Bypass> = Vec::new();
    for p in &t.packets {
        if p.direction != Direction::ServerToClient {
            continue;
        }
        let Some(first) = p.hops.first() else {
            continue;
        };
        let from = node_of(&first.hop);
        if &from == director || p.hops.iter().any(|h| &node_of(&h.hop) == director) {
            continue;
        }
        if out.iter().any(|b| b.node == from) {
            continue;
        }
        let towards = node_of(&first.dst_mac);
        let which = match the(director).as_str() {
            "the director" => "the director".to_owned(),
            _ => format!("the director, {director}"),
        };
        out.push(Bypass {
            text: format!(
                "{} left {from} with src {} towards {}, bypassing {which}",
                p.summary,
                first.src.name(),
                the(&towards)
            ),
            node: from,
            server: first.src.addr,
            client: first.dst.addr,
            director: director.clone(),
        });
    }
    out
}

/// "the router" for the shipped labs' role-named nodes, a node's own name otherwise.
fn the(node: &str) -> String {
    match node {
        "router" | "director" | "client" => format!("the {node}"),
        _ => node.to_owned(),
    }
}

/// Why the reply went that way: the real server's route to the client, read from its
/// namespace now, against the director's address on the server's LAN (the DIP).
fn route_cause(lab: &Lab, b: &Bypass, roles: &RoleMap) -> Option<String> {
    let ns = lab.netns_of(&b.node).ok()?;
    let dip = lab
        .node(&b.director)
        .ok()?
        .iface_towards(b.server)
        .and_then(|i| i.addresses.iter().map(|a| a.addr()).find(|a| a.is_ipv4()))?;
    let name = |a: IpAddr| match roles.label_of(&a) {
        Some(l) => format!("{l} ({a})"),
        None => a.to_string(),
    };
    // The director's address on the server's LAN, by its label when it has one.
    let dip_name = match roles.label_of(&dip) {
        Some(l) => format!("{l} ({dip})"),
        None => format!("director's address {dip}"),
    };
    let used = gateway(&ns, &["route", "get", &b.client.to_string()])?;
    if used == dip {
        return None;
    }
    let default = gateway(&ns, &["route", "show", "default"]);
    Some(if default == Some(used) {
        format!(
            "{}'s default route is via {}, not the {}",
            b.node,
            name(used),
            dip_name
        )
    } else {
        format!(
            "{} routes {} via {}, not via the {}",
            b.node,
            name(b.client),
            name(used),
            dip_name
        )
    })
}

/// The gateway (`via ADDR`) of `ip -4 ARGS` run in namespace `ns`.
fn gateway(ns: &str, args: &[&str]) -> Option<IpAddr> {
    let mut cmd = Command::new("ip");
    cmd.arg("-4").args(args);
    let out = netns::command_in(ns, cmd).ok()?.output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    while let Some(w) = words.next() {
        if w == "via" {
            return words.next()?.parse().ok();
        }
    }
    None
}

/// A failed scenario's trace findings, read from its captures (the lab is gone by then,
/// so no route is named). Empty for a passed scenario or one without captures.
pub fn scenario_findings(r: &ScenarioResult) -> Vec<String> {
    let Some(dir) = r.captures.as_deref().filter(|_| !r.passed()) else {
        return Vec::new();
    };
    match run_causes(dir, None, None) {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!("tracing {}: {e:#}", dir.display());
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::strip_packet_number;

    #[test]
    fn packet_numbers_are_dropped_from_findings() {
        assert_eq!(
            strip_packet_number("packet 2: SYN-ACK left rs1 with src RIP1"),
            "SYN-ACK left rs1 with src RIP1"
        );
        assert_eq!(
            strip_packet_number("packet 12 (SYN-ACK) reached client from RIP1:80"),
            "SYN-ACK reached client from RIP1:80"
        );
        assert_eq!(
            strip_packet_number("the director says it picked x"),
            "the director says it picked x"
        );
    }
}
