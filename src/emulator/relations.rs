//! Friends and black lists.
//!
//! # Behaviour
//!
//! * Friendship is two-way, as on the service: `addfriends(uid, friends)`
//!   makes each of `friends` a friend of `uid` and `uid` a friend of each
//!   of them; `delfriends` ends both directions. A user is never its own
//!   friend (`uid` in its own list is ignored).
//! * A black list is one-way: `addblacks(uid, blacks)` puts `blacks` on
//!   the list of `uid` only; `delblacks` takes them off it. Blacking a
//!   friend does not end the friendship. A user never blacks itself (`uid`
//!   in its own list is ignored).
//! * `getfriends` and `getblacks` answer `uids` in uid order;
//!   `isfriends`/`isblacks` answer the asked uids that are friends /
//!   blacked (`fuids` / `buids`, in the order asked, without repeats).
//! * Removing a relation that does not exist is not an error; users need
//!   not exist anywhere first.
//! * Lenient: the emulator sets no limit on the number of friends or
//!   blacks (the service has one, 200048 `RTM_EC_MAX_FRIEND_COUNT`) nor on
//!   list lengths.

use std::collections::{BTreeMap, BTreeSet};

use rmpv::Value;
use serde::{Deserialize, Serialize};

use super::params::*;
use super::rtm::{Ctx, Family, RtmEmulator, RtmState};
use super::server::lock;

/// This family's state (part of the emulator's one state).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct Relations {
    /// The friends of each user (kept symmetric).
    pub friends: BTreeMap<i64, BTreeSet<i64>>,
    /// The black list of each user.
    pub blacks: BTreeMap<i64, BTreeSet<i64>>,
}

/// Adds or removes `b` in the set of `a`, dropping an emptied set.
fn link(map: &mut BTreeMap<i64, BTreeSet<i64>>, a: i64, b: i64, add: bool) {
    if add {
        map.entry(a).or_default().insert(b);
    } else if let Some(set) = map.get_mut(&a) {
        set.remove(&b);
        if set.is_empty() {
            map.remove(&a);
        }
    }
}

fn has(map: &BTreeMap<i64, BTreeSet<i64>>, a: i64, b: i64) -> bool {
    map.get(&a).is_some_and(|s| s.contains(&b))
}

/// Those of `asked` in `a`'s set, in the order asked, without repeats.
fn subset(map: &BTreeMap<i64, BTreeSet<i64>>, a: i64, asked: Vec<i64>) -> Value {
    let mut seen = BTreeSet::new();
    let found: Vec<i64> = asked
        .into_iter()
        .filter(|b| has(map, a, *b) && seen.insert(*b))
        .collect();
    ids(&found)
}

fn all(map: &BTreeMap<i64, BTreeSet<i64>>, a: i64) -> Value {
    ids(map.get(&a).into_iter().flatten())
}

/// Whether `uid` has `buid` on its black list (for other families).
#[allow(dead_code)]
pub(crate) fn is_black(st: &RtmState, uid: i64, buid: i64) -> bool {
    has(&st.relations.blacks, uid, buid)
}

/// Whether `uid` and `fuid` are friends (for other families).
#[allow(dead_code)]
pub(crate) fn is_friend(st: &RtmState, uid: i64, fuid: i64) -> bool {
    has(&st.relations.friends, uid, fuid)
}

/// The methods of this family.
pub(crate) const FAMILY: Family = Family {
    methods: &[
        "addfriends",
        "delfriends",
        "getfriends",
        "isfriend",
        "isfriends",
        "addblacks",
        "delblacks",
        "getblacks",
        "isblack",
        "isblacks",
    ],
    dispatch,
};

fn dispatch(st: &mut RtmState, _cx: &mut Ctx<'_>, method: &str, p: &Value) -> R<Value> {
    let rel = &mut st.relations;
    match method {
        "addfriends" | "delfriends" => {
            let uid = int(p, "uid")?;
            let friends = int_list(p, "friends")?;
            let add = method == "addfriends";
            for f in friends.into_iter().filter(|&f| f != uid) {
                link(&mut rel.friends, uid, f, add);
                link(&mut rel.friends, f, uid, add);
            }
            Ok(empty())
        }
        "getfriends" => Ok(obj(vec![("uids", all(&rel.friends, int(p, "uid")?))])),
        "isfriend" => {
            let uid = int(p, "uid")?;
            let fuid = int(p, "fuid")?;
            Ok(ok(has(&rel.friends, uid, fuid)))
        }
        "isfriends" => {
            let uid = int(p, "uid")?;
            let fuids = int_list(p, "fuids")?;
            Ok(obj(vec![("fuids", subset(&rel.friends, uid, fuids))]))
        }
        "addblacks" | "delblacks" => {
            let uid = int(p, "uid")?;
            let blacks = int_list(p, "blacks")?;
            let add = method == "addblacks";
            for b in blacks.into_iter().filter(|&b| b != uid) {
                link(&mut rel.blacks, uid, b, add);
            }
            Ok(empty())
        }
        "getblacks" => Ok(obj(vec![("uids", all(&rel.blacks, int(p, "uid")?))])),
        "isblack" => {
            let uid = int(p, "uid")?;
            let buid = int(p, "buid")?;
            Ok(ok(has(&rel.blacks, uid, buid)))
        }
        "isblacks" => {
            let uid = int(p, "uid")?;
            let buids = int_list(p, "buids")?;
            Ok(obj(vec![("buids", subset(&rel.blacks, uid, buids))]))
        }
        _ => Err(unknown_method(method)),
    }
}

/// Test-facing accessors of the relations family.
impl RtmEmulator {
    /// The friends of `uid`, in uid order.
    #[must_use]
    pub fn friends(&self, uid: i64) -> Vec<i64> {
        let st = lock(&self.shared.state);
        st.relations
            .friends
            .get(&uid)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The black list of `uid`, in uid order.
    #[must_use]
    pub fn blacks(&self, uid: i64) -> Vec<i64> {
        let st = lock(&self.shared.state);
        st.relations
            .blacks
            .get(&uid)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }
}
