//! Groups (A.5).

use std::time::Duration;

use rmpv::Value;

use crate::row;
use crate::rows::{entry, Row};

fn ids(v: &[i64]) -> Value {
    Value::Array(v.iter().map(|&i| Value::from(i)).collect())
}

/// `btime` is 90 (a fraction of a second rounds up).
fn btime_90(e: &[(Value, Value)]) -> Result<(), String> {
    (entry(e, "btime") == Some(&Value::from(90)))
        .then_some(())
        .ok_or_else(|| format!("btime = {:?}, expected 90", entry(e, "btime")))
}

pub fn rows() -> Vec<Row> {
    vec![
        row!("addgroupmembers", add_group_members / add_group_members_with_callback (1, &[2, 3]),
            keys: [("gid", Int), ("uids", Ints)], answer: []),
        row!("delgroupmembers", del_group_members / del_group_members_with_callback (1, &[2]),
            keys: [("gid", Int), ("uids", Ints)], answer: []),
        row!("delgroup", del_group / del_group_with_callback (1),
            keys: [("gid", Int)], answer: []),
        row!("getgroupmembers", get_group_members / get_group_members_with_callback (1),
            keys: [("gid", Int)], answer: [("uids", ids(&[2, 3]))]),
        row!("getgroupcount", get_group_count / get_group_count_with_callback (1),
            keys: [("gid", Int)], answer: [("cn", Value::from(2))]),
        row!("isgroupmember", is_group_member / is_group_member_with_callback (1, 2),
            keys: [("gid", Int), ("uid", Int)], answer: [("ok", Value::from(true))]),
        row!("getusergroups", get_user_groups / get_user_groups_with_callback (2),
            keys: [("uid", Int)], answer: [("gids", ids(&[1]))]),
        // gid > 0: sent.
        row!("addgroupban", add_group_ban / add_group_ban_with_callback (1, 2, Duration::from_millis(89_500)),
            keys: [("gid", Int), ("uid", Int), ("btime", Int)], answer: [], extra: btime_90),
        // gid 0: every group, gid not sent.
        row!("addgroupban", add_group_ban / add_group_ban_with_callback (0, 2, Duration::from_secs(90)),
            keys: [("uid", Int), ("btime", Int)], answer: [], extra: btime_90),
        row!("removegroupban", remove_group_ban / remove_group_ban_with_callback (1, 2),
            keys: [("gid", Int), ("uid", Int)], answer: []),
        row!("removegroupban", remove_group_ban / remove_group_ban_with_callback (0, 2),
            keys: [("uid", Int)], answer: []),
        row!("isbanofgroup", is_ban_of_group / is_ban_of_group_with_callback (1, 2),
            keys: [("gid", Int), ("uid", Int)], answer: [("ok", Value::from(false))]),
        row!("setgroupinfo", set_group_info / set_group_info_with_callback (1, Some("pub"), Some("priv")),
            keys: [("gid", Int), ("oinfo", Str), ("pinfo", Str)], answer: []),
        row!("setgroupinfo", set_group_info / set_group_info_with_callback (1, None, Some("priv")),
            keys: [("gid", Int), ("pinfo", Str)], answer: []),
        row!("setgroupinfo", set_group_info / set_group_info_with_callback (1, Some(""), None),
            keys: [("gid", Int), ("oinfo", Str)], answer: []),
        row!("getgroupinfo", get_group_info / get_group_info_with_callback (1),
            keys: [("gid", Int)], answer: [("oinfo", Value::from("a")), ("pinfo", Value::from("b"))]),
        row!("clearprojectgroup", clear_project_group / clear_project_group_with_callback (),
            keys: [], answer: []),
    ]
}
