//! Fetch: the VM's packages from Debian's archive into the cache, unpacked, never
//! installed, plus the vmlinux and initramfs built from them.
//!
//! Idempotent through a stamp file written last: a cache with a stamp of the current
//! format is complete and is reused as is; anything else is fetched again from scratch.
use crate::error::{IoAt, VmError};
use crate::kernel::{extract_vmlinux, ModuleTree};
use crate::{initramfs, VmConfig};
use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Bumped whenever what a fetch builds changes (init script, module list, layout), so
/// an older cache is rebuilt rather than booted.
pub(crate) const STAMP_FORMAT: u32 = 10;

/// Space a fetch needs: about 90 MB of .debs, 400 MB for the unpacked kernel while the
/// initramfs is built, and the rest.
const NEEDED_MIB: u64 = 700;

/// Packages fetched besides the kernel. qemu-system-data holds microvm's qboot firmware;
/// xz-utils is fetched rather than required on the host, to inflate the bzImage payload.
const PACKAGES: &[&str] = &[
    "qemu-system-x86",
    "qemu-system-common",
    "qemu-system-data",
    "busybox-static",
    "ipvsadm",
    "xz-utils",
];

/// Where apt keeps the package lists `apt-get update` downloads.
const APT_LISTS: &str = "/var/lib/apt/lists";

/// Packages whose missing shared-library dependencies are fetched too.
const LIB_ROOTS: &[&str] = &["qemu-system-x86", "ipvsadm"];

/// What a complete fetch recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// Kernel release, e.g. `6.1.0-57-amd64`.
    pub kernel: String,
    /// Every package downloaded and unpacked.
    pub packages: Vec<String>,
    /// Modules in the initramfs, in load order.
    pub modules: Vec<String>,
}

impl Stamp {
    fn render(&self) -> String {
        format!(
            "format={STAMP_FORMAT}\nkernel={}\npackages={}\nmodules={}\n",
            self.kernel,
            self.packages.join(" "),
            self.modules.join(" ")
        )
    }

    fn parse(text: &str) -> Option<Self> {
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix('=')))
        };
        if field("format")?.parse::<u32>().ok()? != STAMP_FORMAT {
            return None;
        }
        let words = |s: &str| s.split_whitespace().map(String::from).collect();
        Some(Self {
            kernel: field("kernel")?.to_string(),
            packages: words(field("packages")?),
            modules: words(field("modules")?),
        })
    }
}

/// How to fetch.
pub struct FetchOptions<'a> {
    /// Run `apt-get update` first when the package lists are empty.
    pub apt_update: bool,
    /// Fetch again even when the cache is complete.
    pub force: bool,
    /// Called with a one-line description as each stage starts.
    pub progress: &'a mut dyn FnMut(&str),
}

/// The stamp of a complete cache, if there is one.
pub fn fetched(cfg: &VmConfig) -> Option<Stamp> {
    let stamp = Stamp::parse(&std::fs::read_to_string(cfg.stamp()).ok()?)?;
    let complete = cfg.vmlinux().is_file()
        && cfg.initramfs().is_file()
        && cfg.root_dir().join("usr/bin/qemu-system-x86_64").is_file();
    complete.then_some(stamp)
}

/// Remove the whole cache directory.
pub fn remove_cache(cfg: &VmConfig) -> Result<bool, VmError> {
    match std::fs::remove_dir_all(&cfg.cache_dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).at(&cfg.cache_dir),
    }
}

