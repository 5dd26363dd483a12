//! Pushes: how the pushes a quest produces (messages to listeners, file
//! messages) reach the connections, one queue and sending thread per
//! connection, and [`RtmEmulator::push_to_all`].
//!
//! # Limits
//!
//! Each connection's queue of pushes not yet sent is bounded in pushes and
//! in bytes ([`PushQueueLimits`]; by default
//! [`DEFAULT_PUSH_QUEUE_PUSHES`], 10,000 pushes, and
//! [`DEFAULT_PUSH_QUEUE_BYTES`], 16 MiB). Each connection's pushes are
//! written in order by its own thread, without waiting for the client's
//! answers, so a listener that stops reading falls behind: its socket
//! fills, the writes stall, and its queue grows. When a push would take
//! the queue over either limit, the emulator disconnects the listener,
//! drops its queue and logs a warning (the way Redis's
//! `client-output-buffer-limit` and NATS's slow consumers treat a consumer
//! that falls behind). Other listeners are not held back meanwhile.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmpv::Value;

use super::rtm::{RtmEmulator, RtmShared};
use super::server::{lock, ServerConn};
use crate::error::Error;

/// The default of [`PushQueueLimits::max_pushes`]: 10,000 pushes.
pub const DEFAULT_PUSH_QUEUE_PUSHES: usize = 10_000;

/// The default of [`PushQueueLimits::max_bytes`]: 16 MiB.
pub const DEFAULT_PUSH_QUEUE_BYTES: usize = 16 << 20;

/// How many pushes may wait for one connection before the emulator
/// disconnects it as a listener that falls behind (see the
/// [`EmulatorOptions::push_queue`](super::EmulatorOptions::push_queue)
/// option and the `--max-queued-pushes` / `--max-queued-push-bytes` flags
/// of the `rtm-emulator` program).
///
/// ```
/// use rtm_server_sdk::emulator::{EmulatorOptions, PushQueueLimits, RtmEmulator};
///
/// let options = EmulatorOptions::new().push_queue(PushQueueLimits::new(100, 1 << 20));
/// let emu = RtmEmulator::start_with_options(11000001, "secret", options).unwrap();
/// assert_eq!(emu.push_queue_limits().max_pushes, 100);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PushQueueLimits {
    /// The most pushes waiting for one connection (the push being sent not
    /// counted). Default [`DEFAULT_PUSH_QUEUE_PUSHES`].
    pub max_pushes: usize,
    /// The most bytes of pushes waiting for one connection, counted as the
    /// memory their payloads hold (about their msgpack size plus 32 bytes a
    /// value). Default [`DEFAULT_PUSH_QUEUE_BYTES`].
    pub max_bytes: usize,
}

impl Default for PushQueueLimits {
    fn default() -> Self {
        PushQueueLimits {
            max_pushes: DEFAULT_PUSH_QUEUE_PUSHES,
            max_bytes: DEFAULT_PUSH_QUEUE_BYTES,
        }
    }
}

impl PushQueueLimits {
    /// Limits of `max_pushes` pushes and `max_bytes` bytes per connection.
    /// A limit of 0 disconnects a listener on its first push that has to
    /// wait.
    #[must_use]
    pub fn new(max_pushes: usize, max_bytes: usize) -> Self {
        PushQueueLimits {
            max_pushes,
            max_bytes,
        }
    }
}

/// The memory a push payload holds, as counted against
/// [`PushQueueLimits::max_bytes`]: each value's own size plus the bytes of
/// its strings, binaries and extensions.
pub(crate) fn payload_bytes(v: &Value) -> usize {
    let own = std::mem::size_of::<Value>();
    own + match v {
        Value::String(s) => s.as_bytes().len(),
        Value::Binary(b) | Value::Ext(_, b) => b.len(),
        Value::Array(items) => items.iter().map(payload_bytes).sum(),
        Value::Map(entries) => entries
            .iter()
            .map(|(k, v)| payload_bytes(k) + payload_bytes(v))
            .sum(),
        _ => 0,
    }
}

/// One connection's waiting pushes and their bytes.
#[derive(Default)]
struct ConnQueue {
    items: VecDeque<(&'static str, Value, usize)>,
    bytes: usize,
}

/// The push queues of every connection, with their limits.
pub(crate) struct PushQueues {
    limits: PushQueueLimits,
    /// The pushes waiting for each connection; a connection has an entry
    /// while its push thread runs (see `send_outbox`).
    queues: Mutex<HashMap<u64, ConnQueue>>,
    /// How many listeners were disconnected for falling behind.
    dropped: AtomicU64,
}

/// What the push queues hold now (for the emulator's stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct QueueTotals {
    pub pushes: usize,
    pub bytes: usize,
    pub dropped: u64,
}

