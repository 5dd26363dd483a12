//! The RTM server client: signing, the resend rule, and the one generic
//! path that every API method goes through.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use rmpv::Value;

use std::sync::Mutex;

use super::auth;
use super::listen::{self, ListenState};
use super::params::{AnswerReader, Params};
use super::push::{PushDispatch, PushHandler};
use crate::codes;
use crate::error::{Delivery, Error, Result};
use crate::fpnn::conn::{lock, FrameBuf, MethodName};
use crate::fpnn::watch::Watch;
use crate::fpnn::{ClientConfig, ClientStats, ConnectionEvent, Core, FpnnClient};

/// Reads the answer of one method into its typed result.
pub(crate) type ReadAnswer<T> = for<'a> fn(&AnswerReader<'a>) -> Result<T>;

/// A blocking client of the RTM Server-End API.
///
/// Every method exists in two forms generated from one description: a
/// blocking form that returns the typed result, and a `*_with_callback` form
/// that returns at once and hands the same result to a closure, run on one of
/// the client's callback threads (never on the thread that reads the
/// socket). Every quest is signed (`pid`, `sign`, `salt`, `ts`), and resent
/// once, re-signed, when the connection was lost under it or the server
/// reports a reused signature (see [`RtmServerClient::call`]).
///
/// The client connects lazily on the first call (or with
/// [`connect`](RtmServerClient::connect)) and connects again on the next
/// call after a connection is lost (both forms connect on the calling
/// thread, bounded by the connect timeout), besides reconnecting in the
/// background (see [`ClientConfig::reconnect`]). It is `Clone + Send + Sync`: clones share
/// one connection, so one client can serve a whole thread pool. It closes
/// when [`close`](RtmServerClient::close) is called or the last clone is
/// dropped; pending calls then complete with a connection-closed error.
///
/// Per-call timeouts: [`with_timeout`](RtmServerClient::with_timeout) returns
/// a handle whose calls use that timeout instead of the configured default.
///
/// The secret key never appears in `Debug` output, logs or errors.
#[derive(Clone)]
pub struct RtmServerClient {
    inner: Arc<RtmInner>,
    timeout: Option<Duration>,
}

pub(crate) struct RtmInner {
    signer: Arc<Signer>,
    pub(crate) listen: Arc<Mutex<ListenState>>,
    push: Arc<PushDispatch>,
    fpnn: FpnnClient,
    /// The file-gate clients (see `files.rs`).
    files: Arc<super::file_gates::FileGates>,
}

/// The project's credentials; signs quests.
pub(crate) struct Signer {
    pid: i64,
    secret: String,
}

impl Signer {
    /// Builds a signed quest frame with a fresh salt and the current time.
    pub(crate) fn frame(&self, core: &Core, method: &str, params: &Params) -> Result<FrameBuf> {
        let salt = auth::next_salt();
        let ts = auth::unix_seconds();
        let sign = auth::sign_hex(self.pid, &self.secret, salt, method, ts);
        core.build_frame(method, true, |out| {
            let _ = rmp::encode::write_map_len(out, params.count + 4);
            let _ = rmp::encode::write_str(out, "pid");
            let _ = rmp::encode::write_sint(out, self.pid);
            let _ = rmp::encode::write_str(out, "sign");
            let _ = rmp::encode::write_str(out, std::str::from_utf8(&sign).unwrap_or_default());
            let _ = rmp::encode::write_str(out, "salt");
            let _ = rmp::encode::write_sint(out, salt);
            let _ = rmp::encode::write_str(out, "ts");
            let _ = rmp::encode::write_sint(out, ts);
            out.extend_from_slice(&params.buf);
        })
    }
}

