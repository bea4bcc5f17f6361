//! SVG with lvslab's own layout, so a picture needs no Graphviz.
//!
//! Layout: one column per role, in the order a request meets them (client, router,
//! director, real server, other hosts); each LAN is a vertical bar in the gap right of its
//! leftmost member's column; veth links are orthogonal lines through a vertical track of
//! their own in a gap. Rows are given node by node so that no horizontal wire passes
//! through another node's box: a node takes the first row at or below its neighbours' where
//! every column its wires cross is empty. Boxes all use one monospace font whose advance is
//! known, so text widths (and so box widths) are computed, not measured.
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use crate::model::{role_colours, Model};
use crate::PathOverlay;
use lvslab_netns::Role;

/// Font size of box text, px.
const FONT: i64 = 12;
/// Width of one character at `FONT` in DejaVu Sans Mono (0.602 em), rounded up so text
/// always fits inside its box whatever monospace font the viewer substitutes.
const CHAR_W: f64 = 7.4;
/// Line height inside boxes.
const LINE_H: i64 = 16;
const PAD_X: i64 = 10;
const PAD_Y: i64 = 6;
/// Room above a row's boxes for LAN names.
const ROW_TOP: i64 = 22;
const ROW_GAP: i64 = 18;
const MARGIN: i64 = 24;
/// Distance between two vertical tracks in one gap.
const TRACK: i64 = 26;
const GAP_MIN: i64 = 70;
const PATH_COLOUR: &str = "#dc2626";
const LAN_COLOUR: &str = "#475569";
const LINK_COLOUR: &str = "#334155";

/// XML text: the five special characters as entities; control characters XML 1.0 forbids
/// and line breaks (one SVG text element is one line) become `?` and spaces.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\r' | '\t' => out.push(' '),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

fn text_w(s: &str) -> i64 {
    (s.chars().count() as f64 * CHAR_W).ceil() as i64
}

#[derive(Clone, Copy)]
struct Rect {
    x: i64,
    y: i64,
    w: i64,
    h: i64,
}

impl Rect {
    fn cx(&self) -> f64 {
        (self.x as f64) + (self.w as f64) / 2.0
    }
    fn cy(&self) -> f64 {
        (self.y as f64) + (self.h as f64) / 2.0
    }
    /// Where the line from the centre towards (tx, ty) leaves the rectangle.
    fn exit_towards(&self, tx: f64, ty: f64) -> (f64, f64) {
        let (cx, cy) = (self.cx(), self.cy());
        let (dx, dy) = (tx - cx, ty - cy);
        let (hw, hh) = ((self.w as f64) / 2.0, (self.h as f64) / 2.0);
        let sx = if dx.abs() > 1e-9 {
            hw / dx.abs()
        } else {
            f64::INFINITY
        };
        let sy = if dy.abs() > 1e-9 {
            hh / dy.abs()
        } else {
            f64::INFINITY
        };
        let s = sx.min(sy);
        if s.is_finite() {
            (cx + dx * s, cy + dy * s)
        } else {
            (cx, cy)
        }
    }
}

/// Where everything goes.
struct Layout {
    boxes: Vec<Rect>,
    /// Per LAN: bar x, top and bottom.
    bars: Vec<(i64, i64, i64)>,
    /// Per link: x of its vertical track.
    link_x: Vec<i64>,
    width: i64,
    bottom: i64,
}

fn box_size(lines: &[String]) -> (i64, i64) {
    let w = lines.iter().map(|l| text_w(l)).max().unwrap_or(0) + 2 * PAD_X;
    (w, lines.len() as i64 * LINE_H + 2 * PAD_Y)
}

