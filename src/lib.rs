//! Blocking Rust client for the RTM Server-End API over FPNN.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod error;
pub mod fpnn;

pub use error::{codes, Error, ProtocolError, Result};
pub mod rtm;

pub use fpnn::{ClientConfig, FpnnClient};
pub use rtm::{RtmServerClient, VoiceRoomMembers, RtcRoomMembers, RtcRoomType, AdminCommand};
#[cfg(feature = "emulator")]
pub mod emulator;
