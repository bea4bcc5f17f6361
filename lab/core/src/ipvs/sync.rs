//! Connection sync between a MASTER and a BACKUP balancer, as net/netfilter/ipvs/ip_vs_sync.c
//! does it: the master queues an entry when ip_vs_sync_conn_needed says so (called from
//! ip_vs_in for every packet client -> service), the backup applies entries as
//! ip_vs_proc_conn does, so established flows survive a failover. The message format is in
//! `syncwire`; sending and receiving frames is the caller's business.
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::{ms, Ipvs};
use crate::conn::{Conn, F_INACTIVE, F_NOOUTPUT, F_SYNC, F_TEMPLATE};
use crate::tcp::ConnState;
use crate::types::{Family, ForwardMethod, Protocol, ServiceKey, Vip};

pub use super::syncwire::*;

/// sysctl sync_threshold's default first value: a flow is synced at its 3rd packet...
const SYNC_THRESHOLD: u32 = 3;
/// ...and every sync_period (50) packets after (sysctl sync_threshold's second value).
const SYNC_PERIOD: u32 = 50;
/// Queued entries beyond this are dropped, as sb_queue_tail drops buffers past
/// sync_qlen_max when the sending thread falls behind.
const SYNC_QUEUE_MAX: usize = 1 << 16;
/// A template's timeout when a message carries none (ip_vs_proc_conn: 3*60*HZ).
const TEMPLATE_DEFAULT_TIMEOUT: Duration = Duration::from_secs(180);

/// What this balancer does about connection sync (`ipvsadm --start-daemon`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncRole {
    /// No sync.
    Off,
    /// Queue entries for the backups.
    Master {
        /// The id written into every message.
        syncid: u8,
    },
    /// Apply entries from a master.
    Backup {
        /// Only messages with this id are applied (0: any).
        syncid: u8,
    },
}

/// What `apply_sync` did with a message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncApplied {
    /// Entries created or updated.
    pub applied: u32,
    /// Entries left alone.
    pub ignored: u32,
    /// Why, one reason per ignored entry (one for a whole message ignored at once).
    pub reasons: Vec<SyncIgnored>,
}

/// Why a sync entry (or message) was not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncIgnored {
    /// This balancer is not a backup.
    NotBackup,
    /// The message's sync id is not ours (the kernel's "Ignoring syncid").
    WrongSyncId {
        /// The message's id.
        got: u8,
        /// Ours.
        ours: u8,
    },
    /// No virtual service matches the entry.
    NoService {
        /// Protocol.
        protocol: Protocol,
        /// Virtual address.
        vip: SocketAddr,
        /// Firewall mark.
        fwmark: u32,
    },
    /// The service has no such real server (the kernel would keep an unbound conn; a conn
    /// here always has a server).
    NoDest {
        /// Virtual address.
        vip: SocketAddr,
        /// The real server asked for.
        dest: SocketAddr,
    },
    /// The expiry of a conn that already moved to another server.
    Replaced {
        /// Client address.
        client: SocketAddr,
    },
    /// The conn table is full.
    TableFull,
}

/// Per-entry sync bookkeeping: cp->in_pkts and cp->old_state.
#[derive(Debug, Clone, Copy)]
struct SyncMark {
    in_pkts: u32,
    old_state: ConnState,
}

impl Default for SyncMark {
    fn default() -> Self {
        SyncMark {
            in_pkts: 0,
            old_state: ConnState::None,
        }
    }
}

/// The sync state of a balancer; absent while sync is off so packets pay one check.
#[derive(Debug)]
pub(super) struct SyncState {
    role: SyncRole,
    /// By conn id; kept while the role changes so a promoted backup goes on counting.
    marks: HashMap<u32, SyncMark>,
    queue: Vec<SyncConn>,
}

impl SyncState {
    /// Drop the bookkeeping of a removed entry (its id will be reused).
    pub(super) fn forget(&mut self, id: u32) {
        self.marks.remove(&id);
    }
}

fn fwd_flags(m: ForwardMethod) -> u32 {
    match m {
        ForwardMethod::Nat => CONN_F_MASQ,
        ForwardMethod::Tun => CONN_F_TUNNEL,
        ForwardMethod::Dr => CONN_F_DROUTE,
    }
}