/// Rows for every node; see the module comment for the rule.
fn assign_rows(m: &Model, col: &[usize]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..m.nodes.len()).collect();
    order.sort_by_key(|&i| (col[i], i));
    let mut row: Vec<Option<usize>> = vec![None; m.nodes.len()];
    let mut taken: BTreeSet<(usize, usize)> = BTreeSet::new();
    for &n in &order {
        let c = col[n];
        // Column ranges this node's wires cross at its own row, and rows of its placed
        // neighbours (it prefers to sit level with the first of them).
        let mut crossed: Vec<std::ops::Range<usize>> = Vec::new();
        let mut near: Option<usize> = None;
        let mut prefer = |r: usize| near = Some(near.map_or(r, |p: usize| p.min(r)));
        for [a, b] in &m.links {
            let other = if a.node == n {
                b.node
            } else if b.node == n {
                a.node
            } else {
                continue;
            };
            if let Some(r) = row[other] {
                if col[other] < c {
                    crossed.push(col[other] + 1..c);
                }
                prefer(r);
            }
        }
        for l in &m.lans {
            if !l.members.iter().any(|e| e.node == n) {
                continue;
            }
            let left = l.members.iter().map(|e| col[e.node]).min().unwrap_or(c);
            if left < c {
                crossed.push(left + 1..c);
            }
            if let Some(r) = l.members.iter().filter_map(|e| row[e.node]).min() {
                prefer(r);
            }
        }
        let mut r = near.unwrap_or(0);
        while taken.contains(&(c, r))
            || crossed
                .iter()
                .any(|range| range.clone().any(|k| taken.contains(&(k, r))))
        {
            r += 1;
        }
        taken.insert((c, r));
        row[n] = Some(r);
    }
    row.into_iter().map(|r| r.unwrap_or(0)).collect()
}

/// The y of the line of node `n` that names `iface` (its wires attach there).
fn iface_y(m: &Model, b: &Rect, n: usize, iface: &str) -> i64 {
    match m.nodes[n]
        .lines
        .iter()
        .position(|l| l.iface.as_deref() == Some(iface))
    {
        Some(i) => b.y + PAD_Y + i as i64 * LINE_H + LINE_H / 2,
        None => b.y + b.h / 2,
    }
}

fn layout(m: &Model, top: i64) -> Layout {
    let (col, ncols) = m.columns();
    let ncols = ncols.max(1);
    let row = assign_rows(m, &col);
    let sizes: Vec<(i64, i64)> = m
        .nodes
        .iter()
        .map(|n| box_size(&n.lines.iter().map(|l| l.text.clone()).collect::<Vec<_>>()))
        .collect();
    let mut col_w = vec![0i64; ncols];
    for (i, (w, _)) in sizes.iter().enumerate() {
        col_w[col[i]] = col_w[col[i]].max(*w);
    }
    // Tracks: one per LAN in the gap right of its leftmost member, one per link in the gap
    // right of its left end (or of its column when both ends share one).
    let mut tracks = vec![0usize; ncols];
    let lan_track: Vec<(usize, usize)> = m
        .lans
        .iter()
        .map(|l| {
            let g = l.members.iter().map(|e| col[e.node]).min().unwrap_or(0);
            tracks[g] += 1;
            (g, tracks[g] - 1)
        })
        .collect();
    let link_track: Vec<(usize, usize)> = m
        .links
        .iter()
        .map(|[a, b]| {
            let g = col[a.node].min(col[b.node]);
            tracks[g] += 1;
            (g, tracks[g] - 1)
        })
        .collect();
    let gap_w: Vec<i64> = (0..ncols)
        .map(|k| match tracks[k] {
            0 if k + 1 == ncols => 0,
            0 => GAP_MIN,
            n => GAP_MIN.max(60 + TRACK * (n as i64 - 1)),
        })
        .collect();
    let mut col_x = vec![MARGIN; ncols];
    for k in 1..ncols {
        col_x[k] = col_x[k - 1] + col_w[k - 1] + gap_w[k - 1];
    }
    let track_x = |(g, t): (usize, usize)| {
        let gx = col_x[g] + col_w[g];
        gx + (gap_w[g] - TRACK * (tracks[g] as i64 - 1)) / 2 + TRACK * t as i64
    };
    let row_h = sizes.iter().map(|s| s.1).max().unwrap_or(0) + ROW_TOP + ROW_GAP;
    let row_top = |r: usize| top + r as i64 * row_h;
    let boxes: Vec<Rect> = sizes
        .iter()
        .enumerate()
        .map(|(i, &(w, h))| Rect {
            x: col_x[col[i]] + (col_w[col[i]] - w) / 2,
            y: row_top(row[i]) + ROW_TOP,
            w,
            h,
        })
        .collect();
    let bars = m
        .lans
        .iter()
        .zip(&lan_track)
        .map(|(l, &t)| {
            let first = l.members.iter().map(|e| row[e.node]).min().unwrap_or(0);
            let last = l
                .members
                .iter()
                .map(|e| iface_y(m, &boxes[e.node], e.node, &e.iface))
                .max()
                .unwrap_or(row_top(first) + ROW_TOP);
            (track_x(t), row_top(first) + 16, last + 8)
        })
        .collect();
    let nrows = row.iter().max().map_or(0, |r| r + 1);
    Layout {
        boxes,
        bars,
        link_x: link_track.into_iter().map(track_x).collect(),
        width: col_x[ncols - 1] + col_w[ncols - 1] + gap_w[ncols - 1] + MARGIN,
        bottom: row_top(nrows),
    }
}

