//! The lab of `cargo xtask lab`: a client, two directors running xvsd on
//! `examples/keepalived-lab.conf` and three real servers, each in a network
//! namespace on one bridge (see [`crate::lab`]), and the steps that show
//! what XVS does. The `xvs-lab` binary prints them; the end-to-end tests
//! (`tests/tests/lab_e2e.rs`) run the same steps and assert on what they
//! return.
//!
//! Everything a lab creates carries its tag (default `xvslab`): namespaces
//! `<tag>-…`, files under `/run/<tag>`, pins under `/sys/fs/bpf/<tag>`, and
//! processes whose command line names those files. [`down`] finds and
//! removes all of it by those names, so it also clears what a crashed run
//! left behind.

use anyhow::{bail, ensure, Context, Result};
use std::{
    collections::BTreeMap,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use crate::{
    daemon::{binary, wait_for},
    lab::{outage, DrLab, LabOptions, Prober, RealServers, Shape, Tally, DIRECTOR_IF},
    netns::{run, Netns},
};

/// The lab's keepalived.conf, as director 1 runs it (a file users copy).
pub const CONF: &str = include_str!("../../examples/keepalived-lab.conf");
/// Second octet of the lab's 10.x.0.0/24 (the addresses in [`CONF`]).
pub const SUBNET: u8 = 77;
/// The HTTP service's wrr weights of real1..real3, as in [`CONF`].
pub const WEIGHTS: [u32; 3] = [1, 2, 3];
/// VRRP in [`CONF`]: advert_int, and the backup's priority.
pub const ADVERT_INT: Duration = Duration::from_secs(1);
pub const BACKUP_PRIORITY: u32 = 100;
/// Health checks in [`CONF`]: delay_loop, retry, delay_before_retry.
pub const CHECK_TIME: Duration = Duration::from_secs(1 + 1);
/// The tag of `cargo xtask lab`'s lab.
pub const DEFAULT_TAG: &str = "xvslab";

/// A waiting limit far beyond every bound the lab reports against.
const LONG: Duration = Duration::from_secs(20);

/// Director `i`'s configuration: [`CONF`] itself for director 1; for
/// director 2, the lines the file marks DIRECTOR changed.
pub fn director_conf(i: usize) -> Result<String> {
    if i == 0 {
        return Ok(CONF.to_string());
    }
    let conf = CONF
        .replacen("    state MASTER\n", "    state BACKUP\n", 1)
        .replacen(
            "    priority 150\n",
            &format!("    priority {BACKUP_PRIORITY}\n"),
            1,
        );
    ensure!(
        conf.contains("    state BACKUP\n")
            && conf.contains(&format!("    priority {BACKUP_PRIORITY}\n")),
        "examples/keepalived-lab.conf has no `state MASTER` / `priority 150` lines to change"
    );
    Ok(conf)
}

/// The VRRP bound of a failover: a BACKUP takes over once the MASTER has
/// been silent for 3 × advert_int + skew, skew = (256 - priority) / 256 ×
/// advert_int.
pub fn vrrp_bound() -> Duration {
    ADVERT_INT * 3 + ADVERT_INT.mul_f64((256 - BACKUP_PRIORITY) as f64 / 256.0)
}

/// Where a lab lives, by its tag.
#[derive(Clone, Debug)]
pub struct Site {
    pub tag: String,
}

impl Site {
    pub fn new(tag: &str) -> Result<Site> {
        ensure!(
            !tag.is_empty()
                && tag.len() <= 12
                && tag
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
            "bad lab tag {tag:?}: 1 to 12 lowercase letters and digits"
        );
        Ok(Site {
            tag: tag.to_string(),
        })
    }

    /// The namespaces' prefix.
    pub fn prefix(&self) -> String {
        format!("{}-", self.tag)
    }

    /// Configurations, sockets, logs.
    pub fn state_dir(&self) -> PathBuf {
        Path::new("/run").join(&self.tag)
    }

    /// The peer stubs' pinned XDP links of a lab left `up`.
    pub fn pin_dir(&self) -> PathBuf {
        Path::new("/sys/fs/bpf").join(&self.tag)
    }

    pub fn namespace(&self, short: &str) -> String {
        format!("{}{short}", self.prefix())
    }

    /// The namespaces of this lab that exist.
    pub fn namespaces(&self) -> Result<Vec<String>> {
        let prefix = self.prefix();
        Ok(run("ip", &["netns", "list"])?
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| n.starts_with(&prefix))
            .map(String::from)
            .collect())
    }

    /// Pins of this lab on the host's bpffs: the stubs' links, and an
    /// xvsd instance directory should one have pinned there.
    pub fn pins(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        if self.pin_dir().exists() {
            out.push(self.pin_dir());
        }
        if let Ok(dir) = std::fs::read_dir("/sys/fs/bpf/xvs") {
            for e in dir.flatten() {
                if e.file_name().to_string_lossy().starts_with(&self.prefix()) {
                    out.push(e.path());
                }
            }
        }
        out
    }

    /// Processes of this lab: those whose arguments name its files (xvsd's
    /// `-f`, the servers' `--lab-dir`), and any other in its namespaces.
    pub fn processes(&self) -> Result<Vec<(i32, String)>> {
        let dir = self.state_dir();
        let mut out = BTreeMap::new();
        for entry in std::fs::read_dir("/proc")?.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
            else {
                continue;
            };
            let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let args: Vec<String> = raw
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            if args.iter().any(|a| Path::new(a).starts_with(&dir)) && !is_zombie(pid) {
                out.insert(pid, args.join(" ").trim().to_string());
            }
        }
        for ns in self.namespaces()? {
            let pids = run("ip", &["netns", "pids", &ns]).unwrap_or_default();
            for pid in pids
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
            {
                if !is_zombie(pid) {
                    out.entry(pid).or_insert_with(|| command_line(pid));
                }
            }
        }
        Ok(out.into_iter().collect())
    }

    /// Whatever of this lab exists: empty when nothing is left.
    pub fn leftovers(&self) -> Result<Vec<String>> {
        let mut out: Vec<String> = self
            .namespaces()?
            .into_iter()
            .map(|n| format!("namespace {n}"))
            .collect();
        out.extend(
            self.pins()
                .into_iter()
                .map(|p| format!("pin {}", p.display())),
        );
        out.extend(
            self.processes()?
                .into_iter()
                .map(|(pid, cmd)| format!("process {pid}: {cmd}")),
        );
        if self.state_dir().exists() {
            out.push(format!("directory {}", self.state_dir().display()));
        }
        Ok(out)
    }
}

