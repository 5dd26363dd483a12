//! Watching a client: the [`ClientStats`] snapshot and the
//! [`CallObserver`] hook.
//!
//! Every client keeps a few counters (atomics, spread over cache lines by
//! thread so that callers on different cores do not share one): calls
//! started and how they ended, connects, bytes and frames. They cost a few
//! nanoseconds per call and are always on;
//! [`FpnnClient::stats`](super::FpnnClient::stats) and
//! [`RtmServerClient::stats`](crate::RtmServerClient::stats) read them.
//!
//! A [`CallObserver`] set with [`ClientConfig::observer`](super::ClientConfig::observer)
//! is told about every completed call, once: its method, how long it took,
//! how it ended, whether it was resent and the sizes of its frames. It runs
//! on the thread that completes the call (the caller of a blocking call, a
//! callback thread for a callback call), never on a socket's reader thread
//! and never while a lock of the client is held. Without an observer
//! nothing is timed and nothing is called.
//!
//! What counts as one call: one call of a public method, blocking or
//! callback, whatever happened to it: a call refused before anything was
//! sent (bad input, a closed client, the pending cap), a call resent once
//! under the RTM resend rule (one call, with `resent`), a call completed by
//! [`close`](super::FpnnClient::close). The client's own quests (the key
//! exchange, keepalive pings, the listen restore) are not calls. A file
//! send is two calls: its `filetoken` on the gateway and its upload on the
//! file gate (both count under the same client). A one-way quest
//! ([`send_one_way`](super::FpnnClient::send_one_way)) is not a call
//! either: it has no outcome.

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind};

/// Told about every completed call of a client (see the [module
/// docs](self) for what a call is and where this runs).
///
/// Set it with [`ClientConfig::observer`](super::ClientConfig::observer);
/// any `Fn(&CallRecord<'_>) + Send + Sync + 'static` closure is one.
/// Keep it short: it runs on the thread that completes the call, before
/// the call's result is handed over. A panic in it is caught and logged.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
/// use rtm_server_sdk::fpnn::CallRecord;
/// use rtm_server_sdk::ClientConfig;
///
/// let slow = Arc::new(AtomicU64::new(0));
/// let counter = slow.clone();
/// let config = ClientConfig::default().observer(move |call: &CallRecord<'_>| {
///     if call.elapsed.as_millis() > 100 {
///         counter.fetch_add(1, Ordering::Relaxed);
///     }
/// });
/// # let _ = config;
/// ```
pub trait CallObserver: Send + Sync + 'static {
    /// One call completed.
    fn on_call(&self, call: &CallRecord<'_>);

    /// A snapshot of the client's counters, about once a second (every
    /// [`STATS_EVERY`]), from the client's timer thread: for gauges such
    /// as the pending calls or the connection state. Default: nothing.
    fn on_stats(&self, stats: &ClientStats) {
        let _ = stats;
    }
}

/// How often an observer's [`CallObserver::on_stats`] is called.
pub const STATS_EVERY: Duration = Duration::from_secs(1);

impl<F> CallObserver for F
where
    F: Fn(&CallRecord<'_>) + Send + Sync + 'static,
{
    fn on_call(&self, call: &CallRecord<'_>) {
        self(call)
    }
}

impl fmt::Debug for dyn CallObserver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CallObserver")
    }
}

/// One completed call, as a [`CallObserver`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CallRecord<'a> {
    /// The method (the FPNN method string, e.g. `getVoiceRoomList`).
    pub method: &'a str,
    /// From the call to its completion (connecting, a resend and reading
    /// the answer included).
    pub elapsed: Duration,
    /// How it ended.
    pub outcome: CallOutcome,
    /// Whether it was sent a second time under the RTM resend rule.
    pub resent: bool,
    /// The size of the quest frame sent (of the last attempt), header
    /// included; zero when nothing could be built.
    pub request_bytes: usize,
    /// The size of the answer frame received, header included; zero when
    /// no answer came.
    pub answer_bytes: usize,
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallOutcome {
    /// It succeeded.
    Ok,
    /// It failed.
    Failed {
        /// Which kind of failure (see [`Error::kind`]).
        kind: ErrorKind,
        /// The error's code ([`Error::code`]), when it has one.
        code: Option<i64>,
    },
}

impl CallOutcome {
    /// The outcome of a call that ended with `result`.
    #[must_use]
    pub fn of<T>(result: &Result<T, Error>) -> CallOutcome {
        match result {
            Ok(_) => CallOutcome::Ok,
            Err(e) => CallOutcome::Failed {
                kind: e.kind(),
                code: e.code(),
            },
        }
    }

