//! Encoding quest parameters and reading answers.
//!
//! Every API method is described once (see `rtm_methods!` in `client.rs`):
//! its arguments become [`Params`] through [`ToParam`], and its answer is
//! read into the typed result through [`AnswerReader`]. Both are internal:
//! users see only the typed methods and the raw `call`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use rmpv::Value;

use crate::error::{Error, Result};
use crate::fpnn::codec::map_get;

/// The parameters of one quest (besides the signing keys), already encoded
/// as msgpack map entries. They are encoded once and reused as they are
/// when the quest is re-signed and resent.
///
/// A value that cannot be sent (a duration beyond what the wire carries, a
/// list longer than msgpack allows) is recorded as the first error; the
/// call then fails with it before anything is sent.
#[derive(Debug, Clone, Default)]
pub(crate) struct Params {
    pub(crate) buf: Vec<u8>,
    pub(crate) count: u32,
    error: Option<Error>,
}

/// A value that can be a quest parameter.
pub(crate) trait ToParam {
    /// Appends the msgpack encoding of the value; `Ok(false)` leaves the key
    /// out (an unset `Option`); an error refuses the whole call.
    fn write(&self, out: &mut Vec<u8>) -> Result<bool>;
}

fn len32(len: usize, what: &str) -> Result<u32> {
    u32::try_from(len)
        .map_err(|_| Error::InvalidArgument(format!("{what} of {len} elements is too long")))
}

impl ToParam for i64 {
    fn write(&self, out: &mut Vec<u8>) -> Result<bool> {
        let _ = rmp::encode::write_sint(out, *self);
        Ok(true)
    }
}

impl ToParam for i32 {
    fn write(&self, out: &mut Vec<u8>) -> Result<bool> {
        i64::from(*self).write(out)
    }
}

impl ToParam for bool {
    fn write(&self, out: &mut Vec<u8>) -> Result<bool> {
        let _ = rmp::encode::write_bool(out, *self);
        Ok(true)
    }
}

impl ToParam for &str {
    fn write(&self, out: &mut Vec<u8>) -> Result<bool> {
        len32(self.len(), "a string")?;
        let _ = rmp::encode::write_str(out, self);
        Ok(true)
    }
}

impl ToParam for String {
    fn write(&self, out: &mut Vec<u8>) -> Result<bool> {
        self.as_str().write(out)
    }
}

impl ToParam for &String {
    fn write(&self, out: &mut Vec<u8>) -> Result<bool> {
        self.as_str().write(out)
    }
}

impl ToParam for &[i64] {
    fn write(&self, out: &mut Vec<u8>) -> Result<bool> {
        let _ = rmp::encode::write_array_len(out, len32(self.len(), "a list")?);
        for v in self.iter() {
            v.write(out)?;
        }
        Ok(true)
    }
}

impl ToParam for Vec<i64> {
    fn write(&self, out: &mut Vec<u8>) -> Result<bool> {
        self.as_slice().write(out)
    }
}

/// A list of strings (`[s]`), from any slice of `AsRef<str>`: `&[&str]`,
/// `&[String]`, ...
pub(crate) struct Strs<'a, S>(pub &'a [S]);

impl<S: AsRef<str>> ToParam for Strs<'_, S> {
    fn write(&self, out: &mut Vec<u8>) -> Result<bool> {
        let _ = rmp::encode::write_array_len(out, len32(self.0.len(), "a list")?);
        for v in self.0 {
            v.as_ref().write(out)?;
        }
        Ok(true)
    }
}

/// Binary content (`B`, msgpack `bin`).
pub(crate) struct Bin<'a>(pub &'a [u8]);

impl ToParam for Bin<'_> {
    fn write(&self, out: &mut Vec<u8>) -> Result<bool> {
        let _ = rmp::encode::write_bin_len(out, len32(self.0.len(), "binary content")?);
        out.extend_from_slice(self.0);
        Ok(true)
    }
}

/// A duration sent as whole seconds (`i`), a fraction of a second rounded
/// up (so that a non-zero duration never becomes 0). A duration beyond
/// `i64::MAX` seconds is refused with `InvalidArgument`.
pub(crate) struct Seconds(pub Duration);

