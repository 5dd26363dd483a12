//! The threads a client costs, counted by name at each stage. One test in
//! its own binary: nothing else starts client threads meanwhile.

mod common;

use std::time::Duration;

use common::{threads_named, wait_until, watchdog};
use rtm_server_sdk::emulator::RtmEmulator;
use rtm_server_sdk::rtm::FileOptions;
use rtm_server_sdk::RtmServerClient;

/// The client's threads: `fpnn-<id>-...` (not the process-wide
/// `fpnn-late`).
fn client_threads() -> Vec<String> {
    threads_named(&["fpnn-"])
        .into_iter()
        .filter(|n| !n.starts_with("fpnn-late"))
        .collect()
}

fn expect(n: usize, stage: &str) {
    assert!(
        wait_until(Duration::from_secs(10), || client_threads().len() == n),
        "{stage}: expected {n} client threads, got {:?}",
        client_threads()
    );
}

#[test]
fn threads_at_each_stage() {
    watchdog(Duration::from_secs(60), || {
        let emu = RtmEmulator::start(1, "s").unwrap();
        expect(0, "before");
        let client = RtmServerClient::new(1, "s", emu.endpoint()).unwrap();
        // Two callback threads, the timer, the supervisor.
        expect(4, "new");
        client.connect().unwrap();
        // Plus the connection's reader and writer.
        expect(6, "connected");
        client.set_file_gate_idle(Duration::from_secs(60));
        client
            .send_file(1001, 1002, b"hello", &FileOptions::default())
            .unwrap();
        assert_eq!(client.file_gate_count(), 1);
        // The gate connection adds its reader and writer only.
        expect(8, "after a file send");
        assert_eq!(threads_named(&["rtm-file-gates"]).len(), 1);
        let names = client_threads();
        assert_eq!(
            names.iter().filter(|n| n.contains("-reader-")).count(),
            2,
            "{names:?}"
        );
        assert_eq!(
            names.iter().filter(|n| n.contains("-writer-")).count(),
            2,
            "{names:?}"
        );
        // The gate idles out: its threads go.
        client.set_file_gate_idle(Duration::from_millis(1));
        assert!(wait_until(Duration::from_secs(10), || client
            .file_gate_count()
            == 0));
        expect(6, "after the gate idled out");
        // A callback-form file send too.
        client.set_file_gate_idle(Duration::from_secs(60));
        common::via_callback(|cb| {
            client.send_file_with_callback(1001, 1002, b"hi", &FileOptions::default(), cb)
        })
        .unwrap();
        expect(8, "after a callback file send");
        let stats = client.stats();
        // Two `filetoken` calls and two uploads, on the same counters.
        assert_eq!((stats.calls_started, stats.calls_ok), (4, 4), "{stats}");
        assert_eq!(stats.connects, 3, "{stats}");
        client.close();
        expect(0, "closed");
    });
}
