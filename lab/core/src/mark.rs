//! Firewall marks, set as an iptables mangle MARK rule sets them before IPVS sees a packet.
//!
//! A firewall-mark service (`ipvsadm -A -f MARK`) matches packets by their mark, not their
//! address, so one scheduler table can cover many VIPs: what sites do for cache clusters
//! balanced by dh, lblc or lblcr. The kernel needs netfilter to set the mark; the userspace
//! director reads the same rule, written the way iptables takes it:
//!
//! `iptables -t mangle -A PREROUTING -d 192.168.1.251/32 -p tcp --dport 80 -j MARK --set-mark 1`
//!
//! and for IPv6 packets (an `ipvsadm -A -f MARK -6` service) the same rule in ip6tables:
//!
//! `ip6tables -t mangle -A PREROUTING -d 2001:db8:2::1/128 -p tcp --dport 80 -j MARK --set-mark 1`
use std::fmt;
use std::net::IpAddr;

use crate::{Family, Protocol};

/// One mangle PREROUTING MARK rule: packets to `dst` (protocol and port) get `mark`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarkRule {
    /// Destination address (`-d`, one host): IPv4 in an iptables rule, IPv6 in an
    /// ip6tables one.
    pub dst: IpAddr,
    /// Transport protocol (`-p`).
    pub protocol: Protocol,
    /// Destination port (`--dport`); `None` marks every port.
    pub port: Option<u16>,
    /// The mark (`--set-mark`), never 0: 0 means "no mark" to IPVS.
    pub mark: u32,
}

impl MarkRule {
    /// Does a packet with this protocol, destination address and port get the mark?
    pub fn matches(&self, protocol: Protocol, dst: IpAddr, port: u16) -> bool {
        self.protocol == protocol && self.dst == dst && self.port.is_none_or(|p| p == port)
    }

    /// The family of the packets the rule marks: iptables marks IPv4, ip6tables IPv6.
    pub fn family(&self) -> Family {
        Family::of(self.dst)
    }

    /// Is `line` meant as a mark rule (rather than an ipvsadm line)?
    pub fn is_rule(line: &str) -> bool {
        matches!(
            line.split_whitespace().next(),
            Some("iptables" | "ip6tables")
        )
    }

    /// Parses the iptables line [`MarkRule`]'s Display writes; the error says what is wrong.
    pub fn parse(line: &str) -> Result<MarkRule, String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let mut w = words.as_slice();
        // The command names the family; a rule without it takes its address's.
        let family = match w.first() {
            Some(&"iptables") => Some(Family::Ipv4),
            Some(&"ip6tables") => Some(Family::Ipv6),
            _ => None,
        };
        if family.is_some() {
            w = &w[1..];
        }
        let (mut table, mut chain, mut target) = (None, None, None);
        let (mut dst, mut protocol, mut port, mut mark) = (None, None, None, None);
        while let [flag, value, rest @ ..] = w {
            match *flag {
                "-t" | "--table" => table = Some(*value),
                "-A" | "--append" => chain = Some(*value),
                "-j" | "--jump" => target = Some(*value),
                "-d" | "--destination" => dst = Some(parse_host(value, family)?),
                "-p" | "--protocol" => {
                    protocol = Some(match *value {
                        "tcp" => Protocol::Tcp,
                        "udp" => Protocol::Udp,
                        other => return Err(format!("-p {other}: tcp or udp")),
                    });
                }
                "--dport" | "--destination-port" => {
                    port = Some(
                        value
                            .parse::<u16>()
                            .map_err(|_| format!("--dport {value}: a port, 0 to 65535"))?,
                    );
                }
                "--set-mark" => {
                    let m = match value.strip_prefix("0x") {
                        Some(hex) => u32::from_str_radix(hex, 16),
                        None => value.parse(),
                    };
                    mark = Some(m.map_err(|_| format!("--set-mark {value}: a 32-bit mark"))?);
                }
                other => return Err(format!("{other}: not part of a mangle MARK rule")),
            }
            w = rest;
        }
        if let [stray] = w {
            return Err(format!("{stray}: a flag without its value"));
        }
        if table != Some("mangle") || chain != Some("PREROUTING") || target != Some("MARK") {
            return Err("only `-t mangle -A PREROUTING ... -j MARK --set-mark N` rules".into());
        }
        let dst = dst.ok_or("the rule needs -d ADDRESS")?;
        let protocol = protocol.ok_or("the rule needs -p tcp or -p udp")?;
        let mark = match mark {
            Some(0) | None => return Err("the rule needs --set-mark with a mark above 0".into()),
            Some(m) => m,
        };
        Ok(MarkRule {
            dst,
            protocol,
            port,
            mark,
        })
    }
}

