//! The chat and command forms: the send methods with
//! mtype 30 (chat) or 32 (command), history limited to the chat and file
//! types ([`MessageType::CHAT_MTYPES`]), and the chat names of delete and
//! get.
//!
//! ```
//! # let emulator = rtm_server_sdk::emulator::RtmEmulator::start(1, "s").unwrap();
//! # let client = rtm_server_sdk::RtmServerClient::new(1, "s", emulator.endpoint()).unwrap();
//! use rtm_server_sdk::rtm::{HistoryQuery, MessageType, SendOptions};
//! client.send_chat(1001, 1002, "hi", &SendOptions::default().mid(1))?;
//! client.send_message(1001, 1002, 77, "custom", &SendOptions::default())?;
//! let page = client.get_p2p_chat(1002, 1001, &HistoryQuery::default())?;
//! assert_eq!(page.messages.len(), 1); // the custom message is not a chat type
//! assert_eq!(MessageType::of(page.messages[0].mtype), MessageType::Chat);
//! assert_eq!(page.messages[0].from, 1001);
//! # Ok::<(), rtm_server_sdk::Error>(())
//! ```

use super::client::rtm_methods;
use super::history::{HistoryPage, HistoryQuery, RetrievedMessage};
use super::message::{ConversationType, MessageBody, MessageType, SendOptions};
use super::RtmServerClient;
use crate::Result;

const CHAT: i64 = MessageType::CHAT;
const CMD: i64 = MessageType::CMD;
const CHAT_MTYPES: &[i64] = &MessageType::CHAT_MTYPES;

