//! Staying connected, under faults injected into the emulator: a killed and
//! restarted server, a silent half-open server, refused connections, and
//! pushes under load. Every test is bounded in time.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{map, wait_until, watchdog};
use crossbeam_channel::unbounded;
use rmpv::Value;
use rtm_server_sdk::emulator::{FpnnServer, Reply, RtmEmulator, ServerOptions};
use rtm_server_sdk::fpnn::{ConnectionEvent, KeepaliveConfig, ReconnectStrategy};
use rtm_server_sdk::rtm::{
    ListenStatus, ListenTargets, MessageBody, PushEvent, PushHandler, PushMessage,
};
use rtm_server_sdk::{ClientConfig, FpnnClient, RtmServerClient};

const PID: i64 = 11000001;
const SECRET: &str = "fault-secret";

fn fast_reconnect() -> ReconnectStrategy {
    ReconnectStrategy::default()
        .flash_window(Duration::from_millis(10))
        .immediate_attempts(2)
        .first_interval(Duration::from_millis(100))
        .max_interval(Duration::from_millis(300))
        .linear_steps(2)
}

fn rtm_client(endpoint: String, config: ClientConfig) -> RtmServerClient {
    RtmServerClient::with_config(PID, SECRET, endpoint, config).unwrap()
}

#[test]
fn killed_and_restarted_server_calls_fail_once_and_listen_state_is_restored() {
    watchdog(Duration::from_secs(30), || {
        let mut emu = RtmEmulator::start(PID, SECRET).unwrap();
        let addr = emu.local_addr();
        let client = rtm_client(
            emu.endpoint(),
            ClientConfig::default()
                .connect_timeout(Duration::from_secs(2))
                .reconnect(fast_reconnect()),
        );
        client
            .add_listen(
                &ListenTargets::new()
                    .groups([1, 2])
                    .rooms([3])
                    .events(["login"]),
            )
            .unwrap();
        client
            .set_listen_status(ListenStatus {
                rooms: true,
                ..Default::default()
            })
            .unwrap();
        client
            .remove_listen(&ListenTargets::new().groups([2]))
            .unwrap();
        let expected = client.listen_state();
        assert_eq!(expected.gids.iter().copied().collect::<Vec<_>>(), vec![1]);
        assert!(expected.all_rooms);

        // Calls in flight when the server dies.
        emu.server()
            .faults()
            .set_answer_delay(Duration::from_secs(5));
        let completions = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = unbounded();
        for _ in 0..10 {
            let tx = tx.clone();
            let completions = completions.clone();
            client.get_voice_room_list_with_callback(move |r| {
                completions.fetch_add(1, Ordering::SeqCst);
                tx.send(r).unwrap();
            });
        }
        let blocked: Vec<_> = (0..4)
            .map(|_| {
                let c = client.clone();
                thread::spawn(move || c.get_voice_room_list())
            })
            .collect();
        assert!(wait_until(Duration::from_secs(5), || client
            .fpnn()
            .pending_calls()
            == 14));
        emu.stop();
        for b in blocked {
            let err = b.join().unwrap().unwrap_err();
            assert!(err.is_connection_error(), "{err:?}");
        }
        for _ in 0..10 {
            let err = rx
                .recv_timeout(Duration::from_secs(5))
                .unwrap()
                .unwrap_err();
            assert!(err.is_connection_error(), "{err:?}");
        }
        thread::sleep(Duration::from_millis(200));
        assert_eq!(completions.load(Ordering::SeqCst), 10, "each callback once");

        // The server comes back on the same port; the client reconnects by
        // itself and restores its listen state before anything else.
        let emu = RtmEmulator::start_with(PID, SECRET, ServerOptions::new().addr(addr)).unwrap();
        assert!(
            wait_until(Duration::from_secs(10), || client.fpnn().is_connected()),
            "reconnected in the background"
        );
        assert!(wait_until(Duration::from_secs(5), || !emu
            .listen_state()
            .is_empty()));
        let restored = emu.listen_state().pop().unwrap();
        assert_eq!(restored.gids, expected.gids);
        assert_eq!(restored.rids, expected.rids);
        assert_eq!(restored.events, expected.events);
        assert!(restored.uids.is_empty());
        assert!(restored.room && !restored.group && !restored.p2p && !restored.ev);
        // The restore came first, as arrays, and later calls succeed.
        assert!(client.get_voice_room_list().unwrap().is_empty());
        let received = emu.received();
        assert_eq!(received[0].0, "setlisten");
        assert!(matches!(
            rtm_server_sdk::fpnn::codec::map_get(&received[0].1, "gids"),
            Some(Value::Array(_))
        ));
        assert_eq!(received[1].0, "setlisten");
        assert_eq!(received[2].0, "getVoiceRoomList");
    });
}

