//! The behaviour of each API family of the [`RtmEmulator`]: what it
//! implements, the errors it answers, and where it is more lenient than
//! the real service. These modules are documentation: their types are
//! re-exported at [`emulator`](super) (for example [`Group`](super::Group)),
//! and their handlers stay inside the crate.
//!
//! | family | methods | inspect it with |
//! |--------|---------|-----------------|
//! | [`users`] | tokens, online users, project black and ban lists, user info, sessions | [`RtmEmulator::is_token_valid`], [`RtmEmulator::set_online`], [`RtmEmulator::user_info`] |
//! | [`relations`] | friends and black lists | [`RtmEmulator::friends`], [`RtmEmulator::blacks`] |
//! | [`data`] | key-value data per user | [`RtmEmulator::user_data`] |
//! | [`groups`] | group members, bans, info, counts | [`RtmEmulator::group`] |
//! | [`rooms`] | room members, bans, info, counts, user-room links | [`RtmEmulator::room`] |
//! | [`devices`] | devices and push options | [`RtmEmulator::devices`], [`RtmEmulator::device_push_options`] |
//! | [`messages`] | messages, chat and history, pushes to listeners | [`RtmEmulator::message_count`] |
//! | [`moderation`] | translation and moderation (deterministic answers) | the answers themselves |
//! | [`imserver`] | the IM-server records (`imserver_*`) | [`RtmEmulator::im_group`], [`RtmEmulator::im_user_infos`] |
//! | [`files`] | `filetoken` and the file gate | [`RtmEmulator::file`], [`RtmEmulator::file_gate_endpoint`] |
//! | [`voice`] | voice rooms (2021) | [`RtmEmulator::voice_room`], [`RtmEmulator::rooms`] |
//! | [`rtc`] | RTC rooms and `adminCommand` (2023) | [`RtmEmulator::rtc_room`] |
//! | [`listen`] | `addlisten`, `removelisten`, `setlisten` | [`RtmEmulator::listen_state`] |
//!
//! Every family answers a missing parameter with 10009, a parameter of the
//! wrong type with 10010 and an invalid value with 200034 (the message
//! names the key), after the checks every quest passes (signature, faults;
//! see [`rtm`](mod@super::rtm)).
//!
//! The family files live in `src/emulator/` (for example
//! `src/emulator/groups.rs`); a new family adds its file here, its state
//! to `RtmState` and its `FAMILY` to the list in `rtm.rs`.

// What the family files reach as `super::...`.
use super::{membership, params, rtm, server};
#[cfg(doc)]
use super::{persist, RtmEmulator, ServerConn, UserFlags};

#[path = "data.rs"]
pub mod data;
#[path = "devices.rs"]
pub mod devices;
#[path = "files.rs"]
pub mod files;
#[path = "groups.rs"]
pub mod groups;
#[path = "imserver.rs"]
pub mod imserver;
#[path = "listen.rs"]
pub mod listen;
#[path = "messages.rs"]
pub mod messages;
#[path = "moderation.rs"]
pub mod moderation;
#[path = "relations.rs"]
pub mod relations;
#[path = "rooms.rs"]
pub mod rooms;
#[path = "rtc.rs"]
pub mod rtc;
#[path = "users.rs"]
pub mod users;
#[path = "voice.rs"]
pub mod voice;