/// ip_vs_sync_conn_needed with sync_refresh_period 0, sync_persist_mode 0 and
/// sync_threshold "3 50".
fn conn_needed(c: &Conn, mark: &mut SyncMark, pkts: u32) -> bool {
    let template = c.flags & F_TEMPLATE != 0;
    if !template && c.protocol == Protocol::Tcp {
        use ConnState::*;
        if !matches!(
            c.state,
            Established | FinWait | Close | CloseWait | TimeWait
        ) {
            return false;
        }
        let force = c.state != mark.old_state;
        if force && c.state != Established {
            mark.old_state = c.state;
            return true;
        }
    }
    // A template goes with every packet of its conns; a flow at pkts 3, 53, 103, ...
    if !template && pkts % SYNC_PERIOD != SYNC_THRESHOLD {
        return false;
    }
    mark.old_state = c.state;
    true
}

impl Ipvs {
    /// Start or stop connection sync (like `ipvsadm --start-daemon` / `--stop-daemon`).
    pub fn set_sync(&mut self, role: SyncRole) {
        match (role, self.sync.as_deref_mut()) {
            (SyncRole::Off, _) => self.sync = None,
            (_, Some(s)) => s.role = role,
            (_, None) => {
                self.sync = Some(Box::new(SyncState {
                    role,
                    marks: HashMap::new(),
                    queue: Vec::new(),
                }))
            }
        }
    }

    /// The current sync role.
    pub fn sync_role(&self) -> SyncRole {
        self.sync.as_ref().map_or(SyncRole::Off, |s| s.role)
    }

    /// Master: the entries queued since the last call, oldest first (the kernel's sync
    /// buffers); empty otherwise. Feed them to [`SyncMessage::split`].
    pub fn take_sync(&mut self, now: Duration) -> Vec<SyncConn> {
        self.expire(now);
        match self.sync.as_deref_mut() {
            Some(s) if matches!(s.role, SyncRole::Master { .. }) => std::mem::take(&mut s.queue),
            _ => Vec::new(),
        }
    }

    /// The sync entry of a conn or template as ip_vs_sync_conn fills it.
    fn sync_entry(&self, c: &Conn) -> Option<SyncConn> {
        let d = self.dest(c.dest)?;
        let template = c.flags & F_TEMPLATE != 0;
        let mut flags = fwd_flags(d.cfg.method);
        if template {
            // A template carries the dest's conn_flags it was bound with (ip_vs_bind_dest).
            flags |= CONN_F_TEMPLATE | CONN_F_INACTIVE;
            if d.cfg.method != ForwardMethod::Nat {
                flags |= CONN_F_NOOUTPUT;
            }
        } else {
            if c.flags & F_INACTIVE != 0 {
                flags |= CONN_F_INACTIVE;
            }
            if c.flags & F_NOOUTPUT != 0 {
                flags |= CONN_F_NOOUTPUT;
            }
        }
        if c.flags & F_SYNC != 0 {
            flags |= CONN_F_SYNC;
        }
        let fwmark = match self.services.get(c.svc as usize) {
            Some(Some(s)) => match s.cfg.key {
                ServiceKey::FwMark { mark, .. } => mark,
                ServiceKey::Addr { .. } => 0,
            },
            _ => 0,
        };
        Some(SyncConn {
            protocol: c.protocol,
            client: c.client(),
            vip: c.vip(),
            dest: SocketAddr::new(d.cfg.addr.ip(), c.dport),
            fwmark,
            state: c.state,
            flags,
            timeout: Duration::from_millis(u64::from(c.timeout_ms)),
        })
    }

    /// ip_vs_in's tail on a master: count the packet and ip_vs_sync_conn the conn and its
    /// controlling template. `one_packet`: the conn lives for this datagram only.
    pub(super) fn sync_conn_in(&mut self, id: u32, one_packet: bool) {
        let master = self
            .sync
            .as_ref()
            .is_some_and(|s| matches!(s.role, SyncRole::Master { .. }));
        if !master {
            return;
        }
        let mut cur = Some(id);
        let mut pkts = SYNC_THRESHOLD;
        let mut first = true;
        while let Some(cid) = cur {
            let (needed, control) = {
                let (Some(c), Some(s)) = (self.conns.get(cid), self.sync.as_deref_mut()) else {
                    return;
                };
                let mark = s.marks.entry(cid).or_default();
                let template = c.flags & F_TEMPLATE != 0;
                // ip_vs_in counts the conn's packets, ip_vs_sync_conn its template's; a
                // one-packet conn is not synced itself (goto control).
                if template || (first && !one_packet) {
                    mark.in_pkts = mark.in_pkts.wrapping_add(1);
                    pkts = mark.in_pkts;
                }
                let skip = first && one_packet;
                (!skip && conn_needed(c, mark, pkts), c.control())
            };
            if needed {
                let entry = self.conns.get(cid).and_then(|c| self.sync_entry(c));
                if let (Some(e), Some(s)) = (entry, self.sync.as_deref_mut()) {
                    if s.queue.len() < SYNC_QUEUE_MAX {
                        s.queue.push(e);
                    }
                }
            }
            first = false;
            pkts = SYNC_THRESHOLD;
            cur = control;
        }
    }

