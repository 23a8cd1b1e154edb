//! `virtual_server` and `real_server` blocks.

use std::net::IpAddr;

use super::{
    args::{self, Seen},
    checker, unhandled,
};
use crate::config::{
    diag::{Diags, Pos, Spanned},
    keywords::{self, Block},
    model::{
        ForwardingMethod, Granularity, RealServer, SorryServer, VirtualServer, VsAddress,
        VsProtocol, DEFAULT_PERSISTENCE_TIMEOUT, KEEPALIVED_SCHEDULERS,
    },
    tree::Stmt,
    values,
};

/// keepalived's LVS_MAX_TIMEOUT: 31 days.
const MAX_PERSISTENCE_TIMEOUT: u32 = 86400 * 31;
/// keepalived accepts weights up to INT32_MAX; IPVS (and ipvsadm) 0..65535.
const KEEPALIVED_MAX_WEIGHT: u64 = i32::MAX as u64;
const MAX_WEIGHT: u64 = 65535;

pub(crate) fn virtual_server(stmt: &Stmt, d: &mut Diags) -> Option<VirtualServer> {
    let address = vs_address(stmt, d)?;
    let block = args::block(stmt, d)?;
    let mut vs = VirtualServer::new(address, stmt.pos().clone());
    let mut sorry_options = SorryOptions::default();
    let mut seen = Seen::default();
    for s in &block.stmts {
        let Some(kw) = keywords::keyword(Block::VirtualServer, s, d) else {
            continue;
        };
        seen.note(kw, s, d);
        vs_keyword(kw, s, &mut vs, &mut sorry_options, d);
    }
    sorry_options.apply(&mut vs, d);
    Some(vs)
}

/// `virtual_server IP [PORT]`, `group NAME` or `fwmark N`.
fn vs_address(stmt: &Stmt, d: &mut Diags) -> Option<VsAddress> {
    args::at_most(stmt, d, 2);
    let first = args::arg(stmt, d, 0, "an address, 'group NAME' or 'fwmark N'")?;
    match first.text.as_str() {
        "group" => {
            let name = args::arg(stmt, d, 1, "a group name after 'group'")?;
            Some(VsAddress::Group(name.text.clone()))
        }
        "fwmark" => {
            let mark = args::arg(stmt, d, 1, "a mark after 'fwmark'")?;
            let mark = args::parse_at(mark, d, |t| values::uint(t, 0, u32::MAX.into()))?;
            Some(VsAddress::Fwmark(mark as u32))
        }
        _ => {
            let addr = args::parse_at(first, d, values::ip)?;
            let port = match stmt.args().get(1) {
                Some(t) => args::parse_at(t, d, values::port_or_none)?,
                None => None,
            };
            Some(VsAddress::Ip { addr, port })
        }
    }
}

/// Sorry-server options that may come before the sorry_server line.
#[derive(Default)]
struct SorryOptions {
    inhibit: Option<Pos>,
    lvs_method: Option<Spanned<ForwardingMethod>>,
}

impl SorryOptions {
    fn apply(self, vs: &mut VirtualServer, d: &mut Diags) {
        match &mut vs.sorry_server {
            Some(sorry) => {
                sorry.inhibit = self.inhibit.is_some();
                sorry.lvs_method = self.lvs_method;
            }
            None => {
                let stray = self.inhibit.or(self.lvs_method.map(|m| m.pos));
                if let Some(pos) = stray {
                    d.warning(&pos, "sorry server option without a sorry_server; ignored");
                }
            }
        }
    }
}

