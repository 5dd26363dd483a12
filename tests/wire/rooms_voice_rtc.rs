//! Voice rooms (6.1) and RTC rooms (6.2).

use rmpv::Value;
use rtm_server_sdk::rtm::{AdminCommand, RtcRoomOptions, RtcRoomType};

use crate::row;
use crate::rows::{entry, Row};

fn ids(v: &[i64]) -> Value {
    Value::Array(v.iter().map(|&i| Value::from(i)).collect())
}

pub fn rows() -> Vec<Row> {
    vec![
        row!("inviteUserIntoVoiceRoom", invite_user_into_voice_room / invite_user_into_voice_room_with_callback (1, &[2, 3], 4),
            keys: [("rid", Int), ("toUids", Ints), ("fromUid", Int)], answer: []),
        row!("closeVoiceRoom", close_voice_room / close_voice_room_with_callback (1),
            keys: [("rid", Int)], answer: []),
        row!("kickoutFromVoiceRoom", kick_out_from_voice_room / kick_out_from_voice_room_with_callback (1, 2, 3),
            keys: [("rid", Int), ("uid", Int), ("fromUid", Int)], answer: []),
        row!("getVoiceRoomList", get_voice_room_list / get_voice_room_list_with_callback (),
            keys: [], answer: [("rids", ids(&[1]))]),
        row!("getVoiceRoomMembers", get_voice_room_members / get_voice_room_members_with_callback (1),
            keys: [("rid", Int)], answer: [("uids", ids(&[1])), ("managers", ids(&[1]))]),
        row!("getVoiceRoomMemberCount", get_voice_room_member_count / get_voice_room_member_count_with_callback (1),
            keys: [("rid", Int)], answer: [("count", Value::from(1))]),
        row!("setVoiceRoomMicStatus", set_voice_room_mic_status / set_voice_room_mic_status_with_callback (1, true),
            keys: [("rid", Int), ("status", Bool)], answer: []),
        row!("pullIntoVoiceRoom", pull_into_voice_room / pull_into_voice_room_with_callback (1, &[2]),
            keys: [("rid", Int), ("toUids", Ints)], answer: []),
        row!("inviteUserIntoRTCRoom", invite_user_into_rtc_room / invite_user_into_rtc_room_with_callback (1, &[2, 3], 4),
            keys: [("rid", Int), ("toUids", Ints), ("fromUid", Int)], answer: []),
        row!("closeRTCRoom", close_rtc_room / close_rtc_room_with_callback (1),
            keys: [("rid", Int)], answer: []),
        row!("kickoutFromRTCRoom", kick_out_from_rtc_room / kick_out_from_rtc_room_with_callback (1, 2, 3),
            keys: [("rid", Int), ("uid", Int), ("fromUid", Int)], answer: []),
        row!("getRTCRoomList", get_rtc_room_list / get_rtc_room_list_with_callback (),
            keys: [], answer: [("rids", ids(&[1]))]),
        row!("getRTCRoomMembers", get_rtc_room_members / get_rtc_room_members_with_callback (1),
            keys: [("rid", Int)], answer: [("uids", ids(&[1])), ("administrators", ids(&[1])), ("owner", Value::from(1))]),
        row!("getRTCRoomMemberCount", get_rtc_room_member_count / get_rtc_room_member_count_with_callback (1),
            keys: [("rid", Int)], answer: [("count", Value::from(1))]),
        row!("setRTCRoomMicStatus", set_rtc_room_mic_status / set_rtc_room_mic_status_with_callback (1, false),
            keys: [("rid", Int), ("status", Bool)], answer: []),
        row!("pullIntoRTCRoom", pull_into_rtc_room / pull_into_rtc_room_with_callback (1, &[2], RtcRoomType::Video, RtcRoomOptions::default()),
            keys: [("rid", Int), ("toUids", Ints), ("type", Int)], answer: [],
            extra: |e| (entry(e, "type") == Some(&Value::from(2))).then_some(()).ok_or("type".into())),
        row!("pullIntoRTCRoom", pull_into_rtc_room / pull_into_rtc_room_with_callback (1, &[2], RtcRoomType::Voice,
                RtcRoomOptions { voice_range: Some(5), max_receive_streams: Some(6) }),
            keys: [("rid", Int), ("toUids", Ints), ("type", Int), ("voiceRange", Int), ("maxReceiveStreams", Int)], answer: []),
        row!("adminCommand", admin_command / admin_command_with_callback (1, &[2], AdminCommand::CloseOthersCamera),
            keys: [("rid", Int), ("uids", Ints), ("command", Int)], answer: [],
            extra: |e| (entry(e, "command") == Some(&Value::from(7))).then_some(()).ok_or("command".into())),
    ]
}
