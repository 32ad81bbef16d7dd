//! The tracker's accounts service: answers the account verbs from the durable state
//! (`auth::accounts::Accounts`, journaled when the tracker has `--state DIR`) and the soft
//! state (`sessions::Sessions`: logins, group holders, failure counters).
//!
//! Locks, and what happens under them (never a socket; the journal's disk only under the
//! first):
//! 1. `mutation`: the journal, and the right to change the accounts. A mutation takes it,
//!    checks its record against the state (taking `state` briefly), appends the record to the
//!    journal (fsync, with `state` *not* held, so readers go on), then applies it (taking
//!    `state` briefly again). Mutations are therefore serial, and a record is applied only once
//!    it is durable, so a reader never sees what a crash could take back, and a client is
//!    acknowledged only after both.
//! 2. `state`: the accounts, for readers and for the apply step. Taken alone or under
//!    `mutation`, never the other way round.
//! 3. `sessions`: soft state; taken alone, or under `state` is never needed.
//!
//! Randomness (salts, server nonces) comes from `/dev/urandom`; with `AccountsConfig::test_seed`
//! they are derived from the user name and the client's nonce instead, so that PROTOCOL.md's
//! transcripts are exact. Never use that mode for real accounts.
//!
//! Where things are:
//! - `accounts.rs` (this file): the configuration, the service (`Auth`: open, `mutate`, the
//!   dispatch of each verb) and the `ERR` codes of refused rules.
//! - `login.rs`: the SCRAM login and account creation (`SALT` ... `LOGOUT`).
//! - `groups.rs`: the group verbs and group files.
//! - `tickets.rs`: `GRANT`, the tickets a holder checks.

mod groups;
mod login;
mod tickets;

use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::auth::accounts::{Accounts, AuthError, Effect, Record};
use crate::auth::hmac::hmac_sha1;
use crate::auth::scram;
use crate::auth::ticket::LIFETIME_SECS;
use crate::journal::Journal;
use crate::protocol::{AccountRequest, ErrCode, ProtoError, Reply};
use crate::tracker::holders::Turns;
use crate::tracker::replica::{Refusal, Replica};
use crate::tracker::sessions::Sessions;

/// How the tracker keeps accounts.
#[derive(Clone, Debug)]
pub struct AccountsConfig {
    /// The state folder (`--state DIR`); `None`: in memory only, lost at exit.
    pub state: Option<PathBuf>,
    /// PBKDF2 iterations for new users (`--iterations`). Only clients run PBKDF2; the tracker
    /// never does, so a high count costs it nothing.
    pub iterations: u32,
    /// Derive salts and nonces from the names instead of `/dev/urandom` (tests only).
    pub test_seed: Option<u64>,
    /// How long a ticket stays good.
    pub ticket_lifetime: Duration,
    /// Compact the journal into a snapshot after this many records.
    pub compact_every: u64,
    /// Cluster mode: the records go through Raft to this replica instead of the journal
    /// (`state` is then ignored: the Raft log is the journal).
    pub replica: Option<Arc<Replica>>,
}

/// The default iteration count: about 50 ms of PBKDF2-HMAC-SHA1 on a 2020s laptop core, paid
/// by a client at account creation and at each password login (not at re-logins, which reuse
/// the derived keys), and by an attacker per guess against a stolen state folder.
pub const DEFAULT_ITERATIONS: u32 = 100_000;

impl Default for AccountsConfig {
    fn default() -> Self {
        AccountsConfig {
            state: None,
            iterations: DEFAULT_ITERATIONS,
            test_seed: None,
            ticket_lifetime: Duration::from_secs(LIFETIME_SECS),
            compact_every: 10_000,
            replica: None,
        }
    }
}

/// One tracker connection's account state.
#[derive(Default)]
pub struct AuthConn {
    /// The tracker's serial number for the connection.
    pub serial: u64,
    salt: Option<(String, Vec<u8>)>,
    login: Option<(String, scram::Server)>,
    user: Option<String>,
    /// Where this connection's `GWHOHAS` windows stand (`holders.rs`).
    turns: Turns,
}