/// Where the box side of node `n` faces a vertical line at `x`.
fn side_facing(r: &Rect, x: i64) -> i64 {
    if r.x > x {
        r.x
    } else {
        r.x + r.w
    }
}

/// The wire a path step runs along.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Wire {
    Link(usize),
    Lan(usize),
}

/// The route of a step between two hops along the wire that joins them (a link, or a LAN
/// both sit on), from interface to interface, so a path arrow follows the real wiring and
/// never crosses a box. `None` when nothing joins them directly.
fn wire_route(
    m: &Model,
    lay: &Layout,
    a: Result<usize, usize>,
    b: Result<usize, usize>,
) -> Option<(Wire, Vec<(f64, f64)>)> {
    let member = |lan: usize, n: usize| {
        let e = m.lans[lan].members.iter().find(|e| e.node == n)?;
        let r = &lay.boxes[n];
        let x = lay.bars[lan].0;
        Some((side_facing(r, x) as f64, iface_y(m, r, n, &e.iface) as f64))
    };
    let bar_x = |lan: usize| lay.bars[lan].0 as f64;
    match (a, b) {
        (Ok(na), Ok(nb)) => {
            for (i, ([ea, eb], &x)) in m.links.iter().zip(&lay.link_x).enumerate() {
                let (ea, eb) = if (ea.node, eb.node) == (na, nb) {
                    (ea, eb)
                } else if (ea.node, eb.node) == (nb, na) {
                    (eb, ea)
                } else {
                    continue;
                };
                let (ra, rb) = (&lay.boxes[na], &lay.boxes[nb]);
                let (ya, yb) = (
                    iface_y(m, ra, na, &ea.iface) as f64,
                    iface_y(m, rb, nb, &eb.iface) as f64,
                );
                let x = x as f64;
                return Some((
                    Wire::Link(i),
                    vec![
                        (side_facing(ra, x as i64) as f64, ya),
                        (x, ya),
                        (x, yb),
                        (side_facing(rb, x as i64) as f64, yb),
                    ],
                ));
            }
            (0..m.lans.len()).find_map(|l| {
                let (pa, pb) = (member(l, na)?, member(l, nb)?);
                let x = bar_x(l);
                Some((Wire::Lan(l), vec![pa, (x, pa.1), (x, pb.1), pb]))
            })
        }
        (Err(l), Ok(n)) => member(l, n).map(|p| (Wire::Lan(l), vec![(bar_x(l), p.1), p])),
        (Ok(n), Err(l)) => member(l, n).map(|p| (Wire::Lan(l), vec![p, (bar_x(l), p.1)])),
        (Err(_), Err(_)) => None,
    }
}

/// `points` without zero-length segments and with straight runs merged.
fn simplify(points: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::new();
    for p in points {
        if let Some(&last) = out.last() {
            if (p.0 - last.0).abs() < 0.5 && (p.1 - last.1).abs() < 0.5 {
                continue;
            }
        }
        if out.len() >= 2 {
            let (a, b) = (out[out.len() - 2], out[out.len() - 1]);
            let cross = (b.0 - a.0) * (p.1 - b.1) - (b.1 - a.1) * (p.0 - b.0);
            let dot = (b.0 - a.0) * (p.0 - b.0) + (b.1 - a.1) * (p.1 - b.1);
            if cross.abs() < 0.5 && dot > 0.0 {
                out.pop();
            }
        }
        out.push(p);
    }
    out
}

/// Unit normal to the left of travel from `a` to `b` (screen y grows downwards).
fn left_normal(a: (f64, f64), b: (f64, f64)) -> (f64, f64) {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len = (dx * dx + dy * dy).sqrt().max(1e-9);
    (dy / len, -dx / len)
}

