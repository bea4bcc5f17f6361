//! lvslab-report: one self-contained HTML page for a run of `lvslab test` (or for one run
//! directory of `lvslab capture --out` / `lvslab trace`).
//!
//! The page needs nothing but a browser: the CSS and the topology pictures are inline, there
//! is no script and no external URL, and every text taken from a run is escaped. Per
//! scenario it shows the verdict and its reasons, the description, the lab drawn by
//! lvslab-diagram with the first connection's hops over it, each connection's hops as a
//! table with lvslab-trace's "what changed and why" between them, the scheduler's picks, the
//! snapshot diff when the path changed, and relative links to the captures.
//!
//! Nothing here runs the lvslab binary or a lab: the data comes from the runner's
//! [`ScenarioResult`]s and from run directories on disk. The same data always gives the same
//! page; only the run's own times differ between runs.
//!
//! - [`Report::from_results`] / [`Report::from_run_dir`]: gather;
//! - [`render`] / [`write`]: the HTML.

mod html;

use lvslab_capture::{analyze, files::MERGED_NAME, NormalizeOptions, RoleMap};
use lvslab_netns::{Backend, Topology};
use lvslab_scenario::runner::{scenario_topology, TOPOLOGY_FILE};
use lvslab_scenario::snapshot::Outcome;
use lvslab_scenario::{Scenario, ScenarioResult};
use lvslab_trace::{load_run, trace_report, Pick, Trace, TraceError};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use html::render;

/// Errors gathering or writing a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The run directory could not be traced.
    #[error(transparent)]
    Trace(#[from] TraceError),
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The whole page: a summary and one section per scenario (or run directory).
#[derive(Debug, Clone)]
pub struct Report {
    /// The page's heading, e.g. `lvslab test`.
    pub title: String,
    /// The backend the run used (`userspace`, `ipvs`, or several named).
    pub backend: String,
    /// The run's wall time, when it was timed.
    pub time: Option<Duration>,
    /// One per scenario, in the run's order.
    pub sections: Vec<Section>,
}

/// A scenario's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every expectation held and the path equals its snapshot.
    Pass,
    /// Something failed (the section's reasons say what).
    Fail,
    /// Not run on this backend.
    Skip,
}

impl Verdict {
    /// `pass`, `fail` or `skip` (also the CSS class).
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Skip => "skip",
        }
    }
}

/// One scenario (or one run directory, which has no verdict).
#[derive(Debug, Clone)]
pub struct Section {
    /// The scenario's name (or the run directory's).
    pub name: String,
    /// Its verdict; `None` for a run directory, which nothing judged.
    pub verdict: Option<Verdict>,
    /// Why it failed or was skipped, one entry per problem.
    pub reasons: Vec<String>,
    /// The scenario's description.
    pub description: Option<String>,
    /// The backend it ran on.
    pub backend: Option<String>,
    /// Its wall time.
    pub time: Option<Duration>,
    /// The lab it ran in (with the scenario's overrides), for the picture.
    pub topology: Option<Topology>,
    /// The snapshot comparison, when it got that far.
    pub snapshot: Option<Outcome>,
    /// What its captures tell, or why they could not be read; `None`: nothing captured.
    pub run: Option<Result<RunView, String>>,
}

/// A run directory, traced: every connection's story, the picks and the files to link.
#[derive(Debug, Clone)]
pub struct RunView {
    /// The directory (absolute when it could be made so, for the links).
    pub dir: PathBuf,
    /// Every conversation, in path-text order.
    pub traces: Vec<Trace>,
    /// The director's explained picks, oldest first.
    pub picks: Vec<Pick>,
    /// The directory's files, relative to it: the merged pcapng first, then by name.
    pub files: Vec<PathBuf>,
}

impl RunView {
    /// Reads and traces a run directory (as `lvslab trace --run DIR` does); without
    /// `roles.txt` in it, `fallback_roles` names the addresses.
    pub fn load(dir: &Path, fallback_roles: Option<RoleMap>) -> Result<RunView, ReportError> {
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
        let run = load_run(&dir, fallback_roles)?;
        let paths = analyze(&run.captures, &run.roles, NormalizeOptions::default());
        let traces = trace_report(&paths, &run.roles, &run.picks, None)?;
        let mut files = list_files(&dir, Path::new(""))?;
        // The merged capture is the one to open first: every hop in one file.
        files.sort_by_key(|f| (f != Path::new(MERGED_NAME), f.clone()));
        Ok(RunView {
            dir,
            traces,
            picks: run.picks,
            files,
        })
    }

    /// How many hop rows the page shows for this run: every sighting of every packet.
    pub fn hop_count(&self) -> usize {
        self.traces
            .iter()
            .flat_map(|t| &t.packets)
            .map(|p| p.hops.len())
            .sum()
    }
}

