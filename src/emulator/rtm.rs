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
//!   (`RTM_EC_SAME_SIGN`). `ts` is not compared with the clock.
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
use std::sync::{Arc, Mutex};

use rmpv::Value;

use super::params::*;
use super::server::{lock, FpnnServer, Reply, ServerConn, ServerOptions, Service};
use crate::codes;
use crate::error::Error;
use crate::fpnn::codec::Quest;

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
#[derive(Debug, Clone, PartialEq, Eq, Default)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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
#[derive(Debug, Clone, PartialEq, Eq, Default)]
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
#[derive(Default)]
#[allow(dead_code)] // families fill in their parts
pub(crate) struct RtmState {
    voice: BTreeMap<i64, VoiceRoom>,
    rtc: BTreeMap<i64, RtcRoom>,
    seen: HashSet<(String, String)>,
    seen_order: VecDeque<(String, String)>,
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
        let shared = Arc::new(RtmShared {
            pid,
            secret: secret.to_string(),
            state: Mutex::new(RtmState::default()),
            conns: Mutex::new(HashMap::new()),
        });
        let max_payload = options.max_payload;
        let server = FpnnServer::start(RtmService(shared.clone()), options)?;
        let file_gate = super::files::start_gate(shared.clone(), max_payload)?;
        Ok(RtmEmulator {
            server,
            file_gate,
            shared,
        })
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

impl Service for RtmService {
    fn on_quest(&self, conn: &ServerConn, quest: &Quest) -> Reply {
        let method = quest.method.as_str();
        if !METHODS.contains(&method) && family_of(method).is_none() {
            return Reply::error(
                codes::FPNN_EC_CORE_UNKNOWN_METHOD,
                format!("unknown method `{method}`"),
            );
        }
        let mut cx = Ctx {
            conn,
            pid: self.0.pid,
            outbox: Vec::new(),
        };
        let result = self
            .authenticate(method, &quest.payload)
            .and_then(|()| self.dispatch(&mut cx, method, &quest.payload));
        self.0.send_outbox(std::mem::take(&mut cx.outbox));
        match result {
            Ok(v) => Reply::Answer(v),
            Err(r) => {
                log::debug!("emulator: `{method}` failed: {r:?}");
                r
            }
        }
    }

    fn on_connect(&self, conn: &ServerConn) {
        lock(&self.0.conns).insert(conn.id(), conn.clone());
    }

    fn on_disconnect(&self, conn: &ServerConn) {
        lock(&self.0.conns).remove(&conn.id());
        lock(&self.0.state).listen.remove(&conn.id());
    }
}

impl RtmService {
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
        let sign = get(p, "sign")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("missing or invalid sign"))?;
        let expected = rtm_sign(&pid.to_string(), &self.0.secret, &salt, method, &ts);
        if sign != expected {
            return Err(bad("invalid sign"));
        }
        let mut st = lock(&self.0.state);
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
    /// Sends the pushes a quest produced to the RTM connections, from a
    /// helper thread (a push waits for the client's answer, which the
    /// connection's own reader thread must stay free to read). The file
    /// gate sends its pushes here too.
    pub(crate) fn send_outbox(&self, outbox: Vec<(u64, &'static str, Value)>) {
        if outbox.is_empty() {
            return;
        }
        let conns = lock(&self.conns);
        let targets: Vec<(ServerConn, &'static str, Value)> = outbox
            .into_iter()
            .filter_map(|(id, m, v)| conns.get(&id).map(|c| (c.clone(), m, v)))
            .collect();
        drop(conns);
        if targets.is_empty() {
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("emu-push".into())
            .spawn(move || {
                for (conn, method, payload) in targets {
                    if let Err(e) = conn.push(method, payload) {
                        log::debug!("emulator: push `{method}` to connection {}: {e}", conn.id());
                    }
                }
            });
        if let Err(e) = spawned {
            log::warn!("emulator: cannot spawn a push thread: {e}");
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
}
