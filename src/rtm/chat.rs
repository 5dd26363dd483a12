//! The chat and command forms: the send methods with
//! mtype 30 (chat) or 32 (command), history limited to the chat and file
//! types ([`MessageType::CHAT_MTYPES`]), and the chat names of delete and
//! get (the same quests as [`del_message`](RtmServerClient::del_message)
//! and [`get_message`](RtmServerClient::get_message) and their forms; Go
//! has both names).
//!
//! The chat histories take a [`ChatQuery`]: a [`HistoryQuery`] without
//! its type filter, since they always ask for the chat types.
//!
//! ```
//! # let emulator = rtm_server_sdk::emulator::RtmEmulator::start(1, "s").unwrap();
//! # let client = rtm_server_sdk::RtmServerClient::new(1, "s", emulator.endpoint()).unwrap();
//! use rtm_server_sdk::rtm::{ChatQuery, MessageType, SendOptions};
//! client.send_chat(1001, 1002, "hi", &SendOptions::default().mid(1))?;
//! client.send_message(1001, 1002, 77, "custom", &SendOptions::default())?;
//! let page = client.get_p2p_chat(1002, 1001, &ChatQuery::default())?;
//! assert_eq!(page.messages.len(), 1); // the custom message is not a chat type
//! assert_eq!(MessageType::of(page.messages[0].mtype), MessageType::Chat);
//! assert_eq!(page.messages[0].from, 1001);
//! # Ok::<(), rtm_server_sdk::Error>(())
//! ```

use super::client::rtm_methods;
use super::history::{HistoryPage, HistoryPages, HistoryQuery, PagedQuery, RetrievedMessage};
use super::message::{send_methods, ConversationType, MessageType};
use super::RtmServerClient;
use crate::Result;

const CHAT: i64 = MessageType::CHAT;
const CMD: i64 = MessageType::CMD;
const CHAT_MTYPES: &[i64] = &MessageType::CHAT_MTYPES;

/// Which messages of a chat history to read, and in which order: a
/// [`HistoryQuery`] without its type filter, since the chat histories
/// (`get_*_chat`) always ask for the chat, command and file types
/// ([`MessageType::CHAT_MTYPES`]). Paging works as for [`HistoryQuery`]
/// ([`next_page`](Self::next_page), [`pages`](Self::pages)).
///
/// The default reads the 20 newest messages first (`desc: true`), the
/// whole time range, from the start (`last_id: 0`).
///
/// ```
/// # let emulator = rtm_server_sdk::emulator::RtmEmulator::start(1, "s").unwrap();
/// # let client = rtm_server_sdk::RtmServerClient::new(1, "s", emulator.endpoint()).unwrap();
/// use rtm_server_sdk::rtm::{ChatQuery, SendOptions};
/// for i in 0..3 {
///     client.send_room_chat(1001, 5, format!("chat {i}"), &SendOptions::default())?;
/// }
/// let query = ChatQuery { desc: false, num: 2, ..Default::default() };
/// let mut texts = Vec::new();
/// for page in query.pages(|q| client.get_room_chat(5, 1001, q)) {
///     texts.extend(page?.messages.into_iter().map(|m| m.body));
/// }
/// assert_eq!(texts.len(), 3);
/// # Ok::<(), rtm_server_sdk::Error>(())
/// ```
///
/// It has no type filter to set (and so none to be ignored):
///
/// ```compile_fail
/// use rtm_server_sdk::rtm::ChatQuery;
/// let query = ChatQuery { mtypes: vec![51], ..Default::default() };
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChatQuery {
    /// Newest first (`true`, the default) or oldest first.
    pub desc: bool,
    /// The most messages per page (the wire's int16; default 20). A server
    /// may return fewer: the service returns at most 20 per call.
    pub num: i16,
    /// The start of the time window, in milliseconds (0: open).
    pub begin: i64,
    /// The end of the time window, in milliseconds (0: open).
    pub end: i64,
    /// The cursor: 0 for the first page, then the previous page's
    /// [`last_id`](HistoryPage::last_id).
    pub last_id: i64,
}

impl Default for ChatQuery {
    fn default() -> Self {
        ChatQuery {
            desc: true,
            num: 20,
            begin: 0,
            end: 0,
            last_id: 0,
        }
    }
}

impl ChatQuery {
    /// The query of the page after `page`, or `None` when `page` was the
    /// last one; the rule of [`HistoryQuery::next_page`] (an empty page is
    /// the last, a short one is not).
    #[must_use]
    pub fn next_page(&self, page: &HistoryPage) -> Option<ChatQuery> {
        let next = self.history().next_page(page)?;
        Some(ChatQuery {
            last_id: next.last_id,
            begin: next.begin,
            end: next.end,
            ..self.clone()
        })
    }

