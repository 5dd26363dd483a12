//! Sending files two steps, through the file gate.
//!
//! 1. A signed `filetoken` quest on the RTM connection, carrying the
//!    sender, the step-2 command and only that command's target key (`to`,
//!    `tos`, `gid`, `rid`; none for a broadcast), returns a single-use
//!    `token` and the `endpoint` of the file gate.
//! 2. The file goes to that endpoint as one **unsigned** quest named by the
//!    command (`sendfile`, `sendfiles`, `sendgroupfile`, `sendroomfile`,
//!    `broadcastfile`), with `pid`, `token`, `mtype`, `from`, the target,
//!    the `mid` ([`FileOptions::mid`], or one drawn for the call), the
//!    `file` as `bin` and the `attrs` JSON text, over a
//!    separate, never-encrypted FPNN connection.
//!
//! Each method exists in both forms ([`send_file`](RtmServerClient::send_file)
//! and [`send_file_with_callback`](RtmServerClient::send_file_with_callback),
//! and so on); all five go through one generic two-step path. The callback
//! form never blocks its caller: step 2 starts from step 1's callback (a
//! gate with no connection is dialled on a thread of its own, as every
//! FPNN dial is, while the file waits in the gate client's queue), and the
//! result reaches the closure on one of the RTM client's callback threads.
//!
//! # The attrs
//!
//! The file's `attrs` is the JSON text `{"custom": ..., "rtm": {...}}`
//! (keys sorted). `rtm.sign` is the lowercase hex MD5 of (the lowercase hex
//! MD5 of the content, `:`, the token); `rtm.filename` and `rtm.ext` are
//! [`FileOptions::name`] and the explicit [`FileOptions::ext`], or, when no
//! extension is given, the name cut at its last dot and the extension
//! that follows it (`report.txt` is sent as `filename` `"report"` and
//! `ext` `"txt"`, as the official Go SDK sends it); for RTM audio ([`FileOptions::audio`]) `rtm.type`
//! is `"audiomsg"` with `codec`, `srate`, `lang` and `duration` (in
//! milliseconds). `custom` is [`FileOptions::attrs`] parsed as JSON when it
//! parses, else the raw string, and `""` when empty.
//!
//! # Size
//!
//! A file is one FPNN frame: a file whose step-2 quest would exceed the
//! client's [`ClientConfig::max_send_payload`](crate::ClientConfig::max_send_payload) (8 MiB by default, the FPNN
//! server's default limit) is refused with
//! [`Error::InvalidArgument`], naming both
//! sizes, before anything is sent (the quest adds the attrs and about a
//! hundred bytes of keys to the file). Raise the limit with
//! `ClientConfig::default().max_send_payload(bytes)` when your file gate
//! accepts more.
//!
//! # Timeouts
//!
//! Step 1 waits like any quest (the handle's timeout, else the configured
//! quest timeout); step 2 waits [`FILE_SEND_TIMEOUT`] (120 s) by default,
//! or the handle's timeout when one was set with
//! [`with_timeout`](RtmServerClient::with_timeout).
//!
//! # The file-gate connections
//!
//! The client keeps one FPNN client per gate endpoint, shared by all
//! threads and clones, unencrypted, with the RTM client's connect timeout
//! and payload limits, and no background reconnect: a gate connection that
//! died is dialed again by the next file, and the RTM connection never
//! depends on it. A gate unused for the idle period
//! ([`DEFAULT_FILE_GATE_IDLE`], 2 minutes;
//! [`set_file_gate_idle`](RtmServerClient::set_file_gate_idle)) is closed:
//! each send closes the other idle gates it finds, and one process-wide
//! background thread (`rtm-file-gates`, started with the first gate and
//! ending when no client has a gate open) closes the rest on time. That
//! thread holds the clients' gate caches weakly: it never keeps a client
//! alive. [`close`](RtmServerClient::close) closes every gate at once.
//!
//! ```
//! use rtm_server_sdk::emulator::RtmEmulator;
//! use rtm_server_sdk::rtm::{FileOptions, FileType};
//! use rtm_server_sdk::RtmServerClient;
//!
//! let emu = RtmEmulator::start(11000001, "secret").unwrap();
//! let client = RtmServerClient::new(11000001, "secret", emu.endpoint()).unwrap();
//! let options = FileOptions {
//!     name: Some("hello.txt".into()),
//!     attrs: r#"{"note":"hi"}"#.into(),
//!     ..Default::default()
//! };
//! let sent = client.send_group_file(1001, 7, b"hello", &options).unwrap();
//! assert!(sent.mtime > 0);
//! let image = FileOptions { name: Some("cat.png".into()), mtype: FileType::Image, ..Default::default() };
//! client.send_file(1001, 1002, &[0x89, b'P', b'N', b'G'], &image).unwrap();
//! assert_eq!(emu.file_urls().len(), 2);
//! ```

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use md5::{Digest, Md5};
use rmpv::Value;

