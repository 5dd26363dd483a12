//! The FPNN transport against an in-process server on 127.0.0.1:0, once per
//! connection variant: plain, and encrypted with every curve, mode and key
//! size.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{get_i64, map, wait_until, watchdog, Keys, Variant};
use crossbeam_channel::unbounded;
use rmpv::Value;
use rtm_server_sdk::emulator::{FpnnServer, Reply, ServerConn};
use rtm_server_sdk::fpnn::codec::{map_get, Quest};
use rtm_server_sdk::fpnn::{ClientConfig, FpnnClient, QuestReply};
use rtm_server_sdk::{Error, ProtocolError};

/// The test service:
/// * `echo {i, delay_ms?}` answers `{i}` after `delay_ms`;
/// * `hold` never answers;
/// * `fail` answers error 123 "nope";
/// * `close` closes the connection;
/// * `raw {hex}` writes those bytes as they are;
/// * `stray` first sends an answer for a seq nobody waits for.
fn service(conn: &ServerConn, q: &Quest) -> Reply {
    let p = &q.payload;
    match q.method.as_str() {
        "echo" => {
            let i = get_i64(p, "i").unwrap_or(-1);
            let answer = Reply::Answer(map(vec![("i", Value::from(i))]));
            match get_i64(p, "delay_ms") {
                Some(ms) if ms > 0 => {
                    Reply::After(Duration::from_millis(ms as u64), Box::new(answer))
                }
                _ => answer,
            }
        }
        "hold" => Reply::None,
        "fail" => Reply::Error {
            code: 123,
            message: "nope".into(),
        },
        "close" => Reply::Close,
        // An answer to a seq nobody asked about, then the real answer.
        "stray" => {
            let mut stray = Vec::new();
            rtm_server_sdk::fpnn::codec::encode_answer(&mut stray, 0x7654_3210, &map(vec![]))
                .unwrap();
            conn.send_raw(&stray);
            Reply::Answer(map(vec![("i", Value::from(7))]))
        }
        "raw" => {
            let hex = map_get(p, "hex").and_then(Value::as_str).unwrap_or("");
            Reply::Raw(hex::decode(hex).unwrap())
        }
        _ => Reply::Error {
            code: 20004,
            message: "unknown".into(),
        },
    }
}

fn server(v: Variant) -> (FpnnServer, Keys) {
    let (options, keys) = v.setup();
    (FpnnServer::start(service, options).unwrap(), keys)
}

fn new_client(server: &FpnnServer, keys: &Keys, config: ClientConfig) -> FpnnClient {
    FpnnClient::new(server.endpoint(), keys.config(config)).unwrap()
}

fn raw(hex: &str) -> Value {
    map(vec![("hex", Value::from(hex))])
}

fn echo(i: i64, delay_ms: i64) -> Value {
    map(vec![
        ("i", Value::from(i)),
        ("delay_ms", Value::from(delay_ms)),
    ])
}

fn empty() -> Value {
    Value::Map(vec![])
}

