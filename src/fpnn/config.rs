//! Client configuration.

use std::sync::Arc;
use std::time::Duration;

use super::codec::{DEFAULT_MAX_RECV_PAYLOAD, DEFAULT_MAX_SEND_PAYLOAD};
use super::crypto::EncryptionConfig;
use super::watch::CallObserver;

/// The default connect timeout: 30 seconds, as the official RTM SDKs.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// The default quest timeout: 30 seconds, as the official RTM SDKs.
pub const DEFAULT_QUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The default cap on the calls pending per client (see
/// [`ClientConfig::max_pending`]).
pub const DEFAULT_MAX_PENDING: usize = 100_000;
/// The default number of callback threads.
const DEFAULT_CALLBACK_THREADS: usize = 2;

/// Settings of an [`FpnnClient`](super::FpnnClient) (and of the RTM client
/// built on it).
///
/// Build it with [`ClientConfig::default()`] and the chainable setters; every
/// field documents its default.
///
/// **Zero means "the default"** for every field here and in
/// [`KeepaliveConfig`] (a zero timeout, limit or thread count is replaced
/// by the default when the client is made; [`FpnnClient::config`](super::FpnnClient::config)
/// shows the values in force). Durations too large to add to the clock
/// (up to [`Duration::MAX`]) mean "no deadline": they never panic.
///
/// ```
/// use std::time::Duration;
/// use rtm_server_sdk::fpnn::ClientConfig;
///
/// let config = ClientConfig::default()
///     .connect_timeout(Duration::from_secs(5))
///     .quest_timeout(Duration::from_secs(10));
/// assert_eq!(config.quest_timeout, Duration::from_secs(10));
/// ```
///
/// Its `Debug` output shows the values that apply, zeros replaced by the
/// defaults.
#[derive(Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The bound on establishing a connection: name resolution, TCP
    /// connect, the key exchange and the connect hooks (the RTM listen
    /// restore). Default 30 s (zero also means 30 s).
    pub connect_timeout: Duration,
    /// The default time a call may take, from the moment it is made to its
    /// answer, **connecting included** (a call made while disconnected
    /// waits for the connection within this bound, then for its answer
    /// within what is left); each call can override it. Default 30 s (zero
    /// also means 30 s). It also bounds a write to a server that stopped
    /// reading: such a connection is closed.
    pub quest_timeout: Duration,
    /// The largest payload accepted from the server; a larger frame is a
    /// protocol error and closes the connection, and nothing larger is ever
    /// allocated for one frame. Default 200 MiB (zero also).
    pub max_recv_payload: usize,
    /// The largest payload this client sends; a larger one is refused with
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) before
    /// anything is written. Default 8 MiB (the FPNN server's default limit;
    /// zero also).
    pub max_send_payload: usize,
    /// How many threads run user callbacks and server-quest handlers.
    /// Default 2.
    pub callback_threads: usize,
    /// The most calls one client may have pending at once: calls in flight
    /// plus callback calls queued while the client connects. At the cap a
    /// blocking call waits for room within its own timeout; a callback call
    /// gets [`Error::TooManyPending`](crate::Error::TooManyPending) (code
    /// 20011) at once. Default [`DEFAULT_MAX_PENDING`] (100,000; about
    /// 13 MB of pending raw calls).
    pub max_pending: usize,
    /// Encrypt the connection with the server's public key (ECDH + AES-CFB,
    /// see [`crypto`](super::crypto)). Default `None`: plain TCP.
    pub encryption: Option<EncryptionConfig>,
    /// Send `*ping` when the connection is idle, and drop a connection that
    /// stays silent (a half-open socket). Default `None`: off, as in the
    /// official SDKs; [`KeepaliveConfig::default()`] has their values.
    pub keepalive: Option<KeepaliveConfig>,
    /// Reconnect in the background after a connection is lost (or a connect
    /// fails), with the regressive back-off of [`ReconnectStrategy`], **when
    /// something needs the connection**: the RTM client listens to pushes
    /// (its listen state is not empty), or [`keepalive`](Self::keepalive)
    /// is on. An idle client that needs nothing stays disconnected until
    /// its next call (which connects on demand). Default: on, with the
    /// official SDKs' values. `None` turns it off; calls still connect on
    /// demand. Never after the client was closed.
    pub reconnect: Option<ReconnectStrategy>,
    /// Told about every completed call: method, time taken, outcome,
    /// resend, frame sizes (see [`CallObserver`] and
    /// [`watch`](super::watch)). Default `None`: nothing is timed or
    /// called (the client's counters, [`FpnnClient::stats`](super::FpnnClient::stats),
    /// are kept either way). With the `metrics` feature,
    /// [`MetricsObserver`](crate::metrics::MetricsObserver) reports through
    /// the `metrics` crate.
    pub observer: Option<Arc<dyn CallObserver>>,
}

