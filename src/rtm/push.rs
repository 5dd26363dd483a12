//! Server push (`docs/protocol.md`, section 5): the messages and events the RTM server
//! pushes to a server-SDK connection, delivered to a typed [`PushHandler`].

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Instant;

use rmpv::Value;

use super::client::{RtmInner, RtmServerClient};
use super::message::{decode_file, FileInfo, MessageBody};
use crate::codes;
use crate::fpnn::codec::map_get;
use crate::fpnn::pool::{Job, Pool};
use crate::fpnn::{QuestHandler, QuestReply};

/// A pushed message (`pushmsg`, `pushgroupmsg` or `pushroommsg`), with
/// the same body and file description as a
/// [`HistoryMessage`](super::HistoryMessage).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PushMessage {
    /// The sender.
    pub from: i64,
    /// The target: the receiving user (P2P), the group id or the room id.
    pub to: i64,
    /// The message type (see [`MessageType`](super::MessageType)).
    pub mtype: i64,
    /// The message id.
    pub mid: i64,
    /// The body: text or binary, as it was sent.
    pub body: MessageBody,
    /// The attributes (empty when absent). For a file message, the user's
    /// own attrs (the `custom` part of the JSON attrs).
    pub attrs: String,
    /// The server time of the message (milliseconds, presumably).
    pub mtime: i64,
    /// For a file message (mtype 40..=50), its description.
    pub file: Option<FileInfo>,
}

/// A pushed event (`pushevent`), such as `login` or `logout`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
/// Each method gets the client that received the push, so a handler can
/// call the service (answer a message, read history, ...). **Do not
/// capture a clone of the client in the handler; use the reference you
/// are given**: the client owns its handler, so a handler holding a clone
/// would keep the client (its connection and threads) alive forever. The
/// client hands the handler only a temporary reference while the client
/// is alive; pushes that arrive while the last clone is being dropped are
/// answered and not handled.
///
/// The handler runs on the client's callback threads, after the push was
/// answered (so a slow handler never delays the answer); with more than one
/// callback thread, pushes may be handled concurrently. Duplicate pushes
/// (same sender, target and message id, within 5 minutes) are filtered out
/// before they reach it.
///
/// ```
/// use rtm_server_sdk::rtm::{PushHandler, PushMessage, SendOptions};
/// use rtm_server_sdk::RtmServerClient;
///
/// /// Answers every P2P chat with an echo.
/// struct Echo;
/// impl PushHandler for Echo {
///     fn on_message(&self, client: &RtmServerClient, m: &PushMessage) {
///         if m.mtype == 30 {
///             let _ = client.send_chat(m.to, m.from, m.body.clone(), &SendOptions::default());
///         }
///     }
/// }
/// # let emulator = rtm_server_sdk::emulator::RtmEmulator::start(1, "s").unwrap();
/// # let client = RtmServerClient::new(1, "s", emulator.endpoint()).unwrap();
/// client.set_push_handler(Echo);
/// ```
///
/// A handler that must keep a reference to the client (to use it outside
/// the handler methods, from a thread of its own, say) holds a
/// [`WeakRtmServerClient`](crate::WeakRtmServerClient) made with
/// [`downgrade`](RtmServerClient::downgrade): it does not keep the client
/// alive, so dropping the last handle still closes the client.
///
/// ```
/// use rtm_server_sdk::rtm::{PushHandler, PushMessage};
/// use rtm_server_sdk::{RtmServerClient, WeakRtmServerClient};
///
/// /// Looks the sender up from a thread of its own.
/// struct LookUp {
///     client: WeakRtmServerClient,
/// }
/// impl PushHandler for LookUp {
///     fn on_message(&self, _: &RtmServerClient, m: &PushMessage) {
///         let (client, from) = (self.client.clone(), m.from);
///         std::thread::spawn(move || {
///             // `None` once the client is gone.
///             if let Some(client) = client.upgrade() {
///                 let _ = client.get_online_users(&[from]);
///             }
///         });
///     }
/// }
/// # let emulator = rtm_server_sdk::emulator::RtmEmulator::start(1, "s").unwrap();
/// # let client = RtmServerClient::new(1, "s", emulator.endpoint()).unwrap();
/// client.set_push_handler(LookUp { client: client.downgrade() });
/// drop(client); // the last handle: the client closes
/// ```
pub trait PushHandler: Send + Sync + 'static {
    /// A P2P message (`pushmsg`).
    fn on_message(&self, _client: &RtmServerClient, _message: &PushMessage) {}
    /// A group message (`pushgroupmsg`).
    fn on_group_message(&self, _client: &RtmServerClient, _message: &PushMessage) {}
    /// A room message (`pushroommsg`).
    fn on_room_message(&self, _client: &RtmServerClient, _message: &PushMessage) {}
    /// An event (`pushevent`).
    fn on_event(&self, _client: &RtmServerClient, _event: &PushEvent) {}
    /// The server's `ping` (already answered).
    fn on_ping(&self, _client: &RtmServerClient) {}
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    P2p,
    Group,
    Room,
}

