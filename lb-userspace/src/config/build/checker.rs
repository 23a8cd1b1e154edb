//! Checker blocks (TCP_CHECK, HTTP_GET, ...) inside a real_server.

use super::{
    args::{self, Seen},
    unhandled,
};
use crate::config::{
    diag::Diags,
    keywords::{self, Block},
    model::{
        BfdCheck, Checker, CheckerCommon, CheckerKind, DnsCheck, FileCheck, HttpCheck,
        HttpProtocol, MiscCheck, SmtpCheck, UdpCheck, Url,
    },
    tree::Stmt,
    values,
};

const DNS_TYPES: &[&str] = &[
    "A", "NS", "CNAME", "SOA", "MX", "TXT", "AAAA", "RRSIG", "DNSKEY",
];

pub(crate) fn checker(name: &str, stmt: &Stmt, d: &mut Diags) -> Option<Checker> {
    args::at_most(stmt, d, 0);
    let (block_kind, mut kind) = match name {
        "TCP_CHECK" => (Block::TcpCheck, CheckerKind::Tcp),
        "HTTP_GET" => (Block::HttpGet, CheckerKind::Http(HttpCheck::default())),
        "SSL_GET" => (Block::SslGet, CheckerKind::Ssl(HttpCheck::default())),
        "MISC_CHECK" => (Block::MiscCheck, CheckerKind::Misc(MiscCheck::default())),
        "UDP_CHECK" => (Block::UdpCheck, CheckerKind::Udp(UdpCheck::default())),
        "PING_CHECK" => (Block::PingCheck, CheckerKind::Ping),
        "DNS_CHECK" => (Block::DnsCheck, CheckerKind::Dns(DnsCheck::default())),
        "SMTP_CHECK" => (Block::SmtpCheck, CheckerKind::Smtp(SmtpCheck::default())),
        "BFD_CHECK" => (Block::BfdCheck, CheckerKind::Bfd(BfdCheck::default())),
        _ => (Block::FileCheck, CheckerKind::File(FileCheck::default())),
    };
    let block = args::block(stmt, d)?;
    let mut common = CheckerCommon::default();
    let mut seen = Seen::default();
    for s in &block.stmts {
        let Some(kw) = keywords::keyword(block_kind, s, d) else {
            continue;
        };
        seen.note(kw, s, d);
        if !common_keyword(kw, s, &mut common, d) {
            specific_keyword(kw, s, &mut kind, d);
        }
    }
    Some(Checker {
        kind,
        common,
        pos: stmt.pos().clone(),
    })
}

/// The options shared by checkers; false if `kw` is not one of them.
fn common_keyword(kw: &str, s: &Stmt, c: &mut CheckerCommon, d: &mut Diags) -> bool {
    use values::*;
    match kw {
        "connect_ip" => c.connect_ip = args::value(s, d, ip),
        "connect_port" => c.connect_port = args::value(s, d, port),
        "bindto" => c.bindto = args::value(s, d, ip),
        "bind_port" => c.bind_port = args::value(s, d, port),
        "bind_if" => c.bind_if = args::text(s, d),
        "connect_timeout" => c.connect_timeout = args::value(s, d, positive_timer),
        "fwmark" => c.fwmark = args::value(s, d, |t| u32_in(t, 0, u32::MAX)),
        "retry" => c.retry = args::value(s, d, |t| u32_in(t, 0, u32::MAX)),
        "delay_before_retry" => c.delay_before_retry = args::value(s, d, timer),
        "warmup" => c.warmup = args::value(s, d, timer),
        "delay_loop" => c.delay_loop = args::value(s, d, positive_timer),
        "alpha" => c.alpha = args::optional_bool(s, d),
        "log_all_failures" => c.log_all_failures = args::optional_bool(s, d),
        _ => return false,
    }
    true
}

