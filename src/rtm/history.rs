//! History and stored messages reading a conversation
//! page by page, getting, deleting, cleaning, counting and editing
//! messages.
//!
//! A history query ([`HistoryQuery`]) names the order (`desc`), the page
//! size (`num`), a time window (`begin`/`end`, in milliseconds, 0 for
//! open) and the cursor (`last_id`, 0 for the first page); the answer
//! ([`HistoryPage`]) carries the cursor of the next page.
//!
//! A server may hold a page to fewer messages than `num` asks for (the
//! service returns at most 20 per call, as its docs say, and the emulator
//! does the same), so a page shorter than `num` is not taken as the last
//! one: paging goes on from the answer's cursor until a page is empty (or
//! its cursor does not move). Reading a whole history therefore ends with
//! one call that returns an empty page. [`HistoryQuery::pages`] runs that
//! loop:
//!
//! ```
//! # let emulator = rtm_server_sdk::emulator::RtmEmulator::start(1, "s").unwrap();
//! # let client = rtm_server_sdk::RtmServerClient::new(1, "s", emulator.endpoint()).unwrap();
//! use rtm_server_sdk::rtm::{HistoryQuery, SendOptions};
//! for i in 0..25 {
//!     client.send_group_chat(1001, 42, format!("message {i}"), &SendOptions::default())?;
//! }
//! let query = HistoryQuery { num: 10, desc: false, ..Default::default() };
//! let mut texts = Vec::new();
//! for page in query.pages(|q| client.get_group_message(42, 1001, q)) {
//!     for m in page?.messages {
//!         texts.push(m.body.as_text().unwrap_or_default().to_string());
//!     }
//! }
//! assert_eq!(texts.len(), 25);
//! assert_eq!(texts[0], "message 0");
//! # Ok::<(), rtm_server_sdk::Error>(())
//! ```

// `edit_message` takes Go's seven arguments.
#![allow(clippy::too_many_arguments)]

use std::time::Duration;

use rmpv::Value;

use super::client::rtm_methods;
use super::message::{decode_file, ClearProjectTarget, ConversationType, FileInfo, MessageBody};
use super::params::{AnswerReader, Params, Seconds};
use super::RtmServerClient;
use crate::fpnn::conn::MethodName;
use crate::Result;

/// Which messages of a conversation to read, and in which order.
///
/// The default reads the 20 newest messages first (`desc: true`), the
/// whole time range, no type filter, from the start (`last_id: 0`).
///
/// ```
/// use rtm_server_sdk::rtm::HistoryQuery;
/// let query = HistoryQuery { num: 100, mtypes: vec![30], ..Default::default() };
/// assert!(query.desc);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HistoryQuery {
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
    /// Only these message types (empty: every type; sent only when not
    /// empty). The chat forms (`get_*_chat`) take a
    /// [`ChatQuery`](super::ChatQuery) instead, which has no types: they
    /// ask for [`MessageType::CHAT_MTYPES`](super::MessageType::CHAT_MTYPES).
    pub mtypes: Vec<i64>,
}

impl Default for HistoryQuery {
    fn default() -> Self {
        HistoryQuery {
            desc: true,
            num: 20,
            begin: 0,
            end: 0,
            last_id: 0,
            mtypes: Vec::new(),
        }
    }
}

/// The cursor and window of the page after `page`, which answered a
/// query with cursor `last_id`; `None` when `page` was the last one: it
/// was empty, or its cursor did not move (which only a misbehaving server
/// answers, so that a paging loop always ends). A page shorter than the
/// `num` asked for is not the last one: a server may cap its pages below
/// `num` (the service at 20).
fn next_cursor(last_id: i64, page: &HistoryPage) -> Option<(i64, i64, i64)> {
    (!page.messages.is_empty() && page.last_id != last_id).then_some((
        page.last_id,
        page.begin,
        page.end,
    ))
}

/// A query that can be paged: [`HistoryQuery`] and
/// [`ChatQuery`](super::chat::ChatQuery).
pub trait PagedQuery: Clone {
    /// The query of the page after `page` (`page` answered this query), or
    /// `None` when `page` was the last one.
    #[must_use]
    fn next_page(&self, page: &HistoryPage) -> Option<Self>;
}

