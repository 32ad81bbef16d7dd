//! The picker's unit tests: rarest first, windows, end game, seeds held back, peers' bits.

use super::*;

/// A lone downloader whose share (everything) is settled.
fn settle(p: &mut Picker) {
    p.set_share(0, 1);
    p.set_share(0, 1);
}

fn bits(s: &str) -> Vec<bool> {
    s.bytes().map(|b| b == b'1').collect()
}

#[test]
fn a_lone_worker_may_ask_for_everything_left_and_two_share() {
    let mut p = Picker::new(1000, |_| false, Strategy::RarestFirst, 1);
    p.set_peer(0, vec![true; 1000]);
    assert_eq!(p.window(256), 256);
    assert_eq!(p.window(4096), 1000, "alone, nothing is held back");
    p.set_peer(1, vec![true; 1000]);
    assert_eq!(p.window(4096), 250, "two workers: a quarter each");
    assert_eq!(p.window(1), 2, "never fewer than two in flight");
}

#[test]
fn seeds_wait_for_a_settled_share_and_peer_has_follows_the_latest_bitfield() {
    let mut p = Picker::new(4, |_| false, Strategy::RarestFirst, 1);
    p.set_peer(0, vec![true; 4]);
    assert!(p.seeds_held_back());
    assert_eq!(
        p.next(0),
        None,
        "a seed is asked nothing before the share settles"
    );
    settle(&mut p);
    assert!(!p.seeds_held_back());
    assert!(p.next(0).is_some());
    // A holder taken for a seed on the tracker's word, whose bitfield says otherwise.
    p.set_peer(1, vec![true; 4]);
    p.set_peer(1, bits("0101"));
    assert!(!p.peer_has(1, 0) && p.peer_has(1, 1));
    p.peer_lacks(1, 1);
    assert!(!p.peer_has(1, 1));
    assert!(!p.peer_has(7, 1), "an unknown worker has nothing");
    let random = Picker::new(4, |_| false, Strategy::Random, 1);
    assert!(!random.seeds_held_back(), "Random never holds seeds back");
}

#[test]
fn rarest_first_takes_the_piece_fewest_peers_hold() {
    let mut p = Picker::new(6, |_| false, Strategy::RarestFirst, 1);
    settle(&mut p);
    p.set_peer(0, bits("111110"));
    p.set_peer(1, bits("110110"));
    p.set_peer(2, bits("010111"));
    // Availability: 2 3 1 3 2 1. Peer 0 holds piece 2 (held by one) but not 5.
    assert_eq!(p.next(0), Some(2));
    // Now the rarest piece peer 0 has that is not in flight: 0 or 4 (two holders each).
    let second = p.next(0).unwrap();
    assert!(second == 0 || second == 4, "{second}");
    assert_eq!(p.next(2), Some(5));
}

#[test]
fn ties_are_broken_at_random_near_the_front() {
    let mut seen = std::collections::HashSet::new();
    for seed in 0..50 {
        let mut p = Picker::new(100, |_| false, Strategy::RarestFirst, seed);
        settle(&mut p);
        p.set_peer(0, vec![true; 99].into_iter().chain([false]).collect());
        let i = p.next(0).unwrap() as usize;
        assert!(i < TIE_WINDOW, "{i}");
        seen.insert(i);
    }
    assert!(seen.len() > 3, "{seen:?}");
}

#[test]
fn random_strategy_reaches_the_whole_file() {
    let mut seen = std::collections::HashSet::new();
    for seed in 0..50 {
        let mut p = Picker::new(100, |_| false, Strategy::Random, seed);
        settle(&mut p);
        p.set_peer(0, vec![true; 100]);
        seen.insert(p.next(0).unwrap());
    }
    assert!(seen.iter().any(|&i| i >= 50), "{seen:?}");
}

#[test]
fn seeds_are_asked_only_for_pieces_no_partial_holder_has_and_this_downloaders_share_first() {
    let mut p = Picker::new(8, |_| false, Strategy::RarestFirst, 7);
    p.set_share(1, 2);
    p.set_peer(0, vec![true; 8]);
    assert!(p.peer_is_seed(0));
    assert_eq!(p.next(0), None, "not before the share is settled");
    p.set_share(1, 2);
    p.set_peer(1, bits("11000000"));
    for _ in 0..3 {
        let i = p.next(0).unwrap();
        assert!(i >= 2 && i % 2 == 1, "{i}");
    }
    // The share (3, 5, 7) is used up: the other unseen pieces are left to the other
    // downloader, until the share is relaxed.
    assert_eq!(p.next(0), None);
    p.relax_share();
    let i = p.next(0).unwrap();
    assert!(i >= 2 && i.is_multiple_of(2), "{i}");
    // Pieces 0 and 1 come from the partial holder, never from the seed.
    let mut from_partial = vec![p.next(1).unwrap(), p.next(1).unwrap()];
    from_partial.sort();
    assert_eq!(from_partial, [0, 1]);
}

