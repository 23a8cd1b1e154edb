//! The DR lab: a client, directors and real servers on one bridge, each in
//! its own namespace, with `xvsd` on the directors. The VRRP tests, the
//! end-to-end tests and `cargo xtask lab` all build on it.
//!
//! Addresses are `10.<subnet>.0.x/24`: the client is .10, directors .2 and
//! up, reals .11 and up, the VIP .100. Every real answers TCP on the
//! service port with its name and holds the VIP on `lo`, as LVS-DR reals do.
//!
//! [`DrLab::build`] is the tests' lab: temporary names and files, servers
//! in this process. [`DrLab::build_with`] makes the lab of `cargo xtask
//! lab` ([`crate::showcase`]): fixed names, real servers as processes set
//! up with `xvsadm realserver up`, and optionally everything detached so
//! that it outlives this process (`xvs-lab up`).

use anyhow::{bail, ensure, Context, Result};
use std::{
    collections::BTreeMap,
    io::{Read, Write},
    net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use crate::daemon::{binary, wait_for, Admin, Daemon, DaemonArgs, SpawnOptions, TempDir};
use crate::netns::{
    attach_xdp_pass, configure_dr_real, fetch_reply, in_netns, spawn_in_netns, Lab, Netns, Port,
    Switch, TcpResponder,
};

/// The TCP service port every real answers on.
pub const SERVICE_PORT: u16 = 80;
/// The UDP service port of reals that run [`RealServers::Processes`]; they
/// also listen on TCP here, for the UDP service's TCP_CHECK.
pub const UDP_PORT: u16 = 3478;
/// Where a director's xvsd serves /metrics, inside its namespace, when the
/// lab asks for it ([`LabOptions::metrics`]).
pub const METRICS_ADDR: &str = "127.0.0.1:9910";
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
    /// The short name (`dir1`, …).
    pub name: String,
    pub ip: Ipv4Addr,
    pub port: Port,
    /// The XDP stub on the bridge end, so native XDP_TX frames arrive
    /// (none in SKB mode, or when its link is pinned: see
    /// [`LabOptions::pin_dir`]).
    _peer_stub: Option<aya::Ebpf>,
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
    /// With [`RealServers::Processes`]: the HTTP server on [`SERVICE_PORT`].
    pub http: Option<ServerProcess>,
    /// With [`RealServers::Processes`]: the UDP echo on [`UDP_PORT`].
    pub udp: Option<ServerProcess>,
}

/// How the real servers of a lab serve.
#[derive(Clone, Debug, Default)]
pub enum RealServers {
    /// A TCP responder in this process answers its name on
    /// [`SERVICE_PORT`]; the VIP goes on `lo` directly.
    #[default]
    InProcess,
    /// Processes of their own, as on real hosts: `SERVER serve http|udp …`
    /// (the `xvs-lab` binary, see [`serve_http`] and [`serve_udp`]), and the
    /// VIP by the real `xvsadm realserver up`.
    Processes { server: PathBuf },
}

/// What [`DrLab::build_with`] does beyond the [`Shape`].
#[derive(Clone, Debug)]
pub struct LabOptions {
    /// Names namespaces exactly `<prefix><short name>`, and xvsd's pinned
    /// instance `<prefix>dirN`. None: `<tag><pid>-` and `<tag>N`.
    pub prefix: Option<String>,
    /// The lab's files (director configs, sockets, logs) go under this
    /// directory, `<state_dir>/dirN/…`. None: temporary directories.
    pub state_dir: Option<PathBuf>,
    pub reals: RealServers,
    /// xvsd's `--xdp-mode`. With `auto`, the lab tries a native XDP
    /// program on a veth first and falls back to `skb`, with a notice in
    /// [`DrLab::notices`], when that fails.
    pub xdp_mode: &'static str,
    /// Daemons and servers may outlive this process ([`DrLab::leave_running`]).
    pub detach: bool,
    /// When set, the peer stubs' XDP links are pinned here (a bpffs
    /// directory), so they stay attached after this process exits.
    pub pin_dir: Option<PathBuf>,
    /// xvsd serves /metrics on [`METRICS_ADDR`] in its namespace.
    pub metrics: bool,
}

