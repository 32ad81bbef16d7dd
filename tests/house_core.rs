//! The user traps of issue 8 that live in the peer's core: a different file already under the
//! name, files that appear or change while a peer runs, two downloads of one name into one
//! folder, a file that appears under the name mid-download, and a piped `get` that must keep
//! saying something while it waits.

mod common;

use std::fs;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, SystemTime};

use common::*;
use torrentphile::peer::download::{DownloadError, ProgressStyle};
use torrentphile::protocol::Request;

fn sha1_hex(bytes: &[u8]) -> String {
    torrentphile::sha1::Sha1::from(bytes).digest().to_string()
}

#[test]
fn a_different_file_under_the_name_is_refused_and_left_untouched() {
    let tracker = tracker();
    let (seed, dl) = (temp_dir("trap2-seed"), temp_dir("trap2-dl"));
    let shared = b"test1.txt as the seed shares it\n"; // 32 bytes
    let local = b"my own notes, not the same\n"; // 27 bytes
    fs::write(seed.join("test1.txt"), shared).unwrap();
    fs::write(dl.join("test1.txt"), local).unwrap();
    let _seed = peer(&tracker, &seed);
    let downloader = peer(&tracker, &dl);
    let err = downloader.download("test1.txt").unwrap_err();
    let expected = format!(
        "{} is not the shared test1.txt (local: 27 bytes sha1 {}, tracker: 32 bytes sha1 {}); move or rename it and run get again",
        dl.join("test1.txt").display(),
        sha1_hex(local),
        sha1_hex(shared)
    );
    assert_eq!(err, DownloadError::Failed(expected));
    assert_eq!(fs::read(dl.join("test1.txt")).unwrap(), local);
    assert!(!downloader.store().part_path("test1.txt").exists());

    // The same through the CLI: exit 1, one line.
    let out = Command::new(env!("CARGO_BIN_EXE_torrentphile"))
        .args(["get", "test1.txt", "--tracker", &tracker.addr().to_string()])
        .arg("--dir")
        .arg(&dl)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("is not the shared test1.txt (local: 27 bytes"),
        "{stderr}"
    );
    assert_eq!(fs::read(dl.join("test1.txt")).unwrap(), local);
}

#[test]
fn the_same_file_under_the_name_is_reported_as_already_here() {
    let tracker = tracker();
    let (seed, dl) = (temp_dir("here-seed"), temp_dir("here-dl"));
    let data = b"the same bytes on both sides\n";
    fs::write(seed.join("same.txt"), data).unwrap();
    fs::write(dl.join("same.txt"), data).unwrap();
    let _seed = peer(&tracker, &seed);
    // Another piece size than the seed's: the same bytes still count as the same file.
    let downloader = peer_with(&tracker, &dl, |c| c.piece_size = Some(1024));
    let report = downloader.download("same.txt").unwrap();
    assert!(report.already_here);
    assert!(report.from.is_empty());
    let text = report.to_string();
    assert!(text.contains("was already here, verified"), "{text}");
    assert!(!text.contains("resumed"), "{text}");
    assert_eq!(fs::read(dl.join("same.txt")).unwrap(), data);
}

#[test]
fn a_name_the_tracker_does_not_know_but_we_hold_is_said_so() {
    let tracker = tracker();
    let dir = temp_dir("unknown-held");
    fs::write(dir.join("mine.txt"), b"only here\n").unwrap();
    let p = peer_with(&tracker, &dir, |c| c.rescan_every = None);
    p.ask_tracker(Request::Remove {
        name: "mine.txt".into(),
    })
    .unwrap();
    let err = p.download("mine.txt").unwrap_err();
    let DownloadError::NotFound(msg) = err else {
        panic!("{err:?}")
    };
    assert!(msg.starts_with("the tracker knows no mine.txt ("), "{msg}");
    assert!(msg.contains("mine.txt is here (10 bytes, sha1 "), "{msg}");
}

