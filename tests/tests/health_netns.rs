//! Health checks end to end: `xvsd` reads a keepalived.conf with
//! TCP_CHECK, HTTP_GET, MISC_CHECK (misc_dynamic), UDP_CHECK, a quorum with
//! a sorry server and notify scripts, runs in a director namespace in front
//! of three LVS-DR reals, and the test breaks and repairs the reals'
//! services while it watches `xvsadm -L -n` (and, where cheap, where client
//! connections go). A second test runs 2,000 TCP_CHECKs at delay_loop 1
//! against local listeners and measures the daemon's CPU and how evenly the
//! probes are spread.
//!
//! Needs root (netns, bpf) and the release binaries of lb-userspace:
//!
//! ```sh
//! cargo build --release -p lb-userspace --bins
//! cargo test --release -p xvs-tests --test health_netns -- --nocapture --test-threads=1
//! ```

use anyhow::{anyhow, bail, ensure, Context, Result};
use std::{
    collections::BTreeMap,
    io::Write,
    net::{SocketAddr, TcpListener},
    os::fd::AsRawFd,
    path::Path,
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};
use xvs_tests::daemon::{binary, wait_for, Admin, Daemon, DaemonArgs, TempDir};
use xvs_tests::netns::{
    attach_xdp_pass, configure_dr_real, fetch_reply, spawn_in_netns, HttpResponder, Lab, Netns,
    TcpResponder, UdpResponder,
};

const PREFIX_LEN: u8 = 24;
const CLIENT_IP: &str = "10.213.0.10";
const DIRECTOR_IP: &str = "10.213.0.2";
/// These must match tests/fixtures/health/keepalived-health.conf.in.
const VIP: &str = "10.213.0.100";
const REALS: [(&str, &str); 3] = [
    ("r1", "10.213.0.11"),
    ("r2", "10.213.0.12"),
    ("r3", "10.213.0.13"),
];
const TCP_PORT: u16 = 80;
const INHIBIT_PORT: u16 = 81;
const MISC_PORT: u16 = 82;
const QUORUM_PORT: u16 = 83;
const HTTP_PORT: u16 = 8080;
const UDP_PORT: u16 = 5353;
/// The fixture's timing: delay_loop 1, retry 1, delay_before_retry 1.
const DELAY_LOOP: Duration = Duration::from_secs(1);
const RETRY: u32 = 1;
const DELAY_BEFORE_RETRY: Duration = Duration::from_secs(1);
/// What the detection bounds allow on top of the checks' own timing: the
/// probe itself, the data-plane update and `xvsadm` polling.
const MARGIN: Duration = Duration::from_millis(1500);
/// The body the HTTP servers answer with; its MD5 goes into the fixture.
const HTTP_BODY: &str = "xvs health end-to-end: all is well\n";

const FIXTURE: &str = include_str!("../fixtures/health/keepalived-health.conf.in");
const SCALE_HEAD: &str = include_str!("../fixtures/health/scale-head.conf.in");
const SCALE_VS: &str = include_str!("../fixtures/health/scale-vs.conf.in");

/// How long xvsd may take to come up, and to reach the first steady state.
const START_DEADLINE: Duration = Duration::from_secs(20);
/// Waits for a state change: far beyond the bounds asserted on.
const CHANGE_DEADLINE: Duration = Duration::from_secs(10);
const IO_TIMEOUT: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------------------
// The operator's CLI (files, binaries and the daemon are in xvs_tests::daemon)

/// `xvsadm -L -n`, parsed.
fn listing(admin: &Admin) -> Result<Listing> {
    Ok(Listing::parse(&admin.run(&["-L", "-n"])?))
}

/// Until `xvsadm -L -n` answers and no real waits for its MAC.
fn wait_ready(daemon: &mut Daemon, admin: &Admin) -> Result<()> {
    wait_for("xvsd answering", START_DEADLINE, || {
        ensure!(daemon.is_running()?, "xvsd exited:\n{}", daemon.log());
        Ok(admin.run(&["-L", "-n"]).ok())
    })?;
    // VRRP: the instance becomes MASTER one advert (+ skew) after start.
    wait_for(
        "every real resolved and VRRP MASTER",
        START_DEADLINE,
        || {
            let status = daemon.status()?;
            Ok((status.unresolved_reals.is_empty() && status.active).then_some(()))
        },
    )
}