impl PushQueues {
    pub(crate) fn new(limits: PushQueueLimits) -> PushQueues {
        PushQueues {
            limits,
            queues: Mutex::new(HashMap::new()),
            dropped: AtomicU64::new(0),
        }
    }

    /// The pushes and bytes waiting in every queue, and how many listeners
    /// were disconnected so far.
    pub(crate) fn totals(&self) -> QueueTotals {
        let queues = lock(&self.queues);
        QueueTotals {
            pushes: queues.values().map(|q| q.items.len()).sum(),
            bytes: queues.values().map(|q| q.bytes).sum(),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

impl RtmEmulator {
    /// Pushes a two-way quest to every open connection at once and waits for
    /// all answers (each up to 10 s). The results are in connection order.
    pub fn push_to_all(&self, method: &str, payload: Value) -> Vec<Result<Value, Error>> {
        let conns = self.server().connections();
        std::thread::scope(|s| {
            let handles: Vec<_> = conns
                .iter()
                .map(|c| {
                    let payload = payload.clone();
                    s.spawn(move || c.push(method, payload))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(Error::closed("the push thread panicked")))
                })
                .collect()
        })
    }

    /// The per-connection push queue limits in force.
    #[must_use]
    pub fn push_queue_limits(&self) -> PushQueueLimits {
        self.shared.push_queues.limits
    }
}

impl RtmShared {
    /// Sends the pushes a quest produced to the RTM connections. Each
    /// connection has its own queue and sending thread (a write to a
    /// client that stopped reading blocks): a connection's pushes go out
    /// in order, and a client slow to read holds back no other
    /// connection's. The file
    /// gate sends its pushes here too. A connection whose queue would go
    /// over its limits is disconnected (see the [module docs](self)).
    pub(crate) fn send_outbox(self: &Arc<Self>, outbox: Vec<(u64, &'static str, Value)>) {
        if outbox.is_empty() {
            return;
        }
        let pq = &self.push_queues;
        let limits = pq.limits;
        let conns = lock(&self.conns);
        let mut start = Vec::new();
        let mut behind = Vec::new();
        {
            let mut queues = lock(&pq.queues);
            for (id, method, payload) in outbox {
                let Some(conn) = conns.get(&id) else { continue };
                if conn.is_closed() {
                    continue;
                }
                let size = payload_bytes(&payload);
                match queues.entry(id) {
                    std::collections::hash_map::Entry::Occupied(mut q) => {
                        let queue = q.get_mut();
                        if queue.items.len() >= limits.max_pushes
                            || queue.bytes.saturating_add(size) > limits.max_bytes
                        {
                            // Falls behind: disconnected, its queue freed
                            // (its push thread ends with it).
                            let (pushes, bytes) = (queue.items.len(), queue.bytes);
                            q.remove();
                            conn.close();
                            pq.dropped.fetch_add(1, Ordering::Relaxed);
                            behind.push((id, pushes, bytes));
                            continue;
                        }
                        queue.bytes += size;
                        queue.items.push_back((method, payload, size));
                    }
                    std::collections::hash_map::Entry::Vacant(q) => {
                        // The first push goes out at once (the thread
                        // takes it): an empty queue is within any limit.
                        q.insert(ConnQueue {
                            items: VecDeque::from([(method, payload, size)]),
                            bytes: size,
                        });
                        start.push(conn.clone());
                    }
                }
            }
        }
        drop(conns);
        for (id, pushes, bytes) in behind {
            log::warn!(
                "emulator: connection {id} disconnected: a listener that falls behind \
                 ({pushes} pushes, {bytes} bytes waiting; limits {} pushes, {} bytes)",
                limits.max_pushes,
                limits.max_bytes
            );
        }
        for conn in start {
            let shared = self.clone();
            let id = conn.id();
            let spawned = std::thread::Builder::new()
                .name(format!("emu-push-{id}"))
                .spawn(move || shared.push_worker(&conn));
            if let Err(e) = spawned {
                lock(&pq.queues).remove(&id);
                log::warn!("emulator: cannot spawn a push thread: {e}");
            }
        }
    }

    /// Sends the queued pushes of one connection, in order, until its
    /// queue is empty or the connection closed.
    fn push_worker(&self, conn: &ServerConn) {
        let queues = &self.push_queues.queues;
        loop {
            let next = {
                let mut queues = lock(queues);
                let next = match queues.get_mut(&conn.id()) {
                    Some(q) => q.items.pop_front().inspect(|(_, _, size)| {
                        q.bytes -= size;
                    }),
                    // Dropped for falling behind.
                    None => return,
                };
                match next {
                    Some(next) if !conn.is_closed() => next,
                    _ => {
                        queues.remove(&conn.id());
                        return;
                    }
                }
            };
            let (method, payload, _) = next;
            // Written in order without waiting for the answer (as the
            // gateway does): a listener is held back only by its own
            // reading. A write to a client that stopped reading blocks
            // (up to the server's write timeout) while its queue fills.
            match conn.push_with_timeout(method, payload, Duration::ZERO) {
                Ok(_) | Err(Error::Timeout { .. }) => {}
                Err(e) => {
                    log::debug!("emulator: push `{method}` to connection {}: {e}", conn.id());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use rmpv::Value;

    use super::*;
    use crate::emulator::testutil::*;
    use crate::emulator::EmulatorOptions;
    use crate::fpnn::codec::{map_get, Frame};

    #[test]
    fn push_to_all_connections() {
        let (emu, mut c1) = setup();
        let mut c2 = RawClient::connect(&emu.endpoint());
        // Make sure both are registered.
        c1.call("*ping", &map(vec![]));
        c2.call("*ping", &map(vec![]));
        std::thread::scope(|s| {
            let pushes =
                s.spawn(|| emu.push_to_all("pushevent", map(vec![("event", "login".into())])));
            let q = c1.read_quest();
            assert_eq!(q.method, "pushevent");
            c1.answer(q.seq.unwrap(), &map(vec![]));
            let q = c2.read_quest();
            c2.answer_error(q.seq.unwrap(), 20004, "no handler");
            let results = pushes.join().unwrap();
            assert_eq!(results.len(), 2);
            assert!(results[0].is_ok());
            assert_eq!(results[1].as_ref().unwrap_err().server_code(), Some(20004));
        });
        let methods: Vec<String> = emu.received().into_iter().map(|(m, _)| m).collect();
        assert_eq!(methods, ["*ping", "*ping"]);
        emu.clear_received();
        assert!(emu.received().is_empty());
    }

    #[test]
    fn a_client_slow_to_answer_pushes_holds_back_no_other() {
        let (emu, mut sender) = setup();
        let mut slow = RawClient::connect(&emu.endpoint());
        let mut fast = RawClient::connect(&emu.endpoint());
        for c in [&mut slow, &mut fast] {
            call(c, "setlisten", vec![("p2p", true.into())]).unwrap();
        }
        let t = Instant::now();
        for mid in 1..=3i64 {
            let msg = vec![
                ("from", 1.into()),
                ("to", 2.into()),
                ("mid", mid.into()),
                ("mtype", 30.into()),
                ("msg", "hi".into()),
                ("attrs", "".into()),
            ];
            call(&mut sender, "sendmsg", msg).unwrap();
        }
        // The fast listener gets every push, in order, while the slow one
        // still has not answered its first.
        for mid in 1..=3i64 {
            let q = fast.read_quest();
            assert_eq!(q.method, "pushmsg");
            assert_eq!(
                map_get(&q.payload, "mid").and_then(Value::as_i64),
                Some(mid)
            );
            fast.answer(q.seq.unwrap(), &map(vec![]));
        }
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        let q = slow.read_quest();
        assert_eq!(map_get(&q.payload, "mid").and_then(Value::as_i64), Some(1));
    }

    /// An emulator with these push queue limits, a sender, a listener that
    /// never reads after `setlisten` and a healthy listener that answers
    /// every push on its own thread (its pushes' `mid`s are sent back).
    fn slow_and_healthy(
        limits: PushQueueLimits,
    ) -> (
        RtmEmulator,
        RawClient,
        RawClient,
        std::sync::mpsc::Receiver<i64>,
    ) {
        let options = EmulatorOptions::new().push_queue(limits);
        let emu = RtmEmulator::start_with_options(PID, SECRET, options).unwrap();
        let sender = RawClient::connect(&emu.endpoint());
        let mut slow = RawClient::connect(&emu.endpoint());
        let mut healthy = RawClient::connect(&emu.endpoint());
        for c in [&mut slow, &mut healthy] {
            call(c, "setlisten", vec![("p2p", true.into())]).unwrap();
        }
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || loop {
            let Frame::Quest(q) = healthy.read_frame() else {
                continue;
            };
            healthy.answer(q.seq.unwrap(), &map(vec![]));
            let mid = map_get(&q.payload, "mid").and_then(Value::as_i64).unwrap();
            if tx.send(mid).is_err() {
                return;
            }
        });
        (emu, sender, slow, rx)
    }

    fn send_p2p(sender: &mut RawClient, mid: i64, msg: &str) {
        let msg = vec![
            ("from", 1.into()),
            ("to", 2.into()),
            ("mid", mid.into()),
            ("mtype", 30.into()),
            ("msg", msg.into()),
            ("attrs", "".into()),
        ];
        call(sender, "sendmsg", msg).unwrap();
    }

    /// Sends 64 KB messages until the slow listener is dropped (its
    /// socket buffers full, its queue at a limit), checking that the
    /// healthy one gets each; returns the most pushes and bytes queued.
    fn send_until_dropped(
        emu: &RtmEmulator,
        sender: &mut RawClient,
        healthy: &std::sync::mpsc::Receiver<i64>,
    ) -> (usize, usize) {
        let body = "x".repeat(64 * 1024);
        let (mut most_pushes, mut most_bytes) = (0, 0);
        let mut mid = 0;
        while emu.stats().listeners_dropped == 0 {
            mid += 1;
            assert!(mid <= 2000, "the slow listener was never dropped");
            send_p2p(sender, mid, &body);
            let stats = emu.stats();
            most_pushes = most_pushes.max(stats.queued_pushes);
            most_bytes = most_bytes.max(stats.queued_push_bytes);
            // The healthy listener gets every push, in order, while the
            // slow one's queue grows.
            assert_eq!(healthy.recv_timeout(Duration::from_secs(10)), Ok(mid));
        }
        // Its connection is gone, and nothing is queued for it.
        let t = Instant::now();
        while emu.stats().connections > 2 && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let stats = emu.stats();
        assert_eq!(stats.connections, 2, "{stats}");
        assert_eq!(stats.listeners_dropped, 1, "{stats}");
        assert_eq!((stats.queued_pushes, stats.queued_push_bytes), (0, 0));
        // The sender and the healthy listener are still served.
        mid += 1;
        send_p2p(sender, mid, "still there");
        assert_eq!(healthy.recv_timeout(Duration::from_secs(10)), Ok(mid));
        (most_pushes, most_bytes)
    }

    #[test]
    fn a_listener_that_stops_reading_is_dropped_at_its_push_limit() {
        let (emu, mut sender, _slow, healthy) = slow_and_healthy(PushQueueLimits::new(50, 1 << 30));
        let (most_pushes, _) = send_until_dropped(&emu, &mut sender, &healthy);
        // The slow listener's queue reached its 50 (plus, at times, the
        // healthy one's next push), never more.
        assert!(
            (50..=51).contains(&most_pushes),
            "{most_pushes} pushes queued"
        );
    }

    #[test]
    fn push_queue_bytes_are_bounded() {
        let limit = 1 << 20;
        let (emu, mut sender, _slow, healthy) =
            slow_and_healthy(PushQueueLimits::new(1_000_000, limit));
        let (_, most_bytes) = send_until_dropped(&emu, &mut sender, &healthy);
        // The slow listener's queue within its limit (plus, at times, the
        // healthy one's next push of 64 KB), and near it when dropped.
        let push = 65 * 1024;
        assert!(most_bytes <= limit + push, "{most_bytes} bytes queued");
        assert!(most_bytes > limit - push, "{most_bytes} bytes queued");
    }

    #[test]
    fn payload_bytes_counts_what_a_payload_holds() {
        let v = Value::from("x".repeat(1000));
        let size = payload_bytes(&v);
        assert!((1000..1100).contains(&size), "{size}");
        let nested = map(vec![("a", arr(&[1, 2, 3])), ("b", v)]);
        let size = payload_bytes(&nested);
        assert!(size >= 1000 + 7 * std::mem::size_of::<Value>(), "{size}");
    }

    #[test]
    fn default_limits() {
        let emu = RtmEmulator::start(PID, SECRET).unwrap();
        assert_eq!(
            emu.push_queue_limits(),
            PushQueueLimits::new(DEFAULT_PUSH_QUEUE_PUSHES, DEFAULT_PUSH_QUEUE_BYTES)
        );
        assert_eq!(DEFAULT_PUSH_QUEUE_PUSHES, 10_000);
        assert_eq!(DEFAULT_PUSH_QUEUE_BYTES, 16 * 1024 * 1024);
    }
}
