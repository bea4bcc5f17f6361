//! lvslab-core: the sans-IO LVS balancer (services, schedulers, connections, packet rewrites).
//!
//! Nothing in this crate opens a socket, reads a clock or touches a file: time comes in as a
//! `Duration` since an arbitrary epoch and frames come in as byte slices.
//!
//! [`Ipvs`] is the balancer: feed it table changes ([`IpvsCommand`], usually parsed from an
//! ipvsadm line by [`ipvsadm::parse`]) and packets ([`FlowPacket`]); it answers with verdicts
//! that pick real servers exactly as Linux IPVS does. [`sim`] runs scripts of such steps.
mod conn;
mod dest;
pub mod director;
pub mod explain;
pub mod ipvs;
pub mod ipvsadm;
pub mod mark;
#[cfg(feature = "mutant-tiebreak")]
pub mod mutant;
mod sched;
pub mod sim;
pub mod tcp;
pub mod types;
pub mod vrrp;
pub mod wire;

pub use dest::Counters;
pub use explain::{Candidate, PickExplain};
pub use ipvs::{
    ConnView, DestView, Forward, InVerdict, Ipvs, IpvsConfig, IpvsError, IpvsStats, OutVerdict,
    ServiceView, SyncApplied, SyncConn, SyncError, SyncMessage, SyncRole, MAX_CONNS_SYSCTL,
};
pub use sched::PickBench;
pub use tcp::ConnState;
pub use types::*;
