//! Request signing (`docs/protocol.md`, section 4) and the unique salt generator.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use md5::{Digest, Md5};

/// The signature of one RTM quest:
/// `UPPERCASE_HEX(MD5("<pid>:<secret>:<salt>:<method>:<ts>"))`.
pub fn sign(pid: i64, secret: &str, salt: i64, method: &str, ts: i64) -> String {
    let hex = sign_hex(pid, secret, salt, method, ts);
    String::from_utf8_lossy(&hex).into_owned()
}

/// [`sign`] into a buffer: the 32 uppercase hex digits, with nothing
/// allocated (the hot path of every RTM call).
pub(crate) fn sign_hex(pid: i64, secret: &str, salt: i64, method: &str, ts: i64) -> [u8; 32] {
    use std::io::Write;
    let mut md5 = Md5::new();
    // Writing to a hasher cannot fail.
    let _ = write!(md5, "{pid}:{secret}:{salt}:{method}:{ts}");
    let mut hex = [0u8; 32];
    // 16 digest bytes always fit 32 hex digits.
    let _ = hex::encode_to_slice(md5.finalize(), &mut hex);
    hex.make_ascii_uppercase();
    hex
}

/// The current Unix time in seconds.
pub fn unix_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn unix_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

static LAST: AtomicI64 = AtomicI64::new(0);

fn process_tag() -> i64 {
    static TAG: OnceLock<i64> = OnceLock::new();
    *TAG.get_or_init(|| (RandomState::new().build_hasher().finish() & 0xFF) as i64)
}

/// A process-wide unique, strictly increasing 63-bit number, used for the
/// `salt` of every quest (and for message ids).
///
/// Layout: `ms << 20 | tag << 12 | count`, where `ms` is the Unix time in
/// milliseconds, `tag` 8 random bits chosen once per process (so that two
/// processes starting in the same millisecond differ), and `count` 12 bits.
/// The value is never smaller than the previous one plus one: within one
/// millisecond it counts up, and past 4096 values in one millisecond it
/// borrows from the next, so it never repeats in a process, across threads
/// and however fast it is called (unlike a generator that waits for the
/// clock only on a counter wrap). It stays positive until the year 2248.
pub fn next_salt() -> i64 {
    let base = (unix_millis() << 20) | (process_tag() << 12);
    let mut prev = LAST.load(Ordering::Relaxed);
    loop {
        let next = base.max(prev + 1);
        match LAST.compare_exchange_weak(prev, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(p) => prev = p,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn worked_example_signatures() {
        let secret = "ef3617e5-e886-4a4e-9eef-7263c0320628";
        assert_eq!(
            sign(11000001, secret, 1234567890, "getVoiceRoomList", 1600000000),
            "C21477D93C8FF2BC50E14AA81F70195F"
        );
        assert_eq!(
            sign(11000001, secret, 1234567890, "getVoiceRoomList", 1600000005),
            "C95A1FA063064A50541106880561F8D6"
        );
        assert_eq!(
            sign(11000001, secret, 1234567890, "getRTCRoomList", 1600000000),
            "BB7CA772A11E2A28CFF3D15BA9504C32"
        );
    }

    #[test]
    fn salts_never_repeat_across_threads() {
        let threads: Vec<_> = (0..8)
            .map(|_| {
                std::thread::spawn(|| {
                    let mut v = Vec::with_capacity(50_000);
                    let mut last = 0;
                    for _ in 0..50_000 {
                        let s = next_salt();
                        assert!(s > last, "salts increase within a thread");
                        assert!(s > 0);
                        last = s;
                        v.push(s);
                    }
                    v
                })
            })
            .collect();
        let mut all = HashSet::new();
        for t in threads {
            for s in t.join().unwrap() {
                assert!(all.insert(s), "salt {s} repeated");
            }
        }
        assert_eq!(all.len(), 400_000);
    }

    #[test]
    fn salt_carries_the_clock() {
        let before = unix_millis();
        let s = next_salt();
        let ms = s >> 20;
        assert!(ms >= before && ms < before + 60_000, "{ms} vs {before}");
    }
}
