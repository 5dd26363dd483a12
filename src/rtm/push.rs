//! Server push (PROTOCOL.md 7.1): the messages and events the RTM server
//! pushes to a server-SDK connection, delivered to a typed [`PushHandler`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use rmpv::Value;

use crate::codes;
use crate::fpnn::codec::map_get;
use crate::fpnn::pool::{Job, Pool};
use crate::fpnn::{QuestHandler, QuestReply};

/// The body of a pushed message: text, or binary when the message was sent
/// as binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageBody {
    /// A text message (msgpack `str`).
    Text(String),
    /// A binary message (msgpack `bin`).
    Binary(Vec<u8>),
}

impl MessageBody {
    /// The body as text, when it is text (or binary that is valid UTF-8).
    pub fn as_text(&self) -> Option<&str> {
        match self {
            MessageBody::Text(s) => Some(s),
            MessageBody::Binary(b) => std::str::from_utf8(b).ok(),
        }
    }

    /// The raw bytes of the body.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            MessageBody::Text(s) => s.as_bytes(),
            MessageBody::Binary(b) => b,
        }
    }
}

/// A pushed message (`pushmsg`, `pushgroupmsg` or `pushroommsg`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PushMessage {
    /// The sender.
    pub from: i64,
    /// The target: the receiving user (P2P), the group id or the room id.
    pub to: i64,
    /// The message type (30 chat, 32 cmd, 40..=50 files, others custom).
    pub mtype: i64,
    /// The message id.
    pub mid: i64,
    /// The body.
    pub msg: MessageBody,
    /// The attributes (empty when absent).
    pub attrs: String,
    /// The server time of the message (milliseconds, presumably).
    pub mtime: i64,
}

/// A pushed event (`pushevent`), such as `login` or `logout`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PushEvent {
    /// The project id.
    pub pid: i64,
    /// The event name.
    pub event: String,
    /// The user concerned.
    pub uid: i64,
    /// The time of the event (seconds, presumably).
    pub time: i64,
    /// The endpoint of the user's connection.
    pub endpoint: String,
    /// Extra data, when any.
    pub data: Option<String>,
}

/// Receives what the server pushes. Every method has an empty default, so
/// implement only what you listen to.
///
/// The handler runs on the client's callback threads, after the push was
/// answered (so a slow handler never delays the answer); with more than one
/// callback thread, pushes may be handled concurrently. Duplicate pushes
/// (same sender, target and message id, within 5 minutes) are filtered out
/// before they reach it.
pub trait PushHandler: Send + Sync + 'static {
    /// A P2P message (`pushmsg`).
    fn on_message(&self, _message: &PushMessage) {}
    /// A group message (`pushgroupmsg`).
    fn on_group_message(&self, _message: &PushMessage) {}
    /// A room message (`pushroommsg`).
    fn on_room_message(&self, _message: &PushMessage) {}
    /// An event (`pushevent`).
    fn on_event(&self, _event: &PushEvent) {}
    /// The server's `ping` (already answered).
    fn on_ping(&self) {}
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    P2p,
    Group,
    Room,
}

/// The duplicate filter: one cache per message kind keyed by
/// (from, to, mid) with the second of arrival. When a cache holds more than
/// 1000 entries, entries older than 300 s are dropped (checked on insert).
#[derive(Default)]
struct Dedup {
    /// One cache per kind, indexed by `Kind as usize`.
    seen: [HashMap<(i64, i64, i64), u64>; 3],
}

const DEDUP_PURGE_ABOVE: usize = 1000;
const DEDUP_KEEP_SECS: u64 = 300;

impl Dedup {
    /// True when the message is new (and records it).
    fn first_time(&mut self, kind: Kind, from: i64, to: i64, mid: i64, now: u64) -> bool {
        let cache = &mut self.seen[kind as usize];
        if cache.len() > DEDUP_PURGE_ABOVE {
            cache.retain(|_, at| now.saturating_sub(*at) <= DEDUP_KEEP_SECS);
        }
        cache.insert((from, to, mid), now).is_none()
    }
}

/// The client's quest handler: answers every two-way push, filters
/// duplicates, and hands the rest to the user's [`PushHandler`].
pub(crate) struct PushDispatch {
    pub handler: Mutex<Option<Arc<dyn PushHandler>>>,
    dedup: Mutex<Dedup>,
    pool: Arc<Pool>,
}