use super::client::RtmServerClient;
use super::message::Sent;
use super::params::{AnswerReader, Params};
use crate::error::{Error, Result};
use crate::fpnn::conn::MethodName;
use crate::fpnn::pool::{Job, Pool};

/// The default time step 2 (the file itself) waits for its answer: 120 s.
/// A per-call timeout ([`RtmServerClient::with_timeout`]) replaces it.
pub const FILE_SEND_TIMEOUT: Duration = Duration::from_secs(120);

/// The default idle period after which an unused file-gate connection is
/// closed: 2 minutes (see [`RtmServerClient::set_file_gate_idle`]).
pub const DEFAULT_FILE_GATE_IDLE: Duration = Duration::from_secs(120);

/// The message type of a file (`mtype`, 40..=50).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum FileType {
    /// An image (40).
    Image,
    /// Audio (41).
    Audio,
    /// Video (42).
    Video,
    /// Any other file (50, the default).
    #[default]
    File,
    /// Another file mtype of the service (43..=49; the service refuses
    /// values outside 40..=50 with
    /// [`RTM_EC_INVALID_FILE_MTYPE`](crate::codes::RTM_EC_INVALID_FILE_MTYPE)).
    Other(i64),
}

impl FileType {
    /// The wire value.
    #[must_use]
    pub fn code(self) -> i64 {
        match self {
            FileType::Image => 40,
            FileType::Audio => 41,
            FileType::Video => 42,
            FileType::File => 50,
            FileType::Other(code) => code,
        }
    }
}

/// The description of an RTM audio message (`rtm.type: "audiomsg"` in the
/// file's attrs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct AudioInfo {
    /// The codec, for example `"amr-wb"`.
    pub codec: String,
    /// The sample rate in Hz, for example 16000.
    pub srate: i64,
    /// The language, for example `"en"`.
    pub lang: String,
    /// The length of the recording, written in milliseconds (a fraction
    /// of a millisecond rounds up).
    pub duration: Duration,
}

