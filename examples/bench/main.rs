//! A release-mode benchmark of the FPNN client and the RTM layer.
//!
//! ```text
//! cargo run --release --example bench
//! BENCH_SECONDS=1 cargo run --release --example bench   # shorter rows
//! ```
//!
//! The servers run in child processes (this same binary, started with
//! `--server fpnn|hold|rtm`), so the client's CPU time, read from
//! `/proc/self/stat`, is the client's alone:
//!
//! * `fpnn`: a minimal fast FPNN server built from the crate's codec,
//!   answering `bench` with `{ok: true}`;
//! * `hold`: reads quests and never answers (heap per pending call);
//! * `rtm`: the crate's `RtmEmulator` (signatures checked, rooms kept);
//! * `emu-N`: an `RtmEmulator` whose store holds N messages (the
//!   emulator's rows, `emulator.rs`).
//!
//! Every figure of the SDK is printed beside the limit measured in the same
//! run against the same server: a raw `TcpStream` client writing
//! pre-encoded frames with no bookkeeping (for the RTM rows: the same
//! signed quest built by hand and sent through `FpnnClient`).
//!
//! `BENCH_SECONDS` (default 2) is the measured time of each throughput row
//! (after a short warm-up). With `--features metrics`, a pair of rows
//! measures the `metrics` observer's cost (`BENCH_ONLY_METRICS=1`: only
//! those; `BENCH_METRICS_NOOP=1`: without a recorder, the observer alone).
//! `BENCH_COUNT_CALLS=N` runs exactly N pipelined calls and exits, for
//! instruction counts under callgrind (see `count.rs`).

mod alloc;
mod count;
mod emulator;
mod floor;
mod load;
mod observed;
mod raw;
mod server;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rmpv::Value;
use rtm_server_sdk::{ClientConfig, FpnnClient, RtmServerClient};

use load::{FpnnBench, FpnnSignedCount, Percentiles, Rate, RtmCount, Settings, Target};
use server::{ServerProc, PID, SECRET};

const LATENCY_WARMUP: usize = 2_000;
const LATENCY_CALLS: usize = 20_000;
const LATENCY_ROUND: usize = 1_000;
const MEMORY_PENDING: usize = 100_000;
const FLOOR_CALLS: usize = 2_000_000;
const RID: i64 = 4242;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() >= 3 && args[1] == "--server" {
        server::serve(&args[2]);
    }
    if let Err(e) = run() {
        eprintln!("bench failed: {e}");
        std::process::exit(1);
    }
}

fn settings() -> Settings {
    let secs = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| *v > 0.0)
        .unwrap_or(2.0);
    Settings {
        warmup: Duration::from_secs_f64((secs * 0.15).clamp(0.05, 0.5)),
        measure: Duration::from_secs_f64(secs),
    }
}

/// `12345678.9` as `12,345,679`.
fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        f64::NAN
    }
}

fn rate_header(ours: &str, base: &str) {
    let pair = format!("{ours}/{base}");
    println!(
        "{:<36} {:>11} {:>11} {:>8}   {:>7} {:>7} {:>7}   {:>6} {:>6}   {:>7}",
        "", "calls/s", "", "", "CPU us/call", "", "", "ctx switches/call", "", "errors"
    );
    println!(
        "{:<36} {:>11} {:>11} {:>8}   {:>7} {:>7} {:>7}   {:>6} {:>6}   {:>7}",
        "row", ours, base, pair, ours, base, pair, ours, base, pair
    );
}

fn rate_row(label: &str, ours: Rate, base: Rate) {
    println!(
        "{:<36} {:>11} {:>11} {:>8.2}   {:>7.2} {:>7.2} {:>7.2}   {:>6.2} {:>6.2}   {:>7}",
        label,
        thousands(ours.calls_per_sec),
        thousands(base.calls_per_sec),
        ratio(ours.calls_per_sec, base.calls_per_sec),
        ours.cpu_us_per_call,
        base.cpu_us_per_call,
        ratio(ours.cpu_us_per_call, base.cpu_us_per_call),
        ours.switches_per_call,
        base.switches_per_call,
        format!("{}/{}", ours.errors, base.errors),
    );
}

fn latency_row(label: &str, ours: Duration, base: Duration) {
    println!(
        "{:<36} {:>9.1}us {:>9.1}us {:>8.2}",
        label,
        us(ours),
        us(base),
        ratio(us(ours), us(base)),
    );
}

