//! The link's side of the interim tracker (`peer/interim.rs` has the rule and the standby):
//! offer the standby and keep the list, decide when to elect, when to move to a lower
//! interim tracker, and when to hand back to a configured tracker that returned.
//!
//! Runs on the link's thread only; its probes are short connections of their own, never the
//! link's connection, and no lock is held while they run.

use std::time::{Duration, Instant};

use super::worker::Worker;
use crate::conn::Conn;
use crate::peer::interim::{self, CHECK_EVERY, GRACE};
use crate::peer::trackers::{self, BACKOFF_MIN};
use crate::protocol::{ErrCode, Reply, Request};

/// How long a lower interim tracker's offer is held at a higher one: two list periods, so
/// every client there has fetched a list that names it.
const NUDGE_HOLD: Duration = Duration::from_secs(5);
/// A standby that did not answer a probe is taken for dead this long.
const SILENT_FOR: Duration = Duration::from_secs(10);

impl Worker {
    /// Say `text` to the user and in the trace.
    fn say(&self, text: &str) {
        eprintln!("{}: {text}", self.label);
        self.trace.note(&self.label, "-", text);
    }

    /// This peer's standby as the tracker lists it: the address this peer is listed at, with
    /// the standby's port. Never the bound address, which is `0.0.0.0` on a LAN peer and
    /// would sort below every real one (each peer would elect itself).
    fn own_standby(&self) -> Option<String> {
        interim::listed_standby(self.listed_ip, self.standby.as_ref()?.addr())
    }

    /// Just registered with `self.tracker`: a configured tracker (every failure forgotten, and
    /// this peer's standby, if it was the interim tracker, hands over to it), or the interim.
    pub(super) fn registered_at(&mut self) {
        if self.interim.is_none() {
            self.list.works();
            self.gone_since = None;
            self.elected = None;
        }
        let Some(standby) = self.standby.clone() else {
            return;
        };
        match &self.interim {
            None => {
                standby.set_trackers_gone(false);
                if standby.point_to(Some(&self.tracker)) {
                    let text = format!(
                        "the tracker at {} is back: the interim tracker hands over to it",
                        self.tracker
                    );
                    self.say(&text);
                }
            }
            Some(addr) if Some(addr) == self.own_standby().as_ref() => {}
            Some(addr) => {
                if standby.point_to(Some(addr)) {
                    let text = format!("the interim tracker hands over to the lower one at {addr}");
                    self.say(&text);
                }
            }
        }
    }

    /// Offer this peer's standby (`STANDBY <port>`) and keep the list the tracker answers; the
    /// heartbeat too, for a peer with a standby (a gated request, so an interim tracker that
    /// handed over answers it `ERR not-leader` and the link follows).
    pub(super) fn offer_standby(&mut self, conn: &mut Conn) -> Result<(), String> {
        let Some(standby) = &self.standby else {
            return Ok(());
        };
        let port = standby.addr().port();
        let reply = conn
            .request(&Request::Standby { port })
            .map_err(|e| e.to_string())?;
        if let Some(mut list) = interim::parse_list(&reply) {
            // A configured tracker's list is the truth about who is live; an interim
            // tracker's adds the peers it sees to what this peer knew (so that two interim
            // trackers elected from lists a heartbeat apart find each other).
            if self.interim.is_some() {
                for known in &self.candidates {
                    if !list.contains(known) {
                        list.push(known.clone());
                    }
                }
            }
            if list != self.candidates {
                self.candidates = list.clone();
                self.set_status(|s| s.candidates = list);
            }
            return Ok(());
        }
        match reply {
            Reply::Err(ErrCode::NotLeader, _) => {
                self.leader_hint = trackers::leader_hint(&reply);
                Err(format!("STANDBY was answered {reply}"))
            }
            // A tracker that keeps no list: nothing to elect from later, and nothing wrong.
            _ => Ok(()),
        }
    }

