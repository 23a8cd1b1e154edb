//! `xvs-lab`: the whole of XVS on one machine, in network namespaces — a
//! client, two directors sharing a VIP by VRRP, three real servers — and a
//! walk through what it does. `cargo xtask lab [up|down|status]` builds
//! everything and runs it (as root).
//!
//! Usage:
//!   xvs-lab            build the lab, show every step, tear it all down
//!   xvs-lab up         build the lab and leave it running for manual play
//!   xvs-lab down       remove a lab left up (or by a crashed run)
//!   xvs-lab status     what of the lab is up
//!
//! `XVS_LAB_TAG` names another lab than `xvslab` (the tests use it);
//! `XVS_LAB_XDP_MODE=skb` runs xvsd in generic mode (default `auto`).

use anyhow::{bail, Context, Result};
use std::{
    net::Ipv4Addr,
    path::PathBuf,
    process::ExitCode,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};
use xvs_tests::{
    lab::{serve_http, serve_udp},
    showcase::{self, down, status, Showcase, Site},
};

const USAGE: &str = "\
usage: xvs-lab [run|up|down|status]

  run (default)  build the lab in network namespaces, show each step, and
                 remove everything again (also on failure and Ctrl-C)
  up             build the lab and leave it running; prints how to use it
  down           remove the lab: processes, namespaces, pins and files
  status         show what of the lab is up

Needs root. XVS_LAB_TAG=TAG runs another lab than `xvslab` beside it;
XVS_LAB_XDP_MODE=skb runs xvsd in generic XDP mode (default: auto, which
is native, else generic with a notice).";

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("serve") => serve(&args[1..]),
        None | Some("run") => site().and_then(|s| walk_through(&s)),
        Some("up") => site().and_then(|s| up(&s)),
        Some("down") => site().and_then(|s| {
            let done = down(&s)?;
            if done.is_empty() {
                println!("nothing to remove: no lab {}* is up", s.prefix());
            }
            for d in done {
                println!("{d}");
            }
            Ok(())
        }),
        Some("status") => site().and_then(|s| {
            print!("{}", status(&s)?);
            Ok(())
        }),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(anyhow::anyhow!("unknown command {other:?}\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if INTERRUPTED.load(Ordering::SeqCst) {
                // The watcher is cleaning up and exits the process.
                std::thread::sleep(Duration::from_secs(30));
            }
            eprintln!("xvs-lab: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn site() -> Result<Site> {
    Site::new(&std::env::var("XVS_LAB_TAG").unwrap_or_else(|_| showcase::DEFAULT_TAG.into()))
}

/// This binary: the real servers run it (`serve`).
fn me() -> Result<PathBuf> {
    std::env::current_exe().context("finding the xvs-lab binary")
}

/// SIGINT, SIGTERM or SIGHUP: remove the lab by name (as `down` does) and
/// exit 130, whatever the main thread was doing.
fn clean_up_on_signals(site: &Site) {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic.
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
    let site = site.clone();
    std::thread::spawn(move || loop {
        if INTERRUPTED.load(Ordering::SeqCst) {
            println!("\ninterrupted: removing the lab");
            // Again while something is left: the main thread may have
            // started something (a namespace, an xvsadm) meanwhile.
            for attempt in 0..5 {
                let result = down(&site);
                std::thread::sleep(Duration::from_millis(300));
                if site.leftovers().is_ok_and(|l| l.is_empty()) {
                    break;
                }
                if let (Err(e), 4) = (result, attempt) {
                    eprintln!("xvs-lab: cleaning up: {e:#}");
                }
            }
            report_leftovers(&site);
            std::process::exit(130);
        }
        std::thread::sleep(Duration::from_millis(50));
    });
}

fn report_leftovers(site: &Site) -> bool {
    match site.leftovers() {
        Ok(left) if left.is_empty() => {
            println!("the lab left nothing behind");
            true
        }
        Ok(left) => {
            eprintln!(
                "xvs-lab: left behind (`cargo xtask lab down` removes it):\n  {}",
                left.join("\n  ")
            );
            false
        }
        Err(e) => {
            eprintln!("xvs-lab: checking for leftovers: {e:#}");
            false
        }
    }
}

/// `xvs-lab` / `xvs-lab run`.
fn walk_through(site: &Site) -> Result<()> {
    showcase::check_host(site)?;
    clean_up_on_signals(site);
    let started = Instant::now();
    let outcome = (|| -> Result<()> {
        let mut lab = Showcase::build(site, &me()?, false)?;
        lab.start_directors()?;
        lab.distribution(600, 20)?;
        lab.show_listing()?;
        lab.kill_real(1, 300)?;
        lab.restore_real(1, 60)?;
        let old = lab.failover()?.old;
        lab.restart(old)?;
        lab.shut_down()
    })();
    // The Drop guards have run; make sure, by name, and say so.
    if outcome.is_err() {
        if let Err(e) = down(site) {
            eprintln!("xvs-lab: cleaning up: {e:#}");
        }
    }
    let clean = report_leftovers(site);
    outcome?;
    if !clean {
        bail!("the lab was not removed completely");
    }
    println!("done in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// `xvs-lab up`.
fn up(site: &Site) -> Result<()> {
    showcase::check_host(site)?;
    clean_up_on_signals(site);
    let built = (|| -> Result<Showcase> {
        let mut lab = Showcase::build(site, &me()?, true)?;
        lab.start_directors()?;
        Ok(lab)
    })();
    match built {
        Ok(lab) => {
            lab.print_usage()?;
            lab.lab.leave_running()
        }
        Err(e) => {
            // A half-built lab: nothing of it stays.
            let _ = down(site);
            Err(e)
        }
    }
}

/// `xvs-lab serve http|udp --name NAME [--vip VIP] --port PORT --lab-dir
/// DIR`: a real server's service, run in its namespace by the lab.
/// `--lab-dir` only marks the process as the lab's (for `down`).
fn serve(args: &[String]) -> Result<()> {
    let kind = args.first().context("serve http|udp")?;
    let mut name = None;
    let mut vip: Option<Ipv4Addr> = None;
    let mut port: Option<u16> = None;
    let mut it = args[1..].iter();
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--name" => name = Some(value.clone()),
            "--vip" => vip = Some(value.parse()?),
            "--port" => port = Some(value.parse()?),
            "--lab-dir" => {}
            other => bail!("unknown serve option {other:?}"),
        }
    }
    let name = name.context("--name")?;
    let port = port.context("--port")?;
    match kind.as_str() {
        "http" => serve_http(&name, port),
        "udp" => serve_udp(&name, vip.context("--vip")?, port),
        other => bail!("unknown service {other:?}"),
    }
}
