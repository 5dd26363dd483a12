//! The error type of the crate and the named FPNN and RTM error codes.
//!
//! Every fallible call returns [`Result<T>`](Result), whose error is the one
//! [`Error`] enum. It answers the questions a caller usually has through
//! predicates instead of string matching:
//!
//! ```
//! use rtm_server_sdk::{codes, Error};
//!
//! fn describe(err: &Error) -> &'static str {
//!     if err.is_timeout() {
//!         "timed out"
//!     } else if err.is_connection_error() {
//!         "connection trouble"
//!     } else if err.code() == Some(codes::RTM_EC_NOT_IN_ROOM) {
//!         "the user is not in that room"
//!     } else {
//!         "something else"
//!     }
//! }
//! # let _ = describe;
//! ```
//!
//! # Was it processed? Retrying safely
//!
//! A failed call may still have been carried out by the server: the quest
//! was written and its answer was lost with the connection, or did not come
//! in time. [`Error::delivery`] tells the cases apart, so that a caller
//! retries only what is safe to retry:
//!
//! * [`Delivery::NotSent`]: the quest certainly never reached the server
//!   (no connection could be made, the pending cap was reached, the input
//!   was refused, the connection closed before the quest was written).
//!   Retrying cannot duplicate anything.
//! * [`Delivery::MayHaveBeenProcessed`]: the quest was written (or may have
//!   been) and no answer came. Retry only what is idempotent, or what the
//!   server can recognise as a repeat: a message sent again **with the
//!   same `mid`** is refused with
//!   [`RTM_EC_DUPLICATED_MID`](codes::RTM_EC_DUPLICATED_MID) (200053) when
//!   the first one was stored, which then means "already stored". A send
//!   retried with a fresh `mid` may store the message twice.
//! * [`Delivery::Answered`]: the server answered; its answer (an exception
//!   code, or an answer of an unexpected shape) is the outcome.
//!
//! The RTM client resends a quest once by itself when the connection is
//! lost under it (see [`RtmServerClient::call`](crate::RtmServerClient::call));
//! when that resend cannot even be sent (the server cannot be reached any
//! more), the first failure is reported, with its delivery: a quest that
//! may have been processed is never reported as a connect error.
//!
//! ```
//! use rtm_server_sdk::{Delivery, Error};
//!
//! /// Whether a non-idempotent call may be made again as is.
//! fn safe_to_retry(err: &Error) -> bool {
//!     err.delivery() == Delivery::NotSent
//! }
//! # let _ = safe_to_retry;
//! ```

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// The result type of the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a call.
///
/// The enum is `#[non_exhaustive]`: match the variants you care about and keep
/// a `_` arm, or better, use the predicates ([`Error::code`],
/// [`Error::is_timeout`], [`Error::is_connection_error`], ...).
///
/// `Error` is `Clone` so that one failure (for example the loss of a
/// connection) can be delivered to every call that was waiting on it.
///
/// Whether the server may have processed a failed call is told by
/// [`Error::delivery`] (see the [module docs](crate::error) for retrying
/// safely); each variant below says which deliveries it reports.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error outside a connection's traffic (for example a thread
    /// that could not be started). A read or write that fails on an
    /// established connection is [`Error::ConnectionClosed`] instead, with
    /// the I/O error as its source. FPNN code 20012. Nothing was sent
    /// ([`Delivery::NotSent`]).
    #[error("I/O error: {0}")]
    Io(#[source] Arc<io::Error>),

    /// The TCP connection to the endpoint could not be established (the
    /// name did not resolve, the server refused the connection, ...).
    /// FPNN code 20012. Nothing was sent ([`Delivery::NotSent`]): a call
    /// whose quest was already written before the connection was lost
    /// reports that loss instead, even when the RTM client's resend then
    /// finds the server unreachable.
    #[error("cannot connect to {endpoint}: {source}")]
    Connect {
        /// The `host:port` that was dialled.
        endpoint: String,
        /// What the operating system said.
        #[source]
        source: Arc<io::Error>,
    },

    /// Establishing the connection (name resolution, TCP connect, the key
    /// exchange and the connect hooks such as the RTM listen restore) took
    /// longer than the connect timeout, or the call's own timeout ran out
    /// while it waited for the connection. FPNN code 20012. Nothing of the
    /// call was sent ([`Delivery::NotSent`]): a call whose quest was already
    /// written before its connection was lost reports that loss instead,
    /// even when the RTM client's resend then times out connecting.
    #[error("connecting to {endpoint} timed out after {timeout:?}")]
    ConnectTimeout {
        /// The `host:port` that was dialled.
        endpoint: String,
        /// How long was waited: the connect timeout, or the call's timeout.
        timeout: Duration,
    },

    /// No answer arrived within the call's timeout, after the quest was
    /// handed to the connection. A late answer is discarded. FPNN code
    /// 20003. The server may have processed the quest
    /// ([`Delivery::MayHaveBeenProcessed`]); a call that timed out before
    /// it had a connection is [`Error::ConnectTimeout`] instead.
    #[error("quest `{method}` timed out after {timeout:?}")]
    Timeout {
        /// The FPNN method of the quest.
        method: String,
        /// The timeout that was in force for the call.
        timeout: Duration,
    },

    /// The connection closed while the call was in flight, or before it could
    /// be sent: the server closed it, a read or write on it failed (the I/O
    /// error is the [`source`](std::error::Error::source)), or the keepalive
    /// found it silent. FPNN code 20002. The next call connects again
    /// (unless the client itself was closed, see [`Error::ClientClosed`]).
    ///
    /// `delivery` tells the two cases apart:
    /// [`Delivery::MayHaveBeenProcessed`] when the quest was written (the
    /// answer was lost with the connection), [`Delivery::NotSent`] when the
    /// connection closed before the quest was written (for example while
    /// it was being set up).
    #[error("connection closed: {reason}")]
    ConnectionClosed {
        /// Why the connection ended.
        reason: String,
        /// The I/O error that ended it, when one did (the `source()` is
        /// this `Arc<std::io::Error>`).
        #[source]
        source: Option<Arc<io::Error>>,
        /// Whether the quest was written before the connection closed.
        delivery: Delivery,
    },

    /// The client was closed by [`close`](crate::fpnn::FpnnClient::close) or
    /// dropped: calls cut off by the close, and every later call, fail with
    /// it. FPNN code 20002. A call cut off in flight may have been
    /// processed, a later one was not sent; the error does not tell them
    /// apart, so it reports [`Delivery::MayHaveBeenProcessed`].
    #[error("the client is closed")]
    ClientClosed,

    /// The client already has as many calls pending as
    /// [`ClientConfig::max_pending`](crate::ClientConfig::max_pending)
    /// allows (calls in flight plus calls waiting for a connection). A
    /// callback call gets it at once; a blocking call gets it when no room
    /// came up within its timeout. Nothing was sent. FPNN code 20011 (work
    /// queue full), the code an FPNN server gives when it is overloaded
    /// ([`Delivery::NotSent`]).
    #[error("too many calls pending (the limit is {limit})")]
    TooManyPending {
        /// The configured limit.
        limit: usize,
    },

    /// The server answered with an exception (an FPNN or RTM error code and a
    /// message). See [`crate::codes`] for the named codes. The code tells
    /// what happened ([`Delivery::Answered`]).
    #[error("server error {code}: {message}")]
    Server {
        /// The error code (see [`crate::codes`]).
        code: i64,
        /// The server's human-readable message (`ex`).
        message: String,
    },

    /// The peer broke the FPNN protocol. The connection is closed, and the
    /// calls in flight on it fail with this error: the server may have
    /// processed them ([`Delivery::MayHaveBeenProcessed`]).
    #[error("protocol violation: {0}")]
    Protocol(#[from] ProtocolError),

    /// The answer was a valid FPNN answer but not of the shape the method
    /// expects (a missing key or a value of the wrong type). The server
    /// answered without an exception, so it processed the quest
    /// ([`Delivery::Answered`]).
    #[error("unexpected answer to `{method}`: {detail}")]
    BadAnswer {
        /// The FPNN method of the quest.
        method: String,
        /// What was wrong.
        detail: String,
    },

    /// The caller's input cannot be sent (for example a method name over 255
    /// bytes, a payload that is not a map, or a payload over the size limit).
    /// Nothing was sent ([`Delivery::NotSent`]).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// Setting up the encryption failed (bad server key, unsupported
    /// curve, a failed `*key` handshake, a server that does not encrypt).
    /// It happens while connecting, before any call is written
    /// ([`Delivery::NotSent`]); data that cannot be decrypted later is an
    /// [`Error::Protocol`] violation.
    #[error("encryption error: {0}")]
    Encryption(String),
}

/// Whether the server may have processed a call that failed: see
/// [`Error::delivery`], and the [module docs](crate::error) for retrying
/// safely.
///
/// `NotSent` is reported only when it is certain; when this side cannot
/// know, the answer is `MayHaveBeenProcessed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Delivery {
    /// The quest never reached the server (no connection, refused before
    /// writing, bad input, the pending cap): nothing was processed, and the
    /// call can be retried as is.
    NotSent,
    /// The quest was written, or may have been, and no answer came (the
    /// answer was lost with the connection, or did not come in time): the
    /// server may or may not have processed it. Retry only what is
    /// idempotent or recognised as a repeat (a message with the same `mid`).
    MayHaveBeenProcessed,
    /// The server answered: with an exception ([`Error::Server`], whose
    /// code says what happened), or with an answer this client could not
    /// read ([`Error::BadAnswer`]: the quest was processed).
    Answered,
}