for_each_variant! {
fn out_of_order_answers_reach_their_callers(v: Variant) {
    watchdog(Duration::from_secs(30), move || {
        let (server, keys) = server(v);
        let client = new_client(&server, &keys, ClientConfig::default());
        let threads: Vec<_> = (0..16)
            .map(|t| {
                let client = client.clone();
                thread::spawn(move || {
                    for k in 0..40 {
                        let i = t * 1000 + k;
                        // Later quests get shorter delays: answers overtake.
                        let delay = (i * 7919) % 23;
                        let answer = client.call("echo", echo(i, delay)).unwrap();
                        assert_eq!(get_i64(&answer, "i"), Some(i));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(server.connection_count(), 1, "one shared connection");
    });
}

fn callbacks_complete_exactly_once_with_their_own_answer(v: Variant) {
    watchdog(Duration::from_secs(30), move || {
        let (server, keys) = server(v);
        let client = new_client(&server, &keys, ClientConfig::default());
        let (tx, rx) = unbounded();
        for i in 0..2000i64 {
            let tx = tx.clone();
            client.call_with_callback("echo", echo(i, (i * 13) % 7), None, move |r| {
                tx.send((i, r)).unwrap();
            });
        }
        let mut seen = HashSet::new();
        for _ in 0..2000 {
            let (i, r) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
            assert_eq!(get_i64(&r.unwrap(), "i"), Some(i));
            assert!(seen.insert(i), "callback {i} ran twice");
        }
        assert!(
            rx.recv_timeout(Duration::from_millis(100)).is_err(),
            "no extra completions"
        );
        // Server exceptions reach callbacks as typed errors.
        let (tx, rx) = unbounded();
        client.call_with_callback("fail", empty(), None, move |r| tx.send(r).unwrap());
        match rx.recv_timeout(Duration::from_secs(5)).unwrap() {
            Err(Error::Server { code, message }) => {
                assert_eq!(code, 123);
                assert_eq!(message, "nope");
            }
            other => panic!("{other:?}"),
        }
    });
}

fn per_call_and_default_timeouts_are_prompt(v: Variant) {
    watchdog(Duration::from_secs(30), move || {
        let (server, keys) = server(v);
        let client = new_client(
            &server,
            &keys,
            ClientConfig::default().quest_timeout(Duration::from_millis(400)),
        );
        // Default timeout.
        let t0 = Instant::now();
        let err = client.call("hold", empty()).unwrap_err();
        let took = t0.elapsed();
        assert!(err.is_timeout(), "{err:?}");
        assert!(matches!(err, Error::Timeout { .. }));
        assert!(
            took >= Duration::from_millis(400) && took < Duration::from_millis(550),
            "{took:?}"
        );
        // Per-call timeout overrides it.
        let t0 = Instant::now();
        let err = client
            .call_timeout("hold", empty(), Duration::from_millis(150))
            .unwrap_err();
        let took = t0.elapsed();
        assert!(err.is_timeout());
        assert!(
            took >= Duration::from_millis(150) && took < Duration::from_millis(300),
            "{took:?}"
        );
        // Callback timeouts, per call and default.
        for (timeout, expect) in [(Some(Duration::from_millis(200)), 200u64), (None, 400)] {
            let (tx, rx) = unbounded();
            let t0 = Instant::now();
            client.call_with_callback("hold", empty(), timeout, move |r| {
                tx.send((r, t0.elapsed())).unwrap()
            });
            let (r, took) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
            assert!(r.unwrap_err().is_timeout());
            assert!(
                took >= Duration::from_millis(expect) && took < Duration::from_millis(expect + 150),
                "{took:?} for {expect} ms"
            );
            assert!(
                rx.recv_timeout(Duration::from_millis(300)).is_err(),
                "completed once"
            );
        }
        // A late answer is discarded and does not disturb later calls.
        let err = client
            .call_timeout("echo", echo(1, 300), Duration::from_millis(100))
            .unwrap_err();
        assert!(err.is_timeout());
        thread::sleep(Duration::from_millis(300));
        let answer = client.call("echo", echo(2, 0)).unwrap();
        assert_eq!(get_i64(&answer, "i"), Some(2));
        assert_eq!(client.pending_calls(), 0);
    });
}

fn server_closing_mid_call_completes_everything_once_then_reconnects(v: Variant) {
    watchdog(Duration::from_secs(30), move || {
        let (server, keys) = server(v);
        let client = new_client(&server, &keys, ClientConfig::default());
        client.connect().unwrap();
        let completions = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = unbounded();
        for _ in 0..50 {
            let tx = tx.clone();
            let completions = completions.clone();
            client.call_with_callback("hold", empty(), None, move |r| {
                completions.fetch_add(1, Ordering::SeqCst);
                tx.send(r).unwrap();
            });
        }
        let blocked: Vec<_> = (0..8)
            .map(|_| {
                let client = client.clone();
                thread::spawn(move || client.call("hold", empty()))
            })
            .collect();
        assert!(wait_until(Duration::from_secs(5), || client
            .pending_calls()
            == 58));
        let err = client.call("close", empty()).unwrap_err();
        assert!(matches!(err, Error::ConnectionClosed { .. }), "{err:?}");
        for b in blocked {
            let err = b.join().unwrap().unwrap_err();
            assert!(matches!(err, Error::ConnectionClosed { .. }), "{err:?}");
            assert!(err.is_connection_error());
        }
        for _ in 0..50 {
            let r = rx.recv_timeout(Duration::from_secs(5)).unwrap();
            assert!(matches!(r, Err(Error::ConnectionClosed { .. })), "{r:?}");
        }
        thread::sleep(Duration::from_millis(100));
        assert_eq!(
            completions.load(Ordering::SeqCst),
            50,
            "each callback exactly once"
        );
        // The next call connects again.
        let answer = client.call("echo", echo(9, 0)).unwrap();
        assert_eq!(get_i64(&answer, "i"), Some(9));
        assert_eq!(server.connection_count(), 2);
    });
}

fn a_misbehaving_server_gets_clear_errors_and_the_client_recovers(v: Variant) {
    watchdog(Duration::from_secs(30), move || {
        let (server, keys) = server(v);
        let client = new_client(&server, &keys, ClientConfig::default());
        type Check = Box<dyn Fn(&Error) -> bool>;
        let cases: Vec<(String, Check)> = vec![
            // Garbage.
            (
                "00112233445566778899aabbccddeeff".into(),
                Box::new(|e| matches!(e, Error::Protocol(ProtocolError::BadMagic(_)))),
            ),
            // A wrong magic on an otherwise valid answer.
            (
                "46504e5801800200010000000100000080".into(),
                Box::new(|e| matches!(e, Error::Protocol(ProtocolError::BadMagic(_)))),
            ),
            // A header announcing a 4 GiB payload.
            (
                "46504e4e01800200ffffffff01000000".into(),
                Box::new(|e| {
                    matches!(
                        e,
                        Error::Protocol(ProtocolError::FrameTooLarge {
                            size: 0xFFFF_FFFF,
                            ..
                        })
                    )
                }),
            ),
            // An unknown message type.
            (
                "46504e4e01800700010000000100000080".into(),
                Box::new(|e| matches!(e, Error::Protocol(ProtocolError::UnknownMessageType(7)))),
            ),
            // A payload that is not a map.
            (
                "46504e4e01800200010000000100000090".into(),
                Box::new(|e| matches!(e, Error::Protocol(ProtocolError::NotAMap))),
            ),
            // A payload nested deeper than the limit: {"a": [[[...]]]}.
            (
                {
                    let levels = rtm_server_sdk::fpnn::codec::MAX_NESTING + 1;
                    let payload = format!("81a161{}90", "91".repeat(levels - 2));
                    format!("46504e4e01800200{:02x}00000001000000{payload}", payload.len() / 2)
                },
                Box::new(|e| matches!(e, Error::Protocol(ProtocolError::Msgpack(_)))),
            ),
        ];
        for (hex, check) in cases {
            let hex = hex.as_str();
            // A call in flight when the garbage arrives fails with the
            // protocol error; so does the call that triggered it.
            let (tx, rx) = unbounded();
            client.call_with_callback("hold", empty(), None, move |r| tx.send(r).unwrap());
            assert!(wait_until(Duration::from_secs(5), || client
                .pending_calls()
                == 1));
            let err = client.call("raw", raw(hex)).unwrap_err();
            assert!(check(&err), "{hex}: {err:?}");
            assert!(err.is_connection_error());
            let held = rx
                .recv_timeout(Duration::from_secs(5))
                .unwrap()
                .unwrap_err();
            assert!(check(&held), "{hex}: {held:?}");
            // Usable afterwards.
            let answer = client.call("echo", echo(5, 0)).unwrap();
            assert_eq!(get_i64(&answer, "i"), Some(5));
        }
    });
}

fn a_frame_over_the_configured_limit_is_refused(v: Variant) {
    watchdog(Duration::from_secs(30), move || {
        let (server, keys) = server(v);
        let client = new_client(&server, &keys, ClientConfig::default().max_recv_payload(64));
        // A small answer passes; an answer of 100 bytes of payload (a
        // header announcing it is enough) is refused.
        assert_eq!(get_i64(&client.call("echo", echo(1, 0)).unwrap(), "i"), Some(1));
        let mut frame = hex::decode("46504e4e0180020064000000").unwrap();
        frame.extend_from_slice(&[1, 0, 0, 0]);
        let err = client.call("raw", raw(&hex::encode(&frame))).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Protocol(ProtocolError::FrameTooLarge { size: 100, max: 64 })
            ),
            "{err:?}"
        );
        // Bad input from the caller is refused before anything is sent.
        let err = client.call(&"m".repeat(300), empty()).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)));
        let err = client.call("echo", Value::from(3)).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)));
        let small = new_client(
            &server,
            &keys,
            ClientConfig::default().max_send_payload(16),
        );
        let err = small
            .call("echo", map(vec![("pad", Value::from("y".repeat(32)))]))
            .unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
        assert_eq!(
            small
                .call("echo", echo(1, 0))
                .map(|v| get_i64(&v, "i"))
                .unwrap(),
            Some(1)
        );
    });
}

