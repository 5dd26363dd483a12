//! The voice-room API (the 2021 generation).
//!
//! Rooms are created by [`pull_into_voice_room`](RtmServerClient::pull_into_voice_room);
//! an inviter must already be in the room. All ids are 64-bit.
//!
//! ```
//! # let emulator = rtm_server_sdk::emulator::RtmEmulator::start(1, "s").unwrap();
//! # let client = rtm_server_sdk::RtmServerClient::new(1, "s", emulator.endpoint()).unwrap();
//! client.pull_into_voice_room(42, &[1001, 1002])?;
//! client.invite_user_into_voice_room(42, &[1003], 1001)?;
//! client.kick_out_from_voice_room(42, 1002, 1001)?;
//! assert_eq!(client.get_voice_room_members(42)?.uids, vec![1001]);
//! client.close_voice_room(42)?;
//! # Ok::<(), rtm_server_sdk::Error>(())
//! ```

use super::client::rtm_methods;
#[allow(unused_imports)]
use super::RtmServerClient;

/// The members of a voice room. Build one in your own tests with
/// `VoiceRoomMembers::default()` and field assignment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VoiceRoomMembers {
    /// The users in the room.
    pub uids: Vec<i64>,
    /// The room's managers (empty when the server sends none).
    pub managers: Vec<i64>,
}

rtm_methods! {
    /// Invites users into a voice room. `from_uid`, the inviter, must be in
    /// the room.
    fn invite_user_into_voice_room / invite_user_into_voice_room_with_callback
        (rid: i64, to_uids: &[i64], from_uid: i64) -> () {
        method: "inviteUserIntoVoiceRoom",
        params: { "rid": rid, "toUids": to_uids, "fromUid": from_uid },
        answer: |_| Ok(()),
    }

    /// Closes a voice room.
    fn close_voice_room / close_voice_room_with_callback (rid: i64) -> () {
        method: "closeVoiceRoom",
        params: { "rid": rid },
        answer: |_| Ok(()),
    }

    /// Kicks user `uid` out of a voice room, on behalf of `from_uid`.
    fn kick_out_from_voice_room / kick_out_from_voice_room_with_callback
        (rid: i64, uid: i64, from_uid: i64) -> () {
        method: "kickoutFromVoiceRoom",
        params: { "rid": rid, "uid": uid, "fromUid": from_uid },
        answer: |_| Ok(()),
    }

    /// The ids of the project's voice rooms.
    fn get_voice_room_list / get_voice_room_list_with_callback () -> Vec<i64> {
        method: "getVoiceRoomList",
        params: {},
        answer: |a| a.ints("rids"),
    }

    /// The users and managers of a voice room.
    fn get_voice_room_members / get_voice_room_members_with_callback
        (rid: i64) -> VoiceRoomMembers {
        method: "getVoiceRoomMembers",
        params: { "rid": rid },
        answer: |a| Ok(VoiceRoomMembers {
            uids: a.ints("uids")?,
            managers: a.opt_ints("managers")?.unwrap_or_default(),
        }),
    }

    /// The number of users in a voice room.
    fn get_voice_room_member_count / get_voice_room_member_count_with_callback
        (rid: i64) -> i64 {
        method: "getVoiceRoomMemberCount",
        params: { "rid": rid },
        answer: |a| a.int("count"),
    }

    /// Sets the default microphone state of users entering the room
    /// (`true`: on).
    fn set_voice_room_mic_status / set_voice_room_mic_status_with_callback
        (rid: i64, status: bool) -> () {
        method: "setVoiceRoomMicStatus",
        params: { "rid": rid, "status": status },
        answer: |_| Ok(()),
    }

    /// Pulls users into a voice room, creating the room when it does not
    /// exist.
    fn pull_into_voice_room / pull_into_voice_room_with_callback
        (rid: i64, to_uids: &[i64]) -> () {
        method: "pullIntoVoiceRoom",
        params: { "rid": rid, "toUids": to_uids },
        answer: |_| Ok(()),
    }
}
