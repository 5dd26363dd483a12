//! Rooms (A.5; not the voice and RTC rooms): members, bans, public and
//! private info, counts, user-room links.
//!
//! # Behaviour
//!
//! * A room needs no creation: adding a member, a ban or info makes it. A
//!   room that was never made reads as empty (no members, empty infos,
//!   nobody banned, a count of 0) instead of an error: the emulator is
//!   lenient there, as it is when a user who is not in a room is removed
//!   from it. The rooms stay until the emulator stops (the real service
//!   also drops a user from its rooms when the user goes offline; the
//!   emulator has no users' connections).
//! * `addroommembers` and `delroommembers` answer `successedUids`: the uids
//!   actually added (not yet members) or removed (members until then), each
//!   once, in the order of the quest (an empty list changes nothing).
//! * `getroomcount` answers `cn` keyed by each asked rid (once) as a
//!   decimal string, with 0 for a room without members.
//! * `adduserrooms` and `deleteuserrooms` add the user to (remove the user
//!   from) each listed room.
//! * Bans follow the group rules (see the group family): `btime` seconds
//!   (positive, otherwise 200034) on the emulator's clock; without `rid`
//!   (or with a `rid` ≤ 0) `addroomban` bans the user in every room, and
//!   `removeroomban` lifts the user's bans in every room; a ban does not
//!   stop a user from joining.

use std::collections::{BTreeMap, BTreeSet};

use rmpv::Value;
use serde::{Deserialize, Serialize};

use super::groups::{ban_end, banned, prune};
use super::params::*;
use super::rtm::{Ctx, Family, RtmEmulator, RtmState};
use super::server::lock;

/// A room of the room API (not a voice or RTC room), as seen by
/// [`RtmEmulator::room`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Room {
    /// The room id.
    pub rid: i64,
    /// The members.
    pub members: BTreeSet<i64>,
    /// The public info (`oinfo`; empty until set).
    pub public_info: String,
    /// The private info (`pinfo`; empty until set).
    pub private_info: String,
    /// The bans in this room still in force: uid to the end of the ban, in
    /// milliseconds on the emulator's clock (all-rooms bans are not listed
    /// here; see [`RtmEmulator::is_banned_in_room`]).
    pub bans: BTreeMap<i64, i64>,
}

/// This family's state (part of the emulator's one state).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct RoomsState {
    /// Every room by id.
    rooms: BTreeMap<i64, Room>,
    /// The all-rooms bans: uid to the end of the ban (ms).
    all_bans: BTreeMap<i64, i64>,
}

/// The methods of this family.
pub(crate) const FAMILY: Family = Family {
    methods: &[
        "addroommember",
        "addroommembers",
        "delroommember",
        "delroommembers",
        "addroomban",
        "removeroomban",
        "isbanofroom",
        "setroominfo",
        "getroominfo",
        "getroommembers",
        "getroomcount",
        "adduserrooms",
        "deleteuserrooms",
    ],
    dispatch,
};

impl RoomsState {
    fn room_mut(&mut self, rid: i64) -> &mut Room {
        self.rooms.entry(rid).or_insert_with(|| Room {
            rid,
            ..Room::default()
        })
    }

    fn members(&self, rid: i64) -> Option<&BTreeSet<i64>> {
        self.rooms.get(&rid).map(|r| &r.members)
    }

    fn is_banned(&self, rid: i64, uid: i64, now_ms: i64) -> bool {
        banned(&self.all_bans, uid, now_ms)
            || self
                .rooms
                .get(&rid)
                .is_some_and(|r| banned(&r.bans, uid, now_ms))
    }

    /// Removes `uid` from room `rid`; true when it was a member.
    fn remove(&mut self, rid: i64, uid: i64) -> bool {
        self.rooms
            .get_mut(&rid)
            .is_some_and(|r| r.members.remove(&uid))
    }
}

/// Whether `uid` is a member of room `rid` (for the message families).
#[allow(dead_code)]
pub(crate) fn is_member(st: &RtmState, rid: i64, uid: i64) -> bool {
    st.rooms.members(rid).is_some_and(|m| m.contains(&uid))
}

/// Whether `uid` is banned in room `rid` now (for the message families).
#[allow(dead_code)]
pub(crate) fn is_banned(st: &RtmState, rid: i64, uid: i64) -> bool {
    st.rooms.is_banned(rid, uid, st.now_ms())
}

