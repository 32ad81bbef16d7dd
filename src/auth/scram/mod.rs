//! SCRAM-SHA-1 (RFC 5802): a login in which no password, and nothing a listener could replay,
//! crosses the wire. Both sides' steps are pure functions over message strings; the RFC's
//! section 5 example exchange is the first test, checked byte for byte.
//!
//! ```text
//! C: n,,n=user,r=<client nonce>                          client-first
//! S: r=<client nonce><server nonce>,s=<salt>,i=<count>   server-first
//! C: c=biws,r=<both nonces>,p=<ClientProof>              client-final
//! S: v=<ServerSignature>                                 server-final
//! ```
//!
//! SaltedPassword = Hi(password, salt, i) (PBKDF2-HMAC-SHA1); ClientKey = HMAC(SaltedPassword,
//! "Client Key"); StoredKey = SHA1(ClientKey); ServerKey = HMAC(SaltedPassword, "Server Key");
//! AuthMessage = client-first-bare "," server-first "," client-final-without-proof;
//! ClientProof = ClientKey ^ HMAC(StoredKey, AuthMessage); ServerSignature = HMAC(ServerKey,
//! AuthMessage). The server keeps only salt, count, StoredKey and ServerKey ([`Credentials`]).
//!
//! This module owns the message formats and the key arithmetic. It never touches a socket, a
//! clock or a random source (nonces and salts are the caller's, which is what makes the RFC
//! example reproducible), and it never prints a key: the types holding keys hide them in
//! `Debug`. Proofs and signatures are compared with [`super::ct::eq`].
//!
//! The client's steps are in `client.rs`, the server's in `server.rs`; this file holds what
//! both share (errors, stored and derived keys, the attribute syntax).
//!
//! Deliberately absent: channel binding (only the `n,,` header is accepted), authorization
//! identities (`a=`), and SASLprep. Passwords are used as their UTF-8 bytes, which is what
//! SASLprep would give for printable ASCII.

use std::fmt;

use crate::sha1::Sha1;

use super::base64;
use super::hmac::{HmacSha1, LEN};
use super::pbkdf2::hi;

mod client;
mod server;

pub use client::{Client, ClientFinal, ServerFirst};
pub use server::{ClientFirst, Server, ServerFinal, read_client_first};

/// The GS2 header we send and accept: no channel binding, no authorization identity.
const GS2_HEADER: &str = "n,,";
/// `base64("n,,")`: the `c=` attribute that matches [`GS2_HEADER`].
const CHANNEL_BINDING: &str = "biws";
/// The most iterations a client will compute for a server (a hostile server must not be able
/// to keep a client busy for hours). The tracker's own choice is far below this.
pub const MAX_ITERATIONS: u32 = 10_000_000;
/// Salts shorter than this are refused in stored credentials (a per-user random salt should
/// be at least 64 bits; we generate 16 bytes).
pub const MIN_SALT: usize = 8;
/// Salts longer than this are refused (keeps records and lines short).
pub const MAX_SALT: usize = 64;
/// Longest nonce accepted from the other side.
pub const MAX_NONCE: usize = 128;

/// Why an exchange failed. [`ScramError::code`] is the word for an `ERR` line; where RFC 5802
/// names the failure (`server-error-value`), the code is the RFC's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScramError {
    /// A message is not in the RFC's syntax (what is wrong, for the person debugging).
    Malformed(&'static str),
    /// The client asked for channel binding; only `n,,` is supported.
    ChannelBinding,
    /// The client sent an authorization identity (`a=`), which is not supported.
    AuthzId,
    /// A mandatory extension (`m=`) that we do not know.
    Extension,
    /// The user name is empty or its `=2C` / `=3D` escapes are broken.
    Username,
    /// A nonce is empty, too long or has a forbidden byte, or the nonces do not chain.
    Nonce,
    /// Salt or iteration count out of the accepted range.
    Parameters(&'static str),
    /// The client's proof is wrong: wrong password (or unknown user).
    InvalidProof,
    /// The server's signature is wrong: that server does not hold our credentials.
    ServerSignature,
    /// The server ended the exchange with `e=<value>`.
    Server(String),
}

impl ScramError {
    /// A stable lowercase word for `ERR <code> <message>`.
    pub fn code(&self) -> &'static str {
        match self {
            ScramError::Malformed(_) => "invalid-encoding",
            ScramError::ChannelBinding => "channel-binding-not-supported",
            ScramError::AuthzId => "authzid-not-supported",
            ScramError::Extension => "extensions-not-supported",
            ScramError::Username => "invalid-username-encoding",
            ScramError::Nonce => "bad-nonce",
            ScramError::Parameters(_) => "bad-parameters",
            ScramError::InvalidProof => "invalid-proof",
            ScramError::ServerSignature => "bad-server-signature",
            ScramError::Server(_) => "server-error",
        }
    }
}

