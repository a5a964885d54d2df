//! Client connections whose HTTP/2 `:authority` is a whole URL.
//!
//! etcdctl 3.4 dials its per-endpoint maintenance calls (`endpoint status`,
//! `endpoint hashkv`, `defrag`, ...) with the endpoint as given, so with
//! `--endpoints=http://host:2379` the `:authority` it sends is
//! `http://host:2379`. Go's server accepts that; Rust's `h2` refuses the
//! request as malformed. This reader sits between the socket (or the TLS
//! stream over it) and the HTTP server: on HTTP/2 connections it re-encodes every header block, with such
//! an authority reduced to `host:port`; HTTP/1 connections pass untouched.
//!
//! Header blocks are HPACK-compressed against state shared with the peer, so
//! all of a connection's blocks are decoded (keeping the client's table) and
//! re-encoded (keeping the server's), never only the ones that change.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER_LEN: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// The smallest maximum frame size a peer must accept; frames we write stay
/// within it whatever the server's settings.
const MAX_FRAME: usize = 16_384;

enum Mode {
    /// Not yet known whether the client speaks HTTP/2.
    Sniffing,
    Http2,
    PassThrough,
}

/// A header block being collected from HEADERS and CONTINUATION frames.
struct PendingBlock {
    stream_id: u32,
    flags: u8,
    priority: Option<[u8; 5]>,
    fragment: Vec<u8>,
}

/// The fixing reader over a connection `S`: a TCP stream, or a TLS stream over one.
pub struct AuthorityFix<S> {
    inner: S,
    mode: Mode,
    /// Bytes read from the socket, not yet processed.
    input: BytesMut,
    /// Processed bytes the HTTP server has yet to read.
    output: BytesMut,
    pending: Option<PendingBlock>,
    decoder: fluke_hpack::Decoder<'static>,
    encoder: fluke_hpack::Encoder<'static>,
}

impl<S> AuthorityFix<S> {
    pub fn new(inner: S) -> Self {
        AuthorityFix {
            inner,
            mode: Mode::Sniffing,
            input: BytesMut::new(),
            output: BytesMut::new(),
            pending: None,
            decoder: fluke_hpack::Decoder::new(),
            encoder: fluke_hpack::Encoder::new(),
        }
    }

    /// Moves whatever can be processed from `input` to `output`.
    fn process(&mut self) {
        if let Mode::Sniffing = self.mode {
            let seen = self.input.len().min(PREFACE.len());
            if self.input[..seen] != PREFACE[..seen] {
                self.mode = Mode::PassThrough;
            } else if seen == PREFACE.len() {
                self.output.extend_from_slice(&self.input.split_to(PREFACE.len()));
                self.mode = Mode::Http2;
            }
        }
        match self.mode {
            Mode::Sniffing => {}
            Mode::PassThrough => self.output.extend_from_slice(&self.input.split()),
            Mode::Http2 => self.process_frames(),
        }
    }

    fn process_frames(&mut self) {
        while self.input.len() >= FRAME_HEADER_LEN {
            let length = u32::from_be_bytes([0, self.input[0], self.input[1], self.input[2]]) as usize;
            if self.input.len() < FRAME_HEADER_LEN + length {
                return;
            }
            let kind = self.input[3];
            let flags = self.input[4];
            let stream_id = u32::from_be_bytes([self.input[5], self.input[6], self.input[7], self.input[8]]);
            let frame = self.input.split_to(FRAME_HEADER_LEN + length);
            let payload = &frame[FRAME_HEADER_LEN..];
            match kind {
                HEADERS => match split_headers_payload(flags, payload) {
                    Some((priority, fragment)) => {
                        let block = PendingBlock {
                            stream_id,
                            flags,
                            priority,
                            fragment: fragment.to_vec(),
                        };
                        if flags & END_HEADERS != 0 {
                            self.rewrite(block);
                        } else {
                            self.pending = Some(block);
                        }
                    }
                    // Malformed: let the HTTP server see it and say so.
                    None => self.output.extend_from_slice(&frame),
                },
                CONTINUATION if self.pending.as_ref().is_some_and(|p| p.stream_id == stream_id) => {
                    let mut block = self.pending.take().expect("checked above");
                    block.fragment.extend_from_slice(payload);
                    if flags & END_HEADERS != 0 {
                        self.rewrite(block);
                    } else {
                        self.pending = Some(block);
                    }
                }
                _ => self.output.extend_from_slice(&frame),
            }
        }
    }

