//! docs/tutorial.md, run as written (root): every `$ ` command of its ```console blocks, in
//! order, from the repository root, with the lvslab under test first in PATH (so `lvslab`
//! and a nested `lvslab trace -- lvslab request ...` are both this build).
//!
//! The doc's conventions, which this test is the reader of:
//! - a ```console block's lines that start with `$ ` are commands; the lines after a
//!   command are its output as printed (trimmed with `...`), not compared as a whole,
//!   because ports, times and counters of a live lab vary;
//! - `# expect: TEXT` under a command is checked: its stdout+stderr must contain TEXT
//!   (runs of spaces count as one, so column widths do not matter);
//! - ```console fails: each command must exit non-zero (a deliberately broken lab);
//! - ```console vm: needs kernel IPVS (lvslab's VM, `--backend ipvs`); shown, not run;
//! - ```console norun: for another host (e.g. one with IPVS modules); shown, not run.
//!
//! Every lab the tutorial brings up (`lvslab up ... --name LAB`) is taken down by a guard
//! however the test ends, and only those: other tests run their own labs beside this one.
mod support;
use std::path::Path;
use std::process::Command;
use std::time::Instant;
use support::repo;

/// One `$ ` command of the doc.
#[derive(Debug)]
struct DocCommand {
    /// 1-based line in docs/tutorial.md.
    line: usize,
    /// The command as a person types it.
    text: String,
    /// Its block is marked `fails`: it must exit non-zero.
    fails: bool,
    /// `# expect:` texts under it.
    expects: Vec<String>,
}

/// Which kind of block the parser is in.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Block {
    Outside,
    Other,
    Run { fails: bool },
    Shown,
}

/// The runnable commands of the doc, in order, and how many were shown but not run.
fn parse(doc: &str) -> (Vec<DocCommand>, usize) {
    let mut cmds: Vec<DocCommand> = Vec::new();
    let mut shown = 0;
    let mut block = Block::Outside;
    for (i, line) in doc.lines().enumerate() {
        if let Some(info) = line.trim_start().strip_prefix("```") {
            block = match block {
                Block::Outside => {
                    let words: Vec<&str> = info.split_whitespace().collect();
                    match words.first() {
                        Some(&"console") if words.contains(&"vm") || words.contains(&"norun") => {
                            Block::Shown
                        }
                        Some(&"console") => Block::Run {
                            fails: words.contains(&"fails"),
                        },
                        _ => Block::Other,
                    }
                }
                _ => Block::Outside,
            };
            continue;
        }
        match block {
            Block::Run { fails } => {
                if let Some(cmd) = line.strip_prefix("$ ") {
                    cmds.push(DocCommand {
                        line: i + 1,
                        text: cmd.to_owned(),
                        fails,
                        expects: Vec::new(),
                    });
                } else if let Some(e) = line.strip_prefix("# expect: ") {
                    cmds.last_mut()
                        .unwrap_or_else(|| panic!("line {}: # expect before any command", i + 1))
                        .expects
                        .push(e.to_owned());
                }
            }
            Block::Shown if line.starts_with("$ ") => shown += 1,
            _ => {}
        }
    }
    (cmds, shown)
}

/// Runs of whitespace as one space, so `rs1   2` matches `rs1 2`.
fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The labs the tutorial names with `lvslab up ... --name LAB`.
fn tutorial_labs(cmds: &[DocCommand]) -> Vec<String> {
    let mut labs = Vec::new();
    for c in cmds {
        let words: Vec<&str> = c.text.split_whitespace().collect();
        if words.len() > 1 && words[0] == "lvslab" && words[1] == "up" {
            let name = words
                .windows(2)
                .find(|w| w[0] == "--name")
                .map(|w| w[1].to_owned())
                .unwrap_or_else(|| panic!("line {}: name the lab with --name", c.line));
            if !labs.contains(&name) {
                labs.push(name);
            }
        }
    }
    labs
}

/// Takes down the tutorial's labs that are up: before it starts (a run killed halfway
/// leaves them) and however it ends.
struct Guard(Vec<String>);

impl Guard {
    fn sweep(&self) {
        for lab in &self.0 {
            if Path::new("/run/lvslab")
                .join(lab)
                .join("state.json")
                .exists()
            {
                let _ = Command::new(env!("CARGO_BIN_EXE_lvslab"))
                    .args(["down", "--lab", lab])
                    .output();
            }
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.sweep();
    }
}

#[test]
fn parser_reads_the_conventions() {
    let doc =
        "text\n```console\n$ lvslab up nat-topology --name a\nlab a is up\n# expect: is up\n```\n\
               ```console fails\n$ false\n```\n```console vm\n$ lvslab up x --backend ipvs\n```\n\
               ```sh\n$ not a command\n```\n";
    let (cmds, shown) = parse(doc);
    assert_eq!(cmds.len(), 2);
    assert_eq!(cmds[0].text, "lvslab up nat-topology --name a");
    assert_eq!(cmds[0].expects, ["is up"]);
    assert!(!cmds[0].fails && cmds[1].fails);
    assert_eq!(shown, 1);
    assert_eq!(tutorial_labs(&cmds), ["a"]);
}

#[test]
fn tutorial_runs_as_written() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "the tutorial builds network namespaces and must run as root (sudo ./scripts/test)"
    );
    let root = repo();
    let doc = std::fs::read_to_string(root.join("docs/tutorial.md")).expect("docs/tutorial.md");
    let (cmds, shown) = parse(&doc);
    // A parser that found nothing would pass vacuously.
    assert!(cmds.len() >= 30, "only {} commands found", cmds.len());
    assert!(
        shown > 0,
        "the kernel-IPVS commands should be shown (```console vm)"
    );
    let guard = Guard(tutorial_labs(&cmds));
    assert!(guard.0.len() >= 4, "labs: {:?}", guard.0);
    guard.sweep();

    let bin = Path::new(env!("CARGO_BIN_EXE_lvslab"))
        .parent()
        .expect("bin dir")
        .to_owned();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let t0 = Instant::now();
    for c in &cmds {
        let t = Instant::now();
        // `timeout` keeps one stuck command from holding the whole suite.
        let out = Command::new("timeout")
            .args(["120", "bash", "-c", &c.text])
            .current_dir(&root)
            .env("PATH", &path)
            .env("NO_COLOR", "1")
            .output()
            .expect("run bash");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let shown = || format!("docs/tutorial.md:{}: $ {}\n{text}", c.line, c.text);
        if c.fails {
            assert!(
                !out.status.success(),
                "expected to fail, but succeeded:\n{}",
                shown()
            );
        } else {
            assert!(out.status.success(), "{}\n{}", out.status, shown());
        }
        let flat = squash(&text);
        for e in &c.expects {
            assert!(
                flat.contains(&squash(e)),
                "expected {e:?} in the output of\n{}",
                shown()
            );
        }
        eprintln!(
            "ok {:>6.2} s  docs/tutorial.md:{}: {}",
            t.elapsed().as_secs_f64(),
            c.line,
            c.text
        );
    }
    eprintln!(
        "tutorial: {} commands in {:.1} s ({shown} shown, not run)",
        cmds.len(),
        t0.elapsed().as_secs_f64()
    );
    drop(guard);
}
