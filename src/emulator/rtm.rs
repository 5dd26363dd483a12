//! The core of the RTM emulator: an [`FpnnServer`] service that
//! authenticates quests like the RTM gateway and hands each to its API
//! family (one file each under `src/emulator/`, listed in the
//! [emulator's docs](super)), the one state they share (`RtmState`), the
//! pushes they queue, and [`RtmEmulator`] itself.
//!
//! # Behaviour
//!
//! Every quest is checked on its raw payload before anything of it is
//! decoded or recorded (a refused quest is answered and forgotten; see
//! [`Service::admit`]), in this order:
//!
//! * The [`EmulatorFaults::set_drop_after`] fault counts it (and may close
//!   the connection).
//! * An unknown method gives 20004.
//! * Every quest except `*ping` and `*key` must carry `pid` (the emulator's
//!   project id), `salt`, `ts` (ints of any width) and `sign` (a `str`, or
//!   a `bin` holding the text), with
//!   `sign == UPPERCASE_HEX(MD5("<pid>:<secret>:<salt>:<method>:<ts>"))`
//!   (`docs/protocol.md`, section 4); otherwise the answer is error 200002
//!   (`RTM_EC_INVALID_PID_OR_SIGN`). Only these four values are read, each
//!   after its msgpack marker says it has the right type.
//! * `ts` (seconds) is not compared with the clock unless a window is set
//!   ([`RtmEmulator::set_max_clock_skew`],
//!   [`EmulatorOptions::max_clock_skew`]; the standalone program sets one
//!   hour by default): outside it the answer is 200008
//!   (`RTM_EC_INVALID_SERVER_TIME`).
//! * The replay memory: a signature seen before gives 200006
//!   (`RTM_EC_SAME_SIGN`, "same sign"). The memory holds at most
//!   [`EmulatorOptions::remembered_signs`] signatures (default
//!   [`DEFAULT_REMEMBERED_SIGNS`], half a million: about 28 MB at most). When
//!   it is full, the signature with the oldest `ts` is forgotten for each
//!   new one, and that `ts` becomes its low-water mark: a quest whose `ts`
//!   is at or below the mark is refused with 200006 too (its message says
//!   so), since it may be a replay the memory no longer covers. A captured
//!   quest is therefore refused however much traffic follows it.
//!   The memory spans `remembered_signs / quests per second` seconds of
//!   traffic (over an hour at 100 quests/s), but never less than the last
//!   two seconds by the emulator's clock: a signature whose `ts` is that
//!   recent is kept beyond the capacity rather than forgotten, so the mark
//!   stays at least two seconds behind the clock and a client that signs
//!   with the current time is never refused because of others' traffic
//!   (at the emulator's full speed on two cores, about 500,000 quests/s,
//!   that is up to a million signatures, 36 MB, more than the capacity;
//!   only holders of the secret add to it). A client whose quests take
//!   longer than the span to arrive, or whose clock is behind the others'
//!   by more, can be refused. This crate's client (and the official SDKs)
//!   re-sign and resend once on 200006.
//!
//! A refused quest is reported to the quest observer
//! ([`RtmEmulator::set_quest_observer`]) like any other, with its
//! parameters summarised only when its payload is at most
//! [`REFUSED_SUMMARY_MAX`] bytes; a method's delay fault applies to its
//! refusals too. Then, for an admitted quest: a missing parameter gives
//! 10009 and a parameter of the wrong type 10010 (the message names the
//! key); ids are any msgpack int that fits an `i64`; the RTM fault
//! switches apply ([`EmulatorFaults`]: an injected error, a delayed
//! answer), and the quest observer sees the outcome ([`QuestRecord`]).

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmpv::Value;

use super::auth::{raw_int, raw_text, sign_matches, Replay, SeenSigns, SignedKeys, Signer};
use super::options::{
    summarize_params, ConnEvent, ConnectionObserver, EmulatorFaults, EmulatorOptions,
    QuestObserver, QuestOutcome, QuestRecord,
};
use super::params::*;
use super::server::{lock, FpnnServer, Reply, ServerConn, ServerOptions, Service};
use crate::codes;
use crate::fpnn::codec::Quest;