fn server_pushed_quests_are_answered(v: Variant) {
    watchdog(Duration::from_secs(30), move || {
        let (server, keys) = server(v);
        let client = new_client(&server, &keys, ClientConfig::default());
        client.connect().unwrap();
        assert!(wait_until(Duration::from_secs(5), || !server
            .connections()
            .is_empty()));
        let conn = server.connections().pop().unwrap();
        // Without a handler: `ping` gets {}, anything else error 20004.
        assert_eq!(conn.push("ping", empty()).unwrap(), empty());
        match conn.push("whatever", empty()) {
            Err(Error::Server { code, .. }) => assert_eq!(code, 20004),
            other => panic!("{other:?}"),
        }
        // With a handler.
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        client.set_quest_handler(move |_: &FpnnClient, method: &str, payload: &Value, two_way: bool| {
            seen2.lock().unwrap().push((method.to_string(), two_way));
            match method {
                "double" => {
                    let n = map_get(payload, "n").and_then(Value::as_i64).unwrap_or(0);
                    QuestReply::Answer(map(vec![("n", Value::from(n * 2))]))
                }
                "refuse" => QuestReply::Error {
                    code: 77,
                    message: "refused".into(),
                },
                "boom" => panic!("handler panics"),
                _ => QuestReply::Unhandled,
            }
        });
        let answer = conn
            .push("double", map(vec![("n", Value::from(21))]))
            .unwrap();
        assert_eq!(get_i64(&answer, "n"), Some(42));
        assert!(matches!(
            conn.push("refuse", empty()),
            Err(Error::Server { code: 77, .. })
        ));
        assert!(matches!(
            conn.push("boom", empty()),
            Err(Error::Server { code: 20001, .. })
        ));
        assert_eq!(conn.push("ping", empty()).unwrap(), empty());
        conn.push_one_way("oneway", empty());
        assert!(wait_until(Duration::from_secs(5), || seen
            .lock()
            .unwrap()
            .contains(&("oneway".to_string(), false))));
        // The client is still fine, and answered nothing to the one-way push
        // (an answer would have been an unexpected frame for the server).
        assert_eq!(
            get_i64(&client.call("echo", echo(3, 0)).unwrap(), "i"),
            Some(3)
        );
    });
}

