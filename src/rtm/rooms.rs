//! Rooms (not the voice and RTC rooms): members, bans,
//! public and private info, counts, and the rooms of a user.
//!
//! A room needs no creation: adding a member makes it. A ban stops a user
//! from speaking in a room for a time; a ban with rid 0 applies to every
//! room.
//!
//! ```
//! use std::time::Duration;
//! use rtm_server_sdk::emulator::RtmEmulator;
//! use rtm_server_sdk::RtmServerClient;
//!
//! # fn main() -> rtm_server_sdk::Result<()> {
//! let emulator = RtmEmulator::start(11000001, "secret").unwrap();
//! let client = RtmServerClient::new(11000001, "secret", emulator.endpoint())?;
//!
//! client.add_room_member(5, 1001)?;
//! // Only the users not yet in the room are reported as added.
//! assert_eq!(client.add_room_members(5, &[1001, 1002])?, vec![1002]);
//! client.add_user_rooms(&[5, 6], 1003)?;
//! let counts = client.get_room_count(&[5, 6])?;
//! assert_eq!((counts[&5], counts[&6]), (3, 1));
//!
//! client.set_room_info(5, Some("Lobby"), Some("internal"))?;
//! assert_eq!(client.get_room_info(5)?.private, "internal");
//!
//! client.add_room_ban(5, 1002, Duration::from_secs(30))?;
//! assert!(client.is_ban_of_room(5, 1002)?);
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::time::Duration;

use super::client::rtm_methods;
use super::params::Seconds;
#[allow(unused_imports)]
use super::RtmServerClient;

/// The public and private info of a room (answered by
/// [`get_room_info`](RtmServerClient::get_room_info)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RoomInfo {
    /// The public info (`oinfo`), visible to the room's users.
    pub public: String,
    /// The private info (`pinfo`), visible to the server only.
    pub private: String,
}

rtm_methods! {
    /// Adds user `uid` to a room (creating the room when it has no members
    /// yet).
    fn add_room_member / add_room_member_with_callback (rid: i64, uid: i64) -> () {
        method: "addroommember",
        params: { "rid": rid, "uid": uid },
        answer: |_| Ok(()),
    }

    /// Adds users to a room; answers the users actually added
    /// (`successedUids`).
    fn add_room_members / add_room_members_with_callback (rid: i64, uids: &[i64]) -> Vec<i64> {
        method: "addroommembers",
        params: { "rid": rid, "uids": uids },
        answer: |a| a.ints("successedUids"),
    }

    /// Removes user `uid` from a room.
    fn del_room_member / del_room_member_with_callback (rid: i64, uid: i64) -> () {
        method: "delroommember",
        params: { "rid": rid, "uid": uid },
        answer: |_| Ok(()),
    }

    /// Removes users from a room; answers the users actually removed
    /// (`successedUids`).
    fn del_room_members / del_room_members_with_callback (rid: i64, uids: &[i64]) -> Vec<i64> {
        method: "delroommembers",
        params: { "rid": rid, "uids": uids },
        answer: |a| a.ints("successedUids"),
    }

    /// Bans `uid` from speaking in room `rid` for `duration` (sent as whole
    /// seconds, a fraction rounded up). A `rid` of 0 (or less) bans the
    /// user in every room: `rid` is then not sent.
    fn add_room_ban / add_room_ban_with_callback (rid: i64, uid: i64, duration: Duration) -> () {
        method: "addroomban",
        params: { "rid": (rid > 0).then_some(rid), "uid": uid, "btime": Seconds(duration) },
        answer: |_| Ok(()),
    }

    /// Lifts the ban of `uid` in room `rid`. A `rid` of 0 (or less) lifts
    /// the user's bans in every room: `rid` is then not sent.
    fn remove_room_ban / remove_room_ban_with_callback (rid: i64, uid: i64) -> () {
        method: "removeroomban",
        params: { "rid": (rid > 0).then_some(rid), "uid": uid },
        answer: |_| Ok(()),
    }

    /// Whether `uid` is banned in room `rid` now.
    fn is_ban_of_room / is_ban_of_room_with_callback (rid: i64, uid: i64) -> bool {
        method: "isbanofroom",
        params: { "rid": rid, "uid": uid },
        answer: |a| a.bool("ok"),
    }

    /// Sets a room's public and private info; a `None` leaves that info
    /// unchanged (its key is not sent).
    fn set_room_info / set_room_info_with_callback
        (rid: i64, public_info: Option<&str>, private_info: Option<&str>) -> () {
        method: "setroominfo",
        params: { "rid": rid, "oinfo": public_info, "pinfo": private_info },
        answer: |_| Ok(()),
    }

    /// A room's public and private info.
    fn get_room_info / get_room_info_with_callback (rid: i64) -> RoomInfo {
        method: "getroominfo",
        params: { "rid": rid },
        answer: |a| Ok(RoomInfo { public: a.string("oinfo")?, private: a.string("pinfo")? }),
    }

    /// The members of a room.
    fn get_room_members / get_room_members_with_callback (rid: i64) -> Vec<i64> {
        method: "getroommembers",
        params: { "rid": rid },
        answer: |a| a.ints("uids"),
    }

    /// The number of members of each room, by room id (the server may leave
    /// out rooms it does not know).
    fn get_room_count / get_room_count_with_callback (rids: &[i64]) -> HashMap<i64, i64> {
        method: "getroomcount",
        params: { "rids": rids },
        answer: |a| a.id_map("cn", |a, k, v| a.int_of(k, v)),
    }

    /// Adds user `uid` to each of the rooms.
    fn add_user_rooms / add_user_rooms_with_callback (rids: &[i64], uid: i64) -> () {
        method: "adduserrooms",
        params: { "rids": rids, "uid": uid },
        answer: |_| Ok(()),
    }

    /// Removes user `uid` from each of the rooms.
    fn delete_user_rooms / delete_user_rooms_with_callback (rids: &[i64], uid: i64) -> () {
        method: "deleteuserrooms",
        params: { "rids": rids, "uid": uid },
        answer: |_| Ok(()),
    }
}
