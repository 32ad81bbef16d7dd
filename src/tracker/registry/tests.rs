//! The registry's unit tests: the rules of `registry.rs` (the conflict rule, sessions,
//! quotas, the sorted index, `LIST`'s pages) checked on a `Registry` without any socket.
//!
//! Tests only: nothing here is compiled into the tracker, and nothing here may need a socket,
//! a clock or a sleep.

use super::*;

fn meta(name: &str, size: u64) -> Meta {
    let digest = crate::sha1::Sha1::from(size.to_string()).digest();
    Meta {
        name: name.into(),
        size,
        piece_size: 1024,
        sha1: digest,
        root: digest,
    }
}

fn holders(r: &Registry, name: &str) -> Vec<String> {
    r.who_has(name)
        .unwrap()
        .iter()
        .map(|h| h.to_string())
        .collect()
}

#[test]
fn only_the_tracker_machine_may_advertise_another_address() {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert!(advertised(ip("127.0.0.1"), ip("192.168.1.5")).is_ok());
    assert!(advertised(ip("192.168.1.5"), ip("192.168.1.5")).is_ok());
    assert!(advertised(ip("192.168.1.6"), ip("192.168.1.5")).is_err());
    assert!(advertised(ip("127.0.0.1"), ip("0.0.0.0")).is_err());
}

#[test]
fn upload_then_who_has_lists_the_holder() {
    let mut r = Registry::new();
    let a = r.register("127.0.0.1:10000").unwrap();
    r.upload("127.0.0.1:10000", a, &meta("test1.txt", 27))
        .unwrap();
    assert_eq!(holders(&r, "test1.txt"), ["127.0.0.1:10000"]);
    assert_eq!(r.info("test1.txt").unwrap(), meta("test1.txt", 27));
    assert_eq!(r.who_has("test2.txt").unwrap_err().code, ErrCode::NotFound);
}

#[test]
fn the_first_holder_fixes_the_content() {
    let mut r = Registry::new();
    let a = r.register("a:1").unwrap();
    let b = r.register("b:1").unwrap();
    r.upload("a:1", a, &meta("f", 10)).unwrap();
    let err = r.upload("b:1", b, &meta("f", 11)).unwrap_err();
    assert_eq!(err.code, ErrCode::Conflict);
    r.upload("b:1", b, &meta("f", 10)).unwrap();
    assert_eq!(holders(&r, "f"), ["a:1", "b:1"]);
}

#[test]
fn partial_holders_are_listed_after_full_ones_and_promoted_by_upload() {
    let mut r = Registry::new();
    let a = r.register("a:1").unwrap();
    let b = r.register("b:1").unwrap();
    let c = r.register("c:1").unwrap();
    assert_eq!(
        r.partial("b:1", b, "f").unwrap_err().code,
        ErrCode::NotFound
    );
    r.upload("c:1", c, &meta("f", 10)).unwrap();
    r.partial("a:1", a, "f").unwrap();
    r.partial("b:1", b, "f").unwrap();
    assert_eq!(holders(&r, "f"), ["c:1", "a:1-partial", "b:1-partial"]);
    r.upload("b:1", b, &meta("f", 10)).unwrap();
    r.partial("b:1", b, "f").unwrap();
    assert_eq!(holders(&r, "f"), ["b:1", "c:1", "a:1-partial"]);
}

#[test]
fn forgetting_a_peer_drops_its_files_and_frees_names() {
    let mut r = Registry::new();
    let a = r.register("a:1").unwrap();
    r.upload("a:1", a, &meta("f", 10)).unwrap();
    assert_eq!(r.forget("a:1", a), Some(1));
    assert_eq!(r.forget("a:1", a), None);
    assert_eq!(r.who_has("f").unwrap_err().code, ErrCode::NotFound);
    assert_eq!(r.peer_count(), 0);
    let b = r.register("b:1").unwrap();
    r.upload("b:1", b, &meta("f", 99)).unwrap();
}

#[test]
fn a_live_registration_cannot_be_taken_over_and_an_old_session_cannot_forget_a_new_one() {
    let mut r = Registry::new();
    let old = r.register("a:1").unwrap();
    r.upload("a:1", old, &meta("f", 10)).unwrap();
    assert_eq!(r.register("a:1").unwrap_err().code, ErrCode::Conflict);
    assert_eq!(holders(&r, "f"), ["a:1"]);
    r.forget("a:1", old);
    let new = r.register("a:1").unwrap();
    r.upload("a:1", new, &meta("g", 1)).unwrap();
    assert_eq!(r.forget("a:1", old), None);
    assert_eq!(holders(&r, "g"), ["a:1"]);
}