fn verdict(pass: bool) -> &'static str {
    if pass {
        "PASS"
    } else {
        "MISS"
    }
}

struct Memory {
    frame_len: usize,
    gross_per_pending: f64,
    net_per_pending: f64,
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let s = settings();
    let cfg = ClientConfig::default().quest_timeout(Duration::from_secs(60));
    if let Ok(calls) = std::env::var("BENCH_COUNT_CALLS") {
        // Instruction counts: exactly this many calls (see `count.rs`).
        let fpnn_srv = ServerProc::spawn("fpnn")?;
        return count::run(&fpnn_srv.endpoint(), &cfg, calls.parse()?);
    }
    let fpnn_srv = ServerProc::spawn("fpnn")?;
    let hold_srv = ServerProc::spawn("hold")?;
    let rtm_srv = ServerProc::spawn("rtm")?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "rtm-server-sdk bench: {cores} cores, {:.1} s per throughput row (+{:.2} s warm-up), \
         servers in child processes (fpnn pid {}, hold pid {}, rtm pid {})",
        s.measure.as_secs_f64(),
        s.warmup.as_secs_f64(),
        fpnn_srv.pid(),
        hold_srv.pid(),
        rtm_srv.pid(),
    );
    println!("client CPU = utime+stime of this process per completed call");
    println!();

    if std::env::var("BENCH_ONLY_EMULATOR").is_ok() {
        // Only the emulator's rows.
        emulator::rows(&rtm_srv, &fpnn_srv, &cfg, &s)?;
        return Ok(());
    }
    if std::env::var("BENCH_ONLY_METRICS").is_ok() {
        return observed::rows(&fpnn_srv.endpoint(), &cfg, &s);
    }
    if std::env::var("BENCH_ONLY_RTM_LATENCY").is_ok() {
        // Profiling aid: only the RTM latency rows.
        rtm_rows(&rtm_srv, &cfg, &s)?;
        return Ok(());
    }

    // ---- FPNN client vs raw TcpStream, against the `fpnn` server ----
    let ep = fpnn_srv.endpoint();
    let mut raw_cache: BTreeMap<usize, Rate> = BTreeMap::new();
    let mut raw_at = |depth: usize| -> Rate {
        *raw_cache
            .entry(depth)
            .or_insert_with(|| raw::throughput(&ep, depth, &s))
    };
    let client = FpnnClient::new(ep.clone(), cfg.clone())?;
    client.connect()?;
    let bench = FpnnBench(client.clone());
    assert!(bench.call(), "the bench method must answer");

    if let Ok(depth) = std::env::var("BENCH_ONLY_PIPELINED") {
        // Profiling aid: only the pipelined row at this depth, e.g.
        // `BENCH_ONLY_PIPELINED=10000 perf record -g target/release/examples/bench`.
        let depth: usize = depth.parse()?;
        let ours = load::pipelined(FpnnBench(client.clone()), depth, &s);
        rate_header("ours", "raw");
        rate_row(
            &format!("pipelined {depth:>5} in flight (callbacks)"),
            ours,
            raw_at(depth),
        );
        return Ok(());
    }
    if let Ok(threads) = std::env::var("BENCH_ONLY_BLOCKING") {
        // Profiling aid: only the blocking row with this many threads.
        let threads: usize = threads.parse()?;
        let ours = load::blocking(&bench, threads, &s);
        rate_header("ours", "raw");
        rate_row(
            &format!("blocking {threads:>2} thr (raw {threads:>2} in flight)"),
            ours,
            raw_at(threads),
        );
        return Ok(());
    }

    println!("== FpnnClient vs raw TcpStream client (same `fpnn` server process) ==");
    rate_header("ours", "raw");
    let mut blocking = BTreeMap::new();
    for threads in [1, 2, 4, 16, 64] {
        let base = raw_at(threads);
        let ours = load::blocking(&bench, threads, &s);
        blocking.insert(threads, ours);
        let label = format!("blocking {threads:>2} thr (raw {threads:>2} in flight)");
        rate_row(&label, ours, base);
    }
    let mut pipelined = BTreeMap::new();
    for depth in [1, 100, 10_000] {
        let base = raw_at(depth);
        let ours = load::pipelined(FpnnBench(client.clone()), depth, &s);
        pipelined.insert(depth, (ours, base));
        let label = format!("pipelined {depth:>5} in flight (callbacks)");
        rate_row(&label, ours, base);
    }
    // The floor: the same bookkeeping on one thread without I/O.
    let floor_us = floor::per_call_us(FLOOR_CALLS, 1_000);
    let (_, p10k_raw) = pipelined[&10_000];
    // The raw row is bound by the server, which spends one core on it (the
    // raw client needs ~0.01 us/call): 1/raw_rate of a core per quest.
    // Sharing the machine's cores with it, a client that spends at least
    // the floor per call reaches at most `ceiling` of the raw rate.
    let server_us = 1e6 / p10k_raw.calls_per_sec;
    let ceiling = (cores as f64 / (server_us + floor_us) / p10k_raw.calls_per_sec * 1e6).min(1.0);
    println!(
        "{:<36} {:>11} {:>11} {:>8.2}   {:>7.2}   (one thread, no I/O: encode, box + file \
         the callback, decode the answer, run it; the ratio: the most a client doing this \
         much can reach on {cores} cores shared with the server)",
        "in-process floor per call",
        thousands(1e6 / floor_us),
        thousands(p10k_raw.calls_per_sec),
        ceiling,
        floor_us,
    );
    let mut pp = raw::PingPong::new(&ep, false);
    let mut spin = raw::PingPong::new(&ep, true);
    let mut handoff = raw::Handoff::new(&ep);
    let lat = load::latencies(
        &mut [
            &mut || bench.call(),
            &mut || pp.call(),
            &mut || spin.call(),
            &mut || handoff.call(),
        ],
        LATENCY_WARMUP,
        LATENCY_CALLS,
        LATENCY_ROUND,
    );
    let [(our_lat, our_err), (raw_lat, raw_err), (spin_lat, spin_err), (hand_lat, hand_err)] =
        lat[..]
    else {
        unreachable!("four subjects")
    };
    drop((pp, spin, handoff));
    println!();
    println!(
        "{:<36} {:>11} {:>11} {:>8}   ({LATENCY_CALLS} sequential calls each after \
         {LATENCY_WARMUP}, taking turns every {LATENCY_ROUND}; errors ours/raw/busy/handoff {our_err}/{raw_err}/{spin_err}/{hand_err})",
        "latency", "ours", "raw", "ours/raw"
    );
    latency_row("latency p50", our_lat.p50, raw_lat.p50);
    latency_row("latency p99", our_lat.p99, raw_lat.p99);
    // Not targets, for reading the above: the raw client busy-polling its
    // socket (nothing sleeps), and the raw client with a reader thread that
    // hands each answer to the caller (the handoff our design pays).
    latency_row("latency p50 vs busy-polling raw", our_lat.p50, spin_lat.p50);
    latency_row("latency p99 vs busy-polling raw", our_lat.p99, spin_lat.p99);
    latency_row(
        "latency p50 vs raw + reader thread",
        our_lat.p50,
        hand_lat.p50,
    );
    latency_row(
        "latency p99 vs raw + reader thread",
        our_lat.p99,
        hand_lat.p99,
    );
    drop(bench);
    client.close();
    drop(client);
    println!();

    // ---- heap per pending call, against the `hold` server ----
    let mem = memory(&hold_srv, &cfg)?;
    println!();

    // ---- the RTM layer vs the same signed quest through FpnnClient ----
    let rtm_p10k = rtm_rows(&rtm_srv, &cfg, &s)?;
    println!();
    let rtm_fast = rtm_fast_rows(&fpnn_srv, &cfg, &s)?;
    println!();
    let emu = emulator::rows(&rtm_srv, &fpnn_srv, &cfg, &s)?;
    println!();
    observed::rows(&fpnn_srv.endpoint(), &cfg, &s)?;

    // ---- summary ----
    let (p10k_ours, p10k_raw) = pipelined[&10_000];
    let p10k = ratio(p10k_ours.calls_per_sec, p10k_raw.calls_per_sec);
    // The client's CPU per pipelined call against the floor of the same
    // bookkeeping without I/O: what this machine lets a client reach,
    // whatever the server takes.
    let cpu_vs_floor = ratio(p10k_ours.cpu_us_per_call, floor_us);
    let p50 = ratio(us(our_lat.p50), us(raw_lat.p50));
    let p50_handoff = ratio(us(our_lat.p50), us(hand_lat.p50));
    let scaling = ratio(blocking[&2].calls_per_sec, blocking[&1].calls_per_sec);
    println!(
        "summary: pipelined-10k client CPU/call = {cpu_vs_floor:.2}x the in-process floor \
         (target <= 3: {}; calls/s ours/raw = {p10k:.2}); \
         latency p50 ours/raw = {p50:.2} (target <= 1.3: {}; \
         vs raw + reader thread {p50_handoff:.2}); \
         blocking 1->2 threads scaling = {scaling:.2}x; \
         heap/pending = {:.0} B ({:.0} B with the {} B frame; target < 512: {}); \
         rtm/fpnn pipelined-10k calls/s = {:.2} (emulator), {rtm_fast:.2} (fast server); \
         in-process floor {floor_us:.3} us/call: at most {ceiling:.2} of raw pipelined-10k on {cores} cores; \
         emulator/fast signed pipelined-10k = {:.2} (target >= 0.5: {}); \
         sends at 1M stored / at 0 = {:.2} (target >= 0.8: {}); \
         oldest/newest history page at 1M = {:.2}; \
         1000/10 connections = {:.2} (target >= 1: {})",
        verdict(cpu_vs_floor <= 3.0),
        verdict(p50 <= 1.3),
        mem.net_per_pending,
        mem.gross_per_pending,
        mem.frame_len,
        verdict(mem.net_per_pending < 512.0),
        rtm_p10k,
        emu.quest_ratio,
        verdict(emu.quest_ratio >= 0.5),
        emu.send_ratio,
        verdict(emu.send_ratio >= 0.8),
        emu.history_ratio,
        emu.conn_ratio,
        verdict(emu.conn_ratio >= 1.0),
    );
    drop((fpnn_srv, hold_srv, rtm_srv));
    println!("total wall time: {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Heap bytes per pending call: 100,000 callbacks in flight against a
/// server that never answers.
fn memory(hold: &ServerProc, cfg: &ClientConfig) -> Result<Memory, Box<dyn std::error::Error>> {
    // Room for every pending call under the cap.
    let cfg = cfg.clone().max_pending(MEMORY_PENDING * 2);
    let client = FpnnClient::new(hold.endpoint(), cfg)?;
    client.connect()?;
    let frame_len = raw::bench_frame().len();
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let base = alloc::start();
    for _ in 0..MEMORY_PENDING {
        let (ok, failed) = (ok.clone(), failed.clone());
        client.call_with_callback("bench", Value::Map(Vec::new()), None, move |r| {
            match r {
                Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                Err(_) => failed.fetch_add(1, Ordering::Relaxed),
            };
        });
    }
    let issued = t0.elapsed();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.pending_calls() < MEMORY_PENDING {
        if Instant::now() > deadline {
            alloc::stop();
            return Err(format!(
                "only {} of {MEMORY_PENDING} calls pending",
                client.pending_calls()
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let live = alloc::live();
    alloc::stop();
    let pending = client.pending_calls();
    let gross = (live - base) as f64 / MEMORY_PENDING as f64;
    let net = gross - frame_len as f64;
    let t1 = Instant::now();
    drop(client);
    let closed_in = t1.elapsed();
    let (ok, failed) = (ok.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    println!("== heap per pending call (`hold` server, never answers) ==");
    println!(
        "{pending} callbacks pending (issued in {:.0} ms); live heap grew {} B = {gross:.0} B per \
         pending call; minus the {frame_len} B encoded frame = {net:.0} B per pending call",
        issued.as_secs_f64() * 1e3,
        thousands((live - base) as f64),
    );
    println!(
        "client dropped in {:.0} ms: {}/{MEMORY_PENDING} callbacks completed ({ok} ok, {failed} \
         with an error, as expected: connection closed){}",
        closed_in.as_secs_f64() * 1e3,
        ok + failed,
        if ok + failed == MEMORY_PENDING {
            ""
        } else {
            "  <-- NOT ALL COMPLETED"
        },
    );
    Ok(Memory {
        frame_len,
        gross_per_pending: gross,
        net_per_pending: net,
    })
}

/// An RTM client and a raw FPNN client of `srv`, both checked to get the
/// member count 2 of room `RID` (filled first when `fill`).
fn rtm_pair(
    srv: &ServerProc,
    cfg: &ClientConfig,
    fill: bool,
) -> Result<(RtmServerClient, FpnnClient), Box<dyn std::error::Error>> {
    let ep = srv.endpoint();
    let rtm = RtmServerClient::with_config(PID, SECRET, ep.clone(), cfg.clone())?;
    if fill {
        rtm.pull_into_voice_room(RID, &[1001, 1002])?;
    }
    let count = rtm.get_voice_room_member_count(RID)?;
    assert_eq!(count, 2, "room {RID} must have 2 members");
    let fpnn = FpnnClient::new(ep, cfg.clone())?;
    fpnn.connect()?;
    assert!(
        FpnnSignedCount(fpnn.clone(), RID).call(),
        "the hand-signed quest must succeed"
    );
    Ok((rtm, fpnn))
}

/// The RTM rows; returns the pipelined-10k calls/s ratio RTM/FPNN.
fn rtm_rows(
    rtm_srv: &ServerProc,
    cfg: &ClientConfig,
    s: &Settings,
) -> Result<f64, Box<dyn std::error::Error>> {
    let (rtm, fpnn) = rtm_pair(rtm_srv, cfg, true)?;
    let ours = RtmCount(rtm.clone(), RID);
    let base = FpnnSignedCount(fpnn.clone(), RID);

    println!(
        "== RTM layer: RtmServerClient::get_voice_room_member_count vs the same signed quest \
         built by hand through FpnnClient (same `rtm` emulator process) =="
    );
    rate_header("rtm", "fpnn");
    let only_latency = std::env::var("BENCH_ONLY_RTM_LATENCY").is_ok();

    for threads in [1, 16].into_iter().filter(|_| !only_latency) {
        let b = load::blocking(&base, threads, s);
        let o = load::blocking(&ours, threads, s);
        rate_row(&format!("blocking {threads:>2} thr"), o, b);
    }
    let mut last = f64::NAN;
    for depth in [100, 10_000].into_iter().filter(|_| !only_latency) {
        let b = load::pipelined(FpnnSignedCount(fpnn.clone(), RID), depth, s);
        let o = load::pipelined(RtmCount(rtm.clone(), RID), depth, s);
        rate_row(&format!("pipelined {depth:>5} in flight (callbacks)"), o, b);
        last = ratio(o.calls_per_sec, b.calls_per_sec);
    }
    let lat = load::latencies(
        &mut [&mut || ours.call(), &mut || base.call()],
        500,
        5_000,
        LATENCY_ROUND,
    );
    print_latency_pair("latency p50 (5000 calls)", lat[0].0, lat[1].0);
    drop((ours, base));
    rtm.close();
    fpnn.close();
    Ok(last)
}

/// The RTM layer at full speed: the same pair of clients against the fast
/// `fpnn` server, which answers `getVoiceRoomMemberCount` without checking
/// signatures, so that the server does not hide the layer's own cost.
/// Returns the pipelined-10k calls/s ratio RTM/FPNN.
fn rtm_fast_rows(
    fpnn_srv: &ServerProc,
    cfg: &ClientConfig,
    s: &Settings,
) -> Result<f64, Box<dyn std::error::Error>> {
    let (rtm, fpnn) = rtm_pair(fpnn_srv, cfg, false)?;
    let ours = RtmCount(rtm.clone(), RID);
    let base = FpnnSignedCount(fpnn.clone(), RID);
    println!(
        "== RTM layer at full speed: the same pair against the fast `fpnn` server (signatures \
         not checked) =="
    );
    rate_header("rtm", "fpnn");
    let b = load::blocking(&base, 1, s);
    let o = load::blocking(&ours, 1, s);
    rate_row("blocking  1 thr", o, b);
    let b = load::pipelined(FpnnSignedCount(fpnn.clone(), RID), 10_000, s);
    let o = load::pipelined(RtmCount(rtm.clone(), RID), 10_000, s);
    rate_row("pipelined 10000 in flight (callbacks)", o, b);
    drop((ours, base));
    rtm.close();
    fpnn.close();
    Ok(ratio(o.calls_per_sec, b.calls_per_sec))
}

fn print_latency_pair(label: &str, ours: Percentiles, base: Percentiles) {
    latency_row(label, ours.p50, base.p50);
    latency_row(&label.replace("p50", "p99"), ours.p99, base.p99);
}
