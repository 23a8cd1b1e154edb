//! ipvsadm 1.31's command line, parsed into a typed [`Command`].
//!
//! The grammar is ipvsadm's: popt's option syntax (bundled short flags
//! `-Ln`, attached values `-p360`, `--long=value`, `-p`'s optional value),
//! the same defaults (`-g`, weight 1, `-p` 360 s), the table of which options
//! go with which command (`commands_v_options`, ipvsadm.c:278) and ipvsadm's
//! own error messages. Where XVS cannot do what ipvsadm asks (NAT, tunnels,
//! schedulers other than rr/wrr/sh, fwmark services, the sync daemon), the
//! parse fails with [`ArgError::Unsupported`] saying so. Three choices differ
//! from ipvsadm on purpose: the command may come anywhere on the line (ipvsadm
//! wants it first), option values that depend on each other (`-r` on `-t`,
//! `-M` on the service's family, `-b` on `-s`) are read whatever their order,
//! and a non-contiguous `-M` netmask is refused (XVS keeps a prefix length).

use std::{net::IpAddr, path::PathBuf};

use thiserror::Error;

use crate::model::{Persistence, SchedulerKind, ServiceId};

use super::{format::ListFormat, listing::Timeouts, resolve::Resolver};

mod flags;
mod grammar;
mod realserver;

pub(crate) use grammar::parse_ipvsadm;
use realserver::parse_realserver;

/// `-p` without a value (`IPVS_SVC_PERSISTENT_TIMEOUT`, libipvs.h:34).
pub const DEFAULT_PERSISTENT_TIMEOUT: u32 = 6 * 60;
/// The schedulers XVS implements.
pub const SUPPORTED_SCHEDULERS: [&str; 3] = ["rr", "wrr", "sh"];

/// A parsed command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invocation {
    pub command: Command,
    /// `--json`: print the listing's model as JSON.
    pub json: bool,
    /// `--socket PATH`, else `$XVS_SOCKET`; None leaves the default to the
    /// caller.
    pub socket: Option<PathBuf>,
}

/// What xvsadm is asked to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `-A`: add a virtual service.
    AddService(VirtualService),
    /// `-E`: change a virtual service; as in ipvsadm, options not given go
    /// back to their defaults (no persistence, scheduler wlc).
    EditService(VirtualService),
    /// `-D`.
    DeleteService(ServiceId),
    /// `-a`.
    AddServer(RealServer),
    /// `-e`; as in ipvsadm, no `-w` means weight 1.
    EditServer(RealServer),
    /// `-d`.
    DeleteServer {
        service: ServiceId,
        addr: IpAddr,
        port: u16,
    },
    /// `-C`: clear the whole table.
    Clear,
    /// `-Z [-t|-u VIP:PORT]`: zero the counters of one service or all.
    Zero(Option<ServiceId>),
    /// `--set TCP TCPFIN UDP` (0 leaves a timeout unchanged).
    SetTimeouts(Timeouts),
    /// `-L`/`-l`, also xvsadm without arguments.
    List(ListRequest),
    /// `-S [-n]`: print the table as restore commands.
    Save { numeric: bool },
    /// `-R`: read commands in `-S` syntax from stdin.
    Restore,
    /// `xvsadm realserver up|down|status --vip VIP...`.
    RealServer {
        action: RealServerAction,
        vips: Vec<IpAddr>,
    },
    /// `xvsadm vrrp`: the VRRP instances' states (not in ipvsadm).
    Vrrp,
    /// `-h`.
    Help,
    /// `-v`.
    Version,
}

/// `-A`/`-E`: a service with its scheduler and persistence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VirtualService {
    pub id: ServiceId,
    pub scheduler: SchedulerKind,
    pub persistence: Option<Persistence>,
}

/// `-a`/`-e`: a real server of a service, reached by direct routing (so on
/// the service's port, as ipvsadm.c:1048 forces).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RealServer {
    pub service: ServiceId,
    pub addr: IpAddr,
    pub port: u16,
    pub weight: u32,
}

/// `-L` and what to list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListRequest {
    pub what: ListWhat,
    pub format: ListFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListWhat {
    /// The whole table (`list_all`).
    All,
    /// `-L -t|-u VIP:PORT` (`list_service`).
    Service(ServiceId),
    /// `-L -c`.
    Connections,
    /// `-L --timeout`.
    Timeouts,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RealServerAction {
    Up,
    Down,
    Status,
}

/// Why a command line was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ArgError {
    /// Input ipvsadm refuses too; the text is ipvsadm's message where it has
    /// one.
    #[error("{0}")]
    Invalid(String),
    /// Input ipvsadm takes but XVS does not implement.
    #[error("{0}")]
    Unsupported(String),
}

fn invalid(message: impl Into<String>) -> ArgError {
    ArgError::Invalid(message.into())
}

fn unsupported(message: impl Into<String>) -> ArgError {
    ArgError::Unsupported(message.into())
}

