//! `lvslab import ipvsadm|keepalived FILE` and `lvslab export ipvsadm|keepalived LAB|TOPOLOGY`:
//! the configurations people already have, in and out, as the real tools read them.

use anyhow::{bail, Context, Result};
use lvslab_netns::{Lab, ServiceSpec, Topology};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Which tool's configuration.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `ipvsadm-save` output, `ipvsadm -R` input or a shell script of ipvsadm lines.
    Ipvsadm,
    /// keepalived.conf (with its includes).
    Keepalived,
}

/// What to write.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum To {
    /// The `[[services]]` part of a topology file.
    Toml,
    /// `{"services": [...]}`.
    Json,
    /// `ipvsadm-save -n` form.
    Ipvsadm,
    /// keepalived.conf.
    Keepalived,
}

/// Read an ipvsadm rule set or a keepalived.conf and print its services (or apply them to a
/// running lab with --lab). Warnings name file and line; what lvslab cannot model is an
/// error naming file, line and why.
#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// The configuration's kind.
    pub kind: Kind,
    /// The file, or `-` for standard input.
    pub file: PathBuf,
    /// The output form.
    #[arg(long, value_enum, default_value = "toml")]
    pub to: To,
    /// Apply the services to this running lab's director (as `lvslab service/real` do)
    /// instead of printing them.
    #[arg(long)]
    pub lab: Option<String>,
}

/// Write a lab's or a topology file's services as ipvsadm rules or keepalived.conf.
#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// The form to write.
    pub kind: Kind,
    /// A lab that is up, or a topology (a name in topologies/ or a path).
    pub source: String,
}

/// Services and the warnings met on the way (already located: `FILE:LINE: warning: ...`).
pub struct Imported {
    /// The services, real servers named rs1, rs2... by first appearance.
    pub services: Vec<ServiceSpec>,
    /// Located warnings.
    pub warnings: Vec<String>,
}

/// Read `file` (`-`: standard input) as `kind`.
pub fn import(kind: Kind, file: &Path) -> Result<Imported> {
    let stdin = file == Path::new("-");
    let text = if stdin {
        let mut t = String::new();
        std::io::stdin()
            .read_to_string(&mut t)
            .context("read standard input")?;
        Some(t)
    } else {
        None
    };
    let name = if stdin { Path::new("<stdin>") } else { file };
    match kind {
        Kind::Keepalived => {
            let r = match &text {
                Some(t) => lvslab_keepalived::import_keepalived_str(name, t),
                None => lvslab_keepalived::import_keepalived(file),
            };
            let r = r.map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(Imported {
                services: r.services,
                warnings: r.warnings.iter().map(ToString::to_string).collect(),
            })
        }
        Kind::Ipvsadm => {
            let t = match text {
                Some(t) => t,
                None => std::fs::read_to_string(file)
                    .with_context(|| format!("read {}", file.display()))?,
            };
            let r = lvslab_import::import_ipvsadm(name, &t).map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(Imported {
                services: r.services,
                warnings: r.warnings.iter().map(ToString::to_string).collect(),
            })
        }
    }
}

/// `services` in the form `to`.
pub fn render(services: &[ServiceSpec], to: To) -> Result<String> {
    Ok(match to {
        To::Toml => lvslab_keepalived::to_toml(services).context("write TOML")?,
        To::Json => lvslab_keepalived::to_json(services),
        To::Ipvsadm => lvslab_import::to_ipvsadm_save(services),
        To::Keepalived => lvslab_keepalived::to_keepalived(services),
    })
}

/// Run `lvslab import`.
pub fn run_import(args: ImportArgs) -> Result<()> {
    let imported = import(args.kind, &args.file)?;
    for w in &imported.warnings {
        eprintln!("{w}");
    }
    if imported.services.is_empty() {
        bail!(
            "{}: no virtual service found (nothing to import)",
            args.file.display()
        );
    }
    let Some(lab) = args.lab else {
        print!("{}", render(&imported.services, args.to)?);
        return Ok(());
    };
    let lab = Lab::load(&lvslab_engine::resolve_lab(Some(&lab))?)?;
    let balancer = lvslab_engine::balancer(&lab, None)?;
    let mut applied = 0;
    for s in &imported.services {
        let lines = lvslab_engine::service_lines(s);
        // The imported service replaces one the lab already has under the same key
        // (`-A -t VIP:PORT ...` -> `-D -t VIP:PORT`); a lab without it refuses the delete.
        if let Some(key) = lines.first().and_then(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() >= 3 && w[0] == "-A").then(|| format!("-D {} {}", w[1], w[2]))
        }) {
            if balancer.ipvsadm(&key).is_ok() {
                println!("replaced the lab's service: {key}");
            }
        }
        for line in lines {
            balancer
                .ipvsadm(&line)
                .with_context(|| format!("apply `{line}` to lab {}", lab.name()))?;
            applied += 1;
        }
    }
    println!(
        "applied {applied} ipvsadm lines ({} services) to lab {}",
        imported.services.len(),
        lab.name()
    );
    Ok(())
}

/// Run `lvslab export`.
pub fn run_export(args: ExportArgs) -> Result<()> {
    let up = lvslab_engine::list_labs();
    let services = if up.contains(&args.source) {
        Lab::load(&args.source)?.state.topology.services
    } else {
        Topology::find(&args.source)?.services
    };
    let to = match args.kind {
        Kind::Ipvsadm => To::Ipvsadm,
        Kind::Keepalived => To::Keepalived,
    };
    print!("{}", render(&services, to)?);
    Ok(())
}
