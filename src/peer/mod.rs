//! A peer: serves the files in its folder, downloads what it is asked to, and keeps the
//! tracker told what it holds.
//!
//! - `store/`: the folder (complete files, part files, piece hashes); never a socket.
//! - `server.rs`: answers other peers (`GET`, `PIECE`, `HAVE`, `HASHES`);
//!   `torrent_serve.rs` sends the bytes of a torrent's entry, across its files.
//! - `link/`: the one connection to the tracker, owned by one thread.
//! - `interim.rs`: the standby tracker and the rule the peers elect an interim tracker by
//!   when every tracker is gone.
//! - `picker.rs`: which piece to ask of which peer (pure).
//! - `download/`: a download from start to publish (prepare, coordinator, fetchers,
//!   verifiers, their shared state).
//! - `watch.rs`: looks at the folder every few seconds and announces what changed.
//! - `events.rs`: the peer's messages to its user, printed and kept.
//! - `shell.rs`: the interactive prompt.
//! - `groups/`: group files in `DIR/.groups/<group>/`, served only against a ticket; the
//!   account commands (login, groups, group uploads and downloads).

pub mod bt_serve;
pub mod download;
pub mod events;
pub mod groups;
pub mod interim;
pub mod link;
pub mod picker;
pub mod retry;
pub mod server;
pub mod shell;
pub mod store;
pub mod torrent_serve;
pub mod trackers;
pub mod watch;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::admission::ConnLimits;
use crate::conn::sniff::{Opening, peer_name};
use crate::conn::{Conn, Timeouts, Trace};
use crate::protocol::{Meta, Reply, Request};
use crate::server::Server;
use download::{Context, DownloadError, DownloadOptions, Progress, Report};
use events::Events;
use link::{Answer, Link};
use store::Store;
use watch::Watcher;

/// How a peer runs.
#[derive(Clone, Debug)]
pub struct PeerConfig {
    /// The tracker, `host:port`; or several, separated by commas, tried as `trackers.rs`
    /// says (one at a time, the one that works kept, `ERR not-leader ADDR` followed).
    pub tracker: String,
    /// The folder it shares from and downloads into.
    pub dir: PathBuf,
    /// Most connections its server accepts at once.
    pub max_conns: usize,
    /// Most connections its server accepts at once from one remote address.
    pub max_conns_per_addr: usize,
    /// Timeouts of its server's connections and of its tracker link.
    pub timeouts: Timeouts,
    pub download: DownloadOptions,
    /// Piece size for files it hashes (default: `protocol::default_piece_size`).
    pub piece_size: Option<u32>,
    pub trace: Trace,
    /// A name for its messages, e.g. `peer 10000`.
    pub label: String,
    /// How often the folder is looked at again for new, edited and removed files (`None`:
    /// only once, at start).
    pub rescan_every: Option<Duration>,
    /// The address other hosts reach this peer at, told to the tracker (`REGISTER <port>
    /// <host>`, `--advertise`); `None`: the address its tracker connection comes from.
    pub advertise: Option<std::net::IpAddr>,
    /// Run a standby tracker and offer it, so that this peer can be elected interim tracker
    /// when every tracker is gone (`interim.rs`); off for a one-shot `get`.
    pub standby: bool,
}

impl PeerConfig {
    pub fn new(tracker: &str, dir: &Path) -> PeerConfig {
        PeerConfig {
            tracker: tracker.to_string(),
            dir: dir.to_path_buf(),
            max_conns: 1024,
            max_conns_per_addr: 32,
            timeouts: Timeouts::default(),
            download: DownloadOptions::default(),
            piece_size: None,
            trace: Trace::off(),
            label: "peer".into(),
            rescan_every: Some(Duration::from_secs(2)),
            advertise: None,
            standby: true,
        }
    }
}

/// A running peer. Dropping it stops its server and says `BYE` to the tracker.
pub struct Peer {
    store: Arc<Store>,
    server: Server,
    link: Link,
    config: PeerConfig,
    downloads: Mutex<BTreeMap<String, Arc<Progress>>>,
    events: Arc<Events>,
    watcher: Option<Watcher>,
    groups: Arc<groups::Groups>,
    standby: Option<Arc<interim::Standby>>,
}

