//! The replicated auth store: whether auth is on, its revision, users (with
//! bcrypt hashes and granted roles) and roles (with key permissions). It
//! changes only by applying [`AuthCommand`]s in log order, so every member
//! enforces the same rules from the same log position on; simple tokens are
//! assigned the same way, but live only in memory, as in etcd.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use prost::Message;
use serde::{Deserialize, Serialize};

use super::perms::{covers, Need};
use super::tokens::SimpleTokens;
use super::AuthError;
use crate::mvcc::MvccError;
use crate::proto::authpb::{Permission, Role, User, UserAddOptions};
use crate::storage::Keyspace;

/// The role that may do anything, and the user that must hold it before auth can be enabled.
pub const ROOT: &str = "root";

// The auth records of the state keyspace.
const ENABLED: &[u8] = b"auth/enabled";
const REVISION: &[u8] = b"auth/revision";
const USERS: &[u8] = b"auth/user/";
const ROLES: &[u8] = b"auth/role/";

/// A change to the auth store, as proposed. Passwords arrive already hashed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthCommand {
    Enable,
    Disable,
    UserAdd {
        name: String,
        /// `None`: a user without a password (etcd's `--no-password`).
        hash: Option<String>,
    },
    UserDelete {
        name: String,
    },
    UserChangePassword {
        name: String,
        hash: String,
    },
    UserGrantRole {
        user: String,
        role: String,
    },
    UserRevokeRole {
        user: String,
        role: String,
    },
    RoleAdd {
        name: String,
    },
    RoleDelete {
        name: String,
    },
    RoleGrantPermission {
        role: String,
        perm: Option<(i32, Vec<u8>, Vec<u8>)>,
    },
    RoleRevokePermission {
        role: String,
        key: Vec<u8>,
        range_end: Vec<u8>,
    },
    /// Assigns a simple token to a user whose password was verified against `hash`.
    Authenticate {
        name: String,
        hash: String,
        token: String,
    },
}

#[derive(Default)]
pub struct AuthState {
    enabled: bool,
    revision: u64,
    users: BTreeMap<String, User>,
    roles: BTreeMap<String, Role>,
    dirty: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    tokens: Mutex<SimpleTokens>,
    token_ttl: Duration,
}

fn corrupt(what: &str) -> MvccError {
    MvccError::Storage(format!("corrupt auth record: {what}"))
}

impl AuthState {
    pub fn load(space: &Keyspace) -> Result<Self, MvccError> {
        let mut state = AuthState {
            token_ttl: Duration::from_secs(300),
            ..Default::default()
        };
        state.enabled = space.get(ENABLED)?.is_some_and(|v| v.as_ref() == [1]);
        if let Some(v) = space.get(REVISION)? {
            state.revision = u64::from_be_bytes(v.as_ref().try_into().map_err(|_| corrupt("revision"))?);
        }
        for record in space.scan_prefix(USERS) {
            let (_, value) = record?;
            let user = User::decode(value.as_ref()).map_err(|_| corrupt("user"))?;
            state
                .users
                .insert(String::from_utf8_lossy(&user.name).into_owned(), user);
        }
        for record in space.scan_prefix(ROLES) {
            let (_, value) = record?;
            let role = Role::decode(value.as_ref()).map_err(|_| corrupt("role"))?;
            state
                .roles
                .insert(String::from_utf8_lossy(&role.name).into_owned(), role);
        }
        Ok(state)
    }

    /// Keeps the simple-token lifetime (`--auth-token-ttl`) across reloads.
    pub fn set_token_ttl(&mut self, ttl: Duration) {
        self.token_ttl = ttl;
    }

    pub fn token_ttl(&self) -> Duration {
        self.token_ttl
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Counts every change; tokens and requests carry the revision they were made under.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    pub fn drain_dirty(&mut self) -> impl Iterator<Item = (Vec<u8>, Option<Vec<u8>>)> + '_ {
        self.dirty.drain(..)
    }

