//! What systemd is told about this member: the leader's name from the Raft membership, the
//! applied revision, and which voting members answer on their peer URLs.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use url::Url;

use crate::apply::Applier;
use crate::raft::Raft;
use crate::system::notify::MemberStatus;

/// How long a peer may take to accept a connection and still count as reachable.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

pub struct Status {
    pub raft: Raft,
    pub applier: Arc<RwLock<Applier>>,
    pub member_id: u64,
}

impl MemberStatus for Status {
    fn leader(&self) -> Option<String> {
        let metrics = self.raft.metrics().borrow().clone();
        let leader = metrics.current_leader?;
        let node = metrics.membership_config.membership().get_node(&leader).cloned();
        Some(node.map_or_else(|| format!("{leader:x}"), |node| node.name))
    }

    fn revision(&self) -> i64 {
        self.applier.read().store().revision()
    }

    async fn reachable(&self) -> (usize, usize) {
        let membership = self.raft.metrics().borrow().membership_config.clone();
        let membership = membership.membership();
        let probes = membership.voter_ids().filter(|id| *id != self.member_id).map(|id| {
            let urls = membership
                .get_node(&id)
                .map(|node| node.peer_urls.clone())
                .unwrap_or_default();
            answers(urls)
        });
        let others = futures::future::join_all(probes).await;
        (1 + others.iter().filter(|up| **up).count(), 1 + others.len())
    }
}

/// Whether any of `urls` accepts a TCP connection.
async fn answers(urls: Vec<String>) -> bool {
    for url in urls.iter().filter_map(|url| Url::parse(url).ok()) {
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            continue;
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let connect = tokio::net::TcpStream::connect((host, port));
        if matches!(tokio::time::timeout(PROBE_TIMEOUT, connect).await, Ok(Ok(_))) {
            return true;
        }
    }
    false
}
