//! Tokens and users (A.1) through the emulator: what is set is read back,
//! tokens are fresh and revocable, bans expire on the emulator's clock, and
//! bad input is refused; every method in both forms.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{map, via_callback as cb, watchdog};
use rmpv::Value;
use rtm_server_sdk::emulator::RtmEmulator;
use rtm_server_sdk::rtm::UserInfo;
use rtm_server_sdk::{codes, Error, Result, RtmServerClient};

const PID: i64 = 11000001;
const SECRET: &str = "users-secret";
const LIMIT: Duration = Duration::from_secs(30);

fn setup() -> (RtmEmulator, RtmServerClient) {
    common::emulator_and_client(PID, SECRET, Duration::from_secs(10))
}

fn code<T: std::fmt::Debug>(r: Result<T>) -> i64 {
    r.expect_err("an error").code().expect("a server error")
}

#[test]
fn tokens_are_fresh_and_revocable() {
    watchdog(LIMIT, || {
        let (emu, c) = setup();
        let t1 = c.get_token(7).unwrap();
        let t2 = cb(|f| c.get_token_with_callback(7, f)).unwrap();
        assert_eq!(t1.len(), 32, "{t1}");
        assert_ne!(t1, t2, "each token is fresh");
        assert!(emu.is_token_valid(7, &t1) && emu.is_token_valid(7, &t2));
        assert!(!emu.is_token_valid(8, &t1), "a token belongs to its user");
        assert!(!emu.is_token_valid(7, "forged"));
        let other = c.get_token(8).unwrap();

        c.remove_token(7).unwrap();
        assert!(!emu.is_token_valid(7, &t1) && !emu.is_token_valid(7, &t2));
        assert!(emu.is_token_valid(8, &other), "only uid 7's tokens go");
        let t3 = c.get_token(7).unwrap();
        assert!(emu.is_token_valid(7, &t3));
        cb(|f| c.remove_token_with_callback(7, f)).unwrap();
        assert!(!emu.is_token_valid(7, &t3));
        assert!(emu.user_tokens(7).is_empty());
        assert_eq!(emu.user_tokens(8), [other]);

        // The emulator keeps the 64 most recent tokens of a user.
        let tokens: Vec<String> = (0..66).map(|_| c.get_token(9).unwrap()).collect();
        assert_eq!(emu.user_tokens(9), tokens[2..]);
        assert!(!emu.is_token_valid(9, &tokens[1]));
        assert!(emu.is_token_valid(9, &tokens[2]) && emu.is_token_valid(9, &tokens[65]));
    })
}

#[test]
fn online_users_and_kickout() {
    watchdog(LIMIT, || {
        let (emu, c) = setup();
        assert!(c.get_online_users(&[1, 2]).unwrap().is_empty());
        emu.set_online(&[1, 2, 3]);
        assert_eq!(c.get_online_users(&[3, 4, 1, 3]).unwrap(), [3, 1]);
        c.kickout(1).unwrap();
        assert_eq!(c.get_online_users(&[1, 2, 3]).unwrap(), [2, 3]);
        cb(|f| c.kickout_with_callback(3, f)).unwrap();
        c.kickout(99).unwrap(); // offline: not an error
        assert_eq!(emu.online_users(), [2]);
        let online = cb(|f| c.get_online_users_with_callback(&[1, 2, 3], f)).unwrap();
        assert_eq!(online, [2]);
    })
}

