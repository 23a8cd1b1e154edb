//! The VRRP runtime: sockets, timers and tracking around the pure state
//! machine ([`super::fsm`]), and the hand-off to the data plane.
//!
//! One task owns every instance, so `vrrp_sync_group` members move in one
//! step and the data plane's forwarding is decided in one place: it is on
//! while any instance is MASTER (XVS has one data plane per interface; see
//! the README for what that means with several instances).
//!
//! Each [`fsm::Action`] is carried out in the order the machine gives it,
//! which is keepalived's: advert, VIPs, forwarding, gratuitous ARPs,
//! notify scripts; and the reverse when leaving MASTER.

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use tokio::{
    io::unix::AsyncFd,
    sync::{mpsc, oneshot},
    task::JoinHandle,
};

use super::{
    fsm::{self, Action, State, Vrrp},
    garp::Announcer,
    packet::{self, Advert, EncodeOptions, Expect, Family, Reject},
    socket::{Received, VrrpSocket},
    spec::{InstanceSpec, Notifies, Spec, TrackedObject},
    track::{self, Change, ScriptRunner},
};
use crate::{
    config::model::{GlobalDefs, VirtualIp},
    health::notify::Notifier,
    netlink,
};

/// A rejected advert is logged at most this often per instance and reason;
/// the counters see every one.
const REJECT_LOG_EVERY: Duration = Duration::from_secs(10);

/// What VRRP drives outside itself.
pub trait Forwarding: Send {
    /// Turns the data plane's forwarding on or off, before returning.
    fn set_forwarding(&mut self, on: bool);
    /// Forwarding stops after `lease` unless renewed: a MASTER renews it
    /// with each advert, for as long as a backup would wait for the next.
    fn renew(&mut self, lease: Duration);
    /// The instances' states, after every change (status and metrics).
    fn report(&mut self, status: &[InstanceStatus]);
}

/// One instance, as `xvsadm --status` and /metrics show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceStatus {
    pub name: String,
    /// MASTER, BACKUP, FAULT or STOP, as keepalived names them.
    pub state: String,
    pub priority: u8,
    pub base_priority: u8,
    pub interface: String,
    pub vrid: u8,
    pub adverts_sent: u64,
    pub adverts_received: u64,
    /// Adverts that failed a check, by reason.
    pub rejected: BTreeMap<String, u64>,
    pub became_master: u64,
}

pub fn state_name(s: State) -> &'static str {
    match s {
        State::Master => "MASTER",
        State::Backup => "BACKUP",
        State::Fault => "FAULT",
        State::Init => "STOP",
    }
}

/// The running VRRP task.
pub struct Handle {
    stop: Option<oneshot::Sender<oneshot::Sender<()>>>,
    task: JoinHandle<()>,
}

impl Handle {
    /// Stops every instance as keepalived does on SIGTERM: a MASTER sends
    /// priority 0, stops forwarding and removes its VIPs.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let (done, wait) = oneshot::channel();
            if stop.send(done).is_ok() {
                let _ = wait.await;
            }
        }
        self.task.abort();
    }
}

/// Opens every instance's socket and starts the runtime. Errors name the
/// instance and where it is configured.
pub fn start(spec: Spec, global: &GlobalDefs, forwarding: Box<dyn Forwarding>) -> Result<Handle> {
    let (rx_tx, rx) = mpsc::unbounded_channel();
    let (track_tx, track_rx) = mpsc::unbounded_channel();
    let mut tasks = Vec::new();
    let mut instances = Vec::new();
    for (index, s) in spec.instances.iter().enumerate() {
        let inst = Instance::open(s.clone())
            .with_context(|| format!("vrrp_instance {} ({})", s.name, s.pos))?;
        tasks.push(spawn_reader(index, inst.socket.clone(), rx_tx.clone()));
        instances.push(inst);
    }
    let mut scripts_ok = Vec::new();
    for (index, s) in spec.scripts.iter().enumerate() {
        let runner = ScriptRunner::new(index, s, global)?;
        scripts_ok.push(runner.initial());
        tasks.push(runner.spawn(track_tx.clone()));
    }
    let links = track::links_now(&tracked_interfaces(&spec));
    tasks.push(track::watch_links(links.clone(), track_tx));
    let mut rt = Runtime {
        instances,
        groups: spec
            .groups
            .iter()
            .map(|g| Group {
                name: g.name.clone(),
                members: g.members.clone(),
                notify: g.notify.clone(),
                reported: None,
            })
            .collect(),
        links,
        scripts_ok,
        notifier: Notifier::new(global.script_user.clone()),
        forwarding,
        forwarding_on: None,
    };
    let (stop, stop_rx) = oneshot::channel();
    rt.boot();
    let task = tokio::spawn(async move {
        rt.run(rx, track_rx, stop_rx).await;
        for t in tasks {
            t.abort();
        }
    });
    Ok(Handle {
        stop: Some(stop),
        task,
    })
}

