//! ip_vs_wlc.c: weighted least connection, overhead over weight by cross-multiplication.
use super::least::{least, Load};
use super::Dests;

/// What ip_vs_wlc_schedule picks by.
pub(super) const RULE: &str =
    "least ((active<<8)+inactive)/weight by cross-multiplication; ties keep the earlier";

/// ip_vs_wlc_schedule: `loh * doh_weight > doh * loh_weight` moves the lead, so ties stay.
pub(super) fn schedule(list: &[u32], dests: &Dests, why: Option<&mut String>) -> Option<u32> {
    least(list, dests, Load::Wlc, why)
}
