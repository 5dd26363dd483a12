//! Devices and push options (A.5).

use rmpv::Value;
use rtm_server_sdk::rtm::PushOptionType;

use crate::row;
use crate::rows::{entry, map, Row};

fn ids(v: &[i64]) -> Value {
    Value::Array(v.iter().map(|&i| Value::from(i)).collect())
}

fn group_type(e: &[(Value, Value)]) -> Result<(), String> {
    (entry(e, "type") == Some(&Value::from(1)) && entry(e, "mtypes") == Some(&ids(&[30, 31])))
        .then_some(())
        .ok_or_else(|| format!("type/mtypes: {e:?}"))
}

fn p2p_type(e: &[(Value, Value)]) -> Result<(), String> {
    (entry(e, "type") == Some(&Value::from(0)))
        .then_some(())
        .ok_or_else(|| format!("type = {:?}, expected 0", entry(e, "type")))
}

pub fn rows() -> Vec<Row> {
    vec![
        row!("adddevice", add_device / add_device_with_callback (1, "fcm", "token-1"),
            keys: [("uid", Int), ("apptype", Str), ("devicetoken", Str)], answer: []),
        row!("removedevice", remove_device / remove_device_with_callback (1, "token-1"),
            keys: [("uid", Int), ("devicetoken", Str)], answer: []),
        // With mtypes, and without (every mtype: the key is not sent).
        row!("addoption", add_device_push_option / add_device_push_option_with_callback
                (1, PushOptionType::Group, 7, &[30, 31]),
            keys: [("uid", Int), ("type", Int), ("xid", Int), ("mtypes", Ints)], answer: [], extra: group_type),
        row!("addoption", add_device_push_option / add_device_push_option_with_callback
                (1, PushOptionType::P2p, 2, &[]),
            keys: [("uid", Int), ("type", Int), ("xid", Int)], answer: [], extra: p2p_type),
        row!("removeoption", remove_device_push_option / remove_device_push_option_with_callback
                (1, PushOptionType::Group, 7, &[30, 31]),
            keys: [("uid", Int), ("type", Int), ("xid", Int), ("mtypes", Ints)], answer: [], extra: group_type),
        row!("removeoption", remove_device_push_option / remove_device_push_option_with_callback
                (1, PushOptionType::P2p, 2, &[]),
            keys: [("uid", Int), ("type", Int), ("xid", Int)], answer: [], extra: p2p_type),
        row!("getoption", get_device_push_option / get_device_push_option_with_callback (1),
            keys: [("uid", Int)],
            answer: [("p2p", map(vec![("2", ids(&[]))])), ("group", map(vec![("7", ids(&[30, 31]))]))]),
    ]
}
