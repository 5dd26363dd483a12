//! Files (A.6), step 1: `filetoken` carries `from`, `cmd` and only the key
//! that matches the command (none for a broadcast). The answer's endpoint
//! is a stand-in file gate answering every step-2 quest with an `mtime`
//! (the step-2 quests themselves are checked in `tests/files.rs`).

use std::sync::OnceLock;

use rmpv::Value;
use rtm_server_sdk::emulator::{FpnnServer, Reply, ServerConn, ServerOptions};
use rtm_server_sdk::fpnn::codec::Quest;
use rtm_server_sdk::rtm::FileOptions;

use crate::row;
use crate::rows::{entry, map, Row};

/// The stand-in file gate, shared by every row.
fn gate_endpoint() -> String {
    static GATE: OnceLock<FpnnServer> = OnceLock::new();
    GATE.get_or_init(|| {
        FpnnServer::start(
            |_c: &ServerConn, _q: &Quest| Reply::Answer(map(vec![("mtime", Value::from(1))])),
            ServerOptions::new(),
        )
        .unwrap()
    })
    .endpoint()
}

fn cmd_is(entries: &[(Value, Value)], cmd: &str) -> Result<(), String> {
    match entry(entries, "cmd") {
        Some(v) if v.as_str() == Some(cmd) => Ok(()),
        other => Err(format!("cmd = {other:?}, expected {cmd}")),
    }
}

pub fn rows() -> Vec<Row> {
    vec![
        row!("filetoken", send_file / send_file_with_callback (1, 2, b"hello", &FileOptions::default()),
            keys: [("from", Int), ("cmd", Str), ("to", Int)],
            answer: [("token", Value::from("t")), ("endpoint", Value::from(gate_endpoint()))],
            extra: |e| cmd_is(e, "sendfile")),
        row!("filetoken", send_files / send_files_with_callback (1, &[2, 3], b"hello", &FileOptions::default()),
            keys: [("from", Int), ("cmd", Str), ("tos", Ints)],
            answer: [("token", Value::from("t")), ("endpoint", Value::from(gate_endpoint()))],
            extra: |e| cmd_is(e, "sendfiles")),
        row!("filetoken", send_group_file / send_group_file_with_callback (1, 7, b"hello", &FileOptions::default()),
            keys: [("from", Int), ("cmd", Str), ("gid", Int)],
            answer: [("token", Value::from("t")), ("endpoint", Value::from(gate_endpoint()))],
            extra: |e| cmd_is(e, "sendgroupfile")),
        row!("filetoken", send_room_file / send_room_file_with_callback (1, 8, b"hello", &FileOptions::default()),
            keys: [("from", Int), ("cmd", Str), ("rid", Int)],
            answer: [("token", Value::from("t")), ("endpoint", Value::from(gate_endpoint()))],
            extra: |e| cmd_is(e, "sendroomfile")),
        row!("filetoken", send_broadcast_file / send_broadcast_file_with_callback (1, b"hello", &FileOptions::default()),
            keys: [("from", Int), ("cmd", Str)],
            answer: [("token", Value::from("t")), ("endpoint", Value::from(gate_endpoint()))],
            extra: |e| cmd_is(e, "broadcastfile")),
    ]
}
