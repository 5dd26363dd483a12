//! The RTM emulator: an [`FpnnServer`] that authenticates quests like the
//! RTM gateway and implements the voice-room, RTC-room and listen APIs
//! (PROTOCOL.md sections 5, 6 and 7.2) in memory.
//!
//! # Behaviour
//!
//! * Every quest except `*ping` and `*key` must carry `pid` (the emulator's
//!   project id), `salt`, `ts` (ints) and `sign` (str), with
//!   `sign == UPPERCASE_HEX(MD5("<pid>:<secret>:<salt>:<method>:<ts>"))`;
//!   otherwise the answer is error 200002 (`RTM_EC_INVALID_PID_OR_SIGN`).
//!   A `(salt, sign)` pair seen before (among the last 10,000, [`SEEN_SIGNS_CAPACITY`]) gives 200006
//!   (`RTM_EC_SAME_SIGN`). `ts` (seconds) is not compared with the clock
//!   unless a window is set ([`RtmEmulator::set_max_clock_skew`],
//!   [`EmulatorOptions::max_clock_skew`]; the standalone program sets one
//!   hour by default): outside it the answer is 200008
//!   (`RTM_EC_INVALID_SERVER_TIME`).
//! * An unknown method gives 20004 (checked before the signature), a missing
//!   parameter 10009 and a parameter of the wrong type 10010 (the message
//!   names the key). Ids are any msgpack int that fits an `i64`.
//! * Voice rooms and RTC rooms are two independent namespaces.
//!   `pullInto*Room` creates a missing room; the first user pulled into a new
//!   room becomes its owner (and, for voice rooms, its manager). Invited
//!   users are only recorded as invited (a real invitation needs the
//!   client's acceptance); pulling them makes them members. A room stays
//!   when its last member is kicked out; only `close*Room` removes it.
//!   Every method on a missing room, and an inviter, kicked user or
//!   `adminCommand` target that is not a member, gives 200040
//!   (`RTM_EC_NOT_IN_ROOM`).
//! * The listen state (`addlisten`, `removelisten`, `setlisten`) is kept per
//!   connection and forgotten when the connection closes.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmpv::Value;

use super::params::*;
use super::server::{lock, FpnnServer, Reply, ServerConn, ServerOptions, Service};
use crate::codes;
use crate::error::Error;
use crate::fpnn::codec::Quest;
use crate::fpnn::crypto::{CipherMode, KeyBits};

/// How many `(salt, sign)` pairs the emulator remembers for the same-sign
/// check (the most recent ones). Kept modest so that a long test run
/// reaches a steady memory footprint early.
pub const SEEN_SIGNS_CAPACITY: usize = 10_000;

/// The methods the emulator implements (besides `*ping` and `*key`).
pub const METHODS: &[&str] = &[
    "pullIntoVoiceRoom",
    "inviteUserIntoVoiceRoom",
    "kickoutFromVoiceRoom",
    "closeVoiceRoom",
    "getVoiceRoomList",
    "getVoiceRoomMembers",
    "getVoiceRoomMemberCount",
    "setVoiceRoomMicStatus",
    "pullIntoRTCRoom",
    "inviteUserIntoRTCRoom",
    "kickoutFromRTCRoom",
    "closeRTCRoom",
    "getRTCRoomList",
    "getRTCRoomMembers",
    "getRTCRoomMemberCount",
    "setRTCRoomMicStatus",
    "adminCommand",
    "addlisten",
    "removelisten",
    "setlisten",
];

/// A voice room (PROTOCOL.md 6.1), as seen by [`RtmEmulator::rooms`].
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct VoiceRoom {
    /// The room id.
    pub rid: i64,
    /// The members.
    pub members: BTreeSet<i64>,
    /// The managers (the first user pulled into the new room).
    pub managers: BTreeSet<i64>,
    /// The first user pulled into the new room, if any (kept after it
    /// leaves).
    pub owner: Option<i64>,
    /// Users invited and not (yet) pulled in.
    pub invited: BTreeSet<i64>,
    /// The last `setVoiceRoomMicStatus`, if any.
    pub mic_status: Option<bool>,
}

/// The per-user switches set by `adminCommand` 2..=7 in an RTC room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct UserFlags {
    /// Set by command 2 (forbid sending audio), cleared by 3.
    pub audio_forbidden: bool,
    /// Set by command 4 (forbid sending video), cleared by 5.
    pub video_forbidden: bool,
    /// Set by command 6 (close the user's microphone).
    pub mic_closed: bool,
    /// Set by command 7 (close the user's camera).
    pub camera_closed: bool,
}

/// An RTC room (PROTOCOL.md 6.2), as seen by [`RtmEmulator::rooms`].
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct RtcRoom {
    /// The room id.
    pub rid: i64,
    /// The members.
    pub members: BTreeSet<i64>,
    /// The administrators (appointed with `adminCommand` 0).
    pub administrators: BTreeSet<i64>,
    /// The first user pulled into the new room, if any (kept after it
    /// leaves); answered as `owner` (left out when none).
    pub owner: Option<i64>,
    /// Users invited and not (yet) pulled in.
    pub invited: BTreeSet<i64>,
    /// The last `setRTCRoomMicStatus`, if any.
    pub mic_status: Option<bool>,
    /// `type` of the latest `pullIntoRTCRoom` (1 voice, 2 video).
    pub room_type: i64,
    /// `voiceRange` of the latest `pullIntoRTCRoom`, if it had one.
    pub voice_range: Option<i64>,
    /// `maxReceiveStreams` of the latest `pullIntoRTCRoom`, if it had one.
    pub max_receive_streams: Option<i64>,
    /// Per-user switches set by `adminCommand` 2..=7 (users never commanded
    /// are absent).
    pub user_flags: BTreeMap<i64, UserFlags>,
}

/// A snapshot of every room of an [`RtmEmulator`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Rooms {
    /// Voice rooms by id.
    pub voice: BTreeMap<i64, VoiceRoom>,
    /// RTC rooms by id.
    pub rtc: BTreeMap<i64, RtcRoom>,
}

/// The listen state of one connection (PROTOCOL.md 7.2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ListenState {
    /// The connection ([`ServerConn::id`]).
    pub conn_id: u64,
    /// Group ids listened to.
    pub gids: BTreeSet<i64>,
    /// Room ids listened to.
    pub rids: BTreeSet<i64>,
    /// User ids listened to.
    pub uids: BTreeSet<i64>,
    /// Event names listened to.
    pub events: BTreeSet<String>,
    /// `setlisten {group}`: all groups.
    pub group: bool,
    /// `setlisten {room}`: all rooms.
    pub room: bool,
    /// `setlisten {p2p}`: all peer-to-peer messages.
    pub p2p: bool,
    /// `setlisten {ev}`: all events.
    pub ev: bool,
}

/// The whole state of an emulator, behind one lock. Each API family keeps
/// its part in a field of its own, defined in its own file.
///
/// The state file of the standalone emulator is this struct as JSON
/// (`super::persist`), without the per-connection and anti-replay parts
/// (`#[serde(skip)]`): a new field must be serializable or skipped.
/// Missing fields load as their defaults, so older state files still load.
#[derive(Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
#[allow(dead_code)] // families fill in their parts
pub(crate) struct RtmState {
    voice: BTreeMap<i64, VoiceRoom>,
    rtc: BTreeMap<i64, RtcRoom>,
    #[serde(skip)]
    pub(crate) seen: HashSet<(String, String)>,
    #[serde(skip)]
    pub(crate) seen_order: VecDeque<(String, String)>,
    #[serde(skip)]
    pub(crate) listen: HashMap<u64, ListenState>,
    /// Added to the real clock (see [`RtmEmulator::advance_clock`]).
    clock_offset_ms: i64,
    pub(crate) users: super::users::Users,
    pub(crate) relations: super::relations::Relations,
    pub(crate) data: super::data::Data,
    pub(crate) groups: super::groups::Groups,
    pub(crate) rooms: super::rooms::RoomsState,
    pub(crate) devices: super::devices::Devices,
    pub(crate) im: super::imserver::ImServer,
    pub(crate) messages: super::messages::Messages,
    pub(crate) moderation: super::moderation::Moderation,
    pub(crate) files: super::files::Files,
}

impl RtmState {
    /// The emulator's clock in milliseconds since the Unix epoch (the real
    /// clock plus whatever [`RtmEmulator::advance_clock`] added).
    pub(crate) fn now_ms(&self) -> i64 {
        super::server::now_ms().saturating_add(self.clock_offset_ms)
    }

    /// The emulator's clock in seconds.
    #[allow(dead_code)]
    pub(crate) fn now_s(&self) -> i64 {
        self.now_ms() / 1000
    }
}

/// What a handler may need besides the state: the connection the quest
/// came on, and an outbox of pushes sent once the state lock is released.
#[allow(dead_code)]
pub(crate) struct Ctx<'a> {
    /// The connection of the quest.
    pub conn: &'a ServerConn,
    /// The pid of the emulator.
    pub pid: i64,
    /// Pushes to send after the quest was handled: (connection id, method,
    /// payload). Each is sent as a two-way quest from a helper thread.
    pub outbox: Vec<(u64, &'static str, Value)>,
}

impl<'a> Ctx<'a> {
    /// The context of a quest on `conn`, with an empty outbox.
    pub(crate) fn new(conn: &'a ServerConn, pid: i64) -> Ctx<'a> {
        Ctx {
            conn,
            pid,
            outbox: Vec::new(),
        }
    }
}

/// One API family of the emulator: its methods and its handler.
pub(crate) struct Family {
    pub methods: &'static [&'static str],
    pub dispatch: fn(&mut RtmState, &mut Ctx<'_>, &str, &Value) -> R<Value>,
}

/// Every family besides the rooms and listen (handled in this file).
const FAMILIES: &[&Family] = &[
    &super::users::FAMILY,
    &super::relations::FAMILY,
    &super::data::FAMILY,
    &super::groups::FAMILY,
    &super::rooms::FAMILY,
    &super::devices::FAMILY,
    &super::imserver::FAMILY,
    &super::messages::FAMILY,
    &super::moderation::FAMILY,
    &super::files::FAMILY,
];

fn family_of(method: &str) -> Option<&'static Family> {
    FAMILIES
        .iter()
        .copied()
        .find(|f| f.methods.contains(&method))
}

/// Every method the emulator implements (besides `*ping` and `*key`).
pub fn implemented_methods() -> Vec<&'static str> {
    let mut all = METHODS.to_vec();
    for f in FAMILIES {
        all.extend_from_slice(f.methods);
    }
    all
}

