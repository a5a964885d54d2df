//! etcd's Watch service: one task per stream multiplexes its watchers,
//! catching each up from history before it joins the hub's live delivery,
//! and again whenever it falls behind.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::caller::Caller;
use super::{Context, EtcdError};
use crate::auth::Need;
use crate::mvcc::{history, MvccError, WatchMessage, WatchSpec};
use crate::proto::etcdserverpb::watch_create_request::FilterType;
use crate::proto::etcdserverpb::watch_server::Watch;
use crate::proto::etcdserverpb::{watch_request, ResponseHeader, WatchCreateRequest, WatchRequest, WatchResponse};
use crate::proto::mvccpb::Event;

/// Responses queued for a slow client before its stream task waits.
const OUTGOING_QUEUE: usize = 128;
/// How often a require-leader stream checks that its member has a leader.
const LEADER_CHECK: std::time::Duration = std::time::Duration::from_millis(500);
/// Live batches queued per stream before its watchers count as lagging.
const HUB_QUEUE: usize = 1024;

pub struct WatchService {
    context: Arc<Context>,
}

impl WatchService {
    pub fn new(context: Arc<Context>) -> Self {
        WatchService { context }
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = WatchStream;

    async fn watch(&self, request: Request<Streaming<WatchRequest>>) -> Result<Response<WatchStream>, Status> {
        // etcd clients ask, with this metadata, that their watches end when
        // the member has no leader (so they move to one that has).
        let require_leader = request.metadata().get("hasleader").is_some_and(|v| v == "true");
        if require_leader && !self.context.replica.has_leader() {
            return Err(EtcdError::NoLeader.into());
        }
        let caller = self.context.caller(&request).await?;
        let (outgoing, responses) = mpsc::channel(OUTGOING_QUEUE);
        let stream_id = self.context.applier.read().watches().new_stream();
        let stream = StreamTask::new(self.context.clone(), caller, stream_id, outgoing);
        tokio::spawn(stream.run(request.into_inner(), require_leader));
        Ok(Response::new(Box::pin(ReceiverStream::new(responses))))
    }
}

struct Watcher {
    spec: WatchSpec,
    progress_notify: bool,
    /// Split responses larger than `--max-request-bytes` (etcd's fragment).
    fragment: bool,
    /// Whether anything was sent since the last progress tick.
    active: bool,
}

struct StreamTask {
    context: Arc<Context>,
    /// Who opened the stream: each watch it creates is checked for them.
    caller: Caller,
    stream_id: u64,
    outgoing: mpsc::Sender<Result<WatchResponse, Status>>,
    watchers: HashMap<i64, Watcher>,
    next_watch_id: i64,
    hub_tx: mpsc::Sender<WatchMessage>,
    lag_tx: mpsc::UnboundedSender<WatchMessage>,
}

impl StreamTask {
    fn new(
        context: Arc<Context>,
        caller: Caller,
        stream_id: u64,
        outgoing: mpsc::Sender<Result<WatchResponse, Status>>,
    ) -> Self {
        let (hub_tx, _) = mpsc::channel(1);
        let (lag_tx, _) = mpsc::unbounded_channel();
        StreamTask {
            context,
            caller,
            stream_id,
            outgoing,
            watchers: HashMap::new(),
            next_watch_id: 0,
            hub_tx,
            lag_tx,
        }
    }

