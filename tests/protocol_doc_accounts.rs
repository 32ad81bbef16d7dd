//! How PROTOCOL.md's account transcripts were made, checked: their secret-looking lines
//! (`CREATE-USER` keys, `LOGIN`'s answer, `PROOF`, `WELCOME`'s signature) are not copied
//! from a run but computed here from what the document states: the test seed
//! (`TORRENTPHILE_TEST_SEED=1`, so the tracker's salts and nonces are HMAC-SHA1 of the seed
//! over the user name and the client nonce), 4096 iterations, each user's password, and
//! the client nonce written in the `LOGIN` line. Every computed line must be in the document,
//! so a change to the SCRAM code or to the seeding fails here, and the replay in
//! `protocol_doc.rs` shows the live tracker agrees.

use std::fs;
use std::path::Path;

use torrentphile::auth::base64;
use torrentphile::auth::hmac::hmac_sha1;
use torrentphile::auth::scram::{self, Credentials};

/// The seed and iteration count the doc's world uses (`protocol_doc.rs` starts it so).
const SEED: u64 = 1;
const ITERATIONS: u32 = 4096;

/// The transcript users: name, password, whether a transcript creates the user (bob is
/// made by the world's setup, like alice), the client nonce of each of their logins.
const USERS: &[(&str, &str, bool, &[&str])] = &[
    ("carol", "carol-pw", true, &["carolnonce1", "carolnonce2"]),
    ("bob", "bob-pw", false, &["bobnonce1"]),
];

/// The lines a client and the seeded tracker exchange to create `user` (`SALT`,
/// `CREATE-USER`) and to log in with `nonce` (`LOGIN`, `PROOF`), with the tracker's answers.
fn lines(user: &str, password: &str, create: bool, nonces: &[&str]) -> Vec<String> {
    let salt = hmac_sha1(&SEED.to_be_bytes(), format!("salt,{user}").as_bytes())[..16].to_vec();
    let cred = Credentials::derive(password.as_bytes(), &salt, ITERATIONS);
    let mut out = vec![
        format!("C: SALT {user}"),
        format!("S: ACK salt={} i={ITERATIONS}", base64::encode(&salt)),
        format!(
            "C: CREATE-USER {user} {} {}",
            base64::encode(&cred.stored_key),
            base64::encode(&cred.server_key)
        ),
    ];
    if !create {
        out.clear();
    }
    for nonce in nonces {
        let client = scram::Client::new(user, nonce).expect("a valid nonce");
        let first = client.first_message();
        let server_nonce = base64::encode(&hmac_sha1(&SEED.to_be_bytes(), nonce.as_bytes())[..18]);
        let parsed_first = scram::read_client_first(&first).expect("parses");
        let server = scram::Server::new(&parsed_first, &cred, &server_nonce).expect("ok");
        let (last, _) = client
            .respond(server.first_message(), password.as_bytes())
            .expect("answers");
        let welcome = server
            .read_client_final(last.message())
            .expect("the proof verifies");
        out.push(format!("C: LOGIN {first}"));
        out.push(format!("S: ACK {}", server.first_message()));
        out.push(format!("C: PROOF {}", last.message()));
        out.push(format!("S: ACK WELCOME {user} {}", welcome.message));
    }
    out
}

#[test]
fn the_account_transcripts_scram_lines_are_computed_from_the_stated_passwords() {
    let doc = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("PROTOCOL.md"))
        .expect("PROTOCOL.md");
    let mut missing = Vec::new();
    for (user, password, create, nonces) in USERS {
        for line in lines(user, password, *create, nonces) {
            if !doc.lines().any(|l| l == line) {
                missing.push(line);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "PROTOCOL.md lacks these computed lines:\n{}",
        missing.join("\n")
    );
}
