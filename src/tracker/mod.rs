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

pub mod accounts;
pub mod bt_announce;
pub mod cluster;
pub mod holders;
pub mod member;
pub mod registry;
pub mod replica;
pub mod sessions;
pub mod standby;

use std::fmt::Write as _;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::admission::ConnLimits;
use crate::conn::sniff::{Opening, peer_name};
use crate::conn::{Conn, Timeouts, Trace};
use crate::protocol::{ErrCode, ProtoError, Reply, Request, Role};
use crate::server::{Answer, Server, line_loop};
use accounts::{AccountsConfig, Auth, AuthConn};
use holders::{Asker, Turns};
pub use registry::Limits;
use registry::{PeerId, Registry, Session};
use standby::Standbys;

/// How a tracker runs.
#[derive(Clone, Debug)]
pub struct TrackerConfig {
    /// Most connections open at once; at the cap the heaviest address's longest-idle
    /// connection is closed to make room (`admission.rs`).
    pub max_conns: usize,
    /// Most connections open at once from one remote address; the next one is answered
    /// `ERR busy`.
    pub max_conns_per_addr: usize,
    /// What one address, and everyone together, may register and announce.
    pub limits: Limits,
    /// A connection silent this long is closed (three heartbeats).
    pub idle: Duration,
    pub trace: Trace,
    /// Accounts and groups: the state folder, the iteration count (`accounts.rs`).
    pub accounts: AccountsConfig,
    /// Asked before every request but `PING`, `HELP` and `BYE` (a cluster follower answers
    /// `ERR not-leader ADDR` instead); a lone tracker has none.
    pub gate: Gate,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            max_conns: 10_000,
            max_conns_per_addr: 64,
            limits: Limits::default(),
            idle: Duration::from_secs(30),
            trace: Trace::off(),
            gate: Gate::default(),
            accounts: AccountsConfig::default(),
        }
    }
}

impl TrackerConfig {
    /// Every client is this one machine (the simulations, the benchmarks): the per-address
    /// caps are lifted to the totals, which stay.
    pub fn one_host() -> TrackerConfig {
        let config = TrackerConfig::default();
        TrackerConfig {
            max_conns_per_addr: config.max_conns,
            limits: Limits {
                peers_per_addr: config.max_conns,
                files_per_addr: config.limits.files_total,
                ..config.limits
            },
            ..config
        }
    }
}

/// A check run before a request is handled; `Err` is the reply instead. It must be quick and
/// must not block (it reads a cluster member's published role).
#[derive(Clone, Default)]
pub struct Gate(pub Option<Arc<GateCheck>>);

/// A gate's check, shown the request it lets through or refuses.
pub type GateCheck = dyn Fn(&Request) -> Result<(), ProtoError> + Send + Sync;

impl Gate {
    fn refuse(&self, request: &Request) -> Option<ProtoError> {
        let check = self.0.as_ref()?;
        match request {
            Request::Ping | Request::Help | Request::Bye => None,
            _ => check(request).err(),
        }
    }
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Gate(on)"
        } else {
            "Gate(off)"
        })
    }
}

/// A running tracker. Dropping it stops it.
pub struct Tracker {
    server: Server,
    registry: Arc<Mutex<Registry>>,
    swarms: Arc<Mutex<bt_announce::Swarms>>,
    auth: Arc<Auth>,
}

impl Tracker {
    /// Serve on an already bound listener (bind `127.0.0.1:0` in tests).
    pub fn start(listener: TcpListener, config: TrackerConfig) -> io::Result<Tracker> {
        Tracker::start_with(listener, config, true)
    }

    /// A tracker for public files only, with no accounts: every account and group verb is
    /// answered `ERR unavailable` (a peer's interim tracker, `peer/interim.rs`; its state is
    /// soft, refilled by the peers that re-announce to it).
    pub fn start_public_only(listener: TcpListener, config: TrackerConfig) -> io::Result<Tracker> {
        Tracker::start_with(listener, config, false)
    }

