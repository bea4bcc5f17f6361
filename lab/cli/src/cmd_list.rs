//! `lvslab list`: labs that are up.
use anyhow::Result;
use lvslab_netns::Lab;

/// List the labs that are up, with their topology, node count and running daemons.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Run the command.
pub fn run(_args: Args) -> Result<()> {
    let labs = lvslab_engine::list_labs();
    if labs.is_empty() {
        if crate::vmlab::vm_labs().is_empty() {
            println!("no lab is up (start one with `lvslab up nat-topology`)");
        }
        return crate::vmlab::list();
    }
    println!(
        "{:<20} {:<9} {:>5} {:>8}  topology",
        "LAB", "BACKEND", "NODES", "DAEMONS"
    );
    for name in labs {
        match Lab::load(&name) {
            Ok(l) => {
                let alive = l.state.daemons.iter().filter(|d| d.alive()).count();
                println!(
                    "{:<20} {:<9} {:>5} {:>3}/{:<4}  {}{}",
                    name,
                    l.state.backend.to_string(),
                    l.state.nodes.len(),
                    alive,
                    l.state.daemons.len(),
                    l.state.topology.path.display(),
                    if l.state.complete {
                        ""
                    } else {
                        "  (incomplete: `lvslab down` it)"
                    }
                );
            }
            Err(e) => println!("{name:<20} unreadable state: {e}"),
        }
    }
    crate::vmlab::list()
}
