//! The FPNN transport client: connecting, timeouts, the raw quest API,
//! server quests and shutdown.
//!
//! # Connecting
//!
//! A client has at most one dial in progress, on a detached thread of its
//! own (`fpnn-C-dial`): name resolution, TCP connect, the key exchange and
//! the connect hooks, all within the connect timeout. Everyone who needs
//! the connection shares that dial: a blocking call waits for it within its
//! own deadline; a callback call is queued (it counts toward the pending
//! cap) and sent when the connection is up, or completed with the connect
//! error; `close()` never waits for it. The supervisor thread delivers the
//! connection events and schedules background redials, but never dials
//! itself, so events arrive within milliseconds whatever a dial is doing.

use std::net::{Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use crossbeam_channel::{bounded, unbounded, Receiver, RecvTimeoutError, Sender};
use rmpv::Value;

use super::codec::{self, Quest, RawAnswer};
use super::config::ClientConfig;
use super::conn::{
    lock, ConnContext, Connection, FrameBuf, Limiter, MethodName, Reply, ReplySlot, Waiter,
};
use super::crypto::{ClientHandshake, Encryptor};
use super::pool::{AnswerCallback, Pool};
use super::watch::{ClientStats, Watch};
use crate::codes;
use crate::error::{Error, Result};

static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);
static NEXT_CLIENT_ID: AtomicU64 = AtomicU64::new(1);

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
    #[must_use]
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
///
/// The handler is given the client it serves: use that reference to call
/// the client from the handler. A handler that captures a clone of the
/// client keeps the client alive (and connected) until
/// [`close`](FpnnClient::close) is called explicitly, since dropping the
/// other handles no longer drops the last one; a handler that must keep a
/// reference holds a [`WeakFpnnClient`] ([`FpnnClient::downgrade`]). The
/// handler is dropped when the client closes.
pub trait QuestHandler: Send + Sync + 'static {
    /// Handles one quest. `two_way` tells whether an answer will be sent.
    fn on_quest(
        &self,
        client: &FpnnClient,
        method: &str,
        payload: &Value,
        two_way: bool,
    ) -> QuestReply;
}

impl<T: QuestHandler> QuestHandler for Arc<T> {
    fn on_quest(
        &self,
        client: &FpnnClient,
        method: &str,
        payload: &Value,
        two_way: bool,
    ) -> QuestReply {
        (**self).on_quest(client, method, payload, two_way)
    }
}

impl<F> QuestHandler for F
where
    F: Fn(&FpnnClient, &str, &Value, bool) -> QuestReply + Send + Sync + 'static,
{
    fn on_quest(
        &self,
        client: &FpnnClient,
        method: &str,
        payload: &Value,
        two_way: bool,
    ) -> QuestReply {
        self(client, method, payload, two_way)
    }
}

/// A change of the connection, reported to the handler installed with
/// [`FpnnClient::set_event_handler`].
///
/// Events are delivered in the order they happened, one at a time, on the
/// client's supervisor thread (never on the reader thread, and never on the
/// thread that dials: an event reaches the handler within milliseconds,
/// whatever a dial is doing). Each dial attempt reports one event, however
/// many calls were waiting for it.
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
    #[must_use]
    pub fn caused_by_error(&self) -> bool {
        match self {
            ConnectionEvent::Closed { error, .. } => error.is_some(),
            ConnectionEvent::ConnectFailed { .. } => true,
            ConnectionEvent::Connected { .. } => false,
        }
    }
}

type EventHandler = Arc<dyn Fn(&FpnnClient, &ConnectionEvent) + Send + Sync>;

enum SupMsg {
    Event(Weak<Core>, ConnectionEvent),
    Stop,
}

/// What every connection of one client shares: the callback pool, the
/// timer thread, the supervisor thread, the pending cap and the counters.
/// A client's file-gate clients run on their RTM client's runtime, so a
/// gate connection adds only its reader and writer threads.
///
/// The runtime is owned by the client that made it: its `close()` stops
/// the threads; the clients sharing it only leave it when they close.
pub(crate) struct Runtime {
    /// The owner's id (in thread names: `fpnn-<id>-...`).
    id: u64,
    pool: Arc<Pool>,
    limiter: Arc<Limiter>,
    pub(crate) watch: Arc<Watch>,
    /// The clients the timer serves (the owner and its gates).
    cores: Mutex<Vec<Weak<Core>>>,
    timer_wake: Sender<()>,
    timer: Mutex<Option<JoinHandle<()>>>,
    timer_stop: AtomicBool,
    sup_tx: Sender<SupMsg>,
    supervisor: Mutex<Option<JoinHandle<()>>>,
}

impl Runtime {
    /// Starts the pool, the timer and the supervisor.
    fn start(id: u64, config: &ClientConfig) -> Result<Arc<Runtime>> {
        let watch = Arc::new(Watch::new(config.observer.clone()));
        let pool = Arc::new(Pool::new(
            config.callback_threads,
            &format!("fpnn-{id}"),
            watch.clone(),
        )?);
        let (wake_tx, wake_rx) = bounded::<()>(1);
        let (sup_tx, sup_rx) = unbounded::<SupMsg>();
        let rt = Arc::new(Runtime {
            id,
            pool,
            limiter: Arc::new(Limiter::new(config.max_pending)),
            watch,
            cores: Mutex::new(Vec::new()),
            timer_wake: wake_tx,
            timer: Mutex::new(None),
            timer_stop: AtomicBool::new(false),
            sup_tx,
            supervisor: Mutex::new(None),
        });
        let timer_rt = rt.clone();
        let sup_rt = rt.clone();
        let started = spawn_named(format!("fpnn-{id}-timer"), move || {
            timer_loop(timer_rt, wake_rx)
        })
        .and_then(|timer| {
            *lock(&rt.timer) = Some(timer);
            spawn_named(format!("fpnn-{id}-supervisor"), move || {
                supervisor_loop(sup_rt, sup_rx)
            })
        })
        .map(|supervisor| *lock(&rt.supervisor) = Some(supervisor));
        if let Err(e) = started {
            rt.stop();
            return Err(e.into());
        }
        Ok(rt)
    }