type Key = (i64, i64, i64);

/// One duplicate cache: the keys seen with their second of arrival, and
/// the same keys in arrival order (the times never decrease along it).
#[derive(Default)]
struct Cache {
    seen: HashMap<Key, u64>,
    order: VecDeque<(Key, u64)>,
}

/// The duplicate filter: one cache per message kind keyed by
/// (from, to, mid) with the second of arrival. When a cache holds more than
/// 1000 entries, entries older than 300 s are dropped (checked on insert),
/// from the front of the arrival queue: each entry is queued once and
/// dropped once, so an insert costs O(1) amortised.
#[derive(Default)]
struct Dedup {
    /// One cache per kind, indexed by `Kind as usize`.
    caches: [Cache; 3],
    /// The latest time seen (a time that goes back is taken as this one).
    last_now: u64,
    /// Entries dropped so far (the work of purging, for the tests).
    #[cfg(test)]
    dropped: u64,
}

const DEDUP_PURGE_ABOVE: usize = 1000;
const DEDUP_KEEP_SECS: u64 = 300;

impl Dedup {
    /// True when the message is new (and records it).
    fn first_time(&mut self, kind: Kind, from: i64, to: i64, mid: i64, now: u64) -> bool {
        let now = now.max(self.last_now);
        self.last_now = now;
        let cache = &mut self.caches[kind as usize];
        if cache.seen.len() > DEDUP_PURGE_ABOVE {
            while let Some(&(key, at)) = cache.order.front() {
                if now.saturating_sub(at) <= DEDUP_KEEP_SECS {
                    break;
                }
                cache.order.pop_front();
                cache.seen.remove(&key);
                #[cfg(test)]
                {
                    self.dropped += 1;
                }
            }
        }
        let key = (from, to, mid);
        if cache.seen.contains_key(&key) {
            return false;
        }
        cache.seen.insert(key, now);
        cache.order.push_back((key, now));
        true
    }
}

/// The client's quest handler: answers every two-way push, filters
/// duplicates, and hands the rest to the user's [`PushHandler`].
pub(crate) struct PushDispatch {
    pub handler: Mutex<Option<Arc<dyn PushHandler>>>,
    dedup: Mutex<Dedup>,
    pool: Arc<Pool>,
    /// The client, held weakly (the client owns this dispatcher); set once
    /// the client is built.
    client: OnceLock<Weak<RtmInner>>,
    /// The origin of the duplicate filter's clock (monotonic).
    started: Instant,
}

impl PushDispatch {
    pub(crate) fn new(pool: Arc<Pool>) -> PushDispatch {
        PushDispatch {
            handler: Mutex::new(None),
            dedup: Mutex::new(Dedup::default()),
            pool,
            client: OnceLock::new(),
            started: Instant::now(),
        }
    }

    /// Tells the dispatcher which client it serves.
    pub(crate) fn set_client(&self, client: Weak<RtmInner>) {
        let _ = self.client.set(client);
    }

    fn now_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }
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
    map_get(p, "msg")
        .and_then(MessageBody::from_value)
        .ok_or_else(|| "`msg` is missing or neither str nor bin".into())
}

