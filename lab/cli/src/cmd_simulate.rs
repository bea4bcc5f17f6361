//! `lvslab simulate`: run a script of ipvsadm lines and connection steps through the core.
use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use lvslab_core::sim::{Sim, StepReport};
use lvslab_core::IpvsConfig;

/// Run a simulate script (see examples/simulate/*.sim) and print each connection's server.
#[derive(clap::Args, Debug)]
pub struct SimulateArgs {
    /// Script file, or `-` for standard input.
    #[arg(default_value = "-")]
    pub file: String,
    /// One JSON object per connection step: {"line": N, "event": "conn", "server": "ADDR"|null}.
    #[arg(long)]
    pub json: bool,
    /// Explain each pick: candidates, loads and the deciding comparison.
    #[arg(long)]
    pub explain: bool,
}

/// Run the command.
pub fn run(args: SimulateArgs) -> Result<()> {
    let (name, script) = if args.file == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the script from standard input")?;
        ("<stdin>".to_string(), s)
    } else {
        let path = PathBuf::from(&args.file);
        let s = std::fs::read_to_string(&path)
            .with_context(|| format!("reading simulate script {}", path.display()))?;
        (path.display().to_string(), s)
    };
    let mut sim = Sim::new(IpvsConfig {
        explain: args.explain,
        ..IpvsConfig::default()
    });
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for (i, line) in script.lines().enumerate() {
        let report = sim
            .step(i + 1, line)
            .with_context(|| format!("in {name}"))?;
        if let Some(r) = report {
            print_report(&mut out, &r, args.json, args.explain)?;
        }
    }
    Ok(())
}

fn print_report(out: &mut impl Write, r: &StepReport, json: bool, explain: bool) -> Result<()> {
    if json {
        let v = serde_json::json!({
            "line": r.line,
            "event": r.event,
            "server": r.server.map(|s| s.to_string()),
        });
        writeln!(out, "{v}")?;
    } else {
        writeln!(out, "{r}")?;
        if explain {
            if let Some(e) = &r.explain {
                for l in e.to_string().lines() {
                    writeln!(out, "    {l}")?;
                }
            }
        }
    }
    Ok(())
}
