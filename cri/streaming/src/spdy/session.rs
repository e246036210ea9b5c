//! A SPDY/3.1 session over any byte stream: streams as async readers and writers.
//!
//! Two tasks run per session: the reader (frames in: new streams, DATA into per-stream buffers,
//! PING answers, GOAWAY, window updates) and the writer (frames out, in order, through the one
//! compression context). Stream handles talk to the writer through an unbounded queue whose
//! byte count is bounded by [`MAX_QUEUED`]: a writer that finds it full waits.
//!
//! Flow control: every consumed DATA byte is acknowledged with WINDOW_UPDATE (per stream and,
//! as SPDY/3.1 adds, for the session) once half a window has been read. client-go's spdystream
//! neither sends nor honours WINDOW_UPDATE, so the send windows (always tracked) are only
//! enforced once the peer has shown it does flow control by sending one; inbound, a peer that
//! ignores our windows is bounded by stalling the socket reads while a stream's buffer (or the
//! session's) is full, as spdystream itself does, never by dropping data.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::Waker;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, Notify};

use super::frame::{
    self, goaway, rst, settings, Frame, FrameDecoder, FrameEncoder, FrameError, Headers,
};
pub use super::stream::{SpdyStream, StreamReader, StreamWriter};

/// The SPDY/3.1 initial window, per stream and for the session.
pub const INITIAL_WINDOW: i64 = 64 * 1024;
/// Bytes of DATA queued to the writer task before stream writers wait.
pub const MAX_QUEUED: usize = 256 * 1024;
/// Inbound bytes buffered per stream before the session stops reading the socket.
pub const MAX_BUFFERED: usize = 256 * 1024;
/// Inbound bytes buffered over all streams of a session before it stops reading the socket.
pub const MAX_SESSION_BUFFERED: usize = 4 << 20;
/// The largest DATA frame this side writes.
pub const MAX_WRITE_CHUNK: usize = 32 * 1024;
/// Concurrent streams a peer may open; more are refused.
pub const MAX_STREAMS: usize = 1024;
/// How long a closed session waits for the peer to hang up before dropping the connection.
pub const CLOSE_GRACE: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Role {
    Server,
    Client,
}

pub(super) enum Out {
    Frame(Frame),
    Shutdown,
}

pub(super) struct StreamState {
    pub(super) recv: VecDeque<Bytes>,
    pub(super) recv_len: usize,
    pub(super) recv_fin: bool,
    pub(super) reset: bool,
    pub(super) read_waker: Option<Waker>,
    pub(super) reader_gone: bool,
    pub(super) unacked: i64,
    pub(super) send_window: i64,
    pub(super) write_waker: Option<Waker>,
    pub(super) local_fin: bool,
    pub(super) reply: Option<oneshot::Sender<Result<(), u32>>>,
}

impl StreamState {
    fn new(send_window: i64) -> Self {
        Self {
            recv: VecDeque::new(),
            recv_len: 0,
            recv_fin: false,
            reset: false,
            read_waker: None,
            reader_gone: false,
            unacked: 0,
            send_window,
            write_waker: None,
            local_fin: false,
            reply: None,
        }
    }

    pub(super) fn wake(&mut self) {
        if let Some(w) = self.read_waker.take() {
            w.wake();
        }
        if let Some(w) = self.write_waker.take() {
            w.wake();
        }
    }
}

pub(super) struct SessionState {
    pub(super) streams: HashMap<u32, Arc<Mutex<StreamState>>>,
    pub(super) queued: usize,
    pub(super) queue_wakers: Vec<Waker>,
    pub(super) enforce_window: bool,
    pub(super) initial_window: i64,
    pub(super) session_window: i64,
    pub(super) dead: bool,
    pub(super) last_peer_stream: u32,
    pub(super) next_local_stream: u32,
    pub(super) next_ping: u32,
    pub(super) pings: HashMap<u32, oneshot::Sender<()>>,
}

/// Decides from its headers whether a new stream is accepted (else it is refused unreplied).
pub type StreamCheck = Box<dyn Fn(&Headers) -> bool + Send + Sync>;

