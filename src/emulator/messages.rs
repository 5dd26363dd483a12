//! Messages and history (and the chat forms).
//!
//! Every message sent through the emulator (by `sendmsg`, `sendmsgs`,
//! `sendgroupmsg`, `sendroommsg`, `broadcastmsg`, or a file through the
//! file gate) goes through `deliver`: it is stored with a cursor id and
//! the emulator's time, and pushed to every connection that listens to it
//! (`docs/protocol.md`, section 5): a P2P message to connections listening to its
//! sender or receiver (`uids`) or to every P2P message (`p2p`), a group
//! message to those listening to the group (`gids`) or to every group
//! (`group`), a room message likewise with `rids` and `room`. Broadcast
//! messages are stored and not pushed (the server pushes no broadcast
//! method). `sendmsgs` stores one P2P message per receiver, all with the
//! same `mid`.
//!
//! # Rules
//!
//! * Cursor ids increase from 1 in storage order over the whole emulator
//!   and are never reused (not even after a delete); `mtime` is the
//!   emulator's clock in milliseconds
//!   ([`RtmEmulator::advance_clock`](super::RtmEmulator::advance_clock)
//!   moves it).
//! * Sends: `mtype` must be in 0..=127 (otherwise 200005,
//!   `RTM_EC_INVALID_MTYPE`); `msg` is `str` or `bin` and is stored and
//!   pushed as it came; a `mid` that the same sender already used in the
//!   same conversation gives 200053 (`RTM_EC_DUPLICATED_MID`); `sendmsgs`
//!   with an empty `tos` gives 200033 (`RTM_EC_EMPTY_PARAMETER`).
//! * History (`getp2pmsg`, `getgroupmsg`, `getroommsg`,
//!   `getbroadcastmsg`): `desc`, `num`, `begin`, `end` and `lastid` are
//!   required (Go always sends them), `uid` too except for P2P (`uid` and
//!   `ouid`). A P2P conversation holds both directions. The window keeps
//!   messages with `begin <= mtime <= end`, a bound of 0 being open;
//!   `mtypes`, when given and not empty, keeps those types. With
//!   `lastid > 0`, a `desc` page holds the messages with a smaller cursor
//!   id, an ascending page those with a greater one. A page holds at most
//!   `num` messages (1..=32767, otherwise 200034) and at most 20
//!   ([`HISTORY_PAGE_MAX`], the service's documented cap); the answer's `lastid`
//!   is the cursor id of its last message (the request's when the page is
//!   empty), and `begin` and `end` are the request's. Rows are
//!   `[id, from, mtype, mid, false, msg, attrs, mtime]`, with element 1
//!   the direction in P2P history (1: sent by `uid`, 2: by `ouid`).
//! * `delmsg`, `getmsg` and `editmsg` find the message by `mid`, sender
//!   `from` and conversation (`type` 1..=4 and `xid`: the receiver, group
//!   or room; ignored for broadcast); none gives 200070
//!   (`RTM_EC_MESSAGE_NOT_FOUND`). `editmsg` replaces `msg` and `attrs`
//!   when the message is at most `timeLimit` seconds old (otherwise 200021,
//!   `RTM_EC_PERMISSION_DENIED`; a negative limit gives 200034).
//! * `cleanmsg` deletes, within the `begin`..=`end` window (0 = open), the
//!   messages of a conversation: for P2P both directions between `from`
//!   and `xid`; for groups, rooms and broadcast the messages of sender
//!   `from`, or of every sender when `from` is 0.
//! * `clearprojectmsg` deletes every message of a kind (`type` 0 P2P,
//!   1 room, 2 group, 3 broadcast, 4 all).
//! * `delconversationmsgs` deletes a whole conversation: P2P both
//!   directions between `from` and `xid`; a group's or a room's every
//!   message; every broadcast message.
//! * `getmsgnum` counts the messages of a conversation (for P2P, every
//!   message to or from user `xid`; for broadcast, `xid` is ignored)
//!   within the optional window and types: `num` messages from `sender`
//!   distinct senders.
//! * A `type` outside its enum gives 200034 (`RTM_EC_INVALID_PARAMETER`).
//!
//! # Cost
//!
//! The store is indexed, so that a quest costs the same however many
//! messages it holds (a million and more): the duplicate-`mid` check and
//! `getmsg`/`editmsg`/`delmsg` are hash lookups; a history page starts at
//! its cursor among its conversation's ordered ids, and its `begin`..`end`
//! window is found there by binary search on the times (only the messages
//! that `mtypes` leave out are stepped over; a conversation whose times go
//! back, as only a hand-edited state file can make them, has its window
//! checked message by message); `getmsgnum` without a window or types reads
//! counts kept per conversation (with them, the messages of the window of
//! that conversation only). `cleanmsg`, `clearprojectmsg` and
//! `delconversationmsgs` cost the messages they delete (and, for many, one
//! pass over their conversation); `clearusermsg` reads the whole store. A save does not copy the store under the state
//! lock ([`persist`](crate::emulator::persist)).
//!
//! # Lenient
//!
//! Senders, receivers, groups and rooms are not checked for existence,
//! membership, bans or blocks; `uid` of the history methods is only
//! read; `attrs` may be left out of a send (it is stored as `""`).

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use rmpv::Value;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};

use super::params::*;
use super::rtm::{Ctx, Family, RtmEmulator, RtmState};
use super::server::{lock, Reply};
use crate::codes;

/// Where a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) enum Target {
    /// A P2P message to this user.
    P2p(i64),
    /// A group message.
    Group(i64),
    /// A room message.
    Room(i64),
    /// A broadcast message.
    Broadcast,
}

/// A stored body in the state's JSON: as it arrived, `str` or `bin`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Body {
    /// Arrived as `str`.
    Text(String),
    /// Arrived as `bin` (or as a `str` that is not UTF-8).
    Binary(Vec<u8>),
}

/// Reads and writes a message body (`str` or `bin`) as a [`Body`].
mod body_serde {
    use rmpv::Value;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::Body;

    pub(super) fn serialize<S: Serializer>(v: &Value, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Value::String(t) => match t.as_str() {
                Some(t) => Body::Text(t.to_string()),
                None => Body::Binary(t.as_bytes().to_vec()),
            },
            Value::Binary(b) => Body::Binary(b.clone()),
            other => Body::Text(other.to_string()),
        }
        .serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        Ok(match Body::deserialize(d)? {
            Body::Text(t) => Value::from(t),
            Body::Binary(b) => Value::Binary(b),
        })
    }
}

