//! The FPNN transport client: lazy connect, timeouts, the raw quest API,
//! server quests and shutdown.

use std::net::{TcpStream, ToSocketAddrs};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use crossbeam_channel::{bounded, unbounded, Receiver, RecvTimeoutError, Sender};
use rmpv::Value;

use super::codec::{self, Quest, RawAnswer};
use super::config::ClientConfig;
use super::conn::{lock, ConnContext, Connection, FrameBuf, MethodName, Reply, ReplySlot, Waiter};
use super::crypto::{ClientHandshake, Encryptor};
use super::pool::{AnswerCallback, Pool};
use crate::codes;
use crate::error::{Error, Result};

static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);

/// What a [`QuestHandler`] answers to a quest pushed by the server.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum QuestReply {
    /// Answer OK with this payload (a map with string keys; use
    /// [`QuestReply::empty`] for `{}`).
    Answer(Value),
    /// Answer with an FPNN exception.
    Error {
        /// The error code.
        code: i64,
        /// The message (`ex`).
        message: String,
    },
    /// The handler does not know this method. The client answers the RTM
    /// `ping` with `{}` and anything else with error 20004 (unknown method).
    Unhandled,
}

impl QuestReply {
    /// An OK answer with the empty map `{}`.
    pub fn empty() -> QuestReply {
        QuestReply::Answer(Value::Map(Vec::new()))
    }
}

/// Handles quests that the server pushes on the connection.
///
/// It runs on a callback thread, never on the reader thread, so it may take
/// its time or call the client. For a two-way quest the returned
/// [`QuestReply`] is sent back as the answer (exactly one answer per
/// two-way quest, even when the handler panics: that is answered with
/// error 20001); for a one-way quest it is ignored and nothing is sent.
pub trait QuestHandler: Send + Sync + 'static {
    /// Handles one quest. `two_way` tells whether an answer will be sent.
    fn on_quest(&self, method: &str, payload: &Value, two_way: bool) -> QuestReply;
}

impl<T: QuestHandler> QuestHandler for Arc<T> {
    fn on_quest(&self, method: &str, payload: &Value, two_way: bool) -> QuestReply {
        (**self).on_quest(method, payload, two_way)
    }
}

impl<F> QuestHandler for F
where
    F: Fn(&str, &Value, bool) -> QuestReply + Send + Sync + 'static,
{
    fn on_quest(&self, method: &str, payload: &Value, two_way: bool) -> QuestReply {
        self(method, payload, two_way)
    }
}

/// A change of the connection, reported to the handler installed with
/// [`FpnnClient::set_event_handler`].
///
/// Events are delivered in the order they happened, one at a time, on the
/// client's supervisor thread (never on the reader thread).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ConnectionEvent {
    /// A connection was established (and its key exchange and connect
    /// hooks are done).
    Connected {
        /// The id of the new connection.
        connection_id: u64,
        /// The endpoint.
        endpoint: String,
    },
    /// A connect attempt failed.
    ConnectFailed {
        /// The endpoint.
        endpoint: String,
        /// Why.
        error: Error,
        /// Whether a background reconnect will follow.
        will_reconnect: bool,
    },
    /// A connection closed.
    Closed {
        /// The id of the connection.
        connection_id: u64,
        /// The endpoint.
        endpoint: String,
        /// What closed it; `None` when the user closed the client.
        error: Option<Error>,
        /// Whether a background reconnect will follow.
        will_reconnect: bool,
    },
}

impl ConnectionEvent {
    /// True when the connection closed because of an error (not by the
    /// user).
    pub fn caused_by_error(&self) -> bool {
        match self {
            ConnectionEvent::Closed { error, .. } => error.is_some(),
            ConnectionEvent::ConnectFailed { .. } => true,
            ConnectionEvent::Connected { .. } => false,
        }
    }
}

type EventHandler = Arc<dyn Fn(&ConnectionEvent) + Send + Sync>;

enum SupMsg {
    Event(ConnectionEvent),
    Stop,
}

/// The regressive reconnect bookkeeping.
struct Regress {
    /// Failed attempts since the last successful connect.
    failed: u32,
    /// When the current (or last) connection was made.
    connected_at: Option<Instant>,
}

/// Runs after each new connection is established (and its key exchange
/// done), before user calls may use it; used by the RTM layer to restore
/// its listen state. An error closes the new connection.
pub(crate) type ConnectHook = Arc<dyn Fn(&FpnnSession<'_>) -> Result<()> + Send + Sync>;

/// A view of a connection that is being set up, for [`ConnectHook`]s.
pub(crate) struct FpnnSession<'a> {
    core: &'a Core,
    conn: &'a Arc<Connection>,
}

