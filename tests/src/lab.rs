//! The DR lab: a client, directors and real servers on one bridge, each in
//! its own namespace, with `xvsd` on the directors. The VRRP tests, the
//! end-to-end tests and `cargo xtask lab` all build on it.
//!
//! Addresses are `10.<subnet>.0.x/24`: the client is .10, directors .2 and
//! up, reals .11 and up, the VIP .100. Every real answers TCP on the
//! service port with its name and holds the VIP on `lo`, as LVS-DR reals do.

use anyhow::{bail, Context, Result};
use std::{
    net::{Ipv4Addr, SocketAddr},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use crate::daemon::{wait_for, Daemon, DaemonArgs, TempDir};
use crate::netns::{
    attach_xdp_pass, configure_dr_real, fetch_reply, spawn_in_netns, Lab, Netns, Port, Switch,
    TcpResponder,
};

/// The TCP service port every real answers on.
pub const SERVICE_PORT: u16 = 80;
/// The directors' interface (inside their namespaces).
pub const DIRECTOR_IF: &str = "eth0";

/// The shape of a lab.
#[derive(Clone, Debug)]
pub struct Shape {
    /// Namespace and temp-dir tag; distinct per concurrent lab.
    pub tag: &'static str,
    /// Second octet of the lab's 10.x.0.0/24.
    pub subnet: u8,
    pub directors: usize,
    pub reals: usize,
    /// Directors also serve as reals (seed 004): VIP on `lo`, a TCP
    /// responder, and no separate real servers unless `reals` says so.
    pub directors_are_reals: bool,
}

pub struct Director {
    pub ns: Netns,
    pub ip: Ipv4Addr,
    pub port: Port,
    /// The XDP stub on the bridge end, so native XDP_TX frames arrive.
    _peer_stub: aya::Ebpf,
    // Before `dir`: a daemon's log is shown from there when it drops.
    pub daemon: Option<Daemon>,
    _service: Option<TcpResponder>,
    pub dir: TempDir,
}

pub struct Real {
    pub ns: Netns,
    pub ip: Ipv4Addr,
    pub name: String,
    pub service: Option<TcpResponder>,
}

pub struct DrLab {
    pub shape: Shape,
    pub client: Netns,
    pub client_ip: Ipv4Addr,
    pub vip: Ipv4Addr,
    pub switch: Netns,
    pub directors: Vec<Director>,
    pub reals: Vec<Real>,
    // Last: namespaces go after the daemons and servers in them.
    pub lab: Lab,
}

impl DrLab {
    pub fn build(shape: Shape) -> Result<DrLab> {
        let mut lab = Lab::new(shape.tag);
        let net = |host: u8| Ipv4Addr::new(10, shape.subnet, 0, host);
        let cidr = |ip: Ipv4Addr| format!("{ip}/24");
        let vip = net(100);
        let switch = lab.add_switch("sw")?;
        let client = lab.add_netns("client")?;
        let client_ip = net(10);
        switch.plug(&client, "eth0", &cidr(client_ip))?;
        let mut directors = Vec::new();
        for i in 0..shape.directors {
            directors.push(director(
                &mut lab,
                &switch,
                &shape,
                i,
                net(2 + i as u8),
                vip,
            )?);
        }
        let mut reals = Vec::new();
        for i in 0..shape.reals {
            let name = format!("real{}", i + 1);
            let ns = lab.add_netns(&name)?;
            let ip = net(11 + i as u8);
            switch.plug(&ns, "eth0", &cidr(ip))?;
            configure_dr_real(&ns, &vip.to_string())?;
            let any = SocketAddr::from(([0, 0, 0, 0], SERVICE_PORT));
            let service = Some(TcpResponder::start(&ns, any, &name)?);
            reals.push(Real {
                ns,
                ip,
                name,
                service,
            });
        }
        Ok(DrLab {
            switch: switch.netns().clone(),
            shape,
            client,
            client_ip,
            vip,
            directors,
            reals,
            lab,
        })
    }

    pub fn service(&self) -> SocketAddr {
        SocketAddr::from((self.vip, SERVICE_PORT))
    }

    /// Writes `conf` for director `i` and starts its xvsd.
    pub fn start_director(&mut self, i: usize, conf: &str) -> Result<()> {
        let tag = self.shape.tag;
        let d = &mut self.directors[i];
        let path = d.dir.join("keepalived.conf");
        std::fs::write(&path, conf)?;
        let instance = format!("{tag}{}", i + 1);
        let args = DaemonArgs {
            conf: &path,
            iface: DIRECTOR_IF,
            xdp_mode: "native",
            instance: Some(&instance),
            extra: &[],
        };
        let daemon = Daemon::start(&d.ns, &args, &d.dir)?;
        let socket = daemon.socket.clone();
        d.daemon = Some(daemon);
        wait_for("xvsd answering", Duration::from_secs(20), || {
            if let Some(d) = self.directors[i].daemon.as_mut() {
                if !d.is_running()? {
                    bail!("xvsd exited:\n{}", d.log());
                }
            }
            Ok(socket.exists().then_some(()))
        })
        .with_context(|| format!("director {}", i + 1))
    }

    /// SIGKILL: no priority 0, no cleanup, as in a crash.
    pub fn kill_director(&mut self, i: usize) -> Result<()> {
        if let Some(mut d) = self.directors[i].daemon.take() {
            d.signal(libc::SIGKILL)?;
            d.wait_exit(Duration::from_secs(5))?;
            d.stopped = true;
        }
        Ok(())
    }

    /// SIGTERM, and a clean exit.
    pub fn stop_director(&mut self, i: usize) -> Result<()> {
        if let Some(mut d) = self.directors[i].daemon.take() {
            d.stop()?;
        }
        Ok(())
    }

    /// Whether director `i`'s xvsd says it forwards.
    pub fn forwards(&self, i: usize) -> bool {
        self.directors[i]
            .daemon
            .as_ref()
            .and_then(|d| d.status().ok())
            .is_some_and(|s| s.active)
    }

    /// Whether director `i` holds the VIP on its interface.
    pub fn holds_vip(&self, i: usize) -> Result<bool> {
        let out = self.directors[i]
            .ns
            .ip(&["-4", "-o", "addr", "show", "dev", DIRECTOR_IF])?;
        Ok(out.contains(&format!("inet {}/", self.vip)))
    }

    /// The directors that forward and hold the VIP, i.e. are MASTER.
    pub fn masters(&self) -> Result<Vec<usize>> {
        let mut out = Vec::new();
        for i in 0..self.directors.len() {
            if self.forwards(i) && self.holds_vip(i)? {
                out.push(i);
            }
        }
        Ok(out)
    }

    /// Waits until exactly one director is MASTER and returns it.
    pub fn wait_single_master(&self, limit: Duration) -> Result<usize> {
        wait_for("exactly one MASTER", limit, || {
            let m = self.masters()?;
            Ok((m.len() == 1).then(|| m[0]))
        })
    }

    /// Waits until director `i` is MASTER.
    pub fn wait_master(&self, i: usize, limit: Duration) -> Result<()> {
        wait_for(&format!("director {} MASTER", i + 1), limit, || {
            Ok(self.masters()?.contains(&i).then_some(()))
        })
    }

    /// Director `i`'s xvsd log so far.
    pub fn director_log(&self, i: usize) -> String {
        self.directors[i]
            .daemon
            .as_ref()
            .map(|d| d.log())
            .unwrap_or_default()
    }

    /// One request to the service from the client; the reply names the real.
    pub fn request(&self) -> Result<String> {
        let addr = self.service();
        crate::netns::in_netns(self.client.name(), move || {
            fetch_reply(addr, Duration::from_secs(1))
        })
    }

    /// Cuts (or restores) the directors off from each other, not from the
    /// rest: bridge port isolation on their switch ports.
    pub fn isolate_directors(&self, on: bool) -> Result<()> {
        let state = if on { "on" } else { "off" };
        for d in &self.directors {
            self.switch.exec(
                "bridge",
                &["link", "set", "dev", &d.port.bridge_if, "isolated", state],
            )?;
        }
        Ok(())
    }
}

fn director(
    lab: &mut Lab,
    switch: &Switch,
    shape: &Shape,
    i: usize,
    ip: Ipv4Addr,
    vip: Ipv4Addr,
) -> Result<Director> {
    let name = format!("dir{}", i + 1);
    let ns = lab.add_netns(&name)?;
    let port = switch.plug(&ns, DIRECTOR_IF, &format!("{ip}/24"))?;
    let peer_stub = attach_xdp_pass(switch.netns(), &port.bridge_if)?;
    let dir = TempDir::new(&format!("{}-{name}", shape.tag))?;
    let service = if shape.directors_are_reals {
        configure_dr_real(&ns, &vip.to_string())?;
        let any = SocketAddr::from(([0, 0, 0, 0], SERVICE_PORT));
        Some(TcpResponder::start(&ns, any, &name)?)
    } else {
        None
    };
    Ok(Director {
        ns,
        ip,
        port,
        _peer_stub: peer_stub,
        dir,
        daemon: None,
        _service: service,
    })
}

/// What a [`Prober`] saw: when each request was sent, and the reply.
pub type ProbeRecord = Vec<(Instant, Option<String>)>;

/// A client that sends one request every `every` and records the outcome:
/// what the failover measurement and the lab's outage figure come from.
pub struct Prober {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<ProbeRecord>>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl Prober {
    pub fn start(client: &Netns, addr: SocketAddr, every: Duration) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (stopping, record) = (stop.clone(), log.clone());
        let thread = spawn_in_netns(client.name(), move || {
            while !stopping.load(Ordering::SeqCst) {
                let sent = Instant::now();
                // Short timeouts: a request lost in the failover must not
                // hide the moment service comes back.
                let reply = fetch_reply(addr, Duration::from_millis(100)).ok();
                record.lock().unwrap().push((sent, reply));
                if let Some(rest) = every.checked_sub(sent.elapsed()) {
                    std::thread::sleep(rest);
                }
            }
            Ok(())
        });
        Prober {
            stop,
            log,
            thread: Some(thread),
        }
    }

    /// Stops the client and returns its record.
    pub fn finish(mut self) -> ProbeRecord {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        std::mem::take(&mut *self.log.lock().unwrap())
    }

    /// Waits until a request made after `since` succeeded.
    pub fn wait_success_after(&self, since: Instant, limit: Duration) -> Result<()> {
        wait_for("a request served", limit, || {
            let log = self.log.lock().unwrap();
            Ok(log
                .iter()
                .any(|(t, r)| *t >= since && r.is_some())
                .then_some(()))
        })
    }
}

/// The outage around `event`: the longest wait between two requests
/// served, from the last one before `event` on. A request already in
/// flight at `event` may still succeed; the gap that follows is the outage.
pub fn outage(record: &[(Instant, Option<String>)], event: Instant) -> Result<Duration> {
    let served: Vec<Instant> = record
        .iter()
        .filter(|(_, r)| r.is_some())
        .map(|(t, _)| *t)
        .collect();
    let start = served
        .iter()
        .rposition(|t| *t <= event)
        .context("no request was served before the event")?;
    if start + 1 >= served.len() {
        bail!("no request was served after the event");
    }
    Ok(served[start..]
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default())
}
