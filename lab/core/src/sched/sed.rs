//! ip_vs_sed.c: shortest expected delay, (active + 1) over weight.
use super::least::{least, Load};
use super::Dests;

/// What ip_vs_sed_schedule picks by.
pub(super) const RULE: &str =
    "least (active+1)/weight by cross-multiplication; ties keep the earlier";

/// ip_vs_sed_schedule: ip_vs_sed_dest_overhead() is active + 1; inactive conns do not count.
pub(super) fn schedule(list: &[u32], dests: &Dests, why: Option<&mut String>) -> Option<u32> {
    least(list, dests, Load::Sed, why)
}
