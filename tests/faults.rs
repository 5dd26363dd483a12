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
use rtm_server_sdk::{ClientConfig, Error, FpnnClient, RtmServerClient};

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
        // Keepalive asks for the connection to be kept: without it (or a
        // listen state) nothing needs it and nothing is redialled.
        let client = FpnnClient::new(
            server.endpoint(),
            ClientConfig::default()
                .reconnect(fast_reconnect())
                .keepalive(KeepaliveConfig::default()),
        )
        .unwrap();
        let events = Arc::new(Mutex::new(Vec::<(Instant, ConnectionEvent)>::new()));
        let sink = events.clone();
        client.set_event_handler(move |_: &FpnnClient, e: &ConnectionEvent| {
            sink.lock().unwrap().push((Instant::now(), e.clone()))
        });
        client.connect().unwrap();
        thread::sleep(Duration::from_millis(50));
        server.stop();
        // Closed, then failed attempts: immediately twice, then after
        // 100 ms + 1 step (200 ms), then capped at 300 ms.
        assert!(wait_until(Duration::from_secs(20), || events
            .lock()
            .unwrap()
            .len()
            >= 10));
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
        assert!(failures.len() >= 8, "{events:?}");
        let gaps: Vec<u128> = failures
            .windows(2)
            .map(|w| (w[1] - w[0]).as_millis())
            .collect();
        // failed=1 and 2: immediate; 3: 200 ms; 4 and later: 300 ms.
        //
        // A gap is never shorter than its delay, however loaded the
        // machine: the supervisor reports a failure (the handler stamps it)
        // before it schedules the next attempt, whose failure is stamped
        // after it was made. A gap is longer by how late the threads ran;
        // on a loaded machine one of them may run very late, but not all of
        // the capped ones: the shortest of those shows the cap.
        let expected = [0u128, 0, 200, 300, 300, 300, 300];
        for (i, gap) in gaps.iter().enumerate().take(expected.len()) {
            let want = expected[i];
            assert!(
                *gap + 20 >= want && *gap < want + 2000,
                "gap {i} was {gap} ms, expected about {want} ms (all gaps {gaps:?})"
            );
        }
        let shortest_capped = gaps[3..expected.len()].iter().min().copied();
        assert!(
            shortest_capped.is_some_and(|g| g < 300 + 250),
            "the capped gaps are all longer than 300 ms: {gaps:?}"
        );
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
            assert!(err.is_client_closed(), "{err:?}");
        }
        drop(tx);
        assert!(rx.recv().is_err(), "no callback ran twice");
    });
}

// ---------------------------------------------------------------------------
// Bounds: no call waits past its bound, nothing panics on a value.
// ---------------------------------------------------------------------------

fn empty() -> Value {
    Value::Map(vec![])
}

/// A server whose `hold` is never answered and everything else is
/// answered `{}` at once.
fn hold_server() -> FpnnServer {
    FpnnServer::start(
        |_: &_, q: &rtm_server_sdk::fpnn::codec::Quest| match q.method.as_str() {
            "hold" => Reply::None,
            _ => Reply::Answer(Value::Map(vec![])),
        },
        ServerOptions::default(),
    )
    .unwrap()
}

type Events = Arc<Mutex<Vec<(Instant, ConnectionEvent)>>>;

fn record_events(client: &FpnnClient) -> Events {
    let events: Events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    client.set_event_handler(move |_: &FpnnClient, e: &ConnectionEvent| {
        sink.lock().unwrap().push((Instant::now(), e.clone()))
    });
    events
}

