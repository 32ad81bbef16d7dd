//! Tests of the accounts rules: one per rule of issue 9, each checking the refusal code and
//! that a refused record changes nothing.

use super::*;
use crate::sha1::Sha1;

pub(super) fn creds(n: u8) -> Credentials {
    Credentials {
        salt: vec![n; 16],
        iterations: 4096,
        stored_key: [n.wrapping_add(1); 20],
        server_key: [n.wrapping_add(2); 20],
    }
}

pub(super) fn meta(name: &str, content: &str) -> Meta {
    Meta {
        name: name.into(),
        size: content.len() as u64,
        piece_size: 1 << 18,
        sha1: Sha1::from(content).digest(),
        root: Sha1::from(format!("root of {content}")).digest(),
    }
}

pub(super) fn user(u: &str) -> Record {
    Record::CreateUser {
        user: u.into(),
        credentials: creds(u.len() as u8),
    }
}
pub(super) fn create(g: &str, admin: &str) -> Record {
    Record::CreateGroup {
        group: g.into(),
        admin: admin.into(),
    }
}
pub(super) fn join(g: &str, u: &str) -> Record {
    Record::RequestJoin {
        group: g.into(),
        user: u.into(),
    }
}
pub(super) fn accept(g: &str, admin: &str, u: &str) -> Record {
    Record::Accept {
        group: g.into(),
        admin: admin.into(),
        user: u.into(),
    }
}
pub(super) fn leave(g: &str, u: &str) -> Record {
    Record::Leave {
        group: g.into(),
        user: u.into(),
    }
}
pub(super) fn add(g: &str, u: &str, name: &str, content: &str) -> Record {
    Record::AddFile {
        group: g.into(),
        user: u.into(),
        meta: meta(name, content),
    }
}
pub(super) fn remove(g: &str, u: &str, name: &str) -> Record {
    Record::RemoveFile {
        group: g.into(),
        user: u.into(),
        name: name.into(),
    }
}

/// alice, bob, carol; group g1 (admin alice) with bob as member; carol is outside.
fn story() -> Accounts {
    let mut a = Accounts::new();
    for r in [
        user("alice"),
        user("bob"),
        user("carol"),
        create("g1", "alice"),
        join("g1", "bob"),
        accept("g1", "alice", "bob"),
    ] {
        a.apply(&r).expect("the story is valid");
    }
    a
}

/// Apply a record that must be refused with `code`, and check that nothing changed.
fn refused(a: &mut Accounts, r: &Record, code: &str) {
    let before = a.clone();
    let err = a.apply(r).expect_err("must be refused");
    assert_eq!(err.code(), code, "{r}: {err}");
    assert_eq!(*a, before, "a refused record changed the state: {r}");
}

pub(super) fn invariants(a: &Accounts) {
    for (name, g) in a.groups() {
        assert!(g.members.contains(&g.admin), "{name}: admin is a member");
        assert!(
            g.members.is_disjoint(&g.requests),
            "{name}: member and requester"
        );
        for u in g.members.iter().chain(&g.requests) {
            assert!(a.credentials(u).is_some(), "{name}: {u} is a user");
        }
        for (file, f) in &g.files {
            assert_eq!(*file, f.meta.name);
            assert!(
                g.members.contains(&f.owner),
                "{name}: owner of {file} is a member"
            );
        }
    }
}

#[test]
fn users_are_unique_and_well_named() {
    let mut a = story();
    refused(&mut a, &user("alice"), "exists");
    for bad in [
        "",
        "has space",
        "a/b",
        "a\\b",
        ".hidden",
        "é",
        &"x".repeat(MAX_ID + 1),
    ] {
        refused(&mut a, &user(bad), "bad-name");
    }
    let mut weak = creds(1);
    weak.salt = vec![1; 4];
    let r = Record::CreateUser {
        user: "dave".into(),
        credentials: weak,
    };
    refused(&mut a, &r, "bad-credentials");
    a.apply(&user("o=dd,name")).expect("SCRAM escapes , and =");
}

#[test]
fn the_creator_is_the_admin() {
    let mut a = story();
    let g = a.group("g1").expect("exists");
    assert_eq!(g.admin, "alice");
    assert!(g.members.contains("alice"));
    refused(&mut a, &create("g1", "bob"), "exists");
    refused(&mut a, &create("g2", "nobody"), "no-user");
    refused(&mut a, &create("bad/name", "bob"), "bad-name");
    a.apply(&create("g2", "bob")).expect("valid");
    let names: Vec<&str> = a.groups().map(|(n, _)| n).collect();
    assert_eq!(names, ["g1", "g2"]);
}

