//! Labs that live in lvslab's VM. On a host whose kernel has no IPVS, `up --backend ipvs`
//! builds the lab inside the micro-VM (lab/vm), whose Debian kernel has it, and records a
//! marker on the host; from then on every command that names that lab (or finds it the
//! only one up) runs the same lvslab, with the same arguments and working directory, inside
//! the VM. What a command writes (captures, JUnit, pending snapshots) goes through the VM's
//! one writable share and is moved to where it was asked for on the host. When the last
//! VM lab goes down, or a `test`/`simulate` run ends with no VM lab up, the VM is stopped.

use anyhow::{bail, Context, Result};
use lvslab_vm::{Vm, VmConfig};
use std::ffi::OsString;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Does the host kernel have IPVS? `/proc/net/ip_vs` exists once ip_vs is loaded.
pub fn host_has_ipvs() -> bool {
    Path::new("/proc/net/ip_vs").exists()
}

fn config() -> VmConfig {
    VmConfig::from_env()
}

fn markers() -> PathBuf {
    config().run_dir.join("labs")
}

/// Labs built inside the VM, by name.
pub fn vm_labs() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(markers())
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn mark(name: &str) -> Result<()> {
    let dir = markers();
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    std::fs::write(dir.join(name), b"").with_context(|| format!("record VM lab {name}"))
}

fn unmark(name: &str) {
    let _ = std::fs::remove_file(markers().join(name));
}

/// The lab a command acts on when it lives in the VM: the one named, or the only lab up
/// (host and VM together) when none is named.
pub fn vm_lab_for(named: Option<&str>) -> Option<String> {
    let vm = vm_labs();
    match named {
        Some(n) => vm.iter().any(|v| v == n).then(|| n.to_owned()),
        None => {
            let host = lvslab_engine::list_labs();
            match (host.len(), vm.as_slice()) {
                (0, [one]) => Some(one.clone()),
                _ => None,
            }
        }
    }
}

fn progress(line: &str) {
    eprintln!("lvslab vm: {line}");
}

/// Runs this lvslab, with `args`, inside the VM in the current directory; passes its
/// output through and returns its exit status.
pub fn forward(args: &[OsString]) -> Result<i32> {
    forward_keeping(args, None)
}

/// [`forward`], except that the marker of `building` (the lab this `up` is about to build)
/// is not taken for one left by a VM that died.
fn forward_keeping(args: &[OsString], building: Option<&str>) -> Result<i32> {
    let vm = Vm::new(config());
    let (_, booted) = vm.ensure_running(&mut progress)?;
    if booted {
        // A VM that had to boot holds no lab: any recorded here died with a VM that
        // stopped (a crash, a host reboot), so forget them; the command itself says so.
        for l in vm_labs()
            .into_iter()
            .filter(|l| Some(l.as_str()) != building)
        {
            eprintln!("lvslab vm: lab {l} was in a VM that is no longer running; it is gone");
            unmark(&l);
        }
    }
    let exe = std::env::current_exe().context("find the lvslab executable")?;
    let mut argv = vec![exe.to_string_lossy().into_owned()];
    argv.extend(args.iter().map(|a| a.to_string_lossy().into_owned()));
    let cwd = std::env::current_dir().context("the current directory")?;
    let out = vm.run_in(&cwd, &argv, None)?;
    std::io::stdout().write_all(&out.stdout)?;
    std::io::stdout().flush()?;
    std::io::stderr().write_all(&out.stderr)?;
    Ok(out.status)
}

/// A fresh directory in the VM's writable share, for one forwarded command's files.
fn share_scratch(tag: &str) -> Result<PathBuf> {
    let d = config()
        .share_dir()
        .join(format!("{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).with_context(|| format!("create {}", d.display()))?;
    Ok(d)
}

/// Moves everything under `from` into `to` (merging directories), then removes `from`.
fn move_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("create {}", to.display()))?;
    for e in std::fs::read_dir(from).with_context(|| format!("read {}", from.display()))? {
        let e = e?;
        let dest = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            move_tree(&e.path(), &dest)?;
        } else if std::fs::rename(e.path(), &dest).is_err() {
            std::fs::copy(e.path(), &dest)
                .with_context(|| format!("copy {} to {}", e.path().display(), dest.display()))?;
        }
    }
    let _ = std::fs::remove_dir_all(from);
    Ok(())
}

/// The process's own arguments, without the program name.
pub fn own_args() -> Vec<OsString> {
    std::env::args_os().skip(1).collect()
}

/// `args` with `flag` set to `value`: any `flag X` or `flag=X` the user gave is replaced.
fn with_flag(args: &[OsString], flag: &str, value: OsString) -> Vec<OsString> {
    let mut out = Vec::with_capacity(args.len() + 2);
    let mut skip = false;
    for a in args {
        if skip {
            skip = false;
            continue;
        }
        if a == flag {
            skip = true;
            continue;
        }
        if a.to_str()
            .is_some_and(|s| s.starts_with(&format!("{flag}=")))
        {
            continue;
        }
        out.push(a.clone());
    }
    out.push(flag.into());
    out.push(value);
    out
}

