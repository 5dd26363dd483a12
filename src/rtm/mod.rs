//! The RTM layer: request signing, the resend rule, and the API families.
//!
//! * [`RtmServerClient`]: the client; every method has a blocking form and
//!   a `*_with_callback` form.
//! * voice rooms (the 2021 API) and RTC rooms (the current API): see the
//!   methods of [`RtmServerClient`].
//! * [`files`]: sending files through the file gate (both forms).
//! * [`sign`] and [`next_salt`]: the signing primitives, public for users
//!   who build quests themselves.

mod auth;
mod client;
pub mod files;
mod listen;
pub(crate) mod params;
mod push;
mod rtc;
mod voice;

pub use auth::{next_salt, sign, unix_seconds};
pub use client::RtmServerClient;
pub use files::{AudioInfo, FileOptions, FileType, DEFAULT_FILE_GATE_IDLE, FILE_SEND_TIMEOUT};
pub use listen::{ListenState, ListenStatus, ListenTargets};
pub use push::{MessageBody, PushEvent, PushHandler, PushMessage};
pub use rtc::{AdminCommand, RtcRoomMembers, RtcRoomOptions, RtcRoomType};
pub use voice::VoiceRoomMembers;