#[test]
fn joining_files_a_request_and_asking_twice_is_not_an_error() {
    let mut a = story();
    assert_eq!(a.check(&join("g1", "carol")), Ok(Effect::Change));
    a.apply(&join("g1", "carol")).expect("valid");
    assert!(a.group("g1").expect("g1").requests.contains("carol"));
    assert!(!a.is_member("g1", "carol"));
    let before = a.clone();
    assert_eq!(
        a.check(&join("g1", "carol")),
        Ok(Effect::Unchanged(Already::Requested))
    );
    a.apply(&join("g1", "carol")).expect("asking twice is fine");
    assert_eq!(a, before);
    refused(&mut a, &join("nope", "carol"), "no-group");
    refused(&mut a, &join("g1", "nobody"), "no-user");
}

#[test]
fn a_member_who_asks_to_join_is_told_so() {
    let a = story();
    for u in ["alice", "bob"] {
        let effect = a.check(&join("g1", u));
        assert_eq!(effect, Ok(Effect::Unchanged(Already::Member)), "{u}");
    }
    assert_eq!(
        Already::Member.to_string(),
        "you are already a member of this group"
    );
}

#[test]
fn only_the_admin_lists_and_accepts_requests() {
    let mut a = story();
    a.apply(&join("g1", "carol")).expect("valid");
    assert_eq!(a.list_requests("g1", "alice"), Ok(vec!["carol"]));
    for u in ["bob", "carol"] {
        let err = a.list_requests("g1", u).expect_err("not the admin");
        assert_eq!(err.code(), "not-admin");
        assert!(err.to_string().contains("(alice)"), "{err}");
        refused(&mut a, &accept("g1", u, "carol"), "not-admin");
    }
    a.apply(&accept("g1", "alice", "carol")).expect("valid");
    assert!(a.is_member("g1", "carol"));
    assert_eq!(a.list_requests("g1", "alice"), Ok(vec![]));
}

#[test]
fn accept_needs_a_pending_request() {
    let mut a = story();
    refused(&mut a, &accept("g1", "alice", "carol"), "no-request");
    // bob is a member already: there is no request to accept.
    refused(&mut a, &accept("g1", "alice", "bob"), "no-request");
    refused(&mut a, &accept("g9", "alice", "carol"), "no-group");
}

#[test]
fn a_member_may_leave_and_a_requester_may_withdraw() {
    let mut a = story();
    a.apply(&leave("g1", "bob")).expect("a member leaves");
    assert!(!a.is_member("g1", "bob"));
    a.apply(&join("g1", "carol")).expect("valid");
    a.apply(&leave("g1", "carol")).expect("withdraw");
    assert!(a.group("g1").expect("g1").requests.is_empty());
    refused(&mut a, &leave("g1", "carol"), "not-member");
    refused(&mut a, &accept("g1", "alice", "carol"), "no-request");
}

#[test]
fn the_admin_may_not_leave_while_others_remain() {
    let mut a = story();
    let err = a.check(&leave("g1", "alice")).expect_err("bob remains");
    assert_eq!(err.code(), "admin-stays");
    assert_eq!(
        err.to_string(),
        "the admin cannot leave group g1 while 1 other member(s) remain"
    );
    refused(&mut a, &leave("g1", "alice"), "admin-stays");
    a.apply(&leave("g1", "bob")).expect("valid");
    a.apply(&leave("g1", "alice"))
        .expect("the last member leaves");
    assert!(a.group("g1").is_none(), "an empty group is gone");
    a.apply(&create("g1", "carol"))
        .expect("the name is free again");
}

#[test]
fn list_upload_and_download_are_for_members_only() {
    let mut a = story();
    a.apply(&add("g1", "bob", "notes.txt", "hello"))
        .expect("a member uploads");
    assert_eq!(a.list_files("g1", "alice").expect("member").len(), 1);
    assert_eq!(
        a.file("g1", "alice", "notes.txt").expect("member").owner,
        "bob"
    );
    // carol, outside, and then carol with a pending request: still no access.
    for step in 0..2 {
        assert_eq!(
            a.list_files("g1", "carol").unwrap_err().code(),
            "not-member"
        );
        let err = a.file("g1", "carol", "notes.txt").unwrap_err();
        assert_eq!(err.code(), "not-member");
        assert!(err.to_string().contains("join_group g1"), "{err}");
        refused(&mut a, &add("g1", "carol", "x.txt", "x"), "not-member");
        if step == 0 {
            a.apply(&join("g1", "carol")).expect("valid");
        }
    }
    assert_eq!(
        a.file("g1", "bob", "other.txt").unwrap_err().code(),
        "not-found"
    );
    assert_eq!(a.list_files("g9", "bob").unwrap_err().code(), "no-group");
    refused(&mut a, &add("g1", "bob", ".hidden", "x"), "bad-name");
}