    fn join(&self, slot: &Mutex<Option<JoinHandle<()>>>) {
        let t = lock(slot).take();
        if let Some(t) = t {
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }

    /// Stops the timer and the supervisor, then the pool (after it ran
    /// what was queued). A thread never joins itself.
    fn stop(&self) {
        self.timer_stop.store(true, Ordering::Release);
        let _ = self.timer_wake.try_send(());
        self.join(&self.timer);
        let _ = self.sup_tx.send(SupMsg::Stop);
        self.join(&self.supervisor);
        self.pool.shutdown();
    }

    /// Hands a client to the timer, which looks at it at once (its tick
    /// may be finer than the timer's current sleep).
    fn add(&self, core: Weak<Core>) {
        lock(&self.cores).push(core);
        let _ = self.timer_wake.try_send(());
    }

    fn remove(&self, core: &Weak<Core>) {
        lock(&self.cores).retain(|c| !c.ptr_eq(core) && c.strong_count() > 0);
    }
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

/// Tells whether the layer above needs the connection even when no call
/// does (the RTM layer: while it listens to pushes); see
/// [`Core::set_wanted`].
pub(crate) type Wanted = Arc<dyn Fn() -> bool + Send + Sync>;

/// A view of a connection that is being set up, for [`ConnectHook`]s.
pub(crate) struct FpnnSession<'a> {
    core: &'a Core,
    conn: &'a Arc<Connection>,
    /// The end of the connect timeout.
    deadline: Instant,
}

impl FpnnSession<'_> {
    /// The client core (to build frames).
    pub(crate) fn core(&self) -> &Core {
        self.core
    }

    /// Makes a blocking call on the connection being set up, within what is
    /// left of the connect timeout.
    pub(crate) fn call_frame(&self, method: &str, frame: FrameBuf) -> Result<Value> {
        self.core.ctx.limiter.force_acquire();
        self.core.call_on(
            self.conn,
            method,
            frame,
            self.deadline,
            self.core.config.connect_timeout,
        )
    }
}

/// A blocking FPNN client over one TCP connection.
///
/// It connects lazily on the first call (or explicitly with
/// [`connect`](FpnnClient::connect)), and connects again on the next call
/// after the connection was lost. Calls may come from any number of threads
/// at once; answers are routed by sequence number.
///
/// # Bounds
///
/// * A blocking call returns within its timeout (the handle's, see
///   [`with_timeout`](FpnnClient::with_timeout), else
///   [`ClientConfig::quest_timeout`]), **connecting included**: a call made
///   while disconnected waits for the connection within that bound, then
///   for its answer within what is left.
/// * A callback call never blocks: made while disconnected, it is queued
///   and sent once the connection is up (or its callback gets the connect
///   error); its callback runs within the same bound.
/// * [`close`](FpnnClient::close) (and dropping the last handle) does not
///   wait for the network: it returns once the client's threads have
///   completed what was pending (a dial in progress ends on its own thread,
///   which nobody waits for).
/// * At most [`ClientConfig::max_pending`] calls are pending at once.
///
/// Cloning is cheap and gives another handle to the same client. The client
/// closes when [`close`](FpnnClient::close) is called or when the last handle
/// is dropped: every pending call and callback then completes exactly once.
///
/// This is the raw layer: most users want
/// [`RtmServerClient`](crate::RtmServerClient), which signs RTM quests and
/// wraps the API methods. The raw calls here reach any FPNN method.
#[derive(Clone)]
pub struct FpnnClient {
    handle: Arc<Handle>,
    /// The timeout of this handle's calls (`None`: the configured default).
    timeout: Option<Duration>,
}

impl std::fmt::Debug for FpnnClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FpnnClient")
            .field("id", &self.handle.core.id)
            .field("endpoint", &self.handle.core.endpoint)
            .field("connected", &self.is_connected())
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A handle to an [`FpnnClient`] that does not keep it alive: for code the
/// client owns (a quest or event handler) that must keep a reference to
/// it. Once every [`FpnnClient`] handle is dropped the client closes, and
/// [`upgrade`](Self::upgrade) returns `None`.
///
/// ```
/// # use rtm_server_sdk::{ClientConfig, FpnnClient};
/// let client = FpnnClient::new("127.0.0.1:13315", ClientConfig::default())?;
/// let weak = client.downgrade();
/// assert!(weak.upgrade().is_some());
/// drop(client);
/// assert!(weak.upgrade().is_none());
/// # Ok::<(), rtm_server_sdk::Error>(())
/// ```
#[derive(Clone)]
pub struct WeakFpnnClient {
    handle: Weak<Handle>,
    timeout: Option<Duration>,
}

impl WeakFpnnClient {
    /// The client, with the per-call timeout of the handle this was made
    /// from, while any [`FpnnClient`] handle of it exists.
    #[must_use]
    pub fn upgrade(&self) -> Option<FpnnClient> {
        Some(FpnnClient {
            handle: self.handle.upgrade()?,
            timeout: self.timeout,
        })
    }
}

impl std::fmt::Debug for WeakFpnnClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeakFpnnClient")
            .field("alive", &(self.handle.strong_count() > 0))
            .field("timeout", &self.timeout)
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

/// A callback call made while disconnected, waiting for the dial.
struct Queued {
    method: MethodName,
    frame: FrameBuf,
    cb: AnswerCallback,
    deadline: Instant,
    timeout: Duration,
}

struct State {
    /// The connection calls use (possibly closed: then the next call
    /// dials).
    current: Option<Arc<Connection>>,
    /// A connection being set up (key exchange, connect hook), so that
    /// `close()` can cut it short.
    connecting: Option<Arc<Connection>>,
    /// A dial is in progress.
    dialing: bool,
    /// Dial attempts finished so far.
    attempts: u64,
    /// The end of the dial in progress (its connect timeout), set when it
    /// starts.
    dial_deadline: Option<Instant>,
    /// Why the last finished attempt failed (`None`: it succeeded).
    last_error: Option<Error>,
    /// Callback calls waiting for the dial in progress.
    queue: Vec<Queued>,
    /// No queued deadline is earlier than this.
    queue_earliest: Option<Instant>,
    closed: bool,
}

/// The shared part of a client.
///
/// Lock order: `state`, then `regress`. No other lock of `Core` is taken
/// while one is held (`handler`, `events`, `connect_hook`, `wanted`, and
/// the runtime's `cores`, `timer` and `supervisor` are each taken alone),
/// and none is held while
/// a connection is shut down (its close notification takes `state`), while
/// user code runs, or while waiting for the network.
pub(crate) struct Core {
    /// The client's id (in thread names: `fpnn-<id>-...`).
    id: u64,
    endpoint: String,
    pub(crate) config: ClientConfig,
    /// This core, for the dial threads it starts.
    me: Weak<Core>,
    state: Mutex<State>,
    /// Signalled (with `state`) when a dial attempt ends or the client
    /// closes.
    dialed: Condvar,
    /// `state.current`, readable without the lock: the hot path of every
    /// call (written only under the state lock, with `state.current`).
    current: ArcSwapOption<Connection>,
    ctx: Arc<ConnContext>,
    /// The runtime's pool.
    pool: Arc<Pool>,
    /// The threads, pool, cap and counters this client runs on (its own,
    /// or its RTM client's for a file gate).
    rt: Arc<Runtime>,
    /// This client made `rt` and stops it when it closes.
    owns_rt: bool,
    handler: Mutex<Option<Arc<dyn QuestHandler>>>,
    connect_hook: Mutex<Option<ConnectHook>>,
    wanted: Mutex<Option<Wanted>>,
    events: Mutex<Option<EventHandler>>,
    regress: Mutex<Regress>,
    /// The user handle, to hand handlers a client without keeping it alive.
    user: OnceLock<Weak<Handle>>,
}

