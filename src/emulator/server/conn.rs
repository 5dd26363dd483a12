//! One connection: its handle ([`ServerConn`]), its writes (one lock on
//! the connection's one socket, so any thread may answer or push) and its
//! reader thread, which enforces the connection's timeouts and its share of
//! the unauthenticated buffer budget (see [`limits`](super::limits)).

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use rmpv::Value;

use super::dispatch::{handle_quest, refuse_quest, server_answers, try_handshake, Start};
use super::{lock, Reply, Shared, DEFAULT_PUSH_TIMEOUT};
use crate::codes;
use crate::error::Error;
use crate::fpnn::codec::{
    encode_answer, encode_error_answer, encode_quest, Answer, Decoder, Frame, Gated,
};
use crate::fpnn::crypto::{CipherMode, Decryptor, Encryptor, KeyBits};

/// Size of the per-connection read chunk, once reads fill a small one.
const READ_CHUNK: usize = 64 * 1024;
/// Size of the read chunk a connection starts with (idle sockets stay
/// cheap).
const FIRST_READ_CHUNK: usize = 4 * 1024;

thread_local! {
    /// The buffer [`ServerConn::deliver`] encodes answers into, per thread.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Batched output is written out once it holds this many bytes.
const FLUSH_AT: usize = 256 * 1024;

/// The write half of a connection: the encryptor, its buffer and the
/// batched output, under the connection's write lock. Writes go to the
/// connection's one socket.
pub(super) struct Writer {
    pub(super) encryptor: Option<Encryptor>,
    buf: Vec<u8>,
    /// While the reader thread handles the frames of one read
    /// ([`ServerConn::begin_batch`]): what is written waits here, and goes
    /// out in one write at the end of the batch (or at [`FLUSH_AT`] bytes).
    out: Vec<u8>,
    batching: bool,
}

impl Writer {
    pub(super) fn new() -> Writer {
        Writer {
            encryptor: None,
            buf: Vec::new(),
            out: Vec::new(),
            batching: false,
        }
    }

    /// Writes one frame (or raw bytes treated as one) to `stream`,
    /// encrypting it when the connection is encrypted; while batching, adds
    /// it to the batch.
    fn write_frame(&mut self, mut stream: &TcpStream, frame: &[u8]) -> io::Result<()> {
        if self.batching {
            match &mut self.encryptor {
                Some(enc) => enc.encrypt_frame(frame, &mut self.out),
                None => self.out.extend_from_slice(frame),
            }
            if self.out.len() >= FLUSH_AT {
                return self.flush(stream);
            }
            return Ok(());
        }
        match &mut self.encryptor {
            Some(enc) => {
                self.buf.clear();
                enc.encrypt_frame(frame, &mut self.buf);
                let result = stream.write_all(&self.buf);
                if self.buf.capacity() > 1 << 20 {
                    self.buf = Vec::new();
                }
                result
            }
            None => stream.write_all(frame),
        }
    }

    /// Writes out the batched output.
    fn flush(&mut self, mut stream: &TcpStream) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let result = stream.write_all(&self.out);
        self.out.clear();
        if self.out.capacity() > 1 << 20 {
            self.out = Vec::new();
        }
        result
    }
}

type PushResult = Result<Value, Error>;

pub(super) struct ConnInner {
    pub(super) id: u64,
    pub(super) peer: SocketAddr,
    /// The server's end of the connection.
    pub(super) local: SocketAddr,
    /// When the connection was accepted.
    pub(super) opened: Instant,
    /// The connection's one socket (one descriptor): the reader thread reads
    /// it, writers write it under [`writer`](Self::writer), `close` shuts
    /// it down.
    pub(super) stream: TcpStream,
    pub(super) writer: Mutex<Writer>,
    pub(super) closed: AtomicBool,
    /// Whether a quest of this connection was admitted by
    /// [`Service::admit`](super::Service::admit).
    pub(super) authenticated: AtomicBool,
    /// The bytes in the connection's read buffer while it is not
    /// authenticated (counted in the server's unauthenticated total).
    pub(super) buffered: AtomicUsize,
    /// Why the server closed the connection (see [`ServerConn::close_reason`]).
    pub(super) close_reason: Mutex<Option<String>>,
    /// The cipher, once the `*key` handshake succeeded.
    pub(super) encryption: Mutex<Option<(CipherMode, KeyBits)>>,
    pub(super) next_seq: AtomicU32,
    /// The header version of the client's first frame, echoed in every
    /// answer as the C++ server does (Python sends 0, the others 1).
    pub(super) version: AtomicU8,
    pub(super) pending: Mutex<HashMap<u32, crossbeam_channel::Sender<PushResult>>>,
    pub(super) server: Weak<Shared>,
}