/// The broad kind of an [`Error`], for counting failures (see
/// [`Error::kind`]): the labels of the client's statistics and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No answer in time ([`Error::Timeout`], or a server answer with the
    /// timeout code 20003 is [`Server`](ErrorKind::Server)).
    Timeout,
    /// The connection could not be made, was lost or closed, or broke the
    /// protocol ([`Error::is_connection_error`]).
    Connection,
    /// The server refused the call with an error code ([`Error::Server`]).
    Server,
    /// Refused or failed on this side: bad input, the pending cap, an
    /// answer of the wrong shape.
    Local,
}

impl ErrorKind {
    /// A short label: `timeout`, `connection`, `server` or `local`.
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connection => "connection",
            ErrorKind::Server => "server",
            ErrorKind::Local => "local",
        }
    }
}

/// How a peer broke the FPNN protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The first four bytes of a frame were not `FPNN`.
    #[error("bad magic {0:02x?} (expected \"FPNN\")")]
    BadMagic([u8; 4]),
    /// The message type byte was not 0, 1 or 2.
    #[error("unknown message type {0}")]
    UnknownMessageType(u8),
    /// The flag byte did not have exactly one of msgpack (0x80) and JSON
    /// (0x40) set.
    #[error("bad flag byte {0:#04x}")]
    BadFlag(u8),
    /// A JSON-encoded frame arrived; this client speaks msgpack only.
    #[error("JSON payloads are not supported")]
    JsonNotSupported,
    /// A quest with an empty method name.
    #[error("quest with an empty method name")]
    EmptyMethod,
    /// A frame with a zero-length payload.
    #[error("empty payload")]
    EmptyPayload,
    /// A frame (or encrypted package) announced more bytes than allowed.
    #[error("frame of {size} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// The announced size.
        size: u64,
        /// The configured maximum.
        max: u64,
    },
    /// The payload was not valid msgpack.
    #[error("invalid msgpack payload: {0}")]
    Msgpack(String),
    /// The payload root was not a map.
    #[error("payload root is not a map")]
    NotAMap,
    /// A key of the payload map was not a string.
    #[error("payload map has a non-string key")]
    NonStringKey,
    /// The method name was not valid UTF-8.
    #[error("method name is not UTF-8")]
    MethodNotUtf8,
    /// Anything else (handshake or encryption framing problems).
    #[error("{0}")]
    Other(String),
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(Arc::new(e))
    }
}