impl PagedQuery for HistoryQuery {
    fn next_page(&self, page: &HistoryPage) -> Option<Self> {
        HistoryQuery::next_page(self, page)
    }
}

impl HistoryQuery {
    /// The query of the page after `page` (`page` answered this query):
    /// the same query from the answer's cursor (`last_id`) and window; or
    /// `None` when `page` was the last one: it held no message, or its
    /// cursor did not move (which only a misbehaving server answers, so
    /// that a paging loop always ends).
    ///
    /// A page with fewer messages than `num` is **not** the last one: a
    /// server may answer fewer than asked for (the service returns at most
    /// 20 messages per call), so a whole history ends with an empty page.
    #[must_use]
    pub fn next_page(&self, page: &HistoryPage) -> Option<HistoryQuery> {
        next_cursor(self.last_id, page).map(|(last_id, begin, end)| HistoryQuery {
            last_id,
            begin,
            end,
            ..self.clone()
        })
    }

    /// Every page of a conversation, from this query on: `fetch` reads one
    /// page (for example `|q| client.get_group_message(gid, uid, q)`), and
    /// the iterator asks for the next page until a page is the last one
    /// ([`next_page`](Self::next_page): an empty page, which is yielded
    /// too) or `fetch` fails (the error is the last item).
    #[must_use = "the pages are read only when the iterator is used"]
    pub fn pages<F>(self, fetch: F) -> HistoryPages<F>
    where
        F: FnMut(&HistoryQuery) -> Result<HistoryPage>,
    {
        HistoryPages {
            next: Some(self),
            fetch,
        }
    }
}

/// The iterator of [`HistoryQuery::pages`] and
/// [`ChatQuery::pages`](super::chat::ChatQuery::pages).
#[derive(Debug)]
pub struct HistoryPages<F, Q = HistoryQuery> {
    pub(crate) next: Option<Q>,
    pub(crate) fetch: F,
}

impl<F, Q> Iterator for HistoryPages<F, Q>
where
    Q: PagedQuery,
    F: FnMut(&Q) -> Result<HistoryPage>,
{
    type Item = Result<HistoryPage>;

    fn next(&mut self) -> Option<Self::Item> {
        let query = self.next.take()?;
        match (self.fetch)(&query) {
            Ok(page) => {
                self.next = query.next_page(&page);
                Some(Ok(page))
            }
            Err(e) => Some(Err(e)),
        }
    }
}

/// Who sent a P2P history message, seen from the `uid` of
/// [`get_p2p_message`](RtmServerClient::get_p2p_message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum P2pDirection {
    /// Sent by `uid` to `ouid` (wire 1).
    Sent,
    /// Sent by `ouid` to `uid` (wire 2).
    Received,
}

/// One message of a history page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HistoryMessage {
    /// The message's cursor id in this history.
    pub id: i64,
    /// The sender. In P2P history, `uid` or `ouid` as [`direction`](Self::direction) says.
    pub from: i64,
    /// The message type (see [`MessageType`](super::MessageType)).
    pub mtype: i64,
    /// The message id.
    pub mid: i64,
    /// The body: text or binary, as it was sent.
    pub body: MessageBody,
    /// The attributes. For a file message, the user's own attrs (the
    /// `custom` part of the JSON attrs).
    pub attrs: String,
    /// The server time of the message, in milliseconds.
    pub mtime: i64,
    /// In P2P history, who sent it; `None` elsewhere.
    pub direction: Option<P2pDirection>,
    /// For a file message (mtype 40..=50), its description.
    pub file: Option<FileInfo>,
}

/// One page of history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HistoryPage {
    /// The number of messages the server returned.
    pub num: i64,
    /// The cursor of the next page (the next query's `last_id`).
    pub last_id: i64,
    /// The window start for the next query.
    pub begin: i64,
    /// The window end for the next query.
    pub end: i64,
    /// The messages, in the order asked for.
    pub messages: Vec<HistoryMessage>,
}

