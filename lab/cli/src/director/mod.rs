//! The userspace director's commands: the daemon (`lvslab director`), the TUN-mode
//! real-server side (`lvslab tunnel`), live control (`lvslab service|real`), observability
//! (`lvslab stats|conns`) and `lvslab bench director`. The director itself lives in
//! lvslab-director; these parse arguments, find the lab and print.

pub mod cmd_bench_director;
pub mod cmd_ctl;
pub mod cmd_director;
pub mod cmd_stats;
pub mod cmd_tunnel;
pub mod labinfo;
pub mod logging;
