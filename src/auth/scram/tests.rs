//! Tests of `scram.rs`: the RFC 5802 section 5 exchange first, then every refusal.

use super::*;
use crate::auth::hmac::hex;

// RFC 5802 section 5: user "user", password "pencil".
const CLIENT_NONCE: &str = "fyko+d2lbbFgONRv9qkxdawL";
const SERVER_NONCE: &str = "3rfcNHYJY1ZVvWVs7j";
const CLIENT_FIRST: &str = "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL";
const SERVER_FIRST: &str = "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096";
const CLIENT_FINAL: &str =
    "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=";
const SERVER_FINAL: &str = "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=";

fn rfc_credentials() -> Credentials {
    let salt = base64::decode("QSXCR+Q6sek8bf92").expect("the RFC's salt is base64");
    Credentials::derive(b"pencil", &salt, 4096)
}

#[test]
fn rfc5802_example_client_side_byte_for_byte() {
    let client = Client::new("user", CLIENT_NONCE).expect("valid");
    assert_eq!(client.first_message(), CLIENT_FIRST);
    let (last, _keys) = client
        .respond(SERVER_FIRST, b"pencil")
        .expect("server-first");
    assert_eq!(last.message(), CLIENT_FINAL);
    assert!(last.read_server_final(SERVER_FINAL).is_ok());
}

#[test]
fn rfc5802_example_server_side_byte_for_byte() {
    let first = read_client_first(CLIENT_FIRST).expect("client-first");
    assert_eq!(first.user, "user");
    assert_eq!(first.nonce, CLIENT_NONCE);
    let server = Server::new(&first, &rfc_credentials(), SERVER_NONCE).expect("nonce");
    assert_eq!(server.first_message(), SERVER_FIRST);
    let done = server
        .read_client_final(CLIENT_FINAL)
        .expect("the RFC's proof");
    assert_eq!(done.message, SERVER_FINAL);
}

#[test]
fn rfc5802_example_intermediate_keys() {
    // Not printed in the RFC; computed by an independent implementation and consistent with
    // the RFC's messages above (which the two tests before check on their own).
    let creds = rfc_credentials();
    assert_eq!(creds.salt.len(), 12);
    assert_eq!(
        hex(&creds.stored_key),
        "e9d94660c39d65c38fbad91c358f14da0eef2bd6"
    );
    assert_eq!(
        hex(&creds.server_key),
        "0fe09258b3ac852ba502cc62ba903eaacdbf7d31"
    );
    assert_eq!(
        hex(&hi(b"pencil", &creds.salt, 4096)),
        "1d96ee3a529b5a5f9e47c01f229a2cb8a6e15f7d"
    );
}

/// One whole exchange between our client and our server, at a low count to stay fast.
fn login(
    user: &str,
    password: &[u8],
    creds: &Credentials,
    cnonce: &str,
    snonce: &str,
) -> Result<(SessionKey, SessionKey), ScramError> {
    let client = Client::new(user, cnonce)?;
    let first = read_client_first(&client.first_message())?;
    let server = Server::new(&first, creds, snonce)?;
    let (last, _) = client.respond(server.first_message(), password)?;
    let done = server.read_client_final(last.message())?;
    let client_session = last.read_server_final(&done.message)?;
    Ok((client_session, done.session))
}

#[test]
fn round_trip_gives_both_sides_the_same_session_key() {
    let creds = Credentials::derive(b"s3cret", b"saltsalt", 8);
    let (a, b) = login("alice", b"s3cret", &creds, "cn1", "sn1").expect("login");
    assert_eq!(a, b);
    // Another exchange (other nonces) gives another key.
    let (c, _) = login("alice", b"s3cret", &creds, "cn1", "sn2").expect("login");
    assert_ne!(a, c);
}

#[test]
fn wrong_password_is_invalid_proof() {
    let creds = Credentials::derive(b"s3cret", b"saltsalt", 8);
    let err = login("alice", b"s3cret!", &creds, "cn", "sn").unwrap_err();
    assert_eq!(err, ScramError::InvalidProof);
    assert_eq!(err.code(), "invalid-proof");
}

#[test]
fn decoy_credentials_fail_like_a_wrong_password() {
    let decoy = Credentials::decoy("mallory", b"server secret", 8);
    assert_eq!(decoy, Credentials::decoy("mallory", b"server secret", 8));
    assert_ne!(
        decoy.salt,
        Credentials::decoy("trudy", b"server secret", 8).salt
    );
    assert_eq!(decoy.check(), Ok(()));
    let err = login("mallory", b"guess", &decoy, "cn", "sn").unwrap_err();
    assert_eq!(err, ScramError::InvalidProof);
}

