//! xvsd: the XVS daemon. Reads an unmodified keepalived.conf and carries its
//! virtual servers on the XDP data plane. Flags follow keepalived's where
//! they overlap (-f, -t, -D, -l, -i).

use anyhow::{bail, Context, Result};
use std::{path::PathBuf, process::ExitCode};
use xvs::{
    config::{self, LoadOptions},
    control::DEFAULT_SOCKET,
    daemon::{self, Options},
    dataplane::AttachMode,
};

const USAGE: &str = "\
usage: xvsd [options]

  -f, --use-file FILE       keepalived configuration (default /etc/keepalived/keepalived.conf)
  -C, --check               no VRRP: forward from the start and leave the VIPs
                            alone (keepalived -C; another daemon runs VRRP)
  -t, --config-test         check the configuration, print every problem, and exit
                            (0: clean or warnings only, 1: errors)
      --lenient             keywords XVS does not implement yet are warnings, not errors
  -i, --config-id ID        the id `@ID` lines match (default: the host name's first label)
  -D, --log-detail          detailed (debug) logging
  -l, --log-console         log to the console even under systemd
      --interface IFACE     attach here (default: the vrrp_instance's interface)
      --xdp-mode MODE       native, skb or auto (default auto: native, else skb)
      --backend KIND        data plane: xdp, ipvs (the kernel's IPVS) or auto
                            (XDP, else IPVS); default xdp
      --control-socket PATH control socket (default /run/xvs/xvsd.sock)
      --metrics-listen ADDR serve Prometheus /metrics on ADDR (e.g. 127.0.0.1:9910; off by default)
      --instance NAME       name of this daemon (default: default)
      --conn-table-size N   connection-table entries (default 1048576)
      --keep-dataplane-on-exit
                            leave the data plane running when stopping
      --expire-nodest-conn  reschedule established flows of reals that health
                            checks take out (IPVS's expire_nodest_conn); by
                            default they finish on their real
  -v, --version
  -h, --help";

struct Cli {
    opts: Options,
    config_test: bool,
    log_detail: bool,
    log_console: bool,
}

fn parse(args: &[String]) -> Result<Option<Cli>> {
    let mut cli = Cli {
        opts: Options {
            config_file: PathBuf::from("/etc/keepalived/keepalived.conf"),
            load: LoadOptions::default(),
            interface: None,
            xdp_mode: AttachMode::Auto,
            backend: daemon::backend::Backend::Xdp,
            control_socket: PathBuf::from(DEFAULT_SOCKET),
            metrics_listen: None,
            instance: "default".to_string(),
            keep_dataplane_on_exit: false,
            expire_nodest_conn: false,
            conn_table_size: lb_common::DEFAULT_CONN_TABLE,
            vrrp: true,
        },
        config_test: false,
        log_detail: false,
        log_console: false,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = |name: &str| -> Result<String> {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .with_context(|| format!("{name} needs a value"))
        };
        let o = &mut cli.opts;
        match flag {
            "-f" | "--use-file" => o.config_file = PathBuf::from(value(flag)?),
            "-t" | "--config-test" => cli.config_test = true,
            "-C" | "--check" => o.vrrp = false,
            "--lenient" => o.load.lenient = true,
            "-i" | "--config-id" => o.load.config_id = Some(value(flag)?),
            "-D" | "--log-detail" => cli.log_detail = true,
            "-l" | "--log-console" => cli.log_console = true,
            "--interface" => o.interface = Some(value(flag)?),
            "--xdp-mode" => o.xdp_mode = value(flag)?.parse()?,
            "--backend" => o.backend = value(flag)?.parse()?,
            "--control-socket" => o.control_socket = PathBuf::from(value(flag)?),
            "--metrics-listen" => {
                let v = value(flag)?;
                o.metrics_listen = Some(
                    v.parse()
                        .with_context(|| format!("bad --metrics-listen address {v:?}"))?,
                );
            }
            "--instance" => o.instance = value(flag)?,
            "--conn-table-size" => {
                let v = value(flag)?;
                o.conn_table_size = v
                    .parse()
                    .with_context(|| format!("bad --conn-table-size {v:?}"))?;
            }
            "--keep-dataplane-on-exit" => o.keep_dataplane_on_exit = true,
            "--expire-nodest-conn" => o.expire_nodest_conn = true,
            "-v" | "--version" => {
                println!("xvsd {}", env!("CARGO_PKG_VERSION"));
                return Ok(None);
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            other => bail!("unknown option {other:?}\n{USAGE}"),
        }
    }
    Ok(Some(cli))
}

/// `-t`: every problem on its own line, as FILE:LINE:COL: severity: message.
fn config_test(opts: &Options) -> ExitCode {
    let (_, diags) = config::load(&opts.config_file, &opts.load);
    for d in &diags {
        eprintln!("{d}");
    }
    if config::has_errors(&diags) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cli = match parse(&args) {
        Ok(Some(cli)) => cli,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xvsd: {e:#}");
            return ExitCode::from(2);
        }
    };
    if cli.config_test {
        return config_test(&cli.opts);
    }
    daemon::logging::init(cli.log_console, cli.log_detail);
    match daemon::run(cli.opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::from(1)
        }
    }
}