/// One stored message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StoredMessage {
    /// The cursor id (increasing in storage order, from 1).
    pub id: i64,
    pub target: Target,
    pub from: i64,
    pub mtype: i64,
    pub mid: i64,
    /// The body as it arrived: `str` or `bin`.
    #[serde(with = "body_serde")]
    pub msg: Value,
    pub attrs: String,
    /// The emulator's time of storage, in milliseconds.
    pub mtime: i64,
}

/// How many messages a history page holds at most, whatever `num` asks
/// for: the service documents "10 recommended, at most 20 per call", and
/// a larger `num` is answered with at most this many (not an error).
pub const HISTORY_PAGE_MAX: usize = 20;

/// Messages per chunk of the log (see [`Messages`]).
const CHUNK: usize = 1024;

/// A conversation as the indexes key it: a P2P pair (the lower uid
/// first: both directions), a group, a room, or the broadcast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ConvKey {
    P2p(i64, i64),
    Group(i64),
    Room(i64),
    Broadcast,
}

impl ConvKey {
    /// The conversation between users `a` and `b` (either direction).
    fn p2p(a: i64, b: i64) -> ConvKey {
        ConvKey::P2p(a.min(b), a.max(b))
    }

    /// The conversation of a message from `from` to `target`.
    fn of(from: i64, target: Target) -> ConvKey {
        match target {
            Target::P2p(to) => ConvKey::p2p(from, to),
            Target::Group(g) => ConvKey::Group(g),
            Target::Room(r) => ConvKey::Room(r),
            Target::Broadcast => ConvKey::Broadcast,
        }
    }
}

/// One conversation's index: its messages' cursor ids and times in
/// cursor-id order, and how many of its messages each sender sent.
#[derive(Debug, Default)]
struct ConvIndex {
    /// `(id, mtime)` of each message, by increasing id.
    entries: Vec<(i64, i64)>,
    /// Whether some time is below an earlier message's (the emulator's
    /// clock only moves forward, but a state file may say otherwise): a
    /// time window is then checked message by message instead of found by
    /// binary search.
    unordered: bool,
    senders: HashMap<i64, usize>,
}

/// At most this many deletions from one conversation are made one by one;
/// more are made in one pass over it.
const ONE_BY_ONE: usize = 8;

impl ConvIndex {
    fn insert(&mut self, id: i64, mtime: i64) {
        // A new message: after every other.
        let at = match self.entries.last() {
            Some(last) if last.0 < id => self.entries.len(),
            _ => self.entries.partition_point(|e| e.0 < id),
        };
        if (at > 0 && self.entries[at - 1].1 > mtime)
            || self.entries.get(at).is_some_and(|e| e.1 < mtime)
        {
            self.unordered = true;
        }
        self.entries.insert(at, (id, mtime));
    }

    /// Removes these ids (sorted).
    fn remove(&mut self, ids: &[i64]) {
        if ids.len() <= ONE_BY_ONE {
            for id in ids {
                if let Ok(at) = self.entries.binary_search_by_key(id, |e| e.0) {
                    self.entries.remove(at);
                }
            }
        } else {
            self.entries.retain(|e| ids.binary_search(&e.0).is_err());
        }
    }

    /// The positions of `entries` that a page or a count reads: after the
    /// cursor `lastid` (before it with `desc`; 0: none) and, when the
    /// times are in order, within `begin..=end` (0: open), both found by
    /// binary search. Unordered times are checked by the caller.
    fn span(&self, desc: bool, lastid: i64, begin: i64, end: i64) -> std::ops::Range<usize> {
        let (mut lo, mut hi) = (0, self.entries.len());
        if lastid > 0 {
            if desc {
                hi = self.entries.partition_point(|e| e.0 < lastid);
            } else {
                lo = self.entries.partition_point(|e| e.0 <= lastid);
            }
        }
        if !self.unordered {
            if begin > 0 {
                lo = lo.max(self.entries.partition_point(|e| e.1 < begin));
            }
            if end > 0 {
                hi = hi.min(self.entries.partition_point(|e| e.1 <= end));
            }
        }
        lo..hi.max(lo)
    }
}

/// The cursor ids of the messages that share one `(from, target, mid)`:
/// one, except for file sends (the file gate does not check `mid`).
#[derive(Debug)]
enum Ids {
    One(i64),
    /// In increasing order.
    Many(Vec<i64>),
}

impl Ids {
    fn first(&self) -> Option<i64> {
        match self {
            Ids::One(id) => Some(*id),
            Ids::Many(ids) => ids.first().copied(),
        }
    }
}

/// The key of the duplicate-`mid` check: sender, target, `mid`.
type MidKey = (i64, Target, i64);

/// This family's state (part of the emulator's one state): the message
/// log and its indexes.
///
/// The log is kept in cursor-id order in chunks of [`CHUNK`] messages, each
/// behind an `Arc`: a [`snapshot`](Messages::snapshot) (for a save) shares
/// them and costs one pointer per chunk, and a change to a chunk that a
/// snapshot still holds copies that chunk only (copy on write). The
/// indexes make every quest cost the same however many messages are
/// stored: a hash of `(from, target, mid)` for the duplicate check and for
/// `getmsg`/`editmsg`/`delmsg`, and per conversation its ordered cursor ids
/// (history pages start at their cursor) and its senders (counts).
#[derive(Debug, Default, Deserialize)]
#[serde(try_from = "MessagesFile")]
pub(crate) struct Messages {
    /// Every stored message in cursor-id order; no chunk is empty.
    chunks: Vec<Arc<Vec<StoredMessage>>>,
    /// How many messages `chunks` holds.
    len: usize,
    /// The last cursor id handed out.
    last_id: i64,
    convs: HashMap<ConvKey, ConvIndex>,
    mids: HashMap<MidKey, Ids>,
    /// Each user's P2P partners (for the P2P counts of `getmsgnum`).
    partners: HashMap<i64, BTreeSet<i64>>,
}

