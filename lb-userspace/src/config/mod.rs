//! keepalived.conf, as keepalived 2.2.7 reads it, into a typed model.
//!
//! The stages, one module each:
//! 1. `source` (+ `lexer`, `include`): files into token lines — comments,
//!    quoting, `\` continuation, `@id` conditionals, `$NAME` parameters,
//!    `include` globs;
//! 2. `tree`: token lines into statements with `{ }` blocks;
//! 3. `build` (+ `keywords`, `values`): statements into the `model`, with
//!    keepalived's defaults; unknown keywords, aliases and keywords XVS does
//!    not implement are reported there;
//! 4. `checks`: what keepalived rejects across blocks, and what XVS cannot
//!    do yet.
//!
//! Every problem is a [`Diagnostic`] printed as `FILE:LINE:COL: error|warning: message`.
//! `resolve` computes inherited values; `to_dataplane` turns the model into
//! data-plane services.

mod build;
mod checks;
pub mod diag;
mod include;
mod keywords;
mod lexer;
pub mod model;
pub mod resolve;
mod services;
mod source;
mod suggest;
pub mod to_dataplane;
mod tree;
mod values;

use std::path::Path;

pub use diag::{has_errors, Diagnostic, Pos, Severity, Spanned};
pub use model::Config;
pub use services::MAX_RANGE_ADDRESSES;
pub use to_dataplane::service_specs;

use diag::Diags;
use source::Reader;

/// How to read a configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Report keywords keepalived knows but XVS does not implement as
    /// warnings instead of errors (they are then ignored).
    pub lenient: bool,
    /// The id `@ID` lines are compared with (keepalived's `-i`); None means
    /// the first label of the host name, as keepalived does.
    pub config_id: Option<String>,
}

/// Reads and checks a configuration file. The configuration is returned
/// only if there is no error; the diagnostics in any case.
pub fn load(path: &Path, opts: &LoadOptions) -> (Option<Config>, Vec<Diagnostic>) {
    let mut diags = Diags::new(opts.lenient);
    let mut reader = Reader::new(&mut diags, config_id(opts));
    let name = path.display().to_string();
    reader.read_file(path, &name, None);
    let (lines, files) = reader.finish();
    finish(lines, &files, diags)
}

/// Parses configuration text; `name` is used in diagnostics and its
/// directory resolves relative includes.
pub fn parse_str(name: &str, text: &str, opts: &LoadOptions) -> (Option<Config>, Vec<Diagnostic>) {
    let mut diags = Diags::new(opts.lenient);
    let mut reader = Reader::new(&mut diags, config_id(opts));
    reader.read_text(name, &source::dir_of_name(name), text);
    let (lines, files) = reader.finish();
    finish(lines, &files, diags)
}

/// keepalived's default config id: the host name up to the first dot.
pub fn default_config_id() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let label = name.trim().split('.').next()?.to_owned();
    (!label.is_empty()).then_some(label)
}

fn config_id(opts: &LoadOptions) -> Option<String> {
    opts.config_id.clone().or_else(default_config_id)
}

fn finish(
    lines: Vec<Vec<lexer::Token>>,
    files: &[std::sync::Arc<str>],
    mut diags: Diags,
) -> (Option<Config>, Vec<Diagnostic>) {
    let stmts = tree::build(lines, &mut diags);
    let config = build::config(&stmts, &mut diags);
    checks::check(&config, &mut diags);
    diags.sort(files);
    let ok = !diags.has_errors();
    (ok.then_some(config), diags.into_vec())
}
