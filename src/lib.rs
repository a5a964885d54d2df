//! ferrocd: a Raft-replicated, strongly consistent key-value store that
//! speaks etcd's v3 API, as a drop-in replacement for etcd 3.4.
//!
//! # Layout
//!
//! - [`config`]: flags, `ETCD_*` variables and etcd's rules, resolved once.
//! - [`server`]: starts a member (data dir, Raft, listeners) and stops it in
//!   order.
//! - [`api`]: the client port: one module per etcd gRPC service, `/health`
//!   and `/version`, and the one error table with etcd's wire strings.
//! - [`raft`]: openraft's types, the sled log and state machine, the peer
//!   network, and the [`raft::Replica`] handle (propose, forward, read index).
//! - [`apply`]: the replicated commands and how each changes the state.
//! - [`mvcc`]: revisions, the key index and compaction; knows nothing of
//!   gRPC or Raft.
//! - [`storage`]: the narrow interface over sled.
//! - [`snapshot`]: the snapshot file format (save, status, restore).
//! - [`system`]: process concerns: signals.
//! - [`ctl`]: ferrocdctl, the etcdctl-compatible command-line client.
//! - [`tls`]: rustls for the client and peer ports, and for dialling peers.
//! - [`metrics`]: the Prometheus series, with etcd's names.
//! - [`proto`]: generated protobuf and gRPC code.
//!
//! Dependencies point one way: `api` -> `raft` -> `apply` -> `mvcc` -> `storage`.

pub mod api;
pub mod apply;
pub mod auth;
pub mod config;
pub mod ctl;
pub mod metrics;
pub mod mvcc;
pub mod proto;
pub mod raft;
pub mod server;
pub mod snapshot;
pub mod storage;
pub mod system;
pub mod tls;
