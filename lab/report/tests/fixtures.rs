//! The page for lvslab-trace's recorded runs (no root, no lab): every hop is a row, the
//! lab is drawn inline, the page is self-contained and deterministic, and a run's text
//! cannot inject markup.

use lvslab_netns::Topology;
use lvslab_report::{render, Report, RunView, Section, Verdict};
use lvslab_scenario::snapshot::Outcome;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn section(name: &str, topology: &str, verdict: Verdict) -> Section {
    let dir = repo().join("lab/trace/tests/fixtures").join(name);
    Section {
        name: name.to_owned(),
        verdict: Some(verdict),
        reasons: Vec::new(),
        description: Some(format!("{name} from lvslab-trace's fixtures")),
        backend: Some("userspace".to_owned()),
        time: Some(Duration::from_millis(300)),
        topology: Some(Topology::load(repo().join("topologies").join(topology)).unwrap()),
        snapshot: Some(Outcome::Same),
        run: Some(RunView::load(&dir, None).map_err(|e| e.to_string())),
    }
}

fn report() -> Report {
    let mut broken = section("nat-no-src-rewrite", "nat-topology.toml", Verdict::Fail);
    let diff = "@@ -1,2 +1,2 @@\n director:eth1 in\n-director:eth0 out VIP > CIP\n+director:eth0 out RIP2 > CIP <script>alert(1)</script>\n";
    broken.reasons = vec![format!(
        "the packet path differs (new path in x.snap.new):\n{diff}"
    )];
    broken.snapshot = Some(Outcome::Changed {
        pending: PathBuf::from("scenarios/snapshots/nat-rr.snap.new"),
        diff: diff.to_owned(),
    });
    broken.description = Some("<b>not bold</b> & \"quoted\"".to_owned());
    Report {
        title: "lvslab test".to_owned(),
        backend: "userspace".to_owned(),
        time: Some(Duration::from_millis(1234)),
        sections: vec![
            section("nat-rr", "nat-topology.toml", Verdict::Pass),
            section("dr-rr", "dr-topology.toml", Verdict::Pass),
            broken,
        ],
    }
}

fn hop_rows(html: &str) -> usize {
    html.matches("<tr class=\"hop\">").count()
}

#[test]
fn every_hop_is_a_row_and_every_lab_is_drawn() {
    let r = report();
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fixtures-report.html");
    let html = render(&r, &out);
    std::fs::write(&out, &html).unwrap();
    let hops: usize = r
        .sections
        .iter()
        .map(|s| s.run.as_ref().unwrap().as_ref().unwrap().hop_count())
        .sum();
    assert!(hops > 50, "{hops}");
    assert_eq!(hop_rows(&html), hops);
    assert_eq!(html.matches("<svg").count(), 3);
    assert!(html.contains("<span class=\"kind nat\">NAT</span>director rewrote dst VIP"));
    assert!(html.contains("<span class=\"kind dr\">DR</span>"));
    assert!(html.contains("<td class=\"result pass\">pass</td>"));
    assert!(html.contains("<td class=\"result fail\">fail</td>"));
    assert!(html.contains("<span class=\"count pass\" id=\"count-pass\">2 passed</span>"));
    assert!(html.contains("<span class=\"count skip\" id=\"count-skip\">0 skipped</span>"));
    // The rewritten destination is highlighted at the hop after the director.
    assert!(html
        .contains("<span class=\"chg\"><span class=\"role\">RIP2</span>=192.168.1.203:80</span>"));
    // Picks: four in each run of four (nat-rr) requests.
    assert!(html.contains("rr picked <b>192.168.1.203:80</b>"));
    // Links to the captures are relative, merged pcapng first.
    assert!(
        html.contains("<a href=\"../../../lab/trace/tests/fixtures/nat-rr/client-eth0.pcap\">")
            || html.contains("fixtures/nat-rr/client-eth0.pcap\">"),
        "{html}"
    );
    println!("fixture report: {}", out.display());
}

#[test]
fn self_contained_escaped_and_deterministic() {
    let r = report();
    let a = render(&r, Path::new("/tmp/x/report.html"));
    let b = render(&r, Path::new("/tmp/x/report.html"));
    assert_eq!(a, b);
    assert!(!a.contains("<script"), "markup from a run got through");
    assert!(a.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(a.contains("&lt;b&gt;not bold&lt;/b&gt; &amp; &quot;quoted&quot;"));
    for external in ["src=", "href=\"http", "@import"] {
        assert!(!a.contains(external), "{external}");
    }
    // The drawings' markers are referenced inside the page, each drawing its own.
    assert!(a.split("url(").skip(1).all(|rest| rest.starts_with("#s-")));
    assert_eq!(a.matches(" id=\"s-nat-rr-arrow\"").count(), 1);
    // The diff is coloured once, not repeated in the reason.
    assert_eq!(a.matches("alert(1)").count(), 1);
    assert!(a.contains("<span class=\"del\">-director:eth0 out VIP &gt; CIP</span>"));
    assert!(a.contains("<span class=\"add\">+director:eth0 out RIP2"));
}
