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
//!   (`HISTORY_PAGE_MAX`, the service's documented cap); the answer's `lastid`
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
//! # Lenient
//!
//! Senders, receivers, groups and rooms are not checked for existence,
//! membership, bans or blocks; `uid` of the history methods is only
//! read; `attrs` may be left out of a send (it is stored as `""`).

use std::collections::BTreeSet;

use rmpv::Value;
use serde::{Deserialize, Serialize};

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

/// This family's state (part of the emulator's one state).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct Messages {
    /// Every stored message, in storage order.
    pub log: Vec<StoredMessage>,
    /// The last cursor id handed out.
    #[serde(default)]
    pub last_id: i64,
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
    st.messages.last_id += 1;
    let id = st.messages.last_id;
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
    st.messages.log.push(StoredMessage {
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

/// A conversation, as history and cleaning see it.
#[derive(Debug, Clone, Copy)]
enum Conv {
    /// Both directions between two users.
    P2p(i64, i64),
    Group(i64),
    Room(i64),
    Broadcast,
}

impl Conv {
    fn holds(self, m: &StoredMessage) -> bool {
        match (self, m.target) {
            (Conv::P2p(a, b), Target::P2p(to)) => {
                (m.from == a && to == b) || (m.from == b && to == a)
            }
            (Conv::Group(g), Target::Group(t)) | (Conv::Room(g), Target::Room(t)) => g == t,
            (Conv::Broadcast, Target::Broadcast) => true,
            _ => false,
        }
    }
}

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

/// The message `mid` from `from` in the conversation of `type`/`xid`.
fn find(st: &RtmState, p: &Value) -> R<usize> {
    let mid = int(p, "mid")?;
    let from = int(p, "from")?;
    let xid = int(p, "xid")?;
    let target = target_of(conv_type(p)?, xid);
    st.messages
        .log
        .iter()
        .position(|m| m.mid == mid && m.from == from && m.target == target)
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

fn check_mid(st: &RtmState, s: &Send, targets: &[Target]) -> R<()> {
    let used = st
        .messages
        .log
        .iter()
        .any(|m| m.mid == s.mid && m.from == s.from && targets.contains(&m.target));
    if used {
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

/// The most messages a history page holds, whatever `num` asks for: 20,
/// as the service documents ("at most 20 per call").
pub(crate) const HISTORY_PAGE_MAX: i64 = 20;

fn history(st: &RtmState, p: &Value, conv: Conv, p2p_uid: Option<i64>) -> R<Value> {
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
    let num = num.min(HISTORY_PAGE_MAX);
    let keep = |m: &&StoredMessage| {
        conv.holds(m)
            && in_window(m.mtime, begin, end)
            && (mtypes.is_empty() || mtypes.contains(&m.mtype))
            && (lastid <= 0 || if desc { m.id < lastid } else { m.id > lastid })
    };
    let log = &st.messages.log;
    let page: Vec<&StoredMessage> = if desc {
        log.iter().rev().filter(keep).take(num as usize).collect()
    } else {
        log.iter().filter(keep).take(num as usize).collect()
    };
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
            history(st, p, Conv::Group(gid), None)
        }
        "getroommsg" => {
            let rid = int(p, "rid")?;
            history(st, p, Conv::Room(rid), None)
        }
        "getbroadcastmsg" => history(st, p, Conv::Broadcast, None),
        "getp2pmsg" => {
            let uid = int(p, "uid")?;
            let ouid = int(p, "ouid")?;
            history(st, p, Conv::P2p(uid, ouid), Some(uid))
        }
        "delmsg" => {
            let at = find(st, p)?;
            st.messages.log.remove(at);
            Ok(empty())
        }
        "getmsg" => {
            let m = &st.messages.log[find(st, p)?];
            Ok(obj(vec![
                ("id", Value::from(m.id)),
                ("mtype", Value::from(m.mtype)),
                ("msg", m.msg.clone()),
                ("attrs", Value::from(m.attrs.as_str())),
                ("mtime", Value::from(m.mtime)),
            ]))
        }
        "editmsg" => {
            let at = find(st, p)?;
            let msg = body(p)?;
            let attrs = string(p, "attrs")?;
            let limit = int(p, "timeLimit")?;
            if limit < 0 {
                return Err(bad_value("timeLimit", "0 or more seconds"));
            }
            let now = st.now_ms();
            let m = &mut st.messages.log[at];
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
            let (conv, sender) = match t {
                1 => (Conv::P2p(from, xid), None),
                2 => (Conv::Group(xid), (from != 0).then_some(from)),
                3 => (Conv::Room(xid), (from != 0).then_some(from)),
                _ => (Conv::Broadcast, (from != 0).then_some(from)),
            };
            st.messages.log.retain(|m| {
                !(conv.holds(m)
                    && in_window(m.mtime, begin, end)
                    && sender.is_none_or(|s| m.from == s))
            });
            Ok(empty())
        }
        "clearprojectmsg" => {
            let t = int(p, "type")?;
            let pick: fn(&Target) -> bool = match t {
                0 => |t| matches!(t, Target::P2p(_)),
                1 => |t| matches!(t, Target::Room(_)),
                2 => |t| matches!(t, Target::Group(_)),
                3 => |t| matches!(t, Target::Broadcast),
                4 => |_| true,
                _ => {
                    return Err(bad_value(
                        "type",
                        "0 (P2P), 1 (room), 2 (group), 3 (broadcast) or 4 (all)",
                    ))
                }
            };
            st.messages.log.retain(|m| !pick(&m.target));
            Ok(empty())
        }
        "delconversationmsgs" => {
            let from = int(p, "from")?;
            let xid = int(p, "xid")?;
            let conv = match conv_type(p)? {
                1 => Conv::P2p(from, xid),
                2 => Conv::Group(xid),
                3 => Conv::Room(xid),
                _ => Conv::Broadcast,
            };
            st.messages.log.retain(|m| !conv.holds(m));
            Ok(empty())
        }
        "getmsgnum" => {
            let t = conv_type(p)?;
            let xid = int(p, "xid")?;
            let mtypes = opt_int_list(p, "mtypes")?.unwrap_or_default();
            let begin = opt_int(p, "begin")?.unwrap_or(0);
            let end = opt_int(p, "end")?.unwrap_or(0);
            let mut senders = BTreeSet::new();
            let mut num = 0i64;
            for m in &st.messages.log {
                let in_conv = match (t, m.target) {
                    (1, Target::P2p(to)) => to == xid || m.from == xid,
                    (2, Target::Group(g)) | (3, Target::Room(g)) => g == xid,
                    (4, Target::Broadcast) => true,
                    _ => false,
                };
                if in_conv
                    && in_window(m.mtime, begin, end)
                    && (mtypes.is_empty() || mtypes.contains(&m.mtype))
                {
                    senders.insert(m.from);
                    num += 1;
                }
            }
            Ok(obj(vec![
                ("sender", Value::from(senders.len() as i64)),
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
        lock(&self.shared.state).messages.log.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_survives_json() {
        let mut m = Messages::default();
        for (i, (target, msg)) in [
            (Target::P2p(2), Value::from("hi")),
            (Target::Group(-3), Value::Binary(vec![0, 255])),
            (Target::Broadcast, Value::from("")),
        ]
        .into_iter()
        .enumerate()
        {
            m.last_id += 1;
            m.log.push(StoredMessage {
                id: m.last_id,
                target,
                from: 1,
                mtype: 30 + i as i64,
                mid: 9,
                msg,
                attrs: "a".into(),
                mtime: 1_600_000_000_000,
            });
        }
        let json = serde_json::to_string(&m).unwrap();
        let back: Messages = serde_json::from_str(&json).unwrap();
        assert_eq!(back.log, m.log);
        assert_eq!(back.last_id, 3);
    }

    #[test]
    fn conversations_hold_their_messages() {
        let m = |target, from| StoredMessage {
            id: 1,
            target,
            from,
            mtype: 30,
            mid: 1,
            msg: Value::from(""),
            attrs: String::new(),
            mtime: 0,
        };
        assert!(Conv::P2p(1, 2).holds(&m(Target::P2p(2), 1)));
        assert!(Conv::P2p(1, 2).holds(&m(Target::P2p(1), 2)));
        assert!(!Conv::P2p(1, 2).holds(&m(Target::P2p(3), 1)));
        assert!(!Conv::P2p(1, 2).holds(&m(Target::Group(2), 1)));
        assert!(Conv::Group(5).holds(&m(Target::Group(5), 1)));
        assert!(!Conv::Group(5).holds(&m(Target::Room(5), 1)));
        assert!(Conv::Broadcast.holds(&m(Target::Broadcast, 7)));
        assert!(in_window(5, 0, 0) && in_window(5, 5, 5) && !in_window(5, 6, 0));
        assert!(!in_window(5, 0, 4));
    }
}
