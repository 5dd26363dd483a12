//! Watching a client in production: a small load against the built-in
//! emulator, with the `metrics` feature's observer recording into a
//! Prometheus exporter that renders text without a server. Prints the
//! client's `stats()` before and after, and what Prometheus would scrape.
//!
//! ```text
//! cargo run --example metrics --features metrics,emulator
//! ```

use std::sync::mpsc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusBuilder;
use rtm_server_sdk::emulator::RtmEmulator;
use rtm_server_sdk::metrics::MetricsObserver;
use rtm_server_sdk::{ClientConfig, Result, RtmServerClient};

fn main() -> Result<()> {
    // The exporter: in a service, `install()` it with its HTTP listener;
    // here it only renders.
    let recorder = PrometheusBuilder::new().build_recorder();
    let prometheus = recorder.handle();
    metrics::set_global_recorder(recorder).expect("no other recorder is installed");

    let emulator = RtmEmulator::start(11000001, "secret")?;
    let config = ClientConfig::default()
        .quest_timeout(Duration::from_secs(5))
        .observer(MetricsObserver::new().with_label("client", "example"));
    let client = RtmServerClient::with_config(11000001, "secret", emulator.endpoint(), config)?;
    println!("stats before: {}", client.stats());

    // The load: blocking calls, callback calls, a refused call, a file.
    client.pull_into_voice_room(42, &[1001, 1002])?;
    for _ in 0..200 {
        client.get_voice_room_members(42)?;
    }
    let (tx, rx) = mpsc::channel();
    for _ in 0..1000 {
        let tx = tx.clone();
        client.get_voice_room_member_count_with_callback(42, move |r| {
            let _ = tx.send(r.is_ok());
        });
    }
    let ok = rx.iter().take(1000).filter(|ok| *ok).count();
    println!("1000 callback calls: {ok} ok");
    if let Err(e) = client.get_voice_room_members(7) {
        println!("a refused call: {e}");
    }
    client.send_file(1001, 1002, b"hello", &Default::default())?;
    // The gauges and connection counters are reported once a second.
    std::thread::sleep(Duration::from_millis(1200));

    println!("stats after:  {}", client.stats());
    println!("\n--- what an exporter would scrape ---\n");
    print!("{}", prometheus.render());
    client.close();
    Ok(())
}
