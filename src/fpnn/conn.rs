//! One FPNN connection: the socket, the reader thread, the pending table and
//! the writer.
//!
//! # Threads and locks
//!
//! * The **reader thread** (`fpnn-C-reader-N`, C the client's id, N the connection's) owns the read side: it reads,
//!   decrypts, splits the bytes into frames, checks each answer's payload
//!   (well-formed msgpack, a map with string keys; a bad one ends the
//!   connection, as a bad header does) and routes the answer, still
//!   encoded, to its waiter: the blocked caller or the callback-pool thread
//!   that completes the call decodes it. So the reader allocates nothing per
//!   answer, decoding runs in parallel, and each value is built and freed
//!   on one thread. It never runs user code: callbacks and server quests
//!   are handed to the callback pool, blocked callers are woken through
//!   their reply slot.
//! * `pending` maps sequence numbers to waiters. An entry is removed by
//!   exactly one party (the reader on its answer, the timer or the waiting
//!   caller on timeout, or [`Connection::shutdown`]), and whoever removes it
//!   completes it: every call completes exactly once.
//! * `writer` serializes writes; every frame is appended to one buffer (and
//!   encrypted there, in order). It is flushed in three ways:
//!   * a **blocking** call writes itself when no other thread is writing,
//!     taking along the frames others appended before it (so concurrent
//!     senders share one syscall); frames appended during its write are left
//!     to the writer thread. The lowest latency for one call;
//!   * a **callback** call (unless it is small and nearly nothing is in
//!     flight: then it writes itself, as a blocking call), an answer to a
//!     server quest, or a keepalive ping only appends, and wakes the
//!     connection's **writer thread** (`fpnn-C-writer-N`) if it sleeps;
//!   * except that callback calls made from callbacks (the answers of one
//!     read, run as a batch on a callback thread) are held back until the
//!     batch ends: the callback thread then writes them together, as far
//!     as the socket takes them without blocking, and leaves the rest to
//!     the writer thread. Under load, hundreds of frames go out per
//!     syscall with no thread switch. While batches run, the writer thread
//!     checks every millisecond for frames held back through a whole tick
//!     (a callback running long) and writes them (see [`run_batch`]).
//!
//! Lock order: `pending` and `writer` are never held together; neither is
//! held while completing a waiter or while writing to the socket.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use super::codec::{self, Checked, Decoder, Frame, Quest, RawAnswer};
use super::crypto::{Decryptor, Encryptor};
use super::pool::{AnswerCallback, AnsweredCall, Job, Pool};
use super::watch::Watch;
use crate::error::{Error, Result};

/// Locks a mutex, ignoring poisoning (no code that can panic runs under
/// these locks, and the state stays consistent if it ever did).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a blocked caller receives: the answer, still encoded (the caller
/// decodes it), or the error that ended the call.
pub(crate) type Reply = Result<RawAnswer>;

/// Where a blocked caller's reply is put: a one-shot slot.
///
/// A blocked caller first polls it for a moment, or only yields a few
/// times when more callers wait than there are cores (see
/// `client::spin_for_answer`), and then sleeps on it: the slot itself never
/// spins, since with many callers blocked at once spinning would only take
/// the cores from the threads that produce the answers.
#[derive(Default)]
pub(crate) struct ReplySlot {
    state: Mutex<SlotState>,
    filled: Condvar,
}

#[derive(Default)]
struct SlotState {
    reply: Option<Reply>,
    /// The caller sleeps on `filled` (so the filler must wake it).
    sleeping: bool,
}

impl ReplySlot {
    /// A slot and the handle that fills it.
    pub(crate) fn new() -> (Arc<ReplySlot>, ReplySender) {
        let slot = Arc::new(ReplySlot::default());
        (slot.clone(), ReplySender(Some(slot)))
    }

    /// Takes the reply if it is there.
    pub(crate) fn try_take(&self) -> Option<Reply> {
        lock(&self.state).reply.take()
    }

