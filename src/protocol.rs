//! The wire protocol: every message as a Rust value, `parse` from a line, `Display` back to one.
//!
//! This module owns the *format* and nothing else: it never touches a socket, a file or a clock,
//! so every rule in PROTOCOL.md can be unit-tested with plain strings. `conn.rs` moves the lines;
//! the tracker and the peer decide what they mean.
//!
//! A message is one line of printable ASCII: a verb in capitals, then arguments separated by
//! spaces. Replies start with a status word (`ACK`, `PEERS`, `FILE`, `BITFIELD`, `DATA`, `PONG`,
//! `ERR`). `DATA <len>` is followed by exactly `len` raw bytes, which is how file contents travel.

use std::fmt;
use std::str::FromStr;

pub use crate::sha1::Digest;

mod accounts;
pub use accounts::AccountRequest;

/// The longest request line a server accepts, not counting its `\n`. Longer lines get
/// `ERR too-long`.
pub const MAX_LINE: usize = 4096;
/// The longest reply line a client accepts (a `BITFIELD` of a large file is one long line).
pub const MAX_REPLY_LINE: usize = 1 << 20;
/// Longest file name, in bytes.
pub const MAX_NAME: usize = 255;
/// Most pieces a file may have (bounds bitfields and hash lists): 262,144, so a torrent of
/// 4 GiB in 32 KiB pieces (131,072) travels, a `BITFIELD` line stays under `MAX_REPLY_LINE`
/// and a `HASHES` list under 11 MB. The tracker keeps no per-piece state, so its memory does
/// not grow with it.
pub const MAX_PIECES: u64 = 1 << 18;
/// Smallest and largest piece size a holder may announce.
pub const MIN_PIECE: u32 = 1 << 10;
pub const MAX_PIECE: u32 = 1 << 26;

/// What a file *is*, as fixed by the first holder to announce it: the line `FILE ...`.
///
/// `root` is the SHA-1 of the file's piece-hash list (the text `HASHES` returns), so a short
/// line on the tracker vouches for every piece hash a downloader later fetches from a peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    pub name: String,
    pub size: u64,
    pub piece_size: u32,
    pub sha1: Digest,
    pub root: Digest,
}

impl Meta {
    /// Number of pieces (an empty file has none).
    pub fn pieces(&self) -> u32 {
        self.size.div_ceil(self.piece_size as u64) as u32
    }

    /// Byte offset and length of piece `index`; the last piece may be shorter.
    pub fn piece_range(&self, index: u32) -> (u64, u64) {
        let start = index as u64 * self.piece_size as u64;
        let len = (self.size - start.min(self.size)).min(self.piece_size as u64);
        (start, len)
    }

    /// True when size, piece size, hashes all agree (the name is not compared).
    pub fn same_content(&self, other: &Meta) -> bool {
        self.size == other.size
            && self.piece_size == other.piece_size
            && self.sha1 == other.sha1
            && self.root == other.root
    }

    fn check(&self) -> Result<(), ProtoError> {
        if !self.piece_size.is_power_of_two() || !(MIN_PIECE..=MAX_PIECE).contains(&self.piece_size)
        {
            return Err(ProtoError::bad(format!(
                "piece size {} must be a power of two from {MIN_PIECE} to {MAX_PIECE}",
                self.piece_size
            )));
        }
        if self.size.div_ceil(self.piece_size as u64) > MAX_PIECES {
            return Err(ProtoError::bad(format!(
                "{} bytes in pieces of {} is more than {MAX_PIECES} pieces",
                self.size, self.piece_size
            )));
        }
        Ok(())
    }
}

/// The piece size a holder picks for a file of `size` bytes: 256 KiB, doubled until the file
/// fits in 16384 pieces (so a bitfield line stays short).
pub fn default_piece_size(size: u64) -> u32 {
    let mut piece: u32 = 256 * 1024;
    while size.div_ceil(piece as u64) > 16384 && piece < MAX_PIECE {
        piece *= 2;
    }
    piece
}

/// A holder in a `PEERS` reply: `ip:port`, or `ip:port-partial` for a peer still downloading.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Holder {
    pub addr: String,
    pub partial: bool,
}