pub(super) struct Shared {
    pub(super) role: Role,
    pub(super) check: Option<StreamCheck>,
    pub(super) out: mpsc::UnboundedSender<Out>,
    pub(super) state: Mutex<SessionState>,
    pub(super) session_unacked: AtomicI64,
    pub(super) buffered: AtomicUsize,
    pub(super) closing: AtomicBool,
    pub(super) space: Notify,
    pub(super) closed: Notify,
    /// tells the reader to stop reading (and to end every stream's input)
    pub(super) stop: Notify,
    pub(super) reader_done: AtomicBool,
    /// when the session started, and the last frame in or out (ms after it), for idle timeouts
    pub(super) born: Instant,
    pub(super) activity: AtomicU64,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // a panic elsewhere never leaves these states half-updated in a way reads cannot survive
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn touch(&self) {
        let ms = self.born.elapsed().as_millis().min(u128::from(u64::MAX)) as u64;
        self.activity.store(ms, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.activity.load(Ordering::Relaxed));
        self.born.elapsed().saturating_sub(last)
    }

    pub(super) fn send(&self, f: Frame) {
        let _ = self.out.send(Out::Frame(f));
    }

    fn stream(&self, id: u32) -> Option<Arc<Mutex<StreamState>>> {
        lock(&self.state).streams.get(&id).cloned()
    }

    /// Forgets a stream both sides have finished (or that was reset). Called without the
    /// stream's lock held: the lock order is session state, then stream.
    pub(super) fn remove_if(&self, id: u32, done: bool) {
        if done {
            lock(&self.state).streams.remove(&id);
        }
    }

    /// Acknowledges `n` consumed bytes of stream `id` with WINDOW_UPDATEs at half a window.
    pub(super) fn consumed(&self, id: u32, st: &mut StreamState, n: usize) {
        self.buffered.fetch_sub(n, Ordering::AcqRel);
        st.unacked += n as i64;
        if st.unacked >= INITIAL_WINDOW / 2 && !st.recv_fin && !st.reset {
            self.send(Frame::WindowUpdate {
                stream_id: id,
                delta: st.unacked as u32,
            });
            st.unacked = 0;
        }
        let total = self.session_unacked.fetch_add(n as i64, Ordering::AcqRel) + n as i64;
        let session_delta = if total >= INITIAL_WINDOW / 2 {
            self.session_unacked.swap(0, Ordering::AcqRel)
        } else {
            0
        };
        if session_delta > 0 {
            self.send(Frame::WindowUpdate {
                stream_id: 0,
                delta: session_delta as u32,
            });
        }
        self.space.notify_one();
    }

    fn kill(&self) {
        let streams: Vec<_> = {
            let mut s = lock(&self.state);
            s.dead = true;
            for w in s.queue_wakers.drain(..) {
                w.wake();
            }
            s.pings.clear();
            s.streams.values().cloned().collect()
        };
        for st in streams {
            let mut st = lock(&st);
            st.reply.take();
            st.wake();
        }
    }
}

/// A SPDY session: accept the peer's streams (server) or open streams (client).
pub struct Session {
    shared: Arc<Shared>,
    incoming: mpsc::UnboundedReceiver<SpdyStream>,
}

/// A cloneable handle to close a session or ping its peer.
#[derive(Clone)]
pub struct SessionHandle {
    shared: Arc<Shared>,
}

