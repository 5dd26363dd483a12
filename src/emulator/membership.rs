//! What several families share: the member sets of the voice and RTC rooms
//! ([`CallRoom`]), and the groups' and rooms' members, bans with expiry and
//! infos ([`Registry`]).

use std::collections::{BTreeMap, BTreeSet};

use rmpv::Value;
use serde::{Deserialize, Serialize};

use super::params::*;

// ---------------------------------------------------------------------------
// Voice and RTC rooms
// ---------------------------------------------------------------------------

/// The parts of a voice or RTC room that both generations handle alike.
pub(crate) struct Roster<'a> {
    pub members: &'a mut BTreeSet<i64>,
    pub invited: &'a mut BTreeSet<i64>,
    pub owner: &'a mut Option<i64>,
    pub mic_status: &'a mut Option<bool>,
}

/// A voice room or an RTC room.
pub(crate) trait CallRoom {
    /// A new, empty room.
    fn new(rid: i64) -> Self;
    /// The shared parts.
    fn roster(&mut self) -> Roster<'_>;
    /// The members.
    fn members(&self) -> &BTreeSet<i64>;
    /// Called when `uid`, the first user pulled into the new room, becomes
    /// its owner.
    fn on_owner(&mut self, _uid: i64) {}
    /// Forgets the roles and switches of `uid`, just kicked out.
    fn on_kickout(&mut self, uid: i64);
}

/// Pulls `uids` into room `rid`, made when missing (its first user becomes
/// the owner); invited users become members.
pub(crate) fn pull<T: CallRoom>(rooms: &mut BTreeMap<i64, T>, rid: i64, uids: Vec<i64>) -> &mut T {
    let room = rooms.entry(rid).or_insert_with(|| T::new(rid));
    let r = room.roster();
    if r.owner.is_none() && r.members.is_empty() {
        if let Some(&first) = uids.first() {
            *r.owner = Some(first);
            room.on_owner(first);
        }
    }
    let r = room.roster();
    for uid in uids {
        r.invited.remove(&uid);
        r.members.insert(uid);
    }
    room
}

/// The name of a method both generations share without its family's
/// `infix` (`"Voice"` or `"RTC"`, right before `Room`), as
/// [`dispatch_common`] takes it, without allocating; `""` for any other
/// method.
pub(crate) fn common_op(method: &str, infix: &str) -> &'static str {
    /// Each shared name, and where the infix goes in it.
    const OPS: [(&str, usize); 6] = [
        ("inviteUserIntoRoom", 14),
        ("kickoutFromRoom", 11),
        ("closeRoom", 5),
        ("getRoomList", 3),
        ("getRoomMemberCount", 3),
        ("setRoomMicStatus", 3),
    ];
    let (method, infix) = (method.as_bytes(), infix.as_bytes());
    OPS.iter()
        .find(|(op, at)| {
            let (head, tail) = op.as_bytes().split_at(*at);
            method.len() == op.len() + infix.len()
                && method.starts_with(head)
                && method[head.len()..].starts_with(infix)
                && method.ends_with(tail)
        })
        .map_or("", |(op, _)| op)
}