/// An orthogonal polyline moved `d` to the left of its direction of travel: a reply over
/// the same wire as its request then runs on the other side of it.
fn offset(points: &[(f64, f64)], d: f64) -> Vec<(f64, f64)> {
    let normals: Vec<(f64, f64)> = points.windows(2).map(|w| left_normal(w[0], w[1])).collect();
    let last = points.len().saturating_sub(1);
    points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let n = match i {
                0 => normals[0],
                i if i == last => normals[i - 1],
                // At a right-angle corner the two normals add up to the shifted corner.
                i => (
                    normals[i - 1].0 + normals[i].0,
                    normals[i - 1].1 + normals[i].1,
                ),
            };
            (p.0 + n.0 * d, p.1 + n.1 * d)
        })
        .collect()
}

fn badge(o: &mut String, x: f64, y: f64, step: usize) {
    let _ = writeln!(
        o,
        "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"9\" fill=\"{PATH_COLOUR}\"/><text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"11\" font-weight=\"bold\" fill=\"#ffffff\">{step}</text>",
        y + 4.0
    );
}

fn text(o: &mut String, x: i64, y: i64, attrs: &str, s: &str) {
    let _ = writeln!(o, "<text x=\"{x}\" y=\"{y}\"{attrs}>{}</text>", esc(s));
}

/// A panel: a rounded box with a bold first line; returns its height.
fn panel(o: &mut String, x: i64, y: i64, lines: &[String], fill: &str, stroke: &str) -> i64 {
    let (w, h) = box_size(lines);
    let _ = writeln!(
        o,
        "<rect x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{h}\" rx=\"6\" fill=\"{fill}\" stroke=\"{stroke}\"/>"
    );
    for (i, l) in lines.iter().enumerate() {
        let weight = if i == 0 { " font-weight=\"bold\"" } else { "" };
        text(
            o,
            x + PAD_X,
            y + PAD_Y + i as i64 * LINE_H + FONT,
            weight,
            l,
        );
    }
    h
}

