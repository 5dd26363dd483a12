//! Rooms (A.5; not the voice and RTC rooms).

use std::time::Duration;

use rmpv::Value;

use crate::row;
use crate::rows::{entry, map, Row};

fn ids(v: &[i64]) -> Value {
    Value::Array(v.iter().map(|&i| Value::from(i)).collect())
}

fn btime_30(e: &[(Value, Value)]) -> Result<(), String> {
    (entry(e, "btime") == Some(&Value::from(30)))
        .then_some(())
        .ok_or_else(|| format!("btime = {:?}, expected 30", entry(e, "btime")))
}

pub fn rows() -> Vec<Row> {
    vec![
        row!("addroommember", add_room_member / add_room_member_with_callback (1, 2),
            keys: [("rid", Int), ("uid", Int)], answer: []),
        row!("addroommembers", add_room_members / add_room_members_with_callback (1, &[2, 3]),
            keys: [("rid", Int), ("uids", Ints)], answer: [("successedUids", ids(&[2]))]),
        row!("delroommember", del_room_member / del_room_member_with_callback (1, 2),
            keys: [("rid", Int), ("uid", Int)], answer: []),
        row!("delroommembers", del_room_members / del_room_members_with_callback (1, &[2, 3]),
            keys: [("rid", Int), ("uids", Ints)], answer: [("successedUids", ids(&[3]))]),
        // rid > 0: sent; rid 0: every room, not sent.
        row!("addroomban", add_room_ban / add_room_ban_with_callback (1, 2, Duration::from_secs(30)),
            keys: [("rid", Int), ("uid", Int), ("btime", Int)], answer: [], extra: btime_30),
        row!("addroomban", add_room_ban / add_room_ban_with_callback (0, 2, Duration::from_secs(30)),
            keys: [("uid", Int), ("btime", Int)], answer: [], extra: btime_30),
        row!("removeroomban", remove_room_ban / remove_room_ban_with_callback (1, 2),
            keys: [("rid", Int), ("uid", Int)], answer: []),
        row!("removeroomban", remove_room_ban / remove_room_ban_with_callback (0, 2),
            keys: [("uid", Int)], answer: []),
        row!("isbanofroom", is_ban_of_room / is_ban_of_room_with_callback (1, 2),
            keys: [("rid", Int), ("uid", Int)], answer: [("ok", Value::from(true))]),
        row!("setroominfo", set_room_info / set_room_info_with_callback (1, Some("pub"), Some("priv")),
            keys: [("rid", Int), ("oinfo", Str), ("pinfo", Str)], answer: []),
        row!("setroominfo", set_room_info / set_room_info_with_callback (1, Some("pub"), None),
            keys: [("rid", Int), ("oinfo", Str)], answer: []),
        row!("setroominfo", set_room_info / set_room_info_with_callback (1, None, None),
            keys: [("rid", Int)], answer: []),
        row!("getroominfo", get_room_info / get_room_info_with_callback (1),
            keys: [("rid", Int)], answer: [("oinfo", Value::from("a")), ("pinfo", Value::from("b"))]),
        row!("getroommembers", get_room_members / get_room_members_with_callback (1),
            keys: [("rid", Int)], answer: [("uids", ids(&[2]))]),
        row!("getroomcount", get_room_count / get_room_count_with_callback (&[1, 2]),
            keys: [("rids", Ints)], answer: [("cn", map(vec![("1", Value::from(3)), ("2", Value::from(0))]))]),
        row!("adduserrooms", add_user_rooms / add_user_rooms_with_callback (&[1, 2], 3),
            keys: [("rids", Ints), ("uid", Int)], answer: []),
        row!("deleteuserrooms", delete_user_rooms / delete_user_rooms_with_callback (&[1, 2], 3),
            keys: [("rids", Ints), ("uid", Int)], answer: []),
    ]
}
