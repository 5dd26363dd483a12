//! The RTM layer: request signing, the resend rule, and the API families.
//!
//! * [`RtmServerClient`]: the client; every method has a blocking form and
//!   a `*_with_callback` form.
//! * voice rooms (the 2021 API) and RTC rooms (the current API): see the
//!   methods of [`RtmServerClient`].
//! * [`sign`] and [`next_salt`]: the signing primitives, public for users
//!   who build quests themselves.

mod auth;
mod client;
mod params;
mod rtc;
mod voice;

pub use auth::{next_salt, sign, unix_seconds};
pub use client::RtmServerClient;
pub use params::{Params, ToParam};
pub(crate) use params::AnswerReader;
pub use rtc::{AdminCommand, RtcRoomMembers, RtcRoomType};
pub use voice::VoiceRoomMembers;
