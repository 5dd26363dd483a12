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
    /// it. Default 30 s.
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

    /// Sets [`callback_threads`](ClientConfig::callback_threads) (at least 1).
    pub fn callback_threads(mut self, threads: usize) -> Self {
        self.callback_threads = threads.max(1);
        self
    }
}
