//! xvsadm: ipvsadm's flags and layouts, talking to xvsd over its control
//! socket. `xvsadm realserver …` works locally, on a real server.

use anyhow::{bail, Context, Result};
use std::{io::Read, path::PathBuf, process::ExitCode};
use xvs::{
    control::{
        client::call,
        protocol::{Edit, RequestBody, ResponseBody},
        DEFAULT_SOCKET,
    },
    ipvsadm::{
        self,
        args::{Command, Invocation, ListWhat, RealServerAction},
        format, ListFormat, Resolver, ServiceTable, SystemResolver,
    },
    realserver,
};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let names = SystemResolver::new();
    let inv = match ipvsadm::args::parse_args(&args, &names) {
        Ok(inv) => inv,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(inv, &names) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(inv: Invocation, names: &dyn Resolver) -> Result<ExitCode> {
    let socket = inv
        .socket
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
    let edit = |edits: Vec<Edit>| -> Result<ExitCode> {
        call(&socket, RequestBody::Edit { edits })?;
        Ok(ExitCode::SUCCESS)
    };
    match inv.command {
        Command::List(req) => {
            print!("{}", list(&socket, req.what, &req.format, inv.json, names)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Save { numeric } => {
            print!("{}", format::rules(&table(&socket)?, numeric, names));
            Ok(ExitCode::SUCCESS)
        }
        Command::Restore => {
            let mut input = String::new();
            std::io::stdin().read_to_string(&mut input)?;
            let commands = ipvsadm::parse_restore(&input, names)?;
            edit(commands.into_iter().filter_map(edit_of).collect())
        }
        Command::RealServer { action, vips } => realserver_action(action, &vips, inv.json),
        Command::Vrrp => {
            let status = match call(&socket, RequestBody::Status)? {
                ResponseBody::Status { status } => status,
                other => bail!("unexpected reply {other:?}"),
            };
            if inv.json {
                println!("{}", serde_json::to_string_pretty(&status.vrrp)?);
            } else {
                print!("{}", format::vrrp(&status.vrrp, status.active));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Help => {
            print!("{}", ipvsadm::args::usage("xvsadm"));
            Ok(ExitCode::SUCCESS)
        }
        Command::Version => {
            println!("xvsadm {} (XDP Virtual Server)", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
        other => match edit_of(other) {
            Some(e) => edit(vec![e]),
            None => bail!("nothing to do"),
        },
    }
}

/// The control-protocol edit for an ipvsadm command, if it is one.
fn edit_of(command: Command) -> Option<Edit> {
    Some(match command {
        Command::AddService(service) => Edit::AddService { service },
        Command::EditService(service) => Edit::EditService { service },
        Command::DeleteService(id) => Edit::DeleteService { id },
        Command::AddServer(server) => Edit::AddServer { server },
        Command::EditServer(server) => Edit::EditServer { server },
        Command::DeleteServer {
            service,
            addr,
            port,
        } => Edit::DeleteServer {
            service,
            addr,
            port,
        },
        Command::Clear => Edit::Clear,
        Command::Zero(service) => Edit::Zero { service },
        Command::SetTimeouts(timeouts) => Edit::SetTimeouts { timeouts },
        _ => return None,
    })
}

fn table(socket: &std::path::Path) -> Result<ServiceTable> {
    match call(socket, RequestBody::List)? {
        ResponseBody::Table { table } => Ok(table),
        other => bail!("unexpected reply {other:?}"),
    }
}

fn list(
    socket: &std::path::Path,
    what: ListWhat,
    fmt: &ListFormat,
    json: bool,
    names: &dyn Resolver,
) -> Result<String> {
    Ok(match what {
        ListWhat::All if json => format::json(&format::sorted_table(&table(socket)?)),
        ListWhat::All => format::service_table(&table(socket)?, fmt, names),
        ListWhat::Service(id) => {
            let table = table(socket)?;
            let service = table
                .services
                .iter()
                .find(|s| (s.proto, s.addr, s.port) == (id.proto, id.vip, id.port))
                .context("No such service")?;
            if json {
                format::json(service)
            } else {
                format::single_service(service, fmt, names)
            }
        }
        ListWhat::Connections => match call(socket, RequestBody::Connections)? {
            ResponseBody::Connections { connections } if json => format::json(&connections),
            ResponseBody::Connections { connections } => {
                format::connections(&connections, fmt, names)
            }
            other => bail!("unexpected reply {other:?}"),
        },
        ListWhat::Timeouts => match call(socket, RequestBody::Timeouts)? {
            ResponseBody::Timeouts { timeouts } if json => format::json(&timeouts),
            ResponseBody::Timeouts { timeouts } => format::timeouts(&timeouts),
            other => bail!("unexpected reply {other:?}"),
        },
    })
}

fn realserver_action(
    action: RealServerAction,
    vips: &[std::net::IpAddr],
    json: bool,
) -> Result<ExitCode> {
    let report = match action {
        RealServerAction::Up => realserver::up(vips)?,
        RealServerAction::Down => realserver::down(vips)?,
        RealServerAction::Status => realserver::status(vips)?,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    Ok(if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}
