//! The voice-room and RTC-room API against the built-in emulator, once per
//! connection variant: plain, and encrypted with every curve, mode and key
//! size.

mod common;

use std::collections::HashSet;
use std::thread;
use std::time::{Duration, Instant};

use common::{via_callback, watchdog, Keys, Variant};
use crossbeam_channel::bounded;
use rmpv::Value;
use rtm_server_sdk::emulator::RtmEmulator;
use rtm_server_sdk::fpnn::codec::map_get;
use rtm_server_sdk::{
    codes, rtm::RtcRoomOptions, AdminCommand, ClientConfig, Error, RtcRoomType, RtmServerClient,
};

const PID: i64 = 11000001;
const SECRET: &str = "ef3617e5-e886-4a4e-9eef-7263c0320628";

fn setup(v: Variant) -> (RtmEmulator, RtmServerClient) {
    setup_with(v, ClientConfig::default())
}

fn setup_with(v: Variant, config: ClientConfig) -> (RtmEmulator, RtmServerClient) {
    let (emu, client, _) = setup_keys(v, config);
    (emu, client)
}

/// The emulator, a client, and the keys to configure more clients.
fn setup_keys(v: Variant, config: ClientConfig) -> (RtmEmulator, RtmServerClient, Keys) {
    let (options, keys) = v.setup();
    let emu = RtmEmulator::start_with(PID, SECRET, options).unwrap();
    let client =
        RtmServerClient::with_config(PID, SECRET, emu.endpoint(), keys.config(config)).unwrap();
    (emu, client, keys)
}

/// The RTM quests the emulator received (without the FPNN built-ins such
/// as `*key`).
fn rtm_quests(emu: &RtmEmulator) -> Vec<(String, Value)> {
    emu.received()
        .into_iter()
        .filter(|(m, _)| !m.starts_with('*'))
        .collect()
}

fn sorted(mut v: Vec<i64>) -> Vec<i64> {
    v.sort();
    v
}

/// The value of `key` in a received quest.
fn param<'a>(payload: &'a Value, key: &str) -> &'a Value {
    map_get(payload, key).unwrap_or_else(|| panic!("no `{key}` in {payload}"))
}

fn is_int_array(v: &Value) -> bool {
    matches!(v, Value::Array(items) if items.iter().all(Value::is_i64))
}

