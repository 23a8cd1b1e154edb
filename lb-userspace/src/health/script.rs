//! Running a MISC_CHECK script the way keepalived prepares one
//! (lib/notify.c, lib/parser.c): the command line split into words with
//! its quoting and escapes, the user it runs as, and the security checks
//! done when the configuration is loaded.

use std::{
    ffi::{CString, OsString},
    os::unix::{ffi::OsStringExt, fs::MetadataExt},
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};

use crate::config::model::{GlobalDefs, ScriptUser};

/// keepalived's alloc_strvec_quoted_escaped: words split on white space,
/// '…' and "…" group, and backslash escapes (\n, \t, \xHH, \0oo, \cX, …)
/// work inside and outside quotes.
pub fn split_words(line: &str) -> Result<Vec<OsString>> {
    let mut words = Vec::new();
    let mut bytes = line.bytes().peekable();
    loop {
        while bytes.next_if(|b| b.is_ascii_whitespace()).is_some() {}
        if bytes.peek().is_none() {
            return Ok(words);
        }
        let mut word = Vec::new();
        let mut quote = None;
        while let Some(b) = bytes.next() {
            match (b, quote) {
                (b'\\', _) => word.push(escape(&mut bytes).context(format!("in '{line}'"))?),
                (q @ (b'"' | b'\''), None) => quote = Some(q),
                (q, Some(open)) if q == open => quote = None,
                (b, None) if b.is_ascii_whitespace() => break,
                (b, _) => word.push(b),
            }
        }
        if let Some(q) = quote {
            bail!("missing terminating {} in '{line}'", q as char);
        }
        words.push(OsString::from_vec(word));
    }
}

fn escape(bytes: &mut std::iter::Peekable<std::str::Bytes<'_>>) -> Result<u8> {
    let Some(c) = bytes.next() else {
        bail!("missing escaped character at the end");
    };
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    Ok(match c {
        b'x' if bytes.peek().copied().and_then(hex).is_some() => {
            let mut v = 0u8;
            while let Some(d) = bytes.peek().copied().and_then(hex) {
                bytes.next();
                v = v.wrapping_shl(4) | d;
            }
            v
        }
        b'c' if bytes.peek().is_some() => bytes.next().unwrap_or(0) & 0x1f,
        b'0'..=b'7' => {
            let mut v = c - b'0';
            for _ in 0..2 {
                match bytes.next_if(|b| (b'0'..=b'7').contains(b)) {
                    Some(d) => v = v.wrapping_shl(3).wrapping_add(d - b'0'),
                    None => break,
                }
            }
            v
        }
        b'a' => 0x07,
        b'b' => 0x08,
        b'E' => 0x1b,
        b'f' => 0x0c,
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'v' => 0x0b,
        other => other,
    })
}

/// A user and group id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
}

impl Identity {
    /// Who this process runs as.
    pub fn current() -> Identity {
        // SAFETY: no preconditions.
        unsafe {
            Identity {
                uid: libc::geteuid(),
                gid: libc::getegid(),
            }
        }
    }

    fn is_root(self) -> bool {
        self.uid == 0 || self.gid == 0
    }
}

/// keepalived's choice: the checker's `user`, else global_defs
/// `script_user`, else `keepalived_script` if that user exists, else
/// ourselves (refused with enable_script_security: notify.c
/// get_default_script_user).
pub fn script_identity(global: &GlobalDefs, user: Option<&ScriptUser>) -> Result<Identity> {
    if let Some(u) = user.or(global.script_user.as_ref()) {
        return lookup(&u.user, u.group.as_deref())?
            .with_context(|| format!("script user '{}' does not exist", u.user));
    }
    match lookup("keepalived_script", None)? {
        Some(id) => Ok(id),
        None if global.enable_script_security => {
            bail!("enable_script_security needs a script_user, or a keepalived_script user")
        }
        None => Ok(Identity::current()),
    }
}

