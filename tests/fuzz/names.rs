//! Byte ranges and piece indices past the end of a file, and names that try to leave a peer's
//! folder (`..`, absolute paths, symlinks, FIFOs, hidden state). Asserts the exact bytes for
//! ranges inside the file, `ERR range` outside it, `ERR bad-name`/`ERR not-found` for names,
//! and that nothing outside the folder is ever served or written.

use std::fs;
use std::process::Command;

use torrentphile::peer::download::DownloadError;
use torrentphile::protocol::Request;

use super::common::*;
use super::{A_BIN, A_SIZE, Fuzz, a_bin_bytes, live_peer, live_peer_dir, patient};

#[test]
fn ranges_and_pieces_past_the_end_get_err_range() {
    let mut f = Fuzz::new("ranges_and_pieces_past_the_end_get_err_range");
    let (_tracker, _dir, peer) = live_peer("fuzz-range");
    let data = a_bin_bytes();
    let mut c = Client::connect(peer.addr());
    let fixed: &[(&str, &str)] = &[
        ("GET a.bin 0 5001", "ERR range "),
        ("GET a.bin 5000 1", "ERR range "),
        ("GET a.bin 5001 0", "ERR range "),
        ("GET a.bin 18446744073709551615 1", "ERR range "),
        ("GET a.bin 1 18446744073709551615", "ERR range "),
        (
            "GET a.bin 18446744073709551615 18446744073709551615",
            "ERR range ",
        ),
        ("GET a.bin 4999 18446744073709551615", "ERR range "),
        ("GET a.bin 18446744073709551616 0", "ERR bad-request "),
        ("GET a.bin -1 1", "ERR bad-request "),
        ("GET a.bin 5000 0", "DATA 0"),
        ("GET a.bin 4999 1", "DATA 1"),
        ("PIECE a.bin 5", "ERR range "),
        ("PIECE a.bin 4294967295", "ERR range "),
        ("PIECE a.bin 4294967296", "ERR bad-request "),
        ("PIECE empty.txt 0", "ERR range "),
        ("GET empty.txt 0 1", "ERR range "),
        ("GET empty.txt 1 0", "ERR range "),
        ("GET empty.txt 0 0", "DATA 0"),
        ("GET empty.txt", "DATA 0"),
        ("HAVE empty.txt", "BITFIELD"),
    ];
    for (line, expect) in fixed {
        let reply = c.ask(line);
        assert!(reply.starts_with(expect), "{line} -> {reply}");
        if let Some(len) = reply.strip_prefix("DATA ") {
            c.bytes(len.parse().unwrap());
        }
    }
    assert_eq!(c.ask("GET a.bin 4999 1"), "DATA 1");
    assert_eq!(c.bytes(1), &data[4999..]);
    // Random ranges around the edges: exactly the bytes asked for, or ERR range.
    let size = A_SIZE as u64;
    let edges = [
        0,
        1,
        size - 1,
        size,
        size + 1,
        u64::MAX,
        u64::MAX - 1,
        1 << 63,
    ];
    for _ in 0..2000 {
        let mut n = || match f.below(3) {
            0 => edges[f.below(edges.len())],
            1 => f.rng.next_u64() % (size + 2),
            _ => f.rng.next_u64() >> f.below(64),
        };
        let (off, len) = (n(), n());
        let req = Request::Get {
            name: A_BIN.into(),
            range: Some((off, len)),
        };
        let reply = c.ask(&req.to_string());
        match off.checked_add(len) {
            Some(end) if end <= size => {
                assert_eq!(reply, format!("DATA {len}"), "seed {}: {req}", f.seed);
                let got = c.bytes(len as usize);
                assert!(
                    got == data[off as usize..end as usize],
                    "seed {}: {req}",
                    f.seed
                );
            }
            _ => assert!(
                reply.starts_with("ERR range "),
                "seed {}: {req} -> {reply}",
                f.seed
            ),
        }
        let index = match f.below(3) {
            0 => f.below(7) as u32,
            1 => u32::MAX - f.below(2) as u32,
            _ => f.rng.next_u64() as u32,
        };
        let reply = c.ask(&format!("PIECE {A_BIN} {index}"));
        if index < 5 {
            let off = index as usize * 1024;
            let end = (off + 1024).min(A_SIZE);
            assert_eq!(reply, format!("DATA {}", end - off), "seed {}", f.seed);
            assert!(c.bytes(end - off) == data[off..end]);
        } else {
            assert!(reply.starts_with("ERR range "), "PIECE {index} -> {reply}");
        }
    }
    assert_eq!(c.ask("PING"), "PONG");
}

