//! Effective values after keepalived's inheritance and defaults:
//! virtual server → real server → checker (check_data.c, check_api.c), and
//! global_defs → vrrp_instance.

use std::{net::IpAddr, time::Duration};

use super::model::{
    Checker, CheckerKind, GlobalDefs, RealServer, VirtualServer, VrrpInstance, VsAddress,
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_DELAY_LOOP, DEFAULT_WEIGHT,
};

/// A real server's settings in effect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EffectiveReal {
    pub weight: u32,
    pub inhibit_on_failure: bool,
    pub alpha: bool,
    /// Unset here means each checker's own default.
    pub retry: Option<u32>,
    pub delay_before_retry: Option<Duration>,
    pub warmup: Option<Duration>,
    pub connect_timeout: Duration,
    pub delay_loop: Duration,
    pub smtp_alert: bool,
}

pub fn real_server(global: &GlobalDefs, vs: &VirtualServer, rs: &RealServer) -> EffectiveReal {
    EffectiveReal {
        weight: rs
            .weight
            .as_ref()
            .map(|w| w.value)
            .or(vs.weight)
            .unwrap_or(DEFAULT_WEIGHT),
        inhibit_on_failure: rs.inhibit_on_failure.unwrap_or(vs.inhibit_on_failure),
        alpha: rs.alpha.unwrap_or(vs.alpha),
        retry: rs.retry.or(vs.retry),
        delay_before_retry: rs.delay_before_retry.or(vs.delay_before_retry),
        warmup: rs.warmup.or(vs.warmup),
        connect_timeout: rs
            .connect_timeout
            .or(vs.connect_timeout)
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT),
        delay_loop: rs
            .delay_loop
            .or(vs.delay_loop)
            .unwrap_or(DEFAULT_DELAY_LOOP),
        // keepalived keeps real servers alerting by default, for
        // backward compatibility (unlike every other smtp_alert).
        smtp_alert: rs
            .smtp_alert
            .or(global.smtp_alert_checker)
            .or(global.smtp_alert)
            .unwrap_or(true),
    }
}

/// A checker's settings in effect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EffectiveChecker {
    /// Default: the real server's address.
    pub connect_ip: IpAddr,
    /// Default: the real server's port (the virtual server's in DR).
    pub connect_port: Option<u16>,
    pub bindto: Option<IpAddr>,
    pub bind_port: Option<u16>,
    pub bind_if: Option<String>,
    pub fwmark: Option<u32>,
    pub connect_timeout: Duration,
    pub retry: u32,
    pub delay_before_retry: Duration,
    pub delay_loop: Duration,
    /// Random delay before the first check, up to this.
    pub warmup: Duration,
    pub alpha: bool,
    pub log_all_failures: bool,
    /// MISC_CHECK only: default the virtual server's delay_loop.
    pub misc_timeout: Option<Duration>,
}

pub fn checker(
    global: &GlobalDefs,
    vs: &VirtualServer,
    rs: &RealServer,
    ck: &Checker,
) -> EffectiveChecker {
    let real = real_server(global, vs, rs);
    let c = &ck.common;
    let delay_loop = c.delay_loop.unwrap_or(real.delay_loop);
    let vs_port = match vs.address {
        VsAddress::Ip { port, .. } => port,
        _ => None,
    };
    EffectiveChecker {
        connect_ip: c.connect_ip.unwrap_or(rs.addr),
        connect_port: c.connect_port.or(vs_port).or(rs.port),
        bindto: c.bindto,
        bind_port: c.bind_port,
        bind_if: c.bind_if.clone(),
        fwmark: c.fwmark,
        connect_timeout: c.connect_timeout.unwrap_or(real.connect_timeout),
        retry: c.retry.or(real.retry).unwrap_or(ck.kind.default_retry()),
        delay_before_retry: c
            .delay_before_retry
            .or(real.delay_before_retry)
            .or(ck.kind.default_delay_before_retry())
            .unwrap_or(delay_loop),
        delay_loop,
        warmup: c.warmup.or(real.warmup).unwrap_or(delay_loop),
        alpha: c.alpha.unwrap_or(real.alpha),
        log_all_failures: c
            .log_all_failures
            .unwrap_or(global.checker_log_all_failures),
        misc_timeout: match &ck.kind {
            CheckerKind::Misc(m) => Some(
                m.misc_timeout
                    .unwrap_or(vs.delay_loop.unwrap_or(DEFAULT_DELAY_LOOP)),
            ),
            _ => None,
        },
    }
}

/// A VRRP instance's gratuitous ARP and protocol settings in effect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EffectiveVrrp {
    pub garp_master_delay: Duration,
    pub garp_master_repeat: u32,
    pub garp_master_refresh: Duration,
    pub garp_master_refresh_repeat: u32,
    pub garp_lower_prio_delay: Duration,
    pub garp_lower_prio_repeat: u32,
    /// 3 for IPv6 instances, else as configured or global.
    pub version: u8,
    pub skip_check_adv_addr: bool,
    pub strict_mode: bool,
}

pub fn vrrp_instance(global: &GlobalDefs, v: &VrrpInstance) -> EffectiveVrrp {
    let garp_master_delay = v.garp_master_delay.unwrap_or(global.vrrp_garp_master_delay);
    let garp_master_repeat = v
        .garp_master_repeat
        .unwrap_or(global.vrrp_garp_master_repeat);
    let ipv6 = v
        .virtual_ipaddress
        .first()
        .is_some_and(|vip| vip.addr.is_ipv6());
    EffectiveVrrp {
        garp_master_delay,
        garp_master_repeat,
        garp_master_refresh: v
            .garp_master_refresh
            .unwrap_or(global.vrrp_garp_master_refresh),
        garp_master_refresh_repeat: v
            .garp_master_refresh_repeat
            .unwrap_or(global.vrrp_garp_master_refresh_repeat),
        garp_lower_prio_delay: v
            .garp_lower_prio_delay
            .or(global.vrrp_garp_lower_prio_delay)
            .unwrap_or(garp_master_delay),
        garp_lower_prio_repeat: v
            .garp_lower_prio_repeat
            .or(global.vrrp_garp_lower_prio_repeat)
            .unwrap_or(garp_master_repeat),
        version: if ipv6 {
            3
        } else {
            v.version.unwrap_or(global.vrrp_version)
        },
        skip_check_adv_addr: v
            .skip_check_adv_addr
            .unwrap_or(global.vrrp_skip_check_adv_addr),
        strict_mode: v.strict_mode.unwrap_or(global.vrrp_strict),
    }
}
