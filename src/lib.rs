//! A blocking Rust client for the **RTM Server-End API**, over the FPNN
//! binary protocol.
//!
//! It covers the whole RTM Server-End API (tokens, users, friends, groups,
//! rooms, devices, messages and history, translation and moderation,
//! files, voice and RTC rooms, the IM server, server push) for ordinary
//! (non-async) Rust programs and callback-style thread-pool servers: every API
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
//! * [`RtmServerClient`]: the RTM client. Every method of the RTM
//!   Server-End API is on it, in both forms; [`RtmServerClient::call`]
//!   sends any other signed RTM method. The methods come in families, each
//!   with a module whose docs show it at work:
//!
//! | family | module | methods (blocking form; each has `*_with_callback`) |
//! |---|---|---|
//! | tokens and users | [`rtm::users`] | `get_token`, `remove_token`, `kickout`, `get_online_users`, project black and ban lists, user info, `clear_user_message`, sessions |
//! | friends and blacklists | [`rtm::relations`] | `add_friends`, `get_friends`, `is_friend(s)`, `add_blacks`, `is_black(s)`, ... |
//! | per-user data | [`rtm::data`] | `get_data`, `set_data`, `del_data` |
//! | groups | [`rtm::groups`] | members, bans, info, counts, `get_user_groups`, `clear_project_group` |
//! | rooms | [`rtm::rooms`] | members, bans, info, counts, user-room links |
//! | devices | [`rtm::devices`] | devices and push options |
//! | messages | [`rtm::messages`], [`rtm::chat`] | `send_message`, `send_group_message`, ..., and the chat and cmd forms |
//! | history | [`rtm::history`] | history pages (`get_group_message`, ..., with [`rtm::HistoryQuery::pages`]), `get_message`, delete, edit, clean, counts |
//! | translation and moderation | [`rtm::moderation`] | `translate`, `profanity`, `speech2text`, text, image, audio and video checks |
//! | files | [`rtm::files`] | `send_file`, `send_files`, `send_group_file`, `send_room_file`, `send_broadcast_file` |
//! | the IM server | [`rtm::imserver`] | the `imserver_*` methods |
//! | voice rooms (2021) | [`rtm::voice`] | `pull_into_voice_room`, `invite_user_into_voice_room`, ... |
//! | RTC rooms | [`rtm::rtc`] | the `*_rtc_room` methods and `admin_command` |
//! | listen and push | [`rtm::listen`], [`rtm::push`] | `add_listen`, `set_listen_status`, ...; [`rtm::PushHandler`] |
//!
//! * [`ClientConfig`]: timeouts, size limits, callback threads, encryption.
//! * [`Error`]: one error enum with predicates ([`Error::code`],
//!   [`Error::is_timeout`], [`Error::is_connection_error`]) and the named
//!   codes in [`codes`]; [`Error::delivery`] tells whether a failed call
//!   may have been processed by the server ([`Delivery`]), so that it is
//!   retried only when that is safe (see [`error`]).
//! * [`fpnn`]: the transport underneath: the pure frame codec, encryption,
//!   and [`FpnnClient`] for raw FPNN quests.
//! * `emulator` (cargo feature `emulator`): an in-process RTM server for
//!   tests and examples. The same emulator as a standalone program,
//!   `rtm-emulator`, is built with the feature `cli`.
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
//! [`ClientConfig::callback_threads`]). A dial (name resolution, connect,
//! key exchange) runs on a short-lived thread of its own, shared by every
//! call that waits for it, so that `close()` never waits for the network;
//! callbacks of calls made after `close()` run on a short-lived thread too,
//! never on the caller's. Thread names carry a per-client number
//! (`fpnn-3-cb-0`). User code never runs on the reader thread, so a
//! callback may itself make blocking calls on the same client. Callback
//! calls made from callbacks are written together when their batch of
//! callbacks is done (see [`FpnnClient::call_with_callback`]); keep heavy
//! work out of callbacks. The long-lived threads are joined when the client
//! is closed or dropped. The library logs through the `log` facade and
//! never prints.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod error;
pub mod fpnn;
pub mod rtm;

#[cfg(feature = "emulator")]
pub mod emulator;
#[cfg(feature = "metrics")]
pub mod metrics;

pub use error::{codes, Delivery, Error, ErrorKind, ProtocolError, Result};
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
pub use fpnn::{ClientConfig, ClientStats, FpnnClient, WeakFpnnClient};
pub use rtm::{
    AdminCommand, RtcRoomMembers, RtcRoomType, RtmServerClient, VoiceRoomMembers,
    WeakRtmServerClient,
};
