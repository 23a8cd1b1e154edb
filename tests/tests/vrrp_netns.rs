//! VRRP between real processes in network namespaces: two XVS directors,
//! and XVS against Debian's keepalived 2.2.7 in both roles. Each lab has a
//! client, two directors and real servers on one bridge; "MASTER" means the
//! director both holds the VIP and forwards (xvsd's status), and traffic
//! is checked from the client through the VIP.
//!
//! Needs root and the release binaries (`cargo xtask test` builds them).

use anyhow::{ensure, Context, Result};
use std::{
    net::Ipv4Addr,
    time::{Duration, Instant},
};
use xvs_tests::{
    daemon::{wait_for, TempDir},
    keepalived::Keepalived,
    lab::{outage, DrLab, Prober, Shape, DIRECTOR_IF, SERVICE_PORT},
};

/// Far beyond any bound asserted on: only a broken build waits this long.
const LONG: Duration = Duration::from_secs(20);

/// One vrrp_instance, written the same for xvsd and keepalived.
#[derive(Clone)]
struct Instance {
    state: &'static str,
    priority: u8,
    version: u8,
    advert_int: &'static str,
    vrid: u8,
    auth_pass: Option<&'static str>,
    nopreempt: bool,
    notify: Option<String>,
    /// `unicast_src_ip` and one `unicast_peer` instead of multicast.
    unicast: Option<(Ipv4Addr, Ipv4Addr)>,
    /// An IPv6 VIP (VRRPv3 over IPv6) instead of the IPv4 one.
    vip6: Option<&'static str>,
}

impl Instance {
    fn v2(state: &'static str, priority: u8) -> Instance {
        Instance {
            state,
            priority,
            version: 2,
            advert_int: "1",
            vrid: 51,
            auth_pass: Some("xvs-pass"),
            nopreempt: false,
            notify: None,
            unicast: None,
            vip6: None,
        }
    }

    fn v3(state: &'static str, priority: u8, advert_int: &'static str) -> Instance {
        Instance {
            version: 3,
            advert_int,
            auth_pass: None,
            ..Instance::v2(state, priority)
        }
    }

    /// The seconds a backup waits for a silent master, plus slack for a
    /// loaded 2-core machine.
    fn down_bound(&self) -> Duration {
        let advert: f64 = self.advert_int.parse().unwrap();
        Duration::from_secs_f64(3.0 * advert + 1.0 + 1.5)
    }
}

/// keepalived.conf as an operator writes it: VRRP plus the DR service.
fn conf(lab: &DrLab, v: &Instance, reals: &[Ipv4Addr]) -> String {
    let auth = match v.auth_pass {
        Some(p) => format!(
            "    authentication {{\n        auth_type PASS\n        auth_pass {p}\n    }}\n"
        ),
        None => String::new(),
    };
    let mut text = format!(
        "global_defs {{\n    router_id xvs_vrrp_test\n    vrrp_version {}\n}}\n\n\
         vrrp_instance VI_1 {{\n    state {}\n    interface {DIRECTOR_IF}\n    virtual_router_id {}\n    \
         priority {}\n    advert_int {}\n{auth}{}{}    virtual_ipaddress {{\n        {}/24\n    }}\n}}\n\n",
        v.version,
        v.state,
        v.vrid,
        v.priority,
        v.advert_int,
        if v.nopreempt { "    nopreempt\n" } else { "" },
        v.notify
            .as_ref()
            .map(|n| format!("    notify \"{n}\"\n"))
            .unwrap_or_default(),
        v.vip6.map_or(lab.vip.to_string(), |v6| v6.to_string()),
    );
    if v.vip6.is_some() {
        text = text.replace("/24\n", "/64\n");
    }
    if let Some((src, peer)) = v.unicast {
        text = text.replace(
            "    virtual_ipaddress {",
            &format!("    unicast_src_ip {src}\n    unicast_peer {{\n        {peer}\n    }}\n    virtual_ipaddress {{"),
        );
    }
    text += &format!(
        "virtual_server {} {SERVICE_PORT} {{\n    delay_loop 1\n    lb_algo rr\n    lb_kind DR\n    protocol TCP\n",
        lab.vip
    );
    for r in reals {
        text += &format!(
            "    real_server {r} {SERVICE_PORT} {{\n        weight 1\n        TCP_CHECK {{\n            connect_timeout 1\n        }}\n    }}\n"
        );
    }
    text + "}\n"
}

