//! Booting, finding and stopping the VM, and running commands in it.
//!
//! One VM per run directory. Its qemu pid is recorded in `qemu.pid` there, and only a
//! process with that pid whose command line is qemu with this run directory's agent is
//! ever signalled, so a recycled pid is left alone.
use crate::agent::{AgentClient, CommandOutput};
use crate::error::{IoAt, VmError};
use crate::fetch::{fetch, FetchOptions};
use crate::initramfs::{AGENT_PORT, ROOT_TAG, SHARE_TAG};
use crate::VmConfig;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A running VM as `status` sees it.
#[derive(Debug, Clone)]
pub struct Running {
    /// qemu's pid.
    pub pid: i32,
    /// Seconds since qemu was started.
    pub uptime: Duration,
    /// The guest kernel's release, from the agent (None if it did not answer).
    pub kernel: Option<String>,
    /// The guest's own uptime in seconds, from the agent.
    pub guest_uptime_secs: Option<f64>,
}

/// Handle on the VM of one [`VmConfig`].
#[derive(Debug, Clone)]
pub struct Vm {
    cfg: VmConfig,
}

/// Host directories the guest hides under its own filesystems (see the init script); the
/// cache, whose ipvsadm and libraries the guest runs, must live elsewhere.
pub const GUEST_TMPFS: &[&str] = &["/run", "/var/tmp", "/dev", "/proc", "/sys"];

/// Drops the guest's dentries and inodes (and with them the page cache of 9p files):
/// the 9p root is mounted with cache=loose, which never revalidates.
const DROP_CACHES: &str = "echo 2 > /proc/sys/vm/drop_caches\n";

/// An exclusive flock on `path`, held until the file is dropped. A lock taken on a file that
/// was unlinked meanwhile (`vm clean` removes the run directory, lock file last, while it
/// holds the lock) is no lock at all: a later caller would create a new file and hold a
/// lock of its own beside it, and two commands would boot two VMs. So once locked, the
/// file must still be the one at `path`; otherwise it is opened again.
pub(crate) fn lock_file(path: &Path) -> Result<File, VmError> {
    use std::os::unix::fs::MetadataExt;
    loop {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).at(dir)?;
        }
        let f = File::create(path).at(path)?;
        // SAFETY: flock on an fd this function owns; no memory is involved.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e).at(path);
        }
        let held = f.metadata().at(path)?;
        match std::fs::metadata(path) {
            Ok(now) if now.dev() == held.dev() && now.ino() == held.ino() => return Ok(f),
            _ => continue,
        }
    }
}

