//! Passwords are stored as bcrypt hashes, as etcd stores them. Hashing runs
//! on the member that receives the request, before the change is proposed, so
//! every member stores the same hash.

/// The bcrypt hash of `password` at `cost` (etcd's `--bcrypt-cost`).
pub fn hash(password: &str, cost: u32) -> Result<String, bcrypt::BcryptError> {
    bcrypt::hash(password, cost)
}

/// Whether `password` matches the stored `hash`; a malformed hash matches nothing.
pub fn verify(password: &str, hash: &str) -> bool {
    bcrypt::verify(password, hash).unwrap_or(false)
}