fn message(p: &Value, target: &str) -> Result<PushMessage, String> {
    let mtype = int(p, "mtype")?;
    let body = body(p)?;
    let (attrs, file) = decode_file(mtype, &body, text(p, "attrs")?.unwrap_or_default());
    Ok(PushMessage {
        from: int(p, "from")?,
        to: int(p, target)?,
        mtype,
        mid: int(p, "mid")?,
        body,
        attrs,
        mtime: int(p, "mtime")?,
        file,
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
            let now = self.now_secs();
            let fresh = self
                .dedup
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .first_time(*kind, m.from, m.to, m.mid, now);
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
        let client = self.client.get().cloned();
        if let (Some(h), Some(client)) = (handler, client) {
            // Answer first, then run the user's handler, with the client
            // held only for the call.
            self.pool.submit(Job::Task(Box::new(move || {
                let Some(inner) = client.upgrade() else {
                    log::debug!("a push arrived while the client was dropped; not handled");
                    return;
                };
                let client = RtmServerClient::from_inner(inner);
                match parsed {
                    Parsed::Ping => h.on_ping(&client),
                    Parsed::Event(e) => h.on_event(&client, &e),
                    Parsed::Message(Kind::P2p, m) => h.on_message(&client, &m),
                    Parsed::Message(Kind::Group, m) => h.on_group_message(&client, &m),
                    Parsed::Message(Kind::Room, m) => h.on_room_message(&client, &m),
                }
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
        // Within the window, nothing is purged even above the threshold.
        assert!(!d.first_time(Kind::P2p, 9, 9, 1, 500));
        // A clock that goes back does not break the order.
        assert!(d.first_time(Kind::P2p, 5, 5, 5, 10));
        assert!(!d.first_time(Kind::P2p, 5, 5, 5, 501));
    }

    #[test]
    fn dedup_insert_is_amortised_constant() {
        // 100,000 distinct messages, 100 per second: the window holds
        // about 30,000 of them, and every insert past the window drops
        // the expired ones from the front: the total purge work is at
        // most one drop per insert, and the cache stays bounded.
        let mut d = Dedup::default();
        let n = 100_000u64;
        for i in 0..n {
            assert!(d.first_time(Kind::Group, 1, 2, i as i64, i / 100));
            let len = d.caches[Kind::Group as usize].seen.len();
            assert!(len <= 30_200, "the cache grew to {len}");
        }
        assert!(d.dropped <= n, "dropped {} for {n} inserts", d.dropped);
        assert!(d.dropped >= n - 30_200, "expired entries were dropped");
        let c = &d.caches[Kind::Group as usize];
        assert_eq!(c.seen.len(), c.order.len());
        // The recent ones are still filtered.
        assert!(!d.first_time(Kind::Group, 1, 2, (n - 1) as i64, n / 100));
    }

    #[test]
    fn parses_text_binary_and_file_messages() {
        let p = |msg: Value, mtype: i64, attrs: &str| {
            Value::Map(vec![
                (Value::from("from"), Value::from(1)),
                (Value::from("rid"), Value::from(2)),
                (Value::from("mtype"), Value::from(mtype)),
                (Value::from("mid"), Value::from(3)),
                (Value::from("msg"), msg),
                (Value::from("attrs"), Value::from(attrs)),
                (Value::from("mtime"), Value::from(4)),
            ])
        };
        let m = message(&p(Value::from("hi"), 30, "a"), "rid").unwrap();
        assert_eq!(m.body, MessageBody::Text("hi".into()));
        assert_eq!((m.from, m.to, m.mtype, m.mid, m.mtime), (1, 2, 30, 3, 4));
        assert_eq!((m.attrs.as_str(), m.file.is_none()), ("a", true));
        let m = message(&p(Value::Binary(vec![0, 255]), 30, ""), "rid").unwrap();
        assert_eq!(m.body, MessageBody::Binary(vec![0, 255]));
        assert!(message(&p(Value::from(5), 30, ""), "rid").is_err());
        assert!(message(&p(Value::from("x"), 30, ""), "gid").is_err());
        let m = message(
            &p(
                Value::from(r#"{"url":"http://f/a.png","size":10}"#),
                40,
                r#"{"custom":"mine","rtm":{"filename":"a.png","ext":"png"}}"#,
            ),
            "rid",
        )
        .unwrap();
        let file = m.file.unwrap();
        assert_eq!((file.url.as_str(), file.size), ("http://f/a.png", 10));
        assert_eq!((file.name.as_str(), file.ext.as_str()), ("a.png", "png"));
        assert_eq!(m.attrs, "mine");
    }
}
