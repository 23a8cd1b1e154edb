//! Logging through `tracing`: to journald when running under systemd (its
//! JOURNAL_STREAM is set) unless `-l/--log-console` asks for the console;
//! `-D/--log-detail` adds debug detail, as keepalived's flags do.

use tracing_subscriber::{filter::LevelFilter, prelude::*, EnvFilter};

pub fn init(console: bool, detail: bool) {
    let level = if detail {
        LevelFilter::DEBUG
    } else {
        LevelFilter::INFO
    };
    let filter = EnvFilter::builder()
        .with_default_directive(level.into())
        .with_env_var("XVS_LOG")
        .from_env_lossy();
    let journald = (!console && std::env::var_os("JOURNAL_STREAM").is_some())
        .then(tracing_journald::layer)
        .and_then(Result::ok);
    let registry = tracing_subscriber::registry().with(filter);
    match journald {
        Some(layer) => registry
            .with(layer.with_syslog_identifier("xvsd".into()))
            .init(),
        None => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
            )
            .init(),
    }
    // The data plane's aya-log records go through `log`.
    let _ = tracing_log_bridge();
}

fn tracing_log_bridge() -> Result<(), log::SetLoggerError> {
    struct Bridge;
    impl log::Log for Bridge {
        fn enabled(&self, _: &log::Metadata) -> bool {
            true
        }
        fn log(&self, record: &log::Record) {
            tracing::debug!(target: "xvs::dataplane", "{}", record.args());
        }
        fn flush(&self) {}
    }
    log::set_logger(&Bridge).map(|()| log::set_max_level(log::LevelFilter::Debug))
}