#[test]
fn waiting_callers_share_one_dial_and_each_returns_within_its_own_bound() {
    watchdog(Duration::from_secs(30), || {
        let stalled = common::stalled_endpoint();
        let client = FpnnClient::new(
            stalled.endpoint.clone(),
            ClientConfig::default()
                .connect_timeout(Duration::from_secs(2))
                .reconnect(None),
        )
        .unwrap();
        let events = record_events(&client);
        let t0 = Instant::now();
        let bound = Duration::from_secs(1);
        let blocked: Vec<_> = (0..8)
            .map(|_| {
                let c = client.clone();
                thread::spawn(move || {
                    let t = Instant::now();
                    let r = c.call_timeout("x", empty(), bound);
                    (t.elapsed(), r)
                })
            })
            .collect();
        // Callback calls made while connecting return at once.
        let (tx, rx) = unbounded();
        for _ in 0..20 {
            let tx = tx.clone();
            let t = Instant::now();
            client.call_with_callback("x", empty(), bound, move |r| {
                tx.send((Instant::now(), r)).unwrap()
            });
            // Blocking would take the dial's bound (1 s); the margin is for
            // a descheduled thread on a loaded machine.
            assert!(
                t.elapsed() < Duration::from_millis(400),
                "a callback call blocked for {:?}",
                t.elapsed()
            );
        }
        for b in blocked {
            let (took, r) = b.join().unwrap();
            let err = r.unwrap_err();
            assert!(matches!(err, Error::ConnectTimeout { .. }), "{err:?}");
            assert!(took < bound * 3 / 2, "a blocked caller took {took:?}");
        }
        for _ in 0..20 {
            let (at, r) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
            assert!(r.unwrap_err().is_timeout());
            assert!(
                at - t0 < bound * 3 / 2,
                "a callback came after {:?}",
                at - t0
            );
        }
        assert_eq!(client.pending_calls(), 0);
        // The one dial fails after its 2 s: one event, delivered at once.
        assert!(wait_until(Duration::from_secs(5), || events
            .lock()
            .unwrap()
            .iter()
            .any(|(_, e)| matches!(
                e,
                ConnectionEvent::ConnectFailed { .. }
            ))));
        thread::sleep(Duration::from_millis(300));
        let events = events.lock().unwrap().clone();
        assert_eq!(events.len(), 1, "one event per dial attempt: {events:?}");
        let at = events[0].0 - t0;
        assert!(
            at >= Duration::from_millis(1900) && at < Duration::from_millis(3000),
            "the ConnectFailed event came after {at:?}"
        );
        match &events[0].1 {
            ConnectionEvent::ConnectFailed {
                error,
                will_reconnect: false,
                ..
            } => assert!(error.is_timeout(), "{error:?}"),
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn close_and_drop_return_at_once_while_a_dial_is_in_progress() {
    watchdog(Duration::from_secs(30), || {
        let stalled = common::stalled_endpoint();
        let config = ClientConfig::default().connect_timeout(Duration::from_secs(10));
        let client = FpnnClient::new(stalled.endpoint.clone(), config.clone()).unwrap();
        let c2 = client.clone();
        let dialer = thread::spawn(move || c2.connect());
        thread::sleep(Duration::from_millis(200));
        let t0 = Instant::now();
        client.close();
        assert!(
            t0.elapsed() < Duration::from_secs(1),
            "close() took {:?} while a 10 s dial was in progress",
            t0.elapsed()
        );
        let err = dialer.join().unwrap().unwrap_err();
        assert!(err.is_client_closed(), "{err:?}");
        assert!(t0.elapsed() < Duration::from_secs(1));

        // Dropping the last handle, with a callback call queued.
        let client = FpnnClient::new(stalled.endpoint.clone(), config).unwrap();
        let (tx, rx) = unbounded();
        client.call_with_callback("x", empty(), None, move |r| tx.send(r).unwrap());
        thread::sleep(Duration::from_millis(200));
        let t0 = Instant::now();
        drop(client);
        assert!(
            t0.elapsed() < Duration::from_secs(1),
            "drop took {:?}",
            t0.elapsed()
        );
        let err = rx
            .recv_timeout(Duration::from_secs(1))
            .unwrap()
            .unwrap_err();
        assert!(err.is_client_closed(), "{err:?}");
    });
}

#[test]
fn callback_calls_made_while_disconnected_are_queued_then_sent() {
    watchdog(Duration::from_secs(30), || {
        let server = hold_server();
        let client = FpnnClient::new(server.endpoint(), ClientConfig::default()).unwrap();
        let (tx, rx) = unbounded();
        for _ in 0..50 {
            let tx = tx.clone();
            client.call_with_callback("x", empty(), None, move |r| tx.send(r).unwrap());
        }
        for _ in 0..50 {
            let r = rx.recv_timeout(Duration::from_secs(5)).unwrap();
            assert_eq!(r.unwrap(), empty());
        }
        assert_eq!(server.connection_count(), 1, "one dial for all of them");
        assert_eq!(client.pending_calls(), 0);
    });
}

#[test]
fn huge_durations_never_panic_and_the_timer_keeps_working() {
    watchdog(Duration::from_secs(30), || {
        let server = hold_server();
        let client = FpnnClient::new(
            server.endpoint(),
            ClientConfig::default()
                .connect_timeout(Duration::MAX)
                .quest_timeout(Duration::MAX)
                .keepalive(
                    KeepaliveConfig::default()
                        .interval(Duration::MAX)
                        .timeout(Duration::MAX)
                        .max_retries(u32::MAX),
                )
                .reconnect(
                    ReconnectStrategy::default()
                        .first_interval(Duration::MAX)
                        .max_interval(Duration::MAX)
                        .flash_window(Duration::MAX),
                ),
        )
        .unwrap();
        client.connect().unwrap();
        assert_eq!(
            client.call_timeout("x", empty(), Duration::MAX).unwrap(),
            empty()
        );
        assert_eq!(
            client
                .with_timeout(Duration::MAX)
                .call("x", empty())
                .unwrap(),
            empty()
        );
        let (tx, rx) = unbounded();
        let tx2 = tx.clone();
        client.call_with_callback("x", empty(), Duration::MAX, move |r| tx2.send(r).unwrap());
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(5)).unwrap().unwrap(),
            empty()
        );
        // The timer still expires callbacks after all of that.
        thread::sleep(Duration::from_millis(100));
        let t0 = Instant::now();
        client.call_with_callback("hold", empty(), Duration::from_millis(200), move |r| {
            tx.send(r).unwrap()
        });
        let err = rx
            .recv_timeout(Duration::from_secs(5))
            .unwrap()
            .unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
        assert!(t0.elapsed() < Duration::from_millis(300) * 3 / 2 + Duration::from_millis(200));
        // A server that closes the connection: the huge back-off does not
        // panic the supervisor (keepalive is on: it redials at once, the
        // first attempts are immediate).
        assert!(wait_until(Duration::from_secs(5), || server
            .connections()
            .len()
            == 1));
        for c in server.connections() {
            c.close();
        }
        assert!(wait_until(Duration::from_secs(5), || server
            .connection_count()
            == 2));
        assert_eq!(client.call("x", empty()).unwrap(), empty());
    });
}

#[test]
fn zero_means_the_default_everywhere() {
    watchdog(Duration::from_secs(30), || {
        let server = hold_server();
        let client = FpnnClient::new(
            server.endpoint(),
            ClientConfig::default()
                .connect_timeout(Duration::ZERO)
                .quest_timeout(Duration::ZERO)
                .callback_threads(0)
                .max_pending(0),
        )
        .unwrap();
        client.connect().unwrap();
        let config = client.config();
        assert_eq!(
            config.connect_timeout,
            rtm_server_sdk::fpnn::DEFAULT_CONNECT_TIMEOUT
        );
        assert_eq!(
            config.quest_timeout,
            rtm_server_sdk::fpnn::DEFAULT_QUEST_TIMEOUT
        );
        assert_eq!(config.callback_threads, 2);
        assert_eq!(
            config.max_pending,
            rtm_server_sdk::fpnn::DEFAULT_MAX_PENDING
        );
        assert_eq!(
            client.call_timeout("x", empty(), Duration::ZERO).unwrap(),
            empty()
        );
        assert_eq!(client.with_timeout(Duration::ZERO).timeout(), None);
        let (tx, rx) = unbounded();
        client.call_with_callback("x", empty(), Duration::ZERO, move |r| tx.send(r).unwrap());
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(5)).unwrap().unwrap(),
            empty()
        );
    });
}

