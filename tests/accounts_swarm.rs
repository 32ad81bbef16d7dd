//! A group file held by two members downloads from both at once, through the same downloader
//! as public files (a ticket presented on every holder connection), byte for byte; a
//! non-member still gets nothing, from the tracker or from a holder.

mod common;

use std::fs;
use std::time::Duration;

use common::{Client, peer_with, random_file, sha1_file, temp_dir, tracker_with};
use torrentphile::peer::Peer;
use torrentphile::protocol::AccountRequest as R;
use torrentphile::tracker::accounts::AccountsConfig;
use torrentphile::tracker::{Tracker, TrackerConfig};

const PIECE: u32 = 64 << 10;
const WAIT: Duration = Duration::from_secs(10);

fn peer(tracker: &Tracker, tag: &str) -> Peer {
    peer_with(tracker, &temp_dir(tag), |c| {
        c.rescan_every = None;
        c.piece_size = Some(PIECE);
        // A shallow pipeline, so one holder cannot take every piece before the other connects.
        c.download.window_bytes = 1 << 20;
    })
}

fn ok(result: Result<String, String>) -> String {
    result.unwrap_or_else(|e| panic!("refused: {e}"))
}

/// `user` signs up, logs in, asks to join `g1`, and `admin` accepts.
fn member(admin: &Peer, p: &Peer, user: &str) {
    ok(p.create_user(user, "pw"));
    ok(p.login(user, "pw"));
    ok(p.account(R::Join { group: "g1".into() }));
    ok(admin.account(R::Accept {
        group: "g1".into(),
        user: user.into(),
    }));
}

#[test]
fn a_group_file_held_by_two_members_comes_from_both_and_strangers_get_nothing() {
    let tracker = tracker_with(TrackerConfig {
        accounts: AccountsConfig {
            iterations: 64,
            ..AccountsConfig::default()
        },
        ..TrackerConfig::default()
    });
    let (alice, bob, dave, carol) = (
        peer(&tracker, "gs-alice"),
        peer(&tracker, "gs-bob"),
        peer(&tracker, "gs-dave"),
        peer(&tracker, "gs-carol"),
    );
    let src = temp_dir("gs-src").join("big.bin");
    let sha = random_file(&src, 16 << 20, 29);

    ok(alice.create_user("alice", "pw"));
    ok(alice.login("alice", "pw"));
    ok(alice.account(R::CreateGroup { group: "g1".into() }));
    alice.upload_group(&src, "g1").unwrap();

    // Bob fetches it from alice (the only holder), and then holds it too.
    member(&alice, &bob, "bob");
    let first = bob.get_group("g1", "big.bin").unwrap();
    let alice_id = alice.wait_registered(WAIT).unwrap();
    assert_eq!(first.from.keys().collect::<Vec<_>>(), [&alice_id]);
    let bob_copy = bob.groups().store("g1").unwrap().path("big.bin");
    assert_eq!(sha1_file(&bob_copy), sha);

    // Dave fetches from both: the report credits pieces to each, every piece once.
    member(&alice, &dave, "dave");
    let report = dave.get_group("g1", "big.bin").unwrap();
    let dave_copy = dave.groups().store("g1").unwrap().path("big.bin");
    assert_eq!(fs::read(&dave_copy).unwrap(), fs::read(&src).unwrap());
    for holder in [&alice, &bob] {
        let id = holder.wait_registered(WAIT).unwrap();
        let pieces = report.from.get(&id).map_or(0, |p| p.0);
        assert!(pieces > 0, "no piece from {id}: {:?}", report.from);
    }
    assert_eq!(report.from.len(), 2, "{:?}", report.from);
    let total: u32 = report.from.values().map(|p| p.0).sum();
    assert_eq!(total, 256, "every piece counted once: {:?}", report.from);
    // The shell's command finds it complete, fetches nothing and copies it out.
    let dest = temp_dir("gs-dave-dest");
    ok(dave.download_group("g1", "big.bin", &dest));
    assert_eq!(sha1_file(&dest.join("big.bin")), sha);
    let shown: Vec<String> = dave.groups().downloads().iter().map(|d| d.line()).collect();
    assert_eq!(shown, ["[C] [g1] big.bin"]);

    // Carol is no member: the tracker tells her nothing ...
    ok(carol.create_user("carol", "pw"));
    ok(carol.login("carol", "pw"));
    let err = carol.get_group("g1", "big.bin").unwrap_err();
    assert!(err.starts_with("not-member "), "{err}");
    assert!(!carol.groups().store("g1").unwrap().path("big.bin").exists());
    // ... and neither does a holder she talks to directly, not even the file's size.
    let mut raw = Client::connect(bob.addr());
    for line in [
        "GET big.bin",
        "HAVE big.bin",
        "HASHES big.bin",
        "PIECE big.bin 0",
    ] {
        assert_eq!(
            raw.ask(line),
            "ERR not-found this peer does not hold big.bin",
            "{line}"
        );
    }
}