impl Error {
    /// The FPNN or RTM error code of this error, when it has one.
    ///
    /// Server exceptions return the server's code. Errors produced on this
    /// side map to the FPNN code the official SDKs use for them:
    /// [`Timeout`](Error::Timeout) is 20003, [`ConnectionClosed`](Error::ConnectionClosed)
    /// and [`ClientClosed`](Error::ClientClosed) are 20002, connect failures and I/O errors
    /// are 20012 (invalid connection), protocol violations are 20009
    /// (invalid package), [`TooManyPending`](Error::TooManyPending) is 20011
    /// (work queue full). Other errors have no code.
    #[must_use]
    pub fn code(&self) -> Option<i64> {
        use crate::codes::*;
        match self {
            Error::Server { code, .. } => Some(*code),
            Error::Timeout { .. } => Some(FPNN_EC_CORE_TIMEOUT),
            Error::ConnectionClosed { .. } | Error::ClientClosed => {
                Some(FPNN_EC_CORE_CONNECTION_CLOSED)
            }
            Error::Connect { .. } | Error::ConnectTimeout { .. } | Error::Io(_) => {
                Some(FPNN_EC_CORE_INVALID_CONNECTION)
            }
            Error::Protocol(_) => Some(FPNN_EC_CORE_INVALID_PACKAGE),
            Error::TooManyPending { .. } => Some(FPNN_EC_CORE_WORK_QUEUE_FULL),
            _ => None,
        }
    }

