//! Reading a statement's arguments, with a diagnostic for every problem.

use std::collections::HashMap;

use crate::config::{
    diag::{Diags, Pos, Spanned},
    lexer::Token,
    model::{Script, ScriptUser},
    tree::{Block, Stmt},
    values,
};

/// The argument at `index`, or an error saying it is missing.
pub(crate) fn arg<'s>(s: &'s Stmt, d: &mut Diags, index: usize, what: &str) -> Option<&'s Token> {
    let found = s.args().get(index);
    if found.is_none() {
        d.error(s.pos(), format!("'{}' needs {what}", s.keyword()));
    }
    found
}

/// Reports every argument past the first `n`.
pub(crate) fn at_most(s: &Stmt, d: &mut Diags, n: usize) {
    if let Some(extra) = s.args().get(n) {
        d.error(
            &extra.pos,
            format!("unexpected '{}' after '{}'", extra.text, s.keyword()),
        );
    }
}

/// Reports a `{ }` block after a keyword that takes none.
pub(crate) fn no_block(s: &Stmt, d: &mut Diags) {
    if let Some(b) = &s.block {
        d.error(
            &b.open,
            format!("'{}' does not take a {{ }} block", s.keyword()),
        );
    }
}

/// The statement's block, or an error saying it needs one.
pub(crate) fn block<'s>(s: &'s Stmt, d: &mut Diags) -> Option<&'s Block> {
    if s.block.is_none() {
        d.error(s.pos(), format!("'{}' needs a {{ }} block", s.keyword()));
    }
    s.block.as_ref()
}

/// Exactly one argument, parsed.
pub(crate) fn value<T>(
    s: &Stmt,
    d: &mut Diags,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Option<T> {
    no_block(s, d);
    at_most(s, d, 1);
    let token = arg(s, d, 0, "a value")?;
    parse_at(token, d, parse)
}

/// Parses one token, reporting a failure at its position.
pub(crate) fn parse_at<T>(
    token: &Token,
    d: &mut Diags,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Option<T> {
    match parse(&token.text) {
        Ok(v) => Some(v),
        Err(message) => {
            d.error(&token.pos, message);
            None
        }
    }
}

/// A parsed value, located at the statement's first argument.
pub(crate) fn spanned<T>(s: &Stmt, value: Option<T>) -> Option<Spanned<T>> {
    let pos = s.args().first().map_or(s.pos(), |t| &t.pos);
    value.map(|v| Spanned::new(v, pos.clone()))
}

/// Exactly one word, as text.
pub(crate) fn text(s: &Stmt, d: &mut Diags) -> Option<String> {
    value(s, d, |t| Ok(t.to_owned()))
}

/// A keyword that takes no argument.
pub(crate) fn flag(s: &Stmt, d: &mut Diags) -> bool {
    no_block(s, d);
    at_most(s, d, 0);
    true
}

/// A keyword with an optional <BOOL> (absent means true).
pub(crate) fn optional_bool(s: &Stmt, d: &mut Diags) -> Option<bool> {
    no_block(s, d);
    at_most(s, d, 1);
    match s.args().first() {
        None => Some(true),
        Some(t) => parse_at(t, d, values::boolean),
    }
}

/// `KEYWORD COMMAND [USER [GROUP]]`
pub(crate) fn script(s: &Stmt, d: &mut Diags) -> Option<Script> {
    no_block(s, d);
    at_most(s, d, 3);
    let command = arg(s, d, 0, "a script")?;
    if command.text.trim().is_empty() {
        d.error(&command.pos, format!("'{}' needs a script", s.keyword()));
        return None;
    }
    Some(Script {
        command: command.text.clone(),
        user: s.args().get(1).map(|t| t.text.clone()),
        group: s.args().get(2).map(|t| t.text.clone()),
        pos: s.pos().clone(),
    })
}

/// `KEYWORD USER [GROUP]`
pub(crate) fn user_group(s: &Stmt, d: &mut Diags) -> Option<ScriptUser> {
    no_block(s, d);
    at_most(s, d, 2);
    let user = arg(s, d, 0, "a user name")?;
    Some(ScriptUser {
        user: user.text.clone(),
        group: s.args().get(1).map(|t| t.text.clone()),
    })
}

/// Keywords that may appear more than once in a block (their values add up).
const REPEATABLE: &[&str] = &[
    "real_server",
    "url",
    "host",
    "status_code",
    "regex_options",
    "virtual_ipaddress",
    "virtual_ipaddress_excluded",
    "unicast_peer",
    "track_interface",
    "track_script",
    "notification_email",
    "group",
    "TCP_CHECK",
    "HTTP_GET",
    "SSL_GET",
    "MISC_CHECK",
    "UDP_CHECK",
    "PING_CHECK",
    "DNS_CHECK",
    "SMTP_CHECK",
    "BFD_CHECK",
    "FILE_CHECK",
];

/// Warns when a single-valued keyword is given twice in one block.
#[derive(Default)]
pub(crate) struct Seen {
    first: HashMap<&'static str, Pos>,
}

impl Seen {
    /// Whether the keyword was written (even with a bad value).
    pub fn contains(&self, keyword: &str) -> bool {
        self.first.contains_key(keyword)
    }

    pub fn note(&mut self, keyword: &'static str, s: &Stmt, d: &mut Diags) {
        match self.first.get(keyword) {
            Some(_) if REPEATABLE.contains(&keyword) => {}
            Some(first) => d.warning(
                s.pos(),
                format!("'{keyword}' given again; this one replaces the one at {first}"),
            ),
            None => {
                self.first.insert(keyword, s.pos().clone());
            }
        }
    }
}
