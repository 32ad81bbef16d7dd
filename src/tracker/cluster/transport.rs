//! Tracker-to-tracker connections carrying Raft messages as lines of our protocol.
//!
//! It owns the cluster port's listener, one outbound connection per other member, and the
//! handshake; it never decides anything Raft decides and never touches the disk. Choice: a
//! **dedicated cluster port** (the address in the cluster file), not the tracker's own port.
//! Peers never see the Raft verbs, the tracker's request parser stays as it is, and "accepted
//! only from members" is a handshake on a port peers are not told about rather than a check
//! of source addresses (which on one machine are all 127.0.0.1).
//!
//! Every connection carries messages one way. A member connects to each other member and
//! says who it is:
//!
//! ```text
//! > CLUSTER <fingerprint> <my id> <my client address, or -> <nonce_c>
//! < ACK cluster <its id> <nonce_s> <mac_s>  (or ERR conflict|invalid-proof <why>, and close)
//! > PROOF <mac_c>                          (the acceptor reads nothing more before checking it)
//! > VOTE 3 1 10 2                          then Raft messages, one after another, no replies
//! > APPEND 3 1 10 2 10 1
//! > ENTRY 3 5 hello
//! > PING                                   when idle for a second: keeps the connection warm
//! > SNAPSHOT 3 1 500 2 0 no 65536          a chunk of a snapshot, then its data line, which
//! - <65536 bytes>                          the trace shows only as a size (it holds accounts)
//! ```
//!
//! Without a cluster key (`Options::key`) the nonce, the MACs and `PROOF` are left out and
//! the port trusts anyone who knows the fingerprint; a member with a key refuses a member
//! without one and the other way round (see `auth.rs` for the MACs). Replies to Raft
//! messages travel on the other member's own connection back. A lost connection loses
//! messages, which Raft tolerates (it retries); the sender reconnects with capped, jittered
//! backoff and drops what was queued meanwhile rather than delivering it late. Every socket has
//! timeouts; a slow member never blocks the driver (its queue is bounded and `send` never
//! waits). `--trace` shows each line: `tracker 1 > 127.0.0.1:9102  VOTE 3 1 10 2`.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::Shared;
use super::handshake;
use super::node::Input;
use crate::conn::{Conn, ConnError, Timeouts, Trace};
use crate::protocol::MAX_LINE;
use crate::raft::{Message, NodeId, lines_after, parse, snapshot_data_len};
use crate::server::Server;
use crate::util::Rng;

/// Messages queued for one member before newer ones are dropped.
const QUEUE: usize = 1024;
/// An idle outbound connection sends `PING` this often.
const KEEPALIVE: Duration = Duration::from_secs(1);
/// Reconnect backoff: first wait, and the cap (each wait is jittered to 50-100 %).
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Connect and write timeout, and how long an inbound connection may stay silent.
pub(super) const IO: Duration = Duration::from_secs(1);
const INBOUND_IDLE: Duration = Duration::from_secs(10);

/// The connections of one member.
pub(super) struct Transport {
    server: Server,
    outbound: BTreeMap<NodeId, (SyncSender<Message>, JoinHandle<()>)>,
    shared: Arc<Shared>,
}

impl Transport {
    /// Listen on `listener` and start one sender thread per member in `addrs` (id to cluster
    /// address, this member excluded).
    pub(super) fn start(
        listener: TcpListener,
        addrs: &BTreeMap<NodeId, String>,
        shared: Arc<Shared>,
    ) -> std::io::Result<Transport> {
        let inbound = shared.clone();
        let server = Server::spawn(listener, "cluster", 64, move |stream| {
            let timeouts = Timeouts {
                idle: INBOUND_IDLE,
                line: IO * 5,
                io: IO,
            };
            // Traced here, line by line, not by the connection: see `shown`.
            if let Ok(mut conn) = Conn::new(stream, timeouts, Trace::off()) {
                serve_inbound(&inbound, &mut conn);
            }
        })?;
        let mut outbound = BTreeMap::new();
        for (&to, addr) in addrs.iter().filter(|(id, _)| **id != shared.id) {
            let (tx, rx) = mpsc::sync_channel(QUEUE);
            let (shared, addr) = (shared.clone(), addr.clone());
            let thread = thread::Builder::new()
                .name(format!("cluster-to-{to}"))
                .spawn(move || send_loop(&shared, to, &addr, &rx))?;
            outbound.insert(to, (tx, thread));
        }
        Ok(Transport {
            server,
            outbound,
            shared,
        })
    }

    /// Queue `msg` for member `to`; never blocks. Dropped when the link is cut (a test hook)
    /// or the queue is full: Raft retransmits what matters.
    pub(super) fn send(&self, to: NodeId, msg: Message) {
        if self.shared.is_cut(to) {
            return;
        }
        if let Some((tx, _)) = self.outbound.get(&to) {
            match tx.try_send(msg) {
                Ok(()) | Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {}
            }
        }
    }

