//! The emulator's authentication, as a client sees it: signatures checked
//! on the raw payload before anything is decoded (a huge value under a
//! signature key allocates nothing of its size), the replay memory that
//! refuses a captured quest however much traffic follows it, and refused
//! quests reported to the quest observer.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{map, wait_until, watchdog};
use rmpv::Value;
use rtm_server_sdk::emulator::{EmulatorOptions, QuestOutcome, QuestRecord, RtmEmulator};
use rtm_server_sdk::fpnn::codec::{Decoder, Frame};
use rtm_server_sdk::rtm::{next_salt, sign, unix_seconds};
use rtm_server_sdk::{codes, ClientConfig, FpnnClient, RtmServerClient};

const PID: i64 = 11000001;
const SECRET: &str = "secret";

// --- the largest allocation made by the process -----------------------------

struct Largest;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to the system allocator unchanged and only
// records sizes in an atomic (no allocation happens while recording).
unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Largest = Largest;

/// The tests that count allocations run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

// --- helpers ------------------------------------------------------------------

/// A quest payload signed for `method` at `ts`, plus `extra`.
fn signed(method: &str, ts: i64, extra: Vec<(&str, Value)>) -> Value {
    let salt = next_salt();
    let mut entries = vec![
        ("pid", Value::from(PID)),
        ("sign", Value::from(sign(PID, SECRET, salt, method, ts))),
        ("salt", Value::from(salt)),
        ("ts", Value::from(ts)),
    ];
    entries.extend(extra);
    map(entries)
}

fn sendmsg_params(mid: i64, msg: &str) -> Vec<(&'static str, Value)> {
    vec![
        ("from", 1.into()),
        ("to", 2.into()),
        ("mtype", 30.into()),
        ("mid", mid.into()),
        ("msg", msg.into()),
        ("attrs", "".into()),
    ]
}

/// `payload` with the values of `changes` replaced (the signature keys
/// kept): a captured quest replayed with other content.
fn with(payload: &Value, changes: &[(&str, Value)]) -> Value {
    let Value::Map(entries) = payload else {
        unreachable!()
    };
    let mut entries = entries.clone();
    for (k, v) in entries.iter_mut() {
        if let Some((_, new)) = changes.iter().find(|(key, _)| k.as_str() == Some(key)) {
            *v = new.clone();
        }
    }
    Value::Map(entries)
}

fn code(r: rtm_server_sdk::Result<Value>) -> Option<i64> {
    r.expect_err("refused").server_code()
}

