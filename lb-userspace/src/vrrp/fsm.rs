//! The VRRP state machine: RFC 5798 §6 (v3) and RFC 3768 §6 (v2), following
//! keepalived 2.2.7 where it refines or deviates from the RFCs.
//!
//! Pure: no sockets and no clock reads. The driver passes the current time to
//! every input, executes the returned [`Action`]s in order and calls
//! [`Vrrp::tick`] at [`Vrrp::next_deadline`]. Packet validation (checksum,
//! TTL/hop limit 255, VRID, v2 interval and authentication checks) belongs to
//! the codec and driver: only adverts that passed keepalived's
//! `vrrp_check_packet` may reach [`Vrrp::on_advert`].
//!
//! keepalived references are to `keepalived/vrrp/vrrp.c` unless noted,
//! `vrrp_scheduler.c` and `vrrp_track.c` otherwise.

use std::cmp::Ordering;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The priority of the router that owns the virtual addresses (RFC 5798 §5.2.4).
pub const PRIO_OWNER: u8 = 255;
/// The priority a master advertises when it stops being master (RFC 5798 §6.4.3).
pub const PRIO_STOP: u8 = 0;
/// Master_Down_Interval counts this many advertisement intervals (keepalived's
/// default `down_timer_adverts`).
pub const DOWN_TIMER_ADVERTS: u32 = 3;

/// The protocol version, which changes how Skew_Time is computed and whether a
/// backup adopts the master's advertisement interval.
pub use super::packet::Version;

/// keepalived's instance states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Not running: after [`Vrrp::shutdown`].
    Init,
    Backup,
    Master,
    /// Interface down or a tracked object failed: no adverts, no timers.
    Fault,
}

/// One instance's configuration (`vrrp_instance` in keepalived.conf).
#[derive(Debug, Clone)]
pub struct Config {
    pub version: Version,
    /// Base priority, 1..=255; 255 makes us the address owner.
    pub priority: u8,
    /// Our Advertisement_Interval.
    pub advert_int: Duration,
    /// `state MASTER`. keepalived derives it from the priority when the
    /// configuration omits it: see [`Config::new`].
    pub start_master: bool,
    /// `nopreempt`: never take over from a live lower-priority master.
    pub nopreempt: bool,
    /// `preempt_delay`; zero disables it.
    pub preempt_delay: Duration,
    /// Our primary address on the interface (or `unicast_src_ip`): an equal
    /// priority is broken by the higher primary address (RFC 5798 §6.4.3).
    pub primary_addr: IpAddr,
}

impl Config {
    /// A configuration with keepalived's defaults: `state` derived from the
    /// priority (owner → MASTER), preemption on, no preempt delay.
    pub fn new(version: Version, priority: u8, advert_int: Duration, primary_addr: IpAddr) -> Self {
        Config {
            version,
            priority,
            advert_int,
            start_master: priority == PRIO_OWNER,
            nopreempt: false,
            preempt_delay: Duration::ZERO,
            primary_addr,
        }
    }
}

/// The fields of a valid received advertisement that the state machine uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub priority: u8,
    /// The advertised interval (v3 Max Adver Int, v2 Adver Int). Only v3 uses
    /// it: a v2 interval mismatch is a validation failure, not an input.
    pub interval: Duration,
    /// The advert's IP source address.
    pub src: IpAddr,
}

impl Received {
    /// From the wire's centisecond interval (the codec's `interval_cs`).
    pub fn from_cs(priority: u8, interval_cs: u16, src: IpAddr) -> Self {
        Received {
            priority,
            interval: Duration::from_millis(u64::from(interval_cs) * 10),
            src,
        }
    }
}

/// What the driver must do, in the order given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send an advertisement with this priority and Max Adver Int.
    SendAdvert { priority: u8, interval: Duration },
    /// Add the virtual addresses (and routes/rules) to the interface.
    AddVips,
    /// Remove the virtual addresses.
    RemoveVips,
    /// Start or stop load-balancing the virtual services in the data plane.
    SetForwarding(bool),
    /// Send gratuitous ARPs / unsolicited NAs for the virtual addresses.
    SendGratuitous,
    /// Run the notify scripts/fifo for the new state (`Init` = stopped).
    Notify(State),
}

/// One VRRP instance.
#[derive(Debug, Clone)]
pub struct Vrrp {
    cfg: Config,
    state: State,
    /// Effective priority: base plus track weights (keepalived `effective_priority`).
    prio: u8,
    /// Master_Adver_Interval: ours, or in v3 the master's while backup.
    master_adver_int: Duration,
    /// keepalived `sands`: master-down expiry in Backup, next advert in Master.
    deadline: Option<Instant>,
    /// keepalived `preempt_time`: when a lower-priority master may be preempted.
    preempt_time: Option<Instant>,
}