#[test]
fn the_pending_cap_refuses_callbacks_at_once_and_makes_blocking_calls_wait_for_room() {
    watchdog(Duration::from_secs(30), || {
        let server = hold_server();
        let client =
            FpnnClient::new(server.endpoint(), ClientConfig::default().max_pending(10)).unwrap();
        client.connect().unwrap();
        let (tx, rx) = unbounded();
        for _ in 0..10 {
            let tx = tx.clone();
            client.call_with_callback("hold", empty(), Duration::from_millis(600), move |r| {
                tx.send(r).unwrap()
            });
        }
        assert_eq!(client.pending_calls(), 10);
        // The 11th callback call: refused at once, on a callback thread.
        let (tx11, rx11) = unbounded();
        let t0 = Instant::now();
        client.call_with_callback("x", empty(), None, move |r| tx11.send(r).unwrap());
        let err = rx11
            .recv_timeout(Duration::from_millis(500))
            .unwrap()
            .unwrap_err();
        assert!(t0.elapsed() < Duration::from_millis(500));
        assert!(
            matches!(err, Error::TooManyPending { limit: 10 }),
            "{err:?}"
        );
        assert_eq!(err.code(), Some(20011));
        // A blocking call with a short bound: refused when it runs out.
        let t0 = Instant::now();
        let err = client
            .call_timeout("x", empty(), Duration::from_millis(200))
            .unwrap_err();
        assert!(matches!(err, Error::TooManyPending { .. }), "{err:?}");
        assert!(t0.elapsed() >= Duration::from_millis(190));
        assert!(t0.elapsed() < Duration::from_millis(300) + Duration::from_millis(100));
        // A blocking call with room for it coming: waits, then succeeds.
        let answer = client.call_timeout("x", empty(), Duration::from_secs(5));
        assert_eq!(answer.unwrap(), empty());
        for _ in 0..10 {
            let err = rx
                .recv_timeout(Duration::from_secs(5))
                .unwrap()
                .unwrap_err();
            assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
        }
        assert!(wait_until(Duration::from_secs(2), || client
            .pending_calls()
            == 0));

        // Calls queued while connecting count too.
        let stalled = common::stalled_endpoint();
        let client = FpnnClient::new(
            stalled.endpoint.clone(),
            ClientConfig::default().max_pending(5),
        )
        .unwrap();
        let (tx, rx) = unbounded();
        for _ in 0..6 {
            let tx = tx.clone();
            client.call_with_callback("x", empty(), None, move |r| tx.send(r).unwrap());
        }
        let err = rx
            .recv_timeout(Duration::from_secs(1))
            .unwrap()
            .unwrap_err();
        assert!(matches!(err, Error::TooManyPending { limit: 5 }), "{err:?}");
        assert_eq!(client.pending_calls(), 5);
        client.close();
        for _ in 0..5 {
            assert!(rx
                .recv_timeout(Duration::from_secs(1))
                .unwrap()
                .unwrap_err()
                .is_client_closed());
        }
        assert_eq!(client.pending_calls(), 0);
    });
}