    /// The broad kind of this error (see [`ErrorKind`]). A connect that
    /// timed out is a [`Connection`](ErrorKind::Connection) failure (the
    /// call was never sent); only a quest that got no answer in time is a
    /// [`Timeout`](ErrorKind::Timeout).
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::Server { .. } => ErrorKind::Server,
            Error::TooManyPending { .. } | Error::InvalidArgument(_) | Error::BadAnswer { .. } => {
                ErrorKind::Local
            }
            _ => ErrorKind::Connection,
        }
    }

    /// The server's error code, only for [`Error::Server`].
    #[must_use]
    pub fn server_code(&self) -> Option<i64> {
        match self {
            Error::Server { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// True for a quest timeout or a connect timeout, and for a server
    /// exception carrying the timeout code 20003.
    #[must_use]
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. } | Error::ConnectTimeout { .. })
            || self.server_code() == Some(crate::codes::FPNN_EC_CORE_TIMEOUT)
    }

    /// True when the connection failed, closed, or could not be made: I/O,
    /// connect, connect timeout, connection closed, client closed, protocol
    /// violation (after which the connection is closed), and encryption
    /// failures.
    #[must_use]
    pub fn is_connection_error(&self) -> bool {
        matches!(
            self,
            Error::Io(_)
                | Error::Connect { .. }
                | Error::ConnectTimeout { .. }
                | Error::ConnectionClosed { .. }
                | Error::ClientClosed
                | Error::Protocol(_)
                | Error::Encryption(_)
        )
    }

    /// Whether the server may have processed the failed call: see
    /// [`Delivery`] and the [module docs](crate::error) for retrying safely.
    ///
    /// ```
    /// use rtm_server_sdk::{Delivery, Error};
    /// let refused = Error::InvalidArgument("bad".into());
    /// assert_eq!(refused.delivery(), Delivery::NotSent);
    /// assert!(!refused.may_have_been_processed());
    /// ```
    #[must_use]
    pub fn delivery(&self) -> Delivery {
        match self {
            Error::Io(_)
            | Error::Connect { .. }
            | Error::ConnectTimeout { .. }
            | Error::TooManyPending { .. }
            | Error::InvalidArgument(_)
            | Error::Encryption(_) => Delivery::NotSent,
            Error::ConnectionClosed { delivery, .. } => *delivery,
            Error::Timeout { .. } | Error::ClientClosed | Error::Protocol(_) => {
                Delivery::MayHaveBeenProcessed
            }
            Error::Server { .. } | Error::BadAnswer { .. } => Delivery::Answered,
        }
    }

    /// False only when the quest certainly never reached the server
    /// ([`Delivery::NotSent`]): then retrying cannot duplicate anything.
    /// True when it may have been processed, or the server answered.
    #[must_use]
    pub fn may_have_been_processed(&self) -> bool {
        self.delivery() != Delivery::NotSent
    }

    /// The same error, marked as never sent when it is a closed connection
    /// (used where the client knows the quest was not written).
    pub(crate) fn not_sent(self) -> Error {
        match self {
            Error::ConnectionClosed { reason, source, .. } => Error::ConnectionClosed {
                reason,
                source,
                delivery: Delivery::NotSent,
            },
            other => other,
        }
    }

    /// True when the call failed because the client was closed by the user.
    #[must_use]
    pub fn is_client_closed(&self) -> bool {
        matches!(self, Error::ClientClosed)
    }

    /// True for an exception answered by the server.
    #[must_use]
    pub fn is_server_error(&self) -> bool {
        matches!(self, Error::Server { .. })
    }

    /// A closed connection, as the calls in flight on it see it (they may
    /// have been processed; see [`not_sent`](Self::not_sent)).
    pub(crate) fn closed(reason: impl fmt::Display) -> Error {
        Error::ConnectionClosed {
            reason: reason.to_string(),
            source: None,
            delivery: Delivery::MayHaveBeenProcessed,
        }
    }

    /// The error of a connection that a failed read or write ended.
    pub(crate) fn lost(e: io::Error) -> Error {
        Error::ConnectionClosed {
            reason: format!("the connection failed: {e}"),
            source: Some(Arc::new(e)),
            delivery: Delivery::MayHaveBeenProcessed,
        }
    }

    pub(crate) fn bad_answer(method: &str, detail: impl Into<String>) -> Error {
        Error::BadAnswer {
            method: method.to_string(),
            detail: detail.into(),
        }
    }
}