fn vs_keyword(kw: &str, s: &Stmt, vs: &mut VirtualServer, sorry: &mut SorryOptions, d: &mut Diags) {
    use values::*;
    match kw {
        "delay_loop" => vs.delay_loop = args::value(s, d, positive_timer).or(vs.delay_loop),
        "lvs_sched" => {
            vs.lvs_sched = args::spanned(s, args::value(s, d, scheduler)).or(vs.lvs_sched.take())
        }
        "lvs_method" => vs.lvs_method = lvs_method(s, d).or(vs.lvs_method.take()),
        "protocol" => {
            vs.protocol = args::spanned(s, args::value(s, d, protocol)).or(vs.protocol.take())
        }
        "persistence_timeout" => vs.persistence_timeout = persistence_timeout(s, d),
        "persistence_granularity" => {
            vs.persistence_granularity = args::spanned(s, args::value(s, d, granularity))
        }
        "virtualhost" => vs.virtualhost = args::text(s, d),
        "sorry_server" => vs.sorry_server = sorry_server(s, d),
        "sorry_server_inhibit" => sorry.inhibit = args::flag(s, d).then(|| s.pos().clone()),
        "sorry_server_lvs_method" => sorry.lvs_method = lvs_method(s, d),
        "quorum" => vs.quorum = args::value(s, d, |t| u32_in(t, 1, u32::MAX)).unwrap_or(vs.quorum),
        "hysteresis" => vs.hysteresis = args::value(s, d, |t| u32_in(t, 0, u32::MAX)).unwrap_or(0),
        "quorum_up" => vs.quorum_up = args::script(s, d),
        "quorum_down" => vs.quorum_down = args::script(s, d),
        "inhibit_on_failure" => vs.inhibit_on_failure = args::flag(s, d),
        "alpha" => vs.alpha = args::flag(s, d),
        "omega" => vs.omega = args::flag(s, d),
        "ha_suspend" => vs.ha_suspend = args::flag(s, d),
        "ops" => vs.ops = args::flag(s, d).then(|| s.pos().clone()),
        "hashed" => {
            args::flag(s, d);
            d.warning(
                s.pos(),
                "'hashed' has no effect (keepalived ignores it too)",
            );
        }
        "sh-port" | "flag-2" => vs.sh_port = args::flag(s, d).then(|| s.pos().clone()),
        "sh-fallback" | "flag-1" => vs.sh_fallback = args::flag(s, d).then(|| s.pos().clone()),
        "retry" => vs.retry = args::value(s, d, |t| u32_in(t, 1, u32::MAX)),
        "delay_before_retry" => vs.delay_before_retry = args::value(s, d, timer),
        "warmup" => vs.warmup = args::value(s, d, timer),
        "connect_timeout" => vs.connect_timeout = args::value(s, d, positive_timer),
        "smtp_alert" => vs.smtp_alert = args::optional_bool(s, d),
        "weight" => vs.weight = args::value(s, d, |t| weight(t, 1)),
        "real_server" => vs.real_servers.extend(real_server(s, d)),
        other => unhandled(other, s, d),
    }
}

/// A value located at its keyword (for "not implemented" reports).
fn at_keyword<T>(s: &Stmt, value: Option<T>) -> Option<Spanned<T>> {
    value.map(|v| Spanned::new(v, s.pos().clone()))
}

fn scheduler(t: &str) -> Result<String, String> {
    if KEEPALIVED_SCHEDULERS.contains(&t) {
        return Ok(t.to_owned());
    }
    Err(format!(
        "unknown scheduler '{t}'; keepalived knows {}",
        KEEPALIVED_SCHEDULERS.join(", ")
    ))
}

fn protocol(t: &str) -> Result<VsProtocol, String> {
    match t.to_ascii_uppercase().as_str() {
        "TCP" => Ok(VsProtocol::Tcp),
        "UDP" => Ok(VsProtocol::Udp),
        "SCTP" => Ok(VsProtocol::Sctp),
        _ => Err(format!("unknown protocol '{t}'; expected TCP, UDP or SCTP")),
    }
}

/// `lvs_method NAT|DR|TUN [tunnel options]` (tunnel options are not
/// checked: TUN itself is refused).
fn lvs_method(s: &Stmt, d: &mut Diags) -> Option<Spanned<ForwardingMethod>> {
    args::no_block(s, d);
    let token = args::arg(s, d, 0, "NAT, DR or TUN")?;
    let method = args::parse_at(token, d, |t| match t {
        "NAT" => Ok(ForwardingMethod::Nat),
        "DR" => Ok(ForwardingMethod::Dr),
        "TUN" => Ok(ForwardingMethod::Tun),
        _ => Err(format!(
            "unknown forwarding method '{t}'; expected NAT, DR or TUN"
        )),
    })?;
    if method != ForwardingMethod::Tun {
        args::at_most(s, d, 1);
    }
    Some(Spanned::new(method, token.pos.clone()))
}

/// `persistence_timeout [SECONDS]`; no value means 360 s.
fn persistence_timeout(s: &Stmt, d: &mut Diags) -> Option<Spanned<u32>> {
    args::no_block(s, d);
    args::at_most(s, d, 1);
    let Some(token) = s.args().first() else {
        return Some(Spanned::new(DEFAULT_PERSISTENCE_TIMEOUT, s.pos().clone()));
    };
    let timeout = args::parse_at(token, d, |t| values::u32_in(t, 0, MAX_PERSISTENCE_TIMEOUT))?;
    if timeout == 0 {
        d.warning(
            &token.pos,
            "persistence_timeout 0 means no persistence; keepalived 2.2.7 rejects 0, so leave the keyword out",
        );
    }
    Some(Spanned::new(timeout, token.pos.clone()))
}