    /// Close every connection and join every thread.
    pub(super) fn stop(&mut self) {
        self.server.stop();
        for (_, (tx, thread)) in std::mem::take(&mut self.outbound) {
            drop(tx);
            let _ = thread.join();
        }
    }
}

/// What a trace shows of a cluster line. An `ENTRY` carrying a `CREATE-USER` record shows the
/// user but not the rest (its stored and server keys are password verifiers), so the cluster
/// port traces its lines itself rather than through `Conn`; a `SNAPSHOT`'s data line is shown
/// by its size only (see `stream`).
fn shown(line: &str) -> String {
    // The handshake's MACs are proofs: never shown.
    let words: Vec<&str> = line.split(' ').collect();
    match words[..] {
        ["ACK", "cluster", id, nonce, _] => return format!("ACK cluster {id} {nonce} <redacted>"),
        ["PROOF", _] => return "PROOF <redacted>".to_string(),
        _ => {}
    }
    if let Some(rest) = line.strip_prefix("ENTRY ") {
        let w: Vec<&str> = rest.splitn(6, ' ').collect();
        if let [term, len, tag, "CREATE-USER", user, _] = w[..] {
            return format!("ENTRY {term} {len} {tag} CREATE-USER {user} <redacted>");
        }
    }
    line.to_string()
}

fn note(shared: &Shared, who: &str, arrow: &str, line: &str) {
    if shared.trace.is_on() {
        shared.trace.note(who, arrow, &shown(line));
    }
}

/// Read one line and trace it.
pub(super) fn read(shared: &Shared, conn: &mut Conn, who: &str) -> Result<String, ConnError> {
    let line = conn.read_line(MAX_LINE)?;
    let line = String::from_utf8_lossy(&line).into_owned();
    note(shared, who, "<", &line);
    Ok(line)
}

/// Trace one line and send it.
pub(super) fn send(shared: &Shared, conn: &mut Conn, who: &str, line: &str) -> std::io::Result<()> {
    note(shared, who, ">", line);
    conn.send_line(line)
}

/// One inbound connection: a member's handshake then its messages, or a client line (see
/// `Shared::client_line`: `STATUS` and `STATE`).
fn serve_inbound(shared: &Shared, conn: &mut Conn) {
    let mut who = conn.remote().to_string();
    let Ok(first) = read(shared, conn, &who) else {
        return;
    };
    let words: Vec<&str> = first.split_whitespace().collect();
    let (fingerprint, from, client, nonce_c) = match words[..] {
        ["CLUSTER", fingerprint, from, client] => (fingerprint, from, client, None),
        ["CLUSTER", fingerprint, from, client, nonce_c] => {
            (fingerprint, from, client, Some(nonce_c))
        }
        _ => {
            // Not a member: a person with `nc`, or a test. One request, one reply, repeat.
            let mut line = first;
            loop {
                let reply = shared.client_line(&line);
                if send(shared, conn, &who, &reply).is_err() || reply == "ACK bye" {
                    return;
                }
                match read(shared, conn, &who) {
                    Ok(next) => line = next,
                    Err(_) => return,
                }
            }
        }
    };
    let from = match shared.check_hello(fingerprint, from) {
        Ok(from) => from,
        Err(why) => {
            let _ = send(shared, conn, &who, &format!("ERR conflict {why}"));
            return;
        }
    };
    if !handshake::accept(shared, conn, &who, from, nonce_c) {
        return;
    }
    if client != "-" {
        shared.set_client_addr(from, client);
    }
    let name = format!("member {from}");
    note(shared, &who, "-", &format!("is {name} from now on"));
    who = name;
    loop {
        let line = match read(shared, conn, &who) {
            Ok(line) => line,
            Err(ConnError::Timeout) => {
                note(shared, &who, "-", "silent too long; closing");
                return;
            }
            Err(_) => return,
        };
        if line == "PING" {
            continue;
        }
        let mut text = line.clone();
        let more = match lines_after(&line) {
            Ok(n) => n,
            Err(e) => return note(shared, &who, "-", &format!("bad message: {e}; closing")),
        };
        let snapshot = line.starts_with("SNAPSHOT ");
        if snapshot {
            // The data line is read as a data block, so the trace shows its size only.
            match read_snapshot_data(conn, &line) {
                Ok(data) => {
                    note(shared, &who, "<", &format!("<{} bytes>", data.len() + 1));
                    text.push('\n');
                    text.push_str(&data);
                }
                Err(e) => return note(shared, &who, "-", &format!("bad message: {e}; closing")),
            }
        }
        for _ in 0..if snapshot { 0 } else { more } {
            match read(shared, conn, &who) {
                Ok(next) => {
                    text.push('\n');
                    text.push_str(&next);
                }
                Err(_) => return,
            }
        }
        let msg = match parse(&text) {
            Ok(msg) => msg,
            Err(e) => return note(shared, &who, "-", &format!("bad message: {e}; closing")),
        };
        if msg.from() != from {
            return note(
                shared,
                &who,
                "-",
                "a message claims another sender; closing",
            );
        }
        if shared.is_cut(from) {
            continue;
        }
        if shared.inbox.send(Input::Message(msg)).is_err() {
            return; // the driver has stopped
        }
    }
}

