//! Located diagnostics: `file:line:col: message` plus the source line and a fix, for
//! topology and scenario files alike.
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// How serious a diagnostic is: an error stops the file from loading, a warning does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Severity {
    /// The file is refused.
    #[default]
    Error,
    /// The file loads, but something will probably not work as meant.
    Warning,
}

impl Severity {
    /// The word shown after `file:line:col:`.
    pub fn word(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// One problem found in a file, located by byte span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub help: Option<String>,
    /// Byte range in the source text.
    pub span: Range<usize>,
    /// 1-based line of the span start.
    pub line: usize,
    /// 1-based column (in characters) of the span start.
    pub col: usize,
}

/// Source text with its path, used to turn spans into line:col and snippets.
#[derive(Debug, Clone)]
pub struct Source {
    /// Path of the file as the user gave it.
    pub path: PathBuf,
    /// Its full text.
    pub text: String,
}

impl Source {
    /// Wrap a file's text.
    pub fn new(path: impl AsRef<Path>, text: String) -> Self {
        Self {
            path: path.as_ref().to_path_buf(),
            text,
        }
    }

    /// 1-based (line, column) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        (line, col)
    }

    /// Build a diagnostic at `span`.
    pub fn diag(
        &self,
        span: Range<usize>,
        message: impl Into<String>,
        help: Option<String>,
    ) -> Diagnostic {
        let (line, col) = self.line_col(span.start);
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            help,
            span,
            line,
            col,
        }
    }

    /// Build a warning at `span`: reported, but the file still loads.
    pub fn warning(
        &self,
        span: Range<usize>,
        message: impl Into<String>,
        help: Option<String>,
    ) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..self.diag(span, message, help)
        }
    }

    /// Render every diagnostic, then a count when there is more than one.
    pub fn render_all(&self, diags: &[Diagnostic]) -> String {
        let mut s: String = diags
            .iter()
            .map(|d| self.render(d))
            .collect::<Vec<_>>()
            .join("\n");
        if diags.len() > 1 {
            let what = if diags.iter().all(|d| d.severity == Severity::Warning) {
                "warnings"
            } else {
                "errors"
            };
            s.push_str(&format!(
                "\n{} {what} in {}",
                diags.len(),
                self.path.display()
            ));
        }
        s.trim_end().to_string()
    }

    /// Render one diagnostic with the offending line and a caret underline.
    pub fn render(&self, d: &Diagnostic) -> String {
        use fmt::Write;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{}:{}:{}: {}: {}",
            self.path.display(),
            d.line,
            d.col,
            d.severity.word(),
            d.message
        );
        // An empty file still gets its (empty) first line and a caret.
        let line = self.text.lines().nth(d.line - 1);
        if let Some(src_line) = line.or((d.line == 1).then_some("")) {
            let width = self.text[d.span.clone()]
                .lines()
                .next()
                .map_or(1, |s| s.chars().count().max(1))
                .min(src_line.chars().count().saturating_sub(d.col - 1).max(1));
            let gutter = d.line.to_string().len();
            let _ = writeln!(out, "{:gutter$} |", "");
            let _ = writeln!(out, "{} | {}", d.line, src_line);
            let _ = writeln!(
                out,
                "{:gutter$} | {}{}",
                "",
                " ".repeat(d.col - 1),
                "^".repeat(width)
            );
        }
        if let Some(help) = &d.help {
            let _ = writeln!(out, "  help: {help}");
        }
        out
    }
}
