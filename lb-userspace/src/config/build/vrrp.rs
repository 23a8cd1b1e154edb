//! `vrrp_script`, `vrrp_sync_group` and `vrrp_instance` blocks.

use super::{
    args::{self, Seen},
    name_and_block, unhandled,
    vrrp_entries::{
        names_block, track_interfaces, track_scripts, track_weight, unicast_peers, virtual_ips,
    },
};
use crate::config::{
    diag::Diags,
    keywords::{self, Block},
    model::{
        AuthType, Authentication, VrrpInstance, VrrpScript, VrrpState, VrrpSyncGroup,
        DEFAULT_SCRIPT_INTERVAL,
    },
    tree::Stmt,
    values,
};

pub(crate) fn vrrp_script(stmt: &Stmt, d: &mut Diags) -> Option<VrrpScript> {
    let (name, block) = name_and_block(stmt, d)?;
    let mut v = VrrpScript {
        name,
        script: None,
        interval: DEFAULT_SCRIPT_INTERVAL,
        timeout: None,
        weight: 0,
        reverse: false,
        rise: 1,
        fall: 1,
        user: None,
        init_fail: false,
        pos: stmt.pos().clone(),
    };
    let mut seen = Seen::default();
    for s in &block.stmts {
        let Some(kw) = keywords::keyword(Block::VrrpScript, s, d) else {
            continue;
        };
        seen.note(kw, s, d);
        match kw {
            "script" => v.script = args::script(s, d).or(v.script.take()),
            "interval" => v.interval = args::value(s, d, positive_seconds).unwrap_or(v.interval),
            "timeout" => v.timeout = args::value(s, d, positive_seconds).or(v.timeout),
            "weight" => {
                if let Some((w, reverse)) = weight_reverse(s, d) {
                    v.weight = w;
                    v.reverse = reverse;
                }
            }
            "rise" => v.rise = args::value(s, d, at_least_one).unwrap_or(v.rise),
            "fall" => v.fall = args::value(s, d, at_least_one).unwrap_or(v.fall),
            "user" => v.user = args::user_group(s, d).or(v.user.take()),
            "init_fail" => v.init_fail = args::flag(s, d),
            other => unhandled(other, s, d),
        }
    }
    if v.script.is_none() {
        d.error(
            stmt.pos(),
            format!("vrrp_script {} has no 'script'", v.name),
        );
    }
    Some(v)
}

pub(crate) fn vrrp_sync_group(stmt: &Stmt, d: &mut Diags) -> Option<VrrpSyncGroup> {
    let (name, block) = name_and_block(stmt, d)?;
    let mut g = VrrpSyncGroup {
        name,
        group: Vec::new(),
        notify_master: None,
        notify_backup: None,
        notify_fault: None,
        notify_stop: None,
        notify: None,
        smtp_alert: None,
        track_interfaces: Vec::new(),
        track_scripts: Vec::new(),
        pos: stmt.pos().clone(),
    };
    let mut seen = Seen::default();
    for s in &block.stmts {
        let Some(kw) = keywords::keyword(Block::VrrpSyncGroup, s, d) else {
            continue;
        };
        seen.note(kw, s, d);
        match kw {
            "group" => g.group.extend(names_block(s, d)),
            "notify_master" => g.notify_master = args::script(s, d),
            "notify_backup" => g.notify_backup = args::script(s, d),
            "notify_fault" => g.notify_fault = args::script(s, d),
            "notify_stop" => g.notify_stop = args::script(s, d),
            "notify" => g.notify = args::script(s, d),
            "smtp_alert" => g.smtp_alert = args::optional_bool(s, d),
            "track_interface" => g.track_interfaces.extend(track_interfaces(s, d)),
            "track_script" => g.track_scripts.extend(track_scripts(s, d)),
            other => unhandled(other, s, d),
        }
    }
    Some(g)
}

