//! Debian's kernel package turned into what qemu's microvm boots: an ELF vmlinux (the
//! bzImage's compressed payload, found and inflated as the kernel's
//! scripts/extract-vmlinux does) and the modules IPVS needs, in dependency order.
//!
//! Debian's .deb ships no modules.dep (depmod writes it at install time), so the order
//! comes from each module's own `.modinfo` section, the source depmod reads too.
use crate::error::{IoAt, VmError};
use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The payload decompressors tried, by magic bytes, as in scripts/extract-vmlinux.
const DECOMPRESSORS: &[(&[u8], &str, &[&str])] = &[
    (
        &[0xfd, b'7', b'z', b'X', b'Z', 0x00],
        "xz",
        &["-dc", "--single-stream"],
    ),
    (&[0x28, 0xb5, 0x2f, 0xfd], "zstd", &["-dcq"]),
    (&[0x1f, 0x8b, 0x08], "gzip", &["-dcq"]),
];

/// Where to find decompressor programs: the cache's own unpacked tools first.
pub(crate) fn find_tool(tool_dirs: &[PathBuf], name: &str) -> Option<PathBuf> {
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    tool_dirs
        .iter()
        .chain(path_dirs.iter())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Pipe `input` through `prog args` and return its stdout, whatever its exit status
/// (trailing data after the payload makes gzip complain though the output is whole).
fn pipe_through(prog: &Path, args: &[&str], input: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut child = Command::new(prog)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut stdin = child.stdin.take();
    let mut stdout = child.stdout.take();
    let mut out = Vec::new();
    std::thread::scope(|s| {
        // Written from another thread: the decompressor fills its stdout pipe long before
        // it has read all of stdin.
        s.spawn(move || {
            if let Some(mut w) = stdin.take() {
                let _ = w.write_all(input);
            }
        });
        if let Some(r) = stdout.as_mut() {
            let _ = r.read_to_end(&mut out);
        }
    });
    let _ = child.wait()?;
    Ok(out)
}

/// Extract the ELF vmlinux from a bzImage into `out`.
pub fn extract_vmlinux(bzimage: &Path, tool_dirs: &[PathBuf], out: &Path) -> Result<(), VmError> {
    let image = std::fs::read(bzimage).at(bzimage)?;
    let mut tried = Vec::new();
    for (magic, tool, args) in DECOMPRESSORS {
        let starts: Vec<usize> = image
            .windows(magic.len())
            .enumerate()
            .filter(|(_, w)| w == magic)
            .map(|(i, _)| i)
            .collect();
        if starts.is_empty() {
            continue;
        }
        let Some(prog) = find_tool(tool_dirs, tool) else {
            tried.push(format!("a {tool} payload but no `{tool}` program"));
            continue;
        };
        for start in starts {
            let data = pipe_through(&prog, args, &image[start..]).at(&prog)?;
            if data.starts_with(b"\x7fELF") {
                std::fs::write(out, &data).at(out)?;
                return Ok(());
            }
        }
        tried.push(format!("{tool} payloads that did not inflate to ELF"));
    }
    Err(VmError::Vmlinux {
        path: bzimage.to_path_buf(),
        reason: if tried.is_empty() {
            "no xz, zstd or gzip payload found".into()
        } else {
            tried.join("; ")
        },
    })
}

/// The modules of one kernel version, indexed by name.
pub struct ModuleTree {
    dir: PathBuf,
    files: BTreeMap<String, PathBuf>,
    builtin: HashSet<String>,
    tool_dirs: Vec<PathBuf>,
}

/// Module name as the kernel spells it: file stem with `-` read as `_`.
fn module_name(file: &str) -> Option<String> {
    let stem = file
        .strip_suffix(".ko")
        .or_else(|| file.strip_suffix(".ko.xz"))
        .or_else(|| file.strip_suffix(".ko.zst"))
        .or_else(|| file.strip_suffix(".ko.gz"))?;
    Some(stem.replace('-', "_"))
}

impl ModuleTree {
    /// Index /lib/modules/VERSION (`dir`).
    pub fn open(dir: &Path, tool_dirs: &[PathBuf]) -> Result<Self, VmError> {
        let mut files = BTreeMap::new();
        let mut stack = vec![dir.join("kernel")];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).at(&d)? {
                let e = e.at(&d)?;
                let p = e.path();
                if e.file_type().at(&p)?.is_dir() {
                    stack.push(p);
                } else if let Some(n) = e.file_name().to_str().and_then(module_name) {
                    files.insert(n, p);
                }
            }
        }
        let builtin_file = dir.join("modules.builtin");
        let builtin = std::fs::read_to_string(&builtin_file)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.rsplit('/').next().and_then(module_name))
            .collect();
        Ok(Self {
            dir: dir.to_path_buf(),
            files,
            builtin,
            tool_dirs: tool_dirs.to_vec(),
        })
    }

    /// The uncompressed bytes of module `name`.
    pub fn read(&self, name: &str) -> Result<Vec<u8>, VmError> {
        let path = self.files.get(name).ok_or_else(|| VmError::ModuleMissing {
            name: name.into(),
            dir: self.dir.clone(),
        })?;
        let raw = std::fs::read(path).at(path)?;
        let fname = path.to_string_lossy();
        let tool = if fname.ends_with(".xz") {
            Some(("xz", &["-dc"][..]))
        } else if fname.ends_with(".zst") {
            Some(("zstd", &["-dcq"][..]))
        } else if fname.ends_with(".gz") {
            Some(("gzip", &["-dcq"][..]))
        } else {
            None
        };
        match tool {
            None => Ok(raw),
            Some((t, args)) => {
                let prog = find_tool(&self.tool_dirs, t).ok_or(VmError::ToolMissing {
                    tool: "xz/zstd/gzip",
                    fix: "install xz-utils, zstd or gzip to decompress kernel modules",
                })?;
                pipe_through(&prog, args, &raw).at(&prog)
            }
        }
    }

    /// `roots` and everything they depend on, each after its dependencies; roots that
    /// are built into the kernel are left out.
    pub fn load_order(&self, roots: &[&str]) -> Result<Vec<String>, VmError> {
        let mut order = Vec::new();
        let mut seen = HashSet::new();
        for r in roots {
            let r = r.replace('-', "_");
            if !self.files.contains_key(&r) && self.builtin.contains(&r) {
                continue;
            }
            self.visit(&r, &mut seen, &mut order)?;
        }
        Ok(order)
    }

    fn visit(
        &self,
        name: &str,
        seen: &mut HashSet<String>,
        order: &mut Vec<String>,
    ) -> Result<(), VmError> {
        if !seen.insert(name.to_string()) {
            return Ok(());
        }
        let path = self.files.get(name).cloned().unwrap_or_default();
        for dep in modinfo_depends(&self.read(name)?, &path)? {
            self.visit(&dep, seen, order)?;
        }
        order.push(name.to_string());
        Ok(())
    }
}

