//! The RTM layer: request signing, the resend rule, and the API families.
//!
//! * [`RtmServerClient`]: the client; every method has a blocking form and
//!   a `*_with_callback` form.
//! * one module per API family (below), whose docs show it at work; the
//!   methods themselves are all on [`RtmServerClient`], and the types are
//!   re-exported here.
//! * [`files`]: sending files through the file gate (both forms).
//! * [`sign`] and [`next_salt`]: the signing primitives, public for users
//!   who build quests themselves.

mod auth;
pub mod chat;
mod client;
pub mod data;
pub mod devices;
mod file_gates;
pub mod files;
pub mod groups;
pub mod history;
pub mod imserver;
pub mod listen;
pub mod message;
pub mod messages;
pub mod moderation;
pub(crate) mod params;
pub mod push;
pub mod relations;
pub mod rooms;
pub mod rtc;
pub mod users;
pub mod voice;

pub use auth::{next_salt, sign, unix_seconds};
pub use client::{RtmServerClient, WeakRtmServerClient};
pub use devices::{DevicePushOptions, PushOptionType};
pub use files::{AudioInfo, FileOptions, FileType, DEFAULT_FILE_GATE_IDLE, FILE_SEND_TIMEOUT};
pub use groups::GroupInfo;
pub use history::{
    HistoryMessage, HistoryPage, HistoryPages, HistoryQuery, MessageCount, MsgCountOptions,
    P2pDirection, RetrievedMessage,
};
pub use imserver::InviteGrant;
pub use listen::{ListenState, ListenStatus, ListenTargets};
pub use message::{
    next_mid, ClearProjectTarget, ConversationType, FileInfo, MessageBody, MessageType, SendOptions,
};
pub use moderation::{
    AudioOptions, CheckResult, MediaSource, Profanity, ProfanityAction, SpeechText, TextType,
    TranslateOptions, Translation,
};
pub use push::{PushEvent, PushHandler, PushMessage};
pub use rooms::RoomInfo;
pub use rtc::{AdminCommand, RtcRoomMembers, RtcRoomOptions, RtcRoomType};
pub use users::UserInfo;
pub use voice::VoiceRoomMembers;
