//! Sending files (PROTOCOL.md A.6) against the emulator's file gate: the
//! step-2 quests on the wire, big files from several threads, a gate that
//! fails, the token rules, the idle gate connection, the size limit, and
//! the file message that comes back.

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{map, via_callback, wait_until, watchdog};
use crossbeam_channel::{bounded, Receiver, Sender};
use md5::{Digest, Md5};
use rmpv::Value;
use rtm_server_sdk::emulator::{FpnnServer, Reply, RtmEmulator, ServerConn, ServerOptions};
use rtm_server_sdk::fpnn::codec::{encode_answer, map_get, Decoder, Frame, Quest};
use rtm_server_sdk::rtm::{AudioInfo, FileOptions, FileType, ListenTargets, PushMessage};
use rtm_server_sdk::{codes, ClientConfig, Error, FpnnClient, Result, RtmServerClient};

const PID: i64 = 11000001;
const SECRET: &str = "file-secret";

fn setup() -> (RtmEmulator, RtmServerClient) {
    common::emulator_and_client(PID, SECRET, Duration::ZERO)
}

fn md5_hex(bytes: &[u8]) -> String {
    hex::encode(Md5::digest(bytes))
}

/// The expected `rtm.sign`, computed here from the spec's formula.
fn expected_sign(content: &[u8], token: &str) -> String {
    md5_hex(format!("{}:{token}", md5_hex(content)).as_bytes())
}

fn s(v: &Value, key: &str) -> String {
    map_get(v, key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string `{key}` in {v}"))
        .to_string()
}

fn i(v: &Value, key: &str) -> i64 {
    map_get(v, key)
        .and_then(Value::as_i64)
        .unwrap_or_else(|| panic!("no int `{key}` in {v}"))
}

/// The last quest the file gate received.
fn last_gate_quest(emu: &RtmEmulator) -> (String, Value) {
    emu.file_gate()
        .received()
        .pop()
        .expect("the gate received a quest")
}

/// Sends one file by method `kind` (0..5) in the given form.
fn send_by(
    client: &RtmServerClient,
    kind: usize,
    callback: bool,
    content: &[u8],
    options: &FileOptions,
) -> Result<i64> {
    let c = client.clone();
    let content = content.to_vec();
    let options = options.clone();
    if !callback {
        return match kind {
            0 => c.send_file(1, 2, &content, &options),
            1 => c.send_files(1, &[2, 3], &content, &options),
            2 => c.send_group_file(1, 7, &content, &options),
            3 => c.send_room_file(1, 8, &content, &options),
            _ => c.send_broadcast_file(1, &content, &options),
        };
    }
    via_callback(move |done| match kind {
        0 => c.send_file_with_callback(1, 2, &content, &options, done),
        1 => c.send_files_with_callback(1, &[2, 3], &content, &options, done),
        2 => c.send_group_file_with_callback(1, 7, &content, &options, done),
        3 => c.send_room_file_with_callback(1, 8, &content, &options, done),
        _ => c.send_broadcast_file_with_callback(1, &content, &options, done),
    })
}

#[test]
fn step_two_quests_carry_the_table_keys_and_types() {
    watchdog(Duration::from_secs(30), || {
        let (emu, client) = setup();
        let cases: [(&str, Option<(&str, Value)>); 5] = [
            ("sendfile", Some(("to", Value::from(2)))),
            (
                "sendfiles",
                Some(("tos", Value::Array(vec![Value::from(2), Value::from(3)]))),
            ),
            ("sendgroupfile", Some(("gid", Value::from(7)))),
            ("sendroomfile", Some(("rid", Value::from(8)))),
            ("broadcastfile", None),
        ];
        let mut mids = HashSet::new();
        for (kind, (cmd, target)) in cases.iter().enumerate() {
            for callback in [false, true] {
                let content = format!("content of {cmd} {callback}").into_bytes();
                let options = FileOptions {
                    name: Some("voice.amr".into()),
                    mtype: FileType::Audio,
                    attrs: r#"{"k":"v","n":[1,2]}"#.into(),
                    audio: Some(AudioInfo {
                        codec: "amr-wb".into(),
                        srate: 16000,
                        lang: "en".into(),
                        duration: Duration::from_millis(2500),
                    }),
                    ..FileOptions::default()
                };
                emu.clear_received();
                let mtime = send_by(&client, kind, callback, &content, &options).unwrap();
                assert!(mtime > 0);

                // Step 1 went to the RTM connection, signed.
                let step1: Vec<_> = emu
                    .received()
                    .into_iter()
                    .filter(|(m, _)| m == "filetoken")
                    .collect();
                assert_eq!(step1.len(), 1, "{cmd}");
                assert_eq!(s(&step1[0].1, "cmd"), *cmd);
                assert!(map_get(&step1[0].1, "sign").is_some());

                // Step 2: exactly the table's keys, unsigned.
                let (method, payload) = last_gate_quest(&emu);
                assert_eq!(method, *cmd);
                let Value::Map(entries) = &payload else {
                    panic!("not a map")
                };
                let mut keys: Vec<&str> =
                    entries.iter().map(|(k, _)| k.as_str().unwrap()).collect();
                keys.sort_unstable();
                let mut expected = vec!["attrs", "file", "from", "mid", "mtype", "pid", "token"];
                if let Some((k, _)) = target {
                    expected.push(k);
                }
                expected.sort_unstable();
                assert_eq!(keys, expected, "{cmd} ({callback})");
                for signing in ["sign", "salt", "ts"] {
                    assert!(map_get(&payload, signing).is_none());
                }
                assert_eq!(i(&payload, "pid"), PID);
                assert_eq!(i(&payload, "from"), 1);
                assert_eq!(i(&payload, "mtype"), 41);
                if let Some((k, v)) = target {
                    assert_eq!(map_get(&payload, k), Some(v));
                }
                assert!(mids.insert(i(&payload, "mid")), "mids are unique");
                assert_eq!(
                    map_get(&payload, "file"),
                    Some(&Value::Binary(content.clone())),
                    "file is bin"
                );
                let token = s(&payload, "token");
                assert!(!token.is_empty());

                // The attrs JSON, field by field.
                let attrs: serde_json::Value = serde_json::from_str(&s(&payload, "attrs")).unwrap();
                assert_eq!(attrs["custom"], serde_json::json!({"k": "v", "n": [1, 2]}));
                let rtm = &attrs["rtm"];
                assert_eq!(rtm["sign"], expected_sign(&content, &token));
                assert_eq!(rtm["filename"], "voice.amr");
                assert_eq!(rtm["ext"], "amr");
                assert_eq!(rtm["type"], "audiomsg");
                assert_eq!(rtm["codec"], "amr-wb");
                assert_eq!(rtm["srate"], 16000);
                assert_eq!(rtm["lang"], "en");
                assert_eq!(rtm["duration"], 2500);
                assert_eq!(rtm.as_object().unwrap().len(), 8, "{rtm}");
                assert_eq!(attrs.as_object().unwrap().len(), 2);
            }
        }
        // One gate connection served all ten files.
        assert_eq!(emu.file_gate().connection_count(), 1);
        assert_eq!(client.file_gate_count(), 1);
        assert_eq!(emu.file_urls().len(), 10);
    })
}

#[test]
fn five_mib_files_from_four_threads_arrive_intact() {
    watchdog(Duration::from_secs(90), || {
        // A 5 MiB file and its quest fit the default 8 MiB limits; the
        // documented way to raise them is shown here all the same.
        let limit = 16 << 20;
        let emu =
            RtmEmulator::start_with(PID, SECRET, ServerOptions::new().max_payload(limit)).unwrap();
        let client = RtmServerClient::with_config(
            PID,
            SECRET,
            emu.endpoint(),
            ClientConfig::default().max_send_payload(limit),
        )
        .unwrap();
        let contents: Vec<Vec<u8>> = (0..4u8)
            .map(|t| {
                (0..5 << 20)
                    .map(|n: usize| (n as u8).wrapping_mul(31).wrapping_add(t.wrapping_mul(97)))
                    .collect()
            })
            .collect();
        let contents = Arc::new(contents);
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let client = client.clone();
                let contents = contents.clone();
                thread::spawn(move || {
                    let options = FileOptions {
                        name: Some(format!("big-{t}.bin")),
                        ..FileOptions::default()
                    };
                    client.send_file(1, 100 + t as i64, &contents[t], &options)
                })
            })
            .collect();
        for t in threads {
            assert!(t.join().unwrap().unwrap() > 0);
        }
        let urls = emu.file_urls();
        assert_eq!(urls.len(), 4);
        let mut found = [false; 4];
        for url in &urls {
            let stored = emu.file(url).unwrap();
            let t = contents
                .iter()
                .position(|c| *c == stored)
                .expect("a stored file is one of the sent ones, intact");
            found[t] = true;
        }
        assert!(found.iter().all(|&f| f), "every file arrived");
        assert_eq!(
            emu.file_gate().connection_count(),
            1,
            "one shared gate connection"
        );
    })
}

