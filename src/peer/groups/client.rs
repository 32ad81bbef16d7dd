//! The client side of accounts and groups: what the shell's Mini-Torrent commands call.
//!
//! Logging in is SCRAM over the tracker link (`LOGIN`, `PROOF`); the derived `ClientKeys` are
//! kept in memory so that, when the link reconnects (a tracker restart), the peer logs in again
//! and re-announces its group files without asking for the password. A group download asks the
//! tracker for the file (`GINFO`), its holders (`GWHOHAS`) and a ticket per holder (`GRANT`),
//! presents the ticket to the holder, checks the piece hashes against `root` and every piece
//! against its hash, and publishes the file in the group's folder (then copies it where the
//! user asked). It runs the public downloader (`peer::download`: every holder at once, the
//! verifier pool) with a `GroupAccess` hook; it never fetches a byte itself.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use super::{Groups, lock};
use crate::auth::base64;
use crate::auth::scram::{self, ClientKeys, Credentials, SessionKey};
use crate::auth::ticket::TicketKey;
use crate::conn::Conn;
use crate::peer::Peer;
use crate::peer::download::{
    self, Access, Context, DownloadError, DownloadOptions, Progress, Report,
};
use crate::peer::store::Holding;
use crate::protocol::{AccountRequest, ErrCode, Holder, Meta, Reply, Request};
use crate::tracker::accounts::urandom;

/// A group download, for `show_downloads`.
#[derive(Debug)]
pub struct GroupDownload {
    pub group: String,
    pub name: String,
    /// `None` while running.
    pub outcome: Mutex<Option<Result<(), String>>>,
}

impl GroupDownload {
    /// `[D] [group] name` while downloading, `[C] [group] name` once complete.
    pub fn line(&self) -> String {
        match &*self.outcome.lock().unwrap_or_else(PoisonError::into_inner) {
            None => format!("[D] [{}] {}", self.group, self.name),
            Some(Ok(())) => format!("[C] [{}] {}", self.group, self.name),
            Some(Err(e)) => format!("[F] [{}] {}: {e}", self.group, self.name),
        }
    }
}

/// What a login proves knowledge of.
pub enum Secret<'a> {
    Password(&'a [u8]),
    Keys(ClientKeys),
}

fn ack(reply: Reply) -> Result<String, String> {
    match reply {
        Reply::Ack(text) => Ok(text),
        Reply::Err(code, msg) => Err(format!("{} {msg}", code.as_str())),
        other => Err(format!("unexpected answer {other}")),
    }
}

/// Run the SCRAM exchange through `ask`: `LOGIN`, `PROOF`, and the server's signature
/// checked. Returns the keys (to log in again later) and the session key.
pub fn login_exchange(
    ask: &mut dyn FnMut(Request) -> Result<Reply, String>,
    user: &str,
    secret: Secret,
) -> Result<(ClientKeys, SessionKey), String> {
    let nonce = base64::encode(&urandom(18).map_err(|e| format!("no randomness: {e}"))?);
    let client = scram::Client::new(user, &nonce).map_err(|e| e.to_string())?;
    let first = client.first_message();
    let server_first = ack(ask(Request::Account(AccountRequest::Login { first }))?)?;
    let parsed = client
        .read_server_first(&server_first)
        .map_err(|e| e.to_string())?;
    let keys = match secret {
        Secret::Keys(keys) if keys.fits(&parsed) => keys,
        Secret::Keys(_) => return Err("the tracker has other credentials now; log in again".into()),
        Secret::Password(password) => ClientKeys::derive(password, &parsed.salt, parsed.iterations),
    };
    let last = client.final_message(&parsed, &keys);
    let proof = Request::Account(AccountRequest::Proof {
        last: last.message().to_string(),
    });
    let welcome = ack(ask(proof)?)?;
    let signature = welcome.rsplit(' ').next().unwrap_or_default();
    let session = last
        .read_server_final(signature)
        .map_err(|e| e.to_string())?;
    Ok((keys, session))
}

/// After the tracker link (re)connects: log in again with the kept keys and announce every
/// group file. Runs on the link's own thread, on its connection.
pub fn relogin(groups: &Groups, conn: &mut Conn) {
    groups.session_lost();
    let Some((user, keys)) = groups.relogin_keys() else {
        return;
    };
    let mut ask = |r: Request| conn.request(&r).map_err(|e| e.to_string());
    match login_exchange(&mut ask, &user, Secret::Keys(keys)) {
        Ok((keys, session)) => {
            groups.logged_in(&user, keys, TicketKey::from_session(&session));
            announce(groups, &mut ask);
        }
        Err(e) => eprintln!("could not log in again as {user}: {e}"),
    }
}

