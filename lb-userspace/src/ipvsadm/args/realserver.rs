//! `xvsadm realserver up|down|status --vip VIP [--vip VIP...]`, xvsadm's own
//! subcommand (its flags may come in any order, with `--json` and
//! `--socket`).

use std::{net::IpAddr, path::PathBuf};

use super::{invalid, ArgError, Command, Parsed, RealServerAction};

pub(super) fn parse_realserver(args: &[String]) -> Result<Parsed, ArgError> {
    let mut action = None;
    let mut vips = Vec::new();
    let mut json = false;
    let mut socket = None;
    let mut seen_subcommand = false;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = || inline.clone().or_else(|| rest.next().cloned());
        match name {
            "--json" => json = true,
            "--socket" => {
                socket = Some(PathBuf::from(
                    value().ok_or_else(|| invalid("--socket: missing argument"))?,
                ))
            }
            "--vip" => vips.push(parse_vip(
                &value().ok_or_else(|| invalid("--vip: missing argument"))?,
            )?),
            "realserver" if !seen_subcommand => seen_subcommand = true,
            "up" | "down" | "status" if action.is_none() => action = Some(realserver_action(name)),
            other if other.starts_with('-') => {
                return Err(invalid(format!("realserver: {other}: unknown option")))
            }
            other => return Err(invalid(format!("realserver: unexpected argument {other}"))),
        }
    }
    let action = action.ok_or_else(|| invalid("realserver: expected up, down or status"))?;
    if vips.is_empty() {
        return Err(invalid("realserver: at least one --vip VIP is required"));
    }
    Ok(Parsed {
        command: Command::RealServer { action, vips },
        json,
        socket,
    })
}

fn realserver_action(word: &str) -> RealServerAction {
    match word {
        "up" => RealServerAction::Up,
        "down" => RealServerAction::Down,
        _ => RealServerAction::Status,
    }
}

fn parse_vip(text: &str) -> Result<IpAddr, ArgError> {
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    bare.parse()
        .map_err(|_| invalid(format!("--vip: `{text}' is not an IP address")))
}
