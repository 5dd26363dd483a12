//! Files: `filetoken` and the file gate.
//!
//! Every emulator runs a file gate: a second [`FpnnServer`] on a free port
//! of the emulator's own IP (never encrypted, with the emulator's payload
//! limit), started and stopped with it. `filetoken` answers its endpoint
//! ([`RtmEmulator::file_gate_endpoint`]); when the emulator listens on a
//! wildcard address (`0.0.0.0`), the answer names the IP the client's
//! connection arrived on, which that client can reach.
//!
//! * `filetoken` (signed, on the RTM connection) reads `from`, `cmd` and
//!   the key of that command only: `to` for `sendfile`, `tos` (a non-empty
//!   list) for `sendfiles`, `gid` for `sendgroupfile`, `rid` for
//!   `sendroomfile`, none for `broadcastfile` (other keys are ignored). It
//!   answers a fresh `token` (128 bits from the OS random source, as 32
//!   lowercase hex digits), valid once, for that command, sender and
//!   target, until [`RtmEmulator::FILE_TOKEN_TTL`] (5 minutes) on the
//!   emulator's clock has passed. An unknown `cmd` is 200034.
//! * The gate takes the five commands, unsigned: `pid`, `token`, `mtype`,
//!   `from`, the target key, `mid`, `file` (`bin`; a `str` is taken as its
//!   bytes) and `attrs` (a string). Before a quest is decoded, the gate
//!   reads `pid`, `token`, `from` and the target key in place: another
//!   method is 20004, one of these keys missing 10009, of the wrong type
//!   10010, a wrong `pid` 200002, and a token that is unknown, used,
//!   expired or issued for another command, sender or target 200003
//!   (`RTM_EC_INVALID_FILE_OR_SIGN_OR_TOKEN`) with the same message,
//!   `invalid token`, whichever it is, so that a guess learns nothing (and
//!   such a quest does not use up the token). The
//!   [`RtmEmulator::MAX_BAD_FILE_TOKENS`]-th (3rd) invalid token on one
//!   connection closes it without an answer.
//! * Then the quest is decoded: a missing key is 10009, a wrong type
//!   10010, and the token is used up, whatever follows. An `mtype` outside
//!   40..=50 is 200007, an empty file 200003, `attrs` that is not a JSON
//!   object with a string `rtm.sign` (or, flat, a string `sign`) 200004,
//!   and a sign other than
//!   `lowercase_hex(md5(lowercase_hex(md5(file)) + ":" + token))` 200003.
//! * Both layouts of the attrs are accepted: the nested one of Go, Java
//!   and Python (`{"rtm": {"sign", "ext", "filename"?, ...}, "custom":
//!   ...}`), kept as sent, and the flat one of the Node.js SDK (`{"sign":
//!   ..., "ext": "txt"}`), stored in the nested layout as Go would have
//!   sent it: `{"custom":"","rtm":{"ext":"txt","sign":...}}` (keys
//!   sorted; a flat `custom` key becomes `custom`). A listener or a
//!   history reader sees the same file message either way.
//! * A file that passes is stored (read it back with
//!   [`RtmEmulator::file`]) under the URL
//!   `rtmemu://files/<n>[.<ext>]`, and becomes a message through the
//!   message family (stored, and pushed to the listening connections): its
//!   `msg` is the JSON text `{"size": N, "url": "..."}` (plus `"surl"`,
//!   the same URL, for an image, mtype 40: the emulator makes no
//!   thumbnails), its `attrs` the nested text. `sendfiles` makes one P2P
//!   message per receiver, with the same `mid`. The answer is `mtime`.
//!
//! Lenient: the gate checks no group membership, room presence or
//! friendship, and no file-size limit besides the payload limit.
//!
//! ```
//! use rtm_server_sdk::emulator::RtmEmulator;
//! use rtm_server_sdk::rtm::FileOptions;
//! use rtm_server_sdk::RtmServerClient;
//!
//! let emu = RtmEmulator::start(11000001, "secret").unwrap();
//! let client = RtmServerClient::new(11000001, "secret", emu.endpoint()).unwrap();
//! let options = FileOptions { name: Some("a.txt".into()), ..Default::default() };
//! client.send_file(1, 2, b"some bytes", &options).unwrap();
//! let url = &emu.file_urls()[0];
//! assert!(url.starts_with("rtmemu://files/") && url.ends_with(".txt"));
//! assert_eq!(emu.file(url).unwrap(), b"some bytes");
//! ```

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use md5::{Digest, Md5};
use rmpv::Value;
use serde::{Deserialize, Serialize};