/// Named FPNN and RTM error codes (the codes this crate itself produces are
/// listed in `docs/protocol.md`, section "Error codes").
///
/// Codes not listed here are passed through unchanged in
/// [`Error::Server`]; treat them as opaque.
pub mod codes {
    /// No error.
    pub const FPNN_EC_OK: i64 = 0;

    // FPNN protocol codes.
    /// Unknown codec error.
    pub const FPNN_EC_PROTO_UNKNOWN_ERROR: i64 = 10001;
    /// Unsupported protocol, format or encoding.
    pub const FPNN_EC_PROTO_NOT_SUPPORTED: i64 = 10002;
    /// Invalid package.
    pub const FPNN_EC_PROTO_INVALID_PACKAGE: i64 = 10003;
    /// JSON conversion failed.
    pub const FPNN_EC_PROTO_JSON_CONVERT: i64 = 10004;
    /// A key of the payload is not a string.
    pub const FPNN_EC_PROTO_STRING_KEY: i64 = 10005;
    /// The payload root is not a map.
    pub const FPNN_EC_PROTO_MAP_VALUE: i64 = 10006;
    /// Wrong message type (mtype).
    pub const FPNN_EC_PROTO_METHOD_TYPE: i64 = 10007;
    /// Unsupported pack type.
    pub const FPNN_EC_PROTO_PROTO_TYPE: i64 = 10008;
    /// A required key is missing from the payload.
    pub const FPNN_EC_PROTO_KEY_NOT_FOUND: i64 = 10009;
    /// A parameter has the wrong type.
    pub const FPNN_EC_PROTO_TYPE_CONVERT: i64 = 10010;
    /// Invalid file signature.
    pub const FPNN_EC_PROTO_FILE_SIGN: i64 = 10011;
    /// The file does not exist.
    pub const FPNN_EC_PROTO_FILE_NOT_EXIST: i64 = 10012;

