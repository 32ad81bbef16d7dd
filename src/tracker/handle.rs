//! One tracker connection: its state (`Client`: the registration, the login, the standby
//! offer), `serve_connection` (the line loop, then forgetting the peer when the connection
//! ends) and `handle`, which turns one request into one answer.
//!
//! `handle` takes the registry's lock only for a few map operations and never across I/O: it
//! returns the `Answer` and the caller writes it. Nothing here may read or write a socket
//! except through `line_loop` in `serve_connection`.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::accounts::{Auth, AuthConn};
use super::holders::{Asker, Turns};
use super::registry::{self, PeerId, Registry, Session};
use super::standby::Standbys;
use super::{Gate, lock};
use crate::conn::Conn;
use crate::protocol::{ErrCode, ProtoError, Reply, Request, Role};
use crate::server::{Answer, line_loop};

/// One client connection: who it is, once it has registered.
pub(super) struct Client {
    ip: IpAddr,
    heartbeat: Duration,
    registered: Option<(PeerId, Session)>,
    /// The accounts service and this connection's login (`None`: account verbs are refused).
    pub(super) account: Option<(Arc<Auth>, AuthConn)>,
    /// Where this connection's `PEERS` windows stand (`holders.rs`).
    turns: Turns,
    /// The tracker's standby list and what this connection offered on it (`STANDBY`).
    pub(super) standby: Option<Offer>,
}

/// One connection's place on the standby list.
pub(super) struct Offer {
    pub(super) list: Arc<Standbys>,
    /// The connection's serial number (an offer is withdrawn by the connection that made it).
    pub(super) conn: u64,
    pub(super) offered: Option<SocketAddr>,
}

impl Client {
    pub(super) fn new(ip: IpAddr, heartbeat: Duration) -> Client {
        Client {
            ip,
            heartbeat,
            registered: None,
            account: None,
            turns: Turns::starting_at(crate::util::Rng::from_time().next_u64()),
            standby: None,
        }
    }
}

pub(super) fn serve_connection(
    registry: &Mutex<Registry>,
    conn: &mut Conn,
    mut client: Client,
    gate: &Gate,
) {
    conn.trace_event("connected");
    line_loop(conn, Role::Tracker, |conn: &mut Conn, request| {
        if let Some(refusal) = gate.refuse(&request) {
            return Answer::Line(refusal.into_reply());
        }
        let answer = handle(registry, &mut client, request);
        if let Some((id, _)) = &client.registered {
            conn.set_name(id);
        }
        answer
    });
    conn.trace_event("disconnected");
    if let Some((auth, account)) = &mut client.account {
        auth.end(account);
    }
    if let Some(Offer {
        list,
        conn,
        offered: Some(addr),
    }) = &client.standby
    {
        list.withdraw(*conn, *addr);
    }
    if let Some((id, session)) = client.registered
        && let Some(files) = lock(registry).forget(&id, session)
    {
        let plural = if files == 1 { "" } else { "s" };
        conn.trace_event(&format!("forgot peer {id} and its {files} file{plural}"));
    }
}

