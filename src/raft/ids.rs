//! Member and cluster IDs, derived as etcd derives them so that every member
//! started with the same `--initial-cluster` and token agrees on them.

use sha1::{Digest, Sha1};

fn first_u64(digest: &[u8]) -> u64 {
    u64::from_be_bytes(digest[..8].try_into().expect("sha1 is 20 bytes"))
}

/// A member's ID: the SHA-1 of its sorted peer URLs followed by the cluster
/// token, first 8 bytes big-endian.
pub fn member_id(peer_urls: &[String], token: &str) -> u64 {
    let mut urls = peer_urls.to_vec();
    urls.sort();
    let mut hasher = Sha1::new();
    for url in &urls {
        hasher.update(url.as_bytes());
    }
    hasher.update(token.as_bytes());
    first_u64(&hasher.finalize())
}

/// The cluster's ID: the SHA-1 of the sorted member IDs, each big-endian.
pub fn cluster_id(member_ids: &[u64]) -> u64 {
    let mut ids = member_ids.to_vec();
    ids.sort_unstable();
    let mut hasher = Sha1::new();
    for id in ids {
        hasher.update(id.to_be_bytes());
    }
    first_u64(&hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_etcd_for_the_default_member() {
        // etcd 3.4 started with no flags reports member 8e9e05c52164694d in
        // cluster cdf818194e3a8c32.
        let id = member_id(&["http://localhost:2380".to_string()], "etcd-cluster");
        assert_eq!(format!("{id:x}"), "8e9e05c52164694d");
        assert_eq!(format!("{:x}", cluster_id(&[id])), "cdf818194e3a8c32");
        // ... and member 9e737febb6b99eee in cluster c8730d66636ff140 for
        // `--name m1 --initial-cluster m1=http://127.0.0.1:22380`.
        let id = member_id(&["http://127.0.0.1:22380".to_string()], "etcd-cluster");
        assert_eq!(format!("{id:x}"), "9e737febb6b99eee");
        assert_eq!(format!("{:x}", cluster_id(&[id])), "c8730d66636ff140");
    }
}