    /// Waits for the reply until `deadline` (`None`: no deadline); `None`
    /// when the deadline passed first.
    pub(crate) fn wait(&self, deadline: Option<Instant>) -> Option<Reply> {
        let mut st = lock(&self.state);
        loop {
            if let Some(reply) = st.reply.take() {
                st.sleeping = false;
                return Some(reply);
            }
            st.sleeping = true;
            st = match deadline {
                None => self.filled.wait(st).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        st.sleeping = false;
                        return None;
                    }
                    self.filled
                        .wait_timeout(st, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
    }
}

/// Fills a [`ReplySlot`] once. Dropped without [`send`](ReplySender::send)
/// it fills the slot with a connection-closed error, so a caller never
/// waits for a reply that cannot come.
pub(crate) struct ReplySender(Option<Arc<ReplySlot>>);

impl ReplySender {
    pub(crate) fn send(mut self, reply: Reply) {
        if let Some(slot) = self.0.take() {
            Self::fill(&slot, reply);
        }
    }

    fn fill(slot: &ReplySlot, reply: Reply) {
        let wake = {
            let mut st = lock(&slot.state);
            st.reply = Some(reply);
            st.sleeping
        };
        if wake {
            slot.filled.notify_one();
        }
    }
}

impl Drop for ReplySender {
    fn drop(&mut self) {
        if let Some(slot) = self.0.take() {
            Self::fill(&slot, Err(Error::closed("connection is closed")));
        }
    }
}

/// Who waits for an answer.
pub(crate) enum Waiter {
    /// A blocked caller; it handles its own timeout.
    Blocking(ReplySender),
    /// A callback; the timer thread expires it at `deadline`.
    Callback {
        cb: AnswerCallback,
        deadline: Instant,
        method: MethodName,
        timeout: Duration,
    },
}

/// A method name kept for error messages: static for the RTM methods,
/// shared for raw calls.
#[derive(Clone, Debug)]
pub(crate) enum MethodName {
    Static(&'static str),
    Shared(Arc<str>),
}

impl MethodName {
    /// The name of a raw call. The first [`MAX_INTERNED`] distinct names
    /// are kept for the life of the process (at most 64 KiB), so that
    /// calling a method over and over neither allocates nor touches a
    /// shared counter; beyond them each call shares its own copy.
    pub(crate) fn shared(name: &str) -> MethodName {
        thread_local! {
            static LAST: std::cell::Cell<Option<&'static str>> =
                const { std::cell::Cell::new(None) };
        }
        if let Ok(Some(last)) = LAST.try_with(|l| l.get()) {
            if last == name {
                return MethodName::Static(last);
            }
        }
        match intern(name) {
            Some(kept) => {
                let _ = LAST.try_with(|l| l.set(Some(kept)));
                MethodName::Static(kept)
            }
            None => MethodName::Shared(Arc::from(name)),
        }
    }
}

/// How many raw-call method names are kept (see [`MethodName::shared`]).
const MAX_INTERNED: usize = 256;

/// The kept copy of `name`, made on first use while fewer than
/// [`MAX_INTERNED`] are kept.
fn intern(name: &str) -> Option<&'static str> {
    static KEPT: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let mut kept = lock(&KEPT);
    if let Some(k) = kept.iter().find(|k| **k == name) {
        return Some(k);
    }
    if kept.len() >= MAX_INTERNED || name.len() > codec::MAX_METHOD_LEN {
        return None;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    kept.push(leaked);
    Some(leaked)
}

impl std::ops::Deref for MethodName {
    type Target = str;
    fn deref(&self) -> &str {
        match self {
            MethodName::Static(s) => s,
            MethodName::Shared(s) => s,
        }
    }
}

impl std::fmt::Display for MethodName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self)
    }
}

/// A frame being built or sent. Its buffer comes from, and returns to, a
/// one-slot cache of the thread that drops it: a thread sending call after
/// call reuses one allocation.
pub(crate) struct FrameBuf(Vec<u8>);

impl FrameBuf {
    /// Buffers larger than this are freed, not cached.
    const KEEP: usize = 64 * 1024;

    thread_local! {
        static SPARE: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
    }

    /// An empty buffer (the thread's cached one when it has one).
    pub(crate) fn new() -> FrameBuf {
        let mut buf = Self::SPARE.try_with(|s| s.take()).unwrap_or_default();
        if buf.capacity() == 0 {
            buf.reserve(128);
        }
        FrameBuf(buf)
    }
}

impl Drop for FrameBuf {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.0);
        if buf.capacity() <= Self::KEEP {
            buf.clear();
            let _ = Self::SPARE.try_with(|s| s.set(buf));
        }
    }
}

impl std::ops::Deref for FrameBuf {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl std::ops::DerefMut for FrameBuf {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

/// Hashes sequence numbers (sequential `u32`s) with one multiplication: the
/// pending table is on every call's path, and its keys are not chosen by the
/// peer (an answer for an unknown seq is only a failed lookup).
#[derive(Default)]
pub(crate) struct SeqHasher(u64);

impl Hasher for SeqHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

struct Pending {
    map: HashMap<u32, Waiter, BuildHasherDefault<SeqHasher>>,
    /// The number of callback entries (the ones the timer expires).
    callbacks: usize,
    /// No callback deadline is earlier than this (a lower bound: entries
    /// completed since do not raise it). `None`: no callback pending.
    earliest: Option<Instant>,
    /// Set once the connection is shut down; no entry is added after it.
    closed: Option<Error>,
    /// Draws the sequence numbers (under the same lock as the table).
    seqs: SeqCounter,
}

impl Pending {
    fn remove(&mut self, seq: u32) -> Option<Waiter> {
        let w = self.map.remove(&seq)?;
        if matches!(w, Waiter::Callback { .. }) {
            self.callbacks -= 1;
        }
        Some(w)
    }
}

struct WriteState {
    /// Frames waiting to be written (already encrypted when encrypting).
    buf: Vec<u8>,
    /// An empty buffer kept to swap with `buf`, so its capacity is reused.
    spare: Vec<u8>,
    /// A thread is writing `spare`'s former contents right now.
    writing: bool,
    /// The writer thread sleeps, waiting for frames.
    writer_idle: bool,
    /// Running batches of callbacks that queued frames here (see
    /// [`run_batch`]); their frames wait for the batch to end.
    open_batches: usize,
    /// Write what is buffered without waiting for open batches: a batch
    /// ended, or a frame came from outside a batch.
    flush_now: bool,
    /// The writer thread sleeps with a timeout (it checks for held-back
    /// frames every [`TICK`]), so it need not be woken to hold frames back.
    ticking: bool,
    /// Writes made so far (to tell frames held back for a whole tick).
    flushes: u64,
    /// Frames appended since the last write began (for the counters).
    frames: usize,
    closed: bool,
    encryptor: Option<Encryptor>,
}

/// Handles a quest pushed by the server.
pub(crate) type OnQuest = Arc<dyn Fn(&Arc<Connection>, Quest) + Send + Sync>;
/// Told once when a connection ends.
pub(crate) type OnClosed = Arc<dyn Fn(&Arc<Connection>, &Error) + Send + Sync>;

/// What the connection needs from its client.
pub(crate) struct ConnContext {
    pub pool: Arc<Pool>,
    /// Wakes the timer thread when a callback deadline earlier than the
    /// one it sleeps until is added.
    pub timer_wake: Sender<()>,
    /// Handles server quests (runs on the pool).
    pub on_quest: OnQuest,
    /// Told once when the connection ends (runs on the thread that noticed).
    pub on_closed: OnClosed,
    pub max_recv_payload: usize,
    /// A monotonic origin for `last_recv`.
    pub epoch: Instant,
    /// The client's id, for thread names.
    pub client_id: u64,
    /// Counts the client's pending calls (see [`Limiter`]); shared by the
    /// client's file gates.
    pub limiter: Arc<Limiter>,
    /// The client's counters (traffic is counted here).
    pub watch: Arc<Watch>,
}

/// The cap on a client's pending calls
/// ([`ClientConfig::max_pending`](super::ClientConfig::max_pending)).
///
/// Every call holds one unit from the moment it is admitted (before it is
/// queued or sent) until it leaves the pending table or the connect queue:
/// whoever removes an entry from the table releases its unit (the table's
/// owners do it in batches: one atomic operation per read, not per call).
/// The fast path is one atomic add; a blocking caller at the cap sleeps on
/// a condition variable that releases only touch while someone sleeps.
pub(crate) struct Limiter {
    count: AtomicUsize,
    /// The highest `count` seen (raised only when passed: a load per call).
    peak: AtomicUsize,
    max: usize,
    /// Blocking callers waiting for room.
    sleepers: AtomicUsize,
    room: Mutex<()>,
    room_cv: Condvar,
}

impl Limiter {
    pub(crate) fn new(max: usize) -> Limiter {
        Limiter {
            count: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            max: max.max(1),
            sleepers: AtomicUsize::new(0),
            room: Mutex::new(()),
            room_cv: Condvar::new(),
        }
    }