impl Drop for ConnInner {
    fn drop(&mut self) {
        // The socket closes now: its descriptor is free again.
        super::accept::OPEN_CONNECTIONS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A handle to one accepted connection. Cheap to clone; usable from any
/// thread, also after the connection closed (calls then do nothing or fail).
#[derive(Clone)]
pub struct ServerConn {
    pub(super) inner: Arc<ConnInner>,
}

impl fmt::Debug for ServerConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConn")
            .field("id", &self.inner.id)
            .field("peer", &self.inner.peer)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl ServerConn {
    /// The connection's id, unique within its server, counting from 1 in
    /// accept order.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// The client's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.inner.peer
    }

    /// The server's end of the connection: the address the client dialed
    /// (the IP it arrived on when the server listens on a wildcard address
    /// such as `0.0.0.0`).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local
    }

    /// Whether a quest of this connection was admitted by
    /// [`Service::admit`](super::Service::admit) (every quest the service
    /// handles, with the default `admit`). Until then, the connection is
    /// the first to be closed when the server is full, and is closed after
    /// [`ServerOptions::idle_timeout`](super::ServerOptions::idle_timeout)
    /// without a frame.
    pub fn is_authenticated(&self) -> bool {
        self.inner.authenticated.load(Ordering::Relaxed)
    }