impl Session {
    /// Runs the server side of a session on `io` (the upgraded connection).
    pub fn server<T: AsyncRead + AsyncWrite + Send + 'static>(io: T) -> Session {
        Self::start(io, Role::Server, None)
    }

    /// Like [`Session::server`], but a stream whose headers `check` refuses is reset with
    /// REFUSED_STREAM instead of being replied to (so the opener's create fails, as with the
    /// kubelet).
    pub fn server_with_check<T: AsyncRead + AsyncWrite + Send + 'static>(
        io: T,
        check: StreamCheck,
    ) -> Session {
        Self::start(io, Role::Server, Some(check))
    }

    /// Runs the client side of a session on `io`.
    pub fn client<T: AsyncRead + AsyncWrite + Send + 'static>(io: T) -> Session {
        Self::start(io, Role::Client, None)
    }

    fn start<T: AsyncRead + AsyncWrite + Send + 'static>(
        io: T,
        role: Role,
        check: Option<StreamCheck>,
    ) -> Session {
        let (rd, wr) = tokio::io::split(io);
        let (out, out_rx) = mpsc::unbounded_channel();
        let (in_tx, incoming) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            role,
            check,
            out,
            state: Mutex::new(SessionState {
                streams: HashMap::new(),
                queued: 0,
                queue_wakers: Vec::new(),
                enforce_window: false,
                initial_window: INITIAL_WINDOW,
                session_window: INITIAL_WINDOW,
                dead: false,
                last_peer_stream: 0,
                next_local_stream: if role == Role::Client { 1 } else { 2 },
                next_ping: if role == Role::Client { 1 } else { 2 },
                pings: HashMap::new(),
            }),
            session_unacked: AtomicI64::new(0),
            buffered: AtomicUsize::new(0),
            closing: AtomicBool::new(false),
            space: Notify::new(),
            closed: Notify::new(),
            stop: Notify::new(),
            reader_done: AtomicBool::new(false),
            born: Instant::now(),
            activity: AtomicU64::new(0),
        });
        // the writer holds the session weakly: once every handle, stream and the reader are
        // gone, the queue's last sender drops and the writer ends
        tokio::spawn(writer_task(wr, out_rx, Arc::downgrade(&shared)));
        tokio::spawn(reader_task(rd, shared.clone(), in_tx));
        Session { shared, incoming }
    }

    /// The next stream the peer opened; `None` once the peer hung up or sent GOAWAY.
    pub async fn accept(&mut self) -> Option<SpdyStream> {
        self.incoming.recv().await
    }

    pub fn handle(&self) -> SessionHandle {
        SessionHandle {
            shared: self.shared.clone(),
        }
    }

    /// Opens a stream and waits for the peer's SYN_REPLY.
    pub async fn open(&self, headers: Headers, fin: bool) -> io::Result<SpdyStream> {
        self.handle().open(headers, fin).await
    }

    /// Sends GOAWAY after everything queued, then shuts the connection down.
    pub fn close(&self) {
        self.handle().close()
    }

    /// Refuses (RST_STREAM REFUSED_STREAM) every stream the peer opens from now on.
    pub fn stop_accepting(&mut self) {
        self.incoming.close();
    }
}

impl Drop for Session {
    /// A session whose owner is done is closed; open streams can no longer send.
    fn drop(&mut self) {
        self.close();
    }
}

impl SessionHandle {
    /// Opens a stream and waits for the peer's SYN_REPLY.
    pub async fn open(&self, headers: Headers, fin: bool) -> io::Result<SpdyStream> {
        let (tx, rx) = oneshot::channel();
        let (id, st) = {
            let mut s = lock(&self.shared.state);
            if s.dead {
                return Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "spdy session is closed",
                ));
            }
            let id = s.next_local_stream;
            if id > 0x7FFF_FFFF {
                return Err(io::Error::other("spdy stream ids are used up"));
            }
            s.next_local_stream += 2;
            let mut st = StreamState::new(s.initial_window);
            st.local_fin = fin;
            st.reply = Some(tx);
            let st = Arc::new(Mutex::new(st));
            s.streams.insert(id, st.clone());
            (id, st)
        };
        let flags = if fin { frame::FLAG_FIN } else { 0 };
        self.shared.send(Frame::SynStream {
            stream_id: id,
            associated_to: 0,
            priority: 0,
            flags,
            headers: headers.clone(),
        });
        match rx.await {
            Ok(Ok(())) => Ok(SpdyStream::new(id, headers, st, self.shared.clone())),
            Ok(Err(code)) => Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("spdy stream {id} reset by peer (status {code})"),
            )),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "spdy session closed before the stream was replied to",
            )),
        }
    }

    /// Sends a PING and waits for its echo.
    pub async fn ping(&self) -> io::Result<()> {
        let (tx, rx) = oneshot::channel();
        let id = {
            let mut s = lock(&self.shared.state);
            let id = s.next_ping;
            s.next_ping = s.next_ping.wrapping_add(2);
            s.pings.insert(id, tx);
            id
        };
        self.shared.send(Frame::Ping { id });
        rx.await.map_err(|_| {
            io::Error::new(
                io::ErrorKind::BrokenPipe,
                "spdy session closed before the ping came back",
            )
        })
    }

    /// Sends GOAWAY after everything queued, then shuts the connection down; the reader
    /// stops when the peer hangs up or after [`CLOSE_GRACE`], and then every stream reads EOF.
    pub fn close(&self) {
        self.close_after(CLOSE_GRACE);
    }

    fn close_after(&self, grace: Duration) {
        if self.shared.closing.swap(true, Ordering::AcqRel) {
            return;
        }
        let last = lock(&self.shared.state).last_peer_stream;
        self.shared.send(Frame::GoAway {
            last_good_stream_id: last,
            status: goaway::OK,
        });
        let _ = self.shared.out.send(Out::Shutdown);
        let weak = Arc::downgrade(&self.shared);
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            if let Some(shared) = weak.upgrade() {
                // a stored permit: the reader stops even if it is not waiting yet
                shared.stop.notify_one();
            }
        });
    }

    /// Closes the session once no frame has gone either way for `timeout` (the kubelet's
    /// stream idle timeout).
    pub fn set_idle_timeout(&self, timeout: Duration) {
        let weak = Arc::downgrade(&self.shared);
        tokio::spawn(async move {
            loop {
                let Some(shared) = weak.upgrade() else { return };
                if shared.reader_done.load(Ordering::Acquire) {
                    return;
                }
                let idle = shared.idle_for();
                if idle >= timeout {
                    tracing::debug!("spdy: session idle for {idle:?}, closing");
                    SessionHandle { shared }.close_after(Duration::ZERO);
                    return;
                }
                drop(shared);
                tokio::time::sleep(timeout - idle).await;
            }
        });
    }

    /// Resolves once the reader has stopped (the peer hung up, or the session was closed).
    pub async fn closed(&self) {
        let notified = self.shared.closed.notified();
        if self.shared.reader_done.load(Ordering::Acquire) {
            return;
        }
        notified.await
    }
}

