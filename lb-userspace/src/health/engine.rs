//! Scheduling checks and deciding UP/DOWN, as keepalived 2.2.7's checker
//! process does (keepalived/check/check_api.c, check_tcp.c, check_misc.c,
//! ipwrapper.c).
//!
//! One task per checker probes on its own clock and keeps its own
//! retry state; it reports every result to one central task, which owns
//! the reals' and virtual servers' states, runs the notify scripts and
//! publishes a [`HealthView`] on a watch channel. [`apply`] turns a view
//! and the configured specs into what the data plane should carry.
//!
//! Identity: keepalived checks a real once per `virtual_server` block, so
//! a virtual_server_group's reals are checked once and their state is
//! reported for every (address, port) of the group.

use std::{
    collections::{BTreeMap, HashMap},
    hash::BuildHasher,
    net::IpAddr,
    ops::Range,
    sync::Arc,
    time::Duration,
};

use anyhow::{Context, Result};
use tokio::{
    sync::{mpsc, oneshot, watch},
    task::JoinHandle,
    time::Instant,
};

use super::{
    notify::Notifier,
    quorum::{Quorum, QuorumState, SorryMove, Transition},
    Checker, Outcome, RealId, Timing,
};
use crate::{
    config::{
        self,
        model::{self as cm, CheckerKind, Config, RealServer, Script, VirtualServer, VsAddress},
        resolve,
    },
    model::{RealSpec, ServiceId, ServiceSpec},
};

/// With `warmup 0`, first checks are still spread over this much (or the
/// delay_loop if shorter), so thousands of checkers do not fire at once;
/// keepalived likewise waits a second (BOOTSTRAP_DELAY) before any check.
pub const JITTER_WINDOW: Duration = Duration::from_secs(1);

/// How long shutdown waits for each omega notify script (keepalived gives
/// scripts run while stopping one second, then kills them).
pub const OMEGA_LIMIT: Duration = Duration::from_secs(1);

/// The weight a sorry server is given (keepalived's `alloc_ssvr`).
pub const SORRY_WEIGHT: u32 = 1;

/// keepalived clamps effective weights to IPVS's range (`real_weight`).
const MAX_WEIGHT: i64 = i32::MAX as i64;

// ---------------------------------------------------------------- the view

/// What the director needs from health checking, for every real and
/// service of the configuration given to the engine.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HealthView {
    pub reals: BTreeMap<RealId, RealHealth>,
    pub services: BTreeMap<ServiceId, ServiceHealth>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RealHealth {
    pub up: bool,
    /// Effective weight: the configured one, or what misc_dynamic set.
    pub weight: u32,
    /// When down, stay listed with weight 0 instead of being removed.
    pub inhibit_on_failure: bool,
    /// Why it is in this state, e.g. "TCP_CHECK 10.0.0.11:80 failed
    /// (connection refused)".
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceHealth {
    /// keepalived's `quorum_state_up`.
    pub quorum_ok: bool,
    /// The sorry server is in and the reals are out (quorum lost with a
    /// sorry server configured).
    pub sorry_active: bool,
    pub sorry_server: Option<SorryServer>,
    /// Sum of the effective weights of the reals that are up.
    pub live_weight: u64,
    /// After keepalived's corrections.
    pub quorum: Quorum,
}

/// A configured sorry server, at the service's port (DR cannot change it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SorryServer {
    pub addr: IpAddr,
    pub port: u16,
    /// `sorry_server_inhibit`: listed with weight 0 while not needed.
    pub inhibit: bool,
}

/// The data plane's specs under `view`: a real that is down is removed, or
/// kept with weight 0 with inhibit_on_failure; a real that is up gets its
/// effective weight. A service that lost quorum with a sorry server gets
/// the sorry server instead of its reals (inhibited reals stay at weight
/// 0). Services and reals the view does not know (runtime edits) are left
/// as they are. `mac_of` and `is_local` fill the sorry server's entry as
/// `config::service_specs` does for reals; an unknown MAC is left zero
/// (unresolved).
pub fn apply(
    specs: &[ServiceSpec],
    view: &HealthView,
    mac_of: impl Fn(IpAddr) -> Option<[u8; 6]>,
    is_local: impl Fn(IpAddr) -> bool,
) -> Vec<ServiceSpec> {
    specs
        .iter()
        .map(|spec| apply_service(spec, view, &mac_of, &is_local))
        .collect()
}

fn apply_service(
    spec: &ServiceSpec,
    view: &HealthView,
    mac_of: &impl Fn(IpAddr) -> Option<[u8; 6]>,
    is_local: &impl Fn(IpAddr) -> bool,
) -> ServiceSpec {
    let service = view.services.get(&spec.id);
    let sorry_in = service.is_some_and(|s| s.sorry_active);
    let mut reals: Vec<RealSpec> = spec
        .reals
        .iter()
        .filter_map(|r| {
            let id = RealId {
                service: spec.id,
                addr: r.addr,
                port: r.port,
            };
            let Some(h) = view.reals.get(&id) else {
                return Some(*r);
            };
            match (h.up && !sorry_in, h.inhibit_on_failure) {
                (true, _) => Some(RealSpec {
                    weight: h.weight,
                    ..*r
                }),
                (false, true) => Some(RealSpec { weight: 0, ..*r }),
                (false, false) => None,
            }
        })
        .collect();
    if let Some(sorry) = service.and_then(|s| s.sorry_server) {
        let existing = reals
            .iter()
            .position(|r| (r.addr, r.port) == (sorry.addr, sorry.port));
        let local = is_local(sorry.addr);
        let entry = |weight| RealSpec {
            addr: sorry.addr,
            port: sorry.port,
            weight,
            mac: mac_of(sorry.addr).unwrap_or([0; 6]),
            local,
        };
        match (sorry_in, sorry.inhibit, existing) {
            // A sorry server that is also a real takes that entry over.
            (true, _, Some(i)) => reals[i].weight = SORRY_WEIGHT,
            (true, _, None) => reals.push(entry(SORRY_WEIGHT)),
            (false, true, None) => reals.push(entry(0)),
            _ => {}
        }
    }
    ServiceSpec {
        reals,
        ..spec.clone()
    }
}