impl std::fmt::Debug for RtmServerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtmServerClient")
            .field("pid", &self.inner.signer.pid)
            .field("secret", &"<redacted>")
            .field("endpoint", &self.inner.fpnn.endpoint())
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A handle to an [`RtmServerClient`] that does not keep it alive: for
/// code the client owns (a push or event handler, a task on its callback
/// threads) that must keep a reference to it.
///
/// A clone of the client held by its own handler keeps the client alive
/// (connection, threads) until [`close`](RtmServerClient::close) is
/// called, since dropping the other handles never drops the last one. A
/// weak handle does not: once every [`RtmServerClient`] handle is dropped,
/// the client closes and [`upgrade`](Self::upgrade) returns `None`.
///
/// ```
/// # let emulator = rtm_server_sdk::emulator::RtmEmulator::start(1, "s").unwrap();
/// use rtm_server_sdk::RtmServerClient;
/// let client = RtmServerClient::new(1, "s", emulator.endpoint())?;
/// let weak = client.downgrade();
/// assert!(weak.upgrade().is_some());
/// drop(client); // the last handle: the client closes
/// assert!(weak.upgrade().is_none());
/// # Ok::<(), rtm_server_sdk::Error>(())
/// ```
#[derive(Clone)]
pub struct WeakRtmServerClient {
    inner: Weak<RtmInner>,
    timeout: Option<Duration>,
}

impl WeakRtmServerClient {
    /// The client, with the per-call timeout of the handle this was made
    /// from, while any [`RtmServerClient`] handle of it exists (`None`
    /// once the last one was dropped).
    #[must_use]
    pub fn upgrade(&self) -> Option<RtmServerClient> {
        Some(RtmServerClient {
            inner: self.inner.upgrade()?,
            timeout: self.timeout,
        })
    }
}

impl std::fmt::Debug for WeakRtmServerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeakRtmServerClient")
            .field("alive", &(self.inner.strong_count() > 0))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// What is left of a call's `total` time since `started`, if anything.
fn time_left(total: Duration, started: Instant) -> Option<Duration> {
    total
        .checked_sub(started.elapsed())
        .filter(|left| !left.is_zero())
}

/// The outcome of a quest resent after `first` failed: the resend's,
/// unless the resend never left this client while the first attempt may
/// have been processed. A quest whose answer was lost must not be reported
/// as "cannot connect" (20012) because its resend found the server gone:
/// the caller would take it as never sent and send it again.
fn resent_outcome<T>(first: Error, resend: Result<T>) -> Result<T> {
    match resend {
        Err(e)
            if e.delivery() == Delivery::NotSent
                && first.delivery() == Delivery::MayHaveBeenProcessed =>
        {
            log::debug!("the resend was not sent ({e}); reporting the first failure");
            Err(first)
        }
        other => other,
    }
}

/// True for the failures after which a quest is resent once
/// (`docs/protocol.md`, section 4): the connection closed under the quest
/// (20002; an I/O error on the established connection is reported so too), the server reports an invalid connection
/// (20012), or the signature was seen before (200006). A failure to connect
/// is not retried (the quest never left), nor is a timeout.
fn should_resend(err: &Error) -> bool {
    match err {
        Error::ConnectionClosed { .. } | Error::Io(_) => true,
        Error::Server { code, .. } => matches!(
            *code,
            codes::FPNN_EC_CORE_CONNECTION_CLOSED
                | codes::FPNN_EC_CORE_INVALID_CONNECTION
                | codes::RTM_EC_SAME_SIGN
        ),
        _ => false,
    }
}

impl RtmServerClient {
    /// A client for project `pid` with its `secret` key, talking to
    /// `endpoint` (`host:port`), with the default [`ClientConfig`]
    /// (30 s connect and quest timeouts). Nothing is connected yet: the
    /// first call connects.
    ///
    /// ```
    /// # let emulator = rtm_server_sdk::emulator::RtmEmulator::start(11000001, "secret").unwrap();
    /// # let endpoint = emulator.endpoint();
    /// use rtm_server_sdk::RtmServerClient;
    /// let client = RtmServerClient::new(11000001, "secret", endpoint)?;
    /// assert_eq!(client.get_voice_room_list()?, Vec::<i64>::new());
    /// # Ok::<(), rtm_server_sdk::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when `endpoint` is not of the form
    /// `host:port`, and an I/O error when the client's threads cannot be
    /// started.
    pub fn new(pid: i64, secret: impl Into<String>, endpoint: impl Into<String>) -> Result<Self> {
        Self::with_config(pid, secret, endpoint, ClientConfig::default())
    }