    /// Every page of a chat history, from this query on, as
    /// [`HistoryQuery::pages`]: `fetch` reads one page (for example
    /// `|q| client.get_group_chat(gid, uid, q)`).
    #[must_use = "the pages are read only when the iterator is used"]
    pub fn pages<F>(self, fetch: F) -> HistoryPages<F, ChatQuery>
    where
        F: FnMut(&ChatQuery) -> Result<HistoryPage>,
    {
        HistoryPages {
            next: Some(self),
            fetch,
        }
    }

    /// The same query as a [`HistoryQuery`] with no type filter.
    fn history(&self) -> HistoryQuery {
        HistoryQuery {
            desc: self.desc,
            num: self.num,
            begin: self.begin,
            end: self.end,
            last_id: self.last_id,
            mtypes: Vec::new(),
        }
    }
}

impl PagedQuery for ChatQuery {
    fn next_page(&self, page: &HistoryPage) -> Option<Self> {
        ChatQuery::next_page(self, page)
    }
}

send_methods! {
    /// Sends a chat text (mtype 30) from `from` to user `to`.
    fn send_chat / send_chat_with_callback (from: i64, to: i64) {
        method: "sendmsg",
        params: { "mtype": CHAT, "from": from, "to": to },
    }

    /// Sends a command (mtype 32) from `from` to user `to`.
    fn send_cmd / send_cmd_with_callback (from: i64, to: i64) {
        method: "sendmsg",
        params: { "mtype": CMD, "from": from, "to": to },
    }

    /// Sends a chat text (mtype 30) from `from` to every user of `tos`.
    fn send_chats / send_chats_with_callback (from: i64, tos: &[i64]) {
        method: "sendmsgs",
        params: { "mtype": CHAT, "from": from, "tos": tos },
    }

    /// Sends a command (mtype 32) from `from` to every user of `tos`.
    fn send_cmds / send_cmds_with_callback (from: i64, tos: &[i64]) {
        method: "sendmsgs",
        params: { "mtype": CMD, "from": from, "tos": tos },
    }

    /// Sends a chat text (mtype 30) from `from` to group `gid`.
    fn send_group_chat / send_group_chat_with_callback (from: i64, gid: i64) {
        method: "sendgroupmsg",
        params: { "mtype": CHAT, "from": from, "gid": gid },
    }

    /// Sends a command (mtype 32) from `from` to group `gid`.
    fn send_group_cmd / send_group_cmd_with_callback (from: i64, gid: i64) {
        method: "sendgroupmsg",
        params: { "mtype": CMD, "from": from, "gid": gid },
    }

    /// Sends a chat text (mtype 30) from `from` to room `rid`.
    fn send_room_chat / send_room_chat_with_callback (from: i64, rid: i64) {
        method: "sendroommsg",
        params: { "mtype": CHAT, "from": from, "rid": rid },
    }

    /// Sends a command (mtype 32) from `from` to room `rid`.
    fn send_room_cmd / send_room_cmd_with_callback (from: i64, rid: i64) {
        method: "sendroommsg",
        params: { "mtype": CMD, "from": from, "rid": rid },
    }

    /// Broadcasts a chat text (mtype 30) from `from`.
    fn send_broadcast_chat / send_broadcast_chat_with_callback (from: i64) {
        method: "broadcastmsg",
        params: { "mtype": CHAT, "from": from },
    }

    /// Broadcasts a command (mtype 32) from `from`.
    fn send_broadcast_cmd / send_broadcast_cmd_with_callback (from: i64) {
        method: "broadcastmsg",
        params: { "mtype": CMD, "from": from },
    }
}

