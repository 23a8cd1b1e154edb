//! Health checker blocks inside `real_server { }`.

use std::{net::IpAddr, time::Duration};

use super::ScriptUser;
use crate::config::diag::Pos;

/// One checker block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checker {
    pub kind: CheckerKind,
    /// Options every checker (but BFD_CHECK and FILE_CHECK) takes; the
    /// connection ones are only valid where keepalived takes them.
    pub common: CheckerCommon,
    pub pos: Pos,
}

impl Checker {
    /// The keyword that opened the block.
    pub fn name(&self) -> &'static str {
        self.kind.name()
    }
}

/// Options as written; `config::resolve` applies inheritance and defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckerCommon {
    /// Default: the real server's address.
    pub connect_ip: Option<IpAddr>,
    /// Default: the real server's port.
    pub connect_port: Option<u16>,
    pub bindto: Option<IpAddr>,
    pub bind_port: Option<u16>,
    pub bind_if: Option<String>,
    pub connect_timeout: Option<Duration>,
    pub fwmark: Option<u32>,
    pub retry: Option<u32>,
    pub delay_before_retry: Option<Duration>,
    pub warmup: Option<Duration>,
    pub delay_loop: Option<Duration>,
    pub alpha: Option<bool>,
    pub log_all_failures: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckerKind {
    Tcp,
    Http(HttpCheck),
    Ssl(HttpCheck),
    Misc(MiscCheck),
    Udp(UdpCheck),
    Ping,
    Dns(DnsCheck),
    Smtp(SmtpCheck),
    Bfd(BfdCheck),
    File(FileCheck),
}

impl CheckerKind {
    pub fn name(&self) -> &'static str {
        match self {
            CheckerKind::Tcp => "TCP_CHECK",
            CheckerKind::Http(_) => "HTTP_GET",
            CheckerKind::Ssl(_) => "SSL_GET",
            CheckerKind::Misc(_) => "MISC_CHECK",
            CheckerKind::Udp(_) => "UDP_CHECK",
            CheckerKind::Ping => "PING_CHECK",
            CheckerKind::Dns(_) => "DNS_CHECK",
            CheckerKind::Smtp(_) => "SMTP_CHECK",
            CheckerKind::Bfd(_) => "BFD_CHECK",
            CheckerKind::File(_) => "FILE_CHECK",
        }
    }

    /// keepalived's retry default for this checker (check_api.c, check_misc.c,
    /// check_dns.c).
    pub fn default_retry(&self) -> u32 {
        match self {
            CheckerKind::Misc(_) => 0,
            CheckerKind::Dns(_) => 3,
            _ => 1,
        }
    }

    /// keepalived's delay_before_retry default; None means "the delay_loop"
    /// (DNS_CHECK).
    pub fn default_delay_before_retry(&self) -> Option<Duration> {
        match self {
            CheckerKind::Http(_) | CheckerKind::Ssl(_) => Some(Duration::from_secs(3)),
            CheckerKind::Dns(_) => None,
            _ => Some(Duration::from_secs(1)),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum HttpProtocol {
    #[default]
    V1_0,
    /// 1.0 with "Connection: close".
    V1_0C,
    V1_1,
}

/// HTTP_GET / SSL_GET.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpCheck {
    pub urls: Vec<Url>,
    pub virtualhost: Option<String>,
    /// Default 1.0.
    pub http_protocol: HttpProtocol,
    pub enable_sni: bool,
    pub fast_recovery: bool,
}

/// `url { }`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    pub path: Option<String>,
    /// MD5 digest of the page, 32 hex digits.
    pub digest: Option<String>,
    /// Inclusive ranges; empty means keepalived's default 200-299.
    pub status_codes: Vec<(u16, u16)>,
    pub virtualhost: Option<String>,
    pub regex: Option<String>,
    pub regex_no_match: bool,
    pub regex_options: Vec<String>,
    pub regex_stack: Option<(u64, u64)>,
    pub regex_min_offset: Option<u64>,
    pub regex_max_offset: Option<u64>,
    pub pos: Pos,
}

impl Url {
    /// The status codes that pass: as written, else 200-299.
    pub fn effective_status_codes(&self) -> Vec<(u16, u16)> {
        if self.status_codes.is_empty() {
            vec![(200, 299)]
        } else {
            self.status_codes.clone()
        }
    }
}

/// MISC_CHECK.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MiscCheck {
    pub misc_path: Option<String>,
    /// Default: the virtual server's delay_loop.
    pub misc_timeout: Option<Duration>,
    pub misc_dynamic: bool,
    pub user: Option<ScriptUser>,
}

/// UDP_CHECK.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UdpCheck {
    /// Bytes to send; random if none.
    pub payload: Option<Vec<u8>>,
    pub require_reply: bool,
    /// Expected reply bytes, and a mask of the bits that must match
    /// (X/x in the hex string are "don't care" nibbles).
    pub reply: Option<(Vec<u8>, Vec<u8>)>,
    /// Default 0.
    pub min_reply_length: u32,
    /// Default 255.
    pub max_reply_length: u32,
}

impl Default for UdpCheck {
    fn default() -> UdpCheck {
        UdpCheck {
            payload: None,
            require_reply: false,
            reply: None,
            min_reply_length: 0,
            max_reply_length: 255,
        }
    }
}

/// DNS_CHECK (parsed; XVS refuses it for now).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsCheck {
    /// Default SOA.
    pub query_type: String,
    /// Default ".".
    pub name: String,
}

impl Default for DnsCheck {
    fn default() -> DnsCheck {
        DnsCheck {
            query_type: "SOA".into(),
            name: ".".into(),
        }
    }
}

/// SMTP_CHECK (parsed; XVS refuses it for now).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SmtpCheck {
    pub helo_name: Option<String>,
    /// Deprecated `host { }` sub-blocks, each a connection of its own.
    pub hosts: Vec<CheckerCommon>,
}

/// BFD_CHECK: the name of a bfd_instance.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BfdCheck {
    pub name: Option<String>,
}

/// FILE_CHECK: a track_file and its weight.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileCheck {
    pub track_file: Option<(String, Pos)>,
    pub weight: Option<i64>,
    pub reverse: bool,
}