/// Files under `dir/rel`, relative to `dir`, one level of subdirectories deep (`logs/`).
fn list_files(dir: &Path, rel: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let here = dir.join(rel);
    let entries = std::fs::read_dir(&here).map_err(|source| ReportError::Io {
        path: here.clone(),
        source,
    })?;
    let mut out = Vec::new();
    for e in entries.flatten() {
        let name = rel.join(e.file_name());
        match e.file_type() {
            Ok(t) if t.is_dir() && rel.as_os_str().is_empty() => {
                out.extend(list_files(dir, &name)?)
            }
            Ok(t) if t.is_file() => out.push(name),
            _ => {}
        }
    }
    out.sort();
    Ok(out)
}

/// The topology a run directory saved (`topology.toml`, written by the scenario runner,
/// `lvslab capture --out` and `lvslab trace`), named after the directory.
pub fn saved_topology(dir: &Path) -> Option<Topology> {
    let mut t = Topology::load(dir.join(TOPOLOGY_FILE)).ok()?;
    // The file's stem would name it "topology"; the run directory says more.
    if let Some(n) = dir.file_name() {
        t.name = n.to_string_lossy().into_owned();
    }
    Some(t)
}

impl Report {
    /// The report of a `lvslab test` run: `files` are the scenario files run (each result is
    /// matched to its file by name), `backend` the run's `--backend` (None: each scenario's
    /// own), `time` the run's wall time.
    pub fn from_results(
        files: &[PathBuf],
        results: &[ScenarioResult],
        backend: Option<Backend>,
        time: Duration,
    ) -> Report {
        let sections: Vec<Section> = results
            .iter()
            .map(|r| {
                let file = files.iter().find(|f| Scenario::name_of(f) == r.name);
                section_of(file.map(PathBuf::as_path), r, backend)
            })
            .collect();
        let mut backends: Vec<String> = sections.iter().filter_map(|s| s.backend.clone()).collect();
        backends.sort();
        backends.dedup();
        Report {
            title: "lvslab test".to_owned(),
            backend: match backend {
                Some(b) => b.to_string(),
                None if backends.is_empty() => "-".to_owned(),
                None => backends.join(", "),
            },
            time: Some(time),
            sections,
        }
    }

    /// The report of one run directory; `topology` and `roles` stand in for what the
    /// directory did not save (e.g. those of the lab that is up).
    pub fn from_run_dir(
        dir: &Path,
        topology: Option<Topology>,
        roles: Option<RoleMap>,
    ) -> Result<Report, ReportError> {
        let run = RunView::load(dir, roles)?;
        let name = run
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| run.dir.display().to_string());
        let topology = saved_topology(&run.dir).or(topology);
        Ok(Report {
            title: format!("lvslab run {}", run.dir.display()),
            backend: if run.picks.is_empty() {
                "not recorded".to_owned()
            } else {
                // Only the userspace director explains its picks.
                "userspace".to_owned()
            },
            time: None,
            sections: vec![Section {
                name,
                verdict: None,
                reasons: Vec::new(),
                description: None,
                backend: None,
                time: None,
                topology,
                snapshot: None,
                run: Some(Ok(run)),
            }],
        })
    }

    /// How many scenarios have this verdict.
    pub fn count(&self, v: Verdict) -> usize {
        self.sections
            .iter()
            .filter(|s| s.verdict == Some(v))
            .count()
    }
}

fn section_of(file: Option<&Path>, r: &ScenarioResult, backend: Option<Backend>) -> Section {
    let scenario = file.and_then(|f| Scenario::load(f).ok());
    let verdict = if !r.passed() {
        Verdict::Fail
    } else if r.skipped.is_some() {
        Verdict::Skip
    } else {
        Verdict::Pass
    };
    let mut reasons = r.failures.clone();
    if let (Verdict::Skip, Some(why)) = (verdict, &r.skipped) {
        reasons.push(why.clone());
    }
    // The scenario's own topology names the picture as the file does (`nat-topology`);
    // the copy in the run directory is for when the scenario file is gone.
    let topology = file
        .zip(scenario.as_ref())
        .and_then(|(f, s)| {
            let mut t = scenario_topology(f, s).ok()?;
            t.name = s.topology.clone();
            Some(t)
        })
        .or_else(|| r.captures.as_deref().and_then(saved_topology));
    Section {
        name: r.name.clone(),
        verdict: Some(verdict),
        reasons,
        description: scenario.as_ref().map(|s| s.description.clone()),
        backend: scenario
            .as_ref()
            .map(|s| backend.unwrap_or(s.backend).to_string()),
        time: Some(r.time),
        topology,
        snapshot: r.snapshot.clone(),
        run: r
            .captures
            .as_deref()
            .map(|d| RunView::load(d, None).map_err(|e| e.to_string())),
    }
}

/// Renders `report` and writes it to `path` (the links to the captures are relative to
/// `path`'s directory).
pub fn write(report: &Report, path: &Path) -> Result<(), ReportError> {
    std::fs::write(path, render(report, path)).map_err(|source| ReportError::Io {
        path: path.to_owned(),
        source,
    })
}
