//! The real BitTorrent protocol beside our own: the peer wire (BEP 3), the HTTP tracker
//! announce (BEP 3 with BEP 23 compact peers), and the state of one BitTorrent connection.
//!
//! Everything here is pure: values, byte formats and state changes. Nothing opens a socket,
//! reads a clock or touches the disk; the tracker and the peer wire these to their sockets,
//! the same way `protocol` sits under `conn`.
//!
//! - [`wire`]: the handshake and the messages as values, their bytes, their trace lines.
//! - [`framing`]: the incremental, bounded decoder from a byte stream to those values.
//! - [`bitfield`]: which pieces a peer has, in BEP 3's bit order.
//! - [`session`]: choke and interest flags, the peer's pieces, our outstanding requests, and
//!   the checks an incoming request or block must pass.
//! - [`announce`]: `GET /announce?...` parsed, its bencoded answer built, and [`announce::sniff`]
//!   telling an HTTP request, a BitTorrent handshake and one of our lines apart by their
//!   first bytes.
//! - [`announce_client`]: the client's half: the announce request, the tracker's answer read
//!   back (compact or long peer lists, `failure reason`).

pub mod announce;
pub mod announce_client;
pub mod bitfield;
pub mod framing;
pub mod session;
pub mod wire;

#[cfg(test)]
mod announce_tests;
#[cfg(test)]
mod session_tests;
