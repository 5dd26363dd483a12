//! Every limit of a server, in one place: the [`ServerOptions`] a server
//! starts with (each limit a field with a `DEFAULT_*` constant), and the
//! process's descriptor limit.
//!
//! A server expects hostile peers. What one peer can make it hold, before
//! and after it is authenticated (has had a quest admitted by
//! [`Service::admit`](super::Service::admit)):
//!
//! | what | bound | default |
//! |---|---|---|
//! | open connections | [`max_connections`](ServerOptions::max_connections); at the limit, the oldest connection that never had a quest admitted is closed to make room (logged); if every connection is authenticated, the newcomer is closed | 1,024 |
//! | descriptors | one per connection; the connections of every server in the process leave [`DESCRIPTOR_RESERVE`] descriptors of the soft limit free (state file, file gate, logs) | soft limit − 64 |
//! | a connection that sends nothing | closed after [`idle_timeout`](ServerOptions::idle_timeout) while it has never had a quest admitted, after [`authenticated_idle_timeout`](ServerOptions::authenticated_idle_timeout) once it has | 60 s / never |
//! | a frame that stops half way | closed when a frame is not complete [`frame_timeout`](ServerOptions::frame_timeout) after its first byte | 30 s |
//! | one frame | [`max_payload`](ServerOptions::max_payload) (checked on the header, before the body arrives) | 8 MiB |
//! | read buffer | grows only as bytes arrive (never reserved from a header's length), never beyond the frame being received (so at most `max_payload` + 64 KiB + the frame header), and is released once a large frame is done | one frame |
//! | bytes buffered by connections that never had a quest admitted, all together | [`unauthenticated_buffer`](ServerOptions::unauthenticated_buffer): past it, the oldest such connections holding bytes are closed (logged) | 64 MiB |
//! | the test log ([`FpnnServer::received`](super::FpnnServer::received)) | [`received_log_entries`](ServerOptions::received_log_entries) quests and [`received_log_bytes`](ServerOptions::received_log_bytes) bytes of methods and payloads (kept encoded in one ring, plus 8 bytes an entry; oldest dropped first); refused quests are never recorded | 10,000 / 16 MiB |
//! | a write to a client that stopped reading | 10 s, then the connection is closed | 10 s |
//!
//! A quest refused by [`Service::admit`](super::Service::admit) is answered
//! and forgotten: it is neither decoded nor recorded, so an unauthenticated
//! peer can make the server hold at most its read buffer (one frame).

use std::net::SocketAddr;
use std::time::Duration;

use crate::fpnn::codec::DEFAULT_MAX_SEND_PAYLOAD;
use crate::fpnn::crypto::ServerPrivateKey;

/// Default of [`ServerOptions::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default of [`ServerOptions::idle_timeout`]: 60 s.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default of [`ServerOptions::frame_timeout`]: 30 s.
pub const DEFAULT_FRAME_TIMEOUT: Duration = Duration::from_secs(30);
/// Default of [`ServerOptions::received_log_entries`].
pub const RECEIVED_LOG_CAPACITY: usize = 10_000;
/// Default of [`ServerOptions::received_log_bytes`]: 16 MiB.
pub const DEFAULT_RECEIVED_LOG_BYTES: usize = 16 * 1024 * 1024;
/// Default of [`ServerOptions::unauthenticated_buffer`]: 64 MiB.
pub const DEFAULT_UNAUTHENTICATED_BUFFER: usize = 64 * 1024 * 1024;
/// Descriptors of the process's soft limit that connections never take:
/// room for the listeners, the state file, the file gate and logs.
pub const DESCRIPTOR_RESERVE: usize = 64;

/// How an [`FpnnServer`](super::FpnnServer) listens, and its limits (see
/// the [table](self) for how they work together).
#[derive(Debug)]
#[non_exhaustive]
pub struct ServerOptions {
    /// The address to listen on; `None` means `127.0.0.1:0` (a free port).
    pub addr: Option<SocketAddr>,
    /// When set, the server accepts encrypted connections with this key: the
    /// first quest of every connection must then be a valid `*key`
    /// handshake, or the connection is closed (unless
    /// [`allow_plain`](Self::allow_plain)).
    pub encryption: Option<ServerPrivateKey>,
    /// With [`encryption`](Self::encryption): a connection whose first
    /// quest is not `*key` is served unencrypted instead of closed, as the
    /// C++ server does (a `*key` after another quest still closes it).
    /// Default false.
    pub allow_plain: bool,
    /// The largest payload accepted from a client; a larger frame closes the
    /// connection. Default 8 MiB, the C++ server's default.
    pub max_payload: usize,
    /// The most connections open at once. When a newcomer would exceed it,
    /// the oldest connection that has never had a quest admitted is closed
    /// to make room (logged); when every open connection has, the newcomer
    /// is closed. Default [`DEFAULT_MAX_CONNECTIONS`] (1,024); the
    /// process's descriptor limit (less [`DESCRIPTOR_RESERVE`]) bounds it
    /// too.
    pub max_connections: usize,
    /// A connection that has never had a quest admitted is closed after
    /// this long without a complete frame. Default
    /// [`DEFAULT_IDLE_TIMEOUT`] (60 s); `None`: never.
    pub idle_timeout: Option<Duration>,
    /// A connection that has had a quest admitted is closed after this long
    /// without a complete frame. Default `None` (never: clients keep
    /// their connections between tests).
    pub authenticated_idle_timeout: Option<Duration>,
    /// A frame must be complete this long after its first byte arrived, or
    /// the connection is closed (a peer that stops half way, or trickles).
    /// Default [`DEFAULT_FRAME_TIMEOUT`] (30 s); `None`: never.
    pub frame_timeout: Option<Duration>,
    /// The bytes all connections that have never had a quest admitted may
    /// hold in their read buffers together; past it, the oldest of them
    /// holding bytes are closed. Default [`DEFAULT_UNAUTHENTICATED_BUFFER`]
    /// (64 MiB).
    pub unauthenticated_buffer: usize,
    /// How many quests [`FpnnServer::received`](super::FpnnServer::received)
    /// keeps. Default [`RECEIVED_LOG_CAPACITY`] (10,000).
    pub received_log_entries: usize,
    /// How many bytes of (encoded) payloads
    /// [`FpnnServer::received`](super::FpnnServer::received) keeps; the
    /// oldest quests are dropped first. Default
    /// [`DEFAULT_RECEIVED_LOG_BYTES`] (16 MiB).
    pub received_log_bytes: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            addr: None,
            encryption: None,
            allow_plain: false,
            max_payload: DEFAULT_MAX_SEND_PAYLOAD,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            authenticated_idle_timeout: None,
            frame_timeout: Some(DEFAULT_FRAME_TIMEOUT),
            unauthenticated_buffer: DEFAULT_UNAUTHENTICATED_BUFFER,
            received_log_entries: RECEIVED_LOG_CAPACITY,
            received_log_bytes: DEFAULT_RECEIVED_LOG_BYTES,
        }
    }
}

