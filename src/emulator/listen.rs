//! Listen (`addlisten`, `removelisten`, `setlisten`): which pushes each
//! connection gets.
//!
//! # Behaviour
//!
//! * The listen state ([`ConnListenState`]) is kept per connection and
//!   forgotten when the connection closes; it is not saved with the rest
//!   of the state ([`persist`](super::persist)).
//! * `addlisten` adds the given `gids`, `rids`, `uids` and `events`,
//!   `removelisten` removes them, `setlisten` replaces each list it is
//!   given (a list left out stays) and sets each of the flags `group`,
//!   `room`, `p2p` and `ev` it is given (all groups, all rooms, all P2P
//!   messages, all events).
//! * The message family pushes a message to the connections that listen to
//!   it (see `docs/protocol.md`, section 5, "Push and listen").
//! * Lenient: ids need not exist, and event names are not checked.
//!
//! ```
//! use rtm_server_sdk::emulator::RtmEmulator;
//! use rtm_server_sdk::rtm::ListenTargets;
//! use rtm_server_sdk::RtmServerClient;
//!
//! let emu = RtmEmulator::start(11000001, "secret").unwrap();
//! let client = RtmServerClient::new(11000001, "secret", emu.endpoint()).unwrap();
//! client.add_listen(&ListenTargets::new().groups([7])).unwrap();
//! assert!(emu.listen_state()[0].gids.contains(&7));
//! ```

use std::collections::{BTreeSet, HashMap};

use rmpv::Value;

use super::params::*;
use super::rtm::{Ctx, Family, RtmEmulator, RtmState};
use super::server::lock;

/// The listen state of one connection, as seen by
/// [`RtmEmulator::listen_state`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ConnListenState {
    /// The connection ([`ServerConn::id`](super::ServerConn::id)).
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

/// This family's state: the listen state of each open connection (not
/// saved).
#[derive(Debug, Default)]
pub(crate) struct Listen {
    by_conn: HashMap<u64, ConnListenState>,
}

impl Listen {
    /// The listen state of every connection that called a listen method.
    pub(crate) fn states(&self) -> impl Iterator<Item = &ConnListenState> {
        self.by_conn.values()
    }

    /// Forgets the state of a closed connection.
    pub(crate) fn forget(&mut self, conn_id: u64) {
        self.by_conn.remove(&conn_id);
    }
}

/// The methods of this family.
pub(crate) const FAMILY: Family = Family {
    methods: &["addlisten", "removelisten", "setlisten"],
    dispatch,
};

fn dispatch(st: &mut RtmState, cx: &mut Ctx<'_>, method: &str, p: &Value) -> R<Value> {
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
    let conn_id = cx.conn.id();
    let state = st
        .listen
        .by_conn
        .entry(conn_id)
        .or_insert_with(|| ConnListenState {
            conn_id,
            ..ConnListenState::default()
        });
    apply_listen(state, method, gids, rids, uids, events, flags);
    Ok(empty())
}

fn apply_listen(
    state: &mut ConnListenState,
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

/// Test-facing accessors of the listen family.
impl RtmEmulator {
    /// The listen state of every open connection, in connection order
    /// (the default state for a connection that never called a listen
    /// method).
    pub fn listen_state(&self) -> Vec<ConnListenState> {
        let conns = self.server().connections();
        let st = lock(&self.shared.state);
        conns
            .iter()
            .map(|c| {
                st.listen
                    .by_conn
                    .get(&c.id())
                    .cloned()
                    .unwrap_or_else(|| ConnListenState {
                        conn_id: c.id(),
                        ..ConnListenState::default()
                    })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::{Duration, Instant};

    use rmpv::Value;

    use crate::emulator::testutil::*;

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
}