/// Answer one request. Holds the registry lock only inside this function, never while the
/// reply is written.
pub(super) fn handle(registry: &Mutex<Registry>, client: &mut Client, request: Request) -> Answer {
    let reply = match request {
        Request::Register { port } => register(registry, client, SocketAddr::new(client.ip, port)),
        Request::RegisterAs { port, host } => match registry::advertised(client.ip, host) {
            Ok(()) => register(registry, client, SocketAddr::new(host, port)),
            Err(e) => Err(e),
        },
        Request::Upload(meta) => registered(client).and_then(|(id, s)| {
            lock(registry).upload(id, s, &meta)?;
            Ok(Reply::Ack(format!("{} {}", meta.name, meta.sha1)))
        }),
        Request::Partial { name } => registered(client).and_then(|(id, s)| {
            lock(registry).partial(id, s, &name)?;
            Ok(Reply::Ack(format!("{name} partial")))
        }),
        Request::Remove { name } => registered(client).and_then(|(id, s)| {
            lock(registry).remove(id, s, &name)?;
            Ok(Reply::Ack(format!("{name} removed")))
        }),
        Request::WhoHas { name } => {
            let asker = Asker {
                ip: client.ip,
                me: client.registered.as_ref().map(|(id, _)| id.as_str()),
                turn: client.turns.take(),
            };
            lock(registry).peers_for(&name, &asker).map(Reply::Peers)
        }
        Request::Info { name } => lock(registry).info(&name).map(Reply::File),
        Request::List => return list(registry, None),
        Request::ListAfter { after } => return list(registry, Some(&after)),
        Request::Standby { port } => standby(client, port),
        Request::Ping => Ok(Reply::Pong),
        Request::Help => Ok(Reply::Ack(Role::Tracker.help())),
        Request::Bye => return Answer::bye(),
        Request::Account(request) => {
            let peer = client.registered.as_ref().map(|(id, _)| id.as_str());
            return Answer::Line(match &mut client.account {
                Some((auth, account)) => auth.handle(account, client.ip, peer, request),
                None => Reply::Err(
                    ErrCode::Unavailable,
                    "no tracker with accounts is reachable; this interim tracker keeps public files only (account and group verbs come back with a configured tracker)".into(),
                ),
            });
        }
        // `line_loop` answers these before they get here (`check_verb`); a caller that hands
        // one over directly gets the same answer.
        Request::Hello { .. }
        | Request::Get { .. }
        | Request::Piece { .. }
        | Request::Have { .. }
        | Request::Hashes { .. } => {
            let line = request.to_string();
            let verb = line.split(' ').next().unwrap_or_default();
            Err(Role::Tracker.foreign_verb(verb))
        }
    };
    Answer::Line(reply.unwrap_or_else(ProtoError::into_reply))
}

/// `REGISTER`: this connection's peer serves at `addr` (its id), until the connection ends.
fn register(
    registry: &Mutex<Registry>,
    client: &mut Client,
    addr: SocketAddr,
) -> Result<Reply, ProtoError> {
    let id = addr.to_string();
    let mut reg = lock(registry);
    // Registering again on the same connection starts afresh.
    if let Some((old, session)) = client.registered.take() {
        reg.forget(&old, session);
    }
    let session = reg.register(&id);
    drop(reg);
    session.map(|session| {
        client.registered = Some((id.clone(), session));
        Reply::Ack(format!("{id} heartbeat={}", seconds(client.heartbeat)))
    })
}

/// `STANDBY <port>`: this registered peer can run an interim tracker at its listed address
/// with `port`; the answer is the standby list, `ACK standby ADDR...`, lowest first.
fn standby(client: &mut Client, port: u16) -> Result<Reply, ProtoError> {
    let (id, _) = registered(client)?;
    let addr = id
        .parse::<SocketAddr>()
        .map(|a| SocketAddr::new(a.ip(), port))
        .map_err(|_| ProtoError::new(ErrCode::Internal, "this peer's id is not an address"))?;
    let Some(offer) = &mut client.standby else {
        return Err(ProtoError::new(
            ErrCode::Unavailable,
            "this tracker keeps no standby list",
        ));
    };
    offer.list.offer(offer.conn, offer.offered, addr);
    offer.offered = Some(addr);
    let mut text = String::from("standby");
    // The loopback rule, as for holders: a standby on the tracker's machine is listed only
    // to peers on it (filtered before the list is cut).
    for a in offer
        .list
        .list(|a| crate::tracker::holders::reachable(&a.to_string(), client.ip))
    {
        let _ = write!(text, " {a}");
    }
    Ok(Reply::Ack(text))
}

/// One page of `LIST`: the registry lock is held for the page only (at most
/// `registry::LIST_PAGE` entries, found in the sorted map without touching the others), and the
/// reply is built from the copies after it is released.
fn list(registry: &Mutex<Registry>, after: Option<&str>) -> Answer {
    let page = lock(registry).list_page(after, registry::LIST_PAGE);
    let mut text = String::new();
    for l in page {
        let _ = writeln!(
            text,
            "{} {} {} full={} partial={}",
            l.meta.name, l.meta.size, l.meta.sha1, l.full, l.partial
        );
    }
    Answer::Data(text.into_bytes())
}

/// Seconds as a short decimal: `10`, `0.5`.
fn seconds(d: Duration) -> String {
    let text = format!("{:.3}", d.as_secs_f64());
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn registered(client: &Client) -> Result<(&str, Session), ProtoError> {
    match &client.registered {
        Some((id, session)) => Ok((id, *session)),
        None => Err(ProtoError::new(
            ErrCode::NotRegistered,
            "send REGISTER <port> first",
        )),
    }
}
