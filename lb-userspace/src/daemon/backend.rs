//! Which data plane xvsd drives (`--backend`): the XDP program (default),
//! the kernel's own IPVS, or `auto`, XDP when it can be loaded and
//! attached, else IPVS, said in one log line.

use super::Options;
use crate::dataplane::{AttachMode, Dataplane, IpvsDataplane, XdpDataplane};
use anyhow::{bail, Context, Result};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Backend {
    #[default]
    Xdp,
    Ipvs,
    Auto,
}

impl std::str::FromStr for Backend {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "xdp" => Ok(Backend::Xdp),
            "ipvs" => Ok(Backend::Ipvs),
            "auto" => Ok(Backend::Auto),
            _ => bail!("unknown backend {s:?}: expected xdp, ipvs or auto"),
        }
    }
}

/// A started data plane, and what `status` says about it.
pub struct Started {
    pub dataplane: Box<dyn Dataplane + Send>,
    /// The backend in use (never `Auto`).
    pub backend: Backend,
    /// `native` or `skb` for XDP, `ipvs` for IPVS.
    pub mode: String,
    /// Connection-table size, ipvsadm's `(size=N)`.
    pub table_size: u32,
}

/// Starts the data plane `backend` asks for. `start_xdp` is the daemon's
/// XDP start-up (load, adopt pins, attach to `iface`); IPVS needs no
/// interface. With `auto`, a failed XDP start-up is logged once and IPVS
/// is used instead.
pub fn start(
    backend: Backend,
    opts: &Options,
    iface: &str,
    start_xdp: impl FnOnce(&Options, &str) -> Result<(XdpDataplane, AttachMode)>,
) -> Result<Started> {
    match backend {
        Backend::Xdp => xdp(start_xdp(opts, iface)?),
        Backend::Ipvs => ipvs(opts),
        Backend::Auto => match start_xdp(opts, iface) {
            Ok(started) => xdp(started),
            Err(e) => {
                tracing::warn!(
                    "XDP data plane unavailable on {iface} ({e:#}): falling back to the kernel's IPVS"
                );
                ipvs(opts).context("falling back to IPVS after XDP failed")
            }
        },
    }
}

fn xdp((dp, mode): (XdpDataplane, AttachMode)) -> Result<Started> {
    Ok(Started {
        table_size: dp.conn_table_size()?,
        dataplane: Box::new(dp),
        backend: Backend::Xdp,
        mode: format!("{mode:?}").to_lowercase(),
    })
}

fn ipvs(opts: &Options) -> Result<Started> {
    let mut dp = IpvsDataplane::open()?;
    dp.keep_on_drop(opts.keep_dataplane_on_exit);
    // Only switched on: by default the sysctl stays as the host has it.
    if opts.expire_nodest_conn {
        dp.set_expire_nodest_conn(true)?;
    }
    tracing::info!(
        version = %dp.version(),
        table_size = dp.conn_table_size(),
        "data plane: the kernel's IPVS (generic netlink)"
    );
    Ok(Started {
        table_size: dp.conn_table_size(),
        dataplane: Box::new(dp),
        backend: Backend::Ipvs,
        mode: "ipvs".to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_flag() {
        assert_eq!("ipvs".parse::<Backend>().unwrap(), Backend::Ipvs);
        assert_eq!("auto".parse::<Backend>().unwrap(), Backend::Auto);
        assert_eq!("xdp".parse::<Backend>().unwrap(), Backend::Xdp);
        assert!("lvs".parse::<Backend>().is_err());
    }
}
