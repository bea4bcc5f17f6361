//! Text rendering of a [`Trace`]: one block per packet, its hops as in the path text
//! (plus the TTL), and between them, indented, what changed and why.

use crate::{Direction, Step, StepKind, Trace};
use std::fmt::Write as _;

/// Colour or not: the caller decides (a terminal gets colour, a pipe does not).
#[derive(Debug, Clone, Copy, Default)]
pub struct Style {
    /// Use ANSI colours.
    pub color: bool,
}

impl Style {
    fn paint(self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    }
    fn bold(self, s: &str) -> String {
        self.paint("1", s)
    }
    fn dim(self, s: &str) -> String {
        self.paint("2", s)
    }
    fn step(self, kind: StepKind, s: &str) -> String {
        match kind {
            StepKind::NatDst | StepKind::NatSrc | StepKind::Dr | StepKind::Encap => {
                self.paint("1;33", s)
            }
            StepKind::Routed | StepKind::Wire => self.paint("36", s),
            StepKind::Other | StepKind::Rewrite | StepKind::Decap => self.paint("35", s),
        }
    }
    fn bad(self, s: &str) -> String {
        self.paint("1;31", s)
    }
    fn good(self, s: &str) -> String {
        self.paint("32", s)
    }
}

/// Several traces, separated by a blank line.
pub fn render_all(traces: &[Trace], style: Style) -> String {
    traces
        .iter()
        .map(|t| render(t, style))
        .collect::<Vec<_>>()
        .join("\n")
}

/// One trace as text; the same trace always gives the same text.
pub fn render(t: &Trace, style: Style) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}",
        style.bold(&format!("## {}: {}", t.conversation, t.title))
    );
    let mut roles = Vec::new();
    if let Some(d) = &t.director {
        roles.push(format!("director: {d}"));
    }
    if let Some(s) = &t.server {
        roles.push(format!("real server: {s}"));
    }
    let roles = if roles.is_empty() {
        String::new()
    } else {
        format!(" ({})", roles.join(", "))
    };
    let _ = writeln!(out, "forwarding seen: {}{roles}", t.forwarding.name());
    match &t.pick {
        Some(p) => {
            let first = p.text.lines().next().unwrap_or_default();
            let _ = writeln!(
                out,
                "scheduler: {first} (the director's own explanation, in full below)"
            );
        }
        None if t.director.is_some() => {
            let _ = writeln!(
                out,
                "scheduler's explanation: not recorded (kernel IPVS keeps none; the userspace director does while `lvslab explain` is on)"
            );
        }
        None => {}
    }
    if t.findings.is_empty() {
        let _ = writeln!(
            out,
            "{}",
            style.good("findings: none, every hop as expected")
        );
    } else {
        let _ = writeln!(out, "{}", style.bad("findings:"));
        for f in &t.findings {
            let _ = writeln!(out, "  {} {f}", style.bad("!"));
        }
    }
    for p in &t.packets {
        let dir = match p.direction {
            Direction::ClientToServer => "client -> server",
            Direction::ServerToClient => "server -> client",
        };
        let _ = writeln!(
            out,
            "\n{}",
            style.bold(&format!("packet {}: {} ({dir})", p.number, p.summary))
        );
        for (i, h) in p.hops.iter().enumerate() {
            let macs = format!("{} > {}", h.src_mac, h.dst_mac);
            let line = format!("{:<15} {:<3}  {:<31} {}", h.hop, h.dir, macs, h.packet);
            let _ = writeln!(
                out,
                "  {}  {}",
                line.trim_end(),
                style.dim(&format!("ttl {}", h.ttl))
            );
            for s in p.steps.iter().filter(|s| s.after == i) {
                write_step(&mut out, s, style);
            }
        }
        for n in &p.notes {
            let mark = if n.contains("bypassing") {
                style.bad("=")
            } else {
                "=".to_owned()
            };
            let _ = writeln!(out, "  {mark} {n}");
        }
    }
    out
}

fn write_step(out: &mut String, s: &Step, style: Style) {
    // An unchanged wire crossing is what the two lines already show: no comment.
    if s.kind == StepKind::Wire {
        return;
    }
    let _ = writeln!(
        out,
        "      {} {}",
        style.step(s.kind, "|"),
        style.step(s.kind, &s.text)
    );
    if let Some(d) = &s.detail {
        for l in d.lines() {
            let _ = writeln!(out, "      {}   {}", style.step(s.kind, "|"), style.dim(l));
        }
    }
}
