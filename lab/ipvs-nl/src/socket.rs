//! A generic netlink socket speaking the "IPVS" family: requests out, acks and dumps in.

use crate::attr::{Attr, Attrs, FAMILY_NAME, FAMILY_VERSION};
use crate::Error;
use netlink_packet_core::{
    DecodeError, Emitable, NetlinkMessage, NetlinkPayload, ParseableParametrized, NLM_F_ACK,
    NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_generic::ctrl::nlas::GenlCtrlAttrs;
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use netlink_packet_generic::{GenlFamily, GenlHeader, GenlMessage};
use netlink_sys::{protocols::NETLINK_GENERIC, Socket, SocketAddr};

/// One IPVS generic netlink message: a command and its attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpvsMsg {
    /// `IPVS_CMD_*`.
    pub cmd: u8,
    /// Attributes to send.
    pub attrs: Vec<Attr>,
    /// Attributes received (empty for a message we send).
    pub received: Attrs,
}

impl IpvsMsg {
    /// A message to send.
    pub fn new(cmd: u8, attrs: Vec<Attr>) -> Self {
        IpvsMsg {
            cmd,
            attrs,
            received: Attrs::default(),
        }
    }
}

impl GenlFamily for IpvsMsg {
    fn family_name() -> &'static str {
        FAMILY_NAME
    }

    fn command(&self) -> u8 {
        self.cmd
    }

    fn version(&self) -> u8 {
        FAMILY_VERSION
    }
}

impl Emitable for IpvsMsg {
    fn buffer_len(&self) -> usize {
        self.attrs.as_slice().buffer_len()
    }

    fn emit(&self, buffer: &mut [u8]) {
        self.attrs.as_slice().emit(buffer)
    }
}

impl ParseableParametrized<[u8], GenlHeader> for IpvsMsg {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        Ok(IpvsMsg {
            cmd: header.cmd,
            attrs: Vec::new(),
            received: Attrs::parse(buf)?,
        })
    }
}

/// A netlink socket bound to the IPVS family of the calling thread's network namespace
/// (the family is per kernel, its table per namespace: `.netnsok = true` in ip_vs_ctl.c).
pub struct IpvsSocket {
    sock: Socket,
    family: u16,
    seq: u32,
}

impl IpvsSocket {
    /// Opens the socket and resolves the family; [`Error::NoIpvs`] where the kernel has none.
    pub fn open() -> Result<Self, Error> {
        let mut sock = Socket::new(NETLINK_GENERIC).map_err(|e| Error::Io("socket", e))?;
        sock.bind_auto().map_err(|e| Error::Io("bind", e))?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(|e| Error::Io("connect", e))?;
        let mut s = IpvsSocket {
            sock,
            family: 0,
            seq: 0,
        };
        s.family = s.resolve_family()?;
        Ok(s)
    }

    fn resolve_family(&mut self) -> Result<u16, Error> {
        let mut msg = GenlMessage::from_payload(GenlCtrl {
            cmd: GenlCtrlCmd::GetFamily,
            nlas: vec![GenlCtrlAttrs::FamilyName(FAMILY_NAME.to_owned())],
        });
        msg.finalize();
        let replies: Vec<GenlMessage<GenlCtrl>> = match self.exchange(msg, NLM_F_REQUEST) {
            Ok(r) => r,
            // ENOENT: the controller knows no such family (no ip_vs module).
            Err(Error::Kernel { errno, .. }) if errno == crate::ENOENT => {
                return Err(Error::NoIpvs)
            }
            Err(e) => return Err(e),
        };
        replies
            .iter()
            .flat_map(|m| m.payload.nlas.iter())
            .find_map(|a| match a {
                GenlCtrlAttrs::FamilyId(id) => Some(*id),
                _ => None,
            })
            .ok_or(Error::NoIpvs)
    }

    /// Sends `cmd` and waits for the kernel's ack.
    pub fn request(&mut self, msg: IpvsMsg) -> Result<(), Error> {
        let what = msg.cmd;
        self.exchange_ipvs(msg, NLM_F_REQUEST | NLM_F_ACK)
            .map(|_| ())
            .map_err(|e| e.in_command(what))
    }

    /// Sends a dump request and collects every reply.
    pub fn dump(&mut self, msg: IpvsMsg) -> Result<Vec<Attrs>, Error> {
        let what = msg.cmd;
        self.exchange_ipvs(msg, NLM_F_REQUEST | NLM_F_DUMP)
            .map(|r| r.into_iter().map(|m| m.received).collect())
            .map_err(|e| e.in_command(what))
    }

    /// Sends a get request answered by one message (info, config).
    pub fn get(&mut self, msg: IpvsMsg) -> Result<Attrs, Error> {
        let what = msg.cmd;
        self.exchange_ipvs(msg, NLM_F_REQUEST)
            .map_err(|e| e.in_command(what))?
            .into_iter()
            .next()
            .map(|m| m.received)
            .ok_or(Error::Protocol(format!("no answer to command {what}")))
    }

    fn exchange_ipvs(&mut self, msg: IpvsMsg, flags: u16) -> Result<Vec<IpvsMsg>, Error> {
        let mut g = GenlMessage::from_payload(msg);
        g.set_resolved_family_id(self.family);
        g.finalize();
        Ok(self
            .exchange(g, flags)?
            .into_iter()
            .map(|m| m.payload)
            .collect())
    }

    /// Sends one message and reads until the kernel is done: an ack, an error, the end of
    /// a dump, or (for a plain get) the single answer.
    fn exchange<F>(&mut self, msg: GenlMessage<F>, flags: u16) -> Result<Vec<GenlMessage<F>>, Error>
    where
        F: GenlFamily + Emitable + ParseableParametrized<[u8], GenlHeader> + std::fmt::Debug,
    {
        self.seq = self.seq.wrapping_add(1);
        let mut nl = NetlinkMessage::from(msg);
        nl.header.flags = flags;
        nl.header.sequence_number = self.seq;
        nl.finalize();
        let mut tx = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut tx);
        self.sock.send(&tx, 0).map_err(|e| Error::Io("send", e))?;

        let single = flags & (NLM_F_DUMP | NLM_F_ACK) == 0;
        let mut out = Vec::new();
        let mut rx = vec![0u8; 1 << 16];
        loop {
            let n = self
                .sock
                .recv(&mut &mut rx[..], 0)
                .map_err(|e| Error::Io("recv", e))?;
            let mut off = 0;
            while off < n {
                let m = NetlinkMessage::<GenlMessage<F>>::deserialize(&rx[off..n])
                    .map_err(|e| Error::Protocol(e.to_string()))?;
                let len = m.header.length as usize;
                if m.header.sequence_number != self.seq {
                    off += len.max(1);
                    continue;
                }
                match m.payload {
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(out),
                            Some(code) => Err(Error::Kernel {
                                errno: -code.get(),
                                command: None,
                            }),
                        };
                    }
                    NetlinkPayload::InnerMessage(inner) => {
                        out.push(inner);
                        if single {
                            return Ok(out);
                        }
                    }
                    _ => {}
                }
                if len == 0 {
                    break;
                }
                off += len;
            }
        }
    }
}
