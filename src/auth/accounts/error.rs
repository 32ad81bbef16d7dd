//! Why a change to the accounts is refused, or why it changes nothing: the codes a client
//! branches on and the messages a person reads. No rules live here, only their outcomes.

use std::fmt;

/// What a valid record would do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// It changes the state: make it durable, then apply it.
    Change,
    /// Nothing to do (not an error); tell the user why. Applying it is harmless.
    Unchanged(Already),
}

/// Why a valid record changes nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Already {
    /// The user has a pending request to join already.
    Requested,
    /// The user is a member already.
    Member,
    /// The group already lists a file of that name with the same content.
    SameFile,
}

impl fmt::Display for Already {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Already::Requested => "you have already asked to join; the admin has not answered yet",
            Already::Member => "you are already a member of this group",
            Already::SameFile => "this group already lists that file with the same content",
        })
    }
}

/// Why a record or a query is refused. [`AuthError::code`] is the word for `ERR <code>`;
/// `Display` is a message for the person who typed the command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthError {
    /// A user, group or file name that is not allowed.
    BadName(String),
    /// Stored credentials out of range (salt length, iteration count).
    BadCredentials(&'static str),
    /// A user or group of that name exists already.
    Exists {
        what: &'static str,
        name: String,
    },
    NoUser(String),
    NoGroup(String),
    NotMember {
        group: String,
        user: String,
    },
    NotAdmin {
        group: String,
        admin: String,
    },
    NoRequest {
        group: String,
        user: String,
    },
    /// The admin tried to leave while `others` other members remain.
    AdminStays {
        group: String,
        others: usize,
    },
    NoFile {
        group: String,
        name: String,
    },
    /// The group lists another file under that name.
    Conflict {
        group: String,
        name: String,
    },
    /// Only the uploader or the admin may take a file off a group's list.
    NotOwner {
        group: String,
        name: String,
        owner: String,
    },
    /// A record line that does not parse (journal or wire).
    BadRecord(String),
}

impl AuthError {
    /// A stable lowercase word for `ERR <code> <message>`.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::BadName(_) => "bad-name",
            AuthError::BadCredentials(_) => "bad-credentials",
            AuthError::Exists { .. } => "exists",
            AuthError::NoUser(_) => "no-user",
            AuthError::NoGroup(_) => "no-group",
            AuthError::NotMember { .. } => "not-member",
            AuthError::NotAdmin { .. } => "not-admin",
            AuthError::NoRequest { .. } => "no-request",
            AuthError::AdminStays { .. } => "admin-stays",
            AuthError::NoFile { .. } => "not-found",
            AuthError::Conflict { .. } => "conflict",
            AuthError::NotOwner { .. } => "not-owner",
            AuthError::BadRecord(_) => "bad-record",
        }
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            AuthError::BadName(why) => f.write_str(why),
            AuthError::BadCredentials(why) => write!(f, "unacceptable credentials: {why}"),
            AuthError::Exists { what, name } => {
                write!(f, "{what} {name} exists already; choose another name")
            }
            AuthError::NoUser(user) => write!(f, "no user {user}; create it with create_user"),
            AuthError::NoGroup(group) => write!(f, "no group {group}; see list_groups"),
            AuthError::NotMember { group, user } => write!(
                f,
                "{user} is not a member of group {group}; ask to join with join_group {group}"
            ),
            AuthError::NotAdmin { group, admin } => {
                write!(f, "only the admin of group {group} ({admin}) can do that")
            }
            AuthError::NoRequest { group, user } => {
                write!(f, "{user} has no pending request to join group {group}")
            }
            AuthError::AdminStays { group, others } => write!(
                f,
                "the admin cannot leave group {group} while {others} other member(s) remain"
            ),
            AuthError::NoFile { group, name } => write!(f, "group {group} has no file {name}"),
            AuthError::Conflict { group, name } => write!(
                f,
                "group {group} already has a different file named {name}; rename yours"
            ),
            AuthError::NotOwner { group, name, owner } => write!(
                f,
                "only {owner}, who shared {name}, or the admin can remove it from group {group}"
            ),
            AuthError::BadRecord(why) => write!(f, "bad record: {why}"),
        }
    }
}

impl std::error::Error for AuthError {}