    async fn run(mut self, mut requests: Streaming<WatchRequest>, require_leader: bool) {
        let mut leader_check = tokio::time::interval(LEADER_CHECK);
        let (hub_tx, mut hub_rx) = mpsc::channel(HUB_QUEUE);
        let (lag_tx, mut lag_rx) = mpsc::unbounded_channel();
        self.hub_tx = hub_tx;
        self.lag_tx = lag_tx;
        let interval = self
            .context
            .watch_progress_interval
            .max(std::time::Duration::from_millis(100));
        let mut progress = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        loop {
            // Biased: live batches already queued go out before a lagging
            // watcher's catch-up, which starts after them.
            let open = tokio::select! {
                biased;
                Some(message) = hub_rx.recv() => self.deliver(message).await,
                Some(message) = lag_rx.recv() => self.deliver(message).await,
                request = requests.next() => match request {
                    Some(Ok(request)) => self.handle(request).await,
                    _ => false,
                },
                _ = progress.tick() => self.notify_progress().await,
                _ = leader_check.tick(), if require_leader => {
                    if self.context.replica.has_leader() {
                        true
                    } else {
                        let _ = self.outgoing.send(Err(EtcdError::NoLeader.into())).await;
                        false
                    }
                }
                _ = self.outgoing.closed() => false,
            };
            if !open {
                break;
            }
        }
        self.context.applier.read().watches().unregister_stream(self.stream_id);
    }

    fn header(&self, revision: i64) -> Option<ResponseHeader> {
        let mut header = Some(ResponseHeader {
            revision,
            ..Default::default()
        });
        self.context.fill(&mut header);
        header
    }

    fn current_revision(&self) -> i64 {
        self.context.applier.read().store().revision()
    }

    async fn send(&self, response: WatchResponse) -> bool {
        self.outgoing.send(Ok(response)).await.is_ok()
    }

    async fn handle(&mut self, request: WatchRequest) -> bool {
        match request.request_union {
            Some(watch_request::RequestUnion::CreateRequest(create)) => self.create(create).await,
            Some(watch_request::RequestUnion::CancelRequest(cancel)) => {
                self.context
                    .applier
                    .read()
                    .watches()
                    .unregister(self.stream_id, cancel.watch_id);
                self.watchers.remove(&cancel.watch_id);
                let header = self.header(self.current_revision());
                self.send(WatchResponse {
                    header,
                    watch_id: cancel.watch_id,
                    canceled: true,
                    ..Default::default()
                })
                .await
            }
            Some(watch_request::RequestUnion::ProgressRequest(_)) => {
                // Not tied to one watcher: etcd answers with watch ID -1.
                let header = self.header(self.current_revision());
                self.send(WatchResponse {
                    header,
                    watch_id: -1,
                    ..Default::default()
                })
                .await
            }
            None => true,
        }
    }

    async fn create(&mut self, create: WatchCreateRequest) -> bool {
        let needs = [Need::read(&create.key, &create.range_end)];
        if self.context.authorize(&self.caller, &needs).is_err() {
            // etcd creates and cancels it at once, with gRPC's text of its error.
            let refused = WatchResponse {
                header: self.header(self.current_revision()),
                watch_id: create.watch_id,
                created: true,
                canceled: true,
                cancel_reason: "rpc error: code = PermissionDenied desc = etcdserver: permission denied".into(),
                ..Default::default()
            };
            return self.send(refused).await;
        }
        let watch_id = if create.watch_id != 0 {
            create.watch_id
        } else {
            self.auto_watch_id()
        };
        if self.watchers.contains_key(&watch_id) {
            return self
                .outgoing
                .send(Err(Status::failed_precondition("mvcc: duplicate watch ID provided")))
                .await
                .is_ok();
        }
        let spec = WatchSpec {
            key: create.key,
            range_end: create.range_end,
            no_put: create.filters.contains(&(FilterType::Noput as i32)),
            no_delete: create.filters.contains(&(FilterType::Nodelete as i32)),
            prev_kv: create.prev_kv,
        };
        let current = self.current_revision();
        let created = WatchResponse {
            header: self.header(current),
            watch_id,
            created: true,
            ..Default::default()
        };
        if !self.send(created).await {
            return false;
        }
        self.watchers.insert(
            watch_id,
            Watcher {
                spec,
                progress_notify: create.progress_notify,
                fragment: create.fragment,
                active: false,
            },
        );
        self.join_hub(watch_id, create.start_revision).await
    }

    fn auto_watch_id(&mut self) -> i64 {
        while self.watchers.contains_key(&self.next_watch_id) {
            self.next_watch_id += 1;
        }
        let id = self.next_watch_id;
        self.next_watch_id += 1;
        id
    }