/// The keepalive parameters.
///
/// Keepalive also keeps the client connected: with it on, a lost
/// connection is redialled in the background even when nothing else needs
/// it (see [`ClientConfig::reconnect`]). Zero means the default.
///
/// After `interval` without receiving anything, a `*ping` goes out (and
/// again every `timeout` while the silence lasts); after
/// `timeout * max_retries + interval` of silence the connection is
/// considered lost: it is closed, and the calls in flight fail with
/// [`Error::ConnectionClosed`](crate::Error::ConnectionClosed) at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeepaliveConfig {
    /// Silence before the first ping. Default 10 s (zero also).
    pub interval: Duration,
    /// The time one ping may take. Default 5 s (zero also).
    pub timeout: Duration,
    /// Pings that may go unanswered. Default 2 (zero also).
    pub max_retries: u32,
}

impl Default for KeepaliveConfig {
    fn default() -> Self {
        KeepaliveConfig {
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
            max_retries: 2,
        }
    }
}

impl KeepaliveConfig {
    /// Sets [`interval`](KeepaliveConfig::interval).
    #[must_use]
    pub fn interval(mut self, d: Duration) -> Self {
        self.interval = d;
        self
    }
    /// Sets [`timeout`](KeepaliveConfig::timeout).
    #[must_use]
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }
    /// Sets [`max_retries`](KeepaliveConfig::max_retries).
    #[must_use]
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }
    /// The silence after which the connection is declared lost
    /// (saturating: never panics).
    #[must_use]
    pub fn lost_after(&self) -> Duration {
        self.timeout
            .saturating_mul(self.max_retries)
            .saturating_add(self.interval)
    }

    /// Zeros replaced by the defaults.
    pub(crate) fn normalized(self) -> KeepaliveConfig {
        let d = KeepaliveConfig::default();
        KeepaliveConfig {
            interval: nonzero(self.interval, d.interval),
            timeout: nonzero(self.timeout, d.timeout),
            max_retries: if self.max_retries == 0 {
                d.max_retries
            } else {
                self.max_retries
            },
        }
    }
}

/// The "regressive" reconnect strategy of the official SDKs (the Go
/// formula, with its cap).
///
/// A connection that closes less than `flash_window` after it was made
/// counts as a failed connect. The first `immediate_attempts` failures are
/// retried at once; after that the delay before attempt `failed` is
/// `first_interval + (failed - immediate_attempts) * (max_interval - first_interval) / linear_steps`,
/// capped at `max_interval` (with the defaults: 25.6 s, 49.2 s, ... 120 s).
/// A successful connect resets the count. Unlike timeouts, a zero delay
/// here means "at once".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReconnectStrategy {
    /// Default 1500 ms.
    pub flash_window: Duration,
    /// Default 5.
    pub immediate_attempts: u32,
    /// Default 2 s.
    pub first_interval: Duration,
    /// Default 120 s.
    pub max_interval: Duration,
    /// Default 5.
    pub linear_steps: u32,
}

impl Default for ReconnectStrategy {
    fn default() -> Self {
        ReconnectStrategy {
            flash_window: Duration::from_millis(1500),
            immediate_attempts: 5,
            first_interval: Duration::from_secs(2),
            max_interval: Duration::from_secs(120),
            linear_steps: 5,
        }
    }
}

impl ReconnectStrategy {
    /// Sets [`flash_window`](ReconnectStrategy::flash_window).
    #[must_use]
    pub fn flash_window(mut self, d: Duration) -> Self {
        self.flash_window = d;
        self
    }
    /// Sets [`immediate_attempts`](ReconnectStrategy::immediate_attempts).
    #[must_use]
    pub fn immediate_attempts(mut self, n: u32) -> Self {
        self.immediate_attempts = n;
        self
    }
    /// Sets [`first_interval`](ReconnectStrategy::first_interval).
    #[must_use]
    pub fn first_interval(mut self, d: Duration) -> Self {
        self.first_interval = d;
        self
    }
    /// Sets [`max_interval`](ReconnectStrategy::max_interval).
    #[must_use]
    pub fn max_interval(mut self, d: Duration) -> Self {
        self.max_interval = d;
        self
    }
    /// Sets [`linear_steps`](ReconnectStrategy::linear_steps) (at least 1).
    #[must_use]
    pub fn linear_steps(mut self, n: u32) -> Self {
        self.linear_steps = n.max(1);
        self
    }

