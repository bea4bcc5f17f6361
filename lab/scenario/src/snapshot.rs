//! Path snapshots in insta's `.snap` format, stored in `scenarios/snapshots/`, so
//! `cargo insta review` can show and accept a changed path.

use lvslab_netns::Backend;
use std::path::{Path, PathBuf};

/// What comparing a path with its snapshot found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The path equals the snapshot.
    Same,
    /// No snapshot yet: the path was written as `.snap.new` for review.
    New {
        /// The `.snap.new` file.
        pending: PathBuf,
    },
    /// The path differs: the new path was written as `.snap.new` beside the old one.
    Changed {
        /// The `.snap.new` file.
        pending: PathBuf,
        /// A unified diff, old snapshot to new path.
        diff: String,
    },
}

/// Errors reading or writing snapshots.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The snapshot exists but cannot be read as an insta snapshot.
    #[error("{path}: not a readable insta snapshot: {message}")]
    Read {
        /// The file.
        path: PathBuf,
        /// insta's message.
        message: String,
    },
    /// Writing the `.snap.new` failed.
    #[error("{path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The snapshot file of scenario `name` in `dir`.
pub fn snap_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.snap"))
}

/// Serializes `text` the way insta writes a file snapshot: a YAML header, `---`, the text.
pub fn render(source: &str, description: &str, text: &str) -> String {
    format!(
        "---\nsource: {}\ndescription: {}\nexpression: path\n---\n{}\n",
        yaml_scalar(source),
        yaml_scalar(description),
        text.trim_end()
    )
}

fn yaml_scalar(s: &str) -> String {
    // Plain when it is path-like (as insta writes `source:`), otherwise a double-quoted
    // JSON string, which is valid YAML whatever the text holds.
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-'));
    if plain {
        s.to_owned()
    } else {
        serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
    }
}

