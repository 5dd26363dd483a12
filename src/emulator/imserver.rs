//! The IM-server records (`imserver_*`).
//!
//! # Behaviour
//!
//! * User infos and group infos are string maps; `imserver_setuserinfos`
//!   and `imserver_setgroupinfos` set the given keys and keep the others.
//!   `infos` must be present (10009) and a map of strings (10010); an empty
//!   map changes nothing.
//! * `imserver_creategroup` creates an IM group with its owner (its first
//!   member), infos and permissions. Creating a group that exists and is not
//!   dismissed gives 200034; a dismissed group can be created again (the new
//!   record replaces the old one). `imserver_dismissgroup`,
//!   `imserver_setgroupinfos` and `imserver_addgroupmembers` on a group that
//!   was never created, or was dismissed, give 200034. A dismissed group is
//!   kept (marked dismissed) so that a test can inspect it.
//! * `imserver_getuserinfos` answers `infos` keyed by the decimal text of
//!   each asked uid that has infos; `imserver_getgroupinfos` likewise for
//!   each asked group that exists and is not dismissed (the others are left
//!   out).
//! * Apply grants (`grant_type`, and `extra` when sent) and invite grants
//!   (`invite_type`, `invite_manage_type`) are kept per (`type`, `xid`),
//!   whatever the values (their meaning is the service's; the emulator
//!   checks only their types). A grant never set reads as 0 (lenient: no
//!   error).
//! * IM groups are records of their own: they are not the groups of
//!   `addgroupmembers` and friends.

use std::collections::{BTreeMap, BTreeSet};

use rmpv::Value;
use serde::{Deserialize, Serialize};

use super::params::*;
use super::rtm::{Ctx, Family, RtmEmulator, RtmState};
use super::server::lock;
use crate::rtm::InviteGrant;

/// An IM group, as seen by [`RtmEmulator::im_group`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ImGroup {
    /// The group id.
    pub gid: i64,
    /// The owner (`owner_uid`).
    pub owner: i64,
    /// The infos.
    pub infos: BTreeMap<String, String>,
    /// The permissions.
    pub permissions: BTreeMap<String, String>,
    /// The members: the owner and those added.
    pub members: BTreeSet<i64>,
    /// Whether the group was dismissed.
    pub dismissed: bool,
}

/// An apply grant, as seen by [`RtmEmulator::im_apply_grant`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ApplyGrant {
    /// `grant_type`.
    pub grant_type: i64,
    /// `extra`, when it was sent.
    pub extra: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct Invite {
    invite_type: i64,
    invite_manage_type: i64,
}

/// This family's state (part of the emulator's one state).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct ImServer {
    /// uid to its infos.
    user_infos: BTreeMap<i64, BTreeMap<String, String>>,
    /// Every IM group created, dismissed ones included.
    groups: BTreeMap<i64, ImGroup>,
    /// type to xid to the apply grant.
    apply: BTreeMap<i64, BTreeMap<i64, ApplyGrant>>,
    /// type to xid to the invite grant.
    invite: BTreeMap<i64, BTreeMap<i64, Invite>>,
}

/// The methods of this family.
pub(crate) const FAMILY: Family = Family {
    methods: &[
        "imserver_setuserinfos",
        "imserver_setgroupinfos",
        "imserver_setapplygrant",
        "imserver_setinvitegrant",
        "imserver_creategroup",
        "imserver_dismissgroup",
        "imserver_getapplygrant",
        "imserver_getinvitegrant",
        "imserver_getuserinfos",
        "imserver_getgroupinfos",
        "imserver_addgroupmembers",
    ],
    dispatch,
};

impl ImServer {
    /// The live (created, not dismissed) group `gid`, or 200034.
    fn live_group(&mut self, gid: i64) -> R<&mut ImGroup> {
        self.groups
            .get_mut(&gid)
            .filter(|g| !g.dismissed)
            .ok_or_else(|| bad_value("gid", "an IM group that exists (created, not dismissed)"))
    }
}

fn infos_value<'a>(entries: impl Iterator<Item = (i64, &'a BTreeMap<String, String>)>) -> Value {
    obj(vec![(
        "infos",
        id_keyed(entries.map(|(id, infos)| (id, str_map_value(infos)))),
    )])
}