impl ToParam for Seconds {
    fn write(&self, out: &mut Vec<u8>) -> Result<bool> {
        let secs = (self.0.as_secs()).saturating_add(u64::from(self.0.subsec_nanos() > 0));
        let secs = i64::try_from(secs).map_err(|_| {
            Error::InvalidArgument(format!("a duration of {:?} does not fit the wire", self.0))
        })?;
        secs.write(out)
    }
}

/// A map of strings to strings (`{s:s}`), in key order.
pub(crate) struct StrMap<'a, K, V>(pub &'a HashMap<K, V>);

impl<K: AsRef<str>, V: AsRef<str>> ToParam for StrMap<'_, K, V> {
    fn write(&self, out: &mut Vec<u8>) -> Result<bool> {
        let sorted: BTreeMap<&str, &str> = self
            .0
            .iter()
            .map(|(k, v)| (k.as_ref(), v.as_ref()))
            .collect();
        let _ = rmp::encode::write_map_len(out, len32(sorted.len(), "a map")?);
        for (k, v) in sorted {
            k.write(out)?;
            v.write(out)?;
        }
        Ok(true)
    }
}

impl ToParam for &Value {
    fn write(&self, out: &mut Vec<u8>) -> Result<bool> {
        crate::fpnn::codec::write_value(out, self);
        Ok(true)
    }
}

impl<T: ToParam> ToParam for Option<T> {
    fn write(&self, out: &mut Vec<u8>) -> Result<bool> {
        match self {
            Some(v) => v.write(out),
            None => Ok(false),
        }
    }
}

impl Params {
    /// No parameters.
    pub(crate) fn new() -> Params {
        Params::default()
    }

    /// Adds `key: value` (nothing for an unset `Option`); a value that
    /// cannot be sent is recorded as the error of the call.
    pub(crate) fn put(&mut self, key: &str, value: impl ToParam) -> &mut Params {
        if self.error.is_some() {
            return self;
        }
        let mark = self.buf.len();
        let _ = rmp::encode::write_str(&mut self.buf, key);
        match value.write(&mut self.buf) {
            Ok(true) => self.count += 1,
            Ok(false) => self.buf.truncate(mark),
            Err(e) => {
                self.buf.truncate(mark);
                self.error = Some(match e {
                    Error::InvalidArgument(why) => {
                        Error::InvalidArgument(format!("parameter `{key}`: {why}"))
                    }
                    other => other,
                });
            }
        }
        self
    }

    /// Refuses the call when a parameter could not be encoded.
    pub(crate) fn check(&self) -> Result<()> {
        match &self.error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// The parameters of a msgpack map (for the raw signed call).
    pub(crate) fn from_map(map: &Value) -> Result<Params> {
        crate::fpnn::codec::check_payload(map)?;
        let mut p = Params::new();
        if let Value::Map(entries) = map {
            for (k, v) in entries {
                let key = k.as_str().unwrap_or_default();
                if matches!(key, "pid" | "sign" | "salt" | "ts") {
                    return Err(Error::InvalidArgument(format!(
                        "`{key}` is added by the client when it signs the quest"
                    )));
                }
                p.put(key, v);
            }
        }
        p.check()?;
        Ok(p)
    }
}

/// Reads the answer of one method. Every reader names the key and what it
/// expected when the answer does not fit ([`Error::BadAnswer`]).
pub(crate) struct AnswerReader<'a> {
    pub method: &'a str,
    pub answer: &'a Value,
}

impl<'a> AnswerReader<'a> {
    /// The error for an answer of the wrong shape.
    pub fn bad(&self, detail: String) -> Error {
        Error::bad_answer(self.method, detail)
    }

    fn missing(&self, key: &str) -> Error {
        self.bad(format!("the answer has no `{key}`"))
    }

