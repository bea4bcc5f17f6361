//! The director's control socket: one JSON request line in, one JSON response line out.
//!
//! `/run/lvslab/<lab>/director-<node>.sock`. Table changes travel as ipvsadm command lines
//! and go through `lvslab_core::ipvsadm::parse`, exactly like a saved ipvsadm rule set.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A request to the director.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Apply one ipvsadm command line (e.g. `-e -t 192.168.1.250:80 -r 192.168.1.201:80 -w 0`).
    Ipvsadm {
        /// The command line, with or without a leading `ipvsadm`.
        line: String,
    },
    /// Services, real servers and their counters.
    Stats,
    /// The connection table.
    Conns,
}

/// The director's answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    /// The command was applied.
    Ok,
    /// The request failed; `message` says why.
    Error {
        /// What went wrong.
        message: String,
    },
    /// Answer to [`Request::Stats`].
    Stats {
        /// One entry per virtual service.
        services: Vec<ServiceStats>,
        /// Packet-path counters of the director.
        director: std::collections::BTreeMap<String, u64>,
    },
    /// Answer to [`Request::Conns`].
    Conns {
        /// One entry per connection.
        conns: Vec<ConnRow>,
    },
}

/// Traffic counters as `ipvsadm -L --stats` shows them: the core's own, sent as they are.
pub use lvslab_core::Counters;

/// A virtual service with its real servers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServiceStats {
    /// `TCP 192.168.1.250:80`, `UDP ...` or `FWM 1`, as ipvsadm prints it.
    pub service: String,
    /// Scheduler name.
    pub scheduler: String,
    /// Persistence timeout in seconds, if persistent.
    pub persistent: Option<u64>,
    /// Service counters.
    pub counters: Counters,
    /// Real servers, in the table's order.
    pub dests: Vec<DestStats>,
}

/// A real server of a service.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DestStats {
    /// RIP:port.
    pub addr: String,
    /// `Masq`, `Route` or `Tunnel`, as ipvsadm prints the forwarding method.
    pub forward: String,
    /// Weight.
    pub weight: u32,
    /// Active connections.
    pub active: u64,
    /// Inactive connections.
    pub inactive: u64,
    /// Counters.
    pub counters: Counters,
}

/// One connection as `ipvsadm -Lnc` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ConnRow {
    /// TCP or UDP.
    pub pro: String,
    /// Seconds until it expires.
    pub expire_secs: u64,
    /// Protocol state (ESTABLISHED, SYN_RECV, UDP, ...).
    pub state: String,
    /// Client address.
    pub source: String,
    /// Virtual service address.
    pub virtual_addr: String,
    /// Real server address.
    pub destination: String,
}

/// The control socket path of director `node` in lab `lab`.
pub fn socket_path(run_dir: &Path, node: &str) -> PathBuf {
    run_dir.join(format!("director-{node}.sock"))
}

/// Send `req` to the director listening on `path` and wait for its answer.
pub fn call(path: &Path, req: &Request) -> Result<Response> {
    let stream = UnixStream::connect(path).with_context(|| {
        format!(
            "connect to the director at {} (is the lab up and its director running?)",
            path.display()
        )
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut line = serde_json::to_string(req)?;
    line.push('\n');
    (&stream).write_all(line.as_bytes())?;
    let mut reader = BufReader::new(&stream);
    let mut answer = String::new();
    reader
        .read_line(&mut answer)
        .context("read the director's answer")?;
    if answer.is_empty() {
        bail!(
            "the director at {} closed the connection without answering",
            path.display()
        );
    }
    serde_json::from_str(&answer).with_context(|| format!("bad answer from the director: {answer}"))
}

/// Like [`call`], turning [`Response::Error`] into an error.
pub fn call_ok(path: &Path, req: &Request) -> Result<Response> {
    match call(path, req)? {
        Response::Error { message } => bail!("{message}"),
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_wire_format() {
        let r = Request::Ipvsadm {
            line: "-e -t 192.168.1.250:80 -r 192.168.1.201:80 -w 0".into(),
        };
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(
            s,
            r#"{"op":"ipvsadm","line":"-e -t 192.168.1.250:80 -r 192.168.1.201:80 -w 0"}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&s).unwrap(), r);
        assert_eq!(
            serde_json::to_string(&Request::Stats).unwrap(),
            r#"{"op":"stats"}"#
        );
    }
}