/// A message read by [`get_message`](RtmServerClient::get_message).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetrievedMessage {
    /// The message's cursor id.
    pub id: i64,
    /// The message type.
    pub mtype: i64,
    /// The body: text or binary, as it was sent.
    pub body: MessageBody,
    /// The attributes (for a file message, the user's `custom` part).
    pub attrs: String,
    /// The server time of the message, in milliseconds.
    pub mtime: i64,
    /// For a file message (mtype 40..=50), its description.
    pub file: Option<FileInfo>,
}

/// The answer of [`get_msg_count`](RtmServerClient::get_msg_count).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct MessageCount {
    /// The number of distinct senders.
    pub sender: i64,
    /// The number of messages.
    pub num: i64,
}

/// The optional filters of [`get_msg_count`](RtmServerClient::get_msg_count):
/// each is sent only when set (a window bound when above 0, the types when
/// not empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct MsgCountOptions {
    /// The start of the time window, in milliseconds (0: open).
    pub begin: i64,
    /// The end of the time window, in milliseconds (0: open).
    pub end: i64,
    /// Only these message types (empty: every type).
    pub mtypes: Vec<i64>,
}

fn read_body(a: &AnswerReader<'_>, key: &str, v: &Value) -> Result<MessageBody> {
    MessageBody::from_value(v)
        .ok_or_else(|| a.bad(format!("`{key}` holds {v}, expected str or bin")))
}

/// Reads one 8-element history row
/// `[cursorId, from, mtype, mid, deleted, msg, attrs, mtime]` (element 4
/// is ignored; extra elements too).
fn read_row(a: &AnswerReader<'_>, row: &Value) -> Result<HistoryMessage> {
    let items = match row {
        Value::Array(items) if items.len() >= 8 => items,
        other => {
            return Err(a.bad(format!(
                "`msgs` holds {other}, expected an array of 8 elements"
            )))
        }
    };
    let key = "msgs";
    let mtype = a.int_of(key, &items[2])?;
    let body = read_body(a, key, &items[5])?;
    let attrs = match &items[6] {
        Value::Nil => String::new(),
        v => a.str_of(key, v)?,
    };
    let (attrs, file) = decode_file(mtype, &body, attrs);
    Ok(HistoryMessage {
        id: a.int_of(key, &items[0])?,
        from: a.int_of(key, &items[1])?,
        mtype,
        mid: a.int_of(key, &items[3])?,
        body,
        attrs,
        mtime: a.int_of(key, &items[7])?,
        direction: None,
        file,
    })
}

pub(crate) fn read_page(a: &AnswerReader<'_>) -> Result<HistoryPage> {
    let messages = a
        .opt_array("msgs")?
        .ok_or_else(|| a.bad("the answer has no `msgs`".into()))?
        .iter()
        .map(|row| read_row(a, row))
        .collect::<Result<Vec<_>>>()?;
    Ok(HistoryPage {
        num: a.int("num")?,
        last_id: a.int("lastid")?,
        begin: a.int("begin")?,
        end: a.int("end")?,
        messages,
    })
}

/// A P2P page: element 1 of each row is the direction.
fn read_p2p_page(a: &AnswerReader<'_>) -> Result<HistoryPage> {
    let mut page = read_page(a)?;
    for m in &mut page.messages {
        m.direction = Some(match m.from {
            1 => P2pDirection::Sent,
            2 => P2pDirection::Received,
            other => {
                return Err(a.bad(format!(
                    "a P2P history row has the direction {other}, expected 1 or 2"
                )))
            }
        });
    }
    Ok(page)
}

/// Fills the senders of a P2P page from its directions.
fn resolve_p2p(mut page: HistoryPage, uid: i64, ouid: i64) -> HistoryPage {
    for m in &mut page.messages {
        m.from = match m.direction {
            Some(P2pDirection::Received) => ouid,
            _ => uid,
        };
    }
    page
}

pub(crate) fn read_retrieved(a: &AnswerReader<'_>) -> Result<RetrievedMessage> {
    let mtype = a.int("mtype")?;
    let body = read_body(a, "msg", a.value("msg")?)?;
    let (attrs, file) = decode_file(mtype, &body, a.opt_string("attrs")?.unwrap_or_default());
    Ok(RetrievedMessage {
        id: a.int("id")?,
        mtype,
        body,
        attrs,
        mtime: a.int("mtime")?,
        file,
    })
}

