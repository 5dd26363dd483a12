//! RTC rooms (the 2023 generation: `pullIntoRTCRoom`,
//! `inviteUserIntoRTCRoom`, `kickoutFromRTCRoom`, `closeRTCRoom`,
//! `getRTCRoomList`, `getRTCRoomMembers`, `getRTCRoomMemberCount`,
//! `setRTCRoomMicStatus`, `adminCommand`).
//!
//! # Behaviour
//!
//! * RTC rooms are a namespace of their own, apart from the voice rooms
//!   ([`voice`](super::voice)) and the rooms of the room API.
//! * `pullIntoRTCRoom` makes a missing room; the first user pulled into a
//!   new room becomes its owner (answered as `owner` by
//!   `getRTCRoomMembers`, left out for a room without one). `type` must be
//!   1 (voice) or 2 (video), otherwise 10010; each pull records the latest
//!   `type`, `voiceRange` and `maxReceiveStreams`. Invited users are only
//!   recorded as invited; pulling them makes them members. A room stays
//!   when its last member is kicked out; only `closeRTCRoom` removes it.
//! * `adminCommand` takes a `command` from 0 to 7 (otherwise 10010): 0 and
//!   1 appoint and dismiss administrators, 2..=7 set the per-user switches
//!   of [`UserFlags`]. Every target must be a member.
//! * Every method on a missing room, and an inviter, kicked user or
//!   `adminCommand` target that is not a member, gives 200040
//!   (`RTM_EC_NOT_IN_ROOM`).
//! * Lenient: `fromUid` of a kickout need not be a member or an
//!   administrator, and the switches and mic status are only recorded (the
//!   emulator has no media).
//!
//! ```
//! use rtm_server_sdk::emulator::RtmEmulator;
//! use rtm_server_sdk::rtm::{AdminCommand, RtcRoomOptions, RtcRoomType};
//! use rtm_server_sdk::RtmServerClient;
//!
//! let emu = RtmEmulator::start(11000001, "secret").unwrap();
//! let client = RtmServerClient::new(11000001, "secret", emu.endpoint()).unwrap();
//! client
//!     .pull_into_rtc_room(9, &[1, 2], RtcRoomType::Video, RtcRoomOptions::default())
//!     .unwrap();
//! client.admin_command(9, &[2], AdminCommand::AppointAdministrator).unwrap();
//! let room = emu.rtc_room(9).unwrap();
//! assert_eq!(room.owner, Some(1));
//! assert!(room.administrators.contains(&2));
//! ```

use std::collections::{BTreeMap, BTreeSet};

use rmpv::Value;

use super::membership::{call_room_fields, common_op, dispatch_common, pull, CallRoom};
use super::params::*;
use super::rtm::{Ctx, Family, RtmEmulator, RtmState};
use super::server::lock;

/// The per-user switches set by `adminCommand` 2..=7 in an RTC room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct UserFlags {
    /// Set by command 2 (forbid sending audio), cleared by 3.
    pub audio_forbidden: bool,
    /// Set by command 4 (forbid sending video), cleared by 5.
    pub video_forbidden: bool,
    /// Set by command 6 (close the user's microphone).
    pub mic_closed: bool,
    /// Set by command 7 (close the user's camera).
    pub camera_closed: bool,
}

/// An RTC room, as seen by [`RtmEmulator::rooms`].
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct RtcRoom {
    /// The room id.
    pub rid: i64,
    /// The members.
    pub members: BTreeSet<i64>,
    /// The administrators (appointed with `adminCommand` 0).
    pub administrators: BTreeSet<i64>,
    /// The first user pulled into the new room, if any (kept after it
    /// leaves); answered as `owner` (left out when none).
    pub owner: Option<i64>,
    /// Users invited and not (yet) pulled in.
    pub invited: BTreeSet<i64>,
    /// The last `setRTCRoomMicStatus`, if any.
    pub mic_status: Option<bool>,
    /// `type` of the latest `pullIntoRTCRoom` (1 voice, 2 video).
    pub room_type: i64,
    /// `voiceRange` of the latest `pullIntoRTCRoom`, if it had one.
    pub voice_range: Option<i64>,
    /// `maxReceiveStreams` of the latest `pullIntoRTCRoom`, if it had one.
    pub max_receive_streams: Option<i64>,
    /// Per-user switches set by `adminCommand` 2..=7 (users never commanded
    /// are absent).
    pub user_flags: BTreeMap<i64, UserFlags>,
}

impl CallRoom for RtcRoom {
    call_room_fields!();

    fn on_kickout(&mut self, uid: i64) {
        self.administrators.remove(&uid);
        self.user_flags.remove(&uid);
    }
}

/// This family's state: every RTC room by id (saved as the map itself,
/// under `rtc`).
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub(crate) struct RtcRooms {
    pub rooms: BTreeMap<i64, RtcRoom>,
}

/// The methods of this family.
pub(crate) const FAMILY: Family = Family {
    methods: &[
        "pullIntoRTCRoom",
        "inviteUserIntoRTCRoom",
        "kickoutFromRTCRoom",
        "closeRTCRoom",
        "getRTCRoomList",
        "getRTCRoomMembers",
        "getRTCRoomMemberCount",
        "setRTCRoomMicStatus",
        "adminCommand",
    ],
    dispatch,
};

