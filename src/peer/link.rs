//! The peer's link to the tracker: one long-lived connection owned by one thread.
//!
//! The registration lives as long as this connection, so exactly one thread owns it: other
//! threads send it requests over a channel and wait for the reply (no lock is held across the
//! socket). When idle, the thread pings every heartbeat. When the connection breaks (or the
//! tracker is not up yet) it reconnects with backoff, registers again and announces everything
//! the store holds: the tracker's state is soft and refilled by its peers.
//!
//! With several trackers (a cluster), the link still talks to one at a time: `trackers.rs`
//! says which, and the link tells it when a tracker fails or answers `ERR not-leader ADDR`.
//! When every configured tracker is gone, it goes to the interim tracker the peers elect
//! (`peer/interim.rs`; the link's side of it is `interim.rs` here).
//!
//! - `link.rs` (this file): the handle other threads call (`Link`), and what the link knows
//!   (`LinkState`).
//! - `worker.rs`: the thread: connect, register, announce, forward, heartbeat, watch.
//! - `interim.rs`: when to elect, when to move to a lower interim, when to hand back.

mod interim;
mod worker;

use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::conn::{Conn, Timeouts, Trace};
use crate::peer::interim::Standby;
use crate::peer::retry::Retries;
use crate::peer::store::Store;
use crate::peer::trackers::TrackerList;
use crate::protocol::{ErrCode, Holder, Reply, Request};
use crate::util::Rng;
use worker::Worker;

/// A reply from the tracker: a line, or the data block that followed `DATA`.
#[derive(Debug)]
pub enum Answer {
    Line(Reply),
    Data(Vec<u8>),
}

/// Run on the link's thread right after each (re)registration, on its connection (the peer
/// logs in again there). Cloned out of its mutex before it runs: no lock is held across I/O.
pub type OnConnect = Arc<dyn Fn(&mut Conn) + Send + Sync>;

enum Cmd {
    Call(Request, Sender<Result<Answer, String>>),
    Stop,
}

/// What the link knows of its registration.
#[derive(Default)]
struct Status {
    id: Option<String>,
    last_error: Option<String>,
    stopped: bool,
    /// Where it is registered now.
    tracker: Option<String>,
    /// That tracker is an interim one the peers elected.
    interim: bool,
    /// The standby list its tracker handed out last.
    candidates: Vec<String>,
}

impl Status {
    fn look(&self) -> LinkState {
        LinkState {
            id: self.id.clone(),
            tracker: self.tracker.clone(),
            interim: self.interim,
            candidates: self.candidates.clone(),
        }
    }
}

/// A look at the link (tests and the simulation wait on it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkState {
    /// This peer's id, while registered.
    pub id: Option<String>,
    /// The tracker it is registered with now.
    pub tracker: Option<String>,
    /// That tracker is the interim one.
    pub interim: bool,
    /// The standby list it would elect from (`interim::elect`).
    pub candidates: Vec<String>,
}

/// Handle on the tracker link. Dropping it says `BYE` and stops the thread.
pub struct Link {
    tx: Sender<Cmd>,
    status: Arc<(Mutex<Status>, Condvar)>,
    tracker: String,
    thread: Option<JoinHandle<()>>,
    on_connect: Arc<Mutex<Option<OnConnect>>>,
}

/// Largest data block accepted from the tracker (a `LIST`).
pub(crate) const MAX_LIST: u64 = 64 << 20;

impl Link {
    /// Start the link thread; it connects in the background. `tracker` is one `host:port`, or
    /// several separated by commas; `serving` is the port this peer serves on and the address
    /// it asks to be listed at (`None`: where its connection comes from).
    pub fn start(
        tracker: &str,
        serving: (u16, Option<std::net::IpAddr>),
        store: Arc<Store>,
        timeouts: Timeouts,
        trace: Trace,
        label: String,
    ) -> Link {
        Link::start_with(tracker, serving, store, timeouts, (trace, label), None)
    }

    /// `start`, with this peer's standby tracker: offered to the tracker, and opened when the
    /// peers elect this one (`peer/interim.rs`). Without one the link neither offers nor
    /// elects, but follows an interim tracker a standby names.
    pub fn start_with(
        tracker: &str,
        serving: (u16, Option<std::net::IpAddr>),
        store: Arc<Store>,
        timeouts: Timeouts,
        (trace, label): (Trace, String),
        standby: Option<Arc<Standby>>,
    ) -> Link {
        let (tx, rx) = mpsc::channel();
        let status: Arc<(Mutex<Status>, Condvar)> = Arc::default();
        let list = TrackerList::new(
            tracker.split(',').map(str::to_string).collect(),
            Rng::from_time(),
        );
        let (status2, tracker2) = (status.clone(), list.current().to_string());
        let on_connect: Arc<Mutex<Option<OnConnect>>> = Arc::default();
        let on_connect2 = on_connect.clone();
        let thread = thread::Builder::new()
            .name("tracker-link".into())
            .spawn(move || {
                let link = Worker {
                    tracker: tracker2,
                    list,
                    leader_hint: None,
                    port: serving.0,
                    advertise: serving.1,
                    store,
                    timeouts,
                    trace,
                    label,
                    status: status2,
                    on_connect: on_connect2,
                    retries: Retries::default(),
                    standby,
                    candidates: Vec::new(),
                    interim: None,
                    gone_since: None,
                    checked: Instant::now(),
                    elected: None,
                    nudged: Default::default(),
                    listed_ip: None,
                    silent: Default::default(),
                };
                link.run(&rx);
            })
            .ok();
        Link {
            tx,
            status,
            tracker: tracker.to_string(),
            thread,
            on_connect,
        }
    }