use super::messages::{deliver, Target};
use super::params::*;
use super::rtm::{Ctx, Family, RtmEmulator, RtmShared, RtmState};
use super::server::{lock, FpnnServer, Reply, ServerConn, ServerOptions, Service};
use crate::codes;
use crate::emulator::auth::{raw_i64_array, raw_int, raw_text, raw_values};
use crate::fpnn::codec::Quest;

/// The five commands of the file gate.
const COMMANDS: &[&str] = &[
    "sendfile",
    "sendfiles",
    "sendgroupfile",
    "sendroomfile",
    "broadcastfile",
];

/// This family's state (part of the emulator's one state).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct Files {
    /// The gate's address (set when the gate starts; not saved, since a
    /// new gate listens elsewhere).
    #[serde(skip)]
    pub gate_addr: Option<SocketAddr>,
    /// The tokens not used yet, by token.
    pub tokens: BTreeMap<String, Grant>,
    /// The stored files, oldest first.
    pub stored: Vec<StoredFile>,
}

/// What a token allows.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Grant {
    /// The step-2 command.
    pub cmd: String,
    /// The sender.
    pub from: i64,
    /// The target ids: `[to]`, `tos`, `[gid]`, `[rid]`, or none.
    pub target: Vec<i64>,
    /// When it expires, on the emulator's clock (ms).
    pub expires_ms: i64,
}

/// One stored file.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredFile {
    pub url: String,
    /// The content (saved as hex).
    #[serde(with = "hex_bytes")]
    pub bytes: Vec<u8>,
    pub from: i64,
    pub mtype: i64,
    pub mid: i64,
    /// `rtm.filename` of the attrs, if any.
    pub name: Option<String>,
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        hex::decode(text).map_err(serde::de::Error::custom)
    }
}

/// The methods of this family (on the RTM connection).
pub(crate) const FAMILY: Family = Family {
    methods: &["filetoken"],
    dispatch,
};

fn dispatch(st: &mut RtmState, cx: &mut Ctx<'_>, method: &str, p: &Value) -> R<Value> {
    match method {
        "filetoken" => file_token(st, cx.conn, p),
        _ => Err(unknown_method(method)),
    }
}

/// The target key of a command and the ids it names, read from `p`.
fn read_target(p: &Value, cmd: &str) -> R<Vec<i64>> {
    match cmd {
        "sendfile" => Ok(vec![int(p, "to")?]),
        "sendfiles" => {
            let tos = int_list(p, "tos")?;
            if tos.is_empty() {
                return Err(bad_value("tos", "a non-empty list"));
            }
            Ok(tos)
        }
        "sendgroupfile" => Ok(vec![int(p, "gid")?]),
        "sendroomfile" => Ok(vec![int(p, "rid")?]),
        "broadcastfile" => Ok(Vec::new()),
        _ => Err(bad_value("cmd", &format!("one of {}", COMMANDS.join(", ")))),
    }
}

/// The gate's endpoint for a client on `conn`: the gate's own IP, or,
/// when the gate listens on a wildcard address (`0.0.0.0`, `::`), the IP
/// the client reached the emulator on, which the client can reach again
/// (an IPv4 client of a `::` listener is told its IPv4 address).
fn gate_endpoint_for(gate: SocketAddr, conn: &ServerConn) -> String {
    let ip = if gate.ip().is_unspecified() {
        conn.local_addr().ip().to_canonical()
    } else {
        gate.ip()
    };
    SocketAddr::new(ip, gate.port()).to_string()
}

