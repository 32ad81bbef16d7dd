//! The cluster key and the members' mutual challenge-response handshake.
//!
//! It owns the key (read from a file no one else may read, at least 16 random bytes as hex or
//! base64 text) and the pure part of the handshake: the two MACs and their checks. It never
//! opens a socket and never prints a key or a MAC; randomness comes from `/dev/urandom` only
//! through [`nonce`] and [`write_new`]. The crypto is HMAC-SHA1 (RFC 2104, [`crate::auth::hmac`])
//! and the constant-time compare of [`crate::auth::ct`]: nothing home-made.
//!
//! ```text
//! > CLUSTER <fingerprint> <connector id> <client address or -> <nonce_c>
//! < ACK cluster <acceptor id> <nonce_s> <mac_s>   mac_s = HMAC(key, transcript("acceptor"))
//! > PROOF <mac_c>                                 mac_c = HMAC(key, transcript("connector"))
//! ```
//!
//! A transcript is the direction label, the fingerprint, both ids and both nonces, one per
//! line. Each side's fresh nonce makes a MAC useless on any other connection (no replay); the
//! label makes the acceptor's MAC useless as a connector's proof (no reflection); the ids make
//! a MAC for one pair of members useless for another. What it does not do: MAC each message,
//! so someone who can take over an established TCP connection is out of its reach.

use std::fmt;
use std::io::{self, Write};
use std::path::Path;

use crate::auth::{base64, ct, hmac::HmacSha1};
use crate::raft::NodeId;

/// Fewest key bytes accepted.
pub const MIN_KEY: usize = 16;
/// Bytes of key `torrentphile cluster-key` writes.
pub const NEW_KEY: usize = 32;
/// Bytes in each nonce.
pub const NONCE: usize = 16;

/// The shared secret of a cluster's members. Its `Debug` never shows the bytes.
#[derive(Clone)]
pub struct ClusterKey(Vec<u8>);

impl fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "ClusterKey(<{} bytes, redacted>)", self.0.len())
    }
}

/// Which side of the handshake a MAC speaks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The member that accepted the connection (its MAC travels in `ACK cluster`).
    Acceptor,
    /// The member that connected (its MAC travels in `PROOF`).
    Connector,
}

/// What both sides of one connection know once the nonces are exchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transcript<'a> {
    /// The cluster's fingerprint.
    pub fingerprint: &'a str,
    /// The connecting member's id.
    pub connector: NodeId,
    /// The accepting member's id.
    pub acceptor: NodeId,
    /// The connector's nonce, as sent (hex).
    pub nonce_c: &'a str,
    /// The acceptor's nonce, as sent (hex).
    pub nonce_s: &'a str,
}

impl ClusterKey {
    /// The key in a key file's text: hex (an even number of hex digits) or base64, at least
    /// [`MIN_KEY`] bytes; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<ClusterKey, String> {
        let text = text.trim();
        let bytes = if !text.is_empty()
            && text.len().is_multiple_of(2)
            && text.bytes().all(|b| b.is_ascii_hexdigit())
        {
            unhex(text)
        } else {
            base64::decode(text).ok()
        };
        match bytes {
            Some(b) if b.len() >= MIN_KEY => Ok(ClusterKey(b)),
            Some(b) => Err(format!(
                "the cluster key {file} holds {} bytes; at least {MIN_KEY} are needed: make a new one with `torrentphile cluster-key {file}`",
                b.len()
            )),
            None => Err(format!(
                "the cluster key {file} is neither hex nor base64 text: make a new one with `torrentphile cluster-key {file}`"
            )),
        }
    }

    /// Read a key file, refusing one that group or others may read (or write).
    pub fn load(path: &Path) -> Result<ClusterKey, String> {
        use std::os::unix::fs::PermissionsExt;
        let file = path.display().to_string();
        let meta = std::fs::metadata(path)
            .map_err(|e| format!("cannot read the cluster key {file}: {e}"))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "the cluster key {file} is open to group or others (mode {mode:04o}): chmod 600 {file}"
            ));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the cluster key {file}: {e}"))?;
        ClusterKey::parse(&text, &file)
    }

    /// The MAC `side` sends for `t`, as hex.
    pub fn mac(&self, side: Side, t: &Transcript) -> String {
        let label = match side {
            Side::Acceptor => "torrentphile-cluster acceptor",
            Side::Connector => "torrentphile-cluster connector",
        };
        let mut h = HmacSha1::new(&self.0);
        let text = format!(
            "{label}\n{}\n{}\n{}\n{}\n{}",
            t.fingerprint, t.connector, t.acceptor, t.nonce_c, t.nonce_s
        );
        h.update(text.as_bytes());
        hex(&h.finish())
    }

    /// Check, in constant time, the MAC `got` that `side` sent for `t`.
    pub fn check(&self, side: Side, t: &Transcript, got: &str) -> Result<(), String> {
        if ct::eq(self.mac(side, t).as_bytes(), got.as_bytes()) {
            return Ok(());
        }
        let who = match side {
            Side::Acceptor => format!("member {}", t.acceptor),
            Side::Connector => format!("member {}", t.connector),
        };
        Err(format!(
            "{who}'s MAC does not check: the cluster keys differ (or it is not {who})"
        ))
    }
}

/// A fresh nonce from `/dev/urandom`, as hex.
pub fn nonce() -> io::Result<String> {
    Ok(hex(&crate::tracker::accounts::urandom(NONCE)?))
}

/// Whether `word` looks like a nonce (hex of [`NONCE`] bytes).
pub fn is_nonce(word: &str) -> bool {
    word.len() == NONCE * 2 && word.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Write a new key ([`NEW_KEY`] bytes from `/dev/urandom`, base64) to `path`, created with
/// mode 0600; an existing file is never overwritten.
pub fn write_new(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = path.display();
    let bytes = crate::tracker::accounts::urandom(NEW_KEY)
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => {
                format!("{file} exists already: remove it first, or choose another name")
            }
            _ => format!("cannot create {file}: {e}"),
        })?;
    writeln!(f, "{}", base64::encode(&bytes))
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("cannot write {file}: {e}"))
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}
