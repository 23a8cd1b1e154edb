//! `xvsd`: reads keepalived.conf, drives the data plane, and serves the
//! control socket and metrics. Signals as keepalived: SIGHUP reloads (only
//! the difference is applied), SIGTERM/SIGINT stop.

pub mod backend;
pub mod control;
pub mod director;
pub mod logging;
pub mod metrics;
pub mod neigh;
pub mod notify;
pub mod rates;

use crate::health::{checkers, engine::Engine};
use crate::{
    config::{self, Config, LoadOptions},
    dataplane::{pins, AttachMode, XdpDataplane, XdpOptions},
    vrrp::{self, runtime::InstanceStatus},
};
use anyhow::{bail, Context, Result};
use director::{Director, Identity};
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::{
    signal::unix::{signal, SignalKind},
    sync::mpsc,
};

/// The director, shared by the main loop, the control socket and metrics.
pub type Shared = Arc<Mutex<Director>>;

/// How often MACs of the reals are checked against the neighbour table
/// (one dump; cheap, and it never blocks the daemon).
const NEIGHBOUR_REFRESH: Duration = Duration::from_secs(1);

#[derive(Clone, Debug)]
pub struct Options {
    pub config_file: PathBuf,
    pub load: LoadOptions,
    pub interface: Option<String>,
    pub xdp_mode: AttachMode,
    /// `--backend`: XDP, the kernel's IPVS, or XDP falling back to IPVS.
    pub backend: backend::Backend,
    pub control_socket: PathBuf,
    pub metrics_listen: Option<SocketAddr>,
    pub instance: String,
    pub keep_dataplane_on_exit: bool,
    /// IPVS's expire_nodest_conn: reschedule the flows of reals that health
    /// checks take out, instead of letting them finish.
    pub expire_nodest_conn: bool,
    pub conn_table_size: u32,
    /// Run the vrrp_instances (keepalived's default). Off (`-C`), the
    /// director forwards at once and something else owns the VIPs.
    pub vrrp: bool,
}

/// Reads and checks the configuration; every problem is logged, one per line.
pub fn read_config(opts: &Options) -> Result<Config> {
    let (config, diags) = config::load(&opts.config_file, &opts.load);
    for d in &diags {
        match d.severity {
            config::Severity::Error => tracing::error!("{d}"),
            config::Severity::Warning => tracing::warn!("{d}"),
        }
    }
    match config {
        Some(c) => Ok(c),
        None => bail!("{} has errors", opts.config_file.display()),
    }
}

/// The interface to attach to: `--interface`, else the VRRP instance's.
fn interface(opts: &Options, config: &Config) -> Result<String> {
    if let Some(i) = &opts.interface {
        return Ok(i.clone());
    }
    let mut names = config
        .vrrp_instances
        .iter()
        .filter_map(|v| v.interface.as_ref().map(|i| i.value.clone()));
    match names.next() {
        Some(first) => Ok(first),
        None => bail!(
            "no interface to attach to: give --interface, or a vrrp_instance with `interface`"
        ),
    }
}

pub fn run(opts: Options) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(run_async(opts.clone()));
    // Dropping the runtime drops the socket tasks and with them the last
    // reference to the data plane: it detaches and unpins itself, or, with
    // --keep-dataplane-on-exit, stays pinned and attached.
    drop(runtime);
    let _ = std::fs::remove_file(&opts.control_socket);
    if result.is_ok() {
        if opts.keep_dataplane_on_exit {
            let pins = pins::instance_dir(&opts.instance)?;
            tracing::info!(pins = %pins.display(), "stopped; the data plane stays loaded, flows and all, for the next xvsd of this instance: without VRRP it keeps forwarding meanwhile, with VRRP it forwards again once that xvsd is MASTER");
        } else {
            tracing::info!("data plane detached; stopped");
        }
    }
    result
}

