//! keepalived.conf into logical lines of words, as keepalived 2.2.7's lib/parser.c reads it
//! (`read_line`, `decomment`, `alloc_strvec_r`, `check_include`), and the lines into a tree
//! of keyword nodes with optional `{ ... }` blocks (`process_stream`).
//!
//! Whitespace, exactly as keepalived has it:
//! - `decomment` strips leading spaces and tabs only, and trailing spaces and tabs;
//! - words are split on `" \t\f\n\r\v"` (parser.c's `WHITE_SPACE_STR`), nothing else;
//! - so a non-breaking space (U+00A0, bytes C2 A0, what web pages and chat paste) is *not*
//!   whitespace: it stays inside the word it touches. `\u{a0}weight 2` is the keyword
//!   "\u{a0}weight", which keepalived reports as "Unknown keyword" and ignores, and `80\u{a0}{`
//!   makes the port "80\u{a0}", which keepalived refuses. lvslab does the same and says why.
use std::path::{Path, PathBuf};

use crate::glob;
use crate::{ImportWarning, Problem};

/// One logical line: a keyword and its arguments, or a lone `{` / `}`.
#[derive(Debug, Clone)]
pub(crate) struct Line {
    pub file: usize,
    pub line: usize,
    pub words: Vec<String>,
}

/// A keyword line and the block that follows it, if any.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub file: usize,
    pub line: usize,
    pub words: Vec<String>,
    pub block: Option<Vec<Node>>,
}

impl Node {
    /// The keyword.
    pub fn key(&self) -> &str {
        self.words.first().map_or("", String::as_str)
    }
    /// Argument `i` (1 is the first after the keyword).
    pub fn arg(&self, i: usize) -> Option<&str> {
        self.words.get(i).map(String::as_str)
    }
    /// The block's nodes (empty without a block).
    pub fn children(&self) -> &[Node] {
        self.block.as_deref().unwrap_or(&[])
    }
}

/// Reads the main file and its includes.
pub(crate) struct Reader {
    pub files: Vec<PathBuf>,
    pub lines: Vec<Line>,
    pub problems: Vec<Problem>,
    pub warnings: Vec<ImportWarning>,
    depth: usize,
}

/// keepalived has no include depth limit of its own (it runs out of file descriptors);
/// lvslab stops a loop of includes here.
const MAX_INCLUDE_DEPTH: usize = 32;

impl Reader {
    pub fn new() -> Self {
        Reader {
            files: Vec::new(),
            lines: Vec::new(),
            problems: Vec::new(),
            warnings: Vec::new(),
            depth: 0,
        }
    }

    pub fn path(&self, file: usize) -> PathBuf {
        self.files.get(file).cloned().unwrap_or_default()
    }

    fn warn(&mut self, file: usize, line: usize, message: impl Into<String>) {
        self.warnings.push(ImportWarning {
            file: self.path(file),
            line,
            message: message.into(),
        });
    }

