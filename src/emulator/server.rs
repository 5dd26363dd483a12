//! A small generic FPNN server for tests: plain or encrypted connections,
//! a pluggable [`Service`], server-to-client pushes and live [`Faults`].
//!
//! One thread accepts connections, one reader thread per connection
//! (`emu-conn-N`) decodes quests and calls the service in arrival order, and
//! one timer thread per server sends delayed answers ([`Reply::After`] and
//! [`Faults::set_answer_delay`]). Writes go through a mutex on a clone of
//! the connection's socket, so any thread may answer or push.
//!
//! Frames of any header version are accepted, and every answer carries the
//! version of the client's first frame, as the C++ server's answers echo
//! the quest's header (Python clients send 0, the others 1).

use std::cmp::Ordering as CmpOrdering;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rmpv::Value;

use crate::codes;
use crate::error::{Error, ProtocolError};
use crate::fpnn::codec::{
    decode_frame, encode_answer, encode_error_answer, encode_quest, map_get, Answer, Decoder,
    Frame, Gated, Header, Quest, DEFAULT_MAX_SEND_PAYLOAD, HEADER_LEN, VERSION,
};
use crate::fpnn::crypto::{CipherMode, Decryptor, Encryptor, KeyBits, ServerPrivateKey};

/// How long [`ServerConn::push`] waits for the client's answer.
pub const DEFAULT_PUSH_TIMEOUT: Duration = Duration::from_secs(10);
/// How many received quests [`FpnnServer::received`] keeps.
pub const RECEIVED_LOG_CAPACITY: usize = 10_000;
/// Size of the per-connection read buffer.
const READ_CHUNK: usize = 64 * 1024;
/// Safety net for writes to a client that stopped reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Room for the header, seq and method on top of the payload limit.
const FRAME_OVERHEAD: usize = HEADER_LEN + 4 + 255;

/// Locks a mutex, ignoring poisoning (a panicking service must not take the
/// whole server down with it).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The current Unix time in milliseconds.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------
// Service and Reply
// ---------------------------------------------------------------------------

/// The application behind an [`FpnnServer`]: what it does with each quest.
///
/// Any `Fn(&ServerConn, &Quest) -> Reply + Send + Sync + 'static` closure is
/// a service.
///
/// The callbacks run on the connection's reader thread, so a service must not
/// wait there for something only that connection can deliver: in particular
/// it must not call [`ServerConn::push`] (which waits for the client's
/// answer, read by that very thread) from `on_quest` or `on_connect`; spawn a
/// thread for that instead.
pub trait Service: Send + Sync + 'static {
    /// Called for each quest a client sends (on that connection's thread, in
    /// arrival order). `*key` is handled by the server itself when encryption
    /// is enabled and never reaches the service; `*ping` reaches it only if
    /// [`handles_ping`](Service::handles_ping) returns true: by default the
    /// server answers `*ping` itself with `{ts: now_ms}`, unless
    /// [`Faults`] say otherwise.
    ///
    /// The reply to a one-way quest (no seq) is ignored, except
    /// [`Reply::Raw`] and [`Reply::Close`].
    fn on_quest(&self, conn: &ServerConn, quest: &Quest) -> Reply;

    /// Called when a connection opens, on its reader thread, before anything
    /// is read (default: nothing).
    fn on_connect(&self, _conn: &ServerConn) {}

    /// Called once when a connection has closed, for whatever reason
    /// (default: nothing).
    fn on_disconnect(&self, _conn: &ServerConn) {}

    /// Called on the connection's reader thread when its `*key` handshake
    /// succeeded, after the answer to `*key` was queued
    /// ([`ServerConn::encryption`] tells the cipher; default: nothing).
    fn on_encrypted(&self, _conn: &ServerConn) {}

    /// Whether `*ping` quests go to [`on_quest`](Service::on_quest) instead
    /// of being answered by the server (default: false).
    fn handles_ping(&self) -> bool {
        false
    }

    /// Checks a quest before its payload is decoded: `payload` is its
    /// msgpack payload, already checked to be a well-formed map with string
    /// keys but not decoded. Return `Err(reply)` to refuse it: the reply is
    /// sent (to a two-way quest) and nothing of the quest is decoded,
    /// recorded or passed to [`on_quest`](Service::on_quest). Return `Ok(())`
    /// to admit it (the default: every quest).
    ///
    /// This is where a service checks credentials, so that a peer that is
    /// not authenticated cannot make the server decode or keep anything.
    /// Quests the server answers itself (`*key`, and `*ping` unless
    /// [`handles_ping`](Service::handles_ping)) are not offered.
    fn admit(&self, _conn: &ServerConn, _method: &str, _payload: &[u8]) -> Result<(), Reply> {
        Ok(())
    }
}

impl<F> Service for F
where
    F: Fn(&ServerConn, &Quest) -> Reply + Send + Sync + 'static,
{
    fn on_quest(&self, conn: &ServerConn, quest: &Quest) -> Reply {
        self(conn, quest)
    }
}

/// What the server does about one quest.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Reply {
    /// An OK answer with this payload (which must be a map with string keys;
    /// otherwise the client gets error 20005). Ignored for one-way quests.
    Answer(Value),
    /// An exception answer `{code, ex}`. Ignored for one-way quests.
    Error {
        /// The error code.
        code: i64,
        /// The message, sent as `ex`.
        message: String,
    },
    /// Send nothing now. The service holds the quest and may answer it later
    /// with [`ServerConn::answer`].
    None,
    /// This reply, after a delay. The connection keeps reading meanwhile (one
    /// timer thread per server sends all delayed replies).
    After(Duration, Box<Reply>),
    /// Write these bytes as they are, instead of an answer (garbage, a bad
    /// magic, a header announcing 4 GiB...). On an encrypted connection they
    /// go through the connection's encryptor as if they were one frame, so
    /// that the client decrypts exactly these bytes.
    Raw(Vec<u8>),
    /// Close the connection without answering.
    Close,
}

impl Reply {
    /// An OK answer with an empty map.
    pub fn ok() -> Reply {
        Reply::Answer(Value::Map(Vec::new()))
    }

    /// An exception answer.
    pub fn error(code: i64, message: impl Into<String>) -> Reply {
        Reply::Error {
            code,
            message: message.into(),
        }
    }

    /// This reply after `delay`.
    pub fn after(delay: Duration, reply: Reply) -> Reply {
        Reply::After(delay, Box::new(reply))
    }
}

// ---------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------

/// Fault switches of one [`FpnnServer`], all off by default and changeable
/// while it runs (from any thread).
#[derive(Debug, Default)]
pub struct Faults {
    freeze: AtomicBool,
    refuse: AtomicBool,
    drop_every: AtomicU64,
    drop_count: AtomicU64,
    answer_delay_us: AtomicU64,
}

