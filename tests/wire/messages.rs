//! Messages and history (A.2), chat, translation and moderation (A.3).
//!
//! Every send is checked with a text body (`msg` as `str`) and a binary
//! one (`bin`); `attrs` is always present, `mid` always an int (the
//! caller's when given).

use std::time::Duration;

use rmpv::Value;
use rtm_server_sdk::rtm::{
    AudioOptions, ChatQuery, ClearProjectTarget, ConversationType, HistoryQuery, MediaSource,
    MsgCountOptions, ProfanityAction, SendOptions, TextType, TranslateOptions,
};

use crate::row;
use crate::rows::{entry, Extra, Row};

fn ints(v: &[i64]) -> Value {
    Value::Array(v.iter().map(|&i| Value::from(i)).collect())
}

/// `key` holds `want`.
fn is(e: &[(Value, Value)], key: &str, want: Value) -> Result<(), String> {
    match entry(e, key) {
        Some(v) if *v == want => Ok(()),
        other => Err(format!("`{key}` is {other:?}, expected {want}")),
    }
}

/// A text send: `msg` "hi", `attrs` "".
fn text_send(e: &[(Value, Value)]) -> Result<(), String> {
    is(e, "msg", Value::from("hi"))?;
    is(e, "attrs", Value::from(""))
}

/// A binary send with the caller's attrs and mid.
fn bin_send(e: &[(Value, Value)]) -> Result<(), String> {
    is(e, "msg", Value::Binary(vec![0, 255]))?;
    is(e, "attrs", Value::from("a"))?;
    is(e, "mid", Value::from(77))
}

fn bin_opts() -> SendOptions {
    SendOptions::default().attrs("a").mid(77)
}

fn mtime() -> Value {
    Value::from(1_600_000_000_000i64)
}

fn page() -> Value {
    Value::Array(vec![Value::Array(vec![
        Value::from(5),
        Value::from(1),
        Value::from(30),
        Value::from(9),
        Value::Boolean(false),
        Value::from("hi"),
        Value::from(""),
        mtime(),
    ])])
}

const CHAT_MTYPES: [i64; 6] = [30, 32, 40, 41, 42, 50];

fn chat_mtypes(e: &[(Value, Value)]) -> Result<(), String> {
    is(e, "mtypes", ints(&CHAT_MTYPES))
}

fn query() -> HistoryQuery {
    HistoryQuery {
        mtypes: vec![30, 51],
        last_id: 12,
        begin: 100,
        end: 200,
        num: 50,
        desc: false,
    }
}

fn chat_query() -> ChatQuery {
    ChatQuery {
        last_id: 12,
        begin: 100,
        end: 200,
        num: 50,
        desc: false,
    }
}

/// The chat form of [`full_query`]: its fields, with the chat types.
fn full_chat_query(e: &[(Value, Value)]) -> Result<(), String> {
    chat_mtypes(e)?;
    window(e)
}

fn full_query(e: &[(Value, Value)]) -> Result<(), String> {
    is(e, "mtypes", ints(&[30, 51]))?;
    window(e)
}

fn window(e: &[(Value, Value)]) -> Result<(), String> {
    is(e, "lastid", Value::from(12))?;
    is(e, "begin", Value::from(100))?;
    is(e, "end", Value::from(200))?;
    is(e, "num", Value::from(50))?;
    is(e, "desc", Value::Boolean(false))
}

fn kind(t: i64, xid: i64) -> Extra {
    // One fn per (type, xid) pair used below.
    match (t, xid) {
        (1, 3) => |e| {
            is(e, "type", Value::from(1))?;
            is(e, "xid", Value::from(3))
        },
        (2, 3) => |e| {
            is(e, "type", Value::from(2))?;
            is(e, "xid", Value::from(3))
        },
        (3, 3) => |e| {
            is(e, "type", Value::from(3))?;
            is(e, "xid", Value::from(3))
        },
        (4, 0) => |e| {
            is(e, "type", Value::from(4))?;
            is(e, "xid", Value::from(0))
        },
        _ => |_| Err("no such check".into()),
    }
}