/// A two-way quest frame with a payload given as raw msgpack bytes.
fn raw_quest(seq: u32, method: &str, payload: &[u8]) -> Vec<u8> {
    let mut frame = b"FPNN".to_vec();
    frame.extend_from_slice(&[1, 0x80, 1, method.len() as u8]);
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(&seq.to_le_bytes());
    frame.extend_from_slice(method.as_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// Sends `frame` on `socket` and reads one answer: its error code, if any.
fn answer_code(socket: &mut TcpStream, frame: &[u8]) -> Option<i64> {
    socket.write_all(frame).unwrap();
    let mut decoder = Decoder::new(1 << 20);
    loop {
        if let Some(Frame::Answer(a)) = decoder.next_frame().unwrap() {
            return a.into_result().err().and_then(|e| e.server_code());
        }
        let mut buf = [0u8; 4096];
        let n = socket.read(&mut buf).unwrap();
        assert!(n > 0, "the emulator closed the connection");
        decoder.feed(&buf[..n]);
    }
}

/// The msgpack bytes of a map whose `sign` is an array of `n` nils, with
/// the other signature keys well formed.
fn huge_sign_payload(n: u32) -> Vec<u8> {
    let mut p = vec![0x84];
    let mut put = |key: &str, value: &Value| {
        rmpv::encode::write_value(&mut p, &Value::from(key)).unwrap();
        rmpv::encode::write_value(&mut p, value).unwrap();
    };
    put("pid", &Value::from(PID));
    put("salt", &Value::from(1));
    put("ts", &Value::from(unix_seconds()));
    rmpv::encode::write_value(&mut p, &Value::from("sign")).unwrap();
    p.push(0xdd);
    p.extend_from_slice(&n.to_be_bytes());
    p.resize(p.len() + n as usize, 0xc0);
    p
}

// --- tests --------------------------------------------------------------------

#[test]
fn a_huge_value_under_a_signature_key_is_never_decoded() {
    watchdog(Duration::from_secs(60), || {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let emu = RtmEmulator::start(PID, SECRET).unwrap();
        let mut socket = TcpStream::connect(emu.endpoint()).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        // 1,000,000 nils: 1 MB on the wire, about 32 MB once decoded.
        let n = 1_000_000;
        let frame = raw_quest(1, "getVoiceRoomList", &huge_sign_payload(n));
        // Warm up: the connection's buffers reach the frame's size once.
        assert_eq!(answer_code(&mut socket, &frame), Some(200002));
        LARGEST.store(0, Ordering::SeqCst);
        for seq in 2..4 {
            let frame = raw_quest(seq, "getVoiceRoomList", &huge_sign_payload(n));
            assert_eq!(answer_code(&mut socket, &frame), Some(200002));
        }
        let largest = LARGEST.load(Ordering::SeqCst);
        // The frame itself (and its copies) is about 1 MB; decoding the
        // array would allocate 32 bytes per nil.
        assert!(
            largest < 8 * n as usize,
            "largest allocation {largest} B for a {n}-byte sign"
        );
        assert!(emu.received().is_empty(), "a refused quest is not recorded");
    })
}

#[test]
fn a_captured_quest_is_refused_however_many_quests_follow_it() {
    watchdog(Duration::from_secs(120), || {
        let emu = RtmEmulator::start(PID, SECRET).unwrap();
        let raw = FpnnClient::new(emu.endpoint(), ClientConfig::default()).unwrap();
        let captured = signed("sendmsg", unix_seconds(), sendmsg_params(7, "hello"));
        raw.call("sendmsg", captured.clone()).unwrap();
        // More other quests than the emulator used to remember (10,000).
        let client = RtmServerClient::new(PID, SECRET, emu.endpoint()).unwrap();
        for _ in 0..20_000 {
            client.get_voice_room_list().unwrap();
        }
        // The signature does not cover the content: replayed with another
        // message and mid, it is still refused.
        let replay = with(&captured, &[("mid", 8.into()), ("msg", "forged".into())]);
        assert_eq!(
            code(raw.call("sendmsg", replay)),
            Some(codes::RTM_EC_SAME_SIGN)
        );
        assert_eq!(emu.message_count(), 1);
    })
}

#[test]
fn past_its_capacity_the_replay_memory_refuses_what_it_forgot() {
    watchdog(Duration::from_secs(60), || {
        let options = EmulatorOptions::new().remembered_signs(100);
        assert_eq!(options.remembered_signs, 100);
        let emu = RtmEmulator::start_with_options(PID, SECRET, options).unwrap();
        let raw = FpnnClient::new(emu.endpoint(), ClientConfig::default()).unwrap();
        let ts0 = unix_seconds();
        let captured = signed("sendmsg", ts0, sendmsg_params(7, "hello"));
        raw.call("sendmsg", captured.clone()).unwrap();
        // 300 later quests (50 per second of `ts`): three times the
        // capacity, so the captured signature is forgotten.
        for i in 0..300 {
            let p = signed("getVoiceRoomList", ts0 + 1 + i / 50, vec![]);
            raw.call("getVoiceRoomList", p).unwrap();
        }
        // Signatures of the last two seconds are kept beyond the capacity:
        // once the clock is past them, the next quest brings the memory
        // back to its capacity.
        emu.advance_clock(Duration::from_secs(30));
        let later = signed("getVoiceRoomList", ts0 + 30, vec![]);
        raw.call("getVoiceRoomList", later).unwrap();
        let replay = with(&captured, &[("mid", 8.into()), ("msg", "forged".into())]);
        let err = raw.call("sendmsg", replay).unwrap_err();
        assert_eq!(err.server_code(), Some(codes::RTM_EC_SAME_SIGN), "{err}");
        assert!(err.to_string().contains("at or below"), "{err}");
        assert_eq!(emu.message_count(), 1);
        // A quest signed later than the mark is served; a replay of a
        // remembered one is refused as the same sign.
        let fresh = signed("getVoiceRoomList", ts0 + 10, vec![]);
        raw.call("getVoiceRoomList", fresh.clone()).unwrap();
        let err = raw.call("getVoiceRoomList", fresh).unwrap_err();
        assert_eq!(err.server_code(), Some(codes::RTM_EC_SAME_SIGN));
        assert!(!err.to_string().contains("at or below"), "{err}");
    })
}

#[test]
fn refused_quests_are_reported_to_the_observer() {
    watchdog(Duration::from_secs(60), || {
        let records: Arc<Mutex<Vec<QuestRecord>>> = Arc::default();
        let sink = records.clone();
        let options =
            EmulatorOptions::new().observer(move |r| sink.lock().unwrap().push(r.clone()));
        let emu = RtmEmulator::start_with_options(PID, SECRET, options).unwrap();
        let raw = FpnnClient::new(emu.endpoint(), ClientConfig::default()).unwrap();
        // A bad signature (small: its parameters are summarised).
        let mut p = signed("getVoiceRoomList", unix_seconds(), vec![("rid", 5.into())]);
        p = with(&p, &[("sign", "0123456789ABCDEF0123456789ABCDEF".into())]);
        assert_eq!(code(raw.call("getVoiceRoomList", p)), Some(200002));
        // A large one: reported by its size only.
        let big = "x".repeat(10_000);
        let p = with(
            &signed(
                "getVoiceRoomList",
                unix_seconds(),
                vec![("big", big.into())],
            ),
            &[("ts", 1.into())],
        );
        assert_eq!(code(raw.call("getVoiceRoomList", p)), Some(200002));
        // An admitted one.
        let p = signed("getVoiceRoomList", unix_seconds(), vec![]);
        raw.call("getVoiceRoomList", p).unwrap();
        assert!(wait_until(Duration::from_secs(5), || records
            .lock()
            .unwrap()
            .len()
            == 3));
        let records = records.lock().unwrap();
        let refused =
            |r: &QuestRecord| matches!(r.outcome, QuestOutcome::Error { code: 200002, .. });
        assert!(refused(&records[0]), "{:?}", records[0]);
        assert_eq!(records[0].params, "rid=5");
        assert!(refused(&records[1]), "{:?}", records[1]);
        assert!(
            records[1].params.contains("not decoded"),
            "{:?}",
            records[1]
        );
        assert!(records[1].params.contains("bytes"), "{:?}", records[1]);
        assert!(matches!(records[2].outcome, QuestOutcome::Ok));
    })
}
