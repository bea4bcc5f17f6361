//! Running many scenarios: file discovery, parallel labs, the readable report.

use crate::runner::{self, RunnerConfig, ScenarioResult};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

/// The scenario files to run: the given names or paths, or every `*.toml` in `dir`.
pub fn discover(dir: &Path, wanted: &[String]) -> Result<Vec<PathBuf>, String> {
    if wanted.is_empty() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        v.sort();
        return Ok(v);
    }
    wanted
        .iter()
        .map(|w| {
            let p = Path::new(w);
            if p.is_file() {
                return Ok(p.to_owned());
            }
            let cand = dir.join(format!("{}.toml", w.trim_end_matches(".toml")));
            if cand.is_file() {
                Ok(cand)
            } else {
                Err(format!(
                    "no scenario {w:?} (looked for {} and {})\n  help: name a scenario file, or one of {}*.toml by its name without .toml",
                    p.display(),
                    cand.display(),
                    dir.join("").display()
                ))
            }
        })
        .collect()
}

/// Runs `files` on up to `jobs` labs at once; `on_done` sees each result as it finishes.
/// Results come back in file order.
pub fn run_all(
    files: &[PathBuf],
    jobs: usize,
    cfg: &RunnerConfig,
    on_done: &(dyn Fn(&ScenarioResult) + Sync),
) -> Vec<ScenarioResult> {
    let next = Mutex::new(0usize);
    let results: Mutex<Vec<Option<ScenarioResult>>> =
        Mutex::new(files.iter().map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..jobs.clamp(1, files.len().max(1)) {
            s.spawn(|| loop {
                let i = {
                    let mut n = next.lock().unwrap_or_else(PoisonError::into_inner);
                    let i = *n;
                    *n += 1;
                    i
                };
                let Some(path) = files.get(i) else { break };
                let name = crate::Scenario::name_of(path);
                let r = runner::run(path, &runner::lab_name(&name, i), cfg);
                on_done(&r);
                results.lock().unwrap_or_else(PoisonError::into_inner)[i] = Some(r);
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner)
        .into_iter()
        .flatten()
        .collect()
}

/// One scenario's result as the terminal shows it.
pub fn render(r: &ScenarioResult) -> String {
    if let (Some(why), true) = (&r.skipped, r.passed()) {
        return format!("skip {} ({why})", r.name);
    }
    let mut s = format!(
        "{} {} ({:.1} s)",
        if r.passed() { "ok  " } else { "FAIL" },
        r.name,
        r.time.as_secs_f64()
    );
    for f in &r.failures {
        for (k, line) in f.lines().enumerate() {
            s.push_str(if k == 0 { "\n  - " } else { "\n    " });
            s.push_str(line);
        }
    }
    if let (false, Some(c)) = (r.passed(), &r.captures) {
        s.push_str(&format!("\n  captures: {}", c.display()));
    }
    s
}