#[test]
fn a_file_copied_into_a_running_peer_is_announced_and_an_edit_is_announced_again() {
    let tracker = tracker();
    let dir = temp_dir("rescan-new");
    let p = peer_with(&tracker, &dir, |c| {
        c.rescan_every = Some(Duration::from_millis(100))
    });
    let me = p.addr().to_string();
    fs::write(dir.join("late.txt"), b"copied in after the start\n").unwrap();
    eventually("WHOHAS lists the new file", Duration::from_secs(10), || {
        who_has(&tracker, "late.txt") == [me.clone()]
    });
    // Edit in place: new content, same name; this peer is its only holder.
    let edited = b"copied in after the start, then edited\n";
    fs::write(dir.join("late.txt"), edited).unwrap();
    let want = format!("sha1 {}", sha1_hex(edited));
    eventually(
        "INFO shows the edited content",
        Duration::from_secs(10),
        || {
            Client::connect(tracker.addr())
                .ask("INFO late.txt")
                .contains(&format!(" {} ", edited.len()))
                && p.store()
                    .get("late.txt")
                    .is_some_and(|e| format!("sha1 {}", e.meta.sha1) == want)
        },
    );
    assert_eq!(who_has(&tracker, "late.txt"), [me]);
    // A part file and the state folder are never picked up.
    fs::write(p.store().part_path("other.bin"), b"half a download").unwrap();
    fs::write(dir.join(".hidden"), b"x").unwrap();
    thread::sleep(Duration::from_millis(400)); // four passes: nothing may be announced
    assert!(who_has(&tracker, "other.bin").is_empty());
    assert!(who_has(&tracker, ".hidden").is_empty());
}

#[test]
fn an_edit_that_conflicts_with_other_holders_is_said_once_and_not_retried() {
    let tracker = tracker();
    let (a, b) = (temp_dir("conflict-a"), temp_dir("conflict-b"));
    fs::write(a.join("notes.txt"), b"version one\n").unwrap();
    fs::write(b.join("notes.txt"), b"version one\n").unwrap();
    let pa = peer_with(&tracker, &a, |c| {
        c.rescan_every = Some(Duration::from_millis(100))
    });
    let _pb = peer(&tracker, &b);
    eventually("both hold notes.txt", Duration::from_secs(10), || {
        who_has(&tracker, "notes.txt").len() == 2
    });
    let f = fs::File::options()
        .write(true)
        .truncate(true)
        .open(a.join("notes.txt"))
        .unwrap();
    std::io::Write::write_all(&mut &f, b"version two, edited here\n").unwrap();
    f.set_modified(SystemTime::now() + Duration::from_secs(5))
        .unwrap();
    drop(f);
    let said = |events: Vec<String>| {
        events
            .iter()
            .filter(|l| {
                l.contains("notes.txt is not shared: the tracker already knows other content under the name notes.txt")
                    && l.ends_with("rename the file to share it")
            })
            .count()
    };
    eventually("the conflict is said", Duration::from_secs(10), || {
        said(pa.events()) == 1
    });
    assert_eq!(who_has(&tracker, "notes.txt"), [_pb.addr().to_string()]);
    thread::sleep(Duration::from_millis(500)); // five more passes
    assert_eq!(said(pa.events()), 1, "{:?}", pa.events());
}