/// What describes a file besides its content: its name, extension, message
/// type, the user's attrs, for RTM audio the audio description, and the
/// message id. Every field is optional; `FileOptions::default()` sends a
/// generic file (mtype 50) with no name.
///
/// ```
/// use rtm_server_sdk::rtm::{AudioInfo, FileOptions, FileType};
/// use std::time::Duration;
///
/// let voice = FileOptions {
///     name: Some("voice.amr".into()),
///     mtype: FileType::Audio,
///     audio: Some(AudioInfo {
///         codec: "amr-wb".into(),
///         srate: 16000,
///         lang: "en".into(),
///         duration: Duration::from_secs(2),
///     }),
///     ..Default::default()
/// };
/// # let _ = voice;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileOptions {
    /// The file name. With [`ext`](Self::ext) unset, the extension is
    /// taken from the name and cut off it, as the official Go SDK does:
    /// `"report.txt"` is sent as `rtm.filename` `"report"` and `rtm.ext`
    /// `"txt"` (a name without an extension is sent as it is). With
    /// `ext` set, the name is sent as it is.
    pub name: Option<String>,
    /// The extension (`rtm.ext`, a leading dot dropped); when set, the
    /// name is sent whole.
    pub ext: Option<String>,
    /// The message type (default [`FileType::File`], 50).
    pub mtype: FileType,
    /// The user's attrs (`custom`): JSON when it parses as JSON, else sent
    /// as a string; empty for none.
    pub attrs: String,
    /// For an RTM audio message: its description.
    pub audio: Option<AudioInfo>,
    /// The message id (`mid`); `None` (the default) draws one for the
    /// call. Set it to know the id before the send, for example to retry
    /// with the same id as for the message sends (see
    /// [`Sent`](super::Sent#retrying-a-send-safely); the emulator's file
    /// gate does not refuse a reused id).
    pub mid: Option<i64>,
}

impl FileOptions {
    /// Reads the file at `path`: its content, and options named after the
    /// file (the last component of the path; the extension is taken from
    /// it, and cut off the sent name: `report.txt` goes out as `filename`
    /// `"report"` and `ext` `"txt"`). Set the other fields on the returned
    /// options as needed.
    ///
    /// ```
    /// # let path = std::env::temp_dir().join(format!("rtm-doc-{}.txt", std::process::id()));
    /// # std::fs::write(&path, b"hello").unwrap();
    /// use rtm_server_sdk::rtm::FileOptions;
    /// let (content, options) = FileOptions::from_path(&path).unwrap();
    /// assert_eq!(content, b"hello");
    /// assert!(options.name.unwrap().ends_with(".txt"));
    /// # std::fs::remove_file(&path).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming the path when it cannot be read.
    pub fn from_path(path: impl AsRef<Path>) -> Result<(Vec<u8>, FileOptions)> {
        let path = path.as_ref();
        let content = std::fs::read(path).map_err(|e| {
            Error::InvalidArgument(format!("cannot read the file {}: {e}", path.display()))
        })?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        Ok((
            content,
            FileOptions {
                name,
                ..FileOptions::default()
            },
        ))
    }
}

/// Where a file goes: one description per step-2 command.
#[derive(Debug, Clone)]
enum FileTarget {
    User(i64),
    Users(Vec<i64>),
    Group(i64),
    Room(i64),
    Broadcast,
}

impl FileTarget {
    /// The step-2 method (`cmd` of step 1).
    fn cmd(&self) -> &'static str {
        match self {
            FileTarget::User(_) => "sendfile",
            FileTarget::Users(_) => "sendfiles",
            FileTarget::Group(_) => "sendgroupfile",
            FileTarget::Room(_) => "sendroomfile",
            FileTarget::Broadcast => "broadcastfile",
        }
    }

    /// The target key and its value, if the command has one.
    fn entry(&self) -> Option<(&'static str, Value)> {
        match self {
            FileTarget::User(to) => Some(("to", Value::from(*to))),
            FileTarget::Users(tos) => Some((
                "tos",
                Value::Array(tos.iter().map(|&t| Value::from(t)).collect()),
            )),
            FileTarget::Group(gid) => Some(("gid", Value::from(*gid))),
            FileTarget::Room(rid) => Some(("rid", Value::from(*rid))),
            FileTarget::Broadcast => None,
        }
    }

    /// The parameters of step 1: `from`, `cmd` and the target key only.
    fn token_params(&self, from: i64) -> Params {
        let mut p = Params::new();
        p.put("from", from).put("cmd", self.cmd());
        match self {
            FileTarget::User(to) => p.put("to", *to),
            FileTarget::Users(tos) => p.put("tos", tos.as_slice()),
            FileTarget::Group(gid) => p.put("gid", *gid),
            FileTarget::Room(rid) => p.put("rid", *rid),
            FileTarget::Broadcast => &mut p,
        };
        p
    }
}