    fn start_with(
        listener: TcpListener,
        config: TrackerConfig,
        with_accounts: bool,
    ) -> io::Result<Tracker> {
        let registry = Arc::new(Mutex::new(Registry::with_limits(config.limits)));
        let state = registry.clone();
        // A damaged journal stops the start here, with the message naming the line.
        let (auth, warnings) = Auth::open(config.accounts.clone()).map_err(io::Error::other)?;
        for warning in warnings {
            eprintln!("tracker: warning: {warning}");
        }
        let auth = Arc::new(auth);
        let auth2 = auth.clone();
        let serial = AtomicU64::new(0);
        let timeouts = Timeouts {
            idle: config.idle,
            line: Duration::from_secs(10).min(config.idle),
            io: Duration::from_secs(10),
        };
        let heartbeat = (config.idle / 3).max(Duration::from_millis(100));
        let conn_limits = ConnLimits {
            total: config.max_conns,
            per_addr: config.max_conns_per_addr,
        };
        let swarms: Arc<Mutex<bt_announce::Swarms>> = Arc::default();
        let swarms2 = swarms.clone();
        let standbys: Arc<Standbys> = Arc::default();
        let server = Server::spawn_limited(listener, "tracker", conn_limits, move |stream| {
            // One port: our lines, and BitTorrent's HTTP announces (`GET /announce?...`).
            match crate::conn::sniff::opening(&stream, timeouts) {
                Opening::Silent => {
                    return crate::server::silent(stream, timeouts, config.trace.clone());
                }
                Opening::Http => {
                    let trace = &config.trace;
                    return bt_announce::serve_http(&swarms2, &state, &stream, timeouts, trace);
                }
                Opening::BitTorrent => {
                    let why =
                        "a BitTorrent handshake at the tracker; peers speak it, not the tracker";
                    return config.trace.note(&peer_name(&stream), "-", why);
                }
                Opening::Refuse(why) => return config.trace.note(&peer_name(&stream), "-", &why),
                Opening::Gone => return,
                Opening::Line => {}
            }
            let Ok(mut conn) = Conn::new(stream, timeouts, config.trace.clone()) else {
                return;
            };
            let mut client = Client::new(conn.remote().ip(), heartbeat);
            let id = serial.fetch_add(1, Ordering::Relaxed) + 1;
            if with_accounts {
                client.account = Some((auth2.clone(), AuthConn::new(id)));
            }
            client.standby = Some(Offer {
                list: standbys.clone(),
                conn: id,
                offered: None,
            });
            serve_connection(&state, &mut conn, client, &config.gate);
        })?;
        Ok(Tracker {
            server,
            registry,
            swarms,
            auth,
        })
    }