/// The sender thread for member `to`: connect, say hello, write what is queued, reconnect.
fn send_loop(shared: &Shared, to: NodeId, addr: &str, rx: &Receiver<Message>) {
    let mut rng = Rng::from_time();
    let mut backoff = BACKOFF_MIN;
    loop {
        match handshake::connect(shared, to, addr) {
            Ok(mut conn) => {
                backoff = BACKOFF_MIN;
                if stream(shared, &mut conn, addr, rx) {
                    return;
                }
            }
            Err(e) => {
                if shared.trace.is_on() {
                    eprintln!("cluster: member {to} at {addr}: {e}");
                }
            }
        }
        // Wait, jittered, before trying again; what is queued meanwhile is stale: drop it.
        let wait = backoff.mul_f64(0.5 + (rng.below(1000) as f64) / 2000.0);
        let until = Instant::now() + wait;
        loop {
            match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Write queued messages until the connection breaks (false) or the driver is gone (true).
fn stream(shared: &Shared, conn: &mut Conn, addr: &str, rx: &Receiver<Message>) -> bool {
    loop {
        let msgs = match rx.recv_timeout(KEEPALIVE) {
            Ok(msg) => {
                let mut msgs = vec![msg];
                // Whatever else is queued goes in the same write.
                msgs.extend(rx.try_iter().take(63));
                msgs
            }
            Err(RecvTimeoutError::Timeout) => vec![],
            Err(RecvTimeoutError::Disconnected) => return true,
        };
        let mut lines = Vec::new();
        for msg in &msgs {
            let text = msg.to_string();
            let mut parts = text.split('\n');
            let first = parts.next().unwrap_or_default();
            note(shared, addr, ">", first);
            lines.push(first.to_string());
            for line in parts {
                if let Message::Snapshot { .. } = msg {
                    // The data: its size only (a snapshot holds password verifiers).
                    let size = format!("<{} bytes of snapshot data>", line.len() + 1);
                    note(shared, addr, "-", &size);
                } else {
                    note(shared, addr, ">", line);
                }
                lines.push(line.to_string());
            }
        }
        if lines.is_empty() {
            lines.push("PING".to_string());
            note(shared, addr, ">", "PING");
        }
        if conn.send_lines(&lines).is_err() {
            return false;
        }
    }
}

/// Read a `SNAPSHOT`'s data line (its length is on the first line) as a data block.
fn read_snapshot_data(conn: &mut Conn, first: &str) -> Result<String, String> {
    let n = snapshot_data_len(first).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; n + 1];
    conn.read_data(&mut buf, Instant::now() + IO * 4)
        .map_err(|e| format!("snapshot data: {e:?}"))?;
    if buf.pop() != Some(b'\n') {
        return Err("the snapshot data line is longer than announced".into());
    }
    String::from_utf8(buf).map_err(|_| "the snapshot data is not text".into())
}

#[cfg(test)]
mod tests {
    use super::shown;

    #[test]
    fn a_traced_entry_never_shows_password_verifiers() {
        let line = "ENTRY 1 126 4c43786d06fa96f4.2 CREATE-USER user1 100000 7DJvicgW3ziyL/1oI4IDrQ== AQEBAQEBAQEBAQEBAQEBAQEBAQE= AgICAgICAgICAgICAgICAgICAgI=";
        assert_eq!(
            shown(line),
            "ENTRY 1 126 4c43786d06fa96f4.2 CREATE-USER user1 <redacted>"
        );
        assert_eq!(
            shown(
                "ACK cluster 2 0123456789abcdef0123456789abcdef 00112233445566778899aabbccddeeff00112233"
            ),
            "ACK cluster 2 0123456789abcdef0123456789abcdef <redacted>"
        );
        assert_eq!(shown("PROOF 00112233"), "PROOF <redacted>");
        for same in [
            "ACK cluster 2",
            "CLUSTER 0123456789abcdef 1 - 0123456789abcdef0123456789abcdef",
            "ENTRY 2 28 a.1 CREATE-GROUP physics alice",
            "APPEND 1 2 3 4 5 1",
            "ENTRY 1 0 ",
        ] {
            assert_eq!(shown(same), same);
        }
    }
}