/// Checks the form `host:port` (a name, an IPv4 address or a bracketed
/// IPv6 address, and a port from 1 to 65535). Resolution happens when
/// connecting.
fn check_endpoint(endpoint: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::InvalidArgument(format!(
            "endpoint `{endpoint}`: {why} (expected `host:port`)"
        )))
    };
    let Some((host, port)) = endpoint.rsplit_once(':') else {
        return bad("no port");
    };
    let host_ok = match host.strip_prefix('[') {
        Some(rest) => rest
            .strip_suffix(']')
            .is_some_and(|ip| ip.parse::<Ipv6Addr>().is_ok()),
        None => {
            !host.is_empty()
                && !host.contains([':', '[', ']', '/'])
                && !host.chars().any(|c| c.is_whitespace() || c.is_control())
        }
    };
    if !host_ok {
        return bad("no valid host");
    }
    match port.parse::<u16>() {
        Ok(p) if p != 0 && !port.starts_with('+') => Ok(()),
        _ => bad("the port must be a number from 1 to 65535"),
    }
}

/// `now + d`, or a deadline decades away when that cannot be represented
/// (a duration like [`Duration::MAX`] means "no deadline"; never panics).
pub(crate) fn deadline_after(now: Instant, d: Duration) -> Instant {
    const FAR: [Duration; 3] = [
        Duration::from_secs(100 * 365 * 86_400),
        Duration::from_secs(365 * 86_400),
        Duration::from_secs(86_400),
    ];
    now.checked_add(d.min(FAR[0]))
        .or_else(|| FAR.iter().find_map(|f| now.checked_add(*f)))
        .unwrap_or(now)
}

impl FpnnClient {
    /// Creates a client for `endpoint` (`host:port`). Nothing is connected
    /// until the first call or [`connect`](FpnnClient::connect). Zeros in
    /// `config` mean the defaults (see [`ClientConfig`]).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when `endpoint` is not of the form
    /// `host:port` (a name, an IPv4 address or a bracketed IPv6 address, and
    /// a port from 1 to 65535); [`Error::Io`] when the client's threads
    /// cannot be started. A name that does not resolve is a connect error,
    /// reported when connecting.
    pub fn new(endpoint: impl Into<String>, config: ClientConfig) -> Result<FpnnClient> {
        let endpoint = endpoint.into();
        check_endpoint(&endpoint)?;
        let config = config.normalized();
        let id = NEXT_CLIENT_ID.fetch_add(1, Ordering::Relaxed);
        let rt = Runtime::start(id, &config)?;
        Ok(Self::on_runtime(endpoint, config, rt, true))
    }

    /// A client of `endpoint` that runs on the runtime `rt` of another
    /// client: its callback pool, timer, supervisor, pending cap and
    /// counters (the RTM client's file gates). Its connections add their
    /// reader and writer threads only; closing it leaves the runtime's
    /// threads running.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a bad endpoint,
    /// [`Error::ClientClosed`] when the runtime's owner was closed.
    pub(crate) fn new_sharing(
        endpoint: impl Into<String>,
        config: ClientConfig,
        rt: &Arc<Runtime>,
    ) -> Result<FpnnClient> {
        let endpoint = endpoint.into();
        check_endpoint(&endpoint)?;
        if rt.timer_stop.load(Ordering::Acquire) {
            return Err(Error::ClientClosed);
        }
        Ok(Self::on_runtime(
            endpoint,
            config.normalized(),
            rt.clone(),
            false,
        ))
    }

    /// The runtime this client runs on (to share it, see
    /// [`new_sharing`](Self::new_sharing)).
    pub(crate) fn runtime(&self) -> &Arc<Runtime> {
        &self.handle.core.rt
    }

    fn on_runtime(
        endpoint: String,
        config: ClientConfig,
        rt: Arc<Runtime>,
        owns_rt: bool,
    ) -> FpnnClient {
        let core = Arc::new_cyclic(|weak: &Weak<Core>| {
            let on_quest_core = weak.clone();
            let on_closed_core = weak.clone();
            let ctx = Arc::new(ConnContext {
                pool: rt.pool.clone(),
                timer_wake: rt.timer_wake.clone(),
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
                client_id: rt.id,
                limiter: rt.limiter.clone(),
                watch: rt.watch.clone(),
            });
            Core {
                id: rt.id,
                endpoint,
                config,
                me: weak.clone(),
                state: Mutex::new(State {
                    current: None,
                    connecting: None,
                    dialing: false,
                    attempts: 0,
                    dial_deadline: None,
                    last_error: None,
                    queue: Vec::new(),
                    queue_earliest: None,
                    closed: false,
                }),
                dialed: Condvar::new(),
                current: ArcSwapOption::empty(),
                ctx,
                pool: rt.pool.clone(),
                rt: rt.clone(),
                owns_rt,
                handler: Mutex::new(None),
                connect_hook: Mutex::new(None),
                wanted: Mutex::new(None),
                events: Mutex::new(None),
                regress: Mutex::new(Regress {
                    failed: 0,
                    connected_at: None,
                }),
                user: OnceLock::new(),
            }
        });
        rt.add(Arc::downgrade(&core));
        let handle = Arc::new(Handle { core });
        let _ = handle.core.user.set(Arc::downgrade(&handle));
        FpnnClient {
            handle,
            timeout: None,
        }
    }

    pub(crate) fn core(&self) -> &Arc<Core> {
        &self.handle.core
    }

    /// The endpoint this client connects to.
    #[must_use]
    pub fn endpoint(&self) -> &str {
        &self.handle.core.endpoint
    }

    /// The configuration in force (zeros replaced by the defaults).
    #[must_use]
    pub fn config(&self) -> &ClientConfig {
        &self.handle.core.config
    }

    /// A handle to the same client whose calls (blocking or callback, raw
    /// or made by a layer above through it) wait at most `timeout`,
    /// connecting included, when they do not name their own. Zero means
    /// the configured default; [`Duration::MAX`] means no deadline.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rtm_server_sdk::{ClientConfig, FpnnClient};
    /// let client = FpnnClient::new("127.0.0.1:13315", ClientConfig::default())?;
    /// let quick = client.with_timeout(Duration::from_millis(200));
    /// assert_eq!(quick.timeout(), Some(Duration::from_millis(200)));
    /// assert_eq!(client.timeout(), None);
    /// # Ok::<(), rtm_server_sdk::Error>(())
    /// ```
    #[must_use]
    pub fn with_timeout(&self, timeout: Duration) -> FpnnClient {
        FpnnClient {
            handle: self.handle.clone(),
            timeout: Some(timeout).filter(|t| !t.is_zero()),
        }
    }

