//! The page itself: plain HTML with an inline style sheet and inline SVG; no script, no
//! external URL. Every text from a run goes through [`esc`].

use crate::{Report, RunView, Section, Verdict};
use lvslab_diagram::{Format, PathOverlay};
use lvslab_scenario::snapshot::Outcome;
use lvslab_trace::{Direction, Endpoint, PacketTrace, Step, StepKind, Trace, TraceHop};
use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

/// The style sheet: readable on screen and on paper, colours that survive grey printing
/// (every coloured mark also has a word or a symbol).
const CSS: &str = r#"
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2330; margin: 0 auto; max-width: 1260px; padding: 16px 20px 48px; background: #fbfbfd; }
h1 { font-size: 22px; margin: 4px 0 8px; }
h2 { font-size: 19px; margin: 0 0 6px; display: flex; gap: 10px; align-items: center; }
h3 { font-size: 15px; margin: 18px 0 6px; color: #39425a; }
code, pre, table.hops { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, monospace; font-size: 12px; }
pre { margin: 4px 0; white-space: pre-wrap; }
header.run { border-bottom: 2px solid #d5d9e4; padding-bottom: 10px; margin-bottom: 18px; }
.summary { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; margin: 6px 0 12px; }
.count { border-radius: 12px; padding: 2px 10px; font-weight: 600; }
.count.pass, .result.pass { background: #dff3e4; color: #17622e; }
.count.fail, .result.fail { background: #fbe0e0; color: #9b1c1c; }
.count.skip, .result.skip, .result.none { background: #eceef3; color: #4b5366; }
.meta { color: #4b5366; }
table { border-collapse: collapse; }
table.overview td, table.overview th { padding: 3px 12px 3px 0; text-align: left; }
.result { font-weight: 700; border-radius: 4px; padding: 1px 8px; }
td.result { text-align: center; }
section.scenario { background: #fff; border: 1px solid #d5d9e4; border-left: 6px solid #9aa3b8; border-radius: 6px; padding: 14px 18px; margin: 0 0 22px; }
section.scenario.pass { border-left-color: #2f9e55; }
section.scenario.fail { border-left-color: #d23b3b; }
.desc { margin: 2px 0 8px; }
ul.reasons { margin: 6px 0; padding-left: 20px; color: #9b1c1c; }
ul.reasons.skip { color: #4b5366; }
.diagram { overflow-x: auto; border: 1px solid #e4e7ef; border-radius: 4px; background: #fff; padding: 4px; }
.diagram svg { max-width: 100%; height: auto; display: block; }
details.conn { margin: 8px 0 12px; }
details.conn > summary { cursor: pointer; font-weight: 600; padding: 4px 0; }
.forwarding { font-weight: 700; border-radius: 4px; padding: 0 6px; margin-left: 6px; }
ul.findings { margin: 4px 0 8px; padding-left: 20px; }
ul.findings li.bad { color: #9b1c1c; font-weight: 600; }
ul.findings li.good { color: #17622e; }
table.hops { width: 100%; margin-top: 4px; }
table.hops th, table.hops td { padding: 2px 8px; text-align: left; vertical-align: top; border-bottom: 1px solid #eef0f5; }
table.hops thead th { background: #eef1f7; font-family: system-ui, sans-serif; font-size: 12px; }
tr.packet th { background: #f4f6fa; font-family: system-ui, sans-serif; padding-top: 6px; }
tr.hop td.n { color: #8a92a6; text-align: right; }
.role { font-weight: 700; color: #2b4c8c; }
.chg { background: #fff0b3; font-weight: 700; color: #7a3e00; border-radius: 3px; padding: 0 2px; }
.dim { color: #8a92a6; }
tr.step td { padding-left: 40px; font-family: system-ui, sans-serif; font-size: 12.5px; }
tr.step td pre { color: #4b5366; }
.kind { display: inline-block; min-width: 52px; text-align: center; font-weight: 700; border-radius: 4px; padding: 0 6px; margin-right: 6px; font-size: 11px; }
.kind.nat { background: #ffe2b8; color: #7a3e00; }
.kind.dr { background: #d6e6ff; color: #1b3f84; }
.kind.tun { background: #eadcff; color: #4b2291; }
.kind.routed { background: #e6ebf2; color: #39425a; }
.kind.other { background: #fbe0e0; color: #9b1c1c; }
tr.step.nat td, tr.step.dr td, tr.step.tun td { background: #fffaf0; }
tr.note td { color: #39425a; font-family: system-ui, sans-serif; font-size: 12.5px; padding-left: 40px; }
tr.note.bad td { color: #9b1c1c; font-weight: 600; }
ol.picks { padding-left: 22px; }
ol.picks summary { cursor: pointer; }
ol.picks pre { background: #f6f7fb; border-radius: 4px; padding: 6px 8px; }
pre.diff { background: #f6f7fb; border: 1px solid #e4e7ef; border-radius: 4px; padding: 8px; white-space: pre; overflow-x: auto; }
pre.diff .add { background: #e3f6e8; color: #17622e; display: block; }
pre.diff .del { background: #fbe6e6; color: #9b1c1c; display: block; }
pre.diff .hunk { color: #6b4fb0; display: block; }
ul.files { columns: 3; padding-left: 20px; }
.note-small { color: #4b5366; font-size: 12.5px; }
"#;

/// Escapes text for HTML content and double-quoted attributes.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An `id` from a name: letters, digits and `-` only, so it needs no escaping in `href`.
fn anchor(name: &str) -> String {
    let id: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("s-{id}")
}

fn secs(d: std::time::Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// The whole page. `html_path` is where it will be written: links to captures are made
/// relative to its directory, so the report and the captures can move together.
pub fn render(report: &Report, html_path: &Path) -> String {
    let base = link_base(html_path);
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        esc(&report.title)
    );
    header(&mut o, report);
    for s in &report.sections {
        section(&mut o, s, base.as_deref());
    }
    o.push_str("</body>\n</html>\n");
    o
}

fn header(o: &mut String, r: &Report) {
    let _ = writeln!(o, "<header class=\"run\">\n<h1>{}</h1>", esc(&r.title));
    o.push_str("<div class=\"summary\">");
    if r.sections.iter().any(|s| s.verdict.is_some()) {
        for v in [Verdict::Pass, Verdict::Fail, Verdict::Skip] {
            let label = match v {
                Verdict::Pass => "passed",
                Verdict::Fail => "failed",
                Verdict::Skip => "skipped",
            };
            let n = r.count(v);
            // A zero stays grey: red should mean that something failed.
            let class = if n == 0 { "skip" } else { v.name() };
            let _ = write!(
                o,
                "<span class=\"count {class}\" id=\"count-{}\">{n} {label}</span>",
                v.name()
            );
        }
    }
    if let Some(t) = r.time {
        let _ = write!(o, "<span class=\"meta\">time {}</span>", secs(t));
    }
    let _ = writeln!(
        o,
        "<span class=\"meta\">backend {}</span></div>",
        esc(&r.backend)
    );
    o.push_str("<table class=\"overview\">\n<thead><tr><th>scenario</th><th>result</th><th>time</th><th>backend</th><th>forwarding seen</th></tr></thead>\n<tbody>\n");
    for s in &r.sections {
        let (class, word) = match s.verdict {
            Some(v) => (v.name(), v.name()),
            None => ("none", "not judged"),
        };
        let seen = s
            .run
            .as_ref()
            .and_then(|r| r.as_ref().ok())
            .map(forwardings)
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "<tr><td><a href=\"#{}\">{}</a></td><td class=\"result {class}\">{word}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            anchor(&s.name),
            esc(&s.name),
            s.time.map(secs).unwrap_or_default(),
            esc(s.backend.as_deref().unwrap_or("")),
            esc(&seen)
        );
    }
    o.push_str("</tbody>\n</table>\n</header>\n");
}

/// The forwarding methods a run's conversations show, e.g. `NAT` or `DR, routed`.
fn forwardings(run: &RunView) -> String {
    let mut names: Vec<&str> = run.traces.iter().map(|t| t.forwarding.name()).collect();
    names.dedup();
    names.sort_unstable();
    names.dedup();
    names.join(", ")
}

fn section(o: &mut String, s: &Section, base: Option<&Path>) {
    let class = s.verdict.map_or("none", Verdict::name);
    let _ = writeln!(
        o,
        "<section class=\"scenario {class}\" id=\"{}\">",
        anchor(&s.name)
    );
    let verdict = match s.verdict {
        Some(v) => format!("<span class=\"result {}\">{}</span>", v.name(), v.name()),
        None => String::new(),
    };
    let _ = writeln!(o, "<h2>{} {verdict}</h2>", esc(&s.name));
    if let Some(d) = &s.description {
        let _ = writeln!(o, "<p class=\"desc\">{}</p>", esc(d));
    }
    reasons(o, s);
    let run = s.run.as_ref().and_then(|r| r.as_ref().ok());
    if let Some(Err(e)) = &s.run {
        let _ = writeln!(
            o,
            "<p class=\"note-small\">the captures could not be traced: {}</p>",
            esc(e)
        );
    }
    if let Some(topo) = &s.topology {
        let overlay = run.and_then(|r| overlay(&r.traces));
        let svg = lvslab_diagram::render(topo, Format::Svg, overlay.as_ref());
        o.push_str("<h3>The lab");
        if let Some(p) = &overlay {
            let _ = write!(
                o,
                " <span class=\"note-small\">(numbered: the hops of {})</span>",
                esc(&p.label)
            );
        }
        o.push_str("</h3>\n<div class=\"diagram\">\n");
        o.push_str(&scope_ids(strip_prolog(&svg), &anchor(&s.name)));
        o.push_str("</div>\n");
    }
    if let Some(run) = run {
        picks(o, run);
        connections(o, run);
    }
    snapshot(o, s.snapshot.as_ref());
    if let Some(run) = run {
        files(o, run, base);
    }
    o.push_str("</section>\n");
}

fn reasons(o: &mut String, s: &Section) {
    if s.reasons.is_empty() {
        return;
    }
    let diff = match &s.snapshot {
        Some(Outcome::Changed { diff, .. }) => Some(diff.as_str()),
        _ => None,
    };
    let class = if s.verdict == Some(Verdict::Skip) {
        "reasons skip"
    } else {
        "reasons"
    };
    let _ = writeln!(o, "<ul class=\"{class}\">");
    for r in &s.reasons {
        // The snapshot's diff is shown once, coloured, below: not again in the reason.
        let text = match diff {
            Some(d) if !d.is_empty() && r.contains(d) => {
                format!("{} (the diff is below)", r.replace(d, "").trim_end())
            }
            _ => r.clone(),
        };
        let _ = writeln!(o, "<li><pre>{}</pre></li>", esc(&text));
    }
    o.push_str("</ul>\n");
}

/// An SVG document may start with an XML declaration, which does not belong inside HTML.
fn strip_prolog(svg: &str) -> &str {
    match svg.find("<svg") {
        Some(i) => &svg[i..],
        None => svg,
    }
}

/// Several drawings share one document, and ids are document-wide: prefix the drawing's
/// own ids (and its `url(#...)` references to them) with the section's anchor.
fn scope_ids(svg: &str, prefix: &str) -> String {
    svg.replace(" id=\"", &format!(" id=\"{prefix}-"))
        .replace("url(#", &format!("url(#{prefix}-"))
}

fn node_of(hop: &str) -> &str {
    hop.split(':').next().unwrap_or(hop)
}

/// The first scheduled connection's way through the lab: its first packet towards the
/// server, then its first packet back, as node names (consecutive repeats merged).
fn overlay(traces: &[Trace]) -> Option<PathOverlay> {
    let t = traces
        .iter()
        .find(|t| t.director.is_some())
        .or_else(|| traces.first())?;
    let mut nodes: Vec<String> = Vec::new();
    for dir in [Direction::ClientToServer, Direction::ServerToClient] {
        let Some(p) = t.packets.iter().find(|p| p.direction == dir) else {
            continue;
        };
        let mut seen: Vec<&str> = p.hops.iter().map(|h| node_of(&h.hop)).collect();
        // A packet seen leaving but not arriving still arrived where its MAC points.
        if let Some(last) = p.hops.last() {
            if last.dst_mac.contains(':') {
                seen.push(node_of(&last.dst_mac));
            }
        }
        for n in seen {
            if nodes.last().map(String::as_str) != Some(n) {
                nodes.push(n.to_owned());
            }
        }
    }
    (nodes.len() >= 2).then(|| PathOverlay::new(nodes, format!("{}: {}", t.conversation, t.title)))
}

fn picks(o: &mut String, run: &RunView) {
    o.push_str("<h3>Scheduler decisions</h3>\n");
    if run.picks.is_empty() {
        o.push_str("<p class=\"note-small\">not recorded: kernel IPVS keeps no reasons; the userspace director does while <code>lvslab explain</code> is on (scenario runs turn it on)</p>\n");
        return;
    }
    o.push_str("<ol class=\"picks\">\n");
    for p in &run.picks {
        let chosen = p
            .chosen
            .map(|c| c.to_string())
            .unwrap_or_else(|| "no server".to_owned());
        // One line per decision; every candidate's load folds away (the first connection's
        // is also shown at its scheduling step below).
        let _ = writeln!(
            o,
            "<li><details><summary><code>{} &#8594; {}</code>: {} picked <b>{}</b> <span class=\"meta\">({})</span></summary><pre>{}</pre></details></li>",
            esc(&p.client.to_string()),
            esc(&p.vip.to_string()),
            esc(&p.scheduler),
            esc(&chosen),
            esc(&p.decision),
            esc(&p.text)
        );
    }
    o.push_str("</ol>\n");
}

fn connections(o: &mut String, run: &RunView) {
    let _ = writeln!(o, "<h3>Connections ({}), hop by hop</h3>", run.traces.len());
    if run.traces.is_empty() {
        o.push_str("<p class=\"note-small\">the captures hold no IP conversation</p>\n");
    }
    for (i, t) in run.traces.iter().enumerate() {
        // The first is open; the others fold away so the page stays short (no script:
        // <details> opens by itself).
        let open = if i == 0 { " open" } else { "" };
        let fwd = t.forwarding.name();
        let _ = write!(
            o,
            "<details class=\"conn\"{open}>\n<summary>{}: {} <span class=\"forwarding kind {}\">{}</span>",
            t.conversation,
            esc(&t.title),
            kind_class_of_forwarding(fwd),
            esc(fwd)
        );
        if let Some(d) = &t.director {
            let _ = write!(o, " <span class=\"meta\">director: {}</span>", esc(d));
        }
        if let Some(s) = &t.server {
            let _ = write!(
                o,
                " <span class=\"meta\">&#183; real server: {}</span>",
                esc(s)
            );
        }
        o.push_str("</summary>\n<ul class=\"findings\">");
        if t.findings.is_empty() {
            o.push_str("<li class=\"good\">findings: none, every hop as expected</li>");
        }
        for f in &t.findings {
            let _ = write!(o, "<li class=\"bad\">&#9888; {}</li>", esc(f));
        }
        o.push_str("</ul>\n<table class=\"hops\">\n<thead><tr><th>#</th><th>hop</th><th>dir</th><th>MACs (src &gt; dst)</th><th>src &#8594; dst</th><th>packet</th><th>TTL</th></tr></thead>\n<tbody>\n");
        for p in &t.packets {
            packet_rows(o, p);
        }
        o.push_str("</tbody>\n</table>\n</details>\n");
    }
}

fn kind_class_of_forwarding(name: &str) -> &'static str {
    match name {
        "NAT" => "nat",
        "DR" => "dr",
        "TUN" => "tun",
        _ => "routed",
    }
}

fn packet_rows(o: &mut String, p: &PacketTrace) {
    let dir = match p.direction {
        Direction::ClientToServer => "client &#8594; server",
        Direction::ServerToClient => "server &#8594; client",
    };
    let _ = writeln!(
        o,
        "<tr class=\"packet\"><th colspan=\"7\">packet {}: {} ({dir})</th></tr>",
        p.number,
        esc(&p.summary)
    );
    for (i, h) in p.hops.iter().enumerate() {
        let prev = i.checked_sub(1).and_then(|j| p.hops.get(j));
        hop_row(o, i + 1, h, prev);
        for s in p.steps.iter().filter(|s| s.after == i) {
            step_row(o, s);
        }
    }
    for n in &p.notes {
        let class = if n.contains("bypassing") {
            "note bad"
        } else {
            "note"
        };
        let _ = writeln!(
            o,
            "<tr class=\"{class}\"><td colspan=\"7\">= {}</td></tr>",
            esc(n)
        );
    }
}

/// Wraps `html` in the change highlight when `changed`.
fn mark(html: String, changed: bool) -> String {
    if changed {
        format!("<span class=\"chg\">{html}</span>")
    } else {
        html
    }
}

fn endpoint(e: &Endpoint) -> String {
    let addr = match &e.port_name {
        Some(p) => format!("{}:{p}", e.addr),
        None => e.addr.to_string(),
    };
    match &e.label {
        Some(l) => format!("<span class=\"role\">{}</span>={}", esc(l), esc(&addr)),
        None => esc(&addr),
    }
}

fn hop_row(o: &mut String, n: usize, h: &TraceHop, prev: Option<&TraceHop>) {
    // What differs from the sighting before is what a node on the way changed.
    let changed = |f: &dyn Fn(&TraceHop) -> String| prev.is_some_and(|p| f(p) != f(h));
    let macs = mark(
        format!("{} &gt; {}", esc(&h.src_mac), esc(&h.dst_mac)),
        changed(&|x| format!("{}>{}", x.src_mac, x.dst_mac)),
    );
    let mut addrs = String::new();
    if let Some(outer) = &h.outer {
        let _ = write!(
            addrs,
            "{} ",
            mark(
                format!(
                    "[outer IPIP {} &#8594; {}]",
                    endpoint(&outer.src),
                    endpoint(&outer.dst)
                ),
                prev.is_some_and(|p| p.outer != h.outer),
            )
        );
    } else if prev.is_some_and(|p| p.outer.is_some()) {
        addrs.push_str("<span class=\"chg\">[outer removed]</span> ");
    }
    let _ = write!(
        addrs,
        "{} &#8594; {}",
        mark(endpoint(&h.src), changed(&|x| format!("{:?}", x.src))),
        mark(endpoint(&h.dst), changed(&|x| format!("{:?}", x.dst)))
    );
    let packet = match &h.tcp {
        Some(t) => {
            let mut s = format!("{} [{}] seq {}", h.protocol, t.flags, t.seq);
            if let Some(a) = t.ack {
                let _ = write!(s, " ack {a}");
            }
            let _ = write!(s, " len {}", t.len);
            s
        }
        None => h.protocol.clone(),
    };
    let _ = writeln!(
        o,
        "<tr class=\"hop\"><td class=\"n\">{n}</td><td>{}</td><td>{}</td><td>{macs}</td><td>{addrs}</td><td>{}</td><td>{}</td></tr>",
        esc(&h.hop),
        esc(&h.dir),
        esc(&packet),
        mark(h.ttl.to_string(), changed(&|x| x.ttl.to_string()))
    );
}

/// The badge and CSS class of a step: the director's own work (NAT, DR, TUN) stands out.
fn step_kind(k: StepKind) -> (&'static str, &'static str) {
    match k {
        StepKind::NatDst | StepKind::NatSrc => ("nat", "NAT"),
        StepKind::Dr => ("dr", "DR"),
        StepKind::Encap => ("tun", "TUN"),
        StepKind::Decap => ("tun", "decap"),
        StepKind::Routed => ("routed", "routed"),
        StepKind::Wire => ("routed", "wire"),
        StepKind::Rewrite => ("other", "rewrite"),
        StepKind::Other => ("other", "other"),
    }
}

fn step_row(o: &mut String, s: &Step) {
    // An unchanged wire crossing is what the two rows already show (as in the text trace).
    if s.kind == StepKind::Wire {
        return;
    }
    let (class, badge) = step_kind(s.kind);
    let _ = write!(
        o,
        "<tr class=\"step {class}\"><td colspan=\"7\"><span class=\"kind {class}\">{badge}</span>{}",
        esc(&s.text)
    );
    if let Some(d) = &s.detail {
        let _ = write!(o, "<pre>{}</pre>", esc(d));
    }
    o.push_str("</td></tr>\n");
}

fn snapshot(o: &mut String, outcome: Option<&Outcome>) {
    let Some(outcome) = outcome else {
        return;
    };
    o.push_str("<h3>Snapshot</h3>\n");
    match outcome {
        Outcome::Same => {
            o.push_str("<p class=\"note-small\">the packet path equals its reviewed snapshot</p>\n")
        }
        Outcome::New { pending } => {
            let _ = writeln!(
                o,
                "<p class=\"note-small\">no snapshot yet: the path was written to <code>{}</code> for review</p>",
                esc(&pending.display().to_string())
            );
        }
        Outcome::Changed { pending, diff } => {
            let _ = writeln!(
                o,
                "<p class=\"note-small\">the packet path changed (<span class=\"del\">-</span> snapshot, <span class=\"add\">+</span> this run); the new path is in <code>{}</code></p>\n<pre class=\"diff\">",
                esc(&pending.display().to_string())
            );
            for line in diff.lines() {
                let class = if line.starts_with("@@") {
                    Some("hunk")
                } else if line.starts_with('+') {
                    Some("add")
                } else if line.starts_with('-') {
                    Some("del")
                } else {
                    None
                };
                match class {
                    Some(c) => {
                        let _ = write!(o, "<span class=\"{c}\">{}</span>", esc(line));
                    }
                    None => {
                        let _ = writeln!(o, "{}", esc(line));
                    }
                }
            }
            o.push_str("</pre>\n");
        }
    }
}

fn files(o: &mut String, run: &RunView, base: Option<&Path>) {
    let _ = writeln!(
        o,
        "<h3>Captures</h3>\n<p class=\"note-small\">in <code>{}</code>: one pcap per hop, every hop in <code>path.pcapng</code> (open it in Wireshark)</p>\n<ul class=\"files\">",
        esc(&run.dir.display().to_string())
    );
    for f in &run.files {
        let href = href(&run.dir.join(f), base);
        let _ = writeln!(
            o,
            "<li><a href=\"{}\">{}</a></li>",
            esc(&href),
            esc(&f.display().to_string())
        );
    }
    o.push_str("</ul>\n");
}

/// The directory links are relative to: the report's own, absolute (None: unknown, so
/// links are absolute `file:` URLs).
fn link_base(html_path: &Path) -> Option<PathBuf> {
    let parent = match html_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::canonicalize(parent).ok()
}

/// A link to `target` (absolute): relative to `base` when both are absolute, else a
/// `file://` URL. Percent-encoded, so any file name makes a valid URL.
fn href(target: &Path, base: Option<&Path>) -> String {
    match base.and_then(|b| relative(target, b)) {
        Some(rel) => encode(&rel),
        None => format!("file://{}", encode(target)),
    }
}

/// `target` relative to the directory `base`; both must be absolute.
fn relative(target: &Path, base: &Path) -> Option<PathBuf> {
    if !target.is_absolute() || !base.is_absolute() {
        return None;
    }
    let t: Vec<Component> = target.components().collect();
    let b: Vec<Component> = base.components().collect();
    let common = t.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = PathBuf::new();
    for _ in common..b.len() {
        out.push("..");
    }
    for c in &t[common..] {
        out.push(c);
    }
    Some(out)
}

fn encode(p: &Path) -> String {
    let mut out = String::new();
    for b in p.to_string_lossy().bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc("<a href=\"x\">&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn links_are_relative_to_the_report() {
        let base = Path::new("/tmp/out");
        assert_eq!(
            href(Path::new("/tmp/captures/lab a/path.pcapng"), Some(base)),
            "../captures/lab%20a/path.pcapng"
        );
        assert_eq!(href(Path::new("/tmp/out/x.pcap"), Some(base)), "x.pcap");
        assert_eq!(href(Path::new("/c/#1.pcap"), None), "file:///c/%231.pcap");
    }
}
