//! The glob(3) keepalived's `include` calls: `GLOB_MARK | GLOB_BRACE`, so `*`, `?`, `[...]`
//! and `{a,b}`; a leading `.` in a name is matched only by a literal `.`; the matches of each
//! brace alternative come sorted (glob's default), alternatives in the order written.
use std::path::{Path, PathBuf};

/// The files and directories `pattern` matches, relative to `dir` unless absolute.
pub(crate) fn glob(dir: &Path, pattern: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in braces(pattern) {
        let (mut bases, rest) = if let Some(r) = p.strip_prefix('/') {
            (vec![PathBuf::from("/")], r.to_string())
        } else {
            (vec![dir.to_path_buf()], p.clone())
        };
        let parts: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            let mut next = Vec::new();
            for b in &bases {
                if !has_magic(part) {
                    let c = b.join(part);
                    if (last && c.exists()) || c.is_dir() {
                        next.push(c);
                    }
                    continue;
                }
                let Ok(rd) = std::fs::read_dir(b) else {
                    continue;
                };
                let mut names: Vec<String> = rd
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| fnmatch(part.as_bytes(), n.as_bytes()))
                    .collect();
                names.sort();
                for n in names {
                    let c = b.join(n);
                    if last || c.is_dir() {
                        next.push(c);
                    }
                }
            }
            bases = next;
        }
        out.extend(bases);
    }
    out
}

fn has_magic(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// `{a,b}c` -> `ac`, `bc` (nested braces too); a `\{` is literal.
fn braces(p: &str) -> Vec<String> {
    let b = p.as_bytes();
    let mut depth = 0;
    let mut start = None;
    let mut commas = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b'{' => {
                if depth == 0 {
                    start = Some(i);
                    commas.clear();
                }
                depth += 1;
            }
            b',' if depth == 1 => commas.push(i),
            b'}' if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    if let Some(s) = start {
                        let mut bounds = vec![s];
                        bounds.extend(&commas);
                        bounds.push(i);
                        let (pre, post) = (&p[..s], &p[i + 1..]);
                        return bounds
                            .windows(2)
                            .flat_map(|w| braces(&format!("{pre}{}{post}", &p[w[0] + 1..w[1]])))
                            .collect();
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    vec![p.to_string()]
}

/// fnmatch(3) without flags but with glob's leading-period rule.
fn fnmatch(p: &[u8], n: &[u8]) -> bool {
    if n.first() == Some(&b'.') && p.first() != Some(&b'.') {
        return false;
    }
    matches(p, n)
}

fn matches(p: &[u8], n: &[u8]) -> bool {
    match p.first() {
        None => n.is_empty(),
        Some(b'*') => (0..=n.len()).any(|k| matches(&p[1..], &n[k..])),
        Some(b'?') => !n.is_empty() && matches(&p[1..], &n[1..]),
        Some(b'[') => {
            let Some(&c) = n.first() else { return false };
            let mut i = 1;
            let negate = matches!(p.get(1), Some(b'!') | Some(b'^'));
            if negate {
                i += 1;
            }
            let mut hit = false;
            let mut first = true;
            while i < p.len() && (first || p[i] != b']') {
                first = false;
                if p.get(i + 1) == Some(&b'-') && p.get(i + 2).is_some_and(|&e| e != b']') {
                    if (p[i]..=p[i + 2]).contains(&c) {
                        hit = true;
                    }
                    i += 3;
                } else {
                    if p[i] == c {
                        hit = true;
                    }
                    i += 1;
                }
            }
            if i >= p.len() {
                // No closing bracket: a literal '['.
                return c == b'[' && matches(&p[1..], &n[1..]);
            }
            hit != negate && matches(&p[i + 1..], &n[1..])
        }
        Some(b'\\') if p.len() > 1 => n.first() == Some(&p[1]) && matches(&p[2..], &n[1..]),
        Some(&c) => n.first() == Some(&c) && matches(&p[1..], &n[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(fnmatch(b"*.conf", b"a.conf"));
        assert!(!fnmatch(b"*.conf", b".hidden.conf"));
        assert!(fnmatch(b"vs[0-9].conf", b"vs7.conf"));
        assert!(!fnmatch(b"vs[!0-9].conf", b"vs7.conf"));
        assert_eq!(braces("a/{x,y}.conf"), ["a/x.conf", "a/y.conf"]);
    }

    #[test]
    fn globbing_a_directory() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("conf.d")).unwrap();
        for n in ["b.conf", "a.conf", "c.txt"] {
            std::fs::write(d.path().join("conf.d").join(n), "").unwrap();
        }
        let got: Vec<String> = glob(d.path(), "conf.d/*.conf")
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(got, ["a.conf", "b.conf"]);
        assert_eq!(glob(d.path(), "conf.d/{c.txt,a.conf}").len(), 2);
    }
}