    /// Backup: apply a master's message (ip_vs_process_message, ip_vs_proc_conn).
    pub fn apply_sync(&mut self, now: Duration, msg: &SyncMessage) -> SyncApplied {
        self.expire(now);
        let mut out = SyncApplied::default();
        let whole = |out: &mut SyncApplied, why| {
            out.ignored = msg.conns.len() as u32;
            out.reasons.push(why);
        };
        match self.sync_role() {
            SyncRole::Backup { syncid } if syncid != 0 && syncid != msg.syncid => {
                whole(
                    &mut out,
                    SyncIgnored::WrongSyncId {
                        got: msg.syncid,
                        ours: syncid,
                    },
                );
                return out;
            }
            SyncRole::Backup { .. } => {}
            _ => {
                whole(&mut out, SyncIgnored::NotBackup);
                return out;
            }
        }
        for c in &msg.conns {
            match self.proc_conn(now, c) {
                Ok(()) => out.applied += 1,
                Err(why) => {
                    out.ignored += 1;
                    out.reasons.push(why);
                }
            }
        }
        out
    }

    /// ip_vs_service_find for a sync entry: by mark in the entry's family, then address and
    /// port, then port 0.
    fn sync_service(&self, c: &SyncConn) -> Option<u32> {
        if c.fwmark != 0 {
            let key = ServiceKey::FwMark {
                mark: c.fwmark,
                family: Family::of(c.vip.ip()),
            };
            if let Some(&id) = self.by_key.get(&key) {
                return Some(id);
            }
        }
        let key = |port| ServiceKey::Addr {
            protocol: c.protocol,
            vip: Vip(c.vip.ip()),
            port,
        };
        self.by_key
            .get(&key(c.vip.port()))
            .or_else(|| self.by_key.get(&key(0)))
            .copied()
    }

    /// ip_vs_find_dest: the dest by address and port, where a fwmark service's DR/TUN
    /// dests may be listed with port 0.
    fn sync_dest(&self, sid: u32, c: &SyncConn) -> Option<u32> {
        let dport = c.dest.port();
        let port = if c.fwmark != 0 && c.flags & CONN_F_FWD_MASK != CONN_F_MASQ {
            0
        } else {
            dport
        };
        let find = |p: u16| {
            self.svc(sid).list.iter().copied().find(|&id| {
                self.dest(id)
                    .is_some_and(|d| d.cfg.addr == SocketAddr::new(c.dest.ip(), p))
            })
        };
        find(port).or_else(|| find(port ^ dport))
    }

