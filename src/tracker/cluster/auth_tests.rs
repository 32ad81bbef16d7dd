//! The handshake's pure part: fixed-input MACs, and every forgery the design names refused.

use super::auth::hex;
use super::auth::*;
use crate::auth::hmac::HmacSha1;

const KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f";

fn key() -> ClusterKey {
    ClusterKey::parse(KEY_HEX, "k").unwrap()
}

fn transcript() -> Transcript<'static> {
    Transcript {
        fingerprint: "0123456789abcdef",
        connector: 1,
        acceptor: 2,
        nonce_c: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        nonce_s: "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
    }
}

#[test]
fn the_mac_is_hmac_sha1_of_the_labelled_transcript() {
    let k: Vec<u8> = (0u8..16).collect();
    let mut h = HmacSha1::new(&k);
    h.update(
        b"torrentphile-cluster acceptor\n0123456789abcdef\n1\n2\naaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\nbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
    );
    let want = hex(&h.finish());
    assert_eq!(key().mac(Side::Acceptor, &transcript()), want);
    assert_eq!(want.len(), 40);
    // The same inputs under the other label give another MAC.
    assert_ne!(key().mac(Side::Connector, &transcript()), want);
}

#[test]
fn both_sides_check_and_hex_and_base64_of_one_key_agree() {
    let (k, t) = (key(), transcript());
    let a = k.mac(Side::Acceptor, &t);
    let c = k.mac(Side::Connector, &t);
    assert!(k.check(Side::Acceptor, &t, &a).is_ok());
    assert!(k.check(Side::Connector, &t, &c).is_ok());
    let again = ClusterKey::parse("AAECAwQFBgcICQoLDA0ODw==", "k").unwrap();
    assert_eq!(
        again.mac(Side::Acceptor, &t),
        a,
        "hex and base64 of one key agree"
    );
}

#[test]
fn reflection_is_refused() {
    // An attacker connecting as member 1 cannot send the acceptor's own MAC back as a PROOF.
    let (k, t) = (key(), transcript());
    let mac_s = k.mac(Side::Acceptor, &t);
    assert_eq!(
        k.check(Side::Connector, &t, &mac_s).unwrap_err(),
        "member 1's MAC does not check: the cluster keys differ (or it is not member 1)"
    );
}

#[test]
fn replay_on_another_connection_is_refused() {
    let (k, t) = (key(), transcript());
    let old = k.mac(Side::Connector, &t);
    let fresh = Transcript {
        nonce_s: "cccccccccccccccccccccccccccccccc",
        ..t.clone()
    };
    assert!(k.check(Side::Connector, &fresh, &old).is_err());
    // Nor may it be moved to another pair of members or another cluster.
    for moved in [
        Transcript {
            connector: 3,
            ..t.clone()
        },
        Transcript {
            acceptor: 3,
            ..t.clone()
        },
        Transcript {
            fingerprint: "fedcba9876543210",
            ..t.clone()
        },
    ] {
        assert!(k.check(Side::Connector, &moved, &old).is_err());
    }
}

#[test]
fn a_wrong_key_is_refused() {
    let t = transcript();
    let other = ClusterKey::parse("ffffffffffffffffffffffffffffffff", "k").unwrap();
    let mac = other.mac(Side::Acceptor, &t);
    assert_eq!(
        key().check(Side::Acceptor, &t, &mac).unwrap_err(),
        "member 2's MAC does not check: the cluster keys differ (or it is not member 2)"
    );
    assert!(key().check(Side::Acceptor, &t, "").is_err());
    assert!(key().check(Side::Acceptor, &t, "garbage").is_err());
}

#[test]
fn key_text_is_hex_or_base64_and_long_enough() {
    assert!(ClusterKey::parse(&format!("{KEY_HEX}\n"), "k").is_ok());
    assert_eq!(
        ClusterKey::parse("00010203", "k.key").unwrap_err(),
        "the cluster key k.key holds 4 bytes; at least 16 are needed: make a new one with `torrentphile cluster-key k.key`"
    );
    assert_eq!(
        ClusterKey::parse("not a key!", "k.key").unwrap_err(),
        "the cluster key k.key is neither hex nor base64 text: make a new one with `torrentphile cluster-key k.key`"
    );
    assert!(ClusterKey::parse("", "k").is_err());
    assert_eq!(format!("{:?}", key()), "ClusterKey(<16 bytes, redacted>)");
}

#[test]
fn key_files_are_made_private_and_open_ones_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("torrentphile-ckey-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("cluster.key");
    write_new(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(ClusterKey::load(&path).is_ok());
    assert!(write_new(&path).unwrap_err().contains("exists already"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let file = path.display();
    assert_eq!(
        ClusterKey::load(&path).unwrap_err(),
        format!("the cluster key {file} is open to group or others (mode 0644): chmod 600 {file}")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn nonces_are_fresh_hex() {
    let (a, b) = (nonce().unwrap(), nonce().unwrap());
    assert!(is_nonce(&a) && is_nonce(&b));
    assert_ne!(a, b);
    assert!(!is_nonce("abc"));
    assert!(!is_nonce(&"g".repeat(32)));
}
