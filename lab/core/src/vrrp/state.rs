//! The VRRP state machine of RFC 5798 6.4, with keepalived's `vrrp_state_backup`,
//! `vrrp_state_master_rx` and `vrrp_state_become_master` where they add to it.

use super::{Advert, VrrpConfig, VrrpError, VrrpState, VrrpVersion, PRIORITY_OWNER};
use std::net::Ipv4Addr;
use std::time::Duration;

/// Gratuitous ARPs per VIP sent on becoming master: keepalived's `garp_master_repeat`
/// default (`VRRP_GARP_REP`).
pub const GARP_MASTER_REPEAT: usize = 5;
/// keepalived's `garp_master_delay` default (`VRRP_GARP_DELAY`): a second burst of
/// [`GARP_MASTER_REPEAT`] follows this long after becoming master.
pub const GARP_MASTER_DELAY: Duration = Duration::from_secs(5);

/// Something the caller must do now, in order; a batch's `Transition` comes first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VrrpOutput {
    /// Send this advert (see [`super::advert_frame`]).
    Advert(Advert),
    /// Send a gratuitous ARP for this VIP (see [`super::garp_frame`]).
    Garp(Ipv4Addr),
    /// The state changed: add or remove the VIPs, log the reason.
    Transition {
        /// Old state.
        from: VrrpState,
        /// New state.
        to: VrrpState,
        /// Why, in words for a log line.
        reason: String,
    },
}

/// A snapshot of an instance, for `lvslab status` and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrrpStatus {
    /// Current state.
    pub state: VrrpState,
    /// Our priority.
    pub priority: u8,
    /// Who we believe is master (ourselves when Master), if anyone.
    pub master: Option<Ipv4Addr>,
    /// That master's advertised priority.
    pub master_priority: Option<u8>,
    /// State changes since creation.
    pub transitions: u64,
    /// The master's advert interval the down timer runs on (v3 learns it from the master).
    pub master_adver_int: Duration,
    /// Adverts for our vrid ignored for a version or (v2) interval mismatch.
    pub mismatched: u64,
}

/// What the running Master_Down_Timer stands for: the reason a takeover will give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Takeover {
    /// No advert heard for Master_Down_Interval.
    Silence,
    /// The master sent priority 0, so only Skew_Time is waited.
    MasterLeft(Ipv4Addr),
    /// The master has a lower priority and we preempt it once the timer runs out.
    Preempt(Ipv4Addr, u8),
}

/// One VRRP virtual router instance.
#[derive(Debug, Clone)]
pub struct Vrrp {
    cfg: VrrpConfig,
    state: VrrpState,
    /// RFC 5798's Master_Adver_Interval: our own when Master, the master's (v3) when Backup.
    master_adver_int: Duration,
    /// Master: when the next advert is due. Backup: when Master_Down_Timer fires.
    timer: Option<Duration>,
    /// Master: when keepalived's delayed gratuitous ARP burst is due.
    garp_due: Option<Duration>,
    master: Option<(Ipv4Addr, u8)>,
    takeover: Takeover,
    /// After `release()`: behave as nopreempt until we are master again, so the router we
    /// handed over to keeps the VIPs.
    released: bool,
    transitions: u64,
    mismatched: u64,
}

fn validate(cfg: &VrrpConfig) -> Result<(), VrrpError> {
    if cfg.vrid == 0 {
        return Err(VrrpError::ZeroVrid);
    }
    if cfg.priority == 0 {
        return Err(VrrpError::ZeroPriority);
    }
    let bad = |why| VrrpError::BadInterval {
        version: cfg.version,
        got: cfg.advert_int,
        why,
    };
    let int = cfg.advert_int;
    match cfg.version {
        VrrpVersion::V2 => {
            if int.subsec_nanos() != 0 {
                return Err(bad("VRRPv2 carries whole seconds"));
            }
            if !(1..=255).contains(&int.as_secs()) {
                return Err(bad("VRRPv2 allows 1 to 255 seconds"));
            }
        }
        VrrpVersion::V3 => {
            if !int.as_nanos().is_multiple_of(10_000_000) {
                return Err(bad("VRRPv3 carries whole centiseconds"));
            }
            if int < Duration::from_millis(10) || int > Duration::from_millis(40_950) {
                return Err(bad("VRRPv3 allows 10 ms to 40.95 s"));
            }
        }
    }
    if cfg.vips.is_empty() {
        return Err(VrrpError::NoVips);
    }
    if cfg.vips.len() > 255 {
        return Err(VrrpError::TooManyVips(cfg.vips.len()));
    }
    Ok(())
}

impl Vrrp {
    /// A validated instance in the Init state; call [`Vrrp::start`] to run it.
    pub fn new(cfg: VrrpConfig) -> Result<Self, VrrpError> {
        validate(&cfg)?;
        Ok(Vrrp {
            master_adver_int: cfg.advert_int,
            cfg,
            state: VrrpState::Init,
            timer: None,
            garp_due: None,
            master: None,
            takeover: Takeover::Silence,
            released: false,
            transitions: 0,
            mismatched: 0,
        })
    }