    /// Whether the connection has been closed (by either side).
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::SeqCst)
    }

    /// The connection's cipher mode and key size, once its `*key`
    /// handshake succeeded; `None` for a plain connection.
    pub fn encryption(&self) -> Option<(CipherMode, KeyBits)> {
        *lock(&self.inner.encryption)
    }

    /// Once the connection has ended (from [`Service::on_disconnect`](super::Service::on_disconnect) on):
    /// why the server closed it (a frame it could not decode, a refused
    /// `*key` handshake, "closed by the server" for [`Reply::Close`], a
    /// fault or a stop), or `None` when the client closed it.
    pub fn close_reason(&self) -> Option<String> {
        lock(&self.inner.close_reason).clone()
    }

    /// Answers the held two-way quest `seq` (see [`Reply::None`]); callable
    /// from any thread. Faults apply as to any answer.
    pub fn answer(&self, seq: u32, reply: Reply) {
        self.deliver(Some(seq), reply, false);
    }

    /// Sends a two-way quest to the client and waits (up to
    /// [`DEFAULT_PUSH_TIMEOUT`], 10 s) for its answer. The client's
    /// exception answer comes back as [`Error::Server`].
    ///
    /// Never call this on the connection's own reader thread (from
    /// [`Service::on_quest`](super::Service::on_quest) or [`Service::on_connect`](super::Service::on_connect)): that thread reads
    /// the answer.
    pub fn push(&self, method: &str, payload: Value) -> Result<Value, Error> {
        self.push_with_timeout(method, payload, DEFAULT_PUSH_TIMEOUT)
    }

    /// [`push`](Self::push) with another timeout; [`Error::Timeout`] when it
    /// expires, [`Error::ConnectionClosed`] when the connection closes first.
    pub fn push_with_timeout(
        &self,
        method: &str,
        payload: Value,
        timeout: Duration,
    ) -> Result<Value, Error> {
        if self.is_closed() {
            return Err(Error::closed("the connection is closed"));
        }
        let seq = loop {
            let s = self.inner.next_seq.fetch_add(1, Ordering::SeqCst);
            if s != 0 {
                break s;
            }
        };
        let mut frame = Vec::new();
        encode_quest(&mut frame, Some(seq), method, &payload)?;
        let (tx, rx) = crossbeam_channel::bounded(1);
        lock(&self.inner.pending).insert(seq, tx);
        if let Err(e) = self.write_frame(&frame) {
            lock(&self.inner.pending).remove(&seq);
            return Err(e.into());
        }
        // A closed connection fails every pending push; the check below also
        // covers a caller that (wrongly) runs on the reader thread.
        let deadline = Instant::now() + timeout;
        loop {
            let now = Instant::now();
            if now >= deadline {
                lock(&self.inner.pending).remove(&seq);
                return Err(Error::Timeout {
                    method: method.to_string(),
                    timeout,
                });
            }
            let slice = (deadline - now).min(Duration::from_millis(100));
            match rx.recv_timeout(slice) {
                Ok(result) => return result,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    if self.is_closed() {
                        lock(&self.inner.pending).remove(&seq);
                        return Err(Error::closed("the connection closed"));
                    }
                }
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                    return Err(Error::closed("the connection closed"));
                }
            }
        }
    }

    /// Sends a one-way quest to the client (errors are logged).
    pub fn push_one_way(&self, method: &str, payload: Value) {
        let mut frame = Vec::new();
        if let Err(e) = encode_quest(&mut frame, None, method, &payload) {
            log::warn!("conn {}: cannot encode one-way `{method}`: {e}", self.id());
            return;
        }
        if let Err(e) = self.write_frame(&frame) {
            log::debug!("conn {}: one-way `{method}` not sent: {e}", self.id());
        }
    }

    /// Writes bytes as they are (through the encryptor on an encrypted
    /// connection, as one frame). Errors are logged.
    pub fn send_raw(&self, bytes: &[u8]) {
        if let Err(e) = self.write_frame(bytes) {
            log::debug!("conn {}: raw bytes not sent: {e}", self.id());
        }
    }

    /// Writes bytes straight to the socket, bypassing the encryptor even on
    /// an encrypted connection (to test how a client takes bytes that are
    /// not a valid encrypted stream or package). Errors are logged.
    pub fn send_unencrypted(&self, bytes: &[u8]) {
        if self.is_closed() {
            return;
        }
        let result = {
            let mut writer = lock(&self.inner.writer);
            writer
                .flush(&self.inner.stream)
                .and_then(|()| (&self.inner.stream).write_all(bytes))
        };
        if let Err(e) = result {
            log::debug!("conn {}: raw bytes not sent: {e}", self.id());
            self.close();
        }
    }

    /// Closes the connection (both directions). The reader thread then ends
    /// and [`Service::on_disconnect`](super::Service::on_disconnect) runs.
    pub fn close(&self) {
        if !self.inner.closed.swap(true, Ordering::SeqCst) {
            log::debug!("conn {}: closing", self.id());
            // What a batch holds was answered before the close (unless a
            // write is under way: the shutdown below ends it).
            let writer = match self.inner.writer.try_lock() {
                Ok(w) => Some(w),
                Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => None,
            };
            if let Some(mut writer) = writer {
                writer.batching = false;
                let _ = writer.flush(&self.inner.stream);
            }
        }
        let _ = self.inner.stream.shutdown(Shutdown::Both);
    }

    /// From now on, what is written to the connection is batched, until
    /// [`end_batch`](Self::end_batch) writes it out in one write.
    fn begin_batch(&self) {
        lock(&self.inner.writer).batching = true;
    }

    /// Writes out the batch (see [`begin_batch`](Self::begin_batch)).
    fn end_batch(&self) {
        let result = {
            let mut writer = lock(&self.inner.writer);
            writer.batching = false;
            writer.flush(&self.inner.stream)
        };
        if let Err(e) = result {
            log::debug!("conn {}: answers not sent: {e}", self.id());
            self.close();
        }
    }

    /// Closes the connection, recording `reason` as its close reason
    /// (unless it has one already).
    pub(super) fn close_because(&self, reason: String) {
        {
            let mut r = lock(&self.inner.close_reason);
            if r.is_none() {
                *r = Some(reason);
            }
        }
        self.close();
    }

    pub(super) fn write_frame(&self, frame: &[u8]) -> io::Result<()> {
        if self.is_closed() {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the connection is closed",
            ));
        }
        let result = lock(&self.inner.writer).write_frame(&self.inner.stream, frame);
        if result.is_err() {
            // A partial write leaves the stream unusable.
            self.close();
        }
        result
    }

    /// Sends `reply` for the quest `seq` (None: one-way), applying the
    /// server's faults. `delayed` is true once the answer delay was applied.
    pub(super) fn deliver(&self, seq: Option<u32>, reply: Reply, delayed: bool) {
        let Some(server) = self.inner.server.upgrade() else {
            return;
        };
        if let Reply::After(d, inner) = reply {
            server
                .timer
                .schedule(Instant::now() + d, self.clone(), seq, *inner, delayed);
            return;
        }
        if server.faults.frozen() && reply != Reply::Close {
            log::debug!("conn {}: frozen, reply to {seq:?} dropped", self.id());
            return;
        }
        let writes = match &reply {
            Reply::Answer(_) | Reply::Error { .. } => seq.is_some(),
            Reply::Raw(_) => true,
            Reply::None | Reply::Close | Reply::After(..) => false,
        };
        if writes && !delayed {
            let delay = server.faults.answer_delay();
            if !delay.is_zero() {
                server
                    .timer
                    .schedule(Instant::now() + delay, self.clone(), seq, reply, true);
                return;
            }
        }
        drop(server);
        // Answers are encoded into a buffer this thread reuses.
        let mut frame = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
        frame.clear();
        let is_answer = matches!(reply, Reply::Answer(_) | Reply::Error { .. });
        match reply {
            Reply::Answer(payload) => {
                let Some(seq) = seq else { return };
                if let Err(e) = encode_answer(&mut frame, seq, &payload) {
                    log::warn!("conn {}: cannot encode the answer to {seq}: {e}", self.id());
                    frame.clear();
                    encode_error_answer(
                        &mut frame,
                        seq,
                        codes::FPNN_EC_CORE_ENCODING,
                        &format!("the emulator could not encode its answer: {e}"),
                    );
                }
            }
            Reply::Error { code, message } => {
                let Some(seq) = seq else { return };
                encode_error_answer(&mut frame, seq, code, &message);
            }
            Reply::Raw(bytes) => frame = bytes,
            Reply::Close => {
                self.close();
                return;
            }
            Reply::None | Reply::After(..) => return,
        }
        if is_answer && frame.len() > 4 {
            frame[4] = self.inner.version.load(Ordering::SeqCst);
        }
        if let Err(e) = self.write_frame(&frame) {
            log::debug!("conn {}: reply to {seq:?} not sent: {e}", self.id());
        }
        if frame.capacity() <= 64 * 1024 {
            SCRATCH.with(|s| *s.borrow_mut() = frame);
        }
    }

    pub(super) fn fail_pending(&self) {
        let pending: Vec<_> = lock(&self.inner.pending).drain().collect();
        for (_, tx) in pending {
            let _ = tx.send(Err(Error::closed("the connection closed")));
        }
    }

    pub(super) fn on_answer(&self, answer: Answer) {
        let tx = lock(&self.inner.pending).remove(&answer.seq);
        match tx {
            Some(tx) => {
                let _ = tx.send(answer.into_result());
            }
            None => log::debug!(
                "conn {}: answer to unknown seq {} dropped",
                self.id(),
                answer.seq
            ),
        }
    }
}