    /// The configured cap.
    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// The calls pending now.
    pub(crate) fn count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// The most units taken at once so far.
    pub(crate) fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    #[inline]
    fn note(&self, count: usize) {
        if count > self.peak.load(Ordering::Relaxed) {
            self.peak.fetch_max(count, Ordering::Relaxed);
        }
    }

    /// Takes a unit if one is free.
    pub(crate) fn try_acquire(&self) -> bool {
        let before = self.count.fetch_add(1, Ordering::SeqCst);
        if before < self.max {
            self.note(before + 1);
            true
        } else {
            // Undoes this thread's own add: no room was made, nobody to
            // wake (and a sleeper calls this holding `room`).
            self.count.fetch_sub(1, Ordering::SeqCst);
            false
        }
    }

    /// Takes a unit regardless of the cap (the client's own calls: the key
    /// exchange, keepalive pings, the connect hooks' calls).
    pub(crate) fn force_acquire(&self) {
        let before = self.count.fetch_add(1, Ordering::SeqCst);
        self.note(before + 1);
    }

    /// Takes a unit, waiting for one until `deadline`. False when the
    /// deadline passed first.
    pub(crate) fn acquire_until(&self, deadline: Instant) -> bool {
        if self.try_acquire() {
            return true;
        }
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        let mut guard = lock(&self.room);
        let got = loop {
            if self.try_acquire() {
                break true;
            }
            let now = Instant::now();
            if now >= deadline {
                break false;
            }
            guard = self
                .room_cv
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        };
        drop(guard);
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
        got
    }

    /// Gives back `n` units.
    pub(crate) fn release(&self, n: usize) {
        if n == 0 {
            return;
        }
        self.count.fetch_sub(n, Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            // Under the lock, so that a sleeper between its failed attempt
            // and its wait cannot miss the wake-up.
            let _guard = lock(&self.room);
            self.room_cv.notify_all();
        }
    }
}

/// One TCP connection to an FPNN server.
pub(crate) struct Connection {
    pub id: u64,
    pub endpoint: String,
    stream: TcpStream,
    pending: Mutex<Pending>,
    writer: Mutex<WriteState>,
    /// Wakes the writer thread.
    writer_cv: Condvar,
    closed: AtomicBool,
    /// Milliseconds since `ctx.epoch` when the last frame arrived.
    last_recv_ms: AtomicU64,
    /// Milliseconds since `ctx.epoch` when the last keepalive ping went out.
    last_ping_ms: AtomicU64,
    /// Set once the client made this its current connection.
    published: AtomicBool,
    threads: Mutex<Vec<JoinHandle<()>>>,
    pub(crate) ctx: Arc<ConnContext>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.id)
            .field("endpoint", &self.endpoint)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Connection {
    /// Wraps a connected stream and starts its reader and writer threads.
    /// `decryptor` decrypts everything received from the first byte on; the
    /// encryptor is installed later with [`Connection::enable_encryption`],
    /// after the clear-text `*key` frame is written.
    pub(crate) fn start(
        id: u64,
        endpoint: String,
        stream: TcpStream,
        decryptor: Option<Decryptor>,
        ctx: Arc<ConnContext>,
    ) -> Result<Arc<Connection>> {
        let read_stream = stream.try_clone()?;
        let conn = Arc::new(Connection {
            id,
            endpoint,
            stream,
            pending: Mutex::new(Pending {
                map: HashMap::default(),
                callbacks: 0,
                earliest: None,
                closed: None,
                seqs: SeqCounter::new(),
            }),
            writer: Mutex::new(WriteState {
                buf: Vec::new(),
                spare: Vec::new(),
                writing: false,
                writer_idle: false,
                open_batches: 0,
                flush_now: false,
                ticking: false,
                flushes: 0,
                frames: 0,
                closed: false,
                encryptor: None,
            }),
            writer_cv: Condvar::new(),
            closed: AtomicBool::new(false),
            last_recv_ms: AtomicU64::new(0),
            last_ping_ms: AtomicU64::new(0),
            published: AtomicBool::new(false),
            threads: Mutex::new(Vec::new()),
            ctx,
        });
        conn.touch();
        conn.mark_ping();
        let reader_conn = conn.clone();
        let reader = std::thread::Builder::new()
            .name(format!("fpnn-{}-reader-{id}", conn.ctx.client_id))
            .spawn(move || reader_loop(reader_conn, read_stream, decryptor))?;
        lock(&conn.threads).push(reader);
        let writer_conn = conn.clone();
        let writer = std::thread::Builder::new()
            .name(format!("fpnn-{}-writer-{id}", conn.ctx.client_id))
            .spawn(move || writer_loop(writer_conn));
        match writer {
            Ok(w) => lock(&conn.threads).push(w),
            Err(e) => {
                conn.shutdown(Error::from(e));
                conn.join_threads();
                return Err(Error::closed("cannot start the writer thread"));
            }
        }
        Ok(conn)
    }

    /// Installs the send-side cipher: every frame written after this call is
    /// encrypted.
    pub(crate) fn enable_encryption(&self, encryptor: Encryptor) {
        lock(&self.writer).encryptor = Some(encryptor);
    }

    /// True once the connection has been shut down.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Marks the connection as the client's current one.
    pub(crate) fn publish(&self) {
        self.published.store(true, Ordering::Release);
    }

    /// True once the client made this its current connection.
    pub(crate) fn is_published(&self) -> bool {
        self.published.load(Ordering::Acquire)
    }

    fn now_ms(&self) -> u64 {
        self.ctx.epoch.elapsed().as_millis() as u64
    }

    /// Records that a keepalive ping was sent now.
    pub(crate) fn mark_ping(&self) {
        self.last_ping_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// The time since the last keepalive ping (or since the connection was
    /// made).
    pub(crate) fn since_last_ping(&self) -> Duration {
        let last = self.last_ping_ms.load(Ordering::Relaxed);
        Duration::from_millis(self.now_ms().saturating_sub(last))
    }

    fn touch(&self) {
        let ms = self.ctx.epoch.elapsed().as_millis() as u64;
        self.last_recv_ms.store(ms, Ordering::Relaxed);
    }

    /// The time since the last frame (or byte) arrived.
    pub(crate) fn idle_for(&self) -> Duration {
        let now = self.ctx.epoch.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_recv_ms.load(Ordering::Relaxed)))
    }

