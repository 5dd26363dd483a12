//! The cost of watching: the pipelined-10k row with the `metrics`
//! feature's observer recording into a Prometheus recorder (installed for
//! the process, rendering nothing), beside the same row without an
//! observer, measured back to back. Only with `--features metrics`.

use rtm_server_sdk::ClientConfig;

use crate::load::Settings;

/// Prints the pair of rows.
#[cfg(feature = "metrics")]
pub fn rows(ep: &str, cfg: &ClientConfig, s: &Settings) -> Result<(), Box<dyn std::error::Error>> {
    use crate::load::{self, FpnnBench};
    use crate::{rate_header, rate_row};
    use metrics_exporter_prometheus::PrometheusBuilder;
    use rtm_server_sdk::metrics::MetricsObserver;
    use rtm_server_sdk::FpnnClient;
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    // `BENCH_METRICS_NOOP=1`: no recorder (the facade's no-op one), to tell
    // the observer's own cost from the exporter's.
    let noop = std::env::var("BENCH_METRICS_NOOP").is_ok();
    if !noop {
        metrics::set_global_recorder(recorder)?;
    }
    let plain = FpnnClient::new(ep, cfg.clone())?;
    plain.connect()?;
    let observed = FpnnClient::new(ep, cfg.clone().observer(MetricsObserver::new()))?;
    observed.connect()?;
    println!(
        "== the cost of the `metrics` observer ({}; {ROUNDS} alternating rounds each, averaged) ==",
        if noop {
            "no recorder"
        } else {
            "Prometheus recorder installed"
        }
    );
    rate_header("metrics", "none");
    let (mut none, mut with) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        none.push(load::pipelined(FpnnBench(plain.clone()), 10_000, s));
        with.push(load::pipelined(FpnnBench(observed.clone()), 10_000, s));
    }
    let (none, with) = (mean(&none), mean(&with));
    rate_row("pipelined 10000 in flight (callbacks)", with, none);
    let rendered = handle.render();
    println!(
        "(the exporter renders {} lines; CPU/call metrics/none: target <= 1.20)",
        rendered.lines().count()
    );
    println!();
    Ok(())
}

/// Rounds of each row, alternating (the machine is noisy).
#[cfg(feature = "metrics")]
const ROUNDS: usize = 3;

/// The mean of some rates.
#[cfg(feature = "metrics")]
fn mean(rates: &[crate::load::Rate]) -> crate::load::Rate {
    let n = rates.len().max(1) as f64;
    let mut m = rates[0];
    m.calls_per_sec = rates.iter().map(|r| r.calls_per_sec).sum::<f64>() / n;
    m.cpu_us_per_call = rates.iter().map(|r| r.cpu_us_per_call).sum::<f64>() / n;
    m.switches_per_call = rates.iter().map(|r| r.switches_per_call).sum::<f64>() / n;
    m.errors = rates.iter().map(|r| r.errors).sum();
    m
}

/// Without the feature: nothing to measure.
#[cfg(not(feature = "metrics"))]
pub fn rows(_: &str, _: &ClientConfig, _: &Settings) -> Result<(), Box<dyn std::error::Error>> {
    Ok(())
}