fn dispatch(st: &mut RtmState, _cx: &mut Ctx<'_>, method: &str, p: &Value) -> R<Value> {
    let rooms = &mut st.rtc.rooms;
    match method {
        "pullIntoRTCRoom" => {
            let rid = int(p, "rid")?;
            let uids = int_list(p, "toUids")?;
            let room_type = int(p, "type")?;
            if room_type != 1 && room_type != 2 {
                return Err(wrong_type("type", "1 (voice) or 2 (video)"));
            }
            let voice_range = opt_int(p, "voiceRange")?;
            let max_receive_streams = opt_int(p, "maxReceiveStreams")?;
            let room = pull(rooms, rid, uids);
            room.room_type = room_type;
            room.voice_range = voice_range;
            room.max_receive_streams = max_receive_streams;
            Ok(empty())
        }
        "getRTCRoomMembers" => {
            let rid = int(p, "rid")?;
            let room = rooms.get(&rid).ok_or_else(|| no_room(rid))?;
            let mut answer = vec![
                ("uids", ids(&room.members)),
                ("administrators", ids(&room.administrators)),
            ];
            if let Some(owner) = room.owner {
                answer.push(("owner", Value::from(owner)));
            }
            Ok(obj(answer))
        }
        "adminCommand" => {
            let rid = int(p, "rid")?;
            let uids = int_list(p, "uids")?;
            let command = int(p, "command")?;
            if !(0..=7).contains(&command) {
                return Err(wrong_type("command", "an int from 0 to 7"));
            }
            let room = rooms.get_mut(&rid).ok_or_else(|| no_room(rid))?;
            if let Some(uid) = uids.iter().find(|u| !room.members.contains(u)) {
                return Err(not_in_room(format!("user {uid} is not in room {rid}")));
            }
            for uid in uids {
                match command {
                    0 => {
                        room.administrators.insert(uid);
                    }
                    1 => {
                        room.administrators.remove(&uid);
                    }
                    _ => {
                        let f = room.user_flags.entry(uid).or_default();
                        match command {
                            2 => f.audio_forbidden = true,
                            3 => f.audio_forbidden = false,
                            4 => f.video_forbidden = true,
                            5 => f.video_forbidden = false,
                            6 => f.mic_closed = true,
                            _ => f.camera_closed = true,
                        }
                    }
                }
            }
            Ok(empty())
        }
        _ => dispatch_common(rooms, common_op(method, "RTC"), method, p),
    }
}