fn tracked_interfaces(spec: &Spec) -> Vec<String> {
    let mut names: Vec<String> = spec
        .instances
        .iter()
        .flat_map(|i| &i.tracked)
        .filter_map(|t| match &t.what {
            TrackedObject::Interface(n) => Some(n.clone()),
            TrackedObject::Script(_) => None,
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

fn spawn_reader(
    index: usize,
    socket: Arc<AsyncFd<VrrpSocket>>,
    tx: mpsc::UnboundedSender<(usize, Received)>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let Ok(mut guard) = socket.readable().await else {
                return;
            };
            match socket.get_ref().recv() {
                Ok(pkt) => {
                    if tx.send((index, pkt)).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => guard.clear_ready(),
                Err(e) => tracing::debug!(error = %e, "VRRP receive"),
            }
        }
    })
}

/// One `vrrp_instance` with its socket and timers.
struct Instance {
    spec: InstanceSpec,
    ifindex: u32,
    /// Our address in adverts: the source, and the tie-breaker.
    primary: IpAddr,
    socket: Arc<AsyncFd<VrrpSocket>>,
    expect: Expect,
    fsm: Option<Vrrp>,
    announcer: Option<Announcer>,
    /// The second gratuitous ARP burst (garp_master_delay).
    garp_at: Option<Instant>,
    /// The next periodic refresh (garp_master_refresh).
    refresh_at: Option<Instant>,
    /// Tracking says FAULT (the group's members share it).
    own_fault: bool,
    status: InstanceStatus,
    last_reject_log: HashMap<&'static str, (Option<Instant>, u64)>,
}

impl Instance {
    fn open(spec: InstanceSpec) -> Result<Instance> {
        let ifindex = netlink::ifindex(&spec.interface)?;
        let primary = match spec.src {
            Some(a) => a,
            None => primary_address(&spec, ifindex)?,
        };
        let group = spec.peers.is_empty().then_some(spec.group);
        let socket = VrrpSocket::open(&spec.interface, ifindex, spec.family == Family::V6, group)
            .with_context(|| format!("opening the VRRP socket on {}", spec.interface))?;
        let announcer = match Announcer::new(&spec.interface) {
            Ok(a) => Some(a),
            Err(e) => {
                tracing::warn!(instance = %spec.name, error = %format!("{e:#}"), "no gratuitous ARP on this interface");
                None
            }
        };
        let expect = Expect {
            version: spec.version,
            family: spec.family,
            vrid: spec.vrid,
            auth: spec.auth,
            interval_cs: (spec.advert_int.as_millis() / 10) as u16,
            addrs: spec.advertised(),
            v3_checksum_as_v2: spec.v3_checksum_as_v2,
            unicast: !spec.peers.is_empty(),
            // keepalived only logs an address mismatch by default.
            strict_addrs: false,
        };
        let status = InstanceStatus {
            name: spec.name.clone(),
            state: "STOP".into(),
            priority: spec.priority,
            base_priority: spec.priority,
            interface: spec.interface.clone(),
            vrid: spec.vrid,
            adverts_sent: 0,
            adverts_received: 0,
            rejected: BTreeMap::new(),
            became_master: 0,
        };
        Ok(Instance {
            ifindex,
            primary,
            // SAFETY: VrrpSocket owns its descriptor and never changes it.
            socket: Arc::new(unsafe { AsyncFd::register(socket) }.map_err(|e| e.into_parts().1)?),
            expect,
            fsm: None,
            announcer,
            garp_at: None,
            refresh_at: None,
            own_fault: false,
            status,
            last_reject_log: HashMap::new(),
            spec,
        })
    }

    fn state(&self) -> State {
        self.fsm.as_ref().map_or(State::Init, |f| f.state())
    }

    fn vip_ifindex(&self, dev: Option<&str>) -> Result<u32> {
        match dev {
            Some(d) if d != self.spec.interface => {
                netlink::ifindex(d).with_context(|| format!("VIP device {d}"))
            }
            _ => Ok(self.ifindex),
        }
    }

    fn add_vips(&self) {
        self.each_vip("adding", |ix, vip| {
            netlink::add_addr(ix, vip.addr, vip.prefix_len, vip.label.as_deref())
        });
    }

    fn remove_vips(&self) {
        self.each_vip("removing", |ix, vip| {
            netlink::del_addr(ix, vip.addr, vip.prefix_len)
        });
    }

    /// Runs `op` on every VIP (excluded ones too) with the index of its
    /// device; a failure is logged and the others still run.
    fn each_vip(&self, doing: &str, op: impl Fn(u32, &VirtualIp) -> std::io::Result<()>) {
        for vip in self.spec.all_vips() {
            let result = self
                .vip_ifindex(vip.dev.as_deref())
                .and_then(|ix| op(ix, vip).map_err(Into::into));
            if let Err(e) = result {
                tracing::error!(instance = %self.spec.name, vip = %vip.addr, error = %format!("{e:#}"), "{doing} VIP failed");
            }
        }
    }

    fn send_advert(&mut self, priority: u8, interval: Duration) {
        let advert = Advert {
            version: self.spec.version,
            vrid: self.spec.vrid,
            priority,
            interval_cs: (interval.as_millis() / 10) as u16,
            addrs: self.spec.advertised(),
            auth: self.spec.auth,
        };
        let opts = EncodeOptions {
            v3_checksum_as_v2: self.spec.v3_checksum_as_v2,
        };
        let targets = if self.spec.peers.is_empty() {
            vec![self.spec.group]
        } else {
            self.spec.peers.clone()
        };
        for dst in targets {
            let sent = packet::encode(&advert, self.primary, dst, &opts)
                .map_err(anyhow::Error::from)
                .and_then(|bytes| Ok(self.socket.get_ref().send(self.primary, dst, &bytes)?));
            match sent {
                Ok(()) => self.status.adverts_sent += 1,
                Err(e) => {
                    tracing::warn!(instance = %self.spec.name, %dst, error = %format!("{e:#}"), "sending advert failed")
                }
            }
        }
    }

    /// One burst: `repeat` announcements of the VIPs, the excluded ones
    /// too when asked.
    fn announce(&mut self, repeat: u32, with_excluded: bool) {
        let Some(announcer) = self.announcer.as_mut() else {
            return;
        };
        let excluded = if with_excluded {
            &self.spec.excluded[..]
        } else {
            &[]
        };
        for _ in 0..repeat.max(1) {
            for vip in self.spec.vips.iter().chain(excluded) {
                if let Err(e) = announcer.announce(vip.addr) {
                    tracing::debug!(vip = %vip.addr, error = %e, "gratuitous announcement failed");
                }
            }
        }
    }

    fn start_announcing(&mut self, now: Instant) {
        self.announce(self.spec.garp.repeat, true);
        let g = &self.spec.garp;
        self.garp_at = (!g.delay.is_zero()).then(|| now + g.delay);
        self.refresh_at = (!g.refresh.is_zero()).then(|| now + g.refresh);
    }

    fn announce_timers(&mut self, now: Instant) {
        if self.state() != State::Master {
            self.garp_at = None;
            self.refresh_at = None;
            return;
        }
        if self.garp_at.is_some_and(|t| t <= now) {
            self.garp_at = None;
            self.announce(self.spec.garp.repeat, true);
        }
        if self.refresh_at.is_some_and(|t| t <= now) {
            self.refresh_at = Some(now + self.spec.garp.refresh);
            self.announce(self.spec.garp.refresh_repeat, false);
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        [
            self.fsm.as_ref().and_then(|f| f.next_deadline()),
            self.garp_at,
            self.refresh_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Counts every rejected advert; logs one line per reason at most every
    /// REJECT_LOG_EVERY, with how many were not logged.
    fn reject(&mut self, from: IpAddr, why: &Reject, now: Instant) {
        let reason = reject_reason(why);
        *self.status.rejected.entry(reason.to_string()).or_default() += 1;
        if matches!(why, Reject::WrongVrid(_)) {
            // Other routers' instances share the group: not a problem.
            return;
        }
        if let Some(unlogged) = self.log_due(reason, now) {
            tracing::warn!(instance = %self.spec.name, %from, reason, detail = ?why, unlogged, "VRRP advert ignored");
        }
    }

    /// keepalived only logs an advert whose addresses differ from ours.
    fn addresses_differ(&mut self, from: IpAddr, theirs: &[IpAddr], now: Instant) {
        if let Some(unlogged) = self.log_due("addresses", now) {
            tracing::warn!(instance = %self.spec.name, %from, ?theirs, ours = ?self.spec.advertised(), unlogged, "advert's addresses differ from ours (accepted, as keepalived does)");
        }
    }

    /// Whether a line about `key` may be logged now, and how many were
    /// not logged since the last one.
    fn log_due(&mut self, key: &'static str, now: Instant) -> Option<u64> {
        let entry = self.last_reject_log.entry(key).or_insert((None, 0));
        if entry
            .0
            .is_some_and(|t| now.duration_since(t) < REJECT_LOG_EVERY)
        {
            entry.1 += 1;
            return None;
        }
        entry.0 = Some(now);
        Some(std::mem::take(&mut entry.1))
    }
}

/// The interface's first address of the instance's family that is not a
/// VIP; for IPv6 its link-local address (RFC 5798 §5.1.2.1).
fn primary_address(spec: &InstanceSpec, ifindex: u32) -> Result<IpAddr> {
    let vips: Vec<IpAddr> = spec.all_vips().map(|v| v.addr).collect();
    let found = netlink::list_addrs(Some(ifindex))?
        .into_iter()
        .map(|a| a.addr)
        .find(|a| {
            !vips.contains(a)
                && match (spec.family, a) {
                    (Family::V4, IpAddr::V4(_)) => true,
                    (Family::V6, IpAddr::V6(v6)) => v6.segments()[0] & 0xffc0 == 0xfe80,
                    _ => false,
                }
        });
    match found {
        Some(a) => Ok(a),
        None => bail!(
            "interface {} has no {} address to send adverts from",
            spec.interface,
            match spec.family {
                Family::V4 => "IPv4",
                Family::V6 => "IPv6 link-local",
            }
        ),
    }
}

fn reject_reason(r: &Reject) -> &'static str {
    match r {
        Reject::TooShort(_) | Reject::BadLength { .. } => "length",
        Reject::FamilyMismatch => "family",
        Reject::WrongVrid(_) => "vrid",
        Reject::BadTtl(_) => "ttl",
        Reject::BadVersion(_) => "version",
        Reject::InvalidAuthType(_) | Reject::AuthTypeMismatch { .. } | Reject::AhUnsupported => {
            "auth_type"
        }
        Reject::AuthMismatch => "auth",
        Reject::IntervalMismatch { .. } => "interval",
        Reject::BadType(_) => "type",
        Reject::BadChecksum => "checksum",
        Reject::AddrCountMismatch { .. } | Reject::AddrListMismatch => "addresses",
    }
}

struct Group {
    name: String,
    members: Vec<usize>,
    notify: Notifies,
    /// The state the group's notify scripts last ran for.
    reported: Option<State>,
}

struct Runtime {
    instances: Vec<Instance>,
    groups: Vec<Group>,
    links: BTreeMap<String, bool>,
    scripts_ok: Vec<bool>,
    notifier: Notifier,
    forwarding: Box<dyn Forwarding>,
    forwarding_on: Option<bool>,
}

impl Runtime {
    /// Starts every instance: stale VIPs (a crash leaves them) go first, so
    /// a BACKUP never answers for an address it does not own.
    fn boot(&mut self) {
        let now = Instant::now();
        for i in 0..self.instances.len() {
            let inst = &mut self.instances[i];
            inst.remove_vips();
            let s = &inst.spec;
            let mut cfg = fsm::Config::new(s.version, s.priority, s.advert_int, inst.primary);
            cfg.start_master = s.start_master;
            cfg.nopreempt = s.nopreempt;
            cfg.preempt_delay = s.preempt_delay;
            tracing::info!(instance = %s.name, interface = %s.interface, vrid = s.vrid, priority = s.priority, from = %inst.primary, "VRRP instance started");
            let (machine, acts) = Vrrp::new(cfg, now);
            inst.fsm = Some(machine);
            self.execute(i, acts, now);
        }
        self.apply_tracking(now);
        self.sync_forwarding();
        self.report();
    }

    async fn run(
        &mut self,
        mut rx: mpsc::UnboundedReceiver<(usize, Received)>,
        mut track_rx: mpsc::UnboundedReceiver<Change>,
        mut stop: oneshot::Receiver<oneshot::Sender<()>>,
    ) {
        loop {
            let deadline = self
                .instances
                .iter()
                .filter_map(Instance::next_deadline)
                .min()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            let sleep = tokio::time::sleep_until(deadline.into());
            tokio::select! {
                Some((i, pkt)) = rx.recv() => self.on_packet(i, pkt, Instant::now()),
                Some(change) = track_rx.recv() => self.on_track(change, Instant::now()),
                _ = sleep => self.on_timers(Instant::now()),
                done = &mut stop => {
                    self.shutdown(Instant::now());
                    if let Ok(done) = done {
                        let _ = done.send(());
                    }
                    return;
                }
            }
            self.report();
        }
    }

    fn on_packet(&mut self, i: usize, pkt: Received, now: Instant) {
        let inst = &mut self.instances[i];
        if pkt.truncated {
            inst.reject(pkt.src, &Reject::TooShort(pkt.payload.len()), now);
            return;
        }
        if inst.spec.check_unicast_src
            && !inst.spec.peers.is_empty()
            && !inst.spec.peers.contains(&pkt.src)
        {
            tracing::debug!(instance = %inst.spec.name, from = %pkt.src, "advert from an unknown unicast peer");
            return;
        }
        let decoded = match packet::decode(&pkt.payload, pkt.src, pkt.dst, pkt.ttl, &inst.expect) {
            Ok(d) => d,
            Err(why) => return inst.reject(pkt.src, &why, now),
        };
        inst.status.adverts_received += 1;
        if !decoded.addrs_match {
            inst.addresses_differ(pkt.src, &decoded.advert.addrs, now);
        }
        let a = &decoded.advert;
        let rx = fsm::Received::from_cs(a.priority, a.interval_cs, pkt.src);
        let acts = match inst.fsm.as_mut() {
            Some(f) => f.on_advert(&rx, now),
            None => return,
        };
        self.execute(i, acts, now);
    }

    fn on_timers(&mut self, now: Instant) {
        for i in 0..self.instances.len() {
            let acts = match self.instances[i].fsm.as_mut() {
                Some(f) => f.tick(now),
                None => Vec::new(),
            };
            self.execute(i, acts, now);
            self.instances[i].announce_timers(now);
        }
    }

    fn on_track(&mut self, change: Change, now: Instant) {
        match change.what {
            TrackedObject::Interface(name) => {
                self.links.insert(name, change.ok);
            }
            TrackedObject::Script(ix) => {
                if let Some(s) = self.scripts_ok.get_mut(ix) {
                    *s = change.ok;
                }
            }
        }
        self.apply_tracking(now);
    }

    fn tracked_ok(&self, what: &TrackedObject) -> bool {
        match what {
            TrackedObject::Interface(n) => self.links.get(n).copied().unwrap_or(false),
            TrackedObject::Script(ix) => self.scripts_ok.get(*ix).copied().unwrap_or(true),
        }
    }

    /// Priorities and FAULT from the tracked objects; a sync group's
    /// members are in FAULT together.
    fn apply_tracking(&mut self, now: Instant) {
        let mut effects = Vec::new();
        for inst in &self.instances {
            let (mut delta, mut fault) = (0i32, false);
            for t in &inst.spec.tracked {
                let (d, f) = t.effect(self.tracked_ok(&t.what));
                delta += d;
                fault |= f;
            }
            effects.push((delta, fault));
        }
        for (inst, (_, fault)) in self.instances.iter_mut().zip(&effects) {
            inst.own_fault = *fault;
        }
        for (i, (delta, _)) in effects.into_iter().enumerate() {
            let total = i32::from(self.instances[i].spec.priority) + delta;
            let fault = self.group_fault(i);
            let Some(f) = self.instances[i].fsm.as_mut() else {
                continue;
            };
            let mut acts = f.set_priority(total, now);
            acts.extend(f.set_fault(fault, now));
            self.execute(i, acts, now);
        }
    }

    fn group_fault(&self, i: usize) -> bool {
        match self.instances[i].spec.sync_group {
            Some(g) => self.groups[g]
                .members
                .iter()
                .any(|&m| self.instances[m].own_fault),
            None => self.instances[i].own_fault,
        }
    }

    /// Carries out `acts` for instance `i`, then moves its sync group along.
    fn execute(&mut self, i: usize, acts: Vec<Action>, now: Instant) {
        let mut queue = vec![(i, acts)];
        while let Some((i, acts)) = queue.pop() {
            if acts.is_empty() {
                continue;
            }
            let before = self.instances[i].status.state.clone();
            for act in acts {
                self.act(i, act, now);
            }
            let after = self.instances[i].state();
            if before != state_name(after) {
                queue.extend(self.follow_group(i, after, now));
            }
        }
        self.report_groups();
    }

    fn act(&mut self, i: usize, act: Action, now: Instant) {
        let inst = &mut self.instances[i];
        match act {
            Action::SendAdvert { priority, interval } => {
                inst.send_advert(priority, interval);
                if inst.state() == State::Master && priority != fsm::PRIO_STOP {
                    // A backup takes over 3 adverts + skew after the last:
                    // by then this data plane must have stopped, should
                    // this daemon die now.
                    self.forwarding
                        .renew(inst.spec.advert_int * fsm::DOWN_TIMER_ADVERTS);
                }
            }
            Action::AddVips => inst.add_vips(),
            Action::RemoveVips => inst.remove_vips(),
            Action::SetForwarding(_) => self.sync_forwarding(),
            Action::SendGratuitous => inst.start_announcing(now),
            Action::Notify(state) => {
                let prio = inst.fsm.as_ref().map_or(0, |f| f.priority());
                inst.status.state = state_name(state).into();
                if state == State::Master {
                    inst.status.became_master += 1;
                }
                tracing::info!(instance = %inst.spec.name, state = state_name(state), priority = prio, "VRRP state changed");
                notify(
                    &self.notifier,
                    &inst.spec.notify,
                    "INSTANCE",
                    &inst.spec.name,
                    state,
                    prio,
                );
            }
        }
    }

    /// keepalived `vrrp_sync_master` / `vrrp_sync_backup`.
    fn follow_group(&mut self, i: usize, to: State, now: Instant) -> Vec<(usize, Vec<Action>)> {
        let Some(g) = self.instances[i].spec.sync_group else {
            return Vec::new();
        };
        let members = self.groups[g].members.clone();
        let mut out = Vec::new();
        for m in members.into_iter().filter(|&m| m != i) {
            let Some(f) = self.instances[m].fsm.as_mut() else {
                continue;
            };
            let acts = match to {
                State::Master => f.sync_master(now),
                State::Backup => f.sync_backup(now),
                _ => Vec::new(),
            };
            out.push((m, acts));
        }
        out
    }

    /// A group's notify scripts run once all its members are in one state.
    fn report_groups(&mut self) {
        for g in &mut self.groups {
            let states: Vec<State> = g
                .members
                .iter()
                .map(|&m| self.instances[m].state())
                .collect();
            let Some(&first) = states.first() else {
                continue;
            };
            if states.iter().all(|&s| s == first) && g.reported != Some(first) {
                g.reported = Some(first);
                tracing::info!(group = %g.name, state = state_name(first), "VRRP sync group changed");
                notify(&self.notifier, &g.notify, "GROUP", &g.name, first, 0);
            }
        }
    }

    fn sync_forwarding(&mut self) {
        let on = self
            .instances
            .iter()
            .any(|inst| inst.state() == State::Master);
        if self.forwarding_on != Some(on) {
            self.forwarding_on = Some(on);
            tracing::info!(forwarding = on, "data plane forwarding follows VRRP");
            self.forwarding.set_forwarding(on);
        }
    }

    fn report(&mut self) {
        let status: Vec<InstanceStatus> = self
            .instances
            .iter()
            .map(|inst| {
                let mut s = inst.status.clone();
                s.priority = inst.fsm.as_ref().map_or(s.base_priority, |f| f.priority());
                s
            })
            .collect();
        self.forwarding.report(&status);
    }

    fn shutdown(&mut self, now: Instant) {
        for i in 0..self.instances.len() {
            let acts = match self.instances[i].fsm.as_mut() {
                Some(f) => f.shutdown(now),
                None => Vec::new(),
            };
            self.execute(i, acts, now);
        }
        self.sync_forwarding();
        self.report();
    }
}

/// keepalived's notify scripts: the state's own script as written, then
/// `notify` with `INSTANCE|GROUP NAME STATE PRIORITY` appended.
fn notify(notifier: &Notifier, n: &Notifies, kind: &str, name: &str, state: State, priority: u8) {
    let label = state_name(state);
    let own = match state {
        State::Master => &n.master,
        State::Backup => &n.backup,
        State::Fault => &n.fault,
        State::Init => &n.stop,
    };
    let why = format!("{kind} {name} {label}");
    if let Some(script) = own {
        notifier.spawn(script, &why);
    }
    if let Some(generic) = &n.generic {
        let mut script = generic.clone();
        script.command = format!("{} {kind} \"{name}\" {label} {priority}", generic.command);
        notifier.spawn(&script, &why);
    }
}
