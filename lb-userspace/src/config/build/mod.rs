//! The statement tree into the typed model. Each block kind has a builder
//! that dispatches on canonical keywords (see `keywords`); values are parsed
//! with a diagnostic for every problem.

mod args;
mod checker;
mod global;
mod lvs;
mod ssl;
mod track_file;
mod vrrp;
mod vrrp_entries;
mod vsg;

use super::{
    diag::Diags,
    keywords::{self, Block as BlockKind},
    model::Config,
    tree::{Block, Stmt},
};

/// Builds the model from the top-level statements.
pub(crate) fn config(stmts: &[Stmt], d: &mut Diags) -> Config {
    let mut c = Config::default();
    for s in stmts {
        let Some(kw) = keywords::keyword(BlockKind::Top, s, d) else {
            continue;
        };
        match kw {
            "global_defs" => global::global_defs(s, &mut c.global, d),
            "vrrp_script" => c.vrrp_scripts.extend(vrrp::vrrp_script(s, d)),
            "vrrp_sync_group" => c.vrrp_sync_groups.extend(vrrp::vrrp_sync_group(s, d)),
            "vrrp_instance" => c.vrrp_instances.extend(vrrp::vrrp_instance(s, d)),
            "virtual_server_group" => c
                .virtual_server_groups
                .extend(vsg::virtual_server_group(s, d)),
            "virtual_server" => c.virtual_servers.extend(lvs::virtual_server(s, d)),
            "track_file" => c.track_files.extend(track_file::track_file(s, d)),
            "SSL" => c.ssl = ssl::ssl(s, d).or(c.ssl.take()),
            other => unhandled(other, s, d),
        }
    }
    c
}

/// `KEYWORD NAME { ... }`: the name and the block.
fn name_and_block<'s>(stmt: &'s Stmt, d: &mut Diags) -> Option<(String, &'s Block)> {
    args::at_most(stmt, d, 1);
    let name = args::arg(stmt, d, 0, "a name")?.text.clone();
    let block = args::block(stmt, d)?;
    Some((name, block))
}

/// A keyword listed as implemented that no builder handles: a bug in XVS,
/// reported rather than ignored.
fn unhandled(keyword: &str, s: &Stmt, d: &mut Diags) {
    d.error(
        s.pos(),
        format!("internal error: keyword '{keyword}' is accepted but not handled; please report"),
    );
}
