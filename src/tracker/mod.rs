//! The tracker: a directory of who holds what. It never stores or relays file contents.
//!
//! `registry.rs` is the state (pure); this file is the server around it: the accept loop from
//! `server.rs`, one thread per connection, and `handle`, which turns one request into one reply
//! while holding the registry's lock for a few map operations and never across I/O.
//!
//! Liveness: a peer's registration lives as long as its connection. A peer pings every
//! `heartbeat` seconds (the tracker says how often in its `ACK`); a connection silent for three
//! heartbeats is closed and its peer forgotten, so a host that vanished without a FIN is
//! noticed too.

pub mod registry;

use std::fmt::Write as _;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::conn::{Conn, Timeouts, Trace};
use crate::protocol::{ErrCode, Reply, Request};
use crate::server::{Flow, Server, line_loop};
use registry::{PeerId, Registry, Session};

/// How a tracker runs.
#[derive(Clone, Debug)]
pub struct TrackerConfig {
    /// Most connections open at once; the next one is answered `ERR busy`.
    pub max_conns: usize,
    /// A connection silent this long is closed (three heartbeats).
    pub idle: Duration,
    pub trace: Trace,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            max_conns: 10_000,
            idle: Duration::from_secs(30),
            trace: Trace::off(),
        }
    }
}

/// A running tracker. Dropping it stops it.
pub struct Tracker {
    server: Server,
    registry: Arc<Mutex<Registry>>,
}

impl Tracker {
    /// Serve on an already bound listener (bind `127.0.0.1:0` in tests).
    pub fn start(listener: TcpListener, config: TrackerConfig) -> io::Result<Tracker> {
        let registry = Arc::new(Mutex::new(Registry::new()));
        let state = registry.clone();
        let timeouts = Timeouts {
            idle: config.idle,
            line: Duration::from_secs(10).min(config.idle),
            io: Duration::from_secs(10),
        };
        let heartbeat = (config.idle / 3).max(Duration::from_millis(100));
        let server = Server::spawn(listener, "tracker", config.max_conns, move |stream| {
            let Ok(mut conn) = Conn::new(stream, timeouts, config.trace.clone()) else {
                return;
            };
            serve_connection(&state, &mut conn, heartbeat);
        })?;
        Ok(Tracker { server, registry })
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// A look at the registry (for tests and the simulation).
    pub fn registry(&self) -> MutexGuard<'_, Registry> {
        lock(&self.registry)
    }

    pub fn stop(&mut self) {
        self.server.stop();
    }
}

fn lock(registry: &Mutex<Registry>) -> MutexGuard<'_, Registry> {
    // A panic elsewhere must not take the tracker down with it: the registry's methods leave
    // it consistent at every return, so a poisoned lock is still good data.
    registry.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One client connection: who it is, once it has registered.
struct Client {
    ip: IpAddr,
    heartbeat: Duration,
    registered: Option<(PeerId, Session)>,
}

/// What `handle` asks the connection to send.
enum Answer {
    Line(Reply),
    Data(Vec<u8>),
    Bye,
}

fn serve_connection(registry: &Mutex<Registry>, conn: &mut Conn, heartbeat: Duration) {
    let mut client = Client {
        ip: conn.remote().ip(),
        heartbeat,
        registered: None,
    };
    line_loop(conn, |conn, request| {
        match handle(registry, &mut client, request) {
            Answer::Line(reply) => conn.send_line(&reply.to_string())?,
            Answer::Data(bytes) => conn.send_data(&bytes)?,
            Answer::Bye => {
                conn.send_line(&Reply::Ack("bye".into()).to_string())?;
                return Ok(Flow::Close);
            }
        }
        Ok(Flow::Continue)
    });
    if let Some((id, session)) = client.registered {
        lock(registry).forget(&id, session);
    }
}

/// Answer one request. Holds the registry lock only inside this function, never while the
/// reply is written.
fn handle(registry: &Mutex<Registry>, client: &mut Client, request: Request) -> Answer {
    let reply = match request {
        Request::Register { port } => {
            let id = SocketAddr::new(client.ip, port).to_string();
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
        Request::WhoHas { name } => lock(registry).who_has(&name).map(Reply::Peers),
        Request::Info { name } => lock(registry).info(&name).map(Reply::File),
        Request::List => {
            let listing = lock(registry).list();
            let mut text = String::new();
            for l in listing {
                let _ = writeln!(
                    text,
                    "{} {} {} full={} partial={}",
                    l.meta.name, l.meta.size, l.meta.sha1, l.full, l.partial
                );
            }
            return Answer::Data(text.into_bytes());
        }
        Request::Ping => Ok(Reply::Pong),
        Request::Help => Ok(Reply::Ack(
            "tracker verbs: REGISTER UPLOAD PARTIAL REMOVE WHOHAS INFO LIST PING HELP BYE".into(),
        )),
        Request::Bye => return Answer::Bye,
        Request::Hello { .. }
        | Request::Get { .. }
        | Request::Piece { .. }
        | Request::Have { .. }
        | Request::Hashes { .. } => {
            let verb = request.to_string();
            let verb = verb.split(' ').next().unwrap_or_default();
            Err(crate::protocol::ProtoError::new(
                ErrCode::UnknownVerb,
                format!("{verb} is a peer verb; this is the tracker (try HELP)"),
            ))
        }
    };
    Answer::Line(reply.unwrap_or_else(|e| e.into_reply()))
}

/// Seconds as a short decimal: `10`, `0.5`.
fn seconds(d: Duration) -> String {
    let text = format!("{:.3}", d.as_secs_f64());
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn registered(client: &Client) -> Result<(&str, Session), crate::protocol::ProtoError> {
    match &client.registered {
        Some((id, session)) => Ok((id, *session)),
        None => Err(crate::protocol::ProtoError::new(
            ErrCode::NotRegistered,
            "send REGISTER <port> first",
        )),
    }
}