/// The methods both generations share, by their name without `Voice` or
/// `RTC` (`inviteUserIntoRoom`, `kickoutFromRoom`, `closeRoom`,
/// `getRoomList`, `getRoomMemberCount`, `setRoomMicStatus`); `method` is
/// the full name, for errors.
pub(crate) fn dispatch_common<T: CallRoom>(
    rooms: &mut BTreeMap<i64, T>,
    op: &str,
    method: &str,
    p: &Value,
) -> R<Value> {
    match op {
        "inviteUserIntoRoom" => {
            let rid = int(p, "rid")?;
            let uids = int_list(p, "toUids")?;
            let from = int(p, "fromUid")?;
            let r = rooms.get_mut(&rid).ok_or_else(|| no_room(rid))?.roster();
            if !r.members.contains(&from) {
                return Err(not_in_room(format!(
                    "the inviter {from} is not in room {rid}"
                )));
            }
            let members = &*r.members;
            r.invited
                .extend(uids.into_iter().filter(|u| !members.contains(u)));
            Ok(empty())
        }
        "kickoutFromRoom" => {
            let rid = int(p, "rid")?;
            let uid = int(p, "uid")?;
            let _from = int(p, "fromUid")?;
            let room = rooms.get_mut(&rid).ok_or_else(|| no_room(rid))?;
            if !room.roster().members.remove(&uid) {
                return Err(not_in_room(format!("user {uid} is not in room {rid}")));
            }
            room.on_kickout(uid);
            Ok(empty())
        }
        "closeRoom" => {
            let rid = int(p, "rid")?;
            rooms.remove(&rid).ok_or_else(|| no_room(rid))?;
            Ok(empty())
        }
        "getRoomList" => Ok(obj(vec![("rids", ids(rooms.keys()))])),
        "getRoomMemberCount" => {
            let rid = int(p, "rid")?;
            let room = rooms.get(&rid).ok_or_else(|| no_room(rid))?;
            Ok(obj(vec![(
                "count",
                Value::from(room.members().len() as i64),
            )]))
        }
        "setRoomMicStatus" => {
            let rid = int(p, "rid")?;
            let status = boolean(p, "status")?;
            let room = rooms.get_mut(&rid).ok_or_else(|| no_room(rid))?;
            *room.roster().mic_status = Some(status);
            Ok(empty())
        }
        _ => Err(unknown_method(method)),
    }
}

/// Implements [`CallRoom`]'s field accessors for a room type with the
/// fields `members`, `invited`, `owner` and `mic_status`.
macro_rules! call_room_fields {
    () => {
        fn new(rid: i64) -> Self {
            Self {
                rid,
                ..Self::default()
            }
        }

        fn roster(&mut self) -> super::membership::Roster<'_> {
            super::membership::Roster {
                members: &mut self.members,
                invited: &mut self.invited,
                owner: &mut self.owner,
                mic_status: &mut self.mic_status,
            }
        }

        fn members(&self) -> &std::collections::BTreeSet<i64> {
            &self.members
        }
    };
}
pub(crate) use call_room_fields;

// ---------------------------------------------------------------------------
// Bans with expiry
// ---------------------------------------------------------------------------

/// The end of a ban of `btime` seconds starting at `now_ms`; a `btime`
/// that is not positive is refused (200034).
pub(crate) fn ban_end(now_ms: i64, btime: i64) -> R<i64> {
    if btime <= 0 {
        return Err(bad_value("btime", "a positive number of seconds"));
    }
    Ok(now_ms.saturating_add(btime.saturating_mul(1000)))
}

/// Whether a ban in `bans` (uid to the end of its ban, in ms) holds `uid`
/// at `now_ms`.
pub(crate) fn banned(bans: &BTreeMap<i64, i64>, uid: i64, now_ms: i64) -> bool {
    bans.get(&uid).is_some_and(|&end| end > now_ms)
}

/// Drops the bans that ended by `now_ms`.
pub(crate) fn prune(bans: &mut BTreeMap<i64, i64>, now_ms: i64) {
    bans.retain(|_, end| *end > now_ms);
}

// ---------------------------------------------------------------------------
// Groups and rooms
// ---------------------------------------------------------------------------

