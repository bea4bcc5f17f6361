//! Every shipped example and every recorded kernel example on real kernel IPVS against the
//! core (needs root and a kernel with IPVS: runs inside lvslab's VM; elsewhere it says
//! loudly that it skipped). A difference fails with the line and both picks.
mod common;

use std::time::Instant;

use lvslab_core::sim::parse_script;
use lvslab_core::IpvsConfig;
use lvslab_simk::{compare, Error, KernelOptions, Outcome};

#[test]
fn every_example_picks_what_the_kernel_picks() {
    if !common::kernel_ipvs_here("every_example_picks_what_the_kernel_picks") {
        return;
    }
    let mut failures = Vec::new();
    for path in common::scripts() {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let lines = parse_script(&std::fs::read_to_string(&path).expect("readable"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let t = Instant::now();
        let res = compare(
            &lines,
            IpvsConfig::default(),
            &KernelOptions::default(),
            &mut |_, _| {},
        );
        let secs = t.elapsed().as_secs_f64();
        match res {
            Ok(c) => {
                if let Some(d) = &c.difference {
                    failures.push(format!("{name}: {d}"));
                }
                for k in &c.kernel {
                    if k.matches_kernel() == Some(false) {
                        failures.push(format!(
                            "{name}: the kernel now disagrees with the recorded pick: {k}"
                        ));
                    }
                }
                match &c.outcome {
                    Outcome::Complete => {
                        common::loud(&format!("{name}: {} steps agree ({secs:.2} s)", c.agreed()))
                    }
                    Outcome::Stopped { reason, .. } => common::loud(&format!(
                        "{name}: {} steps agree, then stopped ({secs:.2} s): {reason}",
                        c.agreed()
                    )),
                }
            }
            Err(Error::NoScheduler { scheduler, .. }) if scheduler == "twos" => {
                common::loud(&format!("{name}: this kernel has no twos ({secs:.2} s)"));
            }
            Err(Error::Plan(lvslab_simk::PlanError::Load { .. })) => {
                common::loud(&format!(
                    "{name}: uses `load` (the core only); its kernel picks are recorded with held conns in lab/core/tests/kernel-examples"
                ));
            }
            Err(e) => failures.push(format!("{name}: {e}")),
        }
        common::nothing_left();
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
