//! Messages and history (A.2, and the chat forms of A.3).
//!
//! Every message sent through the emulator (by `sendmsg`, `sendgroupmsg`,
//! ..., or a file through the file gate) goes through [`deliver`]: it is
//! stored with a cursor id and the emulator's time, and pushed to every
//! connection that listens to it (PROTOCOL section 7.2): a P2P message to
//! connections listening to its sender or receiver (`uids`) or to every
//! P2P message (`p2p`), a group message to those listening to the group
//! (`gids`) or to every group (`group`), a room message likewise with
//! `rids` and `room`. Broadcast messages are stored and not pushed (the
//! server pushes no broadcast method).

use rmpv::Value;

use super::params::*;
use super::rtm::{Ctx, Family, RtmState};

/// Where a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[allow(dead_code)]
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

/// One stored message.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[allow(dead_code)]
pub(crate) struct StoredMessage {
    /// The cursor id (increasing in storage order, from 1).
    pub id: i64,
    pub target: Target,
    pub from: i64,
    pub mtype: i64,
    pub mid: i64,
    /// The body as it arrived: `str` or `bin`.
    #[serde(with = "super::persist::value")]
    pub msg: Value,
    pub attrs: String,
    /// The emulator's time of storage, in milliseconds.
    pub mtime: i64,
}

/// This family's state (part of the emulator's one state).
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Messages {
    /// Every stored message, in storage order.
    pub log: Vec<StoredMessage>,
}

/// Stores a message and queues its push to the listening connections;
/// returns its `mtime`.
#[allow(clippy::too_many_arguments)]
#[allow(dead_code)] // used by the message and file families
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
    let id = st.messages.log.last().map_or(1, |m| m.id + 1);
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
            .values()
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
    methods: &[],
    dispatch,
};

fn dispatch(_st: &mut RtmState, _cx: &mut Ctx<'_>, method: &str, _p: &Value) -> R<Value> {
    Err(unknown_method(method))
}
