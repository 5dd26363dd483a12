//! The types every message method shares: the body ([`MessageBody`]), the
//! message-type classification ([`MessageType`]), the conversation kinds
//! ([`ConversationType`], and [`ClearProjectTarget`] with its own order),
//! the send options ([`SendOptions`]) and what a send returns ([`Sent`]),
//! the file description of file messages ([`FileInfo`]) and the
//! message-id generator ([`next_mid`]).

use super::params::{AnswerReader, Bin, ToParam};
use crate::Result;

/// The body of a message: text (sent as msgpack `str`) or binary (sent as
/// msgpack `bin`, Go's `*ByBinary` methods).
///
/// Every send method takes `impl Into<MessageBody>`, so `"hi"`, a
/// `String`, `&bytes[..]`, `b"raw"` and a `Vec<u8>` all work; history,
/// [`get_message`](super::RtmServerClient::get_message) and pushes hand
/// back which kind arrived.
///
/// ```
/// use rtm_server_sdk::rtm::MessageBody;
/// assert_eq!(MessageBody::from("hi"), MessageBody::Text("hi".into()));
/// assert_eq!(MessageBody::from(&[0u8, 255][..]), MessageBody::Binary(vec![0, 255]));
/// assert_eq!(MessageBody::default().as_text(), Some(""));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MessageBody {
    /// A text message (msgpack `str`).
    Text(String),
    /// A binary message (msgpack `bin`).
    Binary(Vec<u8>),
}

impl Default for MessageBody {
    /// An empty text.
    fn default() -> Self {
        MessageBody::Text(String::new())
    }
}

impl MessageBody {
    /// The body as text, when it is text (or binary that is valid UTF-8).
    #[must_use]
    pub fn as_text(&self) -> Option<&str> {
        match self {
            MessageBody::Text(s) => Some(s),
            MessageBody::Binary(b) => std::str::from_utf8(b).ok(),
        }
    }

    /// The raw bytes of the body.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            MessageBody::Text(s) => s.as_bytes(),
            MessageBody::Binary(b) => b,
        }
    }

    /// True for a binary body.
    #[must_use]
    pub fn is_binary(&self) -> bool {
        matches!(self, MessageBody::Binary(_))
    }

    /// Reads a body off the wire: `str` is text (a `str` that is not
    /// UTF-8 is kept as binary), `bin` is binary; anything else is `None`.
    pub(crate) fn from_value(v: &rmpv::Value) -> Option<MessageBody> {
        match v {
            rmpv::Value::String(s) => Some(match s.as_str() {
                Some(t) => MessageBody::Text(t.to_string()),
                None => MessageBody::Binary(s.as_bytes().to_vec()),
            }),
            rmpv::Value::Binary(b) => Some(MessageBody::Binary(b.clone())),
            _ => None,
        }
    }
}

impl From<&str> for MessageBody {
    fn from(s: &str) -> Self {
        MessageBody::Text(s.to_string())
    }
}

impl From<String> for MessageBody {
    fn from(s: String) -> Self {
        MessageBody::Text(s)
    }
}

impl From<&String> for MessageBody {
    fn from(s: &String) -> Self {
        MessageBody::Text(s.clone())
    }
}

impl From<&[u8]> for MessageBody {
    fn from(b: &[u8]) -> Self {
        MessageBody::Binary(b.to_vec())
    }
}

impl<const N: usize> From<&[u8; N]> for MessageBody {
    fn from(b: &[u8; N]) -> Self {
        MessageBody::Binary(b.to_vec())
    }
}

impl From<Vec<u8>> for MessageBody {
    fn from(b: Vec<u8>) -> Self {
        MessageBody::Binary(b)
    }
}

impl From<&Vec<u8>> for MessageBody {
    fn from(b: &Vec<u8>) -> Self {
        MessageBody::Binary(b.clone())
    }
}

impl From<&MessageBody> for MessageBody {
    fn from(b: &MessageBody) -> Self {
        b.clone()
    }
}

