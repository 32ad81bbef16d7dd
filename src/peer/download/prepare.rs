//! Everything a download does before the first piece is asked for:
//!
//! 1. `INFO` at the tracker: what the file is (its `FILE` line), or that nobody shares it;
//! 2. the download lock `.torrentphile/NAME.lock`: one download per name per folder, across
//!    threads and processes;
//! 3. a file already under the name: if it is the tracker's file, there is nothing to do; if
//!    it is another file, the download refuses and touches nothing;
//! 4. the piece hashes, from the `.meta` cache of an earlier attempt or from a holder
//!    (`HASHES`), checked against the tracker's `root`;
//! 5. the part file `.torrentphile/NAME.part`: whatever it already holds is re-hashed and only
//!    pieces that match count (resume); then `PARTIAL` tells the tracker we serve them.

use std::fs::{self, OpenOptions};
use std::io;
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

use crate::conn::{Conn, Timeouts, Trace};
use crate::peer::download::access::{Access, present};
use crate::peer::link::Link;
pub use crate::peer::store::NameLock as Lock;
use crate::peer::store::{self, FileStamp, Holding, Layout, LockError, PieceSet, Store};
use crate::protocol::{Digest, ErrCode, Meta, Reply, Request, check_name};
use crate::util::Rng;

/// What `prepare` needs from its peer.
pub struct Needs<'a> {
    pub store: &'a Store,
    pub link: &'a Link,
    /// This peer's id (never asked for hashes).
    pub me: &'a str,
    pub timeouts: Timeouts,
    pub trace: Trace,
    /// For a group's file: `info`/`who_has` instead of `INFO`/`WHOHAS`, a ticket before
    /// `HASHES`, and no `PARTIAL` (the group's holders learn of us from the tracker only
    /// once we hold it all).
    pub access: Option<Arc<dyn Access>>,
}

/// What `prepare` found.
pub enum Ready {
    /// Fetch the missing pieces.
    Fetch(Prepared),
    /// The file under the name is already the tracker's file (hashed and compared).
    AlreadyHere(Meta),
    /// The tracker knows no such file; why, in a sentence.
    NotFound(String),
}

/// A download ready to fetch.
pub struct Prepared {
    pub meta: Meta,
    pub hashes: Arc<Vec<Digest>>,
    pub part: Layout,
    /// Pieces verified so far (resumed from an earlier run).
    pub have: Arc<PieceSet>,
    pub resumed_bytes: u64,
    /// Held until the download ends: no other download of the name into this folder meanwhile.
    pub lock: Lock,
    /// The holder that sent the piece hashes (it answers): fetched from first.
    pub responsive: Vec<String>,
}

/// Steps 1 to 5 above. An error is a sentence for the user.
pub fn prepare(needs: &Needs, name: &str) -> Result<Ready, String> {
    check_name(name).map_err(|e| e.message)?;
    let info = match &needs.access {
        Some(access) => access.info(name)?,
        None => needs.link.call_line(Request::Info { name: name.into() })?,
    };
    let meta = match info {
        Reply::File(meta) if meta.name == name => meta,
        Reply::Err(ErrCode::NotFound, msg) => {
            return Ok(Ready::NotFound(not_found(needs, name, msg)));
        }
        other => return Err(format!("tracker answered INFO with {other}")),
    };
    let lock = match needs.store.lock_download(name) {
        Ok(lock) => lock,
        Err(LockError::Busy) => {
            return Err(format!(
                "another download of {name} into {} is running; let it finish, then run get again",
                needs.store.dir().display()
            ));
        }
        Err(LockError::Io(path, e)) => return Err(format!("cannot lock {}: {e}", path.display())),
    };
    // Under the lock: a download that just finished has published by now.
    if let Some(local) = local_file(needs.store, name, &meta)? {
        return if local.same_content(&meta) {
            Ok(Ready::AlreadyHere(meta))
        } else {
            Err(format!(
                "{} is not the shared {name} (local: {} bytes sha1 {}, tracker: {} bytes sha1 {}); move or rename it and run get again",
                needs.store.path(name).display(),
                local.size,
                local.sha1,
                meta.size,
                meta.sha1
            ))
        };
    }
    let mut responsive = Vec::new();
    let hashes = match needs.store.load_meta(name) {
        Some((cached, _, hashes)) if cached.same_content(&meta) => hashes,
        _ => {
            let (hashes, from) = fetch_hashes(needs, &meta)?;
            responsive.push(from);
            needs
                .store
                .save_meta(&meta, 0, &hashes)
                .map_err(|e| format!("cannot write in {}: {e}", needs.store.dir().display()))?;
            hashes
        }
    };
    let hashes = Arc::new(hashes);
    let part_path = needs.store.part_path(name);
    let part = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&part_path)
        .map_err(|e| format!("cannot open {}: {e}", part_path.display()))?;
    let have = Arc::new(PieceSet::new(meta.pieces()));
    let started = part.metadata().map_or(0, |m| m.len()) > 0;
    part.set_len(meta.size)
        .map_err(|e| super::disk::write_failed(&meta.name, &e, meta.size, Some(&part_path)))?;
    let part = Layout::single(&part_path, part, meta.size);
    if started {
        store::recheck(&part, &meta, &hashes, &have)
            .map_err(|e| format!("cannot read {}: {e}", part_path.display()))?;
    }
    let resumed_bytes: u64 = (0..meta.pieces())
        .filter(|&i| have.has(i))
        .map(|i| meta.piece_range(i).1)
        .sum();
    needs
        .store
        .begin_partial(&meta, hashes.clone(), have.clone());
    // Tell the tracker we serve what we have; a failure here only costs the swarm our pieces.
    if needs.access.is_none() {
        let _ = needs.link.call_line(Request::Partial { name: name.into() });
    }
    Ok(Ready::Fetch(Prepared {
        meta,
        hashes,
        part,
        have,
        resumed_bytes,
        lock,
        responsive,
    }))
}