/// The reader thread of one connection: reads and dispatches until the
/// connection ends, then cleans up.
pub(super) fn run_conn(shared: Arc<Shared>, conn: ServerConn) {
    log::debug!("conn {}: accepted from {}", conn.id(), conn.peer_addr());
    shared.service.on_connect(&conn);
    let mut reader = Reader::new(&shared, &conn);
    let reason = match reader.run() {
        Err(reason) => {
            log::debug!("conn {}: closing: {reason}", conn.id());
            Some(reason)
        }
        // Closed here before the read ended: by the server.
        Ok(()) if conn.is_closed() => Some("closed by the server".to_string()),
        Ok(()) => None,
    };
    reader.release_budget();
    drop(reader);
    {
        let mut r = lock(&conn.inner.close_reason);
        if r.is_none() {
            *r = reason;
        }
    }
    conn.close();
    lock(&shared.conns).remove(&conn.id());
    conn.fail_pending();
    shared.service.on_disconnect(&conn);
    log::debug!("conn {}: closed", conn.id());
}

/// The reading state of one connection.
struct Reader<'a> {
    shared: &'a Arc<Shared>,
    conn: &'a ServerConn,
    decoder: Decoder,
    /// Encrypted server: raw bytes buffered until the whole `*key` frame is
    /// in.
    handshake: Option<Vec<u8>>,
    /// Plain connection: the first bytes, until the version byte is in.
    first_bytes: Option<Vec<u8>>,
    decryptor: Option<Decryptor>,
    plain: Vec<u8>,
    /// When the last complete frame arrived (or the connection opened).
    last_frame: Instant,
    /// When the first byte of the frame being received arrived.
    partial_since: Option<Instant>,
    /// The read timeout set on the socket now.
    read_timeout: Option<Duration>,
    /// What this connection counts in the server's unauthenticated total.
    counted: usize,
}

