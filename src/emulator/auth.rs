//! How the emulator authenticates an RTM quest on its raw payload, before
//! anything of it is decoded: the four signature keys read in place
//! ([`SignedKeys`]), the signature computed without allocating
//! ([`Signer`]), and the replay memory with its low-water mark
//! ([`SeenSigns`]).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet, VecDeque};
use std::io::Write as _;
use std::ops::ControlFlow;

use md5::{Digest, Md5};
use rmp::Marker;

use crate::fpnn::codec::for_each_raw_entry_bytes;

/// The signature keys of a quest, as found in its raw payload: the encoded
/// bytes of the first value under each key (`None`: absent).
#[derive(Default)]
pub(crate) struct SignedKeys<'a> {
    pub pid: Option<&'a [u8]>,
    pub sign: Option<&'a [u8]>,
    pub salt: Option<&'a [u8]>,
    pub ts: Option<&'a [u8]>,
}

impl<'a> SignedKeys<'a> {
    /// Finds the four keys in `payload` (a msgpack map, checked well formed
    /// by the server), without decoding any value.
    pub(crate) fn find(payload: &'a [u8]) -> SignedKeys<'a> {
        let [pid, sign, salt, ts] = raw_values(payload, ["pid", "sign", "salt", "ts"]);
        SignedKeys {
            pid,
            sign,
            salt,
            ts,
        }
    }
}

/// The encoded bytes of the first value under each of `keys` in `payload`
/// (a msgpack map, checked well formed by the server), without decoding
/// any value; `None` for a key that is absent or whose value is nil (as
/// the decoded readers take it).
pub(crate) fn raw_values<'a, const N: usize>(
    payload: &'a [u8],
    keys: [&str; N],
) -> [Option<&'a [u8]>; N] {
    let mut found = [None; N];
    let mut seen = [false; N];
    // A payload that is not a map has none of the keys.
    let mut left = N;
    let _ = for_each_raw_entry_bytes(payload, |key, value| {
        let Some(i) = keys.iter().position(|k| k.as_bytes() == key) else {
            return ControlFlow::Continue(());
        };
        if std::mem::replace(&mut seen[i], true) {
            return ControlFlow::Continue(());
        }
        left -= 1;
        // `value` lies within `payload`: borrow it from there, for as long
        // as the payload lives.
        let start = (value.as_ptr() as usize).wrapping_sub(payload.as_ptr() as usize);
        found[i] = payload
            .get(start..start.saturating_add(value.len()))
            .filter(|v| *v != [0xc0]);
        // The first of each key counts: the rest need not be walked.
        if left == 0 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    found
}

/// The integer encoded in `value` (any msgpack int width, signed or not),
/// or `None` for anything else (nil included). Only the marker and the
/// integer's own bytes are read.
pub(crate) fn raw_int(value: &[u8]) -> Option<i128> {
    raw_int_prefix(value).map(|(n, _)| n)
}

/// The integer at the start of `bytes` and how many bytes it takes.
fn raw_int_prefix(bytes: &[u8]) -> Option<(i128, usize)> {
    let (&first, rest) = bytes.split_first()?;
    let be = |n: usize| -> Option<u128> {
        let bytes = rest.get(..n)?;
        Some(
            bytes
                .iter()
                .fold(0u128, |acc, &b| (acc << 8) | u128::from(b)),
        )
    };
    let signed = |n: usize| -> Option<i128> {
        let u = be(n)?;
        let bits = 8 * n as u32;
        // Sign-extend an n-byte two's complement number.
        let shift = 128 - bits;
        Some(((u << shift) as i128) >> shift)
    };
    Some(match Marker::from_u8(first) {
        Marker::FixPos(n) => (i128::from(n), 1),
        Marker::FixNeg(n) => (i128::from(n), 1),
        Marker::U8 => (be(1)? as i128, 2),
        Marker::U16 => (be(2)? as i128, 3),
        Marker::U32 => (be(4)? as i128, 5),
        Marker::U64 => (be(8)? as i128, 9),
        Marker::I8 => (signed(1)?, 2),
        Marker::I16 => (signed(2)?, 3),
        Marker::I32 => (signed(4)?, 5),
        Marker::I64 => (signed(8)?, 9),
        _ => return None,
    })
}

/// A big-endian length of `n` bytes at the start of `rest`, and what
/// follows it.
fn be_len(rest: &[u8], n: usize) -> Option<(usize, &[u8])> {
    let bytes = rest.get(..n)?;
    let len = bytes
        .iter()
        .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
    Some((len, &rest[n..]))
}

/// The ints of an encoded array of ints that fit an `i64`, one by one
/// (`None` for a value that is not such an array); nothing is allocated.
pub(crate) fn raw_i64_array(value: &[u8]) -> Option<impl Iterator<Item = i64> + '_> {
    let (&first, rest) = value.split_first()?;
    let len_of = |n: usize| be_len(rest, n);
    let (count, items) = match Marker::from_u8(first) {
        Marker::FixArray(n) => (usize::from(n), rest),
        Marker::Array16 => len_of(2)?,
        Marker::Array32 => len_of(4)?,
        _ => return None,
    };
    // Check every item first, so that the iterator below cannot fail.
    let mut at = items;
    for _ in 0..count {
        let (n, used) = raw_int_prefix(at)?;
        i64::try_from(n).ok()?;
        at = &at[used..];
    }
    let mut at = items;
    Some((0..count).map(move |_| {
        let (n, used) = raw_int_prefix(at).unwrap_or_default();
        at = &at[used.min(at.len())..];
        i64::try_from(n).unwrap_or_default()
    }))
}

/// The bytes of a `str` or `bin` value (the gateway reads text in either),
/// or `None` for anything else. Only the marker and the length are read
/// before the bytes are borrowed in place.
pub(crate) fn raw_text(value: &[u8]) -> Option<&[u8]> {
    let (&first, rest) = value.split_first()?;
    let len_of = |n: usize| be_len(rest, n);
    let (len, body) = match Marker::from_u8(first) {
        Marker::FixStr(n) => (usize::from(n), rest),
        Marker::Str8 | Marker::Bin8 => len_of(1)?,
        Marker::Str16 | Marker::Bin16 => len_of(2)?,
        Marker::Str32 | Marker::Bin32 => len_of(4)?,
        _ => return None,
    };
    body.get(..len)
}

/// Computes RTM signatures for one project without allocating: the
/// `"<pid>:<secret>:"` prefix is hashed once, and each quest adds
/// `"<salt>:<method>:<ts>"` to a copy of that state.
#[derive(Clone)]
pub(crate) struct Signer {
    prefix: Md5,
}

impl Signer {
    pub(crate) fn new(pid: i64, secret: &str) -> Signer {
        let mut prefix = Md5::new();
        // Writing to a hasher cannot fail.
        let _ = write!(prefix, "{pid}:{secret}:");
        Signer { prefix }
    }

    /// The MD5 of `"<pid>:<secret>:<salt>:<method>:<ts>"`, with `salt` and
    /// `ts` as decimal text (written without the formatting machinery).
    pub(crate) fn digest(&self, salt: i128, method: &str, ts: i128) -> [u8; 16] {
        let mut md5 = self.prefix.clone();
        let mut text = itoa::Buffer::new();
        md5.update(decimal(&mut text, salt));
        md5.update(b":");
        md5.update(method.as_bytes());
        md5.update(b":");
        md5.update(decimal(&mut text, ts));
        md5.finalize().into()
    }
}

/// The decimal text of `n`, formatted as an `i64` when it fits (the same
/// text, faster).
fn decimal(text: &mut itoa::Buffer, n: i128) -> &[u8] {
    match i64::try_from(n) {
        Ok(n) => text.format(n).as_bytes(),
        Err(_) => text.format(n).as_bytes(),
    }
}

/// Whether `sign` is the uppercase hex text of `digest` (a lowercase sign
/// is refused, as by the gateway).
pub(crate) fn sign_matches(sign: &[u8], digest: &[u8; 16]) -> bool {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    sign.len() == 32
        && digest.iter().enumerate().all(|(i, &b)| {
            sign[2 * i] == HEX[usize::from(b >> 4)] && sign[2 * i + 1] == HEX[usize::from(b & 15)]
        })
}

/// How recent (in seconds, by the server's clock) a signature's `ts` must
/// be for the replay memory to keep it beyond its capacity: the low-water
/// mark never comes closer to the clock than this. The memory can then
/// exceed its capacity by what authenticated clients sign in this many
/// seconds (only a holder of the secret adds to it): at the emulator's
/// full speed on two cores (about 500,000 quests/s), a million signatures,
/// 36 MB more.
pub(crate) const REPLAY_GRACE_S: i64 = 2;

/// Why [`SeenSigns::admit`] refused a quest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replay {
    /// The same signature was seen before.
    SameSign,
    /// The quest's `ts` is at or below the low-water mark: signatures that
    /// old are no longer all remembered, so none is accepted.
    BelowLowWater {
        /// The low-water mark (seconds).
        low_water: i64,
    },
}

