//! Holders that lie: blocks shorter or longer than their `DATA` line says, and sizes that do
//! not match the bytes a holder has (`tests/common`'s `FakePeer` plays the liar). Asserts that
//! a download completes only with exactly the bytes the tracker's root vouches for, fails
//! cleanly (nothing under the final name) otherwise, and that a conflicting announcement is
//! refused.

use std::fs;
use std::thread;

use torrentphile::peer::download::{DownloadError, Report};
use torrentphile::peer::store::{hash_file, hashes_text};
use torrentphile::protocol::Meta;

use super::common::*;
use super::show;

const LIAR_PIECE: u32 = 16 * 1024;

/// A source file of 16 pieces and a downloader; `with_good` adds an honest peer holding it.
struct Scene {
    tracker: torrentphile::tracker::Tracker,
    src: std::path::PathBuf,
    meta: Meta,
    hashes: String,
    good: Option<torrentphile::peer::Peer>,
}

fn scene(tag: &str, with_good: bool) -> Scene {
    let tracker = tracker();
    let src = temp_dir(&format!("{tag}-src"));
    random_file(&src.join("f.bin"), 16 * LIAR_PIECE as u64 - 100, 11);
    let (meta, hashes) = hash_file(&src.join("f.bin"), "f.bin", LIAR_PIECE).unwrap();
    let good = with_good.then(|| {
        let dir = temp_dir(&format!("{tag}-good"));
        fs::copy(src.join("f.bin"), dir.join("f.bin")).unwrap();
        peer_with(&tracker, &dir, |c| c.piece_size = Some(LIAR_PIECE))
    });
    Scene {
        tracker,
        src,
        meta,
        hashes: hashes_text(&hashes),
        good,
    }
}

impl Scene {
    fn body(&self) -> Vec<u8> {
        fs::read(self.src.join("f.bin")).unwrap()
    }

    /// A liar announcing the real file and answering `PIECE` the way `how` says.
    fn liar(&self, how: Behaviour) -> FakePeer {
        self.liar_announcing(&self.meta, self.hashes.clone(), self.body(), how)
    }

    /// A liar announcing `meta` with `hashes` and serving `body`, which the tracker accepts.
    fn liar_announcing(
        &self,
        meta: &Meta,
        hashes: String,
        body: Vec<u8>,
        how: Behaviour,
    ) -> FakePeer {
        let liar = FakePeer::serve(self.tracker.addr(), meta, hashes, body, how);
        assert!(
            liar.upload_reply.starts_with("ACK "),
            "{}",
            liar.upload_reply
        );
        liar
    }

    /// Download with a downloader of its own; it must succeed if `must_succeed`.
    fn download(&self, must_succeed: bool) -> Result<Report, DownloadError> {
        let result = self.fetch(false, &self.body());
        if let Err(e) = &result {
            assert!(!must_succeed, "the download failed: {e}");
        }
        result
    }

    /// Download with a fresh downloader (with the whole-file SHA-1 pass or not). It may
    /// complete only with exactly `good`, the bytes the tracker's root vouches for; if it
    /// fails, nothing is under the final name.
    fn fetch(&self, whole_hash: bool, good: &[u8]) -> Result<Report, DownloadError> {
        let dl = temp_dir("liar-dl");
        let downloader = peer_with(&self.tracker, &dl, |c| {
            c.download.whole_file_check = whole_hash;
        });
        let result = downloader.download("f.bin");
        match &result {
            Ok(_) => assert!(
                fs::read(dl.join("f.bin")).unwrap() == good,
                "the download completed with other bytes than the announced ones"
            ),
            Err(_) => assert!(
                files_in(&dl).is_empty(),
                "a failed download left {:?}",
                files_in(&dl)
            ),
        }
        result
    }
}

#[test]
fn a_block_shorter_than_announced_is_not_accepted() {
    // With an honest holder too, the download completes with the right bytes.
    let s = scene("short", true);
    let liar = s.liar(Behaviour::DieAfter(0));
    let report = s.download(true).unwrap();
    assert!(!report.from.contains_key(&liar.addr), "{:?}", report.from);
    eprintln!(
        "with a good holder: the liar was asked for {liar_asked} piece(s)",
        liar_asked = liar.asked()
    );
    // With the liar alone, it fails cleanly: nothing under the final name.
    let s = scene("short-only", false);
    let liar = s.liar(Behaviour::DieAfter(0));
    let err = s.download(false).unwrap_err();
    assert!(matches!(err, DownloadError::Failed(_)), "{err:?}");
    assert!(liar.asked() > 0);
    eprintln!("the liar alone: {err}");
}

#[test]
fn a_block_longer_than_announced_is_not_accepted() {
    let wrong_next: Vec<u8> = {
        let mut v = format!("DATA {LIAR_PIECE}\n").into_bytes();
        v.extend(std::iter::repeat_n(0xa5, LIAR_PIECE as usize));
        v
    };
    let extras = [
        b"trailing garbage".to_vec(),
        b"\n".to_vec(),
        b"PONG\n".to_vec(),
        b"ERR unavailable not here\n".to_vec(),
        wrong_next,
    ];
    // Each kind of extra in its own swarm, all at once (most of the time is spent waiting).
    let runs: Vec<_> = extras
        .into_iter()
        .map(|extra| thread::spawn(move || longer_than_announced(extra)))
        .collect();
    for run in runs {
        run.join().unwrap();
    }
}

