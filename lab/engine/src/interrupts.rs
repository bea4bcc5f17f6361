//! Holding Ctrl-C back while a lab is half built.
use nix::sys::signal::{SigSet, Signal};

use crate::{EngineError, Result};

/// Holds Ctrl-C, SIGTERM and SIGHUP back on the calling thread while it lives, so an
/// interrupt makes [`crate::up`] take the lab down again instead of leaving namespaces
/// behind. Threads the builder starts inherit the mask; daemons do not (`spawn_daemon`
/// clears it before exec). Dropping it delivers whatever is still pending.
#[derive(Debug)]
pub struct DeferredInterrupts {
    set: SigSet,
}

impl DeferredInterrupts {
    const SIGNALS: [Signal; 3] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

    /// Start holding the interrupts back.
    pub fn block() -> Result<Self> {
        let mut set = SigSet::empty();
        for s in Self::SIGNALS {
            set.add(s);
        }
        set.thread_block().map_err(|error| EngineError::Signal {
            what: "block interrupts while the lab is built",
            error,
        })?;
        Ok(Self { set })
    }

    /// The first held-back interrupt that arrived, if any.
    pub fn pending(&self) -> Option<Signal> {
        let mut pending = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigpending fills the set it is given; it is read only after success.
        if unsafe { libc::sigpending(pending.as_mut_ptr()) } != 0 {
            return None;
        }
        // SAFETY: initialised by the successful sigpending above.
        let pending = unsafe { pending.assume_init() };
        Self::SIGNALS
            .into_iter()
            // SAFETY: sigismember only reads the initialised set.
            .find(|s| unsafe { libc::sigismember(&pending, *s as libc::c_int) } == 1)
    }
}

impl Drop for DeferredInterrupts {
    fn drop(&mut self) {
        let _ = self.set.thread_unblock();
    }
}
