//! A [`Record`]: one change to the accounts, and its one-line text form: `Display` prints it,
//! `FromStr` parses it strictly (the inverse of `Display`, so a record has exactly one text,
//! which a journal's checksum covers). Also the two ways records and states meet: replay, and
//! the records that rebuild a state (a snapshot).

use std::fmt;
use std::str::FromStr;

use super::{Accounts, AuthError, check_id};
use crate::auth::base64;
use crate::auth::scram::Credentials;
use crate::protocol::{Meta, Reply, check_name, parse_reply};

/// One change to [`Accounts`]. The acting user is in every record that has one, so the rules
/// can be checked from the record alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// `CREATE-USER <user> <iterations> <salt> <stored-key> <server-key>` (base64).
    CreateUser {
        user: String,
        credentials: Credentials,
    },
    /// `CREATE-GROUP <group> <admin>`: the creator becomes admin and first member.
    CreateGroup { group: String, admin: String },
    /// `REQUEST-JOIN <group> <user>`: a pending request.
    RequestJoin { group: String, user: String },
    /// `ACCEPT <group> <admin> <user>`: the admin accepts a pending request.
    Accept {
        group: String,
        admin: String,
        user: String,
    },
    /// `LEAVE <group> <user>`: a member leaves (or a requester withdraws).
    Leave { group: String, user: String },
    /// `ADD-FILE <group> <user> <name> <size> <piece-size> <sha1> <root>`: a member uploads.
    AddFile {
        group: String,
        user: String,
        meta: Meta,
    },
    /// `REMOVE-FILE <group> <user> <name>`: the uploader or the admin takes a file off the list.
    RemoveFile {
        group: String,
        user: String,
        name: String,
    },
}

impl fmt::Display for Record {
    /// The record's one line (without a newline).
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Record::CreateUser { user, credentials } => write!(
                f,
                "CREATE-USER {user} {} {} {} {}",
                credentials.iterations,
                base64::encode(&credentials.salt),
                base64::encode(&credentials.stored_key),
                base64::encode(&credentials.server_key)
            ),
            Record::CreateGroup { group, admin } => write!(f, "CREATE-GROUP {group} {admin}"),
            Record::RequestJoin { group, user } => write!(f, "REQUEST-JOIN {group} {user}"),
            Record::Accept { group, admin, user } => write!(f, "ACCEPT {group} {admin} {user}"),
            Record::Leave { group, user } => write!(f, "LEAVE {group} {user}"),
            Record::AddFile { group, user, meta } => write!(f, "ADD-FILE {group} {user} {meta}"),
            Record::RemoveFile { group, user, name } => {
                write!(f, "REMOVE-FILE {group} {user} {name}")
            }
        }
    }
}

fn bad(why: impl Into<String>) -> AuthError {
    AuthError::BadRecord(why.into())
}

fn id(what: &'static str, word: &str) -> Result<String, AuthError> {
    check_id(what, word)?;
    Ok(word.to_string())
}

fn key(word: &str, what: &str) -> Result<[u8; 20], AuthError> {
    base64::decode(word)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| bad(format!("{what} must be 20 bytes in base64")))
}

/// The five words `<name> <size> <piece-size> <sha1> <root>`, validated by the protocol's own
/// parser (the `FILE` reply carries exactly them), so a group file obeys the same rules as a
/// public one.
fn meta(words: &[&str]) -> Result<Meta, AuthError> {
    match parse_reply(format!("FILE {}", words.join(" ")).as_bytes()) {
        Ok(Reply::File(meta)) => Ok(meta),
        Ok(_) => Err(bad("not a file description")),
        Err(e) => Err(bad(e.message)),
    }
}

impl FromStr for Record {
    type Err = AuthError;