#[test]
fn a_reset_connection_completes_calls_with_connection_closed_keeping_the_io_error() {
    watchdog(Duration::from_secs(30), || {
        use std::io::Read;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = listener.local_addr().unwrap().to_string();
        let server = thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 256];
            let _ = s.read(&mut buf).unwrap();
            thread::sleep(Duration::from_millis(100));
            // Abort: an RST, so the client's read fails with ECONNRESET.
            socket2::SockRef::from(&s)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
            drop(s);
        });
        let client = FpnnClient::new(endpoint, ClientConfig::default().reconnect(None)).unwrap();
        let err = client
            .call_timeout("x", empty(), Duration::from_secs(10))
            .unwrap_err();
        server.join().unwrap();
        assert!(matches!(err, Error::ConnectionClosed { .. }), "{err:?}");
        assert_eq!(err.code(), Some(20002));
        let source = std::error::Error::source(&err).expect("the I/O error is kept");
        let io = source
            .downcast_ref::<Arc<std::io::Error>>()
            .unwrap_or_else(|| panic!("not an io::Error: {source:?}"));
        assert_eq!(io.kind(), std::io::ErrorKind::ConnectionReset, "{io:?}");
    });
}

#[test]
fn malformed_endpoints_are_refused_and_names_resolve_within_the_connect_timeout() {
    watchdog(Duration::from_secs(30), || {
        for bad in [
            "nonsense",
            "host:",
            ":99999",
            "",
            "127.0.0.1",
            "127.0.0.1:99999",
            "127.0.0.1:0",
            "::1:80",
            "[::1]",
            "a b:80",
        ] {
            let r = FpnnClient::new(bad, ClientConfig::default());
            assert!(
                matches!(r, Err(Error::InvalidArgument(_))),
                "{bad:?}: {r:?}"
            );
        }
        for good in [
            "localhost:1",
            "[::1]:80",
            "example.com:13315",
            "10.0.0.1:65535",
        ] {
            FpnnClient::new(good, ClientConfig::default()).unwrap();
        }
        // A name (resolved on the dial thread, within the connect timeout).
        let server = hold_server();
        let port = server.local_addr().port();
        let client = FpnnClient::new(format!("localhost:{port}"), ClientConfig::default()).unwrap();
        assert_eq!(client.call("x", empty()).unwrap(), empty());
    });
}

