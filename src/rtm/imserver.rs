//! The IM library (the `imserver_*` methods): user and
//! group infos as string maps, apply and invite grants, and IM groups with
//! an owner, infos and permissions.
//!
//! The grants are kept per (`xtype`, `xid`), sent as `type` and `xid`. What
//! the `type` and grant values mean is the IM service's (no public source
//! states it), so they are plain integers here.
//!
//! ```
//! use std::collections::HashMap;
//! use rtm_server_sdk::emulator::RtmEmulator;
//! use rtm_server_sdk::RtmServerClient;
//!
//! # fn main() -> rtm_server_sdk::Result<()> {
//! let emulator = RtmEmulator::start(11000001, "secret").unwrap();
//! let client = RtmServerClient::new(11000001, "secret", emulator.endpoint())?;
//!
//! let infos = HashMap::from([("nickname".to_string(), "Ada".to_string())]);
//! client.imserver_set_user_infos(1001, &infos)?;
//! assert_eq!(client.imserver_get_user_infos(&[1001])?[&1001]["nickname"], "Ada");
//!
//! let group = HashMap::from([("name".to_string(), "Friends".to_string())]);
//! client.imserver_create_group(7, 1001, &group, &HashMap::new())?;
//! client.imserver_add_group_members(7, &[1002])?;
//! assert_eq!(client.imserver_get_group_infos(&[7])?[&7]["name"], "Friends");
//!
//! client.imserver_set_apply_grant(1, 7, 2, None)?;
//! assert_eq!(client.imserver_get_apply_grant(1, 7)?, 2);
//! # Ok(()) }
//! ```

use std::collections::HashMap;

use super::client::rtm_methods;
use super::params::{AnswerReader, StrMap};
#[allow(unused_imports)]
use super::RtmServerClient;
use crate::Result;

/// The invite grant of an IM target (answered by
/// [`imserver_get_invite_grant`](RtmServerClient::imserver_get_invite_grant)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct InviteGrant {
    /// `invite_type`.
    pub invite_type: i64,
    /// `invite_manage_type`.
    pub invite_manage_type: i64,
}

/// Reads `infos: {s(id): {s:s}}`.
fn read_infos(a: &AnswerReader<'_>) -> Result<HashMap<i64, HashMap<String, String>>> {
    a.id_map("infos", |a, key, v| match v {
        rmpv::Value::Map(entries) => entries
            .iter()
            .map(|(k, v)| Ok((a.str_of(key, k)?, a.str_of(key, v)?)))
            .collect(),
        other => Err(a.bad(format!("`{key}` holds {other}, expected a map of strings"))),
    })
}

rtm_methods! {
    /// Sets IM infos of user `uid` (key by key).
    fn imserver_set_user_infos / imserver_set_user_infos_with_callback
        (uid: i64, infos: &HashMap<String, String>) -> () {
        method: "imserver_setuserinfos",
        params: { "uid": uid, "infos": StrMap(infos) },
        answer: |_| Ok(()),
    }

    /// Sets IM infos of group `gid` (key by key).
    fn imserver_set_group_infos / imserver_set_group_infos_with_callback
        (gid: i64, infos: &HashMap<String, String>) -> () {
        method: "imserver_setgroupinfos",
        params: { "gid": gid, "infos": StrMap(infos) },
        answer: |_| Ok(()),
    }

    /// Sets the apply grant of (`xtype`, `xid`); `extra` is sent only when
    /// given and not empty.
    fn imserver_set_apply_grant / imserver_set_apply_grant_with_callback
        (xtype: i64, xid: i64, grant_type: i64, extra: Option<&str>) -> () {
        method: "imserver_setapplygrant",
        params: {
            "type": xtype, "xid": xid, "grant_type": grant_type,
            "extra": extra.filter(|e| !e.is_empty()),
        },
        answer: |_| Ok(()),
    }

    /// Sets the invite grant of (`xtype`, `xid`).
    fn imserver_set_invite_grant / imserver_set_invite_grant_with_callback
        (xtype: i64, xid: i64, invite_type: i64, invite_manage_type: i64) -> () {
        method: "imserver_setinvitegrant",
        params: {
            "type": xtype, "xid": xid, "invite_type": invite_type,
            "invite_manage_type": invite_manage_type,
        },
        answer: |_| Ok(()),
    }

    /// Creates IM group `gid` owned by `owner`, with its infos and
    /// permissions.
    fn imserver_create_group / imserver_create_group_with_callback
        (gid: i64, owner: i64, infos: &HashMap<String, String>,
         permissions: &HashMap<String, String>) -> () {
        method: "imserver_creategroup",
        params: {
            "gid": gid, "owner_uid": owner, "infos": StrMap(infos),
            "permissions": StrMap(permissions),
        },
        answer: |_| Ok(()),
    }

    /// Dismisses IM group `gid`.
    fn imserver_dismiss_group / imserver_dismiss_group_with_callback (gid: i64) -> () {
        method: "imserver_dismissgroup",
        params: { "gid": gid },
        answer: |_| Ok(()),
    }

    /// The apply grant (`grant_type`) of (`xtype`, `xid`).
    fn imserver_get_apply_grant / imserver_get_apply_grant_with_callback
        (xtype: i64, xid: i64) -> i64 {
        method: "imserver_getapplygrant",
        params: { "type": xtype, "xid": xid },
        answer: |a| a.int("grant_type"),
    }

    /// The invite grant of (`xtype`, `xid`).
    fn imserver_get_invite_grant / imserver_get_invite_grant_with_callback
        (xtype: i64, xid: i64) -> InviteGrant {
        method: "imserver_getinvitegrant",
        params: { "type": xtype, "xid": xid },
        answer: |a| Ok(InviteGrant {
            invite_type: a.int("invite_type")?,
            invite_manage_type: a.int("invite_manage_type")?,
        }),
    }

    /// The IM infos of users, by uid (users without infos may be left out).
    fn imserver_get_user_infos / imserver_get_user_infos_with_callback
        (uids: &[i64]) -> HashMap<i64, HashMap<String, String>> {
        method: "imserver_getuserinfos",
        params: { "uids": uids },
        answer: read_infos,
    }

    /// The IM infos of groups, by gid (unknown groups may be left out).
    fn imserver_get_group_infos / imserver_get_group_infos_with_callback
        (gids: &[i64]) -> HashMap<i64, HashMap<String, String>> {
        method: "imserver_getgroupinfos",
        params: { "gids": gids },
        answer: read_infos,
    }

    /// Adds users to IM group `gid`.
    fn imserver_add_group_members / imserver_add_group_members_with_callback
        (gid: i64, uids: &[i64]) -> () {
        method: "imserver_addgroupmembers",
        params: { "gid": gid, "uids": uids },
        answer: |_| Ok(()),
    }
}
