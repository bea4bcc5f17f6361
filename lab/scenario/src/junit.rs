//! JUnit XML for CI systems: one testsuite, one testcase per scenario.

use std::fmt::Write as _;
use std::time::Duration;

/// One scenario's result.
#[derive(Debug, Clone)]
pub struct Case {
    /// Scenario name.
    pub name: String,
    /// Wall time.
    pub time: Duration,
    /// `None` when it passed, else the failure text.
    pub failure: Option<String>,
    /// Why it was not run, when it was skipped.
    pub skipped: Option<String>,
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 forbids most control characters even escaped.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

/// Renders the cases as a JUnit XML document.
pub fn render(suite: &str, cases: &[Case]) -> String {
    let failures = cases.iter().filter(|c| c.failure.is_some()).count();
    let total: f64 = cases.iter().map(|c| c.time.as_secs_f64()).sum();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites tests=\"{}\" failures=\"{failures}\" time=\"{total:.3}\">",
        cases.len()
    );
    let _ = writeln!(
        x,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" time=\"{total:.3}\">",
        escape(suite),
        cases.len()
    );
    for c in cases {
        let _ = write!(
            x,
            "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
            escape(suite),
            escape(&c.name),
            c.time.as_secs_f64()
        );
        match &c.failure {
            None if c.skipped.is_some() => {
                let why = c.skipped.as_deref().unwrap_or_default();
                let _ = writeln!(
                    x,
                    ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                    escape(why)
                );
            }
            None => x.push_str("/>\n"),
            Some(f) => {
                let first = f.lines().next().unwrap_or("failed");
                let _ = writeln!(
                    x,
                    ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>",
                    escape(first),
                    escape(f)
                );
            }
        }
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_counted_and_escaped() {
        let x = render(
            "lvslab",
            &[
                Case {
                    name: "nat-rr".into(),
                    time: Duration::from_millis(1500),
                    failure: None,
                    skipped: None,
                },
                Case {
                    name: "dr-rr".into(),
                    time: Duration::from_millis(10),
                    failure: Some("path differs at <director:eth1> & more".into()),
                    skipped: None,
                },
            ],
        );
        assert!(x.contains("tests=\"2\" failures=\"1\""));
        assert!(x.contains("name=\"nat-rr\" time=\"1.500\"/>"));
        assert!(x.contains("&lt;director:eth1&gt; &amp; more"));
    }
}
