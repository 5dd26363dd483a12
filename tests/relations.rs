//! Friends, black lists and per-user data (A.4) through the emulator:
//! what is set is read back, friendship is two-way and black lists one-way,
//! and bad input is refused; every method in both forms.

mod common;

use std::time::Duration;

use common::{map, via_callback as cb, watchdog};
use rmpv::Value;
use rtm_server_sdk::emulator::RtmEmulator;
use rtm_server_sdk::{codes, Result, RtmServerClient};

const PID: i64 = 11000001;
const SECRET: &str = "relations-secret";
const LIMIT: Duration = Duration::from_secs(30);

fn setup() -> (RtmEmulator, RtmServerClient) {
    common::emulator_and_client(PID, SECRET, Duration::from_secs(10))
}

fn code<T: std::fmt::Debug>(r: Result<T>) -> i64 {
    r.expect_err("an error").code().expect("a server error")
}

fn ids(v: &[i64]) -> Value {
    Value::Array(v.iter().map(|&i| Value::from(i)).collect())
}

#[test]
fn friendship_is_two_way() {
    watchdog(LIMIT, || {
        let (emu, c) = setup();
        c.add_friends(1, &[3, 2, 1]).unwrap(); // 1 itself is ignored
        assert_eq!(c.get_friends(1).unwrap(), [2, 3]);
        assert_eq!(c.get_friends(2).unwrap(), [1], "two-way");
        assert_eq!(cb(|f| c.get_friends_with_callback(3, f)).unwrap(), [1]);
        cb(|f| c.add_friends_with_callback(2, &[4], f)).unwrap();
        assert_eq!(emu.friends(2), [1, 4]);
        assert_eq!(emu.friends(4), [2]);

        assert!(c.is_friend(1, 2).unwrap());
        assert!(c.is_friend(2, 1).unwrap());
        assert!(!c.is_friend(1, 4).unwrap());
        assert!(!cb(|f| c.is_friend_with_callback(1, 1, f)).unwrap());
        assert!(cb(|f| c.is_friend_with_callback(4, 2, f)).unwrap());
        assert_eq!(c.is_friends(1, &[4, 3, 9, 2, 3]).unwrap(), [3, 2]);
        assert_eq!(cb(|f| c.is_friends_with_callback(2, &[1], f)).unwrap(), [1]);

        // Deleting from either side ends both directions.
        c.del_friends(2, &[1, 7]).unwrap();
        assert_eq!(c.get_friends(1).unwrap(), [3]);
        assert_eq!(c.get_friends(2).unwrap(), [4]);
        cb(|f| c.del_friends_with_callback(1, &[3], f)).unwrap();
        assert!(c.get_friends(1).unwrap().is_empty());
        assert!(emu.friends(3).is_empty());
    })
}

#[test]
fn black_lists_are_one_way() {
    watchdog(LIMIT, || {
        let (emu, c) = setup();
        c.add_friends(1, &[2]).unwrap();
        c.add_blacks(1, &[5, 2]).unwrap();
        cb(|f| c.add_blacks_with_callback(1, &[6, 1], f)).unwrap(); // 1 itself is ignored
        assert_eq!(c.get_blacks(1).unwrap(), [2, 5, 6]);
        assert!(
            cb(|f| c.get_blacks_with_callback(5, f)).unwrap().is_empty(),
            "one-way"
        );
        assert!(c.is_friend(1, 2).unwrap(), "blacking keeps the friendship");

        assert!(c.is_black(1, 5).unwrap());
        assert!(!c.is_black(5, 1).unwrap());
        assert!(cb(|f| c.is_black_with_callback(1, 6, f)).unwrap());
        assert_eq!(c.is_blacks(1, &[7, 6, 5, 6]).unwrap(), [6, 5]);
        assert!(cb(|f| c.is_blacks_with_callback(2, &[1], f))
            .unwrap()
            .is_empty());

        c.del_blacks(1, &[5, 8]).unwrap();
        assert_eq!(emu.blacks(1), [2, 6]);
        cb(|f| c.del_blacks_with_callback(1, &[2, 6], f)).unwrap();
        assert!(c.get_blacks(1).unwrap().is_empty());
    })
}