/// An IPv4 netmask (must be contiguous) or an IPv6 prefix length.
fn granularity(t: &str) -> Result<Granularity, String> {
    if t.contains('.') {
        let mask = match values::ip(t)? {
            IpAddr::V4(m) => m,
            IpAddr::V6(_) => return Err(format!("'{t}' is not an IPv4 netmask")),
        };
        values::netmask_prefix(mask)?;
        return Ok(Granularity::V4Mask(mask));
    }
    values::u8_in(t, 1, 128)
        .map(Granularity::V6Prefix)
        .map_err(|e| format!("IPv6 persistence_granularity {e}"))
}

/// A real server weight: keepalived's range, then IPVS's.
pub(crate) fn weight(t: &str, min: u64) -> Result<u32, String> {
    let w = values::uint(t, min, KEEPALIVED_MAX_WEIGHT).map_err(|e| format!("weight {e}"))?;
    if w > MAX_WEIGHT {
        return Err(format!(
            "weight {w} is above {MAX_WEIGHT}, the largest weight IPVS and XVS take"
        ));
    }
    Ok(w as u32)
}

/// `sorry_server IP [PORT]`
fn sorry_server(s: &Stmt, d: &mut Diags) -> Option<SorryServer> {
    args::no_block(s, d);
    args::at_most(s, d, 2);
    let (addr, port) = address_and_port(s, d)?;
    Some(SorryServer {
        addr,
        port,
        inhibit: false,
        lvs_method: None,
        pos: s.pos().clone(),
    })
}

fn address_and_port(s: &Stmt, d: &mut Diags) -> Option<(IpAddr, Option<u16>)> {
    let addr = args::arg(s, d, 0, "an address")?;
    let addr = args::parse_at(addr, d, values::ip)?;
    let port = match s.args().get(1) {
        Some(t) => args::parse_at(t, d, values::port_or_none)?,
        None => None,
    };
    Some((addr, port))
}

/// `real_server IP [PORT] { ... }` (the block may be left out).
fn real_server(stmt: &Stmt, d: &mut Diags) -> Option<RealServer> {
    args::at_most(stmt, d, 2);
    let (addr, port) = address_and_port(stmt, d)?;
    let mut rs = RealServer::new(addr, port, stmt.pos().clone());
    let Some(block) = &stmt.block else {
        return Some(rs);
    };
    let mut seen = Seen::default();
    for s in &block.stmts {
        let Some(kw) = keywords::keyword(Block::RealServer, s, d) else {
            continue;
        };
        seen.note(kw, s, d);
        rs_keyword(kw, s, &mut rs, d);
    }
    Some(rs)
}

fn rs_keyword(kw: &str, s: &Stmt, rs: &mut RealServer, d: &mut Diags) {
    use values::*;
    let count = |t: &str| u32_in(t, 0, u32::MAX);
    match kw {
        "weight" => rs.weight = args::spanned(s, args::value(s, d, |t| weight(t, 0))),
        "lvs_method" => rs.lvs_method = lvs_method(s, d),
        "inhibit_on_failure" => rs.inhibit_on_failure = args::optional_bool(s, d),
        "notify_up" => rs.notify_up = args::script(s, d),
        "notify_down" => rs.notify_down = args::script(s, d),
        "uthreshold" => rs.uthreshold = at_keyword(s, args::value(s, d, count)),
        "lthreshold" => rs.lthreshold = at_keyword(s, args::value(s, d, count)),
        "alpha" => rs.alpha = args::optional_bool(s, d),
        "retry" => rs.retry = args::value(s, d, |t| u32_in(t, 1, u32::MAX)),
        "delay_before_retry" => rs.delay_before_retry = args::value(s, d, timer),
        "warmup" => rs.warmup = args::value(s, d, timer),
        "connect_timeout" => rs.connect_timeout = args::value(s, d, positive_timer),
        "delay_loop" => rs.delay_loop = args::value(s, d, positive_timer),
        "smtp_alert" => rs.smtp_alert = args::optional_bool(s, d),
        "virtualhost" => rs.virtualhost = args::text(s, d),
        other if keywords::CHECKERS.contains(&other) => {
            rs.checkers.extend(checker::checker(other, s, d))
        }
        other => unhandled(other, s, d),
    }
}