    /// The value of `key`, if present and not nil.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        map_get(self.answer, key).filter(|v| !v.is_nil())
    }

    /// A required value of any type.
    pub fn value(&self, key: &str) -> Result<&'a Value> {
        self.get(key).ok_or_else(|| self.missing(key))
    }

    /// Reads one integer found under `key`.
    pub fn int_of(&self, key: &str, v: &Value) -> Result<i64> {
        v.as_i64()
            .ok_or_else(|| self.bad(format!("`{key}` holds {v}, expected a 64-bit integer")))
    }

    /// Reads one string found under `key` (`str`, or `bin` holding UTF-8).
    pub fn str_of(&self, key: &str, v: &Value) -> Result<String> {
        match v {
            Value::String(s) => s.as_str().map(str::to_string),
            Value::Binary(b) => std::str::from_utf8(b).ok().map(str::to_string),
            _ => None,
        }
        .ok_or_else(|| self.bad(format!("`{key}` holds {v}, expected a string")))
    }

    /// A required integer.
    pub fn int(&self, key: &str) -> Result<i64> {
        self.int_of(key, self.value(key)?)
    }

    /// An optional integer.
    pub fn opt_int(&self, key: &str) -> Result<Option<i64>> {
        self.get(key).map(|v| self.int_of(key, v)).transpose()
    }

    /// A required bool (`ok` of the `is*` methods).
    pub fn bool(&self, key: &str) -> Result<bool> {
        let v = self.value(key)?;
        v.as_bool()
            .ok_or_else(|| self.bad(format!("`{key}` holds {v}, expected a bool")))
    }

    /// A required string.
    pub fn string(&self, key: &str) -> Result<String> {
        self.str_of(key, self.value(key)?)
    }

    /// An optional string.
    pub fn opt_string(&self, key: &str) -> Result<Option<String>> {
        self.get(key).map(|v| self.str_of(key, v)).transpose()
    }

    /// The elements of an optional array.
    pub fn opt_array(&self, key: &str) -> Result<Option<&'a [Value]>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items)),
            Some(v) => Err(self.bad(format!("`{key}` holds {v}, expected an array"))),
        }
    }

    /// An optional list of integers.
    pub fn opt_ints(&self, key: &str) -> Result<Option<Vec<i64>>> {
        self.opt_array(key)?
            .map(|items| items.iter().map(|v| self.int_of(key, v)).collect())
            .transpose()
    }

    /// A required list of integers.
    pub fn ints(&self, key: &str) -> Result<Vec<i64>> {
        self.opt_ints(key)?.ok_or_else(|| self.missing(key))
    }

    /// An optional list of strings.
    pub fn opt_strings(&self, key: &str) -> Result<Option<Vec<String>>> {
        self.opt_array(key)?
            .map(|items| items.iter().map(|v| self.str_of(key, v)).collect())
            .transpose()
    }

    /// The entries of an optional map, keys read as strings.
    pub fn opt_entries(&self, key: &str) -> Result<Option<Vec<(String, &'a Value)>>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Map(entries)) => entries
                .iter()
                .map(|(k, v)| Ok((self.str_of(key, k)?, v)))
                .collect::<Result<Vec<_>>>()
                .map(Some),
            Some(v) => Err(self.bad(format!("`{key}` holds {v}, expected a map"))),
        }
    }

    /// A map keyed by ids written as decimal strings (`{s(id): ...}`), each
    /// value read by `read`. A key that is not a decimal `i64` is an error
    /// naming it. An absent map is empty.
    pub fn id_map<T>(
        &self,
        key: &str,
        read: impl Fn(&Self, &str, &'a Value) -> Result<T>,
    ) -> Result<HashMap<i64, T>> {
        let mut out = HashMap::new();
        for (k, v) in self.opt_entries(key)?.unwrap_or_default() {
            let id = k.trim().parse::<i64>().map_err(|_| {
                self.bad(format!("`{key}` has the key {k:?}, expected a decimal id"))
            })?;
            out.insert(id, read(self, key, v)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(p: &Params) -> Value {
        let mut full = Vec::new();
        rmp::encode::write_map_len(&mut full, p.count).unwrap();
        full.extend_from_slice(&p.buf);
        rmpv::decode::read_value(&mut &full[..]).unwrap()
    }

    #[test]
    fn params_encode_types_and_skip_unset_options() {
        let mut p = Params::new();
        let names = vec!["a".to_string(), "b".to_string()];
        let mut infos = HashMap::new();
        infos.insert("k2", "v2");
        infos.insert("k1", "v1");
        p.put("rid", 7i64)
            .put("toUids", &[1i64, -2, 300][..])
            .put("status", true)
            .put("name", "x")
            .put("unset", None::<i32>)
            .put("set", Some(5i32))
            .put("events", Strs(&names))
            .put("file", Bin(&[0, 255]))
            .put("btime", Seconds(Duration::from_millis(1500)))
            .put("infos", StrMap(&infos));
        p.check().unwrap();
        assert_eq!(p.count, 9);
        let v = decode(&p);
        assert_eq!(map_get(&v, "rid"), Some(&Value::from(7)));
        assert_eq!(
            map_get(&v, "toUids"),
            Some(&Value::Array(vec![
                Value::from(1),
                Value::from(-2),
                Value::from(300)
            ]))
        );
        assert_eq!(map_get(&v, "status"), Some(&Value::Boolean(true)));
        assert_eq!(map_get(&v, "set"), Some(&Value::from(5)));
        assert_eq!(map_get(&v, "unset"), None);
        assert_eq!(
            map_get(&v, "events"),
            Some(&Value::Array(vec![Value::from("a"), Value::from("b")]))
        );
        assert_eq!(map_get(&v, "file"), Some(&Value::Binary(vec![0, 255])));
        assert_eq!(map_get(&v, "btime"), Some(&Value::from(2)));
        assert_eq!(
            map_get(&v, "infos"),
            Some(&Value::Map(vec![
                (Value::from("k1"), Value::from("v1")),
                (Value::from("k2"), Value::from("v2")),
            ]))
        );
    }

    #[test]
    fn an_unsendable_value_refuses_the_call() {
        let mut p = Params::new();
        p.put("uid", 1i64)
            .put("btime", Seconds(Duration::MAX))
            .put("later", 2i64);
        match p.check() {
            Err(Error::InvalidArgument(why)) => assert!(why.contains("btime"), "{why}"),
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn reader_reports_wrong_shapes() {
        let answer = Value::Map(vec![
            (Value::from("count"), Value::from("three")),
            (
                Value::from("uids"),
                Value::Array(vec![Value::from(1), Value::from("x")]),
            ),
            (Value::from("big"), Value::from(u64::MAX)),
            (
                Value::from("cn"),
                Value::Map(vec![(Value::from("12"), Value::from(3))]),
            ),
            (
                Value::from("badcn"),
                Value::Map(vec![(Value::from("x1"), Value::from(3))]),
            ),
            (Value::from("ok"), Value::from(true)),
        ]);
        let r = AnswerReader {
            method: "m",
            answer: &answer,
        };
        assert!(matches!(r.int("count"), Err(Error::BadAnswer { .. })));
        assert!(matches!(r.int("missing"), Err(Error::BadAnswer { .. })));
        assert!(matches!(r.ints("uids"), Err(Error::BadAnswer { .. })));
        assert!(matches!(r.int("big"), Err(Error::BadAnswer { .. })));
        assert!(matches!(r.bool("count"), Err(Error::BadAnswer { .. })));
        assert!(r.bool("ok").unwrap());
        assert_eq!(r.opt_ints("none").unwrap(), None);
        let cn = r.id_map("cn", |r, k, v| r.int_of(k, v)).unwrap();
        assert_eq!(cn.get(&12), Some(&3));
        match r.id_map("badcn", |r, k, v| r.int_of(k, v)) {
            Err(Error::BadAnswer { detail, .. }) => assert!(detail.contains("x1"), "{detail}"),
            other => panic!("expected BadAnswer, got {other:?}"),
        }
    }

    #[test]
    fn raw_params_refuse_signing_keys() {
        let map = Value::Map(vec![(Value::from("sign"), Value::from("x"))]);
        assert!(matches!(
            Params::from_map(&map),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            Params::from_map(&Value::from(1)),
            Err(Error::InvalidArgument(_))
        ));
    }
}