#[test]
fn end_game_asks_again_for_pieces_in_flight_elsewhere() {
    let mut p = Picker::new(2, |_| false, Strategy::RarestFirst, 3);
    settle(&mut p);
    p.set_peer(0, vec![true; 2]);
    p.set_peer(1, vec![true; 2]);
    let a = p.next(0).unwrap();
    let b = p.next(0).unwrap();
    assert_ne!(a, b);
    assert_eq!(p.next(0), None);
    // Worker 1 joins late: everything is in flight, so it duplicates a piece.
    let dup = p.next(1).unwrap();
    assert!(dup == a || dup == b);
    assert!(p.finish(1, dup, true));
    assert!(!p.finish(0, dup, true), "the second copy does not count");
    let other = if dup == a { b } else { a };
    assert!(p.finish(0, other, true));
    assert!(p.is_done());
}

#[test]
fn a_failed_piece_goes_back_and_already_held_pieces_are_skipped() {
    let mut p = Picker::new(3, |i| i == 0, Strategy::RarestFirst, 3);
    settle(&mut p);
    assert_eq!(p.remaining(), 2);
    p.set_peer(0, vec![true; 3]);
    let a = p.next(0).unwrap();
    assert_ne!(a, 0);
    assert!(!p.finish(0, a, false));
    let b = p.next(0).unwrap();
    assert_ne!(b, 0);
    p.peer_lacks(0, 1);
    p.peer_lacks(0, 2);
    assert!(!p.peer_is_seed(0));
}

#[test]
fn a_departed_peer_no_longer_counts() {
    let mut p = Picker::new(2, |_| false, Strategy::RarestFirst, 3);
    settle(&mut p);
    p.set_peer(0, bits("10"));
    p.remove_peer(0);
    assert_eq!(p.next(0), None);
    p.set_peer(1, bits("01"));
    assert_eq!(p.next(1), Some(1));
}

#[test]
fn in_the_end_game_a_seed_does_not_resend_what_a_partial_holder_is_fetching_until_relaxed() {
    let mut p = Picker::new(2, |_| false, Strategy::RarestFirst, 1);
    p.set_share(0, 2);
    p.set_share(0, 2);
    p.set_peer(0, vec![true; 2]); // a seed
    p.set_peer(1, bits("01")); // a partial holder
    p.set_peer(2, vec![true; 2]); // another seed
    assert_eq!(p.next(1), Some(1), "the partial holder's piece");
    assert_eq!(p.next(0), Some(0), "the seed's share");
    // Everything is in flight: the end game. Piece 0 (at a seed) may be asked again of the
    // other seed; piece 1 (at the partial holder) may not, while the share is strict.
    assert_eq!(p.next(2), Some(0));
    assert_eq!(p.next(0), None, "the seed is spared piece 1");
    assert_eq!(p.next(2), None);
    // No progress for a while: the rule is lifted.
    p.relax_share();
    assert_eq!(p.next(0), Some(1));
    assert_eq!(p.next(2), Some(1));
}

#[test]
fn a_worker_done_with_its_pieces_leaves_no_bitmap_and_is_not_asked_twice_for_one() {
    let mut p = Picker::new(130, |_| false, Strategy::RarestFirst, 1);
    settle(&mut p);
    p.set_peer(0, vec![true; 130]);
    let picks: Vec<u32> = (0..130).filter_map(|_| p.next(0)).collect();
    assert_eq!(
        picks.len(),
        130,
        "every piece once, across the bitmap's three words"
    );
    let mut sorted = picks.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 130, "no piece twice to one worker");
    assert_eq!(
        p.next(0),
        None,
        "the end game never asks a worker again for its own piece"
    );
    for (n, &i) in picks.iter().enumerate() {
        p.finish(0, i, n % 2 == 0);
    }
    assert!(p.asked.is_empty(), "finished workers leave nothing behind");
    assert_eq!(p.remaining(), 65);
    let again = p.next(0).expect("a piece handed back can be asked again");
    assert_eq!(
        picks.iter().position(|&i| i == again).map(|n| n % 2),
        Some(1)
    );
}
