//! The verbs of accounts and groups (issue 9), as one more kind of [`Request`]: parsed from
//! their words and printed back, like every other verb. No I/O, no rules (those are in
//! `auth::accounts` and the tracker), only the format.
//!
//! Tracker verbs: `SALT CREATE-USER LOGIN PROOF LOGOUT CREATE-GROUP JOIN LEAVE REQUESTS ACCEPT
//! GROUPS FILES GUPLOAD GREMOVE GWHOHAS GINFO GRANT VOUCH`. Peer verb: `TICKET`.
//! Keys travel in base64, SCRAM messages as the RFC writes them (they have no spaces).

use std::fmt;

use super::{ErrCode, Meta, ProtoError, Request, meta, name, number};
use crate::auth::accounts::check_id;
use crate::auth::base64;
use crate::auth::ticket::{Ticket, parse_mac};

/// A request about accounts, groups or group files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccountRequest {
    /// `SALT <user>`: the first step of creating a user: the tracker picks a salt.
    Salt { user: String },
    /// `CREATE-USER <user> <stored-key> <server-key>`: keys the client derived from its
    /// password with the salt and count `SALT` gave (base64, 20 bytes each).
    CreateUser {
        user: String,
        stored_key: [u8; 20],
        server_key: [u8; 20],
    },
    /// `LOGIN <client-first>`: SCRAM's client-first-message.
    Login { first: String },
    /// `PROOF <client-final>`: SCRAM's client-final-message.
    Proof { last: String },
    /// `LOGOUT`.
    Logout,
    /// `CREATE-GROUP <group>`.
    CreateGroup { group: String },
    /// `JOIN <group>`: file a join request.
    Join { group: String },
    /// `LEAVE <group>`.
    Leave { group: String },
    /// `REQUESTS <group>`: the pending requests (admin only).
    Requests { group: String },
    /// `ACCEPT <group> <user>`.
    Accept { group: String, user: String },
    /// `GROUPS`: every group.
    Groups,
    /// `FILES <group>`: the group's file names (members only).
    Files { group: String },
    /// `GUPLOAD <group> <name> <size> <piece-size> <sha1> <root>`: share a file in a group.
    GUpload { group: String, meta: Meta },
    /// `GREMOVE <group> <name>`: this peer stops holding that group file.
    GRemove { group: String, name: String },
    /// `GWHOHAS <group> <name>`: the online holders of a group file (members only).
    GWhoHas { group: String, name: String },
    /// `GINFO <group> <name>`: what the group file is (members only).
    GInfo { group: String, name: String },
    /// `GRANT <group> <name> <holder>`: a ticket to fetch that file from that holder.
    Grant {
        group: String,
        name: String,
        holder: String,
    },
    /// `VOUCH <group> <user>`: a holder asks whether `user` is still a member.
    Vouch { group: String, user: String },
    /// Peer verb `TICKET <user> <group> <name> <root> <ip> <expiry> <mac>`.
    Ticket(Ticket),
}

/// Request and reply words that are secrets, for `protocol::redacted`: by first word, the word
/// positions after it. A reply is redacted by the same table after its `ACK`.
pub const SECRETS: &[(&str, &[usize])] = &[
    ("CREATE-USER", &[1, 2]),
    ("PROOF", &[0]),
    ("WELCOME", &[1]),
    ("TICKET", &[6]),
];

fn id(what: &'static str, word: &str) -> Result<String, ProtoError> {
    check_id(what, word).map_err(|e| ProtoError::new(ErrCode::BadName, e.to_string()))?;
    Ok(word.to_string())
}

fn key(word: &str, what: &str) -> Result<[u8; 20], ProtoError> {
    base64::decode(word)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| ProtoError::bad(format!("{what} must be 20 bytes in base64")))
}

/// The longest SCRAM message taken: room for a 64-byte name escaped three times over and
/// long nonces, and small enough that every parsed request prints as a line within
/// `MAX_LINE` (the line fuzz found a 4 KB `LOGIN` that parsed but could not be sent back).
pub const MAX_SCRAM: usize = 1024;

/// A SCRAM message is one word of printable ASCII (the SCRAM code checks its syntax).
fn scram(word: &str) -> Result<String, ProtoError> {
    if word.len() > MAX_SCRAM {
        return Err(ProtoError::bad(format!(
            "a SCRAM message is at most {MAX_SCRAM} bytes"
        )));
    }
    Ok(word.to_string())
}

