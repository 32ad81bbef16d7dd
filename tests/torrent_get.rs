//! Downloading and seeding what a .torrent describes (issue 11, second half): torrents made by
//! mktorrent and transmission-create, single- and multi-file, pieces that cross files, names
//! with spaces and non-ASCII; every piece checked against the .torrent (a corrupt or lying
//! holder gets nowhere); aria2c --check-integrity agrees with our bytes; the seed project's
//! `download -o DEST FILE.torrent`. Tests that need mktorrent, transmission-create or aria2c
//! print why they skip when those are missing.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use torrentphile::peer::download::DownloadError;
use torrentphile::peer::store::hashes_text;
use torrentphile::torrent::Metainfo;
use torrentphile::torrent::wire::{piece_hashes, torrent_meta};

// ---- helpers ----

fn tool(name: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()));
    if !found {
        println!(
            "skipped: {name} is not installed (apt-get install mktorrent transmission-cli aria2)"
        );
    }
    found
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run tool");
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A folder whose names have spaces and non-ASCII letters, with an empty file and sizes that
/// make 32 KiB pieces cross file boundaries.
fn album(root: &Path) -> PathBuf {
    let d = root.join("My Album");
    fs::create_dir_all(d.join("disc 2/ünïcödé")).unwrap();
    random_file(&d.join("01 café.bin"), 100_000, 1);
    random_file(&d.join("disc 2/02 b c.txt"), 70_001, 2);
    random_file(&d.join("disc 2/ünïcödé/ñ x"), 33_000, 3);
    random_file(&d.join("tiny"), 5, 4);
    fs::write(d.join("empty"), b"").unwrap();
    d
}

/// `mktorrent -l <log2> -a <announce> -o <out> <target>`; the parsed torrent.
fn mktorrent(target: &Path, out: &Path, log2: u32, announce: &str) -> Metainfo {
    let _ = fs::remove_file(out);
    run(Command::new("mktorrent")
        .args(["-l", &log2.to_string(), "-a", announce, "-o"])
        .arg(out)
        .arg(target));
    Metainfo::parse(&fs::read(out).unwrap()).unwrap()
}

/// Every file of `t` below `got` has the bytes of the same file below `want`.
fn same_files(t: &Metainfo, want: &Path, got: &Path) {
    for i in 0..t.files.len() {
        let rel = t.file_path(i);
        assert_eq!(
            fs::read(got.join(&rel)).unwrap(),
            fs::read(want.join(&rel)).unwrap(),
            "{}",
            rel.display()
        );
    }
}

/// aria2c checks `dir`'s data against the .torrent, offline: no tracker, no DHT, no peers,
/// nothing written. `None` when aria2c is not installed.
fn aria2c_check(torrent: &Path, dir: &Path) -> Option<bool> {
    if !tool("aria2c") {
        return None;
    }
    let status = Command::new("aria2c")
        .args([
            "--check-integrity=true",
            "--hash-check-only=true",
            "--seed-time=0",
            "--bt-enable-lpd=false",
            "--enable-dht=false",
            "--enable-dht6=false",
            "--enable-peer-exchange=false",
            "--bt-exclude-tracker=*",
            "--interface=127.0.0.1",
            "--auto-save-interval=0",
            "--console-log-level=error",
            "--summary-interval=0",
            "--download-result=hide",
            "--quiet=true",
        ])
        .arg(format!("--dir={}", dir.display()))
        .arg(torrent)
        .status()
        .expect("run aria2c");
    Some(status.success())
}

// ---- downloads ----