/// Fetch and build everything the VM needs, unless the cache is already complete.
pub fn fetch(cfg: &VmConfig, opts: FetchOptions<'_>) -> Result<Stamp, VmError> {
    let progress = opts.progress;
    if !opts.force {
        if let Some(s) = fetched(cfg) {
            return Ok(s);
        }
    }
    if !crate::is_root() {
        return Err(VmError::NotRoot);
    }
    for (tool, fix) in [
        (
            "apt-get",
            "the VM is fetched from Debian's archive; run on Debian or Ubuntu",
        ),
        ("apt-cache", "install apt"),
        ("dpkg", "install dpkg"),
        ("dpkg-query", "install dpkg"),
    ] {
        if crate::kernel::find_tool(&[], tool).is_none() {
            return Err(VmError::ToolMissing { tool, fix });
        }
    }
    let data = cfg.data_dir();
    std::fs::create_dir_all(&data).at(&data)?;
    // Two fetches at once (a test and a CLI run) would empty each other's trees.
    let _lock = crate::vm::lock_file(&data.join(".lock"))?;
    if !opts.force {
        if let Some(s) = fetched(cfg) {
            return Ok(s);
        }
    }
    check_space(&cfg.cache_dir)?;
    let _ = std::fs::remove_file(cfg.stamp());

    if lists_empty(Path::new(APT_LISTS)) {
        if !opts.apt_update {
            return Err(VmError::NoPackageLists {
                package: "linux-image-amd64".into(),
            });
        }
        progress("apt-get update (the package lists are empty)");
        run(Command::new("apt-get").arg("update"))?;
    }

    progress("resolving packages");
    let kernel = kernel_release()?;
    let kernel_pkg = format!("linux-image-{kernel}");
    let mut packages: Vec<String> = PACKAGES.iter().map(|s| s.to_string()).collect();
    packages.extend(missing_libraries()?);

    let debs = cfg.debs_dir();
    reset_dir(&debs)?;
    let t = Instant::now();
    progress(&format!(
        "downloading {} packages and {kernel_pkg} into {}",
        packages.len(),
        debs.display()
    ));
    let mut all = packages.clone();
    all.push(kernel_pkg.clone());
    download(&debs, &all)?;
    progress(&format!("downloaded in {:.1} s", t.elapsed().as_secs_f64()));

    progress("unpacking (dpkg -x)");
    let root = cfg.root_dir();
    let ktree = cfg.kernel_tree();
    reset_dir(&root)?;
    reset_dir(&ktree)?;
    for p in &packages {
        run(Command::new("dpkg")
            .arg("-x")
            .arg(deb_file(&debs, p)?)
            .arg(&root))?;
    }
    run(Command::new("dpkg")
        .arg("-x")
        .arg(deb_file(&debs, &kernel_pkg)?)
        .arg(&ktree))?;

    progress("extracting vmlinux from the bzImage");
    let bz = ktree.join(format!("boot/vmlinuz-{kernel}"));
    if !bz.is_file() {
        return Err(VmError::CommandFailed {
            command: format!("dpkg -x {kernel_pkg}"),
            detail: format!("no {} after unpacking", bz.display()),
        });
    }
    extract_vmlinux(&bz, &cfg.tool_dirs(), &cfg.vmlinux())?;

    progress("building the initramfs");
    let tree = ModuleTree::open(
        &ktree.join(format!("lib/modules/{kernel}")),
        &cfg.tool_dirs(),
    )?;
    let busybox = root.join("bin/busybox");
    let modules = initramfs::build(&tree, &busybox, &cfg.initramfs())?;
    // The unpacked kernel is 400 MB of modules the VM never sees; its .deb stays in debs/.
    std::fs::remove_dir_all(&ktree).at(&ktree)?;

    all.sort();
    let stamp = Stamp {
        kernel,
        packages: all,
        modules,
    };
    std::fs::write(cfg.stamp(), stamp.render()).at(&cfg.stamp())?;
    Ok(stamp)
}

fn reset_dir(d: &Path) -> Result<(), VmError> {
    match std::fs::remove_dir_all(d) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).at(d),
    }
    std::fs::create_dir_all(d).at(d)
}