/// Parse an account verb's arguments; `None` if `verb` is not one of them.
pub(super) fn parse(verb: &str, args: &[&str]) -> Option<Result<Request, ProtoError>> {
    let usage: &str = match verb {
        "SALT" => "SALT <user>",
        "CREATE-USER" => "CREATE-USER <user> <stored-key> <server-key>",
        "LOGIN" => "LOGIN <client-first-message>",
        "PROOF" => "PROOF <client-final-message>",
        "LOGOUT" => "LOGOUT",
        "CREATE-GROUP" => "CREATE-GROUP <group>",
        "JOIN" => "JOIN <group>",
        "LEAVE" => "LEAVE <group>",
        "REQUESTS" => "REQUESTS <group>",
        "ACCEPT" => "ACCEPT <group> <user>",
        "GROUPS" => "GROUPS",
        "FILES" => "FILES <group>",
        "GUPLOAD" => "GUPLOAD <group> <name> <size> <piece-size> <sha1> <root>",
        "GREMOVE" => "GREMOVE <group> <name>",
        "GWHOHAS" => "GWHOHAS <group> <name>",
        "GINFO" => "GINFO <group> <name>",
        "GRANT" => "GRANT <group> <name> <holder>",
        "VOUCH" => "VOUCH <group> <user>",
        "TICKET" => "TICKET <user> <group> <name> <root> <ip> <expiry> <mac>",
        _ => return None,
    };
    let want = usage.split(' ').count() - 1;
    if args.len() != want {
        return Some(Err(ProtoError::bad(format!("usage: {usage}"))));
    }
    Some(parse_args(verb, args).map(Request::Account))
}

fn parse_args(verb: &str, a: &[&str]) -> Result<AccountRequest, ProtoError> {
    use AccountRequest as R;
    let group = || id("group", a[0]);
    Ok(match verb {
        "SALT" => R::Salt {
            user: id("user", a[0])?,
        },
        "CREATE-USER" => R::CreateUser {
            user: id("user", a[0])?,
            stored_key: key(a[1], "the stored key")?,
            server_key: key(a[2], "the server key")?,
        },
        "LOGIN" => R::Login {
            first: scram(a[0])?,
        },
        "PROOF" => R::Proof { last: scram(a[0])? },
        "LOGOUT" => R::Logout,
        "CREATE-GROUP" => R::CreateGroup { group: group()? },
        "JOIN" => R::Join { group: group()? },
        "LEAVE" => R::Leave { group: group()? },
        "REQUESTS" => R::Requests { group: group()? },
        "ACCEPT" => R::Accept {
            group: group()?,
            user: id("user", a[1])?,
        },
        "GROUPS" => R::Groups,
        "FILES" => R::Files { group: group()? },
        "GUPLOAD" => R::GUpload {
            group: group()?,
            meta: meta(&a[1..])?,
        },
        "GREMOVE" => R::GRemove {
            group: group()?,
            name: name(a[1])?,
        },
        "GWHOHAS" => R::GWhoHas {
            group: group()?,
            name: name(a[1])?,
        },
        "GINFO" => R::GInfo {
            group: group()?,
            name: name(a[1])?,
        },
        "GRANT" => R::Grant {
            group: group()?,
            name: name(a[1])?,
            holder: a[2].chars().take(64).collect(),
        },
        "VOUCH" => R::Vouch {
            group: group()?,
            user: id("user", a[1])?,
        },
        _ => R::Ticket(Ticket {
            user: id("user", a[0])?,
            group: id("group", a[1])?,
            name: name(a[2])?,
            root: super::digest(a[3], "root")?,
            ip: a[4].chars().take(64).collect(),
            expiry: number(a[5], "expiry")?,
            mac: parse_mac(a[6]).ok_or_else(|| ProtoError::bad("the mac must be 40 hex digits"))?,
        }),
    })
}