impl Faults {
    /// Freezes the server: it answers nothing at all (including `*ping` and
    /// `*key`), but keeps the sockets open and keeps reading. Quests received
    /// while frozen are recorded in [`FpnnServer::received`] but do not reach
    /// the service; answers given while frozen (held, delayed, or given by
    /// [`ServerConn::answer`]) are dropped. [`Reply::Close`] still closes.
    pub fn set_freeze(&self, on: bool) {
        self.freeze.store(on, Ordering::SeqCst);
    }

    /// Whether the server is frozen.
    pub fn frozen(&self) -> bool {
        self.freeze.load(Ordering::SeqCst)
    }

    /// Accepts new connections and closes them at once (they still count in
    /// [`FpnnServer::connection_count`]). Open connections are not affected.
    pub fn set_refuse(&self, on: bool) {
        self.refuse.store(on, Ordering::SeqCst);
    }

    /// Whether new connections are refused.
    pub fn refusing(&self) -> bool {
        self.refuse.load(Ordering::SeqCst)
    }

    /// Closes the connection that sent every `n`-th quest (counted across
    /// the whole server from this call on, `*ping` included, `*key`
    /// excluded), without answering or processing that quest. 0 turns it
    /// off.
    pub fn set_drop_every(&self, n: u64) {
        self.drop_count.store(0, Ordering::SeqCst);
        self.drop_every.store(n, Ordering::SeqCst);
    }

    /// The current `drop_every` setting (0: off).
    pub fn drop_every(&self) -> u64 {
        self.drop_every.load(Ordering::SeqCst)
    }

    /// Delays every answer (and every [`Reply::Raw`]) by `d`, on top of any
    /// [`Reply::After`] delay. Zero turns it off.
    pub fn set_answer_delay(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.answer_delay_us.store(us, Ordering::SeqCst);
    }

    /// The current answer delay.
    pub fn answer_delay(&self) -> Duration {
        Duration::from_micros(self.answer_delay_us.load(Ordering::SeqCst))
    }

    /// True when this quest must be dropped together with its connection.
    fn should_drop(&self) -> bool {
        let n = self.drop_every.load(Ordering::SeqCst);
        if n == 0 {
            return false;
        }
        let count = self.drop_count.fetch_add(1, Ordering::SeqCst) + 1;
        count % n == 0
    }
}

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

/// How an [`FpnnServer`] listens.
#[derive(Debug)]
#[non_exhaustive]
pub struct ServerOptions {
    /// The address to listen on; `None` means `127.0.0.1:0` (a free port).
    pub addr: Option<SocketAddr>,
    /// When set, the server accepts encrypted connections with this key: the
    /// first quest of every connection must then be a valid `*key`
    /// handshake, or the connection is closed (unless
    /// [`allow_plain`](Self::allow_plain)).
    pub encryption: Option<ServerPrivateKey>,
    /// With [`encryption`](Self::encryption): a connection whose first
    /// quest is not `*key` is served unencrypted instead of closed, as the
    /// C++ server does (a `*key` after another quest still closes it).
    /// Default false.
    pub allow_plain: bool,
    /// The largest payload accepted from a client; a larger frame closes the
    /// connection. Default 8 MiB, the C++ server's default.
    pub max_payload: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            addr: None,
            encryption: None,
            allow_plain: false,
            max_payload: DEFAULT_MAX_SEND_PAYLOAD,
        }
    }
}

impl ServerOptions {
    /// The defaults: `127.0.0.1:0`, no encryption, 8 MiB.
    pub fn new() -> Self {
        Self::default()
    }

    /// Listens on `addr` (for example the address of a stopped server, to
    /// restart on the same port).
    #[must_use]
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.addr = Some(addr);
        self
    }

    /// Accepts encrypted connections with `key`.
    #[must_use]
    pub fn encryption(mut self, key: ServerPrivateKey) -> Self {
        self.encryption = Some(key);
        self
    }

    /// With encryption, also serves clients that do not start with `*key`,
    /// unencrypted (see [`allow_plain`](Self::allow_plain)).
    #[must_use]
    pub fn allow_plain(mut self, allow: bool) -> Self {
        self.allow_plain = allow;
        self
    }

    /// Sets the largest payload accepted from a client.
    #[must_use]
    pub fn max_payload(mut self, max: usize) -> Self {
        self.max_payload = max;
        self
    }
}

// ---------------------------------------------------------------------------
// Shared server state
// ---------------------------------------------------------------------------

struct Shared {
    service: Box<dyn Service>,
    faults: Faults,
    stopping: AtomicBool,
    conns: Mutex<BTreeMap<u64, ServerConn>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    accepted: AtomicU64,
    next_conn_id: AtomicU64,
    received: Mutex<VecDeque<(String, Value)>>,
    encryption: Option<ServerPrivateKey>,
    allow_plain: bool,
    max_payload: usize,
    timer: Arc<Timer>,
}

impl Shared {
    fn record(&self, quest: &Quest) {
        let mut log = lock(&self.received);
        if log.len() >= RECEIVED_LOG_CAPACITY {
            log.pop_front();
        }
        log.push_back((quest.method.clone(), quest.payload.clone()));
    }
}

// ---------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------

struct Writer {
    stream: TcpStream,
    encryptor: Option<Encryptor>,
    buf: Vec<u8>,
}

impl Writer {
    /// Writes one frame (or raw bytes treated as one), encrypting it when
    /// the connection is encrypted.
    fn write_frame(&mut self, frame: &[u8]) -> io::Result<()> {
        match &mut self.encryptor {
            Some(enc) => {
                self.buf.clear();
                enc.encrypt_frame(frame, &mut self.buf);
                let result = self.stream.write_all(&self.buf);
                if self.buf.capacity() > 1 << 20 {
                    self.buf = Vec::new();
                }
                result
            }
            None => self.stream.write_all(frame),
        }
    }
}

type PushResult = Result<Value, Error>;

struct ConnInner {
    id: u64,
    peer: SocketAddr,
    /// The server's end of the connection.
    local: SocketAddr,
    /// Used only to shut the socket down.
    stream: TcpStream,
    writer: Mutex<Writer>,
    closed: AtomicBool,
    /// Why the server closed the connection (see [`ServerConn::close_reason`]).
    close_reason: Mutex<Option<String>>,
    /// The cipher, once the `*key` handshake succeeded.
    encryption: Mutex<Option<(CipherMode, KeyBits)>>,
    next_seq: AtomicU32,
    /// The header version of the client's first frame, echoed in every
    /// answer as the C++ server does (Python sends 0, the others 1).
    version: AtomicU8,
    pending: Mutex<HashMap<u32, crossbeam_channel::Sender<PushResult>>>,
    server: Weak<Shared>,
}

/// A handle to one accepted connection. Cheap to clone; usable from any
/// thread, also after the connection closed (calls then do nothing or fail).
#[derive(Clone)]
pub struct ServerConn {
    inner: Arc<ConnInner>,
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

