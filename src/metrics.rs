//! Metrics through the [`metrics`](https://docs.rs/metrics) facade
//! (feature `metrics`): install [`MetricsObserver`] as a client's
//! [`observer`](crate::ClientConfig::observer), and whichever exporter the
//! process uses (Prometheus, StatsD, ...) sees every call.
//!
//! ```
//! use rtm_server_sdk::metrics::MetricsObserver;
//! use rtm_server_sdk::ClientConfig;
//!
//! let config = ClientConfig::default().observer(MetricsObserver::new());
//! # let _ = config;
//! ```
//!
//! The metrics, named once here (Prometheus conventions: base units,
//! `_total` for counters, `_seconds` for durations):
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | [`CALLS`] `rtm_client_calls_total` | counter | `method`, `outcome` | completed calls; `outcome` is `ok`, `timeout`, `connection`, `server` or `local` ([`ErrorKind`]) |
//! | [`CALL_DURATION`] `rtm_client_call_duration_seconds` | histogram | `method` | time from the call to its completion |
//! | [`RESENT`] `rtm_client_calls_resent_total` | counter | `method` | calls resent once under the RTM resend rule |
//! | [`PENDING`] `rtm_client_pending_calls` | gauge | | calls pending now |
//! | [`CONNECTED`] `rtm_client_connected` | gauge | | 1 while the gateway connection is up, else 0 |
//! | [`CONNECTS`] `rtm_client_connects_total` | counter | | connections established (file gates included) |
//! | [`CONNECT_FAILURES`] `rtm_client_connect_failures_total` | counter | | connect attempts that failed |
//! | [`RECONNECTS`] `rtm_client_reconnects_total` | counter | | connections made after one was lost |
//! | [`SENT_BYTES`] `rtm_client_sent_bytes_total` | counter | | bytes written to the sockets |
//! | [`RECEIVED_BYTES`] `rtm_client_received_bytes_total` | counter | | bytes read from the sockets |
//!
//! The observer keeps the counts and the durations itself (per thread,
//! without contention) and hands them to the recorder once a second from
//! the client's timer thread, and when the client closes (see
//! [`CallObserver::on_stats`]); so are the gauges. The counters get totals.
//! The durations are kept in log-scale buckets (32 per octave, from 1 ns
//! up) and each bucket's count is handed on with
//! [`Histogram::record_many`] as the middle of its range: every value the
//! recorder sees is within 1.6 % of the duration it stands for, and at
//! most a second late. (Recorders that store each sample, such as
//! `metrics-exporter-prometheus` 0.17 and `metrics-util`'s debugging
//! recorder, still do a sample's work `count` times in `record_many`, but
//! on the timer thread, not on the threads that run the callbacks.) A
//! method's buckets take 256 B per octave used and per counter shard. With [`MetricsObserver::with_label`] every
//! metric also carries a label of yours (to tell several clients of one
//! process apart). At most [`MAX_METHODS`] distinct method names are
//! labelled per observer; later ones share the label `other`, so a flood of
//! raw method names cannot grow the exporter without bound.
//!
//! Install the recorder before the client makes its first call: the
//! observer registers its handles on first use and keeps them.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Label, Unit};

use crate::fpnn::watch::{shard, CallObserver, CallOutcome, CallRecord, ClientStats, Line, SHARDS};
use crate::ErrorKind;

/// `rtm_client_calls_total`: completed calls, by `method` and `outcome`.
pub const CALLS: &str = "rtm_client_calls_total";
/// `rtm_client_call_duration_seconds`: call durations, by `method`.
pub const CALL_DURATION: &str = "rtm_client_call_duration_seconds";
/// `rtm_client_calls_resent_total`: calls resent once, by `method`.
pub const RESENT: &str = "rtm_client_calls_resent_total";
/// `rtm_client_pending_calls`: calls pending now.
pub const PENDING: &str = "rtm_client_pending_calls";
/// `rtm_client_connected`: 1 while the gateway connection is up.
pub const CONNECTED: &str = "rtm_client_connected";
/// `rtm_client_connects_total`: connections established.
pub const CONNECTS: &str = "rtm_client_connects_total";
/// `rtm_client_connect_failures_total`: connect attempts that failed.
pub const CONNECT_FAILURES: &str = "rtm_client_connect_failures_total";
/// `rtm_client_reconnects_total`: connections made after one was lost.
pub const RECONNECTS: &str = "rtm_client_reconnects_total";
/// `rtm_client_sent_bytes_total`: bytes written to the sockets.
pub const SENT_BYTES: &str = "rtm_client_sent_bytes_total";
/// `rtm_client_received_bytes_total`: bytes read from the sockets.
pub const RECEIVED_BYTES: &str = "rtm_client_received_bytes_total";