/// Lowercase hex MD5.
fn md5_hex(bytes: &[u8]) -> String {
    hex::encode(Md5::digest(bytes))
}

/// `rtm.sign` of a file: the lowercase hex MD5 of (the lowercase hex MD5 of
/// the content, `:`, the token), from the content's MD5 already in hex.
fn file_sign(content_md5_hex: &str, token: &str) -> String {
    md5_hex(format!("{content_md5_hex}:{token}").as_bytes())
}

/// A file name split at its last dot into the name without its extension
/// and the extension, when it has one (a non-empty extension after a
/// non-empty stem: `.profile` and `notes.` have none).
fn split_ext(name: &str) -> Option<(&str, &str)> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let (stem, ext) = base.rsplit_once('.')?;
    (!stem.is_empty() && !ext.is_empty()).then(|| (&name[..name.len() - ext.len() - 1], ext))
}

/// The attrs JSON of a file, everything but the token-dependent sign.
#[derive(Debug, Clone)]
struct Attrs {
    rtm: BTreeMap<&'static str, serde_json::Value>,
    custom: serde_json::Value,
}

impl Attrs {
    fn new(options: &FileOptions) -> Result<Attrs> {
        use serde_json::Value as J;
        let mut rtm = BTreeMap::new();
        let name = options.name.as_deref().filter(|n| !n.is_empty());
        let ext = options
            .ext
            .as_deref()
            .map(|e| e.trim_start_matches('.'))
            .filter(|e| !e.is_empty());
        // No extension given: take it from the name, and cut it off (Go).
        let (name, ext) = match (name, ext) {
            (Some(name), None) => match split_ext(name) {
                Some((stem, ext)) => (Some(stem), Some(ext)),
                None => (Some(name), None),
            },
            other => other,
        };
        if let Some(name) = name {
            rtm.insert("filename", J::from(name));
        }
        if let Some(ext) = ext {
            rtm.insert("ext", J::from(ext));
        }
        if let Some(audio) = &options.audio {
            let d = audio.duration;
            let ms = d
                .as_millis()
                .saturating_add(u128::from(d.subsec_nanos() % 1_000_000 > 0));
            let ms = i64::try_from(ms).map_err(|_| {
                Error::InvalidArgument(format!("an audio duration of {d:?} does not fit the wire"))
            })?;
            rtm.insert("type", J::from("audiomsg"));
            rtm.insert("codec", J::from(audio.codec.as_str()));
            rtm.insert("srate", J::from(audio.srate));
            rtm.insert("lang", J::from(audio.lang.as_str()));
            rtm.insert("duration", J::from(ms));
        }
        let custom = if options.attrs.is_empty() {
            J::from("")
        } else {
            serde_json::from_str(&options.attrs).unwrap_or_else(|_| J::from(options.attrs.as_str()))
        };
        Ok(Attrs { rtm, custom })
    }

    /// The attrs text, signed for `token`.
    fn text(&self, content_md5_hex: &str, token: &str) -> String {
        let mut rtm = self.rtm.clone();
        rtm.insert(
            "sign",
            serde_json::Value::from(file_sign(content_md5_hex, token)),
        );
        let mut all = BTreeMap::new();
        all.insert("custom", self.custom.clone());
        all.insert("rtm", serde_json::to_value(rtm).unwrap_or_default());
        serde_json::to_string(&all).unwrap_or_default()
    }
}

/// One file on its way: everything step 2 needs but the token.
struct FileSend<'a> {
    pid: i64,
    from: i64,
    target: FileTarget,
    mtype: i64,
    mid: i64,
    content: Cow<'a, [u8]>,
    content_md5: String,
    attrs: Attrs,
}

/// The length of a msgpack `bin` header for `len` bytes.
fn bin_header_len(len: usize) -> usize {
    match len {
        0..=0xFF => 2,
        0x100..=0xFFFF => 3,
        _ => 5,
    }
}