    /// Whether the connection has been closed (by either side).
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::SeqCst)
    }

    /// The connection's cipher mode and key size, once its `*key`
    /// handshake succeeded; `None` for a plain connection.
    pub fn encryption(&self) -> Option<(CipherMode, KeyBits)> {
        *lock(&self.inner.encryption)
    }

    /// Once the connection has ended (from [`Service::on_disconnect`] on):
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
    /// [`Service::on_quest`] or [`Service::on_connect`]): that thread reads
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
        let result = lock(&self.inner.writer).stream.write_all(bytes);
        if let Err(e) = result {
            log::debug!("conn {}: raw bytes not sent: {e}", self.id());
            self.close();
        }
    }

    /// Closes the connection (both directions). The reader thread then ends
    /// and [`Service::on_disconnect`] runs.
    pub fn close(&self) {
        if !self.inner.closed.swap(true, Ordering::SeqCst) {
            log::debug!("conn {}: closing", self.id());
        }
        let _ = self.inner.stream.shutdown(Shutdown::Both);
    }

    fn write_frame(&self, frame: &[u8]) -> io::Result<()> {
        if self.is_closed() {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the connection is closed",
            ));
        }
        let result = lock(&self.inner.writer).write_frame(frame);
        if result.is_err() {
            // A partial write leaves the stream unusable.
            self.close();
        }
        result
    }

    /// Sends `reply` for the quest `seq` (None: one-way), applying the
    /// server's faults. `delayed` is true once the answer delay was applied.
    fn deliver(&self, seq: Option<u32>, reply: Reply, delayed: bool) {
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
        let mut frame = Vec::new();
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
    }

    fn fail_pending(&self) {
        let pending: Vec<_> = lock(&self.inner.pending).drain().collect();
        for (_, tx) in pending {
            let _ = tx.send(Err(Error::closed("the connection closed")));
        }
    }

    fn on_answer(&self, answer: Answer) {
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

// ---------------------------------------------------------------------------
// Timer (delayed replies)
// ---------------------------------------------------------------------------

struct Task {
    at: Instant,
    order: u64,
    conn: ServerConn,
    seq: Option<u32>,
    reply: Reply,
    delayed: bool,
}

impl PartialEq for Task {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at && self.order == other.order
    }
}
impl Eq for Task {}
impl PartialOrd for Task {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Task {
    // Reversed: BinaryHeap is a max-heap, the earliest task must come first.
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (other.at, other.order).cmp(&(self.at, self.order))
    }
}

#[derive(Default)]
struct TimerState {
    tasks: BinaryHeap<Task>,
    next_order: u64,
    stop: bool,
}

#[derive(Default)]
struct Timer {
    state: Mutex<TimerState>,
    wake: Condvar,
}

impl Timer {
    fn schedule(
        &self,
        at: Instant,
        conn: ServerConn,
        seq: Option<u32>,
        reply: Reply,
        delayed: bool,
    ) {
        let mut st = lock(&self.state);
        if st.stop {
            return;
        }
        let order = st.next_order;
        st.next_order += 1;
        st.tasks.push(Task {
            at,
            order,
            conn,
            seq,
            reply,
            delayed,
        });
        self.wake.notify_one();
    }

    fn stop(&self) {
        let mut st = lock(&self.state);
        st.stop = true;
        st.tasks.clear();
        self.wake.notify_all();
    }

