//! Issue 14, items 5, 6, 9 and 10: what a hostile LAN host can put in a peer's way besides
//! load. A FIFO in place of a shared file, a lying first holder, a squatter on a name, a
//! name of 255 bytes. Each bounded in time; each shows the honest user unharmed.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::thread;

use crate::common::*;
use torrentphile::protocol::Digest;

fn mkfifo(path: &Path) -> bool {
    Command::new("mkfifo")
        .arg(path)
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn a_fifo_in_place_of_a_shared_file_is_refused_and_hangs_no_thread() {
    let tracker = tracker();
    let dir = temp_dir("fifo-serve");
    random_file(&dir.join("f.bin"), 10_000, 7);
    let peer = peer(&tracker, &dir);
    eventually("f.bin listed", HANG, || {
        !who_has(&tracker, "f.bin").is_empty()
    });
    // Swapped in at once (rename), so the requests below meet the FIFO before the watcher
    // notices the change.
    let outside = temp_dir("fifo-outside");
    if !mkfifo(&outside.join("f.bin")) {
        eprintln!("skipped: mkfifo is not available");
        return;
    }
    fs::rename(outside.join("f.bin"), dir.join("f.bin")).unwrap();
    // Several requests at once: before, each hung its serving thread in `open` for good.
    let (tx, rx) = mpsc::channel();
    for _ in 0..4 {
        let (tx, addr) = (tx.clone(), peer.addr());
        thread::spawn(move || {
            let _ = tx.send(Client::connect(addr).ask("GET f.bin"));
        });
    }
    for _ in 0..4 {
        let reply = rx.recv_timeout(HANG).expect("a GET hung on the FIFO");
        // Unavailable (the open met the FIFO), or not-found if the watcher was quicker.
        assert!(
            reply.starts_with("ERR unavailable f.bin changed on disk")
                || reply == "ERR not-found this peer does not hold f.bin",
            "{reply}"
        );
    }
    assert_eq!(Client::connect(peer.addr()).ask("PING"), "PONG");
    drop(peer);
    let _ = [dir, outside].map(fs::remove_dir_all);
}

#[test]
fn a_default_get_says_what_it_verified_not_the_first_holders_sha1() {
    let tracker = tracker();
    let src = temp_dir("liar-src");
    let real = random_file(&src.join("lie.bin"), 3000, 9);
    let lie: Digest = "0123456789abcdef0123456789abcdef01234567".parse().unwrap();
    let _liar = FakePeer::start_announcing(
        &tracker,
        &src.join("lie.bin"),
        "lie.bin",
        1024,
        Behaviour::Good,
        |m| m.sha1 = lie,
    );
    let dir = temp_dir("liar-get");
    let me = peer(&tracker, &dir);
    let report = me
        .download("lie.bin")
        .expect("pieces match root, so it completes");
    let said = report.to_string();
    assert!(!said.contains(&lie.to_string()), "{said}");
    assert!(said.contains("every piece checked against root"), "{said}");
    assert!(said.contains("whole-file sha1 not computed"), "{said}");
    assert_eq!(sha1_file(&dir.join("lie.bin")), real);
    drop(me);

    let dir2 = temp_dir("liar-get-whole");
    let careful = peer_with(&tracker, &dir2, |c| c.download.whole_file_check = true);
    let err = careful.download("lie.bin").unwrap_err().to_string();
    assert!(
        err.contains(&format!("the whole file hashes to {real}")),
        "{err}"
    );
    let _ = [src, dir, dir2].map(fs::remove_dir_all);
}

#[test]
fn a_squatter_that_leaves_frees_the_name_and_the_refused_holder_announces_again() {
    let tracker = tracker();
    let bogus = temp_dir("squat-bogus");
    random_file(&bogus.join("f.bin"), 5000, 1);
    let squatter = FakePeer::start(
        &tracker,
        &bogus.join("f.bin"),
        "f.bin",
        1024,
        Behaviour::Good,
    );
    let dir = temp_dir("squat-honest");
    let real = random_file(&dir.join("f.bin"), 7000, 2);
    let honest = peer(&tracker, &dir);
    // At start the tracker says conflict: the name is the squatter's.
    assert_eq!(who_has(&tracker, "f.bin"), vec![squatter.addr.clone()]);
    drop(squatter);
    // Its registration ends with its connection; the honest peer's retry (1 s, then 2 s, ...)
    // finds the name free.
    let me = honest.addr().to_string();
    eventually("the honest holder listed again", HANG, || {
        who_has(&tracker, "f.bin") == vec![me.clone()]
    });
    let dir2 = temp_dir("squat-get");
    let getter = peer(&tracker, &dir2);
    getter.download("f.bin").expect("the honest file downloads");
    assert_eq!(sha1_file(&dir2.join("f.bin")), real);
    drop((honest, getter));
    let _ = [bogus, dir, dir2].map(fs::remove_dir_all);
}

#[test]
fn a_name_of_255_bytes_is_shared_and_downloaded() {
    let tracker = tracker();
    let name = format!("{}.bin", "n".repeat(251));
    assert_eq!(name.len(), 255);
    let dir = temp_dir("long-name-src");
    let real = random_file(&dir.join(&name), 5000, 3);
    let holder = peer(&tracker, &dir);
    assert_eq!(who_has(&tracker, &name), vec![holder.addr().to_string()]);
    let dir2 = temp_dir("long-name-get");
    let getter = peer(&tracker, &dir2);
    getter.download(&name).expect("a 255-byte name downloads");
    assert_eq!(sha1_file(&dir2.join(&name)), real);
    drop((holder, getter));
    let _ = [dir, dir2].map(fs::remove_dir_all);
}
