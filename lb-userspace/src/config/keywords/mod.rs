//! Which keywords each block accepts, which keepalived keywords XVS does not
//! implement yet, and the aliases accepted with a warning.
//!
//! Keyword names are keepalived 2.2.7's (lib/parser.c install_keyword calls
//! in check_parser.c, vrrp_parser.c, global_parser.c, check_*.c).
//!
//! Aliases (accepted with a warning that names the canonical keyword):
//!
//! | block | alias | canonical | why |
//! |---|---|---|---|
//! | virtual_server | `lb_algo` | `lvs_sched` | old name (the man page documents only lvs_sched) |
//! | virtual_server | `lb_kind` | `lvs_method` | old name |
//! | every checker but BFD/FILE | `nb_get_retry` | `retry` | deprecated (2.2.7 still takes it in HTTP_GET/SSL_GET only) |
//! | vrrp_instance | `lvs_sync_daemon_inteface` | `lvs_sync_daemon_interface` | misspelling from old docs; itself deprecated for global `lvs_sync_daemon` |
//! | vrrp_instance | `vmac_garp_intvl` | `garp_extra_if` | deprecated |
//! | top level | `vrrp_track_file` | `track_file` | deprecated synonym |
//! | global_defs | `lvs_flush_onstop` | `lvs_flush_on_stop` | deprecated |
//! | global_defs | `lvs_process_name` | `checker_process_name` | deprecated |
//! | global_defs | `vrrp_vmac_garp_intvl` | `vrrp_garp_extra_if` | deprecated |
//! | global_defs | `enable_snmp_keepalived` | `enable_snmp_vrrp` | deprecated |
//! | global_defs | `{vrrp,checker,bfd}_rlimit_rtime` | `…_rlimit_rttime` | deprecated |

use super::{diag::Diags, suggest, tree::Stmt};

/// The kinds of block that hold keywords.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Block {
    Top,
    GlobalDefs,
    VrrpScript,
    VrrpSyncGroup,
    VrrpInstance,
    Authentication,
    VirtualServer,
    RealServer,
    TcpCheck,
    HttpGet,
    SslGet,
    MiscCheck,
    UdpCheck,
    PingCheck,
    DnsCheck,
    SmtpCheck,
    SmtpHost,
    BfdCheck,
    FileCheck,
    Url,
    TrackFile,
    Ssl,
}

impl Block {
    /// How diagnostics name the block.
    pub fn describe(self) -> String {
        let name = match self {
            Block::Top => return "at top level".into(),
            Block::GlobalDefs => "global_defs",
            Block::VrrpScript => "vrrp_script",
            Block::VrrpSyncGroup => "vrrp_sync_group",
            Block::VrrpInstance => "vrrp_instance",
            Block::Authentication => "authentication",
            Block::VirtualServer => "virtual_server",
            Block::RealServer => "real_server",
            Block::TcpCheck => "TCP_CHECK",
            Block::HttpGet => "HTTP_GET",
            Block::SslGet => "SSL_GET",
            Block::MiscCheck => "MISC_CHECK",
            Block::UdpCheck => "UDP_CHECK",
            Block::PingCheck => "PING_CHECK",
            Block::DnsCheck => "DNS_CHECK",
            Block::SmtpCheck => "SMTP_CHECK",
            Block::SmtpHost => "SMTP_CHECK host",
            Block::BfdCheck => "BFD_CHECK",
            Block::FileCheck => "FILE_CHECK",
            Block::Url => "url",
            Block::TrackFile => "track_file",
            Block::Ssl => "SSL",
        };
        format!("in {name} block")
    }

    /// Keywords XVS parses into its model.
    pub fn implemented(self) -> Vec<&'static str> {
        let lists: &[&[&'static str]] = match self {
            Block::Top => &[TOP],
            Block::GlobalDefs => &[GLOBAL_DEFS],
            Block::VrrpScript => &[VRRP_SCRIPT],
            Block::VrrpSyncGroup => &[VRRP_SYNC_GROUP],
            Block::VrrpInstance => &[VRRP_INSTANCE],
            Block::Authentication => &[AUTHENTICATION],
            Block::VirtualServer => &[VIRTUAL_SERVER],
            Block::RealServer => &[REAL_SERVER, CHECKERS],
            Block::TcpCheck | Block::PingCheck | Block::SmtpHost => {
                &[CHECK_CONNECTION, CHECK_COMMON]
            }
            Block::HttpGet | Block::SslGet => &[CHECK_CONNECTION, CHECK_COMMON, HTTP_GET],
            Block::MiscCheck => &[CHECK_COMMON, MISC_CHECK],
            Block::UdpCheck => &[CHECK_CONNECTION, CHECK_COMMON, UDP_CHECK],
            Block::DnsCheck => &[CHECK_CONNECTION, CHECK_COMMON, DNS_CHECK],
            Block::SmtpCheck => &[CHECK_CONNECTION, CHECK_COMMON, SMTP_CHECK],
            Block::BfdCheck => &[BFD_CHECK],
            Block::FileCheck => &[FILE_CHECK],
            Block::Url => &[URL],
            Block::TrackFile => &[TRACK_FILE],
            Block::Ssl => &[SSL],
        };
        lists.iter().flat_map(|l| l.iter().copied()).collect()
    }

    /// Keywords keepalived accepts here that XVS does not implement yet.
    pub fn not_implemented(self) -> &'static [&'static str] {
        match self {
            Block::Top => TOP_NOT_IMPLEMENTED,
            Block::GlobalDefs => GLOBAL_DEFS_NOT_IMPLEMENTED,
            Block::VrrpSyncGroup => VRRP_SYNC_GROUP_NOT_IMPLEMENTED,
            Block::VrrpInstance => VRRP_INSTANCE_NOT_IMPLEMENTED,
            Block::VirtualServer => VIRTUAL_SERVER_NOT_IMPLEMENTED,
            Block::RealServer => &["snmp_name"],
            _ => &[],
        }
    }
}
mod aliases;
mod lists;
#[cfg(test)]
mod tests;

pub(crate) use aliases::ALIASES;
pub(crate) use lists::CHECKERS;
use lists::*;

/// The canonical keyword of a statement if XVS implements it here;
/// otherwise reports why not (alias warnings are reported in any case).
pub(crate) fn keyword(block: Block, stmt: &Stmt, diags: &mut Diags) -> Option<&'static str> {
    let written = stmt.keyword();
    let alias = ALIASES
        .iter()
        .find(|a| a.alias == written && a.blocks.contains(&block));
    if let Some(alias) = alias {
        diags.warning(stmt.pos(), alias.message());
    }
    let word = alias.map_or(written, |a| a.canonical);
    if let Some(found) = block.implemented().into_iter().find(|k| *k == word) {
        return Some(found);
    }
    if block.not_implemented().contains(&word) {
        diags.keyword_not_implemented(stmt.pos(), word);
        return None;
    }
    diags.error(stmt.pos(), unknown_message(block, written));
    None
}

fn unknown_message(block: Block, word: &str) -> String {
    let aliases = ALIASES
        .iter()
        .filter(|a| a.blocks.contains(&block))
        .map(|a| a.alias);
    let candidates = block
        .implemented()
        .into_iter()
        .chain(block.not_implemented().iter().copied())
        .chain(aliases);
    let place = block.describe();
    match suggest::closest(word, candidates) {
        Some(s) => format!("unknown keyword '{word}' {place}; did you mean '{s}'?"),
        None => format!("unknown keyword '{word}' {place}"),
    }
}
