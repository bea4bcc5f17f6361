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

impl PickExplain {
    /// The same explanation with every server address mapped by `f` (in the candidates, the
    /// pick and the decision text), so one server is written one way throughout.
    pub fn with_server_addrs(mut self, f: impl Fn(SocketAddr) -> SocketAddr) -> Self {
        for c in &mut self.candidates {
            let to = f(c.server);
            if to != c.server {
                self.decision =
                    replace_addr(&self.decision, &c.server.to_string(), &to.to_string());
                c.server = to;
            }
        }
        self.chosen = self.chosen.map(&f);
        self
    }
}

/// Replace whole address tokens only: `10.0.0.1:0` must not match inside `110.0.0.1:0` or
/// `10.0.0.1:00`.
fn replace_addr(text: &str, from: &str, to: &str) -> String {
    let addr_char = |c: char| c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(from) {
        let (before, after) = (&rest[..i], &rest[i + from.len()..]);
        let prev = before.chars().last().or_else(|| out.chars().last());
        let clean = !prev.is_some_and(addr_char)
            && !after.chars().next().is_some_and(|c| c.is_ascii_digit());
        out.push_str(before);
        out.push_str(if clean { to } else { from });
        rest = after;
    }
    out.push_str(rest);
    out
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

#[cfg(test)]
mod tests {
    use super::replace_addr;

    #[test]
    fn only_whole_addresses_are_replaced() {
        let t = "10.0.0.1:0 vs 110.0.0.1:0 vs 10.0.0.1:00, [10.0.0.1:0]";
        assert_eq!(
            replace_addr(t, "10.0.0.1:0", "10.0.0.1:80"),
            "10.0.0.1:80 vs 110.0.0.1:0 vs 10.0.0.1:00, [10.0.0.1:0]"
        );
    }
}