fn command_line(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            raw.split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
                .trim()
                .to_string()
        })
        .unwrap_or_default()
}

/// Gone, or a zombie (an exited child not reaped yet).
fn is_zombie(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
        Err(_) => true,
    }
}

/// What the lab needs from the host, each with a clear message: root,
/// iproute2, network namespaces, the BPF filesystem, the binaries, and no
/// lab of the same tag already up.
pub fn check_host(site: &Site) -> Result<()> {
    // SAFETY: plain geteuid(2).
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "the lab needs root: it creates network namespaces and loads XDP programs \
             (run it as root, e.g. `sudo -E cargo xtask lab`)"
        );
    }
    run("ip", &["-V"])
        .context("iproute2's `ip` is needed (apt-get install iproute2)")
        .map(drop)?;
    if !Path::new("/proc/self/ns/net").exists() {
        bail!("this kernel has no network namespaces (CONFIG_NET_NS): the lab cannot run");
    }
    let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if !filesystems
        .lines()
        .any(|l| l.split_whitespace().last() == Some("bpf"))
    {
        bail!(
            "this kernel has no BPF filesystem (bpffs, CONFIG_BPF_SYSCALL): XDP programs \
             cannot be loaded or pinned"
        );
    }
    for name in ["xvsd", "xvsadm"] {
        binary(name)?;
    }
    let up = site.namespaces()?;
    if !up.is_empty() {
        bail!(
            "a lab is already up, or was left behind ({}): `cargo xtask lab down` removes it",
            up.join(", ")
        );
    }
    Ok(())
}

