//! The in-process floor: the bookkeeping any client that hands decoded
//! answers to callbacks must do per call, measured on one thread with no
//! socket, no lock and no thread handoff. It bounds how close a client of
//! this kind can come to the raw client, which does none of it.

use std::collections::HashMap;
use std::time::Instant;

use rmpv::Value;
use rtm_server_sdk::fpnn::codec::{encode_answer, encode_quest, Decoder, Frame};

/// Per-call CPU of the floor, in microseconds, over `calls` calls.
///
/// Each call: encode the `bench` quest, box a callback and file it under
/// its seq, then (as the answer `{ok: true}` arrives in a batch of
/// `batch`) decode the answer into a value, take the callback out and run
/// it. The answer bytes are encoded once up front (the server's work).
pub fn per_call_us(calls: usize, batch: usize) -> f64 {
    let ok = Value::Map(vec![(Value::from("ok"), Value::Boolean(true))]);
    let mut answers = Vec::new();
    for seq in 1..=batch as u32 {
        encode_answer(&mut answers, seq, &ok).expect("encode answer");
    }
    let empty = Value::Map(Vec::new());
    let mut pending: HashMap<u32, Box<dyn FnOnce(Value) + Send>> = HashMap::with_capacity(batch);
    let mut out = Vec::with_capacity(64 * batch);
    let mut decoder = Decoder::new(1 << 20);
    let mut done = 0u64;
    let t = Instant::now();
    let rounds = calls / batch;
    for _ in 0..rounds {
        out.clear();
        for seq in 1..=batch as u32 {
            encode_quest(&mut out, Some(seq), "bench", &empty).expect("encode quest");
            pending.insert(
                seq,
                Box::new(|v: Value| {
                    // The value lives until here, as in a callback.
                    std::hint::black_box(&v);
                }),
            );
        }
        std::hint::black_box(&out);
        decoder.feed(&answers);
        while let Some(frame) = decoder.next_frame().expect("decode") {
            if let Frame::Answer(a) = frame {
                if let Some(cb) = pending.remove(&a.seq) {
                    cb(a.payload);
                    done += 1;
                }
            }
        }
    }
    let elapsed = t.elapsed();
    assert_eq!(done as usize, rounds * batch, "every callback ran");
    elapsed.as_secs_f64() * 1e6 / done as f64
}
