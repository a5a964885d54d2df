//! etcd's Auth service: turning auth on and off, authenticating, and managing
//! users and roles. Changes go through the log and are checked there (only the
//! root role may make them once auth is on); reads are answered from this
//! member's state after a read barrier.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::caller::Caller;
use super::{Context, EtcdError};
use crate::apply::Command;
use crate::auth::{new_simple_token, password, AuthCommand, AuthError, TokenKind};
use crate::proto::etcdserverpb::auth_server::Auth;
use crate::proto::etcdserverpb::*;

pub struct AuthService {
    context: Arc<Context>,
    /// Numbers the simple tokens this member hands out.
    issued: AtomicU64,
}

impl AuthService {
    pub fn new(context: Arc<Context>) -> Self {
        AuthService {
            context,
            issued: AtomicU64::new(0),
        }
    }

    /// Proposes an auth change as the caller of `request`; `M` is its (header-only) response.
    async fn change<M: prost::Message + Default + HasHeader, T>(
        &self,
        request: &Request<T>,
        change: AuthCommand,
    ) -> Result<Response<M>, Status> {
        let caller = self.context.caller(request).await?;
        let mut response: M = self.context.propose_as(&caller, Command::Auth(change)).await?;
        self.context.fill(response.header_mut());
        Ok(Response::new(response))
    }

    /// The caller, once this member has applied everything committed before the request.
    async fn reader<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let caller = self.context.caller(request).await?;
        self.context.replica.linearize().await?;
        Ok(caller)
    }

    fn admin(&self, caller: &Caller) -> Result<(), Status> {
        Ok(self.context.applier.read().auth().check_admin(caller.user.as_deref())?)
    }
}

/// Auth responses all carry a header.
trait HasHeader {
    fn header_mut(&mut self) -> &mut Option<ResponseHeader>;
}

macro_rules! has_header {
    ($($t:ty),*) => {$(
        impl HasHeader for $t {
            fn header_mut(&mut self) -> &mut Option<ResponseHeader> {
                &mut self.header
            }
        }
    )*};
}

has_header!(
    AuthEnableResponse,
    AuthDisableResponse,
    AuthUserAddResponse,
    AuthUserDeleteResponse,
    AuthUserChangePasswordResponse,
    AuthUserGrantRoleResponse,
    AuthUserRevokeRoleResponse,
    AuthRoleAddResponse,
    AuthRoleDeleteResponse,
    AuthRoleGrantPermissionResponse,
    AuthRoleRevokePermissionResponse
);