/// A group or a room of the room API: members, bans, public and private
/// info.
pub(crate) trait Collective: Clone {
    /// The state's field that holds every entry (`groups`, `rooms`), kept
    /// as the saved JSON's key.
    const FIELD: &'static str;
    /// The key of an entry's id in a quest (`gid`, `rid`).
    const KEY: &'static str;
    /// The methods that add, remove and check a ban, set and get the info,
    /// in that order.
    const SHARED_METHODS: [&'static str; 5];
    /// A new, empty entry.
    fn new(id: i64) -> Self;
    /// The members.
    fn members(&self) -> &BTreeSet<i64>;
    /// The members, to change.
    fn members_mut(&mut self) -> &mut BTreeSet<i64>;
    /// The bans in this entry: uid to the end of the ban (ms).
    fn bans_mut(&mut self) -> &mut BTreeMap<i64, i64>;
    /// The bans in this entry.
    fn bans(&self) -> &BTreeMap<i64, i64>;
    /// The public and private info.
    fn info(&self) -> (&str, &str);
    /// The public and private info, to change.
    fn info_mut(&mut self) -> (&mut String, &mut String);
}

/// Implements [`Collective`] for a type with the fields `members`, `bans`,
/// `public_info` and `private_info`, and an id field.
macro_rules! collective {
    ($ty:ty, $id:ident, $field:literal, $methods:expr) => {
        impl super::membership::Collective for $ty {
            const FIELD: &'static str = $field;
            const KEY: &'static str = stringify!($id);
            const SHARED_METHODS: [&'static str; 5] = $methods;

            fn new(id: i64) -> Self {
                Self {
                    $id: id,
                    ..Self::default()
                }
            }

            fn members(&self) -> &BTreeSet<i64> {
                &self.members
            }

            fn members_mut(&mut self) -> &mut BTreeSet<i64> {
                &mut self.members
            }

            fn bans(&self) -> &BTreeMap<i64, i64> {
                &self.bans
            }

            fn bans_mut(&mut self) -> &mut BTreeMap<i64, i64> {
                &mut self.bans
            }

            fn info(&self) -> (&str, &str) {
                (&self.public_info, &self.private_info)
            }

            fn info_mut(&mut self) -> (&mut String, &mut String) {
                (&mut self.public_info, &mut self.private_info)
            }
        }
    };
}
pub(crate) use collective;

/// Every group (or every room) by id, with the bans that hold in all of
/// them. Made on first use: an id never used reads as an empty entry.
#[derive(Debug, Clone)]
pub(crate) struct Registry<T> {
    /// Every entry by id.
    pub entries: BTreeMap<i64, T>,
    /// The bans in every entry: uid to the end of the ban (ms).
    pub all_bans: BTreeMap<i64, i64>,
}

impl<T> Default for Registry<T> {
    fn default() -> Self {
        Registry {
            entries: BTreeMap::new(),
            all_bans: BTreeMap::new(),
        }
    }
}

impl<T: Collective> Registry<T> {
    /// Entry `id`, made when missing.
    pub fn entry_mut(&mut self, id: i64) -> &mut T {
        self.entries.entry(id).or_insert_with(|| T::new(id))
    }

    /// The members of entry `id`, if it was made.
    pub fn members(&self, id: i64) -> Option<&BTreeSet<i64>> {
        self.entries.get(&id).map(T::members)
    }

    /// Whether `uid` is a member of entry `id`.
    pub fn is_member(&self, id: i64, uid: i64) -> bool {
        self.members(id).is_some_and(|m| m.contains(&uid))
    }

    /// Removes `uid` from entry `id`; true when it was a member.
    pub fn remove_member(&mut self, id: i64, uid: i64) -> bool {
        self.entries
            .get_mut(&id)
            .is_some_and(|e| e.members_mut().remove(&uid))
    }

    /// Whether `uid` is banned in entry `id` at `now_ms`, by a ban there or
    /// in every entry.
    pub fn is_banned(&self, id: i64, uid: i64, now_ms: i64) -> bool {
        banned(&self.all_bans, uid, now_ms)
            || self
                .entries
                .get(&id)
                .is_some_and(|e| banned(e.bans(), uid, now_ms))
    }

    /// A copy of entry `id` with only its bans still in force.
    pub fn snapshot(&self, id: i64, now_ms: i64) -> Option<T> {
        self.entries.get(&id).map(|e| {
            let mut e = e.clone();
            prune(e.bans_mut(), now_ms);
            e
        })
    }

    /// The ban and info methods ([`Collective::SHARED_METHODS`]) on the
    /// entry named by [`Collective::KEY`]; `None` for another method.
    /// Without the key (or with an id ≤ 0), a ban holds in every entry, and
    /// lifting one lifts it everywhere.
    pub fn dispatch_shared(&mut self, method: &str, p: &Value, now: i64) -> Option<R<Value>> {
        let which = T::SHARED_METHODS.iter().position(|&m| m == method)?;
        Some(match which {
            0 => self.add_ban(p, now),
            1 => self.remove_ban(p),
            2 => (|| Ok(ok(self.is_banned(int(p, T::KEY)?, int(p, "uid")?, now))))(),
            3 => self.set_info(p),
            _ => (|| {
                let id = int(p, T::KEY)?;
                let (public, private) = self.entries.get(&id).map(T::info).unwrap_or_default();
                Ok(obj(vec![
                    ("oinfo", Value::from(public)),
                    ("pinfo", Value::from(private)),
                ]))
            })(),
        })
    }

    fn add_ban(&mut self, p: &Value, now: i64) -> R<Value> {
        let id = opt_int(p, T::KEY)?.filter(|&id| id > 0);
        let uid = int(p, "uid")?;
        let end = ban_end(now, int(p, "btime")?)?;
        let bans = match id {
            Some(id) => self.entry_mut(id).bans_mut(),
            None => &mut self.all_bans,
        };
        prune(bans, now);
        bans.insert(uid, end);
        Ok(empty())
    }

    fn remove_ban(&mut self, p: &Value) -> R<Value> {
        let id = opt_int(p, T::KEY)?.filter(|&id| id > 0);
        let uid = int(p, "uid")?;
        match id {
            Some(id) => {
                if let Some(e) = self.entries.get_mut(&id) {
                    e.bans_mut().remove(&uid);
                }
            }
            None => {
                self.all_bans.remove(&uid);
                for e in self.entries.values_mut() {
                    e.bans_mut().remove(&uid);
                }
            }
        }
        Ok(empty())
    }

    fn set_info(&mut self, p: &Value) -> R<Value> {
        let id = int(p, T::KEY)?;
        let public = opt_str(p, "oinfo")?;
        let private = opt_str(p, "pinfo")?;
        let (oinfo, pinfo) = self.entry_mut(id).info_mut();
        if let Some(public) = public {
            *oinfo = public;
        }
        if let Some(private) = private {
            *pinfo = private;
        }
        Ok(empty())
    }
}

/// Saved as `{"<FIELD>": {...}, "all_bans": {...}}`, the layout the group
/// and room families always wrote.
impl<T: Collective + Serialize> Serialize for Registry<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Registry", 2)?;
        st.serialize_field(T::FIELD, &self.entries)?;
        st.serialize_field("all_bans", &self.all_bans)?;
        st.end()
    }
}

