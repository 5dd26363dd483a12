//! An RTM gateway in your process, for tests, examples and benchmarks
//! (feature `emulator`): point an [`RtmServerClient`](crate::RtmServerClient)
//! (or any RTM SDK) at it and your backend runs against real in-memory
//! semantics instead of the service.
//!
//! * [`RtmEmulator`] behaves like the RTM gateway for the whole API the
//!   crate covers: it checks every quest's signature and parameters,
//!   answers the gateway's error codes, keeps users, tokens, friends,
//!   groups, rooms, voice and RTC rooms, devices, messages and files in
//!   memory, pushes messages to the connections that listen, and lets a
//!   test read all of it back (accessors such as [`RtmEmulator::group`],
//!   [`RtmEmulator::rooms`], [`RtmEmulator::listen_state`]).
//! * [`families`] documents each API family: what it implements, its
//!   errors, and where it is more lenient than the service. [`rtm`](mod@rtm)
//!   documents what every quest goes through first (the signature, the
//!   same-signature and clock checks, unknown methods).
//! * The **file gate**: every emulator also runs the second server that
//!   file sends go to ([`families::files`],
//!   [`RtmEmulator::file_gate_endpoint`]); it listens on the emulator's IP,
//!   and `filetoken` tells each client where to reach it.
//! * **Options and faults**: [`EmulatorOptions`] start an emulator with a
//!   fixed address or encryption ([`ServerOptions`]), a `ts` window, a saved
//!   state, RTM-level faults ([`EmulatorFaults`]: per-method delays and
//!   errors, dropping a connection after N quests) and observers of every
//!   quest ([`QuestRecord`]) and connection ([`ConnEvent`]), and limits on
//!   each connection's push queue ([`PushQueueLimits`]); [`EmulatorStats`]
//!   counts quests, answers, connections and queued pushes. The
//!   connection-level faults (freeze, refuse connections, drop every n-th
//!   quest) are the server's [`Faults`]. The emulator's clock can be moved
//!   forward ([`RtmEmulator::advance_clock`]) to see bans and tokens expire
//!   without waiting.
//! * **Persistence**: [`persist`] saves and loads the whole state as JSON
//!   ([`RtmEmulator::state_json`], [`RtmEmulator::save_state`]) from a
//!   snapshot, written outside the state lock so that clients are not held
//!   up; [`persist::StateFile`] holds a state file for one emulator (a
//!   second holder is refused), cleans up after killed saves and retries
//!   failed ones.
//! * **Scale**: the message store is indexed (duplicate `mid`s, history
//!   cursors, counts), so that sends and history pages cost the same with
//!   a million messages stored as with none (see [`families::messages`]).
//!   [`keys`] reads a server's ECC private key (PEM or raw) and makes key
//!   pairs for encrypted emulators.
//! * **The `rtm-emulator` program** (feature `cli`: `cargo run --features
//!   cli --bin rtm-emulator -- --help`) runs the emulator as a standalone RTM gateway
//!   for clients in any language, with these options as flags, a log of
//!   every connection and quest, and its state kept in a file across
//!   restarts (see the README).
//! * [`FpnnServer`] is the small generic FPNN server under it all: plain
//!   or encrypted connections, a pluggable [`Service`] (any closure
//!   `Fn(&ServerConn, &Quest) -> Reply`), server-to-client pushes
//!   ([`ServerConn::push`]) and a log of every received quest
//!   ([`FpnnServer::received`]).
//!
//! Everything listens on `127.0.0.1`, on a free port unless
//! [`ServerOptions::addr`] says otherwise; nothing else touches the network.
//! Stopping (or dropping) a server closes every connection and joins every
//! thread, even when clients keep their connections open.
//!
//! # Using the emulator in your tests
//!
//! Enable the feature for your tests
//! (`rtm-server-sdk = { version = "...", features = ["emulator"] }` in
//! `[dev-dependencies]`), start an emulator with the project id and secret
//! your client uses, point the client at [`RtmEmulator::endpoint`], and
//! check what your code did:
//!
//! ```
//! use std::time::Duration;
//!
//! use rtm_server_sdk::emulator::RtmEmulator;
//! use rtm_server_sdk::rtm::SendOptions;
//! use rtm_server_sdk::RtmServerClient;
//!
//! let mut emu = RtmEmulator::start(11000001, "my-secret").unwrap();
//! let client = RtmServerClient::new(11000001, "my-secret", emu.endpoint()).unwrap();
//!
//! // What a backend does at a user's login and in a group chat.
//! let token = client.get_token(1001).unwrap();
//! assert!(emu.is_token_valid(1001, &token));
//! client.add_group_members(7, &[1001, 1002]).unwrap();
//! client
//!     .send_group_message(1001, 7, 30, "hello", &SendOptions::default())
//!     .unwrap();
//! client.pull_into_voice_room(3, &[1001]).unwrap();
//!
//! // The emulator's state, read back.
//! assert_eq!(emu.group(7).unwrap().members.len(), 2);
//! assert_eq!(emu.message_count(), 1);
//! assert_eq!(emu.voice_room(3).unwrap().owner, Some(1001));
//!
//! // Faults: the next `gettoken` fails as the service would.
//! emu.faults().set_fail("gettoken", 200010);
//! let err = client.get_token(1001).unwrap_err();
//! assert_eq!(err.server_code(), Some(200010));
//!
//! // The clock moves on: a 60-second group ban is over.
//! client.add_group_ban(7, 1002, Duration::from_secs(60)).unwrap();
//! assert!(emu.is_banned_in_group(7, 1002));
//! emu.advance_clock(Duration::from_secs(61));
//! assert!(!emu.is_banned_in_group(7, 1002));
//! emu.stop();
//! ```
//!
//! A generic server with a closure service, talked to with a raw socket:
//!
//! ```
//! use std::io::{Read, Write};
//! use std::net::TcpStream;
//! use std::time::Duration;
//!
//! use rmpv::Value;
//! use rtm_server_sdk::emulator::{FpnnServer, Reply, ServerConn, ServerOptions};
//! use rtm_server_sdk::fpnn::codec::{encode_quest, Decoder, Frame, Quest};
//!
//! let server = FpnnServer::start(
//!     |_conn: &ServerConn, quest: &Quest| match quest.method.as_str() {
//!         "echo" => Reply::Answer(quest.payload.clone()),
//!         _ => Reply::error(20004, "unknown method"),
//!     },
//!     ServerOptions::new(),
//! )
//! .unwrap();
//!
//! let mut socket = TcpStream::connect(server.endpoint()).unwrap();
//! socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
//! let payload = Value::Map(vec![(Value::from("k"), Value::from(1))]);
//! let mut frame = Vec::new();
//! encode_quest(&mut frame, Some(1), "echo", &payload).unwrap();
//! socket.write_all(&frame).unwrap();
//!
//! let mut decoder = Decoder::new(1 << 20);
//! let answer = loop {
//!     if let Some(Frame::Answer(a)) = decoder.next_frame().unwrap() {
//!         break a;
//!     }
//!     let mut buf = [0u8; 1024];
//!     let n = socket.read(&mut buf).unwrap();
//!     decoder.feed(&buf[..n]);
//! };
//! assert_eq!(answer.seq, 1);
//! assert_eq!(answer.into_result().unwrap(), payload);
//! assert_eq!(server.received()[0].0, "echo");
//! ```
//!
//! Faults are switched while the server runs, for example
//! `server.faults().set_freeze(true)` to test quest timeouts, or
//! `set_drop_every(1)` to test the retry on a closed connection.

pub mod keys;
pub mod persist;
pub mod rtm;
pub mod server;

pub mod families;

mod auth;
mod membership;
mod options;
mod params;
mod pushes;
mod stats;

// The families, where the rest of the emulator expects them.
use families::{
    data, devices, files, groups, imserver, listen, messages, moderation, relations, rooms, rtc,
    users, voice,
};

#[cfg(test)]
mod testutil;

pub use groups::Group;
pub use imserver::{ApplyGrant, ImGroup};
pub use listen::ConnListenState;
pub use options::{
    ConnEvent, ConnectionObserver, EmulatorFaults, EmulatorOptions, QuestObserver, QuestOutcome,
    QuestRecord,
};
pub use pushes::{PushQueueLimits, DEFAULT_PUSH_QUEUE_BYTES, DEFAULT_PUSH_QUEUE_PUSHES};
pub use rooms::Room;
pub use rtc::{RtcRoom, UserFlags};
pub use rtm::RtmEmulator;
pub use server::{raise_fd_limit, Faults, FpnnServer, Reply, ServerConn, ServerOptions, Service};
pub use stats::{EmulatorStats, CLOSED_UNANSWERED, MAX_OTHER_METHODS};
pub use voice::{Rooms, VoiceRoom};
