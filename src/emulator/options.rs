//! The emulator's options ([`EmulatorOptions`]), its RTM-level fault
//! switches ([`EmulatorFaults`]) and its observers ([`QuestRecord`],
//! [`ConnEvent`]).

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmpv::Value;

#[cfg(doc)]
use super::rtm::RtmEmulator;
use super::rtm::DEFAULT_REMEMBERED_SIGNS;
#[cfg(doc)]
use super::server::ServerConn;
use super::server::{lock, ServerOptions};
use crate::fpnn::crypto::{CipherMode, KeyBits};

/// Called by the emulator after each RTM quest, on the connection's thread
/// (keep it short). See [`RtmEmulator::set_quest_observer`].
pub type QuestObserver = Arc<dyn Fn(&QuestRecord) + Send + Sync>;

/// Called by the emulator when a connection opens or closes, on the
/// connection's thread. See [`RtmEmulator::set_connection_observer`].
pub type ConnectionObserver = Arc<dyn Fn(&ConnEvent) + Send + Sync>;

/// A connection opening or closing, given to the connection observer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnEvent {
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
    /// How many signatures the replay memory holds (default
    /// [`DEFAULT_REMEMBERED_SIGNS`], half a million, about 28 MB; 0 is taken
    /// as 1). When it is full, the signature with the oldest `ts` is
    /// forgotten for each new one, and every
    /// quest with a `ts` at or below that one is refused with 200006
    /// (`RTM_EC_SAME_SIGN`), so that no captured quest can be replayed,
    /// however much traffic follows it (see the [emulator's
    /// docs](super::rtm#behaviour)).
    pub remembered_signs: usize,
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        EmulatorOptions {
            server: ServerOptions::default(),
            max_clock_skew: None,
            faults: EmulatorFaults::default(),
            observer: None,
            connection_observer: None,
            state_json: None,
            remembered_signs: DEFAULT_REMEMBERED_SIGNS,
        }
    }
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
            .field("remembered_signs", &self.remembered_signs)
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
        observer: impl Fn(&ConnEvent) + Send + Sync + 'static,
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

    /// Sets how many signatures the replay memory holds
    /// ([`remembered_signs`](Self::remembered_signs)).
    #[must_use]
    pub fn remembered_signs(mut self, n: usize) -> Self {
        self.remembered_signs = n;
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
pub(crate) fn summarize_params(p: &Value) -> String {
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use rmpv::Value;

    use super::*;
    use crate::codes;
    use crate::emulator::rtm::RtmEmulator;
    use crate::emulator::server::lock;
    use crate::emulator::testutil::*;
    use crate::fpnn::crypto::{CipherMode, Curve, KeyBits, ServerPrivateKey};

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
        let events: Arc<Mutex<Vec<ConnEvent>>> = Arc::default();
        let sink = events.clone();
        let key = ServerPrivateKey::generate(Curve::Secp256k1);
        let public = key.public_key();
        let options = EmulatorOptions::new()
            .server(ServerOptions::new().encryption(key))
            .connection_observer(move |e: &ConnEvent| lock(&sink).push(e.clone()));
        let emu = RtmEmulator::start_with_options(PID, SECRET, options).unwrap();
        // Not a `*key` first on an encrypted emulator: closed, with why.
        let mut c = RawClient::connect(&emu.endpoint());
        c.send("getVoiceRoomList", &map(vec![]));
        c.expect_closed();
        // The server reports that close on its own thread: wait for it, so
        // that the next connection's events come after it.
        let t = Instant::now();
        while lock(&events).len() < 2 && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        // An encrypted client, closed by the client.
        let mut c = RawClient::connect(&emu.endpoint());
        c.handshake(&public, CipherMode::Package, KeyBits::Aes128, false);
        assert!(call(&mut c, "getVoiceRoomList", vec![]).is_ok());
        drop(c);
        let t = Instant::now();
        while lock(&events).len() < 5 && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let events = lock(&events).clone();
        assert!(
            matches!(
                events[2..],
                [
                    ConnEvent::Opened { conn_id: 2, .. },
                    ConnEvent::Encrypted {
                        conn_id: 2,
                        mode: CipherMode::Package,
                        bits: KeyBits::Aes128,
                        ..
                    },
                    ConnEvent::Closed {
                        conn_id: 2,
                        reason: None,
                        ..
                    },
                ]
            ),
            "{events:?}"
        );
        assert!(
            matches!(events[0], ConnEvent::Opened { conn_id: 1, .. }),
            "{events:?}"
        );
        match &events[1] {
            ConnEvent::Closed {
                conn_id: 1,
                reason: Some(reason),
                ..
            } => assert!(reason.contains("not a two-way `*key`"), "{reason}"),
            other => panic!("{other:?}"),
        }
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