    /// Sends a two-way quest frame (built by `codec::begin_quest` +
    /// payload + `finish_frame`, without its seq) and registers `waiter`.
    /// A blocking waiter's frame is written by this thread (see the module
    /// docs); so is a small callback's when nearly nothing is in flight,
    /// else it is queued for the writer thread.
    ///
    /// On success the waiter will be completed exactly once by the reader,
    /// a timeout or a shutdown. On failure before the quest was registered
    /// or when the waiter could be taken back, the waiter is returned with
    /// the error and the caller completes it.
    ///
    /// The caller took a [`Limiter`] unit for the waiter; from here on it
    /// is released when the waiter leaves the table (or is returned).
    pub(crate) fn send_two_way(
        self: &Arc<Self>,
        frame: &mut [u8],
        waiter: Waiter,
    ) -> std::result::Result<u32, (Error, Option<Waiter>)> {
        let blocking = matches!(waiter, Waiter::Blocking(_));
        let (seq, direct) = {
            let mut p = lock(&self.pending);
            if let Some(err) = &p.closed {
                let err = err.clone();
                drop(p);
                self.ctx.limiter.release(1);
                return Err((err, Some(waiter)));
            }
            // A small callback call made while almost nothing is in flight
            // is written by the calling thread too, without blocking:
            // waking the writer thread would only add a thread switch to
            // its latency.
            let direct = blocking
                || (p.map.len() < DIRECT_CALLBACKS_BELOW && frame.len() <= DIRECT_CALLBACK_BYTES);
            let Pending { map, seqs, .. } = &mut *p;
            let seq = seqs.next(|seq| map.contains_key(&seq));
            if let Waiter::Callback { deadline, .. } = &waiter {
                p.callbacks += 1;
                if p.earliest.is_none_or(|e| *deadline < e) {
                    p.earliest = Some(*deadline);
                    let _ = self.ctx.timer_wake.try_send(());
                }
            }
            p.map.insert(seq, waiter);
            (seq, direct)
        };
        codec::set_seq(frame, seq);
        let sent = if blocking {
            self.write_frame(frame)
        } else if direct {
            self.write_frame_without_blocking(frame)
        } else {
            self.queue_frame(frame)
        };
        if let Err(e) = sent {
            let back = self.take(seq);
            return Err((e, back));
        }
        Ok(seq)
    }

    /// Writes a one-way quest now (from the calling thread).
    pub(crate) fn send_frame(self: &Arc<Self>, frame: &[u8]) -> Result<()> {
        self.write_frame(frame)
    }

    /// Queues a frame (an answer to a server quest, a one-way quest) for
    /// the writer thread.
    pub(crate) fn queue_frame(self: &Arc<Self>, frame: &[u8]) -> Result<()> {
        let mut w = lock(&self.writer);
        if !Self::append(&mut w, frame) {
            drop(w);
            return Err(self.closed_error());
        }
        let wake = match join_batch(self) {
            // Held back for the end of the batch (see `run_batch`); the
            // writer must be awake or ticking to bound the wait.
            Some(first) => {
                if first {
                    w.open_batches += 1;
                }
                w.buf.len() >= COALESCE_BYTES || !w.ticking
            }
            None => {
                w.flush_now = true;
                true
            }
        };
        if wake && !w.writing && w.writer_idle {
            w.writer_idle = false;
            self.writer_cv.notify_one();
        }
        Ok(())
    }

