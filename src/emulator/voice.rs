//! Voice rooms (the 2021 generation: `pullIntoVoiceRoom`,
//! `inviteUserIntoVoiceRoom`, `kickoutFromVoiceRoom`, `closeVoiceRoom`,
//! `getVoiceRoomList`, `getVoiceRoomMembers`, `getVoiceRoomMemberCount`,
//! `setVoiceRoomMicStatus`).
//!
//! # Behaviour
//!
//! * Voice rooms and RTC rooms (see [`rtc`](super::rtc)) are two
//!   independent namespaces, and neither is a room of the room API
//!   ([`rooms`](super::rooms)).
//! * `pullIntoVoiceRoom` makes a missing room; the first user pulled into a
//!   new room becomes its owner and its manager. Invited users are only
//!   recorded as invited (a real invitation needs the client's
//!   acceptance); pulling them makes them members. A room stays when its
//!   last member is kicked out; only `closeVoiceRoom` removes it.
//! * Every method on a missing room, and an inviter or kicked user that is
//!   not a member, gives 200040 (`RTM_EC_NOT_IN_ROOM`).
//! * Lenient: `fromUid` of a kickout need not be a member or a manager,
//!   and the mic status is only recorded (the emulator has no media).
//!
//! ```
//! use rtm_server_sdk::emulator::RtmEmulator;
//! use rtm_server_sdk::RtmServerClient;
//!
//! let emu = RtmEmulator::start(11000001, "secret").unwrap();
//! let client = RtmServerClient::new(11000001, "secret", emu.endpoint()).unwrap();
//! client.pull_into_voice_room(7, &[1, 2]).unwrap();
//! let room = emu.voice_room(7).unwrap();
//! assert_eq!(room.owner, Some(1));
//! assert_eq!(room.members.len(), 2);
//! ```

use std::collections::{BTreeMap, BTreeSet};

use rmpv::Value;

use super::membership::{call_room_fields, common_op, dispatch_common, pull, CallRoom};
use super::params::*;
use super::rtc::RtcRoom;
use super::rtm::{Ctx, Family, RtmEmulator, RtmState};
use super::server::lock;

/// A voice room, as seen by [`RtmEmulator::rooms`].
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct VoiceRoom {
    /// The room id.
    pub rid: i64,
    /// The members.
    pub members: BTreeSet<i64>,
    /// The managers (the first user pulled into the new room).
    pub managers: BTreeSet<i64>,
    /// The first user pulled into the new room, if any (kept after it
    /// leaves).
    pub owner: Option<i64>,
    /// Users invited and not (yet) pulled in.
    pub invited: BTreeSet<i64>,
    /// The last `setVoiceRoomMicStatus`, if any.
    pub mic_status: Option<bool>,
}

impl CallRoom for VoiceRoom {
    call_room_fields!();

    fn on_owner(&mut self, uid: i64) {
        self.managers.insert(uid);
    }

    fn on_kickout(&mut self, uid: i64) {
        self.managers.remove(&uid);
    }
}

/// This family's state: every voice room by id (saved as the map itself,
/// under `voice`).
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub(crate) struct VoiceRooms {
    pub rooms: BTreeMap<i64, VoiceRoom>,
}

/// The methods of this family.
pub(crate) const FAMILY: Family = Family {
    methods: &[
        "pullIntoVoiceRoom",
        "inviteUserIntoVoiceRoom",
        "kickoutFromVoiceRoom",
        "closeVoiceRoom",
        "getVoiceRoomList",
        "getVoiceRoomMembers",
        "getVoiceRoomMemberCount",
        "setVoiceRoomMicStatus",
    ],
    dispatch,
};

fn dispatch(st: &mut RtmState, _cx: &mut Ctx<'_>, method: &str, p: &Value) -> R<Value> {
    let rooms = &mut st.voice.rooms;
    match method {
        "pullIntoVoiceRoom" => {
            let rid = int(p, "rid")?;
            let uids = int_list(p, "toUids")?;
            pull(rooms, rid, uids);
            Ok(empty())
        }
        "getVoiceRoomMembers" => {
            let rid = int(p, "rid")?;
            let room = rooms.get(&rid).ok_or_else(|| no_room(rid))?;
            Ok(obj(vec![
                ("uids", ids(&room.members)),
                ("managers", ids(&room.managers)),
            ]))
        }
        _ => dispatch_common(rooms, common_op(method, "Voice"), method, p),
    }
}

