//! The IPVS sync message, version 1, byte for byte as net/netfilter/ipvs/ip_vs_sync.c lays
//! it out (struct ip_vs_sync_mesg, struct ip_vs_sync_v4 / ip_vs_sync_v6), and the UDP
//! frame the master multicasts it in.
//!
//! Message header (8 bytes): reserved 0 (v0's nr_conns, so v0 receivers drop it), syncid,
//! size (whole message, big-endian), nr_conns, version 1, spare 0. Each entry: type (bit 0:
//! IPv6), protocol, ver_size (version in the top 4 bits, entry size in the low 12), flags
//! (IP_VS_CONN_F_*), state, cport, vport, dport, fwmark, timeout in seconds, then caddr,
//! vaddr, daddr (4 or 16 bytes each), then options. Entries start 32-bit aligned.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use crate::tcp::ConnState;
use crate::types::Protocol;
use crate::wire::checksum::{internet_checksum, ipv4_header_fill};
use crate::wire::{
    self, MacAddr, Parsed, ETHERTYPE_IPV4, ETH_HDR_LEN, IPPROTO_TCP, IPPROTO_UDP, L4,
};

/// The sync multicast group (IP_VS_SYNC_GROUP).
pub const SYNC_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 81);
/// The sync UDP port (IP_VS_SYNC_PORT); the master's kernel sends from an ephemeral port
/// (bind_mcastif_addr binds port 0), the backup only looks at the destination.
pub const SYNC_PORT: u16 = 8848;
/// The MAC address 224.0.0.81 maps to (RFC 1112: 01:00:5e + the low 23 bits).
pub const SYNC_GROUP_MAC: MacAddr = MacAddr([0x01, 0x00, 0x5e, 0x00, 0x00, 0x51]);
/// SYNC_PROTO_VER.
pub const SYNC_PROTO_VER: u8 = 1;
/// The payload a master fills up to: start_sync_thread uses an MTU of 1500 for the master
/// whatever the interface says, minus the IPv4 and UDP headers.
pub const SYNC_MAX_PAYLOAD: usize = 1500 - 20 - 8;

/// IP_VS_CONN_F_FWD_MASK: the forwarding method bits.
pub const CONN_F_FWD_MASK: u32 = 0x0007;
/// IP_VS_CONN_F_MASQ (NAT).
pub const CONN_F_MASQ: u32 = 0x0000;
/// IP_VS_CONN_F_TUNNEL.
pub const CONN_F_TUNNEL: u32 = 0x0002;
/// IP_VS_CONN_F_DROUTE.
pub const CONN_F_DROUTE: u32 = 0x0003;
/// IP_VS_CONN_F_SYNC: the entry was itself created by sync.
pub const CONN_F_SYNC: u32 = 0x0020;
/// IP_VS_CONN_F_HASHED (never sent).
pub const CONN_F_HASHED: u32 = 0x0040;
/// IP_VS_CONN_F_NOOUTPUT: replies bypass the director.
pub const CONN_F_NOOUTPUT: u32 = 0x0080;
/// IP_VS_CONN_F_INACTIVE: not ESTABLISHED.
pub const CONN_F_INACTIVE: u32 = 0x0100;
/// IP_VS_CONN_F_SEQ_MASK: sequence adjustment (carries the seq option).
pub const CONN_F_SEQ_MASK: u32 = 0x0600;
/// IP_VS_CONN_F_NO_CPORT.
pub const CONN_F_NO_CPORT: u32 = 0x0800;
/// IP_VS_CONN_F_TEMPLATE: a persistence template.
pub const CONN_F_TEMPLATE: u32 = 0x1000;
/// IP_VS_CONN_F_ONE_PACKET (never synced).
pub const CONN_F_ONE_PACKET: u32 = 0x2000;
/// IP_VS_CONN_F_BACKUP_MASK: the bits a backup takes from a new entry.
pub const CONN_F_BACKUP_MASK: u32 = CONN_F_FWD_MASK
    | CONN_F_NOOUTPUT
    | CONN_F_INACTIVE
    | CONN_F_SEQ_MASK
    | CONN_F_NO_CPORT
    | CONN_F_TEMPLATE;
/// IP_VS_CONN_F_BACKUP_UPD_MASK: the bits a backup updates on an existing entry.
pub const CONN_F_BACKUP_UPD_MASK: u32 = CONN_F_INACTIVE | CONN_F_SEQ_MASK;

