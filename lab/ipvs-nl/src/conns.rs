//! The kernel's connection table as `/proc/net/ip_vs_conn` shows it (ip_vs_conn_seq_show
//! in net/netfilter/ipvs/ip_vs_conn.c): what `ipvsadm -Lnc` reads too.

use crate::Error;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// One entry of the kernel's connection table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelConn {
    /// `TCP`, `UDP`, `SCTP`, or `IP` for a persistence template.
    pub protocol: String,
    /// Client address and port (a template's port is 0).
    pub client: SocketAddr,
    /// Virtual address and port.
    pub virtual_addr: SocketAddr,
    /// Real server address and port.
    pub dest: SocketAddr,
    /// `ESTABLISHED`, `TIME_WAIT`, `UDP`, `NONE`, ...
    pub state: String,
    /// Seconds until it expires.
    pub expires_secs: u64,
}

/// Reads the calling thread's namespace's table.
pub fn read() -> Result<Vec<KernelConn>, Error> {
    let text = std::fs::read_to_string("/proc/thread-self/net/ip_vs_conn").map_err(Error::Conns)?;
    Ok(parse_ip_vs_conn(&text))
}

/// An address as the table prints it: 8 hex digits in host order for IPv4
/// (`ntohl(addr)`), the usual text for IPv6.
fn addr(s: &str) -> Option<IpAddr> {
    if s.len() == 8 && !s.contains(':') {
        return u32::from_str_radix(s, 16)
            .ok()
            .map(|v| IpAddr::V4(Ipv4Addr::from(v)));
    }
    s.parse().ok()
}

fn endpoint(a: &str, p: &str) -> Option<SocketAddr> {
    Some(SocketAddr::new(addr(a)?, u16::from_str_radix(p, 16).ok()?))
}

/// Parses the text of `/proc/net/ip_vs_conn`; lines it cannot read are skipped.
pub fn parse_ip_vs_conn(text: &str) -> Vec<KernelConn> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 9 {
                return None;
            }
            Some(KernelConn {
                protocol: f[0].to_owned(),
                client: endpoint(f[1], f[2])?,
                virtual_addr: endpoint(f[3], f[4])?,
                dest: endpoint(f[5], f[6])?,
                state: f[7].to_owned(),
                expires_secs: f[8].parse().ok()?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_lines_parse() {
        let text = "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n\
TCP C633640A 9C40 C0A801FA 0050 C0A801C9 0050 ESTABLISHED     899\n\
TCP C633640A 9C41 C0A801FA 0050 C0A801CB 0050 TIME_WAIT       119\n\
IP  C633640A 0000 C0A801FA 0050 C0A801C9 0050 NONE            359\n\
UDP 2001:0db8:0000:0000:0000:0000:0000:0001 9C40 2001:0db8:0000:0000:0000:0000:0000:0010 0035 2001:0db8:0000:0000:0000:0000:0000:0201 0035 UDP             299\n";
        let c = parse_ip_vs_conn(text);
        assert_eq!(c.len(), 4);
        assert_eq!(c[0].client, "198.51.100.10:40000".parse().unwrap());
        assert_eq!(c[0].virtual_addr, "192.168.1.250:80".parse().unwrap());
        assert_eq!(c[0].dest, "192.168.1.201:80".parse().unwrap());
        assert_eq!(c[0].state, "ESTABLISHED");
        assert_eq!(c[0].expires_secs, 899);
        assert_eq!(c[1].dest, "192.168.1.203:80".parse().unwrap());
        assert_eq!(c[2].protocol, "IP");
        assert_eq!(c[2].client.port(), 0);
        assert_eq!(c[3].client, "[2001:db8::1]:40000".parse().unwrap());
    }
}
