//! The test log of received quests ([`FpnnServer::received`]), bounded in
//! entries and in bytes.
//!
//! [`FpnnServer::received`]: super::FpnnServer::received

use std::collections::VecDeque;

use rmpv::Value;

use crate::fpnn::codec::decode_payload;

/// What one entry costs in the index (beside the byte budget).
#[cfg(test)]
const ENTRY_OVERHEAD: usize = std::mem::size_of::<(u8, u32)>();

/// Received quests, kept encoded (method and msgpack payload bytes: what
/// the peer sent, never the decoded tree, which can be many times larger)
/// in one ring of bytes, decoded when read.
pub(super) struct ReceivedLog {
    /// Each entry's method and payload lengths, oldest first.
    index: VecDeque<(u8, u32)>,
    /// The entries' bytes, method then payload, oldest first.
    bytes: VecDeque<u8>,
    max_entries: usize,
    max_bytes: usize,
}

impl ReceivedLog {
    pub(super) fn new(max_entries: usize, max_bytes: usize) -> ReceivedLog {
        ReceivedLog {
            index: VecDeque::new(),
            bytes: VecDeque::new(),
            max_entries,
            max_bytes,
        }
    }

    /// Records a quest; `payload` is its encoded payload. The oldest
    /// entries go first when a limit is reached; a quest larger than the
    /// whole byte budget is recorded with an empty payload.
    pub(super) fn record(&mut self, method: &str, payload: &[u8]) {
        if self.max_entries == 0 {
            return;
        }
        // Methods are at most 255 bytes on the wire.
        let method = &method.as_bytes()[..method.len().min(255)];
        let payload = match u32::try_from(payload.len()) {
            Ok(_) if method.len() + payload.len() <= self.max_bytes => payload,
            _ => &[crate::fpnn::codec::EMPTY_MAP][..],
        };
        let need = method.len() + payload.len();
        while let Some(&(m, p)) = self.index.front() {
            if self.index.len() < self.max_entries && self.bytes.len() + need <= self.max_bytes {
                break;
            }
            self.index.pop_front();
            self.bytes.drain(..m as usize + p as usize);
        }
        if self.bytes.len() + need > self.bytes.capacity() {
            // Doubling, but never beyond the budget.
            let target = (self.bytes.len() + need)
                .max(self.bytes.capacity() * 2)
                .min(self.max_bytes.max(self.bytes.len() + need));
            self.bytes.reserve_exact(target - self.bytes.len());
        }
        self.bytes.extend(method);
        self.bytes.extend(payload);
        self.index
            .push_back((method.len() as u8, payload.len() as u32));
    }

    /// Every entry, oldest first, decoded.
    pub(super) fn decoded(&self) -> Vec<(String, Value)> {
        let mut out = Vec::with_capacity(self.index.len());
        let mut at = 0;
        for &(m, p) in &self.index {
            let (m, p) = (m as usize, p as usize);
            let method: Vec<u8> = self.bytes.range(at..at + m).copied().collect();
            let payload: Vec<u8> = self.bytes.range(at + m..at + m + p).copied().collect();
            at += m + p;
            // Recorded payloads passed the decoder's check.
            let value = decode_payload(&payload).unwrap_or(Value::Nil);
            out.push((String::from_utf8_lossy(&method).into_owned(), value));
        }
        out
    }

    /// The bytes the log holds allocated now.
    #[cfg(test)]
    pub(super) fn bytes(&self) -> usize {
        self.bytes.capacity() + self.index.capacity() * ENTRY_OVERHEAD
    }

    pub(super) fn clear(&mut self) {
        self.index.clear();
        self.bytes.clear();
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
        // 208 bytes an entry: four fit in 1000, not five.
        let mut log = ReceivedLog::new(100, 1000);
        let mut big = vec![0x81, 0xa1, b'b', 0xc4, 200];
        big.extend_from_slice(&[0u8; 200]);
        for _ in 0..10 {
            log.record("big", &big);
        }
        assert!(
            log.bytes() <= 1000 + 100 * ENTRY_OVERHEAD,
            "{}",
            log.bytes()
        );
        assert_eq!(log.decoded().len(), 4);
        // Larger than the whole budget: recorded without its payload.
        let mut log = ReceivedLog::new(100, 100);
        log.record("huge", &big);
        assert_eq!(log.decoded(), [("huge".to_string(), Value::Map(vec![]))]);
    }
}
