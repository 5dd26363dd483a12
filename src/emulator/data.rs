//! Key-value data per user (`dataget`, `dataset`, `datadel`).
//!
//! # Behaviour
//!
//! * Each user has its own map of string keys to string values; users need
//!   not exist anywhere first.
//! * `dataget` answers `{val}` for a stored key and `{}` (no `val`) for a
//!   missing one; `dataset` replaces any previous value; `datadel` of a
//!   missing key is not an error.
//! * An empty `key` is refused with 200034 (`RTM_EC_INVALID_PARAMETER`).
//! * Lenient: the emulator sets no limit on key or value sizes.

use std::collections::BTreeMap;

use rmpv::Value;
use serde::{Deserialize, Serialize};

use super::params::*;
use super::rtm::{Ctx, Family, RtmEmulator, RtmState};
use super::server::lock;

/// This family's state (part of the emulator's one state).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct Data {
    /// The values of each user, by key.
    pub values: BTreeMap<i64, BTreeMap<String, String>>,
}

/// The methods of this family.
pub(crate) const FAMILY: Family = Family {
    methods: &["dataget", "dataset", "datadel"],
    dispatch,
};

/// Reads `uid` and a non-empty `key`.
fn uid_key(p: &Value) -> R<(i64, String)> {
    let uid = int(p, "uid")?;
    let key = string(p, "key")?;
    if key.is_empty() {
        return Err(bad_value("key", "a non-empty string"));
    }
    Ok((uid, key))
}

fn dispatch(st: &mut RtmState, _cx: &mut Ctx<'_>, method: &str, p: &Value) -> R<Value> {
    let values = &mut st.data.values;
    match method {
        "dataget" => {
            let (uid, key) = uid_key(p)?;
            Ok(match values.get(&uid).and_then(|m| m.get(&key)) {
                Some(val) => obj(vec![("val", Value::from(val.as_str()))]),
                None => empty(),
            })
        }
        "dataset" => {
            let (uid, key) = uid_key(p)?;
            let val = string(p, "val")?;
            values.entry(uid).or_default().insert(key, val);
            Ok(empty())
        }
        "datadel" => {
            let (uid, key) = uid_key(p)?;
            if let Some(m) = values.get_mut(&uid) {
                m.remove(&key);
                if m.is_empty() {
                    values.remove(&uid);
                }
            }
            Ok(empty())
        }
        _ => Err(unknown_method(method)),
    }
}

/// Test-facing accessors of the data family.
impl RtmEmulator {
    /// Every value stored for `uid`, by key.
    #[must_use]
    pub fn user_data(&self, uid: i64) -> BTreeMap<String, String> {
        lock(&self.shared.state)
            .data
            .values
            .get(&uid)
            .cloned()
            .unwrap_or_default()
    }
}