impl Messages {
    /// How many messages are stored.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Every stored message, in cursor-id order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &StoredMessage> {
        self.chunks.iter().flat_map(|c| c.iter())
    }

    /// A copy of every stored message, in cursor-id order (for tests).
    #[cfg(test)]
    pub(crate) fn to_vec(&self) -> Vec<StoredMessage> {
        self.iter().cloned().collect()
    }

    /// The next cursor id.
    fn next_id(&mut self) -> i64 {
        self.last_id += 1;
        self.last_id
    }

    /// Where message `id` is: (chunk, position).
    fn locate(&self, id: i64) -> Option<(usize, usize)> {
        let c = self
            .chunks
            .partition_point(|c| c.last().is_some_and(|m| m.id < id));
        let at = self
            .chunks
            .get(c)?
            .binary_search_by_key(&id, |m| m.id)
            .ok()?;
        Some((c, at))
    }

    /// Message `id`.
    fn get(&self, id: i64) -> Option<&StoredMessage> {
        let (c, at) = self.locate(id)?;
        Some(&self.chunks[c][at])
    }

    /// Message `id`, to change (its chunk is copied if a snapshot holds it).
    fn get_mut(&mut self, id: i64) -> Option<&mut StoredMessage> {
        let (c, at) = self.locate(id)?;
        Some(&mut Arc::make_mut(&mut self.chunks[c])[at])
    }

    /// The first message `mid` that `from` sent to `target`.
    fn find(&self, from: i64, target: Target, mid: i64) -> Option<i64> {
        self.mids.get(&(from, target, mid)).and_then(Ids::first)
    }

    /// Stores `m`, whose id must be above every stored id.
    pub(crate) fn push(&mut self, m: StoredMessage) {
        debug_assert!(self
            .chunks
            .last()
            .and_then(|c| c.last())
            .is_none_or(|l| l.id < m.id));
        self.last_id = self.last_id.max(m.id);
        self.index(&m);
        match self.chunks.last_mut() {
            Some(c) if c.len() < CHUNK => Arc::make_mut(c).push(m),
            _ => {
                let mut chunk = Vec::with_capacity(CHUNK);
                chunk.push(m);
                self.chunks.push(Arc::new(chunk));
            }
        }
        self.len += 1;
    }

    fn index(&mut self, m: &StoredMessage) {
        let key = ConvKey::of(m.from, m.target);
        let conv = self.convs.entry(key).or_default();
        conv.insert(m.id, m.mtime);
        *conv.senders.entry(m.from).or_insert(0) += 1;
        if let ConvKey::P2p(a, b) = key {
            self.partners.entry(a).or_default().insert(b);
            self.partners.entry(b).or_default().insert(a);
        }
        match self.mids.entry((m.from, m.target, m.mid)) {
            Entry::Vacant(e) => {
                e.insert(Ids::One(m.id));
            }
            Entry::Occupied(mut e) => {
                let ids = e.get_mut();
                let mut all = match ids {
                    Ids::One(id) => vec![*id],
                    Ids::Many(v) => std::mem::take(v),
                };
                let at = all.partition_point(|x| *x < m.id);
                all.insert(at, m.id);
                *ids = Ids::Many(all);
            }
        }
    }

    /// Takes `removed` out of the indexes.
    fn unindex(&mut self, removed: &[StoredMessage]) {
        let mut by_conv: HashMap<ConvKey, Vec<i64>> = HashMap::new();
        for m in removed {
            let key = ConvKey::of(m.from, m.target);
            by_conv.entry(key).or_default().push(m.id);
            if let Some(conv) = self.convs.get_mut(&key) {
                if let Entry::Occupied(mut n) = conv.senders.entry(m.from) {
                    if *n.get() <= 1 {
                        n.remove();
                    } else {
                        *n.get_mut() -= 1;
                    }
                }
            }
            if let Entry::Occupied(mut e) = self.mids.entry((m.from, m.target, m.mid)) {
                let gone = match e.get_mut() {
                    Ids::One(id) => *id == m.id,
                    Ids::Many(ids) => {
                        ids.retain(|x| *x != m.id);
                        ids.is_empty()
                    }
                };
                if gone {
                    e.remove();
                } else if let Ids::Many(ids) = e.get() {
                    if let [one] = ids[..] {
                        *e.get_mut() = Ids::One(one);
                    }
                }
            }
        }
        for (key, mut ids) in by_conv {
            ids.sort_unstable();
            let Some(conv) = self.convs.get_mut(&key) else {
                continue;
            };
            conv.remove(&ids);
            if !conv.entries.is_empty() {
                continue;
            }
            self.convs.remove(&key);
            if let ConvKey::P2p(a, b) = key {
                for (u, v) in [(a, b), (b, a)] {
                    if let Some(p) = self.partners.get_mut(&u) {
                        p.remove(&v);
                        if p.is_empty() {
                            self.partners.remove(&u);
                        }
                    }
                }
            }
        }
    }

    /// Deletes the messages with these ids (those stored); returns how
    /// many were deleted. One pass over the chunks that hold them.
    fn remove_ids(&mut self, mut ids: Vec<i64>) -> usize {
        ids.sort_unstable();
        ids.dedup();
        let mut removed = Vec::new();
        let mut k = 0;
        for chunk in &mut self.chunks {
            let Some(last) = chunk.last().map(|m| m.id) else {
                continue;
            };
            if k >= ids.len() {
                break;
            }
            let end = k + ids[k..].partition_point(|x| *x <= last);
            if end == k {
                continue;
            }
            let these = &ids[k..end];
            k = end;
            let kept = Arc::make_mut(chunk);
            for m in std::mem::take(kept) {
                if these.binary_search(&m.id).is_ok() {
                    removed.push(m);
                } else {
                    kept.push(m);
                }
            }
        }
        self.chunks.retain(|c| !c.is_empty());
        self.unindex(&removed);
        self.len -= removed.len();
        removed.len()
    }

    /// Deletes every message for which `keep` is false (a whole scan: for
    /// rare requests such as deleting a user's messages).
    pub(crate) fn retain(&mut self, keep: impl Fn(&StoredMessage) -> bool) {
        let ids = self.iter().filter(|m| !keep(m)).map(|m| m.id).collect();
        self.remove_ids(ids);
    }

    /// The cursor ids of conversation `key`, in order.
    fn conv_ids(&self, key: ConvKey) -> impl DoubleEndedIterator<Item = i64> + '_ {
        self.convs
            .get(&key)
            .into_iter()
            .flat_map(|c| c.entries.iter().map(|e| e.0))
    }

    /// A page of conversation `key`: at most `take` messages after the
    /// cursor `lastid` (before it, newest first, with `desc`; 0: from the
    /// end), within `begin..=end` (0: open), of the `mtypes` (empty: all).
    /// Costs the page, not the conversation, unless a window or the types
    /// leave out many messages in a row.
    #[allow(clippy::too_many_arguments)]
    fn page(
        &self,
        key: ConvKey,
        desc: bool,
        lastid: i64,
        begin: i64,
        end: i64,
        mtypes: &[i64],
        take: usize,
    ) -> Vec<&StoredMessage> {
        let Some(index) = self.convs.get(&key) else {
            return Vec::new();
        };
        let entries = &index.entries[index.span(desc, lastid, begin, end)];
        let entries: Box<dyn Iterator<Item = &(i64, i64)>> = if desc {
            Box::new(entries.iter().rev())
        } else {
            Box::new(entries.iter())
        };
        entries
            .filter(|e| in_window(e.1, begin, end))
            .filter_map(|e| self.get(e.0))
            .filter(|m| mtypes.is_empty() || mtypes.contains(&m.mtype))
            .take(take)
            .collect()
    }

    /// The messages at this moment, for a save: shares the chunks.
    pub(crate) fn snapshot(&self) -> MessagesSnapshot {
        MessagesSnapshot {
            chunks: self.chunks.clone(),
            last_id: self.last_id,
        }
    }
}