#[test]
fn project_black_and_ban_expire_on_the_emulator_clock() {
    watchdog(LIMIT, || {
        let (emu, c) = setup();
        c.add_project_black(1, Duration::from_secs(60)).unwrap();
        cb(|f| c.add_project_ban_with_callback(2, Duration::from_millis(1500), f)).unwrap();
        assert!(c.is_project_black(1).unwrap());
        assert!(!c.is_project_ban(1).unwrap(), "black and ban are separate");
        assert!(cb(|f| c.is_project_ban_with_callback(2, f)).unwrap());
        assert!(!cb(|f| c.is_project_black_with_callback(2, f)).unwrap());
        let until = emu.project_black_until(1).unwrap();
        assert!((until - emu.now_ms() - 60_000).abs() < 5_000, "{until}");

        // 1.5 s is sent as 2 s.
        emu.advance_clock(Duration::from_millis(1500));
        assert!(c.is_project_ban(2).unwrap());
        emu.advance_clock(Duration::from_millis(600));
        assert!(!c.is_project_ban(2).unwrap());
        assert_eq!(emu.project_ban_until(2), None);

        emu.advance_clock(Duration::from_secs(55));
        assert!(c.is_project_black(1).unwrap());
        emu.advance_clock(Duration::from_secs(3));
        assert!(!c.is_project_black(1).unwrap());

        // A new call replaces the expiry; removing ends it at once.
        c.add_project_ban(3, Duration::from_secs(10)).unwrap();
        c.add_project_ban(3, Duration::from_secs(100)).unwrap();
        emu.advance_clock(Duration::from_secs(50));
        assert!(c.is_project_ban(3).unwrap());
        c.remove_project_ban(3).unwrap();
        assert!(!c.is_project_ban(3).unwrap());
        c.add_project_black(3, Duration::from_secs(100)).unwrap();
        cb(|f| c.remove_project_black_with_callback(3, f)).unwrap();
        assert!(!c.is_project_black(3).unwrap());
        c.add_project_ban(4, Duration::from_secs(100)).unwrap();
        cb(|f| c.remove_project_ban_with_callback(4, f)).unwrap();
        assert!(!c.is_project_ban(4).unwrap());
        cb(|f| c.add_project_black_with_callback(5, Duration::from_secs(5), f)).unwrap();
        assert!(c.is_project_black(5).unwrap());
        // Removing what is not there is fine.
        c.remove_project_black(42).unwrap();
    })
}

#[test]
fn bad_ban_durations_are_refused() {
    watchdog(LIMIT, || {
        let (emu, c) = setup();
        c.get_token(1).unwrap(); // connected
        emu.clear_received();
        for r in [
            c.add_project_ban(1, Duration::MAX),
            c.add_project_black(1, Duration::MAX),
            cb(|f| c.add_project_ban_with_callback(1, Duration::MAX, f)),
            cb(|f| c.add_project_black_with_callback(1, Duration::MAX, f)),
        ] {
            match r {
                Err(Error::InvalidArgument(why)) => assert!(why.contains("btime"), "{why}"),
                other => panic!("expected InvalidArgument, got {other:?}"),
            }
        }
        assert!(emu.received().is_empty(), "nothing was sent");

        // What the client never sends, the emulator refuses too.
        let raw = |method: &str, btime: Value| {
            c.call(method, map(vec![("uid", 1.into()), ("btime", btime)]))
        };
        for method in ["addprojectban", "addprojectblack"] {
            assert_eq!(
                code(raw(method, Value::from(-1))),
                codes::RTM_EC_INVALID_PARAMETER
            );
            assert_eq!(
                code(raw(method, Value::from("60"))),
                codes::FPNN_EC_PROTO_TYPE_CONVERT
            );
            assert_eq!(
                code(c.call(method, map(vec![("uid", 1.into())]))),
                codes::FPNN_EC_PROTO_KEY_NOT_FOUND
            );
        }
        assert!(!c.is_project_ban(1).unwrap());
        assert!(!c.is_project_black(1).unwrap());
        // A zero duration ends any entry.
        c.add_project_ban(1, Duration::from_secs(60)).unwrap();
        c.add_project_ban(1, Duration::ZERO).unwrap();
        assert!(!c.is_project_ban(1).unwrap());
    })
}

