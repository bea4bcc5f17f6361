//! The "IPVS" generic netlink family's numbers (include/uapi/linux/ip_vs.h) and its
//! attributes, emitted and read the way net/netfilter/ipvs/ip_vs_ctl.c's policies say:
//! ports and the IPv4 netmask travel in network byte order inside their NLA_U16/NLA_U32,
//! addresses as the 16-byte `union nf_inet_addr`.

use netlink_packet_core::{DecodeError, Nla, NlaBuffer, NlasIterator};
use std::net::IpAddr;

/// The family's name, resolved to its id through the generic netlink controller.
pub const FAMILY_NAME: &str = "IPVS";
/// IPVS_GENL_VERSION.
pub const FAMILY_VERSION: u8 = 1;

/// Commands (`IPVS_CMD_*`).
pub mod cmd {
    /// IPVS_CMD_NEW_SERVICE.
    pub const NEW_SERVICE: u8 = 1;
    /// IPVS_CMD_SET_SERVICE.
    pub const SET_SERVICE: u8 = 2;
    /// IPVS_CMD_DEL_SERVICE.
    pub const DEL_SERVICE: u8 = 3;
    /// IPVS_CMD_GET_SERVICE.
    pub const GET_SERVICE: u8 = 4;
    /// IPVS_CMD_NEW_DEST.
    pub const NEW_DEST: u8 = 5;
    /// IPVS_CMD_SET_DEST.
    pub const SET_DEST: u8 = 6;
    /// IPVS_CMD_DEL_DEST.
    pub const DEL_DEST: u8 = 7;
    /// IPVS_CMD_GET_DEST.
    pub const GET_DEST: u8 = 8;
    /// IPVS_CMD_NEW_DAEMON.
    pub const NEW_DAEMON: u8 = 9;
    /// IPVS_CMD_DEL_DAEMON.
    pub const DEL_DAEMON: u8 = 10;
    /// IPVS_CMD_GET_DAEMON.
    pub const GET_DAEMON: u8 = 11;
    /// IPVS_CMD_SET_CONFIG.
    pub const SET_CONFIG: u8 = 12;
    /// IPVS_CMD_GET_CONFIG.
    pub const GET_CONFIG: u8 = 13;
    /// IPVS_CMD_GET_INFO.
    pub const GET_INFO: u8 = 15;
    /// IPVS_CMD_ZERO.
    pub const ZERO: u8 = 16;
    /// IPVS_CMD_FLUSH.
    pub const FLUSH: u8 = 17;
}

/// First-level attributes (`IPVS_CMD_ATTR_*`).
pub mod cmd_attr {
    /// IPVS_CMD_ATTR_SERVICE (nested).
    pub const SERVICE: u16 = 1;
    /// IPVS_CMD_ATTR_DEST (nested).
    pub const DEST: u16 = 2;
    /// IPVS_CMD_ATTR_DAEMON (nested).
    pub const DAEMON: u16 = 3;
    /// IPVS_CMD_ATTR_TIMEOUT_TCP.
    pub const TIMEOUT_TCP: u16 = 4;
    /// IPVS_CMD_ATTR_TIMEOUT_TCP_FIN.
    pub const TIMEOUT_TCP_FIN: u16 = 5;
    /// IPVS_CMD_ATTR_TIMEOUT_UDP.
    pub const TIMEOUT_UDP: u16 = 6;
}

/// Service attributes (`IPVS_SVC_ATTR_*`).
pub mod svc {
    /// IPVS_SVC_ATTR_AF.
    pub const AF: u16 = 1;
    /// IPVS_SVC_ATTR_PROTOCOL.
    pub const PROTOCOL: u16 = 2;
    /// IPVS_SVC_ATTR_ADDR.
    pub const ADDR: u16 = 3;
    /// IPVS_SVC_ATTR_PORT.
    pub const PORT: u16 = 4;
    /// IPVS_SVC_ATTR_FWMARK.
    pub const FWMARK: u16 = 5;
    /// IPVS_SVC_ATTR_SCHED_NAME.
    pub const SCHED_NAME: u16 = 6;
    /// IPVS_SVC_ATTR_FLAGS (`struct ip_vs_flags`).
    pub const FLAGS: u16 = 7;
    /// IPVS_SVC_ATTR_TIMEOUT (persistence, seconds).
    pub const TIMEOUT: u16 = 8;
    /// IPVS_SVC_ATTR_NETMASK.
    pub const NETMASK: u16 = 9;
    /// IPVS_SVC_ATTR_STATS (nested, 32-bit counters).
    pub const STATS: u16 = 10;
    /// IPVS_SVC_ATTR_STATS64 (nested).
    pub const STATS64: u16 = 12;
}

