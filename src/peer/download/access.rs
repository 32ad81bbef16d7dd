//! How a download reaches a file that is not public: the hook a caller (the groups client)
//! puts in `DownloadOptions::access`. With it, a download asks its `Access` instead of the
//! tracker's public verbs (`INFO`, `WHOHAS`, `UPLOAD`), announces no partial pieces, and
//! presents a line (a `TICKET`) on every holder connection before anything else.
//!
//! This file knows nothing of accounts or tickets: it owns only the hook and `present`. It
//! never holds a lock across I/O and never prints what it presents (a ticket is a credential).

use std::fmt;

use crate::conn::{Conn, ConnError};
use crate::protocol::{Holder, Meta, Reply};

/// Where a restricted download learns about its file and how it is let in by each holder.
/// Called from the download's threads (the coordinator, every fetcher), so `Send + Sync`.
pub trait Access: Send + Sync + fmt::Debug {
    /// The tracker's answer about `name` instead of `INFO`'s: `FILE`, or `ERR not-found`.
    /// Any other refusal is an `Err` sentence for the user (it ends the download).
    fn info(&self, name: &str) -> Result<Reply, String>;
    /// Who holds `name`, instead of `WHOHAS`.
    fn who_has(&self, name: &str) -> Result<Vec<Holder>, String>;
    /// The line to present to `holder` (its `ip:port`) right after connecting, before
    /// `HELLO` or `HASHES`. Asked afresh for every connection.
    fn ticket(&self, holder: &str) -> Result<String, String>;
    /// Announce the complete, verified file, instead of `UPLOAD`.
    fn announce(&self, meta: &Meta) -> Result<(), String>;
}

/// Present `access`'s ticket for `holder` on a fresh connection; the holder must `ACK` it.
pub fn present(access: &dyn Access, holder: &str, conn: &mut Conn) -> Result<(), ConnError> {
    let ticket = access
        .ticket(holder)
        .map_err(|e| ConnError::Protocol(format!("no ticket for {holder}: {e}")))?;
    conn.send_line(&ticket)?;
    match conn.read_reply()? {
        Reply::Ack(_) => Ok(()),
        other => Err(ConnError::Protocol(format!("TICKET answered {other}"))),
    }
}