    /// The delay before the next attempt, given the number of failed
    /// attempts so far (connects that failed, plus connections that closed
    /// within the flash window).
    #[must_use]
    pub fn delay(&self, failed: u32) -> Duration {
        if failed <= self.immediate_attempts {
            return Duration::ZERO;
        }
        let span = self.max_interval.saturating_sub(self.first_interval);
        let per_step = span / self.linear_steps.max(1);
        let steps = failed - self.immediate_attempts;
        self.first_interval
            .saturating_add(per_step.saturating_mul(steps))
            .min(self.max_interval)
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            quest_timeout: DEFAULT_QUEST_TIMEOUT,
            max_recv_payload: DEFAULT_MAX_RECV_PAYLOAD,
            max_send_payload: DEFAULT_MAX_SEND_PAYLOAD,
            callback_threads: DEFAULT_CALLBACK_THREADS,
            max_pending: DEFAULT_MAX_PENDING,
            encryption: None,
            keepalive: None,
            reconnect: Some(ReconnectStrategy::default()),
            observer: None,
        }
    }
}

impl ClientConfig {
    /// Sets [`connect_timeout`](ClientConfig::connect_timeout).
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`quest_timeout`](ClientConfig::quest_timeout).
    #[must_use]
    pub fn quest_timeout(mut self, timeout: Duration) -> Self {
        self.quest_timeout = timeout;
        self
    }

    /// Sets [`max_recv_payload`](ClientConfig::max_recv_payload).
    #[must_use]
    pub fn max_recv_payload(mut self, bytes: usize) -> Self {
        self.max_recv_payload = bytes;
        self
    }

    /// Sets [`max_send_payload`](ClientConfig::max_send_payload).
    #[must_use]
    pub fn max_send_payload(mut self, bytes: usize) -> Self {
        self.max_send_payload = bytes;
        self
    }

    /// Sets [`encryption`](ClientConfig::encryption).
    #[must_use]
    pub fn encryption(mut self, encryption: EncryptionConfig) -> Self {
        self.encryption = Some(encryption);
        self
    }

    /// Sets [`keepalive`](ClientConfig::keepalive) (`None` turns it off).
    #[must_use]
    pub fn keepalive(mut self, keepalive: impl Into<Option<KeepaliveConfig>>) -> Self {
        self.keepalive = keepalive.into();
        self
    }

    /// Sets [`reconnect`](ClientConfig::reconnect) (`None` turns it off).
    #[must_use]
    pub fn reconnect(mut self, strategy: impl Into<Option<ReconnectStrategy>>) -> Self {
        self.reconnect = strategy.into();
        self
    }

    /// Sets [`callback_threads`](ClientConfig::callback_threads) (zero: the
    /// default, 2).
    #[must_use]
    pub fn callback_threads(mut self, threads: usize) -> Self {
        self.callback_threads = threads;
        self
    }

    /// Sets [`observer`](ClientConfig::observer).
    #[must_use]
    pub fn observer(mut self, observer: impl CallObserver) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }

    /// Sets [`max_pending`](ClientConfig::max_pending) (zero: the default).
    #[must_use]
    pub fn max_pending(mut self, calls: usize) -> Self {
        self.max_pending = calls;
        self
    }

    /// The configuration in force: every zero replaced by its default.
    pub(crate) fn normalized(mut self) -> ClientConfig {
        self.connect_timeout = nonzero(self.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
        self.quest_timeout = nonzero(self.quest_timeout, DEFAULT_QUEST_TIMEOUT);
        let or = |v: usize, d: usize| if v == 0 { d } else { v };
        self.max_recv_payload = or(self.max_recv_payload, DEFAULT_MAX_RECV_PAYLOAD);
        self.max_send_payload = or(self.max_send_payload, DEFAULT_MAX_SEND_PAYLOAD);
        self.callback_threads = or(self.callback_threads, DEFAULT_CALLBACK_THREADS);
        self.max_pending = or(self.max_pending, DEFAULT_MAX_PENDING);
        self.keepalive = self.keepalive.map(KeepaliveConfig::normalized);
        self
    }
}

