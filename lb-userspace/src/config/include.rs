//! `include FILE` and its checking variants (includer, includem, includew,
//! includeb, includea): glob patterns with csh-style `{a,b}` braces,
//! relative to the directory of the including file.

use std::path::{Path, PathBuf};

use super::{
    diag::{Diags, Pos},
    lexer::{is_blank, text_of, trim, LChar},
};

/// At most this many alternatives from brace expansion, and files per include.
const MAX_ALTERNATIVES: usize = 256;

/// Which of keepalived's include_check checks an include line asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IncludeKind {
    /// Error if a pattern without wildcards matches nothing.
    pub must_match: bool,
    /// Error if a pattern with wildcards matches nothing.
    pub wildcard_must_match: bool,
    /// Error if one alternative of a brace expression matches nothing.
    pub brace_must_match: bool,
    /// `includer`: an optional include; no match is fine.
    pub optional: bool,
}

/// `include[rmwba] PATTERN`: the kind and the pattern (rest of the line).
pub(crate) fn parse_include(chars: &[LChar]) -> Option<(IncludeKind, String)> {
    let word_end = chars
        .iter()
        .position(|c| is_blank(c.ch))
        .unwrap_or(chars.len());
    let word = text_of(&chars[..word_end]);
    let plain = IncludeKind {
        must_match: false,
        wildcard_must_match: false,
        brace_must_match: false,
        optional: false,
    };
    let kind = match word.as_str() {
        "include" => plain,
        "includer" => IncludeKind {
            optional: true,
            ..plain
        },
        "includem" => IncludeKind {
            must_match: true,
            ..plain
        },
        "includew" => IncludeKind {
            must_match: true,
            wildcard_must_match: true,
            ..plain
        },
        "includeb" => IncludeKind {
            brace_must_match: true,
            ..plain
        },
        "includea" => IncludeKind {
            must_match: true,
            wildcard_must_match: true,
            brace_must_match: true,
            optional: false,
        },
        _ => return None,
    };
    let pattern = text_of(trim(&chars[word_end..]));
    let pattern = pattern
        .strip_prefix('"')
        .and_then(|p| p.strip_suffix('"'))
        .map(str::to_owned)
        .unwrap_or(pattern);
    Some((kind, pattern))
}

/// The files an include pattern names, in glob (sorted) order.
pub(crate) fn resolve(
    dir: &Path,
    pattern: &str,
    kind: IncludeKind,
    pos: &Pos,
    diags: &mut Diags,
) -> Vec<PathBuf> {
    if pattern.is_empty() {
        diags.error(pos, "include needs a file name");
        return Vec::new();
    }
    let alternatives = expand_braces(pattern);
    if alternatives.len() > MAX_ALTERNATIVES {
        diags.error(
            pos,
            format!("include pattern '{pattern}' expands to too many alternatives"),
        );
        return Vec::new();
    }
    let mut files = Vec::new();
    for alternative in &alternatives {
        let found = glob_files(dir, alternative, pos, diags);
        if found.is_empty() && alternatives.len() > 1 && kind.brace_must_match {
            diags.error(
                pos,
                format!("include alternative '{alternative}' matches no file"),
            );
        }
        files.extend(found);
    }
    if files.is_empty() {
        report_no_match(pattern, kind, pos, diags);
    }
    files.truncate(MAX_ALTERNATIVES);
    files
}

fn report_no_match(pattern: &str, kind: IncludeKind, pos: &Pos, diags: &mut Diags) {
    let wildcard = pattern.contains(['*', '?', '[']);
    let message = format!("include '{pattern}' matches no file");
    if (wildcard && kind.wildcard_must_match) || (!wildcard && kind.must_match) {
        diags.error(pos, message);
    } else if !kind.optional {
        diags.warning(pos, message);
    }
}

/// Regular files matching one glob pattern, relative to `dir`.
fn glob_files(dir: &Path, pattern: &str, pos: &Pos, diags: &mut Diags) -> Vec<PathBuf> {
    let full = if Path::new(pattern).is_absolute() {
        pattern.to_owned()
    } else {
        let base = glob::Pattern::escape(&dir.display().to_string());
        format!("{base}/{pattern}")
    };
    let paths = match glob::glob(&full) {
        Ok(paths) => paths,
        Err(e) => {
            diags.error(pos, format!("bad include pattern '{pattern}': {e}"));
            return Vec::new();
        }
    };
    let mut files = Vec::new();
    for entry in paths.take(MAX_ALTERNATIVES) {
        match entry {
            Ok(path) if path.is_file() => files.push(path),
            Ok(path) => diags.warning(
                pos,
                format!("include skips '{}': not a regular file", path.display()),
            ),
            Err(e) => diags.warning(pos, format!("include cannot read '{}'", e.path().display())),
        }
    }
    files
}

/// csh-style brace expansion: "a{b,c{d,e}}f" → abf, acdf, acef.
/// Text without a complete `{...,...}` group is returned unchanged.
pub(crate) fn expand_braces(pattern: &str) -> Vec<String> {
    let mut out = Vec::new();
    expand_into(pattern, &mut out);
    out
}

fn expand_into(pattern: &str, out: &mut Vec<String>) {
    if out.len() > MAX_ALTERNATIVES {
        return;
    }
    let Some((open, close, commas)) = first_brace_group(pattern) else {
        out.push(pattern.to_owned());
        return;
    };
    let (prefix, suffix) = (&pattern[..open], &pattern[close + 1..]);
    let mut start = open + 1;
    for end in commas.into_iter().chain(std::iter::once(close)) {
        let candidate = format!("{prefix}{}{suffix}", &pattern[start..end]);
        expand_into(&candidate, out);
        start = end + 1;
    }
}

/// The first `{...}` holding a top-level comma: its braces and commas.
fn first_brace_group(pattern: &str) -> Option<(usize, usize, Vec<usize>)> {
    let bytes = pattern.as_bytes();
    for open in (0..bytes.len()).filter(|&i| bytes[i] == b'{') {
        let mut depth = 0usize;
        let mut commas = Vec::new();
        for (i, &b) in bytes.iter().enumerate().skip(open) {
            match b {
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        if !commas.is_empty() {
                            return Some((open, i, commas));
                        }
                        break;
                    }
                }
                b',' if depth == 1 => commas.push(i),
                _ => {}
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn braces_expand_like_csh() {
        assert_eq!(expand_braces("a{b,c}d"), ["abd", "acd"]);
        assert_eq!(expand_braces("{x,y{1,2}}"), ["x", "y1", "y2"]);
        assert_eq!(
            expand_braces("{foo/{,cat,dog},bar}"),
            ["foo/", "foo/cat", "foo/dog", "bar"]
        );
        assert_eq!(expand_braces("plain*.conf"), ["plain*.conf"]);
        assert_eq!(expand_braces("odd{brace"), ["odd{brace"]);
    }
}
