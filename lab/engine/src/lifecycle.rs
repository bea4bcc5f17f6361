//! Up and down: build a lab, start its daemons, undo everything when a step fails.
use std::ops::Deref;

use lvslab_netns::{build, state, Backend, BuildOptions, BuildStep, Lab, Topology};
use nix::sys::signal::Signal;

use crate::daemons::{self, DaemonConfig};
use crate::{Balancer, DeferredInterrupts, EngineError, Kernel, Result};

/// Environment variable that makes `lvslab up` fail on purpose after a step (namespaces,
/// links, addresses, daemons) or be interrupted (`interrupt`), so rollback can be tested.
pub const INJECT_ENV: &str = "LVSLAB_INJECT_FAILURE";

/// A failure [`up`] provokes on purpose, to test rollback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Injection {
    /// Fail right after this build step.
    AfterBuild(BuildStep),
    /// Fail once every daemon has started.
    AfterDaemons,
    /// Raise SIGINT once every daemon has started (needs [`UpOptions::interrupts`]).
    Interrupt,
}

impl Injection {
    /// Parse a step name as [`INJECT_ENV`] spells it.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "daemons" => Ok(Injection::AfterDaemons),
            "interrupt" => Ok(Injection::Interrupt),
            other => {
                other
                    .parse()
                    .map(Injection::AfterBuild)
                    .map_err(|_| EngineError::BadInjection {
                        var: INJECT_ENV,
                        value: other.to_owned(),
                    })
            }
        }
    }

    /// The injection [`INJECT_ENV`] asks for, if it is set.
    pub fn from_env() -> Result<Option<Self>> {
        std::env::var(INJECT_ENV)
            .ok()
            .map(|v| Self::parse(&v))
            .transpose()
    }
}

/// How [`up`] brings a lab up.
#[derive(Debug)]
pub struct UpOptions<'a> {
    /// How the daemons are started.
    pub daemons: DaemonConfig,
    /// A failure to provoke on purpose (rollback tests).
    pub inject: Option<Injection>,
    /// Interrupts the caller holds back while the lab is built; one that arrived makes
    /// [`up`] take the lab down and return [`EngineError::Interrupted`].
    pub interrupts: Option<&'a DeferredInterrupts>,
    /// The balancer the directors run.
    pub backend: Backend,
}

impl UpOptions<'_> {
    /// Daemons from `daemons`, no injected failure, interrupts not held back.
    pub fn new(daemons: DaemonConfig) -> Self {
        Self {
            daemons,
            inject: None,
            interrupts: None,
            backend: Backend::Userspace,
        }
    }
}

/// Build lab `name` from `topo` and start its daemons. When any step fails (or a held-back
/// interrupt arrives) everything made so far is removed and the error says so.
pub fn up(name: &str, topo: &Topology, opts: &UpOptions) -> Result<Lab> {
    if opts.inject == Some(Injection::Interrupt) && opts.interrupts.is_none() {
        return Err(EngineError::InjectionNeedsInterrupts);
    }
    // Checked here too so the error does not claim a rollback that never touched that lab.
    if state::run_dir(name).join("state.json").exists() {
        return Err(EngineError::AlreadyUp(name.to_owned()));
    }
    let build_opts = BuildOptions {
        fail_after: match opts.inject {
            Some(Injection::AfterBuild(step)) => Some(step),
            _ => None,
        },
        backend: opts.backend,
    };
    let lab = build(name, topo, &build_opts).map_err(|cause| EngineError::Build {
        lab: name.to_owned(),
        cause,
    })?;
    // From here on the guard takes the lab down on every early return, and on a panic.
    let mut guard = LabGuard::new(lab);
    if opts.backend == Backend::Ipvs {
        if let Err(e) = configure_kernel(guard.lab()) {
            drop(guard);
            return Err(EngineError::KernelSetup {
                lab: name.to_owned(),
                cause: Box::new(e),
            });
        }
    }
    if opts.backend == Backend::Ipvs && topo.services.iter().any(|s| s.backup.is_some()) {
        tracing::warn!("with --backend ipvs the MASTER director balances alone: VRRP and connection sync between a pair run on the userspace backend (kernel sync daemons are tested on their own, see the README)");
    }
    let started = daemons::start(guard.lab_mut(), &opts.daemons)
        .and_then(|()| {
            if opts.backend == Backend::Userspace {
                crate::pair::wait_for_masters(guard.lab())?;
                crate::shim::write_ipvsadm_shims(guard.lab(), &opts.daemons.exe)
            } else {
                Ok(())
            }
        })
        .and_then(|()| match opts.inject {
            Some(Injection::AfterDaemons) => Err(EngineError::Injected("daemons")),
            // Ctrl-C arriving while the lab is half built; held back until `pending` below.
            Some(Injection::Interrupt) => {
                nix::sys::signal::raise(Signal::SIGINT).map_err(|error| EngineError::Signal {
                    what: "raise the injected interrupt",
                    error,
                })
            }
            _ => Ok(()),
        });
    if let Err(e) = started {
        drop(guard);
        return Err(EngineError::Daemons {
            lab: name.to_owned(),
            cause: Box::new(e),
        });
    }
    if let Some(signal) = opts.interrupts.and_then(DeferredInterrupts::pending) {
        drop(guard);
        return Err(EngineError::Interrupted {
            lab: name.to_owned(),
            signal,
        });
    }
    Ok(guard.into_lab())
}