/// The values that apply: a zero shows as the default it stands for.
impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ClientConfig {
            connect_timeout,
            quest_timeout,
            max_recv_payload,
            max_send_payload,
            callback_threads,
            max_pending,
            encryption,
            keepalive,
            reconnect,
            observer,
        } = self.clone().normalized();
        f.debug_struct("ClientConfig")
            .field("connect_timeout", &connect_timeout)
            .field("quest_timeout", &quest_timeout)
            .field("max_recv_payload", &max_recv_payload)
            .field("max_send_payload", &max_send_payload)
            .field("callback_threads", &callback_threads)
            .field("max_pending", &max_pending)
            .field("encryption", &encryption)
            .field("keepalive", &keepalive)
            .field("reconnect", &reconnect)
            .field("observer", &observer.is_some())
            .finish()
    }
}

/// `d`, or `default` when `d` is zero.
fn nonzero(d: Duration, default: Duration) -> Duration {
    if d.is_zero() {
        default
    } else {
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regressive_delays_follow_the_go_formula() {
        let s = ReconnectStrategy::default();
        // Five immediate retries.
        for failed in 0..=5 {
            assert_eq!(s.delay(failed), Duration::ZERO);
        }
        // Then (failed - 5) * 23.6 s + 2 s, capped at 120 s, as in Go.
        assert_eq!(s.delay(6), Duration::from_millis(25600));
        assert_eq!(s.delay(7), Duration::from_millis(49200));
        assert_eq!(s.delay(9), Duration::from_millis(96400));
        assert_eq!(s.delay(10), Duration::from_secs(120));
        assert_eq!(s.delay(11), Duration::from_secs(120));
        assert_eq!(s.delay(1000), Duration::from_secs(120));
    }

    #[test]
    fn huge_durations_saturate() {
        let s = ReconnectStrategy::default()
            .first_interval(Duration::MAX)
            .max_interval(Duration::MAX);
        assert_eq!(s.delay(100), Duration::MAX);
        let ka = KeepaliveConfig::default()
            .timeout(Duration::MAX)
            .interval(Duration::MAX);
        assert_eq!(ka.lost_after(), Duration::MAX);
    }

    #[test]
    fn zero_means_the_default() {
        let c = ClientConfig::default()
            .connect_timeout(Duration::ZERO)
            .quest_timeout(Duration::ZERO)
            .callback_threads(0)
            .max_pending(0)
            .max_recv_payload(0)
            .max_send_payload(0)
            .keepalive(
                KeepaliveConfig::default()
                    .interval(Duration::ZERO)
                    .timeout(Duration::ZERO)
                    .max_retries(0),
            )
            .normalized();
        assert_eq!(c.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(c.quest_timeout, DEFAULT_QUEST_TIMEOUT);
        assert_eq!(c.callback_threads, 2);
        assert_eq!(c.max_pending, DEFAULT_MAX_PENDING);
        assert_eq!(c.max_recv_payload, DEFAULT_MAX_RECV_PAYLOAD);
        assert_eq!(c.max_send_payload, DEFAULT_MAX_SEND_PAYLOAD);
        assert_eq!(c.keepalive, Some(KeepaliveConfig::default()));
    }

    #[test]
    fn debug_shows_the_values_that_apply() {
        let c = ClientConfig::default()
            .max_pending(0)
            .callback_threads(0)
            .quest_timeout(Duration::ZERO)
            .keepalive(KeepaliveConfig::default().max_retries(0));
        let text = format!("{c:?}");
        for shown in [
            "max_pending: 100000",
            "callback_threads: 2",
            "quest_timeout: 30s",
            "max_retries: 2",
        ] {
            assert!(text.contains(shown), "{shown} missing from {text}");
        }
        assert!(!text.contains(": 0"), "{text}");
        // The setting itself is kept: zero still means "the default".
        assert_eq!(c.max_pending, 0);
    }

    #[test]
    fn keepalive_lost_threshold() {
        assert_eq!(
            KeepaliveConfig::default().lost_after(),
            Duration::from_secs(20)
        );
    }
}
