//! What several families share: the member sets of the voice and RTC rooms
//! ([`CallRoom`]), and the groups' and rooms' members, bans with expiry and
//! infos ([`Registry`]).

use std::collections::{BTreeMap, BTreeSet};

use rmpv::Value;

use super::params::*;

// ---------------------------------------------------------------------------
// Voice and RTC rooms
// ---------------------------------------------------------------------------

/// The parts of a voice or RTC room that both generations handle alike.
pub(crate) struct Roster<'a> {
    pub members: &'a mut BTreeSet<i64>,
    pub invited: &'a mut BTreeSet<i64>,
    pub owner: &'a mut Option<i64>,
    pub mic_status: &'a mut Option<bool>,
}

/// A voice room or an RTC room.
pub(crate) trait CallRoom {
    /// A new, empty room.
    fn new(rid: i64) -> Self;
    /// The shared parts.
    fn roster(&mut self) -> Roster<'_>;
    /// The members.
    fn members(&self) -> &BTreeSet<i64>;
    /// Called when `uid`, the first user pulled into the new room, becomes
    /// its owner.
    fn on_owner(&mut self, _uid: i64) {}
    /// Forgets the roles and switches of `uid`, just kicked out.
    fn on_kickout(&mut self, uid: i64);
}

/// Pulls `uids` into room `rid`, made when missing (its first user becomes
/// the owner); invited users become members.
pub(crate) fn pull<T: CallRoom>(rooms: &mut BTreeMap<i64, T>, rid: i64, uids: Vec<i64>) -> &mut T {
    let room = rooms.entry(rid).or_insert_with(|| T::new(rid));
    let r = room.roster();
    if r.owner.is_none() && r.members.is_empty() {
        if let Some(&first) = uids.first() {
            *r.owner = Some(first);
            room.on_owner(first);
        }
    }
    let r = room.roster();
    for uid in uids {
        r.invited.remove(&uid);
        r.members.insert(uid);
    }
    room
}

/// The methods both generations share, by their name without `Voice` or
/// `RTC` (`inviteUserIntoRoom`, `kickoutFromRoom`, `closeRoom`,
/// `getRoomList`, `getRoomMemberCount`, `setRoomMicStatus`); `method` is
/// the full name, for errors.
pub(crate) fn dispatch_common<T: CallRoom>(
    rooms: &mut BTreeMap<i64, T>,
    op: &str,
    method: &str,
    p: &Value,
) -> R<Value> {
    match op {
        "inviteUserIntoRoom" => {
            let rid = int(p, "rid")?;
            let uids = int_list(p, "toUids")?;
            let from = int(p, "fromUid")?;
            let r = rooms.get_mut(&rid).ok_or_else(|| no_room(rid))?.roster();
            if !r.members.contains(&from) {
                return Err(not_in_room(format!(
                    "the inviter {from} is not in room {rid}"
                )));
            }
            let members = &*r.members;
            r.invited
                .extend(uids.into_iter().filter(|u| !members.contains(u)));
            Ok(empty())
        }
        "kickoutFromRoom" => {
            let rid = int(p, "rid")?;
            let uid = int(p, "uid")?;
            let _from = int(p, "fromUid")?;
            let room = rooms.get_mut(&rid).ok_or_else(|| no_room(rid))?;
            if !room.roster().members.remove(&uid) {
                return Err(not_in_room(format!("user {uid} is not in room {rid}")));
            }
            room.on_kickout(uid);
            Ok(empty())
        }
        "closeRoom" => {
            let rid = int(p, "rid")?;
            rooms.remove(&rid).ok_or_else(|| no_room(rid))?;
            Ok(empty())
        }
        "getRoomList" => Ok(obj(vec![("rids", ids(rooms.keys()))])),
        "getRoomMemberCount" => {
            let rid = int(p, "rid")?;
            let room = rooms.get(&rid).ok_or_else(|| no_room(rid))?;
            Ok(obj(vec![(
                "count",
                Value::from(room.members().len() as i64),
            )]))
        }
        "setRoomMicStatus" => {
            let rid = int(p, "rid")?;
            let status = boolean(p, "status")?;
            let room = rooms.get_mut(&rid).ok_or_else(|| no_room(rid))?;
            *room.roster().mic_status = Some(status);
            Ok(empty())
        }
        _ => Err(unknown_method(method)),
    }
}

/// Implements [`CallRoom`]'s field accessors for a room type with the
/// fields `members`, `invited`, `owner` and `mic_status`.
macro_rules! call_room_fields {
    () => {
        fn new(rid: i64) -> Self {
            Self {
                rid,
                ..Self::default()
            }
        }

        fn roster(&mut self) -> super::membership::Roster<'_> {
            super::membership::Roster {
                members: &mut self.members,
                invited: &mut self.invited,
                owner: &mut self.owner,
                mic_status: &mut self.mic_status,
            }
        }

        fn members(&self) -> &std::collections::BTreeSet<i64> {
            &self.members
        }
    };
}
pub(crate) use call_room_fields;
