//! Devices and push options the device tokens that
//! offline push notifications go to, and per-user push options for
//! messages from a peer or a group.
//!
//! ```
//! use rtm_server_sdk::emulator::RtmEmulator;
//! use rtm_server_sdk::rtm::PushOptionType;
//! use rtm_server_sdk::RtmServerClient;
//!
//! # fn main() -> rtm_server_sdk::Result<()> {
//! let emulator = RtmEmulator::start(11000001, "secret").unwrap();
//! let client = RtmServerClient::new(11000001, "secret", emulator.endpoint())?;
//!
//! client.add_device(1001, "fcm", "device-token-1")?;
//! // Peer 1002's messages of mtypes 30 and 31; group 7's of every mtype.
//! client.add_device_push_option(1001, PushOptionType::P2p, 1002, &[30, 31])?;
//! client.add_device_push_option(1001, PushOptionType::Group, 7, &[])?;
//!
//! let options = client.get_device_push_option(1001)?;
//! assert_eq!(options.p2p[&1002], vec![30, 31]);
//! assert!(options.group[&7].is_empty()); // empty: every mtype
//! # Ok(()) }
//! ```

use std::collections::HashMap;

use super::client::rtm_methods;
use super::params::{AnswerReader, ToParam};
#[allow(unused_imports)]
use super::RtmServerClient;
use crate::Result;

/// What a push option applies to: messages from a peer or from a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PushOptionType {
    /// P2P messages; the option's `xid` is the peer's uid (`type` 0).
    P2p,
    /// Group messages; the option's `xid` is the group id (`type` 1).
    Group,
}

impl PushOptionType {
    /// The wire value.
    #[must_use]
    pub fn code(self) -> i64 {
        match self {
            PushOptionType::P2p => 0,
            PushOptionType::Group => 1,
        }
    }
}

impl ToParam for PushOptionType {
    fn write(&self, out: &mut Vec<u8>) -> Result<bool> {
        self.code().write(out)
    }
}

/// A user's push options (answered by
/// [`get_device_push_option`](RtmServerClient::get_device_push_option)):
/// for each peer uid and each group id, the mtypes the option covers (an
/// empty list: every mtype).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DevicePushOptions {
    /// By peer uid (`p2p`).
    pub p2p: HashMap<i64, Vec<i64>>,
    /// By group id (`group`).
    pub group: HashMap<i64, Vec<i64>>,
}

fn read_mtypes(a: &AnswerReader<'_>, key: &str, v: &rmpv::Value) -> Result<Vec<i64>> {
    match v {
        rmpv::Value::Array(items) => items.iter().map(|m| a.int_of(key, m)).collect(),
        other => Err(a.bad(format!("`{key}` holds {other}, expected a list of mtypes"))),
    }
}

fn read_options(a: &AnswerReader<'_>) -> Result<DevicePushOptions> {
    Ok(DevicePushOptions {
        p2p: a.id_map("p2p", read_mtypes)?,
        group: a.id_map("group", read_mtypes)?,
    })
}

rtm_methods! {
    /// Registers a device of user `uid` for push notifications: `app_type`
    /// names the push service (for example `"apns"` or `"fcm"`),
    /// `device_token` the device.
    fn add_device / add_device_with_callback (uid: i64, app_type: &str, device_token: &str) -> () {
        method: "adddevice",
        params: { "uid": uid, "apptype": app_type, "devicetoken": device_token },
        answer: |_| Ok(()),
    }

    /// Unregisters a device of user `uid`.
    fn remove_device / remove_device_with_callback (uid: i64, device_token: &str) -> () {
        method: "removedevice",
        params: { "uid": uid, "devicetoken": device_token },
        answer: |_| Ok(()),
    }

    /// Adds a push option of user `uid` for the messages of peer or group
    /// `xid` (see [`PushOptionType`]) with the given mtypes; an empty
    /// `mtypes` means every mtype (the key is then not sent).
    fn add_device_push_option / add_device_push_option_with_callback
        (uid: i64, option_type: PushOptionType, xid: i64, mtypes: &[i64]) -> () {
        method: "addoption",
        params: {
            "uid": uid, "type": option_type, "xid": xid,
            "mtypes": (!mtypes.is_empty()).then_some(mtypes),
        },
        answer: |_| Ok(()),
    }

    /// Removes a push option of user `uid` for the messages of peer or
    /// group `xid`: the given mtypes, or the whole option when `mtypes` is
    /// empty (the key is then not sent).
    fn remove_device_push_option / remove_device_push_option_with_callback
        (uid: i64, option_type: PushOptionType, xid: i64, mtypes: &[i64]) -> () {
        method: "removeoption",
        params: {
            "uid": uid, "type": option_type, "xid": xid,
            "mtypes": (!mtypes.is_empty()).then_some(mtypes),
        },
        answer: |_| Ok(()),
    }

    /// The push options of user `uid`.
    fn get_device_push_option / get_device_push_option_with_callback
        (uid: i64) -> DevicePushOptions {
        method: "getoption",
        params: { "uid": uid },
        answer: read_options,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_option_type_codes() {
        assert_eq!(PushOptionType::P2p.code(), 0);
        assert_eq!(PushOptionType::Group.code(), 1);
    }
}
