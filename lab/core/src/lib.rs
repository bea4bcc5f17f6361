//! lvslab-core: the sans-IO LVS balancer (services, schedulers, connections, packet rewrites).
//!
//! Nothing in this crate opens a socket, reads a clock or touches a file: time comes in as a
//! `Duration` since an arbitrary epoch and frames come in as byte slices.
