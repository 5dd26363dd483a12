//! The row type of the wire test and the macro that writes rows.

use rmpv::Value;
use rtm_server_sdk::RtmServerClient;

/// A msgpack type family, as the protocol table writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)]
pub enum Ty {
    /// `i`: any msgpack int.
    Int,
    /// `s`: str.
    Str,
    /// `b`: bool.
    Bool,
    /// `B`: bin.
    Bin,
    /// `[i]`.
    Ints,
    /// `[s]`.
    Strs,
    /// `{s:s}`.
    StrMap,
    /// Any map.
    Map,
}

impl Ty {
    pub fn matches(self, v: &Value) -> bool {
        match self {
            Ty::Int => v.is_i64() || v.is_u64(),
            Ty::Str => v.is_str(),
            Ty::Bool => v.is_bool(),
            Ty::Bin => matches!(v, Value::Binary(_)),
            Ty::Ints => matches!(v, Value::Array(a) if a.iter().all(|x| x.is_i64() || x.is_u64())),
            Ty::Strs => matches!(v, Value::Array(a) if a.iter().all(Value::is_str)),
            Ty::StrMap => {
                matches!(v, Value::Map(m) if m.iter().all(|(k, v)| k.is_str() && v.is_str()))
            }
            Ty::Map => v.is_map(),
        }
    }
}

pub type Done = Box<dyn FnOnce(Result<(), String>) + Send>;

/// A further check on a quest's entries.
pub type Extra = fn(&[(Value, Value)]) -> Result<(), String>;

/// One method of the table, in both forms.
pub struct Row {
    /// A label for failures (the Rust method).
    pub name: &'static str,
    /// The quest's method name.
    pub method: &'static str,
    /// The keys besides `pid`, `sign`, `salt` and `ts`, with their types.
    pub keys: &'static [(&'static str, Ty)],
    /// Whether the quest is signed (every RTM quest but the file gate's).
    pub signed: bool,
    /// The server's canned answer.
    pub answer: fn() -> Value,
    /// Makes the blocking call.
    pub blocking: fn(&RtmServerClient) -> Result<(), String>,
    /// Makes the callback call; `Done` receives its result.
    pub callback: fn(&RtmServerClient, Done),
    /// Further checks on the quest's entries (values, not just types).
    pub extra: Extra,
}

/// A msgpack map from string keys (for canned answers).
pub fn map(entries: Vec<(&str, Value)>) -> Value {
    rtm_server_sdk::fpnn::codec::map_of(entries)
}

/// The value of `key` among a quest's entries.
#[allow(dead_code)]
pub fn entry<'a>(entries: &'a [(Value, Value)], key: &str) -> Option<&'a Value> {
    entries
        .iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(_, v)| v)
}

/// Writes one row:
///
/// ```ignore
/// row!("gettoken", get_token / get_token_with_callback (1),
///      keys: [("uid", Int)], answer: [("token", Value::from("t"))])
/// ```
///
/// with optional `, extra: |entries| ...` (a further check).
#[macro_export]
macro_rules! row {
    ($method:literal, $name:ident / $cb:ident ( $($arg:expr),* $(,)? ),
     keys: [$(($k:literal, $t:ident)),* $(,)?],
     answer: [$(($ak:literal, $av:expr)),* $(,)?]
     $(, extra: $extra:expr)? $(,)?) => {
        $crate::rows::Row {
            name: stringify!($name),
            method: $method,
            keys: &[$(($k, $crate::rows::Ty::$t)),*],
            signed: true,
            answer: || $crate::rows::map(vec![$(($ak, $av)),*]),
            blocking: |c| c.$name($($arg),*).map(drop).map_err(|e| e.to_string()),
            callback: |c, done| c.$cb($($arg,)* move |r| done(r.map(drop).map_err(|e| e.to_string()))),
            extra: {
                #[allow(unused_variables)]
                let f: $crate::rows::Extra = |_| Ok(());
                $( let f: $crate::rows::Extra = $extra; )?
                f
            },
        }
    };
}