/// The messages at one moment (see [`Messages::snapshot`]), written as the
/// state file's `messages`.
#[derive(Debug, Clone)]
pub(crate) struct MessagesSnapshot {
    chunks: Vec<Arc<Vec<StoredMessage>>>,
    last_id: i64,
}

/// The state file's `messages`: `log` (every message, in cursor-id order)
/// and `last_id`.
fn serialize_log<S: Serializer>(
    chunks: &[Arc<Vec<StoredMessage>>],
    last_id: i64,
    s: S,
) -> Result<S::Ok, S::Error> {
    struct Log<'a>(&'a [Arc<Vec<StoredMessage>>]);
    impl Serialize for Log<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(self.0.iter().flat_map(|c| c.iter()))
        }
    }
    let mut st = s.serialize_struct("Messages", 2)?;
    st.serialize_field("log", &Log(chunks))?;
    st.serialize_field("last_id", &last_id)?;
    st.end()
}

impl Serialize for Messages {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_log(&self.chunks, self.last_id, s)
    }
}

impl Serialize for MessagesSnapshot {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_log(&self.chunks, self.last_id, s)
    }
}

/// The state file's `messages` as read, checked before use.
#[derive(Deserialize)]
struct MessagesFile {
    #[serde(default)]
    log: Vec<StoredMessage>,
    /// Absent in a file from before the cursor ids were saved: then the
    /// highest stored id.
    #[serde(default)]
    last_id: Option<i64>,
}

impl TryFrom<MessagesFile> for Messages {
    type Error = String;

    /// Builds the indexes; refuses ids that would break the cursors (a
    /// negative `last_id`, an id below 1, twice, or above `last_id`).
    fn try_from(file: MessagesFile) -> Result<Messages, String> {
        let mut log = file.log;
        if let Some(last) = file.last_id.filter(|l| *l < 0) {
            return Err(format!(
                "inconsistent state: `messages.last_id` is {last}, but cursor ids are 0 or more"
            ));
        }
        log.sort_by_key(|m| m.id);
        if let Some(m) = log.first().filter(|m| m.id < 1) {
            return Err(format!(
                "inconsistent state: `messages.log` holds the cursor id {}, but ids start at 1",
                m.id
            ));
        }
        if let Some(w) = log.windows(2).find(|w| w[0].id == w[1].id) {
            return Err(format!(
                "inconsistent state: `messages.log` holds the cursor id {} twice",
                w[0].id
            ));
        }
        let highest = log.last().map_or(0, |m| m.id);
        let last_id = file.last_id.unwrap_or(highest);
        if highest > last_id {
            return Err(format!(
                "inconsistent state: `messages.log` holds the cursor id {highest}, above \
                 `messages.last_id` {last_id} (new messages would reuse ids)"
            ));
        }
        let mut messages = Messages {
            last_id,
            ..Messages::default()
        };
        for m in log {
            messages.push(m);
        }
        Ok(messages)
    }
}

/// Stores a message and queues its push to the listening connections;
/// returns its `mtime`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn deliver(
    st: &mut RtmState,
    cx: &mut Ctx<'_>,
    target: Target,
    from: i64,
    mtype: i64,
    mid: i64,
    msg: Value,
    attrs: String,
) -> i64 {
    let mtime = st.now_ms();
    let id = st.messages.next_id();
    let (method, key, xid) = match target {
        Target::P2p(to) => ("pushmsg", "to", to),
        Target::Group(gid) => ("pushgroupmsg", "gid", gid),
        Target::Room(rid) => ("pushroommsg", "rid", rid),
        Target::Broadcast => ("", "", 0),
    };
    if !method.is_empty() {
        let payload = obj(vec![
            ("from", Value::from(from)),
            (key, Value::from(xid)),
            ("mtype", Value::from(mtype)),
            ("mid", Value::from(mid)),
            ("msg", msg.clone()),
            ("attrs", Value::from(attrs.as_str())),
            ("mtime", Value::from(mtime)),
        ]);
        let mut listeners: Vec<u64> = st
            .listen
            .states()
            .filter(|l| match target {
                Target::P2p(to) => l.p2p || l.uids.contains(&to) || l.uids.contains(&from),
                Target::Group(gid) => l.group || l.gids.contains(&gid),
                Target::Room(rid) => l.room || l.rids.contains(&rid),
                Target::Broadcast => false,
            })
            .map(|l| l.conn_id)
            .collect();
        listeners.sort_unstable();
        for conn in listeners {
            cx.outbox.push((conn, method, payload.clone()));
        }
    }
    st.messages.push(StoredMessage {
        id,
        target,
        from,
        mtype,
        mid,
        msg,
        attrs,
        mtime,
    });
    mtime
}

/// The methods of this family.
pub(crate) const FAMILY: Family = Family {
    methods: &[
        "sendmsg",
        "sendmsgs",
        "sendgroupmsg",
        "sendroommsg",
        "broadcastmsg",
        "getgroupmsg",
        "getroommsg",
        "getbroadcastmsg",
        "getp2pmsg",
        "delmsg",
        "getmsg",
        "cleanmsg",
        "clearprojectmsg",
        "getmsgnum",
        "delconversationmsgs",
        "editmsg",
    ],
    dispatch,
};

