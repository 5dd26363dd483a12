//! The limit: a minimal client on a plain `TcpStream` that writes
//! pre-encoded frames and counts answers, with no bookkeeping at all.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use rmpv::Value;
use rtm_server_sdk::fpnn::codec::encode_quest;

use crate::load::{window, Rate, Settings};

/// The `bench` quest, encoded once (every copy carries the same seq).
pub fn bench_frame() -> Vec<u8> {
    let mut frame = Vec::new();
    encode_quest(&mut frame, Some(1), "bench", &Value::Map(Vec::new())).expect("encode");
    frame
}

fn connect(endpoint: &str) -> TcpStream {
    let stream = TcpStream::connect(endpoint).expect("raw connect");
    stream.set_nodelay(true).expect("nodelay");
    stream
}

/// The length of the complete answer frame at the start of `buf`, and
/// whether it is an error answer; `None` while it is incomplete.
fn next_answer(buf: &[u8]) -> Option<(usize, bool)> {
    if buf.len() < 16 {
        return None;
    }
    let psize = u32::from_le_bytes(buf[8..12].try_into().expect("4 bytes"));
    let len = 16 + psize as usize;
    (buf.len() >= len).then_some((len, buf[7] != 0))
}

/// Splits complete answer frames off the front of `buf`: returns
/// (frames, error answers, bytes consumed).
fn scan(buf: &[u8]) -> (usize, u64, usize) {
    let (mut pos, mut frames, mut errors) = (0, 0, 0);
    while let Some((len, error)) = next_answer(&buf[pos..]) {
        errors += u64::from(error);
        pos += len;
        frames += 1;
    }
    (frames, errors, pos)
}

/// A ping-pong client: one socket, one quest at a time. With `spin` it
/// reads in a busy loop (non-blocking) instead of sleeping in `read`, which
/// shows the floor without the cost of waking a sleeping thread and CPU.
pub struct PingPong {
    stream: TcpStream,
    frame: Vec<u8>,
    buf: Vec<u8>,
}

impl PingPong {
    pub fn new(endpoint: &str, spin: bool) -> PingPong {
        let stream = connect(endpoint);
        stream.set_nonblocking(spin).expect("nonblocking");
        PingPong {
            stream,
            frame: bench_frame(),
            buf: vec![0u8; 4096],
        }
    }

    /// One quest and its answer; true when the answer is not an error.
    pub fn call(&mut self) -> bool {
        self.stream.write_all(&self.frame).expect("raw write");
        let mut have = 0;
        loop {
            let n = match self.stream.read(&mut self.buf[have..]) {
                Ok(0) => panic!("the server closed the connection"),
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    std::hint::spin_loop();
                    continue;
                }
                Err(e) => panic!("raw read: {e}"),
            };
            have += n;
            let (frames, errors, _) = scan(&self.buf[..have]);
            if frames == 1 {
                return errors == 0;
            }
        }
    }
}

/// Ping-pong like [`PingPong`], but a separate reader thread reads the
/// answers and hands each to the caller through a channel: the same thread
/// handoff that any client with a dedicated reader thread pays.
pub struct Handoff {
    stream: TcpStream,
    frame: Vec<u8>,
    answers: std::sync::mpsc::Receiver<bool>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Handoff {
    pub fn new(endpoint: &str) -> Handoff {
        let stream = connect(endpoint);
        let mut rd = stream.try_clone().expect("clone socket");
        let (tx, answers) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            let mut have = 0;
            while let Ok(n) = rd.read(&mut buf[have..]) {
                if n == 0 {
                    return;
                }
                have += n;
                let mut pos = 0;
                while let Some((len, error)) = next_answer(&buf[pos..have]) {
                    if tx.send(!error).is_err() {
                        return;
                    }
                    pos += len;
                }
                buf.copy_within(pos..have, 0);
                have -= pos;
            }
        });
        Handoff {
            stream,
            frame: bench_frame(),
            answers,
            reader: Some(reader),
        }
    }

    /// One quest and its answer; true when the answer is not an error.
    pub fn call(&mut self) -> bool {
        self.stream.write_all(&self.frame).expect("raw write");
        self.answers.recv().expect("the reader thread ended")
    }
}

impl Drop for Handoff {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// Throughput with `depth` quests in flight: one writer thread refills,
/// one reader thread counts answers.
pub fn throughput(endpoint: &str, depth: usize, s: &Settings) -> Rate {
    const BATCH: usize = 1024;
    let frame = bench_frame();
    let batch: Vec<u8> = frame.repeat(BATCH);
    let mut writer_stream = connect(endpoint);
    let mut reader_stream = writer_stream.try_clone().expect("clone socket");
    reader_stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("read timeout");
    let stop = AtomicBool::new(false);
    let inflight = AtomicUsize::new(0);
    let done = AtomicU64::new(0);
    let errors = AtomicU64::new(0);
    let mut rate = std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let cur = inflight.load(Ordering::Acquire);
                if cur >= depth {
                    std::thread::park_timeout(Duration::from_millis(10));
                    continue;
                }
                let k = (depth - cur).min(BATCH);
                inflight.fetch_add(k, Ordering::AcqRel);
                writer_stream
                    .write_all(&batch[..k * frame.len()])
                    .expect("raw write");
            }
        });
        let writer_thread = writer.thread().clone();
        let (stop, inflight, done, errors) = (&stop, &inflight, &done, &errors);
        let reader_stream = &mut reader_stream;
        scope.spawn(move || {
            let mut buf = vec![0u8; 256 * 1024];
            let mut have = 0;
            loop {
                match reader_stream.read(&mut buf[have..]) {
                    Ok(0) => panic!("the server closed the connection"),
                    Ok(n) => have += n,
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(e) => panic!("raw read: {e}"),
                }
                let (frames, errs, used) = scan(&buf[..have]);
                buf.copy_within(used..have, 0);
                have -= used;
                if frames > 0 {
                    if errs > 0 {
                        errors.fetch_add(errs, Ordering::Relaxed);
                    }
                    done.fetch_add(frames as u64, Ordering::Relaxed);
                    inflight.fetch_sub(frames, Ordering::AcqRel);
                    writer_thread.unpark();
                }
                if stop.load(Ordering::Relaxed) && inflight.load(Ordering::Acquire) == 0 {
                    return;
                }
            }
        });
        let rate = window(s, || done.load(Ordering::Relaxed));
        stop.store(true, Ordering::Relaxed);
        writer.thread().unpark();
        rate
    });
    rate.errors = errors.load(Ordering::Relaxed);
    rate
}