/// Parse the arguments after the program name; `$XVS_SOCKET` supplies the
/// socket when `--socket` does not.
pub fn parse_args(args: &[String], names: &dyn Resolver) -> Result<Invocation, ArgError> {
    let env_socket = std::env::var_os("XVS_SOCKET").map(PathBuf::from);
    parse_args_with_env(args, names, env_socket)
}

/// [`parse_args`] with the value of `$XVS_SOCKET` given.
pub fn parse_args_with_env(
    args: &[String],
    names: &dyn Resolver,
    env_socket: Option<PathBuf>,
) -> Result<Invocation, ArgError> {
    let parsed = if first_word(args) == Some("realserver") {
        parse_realserver(args)?
    } else if first_word(args) == Some("vrrp") {
        parse_vrrp(args)?
    } else {
        parse_ipvsadm(args, names)?
    };
    let json_applies = matches!(
        parsed.command,
        Command::List(_) | Command::RealServer { .. } | Command::Vrrp
    );
    if parsed.json && !json_applies {
        return Err(invalid(
            "--json applies only to listings (-L, -l), realserver and vrrp",
        ));
    }
    Ok(Invocation {
        command: parsed.command,
        json: parsed.json,
        socket: parsed.socket.or(env_socket),
    })
}

/// `xvsadm vrrp [--json] [--socket PATH]`.
fn parse_vrrp(args: &[String]) -> Result<Parsed, ArgError> {
    let mut parsed = Parsed {
        command: Command::Vrrp,
        json: false,
        socket: None,
    };
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.split_once('=') {
            Some(("--socket", path)) => parsed.socket = Some(PathBuf::from(path)),
            _ => match arg.as_str() {
                "vrrp" => {}
                "--json" => parsed.json = true,
                "--socket" => {
                    let path = rest
                        .next()
                        .ok_or_else(|| invalid("--socket: missing argument"))?;
                    parsed.socket = Some(PathBuf::from(path));
                }
                other => return Err(invalid(format!("vrrp: unexpected argument {other}"))),
            },
        }
    }
    Ok(parsed)
}

/// A command with the XVS flags that came with it.
pub(crate) struct Parsed {
    pub(crate) command: Command,
    pub(crate) json: bool,
    pub(crate) socket: Option<PathBuf>,
}

/// The first argument that is neither `--json` nor `--socket [PATH]`.
fn first_word(args: &[String]) -> Option<&str> {
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--json" => {}
            "--socket" => {
                rest.next();
            }
            a if a.starts_with("--socket=") => {}
            a => return Some(a),
        }
    }
    None
}

/// `xvsadm -h`: ipvsadm's usage (ipvsadm.c:1443), cut to what XVS does.
pub fn usage(program: &str) -> String {
    format!(
        "\
Usage:
  {p} -A|E virtual-service -s rr|wrr|sh [-p [timeout]] [-M netmask] [-b sched-flags]
  {p} -D virtual-service
  {p} -C
  {p} -R
  {p} -S [-n]
  {p} -a|e virtual-service -r server-address [-g] [-w weight]
  {p} -d virtual-service -r server-address
  {p} -L|l [virtual-service] [options]
  {p} -Z [virtual-service]
  {p} --set tcp tcpfin udp
  {p} realserver up|down|status --vip VIP [--vip VIP...]
  {p} vrrp
  {p} -h

Commands:
Either long or short options are allowed.
  --add-service     -A        add virtual service with options
  --edit-service    -E        edit virtual service with options
  --delete-service  -D        delete virtual service
  --clear           -C        clear the whole table
  --restore         -R        restore rules from stdin
  --save            -S        save rules to stdout
  --add-server      -a        add real server with options
  --edit-server     -e        edit real server with options
  --delete-server   -d        delete real server
  --list            -L|-l     list the table
  --zero            -Z        zero counters in a service or all services
  --set tcp tcpfin udp        set connection timeout values
  --help            -h        display this help message

virtual-service:
  --tcp-service|-t  service-address   service-address is host[:port]
  --udp-service|-u  service-address   service-address is host[:port]

Options:
  --scheduler    -s scheduler         one of rr|wrr|sh (ipvsadm's default, wlc, is not supported)
  --persistent   -p [timeout]         persistent service (default {timeout} s)
  --netmask      -M netmask           persistent granularity mask (IPv6: prefix length)
  --real-server  -r server-address    server-address is host (and port)
  --gatewaying   -g                   gatewaying (direct routing) (default, the only method)
  --weight       -w weight            capacity of real server
  --connection   -c                   output of current connections
  --timeout                           output of timeout (tcp tcpfin udp)
  --stats                             output of statistics information
  --rate                              output of rate information
  --exact                             expand numbers (display exact values)
  --persistent-conn                   output of persistent connection info
  --nosort                            disable sorting output of service/server entries
  --sort                              does nothing, for backwards compatibility
  --numeric      -n                   numeric output of addresses and ports
  --sched-flags  -b flags             scheduler flags (comma-separated): sh-fallback, sh-port
  --json                              print listings as JSON
  --socket PATH                       the xvsd control socket (default: $XVS_SOCKET)
",
        p = program,
        timeout = DEFAULT_PERSISTENT_TIMEOUT
    )
}