for_each_variant! {
fn every_voice_room_method_in_blocking_form(v: Variant) {
    watchdog(Duration::from_secs(30), move || {
        let (_emu, c) = setup(v);
        assert_eq!(c.get_voice_room_list().unwrap(), Vec::<i64>::new());
        c.pull_into_voice_room(10, &[1, 2, 3]).unwrap();
        c.pull_into_voice_room(11, &[4]).unwrap();
        assert_eq!(sorted(c.get_voice_room_list().unwrap()), vec![10, 11]);
        let members = c.get_voice_room_members(10).unwrap();
        assert_eq!(sorted(members.uids), vec![1, 2, 3]);
        assert_eq!(c.get_voice_room_member_count(10).unwrap(), 3);
        c.invite_user_into_voice_room(10, &[7, 8], 1).unwrap();
        c.set_voice_room_mic_status(10, true).unwrap();
        c.set_voice_room_mic_status(10, false).unwrap();
        c.kick_out_from_voice_room(10, 2, 1).unwrap();
        assert_eq!(
            sorted(c.get_voice_room_members(10).unwrap().uids),
            vec![1, 3]
        );
        assert_eq!(c.get_voice_room_member_count(10).unwrap(), 2);
        c.close_voice_room(10).unwrap();
        assert_eq!(c.get_voice_room_list().unwrap(), vec![11]);
    });
}

fn every_voice_room_method_in_callback_form(v: Variant) {
    watchdog(Duration::from_secs(30), move || {
        let (_emu, c) = setup(v);
        via_callback(|f| c.pull_into_voice_room_with_callback(20, &[1, 2, 3], f)).unwrap();
        assert_eq!(
            via_callback(|f| c.get_voice_room_list_with_callback(f)).unwrap(),
            vec![20]
        );
        let m = via_callback(|f| c.get_voice_room_members_with_callback(20, f)).unwrap();
        assert_eq!(sorted(m.uids), vec![1, 2, 3]);
        assert_eq!(
            via_callback(|f| c.get_voice_room_member_count_with_callback(20, f)).unwrap(),
            3
        );
        via_callback(|f| c.invite_user_into_voice_room_with_callback(20, &[9], 1, f)).unwrap();
        via_callback(|f| c.set_voice_room_mic_status_with_callback(20, true, f)).unwrap();
        via_callback(|f| c.kick_out_from_voice_room_with_callback(20, 3, 1, f)).unwrap();
        assert_eq!(
            via_callback(|f| c.get_voice_room_member_count_with_callback(20, f)).unwrap(),
            2
        );
        via_callback(|f| c.close_voice_room_with_callback(20, f)).unwrap();
        assert!(via_callback(|f| c.get_voice_room_list_with_callback(f))
            .unwrap()
            .is_empty());
        // Errors reach the callback typed.
        let err = via_callback(|f| c.close_voice_room_with_callback(20, f)).unwrap_err();
        assert_eq!(err.code(), Some(codes::RTM_EC_NOT_IN_ROOM), "{err:?}");
    });
}

fn server_errors_surface_with_their_code(v: Variant) {
    watchdog(Duration::from_secs(30), move || {
        let (emu, c, keys) = setup_keys(v, ClientConfig::default());
        for err in [
            c.close_voice_room(404).unwrap_err(),
            c.get_voice_room_members(404).unwrap_err(),
            c.get_voice_room_member_count(404).unwrap_err(),
            c.set_voice_room_mic_status(404, true).unwrap_err(),
            c.kick_out_from_voice_room(404, 1, 2).unwrap_err(),
        ] {
            assert!(err.is_server_error(), "{err:?}");
            assert_eq!(err.code(), Some(codes::RTM_EC_NOT_IN_ROOM));
        }
        c.pull_into_voice_room(1, &[1]).unwrap();
        // The inviter must be in the room.
        let err = c.invite_user_into_voice_room(1, &[5], 99).unwrap_err();
        assert_eq!(err.server_code(), Some(codes::RTM_EC_NOT_IN_ROOM));
        // A wrong secret or pid is refused by the signature check.
        let wrong = RtmServerClient::with_config(
            PID,
            "not-the-secret",
            emu.endpoint(),
            keys.config(ClientConfig::default()),
        )
        .unwrap();
        let err = wrong.get_voice_room_list().unwrap_err();
        assert_eq!(err.code(), Some(codes::RTM_EC_INVALID_PID_OR_SIGN));
        let wrong = RtmServerClient::with_config(
            PID + 1,
            SECRET,
            emu.endpoint(),
            keys.config(ClientConfig::default()),
        )
        .unwrap();
        assert_eq!(
            wrong.get_voice_room_list().unwrap_err().code(),
            Some(codes::RTM_EC_INVALID_PID_OR_SIGN)
        );
        // The secret shows in no error.
        assert!(!format!("{err:?} {err}").contains(SECRET));
        // The client is still usable after errors.
        assert_eq!(c.get_voice_room_list().unwrap(), vec![1]);
    });
}

fn timeouts_per_call_and_default(v: Variant) {
    watchdog(Duration::from_secs(30), move || {
        let (emu, c) = setup_with(
            v,
            ClientConfig::default().quest_timeout(Duration::from_millis(500)),
        );
        c.connect().unwrap();
        emu.server().faults().set_freeze(true);
        let t0 = Instant::now();
        let err = c
            .with_timeout(Duration::from_millis(150))
            .get_voice_room_list()
            .unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(150) && took < Duration::from_millis(350),
            "{took:?}"
        );
        let t0 = Instant::now();
        let err = via_callback(|f| c.get_voice_room_list_with_callback(f)).unwrap_err();
        assert!(err.is_timeout());
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(500) && took < Duration::from_millis(700),
            "{took:?}"
        );
        emu.server().faults().set_freeze(false);
        assert!(c.get_voice_room_list().unwrap().is_empty());
    });
}