rtm_methods! {
    /// A page of group `gid`'s chat history (the chat, command and file
    /// types), read as user `uid`: the same quest as
    /// [`get_group_message`](Self::get_group_message) with those types (Go
    /// has both).
    fn get_group_chat / get_group_chat_with_callback
        (gid: i64, uid: i64, query: &ChatQuery) -> HistoryPage {
        method: "getgroupmsg",
        params: {
            "gid": gid, "desc": query.desc, "num": i64::from(query.num),
            "begin": query.begin, "end": query.end, "lastid": query.last_id, "uid": uid,
            "mtypes": CHAT_MTYPES,
        },
        answer: super::history::read_page,
    }

    /// A page of room `rid`'s chat history (the chat, command and file
    /// types), read as user `uid`: the same quest as
    /// [`get_room_message`](Self::get_room_message) with those types (Go
    /// has both).
    fn get_room_chat / get_room_chat_with_callback
        (rid: i64, uid: i64, query: &ChatQuery) -> HistoryPage {
        method: "getroommsg",
        params: {
            "rid": rid, "desc": query.desc, "num": i64::from(query.num),
            "begin": query.begin, "end": query.end, "lastid": query.last_id, "uid": uid,
            "mtypes": CHAT_MTYPES,
        },
        answer: super::history::read_page,
    }

    /// A page of the broadcast chat history (the chat, command and file
    /// types), read as user `uid`: the same quest as
    /// [`get_broadcast_message`](Self::get_broadcast_message) with those
    /// types (Go has both).
    fn get_broadcast_chat / get_broadcast_chat_with_callback
        (uid: i64, query: &ChatQuery) -> HistoryPage {
        method: "getbroadcastmsg",
        params: {
            "desc": query.desc, "num": i64::from(query.num),
            "begin": query.begin, "end": query.end, "lastid": query.last_id, "uid": uid,
            "mtypes": CHAT_MTYPES,
        },
        answer: super::history::read_page,
    }

    /// Deletes P2P chat message `mid` sent by `from` to `to` (the same
    /// quest as [`del_p2p_message`](Self::del_p2p_message); Go has both).
    fn del_p2p_chat / del_p2p_chat_with_callback (mid: i64, from: i64, to: i64) -> () {
        method: "delmsg",
        params: { "mid": mid, "from": from, "xid": to, "type": ConversationType::P2p },
        answer: |_| Ok(()),
    }

    /// Deletes group chat message `mid` sent by `from` to group `gid` (the
    /// same quest as [`del_group_message`](Self::del_group_message); Go has
    /// both).
    fn del_group_chat / del_group_chat_with_callback (mid: i64, from: i64, gid: i64) -> () {
        method: "delmsg",
        params: { "mid": mid, "from": from, "xid": gid, "type": ConversationType::Group },
        answer: |_| Ok(()),
    }

    /// Deletes room chat message `mid` sent by `from` to room `rid` (the
    /// same quest as [`del_room_message`](Self::del_room_message); Go has
    /// both).
    fn del_room_chat / del_room_chat_with_callback (mid: i64, from: i64, rid: i64) -> () {
        method: "delmsg",
        params: { "mid": mid, "from": from, "xid": rid, "type": ConversationType::Room },
        answer: |_| Ok(()),
    }

    /// Deletes broadcast chat message `mid` sent by `from` (the same quest
    /// as [`del_broadcast_message`](Self::del_broadcast_message); Go has
    /// both).
    fn del_broadcast_chat / del_broadcast_chat_with_callback (mid: i64, from: i64) -> () {
        method: "delmsg",
        params: { "mid": mid, "from": from, "xid": 0i64, "type": ConversationType::Broadcast },
        answer: |_| Ok(()),
    }

    /// Reads chat message `mid` sent by `from` in a conversation (the same
    /// quest as [`get_message`](Self::get_message); Go has both).
    fn get_chat / get_chat_with_callback
        (mid: i64, from: i64, xid: i64, kind: ConversationType) -> RetrievedMessage {
        method: "getmsg",
        params: { "mid": mid, "from": from, "xid": xid, "type": kind },
        answer: super::history::read_retrieved,
    }
}

impl RtmServerClient {
    /// A page of the P2P chat history between `uid` and `ouid` (the chat,
    /// command and file types): the same quest as
    /// [`get_p2p_message`](Self::get_p2p_message) with those types (Go has
    /// both).
    ///
    /// Quest `getp2pmsg`. The callback form is
    /// [`get_p2p_chat_with_callback`](Self::get_p2p_chat_with_callback).
    ///
    /// # Errors
    ///
    /// As every RTM method: the server's refusal, a timeout, a connection
    /// error or a malformed answer (see [`Error`](crate::Error)).
    pub fn get_p2p_chat(&self, uid: i64, ouid: i64, query: &ChatQuery) -> Result<HistoryPage> {
        self.p2p_history(uid, ouid, &query.history(), CHAT_MTYPES)
    }

    /// The callback form of [`get_p2p_chat`](Self::get_p2p_chat): sends the
    /// same quest and returns at once; `callback` receives the same result
    /// exactly once, on a callback thread.
    pub fn get_p2p_chat_with_callback<F>(&self, uid: i64, ouid: i64, query: &ChatQuery, callback: F)
    where
        F: FnOnce(Result<HistoryPage>) + Send + 'static,
    {
        self.p2p_history_with_callback(uid, ouid, &query.history(), CHAT_MTYPES, Box::new(callback))
    }
}