impl fmt::Display for ScramError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            ScramError::Malformed(what) => write!(f, "malformed SCRAM message: {what}"),
            ScramError::ChannelBinding => f.write_str("channel binding is not supported; use n,,"),
            ScramError::AuthzId => f.write_str("authorization identities (a=) are not supported"),
            ScramError::Extension => {
                f.write_str("a mandatory SCRAM extension (m=) is not supported")
            }
            ScramError::Username => f.write_str("the user name is empty or badly escaped"),
            ScramError::Nonce => f.write_str("the nonce is missing, malformed or does not match"),
            ScramError::Parameters(what) => write!(f, "unacceptable SCRAM parameters: {what}"),
            ScramError::InvalidProof => f.write_str("wrong user name or password"),
            ScramError::ServerSignature => {
                f.write_str("the server could not prove it knows this account (wrong server?)")
            }
            ScramError::Server(value) => write!(f, "the server refused the login: {value}"),
        }
    }
}

impl std::error::Error for ScramError {}

/// What the server keeps for a user, instead of the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: [u8; LEN],
    pub server_key: [u8; LEN],
}

impl Credentials {
    /// Derive the stored form from a password (at account creation). `salt` should be fresh
    /// random bytes from the caller (the tracker reads `/dev/urandom`).
    pub fn derive(password: &[u8], salt: &[u8], iterations: u32) -> Credentials {
        let keys = ClientKeys::derive(password, salt, iterations);
        Credentials {
            salt: salt.to_vec(),
            iterations,
            stored_key: Sha1::from(keys.client_key).digest().bytes(),
            server_key: keys.server_key,
        }
    }

    /// Credentials for a user that does not exist, derived from a server secret so that the
    /// same unknown name always gets the same salt. Answering unknown names with these lets
    /// the exchange run to `invalid-proof`, so a stranger cannot probe which names exist.
    /// Nobody can log in with them: that would need a SHA-1 preimage of `stored_key`.
    pub fn decoy(user: &str, server_secret: &[u8], iterations: u32) -> Credentials {
        let mac = HmacSha1::new(server_secret);
        let with = |label: &str| mac.mac(format!("{label},{user}").as_bytes());
        Credentials {
            salt: with("decoy salt")[..16].to_vec(),
            iterations,
            stored_key: with("decoy stored key"),
            server_key: with("decoy server key"),
        }
    }

    /// Is this a record we accept (salt length, iteration count)? The reason if not.
    pub fn check(&self) -> Result<(), &'static str> {
        if self.salt.len() < MIN_SALT || self.salt.len() > MAX_SALT {
            return Err("the salt must be 8 to 64 bytes");
        }
        if self.iterations == 0 || self.iterations > MAX_ITERATIONS {
            return Err("the iteration count must be 1 to 10000000");
        }
        Ok(())
    }
}

impl fmt::Debug for Credentials {
    /// Salt and count are public (the server sends them); the keys are not shown.
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("salt", &base64::encode(&self.salt))
            .field("iterations", &self.iterations)
            .field("stored_key", &"<hidden>")
            .field("server_key", &"<hidden>")
            .finish()
    }
}

/// The keys a client derives from its password for one salt and count. A peer may keep these
/// in memory to log in again after a tracker restart without asking for the password; they
/// are password-equivalent for this account, so they never leave the process.
#[derive(Clone)]
pub struct ClientKeys {
    pub salt: Vec<u8>,
    pub iterations: u32,
    client_key: [u8; LEN],
    server_key: [u8; LEN],
}