    /// A short label: `ok`, or the failure kind's
    /// ([`ErrorKind::as_str`]).
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            CallOutcome::Ok => "ok",
            CallOutcome::Failed { kind, .. } => kind.as_str(),
        }
    }
}

/// A snapshot of a client's counters (see
/// [`FpnnClient::stats`](super::FpnnClient::stats)). Counts are since the
/// client was made; the file-gate connections of an RTM client count under
/// it. `Display` prints a one-line summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientStats {
    /// Calls made (see the [module docs](self) for what a call is).
    pub calls_started: u64,
    /// Calls that succeeded.
    pub calls_ok: u64,
    /// Calls that failed with a timeout ([`ErrorKind::Timeout`]).
    pub calls_timed_out: u64,
    /// Calls that failed on the connection ([`ErrorKind::Connection`]).
    pub calls_connection_failed: u64,
    /// Calls the server refused with an error code ([`ErrorKind::Server`]).
    pub calls_server_error: u64,
    /// Calls refused or failed on this side ([`ErrorKind::Local`]).
    pub calls_local_error: u64,
    /// Calls sent a second time under the RTM resend rule.
    pub calls_resent: u64,
    /// Calls pending now (in flight, or waiting for a connection), the
    /// client's own quests included.
    pub pending: usize,
    /// The most calls that were pending at once.
    pub pending_peak: usize,
    /// Connections established (file gates included).
    pub connects: u64,
    /// Connect attempts that failed (file gates included).
    pub connect_failures: u64,
    /// Connections established after an earlier one of the same endpoint
    /// was lost (the gateway's; a file gate is a new client each time).
    pub reconnects: u64,
    /// How long the current gateway connection has been up (`None`: not
    /// connected).
    pub connection_age: Option<Duration>,
    /// Bytes written to the sockets (after encryption).
    pub bytes_sent: u64,
    /// Bytes read from the sockets.
    pub bytes_received: u64,
    /// Frames written (quests and answers to server quests).
    pub frames_sent: u64,
    /// Frames read (answers and server quests).
    pub frames_received: u64,
    /// The round trip of the last keepalive ping answered (`None`: none
    /// yet).
    pub last_keepalive_rtt: Option<Duration>,
}

impl ClientStats {
    /// Calls that failed, whatever the kind.
    #[must_use]
    pub fn calls_failed(&self) -> u64 {
        self.calls_timed_out
            + self.calls_connection_failed
            + self.calls_server_error
            + self.calls_local_error
    }
}

impl fmt::Display for ClientStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "calls {} (ok {}, timeout {}, connection {}, server {}, local {}, resent {}); \
             pending {} (peak {}); connects {} (failed {}, reconnects {}), ",
            self.calls_started,
            self.calls_ok,
            self.calls_timed_out,
            self.calls_connection_failed,
            self.calls_server_error,
            self.calls_local_error,
            self.calls_resent,
            self.pending,
            self.pending_peak,
            self.connects,
            self.connect_failures,
            self.reconnects,
        )?;
        match self.connection_age {
            Some(age) => write!(f, "up {:.1} s", age.as_secs_f64())?,
            None => f.write_str("down")?,
        }
        write!(
            f,
            "; sent {} B in {} frames, received {} B in {} frames",
            self.bytes_sent, self.frames_sent, self.bytes_received, self.frames_received
        )?;
        if let Some(rtt) = self.last_keepalive_rtt {
            write!(f, "; keepalive rtt {} us", rtt.as_micros())?;
        }
        Ok(())
    }
}

/// One cache line of per-call counters.
#[derive(Default)]
#[repr(align(128))]
struct CallCounters {
    started: AtomicU64,
    ok: AtomicU64,
    timeout: AtomicU64,
    connection: AtomicU64,
    server: AtomicU64,
    local: AtomicU64,
    resent: AtomicU64,
}

/// Counters written by one kind of thread, on a line of their own.
#[derive(Default)]
#[repr(align(128))]
pub(crate) struct Line<T>(pub T);

/// The number of per-call counter shards (threads pick one each).
pub(crate) const SHARDS: usize = 8;

/// What the call path keeps per thread (plain cells: one cheap access).
struct Local {
    /// The thread's counter shard (`usize::MAX`: not drawn yet).
    shard: Cell<usize>,
    /// The size of the last answer frame this thread decoded (set where
    /// answers are decoded, reset where a call fails without one), read
    /// when the call that received it completes on this thread.
    answer_bytes: Cell<usize>,
    /// When the batch of callbacks running on this thread began (set
    /// only while an observer needs it): the completion time of the calls
    /// it completes, one clock read per batch.
    batch_now: Cell<Option<Instant>>,
    /// Whether this callback thread's client has an observer.
    observed: Cell<bool>,
}

