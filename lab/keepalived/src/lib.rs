//! lvslab-keepalived: keepalived.conf in and out.
//!
//! [`import_keepalived`] reads a keepalived.conf (and its `include`s) the way keepalived
//! 2.2.7 reads it (lib/parser.c, keepalived/check/check_parser.c, check_data.c,
//! keepalived/vrrp/vrrp_parser.c, vrrp.c) and turns its `virtual_server`s into lvslab
//! [`ServiceSpec`]s; [`to_keepalived`] writes services back as a keepalived.conf that
//! keepalived itself accepts; [`to_toml`] and [`to_json`] write them as the `[[services]]`
//! part of a topology file.
//!
//! What keepalived accepts with a warning, lvslab accepts with a warning naming file and
//! line; what lvslab cannot model is an error naming file, line and the reason.
use std::fmt;
use std::path::{Path, PathBuf};

pub use lvslab_netns::ServiceSpec;

mod glob;
mod keywords;
mod lex;
mod read;
mod write;

pub use write::{to_json, to_keepalived, to_toml};

/// The services of a keepalived.conf and what lvslab noticed on the way.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    /// One service per virtual server (a `virtual_server group` gives one per address),
    /// with `health` from its checkers and `vrrp` from the instance holding its VIP.
    pub services: Vec<ServiceSpec>,
    /// What keepalived would warn about, and what lvslab models differently, in file order.
    pub warnings: Vec<ImportWarning>,
}

/// A warning located in the file (or included file) it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportWarning {
    /// The file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// What and why.
    pub message: String,
}

impl fmt::Display for ImportWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: warning: {}",
            self.file.display(),
            self.line,
            self.message
        )
    }
}

/// A refusal located in the file it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// What lvslab cannot take, and why.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: error: {}",
            self.file.display(),
            self.line,
            self.message
        )
    }
}

/// Why a keepalived.conf could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The main file could not be read.
    #[error("cannot read {}: {error}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The configuration holds what lvslab cannot model; every problem is listed.
    #[error("{}", render(.problems))]
    Unsupported {
        /// Every refusal, in file order.
        problems: Vec<Problem>,
        /// The warnings raised before (and besides) the refusals.
        warnings: Vec<ImportWarning>,
    },
}

fn render(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl ImportError {
    /// The located refusals (empty for I/O errors).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ImportError::Unsupported { problems, .. } => problems,
            ImportError::Io { .. } => &[],
        }
    }
}

/// Reads `path` (and every file it includes) as keepalived does and imports its services.
pub fn import_keepalived(path: &Path) -> Result<Imported, ImportError> {
    let bytes = std::fs::read(path).map_err(|error| ImportError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    import_keepalived_str(path, &String::from_utf8_lossy(&bytes))
}

/// Imports keepalived.conf `text`; `path_for_messages` names it in warnings and errors, and
/// its directory is where relative `include`s are looked up (on disk), as keepalived does.
pub fn import_keepalived_str(
    path_for_messages: &Path,
    text: &str,
) -> Result<Imported, ImportError> {
    let mut r = lex::Reader::new();
    r.read_text(path_for_messages, text);
    let tree = r.tree();
    read::interpret(r, &tree)
}
