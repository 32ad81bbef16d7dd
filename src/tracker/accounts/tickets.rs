//! Tickets: `GRANT` mints one for a member who wants a group file from a holder, signed with
//! the key that holder's login agreed (`auth::ticket`), bound to the asker's address, the file's
//! root and an expiry.
//!
//! It must never hand out a ticket for a file the asker may not read or a holder that does
//! not hold it now, and never print the ticket key.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{Auth, AuthConn, auth_err, err, lock};
use crate::auth::ticket::Ticket;
use crate::protocol::{ErrCode, ProtoError, Reply};

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Auth {
    /// `GRANT <group> <name> <holder>`: a ticket to fetch that file from that holder, bound to
    /// the asker's address and valid for `ticket_lifetime`.
    pub(super) fn grant(
        &self,
        conn: &AuthConn,
        ip: IpAddr,
        group: String,
        name: String,
        holder: String,
    ) -> Result<Reply, ProtoError> {
        let user = self.user(conn)?;
        let root = lock(&self.state)
            .file(&group, user, &name)
            .map_err(auth_err)?
            .meta
            .root;
        let sessions = lock(&self.sessions);
        let key = sessions.holder_key(&group, &name, &holder).ok_or_else(|| {
            err(
                ErrCode::NotFound,
                format!("{holder} does not hold {name} in {group} now"),
            )
        })?;
        let expiry = unix_now() + self.config.ticket_lifetime.as_secs();
        let ticket = Ticket::mint(key, user, &group, &name, root, &ip.to_string(), expiry);
        Ok(Reply::Ack(ticket.to_string()))
    }
}