/// Quote one word for a POSIX shell.
pub fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
    {
        return word.to_string();
    }
    format!("'{}'", word.replace('\'', r"'\''"))
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The host's TSC rate in kHz, measured over 100 ms.
///
/// Under TCG the guest's rdtsc reads the host's TSC. Left to itself the guest kernel
/// calibrates the TSC against microvm's PIT, which fails when the host is busy ("Unable
/// to calibrate against PIT"); with no HPET or PM timer as a fallback it then hangs early
/// in boot, silently, about one boot in three on a loaded 2-core host. Handing it the
/// rate (`tsc_early_khz=`) skips that calibration.
fn host_tsc_khz() -> Option<u64> {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: rdtsc has no preconditions on x86-64.
        let tsc = || unsafe { std::arch::x86_64::_rdtsc() };
        let (t0, c0) = (Instant::now(), tsc());
        std::thread::sleep(Duration::from_millis(100));
        let (c1, t1) = (tsc(), Instant::now());
        let us = t1.duration_since(t0).as_micros() as u64;
        let khz = c1.checked_sub(c0)?.checked_mul(1000)? / us.max(1);
        (khz > 100_000).then_some(khz)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

impl Vm {
    /// The VM described by `cfg`.
    pub fn new(cfg: VmConfig) -> Self {
        Self { cfg }
    }

    /// Its configuration.
    pub fn config(&self) -> &VmConfig {
        &self.cfg
    }

    /// The recorded qemu pid, if that process is still this VM's qemu.
    pub fn pid(&self) -> Option<i32> {
        let pid: i32 = std::fs::read_to_string(self.cfg.pid_file())
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let cmdline = String::from_utf8_lossy(&cmdline);
        let marker = format!("path={}", self.cfg.agent_base().display());
        (cmdline.contains("qemu-system") && cmdline.contains(&marker)).then_some(pid)
    }

    /// Whether a VM is running, and what it reports.
    pub fn status(&self) -> Option<Running> {
        let pid = self.pid()?;
        let started = std::fs::read_to_string(self.cfg.started_file())
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(|s| UNIX_EPOCH + Duration::from_secs(s));
        let uptime = started
            .and_then(|s| SystemTime::now().duration_since(s).ok())
            .unwrap_or_default();
        // A VM busy with a long command holds the agent; do not wait for it here.
        let pong = AgentClient::connect(&self.cfg.agent_base(), Some(Duration::from_secs(1)))
            .ok()
            .flatten()
            .and_then(|mut c| {
                c.wait_ready(
                    Instant::now() + Duration::from_secs(2),
                    Duration::from_secs(1),
                )
                .ok()
                .flatten()
            });
        Some(Running {
            pid,
            uptime,
            kernel: pong.as_ref().map(|p| p.release.clone()),
            guest_uptime_secs: pong.map(|p| p.uptime_secs),
        })
    }

    /// Boot the VM unless it is running (fetching first if the cache is empty); returns
    /// its pid and whether this call booted it.
    pub fn ensure_running(&self, progress: &mut dyn FnMut(&str)) -> Result<(i32, bool), VmError> {
        if !crate::is_root() {
            return Err(VmError::NotRoot);
        }
        std::fs::create_dir_all(&self.cfg.run_dir).at(&self.cfg.run_dir)?;
        let _lock = lock_file(&self.cfg.lock_file())?;
        if let Some(pid) = self.pid() {
            return Ok((pid, false));
        }
        self.check_cache_dir()?;
        fetch(
            &self.cfg,
            FetchOptions {
                apt_update: false,
                force: false,
                progress,
            },
        )?;
        progress("booting the VM (qemu microvm, TCG)");
        let t = Instant::now();
        let pid = match self.boot() {
            Err(VmError::BootTimeout { log, .. }) => {
                // About one boot in 115 still hangs silently on a loaded host; a second
                // try has always come up. The hung boot's console is kept for a bug report.
                let kept = log.with_extension("log.hung");
                let _ = std::fs::copy(&log, &kept);
                progress(&format!(
                    "the boot hung (console kept in {}); booting again",
                    kept.display()
                ));
                self.boot()?
            }
            other => other?,
        };
        progress(&format!(
            "VM up (qemu pid {pid}) in {:.1} s",
            t.elapsed().as_secs_f64()
        ));
        // A fresh guest has cached nothing yet.
        let marker = self.cfg.run_dir.join("dropped");
        std::fs::write(&marker, b"").at(&marker)?;
        Ok((pid, true))
    }

    fn qemu_command(&self) -> Command {
        let cfg = &self.cfg;
        let root = cfg.root_dir();
        let mut cmd = Command::new(root.join("usr/bin/qemu-system-x86_64"));
        let tsc = host_tsc_khz()
            .map(|k| format!(" tsc_early_khz={k}"))
            .unwrap_or_default();
        let libs: Vec<String> = cfg
            .lib_dirs()
            .iter()
            .map(|d| d.to_string_lossy().into_owned())
            .collect();
        cmd.env("LD_LIBRARY_PATH", libs.join(":"))
            .env(
                "QEMU_MODULE_DIR",
                root.join("usr/lib/x86_64-linux-gnu/qemu"),
            )
            .arg("-L")
            .arg(root.join("usr/share/qemu"))
            .args(["-M", "microvm", "-accel", "tcg", "-cpu", "max"])
            .args(["-m", &format!("{}M", cfg.memory_mib)])
            .args(["-smp", &cfg.cpus.to_string()])
            // -nodefaults: no NIC, no display, no monitor; the VM reaches nothing but the
            // agent socket and the read-only root export below.
            .args([
                "-nodefaults",
                "-no-user-config",
                "-display",
                "none",
                "-no-reboot",
            ])
            .arg("-serial")
            .arg(format!("file:{}", cfg.console_log().display()))
            .arg("-kernel")
            .arg(cfg.vmlinux())
            .arg("-initrd")
            .arg(cfg.initramfs())
            .arg("-append")
            .arg(format!(
                "console=ttyS0 tsc=reliable{tsc} panic=-1 reboot=t rdinit=/init loglevel=4 \
                 lvslab.cache={} lvslab.share={}",
                cfg.data_dir().display(),
                cfg.share_dir().display()
            ))
            .arg("-fsdev")
            .arg("local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap")
            .arg("-device")
            .arg(format!(
                "virtio-9p-device,fsdev=hostroot,mount_tag={ROOT_TAG}"
            ))
            .arg("-fsdev")
            .arg(format!(
                "local,id=share,path={},security_model=none,multidevs=remap",
                cfg.share_dir().display()
            ))
            .arg("-device")
            .arg(format!(
                "virtio-9p-device,fsdev=share,mount_tag={SHARE_TAG}"
            ))
            .args(["-device", "virtio-serial-device"])
            .arg("-chardev")
            .arg(format!("pipe,id=agent,path={}", cfg.agent_base().display()))
            .arg("-device")
            .arg(format!("virtserialport,chardev=agent,name={AGENT_PORT}"));
        cmd
    }

    /// The guest must see the cache (it runs ipvsadm from there) and its path must fit
    /// on the kernel command line.
    fn check_cache_dir(&self) -> Result<(), VmError> {
        let cfg = &self.cfg;
        let cache = cfg
            .cache_dir
            .canonicalize()
            .unwrap_or_else(|_| cfg.cache_dir.clone());
        if cfg.run_dir.to_string_lossy().contains(char::is_whitespace) {
            return Err(VmError::BadCacheDir {
                path: cfg.run_dir.clone(),
                reason:
                    "(the run directory) has whitespace, which the kernel command line cannot carry",
            });
        }
        if cache.to_string_lossy().contains(char::is_whitespace) {
            return Err(VmError::BadCacheDir {
                path: cache,
                reason: "has whitespace, which the kernel command line cannot carry",
            });
        }
        if GUEST_TMPFS.iter().any(|m| cache.starts_with(m)) {
            return Err(VmError::BadCacheDir {
                path: cache,
                reason: "is under /run or /var/tmp, which the guest covers with tmpfs",
            });
        }
        Ok(())
    }

    /// Start qemu and wait for the agent; the caller holds the run lock.
    fn boot(&self) -> Result<i32, VmError> {
        let cfg = &self.cfg;
        self.forget();
        let base = cfg.agent_base();
        for f in [base.with_extension("in"), base.with_extension("out")] {
            nix::unistd::mkfifo(&f, nix::sys::stat::Mode::from_bits_truncate(0o600)).map_err(
                |e| VmError::Io {
                    path: f.clone(),
                    source: e.into(),
                },
            )?;
        }
        let share = cfg.share_dir();
        std::fs::create_dir_all(&share).at(&share)?;
        let log = cfg.console_log();
        let console = File::create(&log).at(&log)?;
        let stderr = console.try_clone().at(&log)?;
        let mut cmd = self.qemu_command();
        cmd.stdin(Stdio::null())
            .stdout(console)
            .stderr(stderr)
            // Its own process group: Ctrl-C on the command that booted it must not end a VM
            // meant to outlive that command.
            .process_group(0);
        let qemu = std::path::PathBuf::from(cmd.get_program());
        let mut child = cmd.spawn().map_err(|e| VmError::CommandFailed {
            command: qemu.display().to_string(),
            detail: e.to_string(),
        })?;
        let pid = child.id() as i32;
        std::fs::write(cfg.pid_file(), format!("{pid}\n")).at(&cfg.pid_file())?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        std::fs::write(cfg.started_file(), format!("{now}\n")).at(&cfg.started_file())?;

        let deadline = Instant::now() + cfg.boot_timeout;
        let fail = |child: &mut std::process::Child| -> VmError {
            if let Ok(Some(st)) = child.try_wait() {
                return VmError::QemuExited {
                    status: st.to_string(),
                    log: log.clone(),
                    console: tail(&log, 30),
                };
            }
            VmError::BootTimeout {
                secs: cfg.boot_timeout.as_secs(),
                log: log.clone(),
                console: tail(&log, 30),
            }
        };
        let res = loop {
            if Instant::now() >= deadline {
                break Err(fail(&mut child));
            }
            if let Ok(Some(_)) = child.try_wait() {
                break Err(fail(&mut child));
            }
            match AgentClient::connect(&cfg.agent_base(), None) {
                // qemu opens the FIFOs a moment after it starts (until then: ENXIO).
                Err(_) | Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                Ok(Some(mut c)) => {
                    // Short ping steps: pings sent before the guest opens its port may
                    // be dropped, and each one is cheap.
                    let step = Duration::from_millis(250);
                    let wait_until = (Instant::now() + Duration::from_secs(5)).min(deadline);
                    match c.wait_ready(wait_until, step) {
                        Ok(Some(_)) => break Ok(pid),
                        Ok(None) => {}
                        Err(_) => std::thread::sleep(Duration::from_millis(100)),
                    }
                }
            }
        };
        if res.is_err() {
            // Its own child: killed and reaped by its handle, whatever the pid file says.
            let _ = child.kill();
            let _ = child.wait();
            self.forget();
        }
        res
    }

    /// Run `argv` in the VM (in its `/`), booting it first if needed.
    pub fn run(
        &self,
        argv: &[String],
        timeout: Option<Duration>,
    ) -> Result<CommandOutput, VmError> {
        self.run_in(Path::new("/"), argv, timeout)
    }

    /// Run `argv` in the VM in directory `dir` (a host path: the guest sees the host's
    /// tree, except under /run and /var/tmp, where it has its own tmpfs), or
    /// in `/` when the guest has no such directory.
    pub fn run_in(
        &self,
        dir: &Path,
        argv: &[String],
        timeout: Option<Duration>,
    ) -> Result<CommandOutput, VmError> {
        let mut script = String::new();
        if argv
            .first()
            .filter(|p| p.contains('/'))
            .is_some_and(|p| self.changed_since_drop(&dir.join(p)))
        {
            script.push_str(DROP_CACHES);
        }
        script.push_str(&format!(
            "cd {} 2>/dev/null || cd /\nexec {}\n",
            shell_quote(&dir.to_string_lossy()),
            argv.iter()
                .map(|a| shell_quote(a))
                .collect::<Vec<_>>()
                .join(" ")
        ));
        self.run_script(&script, timeout)
    }

    /// Run a shell script in the VM (in the host's root, chrooted), booting it if needed.
    pub fn run_script(
        &self,
        script: &str,
        timeout: Option<Duration>,
    ) -> Result<CommandOutput, VmError> {
        self.ensure_running(&mut |_| {})?;
        let mut c = AgentClient::connect(&self.cfg.agent_base(), None)?
            .ok_or_else(|| VmError::Protocol("agent lock not taken".into()))?;
        c.run(script, timeout)
    }

    /// Make the guest forget what it cached of the host's files, so that files changed
    /// on the host since (a rebuilt binary) are read afresh.
    pub fn drop_caches(&self) -> Result<(), VmError> {
        let o = self.run_script(DROP_CACHES, Some(Duration::from_secs(60)))?;
        if o.status != 0 {
            return Err(VmError::Protocol(format!(
                "drop_caches failed: {}",
                String::from_utf8_lossy(&o.stderr)
            )));
        }
        Ok(())
    }

    /// Whether the host file `prog` changed after the guest's
    /// caches were last dropped; records the drop it implies.
    fn changed_since_drop(&self, prog: &Path) -> bool {
        let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        let Some(changed) = mtime(prog) else {
            return false;
        };
        let marker = self.cfg.run_dir.join("dropped");
        let stale = mtime(&marker).is_none_or(|d| changed >= d);
        if stale {
            let _ = std::fs::write(&marker, b"");
        }
        stale
    }

    /// Stop the VM if it runs: SIGTERM to the recorded qemu pid, SIGKILL after 5 s.
    /// Returns the pid it stopped. Under the run lock, so that a command booting the VM
    /// at the same moment either finds it running or boots it after this is done.
    pub fn stop(&self) -> Result<Option<i32>, VmError> {
        if !self.cfg.run_dir.exists() {
            return Ok(None);
        }
        let _lock = lock_file(&self.cfg.lock_file())?;
        let Some(pid) = self.pid() else {
            self.forget();
            return Ok(None);
        };
        let p = Pid::from_raw(pid);
        let _ = kill(p, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.pid().is_some() && Instant::now() < deadline {
            // Reaps it when this process is its parent (the test's guard); a no-op otherwise.
            let _ = nix::sys::wait::waitpid(p, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
            std::thread::sleep(Duration::from_millis(50));
        }
        if self.pid().is_some() {
            let _ = kill(p, Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(p, None);
        }
        self.forget();
        Ok(Some(pid))
    }

    /// Removes the run directory (FIFOs, locks, console log, the share) once no VM runs from
    /// it, so a stopped VM leaves nothing under /run; false while one still runs.
    pub fn remove_run_dir(&self) -> Result<bool, VmError> {
        if !self.cfg.run_dir.exists() {
            return Ok(true);
        }
        // Under the run lock, the lock file removed last: a command waiting to boot the VM
        // sees its lock file gone and takes a fresh one (see `lock_file`).
        let lock = self.cfg.lock_file();
        let _lock = lock_file(&lock)?;
        if self.pid().is_some() {
            return Ok(false);
        }
        let entries = std::fs::read_dir(&self.cfg.run_dir).at(&self.cfg.run_dir)?;
        for e in entries {
            let p = e.at(&self.cfg.run_dir)?.path();
            if p == lock {
                continue;
            }
            let gone = if p.is_dir() && !p.is_symlink() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            match gone {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).at(&p),
            }
        }
        let _ = std::fs::remove_file(&lock);
        match std::fs::remove_dir(&self.cfg.run_dir) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
            // Another command made something here meanwhile (it waits for the lock): it
            // is its run directory now.
            Err(_) => Ok(true),
        }
    }

    fn forget(&self) {
        let base = self.cfg.agent_base();
        for f in [
            base.with_extension("in"),
            base.with_extension("out"),
            self.cfg.pid_file(),
            self.cfg.started_file(),
            self.cfg.run_dir.join("dropped"),
        ] {
            let _ = std::fs::remove_file(f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_on_an_unlinked_lock_file_is_taken_again() {
        // `vm clean` holds the lock, removes the file and takes a fresh one (as the next
        // booting command would); a command that waited on the old file must then wait for
        // the new one, not hold a second "lock" beside it.
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("lock");
        let old = lock_file(&path).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let p = path.clone();
        let waiter = std::thread::spawn(move || {
            let l = lock_file(&p).unwrap();
            tx.send(()).unwrap();
            l
        });
        std::thread::sleep(Duration::from_millis(100));
        std::fs::remove_file(&path).unwrap();
        let fresh = lock_file(&path).unwrap();
        drop(old);
        assert!(
            rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "the waiter held a lock on the unlinked file beside the fresh one"
        );
        drop(fresh);
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the waiter gets the fresh lock once it is free");
        drop(waiter.join().unwrap());
    }

    #[test]
    fn quoting_survives_the_shell() {
        assert_eq!(shell_quote("ipvsadm"), "ipvsadm");
        assert_eq!(shell_quote("-Ln"), "-Ln");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$(x)"), "'$(x)'");
    }
}