fn notice() {
    eprintln!("lvslab: this host's kernel has no IPVS; the lab runs in lvslab's VM (see `lvslab vm status`)");
}

/// `up --backend ipvs` on a host without IPVS: build the lab in the VM.
pub fn up(name: &str) -> Result<i32> {
    if vm_labs().iter().any(|l| l == name) || lvslab_engine::list_labs().iter().any(|l| l == name) {
        bail!("lab {name:?} is already up\n  help: `lvslab down --lab {name}` first, or pick another name with --name");
    }
    notice();
    // Marked before the VM boots: an `up` killed at any point (while qemu boots, while the
    // guest builds) leaves the marker, so `down NAME` still reaches the VM and stops it.
    mark(name)?;
    let code = match forward_keeping(&own_args(), Some(name)) {
        Ok(c) => c,
        Err(e) => {
            unmark(name);
            let _ = stop_if_idle();
            return Err(e);
        }
    };
    if code != 0 {
        unmark(name);
        stop_if_idle()?;
    }
    Ok(code)
}

/// `down` of a VM lab; the VM stops with its last lab.
pub fn down(name: &str) -> Result<i32> {
    let code = forward(&own_args())?;
    // A lab the guest does not have (its `up` was killed before the guest began it, or the
    // VM died) is forgotten too, or its marker would keep an idle VM running for ever.
    if code == 0 || !guest_has(name)? {
        unmark(name);
        stop_if_idle()?;
    }
    Ok(code)
}

/// Whether the guest holds any state of lab `name`.
fn guest_has(name: &str) -> Result<bool> {
    let vm = Vm::new(config());
    if vm.pid().is_none() {
        return Ok(false);
    }
    let dir = lvslab_netns::state::run_dir(name);
    let argv = [
        "test".to_owned(),
        "-e".to_owned(),
        dir.to_string_lossy().into_owned(),
    ];
    Ok(vm.run_in(Path::new("/"), &argv, None)?.status == 0)
}

/// `down --all` also removes every VM lab and stops the VM.
pub fn down_all() -> Result<()> {
    let vm = Vm::new(config());
    if vm.pid().is_some() {
        let code = forward(&[OsString::from("down"), OsString::from("--all")])?;
        if code != 0 {
            bail!("`lvslab down --all` inside the VM failed (exit {code})");
        }
    }
    for l in vm_labs() {
        unmark(&l);
    }
    stop_if_idle()
}

fn stop_if_idle() -> Result<()> {
    // A script running many commands in a row keeps the VM up and stops it itself.
    let keep = std::env::var_os("LVSLAB_VM_KEEP").is_some_and(|v| v == "1");
    if vm_labs().is_empty() && !keep {
        let vm = Vm::new(config());
        if let Some(pid) = vm.stop()? {
            eprintln!("lvslab vm: no lab left in the VM; stopped it (qemu pid {pid})");
        }
        vm.remove_run_dir()?;
    }
    Ok(())
}

/// `list` of the VM's labs, after the host's.
pub fn list() -> Result<()> {
    if vm_labs().is_empty() {
        return Ok(());
    }
    println!("in lvslab's VM (kernel IPVS):");
    let code = forward(&[OsString::from("list")])?;
    if code != 0 {
        bail!("`lvslab list` inside the VM failed (exit {code})");
    }
    Ok(())
}

/// `capture`'s arguments with `--out` set to `out`: the user's `--out` (before the command
/// after `--`) is replaced; the command itself is left alone.
fn capture_args(args: &[OsString], out: OsString) -> Vec<OsString> {
    let sep = args.iter().position(|a| a == "--").unwrap_or(args.len());
    let mut v = with_flag(&args[..sep], "--out", out);
    v.extend_from_slice(&args[sep..]);
    v
}

/// `capture` of a VM lab: the pcaps are written to the share (the guest sees the host's
/// tree read-only), then moved to `--out` or to where they would be on the host.
pub fn capture(lab: &str, out: Option<&Path>) -> Result<i32> {
    let scratch = share_scratch("capture")?;
    let code = forward(&capture_args(&own_args(), scratch.clone().into_os_string()))?;
    if scratch.exists() {
        let dest = match out {
            Some(o) => o.to_owned(),
            None => {
                let secs = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                PathBuf::from("captures")
                    .join(lab)
                    .join(format!("run-{secs}"))
            }
        };
        move_tree(&scratch, &dest)?;
        eprintln!("lvslab: the VM's captures were moved to {}", dest.display());
    }
    Ok(code)
}