#[test]
fn remove_stops_sharing_and_list_counts_holders() {
    let mut r = Registry::new();
    let a = r.register("a:1").unwrap();
    let b = r.register("b:1").unwrap();
    r.upload("a:1", a, &meta("f", 10)).unwrap();
    r.upload("a:1", a, &meta("g", 5)).unwrap();
    r.partial("b:1", b, "f").unwrap();
    let list = r.list();
    assert_eq!(list.len(), 2);
    assert_eq!(
        (list[0].meta.name.as_str(), list[0].full, list[0].partial),
        ("f", 1, 1)
    );
    r.remove("a:1", a, "g").unwrap();
    assert_eq!(r.remove("a:1", a, "g").unwrap_err().code, ErrCode::NotFound);
    assert_eq!(r.file_count(), 1);
}

#[test]
fn quotas_count_announcements_and_give_them_back() {
    let mut r = Registry::with_limits(Limits {
        peers_per_addr: 2,
        files_per_peer: 3,
        files_per_addr: 4,
        files_total: 4,
    });
    let a = r.register("h:1").unwrap();
    let b = r.register("h:2").unwrap();
    assert_eq!(r.register("h:3").unwrap_err().code, ErrCode::Limit);
    for n in 0..3 {
        r.upload("h:1", a, &meta(&format!("f{n}"), 1)).unwrap();
    }
    // Announcing a held file again costs nothing.
    r.upload("h:1", a, &meta("f0", 1)).unwrap();
    r.partial("h:1", a, "f1").unwrap();
    assert_eq!(
        r.upload("h:1", a, &meta("x", 1)).unwrap_err().code,
        ErrCode::Limit
    );
    r.partial("h:2", b, "f0").unwrap();
    assert_eq!(r.partial("h:2", b, "f1").unwrap_err().code, ErrCode::Limit);
    r.remove("h:1", a, "f2").unwrap();
    r.partial("h:2", b, "f1").unwrap();
    let c = r.register("[::1]:1").unwrap();
    assert_eq!(
        r.upload("[::1]:1", c, &meta("y", 1)).unwrap_err().code,
        ErrCode::Limit
    );
    r.forget("h:2", b);
    r.upload("[::1]:1", c, &meta("y", 1)).unwrap();
    assert!(r.register("h:3").is_ok());
}

#[test]
fn the_sorted_names_follow_the_files_through_removal_and_forgetting() {
    let mut r = Registry::new();
    let a = r.register("a:1").unwrap();
    let b = r.register("b:1").unwrap();
    for n in ["f1", "f2", "f3"] {
        r.upload("a:1", a, &meta(n, 1)).unwrap();
    }
    r.upload("b:1", b, &meta("f2", 1)).unwrap();
    let names = |r: &Registry| {
        r.list_page(None, 9)
            .into_iter()
            .map(|l| l.meta.name)
            .collect::<Vec<_>>()
    };
    r.remove("a:1", a, "f1").unwrap();
    r.forget("a:1", a);
    // f2 is still held by b; f1 and f3 left with their last holder, from both indexes.
    assert_eq!(names(&r), ["f2"]);
    assert_eq!((r.file_count(), r.files.sorted.len()), (1, 1));
    // A name that came back is listed once, with its new content.
    r.upload("b:1", b, &meta("f1", 7)).unwrap();
    r.upload("b:1", b, &meta("f1", 7)).unwrap();
    assert_eq!(names(&r), ["f1", "f2"]);
    assert_eq!(r.files.sorted.len(), 2);
    assert_eq!(r.info("f1").unwrap().size, 7);
    assert_eq!(holders(&r, "f1"), ["b:1"]);
}

#[test]
fn list_pages_follow_the_names_in_order() {
    let mut r = Registry::new();
    let a = r.register("a:1").unwrap();
    for n in [5, 1, 3, 2, 4] {
        r.upload("a:1", a, &meta(&format!("f{n}"), 1)).unwrap();
    }
    let names = |l: Vec<Listing>| l.into_iter().map(|l| l.meta.name).collect::<Vec<_>>();
    assert_eq!(names(r.list_page(None, 2)), ["f1", "f2"]);
    assert_eq!(names(r.list_page(Some("f2"), 2)), ["f3", "f4"]);
    assert_eq!(names(r.list_page(Some("f35"), 9)), ["f4", "f5"]);
    assert!(r.list_page(Some("f5"), 9).is_empty());
}