    /// The stored hash of a user's password; `None` for unknown users and users without one.
    pub fn password_hash(&self, name: &str) -> Option<String> {
        let user = self.users.get(name)?;
        if user.options.as_ref().is_some_and(|o| o.no_password) || user.password.is_empty() {
            return None;
        }
        Some(String::from_utf8_lossy(&user.password).into_owned())
    }

    /// The user a simple token was assigned to, renewing its lifetime.
    pub fn user_of_token(&self, token: &str) -> Option<String> {
        self.tokens.lock().user_of(token, Instant::now(), self.token_ttl)
    }

    pub fn user_roles(&self, name: &str) -> Result<Vec<String>, AuthError> {
        self.users
            .get(name)
            .map(|u| u.roles.clone())
            .ok_or(AuthError::UserNotFound)
    }

    pub fn user_names(&self) -> Vec<String> {
        self.users.keys().cloned().collect()
    }

    pub fn role_permissions(&self, name: &str) -> Result<Vec<Permission>, AuthError> {
        self.roles
            .get(name)
            .map(|r| r.key_permission.clone())
            .ok_or(AuthError::RoleNotFound)
    }

    pub fn role_names(&self) -> Vec<String> {
        self.roles.keys().cloned().collect()
    }

    fn has_root_role(&self, user: &User) -> bool {
        user.roles.iter().any(|r| r == ROOT)
    }

    /// Whether `user` holds the root role (nothing to check while auth is off).
    pub fn check_admin(&self, user: Option<&str>) -> Result<(), AuthError> {
        self.check(user, &[Need::Admin], &|_| Vec::new())
    }

    /// Whether `user` may do everything in `needs` under the rules in force.
    /// `lease_keys` lists the keys attached to a lease.
    pub fn check(
        &self,
        user: Option<&str>,
        needs: &[Need],
        lease_keys: &dyn Fn(i64) -> Vec<Vec<u8>>,
    ) -> Result<(), AuthError> {
        if !self.enabled {
            return Ok(());
        }
        let name = user.filter(|u| !u.is_empty()).ok_or(AuthError::UserEmpty)?;
        let user = self.users.get(name).ok_or(AuthError::PermissionDenied)?;
        if self.has_root_role(user) {
            return Ok(());
        }
        let perms: Vec<&Permission> = user
            .roles
            .iter()
            .filter_map(|r| self.roles.get(r))
            .flat_map(|r| &r.key_permission)
            .collect();
        let allowed = |write: bool, key: &[u8], range_end: &[u8]| covers(perms.iter().copied(), write, key, range_end);
        for need in needs {
            let ok = match need {
                Need::Read { key, range_end } => allowed(false, key, range_end),
                Need::Write { key, range_end } => allowed(true, key, range_end),
                Need::LeaseKeys(lease) => lease_keys(*lease).iter().all(|key| allowed(true, key, b"")),
                Need::Admin => false,
            };
            if !ok {
                return Err(AuthError::PermissionDenied);
            }
        }
        Ok(())
    }

