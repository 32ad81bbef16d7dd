//! Accounts, groups and the crypto they stand on (issue 9): every piece pure, none of them
//! touching a socket, a file or a clock.
//!
//! Read in this order:
//!
//! - [`ct`]: the one constant-time comparison every secret goes through.
//! - [`hmac`]: HMAC-SHA1 (RFC 2104), with all seven RFC 2202 vectors as tests.
//! - [`pbkdf2`]: PBKDF2-HMAC-SHA1 (RFC 8018), with the RFC 6070 vectors.
//! - [`base64`]: RFC 4648 base64, strict, so that one value has one text.
//! - [`scram`]: the SCRAM-SHA-1 login (RFC 5802) as pure steps on message strings: the server
//!   stores salt, count, StoredKey and ServerKey, never the password, and no password or
//!   replayable secret crosses the wire.
//! - [`accounts`]: users, groups, join requests and per-group file lists as one plain value,
//!   changed only by [`accounts::Record`]s, so a journal can replay it exactly.
//! - [`ticket`]: the tracker's permission to fetch one group file from one holder, MACed with
//!   a key derived from that holder's SCRAM session.
//!
//! What is *not* here, by design: the protocol verbs, the tracker and peer wiring, the journal
//! on disk, randomness (salts and nonces are passed in by the caller).

pub mod accounts;
pub mod base64;
pub mod ct;
pub mod hmac;
pub mod pbkdf2;
pub mod scram;
pub mod ticket;