fn file_token(st: &mut RtmState, conn: &ServerConn, p: &Value) -> R<Value> {
    let from = int(p, "from")?;
    let cmd = string(p, "cmd")?;
    let target = read_target(p, &cmd)?;
    let Some(gate) = st.files.gate_addr else {
        return Err(Reply::error(
            codes::RTM_EC_UNKNOWN_ERROR,
            "the file gate is not running",
        ));
    };
    let now = st.now_ms();
    st.files.tokens.retain(|_, g| g.expires_ms > now);
    let token = new_token()?;
    let ttl = i64::try_from(RtmEmulator::FILE_TOKEN_TTL.as_millis()).unwrap_or(i64::MAX);
    st.files.tokens.insert(
        token.clone(),
        Grant {
            cmd,
            from,
            target,
            expires_ms: now.saturating_add(ttl),
        },
    );
    Ok(obj(vec![
        ("token", Value::from(token)),
        ("endpoint", Value::from(gate_endpoint_for(gate, conn))),
    ]))
}

/// A fresh token: 128 bits from the OS random source, as 32 lowercase hex
/// digits. Without OS randomness no token is given (error 200999).
fn new_token() -> R<String> {
    use rand_core::RngCore;
    let mut bytes = [0u8; 16];
    rand_core::OsRng.try_fill_bytes(&mut bytes).map_err(|e| {
        log::warn!("emulator: no file token: the OS random source failed: {e}");
        Reply::error(
            codes::RTM_EC_UNKNOWN_ERROR,
            "no file token: the OS random source failed",
        )
    })?;
    Ok(hex::encode(bytes))
}

fn invalid(why: impl Into<String>) -> Reply {
    Reply::error(codes::RTM_EC_INVALID_FILE_OR_SIGN_OR_TOKEN, why)
}

/// The one answer to every invalid token (unknown, used, expired, or
/// issued for another command, sender or target), so that a guess learns
/// nothing.
fn invalid_token() -> Reply {
    invalid(INVALID_TOKEN)
}

/// The message of [`invalid_token`].
const INVALID_TOKEN: &str = "invalid token";

/// Whether `grant` allows `method` from `from` to `target` at `now_ms`.
fn grant_allows(grant: &Grant, method: &str, from: i64, target: &[i64], now_ms: i64) -> bool {
    grant.expires_ms > now_ms && grant.cmd == method && grant.from == from && grant.target == target
}

/// The attrs of a file in the nested layout `{"rtm": {...}, "custom": ...}`
/// (Go's, Java's, Python's), as text and parsed: nested attrs are kept as
/// sent; the flat layout of the Node.js SDK, `{"sign": ..., "ext": ...}`
/// (no `rtm` object), becomes `{"custom": <its "custom", or "">, "rtm":
/// {<the other keys>}}`, with its keys sorted as Go sends them. `None`
/// when `json` is neither (not an object, or no string `sign` where the
/// layout puts it).
fn nested_attrs(text: String, json: serde_json::Value) -> Option<(String, serde_json::Value)> {
    let serde_json::Value::Object(mut top) = json else {
        return None;
    };
    if top.contains_key("rtm") {
        return Some((text, serde_json::Value::Object(top)));
    }
    top.get("sign")?.as_str()?;
    let custom = top
        .remove("custom")
        .unwrap_or_else(|| serde_json::Value::from(""));
    let mut nested = serde_json::Map::new();
    nested.insert("custom".into(), custom);
    nested.insert("rtm".into(), serde_json::Value::Object(top));
    let nested = serde_json::Value::Object(nested);
    Some((nested.to_string(), nested))
}