/// The user's uid and primary group (or `group`); None if no such user.
pub fn lookup(user: &str, group: Option<&str>) -> Result<Option<Identity>> {
    let name = CString::new(user).context("user name")?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: zeroed passwd is a valid out-parameter.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found = std::ptr::null_mut();
    // SAFETY: valid pointers and buffer length.
    let rc = unsafe {
        libc::getpwnam_r(
            name.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    if rc != 0 {
        bail!(
            "cannot look user '{user}' up: {}",
            std::io::Error::from_raw_os_error(rc)
        );
    }
    if found.is_null() {
        return Ok(None);
    }
    let gid = match group {
        Some(g) => group_id(g)?,
        None => pwd.pw_gid,
    };
    Ok(Some(Identity {
        uid: pwd.pw_uid,
        gid,
    }))
}

fn group_id(group: &str) -> Result<u32> {
    let name = CString::new(group).context("group name")?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: zeroed group is a valid out-parameter.
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut found = std::ptr::null_mut();
    // SAFETY: valid pointers and buffer length.
    let rc = unsafe {
        libc::getgrnam_r(
            name.as_ptr(),
            &mut grp,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    if rc != 0 || found.is_null() {
        bail!("script group '{group}' does not exist");
    }
    Ok(grp.gr_gid)
}

/// The program to execute: `argv0` itself or found in PATH (as
/// keepalived's find_path). It must be a file `id` can execute.
pub fn resolve_program(argv0: &Path, id: Identity) -> Result<PathBuf> {
    let path = if argv0.as_os_str().as_encoded_bytes().contains(&b'/') {
        argv0.to_path_buf()
    } else {
        let search = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
        std::env::split_paths(&search)
            .map(|dir| dir.join(argv0))
            .find(|p| executable(p, id))
            .with_context(|| format!("script '{}' not found in PATH", argv0.display()))?
    };
    let meta = std::fs::metadata(&path).with_context(|| format!("script '{}'", path.display()))?;
    if !meta.is_file() || !executable(&path, id) {
        bail!(
            "script '{}' is not executable by uid {} gid {}",
            path.display(),
            id.uid,
            id.gid
        );
    }
    Ok(path)
}

fn executable(path: &Path, id: Identity) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    let mode = meta.mode();
    meta.is_file()
        && if id.uid == 0 {
            mode & 0o111 != 0
        } else if meta.uid() == id.uid {
            mode & 0o100 != 0
        } else if meta.gid() == id.gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        }
}

/// keepalived's check_security, for a script run as root (or setuid
/// root): no part of its path may be writable by anyone but root. The
/// problem is an error with enable_script_security, a warning otherwise.
pub fn check_security(program: &Path, id: Identity, enforce: bool) -> Result<()> {
    let meta = std::fs::metadata(program)?;
    let setuid_root = meta.uid() == 0 && meta.mode() & 0o4100 == 0o4100;
    let setgid_root = meta.gid() == 0 && meta.mode() & 0o2010 == 0o2010;
    if !(id.is_root() || setuid_root || setgid_root) {
        return Ok(());
    }
    let mut paths = vec![program.to_path_buf()];
    if let Ok(real) = program.canonicalize() {
        if real != program {
            paths.push(real);
        }
    }
    for path in &paths {
        if let Some(unsafe_part) = writable_part(path) {
            let msg = format!(
                "unsafe permissions for script '{}': '{}' is writable by non-root users",
                program.display(),
                unsafe_part.display()
            );
            if enforce {
                bail!(msg);
            }
            tracing::warn!("{msg}");
        }
    }
    Ok(())
}

/// The first component of `path` (from /) not owned by root, or writable
/// by group (non-root) or world (directories with the sticky bit are fine).
fn writable_part(path: &Path) -> Option<PathBuf> {
    let mut prefix = PathBuf::new();
    for part in path.components() {
        prefix.push(part);
        let Ok(meta) = std::fs::symlink_metadata(&prefix) else {
            return Some(prefix);
        };
        let mode = meta.mode();
        let sticky_dir = meta.is_dir() && mode & 0o1000 != 0;
        let writable = (meta.gid() != 0 && mode & 0o020 != 0) || mode & 0o002 != 0;
        if meta.uid() != 0 || (!sticky_dir && !meta.file_type().is_symlink() && writable) {
            return Some(prefix);
        }
    }
    None
}

/// Whether the kernel can execute the file itself: a #! script or an ELF
/// binary. keepalived runs other files through the shell (system()).
pub fn directly_executable(program: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(program)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|_| magic.starts_with(b"#!") || magic == *b"\x7fELF")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        split_words(line)
            .unwrap()
            .into_iter()
            .map(|w| w.into_string().unwrap())
            .collect()
    }

    #[test]
    fn splits_as_keepalived() {
        assert_eq!(words("/bin/check  a b"), ["/bin/check", "a", "b"]);
        assert_eq!(words(r#"/x "a b" 'c d'e"#), ["/x", "a b", "c de"]);
        assert_eq!(words(r"/x a\ b \x41\101\n"), ["/x", "a b", "AA\n"]);
        assert!(split_words("/x 'open").is_err());
        assert!(words("   ").is_empty());
    }
}