fn lab(tag: &'static str, subnet: u8) -> Result<DrLab> {
    DrLab::build(Shape {
        tag,
        subnet,
        directors: 2,
        reals: 2,
        directors_are_reals: false,
    })
}

fn real_ips(lab: &DrLab) -> Vec<Ipv4Addr> {
    lab.reals.iter().map(|r| r.ip).collect()
}

fn start_pair(lab: &mut DrLab, first: &Instance, second: &Instance) -> Result<()> {
    let reals = real_ips(lab);
    let (c0, c1) = (conf(lab, first, &reals), conf(lab, second, &reals));
    lab.start_director(0, &c0)?;
    lab.start_director(1, &c1)
}

/// Only `master` is MASTER, and the other has neither VIP nor forwarding.
fn assert_only_master(lab: &DrLab, master: usize) -> Result<()> {
    let masters = lab.masters()?;
    ensure!(
        masters == vec![master],
        "masters {masters:?}, wanted [{master}]"
    );
    for i in (0..lab.directors.len()).filter(|&i| i != master) {
        ensure!(
            !lab.holds_vip(i)? && !lab.forwards(i),
            "director {i} still holds the VIP or forwards"
        );
    }
    Ok(())
}

#[test]
fn election_goes_by_priority() -> Result<()> {
    let mut lab = lab("vel", 31)?;
    let fast = |state, prio| Instance::v3(state, prio, "0.2");
    start_pair(&mut lab, &fast("BACKUP", 100), &fast("BACKUP", 150))?;
    lab.wait_master(1, LONG)?;
    std::thread::sleep(Duration::from_millis(600));
    assert_only_master(&lab, 1)?;
    ensure!(
        lab.request()?.starts_with("real"),
        "traffic through the MASTER"
    );
    Ok(())
}

/// Cut the directors off from each other: both must become MASTER, as the
/// protocol demands. Heal it: within 3 adverts one MASTER remains, chosen
/// by the higher address on equal priority, and the other withdraws its
/// VIP and its forwarding.
#[test]
fn split_brain_heals_to_the_higher_address() -> Result<()> {
    let mut lab = lab("vsplit", 37)?;
    let v = Instance::v3("BACKUP", 100, "0.2");
    start_pair(&mut lab, &v, &v)?;
    let first = lab.wait_single_master(LONG)?;
    lab.isolate_directors(true)?;
    wait_for("both MASTER", LONG, || {
        Ok((lab.masters()?.len() == 2).then_some(()))
    })?;
    let healed = Instant::now();
    lab.isolate_directors(false)?;
    let winner = lab.wait_single_master(LONG)?;
    let took = healed.elapsed();
    println!("first master {first}, healed to {winner} in {took:?}");
    ensure!(winner == 1, "director 2 (.3) must win on equal priority");
    // 3 adverts of 0.2 s, plus the time to see it through the control socket.
    ensure!(took < Duration::from_millis(600 + 400), "took {took:?}");
    assert_only_master(&lab, 1)
}

/// One failover as the client sees it: director 1 MASTER, the client
/// sending a request every 10 ms, SIGKILL to director 1's xvsd. Returns
/// the takeover time (kill to director 2 MASTER) and the client's outage.
fn one_failover(
    lab: &mut DrLab,
    master: &Instance,
    backup: &Instance,
) -> Result<(Duration, Duration)> {
    start_pair(lab, master, backup)?;
    lab.wait_master(0, LONG)?;
    let prober = Prober::start(&lab.client, lab.service(), Duration::from_millis(10));
    prober.wait_success_after(Instant::now(), LONG)?;
    std::thread::sleep(Duration::from_millis(200));
    let killed = Instant::now();
    lab.kill_director(0)?;
    lab.wait_master(1, LONG)?;
    let took_over = killed.elapsed();
    prober.wait_success_after(Instant::now(), LONG)?;
    std::thread::sleep(Duration::from_millis(100));
    let gap = outage(&prober.finish(), killed)?;
    lab.stop_director(1)?;
    Ok((took_over, gap))
}