#[test]
fn data_is_read_back() {
    watchdog(LIMIT, || {
        let (emu, c) = setup();
        assert_eq!(c.get_data(1, "level").unwrap(), None);
        c.set_data(1, "level", "7").unwrap();
        cb(|f| c.set_data_with_callback(1, "name", "Alice", f)).unwrap();
        c.set_data(2, "level", "1").unwrap();
        assert_eq!(c.get_data(1, "level").unwrap().as_deref(), Some("7"));
        let name = cb(|f| c.get_data_with_callback(1, "name", f)).unwrap();
        assert_eq!(name.as_deref(), Some("Alice"));
        c.set_data(1, "level", "").unwrap();
        assert_eq!(c.get_data(1, "level").unwrap().as_deref(), Some(""));
        assert_eq!(c.get_data(2, "level").unwrap().as_deref(), Some("1"));

        c.del_data(1, "level").unwrap();
        assert_eq!(c.get_data(1, "level").unwrap(), None);
        cb(|f| c.del_data_with_callback(1, "missing", f)).unwrap();
        assert_eq!(
            emu.user_data(1).into_iter().collect::<Vec<_>>(),
            [("name".to_string(), "Alice".to_string())]
        );

        // The raw answer for a missing key has no `val`.
        let raw = c
            .call(
                "dataget",
                map(vec![("uid", 1.into()), ("key", "nope".into())]),
            )
            .unwrap();
        assert_eq!(raw, Value::Map(vec![]));

        assert_eq!(
            code(c.set_data(1, "", "v")),
            codes::RTM_EC_INVALID_PARAMETER
        );
        assert_eq!(code(c.get_data(1, "")), codes::RTM_EC_INVALID_PARAMETER);
        assert_eq!(
            code(c.call("dataset", map(vec![("uid", 1.into()), ("key", "k".into())]))),
            codes::FPNN_EC_PROTO_KEY_NOT_FOUND
        );
        assert_eq!(
            code(c.call(
                "dataset",
                map(vec![
                    ("uid", 1.into()),
                    ("key", "k".into()),
                    ("val", 5.into())
                ])
            )),
            codes::FPNN_EC_PROTO_TYPE_CONVERT
        );
        assert_eq!(
            code(c.call("datadel", map(vec![("uid", 1.into()), ("key", ids(&[1]))]))),
            codes::FPNN_EC_PROTO_TYPE_CONVERT
        );
    })
}

#[test]
fn missing_and_mistyped_parameters_are_refused() {
    watchdog(LIMIT, || {
        let (emu, c) = setup();
        for (method, list) in [
            ("addfriends", "friends"),
            ("delfriends", "friends"),
            ("isfriends", "fuids"),
            ("addblacks", "blacks"),
            ("delblacks", "blacks"),
            ("isblacks", "buids"),
        ] {
            assert_eq!(
                code(c.call(method, map(vec![("uid", 1.into())]))),
                codes::FPNN_EC_PROTO_KEY_NOT_FOUND,
                "{method}"
            );
            assert_eq!(
                code(c.call(method, map(vec![("uid", 1.into()), (list, 2.into())]))),
                codes::FPNN_EC_PROTO_TYPE_CONVERT,
                "{method}"
            );
            assert_eq!(
                code(c.call(method, map(vec![("uid", "1".into()), (list, ids(&[2]))]))),
                codes::FPNN_EC_PROTO_TYPE_CONVERT,
                "{method}"
            );
        }
        for (method, other) in [("isfriend", "fuid"), ("isblack", "buid")] {
            assert_eq!(
                code(c.call(method, map(vec![("uid", 1.into())]))),
                codes::FPNN_EC_PROTO_KEY_NOT_FOUND,
                "{method}"
            );
            assert_eq!(
                code(c.call(method, map(vec![("uid", 1.into()), (other, ids(&[2]))]))),
                codes::FPNN_EC_PROTO_TYPE_CONVERT,
                "{method}"
            );
        }
        for method in ["getfriends", "getblacks"] {
            assert_eq!(
                code(c.call(method, map(vec![]))),
                codes::FPNN_EC_PROTO_KEY_NOT_FOUND,
                "{method}"
            );
        }
        // A refused quest changes nothing.
        assert!(emu.friends(1).is_empty() && emu.blacks(1).is_empty());
    })
}