/// Namespaces of this run still present in /run/netns.
fn namespaces_left(prefix: &str) -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}

fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

// ---------------------------------------------------------------------------
// `xvsadm -L -n`

/// `-L -n` as service ("TCP 10.213.0.100:80") → real ("10.213.0.11:80") →
/// weight.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Listing {
    services: BTreeMap<String, BTreeMap<String, u32>>,
    text: String,
}

impl Listing {
    fn parse(text: &str) -> Listing {
        let mut services: BTreeMap<String, BTreeMap<String, u32>> = BTreeMap::new();
        let mut current = None;
        for line in text.lines() {
            let w: Vec<&str> = line.split_whitespace().collect();
            match w.as_slice() {
                [proto @ ("TCP" | "UDP"), addr, ..] => {
                    let key = format!("{proto} {addr}");
                    services.entry(key.clone()).or_default();
                    current = Some(key);
                }
                ["->", real, _forward, weight, _active, _inactive] => {
                    if let (Some(service), Ok(weight)) = (&current, weight.parse()) {
                        services
                            .get_mut(service)
                            .expect("service seen")
                            .insert(real.to_string(), weight);
                    }
                }
                _ => {}
            }
        }
        Listing {
            services,
            text: text.to_string(),
        }
    }

    /// The reals of a VIP service and their weights.
    fn reals(&self, proto: &str, port: u16) -> BTreeMap<String, u32> {
        self.services
            .get(&format!("{proto} {VIP}:{port}"))
            .cloned()
            .unwrap_or_default()
    }
}

/// `{"10.213.0.11:80": 1, ...}` for the named reals.
fn reals_at(port: u16, named: &[(&str, u32)]) -> BTreeMap<String, u32> {
    named
        .iter()
        .map(|(name, weight)| (format!("{}:{port}", real_ip(name)), *weight))
        .collect()
}

fn real_ip(name: &str) -> &'static str {
    REALS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, ip)| *ip)
        .expect("a real of REALS")
}

/// Waits until the reals of `proto VIP:port` are exactly `want`; returns
/// how long that took.
fn wait_reals(
    admin: &Admin,
    what: &str,
    proto: &str,
    port: u16,
    want: &BTreeMap<String, u32>,
) -> Result<Duration> {
    let started = Instant::now();
    let mut last = None;
    wait_for(what, CHANGE_DEADLINE, || {
        let listing = listing(admin)?;
        let ok = listing.reals(proto, port) == *want;
        last = Some(listing);
        Ok(ok.then_some(()))
    })
    .with_context(|| {
        format!(
            "wanted {want:?} under {proto} {VIP}:{port}; last -L -n:\n{}",
            last.map(|l| l.text).unwrap_or_default()
        )
    })?;
    Ok(started.elapsed())
}

// ---------------------------------------------------------------------------
// Topology and servers

/// Client, director and three DR reals on one bridge. Owns the [`Lab`],
/// so dropping it deletes everything.
struct Topology {
    lab: Lab,
    client: Netns,
    director: Netns,
    director_if: String,
    reals: Vec<Netns>,
    /// Keeps `xvs_pass` on the director's bridge port (native XDP_TX on a
    /// veth needs an XDP program on the peer).
    _peer_stub: aya::Ebpf,
}

fn build_topology() -> Result<Topology> {
    let mut lab = Lab::new("xhc");
    let switch = lab.add_switch("switch")?;
    let client = lab.add_netns("client")?;
    switch.plug(&client, "eth0", &format!("{CLIENT_IP}/{PREFIX_LEN}"))?;
    let director = lab.add_netns("director")?;
    let director_if = format!("xhc{}", std::process::id() % 100_000);
    let port = switch.plug(
        &director,
        &director_if,
        &format!("{DIRECTOR_IP}/{PREFIX_LEN}"),
    )?;
    let mut reals = Vec::new();
    for (name, ip) in REALS {
        let real = lab.add_netns(name)?;
        switch.plug(&real, "eth0", &format!("{ip}/{PREFIX_LEN}"))?;
        configure_dr_real(&real, VIP)?;
        reals.push(real);
    }
    let peer_stub = attach_xdp_pass(switch.netns(), &port.bridge_if)?;
    Ok(Topology {
        lab,
        client,
        director,
        director_if,
        reals,
        _peer_stub: peer_stub,
    })
}

impl Topology {
    fn real(&self, name: &str) -> &Netns {
        let i = REALS.iter().position(|(n, _)| *n == name).expect("a real");
        &self.reals[i]
    }