impl FpnnSession<'_> {
    /// The client core (to build frames).
    pub(crate) fn core(&self) -> &Core {
        self.core
    }

    /// Makes a blocking call on the connection being set up.
    pub(crate) fn call_frame(&self, method: &str, frame: FrameBuf) -> Result<Value> {
        self.core
            .call_on(self.conn, method, frame, self.core.config.connect_timeout)
    }
}

/// A blocking FPNN client over one TCP connection.
///
/// It connects lazily on the first call (or explicitly with
/// [`connect`](FpnnClient::connect)), and connects again on the next call
/// after the connection was lost. Calls may come from any number of threads
/// at once; answers are routed by sequence number.
///
/// Cloning is cheap and gives another handle to the same client. The client
/// closes when [`close`](FpnnClient::close) is called or when the last handle
/// is dropped: every pending call and callback then completes exactly once,
/// and every thread of the client is joined.
///
/// This is the raw layer: most users want
/// [`RtmServerClient`](crate::RtmServerClient), which signs RTM quests and
/// wraps the API methods. The raw calls here reach any FPNN method.
#[derive(Clone)]
pub struct FpnnClient {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for FpnnClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FpnnClient")
            .field("endpoint", &self.handle.core.endpoint)
            .field("connected", &self.is_connected())
            .finish()
    }
}

struct Handle {
    core: Arc<Core>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.core.close();
    }
}

struct State {
    current: Option<Arc<Connection>>,
    /// A connection being set up (key exchange, connect hook), so that
    /// `close()` can cut it short.
    connecting: Option<Arc<Connection>>,
    closed: bool,
}

pub(crate) struct Core {
    endpoint: String,
    pub(crate) config: ClientConfig,
    state: Mutex<State>,
    /// `state.current`, readable without the lock: the hot path of every
    /// call (written only under the state lock, with `state.current`).
    current: ArcSwapOption<Connection>,
    /// Held while a connection is being established, so that one thread
    /// connects while the others wait for it.
    connect_lock: Mutex<()>,
    ctx: Arc<ConnContext>,
    pool: Arc<Pool>,
    handler: Mutex<Option<Arc<dyn QuestHandler>>>,
    connect_hook: Mutex<Option<ConnectHook>>,
    timer: Mutex<Option<JoinHandle<()>>>,
    timer_stop: AtomicBool,
    events: Mutex<Option<EventHandler>>,
    sup_tx: Sender<SupMsg>,
    supervisor: Mutex<Option<JoinHandle<()>>>,
    regress: Mutex<Regress>,
}

impl FpnnClient {
    /// Creates a client for `endpoint` (`host:port`). Nothing is connected
    /// until the first call or [`connect`](FpnnClient::connect).
    ///
    /// Fails only when the client's threads cannot be started.
    pub fn new(endpoint: impl Into<String>, config: ClientConfig) -> Result<FpnnClient> {
        let endpoint = endpoint.into();
        let pool = Arc::new(Pool::new(config.callback_threads, "fpnn")?);
        let (wake_tx, wake_rx) = bounded::<()>(1);
        let (sup_tx, sup_rx) = unbounded::<SupMsg>();
        let core = Arc::new_cyclic(|weak: &Weak<Core>| {
            let on_quest_core = weak.clone();
            let on_closed_core = weak.clone();
            let ctx = Arc::new(ConnContext {
                pool: pool.clone(),
                timer_wake: wake_tx,
                on_quest: Arc::new(move |conn: &Arc<Connection>, quest: Quest| {
                    if let Some(core) = on_quest_core.upgrade() {
                        core.handle_quest(conn, quest);
                    } else {
                        answer_quest(conn, quest, QuestReply::Unhandled);
                    }
                }),
                on_closed: Arc::new(move |conn: &Arc<Connection>, err: &Error| {
                    if let Some(core) = on_closed_core.upgrade() {
                        core.connection_closed(conn, err);
                    }
                }),
                max_recv_payload: config.max_recv_payload,
                epoch: Instant::now(),
            });
            Core {
                endpoint,
                config,
                state: Mutex::new(State {
                    current: None,
                    connecting: None,
                    closed: false,
                }),
                current: ArcSwapOption::empty(),
                connect_lock: Mutex::new(()),
                ctx,
                pool,
                handler: Mutex::new(None),
                connect_hook: Mutex::new(None),
                timer: Mutex::new(None),
                timer_stop: AtomicBool::new(false),
                events: Mutex::new(None),
                sup_tx,
                supervisor: Mutex::new(None),
                regress: Mutex::new(Regress {
                    failed: 0,
                    connected_at: None,
                }),
            }
        });
        let timer_core = core.clone();
        let sup_core = core.clone();
        let started = spawn_named("fpnn-timer", move || timer_loop(timer_core, wake_rx))
            .and_then(|timer| {
                *lock(&core.timer) = Some(timer);
                spawn_named("fpnn-supervisor", move || supervisor_loop(sup_core, sup_rx))
            })
            .map(|supervisor| *lock(&core.supervisor) = Some(supervisor));
        if let Err(e) = started {
            core.close();
            return Err(e.into());
        }
        Ok(FpnnClient {
            handle: Arc::new(Handle { core }),
        })
    }