impl<'de, T: Collective + Deserialize<'de>> Deserialize<'de> for Registry<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// Either family's layout (missing fields: empty).
        #[derive(Deserialize)]
        #[serde(bound = "T: Deserialize<'de>")]
        struct Saved<T> {
            #[serde(default = "BTreeMap::new", alias = "groups", alias = "rooms")]
            entries: BTreeMap<i64, T>,
            #[serde(default)]
            all_bans: BTreeMap<i64, i64>,
        }
        let saved = Saved::<T>::deserialize(d)?;
        Ok(Registry {
            entries: saved.entries,
            all_bans: saved.all_bans,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::{Group, Room};

    #[test]
    fn common_op_takes_the_infix_out_as_replacen_did() {
        let methods = crate::emulator::rtm::implemented_methods();
        for infix in ["Voice", "RTC"] {
            for &method in methods.iter().chain(&["getVoiceRoomé", "é", "RoomVoice"]) {
                let replaced = method.replacen(infix, "", 1);
                let got = common_op(method, infix);
                if method.contains(infix) && got.is_empty() {
                    // Not a shared method: dispatch_common answers 20004
                    // for both.
                    assert!(
                        !["inviteUserIntoRoom", "kickoutFromRoom", "closeRoom"]
                            .into_iter()
                            .chain(["getRoomList", "getRoomMemberCount", "setRoomMicStatus"])
                            .any(|op| op == replaced),
                        "{method}"
                    );
                } else if !got.is_empty() {
                    assert_eq!(got, replaced, "{method}");
                }
            }
        }
        assert_eq!(
            common_op("getVoiceRoomMemberCount", "Voice"),
            "getRoomMemberCount"
        );
        assert_eq!(common_op("closeRTCRoom", "RTC"), "closeRoom");
        assert_eq!(common_op("closeRTCRoom", "Voice"), "");
    }

    #[test]
    fn ban_end_refuses_non_positive_times_and_saturates() {
        assert!(ban_end(1000, 0).is_err());
        assert!(ban_end(1000, -5).is_err());
        assert_eq!(ban_end(1000, 2).unwrap(), 3000);
        assert_eq!(ban_end(1000, i64::MAX).unwrap(), i64::MAX);
    }

    #[test]
    fn bans_end_at_their_time() {
        let mut bans = BTreeMap::from([(1, 2000), (2, 5000)]);
        assert!(banned(&bans, 1, 1999));
        assert!(!banned(&bans, 1, 2000));
        assert!(!banned(&bans, 3, 0));
        prune(&mut bans, 3000);
        assert_eq!(bans, BTreeMap::from([(2, 5000)]));
    }

    fn quest(entries: Vec<(&str, Value)>) -> Value {
        crate::emulator::testutil::map(entries)
    }

    #[test]
    fn bans_in_one_entry_and_in_all() {
        let mut r = Registry::<Room>::default();
        let ban = |rid: Option<i64>, uid: i64| {
            let mut q = vec![("uid", Value::from(uid)), ("btime", Value::from(10))];
            if let Some(rid) = rid {
                q.push(("rid", Value::from(rid)));
            }
            quest(q)
        };
        assert!(r.dispatch_shared("addgroupban", &ban(None, 1), 0).is_none());
        r.dispatch_shared("addroomban", &ban(Some(5), 1), 0)
            .unwrap()
            .unwrap();
        r.dispatch_shared("addroomban", &ban(None, 2), 0)
            .unwrap()
            .unwrap();
        assert!(r.is_banned(5, 1, 9_999) && !r.is_banned(6, 1, 0));
        assert!(r.is_banned(6, 2, 0) && !r.is_banned(6, 2, 10_000));
        assert_eq!(r.snapshot(5, 10_000).unwrap().bans, BTreeMap::new());
        // Lifting without a rid lifts everywhere.
        r.dispatch_shared("removeroomban", &quest(vec![("uid", 1.into())]), 0)
            .unwrap()
            .unwrap();
        assert!(!r.is_banned(5, 1, 0));
        let bad = quest(vec![("uid", 1.into()), ("btime", 0.into())]);
        assert!(r.dispatch_shared("addroomban", &bad, 0).unwrap().is_err());
    }

    #[test]
    fn info_is_set_in_parts_and_read_back() {
        let mut g = Registry::<Group>::default();
        let set = quest(vec![("gid", 3.into()), ("oinfo", "pub".into())]);
        g.dispatch_shared("setgroupinfo", &set, 0).unwrap().unwrap();
        let set = quest(vec![("gid", 3.into()), ("pinfo", "priv".into())]);
        g.dispatch_shared("setgroupinfo", &set, 0).unwrap().unwrap();
        assert_eq!(g.entries[&3].info(), ("pub", "priv"));
        let got = g
            .dispatch_shared("getgroupinfo", &quest(vec![("gid", 4.into())]), 0)
            .unwrap()
            .unwrap();
        assert_eq!(got, obj(vec![("oinfo", "".into()), ("pinfo", "".into())]));
    }

    #[test]
    fn a_state_saved_before_the_registry_still_loads() {
        let old = r#"{"rooms":{"5":{"rid":5,"members":[1],"public_info":"p",
            "private_info":"","bans":{"2":1000}}},"all_bans":{"3":2000}}"#;
        let r: Registry<Room> = serde_json::from_str(old).unwrap();
        assert!(r.is_member(5, 1));
        assert!(r.is_banned(5, 2, 999) && r.is_banned(9, 3, 1999));
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.starts_with(r#"{"rooms":{"5":"#), "{text}");
    }
}