impl Vrrp {
    /// Starts an instance (keepalived `vrrp_init_state`, `vrrp_scheduler.c`).
    ///
    /// - Owner (255) with `state MASTER`: master at once. keepalived sets a
    ///   1 µs down timer; we skip that no-op wait.
    /// - `state MASTER` below 255: backup for one advert interval plus the
    ///   smallest skew, "to ensure there is no other master", then master.
    /// - Otherwise (including an owner configured `state BACKUP`): backup with
    ///   the full Master_Down_Interval.
    pub fn new(mut cfg: Config, now: Instant) -> (Vrrp, Vec<Action>) {
        // keepalived `vrrp_complete_instance`: priority 0 means "unset" there;
        // nopreempt makes no sense for the owner and is cleared.
        cfg.priority = cfg.priority.max(1);
        if cfg.priority == PRIO_OWNER {
            cfg.nopreempt = false;
        }
        let mut v = Vrrp {
            prio: cfg.priority,
            master_adver_int: cfg.advert_int,
            state: State::Backup,
            deadline: None,
            preempt_time: None,
            cfg,
        };
        if v.cfg.start_master && v.is_owner() {
            let acts = v.goto_master(now);
            return (v, acts);
        }
        let wait = if v.cfg.start_master {
            v.master_adver_int + v.skew(1)
        } else {
            v.master_down_interval()
        };
        v.deadline = Some(now + wait);
        (v, vec![Action::Notify(State::Backup)])
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// The priority we advertise.
    pub fn priority(&self) -> u8 {
        self.prio
    }

    /// Master_Adver_Interval (v3 backups adopt the master's).
    pub fn master_adver_int(&self) -> Duration {
        self.master_adver_int
    }

    /// When to call [`Vrrp::tick`]; `None` in Fault and Init (no timer runs).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Skew_Time for our current priority (RFC 5798 §6.1, RFC 3768 §6.1).
    pub fn skew_time(&self) -> Duration {
        self.skew(256 - u32::from(self.prio))
    }

    /// Master_Down_Interval = 3 × Master_Adver_Interval + Skew_Time
    /// (keepalived `VRRP_MS_DOWN_TIMER`).
    pub fn master_down_interval(&self) -> Duration {
        self.master_adver_int * DOWN_TIMER_ADVERTS + self.skew_time()
    }

    /// keepalived `VRRP_TIMER_SKEW_CALC`, with its integer arithmetic in µs:
    /// v3: `units × Master_Adver_Interval / 256` (interval in whole cs);
    /// v2: `units / 256` seconds, whatever the interval.
    fn skew(&self, units: u32) -> Duration {
        let micros = match self.cfg.version {
            Version::V3 => {
                let cs = (self.master_adver_int.as_micros() / 10_000) as u64;
                u64::from(units) * cs * 625 / 16
            }
            Version::V2 => u64::from(units) * 1_000_000 / 256,
        };
        Duration::from_micros(micros)
    }

    fn is_owner(&self) -> bool {
        self.cfg.priority == PRIO_OWNER
    }

    fn advert(&self, priority: u8) -> Action {
        Action::SendAdvert {
            priority,
            interval: self.cfg.advert_int,
        }
    }

    /// Timer expiry (keepalived `vrrp_dispatcher_read_timeout`). Does nothing
    /// before the deadline.
    pub fn tick(&mut self, now: Instant) -> Vec<Action> {
        match self.deadline {
            Some(d) if d <= now => {}
            _ => return Vec::new(),
        }
        match self.state {
            // RFC 5798 §6.4.2: Master_Down_Timer fired.
            State::Backup => self.goto_master(now),
            // RFC 5798 §6.4.3: Adver_Timer fired (keepalived `vrrp_state_master_tx`).
            State::Master => {
                self.deadline = Some(now + self.cfg.advert_int);
                vec![self.advert(self.prio)]
            }
            State::Init | State::Fault => Vec::new(),
        }
    }

    /// A valid advertisement arrived (keepalived `vrrp_dispatcher_read`).
    pub fn on_advert(&mut self, adv: &Received, now: Instant) -> Vec<Action> {
        match self.state {
            State::Backup => {
                self.backup_rx(adv, now);
                Vec::new()
            }
            State::Master => self.master_rx(adv, now),
            State::Init | State::Fault => Vec::new(),
        }
    }

    /// keepalived `vrrp_state_backup`; RFC 5798 §6.4.2.
    fn backup_rx(&mut self, adv: &Received, now: Instant) {
        if adv.priority == PRIO_STOP {
            // The master is leaving: take over after Skew_Time only, so the
            // highest-priority backup wins.
            self.deadline = Some(now + self.skew_time());
        } else if self.accepts_master(adv.priority, now) {
            if self.cfg.version == Version::V3 && !adv.interval.is_zero() {
                self.master_adver_int = adv.interval;
            }
            self.deadline = Some(now + self.master_down_interval());
            self.update_preempt_delay(adv.priority, now);
        }
        // Otherwise a lower-priority master that we may preempt: discard the
        // advert and let the running Master_Down timer fire.
    }

    /// Whether a backup treats an advert as coming from a legitimate master:
    /// nopreempt, a priority at least ours, or a preempt delay not yet over
    /// (keepalived `vrrp_state_backup`).
    fn accepts_master(&self, priority: u8, now: Instant) -> bool {
        let delaying =
            !self.cfg.preempt_delay.is_zero() && self.preempt_time.is_none_or(|t| t > now);
        self.cfg.nopreempt || priority >= self.prio || delaying
    }

    /// The preempt delay starts at the first lower-priority advert and is
    /// cancelled by a higher or equal one (keepalived `vrrp_state_backup`).
    fn update_preempt_delay(&mut self, priority: u8, now: Instant) {
        if self.cfg.preempt_delay.is_zero() {
            return;
        }
        if priority >= self.prio {
            self.preempt_time = None;
        } else if self.preempt_time.is_none() {
            self.preempt_time = Some(now + self.cfg.preempt_delay);
        }
    }

    /// keepalived `vrrp_state_master_rx` (with the defaults
    /// `higher_prio_send_advert` off, `lower_prio_no_advert` off);
    /// RFC 5798 §6.4.3.
    fn master_rx(&mut self, adv: &Received, now: Instant) -> Vec<Action> {
        if adv.priority == PRIO_STOP {
            // A master is leaving (or a stale one): assert ourselves at once.
            self.deadline = Some(now + self.cfg.advert_int);
            return vec![self.advert(self.prio)];
        }
        let addr = compare_addr(adv.src, self.cfg.primary_addr);
        if adv.priority == self.prio && addr != Ordering::Equal && self.prio == PRIO_OWNER {
            // Two address owners: keepalived reports a configuration error and
            // drops ours to 254 so that one of them yields.
            self.cfg.priority = PRIO_OWNER - 1;
            self.prio = PRIO_OWNER - 1;
        }
        match adv.priority.cmp(&self.prio).then(addr) {
            // A lower-priority router became master (e.g. after a partition):
            // keepalived sends an advert at once to force the election.
            Ordering::Less => {
                self.deadline = Some(now + self.cfg.advert_int);
                vec![self.advert(self.prio)]
            }
            Ordering::Greater => {
                if self.cfg.version == Version::V3 && !adv.interval.is_zero() {
                    self.master_adver_int = adv.interval;
                }
                self.leave_master(State::Backup, now)
            }
            // Our own priority and address: a looped-back advert or a
            // misconfiguration; keepalived only warns.
            Ordering::Equal => Vec::new(),
        }
    }

    /// keepalived `vrrp_state_goto_master` → `vrrp_state_master_tx` →
    /// `vrrp_state_become_master`. The advert goes first so that the old
    /// master drops the VIPs before our gratuitous ARPs.
    fn goto_master(&mut self, now: Instant) -> Vec<Action> {
        self.state = State::Master;
        self.master_adver_int = self.cfg.advert_int;
        self.deadline = Some(now + self.cfg.advert_int);
        vec![
            self.advert(self.prio),
            Action::AddVips,
            Action::SetForwarding(true),
            Action::SendGratuitous,
            Action::Notify(State::Master),
        ]
    }

    /// keepalived `vrrp_state_leave_master` / `vrrp_restore_interface`, in
    /// reverse order of becoming master: stop forwarding before the VIPs go.
    fn leave_master(&mut self, to: State, now: Instant) -> Vec<Action> {
        let acts = vec![
            Action::SetForwarding(false),
            Action::RemoveVips,
            Action::Notify(to),
        ];
        self.enter(to, now);
        acts
    }

    /// Sets the state and its timer (keepalived `vrrp_init_instance_sands`).
    fn enter(&mut self, to: State, now: Instant) {
        self.state = to;
        self.deadline = match to {
            State::Backup => {
                self.preempt_time = None;
                Some(now + self.master_down_interval())
            }
            State::Master => Some(now + self.cfg.advert_int),
            State::Init | State::Fault => None,
        };
    }

    /// Interface or tracked-object failure (`true`) and recovery (`false`):
    /// keepalived `down_instance` and `try_up_instance` → `vrrp_state_leave_fault`.
    pub fn set_fault(&mut self, fault: bool, now: Instant) -> Vec<Action> {
        match (fault, self.state) {
            (true, State::Master) => {
                // keepalived sends the priority-0 advert before removing VIPs
                // (twice, in fact: once in leave_master, once in
                // restore_interface; one is enough).
                self.master_adver_int = self.cfg.advert_int;
                let mut acts = vec![self.advert(PRIO_STOP)];
                acts.extend(self.leave_master(State::Fault, now));
                acts
            }
            (true, State::Backup) => {
                self.master_adver_int = self.cfg.advert_int;
                self.enter(State::Fault, now);
                vec![Action::Notify(State::Fault)]
            }
            (false, State::Fault) => self.leave_fault(now),
            _ => Vec::new(),
        }
    }

    /// keepalived `try_up_instance`: the owner configured MASTER goes straight
    /// back to master; everyone else waits a full Master_Down_Interval.
    fn leave_fault(&mut self, now: Instant) -> Vec<Action> {
        self.master_adver_int = self.cfg.advert_int;
        if self.cfg.start_master && self.is_owner() {
            return self.goto_master(now);
        }
        self.enter(State::Backup, now);
        vec![Action::Notify(State::Backup)]
    }

    /// Sets the effective priority from `total` = base priority + track
    /// weights (keepalived `vrrp_set_effective_priority`, `vrrp_track.c`):
    /// clamped to 1..=254, ignored for the address owner. A master advertises
    /// the new priority from its next advert on, so a backup with a higher
    /// priority then preempts it; a backup's running down timer moves by the
    /// change in Skew_Time.
    pub fn set_priority(&mut self, total: i32, now: Instant) -> Vec<Action> {
        if self.is_owner() {
            return Vec::new();
        }
        let new = total.clamp(1, i32::from(PRIO_OWNER) - 1) as u8;
        if new == self.prio {
            return Vec::new();
        }
        let old_skew = self.skew_time();
        self.prio = new;
        let new_skew = self.skew_time();
        if self.state == State::Backup {
            // keepalived shifts `sands` by the change of its stored down timer;
            // we shift by the Skew_Time change only, which is the same in the
            // usual case and does not push back a priority-0 takeover.
            self.deadline = self.deadline.map(|d| {
                let moved = if new_skew >= old_skew {
                    d + (new_skew - old_skew)
                } else {
                    d - (old_skew - new_skew)
                };
                moved.max(now)
            });
        }
        Vec::new()
    }

    /// A `vrrp_sync_group` member became MASTER: this one follows at once
    /// (keepalived `vrrp_sync_master`). Only a BACKUP moves.
    pub fn sync_master(&mut self, now: Instant) -> Vec<Action> {
        match self.state {
            State::Backup => self.goto_master(now),
            _ => Vec::new(),
        }
    }

    /// A `vrrp_sync_group` member fell back to BACKUP: a MASTER member
    /// follows (keepalived `vrrp_sync_backup`).
    pub fn sync_backup(&mut self, now: Instant) -> Vec<Action> {
        match self.state {
            State::Master => self.leave_master(State::Backup, now),
            _ => Vec::new(),
        }
    }

    /// Stops the instance. A master first advertises priority 0 so that a
    /// backup takes over after Skew_Time (RFC 5798 §6.4.3, keepalived
    /// `vrrp_restore_interface` with `advF`).
    pub fn shutdown(&mut self, now: Instant) -> Vec<Action> {
        let acts = match self.state {
            State::Init => return Vec::new(),
            State::Master => {
                let mut acts = vec![self.advert(PRIO_STOP)];
                acts.extend(self.leave_master(State::Init, now));
                acts
            }
            State::Backup | State::Fault => vec![Action::Notify(State::Init)],
        };
        self.enter(State::Init, now);
        acts
    }
}

/// keepalived `vrrp_saddr_cmp`: the sender's address against ours, numerically;
/// different families compare equal.
fn compare_addr(theirs: IpAddr, ours: IpAddr) -> Ordering {
    match (theirs, ours) {
        (IpAddr::V4(a), IpAddr::V4(b)) => a.cmp(&b),
        (IpAddr::V6(a), IpAddr::V6(b)) => a.cmp(&b),
        _ => Ordering::Equal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const SEC: Duration = Duration::from_secs(1);

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    fn cfg(version: Version, priority: u8, last: u8) -> Config {
        Config::new(version, priority, SEC, ip(last))
    }

    fn adv(priority: u8, last: u8) -> Received {
        Received {
            priority,
            interval: SEC,
            src: ip(last),
        }
    }

    fn send(priority: u8) -> Action {
        Action::SendAdvert {
            priority,
            interval: SEC,
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    const BECOME_MASTER: [Action; 4] = [
        Action::AddVips,
        Action::SetForwarding(true),
        Action::SendGratuitous,
        Action::Notify(State::Master),
    ];

    fn assert_became_master(acts: &[Action], priority: u8) {
        assert_eq!(acts.len(), 5, "{acts:?}");
        assert_eq!(acts[0], send(priority));
        assert_eq!(acts[1..], BECOME_MASTER);
    }

    #[test]
    fn skew_and_master_down_interval_v3() {
        let t0 = Instant::now();
        let (v, acts) = Vrrp::new(cfg(Version::V3, 100, 1), t0);
        assert_eq!(acts, [Action::Notify(State::Backup)]);
        // (256 - 100) × 100 cs / 256 = 60.9375 cs.
        assert_eq!(v.skew_time(), us(609_375));
        assert_eq!(v.master_down_interval(), 3 * SEC + us(609_375));
        assert_eq!(v.next_deadline(), Some(t0 + 3 * SEC + us(609_375)));
    }

    #[test]
    fn skew_v2_is_in_256ths_of_a_second() {
        let t0 = Instant::now();
        let mut c = cfg(Version::V2, 100, 1);
        c.advert_int = 2 * SEC;
        let (v, _) = Vrrp::new(c, t0);
        assert_eq!(v.skew_time(), us(609_375));
        assert_eq!(v.master_down_interval(), 6 * SEC + us(609_375));
    }

    #[test]
    fn master_down_fires_exactly_at_the_deadline() {
        let t0 = Instant::now();
        let (mut v, _) = Vrrp::new(cfg(Version::V3, 100, 1), t0);
        let down = t0 + 3 * SEC + us(609_375);
        assert!(v.tick(down - us(1)).is_empty());
        assert_eq!(v.state(), State::Backup);
        let acts = v.tick(down);
        assert_became_master(&acts, 100);
        assert_eq!(v.state(), State::Master);
        assert_eq!(v.next_deadline(), Some(down + SEC));
        // Then an advert every Advertisement_Interval.
        assert_eq!(v.tick(down + SEC), [send(100)]);
        assert_eq!(v.next_deadline(), Some(down + 2 * SEC));
    }

    #[test]
    fn adverts_from_a_master_hold_the_backup() {
        let t0 = Instant::now();
        let (mut v, _) = Vrrp::new(cfg(Version::V3, 100, 1), t0);
        for i in 1..10 {
            assert!(v.on_advert(&adv(150, 2), t0 + i * SEC).is_empty());
            assert!(v.tick(t0 + i * SEC + ms(500)).is_empty());
        }
        assert_eq!(v.state(), State::Backup);
        assert_eq!(
            v.next_deadline(),
            Some(t0 + 9 * SEC + 3 * SEC + us(609_375))
        );
    }

    #[test]
    fn owner_is_master_at_once() {
        let t0 = Instant::now();
        let (v, acts) = Vrrp::new(cfg(Version::V3, 255, 1), t0);
        assert_eq!(v.state(), State::Master);
        assert_became_master(&acts, 255);
        assert_eq!(v.next_deadline(), Some(t0 + SEC));
    }

    #[test]
    fn owner_configured_backup_waits_like_keepalived() {
        let t0 = Instant::now();
        let mut c = cfg(Version::V3, 255, 1);
        c.start_master = false;
        let (v, acts) = Vrrp::new(c, t0);
        assert_eq!(acts, [Action::Notify(State::Backup)]);
        // Skew for 255 is 1/256 of the interval.
        assert_eq!(v.next_deadline(), Some(t0 + 3 * SEC + us(3_906)));
    }

    #[test]
    fn state_master_below_owner_waits_one_interval_plus_min_skew() {
        let t0 = Instant::now();
        let mut c = cfg(Version::V3, 100, 1);
        c.start_master = true;
        let (mut v, acts) = Vrrp::new(c, t0);
        assert_eq!(acts, [Action::Notify(State::Backup)]);
        let deadline = t0 + SEC + us(3_906);
        assert_eq!(v.next_deadline(), Some(deadline));
        // A live master's advert puts it back on the full timer.
        v.on_advert(&adv(150, 2), t0 + ms(500));
        assert_eq!(
            v.next_deadline(),
            Some(t0 + ms(500) + 3 * SEC + us(609_375))
        );
    }

    #[test]
    fn priority_zero_means_takeover_after_skew_only() {
        let t0 = Instant::now();
        let (mut v, _) = Vrrp::new(cfg(Version::V3, 100, 1), t0);
        v.on_advert(&adv(150, 2), t0 + SEC);
        v.on_advert(&adv(0, 2), t0 + 2 * SEC);
        let at = t0 + 2 * SEC + us(609_375);
        assert_eq!(v.next_deadline(), Some(at));
        assert_became_master(&v.tick(at), 100);
    }

    #[test]
    fn higher_priority_backup_preempts_on_its_timer() {
        let t0 = Instant::now();
        let (mut v, _) = Vrrp::new(cfg(Version::V3, 200, 1), t0);
        let down = v.next_deadline().unwrap();
        // Lower-priority adverts are discarded: the timer keeps running.
        for i in 1..=3 {
            v.on_advert(&adv(100, 2), t0 + i * SEC);
            assert_eq!(v.next_deadline(), Some(down));
        }
        assert_became_master(&v.tick(down), 200);
    }

    #[test]
    fn nopreempt_backup_does_not_take_over() {
        let t0 = Instant::now();
        let mut c = cfg(Version::V3, 200, 1);
        c.nopreempt = true;
        let (mut v, _) = Vrrp::new(c, t0);
        for i in 1..20 {
            v.on_advert(&adv(100, 2), t0 + i * SEC);
            assert!(v.tick(t0 + i * SEC + ms(500)).is_empty());
        }
        assert_eq!(v.state(), State::Backup);
    }

    #[test]
    fn preempt_delay_postpones_preemption() {
        let t0 = Instant::now();
        let mut c = cfg(Version::V3, 200, 1);
        c.preempt_delay = 5 * SEC;
        let (mut v, _) = Vrrp::new(c, t0);
        // The first lower advert starts the delay (until t0 + 6 s); adverts
        // before then still reset the down timer.
        for i in 1..=5 {
            let now = t0 + i * SEC;
            v.on_advert(&adv(100, 2), now);
            assert!(v.tick(now).is_empty());
            assert_eq!(v.next_deadline(), Some(now + v.master_down_interval()));
        }
        let down = t0 + 8 * SEC + v.skew_time();
        // From the end of the delay on, lower adverts are discarded and the
        // timer runs out.
        for i in 6..=8 {
            v.on_advert(&adv(100, 2), t0 + i * SEC);
            assert_eq!(v.next_deadline(), Some(down));
        }
        assert_became_master(&v.tick(down), 200);
    }

    #[test]
    fn preempt_delay_is_cancelled_by_a_higher_master() {
        let t0 = Instant::now();
        let mut c = cfg(Version::V3, 200, 1);
        c.preempt_delay = 5 * SEC;
        let (mut v, _) = Vrrp::new(c, t0);
        v.on_advert(&adv(100, 2), t0 + SEC); // delay until t0 + 6 s
        v.on_advert(&adv(250, 3), t0 + 2 * SEC); // cancelled
        v.on_advert(&adv(100, 2), t0 + 7 * SEC); // restarts: until t0 + 12 s
        v.on_advert(&adv(100, 2), t0 + 8 * SEC);
        assert_eq!(v.next_deadline(), Some(t0 + 11 * SEC + v.skew_time()));
    }

    #[test]
    fn v3_backup_adopts_the_masters_interval() {
        let t0 = Instant::now();
        let (mut v, _) = Vrrp::new(cfg(Version::V3, 100, 1), t0);
        let m = Received::from_cs(150, 30, ip(2));
        v.on_advert(&m, t0);
        assert_eq!(v.master_adver_int(), ms(300));
        // 3 × 30 cs + 156 × 30 / 256 cs = 900 ms + 182.8125 ms.
        assert_eq!(v.next_deadline(), Some(t0 + ms(900) + us(182_812)));
        // Becoming master restores our own interval.
        let acts = v.tick(t0 + ms(1083));
        assert_became_master(&acts, 100);
        assert_eq!(v.master_adver_int(), SEC);
        assert_eq!(v.next_deadline(), Some(t0 + ms(1083) + SEC));
    }

    #[test]
    fn v2_backup_keeps_its_interval() {
        let t0 = Instant::now();
        let (mut v, _) = Vrrp::new(cfg(Version::V2, 100, 1), t0);
        v.on_advert(
            &Received {
                priority: 150,
                interval: 3 * SEC,
                src: ip(2),
            },
            t0,
        );
        assert_eq!(v.master_adver_int(), SEC);
    }

    fn master(c: Config, t0: Instant) -> Vrrp {
        let (mut v, _) = Vrrp::new(c, t0);
        let d = v.next_deadline().unwrap();
        v.tick(d);
        assert_eq!(v.state(), State::Master);
        v
    }

    const LEAVE_TO_BACKUP: [Action; 3] = [
        Action::SetForwarding(false),
        Action::RemoveVips,
        Action::Notify(State::Backup),
    ];

    #[test]
    fn master_yields_to_higher_priority() {
        let t0 = Instant::now();
        let mut v = master(cfg(Version::V3, 100, 9), t0);
        let now = t0 + 10 * SEC;
        let acts = v.on_advert(
            &Received {
                priority: 101,
                interval: ms(500),
                src: ip(1),
            },
            now,
        );
        assert_eq!(acts, LEAVE_TO_BACKUP);
        assert_eq!(v.state(), State::Backup);
        // Master_Down_Interval with the new master's interval.
        assert_eq!(v.next_deadline(), Some(now + ms(1500) + us(304_687)));
    }

    #[test]
    fn equal_priority_is_broken_by_the_higher_address() {
        let t0 = Instant::now();
        let now = t0 + 10 * SEC;
        let mut low = master(cfg(Version::V3, 100, 1), t0);
        assert_eq!(low.on_advert(&adv(100, 2), now), LEAVE_TO_BACKUP);
        let mut high = master(cfg(Version::V3, 100, 2), t0);
        assert_eq!(high.on_advert(&adv(100, 1), now), [send(100)]);
        assert_eq!(high.state(), State::Master);
    }

    #[test]
    fn master_answers_lower_priority_and_priority_zero_with_an_advert() {
        let t0 = Instant::now();
        let mut v = master(cfg(Version::V3, 100, 1), t0);
        let now = t0 + 10 * SEC + ms(300);
        let ours = [send(100)];
        assert_eq!(v.on_advert(&adv(50, 2), now), ours);
        assert_eq!(v.next_deadline(), Some(now + SEC));
        assert_eq!(v.on_advert(&adv(0, 2), now), ours);
        assert_eq!(v.state(), State::Master);
    }

    #[test]
    fn two_owners_one_yields() {
        let t0 = Instant::now();
        let mut v = master(cfg(Version::V3, 255, 1), t0);
        assert_eq!(v.on_advert(&adv(255, 2), t0 + SEC), LEAVE_TO_BACKUP);
        assert_eq!(v.priority(), 254);
    }

    #[test]
    fn fault_leaves_master_with_priority_zero_forwarding_off_first() {
        let t0 = Instant::now();
        let mut v = master(cfg(Version::V3, 100, 1), t0);
        let now = t0 + 10 * SEC;
        assert_eq!(
            v.set_fault(true, now),
            [
                send(0),
                Action::SetForwarding(false),
                Action::RemoveVips,
                Action::Notify(State::Fault),
            ]
        );
        assert_eq!(v.state(), State::Fault);
        assert_eq!(v.next_deadline(), None);
        assert!(v.on_advert(&adv(50, 2), now).is_empty());
        assert!(v.tick(now + 100 * SEC).is_empty());
        assert!(v.set_fault(true, now).is_empty());
        // Recovery: backup with a full Master_Down_Interval.
        let later = now + 5 * SEC;
        assert_eq!(v.set_fault(false, later), [Action::Notify(State::Backup)]);
        assert_eq!(v.next_deadline(), Some(later + v.master_down_interval()));
    }

    #[test]
    fn backup_fault_and_owner_recovery() {
        let t0 = Instant::now();
        let (mut b, _) = Vrrp::new(cfg(Version::V3, 100, 1), t0);
        assert_eq!(b.set_fault(true, t0), [Action::Notify(State::Fault)]);
        let (mut o, _) = Vrrp::new(cfg(Version::V3, 255, 2), t0);
        o.set_fault(true, t0);
        assert_became_master(&o.set_fault(false, t0 + SEC), 255);
    }

    #[test]
    fn shutdown_sends_priority_zero_before_leaving() {
        let t0 = Instant::now();
        let mut v = master(cfg(Version::V3, 100, 1), t0);
        assert_eq!(
            v.shutdown(t0 + 10 * SEC),
            [
                send(0),
                Action::SetForwarding(false),
                Action::RemoveVips,
                Action::Notify(State::Init),
            ]
        );
        assert_eq!(v.state(), State::Init);
        assert_eq!(v.next_deadline(), None);
        let (mut b, _) = Vrrp::new(cfg(Version::V3, 100, 1), t0);
        assert_eq!(b.shutdown(t0), [Action::Notify(State::Init)]);
    }

    #[test]
    fn priority_changes_are_clamped_and_move_the_backup_timer() {
        let t0 = Instant::now();
        let (mut v, _) = Vrrp::new(cfg(Version::V3, 100, 1), t0);
        v.set_priority(300, t0);
        assert_eq!(v.priority(), 254);
        // Skew for 254: 2 × 100 / 256 cs = 7.8125 ms.
        assert_eq!(v.next_deadline(), Some(t0 + 3 * SEC + us(7_812)));
        v.set_priority(-20, t0);
        assert_eq!(v.priority(), 1);
        let (mut o, _) = Vrrp::new(cfg(Version::V3, 255, 2), t0);
        o.set_priority(100, t0);
        assert_eq!(o.priority(), 255);
    }

    #[test]
    fn master_advertises_its_lowered_priority() {
        let t0 = Instant::now();
        let mut v = master(cfg(Version::V3, 100, 1), t0);
        v.set_priority(50, t0);
        let d = v.next_deadline().unwrap();
        assert_eq!(v.tick(d), [send(50)]);
    }

    /// Two routers on one link; adverts are delivered instantly while the link is up.
    struct Lan {
        r: [Vrrp; 2],
        addr: [IpAddr; 2],
        link_up: bool,
        now: Instant,
    }

    impl Lan {
        fn new(p0: u8, p1: u8, t0: Instant) -> Lan {
            let (a, _) = Vrrp::new(cfg(Version::V3, p0, 1), t0);
            let (b, _) = Vrrp::new(cfg(Version::V3, p1, 2), t0);
            Lan {
                r: [a, b],
                addr: [ip(1), ip(2)],
                link_up: true,
                now: t0,
            }
        }

        /// Executes `acts` of router `i`, delivering its adverts to the other.
        fn deliver(&mut self, i: usize, acts: Vec<Action>) {
            let mut queue: Vec<(usize, Vec<Action>)> = vec![(i, acts)];
            while let Some((from, acts)) = queue.pop() {
                for a in acts {
                    if let (Action::SendAdvert { priority, interval }, true) = (a, self.link_up) {
                        let to = 1 - from;
                        let rx = Received {
                            priority,
                            interval,
                            src: self.addr[from],
                        };
                        let reply = self.r[to].on_advert(&rx, self.now);
                        queue.push((to, reply));
                    }
                }
            }
        }

        /// Advances the clock to `until`, firing timers in order.
        fn run_until(&mut self, until: Instant) {
            loop {
                let next = (0..2)
                    .filter_map(|i| self.r[i].next_deadline().map(|d| (d, i)))
                    .min();
                match next {
                    Some((d, i)) if d <= until => {
                        self.now = d;
                        let acts = self.r[i].tick(d);
                        self.deliver(i, acts);
                    }
                    _ => break,
                }
            }
            self.now = until;
        }

        fn masters(&self) -> Vec<usize> {
            (0..2)
                .filter(|&i| self.r[i].state() == State::Master)
                .collect()
        }
    }

    #[test]
    fn two_routers_elect_by_priority_and_survive_a_partition() {
        let t0 = Instant::now();
        let mut lan = Lan::new(100, 200, t0);
        lan.run_until(t0 + 10 * SEC);
        assert_eq!(lan.masters(), [1]);

        // Link cut: the backup times out and both are master.
        lan.link_up = false;
        lan.run_until(t0 + 20 * SEC);
        assert_eq!(lan.masters(), [0, 1]);

        // Restore: exactly one master within 3 advert intervals.
        lan.link_up = true;
        lan.run_until(lan.now + 3 * SEC);
        assert_eq!(lan.masters(), [1]);
        lan.run_until(lan.now + 30 * SEC);
        assert_eq!(lan.masters(), [1]);
    }

    #[test]
    fn two_routers_with_equal_priority_elect_the_higher_address() {
        let t0 = Instant::now();
        let mut lan = Lan::new(100, 100, t0);
        lan.run_until(t0 + 10 * SEC);
        // Equal timers: whoever fires first is master, and a backup accepts an
        // equal-priority master (RFC 5798 §6.4.2), so there is no tie-break yet.
        assert_eq!(lan.masters().len(), 1);
        // The address breaks the tie only between two masters (§6.4.3).
        lan.link_up = false;
        lan.run_until(t0 + 20 * SEC);
        assert_eq!(lan.masters(), [0, 1]);
        lan.link_up = true;
        lan.run_until(lan.now + 3 * SEC);
        assert_eq!(lan.masters(), [1]);
    }

    #[test]
    fn two_routers_fail_over_and_preempt_back() {
        let t0 = Instant::now();
        let mut lan = Lan::new(100, 200, t0);
        lan.run_until(t0 + 10 * SEC);
        // The master's interface fails: priority-0 advert, backup takes over
        // after its Skew_Time.
        let acts = lan.r[1].set_fault(true, lan.now);
        lan.deliver(1, acts);
        let takeover = lan.now + lan.r[0].skew_time();
        assert_eq!(lan.r[0].next_deadline(), Some(takeover));
        lan.run_until(takeover);
        assert_eq!(lan.masters(), [0]);
        // It recovers as backup and preempts on its down timer.
        let acts = lan.r[1].set_fault(false, lan.now);
        lan.deliver(1, acts);
        let back = lan.now + lan.r[1].master_down_interval();
        lan.run_until(back);
        assert_eq!(lan.masters(), [1]);
    }
}