impl<'a> Reader<'a> {
    fn new(shared: &'a Arc<Shared>, conn: &'a ServerConn) -> Reader<'a> {
        let handshake = shared.encryption.as_ref().map(|_| Vec::new());
        let first_bytes = Some(Vec::new()).filter(|_| handshake.is_none());
        Reader {
            shared,
            conn,
            decoder: Decoder::new(shared.limits.max_payload),
            handshake,
            first_bytes,
            decryptor: None,
            plain: Vec::new(),
            last_frame: Instant::now(),
            partial_since: None,
            read_timeout: None,
            counted: 0,
        }
    }

    /// Bytes received and not yet taken out as frames.
    fn pending_bytes(&self) -> usize {
        self.decoder.buffered() + self.handshake.as_ref().map_or(0, Vec::len)
    }

    /// The next deadline, and what it means when it passes.
    fn deadline(&self) -> Option<(Instant, &'static str)> {
        let limits = &self.shared.limits;
        let idle = if self.conn.is_authenticated() {
            limits.authenticated_idle_timeout
        } else {
            limits.idle_timeout
        };
        let idle = idle.map(|t| (self.last_frame + t, "idle"));
        let frame = self
            .partial_since
            .zip(limits.frame_timeout)
            .map(|(since, t)| (since + t, "frame"));
        match (idle, frame) {
            (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
            (a, b) => a.or(b),
        }
    }

    /// Sets the socket's read timeout to reach the next deadline. `Err`:
    /// the deadline has passed.
    fn arm_timeout(&mut self) -> Result<(), String> {
        let want = match self.deadline() {
            None => None,
            Some((at, what)) => {
                let now = Instant::now();
                if at <= now {
                    return Err(self.timeout_reason(what));
                }
                // Whole milliseconds, at least one (zero means "none").
                let left = at - now;
                Some(Duration::from_millis(left.as_millis().max(1) as u64))
            }
        };
        if want != self.read_timeout {
            // A socket that cannot take a timeout is closed below.
            self.conn
                .inner
                .stream
                .set_read_timeout(want)
                .map_err(|e| format!("cannot set the read timeout: {e}"))?;
            self.read_timeout = want;
        }
        Ok(())
    }

    fn timeout_reason(&self, what: &str) -> String {
        let limits = &self.shared.limits;
        let reason = if what == "frame" {
            format!(
                "a frame stopped half way: not complete {:?} after its first byte",
                limits.frame_timeout.unwrap_or_default()
            )
        } else if self.conn.is_authenticated() {
            format!(
                "idle for {:?}",
                limits.authenticated_idle_timeout.unwrap_or_default()
            )
        } else {
            format!(
                "idle for {:?} without an admitted quest",
                limits.idle_timeout.unwrap_or_default()
            )
        };
        log::info!(
            "conn {} ({}): closing: {reason}",
            self.conn.id(),
            self.conn.peer_addr()
        );
        reason
    }

    /// Updates what this connection counts in the server's total of bytes
    /// buffered by unauthenticated connections, and makes room when the
    /// total is over its budget.
    fn account(&mut self) {
        let now = if self.conn.is_authenticated() {
            0
        } else {
            self.decoder.capacity() + self.handshake.as_ref().map_or(0, Vec::capacity)
        };
        if now == self.counted {
            return;
        }
        let total = &self.shared.unauthenticated_bytes;
        if now > self.counted {
            let after = total.fetch_add(now - self.counted, Ordering::SeqCst) + now - self.counted;
            self.counted = now;
            self.conn.inner.buffered.store(now, Ordering::Relaxed);
            if after > self.shared.limits.unauthenticated_buffer {
                super::accept::shed_buffers(self.shared, self.conn, after);
            }
        } else {
            total.fetch_sub(self.counted - now, Ordering::SeqCst);
            self.counted = now;
            self.conn.inner.buffered.store(now, Ordering::Relaxed);
        }
    }

    fn release_budget(&mut self) {
        self.shared
            .unauthenticated_bytes
            .fetch_sub(self.counted, Ordering::SeqCst);
        self.counted = 0;
        self.conn.inner.buffered.store(0, Ordering::Relaxed);
    }

    fn run(&mut self) -> Result<(), String> {
        let mut buf = vec![0u8; FIRST_READ_CHUNK];
        loop {
            self.arm_timeout()?;
            let n = match (&self.conn.inner.stream).read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) && !self.conn.is_closed() =>
                {
                    // A deadline passed (checked by arm_timeout).
                    continue;
                }
                Err(e) => {
                    if self.conn.is_closed() {
                        return Ok(());
                    }
                    return Err(format!("read failed: {e}"));
                }
            };
            if self.pending_bytes() == 0 {
                self.partial_since = Some(Instant::now());
            }
            self.feed(&buf[..n])?;
            if n == buf.len() && buf.len() < READ_CHUNK {
                buf.resize(READ_CHUNK, 0);
            }
            if self.conn.is_closed() {
                return Ok(());
            }
            // The answers to the frames of one read go out in one write.
            self.conn.begin_batch();
            let frames = self.dispatch();
            self.conn.end_batch();
            let frames = frames?;
            if frames > 0 {
                self.last_frame = Instant::now();
            }
            if self.conn.is_closed() {
                return Ok(());
            }
            if self.pending_bytes() == 0 {
                self.partial_since = None;
            } else if frames > 0 {
                // The frame left over started in this read.
                self.partial_since = Some(Instant::now());
            }
            self.decoder.shrink();
            self.account();
        }
    }

    /// Feeds received bytes to the decoder (through the handshake or the
    /// decryptor).
    fn feed(&mut self, mut input: &[u8]) -> Result<(), String> {
        let (shared, conn) = (self.shared, self.conn);
        if let Some(pre) = self.handshake.as_mut() {
            pre.extend_from_slice(input);
            match try_handshake(shared, conn, pre)? {
                None => return Ok(()),
                Some(Start::Plain) => {
                    // A plain client on a server that allows it: the bytes
                    // buffered so far are ordinary frames.
                    let pre = self.handshake.take().expect("buffering");
                    self.decoder.feed(&pre);
                }
                Some(Start::Encrypted(dec, used)) => {
                    let rest = pre.split_off(used);
                    self.handshake = None;
                    self.last_frame = Instant::now();
                    let dec = self.decryptor.insert(*dec);
                    self.plain.clear();
                    dec.decrypt(&rest, &mut self.plain)
                        .map_err(|e| format!("cannot decrypt: {e}"))?;
                    self.decoder.feed(&self.plain);
                }
            }
            input = &[];
        }
        if let Some(dec) = self.decryptor.as_mut() {
            if !input.is_empty() {
                self.plain.clear();
                dec.decrypt(input, &mut self.plain)
                    .map_err(|e| format!("cannot decrypt: {e}"))?;
                self.decoder.feed(&self.plain);
            }
            if self.plain.capacity() > 1 << 20 {
                self.plain = Vec::new();
            }
        } else {
            if let Some(first) = self.first_bytes.as_mut() {
                first.extend_from_slice(&input[..input.len().min(8)]);
                if first.len() > 4 {
                    if &first[..4] != b"FPNN" && shared.encryption.is_none() {
                        log::warn!(
                            "conn {} ({}): the first bytes are not an FPNN frame: an \
                             encrypted stream? This server has no key (rtm-emulator: \
                             --key)",
                            conn.id(),
                            conn.peer_addr()
                        );
                    }
                    conn.inner.version.store(first[4], Ordering::SeqCst);
                    self.first_bytes = None;
                }
            }
            self.decoder.feed(input);
        }
        Ok(())
    }

    /// Takes out and handles every complete frame; returns how many.
    fn dispatch(&mut self) -> Result<usize, String> {
        let (shared, conn) = (self.shared, self.conn);
        let mut frames = 0;
        loop {
            let gate = |_seq: Option<u32>, method: &str, payload: &[u8]| {
                if server_answers(shared, method) {
                    shared.record(method, payload);
                    return None;
                }
                match shared.service.admit(conn, method, payload) {
                    Ok(()) => {
                        if !conn.inner.authenticated.swap(true, Ordering::Relaxed) {
                            log::debug!("conn {}: authenticated by `{method}`", conn.id());
                        }
                        shared.record(method, payload);
                        None
                    }
                    Err(refusal) => Some((method.to_string(), refusal)),
                }
            };
            let frame = self
                .decoder
                .next_gated(gate)
                .map_err(|e| format!("bad frame from the client: {e}"))?;
            match frame {
                Some(Gated::Frame(Frame::Quest(quest))) => handle_quest(shared, conn, quest),
                Some(Gated::Frame(Frame::Answer(answer))) => conn.on_answer(answer),
                Some(Gated::Refused {
                    seq,
                    refusal: (method, refusal),
                }) => refuse_quest(shared, conn, seq, &method, refusal),
                None => return Ok(frames),
            }
            frames += 1;
            if conn.is_closed() {
                return Ok(frames);
            }
        }
    }
}
