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

    /// What an entry holds allocated.
    fn cost(method: &String, payload: &Vec<u8>) -> usize {
        method.capacity() + payload.capacity() + ENTRY_OVERHEAD
    }

    /// Records a quest; `payload` is its encoded payload. The oldest
    /// entries go first when a limit is reached; a quest larger than the
    /// whole byte budget is recorded with an empty payload.
    pub(super) fn record(&mut self, method: &str, payload: &[u8]) {
        if self.max_entries == 0 {
            return;
        }
        let mut want = method.len() + payload.len() + ENTRY_OVERHEAD;
        let payload = if want > self.max_bytes {
            want = method.len() + 1 + ENTRY_OVERHEAD;
            &[crate::fpnn::codec::EMPTY_MAP][..]
        } else {
            payload
        };
        // The last entry evicted gives its allocations to the new one (a
        // full log costs no allocation per quest).
        let mut reuse = None;
        while !self.entries.is_empty()
            && (self.entries.len() >= self.max_entries || self.bytes + want > self.max_bytes)
        {
            if let Some((m, p)) = self.entries.pop_front() {
                self.bytes -= Self::cost(&m, &p);
                reuse = Some((m, p));
            }
        }
        let (mut m, mut p) = reuse.unwrap_or_default();
        m.clear();
        m.push_str(method);
        p.clear();
        p.extend_from_slice(payload);
        if p.capacity() > 2 * p.len() + 256 {
            p.shrink_to_fit();
        }
        self.bytes += Self::cost(&m, &p);
        self.entries.push_back((m, p));
        // A reused allocation may be larger than estimated.
        while self.bytes > self.max_bytes && self.entries.len() > 1 {
            if let Some((m, p)) = self.entries.pop_front() {
                self.bytes -= Self::cost(&m, &p);
            }
        }
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