#[test]
fn killed_master_is_replaced_and_traffic_flows() -> Result<()> {
    let mut lab = lab("vkill", 32)?;
    for (master, backup) in [
        (Instance::v2("MASTER", 150), Instance::v2("BACKUP", 100)),
        (
            Instance::v3("MASTER", 150, "0.1"),
            Instance::v3("BACKUP", 100, "0.1"),
        ),
    ] {
        let (took_over, gap) = one_failover(&mut lab, &master, &backup)?;
        println!(
            "v{}: takeover after {took_over:?}, client outage {gap:?}",
            master.version
        );
        ensure!(
            took_over < backup.down_bound(),
            "takeover took {took_over:?}"
        );
        ensure!(gap < backup.down_bound(), "outage {gap:?}");
    }
    Ok(())
}

/// The failover measurement of the VRRP issue: 20 runs each of v2 with
/// advert_int 1 and v3 with advert_int 0.1, reported as min / median / max
/// of the client's outage against 3 × advert + skew. A measurement, not a
/// check (about 3 minutes):
/// `cargo test --release -p xvs-tests --test vrrp_netns -- --ignored --nocapture`
#[test]
#[ignore]
fn failover_outage_over_20_runs() -> Result<()> {
    let mut lab = lab("vmeas", 42)?;
    for (master, backup, bound_ms) in [
        (
            Instance::v2("MASTER", 150),
            Instance::v2("BACKUP", 100),
            3000.0 + 1000.0 * 156.0 / 256.0,
        ),
        (
            Instance::v3("MASTER", 150, "0.1"),
            Instance::v3("BACKUP", 100, "0.1"),
            300.0 + 156.0 * 100.0 / 256.0,
        ),
    ] {
        let mut gaps = Vec::new();
        for _ in 0..20 {
            gaps.push(one_failover(&mut lab, &master, &backup)?.1.as_secs_f64() * 1000.0);
        }
        gaps.sort_by(f64::total_cmp);
        println!(
            "v{} advert_int {}: outage min {:.0} ms, median {:.0} ms, max {:.0} ms over 20 runs; 3 x advert + skew = {bound_ms:.0} ms (target + 50 ms)",
            master.version, master.advert_int, gaps[0], (gaps[9] + gaps[10]) / 2.0, gaps[19]
        );
    }
    Ok(())
}

#[test]
fn graceful_stop_hands_over_after_skew_only() -> Result<()> {
    let mut lab = lab("vstop", 33)?;
    let dir = TempDir::new("vstop-notify")?;
    let log = dir.join("notify.log");
    let script = dir.script(
        "notify.sh",
        &format!("#!/bin/sh\necho \"$@\" >> {}\n", log.display()),
    )?;
    let mut master = Instance::v2("MASTER", 150);
    master.notify = Some(script.display().to_string());
    start_pair(&mut lab, &master, &Instance::v2("BACKUP", 100))?;
    lab.wait_master(0, LONG)?;
    let stopped = Instant::now();
    lab.stop_director(0)?;
    lab.wait_master(1, LONG)?;
    let took = stopped.elapsed();
    // Priority 0 means Skew_Time: (256 - 100) / 256 s, not 3 adverts.
    println!("takeover {took:?} after a graceful stop");
    ensure!(took < Duration::from_millis(1900), "took {took:?}");
    let notes = std::fs::read_to_string(&log)?;
    ensure!(
        notes.contains("INSTANCE VI_1 MASTER 150") && notes.contains("INSTANCE VI_1 STOP 150"),
        "notify calls: {notes}"
    );
    Ok(())
}

#[test]
fn preemption_and_nopreempt_behave_as_configured() -> Result<()> {
    let mut lab = lab("vpre", 34)?;
    let high = Instance::v3("BACKUP", 150, "0.2");
    let low = Instance::v3("BACKUP", 100, "0.2");
    start_pair(&mut lab, &high, &low)?;
    lab.wait_master(0, LONG)?;
    lab.kill_director(0)?;
    lab.wait_master(1, LONG)?;
    // Back with a higher priority: it preempts.
    let reals = real_ips(&lab);
    let c = conf(&lab, &high, &reals);
    lab.start_director(0, &c)?;
    lab.wait_master(0, LONG)?;
    wait_for("the old backup to step down", LONG, || {
        Ok((lab.masters()? == vec![0]).then_some(()))
    })?;

    // With nopreempt it stays BACKUP behind the lower-priority master.
    lab.kill_director(0)?;
    lab.wait_master(1, LONG)?;
    let mut patient = high.clone();
    patient.nopreempt = true;
    let c = conf(&lab, &patient, &reals);
    lab.start_director(0, &c)?;
    std::thread::sleep(Duration::from_secs(2));
    assert_only_master(&lab, 1)
}