/// Every request of both servers. The tracker answers the first group, a peer the second.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// `REGISTER <port>`: "I serve on this port"; lives as long as this connection.
    Register { port: u16 },
    /// `REGISTER <port> <host>`: "I serve on this port; others reach me at `host`" (an IP
    /// address, never a name: the tracker resolves nothing). For a peer whose connection to
    /// the tracker comes from an address other hosts cannot use (loopback, `--advertise`).
    RegisterAs { port: u16, host: std::net::IpAddr },
    /// `UPLOAD <name> <size> <piece-size> <sha1> <root>`: "I hold all of this file".
    Upload(Meta),
    /// `PARTIAL <name>`: "I am downloading this file and serve the pieces I have".
    Partial { name: String },
    /// `REMOVE <name>`: "I no longer hold this file" (stop sharing).
    Remove { name: String },
    /// `WHOHAS <name>`: who holds the file, fully or partly.
    WhoHas { name: String },
    /// `INFO <name>`: what the file is (size, piece size, hashes).
    Info { name: String },
    /// `LIST`: the first page of the files the tracker knows, as a data block.
    List,
    /// `LIST <after>`: the next page, the files whose names sort after `after`.
    ListAfter { after: String },
    /// `HELLO <peer-id>`: a downloader tells a peer who it is (for upload accounting).
    Hello { id: String },
    /// `GET <name> [<offset> <length>]`: the whole file, or a byte range of it.
    Get {
        name: String,
        range: Option<(u64, u64)>,
    },
    /// `PIECE <name> <index>`: one piece.
    Piece { name: String, index: u32 },
    /// `HAVE <name>`: which pieces this peer holds, as a bitfield of 0/1.
    Have { name: String },
    /// `HASHES <name>`: the piece-hash list, one hex SHA-1 per line, as a data block.
    Hashes { name: String },
    /// `PING`: are you there (the heartbeat).
    Ping,
    /// `HELP`: the verbs this server knows.
    Help,
    /// `BYE`: close this connection (and, on the tracker, forget this peer).
    Bye,
    /// Accounts, groups, group files and tickets (`protocol/accounts.rs`).
    Account(AccountRequest),
}

/// Every reply line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `ACK <text>`: success.
    Ack(String),
    /// `PEERS <holder> ...`: the holders of a file (never empty: no holder is `ERR not-found`).
    Peers(Vec<Holder>),
    /// `FILE <name> <size> <piece-size> <sha1> <root>`.
    File(Meta),
    /// `BITFIELD <bits>`: one `0` or `1` per piece.
    Bitfield(String),
    /// `DATA <len>`: exactly `len` raw bytes follow.
    Data(u64),
    /// `PONG`.
    Pong,
    /// `ERR <code> <message>`.
    Err(ErrCode, String),
}

/// The error codes, defined once (PROTOCOL.md lists them with their meaning).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrCode {
    BadRequest,
    UnknownVerb,
    BadName,
    TooLong,
    NotFound,
    Conflict,
    NotRegistered,
    Range,
    Unavailable,
    Busy,
    Timeout,
    Internal,
    // Accounts and groups (issue 9).
    NotLoggedIn,
    LoggedIn,
    SlowDown,
    InvalidProof,
    BadLogin,
    Exists,
    NoUser,
    NoGroup,
    NotMember,
    NotAdmin,
    NoRequest,
    AdminStays,
    NotOwner,
    Storage,
    TicketForged,
    TicketExpired,
    TicketAddress,
    TicketFile,
    TicketGroup,
    TicketRevoked,
    /// A quota of the tracker: registrations per address, files per peer, per address or in
    /// all. The connection goes on.
    Limit,
    /// A tracker that follows its cluster's leader refuses what only the leader may do; the
    /// message starts with the leader's address (or `none`).
    NotLeader,
}

