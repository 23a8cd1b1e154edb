//! The value blocks of VRRP: `virtual_ipaddress`, `unicast_peer`,
//! `track_interface`, `track_script` and `group` entries.

use super::args;
use crate::config::{
    diag::{Diags, Spanned},
    model::{TrackInterface, TrackScript, UnicastPeer, VirtualIp},
    tree::Stmt,
    values,
};

/// Tracking weights: -253..253.
const MAX_TRACK_WEIGHT: i64 = 253;

pub(super) fn track_weight(t: &str) -> Result<i32, String> {
    values::int(t, -MAX_TRACK_WEIGHT, MAX_TRACK_WEIGHT)
        .map(|n| n as i32)
        .map_err(|e| format!("weight {e}"))
}

/// Every line of a `{ }` value block, checked for not having a block.
fn entries<'s>(s: &'s Stmt, d: &mut Diags) -> &'s [Stmt] {
    args::at_most(s, d, 0);
    match args::block(s, d) {
        Some(b) => {
            for line in &b.stmts {
                args::no_block(line, d);
            }
            &b.stmts
        }
        None => &[],
    }
}

/// `group { VI_1 VI_2 }`: every word names an instance.
pub(super) fn names_block(s: &Stmt, d: &mut Diags) -> Vec<Spanned<String>> {
    entries(s, d)
        .iter()
        .flat_map(|line| line.words.iter())
        .map(|w| Spanned::new(w.text.clone(), w.pos.clone()))
        .collect()
}

pub(super) fn virtual_ips(s: &Stmt, d: &mut Diags) -> Vec<VirtualIp> {
    entries(s, d)
        .iter()
        .filter_map(|line| virtual_ip(line, d))
        .collect()
}

/// `ADDR[/PREFIX] [brd ADDR] [dev IF] [scope SCOPE] [label LABEL] ...`
fn virtual_ip(line: &Stmt, d: &mut Diags) -> Option<VirtualIp> {
    let (addr, prefix_len) = args::parse_at(&line.words[0], d, values::ip_prefix)?;
    let mut vip = VirtualIp {
        addr,
        prefix_len,
        brd: None,
        dev: None,
        scope: None,
        label: None,
        pos: line.pos().clone(),
    };
    let words = line.args();
    let mut i = 0;
    while i < words.len() {
        let option = &words[i];
        let slot = match option.text.as_str() {
            "brd" => &mut vip.brd,
            "dev" => &mut vip.dev,
            "scope" => &mut vip.scope,
            "label" => &mut vip.label,
            "peer" | "home" | "-nodad" | "mngtmpaddr" | "noprefixroute" | "autojoin"
            | "no_track" | "preferred_lft" | "use_vmac" | "track_group" => {
                let message = format!(
                    "virtual_ipaddress option '{}' is valid keepalived syntax but not implemented by XVS yet",
                    option.text
                );
                d.not_implemented(&option.pos, message);
                return None;
            }
            other => {
                d.error(
                    &option.pos,
                    format!("unknown virtual_ipaddress option '{other}'"),
                );
                return None;
            }
        };
        let Some(value) = words.get(i + 1) else {
            d.error(&option.pos, format!("'{}' needs a value", option.text));
            return None;
        };
        *slot = Some(value.text.clone());
        i += 2;
    }
    check_vip_options(&vip, line, d).then_some(vip)
}

fn check_vip_options(vip: &VirtualIp, line: &Stmt, d: &mut Diags) -> bool {
    const SCOPES: &[&str] = &["site", "link", "host", "nowhere", "global"];
    if let Some(scope) = &vip.scope {
        if !SCOPES.contains(&scope.as_str()) && values::u8_in(scope, 0, 255).is_err() {
            d.error(
                line.pos(),
                format!(
                    "unknown scope '{scope}'; expected site, link, host, nowhere, global or 0..255"
                ),
            );
            return false;
        }
    }
    if let Some(brd) = &vip.brd {
        if brd != "+" && brd != "-" && values::ip(brd).is_err() {
            d.error(line.pos(), format!("brd '{brd}' is not an IP address"));
            return false;
        }
    }
    true
}

/// `ADDR [min_ttl N] [max_ttl N]`
pub(super) fn unicast_peers(s: &Stmt, d: &mut Diags) -> Vec<UnicastPeer> {
    let mut peers = Vec::new();
    for line in entries(s, d) {
        let Some(addr) = args::parse_at(&line.words[0], d, values::ip) else {
            continue;
        };
        let mut peer = UnicastPeer {
            addr,
            min_ttl: None,
            max_ttl: None,
            pos: line.pos().clone(),
        };
        for pair in line.args().chunks(2) {
            let slot = match pair[0].text.as_str() {
                "min_ttl" => &mut peer.min_ttl,
                "max_ttl" => &mut peer.max_ttl,
                other => {
                    d.error(
                        &pair[0].pos,
                        format!("unknown unicast_peer option '{other}'"),
                    );
                    continue;
                }
            };
            match pair.get(1) {
                Some(v) => *slot = args::parse_at(v, d, |t| values::u8_in(t, 0, 255)),
                None => d.error(&pair[0].pos, format!("'{}' needs a value", pair[0].text)),
            }
        }
        peers.push(peer);
    }
    peers
}

/// `IF [weight N [reverse|noreverse]]`
pub(super) fn track_interfaces(s: &Stmt, d: &mut Diags) -> Vec<TrackInterface> {
    let mut out = Vec::new();
    for line in entries(s, d) {
        let (weight, reverse) = tracking_options(line, d);
        out.push(TrackInterface {
            name: line.keyword().to_owned(),
            weight,
            reverse: reverse.unwrap_or(false),
            pos: line.pos().clone(),
        });
    }
    out
}

/// `NAME [weight N] [reverse|noreverse|no_reverse]`
pub(super) fn track_scripts(s: &Stmt, d: &mut Diags) -> Vec<TrackScript> {
    let mut out = Vec::new();
    for line in entries(s, d) {
        let (weight, reverse) = tracking_options(line, d);
        out.push(TrackScript {
            name: line.keyword().to_owned(),
            weight,
            reverse,
            pos: line.pos().clone(),
        });
    }
    out
}

/// The `weight N` and `reverse`/`noreverse` options of a tracking entry.
fn tracking_options(line: &Stmt, d: &mut Diags) -> (Option<i32>, Option<bool>) {
    let mut weight = None;
    let mut reverse = None;
    let words = line.args();
    let mut i = 0;
    while i < words.len() {
        let option = &words[i];
        match option.text.as_str() {
            "weight" => {
                match words.get(i + 1) {
                    Some(v) => weight = args::parse_at(v, d, track_weight),
                    None => d.error(&option.pos, "'weight' needs a value"),
                }
                i += 1;
            }
            "reverse" => reverse = Some(true),
            "noreverse" | "no_reverse" => reverse = Some(false),
            other => d.error(
                &option.pos,
                format!("unknown tracking option '{other}'; expected weight, reverse or noreverse"),
            ),
        }
        i += 1;
    }
    (weight, reverse)
}
