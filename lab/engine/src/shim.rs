//! The `ipvsadm` of a userspace lab's director namespace: a small script, one per director,
//! that hands its arguments to `lvslab ipvsadm --lab LAB --node NODE`, so what a person
//! types in the director (`lvslab exec --lab L director -- ipvsadm -Ln`) reaches lvslab's
//! director as it would reach the kernel's. `lvslab exec` puts its directory first on PATH.
//! Kernel labs need none: the namespace has the real ipvsadm and the real IPVS.

use crate::{EngineError, Result};
use lvslab_netns::Lab;
use std::path::{Path, PathBuf};

/// The directory holding `node`'s `ipvsadm` in a lab whose run directory is `run_dir`.
pub fn ipvsadm_shim_dir(run_dir: &Path, node: &str) -> PathBuf {
    run_dir.join("bin").join(node)
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The script: `exec EXE ipvsadm --lab LAB --node NODE -- "$@"`.
pub fn ipvsadm_shim(exe: &Path, lab: &str, node: &str) -> String {
    format!(
        "#!/bin/sh\n# lvslab: ipvsadm against the userspace director {node} of lab {lab}.\nexec {} ipvsadm --lab {} --node {} -- \"$@\"\n",
        sh_quote(&exe.to_string_lossy()),
        sh_quote(lab),
        sh_quote(node)
    )
}

/// Writes an `ipvsadm` script for every node running lvslab's userspace director, calling
/// the lvslab executable `exe` (the one the lab's daemons run from).
pub(crate) fn write_ipvsadm_shims(lab: &Lab, exe: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let exe = std::fs::canonicalize(exe).unwrap_or_else(|_| exe.to_path_buf());
    let directors = crate::daemon_plan(lab.name(), &lab.state.topology, lab.state.backend)
        .into_iter()
        .filter(|d| d.program.is_none() && d.args.first().is_some_and(|a| a == "director"))
        .map(|d| d.node);
    for node in directors {
        let dir = ipvsadm_shim_dir(&lab.run_dir(), &node);
        let path = dir.join("ipvsadm");
        let io = |source| EngineError::Shim {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        std::fs::write(&path, ipvsadm_shim(&exe, lab.name(), &node)).map_err(io)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).map_err(io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shim_passes_every_argument_to_lvslab_ipvsadm() {
        let s = ipvsadm_shim(Path::new("/opt/it's/lvslab"), "nat", "director");
        assert_eq!(
            s.lines().last(),
            Some(r#"exec '/opt/it'\''s/lvslab' ipvsadm --lab 'nat' --node 'director' -- "$@""#)
        );
        assert_eq!(
            ipvsadm_shim_dir(Path::new("/run/lvslab/nat"), "director"),
            Path::new("/run/lvslab/nat/bin/director")
        );
    }
}