impl fmt::Display for AccountRequest {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        use AccountRequest as R;
        match self {
            R::Salt { user } => write!(f, "SALT {user}"),
            R::CreateUser {
                user,
                stored_key,
                server_key,
            } => write!(
                f,
                "CREATE-USER {user} {} {}",
                base64::encode(stored_key),
                base64::encode(server_key)
            ),
            R::Login { first } => write!(f, "LOGIN {first}"),
            R::Proof { last } => write!(f, "PROOF {last}"),
            R::Logout => write!(f, "LOGOUT"),
            R::CreateGroup { group } => write!(f, "CREATE-GROUP {group}"),
            R::Join { group } => write!(f, "JOIN {group}"),
            R::Leave { group } => write!(f, "LEAVE {group}"),
            R::Requests { group } => write!(f, "REQUESTS {group}"),
            R::Accept { group, user } => write!(f, "ACCEPT {group} {user}"),
            R::Groups => write!(f, "GROUPS"),
            R::Files { group } => write!(f, "FILES {group}"),
            R::GUpload { group, meta } => write!(f, "GUPLOAD {group} {meta}"),
            R::GRemove { group, name } => write!(f, "GREMOVE {group} {name}"),
            R::GWhoHas { group, name } => write!(f, "GWHOHAS {group} {name}"),
            R::GInfo { group, name } => write!(f, "GINFO {group} {name}"),
            R::Grant {
                group,
                name,
                holder,
            } => write!(f, "GRANT {group} {name} {holder}"),
            R::Vouch { group, user } => write!(f, "VOUCH {group} {user}"),
            R::Ticket(ticket) => write!(f, "{ticket}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse_request, redacted};
    use super::*;

    const SHA: &str = "dc3568154e339e0670a8a5d286ab2c810e9cb962";

    #[test]
    fn account_verbs_round_trip_through_their_lines() {
        let key = base64::encode(&[7u8; 20]);
        let lines = [
            "SALT alice".to_string(),
            format!("CREATE-USER alice {key} {key}"),
            "LOGIN n,,n=alice,r=abc".into(),
            "PROOF c=biws,r=abcdef,p=xyz=".into(),
            "LOGOUT".into(),
            "CREATE-GROUP g1".into(),
            "JOIN g1".into(),
            "LEAVE g1".into(),
            "REQUESTS g1".into(),
            "ACCEPT g1 bob".into(),
            "GROUPS".into(),
            "FILES g1".into(),
            format!("GUPLOAD g1 notes.txt 27 1024 {SHA} {SHA}"),
            "GREMOVE g1 notes.txt".into(),
            "GWHOHAS g1 notes.txt".into(),
            "GINFO g1 notes.txt".into(),
            "GRANT g1 notes.txt 127.0.0.1:9000".into(),
            "VOUCH g1 bob".into(),
            format!("TICKET bob g1 notes.txt {SHA} 127.0.0.1 99 {SHA}"),
        ];
        for line in lines {
            let req = parse_request(line.as_bytes()).unwrap_or_else(|e| panic!("{line}: {e:?}"));
            assert_eq!(req.to_string(), line);
        }
    }

    #[test]
    fn bad_account_lines_get_their_codes() {
        let code = |line: &str| parse_request(line.as_bytes()).unwrap_err().code;
        assert_eq!(code("SALT"), ErrCode::BadRequest);
        assert_eq!(code("SALT a b"), ErrCode::BadRequest);
        assert_eq!(code("SALT ../x"), ErrCode::BadName);
        assert_eq!(code("CREATE-USER a x y"), ErrCode::BadRequest);
        assert_eq!(code("GINFO g1 ../etc"), ErrCode::BadName);
        assert_eq!(
            code(&format!("TICKET b g n {SHA} 1.2.3.4 9 zz")),
            ErrCode::BadRequest
        );
    }

    #[test]
    fn secrets_are_redacted_in_requests_and_replies() {
        let key = base64::encode(&[7u8; 20]);
        assert_eq!(
            redacted(&format!("CREATE-USER alice {key} {key}")),
            "CREATE-USER alice <redacted> <redacted>"
        );
        assert_eq!(redacted("PROOF c=biws,r=x,p=y"), "PROOF <redacted>");
        assert_eq!(
            redacted("ACK WELCOME alice v=abc"),
            "ACK WELCOME alice <redacted>"
        );
        let ticket = format!("TICKET bob g1 n {SHA} 127.0.0.1 9 {SHA}");
        let shown = format!("TICKET bob g1 n {SHA} 127.0.0.1 9 <redacted>");
        assert_eq!(redacted(&ticket), shown);
        assert_eq!(redacted(&format!("ACK {ticket}")), format!("ACK {shown}"));
    }
}
