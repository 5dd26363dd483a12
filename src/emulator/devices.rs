//! Devices and push options.
//!
//! # Behaviour
//!
//! * `adddevice` registers a device token for a user with its app type;
//!   a token belongs to one user at a time, so registering it for another
//!   user moves it. An empty `apptype` or `devicetoken` gives 200033
//!   (`RTM_EC_EMPTY_PARAMETER`); any other app type is accepted (the
//!   emulator sends no notification). `removedevice` of a token the user
//!   does not have is accepted (lenient).
//! * A push option is kept per user, per `type` (0: P2P, `xid` a peer uid;
//!   1: group, `xid` a gid; any other `type` gives 200034) and per `xid`,
//!   as a set of mtypes where the empty set means every mtype.
//!   `addoption` without `mtypes` (or with an empty list) makes the option
//!   cover every mtype; with `mtypes` it adds them (an option that already
//!   covers every mtype stays so). `removeoption` without `mtypes` removes
//!   the option; with `mtypes` it removes them from the option's set, and
//!   removes the option when none is left (an option covering every mtype
//!   is left as it is: the emulator does not keep "every mtype but these").
//! * `getoption` answers `p2p` and `group` as maps keyed by the decimal
//!   text of each `xid`, each with its sorted mtypes (empty: every mtype).
//! * No user record is needed for any of these.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rmpv::Value;
use serde::{Deserialize, Serialize};

use super::params::*;
use super::rtm::{Ctx, Family, RtmEmulator, RtmState};
use super::server::{lock, Reply};
use crate::codes;
use crate::rtm::DevicePushOptions;

/// A user's push options: by `xid`, the mtypes (empty: every mtype).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct PushOptions {
    p2p: BTreeMap<i64, BTreeSet<i64>>,
    group: BTreeMap<i64, BTreeSet<i64>>,
}

/// This family's state (part of the emulator's one state).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct Devices {
    /// uid to its devices: device token to app type.
    devices: BTreeMap<i64, BTreeMap<String, String>>,
    /// uid to its push options.
    options: BTreeMap<i64, PushOptions>,
}

/// The methods of this family.
pub(crate) const FAMILY: Family = Family {
    methods: &[
        "adddevice",
        "removedevice",
        "addoption",
        "removeoption",
        "getoption",
    ],
    dispatch,
};

fn non_empty(p: &Value, key: &str) -> R<String> {
    let s = string(p, key)?;
    if s.is_empty() {
        return Err(Reply::error(
            codes::RTM_EC_EMPTY_PARAMETER,
            format!("parameter `{key}` must not be empty"),
        ));
    }
    Ok(s)
}

fn options_value(opts: &BTreeMap<i64, BTreeSet<i64>>) -> Value {
    id_keyed(opts.iter().map(|(&xid, m)| (xid, ids(m))))
}

fn dispatch(st: &mut RtmState, _cx: &mut Ctx<'_>, method: &str, p: &Value) -> R<Value> {
    let d = &mut st.devices;
    match method {
        "adddevice" => {
            let uid = int(p, "uid")?;
            let app_type = non_empty(p, "apptype")?;
            let token = non_empty(p, "devicetoken")?;
            for devices in d.devices.values_mut() {
                devices.remove(&token);
            }
            d.devices.retain(|_, devices| !devices.is_empty());
            d.devices.entry(uid).or_default().insert(token, app_type);
            Ok(empty())
        }
        "removedevice" => {
            let uid = int(p, "uid")?;
            let token = string(p, "devicetoken")?;
            if let Some(devices) = d.devices.get_mut(&uid) {
                devices.remove(&token);
                if devices.is_empty() {
                    d.devices.remove(&uid);
                }
            }
            Ok(empty())
        }
        "addoption" | "removeoption" => {
            let uid = int(p, "uid")?;
            let kind = int(p, "type")?;
            let xid = int(p, "xid")?;
            let mtypes = opt_int_list(p, "mtypes")?.unwrap_or_default();
            if kind != 0 && kind != 1 {
                return Err(bad_value("type", "0 (P2P) or 1 (group)"));
            }
            let opts = d.options.entry(uid).or_default();
            let map = if kind == 0 {
                &mut opts.p2p
            } else {
                &mut opts.group
            };
            if method == "addoption" {
                if mtypes.is_empty() {
                    map.insert(xid, BTreeSet::new());
                } else {
                    match map.get_mut(&xid) {
                        // Already every mtype.
                        Some(set) if set.is_empty() => {}
                        Some(set) => set.extend(mtypes),
                        None => {
                            map.insert(xid, mtypes.into_iter().collect());
                        }
                    }
                }
            } else if mtypes.is_empty() {
                map.remove(&xid);
            } else if let Some(set) = map.get_mut(&xid).filter(|s| !s.is_empty()) {
                for m in &mtypes {
                    set.remove(m);
                }
                if set.is_empty() {
                    map.remove(&xid);
                }
            }
            if opts.p2p.is_empty() && opts.group.is_empty() {
                d.options.remove(&uid);
            }
            Ok(empty())
        }
        "getoption" => {
            let uid = int(p, "uid")?;
            let opts = d.options.get(&uid).cloned().unwrap_or_default();
            Ok(obj(vec![
                ("p2p", options_value(&opts.p2p)),
                ("group", options_value(&opts.group)),
            ]))
        }
        _ => Err(unknown_method(method)),
    }
}

fn to_hash(opts: &BTreeMap<i64, BTreeSet<i64>>) -> HashMap<i64, Vec<i64>> {
    opts.iter()
        .map(|(&xid, m)| (xid, m.iter().copied().collect()))
        .collect()
}

impl RtmEmulator {
    /// The devices of user `uid`: device token to app type.
    pub fn devices(&self, uid: i64) -> BTreeMap<String, String> {
        lock(&self.shared.state)
            .devices
            .devices
            .get(&uid)
            .cloned()
            .unwrap_or_default()
    }

    /// The push options of user `uid` (what `getoption` answers).
    pub fn device_push_options(&self, uid: i64) -> DevicePushOptions {
        let st = lock(&self.shared.state);
        let mut out = DevicePushOptions::default();
        if let Some(opts) = st.devices.options.get(&uid) {
            out.p2p = to_hash(&opts.p2p);
            out.group = to_hash(&opts.group);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_survives_json() {
        let mut d = Devices::default();
        d.devices
            .entry(1)
            .or_default()
            .insert("t".into(), "fcm".into());
        let opts = d.options.entry(1).or_default();
        opts.p2p.insert(2, BTreeSet::from([30, 31]));
        opts.group.insert(-7, BTreeSet::new());
        let text = serde_json::to_string(&d).unwrap();
        let back: Devices = serde_json::from_str(&text).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), text);
        assert_eq!(back.devices[&1]["t"], "fcm");
        assert_eq!(back.options[&1].p2p[&2], BTreeSet::from([30, 31]));
        assert!(back.options[&1].group[&-7].is_empty());
    }
}
