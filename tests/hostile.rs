//! Bytes from a hostile server: property tests that feed random and mutated
//! frames (valid frames with bytes flipped, truncated, lengths inflated,
//! nesting deepened; plain and encrypted) to the frame decoder, and to a
//! client through its reader thread, its answer routing and its push path.
//!
//! Whatever arrives: no panic, no allocation beyond the configured frame
//! limit, a typed error and a closed connection, and never an answer
//! delivered to a caller it does not belong to.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use common::{map, wait_until, watchdog, Variant};
use proptest::collection::vec;
use proptest::prelude::*;
use rmpv::Value;
use rtm_server_sdk::emulator::{FpnnServer, Reply};
use rtm_server_sdk::fpnn::codec::{
    encode_answer, encode_error_answer, encode_quest, Decoder, Frame, Quest,
};
use rtm_server_sdk::fpnn::crypto::{CipherMode, Curve, KeyBits};
use rtm_server_sdk::fpnn::{ClientConfig, FpnnClient, QuestReply};

// --- the largest allocation made by a watched thread ------------------------

struct Watching;

thread_local! {
    static WATCHED: Cell<bool> = const { Cell::new(false) };
}

static LARGEST: AtomicUsize = AtomicUsize::new(0);

fn note(size: usize) {
    if WATCHED.try_with(Cell::get).unwrap_or(false) {
        LARGEST.fetch_max(size, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to the system allocator unchanged and only
// records sizes in an atomic (no allocation happens while recording).
unsafe impl GlobalAlloc for Watching {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Watching = Watching;

/// Panics on the client's threads (named `fpnn-...`) are counted: a
/// property fails when any happened.
static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with("fpnn"))
            {
                PANICS.fetch_add(1, Ordering::SeqCst);
            }
            default(info);
        }));
    });
}

// --- strategies -----------------------------------------------------------

fn text() -> impl Strategy<Value = String> {
    vec(any::<char>(), 0..12).prop_map(|c| c.into_iter().collect())
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::F64),
        text().prop_map(Value::from),
        vec(any::<u8>(), 0..24).prop_map(Value::Binary),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            vec((text(), inner), 0..6).prop_map(|kv| Value::Map(
                kv.into_iter().map(|(k, v)| (Value::from(k), v)).collect()
            )),
        ]
    })
}

fn payload() -> impl Strategy<Value = Value> {
    vec((text(), value()), 0..5)
        .prop_map(|kv| Value::Map(kv.into_iter().map(|(k, v)| (Value::from(k), v)).collect()))
}

/// One valid frame, encoded.
fn frame() -> impl Strategy<Value = Vec<u8>> {
    let method = vec(proptest::char::range('a', 'z'), 1..16).prop_map(String::from_iter);
    prop_oneof![
        (any::<Option<u32>>(), method, payload()).prop_map(|(seq, m, p)| {
            let mut out = Vec::new();
            encode_quest(&mut out, seq, &m, &p).unwrap();
            out
        }),
        (any::<u32>(), payload()).prop_map(|(seq, p)| {
            let mut out = Vec::new();
            encode_answer(&mut out, seq, &p).unwrap();
            out
        }),
        (any::<u32>(), any::<i64>(), text()).prop_map(|(seq, code, ex)| {
            let mut out = Vec::new();
            encode_error_answer(&mut out, seq, code, &ex);
            out
        }),
    ]
}

/// How valid bytes are spoiled.
#[derive(Debug, Clone)]
enum Mutation {
    None,
    /// XOR these offsets (modulo the length) with these masks.
    Flip(Vec<(usize, u8)>),
    /// Keep this many bytes (modulo the length).
    Truncate(usize),
    /// Add this to the payload size field of the first header.
    Inflate(u32),
    /// Wrap the first frame's payload in this many arrays.
    Deepen(usize),
    /// Insert random bytes at an offset.
    Splice(usize, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        1 => Just(Mutation::None),
        4 => vec((any::<usize>(), 1..=255u8), 1..4).prop_map(Mutation::Flip),
        2 => any::<usize>().prop_map(Mutation::Truncate),
        2 => prop_oneof![1..64u32, 1..100_000u32, Just(u32::MAX / 2), Just(u32::MAX)]
            .prop_map(Mutation::Inflate),
        2 => prop_oneof![90..110usize, 200..2000usize].prop_map(Mutation::Deepen),
        1 => (any::<usize>(), vec(any::<u8>(), 1..32)).prop_map(|(at, b)| Mutation::Splice(at, b)),
    ]
}

