//! Rooms (not the voice and RTC rooms): members, bans, public and
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

use super::membership::{collective, Registry};
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

collective!(
    Room,
    rid,
    "rooms",
    [
        "addroomban",
        "removeroomban",
        "isbanofroom",
        "setroominfo",
        "getroominfo"
    ]
);

/// This family's state (part of the emulator's one state): every room of
/// the room API, and the all-rooms bans.
pub(crate) type RoomsState = Registry<Room>;

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

/// Whether `uid` is a member of room `rid` (for the message families).
#[allow(dead_code)]
pub(crate) fn is_member(st: &RtmState, rid: i64, uid: i64) -> bool {
    st.rooms.is_member(rid, uid)
}

/// Whether `uid` is banned in room `rid` now (for the message families).
#[allow(dead_code)]
pub(crate) fn is_banned(st: &RtmState, rid: i64, uid: i64) -> bool {
    st.rooms.is_banned(rid, uid, st.now_ms())
}

fn dispatch(st: &mut RtmState, _cx: &mut Ctx<'_>, method: &str, p: &Value) -> R<Value> {
    let now = st.now_ms();
    let r = &mut st.rooms;
    if let Some(result) = r.dispatch_shared(method, p, now) {
        return result;
    }
    match method {
        "addroommember" => {
            let rid = int(p, "rid")?;
            let uid = int(p, "uid")?;
            r.entry_mut(rid).members.insert(uid);
            Ok(empty())
        }
        "addroommembers" => {
            let rid = int(p, "rid")?;
            let uids = int_list(p, "uids")?;
            let added: Vec<i64> = if uids.is_empty() {
                Vec::new()
            } else {
                let room = r.entry_mut(rid);
                uids.into_iter()
                    .filter(|&uid| room.members.insert(uid))
                    .collect()
            };
            Ok(obj(vec![("successedUids", ids(&added))]))
        }
        "delroommember" => {
            let rid = int(p, "rid")?;
            let uid = int(p, "uid")?;
            r.remove_member(rid, uid);
            Ok(empty())
        }
        "delroommembers" => {
            let rid = int(p, "rid")?;
            let uids = int_list(p, "uids")?;
            let removed: Vec<i64> = uids
                .into_iter()
                .filter(|&u| r.remove_member(rid, u))
                .collect();
            Ok(obj(vec![("successedUids", ids(&removed))]))
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
                r.entry_mut(rid).members.insert(uid);
            }
            Ok(empty())
        }
        "deleteuserrooms" => {
            let rids = int_list(p, "rids")?;
            let uid = int(p, "uid")?;
            for rid in rids {
                r.remove_member(rid, uid);
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
        st.rooms.snapshot(rid, st.now_ms())
    }

    /// The ids of every room of the room API, in order.
    pub fn room_ids(&self) -> Vec<i64> {
        lock(&self.shared.state)
            .rooms
            .entries
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
        let room = r.entry_mut(5);
        room.members.insert(1);
        room.bans.insert(2, 1_000);
        room.public_info = "p".into();
        r.all_bans.insert(3, 2_000);
        let text = serde_json::to_string(&r).unwrap();
        let back: RoomsState = serde_json::from_str(&text).unwrap();
        assert_eq!(back.entries, r.entries);
        assert_eq!(back.all_bans, r.all_bans);
    }
}
