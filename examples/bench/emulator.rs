//! The emulator's own rows: how fast it answers signed quests next to the
//! fast test server, whether sending and history stay flat as its message
//! store grows, and how it serves many connections.
//!
//! * **Pipelined signed quests**: `RtmServerClient::get_voice_room_member_count`
//!   pipelined 10,000 deep from one connection, against the emulator and
//!   against the fast `fpnn` server (which answers without checking the
//!   signature); the ratio emulator/fast (goal: at least 0.5).
//! * **Sends as the store grows**: `send_group_message`, 100 in flight,
//!   into a group of an emulator holding no message, then into the same
//!   group of one holding [`FILLED`] messages (goal: at least 0.8 of the
//!   empty-store rate). The store is filled at start from a state file
//!   built in memory ([`state_json`]), not by network sends.
//! * **History pages**: a page of 20 (`get_group_message`, newest first),
//!   100 in flight, in a store of [`SMALL`] messages, and in the store of
//!   [`FILLED`] at its newest end (cursor 0) and at its oldest (a cursor
//!   just above the first messages): the same cost at any depth.
//! * **Connections**: signed `getVoiceRoomMemberCount` quests from raw
//!   sockets (one quest in flight on each), spread over 10 driver threads,
//!   with 10 and then with 1,000 connections open at once (goal: 1,000 at
//!   no less than the rate of 10).
//!
//! * **Saves**: a save of an emulator holding [`FILLED`] messages while a
//!   client calls it: the save's time and the longest call meanwhile.
//!
//! Each pair of rows alternates in rounds and keeps its best round
//! ([`ROUNDS`]), so that the machine's other load affects both alike.
//! `BENCH_ONLY_EMULATOR=1` runs only these rows
//! (`BENCH_ONLY_EMULATOR=connections`: only the connection rows; `=save`:
//! only the save row).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rmpv::Value;
use rtm_server_sdk::emulator::{EmulatorOptions, RtmEmulator};
use rtm_server_sdk::fpnn::codec::{encode_quest, Decoder, Frame};
use rtm_server_sdk::rtm::{next_salt, sign, unix_seconds, HistoryQuery, SendOptions};
use rtm_server_sdk::{ClientConfig, RtmServerClient};

use crate::load::{self, Rate, RtmCount, Settings, Target};
use crate::server::{ServerProc, PID, SECRET};
use crate::{rate_header, rate_row, ratio, rtm_pair, thousands, RID};

/// Messages in the big store.
pub const FILLED: usize = 1_000_000;
/// Messages in the small store.
pub const SMALL: usize = 1_000;
/// The group every stored and sent message belongs to.
const GID: i64 = 77;
/// Depth of the send and history rows.
const DEPTH: usize = 100;
/// Driver threads of the connection rows.
const DRIVERS: usize = 10;
/// Each pair of rows is measured in this many alternating rounds (a fifth
/// of the row time each), and each keeps its best round: the machine's
/// other load slows a row down, never speeds it up.
const ROUNDS: u32 = 5;

/// Measures the subjects in [`ROUNDS`] alternating rounds of a fifth of
/// the row time each; the best round of each (errors summed).
fn best_of(s: &Settings, subjects: &mut [&mut dyn FnMut(&Settings) -> Rate]) -> Vec<Rate> {
    let round = Settings {
        warmup: s.warmup,
        measure: s.measure / ROUNDS,
    };
    let mut best = vec![Rate::default(); subjects.len()];
    for _ in 0..ROUNDS {
        for (b, measure) in best.iter_mut().zip(subjects.iter_mut()) {
            let r = measure(&round);
            let errors = b.errors + r.errors;
            if r.calls_per_sec > b.calls_per_sec {
                *b = r;
            }
            b.errors = errors;
        }
    }
    best
}

/// The server-mode name of an emulator filled with `n` messages.
pub fn mode(n: usize) -> String {
    format!("emu-{n}")
}

/// An emulator whose group [`GID`] holds `n` messages (ids 1..=n, the
/// oldest first), started from a state file built in memory.
pub fn start_filled(n: usize) -> RtmEmulator {
    let options = EmulatorOptions::new().state_json(state_json(n));
    RtmEmulator::start_with_options(PID, SECRET, options).expect("start the filled emulator")
}

