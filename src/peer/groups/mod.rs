//! A peer's group files, and who may fetch them.
//!
//! Each group's files live in the group's own folder, `DIR/.groups/<group>/`, which is a
//! `Store` of its own: names are per group (two groups may each have a `notes.txt`), the
//! public store never sees them (its names never start with `.`), and a group name is checked
//! by `check_id` (no `/`, no leading `.`) before it becomes a folder name, so nothing is ever
//! read or written outside `DIR/.groups/`.
//!
//! Serving: a connection starts public. A `TICKET` line that this peer verifies (MAC under the
//! ticket key of its current login, not expired, from the address it names, for a file this
//! peer holds in that group with that root, for a user the tracker still vouches for) makes the
//! connection a group connection: from then on `GET`, `PIECE`, `HAVE` and `HASHES` of a name it
//! holds a ticket for are answered from the group's store, by the same code that serves public
//! files, and any other name is `ERR ticket-file`. Without a ticket a group file cannot be
//! named at all: a stranger learns nothing, not even its size. A logout (or a new login) ends
//! every grant at once: grants remember the login they were checked under.
//!
//! `client.rs` is the other side: the account commands, logging in (again, after a tracker
//! restart, from the keys kept in memory), uploading and downloading group files.

mod client;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::auth::accounts::check_id;
use crate::auth::scram::ClientKeys;
use crate::auth::ticket::{Ticket, TicketKey};
use crate::peer::server::{self, Client};
use crate::peer::store::Store;
use crate::protocol::{AccountRequest, ErrCode, Reply, Request};
use crate::server::Answer;

pub use client::{GroupDownload, Secret, login_exchange, relogin};

/// Asks the tracker one thing (a `VOUCH`), from a server thread.
pub type Ask = Arc<dyn Fn(Request) -> Result<Reply, String> + Send + Sync>;

/// The login this peer holds, if any.
struct Login {
    user: String,
    /// Kept so that the peer can log in again after a tracker restart without the password;
    /// password-equivalent, never written anywhere.
    keys: ClientKeys,
    /// The ticket key of the current session (`None` while the tracker is away).
    ticket_key: Option<TicketKey>,
    /// Bumped at every login and logout; a grant checked under another one is void.
    epoch: u64,
}

/// Every group store and the login. Shared by the server threads and the peer.
pub struct Groups {
    root: PathBuf,
    piece_size: Option<u32>,
    stores: Mutex<BTreeMap<String, Arc<Store>>>,
    login: Mutex<Option<Login>>,
    epoch: Mutex<u64>,
    ask: Mutex<Option<Ask>>,
    /// Group downloads started here, for `show_downloads`.
    downloads: Mutex<Vec<Arc<GroupDownload>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One connection's grants: (group, name, login epoch).
#[derive(Debug, Default)]
pub struct GroupConn {
    grants: Vec<(String, String, u64)>,
}

fn err(code: ErrCode, msg: impl Into<String>) -> Answer {
    Answer::Line(Reply::Err(code, msg.into()))
}

impl Groups {
    /// The group folders under `dir/.groups`; existing ones are opened and scanned.
    pub fn open(dir: &std::path::Path, piece_size: Option<u32>) -> Groups {
        let groups = Groups {
            root: dir.join(".groups"),
            piece_size,
            stores: Mutex::default(),
            login: Mutex::default(),
            epoch: Mutex::new(0),
            ask: Mutex::default(),
            downloads: Mutex::default(),
        };
        if let Ok(entries) = std::fs::read_dir(&groups.root) {
            for entry in entries.flatten() {
                if let Some(name) = entry.file_name().to_str()
                    && let Ok(store) = groups.store(name)
                {
                    store.scan();
                }
            }
        }
        groups
    }

    /// How to ask the tracker (set once the tracker link exists).
    pub fn set_ask(&self, ask: Ask) {
        *lock(&self.ask) = Some(ask);
    }

    /// The store of `group`, opened (and its folder created) on first use.
    pub fn store(&self, group: &str) -> Result<Arc<Store>, String> {
        check_id("group", group).map_err(|e| e.to_string())?;
        let mut stores = lock(&self.stores);
        if let Some(store) = stores.get(group) {
            return Ok(store.clone());
        }
        let store = Arc::new(Store::open(&self.root.join(group), self.piece_size)?);
        stores.insert(group.to_string(), store.clone());
        Ok(store)
    }

    /// Every group store (to re-announce after a login).
    pub fn stores(&self) -> Vec<(String, Arc<Store>)> {
        lock(&self.stores)
            .iter()
            .map(|(g, s)| (g.clone(), s.clone()))
            .collect()
    }

    /// The logged-in user, if any.
    pub fn user(&self) -> Option<String> {
        lock(&self.login).as_ref().map(|l| l.user.clone())
    }