/// xvsd's XDP mode in the lab: `auto` (native, else SKB with a notice),
/// or what `XVS_LAB_XDP_MODE` says (`native`, `skb`).
fn xdp_mode() -> Result<&'static str> {
    match std::env::var("XVS_LAB_XDP_MODE").as_deref() {
        Err(_) | Ok("auto") => Ok("auto"),
        Ok("native") => Ok("native"),
        Ok("skb") => Ok("skb"),
        Ok(other) => bail!("XVS_LAB_XDP_MODE={other:?}: use auto, native or skb"),
    }
}

/// Prints a step's title: `[n/8]` when the lab walks through all 8.
fn step(n: usize, title: &str, walk: bool) {
    if walk {
        println!("\n==> [{n}/8] {title}");
    } else {
        println!("\n==> {title}");
    }
}

/// The lab: [`DrLab`] with the shape and files of `cargo xtask lab`.
pub struct Showcase {
    pub site: Site,
    pub lab: DrLab,
    /// The director that is MASTER, as last seen.
    pub master: usize,
    /// Whether the steps are numbered (all 8 run, not `up`).
    walk: bool,
}

impl Showcase {
    /// Step 1: the topology. `server` is the `xvs-lab` binary (it runs the
    /// real servers); `detach` lets everything outlive this process.
    pub fn build(site: &Site, server: &Path, detach: bool) -> Result<Showcase> {
        step(
            1,
            "Topology: a client, 2 directors and 3 real servers on one bridge",
            !detach,
        );
        let options = LabOptions {
            prefix: Some(site.prefix()),
            state_dir: Some(site.state_dir()),
            reals: RealServers::Processes {
                server: server.to_path_buf(),
            },
            xdp_mode: xdp_mode()?,
            detach,
            pin_dir: detach.then(|| site.pin_dir()),
            metrics: true,
        };
        if detach {
            xvs::dataplane::pins::ensure_bpffs(Path::new(xvs::dataplane::pins::BPFFS_ROOT))?;
        }
        let lab = DrLab::build_with(
            Shape {
                tag: DEFAULT_TAG,
                subnet: SUBNET,
                directors: 2,
                reals: 3,
                directors_are_reals: false,
            },
            options,
        )?;
        println!(
            "    bridge br0 in namespace {}; 10.{SUBNET}.0.0/24; VIP {}",
            lab.switch.name(),
            lab.vip
        );
        println!(
            "    {:<8} {:<14} {}",
            "client",
            lab.client_ip,
            lab.client.name()
        );
        for d in &lab.directors {
            println!("    {:<8} {:<14} {}", d.name, d.ip, d.ns.name());
        }
        for (r, w) in lab.reals.iter().zip(WEIGHTS) {
            println!(
                "    {:<8} {:<14} {}   `xvsadm realserver up --vip {}`; HTTP :80 and UDP echo :3478 (pids {} {}); weight {w}",
                r.name,
                r.ip,
                r.ns.name(),
                lab.vip,
                r.http.as_ref().map_or(0, |p| p.pid()),
                r.udp.as_ref().map_or(0, |p| p.pid()),
            );
        }
        for notice in &lab.notices {
            println!("    NOTICE: {notice}");
        }
        Ok(Showcase {
            site: site.clone(),
            lab,
            master: 0,
            walk: !detach,
        })
    }

