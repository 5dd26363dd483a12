//! Encoding quest parameters and reading answers.

use rmpv::Value;

use crate::error::{Error, Result};
use crate::fpnn::codec::map_get;

/// The parameters of one quest (besides the signing keys), already encoded
/// as msgpack map entries. They are encoded once and reused as they are
/// when the quest is re-signed and resent.
#[derive(Debug, Clone, Default)]
pub struct Params {
    pub(crate) buf: Vec<u8>,
    pub(crate) count: u32,
}

/// A value that can be a quest parameter.
pub trait ToParam {
    /// Appends the msgpack encoding of the value; returns false to leave
    /// the key out (an unset `Option`).
    fn write(&self, out: &mut Vec<u8>) -> bool;
}

impl ToParam for i64 {
    fn write(&self, out: &mut Vec<u8>) -> bool {
        let _ = rmp::encode::write_sint(out, *self);
        true
    }
}

impl ToParam for i32 {
    fn write(&self, out: &mut Vec<u8>) -> bool {
        i64::from(*self).write(out)
    }
}

impl ToParam for bool {
    fn write(&self, out: &mut Vec<u8>) -> bool {
        let _ = rmp::encode::write_bool(out, *self);
        true
    }
}

impl ToParam for &str {
    fn write(&self, out: &mut Vec<u8>) -> bool {
        let _ = rmp::encode::write_str(out, self);
        true
    }
}

impl ToParam for &[i64] {
    fn write(&self, out: &mut Vec<u8>) -> bool {
        let _ = rmp::encode::write_array_len(out, self.len() as u32);
        for v in self.iter() {
            v.write(out);
        }
        true
    }
}

impl ToParam for &[String] {
    fn write(&self, out: &mut Vec<u8>) -> bool {
        let _ = rmp::encode::write_array_len(out, self.len() as u32);
        for v in self.iter() {
            let _ = rmp::encode::write_str(out, v);
        }
        true
    }
}

impl ToParam for &Value {
    fn write(&self, out: &mut Vec<u8>) -> bool {
        crate::fpnn::codec::write_value(out, self);
        true
    }
}

impl<T: ToParam> ToParam for Option<T> {
    fn write(&self, out: &mut Vec<u8>) -> bool {
        match self {
            Some(v) => v.write(out),
            None => false,
        }
    }
}

impl Params {
    /// No parameters.
    pub fn new() -> Params {
        Params::default()
    }

    /// Adds `key: value` (nothing for an unset `Option`).
    pub fn put(&mut self, key: &str, value: impl ToParam) -> &mut Params {
        let mark = self.buf.len();
        let _ = rmp::encode::write_str(&mut self.buf, key);
        if value.write(&mut self.buf) {
            self.count += 1;
        } else {
            self.buf.truncate(mark);
        }
        self
    }

    /// The parameters of a msgpack map (for the raw signed call).
    pub fn from_map(map: &Value) -> Result<Params> {
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
        Ok(p)
    }
}

/// Reads the answer of one method.
pub(crate) struct AnswerReader<'a> {
    pub method: &'a str,
    pub answer: &'a Value,
}

impl AnswerReader<'_> {
    fn bad(&self, detail: String) -> Error {
        Error::bad_answer(self.method, detail)
    }

    fn int_of(&self, key: &str, v: &Value) -> Result<i64> {
        v.as_i64()
            .ok_or_else(|| self.bad(format!("`{key}` holds {v}, expected a 64-bit integer")))
    }

    /// A required integer.
    pub fn int(&self, key: &str) -> Result<i64> {
        match map_get(self.answer, key) {
            Some(v) => self.int_of(key, v),
            None => Err(self.bad(format!("the answer has no `{key}`"))),
        }
    }

    /// An optional integer.
    pub fn opt_int(&self, key: &str) -> Result<Option<i64>> {
        match map_get(self.answer, key) {
            None | Some(Value::Nil) => Ok(None),
            Some(v) => self.int_of(key, v).map(Some),
        }
    }

    /// An optional list of integers.
    pub fn opt_ints(&self, key: &str) -> Result<Option<Vec<i64>>> {
        match map_get(self.answer, key) {
            None | Some(Value::Nil) => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| self.int_of(key, v))
                .collect::<Result<Vec<_>>>()
                .map(Some),
            Some(v) => Err(self.bad(format!("`{key}` holds {v}, expected an array of integers"))),
        }
    }

    /// A required list of integers.
    pub fn ints(&self, key: &str) -> Result<Vec<i64>> {
        self.opt_ints(key)?
            .ok_or_else(|| self.bad(format!("the answer has no `{key}`")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_encode_types_and_skip_unset_options() {
        let mut p = Params::new();
        p.put("rid", 7i64)
            .put("toUids", &[1i64, -2, 300][..])
            .put("status", true)
            .put("name", "x")
            .put("unset", None::<i32>)
            .put("set", Some(5i32));
        assert_eq!(p.count, 5);
        let mut full = Vec::new();
        rmp::encode::write_map_len(&mut full, p.count).unwrap();
        full.extend_from_slice(&p.buf);
        let v = rmpv::decode::read_value(&mut &full[..]).unwrap();
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
        ]);
        let r = AnswerReader {
            method: "m",
            answer: &answer,
        };
        assert!(matches!(r.int("count"), Err(Error::BadAnswer { .. })));
        assert!(matches!(r.int("missing"), Err(Error::BadAnswer { .. })));
        assert!(matches!(r.ints("uids"), Err(Error::BadAnswer { .. })));
        assert!(matches!(r.int("big"), Err(Error::BadAnswer { .. })));
        assert_eq!(r.opt_ints("none").unwrap(), None);
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