impl AuthConn {
    pub fn new(serial: u64) -> AuthConn {
        AuthConn {
            serial,
            turns: Turns::starting_at(crate::util::Rng::from_time().next_u64()),
            ..AuthConn::default()
        }
    }

    /// The user logged in on this connection.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }
}

/// The accounts service.
pub struct Auth {
    config: AccountsConfig,
    mutation: Mutex<(Option<Journal>, u64)>,
    state: Arc<Mutex<Accounts>>,
    sessions: Mutex<Sessions>,
    decoy_secret: [u8; 20],
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every holder leaves its value consistent at each return; a panic elsewhere must not
    // stop the tracker.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn err(code: ErrCode, msg: impl Into<String>) -> ProtoError {
    ProtoError::new(code, msg)
}

/// The `ERR` code of a refused account rule.
fn auth_err(e: AuthError) -> ProtoError {
    let code = match &e {
        AuthError::BadName(_) => ErrCode::BadName,
        AuthError::Exists { .. } => ErrCode::Exists,
        AuthError::NoUser(_) => ErrCode::NoUser,
        AuthError::NoGroup(_) => ErrCode::NoGroup,
        AuthError::NotMember { .. } => ErrCode::NotMember,
        AuthError::NotAdmin { .. } => ErrCode::NotAdmin,
        AuthError::NoRequest { .. } => ErrCode::NoRequest,
        AuthError::AdminStays { .. } => ErrCode::AdminStays,
        AuthError::NoFile { .. } => ErrCode::NotFound,
        AuthError::Conflict { .. } => ErrCode::Conflict,
        AuthError::NotOwner { .. } => ErrCode::NotOwner,
        AuthError::BadCredentials(_) | AuthError::BadRecord(_) => ErrCode::BadRequest,
    };
    err(code, e.to_string())
}

/// `/dev/urandom`'s bytes.
pub fn urandom(n: usize) -> io::Result<Vec<u8>> {
    use io::Read;
    let mut buf = vec![0; n];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf)
}

impl Auth {
    /// Open the service: replay the journal if there is a state folder. Returns what the
    /// operator should be told (a torn record dropped), or why the start must stop.
    pub fn open(config: AccountsConfig) -> Result<(Auth, Vec<String>), String> {
        let (journal, accounts, warnings) = match (&config.replica, &config.state) {
            (Some(replica), _) => (None, replica.state(), Vec::new()),
            (None, None) => (None, Arc::new(Mutex::new(Accounts::new())), Vec::new()),
            (None, Some(dir)) => {
                let (journal, opened) = Journal::open(dir)?;
                let mut records = Vec::with_capacity(opened.records.len());
                for (i, line) in opened.records.iter().enumerate() {
                    let record: Record = line.parse().map_err(|e| {
                        format!("{}: record {} does not parse: {e}", dir.display(), i + 1)
                    })?;
                    records.push(record);
                }
                let accounts = Accounts::replay(&records).map_err(|(i, e)| {
                    format!("{}: record {} cannot be applied: {e}", dir.display(), i + 1)
                })?;
                (
                    Some(journal),
                    Arc::new(Mutex::new(accounts)),
                    opened.warnings,
                )
            }
        };
        let decoy_secret = match config.test_seed {
            Some(seed) => hmac_sha1(&seed.to_be_bytes(), b"decoy"),
            None => urandom(20)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or("cannot read /dev/urandom")?,
        };
        let auth = Auth {
            config,
            mutation: Mutex::new((journal, 0)),
            state: accounts,
            sessions: Mutex::new(Sessions::new()),
            decoy_secret,
        };
        Ok((auth, warnings))
    }

