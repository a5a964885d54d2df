//! What a request needs from the caller's grants, and whether a role's
//! permissions cover it: a range is allowed only when the union of the
//! caller's permissions of that kind covers every key in it, as in etcd.

use crate::proto::authpb::permission::Type as PermType;
use crate::proto::authpb::Permission;
use crate::proto::etcdserverpb::{request_op, DeleteRangeRequest, PutRequest, RangeRequest, TxnRequest};

/// One thing a request needs the caller to be allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// Reading the keys of `[key, range_end)` (etcd's range conventions).
    Read { key: Vec<u8>, range_end: Vec<u8> },
    /// Writing them.
    Write { key: Vec<u8>, range_end: Vec<u8> },
    /// Writing every key attached to this lease (revoking it, or attaching one more key).
    LeaseKeys(i64),
    /// The root role.
    Admin,
}

impl Need {
    pub fn read(key: &[u8], range_end: &[u8]) -> Need {
        Need::Read {
            key: key.to_vec(),
            range_end: range_end.to_vec(),
        }
    }

    pub fn write(key: &[u8], range_end: &[u8]) -> Need {
        Need::Write {
            key: key.to_vec(),
            range_end: range_end.to_vec(),
        }
    }
}

pub fn needs_of_range(r: &RangeRequest) -> Vec<Need> {
    vec![Need::read(&r.key, &r.range_end)]
}

pub fn needs_of_put(r: &PutRequest) -> Vec<Need> {
    let mut needs = vec![Need::write(&r.key, b"")];
    if r.lease != 0 {
        needs.push(Need::LeaseKeys(r.lease));
    }
    if r.prev_kv {
        needs.push(Need::read(&r.key, b""));
    }
    needs
}

pub fn needs_of_delete(r: &DeleteRangeRequest) -> Vec<Need> {
    let mut needs = vec![Need::write(&r.key, &r.range_end)];
    if r.prev_kv {
        needs.push(Need::read(&r.key, &r.range_end));
    }
    needs
}

/// Every compare reads its keys; every operation of both branches, nested
/// transactions included, needs what it would need on its own.
pub fn needs_of_txn(r: &TxnRequest) -> Vec<Need> {
    let mut needs: Vec<Need> = r.compare.iter().map(|c| Need::read(&c.key, &c.range_end)).collect();
    for op in r.success.iter().chain(&r.failure) {
        match &op.request {
            Some(request_op::Request::RequestRange(r)) => needs.extend(needs_of_range(r)),
            Some(request_op::Request::RequestPut(r)) => needs.extend(needs_of_put(r)),
            Some(request_op::Request::RequestDeleteRange(r)) => needs.extend(needs_of_delete(r)),
            Some(request_op::Request::RequestTxn(r)) => needs.extend(needs_of_txn(r)),
            None => {}
        }
    }
    needs
}

/// A half-open key interval; `end: None` runs to the end of the keyspace.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Interval {
    start: Vec<u8>,
    end: Option<Vec<u8>>,
}

impl Interval {
    /// etcd's conventions: no end is the single key, an end of `\0` is "every key from `key` on".
    fn of(key: &[u8], range_end: &[u8]) -> Interval {
        let end = match range_end {
            [] => Some([key, &[0]].concat()),
            [0] => None,
            end => Some(end.to_vec()),
        };
        Interval {
            start: key.to_vec(),
            end,
        }
    }

    fn is_empty(&self) -> bool {
        matches!(&self.end, Some(end) if *end <= self.start)
    }
}

/// Whether `end_a` reaches at least as far as `end_b`.
fn reaches(end_a: &Option<Vec<u8>>, end_b: &Option<Vec<u8>>) -> bool {
    match (end_a, end_b) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(a), Some(b)) => a >= b,
    }
}

/// Whether the permissions of kind `write` (else read) among `perms` cover
/// `[key, range_end)` together. An empty or inverted range is never covered.
pub(super) fn covers<'a>(
    perms: impl Iterator<Item = &'a Permission>,
    write: bool,
    key: &[u8],
    range_end: &[u8],
) -> bool {
    let wanted = Interval::of(key, range_end);
    if wanted.is_empty() {
        return false;
    }
    let mut granted: Vec<Interval> = perms
        .filter(|p| {
            let kind = PermType::try_from(p.perm_type).unwrap_or(PermType::Read);
            kind == PermType::Readwrite || (kind == PermType::Write) == write
        })
        .map(|p| Interval::of(&p.key, &p.range_end))
        .filter(|i| !i.is_empty())
        .collect();
    granted.sort_by(|a, b| a.start.cmp(&b.start));
    // Sweep from the start of the wanted range while granted intervals join up.
    let mut covered_to = Some(wanted.start.clone());
    for interval in granted {
        let Some(reached) = &covered_to else { break };
        if interval.start > *reached {
            break;
        }
        if !reaches(&covered_to, &interval.end) {
            covered_to = interval.end;
        }
        if reaches(&covered_to, &wanted.end) {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(kind: PermType, key: &str, end: &[u8]) -> Permission {
        Permission {
            perm_type: kind as i32,
            key: key.as_bytes().to_vec(),
            range_end: end.to_vec(),
        }
    }

    #[test]
    fn single_keys_ranges_and_prefixes() {
        let perms = [
            perm(PermType::Read, "a", b""),
            perm(PermType::Readwrite, "b", b"d"),
            perm(PermType::Write, "x", b"\0"),
        ];
        let read = |k: &str, e: &[u8]| covers(perms.iter(), false, k.as_bytes(), e);
        let write = |k: &str, e: &[u8]| covers(perms.iter(), true, k.as_bytes(), e);
        assert!(read("a", b""));
        assert!(!write("a", b""));
        assert!(!read("a0", b""));
        assert!(read("b", b"d"));
        assert!(read("bz", b""));
        assert!(!read("b", b"e"));
        assert!(!read("a", b"c"), "the gap between a\\0 and b is not granted");
        assert!(write("c", b"d"));
        assert!(write("x", b"\0"));
        assert!(write("zzz", b""));
        assert!(!read("x", b""));
        assert!(!write("w", b"\0"));
        assert!(!read("c", b"b"), "inverted ranges are never covered");
    }

    #[test]
    fn adjacent_grants_join() {
        let perms = [
            perm(PermType::Read, "a", b"b"),
            perm(PermType::Read, "b", b"c"),
            perm(PermType::Read, "c", b""),
        ];
        assert!(covers(perms.iter(), false, b"a", b"c\0"));
        assert!(!covers(perms.iter(), false, b"a", b"c\0\0"));
        assert!(!covers(perms.iter(), false, b"\0", b"\0"));
    }
}
