//! Groups (A.5): members, bans, public and private info, counts.
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

/// This family's state (part of the emulator's one state).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct Groups {
    /// Every group by id.
    groups: BTreeMap<i64, Group>,
    /// The all-groups bans: uid to the end of the ban (ms).
    all_bans: BTreeMap<i64, i64>,
}

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

/// The end of a ban of `btime` seconds starting at `now_ms`; a `btime`
/// that is not positive is refused (200034). Shared with the room family.
pub(crate) fn ban_end(now_ms: i64, btime: i64) -> R<i64> {
    if btime <= 0 {
        return Err(bad_value("btime", "a positive number of seconds"));
    }
    Ok(now_ms.saturating_add(btime.saturating_mul(1000)))
}

/// Whether a ban in `bans` holds `uid` at `now_ms`.
pub(crate) fn banned(bans: &BTreeMap<i64, i64>, uid: i64, now_ms: i64) -> bool {
    bans.get(&uid).is_some_and(|&end| end > now_ms)
}

/// Drops the bans that ended by `now_ms`.
pub(crate) fn prune(bans: &mut BTreeMap<i64, i64>, now_ms: i64) {
    bans.retain(|_, end| *end > now_ms);
}

impl Groups {
    fn group_mut(&mut self, gid: i64) -> &mut Group {
        self.groups.entry(gid).or_insert_with(|| Group {
            gid,
            ..Group::default()
        })
    }

    fn members(&self, gid: i64) -> Option<&BTreeSet<i64>> {
        self.groups.get(&gid).map(|g| &g.members)
    }

    fn is_banned(&self, gid: i64, uid: i64, now_ms: i64) -> bool {
        banned(&self.all_bans, uid, now_ms)
            || self
                .groups
                .get(&gid)
                .is_some_and(|g| banned(&g.bans, uid, now_ms))
    }
}

/// Whether `uid` is a member of group `gid` (for the message families).
#[allow(dead_code)]
pub(crate) fn is_member(st: &RtmState, gid: i64, uid: i64) -> bool {
    st.groups.members(gid).is_some_and(|m| m.contains(&uid))
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
    match method {
        "addgroupmembers" => {
            let gid = int(p, "gid")?;
            let uids = int_list(p, "uids")?;
            if !uids.is_empty() {
                g.group_mut(gid).members.extend(uids);
            }
            Ok(empty())
        }
        "delgroupmembers" => {
            let gid = int(p, "gid")?;
            let uids = int_list(p, "uids")?;
            if let Some(group) = g.groups.get_mut(&gid) {
                for uid in uids {
                    group.members.remove(&uid);
                }
            }
            Ok(empty())
        }
        "delgroup" => {
            let gid = int(p, "gid")?;
            g.groups.remove(&gid);
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
            Ok(ok(g.members(gid).is_some_and(|m| m.contains(&uid))))
        }
        "getusergroups" => {
            let uid = int(p, "uid")?;
            let gids = g
                .groups
                .values()
                .filter(|grp| grp.members.contains(&uid))
                .map(|grp| Value::from(grp.gid))
                .collect();
            Ok(obj(vec![("gids", Value::Array(gids))]))
        }
        "addgroupban" => {
            let gid = opt_int(p, "gid")?.filter(|&gid| gid > 0);
            let uid = int(p, "uid")?;
            let end = ban_end(now, int(p, "btime")?)?;
            let bans = match gid {
                Some(gid) => &mut g.group_mut(gid).bans,
                None => &mut g.all_bans,
            };
            prune(bans, now);
            bans.insert(uid, end);
            Ok(empty())
        }
        "removegroupban" => {
            let gid = opt_int(p, "gid")?.filter(|&gid| gid > 0);
            let uid = int(p, "uid")?;
            match gid {
                Some(gid) => {
                    if let Some(group) = g.groups.get_mut(&gid) {
                        group.bans.remove(&uid);
                    }
                }
                None => {
                    g.all_bans.remove(&uid);
                    for group in g.groups.values_mut() {
                        group.bans.remove(&uid);
                    }
                }
            }
            Ok(empty())
        }
        "isbanofgroup" => {
            let gid = int(p, "gid")?;
            let uid = int(p, "uid")?;
            Ok(ok(g.is_banned(gid, uid, now)))
        }
        "setgroupinfo" => {
            let gid = int(p, "gid")?;
            let public = opt_str(p, "oinfo")?;
            let private = opt_str(p, "pinfo")?;
            let group = g.group_mut(gid);
            if let Some(public) = public {
                group.public_info = public;
            }
            if let Some(private) = private {
                group.private_info = private;
            }
            Ok(empty())
        }
        "getgroupinfo" => {
            let gid = int(p, "gid")?;
            let (public, private) = g
                .groups
                .get(&gid)
                .map(|grp| (grp.public_info.as_str(), grp.private_info.as_str()))
                .unwrap_or_default();
            Ok(obj(vec![
                ("oinfo", Value::from(public)),
                ("pinfo", Value::from(private)),
            ]))
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
        let now = st.now_ms();
        st.groups.groups.get(&gid).map(|g| {
            let mut g = g.clone();
            prune(&mut g.bans, now);
            g
        })
    }

    /// The ids of every group, in order.
    pub fn group_ids(&self) -> Vec<i64> {
        lock(&self.shared.state)
            .groups
            .groups
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
    fn ban_end_refuses_non_positive_times_and_saturates() {
        assert!(ban_end(1000, 0).is_err());
        assert!(ban_end(1000, -5).is_err());
        assert_eq!(ban_end(1000, 2).unwrap(), 3000);
        assert_eq!(ban_end(1000, i64::MAX).unwrap(), i64::MAX);
    }

    #[test]
    fn bans_end_at_their_time() {
        let mut bans = BTreeMap::from([(1, 2000), (2, 5000)]);
        assert!(banned(&bans, 1, 1999));
        assert!(!banned(&bans, 1, 2000));
        assert!(!banned(&bans, 3, 0));
        prune(&mut bans, 3000);
        assert_eq!(bans, BTreeMap::from([(2, 5000)]));
    }

    #[test]
    fn the_state_survives_json() {
        let mut g = Groups::default();
        let group = g.group_mut(-7);
        group.members.extend([1, 2]);
        group.bans.insert(2, 5_000);
        group.private_info = "x".into();
        g.all_bans.insert(4, 9_000);
        let text = serde_json::to_string(&g).unwrap();
        let back: Groups = serde_json::from_str(&text).unwrap();
        assert_eq!(back.groups, g.groups);
        assert_eq!(back.all_bans, g.all_bans);
    }
}