/// A state file holding `n` group messages.
pub fn state_json(n: usize) -> String {
    let mut s = String::with_capacity(n * 130 + 256);
    s.push_str(&format!(
        r#"{{"format":"rtm-emulator-state","version":1,"pid":{PID},"saved_at_ms":0,"state":{{"messages":{{"last_id":{n},"log":["#
    ));
    let base = (unix_seconds() - 86_400) * 1000;
    for i in 1..=n {
        if i > 1 {
            s.push(',');
        }
        s.push_str(&format!(
            r#"{{"id":{i},"target":{{"Group":{GID}}},"from":{},"mtype":30,"mid":{i},"msg":{{"Text":"stored message {i}"}},"attrs":"","mtime":{}}}"#,
            1000 + i % 100,
            base + i as i64
        ));
    }
    s.push_str("]}}}");
    s
}

/// `send_group_message` into [`GID`] with a fresh mid each time.
struct GroupSend(RtmServerClient);

impl Target for GroupSend {
    fn call(&self) -> bool {
        self.0
            .send_group_message(1001, GID, 30, "bench", &SendOptions::default())
            .is_ok()
    }
    fn start<F: FnOnce(bool) + Send + 'static>(&self, done: F) {
        self.0.send_group_message_with_callback(
            1001,
            GID,
            30,
            "bench",
            &SendOptions::default(),
            move |r| done(r.is_ok()),
        );
    }
}

/// A page of 20 of [`GID`]'s history, newest first, before `cursor`
/// (0: the newest page).
struct GroupPage(RtmServerClient, HistoryQuery);

impl GroupPage {
    fn new(client: RtmServerClient, cursor: i64) -> GroupPage {
        let q = HistoryQuery {
            last_id: cursor,
            ..Default::default()
        };
        GroupPage(client, q)
    }
}

impl Target for GroupPage {
    fn call(&self) -> bool {
        self.0
            .get_group_message(GID, 1001, &self.1)
            .is_ok_and(|p| p.messages.len() == 20)
    }
    fn start<F: FnOnce(bool) + Send + 'static>(&self, done: F) {
        self.0
            .get_group_message_with_callback(GID, 1001, &self.1, move |r| {
                done(r.is_ok_and(|p| p.messages.len() == 20))
            });
    }
}

/// What the summary line reports.
pub struct Summary {
    /// Emulator / fast server, pipelined-10k calls/s.
    pub quest_ratio: f64,
    /// Sends at [`FILLED`] / sends at 0.
    pub send_ratio: f64,
    /// History page at the oldest end / at the newest end of [`FILLED`].
    pub history_ratio: f64,
    /// 1,000 connections / 10 connections.
    pub conn_ratio: f64,
}

fn client(
    srv: &ServerProc,
    cfg: &ClientConfig,
) -> Result<RtmServerClient, Box<dyn std::error::Error>> {
    Ok(RtmServerClient::with_config(
        PID,
        SECRET,
        srv.endpoint(),
        cfg.clone(),
    )?)
}

