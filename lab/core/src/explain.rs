//! Why a scheduler picked the server it picked.
use std::fmt;
use std::net::SocketAddr;

use serde::Serialize;

use crate::types::Scheduler;

/// One real server as the scheduler saw it, in list order (newest first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Candidate {
    /// The real server.
    pub server: SocketAddr,
    /// Its weight at pick time.
    pub weight: u32,
    /// Active (ESTABLISHED) conns.
    pub active: u32,
    /// Inactive conns.
    pub inactive: u32,
    /// Over its upper threshold.
    pub overloaded: bool,
    /// The load the scheduler compares, written out (`(3+1)/3`), if it compares loads.
    pub load: Option<String>,
}

/// The explanation of one pick.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PickExplain {
    /// The scheduler that decided.
    pub scheduler: Scheduler,
    /// The rule the scheduler follows, in one sentence.
    pub rule: &'static str,
    /// Every server on the service's list, in the order the kernel walks it.
    pub candidates: Vec<Candidate>,
    /// The step that decided (a comparison, a hash bucket, a cursor position).
    pub decision: String,
    /// The server picked, or None when no server was available.
    pub chosen: Option<SocketAddr>,
}

impl fmt::Display for PickExplain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.chosen {
            Some(c) => writeln!(f, "{} picked {c}: {}", self.scheduler, self.rule)?,
            None => writeln!(f, "{} found no server: {}", self.scheduler, self.rule)?,
        }
        writeln!(
            f,
            "  list order (newest first)   weight  active  inactive  load"
        )?;
        for c in &self.candidates {
            let mark = if Some(c.server) == self.chosen {
                "  <- picked"
            } else if c.weight == 0 {
                "  (quiesced)"
            } else if c.overloaded {
                "  (overloaded)"
            } else {
                ""
            };
            writeln!(
                f,
                "    {:<24} {:>6}  {:>6}  {:>8}  {}{}",
                c.server.to_string(),
                c.weight,
                c.active,
                c.inactive,
                c.load.as_deref().unwrap_or("-"),
                mark
            )?;
        }
        write!(f, "  decided by: {}", self.decision)
    }
}
