//! lvslab-simk: `lvslab simulate` scripts run on the kernel's IPVS with real connections.
//!
//! [`run_kernel`] lays out a throw-away namespace lab for a script ([`plan`]), applies its
//! ipvsadm lines through generic netlink inside the director namespace, drives every
//! connection step with real sockets from the client namespace, and reads the server the
//! kernel picked from its connection table. It returns the same [`StepReport`]s as the
//! userspace [`Sim`], so the two backends print alike and [`compare`] can line them up.
//!
//! Policy where the kernel cannot do what the script says:
//! - DR and TUN real servers run as NAT (the pick does not depend on the method); each one
//!   is listed in [`plan::Plan::converted`] for the caller to say so.
//! - time is real: a `sleep` longer than [`KernelOptions::max_sleep`] stops the run
//!   ([`Outcome::Stopped`]); Linux 6.1 has no knob that shortens TIME_WAIT (120 s) or the
//!   lblc/lblcr cache sweep (every 30 min) on both backends alike.
//! - `mark N` is an nftables rule per flow in the director; where the kernel has no
//!   nf_tables the marked flows start on the director with SO_MARK instead ([`MarkMode`]).
//! - a scheduler the kernel lacks (twos before Linux 6.2) is [`Error::NoScheduler`].
//!
//! Where it runs: on whatever kernel the calling process sees ([`check_host`] says whether
//! it has IPVS). On a host without IPVS the caller runs `lvslab simulate --backend ipvs
//! --here FILE` inside lvslab's VM, which lands here; [`run_kernel`] is the whole boundary,
//! and its `--json` lines carry the line numbers a caller on the host needs to rebuild the
//! reports from the script it already parsed.
use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use lvslab_core::sim::{Event, Flow, ScriptLine, Sim, SimError, Step, StepReport};
use lvslab_core::{IpvsCommand, IpvsConfig, Protocol};
use lvslab_ipvs_nl::KernelIpvs;

pub mod client;
pub mod lab;
pub mod plan;

pub use lab::{MarkMode, SimLab};
pub use plan::{plan, Plan, PlanError};

/// What can stop a kernel run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// This kernel has no IPVS; says where the kernel backend runs instead.
    #[error("{0}")]
    NoKernelIpvs(String),
    /// The script cannot be laid out as a lab.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// A script line that cannot run (same messages as the userspace backend).
    #[error(transparent)]
    Script(#[from] SimError),
    /// The kernel lacks a scheduler the script asks for.
    #[error("line {line}: kernel IPVS on Linux {release} has no `{scheduler}` scheduler{hint}; this script cannot run on the kernel backend (the userspace backend runs it)")]
    NoScheduler {
        /// Script line.
        line: usize,
        /// Its name.
        scheduler: String,
        /// `uname -r`.
        release: String,
        /// When it came, if known.
        hint: &'static str,
    },
    /// The kernel refused an ipvsadm line.
    #[error("line {line}: {source}")]
    Apply {
        /// Script line.
        line: usize,
        /// The kernel's answer.
        #[source]
        source: lvslab_ipvs_nl::Error,
    },
    /// Talking to kernel IPVS failed.
    #[error(transparent)]
    Ipvs(#[from] lvslab_ipvs_nl::Error),
    /// Building or running the namespace lab failed.
    #[error("{0}")]
    Lab(String),
    /// A connection step did not go as a working lab would let it.
    #[error("{0}")]
    Step(String),
    /// A step failed; names the line.
    #[error("line {line}: {message}")]
    AtLine {
        /// Script line.
        line: usize,
        /// What went wrong.
        message: String,
    },
    /// Ctrl-C, SIGTERM or SIGHUP arrived; the lab was taken down.
    #[error("interrupted; the throw-away lab was taken down")]
    Interrupted,
}

/// How a kernel run goes.
pub struct KernelOptions<'a> {
    /// The longest `sleep` waited out in real time; a longer one stops the run.
    pub max_sleep: Duration,
    /// How long one connection step may take before it is an error.
    pub step_timeout: Duration,
    /// Polled between steps and during sleeps: true ends the run ([`Error::Interrupted`]).
    pub interrupted: Option<&'a (dyn Fn() -> bool + Sync)>,
}

