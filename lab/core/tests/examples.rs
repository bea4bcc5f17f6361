//! Every example under examples/simulate runs and prints what its snapshot says.
use std::path::Path;

use lvslab_core::sim::Sim;
use lvslab_core::{IpvsConfig, Scheduler};

#[test]
fn every_scheduler_has_an_example_and_it_runs() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/simulate");
    for s in Scheduler::ALL {
        let path = dir.join(format!("{s}.sim"));
        let script = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("missing example {}: {e}", path.display()));
        let mut sim = Sim::new(IpvsConfig::default());
        let reports = sim
            .run_script(&script)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            !reports.is_empty(),
            "{} has no connection step",
            path.display()
        );
        let text: String = reports.iter().map(|r| format!("{r}\n")).collect();
        insta::assert_snapshot!(format!("simulate_{s}"), text);
    }
}
