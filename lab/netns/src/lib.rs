//! lvslab-netns: topology model and validation, the namespace builder, lab state and cleanup.
pub mod backend;
pub mod diag;
pub mod label;
pub mod topology;

pub use backend::Backend;
pub use label::{AddrRole, Label};
pub use topology::{
    Endpoint, ForwardMethod, HealthCheck, HealthSpec, IfaceSpec, LanSpec, LinkSpec, Mistake,
    NodeSpec, Protocol, RealServerSpec, Role, RouteSpec, Scheduler, ServiceSpec, Topology,
    TopologyError, VrrpSpec, Warnings,
};
pub mod error;
pub mod ethtool;
pub mod netns;
pub mod nl;

pub use error::{Error, Result};
pub mod state;

pub use state::{DaemonInfo, IfaceInfo, Lab, LabState, Mac, NodeInfo, Peer};
pub mod build;

pub use build::{build, enable_kernel_tunnels, BuildOptions, BuildStep};