fn a_callback_may_call_back_into_the_client(v: Variant) {
    watchdog(Duration::from_secs(20), move || {
        let (server, keys) = server(v);
        // One callback thread: the nested blocking call must still complete.
        let client = new_client(&server, &keys, ClientConfig::default().callback_threads(1));
        let (tx, rx) = unbounded();
        for i in 0..20 {
            let inner = client.clone();
            let tx = tx.clone();
            client.call_with_callback("echo", echo(i, 1), None, move |r| {
                let first = get_i64(&r.unwrap(), "i").unwrap();
                let second = inner.call("echo", echo(first + 100, 1)).unwrap();
                tx.send(get_i64(&second, "i").unwrap()).unwrap();
            });
        }
        let mut got: Vec<i64> = (0..20)
            .map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        got.sort();
        assert_eq!(got, (100..120).collect::<Vec<_>>());
    });
}

fn connect_failures_and_closed_clients_are_typed(v: Variant) {
    watchdog(Duration::from_secs(20), move || {
        // A port nobody listens on.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let dead = FpnnClient::new(format!("127.0.0.1:{port}"), ClientConfig::default()).unwrap();
        let err = dead.connect().unwrap_err();
        assert!(matches!(err, Error::Connect { .. }), "{err:?}");
        assert!(err.is_connection_error());
        let (tx, rx) = unbounded();
        dead.call_with_callback("echo", empty(), None, move |r| tx.send(r).unwrap());
        assert!(matches!(
            rx.recv_timeout(Duration::from_secs(5)).unwrap(),
            Err(Error::Connect { .. })
        ));
        let bad = FpnnClient::new("not an endpoint", ClientConfig::default());
        assert!(matches!(bad, Err(Error::InvalidArgument(_))), "{bad:?}");

        let (server, keys) = server(v);
        let client = new_client(&server, &keys, ClientConfig::default());
        client.close();
        assert!(client.is_closed());
        assert!(matches!(
            client.call("echo", empty()),
            Err(Error::ClientClosed)
        ));
        let (tx, rx) = unbounded();
        client.call_with_callback("echo", empty(), None, move |r| tx.send(r).unwrap());
        assert!(matches!(
            rx.recv_timeout(Duration::from_secs(5)).unwrap(),
            Err(Error::ClientClosed)
        ));
        client.close();
    });
}