    /// Sends the watcher everything from `start` (0: nothing past) up to now,
    /// then registers it for live events, atomically with respect to applies.
    async fn join_hub(&mut self, watch_id: i64, start: i64) -> bool {
        let Some(watcher) = self.watchers.get(&watch_id) else {
            return true;
        };
        let caught_up = {
            let applier = self.context.applier.read();
            let store = applier.store();
            let current = store.revision();
            let replay = if start > 0 && start <= current {
                history(store, &watcher.spec, start)
            } else {
                Ok(Vec::new())
            };
            if replay.is_ok() {
                let next = if start > current { start } else { current + 1 };
                let (events, lagged) = (self.hub_tx.clone(), self.lag_tx.clone());
                applier
                    .watches()
                    .register(self.stream_id, watch_id, watcher.spec.clone(), next, events, lagged);
            }
            replay
                .map(|events| (events, current))
                .map_err(|e| (e, store.compact_revision()))
        };
        match caught_up {
            Ok((events, _)) if events.is_empty() => true,
            Ok((events, revision)) => self.send_events(watch_id, revision, events).await,
            Err((MvccError::Compacted, compact_revision)) => {
                self.watchers.remove(&watch_id);
                let header = self.header(self.current_revision());
                let response = WatchResponse {
                    header,
                    watch_id,
                    canceled: true,
                    compact_revision,
                    cancel_reason: EtcdError::Compacted.message().to_string(),
                    ..Default::default()
                };
                self.send(response).await
            }
            Err((e, _)) => {
                let status: Status = e.into();
                self.outgoing.send(Err(status)).await.is_ok()
            }
        }
    }

    async fn send_events(&mut self, watch_id: i64, revision: i64, events: Vec<Event>) -> bool {
        let Some(watcher) = self.watchers.get_mut(&watch_id) else {
            return true;
        };
        watcher.active = true;
        let chunks = if watcher.fragment {
            fragments(events, self.context.max_request_bytes)
        } else {
            vec![events]
        };
        let last = chunks.len() - 1;
        for (i, events) in chunks.into_iter().enumerate() {
            let header = self.header(revision);
            let response = WatchResponse {
                header,
                watch_id,
                events,
                fragment: i < last,
                ..Default::default()
            };
            if !self.send(response).await {
                return false;
            }
        }
        true
    }

    async fn deliver(&mut self, message: WatchMessage) -> bool {
        match message {
            WatchMessage::Events {
                watch_id,
                revision,
                events,
            } if self.watchers.contains_key(&watch_id) => self.send_events(watch_id, revision, events).await,
            WatchMessage::Lagged { watch_id, next } => self.join_hub(watch_id, next).await,
            WatchMessage::Events { .. } => true,
        }
    }

    /// A quiet watcher that asked for it learns how far the store has come.
    async fn notify_progress(&mut self) -> bool {
        let revision = self.current_revision();
        let quiet: Vec<i64> = self
            .watchers
            .iter_mut()
            .filter_map(|(id, w)| (!std::mem::replace(&mut w.active, false) && w.progress_notify).then_some(*id))
            .collect();
        for watch_id in quiet {
            let header = self.header(revision);
            if !self
                .send(WatchResponse {
                    header,
                    watch_id,
                    ..Default::default()
                })
                .await
            {
                return false;
            }
        }
        true
    }
}

/// Splits events into groups whose encoded size stays within `limit` (one
/// oversized event still travels alone); etcd marks all but the last group
/// as fragments.
fn fragments(events: Vec<Event>, limit: usize) -> Vec<Vec<Event>> {
    let mut chunks = vec![Vec::new()];
    let mut size = 0;
    for event in events {
        let event_size = prost::Message::encoded_len(&event);
        let current = chunks.last_mut().expect("never empty");
        if !current.is_empty() && size + event_size > limit {
            chunks.push(Vec::new());
            size = 0;
        }
        size += event_size;
        chunks.last_mut().expect("never empty").push(event);
    }
    chunks
}