/// Applies `m` to `bytes` (a sequence of frames).
fn mutate(mut bytes: Vec<u8>, m: &Mutation) -> Vec<u8> {
    if bytes.is_empty() {
        return bytes;
    }
    match m {
        Mutation::None => {}
        Mutation::Flip(flips) => {
            for (at, mask) in flips {
                let i = at % bytes.len();
                bytes[i] ^= mask;
            }
        }
        Mutation::Truncate(n) => bytes.truncate(n % bytes.len()),
        Mutation::Inflate(by) if bytes.len() >= 12 => {
            let size = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
            bytes[8..12].copy_from_slice(&size.wrapping_add(*by).to_le_bytes());
        }
        Mutation::Inflate(_) => {}
        Mutation::Deepen(levels) if bytes.len() >= 12 => {
            // The first frame's payload is the end of its body: wrap it.
            let size = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
            let prefix = match bytes[6] {
                0 => bytes[7] as usize,
                1 => 4 + bytes[7] as usize,
                _ => 4,
            };
            let start = 12 + prefix;
            if start + size <= bytes.len() && size > 0 {
                let mut wrapped = vec![0x81, 0xa1, b'k'];
                wrapped.extend(std::iter::repeat_n(0x91u8, *levels));
                wrapped.extend_from_slice(&[0xc0]);
                let new_size = (wrapped.len() as u32).to_le_bytes();
                bytes.splice(start..start + size, wrapped);
                bytes[8..12].copy_from_slice(&new_size);
            }
        }
        Mutation::Deepen(_) => {}
        Mutation::Splice(at, extra) => {
            let i = at % bytes.len();
            bytes.splice(i..i, extra.iter().copied());
        }
    }
    bytes
}

/// Every payload handed out is a map with string keys.
fn well_formed(v: &Value) -> bool {
    match v {
        Value::Map(entries) => entries.iter().all(|(k, _)| k.is_str()),
        _ => false,
    }
}

/// What a correct receiver takes out of `bytes`: the frames before the
/// first error, and whether an error came.
fn reference(bytes: &[u8], limit: usize) -> (Vec<Frame>, bool) {
    let (frames, broken, _) = reference_rest(bytes, limit);
    (frames, broken)
}

/// [`reference`], and the bytes left over (an incomplete frame).
fn reference_rest(bytes: &[u8], limit: usize) -> (Vec<Frame>, bool, usize) {
    let mut d = Decoder::new(limit);
    d.feed(bytes);
    let mut frames = Vec::new();
    loop {
        match d.next_frame() {
            Ok(Some(f)) => frames.push(f),
            Ok(None) => return (frames, false, d.buffered()),
            Err(_) => return (frames, true, d.buffered()),
        }
    }
}

const LIMIT: usize = 64 * 1024;

// --- the decoder ----------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_decoder_takes_mutated_frames_in_any_chunking(
        frames in vec(frame(), 1..4),
        m in mutation(),
        chunks in vec(1..200usize, 1..8),
    ) {
        count_panics();
        let valid: Vec<u8> = frames.concat();
        let bytes = mutate(valid.clone(), &m);
        let mut decoder = Decoder::new(LIMIT);
        let mut got = Vec::new();
        let mut failed = false;
        LARGEST.store(0, Ordering::SeqCst);
        WATCHED.with(|w| w.set(true));
        let mut rest = &bytes[..];
        let mut i = 0;
        'feed: while !rest.is_empty() {
            let n = chunks[i % chunks.len()].min(rest.len());
            i += 1;
            decoder.feed(&rest[..n]);
            rest = &rest[n..];
            loop {
                match decoder.next_frame() {
                    Ok(Some(f)) => got.push(f),
                    Ok(None) => break,
                    Err(_) => {
                        failed = true;
                        break 'feed;
                    }
                }
            }
        }
        WATCHED.with(|w| w.set(false));
        let largest = LARGEST.load(Ordering::SeqCst);
        prop_assert!(largest <= LIMIT, "an allocation of {} bytes (limit {})", largest, LIMIT);
        for f in &got {
            let p = match f {
                Frame::Quest(q) => &q.payload,
                Frame::Answer(a) => &a.payload,
            };
            prop_assert!(well_formed(p), "{:?}", f);
        }
        // Chunking changes nothing.
        let (whole, whole_failed) = reference(&bytes, LIMIT);
        prop_assert_eq!(&got, &whole);
        prop_assert_eq!(failed, whole_failed);
        if matches!(m, Mutation::None) {
            prop_assert!(!failed);
            prop_assert_eq!(got.len(), frames.len());
        }
        prop_assert_eq!(PANICS.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn the_decoder_takes_random_bytes(bytes in vec(any::<u8>(), 0..4096)) {
        count_panics();
        let mut prefixed = b"FPNN".to_vec();
        prefixed.extend_from_slice(&bytes);
        for input in [&bytes[..], &prefixed[..]] {
            LARGEST.store(0, Ordering::SeqCst);
            WATCHED.with(|w| w.set(true));
            let (frames, _) = reference(input, LIMIT);
            WATCHED.with(|w| w.set(false));
            prop_assert!(LARGEST.load(Ordering::SeqCst) <= LIMIT);
            for f in frames {
                match f {
                    Frame::Quest(q) => prop_assert!(well_formed(&q.payload)),
                    Frame::Answer(a) => prop_assert!(well_formed(&a.payload)),
                }
            }
        }
    }
}