impl Default for LabOptions {
    fn default() -> LabOptions {
        LabOptions {
            prefix: None,
            state_dir: None,
            reals: RealServers::InProcess,
            xdp_mode: "native",
            detach: false,
            pin_dir: None,
            metrics: false,
        }
    }
}

pub struct DrLab {
    pub shape: Shape,
    pub options: LabOptions,
    pub client: Netns,
    pub client_ip: Ipv4Addr,
    pub vip: Ipv4Addr,
    pub switch: Netns,
    pub directors: Vec<Director>,
    pub reals: Vec<Real>,
    /// The xvsd `--xdp-mode` in use (`auto` may have become `skb`).
    pub xdp_mode: String,
    /// What the lab had to do differently, for the user to read (e.g. the
    /// fall back to SKB mode).
    pub notices: Vec<String>,
    /// Lab-wide files: realserver state, the servers' logs.
    pub files: TempDir,
    // Last: namespaces go after the daemons and servers in them.
    pub lab: Lab,
}

impl DrLab {
    pub fn build(shape: Shape) -> Result<DrLab> {
        DrLab::build_with(shape, LabOptions::default())
    }

    pub fn build_with(shape: Shape, options: LabOptions) -> Result<DrLab> {
        let mut lab = match &options.prefix {
            Some(prefix) => Lab::with_prefix(prefix),
            None => Lab::new(shape.tag),
        };
        let mut files = match &options.state_dir {
            Some(dir) => TempDir::at(dir.clone())?,
            None => TempDir::new(&format!("{}-lab", shape.tag))?,
        };
        if options.detach {
            files.keep();
        }
        let net = |host: u8| Ipv4Addr::new(10, shape.subnet, 0, host);
        let cidr = |ip: Ipv4Addr| format!("{ip}/24");
        let vip = net(100);
        let switch = lab.add_switch("sw").with_context(|| {
            "creating a network namespace failed: is iproute2 installed, and does \
             this kernel have network namespaces (CONFIG_NET_NS)?"
        })?;
        let client = lab.add_netns("client")?;
        let client_ip = net(10);
        switch.plug(&client, "eth0", &cidr(client_ip))?;
        let mut xdp_mode = options.xdp_mode.to_string();
        let mut notices = Vec::new();
        let mut directors = Vec::new();
        for i in 0..shape.directors {
            directors.push(director(
                &mut lab,
                &switch,
                &shape,
                &options,
                &mut xdp_mode,
                &mut notices,
                i,
                net(2 + i as u8),
                vip,
                &files,
            )?);
        }
        let mut reals = Vec::new();
        for i in 0..shape.reals {
            let name = format!("real{}", i + 1);
            let ns = lab.add_netns(&name)?;
            let ip = net(11 + i as u8);
            switch.plug(&ns, "eth0", &cidr(ip))?;
            let mut real = Real {
                ns,
                ip,
                name,
                service: None,
                http: None,
                udp: None,
            };
            match &options.reals {
                RealServers::InProcess => {
                    configure_dr_real(&real.ns, &vip.to_string())?;
                    let any = SocketAddr::from(([0, 0, 0, 0], SERVICE_PORT));
                    real.service = Some(TcpResponder::start(&real.ns, any, &real.name)?);
                }
                RealServers::Processes { server } => {
                    realserver_up(&real, vip, &files)?;
                    real.http = Some(ServerProcess::http(&real, server, &files, options.detach)?);
                    real.udp = Some(ServerProcess::udp(
                        &real,
                        server,
                        vip,
                        &files,
                        options.detach,
                    )?);
                }
            }
            reals.push(real);
        }
        Ok(DrLab {
            switch: switch.netns().clone(),
            shape,
            options,
            client,
            client_ip,
            vip,
            directors,
            reals,
            xdp_mode,
            notices,
            files,
            lab,
        })
    }