/// bcrypt is slow on purpose: hash off the async workers.
async fn hash(password: String, cost: u32) -> Result<String, Status> {
    tokio::task::spawn_blocking(move || password::hash(&password, cost))
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(|e| EtcdError::Internal(format!("etcdserver: {e}")).into())
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn auth_enable(&self, request: Request<AuthEnableRequest>) -> Result<Response<AuthEnableResponse>, Status> {
        self.change(&request, AuthCommand::Enable).await
    }

    async fn auth_disable(
        &self,
        request: Request<AuthDisableRequest>,
    ) -> Result<Response<AuthDisableResponse>, Status> {
        self.change(&request, AuthCommand::Disable).await
    }

    async fn auth_status(&self, _: Request<AuthStatusRequest>) -> Result<Response<AuthStatusResponse>, Status> {
        self.context.replica.linearize().await?;
        let (enabled, auth_revision) = {
            let applier = self.context.applier.read();
            (applier.auth().enabled(), applier.auth().revision())
        };
        Ok(Response::new(AuthStatusResponse {
            header: self.context.header_now(),
            enabled,
            auth_revision,
        }))
    }

    async fn authenticate(
        &self,
        request: Request<AuthenticateRequest>,
    ) -> Result<Response<AuthenticateResponse>, Status> {
        let AuthenticateRequest { name, password } = request.into_inner();
        self.context.replica.linearize().await?;
        let (enabled, stored, revision) = {
            let applier = self.context.applier.read();
            let auth = applier.auth();
            (auth.enabled(), auth.password_hash(&name), auth.revision())
        };
        if !enabled {
            return Err(AuthError::AuthNotEnabled.into());
        }
        let stored = stored.ok_or(AuthError::AuthFailed)?;
        let check = stored.clone();
        let matches = tokio::task::spawn_blocking(move || password::verify(&password, &check))
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        if !matches {
            return Err(AuthError::AuthFailed.into());
        }
        let token = match &self.context.tokens.kind {
            TokenKind::Simple => {
                let token = new_simple_token(self.issued.fetch_add(1, Ordering::Relaxed) + 1);
                let assign = AuthCommand::Authenticate {
                    name: name.clone(),
                    hash: stored,
                    token: token.clone(),
                };
                let _: AuthEnableResponse = self.context.propose(Command::Auth(assign)).await?;
                token
            }
            TokenKind::Jwt(jwt) => jwt
                .sign(&name, revision)
                .map_err(|e| EtcdError::Internal(format!("etcdserver: {e}")))?,
        };
        tracing::debug!(user = %name, "authenticated");
        Ok(Response::new(AuthenticateResponse {
            header: self.context.header_now(),
            token,
        }))
    }

    async fn user_add(&self, request: Request<AuthUserAddRequest>) -> Result<Response<AuthUserAddResponse>, Status> {
        let r = request.get_ref();
        let no_password = r.options.as_ref().is_some_and(|o| o.no_password);
        let hash = if no_password {
            None
        } else if !r.hashed_password.is_empty() {
            Some(r.hashed_password.clone())
        } else {
            Some(hash(r.password.clone(), self.context.bcrypt_cost).await?)
        };
        let name = r.name.clone();
        self.change(&request, AuthCommand::UserAdd { name, hash }).await
    }

    async fn user_get(&self, request: Request<AuthUserGetRequest>) -> Result<Response<AuthUserGetResponse>, Status> {
        let caller = self.reader(&request).await?;
        let name = &request.get_ref().name;
        if caller.user.as_ref() != Some(name) {
            self.admin(&caller)?;
        }
        let roles = self.context.applier.read().auth().user_roles(name)?;
        Ok(Response::new(AuthUserGetResponse {
            header: self.context.header_now(),
            roles,
        }))
    }

    async fn user_list(&self, request: Request<AuthUserListRequest>) -> Result<Response<AuthUserListResponse>, Status> {
        let caller = self.reader(&request).await?;
        self.admin(&caller)?;
        let users = self.context.applier.read().auth().user_names();
        Ok(Response::new(AuthUserListResponse {
            header: self.context.header_now(),
            users,
        }))
    }

    async fn user_delete(
        &self,
        request: Request<AuthUserDeleteRequest>,
    ) -> Result<Response<AuthUserDeleteResponse>, Status> {
        let name = request.get_ref().name.clone();
        self.change(&request, AuthCommand::UserDelete { name }).await
    }

    async fn user_change_password(
        &self,
        request: Request<AuthUserChangePasswordRequest>,
    ) -> Result<Response<AuthUserChangePasswordResponse>, Status> {
        let r = request.get_ref();
        let hash = if r.hashed_password.is_empty() {
            hash(r.password.clone(), self.context.bcrypt_cost).await?
        } else {
            r.hashed_password.clone()
        };
        let name = r.name.clone();
        self.change(&request, AuthCommand::UserChangePassword { name, hash })
            .await
    }

    async fn user_grant_role(
        &self,
        request: Request<AuthUserGrantRoleRequest>,
    ) -> Result<Response<AuthUserGrantRoleResponse>, Status> {
        let AuthUserGrantRoleRequest { user, role } = request.get_ref().clone();
        self.change(&request, AuthCommand::UserGrantRole { user, role }).await
    }

    async fn user_revoke_role(
        &self,
        request: Request<AuthUserRevokeRoleRequest>,
    ) -> Result<Response<AuthUserRevokeRoleResponse>, Status> {
        let AuthUserRevokeRoleRequest { name, role } = request.get_ref().clone();
        self.change(&request, AuthCommand::UserRevokeRole { user: name, role })
            .await
    }

    async fn role_add(&self, request: Request<AuthRoleAddRequest>) -> Result<Response<AuthRoleAddResponse>, Status> {
        let name = request.get_ref().name.clone();
        self.change(&request, AuthCommand::RoleAdd { name }).await
    }

    async fn role_get(&self, request: Request<AuthRoleGetRequest>) -> Result<Response<AuthRoleGetResponse>, Status> {
        let caller = self.reader(&request).await?;
        let role = &request.get_ref().role;
        let holds = {
            let applier = self.context.applier.read();
            let auth = applier.auth();
            !auth.enabled()
                || caller
                    .user
                    .as_deref()
                    .and_then(|u| auth.user_roles(u).ok())
                    .is_some_and(|roles| roles.contains(role))
        };
        if !holds {
            self.admin(&caller)?;
        }
        let perm = self.context.applier.read().auth().role_permissions(role)?;
        Ok(Response::new(AuthRoleGetResponse {
            header: self.context.header_now(),
            perm,
        }))
    }

    async fn role_list(&self, request: Request<AuthRoleListRequest>) -> Result<Response<AuthRoleListResponse>, Status> {
        let caller = self.reader(&request).await?;
        self.admin(&caller)?;
        let roles = self.context.applier.read().auth().role_names();
        Ok(Response::new(AuthRoleListResponse {
            header: self.context.header_now(),
            roles,
        }))
    }

    async fn role_delete(
        &self,
        request: Request<AuthRoleDeleteRequest>,
    ) -> Result<Response<AuthRoleDeleteResponse>, Status> {
        let name = request.get_ref().role.clone();
        self.change(&request, AuthCommand::RoleDelete { name }).await
    }

    async fn role_grant_permission(
        &self,
        request: Request<AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<AuthRoleGrantPermissionResponse>, Status> {
        let r = request.get_ref();
        let perm = r
            .perm
            .as_ref()
            .map(|p| (p.perm_type, p.key.clone(), p.range_end.clone()));
        let role = r.name.clone();
        self.change(&request, AuthCommand::RoleGrantPermission { role, perm })
            .await
    }

    async fn role_revoke_permission(
        &self,
        request: Request<AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<AuthRoleRevokePermissionResponse>, Status> {
        let AuthRoleRevokePermissionRequest { role, key, range_end } = request.get_ref().clone();
        self.change(&request, AuthCommand::RoleRevokePermission { role, key, range_end })
            .await
    }
}