rtm_methods! {
    /// Sends a chat text (mtype 30) from `from` to user `to`.
    fn send_chat / send_chat_with_callback
        (from: i64, to: i64, msg: impl Into<MessageBody>, options: &SendOptions) -> i64 {
        method: "sendmsg",
        params: {
            "mtype": CHAT, "from": from, "to": to, "mid": options.mid_or_next(),
            "msg": Into::<MessageBody>::into(msg), "attrs": options.attrs.as_str(),
        },
        answer: |a| a.int("mtime"),
    }

    /// Sends a command (mtype 32) from `from` to user `to`.
    fn send_cmd / send_cmd_with_callback
        (from: i64, to: i64, msg: impl Into<MessageBody>, options: &SendOptions) -> i64 {
        method: "sendmsg",
        params: {
            "mtype": CMD, "from": from, "to": to, "mid": options.mid_or_next(),
            "msg": Into::<MessageBody>::into(msg), "attrs": options.attrs.as_str(),
        },
        answer: |a| a.int("mtime"),
    }

    /// Sends a chat text (mtype 30) from `from` to every user of `tos`.
    fn send_chats / send_chats_with_callback
        (from: i64, tos: &[i64], msg: impl Into<MessageBody>, options: &SendOptions) -> i64 {
        method: "sendmsgs",
        params: {
            "mtype": CHAT, "from": from, "tos": tos, "mid": options.mid_or_next(),
            "msg": Into::<MessageBody>::into(msg), "attrs": options.attrs.as_str(),
        },
        answer: |a| a.int("mtime"),
    }

    /// Sends a command (mtype 32) from `from` to every user of `tos`.
    fn send_cmds / send_cmds_with_callback
        (from: i64, tos: &[i64], msg: impl Into<MessageBody>, options: &SendOptions) -> i64 {
        method: "sendmsgs",
        params: {
            "mtype": CMD, "from": from, "tos": tos, "mid": options.mid_or_next(),
            "msg": Into::<MessageBody>::into(msg), "attrs": options.attrs.as_str(),
        },
        answer: |a| a.int("mtime"),
    }

    /// Sends a chat text (mtype 30) from `from` to group `gid`.
    fn send_group_chat / send_group_chat_with_callback
        (from: i64, gid: i64, msg: impl Into<MessageBody>, options: &SendOptions) -> i64 {
        method: "sendgroupmsg",
        params: {
            "mtype": CHAT, "from": from, "gid": gid, "mid": options.mid_or_next(),
            "msg": Into::<MessageBody>::into(msg), "attrs": options.attrs.as_str(),
        },
        answer: |a| a.int("mtime"),
    }

    /// Sends a command (mtype 32) from `from` to group `gid`.
    fn send_group_cmd / send_group_cmd_with_callback
        (from: i64, gid: i64, msg: impl Into<MessageBody>, options: &SendOptions) -> i64 {
        method: "sendgroupmsg",
        params: {
            "mtype": CMD, "from": from, "gid": gid, "mid": options.mid_or_next(),
            "msg": Into::<MessageBody>::into(msg), "attrs": options.attrs.as_str(),
        },
        answer: |a| a.int("mtime"),
    }

    /// Sends a chat text (mtype 30) from `from` to room `rid`.
    fn send_room_chat / send_room_chat_with_callback
        (from: i64, rid: i64, msg: impl Into<MessageBody>, options: &SendOptions) -> i64 {
        method: "sendroommsg",
        params: {
            "mtype": CHAT, "from": from, "rid": rid, "mid": options.mid_or_next(),
            "msg": Into::<MessageBody>::into(msg), "attrs": options.attrs.as_str(),
        },
        answer: |a| a.int("mtime"),
    }

    /// Sends a command (mtype 32) from `from` to room `rid`.
    fn send_room_cmd / send_room_cmd_with_callback
        (from: i64, rid: i64, msg: impl Into<MessageBody>, options: &SendOptions) -> i64 {
        method: "sendroommsg",
        params: {
            "mtype": CMD, "from": from, "rid": rid, "mid": options.mid_or_next(),
            "msg": Into::<MessageBody>::into(msg), "attrs": options.attrs.as_str(),
        },
        answer: |a| a.int("mtime"),
    }

    /// Broadcasts a chat text (mtype 30) from `from`.
    fn send_broadcast_chat / send_broadcast_chat_with_callback
        (from: i64, msg: impl Into<MessageBody>, options: &SendOptions) -> i64 {
        method: "broadcastmsg",
        params: {
            "mtype": CHAT, "from": from, "mid": options.mid_or_next(),
            "msg": Into::<MessageBody>::into(msg), "attrs": options.attrs.as_str(),
        },
        answer: |a| a.int("mtime"),
    }

    /// Broadcasts a command (mtype 32) from `from`.
    fn send_broadcast_cmd / send_broadcast_cmd_with_callback
        (from: i64, msg: impl Into<MessageBody>, options: &SendOptions) -> i64 {
        method: "broadcastmsg",
        params: {
            "mtype": CMD, "from": from, "mid": options.mid_or_next(),
            "msg": Into::<MessageBody>::into(msg), "attrs": options.attrs.as_str(),
        },
        answer: |a| a.int("mtime"),
    }

    /// A page of group `gid`'s chat history (the chat, command and file
    /// types; `query.mtypes` is not used), read as user `uid`.
    fn get_group_chat / get_group_chat_with_callback
        (gid: i64, uid: i64, query: &HistoryQuery) -> HistoryPage {
        method: "getgroupmsg",
        params: {
            "gid": gid, "desc": query.desc, "num": i64::from(query.num),
            "begin": query.begin, "end": query.end, "lastid": query.last_id, "uid": uid,
            "mtypes": CHAT_MTYPES,
        },
        answer: super::history::read_page,
    }

    /// A page of room `rid`'s chat history (the chat, command and file
    /// types; `query.mtypes` is not used), read as user `uid`.
    fn get_room_chat / get_room_chat_with_callback
        (rid: i64, uid: i64, query: &HistoryQuery) -> HistoryPage {
        method: "getroommsg",
        params: {
            "rid": rid, "desc": query.desc, "num": i64::from(query.num),
            "begin": query.begin, "end": query.end, "lastid": query.last_id, "uid": uid,
            "mtypes": CHAT_MTYPES,
        },
        answer: super::history::read_page,
    }

    /// A page of the broadcast chat history (the chat, command and file
    /// types; `query.mtypes` is not used), read as user `uid`.
    fn get_broadcast_chat / get_broadcast_chat_with_callback
        (uid: i64, query: &HistoryQuery) -> HistoryPage {
        method: "getbroadcastmsg",
        params: {
            "desc": query.desc, "num": i64::from(query.num),
            "begin": query.begin, "end": query.end, "lastid": query.last_id, "uid": uid,
            "mtypes": CHAT_MTYPES,
        },
        answer: super::history::read_page,
    }

    /// Deletes P2P chat message `mid` sent by `from` to `to`.
    fn del_p2p_chat / del_p2p_chat_with_callback (mid: i64, from: i64, to: i64) -> () {
        method: "delmsg",
        params: { "mid": mid, "from": from, "xid": to, "type": ConversationType::P2p },
        answer: |_| Ok(()),
    }

    /// Deletes group chat message `mid` sent by `from` to group `gid`.
    fn del_group_chat / del_group_chat_with_callback (mid: i64, from: i64, gid: i64) -> () {
        method: "delmsg",
        params: { "mid": mid, "from": from, "xid": gid, "type": ConversationType::Group },
        answer: |_| Ok(()),
    }

    /// Deletes room chat message `mid` sent by `from` to room `rid`.
    fn del_room_chat / del_room_chat_with_callback (mid: i64, from: i64, rid: i64) -> () {
        method: "delmsg",
        params: { "mid": mid, "from": from, "xid": rid, "type": ConversationType::Room },
        answer: |_| Ok(()),
    }

    /// Deletes broadcast chat message `mid` sent by `from`.
    fn del_broadcast_chat / del_broadcast_chat_with_callback (mid: i64, from: i64) -> () {
        method: "delmsg",
        params: { "mid": mid, "from": from, "xid": 0i64, "type": ConversationType::Broadcast },
        answer: |_| Ok(()),
    }

    /// Reads chat message `mid` sent by `from` in a conversation (the same
    /// quest as [`get_message`](Self::get_message)).
    fn get_chat / get_chat_with_callback
        (mid: i64, from: i64, xid: i64, kind: ConversationType) -> RetrievedMessage {
        method: "getmsg",
        params: { "mid": mid, "from": from, "xid": xid, "type": kind },
        answer: super::history::read_retrieved,
    }
}