    pub(crate) fn core(&self) -> &Arc<Core> {
        &self.handle.core
    }

    /// The endpoint this client connects to.
    pub fn endpoint(&self) -> &str {
        &self.handle.core.endpoint
    }

    /// The configuration in force.
    pub fn config(&self) -> &ClientConfig {
        &self.handle.core.config
    }

    /// Connects now (if not connected yet), so that a wrong endpoint fails
    /// fast instead of on the first call.
    pub fn connect(&self) -> Result<()> {
        self.handle.core.connection().map(|_| ())
    }

    /// True once the client was closed (by [`close`](FpnnClient::close)).
    pub fn is_closed(&self) -> bool {
        self.handle.core.closed()
    }

    /// True while a connection is established.
    pub fn is_connected(&self) -> bool {
        lock(&self.handle.core.state)
            .current
            .as_ref()
            .is_some_and(|c| !c.is_closed())
    }

    /// Installs the handler of quests pushed by the server, replacing any
    /// previous one. Without a handler the client answers the RTM `ping`
    /// with `{}` and every other two-way quest with error 20004.
    pub fn set_quest_handler(&self, handler: impl QuestHandler) {
        *lock(&self.handle.core.handler) = Some(Arc::new(handler));
    }

    /// Installs the handler of [`ConnectionEvent`]s (connected, connect
    /// failed, closed), replacing any previous one. It runs on the client's
    /// supervisor thread, one event at a time, in order; keep it short (a
    /// slow handler delays the next events and background reconnects).
    pub fn set_event_handler(&self, handler: impl Fn(&ConnectionEvent) + Send + Sync + 'static) {
        *lock(&self.handle.core.events) = Some(Arc::new(handler));
    }

    /// Sends a two-way quest and waits for its answer, with the client's
    /// default quest timeout.
    ///
    /// `payload` must be a map with string keys (use `Value::Map(vec![])`
    /// for none). A server exception is [`Error::Server`].
    pub fn call(&self, method: &str, payload: Value) -> Result<Value> {
        self.call_timeout(method, payload, None)
    }

    /// Sends a two-way quest and waits for its answer at most `timeout`
    /// (`None` or zero: the client's default).
    pub fn call_timeout(
        &self,
        method: &str,
        payload: Value,
        timeout: impl Into<Option<Duration>>,
    ) -> Result<Value> {
        let core = &self.handle.core;
        let frame = core.encode_value(method, true, &payload)?;
        core.call_frame(method, frame, timeout.into())
    }

    /// Sends a two-way quest; `callback` receives the answer (or the error)
    /// exactly once, on a callback thread. `timeout` `None` or zero means
    /// the client's default.
    ///
    /// Errors found before sending (bad input, a closed client, a failed
    /// connect) are delivered to the callback too. Like the blocking form,
    /// a call made while disconnected connects first, on the calling
    /// thread, bounded by the connect timeout. Once connected, it never
    /// waits for the server (not even for room in the socket buffer).
    ///
    /// A call made from inside a callback is written together with the
    /// calls of the other callbacks of the same batch (the answers of one
    /// read) when that batch is done: one syscall for many calls. A
    /// callback that runs long holds back the calls made before it in its
    /// batch by at most about two milliseconds.
    pub fn call_with_callback<F>(
        &self,
        method: &str,
        payload: Value,
        timeout: impl Into<Option<Duration>>,
        callback: F,
    ) where
        F: FnOnce(Result<Value>) + Send + 'static,
    {
        let core = &self.handle.core;
        let timeout = timeout.into();
        match core.encode_value(method, true, &payload) {
            Ok(frame) => core.call_frame_cb(
                MethodName::shared(method),
                frame,
                timeout,
                Box::new(callback),
            ),
            Err(e) => core.pool.fail(Box::new(callback), e),
        }
    }

    /// Sends a one-way quest (no answer is expected or waited for).
    pub fn send_one_way(&self, method: &str, payload: Value) -> Result<()> {
        let core = &self.handle.core;
        let frame = core.encode_value(method, false, &payload)?;
        core.connection()?.send_frame(&frame)
    }

    /// Closes the client: the connection is shut down, every pending call
    /// and callback completes with a connection-closed error, and the
    /// client's threads are joined. Later calls fail with
    /// [`Error::ClientClosed`]. Closing twice is harmless; dropping the last
    /// handle closes too.
    pub fn close(&self) {
        self.handle.core.close();
    }

    /// The number of calls in flight on the current connection.
    pub fn pending_calls(&self) -> usize {
        lock(&self.handle.core.state)
            .current
            .as_ref()
            .map_or(0, |c| c.pending_count())
    }
}

