//! The timer thread of a server: one thread sends every delayed reply
//! ([`Reply::After`] and [`Faults::set_answer_delay`](super::Faults::set_answer_delay)).

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::sync::{Condvar, Mutex};
use std::time::Instant;

use super::{lock, Reply, ServerConn};

struct Task {
    at: Instant,
    order: u64,
    conn: ServerConn,
    seq: Option<u32>,
    reply: Reply,
    delayed: bool,
}

impl PartialEq for Task {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at && self.order == other.order
    }
}
impl Eq for Task {}
impl PartialOrd for Task {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Task {
    // Reversed: BinaryHeap is a max-heap, the earliest task must come first.
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (other.at, other.order).cmp(&(self.at, self.order))
    }
}

#[derive(Default)]
struct TimerState {
    tasks: BinaryHeap<Task>,
    next_order: u64,
    stop: bool,
}

/// Delayed replies, sent in time order by [`Timer::run`].
#[derive(Default)]
pub(super) struct Timer {
    state: Mutex<TimerState>,
    wake: Condvar,
}

impl Timer {
    /// Sends `reply` to `conn` at `at` (`delayed`: the answer delay was
    /// applied already).
    pub(super) fn schedule(
        &self,
        at: Instant,
        conn: ServerConn,
        seq: Option<u32>,
        reply: Reply,
        delayed: bool,
    ) {
        let mut st = lock(&self.state);
        if st.stop {
            return;
        }
        let order = st.next_order;
        st.next_order += 1;
        st.tasks.push(Task {
            at,
            order,
            conn,
            seq,
            reply,
            delayed,
        });
        self.wake.notify_one();
    }

    /// Drops every task and ends [`run`](Self::run).
    pub(super) fn stop(&self) {
        let mut st = lock(&self.state);
        st.stop = true;
        st.tasks.clear();
        self.wake.notify_all();
    }

    /// The timer thread's loop, until [`stop`](Self::stop).
    pub(super) fn run(&self) {
        let mut st = lock(&self.state);
        loop {
            if st.stop {
                return;
            }
            let now = Instant::now();
            match st.tasks.peek().map(|t| t.at) {
                Some(at) if at <= now => {
                    let task = st.tasks.pop().expect("peeked");
                    drop(st);
                    task.conn.deliver(task.seq, task.reply, task.delayed);
                    st = lock(&self.state);
                }
                Some(at) => {
                    st = self
                        .wake
                        .wait_timeout(st, at - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                None => {
                    st = self.wake.wait(st).unwrap_or_else(|e| e.into_inner());
                }
            }
        }
    }
}