    /// Its state now.
    pub fn state(&self) -> VrrpState {
        self.state
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &VrrpConfig {
        &self.cfg
    }

    /// RFC 5798 6.4.1 Startup: the address owner becomes Master at once, anyone else
    /// Backup waiting Master_Down_Interval. No-op unless in Init.
    pub fn start(&mut self, now: Duration) -> Vec<VrrpOutput> {
        if self.state != VrrpState::Init {
            return Vec::new();
        }
        if self.cfg.priority == PRIORITY_OWNER {
            return self.become_master(now, "address owner (priority 255)".into());
        }
        self.master_adver_int = self.cfg.advert_int;
        self.master = None;
        self.takeover = Takeover::Silence;
        self.timer = Some(now + self.master_down_interval());
        vec![self.enter(VrrpState::Backup, "start".into())]
    }

    /// A received advert from `src` (already checked by [`Advert::decode`]): RFC 5798 6.4.2
    /// in Backup, 6.4.3 in Master. Other vrids, the other version and our own adverts are
    /// ignored, and so are v2 adverts with another interval (RFC 3768 7.1, keepalived's
    /// `vrrp_check_packet` drops them too).
    pub fn on_advert(&mut self, now: Duration, src: Ipv4Addr, adv: &Advert) -> Vec<VrrpOutput> {
        if adv.vrid != self.cfg.vrid || src == self.cfg.src {
            return Vec::new();
        }
        let v2_int_mismatch =
            adv.version == VrrpVersion::V2 && adv.advert_int != self.cfg.advert_int;
        if adv.version != self.cfg.version || v2_int_mismatch {
            self.mismatched += 1;
            return Vec::new();
        }
        match self.state {
            VrrpState::Init => Vec::new(),
            VrrpState::Backup => {
                self.backup_rx(now, src, adv);
                Vec::new()
            }
            VrrpState::Master => self.master_rx(now, src, adv),
        }
    }

    /// Fire due timers: a Master's periodic advert (and keepalived's delayed GARP burst),
    /// a Backup's Master_Down_Timer.
    pub fn poll(&mut self, now: Duration) -> Vec<VrrpOutput> {
        let mut out = Vec::new();
        match self.state {
            VrrpState::Init => {}
            VrrpState::Backup => {
                if self.timer.is_some_and(|t| t <= now) {
                    let reason = self.takeover_reason();
                    out = self.become_master(now, reason);
                }
            }
            VrrpState::Master => {
                if let Some(t) = self.timer.filter(|&t| t <= now) {
                    out.push(VrrpOutput::Advert(self.own_advert(self.cfg.priority)));
                    // Keep the cadence, but after a stall send one advert, not a backlog.
                    let next = t + self.cfg.advert_int;
                    self.timer = Some(if next <= now {
                        now + self.cfg.advert_int
                    } else {
                        next
                    });
                }
                if self.garp_due.is_some_and(|t| t <= now) {
                    self.garp_due = None;
                    out.extend(self.garp_burst());
                }
            }
        }
        out
    }

    /// When [`Vrrp::poll`] next has something to do; `None` in Init.
    pub fn next_due(&self) -> Option<Duration> {
        match (self.timer, self.garp_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Hand mastership over (`lvslab failover`): a Master sends one priority-0 advert, as
    /// keepalived does when it stops, and becomes Backup; it then accepts adverts from
    /// lower-priority masters instead of preempting them, and takes over again only once
    /// no master is heard for Master_Down_Interval. No-op unless Master.
    pub fn release(&mut self, now: Duration) -> Vec<VrrpOutput> {
        if self.state != VrrpState::Master {
            return Vec::new();
        }
        let out = vec![
            self.enter(VrrpState::Backup, "released (sent priority 0)".into()),
            VrrpOutput::Advert(self.own_advert(0)),
        ];
        self.released = true;
        self.garp_due = None;
        self.master = None;
        // As keepalived's vrrp_state_leave_master: our own interval, a full down timer.
        self.master_adver_int = self.cfg.advert_int;
        self.takeover = Takeover::Silence;
        self.timer = Some(now + self.master_down_interval());
        out
    }

    /// RFC 5798 Shutdown event: a Master sends a priority-0 advert; any state goes to Init.
    pub fn shutdown(&mut self, _now: Duration) -> Vec<VrrpOutput> {
        let was = self.state;
        if was == VrrpState::Init {
            return Vec::new();
        }
        let mut out = vec![self.enter(VrrpState::Init, "shutdown".into())];
        if was == VrrpState::Master {
            out.push(VrrpOutput::Advert(self.own_advert(0)));
        }
        self.timer = None;
        self.garp_due = None;
        self.master = None;
        self.released = false;
        out
    }

    /// Where the instance stands.
    pub fn status(&self) -> VrrpStatus {
        VrrpStatus {
            state: self.state,
            priority: self.cfg.priority,
            master: self.master.map(|m| m.0),
            master_priority: self.master.map(|m| m.1),
            transitions: self.transitions,
            master_adver_int: self.master_adver_int,
            mismatched: self.mismatched,
        }
    }

    /// RFC 5798 Skew_Time: v3 scales Master_Adver_Interval, v2 (RFC 3768) always one
    /// second, as keepalived's `VRRP_TIMER_SKEW`.
    pub fn skew_time(&self) -> Duration {
        let base = match self.cfg.version {
            VrrpVersion::V2 => Duration::from_secs(1),
            VrrpVersion::V3 => self.master_adver_int,
        };
        let n = base.as_nanos() * (256 - u128::from(self.cfg.priority)) / 256;
        Duration::from_nanos(u64::try_from(n).unwrap_or(u64::MAX))
    }

    /// RFC 5798 Master_Down_Interval: 3 × Master_Adver_Interval + Skew_Time.
    pub fn master_down_interval(&self) -> Duration {
        3 * self.master_adver_int + self.skew_time()
    }

    fn own_advert(&self, priority: u8) -> Advert {
        Advert {
            version: self.cfg.version,
            vrid: self.cfg.vrid,
            priority,
            advert_int: self.cfg.advert_int,
            addrs: self.cfg.vips.clone(),
        }
    }

    fn enter(&mut self, to: VrrpState, reason: String) -> VrrpOutput {
        let from = self.state;
        self.state = to;
        self.transitions += 1;
        VrrpOutput::Transition { from, to, reason }
    }

    /// keepalived's `vrrp_send_link_update`: `garp_rep` rounds over all VIPs.
    fn garp_burst(&self) -> impl Iterator<Item = VrrpOutput> + '_ {
        (0..GARP_MASTER_REPEAT).flat_map(|_| self.cfg.vips.iter().map(|&v| VrrpOutput::Garp(v)))
    }

    /// keepalived's `vrrp_state_master_tx` then `vrrp_state_become_master`: the advert goes
    /// first so the old master drops the VIPs before our gratuitous ARPs arrive.
    fn become_master(&mut self, now: Duration, reason: String) -> Vec<VrrpOutput> {
        let mut out = vec![self.enter(VrrpState::Master, reason)];
        self.master_adver_int = self.cfg.advert_int;
        self.master = Some((self.cfg.src, self.cfg.priority));
        self.released = false;
        self.takeover = Takeover::Silence;
        self.timer = Some(now + self.cfg.advert_int);
        self.garp_due = Some(now + GARP_MASTER_DELAY);
        out.push(VrrpOutput::Advert(self.own_advert(self.cfg.priority)));
        out.extend(self.garp_burst());
        out
    }

    fn takeover_reason(&self) -> String {
        match self.takeover {
            Takeover::Silence => format!(
                "master down interval {:.2} s passed",
                self.master_down_interval().as_secs_f64()
            ),
            Takeover::MasterLeft(m) => format!("priority 0 from master {m}"),
            Takeover::Preempt(m, p) => format!("preempted master {m} of lower priority {p}"),
        }
    }

    /// RFC 5798 6.4.2 / keepalived's `vrrp_state_backup`.
    fn backup_rx(&mut self, now: Duration, src: Ipv4Addr, adv: &Advert) {
        if adv.priority == 0 {
            self.takeover = Takeover::MasterLeft(src);
            self.master = None;
            self.timer = Some(now + self.skew_time());
        } else if !self.cfg.preempt || self.released || adv.priority >= self.cfg.priority {
            if self.cfg.version == VrrpVersion::V3 {
                self.master_adver_int = adv.advert_int;
            }
            self.master = Some((src, adv.priority));
            self.takeover = Takeover::Silence;
            self.timer = Some(now + self.master_down_interval());
        } else {
            // Discarded: the down timer keeps running so we preempt when it fires.
            // keepalived still records the master's address, and so do we.
            self.master = Some((src, adv.priority));
            self.takeover = Takeover::Preempt(src, adv.priority);
        }
    }

    /// RFC 5798 6.4.3 / keepalived's `vrrp_state_master_rx`.
    fn master_rx(&mut self, now: Duration, src: Ipv4Addr, adv: &Advert) -> Vec<VrrpOutput> {
        if adv.priority == 0 {
            self.timer = Some(now + self.cfg.advert_int);
            return vec![VrrpOutput::Advert(self.own_advert(self.cfg.priority))];
        }
        let ours = self.cfg.priority;
        let higher_addr = u32::from(src) > u32::from(self.cfg.src);
        if adv.priority > ours || (adv.priority == ours && higher_addr) {
            let reason = if adv.priority > ours {
                format!("higher priority {} from {src}", adv.priority)
            } else {
                format!("same priority {} from higher address {src}", adv.priority)
            };
            let out = vec![self.enter(VrrpState::Backup, reason)];
            if self.cfg.version == VrrpVersion::V3 {
                self.master_adver_int = adv.advert_int;
            }
            self.master = Some((src, adv.priority));
            self.takeover = Takeover::Silence;
            self.garp_due = None;
            self.timer = Some(now + self.master_down_interval());
            return out;
        }
        // A lower-priority master: RFC 5798 discards its advert; keepalived (default
        // `lower_prio_no_advert false`) answers with an advert at once, "forcing new
        // election", so the other side steps down without waiting for our timer.
        vec![VrrpOutput::Advert(self.own_advert(ours))]
    }
}
