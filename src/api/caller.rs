//! Who a request comes from, and what they may do. The user is the one of the
//! request's auth token (metadata `token`, or `authorization` as the JSON
//! gateway passes it), else the common name of a verified client certificate,
//! else nobody. Reads are checked here against the auth rules this member has
//! applied; writes carry the user into the log and are checked when applied.

use prost::Message;
use tonic::{Request, Status};

use super::{Context, EtcdError};
use crate::apply::Command;
use crate::auth::{AuthError, Need, TokenKind};

/// The authenticated user of a request, if any.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub user: Option<String>,
}

/// The common name of the first certificate the client presented.
fn certificate_user<T>(request: &Request<T>) -> Option<String> {
    let certs = request.peer_certs()?;
    let (_, cert) = x509_parser::parse_x509_certificate(certs.first()?.as_ref()).ok()?;
    let name = cert.subject().iter_common_name().next()?.as_str().ok()?;
    Some(name.to_string())
}

impl Context {
    /// The caller of `request`. Without auth nobody is checked and tokens are
    /// ignored, as in etcd; with it, a token that is unknown or expired fails.
    pub async fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        if !self.applier.read().auth().enabled() {
            return Ok(Caller::default());
        }
        let metadata = request.metadata();
        let token = metadata
            .get("token")
            .or_else(|| metadata.get("authorization"))
            .and_then(|v| v.to_str().ok());
        let Some(token) = token else {
            return Ok(Caller {
                user: certificate_user(request),
            });
        };
        let user = match &self.tokens.kind {
            TokenKind::Simple => {
                let known = self.applier.read().auth().user_of_token(token);
                match known {
                    Some(user) => Some(user),
                    // Issued through another member moments ago: catch up with the log first.
                    None => {
                        self.replica.linearize().await?;
                        self.applier.read().auth().user_of_token(token)
                    }
                }
            }
            TokenKind::Jwt(jwt) => match jwt.verify(token) {
                Some(claims) => {
                    // Serve it under rules at least as new as those it was issued under.
                    if claims.revision > self.applier.read().auth().revision() {
                        self.replica.linearize().await?;
                    }
                    Some(claims.username)
                }
                None => None,
            },
        };
        match user {
            Some(user) => Ok(Caller { user: Some(user) }),
            None => Err(AuthError::InvalidAuthToken.into()),
        }
    }

    /// Whether `caller` may do everything in `needs`, by this member's rules.
    pub fn authorize(&self, caller: &Caller, needs: &[Need]) -> Result<(), Status> {
        let applier = self.applier.read();
        let lease_keys = |id: i64| applier.lessor().keys(id);
        applier
            .auth()
            .check(caller.user.as_deref(), needs, &lease_keys)
            .map_err(Status::from)
    }

    /// The check of etcd's admin-only maintenance calls, which report the auth
    /// store's own error text (`auth: permission denied`) with code Unknown.
    pub fn authorize_maintenance(&self, caller: &Caller) -> Result<(), Status> {
        self.applier
            .read()
            .auth()
            .check_admin(caller.user.as_deref())
            .map_err(|e| Status::unknown(format!("auth: {e}")))
    }

    /// Replicates a client's command; it is checked against the auth rules in
    /// force at its place in the log.
    pub async fn propose_as<M: Message + Default>(&self, caller: &Caller, command: Command) -> Result<M, Status> {
        self.propose(Command::As {
            user: caller.user.clone(),
            command: Box::new(command),
        })
        .await
    }
}

impl From<AuthError> for EtcdError {
    fn from(e: AuthError) -> Self {
        EtcdError::Auth(e)
    }
}