/// A stand-in RTM server whose `filetoken` points at `gate`.
fn fake_rtm(gate: String) -> FpnnServer {
    FpnnServer::start(
        move |_c: &ServerConn, q: &Quest| match q.method.as_str() {
            "filetoken" => Reply::Answer(map(vec![
                ("token", Value::from("tok")),
                ("endpoint", Value::from(gate.as_str())),
            ])),
            _ => Reply::Answer(map(vec![])),
        },
        ServerOptions::new(),
    )
    .unwrap()
}

#[test]
fn an_encrypted_rtm_connection_sends_files_to_a_plain_gate() {
    watchdog(Duration::from_secs(30), || {
        let variant = common::Variant::encrypted(
            rtm_server_sdk::fpnn::crypto::Curve::Secp256r1,
            rtm_server_sdk::fpnn::crypto::CipherMode::Stream,
            rtm_server_sdk::fpnn::crypto::KeyBits::Aes256,
        );
        let (options, keys) = variant.setup();
        let emu = RtmEmulator::start_with(PID, SECRET, options).unwrap();
        assert!(emu.server().is_encrypted() && !emu.file_gate().is_encrypted());
        let client = RtmServerClient::with_config(
            PID,
            SECRET,
            emu.endpoint(),
            keys.config(ClientConfig::default()),
        )
        .unwrap();
        client
            .send_room_file(1, 3, b"secret-ish", &FileOptions::default())
            .unwrap();
        let (method, payload) = last_gate_quest(&emu);
        assert_eq!(method, "sendroomfile");
        assert_eq!(
            map_get(&payload, "file"),
            Some(&Value::Binary(b"secret-ish".to_vec()))
        );
        // The gate saw no key exchange.
        assert!(emu.file_gate().received().iter().all(|(m, _)| m != "*key"));
    })
}