pub(crate) fn vrrp_instance(stmt: &Stmt, d: &mut Diags) -> Option<VrrpInstance> {
    let (name, block) = name_and_block(stmt, d)?;
    let mut v = VrrpInstance::new(name, stmt.pos().clone());
    let mut seen = Seen::default();
    for s in &block.stmts {
        let Some(kw) = keywords::keyword(Block::VrrpInstance, s, d) else {
            continue;
        };
        seen.note(kw, s, d);
        instance_keyword(kw, s, &mut v, d);
    }
    if !seen.contains("virtual_router_id") {
        d.error(
            stmt.pos(),
            format!("vrrp_instance {} has no virtual_router_id", v.name),
        );
    }
    Some(v)
}

fn instance_keyword(kw: &str, s: &Stmt, v: &mut VrrpInstance, d: &mut Diags) {
    use values::*;
    match kw {
        "state" => v.state = args::spanned(s, args::value(s, d, state)).or(v.state.take()),
        "interface" => v.interface = args::spanned(s, args::text(s, d)).or(v.interface.take()),
        "virtual_router_id" => {
            let vrid = args::value(s, d, |t| {
                u8_in(t, 1, 255).map_err(|e| format!("virtual_router_id {e}"))
            });
            v.virtual_router_id = args::spanned(s, vrid).or(v.virtual_router_id.take());
        }
        "priority" => {
            let prio = args::value(s, d, |t| {
                u8_in(t, 1, 255).map_err(|e| format!("priority {e}"))
            });
            if let Some(p) = args::spanned(s, prio) {
                v.priority = p;
            }
        }
        "advert_int" => v.advert_int = args::value(s, d, advert_int).unwrap_or(v.advert_int),
        "authentication" => v.authentication = authentication(s, d),
        "virtual_ipaddress" => v.virtual_ipaddress.extend(virtual_ips(s, d)),
        "virtual_ipaddress_excluded" => v.virtual_ipaddress_excluded.extend(virtual_ips(s, d)),
        "mcast_src_ip" => v.mcast_src_ip = args::spanned(s, args::value(s, d, ip)),
        "unicast_src_ip" => v.unicast_src_ip = args::spanned(s, args::value(s, d, ip)),
        "unicast_peer" => v.unicast_peers.extend(unicast_peers(s, d)),
        "nopreempt" => v.nopreempt = args::flag(s, d),
        "preempt" => v.nopreempt = !args::flag(s, d),
        "preempt_delay" => {
            v.preempt_delay = args::value(s, d, preempt_delay).unwrap_or(v.preempt_delay)
        }
        "track_interface" => v.track_interfaces.extend(track_interfaces(s, d)),
        "track_script" => v.track_scripts.extend(track_scripts(s, d)),
        "garp_master_delay" => v.garp_master_delay = args::value(s, d, seconds),
        "garp_master_repeat" => v.garp_master_repeat = args::value(s, d, at_least_one),
        "garp_master_refresh" => v.garp_master_refresh = args::value(s, d, seconds),
        "garp_master_refresh_repeat" => {
            v.garp_master_refresh_repeat = args::value(s, d, at_least_one)
        }
        "garp_lower_prio_delay" => v.garp_lower_prio_delay = args::value(s, d, seconds),
        "garp_lower_prio_repeat" => v.garp_lower_prio_repeat = args::value(s, d, at_least_one),
        "notify_master" => v.notify_master = args::script(s, d),
        "notify_backup" => v.notify_backup = args::script(s, d),
        "notify_fault" => v.notify_fault = args::script(s, d),
        "notify_stop" => v.notify_stop = args::script(s, d),
        "notify" => v.notify = args::script(s, d),
        "smtp_alert" => v.smtp_alert = args::optional_bool(s, d),
        "version" => v.version = args::value(s, d, |t| u8_in(t, 2, 3)),
        "dont_track_primary" => v.dont_track_primary = args::flag(s, d),
        "lvs_sync_daemon_interface" => {
            d.warning(
                s.pos(),
                "'lvs_sync_daemon_interface' in vrrp_instance is deprecated; use 'lvs_sync_daemon' in global_defs",
            );
            v.lvs_sync_daemon_interface = args::spanned(s, args::text(s, d));
        }
        "skip_check_adv_addr" => v.skip_check_adv_addr = args::optional_bool(s, d),
        "strict_mode" => v.strict_mode = args::optional_bool(s, d),
        "check_unicast_src" => v.check_unicast_src = args::flag(s, d),
        "v3_checksum_as_v2" => {
            if let Some(on) = args::optional_bool(s, d) {
                v.v3_checksum_as_v2 = on;
            }
        }
        other => unhandled(other, s, d),
    }
}

