//! Draw an lvslab topology (or a running lab) as SVG, Graphviz dot or Mermaid.
//!
//! Every node is a box with its name, role and labelled addresses (CIP, GWIP, DIP, RIP...),
//! links and LANs join them, and each service gets a note that says its VIP, scheduler,
//! forwarding method in plain words and which director (MASTER/BACKUP) holds it. An optional
//! [`PathOverlay`] draws one connection's hops over the picture, numbered and coloured.
//!
//! The SVG is laid out here, in Rust, so it needs no Graphviz; all three outputs are
//! deterministic: the same input gives the same bytes.
use std::fmt;
use std::str::FromStr;

use lvslab_netns::{LabState, Topology};

mod dot;
mod mermaid;
mod model;
mod svg;

pub use model::method_explained;

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// A standalone SVG picture, laid out by lvslab itself.
    Svg,
    /// Graphviz dot source (`dot -Tsvg` draws it).
    Dot,
    /// A Mermaid `flowchart LR` (Markdown renderers on code forges draw it).
    Mermaid,
}

impl Format {
    /// Every format, in the order `--help` lists them.
    pub const ALL: [Format; 3] = [Format::Svg, Format::Dot, Format::Mermaid];

    /// The name used on the command line (`svg`, `dot`, `mermaid`).
    pub fn name(self) -> &'static str {
        match self {
            Format::Svg => "svg",
            Format::Dot => "dot",
            Format::Mermaid => "mermaid",
        }
    }

    /// The usual file extension for this format.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Svg => "svg",
            Format::Dot => "dot",
            Format::Mermaid => "mmd",
        }
    }

    /// The format a file name's extension implies, if any (`.svg`, `.dot`/`.gv`, `.mmd`).
    pub fn from_extension(path: &std::path::Path) -> Option<Format> {
        match path.extension()?.to_str()? {
            "svg" => Some(Format::Svg),
            "dot" | "gv" => Some(Format::Dot),
            "mmd" | "mermaid" => Some(Format::Mermaid),
            _ => None,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = DiagramError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| DiagramError::UnknownFormat(s.to_owned()))
    }
}

/// What can go wrong before drawing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiagramError {
    /// A format name that is not svg, dot or mermaid.
    #[error("unknown diagram format `{0}`: use svg, dot or mermaid")]
    UnknownFormat(String),
    /// A path hop that names no node or LAN of the topology.
    #[error("path hop `{hop}` is not a node or LAN of topology {topology}: use one of {known}")]
    UnknownHop {
        /// The hop as given.
        hop: String,
        /// The topology's name.
        topology: String,
        /// Node and LAN names that exist.
        known: String,
    },
    /// A path with fewer than two hops draws nothing.
    #[error("a path needs at least two hops (e.g. client,router,director), got {0}")]
    TooFewHops(usize),
}

/// One connection's way through the lab, drawn over the diagram as numbered arrows.
///
/// `hops` are node (or LAN) names in the order a packet meets them, replies included,
/// e.g. `client router director rs2 director router client` for NAT.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PathOverlay {
    /// Node or LAN names, first to last.
    pub hops: Vec<String>,
    /// A caption, e.g. `TCP 198.51.100.10:40000 -> 192.168.1.250:80`.
    pub label: String,
}

impl PathOverlay {
    /// A path from its hops and caption.
    pub fn new(
        hops: impl IntoIterator<Item = impl Into<String>>,
        label: impl Into<String>,
    ) -> Self {
        PathOverlay {
            hops: hops.into_iter().map(Into::into).collect(),
            label: label.into(),
        }
    }

    /// Check every hop names a node or LAN of `topo`, and there are at least two.
    ///
    /// Rendering does not need this (unknown hops are listed, not drawn); callers that take
    /// hops from a user call it to refuse a typo early.
    pub fn check(&self, topo: &Topology) -> Result<(), DiagramError> {
        if self.hops.len() < 2 {
            return Err(DiagramError::TooFewHops(self.hops.len()));
        }
        let known = |h: &str| {
            topo.nodes.iter().any(|n| n.name == h) || topo.lans.iter().any(|l| l.name == h)
        };
        match self.hops.iter().find(|h| !known(h)) {
            None => Ok(()),
            Some(hop) => Err(DiagramError::UnknownHop {
                hop: hop.clone(),
                topology: topo.name.clone(),
                known: topo
                    .nodes
                    .iter()
                    .map(|n| n.name.as_str())
                    .chain(topo.lans.iter().map(|l| l.name.as_str()))
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }
}

/// Draw a topology file's lab.
pub fn render(topo: &Topology, format: Format, highlight: Option<&PathOverlay>) -> String {
    draw(&model::Model::from_topology(topo, None), format, highlight)
}

/// Draw a running lab: its topology plus what `up` made (MACs, addresses on `lo`).
pub fn render_lab(lab: &LabState, format: Format, highlight: Option<&PathOverlay>) -> String {
    draw(
        &model::Model::from_topology(&lab.topology, Some(lab)),
        format,
        highlight,
    )
}

fn draw(m: &model::Model, format: Format, highlight: Option<&PathOverlay>) -> String {
    match format {
        Format::Svg => svg::render(m, highlight),
        Format::Dot => dot::render(m, highlight),
        Format::Mermaid => mermaid::render(m, highlight),
    }
}