/// The `depends=` list of a module's `.modinfo` ELF section.
pub fn modinfo_depends(ko: &[u8], path: &Path) -> Result<Vec<String>, VmError> {
    let bad = |reason: &str| VmError::BadModule {
        path: path.to_path_buf(),
        reason: reason.into(),
    };
    let u16_at = |o: usize| {
        ko.get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let u32_at = |o: usize| {
        ko.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let u64_at = |o: usize| {
        ko.get(o..o + 8).map(|b| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            u64::from_le_bytes(a) as usize
        })
    };
    // ELF64, little endian: x86-64 modules only.
    if !ko.starts_with(b"\x7fELF\x02\x01") {
        return Err(bad("not a little-endian ELF64 object"));
    }
    let (shoff, shentsize, shnum, shstrndx) =
        match (u64_at(0x28), u16_at(0x3a), u16_at(0x3c), u16_at(0x3e)) {
            (Some(a), Some(b), Some(c), Some(d)) => (a, b, c, d),
            _ => return Err(bad("truncated ELF header")),
        };
    let section = |i: usize| -> Option<(usize, usize, usize)> {
        let h = shoff.checked_add(i.checked_mul(shentsize)?)?;
        Some((u32_at(h)?, u64_at(h + 24)?, u64_at(h + 32)?))
    };
    let (_, str_off, str_size) = section(shstrndx).ok_or_else(|| bad("no section names"))?;
    let names = ko
        .get(str_off..str_off.saturating_add(str_size))
        .ok_or_else(|| bad("section names out of range"))?;
    for i in 0..shnum {
        let (name_off, off, size) = section(i).ok_or_else(|| bad("section header out of range"))?;
        let name = names
            .get(name_off..)
            .and_then(|n| n.split(|&b| b == 0).next())
            .unwrap_or_default();
        if name != b".modinfo" {
            continue;
        }
        let info = ko
            .get(off..off.saturating_add(size))
            .ok_or_else(|| bad(".modinfo out of range"))?;
        for field in info.split(|&b| b == 0) {
            if let Some(deps) = field.strip_prefix(b"depends=") {
                return Ok(String::from_utf8_lossy(deps)
                    .split(',')
                    .filter(|d| !d.is_empty())
                    .map(|d| d.replace('-', "_"))
                    .collect());
            }
        }
        return Ok(Vec::new());
    }
    Err(bad("no .modinfo section"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names_read_dashes_as_underscores() {
        assert_eq!(module_name("ip_vs_rr.ko").as_deref(), Some("ip_vs_rr"));
        assert_eq!(
            module_name("crc32c-generic.ko.xz").as_deref(),
            Some("crc32c_generic")
        );
        assert_eq!(module_name("README"), None);
    }

    #[test]
    fn garbage_is_not_a_module() {
        let e = modinfo_depends(b"hello", Path::new("x.ko")).unwrap_err();
        assert!(e.to_string().contains("not a kernel module"), "{e}");
        let e = modinfo_depends(b"\x7fELF\x02\x01\0\0", Path::new("x.ko")).unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
    }
}