/// Destination attributes (`IPVS_DEST_ATTR_*`).
pub mod dest {
    /// IPVS_DEST_ATTR_ADDR.
    pub const ADDR: u16 = 1;
    /// IPVS_DEST_ATTR_PORT.
    pub const PORT: u16 = 2;
    /// IPVS_DEST_ATTR_FWD_METHOD.
    pub const FWD_METHOD: u16 = 3;
    /// IPVS_DEST_ATTR_WEIGHT.
    pub const WEIGHT: u16 = 4;
    /// IPVS_DEST_ATTR_U_THRESH.
    pub const U_THRESH: u16 = 5;
    /// IPVS_DEST_ATTR_L_THRESH.
    pub const L_THRESH: u16 = 6;
    /// IPVS_DEST_ATTR_ACTIVE_CONNS.
    pub const ACTIVE_CONNS: u16 = 7;
    /// IPVS_DEST_ATTR_INACT_CONNS.
    pub const INACT_CONNS: u16 = 8;
    /// IPVS_DEST_ATTR_PERSIST_CONNS.
    pub const PERSIST_CONNS: u16 = 9;
    /// IPVS_DEST_ATTR_STATS (nested).
    pub const STATS: u16 = 10;
    /// IPVS_DEST_ATTR_ADDR_FAMILY.
    pub const ADDR_FAMILY: u16 = 11;
    /// IPVS_DEST_ATTR_STATS64 (nested).
    pub const STATS64: u16 = 12;
}

/// Sync daemon attributes (`IPVS_DAEMON_ATTR_*`).
pub mod daemon {
    /// IPVS_DAEMON_ATTR_STATE (1 master, 2 backup).
    pub const STATE: u16 = 1;
    /// IPVS_DAEMON_ATTR_MCAST_IFN.
    pub const MCAST_IFN: u16 = 2;
    /// IPVS_DAEMON_ATTR_SYNC_ID.
    pub const SYNC_ID: u16 = 3;
}

/// Statistics attributes (`IPVS_STATS_ATTR_*`), in both nests.
pub mod stats {
    /// IPVS_STATS_ATTR_CONNS.
    pub const CONNS: u16 = 1;
    /// IPVS_STATS_ATTR_INPKTS.
    pub const INPKTS: u16 = 2;
    /// IPVS_STATS_ATTR_OUTPKTS.
    pub const OUTPKTS: u16 = 3;
    /// IPVS_STATS_ATTR_INBYTES.
    pub const INBYTES: u16 = 4;
    /// IPVS_STATS_ATTR_OUTBYTES.
    pub const OUTBYTES: u16 = 5;
}

/// Info attributes (`IPVS_INFO_ATTR_*`).
pub mod info {
    /// IPVS_INFO_ATTR_VERSION.
    pub const VERSION: u16 = 1;
    /// IPVS_INFO_ATTR_CONN_TAB_SIZE.
    pub const CONN_TAB_SIZE: u16 = 2;
}

/// Service flags (`IP_VS_SVC_F_*`).
pub mod svc_flags {
    /// IP_VS_SVC_F_PERSISTENT.
    pub const PERSISTENT: u32 = 0x0001;
    /// IP_VS_SVC_F_ONEPACKET.
    pub const ONEPACKET: u32 = 0x0004;
    /// IP_VS_SVC_F_SCHED1 (sh-fallback, mh-fallback).
    pub const SCHED1: u32 = 0x0008;
    /// IP_VS_SVC_F_SCHED2 (sh-port, mh-port).
    pub const SCHED2: u32 = 0x0010;
    /// IP_VS_SVC_F_SCHED3.
    pub const SCHED3: u32 = 0x0020;
}