impl<'a> FileSend<'a> {
    /// Describes the send and refuses, before anything is sent, a file
    /// whose step-2 quest exceeds `max_send_payload`.
    fn new(
        client: &RtmServerClient,
        from: i64,
        target: FileTarget,
        content: &'a [u8],
        options: &FileOptions,
    ) -> Result<FileSend<'a>> {
        let send = FileSend {
            pid: client.pid(),
            from,
            target,
            mtype: options.mtype.code(),
            mid: options.mid.unwrap_or_else(super::next_mid),
            content: Cow::Borrowed(content),
            content_md5: md5_hex(content),
            attrs: Attrs::new(options)?,
        };
        let max = client.fpnn().config().max_send_payload;
        let size = send.payload_size("");
        if size > max {
            return Err(Error::InvalidArgument(format!(
                "a file of {} bytes does not fit the client's maximum send payload of {max} bytes \
                 (its `{}` quest would carry {size} bytes); raise ClientConfig::max_send_payload",
                content.len(),
                send.target.cmd(),
            )));
        }
        Ok(send)
    }

    /// The same send, owning its content (for the callback form).
    fn into_owned(self) -> FileSend<'static> {
        FileSend {
            content: Cow::Owned(self.content.into_owned()),
            target: self.target,
            attrs: self.attrs,
            content_md5: self.content_md5,
            ..self
        }
    }

    /// The step-2 payload, with `file` given separately.
    fn payload_with(&self, token: &str, file: Vec<u8>) -> Value {
        let mut entries = vec![
            (Value::from("pid"), Value::from(self.pid)),
            (Value::from("token"), Value::from(token)),
            (Value::from("mtype"), Value::from(self.mtype)),
            (Value::from("from"), Value::from(self.from)),
        ];
        if let Some((key, value)) = self.target.entry() {
            entries.push((Value::from(key), value));
        }
        entries.push((Value::from("mid"), Value::from(self.mid)));
        entries.push((Value::from("file"), Value::Binary(file)));
        entries.push((
            Value::from("attrs"),
            Value::from(self.attrs.text(&self.content_md5, token)),
        ));
        Value::Map(entries)
    }

    /// The encoded size of the step-2 payload for a token (without
    /// encoding the content).
    fn payload_size(&self, token: &str) -> usize {
        let mut buf = Vec::new();
        let _ = rmpv::encode::write_value(&mut buf, &self.payload_with(token, Vec::new()));
        let n = self.content.len();
        buf.len() - bin_header_len(0) + bin_header_len(n) + n
    }

    /// The step-2 payload (the content moves into it).
    fn into_payload(self, token: &str) -> Value {
        let payload = self.payload_with(token, Vec::new());
        let Value::Map(mut entries) = payload else {
            return payload;
        };
        let content = self.content.into_owned();
        for (k, v) in &mut entries {
            if k.as_str() == Some("file") {
                *v = Value::Binary(content);
                break;
            }
        }
        Value::Map(entries)
    }
}

/// Reads `token` and `endpoint` from the answer of step 1.
fn read_token(a: &AnswerReader<'_>) -> Result<(String, String)> {
    Ok((a.string("token")?, a.string("endpoint")?))
}

/// Reads `mtime` from the answer of step 2: what the send returns.
fn read_sent(method: &str, mid: i64, answer: Result<Value>) -> Result<Sent> {
    let answer = answer?;
    let mtime = AnswerReader {
        method,
        answer: &answer,
    }
    .int("mtime")?;
    Ok(Sent { mid, mtime })
}

impl RtmServerClient {
    /// The blocking two-step path of every file method.
    fn send_file_blocking(
        &self,
        from: i64,
        target: FileTarget,
        content: &[u8],
        options: &FileOptions,
    ) -> Result<Sent> {
        let send = FileSend::new(self, from, target, content, options)?;
        let cmd = send.target.cmd();
        let mid = send.mid;
        let (token, endpoint) =
            self.invoke("filetoken", &send.target.token_params(from), read_token)?;
        let (gate, ticket) = self.file_gates().acquire(&endpoint)?;
        let timeout = self.timeout().unwrap_or(FILE_SEND_TIMEOUT);
        let answer = gate.call_timeout(cmd, send.into_payload(&token), timeout);
        drop(ticket);
        read_sent(cmd, mid, answer)
    }