fn one_client_from_16_threads(v: Variant) {
    watchdog(Duration::from_secs(60), move || {
        let (emu, c) = setup(v);
        let threads: Vec<_> = (0..16i64)
            .map(|t| {
                let c = c.clone();
                thread::spawn(move || {
                    let rid = 1000 + t;
                    for k in 0..25i64 {
                        c.pull_into_voice_room(rid, &[t * 100 + k]).unwrap();
                        assert_eq!(c.get_voice_room_member_count(rid).unwrap(), k + 1);
                    }
                    let (tx, rx) = bounded(25);
                    for _ in 0..25 {
                        let tx = tx.clone();
                        c.get_voice_room_members_with_callback(rid, move |r| tx.send(r).unwrap());
                    }
                    for _ in 0..25 {
                        let m = rx.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
                        assert_eq!(m.uids.len(), 25);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(c.get_voice_room_list().unwrap().len(), 16);
        assert_eq!(emu.server().connection_count(), 1);
    });
}

fn the_quests_on_the_wire_match_the_protocol(v: Variant) {
    watchdog(Duration::from_secs(30), move || {
        let (emu, c) = setup(v);
        // Ids beyond 2^53 must travel as exact 64-bit integers.
        let rid: i64 = (1 << 53) + 1;
        let uid: i64 = i64::MAX - 7;
        c.pull_into_voice_room(rid, &[uid, 2]).unwrap();
        c.invite_user_into_voice_room(rid, &[3], uid).unwrap();
        c.set_voice_room_mic_status(rid, true).unwrap();
        c.get_voice_room_members(rid).unwrap();
        c.get_voice_room_member_count(rid).unwrap();
        c.get_voice_room_list().unwrap();
        c.kick_out_from_voice_room(rid, 2, uid).unwrap();
        c.close_voice_room(rid).unwrap();
        c.pull_into_rtc_room(
            rid,
            &[uid],
            RtcRoomType::Video,
            RtcRoomOptions {
                voice_range: Some(30),
                ..Default::default()
            },
        )
            .unwrap();
        c.admin_command(rid, &[uid], AdminCommand::ForbidSendingAudio)
            .unwrap();

        let received = rtm_quests(&emu);
        let methods: Vec<&str> = received.iter().map(|(m, _)| m.as_str()).collect();
        assert_eq!(
            methods,
            [
                "pullIntoVoiceRoom",
                "inviteUserIntoVoiceRoom",
                "setVoiceRoomMicStatus",
                "getVoiceRoomMembers",
                "getVoiceRoomMemberCount",
                "getVoiceRoomList",
                "kickoutFromVoiceRoom",
                "closeVoiceRoom",
                "pullIntoRTCRoom",
                "adminCommand",
            ]
        );
        let mut salts = HashSet::new();
        for (method, p) in &received {
            // The signing keys and their types.
            assert_eq!(param(p, "pid").as_i64(), Some(PID));
            let sign = param(p, "sign").as_str().unwrap();
            assert_eq!(sign.len(), 32);
            assert!(sign
                .chars()
                .all(|ch| ch.is_ascii_digit() || ch.is_ascii_uppercase()));
            let salt = param(p, "salt").as_i64().unwrap();
            let ts = param(p, "ts").as_i64().unwrap();
            assert!(salts.insert(salt), "salt reused");
            assert_eq!(
                sign,
                rtm_server_sdk::rtm::sign(PID, SECRET, salt, method, ts)
            );
            let expected: &[&str] = match method.as_str() {
                "pullIntoVoiceRoom" => &["rid", "toUids"],
                "inviteUserIntoVoiceRoom" => &["rid", "toUids", "fromUid"],
                "setVoiceRoomMicStatus" => &["rid", "status"],
                "getVoiceRoomMembers" | "getVoiceRoomMemberCount" | "closeVoiceRoom" => &["rid"],
                "getVoiceRoomList" => &[],
                "kickoutFromVoiceRoom" => &["rid", "uid", "fromUid"],
                "pullIntoRTCRoom" => &["rid", "toUids", "type", "voiceRange"],
                "adminCommand" => &["rid", "uids", "command"],
                m => panic!("unexpected {m}"),
            };
            let Value::Map(entries) = p else { panic!() };
            let mut keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str().unwrap()).collect();
            keys.retain(|k| !["pid", "sign", "salt", "ts"].contains(k));
            assert_eq!(keys, expected, "keys of {method}");
            for key in expected {
                let v = param(p, key);
                match *key {
                    "toUids" | "uids" => assert!(is_int_array(v), "{method}.{key} = {v}"),
                    "status" => assert_eq!(v, &Value::Boolean(true)),
                    _ => assert!(v.is_i64(), "{method}.{key} = {v}"),
                }
            }
            if map_get(p, "rid").is_some() {
                assert_eq!(param(p, "rid").as_i64(), Some(rid));
            }
        }
        let pull = &received[0].1;
        assert_eq!(
            param(pull, "toUids"),
            &Value::Array(vec![Value::from(uid), Value::from(2)])
        );
        assert_eq!(param(&received[1].1, "fromUid").as_i64(), Some(uid));
        let rtc = &received[8].1;
        assert_eq!(param(rtc, "type").as_i64(), Some(2));
        assert_eq!(param(rtc, "voiceRange").as_i64(), Some(30));
        assert!(
            map_get(rtc, "maxReceiveStreams").is_none(),
            "unset options are not sent"
        );
        assert_eq!(param(&received[9].1, "command").as_i64(), Some(2));
    });
}

fn every_rtc_room_method_in_both_forms(v: Variant) {
    watchdog(Duration::from_secs(30), move || {
        let (_emu, c) = setup(v);
        c.pull_into_rtc_room(5, &[1, 2], RtcRoomType::Voice, RtcRoomOptions::default())
            .unwrap();
        via_callback(|f| {
            c.pull_into_rtc_room_with_callback(
                6,
                &[3],
                RtcRoomType::Video,
                RtcRoomOptions {
                    voice_range: Some(10),
                    max_receive_streams: Some(4),
                },
                f,
            )
        })
        .unwrap();
        assert_eq!(sorted(c.get_rtc_room_list().unwrap()), vec![5, 6]);
        assert_eq!(
            sorted(via_callback(|f| c.get_rtc_room_list_with_callback(f)).unwrap()),
            vec![5, 6]
        );
        c.admin_command(5, &[2], AdminCommand::AppointAdministrator)
            .unwrap();
        let m = c.get_rtc_room_members(5).unwrap();
        assert!(m.administrators.contains(&2), "{m:?}");
        assert_eq!(sorted(m.uids), vec![1, 2]);
        let m2 = via_callback(|f| c.get_rtc_room_members_with_callback(5, f)).unwrap();
        assert!(m2.administrators.contains(&2));
        via_callback(|f| {
            c.admin_command_with_callback(5, &[2], AdminCommand::DismissAdministrator, f)
        })
        .unwrap();
        assert!(!c
            .get_rtc_room_members(5)
            .unwrap()
            .administrators
            .contains(&2));
        for cmd in AdminCommand::ALL {
            c.admin_command(5, &[1], cmd).unwrap();
        }
        c.invite_user_into_rtc_room(5, &[9], 1).unwrap();
        via_callback(|f| c.invite_user_into_rtc_room_with_callback(5, &[10], 1, f)).unwrap();
        assert_eq!(
            c.invite_user_into_rtc_room(5, &[9], 77).unwrap_err().code(),
            Some(codes::RTM_EC_NOT_IN_ROOM)
        );
        c.set_rtc_room_mic_status(5, false).unwrap();
        via_callback(|f| c.set_rtc_room_mic_status_with_callback(5, true, f)).unwrap();
        assert_eq!(c.get_rtc_room_member_count(5).unwrap(), 2);
        c.kick_out_from_rtc_room(5, 1, 2).unwrap();
        assert_eq!(
            via_callback(|f| c.get_rtc_room_member_count_with_callback(5, f)).unwrap(),
            1
        );
        via_callback(|f| c.kick_out_from_rtc_room_with_callback(5, 2, 2, f)).unwrap();
        c.close_rtc_room(5).unwrap();
        via_callback(|f| c.close_rtc_room_with_callback(6, f)).unwrap();
        assert!(c.get_rtc_room_list().unwrap().is_empty());
        // The two generations are separate namespaces.
        c.pull_into_voice_room(5, &[1]).unwrap();
        assert!(c.get_rtc_room_list().unwrap().is_empty());
    });
}

fn a_quest_lost_with_its_connection_is_resent_once_re_signed(v: Variant) {
    watchdog(Duration::from_secs(30), move || {
        let (emu, c) = setup(v);
        c.pull_into_voice_room(1, &[1]).unwrap();
        emu.server().faults().set_drop_every(2);
        emu.server().clear_received();
        // The 2nd quest from now is dropped with its connection; the client
        // resends it once on a new connection, with a new salt and sign.
        assert_eq!(c.get_voice_room_member_count(1).unwrap(), 1);
        assert_eq!(c.get_voice_room_member_count(1).unwrap(), 1);
        emu.server().faults().set_drop_every(0);
        let received = rtm_quests(&emu);
        assert_eq!(received.len(), 3, "{received:?}");
        let salts: HashSet<i64> = received
            .iter()
            .map(|(_, p)| param(p, "salt").as_i64().unwrap())
            .collect();
        assert_eq!(salts.len(), 3, "the resend was re-signed");
        assert_eq!(emu.server().connection_count(), 2);
        // Callback form too.
        emu.server().faults().set_drop_every(1);
        let err = via_callback(|f| c.get_voice_room_member_count_with_callback(1, f)).unwrap_err();
        // Dropped twice: the second failure is final.
        assert!(matches!(err, Error::ConnectionClosed { .. }), "{err:?}");
        emu.server().faults().set_drop_every(0);
        assert_eq!(c.get_voice_room_member_count(1).unwrap(), 1);
    });
}
}
