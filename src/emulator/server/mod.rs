//! A small generic FPNN server for tests: plain or encrypted connections,
//! a pluggable [`Service`], server-to-client pushes and live [`Faults`],
//! built to hold its ground against hostile peers ([`limits`]).
//!
//! One thread accepts connections (`accept.rs`: the connection limit and
//! shedding), one reader thread per connection (`emu-conn-N`, `conn.rs`:
//! reading, timeouts, writing) decodes quests and calls the service in
//! arrival order (`dispatch.rs`), and one timer thread per server sends
//! delayed answers ([`Reply::After`] and [`Faults::set_answer_delay`]).
//! Each connection is one socket (one descriptor): the reader thread reads
//! it, and writes go through a lock on it, so any thread may answer or push.
//! The answers to the frames of one read go out in one write.
//!
//! A quest is offered to [`Service::admit`] before its payload is decoded:
//! a refused quest is answered and forgotten (neither decoded nor recorded),
//! an admitted one marks its connection authenticated.
//!
//! Frames of any header version are accepted, and every answer carries the
//! version of the client's first frame, as the C++ server's answers echo
//! the quest's header (Python clients send 0, the others 1).

mod accept;
mod conn;
mod dispatch;
mod faults;
pub mod limits;
mod received;
#[cfg(test)]
mod tests;
mod timer;

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rmpv::Value;

pub use self::conn::ServerConn;
pub use self::faults::Faults;
pub use self::limits::{
    raise_fd_limit, ServerOptions, DEFAULT_FRAME_TIMEOUT, DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_RECEIVED_LOG_BYTES, DEFAULT_UNAUTHENTICATED_BUFFER,
    DESCRIPTOR_RESERVE, RECEIVED_LOG_CAPACITY,
};
use crate::fpnn::codec::Quest;
/// Locks a mutex, ignoring poisoning (the transport's helper, shared).
pub(crate) use crate::fpnn::conn::lock;
use received::ReceivedLog;
use timer::Timer;

/// How long [`ServerConn::push`] waits for the client's answer.
pub const DEFAULT_PUSH_TIMEOUT: Duration = Duration::from_secs(10);

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
// Shared server state
// ---------------------------------------------------------------------------

/// The limits a running server enforces (from its [`ServerOptions`]).
#[derive(Debug, Clone, Copy)]
struct Limits {
    max_payload: usize,
    max_connections: usize,
    idle_timeout: Option<Duration>,
    authenticated_idle_timeout: Option<Duration>,
    frame_timeout: Option<Duration>,
    unauthenticated_buffer: usize,
}

/// What every thread of a server shares.
///
/// Lock order: `conns`, then a connection's locks; `received` and the
/// timer's lock are never held with another.
struct Shared {
    service: Box<dyn Service>,
    faults: Faults,
    stopping: AtomicBool,
    /// Open connections by id (accept order).
    conns: Mutex<BTreeMap<u64, ServerConn>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    accepted: AtomicU64,
    next_conn_id: AtomicU64,
    received: Mutex<ReceivedLog>,
    /// Bytes held by the read buffers of unauthenticated connections.
    unauthenticated_bytes: AtomicUsize,
    limits: Limits,
    encryption: Option<crate::fpnn::crypto::ServerPrivateKey>,
    allow_plain: bool,
    timer: Arc<Timer>,
}

impl Shared {
    /// Records a quest in the test log (`payload`: its encoded payload).
    fn record(&self, method: &str, payload: &[u8]) {
        lock(&self.received).record(method, payload);
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
            .field("limits", &self.shared.limits)
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
            received: Mutex::new(ReceivedLog::new(
                options.received_log_entries,
                options.received_log_bytes,
            )),
            unauthenticated_bytes: AtomicUsize::new(0),
            limits: Limits {
                max_payload: options.max_payload,
                max_connections: options.max_connections.max(1),
                idle_timeout: options.idle_timeout,
                authenticated_idle_timeout: options.authenticated_idle_timeout,
                frame_timeout: options.frame_timeout,
                unauthenticated_buffer: options.unauthenticated_buffer,
            },
            encryption: options.encryption,
            allow_plain: options.allow_plain,
            timer: timer.clone(),
        });
        accept::register(&shared);
        let timer_thread = thread::Builder::new()
            .name(format!("emu-timer-{}", addr.port()))
            .spawn(move || timer.run())?;
        let accept_shared = shared.clone();
        let accept_thread = match thread::Builder::new()
            .name(format!("emu-accept-{}", addr.port()))
            .spawn(move || accept::accept_loop(listener, accept_shared))
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
    /// the last [`ServerOptions::received_log_entries`] quests and
    /// [`ServerOptions::received_log_bytes`] bytes of payload, 10,000 and
    /// 16 MiB by default). It includes `*key`, `*ping` and the quests
    /// dropped by faults, never a quest refused by [`Service::admit`].
    /// Payloads are kept encoded and decoded by this call.
    pub fn received(&self) -> Vec<(String, Value)> {
        lock(&self.shared.received).decoded()
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