    /// The callback two-step path of every file method: step 1 as a
    /// callback call, step 2 started from its callback, the result handed
    /// to `callback` on one of this client's callback threads.
    fn send_file_callback(
        &self,
        from: i64,
        target: FileTarget,
        content: &[u8],
        options: &FileOptions,
        callback: Box<dyn FnOnce(Result<Sent>) + Send>,
    ) {
        let send = match FileSend::new(self, from, target, content, options) {
            Ok(send) => send.into_owned(),
            Err(e) => return self.on_pool(move || callback(Err(e))),
        };
        let pool: Arc<Pool> = self.fpnn().core().pool().clone();
        let gates = Arc::downgrade(self.file_gates());
        let timeout = self.timeout().unwrap_or(FILE_SEND_TIMEOUT);
        let params = send.target.token_params(from);
        let step2 = move |step1: Result<(String, String)>| {
            let (token, endpoint) = match step1 {
                Ok(answer) => answer,
                Err(e) => return callback(Err(e)),
            };
            let acquired = match gates.upgrade() {
                Some(gates) => gates.acquire(&endpoint),
                None => Err(Error::ClientClosed),
            };
            let (gate, ticket) = match acquired {
                Ok(gate) => gate,
                Err(e) => return callback(Err(e)),
            };
            let cmd = send.target.cmd();
            let mid = send.mid;
            gate.call_with_callback(cmd, send.into_payload(&token), timeout, move |answer| {
                drop(ticket);
                let result = read_sent(cmd, mid, answer);
                // The user's code runs on the RTM client's callback
                // threads, never on the gate's.
                pool.submit(Job::Task(Box::new(move || callback(result))));
            });
        };
        self.invoke_with_callback(
            MethodName::Static("filetoken"),
            params,
            read_token,
            Box::new(step2),
        );
    }

    /// Sets how long an unused file-gate connection stays open (default
    /// [`DEFAULT_FILE_GATE_IDLE`], 2 minutes) for this client and its
    /// clones. Zero closes each gate connection as soon as its last file
    /// is answered. Gates already idle for longer are closed promptly.
    pub fn set_file_gate_idle(&self, idle: Duration) {
        self.file_gates().set_idle(idle);
    }

    /// How long an unused file-gate connection stays open.
    #[must_use]
    pub fn file_gate_idle(&self) -> Duration {
        self.file_gates().idle()
    }

    /// The number of file-gate clients open (one per gate endpoint in
    /// use).
    #[must_use]
    pub fn file_gate_count(&self) -> usize {
        self.file_gates().count()
    }
}

