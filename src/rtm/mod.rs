//! The RTM layer: request signing, the resend rule, and the API families.
//!
//! * [`RtmServerClient`]: the client; every method has a blocking form and
//!   a `*_with_callback` form.
//! * voice rooms (the 2021 API) and RTC rooms (the current API): see the
//!   methods of [`RtmServerClient`].
//! * [`sign`] and [`next_salt`]: the signing primitives, public for users
//!   who build quests themselves.

mod auth;
mod chat;
mod client;
mod history;
mod listen;
mod message;
mod messages;
mod moderation;
pub(crate) mod params;
mod push;
mod rtc;
mod voice;

pub use auth::{next_salt, sign, unix_seconds};
pub use client::RtmServerClient;
pub use history::{
    HistoryMessage, HistoryPage, HistoryPages, HistoryQuery, MessageCount, MsgCountOptions,
    P2pDirection, RetrievedMessage,
};
pub use listen::{ListenState, ListenStatus, ListenTargets};
pub use message::{
    next_mid, ClearProjectTarget, ConversationType, FileInfo, MessageBody, MessageType, SendOptions,
};
pub use moderation::{
    AudioOptions, CheckResult, MediaSource, Profanity, ProfanityAction, SpeechText, TextType,
    TranslateOptions, Translation,
};
pub use push::{PushEvent, PushHandler, PushMessage};
pub use rtc::{AdminCommand, RtcRoomMembers, RtcRoomOptions, RtcRoomType};
pub use voice::VoiceRoomMembers;