    /// A batch of callbacks that queued frames here has ended: its frames
    /// (and any others buffered) go out now, written by this thread as far
    /// as the socket takes them without blocking (a callback thread never
    /// waits for the peer); the writer thread writes the rest.
    fn batch_done(self: &Arc<Self>) {
        let mut w = lock(&self.writer);
        w.open_batches = w.open_batches.saturating_sub(1);
        if w.open_batches > 0 && w.buf.len() < COALESCE_BYTES {
            // Another batch still runs: its end writes these frames too.
            return;
        }
        w.flush_now = true;
        self.write_out_without_blocking(w);
    }

    /// Appends a frame and writes the buffer from this thread as far as
    /// the socket takes it without blocking, leaving the rest to the
    /// writer thread: a callback call never waits for the peer.
    fn write_frame_without_blocking(self: &Arc<Self>, frame: &[u8]) -> Result<()> {
        let mut w = lock(&self.writer);
        if !Self::append(&mut w, frame) {
            drop(w);
            return Err(self.closed_error());
        }
        w.flush_now = true;
        self.write_out_without_blocking(w);
        Ok(())
    }

    /// Writes what is buffered from this thread as far as the socket takes
    /// it without blocking, unless another thread is writing (it or the
    /// writer thread takes the buffer along: `flush_now` is set). What the
    /// socket does not take is left to the writer thread.
    fn write_out_without_blocking(self: &Arc<Self>, w: MutexGuard<'_, WriteState>) {
        if w.writing || w.buf.is_empty() {
            return;
        }
        let (mut w, result) = self.write_out(w, false);
        match result {
            Ok(()) => self.leave_rest_to_writer(&mut w),
            Err(e) => {
                drop(w);
                self.shutdown(Error::lost(e));
            }
        }
    }

    /// Wakes the writer thread, if it sleeps, for frames left in the buffer.
    fn leave_rest_to_writer(&self, w: &mut WriteState) {
        if !w.buf.is_empty() && w.writer_idle {
            w.flush_now = true;
            w.writer_idle = false;
            self.writer_cv.notify_one();
        }
    }

    /// Removes a pending entry (for a caller whose wait timed out). `None`
    /// means someone else already took it and is completing it.
    pub(crate) fn take(&self, seq: u32) -> Option<Waiter> {
        let w = lock(&self.pending).remove(seq);
        if w.is_some() {
            self.ctx.limiter.release(1);
        }
        w
    }

    /// No callback deadline is earlier than this (`None`: no callback
    /// pending).
    pub(crate) fn earliest_deadline(&self) -> Option<Instant> {
        lock(&self.pending).earliest
    }

    /// Completes every callback whose deadline has passed with a timeout
    /// error. Scans the table only when the earliest deadline has come.
    pub(crate) fn expire(&self, now: Instant) {
        let mut expired = Vec::new();
        {
            let mut p = lock(&self.pending);
            match p.earliest {
                Some(e) if e <= now => {}
                _ => return,
            }
            let mut next: Option<Instant> = None;
            let mut due = Vec::new();
            for (seq, w) in &p.map {
                if let Waiter::Callback { deadline, .. } = w {
                    if *deadline <= now {
                        due.push(*seq);
                    } else if next.is_none_or(|n| *deadline < n) {
                        next = Some(*deadline);
                    }
                }
            }
            for seq in due {
                if let Some(w) = p.remove(seq) {
                    expired.push(w);
                }
            }
            p.earliest = next;
        }
        self.ctx.limiter.release(expired.len());
        for w in expired {
            if let Waiter::Callback {
                cb,
                method,
                timeout,
                ..
            } = w
            {
                self.ctx.pool.fail(
                    cb,
                    Error::Timeout {
                        method: method.to_string(),
                        timeout,
                    },
                );
            }
        }
    }

    /// Appends one frame to the write buffer (encrypting it when the
    /// connection is encrypted). False once the connection is closed (the
    /// caller reports [`closed_error`](Self::closed_error) after releasing
    /// the writer lock: `pending` and `writer` are never held together).
    fn append(w: &mut WriteState, frame: &[u8]) -> bool {
        if w.closed {
            return false;
        }
        let WriteState { buf, encryptor, .. } = w;
        match encryptor {
            Some(enc) => enc.encrypt_frame(frame, buf),
            None => buf.extend_from_slice(frame),
        }
        w.frames += 1;
        true
    }

    /// Writes out what is buffered from this thread, without holding the
    /// lock during the write (`writing` keeps other writers out meanwhile;
    /// the caller checked that none is writing). With `wait`, everything is
    /// written; without, as much as the socket takes at once, and the rest
    /// is put back ahead of what was queued meanwhile. Returns the relocked
    /// state. On an error the buffer is dropped (the connection is about to
    /// close).
    fn write_out<'a>(
        &'a self,
        mut w: MutexGuard<'a, WriteState>,
        wait: bool,
    ) -> (MutexGuard<'a, WriteState>, std::io::Result<()>) {
        w.writing = true;
        let mut data = std::mem::take(&mut w.spare);
        std::mem::swap(&mut data, &mut w.buf);
        w.flush_now = false;
        w.flushes += 1;
        let frames = std::mem::take(&mut w.frames);
        drop(w);
        let result = if wait {
            (&self.stream).write_all(&data).map(|()| data.len())
        } else {
            send_without_blocking(&self.stream, &data)
        };
        if let Ok(sent) = &result {
            self.ctx.watch.sent.0.add(*sent, frames);
        }
        let mut w = lock(&self.writer);
        w.writing = false;
        match result {
            Ok(sent) if sent < data.len() => {
                data.drain(..sent);
                data.extend_from_slice(&w.buf);
                std::mem::swap(&mut w.buf, &mut data);
                w.flush_now = true;
            }
            Ok(_) => {}
            Err(_) => w.buf.clear(),
        }
        data.clear();
        if data.capacity() > 1 << 20 {
            data.shrink_to(64 * 1024);
        }
        w.spare = data;
        (w, result.map(drop))
    }

