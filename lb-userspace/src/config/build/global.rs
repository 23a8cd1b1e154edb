//! `global_defs { }` into `GlobalDefs`.

use std::net::IpAddr;

use super::{
    args::{self, Seen},
    unhandled,
};
use crate::config::{
    diag::Diags,
    keywords::{self, Block},
    model::{FlushOnStop, GlobalDefs, LvsSyncDaemon, LvsTimeouts, SmtpServer},
    tree::Stmt,
    values,
};

const SMTP_PORT: u16 = 25;
/// keepalived's LVS_MAX_TIMEOUT: 31 days.
const LVS_MAX_TIMEOUT: u32 = 86400 * 31;

/// Several global_defs blocks add up, as in keepalived.
pub(crate) fn global_defs(stmt: &Stmt, g: &mut GlobalDefs, d: &mut Diags) {
    args::at_most(stmt, d, 0);
    let Some(block) = args::block(stmt, d) else {
        return;
    };
    let mut seen = Seen::default();
    for s in &block.stmts {
        let Some(kw) = keywords::keyword(Block::GlobalDefs, s, d) else {
            continue;
        };
        seen.note(kw, s, d);
        global_keyword(kw, s, g, d);
    }
}

fn global_keyword(kw: &str, s: &Stmt, g: &mut GlobalDefs, d: &mut Diags) {
    use values::*;
    match kw {
        "router_id" => set(&mut g.router_id, args::text(s, d)),
        "notification_email" => g.notification_email.extend(email_block(s, d)),
        "notification_email_from" => set(&mut g.notification_email_from, args::text(s, d)),
        "smtp_server" => set(&mut g.smtp_server, smtp_server(s, d)),
        "smtp_helo_name" => set(&mut g.smtp_helo_name, args::text(s, d)),
        "smtp_connect_timeout" => set(&mut g.smtp_connect_timeout, args::value(s, d, seconds)),
        "smtp_alert" => g.smtp_alert = args::optional_bool(s, d).or(g.smtp_alert),
        "smtp_alert_vrrp" => g.smtp_alert_vrrp = args::optional_bool(s, d).or(g.smtp_alert_vrrp),
        "smtp_alert_checker" => {
            g.smtp_alert_checker = args::optional_bool(s, d).or(g.smtp_alert_checker)
        }
        "no_email_faults" => g.no_email_faults = args::flag(s, d),
        "checker_log_all_failures" => {
            set(&mut g.checker_log_all_failures, args::optional_bool(s, d))
        }
        "vrrp_mcast_group4" => set(&mut g.vrrp_mcast_group4, args::value(s, d, mcast4)),
        "vrrp_mcast_group6" => set(&mut g.vrrp_mcast_group6, args::value(s, d, mcast6)),
        "vrrp_garp_master_delay" => set(&mut g.vrrp_garp_master_delay, args::value(s, d, seconds)),
        "vrrp_garp_master_repeat" => set(&mut g.vrrp_garp_master_repeat, args::value(s, d, repeat)),
        "vrrp_garp_master_refresh" => {
            set(&mut g.vrrp_garp_master_refresh, args::value(s, d, seconds))
        }
        "vrrp_garp_master_refresh_repeat" => set(
            &mut g.vrrp_garp_master_refresh_repeat,
            args::value(s, d, repeat),
        ),
        "vrrp_garp_lower_prio_delay" => {
            g.vrrp_garp_lower_prio_delay =
                args::value(s, d, seconds).or(g.vrrp_garp_lower_prio_delay)
        }
        "vrrp_garp_lower_prio_repeat" => {
            g.vrrp_garp_lower_prio_repeat =
                args::value(s, d, repeat).or(g.vrrp_garp_lower_prio_repeat)
        }
        "vrrp_garp_interval" => set(&mut g.vrrp_garp_interval, args::value(s, d, timer)),
        "vrrp_gna_interval" => set(&mut g.vrrp_gna_interval, args::value(s, d, timer)),
        "vrrp_version" => set(&mut g.vrrp_version, args::value(s, d, |t| u8_in(t, 2, 3))),
        "vrrp_check_unicast_src" => g.vrrp_check_unicast_src = args::flag(s, d),
        "vrrp_skip_check_adv_addr" => {
            set(&mut g.vrrp_skip_check_adv_addr, args::optional_bool(s, d))
        }
        "vrrp_strict" => g.vrrp_strict = args::flag(s, d),
        "vrrp_priority" => g.vrrp_priority = args::value(s, d, nice).or(g.vrrp_priority),
        "checker_priority" => g.checker_priority = args::value(s, d, nice).or(g.checker_priority),
        "lvs_timeouts" => set(&mut g.lvs_timeouts, lvs_timeouts(s, d)),
        "lvs_sync_daemon" => set(&mut g.lvs_sync_daemon, lvs_sync_daemon(s, d)),
        "lvs_flush" => g.lvs_flush = args::flag(s, d),
        "lvs_flush_on_stop" => set(&mut g.lvs_flush_on_stop, flush_on_stop(s, d)),
        "script_user" => {
            let user = args::user_group(s, d);
            set(&mut g.script_user, user)
        }
        "enable_script_security" => g.enable_script_security = args::flag(s, d),
        other => unhandled(other, s, d),
    }
}

/// Overwrites a setting when the new value parsed.
fn set<T>(field: &mut T, value: Option<impl Into<T>>) {
    if let Some(v) = value {
        *field = v.into();
    }
}

fn repeat(t: &str) -> Result<u32, String> {
    values::u32_in(t, 1, u32::MAX)
}