/// Handles one quest of the gate.
fn gate_quest(st: &mut RtmState, cx: &mut Ctx<'_>, method: &str, p: &Value) -> R<Value> {
    let pid = int(p, "pid")?;
    let token = string(p, "token")?;
    let mtype = int(p, "mtype")?;
    let from = int(p, "from")?;
    let target = read_target(p, method)?;
    let mid = int(p, "mid")?;
    let file = opt_bytes(p, "file")?.ok_or_else(|| missing("file"))?;
    let attrs = string(p, "attrs")?;
    if pid != cx.pid {
        return Err(Reply::error(
            codes::RTM_EC_INVALID_PID_OR_SIGN,
            "invalid pid",
        ));
    }
    // Checked by the gate's `admit` already; checked again in case another
    // quest used it meanwhile. The token is used up here, whatever follows.
    let now = st.now_ms();
    match st.files.tokens.get(&token) {
        Some(grant) if grant_allows(grant, method, from, &target, now) => {
            st.files.tokens.remove(&token);
        }
        _ => return Err(invalid_token()),
    }
    if !(40..=50).contains(&mtype) {
        return Err(Reply::error(
            codes::RTM_EC_INVALID_FILE_MTYPE,
            "a file's mtype is 40..=50",
        ));
    }
    if file.is_empty() {
        return Err(invalid("empty file"));
    }
    let without_sign = || {
        Reply::error(
            codes::RTM_EC_ATTRS_WITHOUT_SIGN_OR_EXT,
            "attrs must be a JSON object with rtm.sign",
        )
    };
    let json: serde_json::Value = serde_json::from_str(&attrs).map_err(|_| without_sign())?;
    let (attrs, json) = nested_attrs(attrs, json).ok_or_else(without_sign)?;
    let rtm = json.get("rtm").ok_or_else(without_sign)?;
    let sign = rtm
        .get("sign")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(without_sign)?;
    let content_md5 = hex::encode(Md5::digest(&file));
    let expected = hex::encode(Md5::digest(format!("{content_md5}:{token}")));
    if sign != expected {
        return Err(invalid("invalid sign"));
    }
    let name = rtm
        .get("filename")
        .and_then(serde_json::Value::as_str)
        .map(str::to_string);
    let ext = rtm
        .get("ext")
        .and_then(serde_json::Value::as_str)
        .filter(|e| !e.is_empty() && e.chars().all(|c| c.is_ascii_alphanumeric()));
    let mut url = format!("rtmemu://files/{}", st.files.stored.len() + 1);
    if let Some(ext) = ext {
        url = format!("{url}.{ext}");
    }
    let mut msg = BTreeMap::new();
    msg.insert("url", serde_json::Value::from(url.as_str()));
    msg.insert("size", serde_json::Value::from(file.len()));
    if mtype == 40 {
        msg.insert("surl", serde_json::Value::from(url.as_str()));
    }
    let msg = serde_json::to_string(&msg).unwrap_or_default();
    st.files.stored.push(StoredFile {
        url,
        bytes: file,
        from,
        mtype,
        mid,
        name,
    });
    let targets: Vec<Target> = match method {
        "sendfile" | "sendfiles" => target.iter().map(|&to| Target::P2p(to)).collect(),
        "sendgroupfile" => vec![Target::Group(target[0])],
        "sendroomfile" => vec![Target::Room(target[0])],
        _ => vec![Target::Broadcast],
    };
    let mut mtime = 0;
    for t in targets {
        mtime = deliver(
            st,
            cx,
            t,
            from,
            mtype,
            mid,
            Value::from(msg.as_str()),
            attrs.clone(),
        );
    }
    Ok(obj(vec![("mtime", Value::from(mtime))]))
}

/// The file gate's service: the five commands, unsigned, each checked on
/// its raw payload first (method, the keys that name the token's use, the
/// token).
struct GateService {
    shared: Arc<RtmShared>,
    /// How many invalid tokens each open connection presented.
    bad_tokens: Mutex<HashMap<u64, u32>>,
}