    pub fn service(&self) -> SocketAddr {
        SocketAddr::from((self.vip, SERVICE_PORT))
    }

    /// The UDP service of [`RealServers::Processes`] reals.
    pub fn udp_service(&self) -> SocketAddr {
        SocketAddr::from((self.vip, UDP_PORT))
    }

    /// xvsd's pinned instance name for director `i`.
    pub fn instance(&self, i: usize) -> String {
        match &self.options.prefix {
            Some(prefix) => format!("{prefix}{}", self.directors[i].name),
            None => format!("{}{}", self.shape.tag, i + 1),
        }
    }

    /// Director `i`'s control socket (there once its xvsd runs).
    pub fn socket(&self, i: usize) -> PathBuf {
        self.directors[i].dir.join("xvsd.sock")
    }

    /// Writes `conf` for director `i` and starts its xvsd.
    pub fn start_director(&mut self, i: usize, conf: &str) -> Result<()> {
        let instance = self.instance(i);
        let xdp_mode = self.xdp_mode.clone();
        let metrics = self.options.metrics;
        let spawn = SpawnOptions {
            detach: self.options.detach,
        };
        let d = &mut self.directors[i];
        let path = d.dir.join("keepalived.conf");
        std::fs::write(&path, conf)?;
        let mut extra = Vec::new();
        if metrics {
            extra.extend(["--metrics-listen", METRICS_ADDR]);
        }
        let args = DaemonArgs {
            conf: &path,
            iface: DIRECTOR_IF,
            xdp_mode: &xdp_mode,
            instance: Some(&instance),
            extra: &extra,
        };
        let daemon = Daemon::start_with(&d.ns, &args, &d.dir, spawn)?;
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
        self.holds(i, self.vip.into())
    }

