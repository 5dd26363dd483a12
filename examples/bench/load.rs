//! Load generators for the SDK clients (blocking threads, pipelined
//! callbacks, sequential latency) and the measurement window.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rmpv::Value;
use rtm_server_sdk::rtm::{next_salt, sign, unix_seconds};
use rtm_server_sdk::{FpnnClient, RtmServerClient};

use crate::server::{PID, SECRET};

/// How long each row runs.
pub struct Settings {
    pub warmup: Duration,
    pub measure: Duration,
}

/// One throughput measurement.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rate {
    pub calls_per_sec: f64,
    /// Client process CPU (user + system) per call, in microseconds.
    pub cpu_us_per_call: f64,
    /// Context switches of this process's threads per call: how often a
    /// thread had to sleep and be woken (the dominant cost of a handoff).
    pub switches_per_call: f64,
    /// Errors over the whole row (warm-up and drain included).
    pub errors: u64,
}

/// Median and 99th percentile.
#[derive(Debug, Clone, Copy)]
pub struct Percentiles {
    pub p50: Duration,
    pub p99: Duration,
}

impl Percentiles {
    pub fn of(mut samples: Vec<Duration>) -> Percentiles {
        samples.sort_unstable();
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        Percentiles {
            p50: at(0.50),
            p99: at(0.99),
        }
    }
}

fn ticks_per_sec() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// utime + stime of this process, in clock ticks (`/proc/self/stat` fields
/// 14 and 15).
pub fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("read /proc/self/stat");
    // The command name (field 2) may hold spaces: count from its `)`.
    let rest = &stat[stat.rfind(')').expect("stat format") + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3.
    let utime: u64 = fields[14 - 3].parse().expect("utime");
    let stime: u64 = fields[15 - 3].parse().expect("stime");
    utime + stime
}

/// Context switches (voluntary + involuntary) of every live thread of this
/// process (`/proc/self/task/*/status`).
pub fn context_switches() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("status")).ok())
        .flat_map(|status| {
            status
                .lines()
                .filter_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.ends_with("ctxt_switches")
                        .then(|| v.trim().parse::<u64>().ok())
                        .flatten()
                })
                .collect::<Vec<_>>()
        })
        .sum()
}

/// Lets the load warm up, then measures completed calls and client CPU over
/// the measurement time. `done` reads the completed-call counter.
pub fn window(s: &Settings, done: impl Fn() -> u64) -> Rate {
    std::thread::sleep(s.warmup);
    let (d0, c0, i0, t0) = (done(), cpu_ticks(), context_switches(), Instant::now());
    std::thread::sleep(s.measure);
    let (d1, c1, i1, elapsed) = (done(), cpu_ticks(), context_switches(), t0.elapsed());
    let calls = (d1 - d0).max(1) as f64;
    Rate {
        calls_per_sec: (d1 - d0) as f64 / elapsed.as_secs_f64(),
        cpu_us_per_call: (c1 - c0) as f64 / ticks_per_sec() * 1e6 / calls,
        switches_per_call: (i1 - i0) as f64 / calls,
        errors: 0,
    }
}

/// Something to call, in the blocking and the callback form.
pub trait Target: Send + Sync + 'static {
    /// One blocking call; true when it succeeded.
    fn call(&self) -> bool;
    /// One callback call; `done(ok)` runs on completion.
    fn start<F: FnOnce(bool) + Send + 'static>(&self, done: F);
}

/// `FpnnClient::call("bench", {})`.
pub struct FpnnBench(pub FpnnClient);

impl Target for FpnnBench {
    fn call(&self) -> bool {
        self.0.call("bench", Value::Map(Vec::new())).is_ok()
    }
    fn start<F: FnOnce(bool) + Send + 'static>(&self, done: F) {
        self.0
            .call_with_callback("bench", Value::Map(Vec::new()), None, move |r| {
                done(r.is_ok())
            });
    }
}

/// `RtmServerClient::get_voice_room_member_count(rid)`.
pub struct RtmCount(pub RtmServerClient, pub i64);

impl Target for RtmCount {
    fn call(&self) -> bool {
        self.0.get_voice_room_member_count(self.1).is_ok()
    }
    fn start<F: FnOnce(bool) + Send + 'static>(&self, done: F) {
        self.0
            .get_voice_room_member_count_with_callback(self.1, move |r| done(r.is_ok()));
    }
}

/// The same signed `getVoiceRoomMemberCount` quest, built by hand (fresh
/// salt, MD5 signature) and sent with `FpnnClient::call`: the server does
/// the same work as for [`RtmCount`].
pub struct FpnnSignedCount(pub FpnnClient, pub i64);

const COUNT_METHOD: &str = "getVoiceRoomMemberCount";