    /// Like [`new`](RtmServerClient::new), with a configuration.
    ///
    /// ```
    /// # let emulator = rtm_server_sdk::emulator::RtmEmulator::start(11000001, "secret").unwrap();
    /// # let endpoint = emulator.endpoint();
    /// use std::time::Duration;
    /// use rtm_server_sdk::{ClientConfig, RtmServerClient};
    /// let config = ClientConfig::default()
    ///     .connect_timeout(Duration::from_secs(5))
    ///     .quest_timeout(Duration::from_secs(10));
    /// let client = RtmServerClient::with_config(11000001, "secret", endpoint, config)?;
    /// client.connect()?; // fail fast on a wrong endpoint
    /// # Ok::<(), rtm_server_sdk::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`new`](RtmServerClient::new).
    pub fn with_config(
        pid: i64,
        secret: impl Into<String>,
        endpoint: impl Into<String>,
        config: ClientConfig,
    ) -> Result<Self> {
        let fpnn = FpnnClient::new(endpoint, config)?;
        let signer = Arc::new(Signer {
            pid,
            secret: secret.into(),
        });
        let listen = Arc::new(Mutex::new(ListenState::default()));
        let push = Arc::new(PushDispatch::new(fpnn.core().pool().clone()));
        fpnn.set_quest_handler(push.clone());
        fpnn.core()
            .set_connect_hook(listen::restore_hook(signer.clone(), listen.clone()));
        // Listening needs the connection: redial in the background then.
        let listening = listen.clone();
        fpnn.core().set_wanted(Arc::new(move || {
            *lock(&listening) != ListenState::default()
        }));
        let files = Arc::new(super::file_gates::FileGates::new(&fpnn));
        let inner = Arc::new(RtmInner {
            signer,
            listen,
            push,
            fpnn,
            files,
        });
        inner.push.set_client(Arc::downgrade(&inner));
        Ok(RtmServerClient {
            inner,
            timeout: None,
        })
    }

    /// Installs the handler of server pushes (messages, events, `ping`),
    /// replacing any previous one. Without one, pushes are still answered.
    /// Which pushes arrive is chosen with the listen methods
    /// ([`add_listen`](RtmServerClient::add_listen), ...). A handler that
    /// keeps a reference to the client holds a [`WeakRtmServerClient`]
    /// ([`downgrade`](Self::downgrade)), not a clone (see [`PushHandler`]).
    pub fn set_push_handler(&self, handler: impl PushHandler) {
        *lock(&self.inner.push.handler) = Some(Arc::new(handler));
    }

    /// Installs the handler of connection events (see [`ConnectionEvent`]
    /// and [`FpnnClient::set_event_handler`]), replacing any previous one.
    ///
    /// The handler is given the client: use that reference rather than
    /// capturing a clone of the client in the closure (a captured clone
    /// would keep the client alive for as long as the handler is
    /// installed, so that dropping every other handle would not close it).
    /// Code that must keep a reference holds a
    /// [`downgrade`](Self::downgrade)d one.
    ///
    /// ```
    /// # let emulator = rtm_server_sdk::emulator::RtmEmulator::start(1, "s").unwrap();
    /// # let client = rtm_server_sdk::RtmServerClient::new(1, "s", emulator.endpoint()).unwrap();
    /// use rtm_server_sdk::fpnn::ConnectionEvent;
    /// client.set_event_handler(|client, event| match event {
    ///     ConnectionEvent::Connected { .. } => log::info!("project {} connected", client.pid()),
    ///     other => log::warn!("{other:?}"),
    /// });
    /// client.connect()?;
    /// # Ok::<(), rtm_server_sdk::Error>(())
    /// ```
    pub fn set_event_handler(
        &self,
        handler: impl Fn(&RtmServerClient, &ConnectionEvent) + Send + Sync + 'static,
    ) {
        let weak = Arc::downgrade(&self.inner);
        self.inner.fpnn.set_event_handler(move |_, event| {
            if let Some(inner) = weak.upgrade() {
                handler(
                    &RtmServerClient {
                        inner,
                        timeout: None,
                    },
                    event,
                )
            }
        })
    }