/// How many signatures the replay memory of an emulator holds by default
/// ([`EmulatorOptions::remembered_signs`](super::EmulatorOptions::remembered_signs)):
/// half a million: about 18 MB when full (a hash set of 64-bit digests and
/// a queue of `(ts, digest)`, measured after 2 million quests), 28 MB at
/// most should the set grow once more; and about a second of the
/// emulator's full speed on a two-core machine (400,000-500,000 quests/s
/// from one pipelining client) before the low-water mark starts to rise.
/// Signatures of the last two seconds are kept beyond it (see the module
/// docs).
pub const DEFAULT_REMEMBERED_SIGNS: usize = 500_000;

/// The largest payload of a refused quest that is decoded for the quest
/// observer's summary ([`QuestRecord::params`]); a larger one is reported
/// by its size only.
pub const REFUSED_SUMMARY_MAX: usize = 4096;

/// The whole state of an emulator, behind one lock. Each API family keeps
/// its part in a field of its own, defined in its own file.
///
/// The state file of the standalone emulator is this struct as JSON
/// (`super::persist`), without the per-connection and anti-replay parts
/// (`#[serde(skip)]`): a new field must be serializable or skipped, and a
/// saved one is listed in `persist::Snapshot` too (what a save writes,
/// taken under the lock and serialised outside it; a test checks that both
/// write the same JSON). Missing fields load as their defaults, so older
/// state files still load.
#[derive(Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
#[allow(dead_code)] // families fill in their parts
pub(crate) struct RtmState {
    pub(crate) voice: super::voice::VoiceRooms,
    pub(crate) rtc: super::rtc::RtcRooms,
    #[serde(skip)]
    pub(crate) listen: super::listen::Listen,
    /// Added to the real clock (see [`RtmEmulator::advance_clock`]).
    pub(crate) clock_offset_ms: i64,
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

/// Every family.
const FAMILIES: &[&Family] = &[
    &super::voice::FAMILY,
    &super::rtc::FAMILY,
    &super::listen::FAMILY,
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
    FAMILIES
        .iter()
        .flat_map(|f| f.methods.iter().copied())
        .collect()
}

pub(crate) struct RtmShared {
    pub(crate) pid: i64,
    /// Computes the signatures of this project (its secret inside).
    signer: Signer,
    /// The replay memory (its own lock: the signature check never waits
    /// for the state).
    seen: Mutex<SeenSigns>,
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
    /// The pushes waiting for each connection, with their limits.
    pub(crate) push_queues: super::pushes::PushQueues,
    /// The counters of [`RtmEmulator::stats`].
    pub(crate) stats: super::stats::Stats,
}

struct RtmService(Arc<RtmShared>);

/// A running RTM emulator, on `127.0.0.1` unless its
/// [`ServerOptions::addr`] says otherwise (see the [emulator's docs](super)).
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
            signer: Signer::new(pid, secret),
            seen: Mutex::new(SeenSigns::new(options.remembered_signs)),
            state: Mutex::new(state),
            conns: Mutex::new(HashMap::new()),
            faults: options.faults,
            observer: Mutex::new(options.observer),
            connection_observer: Mutex::new(options.connection_observer),
            max_clock_skew_ms: AtomicU64::new(skew_ms(options.max_clock_skew)),
            quest_counts: Mutex::new(HashMap::new()),
            push_queues: super::pushes::PushQueues::new(options.push_queue),
            stats: super::stats::Stats::new(),
        });
        let max_payload = options.server.max_payload;
        let server = FpnnServer::start(RtmService(shared.clone()), options.server)?;
        let ip = server.local_addr().ip();
        let file_gate = super::files::start_gate(shared.clone(), max_payload, ip)?;
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

    /// Every quest received (see [`FpnnServer::received`]).
    pub fn received(&self) -> Vec<(String, Value)> {
        self.server.received()
    }

    /// Empties the received log.
    pub fn clear_received(&self) {
        self.server.clear_received();
    }
}