fn answers_for_unknown_seqs_are_dropped(v: Variant) {
    watchdog(Duration::from_secs(20), move || {
        let (server, keys) = server(v);
        let client = new_client(&server, &keys, ClientConfig::default());
        for _ in 0..3 {
            let answer = client.call("stray", empty()).unwrap();
            assert_eq!(get_i64(&answer, "i"), Some(7));
        }
        assert_eq!(server.connection_count(), 1, "the stray answers were not fatal");
    });
}

fn one_way_quests_are_sent(v: Variant) {
    watchdog(Duration::from_secs(20), move || {
        let (server, keys) = server(v);
        let client = new_client(&server, &keys, ClientConfig::default());
        client
            .send_one_way("note", map(vec![("k", Value::from(1))]))
            .unwrap();
        assert!(wait_until(Duration::from_secs(5), || server
            .received()
            .iter()
            .any(|(m, p)| m == "note" && get_i64(p, "k") == Some(1))));
    });
}
}

/// The callback form returns at once even when the server stops reading:
/// large frames go through the writer thread, never the caller's write.
#[test]
fn callback_calls_return_at_once_when_the_server_does_not_read() {
    watchdog(Duration::from_secs(30), || {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = listener.local_addr().unwrap().to_string();
        // Accepts and keeps the socket, never reading from it.
        let acceptor = thread::spawn(move || listener.accept().map(|(s, _)| s));
        let client = FpnnClient::new(
            endpoint,
            ClientConfig::default().quest_timeout(Duration::from_secs(60)),
        )
        .unwrap();
        client.connect().unwrap();
        let _socket = acceptor.join().unwrap().unwrap();
        // 16 x 4 MiB is far more than the socket buffers take in.
        let big = map(vec![("pad", Value::Binary(vec![7u8; 4 << 20]))]);
        let (tx, rx) = unbounded();
        let started = Instant::now();
        for _ in 0..16 {
            let tx = tx.clone();
            client.call_with_callback("big", big.clone(), None, move |r| {
                tx.send(r.is_err()).unwrap()
            });
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the callback form blocked for {:?}",
            started.elapsed()
        );
        assert_eq!(client.pending_calls(), 16);
        client.close();
        for _ in 0..16 {
            assert!(rx.recv_timeout(Duration::from_secs(5)).unwrap());
        }
    });
}

