//! What a caller is told: a quest whose answer was lost is never reported
//! as "cannot connect", `connect()` leaves no dial behind for the next
//! call, and a weak handle does not keep a client alive.

mod common;

use std::io::Read;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{stalled_endpoint, via_callback, wait_until, watchdog};
use rtm_server_sdk::emulator::RtmEmulator;
use rtm_server_sdk::fpnn::{ConnectionEvent, FpnnClient, QuestReply, WeakFpnnClient};
use rtm_server_sdk::rtm::{PushHandler, PushMessage, SendOptions};
use rtm_server_sdk::{ClientConfig, Delivery, Error, RtmServerClient, Value, WeakRtmServerClient};

const PID: i64 = 11000001;
const SECRET: &str = "secret";

/// A proxy on 127.0.0.1:0 in front of `upstream`, for one connection: it
/// stops listening as soon as that connection is accepted (so new
/// connections are refused), forwards what the client sends, drops the
/// first bytes the server answers, and then cuts the client's connection.
fn answer_losing_proxy(upstream: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = listener.local_addr().unwrap().to_string();
    thread::spawn(move || {
        let Ok((client, _)) = listener.accept() else {
            return;
        };
        drop(listener);
        let server = TcpStream::connect(upstream).unwrap();
        let (mut from_client, mut to_server) =
            (client.try_clone().unwrap(), server.try_clone().unwrap());
        thread::spawn(move || {
            let _ = std::io::copy(&mut from_client, &mut to_server);
        });
        // The first bytes from the server are the answer: lost.
        let mut answer = [0u8; 4096];
        let _ = (&server).read(&mut answer);
        let _ = client.shutdown(Shutdown::Both);
        let _ = server.shutdown(Shutdown::Both);
    });
    endpoint
}

/// An emulator and an RTM client that reaches it through an
/// [`answer_losing_proxy`].
fn behind_losing_proxy() -> (RtmEmulator, RtmServerClient) {
    let emu = RtmEmulator::start(PID, SECRET).unwrap();
    let proxy = answer_losing_proxy(emu.endpoint());
    let config = ClientConfig::default()
        .quest_timeout(Duration::from_secs(5))
        .reconnect(None);
    let client = RtmServerClient::with_config(PID, SECRET, proxy, config).unwrap();
    (emu, client)
}

/// The outcome of a send whose answer was lost and whose resend found the
/// server unreachable: the lost answer, not the resend's connect error.
fn assert_lost_answer(err: &Error, emu: &RtmEmulator) {
    assert_ne!(
        err.code(),
        Some(rtm_server_sdk::codes::FPNN_EC_CORE_INVALID_CONNECTION),
        "a processed quest reported as `cannot connect`: {err}"
    );
    assert!(matches!(err, Error::ConnectionClosed { .. }), "{err:?}");
    assert_eq!(err.delivery(), Delivery::MayHaveBeenProcessed, "{err:?}");
    assert!(err.may_have_been_processed());
    // The server did process it: the message is stored, once.
    assert_eq!(emu.message_count(), 1);
}

#[test]
fn a_lost_answer_is_not_reported_as_cannot_connect() {
    watchdog(Duration::from_secs(30), || {
        let (emu, client) = behind_losing_proxy();
        let err = client
            .send_message(1001, 1002, 51, "hello", &SendOptions::default())
            .unwrap_err();
        assert_lost_answer(&err, &emu);
    });
}

#[test]
fn a_lost_answer_is_not_reported_as_cannot_connect_with_callback() {
    watchdog(Duration::from_secs(30), || {
        let (emu, client) = behind_losing_proxy();
        let err = via_callback(|cb| {
            client.send_message_with_callback(1001, 1002, 51, "hello", &SendOptions::default(), cb)
        })
        .unwrap_err();
        assert_lost_answer(&err, &emu);
    });
}

#[test]
fn what_was_never_sent_says_so() {
    watchdog(Duration::from_secs(30), || {
        // Refused: nothing listens on a port that was just released.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = RtmServerClient::new(PID, SECRET, format!("127.0.0.1:{port}")).unwrap();
        let err = client.get_voice_room_list().unwrap_err();
        assert!(matches!(err, Error::Connect { .. }), "{err:?}");
        assert_eq!(err.delivery(), Delivery::NotSent);
        assert!(!err.may_have_been_processed());

        // No answer in time: it may have been processed.
        let emu = RtmEmulator::start(PID, SECRET).unwrap();
        emu.faults().set_delay("*", Duration::from_secs(2));
        let client = RtmServerClient::new(PID, SECRET, emu.endpoint()).unwrap();
        let err = client
            .with_timeout(Duration::from_millis(200))
            .get_voice_room_list()
            .unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
        assert_eq!(err.delivery(), Delivery::MayHaveBeenProcessed);

        // An answer: the server's word.
        emu.faults().clear();
        emu.faults().set_fail("*", 200040);
        let err = client.get_voice_room_list().unwrap_err();
        assert_eq!(err.delivery(), Delivery::Answered);
    });
}

