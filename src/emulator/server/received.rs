//! The test log of received quests ([`FpnnServer::received`]), bounded in
//! entries and in bytes.
//!
//! [`FpnnServer::received`]: super::FpnnServer::received

use std::collections::VecDeque;

use rmpv::Value;

use crate::fpnn::codec::decode_payload;

/// What one entry costs besides its method and payload bytes.
const ENTRY_OVERHEAD: usize = 64;

/// Received quests, kept encoded (method and msgpack payload bytes: what
/// the peer sent, never the decoded tree, which can be many times larger),
/// decoded when read.
pub(super) struct ReceivedLog {
    entries: VecDeque<(String, Vec<u8>)>,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
}

impl ReceivedLog {
    pub(super) fn new(max_entries: usize, max_bytes: usize) -> ReceivedLog {
        ReceivedLog {
            entries: VecDeque::new(),
            bytes: 0,
            max_entries,
            max_bytes,
        }
    }

    fn cost(method: &str, payload: &[u8]) -> usize {
        method.len() + payload.len() + ENTRY_OVERHEAD
    }

    /// Records a quest; `payload` is its encoded payload. The oldest
    /// entries go first when a limit is reached; a quest larger than the
    /// whole byte budget is recorded with an empty payload.
    pub(super) fn record(&mut self, method: &str, payload: &[u8]) {
        if self.max_entries == 0 {
            return;
        }
        let payload = if Self::cost(method, payload) > self.max_bytes {
            &[crate::fpnn::codec::EMPTY_MAP][..]
        } else {
            payload
        };
        let cost = Self::cost(method, payload);
        while !self.entries.is_empty()
            && (self.entries.len() >= self.max_entries || self.bytes + cost > self.max_bytes)
        {
            if let Some((m, p)) = self.entries.pop_front() {
                self.bytes -= Self::cost(&m, &p);
            }
        }
        self.bytes += cost;
        self.entries
            .push_back((method.to_string(), payload.to_vec()));
    }

    /// Every entry, oldest first, decoded.
    pub(super) fn decoded(&self) -> Vec<(String, Value)> {
        self.entries
            .iter()
            .map(|(m, p)| {
                // Recorded payloads passed the decoder's check.
                let v = decode_payload(p).unwrap_or(Value::Nil);
                (m.clone(), v)
            })
            .collect()
    }

    /// The bytes the log accounts for now.
    #[cfg(test)]
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(super) fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_in_entries_and_bytes() {
        let mut log = ReceivedLog::new(3, 1000);
        for i in 0..5u8 {
            log.record("m", &[0x81, 0xa1, b'a', i]);
        }
        let got = log.decoded();
        assert_eq!(got.len(), 3);
        assert_eq!(
            got[0].1,
            Value::Map(vec![(Value::from("a"), Value::from(2))])
        );
        // 272 bytes an entry: three fit in 1000, not four.
        let mut log = ReceivedLog::new(100, 1000);
        let mut big = vec![0x81, 0xa1, b'b', 0xc4, 200];
        big.extend_from_slice(&[0u8; 200]);
        for _ in 0..10 {
            log.record("big", &big);
        }
        assert!(log.bytes() <= 1000, "{}", log.bytes());
        assert_eq!(log.decoded().len(), 3);
        // Larger than the whole budget: recorded without its payload.
        let mut log = ReceivedLog::new(100, 100);
        log.record("huge", &big);
        assert_eq!(log.decoded(), [("huge".to_string(), Value::Map(vec![]))]);
    }
}