async fn run_async(opts: Options) -> Result<()> {
    let config = read_config(&opts)?;
    let iface = interface(&opts, &config)?;
    // A checker that cannot work (missing script, no port...) is a
    // configuration error, refused before anything is attached.
    let mut engine = Engine::new(&config, checkers::build)?;
    let started = backend::start(opts.backend, &opts, &iface, start_dataplane)?;
    let identity = Identity {
        instance: opts.instance.clone(),
        config_file: opts.config_file.display().to_string(),
        interface: iface.clone(),
        xdp_mode: started.mode.clone(),
        table_size: started.table_size,
    };
    let neigh = Box::new(neigh::KernelNeighbours);
    let mut director = Director::new(started.dataplane, neigh, identity, &config, engine.view())?;
    director.set_expire_nodest_conn(opts.expire_nodest_conn)?;
    tracing::info!(
        services = director.status().services,
        active = director.active(),
        "configuration applied"
    );
    if !opts.vrrp {
        director.set_active(true)?;
    }
    let shared: Shared = Arc::new(Mutex::new(director));

    let (reload_tx, mut reload_rx) = mpsc::channel(4);
    let listener = control::bind(&opts.control_socket)?;
    tokio::spawn(control::serve(listener, shared.clone(), reload_tx));
    if let Some(addr) = opts.metrics_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding metrics on {addr}"))?;
        tracing::info!(%addr, "serving /metrics");
        tokio::spawn(metrics::serve(listener, shared.clone()));
    }
    let vrrp_spec = vrrp::spec::Spec::from_config(&config);
    let vrrp = match (opts.vrrp, vrrp_spec.is_empty()) {
        (true, false) => Some(vrrp::runtime::start(
            vrrp_spec.clone(),
            &config.global,
            Box::new(DirectorForwarding(shared.clone())),
        )?),
        (false, false) => {
            tracing::warn!("VRRP is off (-C): this director forwards whatever reaches it");
            None
        }
        _ => None,
    };
    notify::ready();

    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut rates = tokio::time::interval(Duration::from_secs(rates::PERIOD_SECS));
    let mut neighbours = tokio::time::interval(NEIGHBOUR_REFRESH);
    let mut health = engine.start();
    loop {
        tokio::select! {
            _ = hup.recv() => reload(&opts, &shared, &mut engine, &vrrp_spec).await,
            Some(()) = reload_rx.recv() => reload(&opts, &shared, &mut engine, &vrrp_spec).await,
            Ok(()) = health.changed() => {
                let view = health.borrow_and_update().clone();
                if let Err(e) = lock(&shared).set_health(view) {
                    tracing::warn!(error = %format!("{e:#}"), "applying health state failed");
                }
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = rates.tick() => {
                if let Err(e) = lock(&shared).sample_rates() {
                    tracing::warn!(error = %format!("{e:#}"), "reading counters failed");
                }
            }
            _ = neighbours.tick() => refresh_neighbours(&shared),
        }
    }
    notify::stopping();
    tracing::info!("stopping");
    // A MASTER hands over first (priority 0), then stops forwarding and
    // removes its VIPs.
    if let Some(vrrp) = vrrp {
        vrrp.shutdown().await;
    }
    // Stops the checks and runs the omega notifiers.
    engine.shutdown().await;
    Ok(())
}

/// Loads the data plane with its maps pinned under /sys/fs/bpf/xvs/<instance>
/// — adopting the one a previous daemon left there, flows and all — and
/// attaches it, swapping the program into a pinned link where one exists.
fn start_dataplane(opts: &Options, iface: &str) -> Result<(XdpDataplane, AttachMode)> {
    let dir = pins::instance_dir(&opts.instance)?;
    let mounted = pins::ensure_bpffs(Path::new(pins::BPFFS_ROOT))?;
    if mounted && opts.keep_dataplane_on_exit {
        tracing::warn!("nothing was mounted on {}, so xvsd mounted a bpffs there: if this mount namespace is xvsd's own (`ip netns exec`), the kept data plane ends with it", pins::BPFFS_ROOT);
    }
    let mut dp = XdpDataplane::load_pinned(
        XdpOptions {
            conn_table_size: opts.conn_table_size,
            ..XdpOptions::default()
        },
        &dir,
    )?;
    dp.keep_on_drop(opts.keep_dataplane_on_exit)?;
    match dp.adoption() {
        Some(a) => tracing::info!(
            pins = %dir.display(),
            services = a.services,
            reals = a.reals,
            connections = a.connections,
            orphan_reals_cleared = a.orphan_reals,
            "adopted the running data plane"
        ),
        None => tracing::info!(pins = %dir.display(), "data plane loaded"),
    }
    let mode = dp
        .attach(iface, opts.xdp_mode)
        .with_context(|| format!("attaching XDP to {iface}"))?;
    tracing::info!(interface = %iface, mode = ?mode, "data plane attached");
    Ok((dp, mode))
}

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Director> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

/// SIGHUP: a bad configuration keeps the running one, and says why. Health
/// state carries over, so unchanged reals do not flap.
async fn reload(opts: &Options, shared: &Shared, engine: &mut Engine, vrrp: &vrrp::spec::Spec) {
    notify::reloading();
    tracing::info!(file = %opts.config_file.display(), "reloading configuration");
    let result = match read_config(opts) {
        Ok(config) => {
            if opts.vrrp && vrrp::spec::Spec::from_config(&config) != *vrrp {
                tracing::error!("the VRRP part of the configuration changed: it takes effect when xvsd restarts; the running instances keep their state");
            }
            match engine.reconfigure(&config, checkers::build).await {
                Ok(()) => lock(shared).reload(&config, engine.view()),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => tracing::info!("configuration reloaded"),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "reload failed; keeping the running configuration")
        }
    }
    notify::ready();
}

fn refresh_neighbours(shared: &Shared) {
    let mut director = lock(shared);
    if director.resolve_macs() {
        if let Err(e) = director.push() {
            tracing::warn!(error = %format!("{e:#}"), "applying new MACs failed");
        }
    }
    director.report_unresolved();
}

/// VRRP's hold on the director: forwarding follows MASTER, and the
/// instances' states go to status and metrics.
struct DirectorForwarding(Shared);

impl vrrp::runtime::Forwarding for DirectorForwarding {
    fn set_forwarding(&mut self, on: bool) {
        if let Err(e) = lock(&self.0).set_active(on) {
            tracing::error!(error = %format!("{e:#}"), on, "switching the data plane failed");
        }
    }

    fn renew(&mut self, lease: Duration) {
        if let Err(e) = lock(&self.0).renew_lease(lease) {
            tracing::error!(error = %format!("{e:#}"), "renewing the forwarding lease failed");
        }
    }

    fn report(&mut self, status: &[InstanceStatus]) {
        lock(&self.0).set_vrrp_status(status.to_vec());
    }
}
