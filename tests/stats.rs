//! The client's counters (`stats()`) and its call observer, against the
//! emulator: the counters equal what a scripted run did, and the observer
//! is told about every call exactly once, in both forms.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{via_callback, wait_until, watchdog};
use rtm_server_sdk::emulator::RtmEmulator;
use rtm_server_sdk::fpnn::{CallOutcome, CallRecord};
use rtm_server_sdk::{ClientConfig, ErrorKind, FpnnClient, RtmServerClient, Value};

/// What the observer saw of one call.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    method: String,
    outcome: &'static str,
    resent: bool,
    thread: String,
    request_bytes: usize,
    answer_bytes: usize,
}

fn recording() -> (Arc<Mutex<Vec<Seen>>>, ClientConfig) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let config = ClientConfig::default()
        .quest_timeout(Duration::from_secs(10))
        .observer(move |call: &CallRecord<'_>| {
            log.lock().unwrap().push(Seen {
                method: call.method.to_string(),
                outcome: call.outcome.as_str(),
                resent: call.resent,
                thread: std::thread::current().name().unwrap_or("").to_string(),
                request_bytes: call.request_bytes,
                answer_bytes: call.answer_bytes,
            });
        });
    (seen, config)
}

#[test]
fn the_counters_equal_what_a_scripted_run_did() {
    watchdog(Duration::from_secs(60), || {
        let emu = RtmEmulator::start(1, "s").unwrap();
        let client = RtmServerClient::with_config(
            1,
            "s",
            emu.endpoint(),
            ClientConfig::default().quest_timeout(Duration::from_secs(10)),
        )
        .unwrap();
        let before = client.stats();
        assert_eq!(before, Default::default(), "{before}");
        client.connect().unwrap();
        // Five calls that succeed, in both forms.
        for _ in 0..3 {
            client.get_voice_room_list().unwrap();
        }
        for _ in 0..2 {
            via_callback(|cb| client.get_voice_room_list_with_callback(cb)).unwrap();
        }
        // A server error.
        emu.faults().set_fail("getVoiceRoomList", 200040);
        assert_eq!(
            client.get_voice_room_list().unwrap_err().code(),
            Some(200040)
        );
        emu.faults().clear_fail("getVoiceRoomList");
        // A timeout.
        emu.server().faults().set_freeze(true);
        let quick = client.with_timeout(Duration::from_millis(300));
        assert!(quick.get_voice_room_list().unwrap_err().is_timeout());
        emu.server().faults().set_freeze(false);
        // One call served, then the connection drops under the next one,
        // which is resent on a new connection (a reconnect).
        emu.faults().set_drop_after(1);
        client.get_voice_room_list().unwrap();
        client.get_voice_room_list().unwrap();
        emu.faults().set_drop_after(0);
        // A call refused before anything is sent.
        let err = client.call("getVoiceRoomList", Value::from(1)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Local);

        let s = client.stats();
        assert_eq!(s.calls_started, 10, "{s}");
        assert_eq!(s.calls_ok, 7, "{s}");
        assert_eq!(s.calls_server_error, 1, "{s}");
        assert_eq!(s.calls_timed_out, 1, "{s}");
        assert_eq!(s.calls_connection_failed, 0, "{s}");
        assert_eq!(s.calls_local_error, 1, "{s}");
        assert_eq!(s.calls_failed(), 3, "{s}");
        assert_eq!(s.calls_resent, 1, "{s}");
        assert_eq!(s.connects, 2, "{s}");
        assert_eq!(s.reconnects, 1, "{s}");
        assert_eq!(s.connect_failures, 0, "{s}");
        assert_eq!(s.pending, 0, "{s}");
        assert!(s.pending_peak >= 1, "{s}");
        assert!(s.connection_age.is_some(), "{s}");
        // Ten quests went out (nine calls sent, one resent); at least the
        // eight answered came back.
        assert_eq!(s.frames_sent, 10, "{s}");
        assert!(s.frames_received >= 8, "{s}");
        assert!(s.bytes_sent > 10 * 16 && s.bytes_received > 8 * 16, "{s}");
        let text = s.to_string();
        assert!(
            text.starts_with(
                "calls 10 (ok 7, timeout 1, connection 0, server 1, local 1, resent 1)"
            ),
            "{text}"
        );
        client.close();
        let s = client.stats();
        assert_eq!(s.connection_age, None, "{s}");
        assert_eq!(s.calls_started, 10, "{s}");
    });
}

#[test]
fn a_connect_failure_is_counted() {
    watchdog(Duration::from_secs(30), || {
        // A port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = FpnnClient::new(
            format!("127.0.0.1:{port}"),
            ClientConfig::default().reconnect(None),
        )
        .unwrap();
        let err = client.call("x", Value::Map(vec![])).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
        let s = client.stats();
        assert_eq!((s.connects, s.connect_failures), (0, 1), "{s}");
        assert_eq!((s.calls_started, s.calls_connection_failed), (1, 1), "{s}");
    });
}

