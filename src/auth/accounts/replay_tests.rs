//! Tests of the record lines and of replay: round trips, strict parsing, and random histories
//! that must replay to the very same state.

use super::tests::{accept, add, create, invariants, join, leave, remove, user};
use super::*;
use crate::util::Rng;

// --- Record lines -----------------------------------------------------------------------------

fn every_kind_of_record() -> Vec<Record> {
    vec![
        user("alice"),
        create("g1", "alice"),
        join("g1", "bob"),
        accept("g1", "alice", "bob"),
        leave("g1", "bob"),
        add("g1", "alice", "notes.txt", "hello"),
        remove("g1", "alice", "notes.txt"),
    ]
}

#[test]
fn record_lines_round_trip() {
    for r in every_kind_of_record() {
        let line = r.to_string();
        assert!(
            line.bytes().all(|b| b == b' ' || b.is_ascii_graphic()),
            "{line}"
        );
        assert_eq!(line.parse::<Record>(), Ok(r), "{line}");
    }
}

#[test]
fn record_lines_exact_text() {
    assert_eq!(
        user("alice").to_string(),
        "CREATE-USER alice 4096 BQUFBQUFBQUFBQUFBQUFBQ== BgYGBgYGBgYGBgYGBgYGBgYGBgY= \
         BwcHBwcHBwcHBwcHBwcHBwcHBwc="
    );
    assert_eq!(accept("g", "a", "b").to_string(), "ACCEPT g a b");
    let line = add("g", "a", "n.txt", "hi").to_string();
    assert!(line.starts_with("ADD-FILE g a n.txt 2 262144 "), "{line}");
}

#[test]
fn bad_record_lines_are_refused() {
    let good = add("g", "a", "n.txt", "hi").to_string();
    let bad = [
        "".to_string(),
        "FROB g a".into(),
        "LEAVE g".into(),
        "LEAVE g a b".into(),
        "LEAVE  g a".into(),
        "LEAVE g a ".into(),
        " LEAVE g a".into(),
        "LEAVE g\ta".into(),
        "LEAVE g/x a".into(),
        "leave g a".into(),
        good.replace(" 2 ", " 02 "),
        good.replace(" 262144 ", " 1000 "),
        good.to_uppercase()
            .replace("ADD-FILE G A N.TXT", "ADD-FILE g a n.txt"),
        "REMOVE-FILE g a ..".into(),
        "CREATE-USER u 0 AAAAAAAAAAA= AAAAAAAAAAAAAAAAAAAAAAAAAAA= AAAAAAAAAAAAAAAAAAAAAAAAAAA="
            .into(),
        "CREATE-USER u 01 AAAAAAAAAAA= AAAAAAAAAAAAAAAAAAAAAAAAAAA= AAAAAAAAAAAAAAAAAAAAAAAAAAA="
            .into(),
        "CREATE-USER u 1 AAAAAAAAAAA AAAAAAAAAAAAAAAAAAAAAAAAAAA= AAAAAAAAAAAAAAAAAAAAAAAAAAA="
            .into(),
        "CREATE-USER u 1 AAAAAAAAAAA= AAAA AAAAAAAAAAAAAAAAAAAAAAAAAAA=".into(),
    ];
    for line in bad {
        let err = line.parse::<Record>().expect_err(&line);
        assert!(
            ["bad-record", "bad-name"].contains(&err.code()),
            "{line}: {err}"
        );
    }
    // The same line with one space too many at any place is refused.
    for (i, _) in good.match_indices(' ') {
        let doubled = format!("{}  {}", &good[..i], &good[i + 1..]);
        assert!(doubled.parse::<Record>().is_err(), "{doubled}");
    }
}

// --- Replay -----------------------------------------------------------------------------------

fn a_history() -> Vec<Record> {
    vec![
        user("alice"),
        user("bob"),
        user("carol"),
        create("g1", "alice"),
        create("g2", "bob"),
        join("g1", "bob"),
        join("g1", "carol"),
        join("g1", "carol"),
        accept("g1", "alice", "bob"),
        add("g1", "bob", "notes.txt", "one"),
        add("g2", "bob", "notes.txt", "two"),
        join("g2", "alice"),
        leave("g1", "bob"),
        add("g1", "alice", "more.txt", "three"),
        remove("g1", "alice", "more.txt"),
    ]
}

#[test]
fn replaying_the_same_records_gives_the_same_state() {
    let history = a_history();
    let once = Accounts::replay(&history).expect("valid history");
    let twice = Accounts::replay(&history).expect("valid history");
    assert_eq!(once, twice);
    // Through the text form, as a journal would.
    let lines: Vec<String> = history.iter().map(Record::to_string).collect();
    let parsed: Vec<Record> = lines.iter().map(|l| l.parse().expect("own line")).collect();
    assert_eq!(Accounts::replay(&parsed).expect("valid"), once);
    // And the snapshot records rebuild it too.
    assert_eq!(Accounts::replay(&once.to_records()).expect("valid"), once);
    invariants(&once);
    assert_eq!(
        once.file("g1", "alice", "notes.txt").expect("kept").owner,
        "alice"
    );
}

#[test]
fn replay_names_the_first_bad_record() {
    let mut history = a_history();
    history.insert(4, accept("g1", "bob", "carol"));
    let (at, err) = Accounts::replay(&history).expect_err("bob is no admin");
    assert_eq!(at, 4);
    assert_eq!(err.code(), "not-admin");
}

#[test]
fn random_histories_replay_exactly_and_keep_the_invariants() {
    let users = ["u0", "u1", "u2", "u3"];
    let groups = ["g0", "g1"];
    let files = ["a.txt", "b.txt"];
    let mut rng = Rng::new(9);
    for round in 0..40 {
        let mut live = Accounts::new();
        let mut journal: Vec<String> = Vec::new();
        let mut changes = 0;
        for _ in 0..150 {
            let u = users[rng.below(users.len())];
            let v = users[rng.below(users.len())];
            let g = groups[rng.below(groups.len())];
            let f = files[rng.below(files.len())];
            let content = ["x", "y"][rng.below(2)];
            let r = match rng.below(8) {
                0 => user(u),
                1 => create(g, u),
                2 => join(g, u),
                3 => accept(g, u, v),
                4 => leave(g, u),
                5 | 6 => add(g, u, f, content),
                _ => remove(g, u, f),
            };
            // The leader's way: check, make durable, apply.
            let before = live.clone();
            match live.check(&r) {
                Ok(effect) => {
                    journal.push(r.to_string());
                    live.apply(&r).expect("checked");
                    if effect == Effect::Change {
                        changes += 1;
                    } else {
                        assert_eq!(live, before, "{r} claimed no change");
                    }
                }
                Err(_) => {
                    assert!(live.apply(&r).is_err());
                    assert_eq!(live, before);
                }
            }
            invariants(&live);
        }
        assert!(
            changes > 10,
            "round {round}: the fuzz should change things ({changes})"
        );
        let records: Vec<Record> = journal
            .iter()
            .map(|l| l.parse().expect("own line"))
            .collect();
        assert_eq!(
            Accounts::replay(&records).expect("journal"),
            live,
            "round {round}"
        );
        assert_eq!(
            Accounts::replay(&live.to_records()).expect("snapshot"),
            live
        );
    }
}