#[test]
fn a_silent_half_open_server_is_detected_by_keepalive() {
    watchdog(Duration::from_secs(30), || {
        let server = FpnnServer::start(
            |_: &_, _: &_| Reply::Answer(Value::Map(vec![])),
            ServerOptions::default(),
        )
        .unwrap();
        let keepalive = KeepaliveConfig::default()
            .interval(Duration::from_millis(100))
            .timeout(Duration::from_millis(100))
            .max_retries(2);
        let client = FpnnClient::new(
            server.endpoint(),
            ClientConfig::default()
                .keepalive(keepalive)
                .reconnect(fast_reconnect())
                .connect_timeout(Duration::from_secs(2)),
        )
        .unwrap();
        client.call("x", Value::Map(vec![])).unwrap();
        // While idle, pings keep the connection alive.
        thread::sleep(Duration::from_millis(500));
        assert_eq!(server.connection_count(), 1);
        assert!(server.received().iter().any(|(m, _)| m == "*ping"));

        server.faults().set_freeze(true);
        let t0 = Instant::now();
        let err = client
            .call_timeout("x", Value::Map(vec![]), Duration::from_secs(20))
            .unwrap_err();
        let took = t0.elapsed();
        assert!(err.is_connection_error(), "{err:?}");
        // Lost after interval + timeout * retries = 300 ms of silence, far
        // from the call's 20 s timeout.
        assert!(took < Duration::from_secs(2), "{took:?}");

        server.faults().set_freeze(false);
        assert!(wait_until(Duration::from_secs(10), || client
            .call("x", Value::Map(vec![]))
            .is_ok()));
    });
}

