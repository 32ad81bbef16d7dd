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

use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::auth::accounts::{Accounts, AuthError, Effect, Record};
use crate::auth::scram::{self, Credentials, ScramError};
use crate::auth::ticket::{LIFETIME_SECS, Ticket, TicketKey};
use crate::auth::{base64, hmac::hmac_sha1};
use crate::journal::Journal;
use crate::protocol::{AccountRequest, ErrCode, ProtoError, Reply};
use crate::tracker::holders::{Asker, Holders, Turns};
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

fn scram_err(e: ScramError) -> ProtoError {
    let code = match e {
        ScramError::InvalidProof => ErrCode::InvalidProof,
        _ => ErrCode::BadLogin,
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

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn words(label: &str, items: impl Iterator<Item = String>) -> Reply {
    let list: Vec<String> = items.collect();
    if list.is_empty() {
        Reply::Ack(format!("{label}: none"))
    } else {
        Reply::Ack(format!("{label}: {}", list.join(" ")))
    }
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

    fn salt_for(&self, user: &str) -> Result<Vec<u8>, ProtoError> {
        match self.config.test_seed {
            Some(seed) => Ok(
                hmac_sha1(&seed.to_be_bytes(), format!("salt,{user}").as_bytes())[..16].to_vec(),
            ),
            None => urandom(16).map_err(|e| err(ErrCode::Internal, format!("no randomness: {e}"))),
        }
    }

    fn nonce_for(&self, client_nonce: &str) -> Result<String, ProtoError> {
        let bytes = match self.config.test_seed {
            Some(seed) => hmac_sha1(&seed.to_be_bytes(), client_nonce.as_bytes())[..18].to_vec(),
            None => {
                urandom(18).map_err(|e| err(ErrCode::Internal, format!("no randomness: {e}")))?
            }
        };
        Ok(base64::encode(&bytes))
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
            R::Salt { user } => {
                crate::auth::accounts::check_id("user", &user).map_err(auth_err)?;
                if lock(&self.state).credentials(&user).is_some() {
                    return Err(auth_err(AuthError::Exists {
                        what: "user",
                        name: user,
                    }));
                }
                let salt = self.salt_for(&user)?;
                let reply = format!(
                    "salt={} i={}",
                    base64::encode(&salt),
                    self.config.iterations
                );
                conn.salt = Some((user, salt));
                Reply::Ack(reply)
            }
            R::CreateUser {
                user,
                stored_key,
                server_key,
            } => {
                let salt = match conn.salt.take() {
                    Some((u, salt)) if u == user => salt,
                    _ => {
                        return Err(err(
                            ErrCode::BadRequest,
                            format!("ask SALT {user} first on this connection"),
                        ));
                    }
                };
                let credentials = Credentials {
                    salt,
                    iterations: self.config.iterations,
                    stored_key,
                    server_key,
                };
                let record = Record::CreateUser {
                    user: user.clone(),
                    credentials,
                };
                self.mutate(record)?;
                Reply::Ack(format!("created user {user}"))
            }
            R::Login { first } => {
                let first = scram::read_client_first(&first).map_err(scram_err)?;
                let now = Instant::now();
                if let Some(wait) = lock(&self.sessions).slow_down(&first.user, ip, now) {
                    return Err(err(
                        ErrCode::SlowDown,
                        format!(
                            "too many failed logins; try again in {} s",
                            wait.as_secs_f64().ceil()
                        ),
                    ));
                }
                if lock(&self.sessions).busy(&first.user, conn.serial) {
                    return Err(err(
                        ErrCode::LoggedIn,
                        format!("{} is logged in on another connection", first.user),
                    ));
                }
                // An unknown user gets decoy credentials: the exchange runs on to
                // invalid-proof, so LOGIN does not tell which names exist.
                let credentials = lock(&self.state)
                    .credentials(&first.user)
                    .cloned()
                    .unwrap_or_else(|| {
                        Credentials::decoy(&first.user, &self.decoy_secret, self.config.iterations)
                    });
                let server =
                    scram::Server::new(&first, &credentials, &self.nonce_for(&first.nonce)?)
                        .map_err(scram_err)?;
                let message = server.first_message().to_string();
                conn.login = Some((first.user, server));
                Reply::Ack(message)
            }
            R::Proof { last } => {
                let (user, server) = conn
                    .login
                    .take()
                    .ok_or_else(|| err(ErrCode::BadLogin, "send LOGIN first"))?;
                let done = match server.read_client_final(&last) {
                    Ok(done) => done,
                    Err(e) => {
                        if e == ScramError::InvalidProof {
                            lock(&self.sessions).failed(&user, ip, Instant::now());
                        }
                        return Err(scram_err(e));
                    }
                };
                if let Some(old) = conn.user.take() {
                    lock(&self.sessions).logout(&old, conn.serial);
                }
                let mut sessions = lock(&self.sessions);
                sessions.succeeded(&user);
                let key = TicketKey::from_session(&done.session);
                if !sessions.login(&user, conn.serial, key) {
                    return Err(err(
                        ErrCode::LoggedIn,
                        format!("{user} is logged in on another connection"),
                    ));
                }
                drop(sessions);
                conn.user = Some(user.clone());
                Reply::Ack(format!("WELCOME {user} {}", done.message))
            }
            R::Logout => {
                let user = self.user(conn)?.to_string();
                self.end(conn);
                Reply::Ack(format!("logged out {user}"))
            }
            R::CreateGroup { group } => {
                let admin = self.user(conn)?.to_string();
                self.mutate(Record::CreateGroup {
                    group: group.clone(),
                    admin,
                })?;
                Reply::Ack(format!("created group {group}; you are its admin"))
            }
            R::Join { group } => {
                let user = self.user(conn)?.to_string();
                let record = Record::RequestJoin {
                    group: group.clone(),
                    user,
                };
                match self.mutate(record)? {
                    Effect::Unchanged(already) => Reply::Ack(already.to_string()),
                    Effect::Change => {
                        Reply::Ack(format!("asked to join {group}; its admin must accept"))
                    }
                }
            }
            R::Leave { group } => {
                let user = self.user(conn)?.to_string();
                let member = lock(&self.state).is_member(&group, &user);
                self.mutate(Record::Leave {
                    group: group.clone(),
                    user: user.clone(),
                })?;
                lock(&self.sessions).left(&group, &user);
                if member {
                    Reply::Ack(format!("left {group}"))
                } else {
                    Reply::Ack(format!("withdrew the request to join {group}"))
                }
            }
            R::Requests { group } => {
                let user = self.user(conn)?;
                let state = lock(&self.state);
                let list = state.list_requests(&group, user).map_err(auth_err)?;
                words("requests", list.into_iter().map(str::to_string))
            }
            R::Accept { group, user } => {
                let admin = self.user(conn)?.to_string();
                self.mutate(Record::Accept {
                    group: group.clone(),
                    admin,
                    user: user.clone(),
                })?;
                Reply::Ack(format!("{user} is now a member of {group}"))
            }
            R::Groups => {
                let state = lock(&self.state);
                words("groups", state.groups().map(|(g, _)| g.to_string()))
            }
            R::Files { group } => {
                let user = self.user(conn)?;
                let state = lock(&self.state);
                let files = state.list_files(&group, user).map_err(auth_err)?;
                words("files", files.into_iter().map(|f| f.meta.name.clone()))
            }
            R::GUpload { group, meta } => {
                let user = self.user(conn)?.to_string();
                let holder =
                    peer.ok_or_else(|| err(ErrCode::NotRegistered, "send REGISTER <port> first"))?;
                let record = Record::AddFile {
                    group: group.clone(),
                    user: user.clone(),
                    meta: meta.clone(),
                };
                self.mutate(record)?;
                lock(&self.sessions).hold(&group, &meta.name, holder, &user);
                Reply::Ack(format!("{group} {} {}", meta.name, meta.sha1))
            }
            R::GRemove { group, name } => {
                self.user(conn)?;
                let holder =
                    peer.ok_or_else(|| err(ErrCode::NotRegistered, "send REGISTER <port> first"))?;
                if !lock(&self.sessions).unhold(&group, &name, holder) {
                    return Err(err(
                        ErrCode::NotFound,
                        format!("you do not share {name} in {group}"),
                    ));
                }
                Reply::Ack(format!("{group} {name} removed"))
            }
            R::GWhoHas { group, name } => {
                let user = self.user(conn)?;
                lock(&self.state)
                    .file(&group, user, &name)
                    .map_err(auth_err)?;
                let holders = lock(&self.sessions).holders(&group, &name);
                if holders.is_empty() {
                    return Err(err(
                        ErrCode::NotFound,
                        format!("no peer online holds {name} in {group}"),
                    ));
                }
                // The rules of `WHOHAS`: reachable holders only, at most a reply's worth.
                let asker = Asker {
                    ip,
                    me: peer,
                    turn: conn.turns.take(),
                };
                let holders = Holders::full_of(holders.iter().map(String::as_str));
                Reply::Peers(holders.pick(&name, &asker)?)
            }
            R::GInfo { group, name } => {
                let user = self.user(conn)?;
                let state = lock(&self.state);
                Reply::File(
                    state
                        .file(&group, user, &name)
                        .map_err(auth_err)?
                        .meta
                        .clone(),
                )
            }
            R::Grant {
                group,
                name,
                holder,
            } => {
                let user = self.user(conn)?;
                let root = lock(&self.state)
                    .file(&group, user, &name)
                    .map_err(auth_err)?
                    .meta
                    .root;
                let sessions = lock(&self.sessions);
                let key = sessions.holder_key(&group, &name, &holder).ok_or_else(|| {
                    err(
                        ErrCode::NotFound,
                        format!("{holder} does not hold {name} in {group} now"),
                    )
                })?;
                let expiry = unix_now() + self.config.ticket_lifetime.as_secs();
                let ticket = Ticket::mint(key, user, &group, &name, root, &ip.to_string(), expiry);
                Reply::Ack(ticket.to_string())
            }
            R::Vouch { group, user } => {
                let me = self.user(conn)?;
                let state = lock(&self.state);
                if !state.is_member(&group, me) {
                    return Err(auth_err(AuthError::NotMember {
                        group,
                        user: me.to_string(),
                    }));
                }
                if !state.is_member(&group, &user) {
                    return Err(auth_err(AuthError::NotMember { group, user }));
                }
                Reply::Ack(format!("{user} is a member of {group}"))
            }
            R::Ticket(_) => {
                return Err(crate::protocol::Role::Tracker.foreign_verb("TICKET"));
            }
        };
        Ok(reply)
    }
}