// ---------------------------------------------------------------- the plan

/// Everything the configuration says about checking, flattened: indices
/// link checkers to reals and reals to virtual servers.
struct Plan {
    vss: Vec<VsPlan>,
    reals: Vec<RealPlan>,
    checkers: Vec<CheckerPlan>,
}

struct VsPlan {
    /// Identity across reloads (keepalived's `vs_iseq`).
    key: String,
    /// For logs: "TCP 10.0.0.100:80", "group WEB".
    label: String,
    endpoints: Vec<ServiceId>,
    quorum: Quorum,
    sorry: Option<cm::SorryServer>,
    quorum_up: Option<Script>,
    quorum_down: Option<Script>,
    omega: bool,
    reals: Range<usize>,
}

struct RealPlan {
    vs: usize,
    /// Identity within its virtual server across reloads.
    key: (IpAddr, Option<u16>),
    /// For logs: "10.0.0.11:80".
    label: String,
    /// The real's port for each endpoint of its virtual server.
    ports: Vec<u16>,
    /// Configured weight (keepalived's `iweight`).
    weight: u32,
    inhibit: bool,
    notify_up: Option<Script>,
    notify_down: Option<Script>,
    checkers: Range<usize>,
}

struct CheckerPlan {
    real: usize,
    /// Identity within its real across reloads: what it probes and how,
    /// not its timing (keepalived's `compare_*_check`).
    key: String,
    /// `Checker::describe()`.
    name: String,
    timing: Timing,
    log_all_failures: bool,
    probe: Arc<dyn Checker>,
}

impl Plan {
    fn build<F>(config: &Config, mut factory: F) -> Result<Plan>
    where
        F: FnMut(&Config, &VirtualServer, &RealServer, &cm::Checker) -> Result<Box<dyn Checker>>,
    {
        let mut plan = Plan {
            vss: Vec::new(),
            reals: Vec::new(),
            checkers: Vec::new(),
        };
        for vs in &config.virtual_servers {
            // A virtual server the data plane cannot carry is refused by
            // the director; there is nothing to check for it.
            let Some(specs) = endpoint_specs(config, vs) else {
                continue;
            };
            plan.add_vs(config, vs, &specs, &mut factory)?;
        }
        Ok(plan)
    }

    fn add_vs<F>(
        &mut self,
        config: &Config,
        vs: &VirtualServer,
        specs: &[ServiceSpec],
        factory: &mut F,
    ) -> Result<()>
    where
        F: FnMut(&Config, &VirtualServer, &RealServer, &cm::Checker) -> Result<Box<dyn Checker>>,
    {
        let index = self.vss.len();
        let label = vs_label(vs, specs);
        let first_real = self.reals.len();
        let mut total_weight = 0u64;
        for (i, rs) in vs.real_servers.iter().enumerate() {
            let eff = resolve::real_server(&config.global, vs, rs);
            total_weight += u64::from(eff.weight);
            let ports: Vec<u16> = specs.iter().map(|s| s.reals[i].port).collect();
            let first_checker = self.checkers.len();
            let mut seen: HashMap<String, usize> = HashMap::new();
            for ck in &rs.checkers {
                let probe = factory(config, vs, rs, ck).with_context(|| {
                    format!("{} of real server {} in {label}", ck.name(), rs.addr)
                })?;
                let eff_ck = resolve::checker(&config.global, vs, rs, ck);
                let base = checker_key(ck, &eff_ck);
                let n = seen.entry(base.clone()).or_default();
                *n += 1;
                self.checkers.push(CheckerPlan {
                    real: self.reals.len(),
                    key: format!("{base}#{n}"),
                    name: probe.describe(),
                    timing: timing_of(&eff_ck),
                    log_all_failures: eff_ck.log_all_failures,
                    probe: Arc::from(probe),
                });
            }
            self.reals.push(RealPlan {
                vs: index,
                key: (rs.addr, rs.port.or(vs_port(vs))),
                label: endpoint_label(rs.addr, ports.first().copied().or(rs.port).unwrap_or(0)),
                ports,
                weight: eff.weight,
                inhibit: eff.inhibit_on_failure,
                notify_up: rs.notify_up.clone(),
                notify_down: rs.notify_down.clone(),
                checkers: first_checker..self.checkers.len(),
            });
        }
        self.vss.push(VsPlan {
            key: format!("{:?} {:?}", vs.protocol(), vs.address),
            label,
            endpoints: specs.iter().map(|s| s.id).collect(),
            quorum: Quorum::new(vs.quorum, vs.hysteresis, total_weight),
            sorry: vs.sorry_server.clone(),
            quorum_up: vs.quorum_up.clone(),
            quorum_down: vs.quorum_down.clone(),
            omega: vs.omega,
            reals: first_real..self.reals.len(),
        });
        Ok(())
    }
}

/// The services one virtual server stands for, with its reals' ports, the
/// same way the director computes them (`config::service_specs`).
fn endpoint_specs(config: &Config, vs: &VirtualServer) -> Option<Vec<ServiceSpec>> {
    let groups = match &vs.address {
        VsAddress::Group(name) => config
            .virtual_server_groups
            .iter()
            .filter(|g| &g.name == name)
            .cloned()
            .collect(),
        _ => Vec::new(),
    };
    let one = Config {
        virtual_server_groups: groups,
        virtual_servers: vec![vs.clone()],
        ..Config::default()
    };
    let specs = config::service_specs(&one, |_| Some([0; 6]), |_| false).ok()?;
    specs
        .iter()
        .all(|s| s.reals.len() == vs.real_servers.len())
        .then_some(specs)
}

fn vs_port(vs: &VirtualServer) -> Option<u16> {
    match vs.address {
        VsAddress::Ip { port, .. } => port,
        _ => None,
    }
}

