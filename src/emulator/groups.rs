//! Groups: members, bans, public and private info, counts.
//!
//! # Behaviour
//!
//! * A group needs no creation: `addgroupmembers`, `addgroupban` and
//!   `setgroupinfo` make it. A group that was never made reads as empty
//!   (no members, count 0, empty infos, nobody banned) instead of an error:
//!   the emulator is lenient there, as it is when members that are not in
//!   the group are removed, or a group that does not exist is deleted.
//! * `delgroup` forgets a group with its members, info and bans;
//!   `clearprojectgroup` forgets every group and every all-groups ban.
//! * A ban lasts `btime` seconds on the emulator's clock (see
//!   [`RtmEmulator::advance_clock`]); `btime` must be positive (otherwise
//!   200034). `addgroupban` without `gid` (or with a `gid` ≤ 0) bans the
//!   user in every group; `removegroupban` without `gid` lifts the user's
//!   bans in every group, the all-groups ban included, and with `gid` only
//!   the ban in that group (an all-groups ban stays). `isbanofgroup` is true
//!   while either ban lasts. A ban does not stop a user from being added to
//!   the group (it stops the user from speaking there).
//! * Membership needs no user record: any uid can join. An empty `uids`
//!   list changes nothing.

use std::collections::{BTreeMap, BTreeSet};

use rmpv::Value;
use serde::{Deserialize, Serialize};

use super::membership::{collective, Registry};
use super::params::*;
use super::rtm::{Ctx, Family, RtmEmulator, RtmState};
use super::server::lock;

/// A group, as seen by [`RtmEmulator::group`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Group {
    /// The group id.
    pub gid: i64,
    /// The members.
    pub members: BTreeSet<i64>,
    /// The public info (`oinfo`; empty until set).
    pub public_info: String,
    /// The private info (`pinfo`; empty until set).
    pub private_info: String,
    /// The bans in this group still in force: uid to the end of the ban,
    /// in milliseconds on the emulator's clock (all-groups bans are not
    /// listed here; see [`RtmEmulator::is_banned_in_group`]).
    pub bans: BTreeMap<i64, i64>,
}

collective!(
    Group,
    gid,
    "groups",
    [
        "addgroupban",
        "removegroupban",
        "isbanofgroup",
        "setgroupinfo",
        "getgroupinfo"
    ]
);

/// This family's state (part of the emulator's one state): every group,
/// and the all-groups bans.
pub(crate) type Groups = Registry<Group>;

/// The methods of this family.
pub(crate) const FAMILY: Family = Family {
    methods: &[
        "addgroupmembers",
        "delgroupmembers",
        "delgroup",
        "getgroupmembers",
        "getgroupcount",
        "isgroupmember",
        "getusergroups",
        "addgroupban",
        "removegroupban",
        "isbanofgroup",
        "setgroupinfo",
        "getgroupinfo",
        "clearprojectgroup",
    ],
    dispatch,
};

/// Whether `uid` is a member of group `gid` (for the message families).
#[allow(dead_code)]
pub(crate) fn is_member(st: &RtmState, gid: i64, uid: i64) -> bool {
    st.groups.is_member(gid, uid)
}

/// Whether `uid` is banned in group `gid` now (for the message families).
#[allow(dead_code)]
pub(crate) fn is_banned(st: &RtmState, gid: i64, uid: i64) -> bool {
    st.groups.is_banned(gid, uid, st.now_ms())
}

/// The members of group `gid` (empty for a group never made), for the
/// message families.
#[allow(dead_code)]
pub(crate) fn members(st: &RtmState, gid: i64) -> Vec<i64> {
    st.groups
        .members(gid)
        .map(|m| m.iter().copied().collect())
        .unwrap_or_default()
}

fn dispatch(st: &mut RtmState, _cx: &mut Ctx<'_>, method: &str, p: &Value) -> R<Value> {
    let now = st.now_ms();
    let g = &mut st.groups;
    if let Some(result) = g.dispatch_shared(method, p, now) {
        return result;
    }
    match method {
        "addgroupmembers" => {
            let gid = int(p, "gid")?;
            let uids = int_list(p, "uids")?;
            if !uids.is_empty() {
                g.entry_mut(gid).members.extend(uids);
            }
            Ok(empty())
        }
        "delgroupmembers" => {
            let gid = int(p, "gid")?;
            let uids = int_list(p, "uids")?;
            for uid in uids {
                g.remove_member(gid, uid);
            }
            Ok(empty())
        }
        "delgroup" => {
            let gid = int(p, "gid")?;
            g.entries.remove(&gid);
            Ok(empty())
        }
        "getgroupmembers" => {
            let gid = int(p, "gid")?;
            Ok(obj(vec![(
                "uids",
                ids(g.members(gid).into_iter().flatten()),
            )]))
        }
        "getgroupcount" => {
            let gid = int(p, "gid")?;
            let cn = g.members(gid).map_or(0, BTreeSet::len);
            Ok(obj(vec![("cn", Value::from(cn))]))
        }
        "isgroupmember" => {
            let gid = int(p, "gid")?;
            let uid = int(p, "uid")?;
            Ok(ok(g.is_member(gid, uid)))
        }
        "getusergroups" => {
            let uid = int(p, "uid")?;
            let gids = g
                .entries
                .values()
                .filter(|grp| grp.members.contains(&uid))
                .map(|grp| Value::from(grp.gid))
                .collect();
            Ok(obj(vec![("gids", Value::Array(gids))]))
        }
        "clearprojectgroup" => {
            *g = Groups::default();
            Ok(empty())
        }
        _ => Err(unknown_method(method)),
    }
}

impl RtmEmulator {
    /// A snapshot of group `gid` (its bans still in force), if it was made
    /// and not deleted.
    pub fn group(&self, gid: i64) -> Option<Group> {
        let st = lock(&self.shared.state);
        st.groups.snapshot(gid, st.now_ms())
    }

    /// The ids of every group, in order.
    pub fn group_ids(&self) -> Vec<i64> {
        lock(&self.shared.state)
            .groups
            .entries
            .keys()
            .copied()
            .collect()
    }

    /// Whether `uid` is banned in group `gid` now, by a ban in that group or
    /// an all-groups ban (what `isbanofgroup` answers).
    pub fn is_banned_in_group(&self, gid: i64, uid: i64) -> bool {
        let st = lock(&self.shared.state);
        st.groups.is_banned(gid, uid, st.now_ms())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_survives_json_in_its_old_layout() {
        let mut g = Groups::default();
        let group = g.entry_mut(-7);
        group.members.extend([1, 2]);
        group.bans.insert(2, 5_000);
        group.private_info = "x".into();
        g.all_bans.insert(4, 9_000);
        let text = serde_json::to_string(&g).unwrap();
        assert!(text.starts_with(r#"{"groups":{"-7":{"gid":-7,"#), "{text}");
        let back: Groups = serde_json::from_str(&text).unwrap();
        assert_eq!(back.entries, g.entries);
        assert_eq!(back.all_bans, g.all_bans);
    }
}