    /// A login succeeded: keep the keys, serve under the new ticket key.
    pub fn logged_in(&self, user: &str, keys: ClientKeys, ticket_key: TicketKey) {
        let epoch = self.bump();
        *lock(&self.login) = Some(Login {
            user: user.to_string(),
            keys,
            ticket_key: Some(ticket_key),
            epoch,
        });
    }

    /// The tracker connection was lost: no session, so no grant is valid until the next login.
    pub fn session_lost(&self) {
        let epoch = self.bump();
        if let Some(login) = lock(&self.login).as_mut() {
            login.ticket_key = None;
            login.epoch = epoch;
        }
    }

    /// `logout`: forget the login and its keys.
    pub fn logged_out(&self) {
        self.bump();
        *lock(&self.login) = None;
    }

    /// The user and keys to log in again with.
    pub fn relogin_keys(&self) -> Option<(String, ClientKeys)> {
        lock(&self.login)
            .as_ref()
            .map(|l| (l.user.clone(), l.keys.clone()))
    }

    fn bump(&self) -> u64 {
        let mut epoch = lock(&self.epoch);
        *epoch += 1;
        *epoch
    }

    fn current(&self) -> Option<(TicketKey, u64)> {
        let login = lock(&self.login);
        let login = login.as_ref()?;
        Some((login.ticket_key.clone()?, login.epoch))
    }

    /// Group downloads, for `show_downloads`.
    pub fn downloads(&self) -> Vec<Arc<GroupDownload>> {
        lock(&self.downloads).clone()
    }

    /// Answer `request` if it is about group files on this connection; `None` leaves it to
    /// the public server. `ip` is the connection's address as this peer sees it.
    pub fn intercept(
        &self,
        conn: &mut GroupConn,
        client: &mut Client,
        ip: &str,
        request: &Request,
    ) -> Option<Answer> {
        if let Request::Account(AccountRequest::Ticket(ticket)) = request {
            return Some(self.accept_ticket(conn, ip, ticket));
        }
        if conn.grants.is_empty() {
            return None;
        }
        let name = match request {
            Request::Get { name, .. }
            | Request::Piece { name, .. }
            | Request::Have { name }
            | Request::Hashes { name } => name,
            _ => return None,
        };
        let Some((group, _, epoch)) = conn.grants.iter().find(|(_, n, _)| n == name) else {
            return Some(err(
                ErrCode::TicketFile,
                format!("no ticket for {name} on this connection; ask the tracker (GRANT)"),
            ));
        };
        if self.current().is_none_or(|(_, now)| now != *epoch) {
            return Some(err(
                ErrCode::TicketRevoked,
                "this peer's login changed since the ticket was checked; ask for a new one",
            ));
        }
        let store = match self.store(group) {
            Ok(store) => store,
            Err(e) => return Some(err(ErrCode::Internal, e)),
        };
        Some(server::handle(&store, client, request.clone()))
    }

    fn accept_ticket(&self, conn: &mut GroupConn, ip: &str, ticket: &Ticket) -> Answer {
        let Some((key, epoch)) = self.current() else {
            return err(
                ErrCode::TicketForged,
                "this peer is not logged in; no ticket opens it",
            );
        };
        if let Err(e) = ticket.verify(&key, unix_now(), ip) {
            let code = e.code().parse().unwrap_or(ErrCode::TicketForged);
            return err(code, e.to_string());
        }
        let (group, name) = (&ticket.group, &ticket.name);
        let entry = lock(&self.stores).get(group).and_then(|s| s.get(name));
        let Some(entry) = entry else {
            return err(
                ErrCode::TicketGroup,
                format!("this peer does not share {name} in group {group}"),
            );
        };
        if entry.meta.root != ticket.root {
            return err(
                ErrCode::TicketFile,
                format!("the ticket is for another version of {name}"),
            );
        }
        // A member who left keeps a fresh ticket for a minute or two; the tracker knows.
        let ask = lock(&self.ask).clone();
        let vouched = ask.map(|ask| {
            ask(Request::Account(AccountRequest::Vouch {
                group: group.clone(),
                user: ticket.user.clone(),
            }))
        });
        match vouched {
            Some(Ok(Reply::Ack(_))) => {}
            Some(Ok(Reply::Err(ErrCode::NotMember, _))) => {
                return err(
                    ErrCode::TicketRevoked,
                    format!("{} is no longer a member of {group}", ticket.user),
                );
            }
            other => {
                let why = match other {
                    Some(Ok(reply)) => reply.to_string(),
                    Some(Err(e)) => e,
                    None => "no tracker link".into(),
                };
                return err(
                    ErrCode::Unavailable,
                    format!("cannot check the ticket with the tracker now ({why}); try again"),
                );
            }
        }
        conn.grants.retain(|(_, n, _)| n != name);
        conn.grants.push((group.clone(), name.clone(), epoch));
        Answer::Line(Reply::Ack(format!(
            "ticket {group} {name} for {}",
            ticket.user
        )))
    }
}
