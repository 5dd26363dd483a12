//! Unit tests of the server: raw clients against servers on port 0.

use std::io::{Read, Write};
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use super::*;
use crate::codes;
use crate::emulator::testutil::{map, RawClient};
use crate::fpnn::codec::{encode_quest, map_get, HEADER_LEN};
use crate::fpnn::crypto::ServerPrivateKey;
use crate::fpnn::crypto::{CipherMode, Curve, KeyBits};

fn echo() -> impl Service {
    |_c: &ServerConn, q: &Quest| match q.method.as_str() {
        "echo" => Reply::Answer(q.payload.clone()),
        "fail" => Reply::error(123, "failed"),
        "slow" => Reply::after(
            Duration::from_millis(300),
            Reply::Answer(map(vec![("slow", true.into())])),
        ),
        "hold" => Reply::None,
        "close" => Reply::Close,
        "garbage" => Reply::Raw(b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec()),
        _ => Reply::error(codes::FPNN_EC_CORE_UNKNOWN_METHOD, "unknown"),
    }
}

#[test]
fn answers_errors_ping_and_received_log() {
    let server = FpnnServer::start(echo(), ServerOptions::new()).unwrap();
    assert!(server.endpoint().starts_with("127.0.0.1:"));
    let mut c = RawClient::connect(&server.endpoint());
    let p = map(vec![("a", 1.into())]);
    assert_eq!(c.call("echo", &p).into_result().unwrap(), p);
    let e = c.call("fail", &map(vec![])).into_result().unwrap_err();
    assert_eq!(e.server_code(), Some(123));
    let ping = c.call("*ping", &map(vec![])).into_result().unwrap();
    let ts = map_get(&ping, "ts").and_then(Value::as_i64).unwrap();
    assert!((ts - now_ms()).abs() < 10_000);
    let e = c.call("*key", &map(vec![])).into_result().unwrap_err();
    assert_eq!(e.server_code(), Some(codes::FPNN_EC_CORE_UNKNOWN_METHOD));
    // One-way quests get no answer; the next two-way one does.
    c.send_one_way("echo", &p);
    assert_eq!(c.call("echo", &p).into_result().unwrap(), p);
    let methods: Vec<String> = server.received().into_iter().map(|(m, _)| m).collect();
    assert_eq!(methods, ["echo", "fail", "*ping", "*key", "echo", "echo"]);
    server.clear_received();
    assert!(server.received().is_empty());
    assert_eq!(server.connection_count(), 1);
    assert_eq!(server.connections().len(), 1);
}

