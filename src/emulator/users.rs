//! Tokens and users (A.1): login tokens, online users, project black and ban lists, user info, sessions.

use rmpv::Value;

use super::params::*;
use super::rtm::{Ctx, Family, RtmState};

/// This family's state (part of the emulator's one state).
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Users {}

/// The methods of this family.
pub(crate) const FAMILY: Family = Family {
    methods: &[],
    dispatch,
};

fn dispatch(_st: &mut RtmState, _cx: &mut Ctx<'_>, method: &str, _p: &Value) -> R<Value> {
    Err(unknown_method(method))
}
