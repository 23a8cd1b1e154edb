//! Characters with positions, comment removal and splitting a logical line
//! into words and braces, following keepalived's lib/parser.c.

use std::sync::Arc;

use super::diag::{Diags, Pos};

/// A character and where it was read. Text produced by variable expansion
/// carries the position of the `$` it replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LChar {
    pub ch: char,
    pub line: u32,
    pub col: u32,
}

/// One line of a file, as characters with positions.
pub(crate) fn located(text: &str, line: u32) -> Vec<LChar> {
    text.chars()
        .enumerate()
        .map(|(i, ch)| LChar {
            ch,
            line,
            col: i as u32 + 1,
        })
        .collect()
}

pub(crate) fn text_of(chars: &[LChar]) -> String {
    chars.iter().map(|c| c.ch).collect()
}

pub(crate) fn is_blank(ch: char) -> bool {
    ch == ' ' || ch == '\t'
}

pub(crate) fn trim(chars: &[LChar]) -> &[LChar] {
    let start = chars.iter().position(|c| !c.ch.is_whitespace());
    let Some(start) = start else { return &[] };
    let end = chars
        .iter()
        .rposition(|c| !c.ch.is_whitespace())
        .unwrap_or(start);
    &chars[start..=end]
}

/// A physical line after comment removal.
pub(crate) struct Decommented {
    pub chars: Vec<LChar>,
    /// The line ended with `\`: it continues on the next line.
    pub continued: bool,
}

