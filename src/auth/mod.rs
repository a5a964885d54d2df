//! etcd's authentication and role-based access control: the users and roles
//! replicated through the log ([`AuthState`]), what each request needs
//! ([`Need`]) and the check against a user's grants, password hashing, and the
//! tokens clients authenticate with (simple or JWT).

mod error;
pub mod password;
mod perms;
mod state;
mod tokens;

pub use error::AuthError;
pub use perms::{needs_of_delete, needs_of_put, needs_of_range, needs_of_txn, Need};
pub use state::{AuthCommand, AuthState, ROOT};
pub use tokens::{new_simple_token, Claims, Jwt, TokenConfig, TokenKind};