    /// The accounts service (tests and the simulation look at its state).
    pub fn auth(&self) -> &Arc<Auth> {
        &self.auth
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The BitTorrent clients that announced `info_hash` here, each with "is a seeder"
    /// (tests wait on it).
    pub fn bt_members(&self, info_hash: &[u8; 20]) -> Vec<(SocketAddr, bool)> {
        self.swarms
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .members(info_hash)
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
    /// The accounts service and this connection's login (`None`: account verbs are refused).
    account: Option<(Arc<Auth>, AuthConn)>,
    /// Where this connection's `PEERS` windows stand (`holders.rs`).
    turns: Turns,
    /// The tracker's standby list and what this connection offered on it (`STANDBY`).
    standby: Option<Offer>,
}

/// One connection's place on the standby list.
struct Offer {
    list: Arc<Standbys>,
    /// The connection's serial number (an offer is withdrawn by the connection that made it).
    conn: u64,
    offered: Option<SocketAddr>,
}

impl Client {
    fn new(ip: IpAddr, heartbeat: Duration) -> Client {
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

fn serve_connection(registry: &Mutex<Registry>, conn: &mut Conn, mut client: Client, gate: &Gate) {
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
fn handle(registry: &Mutex<Registry>, client: &mut Client, request: Request) -> Answer {
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
    // to peers on it.
    for a in offer
        .list
        .list(|a| holders::reachable(&a.to_string(), client.ip))
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

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::protocol::parse_request;

    /// A registry and one client on it, talking lines as `nc` would, but without a socket.
    struct World {
        registry: Mutex<Registry>,
    }

    impl World {
        fn new() -> World {
            World {
                registry: Mutex::new(Registry::new()),
            }
        }
        fn client(&self) -> Client {
            Client::new(IpAddr::V4(Ipv4Addr::LOCALHOST), Duration::from_secs(10))
        }
        /// The reply line to `line`, as the wire would carry it.
        fn ask(&self, client: &mut Client, line: &str) -> String {
            let request = parse_request(line.as_bytes()).expect("a well-formed line");
            match handle(&self.registry, client, request) {
                Answer::Line(reply) | Answer::Close(reply) => reply.to_string(),
                Answer::Data(bytes) => String::from_utf8(bytes).expect("text"),
                Answer::File(_) => panic!("the tracker never sends a file"),
            }
        }
    }

    const SHA: &str = "dc3568154e339e0670a8a5d286ab2c810e9cb962";

    fn upload(name: &str, size: u64) -> String {
        format!("UPLOAD {name} {size} 1024 {SHA} {SHA}")
    }

    #[test]
    fn register_upload_whohas_info() {
        let w = World::new();
        let mut a = w.client();
        assert_eq!(
            w.ask(&mut a, "REGISTER 9000"),
            "ACK 127.0.0.1:9000 heartbeat=10"
        );
        assert_eq!(w.ask(&mut a, &upload("f", 27)), format!("ACK f {SHA}"));
        let mut b = w.client();
        assert_eq!(w.ask(&mut b, "WHOHAS f"), "PEERS 127.0.0.1:9000");
        assert_eq!(
            w.ask(&mut b, "INFO f"),
            format!("FILE f 27 1024 {SHA} {SHA}")
        );
        assert_eq!(
            w.ask(&mut b, "LIST"),
            format!("f 27 {SHA} full=1 partial=0\n")
        );
        assert_eq!(w.ask(&mut b, "WHOHAS g"), "ERR not-found no peer holds g");
    }

    #[test]
    fn loopback_holders_are_hidden_from_lan_askers_and_advertise_names_the_lan_address() {
        let w = World::new();
        let lan = |last: u8| {
            Client::new(
                IpAddr::V4(Ipv4Addr::new(192, 168, 1, last)),
                Duration::from_secs(10),
            )
        };
        let (mut local, mut adv, mut asker) = (w.client(), w.client(), lan(7));
        assert_eq!(
            w.ask(&mut local, "REGISTER 9000"),
            "ACK 127.0.0.1:9000 heartbeat=10"
        );
        w.ask(&mut local, &upload("f", 27));
        assert!(
            w.ask(&mut asker, "WHOHAS f")
                .starts_with("ERR not-found f is held only at loopback")
        );
        assert_eq!(
            w.ask(&mut adv, "REGISTER 9001 192.168.1.5"),
            "ACK 192.168.1.5:9001 heartbeat=10"
        );
        w.ask(&mut adv, &upload("f", 27));
        assert_eq!(w.ask(&mut asker, "WHOHAS f"), "PEERS 192.168.1.5:9001");
        assert_eq!(
            w.ask(&mut local, "WHOHAS f"),
            "PEERS 127.0.0.1:9000 192.168.1.5:9001"
        );
        let mut liar = lan(8);
        assert!(
            w.ask(&mut liar, "REGISTER 9002 192.168.1.9")
                .starts_with("ERR bad-request this connection comes from 192.168.1.8")
        );
    }

    #[test]
    fn the_standby_list_follows_the_loopback_rule() {
        let w = World::new();
        let list: Arc<Standbys> = Arc::default();
        let with_list = |mut c: Client, conn: u64| {
            c.standby = Some(Offer {
                list: list.clone(),
                conn,
                offered: None,
            });
            c
        };
        let mut local = with_list(w.client(), 1);
        let lan = Client::new(
            IpAddr::V4(Ipv4Addr::new(192, 168, 1, 7)),
            Duration::from_secs(10),
        );
        let mut lan = with_list(lan, 2);
        w.ask(&mut local, "REGISTER 9000");
        assert_eq!(
            w.ask(&mut local, "STANDBY 7000"),
            "ACK standby 127.0.0.1:7000"
        );
        w.ask(&mut lan, "REGISTER 9001");
        // The LAN peer is not handed the tracker's loopback; the local one sees both.
        assert_eq!(
            w.ask(&mut lan, "STANDBY 7001"),
            "ACK standby 192.168.1.7:7001"
        );
        assert_eq!(
            w.ask(&mut local, "STANDBY 7000"),
            "ACK standby 127.0.0.1:7000 192.168.1.7:7001"
        );
    }

    #[test]
    fn announcing_needs_a_registration() {
        let w = World::new();
        let mut c = w.client();
        for line in [upload("f", 27).as_str(), "PARTIAL f", "REMOVE f"] {
            assert_eq!(
                w.ask(&mut c, line),
                "ERR not-registered send REGISTER <port> first"
            );
        }
    }

    #[test]
    fn other_content_under_a_shared_name_is_a_conflict() {
        let w = World::new();
        let (mut a, mut b) = (w.client(), w.client());
        w.ask(&mut a, "REGISTER 9000");
        w.ask(&mut b, "REGISTER 9001");
        w.ask(&mut a, &upload("f", 27));
        assert_eq!(
            w.ask(&mut b, &upload("f", 28)),
            format!("ERR conflict f is already shared as size 27, piece size 1024, sha1 {SHA}")
        );
    }

    #[test]
    fn a_live_id_is_not_taken_over_and_re_registering_starts_afresh() {
        let w = World::new();
        let (mut a, mut b) = (w.client(), w.client());
        w.ask(&mut a, "REGISTER 9000");
        w.ask(&mut a, &upload("f", 27));
        assert!(
            w.ask(&mut b, "REGISTER 9000")
                .starts_with("ERR conflict 127.0.0.1:9000 is registered by another connection")
        );
        // The first connection registers again (as another port): its files are dropped.
        w.ask(&mut a, "REGISTER 9002");
        assert_eq!(w.ask(&mut b, "WHOHAS f"), "ERR not-found no peer holds f");
        assert_eq!(
            w.ask(&mut b, "REGISTER 9000"),
            "ACK 127.0.0.1:9000 heartbeat=10"
        );
    }

    #[test]
    fn peer_verbs_help_and_bye() {
        let w = World::new();
        let mut c = w.client();
        assert_eq!(
            w.ask(&mut c, "GET f"),
            "ERR unknown-verb GET is a peer verb; this is the tracker (try HELP)"
        );
        assert_eq!(
            w.ask(&mut c, "HELP"),
            concat!(
                "ACK tracker verbs: REGISTER UPLOAD PARTIAL REMOVE WHOHAS INFO LIST STANDBY SALT ",
                "CREATE-USER LOGIN PROOF LOGOUT CREATE-GROUP JOIN LEAVE REQUESTS ACCEPT GROUPS ",
                "FILES GUPLOAD GREMOVE GWHOHAS GINFO GRANT VOUCH PING HELP BYE"
            )
        );
        let request = parse_request(b"BYE").expect("BYE parses");
        assert!(matches!(
            handle(&w.registry, &mut c, request),
            Answer::Close(Reply::Ack(text)) if text == "bye"
        ));
    }
}
