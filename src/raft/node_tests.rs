//! One node driven by hand: what each call puts in its `Ready`.

use super::{Entry, HardState, Message, Node, Persisted, ProposeError, Role};

fn entry(index: u64, term: u64, command: &str) -> Entry {
    Entry {
        index,
        term,
        command: command.to_string(),
    }
}

fn vote(term: u64, from: u64) -> Message {
    Message::Vote {
        term,
        from,
        last_index: 0,
        last_term: 0,
    }
}

#[test]
fn a_vote_is_persisted_with_its_reply_and_survives_a_restart() {
    let mut disk = Persisted {
        snapshot: None,
        hard: HardState {
            term: 1,
            voted_for: None,
        },
        log: vec![],
    };
    let mut node = Node::new(1, &[2, 3], disk.clone(), 7);
    node.step(vote(1, 2));
    let ready = node.ready();
    let granted = Message::Voted {
        term: 1,
        from: 1,
        granted: true,
    };
    assert_eq!(ready.send, vec![(2, granted)]);
    let voted = HardState {
        term: 1,
        voted_for: Some(2),
    };
    assert_eq!(ready.persist.hard_state, Some(voted));
    disk.apply(&ready.persist);
    // Restarted from its disk, it must not vote for someone else in the same term.
    let mut node = Node::new(1, &[2, 3], disk, 8);
    node.step(vote(1, 3));
    let refused = Message::Voted {
        term: 1,
        from: 1,
        granted: false,
    };
    assert_eq!(node.ready().send, vec![(3, refused)]);
}

#[test]
fn a_single_node_elects_itself_and_commits_alone() {
    let mut node = Node::new(1, &[], Persisted::default(), 1);
    for _ in 0..20 {
        node.tick();
    }
    assert_eq!(node.role(), Role::Leader);
    let p = node.propose("ADD alice".into()).expect("leader");
    assert_eq!((p.index, p.term), (2, 1));
    let ready = node.ready();
    assert_eq!(
        ready.persist.append,
        vec![entry(1, 1, ""), entry(2, 1, "ADD alice")]
    );
    assert_eq!(ready.committed, ready.persist.append);
    assert!(ready.send.is_empty());
    assert!(node.ready().is_empty());
}

#[test]
fn only_the_leader_takes_proposals() {
    let mut node = Node::new(2, &[1, 3], Persisted::default(), 1);
    assert_eq!(
        node.propose("x".into()),
        Err(ProposeError::NotLeader { leader_hint: None })
    );
    node.step(Message::Append {
        term: 1,
        from: 3,
        prev_index: 0,
        prev_term: 0,
        commit: 0,
        entries: vec![],
    });
    assert_eq!(
        node.propose("x".into()),
        Err(ProposeError::NotLeader {
            leader_hint: Some(3)
        })
    );
    let mut alone = Node::new(1, &[], Persisted::default(), 1);
    alone.campaign();
    let long = "\n".repeat(2000); // 8000 bytes once escaped
    assert_eq!(
        alone.propose(long),
        Err(ProposeError::TooLong { len: 8000 })
    );
}

#[test]
fn a_conflicting_suffix_is_truncated_and_the_ready_says_so() {
    let disk = Persisted {
        snapshot: None,
        hard: HardState {
            term: 2,
            voted_for: None,
        },
        log: vec![entry(1, 1, "a"), entry(2, 2, "old"), entry(3, 2, "older")],
    };
    let mut node = Node::new(1, &[2, 3], disk.clone(), 1);
    node.step(Message::Append {
        term: 3,
        from: 2,
        prev_index: 1,
        prev_term: 1,
        commit: 2,
        entries: vec![entry(2, 3, "new")],
    });
    let ready = node.ready();
    assert_eq!(ready.persist.truncate_from, Some(2));
    assert_eq!(ready.persist.append, vec![entry(2, 3, "new")]);
    assert_eq!(ready.committed, vec![entry(1, 1, "a"), entry(2, 3, "new")]);
    let ok = Message::Appended {
        term: 3,
        from: 1,
        success: true,
        match_index: 2,
    };
    assert_eq!(ready.send, vec![(2, ok)]);
    let mut after = disk;
    after.apply(&ready.persist);
    assert_eq!(after.log, vec![entry(1, 1, "a"), entry(2, 3, "new")]);
    // A gap is refused with a hint: the follower's log ends at 2.
    node.step(Message::Append {
        term: 3,
        from: 2,
        prev_index: 5,
        prev_term: 3,
        commit: 2,
        entries: vec![],
    });
    let hint = Message::Appended {
        term: 3,
        from: 1,
        success: false,
        match_index: 2,
    };
    assert_eq!(node.ready().send, vec![(2, hint)]);
}

#[test]
fn a_stale_sender_is_told_the_newer_term() {
    let hard = HardState {
        term: 5,
        voted_for: None,
    };
    let mut node = Node::new(
        1,
        &[2, 3],
        Persisted {
            hard,
            snapshot: None,
            log: vec![],
        },
        1,
    );
    node.step(vote(4, 2));
    node.step(Message::Append {
        term: 3,
        from: 3,
        prev_index: 0,
        prev_term: 0,
        commit: 0,
        entries: vec![],
    });
    let sent = node.ready().send;
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().all(|(_, m)| m.term() == 5));
    // Messages from strangers and from itself are ignored.
    node.step(vote(9, 7));
    node.step(vote(9, 1));
    assert!(node.ready().is_empty());
    assert_eq!(node.term(), 5);
}