/// The conversation type `type` (1..=4).
fn conv_type(p: &Value) -> R<i64> {
    let t = int(p, "type")?;
    if !(1..=4).contains(&t) {
        return Err(bad_value(
            "type",
            "1 (P2P), 2 (group), 3 (room) or 4 (broadcast)",
        ));
    }
    Ok(t)
}

/// The target of one message of conversation type `t` with `xid`.
fn target_of(t: i64, xid: i64) -> Target {
    match t {
        1 => Target::P2p(xid),
        2 => Target::Group(xid),
        3 => Target::Room(xid),
        _ => Target::Broadcast,
    }
}

fn not_found(mid: i64) -> Reply {
    Reply::error(
        codes::RTM_EC_MESSAGE_NOT_FOUND,
        format!("message {mid} not found"),
    )
}

/// The cursor id of message `mid` from `from` in the conversation of
/// `type`/`xid`.
fn find(st: &RtmState, p: &Value) -> R<i64> {
    let mid = int(p, "mid")?;
    let from = int(p, "from")?;
    let xid = int(p, "xid")?;
    let target = target_of(conv_type(p)?, xid);
    st.messages
        .find(from, target, mid)
        .ok_or_else(|| not_found(mid))
}

/// The body of a send: `str` or `bin`.
fn body(p: &Value) -> R<Value> {
    match get(p, "msg") {
        None => Err(missing("msg")),
        Some(v @ (Value::String(_) | Value::Binary(_))) => Ok(v.clone()),
        Some(_) => Err(wrong_type("msg", "a string or binary")),
    }
}

/// The common keys of a send: mtype, from, mid, msg, attrs.
struct Send {
    mtype: i64,
    from: i64,
    mid: i64,
    msg: Value,
    attrs: String,
}

fn send_params(p: &Value) -> R<Send> {
    let mtype = int(p, "mtype")?;
    let from = int(p, "from")?;
    let mid = int(p, "mid")?;
    let msg = body(p)?;
    let attrs = opt_str(p, "attrs")?.unwrap_or_default();
    if !(0..=127).contains(&mtype) {
        return Err(Reply::error(
            codes::RTM_EC_INVALID_MTYPE,
            format!("mtype {mtype} is not in 0..=127"),
        ));
    }
    Ok(Send {
        mtype,
        from,
        mid,
        msg,
        attrs,
    })
}

/// Refuses a `mid` that the sender already used in one of the
/// conversations (a hash lookup each, whatever the store holds).
fn check_mid(st: &RtmState, s: &Send, targets: &[Target]) -> R<()> {
    if targets
        .iter()
        .any(|t| st.messages.find(s.from, *t, s.mid).is_some())
    {
        return Err(Reply::error(
            codes::RTM_EC_DUPLICATED_MID,
            format!("mid {} was already used by {}", s.mid, s.from),
        ));
    }
    Ok(())
}

fn send(st: &mut RtmState, cx: &mut Ctx<'_>, p: &Value, targets: Vec<Target>) -> R<Value> {
    let s = send_params(p)?;
    check_mid(st, &s, &targets)?;
    let mut mtime = 0;
    for t in targets {
        mtime = deliver(
            st,
            cx,
            t,
            s.from,
            s.mtype,
            s.mid,
            s.msg.clone(),
            s.attrs.clone(),
        );
    }
    Ok(obj(vec![("mtime", Value::from(mtime))]))
}

/// The window bounds `begin`/`end` (0: open).
fn in_window(mtime: i64, begin: i64, end: i64) -> bool {
    (begin <= 0 || mtime >= begin) && (end <= 0 || mtime <= end)
}

fn history(st: &RtmState, p: &Value, conv: ConvKey, p2p_uid: Option<i64>) -> R<Value> {
    let desc = boolean(p, "desc")?;
    let num = int(p, "num")?;
    let begin = int(p, "begin")?;
    let end = int(p, "end")?;
    let lastid = int(p, "lastid")?;
    if p2p_uid.is_none() {
        int(p, "uid")?;
    }
    let mtypes = opt_int_list(p, "mtypes")?.unwrap_or_default();
    if !(1..=i64::from(i16::MAX)).contains(&num) {
        return Err(bad_value("num", "in 1..=32767"));
    }
    let take = usize::try_from(num).map_or(HISTORY_PAGE_MAX, |n| n.min(HISTORY_PAGE_MAX));
    let page = st
        .messages
        .page(conv, desc, lastid, begin, end, &mtypes, take);
    let rows: Vec<Value> = page
        .iter()
        .map(|m| {
            let second = match p2p_uid {
                Some(uid) => Value::from(if m.from == uid { 1 } else { 2 }),
                None => Value::from(m.from),
            };
            Value::Array(vec![
                Value::from(m.id),
                second,
                Value::from(m.mtype),
                Value::from(m.mid),
                Value::Boolean(false),
                m.msg.clone(),
                Value::from(m.attrs.as_str()),
                Value::from(m.mtime),
            ])
        })
        .collect();
    Ok(obj(vec![
        ("num", Value::from(rows.len() as i64)),
        ("lastid", Value::from(page.last().map_or(lastid, |m| m.id))),
        ("begin", Value::from(begin)),
        ("end", Value::from(end)),
        ("msgs", Value::Array(rows)),
    ]))
}

/// The conversation of `type` (1..=4) for `from` and `xid` (P2P: both
/// directions between them).
fn conv_of(t: i64, from: i64, xid: i64) -> ConvKey {
    match t {
        1 => ConvKey::p2p(from, xid),
        2 => ConvKey::Group(xid),
        3 => ConvKey::Room(xid),
        _ => ConvKey::Broadcast,
    }
}

