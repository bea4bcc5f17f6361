//! The userspace director and its tools: the daemon (`lvslab director`), the TUN-mode
//! real-server side (`lvslab tunnel`), live control (`lvslab service|real`), observability
//! (`lvslab stats|conns`) and `lvslab bench director`.

pub mod afpacket;
pub mod cmd_bench_director;
pub mod cmd_ctl;
pub mod cmd_director;
pub mod cmd_stats;
pub mod cmd_tunnel;
pub mod control;
pub mod hostinfo;
pub mod ifconf;
pub mod labinfo;
pub mod logging;
