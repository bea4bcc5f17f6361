//! Traces of real captures (recorded by `lvslab test` from the userspace director with
//! `picks.json` beside them), compared with reviewed snapshots. No root needed.

use lvslab_capture::{analyze, NormalizeOptions};
use lvslab_trace::{load_run, render_all, trace_report, Forwarding, StepKind, Style, Trace};
use std::path::Path;

fn traces(name: &str) -> Vec<Trace> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let run = load_run(&dir, None).unwrap();
    let report = analyze(&run.captures, &run.roles, NormalizeOptions::default());
    trace_report(&report, &run.roles, &run.picks, None).unwrap()
}

fn text(name: &str) -> String {
    render_all(&traces(name), Style { color: false })
}

#[test]
fn nat_trace() {
    let t = traces("nat-rr");
    assert_eq!(t.len(), 4);
    assert!(t
        .iter()
        .all(|t| t.forwarding == Forwarding::Nat && t.findings.is_empty()));
    insta::assert_snapshot!("nat-rr", text("nat-rr"));
}

#[test]
fn dr_trace() {
    let t = traces("dr-rr");
    assert!(t
        .iter()
        .all(|t| t.forwarding == Forwarding::Dr && t.findings.is_empty()));
    insta::assert_snapshot!("dr-rr", text("dr-rr"));
}

#[test]
fn tun_trace() {
    let t = traces("tun-rr");
    assert!(t
        .iter()
        .all(|t| t.forwarding == Forwarding::Tun && t.findings.is_empty()));
    insta::assert_snapshot!("tun-rr", text("tun-rr"));
}

/// The DR ARP problem (`scenarios/pitfall-dr-arp`): real servers without arp_ignore answer
/// ARP for the VIP, so the router sends the client straight to rs1: every conversation
/// is routed with no director, and the trace must say why.
#[test]
fn dr_arp_problem_trace_says_why() {
    let t = traces("dr-arp");
    let to_vip: Vec<&Trace> = t.iter().filter(|t| t.title.contains("VIP=")).collect();
    assert!(!to_vip.is_empty());
    for c in to_vip {
        assert_eq!(c.forwarding, Forwarding::Routed, "{}", c.title);
        assert!(
            c.findings
                .iter()
                .any(|f| f.contains("no director on the way") && f.contains("arp_ignore=1")),
            "{}: {:?}",
            c.title,
            c.findings
        );
    }
}

/// The director with the `nat-source-rewrite` fault forwards replies unrewritten: the
/// trace must say so at the director's hop and at the client.
#[test]
fn broken_nat_trace() {
    let t = traces("nat-no-src-rewrite");
    let first = &t[0];
    assert_eq!(first.forwarding, Forwarding::Nat);
    assert!(
        first.findings.iter().any(|f| f.contains("not rewritten")),
        "{:?}",
        first.findings
    );
    insta::assert_snapshot!(
        "nat-no-src-rewrite",
        render_all(&t[..1], Style { color: false })
    );
}

#[test]
fn every_pick_is_attached_to_its_scheduling_step() {
    for name in ["nat-rr", "dr-rr", "tun-rr"] {
        for t in traces(name) {
            let pick = t.pick.as_ref().unwrap_or_else(|| panic!("{name}: no pick"));
            let step = t.packets[0]
                .steps
                .iter()
                .find(|s| matches!(s.kind, StepKind::NatDst | StepKind::Dr | StepKind::Encap))
                .unwrap_or_else(|| panic!("{name}: no scheduling step"));
            assert!(
                step.text.contains(&format!("{} picked", pick.scheduler)),
                "{}",
                step.text
            );
            assert_eq!(step.detail.as_deref(), Some(pick.text.trim_end()));
        }
    }
}

#[test]
fn same_captures_same_text_and_json() {
    for name in ["nat-rr", "dr-rr", "tun-rr"] {
        assert_eq!(text(name), text(name));
        let a = serde_json::to_string(&traces(name)).unwrap();
        assert_eq!(a, serde_json::to_string(&traces(name)).unwrap());
        assert!(a.contains("\"kind\":\"routed\""), "{name}");
    }
}

#[test]
fn no_colour_codes_unless_asked() {
    assert!(!text("nat-rr").contains('\x1b'));
    let coloured = render_all(&traces("nat-rr"), Style { color: true });
    assert!(coloured.contains("\x1b["));
}

#[test]
fn a_missing_conversation_is_an_error_naming_the_count() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nat-rr");
    let run = load_run(&dir, None).unwrap();
    let report = analyze(&run.captures, &run.roles, NormalizeOptions::default());
    let e = trace_report(&report, &run.roles, &run.picks, Some(9)).unwrap_err();
    assert!(e.to_string().contains("the run has 4"), "{e}");
}
