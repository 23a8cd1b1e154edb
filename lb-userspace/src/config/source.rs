//! Reading configuration text into token lines: comments, line
//! continuation, `@id` conditionals, `$NAME=value` definitions and their
//! expansion, and `include` with globs. The order of the steps on each line
//! follows keepalived's read_line().

use std::{
    collections::HashMap,
    io::Read,
    path::{Path, PathBuf},
    sync::Arc,
};

use super::{
    diag::{Diags, Pos},
    include,
    lexer::{self, decomment, is_blank, located, text_of, trim, Decommented, LChar, Token},
};

/// Limits that keep hostile input (and the fuzzer) from exhausting memory.
const MAX_FILE_BYTES: u64 = 16 << 20;
const MAX_TOTAL_BYTES: u64 = 64 << 20;
const MAX_FILES: usize = 256;
const MAX_INCLUDE_DEPTH: usize = 16;
const MAX_EXPANSION_PASSES: usize = 32;
const MAX_LINE_CHARS: usize = 1 << 16;
const MAX_LINES: usize = 1 << 20;

/// A file being read: its name for diagnostics and its directory, against
/// which relative includes are resolved.
struct FileCtx {
    name: Arc<str>,
    dir: PathBuf,
}

/// A `$NAME=` definition whose value continues on the following lines.
struct PendingDefinition {
    name: String,
    value: String,
}

impl PendingDefinition {
    /// Adds the next physical line; true when the definition is complete.
    /// Like keepalived, a blank line ends it and a comment-only line is
    /// skipped; lines are kept apart so the value expands to several lines.
    fn append(&mut self, raw: &str, line: &Decommented) -> bool {
        if raw.trim().is_empty() {
            return true;
        }
        if line.chars.is_empty() && !line.continued {
            return false;
        }
        if !self.value.is_empty() {
            self.value.push('\n');
        }
        self.value.push_str(&text_of(&line.chars));
        !line.continued
    }
}

pub(crate) struct Reader<'d> {
    diags: &'d mut Diags,
    config_id: Option<String>,
    defs: HashMap<String, String>,
    lines: Vec<Vec<Token>>,
    /// Files in the order they were read, for ordering diagnostics.
    files: Vec<Arc<str>>,
    include_depth: usize,
    /// Logical lines processed, expansions included: a bound on the work
    /// that nested multi-line parameters can cause.
    lines_processed: usize,
    files_read: usize,
    bytes_read: u64,
}