/// The label of the method.
pub const METHOD_LABEL: &str = "method";
/// The label of the outcome.
pub const OUTCOME_LABEL: &str = "outcome";
/// The most distinct `method` labels one observer hands out; later
/// methods are labelled `other`.
pub const MAX_METHODS: usize = 256;

/// The outcomes, in the order of [`MethodHandles::calls`].
const OUTCOMES: [&str; 5] = ["ok", "timeout", "connection", "server", "local"];

fn outcome_index(outcome: &CallOutcome) -> usize {
    match outcome {
        CallOutcome::Ok => 0,
        CallOutcome::Failed { kind, .. } => match kind {
            ErrorKind::Timeout => 1,
            ErrorKind::Connection => 2,
            ErrorKind::Server => 3,
            _ => 4,
        },
    }
}

/// Duration buckets per octave: 2^`SUB_BITS`.
const SUB_BITS: u32 = 5;
const SUBS: usize = 1 << SUB_BITS;
/// Octave blocks: block 0 holds 0..32 ns exactly, block `b` >= 1 the
/// octave [2^(b+4), 2^(b+5)) ns in 32 buckets.
const BLOCKS: usize = 64 - SUB_BITS as usize + 1;

/// The bucket (block, sub) of a duration of `ns` nanoseconds.
fn bucket(ns: u64) -> (usize, usize) {
    if ns < SUBS as u64 {
        return (0, ns as usize);
    }
    let octave = 63 - ns.leading_zeros();
    let shift = octave - SUB_BITS;
    ((shift + 1) as usize, ((ns >> shift) as usize) & (SUBS - 1))
}

/// The value a bucket hands to the recorder, in seconds: the middle of
/// its range (within 1.6 % of every duration the bucket holds).
fn bucket_seconds(block: usize, sub: usize) -> f64 {
    if block == 0 {
        return sub as f64 * 1e-9;
    }
    let shift = (block - 1) as i32;
    (SUBS + sub) as f64 * 2f64.powi(shift) * (1.0 + 0.5 / (SUBS + sub) as f64) * 1e-9
}

/// One shard's duration counts: an octave's 32 buckets are allocated
/// when a duration first falls in it (calls of one method seldom span
/// more than a few octaves).
struct Durations {
    blocks: [OnceLock<Box<[AtomicU64; SUBS]>>; BLOCKS],
}

impl Default for Durations {
    fn default() -> Self {
        Durations {
            blocks: std::array::from_fn(|_| OnceLock::new()),
        }
    }
}

impl Durations {
    fn add(&self, elapsed: Duration) {
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let (block, sub) = bucket(ns);
        let counts = self.blocks[block].get_or_init(Default::default);
        counts[sub].fetch_add(1, Ordering::Relaxed);
    }
}

/// The handles of one method, and its counts and durations: kept per
/// thread shard (uncontended atomics on the call path) and handed to the
/// recorder once a second and when the client closes: the counts as
/// totals, the durations as their buckets' middles with
/// [`Histogram::record_many`].
struct MethodHandles {
    calls: [Counter; 5],
    duration: Histogram,
    resent: Counter,
    /// Per shard: the five outcomes, then the resends.
    counts: [Line<[AtomicU64; 6]>; SHARDS],
    /// Per shard: the durations not handed to the recorder yet.
    durations: [Durations; SHARDS],
}

impl MethodHandles {
    /// Hands the durations, then the totals, to the recorder.
    fn flush(&self) {
        for block in 0..BLOCKS {
            for sub in 0..SUBS {
                let n: u64 = self
                    .durations
                    .iter()
                    .filter_map(|d| d.blocks[block].get())
                    .map(|counts| counts[sub].swap(0, Ordering::Relaxed))
                    .sum();
                if n > 0 {
                    let n = usize::try_from(n).unwrap_or(usize::MAX);
                    self.duration.record_many(bucket_seconds(block, sub), n);
                }
            }
        }
        let total = |i: usize| -> u64 {
            self.counts
                .iter()
                .map(|c| c.0[i].load(Ordering::Relaxed))
                .sum()
        };
        for (i, counter) in self.calls.iter().enumerate() {
            counter.absolute(total(i));
        }
        self.resent.absolute(total(5));
    }
}