/// `request` to a VM lab: the captures of a failure's diagnosis are written to the share
/// (the guest sees the host's tree read-only), then moved under `captures/` here.
pub fn request() -> Result<i32> {
    let scratch = share_scratch("request")?;
    let args = with_flag(
        &own_args(),
        "--captures-root",
        scratch.clone().into_os_string(),
    );
    let code = forward(&args)?;
    // scratch/LAB/request-failed-MS: the same layout as captures/ on the host.
    let mut runs = Vec::new();
    for lab in std::fs::read_dir(&scratch).into_iter().flatten().flatten() {
        for run in std::fs::read_dir(lab.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            runs.push(
                Path::new("captures")
                    .join(lab.file_name())
                    .join(run.file_name()),
            );
        }
    }
    if runs.is_empty() {
        let _ = std::fs::remove_dir_all(&scratch);
        return Ok(code);
    }
    move_tree(&scratch, Path::new("captures"))?;
    for r in runs {
        eprintln!(
            "lvslab: the VM's captures were moved to {} (lvslab trace --run {})",
            r.display(),
            r.display()
        );
    }
    Ok(code)
}

/// `test --backend ipvs` on a host without IPVS: the suite runs in the VM; its captures
/// (to `captures`, else captures/), JUnit file and pending snapshots (to `pending`: the
/// user's --pending or the snapshots directory) come back to the host.
pub fn test(captures: Option<&Path>, junit: Option<&Path>, pending: &Path) -> Result<i32> {
    notice();
    let scratch = share_scratch("test")?;
    let mut args = with_flag(
        &own_args(),
        "--pending",
        scratch.join("pending").into_os_string(),
    );
    // The guest sees the host's tree read-only: the captures go through the share too, to
    // the user's --captures or to captures/ afterwards.
    args = with_flag(
        &args,
        "--captures",
        scratch.join("captures").into_os_string(),
    );
    if junit.is_some() {
        args = with_flag(&args, "--junit", scratch.join("junit.xml").into_os_string());
    }
    let code = forward(&args)?;
    if let Some(j) = junit {
        if scratch.join("junit.xml").exists() {
            std::fs::copy(scratch.join("junit.xml"), j)
                .with_context(|| format!("copy the VM's JUnit report to {}", j.display()))?;
        }
    }
    // The guest's messages name paths in the share; say where they are now.
    if scratch.join("pending").exists() {
        move_tree(&scratch.join("pending"), pending)?;
        eprintln!(
            "lvslab: {} (changed paths) was moved to {}",
            scratch.join("pending").display(),
            pending.display()
        );
    }
    if scratch.join("captures").exists() {
        let dest = captures.unwrap_or(Path::new("captures"));
        move_tree(&scratch.join("captures"), dest)?;
        eprintln!(
            "lvslab: the VM's captures ({}) were moved to {}",
            scratch.join("captures").display(),
            dest.display()
        );
    }
    let _ = std::fs::remove_dir_all(&scratch);
    stop_if_idle()?;
    Ok(code)
}

/// `simulate --backend ipvs|--compare` on a host without IPVS: the script runs against
/// the VM's kernel (`--here` inside). A script the guest cannot see (stdin, or under a
/// directory the guest has its own tmpfs for) goes through the share first.
pub fn simulate(file: Option<&Path>) -> Result<i32> {
    let mut args = own_args();
    let visible = |p: &Path| {
        let p = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned());
        !lvslab_vm::GUEST_TMPFS.iter().any(|d| p.starts_with(d))
    };
    let scratch;
    match file {
        Some(f) if f != Path::new("-") && visible(f) => {}
        _ => {
            scratch = share_scratch("simulate")?;
            let copy = scratch.join("script.sim");
            let text = match file {
                Some(f) if f != Path::new("-") => {
                    std::fs::read(f).with_context(|| format!("read {}", f.display()))?
                }
                _ => {
                    let mut b = Vec::new();
                    std::io::Read::read_to_end(&mut std::io::stdin(), &mut b)?;
                    b
                }
            };
            std::fs::write(&copy, text)?;
            let pos = file.and_then(|f| args.iter().position(|a| Path::new(a) == f));
            match pos {
                Some(i) => args[i] = copy.into_os_string(),
                None => args.push(copy.into_os_string()),
            }
        }
    }
    args.push("--here".into());
    let code = forward(&args)?;
    stop_if_idle()?;
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_writes_to_the_share_and_leaves_the_command_alone() {
        let a: Vec<OsString> = [
            "capture", "--out", "mine", "--path", "--", "x", "--out", "y",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let b = capture_args(&a, "/share/c".into());
        let b: Vec<&str> = b.iter().map(|s| s.to_str().unwrap()).collect();
        assert_eq!(
            b,
            ["capture", "--path", "--out", "/share/c", "--", "x", "--out", "y"]
        );
    }

    #[test]
    fn a_flag_the_user_gave_is_replaced_not_repeated() {
        let a: Vec<OsString> = ["test", "--junit", "r.xml", "nat-rr", "--captures=c"]
            .iter()
            .map(OsString::from)
            .collect();
        let b = with_flag(&a, "--junit", "/s/j.xml".into());
        let b = with_flag(&b, "--captures", "/s/c".into());
        let b: Vec<&str> = b.iter().map(|s| s.to_str().unwrap()).collect();
        assert_eq!(
            b,
            [
                "test",
                "nat-rr",
                "--junit",
                "/s/j.xml",
                "--captures",
                "/s/c"
            ]
        );
    }
}
