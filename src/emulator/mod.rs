//! In-process servers for tests, examples and benchmarks (feature
//! `emulator`).
//!
//! * [`FpnnServer`] is a small generic FPNN server: plain or encrypted
//!   connections, a pluggable [`Service`] (any closure
//!   `Fn(&ServerConn, &Quest) -> Reply`), server-to-client pushes
//!   ([`ServerConn::push`]), a log of every received quest
//!   ([`FpnnServer::received`]) and live fault switches ([`Faults`]: freeze,
//!   refuse connections, drop every n-th quest, delay answers).
//! * [`RtmEmulator`] is an [`FpnnServer`] that behaves like the RTM gateway
//!   for the voice-room, RTC-room and listen APIs: it checks each quest's
//!   signature, keeps rooms in memory and lets a test inspect them
//!   ([`RtmEmulator::rooms`], [`RtmEmulator::listen_state`]). See the
//!   [`rtm`] module for the exact rules.
//! * [`EmulatorOptions`] start an emulator with RTM-level faults
//!   ([`EmulatorFaults`]: per-method delays and errors, dropping a
//!   connection after N quests), a quest observer ([`QuestRecord`]), a `ts`
//!   window, or a saved state ([`persist`]: the whole state as JSON).
//!   [`keys`] reads a server's ECC private key (PEM or raw) and makes key
//!   pairs for encrypted emulators.
//! * The `rtm-emulator` program (`cargo run --features emulator --bin
//!   rtm-emulator -- --help`) runs the emulator as a standalone RTM gateway
//!   for clients in any language, with these options as flags.
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
//! your client uses, and point the client at [`RtmEmulator::endpoint`]:
//!
//! ```
//! use rtm_server_sdk::emulator::RtmEmulator;
//!
//! let mut emu = RtmEmulator::start(11000001, "my-secret").unwrap();
//! let endpoint = emu.endpoint(); // "127.0.0.1:PORT": give it to the client
//! assert!(endpoint.starts_with("127.0.0.1:"));
//! // ... run the client against `endpoint`, then inspect the state:
//! assert!(emu.rooms().voice.is_empty());
//! assert!(emu.received().is_empty());
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

mod data;
mod devices;
mod files;
mod groups;
mod imserver;
mod listen;
mod membership;
mod messages;
mod moderation;
mod options;
mod params;
mod pushes;
mod relations;
mod rooms;
mod rtc;
mod users;
mod voice;

#[cfg(test)]
mod testutil;

pub use groups::Group;
pub use imserver::{ApplyGrant, ImGroup};
pub use listen::ConnListenState;
pub use options::{
    ConnEvent, ConnectionObserver, EmulatorFaults, EmulatorOptions, QuestObserver, QuestOutcome,
    QuestRecord,
};
pub use rooms::Room;
pub use rtc::{RtcRoom, UserFlags};
pub use rtm::RtmEmulator;
pub use server::{Faults, FpnnServer, Reply, ServerConn, ServerOptions, Service};
pub use voice::{Rooms, VoiceRoom};