    /// A handle to the same client whose calls wait at most `timeout` for
    /// their answer (zero means the configured default).
    ///
    /// The timeout reaches every call made through the handle, the raw
    /// ones of [`fpnn`](Self::fpnn) included.
    ///
    /// ```
    /// # let emulator = rtm_server_sdk::emulator::RtmEmulator::start(1, "s").unwrap();
    /// # let client = rtm_server_sdk::RtmServerClient::new(1, "s", emulator.endpoint()).unwrap();
    /// use std::time::Duration;
    /// let quick = client.with_timeout(Duration::from_secs(2));
    /// let rooms = quick.get_voice_room_list()?;
    /// assert_eq!(quick.fpnn().timeout(), Some(Duration::from_secs(2)));
    /// # let _ = rooms; Ok::<(), rtm_server_sdk::Error>(())
    /// ```
    pub fn with_timeout(&self, timeout: Duration) -> RtmServerClient {
        RtmServerClient {
            inner: self.inner.clone(),
            timeout: if timeout.is_zero() {
                None
            } else {
                Some(timeout)
            },
        }
    }

    /// The per-call timeout of this handle (`None`: the configured default).
    #[must_use]
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// The project id.
    #[must_use]
    pub fn pid(&self) -> i64 {
        self.inner.signer.pid
    }

    /// The underlying FPNN client, for unsigned raw quests, with this
    /// handle's per-call timeout (see [`with_timeout`](Self::with_timeout)).
    #[must_use]
    pub fn fpnn(&self) -> FpnnClient {
        match self.timeout {
            Some(t) => self.inner.fpnn.with_timeout(t),
            None => self.inner.fpnn.clone(),
        }
    }

    /// Connects now, so that a wrong endpoint fails fast. It returns when
    /// its attempt ends (see [`FpnnClient::connect`]): a call made after it
    /// failed makes an attempt of its own.
    ///
    /// # Errors
    ///
    /// The connect error ([`Error::Connect`], [`Error::ConnectTimeout`],
    /// [`Error::Encryption`] for a failed key exchange), or
    /// [`Error::ClientClosed`].
    pub fn connect(&self) -> Result<()> {
        self.inner.fpnn.connect()
    }

    /// Closes the client; see [`FpnnClient::close`]. The file-gate
    /// connections close too.
    pub fn close(&self) {
        self.inner.fpnn.close();
        self.inner.files.close();
    }

    pub(crate) fn file_gates(&self) -> &Arc<super::file_gates::FileGates> {
        &self.inner.files
    }

    pub(crate) fn inner_listen(&self) -> Arc<Mutex<ListenState>> {
        self.inner.listen.clone()
    }

    /// Runs `f` on a callback thread.
    pub(crate) fn on_pool(&self, f: impl FnOnce() + Send + 'static) {
        self.inner
            .fpnn
            .core()
            .pool()
            .submit(crate::fpnn::pool::Job::Task(Box::new(f)));
    }

    /// A handle to the client `inner` (no per-call timeout).
    pub(crate) fn from_inner(inner: Arc<RtmInner>) -> RtmServerClient {
        RtmServerClient {
            inner,
            timeout: None,
        }
    }

