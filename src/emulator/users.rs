//! Tokens and users: login tokens, online users, the project black
//! and ban lists, user info, clearing a user's messages, sessions.
//!
//! # Behaviour
//!
//! * `gettoken` issues a fresh random token (32 uppercase hex digits) each
//!   time; every token issued to a user stays valid until `removetoken`,
//!   which revokes them all (the emulator keeps the 64 most recent tokens
//!   of each user; older ones lapse). Tokens do not expire with time, and
//!   `kickout` leaves them valid. A test asks
//!   [`RtmEmulator::is_token_valid`].
//! * Nobody is online until a test says so with [`RtmEmulator::set_online`]:
//!   `getonlineusers` answers those of the asked uids who are online (in
//!   the order asked, without repeats), and `kickout` takes the user
//!   offline (kicking out an offline user is not an error).
//! * `addprojectblack` and `addprojectban` last `btime` seconds on the
//!   emulator's clock (see [`RtmEmulator::advance_clock`]); a new call
//!   replaces the expiry (a `btime` of 0 ends the entry at once), a
//!   negative `btime` is refused with 200034 (`RTM_EC_INVALID_PARAMETER`).
//!   Removing an entry that does not exist is not an error.
//! * `setuserinfo` sets the public (`oinfo`) and private (`pinfo`) info
//!   that it carries and leaves the other one as it was; `getuserinfo`
//!   answers both, an unset one as `""`; `getuseropeninfo` answers `info`
//!   keyed by the decimal uid, only for the asked users whose public info
//!   was set.
//! * `clearusermsg` deletes every stored message (see the messages family)
//!   that the user sent; messages sent to the user by others stay.
//! * Sessions are a set of uids per user: `addsessions` adds, and
//!   `removesessions` removes (uids that are absent are ignored).
//! * Lenient: the emulator sets no limit on list lengths or info sizes.

use std::collections::{BTreeMap, BTreeSet};

use rmpv::Value;
use serde::{Deserialize, Serialize};

use super::membership::{banned, prune};
use super::params::*;
use super::rtm::{Ctx, Family, RtmEmulator, RtmState};
use super::server::lock;

/// How many tokens the emulator keeps per user (the most recent ones).
pub(crate) const MAX_TOKENS_PER_USER: usize = 64;

/// A user's public and private info, as set (`None`: never set).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Info {
    pub public: Option<String>,
    pub private: Option<String>,
}

/// This family's state (part of the emulator's one state).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct Users {
    /// The valid tokens of each user, oldest first.
    pub tokens: BTreeMap<i64, Vec<String>>,
    /// The users online (set by tests).
    pub online: BTreeSet<i64>,
    /// The project black list: uid to the end of the entry (emulator
    /// milliseconds).
    pub black: BTreeMap<i64, i64>,
    /// The project ban list: uid to the end of the ban (emulator
    /// milliseconds).
    pub ban: BTreeMap<i64, i64>,
    /// Public and private info by uid.
    pub info: BTreeMap<i64, Info>,
    /// The sessions of each user.
    pub sessions: BTreeMap<i64, BTreeSet<i64>>,
}

/// Whether `uid` is on the project's black list now (for other families).
#[allow(dead_code)]
pub(crate) fn is_project_black(st: &RtmState, uid: i64) -> bool {
    banned(&st.users.black, uid, st.now_ms())
}

/// Whether `uid` is banned from the project now (for other families, e.g.
/// to refuse a banned sender).
#[allow(dead_code)]
pub(crate) fn is_project_banned(st: &RtmState, uid: i64) -> bool {
    banned(&st.users.ban, uid, st.now_ms())
}

/// Deletes every stored message that `uid` sent (`clearusermsg`).
fn clear_messages_from(st: &mut RtmState, uid: i64) {
    st.messages.retain(|m| m.from != uid);
}

/// A fresh random token: 32 uppercase hex digits.
fn new_token() -> String {
    use rand_core::RngCore;
    let mut bytes = [0u8; 16];
    if rand_core::OsRng.try_fill_bytes(&mut bytes).is_err() {
        // No OS randomness: fall back to the std hasher's random keys.
        use std::hash::{BuildHasher, Hasher};
        for chunk in bytes.chunks_mut(8) {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_i64(super::server::now_ms());
            chunk.copy_from_slice(&h.finish().to_le_bytes());
        }
    }
    hex::encode_upper(bytes)
}