thread_local! {
    static LOCAL: Local = const {
        Local {
            shard: Cell::new(usize::MAX),
            answer_bytes: Cell::new(0),
            batch_now: Cell::new(None),
            observed: Cell::new(false),
        }
    };
    /// The watch of the client whose callback thread this is.
    static CURRENT: std::cell::RefCell<Option<Arc<Watch>>> =
        const { std::cell::RefCell::new(None) };
}

impl Local {
    fn shard(&self) -> usize {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let mut n = self.shard.get();
        if n == usize::MAX {
            n = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
            self.shard.set(n);
        }
        n
    }
}

/// The shard of the calling thread.
pub(crate) fn shard() -> usize {
    LOCAL.try_with(Local::shard).unwrap_or(0)
}

/// Records the size of the answer frame just decoded on this thread.
pub(crate) fn set_answer_bytes(n: usize) {
    let _ = LOCAL.try_with(|l| l.answer_bytes.set(n));
}

fn answer_bytes() -> usize {
    LOCAL.try_with(|l| l.answer_bytes.get()).unwrap_or(0)
}

/// Makes `watch` this thread's (a callback thread of its client).
pub(crate) fn set_current(watch: Option<Arc<Watch>>) {
    let observed = watch.as_ref().is_some_and(|w| w.observed());
    let _ = LOCAL.try_with(|l| l.observed.set(observed));
    let _ = CURRENT.try_with(|c| *c.borrow_mut() = watch);
}

/// Runs a batch of callbacks (the answers of one read) with one
/// completion time for its calls, when this thread's client has an
/// observer; `f` is told whether it has one.
pub(crate) fn batch(f: impl FnOnce(bool)) {
    let observed = LOCAL
        .try_with(|l| {
            let observed = l.observed.get();
            if observed {
                l.batch_now.set(Some(Instant::now()));
            }
            observed
        })
        .unwrap_or(false);
    f(observed);
    if observed {
        let _ = LOCAL.try_with(|l| l.batch_now.set(None));
    }
}

/// A call that started: when, if an observer needs it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Begun {
    at: Option<Instant>,
    /// The counter shard of the thread that began it (its end counts
    /// there too: one thread-local lookup per call, not two).
    shard: usize,
}

/// A client's counters and observer (shared by its file gates).
pub(crate) struct Watch {
    calls: [CallCounters; SHARDS],
    observer: Option<Arc<dyn CallObserver>>,
    /// Written by the dial threads.
    pub(crate) connects: Line<ConnectCounters>,
    /// Written by the reader threads.
    pub(crate) received: Line<Traffic>,
    /// Written by the threads that write to the sockets.
    pub(crate) sent: Line<Traffic>,
    /// The last keepalive round trip in microseconds plus one (0: none).
    pub(crate) keepalive_rtt_us: AtomicU64,
}

/// Connect counters.
#[derive(Default)]
pub(crate) struct ConnectCounters {
    pub connects: AtomicU64,
    pub failures: AtomicU64,
    pub reconnects: AtomicU64,
}

/// Bytes and frames one way.
#[derive(Default)]
pub(crate) struct Traffic {
    pub bytes: AtomicU64,
    pub frames: AtomicU64,
}

impl Traffic {
    pub(crate) fn add(&self, bytes: usize, frames: usize) {
        if bytes > 0 {
            self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        }
        if frames > 0 {
            self.frames.fetch_add(frames as u64, Ordering::Relaxed);
        }
    }
}

impl Watch {
    pub(crate) fn new(observer: Option<Arc<dyn CallObserver>>) -> Watch {
        Watch {
            calls: Default::default(),
            observer,
            connects: Line::default(),
            received: Line::default(),
            sent: Line::default(),
            keepalive_rtt_us: AtomicU64::new(0),
        }
    }

    /// A blocking call starts (on the calling thread, which completes it).
    #[inline]
    pub(crate) fn begin(&self) -> Begun {
        let shard = LOCAL
            .try_with(|l| {
                l.answer_bytes.set(0);
                l.shard()
            })
            .unwrap_or(0);
        self.calls[shard].started.fetch_add(1, Ordering::Relaxed);
        Begun {
            at: self.observer.as_ref().map(|_| Instant::now()),
            shard,
        }
    }

    /// A callback call starts `now` (a time the caller read anyway).
    #[inline]
    pub(crate) fn begin_at(&self, now: Instant) -> Begun {
        let shard = shard();
        self.calls[shard].started.fetch_add(1, Ordering::Relaxed);
        Begun {
            at: self.observer.as_ref().map(|_| now),
            shard,
        }
    }

