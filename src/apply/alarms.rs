//! Cluster alarms (etcd's alarm store): raised and cleared through the log,
//! so every member refuses the same writes while NOSPACE is active.

use std::collections::BTreeSet;

use crate::mvcc::MvccError;
use crate::proto::etcdserverpb::{alarm_request::AlarmAction, AlarmMember, AlarmType};
use crate::storage::Keyspace;

const PREFIX: &[u8] = b"a/";

#[derive(Debug, Default)]
pub struct Alarms {
    /// (member ID, alarm type) pairs that are active.
    active: BTreeSet<(u64, i32)>,
    dirty: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

fn key(member_id: u64, alarm: i32) -> Vec<u8> {
    [PREFIX, &member_id.to_be_bytes(), &alarm.to_be_bytes()].concat()
}

impl Alarms {
    pub fn load(space: &Keyspace) -> Result<Self, MvccError> {
        let mut active = BTreeSet::new();
        for record in space.scan_prefix(PREFIX) {
            let (key, _) = record?;
            let body = &key[PREFIX.len()..];
            if body.len() != 12 {
                return Err(MvccError::Storage("corrupt alarm key".into()));
            }
            let member = u64::from_be_bytes(body[..8].try_into().expect("8 bytes"));
            let alarm = i32::from_be_bytes(body[8..].try_into().expect("4 bytes"));
            active.insert((member, alarm));
        }
        Ok(Alarms {
            active,
            dirty: Vec::new(),
        })
    }

    /// Every active alarm, as the Alarm API lists them.
    pub fn list(&self) -> Vec<AlarmMember> {
        self.active
            .iter()
            .map(|(member_id, alarm)| AlarmMember {
                member_id: *member_id,
                alarm: *alarm,
            })
            .collect()
    }

    pub fn is_active(&self, alarm: AlarmType) -> bool {
        self.active.iter().any(|(_, active)| *active == alarm as i32)
    }

    /// Applies an Alarm request's change; returns the alarms it concerned, as
    /// etcd's response lists them.
    pub(super) fn apply(&mut self, action: i32, member_id: u64, alarm: i32) -> Vec<AlarmMember> {
        let pair = AlarmMember { member_id, alarm };
        match AlarmAction::try_from(action) {
            Ok(AlarmAction::Activate) if alarm != AlarmType::None as i32 => {
                if self.active.insert((member_id, alarm)) {
                    self.dirty.push((key(member_id, alarm), Some(Vec::new())));
                }
                vec![pair]
            }
            Ok(AlarmAction::Deactivate) => {
                if self.active.remove(&(member_id, alarm)) {
                    self.dirty.push((key(member_id, alarm), None));
                    vec![pair]
                } else {
                    Vec::new()
                }
            }
            _ => self.list(),
        }
    }

    pub(super) fn drain_dirty(&mut self) -> impl Iterator<Item = (Vec<u8>, Option<Vec<u8>>)> + '_ {
        self.dirty.drain(..)
    }
}