    /// Whether director `i` has `addr` on its interface.
    pub fn holds(&self, i: usize, addr: std::net::IpAddr) -> Result<bool> {
        let (family, word) = if addr.is_ipv4() {
            ("-4", "inet")
        } else {
            ("-6", "inet6")
        };
        let out = self.directors[i]
            .ns
            .ip(&[family, "-o", "addr", "show", "dev", DIRECTOR_IF])?;
        Ok(out.contains(&format!("{word} {addr}/")))
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

#[allow(clippy::too_many_arguments)]
fn director(
    lab: &mut Lab,
    switch: &Switch,
    shape: &Shape,
    options: &LabOptions,
    xdp_mode: &mut String,
    notices: &mut Vec<String>,
    i: usize,
    ip: Ipv4Addr,
    vip: Ipv4Addr,
    files: &TempDir,
) -> Result<Director> {
    let name = format!("dir{}", i + 1);
    let ns = lab.add_netns(&name)?;
    let port = switch.plug(&ns, DIRECTOR_IF, &format!("{ip}/24"))?;
    let peer_stub = if xdp_mode == "skb" {
        None
    } else {
        let attached = match &options.pin_dir {
            Some(dir) => attach_pinned_stub(switch.netns(), &port.bridge_if, dir).map(|()| None),
            None => attach_xdp_pass(switch.netns(), &port.bridge_if).map(Some),
        };
        match attached {
            Ok(stub) => stub,
            Err(e) if xdp_mode == "auto" => {
                notices.push(format!(
                    "native XDP could not be attached to a veth here ({e:#}): the lab runs \
                     xvsd in SKB (generic) mode instead, which behaves the same, only slower"
                ));
                *xdp_mode = "skb".to_string();
                None
            }
            Err(e) => return Err(e),
        }
    };
    let mut dir = match &options.state_dir {
        Some(_) => TempDir::at(files.join(&name))?,
        None => TempDir::new(&format!("{}-{name}", shape.tag))?,
    };
    if options.detach {
        dir.keep();
    }
    let service = if shape.directors_are_reals {
        configure_dr_real(&ns, &vip.to_string())?;
        let any = SocketAddr::from(([0, 0, 0, 0], SERVICE_PORT));
        Some(TcpResponder::start(&ns, any, &name)?)
    } else {
        None
    };
    Ok(Director {
        ns,
        name,
        ip,
        port,
        _peer_stub: peer_stub,
        dir,
        daemon: None,
        _service: service,
    })
}

/// Attaches the `xvs_pass` stub to `iface` in `ns` (as [`attach_xdp_pass`])
/// and pins its link at `<dir>/<iface>`, so it stays attached after this
/// process exits (`xvs-lab up`); removing the pin, or the namespace,
/// detaches it.
fn attach_pinned_stub(ns: &Netns, iface: &str, dir: &Path) -> Result<()> {
    use aya::programs::{links::FdLink, Xdp, XdpMode};
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(iface);
    ns.run(|| {
        let mut ebpf = aya::Ebpf::load(xvs::objects::BASELINE)?;
        let prog: &mut Xdp = ebpf
            .program_mut("xvs_pass")
            .context("xvs_pass missing from the baseline object")?
            .try_into()?;
        prog.load()?;
        let id = prog
            .attach(iface, XdpMode::Driver)
            .with_context(|| format!("attaching xvs_pass to {iface} in {}", ns.name()))?;
        let link: FdLink = prog
            .take_link(id)?
            .try_into()
            .context("this kernel attached XDP without a bpf_link: cannot pin it")?;
        let _ = std::fs::remove_file(&path);
        link.pin(&path)
            .with_context(|| format!("pinning the stub's link at {}", path.display()))?;
        Ok(())
    })
}

/// `xvsadm realserver up --vip VIP` in the real's namespace, as an
/// operator runs it on a real server; its state file goes in `files`.
fn realserver_up(real: &Real, vip: Ipv4Addr, files: &TempDir) -> Result<()> {
    let out = Command::new("ip")
        .args(["netns", "exec", real.ns.name()])
        .arg(binary("xvsadm")?)
        .args(["realserver", "up", "--vip", &vip.to_string()])
        .env(
            "XVS_REALSERVER_STATE",
            files.join(&format!("{}.realserver.state", real.name)),
        )
        .stdin(Stdio::null())
        .output()
        .context("running xvsadm realserver up")?;
    ensure!(
        out.status.success(),
        "`xvsadm realserver up --vip {vip}` in {} failed: {}",
        real.ns.name(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// A server process of a real (`xvs-lab serve …` in its namespace).
/// Dropping it kills it, unless [`ServerProcess::release`]d.
pub struct ServerProcess {
    child: Child,
    pub what: String,
    released: bool,
}

impl ServerProcess {
    fn spawn(
        ns: &Netns,
        server: &Path,
        args: &[&str],
        log: &Path,
        detach: bool,
    ) -> Result<ServerProcess> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let mut command = Command::new("ip");
        // SAFETY: setsid / prctl in the child before exec; no allocation.
        unsafe {
            if detach {
                command.pre_exec(|| {
                    libc::setsid();
                    Ok(())
                });
            } else {
                command.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
        }
        let child = command
            .args(["netns", "exec", ns.name()])
            .arg(server)
            .arg("serve")
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {}", server.display()))?;
        Ok(ServerProcess {
            child,
            what: format!("{} server", args[0]),
            released: false,
        })
    }

    /// Waits until something listens on TCP `port` of the real.
    fn wait_listening(mut self, real: &Real, port: u16) -> Result<ServerProcess> {
        let addr = SocketAddr::from((real.ip, port));
        wait_for(
            &format!("{}'s {}", real.name, self.what),
            Duration::from_secs(10),
            || {
                if let Some(status) = self.child.try_wait()? {
                    bail!("exited {status}");
                }
                Ok(real
                    .ns
                    .run(|| {
                        Ok(TcpStream::connect_timeout(
                            &addr,
                            Duration::from_millis(200),
                        ))
                    })?
                    .ok()
                    .map(drop))
            },
        )?;
        Ok(self)
    }

    /// The HTTP server of `real` on [`SERVICE_PORT`].
    pub fn http(
        real: &Real,
        server: &Path,
        files: &TempDir,
        detach: bool,
    ) -> Result<ServerProcess> {
        let port = SERVICE_PORT.to_string();
        let log = files.join(&format!("{}-http.log", real.name));
        ServerProcess::spawn(
            &real.ns,
            server,
            &[
                "http",
                "--name",
                &real.name,
                "--port",
                &port,
                "--lab-dir",
                files.path(),
            ],
            &log,
            detach,
        )?
        .wait_listening(real, SERVICE_PORT)
    }

    /// The UDP echo of `real` on `vip`:[`UDP_PORT`] (and its TCP port).
    pub fn udp(
        real: &Real,
        server: &Path,
        vip: Ipv4Addr,
        files: &TempDir,
        detach: bool,
    ) -> Result<ServerProcess> {
        let port = UDP_PORT.to_string();
        let vip = vip.to_string();
        let log = files.join(&format!("{}-udp.log", real.name));
        ServerProcess::spawn(
            &real.ns,
            server,
            &[
                "udp",
                "--name",
                &real.name,
                "--vip",
                &vip,
                "--port",
                &port,
                "--lab-dir",
                files.path(),
            ],
            &log,
            detach,
        )?
        .wait_listening(real, UDP_PORT)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, and waits for the exit.
    pub fn kill(&mut self) -> Result<()> {
        if self.child.try_wait()?.is_none() {
            self.child.kill()?;
            self.child.wait()?;
        }
        Ok(())
    }

    /// Leaves the process running when this guard is dropped.
    pub fn release(mut self) {
        self.released = true;
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if !self.released {
            let _ = self.kill();
        }
    }
}

/// `xvs-lab serve http`: an HTTP/1.0 server on `0.0.0.0:port` whose every
/// answer is `name` (a line), one thread per connection. Runs until killed.
pub fn serve_http(name: &str, port: u16) -> Result<()> {
    let listener = TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], port)))
        .with_context(|| format!("binding TCP port {port}"))?;
    let body = Arc::new(format!("{name}\n"));
    for conn in listener.incoming() {
        let Ok(stream) = conn else { continue };
        let body = body.clone();
        std::thread::spawn(move || {
            let _ = answer_http(stream, &body);
        });
    }
    Ok(())
}

/// Reads the request head (if any: a bare TCP check sends none), answers.
fn answer_http(mut stream: TcpStream, body: &str) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf)? {
            0 => return Ok(()),
            n => head.extend_from_slice(&buf[..n]),
        }
    }
    let reply = format!(
        "HTTP/1.0 200 OK\r\nServer: xvs-lab\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(reply.as_bytes())?;
    stream.shutdown(Shutdown::Write)
}