    // FPNN core codes.
    /// Unknown error (also: an exception answer without a code, a quest handler that panicked).
    pub const FPNN_EC_CORE_UNKNOWN_ERROR: i64 = 20001;
    /// The connection closed with the call pending ([`Error::ConnectionClosed`](crate::Error::ConnectionClosed), [`Error::ClientClosed`](crate::Error::ClientClosed)).
    pub const FPNN_EC_CORE_CONNECTION_CLOSED: i64 = 20002;
    /// The call timed out ([`Error::Timeout`](crate::Error::Timeout)).
    pub const FPNN_EC_CORE_TIMEOUT: i64 = 20003;
    /// The method is unknown to (or not registered by) the peer; the client answers unhandled server quests with it.
    pub const FPNN_EC_CORE_UNKNOWN_METHOD: i64 = 20004;
    /// Encoding error.
    pub const FPNN_EC_CORE_ENCODING: i64 = 20005;
    /// Decoding error.
    pub const FPNN_EC_CORE_DECODING: i64 = 20006;
    /// Send error.
    pub const FPNN_EC_CORE_SEND_ERROR: i64 = 20007;
    /// Receive error.
    pub const FPNN_EC_CORE_RECV_ERROR: i64 = 20008;
    /// Invalid package ([`Error::Protocol`](crate::Error::Protocol)).
    pub const FPNN_EC_CORE_INVALID_PACKAGE: i64 = 20009;
    /// HTTP error.
    pub const FPNN_EC_CORE_HTTP_ERROR: i64 = 20010;
    /// The worker queue is full: a busy server, or this client's pending cap ([`Error::TooManyPending`](crate::Error::TooManyPending)).
    pub const FPNN_EC_CORE_WORK_QUEUE_FULL: i64 = 20011;
    /// Invalid connection: the client could not connect ([`Error::Connect`](crate::Error::Connect), [`Error::ConnectTimeout`](crate::Error::ConnectTimeout)).
    pub const FPNN_EC_CORE_INVALID_CONNECTION: i64 = 20012;
    /// Forbidden.
    pub const FPNN_EC_CORE_FORBIDDEN: i64 = 20013;
    /// The server is stopping.
    pub const FPNN_EC_CORE_SERVER_STOPPING: i64 = 20014;
    /// Cancelled (C++ servers only).
    pub const FPNN_EC_CORE_CANCELLED: i64 = 20015;

    // FPNN compression codes.
    /// Compression error.
    pub const FPNN_EC_ZIP_COMPRESS: i64 = 30001;
    /// Decompression error.
    pub const FPNN_EC_ZIP_DECOMPRESS: i64 = 30002;

