//! The wire test: every named RTM method, in both forms, sends exactly the
//! method name, key set and msgpack value types of the protocol table
//! (Appendix A of the RTM protocol notes; see `docs/protocol.md`).
//!
//! The rows are written by hand from that table, one module per API
//! family, never generated from the code under test. A server started on
//! 127.0.0.1 records each quest and answers the row's canned answer, so the
//! typed result is decoded too (a row's answer has the keys the table
//! lists).

#[path = "../common/mod.rs"]
mod common;

mod devices;
mod files;
mod groups;
mod imserver;
mod messages;
mod relations;
mod rooms;
mod rooms_voice_rtc;
mod rows;
mod users;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::watchdog;
use rmpv::Value;
use rows::{Row, Ty};
use rtm_server_sdk::emulator::{FpnnServer, Reply, ServerConn, ServerOptions};
use rtm_server_sdk::fpnn::codec::Quest;
use rtm_server_sdk::{ClientConfig, RtmServerClient};

/// The keys every signed quest carries.
const SIGNING: [(&str, Ty); 4] = [
    ("pid", Ty::Int),
    ("sign", Ty::Str),
    ("salt", Ty::Int),
    ("ts", Ty::Int),
];

struct Recorder {
    last: Mutex<Option<(String, Value)>>,
    answer: Mutex<Value>,
}

/// Runs every row in both forms and checks what reached the server.
pub fn check_rows(rows: Vec<Row>) {
    watchdog(Duration::from_secs(120), move || {
        let rec = Arc::new(Recorder {
            last: Mutex::new(None),
            answer: Mutex::new(Value::Map(vec![])),
        });
        let r = rec.clone();
        let server = FpnnServer::start(
            move |_c: &ServerConn, q: &Quest| {
                *r.last.lock().unwrap() = Some((q.method.clone(), q.payload.clone()));
                Reply::Answer(r.answer.lock().unwrap().clone())
            },
            ServerOptions::new(),
        )
        .unwrap();
        let client = RtmServerClient::with_config(
            11000001,
            "secret",
            server.endpoint(),
            ClientConfig::default().quest_timeout(Duration::from_secs(10)),
        )
        .unwrap();
        let mut failures = Vec::new();
        for row in &rows {
            for form in ["blocking", "callback"] {
                *rec.answer.lock().unwrap() = (row.answer)();
                *rec.last.lock().unwrap() = None;
                let result = if form == "blocking" {
                    (row.blocking)(&client)
                } else {
                    let (tx, rx) = std::sync::mpsc::channel();
                    (row.callback)(
                        &client,
                        Box::new(move |r| {
                            let _ = tx.send(r);
                        }),
                    );
                    rx.recv_timeout(Duration::from_secs(10))
                        .unwrap_or_else(|_| Err(format!("{}: no callback", row.method)))
                };
                let last = rec.last.lock().unwrap().take();
                if let Err(e) = check(row, result, last) {
                    failures.push(format!("{} ({form}): {e}", row.name));
                }
            }
        }
        assert!(
            failures.is_empty(),
            "{} wire mismatches:\n{}",
            failures.len(),
            failures.join("\n")
        );
    })
}

fn check(
    row: &Row,
    result: Result<(), String>,
    last: Option<(String, Value)>,
) -> Result<(), String> {
    result.map_err(|e| format!("the call failed: {e}"))?;
    let (method, payload) = last.ok_or("no quest reached the server")?;
    if method != row.method {
        return Err(format!("method `{method}`, expected `{}`", row.method));
    }
    let Value::Map(entries) = payload else {
        return Err("the payload is not a map".into());
    };
    let mut expected: Vec<(&str, Ty)> = row.keys.to_vec();
    if row.signed {
        expected.extend_from_slice(&SIGNING);
    }
    let mut got: Vec<&str> = Vec::new();
    for (k, v) in &entries {
        let k = k.as_str().ok_or("a key is not a string")?;
        got.push(k);
        match expected.iter().find(|(ek, _)| *ek == k) {
            None => return Err(format!("unexpected key `{k}` = {v}")),
            Some((_, ty)) if !ty.matches(v) => {
                return Err(format!("`{k}` = {v} is not {ty:?}"));
            }
            Some(_) => {}
        }
    }
    for (k, _) in &expected {
        if !got.contains(k) {
            return Err(format!("missing key `{k}`"));
        }
    }
    if got.len() != expected.len() {
        return Err(format!("duplicate keys in {got:?}"));
    }
    (row.extra)(&entries)
}

#[test]
fn voice_and_rtc_rooms() {
    check_rows(rooms_voice_rtc::rows());
}

#[test]
fn users() {
    check_rows(users::rows());
}

#[test]
fn relations() {
    check_rows(relations::rows());
}

#[test]
fn groups() {
    check_rows(groups::rows());
}

#[test]
fn rooms() {
    check_rows(rooms::rows());
}

#[test]
fn devices() {
    check_rows(devices::rows());
}

#[test]
fn imserver() {
    check_rows(imserver::rows());
}

#[test]
fn files() {
    check_rows(files::rows());
}

#[test]
fn messages() {
    check_rows(messages::rows());
}