    /// A handle that does not keep the client alive (see
    /// [`WeakRtmServerClient`]), for handlers that must keep a reference to
    /// the client; it keeps this handle's per-call timeout.
    #[must_use]
    pub fn downgrade(&self) -> WeakRtmServerClient {
        WeakRtmServerClient {
            inner: Arc::downgrade(&self.inner),
            timeout: self.timeout,
        }
    }

    /// Sends a signed quest for any RTM method and waits for its answer: the
    /// raw form, for methods this crate does not wrap yet. `params` is a map
    /// with string keys; the client adds `pid`, `sign`, `salt` and `ts`.
    ///
    /// The resend rule applies: when the connection is lost under the quest
    /// (or the server answers 20002 or 20012), or the server answers
    /// 200006 (same sign), the quest is re-signed with a fresh salt and sent
    /// once more, within what is left of the call's timeout (one deadline
    /// per call); the second result is final, except that a resend that
    /// could not be sent at all (the server cannot be reached any more)
    /// leaves the first failure as the outcome: a quest whose answer was
    /// lost is reported as such ([`Error::delivery`] is
    /// [`Delivery::MayHaveBeenProcessed`](crate::Delivery::MayHaveBeenProcessed)),
    /// never as a connect error that would read as "not sent".
    ///
    /// ```
    /// # let emulator = rtm_server_sdk::emulator::RtmEmulator::start(1, "s").unwrap();
    /// # let client = rtm_server_sdk::RtmServerClient::new(1, "s", emulator.endpoint()).unwrap();
    /// use rtm_server_sdk::Value;
    /// let params = Value::Map(vec![
    ///     (Value::from("rid"), Value::from(42)),
    ///     (Value::from("toUids"), Value::Array(vec![Value::from(1001)])),
    /// ]);
    /// client.call("pullIntoVoiceRoom", params)?;
    /// assert_eq!(client.get_voice_room_list()?, vec![42]);
    /// # Ok::<(), rtm_server_sdk::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when `params` is not a map with string
    /// keys or holds `pid`, `sign`, `salt` or `ts`; otherwise any call error.
    pub fn call(&self, method: &str, params: Value) -> Result<Value> {
        match Params::from_map(&params) {
            Ok(params) => self.invoke(method, &params, |a| Ok(a.answer.clone())),
            Err(e) => {
                let watch = self.inner.fpnn.watch();
                watch.end(watch.begin(), method, Some(&e), false, 0);
                Err(e)
            }
        }
    }

    /// The callback form of [`call`](RtmServerClient::call).
    pub fn call_with_callback<F>(&self, method: &str, params: Value, callback: F)
    where
        F: FnOnce(Result<Value>) + Send + 'static,
    {
        match Params::from_map(&params) {
            Ok(params) => self.invoke_with_callback(
                MethodName::shared(method),
                params,
                |a| Ok(a.answer.clone()),
                Box::new(callback),
            ),
            Err(e) => {
                let begun = self.inner.fpnn.watch().begin();
                let method = method.to_string();
                self.on_pool(move || {
                    Watch::end_here(begun, &method, Some(&e), false, 0);
                    callback(Err(e))
                })
            }
        }
    }

    /// A snapshot of the client's counters, its file-gate connections
    /// included (see [`FpnnClient::stats`] and [`ClientStats`]).
    ///
    /// ```
    /// # let emulator = rtm_server_sdk::emulator::RtmEmulator::start(1, "s").unwrap();
    /// # let client = rtm_server_sdk::RtmServerClient::new(1, "s", emulator.endpoint()).unwrap();
    /// client.get_voice_room_list()?;
    /// let stats = client.stats();
    /// assert_eq!((stats.calls_started, stats.calls_ok), (1, 1));
    /// # Ok::<(), rtm_server_sdk::Error>(())
    /// ```
    #[must_use]
    pub fn stats(&self) -> ClientStats {
        self.inner.fpnn.stats()
    }