fn specific_keyword(kw: &str, s: &Stmt, kind: &mut CheckerKind, d: &mut Diags) {
    match kind {
        CheckerKind::Http(h) | CheckerKind::Ssl(h) => http_keyword(kw, s, h, d),
        CheckerKind::Misc(m) => misc_keyword(kw, s, m, d),
        CheckerKind::Udp(u) => udp_keyword(kw, s, u, d),
        CheckerKind::Dns(dns) => match kw {
            "type" => {
                dns.query_type = args::value(s, d, dns_type).unwrap_or(dns.query_type.clone())
            }
            "name" => dns.name = args::text(s, d).unwrap_or(dns.name.clone()),
            other => unhandled(other, s, d),
        },
        CheckerKind::Smtp(smtp) => match kw {
            "helo_name" => smtp.helo_name = args::text(s, d),
            "host" => smtp.hosts.extend(smtp_host(s, d)),
            other => unhandled(other, s, d),
        },
        CheckerKind::Bfd(b) => match kw {
            "name" => b.name = args::text(s, d),
            other => unhandled(other, s, d),
        },
        CheckerKind::File(f) => file_keyword(kw, s, f, d),
        CheckerKind::Tcp | CheckerKind::Ping => unhandled(kw, s, d),
    }
}

fn http_keyword(kw: &str, s: &Stmt, h: &mut HttpCheck, d: &mut Diags) {
    match kw {
        "virtualhost" => h.virtualhost = args::text(s, d),
        "http_protocol" => {
            h.http_protocol = args::value(s, d, http_protocol).unwrap_or(h.http_protocol)
        }
        "enable_sni" => h.enable_sni = args::flag(s, d),
        "fast_recovery" => h.fast_recovery = args::optional_bool(s, d).unwrap_or(h.fast_recovery),
        "url" => h.urls.extend(url(s, d)),
        other => unhandled(other, s, d),
    }
}

fn http_protocol(t: &str) -> Result<HttpProtocol, String> {
    match t {
        "1.0" => Ok(HttpProtocol::V1_0),
        "1.0C" | "1.0c" => Ok(HttpProtocol::V1_0C),
        "1.1" => Ok(HttpProtocol::V1_1),
        _ => Err(format!(
            "unknown http_protocol '{t}'; expected 1.0, 1.0C or 1.1"
        )),
    }
}

fn url(stmt: &Stmt, d: &mut Diags) -> Option<Url> {
    args::at_most(stmt, d, 0);
    let block = args::block(stmt, d)?;
    let mut u = Url {
        path: None,
        digest: None,
        status_codes: Vec::new(),
        virtualhost: None,
        regex: None,
        regex_no_match: false,
        regex_options: Vec::new(),
        regex_stack: None,
        regex_min_offset: None,
        regex_max_offset: None,
        pos: stmt.pos().clone(),
    };
    let mut seen = Seen::default();
    for s in &block.stmts {
        let Some(kw) = keywords::keyword(Block::Url, s, d) else {
            continue;
        };
        seen.note(kw, s, d);
        url_keyword(kw, s, &mut u, d);
    }
    Some(u)
}

fn url_keyword(kw: &str, s: &Stmt, u: &mut Url, d: &mut Diags) {
    let offset = |t: &str| values::uint(t, 0, u64::MAX);
    match kw {
        "path" => u.path = args::text(s, d),
        "digest" => u.digest = args::value(s, d, digest),
        "status_code" => u.status_codes.extend(status_codes(s, d)),
        "virtualhost" => u.virtualhost = args::text(s, d),
        "regex" => u.regex = args::text(s, d),
        "regex_no_match" => u.regex_no_match = args::flag(s, d),
        "regex_options" => {
            args::no_block(s, d);
            u.regex_options
                .extend(s.args().iter().map(|t| t.text.clone()));
        }
        "regex_stack" => {
            args::no_block(s, d);
            args::at_most(s, d, 2);
            let start = args::arg(s, d, 0, "a start and a maximum size");
            let max = start.and_then(|_| args::arg(s, d, 1, "a maximum size"));
            if let (Some(start), Some(max)) = (start, max) {
                let start = args::parse_at(start, d, offset);
                let max = args::parse_at(max, d, offset);
                u.regex_stack = start.zip(max);
            }
        }
        "regex_min_offset" => u.regex_min_offset = args::value(s, d, offset),
        "regex_max_offset" => u.regex_max_offset = args::value(s, d, offset),
        other => unhandled(other, s, d),
    }
}

/// An MD5 digest as printed by genhash: 32 hex digits.
fn digest(t: &str) -> Result<String, String> {
    if t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(t.to_ascii_lowercase())
    } else {
        Err(format!("digest '{t}' is not 32 hex digits"))
    }
}

