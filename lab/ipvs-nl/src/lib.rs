//! lvslab-ipvs-nl: the kernel's IPVS driven over generic netlink, with the same vocabulary
//! as lvslab's userspace balancer: [`lvslab_core::IpvsCommand`] in (what an ipvsadm line
//! does), services with their real servers, counters and connections out.
//!
//! It speaks the "IPVS" family the way ipvsadm's libipvs does (include/uapi/linux/ip_vs.h,
//! net/netfilter/ipvs/ip_vs_ctl.c) and reads connections from `/proc/net/ip_vs_conn`, as
//! `ipvsadm -Lnc` does. The table belongs to the network namespace of the thread that
//! opens the socket. No shelling out: ipvsadm need not be installed.

pub mod attr;
pub mod conns;
pub mod socket;
pub mod table;

pub use conns::{parse_ip_vs_conn, KernelConn};
pub use socket::{IpvsMsg, IpvsSocket};
pub use table::{DestEntry, Info, KernelIpvs, ServiceEntry, SyncDaemon, SyncState};

/// What can go wrong talking to kernel IPVS.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kernel has no IPVS (the `ip_vs` module is not loaded, or not built).
    #[error(
        "this kernel has no IPVS (no \"IPVS\" generic netlink family)\n  help: load it with `modprobe ip_vs` where the kernel has the module; otherwise use `--backend userspace`, or run lvslab on a kernel with IPVS"
    )]
    NoIpvs,
    /// A socket call failed.
    #[error("netlink {0}: {1}")]
    Io(&'static str, #[source] std::io::Error),
    /// The kernel refused a command.
    #[error("{}", kernel_message(*errno, *command))]
    Kernel {
        /// The errno the kernel answered with (positive).
        errno: i32,
        /// The `IPVS_CMD_*` it answered.
        command: Option<u8>,
    },
    /// The kernel sent something this crate cannot read.
    #[error("unexpected answer from kernel IPVS: {0}")]
    Protocol(String),
    /// Something the kernel's IPVS cannot express (or this crate does not yet).
    #[error("{0}")]
    Unsupported(String),
    /// Reading `/proc/net/ip_vs_conn` failed.
    #[error("reading /proc/net/ip_vs_conn: {0}")]
    Conns(#[source] std::io::Error),
}

impl Error {
    /// Names the command a kernel error answered.
    fn in_command(self, cmd: u8) -> Self {
        match self {
            Error::Kernel { errno, .. } => Error::Kernel {
                errno,
                command: Some(cmd),
            },
            other => other,
        }
    }
}

/// errno values the kernel answers IPVS commands with (Linux, every architecture).
pub(crate) const ENOENT: i32 = 2;
const ESRCH: i32 = 3;
const EEXIST: i32 = 17;
const EINVAL: i32 = 22;

/// The kernel's answer in ipvsadm's words (libipvs ipvs_strerror), with a fix where one is
/// known.
fn kernel_message(errno: i32, command: Option<u8>) -> String {
    use attr::cmd;
    let specific = match (command, errno) {
        (Some(cmd::NEW_SERVICE | cmd::SET_SERVICE), ENOENT) => {
            Some("Scheduler not found: the kernel has no module for it (twos came in Linux 6.2)")
        }
        (Some(cmd::NEW_SERVICE), EEXIST) => Some("Service already exists"),
        (Some(cmd::NEW_DEST), EEXIST) => Some("Destination already exists"),
        (Some(cmd::SET_DEST | cmd::DEL_DEST), ENOENT) => Some("No such destination"),
        (Some(_), ESRCH) => Some("No such service"),
        (Some(cmd::NEW_SERVICE | cmd::SET_SERVICE), EINVAL) => {
            Some("Invalid argument (a zero port needs persistence; check the netmask)")
        }
        _ => None,
    };
    let base = std::io::Error::from_raw_os_error(errno);
    let name = command.map_or("request".to_owned(), |c| format!("IPVS command {c}"));
    match specific {
        Some(s) => format!("kernel IPVS refused the {name}: {s} ({base})"),
        None => format!("kernel IPVS refused the {name}: {base}"),
    }
}