/// The replay memory: the signatures accepted so far with their `ts`, at
/// most `capacity` of them. When one more would exceed the capacity, the
/// signature with the oldest `ts` is forgotten and its `ts` becomes the
/// low-water mark: from then on, a quest whose `ts` is at or below the
/// mark is refused, remembered or not. So a captured quest is refused
/// whenever it is replayed, at a memory bounded by `capacity`, as long as
/// clients sign with a current `ts` (one above the mark).
///
/// A signature is kept as the first 64 bits of its MD5 (a fresh quest is
/// taken for a replay by chance with a probability of `capacity / 2^64`,
/// about 3e-14 for half a million), in a hash set and a queue by `ts` (in
/// arrival order while `ts` grows, a min-heap for the late ones):
/// about 36 bytes each once full, 55 at most (the set may grow once more
/// after it first fills, as forgotten entries leave tombstones). Then the
/// memory stops growing: the allocations are reused.
#[derive(Debug)]
pub(crate) struct SeenSigns {
    /// Keyed by digests of signed quests (only a holder of the secret adds
    /// one), hashed with a fast hasher.
    signs: HashSet<u64, foldhash::fast::RandomState>,
    /// `(ts, digest)` in arrival order, each `ts` at or above the one
    /// before: forgetting the oldest is a `pop_front` (clients sign with
    /// the current time, so `ts` mostly grows).
    by_ts: VecDeque<(i64, u64)>,
    /// `(ts, digest)` that arrived with a `ts` below the back of `by_ts`,
    /// as a min-heap.
    late: BinaryHeap<Reverse<(i64, u64)>>,
    capacity: usize,
    low_water: Option<i64>,
}