const ERR_CODES: [(ErrCode, &str); 34] = [
    (ErrCode::BadRequest, "bad-request"),
    (ErrCode::UnknownVerb, "unknown-verb"),
    (ErrCode::BadName, "bad-name"),
    (ErrCode::TooLong, "too-long"),
    (ErrCode::NotFound, "not-found"),
    (ErrCode::Conflict, "conflict"),
    (ErrCode::NotRegistered, "not-registered"),
    (ErrCode::Range, "range"),
    (ErrCode::Unavailable, "unavailable"),
    (ErrCode::Busy, "busy"),
    (ErrCode::Timeout, "timeout"),
    (ErrCode::Internal, "internal"),
    (ErrCode::NotLoggedIn, "not-logged-in"),
    (ErrCode::LoggedIn, "logged-in"),
    (ErrCode::SlowDown, "slow-down"),
    (ErrCode::InvalidProof, "invalid-proof"),
    (ErrCode::BadLogin, "bad-login"),
    (ErrCode::Exists, "exists"),
    (ErrCode::NoUser, "no-user"),
    (ErrCode::NoGroup, "no-group"),
    (ErrCode::NotMember, "not-member"),
    (ErrCode::NotAdmin, "not-admin"),
    (ErrCode::NoRequest, "no-request"),
    (ErrCode::AdminStays, "admin-stays"),
    (ErrCode::NotOwner, "not-owner"),
    (ErrCode::Storage, "storage"),
    (ErrCode::TicketForged, "ticket-forged"),
    (ErrCode::TicketExpired, "ticket-expired"),
    (ErrCode::TicketAddress, "ticket-address"),
    (ErrCode::TicketFile, "ticket-file"),
    (ErrCode::TicketGroup, "ticket-group"),
    (ErrCode::TicketRevoked, "ticket-revoked"),
    (ErrCode::Limit, "limit"),
    (ErrCode::NotLeader, "not-leader"),
];

impl ErrCode {
    pub fn as_str(self) -> &'static str {
        ERR_CODES
            .iter()
            .find(|(c, _)| *c == self)
            .map_or("internal", |(_, s)| s)
    }
}

impl FromStr for ErrCode {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        ERR_CODES
            .iter()
            .find(|(_, name)| *name == s)
            .map(|(c, _)| *c)
            .ok_or(())
    }
}

/// Why a line could not be parsed; becomes the `ERR` reply as it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtoError {
    pub code: ErrCode,
    pub message: String,
}

impl ProtoError {
    pub fn new(code: ErrCode, message: impl Into<String>) -> Self {
        ProtoError {
            code,
            message: message.into(),
        }
    }
    fn bad(message: impl Into<String>) -> Self {
        Self::new(ErrCode::BadRequest, message)
    }
    pub fn into_reply(self) -> Reply {
        Reply::Err(self.code, self.message)
    }
}

/// Is `name` a file name a peer may serve or write? One path component of printable ASCII,
/// no spaces, no `/` or `\`, not hidden (so never `.` or `..`, and never the peer's own
/// `.torrentphile` state folder).
pub fn check_name(name: &str) -> Result<(), ProtoError> {
    let why = if name.is_empty() {
        "is empty"
    } else if name.len() > MAX_NAME {
        "is longer than 255 bytes"
    } else if name.starts_with('.') {
        "starts with '.' (hidden names and '..' are not shared)"
    } else if name.contains(['/', '\\']) {
        "contains a path separator"
    } else if !name.bytes().all(|b| b.is_ascii_graphic()) {
        "has a space, a control character or a non-ASCII byte"
    } else {
        return Ok(());
    };
    Err(ProtoError::new(
        ErrCode::BadName,
        format!("name {:?} {why}", truncate(name, 64)),
    ))
}

fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Split a raw line (without its `\n`; a trailing `\r` is dropped) into words.
fn words(line: &[u8]) -> Result<Vec<&str>, ProtoError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = std::str::from_utf8(line)
        .ok()
        .filter(|t| {
            t.bytes()
                .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
        })
        .ok_or_else(|| ProtoError::bad("the line is not printable ASCII"))?;
    Ok(text.split_ascii_whitespace().collect())
}

fn number<T: FromStr>(word: &str, what: &str) -> Result<T, ProtoError> {
    // Digits only: Rust's parsers would also take a leading `+`.
    let digits = !word.is_empty() && word.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| word.parse().ok()).flatten().ok_or_else(|| {
        ProtoError::bad(format!(
            "{what} \"{}\" is not a valid number",
            truncate(word, 32).escape_default()
        ))
    })
}

fn digest(word: &str, what: &str) -> Result<Digest, ProtoError> {
    if word.len() != 40 {
        return Err(ProtoError::bad(format!("{what} must be 40 hex digits")));
    }
    word.parse()
        .map_err(|_| ProtoError::bad(format!("{what} must be 40 hex digits")))
}

