//! Parsing a [`Record`] from its one line: the inverse of its `Display`, and strict, so that
//! a record has exactly one text (a journal's checksum covers that text).

use super::*;

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
                let iterations = digits
                    .then(|| args[1].parse().ok())
                    .flatten()
                    .ok_or_else(|| bad("the iteration count must be a number"))?;
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