/// Prints the emulator's rows.
pub fn rows(
    rtm_srv: &ServerProc,
    fpnn_srv: &ServerProc,
    cfg: &ClientConfig,
    s: &Settings,
) -> Result<Summary, Box<dyn std::error::Error>> {
    println!(
        "== the emulator: signed quests next to the fast server, sends and history as the \
         store grows, many connections =="
    );
    rate_header("emu", "base");
    if std::env::var("BENCH_ONLY_EMULATOR").is_ok_and(|v| v == "save") {
        // Profiling aid: only the save row.
        save_row()?;
        return Ok(Summary {
            quest_ratio: f64::NAN,
            send_ratio: f64::NAN,
            history_ratio: f64::NAN,
            conn_ratio: f64::NAN,
        });
    }
    if std::env::var("BENCH_ONLY_EMULATOR").is_ok_and(|v| v == "connections") {
        // Profiling aid: only the connection rows.
        let conn_ratio = connection_rows(rtm_srv, cfg, s)?;
        return Ok(Summary {
            quest_ratio: f64::NAN,
            send_ratio: f64::NAN,
            history_ratio: f64::NAN,
            conn_ratio,
        });
    }
    // Pipelined signed quests, emulator vs the fast server.
    let (emu_rtm, emu_fpnn) = rtm_pair(rtm_srv, cfg, true)?;
    let (fast_rtm, fast_fpnn) = rtm_pair(fpnn_srv, cfg, false)?;
    let [fast, emu] = best_of(
        s,
        &mut [
            &mut |s| load::pipelined(RtmCount(fast_rtm.clone(), RID), 10_000, s),
            &mut |s| load::pipelined(RtmCount(emu_rtm.clone(), RID), 10_000, s),
        ],
    )[..] else {
        unreachable!("two subjects")
    };
    rate_row("signed 10000 in flight (base: fast)", emu, fast);
    for c in [emu_rtm, fast_rtm] {
        c.close();
    }
    for c in [emu_fpnn, fast_fpnn] {
        c.close();
    }
    let quest_ratio = ratio(emu.calls_per_sec, fast.calls_per_sec);

    // Sends, into an empty store and into a full one.
    let empty_srv = ServerProc::spawn(&mode(0))?;
    let full_srv = ServerProc::spawn(&mode(FILLED))?;
    let small_srv = ServerProc::spawn(&mode(SMALL))?;
    let empty_client = client(&empty_srv, cfg)?;
    let full_client = client(&full_srv, cfg)?;
    let small_client = client(&small_srv, cfg)?;
    // The history rows first, while the stores hold just what they were
    // filled with.
    let [small_page, newest, oldest] = best_of(
        s,
        &mut [
            &mut |s| load::pipelined(GroupPage::new(small_client.clone(), 0), DEPTH, s),
            &mut |s| load::pipelined(GroupPage::new(full_client.clone(), 0), DEPTH, s),
            &mut |s| load::pipelined(GroupPage::new(full_client.clone(), 21), DEPTH, s),
        ],
    )[..] else {
        unreachable!("three subjects")
    };
    let [at_empty, at_full] = best_of(
        s,
        &mut [
            &mut |s| load::pipelined(GroupSend(empty_client.clone()), DEPTH, s),
            &mut |s| load::pipelined(GroupSend(full_client.clone()), DEPTH, s),
        ],
    )[..] else {
        unreachable!("two subjects")
    };
    rate_row(
        &format!("sends, {} stored (base: 0)", short(FILLED)),
        at_full,
        at_empty,
    );
    rate_row(
        &format!("page of 20, {} (base: {})", short(FILLED), short(SMALL)),
        newest,
        small_page,
    );
    rate_row(
        &format!("oldest page, {} (base: newest)", short(FILLED)),
        oldest,
        newest,
    );
    for c in [empty_client, full_client, small_client] {
        c.close();
    }
    drop((empty_srv, full_srv, small_srv));

    let conn_ratio = connection_rows(rtm_srv, cfg, s)?;
    save_row()?;
    Ok(Summary {
        quest_ratio,
        send_ratio: ratio(at_full.calls_per_sec, at_empty.calls_per_sec),
        history_ratio: ratio(oldest.calls_per_sec, newest.calls_per_sec),
        conn_ratio,
    })
}

/// The connection rows: 1,000 connections against 10; returns the ratio.
fn connection_rows(
    rtm_srv: &ServerProc,
    cfg: &ClientConfig,
    s: &Settings,
) -> Result<f64, Box<dyn std::error::Error>> {
    // The room the quests count (two members).
    let (rtm, fpnn) = rtm_pair(rtm_srv, cfg, true)?;
    rtm.close();
    fpnn.close();
    let ep = rtm_srv.endpoint();
    let ten_socks = open(&ep, 10)?;
    let mut thousand_socks = open(&ep, 1_000)?;
    let mut ten_socks = ten_socks;
    let [ten, thousand] = best_of(
        s,
        &mut [&mut |s| connections(&mut ten_socks, s), &mut |s| {
            connections(&mut thousand_socks, s)
        }],
    )[..] else {
        unreachable!("two subjects")
    };
    rate_row("1000 connections (base: 10)", thousand, ten);
    Ok(ratio(thousand.calls_per_sec, ten.calls_per_sec))
}