/// Forwarding methods (`IP_VS_CONN_F_*` & IP_VS_CONN_F_FWD_MASK).
pub mod fwd {
    /// IP_VS_CONN_F_MASQ.
    pub const MASQ: u32 = 0;
    /// IP_VS_CONN_F_TUNNEL.
    pub const TUNNEL: u32 = 2;
    /// IP_VS_CONN_F_DROUTE.
    pub const DROUTE: u32 = 3;
    /// IP_VS_CONN_F_FWD_MASK.
    pub const MASK: u32 = 7;
}

/// AF_INET.
pub const AF_INET: u16 = 2;
/// AF_INET6.
pub const AF_INET6: u16 = 10;

/// The address family of `a`.
pub fn af_of(a: IpAddr) -> u16 {
    match a {
        IpAddr::V4(_) => AF_INET,
        IpAddr::V6(_) => AF_INET6,
    }
}

/// `union nf_inet_addr`: 16 bytes, an IPv4 address in the first four.
pub fn inet_addr(a: IpAddr) -> Vec<u8> {
    let mut v = vec![0u8; 16];
    match a {
        IpAddr::V4(a) => v[..4].copy_from_slice(&a.octets()),
        IpAddr::V6(a) => v.copy_from_slice(&a.octets()),
    }
    v
}

/// One attribute to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attr {
    /// A native-endian u16.
    U16(u16, u16),
    /// A native-endian u32.
    U32(u16, u32),
    /// A u16 the kernel reads with nla_get_be16 (ports).
    Be16(u16, u16),
    /// A u32 the kernel reads with nla_get_be32 (the IPv4 netmask).
    Be32(u16, u32),
    /// Raw bytes (addresses, `struct ip_vs_flags`).
    Bytes(u16, Vec<u8>),
    /// A NUL-terminated string.
    Str(u16, String),
    /// Nested attributes.
    Nested(u16, Vec<Attr>),
}

impl Nla for Attr {
    fn value_len(&self) -> usize {
        match self {
            Attr::U16(..) | Attr::Be16(..) => 2,
            Attr::U32(..) | Attr::Be32(..) => 4,
            Attr::Bytes(_, b) => b.len(),
            Attr::Str(_, s) => s.len() + 1,
            Attr::Nested(_, n) => n.as_slice().buffer_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Attr::U16(k, _)
            | Attr::U32(k, _)
            | Attr::Be16(k, _)
            | Attr::Be32(k, _)
            | Attr::Bytes(k, _)
            | Attr::Str(k, _)
            | Attr::Nested(k, _) => *k,
        }
    }

    fn is_nested(&self) -> bool {
        matches!(self, Attr::Nested(..))
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            Attr::U16(_, v) => buffer[..2].copy_from_slice(&v.to_ne_bytes()),
            Attr::U32(_, v) => buffer[..4].copy_from_slice(&v.to_ne_bytes()),
            Attr::Be16(_, v) => buffer[..2].copy_from_slice(&v.to_be_bytes()),
            Attr::Be32(_, v) => buffer[..4].copy_from_slice(&v.to_be_bytes()),
            Attr::Bytes(_, b) => buffer[..b.len()].copy_from_slice(b),
            Attr::Str(_, s) => {
                buffer[..s.len()].copy_from_slice(s.as_bytes());
                buffer[s.len()] = 0;
            }
            Attr::Nested(_, n) => n.as_slice().emit(buffer),
        }
    }
}

use netlink_packet_core::Emitable;

/// Attributes read back: kind and value bytes, in the order the kernel sent them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attrs(pub Vec<(u16, Vec<u8>)>);

impl Attrs {
    /// Splits `buf` into attributes.
    pub fn parse(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut out = Vec::new();
        for nla in NlasIterator::new(buf) {
            let nla: NlaBuffer<&[u8]> = nla?;
            out.push((nla.kind(), nla.value().to_vec()));
        }
        Ok(Attrs(out))
    }

