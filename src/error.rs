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
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error on an established connection (read or write failed).
    #[error("I/O error: {0}")]
    Io(#[source] Arc<io::Error>),

    /// The TCP connection to the endpoint could not be established.
    #[error("cannot connect to {endpoint}: {source}")]
    Connect {
        /// The `host:port` that was dialled.
        endpoint: String,
        /// What the operating system said.
        #[source]
        source: Arc<io::Error>,
    },

    /// Establishing the connection (TCP connect plus any handshake) took
    /// longer than the connect timeout.
    #[error("connecting to {endpoint} timed out after {timeout:?}")]
    ConnectTimeout {
        /// The `host:port` that was dialled.
        endpoint: String,
        /// The connect timeout in force.
        timeout: Duration,
    },

    /// No answer arrived within the quest timeout. A late answer is
    /// discarded. FPNN code 20003.
    #[error("quest `{method}` timed out after {timeout:?}")]
    Timeout {
        /// The FPNN method of the quest.
        method: String,
        /// The timeout that was in force for the call.
        timeout: Duration,
    },

    /// The connection closed while the call was in flight, or before it could
    /// be sent. FPNN code 20002. The next call connects again (unless the
    /// client itself was closed, see [`Error::ClientClosed`]).
    #[error("connection closed: {reason}")]
    ConnectionClosed {
        /// Why the connection ended.
        reason: String,
    },

    /// The client was closed by [`close`](crate::fpnn::FpnnClient::close) or
    /// dropped; it accepts no more calls.
    #[error("the client is closed")]
    ClientClosed,

    /// The server answered with an exception (an FPNN or RTM error code and a
    /// message). See [`crate::codes`] for the named codes.
    #[error("server error {code}: {message}")]
    Server {
        /// The error code (see [`crate::codes`]).
        code: i64,
        /// The server's human-readable message (`ex`).
        message: String,
    },

    /// The peer broke the FPNN protocol. The connection is closed.
    #[error("protocol violation: {0}")]
    Protocol(#[from] ProtocolError),

    /// The answer was a valid FPNN answer but not of the shape the method
    /// expects (a missing key or a value of the wrong type).
    #[error("unexpected answer to `{method}`: {detail}")]
    BadAnswer {
        /// The FPNN method of the quest.
        method: String,
        /// What was wrong.
        detail: String,
    },

    /// The caller's input cannot be sent (for example a method name over 255
    /// bytes, a payload that is not a map, or a payload over the size limit).
    /// Nothing was sent.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// Setting up or running the encryption failed (bad server key,
    /// unsupported curve, failed `*key` handshake).
    #[error("encryption error: {0}")]
    Encryption(String),
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
    /// (invalid package). Other errors have no code.
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
            _ => None,
        }
    }

    /// The server's error code, only for [`Error::Server`].
    pub fn server_code(&self) -> Option<i64> {
        match self {
            Error::Server { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// True for a quest timeout or a connect timeout, and for a server
    /// exception carrying the timeout code 20003.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. } | Error::ConnectTimeout { .. })
            || self.server_code() == Some(crate::codes::FPNN_EC_CORE_TIMEOUT)
    }

    /// True when the connection failed, closed, or could not be made: I/O,
    /// connect, connect timeout, connection closed, client closed, protocol
    /// violation (after which the connection is closed), and encryption
    /// failures.
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

    /// True when the call failed because the client was closed by the user.
    pub fn is_client_closed(&self) -> bool {
        matches!(self, Error::ClientClosed)
    }

    /// True for an exception answered by the server.
    pub fn is_server_error(&self) -> bool {
        matches!(self, Error::Server { .. })
    }

    pub(crate) fn closed(reason: impl fmt::Display) -> Error {
        Error::ConnectionClosed {
            reason: reason.to_string(),
        }
    }

    pub(crate) fn bad_answer(method: &str, detail: impl Into<String>) -> Error {
        Error::BadAnswer {
            method: method.to_string(),
            detail: detail.into(),
        }
    }
}

/// Named FPNN and RTM error codes (PROTOCOL.md section 4).
///
/// Codes not listed here are passed through unchanged in
/// [`Error::Server`]; treat them as opaque.
pub mod codes {
    #![allow(missing_docs)]

    /// No error.
    pub const FPNN_EC_OK: i64 = 0;

    // FPNN protocol codes.
    pub const FPNN_EC_PROTO_UNKNOWN_ERROR: i64 = 10001;
    pub const FPNN_EC_PROTO_NOT_SUPPORTED: i64 = 10002;
    pub const FPNN_EC_PROTO_INVALID_PACKAGE: i64 = 10003;
    pub const FPNN_EC_PROTO_JSON_CONVERT: i64 = 10004;
    pub const FPNN_EC_PROTO_STRING_KEY: i64 = 10005;
    pub const FPNN_EC_PROTO_MAP_VALUE: i64 = 10006;
    pub const FPNN_EC_PROTO_METHOD_TYPE: i64 = 10007;
    pub const FPNN_EC_PROTO_PROTO_TYPE: i64 = 10008;
    pub const FPNN_EC_PROTO_KEY_NOT_FOUND: i64 = 10009;
    pub const FPNN_EC_PROTO_TYPE_CONVERT: i64 = 10010;
    pub const FPNN_EC_PROTO_FILE_SIGN: i64 = 10011;
    pub const FPNN_EC_PROTO_FILE_NOT_EXIST: i64 = 10012;

    // FPNN core codes.
    pub const FPNN_EC_CORE_UNKNOWN_ERROR: i64 = 20001;
    pub const FPNN_EC_CORE_CONNECTION_CLOSED: i64 = 20002;
    pub const FPNN_EC_CORE_TIMEOUT: i64 = 20003;
    pub const FPNN_EC_CORE_UNKNOWN_METHOD: i64 = 20004;
    pub const FPNN_EC_CORE_ENCODING: i64 = 20005;
    pub const FPNN_EC_CORE_DECODING: i64 = 20006;
    pub const FPNN_EC_CORE_SEND_ERROR: i64 = 20007;
    pub const FPNN_EC_CORE_RECV_ERROR: i64 = 20008;
    pub const FPNN_EC_CORE_INVALID_PACKAGE: i64 = 20009;
    pub const FPNN_EC_CORE_HTTP_ERROR: i64 = 20010;
    pub const FPNN_EC_CORE_WORK_QUEUE_FULL: i64 = 20011;
    pub const FPNN_EC_CORE_INVALID_CONNECTION: i64 = 20012;
    pub const FPNN_EC_CORE_FORBIDDEN: i64 = 20013;
    pub const FPNN_EC_CORE_SERVER_STOPPING: i64 = 20014;
    pub const FPNN_EC_CORE_CANCELLED: i64 = 20015;

    // FPNN compression codes.
    pub const FPNN_EC_ZIP_COMPRESS: i64 = 30001;
    pub const FPNN_EC_ZIP_DECOMPRESS: i64 = 30002;

    // RTM codes (the union of the Go and Python lists; Go spellings, with
    // the obvious typos of the originals corrected).
    pub const RTM_EC_INVALID_PID_OR_UID: i64 = 200001;
    pub const RTM_EC_INVALID_PID_OR_SIGN: i64 = 200002;
    pub const RTM_EC_INVALID_FILE_OR_SIGN_OR_TOKEN: i64 = 200003;
    pub const RTM_EC_ATTRS_WITHOUT_SIGN_OR_EXT: i64 = 200004;
    pub const RTM_EC_INVALID_MTYPE: i64 = 200005;
    pub const RTM_EC_SAME_SIGN: i64 = 200006;
    pub const RTM_EC_INVALID_FILE_MTYPE: i64 = 200007;
    pub const RTM_EC_INVALID_SERVER_TIME: i64 = 200008;
    pub const RTM_EC_FREQUENCY_LIMITED: i64 = 200010;
    pub const RTM_EC_REFRESH_SCREEN_LIMITED: i64 = 200011;
    pub const RTM_EC_KICKOUT_SELF: i64 = 200012;
    pub const RTM_EC_FORBIDDEN_METHOD: i64 = 200020;
    pub const RTM_EC_PERMISSION_DENIED: i64 = 200021;
    pub const RTM_EC_UNAUTHORIZED: i64 = 200022;
    pub const RTM_EC_DUPLICATED_AUTH: i64 = 200023;
    pub const RTM_EC_AUTH_DENIED: i64 = 200024;
    pub const RTM_EC_ADMIN_LOGIN: i64 = 200025;
    pub const RTM_EC_ADMIN_ONLY: i64 = 200026;
    pub const RTM_EC_INVALID_AUTH_TOKEN: i64 = 200027;
    pub const RTM_EC_LARGE_MESSAGE_OR_ATTRS: i64 = 200030;
    pub const RTM_EC_LARGE_FILE_OR_ATTRS: i64 = 200031;
    pub const RTM_EC_TOO_MANY_ITEMS_IN_PARAMETERS: i64 = 200032;
    pub const RTM_EC_EMPTY_PARAMETER: i64 = 200033;
    pub const RTM_EC_INVALID_PARAMETER: i64 = 200034;
    pub const RTM_EC_NOT_IN_ROOM: i64 = 200040;
    pub const RTM_EC_NOT_GROUP_MEMBER: i64 = 200041;
    pub const RTM_EC_MAX_GROUP_MEMBER_COUNT: i64 = 200042;
    pub const RTM_EC_NOT_FRIEND: i64 = 200043;
    pub const RTM_EC_BANNED_IN_GROUP: i64 = 200044;
    pub const RTM_EC_BANNED_IN_ROOM: i64 = 200045;
    pub const RTM_EC_EMPTY_GROUP: i64 = 200046;
    pub const RTM_EC_MAX_ROOM_COUNT: i64 = 200047;
    pub const RTM_EC_MAX_FRIEND_COUNT: i64 = 200048;
    pub const RTM_EC_BLOCKED_USER: i64 = 200049;
    pub const RTM_EC_UNSUPPORTED_LANGUAGE: i64 = 200050;
    pub const RTM_EC_EMPTY_TRANSLATION: i64 = 200051;
    pub const RTM_EC_SEND_TO_SELF: i64 = 200052;
    pub const RTM_EC_DUPLICATED_MID: i64 = 200053;
    pub const RTM_EC_SENSITIVE_WORDS: i64 = 200054;
    pub const RTM_EC_NOT_ONLINE: i64 = 200055;
    pub const RTM_EC_TRANSLATION_ERROR: i64 = 200056;
    pub const RTM_EC_PROFANITY_STOP: i64 = 200057;
    pub const RTM_EC_NO_CONFIG_IN_CONSOLE: i64 = 200060;
    pub const RTM_EC_UNSUPPORTED_TRANSCRIBE_TYPE: i64 = 200061;
    pub const RTM_EC_MESSAGE_NOT_FOUND: i64 = 200070;
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
}
