//! A blocking Rust client for the **RTM Server-End API**, over the FPNN
//! binary protocol.
//!
//! It manages RTM real-time voice and RTC rooms from ordinary (non-async)
//! Rust programs and from callback-style thread-pool servers: every API
//! method has a **blocking** form that returns its typed result, and a
//! **callback** form (`*_with_callback`) that returns at once and hands the
//! same result to a closure. Each call has a timeout that falls back to the
//! client's default.
//!
//! # A complete example
//!
//! This runs against the built-in emulator (cargo feature `emulator`), which
//! listens on 127.0.0.1; against a real server, pass its `host:port`, your
//! project id and your secret key instead.
//!
//! ```
//! use std::sync::mpsc;
//! use std::time::Duration;
//! use rtm_server_sdk::emulator::RtmEmulator;
//! use rtm_server_sdk::{codes, ClientConfig, RtmServerClient};
//!
//! # fn main() -> rtm_server_sdk::Result<()> {
//! let emulator = RtmEmulator::start(11000001, "secret").unwrap();
//! let config = ClientConfig::default().quest_timeout(Duration::from_secs(5));
//! let client = RtmServerClient::with_config(11000001, "secret", emulator.endpoint(), config)?;
//!
//! // Blocking calls. Pulling users into a room creates it.
//! client.pull_into_voice_room(42, &[1001, 1002])?;
//! assert_eq!(client.get_voice_room_list()?, vec![42]);
//! assert_eq!(client.get_voice_room_member_count(42)?, 2);
//! client.invite_user_into_voice_room(42, &[1003], 1001)?;
//! client.set_voice_room_mic_status(42, true)?;
//! client.kick_out_from_voice_room(42, 1002, 1001)?;
//! assert_eq!(client.get_voice_room_members(42)?.uids, vec![1001]);
//!
//! // The callback form: the closure runs once, on a callback thread.
//! let (tx, rx) = mpsc::channel();
//! client.get_voice_room_member_count_with_callback(42, move |result| {
//!     tx.send(result).unwrap();
//! });
//! assert_eq!(rx.recv().unwrap()?, 1);
//!
//! // A per-call timeout.
//! client.with_timeout(Duration::from_secs(1)).close_voice_room(42)?;
//!
//! // Errors are typed, with the server's code.
//! let err = client.close_voice_room(42).unwrap_err();
//! assert_eq!(err.code(), Some(codes::RTM_EC_NOT_IN_ROOM));
//! assert!(err.is_server_error());
//!
//! client.close(); // or drop it: pending calls complete, threads are joined
//! # Ok(())
//! # }
//! ```
//!
//! # What is where
//!
//! * [`RtmServerClient`]: the RTM client. The voice-room methods
//!   (`invite_user_into_voice_room`, `close_voice_room`,
//!   `kick_out_from_voice_room`, `get_voice_room_list`,
//!   `get_voice_room_members`, `get_voice_room_member_count`,
//!   `set_voice_room_mic_status`, `pull_into_voice_room`), their RTC-room
//!   successors (`*_rtc_room`, `admin_command`), and [`RtmServerClient::call`]
//!   for any other signed RTM method.
//! * [`ClientConfig`]: timeouts, size limits, callback threads, encryption.
//! * [`Error`]: one error enum with predicates ([`Error::code`],
//!   [`Error::is_timeout`], [`Error::is_connection_error`]) and the named
//!   codes in [`codes`].
//! * [`fpnn`]: the transport underneath: the pure frame codec, encryption,
//!   and [`FpnnClient`] for raw FPNN quests.
//! * `emulator` (cargo feature `emulator`): an in-process RTM server for
//!   tests and examples.
//!
//! # Staying connected
//!
//! Calls connect on demand; after a lost connection the client reconnects
//! in the background with the official SDKs' regressive back-off
//! ([`fpnn::ReconnectStrategy`]), restores its listen state before any call
//! uses the new connection, and reports every change through
//! [`RtmServerClient::set_event_handler`]. An optional keepalive
//! ([`fpnn::KeepaliveConfig`]) drops half-open connections. Server pushes
//! (messages, events) reach a [`rtm::PushHandler`].
//!
//! # Threads
//!
//! A client runs, per connection, a reader thread and a writer thread; a
//! timer thread (callback timeouts, keepalive); a supervisor thread
//! (connection events, background reconnects); and a small pool of callback
//! threads (callbacks and server pushes; two by default, see
//! [`ClientConfig::callback_threads`]). User code never runs on the reader
//! thread, so a callback may itself make blocking calls on the same client.
//! Callback calls made from callbacks are written together when their batch
//! of callbacks is done (see [`FpnnClient::call_with_callback`]); keep heavy
//! work out of callbacks. All of these threads are joined when the client
//! is closed or dropped. The library
//! logs through the `log` facade and never prints.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod error;
pub mod fpnn;
pub mod rtm;

#[cfg(feature = "emulator")]
pub mod emulator;

pub use error::{codes, Error, ProtocolError, Result};
/// The msgpack crate the raw calls speak (`rmpv::Value` maps), re-exported
/// so that its version always matches this crate's.
pub use rmpv;
/// A msgpack value: the parameters and answer of the raw
/// [`RtmServerClient::call`] and of [`FpnnClient`] calls.
pub use rmpv::Value;

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
pub use fpnn::{ClientConfig, FpnnClient};
pub use rtm::{AdminCommand, RtcRoomMembers, RtcRoomType, RtmServerClient, VoiceRoomMembers};