impl Core {
    fn closed(&self) -> bool {
        lock(&self.state).closed
    }

    pub(crate) fn set_connect_hook(&self, hook: ConnectHook) {
        *lock(&self.connect_hook) = Some(hook);
    }

    /// Builds a quest frame whose payload is written by `write_payload`.
    pub(crate) fn build_frame(
        &self,
        method: &str,
        two_way: bool,
        write_payload: impl FnOnce(&mut Vec<u8>),
    ) -> Result<FrameBuf> {
        let mut frame = FrameBuf::new();
        let start = codec::begin_quest(&mut frame, two_way, method)?;
        write_payload(&mut frame);
        codec::finish_frame(&mut frame, start, self.config.max_send_payload)?;
        Ok(frame)
    }

    fn encode_value(&self, method: &str, two_way: bool, payload: &Value) -> Result<FrameBuf> {
        codec::check_payload(payload)?;
        self.build_frame(method, two_way, |out| codec::write_value(out, payload))
    }

    /// The timeout of one call: its own, else the configured default (a
    /// zero anywhere means "not set", and the built-in 30 s applies).
    fn effective_timeout(&self, timeout: Option<Duration>) -> Duration {
        match timeout {
            Some(t) if !t.is_zero() => t,
            _ if !self.config.quest_timeout.is_zero() => self.config.quest_timeout,
            _ => super::config::DEFAULT_QUEST_TIMEOUT,
        }
    }

    /// The current connection, connecting first when there is none.
    pub(crate) fn connection(&self) -> Result<Arc<Connection>> {
        if let Some(c) = self.current.load().as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        {
            let st = lock(&self.state);
            if st.closed {
                return Err(Error::ClientClosed);
            }
            if let Some(c) = &st.current {
                if !c.is_closed() {
                    return Ok(c.clone());
                }
            }
        }
        let _guard = lock(&self.connect_lock);
        let old = {
            let mut st = lock(&self.state);
            if st.closed {
                return Err(Error::ClientClosed);
            }
            if let Some(c) = &st.current {
                if !c.is_closed() {
                    return Ok(c.clone());
                }
            }
            self.current.store(None);
            st.current.take()
        };
        if let Some(old) = old {
            old.join_threads();
        }
        let conn = match self.establish() {
            Ok(conn) => conn,
            Err(e) => {
                self.connect_failed(&e);
                return Err(e);
            }
        };
        // Publishing, and the Connected event, happen under the state lock,
        // which `connection_closed` takes too: a Closed event can only follow
        // the Connected one, and a connection that closed before it was
        // published is reported here as a failed connect.
        let st = lock(&self.state);
        if st.closed {
            drop(st);
            conn.shutdown(Error::ClientClosed);
            conn.join_threads();
            return Err(Error::ClientClosed);
        }
        if conn.is_closed() {
            drop(st);
            conn.join_threads();
            let err = Error::closed("the server closed the connection while it was being set up");
            self.connect_failed(&err);
            return Err(err);
        }
        let mut st = st;
        {
            let mut r = lock(&self.regress);
            r.failed = 0;
            r.connected_at = Some(Instant::now());
        }
        conn.publish();
        st.current = Some(conn.clone());
        self.current.store(Some(conn.clone()));
        self.emit(ConnectionEvent::Connected {
            connection_id: conn.id,
            endpoint: self.endpoint.clone(),
        });
        drop(st);
        Ok(conn)
    }

    fn emit(&self, event: ConnectionEvent) {
        let _ = self.sup_tx.send(SupMsg::Event(event));
    }

    fn will_reconnect(&self) -> bool {
        self.config.reconnect.is_some() && !self.closed()
    }

    fn connect_failed(&self, err: &Error) {
        if matches!(err, Error::ClientClosed) {
            return;
        }
        lock(&self.regress).failed += 1;
        log::debug!("connecting to {} failed: {err}", self.endpoint);
        self.emit(ConnectionEvent::ConnectFailed {
            endpoint: self.endpoint.clone(),
            error: err.clone(),
            will_reconnect: self.will_reconnect(),
        });
    }

