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

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::conn::{Conn, ConnError, Timeouts, Trace};
use crate::peer::retry::Retries;
use crate::peer::store::{Holding, Store};
use crate::peer::trackers::{self, TrackerList};
use crate::protocol::{ErrCode, Holder, Reply, Request};
use crate::util::Rng;

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
const MAX_LIST: u64 = 64 << 20;

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
            format!(
                "cannot register with the tracker at {} ({why}); is it running? (start one with `torrentphile tracker`)",
                self.tracker
            )
        })
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

    /// Who holds `name` (`WHOHAS`): full holders first; none if the tracker knows no such file.
    pub fn who_has(&self, name: &str) -> Result<Vec<Holder>, String> {
        match self.call_line(Request::WhoHas { name: name.into() })? {
            Reply::Peers(holders) => Ok(holders),
            Reply::Err(ErrCode::NotFound, _) => Ok(Vec::new()),
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

struct Worker {
    /// The tracker talked to now (`list.current()`).
    tracker: String,
    list: TrackerList,
    /// Set when a tracker answered `ERR not-leader`: where it said the leader is.
    leader_hint: Option<Option<String>>,
    port: u16,
    /// `--advertise`: the address the tracker lists this peer at.
    advertise: Option<std::net::IpAddr>,
    store: Arc<Store>,
    timeouts: Timeouts,
    trace: Trace,
    label: String,
    status: Arc<(Mutex<Status>, Condvar)>,
    on_connect: Arc<Mutex<Option<OnConnect>>>,
    /// Announcements refused with `ERR conflict`, tried again with backoff (`retry.rs`).
    retries: Retries,
}

enum Ended {
    Broken(String),
    Stopped,
}

impl Worker {
    fn set_status(&self, f: impl FnOnce(&mut Status)) {
        let (lock, cv) = &*self.status;
        f(&mut lock.lock().unwrap_or_else(PoisonError::into_inner));
        cv.notify_all();
    }

    fn run(mut self, rx: &Receiver<Cmd>) {
        let mut said_waiting = false;
        loop {
            let error = match self.connect() {
                Ok((conn, heartbeat)) => {
                    self.list.works();
                    said_waiting = false;
                    match self.serve(conn, heartbeat, rx) {
                        Ended::Stopped => break,
                        Ended::Broken(e) => {
                            eprintln!(
                                "{}: lost the tracker at {}: {e}; reconnecting",
                                self.label, self.tracker
                            );
                            e
                        }
                    }
                }
                Err(e) => {
                    if !said_waiting {
                        eprintln!(
                            "{}: waiting for the tracker at {} ({e})",
                            self.label, self.tracker
                        );
                        said_waiting = true;
                    }
                    e
                }
            };
            self.set_status(|s| {
                s.id = None;
                s.last_error = Some(error.clone());
            });
            // Next tracker (or the leader named), after a backoff once a whole round failed;
            // requests that come meanwhile fail at once.
            let backoff = match self.leader_hint.take() {
                Some(leader) => self.list.redirect(leader.as_deref()),
                None => self.list.failed(),
            };
            let until = Instant::now() + backoff;
            loop {
                match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                    Ok(Cmd::Call(_, reply)) => {
                        let _ = reply.send(Err(format!(
                            "tracker {} unreachable: {error}",
                            self.tracker
                        )));
                    }
                    Ok(Cmd::Stop) | Err(RecvTimeoutError::Disconnected) => {
                        self.set_status(|s| s.stopped = true);
                        return;
                    }
                    Err(RecvTimeoutError::Timeout) => break,
                }
            }
            self.tracker = self.list.current().to_string();
        }
        self.set_status(|s| {
            s.id = None;
            s.stopped = true;
        });
    }

    /// Connect, register, announce every file the store holds.
    fn connect(&mut self) -> Result<(Conn, Duration), String> {
        let mut conn = Conn::connect(&self.tracker, self.timeouts, self.trace.clone())
            .map_err(|e| e.to_string())?;
        let reply = conn
            .request(&match self.advertise {
                None => Request::Register { port: self.port },
                Some(host) => Request::RegisterAs {
                    port: self.port,
                    host,
                },
            })
            .map_err(|e| e.to_string())?;
        let Reply::Ack(text) = reply else {
            self.leader_hint = trackers::leader_hint(&reply);
            return Err(format!("REGISTER was answered {reply}"));
        };
        let mut words = text.split(' ');
        let id = words.next().unwrap_or_default().to_string();
        let heartbeat = words
            .find_map(|w| w.strip_prefix("heartbeat="))
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
            .map_or(Duration::from_secs(10), Duration::from_secs_f64);
        for entry in self.store.entries() {
            let request = match entry.holding {
                Holding::Complete => Request::Upload(entry.meta.clone()),
                Holding::Partial(_) => Request::Partial {
                    name: entry.meta.name.clone(),
                },
            };
            match conn.request(&request) {
                Ok(Reply::Err(code, msg)) => {
                    if code == ErrCode::Conflict {
                        self.retries.refused(&entry.meta.name, Instant::now());
                    }
                    eprintln!(
                        "{}: tracker refused {}: {} {msg}",
                        self.label,
                        entry.meta.name,
                        code.as_str()
                    );
                }
                Ok(_) => self.retries.done(&entry.meta.name),
                Err(e) => return Err(e.to_string()),
            }
        }
        let hook = self
            .on_connect
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(hook) = hook {
            hook(&mut conn);
        }
        self.set_status(|s| {
            s.id = Some(id.clone());
            s.last_error = None;
        });
        Ok((conn, heartbeat))
    }

    /// Forward requests; ping when idle. Returns when the connection breaks or we stop.
    fn serve(&mut self, mut conn: Conn, heartbeat: Duration, rx: &Receiver<Cmd>) -> Ended {
        let stream = conn.stream();
        let mut quiet_since = Instant::now();
        loop {
            // Wake every WATCH to notice a tracker that went away (its socket closed) well
            // before the next heartbeat: after a failover the new leader is refilled sooner.
            // A refused announce due for its retry wakes the loop too.
            let left = heartbeat.saturating_sub(quiet_since.elapsed());
            let wait = self.retries.wait(Instant::now(), left).min(WATCH);
            let next = match rx.recv_timeout(wait) {
                Err(RecvTimeoutError::Timeout)
                    if quiet_since.elapsed() < heartbeat
                        && self.retries.due(Instant::now()).is_empty() =>
                {
                    if closed(&stream) {
                        return Ended::Broken("the tracker closed the connection".into());
                    }
                    continue;
                }
                other => other,
            };
            quiet_since = Instant::now();
            match next {
                Ok(Cmd::Call(request, reply)) => {
                    let answer = call(&mut conn, &request);
                    let broken = match &answer {
                        Err(e) => Some(e.to_string()),
                        Ok(Answer::Line(line)) => {
                            // The tracker no longer leads its cluster: go to the one that does.
                            self.leader_hint = trackers::leader_hint(line);
                            self.leader_hint.as_ref().map(|_| line.to_string())
                        }
                        Ok(_) => None,
                    };
                    let _ = reply.send(answer.map_err(|e| e.to_string()));
                    if let Some(e) = broken {
                        return Ended::Broken(e);
                    }
                }
                Err(RecvTimeoutError::Timeout) if !self.retries.due(Instant::now()).is_empty() => {
                    if let Err(e) = self.retry(&mut conn) {
                        return Ended::Broken(e.to_string());
                    }
                }
                Err(RecvTimeoutError::Timeout) => match conn.request(&Request::Ping) {
                    Ok(Reply::Pong) => {}
                    Ok(other) => return Ended::Broken(format!("PING was answered {other}")),
                    Err(e) => return Ended::Broken(e.to_string()),
                },
                Ok(Cmd::Stop) | Err(RecvTimeoutError::Disconnected) => {
                    let _ = conn.request(&Request::Bye);
                    return Ended::Stopped;
                }
            }
        }
    }
}

/// How often an idle link looks whether its tracker closed the connection.
const WATCH: Duration = Duration::from_millis(200);

/// Whether the peer closed `stream` (a zero-byte peek, or an error other than "nothing yet"),
/// looked at without blocking; only called while no reply is awaited.
fn closed(stream: &std::net::TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return false;
    }
    let mut byte = [0u8; 1];
    let result = stream.peek(&mut byte);
    let _ = stream.set_nonblocking(false);
    match result {
        Ok(n) => n == 0,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

impl Worker {
    /// Announce again each refused file whose retry is due (the name may be free now).
    fn retry(&mut self, conn: &mut Conn) -> Result<(), ConnError> {
        for name in self.retries.due(Instant::now()) {
            let Some(entry) = self
                .store
                .get(&name)
                .filter(|e| matches!(e.holding, Holding::Complete))
            else {
                self.retries.done(&name);
                continue;
            };
            match conn.request(&Request::Upload(entry.meta.clone()))? {
                Reply::Ack(_) => {
                    self.retries.done(&name);
                    eprintln!(
                        "{}: {name} is shared now (the name was free again)",
                        self.label
                    );
                }
                Reply::Err(ErrCode::Conflict, _) => self.retries.refused(&name, Instant::now()),
                _ => self.retries.done(&name),
            }
        }
        Ok(())
    }
}

fn call(conn: &mut Conn, request: &Request) -> Result<Answer, ConnError> {
    match conn.request(request)? {
        Reply::Data(len) if len <= MAX_LIST => {
            let mut buf = vec![0; len as usize];
            conn.read_data(&mut buf, Instant::now() + conn.timeouts().line)?;
            Ok(Answer::Data(buf))
        }
        Reply::Data(len) => Err(ConnError::Protocol(format!(
            "data block of {len} bytes is too large"
        ))),
        reply => Ok(Answer::Line(reply)),
    }
}
