//! Network namespaces the iproute2 way (a bind mount at /run/netns/NAME), and running
//! code or processes inside them.
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Once;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

use crate::error::{Context, Error, Result};

/// Where iproute2 (and lvslab) keep named namespaces.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// Environment variable naming the fd a daemon writes one byte to once it is ready.
pub const READY_FD_ENV: &str = "LVSLAB_READY_FD";

/// Path of a named namespace.
pub fn path(name: &str) -> PathBuf {
    PathBuf::from(NETNS_RUN_DIR).join(name)
}

/// Whether a named namespace exists.
pub fn exists(name: &str) -> bool {
    path(name).exists()
}

/// Open a named namespace (the fd keeps it alive and can be passed to setns or netlink).
pub fn open(name: &str) -> Result<File> {
    File::open(path(name)).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::Msg(format!(
                "network namespace {name} does not exist (is the lab up? try `lvslab list`)"
            ))
        } else {
            Error::Io {
                context: format!("open namespace {name}"),
                error: e,
            }
        }
    })
}

/// Run `f` on a fresh thread that has joined namespace `name`; sockets it opens live there.
pub fn run_in<T: Send, F: FnOnce() -> T + Send>(name: &str, f: F) -> Result<T> {
    let ns = open(name)?;
    run_in_fd(name, ns.as_fd(), f)
}

/// Like [`run_in`] with an already opened namespace fd.
pub fn run_in_fd<T: Send, F: FnOnce() -> T + Send>(
    name: &str,
    ns: std::os::fd::BorrowedFd<'_>,
    f: F,
) -> Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            // setns changes only this thread, which ends with the closure.
            setns(ns, CloneFlags::CLONE_NEWNET).ctx(|| format!("enter namespace {name}"))?;
            Ok(f())
        })
        .join()
        .map_err(|_| Error::Msg(format!("thread running in namespace {name} panicked")))?
    })
}

/// Make `cmd` start inside namespace `name` (setns between fork and exec).
pub fn command_in(name: &str, mut cmd: Command) -> Result<Command> {
    let ns: OwnedFd = open(name)?.into();
    // SAFETY: setns is async-signal-safe; the closure only touches the owned fd.
    unsafe {
        cmd.pre_exec(move || {
            setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)
        });
    }
    Ok(cmd)
}

/// Tell the parent (`Lab::spawn_daemon`) that this daemon is ready; a no-op when not asked.
pub fn notify_ready() {
    if let Some(fd) = std::env::var(READY_FD_ENV)
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
    {
        // SAFETY: the fd was handed to us by spawn_daemon for exactly this purpose and is used once.
        let mut f = unsafe { File::from_raw_fd(fd) };
        let _ = f.write_all(b"1");
        // SAFETY: single-threaded use at daemon start; the variable must not leak into children.
        unsafe { std::env::remove_var(READY_FD_ENV) };
    }
}

/// Make /run/netns a shared mount point, as `ip netns add` does, so namespaces mounted there
/// stay visible to other mount namespaces.
fn prepare_run_dir() -> Result<()> {
    static ONCE: Once = Once::new();
    let mut res = Ok(());
    ONCE.call_once(|| {
        res = (|| {
            std::fs::create_dir_all(NETNS_RUN_DIR).ctx(|| format!("create {NETNS_RUN_DIR}"))?;
            let shared = MsFlags::MS_SHARED | MsFlags::MS_REC;
            if mount::<str, str, str, str>(None, NETNS_RUN_DIR, None, shared, None).is_err() {
                mount::<str, str, str, str>(
                    Some(NETNS_RUN_DIR),
                    NETNS_RUN_DIR,
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None,
                )
                .ctx(|| format!("bind {NETNS_RUN_DIR} onto itself"))?;
                mount::<str, str, str, str>(None, NETNS_RUN_DIR, None, shared, None)
                    .ctx(|| format!("make {NETNS_RUN_DIR} shared"))?;
            }
            Ok(())
        })();
    });
    res
}

/// Create namespace `name` and run `init` inside it on the creating thread (before anything
/// else can see it). On failure nothing is left behind.
pub fn create_with<T: Send, F: FnOnce() -> Result<T> + Send>(name: &str, init: F) -> Result<T> {
    prepare_run_dir()?;
    let p = path(name);
    OpenOptions::new().write(true).create_new(true).open(&p).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::Msg(format!(
                "network namespace {name} already exists; another lab with this name is up (try `lvslab down`, `lvslab up --name OTHER` or `lvslab down --all`)"
            ))
        } else {
            Error::Io { context: format!("create {}", p.display()), error: e }
        }
    })?;
    let res = std::thread::scope(|s| {
        s.spawn(|| {
            unshare(CloneFlags::CLONE_NEWNET).ctx(|| format!("create namespace {name}"))?;
            mount::<str, _, str, str>(
                Some("/proc/thread-self/ns/net"),
                &p,
                None,
                MsFlags::MS_BIND,
                None,
            )
            .ctx(|| format!("bind namespace {name} at {}", p.display()))?;
            init()
        })
        .join()
        .unwrap_or_else(|_| {
            Err(Error::Msg(format!(
                "thread creating namespace {name} panicked"
            )))
        })
    });
    if res.is_err() {
        let _ = delete(name);
    }
    res
}

/// Remove a named namespace (its devices go with it once nothing holds it).
pub fn delete(name: &str) -> Result<()> {
    let p = path(name);
    let _ = umount2(&p, MntFlags::MNT_DETACH);
    match std::fs::remove_file(&p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::Io {
            context: format!("remove {}", p.display()),
            error: e,
        }),
    }
}

/// Names in /run/netns that start with `prefix`.
pub fn list_prefixed(prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(NETNS_RUN_DIR)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(prefix))
        .collect();
    v.sort();
    v
}

/// Write a sysctl through /proc/sys in the calling thread's namespace (`net.ipv4.ip_forward`).
pub fn set_sysctl(key: &str, value: &str) -> Result<()> {
    let p = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
    std::fs::write(&p, value).ctx(|| format!("set sysctl {key}={value}"))
}