fn dispatch(st: &mut RtmState, _cx: &mut Ctx<'_>, method: &str, p: &Value) -> R<Value> {
    let now = st.now_ms();
    let r = &mut st.rooms;
    match method {
        "addroommember" => {
            let rid = int(p, "rid")?;
            let uid = int(p, "uid")?;
            r.room_mut(rid).members.insert(uid);
            Ok(empty())
        }
        "addroommembers" => {
            let rid = int(p, "rid")?;
            let uids = int_list(p, "uids")?;
            let added: Vec<i64> = if uids.is_empty() {
                Vec::new()
            } else {
                let room = r.room_mut(rid);
                uids.into_iter()
                    .filter(|&uid| room.members.insert(uid))
                    .collect()
            };
            Ok(obj(vec![("successedUids", ids(&added))]))
        }
        "delroommember" => {
            let rid = int(p, "rid")?;
            let uid = int(p, "uid")?;
            r.remove(rid, uid);
            Ok(empty())
        }
        "delroommembers" => {
            let rid = int(p, "rid")?;
            let uids = int_list(p, "uids")?;
            let removed: Vec<i64> = uids.into_iter().filter(|&u| r.remove(rid, u)).collect();
            Ok(obj(vec![("successedUids", ids(&removed))]))
        }
        "addroomban" => {
            let rid = opt_int(p, "rid")?.filter(|&rid| rid > 0);
            let uid = int(p, "uid")?;
            let end = ban_end(now, int(p, "btime")?)?;
            let bans = match rid {
                Some(rid) => &mut r.room_mut(rid).bans,
                None => &mut r.all_bans,
            };
            prune(bans, now);
            bans.insert(uid, end);
            Ok(empty())
        }
        "removeroomban" => {
            let rid = opt_int(p, "rid")?.filter(|&rid| rid > 0);
            let uid = int(p, "uid")?;
            match rid {
                Some(rid) => {
                    if let Some(room) = r.rooms.get_mut(&rid) {
                        room.bans.remove(&uid);
                    }
                }
                None => {
                    r.all_bans.remove(&uid);
                    for room in r.rooms.values_mut() {
                        room.bans.remove(&uid);
                    }
                }
            }
            Ok(empty())
        }
        "isbanofroom" => {
            let rid = int(p, "rid")?;
            let uid = int(p, "uid")?;
            Ok(ok(r.is_banned(rid, uid, now)))
        }
        "setroominfo" => {
            let rid = int(p, "rid")?;
            let public = opt_str(p, "oinfo")?;
            let private = opt_str(p, "pinfo")?;
            let room = r.room_mut(rid);
            if let Some(public) = public {
                room.public_info = public;
            }
            if let Some(private) = private {
                room.private_info = private;
            }
            Ok(empty())
        }
        "getroominfo" => {
            let rid = int(p, "rid")?;
            let (public, private) = r
                .rooms
                .get(&rid)
                .map(|room| (room.public_info.as_str(), room.private_info.as_str()))
                .unwrap_or_default();
            Ok(obj(vec![
                ("oinfo", Value::from(public)),
                ("pinfo", Value::from(private)),
            ]))
        }
        "getroommembers" => {
            let rid = int(p, "rid")?;
            Ok(obj(vec![(
                "uids",
                ids(r.members(rid).into_iter().flatten()),
            )]))
        }
        "getroomcount" => {
            let rids = int_list(p, "rids")?;
            // Each asked rid once, in order.
            let cn: BTreeMap<i64, Value> = rids
                .into_iter()
                .map(|rid| (rid, Value::from(r.members(rid).map_or(0, BTreeSet::len))))
                .collect();
            Ok(obj(vec![("cn", id_keyed(cn))]))
        }
        "adduserrooms" => {
            let rids = int_list(p, "rids")?;
            let uid = int(p, "uid")?;
            for rid in rids {
                r.room_mut(rid).members.insert(uid);
            }
            Ok(empty())
        }
        "deleteuserrooms" => {
            let rids = int_list(p, "rids")?;
            let uid = int(p, "uid")?;
            for rid in rids {
                r.remove(rid, uid);
            }
            Ok(empty())
        }
        _ => Err(unknown_method(method)),
    }
}

impl RtmEmulator {
    /// A snapshot of room `rid` of the room API (its bans still in force),
    /// if it was made. Voice and RTC rooms are in [`RtmEmulator::rooms`].
    pub fn room(&self, rid: i64) -> Option<Room> {
        let st = lock(&self.shared.state);
        let now = st.now_ms();
        st.rooms.rooms.get(&rid).map(|r| {
            let mut r = r.clone();
            prune(&mut r.bans, now);
            r
        })
    }

    /// The ids of every room of the room API, in order.
    pub fn room_ids(&self) -> Vec<i64> {
        lock(&self.shared.state)
            .rooms
            .rooms
            .keys()
            .copied()
            .collect()
    }

    /// Whether `uid` is banned in room `rid` now, by a ban in that room or
    /// an all-rooms ban (what `isbanofroom` answers).
    pub fn is_banned_in_room(&self, rid: i64, uid: i64) -> bool {
        let st = lock(&self.shared.state);
        st.rooms.is_banned(rid, uid, st.now_ms())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_survives_json() {
        let mut r = RoomsState::default();
        let room = r.room_mut(5);
        room.members.insert(1);
        room.bans.insert(2, 1_000);
        room.public_info = "p".into();
        r.all_bans.insert(3, 2_000);
        let text = serde_json::to_string(&r).unwrap();
        let back: RoomsState = serde_json::from_str(&text).unwrap();
        assert_eq!(back.rooms, r.rooms);
        assert_eq!(back.all_bans, r.all_bans);
    }
}