/// The keepalived side of the interop tests, in director 2's namespace.
fn keepalived(lab: &DrLab, dir: &TempDir, v: &Instance) -> Result<Keepalived> {
    let reals = real_ips(lab);
    Keepalived::start(
        &lab.directors[1].ns,
        dir,
        "keepalived",
        &conf(lab, v, &reals),
    )
}

/// Whether director 2's keepalived holds the VIP (it does not run XDP).
fn keepalived_is_master(lab: &DrLab) -> Result<bool> {
    lab.holds_vip(1)
}

fn interop_both_roles(
    tag: &'static str,
    subnet: u8,
    make: fn(&'static str, u8) -> Instance,
) -> Result<()> {
    let mut lab = lab(tag, subnet)?;
    let dir = TempDir::new(&format!("{tag}-ka"))?;
    // keepalived MASTER, XVS BACKUP: XVS takes over when keepalived dies.
    let mut ka = keepalived(&lab, &dir, &make("MASTER", 150))?;
    wait_for("keepalived MASTER", LONG, || {
        Ok(keepalived_is_master(&lab)?.then_some(()))
    })?;
    let reals = real_ips(&lab);
    let c = conf(&lab, &make("BACKUP", 100), &reals);
    lab.start_director(0, &c)?;
    std::thread::sleep(Duration::from_secs(4));
    ensure!(
        lab.masters()?.is_empty(),
        "XVS must stay BACKUP behind keepalived"
    );
    // The host dies: keepalived and the VIP with it (a killed keepalived
    // alone leaves the VIP behind, answering ARP beside the new MASTER).
    ka.kill();
    let vip = format!("{}/24", lab.vip);
    lab.directors[1]
        .ns
        .ip(&["addr", "del", &vip, "dev", DIRECTOR_IF])?;
    lab.wait_master(0, LONG)
        .with_context(|| lab.director_log(0))?;
    ensure!(lab.request()?.starts_with("real"), "traffic through XVS");
    lab.stop_director(0)?;

    // XVS MASTER, keepalived BACKUP: keepalived takes over when XVS dies.
    let c = conf(&lab, &make("MASTER", 150), &reals);
    lab.start_director(0, &c)?;
    lab.wait_master(0, LONG)?;
    let _ka = keepalived(&lab, &dir, &make("BACKUP", 100))?;
    std::thread::sleep(Duration::from_secs(4));
    ensure!(
        !keepalived_is_master(&lab)?,
        "keepalived must stay BACKUP behind XVS"
    );
    lab.kill_director(0)?;
    wait_for("keepalived MASTER", LONG, || {
        Ok(keepalived_is_master(&lab)?.then_some(()))
    })
}

#[test]
fn keepalived_interop_v2_pass() -> Result<()> {
    interop_both_roles("vka2", 35, Instance::v2)
}

#[test]
fn keepalived_interop_v3() -> Result<()> {
    interop_both_roles("vka3", 36, |s, p| Instance::v3(s, p, "0.5"))
}

/// Sends `count` adverts from the client, every 50 ms: VRID 51, priority
/// 254, the lab's VIP, with the given TTL and auth; built by XVS's own codec
/// and sent with a hand-made IPv4 header (IP_HDRINCL) so the TTL is ours.
fn inject_adverts(lab: &DrLab, ttl: u8, auth_pass: Option<&str>, count: usize) -> Result<()> {
    use xvs::vrrp::packet::{encode, Advert, Auth, EncodeOptions, Version};
    let (src, vip) = (lab.client_ip, lab.vip);
    let advert = Advert {
        version: if auth_pass.is_some() {
            Version::V2
        } else {
            Version::V3
        },
        vrid: 51,
        priority: 254,
        interval_cs: 100,
        addrs: vec![vip.into()],
        auth: auth_pass.map_or(Auth::None, Auth::pass),
    };
    let group = Ipv4Addr::new(224, 0, 0, 18);
    let payload = encode(&advert, src.into(), group.into(), &EncodeOptions::default())?;
    let mut frame = xvs::vrrp::socket::ipv4_header(src, group, payload.len()).to_vec();
    frame[8] = ttl;
    frame.extend_from_slice(&payload);
    lab.client.run(move || {
        // SAFETY: plain socket calls on buffers that outlive them.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_RAW, 112);
            ensure!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
            let on: i32 = 1;
            libc::setsockopt(
                fd,
                libc::IPPROTO_IP,
                libc::IP_HDRINCL,
                (&on as *const i32).cast(),
                4,
            );
            let dev = b"eth0";
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_BINDTODEVICE,
                dev.as_ptr().cast(),
                4,
            );
            let mut sa: libc::sockaddr_in = std::mem::zeroed();
            sa.sin_family = libc::AF_INET as libc::sa_family_t;
            sa.sin_addr.s_addr = u32::from_ne_bytes(group.octets());
            for _ in 0..count {
                let n = libc::sendto(
                    fd,
                    frame.as_ptr().cast(),
                    frame.len(),
                    0,
                    (&sa as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as u32,
                );
                ensure!(n >= 0, "sendto: {}", std::io::Error::last_os_error());
                std::thread::sleep(Duration::from_millis(50));
            }
            libc::close(fd);
        }
        Ok(())
    })
}

