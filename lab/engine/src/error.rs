//! The engine's error type.
use nix::sys::signal::Signal;

/// Anything that can stop a lab from coming up, going down or being named.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Reading, building or removing namespaces and state failed.
    #[error(transparent)]
    Netns(#[from] lvslab_netns::Error),
    /// A lab of this name is up already (and was left alone).
    #[error("lab {0:?} is already up\n  help: `lvslab down --lab {0}` first, or pick another name with --name")]
    AlreadyUp(String),
    /// The build failed; the builder removed what it had made.
    #[error("building lab {lab} failed; everything it made was removed: {cause}")]
    Build {
        /// The lab.
        lab: String,
        /// Why.
        cause: lvslab_netns::Error,
    },
    /// A daemon did not start; the lab was taken down again.
    #[error("starting daemons of lab {lab} failed; the lab was removed: {cause}")]
    Daemons {
        /// The lab.
        lab: String,
        /// Why.
        cause: Box<EngineError>,
    },
    /// A failure asked for through [`crate::INJECT_ENV`] (rollback tests).
    #[error("injected failure after step {0}")]
    Injected(&'static str),
    /// [`crate::INJECT_ENV`] holds something that is no step.
    #[error("{var}={value:?} is not a step\n  help: use namespaces, links, addresses, daemons or interrupt")]
    BadInjection {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
    },
    /// An interrupt injection needs the caller to hold interrupts back.
    #[error("the `interrupt` injection needs UpOptions::interrupts")]
    InjectionNeedsInterrupts,
    /// A held-back interrupt arrived while the lab was being built; the lab was taken down.
    /// The signal stays pending and blocked while the caller's [`crate::DeferredInterrupts`]
    /// lives, so the caller can exit with 128+signal.
    #[error("interrupted by {signal}; lab {lab} was taken down again")]
    Interrupted {
        /// The lab.
        lab: String,
        /// The first signal that arrived.
        signal: Signal,
    },
    /// Holding interrupts back, or raising the injected one, failed.
    #[error("{what}: {error}")]
    Signal {
        /// What was being done.
        what: &'static str,
        /// The OS error.
        error: nix::Error,
    },
    /// No lab is up and none was named.
    #[error("no lab is up\n  help: start one with `lvslab up nat-topology`")]
    NoLabUp,
    /// Several labs are up and none was named.
    #[error("{} labs are up ({}); say which one\n  help: pass --lab NAME", .0.len(), .0.join(", "))]
    SeveralLabsUp(Vec<String>),
    /// A named node directs no service.
    #[error("node {node} directs no service in topology {topology}; directors: {}", .directors.join(", "))]
    NotADirector {
        /// The node named.
        node: String,
        /// The topology.
        topology: String,
        /// The nodes that do.
        directors: Vec<String>,
    },
    /// The topology has no service, so no director.
    #[error("topology {0} has no [[services]], so there is no director")]
    NoDirector(String),
    /// Several directors and none named.
    #[error("topology {topology} has several directors ({}); pick one with --node", .directors.join(", "))]
    SeveralDirectors {
        /// The topology.
        topology: String,
        /// Its directors.
        directors: Vec<String>,
    },
    /// An ipvsadm line that does not parse.
    #[error("`ipvsadm {line}`: {message}")]
    Ipvsadm {
        /// The line.
        line: String,
        /// What is wrong with it.
        message: String,
    },
    /// The userspace director refused or did not answer.
    #[error(transparent)]
    Control(#[from] lvslab_director::control::ControlError),
    /// Kernel IPVS refused, or is missing.
    #[error(transparent)]
    Kernel(#[from] lvslab_ipvs_nl::Error),
    /// Writing a director namespace's `ipvsadm` script failed.
    #[error("write {}: {source}", .path.display())]
    Shim {
        /// The script.
        path: std::path::PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Kernel IPVS keeps no record of why it picked a server.
    #[error("kernel IPVS does not say why it picked a server\n  help: `lvslab simulate --explain` shows the same scheduler's reasoning for the same steps; the userspace backend explains live picks")]
    KernelCannotExplain,
    /// Configuring kernel IPVS during `up` failed; the lab was taken down again.
    #[error("configuring kernel IPVS in lab {lab} failed; the lab was removed: {cause}")]
    KernelSetup {
        /// The lab.
        lab: String,
        /// Why.
        cause: Box<EngineError>,
    },
    /// A health state file could not be written or read.
    #[error("health state {}: {message}", .path.display())]
    HealthState {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        message: String,
    },
}

/// Result alias for this crate.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;