fn dispatch(st: &mut RtmState, _cx: &mut Ctx<'_>, method: &str, p: &Value) -> R<Value> {
    let im = &mut st.im;
    match method {
        "imserver_setuserinfos" => {
            let uid = int(p, "uid")?;
            let infos = str_map(p, "infos")?;
            if !infos.is_empty() {
                im.user_infos.entry(uid).or_default().extend(infos);
            }
            Ok(empty())
        }
        "imserver_setgroupinfos" => {
            let gid = int(p, "gid")?;
            let infos = str_map(p, "infos")?;
            im.live_group(gid)?.infos.extend(infos);
            Ok(empty())
        }
        "imserver_setapplygrant" => {
            let kind = int(p, "type")?;
            let xid = int(p, "xid")?;
            let grant_type = int(p, "grant_type")?;
            let extra = opt_str(p, "extra")?;
            im.apply
                .entry(kind)
                .or_default()
                .insert(xid, ApplyGrant { grant_type, extra });
            Ok(empty())
        }
        "imserver_setinvitegrant" => {
            let kind = int(p, "type")?;
            let xid = int(p, "xid")?;
            let invite = Invite {
                invite_type: int(p, "invite_type")?,
                invite_manage_type: int(p, "invite_manage_type")?,
            };
            im.invite.entry(kind).or_default().insert(xid, invite);
            Ok(empty())
        }
        "imserver_creategroup" => {
            let gid = int(p, "gid")?;
            let owner = int(p, "owner_uid")?;
            let infos = str_map(p, "infos")?;
            let permissions = str_map(p, "permissions")?;
            if im.groups.get(&gid).is_some_and(|g| !g.dismissed) {
                return Err(bad_value("gid", "a new IM group (this one exists)"));
            }
            im.groups.insert(
                gid,
                ImGroup {
                    gid,
                    owner,
                    infos,
                    permissions,
                    members: BTreeSet::from([owner]),
                    dismissed: false,
                },
            );
            Ok(empty())
        }
        "imserver_dismissgroup" => {
            let gid = int(p, "gid")?;
            im.live_group(gid)?.dismissed = true;
            Ok(empty())
        }
        "imserver_getapplygrant" => {
            let kind = int(p, "type")?;
            let xid = int(p, "xid")?;
            let grant = im.apply.get(&kind).and_then(|m| m.get(&xid));
            let grant_type = grant.map_or(0, |g| g.grant_type);
            Ok(obj(vec![("grant_type", Value::from(grant_type))]))
        }
        "imserver_getinvitegrant" => {
            let kind = int(p, "type")?;
            let xid = int(p, "xid")?;
            let grant = im
                .invite
                .get(&kind)
                .and_then(|m| m.get(&xid))
                .copied()
                .unwrap_or_default();
            Ok(obj(vec![
                ("invite_type", Value::from(grant.invite_type)),
                ("invite_manage_type", Value::from(grant.invite_manage_type)),
            ]))
        }
        "imserver_getuserinfos" => {
            let uids = int_list(p, "uids")?;
            let found: BTreeMap<i64, &BTreeMap<String, String>> = uids
                .iter()
                .filter_map(|uid| im.user_infos.get(uid).map(|i| (*uid, i)))
                .collect();
            Ok(infos_value(found.into_iter()))
        }
        "imserver_getgroupinfos" => {
            let gids = int_list(p, "gids")?;
            let found: BTreeMap<i64, &BTreeMap<String, String>> = gids
                .iter()
                .filter_map(|gid| {
                    im.groups
                        .get(gid)
                        .filter(|g| !g.dismissed)
                        .map(|g| (*gid, &g.infos))
                })
                .collect();
            Ok(infos_value(found.into_iter()))
        }
        "imserver_addgroupmembers" => {
            let gid = int(p, "gid")?;
            let uids = int_list(p, "uids")?;
            im.live_group(gid)?.members.extend(uids);
            Ok(empty())
        }
        _ => Err(unknown_method(method)),
    }
}

impl RtmEmulator {
    /// The IM infos of user `uid` (empty when none were set).
    pub fn im_user_infos(&self, uid: i64) -> BTreeMap<String, String> {
        lock(&self.shared.state)
            .im
            .user_infos
            .get(&uid)
            .cloned()
            .unwrap_or_default()
    }

    /// IM group `gid`, dismissed or not, if it was ever created.
    pub fn im_group(&self, gid: i64) -> Option<ImGroup> {
        lock(&self.shared.state).im.groups.get(&gid).cloned()
    }

    /// The apply grant of (`xtype`, `xid`), if one was set.
    pub fn im_apply_grant(&self, xtype: i64, xid: i64) -> Option<ApplyGrant> {
        lock(&self.shared.state)
            .im
            .apply
            .get(&xtype)
            .and_then(|m| m.get(&xid))
            .cloned()
    }

    /// The invite grant of (`xtype`, `xid`), if one was set.
    pub fn im_invite_grant(&self, xtype: i64, xid: i64) -> Option<InviteGrant> {
        let st = lock(&self.shared.state);
        let i = st.im.invite.get(&xtype).and_then(|m| m.get(&xid))?;
        Some(InviteGrant {
            invite_type: i.invite_type,
            invite_manage_type: i.invite_manage_type,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_survives_json() {
        let mut im = ImServer::default();
        im.user_infos
            .insert(-3, BTreeMap::from([("k".to_string(), "v".to_string())]));
        im.groups.insert(
            7,
            ImGroup {
                gid: 7,
                owner: 1,
                members: BTreeSet::from([1, 2]),
                dismissed: true,
                ..ImGroup::default()
            },
        );
        im.apply.entry(1).or_default().insert(
            9,
            ApplyGrant {
                grant_type: 2,
                extra: Some("e".into()),
            },
        );
        im.invite.entry(0).or_default().insert(
            i64::MAX,
            Invite {
                invite_type: 3,
                invite_manage_type: 4,
            },
        );
        let text = serde_json::to_string(&im).unwrap();
        let back: ImServer = serde_json::from_str(&text).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), text);
        assert_eq!(back.groups[&7], im.groups[&7]);
        assert_eq!(back.apply[&1][&9], im.apply[&1][&9]);
        assert_eq!(back.invite[&0][&i64::MAX].invite_manage_type, 4);
        assert_eq!(back.user_infos[&-3]["k"], "v");
    }
}
