//! Every format on the shipped topologies: content, escaping, determinism, well-formed
//! output (checked by xmllint and `dot` when installed, and by a small parser always).
use std::path::Path;
use std::process::{Command, Stdio};

use lvslab_diagram::{render, render_lab, Format, PathOverlay};
use lvslab_netns::{IfaceInfo, LabState, Mac, NodeInfo, Peer, Topology};

const TOPOLOGIES: [&str; 4] = ["nat-topology", "dr-topology", "tun-topology", "ha-topology"];

fn topo(name: &str) -> Topology {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../topologies")
        .join(format!("{name}.toml"));
    Topology::load(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn nat_path() -> PathOverlay {
    PathOverlay::new(
        [
            "client", "router", "director", "rs2", "director", "router", "client",
        ],
        "TCP 198.51.100.10:40000 -> 192.168.1.250:80",
    )
}

/// Text as it appears in each format: SVG escapes `'` and `>`, Mermaid `#` and `>`.
fn shown(format: Format, s: &str) -> String {
    match format {
        Format::Svg => s
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('\'', "&apos;"),
        Format::Dot => s.to_owned(),
        Format::Mermaid => s.replace('#', "#35;").replace('>', "#62;"),
    }
}

#[test]
fn every_node_address_label_and_service_is_drawn_in_every_format() {
    for name in TOPOLOGIES {
        let t = topo(name);
        for format in Format::ALL {
            let out = render(&t, format, None);
            let has = |s: &str| {
                assert!(
                    out.contains(&shown(format, s)),
                    "{name} {format}: missing {s:?}\n{out}"
                )
            };
            for n in &t.nodes {
                has(&format!("{}  [{}]", n.name, n.role));
                for i in &n.interfaces {
                    for a in &i.addresses {
                        match i.label {
                            Some(l) => has(&format!("{l} {a}")),
                            None => has(&a.to_string()),
                        }
                    }
                }
            }
            for l in &t.lans {
                has(&l.name);
            }
            for s in &t.services {
                let method = s.method.word();
                has(&format!(
                    "VIP {}:{} tcp {} {method}",
                    s.vip, s.port, s.scheduler
                ));
                for r in &s.real_servers {
                    has(&format!("{}:{}", r.address, r.port));
                }
                let plain = lvslab_diagram::method_explained(s.method);
                has(plain[1]);
                match s.method.word() {
                    "nat" => has("replies return through the director"),
                    _ => has("answer the client directly"),
                }
                match &s.backup {
                    Some(b) => {
                        has("MASTER");
                        has(&format!("{b} BACKUP"));
                    }
                    None => assert!(!out.contains("MASTER"), "{name} {format}: no pair"),
                }
            }
            // DR and TUN real servers hold the VIP on lo, and the box says so.
            if name == "dr-topology" || name == "tun-topology" {
                has("lo    VIP 192.168.1.250/32");
            }
        }
    }
}

#[test]
fn output_is_deterministic() {
    for name in TOPOLOGIES {
        for format in Format::ALL {
            let p = nat_path();
            let a = render(&topo(name), format, Some(&p));
            let b = render(&topo(name), format, Some(&p));
            assert_eq!(a, b, "{name} {format}");
        }
    }
}

/// A description and path caption full of characters every format treats specially.
fn nasty() -> (Topology, PathOverlay) {
    let text = std::fs::read_to_string(topo("nat-topology").path)
        .unwrap()
        .replace(
            "description = \"LVS-NAT",
            "description = \"<b>&amp; \\\"q\\\" 'a' #1 |x| `t` \\\\n %%{init} LVS-NAT",
        );
    let t = Topology::parse("nasty.toml", text).unwrap();
    let p = PathOverlay::new(["client", "router"], "<script>\"&\"</script> #9 |");
    (t, p)
}

#[test]
fn special_characters_are_escaped() {
    let (t, p) = nasty();
    let svg = render(&t, Format::Svg, Some(&p));
    assert!(
        svg.contains("&lt;b&gt;&amp;amp; &quot;q&quot; &apos;a&apos;"),
        "{svg}"
    );
    assert!(svg.contains("&lt;script&gt;&quot;&amp;&quot;&lt;/script&gt;"));
    assert!(!svg.contains("<b>") && !svg.contains("<script>"));
    well_formed(&svg).unwrap();

    let dot = render(&t, Format::Dot, Some(&p));
    assert!(
        dot.contains(r#"<b>&amp; \"q\" 'a' #1 |x| `t` \\n %%{init}"#),
        "{dot}"
    );
    assert!(
        dot.contains(r#"path: <script>\"&\"</script> #9 |"#),
        "{dot}"
    );

    let mmd = render(&t, Format::Mermaid, Some(&p));
    assert!(
        mmd.contains("path: #60;script#62;#34;#38;#34;#60;/script#62; #35;9 #124;"),
        "{mmd}"
    );
    // The description only appears in a comment, where `%%{` would start a directive.
    assert!(!mmd.contains("%%{"), "{mmd}");
    for line in mmd.lines().filter(|l| !l.trim_start().starts_with("%%")) {
        // Every label is quoted; a stray quote would end it early.
        assert_eq!(line.matches('"').count() % 2, 0, "{line}");
    }
}

#[test]
fn svg_is_well_formed_xml_with_a_viewbox() {
    for name in TOPOLOGIES {
        let svg = render(&topo(name), Format::Svg, Some(&nat_path()));
        assert!(svg.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width="));
        assert!(svg.contains(" viewBox=\"0 0 "), "{name}");
        well_formed(&svg).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn svg_text_stays_inside_its_box_and_boxes_do_not_overlap() {
    // Every <rect> of a node group and the texts after it: the text's estimated extent at
    // 7.4 px a character must lie inside the rect, and node rects must not intersect.
    for name in TOPOLOGIES {
        let svg = render(&topo(name), Format::Svg, None);
        let mut boxes: Vec<[f64; 4]> = Vec::new();
        let mut current: Option<[f64; 4]> = None;
        for line in svg.lines() {
            if line.starts_with("<g id=\"node-") {
                current = None;
            } else if line.starts_with("<rect") && line.contains("stroke-width=\"1.5\"") {
                let r = [
                    attr(line, "x"),
                    attr(line, "y"),
                    attr(line, "width"),
                    attr(line, "height"),
                ];
                current = Some(r);
                boxes.push(r);
            } else if let (Some(r), true) = (current, line.starts_with("<text")) {
                let (x, y) = (attr(line, "x"), attr(line, "y"));
                let content = &line[line.find('>').unwrap() + 1..line.rfind("</text>").unwrap()];
                let chars = content
                    .replace("&amp;", "&")
                    .replace("&lt;", "<")
                    .replace("&gt;", ">")
                    .chars()
                    .count();
                assert!(
                    x >= r[0] && x + chars as f64 * 7.4 <= r[0] + r[2],
                    "{name}: {line} outside {r:?}"
                );
                assert!(
                    y - 12.0 >= r[1] && y <= r[1] + r[3],
                    "{name}: {line} outside {r:?}"
                );
            } else if line == "</g>" {
                current = None;
            }
        }
        assert!(!boxes.is_empty());
        for (i, a) in boxes.iter().enumerate() {
            for b in &boxes[i + 1..] {
                let apart = a[0] + a[2] <= b[0]
                    || b[0] + b[2] <= a[0]
                    || a[1] + a[3] <= b[1]
                    || b[1] + b[3] <= a[1];
                assert!(apart, "{name}: {a:?} overlaps {b:?}");
            }
        }
    }
}

fn attr(line: &str, name: &str) -> f64 {
    let key = format!(" {name}=\"");
    let start = line
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in {line}"))
        + key.len();
    let end = start + line[start..].find('"').unwrap();
    line[start..end].parse().unwrap()
}

/// A minimal XML check: tags balance, attributes are quoted, `&` starts a known entity,
/// and no `<` or `>` stands in text or attribute values.
fn well_formed(xml: &str) -> Result<(), String> {
    let body = xml
        .strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")
        .ok_or("no XML declaration")?;
    let mut stack: Vec<&str> = Vec::new();
    let mut rest = body;
    let check_text = |t: &str| -> Result<(), String> {
        if t.contains('>') {
            return Err(format!("raw > in {t:?}"));
        }
        let mut s = t;
        while let Some(i) = s.find('&') {
            s = &s[i + 1..];
            let ok = ["amp;", "lt;", "gt;", "quot;", "apos;"]
                .iter()
                .any(|e| s.starts_with(e));
            if !ok {
                return Err(format!("bare & in {t:?}"));
            }
        }
        Ok(())
    };
    let mut seen_root = false;
    while let Some(i) = rest.find('<') {
        check_text(&rest[..i])?;
        if stack.is_empty() && seen_root && !rest[..i].trim().is_empty() {
            return Err("text after the root element".into());
        }
        rest = &rest[i + 1..];
        let end = tag_end(rest).ok_or("unterminated tag")?;
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            match stack.pop() {
                Some(open) if open == name.trim() => {}
                other => return Err(format!("</{name}> closes {other:?}")),
            }
            continue;
        }
        let self_closing = tag.ends_with('/');
        let tag = tag.trim_end_matches('/');
        let name = tag.split_whitespace().next().ok_or("empty tag")?;
        if stack.is_empty() {
            if seen_root {
                return Err(format!("second root <{name}>"));
            }
            seen_root = true;
        }
        // Attributes: name="value" pairs with escaped values.
        let mut attrs = tag[name.len()..].trim();
        while !attrs.is_empty() {
            let eq = attrs
                .find("=\"")
                .ok_or(format!("unquoted attribute in <{tag}>"))?;
            let close = attrs[eq + 2..].find('"').ok_or("unterminated attribute")? + eq + 2;
            let value = &attrs[eq + 2..close];
            if value.contains('<') {
                return Err(format!("raw < in attribute of <{name}>"));
            }
            check_text(value)?;
            attrs = attrs[close + 1..].trim_start();
        }
        if !self_closing {
            stack.push(name);
        }
    }
    check_text(rest)?;
    if !rest.trim().is_empty() {
        return Err("text after the root element".into());
    }
    match stack.as_slice() {
        [] if seen_root => Ok(()),
        [] => Err("no root element".into()),
        open => Err(format!("unclosed {open:?}")),
    }
}

/// The `>` that ends a tag starting at `s` (quoted attribute values may not hold one, but
/// skip them anyway so a broken value is reported as such).
fn tag_end(s: &str) -> Option<usize> {
    let mut quoted = false;
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '>' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

#[test]
fn the_minimal_parser_catches_broken_xml() {
    let decl = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
    for bad in [
        "<svg><g></svg>",
        "<svg><text>a < b</text></svg>",
        "<svg><text>R&D</text></svg>",
        "<svg x=1/>",
        "<svg/><svg/>",
    ] {
        assert!(well_formed(&format!("{decl}{bad}")).is_err(), "{bad}");
    }
    assert!(well_formed(&format!(
        "{decl}<svg a=\"1\"><g><text>x &amp; y</text></g><rect/></svg>\n"
    ))
    .is_ok());
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Feed `input` to a tool; its exit status and stderr.
fn run_tool(tool: &str, args: &[&str], input: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn xmllint_accepts_the_svg() {
    if !have("xmllint") {
        println!("SKIPPED: xmllint is not installed (apt-get install libxml2-utils)");
        return;
    }
    let (t, p) = nasty();
    let mut inputs = vec![render(&t, Format::Svg, Some(&p))];
    inputs.extend(TOPOLOGIES.map(|n| render(&topo(n), Format::Svg, Some(&nat_path()))));
    for svg in inputs {
        let (ok, err) = run_tool("xmllint", &["--noout", "-"], &svg);
        assert!(ok, "xmllint: {err}\n{svg}");
    }
}

#[test]
fn graphviz_accepts_the_dot() {
    if Command::new("dot")
        .arg("-V")
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        println!("SKIPPED: Graphviz `dot` is not installed (apt-get install graphviz)");
        return;
    }
    let (t, p) = nasty();
    let mut inputs = vec![render(&t, Format::Dot, Some(&p))];
    inputs.extend(TOPOLOGIES.map(|n| render(&topo(n), Format::Dot, Some(&nat_path()))));
    for dot in inputs {
        let (ok, err) = run_tool("dot", &["-Tsvg"], &dot);
        assert!(ok && err.trim().is_empty(), "dot: {err}\n{dot}");
    }
}

#[test]
fn mermaid_is_a_left_to_right_flowchart() {
    for name in TOPOLOGIES {
        let m = render(&topo(name), Format::Mermaid, Some(&nat_path()));
        assert!(m.starts_with("flowchart LR\n"), "{name}");
        assert!(m.contains("linkStyle "), "{name}: the path is coloured");
    }
}

#[test]
fn snapshot_nat_dot_and_mermaid() {
    let t = topo("nat-topology");
    insta::assert_snapshot!("nat_dot", render(&t, Format::Dot, None));
    insta::assert_snapshot!("nat_mermaid", render(&t, Format::Mermaid, None));
    insta::assert_snapshot!(
        "nat_mermaid_path",
        render(&t, Format::Mermaid, Some(&nat_path()))
    );
}

#[test]
fn path_overlay_is_numbered_and_unknown_hops_are_listed_not_drawn() {
    let t = topo("nat-topology");
    let svg = render(&t, Format::Svg, Some(&nat_path()));
    for step in 1..=6 {
        assert!(
            svg.contains(&format!("fill=\"#ffffff\">{step}</text>")),
            "step {step}"
        );
    }
    let odd = PathOverlay::new(["client", "nowhere"], "typo");
    assert!(render(&t, Format::Svg, Some(&odd)).contains("client -&gt; nowhere  (not in topology)"));
    assert!(render(&t, Format::Dot, Some(&odd)).contains("(not in topology)"));
    let e = odd.check(&t).unwrap_err().to_string();
    assert!(
        e.contains("`nowhere`") && e.contains("client, router, director, rs1, rs2, lan0"),
        "{e}"
    );
    assert!(PathOverlay::new(["client"], "").check(&t).is_err());
    nat_path().check(&t).unwrap();
}

#[test]
fn a_running_lab_adds_macs_and_lo_addresses() {
    let t = topo("dr-topology");
    let nodes = t
        .nodes
        .iter()
        .enumerate()
        .map(|(k, n)| NodeInfo {
            name: n.name.clone(),
            role: n.role,
            netns: format!("lvs-dr-{}", n.name),
            interfaces: n
                .interfaces
                .iter()
                .enumerate()
                .map(|(j, i)| IfaceInfo {
                    name: i.name.clone(),
                    ifindex: j as u32 + 2,
                    mac: Mac([2, 0, 0, 0, k as u8 + 1, j as u8 + 1]),
                    addresses: i.addresses.clone(),
                    label: i.label,
                    more_labels: Vec::new(),
                    peer: Peer::Lan {
                        lan: "lan0".into(),
                        port: format!("p{k}{j}"),
                    },
                })
                .collect(),
            lo_addresses: if n.name.starts_with("rs") {
                vec!["192.168.1.250/32".parse().unwrap()]
            } else {
                Vec::new()
            },
            routes: n.routes.clone(),
        })
        .collect();
    let lab = LabState {
        lab: "dr".into(),
        topology: t,
        netns: Vec::new(),
        switch_netns: None,
        nodes,
        daemons: Vec::new(),
        created_unix_ms: 0,
        complete: true,
        backend: Default::default(),
    };
    for format in Format::ALL {
        let out = render_lab(&lab, format, None);
        assert!(
            out.contains("mac 02:00:00:00:03:01"),
            "{format}: director's MAC\n{out}"
        );
        assert!(out.contains("lo    VIP 192.168.1.250/32"), "{format}");
    }
    well_formed(&render_lab(&lab, Format::Svg, None)).unwrap();
}

#[test]
fn formats_parse_and_come_from_extensions() {
    assert_eq!("SVG".parse::<Format>().unwrap(), Format::Svg);
    assert_eq!("mermaid".parse::<Format>().unwrap(), Format::Mermaid);
    assert!("png"
        .parse::<Format>()
        .unwrap_err()
        .to_string()
        .contains("use svg, dot or mermaid"));
    assert_eq!(Format::from_extension(Path::new("x.gv")), Some(Format::Dot));
    assert_eq!(
        Format::from_extension(Path::new("x.mmd")),
        Some(Format::Mermaid)
    );
    assert_eq!(Format::from_extension(Path::new("x")), None);
}