impl<'d> Reader<'d> {
    pub fn new(diags: &'d mut Diags, config_id: Option<String>) -> Reader<'d> {
        Reader {
            diags,
            config_id,
            defs: HashMap::new(),
            lines: Vec::new(),
            files: Vec::new(),
            include_depth: 0,
            lines_processed: 0,
            files_read: 0,
            bytes_read: 0,
        }
    }

    /// The token lines read, in order, and the files they came from.
    pub fn finish(self) -> (Vec<Vec<Token>>, Vec<Arc<str>>) {
        (self.lines, self.files)
    }

    /// Reads a file from disk; `name` is how diagnostics call it.
    pub fn read_file(&mut self, path: &Path, name: &str, reported_at: Option<&Pos>) {
        let at = reported_at
            .cloned()
            .unwrap_or_else(|| Pos::file_start(name));
        match self.load(path) {
            Ok(text) => self.read_text(name, &dir_of(path), &text),
            Err(why) => self
                .diags
                .error(&at, format!("cannot read '{name}': {why}")),
        }
    }

    /// Reads configuration text; `dir` resolves relative includes.
    pub fn read_text(&mut self, name: &str, dir: &Path, text: &str) {
        let file = FileCtx {
            name: Arc::from(name),
            dir: dir.to_path_buf(),
        };
        self.files.push(file.name.clone());
        let physical: Vec<&str> = text.split('\n').collect();
        let mut pending: Option<PendingDefinition> = None;
        let mut i = 0;
        while i < physical.len() {
            if self.lines_processed >= MAX_LINES {
                return;
            }
            let line = decomment(&physical_line(physical[i], i));
            i += 1;
            if let Some(def) = pending.as_mut() {
                if def.append(physical[i - 1], &line) {
                    self.finish_definition(pending.take());
                }
                continue;
            }
            let mut chars = line.chars;
            let mut continued = line.continued;
            if continued && starts_definition(&chars) {
                pending = self.definition_start(&chars);
                if pending.is_none() {
                    // A conditional that does not apply drops the whole definition.
                    while continued && i < physical.len() {
                        continued = decomment(&physical_line(physical[i], i)).continued;
                        i += 1;
                    }
                }
                continue;
            }
            // A trailing '\' joins the next line (keepalived only allows this
            // in definitions; XVS allows it everywhere).
            while continued && i < physical.len() {
                let next = decomment(&physical_line(physical[i], i));
                i += 1;
                if !chars.is_empty() && !next.chars.is_empty() {
                    chars.push(LChar {
                        ch: ' ',
                        ..chars[chars.len() - 1]
                    });
                }
                chars.extend(next.chars);
                continued = next.continued;
            }
            self.logical_line(&file, chars, 0);
        }
        self.finish_definition(pending);
    }

    /// Starts a multi-line definition `$NAME=first \`; returns it unless the
    /// line is conditional and does not apply.
    fn definition_start(&self, chars: &[LChar]) -> Option<PendingDefinition> {
        let chars = self.apply_conditional(chars)?;
        let (name, value) = parse_definition(&chars)?;
        Some(PendingDefinition { name, value })
    }

    fn finish_definition(&mut self, pending: Option<PendingDefinition>) {
        if let Some(def) = pending {
            self.defs.insert(def.name, def.value);
        }
    }

    /// One logical line: conditional, definition, expansion, include, tokens.
    fn logical_line(&mut self, file: &FileCtx, chars: Vec<LChar>, depth: usize) {
        let chars = trim(&chars).to_vec();
        if chars.is_empty() {
            return;
        }
        self.lines_processed += 1;
        if self.lines_processed >= MAX_LINES {
            if self.lines_processed == MAX_LINES {
                let pos = pos_of(file, &chars);
                self.diags.error(
                    &pos,
                    "configuration too long (after expansion); stopped reading",
                );
            }
            return;
        }
        let Some(chars) = self.apply_conditional(&chars) else {
            return;
        };
        if let Some((name, value)) = parse_definition(&chars) {
            self.defs.insert(name, value);
            return;
        }
        match self.expand(file, &chars) {
            Expansion::Unchanged => self.final_line(file, &chars),
            Expansion::Failed => {}
            Expansion::Lines(lines) if depth < MAX_EXPANSION_PASSES => {
                for line in lines {
                    self.logical_line(file, line, depth + 1);
                }
            }
            Expansion::Lines(_) => {
                let pos = pos_of(file, &chars);
                self.diags.error(
                    &pos,
                    "variable expansion does not terminate (recursive definition?)",
                );
            }
        }
    }

    /// A line after all substitutions: an include, or tokens for the parser.
    fn final_line(&mut self, file: &FileCtx, chars: &[LChar]) {
        let pos = pos_of(file, chars);
        if chars[0].ch == '~' {
            let what = text_of(&chars[..chars.len().min(4)]);
            self.diags.not_implemented(
                &pos,
                format!(
                    "'{what}' blocks are valid keepalived syntax but not implemented by XVS yet"
                ),
            );
            return;
        }
        if let Some((kind, pattern)) = include::parse_include(chars) {
            self.include(file, &pos, kind, &pattern);
            return;
        }
        let tokens = lexer::tokenize(&file.name, chars, self.diags);
        if !tokens.is_empty() {
            self.lines.push(tokens);
        }
    }

    /// `@ID rest` keeps `rest` only when ID is the config id; `@^ID rest`
    /// only when it is not. Returns the line to keep, if any.
    fn apply_conditional(&self, chars: &[LChar]) -> Option<Vec<LChar>> {
        if chars.first().map(|c| c.ch) != Some('@') {
            return Some(chars.to_vec());
        }
        let negated = chars.get(1).map(|c| c.ch) == Some('^');
        let id_start = if negated { 2 } else { 1 };
        // Like keepalived, a conditional with nothing after the id is dropped.
        let id_end = id_start + chars[id_start..].iter().position(|c| is_blank(c.ch))?;
        let id = text_of(&chars[id_start..id_end]);
        let matches = self.config_id.as_deref() == Some(id.as_str());
        (matches != negated).then(|| trim(&chars[id_end..]).to_vec())
    }

    /// Replaces `$NAME` (followed by a blank, ',' ')' or the end) and
    /// `${NAME}` by their values, once over the line. Multi-line values
    /// split the line.
    fn expand(&mut self, file: &FileCtx, chars: &[LChar]) -> Expansion {
        if !chars.iter().any(|c| c.ch == '$') {
            return Expansion::Unchanged;
        }
        let mut out: Vec<LChar> = Vec::with_capacity(chars.len());
        let mut changed = false;
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c.ch == '$' {
                if let Some((value, used)) = self.reference_at(file, &chars[i + 1..]) {
                    out.extend(value.chars().map(|ch| LChar { ch, ..c }));
                    i += 1 + used;
                    changed = true;
                    continue;
                }
            }
            out.push(c);
            i += 1;
        }
        if !changed {
            return Expansion::Unchanged;
        }
        if out.len() > MAX_LINE_CHARS {
            let pos = pos_of(file, chars);
            self.diags
                .error(&pos, "line too long after variable expansion");
            return Expansion::Failed;
        }
        Expansion::Lines(out.split(|c| c.ch == '\n').map(<[LChar]>::to_vec).collect())
    }