impl Peer {
    /// Share every file in the folder, serve on `listener`, and connect to the tracker (in the
    /// background: a tracker that is not up yet is waited for).
    pub fn start(listener: TcpListener, config: PeerConfig) -> Result<Peer, String> {
        let store = Arc::new(Store::open(&config.dir, config.piece_size)?);
        let events = Arc::new(Events::new(&config.label));
        let (_, warnings) = store.scan();
        for w in warnings {
            events.say(&w);
        }
        let addr = listener
            .local_addr()
            .map_err(|e| format!("cannot read the listening address: {e}"))?;
        let groups = Arc::new(groups::Groups::open(&config.dir, config.piece_size));
        let (store2, timeouts, trace) = (store.clone(), config.timeouts, config.trace.clone());
        let groups2 = groups.clone();
        let limits = ConnLimits {
            total: config.max_conns,
            per_addr: config.max_conns_per_addr,
        };
        let bt_id = bt_serve::peer_id(addr.port());
        let server = Server::spawn_limited(listener, "peer", limits, move |stream| {
            // One port, two wires: BitTorrent's handshake starts with byte 19, a line never.
            match crate::conn::sniff::opening(&stream, timeouts) {
                Opening::Silent => crate::server::silent(stream, timeouts, trace.clone()),
                Opening::BitTorrent => bt_serve::serve(&store2, &stream, timeouts, &trace, bt_id),
                Opening::Refuse(why) => trace.note(&peer_name(&stream), "-", &why),
                Opening::Gone => {}
                Opening::Line | Opening::Http => {
                    if let Ok(mut conn) = Conn::new(stream, timeouts, trace.clone()) {
                        server::serve_connection_with(&store2, &groups2, &mut conn);
                    }
                }
            }
        })
        .map_err(|e| format!("cannot start the server: {e}"))?;
        let standby = match config.standby {
            true => Some(Arc::new(
                interim::Standby::start(addr.ip(), config.trace.clone(), &config.label)
                    .map_err(|e| format!("cannot start the standby tracker: {e}"))?,
            )),
            false => None,
        };
        let link = Link::start_with(
            &config.tracker,
            (addr.port(), config.advertise),
            store.clone(),
            config.timeouts,
            (config.trace.clone(), config.label.clone()),
            standby.clone(),
        );
        groups.set_ask(link.shared_caller());
        let groups3 = groups.clone();
        link.set_on_connect(Arc::new(move |conn| groups::relogin(&groups3, conn)));
        let post = link.poster();
        let events2 = events.clone();
        store.on_change(Box::new(move |name| {
            events2.say(&format!(
                "{name} changed on disk since it was shared; no longer sharing it"
            ));
            post(Request::Remove { name: name.into() });
        }));
        let watcher = config.rescan_every.map(|every| {
            let call = Box::new(link.caller());
            Watcher::start(store.clone(), call, events.clone(), every)
        });
        Ok(Peer {
            store,
            server,
            link,
            config,
            downloads: Mutex::default(),
            events,
            watcher,
            groups,
            standby,
        })
    }

    /// Where this peer serves.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Wait until the tracker has registered this peer; its id (`ip:port`).
    pub fn wait_registered(&self, timeout: Duration) -> Result<String, String> {
        self.link.wait_registered(timeout)
    }

    /// What its tracker link knows: where it is registered, whether that is an interim
    /// tracker, the standby list it would elect from.
    pub fn link_state(&self) -> link::LinkState {
        self.link.state()
    }

    /// Wait up to `timeout` until `ready` holds of the link's state.
    pub fn wait_link(
        &self,
        timeout: Duration,
        ready: impl Fn(&link::LinkState) -> bool,
    ) -> Result<link::LinkState, link::LinkState> {
        self.link.wait_state(timeout, ready)
    }

    /// Its standby tracker (the address it offers for an interim tracker is its `addr`).
    pub fn standby(&self) -> Option<&Arc<interim::Standby>> {
        self.standby.as_ref()
    }

    /// Download `name` into the folder (blocks until done or failed).
    pub fn download(&self, name: &str) -> Result<Report, DownloadError> {
        self.run_download(name, |ctx| download::download(ctx, name))
    }

