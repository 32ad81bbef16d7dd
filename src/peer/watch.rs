//! The folder watcher: a thread that looks at the peer's folder every few seconds
//! (`Store::rescan`) and tells the tracker what changed: a file copied in is announced, a file
//! edited in place is hashed and announced again, a file removed is withdrawn.
//!
//! The tracker's first-holder rule stands: if it already knows other content under a name, it
//! answers `ERR conflict`; the watcher then says so once, in one line naming the file and what
//! to do, and leaves that version of the file alone (it tries again only once the file changes).
//!
//! It talks to the tracker only through the link (one request at a time, waiting for the
//! reply), holds no lock while it does, and stops (and is joined) with the peer.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::peer::events::Events;
use crate::peer::store::{FileStamp, Found, Store};
use crate::protocol::{ErrCode, Meta, Reply, Request};

/// Sends one request to the tracker and waits for its one-line reply.
pub type Call = Box<dyn Fn(Request) -> Result<Reply, String> + Send>;

/// The running watcher. Dropping it stops and joins the thread.
pub struct Watcher {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Watcher {
    /// Look at the folder every `every`, starting one `every` from now.
    pub fn start(store: Arc<Store>, call: Call, events: Arc<Events>, every: Duration) -> Watcher {
        let stop: Arc<(Mutex<bool>, Condvar)> = Arc::default();
        let stop2 = stop.clone();
        let thread = thread::Builder::new()
            .name("watch".into())
            .spawn(move || {
                let (lock, cv) = &*stop2;
                loop {
                    let guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
                    let (guard, _) = cv
                        .wait_timeout_while(guard, every, |stopped| !*stopped)
                        .unwrap_or_else(PoisonError::into_inner);
                    if *guard {
                        return;
                    }
                    drop(guard);
                    for found in store.rescan() {
                        tell(&store, &call, &events, found);
                    }
                }
            })
            .ok();
        Watcher { stop, thread }
    }

    /// Stop the thread and wait for it (it finishes the file it is hashing first).
    pub fn stop(&mut self) {
        let (lock, cv) = &*self.stop;
        *lock.lock().unwrap_or_else(PoisonError::into_inner) = true;
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Tell the tracker about one change, and the user about anything that went wrong.
fn tell(store: &Store, call: &Call, events: &Events, found: Found) {
    match found {
        Found::New(meta, stamp) => announce(store, call, events, &meta, stamp, "new"),
        Found::Changed(meta, stamp) => {
            // The old content goes first: the tracker would call the new one a conflict with it.
            let _ = call(Request::Remove {
                name: meta.name.clone(),
            });
            announce(store, call, events, &meta, stamp, "changed");
        }
        Found::Gone(name) => {
            let _ = call(Request::Remove { name: name.clone() });
            events.say(&format!(
                "{name} is no longer in {}; stopped sharing it",
                store.dir().display()
            ));
        }
        Found::Unusable(why) => events.say(&why),
    }
}

fn announce(
    store: &Store,
    call: &Call,
    events: &Events,
    meta: &Meta,
    stamp: FileStamp,
    what: &str,
) {
    let path = store.path(&meta.name);
    match call(Request::Upload(meta.clone())) {
        Ok(Reply::Ack(_)) => events.say(&format!(
            "sharing {} ({what}: {} bytes, sha1 {})",
            path.display(),
            meta.size,
            meta.sha1
        )),
        Ok(Reply::Err(ErrCode::Conflict, msg)) => {
            refuse(store, &meta.name, stamp);
            events.say(&format!(
                "{} is not shared: the tracker already knows other content under the name {} ({msg}); rename the file to share it",
                path.display(),
                meta.name
            ));
        }
        Ok(Reply::Err(code, msg)) => {
            refuse(store, &meta.name, stamp);
            events.say(&format!(
                "{} is not shared: the tracker refused it: {} {msg}",
                path.display(),
                code.as_str()
            ));
        }
        Ok(other) => events.say(&format!(
            "announcing {} got an unexpected answer: {other}",
            path.display()
        )),
        // The link is down: it announces everything the store holds once it is back.
        Err(_) => {}
    }
}

/// Stop sharing this version of the file; look again once it changes.
fn refuse(store: &Store, name: &str, stamp: FileStamp) {
    store.forget(name);
    store.hold_back(name, Some(stamp));
}
