//! A director pair, as keepalived runs one: VRRP decides which director owns the VIPs, and
//! the IPVS sync protocol carries the master's connections to the backup so they survive a
//! failover.
//!
//! While an instance is BACKUP its VIPs are on standby: the director neither answers ARP or
//! ping for them nor balances traffic to them (keepalived's backup has no VIP on its
//! interface, so its kernel would drop such packets); it still receives the master's sync
//! messages into its table. On becoming MASTER it announces the VIPs with gratuitous ARP so
//! the router's neighbour entry moves to this director's MAC.

use super::{Director, DirectorError, IfaceId, Tx};
use crate::ipvs::sync::{parse_sync_frame, sync_frame, SyncMessage, SyncRole};
use crate::vrrp::{
    advert_frame, garp_frame, parse_advert_frame, Vrrp, VrrpConfig, VrrpOutput, VrrpState,
    VrrpStatus,
};
use crate::wire::{self, Ipv4Meta, ETH_HDR_LEN};
use std::net::Ipv4Addr;
use std::time::Duration;

/// IPv4 + UDP headers around a sync message.
const SYNC_HEADERS: usize = 28;

/// How many VRRP transitions a director keeps for `lvslab status` and scenarios.
pub const EVENTS_KEPT: usize = 64;

/// One VRRP instance of a director pair, on one interface.
#[derive(Debug, Clone)]
pub struct HaInstance {
    /// The interface VRRP and sync messages use (the one facing the VIP's clients).
    pub iface: IfaceId,
    /// The instance: vrid, priority, interval, VIPs.
    pub vrrp: VrrpConfig,
    /// The IPVS sync id, when the pair syncs connections.
    pub sync_id: Option<u8>,
}

/// A running instance.
#[derive(Debug)]
pub(super) struct Ha {
    iface: IfaceId,
    vrrp: Vrrp,
    sync_id: Option<u8>,
}

/// Sync traffic counters of a director.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncCounters {
    /// Connection entries sent as MASTER.
    pub sent: u64,
    /// Sync messages sent.
    pub messages_sent: u64,
    /// Entries received and applied as BACKUP.
    pub applied: u64,
    /// Entries received but not applied (wrong sync id, no such service or server, not BACKUP).
    pub ignored: u64,
    /// Sync frames that could not be decoded.
    pub bad: u64,
}

/// What `lvslab status` shows of one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaStatus {
    /// The interface's name.
    pub iface: String,
    /// The virtual router id.
    pub vrid: u8,
    /// VRRP version, 2 or 3.
    pub version: u8,
    /// The VIPs it owns when MASTER.
    pub vips: Vec<Ipv4Addr>,
    /// State, own priority, the master it hears.
    pub vrrp: VrrpStatus,
    /// The sync id, when syncing.
    pub sync_id: Option<u8>,
}

/// A VRRP state change, as logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaEvent {
    /// When (the director's clock).
    pub at: Duration,
    /// The instance.
    pub vrid: u8,
    /// Old state.
    pub from: VrrpState,
    /// New state.
    pub to: VrrpState,
    /// Why, in VRRP's terms.
    pub reason: String,
}

impl Director {
    /// Join a director pair: start VRRP instance `inst` (as BACKUP, unless its priority is
    /// 255) and return what it sends at once.
    pub fn add_ha(&mut self, now: Duration, inst: HaInstance) -> Result<Tx, DirectorError> {
        let Some(i) = self.ifaces.get(inst.iface.0) else {
            return Err(DirectorError::HaSetup(format!(
                "VRRP instance {} names interface #{} that the director does not have",
                inst.vrrp.vrid, inst.iface.0
            )));
        };
        if !i.addrs.iter().any(|a| a.addr == inst.vrrp.src) {
            return Err(DirectorError::HaSetup(format!(
                "VRRP instance {}: {} is not an address of {}",
                inst.vrrp.vrid, inst.vrrp.src, i.name
            )));
        }
        let vrrp = Vrrp::new(inst.vrrp).map_err(|e| DirectorError::HaSetup(e.to_string()))?;
        self.ha.push(Ha {
            iface: inst.iface,
            vrrp,
            sync_id: inst.sync_id,
        });
        let idx = self.ha.len() - 1;
        let outs = self.ha[idx].vrrp.start(now);
        let mut tx = Tx::new();
        self.apply_vrrp(now, idx, outs, &mut tx);
        Ok(tx)
    }