/// The handles of the client-wide metrics.
struct ClientHandles {
    pending: Gauge,
    connected: Gauge,
    connects: Counter,
    connect_failures: Counter,
    reconnects: Counter,
    sent: Counter,
    received: Counter,
}

static NEXT_OBSERVER: AtomicU64 = AtomicU64::new(1);

/// One thread's handles of one observer and method.
struct Cached {
    observer: u64,
    method: Box<str>,
    handles: Arc<MethodHandles>,
}

/// A thread's handles: the hot path takes no lock and, calling the same
/// method again, hashes nothing.
#[derive(Default)]
struct ThreadHandles {
    /// The entry used last.
    last: usize,
    entries: Vec<Cached>,
    /// `(observer, method)` to the index in `entries`.
    index: HashMap<(u64, Box<str>), usize>,
}

thread_local! {
    static HANDLES: RefCell<ThreadHandles> = RefCell::new(ThreadHandles::default());
}

/// A [`CallObserver`] that records through the `metrics` facade (see the
/// [module docs](self) for the metrics and their labels).
pub struct MetricsObserver {
    id: u64,
    labels: Vec<Label>,
    /// The methods labelled so far (bounded by [`MAX_METHODS`]; `other`
    /// last when reached).
    methods: Mutex<Vec<(Box<str>, Arc<MethodHandles>)>>,
    client: Mutex<Option<ClientHandles>>,
}

impl std::fmt::Debug for MetricsObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsObserver")
            .field("labels", &self.labels)
            .finish()
    }
}

impl Default for MetricsObserver {
    fn default() -> Self {
        Self::new()
    }
}

impl MetricsObserver {
    /// An observer recording through the installed `metrics` recorder. It
    /// describes its metrics (units and help texts) to the recorder.
    #[must_use]
    pub fn new() -> MetricsObserver {
        describe();
        MetricsObserver {
            id: NEXT_OBSERVER.fetch_add(1, Ordering::Relaxed),
            labels: Vec::new(),
            methods: Mutex::new(Vec::new()),
            client: Mutex::new(None),
        }
    }

    /// Adds a label that every metric of this observer carries, e.g.
    /// `("client", "chat")` to tell several clients apart.
    #[must_use]
    pub fn with_label(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.labels.push(Label::new(key, value.into()));
        self
    }

    /// The handles of `method` (shared by the threads): its own while
    /// fewer than [`MAX_METHODS`] are labelled, else those of `other`.
    fn make_handles(&self, method: &str) -> Arc<MethodHandles> {
        let mut known = self.methods.lock().unwrap_or_else(|e| e.into_inner());
        let label = if known.len() >= MAX_METHODS && !known.iter().any(|(m, _)| &**m == method) {
            "other"
        } else {
            method
        };
        if let Some((_, h)) = known.iter().find(|(m, _)| &**m == label) {
            return h.clone();
        }
        let h = Arc::new(self.register(label));
        known.push((label.into(), h.clone()));
        h
    }

    fn register(&self, label: &str) -> MethodHandles {
        let with = |extra: &[(&'static str, &str)]| {
            let mut labels = self.labels.clone();
            labels.push(Label::new(METHOD_LABEL, label.to_string()));
            for (k, v) in extra {
                labels.push(Label::new(*k, v.to_string()));
            }
            labels
        };
        MethodHandles {
            calls: OUTCOMES.map(|o| metrics::counter!(CALLS, with(&[(OUTCOME_LABEL, o)]))),
            duration: metrics::histogram!(CALL_DURATION, with(&[])),
            resent: metrics::counter!(RESENT, with(&[])),
            counts: Default::default(),
            durations: Default::default(),
        }
    }

    fn handles(&self, method: &str, f: impl FnOnce(&MethodHandles)) {
        let mut f = Some(f);
        let done = HANDLES.try_with(|h| {
            let Ok(mut h) = h.try_borrow_mut() else {
                return false;
            };
            let last = h.last;
            let hit = h
                .entries
                .get(last)
                .is_some_and(|e| e.observer == self.id && &*e.method == method);
            let i = if hit {
                last
            } else {
                let key = (self.id, Box::<str>::from(method));
                match h.index.get(&key) {
                    Some(i) => *i,
                    None => {
                        let i = h.entries.len();
                        h.entries.push(Cached {
                            observer: self.id,
                            method: method.into(),
                            handles: self.make_handles(method),
                        });
                        h.index.insert(key, i);
                        i
                    }
                }
            };
            h.last = i;
            if let Some(f) = f.take() {
                f(&h.entries[i].handles);
            }
            true
        });
        if !matches!(done, Ok(true)) {
            // The thread is ending: no cache.
            if let Some(f) = f.take() {
                f(&self.make_handles(method));
            }
        }
    }

    fn client_handles(&self) -> ClientHandles {
        let l = || self.labels.clone();
        ClientHandles {
            pending: metrics::gauge!(PENDING, l()),
            connected: metrics::gauge!(CONNECTED, l()),
            connects: metrics::counter!(CONNECTS, l()),
            connect_failures: metrics::counter!(CONNECT_FAILURES, l()),
            reconnects: metrics::counter!(RECONNECTS, l()),
            sent: metrics::counter!(SENT_BYTES, l()),
            received: metrics::counter!(RECEIVED_BYTES, l()),
        }
    }
}

impl CallObserver for MetricsObserver {
    fn on_call(&self, call: &CallRecord<'_>) {
        self.handles(call.method, |h| {
            let shard = shard();
            // The duration before the count: a flush that sees the count
            // has the duration too.
            h.durations[shard].add(call.elapsed);
            let counts = &h.counts[shard].0;
            counts[outcome_index(&call.outcome)].fetch_add(1, Ordering::Relaxed);
            if call.resent {
                counts[5].fetch_add(1, Ordering::Relaxed);
            }
        });
    }