fn nice(t: &str) -> Result<i32, String> {
    values::int(t, -20, 19).map(|n| n as i32)
}

fn mcast4(t: &str) -> Result<std::net::Ipv4Addr, String> {
    match values::ip(t)? {
        IpAddr::V4(a) if a.is_multicast() => Ok(a),
        _ => Err(format!("{t} is not an IPv4 multicast address")),
    }
}

fn mcast6(t: &str) -> Result<std::net::Ipv6Addr, String> {
    match values::ip(t)? {
        IpAddr::V6(a) if a.is_multicast() => Ok(a),
        _ => Err(format!("{t} is not an IPv6 multicast address")),
    }
}

/// `notification_email { a@b c@d }`: every word is an address.
fn email_block(s: &Stmt, d: &mut Diags) -> Vec<String> {
    args::at_most(s, d, 0);
    let Some(block) = args::block(s, d) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for line in &block.stmts {
        args::no_block(line, d);
        out.extend(line.words.iter().map(|w| w.text.clone()));
    }
    out
}

/// `smtp_server HOST [PORT]`
fn smtp_server(s: &Stmt, d: &mut Diags) -> Option<SmtpServer> {
    args::no_block(s, d);
    args::at_most(s, d, 2);
    let host = args::arg(s, d, 0, "a host")?.text.clone();
    let port = match s.args().get(1) {
        Some(t) => args::parse_at(t, d, values::port)?,
        None => SMTP_PORT,
    };
    Some(SmtpServer { host, port })
}

/// `lvs_timeouts [tcp S] [tcpfin S] [udp S]`
fn lvs_timeouts(s: &Stmt, d: &mut Diags) -> Option<LvsTimeouts> {
    args::no_block(s, d);
    let mut t = LvsTimeouts::default();
    let words = s.args();
    if words.is_empty() {
        d.error(
            s.pos(),
            "'lvs_timeouts' needs at least one of tcp, tcpfin, udp",
        );
        return None;
    }
    for pair in words.chunks(2) {
        let slot = match pair[0].text.as_str() {
            "tcp" => &mut t.tcp,
            "tcpfin" => &mut t.tcpfin,
            "udp" => &mut t.udp,
            other => {
                let message =
                    format!("unknown lvs_timeouts option '{other}'; expected tcp, tcpfin or udp");
                d.error(&pair[0].pos, message);
                continue;
            }
        };
        match pair.get(1) {
            Some(v) => *slot = args::parse_at(v, d, |x| values::u32_in(x, 0, LVS_MAX_TIMEOUT)),
            None => d.error(
                &pair[0].pos,
                format!("lvs_timeouts {} needs seconds", pair[0].text),
            ),
        }
    }
    Some(t)
}

/// `lvs_sync_daemon IF [[inst] VRRP] [id N] [maxlen N] [port N] [ttl N] [group IP]`
fn lvs_sync_daemon(s: &Stmt, d: &mut Diags) -> Option<LvsSyncDaemon> {
    args::no_block(s, d);
    let interface = args::arg(s, d, 0, "an interface")?.text.clone();
    let mut sync = LvsSyncDaemon {
        interface,
        instance: None,
        sync_id: None,
        maxlen: None,
        port: None,
        ttl: None,
        group: None,
        pos: s.pos().clone(),
    };
    let words = &s.args()[1..];
    let mut i = 0;
    while i < words.len() {
        let option = &words[i];
        let value = words.get(i + 1);
        let known = matches!(
            option.text.as_str(),
            "inst" | "id" | "maxlen" | "port" | "ttl" | "group"
        );
        if !known {
            // Old syntax: the instance name follows the interface directly.
            if i == 0 {
                sync.instance = Some(option.text.clone());
            } else {
                d.error(
                    &option.pos,
                    format!("unknown lvs_sync_daemon option '{}'", option.text),
                );
            }
            i += 1;
            continue;
        }
        let Some(value) = value else {
            d.error(
                &option.pos,
                format!("lvs_sync_daemon {} needs a value", option.text),
            );
            break;
        };
        match option.text.as_str() {
            "inst" => sync.instance = Some(value.text.clone()),
            "id" => sync.sync_id = args::parse_at(value, d, |t| values::u8_in(t, 0, 255)),
            "maxlen" => {
                sync.maxlen = args::parse_at(value, d, |t| {
                    values::uint(t, 1, 65535 - 28).map(|n| n as u16)
                })
            }
            "port" => sync.port = args::parse_at(value, d, values::port),
            "ttl" => sync.ttl = args::parse_at(value, d, |t| values::u8_in(t, 1, 255)),
            _ => sync.group = args::parse_at(value, d, sync_group),
        }
        i += 2;
    }
    Some(sync)
}

fn sync_group(t: &str) -> Result<IpAddr, String> {
    let addr = values::ip(t)?;
    if !addr.is_multicast() {
        return Err(format!(
            "lvs_sync_daemon group {t} is not a multicast address"
        ));
    }
    Ok(addr)
}

/// `lvs_flush_on_stop [VS]`
fn flush_on_stop(s: &Stmt, d: &mut Diags) -> Option<FlushOnStop> {
    args::no_block(s, d);
    args::at_most(s, d, 1);
    match s.args().first() {
        None => Some(FlushOnStop::All),
        Some(t) if t.text == "VS" => Some(FlushOnStop::VirtualServers),
        Some(t) => {
            d.error(
                &t.pos,
                format!("unknown lvs_flush_on_stop option '{}'; expected VS", t.text),
            );
            None
        }
    }
}