    /// Dials, runs the key exchange and the connect hook.
    fn establish(&self) -> Result<Arc<Connection>> {
        let deadline = Instant::now() + self.config.connect_timeout;
        let stream = self.dial(deadline)?;
        let id = NEXT_CONN_ID.fetch_add(1, Ordering::Relaxed);
        let handshake = match &self.config.encryption {
            // An encrypted package holds a whole frame: the payload limit
            // plus the largest header, seq and method.
            Some(enc) => Some(
                enc.handshake(
                    self.config
                        .max_recv_payload
                        .saturating_add(codec::HEADER_LEN + 4 + codec::MAX_METHOD_LEN),
                )?,
            ),
            None => None,
        };
        let (decryptor, handshake) = match handshake {
            Some(hs) => {
                let ClientHandshake {
                    public_key,
                    stream_mode,
                    bits,
                    encryptor,
                    decryptor,
                } = hs;
                (
                    Some(decryptor),
                    Some((public_key, stream_mode, bits, encryptor)),
                )
            }
            None => (None, None),
        };
        let conn = Connection::start(
            id,
            self.endpoint.clone(),
            stream,
            decryptor,
            self.ctx.clone(),
        )?;
        {
            let mut st = lock(&self.state);
            if st.closed {
                drop(st);
                conn.shutdown(Error::ClientClosed);
                conn.join_threads();
                return Err(Error::ClientClosed);
            }
            st.connecting = Some(conn.clone());
        }
        let result = self.set_up(&conn, deadline, handshake);
        lock(&self.state).connecting = None;
        if let Err(e) = result {
            conn.shutdown(e.clone());
            conn.join_threads();
            return Err(e);
        }
        Ok(conn)
    }

    /// The key exchange and the connect hook of a new connection.
    fn set_up(
        &self,
        conn: &Arc<Connection>,
        deadline: Instant,
        handshake: Option<(Vec<u8>, bool, u32, Encryptor)>,
    ) -> Result<()> {
        if let Some((public_key, stream_mode, bits, encryptor)) = handshake {
            self.key_exchange(conn, deadline, public_key, stream_mode, bits, encryptor)?;
        }
        log::debug!("connection {} to {} established", conn.id, self.endpoint);
        let hook = lock(&self.connect_hook).clone();
        if let Some(hook) = hook {
            hook(&FpnnSession { core: self, conn })?;
        }
        Ok(())
    }

    /// The `*key` handshake (PROTOCOL.md 2.3): sent in clear as the first
    /// frame; everything after it, in both directions, is encrypted. Waits
    /// for the answer within the connect deadline.
    fn key_exchange(
        &self,
        conn: &Arc<Connection>,
        deadline: Instant,
        public_key: Vec<u8>,
        stream_mode: bool,
        bits: u32,
        encryptor: Encryptor,
    ) -> Result<()> {
        let payload = Value::Map(vec![
            (Value::from("publicKey"), Value::Binary(public_key)),
            (Value::from("streamMode"), Value::Boolean(stream_mode)),
            (Value::from("bits"), Value::from(bits)),
        ]);
        // A protocol frame: not subject to the user's send limit.
        let mut frame = Vec::with_capacity(128);
        codec::encode_quest(&mut frame, Some(0), "*key", &payload)?;
        let (slot, tx) = ReplySlot::new();
        // The connection is not published yet, so this thread writes the
        // frame itself, in clear, before the encryptor is installed.
        let seq = conn
            .send_two_way(&mut frame, Waiter::Blocking(tx))
            .map_err(|(e, _)| e)?;
        conn.enable_encryption(encryptor);
        let timeout = self.config.connect_timeout;
        match wait_answer(conn, &slot, seq, deadline, "*key", timeout) {
            Ok(_) => Ok(()),
            Err(Error::Timeout { .. }) => Err(Error::ConnectTimeout {
                endpoint: self.endpoint.clone(),
                timeout,
            }),
            Err(e @ Error::Encryption(_)) => Err(e),
            Err(e) => Err(Error::Encryption(format!("the key exchange failed: {e}"))),
        }
    }