/// Test-facing accessors of the RTC rooms (all rooms: [`RtmEmulator::rooms`]).
impl RtmEmulator {
    /// A snapshot of one RTC room.
    pub fn rtc_room(&self, rid: i64) -> Option<RtcRoom> {
        lock(&self.shared.state).rtc.rooms.get(&rid).cloned()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use rmpv::Value;

    use crate::emulator::testutil::*;
    use crate::fpnn::codec::map_get;

    #[test]
    fn rtc_rooms() {
        let (emu, mut c) = setup();
        let pull = |rid: i64, uids: &[i64], ty: i64| {
            vec![
                ("rid", rid.into()),
                ("toUids", arr(uids)),
                ("type", ty.into()),
            ]
        };
        let (code, msg) = err_msg(call(&mut c, "pullIntoRTCRoom", pull(1, &[1], 3)));
        assert_eq!(code, 10010);
        assert!(msg.contains("type"), "{msg}");
        assert_eq!(
            err_msg(call(
                &mut c,
                "pullIntoRTCRoom",
                vec![("rid", 1.into()), ("toUids", arr(&[1]))]
            ))
            .0,
            10009
        );
        call(&mut c, "pullIntoRTCRoom", pull(1, &[1, 2, 3], 1)).unwrap();
        let room = emu.rtc_room(1).unwrap();
        assert_eq!(
            (room.room_type, room.voice_range, room.max_receive_streams),
            (1, None, None)
        );
        let mut p = pull(1, &[4], 2);
        p.push(("voiceRange", 100.into()));
        p.push(("maxReceiveStreams", 8.into()));
        call(&mut c, "pullIntoRTCRoom", p).unwrap();
        let room = emu.rtc_room(1).unwrap();
        assert_eq!(
            (room.room_type, room.voice_range, room.max_receive_streams),
            (2, Some(100), Some(8))
        );
        let mut p = pull(1, &[4], 2);
        p.push(("voiceRange", "far".into()));
        assert_eq!(err_msg(call(&mut c, "pullIntoRTCRoom", p)).0, 10010);

        let m = call(&mut c, "getRTCRoomMembers", vec![("rid", 1.into())]).unwrap();
        assert_eq!(ints(&m, "uids"), [1, 2, 3, 4]);
        assert_eq!(ints(&m, "administrators"), Vec::<i64>::new());
        assert_eq!(map_get(&m, "owner").and_then(Value::as_i64), Some(1));
        let n = call(&mut c, "getRTCRoomMemberCount", vec![("rid", 1.into())]).unwrap();
        assert_eq!(map_get(&n, "count").and_then(Value::as_i64), Some(4));

        // adminCommand.
        let cmd = |uids: &[i64], command: i64| {
            vec![
                ("rid", 1.into()),
                ("uids", arr(uids)),
                ("command", command.into()),
            ]
        };
        call(&mut c, "adminCommand", cmd(&[2, 3], 0)).unwrap();
        let m = call(&mut c, "getRTCRoomMembers", vec![("rid", 1.into())]).unwrap();
        assert_eq!(ints(&m, "administrators"), [2, 3]);
        call(&mut c, "adminCommand", cmd(&[3], 1)).unwrap();
        assert_eq!(emu.rtc_room(1).unwrap().administrators, BTreeSet::from([2]));
        for command in [2, 4, 6, 7] {
            call(&mut c, "adminCommand", cmd(&[4], command)).unwrap();
        }
        let f = emu.rtc_room(1).unwrap().user_flags[&4];
        assert!(f.audio_forbidden && f.video_forbidden && f.mic_closed && f.camera_closed);
        call(&mut c, "adminCommand", cmd(&[4], 3)).unwrap();
        call(&mut c, "adminCommand", cmd(&[4], 5)).unwrap();
        let f = emu.rtc_room(1).unwrap().user_flags[&4];
        assert!(!f.audio_forbidden && !f.video_forbidden && f.mic_closed && f.camera_closed);
        let (code, msg) = err_msg(call(&mut c, "adminCommand", cmd(&[4], 8)));
        assert_eq!(code, 10010);
        assert!(msg.contains("command"), "{msg}");
        assert_eq!(
            err_msg(call(&mut c, "adminCommand", cmd(&[4], -1))).0,
            10010
        );
        assert_eq!(
            err_msg(call(&mut c, "adminCommand", cmd(&[9], 0))).0,
            200040
        );
        let mut p = cmd(&[4], 0);
        p[0].1 = 77.into();
        assert_eq!(err_msg(call(&mut c, "adminCommand", p)).0, 200040);

        // Invite and kickout.
        let inv = |rid: i64, from: i64| {
            vec![
                ("rid", rid.into()),
                ("toUids", arr(&[8, 1])),
                ("fromUid", from.into()),
            ]
        };
        assert_eq!(
            err_msg(call(&mut c, "inviteUserIntoRTCRoom", inv(5, 1))).0,
            200040
        );
        assert_eq!(
            err_msg(call(&mut c, "inviteUserIntoRTCRoom", inv(1, 42))).0,
            200040
        );
        call(&mut c, "inviteUserIntoRTCRoom", inv(1, 1)).unwrap();
        assert_eq!(emu.rtc_room(1).unwrap().invited, BTreeSet::from([8]));
        call(&mut c, "pullIntoRTCRoom", pull(1, &[8], 1)).unwrap();
        assert!(emu.rtc_room(1).unwrap().invited.is_empty());
        let kick = |uid: i64| {
            vec![
                ("rid", 1.into()),
                ("uid", uid.into()),
                ("fromUid", 1.into()),
            ]
        };
        call(&mut c, "kickoutFromRTCRoom", kick(2)).unwrap();
        assert_eq!(
            err_msg(call(&mut c, "kickoutFromRTCRoom", kick(2))).0,
            200040
        );
        let room = emu.rtc_room(1).unwrap();
        assert!(!room.members.contains(&2) && room.administrators.is_empty());

        // Mic status, list, close, unknown rooms.
        call(
            &mut c,
            "setRTCRoomMicStatus",
            vec![("rid", 1.into()), ("status", true.into())],
        )
        .unwrap();
        assert_eq!(emu.rtc_room(1).unwrap().mic_status, Some(true));
        let r = call(
            &mut c,
            "setRTCRoomMicStatus",
            vec![("rid", 1.into()), ("status", "on".into())],
        );
        assert_eq!(err_msg(r).0, 10010);
        call(&mut c, "pullIntoRTCRoom", pull(-3, &[1], 2)).unwrap();
        let list = call(&mut c, "getRTCRoomList", vec![]).unwrap();
        assert_eq!(ints(&list, "rids"), [-3, 1]);
        let voice = call(&mut c, "getVoiceRoomList", vec![]).unwrap();
        assert!(ints(&voice, "rids").is_empty());
        call(&mut c, "closeRTCRoom", vec![("rid", 1.into())]).unwrap();
        for m in ["getRTCRoomMembers", "getRTCRoomMemberCount", "closeRTCRoom"] {
            assert_eq!(
                err_msg(call(&mut c, m, vec![("rid", 1.into())])).0,
                200040,
                "{m}"
            );
        }
        let r = call(
            &mut c,
            "setRTCRoomMicStatus",
            vec![("rid", 1.into()), ("status", true.into())],
        );
        assert_eq!(err_msg(r).0, 200040);
        assert_eq!(emu.rooms().rtc.keys().copied().collect::<Vec<_>>(), [-3]);
    }
}
