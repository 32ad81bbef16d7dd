//! The link's thread: connect, register, announce everything, then forward requests and ping
//! when idle, until the connection breaks; then the next tracker (`trackers.rs`), or the
//! interim one (`interim.rs`).

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::{Answer, Cmd, MAX_LIST, OnConnect, Status};
use crate::conn::{Conn, ConnError, Timeouts, Trace};
use crate::peer::interim::Standby;
use crate::peer::retry::Retries;
use crate::peer::store::{Holding, Store};
use crate::peer::trackers::{self, TrackerList};
use crate::protocol::{ErrCode, Reply, Request};

pub(super) struct Worker {
    /// The tracker talked to now (`list.current()`, or the interim one).
    pub(super) tracker: String,
    pub(super) list: TrackerList,
    /// Set when a tracker answered `ERR not-leader`: where it said the leader is.
    pub(super) leader_hint: Option<Option<String>>,
    pub(super) port: u16,
    /// `--advertise`: the address the tracker lists this peer at.
    pub(super) advertise: Option<std::net::IpAddr>,
    pub(super) store: Arc<Store>,
    pub(super) timeouts: Timeouts,
    pub(super) trace: Trace,
    pub(super) label: String,
    pub(super) status: Arc<(Mutex<Status>, Condvar)>,
    pub(super) on_connect: Arc<Mutex<Option<OnConnect>>>,
    /// Announcements refused with `ERR conflict`, tried again with backoff (`retry.rs`).
    pub(super) retries: Retries,
    /// This peer's standby tracker (`None`: a `get`, which neither offers nor elects).
    pub(super) standby: Option<Arc<Standby>>,
    /// The standby list the tracker handed out last.
    pub(super) candidates: Vec<String>,
    /// The address a configured tracker lists this peer at (its id's IP): this peer's
    /// standby is on the list at that address, whatever address the standby is bound to.
    pub(super) listed_ip: Option<std::net::IpAddr>,
    /// Standbys that did not answer a probe, and until when they are not probed again.
    pub(super) silent: std::collections::HashMap<String, Instant>,
    /// `Some(addr)` while `tracker` is an interim tracker (not one of `list`).
    pub(super) interim: Option<String>,
    /// Since when no configured tracker has worked (`None`: one works).
    pub(super) gone_since: Option<Instant>,
    /// When the link on an interim tracker last looked for a better one (`interim.rs`).
    pub(super) checked: Instant,
    /// The interim tracker this peer last said the peers elect (said once, not every try).
    pub(super) elected: Option<String>,
    /// Higher interim trackers this one has offered itself at, until when (`interim.rs`).
    pub(super) nudged: std::collections::HashMap<String, Instant>,
}

pub(super) enum Ended {
    Broken(String),
    Stopped,
}

impl Worker {
    pub(super) fn set_status(&self, f: impl FnOnce(&mut Status)) {
        let (lock, cv) = &*self.status;
        f(&mut lock.lock().unwrap_or_else(PoisonError::into_inner));
        cv.notify_all();
    }

    pub(super) fn run(mut self, rx: &Receiver<Cmd>) {
        let mut said_waiting = false;
        let mut said_redirect: Option<String> = None;
        loop {
            let error = match self.connect() {
                Ok((conn, heartbeat)) => {
                    self.registered_at();
                    said_waiting = false;
                    said_redirect = None;
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
                    // A redirect is followed at once: say where it points, not "waiting".
                    if let Some(Some(to)) = &self.leader_hint {
                        if said_redirect.as_ref() != Some(to) {
                            eprintln!(
                                "{}: {} sends this peer to {to}; going there",
                                self.label, self.tracker
                            );
                            said_redirect = Some(to.clone());
                        }
                    } else if !said_waiting {
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
                s.tracker = None;
                s.last_error = Some(error.clone());
            });
            // Next tracker (the leader named, or an interim one), after a backoff once a whole
            // round failed; requests that come meanwhile fail at once.
            let backoff = self.next_target();
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
        }
        self.set_status(|s| {
            s.id = None;
            s.stopped = true;
        });
    }

    /// Connect, register, announce every file the store holds.
    pub(super) fn connect(&mut self) -> Result<(Conn, Duration), String> {
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
        if self.interim.is_none()
            && let Ok(listed) = id.parse::<std::net::SocketAddr>()
        {
            self.listed_ip = Some(listed.ip());
        }
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
        self.offer_standby(&mut conn)?;
        let hook = self
            .on_connect
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(hook) = hook {
            hook(&mut conn);
        }
        let (tracker, interim) = (self.tracker.clone(), self.interim.is_some());
        self.set_status(|s| {
            s.id = Some(id.clone());
            s.last_error = None;
            s.tracker = Some(tracker);
            s.interim = interim;
        });
        Ok((conn, heartbeat))
    }

    /// Forward requests; ping when idle. Returns when the connection breaks or we stop.
    pub(super) fn serve(
        &mut self,
        mut conn: Conn,
        heartbeat: Duration,
        rx: &Receiver<Cmd>,
    ) -> Ended {
        let stream = conn.stream();
        // With a standby, the heartbeat also fetches the standby list: often enough that every
        // peer holds the same list a moment after the last one registered.
        let heartbeat = match self.standby {
            Some(_) => heartbeat.min(LIST_EVERY),
            None => heartbeat,
        };
        let mut quiet_since = Instant::now();
        let mut listed = Instant::now();
        loop {
            // Wake every WATCH to notice a tracker that went away (its socket closed) well
            // before the next heartbeat: after a failover the new leader is refilled sooner.
            // A refused announce due for its retry wakes the loop too.
            // On an interim tracker: is a configured one back, or a lower standby alive?
            if let Some(why) = self.check_interim() {
                return Ended::Broken(why);
            }
            // A busy link (a download's requests) never idles into a heartbeat: the standby
            // list is fetched on time all the same.
            if self.standby.is_some() && listed.elapsed() >= LIST_EVERY {
                listed = Instant::now();
                if let Err(e) = self.offer_standby(&mut conn) {
                    return Ended::Broken(e);
                }
            }
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
                Err(RecvTimeoutError::Timeout) => {
                    listed = Instant::now();
                    if let Err(e) = self.heartbeat(&mut conn) {
                        return Ended::Broken(e);
                    }
                }
                Ok(Cmd::Stop) | Err(RecvTimeoutError::Disconnected) => {
                    let _ = conn.request(&Request::Bye);
                    return Ended::Stopped;
                }
            }
        }
    }
}

/// Longest wait between two `STANDBY` heartbeats (a peer with a standby).
const LIST_EVERY: Duration = Duration::from_secs(2);

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
