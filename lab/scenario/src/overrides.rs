//! A scenario's `[service]` overrides applied to a typed [`Topology`], with problems located
//! in the scenario file (caret and `help:`, like topology errors).
use lvslab_netns::diag::{Diagnostic, Source};
use lvslab_netns::{RealServerSpec, Topology};
use toml::Spanned;

use crate::format::{FormatError, Scenario};

/// The topology with the scenario's `[service]` changes made to its first service.
///
/// Errors point at the scenario file: a port out of range, or a weight, threshold or
/// `without` entry naming a node that is not a real server of the service. (An unknown
/// scheduler, method or protocol is already refused when the scenario is parsed.)
pub fn apply_overrides(scenario: &Scenario, mut topo: Topology) -> Result<Topology, FormatError> {
    let src = scenario
        .source
        .clone()
        .unwrap_or_else(|| Source::new("scenario", String::new()));
    let o = &scenario.service;
    if let Some(imp) = &o.import {
        match imported_services(&src.path, imp.get_ref(), &topo) {
            Ok(services) => topo.services = services,
            Err((message, help)) => {
                return Err(FormatError::Located {
                    src: Box::new(src.clone()),
                    diagnostics: vec![src.diag(imp.span(), message, help)],
                })
            }
        }
    }
    let Some(svc) = topo.services.first_mut() else {
        return Err(FormatError::Invalid {
            path: src.path.clone(),
            message: format!(
                "[service]: topology {} has no [[services]] to change",
                topo.path.display()
            ),
        });
    };
    let mut diags = Vec::new();
    if let Some(k) = &o.scheduler {
        svc.scheduler = *k.get_ref();
    }
    if let Some(m) = &o.method {
        svc.method = *m.get_ref();
    }
    if let Some(p) = &o.protocol {
        svc.protocol = *p.get_ref();
    }
    if o.persistence.is_some() {
        svc.persistence = o.persistence;
    }
    if let Some(p) = port(&src, o.port.as_ref(), "service port", &mut diags) {
        svc.port = p;
    }
    if let Some(p) = port(&src, o.rs_port.as_ref(), "rs_port", &mut diags) {
        for r in &mut svc.real_servers {
            r.port = p;
        }
    }
    let names = |rss: &[RealServerSpec]| {
        let v: Vec<&str> = rss.iter().map(|r| r.node.as_str()).collect();
        v.join(", ")
    };
    for w in &o.without {
        if !svc.real_servers.iter().any(|r| r.node == *w.get_ref()) {
            let known = names(&svc.real_servers);
            diags.push(not_a_server(&src, w, "without", &known));
        }
    }
    svc.real_servers
        .retain(|r| !o.without.iter().any(|w| *w.get_ref() == r.node));
    let known = names(&svc.real_servers);
    type Set = fn(&mut RealServerSpec, u32);
    let per_server: [(&str, _, Set); 3] = [
        ("weights", &o.weights, |r, v| r.weight = v),
        ("u_thresholds", &o.u_thresholds, |r, v| r.u_threshold = v),
        ("l_thresholds", &o.l_thresholds, |r, v| r.l_threshold = v),
    ];
    for (what, map, set) in per_server {
        for (node, value) in map {
            let Some(r) = svc
                .real_servers
                .iter_mut()
                .find(|r| r.node == *node.get_ref())
            else {
                diags.push(not_a_server(&src, node, what, &known));
                continue;
            };
            set(r, *value);
        }
    }
    if let Some(h) = &o.health {
        match checked_table(&topo, "health", h.get_ref()) {
            Ok(checked) => {
                if let Some(svc) = topo.services.first_mut() {
                    svc.health = checked.health;
                }
            }
            Err((message, help)) => diags.push(src.diag(h.span(), message, help)),
        }
    }
    if let Some(v) = &o.vrrp {
        match checked_table(&topo, "vrrp", v.get_ref()) {
            Ok(checked) => {
                if let Some(svc) = topo.services.first_mut() {
                    svc.vrrp = checked.vrrp;
                }
            }
            Err((message, help)) => diags.push(src.diag(v.span(), message, help)),
        }
    }
    if diags.is_empty() {
        return Ok(topo);
    }
    diags.sort_by_key(|d| (d.span.start, d.span.end));
    Err(FormatError::Located {
        src: Box::new(src),
        diagnostics: diags,
    })
}

