//! Connections that shutdown can cut. A graceful stop waits for every request and stream of a
//! connection to end, and a watch or a lease keep-alive stream never ends by itself; once the
//! drain deadline has passed, the listener's stage turns to [`Stage::Closed`] and every read or
//! write on its connections fails, so the HTTP server drops them and the stop goes on.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tonic::transport::server::Connected;

/// Where a listener is in its life, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    Serving,
    /// No new connections; requests in flight may finish.
    Draining,
    /// Connections still open are cut.
    Closed,
}

/// Resolves once `stage` reaches `at` (or its sender is gone, which only happens when the
/// server itself is gone).
pub async fn reached(mut stage: watch::Receiver<Stage>, at: Stage) {
    let _ = stage.wait_for(|now| *now >= at).await;
}

/// A connection `S` whose reads and writes fail once its listener is closed.
pub struct Severable<S> {
    inner: S,
    closed: Pin<Box<dyn Future<Output = ()> + Send>>,
    cut: bool,
}

impl<S> Severable<S> {
    pub fn new(inner: S, stage: watch::Receiver<Stage>) -> Severable<S> {
        Severable {
            inner,
            closed: Box::pin(reached(stage, Stage::Closed)),
            cut: false,
        }
    }

    /// Whether the connection has been cut; polling registers the task to be woken when it is.
    fn is_cut(&mut self, cx: &mut Context<'_>) -> bool {
        self.cut = self.cut || self.closed.as_mut().poll(cx).is_ready();
        self.cut
    }
}

fn cut_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "server stopped: drain deadline passed",
    )
}

impl<S: AsyncRead + Unpin> AsyncRead for Severable<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.is_cut(cx) {
            return Poll::Ready(Err(cut_error()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Severable<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.is_cut(cx) {
            return Poll::Ready(Err(cut_error()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.is_cut(cx) {
            return Poll::Ready(Err(cut_error()));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.is_cut(cx) {
            return Poll::Ready(Err(cut_error()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S: Connected> Connected for Severable<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}
