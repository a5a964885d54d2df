//! The watch hub: watchers registered by the Watch API, and delivery of each
//! applied batch's events to the watchers whose range they touch.
//!
//! Delivery never blocks the applier: each watch stream has a bounded queue;
//! a watcher whose queue is full is dropped from the hub and told where to
//! resume, and its stream catches it up from history (as etcd moves slow
//! watchers to its "unsynced" set).

use std::collections::HashMap;

use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::{in_range, MvccError, Store};
use crate::proto::mvccpb::{event::EventType, Event};

/// What a watcher watches.
#[derive(Debug, Clone, Default)]
pub struct WatchSpec {
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
    pub no_put: bool,
    pub no_delete: bool,
    pub prev_kv: bool,
}

impl WatchSpec {
    fn wants(&self, event: &Event) -> bool {
        let put = event.r#type == EventType::Put as i32;
        if (put && self.no_put) || (!put && self.no_delete) {
            return false;
        }
        let key = event.kv.as_ref().map_or(&[][..], |kv| kv.key.as_slice());
        in_range(&self.key, &self.range_end, key)
    }

    /// The event as this watcher receives it (with the previous value when
    /// asked for).
    fn deliver(&self, event: &Event, store: &Store) -> Event {
        let mut event = event.clone();
        if self.prev_kv {
            if let Some(kv) = &event.kv {
                event.prev_kv = store.get_at(&kv.key, kv.mod_revision - 1).ok().flatten();
            }
        }
        event
    }
}

/// What a watch stream receives from the hub.
#[derive(Debug)]
pub enum WatchMessage {
    Events {
        watch_id: i64,
        revision: i64,
        events: Vec<Event>,
    },
    /// The watcher fell behind and left the hub; resume it from `next`.
    Lagged { watch_id: i64, next: i64 },
}

struct Watcher {
    spec: WatchSpec,
    /// First revision this watcher has not been sent yet.
    next: i64,
    events: mpsc::Sender<WatchMessage>,
    lagged: mpsc::UnboundedSender<WatchMessage>,
}

/// Watchers by (stream, watch ID).
#[derive(Default)]
pub struct WatchHub {
    watchers: Mutex<HashMap<(u64, i64), Watcher>>,
    next_stream: std::sync::atomic::AtomicU64,
}

impl WatchHub {
    /// A stream ID no other user of the hub has.
    pub fn new_stream(&self) -> u64 {
        self.next_stream.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Adds a watcher that has seen everything before `next`.
    pub fn register(
        &self,
        stream: u64,
        watch_id: i64,
        spec: WatchSpec,
        next: i64,
        events: mpsc::Sender<WatchMessage>,
        lagged: mpsc::UnboundedSender<WatchMessage>,
    ) {
        let watcher = Watcher {
            spec,
            next,
            events,
            lagged,
        };
        self.watchers.lock().insert((stream, watch_id), watcher);
    }

    pub fn unregister(&self, stream: u64, watch_id: i64) {
        self.watchers.lock().remove(&(stream, watch_id));
    }

    pub fn unregister_stream(&self, stream: u64) {
        self.watchers.lock().retain(|(s, _), _| *s != stream);
    }

    /// Delivers the events of one applied batch, the store being at
    /// `revision` after it.
    pub fn publish(&self, events: &[Event], revision: i64, store: &Store) {
        let mut watchers = self.watchers.lock();
        if watchers.is_empty() {
            return;
        }
        watchers.retain(|&(_, watch_id), watcher| {
            let matching: Vec<Event> = events
                .iter()
                .filter(|e| e.kv.as_ref().is_some_and(|kv| kv.mod_revision >= watcher.next))
                .filter(|e| watcher.spec.wants(e))
                .map(|e| watcher.spec.deliver(e, store))
                .collect();
            let resume_at = watcher.next;
            watcher.next = revision + 1;
            if matching.is_empty() {
                return true;
            }
            match watcher.events.try_send(WatchMessage::Events {
                watch_id,
                revision,
                events: matching,
            }) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    let _ = watcher.lagged.send(WatchMessage::Lagged {
                        watch_id,
                        next: resume_at,
                    });
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
    }
}

/// The events a watcher with `spec` gets from revision `from` up to the
/// store's current revision.
pub fn history(store: &Store, spec: &WatchSpec, from: i64) -> Result<Vec<Event>, MvccError> {
    Ok(store
        .history(&spec.key, &spec.range_end, from)?
        .iter()
        .filter(|e| spec.wants(e))
        .map(|e| spec.deliver(e, store))
        .collect())
}
