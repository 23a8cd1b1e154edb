//! `xvsadm -R`: commands in `-S` syntax, one per line, as ipvsadm reads
//! them from stdin (`restore_table`, ipvsadm.c:972, and `config_stream_read`,
//! config_stream.c).
//!
//! Each line is split on blanks, a word `ipvsadm` anywhere is dropped (so
//! saved lines may keep the program name), and what is left is parsed like a
//! command line. Two choices differ from ipvsadm: the whole input is parsed
//! before anything is applied, so a bad line changes nothing (ipvsadm applies
//! the lines before it), and a line whose first word starts with `#` is a
//! comment (ipvsadm leaves comment stripping to the ipvsadm-restore script).
//! Only commands that change the table may appear.

use thiserror::Error;

use super::{
    args::{parse_ipvsadm, ArgError, Command},
    resolve::Resolver,
};

/// A line of restore input that could not be used.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("line {line}: {error}")]
pub struct RestoreError {
    /// Counted from 1.
    pub line: usize,
    pub error: ArgError,
}

/// Every command of the input, in order.
pub fn parse_restore(input: &str, names: &dyn Resolver) -> Result<Vec<Command>, RestoreError> {
    let mut commands = Vec::new();
    for (index, line) in input.lines().enumerate() {
        let words = restore_words(line);
        if words.is_empty() || words[0].starts_with('#') {
            continue;
        }
        let command = parse_restore_line(&words, names).map_err(|error| RestoreError {
            line: index + 1,
            error,
        })?;
        commands.push(command);
    }
    Ok(commands)
}

/// The words of a line (`config_stream_read` splits on space, tab and CR,
/// and skips the word "ipvsadm"; xvsadm also skips "xvsadm").
fn restore_words(line: &str) -> Vec<String> {
    line.split([' ', '\t', '\r'])
        .filter(|w| !w.is_empty() && *w != "ipvsadm" && *w != "xvsadm")
        .map(str::to_string)
        .collect()
}

fn parse_restore_line(words: &[String], names: &dyn Resolver) -> Result<Command, ArgError> {
    let parsed = parse_ipvsadm(words, names)?;
    if parsed.json || parsed.socket.is_some() {
        return Err(ArgError::Invalid(
            "--json and --socket belong on the command line, not in restore input".into(),
        ));
    }
    match parsed.command {
        Command::AddService(_)
        | Command::EditService(_)
        | Command::DeleteService(_)
        | Command::AddServer(_)
        | Command::EditServer(_)
        | Command::DeleteServer { .. }
        | Command::Clear
        | Command::Zero(_)
        | Command::SetTimeouts(_) => Ok(parsed.command),
        _ => Err(ArgError::Invalid(
            "only -A, -E, -D, -a, -e, -d, -C, -Z and --set may appear in restore input".into(),
        )),
    }
}
