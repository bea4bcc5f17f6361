//! ip_vs_rr.c: round robin over the servers with weight > 0 that are not overloaded.
use std::fmt::Write as _;

use super::{nothing, Dests};

/// What ip_vs_rr_schedule always picks by.
pub(super) const RULE: &str = "round robin over servers with weight > 0";

/// The kernel's svc->sched_data: the last picked position (None = list head).
#[derive(Debug, Clone, Default)]
pub(crate) struct Rr {
    cur: Option<usize>,
}

impl Rr {
    /// The new dest went to the head, so the cursor's position moves one down.
    pub fn dest_added(&mut self) {
        if let Some(i) = &mut self.cur {
            *i += 1;
        }
    }

    /// ip_vs_rr_del_dest: a cursor on the deleted dest steps back to its predecessor.
    pub fn dest_removed(&mut self, idx: usize) {
        if let Some(i) = self.cur {
            if i == idx {
                self.cur = idx.checked_sub(1);
            } else if i > idx {
                self.cur = Some(i - 1);
            }
        }
    }

    /// ip_vs_rr_schedule: the next usable server after the cursor, wrapping once.
    pub fn schedule(
        &mut self,
        list: &[u32],
        dests: &Dests,
        why: Option<&mut String>,
    ) -> Option<u32> {
        let last = self.cur;
        let mut pos = last;
        let mut pass = 0;
        loop {
            let start = pos.map_or(0, |i| i + 1);
            for (i, &id) in list.iter().enumerate().skip(start) {
                if dests.load(id).usable() {
                    self.cur = Some(i);
                    if let Some(w) = why {
                        let _ = write!(
                            w,
                            "{}",
                            last.map_or(
                                "no pick yet: the first server with weight > 0 and not overloaded"
                                    .to_string(),
                                |l| format!(
                                    "the cursor is on position {} (the last pick): the next server after it with weight > 0 and not overloaded, wrapping to the top",
                                    l + 1
                                )
                            )
                        );
                    }
                    return Some(id);
                }
                if Some(i) == last {
                    return nothing(why);
                }
            }
            pos = None;
            pass += 1;
            if pass >= 2 || last.is_none() {
                return nothing(why);
            }
        }
    }
}