    fn on_stats(&self, stats: &ClientStats) {
        let methods: Vec<Arc<MethodHandles>> = self
            .methods
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(_, h)| h.clone())
            .collect();
        for h in methods {
            h.flush();
        }
        let mut client = self.client.lock().unwrap_or_else(|e| e.into_inner());
        let h = client.get_or_insert_with(|| self.client_handles());
        h.pending.set(stats.pending as f64);
        h.connects.absolute(stats.connects);
        h.connect_failures.absolute(stats.connect_failures);
        h.reconnects.absolute(stats.reconnects);
        h.sent.absolute(stats.bytes_sent);
        h.received.absolute(stats.bytes_received);
        h.connected.set(if stats.connection_age.is_some() {
            1.0
        } else {
            0.0
        });
    }
}

/// Describes the metrics to the recorder (units and help texts).
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(CALLS, Unit::Count, "Completed calls by method and outcome.");
    describe_histogram!(CALL_DURATION, Unit::Seconds, "Call durations by method.");
    describe_counter!(
        RESENT,
        Unit::Count,
        "Calls resent once under the RTM resend rule."
    );
    describe_gauge!(PENDING, Unit::Count, "Calls pending now.");
    describe_gauge!(CONNECTED, "1 while the gateway connection is up, else 0.");
    describe_counter!(CONNECTS, Unit::Count, "Connections established.");
    describe_counter!(
        CONNECT_FAILURES,
        Unit::Count,
        "Connect attempts that failed."
    );
    describe_counter!(
        RECONNECTS,
        Unit::Count,
        "Connections made after one was lost."
    );
    describe_counter!(SENT_BYTES, Unit::Bytes, "Bytes written to the sockets.");
    describe_counter!(RECEIVED_BYTES, Unit::Bytes, "Bytes read from the sockets.");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duration_is_handed_on_within_1_6_percent() {
        let check = |n: u64| {
            let (block, sub) = bucket(n);
            let got = bucket_seconds(block, sub) * 1e9;
            let err = (got - n as f64).abs() / n as f64;
            assert!(err <= 0.016, "{n} ns handed on as {got} ns ({err})");
        };
        (1..64).for_each(check);
        // Both ends of every bucket of every octave.
        for shift in 0..=58u32 {
            for sub in 0..SUBS as u64 {
                check((32 + sub) << shift);
                check(((33 + sub) << shift).wrapping_sub(1));
            }
        }
        let (block, sub) = bucket(u64::MAX);
        assert!(block < BLOCKS && sub < SUBS);
    }

    #[test]
    fn every_duration_is_counted_in_its_bucket() {
        let d = Durations::default();
        for us in [1u64, 1, 250, 3_000_000] {
            d.add(Duration::from_micros(us));
        }
        d.add(Duration::MAX);
        let counted: u64 = d
            .blocks
            .iter()
            .filter_map(OnceLock::get)
            .flat_map(|b| b.iter().map(|c| c.load(Ordering::Relaxed)))
            .sum();
        assert_eq!(counted, 5);
        let (block, sub) = bucket(1_000);
        let ones = d.blocks[block]
            .get()
            .map(|b| b[sub].load(Ordering::Relaxed));
        assert_eq!(ones, Some(2));
    }
}
