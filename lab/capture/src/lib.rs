//! lvslab-capture: per-hop capture, pcap/pcapng output and the packet-path normalizer.
//!
//! - [`live`]: libpcap handles on lab interfaces, each opened inside its node's namespace;
//! - [`files`]: per-hop pcap files and the merged `path.pcapng`;
//! - [`decode`] and [`normalize`]: captures of a run to stable path text for snapshots;
//! - [`roles`]: the names (CIP, VIP, `node:iface`) the text uses.

pub mod decode;
pub mod files;
pub mod live;
pub mod normalize;
pub mod roles;

pub use files::{CapturedPacket, HopCapture};
pub use live::{CaptureError, CaptureTarget, LiveCapture};
pub use normalize::{analyze, normalize, HopPacket, NormalizeOptions, PathReport};
pub use roles::{Hop, RoleMap};