/// Reads `btime` (seconds, not negative) and turns it into an expiry.
fn expiry(st: &RtmState, p: &Value) -> R<i64> {
    let btime = int(p, "btime")?;
    if btime < 0 {
        return Err(bad_value("btime", "a number of seconds, not negative"));
    }
    Ok(st.now_ms().saturating_add(btime.saturating_mul(1000)))
}

/// The methods of this family.
pub(crate) const FAMILY: Family = Family {
    methods: &[
        "gettoken",
        "removetoken",
        "kickout",
        "getonlineusers",
        "addprojectblack",
        "removeprojectblack",
        "isprojectblack",
        "addprojectban",
        "removeprojectban",
        "isprojectban",
        "setuserinfo",
        "getuserinfo",
        "getuseropeninfo",
        "clearusermsg",
        "addsessions",
        "removesessions",
    ],
    dispatch,
};

fn dispatch(st: &mut RtmState, _cx: &mut Ctx<'_>, method: &str, p: &Value) -> R<Value> {
    let now = st.now_ms();
    match method {
        "gettoken" => {
            let uid = int(p, "uid")?;
            let token = new_token();
            let tokens = st.users.tokens.entry(uid).or_default();
            if tokens.len() >= MAX_TOKENS_PER_USER {
                tokens.remove(0);
            }
            tokens.push(token.clone());
            Ok(obj(vec![("token", Value::from(token))]))
        }
        "removetoken" => {
            let uid = int(p, "uid")?;
            st.users.tokens.remove(&uid);
            Ok(empty())
        }
        "kickout" => {
            let uid = int(p, "uid")?;
            st.users.online.remove(&uid);
            Ok(empty())
        }
        "getonlineusers" => {
            let uids = int_list(p, "uids")?;
            let mut seen = BTreeSet::new();
            let online: Vec<i64> = uids
                .into_iter()
                .filter(|u| st.users.online.contains(u) && seen.insert(*u))
                .collect();
            Ok(obj(vec![("uids", ids(&online))]))
        }
        "addprojectblack" | "addprojectban" => {
            let uid = int(p, "uid")?;
            let until = expiry(st, p)?;
            let list = if method == "addprojectblack" {
                &mut st.users.black
            } else {
                &mut st.users.ban
            };
            prune(list, now);
            if until > now {
                list.insert(uid, until);
            } else {
                list.remove(&uid);
            }
            Ok(empty())
        }
        "removeprojectblack" => {
            let uid = int(p, "uid")?;
            st.users.black.remove(&uid);
            Ok(empty())
        }
        "removeprojectban" => {
            let uid = int(p, "uid")?;
            st.users.ban.remove(&uid);
            Ok(empty())
        }
        "isprojectblack" => Ok(ok(banned(&st.users.black, int(p, "uid")?, now))),
        "isprojectban" => Ok(ok(banned(&st.users.ban, int(p, "uid")?, now))),
        "setuserinfo" => {
            let uid = int(p, "uid")?;
            let public = opt_str(p, "oinfo")?;
            let private = opt_str(p, "pinfo")?;
            if public.is_some() || private.is_some() {
                let info = st.users.info.entry(uid).or_default();
                if public.is_some() {
                    info.public = public;
                }
                if private.is_some() {
                    info.private = private;
                }
            }
            Ok(empty())
        }
        "getuserinfo" => {
            let uid = int(p, "uid")?;
            let info = st.users.info.get(&uid).cloned().unwrap_or_default();
            Ok(obj(vec![
                ("oinfo", Value::from(info.public.unwrap_or_default())),
                ("pinfo", Value::from(info.private.unwrap_or_default())),
            ]))
        }
        "getuseropeninfo" => {
            let uids = int_list(p, "uids")?;
            let found: BTreeMap<i64, Value> = uids
                .into_iter()
                .filter_map(|uid| {
                    let public = st.users.info.get(&uid)?.public.as_deref()?;
                    Some((uid, Value::from(public)))
                })
                .collect();
            Ok(obj(vec![("info", id_keyed(found))]))
        }
        "clearusermsg" => {
            let uid = int(p, "uid")?;
            clear_messages_from(st, uid);
            Ok(empty())
        }
        "addsessions" => {
            let uid = int(p, "uid")?;
            let uids = int_list(p, "uids")?;
            st.users.sessions.entry(uid).or_default().extend(uids);
            Ok(empty())
        }
        "removesessions" => {
            let uid = int(p, "uid")?;
            let uids = int_list(p, "uids")?;
            if let Some(set) = st.users.sessions.get_mut(&uid) {
                for u in &uids {
                    set.remove(u);
                }
                if set.is_empty() {
                    st.users.sessions.remove(&uid);
                }
            }
            Ok(empty())
        }
        _ => Err(unknown_method(method)),
    }
}