fn vs_label(vs: &VirtualServer, specs: &[ServiceSpec]) -> String {
    match (&vs.address, specs) {
        (VsAddress::Group(name), _) => format!("group {name}"),
        (_, [one]) => one.id.to_string(),
        (address, _) => format!("{address:?}"),
    }
}

fn endpoint_label(addr: IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// What a checker probes, without where it was written or its timing.
fn checker_key(ck: &cm::Checker, eff: &resolve::EffectiveChecker) -> String {
    let mut kind = ck.kind.clone();
    let nowhere = config::Pos::file_start("");
    match &mut kind {
        CheckerKind::Http(h) | CheckerKind::Ssl(h) => {
            for url in &mut h.urls {
                url.pos = nowhere.clone();
            }
        }
        CheckerKind::File(f) => {
            if let Some((_, pos)) = &mut f.track_file {
                *pos = nowhere;
            }
        }
        _ => {}
    }
    format!(
        "{kind:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?}",
        eff.connect_ip,
        eff.connect_port,
        eff.bindto,
        eff.bind_port,
        eff.bind_if,
        eff.fwmark,
        eff.connect_timeout
    )
}

fn timing_of(eff: &resolve::EffectiveChecker) -> Timing {
    Timing {
        delay_loop: eff.delay_loop,
        retry: eff.retry,
        delay_before_retry: eff.delay_before_retry,
        warmup: eff.warmup,
        alpha: eff.alpha,
    }
}

// ------------------------------------------------------- one checker's state

/// A checker's own state (keepalived's `is_up`, `has_run`, `retry_it`,
/// and misc_dynamic's weight), kept by its task.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Progress {
    up: bool,
    has_run: bool,
    /// Failures counted toward `retry` since the last success.
    retry_it: u32,
    /// misc_dynamic: the weight of the last success (None: configured).
    weight: Option<u32>,
    /// The last outcome's reason.
    reason: String,
}

impl Progress {
    /// A checker as configured: without alpha it starts up; with alpha,
    /// down. Either way its first failure counts at once ("one failure is
    /// enough initially", check_data.c sets retry_it = retry).
    fn fresh(t: &Timing) -> Progress {
        Progress {
            up: !t.alpha,
            has_run: false,
            retry_it: t.retry,
            weight: None,
            reason: "not checked yet".into(),
        }
    }

    /// Records one probe's outcome; returns the delay to the next probe.
    /// A failure while up is retried `retry` times `delay_before_retry`
    /// apart before the checker goes down (check_tcp.c `tcp_epilog`,
    /// check_misc.c); while down, probes simply follow delay_loop.
    fn record(&mut self, o: &Outcome, t: &Timing) -> Duration {
        self.reason = o.reason.clone();
        let delay = if o.up {
            self.up = true;
            self.retry_it = 0;
            self.weight = o.weight;
            t.delay_loop
        } else if (self.up || !self.has_run) && self.retry_it < t.retry {
            self.retry_it += 1;
            t.delay_before_retry
        } else {
            if self.up || !self.has_run {
                self.up = false;
                self.retry_it = 0;
                // keepalived drops the dynamic weight with the failure.
                self.weight = None;
            }
            t.delay_loop
        };
        self.has_run = true;
        delay
    }
}

/// One probe's result, from a checker task to the central task.
struct Report {
    checker: usize,
    progress: Progress,
    next: Duration,
}

async fn run_checker(
    index: usize,
    probe: Arc<dyn Checker>,
    timing: Timing,
    mut progress: Progress,
    first: Duration,
    reports: mpsc::UnboundedSender<Report>,
) {
    tokio::time::sleep(first).await;
    loop {
        let outcome = probe.check().await;
        let next = progress.record(&outcome, &timing);
        let report = Report {
            checker: index,
            progress: progress.clone(),
            next,
        };
        if reports.send(report).is_err() {
            return;
        }
        tokio::time::sleep(next).await;
    }
}

// ------------------------------------------------------------- the central

#[derive(Clone, Debug)]
struct RealState {
    alive: bool,
    /// Effective weight (keepalived's `real_weight(effective_weight)`).
    weight: u32,
    reason: String,
}

/// The engine's whole state; owned by the central task while running.
struct Core {
    plan: Plan,
    checkers: Vec<Progress>,
    /// When each checker probes next (kept across reloads: its phase).
    next_due: Vec<Instant>,
    /// When `next_due` was planned: the tasks start later (after the data
    /// plane is loaded), and keep each checker's offset from this moment so
    /// the spread is not lost in between.
    planned_at: Instant,
    reals: Vec<RealState>,
    vss: Vec<QuorumState>,
    notifier: Notifier,
    view: watch::Sender<HealthView>,
    /// Notifications decided before the engine runs, started with it.
    pending: Vec<(Script, String)>,
    /// The tasks run: notifications start at once.
    running: bool,
}

impl Core {
    /// A fresh start: every checker as configured, first probes spread
    /// over their warmup.
    fn fresh(plan: Plan, notifier: Notifier, view: watch::Sender<HealthView>) -> Core {
        let now = Instant::now();
        let checkers: Vec<Progress> = plan
            .checkers
            .iter()
            .map(|c| Progress::fresh(&c.timing))
            .collect();
        let next_due = plan
            .checkers
            .iter()
            .enumerate()
            .map(|(i, c)| now + first_delay(&c.timing, i as u64))
            .collect();
        let mut core = Core {
            checkers,
            next_due,
            planned_at: now,
            reals: Vec::new(),
            vss: plan
                .vss
                .iter()
                .map(|v| QuorumState::initial(v.quorum))
                .collect(),
            plan,
            notifier,
            view,
            pending: Vec::new(),
            running: false,
        };
        core.reals = (0..core.plan.reals.len())
            .map(|r| core.initial_real(r))
            .collect();
        core.settle_quorums();
        core.view.send_replace(core.full_view());
        core
    }