fn check_space(dir: &Path) -> Result<(), VmError> {
    let Ok(st) = nix::sys::statvfs::statvfs(dir) else {
        return Ok(());
    };
    let available_mib = st.blocks_available().saturating_mul(st.fragment_size()) >> 20;
    if available_mib < NEEDED_MIB {
        return Err(VmError::DiskFull {
            path: dir.to_path_buf(),
            available_mib,
            needed_mib: NEEDED_MIB,
        });
    }
    Ok(())
}

/// apt's lists directory holds no Packages index: `apt-get update` never ran (a fresh
/// container) or its lists were cleaned.
fn lists_empty(dir: &Path) -> bool {
    match std::fs::read_dir(dir) {
        Ok(rd) => !rd
            .flatten()
            .any(|e| e.file_name().to_string_lossy().contains("_Packages")),
        Err(_) => true,
    }
}

/// Run a command; on failure name it, and turn "No space left" into [`VmError::DiskFull`].
fn run(cmd: &mut Command) -> Result<String, VmError> {
    let line = format!(
        "{} {}",
        cmd.get_program().to_string_lossy(),
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let out = cmd.output().map_err(|e| VmError::CommandFailed {
        command: line.clone(),
        detail: e.to_string(),
    })?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        if stderr.contains("No space left on device") {
            let dir = cmd
                .get_current_dir()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("."));
            return Err(VmError::DiskFull {
                path: dir,
                available_mib: 0,
                needed_mib: NEEDED_MIB,
            });
        }
        let tail: Vec<&str> = stderr.lines().rev().take(6).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(VmError::CommandFailed {
            command: line,
            detail: format!("{}: {}", out.status, tail.join("\n")),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The release of Debian's current kernel (what `linux-image-amd64` depends on).
fn kernel_release() -> Result<String, VmError> {
    let deps = apt_depends(&["linux-image-amd64"]).map_err(|_| VmError::NoPackageLists {
        package: "linux-image-amd64".into(),
    })?;
    deps.iter()
        .find_map(|(_, d)| {
            d.strip_prefix("linux-image-")
                .filter(|v| v.ends_with("-amd64"))
                .map(String::from)
        })
        .ok_or_else(|| VmError::NoPackageLists {
            package: "linux-image-amd64".into(),
        })
}

/// `(package, dependency)` pairs of `apt-cache depends`, hard dependencies only.
fn apt_depends(pkgs: &[&str]) -> Result<Vec<(String, String)>, VmError> {
    let out = run(Command::new("apt-cache")
        .args([
            "depends",
            "--no-recommends",
            "--no-suggests",
            "--no-conflicts",
            "--no-breaks",
            "--no-replaces",
            "--no-enhances",
        ])
        .args(pkgs))?;
    let mut pairs = Vec::new();
    let mut current = String::new();
    for line in out.lines() {
        if !line.starts_with(' ') {
            current = line.trim().to_string();
            continue;
        }
        let t = line.trim_start().trim_start_matches('|');
        if let Some(d) = t
            .strip_prefix("Depends:")
            .or_else(|| t.strip_prefix("PreDepends:"))
        {
            let d = d.trim();
            // `<name>` is a virtual package: a real one providing it follows on its own line.
            if !d.starts_with('<') {
                pairs.push((current.clone(), d.to_string()));
            }
        }
    }
    Ok(pairs)
}

/// Library packages (and their library dependencies) that qemu and ipvsadm need and
/// the host lacks. Only `lib*` packages are followed, so firmware, qemu-system-common's
/// display stack and the like are not pulled in.
fn missing_libraries() -> Result<Vec<String>, VmError> {
    let mut wanted = BTreeSet::new();
    let mut queue: VecDeque<String> = LIB_ROOTS.iter().map(|s| s.to_string()).collect();
    let mut asked = BTreeSet::new();
    while !queue.is_empty() {
        let batch: Vec<String> = queue
            .drain(..)
            .filter(|p| asked.insert(p.clone()))
            .collect();
        if batch.is_empty() {
            break;
        }
        let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
        let deps: BTreeSet<String> = apt_depends(&refs)?
            .into_iter()
            .map(|(_, d)| d)
            .filter(|d| d.starts_with("lib"))
            .collect();
        let installed = installed(&deps.iter().map(String::as_str).collect::<Vec<_>>());
        for d in deps {
            if !installed.contains(&d) && wanted.insert(d.clone()) {
                queue.push_back(d);
            }
        }
    }
    Ok(wanted.into_iter().collect())
}

/// Which of `pkgs` dpkg reports as installed.
fn installed(pkgs: &[&str]) -> BTreeSet<String> {
    if pkgs.is_empty() {
        return BTreeSet::new();
    }
    // dpkg-query exits 1 when some package is unknown but still prints the rest.
    let out = Command::new("dpkg-query")
        .arg("-W")
        .arg("-f=${Package} ${db:Status-Abbrev}\n")
        .args(pkgs)
        .output();
    let Ok(out) = out else {
        return BTreeSet::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (name, status) = l.split_once(' ')?;
            status.starts_with("ii").then(|| name.to_string())
        })
        .collect()
}

fn download(dir: &Path, pkgs: &[String]) -> Result<(), VmError> {
    let res = run(Command::new("apt-get")
        .current_dir(dir)
        // Root downloads into a directory the _apt sandbox user may not be able to enter.
        .args(["-o", "APT::Sandbox::User=root", "download"])
        .args(pkgs));
    match res {
        Err(VmError::CommandFailed { detail, .. })
            if detail.contains("Unable to locate package")
                || detail.contains("has no installation candidate") =>
        {
            let package = detail
                .split_once("Unable to locate package ")
                .map(|(_, p)| p.lines().next().unwrap_or_default().trim().to_string())
                .unwrap_or_else(|| pkgs.join(" "));
            Err(VmError::NoPackageLists { package })
        }
        Err(VmError::DiskFull { needed_mib, .. }) => Err(VmError::DiskFull {
            path: dir.to_path_buf(),
            available_mib: 0,
            needed_mib,
        }),
        other => other.map(|_| ()),
    }
}

/// The .deb apt-get downloaded for `pkg` (named `pkg_VERSION_ARCH.deb`).
fn deb_file(dir: &Path, pkg: &str) -> Result<PathBuf, VmError> {
    let prefix = format!("{pkg}_");
    for e in std::fs::read_dir(dir).at(dir)? {
        let e = e.at(dir)?;
        let n = e.file_name();
        let n = n.to_string_lossy();
        if n.starts_with(&prefix) && n.ends_with(".deb") {
            return Ok(e.path());
        }
    }
    Err(VmError::CommandFailed {
        command: format!("apt-get download {pkg}"),
        detail: format!("no {prefix}*.deb in {}", dir.display()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_lists_are_empty_until_an_index_is_there() {
        let d = tempfile::tempdir().unwrap();
        assert!(lists_empty(&d.path().join("missing")));
        std::fs::write(d.path().join("lock"), "").unwrap();
        std::fs::create_dir(d.path().join("partial")).unwrap();
        assert!(lists_empty(d.path()));
        std::fs::write(
            d.path()
                .join("deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages.lz4"),
            "",
        )
        .unwrap();
        assert!(!lists_empty(d.path()));
        let e = VmError::NoPackageLists {
            package: "linux-image-amd64".into(),
        };
        assert!(e.to_string().contains("apt-get update"), "{e}");
    }

    #[test]
    fn stamp_round_trips_and_rejects_other_formats() {
        let s = Stamp {
            kernel: "6.1.0-57-amd64".into(),
            packages: vec!["a".into(), "b".into()],
            modules: vec!["ip_vs".into()],
        };
        assert_eq!(Stamp::parse(&s.render()), Some(s.clone()));
        let old = s
            .render()
            .replace(&format!("format={STAMP_FORMAT}"), "format=0");
        assert_eq!(Stamp::parse(&old), None);
        assert_eq!(Stamp::parse("garbage"), None);
    }
}