/// Test-facing accessors of the users family.
impl RtmEmulator {
    /// Whether `token` was issued to `uid` by `gettoken` and not revoked by
    /// `removetoken`.
    #[must_use]
    pub fn is_token_valid(&self, uid: i64, token: &str) -> bool {
        lock(&self.shared.state)
            .users
            .tokens
            .get(&uid)
            .is_some_and(|t| t.iter().any(|x| x == token))
    }

    /// The valid tokens of `uid`, oldest first.
    #[must_use]
    pub fn user_tokens(&self, uid: i64) -> Vec<String> {
        lock(&self.shared.state)
            .users
            .tokens
            .get(&uid)
            .cloned()
            .unwrap_or_default()
    }

    /// Sets who is online: exactly `uids` (what `getonlineusers` filters
    /// with, and what `kickout` takes users out of).
    pub fn set_online(&self, uids: &[i64]) {
        lock(&self.shared.state).users.online = uids.iter().copied().collect();
    }

    /// The users online, in uid order.
    #[must_use]
    pub fn online_users(&self) -> Vec<i64> {
        lock(&self.shared.state)
            .users
            .online
            .iter()
            .copied()
            .collect()
    }

    /// When the project black-list entry of `uid` ends (emulator
    /// milliseconds, see [`now_ms`](Self::now_ms)), if it is on the list.
    #[must_use]
    pub fn project_black_until(&self, uid: i64) -> Option<i64> {
        let st = lock(&self.shared.state);
        let now = st.now_ms();
        st.users.black.get(&uid).copied().filter(|&t| t > now)
    }

    /// When the project ban of `uid` ends (emulator milliseconds), if it is
    /// banned.
    #[must_use]
    pub fn project_ban_until(&self, uid: i64) -> Option<i64> {
        let st = lock(&self.shared.state);
        let now = st.now_ms();
        st.users.ban.get(&uid).copied().filter(|&t| t > now)
    }

    /// The public and private info of `uid` (`None` for an info never set).
    #[must_use]
    pub fn user_info(&self, uid: i64) -> (Option<String>, Option<String>) {
        let st = lock(&self.shared.state);
        let info = st.users.info.get(&uid).cloned().unwrap_or_default();
        (info.public, info.private)
    }

    /// The sessions of `uid`, in uid order.
    #[must_use]
    pub fn user_sessions(&self, uid: i64) -> Vec<i64> {
        lock(&self.shared.state)
            .users
            .sessions
            .get(&uid)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::messages::{StoredMessage, Target};

    fn message(id: i64, target: Target, from: i64) -> StoredMessage {
        StoredMessage {
            id,
            target,
            from,
            mtype: 30,
            mid: id,
            msg: Value::from("hi"),
            attrs: String::new(),
            mtime: 0,
        }
    }

    #[test]
    fn clearing_a_users_messages_keeps_the_others() {
        let mut st = RtmState::default();
        for m in [
            message(1, Target::P2p(2), 1),
            message(2, Target::P2p(1), 2),
            message(3, Target::Group(9), 1),
            message(4, Target::Room(8), 3),
            message(5, Target::Broadcast, 1),
        ] {
            st.messages.push(m);
        }
        clear_messages_from(&mut st, 1);
        let left: Vec<i64> = st.messages.iter().map(|m| m.id).collect();
        assert_eq!(left, [2, 4]);
    }

    #[test]
    fn tokens_are_random_hex() {
        let a = new_token();
        let b = new_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()));
    }
}