impl SeenSigns {
    /// An empty memory of at most `capacity` signatures (at least 1).
    pub(crate) fn new(capacity: usize) -> SeenSigns {
        SeenSigns {
            signs: HashSet::default(),
            by_ts: VecDeque::new(),
            late: BinaryHeap::new(),
            capacity: capacity.max(1),
            low_water: None,
        }
    }

    /// Remembers the signature `digest` of a quest with `ts`, or says why
    /// the quest is a replay (or may be one).
    #[cfg(test)]
    pub(crate) fn admit(&mut self, ts: i128, digest: &[u8; 16]) -> Result<(), Replay> {
        // No grace: every signature over the capacity is forgotten at once.
        self.remember(ts, digest, || None)
    }

    /// [`admit`](Self::admit) at the server's time `now_s` (seconds, read
    /// only when the memory is over its capacity): a signature whose `ts`
    /// is within [`REPLAY_GRACE_S`] of `now_s` is never forgotten, the
    /// memory holds it beyond its capacity instead. So the low-water mark
    /// stays at least that far behind the clock, and a client signing with
    /// the current time is never refused because of the traffic, however
    /// fast it comes.
    pub(crate) fn admit_at(
        &mut self,
        ts: i128,
        digest: &[u8; 16],
        now_s: impl FnOnce() -> i64,
    ) -> Result<(), Replay> {
        self.remember(ts, digest, || Some(now_s().saturating_sub(REPLAY_GRACE_S)))
    }

