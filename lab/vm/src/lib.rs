//! A small qemu VM running Debian's own kernel, so that kernel IPVS is at hand on hosts
//! whose kernel has no IPVS and cannot load modules.
//!
//! The pieces, in the order a first `lvslab vm run` meets them:
//! - [`fetch`]: `apt-get download` qemu, Debian's kernel, busybox and ipvsadm into a cache
//!   outside the repository, `dpkg -x` them, extract an ELF vmlinux from the bzImage and
//!   write an initramfs (busybox, the IPVS modules in dependency order, an /init).
//!   Nothing is installed on the host: installing qemu-system-x86 would remove this kind
//!   of host's backported qemu-utils.
//! - [`Vm::ensure_running`]: boot qemu's `microvm` under TCG with no network device at
//!   all; the guest mounts the host's `/` read-only over 9p (so host binaries, lvslab's
//!   included, run inside unchanged) with tmpfs over /run and /var/tmp (commands get TMPDIR and HOME under /run).
//! - [`Vm::run`]: a command goes to the guest's agent loop over a virtio-serial port backed
//!   backed by two FIFOs under the run directory; exit code, stdout and stderr come back
//!   base64-framed, so binary output survives.
//!
//! - [`VmConfig::share_dir`]: the one host directory the guest can write, at the same
//!   path on both sides.
//!
//! The VM stays up for later commands; [`Vm::stop`] ends it by the pid recorded at boot.
mod agent;
pub mod cpio;
mod error;
mod fetch;
mod initramfs;
pub mod kernel;
mod vm;

pub use agent::CommandOutput;
pub use error::VmError;
pub use fetch::{fetch, fetched, remove_cache, FetchOptions, Stamp};
pub use vm::{shell_quote, Running, Vm, GUEST_TMPFS};

use std::path::PathBuf;
use std::time::Duration;

/// Default cache directory (override with `LVSLAB_VM_CACHE`).
pub const DEFAULT_CACHE_DIR: &str = "/var/cache/lvslab/vm";
/// Default run directory holding the pid, agent FIFOs and console log (override with `LVSLAB_VM_RUN`).
pub const DEFAULT_RUN_DIR: &str = "/run/lvslab/vm";

/// Where the VM's files live and how big it is.
#[derive(Debug, Clone)]
pub struct VmConfig {
    /// Downloaded packages, unpacked trees, vmlinux and initramfs.
    pub cache_dir: PathBuf,
    /// The running VM's pid file, agent FIFOs and console log.
    pub run_dir: PathBuf,
    /// Guest memory.
    pub memory_mib: u32,
    /// Guest vCPUs.
    pub cpus: u32,
    /// How long a boot may take before it counts as failed.
    pub boot_timeout: Duration,
}

impl VmConfig {
    /// The defaults, with `LVSLAB_VM_CACHE` and `LVSLAB_VM_RUN` honoured.
    pub fn from_env() -> Self {
        let dir = |var: &str, default: &str| {
            std::env::var_os(var)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(default))
        };
        Self::with_dirs(
            dir("LVSLAB_VM_CACHE", DEFAULT_CACHE_DIR),
            dir("LVSLAB_VM_RUN", DEFAULT_RUN_DIR),
        )
    }

    /// The defaults with explicit directories.
    pub fn with_dirs(cache_dir: PathBuf, run_dir: PathBuf) -> Self {
        Self {
            cache_dir,
            run_dir,
            // The scenario suite captures on every hop of two labs at once; libpcap's rings are
            // kernel memory, and 256 MiB ran the guest out of it.
            memory_mib: 1024,
            cpus: 2,
            // TCG boots in 3-4 s on an idle host and in up to 7 s on a loaded 2-core one;
            // a boot that takes 40 s has hung (it is retried once).
            boot_timeout: Duration::from_secs(40),
        }
    }

    /// This build's part of the cache. Each stamp format has its own directory, so two
    /// lvslab builds sharing a cache (two worktrees) do not refetch over each other's
    /// running VM.
    pub fn data_dir(&self) -> PathBuf {
        self.cache_dir.join(format!("v{}", fetch::STAMP_FORMAT))
    }
    pub(crate) fn debs_dir(&self) -> PathBuf {
        self.data_dir().join("debs")
    }
    pub(crate) fn root_dir(&self) -> PathBuf {
        self.data_dir().join("root")
    }
    pub(crate) fn kernel_tree(&self) -> PathBuf {
        self.data_dir().join("kernel")
    }
    pub(crate) fn vmlinux(&self) -> PathBuf {
        self.data_dir().join("vmlinux")
    }
    pub(crate) fn initramfs(&self) -> PathBuf {
        self.data_dir().join("initramfs.cpio")
    }
    pub(crate) fn stamp(&self) -> PathBuf {
        self.data_dir().join("stamp")
    }
    pub(crate) fn pid_file(&self) -> PathBuf {
        self.run_dir.join("qemu.pid")
    }
    pub(crate) fn started_file(&self) -> PathBuf {
        self.run_dir.join("started")
    }
    /// Base path of the agent channel: `agent.in` and `agent.out` (FIFOs), `agent.lock`.
    pub(crate) fn agent_base(&self) -> PathBuf {
        self.run_dir.join("agent")
    }
    pub(crate) fn console_log(&self) -> PathBuf {
        self.run_dir.join("console.log")
    }
    /// A host directory the guest can write, mounted in the guest at the same path:
    /// what a command inside leaves there (pcaps, reports) is on the host at once.
    pub fn share_dir(&self) -> PathBuf {
        self.run_dir.join("share")
    }
    pub(crate) fn lock_file(&self) -> PathBuf {
        self.run_dir.join("lock")
    }
    /// Directories holding the cache's unpacked programs (qemu, xz).
    pub(crate) fn tool_dirs(&self) -> Vec<PathBuf> {
        vec![self.root_dir().join("usr/bin"), self.root_dir().join("bin")]
    }
    /// Shared-library directories of the cache's unpacked packages.
    pub(crate) fn lib_dirs(&self) -> Vec<PathBuf> {
        vec![
            self.root_dir().join("usr/lib/x86_64-linux-gnu"),
            self.root_dir().join("lib/x86_64-linux-gnu"),
        ]
    }
}

/// True when this process runs as root.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}