const MESG_HDR_LEN: usize = 8;
const V4_LEN: usize = 36;
const V6_LEN: usize = 72;
const STYPE_F_INET6: u8 = 1;
const SVER_SHIFT: u16 = 12;
const SVER_MASK: u16 = 0x0fff;
const IPVS_OPT_SEQ_DATA: u8 = 1;
const IPVS_OPT_PE_DATA: u8 = 2;
const IPVS_OPT_PE_NAME: u8 = 3;
const IPVS_OPT_F_PARAM: u8 = 1 << (7 - 1);
const IP_VS_PENAME_MAXLEN: usize = 16;
/// sizeof(struct ip_vs_sync_conn_options): two struct ip_vs_seq of three u32.
const SEQ_OPT_LEN: usize = 24;
/// nr_conns is a __u8.
const MAX_CONNS_PER_MESG: usize = 255;

/// One connection entry of a sync message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncConn {
    /// TCP or UDP (for a template, the protocol of the flows it pins).
    pub protocol: Protocol,
    /// Client address; a template's is the masked client with port 0.
    pub client: SocketAddr,
    /// Virtual address and port.
    pub vip: SocketAddr,
    /// Real server address and the conn's destination port.
    pub dest: SocketAddr,
    /// The firewall mark of a fwmark service (0 otherwise).
    pub fwmark: u32,
    /// Protocol state (TCP state, `Udp`, or `None` for a template).
    pub state: ConnState,
    /// IP_VS_CONN_F_* bits as sent (forwarding method, template, no-output, inactive, ...).
    pub flags: u32,
    /// The conn's timeout in its current state (whole seconds on the wire).
    pub timeout: Duration,
}

impl SyncConn {
    /// A persistence template rather than a flow.
    pub fn is_template(&self) -> bool {
        self.flags & CONN_F_TEMPLATE != 0
    }

    fn is_v6(&self) -> bool {
        self.client.is_ipv6() || self.vip.is_ipv6() || self.dest.is_ipv6()
    }

    fn wire_len(&self) -> usize {
        if self.is_v6() {
            V6_LEN
        } else {
            V4_LEN
        }
    }
}

/// A sync message: the entries one datagram carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncMessage {
    /// The sync id of the master (a backup with a non-zero id ignores others).
    pub syncid: u8,
    /// The entries.
    pub conns: Vec<SyncConn>,
}

/// Why a sync message could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    /// Shorter than a header.
    #[error("sync message of {len} bytes is shorter than its header")]
    TooShort {
        /// Bytes received.
        len: usize,
    },
    /// The size field disagrees with the datagram (the kernel's "bogus message size").
    #[error("sync message says it is {said} bytes but {len} arrived")]
    BadSize {
        /// The header's size field.
        said: usize,
        /// Bytes received.
        len: usize,
    },
    /// A version 0 message (sent by a master with net.ipv4.vs.sync_version=0).
    #[error("version 0 sync message ({nr_conns} conns): lvslab reads version 1 only; set net.ipv4.vs.sync_version=1 on the master")]
    Version0 {
        /// Its entry count.
        nr_conns: u8,
    },
    /// An entry runs past the end of the message.
    #[error("sync entry {index} runs past the end of the message")]
    Truncated {
        /// Entry number, from 0.
        index: usize,
    },
    /// An entry with a version other than 0 in its ver_size field.
    #[error("sync entry {index} has unknown entry version {version}")]
    EntryVersion {
        /// Entry number.
        index: usize,
        /// The version bits.
        version: u16,
    },
    /// An entry type other than IPv4 or IPv6.
    #[error("sync entry {index} has unknown type {ty}")]
    EntryType {
        /// Entry number.
        index: usize,
        /// The type byte.
        ty: u8,
    },
    /// A malformed option (the kernel drops the whole message for these).
    #[error("sync entry {index} has a malformed option: {what}")]
    BadOption {
        /// Entry number.
        index: usize,
        /// What is wrong.
        what: &'static str,
    },
    /// A UDP datagram to the sync group whose UDP header is broken.
    #[error("sync datagram with a broken UDP header")]
    BadUdp,
}

/// The ConnState numbered as IP_VS_TCP_S_*.
const TCP_STATES: [ConnState; 11] = [
    ConnState::None,
    ConnState::Established,
    ConnState::SynSent,
    ConnState::SynRecv,
    ConnState::FinWait,
    ConnState::TimeWait,
    ConnState::Close,
    ConnState::CloseWait,
    ConnState::LastAck,
    ConnState::Listen,
    ConnState::SynAck,
];

fn proto_num(p: Protocol) -> u8 {
    match p {
        Protocol::Tcp => IPPROTO_TCP,
        Protocol::Udp => IPPROTO_UDP,
    }
}

