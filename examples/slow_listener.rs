//! Measures what a listener that stops reading costs the emulator: one
//! connection listens to a group and never reads again, a healthy client
//! listens to the same group, and a sender sends `SLOW_MESSAGES` (default
//! 40,000) group messages of 1 KB. Prints this process's memory (VmRSS,
//! VmHWM on Linux) before and after, what the healthy listener received,
//! whether the slow one was disconnected, and the emulator's stats.
//! `SLOW_LISTENER=0` leaves the slow listener out: the memory the messages
//! themselves take (the emulator keeps them for the history methods).
//!
//! ```sh
//! cargo run --release --example slow_listener
//! SLOW_LISTENER=0 cargo run --release --example slow_listener
//! ```

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rmpv::Value;
use rtm_server_sdk::emulator::RtmEmulator;
use rtm_server_sdk::fpnn::codec::{encode_quest, Decoder, Frame};
use rtm_server_sdk::rtm::{
    next_salt, sign, unix_seconds, ListenTargets, PushHandler, PushMessage, SendOptions,
};
use rtm_server_sdk::RtmServerClient;

const PID: i64 = 11000001;
const SECRET: &str = "slow-listener";
const GID: i64 = 1;

/// A `/proc/self/status` line's value in kB (0 elsewhere than Linux).
fn status_kb(name: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn memory() -> String {
    format!(
        "VmRSS {} MB, VmHWM {} MB",
        status_kb("VmRSS:") / 1024,
        status_kb("VmHWM:") / 1024
    )
}

/// A connection that asks for the group's messages, reads the answer, and
/// never reads again.
fn slow_listener(endpoint: &str) -> TcpStream {
    let mut socket = TcpStream::connect(endpoint).expect("connect");
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let (salt, ts) = (next_salt(), unix_seconds());
    let payload = Value::Map(vec![
        ("pid".into(), PID.into()),
        (
            "sign".into(),
            sign(PID, SECRET, salt, "setlisten", ts).into(),
        ),
        ("salt".into(), salt.into()),
        ("ts".into(), ts.into()),
        ("gids".into(), Value::Array(vec![GID.into()])),
    ]);
    let mut frame = Vec::new();
    encode_quest(&mut frame, Some(1), "setlisten", &payload).expect("encode");
    socket.write_all(&frame).expect("send setlisten");
    let mut decoder = Decoder::new(1 << 20);
    let mut buf = [0u8; 4096];
    loop {
        if let Some(Frame::Answer(a)) = decoder.next_frame().expect("a frame") {
            a.into_result().expect("setlisten accepted");
            return socket;
        }
        let n = socket.read(&mut buf).expect("read the answer");
        assert!(n > 0, "closed before answering setlisten");
        decoder.feed(&buf[..n]);
    }
}

struct Counter(Arc<AtomicU64>);

impl PushHandler for Counter {
    fn on_group_message(&self, _client: &RtmServerClient, _m: &PushMessage) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

fn main() {
    let messages: u64 = std::env::var("SLOW_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40_000);
    let emu = RtmEmulator::start(PID, SECRET).expect("start the emulator");
    let endpoint = emu.endpoint();
    let slow =
        (std::env::var("SLOW_LISTENER").as_deref() != Ok("0")).then(|| slow_listener(&endpoint));

    let received = Arc::new(AtomicU64::new(0));
    let healthy = RtmServerClient::new(PID, SECRET, endpoint.clone()).expect("client");
    healthy.set_push_handler(Counter(received.clone()));
    healthy
        .add_listen(&ListenTargets::new().groups([GID]))
        .expect("listen");
    let sender = RtmServerClient::new(PID, SECRET, endpoint).expect("client");
    sender.add_group_members(GID, &[1, 2]).expect("members");

    println!("before: {}", memory());
    let body = "x".repeat(1024);
    let t = Instant::now();
    for _ in 0..messages {
        sender
            .send_group_message(1, GID, 30, &body, &SendOptions::default())
            .expect("send");
    }
    println!(
        "sent {messages} group messages of 1 KB in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    // Give the healthy listener the time to get them all.
    let deadline = Instant::now() + Duration::from_secs(60);
    while received.load(Ordering::Relaxed) < messages && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    println!("after:  {}", memory());
    println!(
        "healthy listener received {} of {messages}",
        received.load(Ordering::Relaxed)
    );
    if let Some(slow) = &slow {
        let addr = slow.local_addr().expect("addr");
        let connected = emu
            .server()
            .connections()
            .iter()
            .any(|c| c.peer_addr() == addr);
        println!(
            "slow listener: {}",
            if connected {
                "still connected"
            } else {
                "disconnected"
            }
        );
    }
    println!("emulator: {}", emu.stats());
    drop(slow);
}