    // RTM codes (the union of the Go and Python lists; Go spellings, with
    // the obvious typos of the originals corrected).
    /// Invalid project id or user id.
    pub const RTM_EC_INVALID_PID_OR_UID: i64 = 200001;
    /// Invalid project id or signature (a wrong secret key).
    pub const RTM_EC_INVALID_PID_OR_SIGN: i64 = 200002;
    /// Invalid file, signature or token.
    pub const RTM_EC_INVALID_FILE_OR_SIGN_OR_TOKEN: i64 = 200003;
    /// File attributes without a signature or extension.
    pub const RTM_EC_ATTRS_WITHOUT_SIGN_OR_EXT: i64 = 200004;
    /// Invalid message type.
    pub const RTM_EC_INVALID_MTYPE: i64 = 200005;
    /// The same signature was used twice; the client re-signs and resends once.
    pub const RTM_EC_SAME_SIGN: i64 = 200006;
    /// Invalid file message type.
    pub const RTM_EC_INVALID_FILE_MTYPE: i64 = 200007;
    /// The request time (`ts`) is too far from the server's clock.
    pub const RTM_EC_INVALID_SERVER_TIME: i64 = 200008;
    /// Too many requests: rate limited.
    pub const RTM_EC_FREQUENCY_LIMITED: i64 = 200010;
    /// Refresh rate limited.
    pub const RTM_EC_REFRESH_SCREEN_LIMITED: i64 = 200011;
    /// A user cannot kick themselves out.
    pub const RTM_EC_KICKOUT_SELF: i64 = 200012;
    /// The method is forbidden for this project.
    pub const RTM_EC_FORBIDDEN_METHOD: i64 = 200020;
    /// Permission denied.
    pub const RTM_EC_PERMISSION_DENIED: i64 = 200021;
    /// Unauthorized.
    pub const RTM_EC_UNAUTHORIZED: i64 = 200022;
    /// Duplicated authentication.
    pub const RTM_EC_DUPLICATED_AUTH: i64 = 200023;
    /// Authentication denied.
    pub const RTM_EC_AUTH_DENIED: i64 = 200024;
    /// Administrator login.
    pub const RTM_EC_ADMIN_LOGIN: i64 = 200025;
    /// Administrators only.
    pub const RTM_EC_ADMIN_ONLY: i64 = 200026;
    /// Invalid authentication token.
    pub const RTM_EC_INVALID_AUTH_TOKEN: i64 = 200027;
    /// The message or its attributes are too large.
    pub const RTM_EC_LARGE_MESSAGE_OR_ATTRS: i64 = 200030;
    /// The file or its attributes are too large.
    pub const RTM_EC_LARGE_FILE_OR_ATTRS: i64 = 200031;
    /// A parameter list has too many items.
    pub const RTM_EC_TOO_MANY_ITEMS_IN_PARAMETERS: i64 = 200032;
    /// A required parameter is empty.
    pub const RTM_EC_EMPTY_PARAMETER: i64 = 200033;
    /// A parameter is invalid.
    pub const RTM_EC_INVALID_PARAMETER: i64 = 200034;
    /// The user is not in the room.
    pub const RTM_EC_NOT_IN_ROOM: i64 = 200040;
    /// The user is not a member of the group.
    pub const RTM_EC_NOT_GROUP_MEMBER: i64 = 200041;
    /// The group has the largest number of members allowed.
    pub const RTM_EC_MAX_GROUP_MEMBER_COUNT: i64 = 200042;
    /// The users are not friends.
    pub const RTM_EC_NOT_FRIEND: i64 = 200043;
    /// The user is banned in the group.
    pub const RTM_EC_BANNED_IN_GROUP: i64 = 200044;
    /// The user is banned in the room.
    pub const RTM_EC_BANNED_IN_ROOM: i64 = 200045;
    /// The group is empty.
    pub const RTM_EC_EMPTY_GROUP: i64 = 200046;
    /// The largest number of rooms was reached.
    pub const RTM_EC_MAX_ROOM_COUNT: i64 = 200047;
    /// The largest number of friends was reached.
    pub const RTM_EC_MAX_FRIEND_COUNT: i64 = 200048;
    /// The user is blocked.
    pub const RTM_EC_BLOCKED_USER: i64 = 200049;
    /// Unsupported language.
    pub const RTM_EC_UNSUPPORTED_LANGUAGE: i64 = 200050;
    /// The translation is empty.
    pub const RTM_EC_EMPTY_TRANSLATION: i64 = 200051;
    /// A user cannot send to themselves.
    pub const RTM_EC_SEND_TO_SELF: i64 = 200052;
    /// A message id was used twice.
    pub const RTM_EC_DUPLICATED_MID: i64 = 200053;
    /// The message contains sensitive words.
    pub const RTM_EC_SENSITIVE_WORDS: i64 = 200054;
    /// The user is not online.
    pub const RTM_EC_NOT_ONLINE: i64 = 200055;
    /// Translation failed.
    pub const RTM_EC_TRANSLATION_ERROR: i64 = 200056;
    /// Stopped by the profanity filter.
    pub const RTM_EC_PROFANITY_STOP: i64 = 200057;
    /// The feature is not configured in the console.
    pub const RTM_EC_NO_CONFIG_IN_CONSOLE: i64 = 200060;
    /// Unsupported transcription type.
    pub const RTM_EC_UNSUPPORTED_TRANSCRIBE_TYPE: i64 = 200061;
    /// The message was not found.
    pub const RTM_EC_MESSAGE_NOT_FOUND: i64 = 200070;
    /// Unknown RTM error.
    pub const RTM_EC_UNKNOWN_ERROR: i64 = 200999;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predicates_and_codes() {
        let t = Error::Timeout {
            method: "m".into(),
            timeout: Duration::from_secs(1),
        };
        assert!(t.is_timeout());
        assert_eq!(t.code(), Some(codes::FPNN_EC_CORE_TIMEOUT));
        assert!(!t.is_connection_error());
        let c = Error::closed("bye");
        assert!(c.is_connection_error());
        assert_eq!(c.code(), Some(20002));
        let s = Error::Server {
            code: codes::RTM_EC_NOT_IN_ROOM,
            message: "x".into(),
        };
        assert!(s.is_server_error());
        assert_eq!(s.server_code(), Some(200040));
        assert!(!s.is_connection_error());
        let p = Error::from(ProtocolError::BadMagic(*b"HTTP"));
        assert!(p.is_connection_error());
        assert_eq!(p.code(), Some(20009));
        assert_eq!(Error::InvalidArgument("x".into()).code(), None);
    }