    /// The pair's instances, in the order they were added.
    pub fn ha_status(&self) -> Vec<HaStatus> {
        self.ha
            .iter()
            .map(|h| {
                let cfg = h.vrrp.config();
                HaStatus {
                    iface: self.ifaces[h.iface.0].name.clone(),
                    vrid: cfg.vrid,
                    version: match cfg.version {
                        crate::vrrp::VrrpVersion::V2 => 2,
                        crate::vrrp::VrrpVersion::V3 => 3,
                    },
                    vips: cfg.vips.clone(),
                    vrrp: h.vrrp.status(),
                    sync_id: h.sync_id,
                }
            })
            .collect()
    }

    /// The newest VRRP state changes, oldest first (at most [`EVENTS_KEPT`]).
    pub fn ha_events(&self) -> impl Iterator<Item = &HaEvent> {
        self.ha_events.iter()
    }

    /// Connection sync counters.
    pub fn sync_counters(&self) -> SyncCounters {
        self.sync
    }

    /// `lvslab failover`: every instance that is MASTER gives up with a priority-0 advert,
    /// as keepalived does when it stops, and stays BACKUP while the new master is heard.
    pub fn failover(&mut self, now: Duration) -> Tx {
        let mut tx = Tx::new();
        for idx in 0..self.ha.len() {
            let outs = self.ha[idx].vrrp.release(now);
            self.apply_vrrp(now, idx, outs, &mut tx);
        }
        tx
    }

    /// Leave the pair: a MASTER sends priority 0 so the backup takes over at once.
    pub fn shutdown_ha(&mut self, now: Duration) -> Tx {
        let mut tx = Tx::new();
        for idx in 0..self.ha.len() {
            let outs = self.ha[idx].vrrp.shutdown(now);
            self.apply_vrrp(now, idx, outs, &mut tx);
        }
        tx
    }

    /// True when `ip` is a VIP of an instance that is not MASTER here.
    pub(super) fn standby_vip(&self, ip: Ipv4Addr) -> bool {
        self.ha
            .iter()
            .any(|h| h.vrrp.state() != VrrpState::Master && h.vrrp.config().vips.contains(&ip))
    }

    /// VRRP adverts and sync messages are the pair's own traffic; true when `frame` was one.
    pub(super) fn on_ha_frame(
        &mut self,
        now: Duration,
        iface: IfaceId,
        frame: &[u8],
        meta: &Ipv4Meta,
        tx: &mut Tx,
    ) -> bool {
        if self.ha.is_empty() || !meta.dst.is_multicast() {
            return false;
        }
        if let Some(parsed) = parse_advert_frame(frame) {
            match parsed {
                Ok((src, advert)) => {
                    for idx in 0..self.ha.len() {
                        if self.ha[idx].iface != iface {
                            continue;
                        }
                        let outs = self.ha[idx].vrrp.on_advert(now, src, &advert);
                        self.apply_vrrp(now, idx, outs, tx);
                    }
                }
                // The core does no logging: a bad advert is counted (lvslab stats shows it).
                Err(_) => self.stats.vrrp_bad += 1,
            }
            return true;
        }
        if let Some(parsed) = parse_sync_frame(frame) {
            match parsed {
                Ok((_, msg)) => self.on_sync(now, &msg),
                Err(_) => self.sync.bad += 1,
            }
            return true;
        }
        false
    }

    fn on_sync(&mut self, now: Duration, msg: &SyncMessage) {
        if !matches!(self.ipvs.sync_role(), SyncRole::Backup { .. }) {
            self.sync.ignored += msg.conns.len() as u64;
            return;
        }
        let r = self.ipvs.apply_sync(now, msg);
        self.sync.applied += r.applied as u64;
        self.sync.ignored += r.ignored as u64;
    }