impl ServerOptions {
    /// The defaults: `127.0.0.1:0`, no encryption, and the limits of the
    /// [table](self).
    pub fn new() -> Self {
        Self::default()
    }

    /// Listens on `addr` (for example the address of a stopped server, to
    /// restart on the same port).
    #[must_use]
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.addr = Some(addr);
        self
    }

    /// Accepts encrypted connections with `key`.
    #[must_use]
    pub fn encryption(mut self, key: ServerPrivateKey) -> Self {
        self.encryption = Some(key);
        self
    }

    /// With encryption, also serves clients that do not start with `*key`,
    /// unencrypted (see [`allow_plain`](Self::allow_plain)).
    #[must_use]
    pub fn allow_plain(mut self, allow: bool) -> Self {
        self.allow_plain = allow;
        self
    }

    /// Sets the largest payload accepted from a client.
    #[must_use]
    pub fn max_payload(mut self, max: usize) -> Self {
        self.max_payload = max;
        self
    }

    /// Sets [`max_connections`](Self::max_connections) (at least 1).
    #[must_use]
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// Sets [`idle_timeout`](Self::idle_timeout) (`None`: never).
    #[must_use]
    pub fn idle_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.idle_timeout = timeout.into();
        self
    }

    /// Sets [`authenticated_idle_timeout`](Self::authenticated_idle_timeout)
    /// (`None`: never).
    #[must_use]
    pub fn authenticated_idle_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.authenticated_idle_timeout = timeout.into();
        self
    }

    /// Sets [`frame_timeout`](Self::frame_timeout) (`None`: never).
    #[must_use]
    pub fn frame_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.frame_timeout = timeout.into();
        self
    }

    /// Sets [`unauthenticated_buffer`](Self::unauthenticated_buffer).
    #[must_use]
    pub fn unauthenticated_buffer(mut self, bytes: usize) -> Self {
        self.unauthenticated_buffer = bytes;
        self
    }

    /// Sets [`received_log_entries`](Self::received_log_entries) and
    /// [`received_log_bytes`](Self::received_log_bytes).
    #[must_use]
    pub fn received_log(mut self, entries: usize, bytes: usize) -> Self {
        self.received_log_entries = entries;
        self.received_log_bytes = bytes;
        self
    }
}

/// Raises the process's soft limit on open descriptors to its hard limit,
/// as servers do at start (one connection costs one descriptor), and
/// returns the new soft limit. On systems without such limits it does
/// nothing and returns `u64::MAX`.
///
/// # Errors
///
/// When the limit cannot be read or set.
pub fn raise_fd_limit() -> std::io::Result<u64> {
    imp::raise_fd_limit()
}

/// The descriptors connections may take, process-wide: the soft limit less
/// [`DESCRIPTOR_RESERVE`] (`usize::MAX` where there is no limit).
pub(super) fn descriptor_budget() -> usize {
    imp::soft_fd_limit()
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
        .map_or(usize::MAX, |n| n.saturating_sub(DESCRIPTOR_RESERVE))
}

#[cfg(unix)]
mod imp {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

    pub(super) fn raise_fd_limit() -> std::io::Result<u64> {
        let lim = getrlimit(Resource::Nofile);
        if lim.current == lim.maximum {
            return Ok(lim.current.unwrap_or(u64::MAX));
        }
        let raised = Rlimit {
            current: lim.maximum,
            maximum: lim.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_err() {
            // macOS refuses an unlimited soft limit: its per-process
            // maximum (OPEN_MAX) is what a soft limit can reach.
            let current = lim.maximum.unwrap_or(u64::MAX).min(10_240);
            let current = current.max(lim.current.unwrap_or(0));
            setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: Some(current),
                    maximum: lim.maximum,
                },
            )?;
        }
        Ok(getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX))
    }

    pub(super) fn soft_fd_limit() -> Option<u64> {
        getrlimit(Resource::Nofile).current
    }
}

#[cfg(not(unix))]
mod imp {
    pub(super) fn raise_fd_limit() -> std::io::Result<u64> {
        Ok(u64::MAX)
    }

    pub(super) fn soft_fd_limit() -> Option<u64> {
        None
    }
}
