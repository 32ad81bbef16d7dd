//! The SCRAM login and account creation verbs of the accounts service: `SALT`, `CREATE-USER`,
//! `LOGIN`, `PROOF`, `LOGOUT`, and the salts and server nonces they draw.
//!
//! It owns the per-connection login steps; it must never see a password (only SCRAM's derived
//! keys travel), never print a secret, and never touch a socket. An unknown user is answered
//! with decoy credentials so a login does not tell which names exist.

use std::net::IpAddr;
use std::time::Instant;

use super::{Auth, AuthConn, auth_err, err, lock, urandom};
use crate::auth::accounts::{AuthError, Record};
use crate::auth::scram::{self, Credentials, ScramError};
use crate::auth::ticket::TicketKey;
use crate::auth::{base64, hmac::hmac_sha1};
use crate::protocol::{ErrCode, ProtoError, Reply};

fn scram_err(e: ScramError) -> ProtoError {
    let code = match e {
        ScramError::InvalidProof => ErrCode::InvalidProof,
        _ => ErrCode::BadLogin,
    };
    err(code, e.to_string())
}

impl Auth {
    fn salt_for(&self, user: &str) -> Result<Vec<u8>, ProtoError> {
        match self.config.test_seed {
            Some(seed) => Ok(
                hmac_sha1(&seed.to_be_bytes(), format!("salt,{user}").as_bytes())[..16].to_vec(),
            ),
            None => urandom(16).map_err(|e| err(ErrCode::Internal, format!("no randomness: {e}"))),
        }
    }

    fn nonce_for(&self, client_nonce: &str) -> Result<String, ProtoError> {
        let bytes = match self.config.test_seed {
            Some(seed) => hmac_sha1(&seed.to_be_bytes(), client_nonce.as_bytes())[..18].to_vec(),
            None => {
                urandom(18).map_err(|e| err(ErrCode::Internal, format!("no randomness: {e}")))?
            }
        };
        Ok(base64::encode(&bytes))
    }

    /// `SALT <user>`: a salt for a new user, kept on this connection for `CREATE-USER`.
    pub(super) fn salt(&self, conn: &mut AuthConn, user: String) -> Result<Reply, ProtoError> {
        crate::auth::accounts::check_id("user", &user).map_err(auth_err)?;
        if lock(&self.state).credentials(&user).is_some() {
            return Err(auth_err(AuthError::Exists {
                what: "user",
                name: user,
            }));
        }
        let salt = self.salt_for(&user)?;
        let reply = format!(
            "salt={} i={}",
            base64::encode(&salt),
            self.config.iterations
        );
        conn.salt = Some((user, salt));
        Ok(Reply::Ack(reply))
    }

    /// `CREATE-USER <user> <stored-key> <server-key>`: the keys the client derived with this
    /// connection's salt.
    pub(super) fn create_user(
        &self,
        conn: &mut AuthConn,
        user: String,
        stored_key: [u8; 20],
        server_key: [u8; 20],
    ) -> Result<Reply, ProtoError> {
        let salt = match conn.salt.take() {
            Some((u, salt)) if u == user => salt,
            _ => {
                return Err(err(
                    ErrCode::BadRequest,
                    format!("ask SALT {user} first on this connection"),
                ));
            }
        };
        let credentials = Credentials {
            salt,
            iterations: self.config.iterations,
            stored_key,
            server_key,
        };
        let record = Record::CreateUser {
            user: user.clone(),
            credentials,
        };
        self.mutate(record)?;
        Ok(Reply::Ack(format!("created user {user}")))
    }

    /// `LOGIN <client-first>`: SCRAM's first step; the server's state waits on this connection.
    pub(super) fn login(
        &self,
        conn: &mut AuthConn,
        ip: IpAddr,
        first: String,
    ) -> Result<Reply, ProtoError> {
        let first = scram::read_client_first(&first).map_err(scram_err)?;
        let now = Instant::now();
        if let Some(wait) = lock(&self.sessions).slow_down(&first.user, ip, now) {
            return Err(err(
                ErrCode::SlowDown,
                format!(
                    "too many failed logins; try again in {} s",
                    wait.as_secs_f64().ceil()
                ),
            ));
        }
        if lock(&self.sessions).busy(&first.user, conn.serial) {
            return Err(err(
                ErrCode::LoggedIn,
                format!("{} is logged in on another connection", first.user),
            ));
        }
        // An unknown user gets decoy credentials: the exchange runs on to
        // invalid-proof, so LOGIN does not tell which names exist.
        let credentials = lock(&self.state)
            .credentials(&first.user)
            .cloned()
            .unwrap_or_else(|| {
                Credentials::decoy(&first.user, &self.decoy_secret, self.config.iterations)
            });
        let server = scram::Server::new(&first, &credentials, &self.nonce_for(&first.nonce)?)
            .map_err(scram_err)?;
        let message = server.first_message().to_string();
        conn.login = Some((first.user, server));
        Ok(Reply::Ack(message))
    }

    /// `PROOF <client-final>`: SCRAM's last step; on success this connection is logged in.
    pub(super) fn proof(
        &self,
        conn: &mut AuthConn,
        ip: IpAddr,
        last: String,
    ) -> Result<Reply, ProtoError> {
        let (user, server) = conn
            .login
            .take()
            .ok_or_else(|| err(ErrCode::BadLogin, "send LOGIN first"))?;
        let done = match server.read_client_final(&last) {
            Ok(done) => done,
            Err(e) => {
                if e == ScramError::InvalidProof {
                    lock(&self.sessions).failed(&user, ip, Instant::now());
                }
                return Err(scram_err(e));
            }
        };
        if let Some(old) = conn.user.take() {
            lock(&self.sessions).logout(&old, conn.serial);
        }
        let mut sessions = lock(&self.sessions);
        sessions.succeeded(&user);
        let key = TicketKey::from_session(&done.session);
        if !sessions.login(&user, conn.serial, key) {
            return Err(err(
                ErrCode::LoggedIn,
                format!("{user} is logged in on another connection"),
            ));
        }
        drop(sessions);
        conn.user = Some(user.clone());
        Ok(Reply::Ack(format!("WELCOME {user} {}", done.message)))
    }

    /// `LOGOUT`.
    pub(super) fn logout(&self, conn: &mut AuthConn) -> Result<Reply, ProtoError> {
        let user = self.user(conn)?.to_string();
        self.end(conn);
        Ok(Reply::Ack(format!("logged out {user}")))
    }
}