    /// A TCP server on 0.0.0.0:`port` of real `name` that answers its name:
    /// it serves the VIP (client traffic) and the real's own address
    /// (health checks) alike.
    fn tcp_server(&self, name: &str, port: u16) -> Result<TcpResponder> {
        TcpResponder::start(self.real(name), any(port), &format!("{name}\n"))
    }

    /// `count` client connections to VIP:`port`; the names that answered.
    fn requests(&self, port: u16, count: usize) -> Result<BTreeMap<String, usize>> {
        let target: SocketAddr = format!("{VIP}:{port}").parse()?;
        let names: Vec<String> = self.client.run(|| {
            (0..count)
                .map(|_| Ok(fetch_reply(target, IO_TIMEOUT)?.trim().to_string()))
                .collect()
        })?;
        let mut split = BTreeMap::new();
        for name in names {
            *split.entry(name).or_default() += 1;
        }
        Ok(split)
    }
}

fn any(port: u16) -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], port))
}

/// The MD5 of `text` in hex, as genhash prints it (by md5sum).
fn md5_hex(text: &str) -> Result<String> {
    let mut child = Command::new("md5sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("running md5sum")?;
    child
        .stdin
        .take()
        .context("md5sum stdin")?
        .write_all(text.as_bytes())?;
    let out = child.wait_with_output()?;
    ensure!(out.status.success(), "md5sum failed");
    let hex = String::from_utf8(out.stdout)?
        .split_whitespace()
        .next()
        .context("md5sum printed nothing")?
        .to_string();
    ensure!(hex.len() == 32, "md5sum printed {hex:?}");
    Ok(hex)
}

/// The lines a script logged so far.
fn logged(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Waits until `path` holds `want` (the scripts run asynchronously).
fn wait_logged(path: &Path, want: &[&str]) -> Result<()> {
    wait_for(&format!("{}", path.display()), CHANGE_DEADLINE, || {
        Ok((logged(path) == want).then_some(()))
    })
    .with_context(|| format!("{} holds {:?}", path.display(), logged(path)))
}

// ---------------------------------------------------------------------------
// The scenarios

/// Everything the scenarios share.
struct Run<'a> {
    topo: &'a Topology,
    admin: &'a Admin,
    dir: &'a TempDir,
}

/// The state every scenario starts from, once every checker has run.
fn check_initial_state(run: &Run, misc_weight: u32) -> Result<()> {
    let admin = run.admin;
    wait_reals(
        admin,
        "TCP_CHECK reals up",
        "TCP",
        TCP_PORT,
        &reals_at(TCP_PORT, &[("r1", 1), ("r2", 1)]),
    )?;
    wait_reals(
        admin,
        "inhibit reals up",
        "TCP",
        INHIBIT_PORT,
        &reals_at(INHIBIT_PORT, &[("r1", 1), ("r2", 1)]),
    )?;
    // r2's digest is wrong from the start: its first failure takes it out.
    wait_reals(
        admin,
        "HTTP_GET: right digest in, wrong digest out",
        "TCP",
        HTTP_PORT,
        &reals_at(HTTP_PORT, &[("r1", 1), ("r3", 1)]),
    )?;
    wait_reals(
        admin,
        "MISC_CHECK weight from the file",
        "TCP",
        MISC_PORT,
        &reals_at(MISC_PORT, &[("r1", misc_weight)]),
    )?;
    wait_reals(
        admin,
        "UDP_CHECK on a closed port: out",
        "UDP",
        UDP_PORT,
        &BTreeMap::new(),
    )?;
    wait_reals(
        admin,
        "quorum reals up",
        "TCP",
        QUORUM_PORT,
        &reals_at(QUORUM_PORT, &[("r1", 1), ("r2", 1)]),
    )?;
    println!("steady state:\n{}", listing(admin)?.text);
    // Nothing changed state yet: no notify script ran.
    ensure!(
        logged(&run.dir.join("notify.log")).is_empty(),
        "notify scripts ran at start: {:?}",
        logged(&run.dir.join("notify.log"))
    );
    Ok(())
}

/// Scenarios 1 and 7, TCP_CHECK: r1's listener stops → r1 leaves within
/// delay_loop × (retry + 1) + margin, notify_down runs, clients only reach
/// r2; the listener comes back → r1 returns within delay_loop + margin,
/// notify_up runs, clients reach both again.
fn scenario_tcp_check(run: &Run, r1_server: TcpResponder) -> Result<(Duration, Duration)> {
    let (topo, admin) = (run.topo, run.admin);
    let notify_log = run.dir.join("notify.log");
    let split = topo.requests(TCP_PORT, 10)?;
    println!("TCP_CHECK: before, clients reached {split:?}");
    ensure!(split.len() == 2, "rr over both reals: {split:?}");

    drop(r1_server);
    let down = wait_reals(
        admin,
        "r1 out after its listener stopped",
        "TCP",
        TCP_PORT,
        &reals_at(TCP_PORT, &[("r2", 1)]),
    )?;
    let bound = DELAY_LOOP + DELAY_BEFORE_RETRY * RETRY + MARGIN;
    println!("TCP_CHECK: DOWN detected after {down:?} (bound {bound:?})");
    ensure!(down <= bound, "DOWN after {down:?}, bound {bound:?}");
    wait_logged(&notify_log, &["down r1 80"])?;
    let split = topo.requests(TCP_PORT, 10)?;
    println!("TCP_CHECK: r1 out, clients reached {split:?}");
    ensure!(
        split == BTreeMap::from([("r2".to_string(), 10)]),
        "clients reached a dead real: {split:?}"
    );

    let r1_server = topo.tcp_server("r1", TCP_PORT)?;
    let up = wait_reals(
        admin,
        "r1 back after its listener restarted",
        "TCP",
        TCP_PORT,
        &reals_at(TCP_PORT, &[("r1", 1), ("r2", 1)]),
    )?;
    let bound = DELAY_LOOP + MARGIN;
    println!("TCP_CHECK: UP detected after {up:?} (bound {bound:?})");
    ensure!(up <= bound, "UP after {up:?}, bound {bound:?}");
    wait_logged(&notify_log, &["down r1 80", "up r1 80"])?;
    let split = topo.requests(TCP_PORT, 10)?;
    println!("TCP_CHECK: r1 back, clients reached {split:?}");
    ensure!(split.len() == 2, "rr over both reals again: {split:?}");
    drop(r1_server);
    Ok((down, up))
}

/// Scenario 2, inhibit_on_failure: the dead real stays listed at weight 0,
/// and gets no new connections; back at its weight once it answers again.
fn scenario_inhibit(run: &Run, r1_server: TcpResponder) -> Result<()> {
    let (topo, admin) = (run.topo, run.admin);
    drop(r1_server);
    let down = wait_reals(
        admin,
        "r1 at weight 0",
        "TCP",
        INHIBIT_PORT,
        &reals_at(INHIBIT_PORT, &[("r1", 0), ("r2", 1)]),
    )?;
    println!("inhibit_on_failure: r1 at weight 0 after {down:?}");
    let split = topo.requests(INHIBIT_PORT, 6)?;
    ensure!(
        split == BTreeMap::from([("r2".to_string(), 6)]),
        "clients reached the inhibited real: {split:?}"
    );
    let r1_server = topo.tcp_server("r1", INHIBIT_PORT)?;
    let up = wait_reals(
        admin,
        "r1 back at weight 1",
        "TCP",
        INHIBIT_PORT,
        &reals_at(INHIBIT_PORT, &[("r1", 1), ("r2", 1)]),
    )?;
    println!("inhibit_on_failure: r1 back at weight 1 after {up:?}");
    drop(r1_server);
    Ok(())
}

/// Scenario 3, HTTP_GET: r3 starts answering 503 → out; r1 (right digest)
/// stays, r2 (wrong digest) stays out; 200 again → r3 back.
fn scenario_http(run: &Run, r3_http: &HttpResponder) -> Result<()> {
    let admin = run.admin;
    r3_http.set_status(503);
    let down = wait_reals(
        admin,
        "r3 out on HTTP 503",
        "TCP",
        HTTP_PORT,
        &reals_at(HTTP_PORT, &[("r1", 1)]),
    )?;
    println!("HTTP_GET: 503 took r3 out after {down:?}");
    // Stays so: two more delay_loops.
    std::thread::sleep(DELAY_LOOP * 2);
    ensure!(
        listing(admin)?.reals("TCP", HTTP_PORT) == reals_at(HTTP_PORT, &[("r1", 1)]),
        "HTTP_GET: only r1 (right digest) should be in"
    );
    r3_http.set_status(200);
    let up = wait_reals(
        admin,
        "r3 back on HTTP 200",
        "TCP",
        HTTP_PORT,
        &reals_at(HTTP_PORT, &[("r1", 1), ("r3", 1)]),
    )?;
    println!("HTTP_GET: 200 brought r3 back after {up:?}");
    Ok(())
}

/// Scenario 4, MISC_CHECK with misc_dynamic: the weight follows the file.
fn scenario_misc_dynamic(run: &Run) -> Result<()> {
    for weight in [7, 2] {
        std::fs::write(run.dir.join("misc-weight"), format!("{weight}\n"))?;
        let took = wait_reals(
            run.admin,
            &format!("misc_dynamic weight {weight}"),
            "TCP",
            MISC_PORT,
            &reals_at(MISC_PORT, &[("r1", weight)]),
        )?;
        println!("MISC_CHECK: weight {weight} listed after {took:?}");
    }
    Ok(())
}

/// Scenario 5, UDP_CHECK: an echo server on the closed port → in; stopped
/// → out.
fn scenario_udp(run: &Run) -> Result<()> {
    let (topo, admin) = (run.topo, run.admin);
    let addr: SocketAddr = format!("{}:{UDP_PORT}", real_ip("r1")).parse()?;
    let echo = UdpResponder::start(topo.real("r1"), addr, "r1\n")?;
    let up = wait_reals(
        admin,
        "UDP real in once its port answers",
        "UDP",
        UDP_PORT,
        &reals_at(UDP_PORT, &[("r1", 1)]),
    )?;
    println!("UDP_CHECK: r1 in after {up:?}");
    drop(echo);
    let down = wait_reals(
        admin,
        "UDP real out once its port is closed again",
        "UDP",
        UDP_PORT,
        &BTreeMap::new(),
    )?;
    println!("UDP_CHECK: r1 out after {down:?}");
    Ok(())
}

/// Scenario 6, quorum 2 over two reals of weight 1: one real down → the sorry
/// server replaces the reals, quorum_down runs, clients reach the sorry
/// server; back → the reals replace the sorry server, quorum_up runs.
fn scenario_quorum(run: &Run, r2_server: TcpResponder) -> Result<()> {
    let (topo, admin) = (run.topo, run.admin);
    let (up_log, down_log) = (
        run.dir.join("quorum_up.log"),
        run.dir.join("quorum_down.log"),
    );
    let ups_before = logged(&up_log);
    println!("quorum_up ran {} time(s) at start", ups_before.len());
    ensure!(logged(&down_log).is_empty(), "quorum_down ran at start");

    drop(r2_server);
    let lost = wait_reals(
        admin,
        "the sorry server instead of the reals",
        "TCP",
        QUORUM_PORT,
        &reals_at(QUORUM_PORT, &[("r3", 1)]),
    )?;
    println!("quorum: lost, sorry server in after {lost:?}");
    wait_logged(&down_log, &["quorum down 83"])?;
    let split = topo.requests(QUORUM_PORT, 4)?;
    ensure!(
        split == BTreeMap::from([("r3".to_string(), 4)]),
        "clients should reach the sorry server: {split:?}"
    );

    let r2_server = topo.tcp_server("r2", QUORUM_PORT)?;
    let back = wait_reals(
        admin,
        "the reals back, the sorry server gone",
        "TCP",
        QUORUM_PORT,
        &reals_at(QUORUM_PORT, &[("r1", 1), ("r2", 1)]),
    )?;
    println!("quorum: regained, reals back after {back:?}");
    let mut ups: Vec<&str> = ups_before.iter().map(String::as_str).collect();
    ups.push("quorum up 83");
    wait_logged(&up_log, &ups)?;
    wait_logged(&down_log, &["quorum down 83"])?;
    drop(r2_server);
    Ok(())
}

#[test]
fn health_checks_take_reals_out_and_back() -> Result<()> {
    let topo = build_topology()?;
    let prefix = topo.lab.prefix().to_string();
    let dir = TempDir::new("xvs-health-netns")?;
    let dir_path = dir.root().to_path_buf();

    // Scripts: notify/quorum scripts log their arguments; the MISC_CHECK
    // exits 2 + the weight in its file.
    dir.script(
        "record.sh",
        "#!/bin/sh\nlog=\"$1\"\nshift\necho \"$*\" >> \"$log\"\n",
    )?;
    dir.script("misc.sh", "#!/bin/sh\nexit $((2 + $(cat \"$1\")))\n")?;
    let misc_weight = 4;
    std::fs::write(dir.join("misc-weight"), format!("{misc_weight}\n"))?;

    // The reals' services. r1 has no UDP service yet (closed port).
    let mut tcp = BTreeMap::new();
    for (name, port) in [
        ("r1", TCP_PORT),
        ("r2", TCP_PORT),
        ("r1", INHIBIT_PORT),
        ("r2", INHIBIT_PORT),
        ("r1", QUORUM_PORT),
        ("r2", QUORUM_PORT),
        ("r3", QUORUM_PORT),
    ] {
        tcp.insert((name, port), topo.tcp_server(name, port)?);
    }
    let mut http = Vec::new();
    for (name, _) in REALS {
        http.push(HttpResponder::start(
            topo.real(name),
            any(HTTP_PORT),
            200,
            HTTP_BODY,
        )?);
    }

    let conf = dir.join("keepalived.conf");
    let text = FIXTURE
        .replace("%DIRECTOR_IF%", &topo.director_if)
        .replace("%DIR%", dir.path())
        .replace("%DIGEST_OK%", &md5_hex(HTTP_BODY)?);
    std::fs::write(&conf, &text)?;
    let out = Command::new(binary("xvsd")?)
        .arg("-t")
        .arg("-f")
        .arg(&conf)
        .output()?;
    ensure!(
        out.status.success(),
        "xvsd -t: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let args = DaemonArgs {
        conf: &conf,
        iface: &topo.director_if,
        xdp_mode: "native",
        instance: Some("health-e2e"),
        extra: &[],
    };
    let mut daemon = Daemon::start(&topo.director, &args, &dir)?;
    let pid = daemon.pid();
    let admin = Admin::new(&daemon, &topo.director)?;
    wait_ready(&mut daemon, &admin)?;
    let run = Run {
        topo: &topo,
        admin: &admin,
        dir: &dir,
    };
    check_initial_state(&run, misc_weight)?;

    let take = |tcp: &mut BTreeMap<_, TcpResponder>, key| tcp.remove(&key).expect("a server");
    let (down, up) = scenario_tcp_check(&run, take(&mut tcp, ("r1", TCP_PORT)))?;
    scenario_inhibit(&run, take(&mut tcp, ("r1", INHIBIT_PORT)))?;
    scenario_http(&run, &http[2])?;
    scenario_misc_dynamic(&run)?;
    scenario_udp(&run)?;
    scenario_quorum(&run, take(&mut tcp, ("r2", QUORUM_PORT)))?;
    println!(
        "SUMMARY: TCP_CHECK DOWN after {down:?} (bound {:?}), UP after {up:?} (bound {:?})",
        DELAY_LOOP + DELAY_BEFORE_RETRY * RETRY + MARGIN,
        DELAY_LOOP + MARGIN
    );

    daemon.stop()?;
    drop(daemon);
    drop((tcp, http));
    drop(topo);
    drop(dir);
    ensure!(!process_exists(pid), "xvsd {pid} still running");
    let left = namespaces_left(&prefix);
    ensure!(left.is_empty(), "namespaces left behind: {left:?}");
    ensure!(!dir_path.exists(), "{} left behind", dir_path.display());
    Ok(())
}

// ---------------------------------------------------------------------------
// Scale

const SCALE_IP: &str = "10.213.1.1";
const SCALE_FIRST_PORT: u16 = 20_000;
const SCALE_CHECKERS: u16 = 2_000;
/// From the start until every checker has run for a while.
const SCALE_WARMUP: Duration = Duration::from_secs(3);
const SCALE_MEASURE: Duration = Duration::from_secs(10);
const BUCKET: Duration = Duration::from_millis(10);

/// Accepts on every port of `ports` from one thread (epoll), recording
/// (port index, time) per connection, and closes each at once. Dropping it
/// stops the thread.
struct ProbeSink {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Result<Vec<Probe>>>>,
}

/// One accepted probe: the index of its port, and when.
type Probe = (u16, Instant);

impl ProbeSink {
    fn start(ns: &Netns, ip: &str, ports: std::ops::Range<u16>) -> Result<ProbeSink> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let ip: std::net::Ipv4Addr = ip.parse()?;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = spawn_in_netns(ns.name(), move || {
            let bound = ports
                .clone()
                .map(|p| {
                    let l = TcpListener::bind((ip, p))?;
                    l.set_nonblocking(true)?;
                    Ok(l)
                })
                .collect::<std::io::Result<Vec<_>>>();
            let listeners = match bound {
                Ok(l) => l,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return Ok(Vec::new());
                }
            };
            let epoll = Epoll::new()?;
            for (i, l) in listeners.iter().enumerate() {
                epoll.add(l.as_raw_fd(), i as u64)?;
            }
            let _ = ready_tx.send(Ok(()));
            let mut seen = Vec::new();
            let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
            while !stopping.load(Ordering::SeqCst) {
                for i in epoll.wait(&mut events, 100)? {
                    while let Ok((stream, _)) = listeners[i as usize].accept() {
                        seen.push((i as u16, Instant::now()));
                        drop(stream);
                    }
                }
            }
            Ok(seen)
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .context("probe sink did not start")?
            .context("binding the scale listeners")?;
        Ok(ProbeSink {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops and returns every accepted connection.
    fn finish(mut self) -> Result<Vec<Probe>> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .take()
            .expect("running")
            .join()
            .map_err(|_| anyhow!("probe sink panicked"))?
    }
}

impl Drop for ProbeSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A level-triggered epoll set.
struct Epoll(std::os::fd::OwnedFd);

impl Epoll {
    fn new() -> Result<Epoll> {
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        ensure!(
            fd >= 0,
            "epoll_create1: {}",
            std::io::Error::last_os_error()
        );
        Ok(Epoll(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) }))
    }

    fn add(&self, fd: i32, token: u64) -> Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        let rc = unsafe { libc::epoll_ctl(self.0.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) };
        ensure!(rc == 0, "epoll_ctl: {}", std::io::Error::last_os_error());
        Ok(())
    }

    /// The tokens of the ready fds, waiting at most `timeout_ms`.
    fn wait(&self, events: &mut [libc::epoll_event], timeout_ms: i32) -> Result<Vec<u64>> {
        let n = unsafe {
            libc::epoll_wait(
                self.0.as_raw_fd(),
                events.as_mut_ptr(),
                events.len() as i32,
                timeout_ms,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                return Ok(Vec::new());
            }
            bail!("epoll_wait: {e}");
        }
        Ok(events[..n as usize].iter().map(|e| e.u64).collect())
    }
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses: state is
    // field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').context("/proc stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(ticks as f64 / hz)
}

