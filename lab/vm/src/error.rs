//! Errors of the VM crate; each variant says what to do about it.
use std::path::{Path, PathBuf};

/// Anything that can go wrong fetching, booting or talking to the VM.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// A host program the fetch relies on is not installed.
    #[error("`{tool}` was not found on PATH: {fix}")]
    ToolMissing {
        /// The program looked for.
        tool: &'static str,
        /// How to get it.
        fix: &'static str,
    },
    /// apt does not know a package, almost always because `apt-get update` never ran.
    #[error(
        "apt does not know the package `{package}`: the package lists are empty or stale; \
         run `apt-get update` first (or `lvslab vm fetch --apt-update`)"
    )]
    NoPackageLists {
        /// The package apt could not find.
        package: String,
    },
    /// Not enough room in the cache directory.
    #[error(
        "not enough disk space in {}: {available_mib} MiB free, about {needed_mib} MiB needed; \
         free some space or point LVSLAB_VM_CACHE at a larger disk",
        path.display()
    )]
    DiskFull {
        /// The directory that is full.
        path: PathBuf,
        /// Space left, MiB.
        available_mib: u64,
        /// Space the fetch needs, MiB.
        needed_mib: u64,
    },
    /// A helper program (apt-get, dpkg, xz, qemu) failed.
    #[error("`{command}` failed: {detail}")]
    CommandFailed {
        /// The command line, for the user to rerun by hand.
        command: String,
        /// Its exit status and the tail of its stderr.
        detail: String,
    },
    /// A file operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The kernel image holds no payload this crate can decompress.
    #[error("cannot extract an ELF vmlinux from {}: {reason}", path.display())]
    Vmlinux {
        /// The bzImage.
        path: PathBuf,
        /// What was tried.
        reason: String,
    },
    /// A kernel module the VM needs is neither a file nor built in.
    #[error("kernel module `{name}` is not in {} (nor built in)", dir.display())]
    ModuleMissing {
        /// Module name.
        name: String,
        /// The modules directory searched.
        dir: PathBuf,
    },
    /// A kernel module file is not the ELF object it should be.
    #[error("{}: not a kernel module ({reason})", path.display())]
    BadModule {
        /// The .ko file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// The cache holds no complete fetch.
    #[error("the VM cache {} is not fetched yet: run `lvslab vm fetch`", .0.display())]
    NotFetched(PathBuf),
    /// The guest agent did not answer in time.
    #[error(
        "the VM did not answer within {secs} s (console log {}); its last lines:\n{console}",
        log.display()
    )]
    BootTimeout {
        /// How long we waited.
        secs: u64,
        /// The console log file.
        log: PathBuf,
        /// Its tail.
        console: String,
    },
    /// qemu ended while booting.
    #[error("qemu exited during boot ({status}); console log {}:\n{console}", log.display())]
    QemuExited {
        /// Its exit status.
        status: String,
        /// The console log file.
        log: PathBuf,
        /// Its tail.
        console: String,
    },
    /// The agent said something this crate does not understand, or went away.
    #[error("VM agent: {0}")]
    Protocol(String),
    /// A command timed out inside the VM.
    #[error("no answer from the VM within {0} s (the command may still be running there)")]
    Timeout(u64),
    /// The cache directory cannot be seen or named by the guest.
    #[error("the VM cache {} {reason}; set LVSLAB_VM_CACHE to another directory (default /var/cache/lvslab/vm)", path.display())]
    BadCacheDir {
        /// The cache directory.
        path: PathBuf,
        /// Why the guest cannot use it.
        reason: &'static str,
    },
    /// The operation needs root.
    #[error("this needs root (qemu exports / over 9p and the VM lives under /run/lvslab): rerun with sudo")]
    NotRoot,
}

/// Attach a path to an io::Error.
pub(crate) trait IoAt<T> {
    fn at(self, path: &Path) -> Result<T, VmError>;
}

impl<T> IoAt<T> for std::io::Result<T> {
    fn at(self, path: &Path) -> Result<T, VmError> {
        self.map_err(|source| VmError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}
