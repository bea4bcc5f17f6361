//! Real-world keepalived.conf files (tests/fixtures/*.conf, each with a .source naming
//! repository, path and commit) against their expected services, round trips, topology
//! read-back and keepalived's own `--config-test` on what lvslab writes.
//!
//! Expected files: NAME.expected.toml (the services, as `to_toml` writes them) and
//! NAME.warnings, or NAME.errors for a file lvslab refuses. `LVSLAB_BLESS=1 cargo test`
//! rewrites them; review the diff.
use std::path::{Path, PathBuf};

use lvslab_keepalived::{
    import_keepalived, import_keepalived_str, to_json, to_keepalived, to_toml, ImportError,
    Imported,
};
use lvslab_netns::{ServiceSpec, Topology};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn confs() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    v.sort();
    v
}

/// Warnings and errors with the file name only, so expected files do not hold this
/// checkout's path.
fn short(s: String) -> String {
    s.replace(&format!("{}/", dir().display()), "")
}

fn check_expected(path: &Path, got: &str) {
    if std::env::var_os("LVSLAB_BLESS").is_some() {
        std::fs::write(path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e} (LVSLAB_BLESS=1 writes it)", path.display()));
    assert_eq!(got, want, "{} differs", path.display());
}

#[test]
fn at_least_ten_real_world_files_with_sources() {
    let c = confs();
    assert!(c.len() >= 10, "{} fixtures", c.len());
    for p in &c {
        let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
        let src = std::fs::read_to_string(dir().join(format!("{stem}.source")))
            .unwrap_or_else(|_| panic!("{} has no .source", p.display()));
        assert!(
            src.contains("repo: ") && src.contains("path: ") && src.contains("commit: "),
            "{src}"
        );
    }
}

#[test]
fn every_fixture_gives_its_expected_services_or_refusals() {
    for p in confs() {
        let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
        let base = |ext: &str| dir().join(format!("{stem}.{ext}"));
        match import_keepalived(&p) {
            Ok(imp) => {
                let toml = to_toml(&imp.services).unwrap();
                check_expected(&base("expected.toml"), &toml);
                let w: Vec<String> = imp.warnings.iter().map(|w| short(w.to_string())).collect();
                check_expected(&base("warnings"), &(w.join("\n") + "\n"));
                assert!(!base("errors").exists(), "{} now imports", p.display());
            }
            Err(e) => {
                let ImportError::Unsupported { problems, .. } = &e else {
                    panic!("{e}")
                };
                for pr in problems {
                    assert!(pr.line > 0 && pr.file == p, "{pr}");
                    assert!(
                        pr.to_string().starts_with(&format!(
                            "{}:{}: error: ",
                            p.display(),
                            pr.line
                        )),
                        "{pr}"
                    );
                }
                check_expected(&base("errors"), &(short(e.to_string()) + "\n"));
            }
        }
    }
}

/// The nodes a topology needs around imported services: the directors and one real
/// server node per name, holding its addresses; no client, so no paths are judged.
fn skeleton(services: &[ServiceSpec]) -> String {
    let mut t = String::from("description = \"imported from keepalived.conf\"\n\n");
    t += "[nodes.director]\nrole = \"director\"\ninterfaces.eth0 = { address = \"10.255.255.1/24\" }\n\n";
    if services.iter().any(|s| s.backup.is_some()) {
        t += "[nodes.director2]\nrole = \"director\"\ninterfaces.eth0 = { address = \"10.255.255.2/24\" }\n\n";
    }
    let mut members = vec!["\"director:eth0\"".to_string()];
    if services.iter().any(|s| s.backup.is_some()) {
        members.push("\"director2:eth0\"".into());
    }
    let mut nodes: Vec<(String, Vec<String>)> = Vec::new();
    for r in services.iter().flat_map(|s| &s.real_servers) {
        let len = if r.address.is_ipv4() { 32 } else { 128 };
        let a = format!("\"{}/{len}\"", r.address);
        match nodes.iter_mut().find(|(n, _)| *n == r.node) {
            Some((_, addrs)) if !addrs.contains(&a) => addrs.push(a),
            Some(_) => {}
            None => nodes.push((r.node.clone(), vec![a])),
        }
    }
    for (n, addrs) in nodes {
        members.push(format!("\"{n}:eth0\""));
        t += &format!(
            "[nodes.{n}]\nrole = \"realserver\"\ninterfaces.eth0 = {{ addresses = [{}] }}\n\n",
            addrs.join(", ")
        );
    }
    t += &format!("[lans.lan0]\nmembers = [{}]\n\n", members.join(", "));
    t
}

fn imported_ok() -> Vec<(PathBuf, Imported)> {
    confs()
        .into_iter()
        .filter_map(|p| import_keepalived(&p).ok().map(|i| (p, i)))
        .collect()
}

#[test]
fn topology_parse_reads_the_services_back() {
    let all = imported_ok();
    assert!(all.len() >= 8, "{} fixtures import", all.len());
    for (p, imp) in all {
        let text = skeleton(&imp.services) + &to_toml(&imp.services).unwrap();
        let t = Topology::parse("imported.toml", text.clone())
            .unwrap_or_else(|e| panic!("{}:\n{e}\n{text}", p.display()));
        assert_eq!(t.services, imp.services, "{}", p.display());
        // The JSON form carries the same services.
        let v: serde_json::Value = serde_json::from_str(&to_json(&imp.services)).unwrap();
        let back: Vec<ServiceSpec> =
            serde_json::from_value(v["services"].clone()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, imp.services, "{}", p.display());
    }
}

#[test]
fn keepalived_to_lvslab_to_keepalived_to_lvslab_is_stable() {
    for (p, imp) in imported_ok() {
        let conf = to_keepalived(&imp.services);
        let again = import_keepalived_str(Path::new("written.conf"), &conf)
            .unwrap_or_else(|e| panic!("{}:\n{e}\n{conf}", p.display()));
        assert_eq!(again.services, imp.services, "{}\n{conf}", p.display());
        // And once more: the written text is a fixed point.
        assert_eq!(to_keepalived(&again.services), conf);
        // What lvslab writes explicitly raises no keepalived warning of its own kind.
        for w in &again.warnings {
            assert!(
                w.message.contains("not here") || w.message.contains("TLS"),
                "{}: unexpected warning on written conf: {w}\n{conf}",
                p.display()
            );
        }
    }
}

const KEEPALIVED: &str = "/usr/sbin/keepalived";

/// `keepalived --config-test -f FILE` in a network namespace of its own holding the eth0
/// the written instances name (as lab/engine/src/pair.rs's test does); None when this host
/// cannot (no keepalived, no unshare, not root).
fn keepalived_config_test(conf: &str) -> Option<(bool, String)> {
    let file = tempfile::NamedTempFile::new().ok()?;
    std::fs::write(file.path(), conf).ok()?;
    let script = format!(
        "ip link add eth0 type veth peer name peer0 && ip link add eth1 type veth peer name peer1 || exit 111; exec {KEEPALIVED} --config-test -f {}",
        file.path().display()
    );
    let out = std::process::Command::new("unshare")
        .args(["--net", "sh", "-c", &script])
        .output()
        .ok()?;
    if out.status.code() == Some(111) || out.status.code() == Some(127) {
        return None;
    }
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if stderr.contains("unshare failed") {
        return None;
    }
    Some((out.status.success(), stderr))
}

#[test]
fn keepalived_itself_accepts_every_conf_lvslab_writes() {
    if !Path::new(KEEPALIVED).exists() {
        eprintln!("SKIPPED: no {KEEPALIVED} (apt-get install keepalived)");
        return;
    }
    let mut checked = 0;
    for (p, imp) in imported_ok() {
        let conf = to_keepalived(&imp.services);
        let Some((ok, stderr)) = keepalived_config_test(&conf) else {
            eprintln!("SKIPPED: cannot make a network namespace with an eth0 (needs root)");
            return;
        };
        assert!(
            ok && stderr.trim().is_empty(),
            "{}: keepalived --config-test:\n{stderr}\n{conf}",
            p.display()
        );
        checked += 1;
    }
    assert!(checked >= 8);
    // The check has teeth: keepalived does complain about a conf it dislikes.
    let (ok, stderr) = keepalived_config_test(
        "virtual_server 10.0.0.1 80 {\n  lb_algo nope\n  real_server 10.0.0.2 80 {\n  }\n}\n",
    )
    .expect("ran before");
    assert!(!ok && stderr.contains("Invalid lvs_scheduler"), "{stderr}");
}

/// keepalived's own reading of each real-world file agrees with lvslab's: every line
/// keepalived 2.2.7 reports as "Unknown keyword" is a located lvslab warning too.
#[test]
fn keepalived_and_lvslab_agree_on_unknown_keywords() {
    if !Path::new(KEEPALIVED).exists() {
        eprintln!("SKIPPED: no {KEEPALIVED} (apt-get install keepalived)");
        return;
    }
    let mut seen = 0;
    for p in confs() {
        let text = std::fs::read_to_string(&p).unwrap();
        let Some((_, stderr)) = keepalived_config_test(&text) else {
            eprintln!("SKIPPED: cannot make a network namespace with an eth0 (needs root)");
            return;
        };
        let ours: Vec<String> = match import_keepalived(&p) {
            Ok(i) => i.warnings.iter().map(ToString::to_string).collect(),
            Err(ImportError::Unsupported { warnings, .. }) => {
                warnings.iter().map(ToString::to_string).collect()
            }
            Err(e) => panic!("{e}"),
        };
        for l in stderr.lines() {
            // "(FILE: Line N) Unknown keyword 'X'"
            let Some((head, word)) = l.split_once(") Unknown keyword '") else {
                continue;
            };
            let line = head.rsplit("Line ").next().unwrap();
            let word = word.trim_end_matches('\'');
            let want = format!(":{line}: warning: unknown keyword `{word}`");
            assert!(
                ours.iter().any(|w| w.contains(&want)),
                "{}: keepalived says {l:?}; lvslab:\n{}",
                p.display(),
                ours.join("\n")
            );
            seen += 1;
        }
    }
    assert!(seen >= 3, "{seen} unknown keywords compared");
}