#[test]
fn names_that_leave_the_folder_are_never_served() {
    let tracker = tracker();
    let outside = temp_dir("fuzz-outside");
    fs::write(
        outside.join("secret.txt"),
        b"the secret outside the folder\n",
    )
    .unwrap();
    let dir = live_peer_dir("fuzz-names");
    let secret = outside.join("secret.txt");
    std::os::unix::fs::symlink(&secret, dir.join("link.txt")).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("linkdir")).unwrap();
    std::os::unix::fs::symlink(outside.join("missing"), dir.join("dangling.txt")).unwrap();
    fs::create_dir(dir.join("sub")).unwrap();
    fs::write(dir.join("sub").join("inner.txt"), b"inner").unwrap();
    fs::write(dir.join(".hidden"), b"hidden").unwrap();
    // A FIFO would hang a peer that opened it to hash it.
    let fifo = Command::new("mkfifo").arg(dir.join("fifo")).status();
    let peer = peer_with(&tracker, &dir, patient);
    let mut c = Client::connect(peer.addr());
    for name in [
        "link.txt",
        "dangling.txt",
        "linkdir",
        "sub",
        "fifo",
        "secret.txt",
    ] {
        for verb in ["HAVE", "GET", "HASHES"] {
            let reply = c.ask(&format!("{verb} {name}"));
            assert!(
                reply.starts_with("ERR not-found "),
                "{verb} {name} -> {reply}"
            );
        }
        let reply = c.ask(&format!("PIECE {name} 0"));
        assert!(
            reply.starts_with("ERR not-found "),
            "PIECE {name} -> {reply}"
        );
        assert!(
            who_has(&tracker, name).is_empty(),
            "the tracker lists {name}"
        );
    }
    let secret_text = secret.to_str().unwrap();
    for name in [
        "linkdir/secret.txt",
        "sub/inner.txt",
        "../fuzz-outside/secret.txt",
        "..",
        ".",
        ".hidden",
        ".torrentphile",
        ".torrentphile/a.bin.meta",
        secret_text,
        "/etc/passwd",
        "..\\secret.txt",
        "a.bin/../a.bin",
    ] {
        for verb in ["HAVE", "GET", "HASHES", "WHOHAS"] {
            let reply = c.ask(&format!("{verb} {name}"));
            assert!(reply.starts_with("ERR "), "{verb} {name} -> {reply}");
            assert!(
                reply.starts_with("ERR bad-name ") || verb == "WHOHAS",
                "{verb} {name} -> {reply}"
            );
        }
        let reply = Client::connect(tracker.addr()).ask(&format!("WHOHAS {name}"));
        assert!(
            reply.starts_with("ERR bad-name "),
            "WHOHAS {name} -> {reply}"
        );
    }
    assert_eq!(c.ask("PING"), "PONG");
    // A downloader asking for the link's name finds nobody.
    let dl = temp_dir("fuzz-names-dl");
    let downloader = peer_with(&tracker, &dl, patient);
    assert!(matches!(
        downloader.download("link.txt"),
        Err(DownloadError::NotFound(_))
    ));
    assert!(files_in(&dl).is_empty());
    if fifo.is_ok_and(|s| s.success()) {
        eprintln!("checked a FIFO in the folder too");
    }
}

/// A downloader whose folder already has a symlink under the name it downloads never writes
/// through the link: a link to a missing file is replaced by the real file, a link to an
/// existing file makes the download refuse, and the file outside is untouched either way.
#[test]
fn a_download_never_writes_through_a_symlink_in_its_folder() {
    let tracker = tracker();
    let seed_dir = live_peer_dir("fuzz-dl-link-seed");
    let _seed = peer_with(&tracker, &seed_dir, patient);
    let outside = temp_dir("fuzz-dl-link-outside");
    fs::write(outside.join("existing"), b"keep me").unwrap();

    let dl = temp_dir("fuzz-dl-link");
    std::os::unix::fs::symlink(outside.join("planted"), dl.join(A_BIN)).unwrap();
    let downloader = peer_with(&tracker, &dl, patient);
    downloader.download(A_BIN).unwrap();
    assert!(fs::symlink_metadata(dl.join(A_BIN)).unwrap().is_file());
    assert_eq!(fs::read(dl.join(A_BIN)).unwrap(), a_bin_bytes());
    assert!(
        !outside.join("planted").exists(),
        "written through the link"
    );
    drop(downloader);

    let dl = temp_dir("fuzz-dl-link2");
    std::os::unix::fs::symlink(outside.join("existing"), dl.join(A_BIN)).unwrap();
    let downloader = peer_with(&tracker, &dl, patient);
    let err = downloader.download(A_BIN).unwrap_err();
    assert!(err.to_string().contains("exists"), "{err}");
    assert_eq!(fs::read(outside.join("existing")).unwrap(), b"keep me");
}

/// A shared file replaced, after it was hashed, by a symlink to a file outside the folder with
/// the same size and modification time: the server must not follow the link.
#[test]
fn a_shared_file_swapped_for_a_symlink_is_not_served() {
    let tracker = tracker();
    let outside = temp_dir("fuzz-swap-outside");
    let dir = live_peer_dir("fuzz-swap");
    let peer = peer_with(&tracker, &dir, patient);
    let mut c = Client::connect(peer.addr());
    assert_eq!(c.ask("GET a.bin 0 5"), "DATA 5");
    c.bytes(5);
    // Same size, same mtime, other bytes, outside the folder.
    let shared = dir.join(A_BIN);
    let mtime = fs::metadata(&shared).unwrap().modified().unwrap();
    let secret = outside.join("secret.bin");
    fs::write(&secret, vec![b'S'; A_SIZE]).unwrap();
    fs::File::options()
        .write(true)
        .open(&secret)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    fs::remove_file(&shared).unwrap();
    std::os::unix::fs::symlink(&secret, &shared).unwrap();
    let reply = c.ask("GET a.bin 0 5");
    if let Some(len) = reply.strip_prefix("DATA ") {
        let got = c.bytes(len.parse().unwrap());
        panic!(
            "the peer followed the symlink and served {:?} from outside its folder",
            String::from_utf8_lossy(&got)
        );
    }
    assert!(reply.starts_with("ERR "), "{reply}");
}