// --- a client, through its reader, answer routing and push path -----------

/// What the server does with the next `echo`: the mutation to apply to its
/// answer, and to the quest it pushes after it.
#[derive(Default)]
struct Script {
    /// The payload of the one quest this script is for. Any other quest
    /// gets a clean answer and leaves the script alone: a quest of an
    /// earlier case (whose caller timed out before the server got to it,
    /// on a loaded machine) must not take this case's mutations, nor
    /// record its bytes as this case's.
    quest: Option<Value>,
    answer: Option<Mutation>,
    push: Option<(Vec<u8>, Mutation)>,
    /// The bytes actually sent (the push, then the answer), and the seq of
    /// the quest answered.
    sent: Option<(Vec<u8>, u32)>,
}

fn hostile_server(v: Variant, script: Arc<Mutex<Script>>) -> (FpnnServer, common::Keys) {
    let (options, keys) = v.setup();
    let server = FpnnServer::start(
        move |conn: &rtm_server_sdk::emulator::ServerConn, q: &Quest| {
            let Some(seq) = q.seq else {
                return Reply::None;
            };
            let mut s = script.lock().unwrap();
            let mut answer = Vec::new();
            encode_answer(&mut answer, seq, &q.payload).unwrap();
            if s.quest.as_ref() != Some(&q.payload) {
                return Reply::Raw(answer);
            }
            s.quest = None;
            let bytes = match s.answer.take() {
                Some(m) => mutate(answer, &m),
                None => answer,
            };
            let mut sent = Vec::new();
            if let Some((quest, m)) = s.push.take() {
                // The push goes out first, then the answer.
                let push = mutate(quest, &m);
                conn.send_raw(&push);
                sent = push;
            }
            sent.extend_from_slice(&bytes);
            s.sent = Some((sent, seq));
            Reply::Raw(bytes)
        },
        options.max_payload(1 << 20),
    )
    .unwrap();
    (server, keys)
}