    /// Step 2: xvsd on both directors; waits for one MASTER and for the
    /// health checks to let every real in.
    pub fn start_directors(&mut self) -> Result<()> {
        step(
            2,
            "xvsd on both directors, from examples/keepalived-lab.conf",
            self.walk,
        );
        let started = Instant::now();
        for i in 0..self.lab.directors.len() {
            let conf = director_conf(i)?;
            self.lab.start_director(i, &conf)?;
            let d = &self.lab.directors[i];
            println!(
                "    {}: xvsd pid {} (state {}, priority {}), control socket {}",
                d.name,
                d.daemon.as_ref().map_or(0, |d| d.pid()),
                if i == 0 { "MASTER" } else { "BACKUP" },
                if i == 0 { 150 } else { BACKUP_PRIORITY },
                self.lab.socket(i).display()
            );
        }
        self.master = self.lab.wait_single_master(LONG)?;
        let status = self.lab.directors[self.master]
            .daemon
            .as_ref()
            .context("no xvsd")?
            .status()?;
        println!(
            "    {} is MASTER after {:.1} s: it holds VIP {} on {DIRECTOR_IF} and its XDP program forwards ({} mode); {} is BACKUP",
            self.name(self.master),
            started.elapsed().as_secs_f64(),
            self.lab.vip,
            status.xdp_mode,
            self.name(1 - self.master),
        );
        if !status.xdp_mode.contains("native") && !status.xdp_mode.contains("driver") {
            println!(
                "    NOTICE: XDP runs in {} mode here (native attach failed, or was not tried): \
                 the same behaviour, without the fast path",
                status.xdp_mode
            );
        }
        let healthy = self.wait_listed(3, LONG)?;
        println!(
            "    health checks: all {} real servers in service ({:.1} s later)",
            self.lab.reals.len(),
            healthy.as_secs_f64()
        );
        Ok(())
    }

    pub fn name(&self, i: usize) -> &str {
        &self.lab.directors[i].name
    }

    /// `xvsadm ARGS` on director `i`.
    pub fn xvsadm(&self, i: usize, args: &[&str]) -> Result<String> {
        self.lab.admin(i)?.run(args)
    }

    /// The services of director `i`'s `xvsadm -L -n`, with their reals.
    pub fn services(&self, i: usize) -> Result<BTreeMap<String, Vec<String>>> {
        Ok(services_in(&self.xvsadm(i, &["-L", "-n"])?))
    }

    /// The reals the master lists for the HTTP service.
    pub fn http_reals(&self) -> Result<Vec<String>> {
        let services = self.services(self.master)?;
        Ok(services
            .iter()
            .find(|(s, _)| s.starts_with("TCP "))
            .map(|(_, r)| r.clone())
            .unwrap_or_default())
    }

    /// Waits until the master lists `n` reals in every service.
    fn wait_listed(&self, n: usize, limit: Duration) -> Result<Duration> {
        let start = Instant::now();
        wait_for(&format!("{n} reals in every service"), limit, || {
            let services = self.services(self.master)?;
            Ok((services.len() == 2 && services.values().all(|r| r.len() == n)).then_some(()))
        })?;
        Ok(start.elapsed())
    }

    /// Step 3: `n` HTTP requests, and the share of each real against the
    /// weights; then `udp` datagrams from as many source ports.
    pub fn distribution(&self, n: usize, udp: usize) -> Result<(Tally, Tally)> {
        step(
            3,
            &format!(
                "The client makes {n} HTTP requests to {}",
                self.lab.service()
            ),
            self.walk,
        );
        let started = Instant::now();
        let tally = self.lab.http_requests(n)?;
        let total_weight: u32 = WEIGHTS.iter().sum();
        println!(
            "    {:<6} {:>6} {:>9} {:>7} {:>9}",
            "real", "weight", "requests", "share", "expected"
        );
        for (r, w) in self.lab.reals.iter().zip(WEIGHTS) {
            let got = tally.count(&r.name);
            println!(
                "    {:<6} {:>6} {:>9} {:>6.1}% {:>8.1}%  {}",
                r.name,
                w,
                got,
                100.0 * got as f64 / n as f64,
                100.0 * w as f64 / total_weight as f64,
                "#".repeat((40 * got).div_ceil(n.max(1)))
            );
        }
        println!(
            "    {} failed; {:.1} s ({:.0} connections/s)",
            tally.failed,
            started.elapsed().as_secs_f64(),
            n as f64 / started.elapsed().as_secs_f64()
        );
        println!(
            "    UDP: {udp} datagrams to {}, each from a new source port (persistence_timeout 50):",
            self.lab.udp_service()
        );
        let udp = self.lab.udp_requests(udp)?;
        println!(
            "    answered by {}; {} failed",
            udp.per_real
                .iter()
                .map(|(r, n)| format!("{r} ×{n}"))
                .collect::<Vec<_>>()
                .join(", "),
            udp.failed
        );
        Ok((tally, udp))
    }