pub(crate) fn render(m: &Model, path: Option<&PathOverlay>) -> String {
    let title_lines = 1 + i64::from(!m.description.is_empty());
    let grid_top = MARGIN + 22 * title_lines;
    let lay = layout(m, grid_top);
    let mut body = String::new();

    // Title.
    text(
        &mut body,
        MARGIN,
        MARGIN + 12,
        " font-size=\"16\" font-weight=\"bold\"",
        &format!("lvslab lab {}", m.name),
    );
    let mut width = lay
        .width
        .max(2 * MARGIN + ((m.name.len() as f64 + 11.0) * 9.9) as i64);
    if !m.description.is_empty() {
        text(&mut body, MARGIN, MARGIN + 34, "", &m.description);
        width = width.max(2 * MARGIN + text_w(&m.description));
    }

    // LANs: a bar with its name on top, one wire per member at that member's interface line.
    let _ = writeln!(body, "<g id=\"lans\">");
    for (l, &(x, y0, y1)) in m.lans.iter().zip(&lay.bars) {
        text(
            &mut body,
            x,
            y0 - 4,
            " text-anchor=\"middle\" font-weight=\"bold\"",
            &l.name,
        );
        for e in &l.members {
            let b = &lay.boxes[e.node];
            let y = iface_y(m, b, e.node, &e.iface);
            let side = side_facing(b, x);
            let _ = writeln!(
                body,
                "<line x1=\"{side}\" y1=\"{y}\" x2=\"{x}\" y2=\"{y}\" stroke=\"{LAN_COLOUR}\" stroke-width=\"2\"/>"
            );
            let _ = writeln!(
                body,
                "<circle cx=\"{x}\" cy=\"{y}\" r=\"4\" fill=\"{LAN_COLOUR}\"/>"
            );
        }
        let _ = writeln!(
            body,
            "<rect x=\"{}\" y=\"{y0}\" width=\"6\" height=\"{}\" rx=\"3\" fill=\"{LAN_COLOUR}\"><title>LAN {} (bridge)</title></rect>",
            x - 3,
            y1 - y0,
            esc(&l.name)
        );
    }
    let _ = writeln!(body, "</g>");

    // Links: out of one box, along the link's own track, into the other.
    let _ = writeln!(body, "<g id=\"links\">");
    for ([a, b], &x) in m.links.iter().zip(&lay.link_x) {
        let (ra, rb) = (&lay.boxes[a.node], &lay.boxes[b.node]);
        let side = |r: &Rect| side_facing(r, x);
        let (ya, yb) = (
            iface_y(m, ra, a.node, &a.iface),
            iface_y(m, rb, b.node, &b.iface),
        );
        let _ = writeln!(
            body,
            "<polyline points=\"{},{ya} {x},{ya} {x},{yb} {},{yb}\" fill=\"none\" stroke=\"{LINK_COLOUR}\" stroke-width=\"2\"><title>veth {}:{} - {}:{}</title></polyline>",
            side(ra),
            side(rb),
            esc(&m.nodes[a.node].name),
            esc(&a.iface),
            esc(&m.nodes[b.node].name),
            esc(&b.iface)
        );
    }
    let _ = writeln!(body, "</g>");

    // Nodes: drawn after the wires so wires end cleanly at the borders.
    let _ = writeln!(body, "<g id=\"nodes\">");
    for (n, r) in m.nodes.iter().zip(&lay.boxes) {
        let (fill, stroke) = role_colours(n.role);
        let _ = writeln!(body, "<g id=\"node-{}\">", esc(&n.name));
        let _ = writeln!(
            body,
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"6\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"1.5\"/>",
            r.x, r.y, r.w, r.h
        );
        for (i, l) in n.lines.iter().enumerate() {
            let weight = if i == 0 { " font-weight=\"bold\"" } else { "" };
            text(
                &mut body,
                r.x + PAD_X,
                r.y + PAD_Y + i as i64 * LINE_H + FONT,
                weight,
                &l.text,
            );
        }
        let _ = writeln!(body, "</g>");
    }
    let _ = writeln!(body, "</g>");

    // Service notes, under the lab.
    let mut y = lay.bottom;
    let _ = writeln!(body, "<g id=\"services\">");
    for s in &m.services {
        let mut lines = vec![s.headline.clone()];
        lines.extend(s.lines.iter().cloned());
        width = width.max(2 * MARGIN + box_size(&lines).0);
        y += panel(&mut body, MARGIN, y, &lines, "#fef9c3", "#a16207") + 12;
    }
    let _ = writeln!(body, "</g>");

    // The path overlay, over everything but the legend: each step follows the wire it
    // travels, shifted to the left of its direction so requests and replies stay apart.
    if let Some(p) = path {
        let _ = writeln!(body, "<g id=\"path\">");
        let mut legend = vec![format!("path: {}", p.label)];
        let mut used: BTreeMap<Wire, u32> = BTreeMap::new();
        let mut bent: BTreeMap<(String, String), u32> = BTreeMap::new();
        let mut logical = false;
        for (k, w) in p.hops.windows(2).enumerate() {
            let step = k + 1;
            let (Some(ha), Some(hb)) = (m.hop(&w[0]), m.hop(&w[1])) else {
                legend.push(format!(
                    "{step:>2}. {} -> {}  (not in topology)",
                    w[0], w[1]
                ));
                continue;
            };
            legend.push(format!("{step:>2}. {} -> {}", w[0], w[1]));
            if w[0] == w[1] {
                continue;
            }
            let title = format!("<title>{step}. {} -&gt; {}</title>", esc(&w[0]), esc(&w[1]));
            if let Some((wire, route)) = wire_route(m, &lay, ha, hb) {
                let route = simplify(route);
                if route.len() < 2 {
                    continue;
                }
                let n = used.entry(wire).or_insert(0);
                let d = 6.0 + 6.0 * f64::from(*n);
                *n += 1;
                let pts = offset(&route, d);
                let list: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
                let _ = writeln!(
                    body,
                    "<polyline points=\"{}\" fill=\"none\" stroke=\"{PATH_COLOUR}\" stroke-width=\"2.5\" stroke-opacity=\"0.85\" stroke-linejoin=\"round\" marker-end=\"url(#arrow)\">{title}</polyline>",
                    list.join(" ")
                );
                // The number sits on the longest stretch, a little further out still.
                let (i, _) = pts
                    .windows(2)
                    .map(|s| (s[1].0 - s[0].0).abs() + (s[1].1 - s[0].1).abs())
                    .enumerate()
                    .fold(
                        (0, -1.0),
                        |best, (i, l)| if l > best.1 { (i, l) } else { best },
                    );
                let (a, b) = (pts[i], pts[i + 1]);
                let nrm = left_normal(a, b);
                badge(
                    &mut body,
                    (a.0 + b.0) / 2.0 + nrm.0 * 5.0,
                    (a.1 + b.1) / 2.0 + nrm.1 * 5.0,
                    step,
                );
                continue;
            }
            // Nothing joins the two directly: a curve from box to box, bent to the left of
            // travel (further for each repeat of the same step).
            let rect = |h: Result<usize, usize>| match h {
                Ok(n) => lay.boxes[n],
                Err(l) => {
                    let (x, y0, y1) = lay.bars[l];
                    Rect {
                        x: x - 3,
                        y: y0,
                        w: 6,
                        h: y1 - y0,
                    }
                }
            };
            let (ra, rb) = (rect(ha), rect(hb));
            let (x0, y0) = ra.exit_towards(rb.cx(), rb.cy());
            let (x2, y2) = rb.exit_towards(ra.cx(), ra.cy());
            logical = true;
            let again = bent.entry((w[0].clone(), w[1].clone())).or_insert(0);
            let bend = 26.0 + 14.0 * f64::from(*again);
            *again += 1;
            let (nx, ny) = left_normal((x0, y0), (x2, y2));
            let (cx, cy) = ((x0 + x2) / 2.0 + nx * bend, (y0 + y2) / 2.0 + ny * bend);
            let _ = writeln!(
                body,
                "<path d=\"M{x0:.1},{y0:.1} Q{cx:.1},{cy:.1} {x2:.1},{y2:.1}\" fill=\"none\" stroke=\"{PATH_COLOUR}\" stroke-width=\"2.5\" stroke-opacity=\"0.85\" stroke-dasharray=\"6 4\" marker-end=\"url(#arrow)\">{title}</path>"
            );
            badge(
                &mut body,
                0.25 * x0 + 0.5 * cx + 0.25 * x2,
                0.25 * y0 + 0.5 * cy + 0.25 * y2,
                step,
            );
        }
        if logical {
            legend.push("(dashed: the two hops share no link or LAN; drawn box to box)".into());
        }
        width = width.max(2 * MARGIN + box_size(&legend).0);
        y += panel(&mut body, MARGIN, y, &legend, "#fee2e2", PATH_COLOUR) + 12;
        let _ = writeln!(body, "</g>");
    }

    // Legend: the role colours present, then the two kinds of wire.
    let _ = writeln!(body, "<g id=\"legend\">");
    let mut x = MARGIN;
    let ly = y + 4;
    let roles: BTreeSet<usize> = m
        .nodes
        .iter()
        .map(|n| crate::model::role_rank(n.role))
        .collect();
    for role in [
        Role::Client,
        Role::Router,
        Role::Director,
        Role::Realserver,
        Role::Host,
    ] {
        if !roles.contains(&crate::model::role_rank(role)) {
            continue;
        }
        let (fill, stroke) = role_colours(role);
        let _ = writeln!(
            body,
            "<rect x=\"{x}\" y=\"{ly}\" width=\"14\" height=\"14\" rx=\"3\" fill=\"{fill}\" stroke=\"{stroke}\"/>"
        );
        text(&mut body, x + 20, ly + 11, "", role.as_str());
        x += 20 + text_w(role.as_str()) + 18;
    }
    if !m.lans.is_empty() {
        let _ = writeln!(
            body,
            "<rect x=\"{x}\" y=\"{}\" width=\"24\" height=\"6\" rx=\"3\" fill=\"{LAN_COLOUR}\"/>",
            ly + 4
        );
        text(&mut body, x + 30, ly + 11, "", "LAN (bridge)");
        x += 30 + text_w("LAN (bridge)") + 18;
    }
    if !m.links.is_empty() {
        let _ = writeln!(body, "<line x1=\"{x}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{LINK_COLOUR}\" stroke-width=\"2\"/>", ly + 7, x + 24, ly + 7);
        text(&mut body, x + 30, ly + 11, "", "veth link");
        x += 30 + text_w("veth link") + 18;
    }
    let _ = writeln!(body, "</g>");
    width = width.max(x + MARGIN);
    let height = ly + 14 + MARGIN;

    let mut o = String::new();
    let _ = writeln!(o, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    // xml:space keeps the runs of spaces that align the columns inside boxes.
    let _ = writeln!(
        o,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"DejaVu Sans Mono, Menlo, Consolas, monospace\" font-size=\"{FONT}\" xml:space=\"preserve\">"
    );
    let _ = writeln!(o, "<title>lvslab lab {}</title>", esc(&m.name));
    let _ = writeln!(
        o,
        "<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"5\" markerHeight=\"5\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"{PATH_COLOUR}\"/></marker></defs>"
    );
    let _ = writeln!(
        o,
        "<rect width=\"{width}\" height=\"{height}\" fill=\"#ffffff\"/>"
    );
    o.push_str(&body);
    o.push_str("</svg>\n");
    o
}