fn xvs_status(lab: &DrLab, i: usize) -> Result<xvs::vrrp::runtime::InstanceStatus> {
    let d = lab.directors[i].daemon.as_ref().context("no xvsd")?;
    d.status()?
        .vrrp
        .into_iter()
        .next()
        .context("no VRRP instance in the status")
}

/// Adverts that fail a check change nothing, on either side: a wrong
/// auth_pass and a wrong VRID between XVS and keepalived (both stay
/// MASTER), and TTL 254 from a third host (the MASTER stays). The same
/// advert with TTL 255 does make each step down, so it was otherwise valid.
#[test]
fn bad_adverts_are_ignored_on_both_sides() -> Result<()> {
    let mut lab = lab("vbad", 38)?;
    let dir = TempDir::new("vbad-ka")?;
    let reals = real_ips(&lab);
    let xvs = Instance::v2("MASTER", 100);
    let c = conf(&lab, &xvs, &reals);
    lab.start_director(0, &c)?;
    lab.wait_master(0, LONG)?;
    for (what, peer) in [
        (
            "auth",
            Instance {
                auth_pass: Some("wrong"),
                ..Instance::v2("MASTER", 200)
            },
        ),
        (
            "vrid",
            Instance {
                vrid: 52,
                ..Instance::v2("MASTER", 200)
            },
        ),
    ] {
        let mut ka = keepalived(&lab, &dir, &peer)?;
        wait_for("keepalived MASTER too", LONG, || {
            Ok(keepalived_is_master(&lab)?.then_some(()))
        })?;
        std::thread::sleep(Duration::from_secs(2));
        ensure!(
            lab.masters()? == vec![0],
            "XVS must ignore the {what} mismatch and stay MASTER"
        );
        let rejected = xvs_status(&lab, 0)?
            .rejected
            .get(what)
            .copied()
            .unwrap_or(0);
        ensure!(
            rejected > 0,
            "no {what} rejection counted: {:?}",
            xvs_status(&lab, 0)?
        );
        ka.stop();
        lab.directors[1].ns.ip(&[
            "addr",
            "flush",
            "dev",
            DIRECTOR_IF,
            "to",
            &format!("{}/32", lab.vip),
        ])?;
    }

    // TTL 254 at XVS: ignored, counted. TTL 255: it steps down.
    let before = xvs_status(&lab, 0)?;
    inject_adverts(&lab, 254, Some("xvs-pass"), 20)?;
    let after = xvs_status(&lab, 0)?;
    ensure!(
        after.state == "MASTER" && after.became_master == before.became_master,
        "{after:?}"
    );
    ensure!(
        after.rejected.get("ttl").copied().unwrap_or(0) >= 20,
        "{after:?}"
    );
    inject_adverts(&lab, 255, Some("xvs-pass"), 4)?;
    ensure!(
        xvs_status(&lab, 0)?.state == "BACKUP",
        "a valid higher priority must win"
    );
    lab.stop_director(0)?;

    // The same at keepalived, MASTER alone.
    let _ka = keepalived(&lab, &dir, &Instance::v2("MASTER", 100))?;
    wait_for("keepalived MASTER", LONG, || {
        Ok(keepalived_is_master(&lab)?.then_some(()))
    })?;
    let watch = std::thread::scope(|s| {
        let sender = s.spawn(|| inject_adverts(&lab, 254, Some("xvs-pass"), 40));
        let mut always = true;
        while !sender.is_finished() {
            always &= keepalived_is_master(&lab).unwrap_or(false);
            std::thread::sleep(Duration::from_millis(20));
        }
        sender.join().unwrap().map(|_| always)
    })?;
    ensure!(watch, "keepalived gave up the VIP for a TTL 254 advert");
    inject_adverts(&lab, 255, Some("xvs-pass"), 10)?;
    wait_for("keepalived to step down", Duration::from_secs(2), || {
        Ok((!keepalived_is_master(&lab)?).then_some(()))
    })
}