/// A save of an emulator holding [`FILLED`] messages (in this process)
/// while a client calls it in a loop: how long the save took, and the
/// longest call meanwhile (a save that held the state lock while
/// serialising would hold up calls for most of its time).
fn save_row() -> Result<(), Box<dyn std::error::Error>> {
    let emu = start_filled(FILLED);
    let client = RtmServerClient::new(PID, SECRET, emu.endpoint())?;
    client.pull_into_voice_room(RID, &[1001, 1002])?;
    let dir = std::env::temp_dir().join(format!("rtm-bench-save-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("state.json");
    // Calls in a loop while `during` runs; the longest call and how many.
    let calls_during = |during: &mut dyn FnMut()| {
        let stop = AtomicBool::new(false);
        std::thread::scope(|scope| {
            let caller = scope.spawn(|| {
                let (mut longest, mut calls) = (Duration::ZERO, 0u64);
                while !stop.load(Ordering::Relaxed) {
                    let t = std::time::Instant::now();
                    let _ = client.get_voice_room_member_count(RID);
                    longest = longest.max(t.elapsed());
                    calls += 1;
                }
                (longest, calls)
            });
            std::thread::sleep(Duration::from_millis(100));
            during();
            stop.store(true, Ordering::Relaxed);
            caller.join().expect("the caller thread")
        })
    };
    let mut saved = Ok(());
    let mut took = Duration::ZERO;
    let (longest, calls) = calls_during(&mut || {
        let t = std::time::Instant::now();
        saved = emu.save_state(&path);
        took = t.elapsed();
    });
    saved?;
    // The same time without a save: what the machine's load alone gives.
    let (idle_longest, idle_calls) = calls_during(&mut || std::thread::sleep(took));
    let size = std::fs::metadata(&path)?.len();
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "save of {} messages ({:.0} MB): {:.0} ms; the longest of {calls} calls made \
         meanwhile: {:.1} ms (without a save, the longest of {idle_calls}: {:.1} ms)",
        short(FILLED),
        size as f64 / 1e6,
        took.as_secs_f64() * 1e3,
        longest.as_secs_f64() * 1e3,
        idle_longest.as_secs_f64() * 1e3,
    );
    Ok(())
}

/// `1000000` as `1M`, `1000` as `1k`.
fn short(n: usize) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => thousands(n as f64),
    }
}

/// The frame of one signed `getVoiceRoomMemberCount` quest.
fn signed_frame(out: &mut Vec<u8>, seq: u32) {
    const METHOD: &str = "getVoiceRoomMemberCount";
    let salt = next_salt();
    let ts = unix_seconds();
    let payload = Value::Map(vec![
        (Value::from("pid"), Value::from(PID)),
        (
            Value::from("sign"),
            Value::from(sign(PID, SECRET, salt, METHOD, ts)),
        ),
        (Value::from("salt"), Value::from(salt)),
        (Value::from("ts"), Value::from(ts)),
        (Value::from("rid"), Value::from(RID)),
    ]);
    encode_quest(out, Some(seq), METHOD, &payload).expect("encode a quest");
}

/// One socket of the connection rows.
struct Sock {
    stream: TcpStream,
    decoder: Decoder,
}

impl Sock {
    /// Reads until one answer arrives; true when it is not an error.
    fn answer(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        loop {
            match self.decoder.next_frame() {
                Ok(Some(Frame::Answer(a))) => return Ok(a.into_result().is_ok()),
                Ok(Some(_)) => continue,
                Ok(None) => {}
                Err(e) => return Err(std::io::Error::other(e.to_string())),
            }
            let n = self.stream.read(buf)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.decoder.feed(&buf[..n]);
        }
    }
}

/// `conns` sockets to `ep`.
fn open(ep: &str, conns: usize) -> Result<Vec<Sock>, Box<dyn std::error::Error>> {
    let mut socks = Vec::with_capacity(conns);
    for _ in 0..conns {
        let stream = TcpStream::connect(ep)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        socks.push(Sock {
            stream,
            decoder: Decoder::new(1 << 20),
        });
    }
    Ok(socks)
}

/// Signed quests over every socket of `socks` at once, one in flight on
/// each, driven by [`DRIVERS`] threads (each writes a quest on every socket
/// it owns, then reads every answer).
fn connections(socks: &mut [Sock], s: &Settings) -> Rate {
    let per = socks.len().div_ceil(DRIVERS);
    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);
    let errors = AtomicU64::new(0);
    let mut rate = std::thread::scope(|scope| {
        for group in socks.chunks_mut(per) {
            let (stop, done, errors) = (&stop, &done, &errors);
            scope.spawn(move || {
                let mut frame = Vec::with_capacity(256);
                let mut buf = vec![0u8; 64 * 1024];
                let mut seq = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    for sock in group.iter_mut() {
                        seq = seq.wrapping_add(1);
                        frame.clear();
                        signed_frame(&mut frame, seq);
                        if sock.stream.write_all(&frame).is_err() {
                            errors.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                    }
                    for sock in group.iter_mut() {
                        match sock.answer(&mut buf) {
                            Ok(true) => done.fetch_add(1, Ordering::Relaxed),
                            Ok(false) => errors.fetch_add(1, Ordering::Relaxed),
                            Err(_) => {
                                errors.fetch_add(1, Ordering::Relaxed);
                                return;
                            }
                        };
                    }
                }
            });
        }
        let rate = load::window(s, || done.load(Ordering::Relaxed));
        stop.store(true, Ordering::Relaxed);
        rate
    });
    rate.errors = errors.load(Ordering::Relaxed);
    rate
}