impl Default for KernelOptions<'_> {
    fn default() -> Self {
        KernelOptions {
            max_sleep: Duration::from_secs(DEFAULT_MAX_SLEEP_SECS),
            step_timeout: Duration::from_secs(10),
            interrupted: None,
        }
    }
}

/// The default `--max-sleep`: covers a reset conn's 10 s CLOSE, not TIME_WAIT's 120 s.
pub const DEFAULT_MAX_SLEEP_SECS: u64 = 15;

/// Whether a run reached the end of its script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every line ran.
    Complete,
    /// The run stopped before `line`; the rest of the script was not run.
    Stopped {
        /// The first line not run.
        line: usize,
        /// Why, in words for the user.
        reason: String,
    },
}

/// The reports of a kernel run and how it ended.
#[derive(Debug, Clone)]
pub struct KernelRun {
    /// One per connection step, in order.
    pub reports: Vec<StepReport>,
    /// Complete or stopped.
    pub outcome: Outcome,
    /// What the kernel run did differently from the script, for the user (stderr).
    pub notes: Vec<String>,
}

/// Whether this kernel has IPVS, and if not, where the kernel backend runs.
pub fn check_host() -> Result<(), Error> {
    if std::path::Path::new("/proc/net/ip_vs").exists() {
        return Ok(());
    }
    // Opening the generic netlink family may load the module where that is allowed.
    if KernelIpvs::open().is_ok() && std::path::Path::new("/proc/net/ip_vs").exists() {
        return Ok(());
    }
    Err(Error::NoKernelIpvs(format!(
        "this host's kernel (Linux {}) has no IPVS (/proc/net/ip_vs is missing and the \"IPVS\" netlink family cannot be opened)\n  \
         help: the kernel backend runs inside lvslab's micro-VM (Debian's 6.1 kernel with ip_vs): \
         `lvslab vm run -- lvslab simulate --backend ipvs --here FILE`; `--backend ipvs` will start the VM by itself once it is wired in",
        kernel_release()
    )))
}

/// `uname -r`.
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "(unknown)".into())
}

/// The script as the kernel runs it: DR/TUN real servers as NAT. [`compare`] runs the core
/// on this too, so both sides see the same methods.
pub fn kernel_lines(lines: &[ScriptLine]) -> Vec<ScriptLine> {
    lines
        .iter()
        .map(|l| match &l.step {
            Step::Ipvsadm(c) => ScriptLine {
                step: Step::Ipvsadm(plan::kernel_command(c).0),
                ..l.clone()
            },
            _ => l.clone(),
        })
        .collect()
}

fn rerun_hint(d: Duration) -> String {
    let secs = d.as_secs_f64().ceil();
    if secs <= 3600.0 {
        format!("rerun with --max-sleep {secs} to wait it out")
    } else {
        format!(
            "waiting it out (--max-sleep {secs}) would take {:.1} hours",
            secs / 3600.0
        )
    }
}

struct Held {
    flow: Flow,
    stream: Option<TcpStream>,
}

fn apply_error(line: usize, cmd: &IpvsCommand, e: lvslab_ipvs_nl::Error) -> Error {
    if let (
        IpvsCommand::AddService(s) | IpvsCommand::EditService(s),
        lvslab_ipvs_nl::Error::Kernel { errno: 2, .. },
    ) = (cmd, &e)
    {
        let name = s.scheduler.name();
        return Error::NoScheduler {
            line,
            scheduler: name.to_string(),
            release: kernel_release(),
            hint: if name == "twos" {
                " (ip_vs_twos came in Linux 6.2)"
            } else {
                " (its ip_vs module is missing)"
            },
        };
    }
    Error::Apply { line, source: e }
}