    /// Download what the .torrent `t` describes into the folder (`DIR/NAME` or
    /// `DIR/NAME/...`), checking every piece against the .torrent; blocks until done or failed.
    pub fn download_torrent(&self, t: &crate::torrent::Metainfo) -> Result<Report, DownloadError> {
        self.run_download(&t.name, |ctx| download::download_torrent(ctx, t))
    }

    /// Run one download under `name` in `downloads` (so `status` shows it), with this peer's
    /// context, and record its outcome.
    fn run_download(
        &self,
        name: &str,
        run: impl FnOnce(&Context) -> Result<Report, DownloadError>,
    ) -> Result<Report, DownloadError> {
        let me = self
            .link
            .wait_registered(self.config.timeouts.idle)
            .map_err(DownloadError::Failed)?;
        let progress = Arc::new(Progress::new(name));
        self.downloads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_string(), progress.clone());
        let ctx = Context {
            store: &self.store,
            link: &self.link,
            me: &me,
            options: &self.config.download,
            progress: &progress,
            events: &self.events,
        };
        let result = run(&ctx);
        *progress
            .outcome
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(match &result {
            Ok(report) => Ok(report.to_string()),
            Err(e) => Err(e.to_string()),
        });
        result
    }

    /// Seed what the .torrent at `path` describes, from the data beside it (`NAME` in the
    /// .torrent's folder): every piece is checked against the .torrent first, then the
    /// torrent is announced as `bt-<info-hash>`. Returns the .torrent and its `FILE` line.
    pub fn share_torrent(&self, path: &Path) -> Result<(crate::torrent::Metainfo, Meta), String> {
        let t = crate::torrent::cli::load_torrent(path)?;
        let base = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let meta = self.store.share_torrent(&t, &base)?;
        // Not connected yet: the link announces every entry when it registers.
        let Ok(reply) = self.link.call_line(Request::Upload(meta.clone())) else {
            return Ok((t, meta));
        };
        match reply {
            Reply::Ack(_) => Ok((t, meta)),
            Reply::Err(code, msg) => {
                self.store.forget(&meta.name);
                Err(format!(
                    "the tracker refused {} ({}): {} {msg}",
                    t.name,
                    meta.name,
                    code.as_str()
                ))
            }
            other => Err(format!("the tracker answered {other}")),
        }
    }

    /// Downloads started by this peer, running and finished.
    pub fn downloads(&self) -> Vec<Arc<Progress>> {
        self.downloads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// Share a file: bring it into the folder (hard link or copy) and announce it.
    pub fn share(&self, path: &Path) -> Result<Meta, String> {
        let meta = self.store.share_path(path)?;
        match self.link.call_line(Request::Upload(meta.clone()))? {
            Reply::Ack(_) => Ok(meta),
            Reply::Err(code, msg) => {
                // Not shared, and left alone by the watcher until the file changes.
                let stamp = self.store.get(&meta.name).and_then(|e| e.stamp);
                self.store.forget(&meta.name);
                self.store.hold_back(&meta.name, stamp);
                Err(format!(
                    "the tracker refused {}: {} {msg}",
                    meta.name,
                    code.as_str()
                ))
            }
            other => Err(format!("the tracker answered {other}")),
        }
    }

    /// Stop sharing `name` (the file stays in the folder).
    pub fn stop_share(&self, name: &str) -> Result<(), String> {
        if !self.store.unshare(name) {
            return Err(format!("{name} is not shared by this peer"));
        }
        match self.link.call_line(Request::Remove { name: name.into() })? {
            Reply::Ack(_) => Ok(()),
            other => Err(format!("the tracker answered {other}")),
        }
    }

    /// Ask the tracker something: one line, or the text of a data block.
    pub fn ask_tracker(&self, request: Request) -> Result<String, String> {
        match self.link.call(request)? {
            Answer::Line(reply) => Ok(reply.to_string()),
            Answer::Data(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        }
    }

    /// What this peer has told its user (the last few hundred lines), oldest first.
    pub fn events(&self) -> Vec<String> {
        self.events.lines()
    }

    /// Stop watching the folder, stop serving and leave the tracker.
    pub fn stop(&mut self) {
        if let Some(mut watcher) = self.watcher.take() {
            watcher.stop();
        }
        self.server.stop();
        self.link.stop();
        // The standby last: the link may have been registered with it.
        self.standby = None;
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stop();
    }
}