#[test]
fn a_captured_client_final_does_not_replay() {
    // The server's fresh nonce differs, so the old final message names the wrong nonce; and a
    // final message edited to the new nonce carries a proof over the wrong AuthMessage.
    let creds = rfc_credentials();
    let first = read_client_first(CLIENT_FIRST).expect("client-first");
    let server = Server::new(&first, &creds, "anotherServerNonce").expect("nonce");
    assert_eq!(
        server.read_client_final(CLIENT_FINAL).unwrap_err(),
        ScramError::Nonce
    );
    let edited = CLIENT_FINAL.replace(SERVER_NONCE, "anotherServerNonce");
    assert_eq!(
        server.read_client_final(&edited).unwrap_err(),
        ScramError::InvalidProof
    );
}

#[test]
fn every_proof_bit_matters() {
    let server = Server::new(
        &read_client_first(CLIENT_FIRST).expect("client-first"),
        &rfc_credentials(),
        SERVER_NONCE,
    )
    .expect("nonce");
    let (head, proof) = CLIENT_FINAL.rsplit_once(",p=").expect("has a proof");
    let proof = base64::decode(proof).expect("base64");
    for i in 0..proof.len() * 8 {
        let mut bad = proof.clone();
        bad[i / 8] ^= 1 << (i % 8);
        let line = format!("{head},p={}", base64::encode(&bad));
        assert_eq!(
            server.read_client_final(&line).unwrap_err(),
            ScramError::InvalidProof
        );
    }
}

#[test]
fn client_refuses_a_server_without_the_credentials() {
    let client = Client::new("user", CLIENT_NONCE).expect("valid");
    let (last, _) = client
        .respond(SERVER_FIRST, b"pencil")
        .expect("server-first");
    assert_eq!(
        last.read_server_final("v=AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
            .unwrap_err(),
        ScramError::ServerSignature
    );
    assert_eq!(
        last.read_server_final("e=invalid-proof").unwrap_err(),
        ScramError::Server("invalid-proof".into())
    );
    assert!(matches!(
        last.read_server_final("v=short").unwrap_err(),
        ScramError::Malformed(_)
    ));
}

#[test]
fn client_checks_the_server_first_message() {
    let client = Client::new("user", CLIENT_NONCE).expect("valid");
    let bad = [
        ("r=someoneElsesNonce,s=QSXCR+Q6sek8bf92,i=4096", "bad-nonce"),
        // The server must add to the nonce, not just echo it.
        (
            "r=fyko+d2lbbFgONRv9qkxdawL,s=QSXCR+Q6sek8bf92,i=4096",
            "bad-nonce",
        ),
        (
            "r=fyko+d2lbbFgONRv9qkxdawLx,s=QSXCR+Q6sek8bf92,i=0",
            "bad-parameters",
        ),
        (
            "r=fyko+d2lbbFgONRv9qkxdawLx,s=QSXCR+Q6sek8bf92,i=99999999",
            "bad-parameters",
        ),
        (
            "r=fyko+d2lbbFgONRv9qkxdawLx,s=QSXCR+Q6sek8bf92,i=+4",
            "invalid-encoding",
        ),
        (
            "r=fyko+d2lbbFgONRv9qkxdawLx,s=QSXCR+Q6sek8bf9,i=4096",
            "invalid-encoding",
        ),
        ("r=fyko+d2lbbFgONRv9qkxdawLx,s=,i=4096", "bad-parameters"),
        (
            "r=fyko+d2lbbFgONRv9qkxdawLx,i=4096,s=QSXCR+Q6sek8bf92",
            "invalid-encoding",
        ),
        (
            "m=ext,r=fyko+d2lbbFgONRv9qkxdawLx,s=QSXCR+Q6sek8bf92,i=4096",
            "extensions-not-supported",
        ),
        ("", "invalid-encoding"),
    ];
    for (line, code) in bad {
        let err = client.read_server_first(line).unwrap_err();
        assert_eq!(err.code(), code, "{line}: {err}");
    }
    // An optional extension after the count is tolerated.
    let ok = client
        .read_server_first("r=fyko+d2lbbFgONRv9qkxdawLx,s=QSXCR+Q6sek8bf92,i=4096,x=y")
        .expect("extension ignored");
    assert_eq!(ok.iterations, 4096);
}

#[test]
fn server_accepts_only_the_n_header() {
    let cases = [
        ("y,,n=user,r=abc", "channel-binding-not-supported"),
        (
            "p=tls-unique,,n=user,r=abc",
            "channel-binding-not-supported",
        ),
        ("n,a=admin,n=user,r=abc", "authzid-not-supported"),
        ("n,,m=x,n=user,r=abc", "extensions-not-supported"),
        ("n,,n=,r=abc", "invalid-username-encoding"),
        ("n,,n=us=er,r=abc", "invalid-username-encoding"),
        ("n,,n=user,r=", "bad-nonce"),
        ("n,,n=user", "invalid-encoding"),
        ("n,,r=abc,n=user", "invalid-encoding"),
        ("N,,n=user,r=abc", "invalid-encoding"),
        ("n,,n=user,r=abc,junk", "invalid-encoding"),
    ];
    for (line, code) in cases {
        let err = read_client_first(line).unwrap_err();
        assert_eq!(err.code(), code, "{line}: {err}");
    }
}

#[test]
fn server_checks_channel_binding_in_client_final() {
    let server = Server::new(
        &read_client_first(CLIENT_FIRST).expect("client-first"),
        &rfc_credentials(),
        SERVER_NONCE,
    )
    .expect("nonce");
    let yes = CLIENT_FINAL.replace("c=biws", "c=eSws");
    assert_eq!(
        server.read_client_final(&yes).unwrap_err(),
        ScramError::ChannelBinding
    );
    let no_proof = CLIENT_FINAL
        .split(",p=")
        .next()
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        server.read_client_final(&no_proof).unwrap_err(),
        ScramError::Malformed("p")
    );
}