#[test]
fn the_observer_sees_each_call_once_in_both_forms() {
    watchdog(Duration::from_secs(60), || {
        let emu = RtmEmulator::start(1, "s").unwrap();
        let (seen, config) = recording();
        let client = RtmServerClient::with_config(1, "s", emu.endpoint(), config).unwrap();
        let count = |method: &str, outcome: &str| {
            seen.lock()
                .unwrap()
                .iter()
                .filter(|s| s.method == method && s.outcome == outcome)
                .count()
        };
        // OK, both forms.
        client.get_voice_room_list().unwrap();
        via_callback(|cb| client.get_voice_room_list_with_callback(cb)).unwrap();
        // Refused before sending, both forms (a bad payload), raw and typed.
        assert!(client.call("getVoiceRoomList", Value::from(1)).is_err());
        assert!(via_callback(|cb| client.call_with_callback(
            "getVoiceRoomList",
            Value::from(1),
            cb
        ))
        .is_err());
        assert!(client.fpnn().call("", Value::Map(vec![])).is_err());
        assert!(via_callback(|cb| client.fpnn().call_with_callback(
            "",
            Value::Map(vec![]),
            None,
            cb
        ))
        .is_err());
        // A server error through the raw layer, both forms.
        let raw = client.fpnn();
        assert!(raw.call("noSuchMethod", Value::Map(vec![])).is_err());
        assert!(via_callback(|cb| raw.call_with_callback(
            "noSuchMethod",
            Value::Map(vec![]),
            None,
            cb
        ))
        .is_err());
        assert_eq!(count("getVoiceRoomList", "ok"), 2);
        assert_eq!(count("getVoiceRoomList", "local"), 2);
        assert_eq!(count("", "local"), 2);
        assert_eq!(count("noSuchMethod", "server"), 2);
        // Callback calls in flight when the client closes are completed by
        // the close: each is observed once, as a connection failure.
        emu.server().faults().set_freeze(true);
        let (tx, rx) = std::sync::mpsc::channel();
        for _ in 0..3 {
            let tx = tx.clone();
            client.get_voice_room_list_with_callback(move |r| tx.send(r.is_err()).unwrap());
        }
        assert!(wait_until(Duration::from_secs(5), || client
            .stats()
            .pending
            == 3));
        client.close();
        for _ in 0..3 {
            assert!(rx.recv_timeout(Duration::from_secs(5)).unwrap());
        }
        // And a call made on the closed client, both forms.
        assert!(client.get_voice_room_list().is_err());
        assert!(via_callback(|cb| client.get_voice_room_list_with_callback(cb)).is_err());
        assert_eq!(count("getVoiceRoomList", "connection"), 5);
        let all = seen.lock().unwrap().clone();
        assert_eq!(all.len(), 13, "{all:#?}");
        let stats = client.stats();
        assert_eq!(stats.calls_started, 13, "{stats}");
        assert_eq!(stats.calls_failed() + stats.calls_ok, 13, "{stats}");
        // Never on a reader thread; sizes of the frames of an answered call.
        assert!(all.iter().all(|s| !s.thread.contains("reader")), "{all:#?}");
        let ok = all.iter().find(|s| s.outcome == "ok").unwrap();
        assert!(ok.request_bytes > 16 && ok.answer_bytes > 16, "{ok:?}");
        assert!(all.iter().all(|s| !s.resent));
    });
}

#[test]
fn the_observer_sees_a_resent_call_once() {
    watchdog(Duration::from_secs(60), || {
        let emu = RtmEmulator::start(1, "s").unwrap();
        let (seen, config) = recording();
        let client = RtmServerClient::with_config(1, "s", emu.endpoint(), config).unwrap();
        client.connect().unwrap();
        // Each connection serves one quest and drops under the next: every
        // call after the first is resent once.
        emu.faults().set_drop_after(1);
        client.get_voice_room_list().unwrap();
        client.get_voice_room_list().unwrap();
        via_callback(|cb| client.get_voice_room_list_with_callback(cb)).unwrap();
        via_callback(|cb| client.get_voice_room_list_with_callback(cb)).unwrap();
        emu.faults().set_drop_after(0);
        let all = seen.lock().unwrap().clone();
        let resent: Vec<bool> = all.iter().map(|s| s.resent).collect();
        assert_eq!(resent, [false, true, true, true], "{all:#?}");
        assert!(all.iter().all(|s| s.outcome == "ok"), "{all:#?}");
        let stats = client.stats();
        assert_eq!((stats.calls_resent, stats.reconnects), (3, 3), "{stats}");
    });
}

#[test]
fn outcomes_name_the_error_kind_and_code() {
    let err = rtm_server_sdk::Error::Server {
        code: 200040,
        message: String::new(),
    };
    let outcome = CallOutcome::of::<()>(&Err(err));
    assert_eq!(
        outcome,
        CallOutcome::Failed {
            kind: ErrorKind::Server,
            code: Some(200040)
        }
    );
    assert_eq!(outcome.as_str(), "server");
    assert_eq!(CallOutcome::of(&Ok(())).as_str(), "ok");
}

#[test]
fn the_last_keepalive_round_trip_is_kept() {
    use rtm_server_sdk::fpnn::KeepaliveConfig;
    watchdog(Duration::from_secs(30), || {
        let emu = RtmEmulator::start(1, "s").unwrap();
        let keepalive = KeepaliveConfig::default()
            .interval(Duration::from_millis(50))
            .timeout(Duration::from_millis(500));
        let config = ClientConfig::default().keepalive(keepalive);
        let client = RtmServerClient::with_config(1, "s", emu.endpoint(), config).unwrap();
        assert_eq!(client.stats().last_keepalive_rtt, None);
        client.connect().unwrap();
        assert!(
            wait_until(Duration::from_secs(10), || client
                .stats()
                .last_keepalive_rtt
                .is_some()),
            "{}",
            client.stats()
        );
        let s = client.stats();
        assert!(
            s.last_keepalive_rtt.unwrap() < Duration::from_secs(5),
            "{s}"
        );
        assert!(s.to_string().contains("keepalive rtt"), "{s}");
        // Pings are not calls.
        assert_eq!(s.calls_started, 0, "{s}");
    });
}