    /// VRRP timers, and the master's pending connection updates.
    pub(super) fn poll_ha(&mut self, now: Duration, tx: &mut Tx) {
        for idx in 0..self.ha.len() {
            let outs = self.ha[idx].vrrp.poll(now);
            self.apply_vrrp(now, idx, outs, tx);
        }
        self.send_sync(now, tx);
    }

    /// The kernel's master thread flushes a partly filled buffer after 2 s
    /// (IPVS_SYNC_FLUSH_TIME); the userspace director sends what it has every timer round,
    /// so a failover right after a connection opened still finds it on the backup.
    fn send_sync(&mut self, now: Duration, tx: &mut Tx) {
        let SyncRole::Master { syncid } = self.ipvs.sync_role() else {
            return;
        };
        let Some(h) = self
            .ha
            .iter()
            .find(|h| h.sync_id.is_some() && h.vrrp.state() == VrrpState::Master)
        else {
            return;
        };
        let (iface, src) = (h.iface, h.vrrp.config().src);
        let conns = self.ipvs.take_sync(now);
        if conns.is_empty() {
            return;
        }
        let i = &self.ifaces[iface.0];
        let max = usize::from(i.mtu).saturating_sub(SYNC_HEADERS).max(64);
        let mac = i.mac;
        self.sync.sent += conns.len() as u64;
        for msg in SyncMessage::split(syncid, conns, max) {
            self.sync.messages_sent += 1;
            tx.push((iface, sync_frame(mac, src, &msg.encode())));
        }
    }

    fn apply_vrrp(&mut self, now: Duration, idx: usize, outs: Vec<VrrpOutput>, tx: &mut Tx) {
        let (iface, vrid) = (self.ha[idx].iface, self.ha[idx].vrrp.config().vrid);
        let src = self.ha[idx].vrrp.config().src;
        let mac = self.ifaces[iface.0].mac;
        let mut changed = false;
        for out in outs {
            match out {
                VrrpOutput::Advert(a) => {
                    self.stats.vrrp_adverts += 1;
                    tx.push((iface, advert_frame(mac, src, &a)));
                }
                VrrpOutput::Garp(vip) => {
                    self.stats.garps += 1;
                    tx.push((iface, garp_frame(mac, vip)));
                }
                VrrpOutput::Transition { from, to, reason } => {
                    changed = true;
                    if self.ha_events.len() == EVENTS_KEPT {
                        self.ha_events.pop_front();
                    }
                    self.ha_events.push_back(HaEvent {
                        at: now,
                        vrid,
                        from,
                        to,
                        reason,
                    });
                }
            }
        }
        if changed {
            self.update_sync_role();
        }
    }

    /// keepalived's lvs_sync_daemon follows the VRRP state: the MASTER runs the sending
    /// daemon, a BACKUP the receiving one.
    fn update_sync_role(&mut self) {
        let role = self
            .ha
            .iter()
            .filter_map(|h| h.sync_id.map(|id| (h.vrrp.state(), id)))
            .fold(SyncRole::Off, |role, (state, syncid)| match (role, state) {
                (_, VrrpState::Master) => SyncRole::Master { syncid },
                (SyncRole::Off, VrrpState::Backup) => SyncRole::Backup { syncid },
                (r, _) => r,
            });
        if role != self.ipvs.sync_role() {
            self.ipvs.set_sync(role);
        }
    }
}

/// The TCP RST the director's own stack would send for a segment to a VIP that IPVS did not
/// take (tcp_v4_send_reset): kernel IPVS passes a non-SYN without a connection to the local
/// stack, which holds the VIP and has no socket for it.
pub(super) fn rst_for(frame: &[u8], meta: &Ipv4Meta) -> Option<Vec<u8>> {
    let ip = frame.get(ETH_HDR_LEN..ETH_HDR_LEN + meta.total_len)?;
    wire::tcp_reset(ip)
}
