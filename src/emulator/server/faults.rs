//! Fault switches of a server: freeze, refuse, drop, delay.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

#[cfg(doc)]
use super::{FpnnServer, Reply, ServerConn};

/// Fault switches of one [`FpnnServer`], all off by default and changeable
/// while it runs (from any thread).
#[derive(Debug, Default)]
pub struct Faults {
    freeze: AtomicBool,
    refuse: AtomicBool,
    drop_every: AtomicU64,
    drop_count: AtomicU64,
    answer_delay_us: AtomicU64,
}

impl Faults {
    /// Freezes the server: it answers nothing at all (including `*ping` and
    /// `*key`), but keeps the sockets open and keeps reading. Quests received
    /// while frozen are recorded in [`FpnnServer::received`] but do not reach
    /// the service; answers given while frozen (held, delayed, or given by
    /// [`ServerConn::answer`]) are dropped. [`Reply::Close`] still closes.
    pub fn set_freeze(&self, on: bool) {
        self.freeze.store(on, Ordering::SeqCst);
    }

    /// Whether the server is frozen.
    pub fn frozen(&self) -> bool {
        self.freeze.load(Ordering::SeqCst)
    }

    /// Accepts new connections and closes them at once (they still count in
    /// [`FpnnServer::connection_count`]). Open connections are not affected.
    pub fn set_refuse(&self, on: bool) {
        self.refuse.store(on, Ordering::SeqCst);
    }

    /// Whether new connections are refused.
    pub fn refusing(&self) -> bool {
        self.refuse.load(Ordering::SeqCst)
    }

    /// Closes the connection that sent every `n`-th quest (counted across
    /// the whole server from this call on, `*ping` included, `*key`
    /// excluded), without answering or processing that quest. 0 turns it
    /// off.
    pub fn set_drop_every(&self, n: u64) {
        self.drop_count.store(0, Ordering::SeqCst);
        self.drop_every.store(n, Ordering::SeqCst);
    }

    /// The current `drop_every` setting (0: off).
    pub fn drop_every(&self) -> u64 {
        self.drop_every.load(Ordering::SeqCst)
    }

    /// Delays every answer (and every [`Reply::Raw`]) by `d`, on top of any
    /// [`Reply::After`] delay. Zero turns it off.
    pub fn set_answer_delay(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.answer_delay_us.store(us, Ordering::SeqCst);
    }

    /// The current answer delay.
    pub fn answer_delay(&self) -> Duration {
        Duration::from_micros(self.answer_delay_us.load(Ordering::SeqCst))
    }

    /// True when this quest must be dropped together with its connection.
    pub(super) fn should_drop(&self) -> bool {
        let n = self.drop_every.load(Ordering::SeqCst);
        if n == 0 {
            return false;
        }
        let count = self.drop_count.fetch_add(1, Ordering::SeqCst) + 1;
        count % n == 0
    }
}