#[test]
fn a_groups_file_names_are_its_own() {
    let mut a = story();
    a.apply(&create("g2", "carol")).expect("valid");
    a.apply(&add("g1", "alice", "notes.txt", "g1 notes"))
        .expect("valid");
    a.apply(&add("g2", "carol", "notes.txt", "g2 notes"))
        .expect("same name, other group");
    let g1 = &a.file("g1", "bob", "notes.txt").expect("member").meta;
    let g2 = &a.file("g2", "carol", "notes.txt").expect("member").meta;
    assert!(!g1.same_content(g2));
    // Within one group, one name is one content.
    refused(&mut a, &add("g1", "bob", "notes.txt", "other"), "conflict");
    assert_eq!(
        a.check(&add("g1", "bob", "notes.txt", "g1 notes")),
        Ok(Effect::Unchanged(Already::SameFile))
    );
}

#[test]
fn stop_share_removes_one_file_in_one_group() {
    let mut a = story();
    a.apply(&create("g2", "alice")).expect("valid");
    for r in [
        add("g1", "bob", "notes.txt", "1"),
        add("g1", "bob", "other.txt", "2"),
        add("g2", "alice", "notes.txt", "3"),
    ] {
        a.apply(&r).expect("valid");
    }
    a.apply(&remove("g1", "bob", "notes.txt"))
        .expect("the uploader");
    assert_eq!(
        a.file("g1", "bob", "notes.txt").unwrap_err().code(),
        "not-found"
    );
    assert!(a.file("g1", "bob", "other.txt").is_ok());
    assert!(a.file("g2", "alice", "notes.txt").is_ok());
    refused(&mut a, &remove("g1", "bob", "notes.txt"), "not-found");
    // The admin may remove a member's file; another member may not.
    a.apply(&join("g1", "carol")).expect("valid");
    a.apply(&accept("g1", "alice", "carol")).expect("valid");
    refused(&mut a, &remove("g1", "carol", "other.txt"), "not-owner");
    a.apply(&remove("g1", "alice", "other.txt"))
        .expect("the admin");
    assert!(a.list_files("g1", "bob").expect("member").is_empty());
}

#[test]
fn a_leaving_members_files_pass_to_the_admin() {
    let mut a = story();
    a.apply(&add("g1", "bob", "notes.txt", "hello"))
        .expect("valid");
    a.apply(&leave("g1", "bob")).expect("valid");
    assert_eq!(
        a.file("g1", "alice", "notes.txt").expect("kept").owner,
        "alice"
    );
    invariants(&a);
}

#[test]
fn member_groups_and_credentials() {
    let mut a = story();
    a.apply(&create("g2", "bob")).expect("valid");
    assert_eq!(a.groups_of("bob"), ["g1", "g2"]);
    assert_eq!(a.groups_of("carol"), Vec::<&str>::new());
    assert_eq!(a.credentials("bob"), Some(&creds(3)));
    assert_eq!(a.credentials("nobody"), None);
}

#[test]
fn error_codes_are_stable_and_distinct() {
    let s = String::new;
    let all = [
        AuthError::BadName(s()),
        AuthError::BadCredentials(""),
        AuthError::Exists {
            what: "user",
            name: s(),
        },
        AuthError::NoUser(s()),
        AuthError::NoGroup(s()),
        AuthError::NotMember {
            group: s(),
            user: s(),
        },
        AuthError::NotAdmin {
            group: s(),
            admin: s(),
        },
        AuthError::NoRequest {
            group: s(),
            user: s(),
        },
        AuthError::AdminStays {
            group: s(),
            others: 1,
        },
        AuthError::NoFile {
            group: s(),
            name: s(),
        },
        AuthError::Conflict {
            group: s(),
            name: s(),
        },
        AuthError::NotOwner {
            group: s(),
            name: s(),
            owner: s(),
        },
        AuthError::BadRecord(s()),
    ];
    let codes: Vec<&str> = all.iter().map(AuthError::code).collect();
    assert_eq!(
        codes,
        [
            "bad-name",
            "bad-credentials",
            "exists",
            "no-user",
            "no-group",
            "not-member",
            "not-admin",
            "no-request",
            "admin-stays",
            "not-found",
            "conflict",
            "not-owner",
            "bad-record"
        ]
    );
}