/// `xvs-lab serve udp`: answers every datagram to `vip:port` with
/// `<name> <datagram>`, from the VIP (the socket is bound to it, as a DR
/// real server's must be). It also accepts TCP on `port`, for a TCP_CHECK.
pub fn serve_udp(name: &str, vip: Ipv4Addr, port: u16) -> Result<()> {
    let socket = UdpSocket::bind(SocketAddr::from((vip, port)))
        .with_context(|| format!("binding UDP {vip}:{port}"))?;
    let listener = TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], port)))
        .with_context(|| format!("binding TCP port {port}"))?;
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            drop(conn);
        }
    });
    let mut buf = [0u8; 2048];
    loop {
        let (n, peer) = socket.recv_from(&mut buf)?;
        let mut reply = format!("{name} ").into_bytes();
        reply.extend_from_slice(&buf[..n]);
        let _ = socket.send_to(&reply, peer);
    }
}

/// The next source port of [`connect_fresh`].
static NEXT_PORT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Connects to `addr` from a source port no earlier connection of this
/// process used (10000 up, for 50,000 connections). The kernel's own
/// choice repeats ports within a few thousand connections, and a new SYN
/// on the tuple of a flow still in FIN_WAIT goes where that flow went, as
/// in IPVS: to a real taken out since, if it was. Many clients, each with
/// its own ports, do not meet that; a lab's single client would.
pub fn connect_fresh(addr: SocketAddr, timeout: Duration) -> Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let mut last = None;
    for _ in 0..16 {
        let port = 10000 + (NEXT_PORT.fetch_add(1, Ordering::Relaxed) % 50000) as u16;
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
        socket.set_reuse_address(true)?;
        if let Err(e) = socket.bind(&SocketAddr::from(([0, 0, 0, 0], port)).into()) {
            last = Some(e);
            continue;
        }
        socket
            .connect_timeout(&addr.into(), timeout)
            .with_context(|| format!("connecting to {addr} from port {port}"))?;
        return Ok(socket.into());
    }
    Err(last.expect("a bind failed")).context("no free source port")
}

