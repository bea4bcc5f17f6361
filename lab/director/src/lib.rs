//! lvslab-director: the userspace director's I/O side around the sans-IO core.
//!
//! Layered as smoltcp is: [`Device`] is a set of interfaces that receive batches of frames
//! and send frames (AF_PACKET sockets in a lab, in-memory queues in tests); fault injectors
//! are ordinary devices wrapping another one ([`faults`]); [`engine`] is the loop that feeds
//! a [`lvslab_core::director::Director`] from a device and answers the control socket; and
//! [`control`] is the typed control protocol with its client. Nothing here knows about labs,
//! topologies or scenarios: the CLI and the scenario runner call in, never the other way.

#![warn(missing_docs)]

pub mod afpacket;
pub mod control;
pub mod device;
pub mod engine;
mod error;
pub mod faults;
pub mod hostinfo;
pub mod ifconf;
pub mod listing;
pub mod memory;

pub use control::{
    ConnRow, ControlClient, ControlError, DestStats, IpvsadmFlag, ServiceStats, VrrpEventRow,
    VrrpReport, VrrpRow,
};
pub use device::{Clock, Device, MonotonicClock, Readiness, SendReport};
pub use engine::{join_pairs, serve, DeviceLoop, HaSpec};
pub use error::Error;
pub use faults::{FaultSpec, BREAK_ENV};
pub use memory::{MemDevice, SimClock};