    #[test]
    fn kinds() {
        let timeout = Error::Timeout {
            method: "m".into(),
            timeout: Duration::from_secs(1),
        };
        assert_eq!(timeout.kind(), ErrorKind::Timeout);
        let connect_timeout = Error::ConnectTimeout {
            endpoint: "e".into(),
            timeout: Duration::from_secs(1),
        };
        assert_eq!(connect_timeout.kind(), ErrorKind::Connection);
        assert_eq!(Error::closed("x").kind(), ErrorKind::Connection);
        assert_eq!(Error::ClientClosed.kind(), ErrorKind::Connection);
        let server = Error::Server {
            code: 20003,
            message: String::new(),
        };
        assert_eq!(server.kind(), ErrorKind::Server);
        assert_eq!(Error::TooManyPending { limit: 1 }.kind(), ErrorKind::Local);
        assert_eq!(Error::bad_answer("m", "x").kind(), ErrorKind::Local);
        assert_eq!(ErrorKind::Server.as_str(), "server");
    }

    #[test]
    fn delivery_of_each_kind() {
        use Delivery::*;
        let lost = Error::closed("the server closed the connection");
        assert_eq!(lost.delivery(), MayHaveBeenProcessed);
        assert!(lost.may_have_been_processed());
        let refused = lost.clone().not_sent();
        assert_eq!(refused.delivery(), NotSent);
        assert!(!refused.may_have_been_processed());
        // Marking keeps everything else.
        assert_eq!(refused.to_string(), lost.to_string());
        assert_eq!(refused.code(), Some(20002));
        let io = Error::lost(io::Error::other("reset"));
        assert_eq!(io.delivery(), MayHaveBeenProcessed);
        assert!(std::error::Error::source(&io.clone().not_sent()).is_some());
        let cases = [
            (
                Error::Timeout {
                    method: "m".into(),
                    timeout: Duration::ZERO,
                },
                MayHaveBeenProcessed,
            ),
            (Error::ClientClosed, MayHaveBeenProcessed),
            (
                Error::Protocol(ProtocolError::BadMagic(*b"HTTP")),
                MayHaveBeenProcessed,
            ),
            (
                Error::ConnectTimeout {
                    endpoint: "e".into(),
                    timeout: Duration::ZERO,
                },
                NotSent,
            ),
            (
                Error::Connect {
                    endpoint: "e".into(),
                    source: Arc::new(io::Error::other("refused")),
                },
                NotSent,
            ),
            (Error::TooManyPending { limit: 1 }, NotSent),
            (Error::InvalidArgument("x".into()), NotSent),
            (Error::Encryption("x".into()), NotSent),
            (Error::from(io::Error::other("spawn")), NotSent),
            (
                Error::Server {
                    code: 200040,
                    message: String::new(),
                },
                Answered,
            ),
            (Error::bad_answer("m", "no key"), Answered),
        ];
        for (err, delivery) in cases {
            assert_eq!(err.delivery(), delivery, "{err:?}");
            // Only a closed connection carries a mark of its own.
            assert_eq!(err.clone().not_sent().delivery(), delivery, "{err:?}");
        }
    }
}