    /// Admits a quest; over the capacity, forgets the oldest signatures
    /// whose `ts` is below what `forget_before` says (read once, when
    /// needed; `None`: all of them).
    fn remember(
        &mut self,
        ts: i128,
        digest: &[u8; 16],
        forget_before: impl FnOnce() -> Option<i64>,
    ) -> Result<(), Replay> {
        // A `ts` beyond `i64` (a uint64 above its range) counts as the
        // largest `i64`: the mark then errs on the side of refusing.
        let ts = i64::try_from(ts).unwrap_or(if ts < 0 { i64::MIN } else { i64::MAX });
        if let Some(low_water) = self.low_water.filter(|&low| ts <= low) {
            return Err(Replay::BelowLowWater { low_water });
        }
        let mut prefix = [0u8; 8];
        prefix.copy_from_slice(&digest[..8]);
        let key = u64::from_be_bytes(prefix);
        if !self.signs.insert(key) {
            return Err(Replay::SameSign);
        }
        match self.by_ts.back() {
            Some(&(last, _)) if ts < last => self.late.push(Reverse((ts, key))),
            _ => self.by_ts.push_back((ts, key)),
        }
        let mut forget_before = Some(forget_before);
        let mut limit = None;
        while self.signs.len() > self.capacity {
            if let Some(read) = forget_before.take() {
                limit = read();
            }
            let Some(oldest) = self.oldest_ts() else {
                break;
            };
            if limit.is_some_and(|limit| oldest >= limit) {
                break;
            }
            let Some((oldest, key)) = self.pop_oldest() else {
                break;
            };
            self.signs.remove(&key);
            self.low_water = Some(self.low_water.map_or(oldest, |low| low.max(oldest)));
        }
        Ok(())
    }

    /// The oldest `ts` remembered.
    fn oldest_ts(&self) -> Option<i64> {
        let ordered = self.by_ts.front().map(|&(ts, _)| ts);
        let late = self.late.peek().map(|Reverse((ts, _))| *ts);
        match (ordered, late) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Takes out the remembered signature with the oldest `ts`.
    fn pop_oldest(&mut self) -> Option<(i64, u64)> {
        match (self.by_ts.front(), self.late.peek()) {
            (Some(&(ordered, _)), Some(Reverse((late, _)))) if *late < ordered => {
                self.late.pop().map(|Reverse(e)| e)
            }
            (Some(_), _) => self.by_ts.pop_front(),
            (None, _) => self.late.pop().map(|Reverse(e)| e),
        }
    }

    /// How many signatures are remembered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.signs.len()
    }

    /// The low-water mark, once signatures have been forgotten.
    #[cfg(test)]
    pub(crate) fn low_water(&self) -> Option<i64> {
        self.low_water
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(v: rmpv::Value) -> Vec<u8> {
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, &v).unwrap();
        out
    }

    #[test]
    fn raw_ints_of_every_width() {
        for n in [
            0i128,
            1,
            127,
            128,
            255,
            256,
            65_535,
            65_536,
            -1,
            -32,
            -33,
            -128,
            -129,
            -32_768,
            -32_769,
            i128::from(i32::MIN),
            i128::from(i64::MIN),
            i128::from(i64::MAX),
            i128::from(u64::MAX),
        ] {
            let v = if n < 0 {
                rmpv::Value::from(n as i64)
            } else {
                rmpv::Value::from(n as u64)
            };
            assert_eq!(raw_int(&encode(v)), Some(n), "{n}");
        }
        // Explicit wide encodings of small numbers.
        assert_eq!(raw_int(&[0xd3, 0, 0, 0, 0, 0, 0, 0, 5]), Some(5));
        assert_eq!(raw_int(&[0xd0, 0xff]), Some(-1));
        assert_eq!(raw_int(&[0xcf, 0xff, 0xff]), None, "truncated");
        assert_eq!(raw_int(&encode("1".into())), None);
        assert_eq!(raw_int(&encode(rmpv::Value::Nil)), None);
        assert_eq!(raw_int(&encode(1.5.into())), None);
    }