#[test]
fn mktorrent_torrents_download_from_one_and_from_two_seeds_and_pass_aria2c() {
    if !tool("mktorrent") {
        return;
    }
    let tracker = tracker();
    let src = temp_dir("tg-src");
    let folder = album(&src);
    random_file(&src.join("big file.bin"), 3 << 20 | 4321, 9);
    let announce = format!("http://{}/announce", tracker.addr());
    let multi = src.join("album.torrent");
    let single = src.join("single.torrent");
    let tm = mktorrent(&folder, &multi, 15, &announce);
    let ts = mktorrent(&src.join("big file.bin"), &single, 16, &announce);
    assert!(tm.multi_file && !ts.multi_file);

    let seed1 = peer(&tracker, &temp_dir("tg-seed1"));
    let (t, meta) = seed1.share_torrent(&multi).unwrap();
    assert_eq!(meta.name, format!("bt-{}", t.info_hash_hex()));
    assert_eq!(meta.sha1.to_string(), t.info_hash_hex());
    seed1.share_torrent(&single).unwrap();

    // From one seed.
    let dl = temp_dir("tg-dl1");
    let one = peer(&tracker, &dl);
    let report = one.download_torrent(&tm).unwrap();
    assert_eq!(report.meta, meta);
    assert_eq!(report.from.len(), 1);
    same_files(&tm, &src, &dl);
    assert_eq!(fs::read(dl.join("My Album/empty")).unwrap(), b"");
    let report = one.download_torrent(&ts).unwrap();
    assert_eq!(report.meta.size, 3 << 20 | 4321);
    same_files(&ts, &src, &dl);
    assert!(
        !one.store().parts_dir(&meta.name).exists(),
        "part files removed"
    );
    assert_eq!(files_in(&dl), ["My Album", "big file.bin"]);
    if let Some(ok) = aria2c_check(&multi, &dl) {
        assert!(
            ok,
            "aria2c --check-integrity refused the multi-file download"
        );
    }
    if let Some(ok) = aria2c_check(&single, &dl) {
        assert!(
            ok,
            "aria2c --check-integrity refused the single-file download"
        );
    }
    // The downloader now seeds it too; from two seeds (different folders, the same data).
    let holders = who_has(&tracker, &meta.name);
    assert!(holders.contains(&one.addr().to_string()), "{holders:?}");
    let dl2 = temp_dir("tg-dl2");
    let two = peer(&tracker, &dl2);
    let report = two.download_torrent(&tm).unwrap();
    assert!(report.corrupt.is_empty());
    same_files(&tm, &src, &dl2);
    // A second run finds the data in place, verified: nothing fetched.
    let again = two.download_torrent(&tm).unwrap();
    assert!(again.already_here && again.from.is_empty());
    // aria2c's check can fail: one flipped byte and it refuses.
    let victim = dl2.join("My Album/disc 2/ünïcödé/ñ x");
    let mut bytes = fs::read(&victim).unwrap();
    bytes[0] ^= 1;
    fs::write(&victim, &bytes).unwrap();
    if let Some(ok) = aria2c_check(&multi, &dl2) {
        assert!(!ok, "aria2c passed a corrupt file");
    }
}

#[test]
fn a_transmission_create_torrent_downloads() {
    if !tool("transmission-create") {
        return;
    }
    let tracker = tracker();
    let src = temp_dir("tg-tr-src");
    let folder = album(&src);
    let file = src.join("t.torrent");
    run(Command::new("transmission-create")
        .arg("-o")
        .arg(&file)
        .args([
            "-s",
            "32",
            "-t",
            &format!("http://{}/announce", tracker.addr()),
        ])
        .arg(&folder));
    let t = Metainfo::parse(&fs::read(&file).unwrap()).unwrap();
    let seed = peer(&tracker, &temp_dir("tg-tr-seed"));
    seed.share_torrent(&file).unwrap();
    let dl = temp_dir("tg-tr-dl");
    peer(&tracker, &dl).download_torrent(&t).unwrap();
    // transmission-create leaves out the empty file: it must not appear.
    assert!(!dl.join("My Album/empty").exists());
    same_files(&t, &src, &dl);
    if let Some(ok) = aria2c_check(&file, &dl) {
        assert!(ok, "aria2c --check-integrity refused the download");
    }
}

/// A multi-file torrent of our own making (no outside tool needed): its bytes and `FILE`
/// line, served by a fake peer.
fn own_torrent(root: &Path) -> (PathBuf, Metainfo, Vec<u8>) {
    let folder = album(root);
    let out = root.join("own.torrent");
    let code = torrentphile::torrent::cli::main(&[
        "create".into(),
        "-l".into(),
        "15".into(),
        "-o".into(),
        out.to_str().unwrap().into(),
        folder.to_str().unwrap().into(),
    ]);
    assert_eq!(code, 0);
    let t = Metainfo::parse(&fs::read(&out).unwrap()).unwrap();
    let body: Vec<u8> = (0..t.files.len())
        .flat_map(|i| fs::read(root.join(t.file_path(i))).unwrap())
        .collect();
    (out, t, body)
}