fn name(word: &str) -> Result<String, ProtoError> {
    check_name(word)?;
    Ok(word.to_string())
}

/// Parse the words `<name> <size> <piece-size> <sha1> <root>` (UPLOAD and FILE share them).
fn meta(args: &[&str]) -> Result<Meta, ProtoError> {
    let meta = Meta {
        name: name(args[0])?,
        size: number(args[1], "size")?,
        piece_size: number(args[2], "piece size")?,
        sha1: digest(args[3], "sha1")?,
        root: digest(args[4], "root")?,
    };
    meta.check()?;
    Ok(meta)
}

/// Parse one request line (without its newline).
pub fn parse_request(line: &[u8]) -> Result<Request, ProtoError> {
    let words = words(line)?;
    let Some((&verb, args)) = words.split_first() else {
        return Err(ProtoError::bad("empty line; try HELP"));
    };
    let arity = |n: usize, syntax: &str| {
        if args.len() == n {
            Ok(())
        } else {
            Err(ProtoError::bad(format!("usage: {syntax}")))
        }
    };
    let request = match verb {
        "REGISTER" => {
            if !(1..=2).contains(&args.len()) {
                return Err(ProtoError::bad("usage: REGISTER <port> [host]"));
            }
            let port = number(args[0], "port")?;
            if port == 0 {
                return Err(ProtoError::bad("port 0 is not a port a peer can serve on"));
            }
            match args.get(1) {
                None => Request::Register { port },
                Some(host) => Request::RegisterAs {
                    port,
                    host: host.parse().map_err(|_| {
                        ProtoError::bad(format!(
                            "REGISTER host {host:?} is not an IP address (like 192.168.1.20)"
                        ))
                    })?,
                },
            }
        }
        "UPLOAD" => {
            arity(5, "UPLOAD <name> <size> <piece-size> <sha1> <root>")?;
            Request::Upload(meta(args)?)
        }
        "PARTIAL" => {
            arity(1, "PARTIAL <name>")?;
            Request::Partial {
                name: name(args[0])?,
            }
        }
        "REMOVE" => {
            arity(1, "REMOVE <name>")?;
            Request::Remove {
                name: name(args[0])?,
            }
        }
        "WHOHAS" => {
            arity(1, "WHOHAS <name>")?;
            Request::WhoHas {
                name: name(args[0])?,
            }
        }
        "INFO" => {
            arity(1, "INFO <name>")?;
            Request::Info {
                name: name(args[0])?,
            }
        }
        "LIST" => match args[..] {
            [] => Request::List,
            [after] => Request::ListAfter {
                after: name(after)?,
            },
            _ => return Err(ProtoError::bad("usage: LIST [<after>]")),
        },
        "HELLO" => {
            arity(1, "HELLO <peer-id>")?;
            Request::Hello {
                id: truncate(args[0], 64).to_string(),
            }
        }
        "GET" => {
            if args.len() != 1 && args.len() != 3 {
                return Err(ProtoError::bad("usage: GET <name> [<offset> <length>]"));
            }
            let range = match args {
                [_, offset, len] => Some((number(offset, "offset")?, number(len, "length")?)),
                _ => None,
            };
            Request::Get {
                name: name(args[0])?,
                range,
            }
        }
        "PIECE" => {
            arity(2, "PIECE <name> <index>")?;
            Request::Piece {
                name: name(args[0])?,
                index: number(args[1], "piece index")?,
            }
        }
        "HAVE" => {
            arity(1, "HAVE <name>")?;
            Request::Have {
                name: name(args[0])?,
            }
        }
        "HASHES" => {
            arity(1, "HASHES <name>")?;
            Request::Hashes {
                name: name(args[0])?,
            }
        }
        "PING" => {
            arity(0, "PING")?;
            Request::Ping
        }
        "HELP" => Request::Help,
        "BYE" | "QUIT" => Request::Bye,
        other => {
            if let Some(parsed) = accounts::parse(other, args) {
                return parsed;
            }
            return Err(ProtoError::new(
                ErrCode::UnknownVerb,
                format!("unknown verb {:?}; try HELP", truncate(other, 32)),
            ));
        }
    };
    Ok(request)
}

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