    /// Run `hook` after every registration from now on (the peer logs in again there after a
    /// tracker restart).
    pub fn set_on_connect(&self, hook: OnConnect) {
        *self
            .on_connect
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(hook);
    }

    /// Like `caller`, but shareable between threads (a server thread asking the tracker).
    pub fn shared_caller(&self) -> Arc<dyn Fn(Request) -> Result<Reply, String> + Send + Sync> {
        let tx = Mutex::new(self.tx.clone());
        Arc::new(move |request| {
            let (reply_tx, reply_rx) = mpsc::channel();
            let sender = tx.lock().unwrap_or_else(PoisonError::into_inner).clone();
            sender
                .send(Cmd::Call(request, reply_tx))
                .map_err(|_| "the tracker link has stopped".to_string())?;
            match reply_rx.recv() {
                Ok(Ok(Answer::Line(reply))) => Ok(reply),
                Ok(Ok(Answer::Data(_))) => Err("unexpected data block from the tracker".into()),
                Ok(Err(e)) => Err(e),
                Err(_) => Err("the tracker link has stopped".into()),
            }
        })
    }

    /// Wait until registered; returns this peer's id (`ip:port` as the tracker sees it).
    pub fn wait_registered(&self, timeout: Duration) -> Result<String, String> {
        let (lock, cv) = &*self.status;
        let guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
        let (guard, _) = cv
            .wait_timeout_while(guard, timeout, |s| s.id.is_none() && !s.stopped)
            .unwrap_or_else(PoisonError::into_inner);
        guard.id.clone().ok_or_else(|| {
            let why = guard.last_error.as_deref().unwrap_or("no answer");
            let mut text = format!(
                "cannot register with the tracker at {} ({why}); is it running? (start one with `torrentphile tracker`)",
                self.tracker
            );
            if guard.candidates.is_empty() {
                text.push_str(
                    "; this process knows no peers to elect an interim tracker from: give a running peer's standby address (it prints it at start) with --tracker",
                );
            }
            text
        })
    }

    /// What the link knows now.
    pub fn state(&self) -> LinkState {
        let (lock, _) = &*self.status;
        lock.lock().unwrap_or_else(PoisonError::into_inner).look()
    }

    /// Wait up to `timeout` until `ready` holds of the link's state (woken by each change);
    /// the state then, or the last one seen.
    pub fn wait_state(
        &self,
        timeout: Duration,
        ready: impl Fn(&LinkState) -> bool,
    ) -> Result<LinkState, LinkState> {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.status;
        let mut guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let state = guard.look();
            let left = deadline.saturating_duration_since(Instant::now());
            if ready(&state) {
                return Ok(state);
            }
            if left.is_zero() {
                return Err(state);
            }
            guard = cv
                .wait_timeout(guard, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// This peer's id, if registered now.
    pub fn id(&self) -> Option<String> {
        let (lock, _) = &*self.status;
        lock.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .id
            .clone()
    }

    /// Send one request to the tracker and wait for its reply.
    pub fn call(&self, request: Request) -> Result<Answer, String> {
        let (tx, rx) = mpsc::channel();
        self.tx
            .send(Cmd::Call(request, tx))
            .map_err(|_| "the tracker link has stopped".to_string())?;
        rx.recv()
            .unwrap_or_else(|_| Err("the tracker link has stopped".to_string()))
    }

    /// A handle that sends requests without waiting for their replies (for announcements
    /// made from threads that must not block, such as a server noticing a changed file).
    pub fn poster(&self) -> impl Fn(Request) + Send + Sync + 'static {
        let tx = self.tx.clone();
        move |request| {
            let (reply, _) = mpsc::channel();
            let _ = tx.send(Cmd::Call(request, reply));
        }
    }

    /// Who holds `name` (`WHOHAS`): full holders first; none if nobody holds it. Any other
    /// `not-found` (holders this host cannot reach: they are on the tracker's loopback) is an
    /// error carrying the tracker's explanation, which names the fix.
    pub fn who_has(&self, name: &str) -> Result<Vec<Holder>, String> {
        match self.call_line(Request::WhoHas { name: name.into() })? {
            Reply::Peers(holders) => Ok(holders),
            Reply::Err(ErrCode::NotFound, msg) if msg.starts_with("no peer holds") => {
                Ok(Vec::new())
            }
            Reply::Err(ErrCode::NotFound, msg) => Err(format!("the tracker says: {msg}")),
            other => Err(format!("tracker answered WHOHAS with {other}")),
        }
    }

    /// A handle that sends requests and waits for their one-line replies, for a thread of its
    /// own (the folder watcher).
    pub fn caller(&self) -> impl Fn(Request) -> Result<Reply, String> + Send + 'static {
        let tx = self.tx.clone();
        move |request| {
            let (reply_tx, reply_rx) = mpsc::channel();
            tx.send(Cmd::Call(request, reply_tx))
                .map_err(|_| "the tracker link has stopped".to_string())?;
            match reply_rx.recv() {
                Ok(Ok(Answer::Line(reply))) => Ok(reply),
                Ok(Ok(Answer::Data(_))) => Err("unexpected data block from the tracker".into()),
                Ok(Err(e)) => Err(e),
                Err(_) => Err("the tracker link has stopped".into()),
            }
        }
    }

    /// Send a request whose answer is one line.
    pub fn call_line(&self, request: Request) -> Result<Reply, String> {
        match self.call(request)? {
            Answer::Line(reply) => Ok(reply),
            Answer::Data(_) => Err("unexpected data block from the tracker".into()),
        }
    }

    pub fn stop(&mut self) {
        let _ = self.tx.send(Cmd::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.stop();
    }
}