    /// The per-call timeout of this handle (`None`: the configured
    /// default, [`ClientConfig::quest_timeout`]).
    #[must_use]
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// A handle that does not keep the client alive (see
    /// [`WeakFpnnClient`]), for handlers that must keep a reference to the
    /// client; it keeps this handle's per-call timeout.
    #[must_use]
    pub fn downgrade(&self) -> WeakFpnnClient {
        WeakFpnnClient {
            handle: Arc::downgrade(&self.handle),
            timeout: self.timeout,
        }
    }

    /// Connects now (if not connected yet), so that a wrong endpoint fails
    /// fast instead of on the first call. Shares a dial already in
    /// progress, and returns when that attempt ends (within the connect
    /// timeout of its start): nothing it waited for is left running, so a
    /// call made after it returned an error makes an attempt of its own.
    ///
    /// # Errors
    ///
    /// [`Error::Connect`] or [`Error::ConnectTimeout`] when the server
    /// cannot be reached, [`Error::Encryption`] when the key exchange
    /// fails, [`Error::ClientClosed`] after [`close`](FpnnClient::close).
    pub fn connect(&self) -> Result<()> {
        self.handle.core.connect_now().map(drop)
    }

    /// True once the client was closed (by [`close`](FpnnClient::close)).
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.handle.core.closed()
    }

    /// True while a connection is established.
    #[must_use]
    pub fn is_connected(&self) -> bool {
        self.handle.core.live().is_some()
    }

    /// Installs the handler of quests pushed by the server, replacing any
    /// previous one. Without a handler the client answers the RTM `ping`
    /// with `{}` and every other two-way quest with error 20004. The
    /// handler gets a reference to this client: call the client through it
    /// rather than capturing a clone (see [`QuestHandler`]).
    pub fn set_quest_handler(&self, handler: impl QuestHandler) {
        *lock(&self.handle.core.handler) = Some(Arc::new(handler));
    }

    /// Installs the handler of [`ConnectionEvent`]s (connected, connect
    /// failed, closed), replacing any previous one. It runs on the client's
    /// supervisor thread, one event at a time, in order; keep it short (a
    /// slow handler delays the next events and background reconnects).
    ///
    /// The handler gets a reference to this client, so it need not capture
    /// a clone (a captured clone would keep the client alive until
    /// [`close`](FpnnClient::close) is called). It is dropped when the
    /// client closes; once the last handle is gone, no more events are
    /// delivered.
    ///
    /// ```
    /// # use rtm_server_sdk::{fpnn::ConnectionEvent, ClientConfig, FpnnClient};
    /// let client = FpnnClient::new("127.0.0.1:13315", ClientConfig::default())?;
    /// client.set_event_handler(|client: &FpnnClient, event: &ConnectionEvent| {
    ///     if event.caused_by_error() {
    ///         eprintln!("{}: {event:?}", client.endpoint());
    ///     }
    /// });
    /// # Ok::<(), rtm_server_sdk::Error>(())
    /// ```
    pub fn set_event_handler(
        &self,
        handler: impl Fn(&FpnnClient, &ConnectionEvent) + Send + Sync + 'static,
    ) {
        *lock(&self.handle.core.events) = Some(Arc::new(handler));
    }

    /// Sends a two-way quest and waits for its answer, with this handle's
    /// timeout (connecting included).
    ///
    /// `payload` must be a map with string keys (use `Value::Map(vec![])`
    /// for none).
    ///
    /// # Errors
    ///
    /// [`Error::Server`] for an exception answer; [`Error::Timeout`] when no
    /// answer came in time; [`Error::ConnectTimeout`] or [`Error::Connect`]
    /// when no connection could be made in time (nothing was sent);
    /// [`Error::ConnectionClosed`] when the connection was lost with the
    /// call in flight, or before it was written (its
    /// [`delivery`](Error::delivery) tells which);
    /// [`Error::TooManyPending`] when no room under the pending cap came
    /// up in time; [`Error::InvalidArgument`] for a bad
    /// method or payload; [`Error::ClientClosed`] after
    /// [`close`](FpnnClient::close).
    pub fn call(&self, method: &str, payload: Value) -> Result<Value> {
        self.call_timeout(method, payload, None)
    }

    /// Sends a two-way quest and waits for its answer at most `timeout`,
    /// connecting included (`None` or zero: this handle's timeout).
    ///
    /// # Errors
    ///
    /// As [`call`](FpnnClient::call).
    pub fn call_timeout(
        &self,
        method: &str,
        payload: Value,
        timeout: impl Into<Option<Duration>>,
    ) -> Result<Value> {
        let core = &self.handle.core;
        let watch = &core.rt.watch;
        let begun = watch.begin();
        let mut request_bytes = 0;
        let result = core.encode_value(method, true, &payload).and_then(|frame| {
            request_bytes = frame.len();
            core.call_frame(method, frame, self.pick(timeout.into()))
        });
        watch.end(begun, method, result.as_ref().err(), false, request_bytes);
        result
    }

    /// The call's own timeout, else this handle's.
    fn pick(&self, timeout: Option<Duration>) -> Option<Duration> {
        timeout.filter(|t| !t.is_zero()).or(self.timeout)
    }

    /// Sends a two-way quest and returns at once; `callback` receives the
    /// answer (or the error) exactly once, on a callback thread (never on
    /// the calling thread, even on a closed client). `timeout` `None` or
    /// zero means this handle's timeout; it counts from now, connecting
    /// included.
    ///
    /// It never blocks: made while disconnected, the call is queued and
    /// sent once the connection is up (or the callback gets the connect
    /// error); at the pending cap the callback gets
    /// [`Error::TooManyPending`] at once. Errors found before sending (bad
    /// input, a closed client) go to the callback too. Once connected, it
    /// never waits for the server (not even for room in the socket buffer).
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
        let timeout = self.pick(timeout.into());
        let now = Instant::now();
        let begun = core.rt.watch.begin_at(now);
        let name = MethodName::shared(method);
        let (frame, request_bytes) = match core.encode_value(method, true, &payload) {
            Ok(frame) => {
                let n = frame.len();
                (Ok(frame), n)
            }
            Err(e) => (Err(e), 0),
        };
        let m = name.clone();
        let callback = Box::new(move |result: Result<Value>| {
            Watch::end_here(begun, &m, result.as_ref().err(), false, request_bytes);
            callback(result)
        });
        match frame {
            Ok(frame) => core.call_frame_cb_at(name, frame, timeout, callback, now),
            Err(e) => core.pool.fail(callback, e),
        }
    }

    /// Sends a one-way quest (no answer is expected or waited for);
    /// connects first when needed, within this handle's timeout.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a bad method or payload, a connect
    /// error, [`Error::ConnectionClosed`] when the write fails,
    /// [`Error::ClientClosed`] after [`close`](FpnnClient::close).
    pub fn send_one_way(&self, method: &str, payload: Value) -> Result<()> {
        let core = &self.handle.core;
        let frame = core.encode_value(method, false, &payload)?;
        let timeout = core.effective_timeout(self.timeout);
        let deadline = deadline_after(Instant::now(), timeout);
        let conn = match core.live() {
            Some(c) => c,
            None => core.connection_until(deadline, timeout)?,
        };
        conn.send_frame(&frame)
    }

    /// Closes the client: the connection is shut down, every pending call
    /// and callback completes with [`Error::ClientClosed`], and the
    /// client's threads are joined (after the callback threads have run
    /// the callbacks already queued). It does not wait for the network: a
    /// dial in progress is abandoned to its own thread, which ends within
    /// the connect timeout. Later calls fail with [`Error::ClientClosed`].
    /// Closing twice is harmless; dropping the last handle closes too. The
    /// handlers are dropped.
    pub fn close(&self) {
        self.handle.core.close();
    }

    /// The number of calls pending: in flight, or queued while the client
    /// connects (what [`ClientConfig::max_pending`] caps).
    #[must_use]
    pub fn pending_calls(&self) -> usize {
        self.handle.core.ctx.limiter.count()
    }

    /// A snapshot of the client's counters: calls and how they ended,
    /// pending calls, connects, traffic (see [`ClientStats`] and
    /// [`watch`](super::watch)). Reading it takes no lock on the call
    /// path; the counters themselves are always kept.
    ///
    /// ```
    /// # let emulator = rtm_server_sdk::emulator::RtmEmulator::start(1, "s").unwrap();
    /// use rtm_server_sdk::{ClientConfig, FpnnClient, Value};
    /// let client = FpnnClient::new(emulator.endpoint(), ClientConfig::default())?;
    /// let _ = client.call("noSuchMethod", Value::Map(vec![]));
    /// let stats = client.stats();
    /// assert_eq!((stats.calls_started, stats.calls_server_error), (1, 1));
    /// println!("{stats}");
    /// # Ok::<(), rtm_server_sdk::Error>(())
    /// ```
    #[must_use]
    pub fn stats(&self) -> ClientStats {
        self.handle.core.stats()
    }

    /// The client's counters and observer, for the layers above.
    pub(crate) fn watch(&self) -> &Arc<Watch> {
        &self.handle.core.rt.watch
    }
}