/// The services of `imp` (a keepalived.conf or an ipvsadm rule set, relative to the scenario
/// at `scenario_path`) fitted to `topo`: directors as the topology's first service names
/// them, real servers by the node holding their address.
fn imported_services(
    scenario_path: &std::path::Path,
    imp: &crate::format::ImportFile,
    topo: &Topology,
) -> Result<Vec<lvslab_netns::ServiceSpec>, (String, Option<String>)> {
    let dir = scenario_path.parent().unwrap_or(std::path::Path::new("."));
    let (file, imported) = match (&imp.keepalived, &imp.ipvsadm) {
        (Some(k), None) => {
            let file = dir.join(k);
            let r = lvslab_keepalived::import_keepalived(&file)
                .map_err(|e| (format!("import: {e}"), None))?;
            (file, r.services)
        }
        (None, Some(i)) => {
            let file = dir.join(i);
            let text = std::fs::read_to_string(&file)
                .map_err(|e| (format!("import: read {}: {e}", file.display()), None))?;
            let r = lvslab_import::import_ipvsadm(&file, &text)
                .map_err(|e| (format!("import: {e}"), None))?;
            (file, r.services)
        }
        _ => {
            return Err((
                "import names no file, or two".to_owned(),
                Some("write import = { keepalived = \"FILE\" } or import = { ipvsadm = \"FILE\" }, relative to the scenario".to_owned()),
            ))
        }
    };
    let first = topo.services.first();
    let mut out = Vec::new();
    for mut s in imported {
        if let Some(f) = first {
            s.director = f.director.clone();
            if s.backup.is_some() {
                s.backup = f.backup.clone();
            }
        }
        for r in &mut s.real_servers {
            let owner = topo.nodes.iter().find(|n| {
                n.interfaces
                    .iter()
                    .flat_map(|i| &i.addresses)
                    .any(|a| a.addr() == r.address)
            });
            match owner {
                Some(n) => r.node = n.name.clone(),
                None => {
                    return Err((
                        format!(
                            "import: real server {} of {} is no address of a node in topology {}",
                            r.address,
                            file.display(),
                            topo.name
                        ),
                        Some("pick a topology whose real servers hold the imported addresses, or edit the file".to_owned()),
                    ))
                }
            }
        }
        out.push(s);
    }
    if out.is_empty() {
        return Err((
            format!("import: {} holds no virtual service", file.display()),
            None,
        ));
    }
    Ok(out)
}

/// A `[service] health` or `vrrp` table checked by the topology validator itself (one set
/// of rules): the topology is written out with the table in its first service (replacing
/// the topology's own) and read back.
fn checked_table(
    topo: &Topology,
    field: &str,
    table: &toml::Table,
) -> Result<lvslab_netns::ServiceSpec, (String, Option<String>)> {
    let plain = |e: String| (format!("{field}: {e}"), None);
    let text = topo.to_toml().map_err(|e| plain(e.to_string()))?;
    let mut doc: toml::Table = toml::from_str(&text).map_err(|e| plain(e.to_string()))?;
    let first = doc
        .get_mut("services")
        .and_then(|s| s.as_array_mut())
        .and_then(|a| a.first_mut())
        .and_then(|s| s.as_table_mut())
        .ok_or_else(|| plain("the topology has no service".to_owned()))?;
    first.insert(field.to_owned(), toml::Value::Table(table.clone()));
    let text = toml::to_string(&doc).map_err(|e| plain(e.to_string()))?;
    match Topology::parse(&topo.path, text) {
        Ok(t) => t
            .services
            .into_iter()
            .next()
            .ok_or_else(|| plain("the topology has no service".to_owned())),
        Err(e) => match e.diagnostics().first() {
            Some(d) => Err((format!("{field}: {}", d.message), d.help.clone())),
            None => Err(plain(e.to_string())),
        },
    }
}