impl GateService {
    /// Checks a gate quest before it is decoded: the method, `pid`, `token`,
    /// `from` and the target key (present, of the right type), then the
    /// pid and the token (it must exist, be unexpired and have been issued
    /// for this command, sender and target; it is not used up yet).
    fn check(&self, method: &str, payload: &[u8]) -> R<()> {
        if !COMMANDS.contains(&method) {
            return Err(unknown_method(method));
        }
        let target_key = match method {
            "sendfile" => "to",
            "sendfiles" => "tos",
            "sendgroupfile" => "gid",
            "sendroomfile" => "rid",
            _ => "",
        };
        let [pid, token, from, target] = raw_values(payload, ["pid", "token", "from", target_key]);
        let int = |v: Option<&[u8]>, key: &str| -> R<i64> {
            let v = v.ok_or_else(|| missing(key))?;
            raw_int(v)
                .and_then(|n| i64::try_from(n).ok())
                .ok_or_else(|| wrong_type(key, "an int"))
        };
        let pid = int(pid, "pid")?;
        let token = token.ok_or_else(|| missing("token"))?;
        let token = raw_text(token).ok_or_else(|| wrong_type("token", "a string"))?;
        let token =
            std::str::from_utf8(token).map_err(|_| wrong_type("token", "a UTF-8 string"))?;
        let from = int(from, "from")?;
        if pid != self.shared.pid {
            return Err(Reply::error(
                codes::RTM_EC_INVALID_PID_OR_SIGN,
                "invalid pid",
            ));
        }
        // The target, checked before the state is locked: `[to]`, `tos`,
        // `[gid]`, `[rid]`, or none.
        enum Target<I> {
            One(i64),
            List(I),
            None,
        }
        let target = match (method, target) {
            (_, None) if !target_key.is_empty() => return Err(missing(target_key)),
            ("sendfiles", Some(tos)) => {
                let tos =
                    raw_i64_array(tos).ok_or_else(|| wrong_type("tos", "an array of ints"))?;
                let mut tos = tos.peekable();
                if tos.peek().is_none() {
                    return Err(bad_value("tos", "a non-empty list"));
                }
                Target::List(tos)
            }
            (_, Some(id)) => Target::One(int(Some(id), target_key)?),
            (_, None) => Target::None,
        };
        let st = lock(&self.shared.state);
        let now = st.now_ms();
        let Some(grant) = st.files.tokens.get(token) else {
            return Err(invalid_token());
        };
        let allowed = match target {
            Target::List(tos) => {
                grant_allows(grant, method, from, &grant.target, now)
                    && tos.eq(grant.target.iter().copied())
            }
            Target::One(id) => grant_allows(grant, method, from, &[id], now),
            Target::None => grant_allows(grant, method, from, &[], now),
        };
        if allowed {
            Ok(())
        } else {
            Err(invalid_token())
        }
    }
}

impl Service for GateService {
    /// Refuses, before decoding, a quest to another method (20004), with a
    /// missing or mistyped `pid`, `token`, `from` or target key, another
    /// pid (200002), or an invalid token (200003, the one answer for every
    /// invalid token). The [`RtmEmulator::MAX_BAD_FILE_TOKENS`]-th invalid token of a
    /// connection closes it instead of an answer.
    fn admit(&self, conn: &ServerConn, method: &str, payload: &[u8]) -> Result<(), Reply> {
        let started = std::time::Instant::now();
        let Err(refusal) = self.check(method, payload) else {
            return Ok(());
        };
        let reply = match &refusal {
            Reply::Error { message, .. } if message == INVALID_TOKEN => {
                let mut bad = lock(&self.bad_tokens);
                let n = bad.entry(conn.id()).or_insert(0);
                *n += 1;
                if *n >= RtmEmulator::MAX_BAD_FILE_TOKENS {
                    log::debug!(
                        "emulator file gate: closing connection {} on its invalid token {n}",
                        conn.id()
                    );
                    Reply::Close
                } else {
                    refusal
                }
            }
            _ => refusal,
        };
        log::debug!("emulator file gate: `{method}` refused: {reply:?}");
        if COMMANDS.contains(&method) {
            self.shared.report_refused(
                conn,
                method,
                payload,
                &reply,
                started,
                Duration::ZERO,
                true,
            );
        }
        Err(reply)
    }