pub fn rows() -> Vec<Row> {
    vec![
        // ---- A.2 sends, text and binary ----
        row!("sendmsg", send_message / send_message_with_callback (1, 2, 51, "hi", &SendOptions::default()),
            keys: [("mtype", Int), ("from", Int), ("to", Int), ("mid", Int), ("msg", Str), ("attrs", Str)],
            answer: [("mtime", mtime())], extra: |e| { text_send(e)?; is(e, "mtype", Value::from(51)) }),
        row!("sendmsg", send_message / send_message_with_callback (1, 2, 51, &[0u8, 255][..], &bin_opts()),
            keys: [("mtype", Int), ("from", Int), ("to", Int), ("mid", Int), ("msg", Bin), ("attrs", Str)],
            answer: [("mtime", mtime())], extra: bin_send),
        row!("sendmsgs", send_messages / send_messages_with_callback (1, &[2, 3], 51, String::from("hi"), &SendOptions::default()),
            keys: [("mtype", Int), ("from", Int), ("tos", Ints), ("mid", Int), ("msg", Str), ("attrs", Str)],
            answer: [("mtime", mtime())], extra: text_send),
        row!("sendmsgs", send_messages / send_messages_with_callback (1, &[2, 3], 51, vec![0u8, 255], &bin_opts()),
            keys: [("mtype", Int), ("from", Int), ("tos", Ints), ("mid", Int), ("msg", Bin), ("attrs", Str)],
            answer: [("mtime", mtime())], extra: bin_send),
        row!("sendgroupmsg", send_group_message / send_group_message_with_callback (1, 2, 51, "hi", &SendOptions::default()),
            keys: [("mtype", Int), ("from", Int), ("gid", Int), ("mid", Int), ("msg", Str), ("attrs", Str)],
            answer: [("mtime", mtime())], extra: text_send),
        row!("sendgroupmsg", send_group_message / send_group_message_with_callback (1, 2, 51, b"\x00\xff", &bin_opts()),
            keys: [("mtype", Int), ("from", Int), ("gid", Int), ("mid", Int), ("msg", Bin), ("attrs", Str)],
            answer: [("mtime", mtime())], extra: bin_send),
        row!("sendroommsg", send_room_message / send_room_message_with_callback (1, 2, 51, "hi", &SendOptions::default()),
            keys: [("mtype", Int), ("from", Int), ("rid", Int), ("mid", Int), ("msg", Str), ("attrs", Str)],
            answer: [("mtime", mtime())], extra: text_send),
        row!("sendroommsg", send_room_message / send_room_message_with_callback (1, 2, 51, &[0u8, 255][..], &bin_opts()),
            keys: [("mtype", Int), ("from", Int), ("rid", Int), ("mid", Int), ("msg", Bin), ("attrs", Str)],
            answer: [("mtime", mtime())], extra: bin_send),
        row!("broadcastmsg", send_broadcast_message / send_broadcast_message_with_callback (1, 51, "hi", &SendOptions::default()),
            keys: [("mtype", Int), ("from", Int), ("mid", Int), ("msg", Str), ("attrs", Str)],
            answer: [("mtime", mtime())], extra: text_send),
        row!("broadcastmsg", send_broadcast_message / send_broadcast_message_with_callback (1, 51, &[0u8, 255][..], &bin_opts()),
            keys: [("mtype", Int), ("from", Int), ("mid", Int), ("msg", Bin), ("attrs", Str)],
            answer: [("mtime", mtime())], extra: bin_send),
        // ---- A.3 chat and command sends ----
        row!("sendmsg", send_chat / send_chat_with_callback (1, 2, "hi", &SendOptions::default()),
            keys: [("mtype", Int), ("from", Int), ("to", Int), ("mid", Int), ("msg", Str), ("attrs", Str)],
            answer: [("mtime", mtime())], extra: |e| { text_send(e)?; is(e, "mtype", Value::from(30)) }),
        row!("sendmsg", send_cmd / send_cmd_with_callback (1, 2, &[0u8, 255][..], &bin_opts()),
            keys: [("mtype", Int), ("from", Int), ("to", Int), ("mid", Int), ("msg", Bin), ("attrs", Str)],
            answer: [("mtime", mtime())], extra: |e| { bin_send(e)?; is(e, "mtype", Value::from(32)) }),
        row!("sendmsgs", send_chats / send_chats_with_callback (1, &[2], &[0u8, 255][..], &bin_opts()),
            keys: [("mtype", Int), ("from", Int), ("tos", Ints), ("mid", Int), ("msg", Bin), ("attrs", Str)],
            answer: [("mtime", mtime())], extra: |e| { bin_send(e)?; is(e, "mtype", Value::from(30)) }),
        row!("sendmsgs", send_cmds / send_cmds_with_callback (1, &[2], "hi", &SendOptions::default()),
            keys: [("mtype", Int), ("from", Int), ("tos", Ints), ("mid", Int), ("msg", Str), ("attrs", Str)],
            answer: [("mtime", mtime())], extra: |e| { text_send(e)?; is(e, "mtype", Value::from(32)) }),
        row!("sendgroupmsg", send_group_chat / send_group_chat_with_callback (1, 2, "hi", &SendOptions::default()),
            keys: [("mtype", Int), ("from", Int), ("gid", Int), ("mid", Int), ("msg", Str), ("attrs", Str)],
            answer: [("mtime", mtime())], extra: |e| { text_send(e)?; is(e, "mtype", Value::from(30)) }),
        row!("sendgroupmsg", send_group_cmd / send_group_cmd_with_callback (1, 2, &[0u8, 255][..], &bin_opts()),
            keys: [("mtype", Int), ("from", Int), ("gid", Int), ("mid", Int), ("msg", Bin), ("attrs", Str)],
            answer: [("mtime", mtime())], extra: |e| { bin_send(e)?; is(e, "mtype", Value::from(32)) }),
        row!("sendroommsg", send_room_chat / send_room_chat_with_callback (1, 2, &[0u8, 255][..], &bin_opts()),
            keys: [("mtype", Int), ("from", Int), ("rid", Int), ("mid", Int), ("msg", Bin), ("attrs", Str)],
            answer: [("mtime", mtime())], extra: |e| { bin_send(e)?; is(e, "mtype", Value::from(30)) }),
        row!("sendroommsg", send_room_cmd / send_room_cmd_with_callback (1, 2, "hi", &SendOptions::default()),
            keys: [("mtype", Int), ("from", Int), ("rid", Int), ("mid", Int), ("msg", Str), ("attrs", Str)],
            answer: [("mtime", mtime())], extra: |e| { text_send(e)?; is(e, "mtype", Value::from(32)) }),
        row!("broadcastmsg", send_broadcast_chat / send_broadcast_chat_with_callback (1, "hi", &SendOptions::default()),
            keys: [("mtype", Int), ("from", Int), ("mid", Int), ("msg", Str), ("attrs", Str)],
            answer: [("mtime", mtime())], extra: |e| { text_send(e)?; is(e, "mtype", Value::from(30)) }),
        row!("broadcastmsg", send_broadcast_cmd / send_broadcast_cmd_with_callback (1, &[0u8, 255][..], &bin_opts()),
            keys: [("mtype", Int), ("from", Int), ("mid", Int), ("msg", Bin), ("attrs", Str)],
            answer: [("mtime", mtime())], extra: |e| { bin_send(e)?; is(e, "mtype", Value::from(32)) }),
        // ---- history ----
        row!("getgroupmsg", get_group_message / get_group_message_with_callback (1, 2, &HistoryQuery::default()),
            keys: [("gid", Int), ("desc", Bool), ("num", Int), ("begin", Int), ("end", Int), ("lastid", Int), ("uid", Int)],
            answer: [("num", Value::from(1)), ("lastid", Value::from(5)), ("begin", Value::from(0)), ("end", Value::from(0)), ("msgs", page())],
            extra: |e| { is(e, "desc", Value::Boolean(true))?; is(e, "num", Value::from(20)) }),
        row!("getgroupmsg", get_group_message / get_group_message_with_callback (1, 2, &query()),
            keys: [("gid", Int), ("desc", Bool), ("num", Int), ("begin", Int), ("end", Int), ("lastid", Int), ("uid", Int), ("mtypes", Ints)],
            answer: [("num", Value::from(1)), ("lastid", Value::from(5)), ("begin", Value::from(0)), ("end", Value::from(0)), ("msgs", page())],
            extra: full_query),
        row!("getroommsg", get_room_message / get_room_message_with_callback (1, 2, &query()),
            keys: [("rid", Int), ("desc", Bool), ("num", Int), ("begin", Int), ("end", Int), ("lastid", Int), ("uid", Int), ("mtypes", Ints)],
            answer: [("num", Value::from(1)), ("lastid", Value::from(5)), ("begin", Value::from(0)), ("end", Value::from(0)), ("msgs", page())],
            extra: full_query),
        row!("getbroadcastmsg", get_broadcast_message / get_broadcast_message_with_callback (2, &HistoryQuery::default()),
            keys: [("desc", Bool), ("num", Int), ("begin", Int), ("end", Int), ("lastid", Int), ("uid", Int)],
            answer: [("num", Value::from(1)), ("lastid", Value::from(5)), ("begin", Value::from(0)), ("end", Value::from(0)), ("msgs", page())]),
        row!("getp2pmsg", get_p2p_message / get_p2p_message_with_callback (1, 2, &query()),
            keys: [("uid", Int), ("ouid", Int), ("desc", Bool), ("num", Int), ("begin", Int), ("end", Int), ("lastid", Int), ("mtypes", Ints)],
            answer: [("num", Value::from(1)), ("lastid", Value::from(5)), ("begin", Value::from(0)), ("end", Value::from(0)), ("msgs", page())],
            extra: full_query),
        row!("getp2pmsg", get_p2p_message / get_p2p_message_with_callback (1, 2, &HistoryQuery::default()),
            keys: [("uid", Int), ("ouid", Int), ("desc", Bool), ("num", Int), ("begin", Int), ("end", Int), ("lastid", Int)],
            answer: [("num", Value::from(1)), ("lastid", Value::from(5)), ("begin", Value::from(0)), ("end", Value::from(0)), ("msgs", page())]),
        row!("getgroupmsg", get_group_chat / get_group_chat_with_callback (1, 2, &chat_query()),
            keys: [("gid", Int), ("desc", Bool), ("num", Int), ("begin", Int), ("end", Int), ("lastid", Int), ("uid", Int), ("mtypes", Ints)],
            answer: [("num", Value::from(1)), ("lastid", Value::from(5)), ("begin", Value::from(0)), ("end", Value::from(0)), ("msgs", page())],
            extra: full_chat_query),
        row!("getroommsg", get_room_chat / get_room_chat_with_callback (1, 2, &ChatQuery::default()),
            keys: [("rid", Int), ("desc", Bool), ("num", Int), ("begin", Int), ("end", Int), ("lastid", Int), ("uid", Int), ("mtypes", Ints)],
            answer: [("num", Value::from(1)), ("lastid", Value::from(5)), ("begin", Value::from(0)), ("end", Value::from(0)), ("msgs", page())],
            extra: chat_mtypes),
        row!("getbroadcastmsg", get_broadcast_chat / get_broadcast_chat_with_callback (2, &ChatQuery::default()),
            keys: [("desc", Bool), ("num", Int), ("begin", Int), ("end", Int), ("lastid", Int), ("uid", Int), ("mtypes", Ints)],
            answer: [("num", Value::from(1)), ("lastid", Value::from(5)), ("begin", Value::from(0)), ("end", Value::from(0)), ("msgs", page())],
            extra: chat_mtypes),
        row!("getp2pmsg", get_p2p_chat / get_p2p_chat_with_callback (1, 2, &chat_query()),
            keys: [("uid", Int), ("ouid", Int), ("desc", Bool), ("num", Int), ("begin", Int), ("end", Int), ("lastid", Int), ("mtypes", Ints)],
            answer: [("num", Value::from(1)), ("lastid", Value::from(5)), ("begin", Value::from(0)), ("end", Value::from(0)), ("msgs", page())],
            extra: full_chat_query),
        // ---- delete, get ----
        row!("delmsg", del_message / del_message_with_callback (9, 1, 3, ConversationType::Room),
            keys: [("mid", Int), ("from", Int), ("xid", Int), ("type", Int)], answer: [], extra: kind(3, 3)),
        row!("delmsg", del_p2p_message / del_p2p_message_with_callback (9, 1, 3),
            keys: [("mid", Int), ("from", Int), ("xid", Int), ("type", Int)], answer: [], extra: kind(1, 3)),
        row!("delmsg", del_group_message / del_group_message_with_callback (9, 1, 3),
            keys: [("mid", Int), ("from", Int), ("xid", Int), ("type", Int)], answer: [], extra: kind(2, 3)),
        row!("delmsg", del_room_message / del_room_message_with_callback (9, 1, 3),
            keys: [("mid", Int), ("from", Int), ("xid", Int), ("type", Int)], answer: [], extra: kind(3, 3)),
        row!("delmsg", del_broadcast_message / del_broadcast_message_with_callback (9, 1),
            keys: [("mid", Int), ("from", Int), ("xid", Int), ("type", Int)], answer: [], extra: kind(4, 0)),
        row!("delmsg", del_p2p_chat / del_p2p_chat_with_callback (9, 1, 3),
            keys: [("mid", Int), ("from", Int), ("xid", Int), ("type", Int)], answer: [], extra: kind(1, 3)),
        row!("delmsg", del_group_chat / del_group_chat_with_callback (9, 1, 3),
            keys: [("mid", Int), ("from", Int), ("xid", Int), ("type", Int)], answer: [], extra: kind(2, 3)),
        row!("delmsg", del_room_chat / del_room_chat_with_callback (9, 1, 3),
            keys: [("mid", Int), ("from", Int), ("xid", Int), ("type", Int)], answer: [], extra: kind(3, 3)),
        row!("delmsg", del_broadcast_chat / del_broadcast_chat_with_callback (9, 1),
            keys: [("mid", Int), ("from", Int), ("xid", Int), ("type", Int)], answer: [], extra: kind(4, 0)),
        row!("getmsg", get_message / get_message_with_callback (9, 1, 3, ConversationType::P2p),
            keys: [("mid", Int), ("from", Int), ("xid", Int), ("type", Int)],
            answer: [("id", Value::from(5)), ("mtype", Value::from(30)), ("msg", Value::Binary(vec![1])), ("attrs", Value::from("")), ("mtime", mtime())],
            extra: kind(1, 3)),
        row!("getmsg", get_chat / get_chat_with_callback (9, 1, 3, ConversationType::Group),
            keys: [("mid", Int), ("from", Int), ("xid", Int), ("type", Int)],
            answer: [("id", Value::from(5)), ("mtype", Value::from(30)), ("msg", Value::from("hi")), ("attrs", Value::from("")), ("mtime", mtime())],
            extra: kind(2, 3)),
        // ---- clean, clear, count, conversation, edit ----
        row!("cleanmsg", clean_message / clean_message_with_callback (1, 3, ConversationType::Group, 100, 200),
            keys: [("from", Int), ("xid", Int), ("type", Int), ("begin", Int), ("end", Int)], answer: [],
            extra: |e| { kind(2, 3)(e)?; is(e, "begin", Value::from(100))?; is(e, "end", Value::from(200)) }),
        row!("cleanmsg", clean_p2p_message / clean_p2p_message_with_callback (1, 3, 100, 200),
            keys: [("from", Int), ("xid", Int), ("type", Int), ("begin", Int), ("end", Int)], answer: [],
            extra: |e| { kind(1, 3)(e)?; is(e, "from", Value::from(1)) }),
        row!("cleanmsg", clean_group_message / clean_group_message_with_callback (3, 100, 200),
            keys: [("from", Int), ("xid", Int), ("type", Int), ("begin", Int), ("end", Int)], answer: [],
            extra: |e| { kind(2, 3)(e)?; is(e, "from", Value::from(0)) }),
        row!("cleanmsg", clean_room_message / clean_room_message_with_callback (3, 100, 200),
            keys: [("from", Int), ("xid", Int), ("type", Int), ("begin", Int), ("end", Int)], answer: [],
            extra: |e| { kind(3, 3)(e)?; is(e, "from", Value::from(0)) }),
        row!("cleanmsg", clean_broadcast_message / clean_broadcast_message_with_callback (1, 100, 200),
            keys: [("from", Int), ("xid", Int), ("type", Int), ("begin", Int), ("end", Int)], answer: [],
            extra: |e| { kind(4, 0)(e)?; is(e, "from", Value::from(1)) }),
        row!("clearprojectmsg", clear_project_message / clear_project_message_with_callback (ClearProjectTarget::Group),
            keys: [("type", Int)], answer: [], extra: |e| is(e, "type", Value::from(2))),
        row!("clearprojectmsg", clear_project_message / clear_project_message_with_callback (ClearProjectTarget::Room),
            keys: [("type", Int)], answer: [], extra: |e| is(e, "type", Value::from(1))),
        row!("clearprojectmsg", clear_project_message / clear_project_message_with_callback (ClearProjectTarget::All),
            keys: [("type", Int)], answer: [], extra: |e| is(e, "type", Value::from(4))),
        row!("getmsgnum", get_msg_count / get_msg_count_with_callback (ConversationType::Group, 3, &MsgCountOptions::default()),
            keys: [("type", Int), ("xid", Int)], answer: [("sender", Value::from(1)), ("num", Value::from(2))],
            extra: kind(2, 3)),
        row!("getmsgnum", get_msg_count / get_msg_count_with_callback (ConversationType::Room, 3,
                &MsgCountOptions { begin: 100, end: 200, mtypes: vec![30] }),
            keys: [("type", Int), ("xid", Int), ("mtypes", Ints), ("begin", Int), ("end", Int)],
            answer: [("sender", Value::from(1)), ("num", Value::from(2))], extra: kind(3, 3)),
        row!("delconversationmsgs", delete_conversation_messages / delete_conversation_messages_with_callback (1, 3, ConversationType::P2p),
            keys: [("from", Int), ("xid", Int), ("type", Int)], answer: [], extra: kind(1, 3)),
        row!("editmsg", edit_message / edit_message_with_callback (9, 1, 3, ConversationType::Room, "new", "a", Duration::from_millis(1500)),
            keys: [("mid", Int), ("from", Int), ("xid", Int), ("type", Int), ("msg", Str), ("attrs", Str), ("timeLimit", Int)], answer: [],
            extra: |e| { kind(3, 3)(e)?; is(e, "timeLimit", Value::from(2))?; is(e, "msg", Value::from("new")) }),
        row!("editmsg", edit_message / edit_message_with_callback (9, 1, 3, ConversationType::Room, &[0u8, 255][..], "a", Duration::from_secs(60)),
            keys: [("mid", Int), ("from", Int), ("xid", Int), ("type", Int), ("msg", Bin), ("attrs", Str), ("timeLimit", Int)], answer: [],
            extra: |e| { is(e, "msg", Value::Binary(vec![0, 255]))?; is(e, "timeLimit", Value::from(60)) }),
        // ---- translation and moderation ----
        row!("translate", translate / translate_with_callback ("hi", None, "fr", TranslateOptions::default(), 0),
            keys: [("text", Str), ("dst", Str)],
            answer: [("source", Value::from("en")), ("target", Value::from("fr")), ("sourceText", Value::from("hi")), ("targetText", Value::from("salut"))]),
        row!("translate", translate / translate_with_callback ("hi", Some(""), "fr", TranslateOptions { post_profanity: false, ..Default::default() }, -1),
            keys: [("text", Str), ("dst", Str)],
            answer: [("source", Value::from("en")), ("target", Value::from("fr")), ("sourceText", Value::from("hi")), ("targetText", Value::from("salut"))]),
        row!("translate", translate / translate_with_callback ("hi", Some("en"), "fr",
                TranslateOptions { text_type: Some(TextType::Mail), profanity: Some(ProfanityAction::Censor), post_profanity: true }, 5),
            keys: [("text", Str), ("dst", Str), ("src", Str), ("type", Str), ("profanity", Str), ("postProfanity", Bool), ("uid", Int)],
            answer: [("source", Value::from("en")), ("target", Value::from("fr")), ("sourceText", Value::from("hi")), ("targetText", Value::from("salut"))],
            extra: |e| { is(e, "type", Value::from("mail"))?; is(e, "profanity", Value::from("censor"))?; is(e, "postProfanity", Value::Boolean(true)) }),
        row!("profanity", profanity / profanity_with_callback ("hi", false, 0),
            keys: [("text", Str), ("classify", Bool)], answer: [("text", Value::from("hi"))]),
        row!("profanity", profanity / profanity_with_callback ("hi", true, 5),
            keys: [("text", Str), ("classify", Bool), ("uid", Int)],
            answer: [("text", Value::from("hi")), ("classification", Value::Array(vec![Value::from("x")]))]),
        row!("speech2text", speech2text / speech2text_with_callback ("http://a", MediaSource::Url, "en", &AudioOptions::default(), 0),
            keys: [("audio", Str), ("type", Int), ("lang", Str)],
            answer: [("text", Value::from("t")), ("lang", Value::from("en"))], extra: |e| is(e, "type", Value::from(1))),
        row!("speech2text", speech2text / speech2text_with_callback ("data", MediaSource::Content, "en",
                &AudioOptions { codec: Some("amr-wb".into()), sample_rate: 16000 }, 5),
            keys: [("audio", Str), ("type", Int), ("lang", Str), ("codec", Str), ("srate", Int), ("uid", Int)],
            answer: [("text", Value::from("t")), ("lang", Value::from("en"))], extra: |e| is(e, "type", Value::from(2))),
        row!("tcheck", text_check / text_check_with_callback ("hi", 0),
            keys: [("text", Str)], answer: [("result", Value::from(0))]),
        row!("tcheck", text_check / text_check_with_callback ("hi", 5),
            keys: [("text", Str), ("uid", Int)],
            answer: [("result", Value::from(2)), ("text", Value::from("**")), ("tags", Value::Array(vec![Value::from(1), Value::from("x")])),
                     ("wlist", Value::Array(vec![Value::from("hi")]))]),
        row!("icheck", image_check / image_check_with_callback ("http://a", MediaSource::Url, 0),
            keys: [("image", Str), ("type", Int)], answer: [("result", Value::from(0))]),
        row!("icheck", image_check / image_check_with_callback ("data", MediaSource::Content, 5),
            keys: [("image", Str), ("type", Int), ("uid", Int)], answer: [("result", Value::from(2)), ("tags", ints(&[3]))]),
        row!("acheck", audio_check / audio_check_with_callback ("http://a", MediaSource::Url, "en", &AudioOptions::default(), 0),
            keys: [("audio", Str), ("type", Int), ("lang", Str)], answer: [("result", Value::from(0))]),
        row!("acheck", audio_check / audio_check_with_callback ("data", MediaSource::Content, "en",
                &AudioOptions { codec: Some("opus".into()), sample_rate: 8000 }, 5),
            keys: [("audio", Str), ("type", Int), ("lang", Str), ("codec", Str), ("srate", Int), ("uid", Int)],
            answer: [("result", Value::from(0))]),
        row!("vcheck", video_check / video_check_with_callback ("http://a", MediaSource::Url, "v.mp4", 0),
            keys: [("video", Str), ("type", Int), ("videoName", Str)], answer: [("result", Value::from(0))]),
        row!("vcheck", video_check / video_check_with_callback ("http://a", MediaSource::Url, "v.mp4", 5),
            keys: [("video", Str), ("type", Int), ("videoName", Str), ("uid", Int)],
            answer: [("result", Value::from(2)), ("tags", Value::Array(vec![Value::from("porn")]))]),
    ]
}