fn report(l: &ScriptLine, event: Event, flow: &Flow, server: Option<SocketAddr>) -> StepReport {
    StepReport {
        line: l.line,
        event,
        client: flow.client,
        vip: flow.vip,
        server,
        kernel: l.kernel,
        explain: None,
    }
}

/// Run a parsed script on kernel IPVS in a throw-away lab. `on_report` sees each report as
/// it is made and may end the run early ([`ControlFlow::Break`]).
pub fn run_kernel(
    lines: &[ScriptLine],
    opts: &KernelOptions<'_>,
    on_report: &mut dyn FnMut(&StepReport) -> ControlFlow<()>,
) -> Result<KernelRun, Error> {
    check_host()?;
    if !nix::unistd::Uid::effective().is_root() {
        return Err(Error::Lab(
            "the kernel backend builds network namespaces: run it as root".into(),
        ));
    }
    let plan = plan::plan(lines)?;
    let lab = SimLab::up(&plan)?;
    let mut notes = Vec::new();
    if lab.marks == MarkMode::LocalClient {
        notes.push("this kernel has no nf_tables: `mark N` flows start on the director itself from a socket with SO_MARK N, and IPVS schedules them as local clients (at LOCAL_OUT); the pick does not depend on where the SYN comes from".to_string());
    }
    let mut ipvs = lab.in_director(KernelIpvs::open)??;
    // Declared after the lab so held sockets close before the lab goes down.
    let mut held: HashMap<String, Held> = HashMap::new();
    let mut reports = Vec::new();
    let t = opts.step_timeout;
    let interrupted = || opts.interrupted.is_some_and(|f| f());
    let at = |line: usize| {
        move |e: Error| Error::AtLine {
            line,
            message: e.to_string(),
        }
    };
    for l in lines {
        if interrupted() {
            return Err(Error::Interrupted);
        }
        let flow_of = |s: &Step| match s {
            Step::Conn { flow, .. } | Step::Open { flow, .. } => Some(*flow),
            _ => None,
        };
        if let (Some(f), MarkMode::Unavailable(why)) = (flow_of(&l.step), &lab.marks) {
            if f.fwmark != 0 {
                return Ok(KernelRun {
                    reports,
                    outcome: Outcome::Stopped {
                        line: l.line,
                        reason: format!(
                            "line {}: `mark {}` cannot be given to the packets: {why}; this step and the rest of the script cannot be compared",
                            l.line, f.fwmark
                        ),
                    },
                    notes,
                });
            }
        }
        let r = match &l.step {
            Step::Ipvsadm(cmd) => {
                let (k, _) = plan::kernel_command(cmd);
                ipvs.apply(&k).map_err(|e| apply_error(l.line, cmd, e))?;
                None
            }
            Step::Sleep(d) => {
                if *d > opts.max_sleep {
                    return Ok(KernelRun {
                        reports,
                        notes,
                        outcome: Outcome::Stopped {
                            line: l.line,
                            reason: format!(
                                "line {}: `sleep {}` is longer than --max-sleep {} s; the kernel backend waits in real time and Linux 6.1 has no knob that shortens this wait on both backends alike (TIME_WAIT is a fixed 120 s, the lblc/lblcr cache sweep runs every 30 minutes), so the rest of the script is not compared; {}",
                                l.line,
                                d.as_secs_f64(),
                                opts.max_sleep.as_secs_f64(),
                                rerun_hint(*d)
                            ),
                        },
                    });
                }
                let end = Instant::now() + *d;
                while let Some(left) = end.checked_duration_since(Instant::now()) {
                    if interrupted() {
                        return Err(Error::Interrupted);
                    }
                    std::thread::sleep(left.min(Duration::from_millis(100)));
                }
                None
            }
            Step::Conn { event, flow } => {
                let server = conn_step(&lab, *event, flow, t).map_err(at(l.line))?;
                Some(report(l, *event, flow, server))
            }
            Step::Open { label, flow } => {
                if held.contains_key(label) {
                    return Err(SimError {
                        line: l.line,
                        message: format!(
                            "label `{label}` is already open: close it first or pick another name"
                        ),
                    }
                    .into());
                }
                let (server, stream) = open_step(&lab, flow, t).map_err(at(l.line))?;
                held.insert(
                    label.clone(),
                    Held {
                        flow: *flow,
                        stream,
                    },
                );
                Some(report(l, Event::Open, flow, server))
            }
            Step::Close { label } => {
                let h = held.remove(label).ok_or_else(|| SimError {
                    line: l.line,
                    message: format!(
                        "no open conn labelled `{label}`: open it first with `open {label} ...`"
                    ),
                })?;
                if let Some(s) = h.stream {
                    client::tcp_close(s, &h.flow).map_err(at(l.line))?;
                    client::wait_state(&lab, &h.flow, &["TIME_WAIT", "CLOSE"], t)
                        .map_err(at(l.line))?;
                }
                None
            }
            // plan() above refuses a script with `load`.
            Step::Load { .. } => return Err(plan::PlanError::Load { line: l.line }.into()),
        };
        if let Some(r) = r {
            let flow = on_report(&r);
            reports.push(r);
            if flow.is_break() {
                break;
            }
        }
    }
    Ok(KernelRun {
        reports,
        outcome: Outcome::Complete,
        notes,
    })
}

