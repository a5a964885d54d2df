//! The in-memory key index: for every key, the revisions at which it was
//! written, grouped into generations (a generation ends with a delete).
//!
//! Values live in the backend, keyed by revision; the index answers "which
//! revision holds key K as of revision R" without touching disk, as etcd's
//! treeIndex does.

use std::collections::BTreeMap;
use std::ops::Bound;

use super::revision::Revision;

/// What the index knows of one key's live value at some revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub modified: Revision,
    pub created: Revision,
    pub version: i64,
}

/// One life of a key: from its creation to its deletion (the tombstone).
#[derive(Debug, Clone)]
struct Generation {
    created: Revision,
    /// Version of `revs[0]`; compaction drops older revisions but versions
    /// keep counting from creation.
    first_version: i64,
    revs: Vec<Revision>,
    tombstoned: bool,
}

impl Generation {
    fn new(rev: Revision) -> Self {
        Generation {
            created: rev,
            first_version: 1,
            revs: vec![rev],
            tombstoned: false,
        }
    }

    /// Index of the last revision at or before `at`.
    fn position_at(&self, at: i64) -> Option<usize> {
        let n = self.revs.partition_point(|r| r.main <= at);
        n.checked_sub(1)
    }
}

#[derive(Debug, Clone, Default)]
struct KeyHistory {
    generations: Vec<Generation>,
}

impl KeyHistory {
    fn get(&self, at: i64) -> Option<IndexEntry> {
        let generation = self
            .generations
            .iter()
            .rev()
            .find(|g| g.revs.first().is_some_and(|r| r.main <= at))?;
        if generation.tombstoned && generation.revs.last().is_some_and(|t| t.main <= at) {
            return None;
        }
        let pos = generation.position_at(at)?;
        Some(IndexEntry {
            modified: generation.revs[pos],
            created: generation.created,
            version: generation.first_version + pos as i64,
        })
    }

    fn is_live(&self) -> bool {
        self.generations.last().is_some_and(|g| !g.tombstoned)
    }

    /// Drops what no read at or after `at` can need; returns the dropped revisions.
    fn compact(&mut self, at: i64, dropped: &mut Vec<Revision>) {
        self.generations.retain_mut(|g| {
            if g.tombstoned && g.revs.last().is_some_and(|t| t.main <= at) {
                dropped.extend_from_slice(&g.revs);
                return false;
            }
            if let Some(pos) = g.position_at(at) {
                dropped.extend(g.revs.drain(..pos));
                g.first_version += pos as i64;
            }
            true
        });
    }
}

/// The key index. Keys are ordered bytewise, as etcd orders them.
#[derive(Debug, Default)]
pub struct KeyIndex {
    keys: BTreeMap<Vec<u8>, KeyHistory>,
}

/// Which keys a range covers, in etcd's terms: `range_end` empty is one key,
/// `"\0"` is every key from `key` on, anything else is `[key, range_end)`.
pub fn key_bounds<'a>(key: &'a [u8], range_end: &'a [u8]) -> (Bound<&'a [u8]>, Bound<&'a [u8]>) {
    if range_end.is_empty() {
        (Bound::Included(key), Bound::Included(key))
    } else if range_end == [0] {
        (Bound::Included(key), Bound::Unbounded)
    } else {
        (Bound::Included(key), Bound::Excluded(range_end))
    }
}

/// Whether `candidate` is in the range `key`/`range_end` describes.
pub fn in_range(key: &[u8], range_end: &[u8], candidate: &[u8]) -> bool {
    std::ops::RangeBounds::<[u8]>::contains(&key_bounds(key, range_end), candidate)
}

fn is_empty_range(bounds: &(Bound<&[u8]>, Bound<&[u8]>)) -> bool {
    match bounds {
        (Bound::Included(start), Bound::Excluded(end)) => end <= start,
        _ => false,
    }
}

impl KeyIndex {
    pub fn get(&self, key: &[u8], at: i64) -> Option<IndexEntry> {
        self.keys.get(key)?.get(at)
    }

    /// Live keys in `[key, range_end)` as of revision `at`, in key order.
    pub fn range(&self, key: &[u8], range_end: &[u8], at: i64) -> Vec<(&[u8], IndexEntry)> {
        let bounds = key_bounds(key, range_end);
        if is_empty_range(&bounds) {
            return Vec::new();
        }
        self.keys
            .range::<[u8], _>(bounds)
            .filter_map(|(k, h)| h.get(at).map(|e| (k.as_slice(), e)))
            .collect()
    }

    /// Records a put of `key` at `rev`.
    pub fn put(&mut self, key: &[u8], rev: Revision) {
        let history = self.keys.entry(key.to_vec()).or_default();
        match history.generations.last_mut() {
            Some(g) if !g.tombstoned => g.revs.push(rev),
            _ => history.generations.push(Generation::new(rev)),
        }
    }

    /// Records the deletion of a live `key` at `rev`.
    pub fn tombstone(&mut self, key: &[u8], rev: Revision) {
        if let Some(g) = self
            .keys
            .get_mut(key)
            .and_then(|h| h.generations.last_mut())
            .filter(|g| !g.tombstoned)
        {
            g.revs.push(rev);
            g.tombstoned = true;
        }
    }

    /// Compacts every key at revision `at`; returns the revisions whose values
    /// the backend may delete.
    pub fn compact(&mut self, at: i64) -> Vec<Revision> {
        let mut dropped = Vec::new();
        self.keys.retain(|_, history| {
            history.compact(at, &mut dropped);
            !history.generations.is_empty()
        });
        dropped
    }

    /// Number of keys that currently have a value.
    pub fn live_keys(&self) -> usize {
        self.keys.values().filter(|h| h.is_live()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(main: i64) -> Revision {
        Revision::new(main, 0)
    }

    #[test]
    fn versions_and_generations() {
        let mut index = KeyIndex::default();
        index.put(b"a", rev(2));
        index.put(b"a", rev(3));
        index.tombstone(b"a", rev(4));
        index.put(b"a", rev(5));
        assert_eq!(index.get(b"a", 1), None);
        let at3 = index.get(b"a", 3).unwrap();
        assert_eq!((at3.modified, at3.created, at3.version), (rev(3), rev(2), 2));
        assert_eq!(index.get(b"a", 4), None);
        let at5 = index.get(b"a", 5).unwrap();
        assert_eq!((at5.created, at5.version), (rev(5), 1));
    }

    #[test]
    fn compaction_keeps_what_reads_need() {
        let mut index = KeyIndex::default();
        index.put(b"a", rev(2));
        index.put(b"a", rev(3));
        index.put(b"b", rev(4));
        index.tombstone(b"b", rev(5));
        index.put(b"a", rev(6));
        let mut dropped = index.compact(5);
        dropped.sort();
        assert_eq!(dropped, vec![rev(2), rev(4), rev(5)]);
        assert_eq!(index.get(b"a", 5).unwrap().version, 2);
        assert_eq!(index.get(b"a", 6).unwrap().version, 3);
        assert_eq!(index.get(b"b", 5), None);
        assert_eq!(index.live_keys(), 1);
    }

    #[test]
    fn range_bounds_follow_etcd() {
        let mut index = KeyIndex::default();
        for (i, k) in [b"a", b"b", b"c"].iter().enumerate() {
            index.put(*k, rev(i as i64 + 2));
        }
        assert_eq!(index.range(b"a", b"", 10).len(), 1);
        assert_eq!(index.range(b"a", b"c", 10).len(), 2);
        assert_eq!(index.range(b"b", b"\0", 10).len(), 2);
        assert_eq!(index.range(b"c", b"a", 10).len(), 0);
    }
}