fn longer_than_announced(extra: Vec<u8>) {
    let s = scene("long", true);
    let liar = s.liar(Behaviour::Long(extra.clone()));
    s.download(true)
        .unwrap_or_else(|e| panic!("{}: {e}", show(&extra)));
    let with_good = liar.asked();
    let s = scene("long-only", false);
    let liar = s.liar(Behaviour::Long(extra.clone()));
    // The liar's blocks themselves are right, so this may even complete; if it does,
    // the file is exactly right (checked in `download`).
    let alone = s.download(false);
    assert!(liar.asked() > 0);
    eprintln!(
        "extra {}: the liar was asked {with_good} piece(s) beside a good holder; alone: {}",
        show(&extra[..extra.len().min(30)]),
        match alone {
            Ok(r) => format!("completed from {:?}", r.from),
            Err(e) => e.to_string(),
        }
    );
}

#[test]
fn a_holder_announcing_a_size_that_does_not_match_its_bytes() {
    // 1. The liar announces first: 5000 bytes more than it has, with piece hashes (and root
    //    and SHA-1) of its bytes padded with zeros, and serves only what it has. The last
    //    pieces come short; nothing is published, with or without the whole-file pass.
    let s = scene("size-more", false);
    let mut padded = s.body();
    padded.resize(padded.len() + 5000, 0);
    let path = s.src.join("padded.bin");
    fs::write(&path, &padded).unwrap();
    let (meta, hashes) = hash_file(&path, "f.bin", LIAR_PIECE).unwrap();
    let liar = s.liar_announcing(&meta, hashes_text(&hashes), s.body(), Behaviour::Good);
    for whole_hash in [false, true] {
        let err = s.fetch(whole_hash, &padded).unwrap_err();
        assert!(matches!(err, DownloadError::Failed(_)), "{err:?}");
    }
    assert!(liar.asked() > 0);

    // 2. Fewer bytes announced than it has (hashes and SHA-1 of the first `cut` bytes), and
    //    the last piece sent whole, longer than the announced size allows: refused.
    let s = scene("size-less", false);
    let body = s.body();
    let cut = body.len() - 3000;
    let path = s.src.join("cut.bin");
    fs::write(&path, &body[..cut]).unwrap();
    let (cut_meta, cut_hashes) = hash_file(&path, "f.bin", LIAR_PIECE).unwrap();
    let _liar = s.liar_announcing(
        &cut_meta,
        hashes_text(&cut_hashes),
        body.clone(),
        Behaviour::FullPieces,
    );
    for whole_hash in [false, true] {
        let err = s.fetch(whole_hash, &body[..cut]).unwrap_err();
        assert!(matches!(err, DownloadError::Failed(_)), "{err:?}");
    }

    // 3. The same short size, pieces served as announced, but the SHA-1 of all its bytes:
    //    the pieces (bound to the root) vouch for exactly the first `cut` bytes, which is all
    //    a default download gets; the whole-file pass sees the SHA-1 does not match them.
    let s = scene("size-sha", false);
    let mut lie = cut_meta.clone();
    lie.sha1 = s.meta.sha1;
    let _liar = s.liar_announcing(
        &lie,
        hashes_text(&cut_hashes),
        body.clone(),
        Behaviour::Good,
    );
    let report = s.fetch(false, &body[..cut]).unwrap();
    assert_eq!(report.meta.size, cut as u64);
    let err = s.fetch(true, &body[..cut]).unwrap_err();
    assert!(err.to_string().contains("inconsistent"), "{err}");

    // 4. An honest holder announced first: the liar's other size is a conflict, the tracker
    //    does not list it, and the download gets the real file.
    let s = scene("size-conflict", true);
    let liar = FakePeer::serve(
        s.tracker.addr(),
        &cut_meta,
        hashes_text(&cut_hashes),
        s.body(),
        Behaviour::Good,
    );
    assert!(
        liar.upload_reply.starts_with("ERR conflict "),
        "{}",
        liar.upload_reply
    );
    let good = s.good.as_ref().unwrap().addr().to_string();
    assert_eq!(who_has(&s.tracker, "f.bin"), [good]);
    s.download(true).unwrap();
}

/// A holder that announces the file and then refuses every piece (`ERR unavailable`): the
/// download gets every piece elsewhere. (Alone, it fails after the stall timeout, which is
/// what `a_block_shorter_than_announced_is_not_accepted` shows for a holder that dies.)
#[test]
fn a_holder_refusing_every_piece_is_worked_around() {
    let s = scene("refuse", true);
    let liar = s.liar(Behaviour::Refuse);
    let report = s.download(true).unwrap();
    assert!(!report.from.contains_key(&liar.addr), "{:?}", report.from);
    eprintln!("the refuser was asked for {} piece(s)", liar.asked());
}