    /// Step 4: `xvsadm -L -n` and `--stats` from the master.
    pub fn show_listing(&self) -> Result<String> {
        let m = self.master;
        step(
            4,
            &format!(
                "xvsadm -L -n and -L -n --stats on the MASTER, {}",
                self.name(m)
            ),
            self.walk,
        );
        let listing = self.xvsadm(m, &["-L", "-n"])?;
        print_indented(&listing);
        println!();
        print_indented(&self.xvsadm(m, &["-L", "-n", "--stats"])?);
        Ok(listing)
    }

    /// Step 5: SIGKILL real `r`'s HTTP server; returns how long until it
    /// left the listing, and `n` requests made after that.
    pub fn kill_real(&mut self, r: usize, n: usize) -> Result<(Duration, Tally)> {
        let name = self.lab.reals[r].name.clone();
        let addr = format!("{}:80", self.lab.reals[r].ip);
        step(
            5,
            &format!("Health checks: SIGKILL {name}'s HTTP server"),
            self.walk,
        );
        let killed = Instant::now();
        self.lab.kill_http(r)?;
        wait_for(&format!("{name} out of the listing"), LONG, || {
            Ok((!self.http_reals()?.contains(&addr)).then_some(()))
        })?;
        let took = killed.elapsed();
        println!(
            "    {name} ({addr}) left the HTTP service after {:.1} s (TCP_CHECK every 1 s, out after the check and its 1 retry fail: ~{} s)",
            took.as_secs_f64(),
            CHECK_TIME.as_secs()
        );
        Ok((took, self.requests_per_real(n)?))
    }

    /// `n` HTTP requests, printed as how many each real answered.
    fn requests_per_real(&self, n: usize) -> Result<Tally> {
        let tally = self.lab.http_requests(n)?;
        println!(
            "    {n} requests: {}; {} failed",
            self.lab
                .reals
                .iter()
                .map(|r| format!("{} {}", r.name, tally.count(&r.name)))
                .collect::<Vec<_>>()
                .join(", "),
            tally.failed
        );
        Ok(tally)
    }

    /// Step 6: real `r`'s HTTP server back; how long until it is listed
    /// again, and `n` requests made after that.
    pub fn restore_real(&mut self, r: usize, n: usize) -> Result<(Duration, Tally)> {
        let name = self.lab.reals[r].name.clone();
        let addr = format!("{}:80", self.lab.reals[r].ip);
        step(6, &format!("{name}'s HTTP server back"), self.walk);
        let started = Instant::now();
        self.lab.restart_http(r)?;
        wait_for(&format!("{name} back in the listing"), LONG, || {
            Ok(self.http_reals()?.contains(&addr).then_some(()))
        })?;
        let took = started.elapsed();
        println!(
            "    {name} is back in the HTTP service after {:.1} s (one passed check)",
            took.as_secs_f64()
        );
        Ok((took, self.requests_per_real(n)?))
    }