    #[test]
    fn raw_values_and_arrays() {
        let payload = encode(rmpv::Value::Map(vec![
            ("a".into(), 1.into()),
            ("nil".into(), rmpv::Value::Nil),
            (
                "list".into(),
                rmpv::Value::Array(vec![1.into(), (-300).into(), u32::MAX.into()]),
            ),
            ("a".into(), 2.into()),
            (
                "mixed".into(),
                rmpv::Value::Array(vec![1.into(), "x".into()]),
            ),
            ("big".into(), rmpv::Value::Array(vec![u64::MAX.into()])),
        ]));
        let [a, nil, list, mixed, big, absent] =
            raw_values(&payload, ["a", "nil", "list", "mixed", "big", "absent"]);
        // The first of two equal keys, as the decoded readers take it.
        assert_eq!(a.and_then(raw_int), Some(1));
        assert_eq!((nil, absent), (None, None));
        let ints: Vec<i64> = raw_i64_array(list.unwrap()).unwrap().collect();
        assert_eq!(ints, [1, -300, i64::from(u32::MAX)]);
        assert!(raw_i64_array(mixed.unwrap()).is_none());
        assert!(raw_i64_array(big.unwrap()).is_none());
        assert!(raw_i64_array(a.unwrap()).is_none());
    }

    #[test]
    fn raw_text_of_str_and_bin() {
        assert_eq!(raw_text(&encode("abc".into())), Some(&b"abc"[..]));
        let long = "x".repeat(300);
        assert_eq!(
            raw_text(&encode(long.as_str().into())),
            Some(long.as_bytes())
        );
        let bin = rmpv::Value::Binary(b"AB".to_vec());
        assert_eq!(raw_text(&encode(bin)), Some(&b"AB"[..]));
        assert_eq!(raw_text(&encode(1.into())), None);
        // A length past the end is not read.
        assert_eq!(raw_text(&[0xdb, 0xff, 0xff, 0xff, 0xff, b'a']), None);
    }

    #[test]
    fn signer_matches_the_client_side_sign() {
        let signer = Signer::new(11000001, "secret");
        let digest = signer.digest(1234567890, "getVoiceRoomList", 1600000000);
        let expected = crate::rtm::sign(
            11000001,
            "secret",
            1234567890,
            "getVoiceRoomList",
            1600000000,
        );
        assert!(sign_matches(expected.as_bytes(), &digest));
        assert!(!sign_matches(expected.to_lowercase().as_bytes(), &digest));
        assert!(!sign_matches(&expected.as_bytes()[..31], &digest));
        // A salt above i64::MAX is signed with its decimal text.
        let big = i128::from(u64::MAX);
        let digest = signer.digest(big, "m", 1);
        let text: [u8; 16] = Md5::digest(format!("11000001:secret:{big}:m:1")).into();
        assert_eq!(digest, text);
    }

    #[test]
    fn the_low_water_mark_refuses_what_was_forgotten() {
        let mut seen = SeenSigns::new(3);
        let d = |n: u8| [n; 16];
        assert_eq!(seen.admit(100, &d(1)), Ok(()));
        assert_eq!(seen.admit(100, &d(1)), Err(Replay::SameSign));
        assert_eq!(seen.admit(102, &d(2)), Ok(()));
        assert_eq!(seen.admit(101, &d(3)), Ok(()));
        assert_eq!(seen.low_water(), None);
        // A fourth: the signature of the oldest ts, 100, is forgotten, and
        // 100 is the mark.
        assert_eq!(seen.admit(103, &d(4)), Ok(()));
        assert_eq!((seen.len(), seen.low_water()), (3, Some(100)));
        assert_eq!(
            seen.admit(100, &d(1)),
            Err(Replay::BelowLowWater { low_water: 100 })
        );
        assert_eq!(
            seen.admit(99, &d(9)),
            Err(Replay::BelowLowWater { low_water: 100 })
        );
        // Still remembered: the same sign.
        assert_eq!(seen.admit(101, &d(3)), Err(Replay::SameSign));
        // A quest with an old ts but above the mark is still accepted; the
        // oldest (101) goes.
        assert_eq!(seen.admit(101, &d(5)), Ok(()));
        assert_eq!((seen.len(), seen.low_water()), (3, Some(101)));
        assert_eq!(
            seen.admit(101, &d(3)),
            Err(Replay::BelowLowWater { low_water: 101 })
        );
        // The mark never goes back, whatever order signatures leave in.
        assert_eq!(seen.admit(110, &d(6)), Ok(()));
        assert_eq!(seen.low_water(), Some(101));
        // A ts beyond i64 counts as i64::MAX.
        let mut big = SeenSigns::new(1);
        assert_eq!(big.admit(i128::from(u64::MAX), &d(1)), Ok(()));
        assert_eq!(big.admit(i128::from(u64::MAX) - 1, &d(2)), Ok(()));
        assert_eq!(
            big.admit(i128::from(u64::MAX), &d(1)),
            Err(Replay::BelowLowWater {
                low_water: i64::MAX
            })
        );
        // A capacity of 0 is taken as 1.
        let mut one = SeenSigns::new(0);
        assert_eq!(one.admit(5, &d(1)), Ok(()));
        assert_eq!(one.admit(6, &d(2)), Ok(()));
        assert_eq!(
            one.admit(5, &d(1)),
            Err(Replay::BelowLowWater { low_water: 5 })
        );
    }