    /// Writes a frame from the calling thread, unless another thread is
    /// writing: then that thread takes it along. Frames appended by others
    /// during this thread's write are left to the writer thread, so a
    /// blocking caller writes once and goes on to wait for its answer.
    fn write_frame(self: &Arc<Self>, frame: &[u8]) -> Result<()> {
        let mut w = lock(&self.writer);
        if !Self::append(&mut w, frame) {
            drop(w);
            return Err(self.closed_error());
        }
        if w.writing {
            // The writing thread (or the writer thread after it) takes it
            // along, without waiting for batches of callbacks.
            w.flush_now = true;
            return Ok(());
        }
        let (mut w, result) = self.write_out(w, true);
        if let Err(e) = result {
            drop(w);
            let err = Error::lost(e);
            self.shutdown(err.clone());
            return Err(err);
        }
        self.leave_rest_to_writer(&mut w);
        Ok(())
    }

    fn closed_error(&self) -> Error {
        lock(&self.pending)
            .closed
            .clone()
            .unwrap_or_else(|| Error::closed("connection is closed"))
    }

    /// Closes the connection: shuts the socket down and completes every
    /// pending call with `err`. Only the first call has an effect.
    pub(crate) fn shutdown(self: &Arc<Self>, err: Error) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        log::debug!("connection {} to {} closed: {err}", self.id, self.endpoint);
        let _ = self.stream.shutdown(Shutdown::Both);
        {
            let mut w = lock(&self.writer);
            w.closed = true;
            w.buf = Vec::new();
            self.writer_cv.notify_all();
        }
        let drained = {
            let mut p = lock(&self.pending);
            p.closed = Some(err.clone());
            p.callbacks = 0;
            p.earliest = None;
            std::mem::take(&mut p.map)
        };
        self.ctx.limiter.release(drained.len());
        for (_, waiter) in drained {
            self.fail(waiter, err.clone());
        }
        (self.ctx.on_closed)(self, &err);
    }

    /// Waits for the reader and writer threads to end (after
    /// [`shutdown`](Self::shutdown)). A thread never joins itself.
    pub(crate) fn join_threads(&self) {
        let threads = std::mem::take(&mut *lock(&self.threads));
        let me = std::thread::current().id();
        for h in threads {
            if h.thread().id() != me {
                let _ = h.join();
            }
        }
    }

    /// Completes a waiter with an error.
    fn fail(&self, waiter: Waiter, err: Error) {
        match waiter {
            Waiter::Blocking(tx) => tx.send(Err(err)),
            Waiter::Callback { cb, .. } => self.ctx.pool.fail(cb, err),
        }
    }

    /// Routes the frames of one read (`checked`, whose answer payloads are
    /// ranges of `bytes`): takes every answered waiter out of the pending
    /// table under one lock, hands blocked callers their answer, and the
    /// completed callbacks to the pool together. Answers travel still
    /// encoded, sharing one copy of their bytes: whoever completes the call
    /// decodes it.
    fn dispatch(self: &Arc<Self>, bytes: &[u8], checked: &mut Vec<Checked>) {
        let span = checked
            .iter()
            .fold(None, |span: Option<Range<usize>>, frame| match frame {
                Checked::Answer { payload, .. } => Some(match span {
                    None => payload.clone(),
                    Some(s) => s.start.min(payload.start)..s.end.max(payload.end),
                }),
                Checked::Quest(_) => span,
            });
        let (shared, base): (Arc<[u8]>, usize) = match span {
            Some(s) => (Arc::from(&bytes[s.clone()]), s.start),
            None => (Arc::from(&[][..]), 0),
        };
        let mut batch = Vec::with_capacity(checked.len());
        let mut blocked = Vec::new();
        let mut quests = Vec::new();
        let mut unknown = Vec::new();
        {
            let mut p = lock(&self.pending);
            for frame in checked.drain(..) {
                let (seq, status, payload) = match frame {
                    Checked::Answer {
                        seq,
                        status,
                        payload,
                    } => (seq, status, payload),
                    Checked::Quest(q) => {
                        quests.push(q);
                        continue;
                    }
                };
                let answer = || {
                    let local = payload.start - base..payload.end - base;
                    RawAnswer::new(seq, status, shared.clone(), local)
                };
                match p.remove(seq) {
                    Some(Waiter::Callback { cb, method, .. }) => batch.push(AnsweredCall {
                        cb,
                        method,
                        answer: answer(),
                    }),
                    Some(Waiter::Blocking(tx)) => blocked.push((tx, answer())),
                    None => unknown.push(seq),
                }
            }
        }
        self.ctx.limiter.release(batch.len() + blocked.len());
        for (tx, answer) in blocked {
            tx.send(Ok(answer));
        }
        self.ctx.pool.complete_all(batch);
        for seq in unknown {
            log::debug!(
                "connection {}: dropping an answer for unknown seq {seq}",
                self.id
            );
        }
        for quest in quests {
            let conn = self.clone();
            let on_quest = self.ctx.on_quest.clone();
            self.ctx
                .pool
                .submit(Job::Task(Box::new(move || on_quest(&conn, quest))));
        }
    }
}

/// Draws sequence numbers: 1, 2, ... up to 0x7FFFFFFF (`docs/protocol.md`, section 1),
/// then 1 again (0 is never used). After the first wrap, numbers still in
/// flight are skipped (before it, none can be).
struct SeqCounter {
    next: u32,
    wrapped: bool,
}

impl SeqCounter {
    fn new() -> SeqCounter {
        SeqCounter {
            next: 1,
            wrapped: false,
        }
    }

    fn next(&mut self, in_flight: impl Fn(u32) -> bool) -> u32 {
        loop {
            let seq = self.next & 0x7FFF_FFFF;
            self.next = self.next.wrapping_add(1);
            if seq == 0 {
                self.wrapped = true;
            } else if !self.wrapped || !in_flight(seq) {
                return seq;
            }
        }
    }
}