    fn initial_real(&self, r: usize) -> RealState {
        let plan = &self.plan.reals[r];
        let alive = self.all_up(r);
        let reason = if plan.checkers.is_empty() {
            "no checkers".to_owned()
        } else if alive {
            "not checked yet".to_owned()
        } else {
            "alpha: not checked yet".to_owned()
        };
        RealState {
            alive,
            weight: self.effective_weight(r),
            reason,
        }
    }

    /// `update_quorum_state(vs, init=true)` for every virtual server, as
    /// keepalived does when it applies a configuration.
    fn settle_quorums(&mut self) {
        for vs in 0..self.plan.vss.len() {
            self.update_quorum(vs, true);
        }
    }

    fn all_up(&self, r: usize) -> bool {
        self.plan.reals[r]
            .checkers
            .clone()
            .all(|c| self.checkers[c].up)
    }

    /// The configured weight plus each checker's misc_dynamic change
    /// (check_misc.c keeps `cur_weight` per checker as a delta).
    fn effective_weight(&self, r: usize) -> u32 {
        let plan = &self.plan.reals[r];
        let base = i64::from(plan.weight);
        let delta: i64 = plan
            .checkers
            .clone()
            .filter_map(|c| self.checkers[c].weight)
            .map(|w| i64::from(w) - base)
            .sum();
        (base + delta).clamp(0, MAX_WEIGHT) as u32
    }

    fn live_weight(&self, vs: usize) -> u64 {
        self.plan.vss[vs]
            .reals
            .clone()
            .filter(|&r| self.reals[r].alive)
            .map(|r| u64::from(self.reals[r].weight))
            .sum()
    }

    // ---- events

    fn on_report(&mut self, report: Report) {
        let c = report.checker;
        self.next_due[c] = Instant::now() + report.next;
        let before = std::mem::replace(&mut self.checkers[c], report.progress);
        let (real, alpha) = (
            self.plan.checkers[c].real,
            self.plan.checkers[c].timing.alpha,
        );
        let now_up = self.checkers[c].up;
        if self.checkers[c].retry_it > 0 {
            self.log_retry(c);
        }
        // check_misc.c changes the weight before the state.
        self.refresh_weight(real);
        if before.up != now_up {
            self.checker_changed(c, before.has_run);
        } else if !before.has_run && (alpha || !now_up) {
            self.first_result_confirms(c);
        }
    }

    fn log_retry(&self, c: usize) {
        let (plan, p) = (&self.plan.checkers[c], &self.checkers[c]);
        let line = format!(
            "{} failed ({}), retry {}/{}",
            plan.name, p.reason, p.retry_it, plan.timing.retry
        );
        if plan.log_all_failures {
            tracing::info!("{line}");
        } else {
            tracing::debug!("{line}");
        }
    }

    /// A checker went up or down: recompute its real (up only when all its
    /// checkers are), then the quorum.
    fn checker_changed(&mut self, c: usize, retried: bool) {
        let r = self.plan.checkers[c].real;
        let what = self.describe_change(c, retried);
        let alive = self.all_up(r);
        let (real, vs) = (&self.plan.reals[r], &self.plan.vss[self.plan.reals[r].vs]);
        if alive == self.reals[r].alive {
            let failing = real
                .checkers
                .clone()
                .filter(|&i| !self.checkers[i].up)
                .count();
            tracing::info!(
                "{what}: real {} stays DOWN in {} ({failing} checker(s) failing)",
                real.label,
                vs.label
            );
            return;
        }
        let state = if alive { "UP" } else { "DOWN" };
        tracing::info!("{what}: real {} {state} in {}", real.label, vs.label);
        self.reals[r].alive = alive;
        self.reals[r].reason = what;
        self.publish_real(r);
        self.notify_real(r);
        self.update_quorum(self.plan.reals[r].vs, false);
    }

    /// The first result of an alpha checker is announced even when it
    /// confirms the state (ipwrapper.c `update_svr_checker_state`).
    fn first_result_confirms(&mut self, c: usize) {
        let r = self.plan.checkers[c].real;
        let what = self.describe_change(c, false);
        let (real, vs) = (&self.plan.reals[r], &self.plan.vss[self.plan.reals[r].vs]);
        let state = if self.reals[r].alive { "UP" } else { "DOWN" };
        tracing::info!("{what}: real {} stays {state} in {}", real.label, vs.label);
        if !self.reals[r].alive {
            self.reals[r].reason = what;
            self.publish_real(r);
        }
        self.notify_real(r);
    }

    /// "TCP_CHECK 10.0.0.11:80 failed (connection refused) after 2
    /// retries"; a first probe is judged without retries.
    fn describe_change(&self, c: usize, retried: bool) -> String {
        let (plan, p) = (&self.plan.checkers[c], &self.checkers[c]);
        if p.up {
            return format!("{} succeeded ({})", plan.name, p.reason);
        }
        match if retried { plan.timing.retry } else { 0 } {
            0 => format!("{} failed ({})", plan.name, p.reason),
            1 => format!("{} failed ({}) after 1 retry", plan.name, p.reason),
            n => format!("{} failed ({}) after {n} retries", plan.name, p.reason),
        }
    }

    /// misc_dynamic changed the real's weight (ipwrapper.c update_svr_wgt).
    fn refresh_weight(&mut self, r: usize) {
        let weight = self.effective_weight(r);
        let old = self.reals[r].weight;
        if weight == old {
            return;
        }
        let (real, vs) = (&self.plan.reals[r], &self.plan.vss[self.plan.reals[r].vs]);
        let active = if self.reals[r].alive { "" } else { "in" };
        tracing::info!(
            "Changing weight from {old} to {weight} for {active}active real {} of {}",
            real.label,
            vs.label
        );
        self.reals[r].weight = weight;
        self.publish_real(r);
        self.update_quorum(real.vs, false);
    }