    #[test]
    fn the_oldest_ts_goes_first_whatever_the_arrival_order() {
        let mut seen = SeenSigns::new(3);
        let d = |n: u8| [n; 16];
        for (ts, n) in [(10, 1), (12, 2), (11, 3), (13, 4)] {
            assert_eq!(seen.admit(ts, &d(n)), Ok(()));
        }
        assert_eq!(seen.low_water(), Some(10));
        // 11 arrived late, after 12: it goes before 12.
        assert_eq!(seen.admit(14, &d(5)), Ok(()));
        assert_eq!(seen.low_water(), Some(11));
        assert_eq!(seen.admit(12, &d(2)), Err(Replay::SameSign));
        assert_eq!(seen.admit(15, &d(6)), Ok(()));
        assert_eq!(seen.low_water(), Some(12));
        assert_eq!(seen.len(), 3);
    }

    #[test]
    fn a_full_memory_stops_growing() {
        let mut seen = SeenSigns::new(1000);
        let digest = |i: u32| -> [u8; 16] { Md5::digest(i.to_le_bytes()).into() };
        // However many signatures pass, the set never makes room for more
        // than 4 times the capacity (it may grow once after it first
        // fills, as forgotten entries leave tombstones), nor the heap for
        // more than twice.
        for i in 0..200_000 {
            seen.admit(i128::from(i / 100), &digest(i)).unwrap();
            if i % 1000 == 0 {
                let (set, heap) = (seen.signs.capacity(), seen.by_ts.capacity());
                let late = seen.late.capacity();
                assert!(set <= 4 * 1000 && heap <= 2 * 1000, "{i}: {set} {heap}");
                assert!(late <= 2 * 1000, "{i}: {late}");
            }
        }
        assert_eq!(seen.len(), 1000);
    }

    #[test]
    fn signatures_of_the_last_seconds_are_kept_beyond_the_capacity() {
        let d = |n: u8| [n; 16];
        let mut seen = SeenSigns::new(2);
        let now = 1_000;
        // Over the capacity, but all within the grace: nothing forgotten,
        // so no mark refuses a client signing with the current time.
        for (n, ts) in [(1, now - REPLAY_GRACE_S), (2, now - 1), (3, now), (4, now)] {
            assert_eq!(seen.admit_at(ts.into(), &d(n), || now), Ok(()));
        }
        assert_eq!(seen.len(), 4);
        assert_eq!(seen.low_water(), None);
        assert_eq!(
            seen.admit_at(now.into(), &d(3), || now),
            Err(Replay::SameSign)
        );
        // A second later, the oldest falls out of the grace and is
        // forgotten: the mark follows it, and only it.
        assert_eq!(seen.admit_at((now + 1).into(), &d(5), || now + 1), Ok(()));
        assert_eq!(seen.len(), 4);
        assert_eq!(seen.low_water(), Some(now - REPLAY_GRACE_S));
        assert_eq!(
            seen.admit_at((now - REPLAY_GRACE_S).into(), &d(9), || now + 1),
            Err(Replay::BelowLowWater {
                low_water: now - REPLAY_GRACE_S
            })
        );
        // Much later, down to the capacity again.
        assert_eq!(seen.admit_at((now + 60).into(), &d(6), || now + 60), Ok(()));
        assert_eq!(seen.len(), 2);
        assert_eq!(seen.low_water(), Some(now));
    }
}
