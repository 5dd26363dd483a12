//! Dropping clients: with 10,000 callbacks pending, and with handlers that
//! call the client. In their own test binary so that the thread count of the
//! process belongs to these tests alone (they run one at a time).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::{threads_named, wait_until, watchdog};
use rmpv::Value;
use rtm_server_sdk::emulator::{FpnnServer, Reply, ServerOptions};
use rtm_server_sdk::fpnn::{ClientConfig, ConnectionEvent, FpnnClient, QuestReply};
use rtm_server_sdk::Error;

/// The tests of this binary count the crate's threads: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Takes the turn, once the threads of the test before (a detached dial
/// thread may end just after its client) are gone.
fn serial() -> MutexGuard<'static, ()> {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    assert!(
        wait_until(Duration::from_secs(10), || threads_named(&["fpnn", "emu-"])
            .is_empty()),
        "threads of an earlier test: {:?}",
        threads_named(&["fpnn", "emu-"])
    );
    guard
}

/// The names of this process's threads that start with one of `prefixes`.
/// The threads that come and go with clients: the clients' own
/// (`fpnn-...`) and the emulator's connection threads (`emu-conn-...`).
/// Only these are counted: the test harness starts and ends threads of
/// its own (one per test) at any time, and a thread is named by itself
/// once it runs (the emulator's timer and accept threads, started with the
/// server, may not be named yet when a test starts counting).
fn client_threads() -> Vec<String> {
    threads_named(&["fpnn", "emu-conn"])
}

fn thread_count() -> usize {
    client_threads().len()
}

#[test]
fn drop_completes_10000_pending_callbacks_and_joins_threads() {
    let _serial = serial();
    watchdog(Duration::from_secs(60), || {
        let server =
            FpnnServer::start(|_: &_, _: &_| Reply::None, ServerOptions::default()).unwrap();
        let before = thread_count();
        let client = FpnnClient::new(server.endpoint(), ClientConfig::default()).unwrap();
        client.connect().unwrap();
        assert!(
            wait_until(Duration::from_secs(10), || thread_count() > before),
            "the client runs threads"
        );
        let ok = Arc::new(AtomicUsize::new(0));
        let other = Arc::new(AtomicUsize::new(0));
        for _ in 0..10_000 {
            let ok = ok.clone();
            let other = other.clone();
            client.call_with_callback("hold", Value::Map(vec![]), None, move |r| match r {
                Err(Error::ClientClosed) => {
                    ok.fetch_add(1, Ordering::SeqCst);
                }
                _ => {
                    other.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
        assert!(wait_until(Duration::from_secs(10), || client
            .pending_calls()
            == 10_000));
        let t0 = Instant::now();
        drop(client);
        let took = t0.elapsed();
        // Every callback ran before drop returned: the callback threads are
        // joined after draining their queue.
        assert_eq!(ok.load(Ordering::SeqCst), 10_000);
        assert_eq!(other.load(Ordering::SeqCst), 0);
        assert!(took < Duration::from_secs(2), "drop took {took:?}");
        // The client's own threads are joined inside drop; the server's
        // connection thread ends when it sees the socket close.
        assert!(
            wait_until(Duration::from_secs(2), || thread_count() == before),
            "threads left: {:?} (before: {before})",
            client_threads()
        );
    });
}

#[test]
fn handlers_that_call_the_client_do_not_keep_it_alive() {
    let _serial = serial();
    watchdog(Duration::from_secs(60), || {
        let server =
            FpnnServer::start(|_: &_, _: &_| Reply::ok(), ServerOptions::default()).unwrap();
        let before = thread_count();
        let calls = Arc::new(AtomicUsize::new(0));
        let clients: Vec<FpnnClient> = (0..10)
            .map(|_| {
                let client = FpnnClient::new(server.endpoint(), ClientConfig::default()).unwrap();
                // The natural code: reply to a push, or react to an event,
                // by calling the client the handler is given.
                let n = calls.clone();
                client.set_quest_handler(move |c: &FpnnClient, _: &str, _: &Value, _: bool| {
                    let n = n.clone();
                    c.call_with_callback("x", Value::Map(vec![]), None, move |_| {
                        n.fetch_add(1, Ordering::SeqCst);
                    });
                    QuestReply::empty()
                });
                client.set_event_handler(|c: &FpnnClient, e: &ConnectionEvent| {
                    let _ = (c.endpoint(), e);
                });
                client.connect().unwrap();
                client
            })
            .collect();
        assert!(wait_until(Duration::from_secs(5), || server
            .connections()
            .len()
            == 10));
        for conn in server.connections() {
            conn.push("hello", Value::Map(vec![])).unwrap();
        }
        assert!(wait_until(Duration::from_secs(5), || calls
            .load(Ordering::SeqCst)
            == 10));
        drop(clients);
        assert!(
            wait_until(Duration::from_secs(5), || thread_count() == before),
            "threads left: {:?} (before: {before})",
            client_threads()
        );
        assert!(wait_until(Duration::from_secs(5), || server
            .connections()
            .is_empty()));

        // A handler that captured a clone anyway: close() releases it.
        let client = FpnnClient::new(server.endpoint(), ClientConfig::default()).unwrap();
        let captured = client.clone();
        let alive = Arc::new(());
        let token = alive.clone();
        client.set_event_handler(move |_: &FpnnClient, _: &ConnectionEvent| {
            let _ = (&captured, &token);
        });
        client.connect().unwrap();
        client.close();
        assert_eq!(Arc::strong_count(&alive), 1, "the handler was dropped");
        drop(client);
        assert!(
            wait_until(Duration::from_secs(5), || thread_count() == before),
            "threads left: {:?} (before: {before})",
            client_threads()
        );
    });
}

#[test]
fn thread_names_tell_clients_apart() {
    let _serial = serial();
    watchdog(Duration::from_secs(30), || {
        let name_of_callback_thread = |client: &FpnnClient| {
            let (tx, rx) = std::sync::mpsc::channel();
            client.call_with_callback("x", Value::Map(vec![]), None, move |_| {
                tx.send(std::thread::current().name().map(str::to_string))
                    .unwrap()
            });
            rx.recv_timeout(Duration::from_secs(10)).unwrap().unwrap()
        };
        let a = FpnnClient::new("127.0.0.1:1", ClientConfig::default()).unwrap();
        let b = FpnnClient::new("127.0.0.1:1", ClientConfig::default()).unwrap();
        let (na, nb) = (name_of_callback_thread(&a), name_of_callback_thread(&b));
        // `fpnn-<client id>-cb-<n>`
        let prefix = |n: &str| n.split("-cb-").next().unwrap().to_string();
        assert!(na.starts_with("fpnn-") && na.contains("-cb-"), "{na}");
        assert!(nb.starts_with("fpnn-") && nb.contains("-cb-"), "{nb}");
        assert_ne!(prefix(&na), prefix(&nb), "{na} / {nb}");
    });
}
