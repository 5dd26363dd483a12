//! What the emulator counts as it runs ([`RtmEmulator::stats`]): quests by
//! method, answers by code, open connections and the memory held in push
//! queues. The `rtm-emulator` program logs it every `--stats-every`
//! seconds.
//!
//! Counting is cheap: an atomic increment per quest for a method the
//! emulator implements and one for an OK answer; a short-held lock counts
//! an error answer by code. Other
//! method names (an SDK calling what the emulator does not implement, the
//! file gate's commands) are counted by name up to [`MAX_OTHER_METHODS`]
//! names, then together under `"(other)"`, so that a peer sending random
//! names cannot grow the table.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::rtm::{implemented_methods, RtmEmulator};
use super::server::{lock, Reply};

/// How many method names the emulator does not implement are counted one
/// by one; the calls of any further name count under `"(other)"`.
pub const MAX_OTHER_METHODS: usize = 64;

/// The name under which the calls past [`MAX_OTHER_METHODS`] names count.
const OTHER: &str = "(other)";

/// The code counted for a quest that got no answer (its connection was
/// closed instead, as `--drop-after` does).
pub const CLOSED_UNANSWERED: i64 = -1;

/// The emulator's counters (see the [module docs](self)).
pub(crate) struct Stats {
    /// Quests by method, for the methods the emulator implements; never
    /// changed after construction, so reading it takes no lock.
    calls: HashMap<&'static str, AtomicU64>,
    /// Quests of other method names.
    other_calls: Mutex<HashMap<String, u64>>,
    /// OK answers (most of them: no lock).
    ok_answers: AtomicU64,
    /// Other answers by code (an error code; [`CLOSED_UNANSWERED`]).
    answers: Mutex<HashMap<i64, u64>>,
}