/// The tracker knows no `name`: say so, and say that we hold one if we do.
fn not_found(needs: &Needs, name: &str, msg: String) -> String {
    match needs.store.get(name) {
        Some(entry) if matches!(entry.holding, Holding::Complete) => format!(
            "the tracker knows no {name} ({msg}), but {} is here ({} bytes, sha1 {}); nothing to download",
            needs.store.path(name).display(),
            entry.meta.size,
            entry.meta.sha1
        ),
        _ => msg,
    }
}

/// What the file already under `name` in the folder is, if there is one, hashed the way the
/// tracker's file was (same piece size) so the two compare. An error if the name is taken by
/// something that is not a regular file.
fn local_file(store: &Store, name: &str, tracker: &Meta) -> Result<Option<Meta>, String> {
    let path = store.path(name);
    let md = match fs::symlink_metadata(&path) {
        Ok(md) => md,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    if store::is_dangling_symlink(&path) {
        return Ok(None); // no file there: publishing replaces the link, not its target
    }
    if !md.is_file() {
        return Err(format!(
            "{} exists and is not a regular file, so it cannot be the shared {name}; move it away and run get again",
            path.display()
        ));
    }
    // The store's entry if it was hashed from this very version of the file, else hash it now.
    let known = store
        .get(name)
        .filter(|e| matches!(e.holding, Holding::Complete) && e.stamp == Some(FileStamp::of(&md)));
    let local = match known {
        Some(entry) => entry.meta.clone(),
        None => store.share_existing(name)?,
    };
    // The same bytes hashed in other piece sizes have another root: hash again to compare.
    if local.size == tracker.size
        && local.sha1 == tracker.sha1
        && local.piece_size != tracker.piece_size
    {
        return store
            .share_in_pieces(name, Some(tracker.piece_size))
            .map(Some);
    }
    Ok(Some(local))
}

/// Holders asked for `HASHES` at once.
const HASHES_AT_ONCE: usize = 16;
/// How long a holder may take to start answering `HASHES` (and to connect).
const HASHES_DEADLINE: Duration = Duration::from_secs(2);

/// Ask the holders for the piece-hash list, `HASHES_AT_ONCE` at a time (in random order, each
/// with a short deadline), until one gives a list that matches `meta.root`. Returns the list
/// and who sent it. A holder that stalls costs the deadline once, not once per holder ahead
/// of the honest one.
fn fetch_hashes(needs: &Needs, meta: &Meta) -> Result<(Vec<Digest>, String), String> {
    let holders = match &needs.access {
        Some(access) => access.who_has(&meta.name)?,
        None => needs.link.who_has(&meta.name)?,
    };
    let mut holders: Vec<String> = holders
        .into_iter()
        .map(|h| h.addr)
        .filter(|a| a != needs.me)
        .collect();
    Rng::from_time().shuffle(&mut holders);
    let timeouts = Timeouts {
        idle: needs.timeouts.idle.min(HASHES_DEADLINE),
        io: needs.timeouts.io.min(HASHES_DEADLINE),
        ..needs.timeouts
    };
    let mut errors = Vec::new();
    for batch in holders.chunks(HASHES_AT_ONCE) {
        let (tx, rx) = mpsc::channel();
        for addr in batch {
            let (tx, addr, meta, trace) =
                (tx.clone(), addr.clone(), meta.clone(), needs.trace.clone());
            let access = needs.access.clone();
            // Each thread ends within its timeouts; one that is still waiting when another
            // holder has answered finishes on its own, and its answer is dropped.
            let spawned = thread::Builder::new().name("hashes".into()).spawn(move || {
                let got = ask_hashes(&addr, &meta, timeouts, trace, access.as_deref());
                let _ = tx.send((addr, got));
            });
            if let Err(e) = spawned {
                errors.push(format!("cannot start a thread: {e}"));
            }
        }
        drop(tx);
        for (addr, got) in rx {
            match got {
                Ok(hashes) => return Ok((hashes, addr)),
                Err(e) => errors.push(format!("{addr}: {e}")),
            }
        }
    }
    if errors.is_empty() {
        errors.push("no other peer holds it".into());
    }
    Err(format!(
        "cannot get the piece hashes of {}: {}",
        meta.name,
        errors.join("; ")
    ))
}

/// `HASHES` of one holder, checked against `meta.root`.
fn ask_hashes(
    addr: &str,
    meta: &Meta,
    timeouts: Timeouts,
    trace: Trace,
    access: Option<&dyn Access>,
) -> Result<Vec<Digest>, String> {
    let max = meta.pieces() as u64 * 41;
    let request = Request::Hashes {
        name: meta.name.clone(),
    };
    let bytes = Conn::connect(addr, timeouts, trace)
        .and_then(|mut c| {
            if let Some(access) = access {
                present(access, addr, &mut c)?;
            }
            c.request_data(&request, max)
        })
        .map_err(|e| e.to_string())?;
    std::str::from_utf8(&bytes)
        .ok()
        .and_then(|t| store::parse_hashes(t, meta))
        .ok_or_else(|| "piece hashes do not match the tracker's root".to_string())
}
