//! Downloading what a .torrent describes, from Torrentphile peers. The .torrent is the trust
//! anchor: its `pieces` are the hashes every piece is checked against, and the tracker's
//! `FILE` line for its wire name (`bt-<info-hash>`, see `torrent::wire`) must be exactly the
//! line the .torrent gives, or nothing is fetched.
//!
//! The steps are those of a plain download with a torrent's own prepare and publish around
//! the same transfer (coordinator, fetchers, hashers):
//! 1. the lock `.torrentphile/bt-<hash>.lock`;
//! 2. data already at `DIR/NAME` (and no download of it in progress): if every piece
//!    verifies, it is seeded and nothing is fetched; otherwise the download refuses, touching
//!    nothing;
//! 3. `INFO bt-<hash>`, compared with the .torrent;
//! 4. the part files `.torrentphile/bt-<hash>.parts/<i>` (a resumed download re-hashes them),
//!    served as their pieces verify (`PARTIAL`);
//! 5. the transfer; then every part file is hard-linked to its place under `DIR/NAME`, and
//!    `UPLOAD`.
//!
//! No whole-file hash: the `FILE` line's `sha1` of a torrent is its info-hash, and the line is
//! checked whole against the .torrent, so no first holder can be inconsistent with it.

use std::fs;
use std::sync::Arc;
use std::time::Instant;

use super::bt_fetch::BtSwarm;
use super::prepare::Prepared;
use super::{Context, DownloadError, DownloadOptions, Report, failed};
use crate::peer::store::{Holding, Layout, LockError, PieceSet, check_pieces, torrent_files};
use crate::protocol::{ErrCode, Reply, Request};
use crate::torrent::Metainfo;
use crate::torrent::wire::{announce_address, piece_hashes, torrent_meta};

/// Download the data of `t` into the store's folder, as `DIR/NAME` (one file) or
/// `DIR/NAME/...` (a folder). Blocks until every piece is verified and every file is in
/// place, or the download has failed (verified pieces are kept for a resume).
pub fn download_torrent(ctx: &Context, t: &Metainfo) -> Result<Report, DownloadError> {
    let started = Instant::now();
    let want = torrent_meta(t).map_err(failed)?;
    let name = want.name.clone();
    let store = ctx.store;
    let lock = match store.lock_download(&name) {
        Ok(lock) => lock,
        Err(LockError::Busy) => {
            return Err(failed(format!(
                "another download of {} ({name}) into {} is running; let it finish, then run again",
                t.name,
                store.dir().display()
            )));
        }
        Err(LockError::Io(path, e)) => {
            return Err(failed(format!("cannot lock {}: {e}", path.display())));
        }
    };
    let target = store.dir().join(&t.name);
    let parts_dir = store.parts_dir(&name);
    if fs::symlink_metadata(&target).is_ok() && !parts_dir.exists() {
        return match store.share_torrent(t, store.dir()) {
            Ok(meta) => Ok(super::already_here(ctx, meta, started)),
            Err(e) => Err(failed(format!(
                "{} is already there and is not the torrent's data ({e}); move it away and run again",
                target.display()
            ))),
        };
    }
    let bt = bt_swarm(ctx, t);
    let meta = match ctx
        .link
        .call_line(Request::Info { name: name.clone() })
        .map_err(failed)?
    {
        Reply::File(meta) if meta.name == name => meta,
        // No Torrentphile peer has it: the BitTorrent swarm may (the .torrent is the anchor).
        Reply::Err(ErrCode::NotFound, _)
            if bt.as_ref().is_some_and(|b| !b.peers(want.size).is_empty()) =>
        {
            want.clone()
        }
        Reply::Err(ErrCode::NotFound, msg) => {
            return Err(DownloadError::NotFound(format!(
                "no peer seeds {} ({name}): {msg}",
                t.name
            )));
        }
        other => return Err(failed(format!("tracker answered INFO with {other}"))),
    };
    if !meta.same_content(&want) {
        return Err(failed(format!(
            "the tracker describes {name} as \"{}\", but the .torrent says \"{}\": a peer \
             announced other content under this torrent's name; nothing fetched",
            Reply::File(meta),
            Reply::File(want)
        )));
    }
    let resuming = parts_dir.exists();
    let cannot = |e: std::io::Error| failed(format!("cannot prepare {}: {e}", parts_dir.display()));
    let part = store.torrent_parts(t, &name).map_err(cannot)?;
    let hashes = Arc::new(piece_hashes(t));
    let have = Arc::new(PieceSet::new(meta.pieces()));
    if resuming {
        check_pieces(&part, &meta, &hashes, &have);
    }
    let resumed_bytes = (0..meta.pieces())
        .filter(|&i| have.has(i))
        .map(|i| meta.piece_range(i).1)
        .sum();
    // Our server reads the same part files through a layout of its own.
    let paths: Vec<_> = part
        .parts()
        .iter()
        .map(|p| (p.path.clone(), p.length))
        .collect();
    let served = Layout::files(&paths, false).map_err(cannot)?;
    store.insert_torrent(
        &meta,
        hashes.clone(),
        Holding::Partial(have.clone()),
        served,
    );
    // Tell the tracker we serve what we have; a failure here only costs the swarm our pieces.
    let _ = ctx.link.call_line(Request::Partial { name: name.clone() });

    let resumed = have.count();
    let options = DownloadOptions {
        whole_file_check: false,
        ..ctx.options.clone()
    };
    let ctx = Context {
        options: &options,
        ..*ctx
    };
    let prepared = Prepared {
        meta,
        hashes,
        part,
        have,
        resumed_bytes,
        lock,
        // The .torrent is the trust anchor: no holder answered HASHES first.
        responsive: Vec::new(),
    };
    let (shared, lock) = super::transfer_state(&ctx, prepared);
    let corrupt = super::transfer_bt(&ctx, &shared, &[], bt)?;
    let meta = shared.meta().clone();
    shared
        .part()
        .sync_all()
        .map_err(|e| failed(format!("cannot flush {}: {e}", parts_dir.display())))?;
    store
        .publish_torrent(t, &meta, shared.hashes())
        .map_err(failed)?;
    if let Err(e) = ctx.link.call_line(Request::Upload(meta.clone())) {
        ctx.events.say(&format!(
            "{}: downloaded, but announcing it failed: {e}",
            t.name
        ));
    }
    drop(lock);
    Ok(Report {
        meta,
        elapsed: started.elapsed(),
        resumed,
        from: shared.from(),
        corrupt,
        already_here: false,
        whole_checked: false,
    })
}

/// The torrent's BitTorrent swarm at its announce URL (`ip:port` only: a host name is not
/// looked up), announcing our own port.
fn bt_swarm(ctx: &Context, t: &Metainfo) -> Option<Arc<BtSwarm>> {
    let tracker = announce_address(t)?;
    let port: u16 = ctx.me.rsplit(':').next()?.parse().ok()?;
    let id = crate::peer::bt_serve::peer_id(port);
    let timeout = ctx.options.timeouts.io;
    Some(Arc::new(BtSwarm::new(
        t.info_hash,
        id,
        &tracker,
        port,
        timeout,
    )))
}

/// Where the files of `t` land in `dir`, in torrent order.
pub fn landing(t: &Metainfo, dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    torrent_files(t, dir).into_iter().map(|(p, _)| p).collect()
}