/// `GUPLOAD` every complete group file.
fn announce(groups: &Groups, ask: &mut dyn FnMut(Request) -> Result<Reply, String>) {
    for (group, store) in groups.stores() {
        for entry in store.entries() {
            if matches!(entry.holding, Holding::Complete) {
                let request = Request::Account(AccountRequest::GUpload {
                    group: group.clone(),
                    meta: entry.meta.clone(),
                });
                if let Ok(Reply::Err(code, msg)) = ask(request) {
                    eprintln!(
                        "tracker refused {} in {group}: {} {msg}",
                        entry.meta.name,
                        code.as_str()
                    );
                }
            }
        }
    }
}

impl Peer {
    fn ask_line(&self, request: AccountRequest) -> Result<String, String> {
        self.follow_leader(|| ack(self.link.call_line(Request::Account(request.clone()))?))
    }

    /// Run `f` again after a failover: when the tracker answered `ERR not-leader` (nothing was
    /// done; the link is moving to the leader) or the link was between trackers (nothing was
    /// sent), wait for the link to register with the next tracker and ask again, a few times.
    /// A request whose connection broke mid-way is not repeated: it may have taken effect.
    fn follow_leader<T>(&self, mut f: impl FnMut() -> Result<T, String>) -> Result<T, String> {
        let mut tries = 0;
        loop {
            match f() {
                Err(e)
                    if tries < 6
                        && (e.starts_with("not-leader ")
                            || (e.starts_with("tracker ") && e.contains(" unreachable: "))) =>
                {
                    tries += 1;
                    // The link clears its registration just after handing back the refusal:
                    // give it a moment, then wait for the next registration.
                    std::thread::sleep(std::time::Duration::from_millis(50 * tries));
                    let _ = self.link.wait_registered(std::time::Duration::from_secs(5));
                }
                other => return other,
            }
        }
    }

    /// `create_user`: the tracker picks a salt; the password never leaves this process.
    pub fn create_user(&self, user: &str, password: &str) -> Result<String, String> {
        let salt = self.ask_line(AccountRequest::Salt { user: user.into() })?;
        let mut words = salt.split(' ');
        let salt = words.next().and_then(|w| w.strip_prefix("salt="));
        let count = words.next().and_then(|w| w.strip_prefix("i="));
        let (Some(salt), Some(Ok(iterations))) = (salt, count.map(str::parse::<u32>)) else {
            return Err(format!("unexpected SALT answer {salt:?}"));
        };
        if iterations == 0 || iterations > scram::MAX_ITERATIONS {
            return Err(format!(
                "the tracker asks for {iterations} iterations; refused"
            ));
        }
        let salt = base64::decode(salt).map_err(|e| format!("bad salt: {e}"))?;
        let credentials = Credentials::derive(password.as_bytes(), &salt, iterations);
        self.ask_line(AccountRequest::CreateUser {
            user: user.into(),
            stored_key: credentials.stored_key,
            server_key: credentials.server_key,
        })
    }

    /// `login`: SCRAM, then serve and announce this peer's group files.
    pub fn login(&self, user: &str, password: &str) -> Result<String, String> {
        let mut ask = |r: Request| self.link.call_line(r);
        let (keys, session) = self.follow_leader(|| {
            let secret = Secret::Password(password.as_bytes());
            login_exchange(&mut ask, user, secret)
        })?;
        self.groups
            .logged_in(user, keys, TicketKey::from_session(&session));
        announce(&self.groups, &mut ask);
        Ok(format!("logged in as {user}"))
    }

    /// `logout`: the tracker stops listing this peer's group files, and this peer stops
    /// serving them, until the next login.
    pub fn logout(&self) -> Result<String, String> {
        let reply = self.ask_line(AccountRequest::Logout);
        self.groups.logged_out();
        reply
    }

    /// Any one-line account verb (`create_group`, `join_group`, `list_groups` ...).
    pub fn account(&self, request: AccountRequest) -> Result<String, String> {
        self.ask_line(request)
    }

    /// This peer's group folders.
    pub fn groups(&self) -> &Arc<Groups> {
        &self.groups
    }

    /// `upload_file <path> <group>`: bring the file into the group's folder and share it there.
    pub fn upload_group(&self, path: &Path, group: &str) -> Result<Meta, String> {
        let store = self.groups.store(group)?;
        let meta = store.share_path(path)?;
        let request = AccountRequest::GUpload {
            group: group.into(),
            meta: meta.clone(),
        };
        if let Err(e) = self.ask_line(request) {
            store.forget(&meta.name);
            return Err(e);
        }
        Ok(meta)
    }

    /// `stop_share <group> <name>`: stop serving it (the file stays in the group's folder).
    pub fn stop_share_group(&self, group: &str, name: &str) -> Result<String, String> {
        let store = self.groups.store(group)?;
        if !store.unshare(name) {
            return Err(format!("{name} is not shared in {group} by this peer"));
        }
        self.ask_line(AccountRequest::GRemove {
            group: group.into(),
            name: name.into(),
        })
    }