fn run_client_cases(v: Variant, cases: u32) {
    count_panics();
    let script = Arc::new(Mutex::new(Script::default()));
    let (server, keys) = hostile_server(v, script.clone());
    let case = AtomicUsize::new(0);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases,
        ..ProptestConfig::default()
    });
    let strategy = (
        any::<i64>(),
        mutation(),
        proptest::option::of((payload(), mutation())),
    );
    runner
        .run(&strategy, |(i, answer_m, push)| {
            let client = FpnnClient::new(
                server.endpoint(),
                keys.config(
                    ClientConfig::default()
                        .max_recv_payload(LIMIT)
                        .reconnect(None),
                ),
            )
            .unwrap();
            // This case's own record: a client of an earlier case may still
            // be delivering a late push to its handler.
            let seen: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
            let sink = seen.clone();
            client.set_quest_handler(
                move |_: &FpnnClient, method: &str, payload: &Value, _: bool| {
                    sink.lock()
                        .unwrap()
                        .push((method.to_string(), payload.clone()));
                    QuestReply::empty()
                },
            );
            client.connect().unwrap();
            let pushed = push.map(|(p, m)| {
                let mut quest = Vec::new();
                encode_quest(&mut quest, None, "pushed", &p).unwrap();
                (quest, m)
            });
            // Unique to this case, even when shrinking repeats `i`.
            let n = case.fetch_add(1, Ordering::SeqCst) as u64;
            let sent_payload = map(vec![("i", Value::from(i)), ("case", Value::from(n))]);
            {
                let mut s = script.lock().unwrap();
                s.quest = Some(sent_payload.clone());
                s.answer = Some(answer_m);
                s.push = pushed.clone();
                s.sent = None;
            }
            let result =
                client.call_timeout("echo", sent_payload.clone(), Duration::from_millis(300));
            // What the server sent for this quest. The call may have timed
            // out before the server even read the quest (a loaded machine):
            // wait for the server, whose bytes the checks below compare with.
            let mut handled = None;
            prop_assert!(
                wait_until(Duration::from_secs(20), || {
                    handled = script.lock().unwrap().sent.take();
                    handled.is_some()
                }),
                "the server never answered the quest ({:?})",
                result
            );
            let (sent, seq) = handled.unwrap_or_default();
            let (frames, broken, left_over) = reference_rest(&sent, LIMIT);
            match &result {
                // Never a wrong answer: what the caller got is what a
                // correct receiver reads for its own sequence number.
                Ok(v) => {
                    let expected = frames.iter().find_map(|f| match f {
                        Frame::Answer(a) if a.seq == seq && !a.is_error() => Some(&a.payload),
                        _ => None,
                    });
                    prop_assert_eq!(Some(v), expected);
                }
                Err(e) => prop_assert!(
                    e.is_timeout() || e.is_connection_error() || e.is_server_error(),
                    "{:?}",
                    e
                ),
            }
            if broken {
                // A protocol error closes the connection.
                prop_assert!(wait_until(Duration::from_secs(10), || !client.is_connected()));
            }
            // Pushes that reach the handler are whole, well-formed quests
            // that a correct receiver reads too.
            std::thread::sleep(Duration::from_millis(5));
            for (method, payload) in seen.lock().unwrap().iter() {
                prop_assert!(well_formed(payload));
                prop_assert!(frames.iter().any(|f| matches!(
                    f,
                    Frame::Quest(q) if &q.method == method && &q.payload == payload
                )));
            }
            // And a stream left clean goes on working (one with bytes left
            // over is out of step: its next frame fails, as checked above).
            if broken || left_over > 0 || result.is_err() {
                client.close();
            } else {
                let again =
                    client.call_timeout("echo", sent_payload.clone(), Duration::from_secs(10));
                prop_assert_eq!(again.ok(), Some(sent_payload));
            }
            prop_assert_eq!(PANICS.load(Ordering::SeqCst), 0);
            Ok(())
        })
        .unwrap();
    // Garbage that is not even ciphertext of a frame.
    if v.encryption.is_some() {
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
            cases: cases / 4,
            ..ProptestConfig::default()
        });
        runner
            .run(&vec(any::<u8>(), 1..512), |garbage| {
                let client = FpnnClient::new(
                    server.endpoint(),
                    keys.config(ClientConfig::default().max_recv_payload(LIMIT)),
                )
                .unwrap();
                client.connect().unwrap();
                for conn in server.connections() {
                    conn.send_unencrypted(&garbage);
                }
                let r = client.call_timeout(
                    "echo",
                    map(vec![("i", Value::from(1))]),
                    Duration::from_millis(300),
                );
                if let Err(e) = r {
                    prop_assert!(e.is_timeout() || e.is_connection_error(), "{:?}", e);
                }
                client.close();
                prop_assert_eq!(PANICS.load(Ordering::SeqCst), 0);
                Ok(())
            })
            .unwrap();
    }
}

#[test]
fn a_client_fed_hostile_bytes_never_panics_nor_misroutes_plain() {
    watchdog(Duration::from_secs(120), || {
        run_client_cases(Variant::PLAIN, 48)
    });
}

#[test]
fn a_client_fed_hostile_bytes_never_panics_nor_misroutes_encrypted_stream() {
    watchdog(Duration::from_secs(120), || {
        run_client_cases(
            Variant::encrypted(Curve::Secp256k1, CipherMode::Stream, KeyBits::Aes128),
            32,
        )
    });
}

#[test]
fn a_client_fed_hostile_bytes_never_panics_nor_misroutes_encrypted_package() {
    watchdog(Duration::from_secs(120), || {
        run_client_cases(
            Variant::encrypted(Curve::Secp256r1, CipherMode::Package, KeyBits::Aes256),
            32,
        )
    });
}