/// `-d HOST[/32|/128]`: one host of the rule's family (iptables refuses an IPv6 address
/// and ip6tables an IPv4 one; a rule without its command word takes either).
fn parse_host(value: &str, family: Option<Family>) -> Result<IpAddr, String> {
    let (host, len) = match value.split_once('/') {
        Some((h, l)) => (h, Some(l)),
        None => (value, None),
    };
    let ip = host.parse::<IpAddr>().ok();
    let want = family.or(ip.map(Family::of));
    let example = match want {
        Some(Family::Ipv6) => "ip6tables: one IPv6 host, like 2001:db8:1::250",
        _ => "iptables: one IPv4 host, like 192.168.1.250",
    };
    let host_len = match want {
        Some(Family::Ipv6) => "128",
        _ => "32",
    };
    match ip {
        Some(ip) if Some(Family::of(ip)) == want && len.is_none_or(|l| l == host_len) => Ok(ip),
        _ => Err(format!("-d {value}: {example}")),
    }
}

impl fmt::Display for MarkRule {
    /// The rule as an iptables (IPv4) or ip6tables (IPv6) command line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = match self.protocol {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        };
        let (cmd, host) = match self.dst {
            IpAddr::V4(_) => ("iptables", 32),
            IpAddr::V6(_) => ("ip6tables", 128),
        };
        write!(
            f,
            "{cmd} -t mangle -A PREROUTING -d {}/{host} -p {p}",
            self.dst
        )?;
        if let Some(port) = self.port {
            write!(f, " --dport {port}")?;
        }
        write!(f, " -j MARK --set-mark {}", self.mark)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_round_trip_and_match() {
        let line = "iptables -t mangle -A PREROUTING -d 192.168.1.251/32 -p tcp --dport 80 -j MARK --set-mark 1";
        let r = MarkRule::parse(line).unwrap();
        assert_eq!(r.to_string(), line);
        assert!(MarkRule::is_rule(line) && !MarkRule::is_rule("-A -f 1 -s dh"));
        let vip: IpAddr = "192.168.1.251".parse().unwrap();
        assert!(r.matches(Protocol::Tcp, vip, 80));
        assert!(!r.matches(Protocol::Udp, vip, 80));
        assert!(!r.matches(Protocol::Tcp, vip, 81));
        assert!(!r.matches(Protocol::Tcp, "192.168.1.250".parse().unwrap(), 80));
        let hex =
            MarkRule::parse("-t mangle -A PREROUTING -d 10.0.0.1 -p udp -j MARK --set-mark 0x10");
        assert_eq!(hex.map(|r| (r.mark, r.port)), Ok((16, None)));
    }

    #[test]
    fn other_rules_are_refused() {
        for bad in [
            "iptables -t nat -A PREROUTING -d 10.0.0.1 -p tcp -j MARK --set-mark 1",
            "iptables -t mangle -A PREROUTING -d 10.0.0.1 -p tcp -j MARK --set-mark 0",
            "iptables -t mangle -A PREROUTING -p tcp -j MARK --set-mark 1",
            "iptables -t mangle -A PREROUTING -d 10.0.0.0/8 -p tcp -j MARK --set-mark 1",
            "iptables -t mangle -A PREROUTING -d 10.0.0.1 -p icmp -j MARK --set-mark 1",
            "iptables -t mangle -A PREROUTING -d 10.0.0.1 -p tcp -j MARK --set-mark",
            "iptables -t mangle -A PREROUTING -d 10.0.0.1 -p tcp -i eth0 -j MARK --set-mark 1",
            // Each command keeps to its family, and a host is one address.
            "iptables -t mangle -A PREROUTING -d 2001:db8::1 -p tcp -j MARK --set-mark 1",
            "ip6tables -t mangle -A PREROUTING -d 10.0.0.1 -p tcp -j MARK --set-mark 1",
            "ip6tables -t mangle -A PREROUTING -d 2001:db8::1/32 -p tcp -j MARK --set-mark 1",
            "ip6tables -t mangle -A PREROUTING -d 2001:db8::/64 -p tcp -j MARK --set-mark 1",
            "iptables -t mangle -A PREROUTING -d 10.0.0.1/128 -p tcp -j MARK --set-mark 1",
        ] {
            assert!(MarkRule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ip6tables_rules_mark_ipv6_packets_only() {
        let line = "ip6tables -t mangle -A PREROUTING -d 2001:db8:2::1/128 -p tcp --dport 80 -j MARK --set-mark 1";
        let r = MarkRule::parse(line).unwrap();
        assert_eq!(r.to_string(), line);
        assert_eq!(r.family(), Family::Ipv6);
        assert!(MarkRule::is_rule(line));
        let dst: IpAddr = "2001:db8:2::1".parse().unwrap();
        assert!(r.matches(Protocol::Tcp, dst, 80));
        assert!(!r.matches(Protocol::Tcp, "2001:db8:2::2".parse().unwrap(), 80));
        // Without its command word the address decides, and writes back as ip6tables.
        let bare = MarkRule::parse(
            "-t mangle -A PREROUTING -d 2001:db8:2::1 -p tcp --dport 80 -j MARK --set-mark 1",
        );
        assert_eq!(bare.map(|r| r.to_string()).as_deref(), Ok(line));
        let wrong = MarkRule::parse(
            "iptables -t mangle -A PREROUTING -d 2001:db8::1 -p tcp -j MARK --set-mark 1",
        );
        assert_eq!(
            wrong,
            Err("-d 2001:db8::1: iptables: one IPv4 host, like 192.168.1.250".to_string())
        );
    }
}