#[test]
fn a_gate_closing_mid_send_fails_that_file_only() {
    watchdog(Duration::from_secs(30), || {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let gate = listener.local_addr().unwrap().to_string();
        // The gate: the first connection is cut after 64 KiB of a 2 MiB
        // file; the second answers like a gate.
        let gate_thread = thread::spawn(move || {
            let (mut first, _) = listener.accept().unwrap();
            let mut buf = vec![0u8; 64 << 10];
            first.read_exact(&mut buf).unwrap();
            drop(first);
            let (mut second, _) = listener.accept().unwrap();
            let mut decoder = Decoder::new(16 << 20);
            let quest = loop {
                if let Some(Frame::Quest(q)) = decoder.next_frame().unwrap() {
                    break q;
                }
                let mut chunk = [0u8; 65536];
                let n = second.read(&mut chunk).unwrap();
                assert!(n > 0, "the client sent the whole second file");
                decoder.feed(&chunk[..n]);
            };
            let mut out = Vec::new();
            encode_answer(
                &mut out,
                quest.seq.unwrap(),
                &map(vec![("mtime", Value::from(42))]),
            )
            .unwrap();
            second.write_all(&out).unwrap();
            let mut rest = [0u8; 16];
            let _ = second.read(&mut rest); // until the client closes
            quest
        });
        let rtm = fake_rtm(gate);
        let client = RtmServerClient::new(PID, SECRET, rtm.endpoint()).unwrap();
        let big = vec![5u8; 2 << 20];
        let started = Instant::now();
        let err = client
            .send_file(1, 2, &big, &FileOptions::default())
            .unwrap_err();
        assert!(err.is_connection_error(), "{err:?}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "failed at once"
        );
        // The next file goes through a new gate connection.
        let mtime = client
            .send_file(1, 2, b"small", &FileOptions::default())
            .unwrap();
        assert_eq!(mtime, 42);
        client.close();
        let quest = gate_thread.join().unwrap();
        assert_eq!(quest.method, "sendfile");
        assert_eq!(
            map_get(&quest.payload, "file"),
            Some(&Value::Binary(b"small".to_vec()))
        );
        // The RTM connection never noticed.
        assert_eq!(rtm.connection_count(), 1);
        let methods: Vec<String> = rtm.received().into_iter().map(|(m, _)| m).collect();
        assert_eq!(methods, ["filetoken", "filetoken"]);
    })
}

#[test]
fn a_dead_gate_connection_is_redialed_and_the_rtm_connection_stays() {
    watchdog(Duration::from_secs(30), || {
        let (emu, client) = setup();
        client
            .send_file(1, 2, b"one", &FileOptions::default())
            .unwrap();
        assert_eq!(emu.file_gate().connection_count(), 1);
        // The gate drops the connection that sends the next quest.
        emu.file_gate().faults().set_drop_every(1);
        let err = client
            .send_file(1, 2, b"two", &FileOptions::default())
            .unwrap_err();
        assert!(err.is_connection_error(), "{err:?}");
        emu.file_gate().faults().set_drop_every(0);
        // The server closes the next connection under the client, between files.
        client
            .send_file(1, 2, b"three", &FileOptions::default())
            .unwrap();
        for conn in emu.file_gate().connections() {
            conn.close();
        }
        thread::sleep(Duration::from_millis(300)); // the client sees the close
        let r = via_callback(|done| {
            client.send_file_with_callback(1, 2, b"four", &FileOptions::default(), done)
        });
        assert!(r.unwrap() > 0);
        assert_eq!(emu.file_gate().connection_count(), 3);
        let stored: Vec<Vec<u8>> = emu
            .file_urls()
            .iter()
            .map(|u| emu.file(u).unwrap())
            .collect();
        assert_eq!(
            stored,
            [b"one".to_vec(), b"three".to_vec(), b"four".to_vec()]
        );
        // The RTM side: one connection all along, and it still works.
        client.pull_into_voice_room(5, &[1]).unwrap();
        assert_eq!(emu.server().connection_count(), 1);
    })
}

/// A raw step 2, built by hand, on its own gate client.
fn raw_step2(
    gate: &FpnnClient,
    cmd: &str,
    token: &str,
    target: Option<(&str, Value)>,
    from: i64,
    content: &[u8],
    attrs: &str,
) -> Result<Value> {
    let mut entries = vec![
        ("pid", Value::from(PID)),
        ("token", Value::from(token)),
        ("mtype", Value::from(50)),
        ("from", Value::from(from)),
        ("mid", Value::from(rtm_server_sdk::rtm::next_salt())),
        ("file", Value::Binary(content.to_vec())),
        ("attrs", Value::from(attrs)),
    ];
    if let Some(t) = target {
        entries.push(t);
    }
    gate.call(cmd, map(entries))
}

fn signed_attrs(content: &[u8], token: &str) -> String {
    serde_json::json!({"custom": "", "rtm": {"sign": expected_sign(content, token)}}).to_string()
}

