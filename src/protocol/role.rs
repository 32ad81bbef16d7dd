//! Which server a line is for (`Role`), the verb check that makes the other server's verbs
//! `unknown-verb`, and the redaction every `--trace` line goes through.

use super::{ErrCode, ProtoError, Request, accounts, parse_request};

/// Which of the two servers a line is sent to. Each speaks its own verbs (plus the shared
/// `PING HELP BYE`), and a verb of the other one is `unknown-verb` whatever its arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Tracker,
    Peer,
}

impl Role {
    /// The verbs this server answers, in the order `HELP` lists them (`QUIT`, the same verb as
    /// `BYE`, is not listed).
    pub fn verbs(self) -> &'static [&'static str] {
        match self {
            Role::Tracker => &[
                "REGISTER",
                "UPLOAD",
                "PARTIAL",
                "REMOVE",
                "WHOHAS",
                "INFO",
                "LIST",
                "STANDBY",
                "SALT",
                "CREATE-USER",
                "LOGIN",
                "PROOF",
                "LOGOUT",
                "CREATE-GROUP",
                "JOIN",
                "LEAVE",
                "REQUESTS",
                "ACCEPT",
                "GROUPS",
                "FILES",
                "GUPLOAD",
                "GREMOVE",
                "GWHOHAS",
                "GINFO",
                "GRANT",
                "VOUCH",
                "PING",
                "HELP",
                "BYE",
            ],
            Role::Peer => &[
                "HELLO", "GET", "PIECE", "HAVE", "HASHES", "TICKET", "PING", "HELP", "BYE",
            ],
        }
    }

    /// `tracker` or `peer`, as messages name it.
    pub fn name(self) -> &'static str {
        match self {
            Role::Tracker => "tracker",
            Role::Peer => "peer",
        }
    }

    fn other(self) -> Role {
        match self {
            Role::Tracker => Role::Peer,
            Role::Peer => Role::Tracker,
        }
    }

    /// The `HELP` text: `tracker verbs: REGISTER ... BYE`.
    pub fn help(self) -> String {
        format!("{} verbs: {}", self.name(), self.verbs().join(" "))
    }

    /// The error for `verb`, a verb of the other server, sent to this one.
    pub fn foreign_verb(self, verb: &str) -> ProtoError {
        let article = match self {
            Role::Tracker => "the",
            Role::Peer => "a",
        };
        ProtoError::new(
            ErrCode::UnknownVerb,
            format!(
                "{verb} is a {} verb; this is {article} {} (try HELP)",
                self.other().name(),
                self.name()
            ),
        )
    }
}

/// Is the first word of `line` a verb of the other server? Then that is the error, before any
/// argument is looked at (`REGISTER abc` sent to a peer is `unknown-verb`, not `bad-request`).
/// Anything else (our verbs, unknown words, bad bytes) is left to `parse_request`.
pub fn check_verb(line: &[u8], role: Role) -> Result<(), ProtoError> {
    let first = line
        .split(|b| *b == b' ' || *b == b'\t' || *b == b'\r')
        .find(|w| !w.is_empty())
        .and_then(|w| std::str::from_utf8(w).ok());
    match first {
        Some(verb) if role.other().verbs().contains(&verb) && !role.verbs().contains(&verb) => {
            Err(role.foreign_verb(verb))
        }
        _ => Ok(()),
    }
}

/// Parse a request line sent to `role`'s server: `check_verb`, then `parse_request`.
pub fn parse_request_for(line: &[u8], role: Role) -> Result<Request, ProtoError> {
    check_verb(line, role)?;
    parse_request(line)
}

/// Request fields that must never be printed, by verb: the word positions (after the verb)
/// that `redacted` replaces. The account verbs bring them (keys, SCRAM proofs and signatures,
/// ticket MACs: `protocol/accounts.rs`); every `--trace` line, in either direction, is printed
/// through `redacted`.
const SECRET_ARGS: &[(&str, &[usize])] = accounts::SECRETS;

/// What a trace may print of `line`: the line, with every secret argument (see
/// `SECRET_ARGS`) replaced by `<redacted>`. A reply `ACK <words>` is redacted as if its
/// words were a request (the tracker's ticket and login replies start with a secret's verb).
pub fn redacted(line: &str) -> std::borrow::Cow<'_, str> {
    if let Some(rest) = line.strip_prefix("ACK ")
        && let std::borrow::Cow::Owned(clean) = redact_with(rest, SECRET_ARGS)
    {
        return format!("ACK {clean}").into();
    }
    redact_with(line, SECRET_ARGS)
}

pub(super) fn redact_with<'a>(
    line: &'a str,
    secrets: &[(&str, &[usize])],
) -> std::borrow::Cow<'a, str> {
    let mut words = line.split_ascii_whitespace();
    let positions = words
        .next()
        .and_then(|verb| secrets.iter().find(|(v, _)| *v == verb))
        .map(|(_, p)| *p);
    let Some(positions) = positions else {
        return line.into();
    };
    let args = words.enumerate().map(|(i, w)| {
        if positions.contains(&i) {
            "<redacted>"
        } else {
            w
        }
    });
    let verb = line.split_ascii_whitespace().next().unwrap_or_default();
    std::iter::once(verb)
        .chain(args)
        .collect::<Vec<_>>()
        .join(" ")
        .into()
}