    fn on_quest(&self, conn: &ServerConn, quest: &Quest) -> Reply {
        let method = quest.method.as_str();
        let started = std::time::Instant::now();
        let mut cx = Ctx::new(conn, self.shared.pid);
        let result = {
            let mut st = lock(&self.shared.state);
            gate_quest(&mut st, &mut cx, method, &quest.payload)
        };
        self.shared.send_outbox(std::mem::take(&mut cx.outbox));
        let reply = match result {
            Ok(v) => Reply::Answer(v),
            Err(r) => {
                log::debug!("emulator file gate: `{method}` failed: {r:?}");
                r
            }
        };
        self.shared.report_quest(
            conn,
            method,
            &quest.payload,
            &reply,
            started,
            Duration::ZERO,
            true,
        );
        reply
    }

    fn on_disconnect(&self, conn: &ServerConn) {
        lock(&self.bad_tokens).remove(&conn.id());
    }
}

/// Starts the file gate of an emulator and records its endpoint.
/// The gate listens on a free port of `ip`, the IP of the emulator's
/// own listener.
pub(crate) fn start_gate(
    shared: Arc<RtmShared>,
    max_payload: usize,
    ip: IpAddr,
) -> std::io::Result<FpnnServer> {
    let service = GateService {
        shared: shared.clone(),
        bad_tokens: Mutex::new(HashMap::new()),
    };
    let gate = FpnnServer::start(
        service,
        ServerOptions::new()
            .addr(SocketAddr::new(ip, 0))
            .max_payload(max_payload),
    )?;
    lock(&shared.state).files.gate_addr = Some(gate.local_addr());
    Ok(gate)
}

impl RtmEmulator {
    /// How long a file token stays valid, on the emulator's clock (see
    /// [`advance_clock`](RtmEmulator::advance_clock)): 5 minutes.
    pub const FILE_TOKEN_TTL: Duration = Duration::from_secs(300);

    /// How many invalid tokens one connection to the file gate may present:
    /// the gate answers the first ones 200003 and closes the connection on
    /// this one, without answering it (a guesser gets two answered guesses
    /// per connection, and learns nothing from them).
    pub const MAX_BAD_FILE_TOKENS: u32 = 3;

    /// The endpoint of the file gate (`"127.0.0.1:PORT"` by default), which
    /// `filetoken` answers. The gate listens on the IP of the emulator; for
    /// a wildcard address this is the loopback endpoint, and `filetoken`
    /// answers each client the IP its connection arrived on.
    ///
    /// The gate is a second, never encrypted listener of this emulator,
    /// started and stopped with it. It takes the five step-2 commands
    /// unsigned, and refuses with 200003
    /// (`RTM_EC_INVALID_FILE_OR_SIGN_OR_TOKEN`, message `invalid token`
    /// in every case) a token that is unknown, already used (a token is
    /// used up by its first step-2 quest with the right command, sender and
    /// target, whatever follows), older than
    /// [`FILE_TOKEN_TTL`](Self::FILE_TOKEN_TTL), or issued for another
    /// command, sender or target; the
    /// [`MAX_BAD_FILE_TOKENS`](Self::MAX_BAD_FILE_TOKENS)-th such token on
    /// one connection closes it. A wrong `rtm.sign` in the attrs is 200003
    /// too (missing: 200004; an mtype outside 40..=50: 200007). A file it
    /// takes is stored ([`file`](Self::file)) and becomes a file message,
    /// stored and pushed to the listeners like any message, with `msg` the
    /// JSON `{"size", "url", "surl"?}` (`surl` for images) and the attrs in
    /// the nested layout (the flat attrs of the Node.js SDK are nested;
    /// see the [family's page](crate::emulator::families::files)).
    pub fn file_gate_endpoint(&self) -> String {
        self.file_gate.endpoint()
    }

