//! Keywords accepted in place of their canonical name, with a warning.

use super::Block;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AliasReason {
    OldName,
    Deprecated,
    Misspelling,
}

/// A keyword accepted in place of its canonical name, with a warning.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Alias {
    pub blocks: &'static [Block],
    pub alias: &'static str,
    pub canonical: &'static str,
    pub reason: AliasReason,
}

impl Alias {
    pub fn message(&self) -> String {
        let (alias, canonical) = (self.alias, self.canonical);
        match self.reason {
            AliasReason::OldName => {
                format!("'{alias}' is the old name of '{canonical}'; accepted as an alias")
            }
            AliasReason::Deprecated => {
                format!("'{alias}' is deprecated in favour of '{canonical}'; accepted as an alias")
            }
            AliasReason::Misspelling => {
                format!("'{alias}' is a misspelling of '{canonical}'; accepted as an alias")
            }
        }
    }
}

/// Checkers whose blocks take the common options, where `nb_get_retry` may
/// appear.
const RETRY_CHECKERS: &[Block] = &[
    Block::TcpCheck,
    Block::HttpGet,
    Block::SslGet,
    Block::MiscCheck,
    Block::UdpCheck,
    Block::PingCheck,
    Block::DnsCheck,
    Block::SmtpCheck,
    Block::SmtpHost,
];

pub(crate) const ALIASES: &[Alias] = &[
    Alias {
        blocks: &[Block::VirtualServer],
        alias: "lb_algo",
        canonical: "lvs_sched",
        reason: AliasReason::OldName,
    },
    Alias {
        blocks: &[Block::VirtualServer],
        alias: "lb_kind",
        canonical: "lvs_method",
        reason: AliasReason::OldName,
    },
    Alias {
        blocks: RETRY_CHECKERS,
        alias: "nb_get_retry",
        canonical: "retry",
        reason: AliasReason::Deprecated,
    },
    Alias {
        blocks: &[Block::VrrpInstance],
        alias: "lvs_sync_daemon_inteface",
        canonical: "lvs_sync_daemon_interface",
        reason: AliasReason::Misspelling,
    },
    Alias {
        blocks: &[Block::VrrpInstance],
        alias: "vmac_garp_intvl",
        canonical: "garp_extra_if",
        reason: AliasReason::Deprecated,
    },
    Alias {
        blocks: &[Block::Top],
        alias: "vrrp_track_file",
        canonical: "track_file",
        reason: AliasReason::Deprecated,
    },
    Alias {
        blocks: &[Block::GlobalDefs],
        alias: "lvs_flush_onstop",
        canonical: "lvs_flush_on_stop",
        reason: AliasReason::Deprecated,
    },
    Alias {
        blocks: &[Block::GlobalDefs],
        alias: "lvs_process_name",
        canonical: "checker_process_name",
        reason: AliasReason::Deprecated,
    },
    Alias {
        blocks: &[Block::GlobalDefs],
        alias: "vrrp_vmac_garp_intvl",
        canonical: "vrrp_garp_extra_if",
        reason: AliasReason::Deprecated,
    },
    Alias {
        blocks: &[Block::GlobalDefs],
        alias: "enable_snmp_keepalived",
        canonical: "enable_snmp_vrrp",
        reason: AliasReason::Deprecated,
    },
    Alias {
        blocks: &[Block::GlobalDefs],
        alias: "vrrp_rlimit_rtime",
        canonical: "vrrp_rlimit_rttime",
        reason: AliasReason::Deprecated,
    },
    Alias {
        blocks: &[Block::GlobalDefs],
        alias: "checker_rlimit_rtime",
        canonical: "checker_rlimit_rttime",
        reason: AliasReason::Deprecated,
    },
    Alias {
        blocks: &[Block::GlobalDefs],
        alias: "bfd_rlimit_rtime",
        canonical: "bfd_rlimit_rttime",
        reason: AliasReason::Deprecated,
    },
];