    /// Applies one change; the revision moves only when something changed.
    pub fn apply(&mut self, command: &AuthCommand) -> Result<(), AuthError> {
        use AuthCommand::*;
        match command {
            Enable => {
                if self.enabled {
                    return Ok(());
                }
                let root = self.users.get(ROOT).ok_or(AuthError::RootUserNotExist)?;
                if !self.has_root_role(root) {
                    return Err(AuthError::RootRoleNotExist);
                }
                self.enabled = true;
                self.tokens.lock().clear();
                self.dirty.push((ENABLED.to_vec(), Some(vec![1])));
            }
            Disable => {
                if !self.enabled {
                    return Ok(());
                }
                self.enabled = false;
                self.tokens.lock().clear();
                self.dirty.push((ENABLED.to_vec(), Some(vec![0])));
            }
            UserAdd { name, hash } => {
                if name.is_empty() {
                    return Err(AuthError::UserEmpty);
                }
                if self.users.contains_key(name) {
                    return Err(AuthError::UserAlreadyExist);
                }
                let user = User {
                    name: name.as_bytes().to_vec(),
                    password: hash.clone().unwrap_or_default().into_bytes(),
                    roles: Vec::new(),
                    options: Some(UserAddOptions {
                        no_password: hash.is_none(),
                    }),
                };
                self.put_user(user);
            }
            UserDelete { name } => {
                if self.enabled && name == ROOT {
                    return Err(AuthError::InvalidAuthMgmt);
                }
                self.users.remove(name).ok_or(AuthError::UserNotFound)?;
                self.dirty.push(([USERS, name.as_bytes()].concat(), None));
                self.tokens.lock().invalidate_user(name);
            }
            UserChangePassword { name, hash } => {
                let mut user = self.users.get(name).ok_or(AuthError::UserNotFound)?.clone();
                user.password = hash.clone().into_bytes();
                self.put_user(user);
                self.tokens.lock().invalidate_user(name);
            }
            UserGrantRole { user, role } => {
                let mut record = self.users.get(user).ok_or(AuthError::UserNotFound)?.clone();
                if role != ROOT && !self.roles.contains_key(role) {
                    return Err(AuthError::RoleNotFound);
                }
                if let Err(at) = record.roles.binary_search(role) {
                    record.roles.insert(at, role.clone());
                    self.put_user(record);
                } else {
                    return Ok(());
                }
            }
            UserRevokeRole { user, role } => {
                if self.enabled && user == ROOT && role == ROOT {
                    return Err(AuthError::InvalidAuthMgmt);
                }
                let mut record = self.users.get(user).ok_or(AuthError::UserNotFound)?.clone();
                let at = record
                    .roles
                    .binary_search(role)
                    .map_err(|_| AuthError::RoleNotGranted)?;
                record.roles.remove(at);
                self.put_user(record);
            }
            RoleAdd { name } => {
                if name.is_empty() {
                    return Err(AuthError::RoleEmpty);
                }
                if self.roles.contains_key(name) {
                    return Err(AuthError::RoleAlreadyExist);
                }
                self.put_role(Role {
                    name: name.as_bytes().to_vec(),
                    key_permission: Vec::new(),
                });
            }
            RoleDelete { name } => {
                if self.enabled && name == ROOT {
                    return Err(AuthError::InvalidAuthMgmt);
                }
                self.roles.remove(name).ok_or(AuthError::RoleNotFound)?;
                self.dirty.push(([ROLES, name.as_bytes()].concat(), None));
                let holders: Vec<User> = self
                    .users
                    .values()
                    .filter(|u| u.roles.contains(name))
                    .cloned()
                    .collect();
                for mut user in holders {
                    user.roles.retain(|r| r != name);
                    self.put_user(user);
                }
            }
            RoleGrantPermission { role, perm } => {
                let (perm_type, key, range_end) = perm.clone().ok_or(AuthError::PermissionNotGiven)?;
                let mut record = self.roles.get(role).ok_or(AuthError::RoleNotFound)?.clone();
                let same = |p: &Permission| p.key == key && p.range_end == range_end;
                match record.key_permission.iter_mut().find(|p| same(p)) {
                    Some(existing) => existing.perm_type = perm_type,
                    None => {
                        record.key_permission.push(Permission {
                            perm_type,
                            key,
                            range_end,
                        });
                        record.key_permission.sort_by(|a, b| a.key.cmp(&b.key));
                    }
                }
                self.put_role(record);
            }
            RoleRevokePermission { role, key, range_end } => {
                let mut record = self.roles.get(role).ok_or(AuthError::RoleNotFound)?.clone();
                let before = record.key_permission.len();
                record
                    .key_permission
                    .retain(|p| !(p.key == *key && p.range_end == *range_end));
                if record.key_permission.len() == before {
                    return Err(AuthError::PermissionNotGranted);
                }
                self.put_role(record);
            }
            Authenticate { name, hash, token } => {
                if !self.enabled {
                    return Err(AuthError::AuthNotEnabled);
                }
                if self.password_hash(name).as_ref() != Some(hash) {
                    return Err(AuthError::AuthFailed);
                }
                self.tokens
                    .lock()
                    .assign(token.clone(), name.clone(), Instant::now() + self.token_ttl);
                return Ok(());
            }
        }
        self.revision += 1;
        self.dirty
            .push((REVISION.to_vec(), Some(self.revision.to_be_bytes().to_vec())));
        Ok(())
    }