    fn update_quorum(&mut self, vs: usize, init: bool) {
        let plan = &self.plan.vss[vs];
        let live = self.live_weight(vs);
        let change = self.vss[vs].update(plan.quorum, plan.sorry.is_some(), live, init);
        if let Some(t) = change {
            self.log_quorum(vs, &t);
            let script = if t.gained {
                &plan.quorum_up
            } else {
                &plan.quorum_down
            };
            if let Some(s) = script.clone() {
                self.run(
                    s,
                    format!(
                        "{} for {}",
                        if t.gained { "quorum up" } else { "quorum down" },
                        plan.label
                    ),
                );
            }
        }
        self.publish_service(vs);
    }

    fn log_quorum(&self, vs: usize, t: &Transition) {
        let plan = &self.plan.vss[vs];
        // In DR the sorry server is reached on the service's port.
        let port = plan.endpoints.first().map_or(0, |e| e.port);
        let sorry = plan
            .sorry
            .as_ref()
            .map(|s| endpoint_label(s.addr, port))
            .unwrap_or_default();
        let how = match (t.sorry, plan.sorry.as_ref().is_some_and(|s| s.inhibit)) {
            (SorryMove::In, false) => format!(": sorry server {sorry} added, reals out"),
            (SorryMove::In, true) => format!(": sorry server {sorry} enabled, reals out"),
            (SorryMove::Out, false) => format!(": sorry server {sorry} removed, reals back"),
            (SorryMove::Out, true) => format!(": sorry server {sorry} disabled, reals back"),
            (SorryMove::None, _) => String::new(),
        };
        tracing::info!("{t} for {}{how}", plan.label);
    }

    /// notify_up or notify_down, per the real's current state.
    fn notify_real(&mut self, r: usize) {
        let real = &self.plan.reals[r];
        let (script, what) = if self.reals[r].alive {
            (&real.notify_up, "up")
        } else {
            (&real.notify_down, "down")
        };
        if let Some(s) = script.clone() {
            let why = format!(
                "real {} {what} in {}",
                real.label, self.plan.vss[real.vs].label
            );
            self.run(s, why);
        }
    }

    /// Starts a script now, or once the engine runs.
    fn run(&mut self, script: Script, why: String) {
        if self.running {
            self.notifier.spawn(&script, &why);
        } else {
            self.pending.push((script, why));
        }
    }

    fn start_running(&mut self) {
        self.running = true;
        for (script, why) in self.pending.drain(..) {
            self.notifier.spawn(&script, &why);
        }
    }

    // ---- the view

    fn real_health(&self, r: usize) -> RealHealth {
        let (plan, st) = (&self.plan.reals[r], &self.reals[r]);
        RealHealth {
            up: st.alive,
            weight: st.weight,
            inhibit_on_failure: plan.inhibit,
            reason: st.reason.clone(),
        }
    }

    fn service_health(&self, vs: usize, endpoint: usize) -> ServiceHealth {
        let plan = &self.plan.vss[vs];
        let port = plan.endpoints[endpoint].port;
        ServiceHealth {
            quorum_ok: self.vss[vs].up,
            sorry_active: self.vss[vs].sorry_in,
            sorry_server: plan.sorry.as_ref().map(|s| SorryServer {
                addr: s.addr,
                port,
                inhibit: s.inhibit,
            }),
            live_weight: self.live_weight(vs),
            quorum: plan.quorum,
        }
    }

    fn real_ids(&self, r: usize) -> impl Iterator<Item = RealId> + '_ {
        let plan = &self.plan.reals[r];
        self.plan.vss[plan.vs]
            .endpoints
            .iter()
            .zip(&plan.ports)
            .map(move |(service, port)| RealId {
                service: *service,
                addr: plan.key.0,
                port: *port,
            })
    }

    fn full_view(&self) -> HealthView {
        let mut view = HealthView::default();
        for r in 0..self.plan.reals.len() {
            let health = self.real_health(r);
            for id in self.real_ids(r) {
                view.reals.insert(id, health.clone());
            }
        }
        for (vs, plan) in self.plan.vss.iter().enumerate() {
            for (e, id) in plan.endpoints.iter().enumerate() {
                view.services.insert(*id, self.service_health(vs, e));
            }
        }
        view
    }

    fn publish_real(&self, r: usize) {
        let health = self.real_health(r);
        let ids: Vec<RealId> = self.real_ids(r).collect();
        self.view.send_modify(|v| {
            for id in ids {
                v.reals.insert(id, health.clone());
            }
        });
    }

    fn publish_service(&self, vs: usize) {
        let entries: Vec<(ServiceId, ServiceHealth)> = self.plan.vss[vs]
            .endpoints
            .iter()
            .enumerate()
            .map(|(e, id)| (*id, self.service_health(vs, e)))
            .collect();
        self.view.send_if_modified(|v| {
            let mut changed = false;
            for (id, health) in entries {
                if v.services.get(&id) != Some(&health) {
                    v.services.insert(id, health);
                    changed = true;
                }
            }
            changed
        });
    }
}

/// The first probe's delay: random in [0, warmup], or in the jitter window
/// when warmup is 0 (check_api.c `register_checkers_thread`).
fn first_delay(t: &Timing, salt: u64) -> Duration {
    let window = if t.warmup.is_zero() {
        t.delay_loop.min(JITTER_WINDOW)
    } else {
        t.warmup
    };
    let r = std::collections::hash_map::RandomState::new().hash_one(salt);
    let nanos = (window.as_nanos().min(u128::from(u64::MAX)) * u128::from(r)) >> 64;
    Duration::from_nanos(nanos as u64)
}

// ---------------------------------------------------------------- reloads

/// Where a previous engine's states are found by identity.
struct Previous {
    core: Core,
    vss: HashMap<String, usize>,
    reals: HashMap<(String, IpAddr, Option<u16>), usize>,
    checkers: HashMap<(String, IpAddr, Option<u16>, String), usize>,
}

