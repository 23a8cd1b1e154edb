//! End to end, on the lab of `cargo xtask lab` (the same code: see
//! `xvs_tests::showcase`): a client, two directors running xvsd on
//! `examples/keepalived-lab.conf`, three real servers, each in a network
//! namespace. The tests assert what the lab shows, and that nothing of it
//! outlives it: not on success, not after `up`/`down`, not after a Ctrl-C.
//!
//! Needs root and the release binaries (`cargo xtask test` builds them):
//! `cargo test --release -p xvs-tests --test lab_e2e -- --nocapture` shows
//! the lab's own output.

use anyhow::{ensure, Context, Result};
use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};
use xvs_tests::{
    lab::{http_get, SERVICE_PORT},
    netns::{fetch_reply, in_netns, TcpResponder},
    showcase::{down, services_in, vrrp_bound, Showcase, Site, CHECK_TIME, WEIGHTS},
};

const XVS_LAB: &str = env!("CARGO_BIN_EXE_xvs-lab");
/// Slack on every time bound: a loaded 2-core machine, never a tight check.
const SLACK: Duration = Duration::from_millis(2500);
/// A TCP port of the directors' own (not a service).
const OWN_PORT: u16 = 2222;

/// A lab's site, cleared of whatever a crashed earlier run left.
fn fresh_site(tag: &str) -> Result<Site> {
    let site = Site::new(tag)?;
    down(&site)?;
    Ok(site)
}

fn assert_nothing_left(site: &Site, pids: &[u32]) -> Result<()> {
    let left = site.leftovers()?;
    ensure!(left.is_empty(), "left behind: {left:#?}");
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        ensure!(
            stat.is_empty()
                || stat
                    .rsplit_once(") ")
                    .is_some_and(|(_, s)| s.starts_with('Z')),
            "process {pid} still runs: {stat}"
        );
    }
    // The veths lived in the namespaces; none may have landed here.
    let links = xvs_tests::netns::run("ip", &["-o", "link", "show"])?;
    for name in [
        "p-client", "p-dir1", "p-dir2", "p-real1", "p-real2", "p-real3",
    ] {
        ensure!(
            !links.contains(&format!(": {name}@")) && !links.contains(&format!(": {name}:")),
            "veth {name} in the host namespace"
        );
    }
    Ok(())
}

/// The whole walk of `cargo xtask lab`, with its claims asserted.
#[test]
fn lab_does_what_it_shows() -> Result<()> {
    let site = fresh_site("xvse2e")?;
    let mut lab = Showcase::build(&site, Path::new(XVS_LAB), false)?;
    lab.start_directors()?;

    // wrr 1:2:3 within ±3 points over 3,000 connections; UDP persistence:
    // every new source port of the client lands on one real.
    let (http, udp) = lab.distribution(3000, 30)?;
    ensure!(http.failed == 0, "{} requests failed", http.failed);
    let total: u32 = WEIGHTS.iter().sum();
    for (r, w) in lab.lab.reals.iter().zip(WEIGHTS) {
        let share = http.count(&r.name) as f64 / http.total() as f64;
        let want = w as f64 / total as f64;
        ensure!(
            (share - want).abs() <= 0.03,
            "{}: {:.1}% of the requests, want {:.1}% ± 3",
            r.name,
            share * 100.0,
            want * 100.0
        );
    }
    ensure!(
        udp.failed == 0 && udp.per_real.len() == 1 && udp.total() == 30,
        "UDP persistence: {udp:?}"
    );

    own_addresses_are_left_to_the_directors(&lab)?;

    let listing = services_in(&lab.show_listing()?);
    ensure!(
        listing.len() == 2 && listing.values().all(|r| r.len() == 3),
        "{listing:?}"
    );

    // A dead real leaves within the check time and gets nothing; it returns.
    let (left, after) = lab.kill_real(1, 300)?;
    ensure!(left < CHECK_TIME + SLACK, "real2 left after {left:?}");
    ensure!(
        after.count("real2") == 0 && after.failed == 0 && after.total() == 300,
        "with real2 dead: {after:?}"
    );
    let (back, after) = lab.restore_real(1, 60)?;
    ensure!(back < CHECK_TIME + SLACK, "real2 came back after {back:?}");
    ensure!(
        after.count("real2") > 0 && after.failed == 0,
        "with real2 back: {after:?}"
    );

    // Failover: within the VRRP bound, and the same services on the new
    // MASTER.
    let f = lab.failover()?;
    ensure!(f.new != f.old, "{f:?}");
    let bound = vrrp_bound() + SLACK;
    ensure!(f.takeover < bound, "takeover after {:?}", f.takeover);
    ensure!(
        f.outage > Duration::ZERO && f.outage < bound,
        "outage {:?}",
        f.outage
    );
    ensure!(
        f.services_after == f.services_before && f.services_after == listing,
        "after failover: {:?}, before: {:?}",
        f.services_after,
        f.services_before
    );
    lab.restart(f.old)?;

    let mut pids: Vec<u32> = lab
        .lab
        .directors
        .iter()
        .filter_map(|d| d.daemon.as_ref().map(|x| x.pid()))
        .collect();
    for r in &lab.lab.reals {
        pids.extend(r.http.iter().chain(&r.udp).map(|p| p.pid()));
    }
    lab.shut_down()?;
    assert_nothing_left(&site, &pids)
}

