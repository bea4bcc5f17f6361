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

/// One part of a suite split across machines: shard `index` (1-based) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Which shard, 1 to `count`.
    pub index: usize,
    /// How many shards.
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;

    /// `K/N`, e.g. `2/3`.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("--shard {s:?}: write K/N with 1 <= K <= N, e.g. 2/3");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = k.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if index == 0 || count == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

/// The scenarios shard `shard` runs: sorted by name, every `count`-th from the `index`-th.
/// Sorted order (not the order given, not a hash) so every machine of a CI matrix computes
/// the same split from the same directory, and the shards differ in size by at most one.
pub fn shard(files: &[PathBuf], shard: Shard) -> Vec<PathBuf> {
    let mut sorted: Vec<&PathBuf> = files.iter().collect();
    sorted.sort_by_key(|p| (crate::Scenario::name_of(p), (*p).clone()));
    sorted.dedup();
    sorted
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % shard.count == shard.index - 1)
        .map(|(_, p)| p.clone())
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn shipped() -> Vec<PathBuf> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
        let files = discover(&dir, &[]).expect("the shipped scenarios directory");
        assert!(files.len() > 30, "found only {} scenarios", files.len());
        files
    }

    #[test]
    fn every_shipped_scenario_runs_in_exactly_one_shard() {
        let files = shipped();
        for n in 1..=5 {
            let mut seen: BTreeMap<PathBuf, usize> = BTreeMap::new();
            let mut sizes = Vec::new();
            for k in 1..=n {
                let part = shard(&files, Shard { index: k, count: n });
                sizes.push(part.len());
                for p in part {
                    *seen.entry(p).or_default() += 1;
                }
            }
            assert_eq!(
                seen.len(),
                files.len(),
                "N={n}: some scenario ran in no shard"
            );
            assert!(seen.values().all(|c| *c == 1), "N={n}: {seen:?}");
            let (lo, hi) = (sizes.iter().min(), sizes.iter().max());
            assert!(
                hi.zip(lo).is_some_and(|(h, l)| h - l <= 1),
                "N={n}: {sizes:?}"
            );
        }
    }

    #[test]
    fn the_split_does_not_depend_on_the_order_given() {
        let files = shipped();
        let mut reversed = files.clone();
        reversed.reverse();
        for k in 1..=3 {
            let s = Shard { index: k, count: 3 };
            assert_eq!(shard(&files, s), shard(&reversed, s));
        }
    }

    #[test]
    fn shard_specs_parse_or_say_how_to_write_them() {
        assert_eq!("2/3".parse(), Ok(Shard { index: 2, count: 3 }));
        assert_eq!("1/1".parse(), Ok(Shard { index: 1, count: 1 }));
        for bad in ["0/3", "4/3", "3", "a/b", "1/0", ""] {
            let e = bad.parse::<Shard>().expect_err(bad);
            assert!(e.contains("K/N"), "{e}");
        }
    }
}
