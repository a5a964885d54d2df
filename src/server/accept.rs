//! Accepting connections in a way that survives running out of file descriptors.
//!
//! When the process or the system has no descriptor left, `accept` fails with `EMFILE` or
//! `ENFILE` and the connection stays queued, so a plain accept loop either spins on the same
//! error or stops. Here each listener keeps one spare descriptor: out of descriptors, it closes
//! the spare, accepts the queued connection into that slot and closes it at once (the client
//! sees its connection closed and can retry elsewhere), then takes the spare back. Connections
//! already open are served all along; accepting resumes as soon as descriptors are free. One
//! warning is logged per burst, and one line when it ends. Without a spare (another thread took
//! the slot), accepting backs off briefly instead of spinning.

use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use futures::{FutureExt as _, Stream};
use nix::errno::Errno;
use tokio::net::{TcpListener, TcpStream};

/// The first pause when no spare descriptor is at hand; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// A listener whose [`accept`](Acceptor::accept) never fails.
pub struct Acceptor {
    listener: TcpListener,
    /// What is listened for, for the log (`client requests on http://...`).
    what: String,
    /// A descriptor held in reserve, given up to refuse a connection when none is left.
    spare: Option<File>,
    /// Connections refused since descriptors ran out, while they still are.
    refused: Option<u64>,
    backoff: Duration,
}

impl Acceptor {
    pub fn new(listener: TcpListener, what: String) -> Acceptor {
        Acceptor {
            listener,
            what,
            spare: open_spare(),
            refused: None,
            backoff: FIRST_BACKOFF,
        }
    }

    /// The next connection; errors are dealt with here and never end accepting.
    pub async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            match self.listener.accept().await {
                Ok(accepted) => {
                    self.recovered();
                    return accepted;
                }
                Err(e) if out_of_descriptors(&e) => self.refuse(&e).await,
                // The client gave up before we accepted: nothing to do.
                Err(e) if matches!(e.kind(), io::ErrorKind::ConnectionAborted | io::ErrorKind::Interrupted) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "accepting {} failed; retrying", self.what);
                    tokio::time::sleep(FIRST_BACKOFF).await;
                }
            }
        }
    }

    /// Out of descriptors: closes the first queued connection with the spare's slot, or waits a
    /// little when there is no spare.
    async fn refuse(&mut self, error: &io::Error) {
        if self.refused.is_none() {
            tracing::warn!(
                error = %error,
                "out of file descriptors: refusing new connections for {} until some close \
                 (raise LimitNOFILE= in the systemd unit, or ulimit -n)",
                self.what
            );
            self.refused = Some(0);
        }
        if let Some(spare) = self.spare.take() {
            drop(spare);
            // Readiness was not consumed by the failed accept, so one poll retries it now.
            if let Some(Ok((refused, _))) = self.listener.accept().now_or_never() {
                drop(refused);
                self.refused = self.refused.map(|n| n + 1);
            }
            self.spare = open_spare();
            if self.spare.is_some() {
                self.backoff = FIRST_BACKOFF;
                return;
            }
        }
        tokio::time::sleep(self.backoff).await;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        if self.spare.is_none() {
            self.spare = open_spare();
        }
    }

    /// A connection was accepted: a burst of refusals, if any, is over.
    fn recovered(&mut self) {
        if let Some(refused) = self.refused.take() {
            tracing::info!(
                refused,
                "file descriptors available again: accepting connections for {}",
                self.what
            );
        }
        self.backoff = FIRST_BACKOFF;
    }

    /// The accepted connections as a stream, for a server that takes one.
    pub fn into_stream(self) -> impl Stream<Item = io::Result<TcpStream>> {
        futures::stream::unfold(self, |mut acceptor| async move {
            let (stream, _) = acceptor.accept().await;
            Some((Ok(stream), acceptor))
        })
    }
}

/// `EMFILE` (this process's limit), `ENFILE` (the system's), or the kernel short of memory for
/// a socket: conditions that pass once connections close.
fn out_of_descriptors(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error().map(Errno::from_raw),
        Some(Errno::EMFILE | Errno::ENFILE | Errno::ENOBUFS | Errno::ENOMEM)
    )
}

fn open_spare() -> Option<File> {
    File::open("/dev/null").ok()
}