/// A snapshot of every voice and RTC room of an [`RtmEmulator`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Rooms {
    /// Voice rooms by id.
    pub voice: BTreeMap<i64, VoiceRoom>,
    /// RTC rooms by id.
    pub rtc: BTreeMap<i64, RtcRoom>,
}

/// Test-facing accessors of the voice and RTC rooms.
impl RtmEmulator {
    /// A snapshot of every voice and RTC room.
    pub fn rooms(&self) -> Rooms {
        let st = lock(&self.shared.state);
        Rooms {
            voice: st.voice.rooms.clone(),
            rtc: st.rtc.rooms.clone(),
        }
    }

    /// A snapshot of one voice room.
    pub fn voice_room(&self, rid: i64) -> Option<VoiceRoom> {
        lock(&self.shared.state).voice.rooms.get(&rid).cloned()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use rmpv::Value;

    use crate::emulator::testutil::*;
    use crate::fpnn::codec::map_get;

    #[test]
    fn parameter_errors() {
        let (_emu, mut c) = setup();
        let (code, msg) = err_msg(call(&mut c, "getVoiceRoomMembers", vec![]));
        assert_eq!(code, 10009);
        assert!(msg.contains("rid"), "{msg}");
        let (code, msg) = err_msg(call(
            &mut c,
            "getVoiceRoomMembers",
            vec![("rid", "1".into())],
        ));
        assert_eq!(code, 10010);
        assert!(msg.contains("rid"), "{msg}");
        let (code, msg) = err_msg(call(
            &mut c,
            "pullIntoVoiceRoom",
            vec![("rid", 1.into()), ("toUids", map(vec![("1", 1.into())]))],
        ));
        assert_eq!(code, 10010);
        assert!(msg.contains("toUids"), "{msg}");
        let r = call(
            &mut c,
            "pullIntoVoiceRoom",
            vec![
                ("rid", 1.into()),
                ("toUids", Value::Array(vec![1.into(), "2".into()])),
            ],
        );
        assert_eq!(err_msg(r).0, 10010);
        let r = call(&mut c, "pullIntoVoiceRoom", vec![("rid", 1.into())]);
        assert_eq!(err_msg(r).0, 10009);
        // u64 ids that fit i64 are fine; larger ones are not.
        let r = call(
            &mut c,
            "pullIntoVoiceRoom",
            vec![
                ("rid", Value::from(7u64)),
                ("toUids", Value::Array(vec![Value::from(8u64)])),
            ],
        );
        assert!(r.is_ok());
        let r = call(
            &mut c,
            "getVoiceRoomMembers",
            vec![("rid", Value::from(u64::MAX))],
        );
        assert_eq!(err_msg(r).0, 10010);
        let (code, msg) = err_msg(call(
            &mut c,
            "setVoiceRoomMicStatus",
            vec![("rid", 7.into()), ("status", 1.into())],
        ));
        assert_eq!(code, 10010);
        assert!(msg.contains("status"), "{msg}");
    }

    #[test]
    fn voice_rooms() {
        let (emu, mut c) = setup();
        let uids = |v: &[i64]| ("toUids", arr(v));
        call(
            &mut c,
            "pullIntoVoiceRoom",
            vec![("rid", 20.into()), uids(&[5, 3])],
        )
        .unwrap();
        call(
            &mut c,
            "pullIntoVoiceRoom",
            vec![("rid", 10.into()), uids(&[1])],
        )
        .unwrap();
        call(
            &mut c,
            "pullIntoVoiceRoom",
            vec![("rid", 10.into()), uids(&[2, 1])],
        )
        .unwrap();
        let list = call(&mut c, "getVoiceRoomList", vec![]).unwrap();
        assert_eq!(ints(&list, "rids"), [10, 20]);
        let m = call(&mut c, "getVoiceRoomMembers", vec![("rid", 10.into())]).unwrap();
        assert_eq!(ints(&m, "uids"), [1, 2]);
        assert_eq!(ints(&m, "managers"), [1]);
        let m = call(&mut c, "getVoiceRoomMembers", vec![("rid", 20.into())]).unwrap();
        assert_eq!(ints(&m, "managers"), [5]);
        let n = call(&mut c, "getVoiceRoomMemberCount", vec![("rid", 10.into())]).unwrap();
        assert_eq!(map_get(&n, "count").and_then(Value::as_i64), Some(2));

        // Invite: room must exist, inviter must be a member.
        let (code, msg) = err_msg(call(
            &mut c,
            "inviteUserIntoVoiceRoom",
            vec![("rid", 99.into()), uids(&[4]), ("fromUid", 1.into())],
        ));
        assert_eq!(code, 200040);
        assert_eq!(msg, "room 99 does not exist");
        let r = call(
            &mut c,
            "inviteUserIntoVoiceRoom",
            vec![("rid", 10.into()), uids(&[4]), ("fromUid", 9.into())],
        );
        assert_eq!(err_msg(r).0, 200040);
        call(
            &mut c,
            "inviteUserIntoVoiceRoom",
            vec![("rid", 10.into()), uids(&[4, 2]), ("fromUid", 1.into())],
        )
        .unwrap();
        let room = emu.voice_room(10).unwrap();
        assert_eq!(room.invited, BTreeSet::from([4]));
        assert_eq!(room.members, BTreeSet::from([1, 2]));
        assert_eq!(room.owner, Some(1));

        // Kickout.
        let kick = |uid: i64, rid: i64| {
            vec![
                ("rid", rid.into()),
                ("uid", uid.into()),
                ("fromUid", 1.into()),
            ]
        };
        assert_eq!(
            err_msg(call(&mut c, "kickoutFromVoiceRoom", kick(7, 10))).0,
            200040
        );
        assert_eq!(
            err_msg(call(&mut c, "kickoutFromVoiceRoom", kick(1, 99))).0,
            200040
        );
        call(&mut c, "kickoutFromVoiceRoom", kick(2, 10)).unwrap();
        let m = call(&mut c, "getVoiceRoomMembers", vec![("rid", 10.into())]).unwrap();
        assert_eq!(ints(&m, "uids"), [1]);

        // Mic status.
        call(
            &mut c,
            "setVoiceRoomMicStatus",
            vec![("rid", 10.into()), ("status", true.into())],
        )
        .unwrap();
        assert_eq!(emu.voice_room(10).unwrap().mic_status, Some(true));
        call(
            &mut c,
            "setVoiceRoomMicStatus",
            vec![("rid", 10.into()), ("status", false.into())],
        )
        .unwrap();
        assert_eq!(emu.voice_room(10).unwrap().mic_status, Some(false));

        // Unknown rooms.
        let rid99 = || vec![("rid", 99.into())];
        for m in [
            "getVoiceRoomMembers",
            "getVoiceRoomMemberCount",
            "closeVoiceRoom",
        ] {
            assert_eq!(err_msg(call(&mut c, m, rid99())).0, 200040, "{m}");
        }
        let r = call(
            &mut c,
            "setVoiceRoomMicStatus",
            vec![("rid", 99.into()), ("status", true.into())],
        );
        assert_eq!(err_msg(r).0, 200040);

        // Close; the RTC namespace is separate.
        call(&mut c, "closeVoiceRoom", vec![("rid", 10.into())]).unwrap();
        assert_eq!(
            err_msg(call(&mut c, "closeVoiceRoom", vec![("rid", 10.into())])).0,
            200040
        );
        let list = call(&mut c, "getVoiceRoomList", vec![]).unwrap();
        assert_eq!(ints(&list, "rids"), [20]);
        assert_eq!(
            err_msg(call(&mut c, "getRTCRoomMembers", vec![("rid", 20.into())])).0,
            200040
        );
        let rooms = emu.rooms();
        assert_eq!(rooms.voice.keys().copied().collect::<Vec<_>>(), [20]);
        assert!(rooms.rtc.is_empty());
    }
}