/// Seed 004's shape: both directors are also the real servers (VIP on
/// `lo`, arp_ignore), rr between them. The MASTER serves half itself and
/// forwards half to the BACKUP, whose data plane is inactive, so its stack
/// answers instead of forwarding back: no loop, before or after failover.
#[test]
fn directors_that_are_also_reals_serve_without_a_loop() -> Result<()> {
    let mut lab = DrLab::build(Shape {
        tag: "v004",
        subnet: 39,
        directors: 2,
        reals: 0,
        directors_are_reals: true,
    })?;
    let both: Vec<Ipv4Addr> = lab.directors.iter().map(|d| d.ip).collect();
    let c0 = conf(&lab, &Instance::v2("MASTER", 100), &both);
    let c1 = conf(&lab, &Instance::v2("BACKUP", 99), &both);
    lab.start_director(0, &c0)?;
    lab.start_director(1, &c1)?;
    lab.wait_master(0, LONG)?;
    let served = |lab: &DrLab| -> Result<Vec<String>> { (0..20).map(|_| lab.request()).collect() };
    // Until both health checks have passed once, rr may see one real.
    std::thread::sleep(Duration::from_secs(2));
    let replies = served(&lab)?;
    for name in ["dir1", "dir2"] {
        // rr's cursor is per CPU: near 10 of 20 each, not exactly.
        let n = replies.iter().filter(|r| *r == name).count();
        ensure!(n >= 6, "{name} served {n} of 20: {replies:?}");
    }
    // The BACKUP received half the flows as a real and forwarded none.
    let backup = xvs_status(&lab, 1)?;
    ensure!(backup.state == "BACKUP", "{backup:?}");
    let admin = xvs_tests::daemon::Admin::new(
        lab.directors[1].daemon.as_ref().unwrap(),
        &lab.directors[1].ns,
    )?;
    let stats = admin.run(&["-L", "-n", "--stats"])?;
    ensure!(
        stats
            .lines()
            .filter(|l| l.contains("->") && !l.contains("RemoteAddress"))
            .all(|l| l.split_whitespace().nth(2) == Some("0")),
        "the BACKUP forwarded: {stats}"
    );

    lab.kill_director(0)?;
    lab.wait_master(1, LONG)?;
    let replies = served(&lab)?;
    ensure!(
        replies.iter().any(|r| r == "dir2") && replies.iter().any(|r| r == "dir1"),
        "after failover both still serve: {replies:?}"
    );
    Ok(())
}

/// A failing vrrp_script with a negative weight lowers the MASTER's
/// priority below the backup's, which preempts; when it passes again the
/// first director takes back over.
#[test]
fn track_script_weight_moves_the_master() -> Result<()> {
    let mut lab = lab("vtrk", 40)?;
    let dir = TempDir::new("vtrk-flag")?;
    let flag = dir.join("healthy");
    std::fs::write(&flag, "")?;
    let reals = real_ips(&lab);
    let script = format!(
        "vrrp_script chk_flag {{\n    script \"/usr/bin/test -f {}\"\n    interval 1\n    weight -100\n    fall 1\n    rise 1\n}}\n",
        flag.display()
    );
    let with_track = |c: String| {
        c.replace(
            "vrrp_instance VI_1 {",
            &format!(
                "{script}\nvrrp_instance VI_1 {{\n    track_script {{\n        chk_flag\n    }}"
            ),
        )
    };
    let c0 = with_track(conf(&lab, &Instance::v3("BACKUP", 150, "0.2"), &reals));
    let c1 = conf(&lab, &Instance::v3("BACKUP", 100, "0.2"), &reals);
    lab.start_director(0, &c0)?;
    lab.start_director(1, &c1)?;
    lab.wait_master(0, LONG)?;
    std::fs::remove_file(&flag)?;
    lab.wait_master(1, LONG)?;
    wait_for("director 1 BACKUP at priority 50", LONG, || {
        let s = xvs_status(&lab, 0)?;
        Ok((s.state == "BACKUP" && s.priority == 50).then_some(()))
    })?;
    std::fs::write(&flag, "")?;
    lab.wait_master(0, LONG)?;
    wait_for("one MASTER again", LONG, || {
        Ok((lab.masters()? == vec![0]).then_some(()))
    })
}

