//! `track_file NAME { file PATH; weight N [reverse]; init_file [V] [overwrite] }`

use super::{
    args::{self, Seen},
    name_and_block, unhandled,
};
use crate::config::{
    diag::Diags,
    keywords::{self, Block},
    model::{TrackFile, TrackFileInit},
    tree::Stmt,
    values,
};

pub(crate) fn track_file(stmt: &Stmt, d: &mut Diags) -> Option<TrackFile> {
    let (name, block) = name_and_block(stmt, d)?;
    let mut t = TrackFile {
        name,
        file: None,
        weight: 1,
        reverse: false,
        init_file: None,
        pos: stmt.pos().clone(),
    };
    let mut seen = Seen::default();
    for s in &block.stmts {
        let Some(kw) = keywords::keyword(Block::TrackFile, s, d) else {
            continue;
        };
        seen.note(kw, s, d);
        match kw {
            "file" => t.file = args::text(s, d),
            "weight" => weight(s, &mut t, d),
            "init_file" => t.init_file = init_file(s, d),
            other => unhandled(other, s, d),
        }
    }
    if t.file.is_none() {
        d.error(stmt.pos(), format!("track_file {} has no 'file'", t.name));
    }
    Some(t)
}

/// `weight N [reverse|noreverse]`, N in -254..254.
fn weight(s: &Stmt, t: &mut TrackFile, d: &mut Diags) {
    args::no_block(s, d);
    args::at_most(s, d, 2);
    let Some(w) = args::arg(s, d, 0, "a weight") else {
        return;
    };
    if let Some(w) = args::parse_at(w, d, |x| values::int(x, -254, 254)) {
        t.weight = w as i32;
    }
    match s.args().get(1) {
        None => {}
        Some(r) if r.text == "reverse" => t.reverse = true,
        Some(r) if r.text == "noreverse" => t.reverse = false,
        Some(r) => d.error(
            &r.pos,
            format!(
                "unknown weight option '{}'; expected reverse or noreverse",
                r.text
            ),
        ),
    }
}

/// `init_file [VALUE] [overwrite]`
fn init_file(s: &Stmt, d: &mut Diags) -> Option<TrackFileInit> {
    args::no_block(s, d);
    args::at_most(s, d, 2);
    let mut init = TrackFileInit {
        value: 0,
        overwrite: false,
    };
    for word in s.args() {
        if word.text == "overwrite" {
            init.overwrite = true;
        } else {
            init.value = args::parse_at(word, d, |x| {
                values::int(x, i64::from(i32::MIN), i32::MAX.into())
            })?;
        }
    }
    Some(init)
}
