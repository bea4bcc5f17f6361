//! Reachability judged from the routes a lab really has (the kernel selftest's DR layout
//! validates), and the LVS-aware checks: each error class has a fixture in tests/bad/
//! (checked there by bad_topologies.rs), each warning one in tests/warn/ (checked here).
use std::path::{Path, PathBuf};

use lvslab_netns::diag::Severity;
use lvslab_netns::Topology;

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo_file(rel)).expect("read file")
}

/// Parse `text`; the first error's message, or None when it validates.
fn first_error(text: String) -> Option<String> {
    Topology::parse("t.toml", text)
        .err()
        .map(|e| e.diagnostics()[0].message.clone())
}

#[test]
fn the_kernel_selftest_dr_layout_validates_without_a_default_route() {
    let (t, warnings) =
        Topology::load_with_warnings(repo_file("topologies/selftest-dr.toml")).expect("valid");
    assert!(warnings.is_empty(), "{warnings}");
    let rs1 = t.node("rs1").expect("rs1");
    assert!(rs1.routes.is_empty(), "the point of the lab: no routes");
    let svc = &t.services[0];
    assert_eq!(svc.method.word(), "dr");
    // The real server answers the client over its connected subnet.
    let cip = t.node("client").expect("client").interfaces[0].addresses[0].addr();
    assert!(rs1
        .interfaces
        .iter()
        .any(|i| i.addresses.iter().any(|a| a.contains(&cip))));
}

#[test]
fn shipped_topologies_raise_no_warnings() {
    for e in std::fs::read_dir(repo_file("topologies"))
        .expect("topologies/")
        .flatten()
    {
        // Labs built wrong on purpose (`mistakes`, topologies/pitfall-*.toml) warn about
        // exactly their mistakes, and nothing else.
        match Topology::load_with_warnings(e.path()) {
            Ok((t, w)) => {
                let declared: usize = t.nodes.iter().map(|n| n.mistakes.len()).sum();
                let deliberate = w
                    .diagnostics()
                    .iter()
                    .filter(|d| d.message.starts_with("deliberately wrong: "))
                    .count();
                assert_eq!(deliberate, declared, "{}: {w}", e.path().display());
                assert_eq!(w.diagnostics().len(), deliberate, "{w}");
            }
            Err(err) => panic!("{err}"),
        }
    }
}

#[test]
fn a_dr_reply_may_go_through_any_node_that_forwards() {
    // dr-no-path-back routes rs1 via the director, which does not forward by default ...
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad/dr-no-path-back.toml"),
    )
    .expect("fixture");
    let err = first_error(text.clone()).expect("fails as it is");
    assert!(err.contains("director does not forward"), "{err}");
    // ... but a director that forwards (as the selftest's does) carries the replies on.
    let forwarding = text.replace(
        "[nodes.director]\nrole = \"director\"\n",
        "[nodes.director]\nrole = \"director\"\nsysctls = { \"net.ipv4.ip_forward\" = 1 }\n",
    );
    assert_ne!(forwarding, text);
    assert_eq!(first_error(forwarding), None);
}

#[test]
fn the_selftest_layout_with_a_default_route_still_validates() {
    // A default route does not take the place of the connected client subnet.
    let text = read("topologies/selftest-dr.toml").replace(
        "# no routes: the client's subnet is connected",
        "routes = [\"default via 172.16.0.1\"]",
    );
    assert_eq!(first_error(text), None);
}

#[test]
fn a_nat_real_server_may_return_through_the_backup_director() {
    let text = read("topologies/ha-topology.toml")
        .replace("method = \"dr\"", "method = \"nat\"")
        .replace(
            "interfaces.eth0 = { address = \"192.168.1.201/24\", label = \"RIP1\" }\nroutes = [\"default via 192.168.1.1\"]",
            "interfaces.eth0 = { address = \"192.168.1.201/24\", label = \"RIP1\" }\nroutes = [\"default via 192.168.1.204\"]",
        )
        .replace(
            "interfaces.eth0 = { address = \"192.168.1.203/24\", label = \"RIP2\" }\nroutes = [\"default via 192.168.1.1\"]",
            "interfaces.eth0 = { address = \"192.168.1.203/24\", label = \"RIP2\" }\nroutes = [\"default via 192.168.1.202\"]",
        );
    assert_eq!(text.matches("default via 192.168.1.20").count(), 2);
    assert_eq!(first_error(text), None);
}

#[test]
fn loose_rp_filter_on_a_tun_real_server_is_fine() {
    let text = read("topologies/tun-topology.toml").replace(
        "[nodes.rs1]\nrole = \"realserver\"\n",
        "[nodes.rs1]\nrole = \"realserver\"\nsysctls = { \"net.ipv4.conf.all.rp_filter\" = 2 }\n",
    );
    let (_, w) = Topology::parse_with_warnings("t.toml", text).expect("valid");
    assert!(w.is_empty(), "{w}");
}

#[test]
fn every_new_check_has_a_fixture() {
    let bad = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad");
    for (file, prefix) in [
        ("dr-no-route.toml", "real server rs1 has no path back"),
        ("dr-gateway-nobody.toml", "real server rs1 has no path back"),
        (
            "dr-client-subnet-other-lan.toml",
            "real server rs1 has no path back",
        ),
        (
            "nat-bypass-router.toml",
            "NAT return path bypasses the director",
        ),
        (
            "nat-client-on-rs-lan.toml",
            "NAT return path bypasses the director",
        ),
        ("nat-no-route.toml", "real server rs1 has no path back"),
        ("dr-port-differs.toml", "real server port 8080 differs"),
        ("tun-port-differs.toml", "real server port 81 differs"),
        ("vip-no-route.toml", "client client cannot reach VIP"),
        ("vip-via-realserver.toml", "client client cannot reach VIP"),
        (
            "vip-not-on-director-lan.toml",
            "client client cannot reach VIP",
        ),
    ] {
        let text = std::fs::read_to_string(bad.join(file)).expect("fixture");
        let first = text.lines().next().unwrap_or_default();
        assert!(first.contains(&format!(": {prefix}")), "{file}: {first}");
    }
}

#[test]
fn every_warning_fixture_warns_with_its_located_message_and_a_help() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/warn");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/warn exists")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read fixture");
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| {
                panic!("{}: first line is # expect: LINE:COL: MESSAGE", f.display())
            });
        let (loc, msg) = expect.split_once(": ").expect("LINE:COL: MESSAGE");
        let (_, warnings) = Topology::load_with_warnings(&f)
            .unwrap_or_else(|e| panic!("{} must load, warnings only: {e}", f.display()));
        let d = warnings
            .diagnostics()
            .first()
            .unwrap_or_else(|| panic!("{}: no warning", f.display()));
        assert_eq!(d.severity, Severity::Warning);
        assert_eq!(
            format!("{}:{}", d.line, d.col),
            loc,
            "{}: {warnings}",
            f.display()
        );
        assert!(
            d.message.starts_with(msg),
            "want {msg:?}, got {:?}",
            d.message
        );
        let shown = warnings.to_string();
        let want = format!("{}:{loc}: warning: {msg}", f.display());
        assert!(shown.starts_with(&want), "want prefix {want}\ngot {shown}");
        assert!(shown.contains("help: "), "no help line: {shown}");
    }
}