fn redact_with<'a>(line: &'a str, secrets: &[(&str, &[usize])]) -> std::borrow::Cow<'a, str> {
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

/// Parse one reply line (without its newline).
pub fn parse_reply(line: &[u8]) -> Result<Reply, ProtoError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = std::str::from_utf8(line).map_err(|_| ProtoError::bad("reply is not ASCII"))?;
    let (status, rest) = text.split_once(' ').unwrap_or((text, ""));
    let args: Vec<&str> = rest.split_ascii_whitespace().collect();
    let reply = match status {
        "ACK" => Reply::Ack(rest.to_string()),
        "PEERS" => Reply::Peers(
            args.iter()
                .map(|a| match a.strip_suffix("-partial") {
                    Some(addr) => Holder {
                        addr: addr.to_string(),
                        partial: true,
                    },
                    None => Holder {
                        addr: a.to_string(),
                        partial: false,
                    },
                })
                .collect(),
        ),
        "FILE" if args.len() == 5 => Reply::File(meta(&args)?),
        // An empty file has an empty bitfield: the line is just `BITFIELD`.
        "BITFIELD" if args.len() <= 1 && rest.bytes().all(|b| b == b'0' || b == b'1') => {
            Reply::Bitfield(rest.to_string())
        }
        "DATA" if args.len() == 1 => Reply::Data(number(args[0], "length")?),
        "PONG" => Reply::Pong,
        "ERR" => {
            let (code, message) = rest.split_once(' ').unwrap_or((rest, ""));
            let code = code.parse().unwrap_or(ErrCode::Internal);
            Reply::Err(code, message.to_string())
        }
        _ => {
            return Err(ProtoError::bad(format!(
                "unexpected reply \"{}\"",
                truncate(text, 64).escape_default()
            )));
        }
    };
    Ok(reply)
}