impl Core {
    /// See [`FpnnClient::stats`].
    fn stats(&self) -> ClientStats {
        let mut s = self.rt.watch.snapshot();
        s.pending = self.rt.limiter.count();
        s.pending_peak = self.rt.limiter.peak();
        if self.live().is_some() {
            s.connection_age = lock(&self.regress).connected_at.map(|at| at.elapsed());
        }
        s
    }

    fn closed(&self) -> bool {
        lock(&self.state).closed
    }

    /// The current connection, when it is up.
    fn live(&self) -> Option<Arc<Connection>> {
        self.current.load_full().filter(|c| !c.is_closed())
    }

    pub(crate) fn set_connect_hook(&self, hook: ConnectHook) {
        *lock(&self.connect_hook) = Some(hook);
    }

    /// Tells the client when the layer above needs the connection although
    /// no call does (the RTM layer: while it listens to pushes). A lost
    /// connection is redialled in the background only while `wanted`
    /// returns true, or keepalive is on. Called without any lock of the
    /// client held.
    pub(crate) fn set_wanted(&self, wanted: Wanted) {
        *lock(&self.wanted) = Some(wanted);
    }

    /// Whether something needs the connection besides the calls.
    fn wanted_now(&self) -> bool {
        if self.config.keepalive.is_some() {
            return true;
        }
        let wanted = lock(&self.wanted).clone();
        wanted.is_some_and(|w| catch_unwind(AssertUnwindSafe(|| w())).unwrap_or(false))
    }