/// The state number on the wire: UDP's only state is IP_VS_UDP_S_NORMAL (0).
fn state_num(c: &SyncConn) -> u16 {
    match c.state {
        ConnState::Udp => 0,
        s => s as u16,
    }
}

fn put_addr(out: &mut Vec<u8>, a: IpAddr, v6: bool) {
    match (a, v6) {
        (IpAddr::V4(a), false) => out.extend_from_slice(&a.octets()),
        (IpAddr::V4(a), true) => out.extend_from_slice(&a.to_ipv6_mapped().octets()),
        (IpAddr::V6(a), true) => out.extend_from_slice(&a.octets()),
        // is_v6 makes an entry v6 as soon as one address is.
        (IpAddr::V6(_), false) => out.extend_from_slice(&[0; 4]),
    }
}

fn encode_conn(out: &mut Vec<u8>, c: &SyncConn) {
    let v6 = c.is_v6();
    let len = c.wire_len();
    out.push(if v6 { STYPE_F_INET6 } else { 0 });
    out.push(proto_num(c.protocol));
    // Entry version 0 in the top bits (ip_vs_sync_conn: htons(len & SVER_MASK)).
    out.extend_from_slice(&((len as u16) & SVER_MASK).to_be_bytes());
    out.extend_from_slice(&(c.flags & !CONN_F_HASHED).to_be_bytes());
    out.extend_from_slice(&state_num(c).to_be_bytes());
    out.extend_from_slice(&c.client.port().to_be_bytes());
    out.extend_from_slice(&c.vip.port().to_be_bytes());
    out.extend_from_slice(&c.dest.port().to_be_bytes());
    out.extend_from_slice(&c.fwmark.to_be_bytes());
    let secs = u32::try_from(c.timeout.as_secs()).unwrap_or(u32::MAX);
    out.extend_from_slice(&secs.to_be_bytes());
    put_addr(out, c.client.ip(), v6);
    put_addr(out, c.vip.ip(), v6);
    put_addr(out, c.dest.ip(), v6);
}

fn be16(b: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([b[off], b[off + 1]])
}