    /// The timeout of this handle's calls: its own, else the configured one.
    fn effective_timeout(&self) -> Duration {
        self.timeout
            .unwrap_or(self.inner.fpnn.config().quest_timeout)
    }

    fn signed_frame(&self, method: &str, params: &Params) -> Result<FrameBuf> {
        self.inner
            .signer
            .frame(self.inner.fpnn.core(), method, params)
    }

    fn send_signed(&self, method: &str, params: &Params, size: &mut usize) -> Result<Value> {
        let frame = self.signed_frame(method, params)?;
        *size = frame.len();
        self.inner
            .fpnn
            .core()
            .call_frame(method, frame, self.timeout)
    }

    /// The blocking path of every method: sign, send, resend once when the
    /// rule says so, read the answer.
    pub(crate) fn invoke<T>(
        &self,
        method: &str,
        params: &Params,
        read: ReadAnswer<T>,
    ) -> Result<T> {
        let watch = self.inner.fpnn.watch();
        let begun = watch.begin();
        let (mut size, mut resent) = (0, false);
        let result = params.check().and_then(|()| {
            let started = Instant::now();
            let answer = match self.send_signed(method, params, &mut size) {
                Err(e) if should_resend(&e) && !self.inner.fpnn.is_closed() => {
                    // The resend shares the call's one deadline.
                    match time_left(self.effective_timeout(), started) {
                        Some(left) => {
                            log::debug!("`{method}` failed ({e}); re-signing and resending once");
                            resent = true;
                            resent_outcome(
                                e,
                                self.with_timeout(left)
                                    .send_signed(method, params, &mut size),
                            )
                        }
                        None => Err(e),
                    }
                }
                other => other,
            }?;
            read(&AnswerReader {
                method,
                answer: &answer,
            })
        });
        watch.end(begun, method, result.as_ref().err(), resent, size);
        result
    }

    /// The callback path of every method; the same steps as
    /// [`invoke`](Self::invoke), with the resend made from the callback
    /// thread.
    pub(crate) fn invoke_with_callback<T: Send + 'static>(
        &self,
        method: MethodName,
        params: Params,
        read: ReadAnswer<T>,
        callback: Box<dyn FnOnce(Result<T>) + Send>,
    ) {
        let started = Instant::now();
        let begun = self.inner.fpnn.watch().begin_at(started);
        if let Err(e) = params.check() {
            return self.on_pool(move || {
                Watch::end_here(begun, &method, Some(&e), false, 0);
                callback(Err(e))
            });
        }
        let core = self.inner.fpnn.core().clone();
        let timeout = self.timeout;
        let total = self.effective_timeout();
        let weak = Arc::downgrade(&self.inner);
        let frame = self.signed_frame(&method, &params);
        let first_method = method.clone();
        let size = frame.as_ref().map_or(0, |f| f.len());
        // `resent`: the frame size of the resend, if any.
        let finish = move |method: &str, result: Result<Value>, resent: Option<usize>| {
            let result = result.and_then(|answer| {
                read(&AnswerReader {
                    method,
                    answer: &answer,
                })
            });
            let err = result.as_ref().err();
            Watch::end_here(begun, method, err, resent.is_some(), resent.unwrap_or(size));
            callback(result)
        };
        let on_first = move |result: Result<Value>| match result {
            Err(e) if should_resend(&e) => {
                // Hold the client only while resending: a dropped client
                // is not kept alive by its pending callbacks.
                let Some(inner) = weak.upgrade().filter(|i| !i.fpnn.is_closed()) else {
                    return finish(&method, Err(e), None);
                };
                // The resend shares the call's one deadline.
                let Some(left) = time_left(total, started) else {
                    return finish(&method, Err(e), None);
                };
                log::debug!("`{method}` failed ({e}); re-signing and resending once");
                let client = RtmServerClient { inner, timeout };
                match client.signed_frame(&method, &params) {
                    Ok(frame) => {
                        let m = method.clone();
                        let n = frame.len();
                        client.inner.fpnn.core().call_frame_cb(
                            method.clone(),
                            frame,
                            Some(left),
                            Box::new(move |r| finish(&m, resent_outcome(e, r), Some(n))),
                        );
                    }
                    Err(not_sent) => finish(&method, resent_outcome(e, Err(not_sent)), None),
                }
            }
            other => finish(&method, other, None),
        };
        match frame {
            Ok(frame) => {
                core.call_frame_cb_at(first_method, frame, timeout, Box::new(on_first), started)
            }
            Err(e) => core.pool().fail(Box::new(on_first), e),
        }
    }
}

