//! The `SSL { }` block: the context SSL_GET checkers use.

use super::{
    args::{self, Seen},
    unhandled,
};
use crate::config::{
    diag::Diags,
    keywords::{self, Block},
    model::SslContext,
    tree::Stmt,
};

pub(crate) fn ssl(stmt: &Stmt, d: &mut Diags) -> Option<SslContext> {
    args::at_most(stmt, d, 0);
    let block = args::block(stmt, d)?;
    let mut ssl = SslContext::default();
    let mut seen = Seen::default();
    for s in &block.stmts {
        let Some(kw) = keywords::keyword(Block::Ssl, s, d) else {
            continue;
        };
        seen.note(kw, s, d);
        let value = args::text(s, d);
        match kw {
            "password" => ssl.password = value,
            "ca" => ssl.ca = value,
            "certificate" => ssl.certificate = value,
            "key" => ssl.key = value,
            other => unhandled(other, s, d),
        }
    }
    Some(ssl)
}