impl ClientKeys {
    /// Run PBKDF2 once (the slow step) and keep what the exchange needs.
    pub fn derive(password: &[u8], salt: &[u8], iterations: u32) -> ClientKeys {
        let salted = HmacSha1::new(&hi(password, salt, iterations));
        ClientKeys {
            salt: salt.to_vec(),
            iterations,
            client_key: salted.mac(b"Client Key"),
            server_key: salted.mac(b"Server Key"),
        }
    }

    /// True when these keys were derived for this salt and count (else derive again).
    pub fn fits(&self, server_first: &ServerFirst) -> bool {
        self.salt == server_first.salt && self.iterations == server_first.iterations
    }
}

impl fmt::Debug for ClientKeys {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "ClientKeys(iterations {}, <keys hidden>)",
            self.iterations
        )
    }
}

/// A key both sides hold after a successful exchange and that never crossed the wire:
/// HMAC(ClientKey, "session," AuthMessage). Not part of RFC 5802; ours, for MACing tickets.
/// A listener cannot compute it (ClientKey is hidden by the proof's XOR with a signature it
/// cannot make), and each exchange gives a different one (the nonces are in AuthMessage).
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKey([u8; LEN]);

impl SessionKey {
    fn new(client_key: &[u8; LEN], auth_message: &str) -> SessionKey {
        let mut mac = HmacSha1::new(client_key);
        mac.update(b"session,");
        mac.update(auth_message.as_bytes());
        SessionKey(mac.finish())
    }

    /// The key's bytes, for a MAC.
    pub fn as_bytes(&self) -> &[u8; LEN] {
        &self.0
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("SessionKey(<hidden>)")
    }
}

/// `saslname` escaping: `,` becomes `=2C` and `=` becomes `=3D`.
pub fn escape_username(user: &str) -> String {
    user.replace('=', "=3D").replace(',', "=2C")
}

/// Undo [`escape_username`]; any other `=` is an error.
pub fn unescape_username(name: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if tail.starts_with("=2C") {
            out.push(',');
        } else if tail.starts_with("=3D") {
            out.push('=');
        } else {
            return Err(ScramError::Username);
        }
        rest = &tail[3..];
    }
    out.push_str(rest);
    if out.is_empty() || out.contains('\0') {
        return Err(ScramError::Username);
    }
    Ok(out)
}

/// A nonce is 1 to [`MAX_NONCE`] printable ASCII bytes other than `,` (RFC 5802 `printable`).
fn check_nonce(nonce: &str) -> Result<(), ScramError> {
    let printable = nonce.bytes().all(|b| b.is_ascii_graphic() && b != b',');
    if nonce.is_empty() || nonce.len() > MAX_NONCE || !printable {
        return Err(ScramError::Nonce);
    }
    Ok(())
}

/// The value of attribute `name` in `part` (`name=value`), or a syntax error naming it.
fn attr<'a>(part: Option<&'a str>, name: &'static str) -> Result<&'a str, ScramError> {
    part.and_then(|p| p.strip_prefix(name))
        .and_then(|p| p.strip_prefix('='))
        .ok_or(ScramError::Malformed(name))
}

/// Optional trailing extensions: each must look like `x=...`; their content is ignored (they
/// are still covered by AuthMessage, since that is built from the raw text).
fn check_extensions<'a>(parts: impl Iterator<Item = &'a str>) -> Result<(), ScramError> {
    for part in parts {
        let b = part.as_bytes();
        if b.len() < 2 || !b[0].is_ascii_alphabetic() || b[1] != b'=' {
            return Err(ScramError::Malformed("extension"));
        }
    }
    Ok(())
}

fn key_from_base64(text: &str, what: &'static str) -> Result<[u8; LEN], ScramError> {
    base64::decode(text)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or(ScramError::Malformed(what))
}

fn xor(a: &[u8; LEN], b: &[u8; LEN]) -> [u8; LEN] {
    std::array::from_fn(|i| a[i] ^ b[i])
}

#[cfg(test)]
mod tests;
