//! The crate's error type.
use std::io;

/// Anything that can go wrong building, inspecting or tearing down a lab.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call failed; `context` says what we were doing.
    #[error("{context}: {error}")]
    Io {
        /// What was being done, e.g. `create namespace lvs-nat-rs1`.
        context: String,
        /// The OS error.
        error: io::Error,
    },
    /// A topology file is wrong.
    #[error(transparent)]
    Topology(#[from] crate::topology::TopologyError),
    /// A problem explained in words, with a hint how to fix it.
    #[error("{0}")]
    Msg(String),
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attach context to io / nix errors.
pub(crate) trait Context<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for io::Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|error| Error::Io {
            context: what(),
            error,
        })
    }
}

impl<T> Context<T> for nix::Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::Io {
            context: what(),
            error: io::Error::from(e),
        })
    }
}