/// The text of an existing snapshot, read by insta itself.
pub fn read(path: &Path) -> Result<Option<String>, SnapshotError> {
    if !path.exists() {
        return Ok(None);
    }
    let snap = insta::Snapshot::from_file(path).map_err(|e| SnapshotError::Read {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    match snap.contents() {
        insta::internals::SnapshotContents::Text(t) => Ok(Some(t.to_string())),
        _ => Err(SnapshotError::Read {
            path: path.to_owned(),
            message: "binary snapshot; path snapshots are text".to_owned(),
        }),
    }
}

/// Compares `text` with the snapshot at `path`; on any difference writes `<path>.new`
/// (insta's pending-snapshot name) and says so. A stale `.snap.new` is removed on a match.
pub fn check(
    path: &Path,
    source: &str,
    description: &str,
    text: &str,
) -> Result<Outcome, SnapshotError> {
    check_against(
        path,
        &path.with_extension("snap.new"),
        source,
        description,
        text,
    )
}

/// The snapshot a run on `backend` is held to, and where a changed path is offered: the
/// shared `<name>.snap` unless the backends legitimately differ there, in which case
/// `<name>@<backend>.snap` sits beside it (docs/scenarios.md says why). A changed path on a
/// backend other than userspace is always offered as `<name>@<backend>.snap.new`, so
/// accepting it never overwrites the shared snapshot.
pub fn paths_for(dir: &Path, name: &str, backend: Backend) -> (PathBuf, PathBuf) {
    let shared = snap_path(dir, name);
    if backend == Backend::Userspace {
        let pending = shared.with_extension("snap.new");
        return (shared, pending);
    }
    let own = snap_path(dir, &format!("{name}@{backend}"));
    let pending = own.with_extension("snap.new");
    if own.exists() {
        (own, pending)
    } else {
        (shared, pending)
    }
}

/// Like [`check`], with the pending file named apart from the snapshot compared with.
pub fn check_against(
    path: &Path,
    pending: &Path,
    source: &str,
    description: &str,
    text: &str,
) -> Result<Outcome, SnapshotError> {
    let pending = pending.to_owned();
    let old = read(path)?;
    let new_text = text.trim_end();
    if let Some(old) = &old {
        if old.trim_end() == new_text {
            let _ = std::fs::remove_file(&pending);
            return Ok(Outcome::Same);
        }
    }
    if let Some(dir) = pending.parent() {
        std::fs::create_dir_all(dir).map_err(|source| SnapshotError::Write {
            path: dir.to_owned(),
            source,
        })?;
    }
    std::fs::write(&pending, render(source, description, text)).map_err(|source| {
        SnapshotError::Write {
            path: pending.clone(),
            source,
        }
    })?;
    Ok(match old {
        None => Outcome::New { pending },
        Some(old) => Outcome::Changed {
            diff: diff(&old, new_text),
            pending,
        },
    })
}

/// A unified diff with 3 lines of context, `-` old snapshot, `+` new path.
pub fn diff(old: &str, new: &str) -> String {
    let (old, new) = (
        format!("{}\n", old.trim_end()),
        format!("{}\n", new.trim_end()),
    );
    similar::TextDiff::from_lines(&old, &new)
        .unified_diff()
        .context_radius(3)
        .header("snapshot", "this run")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_snapshots_read_back_through_insta() {
        let dir = tempfile::tempdir().unwrap();
        let p = snap_path(dir.path(), "nat-rr");
        let text = "## 1: TCP a -> b\n\nclient:eth0 out x\n";
        assert_eq!(
            check(&p, "scenarios/nat-rr.toml", "d: \"q\"", text).unwrap(),
            Outcome::New {
                pending: p.with_extension("snap.new")
            }
        );
        // Accept it the way `cargo insta accept` does: rename.
        std::fs::rename(p.with_extension("snap.new"), &p).unwrap();
        assert_eq!(read(&p).unwrap().unwrap().trim_end(), text.trim_end());
        assert_eq!(check(&p, "s", "d", text).unwrap(), Outcome::Same);
        match check(&p, "s", "d", "## 1: TCP a -> b\n\nclient:eth0 out y\n").unwrap() {
            Outcome::Changed { diff, pending } => {
                assert!(diff.contains("-client:eth0 out x") && diff.contains("+client:eth0 out y"));
                assert!(pending.exists());
            }
            other => panic!("{other:?}"),
        }
        // Matching again clears the stale pending file.
        assert_eq!(check(&p, "s", "d", text).unwrap(), Outcome::Same);
        assert!(!p.with_extension("snap.new").exists());
    }

    #[test]
    fn a_backend_is_held_to_the_shared_snapshot_until_it_has_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let shared = snap_path(dir.path(), "nat-rr");
        let text = "## 1: TCP a -> b\n\nclient:eth0 out x\n";
        std::fs::write(&shared, render("s", "d", text)).unwrap();
        let (snap, pending) = paths_for(dir.path(), "nat-rr", Backend::Ipvs);
        assert_eq!(snap, shared);
        assert_eq!(pending, dir.path().join("nat-rr@ipvs.snap.new"));
        // The same path passes against the shared snapshot.
        assert_eq!(
            check_against(&snap, &pending, "s", "d", text).unwrap(),
            Outcome::Same
        );
        // A different one is offered as the backend's own, the shared one untouched.
        let kernel = "## 1: TCP a -> b\n\nclient:eth0 out z\n";
        let out = check_against(&snap, &pending, "s", "d", kernel).unwrap();
        assert!(matches!(out, Outcome::Changed { .. }), "{out:?}");
        assert!(pending.exists());
        assert_eq!(read(&shared).unwrap().unwrap().trim_end(), text.trim_end());
        // Accepted, it is what that backend is held to from then on.
        std::fs::rename(&pending, dir.path().join("nat-rr@ipvs.snap")).unwrap();
        let (snap, _) = paths_for(dir.path(), "nat-rr", Backend::Ipvs);
        assert_eq!(snap, dir.path().join("nat-rr@ipvs.snap"));
        assert_eq!(
            paths_for(dir.path(), "nat-rr", Backend::Userspace).0,
            shared
        );
    }
}