impl Previous {
    fn new(core: Core) -> Previous {
        let plan = &core.plan;
        let vs_key = |r: &RealPlan| plan.vss[r.vs].key.clone();
        Previous {
            vss: plan
                .vss
                .iter()
                .enumerate()
                .map(|(i, v)| (v.key.clone(), i))
                .collect(),
            reals: plan
                .reals
                .iter()
                .enumerate()
                .map(|(i, r)| ((vs_key(r), r.key.0, r.key.1), i))
                .collect(),
            checkers: plan
                .checkers
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let r = &plan.reals[c.real];
                    ((vs_key(r), r.key.0, r.key.1, c.key.clone()), i)
                })
                .collect(),
            core,
        }
    }

    fn real(&self, plan: &Plan, r: usize) -> Option<usize> {
        let real = &plan.reals[r];
        let key = (plan.vss[real.vs].key.clone(), real.key.0, real.key.1);
        self.reals.get(&key).copied()
    }

    fn checker(&self, plan: &Plan, c: usize) -> Option<usize> {
        let ck = &plan.checkers[c];
        let real = &plan.reals[ck.real];
        let key = (
            plan.vss[real.vs].key.clone(),
            real.key.0,
            real.key.1,
            ck.key.clone(),
        );
        self.checkers.get(&key).copied()
    }
}

/// A carried checker's state under its new timing (ipwrapper.c
/// `migrate_checkers`): a retry count beyond the new `retry` leaves one
/// more failure to go.
fn carried(old: &Progress, t: &Timing) -> Progress {
    let retry_it = match (old.has_run, old.retry_it, t.retry) {
        (false, _, _) => t.retry,
        (true, 0, _) | (true, _, 0) => 0,
        (true, n, retry) => n.min(retry - 1),
    };
    Progress {
        retry_it,
        ..old.clone()
    }
}

impl Core {
    /// The engine for a new configuration, keeping the states of unchanged
    /// (virtual server, real, checker) triples and each checker's phase, so
    /// a reload neither flaps reals nor bursts probes (ipwrapper.c
    /// `clear_diff_services`).
    fn reloaded(
        plan: Plan,
        prev: Core,
        notifier: Notifier,
        view: watch::Sender<HealthView>,
    ) -> Core {
        let prev = Previous::new(prev);
        let now = Instant::now();
        let mut core = Core {
            checkers: Vec::with_capacity(plan.checkers.len()),
            next_due: Vec::with_capacity(plan.checkers.len()),
            planned_at: now,
            reals: Vec::new(),
            vss: Vec::new(),
            plan,
            notifier,
            view,
            pending: prev.core.pending.clone(),
            running: false,
        };
        for r in 0..core.plan.reals.len() {
            core.carry_checkers(r, &prev, now);
        }
        core.reals = (0..core.plan.reals.len())
            .map(|r| core.carry_real(r, &prev))
            .collect();
        core.vss = (0..core.plan.vss.len())
            .map(|vs| core.carry_vs(vs, &prev))
            .collect();
        core.farewell(&prev);
        core.settle_quorums();
        core.view.send_replace(core.full_view());
        core
    }

    /// The checkers of real `r`: carried when they existed before, else
    /// new; a new checker on a real that is failing (or was down and never
    /// checked) starts as at startup, otherwise up (ipwrapper.c
    /// `migrate_checkers`).
    fn carry_checkers(&mut self, r: usize, prev: &Previous, now: Instant) {
        let range = self.plan.reals[r].checkers.clone();
        let old: Vec<Option<usize>> = range.clone().map(|c| prev.checker(&self.plan, c)).collect();
        let carried_states: Vec<&Progress> = old
            .iter()
            .flatten()
            .map(|&o| &prev.core.checkers[o])
            .collect();
        let failing = carried_states.iter().any(|p| p.has_run && !p.up);
        let any_run = carried_states.iter().any(|p| p.has_run);
        let was_alive = prev
            .real(&self.plan, r)
            .is_some_and(|pr| prev.core.reals[pr].alive);
        let as_at_startup = failing || (!was_alive && !any_run);
        for (c, old) in range.zip(old) {
            let t = self.plan.checkers[c].timing;
            let (progress, due) = match old {
                Some(o) => {
                    // An overdue checker gets the usual first-check jitter
                    // rather than "now", so a reload cannot clump them.
                    let due = match prev.core.next_due[o] {
                        due if due <= now => now + first_delay(&t, c as u64),
                        due => due.min(now + t.delay_loop),
                    };
                    (carried(&prev.core.checkers[o], &t), due)
                }
                None => {
                    let mut p = Progress::fresh(&t);
                    if !as_at_startup {
                        p.up = true;
                        p.retry_it = 0;
                    }
                    (p, now + first_delay(&t, c as u64))
                }
            };
            self.checkers.push(progress);
            self.next_due.push(due);
        }
    }

    /// Real `r` after a reload: as before if it existed, announcing a
    /// change its new checkers cause (a failing checker removed, say).
    fn carry_real(&mut self, r: usize, prev: &Previous) -> RealState {
        let mut state = self.initial_real(r);
        let Some(pr) = prev.real(&self.plan, r) else {
            return state;
        };
        let old = &prev.core.reals[pr];
        let (real, vs) = (&self.plan.reals[r], &self.plan.vss[self.plan.reals[r].vs]);
        if state.weight != old.weight {
            tracing::info!(
                "Changing weight from {} to {} for real {} of {} (reload)",
                old.weight,
                state.weight,
                real.label,
                vs.label
            );
        }
        if state.alive == old.alive {
            state.reason = old.reason.clone();
            return state;
        }
        let what = if state.alive { "UP" } else { "DOWN" };
        tracing::info!(
            "real {} {what} in {} (its checkers changed)",
            real.label,
            vs.label
        );
        state.reason = "checkers changed by reload".into();
        let script = if state.alive {
            &real.notify_up
        } else {
            &real.notify_down
        };
        if let Some(s) = script.clone() {
            self.pending
                .push((s, format!("real {} {what} in {}", real.label, vs.label)));
        }
        state
    }

    /// A virtual server's quorum state: as before if it existed (the sorry
    /// server leaves if it changed), else as at startup.
    fn carry_vs(&self, vs: usize, prev: &Previous) -> QuorumState {
        let plan = &self.plan.vss[vs];
        let Some(&pv) = prev.vss.get(&plan.key) else {
            return QuorumState::initial(plan.quorum);
        };
        let mut state = prev.core.vss[pv];
        if prev.core.plan.vss[pv].sorry != plan.sorry {
            state.sorry_in = false;
        }
        state
    }