#[test]
fn refused_quests_are_answered_and_neither_decoded_nor_recorded() {
    use std::sync::atomic::AtomicUsize;
    struct Gate(Arc<AtomicUsize>);
    impl Service for Gate {
        fn on_quest(&self, _: &ServerConn, q: &Quest) -> Reply {
            self.0.fetch_add(1, Ordering::SeqCst);
            Reply::Answer(q.payload.clone())
        }
        fn admit(&self, _: &ServerConn, method: &str, payload: &[u8]) -> Result<(), Reply> {
            // The raw payload is offered: a fixmap of one entry here.
            let mut keys = Vec::new();
            crate::fpnn::codec::for_each_raw_entry_bytes(payload, |k, v| {
                keys.push((String::from_utf8_lossy(k).into_owned(), v.to_vec()));
                std::ops::ControlFlow::Continue(())
            })
            .unwrap();
            match method {
                "open" => Ok(()),
                _ => Err(Reply::error(7, format!("refused {keys:?}"))),
            }
        }
    }
    let calls = Arc::new(AtomicUsize::new(0));
    let server = FpnnServer::start(Gate(calls.clone()), ServerOptions::new()).unwrap();
    let mut c = RawClient::connect(&server.endpoint());
    let p = map(vec![("a", 1.into())]);
    assert_eq!(c.call("open", &p).into_result().unwrap(), p);
    let e = c.call("shut", &p).into_result().unwrap_err();
    assert_eq!(e.server_code(), Some(7));
    // The gate saw the key and the value's encoded bytes (fixint 1).
    assert!(e.to_string().contains(r#"[("a", [1])]"#), "{e}");
    // `*ping` is answered by the server, never offered to the gate.
    assert!(c.call("*ping", &map(vec![])).into_result().is_ok());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let methods: Vec<String> = server.received().into_iter().map(|(m, _)| m).collect();
    assert_eq!(methods, ["open", "*ping"]);
}

#[test]
fn answers_echo_the_clients_header_version() {
    let server = FpnnServer::start(echo(), ServerOptions::new()).unwrap();
    for version in [0u8, 1, 7] {
        let mut socket = TcpStream::connect(server.endpoint()).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut frame = Vec::new();
        encode_quest(&mut frame, Some(9), "echo", &Value::Map(Vec::new())).unwrap();
        frame[4] = version;
        // The header in two writes: the version byte arrives alone.
        socket.write_all(&frame[..4]).unwrap();
        thread::sleep(Duration::from_millis(20));
        socket.write_all(&frame[4..]).unwrap();
        let mut header = [0u8; HEADER_LEN];
        socket.read_exact(&mut header).unwrap();
        assert_eq!(&header[..4], b"FPNN");
        assert_eq!(header[4], version);
        assert_eq!(header[6], 2, "an answer");
    }
}

#[test]
fn close_reasons() {
    let reasons: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    struct Recording(Arc<Mutex<Vec<Option<String>>>>);
    impl Service for Recording {
        fn on_quest(&self, _: &ServerConn, q: &Quest) -> Reply {
            match q.method.as_str() {
                "close" => Reply::Close,
                _ => Reply::ok(),
            }
        }
        fn on_disconnect(&self, conn: &ServerConn) {
            lock(&self.0).push(conn.close_reason());
        }
    }
    let server = FpnnServer::start(Recording(reasons.clone()), ServerOptions::new()).unwrap();
    let wait_for = |n: usize| {
        let t = Instant::now();
        while lock(&reasons).len() < n && t.elapsed() < Duration::from_secs(3) {
            thread::sleep(Duration::from_millis(5));
        }
        lock(&reasons).last().cloned().expect("a disconnect")
    };
    let mut c = RawClient::connect(&server.endpoint());
    c.call("x", &map(vec![]));
    drop(c);
    assert_eq!(wait_for(1), None);
    let mut c = RawClient::connect(&server.endpoint());
    c.send("close", &map(vec![]));
    c.expect_closed();
    assert_eq!(wait_for(2).as_deref(), Some("closed by the server"));
    let mut c = RawClient::connect(&server.endpoint());
    c.write_raw(b"GET / HTTP/1.1\r\n\r\n");
    c.expect_closed();
    let reason = wait_for(3).unwrap();
    assert!(reason.contains("bad frame"), "{reason}");
}

#[test]
fn delayed_reply_does_not_block_reading() {
    let server = FpnnServer::start(echo(), ServerOptions::new()).unwrap();
    let mut c = RawClient::connect(&server.endpoint());
    let slow = c.send("slow", &map(vec![]));
    let fast = c.send("echo", &map(vec![("x", 1.into())]));
    let first = c.read_answer();
    assert_eq!(first.seq, fast);
    let second = c.read_answer();
    assert_eq!(second.seq, slow);
}

#[test]
fn held_answer_and_close_and_raw() {
    let held: Arc<Mutex<Vec<(ServerConn, u32)>>> = Arc::default();
    let h = held.clone();
    let svc = move |conn: &ServerConn, q: &Quest| {
        if q.method == "hold" {
            lock(&h).push((conn.clone(), q.seq.unwrap()));
            return Reply::None;
        }
        echo().on_quest(conn, q)
    };
    let server = FpnnServer::start(svc, ServerOptions::new()).unwrap();
    let mut c = RawClient::connect(&server.endpoint());
    let seq = c.send("hold", &map(vec![]));
    c.expect_silence(Duration::from_millis(100));
    let (conn, s) = lock(&held).pop().unwrap();
    assert_eq!(s, seq);
    conn.answer(s, Reply::Answer(map(vec![("late", true.into())])));
    let a = c.read_answer();
    assert_eq!(a.seq, seq);
    // Raw bytes reach the client as they are.
    c.send("garbage", &map(vec![]));
    assert_eq!(c.read_raw(4), b"HTTP");
    // Close closes without answering.
    let mut c = RawClient::connect(&server.endpoint());
    c.send("close", &map(vec![]));
    c.expect_closed();
}

#[test]
fn push_two_way_and_one_way() {
    let server = FpnnServer::start(echo(), ServerOptions::new()).unwrap();
    let mut c = RawClient::connect(&server.endpoint());
    c.call("echo", &map(vec![])); // make sure the connection is registered
    let conn = server.connections().pop().unwrap();
    let pusher = {
        let conn = conn.clone();
        thread::spawn(move || conn.push("pushmsg", map(vec![("mid", 5.into())])))
    };
    let q = c.read_quest();
    assert_eq!(q.method, "pushmsg");
    c.answer(q.seq.unwrap(), &map(vec![("ok", true.into())]));
    assert_eq!(
        pusher.join().unwrap().unwrap(),
        map(vec![("ok", true.into())])
    );
    // An exception answer comes back as Error::Server.
    let pusher = {
        let conn = conn.clone();
        thread::spawn(move || conn.push("ping", map(vec![])))
    };
    let q = c.read_quest();
    c.answer_error(q.seq.unwrap(), 20004, "nope");
    assert_eq!(
        pusher.join().unwrap().unwrap_err().server_code(),
        Some(20004)
    );
    // No answer: timeout.
    let e = conn
        .push_with_timeout("ping", map(vec![]), Duration::from_millis(100))
        .unwrap_err();
    assert!(e.is_timeout());
    let _ = c.read_quest();
    conn.push_one_way("notify", map(vec![("k", 1.into())]));
    let q = c.read_quest();
    assert_eq!((q.method.as_str(), q.seq), ("notify", None));
    // The client closing fails a pending push at once.
    let pusher = {
        let conn = conn.clone();
        thread::spawn(move || conn.push("ping", map(vec![])))
    };
    let _ = c.read_quest();
    drop(c);
    let e = pusher.join().unwrap().unwrap_err();
    assert!(e.is_connection_error(), "{e:?}");
}

#[test]
fn stop_with_open_clients_and_restart_on_same_port() {
    let mut server = FpnnServer::start(echo(), ServerOptions::new()).unwrap();
    let addr = server.local_addr();
    let mut c1 = RawClient::connect(&server.endpoint());
    let mut c2 = RawClient::connect(&server.endpoint());
    c1.call("echo", &map(vec![]));
    c2.send("hold", &map(vec![]));
    let t = Instant::now();
    server.stop();
    assert!(t.elapsed() < Duration::from_secs(3));
    c1.expect_closed();
    c2.expect_closed();
    server.stop(); // idempotent
    let server2 = FpnnServer::start(echo(), ServerOptions::new().addr(addr)).unwrap();
    assert_eq!(server2.local_addr(), addr);
    let mut c = RawClient::connect(&server2.endpoint());
    assert!(c.call("echo", &map(vec![])).into_result().is_ok());
}

#[test]
fn fault_freeze() {
    let server = FpnnServer::start(echo(), ServerOptions::new()).unwrap();
    let mut c = RawClient::connect(&server.endpoint());
    server.faults().set_freeze(true);
    c.send("*ping", &map(vec![]));
    c.send("echo", &map(vec![]));
    c.expect_silence(Duration::from_millis(200));
    let t = Instant::now();
    while server.received().len() < 2 && t.elapsed() < Duration::from_secs(3) {
        thread::sleep(Duration::from_millis(5));
    }
    server.faults().set_freeze(false);
    let seq = c.send("*ping", &map(vec![]));
    assert_eq!(c.read_answer().seq, seq);
    assert_eq!(server.received().len(), 3);
}

#[test]
fn fault_refuse() {
    let server = FpnnServer::start(echo(), ServerOptions::new()).unwrap();
    server.faults().set_refuse(true);
    let mut c = RawClient::connect(&server.endpoint());
    c.expect_closed();
    assert_eq!(server.connection_count(), 1);
    server.faults().set_refuse(false);
    let mut c = RawClient::connect(&server.endpoint());
    assert!(c.call("echo", &map(vec![])).into_result().is_ok());
    assert_eq!(server.connection_count(), 2);
}

#[test]
fn fault_drop_every() {
    let server = FpnnServer::start(echo(), ServerOptions::new()).unwrap();
    server.faults().set_drop_every(2);
    let mut c = RawClient::connect(&server.endpoint());
    assert!(c.call("echo", &map(vec![])).into_result().is_ok());
    c.send("echo", &map(vec![]));
    c.expect_closed();
    let mut c = RawClient::connect(&server.endpoint());
    assert!(c.call("echo", &map(vec![])).into_result().is_ok());
    c.send("echo", &map(vec![]));
    c.expect_closed();
    server.faults().set_drop_every(0);
    let mut c = RawClient::connect(&server.endpoint());
    for _ in 0..3 {
        assert!(c.call("echo", &map(vec![])).into_result().is_ok());
    }
}

#[test]
fn fault_answer_delay() {
    let server = FpnnServer::start(echo(), ServerOptions::new()).unwrap();
    server.faults().set_answer_delay(Duration::from_millis(200));
    let mut c = RawClient::connect(&server.endpoint());
    let t = Instant::now();
    c.call("*ping", &map(vec![]));
    assert!(t.elapsed() >= Duration::from_millis(200));
    server.faults().set_answer_delay(Duration::ZERO);
    let t = Instant::now();
    c.call("*ping", &map(vec![]));
    assert!(t.elapsed() < Duration::from_millis(200));
}

#[test]
fn bad_frame_closes_connection() {
    let server = FpnnServer::start(echo(), ServerOptions::new()).unwrap();
    let mut c = RawClient::connect(&server.endpoint());
    c.write_raw(b"GET / HTTP/1.1\r\n\r\n");
    c.expect_closed();
    // Too large for the limit.
    let server = FpnnServer::start(echo(), ServerOptions::new().max_payload(16)).unwrap();
    let mut c = RawClient::connect(&server.endpoint());
    c.send("echo", &map(vec![("0123456789abcdef", 1.into())]));
    c.expect_closed();
}

#[test]
fn disconnect_callback_and_connections() {
    struct Counting(Arc<AtomicU64>, Arc<AtomicU64>);
    impl Service for Counting {
        fn on_quest(&self, _: &ServerConn, _: &Quest) -> Reply {
            Reply::ok()
        }
        fn on_connect(&self, _: &ServerConn) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        fn on_disconnect(&self, _: &ServerConn) {
            self.1.fetch_add(1, Ordering::SeqCst);
        }
    }
    let (up, down) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut server =
        FpnnServer::start(Counting(up.clone(), down.clone()), ServerOptions::new()).unwrap();
    let mut c = RawClient::connect(&server.endpoint());
    c.call("x", &map(vec![]));
    assert_eq!(up.load(Ordering::SeqCst), 1);
    drop(c);
    let t = Instant::now();
    while down.load(Ordering::SeqCst) == 0 && t.elapsed() < Duration::from_secs(3) {
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(down.load(Ordering::SeqCst), 1);
    assert!(server.connections().is_empty());
    let mut c = RawClient::connect(&server.endpoint());
    c.call("x", &map(vec![]));
    server.stop();
    assert_eq!(down.load(Ordering::SeqCst), 2);
}

fn encrypted_roundtrip(curve: Curve, mode: CipherMode, bits: KeyBits) {
    let key = ServerPrivateKey::generate(curve);
    let public = key.public_key();
    let server = FpnnServer::start(echo(), ServerOptions::new().encryption(key)).unwrap();
    assert!(server.is_encrypted());
    let mut c = RawClient::connect(&server.endpoint());
    // *key and the first encrypted quest in the same write.
    let echo_seq = c.handshake(&public, mode, bits, true);
    let a = c.read_answer();
    assert_eq!(a.seq, echo_seq);
    assert_eq!(a.into_result().unwrap(), map(vec![("v", 7.into())]));
    for i in 0..3 {
        let p = map(vec![("i", i.into())]);
        assert_eq!(c.call("echo", &p).into_result().unwrap(), p);
    }
    assert!(c.call("*ping", &map(vec![])).into_result().is_ok());
    // Pushes are encrypted too.
    let conn = server.connections().pop().unwrap();
    let pusher = thread::spawn(move || conn.push("ping", map(vec![])));
    let q = c.read_quest();
    assert_eq!(q.method, "ping");
    c.answer(q.seq.unwrap(), &map(vec![]));
    assert!(pusher.join().unwrap().is_ok());
    assert_eq!(server.received()[0].0, "*key");
}

#[test]
fn encrypted_stream_and_package_modes() {
    encrypted_roundtrip(Curve::Secp256k1, CipherMode::Stream, KeyBits::Aes256);
    encrypted_roundtrip(Curve::Secp256k1, CipherMode::Package, KeyBits::Aes128);
    encrypted_roundtrip(Curve::Secp256r1, CipherMode::Stream, KeyBits::Aes128);
    encrypted_roundtrip(Curve::Secp256r1, CipherMode::Package, KeyBits::Aes256);
}

#[test]
fn an_encrypted_server_may_serve_plain_clients_too() {
    let key = ServerPrivateKey::generate(Curve::Secp256r1);
    let public = key.public_key();
    let server = FpnnServer::start(
        echo(),
        ServerOptions::new().encryption(key).allow_plain(true),
    )
    .unwrap();
    let p = map(vec![("a", 1.into())]);
    // Plain, in one write with a second frame, and by bytes.
    let mut c = RawClient::connect(&server.endpoint());
    assert_eq!(c.call("echo", &p).into_result().unwrap(), p);
    assert_eq!(c.call("echo", &p).into_result().unwrap(), p);
    let conn = server.connections().pop().unwrap();
    assert_eq!(conn.encryption(), None);
    // A `*key` after another quest closes, as on the C++ server.
    c.send("*key", &map(vec![]));
    c.expect_closed();
    // Encrypted clients still work.
    let mut c = RawClient::connect(&server.endpoint());
    let seq = c.handshake(&public, CipherMode::Stream, KeyBits::Aes256, true);
    assert_eq!(c.read_answer().seq, seq);
    assert_eq!(c.call("echo", &p).into_result().unwrap(), p);
    let conn = server.connections().pop().unwrap();
    assert_eq!(
        conn.encryption(),
        Some((CipherMode::Stream, KeyBits::Aes256))
    );
}

#[test]
fn encrypted_handshake_separate_write() {
    let key = ServerPrivateKey::generate(Curve::Secp256k1);
    let public = key.public_key();
    let server = FpnnServer::start(echo(), ServerOptions::new().encryption(key)).unwrap();
    let mut c = RawClient::connect(&server.endpoint());
    c.handshake(&public, CipherMode::Stream, KeyBits::Aes128, false);
    let p = map(vec![("z", "zz".into())]);
    assert_eq!(c.call("echo", &p).into_result().unwrap(), p);
    // A second *key on an encrypted connection closes it.
    c.send("*key", &map(vec![]));
    c.expect_closed();
}

#[test]
fn encrypted_server_rejects_bad_handshakes() {
    let key = ServerPrivateKey::generate(Curve::Secp256k1);
    let public = key.public_key();
    let server = FpnnServer::start(echo(), ServerOptions::new().encryption(key)).unwrap();
    // Not *key first.
    let mut c = RawClient::connect(&server.endpoint());
    c.send("echo", &map(vec![]));
    c.expect_closed();
    // Bad key length.
    let mut c = RawClient::connect(&server.endpoint());
    c.send(
        "*key",
        &map(vec![
            ("publicKey", Value::Binary(vec![1; 10])),
            ("streamMode", true.into()),
            ("bits", 128.into()),
        ]),
    );
    c.expect_closed();
    // Bad bits.
    let hs = crate::fpnn::crypto::EncryptionConfig::new(public)
        .handshake(1 << 20)
        .unwrap();
    let mut c = RawClient::connect(&server.endpoint());
    c.send(
        "*key",
        &map(vec![
            ("publicKey", Value::Binary(hs.public_key)),
            ("bits", 100.into()),
        ]),
    );
    c.expect_closed();
    // Missing publicKey.
    let mut c = RawClient::connect(&server.endpoint());
    c.send("*key", &map(vec![("bits", 128.into())]));
    c.expect_closed();
}

#[test]
fn answers_of_one_read_go_out_before_a_close_in_the_same_read() {
    let server = FpnnServer::start(echo(), ServerOptions::new()).unwrap();
    let mut c = RawClient::connect(&server.endpoint());
    // Three quests in one write: two answers, then the close.
    let mut bytes = Vec::new();
    for (seq, method) in [(1u32, "echo"), (2, "echo"), (3, "close")] {
        encode_quest(&mut bytes, Some(seq), method, &map(vec![("s", seq.into())])).unwrap();
    }
    c.write_raw(&bytes);
    assert_eq!(c.read_answer().seq, 1);
    assert_eq!(c.read_answer().seq, 2);
    c.expect_closed();
}