fn state(t: &str) -> Result<VrrpState, String> {
    match t {
        "MASTER" => Ok(VrrpState::Master),
        "BACKUP" => Ok(VrrpState::Backup),
        _ => Err(format!("unknown state '{t}'; expected MASTER or BACKUP")),
    }
}

/// keepalived: 0.01 s to 255 s.
fn advert_int(t: &str) -> Result<std::time::Duration, String> {
    let d = values::timer(t)?;
    if d.as_micros() < 10_000 || d.as_secs_f64() > 255.0 {
        return Err(format!("advert_int {t} is out of range 0.01..255 seconds"));
    }
    Ok(d)
}

/// keepalived: 0 to 1000 s.
fn preempt_delay(t: &str) -> Result<std::time::Duration, String> {
    let d = values::timer(t)?;
    if d.as_secs_f64() > 1000.0 {
        return Err(format!("preempt_delay {t} is out of range 0..1000 seconds"));
    }
    Ok(d)
}

fn positive_seconds(t: &str) -> Result<std::time::Duration, String> {
    values::uint(t, 1, u32::MAX.into()).map(std::time::Duration::from_secs)
}

fn at_least_one(t: &str) -> Result<u32, String> {
    values::u32_in(t, 1, u32::MAX)
}

/// `weight N [reverse]` (vrrp_script).
fn weight_reverse(s: &Stmt, d: &mut Diags) -> Option<(i32, bool)> {
    args::no_block(s, d);
    args::at_most(s, d, 2);
    let w = args::arg(s, d, 0, "a weight")?;
    let w = args::parse_at(w, d, track_weight)?;
    let reverse = match s.args().get(1) {
        None => false,
        Some(t) if t.text == "reverse" => true,
        Some(t) => {
            d.error(
                &t.pos,
                format!("unknown weight option '{}'; expected reverse", t.text),
            );
            false
        }
    };
    Some((w, reverse))
}

fn authentication(s: &Stmt, d: &mut Diags) -> Option<Authentication> {
    args::at_most(s, d, 0);
    let block = args::block(s, d)?;
    let mut auth = Authentication {
        auth_type: None,
        auth_pass: None,
        pos: s.pos().clone(),
    };
    let mut seen = Seen::default();
    for line in &block.stmts {
        let Some(kw) = keywords::keyword(Block::Authentication, line, d) else {
            continue;
        };
        seen.note(kw, line, d);
        match kw {
            "auth_type" => {
                auth.auth_type = args::spanned(line, args::value(line, d, auth_type));
            }
            "auth_pass" => auth.auth_pass = auth_pass(line, d),
            other => unhandled(other, line, d),
        }
    }
    Some(auth)
}

fn auth_type(t: &str) -> Result<AuthType, String> {
    match t {
        "PASS" => Ok(AuthType::Pass),
        "AH" => Ok(AuthType::Ah),
        _ => Err(format!("unknown auth_type '{t}'; expected PASS or AH")),
    }
}

/// keepalived uses only the first 8 characters; say so rather than cut quietly.
fn auth_pass(s: &Stmt, d: &mut Diags) -> Option<String> {
    let pass = args::text(s, d)?;
    if pass.len() > 8 {
        d.warning(
            &s.args()[0].pos,
            "auth_pass is longer than 8 characters; only the first 8 are used",
        );
    }
    Some(pass.chars().take(8).collect())
}
