//! `lvslab test`: run scenarios in parallel labs and compare their packet paths with the
//! reviewed snapshots in `scenarios/snapshots/`.

use anyhow::{bail, Context, Result};
use lvslab_report::Report;
use lvslab_scenario::{junit, suite, Backend, RunnerConfig};
use std::path::{Path, PathBuf};

/// Run scenarios (default: every `scenarios/*.toml`), each in its own lab, and check their
/// packet paths against `scenarios/snapshots/<name>.snap`. A changed path fails and is
/// written beside the old snapshot as `.snap.new`; review it with `cargo insta review`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Scenario names (in the scenarios directory) or paths.
    pub scenarios: Vec<String>,
    /// Labs to run at once.
    #[arg(long, short = 'j', default_value_t = 2)]
    pub jobs: usize,
    /// Write JUnit XML here.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Write an HTML report here: verdicts, each lab drawn, every hop, the scheduler's
    /// picks, snapshot diffs and links to the captures (docs/scenarios.md).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Run every scenario on this backend (userspace or ipvs).
    #[arg(long)]
    pub backend: Option<Backend>,
    /// The scenarios directory (default: `scenarios/` here or in a parent directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Where captures go (default: `captures/` beside the scenarios directory).
    #[arg(long)]
    pub captures: Option<PathBuf>,
    /// Where changed paths are written for review (default: beside the snapshots).
    #[arg(long)]
    pub pending: Option<PathBuf>,
    /// Run only part K of N of the scenarios (e.g. `--shard 2/3`), for a CI matrix of N
    /// machines: sorted by name, every N-th from the K-th, so shards 1/N..N/N together run
    /// each scenario exactly once. Merge their `--junit` files with `lvslab junit-merge`.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<suite::Shard>,
    /// Test-only: run the director with deliberate faults, handed to it through the
    /// `LVSLAB_BREAK` environment variable: `nat-source-rewrite` (a scenario must fail at the
    /// hop it breaks) or `timing[:seed=N,max_ms=M]` (seeded delays and reordering of what
    /// the director sends; paths must not change). Several are separated by commas.
    #[arg(long = "break", value_name = "FAULT")]
    pub break_director: Option<String>,
}

fn find_scenarios_dir() -> Option<PathBuf> {
    let cwd = std::env::current_dir().ok()?;
    cwd.ancestors()
        .map(|a| a.join("scenarios"))
        .find(|d| d.is_dir())
}

/// Run the command.
pub fn run(args: Args) -> Result<()> {
    if let Some(b) = &args.break_director {
        // Refuse a typo here rather than as a director that never starts in every lab.
        b.parse::<lvslab_director::FaultSpec>()
            .with_context(|| format!("--break {b}"))?;
    }
    let dir = match args.dir.clone().or_else(find_scenarios_dir) {
        Some(d) => d,
        None => bail!("no scenarios/ directory here or above\n  help: pass --dir DIR"),
    };
    let mut files = suite::discover(&dir, &args.scenarios).map_err(anyhow::Error::msg)?;
    if files.is_empty() {
        bail!("no scenarios in {}", dir.display());
    }
    if let Some(shard) = args.shard {
        let all = files.len();
        files = suite::shard(&files, shard);
        println!(
            "shard {}/{}: {} of {all} scenarios",
            shard.index,
            shard.count,
            files.len()
        );
        if files.is_empty() {
            // More shards than scenarios: this machine has nothing to do, which is fine.
            if let Some(path) = &args.junit {
                std::fs::write(path, junit::render("lvslab scenarios", &[]))
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            return Ok(());
        }
    }
    let root = dir.parent().unwrap_or(Path::new(".")).to_owned();
    if args.backend == Some(Backend::Ipvs) && !crate::vmlab::host_has_ipvs() {
        if args.html.is_some() {
            // The run happens in the VM and its captures move afterwards: links would break.
            bail!("--html is not available with --backend ipvs on a host without IPVS (the run is in lvslab's VM)\n  help: trace one run directory afterwards: lvslab trace --run captures/LAB/SCENARIO --html FILE");
        }
        let code = crate::vmlab::test(
            args.captures.as_deref(),
            args.junit.as_deref(),
            &args
                .pending
                .clone()
                .unwrap_or_else(|| dir.join("snapshots")),
        )?;
        std::process::exit(code);
    }
    let cfg = RunnerConfig {
        lvslab: std::env::current_exe().context("finding the lvslab executable")?,
        captures_dir: args
            .captures
            .clone()
            .unwrap_or_else(|| root.join("captures")),
        snapshots_dir: dir.join("snapshots"),
        pending_dir: args.pending.clone(),
        backend: args.backend,
        break_director: args.break_director.clone(),
    };
    let t0 = std::time::Instant::now();
    // A failed scenario's captures may tell why, in the trace's words: those findings join
    // its failure list (printed here, and in the JUnit report below).
    let found = std::sync::Mutex::new(std::collections::BTreeMap::new());
    let mut results = suite::run_all(&files, args.jobs, &cfg, &|r| {
        let extra: Vec<String> = crate::diagnose::scenario_findings(r)
            .into_iter()
            .map(|f| format!("trace: {f}"))
            .collect();
        println!("{}", suite::render(r));
        extra.iter().for_each(|f| println!("  - {f}"));
        found
            .lock()
            .map(|mut m| m.insert(r.name.clone(), extra))
            .ok();
    });
    let mut found = found.into_inner().unwrap_or_default();
    for r in &mut results {
        r.failures.extend(found.remove(&r.name).unwrap_or_default());
    }
    let failed = results.iter().filter(|r| !r.passed()).count();
    let skipped = results
        .iter()
        .filter(|r| r.passed() && r.skipped.is_some())
        .count();
    let passed = results.len() - failed - skipped;
    if let Some(path) = &args.junit {
        let cases: Vec<junit::Case> = results
            .iter()
            .map(|r| junit::Case {
                name: r.name.clone(),
                time: r.time,
                failure: (!r.passed()).then(|| r.failures.join("\n")),
                skipped: r.skipped.clone(),
            })
            .collect();
        std::fs::write(path, junit::render("lvslab scenarios", &cases))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.html {
        let report = Report::from_results(&files, &results, args.backend, t0.elapsed());
        lvslab_report::write(&report, path)?;
    }
    println!(
        "\nscenarios: {passed} passed, {failed} failed, {skipped} skipped ({:.1} s)",
        t0.elapsed().as_secs_f64()
    );
    if failed > 0 {
        println!("review changed paths with `cargo insta review` (see docs/scenarios.md)");
        std::process::exit(1);
    }
    Ok(())
}
