//! Graphviz dot: the same model as the SVG, laid out by `dot` instead of by us.
use std::fmt::Write;

use crate::model::{role_colours, Model};
use crate::PathOverlay;

/// A dot string literal: `\` and `"` escaped, line breaks as `\l` (left-justified lines).
fn q(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\l"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Lines as a left-justified dot label (each line ends with `\l`).
fn label(lines: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    let mut s = String::new();
    for l in lines {
        s.push_str(l.as_ref());
        s.push('\n');
    }
    q(&s)
}

fn node_id(m: &Model, i: usize) -> String {
    q(&m.nodes[i].name)
}

fn lan_id(name: &str) -> String {
    q(&format!("lan:{name}"))
}

pub(crate) fn render(m: &Model, path: Option<&PathOverlay>) -> String {
    let mut o = String::new();
    let (col, _) = m.columns();
    let mut title = m.name.clone();
    if !m.description.is_empty() {
        title.push_str(": ");
        title.push_str(&m.description.replace('\n', " "));
    }
    // writeln! into a String cannot fail; the results are ignored for that reason.
    let _ = writeln!(o, "digraph {} {{", q(&m.name));
    let _ = writeln!(o, "  graph [rankdir=LR, labelloc=t, fontname=\"monospace\", label={}, nodesep=0.4, ranksep=0.8];", q(&title));
    let _ = writeln!(
        o,
        "  node [shape=box, style=\"rounded,filled\", fontname=\"monospace\", fontsize=11];"
    );
    let _ = writeln!(o, "  edge [fontname=\"monospace\", fontsize=10, dir=none];");
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "  // nodes: name [role] and their addresses with LVS labels"
    );
    for n in &m.nodes {
        let (fill, stroke) = role_colours(n.role);
        let _ = writeln!(
            o,
            "  {} [label={}, fillcolor=\"{fill}\", color=\"{stroke}\"];",
            q(&n.name),
            label(n.lines.iter().map(|l| l.text.as_str()))
        );
    }
    let _ = writeln!(o);
    let _ = writeln!(o, "  // LANs (bridges) and their members");
    for l in &m.lans {
        let _ = writeln!(
            o,
            "  {} [shape=box, style=\"filled\", fillcolor=\"#475569\", fontcolor=\"white\", label={}];",
            lan_id(&l.name),
            label([l.name.as_str(), "LAN (bridge)"])
        );
        let left = l.members.iter().map(|e| col[e.node]).min().unwrap_or(0);
        for e in &l.members {
            // Members in the leftmost column feed the LAN, the rest hang off it: keeps
            // dot's ranks in the client-to-server order of the SVG.
            let (a, b) = if col[e.node] == left {
                (node_id(m, e.node), lan_id(&l.name))
            } else {
                (lan_id(&l.name), node_id(m, e.node))
            };
            let _ = writeln!(o, "  {a} -> {b} [label={}];", q(&e.iface));
        }
    }
    let _ = writeln!(o);
    let _ = writeln!(o, "  // links (veth pairs)");
    for [a, b] in &m.links {
        let (a, b) = if col[b.node] < col[a.node] {
            (b, a)
        } else {
            (a, b)
        };
        let _ = writeln!(
            o,
            "  {} -> {} [taillabel={}, headlabel={}, penwidth=1.5];",
            node_id(m, a.node),
            node_id(m, b.node),
            q(&a.iface),
            q(&b.iface)
        );
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "  // services: VIP, scheduler, method and who holds the VIP"
    );
    for (k, s) in m.services.iter().enumerate() {
        let id = q(&format!("svc:{k}"));
        let mut lines = vec![s.headline.clone()];
        lines.extend(s.lines.iter().cloned());
        let _ = writeln!(
            o,
            "  {id} [shape=note, style=\"filled\", fillcolor=\"#fef9c3\", color=\"#a16207\", label={}];",
            label(&lines)
        );
        for (d, state) in &s.directors {
            let _ = writeln!(
                o,
                "  {id} -> {} [style=dashed, color=\"#a16207\", dir=forward, constraint=false, label={}];",
                node_id(m, *d),
                q(state.unwrap_or("director"))
            );
        }
        if let Some((d, _)) = s.directors.first() {
            for r in &s.reals {
                let _ = writeln!(
                    o,
                    "  {} -> {} [style=dotted, color=\"#a16207\", dir=forward, constraint=false, label={}];",
                    node_id(m, *d),
                    node_id(m, *r),
                    q(s.method)
                );
            }
        }
    }
    if let Some(p) = path {
        let _ = writeln!(o);
        let _ = writeln!(o, "  // path overlay: {}", p.label.replace('\n', " "));
        let mut legend = vec![format!("path: {}", p.label)];
        for (k, w) in p.hops.windows(2).enumerate() {
            let ids = (m.hop(&w[0]), m.hop(&w[1]));
            let known = matches!(ids, (Some(_), Some(_)));
            legend.push(format!(
                "{}. {} -> {}{}",
                k + 1,
                w[0],
                w[1],
                if known { "" } else { "  (not in topology)" }
            ));
            if let (Some(a), Some(b)) = ids {
                let id = |h: Result<usize, usize>| match h {
                    Ok(n) => node_id(m, n),
                    Err(l) => lan_id(&m.lans[l].name),
                };
                let _ = writeln!(
                    o,
                    "  {} -> {} [color=\"#dc2626\", fontcolor=\"#dc2626\", penwidth=2.5, dir=forward, constraint=false, label={}];",
                    id(a),
                    id(b),
                    q(&(k + 1).to_string())
                );
            }
        }
        let _ = writeln!(
            o,
            "  \"path:legend\" [shape=note, style=\"filled\", fillcolor=\"#fee2e2\", color=\"#dc2626\", label={}];",
            label(&legend)
        );
    }
    o.push_str("}\n");
    o
}
