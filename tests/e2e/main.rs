//! End-to-end tests: the real binaries driven by etcdctl and the etcd-client crate.

mod ansible;
mod auth;
mod cluster;
mod config_file;
mod ctl;
mod ctl_auth;
mod ctl_tls;
mod durability;
mod gateway;
mod handoff;
mod kv_client;
mod kv_compare;
mod lifecycle;
mod lock_election;
mod membership;
mod metrics;
mod packages;
mod privilege;
mod process;
mod shutdown;
mod support;
mod systemd;
mod tls;
mod v2members;
mod watch_failover;
mod watch_lease;