    /// ip_vs_proc_conn for one entry.
    fn proc_conn(&mut self, now: Duration, c: &SyncConn) -> Result<(), SyncIgnored> {
        let flags = (c.flags & CONN_F_BACKUP_MASK) | CONN_F_SYNC;
        let template = flags & CONN_F_TEMPLATE != 0;
        let sid = self.sync_service(c);
        let existing = if template {
            // ip_vs_ct_in_get: templates live in their service, keyed by masked client.
            sid.and_then(|s| self.svc(s).templates.get(&c.client.ip()).copied())
        } else {
            let found = self.conns.find_in(c.protocol, c.client, c.vip);
            match found.and_then(|id| self.conns.get(id).map(|x| (id, x.dest, x.dport))) {
                Some((id, did, dport)) => {
                    let same = dport == c.dest.port()
                        && self
                            .dest(did)
                            .is_some_and(|d| d.cfg.addr.ip() == c.dest.ip());
                    if same {
                        Some(id)
                    } else if flags & CONN_F_INACTIVE == 0 {
                        // The flow moved to another server: the old entry goes now.
                        self.remove_conn(now, id);
                        None
                    } else {
                        return Err(SyncIgnored::Replaced { client: c.client });
                    }
                }
                None => None,
            }
        };
        let timeout = if c.timeout.is_zero() {
            if template {
                TEMPLATE_DEFAULT_TIMEOUT
            } else {
                self.timeout_for(c.state)
            }
        } else {
            c.timeout
        };
        let timeout_ms = u32::try_from(ms(timeout)).unwrap_or(u32::MAX);
        let id = match existing {
            Some(id) => {
                self.sync_update(id, flags, template);
                id
            }
            None => {
                let sid = sid.ok_or(SyncIgnored::NoService {
                    protocol: c.protocol,
                    vip: c.vip,
                    fwmark: c.fwmark,
                })?;
                let did = self.sync_dest(sid, c).ok_or(SyncIgnored::NoDest {
                    vip: c.vip,
                    dest: c.dest,
                })?;
                self.sync_new(sid, did, c, flags)?
            }
        };
        if let Some(e) = self.conns.get_mut(id) {
            e.state = c.state;
            e.timeout_ms = timeout_ms;
        }
        self.conns.arm(id, ms(now));
        if let Some(s) = self.sync.as_deref_mut() {
            s.marks.insert(
                id,
                SyncMark {
                    in_pkts: SYNC_THRESHOLD,
                    old_state: c.state,
                },
            );
        }
        Ok(())
    }

    /// An existing entry: move it between active and inactive as the master says.
    fn sync_update(&mut self, id: u32, flags: u32, template: bool) {
        let Some(e) = self.conns.get(id) else {
            return;
        };
        let (was_inactive, did) = (e.flags & F_INACTIVE != 0, e.dest);
        let inactive = flags & CONN_F_INACTIVE != 0;
        if template || was_inactive == inactive {
            return;
        }
        if let Some(mut d) = self.dest_mut(did) {
            if inactive {
                d.active = d.active.saturating_sub(1);
                d.inactive += 1;
            } else {
                d.inactive = d.inactive.saturating_sub(1);
                d.active += 1;
            }
        }
        if let Some(e) = self.conns.get_mut(id) {
            if inactive {
                e.flags |= F_INACTIVE;
            } else {
                e.flags &= !F_INACTIVE;
            }
        }
    }

    /// ip_vs_conn_new + ip_vs_bind_dest for a synced entry: a flow keeps the master's
    /// activity (counted active when ESTABLISHED), a template counts as persistent.
    fn sync_new(
        &mut self,
        sid: u32,
        did: u32,
        c: &SyncConn,
        flags: u32,
    ) -> Result<u32, SyncIgnored> {
        if self.conns.is_full() {
            self.stats.dropped_table_full += 1;
            return Err(SyncIgnored::TableFull);
        }
        let method = self.dest(did).map_or(ForwardMethod::Nat, |d| d.cfg.method);
        let mut e = Conn::new_flow(c.protocol, c.client, c.vip, c.dest.port(), sid, did);
        e.flags = F_SYNC;
        let template = flags & CONN_F_TEMPLATE != 0;
        if template {
            e.flags |= F_TEMPLATE;
        } else {
            if flags & CONN_F_INACTIVE != 0 {
                e.flags |= F_INACTIVE;
            }
            if flags & CONN_F_NOOUTPUT != 0 || method != ForwardMethod::Nat {
                e.flags |= F_NOOUTPUT;
            }
        }
        let id = self.conns.insert(e);
        if template {
            if let Some(mut d) = self.dest_mut(did) {
                d.persistent += 1;
            }
            let client: IpAddr = c.client.ip();
            self.svc_mut(sid).templates.insert(client, id);
            return Ok(id);
        }
        self.conns.hash_in(id);
        if method == ForwardMethod::Nat {
            let dests = &self.dests;
            self.conns
                .hash_out(id, |d| dests.get(d).map(|x| x.cfg.addr.ip()));
        }
        if let Some(mut d) = self.dest_mut(did) {
            if flags & CONN_F_INACTIVE != 0 {
                d.inactive += 1;
            } else {
                d.active += 1;
            }
            if d.cfg.u_threshold != 0 && d.total_conns() >= d.cfg.u_threshold {
                d.overloaded = true;
            }
        }
        Ok(id)
    }
}