fn be32(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

fn addr_at(b: &[u8], off: usize, v6: bool) -> IpAddr {
    if v6 {
        let mut o = [0u8; 16];
        o.copy_from_slice(&b[off..off + 16]);
        IpAddr::V6(Ipv6Addr::from(o))
    } else {
        IpAddr::V4(Ipv4Addr::new(b[off], b[off + 1], b[off + 2], b[off + 3]))
    }
}

/// Check an entry's options as ip_vs_proc_sync_conn does. Ok(false): an unknown mandatory
/// option, for which the kernel drops this entry only.
fn check_options(opts: &[u8], index: usize) -> Result<bool, SyncError> {
    let bad = |what| SyncError::BadOption { index, what };
    let (mut seen_seq, mut seen_pe_data, mut seen_pe_name) = (false, false, false);
    let mut p = 0;
    while p < opts.len() {
        if p + 2 > opts.len() {
            return Err(bad("option header cut short"));
        }
        let (ptype, plen) = (opts[p], usize::from(opts[p + 1]));
        p += 2;
        if plen == 0 || p + plen > opts.len() {
            return Err(bad("option length"));
        }
        match ptype & !IPVS_OPT_F_PARAM {
            IPVS_OPT_SEQ_DATA => {
                if plen != SEQ_OPT_LEN || seen_seq {
                    return Err(bad("sequence option"));
                }
                seen_seq = true;
            }
            IPVS_OPT_PE_DATA => {
                if seen_pe_data {
                    return Err(bad("persistence engine data twice"));
                }
                seen_pe_data = true;
            }
            IPVS_OPT_PE_NAME => {
                if plen > IP_VS_PENAME_MAXLEN || seen_pe_name {
                    return Err(bad("persistence engine name"));
                }
                seen_pe_name = true;
            }
            _ if ptype & IPVS_OPT_F_PARAM == 0 => return Ok(false),
            _ => {}
        }
        p += plen;
    }
    // PE data needs a PE (sip) lvslab does not have: ip_vs_conn_fill_param_sync fails.
    Ok(!seen_pe_data)
}

/// One entry at `b[..]` (already bounded by its size). None: the kernel would skip it
/// (unsupported protocol or state, persistence-engine data, unknown mandatory option).
fn decode_conn(b: &[u8], index: usize) -> Result<Option<SyncConn>, SyncError> {
    // A size below the v4 entry: ip_vs_proc_sync_conn's -20.
    if b.len() < V4_LEN {
        return Err(SyncError::Truncated { index });
    }
    let ty = b[0];
    let v6 = if ty & STYPE_F_INET6 != 0 {
        true
    } else if ty == 0 {
        false
    } else {
        return Err(SyncError::EntryType { index, ty });
    };
    let base = if v6 { V6_LEN } else { V4_LEN };
    if b.len() < base {
        return Err(SyncError::Truncated { index });
    }
    if !check_options(&b[base..], index)? {
        return Ok(None);
    }
    let flags = be32(b, 4);
    let template = flags & CONN_F_TEMPLATE != 0;
    let protocol = match b[1] {
        IPPROTO_TCP => Protocol::Tcp,
        IPPROTO_UDP => Protocol::Udp,
        // IPPROTO_IP (a fwmark template), SCTP, ...: not lvslab's.
        _ => return Ok(None),
    };
    let st = usize::from(be16(b, 8));
    let state = match (protocol, template) {
        (_, true) => TCP_STATES.get(st).copied().unwrap_or(ConnState::None),
        (Protocol::Tcp, false) => match TCP_STATES.get(st) {
            Some(s) => *s,
            None => return Ok(None),
        },
        (Protocol::Udp, false) if st == 0 => ConnState::Udp,
        (Protocol::Udp, false) => return Ok(None),
    };
    let alen = if v6 { 16 } else { 4 };
    let a0 = 24;
    Ok(Some(SyncConn {
        protocol,
        client: SocketAddr::new(addr_at(b, a0, v6), be16(b, 10)),
        vip: SocketAddr::new(addr_at(b, a0 + alen, v6), be16(b, 12)),
        dest: SocketAddr::new(addr_at(b, a0 + 2 * alen, v6), be16(b, 14)),
        fwmark: be32(b, 16),
        state,
        flags,
        timeout: Duration::from_secs(u64::from(be32(b, 20))),
    }))
}

impl SyncMessage {
    /// The UDP payload, version 1. At most 255 entries fit the count byte: more are left
    /// out, so split long lists with [`SyncMessage::split`] first.
    pub fn encode(&self) -> Vec<u8> {
        let conns = &self.conns[..self.conns.len().min(MAX_CONNS_PER_MESG)];
        let mut out =
            Vec::with_capacity(MESG_HDR_LEN + conns.iter().map(SyncConn::wire_len).sum::<usize>());
        out.extend_from_slice(&[
            0,
            self.syncid,
            0,
            0,
            conns.len() as u8,
            SYNC_PROTO_VER,
            0,
            0,
        ]);
        for c in conns {
            // Entries without options are multiples of 4, so the kernel's pad is always 0.
            encode_conn(&mut out, c);
        }
        let size = u16::try_from(out.len()).unwrap_or(u16::MAX);
        out[2..4].copy_from_slice(&size.to_be_bytes());
        out
    }

    /// Messages as the master's buffers fill: a new buffer when the next entry would pass
    /// `max_payload` (ip_vs_sync_conn; a buffer always takes at least one entry,
    /// ip_vs_sync_buff_create), and at 255 entries.
    pub fn split(syncid: u8, conns: Vec<SyncConn>, max_payload: usize) -> Vec<SyncMessage> {
        let mut out = Vec::new();
        let mut cur: Vec<SyncConn> = Vec::new();
        let mut size = MESG_HDR_LEN;
        for c in conns {
            let len = c.wire_len();
            if !cur.is_empty() && (size + len > max_payload || cur.len() == MAX_CONNS_PER_MESG) {
                out.push(SyncMessage {
                    syncid,
                    conns: std::mem::take(&mut cur),
                });
                size = MESG_HDR_LEN;
            }
            size += len;
            cur.push(c);
        }
        if !cur.is_empty() {
            out.push(SyncMessage { syncid, conns: cur });
        }
        out
    }

    /// Read a version 1 message as ip_vs_process_message does: a broken message is an
    /// error; an entry the kernel would skip alone (a protocol other than TCP/UDP, a state
    /// out of range, persistence-engine data) is left out.
    pub fn decode(payload: &[u8]) -> Result<SyncMessage, SyncError> {
        let len = payload.len();
        // The v0 header is the shortest thing the kernel accepts.
        if len < 4 {
            return Err(SyncError::TooShort { len });
        }
        let said = usize::from(be16(payload, 2));
        if said != len {
            return Err(SyncError::BadSize { said, len });
        }
        let (reserved, syncid) = (payload[0], payload[1]);
        let v1 = len >= MESG_HDR_LEN
            && payload[5] == SYNC_PROTO_VER
            && reserved == 0
            && be16(payload, 6) == 0;
        if !v1 {
            return Err(SyncError::Version0 { nr_conns: reserved });
        }
        let nr_conns = usize::from(payload[4]);
        let mut conns = Vec::with_capacity(nr_conns);
        let mut p = MESG_HDR_LEN;
        for index in 0..nr_conns {
            if p + V4_LEN > len {
                return Err(SyncError::Truncated { index });
            }
            let ver_size = be16(payload, p + 2);
            let size = usize::from(ver_size & SVER_MASK);
            if p + size > len {
                return Err(SyncError::Truncated { index });
            }
            if ver_size >> SVER_SHIFT != 0 {
                return Err(SyncError::EntryVersion {
                    index,
                    version: ver_size >> SVER_SHIFT,
                });
            }
            if let Some(c) = decode_conn(&payload[p..p + size], index)? {
                conns.push(c);
            }
            // The next entry starts 32-bit aligned.
            p += (size + 3) & !3;
        }
        Ok(SyncMessage { syncid, conns })
    }
}

const IPV4_HDR_LEN: usize = 20;
const UDP_HDR_LEN: usize = 8;

/// The Ethernet frame a master's sync socket sends: IPv4 to 224.0.0.81 with TTL 1 (the
/// default mcast_ttl), DF clear (set_mcast_pmtudisc IP_PMTUDISC_DONT), UDP to port 8848
/// with its checksum. The source port is 8848 too: the kernel's is ephemeral.
pub fn sync_frame(src_mac: MacAddr, src_ip: Ipv4Addr, payload: &[u8]) -> Vec<u8> {
    let udp_len = UDP_HDR_LEN + payload.len();
    let ip_len = IPV4_HDR_LEN + udp_len;
    let mut f = Vec::with_capacity(ETH_HDR_LEN + ip_len);
    f.extend_from_slice(&SYNC_GROUP_MAC.0);
    f.extend_from_slice(&src_mac.0);
    f.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    let ip_len16 = u16::try_from(ip_len).unwrap_or(u16::MAX);
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&ip_len16.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 0, 1, IPPROTO_UDP, 0, 0]);
    f.extend_from_slice(&src_ip.octets());
    f.extend_from_slice(&SYNC_GROUP.octets());
    ipv4_header_fill(&mut f[ETH_HDR_LEN..ETH_HDR_LEN + IPV4_HDR_LEN]);
    let udp_len16 = u16::try_from(udp_len).unwrap_or(u16::MAX);
    f.extend_from_slice(&SYNC_PORT.to_be_bytes());
    f.extend_from_slice(&SYNC_PORT.to_be_bytes());
    f.extend_from_slice(&udp_len16.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    let udp_off = ETH_HDR_LEN + IPV4_HDR_LEN;
    let mut pseudo = Vec::with_capacity(12 + udp_len + 1);
    pseudo.extend_from_slice(&src_ip.octets());
    pseudo.extend_from_slice(&SYNC_GROUP.octets());
    pseudo.extend_from_slice(&[0, IPPROTO_UDP]);
    pseudo.extend_from_slice(&udp_len16.to_be_bytes());
    pseudo.extend_from_slice(&f[udp_off..]);
    let sum = match internet_checksum(&pseudo) {
        // RFC 768: a computed 0 goes out as all ones (0 means "no checksum").
        0 => 0xffff,
        s => s,
    };
    f[udp_off + 6..udp_off + 8].copy_from_slice(&sum.to_be_bytes());
    f
}

/// The sender and message of a sync frame; None when the frame is not UDP to
/// 224.0.0.81:8848.
pub fn parse_sync_frame(frame: &[u8]) -> Option<Result<(Ipv4Addr, SyncMessage), SyncError>> {
    let Ok(Parsed::Ipv4(meta)) = wire::parse(frame) else {
        return None;
    };
    let L4::Udp { dport, .. } = meta.l4 else {
        return None;
    };
    if meta.dst != SYNC_GROUP || dport != SYNC_PORT {
        return None;
    }
    let l4 = meta.l4_off();
    let end = ETH_HDR_LEN + meta.total_len;
    let udp_len = usize::from(be16(frame, l4 + 4));
    if udp_len < UDP_HDR_LEN || l4 + udp_len > end {
        return Some(Err(SyncError::BadUdp));
    }
    let payload = &frame[l4 + UDP_HDR_LEN..l4 + udp_len];
    Some(SyncMessage::decode(payload).map(|m| (meta.src, m)))
}