impl RtmServerClient {
    /// A page of the P2P chat history between `uid` and `ouid` (the chat,
    /// command and file types; `query.mtypes` is not used); see
    /// [`get_p2p_message`](Self::get_p2p_message).
    ///
    /// Quest `getp2pmsg`. The callback form is
    /// [`get_p2p_chat_with_callback`](Self::get_p2p_chat_with_callback).
    ///
    /// # Errors
    ///
    /// As every RTM method: the server's refusal, a timeout, a connection
    /// error or a malformed answer (see [`Error`](crate::Error)).
    pub fn get_p2p_chat(&self, uid: i64, ouid: i64, query: &HistoryQuery) -> Result<HistoryPage> {
        self.p2p_history(uid, ouid, query, CHAT_MTYPES)
    }

    /// The callback form of [`get_p2p_chat`](Self::get_p2p_chat): sends the
    /// same quest and returns at once; `callback` receives the same result
    /// exactly once, on a callback thread.
    pub fn get_p2p_chat_with_callback<F>(
        &self,
        uid: i64,
        ouid: i64,
        query: &HistoryQuery,
        callback: F,
    ) where
        F: FnOnce(Result<HistoryPage>) + Send + 'static,
    {
        self.p2p_history_with_callback(uid, ouid, query, CHAT_MTYPES, Box::new(callback))
    }
}