    /// The value of the first attribute of `kind`.
    pub fn get(&self, kind: u16) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, v)| v.as_slice())
    }

    /// A nested attribute, parsed.
    pub fn nested(&self, kind: u16) -> Result<Option<Attrs>, DecodeError> {
        self.get(kind).map(Attrs::parse).transpose()
    }

    /// A native-endian u16.
    pub fn u16(&self, kind: u16) -> Option<u16> {
        self.get(kind)?
            .get(..2)?
            .try_into()
            .ok()
            .map(u16::from_ne_bytes)
    }

    /// A native-endian u32.
    pub fn u32(&self, kind: u16) -> Option<u32> {
        self.get(kind)?
            .get(..4)?
            .try_into()
            .ok()
            .map(u32::from_ne_bytes)
    }

    /// A native-endian u64.
    pub fn u64(&self, kind: u16) -> Option<u64> {
        self.get(kind)?
            .get(..8)?
            .try_into()
            .ok()
            .map(u64::from_ne_bytes)
    }

    /// A big-endian u16 (ports).
    pub fn be16(&self, kind: u16) -> Option<u16> {
        self.get(kind)?
            .get(..2)?
            .try_into()
            .ok()
            .map(u16::from_be_bytes)
    }

    /// A big-endian u32 (the IPv4 netmask).
    pub fn be32(&self, kind: u16) -> Option<u32> {
        self.get(kind)?
            .get(..4)?
            .try_into()
            .ok()
            .map(u32::from_be_bytes)
    }

    /// A NUL-terminated string.
    pub fn string(&self, kind: u16) -> Option<String> {
        let v = self.get(kind)?;
        let end = v.iter().position(|b| *b == 0).unwrap_or(v.len());
        Some(String::from_utf8_lossy(&v[..end]).into_owned())
    }

    /// A `union nf_inet_addr` of family `af`.
    pub fn addr(&self, kind: u16, af: u16) -> Option<IpAddr> {
        let v = self.get(kind)?;
        if af == AF_INET6 {
            let b: [u8; 16] = v.get(..16)?.try_into().ok()?;
            Some(IpAddr::from(b))
        } else {
            let b: [u8; 4] = v.get(..4)?.try_into().ok()?;
            Some(IpAddr::from(b))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_attributes_emit_as_the_kernel_reads_them() {
        let a = Attr::Nested(
            cmd_attr::SERVICE,
            vec![
                Attr::U16(svc::AF, AF_INET),
                Attr::Be16(svc::PORT, 80),
                Attr::Str(svc::SCHED_NAME, "wlc".into()),
            ],
        );
        let mut buf = vec![0u8; [a.clone()].as_slice().buffer_len()];
        [a].as_slice().emit(&mut buf);
        // nlattr header: length, then type with NLA_F_NESTED (0x8000).
        assert_eq!(&buf[..4], &[28, 0, 0x01, 0x80]);
        // AF: 4-byte header + u16, padded to 8.
        assert_eq!(&buf[4..10], &[6, 0, 1, 0, 2, 0]);
        // PORT 80 in network order.
        assert_eq!(&buf[12..18], &[6, 0, 4, 0, 0, 80]);
        // "wlc\0".
        assert_eq!(&buf[20..28], &[8, 0, 6, 0, b'w', b'l', b'c', 0]);
        let top = Attrs::parse(&buf).unwrap();
        let inner = top.nested(cmd_attr::SERVICE).unwrap().unwrap();
        assert_eq!(inner.u16(svc::AF), Some(AF_INET));
        assert_eq!(inner.be16(svc::PORT), Some(80));
        assert_eq!(inner.string(svc::SCHED_NAME).as_deref(), Some("wlc"));
    }

    #[test]
    fn addresses_are_sixteen_bytes() {
        let v4: IpAddr = "192.168.1.250".parse().unwrap();
        let b = inet_addr(v4);
        assert_eq!(b.len(), 16);
        assert_eq!(&b[..4], &[192, 168, 1, 250]);
        let a = Attrs(vec![(svc::ADDR, b)]);
        assert_eq!(a.addr(svc::ADDR, AF_INET), Some(v4));
        let v6: IpAddr = "2001:db8::10".parse().unwrap();
        let a = Attrs(vec![(svc::ADDR, inet_addr(v6))]);
        assert_eq!(a.addr(svc::ADDR, AF_INET6), Some(v6));
    }
}