    /// Step 7: SIGKILL the MASTER's xvsd while the client sends a request
    /// every 10 ms.
    pub fn failover(&mut self) -> Result<Failover> {
        let old = self.master;
        let new = 1 - old;
        step(
            7,
            &format!(
                "Failover: the client sends a request every 10 ms; SIGKILL {}'s xvsd (the MASTER)",
                self.name(old)
            ),
            self.walk,
        );
        let before = self.services(old)?;
        let prober = Prober::http(
            &self.lab.client,
            self.lab.service(),
            Duration::from_millis(10),
        );
        prober.wait_success_after(Instant::now(), LONG)?;
        std::thread::sleep(Duration::from_millis(500));
        let killed = Instant::now();
        self.lab.kill_director(old)?;
        self.lab.wait_master(new, LONG)?;
        let takeover = killed.elapsed();
        prober.wait_success_after(Instant::now(), LONG)?;
        std::thread::sleep(Duration::from_millis(300));
        let record = prober.finish();
        let gap = outage(&record, killed)?;
        let after_kill: Vec<_> = record.iter().filter(|(t, _)| *t >= killed).collect();
        let failed = after_kill.iter().filter(|(_, r)| r.is_none()).count();
        self.master = new;
        let after = self.services(new)?;
        println!(
            "    {} is MASTER {:.2} s after the kill",
            self.name(new),
            takeover.as_secs_f64()
        );
        println!(
            "    the client's outage: {:.2} s ({failed} of {} requests failed); VRRP's bound: a BACKUP takes over 3 × advert_int + skew = {:.2} s after the last advert it heard",
            gap.as_secs_f64(),
            after_kill.len(),
            vrrp_bound().as_secs_f64()
        );
        println!(
            "    xvsadm -L -n on {}: {}",
            self.name(new),
            if after == before {
                "the same services and real servers as on the old MASTER".to_string()
            } else {
                format!("DIFFERENT from the old MASTER's: {after:?} vs {before:?}")
            }
        );
        Ok(Failover {
            old,
            new,
            takeover,
            outage: gap,
            failed,
            services_before: before,
            services_after: after,
        })
    }

    /// Step 8: the old MASTER's xvsd again; with the higher priority it
    /// takes the VIP back. Returns how long that took.
    pub fn restart(&mut self, i: usize) -> Result<Duration> {
        step(8, &format!("Restart {}'s xvsd", self.name(i)), self.walk);
        let started = Instant::now();
        self.lab.start_director(i, &director_conf(i)?)?;
        self.lab.wait_master(i, LONG)?;
        let m = self.lab.wait_single_master(LONG)?;
        ensure!(m == i, "{} should have preempted", self.name(i));
        self.master = m;
        let took = started.elapsed();
        println!(
            "    {} is MASTER again after {:.1} s (priority 150 preempts 100); {} is BACKUP",
            self.name(i),
            took.as_secs_f64(),
            self.name(1 - i)
        );
        Ok(took)
    }

    /// Stops both xvsd cleanly (SIGTERM: the MASTER hands over and removes
    /// its VIP) and removes the lab (the Drop guards).
    pub fn shut_down(mut self) -> Result<()> {
        println!("\n==> Tearing the lab down");
        let mut result = Ok(());
        for i in 0..self.lab.directors.len() {
            let name = self.name(i).to_string();
            match self.lab.stop_director(i) {
                Ok(()) => println!("    {name}: xvsd stopped (SIGTERM)"),
                Err(e) => result = Err(e.context(format!("stopping {name}'s xvsd"))),
            }
        }
        let namespaces = self.lab.lab.namespace_names();
        drop(self);
        println!(
            "    deleted the namespaces {} (and the veths in them)",
            namespaces.join(" ")
        );
        result
    }

