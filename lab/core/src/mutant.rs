//! Test-only faults, compiled in only with the `mutant-tiebreak` feature: a comparison with
//! the kernel (`lvslab simulate --compare`) must catch each one at the step it breaks.
use std::sync::atomic::{AtomicBool, Ordering};

static TIEBREAK: AtomicBool = AtomicBool::new(false);

/// Switch the broken tie-break on or off: lc, wlc and sed then hand ties to the later server
/// in the list instead of keeping the first (the kernel's strict comparison).
pub fn set_tiebreak(on: bool) {
    TIEBREAK.store(on, Ordering::SeqCst);
}

/// Whether the broken tie-break is on.
pub fn tiebreak() -> bool {
    TIEBREAK.load(Ordering::SeqCst)
}
