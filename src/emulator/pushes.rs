//! Pushes: how the pushes a quest produces (messages to listeners, file
//! messages) reach the connections, one queue and sending thread per
//! connection, and [`RtmEmulator::push_to_all`].

use std::collections::VecDeque;
use std::sync::Arc;

use rmpv::Value;

use super::rtm::{RtmEmulator, RtmShared};
use super::server::{lock, ServerConn};
use crate::error::Error;

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
}

impl RtmShared {
    /// Sends the pushes a quest produced to the RTM connections. Each
    /// connection has its own queue and sending thread (a push waits for
    /// the client's answer, which the connection's own reader thread must
    /// stay free to read): a connection's pushes go out in order, and a
    /// client slow to answer holds back no other connection's. The file
    /// gate sends its pushes here too.
    pub(crate) fn send_outbox(self: &Arc<Self>, outbox: Vec<(u64, &'static str, Value)>) {
        if outbox.is_empty() {
            return;
        }
        let conns = lock(&self.conns);
        let mut start = Vec::new();
        {
            let mut queues = lock(&self.push_queues);
            for (id, method, payload) in outbox {
                let Some(conn) = conns.get(&id) else { continue };
                match queues.entry(id) {
                    std::collections::hash_map::Entry::Occupied(mut q) => {
                        q.get_mut().push_back((method, payload));
                    }
                    std::collections::hash_map::Entry::Vacant(q) => {
                        q.insert(VecDeque::from([(method, payload)]));
                        start.push(conn.clone());
                    }
                }
            }
        }
        drop(conns);
        for conn in start {
            let shared = self.clone();
            let id = conn.id();
            let spawned = std::thread::Builder::new()
                .name(format!("emu-push-{id}"))
                .spawn(move || shared.push_worker(&conn));
            if let Err(e) = spawned {
                lock(&self.push_queues).remove(&id);
                log::warn!("emulator: cannot spawn a push thread: {e}");
            }
        }
    }

    /// Sends the queued pushes of one connection, in order, until its
    /// queue is empty.
    fn push_worker(&self, conn: &ServerConn) {
        loop {
            let next = {
                let mut queues = lock(&self.push_queues);
                match queues.get_mut(&conn.id()).and_then(VecDeque::pop_front) {
                    Some(next) => next,
                    None => {
                        queues.remove(&conn.id());
                        return;
                    }
                }
            };
            let (method, payload) = next;
            if let Err(e) = conn.push(method, payload) {
                log::debug!("emulator: push `{method}` to connection {}: {e}", conn.id());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use rmpv::Value;

    use crate::emulator::testutil::*;
    use crate::fpnn::codec::map_get;

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
}