#[test]
fn a_second_download_of_one_name_into_one_folder_fails_at_once_and_the_first_finishes() {
    let tracker = tracker();
    let (src, dl) = (temp_dir("lock-src"), temp_dir("lock-dl"));
    // 8 pieces, 400 ms each: the first download runs for seconds while the others try.
    let sha = random_file(&src.join("f.bin"), 512 << 10, 11);
    let _slow = FakePeer::start(
        &tracker,
        &src.join("f.bin"),
        "f.bin",
        64 * 1024,
        Behaviour::Slow(Duration::from_millis(400)),
    );
    let downloader = Arc::new(peer(&tracker, &dl));
    let d2 = downloader.clone();
    let first = thread::spawn(move || d2.download("f.bin"));
    eventually(
        "the first download is fetching",
        Duration::from_secs(10),
        || downloader.store().part_path("f.bin").exists(),
    );
    // Another thread of the same peer.
    let err = downloader.download("f.bin").unwrap_err();
    let busy = format!(
        "another download of f.bin into {} is running; let it finish, then run get again",
        dl.display()
    );
    assert_eq!(err, DownloadError::Failed(busy.clone()));
    // Another process.
    let out = Command::new(env!("CARGO_BIN_EXE_torrentphile"))
        .args(["get", "f.bin", "--tracker", &tracker.addr().to_string()])
        .arg("--dir")
        .arg(&dl)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&busy), "{stderr}");
    first.join().unwrap().unwrap();
    assert_eq!(sha1_file(&dl.join("f.bin")), sha);
    assert!(!downloader.store().part_path("f.bin").exists());
    // Now the name is free again, and the file is already here.
    assert!(downloader.download("f.bin").unwrap().already_here);
}

#[test]
fn a_file_that_appears_under_the_name_mid_download_is_never_overwritten() {
    let tracker = tracker();
    let (src, dl) = (temp_dir("appear-src"), temp_dir("appear-dl"));
    // 8 pieces, 300 ms each: the file appears long before the download ends.
    let sha = random_file(&src.join("f.bin"), 512 << 10, 12);
    let _slow = FakePeer::start(
        &tracker,
        &src.join("f.bin"),
        "f.bin",
        64 * 1024,
        Behaviour::Slow(Duration::from_millis(300)),
    );
    let downloader = Arc::new(peer(&tracker, &dl));
    let d2 = downloader.clone();
    let run = thread::spawn(move || d2.download("f.bin"));
    eventually("the download is fetching", Duration::from_secs(10), || {
        downloader.store().part_path("f.bin").exists()
    });
    fs::write(dl.join("f.bin"), b"written by someone else meanwhile").unwrap();
    let err = run.join().unwrap().unwrap_err();
    let part = downloader.store().part_path("f.bin");
    let expected = format!(
        "{} appeared while downloading; the verified download is kept in {}; move {} away and run get again",
        dl.join("f.bin").display(),
        part.display(),
        dl.join("f.bin").display()
    );
    assert_eq!(err, DownloadError::Failed(expected));
    assert_eq!(
        fs::read(dl.join("f.bin")).unwrap(),
        b"written by someone else meanwhile"
    );
    assert_eq!(sha1_file(&part), sha);
}

#[test]
fn a_stalled_download_in_lines_mode_keeps_saying_it_is_waiting() {
    let tracker = tracker();
    let (src, dl) = (temp_dir("stall-src"), temp_dir("stall-dl"));
    random_file(&src.join("f.bin"), 256 << 10, 13);
    let _stuck = FakePeer::start(
        &tracker,
        &src.join("f.bin"),
        "f.bin",
        64 * 1024,
        Behaviour::StallAfter(0),
    );
    let downloader = peer_with(&tracker, &dl, |c| {
        c.download.progress = ProgressStyle::Lines;
        c.download.report_every = Duration::from_millis(200);
        c.download.timeouts = torrentphile::conn::Timeouts::uniform(Duration::from_secs(1));
    });
    let err = downloader.download("f.bin").unwrap_err();
    assert!(matches!(err, DownloadError::Failed(_)), "{err:?}");
    let waiting: Vec<String> = downloader
        .events()
        .into_iter()
        .filter(|l| l.starts_with("f.bin: still waiting: 0 of 4 pieces, "))
        .collect();
    assert!(waiting.len() >= 2, "{:?}", downloader.events());
    assert!(
        waiting
            .iter()
            .all(|l| l.contains(" holder,") || l.contains(" holders,")),
        "{waiting:?}"
    );
    assert!(
        waiting
            .iter()
            .any(|l| l.contains(", 1 holder, nothing received for ")),
        "{waiting:?}"
    );
}