#[test]
fn refused_connections_follow_the_back_off_schedule_and_close_stops_them() {
    watchdog(Duration::from_secs(30), || {
        let mut server = FpnnServer::start(
            |_: &_, _: &_| Reply::Answer(Value::Map(vec![])),
            ServerOptions::default(),
        )
        .unwrap();
        let client = FpnnClient::new(
            server.endpoint(),
            ClientConfig::default().reconnect(fast_reconnect()),
        )
        .unwrap();
        let events = Arc::new(Mutex::new(Vec::<(Instant, ConnectionEvent)>::new()));
        let sink = events.clone();
        client.set_event_handler(move |e| sink.lock().unwrap().push((Instant::now(), e.clone())));
        client.connect().unwrap();
        thread::sleep(Duration::from_millis(50));
        server.stop();
        // Closed, then failed attempts: immediately twice, then after
        // 100 ms + 1 step (200 ms), then capped at 300 ms.
        assert!(wait_until(Duration::from_secs(10), || events
            .lock()
            .unwrap()
            .len()
            >= 8));
        client.close();
        let count_at_close = events.lock().unwrap().len();
        thread::sleep(Duration::from_millis(800));
        let events = events.lock().unwrap().clone();
        assert!(
            events.len() <= count_at_close + 1,
            "attempts continued after close: {} -> {}",
            count_at_close,
            events.len()
        );
        assert!(
            matches!(events[0].1, ConnectionEvent::Connected { .. }),
            "{events:?}"
        );
        match &events[1].1 {
            ConnectionEvent::Closed {
                error: Some(_),
                will_reconnect: true,
                ..
            } => {}
            other => panic!("{other:?}"),
        }
        let failures: Vec<Instant> = events[2..]
            .iter()
            .filter_map(|(t, e)| match e {
                ConnectionEvent::ConnectFailed { will_reconnect, .. } => {
                    // Only the one racing with close() may say otherwise.
                    let _ = will_reconnect;
                    Some(*t)
                }
                ConnectionEvent::Closed { error: None, .. } => None,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert!(failures.len() >= 5, "{events:?}");
        let gaps: Vec<u128> = failures
            .windows(2)
            .map(|w| (w[1] - w[0]).as_millis())
            .collect();
        // failed=1 and 2: immediate; 3: 200 ms; 4 and later: 300 ms.
        let expected = [0u128, 0, 200, 300, 300, 300, 300];
        for (i, gap) in gaps.iter().enumerate().take(expected.len()) {
            let want = expected[i];
            assert!(
                *gap + 20 >= want && *gap < want + 150,
                "gap {i} was {gap} ms, expected about {want} ms (all gaps {gaps:?})"
            );
        }
    });
}

#[derive(Default)]
struct Recorder {
    messages: Mutex<Vec<PushMessage>>,
    events: Mutex<Vec<PushEvent>>,
    pings: AtomicUsize,
}

struct Handler(Arc<Recorder>);

impl PushHandler for Handler {
    fn on_message(&self, _: &RtmServerClient, m: &PushMessage) {
        self.0.messages.lock().unwrap().push(m.clone());
    }
    fn on_room_message(&self, _: &RtmServerClient, m: &PushMessage) {
        self.0.messages.lock().unwrap().push(m.clone());
    }
    fn on_event(&self, _: &RtmServerClient, e: &PushEvent) {
        self.0.events.lock().unwrap().push(e.clone());
    }
    fn on_ping(&self, _: &RtmServerClient) {
        self.0.pings.fetch_add(1, Ordering::SeqCst);
    }
}

fn pushmsg(mid: i64, binary: bool) -> Value {
    map(vec![
        ("from", Value::from(7)),
        ("to", Value::from(8)),
        ("mtype", Value::from(30)),
        ("mid", Value::from(mid)),
        (
            "msg",
            if binary {
                Value::Binary(vec![0, 1, 2, 255])
            } else {
                Value::from(format!("hello {mid}"))
            },
        ),
        ("attrs", Value::from("")),
        ("mtime", Value::from(1_600_000_000_000i64 + mid)),
    ])
}

#[test]
fn pushes_under_load_are_answered_and_delivered_once() {
    watchdog(Duration::from_secs(60), || {
        let emu = RtmEmulator::start(PID, SECRET).unwrap();
        let client = rtm_client(emu.endpoint(), ClientConfig::default());
        let recorder = Arc::new(Recorder::default());
        client.set_push_handler(Handler(recorder.clone()));
        client.pull_into_voice_room(1, &[1]).unwrap();

        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let workers: Vec<_> = (0..16)
            .map(|_| {
                let c = client.clone();
                let stop = stop.clone();
                thread::spawn(move || {
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        assert_eq!(c.get_voice_room_member_count(1).unwrap(), 1);
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        // 300 distinct messages, each pushed twice (the second is a
        // duplicate), plus pings and events.
        for mid in 0..300 {
            for _ in 0..2 {
                for r in emu.push_to_all("pushmsg", pushmsg(mid, mid % 3 == 0)) {
                    assert_eq!(r.unwrap(), Value::Map(vec![]));
                }
            }
            if mid % 50 == 0 {
                for r in emu.push_to_all("ping", Value::Map(vec![])) {
                    assert_eq!(r.unwrap(), Value::Map(vec![]));
                }
                let ev = map(vec![
                    ("pid", Value::from(PID)),
                    ("event", Value::from("login")),
                    ("uid", Value::from(mid)),
                    ("time", Value::from(1_600_000_000)),
                    ("endpoint", Value::from("1.2.3.4:5")),
                ]);
                for r in emu.push_to_all("pushevent", ev) {
                    r.unwrap();
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        let calls: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
        assert!(calls > 0);
        assert!(wait_until(Duration::from_secs(5), || recorder
            .messages
            .lock()
            .unwrap()
            .len()
            >= 300));
        thread::sleep(Duration::from_millis(100));
        let messages = recorder.messages.lock().unwrap();
        assert_eq!(messages.len(), 300, "each message delivered once");
        let mids: HashSet<i64> = messages.iter().map(|m| m.mid).collect();
        assert_eq!(mids.len(), 300);
        let m0 = messages.iter().find(|m| m.mid == 0).unwrap();
        assert_eq!(m0.body, MessageBody::Binary(vec![0, 1, 2, 255]));
        let m1 = messages.iter().find(|m| m.mid == 1).unwrap();
        assert_eq!(m1.body.as_text(), Some("hello 1"));
        assert_eq!((m1.from, m1.to, m1.mtype), (7, 8, 30));
        assert_eq!(recorder.events.lock().unwrap().len(), 6);
        assert_eq!(recorder.pings.load(Ordering::SeqCst), 6);
        // A malformed push is answered with an error, and nothing breaks.
        for r in emu.push_to_all("pushmsg", map(vec![("from", Value::from("x"))])) {
            assert_eq!(r.unwrap_err().code(), Some(10010));
        }
        assert_eq!(client.get_voice_room_member_count(1).unwrap(), 1);
    });
}

#[test]
fn pushes_are_answered_without_a_handler() {
    watchdog(Duration::from_secs(20), || {
        let emu = RtmEmulator::start(PID, SECRET).unwrap();
        let client = rtm_client(emu.endpoint(), ClientConfig::default());
        client.connect().unwrap();
        assert!(wait_until(Duration::from_secs(5), || !emu
            .server()
            .connections()
            .is_empty()));
        for method in ["ping", "pushmsg"] {
            let payload = if method == "ping" {
                Value::Map(vec![])
            } else {
                pushmsg(1, false)
            };
            for r in emu.push_to_all(method, payload) {
                assert_eq!(r.unwrap(), Value::Map(vec![]));
            }
        }
        for r in emu.push_to_all("nosuchpush", Value::Map(vec![])) {
            assert_eq!(r.unwrap_err().code(), Some(20004));
        }
    });
}

#[test]
fn close_cuts_a_connect_in_progress_short() {
    watchdog(Duration::from_secs(30), || {
        let emu = RtmEmulator::start(PID, SECRET).unwrap();
        let client = rtm_client(
            emu.endpoint(),
            ClientConfig::default()
                .connect_timeout(Duration::from_secs(20))
                .reconnect(fast_reconnect()),
        );
        client
            .add_listen(&ListenTargets::new().groups([1]))
            .unwrap();
        // The server stops answering and drops the connection: the
        // background reconnect then hangs in the listen restore (which waits
        // up to the 20 s connect timeout).
        emu.server().faults().set_freeze(true);
        for c in emu.server().connections() {
            c.close();
        }
        assert!(wait_until(Duration::from_secs(5), || emu
            .server()
            .received()
            .iter()
            .filter(|(m, _)| m == "setlisten")
            .count()
            >= 1));
        let t0 = Instant::now();
        client.close();
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "close took {:?}",
            t0.elapsed()
        );
        assert!(client.get_voice_room_list().unwrap_err().is_client_closed());
    });
}

#[test]
fn dropping_the_rtm_client_completes_pending_callbacks_once() {
    watchdog(Duration::from_secs(30), || {
        let emu = RtmEmulator::start(PID, SECRET).unwrap();
        let client = rtm_client(emu.endpoint(), ClientConfig::default());
        client.connect().unwrap();
        emu.server()
            .faults()
            .set_answer_delay(Duration::from_secs(10));
        let (tx, rx) = unbounded();
        for _ in 0..100 {
            let tx = tx.clone();
            client.get_voice_room_list_with_callback(move |r| tx.send(r).unwrap());
        }
        assert!(wait_until(Duration::from_secs(5), || client
            .fpnn()
            .pending_calls()
            == 100));
        let t0 = Instant::now();
        drop(client);
        assert!(t0.elapsed() < Duration::from_secs(2));
        for _ in 0..100 {
            let err = rx
                .recv_timeout(Duration::from_secs(2))
                .unwrap()
                .unwrap_err();
            // Not resent: the client is gone.
            assert!(
                matches!(err, rtm_server_sdk::Error::ConnectionClosed { .. }),
                "{err:?}"
            );
        }
        drop(tx);
        assert!(rx.recv().is_err(), "no callback ran twice");
    });
}
