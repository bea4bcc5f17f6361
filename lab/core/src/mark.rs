//! Firewall marks, set as an iptables mangle MARK rule sets them before IPVS sees a packet.
//!
//! A firewall-mark service (`ipvsadm -A -f MARK`) matches packets by their mark, not their
//! address, so one scheduler table can cover many VIPs: what sites do for cache clusters
//! balanced by dh, lblc or lblcr. The kernel needs netfilter to set the mark; the userspace
//! director reads the same rule, written the way iptables takes it:
//!
//! `iptables -t mangle -A PREROUTING -d 192.168.1.251/32 -p tcp --dport 80 -j MARK --set-mark 1`
use std::fmt;
use std::net::Ipv4Addr;

use crate::Protocol;

/// One mangle PREROUTING MARK rule: packets to `dst` (protocol and port) get `mark`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarkRule {
    /// Destination address (`-d`, one host).
    pub dst: Ipv4Addr,
    /// Transport protocol (`-p`).
    pub protocol: Protocol,
    /// Destination port (`--dport`); `None` marks every port.
    pub port: Option<u16>,
    /// The mark (`--set-mark`), never 0: 0 means "no mark" to IPVS.
    pub mark: u32,
}

impl MarkRule {
    /// Does a packet with this protocol, destination address and port get the mark?
    pub fn matches(&self, protocol: Protocol, dst: Ipv4Addr, port: u16) -> bool {
        self.protocol == protocol && self.dst == dst && self.port.is_none_or(|p| p == port)
    }

    /// Is `line` meant as a mark rule (rather than an ipvsadm line)?
    pub fn is_rule(line: &str) -> bool {
        line.split_whitespace().next() == Some("iptables")
    }

    /// Parses the iptables line [`MarkRule`]'s Display writes; the error says what is wrong.
    pub fn parse(line: &str) -> Result<MarkRule, String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let mut w = words.as_slice();
        if w.first() == Some(&"iptables") {
            w = &w[1..];
        }
        let (mut table, mut chain, mut target) = (None, None, None);
        let (mut dst, mut protocol, mut port, mut mark) = (None, None, None, None);
        while let [flag, value, rest @ ..] = w {
            match *flag {
                "-t" | "--table" => table = Some(*value),
                "-A" | "--append" => chain = Some(*value),
                "-j" | "--jump" => target = Some(*value),
                "-d" | "--destination" => {
                    let host = value.strip_suffix("/32").unwrap_or(value);
                    dst =
                        Some(host.parse::<Ipv4Addr>().map_err(|_| {
                            format!("-d {value}: one IPv4 host, like 192.168.1.250")
                        })?);
                }
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

impl fmt::Display for MarkRule {
    /// The rule as an iptables command line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = match self.protocol {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        };
        write!(
            f,
            "iptables -t mangle -A PREROUTING -d {}/32 -p {p}",
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
        let vip = Ipv4Addr::new(192, 168, 1, 251);
        assert!(r.matches(Protocol::Tcp, vip, 80));
        assert!(!r.matches(Protocol::Udp, vip, 80));
        assert!(!r.matches(Protocol::Tcp, vip, 81));
        assert!(!r.matches(Protocol::Tcp, Ipv4Addr::new(192, 168, 1, 250), 80));
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
        ] {
            assert!(MarkRule::parse(bad).is_err(), "{bad}");
        }
    }
}
