//! The members' handshake on a socket: the acceptor's and the connector's steps of the
//! exchange `auth.rs` describes, with or without a cluster key.
//!
//! It owns the order of the handshake's lines and the refusals (each logged once through
//! `Shared::refuse`, each answered with one `ERR`); the MACs themselves are `auth.rs`'s. It
//! must never let a connection carry a Raft message before the other side has proved it
//! holds the key, and never print a MAC (the lines go through the transport's redacting trace).

use super::Shared;
use super::auth::{self, Side, Transcript};
use super::transport::{IO, read, send};
use crate::conn::{Conn, Timeouts, Trace};
use crate::raft::NodeId;

/// The acceptor's side of the handshake, after a `CLUSTER` line naming member `from` (and,
/// from a member with a key, its nonce): true once `from` may send Raft messages.
pub(super) fn accept(
    shared: &Shared,
    conn: &mut Conn,
    who: &str,
    from: NodeId,
    nonce_c: Option<&str>,
) -> bool {
    let host = conn.remote().ip();
    let claim = format!("a connection from {host} claiming to be member {from}");
    let (key, nonce_c) = match (&shared.key, nonce_c) {
        (None, None) => {
            let ack = format!("ACK cluster {}", shared.id);
            return send(shared, conn, who, &ack).is_ok();
        }
        (None, Some(_)) => {
            let why = "this member has no cluster key and the connecting one has: start every member with the same --cluster-key FILE";
            shared.refuse(format!("refused {claim}: {why}"));
            let _ = send(shared, conn, who, &format!("ERR conflict {why}"));
            return false;
        }
        (Some(_), None) => {
            let why = "this member requires the cluster key: start every member with the same --cluster-key FILE";
            shared.refuse(format!("refused {claim}: it has no cluster key"));
            let _ = send(shared, conn, who, &format!("ERR invalid-proof {why}"));
            return false;
        }
        (Some(key), Some(nonce_c)) => (key, nonce_c),
    };
    if !auth::is_nonce(nonce_c) {
        let _ = send(
            shared,
            conn,
            who,
            "ERR bad-request the nonce must be 32 hex digits",
        );
        return false;
    }
    let nonce_s = match auth::nonce() {
        Ok(n) => n,
        Err(e) => {
            let _ = send(shared, conn, who, &format!("ERR internal no nonce: {e}"));
            return false;
        }
    };
    let t = Transcript {
        fingerprint: &shared.fingerprint,
        connector: from,
        acceptor: shared.id,
        nonce_c,
        nonce_s: &nonce_s,
    };
    let ack = format!(
        "ACK cluster {} {nonce_s} {}",
        shared.id,
        key.mac(Side::Acceptor, &t)
    );
    if send(shared, conn, who, &ack).is_err() {
        return false;
    }
    let Ok(reply) = read(shared, conn, who) else {
        return false;
    };
    let checked = match reply.split_whitespace().collect::<Vec<_>>()[..] {
        ["PROOF", mac] => key.check(Side::Connector, &t, mac),
        ["ERR", ..] => Err(format!("it refused this member's MAC ({reply})")),
        _ => Err("it sent no PROOF".to_string()),
    };
    match checked {
        Ok(()) => true,
        Err(why) => {
            shared.refuse(format!("refused {claim}: {why}"));
            let _ = send(shared, conn, who, &format!("ERR invalid-proof {why}"));
            false
        }
    }
}

/// Connect to member `to` at `addr` and do the connector's side of the handshake.
pub(super) fn connect(shared: &Shared, to: NodeId, addr: &str) -> Result<Conn, String> {
    let timeouts = Timeouts {
        idle: IO * 2,
        line: IO * 2,
        io: IO,
    };
    let nonce_c = match shared.key {
        Some(_) => Some(auth::nonce().map_err(|e| format!("no nonce: {e}"))?),
        None => None,
    };
    // Traced here, line by line, not by the connection: see `shown`.
    let mut conn = Conn::connect(addr, timeouts, Trace::off()).map_err(|e| e.to_string())?;
    let client = shared.client_addr.as_deref().unwrap_or("-");
    let mut hello = format!("CLUSTER {} {} {client}", shared.fingerprint, shared.id);
    if let Some(n) = &nonce_c {
        hello = format!("{hello} {n}");
    }
    send(shared, &mut conn, addr, &hello).map_err(|e| e.to_string())?;
    let reply = read(shared, &mut conn, addr).map_err(|e| e.to_string())?;
    let words: Vec<&str> = reply.split_whitespace().collect();
    let member = format!("member {to} at {addr}");
    let (key, nonce_c, nonce_s, mac_s) = match (&shared.key, nonce_c.as_deref(), &words[..]) {
        (None, _, ["ACK", "cluster", ..]) => return Ok(conn),
        (Some(key), Some(nonce_c), ["ACK", "cluster", id, nonce_s, mac_s])
            if *id == to.to_string() && auth::is_nonce(nonce_s) =>
        {
            (key, nonce_c, *nonce_s, *mac_s)
        }
        (Some(_), _, ["ACK", "cluster", _]) => {
            let why = format!("refused {member}: it has no cluster key");
            shared.refuse(why.clone());
            return Err(why);
        }
        (_, _, ["ERR", ..]) => {
            let why = format!("{member} refused this member: {reply}");
            shared.refuse(why.clone());
            return Err(why);
        }
        _ => return Err(format!("refused: {reply}")),
    };
    let t = Transcript {
        fingerprint: &shared.fingerprint,
        connector: shared.id,
        acceptor: to,
        nonce_c,
        nonce_s,
    };
    if let Err(why) = key.check(Side::Acceptor, &t, mac_s) {
        let _ = send(shared, &mut conn, addr, &format!("ERR invalid-proof {why}"));
        let why = format!("refused {member}: {why}");
        shared.refuse(why.clone());
        return Err(why);
    }
    let proof = format!("PROOF {}", key.mac(Side::Connector, &t));
    send(shared, &mut conn, addr, &proof).map_err(|e| e.to_string())?;
    Ok(conn)
}