// ---------------------------------------------------------------------------
// The service
// ---------------------------------------------------------------------------

/// The signature the gateway expects, from the decimal texts of `salt` and
/// `ts` (for tests: a salt above `i64::MAX`, which other SDKs may send as a
/// msgpack uint64, cannot be signed by `crate::rtm::sign`).
#[cfg(test)]
pub(crate) fn rtm_sign(pid: &str, secret: &str, salt: &str, method: &str, ts: &str) -> String {
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
    /// Everything that decides whether a quest is served, on its raw
    /// payload: the `drop_after` fault, the method, the signature, the `ts`
    /// window and the replay memory. A refused quest is answered (after its
    /// method's delay fault, if any) and reported to the quest observer
    /// ([`QuestRecord::params`] summarises it only when it is small).
    fn admit(&self, conn: &ServerConn, method: &str, payload: &[u8]) -> Result<(), Reply> {
        let started = Instant::now();
        let faults = &self.0.faults;
        let drop_after = faults.drop_after();
        if drop_after > 0 {
            let mut counts = lock(&self.0.quest_counts);
            let n = counts.entry(conn.id()).or_insert(0);
            *n += 1;
            if *n > drop_after {
                log::debug!(
                    "emulator: closing connection {} on its quest {n} (drop after {drop_after})",
                    conn.id()
                );
                drop(counts);
                let zero = Duration::ZERO;
                self.0
                    .report_refused(conn, method, payload, &Reply::Close, started, zero, false);
                return Err(Reply::Close);
            }
        }
        let refusal = if family_of(method).is_none() {
            Reply::error(
                codes::FPNN_EC_CORE_UNKNOWN_METHOD,
                format!("unknown method `{method}`"),
            )
        } else {
            match self.0.authenticate(method, payload) {
                Ok(()) => return Ok(()),
                Err(r) => r,
            }
        };
        log::debug!("emulator: `{method}` refused: {refusal:?}");
        let delay = faults.delay_for(method);
        self.0
            .report_refused(conn, method, payload, &refusal, started, delay, false);
        Err(if delay.is_zero() {
            refusal
        } else {
            Reply::after(delay, refusal)
        })
    }

    /// Serves an admitted quest (authenticated by [`admit`](Self::admit),
    /// which counted it for the `drop_after` fault).
    fn on_quest(&self, conn: &ServerConn, quest: &Quest) -> Reply {
        let started = Instant::now();
        let method = quest.method.as_str();
        let reply = self.handle(conn, method, &quest.payload);
        let delay = self.0.faults.delay_for(method);
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
            observer(&ConnEvent::Opened {
                conn_id: conn.id(),
                peer: conn.peer_addr(),
            });
        }
    }

    fn on_encrypted(&self, conn: &ServerConn) {
        let observer = lock(&self.0.connection_observer).clone();
        if let (Some(observer), Some((mode, bits))) = (observer, conn.encryption()) {
            observer(&ConnEvent::Encrypted {
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
        lock(&self.0.state).listen.forget(conn.id());
        let observer = lock(&self.0.connection_observer).clone();
        if let Some(observer) = observer {
            observer(&ConnEvent::Closed {
                conn_id: conn.id(),
                peer: conn.peer_addr(),
                reason: conn.close_reason(),
            });
        }
    }
}

impl RtmService {
    /// Runs one admitted RTM quest: the injected failure, if any, then its
    /// family.
    fn handle(&self, conn: &ServerConn, method: &str, payload: &Value) -> Reply {
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

    /// Runs a quest through its family, under the state lock.
    fn dispatch(&self, cx: &mut Ctx<'_>, method: &str, p: &Value) -> R<Value> {
        let family = family_of(method).ok_or_else(|| unknown_method(method))?;
        let mut st = lock(&self.0.state);
        (family.dispatch)(&mut st, cx, method, p)
    }
}

impl RtmShared {
    /// Checks the signature keys of a quest on its raw payload: each value
    /// is read only after its msgpack marker says it is an int (`pid`,
    /// `salt`, `ts`) or a `str`/`bin` (`sign`), so a huge value under one
    /// of these keys is never decoded. Nothing is allocated unless the
    /// quest is refused.
    fn authenticate(&self, method: &str, payload: &[u8]) -> R<()> {
        let bad = |why: &'static str| Reply::error(codes::RTM_EC_INVALID_PID_OR_SIGN, why);
        let keys = SignedKeys::find(payload);
        let pid = keys
            .pid
            .and_then(raw_int)
            .filter(|p| i64::try_from(*p).is_ok())
            .ok_or_else(|| bad("missing or invalid pid"))?;
        if pid != i128::from(self.pid) {
            return Err(bad("invalid pid"));
        }
        let salt = keys
            .salt
            .and_then(raw_int)
            .ok_or_else(|| bad("missing or invalid salt"))?;
        let ts = keys
            .ts
            .and_then(raw_int)
            .ok_or_else(|| bad("missing or invalid ts"))?;
        let sign = keys
            .sign
            .and_then(raw_text)
            .ok_or_else(|| bad("missing or invalid sign"))?;
        let digest = self.signer.digest(salt, method, ts);
        if !sign_matches(sign, &digest) {
            return Err(bad("invalid sign"));
        }
        let max_skew_ms = self.max_clock_skew_ms.load(Ordering::SeqCst);
        if max_skew_ms != u64::MAX {
            let now_ms = i128::from(lock(&self.state).now_ms());
            let off = (ts * 1000 - now_ms).unsigned_abs();
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
        // Lock order: the replay memory, then (only when it is over its
        // capacity) the state, for the clock.
        let now_s = || lock(&self.state).now_ms().div_euclid(1000);
        match lock(&self.seen).admit_at(ts, &digest, now_s) {
            Ok(()) => Ok(()),
            Err(Replay::SameSign) => Err(Reply::error(codes::RTM_EC_SAME_SIGN, "same sign")),
            Err(Replay::BelowLowWater { low_water }) => Err(Reply::error(
                codes::RTM_EC_SAME_SIGN,
                format!(
                    "same sign or older: ts {ts} is at or below {low_water}, the oldest ts \
                     the emulator's replay memory no longer covers (sign again with a current ts)"
                ),
            )),
        }
    }

    /// Reports a quest refused before it was decoded to the quest
    /// observer, if any: its parameters are summarised when its payload is
    /// at most [`REFUSED_SUMMARY_MAX`] bytes (decoding that much is cheap
    /// and bounded), otherwise only its size is given.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn report_refused(
        &self,
        conn: &ServerConn,
        method: &str,
        payload: &[u8],
        reply: &Reply,
        started: Instant,
        delay: Duration,
        file_gate: bool,
    ) {
        self.stats.count(method, reply);
        if lock(&self.observer).is_none() {
            return;
        }
        let value = if payload.len() <= REFUSED_SUMMARY_MAX {
            rmpv::decode::read_value(&mut &payload[..]).ok()
        } else {
            None
        };
        let value = value.unwrap_or_else(|| {
            Value::Map(vec![(
                Value::from("(not decoded)"),
                Value::from(format!("{} bytes", payload.len())),
            )])
        });
        self.observe(conn, method, &value, reply, started, delay, file_gate);
    }

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
        self.stats.count(method, reply);
        self.observe(conn, method, payload, reply, started, delay, file_gate);
    }

    /// Gives the quest observer, if any, the record of a quest (counted
    /// already).
    #[allow(clippy::too_many_arguments)]
    fn observe(
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
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rmpv::Value;

    use super::*;
    use crate::emulator::testutil::*;
    use crate::fpnn::crypto::{CipherMode, Curve, KeyBits, ServerPrivateKey};

    #[test]
    fn worked_example_sign() {
        // The signing rule of `docs/protocol.md`, section 4, on known values.
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
}