    fn error(&mut self, file: usize, line: usize, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.path(file),
            line,
            message: message.into(),
        });
    }

    /// Reads `text` as the file `path`; includes are read from disk relative to the
    /// directory of the file that names them (keepalived chdir()s into it: parser.c
    /// `open_conf_file`).
    pub fn read_text(&mut self, path: &Path, text: &str) {
        let file = self.files.len();
        self.files.push(path.to_path_buf());
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        // fgets() lines; "\n" then any "\r"s at the end are removed (read_line).
        for (i, raw) in text.split('\n').enumerate() {
            let lineno = i + 1;
            let raw = raw.trim_end_matches('\r');
            if raw.is_empty() {
                continue;
            }
            let mut buf = decomment(raw);
            if let Some(q) = buf.1 {
                self.warn(file, lineno, q);
            }
            if buf.0.is_empty() {
                continue;
            }
            let first = buf.0.as_bytes()[0];
            if first == b'$'
                || first == b'@'
                || buf.0.starts_with("~SEQ")
                || buf.0.starts_with("~LST")
            {
                self.error(
                    file,
                    lineno,
                    format!(
                        "`{}`: lvslab does not expand keepalived's parameter definitions, conditional lines or sequences ($NAME=, @id, ~SEQ, ~LST); expand them first (keepalived -d --config-test prints the result)",
                        buf.0.split_whitespace().next().unwrap_or("")
                    ),
                );
                continue;
            }
            // Split at braces outside quotes: each `{` and `}` becomes a line of its own
            // (read_line's line_residue), so `80{` and `{ weight 1 }` read as keepalived does.
            loop {
                if let Some(pattern) = include_pattern(&buf.0) {
                    self.include(file, lineno, &dir, pattern);
                    break;
                }
                let (head, rest) = split_brace(&buf.0);
                let words = self.words(file, lineno, &head);
                if !words.is_empty() {
                    self.lines.push(Line {
                        file,
                        line: lineno,
                        words,
                    });
                }
                match rest {
                    Some(r) if !r.is_empty() => buf = (r, None),
                    _ => break,
                }
            }
        }
    }

    /// `alloc_strvec_r`: words split on WHITE_SPACE_STR; a word starting with `"` runs to
    /// the next `"` (without the quotes); an unquoted word also ends at a `"`.
    fn words(&mut self, file: usize, line: usize, s: &str) -> Vec<String> {
        const WS: &[char] = &[' ', '\t', '\x0c', '\n', '\r', '\x0b'];
        let mut out = Vec::new();
        let mut rest = s;
        loop {
            rest = rest.trim_start_matches(WS);
            if rest.is_empty() {
                break;
            }
            if let Some(q) = rest.strip_prefix('"') {
                match q.find('"') {
                    Some(end) => {
                        out.push(q[..end].to_string());
                        rest = &q[end + 1..];
                    }
                    None => {
                        self.warn(
                            file,
                            line,
                            format!(
                                "unmatched quote in {s:?}: keepalived drops the rest of the line"
                            ),
                        );
                        break;
                    }
                }
            } else {
                let end = rest
                    .find(|c| WS.contains(&c) || c == '"')
                    .unwrap_or(rest.len());
                out.push(rest[..end].to_string());
                rest = &rest[end..];
            }
        }
        out
    }

    fn include(&mut self, file: usize, line: usize, dir: &Path, pattern: &str) {
        if self.depth >= MAX_INCLUDE_DEPTH {
            self.error(
                file,
                line,
                format!("include {pattern}: more than {MAX_INCLUDE_DEPTH} nested includes (a file includes itself?)"),
            );
            return;
        }
        let matches = glob::glob(dir, pattern);
        if matches.is_empty() {
            self.warn(
                file,
                line,
                format!(
                    "include {pattern}: no file matches (relative to {}); keepalived skips it",
                    dir.display()
                ),
            );
            return;
        }
        for m in matches {
            // check_glob_file: directories and executables are skipped.
            let meta = std::fs::metadata(&m);
            let ok = meta.as_ref().is_ok_and(|md| {
                use std::os::unix::fs::PermissionsExt;
                md.is_file() && md.permissions().mode() & 0o111 == 0
            });
            if !ok {
                self.warn(
                    file,
                    line,
                    format!("include {pattern}: {} is not a regular non-executable file; keepalived skips it", m.display()),
                );
                continue;
            }
            match std::fs::read(&m) {
                Ok(bytes) => {
                    let text = String::from_utf8_lossy(&bytes).into_owned();
                    self.depth += 1;
                    self.read_text(&m, &text);
                    self.depth -= 1;
                }
                Err(e) => self.warn(
                    file,
                    line,
                    format!(
                        "include {pattern}: cannot read {}: {e}; keepalived skips it",
                        m.display()
                    ),
                ),
            }
        }
    }

    /// The lines as keepalived's process_stream nests them: a line that is exactly `{`
    /// opens a block for the line before it, `}` closes the innermost block.
    pub fn tree(&mut self) -> Vec<Node> {
        let lines = std::mem::take(&mut self.lines);
        let mut stack: Vec<(Vec<Node>, Option<Node>)> = vec![(Vec::new(), None)];
        let mut prev_was_keyword = false;
        for l in lines {
            let w0 = l.words[0].as_str();
            if w0 == "{" && l.words.len() == 1 {
                let top = stack.last_mut().map(|(v, _)| v);
                match top.and_then(|v| v.pop()) {
                    Some(node) if prev_was_keyword && node.block.is_none() => {
                        stack.push((Vec::new(), Some(node)));
                    }
                    other => {
                        if let (Some(n), Some((v, _))) = (other, stack.last_mut()) {
                            v.push(n);
                        }
                        self.warn(l.file, l.line, "unexpected '{': keepalived ignores it");
                    }
                }
                prev_was_keyword = false;
                continue;
            }
            if w0 == "}" && l.words.len() == 1 {
                if stack.len() > 1 {
                    if let Some((children, Some(mut node))) = stack.pop() {
                        node.block = Some(children);
                        if let Some((v, _)) = stack.last_mut() {
                            v.push(node);
                        }
                    }
                } else {
                    self.warn(l.file, l.line, "extra '}': keepalived ignores it");
                }
                prev_was_keyword = false;
                continue;
            }
            if let Some((v, _)) = stack.last_mut() {
                v.push(Node {
                    file: l.file,
                    line: l.line,
                    words: l.words,
                    block: None,
                });
            }
            prev_was_keyword = true;
        }
        while stack.len() > 1 {
            if let Some((children, Some(mut node))) = stack.pop() {
                self.warn(
                    node.file,
                    node.line,
                    format!("the block of `{}` is not closed; keepalived ends it at the end of the file", node.key()),
                );
                node.block = Some(children);
                if let Some((v, _)) = stack.last_mut() {
                    v.push(node);
                }
            }
        }
        stack.pop().map(|(v, _)| v).unwrap_or_default()
    }
}