impl ToParam for MessageBody {
    fn write(&self, out: &mut Vec<u8>) -> Result<bool> {
        match self {
            MessageBody::Text(s) => s.write(out),
            MessageBody::Binary(b) => Bin(b).write(out),
        }
    }
}

/// What a message type (`mtype`) means, as both official SDKs classify it:
/// 30 chat, 32 command, 40..=50 files (40 image, 41 audio, 42 video, 50 a
/// generic file, 43..=49 other files), anything else a custom message.
///
/// ```
/// use rtm_server_sdk::rtm::MessageType;
/// assert_eq!(MessageType::of(30), MessageType::Chat);
/// assert_eq!(MessageType::of(41), MessageType::Audio);
/// assert!(MessageType::of(45).is_file());
/// assert_eq!(MessageType::of(77), MessageType::Custom(77));
/// assert_eq!(MessageType::Image.mtype(), 40);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MessageType {
    /// A chat text (30).
    Chat,
    /// A command (32).
    Cmd,
    /// An image file (40).
    Image,
    /// An audio file (41).
    Audio,
    /// A video file (42).
    Video,
    /// Another file type (43..=49, and 50: a generic file); holds the mtype.
    File(i64),
    /// A custom message (every other mtype); holds the mtype.
    Custom(i64),
}

impl MessageType {
    /// The mtype of a chat text.
    pub const CHAT: i64 = 30;
    /// The mtype of a command.
    pub const CMD: i64 = 32;
    /// The mtype of a generic file.
    pub const GENERIC_FILE: i64 = 50;
    /// The mtypes the chat forms of the history methods ask for (as Go):
    /// chat, command, image, audio, video and generic file.
    pub const CHAT_MTYPES: [i64; 6] = [30, 32, 40, 41, 42, 50];

    /// The classification of `mtype`.
    #[must_use]
    pub fn of(mtype: i64) -> MessageType {
        match mtype {
            30 => MessageType::Chat,
            32 => MessageType::Cmd,
            40 => MessageType::Image,
            41 => MessageType::Audio,
            42 => MessageType::Video,
            43..=50 => MessageType::File(mtype),
            other => MessageType::Custom(other),
        }
    }

    /// The wire value.
    #[must_use]
    pub fn mtype(self) -> i64 {
        match self {
            MessageType::Chat => 30,
            MessageType::Cmd => 32,
            MessageType::Image => 40,
            MessageType::Audio => 41,
            MessageType::Video => 42,
            MessageType::File(m) | MessageType::Custom(m) => m,
        }
    }

    /// True for the file types (mtype 40..=50).
    #[must_use]
    pub fn is_file(self) -> bool {
        (40..=50).contains(&self.mtype())
    }
}

/// The kind of a conversation, for [`del_message`](super::RtmServerClient::del_message),
/// [`get_message`](super::RtmServerClient::get_message),
/// [`clean_message`](super::RtmServerClient::clean_message),
/// [`get_msg_count`](super::RtmServerClient::get_msg_count),
/// [`delete_conversation_messages`](super::RtmServerClient::delete_conversation_messages)
/// and [`edit_message`](super::RtmServerClient::edit_message) (wire `type`:
/// 1 P2P, 2 group, 3 room, 4 broadcast).
///
/// [`clear_project_message`](super::RtmServerClient::clear_project_message)
/// numbers its kinds differently and takes [`ClearProjectTarget`] instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConversationType {
    /// Peer to peer (1); `xid` is the other user.
    P2p,
    /// A group (2); `xid` is the group id.
    Group,
    /// A room (3); `xid` is the room id.
    Room,
    /// The broadcast channel (4); `xid` is 0.
    Broadcast,
}

impl ConversationType {
    /// The wire value (1..=4).
    #[must_use]
    pub fn code(self) -> i64 {
        match self {
            ConversationType::P2p => 1,
            ConversationType::Group => 2,
            ConversationType::Room => 3,
            ConversationType::Broadcast => 4,
        }
    }
}

impl ToParam for ConversationType {
    fn write(&self, out: &mut Vec<u8>) -> Result<bool> {
        self.code().write(out)
    }
}