/// Counts the `ConnectFailed` events of a client.
fn count_failed_connects(client: &FpnnClient) -> Arc<AtomicUsize> {
    let failed = Arc::new(AtomicUsize::new(0));
    let counter = failed.clone();
    client.set_event_handler(move |_, event| {
        if matches!(event, ConnectionEvent::ConnectFailed { .. }) {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    failed
}

const CONNECT_TIMEOUT: Duration = Duration::from_millis(800);

fn stalling_config() -> ClientConfig {
    ClientConfig::default()
        .connect_timeout(CONNECT_TIMEOUT)
        .quest_timeout(Duration::from_secs(10))
        .reconnect(None)
}

/// `connect()`, then a call at once: each makes an attempt of its own
/// (the call does not inherit `connect()`'s attempt and its failure).
fn connect_then_call(connect: impl Fn() -> rtm_server_sdk::Result<()>, call: impl Fn() -> Error) {
    let started = Instant::now();
    let err = connect().unwrap_err();
    assert!(matches!(err, Error::ConnectTimeout { .. }), "{err:?}");
    assert!(
        started.elapsed() >= CONNECT_TIMEOUT,
        "{:?}",
        started.elapsed()
    );
    let started = Instant::now();
    let err = call();
    let took = started.elapsed();
    assert!(matches!(err, Error::ConnectTimeout { .. }), "{err:?}");
    assert!(
        took >= CONNECT_TIMEOUT - Duration::from_millis(50),
        "the call inherited connect()'s attempt: it failed after {took:?}"
    );
}

#[test]
fn connect_leaves_no_dial_behind_for_the_next_call() {
    watchdog(Duration::from_secs(60), || {
        let stalled = stalled_endpoint();
        let client = FpnnClient::new(stalled.endpoint.clone(), stalling_config()).unwrap();
        let failed = count_failed_connects(&client);
        let rounds = 3;
        for _ in 0..rounds {
            connect_then_call(
                || client.connect(),
                || client.call("m", Value::Map(vec![])).unwrap_err(),
            );
        }
        assert!(wait_until(Duration::from_secs(5), || failed
            .load(Ordering::SeqCst)
            == 2 * rounds));
        thread::sleep(Duration::from_millis(50));
        assert_eq!(failed.load(Ordering::SeqCst), 2 * rounds);
    });
}

#[test]
fn rtm_connect_leaves_no_dial_behind_for_the_next_call() {
    watchdog(Duration::from_secs(60), || {
        let stalled = stalled_endpoint();
        let client =
            RtmServerClient::with_config(PID, SECRET, stalled.endpoint.clone(), stalling_config())
                .unwrap();
        connect_then_call(
            || client.connect(),
            || client.get_voice_room_list().unwrap_err(),
        );
    });
}

/// Holds only a weak handle to the client.
struct KeepsWeak(WeakRtmServerClient);

impl PushHandler for KeepsWeak {
    fn on_message(&self, _: &RtmServerClient, _: &PushMessage) {
        let _ = self.0.upgrade();
    }
}

#[test]
fn a_handler_holding_a_weak_handle_lets_the_client_close() {
    watchdog(Duration::from_secs(30), || {
        let emu = RtmEmulator::start(PID, SECRET).unwrap();
        let clients: Vec<RtmServerClient> = (0..10)
            .map(|_| RtmServerClient::new(PID, SECRET, emu.endpoint()).unwrap())
            .collect();
        let mut weak = Vec::new();
        for client in &clients {
            client.set_push_handler(KeepsWeak(client.downgrade()));
            client.connect().unwrap();
            weak.push(client.downgrade());
        }
        let open = || emu.server().connections().len();
        assert!(wait_until(Duration::from_secs(5), || open() == 10));
        assert!(weak.iter().all(|w| w.upgrade().is_some()));
        drop(clients); // without close()
        assert!(
            wait_until(Duration::from_secs(5), || open() == 0),
            "{} connections left open",
            open()
        );
        assert!(weak.iter().all(|w| w.upgrade().is_none()));
    });
}

#[test]
fn a_quest_handler_holding_a_weak_handle_lets_the_client_close() {
    watchdog(Duration::from_secs(30), || {
        let emu = RtmEmulator::start(PID, SECRET).unwrap();
        let client = FpnnClient::new(emu.endpoint(), ClientConfig::default()).unwrap();
        let weak: WeakFpnnClient = client.downgrade();
        client.set_quest_handler(move |_: &FpnnClient, _: &str, _: &Value, _: bool| {
            let _ = weak.upgrade();
            QuestReply::Unhandled
        });
        client.connect().unwrap();
        let weak = client.downgrade();
        let open = || emu.server().connections().len();
        assert!(wait_until(Duration::from_secs(5), || open() == 1));
        drop(client);
        assert!(
            wait_until(Duration::from_secs(5), || open() == 0),
            "the connection was left open"
        );
        assert!(weak.upgrade().is_none());
    });
}
