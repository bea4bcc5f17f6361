//! lvslab-engine: the lab lifecycle as a library. It builds a lab from a topology, starts
//! its daemons (`serve`, the director, `tunnel`) as processes of a given lvslab executable,
//! rolls everything back when a step fails, tears labs down, names the lab a command acts
//! on, and gives capture its view of a lab (hops and roles).
//!
//! The CLI and the scenario runner both call this crate; neither runs `lvslab up`/`down`
//! as a subprocess.

mod backend;
pub mod commands;
mod daemons;
mod error;
pub mod health;
mod interrupts;
mod lifecycle;
pub mod pair;
mod resolve;
mod services;
mod shim;
mod view;

pub use backend::{balancer, pick_director, Balancer, Kernel, Userspace};
pub use commands::{lab_commands, CommandsOptions};
pub use daemons::{
    daemon_plan, directors_with_services, restart_director, restart_keepalived, restart_serve,
    DaemonConfig, DaemonSpec,
};
pub use error::{EngineError, Result};
pub use interrupts::DeferredInterrupts;
pub use lifecycle::{down, down_all, up, Injection, LabGuard, UpOptions, INJECT_ENV};
pub use pair::ha_specs;
pub use resolve::{resolve_lab, resolve_lab_among};
pub use services::{director_lines, service_lines, weight_line};
pub use shim::{ipvsadm_shim, ipvsadm_shim_dir};
pub use view::{capture_targets, role_map};

pub use lvslab_netns::state::list_labs;
pub use lvslab_netns::{Backend, Lab, Topology};
