//! The mutation test behind `--compare`: with the core's lc/wlc/sed tie-break broken on
//! purpose (ties to the later server instead of the kernel's strict comparison), comparing
//! with real kernel IPVS must fail at exactly the first step the mutant picks differently,
//! naming the kernel's (right) pick. Needs root and kernel IPVS (the VM); its own test
//! binary, because the mutant switch is process-wide.
mod common;

use lvslab_core::sim::parse_script;
use lvslab_core::{mutant, IpvsConfig};
use lvslab_simk::{compare, run_core, KernelOptions};

#[test]
fn a_broken_tie_break_is_caught_at_the_step_it_changes() {
    if !common::kernel_ipvs_here("a_broken_tie_break_is_caught_at_the_step_it_changes") {
        return;
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for script in [
        "examples/simulate/lc.sim",
        "examples/simulate/wlc.sim",
        "lab/core/tests/kernel-examples/sed-classic-123-held.sim",
    ] {
        let lines = parse_script(&std::fs::read_to_string(root.join(script)).expect("readable"))
            .expect("parses");
        mutant::set_tiebreak(false);
        let good = run_core(&lines, IpvsConfig::default()).expect("core runs");
        mutant::set_tiebreak(true);
        let bad = run_core(&lines, IpvsConfig::default()).expect("mutant runs");
        // Where the mutant first goes wrong, found without the kernel.
        let (g, b) = good
            .iter()
            .zip(&bad)
            .find(|(g, b)| g.server != b.server)
            .unwrap_or_else(|| {
                panic!("{script}: the mutant changes no pick; pick a script with a tie")
            });
        let c = compare(
            &lines,
            IpvsConfig::default(),
            &KernelOptions::default(),
            &mut |_, _| {},
        )
        .unwrap_or_else(|e| panic!("{script}: {e}"));
        mutant::set_tiebreak(false);
        let d = c
            .difference
            .unwrap_or_else(|| panic!("{script}: --compare did not catch the broken tie-break"));
        assert_eq!(
            d.kernel.line, b.line,
            "{script}: caught at the wrong step: {d}"
        );
        assert_eq!(d.core.server, b.server, "{script}: {d}");
        assert_eq!(
            d.kernel.server, g.server,
            "{script}: the kernel should pick what the good core picks: {d}"
        );
        common::loud(&format!("{script}: caught: {d}"));
        common::nothing_left();
    }
}
