//! Reading quest parameters in the emulator: each reader answers the
#![allow(dead_code)] // shared helpers; not every family uses every one
//! errors the RTM gateway gives for a missing parameter (10009,
//! `FPNN_EC_PROTO_KEY_NOT_FOUND`) and a parameter of the wrong type (10010,
//! `FPNN_EC_PROTO_TYPE_CONVERT`), naming the key. Ids are any msgpack int
//! that fits an `i64`; a string may arrive as `str` or as `bin` holding UTF-8.

use rmpv::Value;

use super::server::Reply;
use crate::codes;
use crate::fpnn::codec::map_get;

/// The result of a handler: the answer, or the error reply.
pub(crate) type R<T> = Result<T, Reply>;

pub(crate) fn missing(key: &str) -> Reply {
    Reply::error(
        codes::FPNN_EC_PROTO_KEY_NOT_FOUND,
        format!("missing parameter `{key}`"),
    )
}

pub(crate) fn wrong_type(key: &str, what: &str) -> Reply {
    Reply::error(
        codes::FPNN_EC_PROTO_TYPE_CONVERT,
        format!("parameter `{key}` must be {what}"),
    )
}

pub(crate) fn not_in_room(msg: String) -> Reply {
    Reply::error(codes::RTM_EC_NOT_IN_ROOM, msg)
}

pub(crate) fn no_room(rid: i64) -> Reply {
    not_in_room(format!("room {rid} does not exist"))
}

/// The value of `key`; an explicit nil counts as absent.
pub(crate) fn get<'a>(p: &'a Value, key: &str) -> Option<&'a Value> {
    map_get(p, key).filter(|v| !v.is_nil())
}

pub(crate) fn opt_int(p: &Value, key: &str) -> R<Option<i64>> {
    match get(p, key) {
        None => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| wrong_type(key, "an int")),
    }
}

pub(crate) fn int(p: &Value, key: &str) -> R<i64> {
    opt_int(p, key)?.ok_or_else(|| missing(key))
}

pub(crate) fn boolean(p: &Value, key: &str) -> R<bool> {
    match get(p, key) {
        None => Err(missing(key)),
        Some(v) => v.as_bool().ok_or_else(|| wrong_type(key, "a bool")),
    }
}

pub(crate) fn opt_bool(p: &Value, key: &str) -> R<Option<bool>> {
    match get(p, key) {
        None => Ok(None),
        Some(v) => v
            .as_bool()
            .map(Some)
            .ok_or_else(|| wrong_type(key, "a bool")),
    }
}

pub(crate) fn opt_int_list(p: &Value, key: &str) -> R<Option<Vec<i64>>> {
    match get(p, key) {
        None => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(Value::as_i64)
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(|| wrong_type(key, "an array of ints")),
        Some(_) => Err(wrong_type(key, "an array of ints")),
    }
}

pub(crate) fn int_list(p: &Value, key: &str) -> R<Vec<i64>> {
    opt_int_list(p, key)?.ok_or_else(|| missing(key))
}

pub(crate) fn opt_str_list(p: &Value, key: &str) -> R<Option<Vec<String>>> {
    let bad = || wrong_type(key, "an array of strings");
    match get(p, key) {
        None => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => s.as_str().map(str::to_string),
                Value::Binary(b) => String::from_utf8(b.clone()).ok(),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(bad),
        Some(_) => Err(bad()),
    }
}

/// The decimal text of any msgpack int (u64 above `i64::MAX` included).
pub(crate) fn int_text(v: Option<&Value>) -> Option<String> {
    let v = v?;
    v.as_i64()
        .map(|i| i.to_string())
        .or_else(|| v.as_u64().map(|u| u.to_string()))
}

pub(crate) fn ids<'a>(set: impl IntoIterator<Item = &'a i64>) -> Value {
    Value::Array(set.into_iter().map(|&i| Value::from(i)).collect())
}

pub(crate) fn obj(entries: Vec<(&str, Value)>) -> Value {
    crate::fpnn::codec::map_of(entries)
}

pub(crate) fn empty() -> Value {
    Value::Map(Vec::new())
}

/// An optional string (`str`, or `bin` holding UTF-8).
pub(crate) fn opt_str(p: &Value, key: &str) -> R<Option<String>> {
    match get(p, key) {
        None => Ok(None),
        Some(Value::String(s)) => s
            .as_str()
            .map(|s| Some(s.to_string()))
            .ok_or_else(|| wrong_type(key, "a UTF-8 string")),
        Some(Value::Binary(b)) => String::from_utf8(b.clone())
            .map(Some)
            .map_err(|_| wrong_type(key, "a UTF-8 string")),
        Some(_) => Err(wrong_type(key, "a string")),
    }
}

/// A required string.
pub(crate) fn string(p: &Value, key: &str) -> R<String> {
    opt_str(p, key)?.ok_or_else(|| missing(key))
}

/// A required list of strings.
pub(crate) fn str_list(p: &Value, key: &str) -> R<Vec<String>> {
    opt_str_list(p, key)?.ok_or_else(|| missing(key))
}

/// An optional map of strings to strings (`{s:s}`).
pub(crate) fn opt_str_map(
    p: &Value,
    key: &str,
) -> R<Option<std::collections::BTreeMap<String, String>>> {
    let bad = || wrong_type(key, "a map of strings to strings");
    match get(p, key) {
        None => Ok(None),
        Some(Value::Map(entries)) => entries
            .iter()
            .map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string())))
            .collect::<Option<_>>()
            .map(Some)
            .ok_or_else(bad),
        Some(_) => Err(bad()),
    }
}

/// A required map of strings to strings.
pub(crate) fn str_map(p: &Value, key: &str) -> R<std::collections::BTreeMap<String, String>> {
    opt_str_map(p, key)?.ok_or_else(|| missing(key))
}

/// Binary content (`bin`, or `str` taken as its bytes).
pub(crate) fn opt_bytes(p: &Value, key: &str) -> R<Option<Vec<u8>>> {
    match get(p, key) {
        None => Ok(None),
        Some(Value::Binary(b)) => Ok(Some(b.clone())),
        Some(Value::String(s)) => Ok(Some(s.as_bytes().to_vec())),
        Some(_) => Err(wrong_type(key, "binary content")),
    }
}

/// A boolean answer `{ok: b}`.
pub(crate) fn ok(b: bool) -> Value {
    obj(vec![("ok", Value::Boolean(b))])
}

/// A map keyed by ids as decimal strings (`{s(id): value}`).
pub(crate) fn id_keyed(entries: impl IntoIterator<Item = (i64, Value)>) -> Value {
    Value::Map(
        entries
            .into_iter()
            .map(|(id, v)| (Value::from(id.to_string()), v))
            .collect(),
    )
}

/// A map of strings to strings as a msgpack map.
pub(crate) fn str_map_value<'a>(
    entries: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Value {
    Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (Value::from(k.as_str()), Value::from(v.as_str())))
            .collect(),
    )
}

/// The error for a parameter whose value is out of its range (200034,
/// `RTM_EC_INVALID_PARAMETER`).
pub(crate) fn bad_value(key: &str, what: &str) -> Reply {
    Reply::error(
        codes::RTM_EC_INVALID_PARAMETER,
        format!("parameter `{key}` must be {what}"),
    )
}

/// The error for a method the emulator does not implement (20004).
pub(crate) fn unknown_method(method: &str) -> Reply {
    Reply::error(
        codes::FPNN_EC_CORE_UNKNOWN_METHOD,
        format!("unknown method `{method}`"),
    )
}