#[test]
fn callbacks_on_a_closed_client_run_on_another_thread_after_the_call_returned() {
    watchdog(Duration::from_secs(30), || {
        let client = FpnnClient::new("127.0.0.1:1", ClientConfig::default()).unwrap();
        client.close();
        let me = thread::current().id();
        let (tx, rx) = unbounded();
        // A caller holding a lock its callback takes must not deadlock.
        let lock = Arc::new(Mutex::new(0));
        let held = lock.lock().unwrap();
        for _ in 0..3 {
            let tx = tx.clone();
            let lock = lock.clone();
            client.call_with_callback("x", empty(), None, move |r| {
                *lock.lock().unwrap() += 1;
                tx.send((thread::current().id(), r)).unwrap()
            });
        }
        drop(held);
        for _ in 0..3 {
            let (id, r) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
            assert_ne!(id, me, "the callback ran on the caller's thread");
            assert!(r.unwrap_err().is_client_closed());
        }
        assert_eq!(*lock.lock().unwrap(), 3);
    });
}

#[test]
fn an_idle_client_does_not_redial_after_the_server_closes_it() {
    watchdog(Duration::from_secs(30), || {
        let server = hold_server();
        let client = FpnnClient::new(
            server.endpoint(),
            ClientConfig::default().reconnect(fast_reconnect()),
        )
        .unwrap();
        let events = record_events(&client);
        client.connect().unwrap();
        assert!(wait_until(Duration::from_secs(5), || server
            .connections()
            .len()
            == 1));
        for c in server.connections() {
            c.close();
        }
        assert!(wait_until(Duration::from_secs(10), || !client.is_connected()));
        // The close is reported on the supervisor thread, after the
        // connection is seen closed: wait for it, then give a redial (the
        // fast strategy's first attempts are immediate) time to show.
        assert!(wait_until(Duration::from_secs(10), || events
            .lock()
            .unwrap()
            .iter()
            .any(|(_, e)| matches!(e, ConnectionEvent::Closed { .. }))));
        thread::sleep(Duration::from_millis(800));
        assert_eq!(server.connection_count(), 1, "the idle client redialled");
        let events = events.lock().unwrap().clone();
        assert!(
            matches!(
                events.last().map(|e| &e.1),
                Some(ConnectionEvent::Closed {
                    will_reconnect: false,
                    ..
                })
            ),
            "{events:?}"
        );
        // The next call connects on demand.
        assert_eq!(client.call("x", empty()).unwrap(), empty());
        assert_eq!(server.connection_count(), 2);
    });
}

#[test]
fn a_call_made_from_a_callback_never_dials_on_the_callback_thread() {
    watchdog(Duration::from_secs(30), || {
        // A resend (or any call) made from a callback while its client is
        // disconnected is queued: the callback thread goes on at once.
        let stalled = common::stalled_endpoint();
        let stalled_client = FpnnClient::new(
            stalled.endpoint.clone(),
            ClientConfig::default().connect_timeout(Duration::from_secs(3)),
        )
        .unwrap();
        let server = hold_server();
        let client = FpnnClient::new(server.endpoint(), ClientConfig::default()).unwrap();
        let (tx, rx) = unbounded();
        for _ in 0..4 {
            let tx = tx.clone();
            let other = stalled_client.clone();
            client.call_with_callback("x", empty(), None, move |_| {
                let t = Instant::now();
                other.call_with_callback("x", empty(), Duration::from_millis(500), |_| {});
                tx.send(t.elapsed()).unwrap();
            });
        }
        for _ in 0..4 {
            let took = rx.recv_timeout(Duration::from_secs(5)).unwrap();
            // Blocking would take the call's bound (500 ms) or the dial's
            // (3 s); the margin is for a descheduled thread.
            assert!(
                took < Duration::from_millis(400),
                "a call from a callback blocked its thread for {took:?}"
            );
        }
    });
}