/// parser.c `decomment`: strip leading spaces/tabs, cut at `#` or `!` outside double quotes
/// (`\#` and `\!` outside quotes are a literal # or !), strip trailing spaces/tabs. The
/// second value is a warning for an unterminated quote.
fn decomment(raw: &str) -> (String, Option<String>) {
    let s = raw.trim_start_matches([' ', '\t']);
    let mut out = String::with_capacity(s.len());
    let mut quote = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quote = !quote;
                out.push(c);
            }
            '\\' => match chars.peek() {
                Some(&n) if !quote && (n == '#' || n == '!') => {
                    out.push(n);
                    chars.next();
                }
                Some(&n) => {
                    out.push(c);
                    out.push(n);
                    chars.next();
                }
                // A trailing backslash continues a multi-line $definition only.
                None => {}
            },
            '#' | '!' if !quote => break,
            _ => out.push(c),
        }
    }
    let warn = quote.then(|| format!("unterminated quote in {:?}", raw.trim()));
    let trimmed = out.trim_end_matches([' ', '\t']).to_string();
    (trimmed, warn)
}

/// parser.c `is_include`/`check_include`: `include` followed by whitespace (or one of the
/// `includer`, `includem`, `includew`, `includeb`, `includea` variants), then the pattern.
fn include_pattern(buf: &str) -> Option<&str> {
    let rest = buf.strip_prefix("include")?;
    let rest = if rest.starts_with(|c: char| c.is_ascii_whitespace()) {
        rest
    } else {
        let r = rest.strip_prefix(['r', 'm', 'w', 'b', 'a'])?;
        if !r.starts_with(|c: char| c.is_ascii_whitespace()) {
            return None;
        }
        r
    };
    let p = rest[1..].trim_start_matches([' ', '\t']);
    (!p.is_empty()).then_some(p)
}

/// read_line's brace split: the text before the first `{`/`}` outside quotes, and the rest
/// starting at that brace; a line starting with a brace gives the brace alone and the rest
/// after it (spaces and tabs skipped).
fn split_brace(buf: &str) -> (String, Option<String>) {
    let b = buf.as_bytes();
    if b.first().is_some_and(|&c| c == b'{' || c == b'}') {
        let rest = buf[1..].trim_start_matches([' ', '\t']);
        return (
            buf[..1].to_string(),
            Some(rest.trim_end_matches([' ', '\t']).to_string()),
        );
    }
    let mut in_quote = false;
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'"' => in_quote = !in_quote,
            b'{' | b'}' if !in_quote => {
                let head = buf[..i].trim_end_matches([' ', '\t']).to_string();
                let rest = buf[i..].trim_end_matches([' ', '\t']).to_string();
                return (head, Some(rest));
            }
            _ => {}
        }
    }
    (buf.to_string(), None)
}

/// A hint for a word holding a character keepalived does not take as whitespace but a
/// reader would (a non-breaking space, other Unicode spaces, a zero-width space).
pub(crate) fn whitespace_hint(word: &str) -> Option<String> {
    let odd = word
        .chars()
        .find(|&c| (c.is_whitespace() && !c.is_ascii()) || c == '\u{200b}' || c == '\u{feff}')?;
    Some(format!(
        " (it holds U+{:04X}, which keepalived does not treat as whitespace: retype it as a plain space)",
        odd as u32
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<Vec<String>> {
        let mut r = Reader::new();
        r.read_text(Path::new("/nonexistent/k.conf"), text);
        r.lines.into_iter().map(|l| l.words).collect()
    }

    #[test]
    fn braces_split_as_read_line_does() {
        let l = lines("virtual_server 10.0.0.1 80{\nreal_server 10.0.0.2 80 { weight 1 }\n}");
        let flat: Vec<String> = l.iter().map(|w| w.join(" ")).collect();
        assert_eq!(
            flat,
            [
                "virtual_server 10.0.0.1 80",
                "{",
                "real_server 10.0.0.2 80",
                "{",
                "weight 1",
                "}",
                "}"
            ]
        );
    }

    #[test]
    fn comments_quotes_and_escapes() {
        let l = lines("  misc_path \"/bin/x # not a comment\" # a comment\nweight 2 ! also\n\\#x");
        assert_eq!(l[0], ["misc_path", "/bin/x # not a comment"]);
        assert_eq!(l[1], ["weight", "2"]);
        assert_eq!(l[2], ["#x"]);
    }

    #[test]
    fn nbsp_is_part_of_a_word_and_tabs_are_whitespace() {
        let l = lines("\u{a0}weight 2\n\tweight\t3\x0b\nport 80\u{a0}");
        assert_eq!(l[0], ["\u{a0}weight", "2"]);
        assert_eq!(l[1], ["weight", "3"]);
        assert_eq!(l[2], ["port", "80\u{a0}"]);
        assert!(whitespace_hint("80\u{a0}").is_some_and(|h| h.contains("U+00A0")));
    }

    #[test]
    fn include_words() {
        assert_eq!(
            include_pattern("include conf.d/*.conf"),
            Some("conf.d/*.conf")
        );
        assert_eq!(include_pattern("includew\t/x"), Some("/x"));
        assert_eq!(include_pattern("include_check x"), None);
        assert_eq!(include_pattern("included x"), None);
    }
}
