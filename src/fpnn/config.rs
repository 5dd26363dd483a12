//! Client configuration.

use std::time::Duration;

use super::codec::{DEFAULT_MAX_RECV_PAYLOAD, DEFAULT_MAX_SEND_PAYLOAD};
use super::crypto::EncryptionConfig;

/// The default connect timeout: 30 seconds, as the official RTM SDKs.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// The default quest timeout: 30 seconds, as the official RTM SDKs.
pub const DEFAULT_QUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings of an [`FpnnClient`](super::FpnnClient) (and of the RTM client
/// built on it).
///
/// Build it with [`ClientConfig::default()`] and the chainable setters; every
/// field documents its default.
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
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The bound on establishing a connection: TCP connect plus any
    /// handshake. Default 30 s.
    pub connect_timeout: Duration,
    /// The default time a call waits for its answer; each call can override
    /// it. Default 30 s (zero also means 30 s). It also bounds a write to a
    /// server that stopped reading: such a connection is closed.
    pub quest_timeout: Duration,
    /// The largest payload accepted from the server; a larger frame is a
    /// protocol error and closes the connection. Default 200 MiB.
    pub max_recv_payload: usize,
    /// The largest payload this client sends; a larger one is refused with
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) before
    /// anything is written. Default 8 MiB (the FPNN server's default limit).
    pub max_send_payload: usize,
    /// How many threads run user callbacks and server-quest handlers.
    /// Default 2.
    pub callback_threads: usize,
    /// Encrypt the connection with the server's public key (ECDH + AES-CFB,
    /// see [`crypto`](super::crypto)). Default `None`: plain TCP.
    pub encryption: Option<EncryptionConfig>,
    /// Send `*ping` when the connection is idle, and drop a connection that
    /// stays silent (a half-open socket). Default `None`: off, as in the
    /// official SDKs; [`KeepaliveConfig::default()`] has their values.
    pub keepalive: Option<KeepaliveConfig>,
    /// Reconnect in the background after a connection is lost (or a connect
    /// fails), with the regressive back-off of [`ReconnectStrategy`].
    /// Default: on, with the official SDKs' values. `None` turns it off;
    /// calls still connect on demand. Never after the client was closed.
    pub reconnect: Option<ReconnectStrategy>,
}

/// The keepalive parameters (PROTOCOL.md 3.2).
///
/// After `interval` without receiving anything, a `*ping` goes out (and
/// again every `timeout` while the silence lasts); after
/// `timeout * max_retries + interval` of silence the connection is
/// considered lost: it is closed, and the calls in flight fail with
/// [`Error::ConnectionClosed`](crate::Error::ConnectionClosed) at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeepaliveConfig {
    /// Silence before the first ping. Default 10 s.
    pub interval: Duration,
    /// The time one ping may take. Default 5 s.
    pub timeout: Duration,
    /// Pings that may go unanswered. Default 2.
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
    pub fn interval(mut self, d: Duration) -> Self {
        self.interval = d;
        self
    }
    /// Sets [`timeout`](KeepaliveConfig::timeout).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }
    /// Sets [`max_retries`](KeepaliveConfig::max_retries).
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }
    /// The silence after which the connection is declared lost.
    pub fn lost_after(&self) -> Duration {
        self.timeout * self.max_retries + self.interval
    }
}

/// The "regressive" reconnect strategy of the official SDKs (PROTOCOL.md
/// 8.5, the Go formula with its cap).
///
/// A connection that closes less than `flash_window` after it was made
/// counts as a failed connect. The first `immediate_attempts` failures are
/// retried at once; after that the delay before attempt `failed` is
/// `first_interval + (failed - immediate_attempts) * (max_interval - first_interval) / linear_steps`,
/// capped at `max_interval` (with the defaults: 25.6 s, 49.2 s, ... 120 s).
/// A successful connect resets the count.
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
    pub fn flash_window(mut self, d: Duration) -> Self {
        self.flash_window = d;
        self
    }
    /// Sets [`immediate_attempts`](ReconnectStrategy::immediate_attempts).
    pub fn immediate_attempts(mut self, n: u32) -> Self {
        self.immediate_attempts = n;
        self
    }
    /// Sets [`first_interval`](ReconnectStrategy::first_interval).
    pub fn first_interval(mut self, d: Duration) -> Self {
        self.first_interval = d;
        self
    }
    /// Sets [`max_interval`](ReconnectStrategy::max_interval).
    pub fn max_interval(mut self, d: Duration) -> Self {
        self.max_interval = d;
        self
    }
    /// Sets [`linear_steps`](ReconnectStrategy::linear_steps) (at least 1).
    pub fn linear_steps(mut self, n: u32) -> Self {
        self.linear_steps = n.max(1);
        self
    }

    /// The delay before the next attempt, given the number of failed
    /// attempts so far (connects that failed, plus connections that closed
    /// within the flash window).
    pub fn delay(&self, failed: u32) -> Duration {
        if failed <= self.immediate_attempts {
            return Duration::ZERO;
        }
        let span = self.max_interval.saturating_sub(self.first_interval);
        let per_step = span / self.linear_steps.max(1);
        let steps = failed - self.immediate_attempts;
        (self.first_interval + per_step.saturating_mul(steps)).min(self.max_interval)
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            quest_timeout: DEFAULT_QUEST_TIMEOUT,
            max_recv_payload: DEFAULT_MAX_RECV_PAYLOAD,
            max_send_payload: DEFAULT_MAX_SEND_PAYLOAD,
            callback_threads: 2,
            encryption: None,
            keepalive: None,
            reconnect: Some(ReconnectStrategy::default()),
        }
    }
}

impl ClientConfig {
    /// Sets [`connect_timeout`](ClientConfig::connect_timeout).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`quest_timeout`](ClientConfig::quest_timeout).
    pub fn quest_timeout(mut self, timeout: Duration) -> Self {
        self.quest_timeout = timeout;
        self
    }

    /// Sets [`max_recv_payload`](ClientConfig::max_recv_payload).
    pub fn max_recv_payload(mut self, bytes: usize) -> Self {
        self.max_recv_payload = bytes;
        self
    }

    /// Sets [`max_send_payload`](ClientConfig::max_send_payload).
    pub fn max_send_payload(mut self, bytes: usize) -> Self {
        self.max_send_payload = bytes;
        self
    }

    /// Sets [`encryption`](ClientConfig::encryption).
    pub fn encryption(mut self, encryption: EncryptionConfig) -> Self {
        self.encryption = Some(encryption);
        self
    }

    /// Sets [`keepalive`](ClientConfig::keepalive) (`None` turns it off).
    pub fn keepalive(mut self, keepalive: impl Into<Option<KeepaliveConfig>>) -> Self {
        self.keepalive = keepalive.into();
        self
    }

    /// Sets [`reconnect`](ClientConfig::reconnect) (`None` turns it off).
    pub fn reconnect(mut self, strategy: impl Into<Option<ReconnectStrategy>>) -> Self {
        self.reconnect = strategy.into();
        self
    }

    /// Sets [`callback_threads`](ClientConfig::callback_threads) (at least 1).
    pub fn callback_threads(mut self, threads: usize) -> Self {
        self.callback_threads = threads.max(1);
        self
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
    fn keepalive_lost_threshold() {
        assert_eq!(
            KeepaliveConfig::default().lost_after(),
            Duration::from_secs(20)
        );
    }
}
