//! The IM library (A.7, `imserver_*`).

use std::collections::HashMap;

use rmpv::Value;

use crate::row;
use crate::rows::{entry, map, Row};

fn ids(v: &[i64]) -> Value {
    Value::Array(v.iter().map(|&i| Value::from(i)).collect())
}

fn infos() -> HashMap<String, String> {
    HashMap::from([("k".to_string(), "v".to_string())])
}

/// `infos` is `{"k": "v"}`.
fn infos_sent(e: &[(Value, Value)]) -> Result<(), String> {
    (entry(e, "infos") == Some(&map(vec![("k", Value::from("v"))])))
        .then_some(())
        .ok_or_else(|| format!("infos = {:?}", entry(e, "infos")))
}

pub fn rows() -> Vec<Row> {
    vec![
        row!("imserver_setuserinfos", imserver_set_user_infos / imserver_set_user_infos_with_callback (1, &infos()),
            keys: [("uid", Int), ("infos", StrMap)], answer: [], extra: infos_sent),
        // An empty map is still sent (never nil).
        row!("imserver_setuserinfos", imserver_set_user_infos / imserver_set_user_infos_with_callback (1, &HashMap::new()),
            keys: [("uid", Int), ("infos", StrMap)], answer: []),
        row!("imserver_setgroupinfos", imserver_set_group_infos / imserver_set_group_infos_with_callback (2, &infos()),
            keys: [("gid", Int), ("infos", StrMap)], answer: [], extra: infos_sent),
        // extra: sent when given and not empty.
        row!("imserver_setapplygrant", imserver_set_apply_grant / imserver_set_apply_grant_with_callback (1, 2, 3, Some("why")),
            keys: [("type", Int), ("xid", Int), ("grant_type", Int), ("extra", Str)], answer: []),
        row!("imserver_setapplygrant", imserver_set_apply_grant / imserver_set_apply_grant_with_callback (1, 2, 3, None),
            keys: [("type", Int), ("xid", Int), ("grant_type", Int)], answer: []),
        row!("imserver_setapplygrant", imserver_set_apply_grant / imserver_set_apply_grant_with_callback (1, 2, 3, Some("")),
            keys: [("type", Int), ("xid", Int), ("grant_type", Int)], answer: []),
        row!("imserver_setinvitegrant", imserver_set_invite_grant / imserver_set_invite_grant_with_callback (1, 2, 3, 4),
            keys: [("type", Int), ("xid", Int), ("invite_type", Int), ("invite_manage_type", Int)], answer: [],
            extra: |e| (entry(e, "invite_manage_type") == Some(&Value::from(4))).then_some(()).ok_or("invite_manage_type".into())),
        row!("imserver_creategroup", imserver_create_group / imserver_create_group_with_callback (2, 1, &infos(), &HashMap::new()),
            keys: [("gid", Int), ("owner_uid", Int), ("infos", StrMap), ("permissions", StrMap)], answer: [],
            extra: infos_sent),
        row!("imserver_dismissgroup", imserver_dismiss_group / imserver_dismiss_group_with_callback (2),
            keys: [("gid", Int)], answer: []),
        row!("imserver_getapplygrant", imserver_get_apply_grant / imserver_get_apply_grant_with_callback (1, 2),
            keys: [("type", Int), ("xid", Int)], answer: [("grant_type", Value::from(3))]),
        row!("imserver_getinvitegrant", imserver_get_invite_grant / imserver_get_invite_grant_with_callback (1, 2),
            keys: [("type", Int), ("xid", Int)],
            answer: [("invite_type", Value::from(3)), ("invite_manage_type", Value::from(4))]),
        row!("imserver_getuserinfos", imserver_get_user_infos / imserver_get_user_infos_with_callback (&[1, 2]),
            keys: [("uids", Ints)], answer: [("infos", map(vec![("1", map(vec![("k", Value::from("v"))]))]))]),
        row!("imserver_getgroupinfos", imserver_get_group_infos / imserver_get_group_infos_with_callback (&[2]),
            keys: [("gids", Ints)], answer: [("infos", map(vec![("2", map(vec![("k", Value::from("v"))]))]))]),
        row!("imserver_addgroupmembers", imserver_add_group_members / imserver_add_group_members_with_callback (2, &[3, 4]),
            keys: [("gid", Int), ("uids", Ints)], answer: [], extra: |e| (entry(e, "uids") == Some(&ids(&[3, 4]))).then_some(()).ok_or("uids".into())),
    ]
}