    /// The value of the reference starting just after a `$`, and how many
    /// characters the reference used; None if it is not a defined name.
    fn reference_at(&mut self, file: &FileCtx, rest: &[LChar]) -> Option<(String, usize)> {
        let braced = rest.first()?.ch == '{';
        let name_start = usize::from(braced);
        let name_len = rest[name_start..]
            .iter()
            .take_while(|c| c.ch.is_ascii_alphanumeric() || c.ch == '_')
            .count();
        let first = rest.get(name_start)?.ch;
        if name_len == 0 || first.is_ascii_digit() {
            return None;
        }
        let after = rest.get(name_start + name_len).map(|c| c.ch);
        let used = if braced {
            if after != Some('}') {
                return None;
            }
            name_len + 2
        } else {
            if !matches!(after, None | Some(' ' | '\t' | ',' | ')')) {
                return None;
            }
            name_len
        };
        let name = text_of(&rest[name_start..name_start + name_len]);
        let value = self.value_of(file, &name, &rest[0])?;
        Some((value, used))
    }

    fn value_of(&mut self, file: &FileCtx, name: &str, at: &LChar) -> Option<String> {
        if let Some(value) = self.defs.get(name) {
            return Some(value.clone());
        }
        match name {
            "_PWD" => Some(file.dir.display().to_string()),
            "_INSTANCE" => Some(self.config_id.clone().unwrap_or_default()),
            "_HASH" => Some("#".into()),
            "_BANG" => Some("!".into()),
            "_RANDOM" => {
                let pos = Pos::new(&file.name, at.line, at.col);
                self.diags.not_implemented(
                    &pos,
                    "${_RANDOM} is valid keepalived syntax but not implemented by XVS yet",
                );
                None
            }
            _ => None,
        }
    }

    fn include(&mut self, file: &FileCtx, pos: &Pos, kind: include::IncludeKind, pattern: &str) {
        if self.include_depth >= MAX_INCLUDE_DEPTH {
            self.diags.error(
                pos,
                format!("includes nested deeper than {MAX_INCLUDE_DEPTH} (an include cycle?)"),
            );
            return;
        }
        let matches = include::resolve(&file.dir, pattern, kind, pos, self.diags);
        self.include_depth += 1;
        for path in matches {
            let name = path.display().to_string();
            self.read_file(&path, &name, Some(pos));
        }
        self.include_depth -= 1;
    }

    /// Reads a regular file within the size and count limits.
    fn load(&mut self, path: &Path) -> Result<String, String> {
        if self.files_read >= MAX_FILES {
            return Err(format!("more than {MAX_FILES} configuration files"));
        }
        let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
        if !meta.is_file() {
            return Err("not a regular file".into());
        }
        let budget = MAX_FILE_BYTES.min(MAX_TOTAL_BYTES.saturating_sub(self.bytes_read));
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(budget + 1).read_to_end(&mut bytes))
            .map_err(|e| e.to_string())?;
        if bytes.len() as u64 > budget {
            return Err("file too large".into());
        }
        self.files_read += 1;
        self.bytes_read += bytes.len() as u64;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

enum Expansion {
    Unchanged,
    Failed,
    Lines(Vec<Vec<LChar>>),
}

fn physical_line(raw: &str, index: usize) -> Vec<LChar> {
    located(raw.strip_suffix('\r').unwrap_or(raw), index as u32 + 1)
}

fn dir_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The directory relative includes of text called `name` resolve against.
pub(crate) fn dir_of_name(name: &str) -> PathBuf {
    dir_of(Path::new(name))
}

fn pos_of(file: &FileCtx, chars: &[LChar]) -> Pos {
    let first = chars.first().map_or((1, 1), |c| (c.line, c.col));
    Pos::new(&file.name, first.0, first.1)
}

/// Does the line (possibly after an `@id` prefix) define a parameter?
fn starts_definition(chars: &[LChar]) -> bool {
    let body = match chars.first().map(|c| c.ch) {
        Some('@') => match chars.iter().position(|c| is_blank(c.ch)) {
            Some(end) => trim(&chars[end..]),
            None => return false,
        },
        _ => chars,
    };
    parse_definition(body).is_some()
}

/// `$NAME=VALUE` (no blank before '='): the name and the trimmed value.
fn parse_definition(chars: &[LChar]) -> Option<(String, String)> {
    if chars.first()?.ch != '$' {
        return None;
    }
    let first = chars.get(1)?.ch;
    if !(first.is_ascii_alphabetic() || first == '_') {
        return None;
    }
    let name_len = chars[1..]
        .iter()
        .take_while(|c| c.ch.is_ascii_alphanumeric() || c.ch == '_')
        .count();
    if chars.get(1 + name_len)?.ch != '=' {
        return None;
    }
    let name = text_of(&chars[1..1 + name_len]);
    let value = text_of(trim(&chars[2 + name_len..]));
    Some((name, value))
}
