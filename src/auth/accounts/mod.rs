//! The accounts and groups of Mini-Torrent as one plain value: users (their SCRAM
//! [`Credentials`], never a password), groups (admin, members, pending join requests) and each
//! group's own file list.
//!
//! Every change is a [`Record`], applied by [`Accounts::apply`]. Applying is deterministic: the
//! same records in the same order give the same state, which is what lets a journal (and later
//! Raft) rebuild it by replay. [`Accounts::check`] runs the same rules without changing
//! anything, so a leader can validate a record before it makes it durable, and tells whether
//! the record would change anything at all (asking twice to join is not an error).
//! Each record has a one-line text form (`Display` and `FromStr`, exact round trip), printable
//! ASCII, with keys and salt in base64: a journal line today, a protocol line later.
//!
//! `record.rs` holds the records, their lines, replay and snapshot records; `error.rs` the
//! refusals; this file the state, its queries and the rules. The module owns the rules and
//! nothing else: no socket, no file, no clock, no randomness, no logins (who is logged in,
//! and which peer holds what, is the tracker's soft state).
//!
//! Invariants, after any sequence of successful `apply`s (tests check them after every step):
//! - a group's admin is one of its members;
//! - nobody is both a member and a pending requester of a group;
//! - every member, requester and admin is a user;
//! - every file in a group's list was uploaded by a current member (its `owner`): when a member
//!   leaves, the admin becomes the owner of what they uploaded, so the list stays whole;
//! - a group whose last member (its admin) leaves is gone, with its file list.

use std::collections::{BTreeMap, BTreeSet};

use super::scram::Credentials;
use crate::protocol::{Meta, check_name};

mod error;
mod record;

pub use error::{Already, AuthError, Effect};
pub use record::Record;

/// Longest user or group name, in bytes.
pub const MAX_ID: usize = 64;

/// A file in a group's list: what it is, and who put it there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupFile {
    pub meta: Meta,
    /// The member who uploaded it (or the admin, once that member has left).
    pub owner: String,
}

/// One group. Sorted sets and maps, so listings and snapshots come out in a stable order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// The creator; always one of `members`.
    pub admin: String,
    pub members: BTreeSet<String>,
    /// Users who asked to join and have not been accepted yet.
    pub requests: BTreeSet<String>,
    /// File name → file. Names are per group: two groups may each have a `notes.txt`.
    pub files: BTreeMap<String, GroupFile>,
}

/// All users and groups. `BTreeMap` rather than `HashMap` so that iteration order, and with it
/// every listing and snapshot, is the same on every run and every replica.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Accounts {
    users: BTreeMap<String, Credentials>,
    groups: BTreeMap<String, Group>,
}

/// Is `id` a name a user or a group may have? 1 to [`MAX_ID`] printable ASCII bytes, no
/// spaces (it is one word on a line), no `/` or `\`, not starting with `.` (a peer may one day
/// use a group name as a folder name).
pub fn check_id(what: &'static str, id: &str) -> Result<(), AuthError> {
    let why = if id.is_empty() {
        "is empty"
    } else if id.len() > MAX_ID {
        "is longer than 64 bytes"
    } else if !id.bytes().all(|b| b.is_ascii_graphic()) {
        "has a space, a control character or a non-ASCII byte"
    } else if id.contains(['/', '\\']) {
        "contains a path separator"
    } else if id.starts_with('.') {
        "starts with '.'"
    } else {
        return Ok(());
    };
    let shown: String = id.chars().take(MAX_ID).collect();
    Err(AuthError::BadName(format!("{what} name {shown:?} {why}")))
}

impl Accounts {
    /// No users, no groups.
    pub fn new() -> Accounts {
        Accounts::default()
    }

    /// The stored credentials of `user`, for the SCRAM server.
    pub fn credentials(&self, user: &str) -> Option<&Credentials> {
        self.users.get(user)
    }

    /// Every group, by name (`list_groups` is open to everyone).
    pub fn groups(&self) -> impl Iterator<Item = (&str, &Group)> {
        self.groups.iter().map(|(name, g)| (name.as_str(), g))
    }

    /// One group, if it exists.
    pub fn group(&self, group: &str) -> Option<&Group> {
        self.groups.get(group)
    }

    /// True when `user` is a member of `group`.
    pub fn is_member(&self, group: &str, user: &str) -> bool {
        self.groups
            .get(group)
            .is_some_and(|g| g.members.contains(user))
    }

    /// The groups `user` belongs to (a peer re-announces its files in these at login).
    pub fn groups_of(&self, user: &str) -> Vec<&str> {
        self.groups()
            .filter(|(_, g)| g.members.contains(user))
            .map(|(name, _)| name)
            .collect()
    }

    /// `list_requests`: the pending requests of `group`, for its admin only.
    pub fn list_requests(&self, group: &str, user: &str) -> Result<Vec<&str>, AuthError> {
        let g = self.as_admin(group, user)?;
        Ok(g.requests.iter().map(String::as_str).collect())
    }

    /// `list_files`: the files of `group`, for its members only.
    pub fn list_files(&self, group: &str, user: &str) -> Result<Vec<&GroupFile>, AuthError> {
        Ok(self.as_member(group, user)?.files.values().collect())
    }

    /// One file of `group`, for its members only (`download_file`, and minting a ticket).
    pub fn file(&self, group: &str, user: &str, name: &str) -> Result<&GroupFile, AuthError> {
        self.as_member(group, user)?
            .files
            .get(name)
            .ok_or_else(|| AuthError::NoFile {
                group: group.into(),
                name: name.into(),
            })
    }