/// Declares the five file methods, each once, with both forms.
macro_rules! file_methods {
    ($(
        $(#[$doc:meta])*
        fn $name:ident / $cb_name:ident ($($arg:ident : $ty:ty),* ) => $cmd:literal, $target:expr;
    )*) => {
        impl RtmServerClient { $(
            $(#[$doc])*
            ///
            /// `content` is the whole file; `options` its name, extension,
            /// type, attrs and audio description (see [`FileOptions`]).
            /// Returns the message id ([`FileOptions::mid`], or the one drawn
            /// for the call) and the message's `mtime` ([`Sent`]). See the
            /// [`files`](crate::rtm::files) module for the two steps, the
            /// size limit and the timeouts.
            #[doc = concat!("\n\nQuests `filetoken`, then `", $cmd, "` on the file gate. The callback form is [`", stringify!($cb_name), "`](Self::", stringify!($cb_name), ").")]
            ///
            /// # Errors
            ///
            /// [`Error::InvalidArgument`] for a file over the client's
            /// maximum send payload (nothing is sent); otherwise the
            /// errors of either step: the server's or the gate's refusal
            /// (a used or expired token, a wrong sign), a timeout, a
            /// connection error.
            pub fn $name(&self, from: i64, $($arg: $ty,)* content: &[u8], options: &FileOptions) -> Result<Sent> {
                self.send_file_blocking(from, $target, content, options)
            }

            #[doc = concat!("The callback form of [`", stringify!($name), "`](Self::", stringify!($name), "): returns at once (the content is copied); `callback` receives the same result exactly once, on a callback thread.")]
            pub fn $cb_name<F>(&self, from: i64, $($arg: $ty,)* content: &[u8], options: &FileOptions, callback: F)
            where
                F: FnOnce(Result<Sent>) + Send + 'static,
            {
                self.send_file_callback(from, $target, content, options, Box::new(callback))
            }
        )* }
    };
}

file_methods! {
    /// Sends a file from `from` to user `to`.
    fn send_file / send_file_with_callback (to: i64) => "sendfile", FileTarget::User(to);

    /// Sends a file from `from` to each of the users `tos`.
    fn send_files / send_files_with_callback (tos: &[i64]) => "sendfiles", FileTarget::Users(tos.to_vec());

    /// Sends a file from `from` to group `gid`.
    fn send_group_file / send_group_file_with_callback (gid: i64) => "sendgroupfile", FileTarget::Group(gid);

    /// Sends a file from `from` to room `rid`.
    fn send_room_file / send_room_file_with_callback (rid: i64) => "sendroomfile", FileTarget::Room(rid);

    /// Sends a file from `from` to every user of the project.
    fn send_broadcast_file / send_broadcast_file_with_callback () => "broadcastfile", FileTarget::Broadcast;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worked_file_signs() {
        assert_eq!(
            file_sign(&md5_hex(b"hello"), "abc"),
            "1f3290000afa62d7f5c8daa9864bed20"
        );
        assert_eq!(
            file_sign(&md5_hex(b"hello"), "tok"),
            "95eb30a7fab2897cb0c174f93e8e0db7"
        );
    }

    #[test]
    fn attrs_match_the_recorded_texts() {
        let md5 = md5_hex(b"hello");
        let sign = file_sign(&md5, "tok");
        let plain = FileOptions {
            name: Some("peer-file".into()),
            ext: Some("txt".into()),
            ..FileOptions::default()
        };
        assert_eq!(
            Attrs::new(&plain).unwrap().text(&md5, "tok"),
            format!(
                r#"{{"custom":"","rtm":{{"ext":"txt","filename":"peer-file","sign":"{sign}"}}}}"#
            )
        );
        let audio = FileOptions {
            name: Some("voice.amr".into()),
            ext: Some("amr".into()),
            mtype: FileType::Audio,
            attrs: r#"{"k":"v"}"#.into(),
            audio: Some(AudioInfo {
                codec: "amr-wb".into(),
                srate: 16000,
                lang: "en".into(),
                duration: Duration::from_millis(2000),
            }),
            mid: None,
        };
        assert_eq!(
            Attrs::new(&audio).unwrap().text(&md5, "tok"),
            format!(
                r#"{{"custom":{{"k":"v"}},"rtm":{{"codec":"amr-wb","duration":2000,"ext":"amr","filename":"voice.amr","lang":"en","sign":"{sign}","srate":16000,"type":"audiomsg"}}}}"#
            )
        );
    }

    #[test]
    fn an_inferred_extension_is_cut_off_the_name_as_recorded() {
        // The spec's recorded Go text for `peer-file.txt`, its extension
        // inferred: `filename` without it.
        let md5 = md5_hex(b"hello");
        let sign = file_sign(&md5, "tok");
        let recorded = format!(
            r#"{{"custom":"","rtm":{{"ext":"txt","filename":"peer-file","sign":"{sign}"}}}}"#
        );
        let inferred = FileOptions {
            name: Some("peer-file.txt".into()),
            ..FileOptions::default()
        };
        assert_eq!(Attrs::new(&inferred).unwrap().text(&md5, "tok"), recorded);
        // `from_path` names the options after the file: the same rule.
        let dir = std::env::temp_dir().join(format!("rtm-ext-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("peer-file.txt");
        std::fs::write(&path, b"hello").unwrap();
        let (content, options) = FileOptions::from_path(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(content, b"hello");
        assert_eq!(Attrs::new(&options).unwrap().text(&md5, "tok"), recorded);
    }

    #[test]
    fn attrs_custom_and_extension_rules() {
        let text = |o: FileOptions| Attrs::new(&o).unwrap().text("x", "t");
        let parsed =
            |o: FileOptions| -> serde_json::Value { serde_json::from_str(&text(o)).unwrap() };
        // Not JSON: the raw string.
        let v = parsed(FileOptions {
            attrs: "not json {".into(),
            ..Default::default()
        });
        assert_eq!(v["custom"], "not json {");
        // No name, no ext: neither key.
        let v = parsed(FileOptions::default());
        assert_eq!(v["custom"], "");
        assert!(v["rtm"].get("filename").is_none() && v["rtm"].get("ext").is_none());
        assert_eq!(v["rtm"]["sign"], file_sign("x", "t"));
        // The extension comes from the name's last dot and is cut off the
        // name; an explicit one wins (a leading dot dropped) and leaves the
        // name whole.
        let v = parsed(FileOptions {
            name: Some("a.tar.gz".into()),
            ..Default::default()
        });
        assert_eq!(
            (&v["rtm"]["filename"], &v["rtm"]["ext"]),
            (&"a.tar".into(), &"gz".into())
        );
        let v = parsed(FileOptions {
            name: Some("a.tar.gz".into()),
            ext: Some(".bin".into()),
            ..Default::default()
        });
        assert_eq!(
            (&v["rtm"]["filename"], &v["rtm"]["ext"]),
            (&"a.tar.gz".into(), &"bin".into())
        );
        // No extension to take: the name as it is, no `ext`.
        for name in ["README", ".profile", "notes.", "dir.d/README"] {
            let v = parsed(FileOptions {
                name: Some(name.into()),
                ..Default::default()
            });
            assert_eq!(v["rtm"]["filename"], name);
            assert!(v["rtm"].get("ext").is_none(), "{name}");
        }
        // A sub-millisecond fraction rounds up; too long is refused.
        let mut o = FileOptions {
            audio: Some(AudioInfo {
                duration: Duration::from_micros(1500),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(parsed(o.clone())["rtm"]["duration"], 2);
        o.audio.as_mut().unwrap().duration = Duration::MAX;
        assert!(matches!(Attrs::new(&o), Err(Error::InvalidArgument(_))));
    }

    #[test]
    fn payload_size_is_exact() {
        let client = RtmServerClient::new(7, "s", "127.0.0.1:1").unwrap();
        for len in [0usize, 1, 255, 256, 65535, 65536, 70000] {
            let content = vec![7u8; len];
            let send = FileSend::new(
                &client,
                1,
                FileTarget::Users(vec![2, 3]),
                &content,
                &FileOptions::default(),
            )
            .unwrap();
            let predicted = send.payload_size("token-1");
            let mut buf = Vec::new();
            rmpv::encode::write_value(&mut buf, &send.into_payload("token-1")).unwrap();
            assert_eq!(predicted, buf.len(), "len {len}");
        }
        client.close();
    }

    #[test]
    fn file_types() {
        assert_eq!(FileType::default().code(), 50);
        assert_eq!(FileType::Image.code(), 40);
        assert_eq!(FileType::Audio.code(), 41);
        assert_eq!(FileType::Video.code(), 42);
        assert_eq!(FileType::Other(45).code(), 45);
    }
}
