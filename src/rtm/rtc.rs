//! The RTC-room API (the current generation of the room API): the
//! voice-room methods renamed, with room types and administrator commands.
//!
//! ```
//! # let emulator = rtm_server_sdk::emulator::RtmEmulator::start(1, "s").unwrap();
//! # let client = rtm_server_sdk::RtmServerClient::new(1, "s", emulator.endpoint()).unwrap();
//! use rtm_server_sdk::rtm::{AdminCommand, RtcRoomOptions, RtcRoomType};
//! client.pull_into_rtc_room(7, &[1001, 1002], RtcRoomType::Video, RtcRoomOptions::default())?;
//! client.admin_command(7, &[1002], AdminCommand::ForbidSendingVideo)?;
//! let members = client.get_rtc_room_members(7)?;
//! assert_eq!((members.uids, members.owner), (vec![1001, 1002], Some(1001)));
//! # Ok::<(), rtm_server_sdk::Error>(())
//! ```

use super::client::rtm_methods;
use super::params::ToParam;
#[allow(unused_imports)]
use super::RtmServerClient;

/// The members of an RTC room. Build one in your own tests with
/// `RtcRoomMembers::default()` and field assignment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RtcRoomMembers {
    /// The users in the room.
    pub uids: Vec<i64>,
    /// The room's administrators (read from `administrators`, or from
    /// `managers` when a server sends the older key; empty when neither is
    /// present).
    pub administrators: Vec<i64>,
    /// The room's owner, when the server names one (an `owner` of 0 means
    /// none).
    pub owner: Option<i64>,
}

/// The kind of an RTC room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum RtcRoomType {
    /// A voice room (`type` 1).
    #[default]
    Voice,
    /// A video room (`type` 2).
    Video,
}

impl RtcRoomType {
    /// The wire value.
    #[must_use]
    pub fn code(self) -> i64 {
        match self {
            RtcRoomType::Voice => 1,
            RtcRoomType::Video => 2,
        }
    }
}

impl ToParam for RtcRoomType {
    fn write(&self, out: &mut Vec<u8>) -> crate::Result<bool> {
        self.code().write(out)
    }
}

/// An administrator command for [`admin_command`](RtmServerClient::admin_command).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AdminCommand {
    /// Grants administrator rights (0).
    AppointAdministrator,
    /// Revokes administrator rights (1).
    DismissAdministrator,
    /// Forbids sending audio (2).
    ForbidSendingAudio,
    /// Allows sending audio (3).
    AllowSendingAudio,
    /// Forbids sending video (4).
    ForbidSendingVideo,
    /// Allows sending video (5).
    AllowSendingVideo,
    /// Turns the users' microphones off (6).
    CloseOthersMicrophone,
    /// Turns the users' cameras off (7).
    CloseOthersCamera,
}

impl AdminCommand {
    /// Every command, in wire order.
    pub const ALL: [AdminCommand; 8] = [
        AdminCommand::AppointAdministrator,
        AdminCommand::DismissAdministrator,
        AdminCommand::ForbidSendingAudio,
        AdminCommand::AllowSendingAudio,
        AdminCommand::ForbidSendingVideo,
        AdminCommand::AllowSendingVideo,
        AdminCommand::CloseOthersMicrophone,
        AdminCommand::CloseOthersCamera,
    ];

    /// The wire value (0..=7).
    #[must_use]
    pub fn code(self) -> i64 {
        Self::ALL.iter().position(|c| *c == self).unwrap_or(0) as i64
    }
}

impl ToParam for AdminCommand {
    fn write(&self, out: &mut Vec<u8>) -> crate::Result<bool> {
        self.code().write(out)
    }
}

/// The optional settings of [`pull_into_rtc_room`](RtmServerClient::pull_into_rtc_room).
/// Each is sent only when set; their meaning is the server's (they were
/// added to the service later).
///
/// ```
/// use rtm_server_sdk::rtm::RtcRoomOptions;
/// let options = RtcRoomOptions { voice_range: Some(30), ..Default::default() };
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct RtcRoomOptions {
    /// `voiceRange`: the range within which users hear each other.
    pub voice_range: Option<i32>,
    /// `maxReceiveStreams`: how many streams a user receives at most.
    pub max_receive_streams: Option<i32>,
}