pub(crate) struct RtmShared {
    pub(crate) pid: i64,
    secret: String,
    pub(crate) state: Mutex<RtmState>,
    /// The open connections, by id (for pushes to listeners).
    pub(crate) conns: Mutex<HashMap<u64, ServerConn>>,
    /// The RTM fault switches.
    faults: EmulatorFaults,
    /// Called after each RTM quest (see [`RtmEmulator::set_quest_observer`]).
    observer: Mutex<Option<QuestObserver>>,
    /// Called when a connection opens or closes.
    connection_observer: Mutex<Option<ConnectionObserver>>,
    /// The `ts` window in milliseconds; `u64::MAX`: not checked.
    max_clock_skew_ms: AtomicU64,
    /// How many RTM quests each open connection sent (for
    /// [`EmulatorFaults::set_drop_after`]).
    quest_counts: Mutex<HashMap<u64, u64>>,
    /// The pushes waiting for each connection; a connection has an entry
    /// while its push thread runs (see `send_outbox`).
    push_queues: Mutex<HashMap<u64, VecDeque<(&'static str, Value)>>>,
}

// ---------------------------------------------------------------------------
// Options, faults and the quest observer
// ---------------------------------------------------------------------------

/// Called by the emulator after each RTM quest, on the connection's thread
/// (keep it short). See [`RtmEmulator::set_quest_observer`].
pub type QuestObserver = Arc<dyn Fn(&QuestRecord) + Send + Sync>;

/// Called by the emulator when a connection opens or closes, on the
/// connection's thread. See [`RtmEmulator::set_connection_observer`].
pub type ConnectionObserver = Arc<dyn Fn(&ConnectionEvent) + Send + Sync>;

/// A connection opening or closing, given to the connection observer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionEvent {
    /// A client connected (before any handshake).
    Opened {
        /// The connection ([`ServerConn::id`]).
        conn_id: u64,
        /// The client's address.
        peer: SocketAddr,
    },
    /// The connection's `*key` handshake succeeded: what follows is
    /// encrypted.
    Encrypted {
        /// The connection ([`ServerConn::id`]).
        conn_id: u64,
        /// The client's address.
        peer: SocketAddr,
        /// The cipher mode the client chose.
        mode: CipherMode,
        /// The AES key size the client chose.
        bits: KeyBits,
    },
    /// The connection ended.
    Closed {
        /// The connection ([`ServerConn::id`]).
        conn_id: u64,
        /// The client's address.
        peer: SocketAddr,
        /// Why the emulator closed it (a frame it could not decode, a
        /// refused `*key` handshake, ...; see [`ServerConn::close_reason`]),
        /// or `None` when the client closed it.
        reason: Option<String>,
    },
}

/// How an RTM emulator starts (see [`RtmEmulator::start_with_options`]).
///
/// ```
/// use std::time::Duration;
/// use rtm_server_sdk::emulator::{EmulatorOptions, RtmEmulator};
///
/// let options = EmulatorOptions::new().max_clock_skew(Duration::from_secs(600));
/// options.faults.set_delay("getVoiceRoomList", Duration::from_millis(50));
/// let emu = RtmEmulator::start_with_options(11000001, "secret", options).unwrap();
/// assert_eq!(emu.max_clock_skew(), Some(Duration::from_secs(600)));
/// ```
#[derive(Default)]
#[non_exhaustive]
pub struct EmulatorOptions {
    /// Where and how the underlying server listens (address, encryption,
    /// payload limit).
    pub server: ServerOptions,
    /// How far a quest's `ts` may be from the emulator's clock; `None`
    /// (the default): `ts` is not compared with the clock.
    pub max_clock_skew: Option<Duration>,
    /// The RTM fault switches in force from the start (changeable later
    /// through [`RtmEmulator::faults`]).
    pub faults: EmulatorFaults,
    /// Called after each RTM quest.
    pub observer: Option<QuestObserver>,
    /// Called when a connection opens or closes.
    pub connection_observer: Option<ConnectionObserver>,
    /// A state to start from, as written by [`RtmEmulator::state_json`]
    /// (or saved by [`RtmEmulator::save_state`]).
    pub state_json: Option<String>,
}

impl fmt::Debug for EmulatorOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmulatorOptions")
            .field("server", &self.server)
            .field("max_clock_skew", &self.max_clock_skew)
            .field("faults", &self.faults)
            .field("observer", &self.observer.is_some())
            .field("connection_observer", &self.connection_observer.is_some())
            .field("state_json", &self.state_json.as_ref().map(String::len))
            .finish()
    }
}

impl EmulatorOptions {
    /// The defaults: a free port of `127.0.0.1`, no encryption, `ts` not
    /// checked, no faults, no observer, an empty state.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the server options.
    #[must_use]
    pub fn server(mut self, server: ServerOptions) -> Self {
        self.server = server;
        self
    }

    /// Answers 200008 (`RTM_EC_INVALID_SERVER_TIME`) to a quest whose `ts`
    /// is more than `skew` away from the emulator's clock.
    #[must_use]
    pub fn max_clock_skew(mut self, skew: Duration) -> Self {
        self.max_clock_skew = Some(skew);
        self
    }

    /// Calls `observer` after each RTM quest.
    #[must_use]
    pub fn observer(mut self, observer: impl Fn(&QuestRecord) + Send + Sync + 'static) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }

    /// Calls `observer` when a connection opens or closes.
    #[must_use]
    pub fn connection_observer(
        mut self,
        observer: impl Fn(&ConnectionEvent) + Send + Sync + 'static,
    ) -> Self {
        self.connection_observer = Some(Arc::new(observer));
        self
    }

    /// Starts from this state (JSON from [`RtmEmulator::state_json`]).
    #[must_use]
    pub fn state_json(mut self, json: impl Into<String>) -> Self {
        self.state_json = Some(json.into());
        self
    }
}

/// The RTM-level fault switches of an [`RtmEmulator`], all off by default
/// and changeable while it runs (from any thread). They apply to RTM quests
/// only, not to the FPNN built-ins `*ping` and `*key`; the connection-level
/// switches (refusing connections, freezing, dropping every n-th quest
/// server-wide) are the server's [`Faults`](super::Faults), reached through
/// [`RtmEmulator::server`].
#[derive(Debug, Default)]
pub struct EmulatorFaults {
    /// Answer delays by method (`"*"`: every method).
    delays: Mutex<HashMap<String, Duration>>,
    /// Injected error codes by method (`"*"`: every method).
    fails: Mutex<HashMap<String, i64>>,
    /// Close a connection when it sends more quests than this; 0: off.
    drop_after: AtomicU64,
    /// Whether `delays` / `fails` may hold anything (a lock-free fast path
    /// for the usual case of no faults).
    any_delay: AtomicBool,
    any_fail: AtomicBool,
}

impl EmulatorFaults {
    /// Delays the answers to `method` (`"*"`: every method) by `delay`.
    /// A method's own delay wins over the `"*"` one, so
    /// `Duration::ZERO` for a method exempts it from a `"*"` delay. The
    /// quest is handled at once and only its answer waits (on the server's
    /// timer thread): the connection keeps reading and other quests, on
    /// this connection or another, are answered meanwhile.
    pub fn set_delay(&self, method: &str, delay: Duration) {
        lock(&self.delays).insert(method.to_string(), delay);
        self.any_delay.store(true, Ordering::SeqCst);
    }

    /// Removes the delay set for `method` (or `"*"`).
    pub fn clear_delay(&self, method: &str) {
        lock(&self.delays).remove(method);
    }

    /// The delay in force for `method` (zero: none).
    pub fn delay_for(&self, method: &str) -> Duration {
        if !self.any_delay.load(Ordering::SeqCst) {
            return Duration::ZERO;
        }
        let delays = lock(&self.delays);
        delays
            .get(method)
            .or_else(|| delays.get("*"))
            .copied()
            .unwrap_or_default()
    }

    /// Answers `method` (`"*"`: every method) with the error `code`,
    /// without running it, after the quest passed authentication (a bad
    /// signature still gets 200002). A method's own code wins over the
    /// `"*"` one.
    pub fn set_fail(&self, method: &str, code: i64) {
        lock(&self.fails).insert(method.to_string(), code);
        self.any_fail.store(true, Ordering::SeqCst);
    }

    /// Removes the failure set for `method` (or `"*"`).
    pub fn clear_fail(&self, method: &str) {
        lock(&self.fails).remove(method);
    }

    /// The error code injected for `method`, if any.
    pub fn fail_for(&self, method: &str) -> Option<i64> {
        if !self.any_fail.load(Ordering::SeqCst) {
            return None;
        }
        let fails = lock(&self.fails);
        fails.get(method).or_else(|| fails.get("*")).copied()
    }

    /// Serves `n` RTM quests per connection, then closes the connection
    /// when it sends the next one, without answering it (the client sees
    /// its connection close with a quest in flight). Each new connection
    /// gets `n` quests again; quests are counted while the setting is on.
    /// 0 (the default) turns it off.
    pub fn set_drop_after(&self, n: u64) {
        self.drop_after.store(n, Ordering::SeqCst);
    }

    /// The current `drop_after` setting (0: off).
    pub fn drop_after(&self) -> u64 {
        self.drop_after.load(Ordering::SeqCst)
    }

    /// Turns every RTM fault off.
    pub fn clear(&self) {
        let mut delays = lock(&self.delays);
        delays.clear();
        self.any_delay.store(false, Ordering::SeqCst);
        drop(delays);
        let mut fails = lock(&self.fails);
        fails.clear();
        self.any_fail.store(false, Ordering::SeqCst);
        drop(fails);
        self.set_drop_after(0);
    }
}

/// How the emulator answered a quest (see [`QuestRecord`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum QuestOutcome {
    /// An OK answer.
    Ok,
    /// An exception answer.
    Error {
        /// The error code.
        code: i64,
        /// The message (`ex`).
        message: String,
    },
    /// No answer: the connection was closed
    /// ([`EmulatorFaults::set_drop_after`]).
    Closed,
}

impl QuestOutcome {
    /// The answer's code: 0 for OK, the error code, or -1 when the
    /// connection was closed instead.
    #[must_use]
    pub fn code(&self) -> i64 {
        match self {
            QuestOutcome::Ok => 0,
            QuestOutcome::Error { code, .. } => *code,
            QuestOutcome::Closed => -1,
        }
    }
}

/// One RTM quest as the emulator handled it, given to the quest observer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QuestRecord {
    /// The connection ([`ServerConn::id`]).
    pub conn_id: u64,
    /// The client's address.
    pub peer: SocketAddr,
    /// The method.
    pub method: String,
    /// A short summary of the parameters (`key=value`, the signature keys
    /// `pid`, `salt`, `ts` and `sign` left out, long values cut).
    pub params: String,
    /// The answer.
    pub outcome: QuestOutcome,
    /// How long the emulator took to handle the quest.
    pub elapsed: Duration,
    /// The extra delay before the answer is sent
    /// ([`EmulatorFaults::set_delay`]).
    pub delay: Duration,
    /// True for a quest on the file gate
    /// ([`RtmEmulator::file_gate_endpoint`]), whose connections are
    /// numbered apart from the RTM ones.
    pub file_gate: bool,
}

/// The keys every signed quest carries, left out of [`QuestRecord::params`].
const SIGNATURE_KEYS: [&str; 4] = ["pid", "salt", "ts", "sign"];

