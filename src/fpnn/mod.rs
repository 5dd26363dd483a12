//! The FPNN transport: the pure frame codec, encryption, the connection and
//! the client.
//!
//! Layers, from the bottom:
//!
//! * [`codec`]: frames to bytes and back; no sockets.
//! * [`crypto`]: the ECDH key exchange and the AES-CFB transforms; no
//!   sockets.
//! * the connection (private): one `TcpStream`, a named reader thread, the
//!   pending table keyed by sequence number, and the combining writer.
//! * [`ClientStats`] and [`CallObserver`]: what a client counts and who
//!   is told about each call (see [`watch`]).
//! * [`FpnnClient`]: lazy connect, timeouts, callbacks, server quests,
//!   shutdown. Its raw calls reach any FPNN method.

pub mod codec;
pub mod crypto;

mod client;
mod config;
pub(crate) mod conn;
pub(crate) mod pool;
pub mod watch;

pub(crate) use client::{ConnectHook, Core, FpnnSession, Runtime};
pub use client::{ConnectionEvent, FpnnClient, QuestHandler, QuestReply, WeakFpnnClient};
pub use config::{
    ClientConfig, KeepaliveConfig, ReconnectStrategy, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_PENDING,
    DEFAULT_QUEST_TIMEOUT,
};
pub use watch::{CallObserver, CallOutcome, CallRecord, ClientStats};