fn port(
    src: &Source,
    p: Option<&Spanned<i64>>,
    what: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<u16> {
    let p = p?;
    match u16::try_from(*p.get_ref()) {
        Ok(v) if v > 0 => Some(v),
        _ => {
            diags.push(src.diag(
                p.span(),
                format!("{what} {} is out of range", p.get_ref()),
                Some("a port is 1 to 65535".to_owned()),
            ));
            None
        }
    }
}

fn not_a_server(src: &Source, node: &Spanned<String>, what: &str, known: &str) -> Diagnostic {
    src.diag(
        node.span(),
        format!(
            "[service] {what}: {:?} is not a real server of the service (real servers: {known})",
            node.get_ref()
        ),
        Some("name one of the service's real servers, or remove the entry".to_owned()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn nat() -> Topology {
        Topology::load(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../topologies/nat-topology.toml"),
        )
        .unwrap()
    }

    /// The rendered error of a scenario with this body; it must start with `head` (the
    /// location and message) and carry a help line.
    fn error(body: &str, head: &str) -> String {
        let e = match apply(body) {
            Ok(_) => panic!("{body:?} applied"),
            Err(e) => e.to_string(),
        };
        assert!(
            e.starts_with(head) && e.contains("help: "),
            "want {head}\ngot {e}"
        );
        e
    }

    fn apply(body: &str) -> Result<Topology, FormatError> {
        let text = format!("description = \"d\"\ntopology = \"nat-topology\"\n{body}");
        let s = Scenario::parse(Path::new("s.toml"), &text)?;
        apply_overrides(&s, nat())
    }

    #[test]
    fn an_imported_keepalived_conf_replaces_the_services_fitted_by_address() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("k.conf");
        std::fs::write(
            &conf,
            "virtual_server 192.168.1.250 80 {\n lb_algo sh\n lb_kind NAT\n protocol TCP\n real_server 192.168.1.203 80 { weight 2 }\n}\n",
        )
        .unwrap();
        let text = "description = \"d\"\ntopology = \"nat-topology\"\n[service]\nimport = { keepalived = \"k.conf\" }\n";
        let s = Scenario::parse(&dir.path().join("s.toml"), text).unwrap();
        let t = apply_overrides(&s, nat()).unwrap();
        let svc = &t.services[0];
        assert_eq!(svc.scheduler.to_string(), "sh");
        assert_eq!(svc.director, "director");
        assert_eq!(svc.real_servers.len(), 1);
        assert_eq!(
            (
                svc.real_servers[0].node.as_str(),
                svc.real_servers[0].weight
            ),
            ("rs2", 2)
        );
        // A real server the topology does not hold is refused, pointing at `import`.
        std::fs::write(&conf, "virtual_server 192.168.1.250 80 {\n protocol TCP\n real_server 10.9.9.9 80 { weight 1 }\n}\n").unwrap();
        let s = Scenario::parse(&dir.path().join("s.toml"), text).unwrap();
        let e = apply_overrides(&s, nat()).unwrap_err().to_string();
        assert!(e.contains("s.toml:4:") && e.contains("10.9.9.9"), "{e}");
    }

    #[test]
    fn overrides_change_the_first_service() {
        let t = apply(
            "[service]\nscheduler = \"wlc\"\nmethod = \"dr\"\nprotocol = \"udp\"\npersistence = 60\nport = 8080\nrs_port = 9090\nweights = { rs2 = 3 }\nu_thresholds = { rs2 = 5 }\nwithout = [\"rs1\"]\n",
        )
        .unwrap();
        let svc = &t.services[0];
        assert_eq!(svc.scheduler, lvslab_netns::Scheduler::Wlc);
        assert_eq!(svc.method, lvslab_netns::ForwardMethod::Dr);
        assert_eq!(svc.protocol, lvslab_netns::Protocol::Udp);
        assert_eq!((svc.persistence, svc.port), (Some(60), 8080));
        let rs: Vec<_> = svc
            .real_servers
            .iter()
            .map(|r| (r.node.as_str(), r.port, r.weight, r.u_threshold))
            .collect();
        assert_eq!(rs, vec![("rs2", 9090, 3, 5)]);
    }

    #[test]
    fn a_health_override_is_checked_by_the_topology_rules_and_located_here() {
        let t = apply("[service]\nhealth = { check = \"tcp\", interval_ms = 200, retries = 2 }\n")
            .unwrap();
        let h = t.services[0].health.clone().expect("health");
        assert_eq!((h.interval_ms, h.retries, h.timeout_ms), (200, 2, 500));
        let e = error("[service]\nhealth = { check = \"ping\" }\n", "s.toml:4:");
        assert!(e.contains("unknown health check \"ping\""), "{e}");
        let s = Scenario::parse(
            Path::new("s.toml"),
            "description = \"d\"\ntopology = \"nat-topology\"\n[[steps]]\ndo = \"start_server\"\nnode = \"rs2\"\n[[steps]]\ndo = \"wait_health\"\nnode = \"rs2\"\nstate = \"down\"\n",
        )
        .unwrap();
        assert!(matches!(
            &s.steps[1],
            crate::format::Step::WaitHealth {
                state: crate::format::HealthState::Down,
                timeout_ms: 5000,
                ..
            }
        ));
    }

    #[test]
    fn every_shipped_scenario_gives_a_valid_topology() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
        let mut seen = 0;
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.extension().is_none_or(|x| x != "toml") {
                continue;
            }
            let s = Scenario::load(&p).unwrap();
            let t = apply_overrides(&s, Topology::find(&s.topology).unwrap())
                .unwrap_or_else(|e| panic!("{e}"));
            let text = t.to_toml().unwrap();
            if let Err(e) = Topology::parse("t.toml", text) {
                panic!("{}: {e}", p.display());
            }
            seen += 1;
        }
        assert!(seen >= 20);
    }

    #[test]
    fn no_overrides_no_change() {
        assert_eq!(apply("").unwrap(), nat());
    }

    #[test]
    fn an_unknown_scheduler_is_located_with_the_known_ones() {
        let e = error(
            "[service]\nscheduler = \"roundrobin\"\n",
            "s.toml:4:13: error: unknown scheduler",
        );
        assert!(e.contains("^^^^") && e.contains("wlc"), "{e}");
    }

    #[test]
    fn an_unknown_method_or_protocol_is_located() {
        error(
            "[service]\nmethod = \"masq\"\n",
            "s.toml:4:10: error: unknown forwarding method",
        );
        error(
            "[service]\nprotocol = \"sctp\"\n",
            "s.toml:4:12: error: unknown variant `sctp`",
        );
    }

    #[test]
    fn a_weight_for_a_stranger_is_located_at_its_name() {
        let e = error(
            "[service]\nweights = { rs1 = 2, rs9 = 1 }\n",
            "s.toml:4:22: error: [service] weights: \"rs9\"",
        );
        assert!(e.contains("rs1, rs2"), "{e}");
        error(
            "[service]\nwithout = [\"rs3\"]\n",
            "s.toml:4:12: error: [service] without: \"rs3\"",
        );
    }

    #[test]
    fn a_port_out_of_range_is_located() {
        let e = error(
            "[service]\nport = 70000\nrs_port = 0\n",
            "s.toml:4:8: error: service port 70000 is out of range",
        );
        assert!(
            e.contains("s.toml:5:11: error: rs_port 0 is out of range"),
            "{e}"
        );
        assert!(e.contains("2 errors in s.toml"), "{e}");
    }
}
