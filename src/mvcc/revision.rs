//! Revisions: etcd's (main, sub) pair and its byte encoding as a storage key.

/// A point in the store's history. `main` is the global revision a write
/// transaction produced; `sub` numbers the changes inside that transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Revision {
    pub main: i64,
    pub sub: i64,
}

/// Length of an encoded revision: two big-endian u64s, so byte order equals
/// revision order.
pub const ENCODED_LEN: usize = 16;

impl Revision {
    pub fn new(main: i64, sub: i64) -> Self {
        Revision { main, sub }
    }

    pub fn encode(self) -> [u8; ENCODED_LEN] {
        let mut out = [0u8; ENCODED_LEN];
        out[..8].copy_from_slice(&(self.main as u64).to_be_bytes());
        out[8..].copy_from_slice(&(self.sub as u64).to_be_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != ENCODED_LEN {
            return None;
        }
        let main = u64::from_be_bytes(bytes[..8].try_into().ok()?) as i64;
        let sub = u64::from_be_bytes(bytes[8..].try_into().ok()?) as i64;
        Some(Revision { main, sub })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_preserves_order() {
        let a = Revision::new(2, 9);
        let b = Revision::new(3, 0);
        assert!(a.encode() < b.encode());
        assert_eq!(Revision::decode(&a.encode()), Some(a));
        assert_eq!(Revision::decode(&[1, 2]), None);
    }
}