async fn writer_task<W: AsyncWrite + Unpin>(
    mut wr: W,
    mut rx: mpsc::UnboundedReceiver<Out>,
    shared: Weak<Shared>,
) {
    let mut enc = FrameEncoder::new();
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut shutdown = false;
    while !shutdown {
        let Some(first) = rx.recv().await else { break };
        buf.clear();
        let mut data_bytes = 0usize;
        let mut next = Some(first);
        while let Some(out) = next.take() {
            match out {
                Out::Frame(f) => {
                    if let Frame::Data { data, .. } = &f {
                        data_bytes += data.len();
                    }
                    if let Err(e) = enc.encode(&f, &mut buf) {
                        tracing::debug!("spdy: frame not sent: {e}");
                    }
                }
                Out::Shutdown => shutdown = true,
            }
            if !shutdown && buf.len() < 256 * 1024 {
                next = rx.try_recv().ok();
            }
        }
        let res = async {
            wr.write_all(&buf).await?;
            wr.flush().await
        };
        if let Err(e) = res.await {
            tracing::debug!("spdy: write failed: {e}");
            break;
        }
        let Some(shared) = shared.upgrade() else {
            continue;
        };
        shared.touch();
        let mut s = lock(&shared.state);
        s.queued = s.queued.saturating_sub(data_bytes);
        for w in s.queue_wakers.drain(..) {
            w.wake();
        }
    }
    let _ = wr.shutdown().await;
    if let Some(shared) = shared.upgrade() {
        shared.kill();
    }
}