    fn run(&self) {
        let mut st = lock(&self.state);
        loop {
            if st.stop {
                return;
            }
            let now = Instant::now();
            match st.tasks.peek().map(|t| t.at) {
                Some(at) if at <= now => {
                    let task = st.tasks.pop().expect("peeked");
                    drop(st);
                    task.conn.deliver(task.seq, task.reply, task.delayed);
                    st = lock(&self.state);
                }
                Some(at) => {
                    st = self
                        .wake
                        .wait_timeout(st, at - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                None => {
                    st = self.wake.wait(st).unwrap_or_else(|e| e.into_inner());
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------

/// A running FPNN server on `127.0.0.1` (see the [module docs](self)).
///
/// [`stop`](Self::stop), or dropping it, closes the listener and every
/// connection and joins every thread.
pub struct FpnnServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    accept_thread: Option<JoinHandle<()>>,
    timer_thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for FpnnServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FpnnServer")
            .field("addr", &self.addr)
            .field("encrypted", &self.shared.encryption.is_some())
            .field("open_connections", &lock(&self.shared.conns).len())
            .field("faults", &self.shared.faults)
            .finish_non_exhaustive()
    }
}

impl FpnnServer {
    /// Binds the listener and starts serving `service`.
    ///
    /// # Errors
    ///
    /// When the address cannot be bound or a thread cannot be spawned.
    pub fn start(service: impl Service, options: ServerOptions) -> io::Result<FpnnServer> {
        let bind = options
            .addr
            .unwrap_or_else(|| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0));
        let listener = TcpListener::bind(bind)?;
        let addr = listener.local_addr()?;
        let timer = Arc::new(Timer::default());
        let shared = Arc::new(Shared {
            service: Box::new(service),
            faults: Faults::default(),
            stopping: AtomicBool::new(false),
            conns: Mutex::new(BTreeMap::new()),
            threads: Mutex::new(Vec::new()),
            accepted: AtomicU64::new(0),
            next_conn_id: AtomicU64::new(1),
            received: Mutex::new(VecDeque::new()),
            encryption: options.encryption,
            allow_plain: options.allow_plain,
            max_payload: options.max_payload,
            timer: timer.clone(),
        });
        let timer_thread = thread::Builder::new()
            .name(format!("emu-timer-{}", addr.port()))
            .spawn(move || timer.run())?;
        let accept_shared = shared.clone();
        let accept_thread = match thread::Builder::new()
            .name(format!("emu-accept-{}", addr.port()))
            .spawn(move || accept_loop(listener, accept_shared))
        {
            Ok(t) => t,
            Err(e) => {
                shared.timer.stop();
                let _ = timer_thread.join();
                return Err(e);
            }
        };
        log::debug!("FPNN server listening on {addr}");
        Ok(FpnnServer {
            shared,
            addr,
            accept_thread: Some(accept_thread),
            timer_thread: Some(timer_thread),
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The endpoint a client dials: `"127.0.0.1:PORT"`.
    pub fn endpoint(&self) -> String {
        format!("{}:{}", wake_ip(self.addr.ip()), self.addr.port())
    }

    /// The open connections, in accept order.
    pub fn connections(&self) -> Vec<ServerConn> {
        lock(&self.shared.conns).values().cloned().collect()
    }

    /// How many connections were accepted so far (refused ones included).
    pub fn connection_count(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst) as usize
    }

    /// The live fault switches.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// Every quest received so far, oldest first (method and payload; at most
    /// the last [`RECEIVED_LOG_CAPACITY`]). It includes `*key`, `*ping` and
    /// the quests dropped by faults.
    pub fn received(&self) -> Vec<(String, Value)> {
        lock(&self.shared.received).iter().cloned().collect()
    }

    /// Empties the [`received`](Self::received) log.
    pub fn clear_received(&self) {
        lock(&self.shared.received).clear();
    }

    /// Whether the server accepts encrypted connections.
    pub fn is_encrypted(&self) -> bool {
        self.shared.encryption.is_some()
    }

    /// Closes the listener and every connection and joins every thread.
    /// Idempotent. Afterwards the port can be bound again (for example by
    /// [`FpnnServer::start`] with [`ServerOptions::addr`]).
    pub fn stop(&mut self) {
        let Some(accept) = self.accept_thread.take() else {
            return;
        };
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the blocking accept() with a connection of our own (retried
        // until the accept thread has seen it).
        let wake = SocketAddr::new(wake_ip(self.addr.ip()), self.addr.port());
        while !accept.is_finished() {
            if let Err(e) = TcpStream::connect_timeout(&wake, Duration::from_secs(1)) {
                log::warn!("cannot wake the accept thread of {}: {e}", self.addr);
            }
            let t = Instant::now();
            while !accept.is_finished() && t.elapsed() < Duration::from_millis(500) {
                thread::sleep(Duration::from_millis(1));
            }
        }
        let _ = accept.join();
        for conn in self.connections() {
            conn.close();
        }
        let threads: Vec<_> = std::mem::take(&mut *lock(&self.shared.threads));
        for t in threads {
            let _ = t.join();
        }
        self.shared.timer.stop();
        if let Some(t) = self.timer_thread.take() {
            let _ = t.join();
        }
        log::debug!("FPNN server on {} stopped", self.addr);
    }
}

impl Drop for FpnnServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn wake_ip(ip: IpAddr) -> IpAddr {
    if ip.is_unspecified() {
        match ip {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        }
    } else {
        ip
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for incoming in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            break;
        }
        let stream = match incoming {
            Ok(s) => s,
            Err(e) => {
                log::warn!("accept failed: {e}");
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        if shared.faults.refusing() {
            log::debug!("refusing a connection (fault)");
            let _ = stream.shutdown(Shutdown::Both);
            continue;
        }
        if let Err(e) = start_conn(&shared, stream) {
            log::warn!("cannot start a connection: {e}");
        }
    }
}

fn start_conn(shared: &Arc<Shared>, stream: TcpStream) -> io::Result<()> {
    let _ = stream.set_nodelay(true);
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let peer = stream.peer_addr()?;
    let local = stream.local_addr()?;
    let writer = stream.try_clone()?;
    let shutdown_handle = stream.try_clone()?;
    let id = shared.next_conn_id.fetch_add(1, Ordering::SeqCst);
    let conn = ServerConn {
        inner: Arc::new(ConnInner {
            id,
            peer,
            local,
            stream: shutdown_handle,
            writer: Mutex::new(Writer {
                stream: writer,
                encryptor: None,
                buf: Vec::new(),
            }),
            closed: AtomicBool::new(false),
            close_reason: Mutex::new(None),
            encryption: Mutex::new(None),
            next_seq: AtomicU32::new(1),
            version: AtomicU8::new(VERSION),
            pending: Mutex::new(HashMap::new()),
            server: Arc::downgrade(shared),
        }),
    };
    lock(&shared.conns).insert(id, conn.clone());
    let thread_shared = shared.clone();
    let thread_conn = conn.clone();
    let spawned = thread::Builder::new()
        .name(format!("emu-conn-{id}"))
        .spawn(move || run_conn(thread_shared, thread_conn, stream));
    match spawned {
        Ok(handle) => {
            let mut threads = lock(&shared.threads);
            threads.retain(|t| !t.is_finished());
            threads.push(handle);
            Ok(())
        }
        Err(e) => {
            lock(&shared.conns).remove(&id);
            conn.close();
            Err(e)
        }
    }
}

fn run_conn(shared: Arc<Shared>, conn: ServerConn, stream: TcpStream) {
    log::debug!("conn {}: accepted from {}", conn.id(), conn.peer_addr());
    shared.service.on_connect(&conn);
    let reason = match read_loop(&shared, &conn, stream) {
        Err(reason) => {
            log::debug!("conn {}: closing: {reason}", conn.id());
            Some(reason)
        }
        // Closed here before the read ended: by the server.
        Ok(()) if conn.is_closed() => Some("closed by the server".to_string()),
        Ok(()) => None,
    };
    *lock(&conn.inner.close_reason) = reason;
    conn.close();
    lock(&shared.conns).remove(&conn.id());
    conn.fail_pending();
    shared.service.on_disconnect(&conn);
    log::debug!("conn {}: closed", conn.id());
}

/// Reads and dispatches until the connection ends. `Err` carries why the
/// server closed it.
fn read_loop(shared: &Arc<Shared>, conn: &ServerConn, mut stream: TcpStream) -> Result<(), String> {
    let mut buf = vec![0u8; READ_CHUNK];
    let mut decoder = Decoder::new(shared.max_payload);
    // Encrypted server: raw bytes buffered until the whole `*key` frame is in.
    let mut handshake: Option<Vec<u8>> = shared.encryption.as_ref().map(|_| Vec::new());
    // Plain connection: the first bytes, until the version byte is in.
    let mut first_bytes: Option<Vec<u8>> = Some(Vec::new()).filter(|_| handshake.is_none());
    let mut decryptor: Option<Decryptor> = None;
    let mut plain = Vec::new();
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                if conn.is_closed() {
                    return Ok(());
                }
                return Err(format!("read failed: {e}"));
            }
        };
        let mut input = &buf[..n];
        if let Some(pre) = handshake.as_mut() {
            pre.extend_from_slice(input);
            match try_handshake(shared, conn, pre)? {
                None => continue,
                Some(Start::Plain) => {
                    // A plain client on a server that allows it: the bytes
                    // buffered so far are ordinary frames.
                    let pre = handshake.take().expect("buffering");
                    decoder.feed(&pre);
                }
                Some(Start::Encrypted(dec, used)) => {
                    let rest = pre.split_off(used);
                    handshake = None;
                    let dec = decryptor.insert(*dec);
                    plain.clear();
                    dec.decrypt(&rest, &mut plain)
                        .map_err(|e| format!("cannot decrypt: {e}"))?;
                    decoder.feed(&plain);
                }
            }
            input = &[];
        }
        if let Some(dec) = decryptor.as_mut() {
            if !input.is_empty() {
                plain.clear();
                dec.decrypt(input, &mut plain)
                    .map_err(|e| format!("cannot decrypt: {e}"))?;
                decoder.feed(&plain);
            }
            if plain.capacity() > 1 << 20 {
                plain = Vec::new();
            }
        } else {
            if let Some(first) = first_bytes.as_mut() {
                first.extend_from_slice(&input[..input.len().min(8)]);
                if first.len() > 4 {
                    conn.inner.version.store(first[4], Ordering::SeqCst);
                    first_bytes = None;
                }
            }
            decoder.feed(input);
        }
        loop {
            let gate = |_seq: Option<u32>, method: &str, payload: &[u8]| {
                if server_answers(shared, method) {
                    return None;
                }
                shared.service.admit(conn, method, payload).err()
            };
            match decoder.next_gated(gate) {
                Ok(Some(Gated::Frame(Frame::Quest(quest)))) => handle_quest(shared, conn, quest),
                Ok(Some(Gated::Frame(Frame::Answer(answer)))) => conn.on_answer(answer),
                Ok(Some(Gated::Refused {
                    seq,
                    method,
                    refusal,
                })) => refuse_quest(shared, conn, seq, &method, refusal),
                Ok(None) => break,
                Err(e) => return Err(format!("bad frame from the client: {e}")),
            }
            if conn.is_closed() {
                return Ok(());
            }
        }
    }
}

/// How a connection to an encrypted server starts.
enum Start {
    /// With a `*key` frame of this many bytes: the rest is encrypted.
    Encrypted(Box<Decryptor>, usize),
    /// With another frame, on a server that allows plain clients.
    Plain,
}

/// Tries to complete the `*key` handshake from the raw bytes received so far.
/// `Ok(None)`: more bytes needed. `Ok(Some(start))`: how the connection
/// goes on. `Err`: close the connection without answering.
fn try_handshake(
    shared: &Arc<Shared>,
    conn: &ServerConn,
    pre: &[u8],
) -> Result<Option<Start>, String> {
    if pre.len() < HEADER_LEN {
        return Ok(None);
    }
    let mut raw = [0u8; HEADER_LEN];
    raw.copy_from_slice(&pre[..HEADER_LEN]);
    let header = Header::parse(&raw).map_err(|e| format!("bad first frame: {e}"))?;
    if header.psize as usize > shared.max_payload {
        return Err(format!(
            "{}",
            ProtocolError::FrameTooLarge {
                size: header.psize as u64,
                max: shared.max_payload as u64
            }
        ));
    }
    let len = header.frame_len() as usize;
    if pre.len() < len {
        return Ok(None);
    }
    let frame = decode_frame(&pre[..len], shared.max_payload)
        .map_err(|e| format!("bad first frame: {e}"))?;
    let quest = match frame {
        Frame::Quest(q) if q.method == "*key" && q.seq.is_some() => q,
        _ if shared.allow_plain => {
            conn.inner.version.store(header.version, Ordering::SeqCst);
            log::debug!("conn {}: not encrypted", conn.id());
            return Ok(Some(Start::Plain));
        }
        Frame::Quest(q) => {
            return Err(format!(
                "the first quest is `{}`, not a two-way `*key`, on an encrypted server",
                q.method
            ))
        }
        Frame::Answer(_) => return Err("the first frame is an answer, not `*key`".into()),
    };
    shared.record(&quest);
    let public_key = match map_get(&quest.payload, "publicKey") {
        Some(Value::Binary(b)) => b.clone(),
        Some(Value::String(s)) => s.as_bytes().to_vec(),
        _ => return Err("`*key` without a publicKey".into()),
    };
    // The C++ server reads these with defaults.
    let stream_mode = map_get(&quest.payload, "streamMode")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let bits = match map_get(&quest.payload, "bits") {
        None => 128,
        Some(v) => v
            .as_i64()
            .and_then(|b| u32::try_from(b).ok())
            .ok_or("`*key` with a non-integer bits")?,
    };
    let key = shared.encryption.as_ref().expect("encrypted server");
    let max_frame = shared.max_payload.saturating_add(FRAME_OVERHEAD);
    let (encryptor, decryptor) = key
        .accept(&public_key, stream_mode, bits, max_frame)
        .map_err(|e| format!("`*key` refused: {e}"))?;
    lock(&conn.inner.writer).encryptor = Some(encryptor);
    conn.inner.version.store(header.version, Ordering::SeqCst);
    let mode = if stream_mode {
        CipherMode::Stream
    } else {
        CipherMode::Package
    };
    let key_bits = if bits == 128 {
        KeyBits::Aes128
    } else {
        KeyBits::Aes256
    };
    *lock(&conn.inner.encryption) = Some((mode, key_bits));
    log::debug!("conn {}: encrypted ({mode:?} mode, AES-{bits})", conn.id());
    // Faults apply (a frozen server does not answer `*key` either).
    conn.deliver(quest.seq, Reply::ok(), false);
    shared.service.on_encrypted(conn);
    Ok(Some(Start::Encrypted(Box::new(decryptor), len)))
}

/// Whether the server answers `method` itself (never offered to
/// [`Service::admit`]).
fn server_answers(shared: &Shared, method: &str) -> bool {
    method == "*key" || (method == "*ping" && !shared.service.handles_ping())
}

/// Answers a quest that [`Service::admit`] refused: nothing of it is
/// recorded or decoded. Faults apply as to any quest.
fn refuse_quest(
    shared: &Arc<Shared>,
    conn: &ServerConn,
    seq: Option<u32>,
    method: &str,
    reply: Reply,
) {
    if shared.faults.should_drop() {
        log::debug!(
            "conn {}: dropping the connection on `{method}` (fault)",
            conn.id()
        );
        conn.close();
        return;
    }
    if shared.faults.frozen() {
        log::debug!("conn {}: frozen, `{method}` ignored", conn.id());
        return;
    }
    log::debug!("conn {}: `{method}` refused before decoding", conn.id());
    conn.deliver(seq, reply, false);
}

fn handle_quest(shared: &Arc<Shared>, conn: &ServerConn, quest: Quest) {
    shared.record(&quest);
    if shared.faults.should_drop() {
        log::debug!(
            "conn {}: dropping the connection on `{}` (fault)",
            conn.id(),
            quest.method
        );
        conn.close();
        return;
    }
    if shared.faults.frozen() {
        log::debug!("conn {}: frozen, `{}` ignored", conn.id(), quest.method);
        return;
    }
    let reply = match quest.method.as_str() {
        "*key" if shared.encryption.is_some() => {
            log::debug!("conn {}: `*key` is not the first quest", conn.id());
            Reply::Close
        }
        "*key" => Reply::error(
            codes::FPNN_EC_CORE_UNKNOWN_METHOD,
            "encryption is not enabled on this server",
        ),
        "*ping" if !shared.service.handles_ping() => {
            Reply::Answer(Value::Map(vec![(Value::from("ts"), Value::from(now_ms()))]))
        }
        _ => shared.service.on_quest(conn, &quest),
    };
    conn.deliver(quest.seq, reply, false);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::testutil::{map, RawClient};
    use crate::fpnn::crypto::{CipherMode, Curve, KeyBits};

    fn echo() -> impl Service {
        |_c: &ServerConn, q: &Quest| match q.method.as_str() {
            "echo" => Reply::Answer(q.payload.clone()),
            "fail" => Reply::error(123, "failed"),
            "slow" => Reply::after(
                Duration::from_millis(300),
                Reply::Answer(map(vec![("slow", true.into())])),
            ),
            "hold" => Reply::None,
            "close" => Reply::Close,
            "garbage" => Reply::Raw(b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec()),
            _ => Reply::error(codes::FPNN_EC_CORE_UNKNOWN_METHOD, "unknown"),
        }
    }

    #[test]
    fn answers_errors_ping_and_received_log() {
        let server = FpnnServer::start(echo(), ServerOptions::new()).unwrap();
        assert!(server.endpoint().starts_with("127.0.0.1:"));
        let mut c = RawClient::connect(&server.endpoint());
        let p = map(vec![("a", 1.into())]);
        assert_eq!(c.call("echo", &p).into_result().unwrap(), p);
        let e = c.call("fail", &map(vec![])).into_result().unwrap_err();
        assert_eq!(e.server_code(), Some(123));
        let ping = c.call("*ping", &map(vec![])).into_result().unwrap();
        let ts = map_get(&ping, "ts").and_then(Value::as_i64).unwrap();
        assert!((ts - now_ms()).abs() < 10_000);
        let e = c.call("*key", &map(vec![])).into_result().unwrap_err();
        assert_eq!(e.server_code(), Some(codes::FPNN_EC_CORE_UNKNOWN_METHOD));
        // One-way quests get no answer; the next two-way one does.
        c.send_one_way("echo", &p);
        assert_eq!(c.call("echo", &p).into_result().unwrap(), p);
        let methods: Vec<String> = server.received().into_iter().map(|(m, _)| m).collect();
        assert_eq!(methods, ["echo", "fail", "*ping", "*key", "echo", "echo"]);
        server.clear_received();
        assert!(server.received().is_empty());
        assert_eq!(server.connection_count(), 1);
        assert_eq!(server.connections().len(), 1);
    }

    #[test]
    fn refused_quests_are_answered_and_neither_decoded_nor_recorded() {
        use std::sync::atomic::AtomicUsize;
        struct Gate(Arc<AtomicUsize>);
        impl Service for Gate {
            fn on_quest(&self, _: &ServerConn, q: &Quest) -> Reply {
                self.0.fetch_add(1, Ordering::SeqCst);
                Reply::Answer(q.payload.clone())
            }
            fn admit(&self, _: &ServerConn, method: &str, payload: &[u8]) -> Result<(), Reply> {
                // The raw payload is offered: a fixmap of one entry here.
                let mut keys = Vec::new();
                crate::fpnn::codec::for_each_raw_entry(payload, |k, v| {
                    keys.push((k.to_string(), v.to_vec()))
                })
                .unwrap();
                match method {
                    "open" => Ok(()),
                    _ => Err(Reply::error(7, format!("refused {keys:?}"))),
                }
            }
        }
        let calls = Arc::new(AtomicUsize::new(0));
        let server = FpnnServer::start(Gate(calls.clone()), ServerOptions::new()).unwrap();
        let mut c = RawClient::connect(&server.endpoint());
        let p = map(vec![("a", 1.into())]);
        assert_eq!(c.call("open", &p).into_result().unwrap(), p);
        let e = c.call("shut", &p).into_result().unwrap_err();
        assert_eq!(e.server_code(), Some(7));
        // The gate saw the key and the value's encoded bytes (fixint 1).
        assert!(e.to_string().contains(r#"[("a", [1])]"#), "{e}");
        // `*ping` is answered by the server, never offered to the gate.
        assert!(c.call("*ping", &map(vec![])).into_result().is_ok());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let methods: Vec<String> = server.received().into_iter().map(|(m, _)| m).collect();
        assert_eq!(methods, ["open", "*ping"]);
    }

    #[test]
    fn answers_echo_the_clients_header_version() {
        let server = FpnnServer::start(echo(), ServerOptions::new()).unwrap();
        for version in [0u8, 1, 7] {
            let mut socket = TcpStream::connect(server.endpoint()).unwrap();
            socket
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut frame = Vec::new();
            encode_quest(&mut frame, Some(9), "echo", &Value::Map(Vec::new())).unwrap();
            frame[4] = version;
            // The header in two writes: the version byte arrives alone.
            socket.write_all(&frame[..4]).unwrap();
            thread::sleep(Duration::from_millis(20));
            socket.write_all(&frame[4..]).unwrap();
            let mut header = [0u8; HEADER_LEN];
            socket.read_exact(&mut header).unwrap();
            assert_eq!(&header[..4], b"FPNN");
            assert_eq!(header[4], version);
            assert_eq!(header[6], 2, "an answer");
        }
    }

    #[test]
    fn close_reasons() {
        let reasons: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
        struct Recording(Arc<Mutex<Vec<Option<String>>>>);
        impl Service for Recording {
            fn on_quest(&self, _: &ServerConn, q: &Quest) -> Reply {
                match q.method.as_str() {
                    "close" => Reply::Close,
                    _ => Reply::ok(),
                }
            }
            fn on_disconnect(&self, conn: &ServerConn) {
                lock(&self.0).push(conn.close_reason());
            }
        }
        let server = FpnnServer::start(Recording(reasons.clone()), ServerOptions::new()).unwrap();
        let wait_for = |n: usize| {
            let t = Instant::now();
            while lock(&reasons).len() < n && t.elapsed() < Duration::from_secs(3) {
                thread::sleep(Duration::from_millis(5));
            }
            lock(&reasons).last().cloned().expect("a disconnect")
        };
        let mut c = RawClient::connect(&server.endpoint());
        c.call("x", &map(vec![]));
        drop(c);
        assert_eq!(wait_for(1), None);
        let mut c = RawClient::connect(&server.endpoint());
        c.send("close", &map(vec![]));
        c.expect_closed();
        assert_eq!(wait_for(2).as_deref(), Some("closed by the server"));
        let mut c = RawClient::connect(&server.endpoint());
        c.write_raw(b"GET / HTTP/1.1\r\n\r\n");
        c.expect_closed();
        let reason = wait_for(3).unwrap();
        assert!(reason.contains("bad frame"), "{reason}");
    }

    #[test]
    fn delayed_reply_does_not_block_reading() {
        let server = FpnnServer::start(echo(), ServerOptions::new()).unwrap();
        let mut c = RawClient::connect(&server.endpoint());
        let slow = c.send("slow", &map(vec![]));
        let fast = c.send("echo", &map(vec![("x", 1.into())]));
        let first = c.read_answer();
        assert_eq!(first.seq, fast);
        let second = c.read_answer();
        assert_eq!(second.seq, slow);
    }

    #[test]
    fn held_answer_and_close_and_raw() {
        let held: Arc<Mutex<Vec<(ServerConn, u32)>>> = Arc::default();
        let h = held.clone();
        let svc = move |conn: &ServerConn, q: &Quest| {
            if q.method == "hold" {
                lock(&h).push((conn.clone(), q.seq.unwrap()));
                return Reply::None;
            }
            echo().on_quest(conn, q)
        };
        let server = FpnnServer::start(svc, ServerOptions::new()).unwrap();
        let mut c = RawClient::connect(&server.endpoint());
        let seq = c.send("hold", &map(vec![]));
        c.expect_silence(Duration::from_millis(100));
        let (conn, s) = lock(&held).pop().unwrap();
        assert_eq!(s, seq);
        conn.answer(s, Reply::Answer(map(vec![("late", true.into())])));
        let a = c.read_answer();
        assert_eq!(a.seq, seq);
        // Raw bytes reach the client as they are.
        c.send("garbage", &map(vec![]));
        assert_eq!(c.read_raw(4), b"HTTP");
        // Close closes without answering.
        let mut c = RawClient::connect(&server.endpoint());
        c.send("close", &map(vec![]));
        c.expect_closed();
    }

    #[test]
    fn push_two_way_and_one_way() {
        let server = FpnnServer::start(echo(), ServerOptions::new()).unwrap();
        let mut c = RawClient::connect(&server.endpoint());
        c.call("echo", &map(vec![])); // make sure the connection is registered
        let conn = server.connections().pop().unwrap();
        let pusher = {
            let conn = conn.clone();
            thread::spawn(move || conn.push("pushmsg", map(vec![("mid", 5.into())])))
        };
        let q = c.read_quest();
        assert_eq!(q.method, "pushmsg");
        c.answer(q.seq.unwrap(), &map(vec![("ok", true.into())]));
        assert_eq!(
            pusher.join().unwrap().unwrap(),
            map(vec![("ok", true.into())])
        );
        // An exception answer comes back as Error::Server.
        let pusher = {
            let conn = conn.clone();
            thread::spawn(move || conn.push("ping", map(vec![])))
        };
        let q = c.read_quest();
        c.answer_error(q.seq.unwrap(), 20004, "nope");
        assert_eq!(
            pusher.join().unwrap().unwrap_err().server_code(),
            Some(20004)
        );
        // No answer: timeout.
        let e = conn
            .push_with_timeout("ping", map(vec![]), Duration::from_millis(100))
            .unwrap_err();
        assert!(e.is_timeout());
        let _ = c.read_quest();
        conn.push_one_way("notify", map(vec![("k", 1.into())]));
        let q = c.read_quest();
        assert_eq!((q.method.as_str(), q.seq), ("notify", None));
        // The client closing fails a pending push at once.
        let pusher = {
            let conn = conn.clone();
            thread::spawn(move || conn.push("ping", map(vec![])))
        };
        let _ = c.read_quest();
        drop(c);
        let e = pusher.join().unwrap().unwrap_err();
        assert!(e.is_connection_error(), "{e:?}");
    }

    #[test]
    fn stop_with_open_clients_and_restart_on_same_port() {
        let mut server = FpnnServer::start(echo(), ServerOptions::new()).unwrap();
        let addr = server.local_addr();
        let mut c1 = RawClient::connect(&server.endpoint());
        let mut c2 = RawClient::connect(&server.endpoint());
        c1.call("echo", &map(vec![]));
        c2.send("hold", &map(vec![]));
        let t = Instant::now();
        server.stop();
        assert!(t.elapsed() < Duration::from_secs(3));
        c1.expect_closed();
        c2.expect_closed();
        server.stop(); // idempotent
        let server2 = FpnnServer::start(echo(), ServerOptions::new().addr(addr)).unwrap();
        assert_eq!(server2.local_addr(), addr);
        let mut c = RawClient::connect(&server2.endpoint());
        assert!(c.call("echo", &map(vec![])).into_result().is_ok());
    }

    #[test]
    fn fault_freeze() {
        let server = FpnnServer::start(echo(), ServerOptions::new()).unwrap();
        let mut c = RawClient::connect(&server.endpoint());
        server.faults().set_freeze(true);
        c.send("*ping", &map(vec![]));
        c.send("echo", &map(vec![]));
        c.expect_silence(Duration::from_millis(200));
        let t = Instant::now();
        while server.received().len() < 2 && t.elapsed() < Duration::from_secs(3) {
            thread::sleep(Duration::from_millis(5));
        }
        server.faults().set_freeze(false);
        let seq = c.send("*ping", &map(vec![]));
        assert_eq!(c.read_answer().seq, seq);
        assert_eq!(server.received().len(), 3);
    }

    #[test]
    fn fault_refuse() {
        let server = FpnnServer::start(echo(), ServerOptions::new()).unwrap();
        server.faults().set_refuse(true);
        let mut c = RawClient::connect(&server.endpoint());
        c.expect_closed();
        assert_eq!(server.connection_count(), 1);
        server.faults().set_refuse(false);
        let mut c = RawClient::connect(&server.endpoint());
        assert!(c.call("echo", &map(vec![])).into_result().is_ok());
        assert_eq!(server.connection_count(), 2);
    }

    #[test]
    fn fault_drop_every() {
        let server = FpnnServer::start(echo(), ServerOptions::new()).unwrap();
        server.faults().set_drop_every(2);
        let mut c = RawClient::connect(&server.endpoint());
        assert!(c.call("echo", &map(vec![])).into_result().is_ok());
        c.send("echo", &map(vec![]));
        c.expect_closed();
        let mut c = RawClient::connect(&server.endpoint());
        assert!(c.call("echo", &map(vec![])).into_result().is_ok());
        c.send("echo", &map(vec![]));
        c.expect_closed();
        server.faults().set_drop_every(0);
        let mut c = RawClient::connect(&server.endpoint());
        for _ in 0..3 {
            assert!(c.call("echo", &map(vec![])).into_result().is_ok());
        }
    }

    #[test]
    fn fault_answer_delay() {
        let server = FpnnServer::start(echo(), ServerOptions::new()).unwrap();
        server.faults().set_answer_delay(Duration::from_millis(200));
        let mut c = RawClient::connect(&server.endpoint());
        let t = Instant::now();
        c.call("*ping", &map(vec![]));
        assert!(t.elapsed() >= Duration::from_millis(200));
        server.faults().set_answer_delay(Duration::ZERO);
        let t = Instant::now();
        c.call("*ping", &map(vec![]));
        assert!(t.elapsed() < Duration::from_millis(200));
    }

    #[test]
    fn bad_frame_closes_connection() {
        let server = FpnnServer::start(echo(), ServerOptions::new()).unwrap();
        let mut c = RawClient::connect(&server.endpoint());
        c.write_raw(b"GET / HTTP/1.1\r\n\r\n");
        c.expect_closed();
        // Too large for the limit.
        let server = FpnnServer::start(echo(), ServerOptions::new().max_payload(16)).unwrap();
        let mut c = RawClient::connect(&server.endpoint());
        c.send("echo", &map(vec![("0123456789abcdef", 1.into())]));
        c.expect_closed();
    }

    #[test]
    fn disconnect_callback_and_connections() {
        struct Counting(Arc<AtomicU64>, Arc<AtomicU64>);
        impl Service for Counting {
            fn on_quest(&self, _: &ServerConn, _: &Quest) -> Reply {
                Reply::ok()
            }
            fn on_connect(&self, _: &ServerConn) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
            fn on_disconnect(&self, _: &ServerConn) {
                self.1.fetch_add(1, Ordering::SeqCst);
            }
        }
        let (up, down) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let mut server =
            FpnnServer::start(Counting(up.clone(), down.clone()), ServerOptions::new()).unwrap();
        let mut c = RawClient::connect(&server.endpoint());
        c.call("x", &map(vec![]));
        assert_eq!(up.load(Ordering::SeqCst), 1);
        drop(c);
        let t = Instant::now();
        while down.load(Ordering::SeqCst) == 0 && t.elapsed() < Duration::from_secs(3) {
            thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(down.load(Ordering::SeqCst), 1);
        assert!(server.connections().is_empty());
        let mut c = RawClient::connect(&server.endpoint());
        c.call("x", &map(vec![]));
        server.stop();
        assert_eq!(down.load(Ordering::SeqCst), 2);
    }

    fn encrypted_roundtrip(curve: Curve, mode: CipherMode, bits: KeyBits) {
        let key = ServerPrivateKey::generate(curve);
        let public = key.public_key();
        let server = FpnnServer::start(echo(), ServerOptions::new().encryption(key)).unwrap();
        assert!(server.is_encrypted());
        let mut c = RawClient::connect(&server.endpoint());
        // *key and the first encrypted quest in the same write.
        let echo_seq = c.handshake(&public, mode, bits, true);
        let a = c.read_answer();
        assert_eq!(a.seq, echo_seq);
        assert_eq!(a.into_result().unwrap(), map(vec![("v", 7.into())]));
        for i in 0..3 {
            let p = map(vec![("i", i.into())]);
            assert_eq!(c.call("echo", &p).into_result().unwrap(), p);
        }
        assert!(c.call("*ping", &map(vec![])).into_result().is_ok());
        // Pushes are encrypted too.
        let conn = server.connections().pop().unwrap();
        let pusher = thread::spawn(move || conn.push("ping", map(vec![])));
        let q = c.read_quest();
        assert_eq!(q.method, "ping");
        c.answer(q.seq.unwrap(), &map(vec![]));
        assert!(pusher.join().unwrap().is_ok());
        assert_eq!(server.received()[0].0, "*key");
    }

    #[test]
    fn encrypted_stream_and_package_modes() {
        encrypted_roundtrip(Curve::Secp256k1, CipherMode::Stream, KeyBits::Aes256);
        encrypted_roundtrip(Curve::Secp256k1, CipherMode::Package, KeyBits::Aes128);
        encrypted_roundtrip(Curve::Secp256r1, CipherMode::Stream, KeyBits::Aes128);
        encrypted_roundtrip(Curve::Secp256r1, CipherMode::Package, KeyBits::Aes256);
    }

    #[test]
    fn an_encrypted_server_may_serve_plain_clients_too() {
        let key = ServerPrivateKey::generate(Curve::Secp256r1);
        let public = key.public_key();
        let server = FpnnServer::start(
            echo(),
            ServerOptions::new().encryption(key).allow_plain(true),
        )
        .unwrap();
        let p = map(vec![("a", 1.into())]);
        // Plain, in one write with a second frame, and by bytes.
        let mut c = RawClient::connect(&server.endpoint());
        assert_eq!(c.call("echo", &p).into_result().unwrap(), p);
        assert_eq!(c.call("echo", &p).into_result().unwrap(), p);
        let conn = server.connections().pop().unwrap();
        assert_eq!(conn.encryption(), None);
        // A `*key` after another quest closes, as on the C++ server.
        c.send("*key", &map(vec![]));
        c.expect_closed();
        // Encrypted clients still work.
        let mut c = RawClient::connect(&server.endpoint());
        let seq = c.handshake(&public, CipherMode::Stream, KeyBits::Aes256, true);
        assert_eq!(c.read_answer().seq, seq);
        assert_eq!(c.call("echo", &p).into_result().unwrap(), p);
        let conn = server.connections().pop().unwrap();
        assert_eq!(
            conn.encryption(),
            Some((CipherMode::Stream, KeyBits::Aes256))
        );
    }

    #[test]
    fn encrypted_handshake_separate_write() {
        let key = ServerPrivateKey::generate(Curve::Secp256k1);
        let public = key.public_key();
        let server = FpnnServer::start(echo(), ServerOptions::new().encryption(key)).unwrap();
        let mut c = RawClient::connect(&server.endpoint());
        c.handshake(&public, CipherMode::Stream, KeyBits::Aes128, false);
        let p = map(vec![("z", "zz".into())]);
        assert_eq!(c.call("echo", &p).into_result().unwrap(), p);
        // A second *key on an encrypted connection closes it.
        c.send("*key", &map(vec![]));
        c.expect_closed();
    }

    #[test]
    fn encrypted_server_rejects_bad_handshakes() {
        let key = ServerPrivateKey::generate(Curve::Secp256k1);
        let public = key.public_key();
        let server = FpnnServer::start(echo(), ServerOptions::new().encryption(key)).unwrap();
        // Not *key first.
        let mut c = RawClient::connect(&server.endpoint());
        c.send("echo", &map(vec![]));
        c.expect_closed();
        // Bad key length.
        let mut c = RawClient::connect(&server.endpoint());
        c.send(
            "*key",
            &map(vec![
                ("publicKey", Value::Binary(vec![1; 10])),
                ("streamMode", true.into()),
                ("bits", 128.into()),
            ]),
        );
        c.expect_closed();
        // Bad bits.
        let hs = crate::fpnn::crypto::EncryptionConfig::new(public)
            .handshake(1 << 20)
            .unwrap();
        let mut c = RawClient::connect(&server.endpoint());
        c.send(
            "*key",
            &map(vec![
                ("publicKey", Value::Binary(hs.public_key)),
                ("bits", 100.into()),
            ]),
        );
        c.expect_closed();
        // Missing publicKey.
        let mut c = RawClient::connect(&server.endpoint());
        c.send("*key", &map(vec![("bits", 128.into())]));
        c.expect_closed();
    }
}
