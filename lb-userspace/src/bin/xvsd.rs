//! xvsd: the XVS daemon. For now it loads and attaches the data plane to an
//! interface and holds it until SIGTERM/SIGINT; reading keepalived.conf,
//! VRRP and health checks arrive with their own changes.

use anyhow::{bail, Context, Result};
use xvs::dataplane::{AttachMode, XdpDataplane, XdpOptions};

const USAGE: &str = "usage: xvsd --interface IFACE [--xdp-mode native|skb|auto]";

fn main() -> Result<()> {
    let mut iface = None;
    let mut mode = AttachMode::Auto;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-i" | "--interface" => iface = args.next(),
            "--xdp-mode" => mode = args.next().context("--xdp-mode needs a value")?.parse()?,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    let iface = iface.context(USAGE)?;
    let mut dp = XdpDataplane::load(XdpOptions::default())?;
    let used = dp.attach(&iface, mode)?;
    eprintln!("xvsd: XDP attached to {iface} in {used:?} mode (inactive, no services)");
    wait_for_termination();
    dp.detach()?;
    eprintln!("xvsd: detached from {iface}");
    Ok(())
}

fn wait_for_termination() {
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let mut sig = 0;
        libc::sigwait(&set, &mut sig);
    }
}
