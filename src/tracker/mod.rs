//! The tracker: a directory of who holds what. It never stores or relays file contents.
//!
//! `registry.rs` is the state (pure); this module is the server around it: the accept loop from
//! `server.rs`, one thread per connection, and `handle`, which turns one request into one reply
//! while holding the registry's lock for a few map operations and never across I/O.
//!
//! Liveness: a peer's registration lives as long as its connection. A peer pings every
//! `heartbeat` seconds (the tracker says how often in its `ACK`); a connection silent for three
//! heartbeats is closed and its peer forgotten, so a host that vanished without a FIN is
//! noticed too.
//!
//! Where things are:
//! - `mod.rs` (this file): `Tracker`: start (one port for our lines and BitTorrent's HTTP
//!   announce), stop, and the looks tests take at its state.
//! - `config.rs`: `TrackerConfig` and the `Gate` asked before each request.
//! - `handle.rs`: one connection: `serve_connection` and `handle`.
//! - `tests.rs`: `handle`'s unit tests, without sockets.

pub mod accounts;
pub mod bt_announce;
pub mod cluster;
pub mod holders;
pub mod member;
pub mod registry;
pub mod replica;
pub mod sessions;
pub mod standby;

mod config;
mod handle;
#[cfg(test)]
mod tests;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::admission::ConnLimits;
use crate::conn::sniff::{Opening, peer_name};
use crate::conn::{Conn, Timeouts};
use crate::server::Server;
use accounts::{Auth, AuthConn};
pub use config::{Gate, TrackerConfig};
use handle::{Client, Offer, serve_connection};
pub use registry::Limits;
use registry::Registry;
use standby::Standbys;

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