/// Pings and a TCP port of each director's own address, from the client:
/// answered by the director itself, and XDP forwards none of it (its `tx`
/// counter stands still while its pass counter counts them).
fn own_addresses_are_left_to_the_directors(lab: &Showcase) -> Result<()> {
    let mut servers = Vec::new();
    for d in &lab.lab.directors {
        let any = SocketAddr::from(([0, 0, 0, 0], OWN_PORT));
        servers.push(TcpResponder::start(
            &d.ns,
            any,
            &format!("{} itself", d.name),
        )?);
    }
    let before: Vec<_> = (0..2).map(|i| lab.lab.verdicts(i)).collect::<Result<_>>()?;
    for d in &lab.lab.directors {
        let ip = d.ip.to_string();
        lab.lab
            .client
            .exec("ping", &["-c", "3", "-i", "0.2", "-W", "1", &ip])
            .with_context(|| format!("pinging {}", d.name))?;
        let addr = SocketAddr::from((d.ip, OWN_PORT));
        for _ in 0..3 {
            let reply = in_netns(lab.lab.client.name(), || {
                fetch_reply(addr, Duration::from_secs(1))
            })?;
            ensure!(
                reply == format!("{} itself", d.name),
                "{addr} answered {reply:?}"
            );
        }
    }
    let after: Vec<_> = (0..2).map(|i| lab.lab.verdicts(i)).collect::<Result<_>>()?;
    for i in 0..2 {
        let get =
            |m: &std::collections::BTreeMap<String, u64>, k: &str| m.get(k).copied().unwrap_or(0);
        ensure!(
            get(&after[i], "tx") == get(&before[i], "tx"),
            "director {} forwarded packets for its own address: {:?} -> {:?}",
            i + 1,
            before[i],
            after[i]
        );
        // 3 echo requests and 3 connections of at least 3 packets each.
        let passed = get(&after[i], "pass_not_service") - get(&before[i], "pass_not_service");
        ensure!(
            passed >= 3 + 9,
            "director {}: only {passed} packets passed",
            i + 1
        );
    }
    println!("    (test) pings and TCP {OWN_PORT} to dir1 and dir2: answered by the directors themselves; XDP tx unchanged");
    Ok(())
}

fn xvs_lab(tag: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(XVS_LAB)
        .args(args)
        .env("XVS_LAB_TAG", tag)
        .stdin(Stdio::null())
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(
        out.status.success(),
        "xvs-lab {args:?}: {}\n{text}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(text)
}

/// `up` leaves a working lab behind after xvs-lab exits; `status` shows
/// it; `down` removes all of it.
#[test]
fn up_status_down() -> Result<()> {
    let tag = "xvse2eup";
    let site = fresh_site(tag)?;
    let result = (|| -> Result<()> {
        let out = xvs_lab(tag, &["up"])?;
        ensure!(
            out.contains("/run/xvse2eup/dir1/xvsd.sock") && out.contains("ip netns exec"),
            "{out}"
        );
        // xvs-lab has exited: the daemons, servers and stubs run on.
        let vip = SocketAddr::from(([10, 77, 0, 100], SERVICE_PORT));
        let client = site.namespace("client");
        let reply = in_netns(&client, || http_get(vip, Duration::from_secs(2)))?;
        ensure!(reply.starts_with("real"), "{reply:?}");
        let status = xvs_lab(tag, &["status"])?;
        ensure!(
            status.contains("dir1: xvsd up: VI_1 MASTER") && status.contains("VI_1 BACKUP"),
            "{status}"
        );
        ensure!(!site.pins().is_empty(), "the stubs' links are pinned");
        Ok(())
    })();
    let removed = xvs_lab(tag, &["down"]);
    result?;
    let removed = removed?;
    ensure!(removed.contains("deleted namespace"), "{removed}");
    assert_nothing_left(&site, &[])?;
    let again = xvs_lab(tag, &["down"])?;
    ensure!(again.contains("nothing to remove"), "{again}");
    Ok(())
}

/// Ctrl-C in the middle of the walk: xvs-lab removes everything, exits 130.
#[test]
fn interrupted_lab_removes_itself() -> Result<()> {
    let tag = "xvse2eint";
    let site = fresh_site(tag)?;
    let mut child = Command::new(XVS_LAB)
        .env("XVS_LAB_TAG", tag)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = String::new();
    loop {
        let line = lines.next().context("xvs-lab ended early")??;
        seen += &line;
        seen += "\n";
        if line.contains("is MASTER after") {
            break;
        }
        ensure!(Instant::now() < deadline, "no MASTER: {seen}");
    }
    // SAFETY: plain kill(2) to our child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait()?;
    ensure!(
        status.code() == Some(130),
        "exit {status}: {seen}{}",
        rest.join("\n")
    );
    ensure!(
        rest.iter().any(|l| l.contains("left nothing behind")),
        "{}",
        rest.join("\n")
    );
    assert_nothing_left(&site, &[])
}