    fn put_user(&mut self, user: User) {
        let name = String::from_utf8_lossy(&user.name).into_owned();
        self.dirty
            .push(([USERS, name.as_bytes()].concat(), Some(user.encode_to_vec())));
        self.users.insert(name, user);
    }

    fn put_role(&mut self, role: Role) {
        let name = String::from_utf8_lossy(&role.name).into_owned();
        self.dirty
            .push(([ROLES, name.as_bytes()].concat(), Some(role.encode_to_vec())));
        self.roles.insert(name, role);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::authpb::permission::Type;

    fn apply(state: &mut AuthState, command: AuthCommand) -> Result<(), AuthError> {
        state.apply(&command)
    }

    #[test]
    fn enabling_needs_root_with_the_root_role() {
        let mut s = AuthState::default();
        assert_eq!(apply(&mut s, AuthCommand::Enable), Err(AuthError::RootUserNotExist));
        let root = AuthCommand::UserAdd {
            name: ROOT.into(),
            hash: Some("h".into()),
        };
        apply(&mut s, root.clone()).unwrap();
        assert_eq!(apply(&mut s, root), Err(AuthError::UserAlreadyExist));
        assert_eq!(apply(&mut s, AuthCommand::Enable), Err(AuthError::RootRoleNotExist));
        apply(&mut s, AuthCommand::RoleAdd { name: ROOT.into() }).unwrap();
        let grant = AuthCommand::UserGrantRole {
            user: ROOT.into(),
            role: ROOT.into(),
        };
        apply(&mut s, grant).unwrap();
        let before = s.revision();
        apply(&mut s, AuthCommand::Enable).unwrap();
        assert!(s.enabled() && s.revision() == before + 1);
        assert_eq!(
            apply(&mut s, AuthCommand::UserDelete { name: ROOT.into() }),
            Err(AuthError::InvalidAuthMgmt)
        );
        assert_eq!(s.check(None, &[], &|_| vec![]), Err(AuthError::UserEmpty));
        assert_eq!(s.check(Some(ROOT), &[Need::Admin], &|_| vec![]), Ok(()));
    }

    #[test]
    fn grants_and_revocations_take_effect_in_order() {
        let mut s = AuthState::default();
        for command in [
            AuthCommand::UserAdd {
                name: "u".into(),
                hash: None,
            },
            AuthCommand::RoleAdd { name: "r".into() },
            AuthCommand::UserGrantRole {
                user: "u".into(),
                role: "r".into(),
            },
            AuthCommand::RoleGrantPermission {
                role: "r".into(),
                perm: Some((Type::Readwrite as i32, b"k".to_vec(), b"l".to_vec())),
            },
        ] {
            apply(&mut s, command).unwrap();
        }
        s.enabled = true;
        let put = [Need::write(b"k1", b"")];
        assert_eq!(s.check(Some("u"), &put, &|_| vec![]), Ok(()));
        assert_eq!(
            s.check(Some("u"), &[Need::write(b"m", b"")], &|_| vec![]),
            Err(AuthError::PermissionDenied)
        );
        let lease = [Need::LeaseKeys(7)];
        assert_eq!(
            s.check(Some("u"), &lease, &|_| vec![b"k2".to_vec(), b"z".to_vec()]),
            Err(AuthError::PermissionDenied)
        );
        apply(
            &mut s,
            AuthCommand::RoleRevokePermission {
                role: "r".into(),
                key: b"k".to_vec(),
                range_end: b"l".to_vec(),
            },
        )
        .unwrap();
        assert_eq!(s.check(Some("u"), &put, &|_| vec![]), Err(AuthError::PermissionDenied));
        assert_eq!(
            apply(
                &mut s,
                AuthCommand::UserRevokeRole {
                    user: "u".into(),
                    role: "x".into()
                }
            ),
            Err(AuthError::RoleNotGranted)
        );
        apply(&mut s, AuthCommand::RoleDelete { name: "r".into() }).unwrap();
        assert!(s.user_roles("u").unwrap().is_empty());
    }
}