fn p2p_params(uid: i64, ouid: i64, query: &HistoryQuery, mtypes: &[i64]) -> Params {
    let mut p = Params::new();
    p.put("uid", uid)
        .put("ouid", ouid)
        .put("desc", query.desc)
        .put("num", i64::from(query.num))
        .put("begin", query.begin)
        .put("end", query.end)
        .put("lastid", query.last_id)
        .put("mtypes", (!mtypes.is_empty()).then_some(mtypes));
    p
}

impl RtmServerClient {
    /// The blocking P2P history read, with the types to send.
    pub(crate) fn p2p_history(
        &self,
        uid: i64,
        ouid: i64,
        query: &HistoryQuery,
        mtypes: &[i64],
    ) -> Result<HistoryPage> {
        let params = p2p_params(uid, ouid, query, mtypes);
        self.invoke("getp2pmsg", &params, read_p2p_page)
            .map(|page| resolve_p2p(page, uid, ouid))
    }

    /// The callback P2P history read, with the types to send.
    pub(crate) fn p2p_history_with_callback(
        &self,
        uid: i64,
        ouid: i64,
        query: &HistoryQuery,
        mtypes: &[i64],
        callback: Box<dyn FnOnce(Result<HistoryPage>) + Send>,
    ) {
        let params = p2p_params(uid, ouid, query, mtypes);
        self.invoke_with_callback(
            MethodName::Static("getp2pmsg"),
            params,
            read_p2p_page,
            Box::new(move |r: Result<HistoryPage>| {
                callback(r.map(|page| resolve_p2p(page, uid, ouid)))
            }),
        )
    }

    /// A page of the P2P history between `uid` and `ouid` (both
    /// directions); each message's [`direction`](HistoryMessage::direction)
    /// says who sent it, and [`from`](HistoryMessage::from) is filled in
    /// from it.
    ///
    /// Quest `getp2pmsg`. The callback form is
    /// [`get_p2p_message_with_callback`](Self::get_p2p_message_with_callback).
    ///
    /// # Errors
    ///
    /// As every RTM method: the server's refusal, a timeout, a connection
    /// error or a malformed answer (see [`Error`](crate::Error)).
    pub fn get_p2p_message(
        &self,
        uid: i64,
        ouid: i64,
        query: &HistoryQuery,
    ) -> Result<HistoryPage> {
        self.p2p_history(uid, ouid, query, &query.mtypes)
    }

    /// The callback form of [`get_p2p_message`](Self::get_p2p_message):
    /// sends the same quest and returns at once; `callback` receives the
    /// same result exactly once, on a callback thread.
    pub fn get_p2p_message_with_callback<F>(
        &self,
        uid: i64,
        ouid: i64,
        query: &HistoryQuery,
        callback: F,
    ) where
        F: FnOnce(Result<HistoryPage>) + Send + 'static,
    {
        self.p2p_history_with_callback(uid, ouid, query, &query.mtypes, Box::new(callback))
    }
}