    /// Reals and virtual servers gone with the reload: the reals that were
    /// up get their notify_down, virtual servers that had quorum their
    /// quorum_down (ipwrapper.c `clear_service_rs`, `update_vs_notifies`).
    fn farewell(&mut self, prev: &Previous) {
        let p = &prev.core;
        let kept_reals: std::collections::HashSet<usize> = (0..self.plan.reals.len())
            .filter_map(|r| prev.real(&self.plan, r))
            .collect();
        for (pr, real) in p.plan.reals.iter().enumerate() {
            if kept_reals.contains(&pr) || !p.reals[pr].alive {
                continue;
            }
            let vs = &p.plan.vss[real.vs];
            tracing::info!(
                "Removing real {} from {} (no longer configured)",
                real.label,
                vs.label
            );
            if let Some(s) = real.notify_down.clone() {
                self.pending
                    .push((s, format!("real {} removed from {}", real.label, vs.label)));
            }
        }
        let kept_vss: std::collections::HashSet<&String> =
            self.plan.vss.iter().map(|v| &v.key).collect();
        for (pv, vs) in p.plan.vss.iter().enumerate() {
            if kept_vss.contains(&vs.key) || !p.vss[pv].up {
                continue;
            }
            tracing::info!("Removing {} (no longer configured): quorum down", vs.label);
            if let Some(s) = vs.quorum_down.clone() {
                self.pending
                    .push((s, format!("quorum down for {} (removed)", vs.label)));
            }
        }
    }

    /// keepalived's omega at shutdown: the notify_down of every real that
    /// is up, then quorum_down, for the virtual servers with `omega`
    /// (ipwrapper.c `clear_service_vs` with stopping set).
    fn omega(&self) -> Vec<oneshot::Receiver<()>> {
        let mut waits = Vec::new();
        for plan in &self.plan.vss {
            if !plan.omega {
                continue;
            }
            for r in plan.reals.clone().filter(|&r| self.reals[r].alive) {
                let real = &self.plan.reals[r];
                tracing::info!("Shutting down real {} of {}", real.label, plan.label);
                if let Some(s) = &real.notify_down {
                    let why = format!("shutdown: real {} of {}", real.label, plan.label);
                    waits.push(self.notifier.spawn_bounded(s, &why, OMEGA_LIMIT));
                }
            }
            if let Some(s) = &plan.quorum_down {
                let why = format!("shutdown: quorum down for {}", plan.label);
                waits.push(self.notifier.spawn_bounded(s, &why, OMEGA_LIMIT));
            }
        }
        waits
    }
}

// ---------------------------------------------------------------- the API

/// The health-check engine of one configuration.
///
/// ```ignore
/// let mut engine = Engine::new(&config, |c, vs, rs, ck| checkers::build(...))?;
/// let mut view = engine.start();           // inside the tokio runtime
/// loop {
///     view.changed().await?;
///     let specs = health::engine::apply(&desired, &view.borrow(), mac_of, is_local);
///     dataplane.apply(&specs)?;
/// }
/// engine.reconfigure(&new_config, factory).await?;   // SIGHUP: states kept
/// engine.shutdown().await;                            // SIGTERM: omega
/// ```
pub struct Engine {
    /// The state while stopped (before `start`).
    idle: Option<Core>,
    running: Option<Running>,
    view: watch::Sender<HealthView>,
}

struct Running {
    checkers: Vec<JoinHandle<()>>,
    central: JoinHandle<Core>,
    stop: oneshot::Sender<()>,
}

/// Builds the probe of one checker block; the engine schedules it.
pub trait CheckerFactory:
    FnMut(&Config, &VirtualServer, &RealServer, &cm::Checker) -> Result<Box<dyn Checker>>
{
}

impl<F> CheckerFactory for F where
    F: FnMut(&Config, &VirtualServer, &RealServer, &cm::Checker) -> Result<Box<dyn Checker>>
{
}

impl Engine {
    /// Builds the checkers of every real of every virtual server the data
    /// plane can carry. The initial view (alpha reals down, quorum) is
    /// available at once from [`Engine::subscribe`]; nothing runs before
    /// [`Engine::start`].
    pub fn new(config: &Config, factory: impl CheckerFactory) -> Result<Engine> {
        let plan = Plan::build(config, factory)?;
        let (view, _) = watch::channel(HealthView::default());
        let core = Core::fresh(plan, notifier_for(config), view.clone());
        Ok(Engine {
            idle: Some(core),
            running: None,
            view,
        })
    }

    /// Starts the checks (needs a tokio runtime) and the notifications
    /// decided so far; returns the view, updated on every state change.
    pub fn start(&mut self) -> watch::Receiver<HealthView> {
        if let Some(core) = self.idle.take() {
            self.running = Some(spawn(core));
        }
        self.subscribe()
    }

    pub fn subscribe(&self) -> watch::Receiver<HealthView> {
        self.view.subscribe()
    }

    /// The current view.
    pub fn view(&self) -> HealthView {
        self.view.borrow().clone()
    }

    /// Applies a new configuration: unchanged (virtual server, real,
    /// checker) keep their states and phases; reals and virtual servers
    /// that are gone get their down notifications. On error (a checker
    /// that cannot be built) the running configuration stays as it was.
    /// Receivers of the view stay valid.
    pub async fn reconfigure(
        &mut self,
        config: &Config,
        factory: impl CheckerFactory,
    ) -> Result<()> {
        let plan = Plan::build(config, factory)?;
        let was_running = self.running.is_some();
        let core = match self.stop().await {
            Some(prev) => Core::reloaded(plan, prev, notifier_for(config), self.view.clone()),
            None => Core::fresh(plan, notifier_for(config), self.view.clone()),
        };
        if was_running {
            self.running = Some(spawn(core));
        } else {
            self.idle = Some(core);
        }
        Ok(())
    }