    fn dial(&self, deadline: Instant) -> Result<TcpStream> {
        let addrs = self
            .endpoint
            .to_socket_addrs()
            .map_err(|e| Error::Connect {
                endpoint: self.endpoint.clone(),
                source: Arc::new(e),
            })?;
        let mut last_err = None;
        for addr in addrs {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match TcpStream::connect_timeout(&addr, left) {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    // A server that stops reading must not block a writer
                    // forever: the write fails and closes the connection.
                    stream.set_write_timeout(Some(self.effective_timeout(None)))?;
                    return Ok(stream);
                }
                Err(e) => last_err = Some(e),
            }
        }
        match last_err {
            Some(e) if e.kind() != std::io::ErrorKind::TimedOut => Err(Error::Connect {
                endpoint: self.endpoint.clone(),
                source: Arc::new(e),
            }),
            Some(_) => Err(Error::ConnectTimeout {
                endpoint: self.endpoint.clone(),
                timeout: self.config.connect_timeout,
            }),
            None if Instant::now() >= deadline => Err(Error::ConnectTimeout {
                endpoint: self.endpoint.clone(),
                timeout: self.config.connect_timeout,
            }),
            None => Err(Error::Connect {
                endpoint: self.endpoint.clone(),
                source: Arc::new(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "the endpoint resolved to no address",
                )),
            }),
        }
    }

    /// Blocking call: connects if needed, sends, waits.
    pub(crate) fn call_frame(
        &self,
        method: &str,
        frame: FrameBuf,
        timeout: Option<Duration>,
    ) -> Result<Value> {
        let conn = self.connection()?;
        self.call_on(&conn, method, frame, self.effective_timeout(timeout))
    }

    fn call_on(
        &self,
        conn: &Arc<Connection>,
        method: &str,
        mut frame: FrameBuf,
        timeout: Duration,
    ) -> Result<Value> {
        let (slot, tx) = ReplySlot::new();
        let deadline = Instant::now() + timeout;
        let seq = match conn.send_two_way(&mut frame, Waiter::Blocking(tx)) {
            Ok(seq) => seq,
            Err((e, _)) => return Err(e),
        };
        wait_answer(conn, &slot, seq, deadline, method, timeout)
    }

    /// Callback call: connects if needed, sends; the callback gets the
    /// result on a callback thread.
    pub(crate) fn call_frame_cb(
        &self,
        method: MethodName,
        mut frame: FrameBuf,
        timeout: Option<Duration>,
        cb: AnswerCallback,
    ) {
        // The current connection without taking a lock or a reference
        // count: only a connect takes the slow path.
        let current = self.current.load();
        let connected;
        let conn = match current.as_ref().filter(|c| !c.is_closed()) {
            Some(c) => c,
            None => {
                connected = match self.connection() {
                    Ok(c) => c,
                    Err(e) => return self.pool.fail(cb, e),
                };
                &connected
            }
        };
        let timeout = self.effective_timeout(timeout);
        let waiter = Waiter::Callback {
            cb,
            deadline: Instant::now() + timeout,
            method,
            timeout,
        };
        if let Err((e, Some(Waiter::Callback { cb, .. }))) = conn.send_two_way(&mut frame, waiter) {
            self.pool.fail(cb, e);
        }
    }

    /// The pool that runs callbacks.
    pub(crate) fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }

    fn handle_quest(&self, conn: &Arc<Connection>, quest: Quest) {
        let handler = lock(&self.handler).clone();
        let reply = match handler {
            Some(h) => {
                let outcome = catch_unwind(AssertUnwindSafe(|| {
                    h.on_quest(&quest.method, &quest.payload, quest.seq.is_some())
                }));
                outcome.unwrap_or_else(|_| {
                    log::error!("the quest handler panicked on `{}`", quest.method);
                    QuestReply::Error {
                        code: codes::FPNN_EC_CORE_UNKNOWN_ERROR,
                        message: "the quest handler panicked".into(),
                    }
                })
            }
            None => QuestReply::Unhandled,
        };
        answer_quest(conn, quest, reply);
    }

    fn connection_closed(&self, conn: &Arc<Connection>, err: &Error) {
        let st = lock(&self.state);
        let by_user = st.closed;
        if !conn.is_published() {
            // A connection that failed while being set up: reported as a
            // failed connect by `connection()`.
            return;
        }
        drop(st);
        if !by_user {
            let mut r = lock(&self.regress);
            let flash = self
                .config
                .reconnect
                .zip(r.connected_at)
                .is_some_and(|(s, at)| at.elapsed() < s.flash_window);
            if flash {
                r.failed += 1;
            }
        }
        log::debug!("connection {} to {} closed: {err}", conn.id, self.endpoint);
        self.emit(ConnectionEvent::Closed {
            connection_id: conn.id,
            endpoint: self.endpoint.clone(),
            error: if by_user { None } else { Some(err.clone()) },
            will_reconnect: !by_user && self.will_reconnect(),
        });
    }

    /// Sends a `*ping` on `conn` when keepalive says so, or closes a
    /// connection that has been silent too long.
    fn keepalive(&self, conn: &Arc<Connection>) {
        let Some(ka) = self.config.keepalive else {
            return;
        };
        if conn.is_closed() {
            return;
        }
        let idle = conn.idle_for();
        if idle >= ka.lost_after() {
            log::warn!(
                "no data from {} for {idle:?}: closing the connection",
                self.endpoint
            );
            conn.shutdown(Error::closed(format!(
                "keepalive: nothing received for {idle:?}"
            )));
            return;
        }
        if idle >= ka.interval && conn.since_last_ping() >= ka.timeout {
            conn.mark_ping();
            let frame = match self.build_frame("*ping", true, |out| out.push(codec::EMPTY_MAP)) {
                Ok(f) => f,
                Err(_) => return,
            };
            let cb: AnswerCallback = Box::new(|r| {
                if let Err(e) = r {
                    log::debug!("keepalive ping failed: {e}");
                }
            });
            let waiter = Waiter::Callback {
                cb,
                deadline: Instant::now() + ka.timeout,
                method: MethodName::Static("*ping"),
                timeout: ka.timeout,
            };
            let mut frame = frame;
            if let Err((e, Some(Waiter::Callback { cb, .. }))) =
                conn.send_two_way(&mut frame, waiter)
            {
                self.pool.fail(cb, e);
            }
        }
    }

    /// The timer's tick: fine enough for the keepalive settings.
    fn tick(&self) -> Duration {
        let base = Duration::from_secs(1);
        match self.config.keepalive {
            Some(ka) => base
                .min(ka.interval / 4)
                .min(ka.timeout / 4)
                .max(Duration::from_millis(5)),
            None => base,
        }
    }

    /// Closes the client (idempotent).
    pub(crate) fn close(&self) {
        let conn = {
            let mut st = lock(&self.state);
            if st.closed {
                None
            } else {
                st.closed = true;
                self.current.store(None);
                Some((st.current.take(), st.connecting.take()))
            }
        };
        let Some((conn, connecting)) = conn else {
            return;
        };
        if let Some(c) = connecting {
            // Cut a connect in progress short (its thread joins it).
            c.shutdown(Error::ClientClosed);
        }
        if let Some(conn) = conn {
            conn.shutdown(Error::closed("the client was closed"));
            conn.join_threads();
        }
        // Wait for a connect in progress to notice the close.
        drop(lock(&self.connect_lock));
        self.timer_stop.store(true, Ordering::Release);
        let _ = self.ctx.timer_wake.try_send(());
        let timer = lock(&self.timer).take();
        if let Some(t) = timer {
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
        let _ = self.sup_tx.send(SupMsg::Stop);
        let supervisor = lock(&self.supervisor).take();
        if let Some(t) = supervisor {
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
        self.pool.shutdown();
    }
}

fn spawn_named(name: &str, f: impl FnOnce() + Send + 'static) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name(name.into()).spawn(f)
}

/// Sends the answer for a server quest (two-way only).
fn answer_quest(conn: &Arc<Connection>, quest: Quest, reply: QuestReply) {
    let Some(seq) = quest.seq else { return };
    let mut out = Vec::with_capacity(32);
    match reply {
        QuestReply::Unhandled if quest.method == "ping" => {
            codec::encode_answer(&mut out, seq, &Value::Map(Vec::new()))
                .expect("an empty map is a valid answer");
        }
        QuestReply::Unhandled => codec::encode_error_answer(
            &mut out,
            seq,
            codes::FPNN_EC_CORE_UNKNOWN_METHOD,
            &format!("unknown method `{}`", quest.method),
        ),
        QuestReply::Answer(payload) => {
            if let Err(e) = codec::encode_answer(&mut out, seq, &payload) {
                log::error!("cannot encode the answer to `{}`: {e}", quest.method);
                out.clear();
                codec::encode_error_answer(
                    &mut out,
                    seq,
                    codes::FPNN_EC_CORE_ENCODING,
                    "the answer could not be encoded",
                );
            }
        }
        QuestReply::Error { code, message } => {
            codec::encode_error_answer(&mut out, seq, code, &message)
        }
    }
    if let Err(e) = conn.queue_frame(&out) {
        log::debug!("cannot answer `{}`: {e}", quest.method);
    }
}

/// Waits for the answer of `seq` until `deadline`; on timeout takes the
/// entry back (or, when the reader took it first, waits for its delivery).
fn wait_answer(
    conn: &Arc<Connection>,
    slot: &ReplySlot,
    seq: u32,
    deadline: Instant,
    method: &str,
    timeout: Duration,
) -> Result<Value> {
    /// Counts the caller in `WAITING` and feeds `RECENT_WAIT_US` when done.
    struct Waiting(Instant);
    impl Drop for Waiting {
        fn drop(&mut self) {
            WAITING.fetch_sub(1, Ordering::AcqRel);
            // Average over about the last eight calls.
            let waited = self.0.elapsed().as_micros().min(u64::MAX as u128) as u64;
            let avg = RECENT_WAIT_US.load(Ordering::Relaxed);
            RECENT_WAIT_US.store(avg - avg / 8 + waited / 8, Ordering::Relaxed);
        }
    }
    WAITING.fetch_add(1, Ordering::AcqRel);
    let _waiting = Waiting(Instant::now());
    if let Some(reply) = spin_for_answer(slot, deadline) {
        return reply.and_then(RawAnswer::into_result);
    }
    match slot.wait(Some(deadline)) {
        Some(reply) => reply.and_then(RawAnswer::into_result),
        None => {
            if conn.take(seq).is_some() {
                Err(Error::Timeout {
                    method: method.to_string(),
                    timeout,
                })
            } else {
                // The answer (or a close) is being delivered right now: the
                // party that took the entry fills the slot (its sender
                // fills it with an error even if dropped).
                slot.wait(None)
                    .unwrap_or_else(|| Err(Error::closed("connection is closed")))
                    .and_then(RawAnswer::into_result)
            }
        }
    }
}

/// How many times a blocked caller yields before it sleeps when more
/// callers wait than there are cores.
const CROWDED_YIELDS: usize = 4;

/// How long a blocked caller polls for its answer before it sleeps.
const SPIN: Duration = Duration::from_micros(150);

/// How many waiting callers may poll at once: one per core.
fn spinners() -> usize {
    static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *N.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Callers waiting for an answer right now, in every client of the process.
static WAITING: AtomicUsize = AtomicUsize::new(0);

/// A moving average of how long blocking calls waited, in microseconds:
/// against a distant server polling cannot pay off, so it is skipped.
static RECENT_WAIT_US: AtomicU64 = AtomicU64::new(0);

/// Polls for a quick answer before the caller goes to sleep.
///
/// Waking a sleeping thread from another core costs tens of microseconds
/// on some machines (virtual ones especially), more than a loopback round
/// trip. A caller that stays awake for a short while gets a quick answer as
/// soon as the reader thread hands it over. To keep the cost bounded,
/// callers poll only while no more of them wait than there are cores, only
/// for [`SPIN`] (yielding the core between rounds), and only while recent
/// calls were answered that fast: when more callers wait, their calls
/// overlap anyway and polling would only take cores from the threads that
/// produce the answers (they yield [`CROWDED_YIELDS`] times instead);
/// against a distant server it would only burn CPU. Past that, the caller
/// sleeps on its slot without spinning.
fn spin_for_answer(slot: &ReplySlot, deadline: Instant) -> Option<Reply> {
    let cores = spinners();
    let few = WAITING.load(Ordering::Acquire) <= cores;
    let quick = RECENT_WAIT_US.load(Ordering::Relaxed) < 2 * SPIN.as_micros() as u64;
    if !quick {
        return None;
    }
    if !few {
        // More callers wait than there are cores: no polling, but a few
        // yields, which let the threads that produce the answers run and
        // often spare this one a sleep and a wake-up.
        for _ in 0..CROWDED_YIELDS {
            std::thread::yield_now();
            if let Some(reply) = slot.try_take() {
                return Some(reply);
            }
        }
        return None;
    }
    let until = (Instant::now() + SPIN).min(deadline);
    loop {
        for _ in 0..64 {
            if let Some(reply) = slot.try_take() {
                return Some(reply);
            }
            std::hint::spin_loop();
        }
        if Instant::now() >= until || WAITING.load(Ordering::Relaxed) > cores {
            return None;
        }
        // Let a runnable thread (the reader, on a busy machine) have the
        // core.
        std::thread::yield_now();
    }
}

fn timer_loop(core: Arc<Core>, wake: Receiver<()>) {
    let tick = core.tick();
    while !core.timer_stop.load(Ordering::Acquire) {
        let conn = lock(&core.state).current.clone();
        let now = Instant::now();
        let mut wake_at = now + tick;
        if let Some(c) = &conn {
            c.expire(now);
            core.keepalive(c);
            if let Some(d) = c.earliest_deadline() {
                wake_at = wake_at.min(d);
            }
        }
        drop(conn);
        match wake.recv_timeout(wake_at.saturating_duration_since(Instant::now())) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
}

/// Delivers connection events in order and runs background reconnects.
fn supervisor_loop(core: Arc<Core>, rx: Receiver<SupMsg>) {
    let mut reconnect_at: Option<Instant> = None;
    loop {
        let msg = match reconnect_at {
            Some(at) => rx.recv_deadline(at),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match msg {
            Ok(SupMsg::Event(event)) => {
                let schedule = match &event {
                    ConnectionEvent::Closed { will_reconnect, .. }
                    | ConnectionEvent::ConnectFailed { will_reconnect, .. } => *will_reconnect,
                    ConnectionEvent::Connected { .. } => {
                        reconnect_at = None;
                        false
                    }
                };
                let handler = lock(&core.events).clone();
                if let Some(h) = handler {
                    if catch_unwind(AssertUnwindSafe(|| h(&event))).is_err() {
                        log::error!("the connection event handler panicked");
                    }
                }
                if schedule {
                    if let Some(strategy) = core.config.reconnect {
                        let failed = lock(&core.regress).failed;
                        let delay = strategy.delay(failed);
                        log::debug!(
                            "reconnecting to {} in {delay:?} (failed attempts: {failed})",
                            core.endpoint
                        );
                        reconnect_at = Some(Instant::now() + delay);
                    }
                }
            }
            Ok(SupMsg::Stop) | Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {
                reconnect_at = None;
                let needed = {
                    let st = lock(&core.state);
                    !st.closed && st.current.as_ref().is_none_or(|c| c.is_closed())
                };
                if needed {
                    // Success and failure are reported (and a failure
                    // rescheduled) through the events it emits.
                    let _ = core.connection();
                }
            }
        }
    }
}