    /// Parse one record line (no newline). Words are separated by exactly one space, and the
    /// line must be the record's canonical text (no leading zeros, lowercase hex).
    fn from_str(line: &str) -> Result<Record, AuthError> {
        if !line.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
            return Err(bad("the line is not printable ASCII"));
        }
        let words: Vec<&str> = line.split(' ').collect();
        if words.iter().any(|w| w.is_empty()) {
            return Err(bad("empty word (words are separated by one space)"));
        }
        let (verb, args) = words.split_first().ok_or_else(|| bad("empty line"))?;
        let arity = |n: usize| {
            if args.len() == n {
                Ok(())
            } else {
                Err(bad(format!("{verb} takes {n} words, not {}", args.len())))
            }
        };
        let record = match *verb {
            "CREATE-USER" => {
                arity(5)?;
                let digits =
                    !args[1].starts_with('0') && args[1].bytes().all(|b| b.is_ascii_digit());
                let iterations = digits.then(|| args[1].parse().ok()).flatten().ok_or_else(
                    || bad("the iteration count must be a number from 1, without leading zeros"),
                )?;
                let salt = base64::decode(args[2]).map_err(|e| bad(format!("salt: {e}")))?;
                Record::CreateUser {
                    user: id("user", args[0])?,
                    credentials: Credentials {
                        salt,
                        iterations,
                        stored_key: key(args[3], "the stored key")?,
                        server_key: key(args[4], "the server key")?,
                    },
                }
            }
            "CREATE-GROUP" => {
                arity(2)?;
                Record::CreateGroup {
                    group: id("group", args[0])?,
                    admin: id("user", args[1])?,
                }
            }
            "REQUEST-JOIN" => {
                arity(2)?;
                Record::RequestJoin {
                    group: id("group", args[0])?,
                    user: id("user", args[1])?,
                }
            }
            "ACCEPT" => {
                arity(3)?;
                Record::Accept {
                    group: id("group", args[0])?,
                    admin: id("user", args[1])?,
                    user: id("user", args[2])?,
                }
            }
            "LEAVE" => {
                arity(2)?;
                Record::Leave {
                    group: id("group", args[0])?,
                    user: id("user", args[1])?,
                }
            }
            "ADD-FILE" => {
                arity(7)?;
                Record::AddFile {
                    group: id("group", args[0])?,
                    user: id("user", args[1])?,
                    meta: meta(&args[2..])?,
                }
            }
            "REMOVE-FILE" => {
                arity(3)?;
                check_name(args[2]).map_err(|e| bad(e.message))?;
                Record::RemoveFile {
                    group: id("group", args[0])?,
                    user: id("user", args[1])?,
                    name: args[2].to_string(),
                }
            }
            other => {
                let shown: String = other.chars().take(32).collect();
                return Err(bad(format!("unknown record type {shown:?}")));
            }
        };
        // Anything the words allowed but the text form would print differently (a leading
        // zero in a size, uppercase hex) is refused: one record, one line.
        if record.to_string() != line {
            return Err(bad("the line is not in canonical form"));
        }
        Ok(record)
    }
}

impl Accounts {
    /// Rebuild a state from records in order; the first failing record stops it, with its
    /// index (a journal names the line).
    pub fn replay<'a>(
        records: impl IntoIterator<Item = &'a Record>,
    ) -> Result<Accounts, (usize, AuthError)> {
        let mut accounts = Accounts::new();
        for (i, record) in records.into_iter().enumerate() {
            accounts.apply(record).map_err(|e| (i, e))?;
        }
        Ok(accounts)
    }

    /// Records that rebuild this very state from nothing (for a snapshot): users, then each
    /// group with its members' requests and acceptances, its pending requests and its files.
    pub fn to_records(&self) -> Vec<Record> {
        let mut out: Vec<Record> = self
            .users
            .iter()
            .map(|(user, credentials)| Record::CreateUser {
                user: user.clone(),
                credentials: credentials.clone(),
            })
            .collect();
        for (group, g) in &self.groups {
            let group = || group.clone();
            out.push(Record::CreateGroup {
                group: group(),
                admin: g.admin.clone(),
            });
            for member in g.members.iter().filter(|m| **m != g.admin) {
                out.push(Record::RequestJoin {
                    group: group(),
                    user: member.clone(),
                });
                out.push(Record::Accept {
                    group: group(),
                    admin: g.admin.clone(),
                    user: member.clone(),
                });
            }
            for user in &g.requests {
                out.push(Record::RequestJoin {
                    group: group(),
                    user: user.clone(),
                });
            }
            for file in g.files.values() {
                out.push(Record::AddFile {
                    group: group(),
                    user: file.owner.clone(),
                    meta: file.meta.clone(),
                });
            }
        }
        out
    }
}