/// A callback call is written by the calling thread when fewer calls than
/// this are in flight, else queued for the writer thread.
const DIRECT_CALLBACKS_BELOW: usize = 2;
/// ... and when its frame is at most this large.
const DIRECT_CALLBACK_BYTES: usize = 16 * 1024;

/// How often the writer thread checks for frames held back (see
/// [`run_batch`]) while batches of callbacks run; frames held back for a
/// whole tick are written at the next one.
const TICK: Duration = Duration::from_millis(1);
/// Ticks the writer thread goes on ticking after the last batch that held
/// frames back, so that under steady load no batch has to wake it.
const LINGER_TICKS: u32 = 20;
/// Frames held back are written as soon as this many bytes are buffered.
const COALESCE_BYTES: usize = 16 * 1024;

thread_local! {
    /// The connections the batch of callbacks running on this thread
    /// queued frames on; `None` outside a batch.
    static BATCH: std::cell::RefCell<Option<Vec<Arc<Connection>>>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs a batch of callbacks (the answers of one read) on this thread.
///
/// Each callback typically makes its next call, and the frames of a batch
/// are best written together, in one syscall: callback calls queued during
/// the batch are held back until it ends, or until [`COALESCE_BYTES`] are
/// buffered. A callback that runs long cannot hold the frames queued
/// before it for more than about two [`TICK`]s: the writer thread writes
/// frames that were held back for a whole tick. (A blocking call made from
/// a callback writes everything buffered at once.)
pub(crate) fn run_batch(body: impl FnOnce()) {
    struct End(Option<Vec<Arc<Connection>>>);
    impl Drop for End {
        fn drop(&mut self) {
            let outer = self.0.take();
            let joined = BATCH
                .try_with(|b| std::mem::replace(&mut *b.borrow_mut(), outer))
                .ok()
                .flatten();
            for conn in joined.into_iter().flatten() {
                conn.batch_done();
            }
        }
    }
    let outer = BATCH
        .try_with(|b| b.borrow_mut().replace(Vec::new()))
        .ok()
        .flatten();
    let _end = End(outer);
    body();
}

/// Flags of a send that does not block (`None`: not supported here, the
/// writer thread does all the writing). No SIGPIPE on a closed peer (as
/// `TcpStream::write`): `MSG_NOSIGNAL` where it exists; on Apple systems
/// the standard library sets `SO_NOSIGPIPE` on its sockets instead.
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly",
))]
const SEND_FLAGS: Option<libc::c_int> = Some(libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL);
#[cfg(target_vendor = "apple")]
const SEND_FLAGS: Option<libc::c_int> = Some(libc::MSG_DONTWAIT);
#[cfg(all(
    unix,
    not(any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "dragonfly",
        target_vendor = "apple",
    ))
))]
const SEND_FLAGS: Option<libc::c_int> = None;

/// Writes as much of `data` as the socket takes without blocking; returns
/// how much that was.
#[cfg(unix)]
fn send_without_blocking(stream: &TcpStream, data: &[u8]) -> std::io::Result<usize> {
    let Some(flags) = SEND_FLAGS else {
        return Ok(0);
    };
    let socket = socket2::SockRef::from(stream);
    let mut sent = 0;
    while sent < data.len() {
        match socket.send_with_flags(&data[sent..], flags) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => sent += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(sent)
}

/// Without a non-blocking send, everything is left to the writer thread.
#[cfg(not(unix))]
fn send_without_blocking(_stream: &TcpStream, _data: &[u8]) -> std::io::Result<usize> {
    Ok(0)
}

/// Records `conn` in the batch running on this thread: `None` outside a
/// batch, else whether `conn` is new in it.
fn join_batch(conn: &Arc<Connection>) -> Option<bool> {
    BATCH
        .try_with(|b| {
            let mut b = b.borrow_mut();
            let list = b.as_mut()?;
            if list.iter().any(|c| Arc::ptr_eq(c, conn)) {
                return Some(false);
            }
            list.push(conn.clone());
            Some(true)
        })
        .ok()
        .flatten()
}

/// The writer thread: flushes what callback calls and answers queued.
fn writer_loop(conn: Arc<Connection>) {
    let mut w = lock(&conn.writer);
    // Ticks since the last one with a batch open; the flush count at the
    // last tick that found frames held back.
    let mut quiet_ticks = 0;
    let mut held_at: Option<u64> = None;
    loop {
        if w.closed {
            return;
        }
        if !w.buf.is_empty()
            && !w.writing
            && (w.flush_now || w.open_batches == 0 || w.buf.len() >= COALESCE_BYTES)
        {
            let (guard, result) = conn.write_out(w, true);
            w = guard;
            if let Err(e) = result {
                drop(w);
                conn.shutdown(Error::lost(e));
                return;
            }
            continue;
        }
        if w.open_batches > 0 {
            quiet_ticks = 0;
        }
        w.writer_idle = true;
        w.ticking = quiet_ticks < LINGER_TICKS;
        let timed_out = if w.ticking {
            let (guard, result) = conn
                .writer_cv
                .wait_timeout(w, TICK)
                .unwrap_or_else(|e| e.into_inner());
            w = guard;
            result.timed_out()
        } else {
            w = conn.writer_cv.wait(w).unwrap_or_else(|e| e.into_inner());
            false
        };
        w.writer_idle = false;
        w.ticking = false;
        if timed_out {
            quiet_ticks += 1;
            // Frames held back through a whole tick (a batch running long)
            // go out now.
            if w.buf.is_empty() || w.writing {
                held_at = None;
            } else if held_at == Some(w.flushes) {
                w.flush_now = true;
            } else {
                held_at = Some(w.flushes);
            }
        }
    }
}

fn reader_loop(conn: Arc<Connection>, mut stream: TcpStream, mut decryptor: Option<Decryptor>) {
    let mut raw = vec![0u8; 64 * 1024];
    let mut plain = Vec::new();
    let mut decoder = Decoder::new(conn.ctx.max_recv_payload);
    let mut checked = Vec::new();
    // On an encrypted connection, the first bytes are checked for a clear
    // FPNN frame: a server that does not encrypt answers the key exchange
    // in clear (typically with an error), which decrypted would only look
    // like garbage.
    let mut probe: Option<Vec<u8>> = decryptor.as_ref().map(|_| Vec::new());
    let err = loop {
        let n = match stream.read(&mut raw) {
            Ok(0) => break Error::closed("the server closed the connection"),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                if conn.is_closed() {
                    break Error::closed("connection is closed");
                }
                break Error::lost(e);
            }
        };
        conn.touch();
        conn.ctx.watch.received.0.add(n, 0);
        let mut input = &raw[..n];
        let probed;
        if let Some(buf) = probe.as_mut() {
            buf.extend_from_slice(input);
            if buf.len() < codec::MAGIC.len() {
                continue;
            }
            probed = probe.take().unwrap_or_default();
            if probed.starts_with(&codec::MAGIC) {
                break clear_answer_error(&probed, conn.ctx.max_recv_payload);
            }
            input = &probed;
        }
        match decryptor.as_mut() {
            Some(d) => {
                plain.clear();
                if let Err(e) = d.decrypt(input, &mut plain) {
                    break e;
                }
                decoder.feed(&plain);
            }
            None => decoder.feed(input),
        }
        let failed = loop {
            match decoder.next_checked() {
                Ok(Some(frame)) => checked.push(frame),
                Ok(None) => break None,
                Err(e) => {
                    log::warn!("connection {} to {}: {e}", conn.id, conn.endpoint);
                    break Some(Error::Protocol(e));
                }
            }
        };
        // The frames before a bad one are still delivered.
        if !checked.is_empty() {
            conn.ctx.watch.received.0.add(0, checked.len());
            conn.dispatch(decoder.bytes(), &mut checked);
        }
        if let Some(e) = failed {
            break e;
        }
    };
    conn.shutdown(err);
}