/// A one-line summary of a quest's parameters, for logs.
fn summarize_params(p: &Value) -> String {
    const MAX: usize = 240;
    let Value::Map(entries) = p else {
        return summarize_value(p, 0);
    };
    let mut out = String::new();
    for (k, v) in entries {
        let key = match k {
            Value::String(s) => s.as_str().unwrap_or("?").to_string(),
            other => summarize_value(other, 1),
        };
        if SIGNATURE_KEYS.contains(&key.as_str()) {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&key);
        out.push('=');
        out.push_str(&summarize_value(v, 0));
        if out.len() > MAX {
            cut(&mut out, MAX);
            break;
        }
    }
    out
}

/// Cuts `s` to at most `max` bytes (on a char boundary) and marks the cut.
fn cut(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
}

fn summarize_value(v: &Value, depth: usize) -> String {
    const ITEMS: usize = 5;
    match v {
        Value::String(s) => match s.as_str() {
            Some(text) => {
                let mut t = format!("{text:?}");
                cut(&mut t, 40);
                t
            }
            None => format!("<str {} bytes>", s.as_bytes().len()),
        },
        Value::Binary(b) => format!("<bin {} bytes>", b.len()),
        Value::Array(items) if depth < 2 => {
            let mut parts: Vec<String> = items
                .iter()
                .take(ITEMS)
                .map(|i| summarize_value(i, depth + 1))
                .collect();
            if items.len() > ITEMS {
                parts.push(format!("…{} more", items.len() - ITEMS));
            }
            format!("[{}]", parts.join(","))
        }
        Value::Map(entries) if depth < 2 => {
            let mut parts: Vec<String> = entries
                .iter()
                .take(ITEMS)
                .map(|(k, v)| {
                    format!(
                        "{}:{}",
                        summarize_value(k, depth + 1),
                        summarize_value(v, depth + 1)
                    )
                })
                .collect();
            if entries.len() > ITEMS {
                parts.push(format!("…{} more", entries.len() - ITEMS));
            }
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(items) => format!("[{} items]", items.len()),
        Value::Map(entries) => format!("{{{} entries}}", entries.len()),
        other => other.to_string(),
    }
}

struct RtmService(Arc<RtmShared>);

/// A running RTM emulator on `127.0.0.1` (see the [module docs](self)).
///
/// [`stop`](Self::stop), or dropping it, stops the server.
pub struct RtmEmulator {
    server: FpnnServer,
    /// The file gate (see `files.rs`), started and stopped with the server.
    pub(crate) file_gate: FpnnServer,
    pub(crate) shared: Arc<RtmShared>,
}

impl fmt::Debug for RtmEmulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RtmEmulator")
            .field("pid", &self.shared.pid)
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl RtmEmulator {
    /// Starts an emulator for project `pid` with `secret`, on a free port of
    /// `127.0.0.1`, without encryption.
    ///
    /// # Errors
    ///
    /// When the listener cannot be bound or a thread cannot be spawned.
    pub fn start(pid: i64, secret: &str) -> std::io::Result<RtmEmulator> {
        Self::start_with(pid, secret, ServerOptions::default())
    }

    /// [`start`](Self::start) with server options (a fixed address,
    /// encryption, a payload limit).
    ///
    /// # Errors
    ///
    /// When the listener cannot be bound or a thread cannot be spawned.
    pub fn start_with(
        pid: i64,
        secret: &str,
        options: ServerOptions,
    ) -> std::io::Result<RtmEmulator> {
        Self::start_with_options(pid, secret, EmulatorOptions::new().server(options))
    }

    /// Starts an emulator with every option: server options, the `ts`
    /// window, faults, a quest observer and a state to start from.
    ///
    /// # Errors
    ///
    /// When the listener cannot be bound or a thread cannot be spawned, or
    /// (`ErrorKind::InvalidData`) when `state_json` is not a state of this
    /// project.
    pub fn start_with_options(
        pid: i64,
        secret: &str,
        options: EmulatorOptions,
    ) -> std::io::Result<RtmEmulator> {
        let state = match &options.state_json {
            Some(json) => super::persist::parse_state(json, pid)?,
            None => RtmState::default(),
        };
        let shared = Arc::new(RtmShared {
            pid,
            secret: secret.to_string(),
            state: Mutex::new(state),
            conns: Mutex::new(HashMap::new()),
            faults: options.faults,
            observer: Mutex::new(options.observer),
            connection_observer: Mutex::new(options.connection_observer),
            max_clock_skew_ms: AtomicU64::new(skew_ms(options.max_clock_skew)),
            quest_counts: Mutex::new(HashMap::new()),
            push_queues: Mutex::new(HashMap::new()),
        });
        let max_payload = options.server.max_payload;
        let server = FpnnServer::start(RtmService(shared.clone()), options.server)?;
        let file_gate = super::files::start_gate(shared.clone(), max_payload)?;
        Ok(RtmEmulator {
            server,
            file_gate,
            shared,
        })
    }

    /// The RTM fault switches (delays, injected errors, dropped
    /// connections), changeable while the emulator runs.
    pub fn faults(&self) -> &EmulatorFaults {
        &self.shared.faults
    }

    /// Calls `observer` after each RTM quest (method, parameters, answer
    /// code, time taken), on the connection's thread; `None` removes it.
    /// The standalone `rtm-emulator` program logs every quest this way.
    pub fn set_quest_observer(&self, observer: Option<QuestObserver>) {
        *lock(&self.shared.observer) = observer;
    }

    /// Calls `observer` when a connection opens or closes (with why the
    /// emulator closed it, if it did), on the connection's thread; `None`
    /// removes it.
    pub fn set_connection_observer(&self, observer: Option<ConnectionObserver>) {
        *lock(&self.shared.connection_observer) = observer;
    }

    /// Answers 200008 (`RTM_EC_INVALID_SERVER_TIME`) to a quest whose `ts`
    /// (seconds) is more than `skew` away from the emulator's clock
    /// ([`now_ms`](Self::now_ms), which follows
    /// [`advance_clock`](Self::advance_clock)); `None` (the default of the
    /// library emulator) does not compare `ts` with the clock.
    pub fn set_max_clock_skew(&self, skew: Option<Duration>) {
        self.shared
            .max_clock_skew_ms
            .store(skew_ms(skew), Ordering::SeqCst);
    }

    /// The `ts` window in force (`None`: not checked).
    pub fn max_clock_skew(&self) -> Option<Duration> {
        match self.shared.max_clock_skew_ms.load(Ordering::SeqCst) {
            u64::MAX => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    /// The endpoint a client dials: `"127.0.0.1:PORT"`.
    pub fn endpoint(&self) -> String {
        self.server.endpoint()
    }

    /// The address the emulator listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The project id.
    pub fn pid(&self) -> i64 {
        self.shared.pid
    }

    /// The underlying server (connections, faults, received quests).
    pub fn server(&self) -> &FpnnServer {
        &self.server
    }

    /// Stops the emulator and its file gate (idempotent); the room state
    /// stays readable.
    pub fn stop(&mut self) {
        self.server.stop();
        self.file_gate.stop();
    }

    /// Moves the emulator's clock forward by `by` (bans, tokens and
    /// message times follow it), so that a test sees an expiry without
    /// waiting. The clock never goes back.
    pub fn advance_clock(&self, by: std::time::Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        let mut st = lock(&self.shared.state);
        st.clock_offset_ms = st.clock_offset_ms.saturating_add(ms);
    }

    /// The emulator's clock, in milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        lock(&self.shared.state).now_ms()
    }

    /// A snapshot of every room.
    pub fn rooms(&self) -> Rooms {
        let st = lock(&self.shared.state);
        Rooms {
            voice: st.voice.clone(),
            rtc: st.rtc.clone(),
        }
    }

    /// A snapshot of one voice room.
    pub fn voice_room(&self, rid: i64) -> Option<VoiceRoom> {
        lock(&self.shared.state).voice.get(&rid).cloned()
    }

    /// A snapshot of one RTC room.
    pub fn rtc_room(&self, rid: i64) -> Option<RtcRoom> {
        lock(&self.shared.state).rtc.get(&rid).cloned()
    }

    /// The listen state of every open connection, in connection order
    /// (the default state for a connection that never called a listen
    /// method).
    pub fn listen_state(&self) -> Vec<ListenState> {
        let conns = self.server.connections();
        let st = lock(&self.shared.state);
        conns
            .iter()
            .map(|c| {
                st.listen
                    .get(&c.id())
                    .cloned()
                    .unwrap_or_else(|| ListenState {
                        conn_id: c.id(),
                        ..ListenState::default()
                    })
            })
            .collect()
    }

    /// Every quest received (see [`FpnnServer::received`]).
    pub fn received(&self) -> Vec<(String, Value)> {
        self.server.received()
    }

    /// Empties the received log.
    pub fn clear_received(&self) {
        self.server.clear_received();
    }

    /// Pushes a two-way quest to every open connection at once and waits for
    /// all answers (each up to 10 s). The results are in connection order.
    pub fn push_to_all(&self, method: &str, payload: Value) -> Vec<Result<Value, Error>> {
        let conns = self.server.connections();
        std::thread::scope(|s| {
            let handles: Vec<_> = conns
                .iter()
                .map(|c| {
                    let payload = payload.clone();
                    s.spawn(move || c.push(method, payload))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(Error::closed("the push thread panicked")))
                })
                .collect()
        })
    }
}

// ---------------------------------------------------------------------------
// The service
// ---------------------------------------------------------------------------

/// The signature the gateway expects, from the decimal texts of `salt` and
/// `ts` as they arrived (other SDKs may send a salt above `i64::MAX` as a
/// msgpack uint64, which `crate::rtm::sign` cannot take).
fn rtm_sign(pid: &str, secret: &str, salt: &str, method: &str, ts: &str) -> String {
    use md5::{Digest, Md5};
    hex::encode_upper(Md5::digest(format!("{pid}:{secret}:{salt}:{method}:{ts}")))
}

/// A clock-skew window in milliseconds, `u64::MAX` for none.
fn skew_ms(skew: Option<Duration>) -> u64 {
    skew.map_or(u64::MAX, |d| {
        u64::try_from(d.as_millis())
            .unwrap_or(u64::MAX - 1)
            .min(u64::MAX - 1)
    })
}

impl Service for RtmService {
    fn on_quest(&self, conn: &ServerConn, quest: &Quest) -> Reply {
        let started = Instant::now();
        let method = quest.method.as_str();
        let faults = &self.0.faults;
        let drop_after = faults.drop_after();
        let count = if drop_after > 0 {
            let mut counts = lock(&self.0.quest_counts);
            let n = counts.entry(conn.id()).or_insert(0);
            *n += 1;
            *n
        } else {
            0
        };
        let (reply, delay) = if drop_after > 0 && count > drop_after {
            log::debug!(
                "emulator: closing connection {} on its quest {count} (drop after {drop_after})",
                conn.id()
            );
            (Reply::Close, Duration::ZERO)
        } else {
            let reply = self.handle(conn, method, &quest.payload);
            (reply, faults.delay_for(method))
        };
        self.0
            .report_quest(conn, method, &quest.payload, &reply, started, delay, false);
        if delay.is_zero() {
            reply
        } else {
            Reply::after(delay, reply)
        }
    }

    fn on_connect(&self, conn: &ServerConn) {
        lock(&self.0.conns).insert(conn.id(), conn.clone());
        let observer = lock(&self.0.connection_observer).clone();
        if let Some(observer) = observer {
            observer(&ConnectionEvent::Opened {
                conn_id: conn.id(),
                peer: conn.peer_addr(),
            });
        }
    }

    fn on_encrypted(&self, conn: &ServerConn) {
        let observer = lock(&self.0.connection_observer).clone();
        if let (Some(observer), Some((mode, bits))) = (observer, conn.encryption()) {
            observer(&ConnectionEvent::Encrypted {
                conn_id: conn.id(),
                peer: conn.peer_addr(),
                mode,
                bits,
            });
        }
    }

    fn on_disconnect(&self, conn: &ServerConn) {
        lock(&self.0.conns).remove(&conn.id());
        lock(&self.0.quest_counts).remove(&conn.id());
        lock(&self.0.state).listen.remove(&conn.id());
        let observer = lock(&self.0.connection_observer).clone();
        if let Some(observer) = observer {
            observer(&ConnectionEvent::Closed {
                conn_id: conn.id(),
                peer: conn.peer_addr(),
                reason: conn.close_reason(),
            });
        }
    }
}

impl RtmService {
    /// Checks and runs one RTM quest.
    fn handle(&self, conn: &ServerConn, method: &str, payload: &Value) -> Reply {
        if !METHODS.contains(&method) && family_of(method).is_none() {
            return Reply::error(
                codes::FPNN_EC_CORE_UNKNOWN_METHOD,
                format!("unknown method `{method}`"),
            );
        }
        if let Err(r) = self.authenticate(method, payload) {
            return r;
        }
        if let Some(code) = self.0.faults.fail_for(method) {
            return Reply::error(
                code,
                format!("failure injected for `{method}` (emulator fault)"),
            );
        }
        let mut cx = Ctx {
            conn,
            pid: self.0.pid,
            outbox: Vec::new(),
        };
        let result = self.dispatch(&mut cx, method, payload);
        self.0.send_outbox(std::mem::take(&mut cx.outbox));
        match result {
            Ok(v) => Reply::Answer(v),
            Err(r) => {
                log::debug!("emulator: `{method}` failed: {r:?}");
                r
            }
        }
    }

    fn authenticate(&self, method: &str, p: &Value) -> R<()> {
        let bad = |why: &str| Reply::error(codes::RTM_EC_INVALID_PID_OR_SIGN, why.to_string());
        let pid = get(p, "pid")
            .and_then(Value::as_i64)
            .ok_or_else(|| bad("missing or invalid pid"))?;
        if pid != self.0.pid {
            return Err(bad("invalid pid"));
        }
        let salt = int_text(get(p, "salt")).ok_or_else(|| bad("missing or invalid salt"))?;
        let ts = int_text(get(p, "ts")).ok_or_else(|| bad("missing or invalid ts"))?;
        // `str`, or `bin` holding the text (the C++ gateway reads both).
        let sign = match get(p, "sign") {
            Some(Value::String(s)) => s.as_str(),
            Some(Value::Binary(b)) => std::str::from_utf8(b).ok(),
            _ => None,
        }
        .ok_or_else(|| bad("missing or invalid sign"))?;
        let expected = rtm_sign(&pid.to_string(), &self.0.secret, &salt, method, &ts);
        if sign != expected {
            return Err(bad("invalid sign"));
        }
        let mut st = lock(&self.0.state);
        let max_skew_ms = self.0.max_clock_skew_ms.load(Ordering::SeqCst);
        if max_skew_ms != u64::MAX {
            let now_ms = i128::from(st.now_ms());
            let off = ts
                .parse::<i128>()
                .map_or(u128::MAX, |t| (t * 1000 - now_ms).unsigned_abs());
            if off > u128::from(max_skew_ms) {
                return Err(Reply::error(
                    codes::RTM_EC_INVALID_SERVER_TIME,
                    format!(
                        "ts {ts} is more than {} s away from the server's clock ({} s)",
                        max_skew_ms / 1000,
                        now_ms / 1000
                    ),
                ));
            }
        }
        let key = (salt, expected);
        if st.seen.contains(&key) {
            return Err(Reply::error(codes::RTM_EC_SAME_SIGN, "same sign"));
        }
        if st.seen_order.len() >= SEEN_SIGNS_CAPACITY {
            if let Some(old) = st.seen_order.pop_front() {
                st.seen.remove(&old);
            }
        }
        st.seen.insert(key.clone());
        st.seen_order.push_back(key);
        Ok(())
    }
}

impl RtmShared {
    /// Gives the quest observer, if any, the record of a quest handled
    /// since `started` (the RTM service and the file gate both report).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn report_quest(
        &self,
        conn: &ServerConn,
        method: &str,
        payload: &Value,
        reply: &Reply,
        started: Instant,
        delay: Duration,
        file_gate: bool,
    ) {
        let observer = lock(&self.observer).clone();
        let Some(observer) = observer else { return };
        let outcome = match reply {
            Reply::Error { code, message } => QuestOutcome::Error {
                code: *code,
                message: message.clone(),
            },
            Reply::Close => QuestOutcome::Closed,
            _ => QuestOutcome::Ok,
        };
        observer(&QuestRecord {
            conn_id: conn.id(),
            peer: conn.peer_addr(),
            method: method.to_string(),
            params: summarize_params(payload),
            outcome,
            elapsed: started.elapsed(),
            delay,
            file_gate,
        });
    }

    /// Sends the pushes a quest produced to the RTM connections. Each
    /// connection has its own queue and sending thread (a push waits for
    /// the client's answer, which the connection's own reader thread must
    /// stay free to read): a connection's pushes go out in order, and a
    /// client slow to answer holds back no other connection's. The file
    /// gate sends its pushes here too.
    pub(crate) fn send_outbox(self: &Arc<Self>, outbox: Vec<(u64, &'static str, Value)>) {
        if outbox.is_empty() {
            return;
        }
        let conns = lock(&self.conns);
        let mut start = Vec::new();
        {
            let mut queues = lock(&self.push_queues);
            for (id, method, payload) in outbox {
                let Some(conn) = conns.get(&id) else { continue };
                match queues.entry(id) {
                    std::collections::hash_map::Entry::Occupied(mut q) => {
                        q.get_mut().push_back((method, payload));
                    }
                    std::collections::hash_map::Entry::Vacant(q) => {
                        q.insert(VecDeque::from([(method, payload)]));
                        start.push(conn.clone());
                    }
                }
            }
        }
        drop(conns);
        for conn in start {
            let shared = self.clone();
            let id = conn.id();
            let spawned = std::thread::Builder::new()
                .name(format!("emu-push-{id}"))
                .spawn(move || shared.push_worker(&conn));
            if let Err(e) = spawned {
                lock(&self.push_queues).remove(&id);
                log::warn!("emulator: cannot spawn a push thread: {e}");
            }
        }
    }

    /// Sends the queued pushes of one connection, in order, until its
    /// queue is empty.
    fn push_worker(&self, conn: &ServerConn) {
        loop {
            let next = {
                let mut queues = lock(&self.push_queues);
                match queues.get_mut(&conn.id()).and_then(VecDeque::pop_front) {
                    Some(next) => next,
                    None => {
                        queues.remove(&conn.id());
                        return;
                    }
                }
            };
            let (method, payload) = next;
            if let Err(e) = conn.push(method, payload) {
                log::debug!("emulator: push `{method}` to connection {}: {e}", conn.id());
            }
        }
    }
}

impl RtmService {
    fn dispatch(&self, cx: &mut Ctx<'_>, method: &str, p: &Value) -> R<Value> {
        let mut guard = lock(&self.0.state);
        let st = &mut *guard;
        if let Some(family) = family_of(method) {
            return (family.dispatch)(st, cx, method, p);
        }
        let conn = cx.conn;
        match method {
            // ---- voice rooms ----
            "pullIntoVoiceRoom" => {
                let rid = int(p, "rid")?;
                let uids = int_list(p, "toUids")?;
                let room = st.voice.entry(rid).or_insert_with(|| VoiceRoom {
                    rid,
                    ..VoiceRoom::default()
                });
                if room.owner.is_none() && room.members.is_empty() {
                    if let Some(&first) = uids.first() {
                        room.owner = Some(first);
                        room.managers.insert(first);
                    }
                }
                for uid in uids {
                    room.invited.remove(&uid);
                    room.members.insert(uid);
                }
                Ok(empty())
            }
            "inviteUserIntoVoiceRoom" => {
                let rid = int(p, "rid")?;
                let uids = int_list(p, "toUids")?;
                let from = int(p, "fromUid")?;
                let room = st.voice.get_mut(&rid).ok_or_else(|| no_room(rid))?;
                invite(rid, &room.members, &mut room.invited, from, uids)?;
                Ok(empty())
            }
            "kickoutFromVoiceRoom" => {
                let rid = int(p, "rid")?;
                let uid = int(p, "uid")?;
                let _from = int(p, "fromUid")?;
                let room = st.voice.get_mut(&rid).ok_or_else(|| no_room(rid))?;
                if !room.members.remove(&uid) {
                    return Err(not_in_room(format!("user {uid} is not in room {rid}")));
                }
                room.managers.remove(&uid);
                Ok(empty())
            }
            "closeVoiceRoom" => {
                let rid = int(p, "rid")?;
                st.voice.remove(&rid).ok_or_else(|| no_room(rid))?;
                Ok(empty())
            }
            "getVoiceRoomList" => Ok(obj(vec![("rids", ids(st.voice.keys()))])),
            "getVoiceRoomMembers" => {
                let rid = int(p, "rid")?;
                let room = st.voice.get(&rid).ok_or_else(|| no_room(rid))?;
                Ok(obj(vec![
                    ("uids", ids(&room.members)),
                    ("managers", ids(&room.managers)),
                ]))
            }
            "getVoiceRoomMemberCount" => {
                let rid = int(p, "rid")?;
                let room = st.voice.get(&rid).ok_or_else(|| no_room(rid))?;
                Ok(obj(vec![("count", Value::from(room.members.len() as i64))]))
            }
            "setVoiceRoomMicStatus" => {
                let rid = int(p, "rid")?;
                let status = boolean(p, "status")?;
                let room = st.voice.get_mut(&rid).ok_or_else(|| no_room(rid))?;
                room.mic_status = Some(status);
                Ok(empty())
            }
            // ---- RTC rooms ----
            "pullIntoRTCRoom" => {
                let rid = int(p, "rid")?;
                let uids = int_list(p, "toUids")?;
                let room_type = int(p, "type")?;
                if room_type != 1 && room_type != 2 {
                    return Err(wrong_type("type", "1 (voice) or 2 (video)"));
                }
                let voice_range = opt_int(p, "voiceRange")?;
                let max_receive_streams = opt_int(p, "maxReceiveStreams")?;
                let room = st.rtc.entry(rid).or_insert_with(|| RtcRoom {
                    rid,
                    ..RtcRoom::default()
                });
                if room.owner.is_none() && room.members.is_empty() {
                    room.owner = uids.first().copied();
                }
                room.room_type = room_type;
                room.voice_range = voice_range;
                room.max_receive_streams = max_receive_streams;
                for uid in uids {
                    room.invited.remove(&uid);
                    room.members.insert(uid);
                }
                Ok(empty())
            }
            "inviteUserIntoRTCRoom" => {
                let rid = int(p, "rid")?;
                let uids = int_list(p, "toUids")?;
                let from = int(p, "fromUid")?;
                let room = st.rtc.get_mut(&rid).ok_or_else(|| no_room(rid))?;
                invite(rid, &room.members, &mut room.invited, from, uids)?;
                Ok(empty())
            }
            "kickoutFromRTCRoom" => {
                let rid = int(p, "rid")?;
                let uid = int(p, "uid")?;
                let _from = int(p, "fromUid")?;
                let room = st.rtc.get_mut(&rid).ok_or_else(|| no_room(rid))?;
                if !room.members.remove(&uid) {
                    return Err(not_in_room(format!("user {uid} is not in room {rid}")));
                }
                room.administrators.remove(&uid);
                room.user_flags.remove(&uid);
                Ok(empty())
            }
            "closeRTCRoom" => {
                let rid = int(p, "rid")?;
                st.rtc.remove(&rid).ok_or_else(|| no_room(rid))?;
                Ok(empty())
            }
            "getRTCRoomList" => Ok(obj(vec![("rids", ids(st.rtc.keys()))])),
            "getRTCRoomMembers" => {
                let rid = int(p, "rid")?;
                let room = st.rtc.get(&rid).ok_or_else(|| no_room(rid))?;
                let mut answer = vec![
                    ("uids", ids(&room.members)),
                    ("administrators", ids(&room.administrators)),
                ];
                if let Some(owner) = room.owner {
                    answer.push(("owner", Value::from(owner)));
                }
                Ok(obj(answer))
            }
            "getRTCRoomMemberCount" => {
                let rid = int(p, "rid")?;
                let room = st.rtc.get(&rid).ok_or_else(|| no_room(rid))?;
                Ok(obj(vec![("count", Value::from(room.members.len() as i64))]))
            }
            "setRTCRoomMicStatus" => {
                let rid = int(p, "rid")?;
                let status = boolean(p, "status")?;
                let room = st.rtc.get_mut(&rid).ok_or_else(|| no_room(rid))?;
                room.mic_status = Some(status);
                Ok(empty())
            }
            "adminCommand" => {
                let rid = int(p, "rid")?;
                let uids = int_list(p, "uids")?;
                let command = int(p, "command")?;
                if !(0..=7).contains(&command) {
                    return Err(wrong_type("command", "an int from 0 to 7"));
                }
                let room = st.rtc.get_mut(&rid).ok_or_else(|| no_room(rid))?;
                if let Some(uid) = uids.iter().find(|u| !room.members.contains(u)) {
                    return Err(not_in_room(format!("user {uid} is not in room {rid}")));
                }
                for uid in uids {
                    match command {
                        0 => {
                            room.administrators.insert(uid);
                        }
                        1 => {
                            room.administrators.remove(&uid);
                        }
                        _ => {
                            let f = room.user_flags.entry(uid).or_default();
                            match command {
                                2 => f.audio_forbidden = true,
                                3 => f.audio_forbidden = false,
                                4 => f.video_forbidden = true,
                                5 => f.video_forbidden = false,
                                6 => f.mic_closed = true,
                                _ => f.camera_closed = true,
                            }
                        }
                    }
                }
                Ok(empty())
            }
            // ---- listen ----
            "addlisten" | "removelisten" | "setlisten" => {
                let gids = opt_int_list(p, "gids")?;
                let rids = opt_int_list(p, "rids")?;
                let uids = opt_int_list(p, "uids")?;
                let events = opt_str_list(p, "events")?;
                let flags = [
                    opt_bool(p, "group")?,
                    opt_bool(p, "room")?,
                    opt_bool(p, "p2p")?,
                    opt_bool(p, "ev")?,
                ];
                let state = st.listen.entry(conn.id()).or_insert_with(|| ListenState {
                    conn_id: conn.id(),
                    ..ListenState::default()
                });
                apply_listen(state, method, gids, rids, uids, events, flags);
                Ok(empty())
            }
            other => Err(Reply::error(
                codes::FPNN_EC_CORE_UNKNOWN_METHOD,
                format!("unknown method `{other}`"),
            )),
        }
    }
}

fn invite(
    rid: i64,
    members: &BTreeSet<i64>,
    invited: &mut BTreeSet<i64>,
    from: i64,
    uids: Vec<i64>,
) -> R<()> {
    if !members.contains(&from) {
        return Err(not_in_room(format!(
            "the inviter {from} is not in room {rid}"
        )));
    }
    invited.extend(uids.into_iter().filter(|u| !members.contains(u)));
    Ok(())
}

fn apply_listen(
    state: &mut ListenState,
    method: &str,
    gids: Option<Vec<i64>>,
    rids: Option<Vec<i64>>,
    uids: Option<Vec<i64>>,
    events: Option<Vec<String>>,
    flags: [Option<bool>; 4],
) {
    fn apply<T: Ord>(set: &mut BTreeSet<T>, method: &str, items: Option<Vec<T>>) {
        let Some(items) = items else { return };
        match method {
            "addlisten" => set.extend(items),
            "removelisten" => {
                for i in &items {
                    set.remove(i);
                }
            }
            _ => *set = items.into_iter().collect(),
        }
    }
    apply(&mut state.gids, method, gids);
    apply(&mut state.rids, method, rids);
    apply(&mut state.uids, method, uids);
    apply(&mut state.events, method, events);
    if method == "setlisten" {
        let [group, room, p2p, ev] = flags;
        for (slot, value) in [
            (&mut state.group, group),
            (&mut state.room, room),
            (&mut state.p2p, p2p),
            (&mut state.ev, ev),
        ] {
            if let Some(v) = value {
                *slot = v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::fpnn::codec::map_get;
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::time::{Duration, Instant};

    use super::*;
    use crate::emulator::testutil::{map, RawClient};
    use crate::fpnn::crypto::{CipherMode, Curve, KeyBits, ServerPrivateKey};

    const PID: i64 = 11000001;
    const SECRET: &str = "ef3617e5-e886-4a4e-9eef-7263c0320628";

    static SALT: AtomicI64 = AtomicI64::new(1);

    fn now_s() -> i64 {
        super::super::server::now_ms() / 1000
    }

    /// The auth keys for `method` with a fresh salt, plus `params`.
    fn signed_with(pid: i64, secret: &str, method: &str, params: Vec<(&str, Value)>) -> Value {
        let salt = SALT.fetch_add(1, Ordering::SeqCst);
        let ts = now_s();
        let sign = rtm_sign(
            &pid.to_string(),
            secret,
            &salt.to_string(),
            method,
            &ts.to_string(),
        );
        let mut entries = vec![
            ("pid", Value::from(pid)),
            ("sign", Value::from(sign)),
            ("salt", Value::from(salt)),
            ("ts", Value::from(ts)),
        ];
        entries.extend(params);
        map(entries)
    }

    fn call(c: &mut RawClient, method: &str, params: Vec<(&str, Value)>) -> Result<Value, Error> {
        let p = signed_with(PID, SECRET, method, params);
        c.call(method, &p).into_result()
    }

    fn code(r: Result<Value, Error>) -> i64 {
        let e = r.expect_err("expected an error");
        e.server_code()
            .unwrap_or_else(|| panic!("not a server error: {e:?}"))
    }

    fn err_msg(r: Result<Value, Error>) -> (i64, String) {
        match r {
            Err(Error::Server { code, message }) => (code, message),
            other => panic!("expected a server error, got {other:?}"),
        }
    }

    fn ints(v: &Value, key: &str) -> Vec<i64> {
        map_get(v, key)
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("no `{key}` in {v}"))
            .iter()
            .map(|x| x.as_i64().unwrap())
            .collect()
    }

    fn arr(items: &[i64]) -> Value {
        Value::Array(items.iter().map(|&i| Value::from(i)).collect())
    }

    fn setup() -> (RtmEmulator, RawClient) {
        let emu = RtmEmulator::start(PID, SECRET).unwrap();
        let c = RawClient::connect(&emu.endpoint());
        (emu, c)
    }

    #[test]
    fn worked_example_sign() {
        // PROTOCOL.md 5.2.
        assert_eq!(
            rtm_sign(
                "11000001",
                SECRET,
                "1234567890",
                "getVoiceRoomList",
                "1600000000"
            ),
            "C21477D93C8FF2BC50E14AA81F70195F"
        );
        assert_eq!(
            rtm_sign(
                "11000001",
                SECRET,
                "1234567890",
                "getRTCRoomList",
                "1600000000"
            ),
            "BB7CA772A11E2A28CFF3D15BA9504C32"
        );
    }

    #[test]
    fn authentication() {
        let (emu, mut c) = setup();
        assert_eq!(emu.pid(), PID);
        // Good.
        let ok = call(&mut c, "getVoiceRoomList", vec![]).unwrap();
        assert_eq!(ints(&ok, "rids"), Vec::<i64>::new());
        // Bad sign.
        let mut p = signed_with(PID, "wrong-secret", "getVoiceRoomList", vec![]);
        assert_eq!(code(c.call("getVoiceRoomList", &p).into_result()), 200002);
        // Wrong pid (signed correctly for it).
        p = signed_with(PID + 1, SECRET, "getVoiceRoomList", vec![]);
        assert_eq!(code(c.call("getVoiceRoomList", &p).into_result()), 200002);
        // Signed for another method.
        p = signed_with(PID, SECRET, "getRTCRoomList", vec![]);
        assert_eq!(code(c.call("getVoiceRoomList", &p).into_result()), 200002);
        // Lowercase sign.
        p = signed_with(PID, SECRET, "getVoiceRoomList", vec![]);
        if let Value::Map(entries) = &mut p {
            entries[1].1 = Value::from(entries[1].1.as_str().unwrap().to_lowercase());
        }
        assert_eq!(code(c.call("getVoiceRoomList", &p).into_result()), 200002);
        // Missing keys, and pid as a string.
        for drop_key in ["pid", "sign", "salt", "ts"] {
            let p = signed_with(PID, SECRET, "getVoiceRoomList", vec![]);
            let Value::Map(entries) = p else {
                unreachable!()
            };
            let p = Value::Map(
                entries
                    .into_iter()
                    .filter(|(k, _)| k.as_str() != Some(drop_key))
                    .collect(),
            );
            assert_eq!(
                code(c.call("getVoiceRoomList", &p).into_result()),
                200002,
                "{drop_key}"
            );
        }
        let p = map(vec![
            ("pid", Value::from(PID.to_string())),
            ("sign", Value::from("X")),
            ("salt", 1.into()),
            ("ts", 1.into()),
        ]);
        assert_eq!(code(c.call("getVoiceRoomList", &p).into_result()), 200002);
        // Same salt and sign twice.
        let p = signed_with(PID, SECRET, "getVoiceRoomList", vec![]);
        assert!(c.call("getVoiceRoomList", &p).into_result().is_ok());
        assert_eq!(code(c.call("getVoiceRoomList", &p).into_result()), 200006);
        // A salt above i64::MAX (u64) is signed with its decimal text.
        let salt = u64::MAX - 5;
        let ts = now_s();
        let sign = rtm_sign(
            &PID.to_string(),
            SECRET,
            &salt.to_string(),
            "getRTCRoomList",
            &ts.to_string(),
        );
        let p = map(vec![
            ("pid", PID.into()),
            ("sign", sign.into()),
            ("salt", salt.into()),
            ("ts", ts.into()),
        ]);
        assert!(c.call("getRTCRoomList", &p).into_result().is_ok());
        // Unknown methods: 20004, before authentication; *ping needs no auth.
        assert_eq!(
            code(c.call("noSuchMethod", &map(vec![])).into_result()),
            20004
        );
        assert_eq!(code(call(&mut c, "getRoomList", vec![])), 20004);
        assert!(c.call("*ping", &map(vec![])).into_result().is_ok());
    }

    #[test]
    fn parameter_errors() {
        let (_emu, mut c) = setup();
        let (code, msg) = err_msg(call(&mut c, "getVoiceRoomMembers", vec![]));
        assert_eq!(code, 10009);
        assert!(msg.contains("rid"), "{msg}");
        let (code, msg) = err_msg(call(
            &mut c,
            "getVoiceRoomMembers",
            vec![("rid", "1".into())],
        ));
        assert_eq!(code, 10010);
        assert!(msg.contains("rid"), "{msg}");
        let (code, msg) = err_msg(call(
            &mut c,
            "pullIntoVoiceRoom",
            vec![("rid", 1.into()), ("toUids", map(vec![("1", 1.into())]))],
        ));
        assert_eq!(code, 10010);
        assert!(msg.contains("toUids"), "{msg}");
        let r = call(
            &mut c,
            "pullIntoVoiceRoom",
            vec![
                ("rid", 1.into()),
                ("toUids", Value::Array(vec![1.into(), "2".into()])),
            ],
        );
        assert_eq!(err_msg(r).0, 10010);
        let r = call(&mut c, "pullIntoVoiceRoom", vec![("rid", 1.into())]);
        assert_eq!(err_msg(r).0, 10009);
        // u64 ids that fit i64 are fine; larger ones are not.
        let r = call(
            &mut c,
            "pullIntoVoiceRoom",
            vec![
                ("rid", Value::from(7u64)),
                ("toUids", Value::Array(vec![Value::from(8u64)])),
            ],
        );
        assert!(r.is_ok());
        let r = call(
            &mut c,
            "getVoiceRoomMembers",
            vec![("rid", Value::from(u64::MAX))],
        );
        assert_eq!(err_msg(r).0, 10010);
        let (code, msg) = err_msg(call(
            &mut c,
            "setVoiceRoomMicStatus",
            vec![("rid", 7.into()), ("status", 1.into())],
        ));
        assert_eq!(code, 10010);
        assert!(msg.contains("status"), "{msg}");
    }

    #[test]
    fn voice_rooms() {
        let (emu, mut c) = setup();
        let uids = |v: &[i64]| ("toUids", arr(v));
        call(
            &mut c,
            "pullIntoVoiceRoom",
            vec![("rid", 20.into()), uids(&[5, 3])],
        )
        .unwrap();
        call(
            &mut c,
            "pullIntoVoiceRoom",
            vec![("rid", 10.into()), uids(&[1])],
        )
        .unwrap();
        call(
            &mut c,
            "pullIntoVoiceRoom",
            vec![("rid", 10.into()), uids(&[2, 1])],
        )
        .unwrap();
        let list = call(&mut c, "getVoiceRoomList", vec![]).unwrap();
        assert_eq!(ints(&list, "rids"), [10, 20]);
        let m = call(&mut c, "getVoiceRoomMembers", vec![("rid", 10.into())]).unwrap();
        assert_eq!(ints(&m, "uids"), [1, 2]);
        assert_eq!(ints(&m, "managers"), [1]);
        let m = call(&mut c, "getVoiceRoomMembers", vec![("rid", 20.into())]).unwrap();
        assert_eq!(ints(&m, "managers"), [5]);
        let n = call(&mut c, "getVoiceRoomMemberCount", vec![("rid", 10.into())]).unwrap();
        assert_eq!(map_get(&n, "count").and_then(Value::as_i64), Some(2));

        // Invite: room must exist, inviter must be a member.
        let (code, msg) = err_msg(call(
            &mut c,
            "inviteUserIntoVoiceRoom",
            vec![("rid", 99.into()), uids(&[4]), ("fromUid", 1.into())],
        ));
        assert_eq!(code, 200040);
        assert_eq!(msg, "room 99 does not exist");
        let r = call(
            &mut c,
            "inviteUserIntoVoiceRoom",
            vec![("rid", 10.into()), uids(&[4]), ("fromUid", 9.into())],
        );
        assert_eq!(err_msg(r).0, 200040);
        call(
            &mut c,
            "inviteUserIntoVoiceRoom",
            vec![("rid", 10.into()), uids(&[4, 2]), ("fromUid", 1.into())],
        )
        .unwrap();
        let room = emu.voice_room(10).unwrap();
        assert_eq!(room.invited, BTreeSet::from([4]));
        assert_eq!(room.members, BTreeSet::from([1, 2]));
        assert_eq!(room.owner, Some(1));

        // Kickout.
        let kick = |uid: i64, rid: i64| {
            vec![
                ("rid", rid.into()),
                ("uid", uid.into()),
                ("fromUid", 1.into()),
            ]
        };
        assert_eq!(
            err_msg(call(&mut c, "kickoutFromVoiceRoom", kick(7, 10))).0,
            200040
        );
        assert_eq!(
            err_msg(call(&mut c, "kickoutFromVoiceRoom", kick(1, 99))).0,
            200040
        );
        call(&mut c, "kickoutFromVoiceRoom", kick(2, 10)).unwrap();
        let m = call(&mut c, "getVoiceRoomMembers", vec![("rid", 10.into())]).unwrap();
        assert_eq!(ints(&m, "uids"), [1]);

        // Mic status.
        call(
            &mut c,
            "setVoiceRoomMicStatus",
            vec![("rid", 10.into()), ("status", true.into())],
        )
        .unwrap();
        assert_eq!(emu.voice_room(10).unwrap().mic_status, Some(true));
        call(
            &mut c,
            "setVoiceRoomMicStatus",
            vec![("rid", 10.into()), ("status", false.into())],
        )
        .unwrap();
        assert_eq!(emu.voice_room(10).unwrap().mic_status, Some(false));

        // Unknown rooms.
        let rid99 = || vec![("rid", 99.into())];
        for m in [
            "getVoiceRoomMembers",
            "getVoiceRoomMemberCount",
            "closeVoiceRoom",
        ] {
            assert_eq!(err_msg(call(&mut c, m, rid99())).0, 200040, "{m}");
        }
        let r = call(
            &mut c,
            "setVoiceRoomMicStatus",
            vec![("rid", 99.into()), ("status", true.into())],
        );
        assert_eq!(err_msg(r).0, 200040);

        // Close; the RTC namespace is separate.
        call(&mut c, "closeVoiceRoom", vec![("rid", 10.into())]).unwrap();
        assert_eq!(
            err_msg(call(&mut c, "closeVoiceRoom", vec![("rid", 10.into())])).0,
            200040
        );
        let list = call(&mut c, "getVoiceRoomList", vec![]).unwrap();
        assert_eq!(ints(&list, "rids"), [20]);
        assert_eq!(
            err_msg(call(&mut c, "getRTCRoomMembers", vec![("rid", 20.into())])).0,
            200040
        );
        let rooms = emu.rooms();
        assert_eq!(rooms.voice.keys().copied().collect::<Vec<_>>(), [20]);
        assert!(rooms.rtc.is_empty());
    }

    #[test]
    fn rtc_rooms() {
        let (emu, mut c) = setup();
        let pull = |rid: i64, uids: &[i64], ty: i64| {
            vec![
                ("rid", rid.into()),
                ("toUids", arr(uids)),
                ("type", ty.into()),
            ]
        };
        let (code, msg) = err_msg(call(&mut c, "pullIntoRTCRoom", pull(1, &[1], 3)));
        assert_eq!(code, 10010);
        assert!(msg.contains("type"), "{msg}");
        assert_eq!(
            err_msg(call(
                &mut c,
                "pullIntoRTCRoom",
                vec![("rid", 1.into()), ("toUids", arr(&[1]))]
            ))
            .0,
            10009
        );
        call(&mut c, "pullIntoRTCRoom", pull(1, &[1, 2, 3], 1)).unwrap();
        let room = emu.rtc_room(1).unwrap();
        assert_eq!(
            (room.room_type, room.voice_range, room.max_receive_streams),
            (1, None, None)
        );
        let mut p = pull(1, &[4], 2);
        p.push(("voiceRange", 100.into()));
        p.push(("maxReceiveStreams", 8.into()));
        call(&mut c, "pullIntoRTCRoom", p).unwrap();
        let room = emu.rtc_room(1).unwrap();
        assert_eq!(
            (room.room_type, room.voice_range, room.max_receive_streams),
            (2, Some(100), Some(8))
        );
        let mut p = pull(1, &[4], 2);
        p.push(("voiceRange", "far".into()));
        assert_eq!(err_msg(call(&mut c, "pullIntoRTCRoom", p)).0, 10010);

        let m = call(&mut c, "getRTCRoomMembers", vec![("rid", 1.into())]).unwrap();
        assert_eq!(ints(&m, "uids"), [1, 2, 3, 4]);
        assert_eq!(ints(&m, "administrators"), Vec::<i64>::new());
        assert_eq!(map_get(&m, "owner").and_then(Value::as_i64), Some(1));
        let n = call(&mut c, "getRTCRoomMemberCount", vec![("rid", 1.into())]).unwrap();
        assert_eq!(map_get(&n, "count").and_then(Value::as_i64), Some(4));

        // adminCommand.
        let cmd = |uids: &[i64], command: i64| {
            vec![
                ("rid", 1.into()),
                ("uids", arr(uids)),
                ("command", command.into()),
            ]
        };
        call(&mut c, "adminCommand", cmd(&[2, 3], 0)).unwrap();
        let m = call(&mut c, "getRTCRoomMembers", vec![("rid", 1.into())]).unwrap();
        assert_eq!(ints(&m, "administrators"), [2, 3]);
        call(&mut c, "adminCommand", cmd(&[3], 1)).unwrap();
        assert_eq!(emu.rtc_room(1).unwrap().administrators, BTreeSet::from([2]));
        for command in [2, 4, 6, 7] {
            call(&mut c, "adminCommand", cmd(&[4], command)).unwrap();
        }
        let f = emu.rtc_room(1).unwrap().user_flags[&4];
        assert!(f.audio_forbidden && f.video_forbidden && f.mic_closed && f.camera_closed);
        call(&mut c, "adminCommand", cmd(&[4], 3)).unwrap();
        call(&mut c, "adminCommand", cmd(&[4], 5)).unwrap();
        let f = emu.rtc_room(1).unwrap().user_flags[&4];
        assert!(!f.audio_forbidden && !f.video_forbidden && f.mic_closed && f.camera_closed);
        let (code, msg) = err_msg(call(&mut c, "adminCommand", cmd(&[4], 8)));
        assert_eq!(code, 10010);
        assert!(msg.contains("command"), "{msg}");
        assert_eq!(
            err_msg(call(&mut c, "adminCommand", cmd(&[4], -1))).0,
            10010
        );
        assert_eq!(
            err_msg(call(&mut c, "adminCommand", cmd(&[9], 0))).0,
            200040
        );
        let mut p = cmd(&[4], 0);
        p[0].1 = 77.into();
        assert_eq!(err_msg(call(&mut c, "adminCommand", p)).0, 200040);

        // Invite and kickout.
        let inv = |rid: i64, from: i64| {
            vec![
                ("rid", rid.into()),
                ("toUids", arr(&[8, 1])),
                ("fromUid", from.into()),
            ]
        };
        assert_eq!(
            err_msg(call(&mut c, "inviteUserIntoRTCRoom", inv(5, 1))).0,
            200040
        );
        assert_eq!(
            err_msg(call(&mut c, "inviteUserIntoRTCRoom", inv(1, 42))).0,
            200040
        );
        call(&mut c, "inviteUserIntoRTCRoom", inv(1, 1)).unwrap();
        assert_eq!(emu.rtc_room(1).unwrap().invited, BTreeSet::from([8]));
        call(&mut c, "pullIntoRTCRoom", pull(1, &[8], 1)).unwrap();
        assert!(emu.rtc_room(1).unwrap().invited.is_empty());
        let kick = |uid: i64| {
            vec![
                ("rid", 1.into()),
                ("uid", uid.into()),
                ("fromUid", 1.into()),
            ]
        };
        call(&mut c, "kickoutFromRTCRoom", kick(2)).unwrap();
        assert_eq!(
            err_msg(call(&mut c, "kickoutFromRTCRoom", kick(2))).0,
            200040
        );
        let room = emu.rtc_room(1).unwrap();
        assert!(!room.members.contains(&2) && room.administrators.is_empty());

        // Mic status, list, close, unknown rooms.
        call(
            &mut c,
            "setRTCRoomMicStatus",
            vec![("rid", 1.into()), ("status", true.into())],
        )
        .unwrap();
        assert_eq!(emu.rtc_room(1).unwrap().mic_status, Some(true));
        let r = call(
            &mut c,
            "setRTCRoomMicStatus",
            vec![("rid", 1.into()), ("status", "on".into())],
        );
        assert_eq!(err_msg(r).0, 10010);
        call(&mut c, "pullIntoRTCRoom", pull(-3, &[1], 2)).unwrap();
        let list = call(&mut c, "getRTCRoomList", vec![]).unwrap();
        assert_eq!(ints(&list, "rids"), [-3, 1]);
        let voice = call(&mut c, "getVoiceRoomList", vec![]).unwrap();
        assert!(ints(&voice, "rids").is_empty());
        call(&mut c, "closeRTCRoom", vec![("rid", 1.into())]).unwrap();
        for m in ["getRTCRoomMembers", "getRTCRoomMemberCount", "closeRTCRoom"] {
            assert_eq!(
                err_msg(call(&mut c, m, vec![("rid", 1.into())])).0,
                200040,
                "{m}"
            );
        }
        let r = call(
            &mut c,
            "setRTCRoomMicStatus",
            vec![("rid", 1.into()), ("status", true.into())],
        );
        assert_eq!(err_msg(r).0, 200040);
        assert_eq!(emu.rooms().rtc.keys().copied().collect::<Vec<_>>(), [-3]);
    }

    #[test]
    fn listen_state_is_per_connection() {
        let (emu, mut c1) = setup();
        let mut c2 = RawClient::connect(&emu.endpoint());
        let strs = |v: &[&str]| Value::Array(v.iter().map(|&s| Value::from(s)).collect());
        call(
            &mut c1,
            "addlisten",
            vec![
                ("gids", arr(&[1, 2])),
                ("uids", arr(&[7])),
                ("events", strs(&["login", "logout"])),
            ],
        )
        .unwrap();
        call(
            &mut c1,
            "removelisten",
            vec![("gids", arr(&[1])), ("events", strs(&["login"]))],
        )
        .unwrap();
        call(
            &mut c1,
            "setlisten",
            vec![("rids", arr(&[5, 6])), ("uids", arr(&[]))],
        )
        .unwrap();
        call(
            &mut c2,
            "setlisten",
            vec![
                ("group", true.into()),
                ("room", false.into()),
                ("p2p", true.into()),
                ("ev", true.into()),
            ],
        )
        .unwrap();
        let states = emu.listen_state();
        assert_eq!(states.len(), 2);
        let s1 = &states[0];
        assert_eq!(s1.gids, BTreeSet::from([2]));
        assert_eq!(s1.rids, BTreeSet::from([5, 6]));
        assert!(s1.uids.is_empty());
        assert_eq!(s1.events, BTreeSet::from(["logout".to_string()]));
        assert!(!s1.group && !s1.room && !s1.p2p && !s1.ev);
        let s2 = &states[1];
        assert!(s2.gids.is_empty() && s2.group && !s2.room && s2.p2p && s2.ev);
        assert_ne!(s1.conn_id, s2.conn_id);

        // Wrong types.
        let r = call(
            &mut c1,
            "addlisten",
            vec![("gids", map(vec![("7", map(vec![]))]))],
        );
        assert_eq!(err_msg(r).0, 10010);
        let r = call(&mut c1, "addlisten", vec![("events", arr(&[1]))]);
        assert_eq!(err_msg(r).0, 10010);
        let r = call(&mut c1, "setlisten", vec![("group", 1.into())]);
        assert_eq!(err_msg(r).0, 10010);

        // Closing a connection forgets its state.
        drop(c1);
        let t = Instant::now();
        while emu.listen_state().len() != 1 && t.elapsed() < Duration::from_secs(3) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let states = emu.listen_state();
        assert_eq!(states.len(), 1);
        assert!(states[0].group);
    }

    #[test]
    fn push_to_all_connections() {
        let (emu, mut c1) = setup();
        let mut c2 = RawClient::connect(&emu.endpoint());
        // Make sure both are registered.
        c1.call("*ping", &map(vec![]));
        c2.call("*ping", &map(vec![]));
        std::thread::scope(|s| {
            let pushes =
                s.spawn(|| emu.push_to_all("pushevent", map(vec![("event", "login".into())])));
            let q = c1.read_quest();
            assert_eq!(q.method, "pushevent");
            c1.answer(q.seq.unwrap(), &map(vec![]));
            let q = c2.read_quest();
            c2.answer_error(q.seq.unwrap(), 20004, "no handler");
            let results = pushes.join().unwrap();
            assert_eq!(results.len(), 2);
            assert!(results[0].is_ok());
            assert_eq!(results[1].as_ref().unwrap_err().server_code(), Some(20004));
        });
        let methods: Vec<String> = emu.received().into_iter().map(|(m, _)| m).collect();
        assert_eq!(methods, ["*ping", "*ping"]);
        emu.clear_received();
        assert!(emu.received().is_empty());
    }

    #[test]
    fn encrypted_emulator_and_restart() {
        let key = ServerPrivateKey::generate(Curve::Secp256k1);
        let public = key.public_key();
        let mut emu =
            RtmEmulator::start_with(PID, SECRET, ServerOptions::new().encryption(key)).unwrap();
        let mut c = RawClient::connect(&emu.endpoint());
        c.handshake(&public, CipherMode::Package, KeyBits::Aes128, false);
        call(
            &mut c,
            "pullIntoVoiceRoom",
            vec![("rid", 3.into()), ("toUids", arr(&[1]))],
        )
        .unwrap();
        let list = call(&mut c, "getVoiceRoomList", vec![]).unwrap();
        assert_eq!(ints(&list, "rids"), [3]);
        let addr = emu.local_addr();
        emu.stop();
        c.expect_closed();
        assert_eq!(emu.rooms().voice.len(), 1);
        // A new emulator on the same port.
        let emu2 = RtmEmulator::start_with(PID, SECRET, ServerOptions::new().addr(addr)).unwrap();
        assert_eq!(emu2.endpoint(), format!("127.0.0.1:{}", addr.port()));
        let mut c = RawClient::connect(&emu2.endpoint());
        let list = call(&mut c, "getVoiceRoomList", vec![]).unwrap();
        assert!(ints(&list, "rids").is_empty());
    }

    #[test]
    fn faults_apply_to_the_emulator() {
        let (emu, mut c) = setup();
        emu.server().faults().set_drop_every(1);
        c.send(
            "getVoiceRoomList",
            &signed_with(PID, SECRET, "getVoiceRoomList", vec![]),
        );
        c.expect_closed();
        emu.server().faults().set_drop_every(0);
        let mut c = RawClient::connect(&emu.endpoint());
        assert!(call(&mut c, "getVoiceRoomList", vec![]).is_ok());
    }

    #[test]
    fn clock_skew_window() {
        let (emu, mut c) = setup();
        assert_eq!(emu.max_clock_skew(), None);
        // Not checked by default: any ts passes.
        let mut p = signed_with(PID, SECRET, "getVoiceRoomList", vec![]);
        let stale = |p: &mut Value, ts: i64| {
            let Value::Map(entries) = p else {
                unreachable!()
            };
            let salt = entries[2].1.as_i64().unwrap();
            entries[3].1 = Value::from(ts);
            entries[1].1 = Value::from(rtm_sign(
                &PID.to_string(),
                SECRET,
                &salt.to_string(),
                "getVoiceRoomList",
                &ts.to_string(),
            ));
        };
        stale(&mut p, now_s() - 7200);
        assert!(c.call("getVoiceRoomList", &p).into_result().is_ok());
        emu.set_max_clock_skew(Some(Duration::from_secs(60)));
        assert_eq!(emu.max_clock_skew(), Some(Duration::from_secs(60)));
        for ts in [now_s() - 7200, now_s() + 120, 1 << 40] {
            let mut p = signed_with(PID, SECRET, "getVoiceRoomList", vec![]);
            stale(&mut p, ts);
            let (code, msg) = err_msg(c.call("getVoiceRoomList", &p).into_result());
            assert_eq!(code, codes::RTM_EC_INVALID_SERVER_TIME, "{msg}");
            assert!(msg.contains("60 s"), "{msg}");
        }
        let mut p = signed_with(PID, SECRET, "getVoiceRoomList", vec![]);
        stale(&mut p, now_s() - 30);
        assert!(c.call("getVoiceRoomList", &p).into_result().is_ok());
        // The window follows the emulator's clock.
        emu.advance_clock(Duration::from_secs(3600));
        assert_eq!(
            code(call(&mut c, "getVoiceRoomList", vec![])),
            codes::RTM_EC_INVALID_SERVER_TIME
        );
        emu.set_max_clock_skew(None);
        assert!(call(&mut c, "getVoiceRoomList", vec![]).is_ok());
    }

    #[test]
    fn injected_failures_and_delays() {
        let (emu, mut c) = setup();
        let faults = emu.faults();
        faults.set_fail("getVoiceRoomList", 20003);
        assert_eq!(code(call(&mut c, "getVoiceRoomList", vec![])), 20003);
        assert!(call(&mut c, "getRTCRoomList", vec![]).is_ok());
        // Authentication comes first.
        let p = signed_with(PID, "wrong", "getVoiceRoomList", vec![]);
        assert_eq!(
            code(c.call("getVoiceRoomList", &p).into_result()),
            codes::RTM_EC_INVALID_PID_OR_SIGN
        );
        faults.set_fail("*", 30000);
        assert_eq!(code(call(&mut c, "getRTCRoomList", vec![])), 30000);
        assert_eq!(code(call(&mut c, "getVoiceRoomList", vec![])), 20003);
        // A failed pull changes nothing.
        assert_eq!(
            code(call(
                &mut c,
                "pullIntoVoiceRoom",
                vec![("rid", 1.into()), ("toUids", arr(&[1]))]
            )),
            30000
        );
        assert!(emu.rooms().voice.is_empty());
        faults.clear_fail("*");
        faults.clear_fail("getVoiceRoomList");
        assert_eq!(faults.fail_for("getVoiceRoomList"), None);
        assert!(call(&mut c, "getVoiceRoomList", vec![]).is_ok());

        // A delayed method holds back neither the connection nor another.
        faults.set_delay("getVoiceRoomList", Duration::from_millis(1500));
        assert_eq!(
            faults.delay_for("getVoiceRoomList"),
            Duration::from_millis(1500)
        );
        assert_eq!(faults.delay_for("getRTCRoomList"), Duration::ZERO);
        let t = Instant::now();
        let slow = c.send(
            "getVoiceRoomList",
            &signed_with(PID, SECRET, "getVoiceRoomList", vec![]),
        );
        let fast = c.send(
            "getRTCRoomList",
            &signed_with(PID, SECRET, "getRTCRoomList", vec![]),
        );
        let mut other = RawClient::connect(&emu.endpoint());
        assert!(call(&mut other, "getRTCRoomList", vec![]).is_ok());
        assert!(t.elapsed() < Duration::from_millis(1200));
        assert_eq!(c.read_answer().seq, fast);
        assert!(t.elapsed() < Duration::from_millis(1200));
        assert_eq!(c.read_answer().seq, slow);
        assert!(t.elapsed() >= Duration::from_millis(1500));
        faults.set_delay("*", Duration::from_millis(150));
        assert_eq!(
            faults.delay_for("getRTCRoomList"),
            Duration::from_millis(150)
        );
        assert_eq!(
            faults.delay_for("getVoiceRoomList"),
            Duration::from_millis(1500)
        );
        faults.set_delay("getVoiceRoomList", Duration::ZERO);
        assert_eq!(faults.delay_for("getVoiceRoomList"), Duration::ZERO);
        faults.clear_delay("getVoiceRoomList");
        assert_eq!(
            faults.delay_for("getVoiceRoomList"),
            Duration::from_millis(150)
        );
        faults.clear();
        assert_eq!(faults.delay_for("getVoiceRoomList"), Duration::ZERO);
    }

    #[test]
    fn drop_after_closes_each_connection_on_its_next_quest() {
        let (emu, mut c) = setup();
        emu.faults().set_drop_after(2);
        assert_eq!(emu.faults().drop_after(), 2);
        for _ in 0..2 {
            assert!(call(&mut c, "getVoiceRoomList", vec![]).is_ok());
        }
        // *ping does not count.
        assert!(c.call("*ping", &map(vec![])).into_result().is_ok());
        c.send(
            "getVoiceRoomList",
            &signed_with(PID, SECRET, "getVoiceRoomList", vec![]),
        );
        c.expect_closed();
        // A new connection gets its own count.
        let mut c = RawClient::connect(&emu.endpoint());
        for _ in 0..2 {
            assert!(call(&mut c, "getVoiceRoomList", vec![]).is_ok());
        }
        emu.faults().set_drop_after(0);
        assert!(call(&mut c, "getVoiceRoomList", vec![]).is_ok());
    }

    #[test]
    fn observer_sees_every_rtm_quest() {
        let seen: Arc<Mutex<Vec<QuestRecord>>> = Arc::default();
        let sink = seen.clone();
        let options = EmulatorOptions::new().observer(move |r: &QuestRecord| {
            lock(&sink).push(r.clone());
        });
        let emu = RtmEmulator::start_with_options(PID, SECRET, options).unwrap();
        let mut c = RawClient::connect(&emu.endpoint());
        call(
            &mut c,
            "pullIntoVoiceRoom",
            vec![("rid", 7.into()), ("toUids", arr(&[1, 2, 3, 4, 5, 6, 7]))],
        )
        .unwrap();
        assert!(call(&mut c, "getVoiceRoomMembers", vec![("rid", 99.into())]).is_err());
        c.call("*ping", &map(vec![]));
        c.call("noSuchMethod", &map(vec![]));
        emu.faults().set_drop_after(1);
        assert!(call(&mut c, "getRTCRoomList", vec![]).is_ok());
        c.send(
            "getVoiceRoomList",
            &signed_with(PID, SECRET, "getVoiceRoomList", vec![]),
        );
        c.expect_closed();
        let records = lock(&seen).clone();
        let methods: Vec<&str> = records.iter().map(|r| r.method.as_str()).collect();
        assert_eq!(
            methods,
            [
                "pullIntoVoiceRoom",
                "getVoiceRoomMembers",
                "noSuchMethod",
                "getRTCRoomList",
                "getVoiceRoomList"
            ]
        );
        assert_eq!(records[0].outcome, QuestOutcome::Ok);
        assert_eq!(records[0].params, "rid=7 toUids=[1,2,3,4,5,…2 more]");
        assert_eq!(records[1].outcome.code(), codes::RTM_EC_NOT_IN_ROOM);
        assert_eq!(records[1].params, "rid=99");
        assert_eq!(
            records[2].outcome.code(),
            codes::FPNN_EC_CORE_UNKNOWN_METHOD
        );
        assert_eq!(records[3].outcome, QuestOutcome::Ok);
        assert_eq!(records[4].outcome, QuestOutcome::Closed);
        assert!(records.iter().all(|r| r.conn_id == records[0].conn_id));
        assert!(records[0].elapsed < Duration::from_secs(1));
        // Removing the observer stops the records.
        emu.set_quest_observer(None);
        let mut c = RawClient::connect(&emu.endpoint());
        assert!(call(&mut c, "getVoiceRoomList", vec![]).is_ok());
        assert_eq!(lock(&seen).len(), 5);
    }

    #[test]
    fn connection_observer_sees_opens_and_closes_with_reasons() {
        let events: Arc<Mutex<Vec<ConnectionEvent>>> = Arc::default();
        let sink = events.clone();
        let key = ServerPrivateKey::generate(Curve::Secp256k1);
        let public = key.public_key();
        let options = EmulatorOptions::new()
            .server(ServerOptions::new().encryption(key))
            .connection_observer(move |e: &ConnectionEvent| lock(&sink).push(e.clone()));
        let emu = RtmEmulator::start_with_options(PID, SECRET, options).unwrap();
        // Not a `*key` first on an encrypted emulator: closed, with why.
        let mut c = RawClient::connect(&emu.endpoint());
        c.send("getVoiceRoomList", &map(vec![]));
        c.expect_closed();
        // An encrypted client, closed by the client.
        let mut c = RawClient::connect(&emu.endpoint());
        c.handshake(&public, CipherMode::Package, KeyBits::Aes128, false);
        assert!(call(&mut c, "getVoiceRoomList", vec![]).is_ok());
        drop(c);
        let t = Instant::now();
        while lock(&events).len() < 5 && t.elapsed() < Duration::from_secs(3) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let events = lock(&events).clone();
        assert!(
            matches!(
                events[2..],
                [
                    ConnectionEvent::Opened { conn_id: 2, .. },
                    ConnectionEvent::Encrypted {
                        conn_id: 2,
                        mode: CipherMode::Package,
                        bits: KeyBits::Aes128,
                        ..
                    },
                    ConnectionEvent::Closed {
                        conn_id: 2,
                        reason: None,
                        ..
                    },
                ]
            ),
            "{events:?}"
        );
        assert!(
            matches!(events[0], ConnectionEvent::Opened { conn_id: 1, .. }),
            "{events:?}"
        );
        match &events[1] {
            ConnectionEvent::Closed {
                conn_id: 1,
                reason: Some(reason),
                ..
            } => assert!(reason.contains("not a two-way `*key`"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_client_slow_to_answer_pushes_holds_back_no_other() {
        let (emu, mut sender) = setup();
        let mut slow = RawClient::connect(&emu.endpoint());
        let mut fast = RawClient::connect(&emu.endpoint());
        for c in [&mut slow, &mut fast] {
            call(c, "setlisten", vec![("p2p", true.into())]).unwrap();
        }
        let t = Instant::now();
        for mid in 1..=3i64 {
            let msg = vec![
                ("from", 1.into()),
                ("to", 2.into()),
                ("mid", mid.into()),
                ("mtype", 30.into()),
                ("msg", "hi".into()),
                ("attrs", "".into()),
            ];
            call(&mut sender, "sendmsg", msg).unwrap();
        }
        // The fast listener gets every push, in order, while the slow one
        // still has not answered its first.
        for mid in 1..=3i64 {
            let q = fast.read_quest();
            assert_eq!(q.method, "pushmsg");
            assert_eq!(
                map_get(&q.payload, "mid").and_then(Value::as_i64),
                Some(mid)
            );
            fast.answer(q.seq.unwrap(), &map(vec![]));
        }
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        let q = slow.read_quest();
        assert_eq!(map_get(&q.payload, "mid").and_then(Value::as_i64), Some(1));
    }

    #[test]
    fn params_summary() {
        let long = "x".repeat(100);
        let p = map(vec![
            ("pid", 1.into()),
            ("sign", "S".into()),
            ("msg", Value::from(long.as_str())),
            ("data", Value::Binary(vec![0; 12])),
            ("m", map(vec![("k", arr(&[1]))])),
        ]);
        let s = summarize_params(&p);
        assert!(s.starts_with("msg=\"xxxx"), "{s}");
        assert!(s.contains("…"), "{s}");
        assert!(s.contains("data=<bin 12 bytes>"), "{s}");
        assert!(s.ends_with("m={\"k\":[1]}"), "{s}");
        assert!(!s.contains("pid") && !s.contains("sign"), "{s}");
        let big = map(vec![("uids", arr(&vec![123456789; 500]))]);
        assert!(summarize_params(&big).chars().count() < 260);
    }
}