    /// A look at the accounts (tests, the simulation).
    pub fn accounts(&self) -> MutexGuard<'_, Accounts> {
        lock(&self.state)
    }

    /// Check, make durable, apply. See the module's lock notes.
    fn mutate(&self, record: Record) -> Result<Effect, ProtoError> {
        if let Some(replica) = &self.config.replica {
            // Cluster mode: check here (a quick refusal), then propose; the mutation lock is
            // not taken, since apply checks again in log order.
            let effect = lock(&self.state).check(&record).map_err(auth_err)?;
            if effect != Effect::Change {
                return Ok(effect);
            }
            return match replica.mutate(&record) {
                Some(Ok(effect)) => Ok(effect),
                Some(Err(Refusal::Rule(e))) => Err(auth_err(e)),
                Some(Err(Refusal::Cluster(e))) => Err(e),
                None => Err(err(
                    ErrCode::Unavailable,
                    "this tracker's cluster is not running",
                )),
            };
        }
        let mut mutation = lock(&self.mutation);
        let effect = lock(&self.state).check(&record).map_err(auth_err)?;
        if effect != Effect::Change {
            return Ok(effect);
        }
        if let Some(journal) = &mutation.0 {
            journal.append(&[record.to_string()]).map_err(|e| {
                err(
                    ErrCode::Storage,
                    format!("not saved, nothing changed: {e}; try again later"),
                )
            })?;
        }
        lock(&self.state).apply(&record).map_err(auth_err)?;
        mutation.1 += 1;
        if mutation.1 >= self.config.compact_every
            && let Some(journal) = &mutation.0
        {
            let lines: Vec<String> = lock(&self.state)
                .to_records()
                .iter()
                .map(Record::to_string)
                .collect();
            // A failed compaction loses nothing: the journal still holds every record.
            if journal.compact(&lines).is_ok() {
                mutation.1 = 0;
            }
        }
        Ok(effect)
    }

    /// The connection ended: its login ends, and its peer's group files are unlisted.
    pub fn end(&self, conn: &mut AuthConn) {
        if let Some(user) = conn.user.take() {
            lock(&self.sessions).logout(&user, conn.serial);
        }
    }

    /// Answer one account verb. `ip` is the connection's address; `peer` its registration.
    pub fn handle(
        &self,
        conn: &mut AuthConn,
        ip: IpAddr,
        peer: Option<&str>,
        request: AccountRequest,
    ) -> Reply {
        self.answer(conn, ip, peer, request)
            .unwrap_or_else(ProtoError::into_reply)
    }

    fn user<'a>(&self, conn: &'a AuthConn) -> Result<&'a str, ProtoError> {
        conn.user.as_deref().ok_or_else(|| {
            err(
                ErrCode::NotLoggedIn,
                "log in first (LOGIN, then PROOF; the shell's login)",
            )
        })
    }

    fn answer(
        &self,
        conn: &mut AuthConn,
        ip: IpAddr,
        peer: Option<&str>,
        request: AccountRequest,
    ) -> Result<Reply, ProtoError> {
        use AccountRequest as R;
        let reply = match request {
            R::Salt { user } => self.salt(conn, user)?,
            R::CreateUser {
                user,
                stored_key,
                server_key,
            } => self.create_user(conn, user, stored_key, server_key)?,
            R::Login { first } => self.login(conn, ip, first)?,
            R::Proof { last } => self.proof(conn, ip, last)?,
            R::Logout => self.logout(conn)?,
            R::CreateGroup { group } => self.create_group(conn, group)?,
            R::Join { group } => self.join(conn, group)?,
            R::Leave { group } => self.leave(conn, group)?,
            R::Requests { group } => self.requests(conn, group)?,
            R::Accept { group, user } => self.accept(conn, group, user)?,
            R::Groups => self.groups(),
            R::Files { group } => self.files(conn, group)?,
            R::GUpload { group, meta } => self.gupload(conn, peer, group, meta)?,
            R::GRemove { group, name } => self.gremove(conn, peer, group, name)?,
            R::GWhoHas { group, name } => self.gwhohas(conn, ip, peer, group, name)?,
            R::GInfo { group, name } => self.ginfo(conn, group, name)?,
            R::Grant {
                group,
                name,
                holder,
            } => self.grant(conn, ip, group, name, holder)?,
            R::Vouch { group, user } => self.vouch(conn, group, user)?,
            R::Ticket(_) => {
                return Err(crate::protocol::Role::Tracker.foreign_verb("TICKET"));
            }
        };
        Ok(reply)
    }
}
