//! A stream of a SPDY session: its headers, and both directions as an async reader and
//! writer.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::frame::{self, Frame, Headers};
use super::session::{lock, Shared, StreamState, MAX_QUEUED, MAX_WRITE_CHUNK};

/// One stream: the headers its opener sent, and both directions.
pub struct SpdyStream {
    id: u32,
    headers: Headers,
    reader: StreamReader,
    writer: StreamWriter,
}

impl SpdyStream {
    pub(super) fn new(
        id: u32,
        headers: Headers,
        st: Arc<Mutex<StreamState>>,
        shared: Arc<Shared>,
    ) -> Self {
        Self {
            id,
            headers,
            reader: StreamReader {
                id,
                st: st.clone(),
                shared: shared.clone(),
            },
            writer: StreamWriter { id, st, shared },
        }
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// Sends RST_STREAM: neither side may use the stream any more.
    pub fn reset(&self, status: u32) {
        self.writer.reset(status)
    }

    pub fn into_split(self) -> (StreamReader, StreamWriter) {
        (self.reader, self.writer)
    }
}

/// The inbound half of a stream; dropping it discards (and acknowledges) later data.
pub struct StreamReader {
    id: u32,
    st: Arc<Mutex<StreamState>>,
    shared: Arc<Shared>,
}

impl AsyncRead for StreamReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let mut g = lock(&this.st);
        if g.recv.is_empty() {
            if g.reset {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "spdy stream was reset",
                )));
            }
            if g.recv_fin {
                return Poll::Ready(Ok(()));
            }
            g.read_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let mut n = 0;
        while out.remaining() > 0 {
            let Some(front) = g.recv.front_mut() else {
                break;
            };
            let k = front.len().min(out.remaining());
            out.put_slice(&front.split_to(k));
            n += k;
            if front.is_empty() {
                g.recv.pop_front();
            }
        }
        g.recv_len -= n;
        this.shared.consumed(this.id, &mut g, n);
        Poll::Ready(Ok(()))
    }
}

impl Drop for StreamReader {
    fn drop(&mut self) {
        let mut g = lock(&self.st);
        g.reader_gone = true;
        let n = std::mem::take(&mut g.recv_len);
        g.recv.clear();
        self.shared.consumed(self.id, &mut g, n);
    }
}

/// The outbound half of a stream; shutting it down (or dropping it) sends FIN.
pub struct StreamWriter {
    id: u32,
    st: Arc<Mutex<StreamState>>,
    shared: Arc<Shared>,
}

impl StreamWriter {
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Sends RST_STREAM: neither side may use the stream any more.
    pub fn reset(&self, status: u32) {
        let mut g = lock(&self.st);
        if g.reset {
            return;
        }
        g.reset = true;
        g.wake();
        self.shared.send(Frame::RstStream {
            stream_id: self.id,
            status,
        });
        drop(g);
        self.shared.remove_if(self.id, true);
    }

    fn fin(&self) {
        let mut g = lock(&self.st);
        if g.local_fin || g.reset {
            return;
        }
        g.local_fin = true;
        self.shared.send(Frame::Data {
            stream_id: self.id,
            flags: frame::FLAG_FIN,
            data: Bytes::new(),
        });
        let done = g.recv_fin;
        drop(g);
        self.shared.remove_if(self.id, done);
    }
}

impl AsyncWrite for StreamWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut s = lock(&this.shared.state);
        if s.dead {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "spdy session is closed",
            )));
        }
        if s.queued >= MAX_QUEUED {
            s.queue_wakers.push(cx.waker().clone());
            return Poll::Pending;
        }
        let mut g = lock(&this.st);
        if g.reset {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "spdy stream was reset",
            )));
        }
        if g.local_fin {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "spdy stream is closed for writing",
            )));
        }
        let mut n = buf.len().min(MAX_WRITE_CHUNK);
        if s.enforce_window {
            let window = g.send_window.min(s.session_window);
            if window <= 0 {
                g.write_waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            n = n.min(window as usize);
        }
        // windows are tracked even before they are enforced, so that a peer whose first
        // WINDOW_UPDATE switches enforcement on gets an accurate window
        g.send_window -= n as i64;
        s.session_window -= n as i64;
        s.queued += n;
        drop(g);
        drop(s);
        this.shared.send(Frame::Data {
            stream_id: this.id,
            flags: 0,
            data: Bytes::copy_from_slice(&buf[..n]),
        });
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.fin();
        Poll::Ready(Ok(()))
    }
}

impl Drop for StreamWriter {
    fn drop(&mut self) {
        self.fin();
    }
}
