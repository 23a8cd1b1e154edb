//! ipvsadm's flags (`options_table`, ipvsadm.c:529-616), what each means,
//! and popt's syntax for them: bundled short flags (`-Ln`), attached values
//! (`-p360`, `-tVIP`), `--long=value`, and `-p`'s optional value.

use crate::model::Protocol;

use super::{invalid, ArgError};

/// ipvsadm's commands (`cmdnames`, ipvsadm.c:144), plus help and version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Cmd {
    Add,
    Edit,
    Del,
    Flush,
    List,
    AddDest,
    DelDest,
    EditDest,
    SetTimeout,
    Restore,
    Save,
    Zero,
    Help,
    Version,
}

impl Cmd {
    pub(super) fn name(self) -> &'static str {
        match self {
            Cmd::Add => "add-service",
            Cmd::Edit => "edit-service",
            Cmd::Del => "delete-service",
            Cmd::Flush => "flush",
            Cmd::List => "list",
            Cmd::AddDest => "add-server",
            Cmd::DelDest => "delete-server",
            Cmd::EditDest => "edit-server",
            Cmd::SetTimeout => "set",
            Cmd::Restore => "restore",
            Cmd::Save => "save",
            Cmd::Zero => "zero",
            Cmd::Help => "help",
            Cmd::Version => "version",
        }
    }
}

/// The ipvsadm options XVS implements, in the order of ipvsadm's `optnames`
/// (ipvsadm.c:233), which is the order its checks report them in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Opt {
    Numeric,
    Connection,
    Service,
    Scheduler,
    Persistent,
    Netmask,
    Server,
    Forward,
    Weight,
    Timeout,
    Stats,
    Rate,
    PersistentConn,
    NoSort,
    Exact,
    SchedFlags,
}

impl Opt {
    pub(super) const ALL: [Opt; 16] = [
        Opt::Numeric,
        Opt::Connection,
        Opt::Service,
        Opt::Scheduler,
        Opt::Persistent,
        Opt::Netmask,
        Opt::Server,
        Opt::Forward,
        Opt::Weight,
        Opt::Timeout,
        Opt::Stats,
        Opt::Rate,
        Opt::PersistentConn,
        Opt::NoSort,
        Opt::Exact,
        Opt::SchedFlags,
    ];

    pub(super) fn name(self) -> &'static str {
        match self {
            Opt::Numeric => "numeric",
            Opt::Connection => "connection",
            Opt::Service => "service-address",
            Opt::Scheduler => "scheduler",
            Opt::Persistent => "persistent",
            Opt::Netmask => "netmask",
            Opt::Server => "real-server",
            Opt::Forward => "forwarding-method",
            Opt::Weight => "weight",
            Opt::Timeout => "timeout",
            Opt::Stats => "stats",
            Opt::Rate => "rate",
            Opt::PersistentConn => "persistent-conn",
            Opt::NoSort => "nosort",
            Opt::Exact => "exact",
            Opt::SchedFlags => "sched-flags",
        }
    }
}

/// `-g`, `-m`, `-i`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Forward {
    Gatewaying,
    Masquerading,
    Ipip,
}

/// What a flag means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Meaning {
    Command(Cmd),
    Option(Opt),
    /// `-t`/`-u`: the service option, with its protocol.
    Service(Protocol),
    /// `-g`/`-m`/`-i`: the forwarding-method option.
    Forward(Forward),
    /// `--sort`: ipvsadm sorts anyway (ipvsadm.c:824).
    Sort,
    Json,
    Socket,
    /// An ipvsadm flag XVS does not implement: what it is.
    Unsupported(&'static str),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Takes {
    Nothing,
    Required,
    /// popt's `POPT_ARGFLAG_OPTIONAL`: the next argument is the value unless
    /// it starts with `-`.
    Optional,
}

struct Flag {
    long: &'static str,
    short: Option<char>,
    takes: Takes,
    meaning: Meaning,
}

const fn flag(long: &'static str, short: Option<char>, takes: Takes, meaning: Meaning) -> Flag {
    Flag {
        long,
        short,
        takes,
        meaning,
    }
}

/// A command flag (commands take no value).
const fn cmd(long: &'static str, short: Option<char>, command: Cmd) -> Flag {
    flag(long, short, Takes::Nothing, Meaning::Command(command))
}

const fn opt(long: &'static str, short: Option<char>, takes: Takes, option: Opt) -> Flag {
    flag(long, short, takes, Meaning::Option(option))
}