/// Kernel IPVS of every director with services gets that director's services, from the
/// same ipvsadm lines the userspace director would be started with.
fn configure_kernel(lab: &Lab) -> Result<()> {
    let topo = &lab.state.topology;
    for node in crate::directors_with_services(topo) {
        let kernel = Kernel::new(lab.netns_of(&node)?);
        for line in crate::director_lines(topo, &node) {
            // Kernel IPVS sees a firewall mark only if netfilter sets it, and lvslab installs
            // no netfilter rules: refuse rather than run a service that never matches.
            if lvslab_core::mark::MarkRule::is_rule(&line) {
                return Err(EngineError::Ipvsadm {
                    line,
                    message: "a firewall-mark service needs netfilter to mark packets for kernel IPVS, which lvslab does not set up; run this lab on the userspace backend".to_owned(),
                });
            }
            kernel.ipvsadm(&line)?;
        }
    }
    Ok(())
}

/// Stop lab `name`'s daemons by pid and delete exactly what `up` recorded. Returns the
/// namespaces removed.
pub fn down(name: &str) -> Result<Vec<String>> {
    match Lab::load(name) {
        Ok(lab) => Ok(lab.down()?),
        // An `up` killed before its first save leaves only a run dir; `down LAB` must be
        // able to remove it, or only `down --all` could.
        Err(e) => match state::remove_stateless(name) {
            Ok(true) => Ok(Vec::new()),
            _ => Err(e.into()),
        },
    }
}

/// Remove every lab, and leftover `lvs-*` namespaces (and processes in them) whose state
/// is gone. Returns the namespaces removed.
pub fn down_all() -> Result<Vec<String>> {
    Ok(state::down_all()?)
}

/// A lab that is taken down when the guard is dropped, so a failing or panicking caller
/// leaves nothing behind.
#[derive(Debug)]
pub struct LabGuard {
    lab: Option<Lab>,
}

impl LabGuard {
    /// Guard a lab that is up.
    pub fn new(lab: Lab) -> Self {
        Self { lab: Some(lab) }
    }

    /// [`up`], guarded.
    pub fn up(name: &str, topo: &Topology, opts: &UpOptions) -> Result<Self> {
        up(name, topo, opts).map(Self::new)
    }

    /// The lab.
    pub fn lab(&self) -> &Lab {
        // Only `into_lab` and `down` empty it, and both consume the guard.
        self.lab
            .as_ref()
            .expect("a guard holds its lab until consumed")
    }

    fn lab_mut(&mut self) -> &mut Lab {
        self.lab
            .as_mut()
            .expect("a guard holds its lab until consumed")
    }

    /// Keep the lab up: the guard no longer takes it down.
    pub fn into_lab(mut self) -> Lab {
        self.lab
            .take()
            .expect("a guard holds its lab until consumed")
    }

    /// Take the lab down now and say what was removed.
    pub fn down(mut self) -> Result<Vec<String>> {
        match self.lab.take() {
            Some(lab) => take_down(lab),
            None => Ok(Vec::new()),
        }
    }
}

/// Tear down using the saved state when there is one: other processes (a daemon's
/// `lvslab` commands) may have recorded more than this copy knows.
fn take_down(lab: Lab) -> Result<Vec<String>> {
    let lab = Lab::load(lab.name()).unwrap_or(lab);
    Ok(lab.down()?)
}

impl Deref for LabGuard {
    type Target = Lab;
    fn deref(&self) -> &Lab {
        self.lab()
    }
}

impl Drop for LabGuard {
    fn drop(&mut self) {
        if let Some(lab) = self.lab.take() {
            let name = lab.name().to_owned();
            if let Err(e) = take_down(lab) {
                tracing::warn!("taking lab {name} down failed: {e}");
            }
        }
    }
}