    /// A client for the handlers, without keeping the client alive (`None`
    /// once every user handle is gone).
    fn user_client(&self) -> Option<FpnnClient> {
        let handle = self.user.get()?.upgrade()?;
        Some(FpnnClient {
            handle,
            timeout: None,
        })
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

    /// The timeout of one call: its own, else the configured default (zero
    /// means "not set").
    fn effective_timeout(&self, timeout: Option<Duration>) -> Duration {
        match timeout {
            Some(t) if !t.is_zero() => t,
            _ => self.config.quest_timeout,
        }
    }

    /// The current connection; when there is none, waits for the dial in
    /// progress (starting one if none is) until `deadline`. `timeout` is
    /// what the caller waits in all, for the error.
    pub(crate) fn connection_until(
        &self,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Arc<Connection>> {
        if let Some(c) = self.live() {
            return Ok(c);
        }
        let mut st = lock(&self.state);
        // The number of finished attempts when this caller joined a dial.
        let mut joined: Option<u64> = None;
        loop {
            if st.closed {
                return Err(Error::ClientClosed);
            }
            if let Some(c) = st.current.as_ref().filter(|c| !c.is_closed()) {
                return Ok(c.clone());
            }
            if let Some(n) = joined {
                if st.attempts > n {
                    if let Some(e) = &st.last_error {
                        return Err(e.clone());
                    }
                    // It connected, but the connection is already gone.
                    joined = None;
                }
            }
            if joined.is_none() {
                if !st.dialing {
                    self.start_dial(&mut st)?;
                }
                joined = Some(st.attempts);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::ConnectTimeout {
                    endpoint: self.endpoint.clone(),
                    timeout,
                });
            }
            st = self
                .dialed
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// The explicit connect: waits for the outcome of the dial it joins
    /// (or starts), not for a deadline of its own. A deadline of its own,
    /// taken a moment before the dial takes the dial's, would end the wait
    /// just before the attempt ends, and the next call would join that
    /// attempt and inherit its failure at once instead of making its own.
    pub(crate) fn connect_now(&self) -> Result<Arc<Connection>> {
        /// Time for the dial thread to report its outcome once its
        /// deadline has passed (normally microseconds).
        const REPORT_GRACE: Duration = Duration::from_secs(1);
        let timeout = self.config.connect_timeout;
        let attempt_end = {
            let st = lock(&self.state);
            st.dial_deadline.filter(|_| st.dialing)
        };
        let attempt_end = attempt_end.unwrap_or_else(|| deadline_after(Instant::now(), timeout));
        self.connection_until(deadline_after(attempt_end, REPORT_GRACE), timeout)
    }

    /// Starts a dial on a new detached thread (the state lock is held and
    /// no dial is in progress).
    fn start_dial(&self, st: &mut State) -> Result<()> {
        let core = self.me.upgrade().ok_or(Error::ClientClosed)?;
        let old = st.current.take();
        self.current.store(None);
        st.dialing = true;
        // The dial's deadline is fixed here, under the state lock, so that
        // whoever joins the dial knows when it ends (see `connect_now`).
        let deadline = deadline_after(Instant::now(), self.config.connect_timeout);
        st.dial_deadline = Some(deadline);
        match spawn_named(format!("fpnn-{}-dial", self.id), move || {
            core.dial(old, deadline)
        }) {
            Ok(_detached) => Ok(()),
            Err(e) => {
                st.dialing = false;
                let err = Error::from(e);
                log::error!("cannot start a dial thread: {err}");
                Err(err)
            }
        }
    }

    /// The dial thread: connects, then hands the outcome to everyone who
    /// waits for it.
    fn dial(self: Arc<Self>, old: Option<Arc<Connection>>, deadline: Instant) {
        if let Some(old) = old {
            old.join_threads();
        }
        let result =
            catch_unwind(AssertUnwindSafe(|| self.establish(deadline))).unwrap_or_else(|_| {
                log::error!("connecting to {} panicked", self.endpoint);
                Err(Error::closed("the connect failed unexpectedly"))
            });
        self.dial_finished(result);
    }

    fn dial_finished(&self, result: Result<Arc<Connection>>) {
        let wanted = self.config.reconnect.is_some() && self.wanted_now();
        let mut st = lock(&self.state);
        st.dialing = false;
        st.connecting = None;
        st.attempts += 1;
        // A connection that closed while it was being set up (it is not
        // published yet, so its close was not reported) is a failed dial;
        // its threads are joined once the lock is released.
        let mut dead = None;
        let result = match result {
            Ok(conn) if st.closed => {
                drop(st);
                conn.shutdown(Error::ClientClosed);
                conn.join_threads();
                self.dialed.notify_all();
                return;
            }
            Ok(conn) if conn.is_closed() => {
                dead = Some(conn);
                Err(Error::closed(
                    "the server closed the connection while it was being set up",
                ))
            }
            other => other,
        };
        match result {
            Ok(conn) => {
                {
                    let mut r = lock(&self.regress);
                    r.failed = 0;
                    let counts = &self.rt.watch.connects.0;
                    counts.connects.fetch_add(1, Ordering::Relaxed);
                    if r.connected_at.is_some() {
                        counts.reconnects.fetch_add(1, Ordering::Relaxed);
                    }
                    r.connected_at = Some(Instant::now());
                }
                // Publishing, and the Connected event, happen under the
                // state lock, which `connection_closed` takes too: a Closed
                // event can only follow the Connected one.
                conn.publish();
                st.current = Some(conn.clone());
                self.current.store(Some(conn.clone()));
                st.last_error = None;
                self.emit(ConnectionEvent::Connected {
                    connection_id: conn.id,
                    endpoint: self.endpoint.clone(),
                });
                let queued = std::mem::take(&mut st.queue);
                st.queue_earliest = None;
                drop(st);
                self.dialed.notify_all();
                for q in queued {
                    self.send_callback_call(&conn, q);
                }
            }
            Err(err) => {
                // No call waiting for this dial was written.
                let err = if st.closed {
                    Error::ClientClosed
                } else {
                    err.not_sent()
                };
                st.last_error = Some(err.clone());
                let queued = std::mem::take(&mut st.queue);
                st.queue_earliest = None;
                if !st.closed {
                    lock(&self.regress).failed += 1;
                    let counts = &self.rt.watch.connects.0;
                    counts.failures.fetch_add(1, Ordering::Relaxed);
                    log::debug!("connecting to {} failed: {err}", self.endpoint);
                    self.emit(ConnectionEvent::ConnectFailed {
                        endpoint: self.endpoint.clone(),
                        error: err.clone(),
                        will_reconnect: wanted,
                    });
                }
                drop(st);
                self.dialed.notify_all();
                if let Some(conn) = dead {
                    conn.join_threads();
                }
                self.ctx.limiter.release(queued.len());
                for q in queued {
                    self.pool.fail(q.cb, err.clone());
                }
            }
        }
    }

    /// Sends a callback call on `conn` (at once, or after it waited for the
    /// connection); a call the connection refuses fails on the pool.
    fn send_callback_call(&self, conn: &Arc<Connection>, q: Queued) {
        let Queued {
            method,
            mut frame,
            cb,
            deadline,
            timeout,
        } = q;
        let waiter = Waiter::Callback {
            cb,
            deadline,
            method,
            timeout,
        };
        if let Err((e, Some(Waiter::Callback { cb, .. }))) = conn.send_two_way(&mut frame, waiter) {
            // Taken back: refused before it was written, or its write
            // failed (then the frame, last in the buffer, is incomplete).
            self.pool.fail(cb, e.not_sent());
        }
    }

    /// Fails the queued callback calls whose deadline has passed; returns
    /// the earliest deadline left.
    fn expire_queue(&self, now: Instant) -> Option<Instant> {
        let mut st = lock(&self.state);
        match st.queue_earliest {
            Some(e) if e <= now => {}
            other => return other,
        }
        let (due, keep): (Vec<Queued>, Vec<Queued>) = std::mem::take(&mut st.queue)
            .into_iter()
            .partition(|q| q.deadline <= now);
        st.queue_earliest = keep.iter().map(|q| q.deadline).min();
        st.queue = keep;
        let next = st.queue_earliest;
        drop(st);
        self.ctx.limiter.release(due.len());
        for q in due {
            self.pool.fail(
                q.cb,
                Error::ConnectTimeout {
                    endpoint: self.endpoint.clone(),
                    timeout: q.timeout,
                },
            );
        }
        next
    }

    /// Starts a background dial when one is needed and none runs.
    fn background_dial(&self) {
        let wanted = self.wanted_now();
        let mut st = lock(&self.state);
        let up = st.current.as_ref().is_some_and(|c| !c.is_closed());
        if st.closed || st.dialing || up || !wanted {
            return;
        }
        if let Err(e) = self.start_dial(&mut st) {
            log::warn!("background reconnect to {}: {e}", self.endpoint);
        }
    }

    fn emit(&self, event: ConnectionEvent) {
        let _ = self.rt.sup_tx.send(SupMsg::Event(self.me.clone(), event));
    }

    /// Dials, runs the key exchange and the connect hook, all before
    /// `deadline` (the connect timeout from the dial's start).
    fn establish(&self, deadline: Instant) -> Result<Arc<Connection>> {
        let stream = self.dial_tcp(deadline)?;
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
            match hook(&FpnnSession {
                core: self,
                conn,
                deadline,
            }) {
                Err(Error::Timeout { .. }) => {
                    return Err(Error::ConnectTimeout {
                        endpoint: self.endpoint.clone(),
                        timeout: self.config.connect_timeout,
                    })
                }
                other => other?,
            }
        }
        Ok(())
    }

    /// The `*key` handshake (see `docs/protocol.md`): sent in clear as the
    /// first frame; everything after it, in both directions, is encrypted.
    /// Waits for the answer within the connect deadline.
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
        self.ctx.limiter.force_acquire();
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

    /// Resolves the endpoint before `deadline`: an address is used as is;
    /// a name is resolved on a thread of its own, which is abandoned when
    /// the deadline passes first.
    fn resolve(&self, deadline: Instant) -> Result<Vec<SocketAddr>> {
        if let Ok(addr) = self.endpoint.parse::<SocketAddr>() {
            return Ok(vec![addr]);
        }
        let endpoint = self.endpoint.clone();
        let (tx, rx) = bounded(1);
        spawn_named(format!("fpnn-{}-resolve", self.id), move || {
            let _ = tx.send(endpoint.to_socket_addrs().map(Iterator::collect));
        })?;
        match rx.recv_deadline(deadline) {
            Ok(Ok(addrs)) => Ok(addrs),
            Ok(Err(e)) => Err(Error::Connect {
                endpoint: self.endpoint.clone(),
                source: Arc::new(e),
            }),
            Err(_) => Err(Error::ConnectTimeout {
                endpoint: self.endpoint.clone(),
                timeout: self.config.connect_timeout,
            }),
        }
    }

    fn dial_tcp(&self, deadline: Instant) -> Result<TcpStream> {
        let addrs = self.resolve(deadline)?;
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
                    stream.set_write_timeout(Some(self.config.quest_timeout))?;
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

    /// Blocking call: waits for the connection if needed, sends, waits for
    /// the answer; all within one deadline.
    pub(crate) fn call_frame(
        &self,
        method: &str,
        frame: FrameBuf,
        timeout: Option<Duration>,
    ) -> Result<Value> {
        let timeout = self.effective_timeout(timeout);
        let deadline = deadline_after(Instant::now(), timeout);
        let conn = match self.live() {
            Some(c) => c,
            None => self.connection_until(deadline, timeout)?,
        };
        if !self.ctx.limiter.acquire_until(deadline) {
            return Err(Error::TooManyPending {
                limit: self.ctx.limiter.max(),
            });
        }
        self.call_on(&conn, method, frame, deadline, timeout)
    }

    /// Sends on `conn` and waits until `deadline` (the caller took a
    /// limiter unit).
    fn call_on(
        &self,
        conn: &Arc<Connection>,
        method: &str,
        mut frame: FrameBuf,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Value> {
        let (slot, tx) = ReplySlot::new();
        let seq = match conn.send_two_way(&mut frame, Waiter::Blocking(tx)) {
            Ok(seq) => seq,
            // Refused before it was written, or its write failed (then the
            // frame, last in the buffer, is incomplete): never processed.
            Err((e, _)) => return Err(e.not_sent()),
        };
        wait_answer(conn, &slot, seq, deadline, method, timeout)
    }

    /// Callback call: sends, or queues the call while the client connects;
    /// never blocks. The callback gets the result on a callback thread.
    pub(crate) fn call_frame_cb(
        &self,
        method: MethodName,
        frame: FrameBuf,
        timeout: Option<Duration>,
        cb: AnswerCallback,
    ) {
        self.call_frame_cb_at(method, frame, timeout, cb, Instant::now());
    }

    /// [`call_frame_cb`](Self::call_frame_cb) for a call made at `now` (a
    /// time the caller read anyway: the timeout counts from it).
    pub(crate) fn call_frame_cb_at(
        &self,
        method: MethodName,
        frame: FrameBuf,
        timeout: Option<Duration>,
        cb: AnswerCallback,
        now: Instant,
    ) {
        if !self.ctx.limiter.try_acquire() {
            let limit = self.ctx.limiter.max();
            return self.pool.fail(cb, Error::TooManyPending { limit });
        }
        let timeout = self.effective_timeout(timeout);
        let deadline = deadline_after(now, timeout);
        // The current connection without taking a lock or a reference
        // count: only a connect takes the slow path.
        let current = self.current.load();
        let Some(conn) = current.as_ref().filter(|c| !c.is_closed()) else {
            drop(current);
            return self.queue_call(Queued {
                method,
                frame,
                cb,
                deadline,
                timeout,
            });
        };
        self.send_callback_call(
            conn,
            Queued {
                method,
                frame,
                cb,
                deadline,
                timeout,
            },
        );
    }

    /// Queues a callback call (holding a limiter unit) until the dial in
    /// progress ends, starting one if none runs.
    fn queue_call(&self, q: Queued) {
        let mut st = lock(&self.state);
        if st.closed {
            drop(st);
            self.ctx.limiter.release(1);
            return self.pool.fail(q.cb, Error::ClientClosed);
        }
        if let Some(conn) = st.current.clone().filter(|c| !c.is_closed()) {
            // A dial ended meanwhile.
            drop(st);
            return self.send_callback_call(&conn, q);
        }
        if !st.dialing {
            if let Err(e) = self.start_dial(&mut st) {
                drop(st);
                self.ctx.limiter.release(1);
                return self.pool.fail(q.cb, e);
            }
        }
        let earlier = st.queue_earliest.is_none_or(|e| q.deadline < e);
        if earlier {
            st.queue_earliest = Some(q.deadline);
        }
        st.queue.push(q);
        drop(st);
        if earlier {
            let _ = self.ctx.timer_wake.try_send(());
        }
    }

    /// The pool that runs callbacks.
    pub(crate) fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }

    fn handle_quest(&self, conn: &Arc<Connection>, quest: Quest) {
        let handler = lock(&self.handler).clone();
        // The client is handed to the handler, then dropped after the
        // answer went out (it may be the last handle: then this closes).
        let client = self.user_client();
        let reply = match (handler, &client) {
            (Some(h), Some(client)) => {
                let outcome = catch_unwind(AssertUnwindSafe(|| {
                    h.on_quest(client, &quest.method, &quest.payload, quest.seq.is_some())
                }));
                outcome.unwrap_or_else(|_| {
                    log::error!("the quest handler panicked on `{}`", quest.method);
                    QuestReply::Error {
                        code: codes::FPNN_EC_CORE_UNKNOWN_ERROR,
                        message: "the quest handler panicked".into(),
                    }
                })
            }
            _ => QuestReply::Unhandled,
        };
        answer_quest(conn, quest, reply);
        drop(client);
    }

    fn connection_closed(&self, conn: &Arc<Connection>, err: &Error) {
        let wanted = self.config.reconnect.is_some() && self.wanted_now();
        let st = lock(&self.state);
        if !conn.is_published() {
            // A connection that failed while being set up: reported as a
            // failed connect by its dial.
            return;
        }
        let by_user = st.closed;
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
            will_reconnect: !by_user && wanted,
        });
        drop(st);
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
            let watch = self.rt.watch.clone();
            let sent_at = Instant::now();
            let cb: AnswerCallback = Box::new(move |r| match r {
                Ok(_) => watch.keepalive_rtt(sent_at.elapsed()),
                Err(e) => log::debug!("keepalive ping failed: {e}"),
            });
            let waiter = Waiter::Callback {
                cb,
                deadline: deadline_after(Instant::now(), ka.timeout),
                method: MethodName::Static("*ping"),
                timeout: ka.timeout,
            };
            let mut frame = frame;
            self.ctx.limiter.force_acquire();
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

    /// One round of the timer: expires callbacks and queued calls, runs
    /// the keepalive; returns when the next round is due.
    fn timer_round(&self) -> Instant {
        let now = Instant::now();
        let mut wake_at = deadline_after(now, self.tick());
        if let Some(c) = self.current.load_full() {
            c.expire(now);
            self.keepalive(&c);
            if let Some(d) = c.earliest_deadline() {
                wake_at = wake_at.min(d);
            }
        }
        if let Some(d) = self.expire_queue(now) {
            wake_at = wake_at.min(d);
        }
        wake_at
    }

    /// Closes the client (idempotent). Never waits for the network.
    pub(crate) fn close(&self) {
        let taken = {
            let mut st = lock(&self.state);
            if st.closed {
                None
            } else {
                st.closed = true;
                self.current.store(None);
                st.queue_earliest = None;
                Some((
                    st.current.take(),
                    st.connecting.take(),
                    std::mem::take(&mut st.queue),
                ))
            }
        };
        let Some((conn, connecting, queued)) = taken else {
            return;
        };
        self.dialed.notify_all();
        if let Some(c) = connecting {
            // Cut a connect in progress short (its dial thread joins it).
            c.shutdown(Error::ClientClosed);
        }
        if let Some(conn) = conn {
            conn.shutdown(Error::ClientClosed);
            conn.join_threads();
        }
        self.ctx.limiter.release(queued.len());
        for q in queued {
            self.pool.fail(q.cb, Error::ClientClosed);
        }
        self.rt.remove(&self.me);
        if self.owns_rt {
            self.rt.stop();
            // The observer's last look: what the calls cut off by the
            // close did.
            if self.rt.watch.observed() {
                self.rt.watch.report(&self.stats());
            }
        }
        // Whatever the handlers captured is released now.
        let handler = lock(&self.handler).take();
        let events = lock(&self.events).take();
        let hook = lock(&self.connect_hook).take();
        let wanted = lock(&self.wanted).take();
        drop((handler, events, hook, wanted));
    }
}

fn spawn_named(name: String, f: impl FnOnce() + Send + 'static) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name(name).spawn(f)
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
        return reply.and_then(decode_answer);
    }
    match slot.wait(Some(deadline)) {
        Some(reply) => reply.and_then(decode_answer),
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
                    .and_then(decode_answer)
            }
        }
    }
}

