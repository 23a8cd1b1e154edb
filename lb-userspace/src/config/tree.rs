//! Token lines into a tree of statements and `{ }` blocks.
//!
//! A statement is the words of one line up to a brace or the end of the
//! line. A `{` opens the block of the statement before it, on the same line
//! or the line before (keepalived allows `{` on its own line). So
//! `virtual_ipaddress { 10.0.0.1 }` is a statement with a one-line block.

use super::{
    diag::{Diags, Pos},
    lexer::{Token, TokenKind},
};

/// Deeper blocks are dropped with one error (keepalived needs at most 5).
const MAX_DEPTH: usize = 32;

#[derive(Clone, Debug)]
pub(crate) struct Stmt {
    pub words: Vec<Token>,
    pub block: Option<Block>,
}

#[derive(Clone, Debug)]
pub(crate) struct Block {
    pub open: Pos,
    pub stmts: Vec<Stmt>,
}

impl Stmt {
    pub fn keyword(&self) -> &str {
        &self.words[0].text
    }

    pub fn pos(&self) -> &Pos {
        &self.words[0].pos
    }

    /// The words after the keyword.
    pub fn args(&self) -> &[Token] {
        &self.words[1..]
    }
}

/// One open block while building.
struct Level {
    owner: Option<Vec<Token>>,
    open: Option<Pos>,
    stmts: Vec<Stmt>,
    /// The last statement ended at a line end, so a `{` on the next line
    /// may still open its block.
    last_may_open: bool,
}

impl Level {
    fn new(owner: Option<Vec<Token>>, open: Option<Pos>) -> Level {
        Level {
            owner,
            open,
            stmts: Vec::new(),
            last_may_open: false,
        }
    }

    fn flush(&mut self, words: &mut Vec<Token>) {
        if !words.is_empty() {
            self.stmts.push(Stmt {
                words: std::mem::take(words),
                block: None,
            });
        }
    }
}

pub(crate) fn build(lines: Vec<Vec<Token>>, diags: &mut Diags) -> Vec<Stmt> {
    let mut stack = vec![Level::new(None, None)];
    let mut words: Vec<Token> = Vec::new();
    // Braces inside blocks nested beyond MAX_DEPTH, being skipped.
    let mut skipped_depth = 0usize;
    for line in lines {
        for token in line {
            if skipped_depth > 0 {
                match token.kind {
                    TokenKind::Open => skipped_depth += 1,
                    TokenKind::Close => skipped_depth -= 1,
                    TokenKind::Word => {}
                }
                continue;
            }
            match token.kind {
                TokenKind::Word => words.push(token),
                TokenKind::Open if stack.len() > MAX_DEPTH => {
                    diags.error(&token.pos, "blocks nested too deeply; skipping this one");
                    words.clear();
                    skipped_depth = 1;
                }
                TokenKind::Open => open_block(&mut stack, &mut words, token, diags),
                TokenKind::Close => close_block(&mut stack, &mut words, token, diags),
            }
        }
        let level = stack.last_mut().expect("the top level is never popped");
        if !words.is_empty() {
            level.flush(&mut words);
            level.last_may_open = true;
        }
    }
    while stack.len() > 1 {
        let level = stack.last().expect("checked above");
        if let Some(open) = &level.open {
            diags.error(open, "this '{' is never closed");
        }
        pop_level(&mut stack);
    }
    stack.pop().map(|top| top.stmts).unwrap_or_default()
}

fn open_block(stack: &mut Vec<Level>, words: &mut Vec<Token>, token: Token, diags: &mut Diags) {
    let level = stack.last_mut().expect("the top level is never popped");
    let owner = if !words.is_empty() {
        Some(std::mem::take(words))
    } else if level.last_may_open && level.stmts.last().is_some_and(|s| s.block.is_none()) {
        level.stmts.pop().map(|s| s.words)
    } else {
        diags.error(&token.pos, "'{' without a keyword before it");
        None
    };
    level.last_may_open = false;
    stack.push(Level::new(owner, Some(token.pos)));
}

fn close_block(stack: &mut Vec<Level>, words: &mut Vec<Token>, token: Token, diags: &mut Diags) {
    let level = stack.last_mut().expect("the top level is never popped");
    level.flush(words);
    if stack.len() == 1 {
        diags.error(&token.pos, "'}' without a matching '{'");
        return;
    }
    pop_level(stack);
}

/// Closes the innermost block and attaches it to its statement.
fn pop_level(stack: &mut Vec<Level>) {
    let Some(level) = stack.pop() else { return };
    let parent = stack.last_mut().expect("the top level is never popped");
    parent.last_may_open = false;
    if let (Some(owner), Some(open)) = (level.owner, level.open) {
        parent.stmts.push(Stmt {
            words: owner,
            block: Some(Block {
                open,
                stmts: level.stmts,
            }),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{
        lexer::{located, tokenize},
        source::Reader,
    };
    use std::{path::Path, sync::Arc};

    fn tree(text: &str) -> (Vec<Stmt>, Diags) {
        let mut d = Diags::new(false);
        let mut r = Reader::new(&mut d, None);
        r.read_text("t", Path::new("."), text);
        let (lines, _) = r.finish();
        let stmts = build(lines, &mut d);
        (stmts, d)
    }

    fn shape(stmts: &[Stmt]) -> String {
        stmts
            .iter()
            .map(|s| {
                let words: Vec<&str> = s.words.iter().map(|w| w.text.as_str()).collect();
                match &s.block {
                    Some(b) => format!("{}{{{}}}", words.join(" "), shape(&b.stmts)),
                    None => words.join(" "),
                }
            })
            .collect::<Vec<_>>()
            .join(";")
    }

    #[test]
    fn one_line_and_multi_line_blocks() {
        let (s, d) = tree("a { b }\nc\n{\n d 1\n e { f } g\n}\n");
        assert!(!d.has_errors());
        assert_eq!(shape(&s), "a{b};c{d 1;e{f};g}");
    }

    #[test]
    fn unbalanced_braces_are_errors() {
        let (_, d) = tree("a {\n");
        assert!(d.has_errors());
        let (_, d) = tree("}\n");
        assert!(d.has_errors());
        let (_, d) = tree("{ x }\n");
        assert!(d.has_errors());
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        let text = "a {".repeat(100_000);
        let (_, d) = tree(&text);
        assert!(d.has_errors());
    }

    #[test]
    fn tokens_keep_positions() {
        let file: Arc<str> = Arc::from("t");
        let mut d = Diags::new(false);
        let t = tokenize(&file, &located("x {", 3), &mut d);
        let s = build(vec![t], &mut d);
        assert_eq!(s[0].pos().line, 3);
    }
}