/// `status_code 200 300-399 ...` within 100..599.
fn status_codes(s: &Stmt, d: &mut Diags) -> Vec<(u16, u16)> {
    args::no_block(s, d);
    if s.args().is_empty() {
        d.error(s.pos(), "'status_code' needs at least one code or range");
    }
    let code = |t: &str| values::uint(t, 100, 599).map(|n| n as u16);
    let range = |t: &str| -> Result<(u16, u16), String> {
        let (lo, hi) = match t.split_once('-') {
            Some((lo, hi)) => (code(lo)?, code(hi)?),
            None => (code(t)?, code(t)?),
        };
        if lo > hi {
            return Err(format!("status code range {t} is backwards"));
        }
        Ok((lo, hi))
    };
    s.args()
        .iter()
        .filter_map(|t| args::parse_at(t, d, |x| range(x).map_err(|e| format!("status_code {e}"))))
        .collect()
}

fn misc_keyword(kw: &str, s: &Stmt, m: &mut MiscCheck, d: &mut Diags) {
    match kw {
        "misc_path" => m.misc_path = args::text(s, d),
        "misc_timeout" => m.misc_timeout = args::value(s, d, values::seconds),
        "misc_dynamic" => m.misc_dynamic = args::flag(s, d),
        "user" => m.user = args::user_group(s, d),
        other => unhandled(other, s, d),
    }
}

fn udp_keyword(kw: &str, s: &Stmt, u: &mut UdpCheck, d: &mut Diags) {
    let length = |t: &str| values::u32_in(t, 0, 65535);
    match kw {
        "payload" => {
            args::no_block(s, d);
            if s.args().is_empty() {
                d.error(s.pos(), "'payload' needs a hex string");
            } else {
                u.payload = hex(s, false, d).map(|(bytes, _)| bytes);
            }
        }
        "require_reply" => {
            args::no_block(s, d);
            u.require_reply = true;
            u.reply = if s.args().is_empty() {
                None
            } else {
                hex(s, true, d)
            };
        }
        "min_reply_length" => {
            u.min_reply_length = args::value(s, d, length).unwrap_or(u.min_reply_length)
        }
        "max_reply_length" => {
            u.max_reply_length = args::value(s, d, length).unwrap_or(u.max_reply_length)
        }
        other => unhandled(other, s, d),
    }
}

fn hex(s: &Stmt, wildcards: bool, d: &mut Diags) -> Option<(Vec<u8>, Vec<u8>)> {
    let groups: Vec<&str> = s.args().iter().map(|t| t.text.as_str()).collect();
    match values::hex_bytes(&groups, wildcards) {
        Ok(v) => Some(v),
        Err(message) => {
            d.error(&s.args()[0].pos, message);
            None
        }
    }
}

fn dns_type(t: &str) -> Result<String, String> {
    let upper = t.to_ascii_uppercase();
    if DNS_TYPES.contains(&upper.as_str()) {
        Ok(upper)
    } else {
        Err(format!(
            "unknown DNS type '{t}'; expected {}",
            DNS_TYPES.join(", ")
        ))
    }
}

/// The deprecated `host { }` block of SMTP_CHECK: connection options only.
fn smtp_host(stmt: &Stmt, d: &mut Diags) -> Option<CheckerCommon> {
    args::at_most(stmt, d, 0);
    let block = args::block(stmt, d)?;
    d.warning(
        stmt.pos(),
        "SMTP_CHECK 'host' blocks are deprecated; use one SMTP_CHECK per host",
    );
    let mut common = CheckerCommon::default();
    for s in &block.stmts {
        if let Some(kw) = keywords::keyword(Block::SmtpHost, s, d) {
            if !common_keyword(kw, s, &mut common, d) {
                unhandled(kw, s, d);
            }
        }
    }
    Some(common)
}

fn file_keyword(kw: &str, s: &Stmt, f: &mut FileCheck, d: &mut Diags) {
    match kw {
        "track_file" => f.track_file = args::text(s, d).map(|name| (name, s.pos().clone())),
        "weight" => {
            args::no_block(s, d);
            args::at_most(s, d, 2);
            let Some(w) = args::arg(s, d, 0, "a weight") else {
                return;
            };
            f.weight = args::parse_at(w, d, |t| {
                values::int(t, -i64::from(i32::MAX), i32::MAX.into())
            });
            f.reverse = match s.args().get(1).map(|t| (t.text.as_str(), t)) {
                None | Some(("noreverse", _)) => false,
                Some(("reverse", _)) => true,
                Some((other, t)) => {
                    d.error(
                        &t.pos,
                        format!("unknown weight option '{other}'; expected reverse or noreverse"),
                    );
                    false
                }
            };
        }
        other => unhandled(other, s, d),
    }
}