    /// The idle heartbeat: `STANDBY` with a standby, else `PING`.
    pub(super) fn heartbeat(&mut self, conn: &mut Conn) -> Result<(), String> {
        if self.standby.is_some() {
            return self.offer_standby(conn);
        }
        match conn.request(&Request::Ping) {
            Ok(Reply::Pong) => Ok(()),
            Ok(other) => Err(format!("PING was answered {other}")),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The connection ended or never came: where to go next, and after how long.
    pub(super) fn next_target(&mut self) -> Duration {
        let hint = self.leader_hint.take();
        if let Some(was) = self.interim.take() {
            match hint {
                // Handed back: the interim named a configured tracker.
                Some(Some(addr)) if self.list.all().contains(&addr) => {
                    self.list.redirect(Some(&addr));
                    self.tracker = self.list.current().to_string();
                    return Duration::ZERO;
                }
                // A standby named the interim tracker it knows.
                Some(Some(addr)) if addr != was => {
                    self.go_interim(addr);
                    return BACKOFF_MIN;
                }
                _ => {}
            }
            // That interim tracker is gone: a round of the configured ones, then elect again.
            self.tracker = self.list.current().to_string();
            return BACKOFF_MIN;
        }
        let backoff = match hint {
            Some(leader) => self.list.redirect(leader.as_deref()),
            None => self.list.failed(),
        };
        self.tracker = self.list.current().to_string();
        let since = *self.gone_since.get_or_insert_with(Instant::now);
        if let Some(standby) = &self.standby {
            // Whoever asks this peer's standby is no longer sent to the tracker that failed.
            standby.forget_pointer();
        }
        // Elect only after a whole round has failed, and for long enough.
        if backoff.is_zero() || since.elapsed() < GRACE {
            return backoff;
        }
        if let Some(standby) = &self.standby {
            standby.set_trackers_gone(true);
        }
        match self.elect() {
            Some(addr) => {
                self.go_interim(addr);
                Duration::ZERO
            }
            None => backoff,
        }
    }

    /// The rule (`interim::elect`) over the list and this peer's own standby; nothing without
    /// a list (unless another peer has already elected this one).
    ///
    /// A standby that did not answer is not probed again for `SILENT_FOR`: on a LAN a dead
    /// host costs the whole probe timeout, and this runs every `CHECK_EVERY` on the link's
    /// thread.
    fn elect(&mut self) -> Option<String> {
        let own = self.own_standby();
        let own_open = self.standby.as_ref().is_some_and(|s| s.is_interim());
        if self.candidates.is_empty() && !own_open {
            return None;
        }
        let mut candidates = self.candidates.clone();
        candidates.extend(own.clone());
        let now = Instant::now();
        self.silent.retain(|_, until| *until > now);
        let (silent, trace) = (&mut self.silent, &self.trace);
        interim::elect(&candidates, |addr| {
            if Some(addr) == own.as_deref() {
                return true;
            }
            if silent.contains_key(addr) {
                return false;
            }
            let alive = interim::answers_ping(addr, trace);
            if !alive {
                silent.insert(addr.to_string(), now + SILENT_FOR);
            }
            alive
        })
    }

    fn go_interim(&mut self, addr: String) {
        self.checked = Instant::now();
        let own = self.own_standby().as_ref() == Some(&addr);
        if own && let Some(standby) = &self.standby {
            standby.become_interim();
        }
        if self.elected.as_ref() != Some(&addr) {
            let who = if own { " (this peer)" } else { "" };
            let text = format!("peers elect {addr}{who} as interim tracker");
            self.say(&text);
        }
        self.elected = Some(addr.clone());
        self.tracker = addr.clone();
        self.interim = Some(addr);
    }

    /// On an interim tracker, every `CHECK_EVERY`: a configured tracker that serves again
    /// (hand back), or a lower standby that is alive (move there). The reason to leave, if any;
    /// `leader_hint` then says where to.
    pub(super) fn check_interim(&mut self) -> Option<String> {
        let current = self.interim.clone()?;
        if self.checked.elapsed() < CHECK_EVERY {
            return None;
        }
        self.checked = Instant::now();
        let back = self
            .list
            .all()
            .iter()
            .find(|addr| interim::serves(addr, &self.trace))
            .cloned();
        if let Some(addr) = back {
            self.leave_for(&addr);
            return Some(format!(
                "the tracker at {addr} is back; leaving the interim tracker at {current}"
            ));
        }
        let choice = self.elect()?;
        if choice == current {
            if Some(&current) == self.own_standby().as_ref() {
                self.nudge_higher(&current);
            }
            return None;
        }
        self.leave_for(&choice);
        Some(format!(
            "{choice} is a lower standby that is alive; leaving the interim tracker at {current}"
        ))
    }

    /// This peer runs the interim tracker `own`, the lowest it knows. A higher standby on its
    /// list that serves as an interim tracker too was elected by peers whose list was a
    /// heartbeat older (they never saw this one): offer this standby there (`REGISTER`,
    /// `STANDBY`, held for two list periods), so its clients see it on their next list and
    /// move here, its own peer with them, and it hands over.
    fn nudge_higher(&mut self, own: &str) {
        let Ok(own_addr) = own.parse::<std::net::SocketAddr>() else {
            return;
        };
        let now = Instant::now();
        self.nudged.retain(|_, until| *until > now);
        let higher: Vec<String> = self
            .candidates
            .iter()
            .filter(|c| {
                c.parse::<std::net::SocketAddr>()
                    .is_ok_and(|a| a > own_addr)
            })
            .filter(|c| !self.nudged.contains_key(*c))
            .cloned()
            .collect();
        for addr in higher {
            if !interim::serves(&addr, &self.trace) {
                continue;
            }
            let text = format!("{addr} runs an interim tracker too: offering {own} there");
            self.say(&text);
            self.nudged.insert(addr.clone(), now + NUDGE_HOLD);
            let register = match self.advertise {
                None => Request::Register { port: self.port },
                Some(host) => Request::RegisterAs {
                    port: self.port,
                    host,
                },
            };
            let offer = Request::Standby {
                port: own_addr.port(),
            };
            let trace = self.trace.clone();
            let _ = std::thread::Builder::new()
                .name("interim-nudge".into())
                .spawn(move || interim::offer_for(&addr, &[register, offer], NUDGE_HOLD, &trace));
        }
    }

    /// Leave the interim tracker for `addr`; if it is this peer's, it hands over at once.
    fn leave_for(&mut self, addr: &str) {
        self.leader_hint = Some(Some(addr.to_string()));
        let own = self.own_standby();
        if own.as_deref() == Some(addr) {
            return;
        }
        if let Some(standby) = &self.standby
            && standby.point_to(Some(addr))
        {
            let text = format!("the interim tracker hands over to {addr}");
            self.say(&text);
        }
    }
}
