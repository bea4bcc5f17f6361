//! `lvslab vm`: the small qemu VM that carries kernel IPVS on hosts without it.
use anyhow::{bail, Context, Result};
use lvslab_vm::{FetchOptions, Vm, VmConfig};
use std::io::{BufRead, IsTerminal, Write};
use std::time::{Duration, Instant};

/// Fetch, boot, use and remove the kernel-IPVS VM (cache: LVSLAB_VM_CACHE, default
/// /var/cache/lvslab/vm; pid, agent FIFOs and the writable share/ in LVSLAB_VM_RUN, default
/// /run/lvslab/vm).
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    cmd: VmCmd,
}

#[derive(clap::Subcommand, Debug)]
enum VmCmd {
    /// Download and unpack qemu, Debian's kernel, busybox and ipvsadm; build the initramfs.
    Fetch {
        /// Run `apt-get update` first if the package lists are empty.
        #[arg(long)]
        apt_update: bool,
        /// Fetch again even if the cache is complete.
        #[arg(long)]
        force: bool,
    },
    /// Whether the VM is running: pid, uptime, kernel.
    Status,
    /// Read command lines from stdin and run each in the VM (`sh -c LINE`, no state kept).
    Shell,
    /// Run a command in the VM, booting it first if needed; its exit code is passed through.
    /// It runs in the current directory (under /tmp, /run, /var/tmp and /root the guest
    /// has its own tmpfs, not the host's files), else in /.
    Run {
        /// Give up waiting after this many seconds.
        #[arg(long)]
        timeout: Option<u64>,
        /// Drop the guest's cache of host files first (automatic when CMD is a path to a
        /// file changed since the last drop).
        #[arg(long)]
        fresh: bool,
        /// The command and its arguments (after `--`).
        #[arg(trailing_var_arg = true, required = true, allow_hyphen_values = true)]
        cmd: Vec<String>,
    },
    /// Stop the VM (by its recorded pid); `--cache` also removes the downloaded cache.
    Clean {
        /// Remove the cache directory too.
        #[arg(long)]
        cache: bool,
    },
}

fn progress(line: &str) {
    eprintln!("lvslab vm: {line}");
}

fn boot_if_needed(vm: &Vm) -> Result<()> {
    vm.ensure_running(&mut progress)?;
    Ok(())
}

/// Run `lvslab vm ...`.
pub fn run(args: Args) -> Result<()> {
    let vm = Vm::new(VmConfig::from_env());
    match args.cmd {
        VmCmd::Fetch { apt_update, force } => {
            if force {
                if let Some(pid) = vm.pid() {
                    // A refetch replaces the tree the running guest runs ipvsadm from.
                    bail!("a VM is running from this cache (qemu pid {pid}): stop it first with `lvslab vm clean`");
                }
            }
            let t = Instant::now();
            let stamp = lvslab_vm::fetch(
                vm.config(),
                FetchOptions {
                    apt_update,
                    force,
                    progress: &mut progress,
                },
            )?;
            println!(
                "VM cache {}: kernel {}, {} packages, {} modules ({:.1} s)",
                vm.config().cache_dir.display(),
                stamp.kernel,
                stamp.packages.len(),
                stamp.modules.len(),
                t.elapsed().as_secs_f64()
            );
        }
        VmCmd::Status => match vm.status() {
            None => println!("no VM running"),
            Some(r) => {
                println!(
                    "VM running: qemu pid {}, up {} s",
                    r.pid,
                    r.uptime.as_secs()
                );
                match (r.kernel, r.guest_uptime_secs) {
                    (Some(k), Some(u)) => println!("kernel {k}, guest uptime {u:.1} s"),
                    _ => println!("agent busy or not answering"),
                }
            }
        },
        VmCmd::Shell => {
            boot_if_needed(&vm)?;
            let stdin = std::io::stdin();
            let prompt = stdin.is_terminal();
            let mut out = std::io::stdout();
            loop {
                if prompt {
                    eprint!("vm# ");
                }
                let mut line = String::new();
                if stdin.lock().read_line(&mut line)? == 0 {
                    break;
                }
                let line = line.trim();
                if line.is_empty() {
                    continue;
                }
                if line == "exit" {
                    break;
                }
                let o = vm.run_script(line, None)?;
                out.write_all(&o.stdout)?;
                out.flush()?;
                std::io::stderr().write_all(&o.stderr)?;
                if o.status != 0 {
                    eprintln!("[exit {}]", o.status);
                }
            }
        }
        VmCmd::Run {
            timeout,
            fresh,
            cmd,
        } => {
            boot_if_needed(&vm)?;
            if fresh {
                vm.drop_caches()?;
            }
            let o = vm
                .run_in(
                    &std::env::current_dir().unwrap_or_else(|_| "/".into()),
                    &cmd,
                    timeout.map(Duration::from_secs),
                )
                .with_context(|| format!("running `{}` in the VM", cmd.join(" ")))?;
            std::io::stdout().write_all(&o.stdout)?;
            std::io::stdout().flush()?;
            std::io::stderr().write_all(&o.stderr)?;
            if o.status != 0 {
                std::process::exit(o.status);
            }
        }
        VmCmd::Clean { cache } => {
            match vm.stop()? {
                Some(pid) => println!("stopped the VM (qemu pid {pid})"),
                None => println!("no VM running"),
            }
            // Labs recorded as living in the VM went with it.
            vm.remove_run_dir()?;
            if cache {
                if lvslab_vm::remove_cache(vm.config())? {
                    println!("removed {}", vm.config().cache_dir.display());
                } else {
                    println!("no cache at {}", vm.config().cache_dir.display());
                }
            }
        }
    }
    Ok(())
}