rtm_methods! {
    /// Invites users into an RTC room. `from_uid`, the inviter, must be in
    /// the room.
    fn invite_user_into_rtc_room / invite_user_into_rtc_room_with_callback
        (rid: i64, to_uids: &[i64], from_uid: i64) -> () {
        method: "inviteUserIntoRTCRoom",
        params: { "rid": rid, "toUids": to_uids, "fromUid": from_uid },
        answer: |_| Ok(()),
    }

    /// Closes an RTC room.
    fn close_rtc_room / close_rtc_room_with_callback (rid: i64) -> () {
        method: "closeRTCRoom",
        params: { "rid": rid },
        answer: |_| Ok(()),
    }

    /// Kicks user `uid` out of an RTC room, on behalf of `from_uid`.
    fn kick_out_from_rtc_room / kick_out_from_rtc_room_with_callback
        (rid: i64, uid: i64, from_uid: i64) -> () {
        method: "kickoutFromRTCRoom",
        params: { "rid": rid, "fromUid": from_uid, "uid": uid },
        answer: |_| Ok(()),
    }

    /// The ids of the project's RTC rooms.
    fn get_rtc_room_list / get_rtc_room_list_with_callback () -> Vec<i64> {
        method: "getRTCRoomList",
        params: {},
        answer: |a| a.ints("rids"),
    }

    /// The users, administrators and owner of an RTC room. Every key of the
    /// answer is optional (missing lists are empty).
    fn get_rtc_room_members / get_rtc_room_members_with_callback
        (rid: i64) -> RtcRoomMembers {
        method: "getRTCRoomMembers",
        params: { "rid": rid },
        answer: |a| Ok(RtcRoomMembers {
            uids: a.opt_ints("uids")?.unwrap_or_default(),
            administrators: match a.opt_ints("administrators")? {
                Some(admins) => admins,
                None => a.opt_ints("managers")?.unwrap_or_default(),
            },
            owner: a.opt_int("owner")?.filter(|&o| o != 0),
        }),
    }

    /// The number of users in an RTC room.
    fn get_rtc_room_member_count / get_rtc_room_member_count_with_callback
        (rid: i64) -> i64 {
        method: "getRTCRoomMemberCount",
        params: { "rid": rid },
        answer: |a| a.int("count"),
    }

    /// Sets the default microphone state of users entering the room
    /// (`true`: on).
    fn set_rtc_room_mic_status / set_rtc_room_mic_status_with_callback
        (rid: i64, status: bool) -> () {
        method: "setRTCRoomMicStatus",
        params: { "rid": rid, "status": status },
        answer: |_| Ok(()),
    }

    /// Pulls users into an RTC room of the given type, creating it when it
    /// does not exist; `options` (see [`RtcRoomOptions`]) are sent only when
    /// set.
    fn pull_into_rtc_room / pull_into_rtc_room_with_callback
        (rid: i64, to_uids: &[i64], room_type: RtcRoomType, options: RtcRoomOptions) -> () {
        method: "pullIntoRTCRoom",
        params: {
            "rid": rid, "toUids": to_uids, "type": room_type,
            "voiceRange": options.voice_range,
            "maxReceiveStreams": options.max_receive_streams,
        },
        answer: |_| Ok(()),
    }

    /// Runs an administrator command on users of an RTC room.
    fn admin_command / admin_command_with_callback
        (rid: i64, uids: &[i64], command: AdminCommand) -> () {
        method: "adminCommand",
        params: { "rid": rid, "uids": uids, "command": command },
        answer: |_| Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_command_codes() {
        for (i, c) in AdminCommand::ALL.iter().enumerate() {
            assert_eq!(c.code(), i as i64);
        }
        assert_eq!(RtcRoomType::Voice.code(), 1);
        assert_eq!(RtcRoomType::Video.code(), 2);
    }
}