async fn reader_task<R: AsyncRead + Unpin>(
    mut rd: R,
    shared: Arc<Shared>,
    incoming: mpsc::UnboundedSender<SpdyStream>,
) {
    let mut incoming = Some(incoming);
    let mut dec = FrameDecoder::new();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let result: Result<(), String> = 'outer: loop {
        let (frame, used) = loop {
            match frame::split_frame(&buf) {
                Ok(Some((raw, used))) => match dec.decode(raw) {
                    Ok(f) => break (f, used),
                    Err(e) => break 'outer Err(e.to_string()),
                },
                Ok(None) => {}
                Err(e) => break 'outer Err(e.to_string()),
            }
            if buf.capacity() - buf.len() < 16 * 1024 {
                buf.reserve(64 * 1024);
            }
            let read = tokio::select! {
                r = rd.read_buf(&mut buf) => r,
                _ = shared.stop.notified() => break 'outer Ok(()),
            };
            match read {
                Ok(0) if buf.is_empty() => break 'outer Ok(()),
                Ok(0) => break 'outer Err("connection closed inside a frame".into()),
                Ok(_) => {}
                Err(e) => break 'outer Err(e.to_string()),
            }
        };
        let _ = buf.split_to(used);
        shared.touch();
        match handle_frame(&shared, &mut incoming, frame).await {
            Ok(Flow::Continue) => {}
            Ok(Flow::Stop) => break Ok(()),
            Err(e) => break Err(e.to_string()),
        }
    };
    if let Err(e) = &result {
        tracing::debug!("spdy: session ends: {e}");
        let last = lock(&shared.state).last_peer_stream;
        shared.send(Frame::GoAway {
            last_good_stream_id: last,
            status: goaway::PROTOCOL_ERROR,
        });
        let _ = shared.out.send(Out::Shutdown);
    }
    // the peer is gone: every stream reads EOF, no new streams arrive
    drop(incoming);
    let streams: Vec<_> = lock(&shared.state).streams.values().cloned().collect();
    for st in streams {
        let mut st = lock(&st);
        st.recv_fin = true;
        st.reply.take();
        st.wake();
    }
    lock(&shared.state).pings.clear();
    shared.reader_done.store(true, Ordering::Release);
    shared.closed.notify_waiters();
}

/// Whether the reader goes on after a frame.
enum Flow {
    Continue,
    Stop,
}

