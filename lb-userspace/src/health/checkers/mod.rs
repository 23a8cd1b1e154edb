//! The probes, one module per keepalived checker, and [`build`], which
//! makes the probe of one checker block of one real server.

pub mod http;
pub mod misc;
pub mod ping;
pub mod socket;
pub mod tcp;
mod tls;
pub mod udp;

use anyhow::{bail, Result};

use self::{
    http::{HttpCheck, VirtualHosts},
    misc::MiscCheck,
    ping::PingCheck,
    socket::ConnOpts,
    tcp::TcpCheck,
    tls::TlsConfigs,
    udp::UdpCheck,
};
use super::Checker;
use crate::config::{
    model::{self, CheckerKind, Config, RealServer, VirtualServer},
    resolve,
};

/// The probe for checker `ck` of real server `rs` in virtual server `vs`,
/// with keepalived's inheritance applied (`config::resolve`). Fails for
/// the checkers XVS does not implement, and for settings that cannot work
/// (no port to connect to, a script or user that does not exist, ...).
pub fn build(
    config: &Config,
    vs: &VirtualServer,
    rs: &RealServer,
    ck: &model::Checker,
) -> Result<Box<dyn Checker>> {
    let eff = resolve::checker(&config.global, vs, rs, ck);
    let port = || match eff.connect_port {
        Some(port) => Ok(port),
        None => bail!(
            "{} for real server {} has no port to connect to (set connect_port)",
            ck.name(),
            rs.addr
        ),
    };
    let vhosts = VirtualHosts {
        real_server: rs.virtualhost.as_deref(),
        virtual_server: vs.virtualhost.as_deref(),
    };
    Ok(match &ck.kind {
        CheckerKind::Tcp => Box::new(TcpCheck::new(ConnOpts::new(&eff, port()?))),
        CheckerKind::Http(h) => {
            refuse_regex(h)?;
            let conn = ConnOpts::new(&eff, port()?);
            Box::new(HttpCheck::new(h, vhosts, conn, None))
        }
        CheckerKind::Ssl(h) => {
            refuse_regex(h)?;
            let tls = TlsConfigs::new(config.ssl.as_ref())?;
            let conn = ConnOpts::new(&eff, port()?);
            Box::new(HttpCheck::new(h, vhosts, conn, Some(&tls)))
        }
        CheckerKind::Misc(m) => {
            // keepalived: misc_timeout, or when unset or 0 the virtual
            // server's delay_loop (check_misc.c misc_check_thread).
            let vs_delay_loop = vs.delay_loop.unwrap_or(model::DEFAULT_DELAY_LOOP);
            let timeout = eff
                .misc_timeout
                .filter(|t| !t.is_zero())
                .unwrap_or(vs_delay_loop);
            let weight = resolve::real_server(&config.global, vs, rs).weight;
            Box::new(MiscCheck::new(m, &config.global, timeout, weight)?)
        }
        CheckerKind::Udp(u) => Box::new(UdpCheck::new(u, ConnOpts::new(&eff, port()?))),
        CheckerKind::Ping => Box::new(PingCheck::new(ConnOpts::new(&eff, 0))),
        CheckerKind::Dns(_) | CheckerKind::Smtp(_) | CheckerKind::Bfd(_) | CheckerKind::File(_) => {
            bail!("{} is not supported yet", ck.name())
        }
    })
}

/// keepalived matches `regex` with PCRE2; XVS has no regex engine yet.
fn refuse_regex(h: &model::HttpCheck) -> Result<()> {
    match h.urls.iter().find(|u| u.regex.is_some()) {
        Some(u) => bail!(
            "url {}: regex is not supported yet",
            u.path.as_deref().unwrap_or("")
        ),
        None => Ok(()),
    }
}
