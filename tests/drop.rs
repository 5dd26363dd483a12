//! Dropping a client with 10,000 callbacks pending. In its own test binary so
//! that the thread count of the process belongs to this test alone.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{thread_count, wait_until, watchdog};
use rmpv::Value;
use rtm_server_sdk::emulator::{FpnnServer, Reply, ServerOptions};
use rtm_server_sdk::fpnn::{ClientConfig, FpnnClient};
use rtm_server_sdk::Error;

#[test]
fn drop_completes_10000_pending_callbacks_and_joins_threads() {
    watchdog(Duration::from_secs(60), || {
        let server =
            FpnnServer::start(|_: &_, _: &_| Reply::None, ServerOptions::default()).unwrap();
        let before = thread_count();
        let client = FpnnClient::new(server.endpoint(), ClientConfig::default()).unwrap();
        client.connect().unwrap();
        assert!(thread_count() > before, "the client runs threads");
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
            "threads left: {} (before: {before})",
            thread_count()
        );
    });
}