/// An ipvsadm flag for `what`, which XVS does not do.
const fn lacking(
    long: &'static str,
    short: Option<char>,
    takes: Takes,
    what: &'static str,
) -> Flag {
    flag(long, short, takes, Meaning::Unsupported(what))
}

const SYNC_DAEMON: &str = "the connection sync daemon";
const THRESHOLDS: &str = "a connection threshold";
const TUNNELS: &str = "tunneling";
const FWMARK: &str = "a firewall-mark service";

/// ipvsadm's `options_table` (ipvsadm.c:529-616) and xvsadm's two extras.
#[rustfmt::skip]
const FLAGS: &[Flag] = {
    use Takes::{Nothing as NoValue, Optional, Required};
    &[
        cmd("add-service",         Some('A'), Cmd::Add),
        cmd("edit-service",        Some('E'), Cmd::Edit),
        cmd("delete-service",      Some('D'), Cmd::Del),
        cmd("clear",               Some('C'), Cmd::Flush),
        cmd("list",                Some('L'), Cmd::List),
        cmd("list",                Some('l'), Cmd::List),
        cmd("zero",                Some('Z'), Cmd::Zero),
        cmd("add-server",          Some('a'), Cmd::AddDest),
        cmd("edit-server",         Some('e'), Cmd::EditDest),
        cmd("delete-server",       Some('d'), Cmd::DelDest),
        cmd("set",                 None,      Cmd::SetTimeout),
        cmd("help",                Some('h'), Cmd::Help),
        cmd("version",             Some('v'), Cmd::Version),
        cmd("restore",             Some('R'), Cmd::Restore),
        cmd("save",                Some('S'), Cmd::Save),
        lacking("start-daemon",    None,      Required, SYNC_DAEMON),
        lacking("stop-daemon",     None,      Required, SYNC_DAEMON),
        flag("tcp-service",        Some('t'), Required, Meaning::Service(Protocol::Tcp)),
        flag("udp-service",        Some('u'), Required, Meaning::Service(Protocol::Udp)),
        lacking("sctp-service",    None,      Required, "SCTP"),
        lacking("fwmark-service",  Some('f'), Required, FWMARK),
        opt("scheduler",           Some('s'), Required, Opt::Scheduler),
        opt("persistent",          Some('p'), Optional, Opt::Persistent),
        opt("netmask",             Some('M'), Required, Opt::Netmask),
        opt("real-server",         Some('r'), Required, Opt::Server),
        flag("masquerading",       Some('m'), NoValue,  Meaning::Forward(Forward::Masquerading)),
        flag("ipip",               Some('i'), NoValue,  Meaning::Forward(Forward::Ipip)),
        flag("gatewaying",         Some('g'), NoValue,  Meaning::Forward(Forward::Gatewaying)),
        opt("weight",              Some('w'), Required, Opt::Weight),
        lacking("u-threshold",     Some('x'), Required, THRESHOLDS),
        lacking("l-threshold",     Some('y'), Required, THRESHOLDS),
        opt("numeric",             Some('n'), NoValue,  Opt::Numeric),
        opt("connection",          Some('c'), NoValue,  Opt::Connection),
        lacking("mcast-interface", None,      Required, SYNC_DAEMON),
        lacking("syncid",          None,      Required, SYNC_DAEMON),
        opt("timeout",             None,      NoValue,  Opt::Timeout),
        lacking("daemon",          None,      NoValue,  SYNC_DAEMON),
        opt("stats",               None,      NoValue,  Opt::Stats),
        opt("rate",                None,      NoValue,  Opt::Rate),
        lacking("thresholds",      None,      NoValue,  THRESHOLDS),
        opt("persistent-conn",     None,      NoValue,  Opt::PersistentConn),
        opt("nosort",              None,      NoValue,  Opt::NoSort),
        flag("sort",               None,      NoValue,  Meaning::Sort),
        opt("exact",               Some('X'), NoValue,  Opt::Exact),
        lacking("ipv6",            Some('6'), NoValue,  FWMARK),
        lacking("ops",             Some('o'), NoValue,  "one-packet scheduling"),
        lacking("pe",              None,      Required, "a persistence engine"),
        opt("sched-flags",         Some('b'), Required, Opt::SchedFlags),
        lacking("mcast-group",     None,      Required, SYNC_DAEMON),
        lacking("mcast-port",      None,      Required, SYNC_DAEMON),
        lacking("mcast-ttl",       None,      Required, SYNC_DAEMON),
        lacking("sync-maxlen",     None,      Required, SYNC_DAEMON),
        lacking("tun-info",        None,      NoValue,  TUNNELS),
        lacking("tun-type",        None,      Required, TUNNELS),
        lacking("tun-port",        None,      Required, TUNNELS),
        lacking("tun-nocsum",      None,      NoValue,  TUNNELS),
        lacking("tun-csum",        None,      NoValue,  TUNNELS),
        lacking("tun-remcsum",     None,      NoValue,  TUNNELS),
        flag("json",               None,      NoValue,  Meaning::Json),
        flag("socket",             None,      Required, Meaning::Socket),
    ]
};

