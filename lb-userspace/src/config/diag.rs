//! Diagnostics in the one format every tool understands:
//! `FILE:LINE:COL: error|warning: message`.

use std::{fmt, sync::Arc};

/// Where a token starts: the file as given (or as resolved for includes),
/// and the 1-based line and column (in characters).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pos {
    pub file: Arc<str>,
    pub line: u32,
    pub col: u32,
}

impl Pos {
    pub fn new(file: &Arc<str>, line: u32, col: u32) -> Pos {
        Pos {
            file: file.clone(),
            line,
            col,
        }
    }

    /// The start of a file, for problems with the file as a whole.
    pub fn file_start(file: &str) -> Pos {
        Pos {
            file: Arc::from(file),
            line: 1,
            col: 1,
        }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

/// A value together with where it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spanned<T> {
    pub value: T,
    pub pos: Pos,
}

impl<T> Spanned<T> {
    pub fn new(value: T, pos: Pos) -> Spanned<T> {
        Spanned { value, pos }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Warning,
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub pos: Pos,
    pub message: String,
}

impl Diagnostic {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.pos, self.severity, self.message)
    }
}

/// True if any diagnostic is an error (the configuration must not be used).
pub fn has_errors(diags: &[Diagnostic]) -> bool {
    diags.iter().any(Diagnostic::is_error)
}

/// The collector every stage reports into.
#[derive(Debug, Default)]
pub(crate) struct Diags {
    list: Vec<Diagnostic>,
    /// Lenient mode: "valid keepalived syntax, not implemented" becomes a
    /// warning instead of an error.
    lenient: bool,
}

impl Diags {
    pub fn new(lenient: bool) -> Diags {
        Diags {
            list: Vec::new(),
            lenient,
        }
    }

    pub fn error(&mut self, pos: &Pos, message: impl Into<String>) {
        self.push(Severity::Error, pos, message.into());
    }

    pub fn warning(&mut self, pos: &Pos, message: impl Into<String>) {
        self.push(Severity::Warning, pos, message.into());
    }

    /// Something keepalived accepts but XVS cannot do yet.
    pub fn not_implemented(&mut self, pos: &Pos, message: impl Into<String>) {
        let message = message.into();
        if self.lenient {
            self.push(
                Severity::Warning,
                pos,
                format!("{message}; ignored (lenient mode)"),
            );
        } else {
            self.push(Severity::Error, pos, message);
        }
    }

    /// A keyword keepalived knows but XVS does not implement yet.
    pub fn keyword_not_implemented(&mut self, pos: &Pos, keyword: &str) {
        self.not_implemented(
            pos,
            format!(
                "keyword '{keyword}' is valid keepalived syntax but not implemented by XVS yet"
            ),
        );
    }

    pub fn has_errors(&self) -> bool {
        has_errors(&self.list)
    }

    /// Orders diagnostics by file (in reading order), line and column,
    /// keeping the order of those at one position.
    pub fn sort(&mut self, files: &[Arc<str>]) {
        let file_index = |p: &Pos| {
            files
                .iter()
                .position(|f| *f == p.file)
                .unwrap_or(files.len())
        };
        self.list
            .sort_by_key(|d| (file_index(&d.pos), d.pos.line, d.pos.col));
    }

    pub fn into_vec(self) -> Vec<Diagnostic> {
        self.list
    }

    fn push(&mut self, severity: Severity, pos: &Pos, message: String) {
        self.list.push(Diagnostic {
            severity,
            pos: pos.clone(),
            message,
        });
    }
}
