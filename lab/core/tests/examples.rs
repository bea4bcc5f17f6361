//! Every example under examples/simulate runs and prints what its snapshots say: the plain
//! report and, reviewed line by line, the `--explain` text (twos is seeded, so it is stable).
use std::path::{Path, PathBuf};

use lvslab_core::sim::{Sim, StepReport};
use lvslab_core::{IpvsConfig, Scheduler};

fn example(s: Scheduler) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/simulate")
        .join(format!("{s}.sim"))
}

fn run(path: &Path, explain: bool) -> Vec<StepReport> {
    let script = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("missing example {}: {e}", path.display()));
    let mut sim = Sim::new(IpvsConfig {
        explain,
        ..IpvsConfig::default()
    });
    sim.run_script(&script)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_scheduler_has_an_example_and_it_runs() {
    for s in Scheduler::ALL {
        let path = example(s);
        let reports = run(&path, false);
        assert!(
            !reports.is_empty(),
            "{} has no connection step",
            path.display()
        );
        let text: String = reports.iter().map(|r| format!("{r}\n")).collect();
        insta::assert_snapshot!(format!("simulate_{s}"), text);
    }
}

/// The `--explain` text exactly as `lvslab simulate --explain` prints it, so a change to
/// any explanation shows up in review.
#[test]
fn every_example_explains_each_pick_as_reviewed() {
    for s in Scheduler::ALL {
        let text: String = run(&example(s), true)
            .iter()
            .map(|r| r.text(true))
            .collect();
        insta::assert_snapshot!(format!("simulate_explain_{s}"), text);
    }
}

/// One server, one spelling: the report, the explanation's pick, its candidate row, its
/// decision text and the JSON all write the address the conn reaches (fwmark services'
/// port-0 servers included: dh.sim and lblc.sim list them as RIP:0 or without a port).
#[test]
fn a_server_is_written_one_way_in_every_output() {
    for s in Scheduler::ALL {
        let path = example(s);
        for r in run(&path, true) {
            let Some(server) = r.server else { continue };
            let e = r.explain.as_ref().unwrap_or_else(|| {
                panic!("{}: line {} has no explanation", path.display(), r.line)
            });
            assert_eq!(
                e.chosen,
                Some(server),
                "{}: line {}",
                path.display(),
                r.line
            );
            let rows: Vec<_> = e.candidates.iter().map(|c| c.server).collect();
            assert!(
                rows.contains(&server),
                "{}: line {}: {server} not among {rows:?}",
                path.display(),
                r.line
            );
            for c in &e.candidates {
                assert_ne!(c.server.port(), 0, "{}: line {}", path.display(), r.line);
            }
            let text = r.text(true);
            assert!(
                !text.contains(&format!("{}:0", server.ip())),
                "{}: line {}: {server} also written with port 0:\n{text}",
                path.display(),
                r.line
            );
            let json = serde_json::to_value(e).expect("explanation serializes");
            assert_eq!(json["chosen"], server.to_string());
        }
    }
}

/// Every `# kernel:` annotation in examples/simulate is what the core picks, and every
/// connection step carries one except where the kernel cannot run it: twos (Linux 6.2, not
/// in 6.1) and lblc.sim after its 25-hour sleep.
#[test]
fn every_example_step_carries_the_kernels_pick_and_the_core_agrees() {
    let mut checked = 0;
    for s in Scheduler::ALL {
        let path = example(s);
        for r in run(&path, false) {
            match r.kernel {
                Some(k) => {
                    assert_eq!(r.server, k, "{}: {r}", path.display());
                    checked += 1;
                }
                None => assert!(
                    s == Scheduler::Twos || (s == Scheduler::Lblc && r.line > 10),
                    "{}: line {} has no `# kernel:` pick",
                    path.display(),
                    r.line
                ),
            }
        }
    }
    assert!(checked >= 60, "only {checked} steps carried a kernel pick");
}