async fn handle_frame(
    shared: &Arc<Shared>,
    incoming: &mut Option<mpsc::UnboundedSender<SpdyStream>>,
    f: Frame,
) -> Result<Flow, FrameError> {
    match f {
        Frame::SynStream {
            stream_id,
            flags,
            headers,
            ..
        } => {
            let peer_parity = if shared.role == Role::Server { 1 } else { 0 };
            let refuse = {
                let mut s = lock(&shared.state);
                if stream_id % 2 != peer_parity || stream_id <= s.last_peer_stream {
                    Some(rst::PROTOCOL_ERROR)
                } else {
                    s.last_peer_stream = stream_id;
                    let refused = shared.check.as_ref().is_some_and(|c| !c(&headers));
                    if refused || incoming.is_none() || s.streams.len() >= MAX_STREAMS {
                        Some(rst::REFUSED_STREAM)
                    } else {
                        None
                    }
                }
            };
            if let Some(status) = refuse {
                shared.send(Frame::RstStream { stream_id, status });
                return Ok(Flow::Continue);
            }
            let st = {
                let mut s = lock(&shared.state);
                let mut st = StreamState::new(s.initial_window);
                st.recv_fin = flags & frame::FLAG_FIN != 0;
                st.local_fin = flags & frame::FLAG_UNIDIRECTIONAL != 0;
                let st = Arc::new(Mutex::new(st));
                s.streams.insert(stream_id, st.clone());
                st
            };
            shared.send(Frame::SynReply {
                stream_id,
                flags: 0,
                headers: Headers::new(),
            });
            let stream = SpdyStream::new(stream_id, headers, st, shared.clone());
            if let Some(tx) = incoming.as_ref() {
                if let Err(e) = tx.send(stream) {
                    e.0.reset(rst::REFUSED_STREAM);
                }
            }
        }
        Frame::SynReply {
            stream_id, flags, ..
        } => {
            if let Some(st) = shared.stream(stream_id) {
                let mut st = lock(&st);
                if let Some(tx) = st.reply.take() {
                    let _ = tx.send(Ok(()));
                }
                if flags & frame::FLAG_FIN != 0 {
                    st.recv_fin = true;
                    st.wake();
                }
            }
        }
        Frame::Data {
            stream_id,
            flags,
            data,
        } => {
            let Some(st) = shared.stream(stream_id) else {
                shared.send(Frame::RstStream {
                    stream_id,
                    status: rst::INVALID_STREAM,
                });
                return Ok(Flow::Continue);
            };
            let n = data.len();
            {
                let mut g = lock(&st);
                if g.recv_fin || g.reset {
                    drop(g);
                    shared.send(Frame::RstStream {
                        stream_id,
                        status: rst::STREAM_ALREADY_CLOSED,
                    });
                    return Ok(Flow::Continue);
                }
                shared.buffered.fetch_add(n, Ordering::AcqRel);
                if g.reader_gone {
                    shared.consumed(stream_id, &mut g, n);
                } else if n > 0 {
                    g.recv_len += n;
                    g.recv.push_back(data);
                }
                if flags & frame::FLAG_FIN != 0 {
                    g.recv_fin = true;
                }
                g.wake();
                let done = g.recv_fin && g.local_fin;
                drop(g);
                shared.remove_if(stream_id, done);
            }
            // backpressure: stop reading the socket while this stream's reader lags
            loop {
                let notified = shared.space.notified();
                {
                    let g = lock(&st);
                    let total = shared.buffered.load(Ordering::Acquire);
                    if (g.recv_len <= MAX_BUFFERED && total <= MAX_SESSION_BUFFERED)
                        || g.reader_gone
                        || g.reset
                    {
                        break;
                    }
                }
                tokio::select! {
                    _ = notified => {}
                    _ = shared.stop.notified() => return Ok(Flow::Stop),
                }
            }
        }
        Frame::RstStream { stream_id, status } => {
            if let Some(st) = shared.stream(stream_id) {
                let mut g = lock(&st);
                g.reset = true;
                if let Some(tx) = g.reply.take() {
                    let _ = tx.send(Err(status));
                }
                g.wake();
                drop(g);
                shared.remove_if(stream_id, true);
            }
        }
        Frame::Settings { entries, .. } => {
            for e in entries {
                if e.id == settings::INITIAL_WINDOW_SIZE && e.value <= 0x7FFF_FFFF {
                    let streams: Vec<_> = {
                        let mut s = lock(&shared.state);
                        let delta = i64::from(e.value) - s.initial_window;
                        s.initial_window = i64::from(e.value);
                        s.streams.values().map(|st| (st.clone(), delta)).collect()
                    };
                    for (st, delta) in streams {
                        let mut g = lock(&st);
                        g.send_window = g.send_window.saturating_add(delta);
                        g.wake();
                    }
                }
            }
        }
        Frame::Ping { id } => {
            let ours = if shared.role == Role::Server {
                id % 2 == 0
            } else {
                id % 2 == 1
            };
            if ours {
                if let Some(tx) = lock(&shared.state).pings.remove(&id) {
                    let _ = tx.send(());
                }
            } else {
                shared.send(Frame::Ping { id });
            }
        }
        Frame::GoAway { .. } => {
            // no new streams; the open ones carry on until the peer hangs up
            incoming.take();
        }
        Frame::WindowUpdate { stream_id, delta } => {
            let delta = i64::from(delta);
            if stream_id == 0 {
                let mut s = lock(&shared.state);
                s.enforce_window = true;
                s.session_window = s.session_window.saturating_add(delta);
                let streams: Vec<_> = s.streams.values().cloned().collect();
                drop(s);
                for st in streams {
                    lock(&st).wake();
                }
            } else {
                lock(&shared.state).enforce_window = true;
                if let Some(st) = shared.stream(stream_id) {
                    let mut g = lock(&st);
                    g.send_window = g.send_window.saturating_add(delta);
                    if g.send_window > 0x7FFF_FFFF {
                        g.reset = true;
                        g.wake();
                        drop(g);
                        shared.send(Frame::RstStream {
                            stream_id,
                            status: rst::FLOW_CONTROL_ERROR,
                        });
                        return Ok(Flow::Continue);
                    }
                    g.wake();
                }
            }
        }
        Frame::Headers { .. } | Frame::Unknown { .. } => {}
    }
    Ok(Flow::Continue)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Session, Session) {
        let (a, b) = tokio::io::duplex(64 * 1024);
        (Session::server(a), Session::client(b))
    }

    #[tokio::test]
    async fn streams_carry_data_both_ways_and_fin() {
        let (mut server, client) = pair();
        let srv = tokio::spawn(async move {
            let s = server.accept().await.unwrap();
            assert_eq!(s.headers().get("streamtype"), Some("stdin"));
            let (mut r, mut w) = s.into_split();
            let mut got = Vec::new();
            r.read_to_end(&mut got).await.unwrap();
            w.write_all(&got).await.unwrap();
            w.shutdown().await.unwrap();
            server
        });
        let s = client
            .open(Headers::new().with("streamType", "stdin"), false)
            .await
            .unwrap();
        let (mut r, mut w) = s.into_split();
        let payload: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
        let p2 = payload.clone();
        let wr = tokio::spawn(async move {
            w.write_all(&p2).await.unwrap();
            w.shutdown().await.unwrap();
        });
        let mut back = Vec::new();
        r.read_to_end(&mut back).await.unwrap();
        wr.await.unwrap();
        assert_eq!(back, payload);
        let _server = srv.await.unwrap();
        client.handle().ping().await.unwrap();
    }

    #[tokio::test]
    async fn idle_sessions_are_closed_and_their_streams_end() {
        let (mut server, client) = pair();
        server.handle().set_idle_timeout(Duration::from_millis(100));
        let _kept = client.open(Headers::new(), false).await.unwrap();
        let (mut r, _w) = server.accept().await.unwrap().into_split();
        // nothing moves: the server closes, and a reader of the peer's data sees EOF
        // (not a hang) although the peer never hung up
        let mut b = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), r.read_to_end(&mut b));
        assert_eq!(read.await.unwrap().unwrap(), 0);
        let handle = server.handle();
        let closed = tokio::time::timeout(Duration::from_secs(5), handle.closed());
        closed.await.unwrap();
        assert!(server.accept().await.is_none());
    }

    #[tokio::test]
    async fn goaway_ends_accept_and_reset_reaches_reader() {
        let (mut server, client) = pair();
        let s = client.open(Headers::new(), false).await.unwrap();
        let peer = server.accept().await.unwrap();
        let (mut r, _w) = peer.into_split();
        s.reset(rst::CANCEL);
        let mut b = [0u8; 4];
        assert_eq!(
            r.read(&mut b).await.unwrap_err().kind(),
            io::ErrorKind::ConnectionReset
        );
        client.close();
        assert!(server.accept().await.is_none());
    }

    /// A raw peer: writes frames, reads frames.
    struct Raw {
        io: tokio::io::DuplexStream,
        enc: FrameEncoder,
        dec: FrameDecoder,
        buf: BytesMut,
    }

    impl Raw {
        async fn send(&mut self, f: Frame) {
            let mut out = Vec::new();
            self.enc.encode(&f, &mut out).unwrap();
            self.io.write_all(&out).await.unwrap();
        }

        /// The next frame, or `None` when nothing arrives within `wait`.
        async fn recv_within(&mut self, wait: Duration) -> Option<Frame> {
            loop {
                if let Some((raw, used)) = frame::split_frame(&self.buf).unwrap() {
                    let f = self.dec.decode(raw).unwrap();
                    let _ = self.buf.split_to(used);
                    return Some(f);
                }
                match tokio::time::timeout(wait, self.io.read_buf(&mut self.buf)).await {
                    Ok(Ok(n)) if n > 0 => {}
                    _ => return None,
                }
            }
        }

        async fn recv(&mut self) -> Option<Frame> {
            self.recv_within(Duration::from_secs(10)).await
        }

        /// Waits until the server has handled every frame sent so far (PING is answered in
        /// order).
        async fn sync(&mut self) {
            self.send(Frame::Ping { id: 7 }).await;
            while self.recv().await.expect("no ping answer") != (Frame::Ping { id: 7 }) {}
        }

        /// Reads DATA of stream 1 until `expect` bytes (or FIN) came, then checks that no
        /// more DATA follows for a moment.
        async fn drain_data(&mut self, expect: usize) -> (usize, bool) {
            let (mut n, mut fin) = (0, false);
            let mut wait = Duration::from_secs(10);
            while let Some(f) = self.recv_within(wait).await {
                if let Frame::Data {
                    stream_id: 1,
                    data,
                    flags,
                } = f
                {
                    n += data.len();
                    fin |= flags & frame::FLAG_FIN != 0;
                }
                if n >= expect || fin {
                    wait = Duration::from_millis(200);
                }
            }
            (n, fin)
        }
    }

    async fn raw_pair() -> (Session, Raw, SpdyStream) {
        let (a, b) = tokio::io::duplex(1 << 20);
        let mut server = Session::server(a);
        let mut raw = Raw {
            io: b,
            enc: FrameEncoder::new(),
            dec: FrameDecoder::new(),
            buf: BytesMut::new(),
        };
        let h = Headers::new().with("streamtype", "stdout");
        raw.send(Frame::SynStream {
            stream_id: 1,
            associated_to: 0,
            priority: 0,
            flags: 0,
            headers: h,
        })
        .await;
        let s = server.accept().await.unwrap();
        assert!(matches!(
            raw.recv().await,
            Some(Frame::SynReply { stream_id: 1, .. })
        ));
        (server, raw, s)
    }

    /// spdystream never sends WINDOW_UPDATE: the server must not stall at 64 KiB.
    #[tokio::test]
    async fn peer_without_flow_control_gets_everything() {
        let (_server, mut raw, s) = raw_pair().await;
        let (_, mut w) = s.into_split();
        w.write_all(&vec![1u8; 300_000]).await.unwrap();
        w.shutdown().await.unwrap();
        assert_eq!(raw.drain_data(300_000).await, (300_000, true));
    }

    /// A peer that does flow control gets no more than its windows allow.
    #[tokio::test]
    async fn peer_windows_are_honoured_once_it_sends_window_update() {
        let (_server, mut raw, s) = raw_pair().await;
        raw.send(Frame::WindowUpdate {
            stream_id: 1,
            delta: 1000,
        })
        .await;
        raw.send(Frame::WindowUpdate {
            stream_id: 0,
            delta: 1000,
        })
        .await;
        raw.sync().await;
        let (_, mut w) = s.into_split();
        let writer = tokio::spawn(async move {
            w.write_all(&vec![1u8; 200_000]).await.unwrap();
            w.shutdown().await.unwrap();
        });
        let first = INITIAL_WINDOW as usize + 1000;
        assert_eq!(raw.drain_data(first).await, (first, false));
        raw.send(Frame::WindowUpdate {
            stream_id: 1,
            delta: 200_000,
        })
        .await;
        raw.send(Frame::WindowUpdate {
            stream_id: 0,
            delta: 200_000,
        })
        .await;
        assert_eq!(
            raw.drain_data(200_000 - first).await,
            (200_000 - first, true)
        );
        writer.await.unwrap();
    }

    /// Data the server consumes is acknowledged, per stream and for the session.
    #[tokio::test]
    async fn consumed_data_is_acknowledged() {
        let (_server, mut raw, s) = raw_pair().await;
        let (mut r, _w) = s.into_split();
        raw.send(Frame::Data {
            stream_id: 1,
            flags: 0,
            data: Bytes::from(vec![2u8; 100_000]),
        })
        .await;
        let mut got = vec![0u8; 100_000];
        r.read_exact(&mut got).await.unwrap();
        let (mut stream, mut session) = (0, 0);
        while stream < 100_000 || session < 100_000 {
            let f = raw.recv().await.expect("window updates missing");
            match f {
                Frame::WindowUpdate {
                    stream_id: 1,
                    delta,
                } => stream += delta,
                Frame::WindowUpdate {
                    stream_id: 0,
                    delta,
                } => session += delta,
                _ => {}
            }
        }
        assert_eq!((stream, session), (100_000, 100_000));
        // PINGs from the client (odd ids) are echoed
        raw.send(Frame::Ping { id: 5 }).await;
        assert_eq!(raw.recv().await, Some(Frame::Ping { id: 5 }));
    }

    #[tokio::test]
    async fn protocol_garbage_ends_the_session() {
        let (a, mut b) = tokio::io::duplex(1024);
        let mut server = Session::server(a);
        b.write_all(&[0x80, 3, 0, 6, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0])
            .await
            .unwrap();
        assert!(server.accept().await.is_none());
        let mut rest = Vec::new();
        b.read_to_end(&mut rest).await.unwrap_or_default();
        // the server said GOAWAY with PROTOCOL_ERROR
        let (f, _) = frame::decode_frame(&rest).unwrap();
        assert_eq!(
            f,
            Frame::GoAway {
                last_good_stream_id: 0,
                status: goaway::PROTOCOL_ERROR
            }
        );
    }
}
