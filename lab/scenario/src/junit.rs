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

/// Why JUnit files could not be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// An input is not a JUnit document.
    #[error("{file}: not a JUnit XML file (no <testsuite>)")]
    NotJunit {
        /// The input's name.
        file: String,
    },
    /// A testcase element does not end.
    #[error("{file}: a <testcase> element at byte {at} does not end")]
    Unterminated {
        /// The input's name.
        file: String,
        /// Where it starts.
        at: usize,
    },
    /// The same test ran in two inputs: shards that overlap.
    #[error("{name} is in both {first} and {second}: the shards overlap (each scenario must run in exactly one; give every machine the same --shard N)")]
    Duplicate {
        /// The test's name.
        name: String,
        /// The first input that has it.
        first: String,
        /// The second.
        second: String,
    },
}

/// The value of attribute `key` in an element's opening tag (as `render` writes them).
fn attr<'a>(tag: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!(" {key}=\"");
    let start = tag.find(&pat)? + pat.len();
    let len = tag[start..].find('"')?;
    Some(&tag[start..start + len])
}

/// Merges JUnit documents (`(name, text)`, e.g. one per CI shard) into one testsuite named
/// `suite`: every testcase element is kept as written, the totals are counted again.
pub fn merge(suite: &str, inputs: &[(String, String)]) -> Result<String, MergeError> {
    let mut cases: Vec<String> = Vec::new();
    let mut seen: std::collections::HashMap<String, String> = Default::default();
    let (mut failures, mut skipped, mut total) = (0usize, 0usize, 0f64);
    for (file, text) in inputs {
        if !text.contains("<testsuite") {
            return Err(MergeError::NotJunit { file: file.clone() });
        }
        let mut rest = 0;
        while let Some(off) = text[rest..].find("<testcase") {
            let at = rest + off;
            let unterminated = || MergeError::Unterminated {
                file: file.clone(),
                at,
            };
            // Attribute values escape '>', so the first one ends the opening tag.
            let open_end = at + text[at..].find('>').ok_or_else(unterminated)? + 1;
            let tag = &text[at..open_end];
            let end = if tag.ends_with("/>") {
                open_end
            } else {
                let close = "</testcase>";
                open_end + text[open_end..].find(close).ok_or_else(unterminated)? + close.len()
            };
            let block = &text[at..end];
            let name = attr(tag, "name").unwrap_or_default().to_owned();
            if let Some(first) = seen.insert(name.clone(), file.clone()) {
                return Err(MergeError::Duplicate {
                    name,
                    first,
                    second: file.clone(),
                });
            }
            total += attr(tag, "time")
                .and_then(|t| t.parse::<f64>().ok())
                .unwrap_or(0.0);
            failures += usize::from(block.contains("<failure") || block.contains("<error"));
            skipped += usize::from(block.contains("<skipped"));
            cases.push(block.to_owned());
            rest = end;
        }
    }
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites tests=\"{}\" failures=\"{failures}\" time=\"{total:.3}\">",
        cases.len()
    );
    let _ = writeln!(
        x,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{total:.3}\">",
        escape(suite),
        cases.len()
    );
    for c in cases {
        let _ = writeln!(x, "    {c}");
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(name: &str, ms: u64, failure: Option<&str>, skipped: Option<&str>) -> Case {
        Case {
            name: name.into(),
            time: Duration::from_millis(ms),
            failure: failure.map(Into::into),
            skipped: skipped.map(Into::into),
        }
    }

    #[test]
    fn shards_merge_into_one_suite_with_every_case_once() {
        let a = render(
            "lvslab scenarios",
            &[
                case("dr-rr", 1000, None, None),
                case("nat-rr", 500, Some("path <differs>\nat hop 2"), None),
            ],
        );
        let b = render(
            "lvslab scenarios",
            &[case(
                "ha-failover",
                250,
                None,
                Some("runs on userspace only"),
            )],
        );
        let c = render("lvslab scenarios", &[]);
        let m = merge(
            "lvslab scenarios",
            &[
                ("1.xml".into(), a),
                ("2.xml".into(), b),
                ("3.xml".into(), c),
            ],
        )
        .expect("merges");
        assert!(
            m.contains("<testsuites tests=\"3\" failures=\"1\" time=\"1.750\">"),
            "{m}"
        );
        assert!(m.contains("skipped=\"1\""), "{m}");
        for n in ["dr-rr", "nat-rr", "ha-failover"] {
            assert_eq!(m.matches(&format!("name=\"{n}\"")).count(), 1, "{m}");
        }
        assert!(
            m.contains("path &lt;differs&gt;\nat hop 2</failure>"),
            "{m}"
        );
        // The merge of a merge is the same document: nothing is lost on the way.
        let again = merge("lvslab scenarios", &[("m.xml".into(), m.clone())]).expect("merges");
        assert_eq!(again, m);
    }

    #[test]
    fn overlapping_shards_and_other_files_are_refused() {
        let a = render("s", &[case("nat-rr", 1, None, None)]);
        let e = merge("s", &[("1.xml".into(), a.clone()), ("2.xml".into(), a)])
            .expect_err("duplicate")
            .to_string();
        assert!(
            e.contains("nat-rr") && e.contains("1.xml") && e.contains("2.xml"),
            "{e}"
        );
        let e = merge("s", &[("x.txt".into(), "hello".into())]).expect_err("not junit");
        assert!(e.to_string().contains("x.txt"), "{e}");
        let e = merge(
            "s",
            &[("t.xml".into(), "<testsuite><testcase name=\"a\">".into())],
        )
        .expect_err("cut short");
        assert!(e.to_string().contains("does not end"), "{e}");
    }

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