impl fmt::Display for Meta {
    /// The five words shared by `UPLOAD` and `FILE`.
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "{} {} {} {} {}",
            self.name, self.size, self.piece_size, self.sha1, self.root
        )
    }
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let suffix = if self.partial { "-partial" } else { "" };
        write!(f, "{}{suffix}", self.addr)
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Request::Register { port } => write!(f, "REGISTER {port}"),
            Request::RegisterAs { port, host } => write!(f, "REGISTER {port} {host}"),
            Request::Upload(meta) => write!(f, "UPLOAD {meta}"),
            Request::Partial { name } => write!(f, "PARTIAL {name}"),
            Request::Remove { name } => write!(f, "REMOVE {name}"),
            Request::WhoHas { name } => write!(f, "WHOHAS {name}"),
            Request::Info { name } => write!(f, "INFO {name}"),
            Request::List => write!(f, "LIST"),
            Request::ListAfter { after } => write!(f, "LIST {after}"),
            Request::Hello { id } => write!(f, "HELLO {id}"),
            Request::Get { name, range: None } => write!(f, "GET {name}"),
            Request::Get {
                name,
                range: Some((offset, len)),
            } => write!(f, "GET {name} {offset} {len}"),
            Request::Piece { name, index } => write!(f, "PIECE {name} {index}"),
            Request::Have { name } => write!(f, "HAVE {name}"),
            Request::Hashes { name } => write!(f, "HASHES {name}"),
            Request::Ping => write!(f, "PING"),
            Request::Help => write!(f, "HELP"),
            Request::Bye => write!(f, "BYE"),
            Request::Account(request) => write!(f, "{request}"),
        }
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Reply::Ack(text) if text.is_empty() => write!(f, "ACK"),
            Reply::Ack(text) => write!(f, "ACK {text}"),
            Reply::Peers(holders) => {
                write!(f, "PEERS")?;
                holders.iter().try_for_each(|h| write!(f, " {h}"))
            }
            Reply::File(meta) => write!(f, "FILE {meta}"),
            Reply::Bitfield(bits) if bits.is_empty() => write!(f, "BITFIELD"),
            Reply::Bitfield(bits) => write!(f, "BITFIELD {bits}"),
            Reply::Data(len) => write!(f, "DATA {len}"),
            Reply::Pong => write!(f, "PONG"),
            Reply::Err(code, message) => write!(f, "ERR {} {message}", code.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0a4d55a8d778e5022fab701977c5d840bbc486d0";

    #[test]
    fn requests_round_trip_through_their_lines() {
        let lines = [
            "REGISTER 10000",
            &format!("UPLOAD test1.txt 27 262144 {SHA} {SHA}"),
            "PARTIAL big.bin",
            "REMOVE a",
            "WHOHAS test1.txt",
            "INFO x",
            "LIST",
            "LIST test1.txt",
            "HELLO 127.0.0.1:10002",
            "GET test1.txt",
            "GET test1.txt 5 10",
            "PIECE big.bin 3",
            "HAVE big.bin",
            "HASHES big.bin",
            "PING",
            "HELP",
            "BYE",
        ];
        for line in lines {
            let req = parse_request(line.as_bytes()).unwrap();
            assert_eq!(req.to_string(), line);
        }
    }

    #[test]
    fn crlf_and_extra_spaces_are_accepted() {
        assert_eq!(
            parse_request(b"WHOHAS  a.txt\r"),
            Ok(Request::WhoHas {
                name: "a.txt".into()
            })
        );
    }

    #[test]
    fn bad_lines_get_their_error_code() {
        let code = |line: &[u8]| parse_request(line).unwrap_err().code;
        assert_eq!(code(b""), ErrCode::BadRequest);
        assert_eq!(code(b"   "), ErrCode::BadRequest);
        assert_eq!(code(b"FROB x"), ErrCode::UnknownVerb);
        assert_eq!(code(b"get x"), ErrCode::UnknownVerb);
        assert_eq!(code(b"WHOHAS"), ErrCode::BadRequest);
        assert_eq!(code(b"WHOHAS a b"), ErrCode::BadRequest);
        assert_eq!(code(b"REGISTER 70000"), ErrCode::BadRequest);
        assert_eq!(code(b"REGISTER -1"), ErrCode::BadRequest);
        assert_eq!(code(b"REGISTER 0"), ErrCode::BadRequest);
        assert_eq!(code(b"GET a 1"), ErrCode::BadRequest);
        assert_eq!(
            code(b"GET a 99999999999999999999999 1"),
            ErrCode::BadRequest
        );
        assert_eq!(code(b"PIECE a -3"), ErrCode::BadRequest);
        assert_eq!(code(b"WHOHAS \xff\xfe"), ErrCode::BadRequest);
        assert_eq!(code(b"WHOHAS a\0b"), ErrCode::BadRequest);
        assert_eq!(code(b"UPLOAD a 1 1000 x y"), ErrCode::BadRequest);
        let upload = format!("UPLOAD a 10 1000 {SHA} {SHA}");
        assert_eq!(code(upload.as_bytes()), ErrCode::BadRequest); // not a power of two
        let upload = format!("UPLOAD a 99999999999999 1024 {SHA} {SHA}");
        assert_eq!(code(upload.as_bytes()), ErrCode::BadRequest); // too many pieces
    }

    #[test]
    fn a_verb_of_the_other_server_is_unknown_whatever_its_arguments() {
        let err = parse_request_for(b"REGISTER abc", Role::Peer).unwrap_err();
        assert_eq!(err.code, ErrCode::UnknownVerb);
        assert_eq!(
            err.message,
            "REGISTER is a tracker verb; this is a peer (try HELP)"
        );
        let err = parse_request_for(b"  GET ../x 1\r", Role::Tracker).unwrap_err();
        assert_eq!(
            err.message,
            "GET is a peer verb; this is the tracker (try HELP)"
        );
        assert_eq!(
            parse_request_for(b"PIECE a", Role::Tracker)
                .unwrap_err()
                .code,
            ErrCode::UnknownVerb
        );
        // Shared verbs, our own verbs and unknown words go on to the parser.
        assert_eq!(parse_request_for(b"PING", Role::Peer), Ok(Request::Ping));
        assert_eq!(
            parse_request_for(b"REGISTER abc", Role::Tracker)
                .unwrap_err()
                .code,
            ErrCode::BadRequest
        );
        assert_eq!(
            parse_request_for(b"FROB", Role::Peer).unwrap_err().message,
            "unknown verb \"FROB\"; try HELP"
        );
        assert_eq!(
            parse_request_for(b"", Role::Peer).unwrap_err().code,
            ErrCode::BadRequest
        );
    }

    #[test]
    fn every_verb_belongs_to_a_server_and_help_lists_them() {
        for role in [Role::Tracker, Role::Peer] {
            for verb in role.verbs() {
                // Each listed verb parses as itself (with made-up arguments where it needs some).
                let err = parse_request(verb.as_bytes()).err();
                assert!(
                    err.as_ref().is_none_or(|e| e.code == ErrCode::BadRequest),
                    "{verb}: {err:?}"
                );
            }
        }
        assert_eq!(
            Role::Peer.help(),
            "peer verbs: HELLO GET PIECE HAVE HASHES TICKET PING HELP BYE"
        );
    }

    #[test]
    fn redaction_replaces_secret_words_and_nothing_else() {
        assert_eq!(redacted("REGISTER 9000"), "REGISTER 9000");
        assert_eq!(
            redacted("ACK 127.0.0.1:9000 heartbeat=10"),
            "ACK 127.0.0.1:9000 heartbeat=10"
        );
        let table: &[(&str, &[usize])] = &[("LOGIN", &[1])];
        assert_eq!(
            redact_with("LOGIN alice hunter2", table),
            "LOGIN alice <redacted>"
        );
        assert_eq!(redact_with("WHOHAS a", table), "WHOHAS a");
    }

    #[test]
    fn names_that_escape_or_hide_are_refused() {
        for bad in [
            "..",
            ".",
            "../etc",
            "a/b",
            "a\\b",
            ".torrentphile",
            "/etc/passwd",
        ] {
            let line = format!("GET {bad}");
            let err = parse_request(line.as_bytes()).unwrap_err();
            assert_eq!(err.code, ErrCode::BadName, "{bad}");
        }
        assert_eq!(
            check_name(&"x".repeat(256)).unwrap_err().code,
            ErrCode::BadName
        );
        assert!(check_name("ok-name_1.2.txt").is_ok());
    }

    #[test]
    fn replies_round_trip() {
        let meta = Meta {
            name: "a".into(),
            size: 3,
            piece_size: 1024,
            sha1: SHA.parse().unwrap(),
            root: SHA.parse().unwrap(),
        };
        let replies = [
            Reply::Ack("127.0.0.1:10000 heartbeat=10".into()),
            Reply::Peers(vec![
                Holder {
                    addr: "127.0.0.1:10000".into(),
                    partial: false,
                },
                Holder {
                    addr: "[::1]:10001".into(),
                    partial: true,
                },
            ]),
            Reply::File(meta),
            Reply::Bitfield("0110".into()),
            Reply::Bitfield(String::new()),
            Reply::Data(27),
            Reply::Pong,
            Reply::Err(ErrCode::NotFound, "no peer holds test2.txt".into()),
        ];
        for reply in replies {
            let line = reply.to_string();
            assert_eq!(parse_reply(line.as_bytes()), Ok(reply), "{line}");
        }
        assert_eq!(
            parse_reply(b"PEERS 127.0.0.1:1 127.0.0.1:2-partial").unwrap(),
            Reply::Peers(vec![
                Holder {
                    addr: "127.0.0.1:1".into(),
                    partial: false
                },
                Holder {
                    addr: "127.0.0.1:2".into(),
                    partial: true
                }
            ])
        );
    }

    #[test]
    fn pieces_cover_the_file_and_the_last_one_is_short() {
        let meta = Meta {
            name: "a".into(),
            size: 2500,
            piece_size: 1024,
            sha1: SHA.parse().unwrap(),
            root: SHA.parse().unwrap(),
        };
        assert_eq!(meta.pieces(), 3);
        assert_eq!(meta.piece_range(0), (0, 1024));
        assert_eq!(meta.piece_range(2), (2048, 452));
        let empty = Meta { size: 0, ..meta };
        assert_eq!(empty.pieces(), 0);
    }

    #[test]
    fn default_piece_size_keeps_piece_count_bounded() {
        assert_eq!(default_piece_size(27), 256 * 1024);
        assert_eq!(default_piece_size(1 << 30), 256 * 1024);
        assert_eq!(default_piece_size(4 << 30), 256 * 1024);
        assert_eq!(default_piece_size(8 << 30), 512 * 1024);
        assert!((1u64 << 40).div_ceil(default_piece_size(1 << 40) as u64) <= MAX_PIECES);
    }
}