    /// Decodes a complete header block, fixes the authority, and writes it
    /// re-encoded as HEADERS (+ CONTINUATION) frames.
    fn rewrite(&mut self, block: PendingBlock) {
        let headers = match self.decoder.decode(&block.fragment) {
            Ok(headers) => headers,
            Err(_) => {
                // The server's decoder will fail on it the same way.
                write_block(&mut self.output, &block, &block.fragment);
                return;
            }
        };
        let fixed: Vec<(Vec<u8>, Vec<u8>)> = headers
            .into_iter()
            .map(|(name, value)| {
                if name == b":authority" {
                    (name, host_port(&value).to_vec())
                } else {
                    (name, value)
                }
            })
            .collect();
        let encoded = self
            .encoder
            .encode(fixed.iter().map(|(n, v)| (n.as_slice(), v.as_slice())));
        write_block(&mut self.output, &block, &encoded);
    }
}

/// `scheme://host:port[/...]` -> `host:port`; anything else unchanged.
fn host_port(authority: &[u8]) -> &[u8] {
    let Some(at) = authority.windows(3).position(|w| w == b"://") else {
        return authority;
    };
    let rest = &authority[at + 3..];
    let end = rest.iter().position(|&b| b == b'/').unwrap_or(rest.len());
    &rest[..end]
}

/// The priority fields and header block fragment of a HEADERS payload.
fn split_headers_payload(flags: u8, payload: &[u8]) -> Option<(Option<[u8; 5]>, &[u8])> {
    let mut body = payload;
    let mut padding = 0;
    if flags & PADDED != 0 {
        padding = *body.first()? as usize;
        body = &body[1..];
    }
    let priority = if flags & PRIORITY != 0 {
        let fields: [u8; 5] = body.get(..5)?.try_into().ok()?;
        body = &body[5..];
        Some(fields)
    } else {
        None
    };
    let fragment = body.get(..body.len().checked_sub(padding)?)?;
    Some((priority, fragment))
}

fn write_frame(out: &mut BytesMut, kind: u8, flags: u8, stream_id: u32, payload: &[&[u8]]) {
    let length: usize = payload.iter().map(|p| p.len()).sum();
    out.put_slice(&(length as u32).to_be_bytes()[1..]);
    out.put_u8(kind);
    out.put_u8(flags);
    out.put_u32(stream_id);
    for part in payload {
        out.put_slice(part);
    }
}

fn write_block(out: &mut BytesMut, block: &PendingBlock, encoded: &[u8]) {
    let priority: &[u8] = block.priority.as_ref().map_or(&[], |p| p.as_slice());
    let first_len = encoded.len().min(MAX_FRAME - priority.len());
    let (first, mut rest) = encoded.split_at(first_len);
    let mut flags = block.flags & (END_STREAM | PRIORITY);
    if rest.is_empty() {
        flags |= END_HEADERS;
    }
    write_frame(out, HEADERS, flags, block.stream_id, &[priority, first]);
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(rest.len().min(MAX_FRAME));
        rest = tail;
        let flags = if rest.is_empty() { END_HEADERS } else { 0 };
        write_frame(out, CONTINUATION, flags, block.stream_id, &[chunk]);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityFix<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.output.is_empty() {
                let n = this.output.len().min(buf.remaining());
                buf.put_slice(&this.output[..n]);
                this.output.advance(n);
                return Poll::Ready(Ok(()));
            }
            if matches!(this.mode, Mode::PassThrough) && this.input.is_empty() {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            let mut chunk = [0u8; 16 * 1024];
            let mut read = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) if read.filled().is_empty() => {
                    // End of stream: hand over anything incomplete as it is.
                    this.output.extend_from_slice(&this.input.split());
                    if this.output.is_empty() {
                        return Poll::Ready(Ok(()));
                    }
                }
                Poll::Ready(Ok(())) => {
                    this.input.extend_from_slice(read.filled());
                    this.process();
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S: Connected> Connected for AuthorityFix<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> S::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authority_is_reduced_to_host_and_port() {
        assert_eq!(host_port(b"http://127.0.0.1:2379"), b"127.0.0.1:2379");
        assert_eq!(host_port(b"https://h:1/x"), b"h:1");
        assert_eq!(host_port(b"127.0.0.1:2379"), b"127.0.0.1:2379");
    }

    #[test]
    fn padded_and_prioritized_headers_are_split() {
        let payload = [2, 1, 2, 3, 4, 5, b'a', b'b', 0, 0];
        let (priority, fragment) = split_headers_payload(PADDED | PRIORITY, &payload).unwrap();
        assert_eq!(priority, Some([1, 2, 3, 4, 5]));
        assert_eq!(fragment, b"ab");
        assert!(split_headers_payload(PADDED, &[9, 1]).is_none());
    }
}