/// The error for a server that answered the key exchange in clear,
/// including its own error when the clear bytes hold a complete one.
fn clear_answer_error(bytes: &[u8], max_payload: usize) -> Error {
    let mut decoder = Decoder::new(max_payload);
    decoder.feed(bytes);
    let detail = match decoder.next_frame() {
        Ok(Some(Frame::Answer(answer))) => match answer.into_result() {
            Err(e) => format!(" ({e})"),
            Ok(_) => String::new(),
        },
        _ => String::new(),
    };
    Error::Encryption(format!(
        "the server answered the key exchange unencrypted{detail}: it does not encrypt this connection"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_start_at_1_skip_0_and_stay_below_2_31() {
        let mut c = SeqCounter::new();
        // Before the first wrap nothing can be in flight twice.
        assert_eq!(c.next(|_| true), 1);
        assert_eq!(c.next(|_| true), 2);
        let mut c = SeqCounter {
            next: 0x7FFF_FFFE,
            wrapped: false,
        };
        assert_eq!(c.next(|_| false), 0x7FFF_FFFE);
        assert_eq!(c.next(|_| false), 0x7FFF_FFFF);
        // 0x80000000 masks to 0, which is skipped.
        assert_eq!(c.next(|_| false), 1);
        assert!(c.wrapped);
        // Numbers still in flight after a wrap are skipped.
        assert_eq!(c.next(|s| s == 2 || s == 3), 4);
        // And after the 32-bit counter itself wraps.
        let mut c = SeqCounter {
            next: u32::MAX,
            wrapped: true,
        };
        assert_eq!(c.next(|_| false), 0x7FFF_FFFF);
        assert_eq!(c.next(|s| s == 1), 2);
    }

    #[test]
    fn the_seq_hasher_spreads_sequential_keys() {
        let tags: std::collections::HashSet<u64> = (1u32..=128)
            .map(|seq| {
                let mut h = SeqHasher::default();
                h.write_u32(seq);
                h.finish() >> 57
            })
            .collect();
        // hashbrown keys its control bytes on the top 7 bits.
        assert!(
            tags.len() > 64,
            "only {} distinct top-7-bit tags",
            tags.len()
        );
    }

    #[test]
    fn a_reply_slot_delivers_once_and_never_strands_its_caller() {
        // Filled before the wait.
        let (slot, tx) = ReplySlot::new();
        tx.send(Err(Error::ClientClosed));
        assert!(matches!(slot.try_take(), Some(Err(Error::ClientClosed))));
        assert!(slot.try_take().is_none(), "taken once");
        // A deadline passes with nothing sent.
        let (slot, tx) = ReplySlot::new();
        let t = Instant::now();
        assert!(slot.wait(Some(t + Duration::from_millis(30))).is_none());
        assert!(t.elapsed() >= Duration::from_millis(30));
        // A sleeping caller is woken by a send from another thread.
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            tx.send(Err(Error::ClientClosed));
        });
        let got = slot.wait(Some(Instant::now() + Duration::from_secs(10)));
        assert!(matches!(got, Some(Err(Error::ClientClosed))), "{got:?}");
        sender.join().unwrap();
        // A sender dropped without sending fills the slot with an error.
        let (slot, tx) = ReplySlot::new();
        std::thread::spawn(move || drop(tx)).join().unwrap();
        assert!(matches!(
            slot.wait(None),
            Some(Err(Error::ConnectionClosed { .. }))
        ));
    }
}
