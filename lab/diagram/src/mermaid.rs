//! Mermaid `flowchart LR`: for Markdown pages that draw Mermaid blocks.
use std::fmt::Write;

use crate::model::{role_colours, Model};
use crate::PathOverlay;
use lvslab_netns::Role;

/// Text for inside a quoted Mermaid label: characters Mermaid would read as syntax become
/// its `#NN;` entity codes, line breaks become `<br/>`.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("#34;"),
            '#' => out.push_str("#35;"),
            '&' => out.push_str("#38;"),
            '<' => out.push_str("#60;"),
            '>' => out.push_str("#62;"),
            '|' => out.push_str("#124;"),
            '`' => out.push_str("#96;"),
            '\n' => out.push_str("<br/>"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

fn lines(ls: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    ls.into_iter()
        .map(|l| esc(l.as_ref()))
        .collect::<Vec<_>>()
        .join("<br/>")
}

const ROLES: [Role; 5] = [
    Role::Client,
    Role::Router,
    Role::Director,
    Role::Realserver,
    Role::Host,
];

pub(crate) fn render(m: &Model, path: Option<&PathOverlay>) -> String {
    let mut o = String::new();
    // Node ids are positional (n0, l0, s0): node names may hold '-', which Mermaid would
    // read as part of an arrow.
    let _ = writeln!(o, "flowchart LR");
    let mut title = m.name.clone();
    if !m.description.is_empty() {
        title.push_str(": ");
        title.push_str(&m.description);
    }
    // A comment cannot span lines, and `%%{` starts a Mermaid directive: both are defused.
    let _ = writeln!(
        o,
        "  %% lvslab diagram of {}",
        title
            .replace(['\n', '\r'], " ")
            .replace('{', "(")
            .replace('}', ")")
    );
    for (i, n) in m.nodes.iter().enumerate() {
        let _ = writeln!(
            o,
            "  n{i}[\"{}\"]",
            lines(n.lines.iter().map(|l| l.text.as_str()))
        );
    }
    for (i, l) in m.lans.iter().enumerate() {
        let _ = writeln!(
            o,
            "  l{i}{{{{\"{}\"}}}}",
            lines([l.name.as_str(), "LAN (bridge)"])
        );
    }
    let (col, _) = m.columns();
    let mut edges = 0usize;
    for [a, b] in &m.links {
        let (a, b) = if col[b.node] < col[a.node] {
            (b, a)
        } else {
            (a, b)
        };
        let _ = writeln!(
            o,
            "  n{} ---|\"{} - {}\"| n{}",
            a.node,
            esc(&a.iface),
            esc(&b.iface),
            b.node
        );
        edges += 1;
    }
    for (i, l) in m.lans.iter().enumerate() {
        let left = l.members.iter().map(|e| col[e.node]).min().unwrap_or(0);
        for e in &l.members {
            if col[e.node] == left {
                let _ = writeln!(o, "  n{} ---|\"{}\"| l{i}", e.node, esc(&e.iface));
            } else {
                let _ = writeln!(o, "  l{i} ---|\"{}\"| n{}", esc(&e.iface), e.node);
            }
            edges += 1;
        }
    }
    for (k, s) in m.services.iter().enumerate() {
        let mut ls = vec![s.headline.clone()];
        ls.extend(s.lines.iter().cloned());
        let _ = writeln!(o, "  s{k}>\"{}\"]", lines(&ls));
        for (d, state) in &s.directors {
            let _ = writeln!(
                o,
                "  s{k} -.->|\"{}\"| n{d}",
                esc(state.unwrap_or("director"))
            );
            edges += 1;
        }
        if let Some((d, _)) = s.directors.first() {
            for r in &s.reals {
                let _ = writeln!(o, "  n{d} -.->|\"{}\"| n{r}", esc(s.method));
                edges += 1;
            }
        }
    }
    if let Some(p) = path {
        let mut legend = vec![format!("path: {}", p.label)];
        let first = edges;
        for (k, w) in p.hops.windows(2).enumerate() {
            let ids = (m.hop(&w[0]), m.hop(&w[1]));
            let known = matches!(ids, (Some(_), Some(_)));
            legend.push(format!(
                "{}. {} to {}{}",
                k + 1,
                w[0],
                w[1],
                if known { "" } else { " (not in topology)" }
            ));
            if let (Some(a), Some(b)) = ids {
                let id = |h: Result<usize, usize>| match h {
                    Ok(n) => format!("n{n}"),
                    Err(l) => format!("l{l}"),
                };
                let _ = writeln!(o, "  {} ==>|\"{}\"| {}", id(a), k + 1, id(b));
                edges += 1;
            }
        }
        let _ = writeln!(o, "  p0>\"{}\"]", lines(&legend));
        if edges > first {
            let list = (first..edges)
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(",");
            let _ = writeln!(
                o,
                "  linkStyle {list} stroke:#dc2626,stroke-width:3px,color:#dc2626"
            );
        }
        let _ = writeln!(o, "  style p0 fill:#fee2e2,stroke:#dc2626");
    }
    for r in ROLES {
        let members: Vec<String> = m
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.role == r)
            .map(|(i, _)| format!("n{i}"))
            .collect();
        if members.is_empty() {
            continue;
        }
        let (fill, stroke) = role_colours(r);
        let _ = writeln!(
            o,
            "  classDef {r} fill:{fill},stroke:{stroke},text-align:left"
        );
        let _ = writeln!(o, "  class {} {r}", members.join(","));
    }
    if !m.lans.is_empty() {
        let _ = writeln!(
            o,
            "  classDef lan fill:#475569,stroke:#1e293b,color:#ffffff"
        );
        let ids: Vec<String> = (0..m.lans.len()).map(|i| format!("l{i}")).collect();
        let _ = writeln!(o, "  class {} lan", ids.join(","));
    }
    if !m.services.is_empty() {
        let _ = writeln!(
            o,
            "  classDef service fill:#fef9c3,stroke:#a16207,text-align:left"
        );
        let ids: Vec<String> = (0..m.services.len()).map(|i| format!("s{i}")).collect();
        let _ = writeln!(o, "  class {} service", ids.join(","));
    }
    o
}