/// `getmsgnum`: (messages, distinct senders) of conversation type `t` with
/// `xid` (P2P: every message to or from user `xid`). Without a window or
/// types, read from the indexes; otherwise the conversations' messages only.
fn count(st: &RtmState, t: i64, xid: i64, begin: i64, end: i64, mtypes: &[i64]) -> (i64, i64) {
    let messages = &st.messages;
    let convs: Vec<ConvKey> = match t {
        1 => messages
            .partners
            .get(&xid)
            .into_iter()
            .flatten()
            .map(|o| ConvKey::p2p(xid, *o))
            .collect(),
        2 => vec![ConvKey::Group(xid)],
        3 => vec![ConvKey::Room(xid)],
        _ => vec![ConvKey::Broadcast],
    };
    let filtered = begin > 0 || end > 0 || !mtypes.is_empty();
    let mut senders = HashSet::new();
    let mut num = 0usize;
    for index in convs.iter().filter_map(|k| messages.convs.get(k)) {
        if filtered {
            let entries = &index.entries[index.span(false, 0, begin, end)];
            for m in entries
                .iter()
                .filter(|e| in_window(e.1, begin, end))
                .filter_map(|e| messages.get(e.0))
            {
                if mtypes.is_empty() || mtypes.contains(&m.mtype) {
                    senders.insert(m.from);
                    num += 1;
                }
            }
        } else {
            num += index.entries.len();
            senders.extend(index.senders.keys().copied());
        }
    }
    let wide = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    (wide(num), wide(senders.len()))
}

fn dispatch(st: &mut RtmState, cx: &mut Ctx<'_>, method: &str, p: &Value) -> R<Value> {
    match method {
        "sendmsg" => {
            let to = int(p, "to")?;
            send(st, cx, p, vec![Target::P2p(to)])
        }
        "sendmsgs" => {
            let tos = int_list(p, "tos")?;
            if tos.is_empty() {
                return Err(Reply::error(
                    codes::RTM_EC_EMPTY_PARAMETER,
                    "`tos` is empty",
                ));
            }
            let unique: BTreeSet<i64> = tos.into_iter().collect();
            send(st, cx, p, unique.into_iter().map(Target::P2p).collect())
        }
        "sendgroupmsg" => {
            let gid = int(p, "gid")?;
            send(st, cx, p, vec![Target::Group(gid)])
        }
        "sendroommsg" => {
            let rid = int(p, "rid")?;
            send(st, cx, p, vec![Target::Room(rid)])
        }
        "broadcastmsg" => send(st, cx, p, vec![Target::Broadcast]),
        "getgroupmsg" => {
            let gid = int(p, "gid")?;
            history(st, p, ConvKey::Group(gid), None)
        }
        "getroommsg" => {
            let rid = int(p, "rid")?;
            history(st, p, ConvKey::Room(rid), None)
        }
        "getbroadcastmsg" => history(st, p, ConvKey::Broadcast, None),
        "getp2pmsg" => {
            let uid = int(p, "uid")?;
            let ouid = int(p, "ouid")?;
            history(st, p, ConvKey::p2p(uid, ouid), Some(uid))
        }
        "delmsg" => {
            let id = find(st, p)?;
            st.messages.remove_ids(vec![id]);
            Ok(empty())
        }
        "getmsg" => {
            let id = find(st, p)?;
            let m = st
                .messages
                .get(id)
                .ok_or_else(|| not_found(int(p, "mid").unwrap_or_default()))?;
            Ok(obj(vec![
                ("id", Value::from(m.id)),
                ("mtype", Value::from(m.mtype)),
                ("msg", m.msg.clone()),
                ("attrs", Value::from(m.attrs.as_str())),
                ("mtime", Value::from(m.mtime)),
            ]))
        }
        "editmsg" => {
            let id = find(st, p)?;
            let msg = body(p)?;
            let attrs = string(p, "attrs")?;
            let limit = int(p, "timeLimit")?;
            if limit < 0 {
                return Err(bad_value("timeLimit", "0 or more seconds"));
            }
            let now = st.now_ms();
            let m = st
                .messages
                .get_mut(id)
                .ok_or_else(|| not_found(int(p, "mid").unwrap_or_default()))?;
            if now.saturating_sub(m.mtime) > limit.saturating_mul(1000) {
                return Err(Reply::error(
                    codes::RTM_EC_PERMISSION_DENIED,
                    format!("message {} is older than {limit} s", m.mid),
                ));
            }
            m.msg = msg;
            m.attrs = attrs;
            Ok(empty())
        }
        "cleanmsg" => {
            let from = int(p, "from")?;
            let xid = int(p, "xid")?;
            let t = conv_type(p)?;
            let begin = int(p, "begin")?;
            let end = int(p, "end")?;
            let sender = (t != 1 && from != 0).then_some(from);
            let messages = &st.messages;
            let ids = match messages.convs.get(&conv_of(t, from, xid)) {
                None => Vec::new(),
                Some(index) => index.entries[index.span(false, 0, begin, end)]
                    .iter()
                    .filter(|e| in_window(e.1, begin, end))
                    .filter(|e| {
                        sender.is_none_or(|s| messages.get(e.0).is_some_and(|m| m.from == s))
                    })
                    .map(|e| e.0)
                    .collect(),
            };
            st.messages.remove_ids(ids);
            Ok(empty())
        }
        "clearprojectmsg" => {
            let t = int(p, "type")?;
            let pick: fn(&ConvKey) -> bool = match t {
                0 => |k| matches!(k, ConvKey::P2p(..)),
                1 => |k| matches!(k, ConvKey::Room(_)),
                2 => |k| matches!(k, ConvKey::Group(_)),
                3 => |k| matches!(k, ConvKey::Broadcast),
                4 => |_| true,
                _ => {
                    return Err(bad_value(
                        "type",
                        "0 (P2P), 1 (room), 2 (group), 3 (broadcast) or 4 (all)",
                    ))
                }
            };
            let messages = &st.messages;
            let ids = messages
                .convs
                .iter()
                .filter(|(k, _)| pick(k))
                .flat_map(|(_, c)| c.entries.iter().map(|e| e.0))
                .collect();
            st.messages.remove_ids(ids);
            Ok(empty())
        }
        "delconversationmsgs" => {
            let from = int(p, "from")?;
            let xid = int(p, "xid")?;
            let conv = conv_of(conv_type(p)?, from, xid);
            let ids = st.messages.conv_ids(conv).collect();
            st.messages.remove_ids(ids);
            Ok(empty())
        }
        "getmsgnum" => {
            let t = conv_type(p)?;
            let xid = int(p, "xid")?;
            let mtypes = opt_int_list(p, "mtypes")?.unwrap_or_default();
            let begin = opt_int(p, "begin")?.unwrap_or(0);
            let end = opt_int(p, "end")?.unwrap_or(0);
            let (num, senders) = count(st, t, xid, begin, end, &mtypes);
            Ok(obj(vec![
                ("sender", Value::from(senders)),
                ("num", Value::from(num)),
            ]))
        }
        _ => Err(unknown_method(method)),
    }
}