    /// A call ends (exactly once per [`begin`](Self::begin)).
    #[inline]
    pub(crate) fn end(
        &self,
        begun: Begun,
        method: &str,
        error: Option<&Error>,
        resent: bool,
        request_bytes: usize,
    ) {
        self.end_at(begun, method, error, resent, request_bytes, false);
    }

    #[inline]
    fn end_at(
        &self,
        begun: Begun,
        method: &str,
        error: Option<&Error>,
        resent: bool,
        request_bytes: usize,
        here: bool,
    ) {
        let c = &self.calls[begun.shard % SHARDS];
        let counter = match error.map(Error::kind) {
            None => &c.ok,
            Some(ErrorKind::Timeout) => &c.timeout,
            Some(ErrorKind::Connection) => &c.connection,
            Some(ErrorKind::Server) => &c.server,
            Some(ErrorKind::Local) => &c.local,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if resent {
            c.resent.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(at) = begun.at {
            self.observe(at, method, error, resent, request_bytes, here);
        }
    }

    /// Tells the observer about a call that began `at` and ends now (on a
    /// callback thread, `here`: at the start of its batch). Out of line,
    /// so that the call path without an observer stays small.
    #[inline(never)]
    fn observe(
        &self,
        at: Instant,
        method: &str,
        error: Option<&Error>,
        resent: bool,
        request_bytes: usize,
        here: bool,
    ) {
        if let Some(observer) = &self.observer {
            let now = if here {
                LOCAL.try_with(|l| l.batch_now.get()).ok().flatten()
            } else {
                None
            };
            let record = CallRecord {
                method,
                elapsed: now
                    .unwrap_or_else(Instant::now)
                    .saturating_duration_since(at),
                outcome: match error {
                    None => CallOutcome::Ok,
                    Some(e) => CallOutcome::Failed {
                        kind: e.kind(),
                        code: e.code(),
                    },
                },
                resent,
                request_bytes,
                answer_bytes: if error.is_none() { answer_bytes() } else { 0 },
            };
            let run = std::panic::AssertUnwindSafe(|| observer.on_call(&record));
            if std::panic::catch_unwind(run).is_err() {
                log::error!("the call observer panicked on `{method}`");
            }
        }
    }

    /// Ends a call on a callback thread: with this thread's client's
    /// watch (the call's own: a client's callbacks run on its threads, or
    /// on the late-callback thread, which sets it per job).
    #[inline]
    pub(crate) fn end_here(
        begun: Begun,
        method: &str,
        error: Option<&Error>,
        resent: bool,
        request_bytes: usize,
    ) {
        let _ = CURRENT.try_with(|c| {
            if let Some(w) = c.borrow().as_ref() {
                w.end_at(begun, method, error, resent, request_bytes, true);
            }
        });
    }

    /// Whether an observer is set.
    pub(crate) fn observed(&self) -> bool {
        self.observer.is_some()
    }

    /// Hands `stats` to the observer.
    pub(crate) fn report(&self, stats: &ClientStats) {
        if let Some(observer) = &self.observer {
            let run = std::panic::AssertUnwindSafe(|| observer.on_stats(stats));
            if std::panic::catch_unwind(run).is_err() {
                log::error!("the call observer panicked in on_stats");
            }
        }
    }

    /// Records a keepalive round trip.
    pub(crate) fn keepalive_rtt(&self, rtt: Duration) {
        let us = rtt.as_micros().min(u128::from(u64::MAX - 1)) as u64;
        self.keepalive_rtt_us.store(us + 1, Ordering::Relaxed);
    }

    /// The counters (without what the client adds: pending, the
    /// connection's age).
    pub(crate) fn snapshot(&self) -> ClientStats {
        let mut s = ClientStats::default();
        for c in &self.calls {
            let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
            s.calls_started += get(&c.started);
            s.calls_ok += get(&c.ok);
            s.calls_timed_out += get(&c.timeout);
            s.calls_connection_failed += get(&c.connection);
            s.calls_server_error += get(&c.server);
            s.calls_local_error += get(&c.local);
            s.calls_resent += get(&c.resent);
        }
        let c = &self.connects.0;
        s.connects = c.connects.load(Ordering::Relaxed);
        s.connect_failures = c.failures.load(Ordering::Relaxed);
        s.reconnects = c.reconnects.load(Ordering::Relaxed);
        s.bytes_sent = self.sent.0.bytes.load(Ordering::Relaxed);
        s.frames_sent = self.sent.0.frames.load(Ordering::Relaxed);
        s.bytes_received = self.received.0.bytes.load(Ordering::Relaxed);
        s.frames_received = self.received.0.frames.load(Ordering::Relaxed);
        s.last_keepalive_rtt = match self.keepalive_rtt_us.load(Ordering::Relaxed) {
            0 => None,
            n => Some(Duration::from_micros(n - 1)),
        };
        s
    }
}
