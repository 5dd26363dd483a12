//! A.4 Friends, blacklist and data.

use rmpv::Value;

use crate::row;
use crate::rows::Row;

fn ids(v: &[i64]) -> Value {
    Value::Array(v.iter().map(|&i| Value::from(i)).collect())
}

pub fn rows() -> Vec<Row> {
    vec![
        row!("addfriends", add_friends / add_friends_with_callback (1, &[2, 3]),
            keys: [("uid", Int), ("friends", Ints)], answer: []),
        row!("delfriends", del_friends / del_friends_with_callback (1, &[2]),
            keys: [("uid", Int), ("friends", Ints)], answer: []),
        row!("getfriends", get_friends / get_friends_with_callback (1),
            keys: [("uid", Int)], answer: [("uids", ids(&[2, 3]))]),
        row!("isfriend", is_friend / is_friend_with_callback (1, 2),
            keys: [("uid", Int), ("fuid", Int)], answer: [("ok", Value::from(true))]),
        row!("isfriends", is_friends / is_friends_with_callback (1, &[2, 3]),
            keys: [("uid", Int), ("fuids", Ints)], answer: [("fuids", ids(&[2]))]),
        row!("addblacks", add_blacks / add_blacks_with_callback (1, &[2, 3]),
            keys: [("uid", Int), ("blacks", Ints)], answer: []),
        row!("delblacks", del_blacks / del_blacks_with_callback (1, &[2]),
            keys: [("uid", Int), ("blacks", Ints)], answer: []),
        row!("getblacks", get_blacks / get_blacks_with_callback (1),
            keys: [("uid", Int)], answer: [("uids", ids(&[3]))]),
        row!("isblack", is_black / is_black_with_callback (1, 3),
            keys: [("uid", Int), ("buid", Int)], answer: [("ok", Value::from(false))]),
        row!("isblacks", is_blacks / is_blacks_with_callback (1, &[2, 3]),
            keys: [("uid", Int), ("buids", Ints)], answer: [("buids", ids(&[3]))]),
        row!("dataget", get_data / get_data_with_callback (1, "k"),
            keys: [("uid", Int), ("key", Str)], answer: [("val", Value::from("v"))]),
        // `val` is optional in the answer.
        row!("dataget", get_data / get_data_with_callback (1, "k"),
            keys: [("uid", Int), ("key", Str)], answer: []),
        row!("dataset", set_data / set_data_with_callback (1, "k", "v"),
            keys: [("uid", Int), ("key", Str), ("val", Str)], answer: []),
        row!("datadel", del_data / del_data_with_callback (1, "k"),
            keys: [("uid", Int), ("key", Str)], answer: []),
    ]
}
