//! The `metrics` feature emits the documented names and labels (through
//! `metrics-util`'s debugging recorder, installed for this binary).

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{via_callback, wait_until, watchdog};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::MetricKind;
use rtm_server_sdk::emulator::RtmEmulator;
use rtm_server_sdk::metrics::{self as m, MetricsObserver};
use rtm_server_sdk::{ClientConfig, RtmServerClient};

/// One metric: its kind, name and sorted labels.
type Id = (MetricKind, String, Vec<(String, String)>);

fn snapshot(s: &Snapshotter) -> HashMap<Id, DebugValue> {
    s.snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let (kind, key) = key.into_parts();
            let mut labels: Vec<(String, String)> = key
                .labels()
                .map(|l| (l.key().to_string(), l.value().to_string()))
                .collect();
            labels.sort();
            ((kind, key.name().to_string(), labels), value)
        })
        .collect()
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<_> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    v.sort();
    v
}

#[test]
fn the_metrics_feature_emits_the_documented_names_and_labels() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();
    watchdog(Duration::from_secs(60), move || {
        let emu = RtmEmulator::start(1, "s").unwrap();
        let observer = MetricsObserver::new().with_label("client", "test");
        let config = ClientConfig::default().observer(observer);
        let client = RtmServerClient::with_config(1, "s", emu.endpoint(), config).unwrap();
        client.get_voice_room_list().unwrap();
        via_callback(|cb| client.get_voice_room_list_with_callback(cb)).unwrap();
        emu.faults().set_fail("getVoiceRoomList", 200040);
        assert!(client.get_voice_room_list().is_err());
        emu.faults().clear_fail("getVoiceRoomList");
        // The client-wide metrics come from the timer, once a second.
        let mut seen = HashMap::new();
        let client_label = labels(&[("client", "test")]);
        let connected = (
            MetricKind::Gauge,
            m::CONNECTED.to_string(),
            client_label.clone(),
        );
        // The recorder hands out what changed since the last snapshot:
        // histogram samples are summed; the counters are given as totals
        // (once a second), so the largest is kept; the client-wide metrics
        // (set together, `connected` last) are read from the snapshot that
        // has the connection up.
        let mut histogram_samples = 0;
        let mut calls_seen: HashMap<Id, u64> = HashMap::new();
        let found = wait_until(Duration::from_secs(5), || {
            let snap = snapshot(&snapshotter);
            for (id, v) in &snap {
                match v {
                    DebugValue::Histogram(samples) if id.1 == m::CALL_DURATION => {
                        histogram_samples += samples.len();
                    }
                    DebugValue::Counter(n) if id.1 == m::CALLS => {
                        let total = calls_seen.entry(id.clone()).or_default();
                        *total = (*total).max(*n);
                    }
                    _ => {}
                }
            }
            let done = snap.get(&connected) == Some(&DebugValue::Gauge(1.0.into()))
                && calls_seen.values().sum::<u64>() == 3;
            if done {
                seen = snap;
            }
            done
        });
        assert!(found, "no {} in {seen:#?}", m::CONNECTED);
        let calls = |outcome: &str| {
            calls_seen.get(&(
                MetricKind::Counter,
                m::CALLS.to_string(),
                labels(&[
                    ("client", "test"),
                    ("method", "getVoiceRoomList"),
                    ("outcome", outcome),
                ]),
            ))
        };
        assert_eq!(calls("ok"), Some(&2), "{calls_seen:#?}");
        assert_eq!(calls("server"), Some(&1), "{calls_seen:#?}");
        assert_eq!(calls("timeout"), Some(&0), "{calls_seen:#?}");
        assert_eq!(histogram_samples, 3, "{seen:#?}");
        let get = |kind: MetricKind, name: &str| {
            seen.get(&(kind, name.to_string(), client_label.clone()))
        };
        assert_eq!(
            get(MetricKind::Gauge, m::CONNECTED),
            Some(&DebugValue::Gauge(1.0.into()))
        );
        assert_eq!(
            get(MetricKind::Gauge, m::PENDING),
            Some(&DebugValue::Gauge(0.0.into()))
        );
        assert_eq!(
            get(MetricKind::Counter, m::CONNECTS),
            Some(&DebugValue::Counter(1))
        );
        assert_eq!(
            get(MetricKind::Counter, m::RECONNECTS),
            Some(&DebugValue::Counter(0))
        );
        assert_eq!(
            get(MetricKind::Counter, m::CONNECT_FAILURES),
            Some(&DebugValue::Counter(0))
        );
        for name in [m::SENT_BYTES, m::RECEIVED_BYTES] {
            match get(MetricKind::Counter, name) {
                Some(DebugValue::Counter(n)) => assert!(*n > 3 * 16, "{name}: {n}"),
                other => panic!("{name}: {other:?}"),
            }
        }
        // Every name follows the conventions.
        for (kind, name, _) in seen.keys().chain(calls_seen.keys()) {
            assert!(name.starts_with("rtm_client_"), "{name}");
            match kind {
                MetricKind::Counter => assert!(name.ends_with("_total"), "{name}"),
                MetricKind::Histogram => assert!(name.ends_with("_seconds"), "{name}"),
                MetricKind::Gauge => assert!(!name.ends_with("_total"), "{name}"),
            }
        }
        client.close();
    });
}