/// The kernel's pick for a flow whose connection is up, checked against the server's answer.
fn picked(lab: &SimLab, flow: &Flow, answer: Option<&str>) -> Result<SocketAddr, Error> {
    let e = client::kernel_entry(lab, flow)?.ok_or_else(|| {
        Error::Step(format!(
            "{} > {} was answered but the kernel's table has no entry for it",
            flow.client, flow.vip
        ))
    })?;
    if let Some(a) = answer {
        if a != lab::answer(e.dest).trim() {
            return Err(Error::Step(format!(
                "{} > {}: the kernel's table says {}, but the answer came from `{a}`",
                flow.client, flow.vip, e.dest
            )));
        }
    }
    Ok(e.dest)
}

fn conn_step(
    lab: &SimLab,
    event: Event,
    flow: &Flow,
    t: Duration,
) -> Result<Option<SocketAddr>, Error> {
    match flow.protocol {
        Protocol::Udp => {
            let n = if event == Event::Rst { 2 } else { 1 };
            match client::udp_exchange(lab, flow, t, n)? {
                Some(a) => Ok(Some(picked(lab, flow, Some(&a))?)),
                None => Ok(None),
            }
        }
        Protocol::Tcp => {
            let Some(s) = client::tcp_open(lab, flow, t)? else {
                return Ok(None);
            };
            let server = picked(lab, flow, None)?;
            if event == Event::Rst {
                client::tcp_reset(s, flow)?;
                client::wait_state(lab, flow, &["CLOSE"], t)?;
            } else {
                client::tcp_close(s, flow)?;
                client::wait_state(lab, flow, &["TIME_WAIT", "CLOSE"], t)?;
            }
            Ok(Some(server))
        }
    }
}

fn open_step(
    lab: &SimLab,
    flow: &Flow,
    t: Duration,
) -> Result<(Option<SocketAddr>, Option<TcpStream>), Error> {
    match flow.protocol {
        Protocol::Udp => match client::udp_exchange(lab, flow, t, 1)? {
            Some(a) => Ok((Some(picked(lab, flow, Some(&a))?), None)),
            None => Ok((None, None)),
        },
        Protocol::Tcp => match client::tcp_open(lab, flow, t)? {
            Some(s) => {
                let c = client::wait_state(lab, flow, &["ESTABLISHED"], t)?;
                Ok((Some(c.dest), Some(s)))
            }
            None => Ok((None, None)),
        },
    }
}

/// The first step where the two backends pick differently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// The core's report.
    pub core: StepReport,
    /// The kernel's.
    pub kernel: StepReport,
}