#[test]
fn a_corrupt_holder_is_refused_by_the_torrents_own_hashes() {
    let tracker = tracker();
    let src = temp_dir("tg-bad-src");
    let (file, t, body) = own_torrent(&src);
    let meta = torrent_meta(&t).unwrap();
    let text = hashes_text(&piece_hashes(&t));
    // The first holder announces the right line but sends corrupt bytes.
    let liar = FakePeer::serve(tracker.addr(), &meta, text, body, Behaviour::Corrupt);
    assert!(
        liar.upload_reply.starts_with("ACK "),
        "{}",
        liar.upload_reply
    );
    let dl = temp_dir("tg-bad-dl");
    let downloader = peer(&tracker, &dl);
    match downloader.download_torrent(&t) {
        Err(DownloadError::Failed(msg)) => assert!(
            msg.contains("corrupt") || msg.contains("no holder"),
            "{msg}"
        ),
        other => panic!("a download from a corrupt holder alone: {other:?}"),
    }
    assert!(!dl.join("My Album").exists(), "nothing published");
    // With an honest seed beside it, the download completes and names the liar.
    let seed = peer(&tracker, &temp_dir("tg-bad-seed"));
    seed.share_torrent(&file).unwrap();
    let report = downloader.download_torrent(&t).unwrap();
    same_files(&t, &src, &dl);
    // Not one of the liar's pieces was kept.
    assert!(!report.from.contains_key(&liar.addr), "{:?}", report.from);
}