/// One HTTP GET of `/` on `addr` (from a fresh source port, see
/// [`connect_fresh`]); the body, trimmed (the real's name). Call it from
/// inside the client's namespace.
pub fn http_get(addr: SocketAddr, timeout: Duration) -> Result<String> {
    let mut stream = connect_fresh(addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.write_all(format!("GET / HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())?;
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .with_context(|| format!("reading from {addr}"))?;
    let (head, body) = reply
        .split_once("\r\n\r\n")
        .with_context(|| format!("not an HTTP reply: {reply:?}"))?;
    ensure!(head.starts_with("HTTP/1.0 200"), "HTTP reply {head:?}");
    Ok(body.trim().to_string())
}

/// Requests answered per real, and the failed ones.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub per_real: BTreeMap<String, usize>,
    pub failed: usize,
}

impl Tally {
    pub fn total(&self) -> usize {
        self.per_real.values().sum::<usize>() + self.failed
    }

    pub fn count(&self, real: &str) -> usize {
        self.per_real.get(real).copied().unwrap_or(0)
    }

    fn add(&mut self, reply: Result<String>) {
        match reply {
            Ok(name) => *self.per_real.entry(name).or_default() += 1,
            Err(_) => self.failed += 1,
        }
    }
}

impl DrLab {
    /// `n` HTTP requests from the client, one connection each, one after
    /// the other (from one thread in the client's namespace).
    pub fn http_requests(&self, n: usize) -> Result<Tally> {
        let addr = self.service();
        in_netns(self.client.name(), move || {
            let mut tally = Tally::default();
            for _ in 0..n {
                tally.add(http_get(addr, Duration::from_secs(1)));
            }
            Ok(tally)
        })
    }

    /// `n` datagrams to the UDP service from the client, each from a new
    /// socket (so a new source port, a new flow); the replies' senders.
    pub fn udp_requests(&self, n: usize) -> Result<Tally> {
        let addr = self.udp_service();
        in_netns(self.client.name(), move || {
            let mut tally = Tally::default();
            for i in 0..n {
                tally.add(udp_ask(addr, &format!("hello {i}")));
            }
            Ok(tally)
        })
    }

    /// `xvsadm` on director `i` (its socket), run in its namespace.
    pub fn admin(&self, i: usize) -> Result<Admin> {
        Admin::at(&self.socket(i), &self.directors[i].ns)
    }

    /// Director `i`'s `xvs_packets_total` by verdict, from its /metrics
    /// ([`LabOptions::metrics`]).
    pub fn verdicts(&self, i: usize) -> Result<BTreeMap<String, u64>> {
        let text = self.directors[i].ns.run(|| {
            let mut stream = TcpStream::connect(METRICS_ADDR)?;
            stream.set_read_timeout(Some(Duration::from_secs(2)))?;
            stream.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")?;
            let mut text = String::new();
            stream.read_to_string(&mut text)?;
            Ok(text)
        })?;
        let mut out = BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("xvs_packets_total{verdict=\"") {
                if let Some((verdict, n)) = rest.split_once("\"} ") {
                    out.insert(verdict.to_string(), n.trim().parse()?);
                }
            }
        }
        ensure!(!out.is_empty(), "no xvs_packets_total in /metrics");
        Ok(out)
    }

    /// SIGKILLs real `r`'s HTTP server.
    pub fn kill_http(&mut self, r: usize) -> Result<()> {
        if let Some(mut p) = self.reals[r].http.take() {
            p.kill()?;
        }
        Ok(())
    }

    /// Starts real `r`'s HTTP server again.
    pub fn restart_http(&mut self, r: usize) -> Result<()> {
        let RealServers::Processes { server } = &self.options.reals else {
            bail!("the reals of this lab have no server processes");
        };
        let p = ServerProcess::http(&self.reals[r], server, &self.files, self.options.detach)?;
        self.reals[r].http = Some(p);
        Ok(())
    }

    /// Leaves everything running after this process exits (`xvs-lab
    /// up`): the lab must have been built with `detach` and
    /// [`RealServers::Processes`]. `xvs-lab down` removes it.
    pub fn leave_running(mut self) -> Result<()> {
        ensure!(
            self.options.detach && matches!(self.options.reals, RealServers::Processes { .. }),
            "only a detached lab with server processes can be left running"
        );
        for d in &mut self.directors {
            if let Some(daemon) = d.daemon.take() {
                daemon.release();
            }
            d.dir.keep();
        }
        for r in &mut self.reals {
            for p in [r.http.take(), r.udp.take()].into_iter().flatten() {
                p.release();
            }
        }
        self.files.keep();
        self.lab.keep();
        Ok(())
    }
}

/// One datagram to `addr` from a fresh socket, and its reply.
pub fn udp_ask(addr: SocketAddr, text: &str) -> Result<String> {
    let socket = UdpSocket::bind("0.0.0.0:0")?;
    socket.set_read_timeout(Some(Duration::from_secs(1)))?;
    socket.send_to(text.as_bytes(), addr)?;
    let mut buf = [0u8; 2048];
    let (n, from) = socket
        .recv_from(&mut buf)
        .with_context(|| format!("no UDP reply from {addr}"))?;
    ensure!(from == addr, "UDP reply from {from}, not {addr}");
    let reply = String::from_utf8_lossy(&buf[..n]).into_owned();
    let (name, echo) = reply.split_once(' ').context("bad UDP reply")?;
    ensure!(echo == text, "UDP echo {echo:?} for {text:?}");
    Ok(name.to_string())
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
        Prober::start_with(client, every, move |timeout| fetch_reply(addr, timeout))
    }

    /// A prober of an HTTP service (see [`http_get`]).
    pub fn http(client: &Netns, addr: SocketAddr, every: Duration) -> Prober {
        Prober::start_with(client, every, move |timeout| http_get(addr, timeout))
    }

    /// A prober whose request is `probe(timeout)`.
    pub fn start_with(
        client: &Netns,
        every: Duration,
        probe: impl Fn(Duration) -> Result<String> + Send + 'static,
    ) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (stopping, record) = (stop.clone(), log.clone());
        let thread = spawn_in_netns(client.name(), move || {
            while !stopping.load(Ordering::SeqCst) {
                let sent = Instant::now();
                // Short timeouts: a request lost in the failover must not
                // hide the moment service comes back.
                let reply = probe(Duration::from_millis(100)).ok();
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