fn pick(s: Option<SocketAddr>) -> String {
    s.map_or("refused it".to_string(), |s| format!("picked {s}"))
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {}: {} {} > {}: the core {}, the kernel {}",
            self.kernel.line,
            self.kernel.event,
            self.kernel.client,
            self.kernel.vip,
            pick(self.core.server),
            pick(self.kernel.server)
        )
    }
}

/// Both backends over one script.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// The core's reports for the whole script.
    pub core: Vec<StepReport>,
    /// The kernel's reports, up to the first difference or the stop.
    pub kernel: Vec<StepReport>,
    /// The first difference, if any.
    pub difference: Option<Difference>,
    /// Whether the kernel ran to the end.
    pub outcome: Outcome,
    /// The kernel run's notes ([`KernelRun::notes`]).
    pub notes: Vec<String>,
}

impl Comparison {
    /// Steps both backends ran with the same pick.
    pub fn agreed(&self) -> usize {
        self.kernel.len() - usize::from(self.difference.is_some())
    }
}

/// The core's reports for the script as the kernel runs it ([`kernel_lines`]).
pub fn run_core(lines: &[ScriptLine], cfg: IpvsConfig) -> Result<Vec<StepReport>, SimError> {
    let mut sim = Sim::new(cfg);
    let mut out = Vec::new();
    for l in kernel_lines(lines) {
        out.extend(sim.exec(&l)?);
    }
    Ok(out)
}

/// Run the script on the core and on the kernel; the kernel run ends at the first step
/// where they pick differently. `on_step` sees (core, kernel) for each kernel step.
pub fn compare(
    lines: &[ScriptLine],
    cfg: IpvsConfig,
    opts: &KernelOptions<'_>,
    on_step: &mut dyn FnMut(&StepReport, &StepReport),
) -> Result<Comparison, Error> {
    let core = run_core(lines, cfg)?;
    let by_line: HashMap<usize, &StepReport> = core.iter().map(|r| (r.line, r)).collect();
    let mut difference = None;
    let run = run_kernel(lines, opts, &mut |k| {
        let Some(c) = by_line.get(&k.line) else {
            return ControlFlow::Continue(());
        };
        on_step(c, k);
        if c.server == k.server {
            ControlFlow::Continue(())
        } else {
            difference = Some(Difference {
                core: (*c).clone(),
                kernel: k.clone(),
            });
            ControlFlow::Break(())
        }
    })?;
    Ok(Comparison {
        core,
        kernel: run.reports,
        difference,
        outcome: run.outcome,
        notes: run.notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lvslab_core::sim::parse_script;

    #[test]
    fn running_dr_and_tun_as_nat_changes_no_pick_of_the_shipped_examples() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/simulate");
        for e in std::fs::read_dir(&dir).expect("examples").flatten() {
            let path = e.path();
            if path.extension().is_none_or(|x| x != "sim") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("readable");
            let as_written = Sim::new(IpvsConfig::default())
                .run_script(&text)
                .expect("runs");
            let as_nat = run_core(&parse_script(&text).expect("parses"), IpvsConfig::default())
                .expect("runs as NAT");
            assert_eq!(as_written, as_nat, "{}", path.display());
        }
    }

    #[test]
    fn a_difference_names_the_line_the_step_and_both_picks() {
        let l = parse_script("conn 192.0.2.1:1 > 10.0.0.1:80\n").expect("parses");
        let mut core = run_core(&l, IpvsConfig::default()).expect("runs");
        let kernel = StepReport {
            server: Some("10.0.2.1:80".parse().expect("addr")),
            ..core[0].clone()
        };
        let d = Difference {
            core: core.remove(0),
            kernel,
        };
        assert_eq!(
            d.to_string(),
            "line 1: conn 192.0.2.1:1 > 10.0.0.1:80: the core refused it, the kernel picked 10.0.2.1:80"
        );
    }
}
