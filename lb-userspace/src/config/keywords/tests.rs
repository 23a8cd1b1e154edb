//! The keyword tables agree with the builders.

use super::{aliases::ALIASES, Block};
use crate::config::{parse_str, LoadOptions};

/// Text placing `kw` inside a block of the given kind.
fn inside(block: Block, kw: &str) -> String {
    let rs = |body: &str| {
        format!("virtual_server 192.0.2.1 80 {{\nreal_server 192.0.2.2 80 {{\n{body}\n}}\n}}\n")
    };
    let checker = |name: &str| rs(&format!("{name} {{\n{kw}\n}}"));
    match block {
        Block::Top => format!("{kw}\n"),
        Block::GlobalDefs => format!("global_defs {{\n{kw}\n}}\n"),
        Block::VrrpScript => format!("vrrp_script s {{\n{kw}\n}}\n"),
        Block::VrrpSyncGroup => format!("vrrp_sync_group g {{\n{kw}\n}}\n"),
        Block::VrrpInstance => format!("vrrp_instance i {{\n{kw}\n}}\n"),
        Block::Authentication => {
            format!("vrrp_instance i {{\nauthentication {{\n{kw}\n}}\n}}\n")
        }
        Block::VirtualServer => format!("virtual_server 192.0.2.1 80 {{\n{kw}\n}}\n"),
        Block::RealServer => rs(kw),
        Block::TcpCheck => checker("TCP_CHECK"),
        Block::HttpGet => checker("HTTP_GET"),
        Block::SslGet => checker("SSL_GET"),
        Block::MiscCheck => checker("MISC_CHECK"),
        Block::UdpCheck => checker("UDP_CHECK"),
        Block::PingCheck => checker("PING_CHECK"),
        Block::DnsCheck => checker("DNS_CHECK"),
        Block::SmtpCheck => checker("SMTP_CHECK"),
        Block::SmtpHost => rs(&format!("SMTP_CHECK {{\nhost {{\n{kw}\n}}\n}}")),
        Block::BfdCheck => checker("BFD_CHECK"),
        Block::FileCheck => checker("FILE_CHECK"),
        Block::Url => rs(&format!("HTTP_GET {{\nurl {{\n{kw}\n}}\n}}")),
        Block::TrackFile => format!("track_file t {{\n{kw}\n}}\n"),
        Block::Ssl => format!("SSL {{\n{kw}\n}}\n"),
    }
}

const ALL: &[Block] = &[
    Block::Top,
    Block::GlobalDefs,
    Block::VrrpScript,
    Block::VrrpSyncGroup,
    Block::VrrpInstance,
    Block::Authentication,
    Block::VirtualServer,
    Block::RealServer,
    Block::TcpCheck,
    Block::HttpGet,
    Block::SslGet,
    Block::MiscCheck,
    Block::UdpCheck,
    Block::PingCheck,
    Block::DnsCheck,
    Block::SmtpCheck,
    Block::SmtpHost,
    Block::BfdCheck,
    Block::FileCheck,
    Block::Url,
    Block::TrackFile,
    Block::Ssl,
];

fn messages(text: &str) -> Vec<String> {
    let opts = LoadOptions {
        lenient: false,
        config_id: None,
    };
    parse_str("t.conf", text, &opts)
        .1
        .iter()
        .map(|d| d.message.clone())
        .collect()
}

#[test]
fn every_implemented_keyword_has_a_builder() {
    for &block in ALL {
        for kw in block.implemented() {
            for m in messages(&inside(block, kw)) {
                assert!(!m.contains("internal error"), "{kw} in {block:?}: {m}");
                assert!(!m.contains("unknown keyword"), "{kw} in {block:?}: {m}");
            }
        }
    }
}

#[test]
fn every_not_implemented_keyword_says_so() {
    for &block in ALL {
        for kw in block.not_implemented() {
            let m = messages(&inside(block, kw));
            let expected =
                format!("keyword '{kw}' is valid keepalived syntax but not implemented by XVS yet");
            assert!(m.contains(&expected), "{kw} in {block:?}: {m:?}");
        }
    }
}

#[test]
fn every_alias_is_accepted_with_a_warning() {
    for alias in ALIASES {
        for &block in alias.blocks {
            let m = messages(&inside(block, alias.alias));
            assert!(
                m.contains(&alias.message()),
                "{} in {block:?}: {m:?}",
                alias.alias
            );
            assert!(!m.iter().any(|x| x.contains("unknown keyword")), "{m:?}");
        }
    }
}

#[test]
fn lists_do_not_overlap() {
    for &block in ALL {
        let implemented = block.implemented();
        for kw in block.not_implemented() {
            assert!(!implemented.contains(kw), "{kw} in {block:?}");
        }
        for alias in ALIASES.iter().filter(|a| a.blocks.contains(&block)) {
            assert!(
                !implemented.contains(&alias.alias),
                "{} in {block:?}",
                alias.alias
            );
        }
    }
}
