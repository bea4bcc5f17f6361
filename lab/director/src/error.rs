//! The library's error type.

use std::io;

/// What can stop the director or one of its helpers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call failed; `what` names the operation and the object.
    #[error("{what}")]
    Io {
        /// The operation, e.g. `recv on eth0`.
        what: String,
        /// The kernel's answer.
        #[source]
        source: io::Error,
    },
    /// The namespace has no interface of that name.
    #[error("no interface {name} in this namespace")]
    NoInterface {
        /// The interface name asked for.
        name: String,
        /// The kernel's answer.
        #[source]
        source: io::Error,
    },
    /// An interface name the kernel cannot take.
    #[error("interface name {0:?} is longer than 15 bytes or has a NUL byte")]
    BadInterfaceName(String),
    /// The namespace has nothing to attach to.
    #[error("the director's namespace has no interface with an IPv4 or global IPv6 address")]
    NoInterfaces,
    /// A service rule given at start does not parse or apply.
    #[error("service rule `{line}`: {message}")]
    Rule {
        /// The ipvsadm line.
        line: String,
        /// Why it was refused.
        message: String,
    },
    /// The core refused the interfaces or routes.
    #[error(transparent)]
    Director(#[from] lvslab_core::director::DirectorError),
    /// A VRRP instance of the lab's director pair cannot run here.
    #[error("VRRP instance {vrid}: {message}")]
    Ha {
        /// The virtual router id.
        vrid: u8,
        /// Why.
        message: String,
    },
    /// `LVSLAB_BREAK` names something unknown.
    #[error(transparent)]
    Fault(#[from] crate::faults::FaultError),
}

impl Error {
    /// An [`Error::Io`] for `what`.
    pub fn io(what: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}
