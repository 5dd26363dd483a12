//! A.1 Tokens and users.

use std::time::Duration;

use rmpv::Value;

use crate::row;
use crate::rows::{entry, map, Row};

fn ids(v: &[i64]) -> Value {
    Value::Array(v.iter().map(|&i| Value::from(i)).collect())
}

/// `btime` is the whole seconds of the duration, a fraction rounded up.
fn btime_is_91(e: &[(Value, Value)]) -> Result<(), String> {
    match entry(e, "btime") {
        Some(v) if *v == Value::from(91) => Ok(()),
        other => Err(format!("btime = {other:?}, expected 91")),
    }
}

fn info(e: &[(Value, Value)], key: &str, want: &str) -> Result<(), String> {
    match entry(e, key) {
        Some(v) if v.as_str() == Some(want) => Ok(()),
        other => Err(format!("{key} = {other:?}, expected {want:?}")),
    }
}

pub fn rows() -> Vec<Row> {
    vec![
        row!("gettoken", get_token / get_token_with_callback (1),
            keys: [("uid", Int)], answer: [("token", Value::from("T0K3N"))]),
        row!("removetoken", remove_token / remove_token_with_callback (1),
            keys: [("uid", Int)], answer: []),
        row!("kickout", kickout / kickout_with_callback (1),
            keys: [("uid", Int)], answer: []),
        row!("getonlineusers", get_online_users / get_online_users_with_callback (&[1, 2]),
            keys: [("uids", Ints)], answer: [("uids", ids(&[2]))]),
        row!("addprojectblack", add_project_black / add_project_black_with_callback (1, Duration::from_millis(90_500)),
            keys: [("uid", Int), ("btime", Int)], answer: [], extra: btime_is_91),
        row!("removeprojectblack", remove_project_black / remove_project_black_with_callback (1),
            keys: [("uid", Int)], answer: []),
        row!("isprojectblack", is_project_black / is_project_black_with_callback (1),
            keys: [("uid", Int)], answer: [("ok", Value::from(true))]),
        row!("addprojectban", add_project_ban / add_project_ban_with_callback (1, Duration::from_millis(90_001)),
            keys: [("uid", Int), ("btime", Int)], answer: [], extra: btime_is_91),
        row!("removeprojectban", remove_project_ban / remove_project_ban_with_callback (1),
            keys: [("uid", Int)], answer: []),
        row!("isprojectban", is_project_ban / is_project_ban_with_callback (1),
            keys: [("uid", Int)], answer: [("ok", Value::from(false))]),
        // `oinfo` and `pinfo` are sent only when given.
        row!("setuserinfo", set_user_info / set_user_info_with_callback (1, Some("pub"), None),
            keys: [("uid", Int), ("oinfo", Str)], answer: [],
            extra: |e| info(e, "oinfo", "pub")),
        row!("setuserinfo", set_user_info / set_user_info_with_callback (1, None, Some("priv")),
            keys: [("uid", Int), ("pinfo", Str)], answer: [],
            extra: |e| info(e, "pinfo", "priv")),
        row!("setuserinfo", set_user_info / set_user_info_with_callback (1, Some("pub"), Some("priv")),
            keys: [("uid", Int), ("oinfo", Str), ("pinfo", Str)], answer: [],
            extra: |e| info(e, "oinfo", "pub").and_then(|()| info(e, "pinfo", "priv"))),
        row!("setuserinfo", set_user_info / set_user_info_with_callback (1, None, None),
            keys: [("uid", Int)], answer: []),
        row!("getuserinfo", get_user_info / get_user_info_with_callback (1),
            keys: [("uid", Int)], answer: [("oinfo", Value::from("o")), ("pinfo", Value::from("p"))]),
        row!("getuseropeninfo", get_user_public_info / get_user_public_info_with_callback (&[1, 2]),
            keys: [("uids", Ints)], answer: [("info", map(vec![("1", Value::from("o"))]))]),
        row!("clearusermsg", clear_user_message / clear_user_message_with_callback (1),
            keys: [("uid", Int)], answer: []),
        row!("addsessions", add_sessions / add_sessions_with_callback (1, &[2, 3]),
            keys: [("uid", Int), ("uids", Ints)], answer: []),
        row!("removesessions", remove_sessions / remove_sessions_with_callback (1, &[2]),
            keys: [("uid", Int), ("uids", Ints)], answer: []),
    ]
}