rtm_methods! {
    /// A page of group `gid`'s history, read as user `uid`.
    fn get_group_message / get_group_message_with_callback
        (gid: i64, uid: i64, query: &HistoryQuery) -> HistoryPage {
        method: "getgroupmsg",
        params: {
            "gid": gid, "desc": query.desc, "num": i64::from(query.num),
            "begin": query.begin, "end": query.end, "lastid": query.last_id, "uid": uid,
            "mtypes": (!query.mtypes.is_empty()).then_some(&query.mtypes[..]),
        },
        answer: read_page,
    }

    /// A page of room `rid`'s history, read as user `uid`.
    fn get_room_message / get_room_message_with_callback
        (rid: i64, uid: i64, query: &HistoryQuery) -> HistoryPage {
        method: "getroommsg",
        params: {
            "rid": rid, "desc": query.desc, "num": i64::from(query.num),
            "begin": query.begin, "end": query.end, "lastid": query.last_id, "uid": uid,
            "mtypes": (!query.mtypes.is_empty()).then_some(&query.mtypes[..]),
        },
        answer: read_page,
    }

    /// A page of the broadcast history, read as user `uid`.
    fn get_broadcast_message / get_broadcast_message_with_callback
        (uid: i64, query: &HistoryQuery) -> HistoryPage {
        method: "getbroadcastmsg",
        params: {
            "desc": query.desc, "num": i64::from(query.num),
            "begin": query.begin, "end": query.end, "lastid": query.last_id, "uid": uid,
            "mtypes": (!query.mtypes.is_empty()).then_some(&query.mtypes[..]),
        },
        answer: read_page,
    }

    /// Deletes message `mid` sent by `from` in a conversation (`xid`: the
    /// receiver, group or room; 0 for broadcast).
    fn del_message / del_message_with_callback
        (mid: i64, from: i64, xid: i64, kind: ConversationType) -> () {
        method: "delmsg",
        params: { "mid": mid, "from": from, "xid": xid, "type": kind },
        answer: |_| Ok(()),
    }

    /// Deletes P2P message `mid` sent by `from` to `to`.
    fn del_p2p_message / del_p2p_message_with_callback (mid: i64, from: i64, to: i64) -> () {
        method: "delmsg",
        params: { "mid": mid, "from": from, "xid": to, "type": ConversationType::P2p },
        answer: |_| Ok(()),
    }

    /// Deletes group message `mid` sent by `from` to group `gid`.
    fn del_group_message / del_group_message_with_callback (mid: i64, from: i64, gid: i64) -> () {
        method: "delmsg",
        params: { "mid": mid, "from": from, "xid": gid, "type": ConversationType::Group },
        answer: |_| Ok(()),
    }

    /// Deletes room message `mid` sent by `from` to room `rid`.
    fn del_room_message / del_room_message_with_callback (mid: i64, from: i64, rid: i64) -> () {
        method: "delmsg",
        params: { "mid": mid, "from": from, "xid": rid, "type": ConversationType::Room },
        answer: |_| Ok(()),
    }

    /// Deletes broadcast message `mid` sent by `from`.
    fn del_broadcast_message / del_broadcast_message_with_callback (mid: i64, from: i64) -> () {
        method: "delmsg",
        params: { "mid": mid, "from": from, "xid": 0i64, "type": ConversationType::Broadcast },
        answer: |_| Ok(()),
    }

    /// Reads message `mid` sent by `from` in a conversation (`xid` as in
    /// [`del_message`](Self::del_message)).
    fn get_message / get_message_with_callback
        (mid: i64, from: i64, xid: i64, kind: ConversationType) -> RetrievedMessage {
        method: "getmsg",
        params: { "mid": mid, "from": from, "xid": xid, "type": kind },
        answer: read_retrieved,
    }

    /// Deletes the messages of a conversation sent within a time window
    /// (`begin`..=`end`, in milliseconds).
    fn clean_message / clean_message_with_callback
        (from: i64, xid: i64, kind: ConversationType, begin: i64, end: i64) -> () {
        method: "cleanmsg",
        params: { "from": from, "xid": xid, "type": kind, "begin": begin, "end": end },
        answer: |_| Ok(()),
    }

    /// Deletes the P2P messages between `from` and `to` within a time
    /// window (`cleanmsg` with type 1).
    fn clean_p2p_message / clean_p2p_message_with_callback
        (from: i64, to: i64, begin: i64, end: i64) -> () {
        method: "cleanmsg",
        params: { "from": from, "xid": to, "type": ConversationType::P2p, "begin": begin, "end": end },
        answer: |_| Ok(()),
    }

    /// Deletes group `gid`'s messages within a time window (`cleanmsg`
    /// with `from` 0 and type 2).
    fn clean_group_message / clean_group_message_with_callback
        (gid: i64, begin: i64, end: i64) -> () {
        method: "cleanmsg",
        params: { "from": 0i64, "xid": gid, "type": ConversationType::Group, "begin": begin, "end": end },
        answer: |_| Ok(()),
    }

    /// Deletes room `rid`'s messages within a time window (`cleanmsg` with
    /// `from` 0 and type 3).
    fn clean_room_message / clean_room_message_with_callback
        (rid: i64, begin: i64, end: i64) -> () {
        method: "cleanmsg",
        params: { "from": 0i64, "xid": rid, "type": ConversationType::Room, "begin": begin, "end": end },
        answer: |_| Ok(()),
    }

    /// Deletes the broadcast messages of `from` within a time window
    /// (`cleanmsg` with `xid` 0 and type 4).
    fn clean_broadcast_message / clean_broadcast_message_with_callback
        (from: i64, begin: i64, end: i64) -> () {
        method: "cleanmsg",
        params: { "from": from, "xid": 0i64, "type": ConversationType::Broadcast, "begin": begin, "end": end },
        answer: |_| Ok(()),
    }

    /// Deletes every message of a kind in the project (note the wire
    /// order of [`ClearProjectTarget`], unlike [`ConversationType`]'s).
    fn clear_project_message / clear_project_message_with_callback
        (target: ClearProjectTarget) -> () {
        method: "clearprojectmsg",
        params: { "type": target },
        answer: |_| Ok(()),
    }

    /// The number of messages of a conversation and of their distinct
    /// senders, with optional filters ([`MsgCountOptions`]).
    fn get_msg_count / get_msg_count_with_callback
        (kind: ConversationType, xid: i64, options: &MsgCountOptions) -> MessageCount {
        method: "getmsgnum",
        params: {
            "type": kind, "xid": xid,
            "mtypes": (!options.mtypes.is_empty()).then_some(&options.mtypes[..]),
            "begin": (options.begin > 0).then_some(options.begin),
            "end": (options.end > 0).then_some(options.end),
        },
        answer: |a| Ok(MessageCount { sender: a.int("sender")?, num: a.int("num")? }),
    }

    /// Deletes a whole conversation's messages.
    fn delete_conversation_messages / delete_conversation_messages_with_callback
        (from: i64, xid: i64, kind: ConversationType) -> () {
        method: "delconversationmsgs",
        params: { "from": from, "xid": xid, "type": kind },
        answer: |_| Ok(()),
    }

    /// Replaces the body and attrs of message `mid` sent by `from`, when it
    /// is at most `time_limit` old (`timeLimit`, whole seconds, a fraction
    /// rounded up). The body is text or binary as for the sends (`"new
    /// text"`, `&bytes[..]`, ...).
    fn edit_message / edit_message_with_callback
        (mid: i64, from: i64, xid: i64, kind: ConversationType, msg: impl Into<MessageBody>, attrs: &str, time_limit: Duration) -> () {
        method: "editmsg",
        params: {
            "mid": mid, "from": from, "xid": xid, "type": kind,
            "msg": Into::<MessageBody>::into(msg), "attrs": attrs, "timeLimit": Seconds(time_limit),
        },
        answer: |_| Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(n: usize, last_id: i64) -> HistoryPage {
        HistoryPage {
            num: n as i64,
            last_id,
            begin: 1,
            end: 2,
            messages: vec![HistoryMessage::default(); n],
        }
    }

    #[test]
    fn paging_ends() {
        let q = HistoryQuery {
            num: 2,
            ..Default::default()
        };
        let next = q.next_page(&page(2, 9)).unwrap();
        assert_eq!((next.last_id, next.begin, next.end, next.num), (9, 1, 2, 2));
        // A page shorter than `num` is not the last: a server may cap its
        // pages below `num`.
        let after_short = q
            .next_page(&page(1, 9))
            .expect("a short page is not the last");
        assert_eq!(after_short.last_id, 9);
        assert!(
            q.next_page(&page(0, 9)).is_none(),
            "an empty page is the last"
        );
        assert!(
            next.next_page(&page(2, 9)).is_none(),
            "a cursor that does not move"
        );
        // The chat query pages alike, keeping its own fields.
        let chat = crate::rtm::ChatQuery {
            num: 2,
            desc: false,
            ..Default::default()
        };
        let chat_next = chat.next_page(&page(1, 9)).unwrap();
        assert_eq!(
            (chat_next.last_id, chat_next.desc, chat_next.num),
            (9, false, 2)
        );
        assert!(chat.next_page(&page(0, 9)).is_none());
        // The iterator stops after an error.
        let mut calls = 0;
        let items: Vec<_> = q
            .pages(|_| {
                calls += 1;
                if calls == 1 {
                    Ok(page(2, calls))
                } else {
                    Err(crate::Error::ClientClosed)
                }
            })
            .collect();
        assert_eq!(items.len(), 2);
        assert!(items[1].is_err());
    }
}
