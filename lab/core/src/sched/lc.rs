//! ip_vs_lc.c: least connection, by the unweighted overhead (active << 8) + inactive.
use super::least::{least, Load};
use super::Dests;

/// What ip_vs_lc_schedule picks by.
pub(super) const RULE: &str = "least (active<<8)+inactive; ties keep the earlier in list order";

/// ip_vs_lc_schedule: the first usable server with the strictly least overhead.
pub(super) fn schedule(list: &[u32], dests: &Dests, why: Option<&mut String>) -> Option<u32> {
    least(list, dests, Load::Lc, why)
}