impl RtmEmulator {
    /// The number of messages the emulator holds (every conversation; a
    /// `sendmsgs` to n users counts n).
    ///
    /// How the emulator treats messages, in short: every send is stored
    /// with a cursor id (increasing from 1, never reused) and the
    /// emulator's clock in milliseconds as `mtime`, and pushed to the
    /// connections listening to its user, group or room. History pages
    /// hold at most `num` messages (and at most 20, as the service's),
    /// newest first with `desc`, after the
    /// cursor `lastid` when it is above 0, within `begin..=end` (0 is
    /// open) and of the `mtypes` asked for; the answer's `lastid` is the
    /// cursor of the page's last message. A P2P history holds both
    /// directions. A reused `mid` (same sender and conversation) is
    /// refused with 200053, a message not found with 200070, an edit
    /// after its `timeLimit` (seconds) with 200021. Senders, groups and
    /// rooms are not checked for existence or membership.
    #[must_use]
    pub fn message_count(&self) -> usize {
        lock(&self.shared.state).messages.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::testutil::*;

    fn message(id: i64, target: Target, from: i64, mid: i64) -> StoredMessage {
        StoredMessage {
            id,
            target,
            from,
            mtype: 30,
            mid,
            msg: Value::from(format!("m{id}")),
            attrs: String::new(),
            mtime: 1_600_000_000_000 + id,
        }
    }

    #[test]
    fn state_survives_json() {
        let mut m = Messages::default();
        for (target, msg) in [
            (Target::P2p(2), Value::from("hi")),
            (Target::Group(-3), Value::Binary(vec![0, 255])),
            (Target::Broadcast, Value::from("")),
        ] {
            let id = m.next_id();
            let mut stored = message(id, target, 1, 9);
            stored.msg = msg;
            m.push(stored);
        }
        let json = serde_json::to_string(&m).unwrap();
        assert!(json.starts_with(r#"{"log":[{"id":1,"#), "{json}");
        let back: Messages = serde_json::from_str(&json).unwrap();
        assert_eq!(back.to_vec(), m.to_vec());
        assert_eq!(back.last_id, 3);
        assert_eq!(back.find(1, Target::Group(-3), 9), Some(2));
        // The snapshot writes the same JSON.
        assert_eq!(serde_json::to_string(&m.snapshot()).unwrap(), json);
    }

    /// What the indexes answer, against a plain scan of the log, through
    /// pushes and deletions across many chunks.
    #[test]
    fn the_indexes_agree_with_the_log() {
        let mut m = Messages::default();
        let targets = [
            Target::P2p(1),
            Target::P2p(2),
            Target::Group(5),
            Target::Room(5),
            Target::Broadcast,
        ];
        for i in 0..5000i64 {
            let id = m.next_id();
            // Some `(from, target, mid)` twice, as file sends may store.
            m.push(message(id, targets[(i % 5) as usize], 1 + i % 3, i / 2));
        }
        m.remove_ids(
            (1..=5000)
                .filter(|id| id % 7 == 0 || (1500..2600).contains(id))
                .collect(),
        );
        m.retain(|s| !(s.from == 2 && s.id % 3 == 0));
        let log = m.to_vec();
        assert_eq!(m.len(), log.len());
        assert!(log.windows(2).all(|w| w[0].id < w[1].id));
        assert!(m.chunks.iter().all(|c| !c.is_empty()));
        for s in &log {
            assert_eq!(m.get(s.id), Some(s));
            let first = log
                .iter()
                .find(|o| (o.from, o.target, o.mid) == (s.from, s.target, s.mid))
                .map(|o| o.id);
            assert_eq!(m.find(s.from, s.target, s.mid), first);
        }
        assert_eq!(m.get(7), None);
        let mut keys: Vec<ConvKey> = log.iter().map(|s| ConvKey::of(s.from, s.target)).collect();
        keys.sort_by_key(|k| format!("{k:?}"));
        keys.dedup();
        assert_eq!(keys.len(), m.convs.len());
        for key in keys {
            let want: Vec<i64> = log
                .iter()
                .filter(|s| ConvKey::of(s.from, s.target) == key)
                .map(|s| s.id)
                .collect();
            assert_eq!(m.conv_ids(key).collect::<Vec<_>>(), want, "{key:?}");
        }
        assert_eq!(
            ConvKey::of(1, Target::P2p(2)),
            ConvKey::of(2, Target::P2p(1))
        );
        assert_ne!(
            ConvKey::of(1, Target::Group(2)),
            ConvKey::of(1, Target::Room(2))
        );
        // Everything deleted: no index entry is left behind.
        m.retain(|_| false);
        assert_eq!(m.len(), 0);
        assert!(m.chunks.is_empty() && m.convs.is_empty() && m.mids.is_empty());
        assert!(m.partners.is_empty());
        assert_eq!(m.last_id, 5000);
    }

    /// Pages and windows found by binary search read the same messages as
    /// a scan of the log, with times in order and out of order.
    #[test]
    fn pages_agree_with_a_scan() {
        let mut m = Messages::default();
        for i in 0..3000i64 {
            let id = m.next_id();
            let mut s = message(id, Target::Group(i % 2), 1 + i % 4, i);
            s.mtype = 30 + i % 3;
            // Group 0's times go forward (several messages per ms); group
            // 1's jump back now and then (a hand-edited file).
            s.mtime = if i % 2 == 0 {
                1000 + i / 3
            } else {
                1000 + (i * 7919) % 1500
            };
            m.push(s);
        }
        m.remove_ids((1..=3000).filter(|id| id % 11 == 0).collect());
        assert!(!m.convs[&ConvKey::Group(0)].unordered);
        assert!(m.convs[&ConvKey::Group(1)].unordered);
        let log = m.to_vec();
        let mut checked = 0;
        for gid in [0, 1] {
            for desc in [true, false] {
                for lastid in [0, 1, 700, 2999, 5000] {
                    for (begin, end) in [(0, 0), (1200, 0), (0, 1300), (1100, 1105), (3000, 0)] {
                        for mtypes in [vec![], vec![31], vec![30, 32]] {
                            let keep = |s: &&StoredMessage| {
                                s.target == Target::Group(gid)
                                    && in_window(s.mtime, begin, end)
                                    && (mtypes.is_empty() || mtypes.contains(&s.mtype))
                                    && (lastid <= 0
                                        || if desc { s.id < lastid } else { s.id > lastid })
                            };
                            let want: Vec<&StoredMessage> = if desc {
                                log.iter().rev().filter(keep).take(20).collect()
                            } else {
                                log.iter().filter(keep).take(20).collect()
                            };
                            let key = ConvKey::Group(gid);
                            let got = m.page(key, desc, lastid, begin, end, &mtypes, 20);
                            assert_eq!(got, want, "{gid} {desc} {lastid} {begin} {end} {mtypes:?}");
                            checked += usize::from(!want.is_empty());
                        }
                    }
                }
            }
        }
        assert!(checked > 100, "{checked}");
    }

    /// A snapshot costs one pointer per chunk and keeps what it saw while
    /// the log changes under it.
    #[test]
    fn a_snapshot_shares_the_chunks_and_keeps_its_moment() {
        let mut m = Messages::default();
        for _ in 0..3 * CHUNK {
            let id = m.next_id();
            m.push(message(id, Target::Group(1), 1, id));
        }
        let snap = m.snapshot();
        assert!(snap
            .chunks
            .iter()
            .zip(&m.chunks)
            .all(|(a, b)| Arc::ptr_eq(a, b)));
        let before = serde_json::to_string(&snap).unwrap();
        m.get_mut(5).unwrap().attrs = "edited".into();
        m.remove_ids(vec![CHUNK as i64 + 1]);
        let id = m.next_id();
        m.push(message(id, Target::Group(1), 1, id));
        assert_eq!(serde_json::to_string(&snap).unwrap(), before);
        // Only the chunk that changed was copied.
        assert!(!Arc::ptr_eq(&snap.chunks[0], &m.chunks[0]));
        assert!(Arc::ptr_eq(&snap.chunks[2], &m.chunks[2]));
    }

    #[test]
    fn inconsistent_ids_are_refused_at_load() {
        let row = |id: i64| {
            format!(
                r#"{{"id":{id},"target":"Broadcast","from":1,"mtype":30,"mid":{id},"msg":{{"Text":""}},"attrs":"","mtime":0}}"#
            )
        };
        let load = |log: &[i64], last_id: Option<i64>| {
            let rows: Vec<String> = log.iter().map(|id| row(*id)).collect();
            let last = last_id.map_or(String::new(), |l| format!(r#","last_id":{l}"#));
            serde_json::from_str::<Messages>(&format!(r#"{{"log":[{}]{last}}}"#, rows.join(",")))
        };
        for (log, last_id, field, why) in [
            (
                &[][..],
                Some(-5),
                "`messages.last_id` is -5",
                "negative last_id",
            ),
            (
                &[1, 2, 3][..],
                Some(2),
                "id 3, above `messages.last_id` 2",
                "id above",
            ),
            (&[0][..], Some(2), "cursor id 0", "id 0"),
            (&[-4, 1][..], Some(2), "cursor id -4", "negative id"),
            (&[1, 2, 2][..], Some(5), "cursor id 2 twice", "duplicate"),
        ] {
            let e = load(log, last_id).unwrap_err().to_string();
            assert!(e.contains(field), "{why}: {e}");
        }
        // Out of order ids are sorted; a file without `last_id` continues
        // after its highest id.
        let m = load(&[3, 1], None).unwrap();
        assert_eq!(m.iter().map(|s| s.id).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(m.last_id, 3);
    }

    #[test]
    fn a_history_page_holds_at_most_20() {
        let (_emu, mut c) = setup();
        for mid in 0..30 {
            call(
                &mut c,
                "sendgroupmsg",
                vec![
                    ("gid", 4.into()),
                    ("from", 1.into()),
                    ("mid", mid.into()),
                    ("mtype", 30.into()),
                    ("msg", "hi".into()),
                ],
            )
            .unwrap();
        }
        let page = |c: &mut RawClient, num: i64, lastid: i64| {
            call(
                c,
                "getgroupmsg",
                vec![
                    ("gid", 4.into()),
                    ("uid", 1.into()),
                    ("desc", true.into()),
                    ("num", num.into()),
                    ("begin", 0.into()),
                    ("end", 0.into()),
                    ("lastid", lastid.into()),
                ],
            )
        };
        for (num, lastid, rows, last) in [
            (25, 0, 20, 11),
            (32767, 0, 20, 11),
            (20, 11, 10, 1),
            (5, 0, 5, 26),
        ] {
            let a = page(&mut c, num, lastid).unwrap();
            let got = get(&a, "msgs").and_then(Value::as_array).unwrap().len();
            assert_eq!(got, rows, "num {num}");
            assert_eq!(get(&a, "num").and_then(Value::as_i64), Some(rows as i64));
            assert_eq!(get(&a, "lastid").and_then(Value::as_i64), Some(last));
        }
        assert_eq!(code(page(&mut c, 32768, 0)), 200034);
        assert_eq!(code(page(&mut c, 0, 0)), 200034);
    }

    /// The duplicate-`mid` check holds across a large store (an indexed
    /// lookup: it would have to find the first message of 200,000).
    #[test]
    fn mids_stay_unique_across_a_large_store() {
        let (emu, mut c) = setup();
        {
            let mut st = lock(&emu.shared.state);
            for i in 0..200_000 {
                let id = st.messages.next_id();
                st.messages.push(message(id, Target::Group(i % 10), 7, i));
            }
        }
        let send = |c: &mut RawClient, gid: i64, mid: i64| {
            call(
                c,
                "sendgroupmsg",
                vec![
                    ("gid", gid.into()),
                    ("from", 7.into()),
                    ("mid", mid.into()),
                    ("mtype", 30.into()),
                    ("msg", "again".into()),
                ],
            )
        };
        // The first and the last stored, in their groups: refused.
        assert_eq!(code(send(&mut c, 0, 0)), codes::RTM_EC_DUPLICATED_MID);
        assert_eq!(code(send(&mut c, 9, 199_999)), codes::RTM_EC_DUPLICATED_MID);
        // The same mid in another group, or a new one: stored.
        send(&mut c, 1, 0).unwrap();
        send(&mut c, 0, 200_000).unwrap();
        assert_eq!(code(send(&mut c, 0, 200_000)), codes::RTM_EC_DUPLICATED_MID);
        assert_eq!(emu.message_count(), 200_002);
    }
}
