//! The group verbs of the accounts service: creating, joining, leaving and accepting
//! (durable, through `mutate`), the lists (`REQUESTS`, `GROUPS`, `FILES`), and group files
//! (`GUPLOAD`, `GREMOVE`, `GWHOHAS`, `GINFO`) and `VOUCH`.
//!
//! A change goes through `Auth::mutate` (check, journal, apply) and nowhere else; it must never
//! write the accounts state directly, touch a socket, or hold a lock across I/O.

use std::net::IpAddr;

use super::{Auth, AuthConn, auth_err, err, lock};
use crate::auth::accounts::{AuthError, Effect, Record};
use crate::protocol::{ErrCode, Meta, ProtoError, Reply};
use crate::tracker::holders::{Asker, Holders};

fn words(label: &str, items: impl Iterator<Item = String>) -> Reply {
    let list: Vec<String> = items.collect();
    if list.is_empty() {
        Reply::Ack(format!("{label}: none"))
    } else {
        Reply::Ack(format!("{label}: {}", list.join(" ")))
    }
}

impl Auth {
    /// `CREATE-GROUP <group>`: the user creating it is its admin.
    pub(super) fn create_group(&self, conn: &AuthConn, group: String) -> Result<Reply, ProtoError> {
        let admin = self.user(conn)?.to_string();
        self.mutate(Record::CreateGroup {
            group: group.clone(),
            admin,
        })?;
        Ok(Reply::Ack(format!(
            "created group {group}; you are its admin"
        )))
    }

    /// `JOIN <group>`: file a join request.
    pub(super) fn join(&self, conn: &AuthConn, group: String) -> Result<Reply, ProtoError> {
        let user = self.user(conn)?.to_string();
        let record = Record::RequestJoin {
            group: group.clone(),
            user,
        };
        match self.mutate(record)? {
            Effect::Unchanged(already) => Ok(Reply::Ack(already.to_string())),
            Effect::Change => Ok(Reply::Ack(format!(
                "asked to join {group}; its admin must accept"
            ))),
        }
    }

    /// `LEAVE <group>`: leave it, or withdraw the request to join.
    pub(super) fn leave(&self, conn: &AuthConn, group: String) -> Result<Reply, ProtoError> {
        let user = self.user(conn)?.to_string();
        let member = lock(&self.state).is_member(&group, &user);
        self.mutate(Record::Leave {
            group: group.clone(),
            user: user.clone(),
        })?;
        lock(&self.sessions).left(&group, &user);
        if member {
            Ok(Reply::Ack(format!("left {group}")))
        } else {
            Ok(Reply::Ack(format!("withdrew the request to join {group}")))
        }
    }

    /// `REQUESTS <group>`: the pending join requests (admin only).
    pub(super) fn requests(&self, conn: &AuthConn, group: String) -> Result<Reply, ProtoError> {
        let user = self.user(conn)?;
        let state = lock(&self.state);
        let list = state.list_requests(&group, user).map_err(auth_err)?;
        Ok(words("requests", list.into_iter().map(str::to_string)))
    }

    /// `ACCEPT <group> <user>`: the admin lets a requester in.
    pub(super) fn accept(
        &self,
        conn: &AuthConn,
        group: String,
        user: String,
    ) -> Result<Reply, ProtoError> {
        let admin = self.user(conn)?.to_string();
        self.mutate(Record::Accept {
            group: group.clone(),
            admin,
            user: user.clone(),
        })?;
        Ok(Reply::Ack(format!("{user} is now a member of {group}")))
    }

    /// `GROUPS`: every group.
    pub(super) fn groups(&self) -> Reply {
        let state = lock(&self.state);
        words("groups", state.groups().map(|(g, _)| g.to_string()))
    }

    /// `FILES <group>`: the group's file names (members only).
    pub(super) fn files(&self, conn: &AuthConn, group: String) -> Result<Reply, ProtoError> {
        let user = self.user(conn)?;
        let state = lock(&self.state);
        let files = state.list_files(&group, user).map_err(auth_err)?;
        Ok(words(
            "files",
            files.into_iter().map(|f| f.meta.name.clone()),
        ))
    }

    /// `GUPLOAD <group> <meta...>`: this connection's peer shares a file in the group.
    pub(super) fn gupload(
        &self,
        conn: &AuthConn,
        peer: Option<&str>,
        group: String,
        meta: Meta,
    ) -> Result<Reply, ProtoError> {
        let user = self.user(conn)?.to_string();
        let holder =
            peer.ok_or_else(|| err(ErrCode::NotRegistered, "send REGISTER <port> first"))?;
        let record = Record::AddFile {
            group: group.clone(),
            user: user.clone(),
            meta: meta.clone(),
        };
        self.mutate(record)?;
        lock(&self.sessions).hold(&group, &meta.name, holder, &user);
        Ok(Reply::Ack(format!("{group} {} {}", meta.name, meta.sha1)))
    }

    /// `GREMOVE <group> <name>`: this connection's peer stops holding a group file.
    pub(super) fn gremove(
        &self,
        conn: &AuthConn,
        peer: Option<&str>,
        group: String,
        name: String,
    ) -> Result<Reply, ProtoError> {
        self.user(conn)?;
        let holder =
            peer.ok_or_else(|| err(ErrCode::NotRegistered, "send REGISTER <port> first"))?;
        if !lock(&self.sessions).unhold(&group, &name, holder) {
            return Err(err(
                ErrCode::NotFound,
                format!("you do not share {name} in {group}"),
            ));
        }
        Ok(Reply::Ack(format!("{group} {name} removed")))
    }

    /// `GWHOHAS <group> <name>`: the online holders of a group file (members only), by the
    /// rules of `WHOHAS`.
    pub(super) fn gwhohas(
        &self,
        conn: &mut AuthConn,
        ip: IpAddr,
        peer: Option<&str>,
        group: String,
        name: String,
    ) -> Result<Reply, ProtoError> {
        let user = self.user(conn)?;
        lock(&self.state)
            .file(&group, user, &name)
            .map_err(auth_err)?;
        let holders = lock(&self.sessions).holders(&group, &name);
        if holders.is_empty() {
            return Err(err(
                ErrCode::NotFound,
                format!("no peer online holds {name} in {group}"),
            ));
        }
        // The rules of `WHOHAS`: reachable holders only, at most a reply's worth.
        let asker = Asker {
            ip,
            me: peer,
            turn: conn.turns.take(),
        };
        let holders = Holders::full_of(holders.iter().map(String::as_str));
        Ok(Reply::Peers(holders.pick(&name, &asker)?))
    }

    /// `GINFO <group> <name>`: what the group file is (members only).
    pub(super) fn ginfo(
        &self,
        conn: &AuthConn,
        group: String,
        name: String,
    ) -> Result<Reply, ProtoError> {
        let user = self.user(conn)?;
        let state = lock(&self.state);
        Ok(Reply::File(
            state
                .file(&group, user, &name)
                .map_err(auth_err)?
                .meta
                .clone(),
        ))
    }

    /// `VOUCH <group> <user>`: a holder asks whether `user` is still a member.
    pub(super) fn vouch(
        &self,
        conn: &AuthConn,
        group: String,
        user: String,
    ) -> Result<Reply, ProtoError> {
        let me = self.user(conn)?;
        let state = lock(&self.state);
        if !state.is_member(&group, me) {
            return Err(auth_err(AuthError::NotMember {
                group,
                user: me.to_string(),
            }));
        }
        if !state.is_member(&group, &user) {
            return Err(auth_err(AuthError::NotMember { group, user }));
        }
        Ok(Reply::Ack(format!("{user} is a member of {group}")))
    }
}