    /// The file gate's server (its connections, faults and received
    /// quests).
    pub fn file_gate(&self) -> &FpnnServer {
        &self.file_gate
    }

    /// The content of the stored file at `url` (the `url` of its file
    /// message).
    pub fn file(&self, url: &str) -> Option<Vec<u8>> {
        lock(&self.shared.state)
            .files
            .stored
            .iter()
            .find(|f| f.url == url)
            .map(|f| f.bytes.clone())
    }

    /// The URLs of the stored files, oldest first.
    pub fn file_urls(&self) -> Vec<String> {
        lock(&self.shared.state)
            .files
            .stored
            .iter()
            .map(|f| f.url.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emulator_sign_matches_the_worked_values() {
        let sign = |content: &[u8], token: &str| {
            let md5 = hex::encode(Md5::digest(content));
            hex::encode(Md5::digest(format!("{md5}:{token}")))
        };
        assert_eq!(sign(b"hello", "abc"), "1f3290000afa62d7f5c8daa9864bed20");
        assert_eq!(sign(b"hello", "tok"), "95eb30a7fab2897cb0c174f93e8e0db7");
    }

    #[test]
    fn a_sent_file_is_a_stored_message_with_its_url_size_and_name() {
        use crate::rtm::FileOptions;
        let emu = RtmEmulator::start(5, "s").unwrap();
        let client = crate::RtmServerClient::new(5, "s", emu.endpoint()).unwrap();
        let options = FileOptions {
            name: Some("a.txt".into()),
            attrs: r#"{"k":1}"#.into(),
            ..FileOptions::default()
        };
        let mtime = client
            .send_group_file(3, 9, b"hello", &options)
            .unwrap()
            .mtime;
        client.send_files(3, &[4, 6], b"to two", &options).unwrap();
        let st = lock(&emu.shared.state);
        let log = st.messages.to_vec();
        assert_eq!(log.len(), 3);
        let m = &log[0];
        assert_eq!(
            (m.target, m.from, m.mtype, m.mtime),
            (Target::Group(9), 3, 50, mtime)
        );
        let msg: serde_json::Value = serde_json::from_str(m.msg.as_str().unwrap()).unwrap();
        let file = &st.files.stored[0];
        assert_eq!(msg["url"], file.url.as_str());
        assert_eq!(msg["size"], 5);
        assert_eq!(file.bytes, b"hello");
        assert_eq!(file.name.as_deref(), Some("a"));
        let attrs: serde_json::Value = serde_json::from_str(&m.attrs).unwrap();
        assert_eq!(attrs["rtm"]["filename"], "a");
        assert_eq!(attrs["custom"]["k"], 1);
        // `sendfiles`: one P2P message per receiver, one stored file.
        assert_eq!(
            (log[1].target, log[2].target),
            (Target::P2p(4), Target::P2p(6))
        );
        assert_eq!(log[1].mid, log[2].mid);
        assert_eq!(log[1].msg, log[2].msg);
        assert_eq!(st.files.stored.len(), 2);
        assert_eq!(file.mid, m.mid);
    }

    #[test]
    fn state_round_trips_through_json() {
        let mut files = Files {
            gate_addr: Some(SocketAddr::from(([127, 0, 0, 1], 1))),
            ..Files::default()
        };
        files.tokens.insert(
            "t".into(),
            Grant {
                cmd: "sendfiles".into(),
                from: 1,
                target: vec![2, 3],
                expires_ms: 9,
            },
        );
        files.stored.push(StoredFile {
            url: "rtmemu://files/1".into(),
            bytes: vec![0, 1, 255],
            from: 1,
            mtype: 50,
            mid: 7,
            name: Some("a".into()),
        });
        let text = serde_json::to_string(&files).unwrap();
        assert!(text.contains("\"0001ff\""), "{text}");
        let back: Files = serde_json::from_str(&text).unwrap();
        assert_eq!(back.tokens, files.tokens);
        assert_eq!(back.stored, files.stored);
        assert!(back.gate_addr.is_none());
    }

    /// `filetoken`'s endpoint from a raw client on `endpoint`.
    fn token_endpoint(endpoint: &str) -> String {
        use crate::emulator::testutil::{call, RawClient};
        let mut c = RawClient::connect(endpoint);
        let p = vec![
            ("from", 1.into()),
            ("cmd", "sendfile".into()),
            ("to", 2.into()),
        ];
        let answer = call(&mut c, "filetoken", p).unwrap();
        crate::fpnn::codec::map_get(&answer, "endpoint")
            .and_then(Value::as_str)
            .expect("an endpoint")
            .to_string()
    }

    #[test]
    fn the_gate_listens_on_the_ip_of_the_emulator() {
        use crate::emulator::testutil::{PID, SECRET};
        let start = |addr: &str| {
            let options = ServerOptions::new().addr(addr.parse().unwrap());
            RtmEmulator::start_with(PID, SECRET, options).unwrap()
        };
        // The default, 127.0.0.1: the gate too.
        let emu = start("127.0.0.1:0");
        let gate = emu.file_gate().local_addr();
        assert_eq!(gate.ip(), emu.local_addr().ip());
        assert_eq!(token_endpoint(&emu.endpoint()), gate.to_string());
        // A wildcard: the gate listens on every interface too, and
        // `filetoken` answers the IP each client came in on.
        let emu = start("0.0.0.0:0");
        let gate = emu.file_gate().local_addr();
        assert!(gate.ip().is_unspecified(), "{gate}");
        let port = gate.port();
        let on_loopback = format!("127.0.0.1:{}", emu.local_addr().port());
        assert_eq!(token_endpoint(&on_loopback), format!("127.0.0.1:{port}"));
        assert_eq!(emu.file_gate_endpoint(), format!("127.0.0.1:{port}"));
        // An IPv6 wildcard (where the machine has IPv6): an IPv4 client is
        // told its IPv4 address, an IPv6 client its IPv6 one.
        let v6 = ServerOptions::new().addr("[::]:0".parse().unwrap());
        if let Ok(emu) = RtmEmulator::start_with(PID, SECRET, v6) {
            let (port, gate) = (emu.local_addr().port(), emu.file_gate().local_addr());
            assert!(gate.ip().is_unspecified() && gate.is_ipv6(), "{gate}");
            let gate = gate.port();
            let answer = token_endpoint(&format!("127.0.0.1:{port}"));
            assert_eq!(answer, format!("127.0.0.1:{gate}"));
            if std::net::TcpStream::connect(("::1", port)).is_ok() {
                assert_eq!(
                    token_endpoint(&format!("[::1]:{port}")),
                    format!("[::1]:{gate}")
                );
            }
        }
        // Linux routes all of 127/8 to the loopback interface: a client
        // that dials 127.0.0.2 is told 127.0.0.2, and a gate of an emulator
        // on 127.0.0.2 listens there.
        #[cfg(target_os = "linux")]
        {
            let on_other = format!("127.0.0.2:{}", emu.local_addr().port());
            assert_eq!(token_endpoint(&on_other), format!("127.0.0.2:{port}"));
            let emu = start("127.0.0.2:0");
            let gate = emu.file_gate().local_addr();
            assert_eq!(gate.ip().to_string(), "127.0.0.2");
            assert_eq!(token_endpoint(&emu.endpoint()), gate.to_string());
        }
    }
}