/// What [`clear_project_message`](super::RtmServerClient::clear_project_message)
/// deletes. Its wire order differs from [`ConversationType`]'s: 0 P2P,
/// 1 room, 2 group, 3 broadcast, 4 all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClearProjectTarget {
    /// Every P2P message (0).
    P2p,
    /// Every room message (1).
    Room,
    /// Every group message (2).
    Group,
    /// Every broadcast message (3).
    Broadcast,
    /// Every message (4).
    All,
}

impl ClearProjectTarget {
    /// The wire value (0..=4).
    #[must_use]
    pub fn code(self) -> i64 {
        match self {
            ClearProjectTarget::P2p => 0,
            ClearProjectTarget::Room => 1,
            ClearProjectTarget::Group => 2,
            ClearProjectTarget::Broadcast => 3,
            ClearProjectTarget::All => 4,
        }
    }
}

impl ToParam for ClearProjectTarget {
    fn write(&self, out: &mut Vec<u8>) -> Result<bool> {
        self.code().write(out)
    }
}

/// The optional settings of every send method.
///
/// ```
/// use rtm_server_sdk::rtm::SendOptions;
/// let options = SendOptions { attrs: r#"{"k":"v"}"#.into(), ..Default::default() };
/// assert_eq!(options.mid, None);
/// let options = SendOptions::default().mid(42);
/// assert_eq!(options.mid, Some(42));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct SendOptions {
    /// The message's attributes (`attrs`), always sent (`""` by default).
    pub attrs: String,
    /// The message id (`mid`); `None` (the default) draws a fresh one from
    /// [`next_mid`] when the call is made (the send returns it in
    /// [`Sent::mid`]). Pass your own to retry a send safely: the service
    /// stores a message id once per sender and conversation and refuses
    /// it again with
    /// [`RTM_EC_DUPLICATED_MID`](crate::codes::RTM_EC_DUPLICATED_MID)
    /// (200053); see [`Sent`].
    pub mid: Option<i64>,
}

impl SendOptions {
    /// Options with these attributes.
    #[must_use]
    pub fn attrs(mut self, attrs: impl Into<String>) -> Self {
        self.attrs = attrs.into();
        self
    }

    /// Options with this message id.
    #[must_use]
    pub fn mid(mut self, mid: i64) -> Self {
        self.mid = Some(mid);
        self
    }

    /// The message id to send.
    pub(crate) fn mid_or_next(&self) -> i64 {
        self.mid.unwrap_or_else(next_mid)
    }
}

/// What a send returns: the message id it was sent with and the server's
/// time of the message. Every send returns it (the message sends, their
/// chat and command forms, and the file sends).
///
/// The id is the one of [`SendOptions::mid`], or the one the client drew
/// for the call when none was given; it is drawn once per call, so the
/// automatic resend of a quest whose connection was lost carries the same
/// id. Use it to read, edit or delete the message later
/// ([`get_message`](super::RtmServerClient::get_message), ...).
///
/// ```
/// # let emulator = rtm_server_sdk::emulator::RtmEmulator::start(1, "s").unwrap();
/// # let client = rtm_server_sdk::RtmServerClient::new(1, "s", emulator.endpoint()).unwrap();
/// use rtm_server_sdk::rtm::{ConversationType, SendOptions};
/// let sent = client.send_message(1001, 1002, 51, "hello", &SendOptions::default())?;
/// let stored = client.get_message(sent.mid, 1001, 1002, ConversationType::P2p)?;
/// assert_eq!(stored.mtime, sent.mtime);
/// # Ok::<(), rtm_server_sdk::Error>(())
/// ```
///
/// # Retrying a send safely
///
/// A send whose error says it may have been processed
/// ([`Error::delivery`](crate::Error::delivery) is
/// [`Delivery::MayHaveBeenProcessed`](crate::Delivery::MayHaveBeenProcessed):
/// the quest was written and its answer was lost, or did not come in time)
/// may still have been stored, and a new call draws a new id: retried
/// that way, the message could be stored twice. To retry safely, choose
/// the id before the first attempt and send every attempt with it: the
/// service stores an id once per sender and conversation, and answers a
/// repeat with
/// [`RTM_EC_DUPLICATED_MID`](crate::codes::RTM_EC_DUPLICATED_MID)
/// (200053), which for a retry means "already stored". (A single call can
/// get 200053 too: when its first attempt was stored but the answer was
/// lost with the connection, the automatic resend carries the same id.)
///
/// ```
/// # let emulator = rtm_server_sdk::emulator::RtmEmulator::start(1, "s").unwrap();
/// # let client = rtm_server_sdk::RtmServerClient::new(1, "s", emulator.endpoint()).unwrap();
/// use rtm_server_sdk::rtm::{next_mid, SendOptions};
/// use rtm_server_sdk::{codes, Delivery};
/// let mid = next_mid();
/// let options = SendOptions::default().mid(mid);
/// let mut attempts = 0;
/// let stored = loop {
///     attempts += 1;
///     match client.send_chat(1001, 1002, "hello", &options) {
///         Ok(sent) => break sent.mid,
///         // An earlier attempt was stored.
///         Err(e) if e.code() == Some(codes::RTM_EC_DUPLICATED_MID) => break mid,
///         // No answer (or never sent): the same id again.
///         Err(e) if e.delivery() != Delivery::Answered && attempts < 3 => continue,
///         Err(e) => return Err(e),
///     }
/// };
/// assert_eq!(stored, mid);
/// # Ok::<(), rtm_server_sdk::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Sent {
    /// The message id (`mid`).
    pub mid: i64,
    /// The server's time of the message (`mtime`), in milliseconds.
    pub mtime: i64,
}