impl PushDispatch {
    pub(crate) fn new(pool: Arc<Pool>) -> PushDispatch {
        PushDispatch {
            handler: Mutex::new(None),
            dedup: Mutex::new(Dedup::default()),
            pool,
        }
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn int(p: &Value, key: &str) -> Result<i64, String> {
    map_get(p, key)
        .and_then(Value::as_i64)
        .ok_or_else(|| format!("`{key}` is missing or not an integer"))
}

fn text(p: &Value, key: &str) -> Result<Option<String>, String> {
    match map_get(p, key) {
        None | Some(Value::Nil) => Ok(None),
        Some(Value::String(s)) => {
            Ok(Some(s.as_str().map(str::to_string).unwrap_or_else(|| {
                String::from_utf8_lossy(s.as_bytes()).into_owned()
            })))
        }
        Some(Value::Binary(b)) => Ok(Some(String::from_utf8_lossy(b).into_owned())),
        Some(_) => Err(format!("`{key}` is not a string")),
    }
}

fn body(p: &Value) -> Result<MessageBody, String> {
    match map_get(p, "msg") {
        Some(Value::String(s)) => Ok(match s.as_str() {
            Some(t) => MessageBody::Text(t.to_string()),
            None => MessageBody::Binary(s.as_bytes().to_vec()),
        }),
        Some(Value::Binary(b)) => Ok(MessageBody::Binary(b.clone())),
        _ => Err("`msg` is missing or neither str nor bin".into()),
    }
}

fn message(p: &Value, target: &str) -> Result<PushMessage, String> {
    Ok(PushMessage {
        from: int(p, "from")?,
        to: int(p, target)?,
        mtype: int(p, "mtype")?,
        mid: int(p, "mid")?,
        msg: body(p)?,
        attrs: text(p, "attrs")?.unwrap_or_default(),
        mtime: int(p, "mtime")?,
    })
}

fn event(p: &Value) -> Result<PushEvent, String> {
    Ok(PushEvent {
        pid: int(p, "pid")?,
        event: text(p, "event")?.ok_or("`event` is missing")?,
        uid: int(p, "uid")?,
        time: int(p, "time")?,
        endpoint: text(p, "endpoint")?.unwrap_or_default(),
        data: text(p, "data")?,
    })
}

enum Parsed {
    Message(Kind, PushMessage),
    Event(PushEvent),
    Ping,
}

impl QuestHandler for PushDispatch {
    fn on_quest(
        &self,
        _client: &crate::FpnnClient,
        method: &str,
        payload: &Value,
        _two_way: bool,
    ) -> QuestReply {
        let parsed = match method {
            "ping" => Ok(Parsed::Ping),
            "pushmsg" => message(payload, "to").map(|m| Parsed::Message(Kind::P2p, m)),
            "pushgroupmsg" => message(payload, "gid").map(|m| Parsed::Message(Kind::Group, m)),
            "pushroommsg" => message(payload, "rid").map(|m| Parsed::Message(Kind::Room, m)),
            "pushevent" => event(payload).map(Parsed::Event),
            _ => return QuestReply::Unhandled,
        };
        let parsed = match parsed {
            Ok(p) => p,
            Err(detail) => {
                log::warn!("malformed `{method}` push: {detail}");
                return QuestReply::Error {
                    code: codes::FPNN_EC_PROTO_TYPE_CONVERT,
                    message: detail,
                };
            }
        };
        if let Parsed::Message(kind, m) = &parsed {
            let fresh = self
                .dedup
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .first_time(*kind, m.from, m.to, m.mid, now_secs());
            if !fresh {
                log::debug!("dropping a duplicate `{method}` (mid {})", m.mid);
                return QuestReply::empty();
            }
        }
        let handler = self
            .handler
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(h) = handler {
            // Answer first, then run the user's handler.
            self.pool.submit(Job::Task(Box::new(move || match parsed {
                Parsed::Ping => h.on_ping(),
                Parsed::Event(e) => h.on_event(&e),
                Parsed::Message(Kind::P2p, m) => h.on_message(&m),
                Parsed::Message(Kind::Group, m) => h.on_group_message(&m),
                Parsed::Message(Kind::Room, m) => h.on_room_message(&m),
            })));
        }
        QuestReply::empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_filters_and_purges() {
        let mut d = Dedup::default();
        assert!(d.first_time(Kind::P2p, 1, 2, 3, 100));
        assert!(!d.first_time(Kind::P2p, 1, 2, 3, 100));
        // Another kind with the same ids is a different message.
        assert!(d.first_time(Kind::Room, 1, 2, 3, 100));
        for mid in 0..1001 {
            d.first_time(Kind::P2p, 9, 9, 1000 + mid, 100);
        }
        // 301 s later, inserting purges the old entries of that kind only.
        assert!(d.first_time(Kind::P2p, 9, 9, 1, 401));
        assert!(d.first_time(Kind::P2p, 1, 2, 3, 401), "old entry purged");
        assert!(
            !d.first_time(Kind::Room, 1, 2, 3, 401),
            "other kinds untouched"
        );
    }

    #[test]
    fn parses_text_and_binary_messages() {
        let p = |msg: Value| {
            Value::Map(vec![
                (Value::from("from"), Value::from(1)),
                (Value::from("rid"), Value::from(2)),
                (Value::from("mtype"), Value::from(30)),
                (Value::from("mid"), Value::from(3)),
                (Value::from("msg"), msg),
                (Value::from("attrs"), Value::from("a")),
                (Value::from("mtime"), Value::from(4)),
            ])
        };
        let m = message(&p(Value::from("hi")), "rid").unwrap();
        assert_eq!(m.msg, MessageBody::Text("hi".into()));
        assert_eq!((m.from, m.to, m.mtype, m.mid, m.mtime), (1, 2, 30, 3, 4));
        let m = message(&p(Value::Binary(vec![0, 255])), "rid").unwrap();
        assert_eq!(m.msg, MessageBody::Binary(vec![0, 255]));
        assert!(message(&p(Value::from(5)), "rid").is_err());
        assert!(message(&p(Value::from("x")), "gid").is_err());
    }
}