#[test]
fn a_tracker_line_other_than_the_torrents_is_refused_before_any_piece() {
    let tracker = tracker();
    let src = temp_dir("tg-lie-src");
    let (_, t, body) = own_torrent(&src);
    let mut meta = torrent_meta(&t).unwrap();
    // A holder squats the name with other pieces (a root of its own).
    let mut wrong = piece_hashes(&t);
    wrong[0] = torrentphile::sha1::Sha1::from(b"other").digest();
    let text = hashes_text(&wrong);
    meta.root = torrentphile::sha1::Sha1::from(&text).digest();
    let squatter = FakePeer::serve(tracker.addr(), &meta, text, body, Behaviour::Good);
    let dl = temp_dir("tg-lie-dl");
    match peer(&tracker, &dl).download_torrent(&t) {
        Err(DownloadError::Failed(msg)) => {
            assert!(msg.contains("but the .torrent says"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(squatter.asked(), 0, "no piece was asked of it");
}

#[test]
fn data_that_does_not_match_its_torrent_is_not_seeded() {
    let tracker = tracker();
    let src = temp_dir("tg-wrong");
    let (file, t, _) = own_torrent(&src);
    let seed = peer(&tracker, &temp_dir("tg-wrong-seed"));
    // One byte changed in the second file: the piece that crosses into it fails.
    let victim = src.join("My Album/disc 2/02 b c.txt");
    let mut bytes = fs::read(&victim).unwrap();
    bytes[10] ^= 1;
    fs::write(&victim, &bytes).unwrap();
    let err = seed.share_torrent(&file).unwrap_err();
    assert!(
        err.contains("do not match the .torrent") && err.contains("not seeded"),
        "{err}"
    );
    assert!(seed.store().entries().is_empty());
    // A missing file is named.
    fs::remove_file(&victim).unwrap();
    let err = seed.share_torrent(&file).unwrap_err();
    assert!(err.contains("02 b c.txt"), "{err}");
    assert_eq!(
        who_has(&tracker, &torrent_meta(&t).unwrap().name),
        Vec::<String>::new()
    );
}

#[test]
fn a_file_in_the_way_is_never_overwritten() {
    let tracker = tracker();
    let src = temp_dir("tg-way-src");
    let (file, t, _) = own_torrent(&src);
    peer(&tracker, &temp_dir("tg-way-seed"))
        .share_torrent(&file)
        .map(|_| ())
        .unwrap();
    let dl = temp_dir("tg-way-dl");
    fs::create_dir_all(dl.join("My Album")).unwrap();
    fs::write(dl.join("My Album/tiny"), b"mine!").unwrap();
    let err = peer(&tracker, &dl).download_torrent(&t).unwrap_err();
    assert!(
        err.to_string()
            .contains("is already there and is not the torrent's data"),
        "{err}"
    );
    assert_eq!(fs::read(dl.join("My Album/tiny")).unwrap(), b"mine!");
}

#[test]
fn the_seed_projects_download_form_and_the_announce_url_as_tracker() {
    if !tool("mktorrent") {
        return;
    }
    let tracker = tracker();
    let src = temp_dir("tg-cli-src");
    let folder = album(&src);
    let file = src.join("album.torrent");
    // No --tracker below: the announce URL names ours.
    let t = mktorrent(
        &folder,
        &file,
        15,
        &format!("http://{}/announce", tracker.addr()),
    );
    let _seed = Process::start(&[
        "peer",
        "--dir",
        temp_dir("tg-cli-seed").to_str().unwrap(),
        "--torrent",
        file.to_str().unwrap(),
        "--tracker",
        &tracker.addr().to_string(),
        "--port",
        "0",
    ]);
    eventually(
        "the seed announced",
        std::time::Duration::from_secs(20),
        || !who_has(&tracker, &torrent_meta(&t).unwrap().name).is_empty(),
    );
    let dest = temp_dir("tg-cli-dest");
    let out = run(Command::new(env!("CARGO_BIN_EXE_torrentphile"))
        .args([
            "download",
            "-o",
            dest.to_str().unwrap(),
            file.to_str().unwrap(),
        ])
        .args(["--timeout", "5"]));
    assert!(out.contains("downloaded My Album into"), "{out}");
    same_files(&t, &src, &dest);
    let dest2 = temp_dir("tg-cli-dest2");
    let out = run(Command::new(env!("CARGO_BIN_EXE_torrentphile"))
        .args([
            "get",
            "--torrent",
            file.to_str().unwrap(),
            "--dir",
            dest2.to_str().unwrap(),
        ])
        .args(["--timeout", "5"]));
    assert!(out.contains("5 files"), "{out}");
    same_files(&t, &src, &dest2);
    if let Some(ok) = aria2c_check(&file, &dest) {
        assert!(ok, "aria2c --check-integrity refused the download");
    }
}

/// 131,072 pieces (what a 4 GiB torrent has at 32 KiB) end to end: 128 MiB of zeros (a
/// sparse file) at 1 KiB pieces, so bitfields, hash lists and the picker meet the piece count
/// without moving 4 GiB.
#[test]
fn a_torrent_of_131072_pieces_seeds_and_downloads() {
    use torrentphile::torrent::bencode::{Value, encode};
    const PIECES: u64 = 131_072;
    let tracker = tracker();
    let src = temp_dir("tg-many");
    let data = src.join("zeros.bin");
    fs::File::create(&data)
        .unwrap()
        .set_len(PIECES * 1024)
        .unwrap();
    let one = torrentphile::sha1::Sha1::from(vec![0u8; 1024])
        .digest()
        .bytes();
    let pieces: Vec<u8> = (0..PIECES).flat_map(|_| one).collect();
    let info = Value::Dict(vec![
        (b"length".as_slice(), Value::Int((PIECES * 1024) as i64)),
        (b"name".as_slice(), Value::Bytes(b"zeros.bin")),
        (b"piece length".as_slice(), Value::Int(1024)),
        (b"pieces".as_slice(), Value::Bytes(&pieces)),
    ]);
    let file = src.join("zeros.torrent");
    fs::write(
        &file,
        encode(&Value::Dict(vec![(b"info".as_slice(), info)])),
    )
    .unwrap();
    let t = Metainfo::parse(&fs::read(&file).unwrap()).unwrap();
    assert_eq!(t.piece_count(), 131_072);
    let seed = peer(&tracker, &temp_dir("tg-many-seed"));
    let (_, meta) = seed.share_torrent(&file).unwrap();
    assert_eq!(meta.pieces(), 131_072);
    let mut c = Client::connect(seed.addr());
    let bits = c.ask(&format!("HAVE {}", meta.name));
    assert_eq!(bits.len(), "BITFIELD ".len() + 131_072);
    let dl = temp_dir("tg-many-dl");
    let report = peer(&tracker, &dl).download_torrent(&t).unwrap();
    assert_eq!(
        report.from.values().map(|(n, _)| *n as u64).sum::<u64>(),
        PIECES
    );
    assert_eq!(
        fs::metadata(dl.join("zeros.bin")).unwrap().len(),
        PIECES * 1024
    );
    assert_eq!(sha1_file(&dl.join("zeros.bin")), sha1_file(&data));
}
