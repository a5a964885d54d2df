//! ferrocd's snapshot file: what the Maintenance Snapshot stream sends,
//! `ferrocdctl snapshot save` writes and `snapshot restore` reads.
//!
//! Layout, chosen so `etcdctl snapshot save` and its integrity rules accept it
//! (a file whose size is 32 more than a multiple of 512 ends in the SHA-256 of
//! what precedes it):
//!
//! ```text
//! "ferrocd-snapshot"   16 bytes of magic
//! version              u32, little endian (1)
//! payload length       u64, little endian
//! payload              bincode of `Contents`
//! zero padding         up to a multiple of 512 bytes
//! sha256               32 bytes, of everything before it
//! ```

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const MAGIC: &[u8; 16] = b"ferrocd-snapshot";
const VERSION: u32 = 1;
const HEADER_BYTES: usize = 16 + 4 + 8;
const BLOCK: usize = 512;
const HASH_BYTES: usize = 32;

/// The replicated state at one revision: the state keyspace's records
/// (key-value history, leases, members), without Raft bookkeeping.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Contents {
    pub revision: i64,
    pub records: Vec<(Vec<u8>, Vec<u8>)>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SnapshotFileError {
    #[error("not a ferrocd snapshot file (etcd's bbolt snapshots are not supported yet)")]
    NotASnapshot,
    #[error("unsupported ferrocd snapshot format version {0}")]
    Version(u32),
    #[error(
        "snapshot file integrity check failed. {0} bytes remaining, expected a multiple of 512 plus a 32-byte sha256"
    )]
    Truncated(usize),
    #[error("expected sha256 {expected}, got {got}")]
    HashMismatch { expected: String, got: String },
    #[error("snapshot payload is corrupt: {0}")]
    Corrupt(String),
}

/// What `snapshot status` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Status {
    /// CRC-32 (IEEE) of the payload.
    pub hash: u32,
    pub revision: i64,
    pub total_keys: usize,
    pub total_size: usize,
}

/// The whole file: header, payload, padding and trailer.
pub fn encode(contents: &Contents) -> Vec<u8> {
    let payload = bincode::serialize(contents).expect("in-memory serialization");
    let mut file = Vec::with_capacity(HEADER_BYTES + payload.len() + BLOCK + HASH_BYTES);
    file.extend_from_slice(MAGIC);
    file.extend_from_slice(&VERSION.to_le_bytes());
    file.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    file.extend_from_slice(&payload);
    file.resize(file.len().div_ceil(BLOCK) * BLOCK, 0);
    let hash = Sha256::digest(&file);
    file.extend_from_slice(&hash);
    file
}

/// Checks the trailer and the header, and returns the payload.
fn payload(file: &[u8]) -> Result<&[u8], SnapshotFileError> {
    if file.len() < HEADER_BYTES || &file[..16] != MAGIC {
        return Err(SnapshotFileError::NotASnapshot);
    }
    if file.len() % BLOCK != HASH_BYTES {
        return Err(SnapshotFileError::Truncated(file.len() % BLOCK));
    }
    let (body, trailer) = file.split_at(file.len() - HASH_BYTES);
    let got = Sha256::digest(body);
    if got.as_slice() != trailer {
        return Err(SnapshotFileError::HashMismatch {
            expected: hex(trailer),
            got: hex(&got),
        });
    }
    let version = u32::from_le_bytes(file[16..20].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(SnapshotFileError::Version(version));
    }
    let length = u64::from_le_bytes(file[20..28].try_into().expect("8 bytes")) as usize;
    body.get(HEADER_BYTES..HEADER_BYTES.saturating_add(length))
        .ok_or_else(|| SnapshotFileError::Corrupt(format!("payload length {length} exceeds the file")))
}

/// Verifies and decodes a whole snapshot file.
pub fn decode(file: &[u8]) -> Result<Contents, SnapshotFileError> {
    bincode::deserialize(payload(file)?).map_err(|e| SnapshotFileError::Corrupt(e.to_string()))
}

/// Verifies a snapshot file and summarises it.
pub fn status(file: &[u8]) -> Result<Status, SnapshotFileError> {
    let payload = payload(file)?;
    let contents: Contents = bincode::deserialize(payload).map_err(|e| SnapshotFileError::Corrupt(e.to_string()))?;
    Ok(Status {
        hash: crc32fast::hash(payload),
        revision: contents.revision,
        total_keys: contents.records.len(),
        total_size: file.len(),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Contents {
        Contents {
            revision: 7,
            records: vec![(b"a".to_vec(), b"1".to_vec()), (b"b".to_vec(), vec![0; 1000])],
        }
    }

    #[test]
    fn round_trips_with_etcds_size_rule() {
        let file = encode(&sample());
        assert_eq!(file.len() % 512, 32);
        assert_eq!(decode(&file).unwrap(), sample());
        let status = status(&file).unwrap();
        assert_eq!(
            (status.revision, status.total_keys, status.total_size),
            (7, 2, file.len())
        );
    }

    #[test]
    fn refuses_damaged_files() {
        let mut file = encode(&sample());
        file[40] ^= 1;
        assert!(matches!(decode(&file), Err(SnapshotFileError::HashMismatch { .. })));
        let file = encode(&sample());
        assert_eq!(decode(&file[..file.len() - 1]), Err(SnapshotFileError::Truncated(31)));
        assert_eq!(decode(b"SQLite format 3\0...."), Err(SnapshotFileError::NotASnapshot));
    }
}