    /// `download_file <group> <name> <dest>`: fetch, verify, share in the group, copy to
    /// `dest` (a folder, or a file path).
    pub fn download_group(&self, group: &str, name: &str, dest: &Path) -> Result<String, String> {
        let record = Arc::new(GroupDownload {
            group: group.into(),
            name: name.into(),
            outcome: Mutex::new(None),
        });
        lock(&self.groups.downloads).push(record.clone());
        let result = self.fetch_group(group, name, dest);
        *lock(&record.outcome) = Some(result.as_ref().map(|_| ()).map_err(Clone::clone));
        result
    }

    fn fetch_group(&self, group: &str, name: &str, dest: &Path) -> Result<String, String> {
        let started = Instant::now();
        let store = self.groups.store(group)?;
        let report = self.get_group(group, name)?;
        let target = if dest.is_dir() {
            dest.join(name)
        } else {
            dest.to_path_buf()
        };
        place(&store.path(name), &target)?;
        Ok(format!(
            "downloaded {name} of {group} ({} bytes) to {} in {:.1} s",
            report.meta.size,
            target.display(),
            started.elapsed().as_secs_f64()
        ))
    }

    /// Download `name` of `group` into the group's folder with the public downloader (every
    /// holder at once, pieces verified by the pool), asking `GINFO`/`GWHOHAS` and presenting
    /// a fresh `GRANT`ed ticket on every holder connection; then `GUPLOAD` it. Blocks.
    pub fn get_group(&self, group: &str, name: &str) -> Result<Report, String> {
        let store = self.groups.store(group)?;
        let me = self.link.wait_registered(self.config.timeouts.idle)?;
        let access: Arc<dyn Access> = Arc::new(GroupAccess {
            group: group.into(),
            name: name.into(),
            ask: self.link.shared_caller(),
        });
        let options = DownloadOptions {
            access: Some(access),
            ..self.config.download.clone()
        };
        let progress = Progress::new(name);
        let ctx = Context {
            store: &store,
            link: &self.link,
            me: &me,
            options: &options,
            progress: &progress,
            events: &self.events,
        };
        download::download(&ctx, name).map_err(|e| match e {
            DownloadError::NotFound(why) => format!("not-found {why}"),
            DownloadError::Failed(why) => why,
        })
    }
}

/// A group's side of a download: `GINFO`, `GWHOHAS`, a `GRANT` per holder connection,
/// `GUPLOAD` once complete. Asks through the tracker link from any download thread.
struct GroupAccess {
    group: String,
    /// The file downloaded (a ticket is for one file).
    name: String,
    ask: Arc<dyn Fn(Request) -> Result<Reply, String> + Send + Sync>,
}

impl fmt::Debug for GroupAccess {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "GroupAccess({} {})", self.group, self.name)
    }
}

impl Access for GroupAccess {
    fn info(&self, name: &str) -> Result<Reply, String> {
        let info = AccountRequest::GInfo {
            group: self.group.clone(),
            name: name.into(),
        };
        match (self.ask)(Request::Account(info))? {
            reply @ (Reply::File(_) | Reply::Err(ErrCode::NotFound, _)) => Ok(reply),
            other => Err(ack(other).err().unwrap_or_default()),
        }
    }

    fn who_has(&self, name: &str) -> Result<Vec<Holder>, String> {
        let whohas = AccountRequest::GWhoHas {
            group: self.group.clone(),
            name: name.into(),
        };
        match (self.ask)(Request::Account(whohas))? {
            Reply::Peers(holders) => Ok(holders),
            Reply::Err(ErrCode::NotFound, _) => Ok(Vec::new()),
            other => Err(ack(other).err().unwrap_or_default()),
        }
    }

    fn ticket(&self, holder: &str) -> Result<String, String> {
        let grant = AccountRequest::Grant {
            group: self.group.clone(),
            name: self.name.clone(),
            holder: holder.into(),
        };
        ack((self.ask)(Request::Account(grant))?)
    }

    fn announce(&self, meta: &Meta) -> Result<(), String> {
        let gupload = AccountRequest::GUpload {
            group: self.group.clone(),
            meta: meta.clone(),
        };
        ack((self.ask)(Request::Account(gupload))?).map(drop)
    }
}

/// Put a copy of `src` at `dest` (a hard link where possible); never over an existing file.
fn place(src: &Path, dest: &PathBuf) -> Result<(), String> {
    if fs::canonicalize(src).ok() == fs::canonicalize(dest).ok() {
        return Ok(());
    }
    if dest.exists() {
        return Err(format!(
            "{} exists already; choose another destination",
            dest.display()
        ));
    }
    if fs::hard_link(src, dest).is_err() {
        fs::copy(src, dest).map_err(|e| format!("cannot copy to {}: {e}", dest.display()))?;
    }
    Ok(())
}