fn signed_count_payload(rid: i64) -> Value {
    let salt = next_salt();
    let ts = unix_seconds();
    let sign = sign(PID, SECRET, salt, COUNT_METHOD, ts);
    Value::Map(vec![
        (Value::from("pid"), Value::from(PID)),
        (Value::from("sign"), Value::from(sign)),
        (Value::from("salt"), Value::from(salt)),
        (Value::from("ts"), Value::from(ts)),
        (Value::from("rid"), Value::from(rid)),
    ])
}

impl Target for FpnnSignedCount {
    fn call(&self) -> bool {
        self.0
            .call(COUNT_METHOD, signed_count_payload(self.1))
            .is_ok()
    }
    fn start<F: FnOnce(bool) + Send + 'static>(&self, done: F) {
        self.0
            .call_with_callback(COUNT_METHOD, signed_count_payload(self.1), None, move |r| {
                done(r.is_ok())
            });
    }
}

/// A counter on its own cache line.
#[repr(align(128))]
#[derive(Default)]
struct Padded(AtomicU64);

/// `threads` threads share `target`, each calling in a loop.
pub fn blocking<T: Target>(target: &T, threads: usize, s: &Settings) -> Rate {
    let stop = AtomicBool::new(false);
    let done: Vec<Padded> = (0..threads).map(|_| Padded::default()).collect();
    let errors = AtomicU64::new(0);
    let mut rate = std::thread::scope(|scope| {
        for counter in &done {
            let (stop, errors) = (&stop, &errors);
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if target.call() {
                        counter.0.fetch_add(1, Ordering::Relaxed);
                    } else {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        let rate = window(s, || done.iter().map(|c| c.0.load(Ordering::Relaxed)).sum());
        stop.store(true, Ordering::Relaxed);
        rate
    });
    rate.errors = errors.load(Ordering::Relaxed);
    rate
}

struct Pump<T> {
    target: T,
    stop: AtomicBool,
    inflight: AtomicUsize,
    done: AtomicU64,
    errors: AtomicU64,
}

/// Issues one call whose callback issues the next one (until stopped).
fn pump<T: Target>(p: Arc<Pump<T>>) {
    let me = p.clone();
    p.target.start(move |ok| {
        if ok {
            me.done.fetch_add(1, Ordering::Relaxed);
        } else {
            me.errors.fetch_add(1, Ordering::Relaxed);
        }
        if me.stop.load(Ordering::Relaxed) {
            me.inflight.fetch_sub(1, Ordering::AcqRel);
        } else {
            pump(me);
        }
    });
}

/// Keeps `depth` callback calls in flight: each callback issues the next
/// call, so the client's own threads are the only ones working.
pub fn pipelined<T: Target>(target: T, depth: usize, s: &Settings) -> Rate {
    let p = Arc::new(Pump {
        target,
        stop: AtomicBool::new(false),
        inflight: AtomicUsize::new(depth),
        done: AtomicU64::new(0),
        errors: AtomicU64::new(0),
    });
    for _ in 0..depth {
        pump(p.clone());
    }
    let mut rate = window(s, || p.done.load(Ordering::Relaxed));
    p.stop.store(true, Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(90);
    while p.inflight.load(Ordering::Acquire) > 0 {
        assert!(Instant::now() < deadline, "pipelined calls did not drain");
        std::thread::sleep(Duration::from_millis(1));
    }
    rate.errors = p.errors.load(Ordering::Relaxed);
    rate
}

/// Sequential calls, one at a time: per-call latency of each subject.
/// The subjects take turns in rounds of `round` calls (after `warmup`
/// calls each), so that a change in the machine's load affects them alike.
/// Returns the percentiles and the error count of each subject.
pub fn latencies(
    subjects: &mut [&mut dyn FnMut() -> bool],
    warmup: usize,
    calls: usize,
    round: usize,
) -> Vec<(Percentiles, u64)> {
    let mut errors = vec![0u64; subjects.len()];
    let mut samples: Vec<Vec<Duration>> =
        subjects.iter().map(|_| Vec::with_capacity(calls)).collect();
    for (i, call) in subjects.iter_mut().enumerate() {
        for _ in 0..warmup {
            if !call() {
                errors[i] += 1;
            }
        }
    }
    let mut left = calls;
    while left > 0 {
        let n = left.min(round);
        for (i, call) in subjects.iter_mut().enumerate() {
            for _ in 0..n {
                let t = Instant::now();
                let ok = call();
                samples[i].push(t.elapsed());
                if !ok {
                    errors[i] += 1;
                }
            }
        }
        left -= n;
    }
    samples
        .into_iter()
        .zip(errors)
        .map(|(s, e)| (Percentiles::of(s), e))
        .collect()
}