impl Stats {
    pub(crate) fn new() -> Stats {
        Stats {
            calls: implemented_methods()
                .into_iter()
                .map(|m| (m, AtomicU64::new(0)))
                .collect(),
            other_calls: Mutex::new(HashMap::new()),
            ok_answers: AtomicU64::new(0),
            answers: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one quest of `method` and its reply.
    pub(crate) fn count(&self, method: &str, reply: &Reply) {
        match self.calls.get(method) {
            Some(n) => {
                n.fetch_add(1, Ordering::Relaxed);
            }
            None => {
                let mut other = lock(&self.other_calls);
                if let Some(n) = other.get_mut(method) {
                    *n += 1;
                } else if other.len() < MAX_OTHER_METHODS {
                    other.insert(method.to_string(), 1);
                } else {
                    *other.entry(OTHER.to_string()).or_insert(0) += 1;
                }
            }
        }
        let code = match reply {
            Reply::Error { code, .. } => *code,
            Reply::Close => CLOSED_UNANSWERED,
            _ => {
                self.ok_answers.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        *lock(&self.answers).entry(code).or_insert(0) += 1;
    }

    /// The calls by method (the methods called at least once) and the
    /// answers by code.
    fn counts(&self) -> (BTreeMap<String, u64>, BTreeMap<i64, u64>) {
        let mut calls: BTreeMap<String, u64> = self
            .calls
            .iter()
            .map(|(m, n)| (m.to_string(), n.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect();
        for (m, n) in lock(&self.other_calls).iter() {
            *calls.entry(m.clone()).or_insert(0) += n;
        }
        let mut answers: BTreeMap<i64, u64> =
            lock(&self.answers).iter().map(|(c, n)| (*c, *n)).collect();
        let ok = self.ok_answers.load(Ordering::Relaxed);
        if ok > 0 {
            *answers.entry(0).or_insert(0) += ok;
        }
        (calls, answers)
    }
}

/// A snapshot of an emulator's counters ([`RtmEmulator::stats`]): totals
/// since it started, and what it holds now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EmulatorStats {
    /// Quests by method (RTM connections and the file gate; `*ping` and
    /// `*key` not counted), the methods called at least once. Methods the
    /// emulator does not implement are counted too (see
    /// [`MAX_OTHER_METHODS`]).
    pub calls: BTreeMap<String, u64>,
    /// Answers by code: 0 for OK, the error code otherwise, and
    /// [`CLOSED_UNANSWERED`] (-1) for a quest whose connection was closed
    /// instead of answered.
    pub answers: BTreeMap<i64, u64>,
    /// The RTM connections open now.
    pub connections: usize,
    /// The file gate's connections open now.
    pub file_gate_connections: usize,
    /// The pushes waiting in every connection's push queue now.
    pub queued_pushes: usize,
    /// The memory those pushes hold, in bytes (as counted against
    /// [`PushQueueLimits::max_bytes`](super::PushQueueLimits::max_bytes)).
    pub queued_push_bytes: usize,
    /// The listeners disconnected for falling behind (their push queue
    /// reached its limit).
    pub listeners_dropped: u64,
}

impl EmulatorStats {
    /// Every quest counted.
    #[must_use]
    pub fn total_calls(&self) -> u64 {
        self.calls.values().sum()
    }

    /// What happened between `earlier` (a snapshot of the same emulator)
    /// and this snapshot: the calls, answers and dropped listeners counted
    /// in between; the connections and queues as they are now.
    #[must_use]
    pub fn since(&self, earlier: &EmulatorStats) -> EmulatorStats {
        fn minus<K: Ord + Clone>(
            now: &BTreeMap<K, u64>,
            before: &BTreeMap<K, u64>,
        ) -> BTreeMap<K, u64> {
            now.iter()
                .map(|(k, n)| (k.clone(), n.saturating_sub(*before.get(k).unwrap_or(&0))))
                .filter(|(_, n)| *n > 0)
                .collect()
        }
        EmulatorStats {
            calls: minus(&self.calls, &earlier.calls),
            answers: minus(&self.answers, &earlier.answers),
            listeners_dropped: self
                .listeners_dropped
                .saturating_sub(earlier.listeners_dropped),
            ..self.clone()
        }
    }
}

/// One line: `calls 12 (sendmsg 10, gettoken 2); answers 0:11 200010:1;
/// connections 3, file gate 0; push queues 0 pushes, 0 B; listeners
/// dropped 0`.
impl fmt::Display for EmulatorStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "calls {}", self.total_calls())?;
        if !self.calls.is_empty() {
            let mut by_count: Vec<_> = self.calls.iter().collect();
            by_count.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let parts: Vec<String> = by_count.iter().map(|(m, n)| format!("{m} {n}")).collect();
            write!(f, " ({})", parts.join(", "))?;
        }
        write!(f, "; answers")?;
        if self.answers.is_empty() {
            write!(f, " none")?;
        }
        for (code, n) in &self.answers {
            match *code {
                CLOSED_UNANSWERED => write!(f, " closed:{n}")?,
                code => write!(f, " {code}:{n}")?,
            }
        }
        write!(
            f,
            "; connections {}, file gate {}; push queues {} pushes, {} B; listeners dropped {}",
            self.connections,
            self.file_gate_connections,
            self.queued_pushes,
            self.queued_push_bytes,
            self.listeners_dropped
        )
    }
}

impl RtmEmulator {
    /// A snapshot of the emulator's counters: quests by method, answers by
    /// code, open connections, the pushes waiting in queues and the
    /// listeners dropped for falling behind.
    ///
    /// ```
    /// use rtm_server_sdk::emulator::RtmEmulator;
    /// use rtm_server_sdk::RtmServerClient;
    ///
    /// let emu = RtmEmulator::start(11000001, "secret").unwrap();
    /// let client = RtmServerClient::new(11000001, "secret", emu.endpoint()).unwrap();
    /// client.get_token(1001).unwrap();
    /// let stats = emu.stats();
    /// assert_eq!(stats.calls["gettoken"], 1);
    /// assert_eq!(stats.answers[&0], 1);
    /// println!("{stats}");
    /// ```
    #[must_use]
    pub fn stats(&self) -> EmulatorStats {
        let (calls, answers) = self.shared.stats.counts();
        let queues = self.shared.push_queues.totals();
        EmulatorStats {
            calls,
            answers,
            connections: self.server().connections().len(),
            file_gate_connections: self.file_gate.connections().len(),
            queued_pushes: queues.pushes,
            queued_push_bytes: queues.bytes,
            listeners_dropped: queues.dropped,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::codes;
    use crate::emulator::testutil::*;

    #[test]
    fn counts_after_a_scripted_run() {
        let (emu, mut c) = setup();
        // Registered once it answered.
        assert!(c.call("*ping", &map(vec![])).into_result().is_ok());
        assert_eq!(
            emu.stats(),
            EmulatorStats {
                connections: 1,
                ..EmulatorStats::default()
            }
        );
        for _ in 0..3 {
            call(&mut c, "getVoiceRoomList", vec![]).unwrap();
        }
        emu.faults().set_fail("gettoken", 200010);
        assert_eq!(
            code(call(&mut c, "gettoken", vec![("uid", 1.into())])),
            200010
        );
        // A bad signature, an unknown method, and `*ping` (not counted).
        let bad = signed_with(PID, "wrong", "getRTCRoomList", vec![]);
        assert_eq!(code(c.call("getRTCRoomList", &bad).into_result()), 200002);
        assert_eq!(
            code(c.call("noSuchMethod", &map(vec![])).into_result()),
            20004
        );
        assert!(c.call("*ping", &map(vec![])).into_result().is_ok());
        let before = emu.stats();
        // A quest answered by closing the connection.
        emu.faults().set_drop_after(1);
        let mut d = RawClient::connect(&emu.endpoint());
        call(&mut d, "getRTCRoomList", vec![]).unwrap();
        d.send(
            "getRTCRoomList",
            &signed_with(PID, SECRET, "getRTCRoomList", vec![]),
        );
        d.expect_closed();
        let t = Instant::now();
        while emu.stats().connections != 1 && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let stats = emu.stats();
        let calls: Vec<(&str, u64)> = stats.calls.iter().map(|(m, n)| (m.as_str(), *n)).collect();
        assert_eq!(
            calls,
            [
                ("getRTCRoomList", 3),
                ("getVoiceRoomList", 3),
                ("gettoken", 1),
                ("noSuchMethod", 1)
            ]
        );
        let answers: Vec<(i64, u64)> = stats.answers.iter().map(|(c, n)| (*c, *n)).collect();
        assert_eq!(
            answers,
            [
                (CLOSED_UNANSWERED, 1),
                (0, 4),
                (codes::FPNN_EC_CORE_UNKNOWN_METHOD, 1),
                (codes::RTM_EC_INVALID_PID_OR_SIGN, 1),
                (200010, 1)
            ]
        );
        assert_eq!(stats.total_calls(), 8);
        assert_eq!(stats.connections, 1);
        // The interval since `before`: the two quests of the dropped
        // connection.
        let delta = stats.since(&before);
        assert_eq!(delta.total_calls(), 2);
        assert_eq!(delta.calls["getRTCRoomList"], 2);
        assert_eq!(delta.answers.get(&CLOSED_UNANSWERED), Some(&1));
        assert_eq!(delta.answers.get(&0), Some(&1));
        let line = stats.to_string();
        assert!(
            line.starts_with("calls 8 (getRTCRoomList 3, getVoiceRoomList 3, gettoken 1, noSuchMethod 1); answers closed:1 0:4 20004:1 200002:1 200010:1; connections 1, file gate 0; push queues 0 pushes, 0 B"),
            "{line}"
        );
    }

    #[test]
    fn other_method_names_are_bounded() {
        let (emu, mut c) = setup();
        for i in 0..MAX_OTHER_METHODS + 10 {
            c.call(&format!("no{i}"), &map(vec![]));
        }
        let stats = emu.stats();
        assert_eq!(stats.calls.len(), MAX_OTHER_METHODS + 1);
        assert_eq!(stats.calls[OTHER], 10);
        assert_eq!(stats.total_calls(), MAX_OTHER_METHODS as u64 + 10);
    }
}
