//! The public API's promises that are not about one family: a per-call
//! timeout reaches the raw calls of the same handle, and handlers given the
//! client do not keep it alive.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::{threads_named, wait_until, watchdog};
use rtm_server_sdk::emulator::RtmEmulator;
use rtm_server_sdk::fpnn::ConnectionEvent;
use rtm_server_sdk::{ClientConfig, RtmServerClient, Value};

/// The tests of this file run one at a time: one of them counts the
/// clients' threads.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The threads that come and go with clients and their connections.
fn client_threads() -> usize {
    threads_named(&["fpnn", "emu-conn"]).len()
}

#[test]
fn with_timeout_reaches_the_raw_fpnn_calls() {
    let _serial = serial();
    watchdog(Duration::from_secs(30), || {
        let emu = RtmEmulator::start(1, "s").unwrap();
        let client = RtmServerClient::with_config(
            1,
            "s",
            emu.endpoint(),
            ClientConfig::default().quest_timeout(Duration::from_secs(20)),
        )
        .unwrap();
        client.connect().unwrap();
        emu.server().faults().set_freeze(true);
        let quick = client.with_timeout(Duration::from_millis(200));
        let start = Instant::now();
        let err = quick
            .fpnn()
            .call("getVoiceRoomList", Value::Map(vec![]))
            .unwrap_err();
        assert!(err.is_timeout(), "{err}");
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "waited {:?}",
            start.elapsed()
        );
        let start = Instant::now();
        assert!(quick.get_voice_room_list().unwrap_err().is_timeout());
        assert!(start.elapsed() < Duration::from_secs(3));
        // The handle without a per-call timeout keeps the default.
        assert_eq!(client.fpnn().timeout(), None);
    });
}

#[test]
fn event_handlers_that_use_the_client_do_not_keep_it_alive() {
    let _serial = serial();
    watchdog(Duration::from_secs(60), || {
        let emu = RtmEmulator::start(1, "s").unwrap();
        assert!(
            wait_until(Duration::from_secs(10), || client_threads() == 0),
            "threads of an earlier test: {:?}",
            threads_named(&["fpnn", "emu-conn"])
        );
        let seen = Arc::new(AtomicUsize::new(0));
        let clients: Vec<RtmServerClient> = (0..5)
            .map(|_| {
                let client = RtmServerClient::new(1, "s", emu.endpoint()).unwrap();
                let seen = seen.clone();
                client.set_event_handler(move |client, event| {
                    if let ConnectionEvent::Connected { .. } = event {
                        // The natural code: use the client from the handler.
                        client.get_voice_room_list_with_callback(|_| {});
                        seen.fetch_add(1, Ordering::SeqCst);
                    }
                });
                client.connect().unwrap();
                client
            })
            .collect();
        assert!(wait_until(Duration::from_secs(10), || seen
            .load(Ordering::SeqCst)
            == 5));
        drop(clients);
        assert!(
            wait_until(Duration::from_secs(10), || client_threads() == 0),
            "threads left: {:?}",
            threads_named(&["fpnn", "emu-conn"])
        );
        assert!(wait_until(Duration::from_secs(10), || emu
            .server()
            .connections()
            .is_empty()));
    });
}

/// A quest lost with its connection is resent once, within the call's one
/// deadline: the resend gets what is left of the timeout, not a new one.
#[test]
fn the_resend_shares_the_calls_deadline() {
    use rtm_server_sdk::emulator::{FpnnServer, Reply, ServerOptions};
    let _serial = serial();
    watchdog(Duration::from_secs(30), || {
        let server = FpnnServer::start(
            |_: &_, _: &_| Reply::After(Duration::from_millis(700), Box::new(Reply::Close)),
            ServerOptions::new(),
        )
        .unwrap();
        let client = RtmServerClient::new(1, "s", server.endpoint()).unwrap();
        client.connect().unwrap();
        let quick = client.with_timeout(Duration::from_millis(1000));
        let start = Instant::now();
        let err = quick.get_voice_room_list().unwrap_err();
        let took = start.elapsed();
        // The first attempt fails after 0.7 s; the resend has 0.3 s left.
        assert!(err.is_timeout(), "{err}");
        assert!(took < Duration::from_millis(1400), "took {took:?}");
        assert!(took >= Duration::from_millis(900), "took {took:?}");
        let (tx, rx) = std::sync::mpsc::channel();
        let start = Instant::now();
        quick.get_voice_room_list_with_callback(move |r| {
            let _ = tx.send((r, start.elapsed()));
        });
        let (r, took) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(r.unwrap_err().is_timeout());
        assert!(took < Duration::from_millis(1400), "took {took:?}");
    });
}