/// Two instances in a vrrp_sync_group move together: a FAULT in one
/// (its tracked script fails, weight 0) takes the other along.
#[test]
fn sync_group_members_move_together() -> Result<()> {
    let mut lab = lab("vsync", 41)?;
    let dir = TempDir::new("vsync-flag")?;
    let flag = dir.join("healthy");
    std::fs::write(&flag, "")?;
    let vip2 = Ipv4Addr::new(10, 41, 0, 101);
    let conf_for = |prio: u8, track: bool| {
        let instance = |name: &str, vrid: u8, vip: Ipv4Addr, track: bool| {
            format!(
                "vrrp_instance {name} {{\n    state BACKUP\n    interface {DIRECTOR_IF}\n    virtual_router_id {vrid}\n    \
                 priority {prio}\n    advert_int 0.2\n{}    virtual_ipaddress {{\n        {vip}/24\n    }}\n}}\n",
                if track { "    track_script {\n        chk_flag\n    }\n" } else { "" }
            )
        };
        format!(
            "global_defs {{\n    vrrp_version 3\n}}\n\
             vrrp_script chk_flag {{\n    script \"/usr/bin/test -f {}\"\n    interval 1\n}}\n\
             vrrp_sync_group G {{\n    group {{\n        VI_1\n        VI_2\n    }}\n}}\n{}{}",
            flag.display(),
            instance("VI_1", 51, lab.vip, false),
            instance("VI_2", 52, vip2, track),
        )
    };
    let (c0, c1) = (conf_for(150, true), conf_for(100, false));
    lab.start_director(0, &c0)?;
    lab.start_director(1, &c1)?;
    lab.wait_master(0, LONG)?;
    let holds = |i: usize, vip: Ipv4Addr| lab.holds(i, vip.into());
    wait_for("director 1 holds both VIPs", LONG, || {
        Ok((holds(0, vip2)? && holds(0, lab.vip)?).then_some(()))
    })?;
    std::fs::remove_file(&flag)?;
    wait_for("director 2 holds both VIPs", LONG, || {
        Ok((holds(1, vip2)? && holds(1, lab.vip)?).then_some(()))
    })?;
    ensure!(
        !holds(0, vip2)? && !holds(0, lab.vip)?,
        "director 1 kept a VIP"
    );
    let states: Vec<String> = lab.directors[0]
        .daemon
        .as_ref()
        .unwrap()
        .status()?
        .vrrp
        .into_iter()
        .map(|s| s.state)
        .collect();
    ensure!(
        states == ["FAULT", "FAULT"],
        "director 1's instances: {states:?}"
    );
    Ok(())
}

/// unicast_peer instead of multicast, against keepalived: XVS MASTER,
/// keepalived BACKUP, which takes over when XVS dies.
#[test]
fn keepalived_interop_unicast() -> Result<()> {
    let mut lab = lab("vuni", 43)?;
    let dir = TempDir::new("vuni-ka")?;
    let (xvs_ip, ka_ip) = (lab.directors[0].ip, lab.directors[1].ip);
    let xvs = Instance {
        unicast: Some((xvs_ip, ka_ip)),
        ..Instance::v2("MASTER", 150)
    };
    let ka = Instance {
        unicast: Some((ka_ip, xvs_ip)),
        ..Instance::v2("BACKUP", 100)
    };
    let reals = real_ips(&lab);
    let c = conf(&lab, &xvs, &reals);
    lab.start_director(0, &c)?;
    lab.wait_master(0, LONG)?;
    let _ka = keepalived(&lab, &dir, &ka)?;
    std::thread::sleep(Duration::from_secs(4));
    ensure!(
        !keepalived_is_master(&lab)?,
        "keepalived must stay BACKUP behind XVS"
    );
    ensure!(
        xvs_status(&lab, 0)?.adverts_received == 0,
        "a BACKUP sends nothing"
    );
    lab.kill_director(0)?;
    wait_for("keepalived MASTER", LONG, || {
        Ok(keepalived_is_master(&lab)?.then_some(()))
    })?;
    // And XVS, back as BACKUP at a lower priority, hears it by unicast.
    let back = Instance {
        state: "BACKUP",
        priority: 50,
        ..xvs
    };
    let c = conf(&lab, &back, &reals);
    lab.start_director(0, &c)?;
    wait_for("adverts from keepalived by unicast", LONG, || {
        Ok((xvs_status(&lab, 0)?.adverts_received > 2).then_some(()))
    })?;
    ensure!(lab.masters()?.is_empty(), "XVS must stay BACKUP");
    Ok(())
}