#[test]
fn user_info_is_read_back() {
    watchdog(LIMIT, || {
        let (emu, c) = setup();
        assert_eq!(c.get_user_info(1).unwrap(), UserInfo::default());
        c.set_user_info(1, Some("pub1"), None).unwrap();
        assert_eq!(emu.user_info(1), (Some("pub1".into()), None));
        c.set_user_info(1, None, Some("priv1")).unwrap();
        let info = c.get_user_info(1).unwrap();
        assert_eq!(
            (info.public.as_str(), info.private.as_str()),
            ("pub1", "priv1")
        );
        cb(|f| c.set_user_info_with_callback(2, Some("pub2"), Some("priv2"), f)).unwrap();
        c.set_user_info(3, None, Some("only private")).unwrap();
        c.set_user_info(4, None, None).unwrap(); // sets nothing
        let info = cb(|f| c.get_user_info_with_callback(2, f)).unwrap();
        assert_eq!(
            (info.public.as_str(), info.private.as_str()),
            ("pub2", "priv2")
        );
        c.set_user_info(1, Some(""), None).unwrap();
        assert_eq!(c.get_user_info(1).unwrap().private, "priv1");

        // Only asked users with a public info are answered.
        let public = c.get_user_public_info(&[1, 2, 3, 4, 5]).unwrap();
        let want: HashMap<i64, String> = [(1, String::new()), (2, "pub2".into())].into();
        assert_eq!(public, want);
        let public = cb(|f| c.get_user_public_info_with_callback(&[2, 9], f)).unwrap();
        assert_eq!(public, HashMap::from([(2, "pub2".to_string())]));

        assert_eq!(
            code(c.call(
                "setuserinfo",
                map(vec![("uid", 1.into()), ("oinfo", 5.into())])
            )),
            codes::FPNN_EC_PROTO_TYPE_CONVERT
        );
        assert_eq!(
            code(c.call("getuseropeninfo", map(vec![("uids", 1.into())]))),
            codes::FPNN_EC_PROTO_TYPE_CONVERT
        );
        assert_eq!(
            code(c.call("getuserinfo", map(vec![]))),
            codes::FPNN_EC_PROTO_KEY_NOT_FOUND
        );
    })
}

#[test]
fn sessions_and_clear_user_message() {
    watchdog(LIMIT, || {
        let (emu, c) = setup();
        c.add_sessions(1, &[3, 2]).unwrap();
        cb(|f| c.add_sessions_with_callback(1, &[4], f)).unwrap();
        assert_eq!(emu.user_sessions(1), [2, 3, 4]);
        c.remove_sessions(1, &[2, 9]).unwrap();
        assert_eq!(emu.user_sessions(1), [3, 4]);
        cb(|f| c.remove_sessions_with_callback(1, &[3, 4], f)).unwrap();
        assert!(emu.user_sessions(1).is_empty());
        assert_eq!(
            code(c.call("addsessions", map(vec![("uid", 1.into())]))),
            codes::FPNN_EC_PROTO_KEY_NOT_FOUND
        );

        // No message stored: clearing is a no-op either way (the emulator's
        // unit tests check that the user's messages go).
        c.clear_user_message(1).unwrap();
        cb(|f| c.clear_user_message_with_callback(1, f)).unwrap();
        assert_eq!(
            code(c.call("clearusermsg", map(vec![("uid", "1".into())]))),
            codes::FPNN_EC_PROTO_TYPE_CONVERT
        );
    })
}

#[test]
fn missing_and_mistyped_uids_are_refused() {
    watchdog(LIMIT, || {
        let (_emu, c) = setup();
        for method in [
            "gettoken",
            "removetoken",
            "kickout",
            "removeprojectblack",
            "isprojectblack",
            "removeprojectban",
            "isprojectban",
            "setuserinfo",
            "getuserinfo",
            "clearusermsg",
        ] {
            assert_eq!(
                code(c.call(method, map(vec![]))),
                codes::FPNN_EC_PROTO_KEY_NOT_FOUND,
                "{method}"
            );
            assert_eq!(
                code(c.call(method, map(vec![("uid", 1.5.into())]))),
                codes::FPNN_EC_PROTO_TYPE_CONVERT,
                "{method}"
            );
        }
        assert_eq!(
            code(c.call(
                "getonlineusers",
                map(vec![("uids", Value::Array(vec!["1".into()]))])
            )),
            codes::FPNN_EC_PROTO_TYPE_CONVERT
        );
    })
}