    /// How to use a lab left running (`xvs-lab up`).
    pub fn print_usage(&self) -> Result<()> {
        let xvsadm = binary("xvsadm")?;
        let lab = &self.lab;
        println!("\nThe lab is up, and stays up until `cargo xtask lab down`.\n");
        println!("Enter a namespace (each is a host of the lab):");
        println!(
            "    ip netns exec {} bash       # the client, {}",
            lab.client.name(),
            lab.client_ip
        );
        for d in &lab.directors {
            println!(
                "    ip netns exec {} bash         # {}, {}",
                d.ns.name(),
                d.name,
                d.ip
            );
        }
        for r in &lab.reals {
            println!(
                "    ip netns exec {} bash        # {}, {}",
                r.ns.name(),
                r.name,
                r.ip
            );
        }
        println!("\nFrom the client:");
        println!(
            "    ip netns exec {} curl -s http://{}/",
            lab.client.name(),
            lab.vip
        );
        println!(
            "    for i in $(seq 60); do ip netns exec {} curl -s http://{}/; done | sort | uniq -c",
            lab.client.name(),
            lab.vip
        );
        println!("\nxvsadm, per director (each xvsd has its own control socket):");
        for (i, d) in lab.directors.iter().enumerate() {
            let role = if i == self.master { "MASTER" } else { "BACKUP" };
            println!(
                "    {} ({role}): ip netns exec {} {} --socket {} -L -n --stats",
                d.name,
                d.ns.name(),
                xvsadm.display(),
                lab.socket(i).display()
            );
        }
        println!("\nFiles: configuration, log and socket of each director:");
        for d in &lab.directors {
            println!(
                "    {}: {}/{{keepalived.conf,xvsd.log,xvsd.sock}}  (xvsd pid {})",
                d.name,
                d.dir.root().display(),
                d.daemon.as_ref().map_or(0, |x| x.pid())
            );
        }
        let m = &lab.directors[self.master];
        println!(
            "\nFail over: kill -9 {}   # {}'s xvsd; then `cargo xtask lab status`",
            m.daemon.as_ref().map_or(0, |x| x.pid()),
            m.name
        );
        println!("Tear down: cargo xtask lab down");
        Ok(())
    }
}

/// What [`Showcase::failover`] measured.
#[derive(Debug)]
pub struct Failover {
    pub old: usize,
    pub new: usize,
    /// Kill to the new MASTER holding the VIP and forwarding.
    pub takeover: Duration,
    /// The client's longest wait between two answered requests.
    pub outage: Duration,
    pub failed: usize,
    pub services_before: BTreeMap<String, Vec<String>>,
    pub services_after: BTreeMap<String, Vec<String>>,
}

fn print_indented(text: &str) {
    for line in text.lines() {
        println!("    {line}");
    }
}

/// The services of an `xvsadm -L -n` listing (their header line, e.g.
/// `TCP  10.77.0.100:80 wrr`) and the `ADDR:PORT` of their reals.
pub fn services_in(listing: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current = None;
    for line in listing.lines() {
        if line.starts_with("TCP ") || line.starts_with("UDP ") {
            let key = line.split_whitespace().collect::<Vec<_>>().join(" ");
            out.entry(key.clone()).or_default();
            current = Some(key);
        } else if let Some(rest) = line.trim_start().strip_prefix("-> ") {
            let addr = rest.split_whitespace().next().unwrap_or_default();
            if let (Some(key), false) = (&current, addr.starts_with("RemoteAddress")) {
                out.get_mut(key).unwrap().push(addr.to_string());
            }
        }
    }
    out
}