/// Decodes an answer on the thread that completes its call, noting its
/// size for the call's observer.
pub(crate) fn decode_answer(answer: RawAnswer) -> Result<Value> {
    super::watch::set_answer_bytes(answer.frame_len());
    answer.into_result()
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

fn timer_loop(rt: Arc<Runtime>, wake: Receiver<()>) {
    let mut next_stats = Instant::now();
    while !rt.timer_stop.load(Ordering::Acquire) {
        let cores: Vec<Arc<Core>> = lock(&rt.cores).iter().filter_map(Weak::upgrade).collect();
        let mut wake_at = deadline_after(Instant::now(), Duration::from_secs(1));
        if rt.watch.observed() {
            if Instant::now() >= next_stats {
                next_stats = Instant::now() + super::watch::STATS_EVERY;
                if let Some(owner) = cores.iter().find(|c| c.owns_rt) {
                    rt.watch.report(&owner.stats());
                }
            }
            wake_at = wake_at.min(next_stats);
        }
        for core in &cores {
            // A panic in one round (not expected) must not stop the timeouts.
            let at = catch_unwind(AssertUnwindSafe(|| core.timer_round())).unwrap_or_else(|_| {
                log::error!("the timer round panicked; the timer carries on");
                Instant::now() + Duration::from_millis(100)
            });
            wake_at = wake_at.min(at);
        }
        // A client may be dropped here (its `close` does not join this
        // thread when it is not the runtime's owner).
        drop(cores);
        match wake.recv_timeout(wake_at.saturating_duration_since(Instant::now())) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
}

/// Delivers connection events in order and schedules background
/// reconnects (started on a dial thread: this thread never dials).
fn supervisor_loop(rt: Arc<Runtime>, rx: Receiver<SupMsg>) {
    // The background reconnects due, per client.
    let mut reconnects: Vec<(Weak<Core>, Instant)> = Vec::new();
    loop {
        let next = reconnects.iter().map(|(_, at)| *at).min();
        let msg = match next {
            Some(at) => rx.recv_deadline(at),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match msg {
            Ok(SupMsg::Event(weak, event)) => {
                let Some(core) = weak.upgrade() else { continue };
                let schedule = match &event {
                    ConnectionEvent::Closed { will_reconnect, .. }
                    | ConnectionEvent::ConnectFailed { will_reconnect, .. } => *will_reconnect,
                    ConnectionEvent::Connected { .. } => {
                        reconnects.retain(|(c, _)| !c.ptr_eq(&weak));
                        false
                    }
                };
                let handler = lock(&core.events).clone();
                if let Some(h) = handler {
                    if let Some(client) = core.user_client() {
                        if catch_unwind(AssertUnwindSafe(|| h(&client, &event))).is_err() {
                            log::error!("the connection event handler panicked");
                        }
                        // Possibly the last handle: then this closes the
                        // client (which does not join this thread).
                        drop(client);
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
                        reconnects.retain(|(c, _)| !c.ptr_eq(&weak));
                        reconnects.push((weak, deadline_after(Instant::now(), delay)));
                    }
                }
                drop(core);
            }
            Ok(SupMsg::Stop) | Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {
                let now = Instant::now();
                let (due, later): (Vec<_>, Vec<_>) =
                    reconnects.drain(..).partition(|(_, at)| *at <= now);
                reconnects = later;
                for (weak, _) in due {
                    if let Some(core) = weak.upgrade() {
                        core.background_dial();
                    }
                }
            }
        }
    }
    drop(rt);
}