impl RtmServerClient {
    /// This handle, or one with `default` as its timeout when it has no
    /// per-call timeout of its own (the methods with a longer default, such
    /// as the moderation checks).
    fn or_default_timeout(&self, default: Option<Duration>) -> std::borrow::Cow<'_, Self> {
        match (self.timeout, default) {
            (None, Some(d)) => std::borrow::Cow::Owned(self.with_timeout(d)),
            _ => std::borrow::Cow::Borrowed(self),
        }
    }

    /// [`invoke`](Self::invoke) with the method's own default timeout.
    pub(crate) fn invoke_timed<T>(
        &self,
        method: &str,
        params: &Params,
        default_timeout: Option<Duration>,
        read: ReadAnswer<T>,
    ) -> Result<T> {
        self.or_default_timeout(default_timeout)
            .invoke(method, params, read)
    }

    /// [`invoke_with_callback`](Self::invoke_with_callback) with the
    /// method's own default timeout.
    pub(crate) fn invoke_timed_with_callback<T: Send + 'static>(
        &self,
        method: MethodName,
        params: Params,
        default_timeout: Option<Duration>,
        read: ReadAnswer<T>,
        callback: Box<dyn FnOnce(Result<T>) + Send>,
    ) {
        self.or_default_timeout(default_timeout)
            .invoke_with_callback(method, params, read, callback)
    }
}