/// Enough file descriptors for the listeners (and, inherited, for xvsd's
/// probes): the hard limit.
fn raise_nofile() -> Result<()> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    ensure!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0);
    lim.rlim_cur = lim.rlim_max;
    ensure!(
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } == 0,
        "setrlimit: {}",
        std::io::Error::last_os_error()
    );
    Ok(())
}

#[test]
fn two_thousand_tcp_checks_stay_under_one_core() -> Result<()> {
    raise_nofile()?;
    let mut lab = Lab::new("xhs");
    let prefix = lab.prefix().to_string();
    let ns = lab.add_netns("scale")?;
    // A veth pair to attach to (generic XDP; this kernel has no dummy
    // links); the reals are this namespace's own address, so they need no
    // MAC.
    ns.ip(&["link", "add", "xs0", "type", "veth", "peer", "name", "xs1"])?;
    for iface in ["xs0", "xs1"] {
        ns.ip(&["link", "set", iface, "up"])?;
    }
    ns.add_addr("xs0", &format!("{SCALE_IP}/24"))?;
    let dir = TempDir::new("xvs-health-scale")?;
    let dir_path = dir.root().to_path_buf();

    let ports = SCALE_FIRST_PORT..SCALE_FIRST_PORT + SCALE_CHECKERS;
    let mut text = SCALE_HEAD.to_string();
    for port in ports.clone() {
        text.push('\n');
        text.push_str(&SCALE_VS.replace("%PORT%", &port.to_string()));
    }
    let conf = dir.join("keepalived.conf");
    std::fs::write(&conf, &text)?;

    let sink = ProbeSink::start(&ns, SCALE_IP, ports.clone())?;
    let args = DaemonArgs {
        conf: &conf,
        iface: "xs0",
        xdp_mode: "skb",
        instance: Some("health-scale"),
        extra: &[],
    };
    let mut daemon = Daemon::start(&ns, &args, &dir)?;
    let pid = daemon.pid();
    let admin = Admin::new(&daemon, &ns)?;
    wait_ready(&mut daemon, &admin)?;
    let started = Instant::now();
    std::thread::sleep(SCALE_WARMUP);
    let (cpu0, t0) = (cpu_seconds(pid)?, Instant::now());
    std::thread::sleep(SCALE_MEASURE);
    let (cpu1, t1) = (cpu_seconds(pid)?, Instant::now());
    ensure!(daemon.is_running()?, "xvsd exited:\n{}", daemon.log());
    let listing = listing(&admin)?;
    let listed: usize = listing.services.values().map(BTreeMap::len).sum();
    daemon.stop()?;
    let seen = sink.finish()?;
    let cpu = (cpu1 - cpu0) / (t1 - t0).as_secs_f64();

    // Probes per port and per second, and the busiest 10 ms of each second
    // (2,000 evenly spread probes make 20 per bucket).
    let window: Vec<(u16, Duration)> = seen
        .iter()
        .filter(|(_, t)| *t >= t0 && *t < t1)
        .map(|(p, t)| (*p, *t - t0))
        .collect();
    let mut per_port = vec![0u32; SCALE_CHECKERS as usize];
    let seconds = SCALE_MEASURE.as_secs() as usize;
    let buckets_per_s = (Duration::from_secs(1).as_millis() / BUCKET.as_millis()) as usize;
    let mut buckets = vec![vec![0u32; buckets_per_s]; seconds];
    for (port, at) in &window {
        per_port[*port as usize] += 1;
        let b = (at.as_millis() / BUCKET.as_millis()) as usize;
        if b / buckets_per_s < seconds {
            buckets[b / buckets_per_s][b % buckets_per_s] += 1;
        }
    }
    let per_second: Vec<u32> = buckets.iter().map(|s| s.iter().sum()).collect();
    let max_bucket: Vec<u32> = buckets
        .iter()
        .map(|s| *s.iter().max().unwrap_or(&0))
        .collect();
    let empty_buckets: Vec<usize> = buckets
        .iter()
        .map(|s| s.iter().filter(|&&n| n == 0).count())
        .collect();
    let (min_port, max_port) = (
        *per_port.iter().min().unwrap_or(&0),
        *per_port.iter().max().unwrap_or(&0),
    );
    println!(
        "SCALE: {SCALE_CHECKERS} TCP_CHECKs at delay_loop 1, {listed} reals listed, \
         measured {:?} from {:?} after ready",
        t1 - t0,
        t0 - started
    );
    println!("SCALE: xvsd CPU {:.1}% of one core", cpu * 100.0);
    println!("SCALE: probes per second: {per_second:?}");
    println!("SCALE: probes per port over the window: min {min_port}, max {max_port}");
    println!(
        "SCALE: busiest {}ms bucket per second: {max_bucket:?} (even spread: {})",
        BUCKET.as_millis(),
        SCALE_CHECKERS as usize / buckets_per_s
    );
    println!("SCALE: empty buckets per second: {empty_buckets:?}");
    println!(
        "SCALE: probes per {}ms bucket in the first second: {:?}",
        BUCKET.as_millis(),
        buckets[0]
    );

    ensure!(
        listed == SCALE_CHECKERS as usize,
        "every local real should be up:\n{}",
        listing.text
    );
    ensure!(cpu < 1.0, "xvsd used {:.1}% of a core", cpu * 100.0);
    // A loose bound on bursts, far above what a spread-out schedule gives
    // (about 20 per bucket): it catches checkers firing all at once.
    let burst = max_bucket.iter().copied().max().unwrap_or(0);
    ensure!(
        burst <= u32::from(SCALE_CHECKERS) / 4,
        "{burst} probes within {}ms",
        BUCKET.as_millis()
    );
    // Each checker probes every delay_loop plus its probe's time.
    let expected = SCALE_MEASURE.as_secs() as u32;
    ensure!(
        min_port + 1 >= expected * 8 / 10 && max_port <= expected + 1,
        "probes per port {min_port}..{max_port}, expected about {expected}"
    );

    drop(daemon);
    drop(lab);
    drop(dir);
    ensure!(!process_exists(pid), "xvsd {pid} still running");
    let left = namespaces_left(&prefix);
    ensure!(left.is_empty(), "namespaces left behind: {left:?}");
    ensure!(!dir_path.exists(), "{} left behind", dir_path.display());
    Ok(())
}