// popt's syntax: turning argv into flags with values.

/// One flag as written, with its value.
pub(super) struct Given {
    pub(super) meaning: Meaning,
    pub(super) spelled: String,
    pub(super) value: Option<String>,
}

/// argv split into flags and leftover (positional) arguments.
pub(super) struct Tokens {
    pub(super) given: Vec<Given>,
    pub(super) positional: Vec<String>,
}

pub(super) fn tokenize(args: &[String]) -> Result<Tokens, ArgError> {
    let mut tokens = Tokens {
        given: Vec::new(),
        positional: Vec::new(),
    };
    let mut rest = args.iter().peekable();
    while let Some(arg) = rest.next() {
        if arg == "--" {
            tokens.positional.extend(rest.by_ref().cloned());
        } else if let Some(long) = arg.strip_prefix("--") {
            tokens.given.push(long_flag(arg, long, &mut rest)?);
        } else if let Some(shorts) = arg.strip_prefix('-') {
            short_flags(arg, shorts, &mut rest, &mut tokens.given)?;
        } else {
            tokens.positional.push(arg.clone());
        }
    }
    Ok(tokens)
}

type Args<'a> = std::iter::Peekable<std::slice::Iter<'a, String>>;

/// `--name`, `--name=value` or `--name value`.
fn long_flag(spelled: &str, long: &str, rest: &mut Args) -> Result<Given, ArgError> {
    let (name, inline) = match long.split_once('=') {
        Some((name, value)) => (name, Some(value.to_string())),
        None => (long, None),
    };
    let flag = FLAGS
        .iter()
        .find(|f| f.long == name)
        .ok_or_else(|| invalid(format!("{spelled}: unknown option")))?;
    let spelled = format!("--{name}");
    let value = match (flag.takes, inline) {
        (Takes::Nothing, Some(_)) => {
            return Err(invalid(format!(
                "{spelled}: option does not take an argument"
            )))
        }
        (Takes::Nothing, None) => None,
        (_, Some(v)) => Some(v),
        (kind, None) => next_value(&spelled, kind, rest)?,
    };
    Ok(Given {
        meaning: flag.meaning,
        spelled,
        value,
    })
}

/// `-Ln`, `-t VIP`, `-tVIP`, `-p`, `-p360`, `-p 360`.
fn short_flags(
    spelled: &str,
    shorts: &str,
    rest: &mut Args,
    given: &mut Vec<Given>,
) -> Result<(), ArgError> {
    if shorts.is_empty() {
        return Err(invalid(format!("{spelled}: unknown option")));
    }
    for (i, c) in shorts.char_indices() {
        let flag = FLAGS
            .iter()
            .find(|f| f.short == Some(c))
            .ok_or_else(|| invalid(format!("-{c}: unknown option")))?;
        let spelled = format!("-{c}");
        if flag.takes == Takes::Nothing {
            given.push(Given {
                meaning: flag.meaning,
                spelled,
                value: None,
            });
            continue;
        }
        // The rest of the bundle is the value (popt skips one '=').
        let attached = &shorts[i + c.len_utf8()..];
        let attached = attached.strip_prefix('=').unwrap_or(attached);
        let value = if attached.is_empty() {
            next_value(&spelled, flag.takes, rest)?
        } else {
            Some(attached.to_string())
        };
        given.push(Given {
            meaning: flag.meaning,
            spelled,
            value,
        });
        return Ok(());
    }
    Ok(())
}

/// The value from the next argument (popt.c: an optional value is not
/// taken from an argument that starts with '-').
fn next_value(spelled: &str, kind: Takes, rest: &mut Args) -> Result<Option<String>, ArgError> {
    match (kind, rest.peek()) {
        (Takes::Optional, Some(next)) if next.starts_with('-') => Ok(None),
        (Takes::Optional, None) => Ok(None),
        (_, Some(_)) => Ok(rest.next().cloned()),
        (_, None) => Err(invalid(format!("{spelled}: missing argument"))),
    }
}