    fn user(&self, user: &str) -> Result<(), AuthError> {
        if self.users.contains_key(user) {
            Ok(())
        } else {
            Err(AuthError::NoUser(user.into()))
        }
    }

    /// The group, after checking that the user and the group exist.
    fn existing(&self, group: &str, user: &str) -> Result<&Group, AuthError> {
        self.user(user)?;
        self.groups
            .get(group)
            .ok_or_else(|| AuthError::NoGroup(group.into()))
    }

    fn as_member(&self, group: &str, user: &str) -> Result<&Group, AuthError> {
        let g = self.existing(group, user)?;
        if !g.members.contains(user) {
            return Err(AuthError::NotMember {
                group: group.into(),
                user: user.into(),
            });
        }
        Ok(g)
    }

    fn as_admin(&self, group: &str, user: &str) -> Result<&Group, AuthError> {
        let g = self.existing(group, user)?;
        if g.admin != user {
            return Err(AuthError::NotAdmin {
                group: group.into(),
                admin: g.admin.clone(),
            });
        }
        Ok(g)
    }

    /// Would `record` be accepted, and would it change anything? Changes nothing itself.
    pub fn check(&self, record: &Record) -> Result<Effect, AuthError> {
        use Record::*;
        match record {
            CreateUser { user, credentials } => {
                check_id("user", user)?;
                credentials.check().map_err(AuthError::BadCredentials)?;
                if self.users.contains_key(user) {
                    return Err(AuthError::Exists {
                        what: "user",
                        name: user.clone(),
                    });
                }
            }
            CreateGroup { group, admin } => {
                check_id("group", group)?;
                self.user(admin)?;
                if self.groups.contains_key(group) {
                    return Err(AuthError::Exists {
                        what: "group",
                        name: group.clone(),
                    });
                }
            }
            RequestJoin { group, user } => {
                let g = self.existing(group, user)?;
                if g.members.contains(user) {
                    return Ok(Effect::Unchanged(Already::Member));
                }
                if g.requests.contains(user) {
                    return Ok(Effect::Unchanged(Already::Requested));
                }
            }
            Accept { group, admin, user } => {
                let g = self.as_admin(group, admin)?;
                if !g.requests.contains(user) {
                    return Err(AuthError::NoRequest {
                        group: group.clone(),
                        user: user.clone(),
                    });
                }
            }
            Leave { group, user } => {
                let g = self.existing(group, user)?;
                if g.members.contains(user) {
                    if g.admin == *user && g.members.len() > 1 {
                        return Err(AuthError::AdminStays {
                            group: group.clone(),
                            others: g.members.len() - 1,
                        });
                    }
                } else if !g.requests.contains(user) {
                    return Err(AuthError::NotMember {
                        group: group.clone(),
                        user: user.clone(),
                    });
                }
            }
            AddFile { group, user, meta } => {
                check_name(&meta.name).map_err(|e| AuthError::BadName(e.message))?;
                let g = self.as_member(group, user)?;
                if let Some(have) = g.files.get(&meta.name) {
                    if have.meta.same_content(meta) {
                        return Ok(Effect::Unchanged(Already::SameFile));
                    }
                    return Err(AuthError::Conflict {
                        group: group.clone(),
                        name: meta.name.clone(),
                    });
                }
            }
            RemoveFile { group, user, name } => {
                let g = self.as_member(group, user)?;
                let file = g.files.get(name).ok_or_else(|| AuthError::NoFile {
                    group: group.clone(),
                    name: name.clone(),
                })?;
                if file.owner != *user && g.admin != *user {
                    return Err(AuthError::NotOwner {
                        group: group.clone(),
                        name: name.clone(),
                        owner: file.owner.clone(),
                    });
                }
            }
        }
        Ok(Effect::Change)
    }

    /// Check `record` and, if it is accepted, apply it. A refused record changes nothing.
    pub fn apply(&mut self, record: &Record) -> Result<(), AuthError> {
        if self.check(record)? != Effect::Change {
            return Ok(());
        }
        use Record::*;
        // `check` has just confirmed that every group named below exists; `let Some(..) else`
        // keeps this free of panics all the same.
        match record {
            CreateUser { user, credentials } => {
                self.users.insert(user.clone(), credentials.clone());
            }
            CreateGroup { group, admin } => {
                let group_value = Group {
                    admin: admin.clone(),
                    members: BTreeSet::from([admin.clone()]),
                    requests: BTreeSet::new(),
                    files: BTreeMap::new(),
                };
                self.groups.insert(group.clone(), group_value);
            }
            RequestJoin { group, user } => {
                if let Some(g) = self.groups.get_mut(group) {
                    g.requests.insert(user.clone());
                }
            }
            Accept { group, user, .. } => {
                if let Some(g) = self.groups.get_mut(group) {
                    g.requests.remove(user);
                    g.members.insert(user.clone());
                }
            }
            Leave { group, user } => {
                let Some(g) = self.groups.get_mut(group) else {
                    return Ok(());
                };
                if g.requests.remove(user) {
                    return Ok(());
                }
                if g.admin == *user {
                    // The admin is the last member: the group goes.
                    self.groups.remove(group);
                    return Ok(());
                }
                g.members.remove(user);
                for file in g.files.values_mut() {
                    if file.owner == *user {
                        file.owner = g.admin.clone();
                    }
                }
            }
            AddFile { group, user, meta } => {
                if let Some(g) = self.groups.get_mut(group) {
                    let file = GroupFile {
                        meta: meta.clone(),
                        owner: user.clone(),
                    };
                    g.files.insert(meta.name.clone(), file);
                }
            }
            RemoveFile { group, name, .. } => {
                if let Some(g) = self.groups.get_mut(group) {
                    g.files.remove(name);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod replay_tests;