/// Reads the `mtime` of a send's answer.
pub(crate) fn read_mtime(a: &AnswerReader<'_>) -> Result<i64> {
    a.int("mtime")
}

/// Declares send methods, each once, with both forms: the arguments
/// before the body, the method and the target keys. Every send takes the
/// body (`msg: impl Into<MessageBody>`) and `options: &SendOptions` last,
/// sends `mid`, `msg` and `attrs` after the given keys (in Go's order),
/// draws the message id once before the call (so the automatic resend
/// carries the same one) and returns it with the `mtime` ([`Sent`]).
macro_rules! send_methods {
    ($(
        $(#[$doc:meta])*
        fn $name:ident / $cb_name:ident ($($arg:ident : $ty:ty),* $(,)?) {
            method: $method:literal,
            params: { $($key:literal : $val:expr),* $(,)? } $(,)?
        }
    )*) => {
        impl $crate::rtm::RtmServerClient { $(
            $(#[$doc])*
            #[doc = ""]
            #[doc = "Returns the message id (the one of `options.mid`, or one drawn for the call) and the server's `mtime` ([`Sent`](crate::rtm::Sent)); to retry a send without storing it twice, see [`Sent`](crate::rtm::Sent#retrying-a-send-safely)."]
            #[doc = ""]
            #[doc = concat!("Quest `", $method, "`. The callback form is [`", stringify!($cb_name), "`](Self::", stringify!($cb_name), ").")]
            #[doc = ""]
            #[doc = "# Errors"]
            #[doc = ""]
            #[doc = "The server's refusal ([`Error::Server`](crate::Error::Server), with its [code](crate::Error::code); [`RTM_EC_DUPLICATED_MID`](crate::codes::RTM_EC_DUPLICATED_MID) when this sender already used the message id in this conversation: the message is stored then, by an earlier call with the same `options.mid`, or by this call's first attempt when its answer was lost and the automatic resend was refused), a timeout, a connection error, a malformed answer ([`Error::BadAnswer`](crate::Error::BadAnswer)), or [`Error::InvalidArgument`](crate::Error::InvalidArgument) for a value the wire cannot carry (nothing is sent then)."]
            pub fn $name(
                &self,
                $($arg: $ty,)*
                msg: impl Into<$crate::rtm::MessageBody>,
                options: &$crate::rtm::SendOptions,
            ) -> $crate::Result<$crate::rtm::Sent> {
                let mid = options.mid_or_next();
                let mut params = $crate::rtm::params::Params::new();
                $(params.put($key, $val); )*
                params
                    .put("mid", mid)
                    .put("msg", Into::<$crate::rtm::MessageBody>::into(msg))
                    .put("attrs", options.attrs.as_str());
                self.invoke($method, &params, $crate::rtm::message::read_mtime)
                    .map(|mtime| $crate::rtm::Sent { mid, mtime })
            }

            #[doc = concat!("The callback form of [`", stringify!($name), "`](Self::", stringify!($name), "): sends the same quest and returns at once; `callback` receives the same result exactly once, on a callback thread.")]
            pub fn $cb_name<F>(
                &self,
                $($arg: $ty,)*
                msg: impl Into<$crate::rtm::MessageBody>,
                options: &$crate::rtm::SendOptions,
                callback: F,
            ) where
                F: FnOnce($crate::Result<$crate::rtm::Sent>) + Send + 'static,
            {
                let mid = options.mid_or_next();
                let mut params = $crate::rtm::params::Params::new();
                $(params.put($key, $val); )*
                params
                    .put("mid", mid)
                    .put("msg", Into::<$crate::rtm::MessageBody>::into(msg))
                    .put("attrs", options.attrs.as_str());
                self.invoke_with_callback(
                    $crate::fpnn::conn::MethodName::Static($method),
                    params,
                    $crate::rtm::message::read_mtime,
                    Box::new(move |r: $crate::Result<i64>| {
                        callback(r.map(|mtime| $crate::rtm::Sent { mid, mtime }))
                    }),
                )
            }
        )* }
    };
}
pub(crate) use send_methods;

/// A fresh message id: unique in the process and increasing, across
/// threads and however many are drawn in one millisecond.
///
/// It comes from the same generator as the quest salts
/// ([`next_salt`](super::next_salt)), which returns a strictly greater value
/// on every call: a message id and the salt of the quest that carries it
/// are two different calls, so they never collide, and no id repeats.
///
/// ```
/// let a = rtm_server_sdk::rtm::next_mid();
/// let b = rtm_server_sdk::rtm::next_mid();
/// assert!(b > a);
/// ```
#[must_use]
pub fn next_mid() -> i64 {
    super::auth::next_salt()
}

/// The description of a file message (mtype 40..=50), read from its JSON
/// `msg` (`url`, `size`, `surl`) and the `rtm` part of its JSON `attrs`
/// (`filename`, `ext`, and for RTM audio `type: "audiomsg"`, `lang`,
/// `duration`, `srate`, `codec`). Fields absent from the JSON are empty
/// or zero.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileInfo {
    /// Where the file can be downloaded.
    pub url: String,
    /// The file's size in bytes.
    pub size: i64,
    /// The URL of a thumbnail (images), when the service made one.
    pub surl: Option<String>,
    /// The file name (`filename`).
    pub name: String,
    /// The file extension (`ext`).
    pub ext: String,
    /// True for RTM audio (`type: "audiomsg"`), which carries the four
    /// fields below.
    pub rtm_audio: bool,
    /// The audio's language.
    pub lang: String,
    /// The audio's duration (`duration`, in milliseconds as the SDKs send
    /// it).
    pub duration: i64,
    /// The audio's sample rate (`srate`).
    pub sample_rate: i64,
    /// The audio's codec (`codec`).
    pub codec: String,
}

fn json_int(v: Option<&serde_json::Value>) -> i64 {
    match v {
        Some(serde_json::Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .unwrap_or(0),
        Some(serde_json::Value::String(s)) => s.trim().parse().unwrap_or(0),
        _ => 0,
    }
}

fn json_str(v: Option<&serde_json::Value>) -> String {
    match v {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Reads a message's file description and the user's attrs. For a file
/// mtype whose `msg` is a JSON object, the file description is read from
/// `msg` and the `rtm` part of `attrs`, and the returned attrs are the
/// `custom` part (a JSON string as its text, `""` when absent, other JSON
/// as its text); otherwise nothing is decoded and `attrs` is returned as
/// it came.
pub(crate) fn decode_file(
    mtype: i64,
    body: &MessageBody,
    attrs: String,
) -> (String, Option<FileInfo>) {
    if !MessageType::of(mtype).is_file() {
        return (attrs, None);
    }
    let Ok(serde_json::Value::Object(msg)) = serde_json::from_slice(body.as_bytes()) else {
        return (attrs, None);
    };
    let mut info = FileInfo {
        url: json_str(msg.get("url")),
        size: json_int(msg.get("size")),
        surl: match msg.get("surl") {
            Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        },
        ..FileInfo::default()
    };
    let custom = match serde_json::from_str::<serde_json::Value>(&attrs) {
        Ok(serde_json::Value::Object(a)) => {
            if let Some(serde_json::Value::Object(rtm)) = a.get("rtm") {
                info.name = json_str(rtm.get("filename"));
                info.ext = json_str(rtm.get("ext"));
                info.rtm_audio = rtm.get("type").and_then(|t| t.as_str()) == Some("audiomsg");
                info.lang = json_str(rtm.get("lang"));
                info.duration = json_int(rtm.get("duration"));
                info.sample_rate = json_int(rtm.get("srate"));
                info.codec = json_str(rtm.get("codec"));
            }
            json_str(a.get("custom"))
        }
        // Attrs that are not the SDKs' JSON object: the user's own.
        _ => attrs,
    };
    (custom, Some(info))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_messages_decode() {
        let body = MessageBody::from(r#"{"url":"https://f/x.amr","size":1234,"surl":""}"#);
        let attrs = r#"{"custom":{"k":"v"},"rtm":{"codec":"amr-wb","duration":2000,"ext":"amr","filename":"voice.amr","lang":"en","sign":"s","srate":16000,"type":"audiomsg"}}"#;
        let (custom, info) = decode_file(41, &body, attrs.into());
        assert_eq!(custom, r#"{"k":"v"}"#);
        let info = info.unwrap();
        assert_eq!(info.url, "https://f/x.amr");
        assert_eq!(info.size, 1234);
        assert_eq!(info.surl, None);
        assert_eq!(
            (info.name.as_str(), info.ext.as_str()),
            ("voice.amr", "amr")
        );
        assert!(info.rtm_audio);
        assert_eq!((info.lang.as_str(), info.duration), ("en", 2000));
        assert_eq!((info.sample_rate, info.codec.as_str()), (16000, "amr-wb"));

        let body = MessageBody::from(r#"{"url":"u","size":"5","surl":"s"}"#);
        let (custom, info) =
            decode_file(40, &body, r#"{"custom":"mine","rtm":{"ext":"png"}}"#.into());
        assert_eq!(custom, "mine");
        let info = info.unwrap();
        assert_eq!((info.size, info.surl.as_deref()), (5, Some("s")));
        assert!(!info.rtm_audio);
        let (custom, _) = decode_file(50, &body, r#"{"rtm":{}}"#.into());
        assert_eq!(custom, "");
        let (custom, info) = decode_file(50, &body, "plain".into());
        assert_eq!((custom.as_str(), info.is_some()), ("plain", true));
        // Not a file type, or not JSON: nothing decoded.
        assert_eq!(decode_file(30, &body, "a".into()), ("a".into(), None));
        let (custom, info) = decode_file(40, &MessageBody::from("nope"), "a".into());
        assert_eq!((custom.as_str(), info), ("a", None));
    }

    #[test]
    fn classification() {
        assert_eq!(MessageType::of(32), MessageType::Cmd);
        assert_eq!(MessageType::of(42), MessageType::Video);
        assert_eq!(MessageType::of(50), MessageType::File(50));
        assert!(!MessageType::of(51).is_file());
        assert!(!MessageType::of(39).is_file());
        for m in [-1, 0, 30, 32, 40, 41, 42, 43, 50, 51, 127] {
            assert_eq!(MessageType::of(m).mtype(), m);
        }
        assert_eq!(ConversationType::Broadcast.code(), 4);
        assert_eq!(ClearProjectTarget::Room.code(), 1);
        assert_eq!(ClearProjectTarget::Group.code(), 2);
    }
}
