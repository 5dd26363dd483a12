//! A fixed number of calls, for instruction counts: `BENCH_COUNT_CALLS=N`
//! runs exactly N pipelined callback calls (`BENCH_COUNT_DEPTH` in flight,
//! default 10,000) against the `fpnn` server and exits. Run it under
//! callgrind twice (two values of N) and divide the difference of the
//! instruction counts by the difference of N: the client's instructions
//! per call, free of the machine's noise (the server is a child process,
//! not traced):
//!
//! ```text
//! BENCH_COUNT_CALLS=100000 valgrind --tool=callgrind target/release/examples/bench
//! ```
//!
//! With `--features metrics`, `BENCH_COUNT_METRICS=prometheus|debug|none`
//! gives the client the `metrics` observer with that recorder installed
//! (`none`: the facade's no-op recorder).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtm_server_sdk::{ClientConfig, FpnnClient};

use crate::load::{cpu_ticks, FpnnBench, Target};

struct Counted {
    target: FpnnBench,
    /// Calls still to issue.
    left: AtomicUsize,
    done: AtomicU64,
    errors: AtomicU64,
}

fn issue(c: Arc<Counted>) {
    let taken = c
        .left
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    if taken.is_err() {
        return;
    }
    let me = c.clone();
    c.target.start(move |ok| {
        if ok {
            me.done.fetch_add(1, Ordering::Relaxed);
        } else {
            me.errors.fetch_add(1, Ordering::Relaxed);
        }
        issue(me);
    });
}

/// Runs `calls` pipelined calls and prints what they took.
pub fn run(ep: &str, cfg: &ClientConfig, calls: usize) -> Result<(), Box<dyn std::error::Error>> {
    let depth = std::env::var("BENCH_COUNT_DEPTH")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(10_000);
    let cfg = observer(cfg.clone())?;
    let client = FpnnClient::new(ep, cfg)?;
    client.connect()?;
    let c = Arc::new(Counted {
        target: FpnnBench(client.clone()),
        left: AtomicUsize::new(calls),
        done: AtomicU64::new(0),
        errors: AtomicU64::new(0),
    });
    let (t0, c0) = (Instant::now(), cpu_ticks());
    for _ in 0..depth.min(calls) {
        issue(c.clone());
    }
    let deadline = Instant::now() + Duration::from_secs(3600);
    let finished = |c: &Counted| {
        c.done.load(Ordering::Relaxed) + c.errors.load(Ordering::Relaxed) >= calls as u64
    };
    while !finished(&c) {
        if Instant::now() > deadline {
            return Err("the counted calls did not finish".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let (elapsed, ticks) = (t0.elapsed(), cpu_ticks() - c0);
    println!(
        "{calls} pipelined calls ({depth} in flight): {} errors, {:.2} s, {:.0} ticks of CPU",
        c.errors.load(Ordering::Relaxed),
        elapsed.as_secs_f64(),
        ticks
    );
    drop(c);
    client.close();
    Ok(())
}

#[cfg(feature = "metrics")]
fn observer(cfg: ClientConfig) -> Result<ClientConfig, Box<dyn std::error::Error>> {
    let Ok(which) = std::env::var("BENCH_COUNT_METRICS") else {
        return Ok(cfg);
    };
    match which.as_str() {
        "prometheus" => {
            let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
            metrics::set_global_recorder(recorder)?;
        }
        "debug" => {
            metrics_util::debugging::DebuggingRecorder::new().install()?;
        }
        "none" => {}
        other => return Err(format!("BENCH_COUNT_METRICS={other}: prometheus|debug|none").into()),
    }
    Ok(cfg.observer(rtm_server_sdk::metrics::MetricsObserver::new()))
}

#[cfg(not(feature = "metrics"))]
fn observer(cfg: ClientConfig) -> Result<ClientConfig, Box<dyn std::error::Error>> {
    Ok(cfg)
}
