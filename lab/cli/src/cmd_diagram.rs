//! `lvslab diagram TOPOLOGY|--lab LAB [--format svg|dot|mermaid] [--out FILE] [--path HOPS]`:
//! draw a topology file, or a running lab, as a picture.
use std::io::Write;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use lvslab_diagram::{Format, PathOverlay};
use lvslab_netns::{Lab, Topology};

/// Draw a topology (or a running lab) as SVG, Graphviz dot or Mermaid: every node with
/// its role and labelled addresses (CIP, GWIP, DIP, RIP...), links, LANs, and a note per
/// service saying its VIP, scheduler, method and which director holds it.
#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["topology", "lab"])))]
pub struct Args {
    /// A name from topologies/ (e.g. nat-topology) or a path to a .toml file.
    pub topology: Option<String>,
    /// A running lab instead of a file: adds the MACs and lo addresses `up` made.
    #[arg(long, value_name = "LAB", conflicts_with = "topology")]
    pub lab: Option<String>,
    /// svg (laid out by lvslab, needs nothing else), dot (Graphviz) or mermaid
    /// [default: from --out's extension, else svg].
    #[arg(long, short = 'f', value_name = "FORMAT")]
    pub format: Option<String>,
    /// Write here instead of to standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Draw one connection's way over the diagram: node names in order, comma-separated,
    /// e.g. client,router,director,rs1,director,router,client.
    #[arg(long, value_name = "HOPS", value_delimiter = ',')]
    pub path: Vec<String>,
}

/// Run the command.
pub fn run(args: Args) -> Result<()> {
    let format = match (&args.format, &args.out) {
        (Some(f), _) => f.parse::<Format>()?,
        (None, Some(out)) => Format::from_extension(out).unwrap_or(Format::Svg),
        (None, None) => Format::Svg,
    };
    let lab = match &args.lab {
        Some(name) => Some(Lab::load(name)?),
        None => None,
    };
    let topo = match (&lab, &args.topology) {
        (Some(l), _) => l.state.topology.clone(),
        (None, Some(t)) => Topology::find(t)?,
        // clap's "what" group requires one of the two.
        (None, None) => bail!("name a topology or a lab\n  help: lvslab diagram nat-topology, or lvslab diagram --lab NAME"),
    };
    let overlay = if args.path.is_empty() {
        None
    } else {
        let p = PathOverlay::new(args.path.iter().map(|h| h.trim()), args.path.join(" -> "));
        p.check(&topo)
            .with_context(|| format!("bad --path for {}", topo.path.display()))?;
        Some(p)
    };
    let text = match &lab {
        Some(l) => lvslab_diagram::render_lab(&l.state, format, overlay.as_ref()),
        None => lvslab_diagram::render(&topo, format, overlay.as_ref()),
    };
    match &args.out {
        Some(out) => std::fs::write(out, text).map_err(|e| {
            anyhow!(
                "cannot write {}: {e}\n  help: check the directory exists and is writable, or leave out --out to print",
                out.display()
            )
        })?,
        None => {
            let mut o = std::io::stdout().lock();
            o.write_all(text.as_bytes())?;
            o.flush()?;
        }
    }
    Ok(())
}