fn file_token(client: &RtmServerClient, params: Vec<(&str, Value)>) -> Result<(String, String)> {
    let answer = client.call("filetoken", map(params))?;
    Ok((s(&answer, "token"), s(&answer, "endpoint")))
}

#[test]
fn tokens_are_single_use_bound_and_expire() {
    watchdog(Duration::from_secs(30), || {
        let (emu, client) = setup();
        let to2 = || {
            vec![
                ("from", Value::from(1)),
                ("cmd", Value::from("sendfile")),
                ("to", Value::from(2)),
            ]
        };
        let (token, endpoint) = file_token(&client, to2()).unwrap();
        assert_eq!(endpoint, emu.file_gate_endpoint());
        let gate = FpnnClient::new(endpoint.clone(), ClientConfig::default()).unwrap();
        let content = b"bytes";
        // Each step 2 on a connection of its own (as Go sends them): the
        // gate closes a connection on its third invalid token.
        let send =
            |token: &str, cmd: &str, target: Option<(&str, Value)>, from: i64, attrs: &str| {
                let gate = FpnnClient::new(endpoint.clone(), ClientConfig::default()).unwrap();
                raw_step2(&gate, cmd, token, target, from, content, attrs)
            };
        let code = |r: Result<Value>| r.unwrap_err().server_code();
        let to = || Some(("to", Value::from(2)));

        // Used once, then refused.
        send(&token, "sendfile", to(), 1, &signed_attrs(content, &token)).unwrap();
        assert_eq!(
            code(send(
                &token,
                "sendfile",
                to(),
                1,
                &signed_attrs(content, &token)
            )),
            Some(200003)
        );

        // Expired on the emulator's clock.
        let (token, _) = file_token(&client, to2()).unwrap();
        emu.advance_clock(RtmEmulator::FILE_TOKEN_TTL + Duration::from_secs(1));
        assert_eq!(
            code(send(
                &token,
                "sendfile",
                to(),
                1,
                &signed_attrs(content, &token)
            )),
            Some(200003)
        );

        // Bound to the command, the target and the sender.
        let (token, _) = file_token(&client, to2()).unwrap();
        let r = send(
            &token,
            "sendgroupfile",
            Some(("gid", Value::from(2))),
            1,
            &signed_attrs(content, &token),
        );
        assert_eq!(code(r), Some(200003));
        let (token, _) = file_token(&client, to2()).unwrap();
        let r = send(
            &token,
            "sendfile",
            Some(("to", Value::from(3))),
            1,
            &signed_attrs(content, &token),
        );
        assert_eq!(code(r), Some(200003));
        let (token, _) = file_token(&client, to2()).unwrap();
        assert_eq!(
            code(send(
                &token,
                "sendfile",
                to(),
                9,
                &signed_attrs(content, &token)
            )),
            Some(200003)
        );

        // The sign: wrong, or missing.
        let (token, _) = file_token(&client, to2()).unwrap();
        assert_eq!(
            code(send(
                &token,
                "sendfile",
                to(),
                1,
                &signed_attrs(b"other", &token)
            )),
            Some(200003)
        );
        let (token, _) = file_token(&client, to2()).unwrap();
        assert_eq!(
            code(send(&token, "sendfile", to(), 1, r#"{"rtm":{}}"#)),
            Some(200004)
        );
        let (token, _) = file_token(&client, to2()).unwrap();
        assert_eq!(
            code(send(&token, "sendfile", to(), 1, "plain")),
            Some(200004)
        );

        // Parameters: a missing target, a wrong type, an unknown method.
        let (token, _) = file_token(&client, to2()).unwrap();
        assert_eq!(
            code(send(
                &token,
                "sendfile",
                None,
                1,
                &signed_attrs(content, &token)
            )),
            Some(codes::FPNN_EC_PROTO_KEY_NOT_FOUND)
        );
        assert_eq!(
            code(send(
                &token,
                "sendfile",
                Some(("to", Value::from("2"))),
                1,
                ""
            )),
            Some(codes::FPNN_EC_PROTO_TYPE_CONVERT)
        );
        assert_eq!(
            code(gate.call("sendmsg", map(vec![]))),
            Some(codes::FPNN_EC_CORE_UNKNOWN_METHOD)
        );
        // ... and the token is still good after those.
        send(&token, "sendfile", to(), 1, &signed_attrs(content, &token)).unwrap();

        // filetoken itself: an unknown cmd, a missing matching key.
        let r = file_token(
            &client,
            vec![
                ("from", Value::from(1)),
                ("cmd", Value::from("sendpicture")),
            ],
        );
        assert_eq!(
            r.unwrap_err().server_code(),
            Some(codes::RTM_EC_INVALID_PARAMETER)
        );
        let r = file_token(
            &client,
            vec![
                ("from", Value::from(1)),
                ("cmd", Value::from("sendgroupfile")),
                ("to", Value::from(2)),
            ],
        );
        assert_eq!(
            r.unwrap_err().server_code(),
            Some(codes::FPNN_EC_PROTO_KEY_NOT_FOUND)
        );
        // A broadcast token needs no target.
        let (token, _) = file_token(
            &client,
            vec![
                ("from", Value::from(1)),
                ("cmd", Value::from("broadcastfile")),
            ],
        )
        .unwrap();
        send(
            &token,
            "broadcastfile",
            None,
            1,
            &signed_attrs(content, &token),
        )
        .unwrap();
        assert_eq!(emu.file_urls().len(), 3);
        gate.close();
    })
}

#[test]
fn an_idle_gate_connection_is_closed_and_reopened() {
    watchdog(Duration::from_secs(30), || {
        let (emu, client) = setup();
        // Default: the connection stays for the next file.
        client
            .send_file(1, 2, b"a", &FileOptions::default())
            .unwrap();
        client
            .send_file(1, 2, b"b", &FileOptions::default())
            .unwrap();
        assert_eq!(emu.file_gate().connection_count(), 1);
        assert_eq!(
            client.file_gate_idle(),
            rtm_server_sdk::rtm::DEFAULT_FILE_GATE_IDLE
        );

        let idle = Duration::from_millis(800);
        client.set_file_gate_idle(idle);
        let sent = Instant::now();
        client
            .send_file(1, 2, b"c", &FileOptions::default())
            .unwrap();
        assert_eq!(emu.file_gate().connections().len(), 1);
        assert!(wait_until(Duration::from_secs(5), || emu
            .file_gate()
            .connections()
            .is_empty()));
        assert!(sent.elapsed() >= idle, "not closed before the idle period");
        assert_eq!(client.file_gate_count(), 0);

        // The next file dials again.
        client
            .send_file(1, 2, b"d", &FileOptions::default())
            .unwrap();
        assert_eq!(emu.file_gate().connection_count(), 2);
        assert!(wait_until(Duration::from_secs(5), || emu
            .file_gate()
            .connections()
            .is_empty()));

        // Zero: closed as soon as the file is answered.
        client.set_file_gate_idle(Duration::ZERO);
        client
            .send_file(1, 2, b"z", &FileOptions::default())
            .unwrap();
        assert!(wait_until(Duration::from_secs(2), || emu
            .file_gate()
            .connections()
            .is_empty()));
        assert_eq!(client.file_gate_count(), 0);

        // close() closes the gate at once, whatever the idle period.
        client.set_file_gate_idle(Duration::from_secs(3600));
        client
            .send_file(1, 2, b"e", &FileOptions::default())
            .unwrap();
        assert_eq!(emu.file_gate().connections().len(), 1);
        client.close();
        assert!(wait_until(Duration::from_secs(2), || emu
            .file_gate()
            .connections()
            .is_empty()));
        let err = client
            .send_file(1, 2, b"f", &FileOptions::default())
            .unwrap_err();
        assert!(err.is_client_closed(), "{err:?}");
    })
}

#[test]
fn dropping_the_client_closes_its_gates() {
    watchdog(Duration::from_secs(30), || {
        let (emu, client) = setup();
        client
            .send_group_file(1, 7, b"x", &FileOptions::default())
            .unwrap();
        assert_eq!(emu.file_gate().connections().len(), 1);
        // The idle reaper holds the gates weakly: dropping the client
        // closes them well before the 2-minute idle period.
        drop(client);
        assert!(wait_until(Duration::from_secs(3), || emu
            .file_gate()
            .connections()
            .is_empty()));
    })
}

#[test]
fn an_oversize_file_is_refused_before_anything_is_sent() {
    watchdog(Duration::from_secs(30), || {
        let emu = RtmEmulator::start(PID, SECRET).unwrap();
        let max = 64 << 10;
        let client = RtmServerClient::with_config(
            PID,
            SECRET,
            emu.endpoint(),
            ClientConfig::default().max_send_payload(max),
        )
        .unwrap();
        let check = |r: Result<i64>, len: usize| match r {
            Err(Error::InvalidArgument(why)) => {
                assert!(
                    why.contains(&len.to_string()) && why.contains(&max.to_string()),
                    "{why}"
                );
                assert!(why.contains("max_send_payload"), "{why}");
            }
            other => panic!("expected InvalidArgument, got {other:?}"),
        };
        // Larger than the limit, and just under it (the quest's other keys
        // push it over).
        for len in [max + 1, max - 10] {
            let content = vec![1u8; len];
            check(
                client.send_file(1, 2, &content, &FileOptions::default()),
                len,
            );
            check(
                via_callback(|done| {
                    client.send_room_file_with_callback(
                        1,
                        3,
                        &content,
                        &FileOptions::default(),
                        done,
                    )
                }),
                len,
            );
        }
        assert!(emu.received().is_empty(), "no filetoken was sent");
        assert_eq!(emu.server().connection_count(), 0);
        assert_eq!(emu.file_gate().connection_count(), 0);
        // What fits goes through.
        client
            .send_file(1, 2, &vec![1u8; max - 1024], &FileOptions::default())
            .unwrap();
    })
}

#[test]
fn the_callback_form_never_blocks_its_caller() {
    watchdog(Duration::from_secs(30), || {
        let (emu, client) = setup();
        client
            .send_file(1, 2, b"warm", &FileOptions::default())
            .unwrap();
        emu.file_gate().faults().set_freeze(true);
        let (tx, rx) = bounded(1);
        let started = Instant::now();
        client
            .with_timeout(Duration::from_secs(2))
            .send_file_with_callback(1, 2, b"frozen", &FileOptions::default(), move |r| {
                tx.send(r).unwrap()
            });
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "returned at once"
        );
        let r = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(r.unwrap_err().is_timeout());
        emu.file_gate().faults().set_freeze(false);
    })
}

/// Collects pushed messages.
struct Pushes(Mutex<Sender<PushMessage>>);

impl rtm_server_sdk::rtm::PushHandler for Pushes {
    fn on_message(&self, _: &RtmServerClient, m: &PushMessage) {
        let _ = self.0.lock().unwrap().send(m.clone());
    }
    fn on_group_message(&self, _: &RtmServerClient, m: &PushMessage) {
        let _ = self.0.lock().unwrap().send(m.clone());
    }
}

fn listener(emu: &RtmEmulator) -> (RtmServerClient, Receiver<PushMessage>) {
    let client = RtmServerClient::new(PID, SECRET, emu.endpoint()).unwrap();
    let (tx, rx) = bounded(16);
    client.set_push_handler(Pushes(Mutex::new(tx)));
    client
        .add_listen(&ListenTargets::new().groups([7]).users([2]))
        .unwrap();
    (client, rx)
}

#[test]
fn a_sent_file_comes_back_as_a_file_message() {
    watchdog(Duration::from_secs(30), || {
        let (emu, sender) = setup();
        let (_listener, pushes) = listener(&emu);
        let content = b"%PDF-1.4 a small report".to_vec();
        let options = FileOptions {
            name: Some("report.pdf".into()),
            attrs: "plain words".into(),
            ..FileOptions::default()
        };
        let mtime = sender.send_group_file(1, 7, &content, &options).unwrap();
        let pushed = pushes.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(
            (pushed.from, pushed.to, pushed.mtype, pushed.mtime),
            (1, 7, 50, mtime)
        );
        let msg: serde_json::Value = serde_json::from_str(pushed.body.as_text().unwrap()).unwrap();
        let url = msg["url"].as_str().unwrap();
        assert_eq!(msg["size"], content.len());
        assert!(msg.get("surl").is_none(), "no thumbnail for a non-image");
        assert_eq!(emu.file(url).unwrap(), content);
        // The push's typed file description, and the user's own attrs.
        let file = pushed.file.clone().expect("a typed file description");
        assert_eq!((file.url.as_str(), file.size), (url, content.len() as i64));
        assert_eq!(
            (file.name.as_str(), file.ext.as_str()),
            ("report.pdf", "pdf")
        );
        assert_eq!(pushed.attrs, "plain words", "the user's own attrs");
        // And the same through history.
        let page = sender
            .get_group_message(7, 1, &rtm_server_sdk::rtm::HistoryQuery::default())
            .unwrap();
        let stored = page.messages.iter().find(|m| m.mid == pushed.mid).unwrap();
        assert_eq!(stored.file.as_ref(), Some(&file));
        assert_eq!(stored.attrs, "plain words");

        // An image to user 2, by the callback form: the P2P push, with a
        // thumbnail URL.
        let image = FileOptions {
            name: Some("cat.png".into()),
            mtype: FileType::Image,
            ..FileOptions::default()
        };
        let mtime =
            via_callback(|done| sender.send_file_with_callback(1, 2, b"png!", &image, done))
                .unwrap();
        let pushed = pushes.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!((pushed.to, pushed.mtype, pushed.mtime), (2, 40, mtime));
        let msg: serde_json::Value = serde_json::from_str(pushed.body.as_text().unwrap()).unwrap();
        assert_eq!(msg["size"], 4);
        assert_eq!(msg["surl"], msg["url"]);
        assert_eq!(emu.file(msg["url"].as_str().unwrap()).unwrap(), b"png!");
        assert!(emu.file("rtmemu://files/none").is_none());
    })
}

#[test]
fn a_path_is_read_and_named() {
    watchdog(Duration::from_secs(30), || {
        let (emu, client) = setup();
        let dir = std::env::temp_dir().join(format!("rtm-files-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notes.md");
        std::fs::write(&path, b"# notes").unwrap();
        let (content, options) = FileOptions::from_path(&path).unwrap();
        assert_eq!(options.name.as_deref(), Some("notes.md"));
        client.send_broadcast_file(1, &content, &options).unwrap();
        let (_, payload) = last_gate_quest(&emu);
        let attrs: serde_json::Value = serde_json::from_str(&s(&payload, "attrs")).unwrap();
        assert_eq!(attrs["rtm"]["filename"], "notes.md");
        assert_eq!(attrs["rtm"]["ext"], "md");
        assert_eq!(emu.file(&emu.file_urls()[0]).unwrap(), b"# notes");
        std::fs::remove_dir_all(&dir).unwrap();
        match FileOptions::from_path(dir.join("missing")) {
            Err(Error::InvalidArgument(why)) => assert!(why.contains("missing"), "{why}"),
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    })
}

/// The threads of this process named `name`.
fn threads_named(name: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .filter(|comm| comm.trim() == name)
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn many_callback_sends_share_one_gate_and_one_reaper() {
    watchdog(Duration::from_secs(30), || {
        let (emu, client) = setup();
        let others: Vec<RtmServerClient> = (0..2)
            .map(|_| RtmServerClient::new(PID, SECRET, emu.endpoint()).unwrap())
            .collect();
        let (tx, rx) = bounded(64);
        for n in 0..20u8 {
            let tx = tx.clone();
            client.send_group_file_with_callback(
                1,
                7,
                &[n; 100],
                &FileOptions::default(),
                move |r| tx.send(r).unwrap(),
            );
        }
        for _ in 0..20 {
            assert!(rx.recv_timeout(Duration::from_secs(10)).unwrap().unwrap() > 0);
        }
        for other in &others {
            other
                .send_file(1, 2, b"x", &FileOptions::default())
                .unwrap();
        }
        let mut stored: Vec<Vec<u8>> = emu
            .file_urls()
            .iter()
            .map(|u| emu.file(u).unwrap())
            .collect();
        stored.sort();
        let mut expected: Vec<Vec<u8>> = (0..20u8).map(|n| vec![n; 100]).collect();
        expected.extend([b"x".to_vec(), b"x".to_vec()]);
        expected.sort();
        assert_eq!(stored, expected);
        // One gate connection per client, one reaper thread for the process.
        assert_eq!(emu.file_gate().connection_count(), 3);
        assert_eq!(threads_named("rtm-file-gates"), 1);
    })
}

/// `filetoken` for a `sendfile` from 1 to 2.
fn sendfile_token(client: &RtmServerClient) -> String {
    let params = vec![
        ("from", Value::from(1)),
        ("cmd", Value::from("sendfile")),
        ("to", Value::from(2)),
    ];
    file_token(client, params).unwrap().0
}

#[test]
fn tokens_are_random_in_every_bit() {
    watchdog(Duration::from_secs(60), || {
        let (_emu, client) = setup();
        let tokens: Vec<String> = (0..256).map(|_| sendfile_token(&client)).collect();
        let (mut ones, mut zeros) = ([0u32; 128], [0u32; 128]);
        for token in &tokens {
            assert_eq!(token.len(), 32, "{token}");
            assert!(
                token
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                "{token}"
            );
            let bits = u128::from_str_radix(token, 16).unwrap();
            for bit in 0..128 {
                if bits >> bit & 1 == 1 {
                    ones[bit] += 1;
                } else {
                    zeros[bit] += 1;
                }
            }
        }
        // Over 256 tokens, every bit position takes both values (a fixed
        // bit would show up here; the chance of a false alarm is 2^-249).
        for bit in 0..128 {
            assert!(ones[bit] > 0 && zeros[bit] > 0, "bit {bit} never changes");
        }
        let distinct: HashSet<&String> = tokens.iter().collect();
        assert_eq!(distinct.len(), tokens.len());
    })
}

#[test]
fn every_invalid_token_gets_the_same_answer_and_is_not_used_up() {
    watchdog(Duration::from_secs(60), || {
        let (emu, client) = setup();
        let endpoint = emu.file_gate_endpoint();
        let content = b"bytes";
        // Each attempt on a connection of its own (three bad tokens on one
        // connection close it).
        let send = |token: &str, to: i64, from: i64| {
            let gate = FpnnClient::new(endpoint.clone(), ClientConfig::default()).unwrap();
            let target = Some(("to", Value::from(to)));
            let attrs = signed_attrs(content, token);
            raw_step2(&gate, "sendfile", token, target, from, content, &attrs)
        };
        let refusal = |r: Result<Value>| {
            let e = r.unwrap_err();
            (e.server_code(), e.to_string())
        };
        let unknown = refusal(send(&"0".repeat(32), 2, 1));
        assert_eq!(unknown.0, Some(codes::RTM_EC_INVALID_FILE_OR_SIGN_OR_TOKEN));
        // Another target, another sender: the same answer as an unknown
        // token, and the owner's token is still good afterwards.
        let token = sendfile_token(&client);
        assert_eq!(refusal(send(&token, 3, 1)), unknown);
        assert_eq!(refusal(send(&token, 2, 9)), unknown);
        send(&token, 2, 1).unwrap();
        // Used, and expired: the same answer again.
        assert_eq!(refusal(send(&token, 2, 1)), unknown);
        let token = sendfile_token(&client);
        emu.advance_clock(RtmEmulator::FILE_TOKEN_TTL + Duration::from_secs(1));
        assert_eq!(refusal(send(&token, 2, 1)), unknown);
        // `sendfiles`: bound to its list of receivers, in order.
        let tos = |ids: &[i64]| Value::Array(ids.iter().map(|&i| Value::from(i)).collect());
        let params = vec![
            ("from", Value::from(1)),
            ("cmd", Value::from("sendfiles")),
            ("tos", tos(&[4, 6])),
        ];
        let (token, _) = file_token(&client, params).unwrap();
        let send_files = |ids: &[i64]| {
            let gate = FpnnClient::new(endpoint.clone(), ClientConfig::default()).unwrap();
            let attrs = signed_attrs(content, &token);
            let target = Some(("tos", tos(ids)));
            raw_step2(&gate, "sendfiles", &token, target, 1, content, &attrs)
        };
        for other in [&[4, 7][..], &[6, 4], &[4], &[4, 6, 8]] {
            assert_eq!(refusal(send_files(other)), unknown, "{other:?}");
        }
        send_files(&[4, 6]).unwrap();
        // A bad token is refused before the quest is decoded or recorded.
        assert_eq!(emu.file_gate().received().len(), 2);
    })
}

#[test]
fn a_connection_is_closed_on_its_third_invalid_token() {
    watchdog(Duration::from_secs(60), || {
        let (emu, client) = setup();
        assert_eq!(RtmEmulator::MAX_BAD_FILE_TOKENS, 3);
        let gate_addr = emu.file_gate_endpoint();
        let mut socket = std::net::TcpStream::connect(&gate_addr).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let quest = |seq: u32, token: &str| {
            let p = map(vec![
                ("pid", Value::from(PID)),
                ("token", Value::from(token)),
                ("mtype", Value::from(50)),
                ("from", Value::from(1)),
                ("to", Value::from(2)),
                ("mid", Value::from(seq)),
                ("file", Value::Binary(b"x".to_vec())),
                ("attrs", Value::from("{}")),
            ]);
            let mut frame = Vec::new();
            rtm_server_sdk::fpnn::codec::encode_quest(&mut frame, Some(seq), "sendfile", &p)
                .unwrap();
            frame
        };
        let mut decoder = Decoder::new(1 << 20);
        let mut read_answer = |socket: &mut std::net::TcpStream| loop {
            if let Some(Frame::Answer(a)) = decoder.next_frame().unwrap() {
                return Some(a);
            }
            let mut buf = [0u8; 4096];
            match socket.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => decoder.feed(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("{e}"),
            }
        };
        for seq in 1..=2 {
            socket
                .write_all(&quest(seq, &format!("{seq:032x}")))
                .unwrap();
            let answer = read_answer(&mut socket).expect("answered");
            let e = answer.into_result().unwrap_err();
            assert_eq!(
                e.server_code(),
                Some(codes::RTM_EC_INVALID_FILE_OR_SIGN_OR_TOKEN)
            );
        }
        socket.write_all(&quest(3, &format!("{:032x}", 3))).unwrap();
        assert!(
            read_answer(&mut socket).is_none(),
            "the third bad token closes the connection"
        );
        // Other connections are not affected: a real token still works.
        let token = sendfile_token(&client);
        let gate = FpnnClient::new(gate_addr, ClientConfig::default()).unwrap();
        let attrs = signed_attrs(b"x", &token);
        raw_step2(
            &gate,
            "sendfile",
            &token,
            Some(("to", 2.into())),
            1,
            b"x",
            &attrs,
        )
        .unwrap();
    })
}

#[test]
fn flat_attrs_of_the_nodejs_sdk_make_the_same_message() {
    watchdog(Duration::from_secs(60), || {
        let (emu, client) = setup();
        let gate = FpnnClient::new(emu.file_gate_endpoint(), ClientConfig::default()).unwrap();
        let content = b"file content";
        let to = || Some(("to", Value::from(2)));
        // Go's nested layout, and the flat one the Node.js SDK (2.1.0) sends.
        let token = sendfile_token(&client);
        let nested = serde_json::json!({
            "custom": "",
            "rtm": {"ext": "txt", "sign": expected_sign(content, &token)},
        })
        .to_string();
        raw_step2(&gate, "sendfile", &token, to(), 1, content, &nested).unwrap();
        let token = sendfile_token(&client);
        let flat = serde_json::json!({"sign": expected_sign(content, &token), "ext": "txt"});
        raw_step2(
            &gate,
            "sendfile",
            &token,
            to(),
            1,
            content,
            &flat.to_string(),
        )
        .unwrap();
        // A flat object without a sign is still refused.
        let token = sendfile_token(&client);
        let r = raw_step2(
            &gate,
            "sendfile",
            &token,
            to(),
            1,
            content,
            r#"{"ext":"txt"}"#,
        );
        assert_eq!(
            r.unwrap_err().server_code(),
            Some(codes::RTM_EC_ATTRS_WITHOUT_SIGN_OR_EXT)
        );
        // Both stored messages, read back raw: the same but for the sign
        // and the file's number.
        let mids: Vec<i64> = emu
            .file_gate()
            .received()
            .iter()
            .take(2)
            .map(|(_, p)| i(p, "mid"))
            .collect();
        let stored: Vec<(serde_json::Value, serde_json::Value)> = mids
            .iter()
            .map(|&mid| {
                let params = map(vec![
                    ("mid", mid.into()),
                    ("from", 1.into()),
                    ("xid", 2.into()),
                    ("type", 1.into()),
                ]);
                let m = client.call("getmsg", params).unwrap();
                let mut attrs: serde_json::Value = serde_json::from_str(&s(&m, "attrs")).unwrap();
                attrs["rtm"]["sign"] = "".into();
                let mut msg: serde_json::Value = serde_json::from_str(&s(&m, "msg")).unwrap();
                let url = msg["url"].as_str().unwrap();
                assert!(url.ends_with(".txt"), "{url}");
                msg["url"] = "".into();
                (attrs, msg)
            })
            .collect();
        assert_eq!(stored[0], stored[1]);
        assert_eq!(
            stored[1].0,
            serde_json::json!({"custom": "", "rtm": {"ext": "txt", "sign": ""}})
        );
        assert_eq!(stored[1].1, serde_json::json!({"size": 12, "url": ""}));
    })
}