    /// Stops the checks and runs the omega notifications (notify_down of
    /// the reals that are up, quorum_down, for virtual servers with
    /// `omega`), waiting up to [`OMEGA_LIMIT`] for each.
    pub async fn shutdown(mut self) {
        let Some(core) = self.stop().await else {
            return;
        };
        for wait in core.omega() {
            let _ = wait.await;
        }
    }

    /// Stops the tasks; the state they had.
    async fn stop(&mut self) -> Option<Core> {
        let Some(running) = self.running.take() else {
            return self.idle.take();
        };
        for task in &running.checkers {
            task.abort();
        }
        for task in running.checkers {
            let _ = task.await;
        }
        let _ = running.stop.send(());
        match running.central.await {
            Ok(core) => Some(core),
            Err(e) => {
                tracing::error!("health engine task failed: {e}; states are not carried over");
                None
            }
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(running) = &self.running {
            for task in &running.checkers {
                task.abort();
            }
            running.central.abort();
        }
    }
}

fn notifier_for(config: &Config) -> Notifier {
    Notifier::new(config.global.script_user.clone())
}

/// Starts one task per checker at its due time, and the central task.
fn spawn(mut core: Core) -> Running {
    let (tx, rx) = mpsc::unbounded_channel();
    let checkers = core
        .plan
        .checkers
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let first = core.next_due[i].saturating_duration_since(core.planned_at);
            let task = run_checker(
                i,
                c.probe.clone(),
                c.timing,
                core.checkers[i].clone(),
                first,
                tx.clone(),
            );
            tokio::spawn(task)
        })
        .collect();
    core.start_running();
    let (stop, stopped) = oneshot::channel();
    Running {
        checkers,
        central: tokio::spawn(central(core, rx, stopped)),
        stop,
    }
}

/// Applies reports until stopped; then returns the state for a reload.
async fn central(
    mut core: Core,
    mut reports: mpsc::UnboundedReceiver<Report>,
    mut stop: oneshot::Receiver<()>,
) -> Core {
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => break,
            Some(report) = reports.recv() => core.on_report(report),
        }
    }
    // Results the stopped checkers sent last still count.
    while let Ok(report) = reports.try_recv() {
        core.on_report(report);
    }
    core
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing(retry: u32, alpha: bool) -> Timing {
        Timing {
            delay_loop: Duration::from_secs(10),
            retry,
            delay_before_retry: Duration::from_secs(3),
            warmup: Duration::ZERO,
            alpha,
        }
    }

    #[test]
    fn first_failure_counts_at_once_then_retries_while_up() {
        let t = timing(2, false);
        let mut p = Progress::fresh(&t);
        assert!(p.up);
        assert_eq!(p.record(&Outcome::down("refused"), &t), t.delay_loop);
        assert!(!p.up);
        // Down: no retries, probes follow delay_loop.
        assert_eq!(p.record(&Outcome::down("refused"), &t), t.delay_loop);
        assert_eq!(p.record(&Outcome::up("ok"), &t), t.delay_loop);
        assert!(p.up);
        // Up: two retries, then down on the third failure.
        assert_eq!(p.record(&Outcome::down("x"), &t), t.delay_before_retry);
        assert_eq!(p.record(&Outcome::down("x"), &t), t.delay_before_retry);
        assert!(p.up);
        assert_eq!(p.record(&Outcome::down("x"), &t), t.delay_loop);
        assert!(!p.up && p.retry_it == 0);
    }

    #[test]
    fn a_success_between_failures_resets_the_retries() {
        let t = timing(1, false);
        let mut p = Progress::fresh(&t);
        p.record(&Outcome::up("ok"), &t);
        p.record(&Outcome::down("x"), &t);
        p.record(&Outcome::up("ok"), &t);
        assert_eq!(p.record(&Outcome::down("x"), &t), t.delay_before_retry);
        assert!(p.up);
    }

    #[test]
    fn alpha_starts_down_and_retry_zero_fails_at_once() {
        let t = timing(0, true);
        let mut p = Progress::fresh(&t);
        assert!(!p.up);
        p.record(&Outcome::up("ok"), &t);
        assert!(p.up);
        p.record(&Outcome::down("x"), &t);
        assert!(!p.up);
    }

    #[test]
    fn dynamic_weight_is_dropped_with_the_failure() {
        let t = timing(0, false);
        let mut p = Progress::fresh(&t);
        p.record(
            &Outcome {
                up: true,
                reason: "exit 9".into(),
                weight: Some(7),
            },
            &t,
        );
        assert_eq!(p.weight, Some(7));
        p.record(&Outcome::down("exit 1"), &t);
        assert_eq!(p.weight, None);
    }

    #[test]
    fn carried_retry_count_fits_the_new_retry() {
        let t = timing(1, false);
        let old = Progress {
            up: true,
            has_run: true,
            retry_it: 3,
            weight: None,
            reason: String::new(),
        };
        assert_eq!(carried(&old, &t).retry_it, 0);
        let t3 = timing(3, false);
        assert_eq!(
            carried(
                &Progress {
                    retry_it: 2,
                    ..old.clone()
                },
                &t3
            )
            .retry_it,
            2
        );
        let unrun = Progress {
            has_run: false,
            ..old
        };
        assert_eq!(carried(&unrun, &t3).retry_it, 3);
    }

    #[test]
    fn first_delay_stays_in_its_window() {
        let mut t = timing(0, false);
        for i in 0..1000 {
            assert!(first_delay(&t, i) < JITTER_WINDOW);
        }
        t.warmup = Duration::from_secs(5);
        let delays: Vec<Duration> = (0..1000).map(|i| first_delay(&t, i)).collect();
        assert!(delays.iter().all(|d| *d <= t.warmup));
        assert!(delays.iter().any(|d| *d > Duration::from_secs(4)));
        assert!(delays.iter().any(|d| *d < Duration::from_secs(1)));
    }
}