fn holds_vip6(lab: &DrLab, i: usize, vip: &str) -> Result<bool> {
    lab.holds(i, vip.parse()?)
}

/// VRRPv3 over IPv6 (link-local sources, ff02::12), against keepalived in
/// both roles.
#[test]
fn keepalived_interop_v3_ipv6() -> Result<()> {
    const VIP6: &str = "fd00:44::100";
    let mut lab = lab("vka6", 44)?;
    let dir = TempDir::new("vka6-ka")?;
    let v6 = |state, prio| Instance {
        vip6: Some(VIP6),
        ..Instance::v3(state, prio, "0.5")
    };
    // Link-local addresses must be past DAD before anyone can advertise.
    std::thread::sleep(Duration::from_secs(2));
    let reals = real_ips(&lab);
    let mut ka = keepalived(&lab, &dir, &v6("MASTER", 150))?;
    wait_for("keepalived MASTER", LONG, || {
        Ok(holds_vip6(&lab, 1, VIP6)?.then_some(()))
    })
    .with_context(|| ka.log())?;
    let c = conf(&lab, &v6("BACKUP", 100), &reals);
    lab.start_director(0, &c)?;
    wait_for("adverts from keepalived", LONG, || {
        Ok((xvs_status(&lab, 0)?.adverts_received > 2).then_some(()))
    })?;
    ensure!(
        !holds_vip6(&lab, 0, VIP6)?,
        "XVS must stay BACKUP: {:?}",
        xvs_status(&lab, 0)?
    );
    ka.kill();
    lab.directors[1].ns.ip(&[
        "-6",
        "addr",
        "del",
        &format!("{VIP6}/64"),
        "dev",
        DIRECTOR_IF,
    ])?;
    wait_for("XVS MASTER", LONG, || {
        Ok(holds_vip6(&lab, 0, VIP6)?.then_some(()))
    })?;
    ensure!(lab.forwards(0), "XVS MASTER forwards");

    let _ka = keepalived(&lab, &dir, &v6("BACKUP", 100))?;
    std::thread::sleep(Duration::from_secs(3));
    ensure!(
        !holds_vip6(&lab, 1, VIP6)?,
        "keepalived must stay BACKUP behind XVS"
    );
    lab.kill_director(0)?;
    wait_for("keepalived MASTER", LONG, || {
        Ok(holds_vip6(&lab, 1, VIP6)?.then_some(()))
    })
}

/// The instance's own interface going down is a FAULT: no VIP, no
/// forwarding, and the backup takes over; back up, it is BACKUP again.
#[test]
fn interface_down_is_a_fault() -> Result<()> {
    let mut lab = lab("vflt", 45)?;
    let fast = |state, prio| Instance::v3(state, prio, "0.2");
    start_pair(&mut lab, &fast("BACKUP", 150), &fast("BACKUP", 100))?;
    lab.wait_master(0, LONG)?;
    lab.directors[0]
        .ns
        .ip(&["link", "set", DIRECTOR_IF, "down"])?;
    lab.wait_master(1, LONG)?;
    wait_for("director 1 in FAULT", LONG, || {
        Ok((xvs_status(&lab, 0)?.state == "FAULT").then_some(()))
    })?;
    ensure!(!lab.forwards(0), "a FAULT director must not forward");
    lab.directors[0]
        .ns
        .ip(&["link", "set", DIRECTOR_IF, "up"])?;
    // Priority 150 preempts once it is back.
    lab.wait_master(0, LONG)?;
    wait_for("one MASTER", LONG, || {
        Ok((lab.masters()? == vec![0]).then_some(()))
    })
}
