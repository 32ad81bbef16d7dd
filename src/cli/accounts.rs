//! The account options of `peer` and `get`: `--user U --password-file F` (log in at start)
//! and `get NAME --group G` (a one-shot group download).
//!
//! The password is read from a file (never from the command line, where `ps` would show
//! it): its first line, without the line end. It is handed to the login and dropped; it is
//! never printed, not even in an error.

use std::fs;
use std::path::Path;

use getopts::{Matches, Options};

use super::{Fail, usage};
use crate::peer::Peer;

/// Add `--user`, `--password-file` (both commands) and `--group` (`get` only).
pub(super) fn options(opts: &mut Options, group: bool) {
    opts.optopt(
        "",
        "user",
        "log in as this user at start (with --password-file)",
        "USER",
    );
    opts.optopt(
        "",
        "password-file",
        "a file whose first line is the user's password (keep it private: chmod 600)",
        "FILE",
    );
    if group {
        opts.optopt(
            "",
            "group",
            "download NAME from this group (needs --user and --password-file)",
            "GROUP",
        );
        opts.optopt(
            "",
            "out",
            "with --group: also put the file here (a folder or a path; default: only in DIR/.groups/GROUP/, where it is served to members only)",
            "PATH",
        );
    }
}

/// The password in `path`: its first line, its line end stripped. A missing, unreadable or
/// empty file is an error naming the file and the fix; the error never quotes the contents.
pub(super) fn read_password(path: &Path) -> Result<String, Fail> {
    let bytes = fs::read(path).map_err(|e| {
        usage(format!(
            "cannot read the password file {}: {e}; give --password-file a readable file whose first line is the password",
            path.display()
        ))
    })?;
    let text = String::from_utf8(bytes).map_err(|_| {
        usage(format!(
            "the password file {} is not UTF-8 text; write the password as one line of text",
            path.display()
        ))
    })?;
    let first = text.lines().next().unwrap_or_default();
    let password = first.strip_suffix('\r').unwrap_or(first);
    if password.is_empty() {
        return Err(usage(format!(
            "the password file {} is empty (its first line is the password); write the password in it",
            path.display()
        )));
    }
    Ok(password.to_string())
}

/// `--user` and `--password-file`, both or neither; with `--group` both are required.
/// Returns the user and password, checked before anything starts.
pub(super) fn credentials(m: &Matches) -> Result<Option<(String, String)>, Fail> {
    let group = if m.opt_defined("group") {
        m.opt_str("group")
    } else {
        None
    };
    match (m.opt_str("user"), m.opt_str("password-file")) {
        (Some(user), Some(file)) => {
            if user.is_empty() {
                return Err(usage("--user needs a user name"));
            }
            Ok(Some((user, read_password(Path::new(&file))?)))
        }
        (None, None) if group.is_none() => Ok(None),
        (None, None) => Err(usage(
            "--group needs --user USER and --password-file FILE: group files are for logged-in members",
        )),
        (Some(_), None) => Err(usage(
            "--user needs --password-file FILE (the password's file; it is never taken on the command line)",
        )),
        (None, Some(_)) => Err(usage("--password-file needs --user USER")),
    }
}

/// Log the started peer in; a refusal ends the command (exit 1) with the tracker's reason.
pub(super) fn login(peer: &Peer, user: &str, password: &str) -> Result<(), Fail> {
    let said = peer
        .login(user, password)
        .map_err(|e| Fail(format!("cannot log in as {user}: {e}"), 1))?;
    println!("{said}");
    Ok(())
}

/// `get NAME --group G [--out PATH]`: log in, download into the group's folder (and a copy
/// at `PATH`), say where it is. Without `--out` the file stays in `DIR/.groups/G/`: put in
/// `DIR` itself, a later `peer --dir DIR` would share it with everyone.
pub(super) fn group_get(
    peer: &Peer,
    (user, password): (&str, &str),
    group: &str,
    name: &str,
    out: Option<&Path>,
) -> Result<(), Fail> {
    login(peer, user, password)?;
    let kept = peer
        .groups()
        .store(group)
        .map_err(|e| Fail(format!("group {group}: {e}"), 1))?
        .path(name);
    let dir = out.unwrap_or(&kept);
    let said = peer
        .download_group(group, name, dir)
        .map_err(|e| Fail(format!("{name} of {group}: {e}"), 1))?;
    println!("{said}");
    // Say goodbye so the tracker frees the session at once (one live session per user).
    let _ = peer.logout();
    Ok(())
}