/// Calls made from callbacks are held back until their batch of callbacks
/// ends, but a callback that runs long does not hold back the calls made
/// before it in the same batch for more than a few milliseconds.
#[test]
fn a_slow_callback_does_not_hold_back_the_calls_made_before_it() {
    use rtm_server_sdk::fpnn::codec::{encode_answer, Decoder, Frame};
    use std::io::{Read, Write};
    watchdog(Duration::from_secs(30), || {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = listener.local_addr().unwrap().to_string();
        // Reads quests; answers the first two together (one write, so they
        // reach the client in one read, as one batch of callbacks), then
        // reports when the third arrived and answers it.
        let (arrived_tx, arrived_rx) = unbounded();
        let server = thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut decoder = Decoder::new(1 << 20);
            let mut buf = vec![0u8; 4096];
            let mut held = Vec::new();
            loop {
                let n = match s.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                decoder.feed(&buf[..n]);
                while let Some(Frame::Quest(q)) = decoder.next_frame().unwrap() {
                    let seq = q.seq.unwrap();
                    if q.method == "hold" {
                        continue;
                    }
                    if q.method == "pair" {
                        held.push(seq);
                        if held.len() == 2 {
                            let mut out = Vec::new();
                            for seq in held.drain(..) {
                                encode_answer(&mut out, seq, &map(vec![])).unwrap();
                            }
                            s.write_all(&out).unwrap();
                        }
                    } else {
                        arrived_tx.send(Instant::now()).unwrap();
                        let mut out = Vec::new();
                        encode_answer(&mut out, seq, &map(vec![])).unwrap();
                        s.write_all(&out).unwrap();
                    }
                }
            }
        });
        let client =
            FpnnClient::new(endpoint, ClientConfig::default().callback_threads(1)).unwrap();
        client.connect().unwrap();
        // Calls left in flight, so that the callbacks' calls are queued
        // (with nearly nothing in flight they would be written at once).
        for _ in 0..4 {
            client.call_with_callback("hold", empty(), None, |_| {});
        }
        let (made_tx, made_rx) = unbounded();
        let (done_tx, done_rx) = unbounded();
        // The first answer's callback makes a call; the second's sleeps.
        let c = client.clone();
        let done = done_tx.clone();
        client.call_with_callback("pair", empty(), None, move |r| {
            r.unwrap();
            made_tx.send(Instant::now()).unwrap();
            c.call_with_callback("next", empty(), None, move |r| {
                done.send(r.is_ok()).unwrap()
            });
        });
        client.call_with_callback("pair", empty(), None, move |r| {
            r.unwrap();
            thread::sleep(Duration::from_millis(500));
            done_tx.send(true).unwrap();
        });
        let made = made_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        let arrived = arrived_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        let held_back = arrived.saturating_duration_since(made);
        // Held back, it would wait for the 500 ms callback; the margin is
        // for descheduled threads on a loaded machine.
        assert!(
            held_back < Duration::from_millis(400),
            "the call made before a 500 ms callback reached the server after {held_back:?}"
        );
        assert!(done_rx.recv_timeout(Duration::from_secs(5)).unwrap());
        assert!(done_rx.recv_timeout(Duration::from_secs(5)).unwrap());
        client.close();
        server.join().unwrap();
    });
}

/// A callback call written by the calling thread (nearly nothing in
/// flight) never blocks it, even when the server stopped reading and the
/// socket is full.
#[test]
fn small_callback_calls_never_block_on_a_full_socket() {
    watchdog(Duration::from_secs(60), || {
        // A server that accepts and never reads, with a small receive
        // buffer, so that the client's socket fills after a few frames.
        let socket = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )
        .unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        socket
            .bind(
                &"127.0.0.1:0"
                    .parse::<std::net::SocketAddr>()
                    .unwrap()
                    .into(),
            )
            .unwrap();
        socket.listen(8).unwrap();
        let listener: std::net::TcpListener = socket.into();
        let endpoint = listener.local_addr().unwrap().to_string();
        let acceptor = thread::spawn(move || listener.accept().map(|(s, _)| s));
        let client = FpnnClient::new(
            endpoint,
            ClientConfig::default().quest_timeout(Duration::from_secs(3)),
        )
        .unwrap();
        client.connect().unwrap();
        let _socket = acceptor.join().unwrap().unwrap();
        // Frames just under the size written by the calling thread; 600 of
        // them (9.6 MB) are more than any socket buffers take in.
        let payload = map(vec![("pad", Value::Binary(vec![1u8; 16_000]))]);
        // Blocked on the full socket, a call would wait for the writer's
        // write to time out (the 3 s quest timeout); the bound leaves room
        // for the slowest of 600 calls on a loaded machine.
        let bound = Duration::from_millis(1500);
        let mut slowest = Duration::ZERO;
        for _ in 0..600 {
            let (tx, rx) = unbounded();
            let started = Instant::now();
            client.call_with_callback("m", payload.clone(), Duration::from_millis(1), move |r| {
                tx.send(r).unwrap()
            });
            slowest = slowest.max(started.elapsed());
            // One at a time: each call times out before the next, so that
            // nearly nothing is in flight.
            match rx.recv_timeout(Duration::from_secs(10)).unwrap() {
                Err(e) if e.is_timeout() => {}
                // The connection may close once the writer thread's write
                // times out; later calls connect again (and fail).
                Err(e) if e.is_connection_error() => {}
                other => panic!("{other:?}"),
            }
            if slowest >= bound {
                break;
            }
        }
        assert!(
            slowest < bound,
            "call_with_callback blocked its caller for {slowest:?}"
        );
        client.close();
    });
}