/// Removes a `#` or `!` comment (not inside "..."), turns `\#` and `\!`
/// into literal characters, notes a trailing `\` and trims blanks.
/// Like keepalived, only double quotes protect a comment character.
pub(crate) fn decomment(line: &[LChar]) -> Decommented {
    let mut out = Vec::with_capacity(line.len());
    let mut in_quote = false;
    let mut continued = false;
    let mut i = 0;
    while i < line.len() {
        let c = line[i];
        match c.ch {
            '"' => {
                in_quote = !in_quote;
                out.push(c);
            }
            '\\' if i + 1 == line.len() => {
                continued = true;
            }
            '\\' => {
                let next = line[i + 1];
                if !in_quote && (next.ch == '#' || next.ch == '!') {
                    out.push(next);
                } else {
                    out.push(c);
                    out.push(next);
                }
                i += 1;
            }
            '#' | '!' if !in_quote => break,
            _ => out.push(c),
        }
        i += 1;
    }
    Decommented {
        chars: trim(&out).to_vec(),
        continued,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenKind {
    Word,
    Open,
    Close,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Token {
    pub kind: TokenKind,
    pub text: String,
    pub pos: Pos,
}

/// Splits a logical line into words and `{` / `}` tokens. Quotes (" or ')
/// group words and are removed; backslash escapes work as in keepalived.
/// Braces are tokens of their own unless quoted, even when touching a word.
pub(crate) fn tokenize(file: &Arc<str>, line: &[LChar], diags: &mut Diags) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < line.len() {
        let c = line[i];
        if c.ch.is_whitespace() {
            i += 1;
            continue;
        }
        let pos = Pos::new(file, c.line, c.col);
        if c.ch == '{' || c.ch == '}' {
            let kind = if c.ch == '{' {
                TokenKind::Open
            } else {
                TokenKind::Close
            };
            tokens.push(Token {
                kind,
                text: c.ch.to_string(),
                pos,
            });
            i += 1;
            continue;
        }
        let (text, next) = read_word(file, line, i, diags);
        tokens.push(Token {
            kind: TokenKind::Word,
            text,
            pos,
        });
        i = next;
    }
    tokens
}

/// Reads one word starting at `start`; returns it and the index after it.
fn read_word(file: &Arc<str>, line: &[LChar], start: usize, diags: &mut Diags) -> (String, usize) {
    let mut text = String::new();
    let mut quote: Option<LChar> = None;
    let mut i = start;
    while i < line.len() {
        let c = line[i];
        match (quote, c.ch) {
            (_, '\\') => {
                let (ch, used) = unescape(&line[i + 1..]);
                text.push(ch);
                i += 1 + used;
                continue;
            }
            (Some(q), ch) if ch == q.ch => quote = None,
            (Some(_), ch) => text.push(ch),
            (None, '"' | '\'') => quote = Some(c),
            (None, ch) if ch.is_whitespace() || ch == '{' || ch == '}' => break,
            (None, ch) => text.push(ch),
        }
        i += 1;
    }
    if let Some(q) = quote {
        diags.error(
            &Pos::new(file, q.line, q.col),
            format!("missing closing {} for this quoted string", q.ch),
        );
    }
    (text, i)
}

/// Decodes the escape after a backslash: \a \b \E \f \n \r \t \v, \nnn
/// (octal), \xXX (hex), \cC (control) and \C for any other C. Returns the
/// character and how many characters after the backslash it used.
fn unescape(rest: &[LChar]) -> (char, usize) {
    let Some(first) = rest.first() else {
        return ('\\', 0);
    };
    let digits = |radix: u32, max: usize| -> (u32, usize) {
        let mut value: u32 = 0;
        let mut n = 0;
        while n < max {
            match rest.get(1 + n).and_then(|c| c.ch.to_digit(radix)) {
                Some(d) => value = value.wrapping_mul(radix).wrapping_add(d),
                None => break,
            }
            n += 1;
        }
        (value, n)
    };
    match first.ch {
        'x' if rest.get(1).is_some_and(|c| c.ch.is_ascii_hexdigit()) => {
            let (value, n) = digits(16, 2);
            (byte_char(value), 1 + n)
        }
        'c' if rest.len() > 1 => (byte_char(rest[1].ch as u32 & 0x1f), 2),
        '0'..='7' => {
            let mut value = first.ch as u32 - '0' as u32;
            let mut n = 1;
            while n < 3 {
                match rest.get(n).and_then(|c| c.ch.to_digit(8)) {
                    Some(d) => value = value * 8 + d,
                    None => break,
                }
                n += 1;
            }
            (byte_char(value), n)
        }
        'a' => ('\x07', 1),
        'b' => ('\x08', 1),
        'E' => ('\x1b', 1),
        'f' => ('\x0c', 1),
        'n' => ('\n', 1),
        'r' => ('\r', 1),
        't' => ('\t', 1),
        'v' => ('\x0b', 1),
        other => (other, 1),
    }
}

fn byte_char(value: u32) -> char {
    char::from_u32(value & 0xff).unwrap_or('?')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        let file: Arc<str> = Arc::from("t");
        let mut d = Diags::new(false);
        let dc = decomment(&located(line, 1));
        tokenize(&file, &dc.chars, &mut d)
            .into_iter()
            .map(|t| t.text)
            .collect()
    }

    #[test]
    fn comments_start_with_hash_or_bang_outside_double_quotes() {
        assert_eq!(words("weight 1 # note"), ["weight", "1"]);
        assert_eq!(words("weight 1 ! note"), ["weight", "1"]);
        assert_eq!(
            words(r#"notify "/a b.sh #1" x"#),
            ["notify", "/a b.sh #1", "x"]
        );
        assert_eq!(words(r"path /a\#b"), ["path", "/a#b"]);
    }

    #[test]
    fn braces_are_tokens_even_when_touching_words() {
        assert_eq!(
            words("virtual_ipaddress {10.0.0.1}"),
            ["virtual_ipaddress", "{", "10.0.0.1", "}"]
        );
        assert_eq!(words(r#"x "{""#), ["x", "{"]);
    }

    #[test]
    fn quotes_group_and_are_removed() {
        assert_eq!(words(r#"abcd" efg h jkl "mnop"#), ["abcd efg h jkl mnop"]);
        assert_eq!(
            words(r#"abcd "efg h jkl" mnop"#),
            ["abcd", "efg h jkl", "mnop"]
        );
        assert_eq!(words("a 'b c' d"), ["a", "b c", "d"]);
        assert_eq!(words(r#"a "x\"y""#), ["a", "x\"y"]);
    }

    #[test]
    fn escapes() {
        assert_eq!(words(r#""\x41\101\t""#), ["AA\t"]);
    }

    #[test]
    fn trailing_backslash_continues() {
        let dc = decomment(&located("router_id \\", 1));
        assert!(dc.continued);
        assert_eq!(text_of(&dc.chars), "router_id");
    }

    #[test]
    fn token_columns_are_one_based() {
        let file: Arc<str> = Arc::from("t");
        let mut d = Diags::new(false);
        let t = tokenize(&file, &located("  ab  \"c d\"", 7), &mut d);
        assert_eq!((t[0].pos.line, t[0].pos.col), (7, 3));
        assert_eq!((t[1].pos.line, t[1].pos.col), (7, 7));
    }

    #[test]
    fn unterminated_quote_is_an_error() {
        let file: Arc<str> = Arc::from("t");
        let mut d = Diags::new(false);
        tokenize(&file, &located("a \"b c", 1), &mut d);
        assert!(d.has_errors());
    }
}