/// `xvs-lab down`: stops every process of the lab (SIGTERM, so a MASTER
/// hands over and removes its VIP; SIGKILL after 6 s), deletes its
/// namespaces (and the veths in them), its pins and its files. Returns what
/// it removed.
pub fn down(site: &Site) -> Result<Vec<String>> {
    let mut done = Vec::new();
    let procs = site.processes()?;
    for (pid, cmd) in &procs {
        // SAFETY: plain kill(2).
        unsafe { libc::kill(*pid, libc::SIGTERM) };
        done.push(format!("stopped process {pid}: {cmd}"));
    }
    let deadline = Instant::now() + Duration::from_secs(6);
    while procs.iter().any(|(p, _)| !is_zombie(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for (pid, _) in &procs {
        if !is_zombie(*pid) {
            // SAFETY: plain kill(2).
            unsafe { libc::kill(*pid, libc::SIGKILL) };
        }
    }
    let mut errors = Vec::new();
    // Newest first: hosts before the switch their veths plug into.
    let mut namespaces = site.namespaces()?;
    namespaces.sort_by_key(|n| n.ends_with("-sw"));
    for ns in namespaces {
        match run("ip", &["netns", "del", &ns]) {
            Ok(_) => done.push(format!("deleted namespace {ns}")),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    for pin in site.pins() {
        let removed = if pin.is_dir() {
            std::fs::remove_dir_all(&pin)
        } else {
            std::fs::remove_file(&pin)
        };
        match removed {
            Ok(()) => done.push(format!("removed pin {}", pin.display())),
            Err(e) => errors.push(format!("removing {}: {e}", pin.display())),
        }
    }
    if site.state_dir().exists() {
        match std::fs::remove_dir_all(site.state_dir()) {
            Ok(()) => done.push(format!("removed {}", site.state_dir().display())),
            Err(e) => errors.push(format!("removing {}: {e}", site.state_dir().display())),
        }
    }
    // Processes SIGKILLed above may take a moment to be gone.
    let left = wait_for(
        "the lab's processes to exit",
        Duration::from_secs(3),
        || {
            let left = site.processes()?;
            Ok(left.is_empty().then_some(()))
        },
    );
    if let Err(e) = left {
        errors.push(format!("{e:#}"));
    }
    if !errors.is_empty() {
        bail!("{}\n(done: {})", errors.join("\n"), done.join("; "));
    }
    Ok(done)
}

/// `xvs-lab status`: what of the lab is up, and each director's VRRP
/// state as its xvsd reports it.
pub fn status(site: &Site) -> Result<String> {
    use std::fmt::Write as _;
    let mut out = String::new();
    let namespaces = site.namespaces()?;
    if namespaces.is_empty() {
        writeln!(out, "no lab is up (no namespace {}*)", site.prefix())?;
    } else {
        writeln!(out, "namespaces: {}", namespaces.join(" "))?;
    }
    for i in 0..2 {
        let name = format!("dir{}", i + 1);
        let ns = site.namespace(&name);
        if !namespaces.contains(&ns) {
            continue;
        }
        let socket = site.state_dir().join(&name).join("xvsd.sock");
        let vip = Ipv4Addr::new(10, SUBNET, 0, 100);
        let holds = Netns::named(&ns)
            .ip(&["-4", "-o", "addr", "show", "dev", DIRECTOR_IF])
            .map(|a| a.contains(&format!("inet {vip}/")))
            .unwrap_or(false);
        let line = match xvs::control::client::call(
            &socket,
            xvs::control::protocol::RequestBody::Status,
        ) {
            Ok(xvs::control::protocol::ResponseBody::Status { status }) => {
                let vrrp = status
                    .vrrp
                    .iter()
                    .map(|v| format!("{} {} priority {}", v.name, v.state, v.priority))
                    .collect::<Vec<_>>()
                    .join(", ");
                format!(
                    "xvsd up: {vrrp}; forwarding {}; XDP {} on {}; {} services",
                    if status.active { "on" } else { "off" },
                    status.xdp_mode,
                    status.interface,
                    status.services
                )
            }
            Ok(other) => format!("xvsd answered {other:?}"),
            Err(_) => "xvsd not running".to_string(),
        };
        writeln!(
            out,
            "{name}: {line}; {} VIP {vip}; socket {}",
            if holds { "holds" } else { "does not hold" },
            socket.display()
        )?;
    }
    let procs = site.processes()?;
    if !procs.is_empty() {
        writeln!(out, "processes:")?;
        for (pid, cmd) in procs {
            writeln!(out, "    {pid:>7} {cmd}")?;
        }
    }
    for pin in site.pins() {
        writeln!(out, "pin: {}", pin.display())?;
    }
    Ok(out)
}