#[test]
fn saslname_escaping() {
    assert_eq!(escape_username("a,b=c"), "a=2Cb=3Dc");
    assert_eq!(unescape_username("a=2Cb=3Dc").as_deref(), Ok("a,b=c"));
    assert_eq!(unescape_username("=3D=2C").as_deref(), Ok("=,"));
    for bad in ["a=2c", "a=", "a=3", "a=41", ""] {
        assert_eq!(unescape_username(bad), Err(ScramError::Username), "{bad}");
    }
    // A name with both specials survives a whole exchange.
    let creds = Credentials::derive(b"pw", b"saltsalt", 2);
    let client = Client::new("o=dd,name", "n1").expect("valid");
    assert_eq!(client.first_message(), "n,,n=o=3Ddd=2Cname,r=n1");
    let first = read_client_first(&client.first_message()).expect("parse");
    assert_eq!(first.user, "o=dd,name");
    assert!(login("o=dd,name", b"pw", &creds, "n1", "n2").is_ok());
}

#[test]
fn nonces_must_be_printable_without_commas() {
    for bad in ["", "a,b", "a b", "é", &"x".repeat(MAX_NONCE + 1)] {
        assert_eq!(
            Client::new("u", bad).unwrap_err(),
            ScramError::Nonce,
            "{bad:?}"
        );
    }
    let first = read_client_first("n,,n=u,r=abc").expect("parse");
    assert_eq!(
        Server::new(&first, &rfc_credentials(), "has space").unwrap_err(),
        ScramError::Nonce
    );
}

#[test]
fn credentials_check_and_never_show_keys() {
    let creds = rfc_credentials();
    assert_eq!(creds.check(), Ok(()));
    let shown = format!("{creds:?}");
    assert!(shown.contains("QSXCR+Q6sek8bf92") && shown.contains("4096"));
    assert!(!shown.contains(&base64::encode(&creds.stored_key)));
    assert!(!shown.contains(&hex(&creds.stored_key)));
    let mut short = creds.clone();
    short.salt = vec![1; 7];
    assert!(short.check().is_err());
    let mut zero = creds;
    zero.iterations = 0;
    assert!(zero.check().is_err());
    let keys = ClientKeys::derive(b"pencil", b"saltsalt", 2);
    assert!(!format!("{keys:?}").contains("pencil"));
}

#[test]
fn cached_client_keys_log_in_without_the_password() {
    let creds = Credentials::derive(b"pw", b"saltsalt", 16);
    let client = Client::new("bob", "c1").expect("valid");
    let server = Server::new(
        &read_client_first(&client.first_message()).expect("p"),
        &creds,
        "s1",
    )
    .expect("nonce");
    let (_, keys) = client
        .respond(server.first_message(), b"pw")
        .expect("respond");
    // Later, a new exchange: reuse the keys.
    let client = Client::new("bob", "c2").expect("valid");
    let server = Server::new(
        &read_client_first(&client.first_message()).expect("p"),
        &creds,
        "s2",
    )
    .expect("nonce");
    let first = client
        .read_server_first(server.first_message())
        .expect("first");
    assert!(keys.fits(&first));
    let last = client.final_message(&first, &keys);
    assert!(server.read_client_final(last.message()).is_ok());
}
