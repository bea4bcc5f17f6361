//! A small synchronous rtnetlink client: send a batch of requests, collect their acks.
use std::io;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use crate::error::{Error, Result};

/// Flags for a request that must create something new.
pub const CREATE: u16 = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
/// Flags for a request that changes something existing.
pub const CHANGE: u16 = NLM_F_REQUEST | NLM_F_ACK;

/// A route-netlink socket bound to the namespace of the thread that opened it.
pub struct Nl {
    sock: Socket,
    seq: u32,
    ns: String,
}

/// One request with a description for error messages.
pub struct Req {
    /// What it does, e.g. `add 192.168.1.201/24 to rs1:eth0`.
    pub what: String,
    /// The message.
    pub msg: RouteNetlinkMessage,
    /// NLM_F_* flags.
    pub flags: u16,
}

impl Nl {
    /// Open a socket in the current thread's namespace (`ns` only names it in errors).
    pub fn open(ns: &str) -> Result<Nl> {
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(|e| Error::Io {
            context: format!("netlink socket in {ns}"),
            error: e,
        })?;
        sock.bind_auto().map_err(|e| Error::Io {
            context: format!("bind netlink socket in {ns}"),
            error: e,
        })?;
        let _ = sock.set_ext_ack(true);
        Ok(Nl {
            sock,
            seq: 0,
            ns: ns.to_string(),
        })
    }

    /// Send all requests in one write and wait for every ack; the first failure is returned.
    pub fn batch(&mut self, reqs: Vec<Req>) -> Result<()> {
        if reqs.is_empty() {
            return Ok(());
        }
        let first = self.seq + 1;
        let mut buf = Vec::new();
        let mut whats = Vec::new();
        for r in reqs {
            self.seq += 1;
            let mut h = NetlinkHeader::default();
            h.flags = r.flags;
            h.sequence_number = self.seq;
            let mut m = NetlinkMessage::new(h, NetlinkPayload::InnerMessage(r.msg));
            m.finalize();
            let off = buf.len();
            buf.resize(off + m.buffer_len(), 0);
            m.serialize(&mut buf[off..]);
            whats.push(r.what);
        }
        self.sock
            .send_to(&buf, &SocketAddr::new(0, 0), 0)
            .map_err(|e| Error::Io {
                context: format!("netlink send in {}", self.ns),
                error: e,
            })?;
        let mut pending = whats.len();
        let mut first_err: Option<Error> = None;
        let mut rbuf = vec![0u8; 1 << 16];
        while pending > 0 {
            for msg in self.recv_messages(&mut rbuf)? {
                let seq = msg.header.sequence_number;
                if let NetlinkPayload::Error(e) = msg.payload {
                    if seq >= first && seq < first + whats.len() as u32 {
                        pending -= 1;
                        if let Some(code) = e.code {
                            if first_err.is_none() {
                                let what = &whats[(seq - first) as usize];
                                first_err = Some(Error::Io {
                                    context: format!("{what} (in {})", self.ns),
                                    error: io::Error::from_raw_os_error(-code.get()),
                                });
                            }
                        }
                    }
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Receive one datagram and parse every netlink message in it.
    fn recv_messages(
        &mut self,
        rbuf: &mut [u8],
    ) -> Result<Vec<NetlinkMessage<RouteNetlinkMessage>>> {
        let n = self
            .sock
            .recv(&mut &mut rbuf[..], 0)
            .map_err(|e| Error::Io {
                context: format!("netlink recv in {}", self.ns),
                error: e,
            })?;
        let mut msgs = Vec::new();
        let mut off = 0;
        while off < n {
            let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rbuf[off..n])
                .map_err(|e| Error::Msg(format!("bad netlink reply in {}: {e}", self.ns)))?;
            let len = msg.header.length as usize;
            msgs.push(msg);
            if len == 0 {
                break;
            }
            // Messages in a datagram are 4-byte aligned (NLMSG_ALIGN).
            off += (len + 3) & !3;
        }
        Ok(msgs)
    }

    /// Dump (e.g. all links or addresses) and return the parsed replies.
    pub fn dump(&mut self, msg: RouteNetlinkMessage) -> Result<Vec<RouteNetlinkMessage>> {
        self.seq += 1;
        let mut h = NetlinkHeader::default();
        h.flags = NLM_F_REQUEST | NLM_F_DUMP;
        h.sequence_number = self.seq;
        let mut m = NetlinkMessage::new(h, NetlinkPayload::InnerMessage(msg));
        m.finalize();
        let mut buf = vec![0u8; m.buffer_len()];
        m.serialize(&mut buf);
        let kernel = SocketAddr::new(0, 0);
        self.sock.send_to(&buf, &kernel, 0).map_err(|e| Error::Io {
            context: format!("netlink dump in {}", self.ns),
            error: e,
        })?;
        let mut out = Vec::new();
        let mut rbuf = vec![0u8; 1 << 16];
        loop {
            for msg in self.recv_messages(&mut rbuf)? {
                match msg.payload {
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::Error(e) if e.code.is_some() => {
                        return Err(Error::Io {
                            context: format!("netlink dump in {}", self.ns),
                            error: io::Error::from_raw_os_error(-e.code.map_or(0, |c| c.get())),
                        })
                    }
                    NetlinkPayload::InnerMessage(m) if msg.header.sequence_number == self.seq => {
                        out.push(m)
                    }
                    _ => {}
                }
            }
        }
    }
}