/// Declares RTM API methods: each is described once (name, arguments, the
/// method string, the wire keys, how to read the answer, and optionally a
/// default timeout of its own) and gets a blocking form and a
/// `*_with_callback` form. See CONTRIBUTING.md, "API conventions".
///
/// ```ignore
/// rtm_methods! {
///     /// Doc of the method (shared by both forms).
///     fn get_token / get_token_with_callback (uid: i64) -> String {
///         method: "gettoken",
///         params: { "uid": uid },
///         answer: |a| a.string("token"),
///     }
/// }
/// ```
///
/// `timeout: Duration::from_secs(120),` after `answer` sets the method's
/// own default (used when the handle has no per-call timeout).
macro_rules! rtm_methods {
    ($(
        $(#[$doc:meta])*
        fn $name:ident / $cb_name:ident ($($arg:ident : $ty:ty),* $(,)? ) -> $out:ty {
            method: $method:literal,
            params: { $($key:literal : $val:expr),* $(,)? },
            answer: $read:expr
            $(, timeout: $timeout:expr)? $(,)?
        }
    )*) => {
        impl $crate::rtm::RtmServerClient { $(
            $(#[$doc])*
            #[doc = ""]
            #[doc = concat!("Quest `", $method, "`. The callback form is [`", stringify!($cb_name), "`](Self::", stringify!($cb_name), ").")]
            #[doc = ""]
            #[doc = "# Errors"]
            #[doc = ""]
            #[doc = "The server's refusal ([`Error::Server`](crate::Error::Server), with its [code](crate::Error::code)), a timeout, a connection error, a malformed answer ([`Error::BadAnswer`](crate::Error::BadAnswer)), or [`Error::InvalidArgument`](crate::Error::InvalidArgument) for a value the wire cannot carry (nothing is sent then)."]
            pub fn $name(&self, $($arg: $ty),*) -> $crate::Result<$out> {
                #[allow(unused_mut)]
                let mut params = $crate::rtm::params::Params::new();
                $(params.put($key, $val); )*
                #[allow(unused_mut, unused_assignments)]
                let mut default_timeout: Option<std::time::Duration> = None;
                $(default_timeout = Some($timeout); )?
                self.invoke_timed($method, &params, default_timeout, $read)
            }

            #[doc = concat!("The callback form of [`", stringify!($name), "`](Self::", stringify!($name), "): sends the same quest and returns at once; `callback` receives the same result exactly once, on a callback thread.")]
            pub fn $cb_name<F>(&self, $($arg: $ty,)* callback: F)
            where
                F: FnOnce($crate::Result<$out>) + Send + 'static,
            {
                #[allow(unused_mut)]
                let mut params = $crate::rtm::params::Params::new();
                $(params.put($key, $val); )*
                #[allow(unused_mut, unused_assignments)]
                let mut default_timeout: Option<std::time::Duration> = None;
                $(default_timeout = Some($timeout); )?
                self.invoke_timed_with_callback(
                    $crate::fpnn::conn::MethodName::Static($method),
                    params,
                    default_timeout,
                    $read,
                    Box::new(callback),
                )
            }
        )* }
    };
}
pub(crate) use rtm_methods;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_secret() {
        let c = RtmServerClient::new(1, "top-secret-key", "127.0.0.1:1").unwrap();
        let text = format!("{c:?}");
        assert!(!text.contains("top-secret-key"), "{text}");
        assert!(text.contains("redacted"));
    }

    #[test]
    fn a_resend_that_was_not_sent_leaves_the_first_outcome() {
        let lost = Error::closed("the server closed the connection");
        let refused = Error::Connect {
            endpoint: "e".into(),
            source: Arc::new(std::io::Error::other("refused")),
        };
        // The answer was lost, the resend could not connect: the loss.
        let r: Result<()> = resent_outcome(lost.clone(), Err(refused.clone()));
        assert!(matches!(r, Err(Error::ConnectionClosed { .. })), "{r:?}");
        assert_eq!(r.unwrap_err().delivery(), Delivery::MayHaveBeenProcessed);
        // The resend's own outcome otherwise.
        assert_eq!(resent_outcome(lost.clone(), Ok(7)).unwrap(), 7);
        let timeout = Error::Timeout {
            method: "m".into(),
            timeout: Duration::ZERO,
        };
        let r: Result<()> = resent_outcome(lost.clone(), Err(timeout));
        assert!(matches!(r, Err(Error::Timeout { .. })), "{r:?}");
        // A first attempt that was not sent either, or that the server
        // refused: the resend's connect error is the truth.
        let r: Result<()> = resent_outcome(lost.not_sent(), Err(refused.clone()));
        assert!(matches!(r, Err(Error::Connect { .. })), "{r:?}");
        let same_sign = Error::Server {
            code: codes::RTM_EC_SAME_SIGN,
            message: String::new(),
        };
        let r: Result<()> = resent_outcome(same_sign, Err(refused));
        assert!(matches!(r, Err(Error::Connect { .. })), "{r:?}");
    }

    #[test]
    fn resend_rule() {
        assert!(should_resend(&Error::closed("x")));
        assert!(should_resend(&Error::Server {
            code: 20002,
            message: String::new()
        }));
        assert!(should_resend(&Error::Server {
            code: 20012,
            message: String::new()
        }));
        assert!(should_resend(&Error::Server {
            code: 200006,
            message: String::new()
        }));
        assert!(!should_resend(&Error::Server {
            code: 200040,
            message: String::new()
        }));
        assert!(!should_resend(&Error::Timeout {
            method: "m".into(),
            timeout: Duration::ZERO
        }));
        assert!(!should_resend(&Error::ClientClosed));
        assert!(!should_resend(&Error::ConnectTimeout {
            endpoint: "e".into(),
            timeout: Duration::ZERO
        }));
    }
}
