//! The pure FPNN frame codec: bytes in, values out, no sockets.
//!
//! The wire format (`docs/protocol.md`, section 1): a 12-byte header
//! (`FPNN`, version, flag, message type, `ss`, payload size as u32 LE),
//! then a sequence number for two-way quests and answers, then the method
//! name for quests, then a msgpack payload whose root is a map with string
//! keys.
//!
//! * [`encode_quest`], [`encode_answer`] and [`encode_error_answer`] build
//!   whole frames.
//! * [`Decoder`] is incremental: feed it bytes in any chunking and take out
//!   complete [`Frame`]s. Every length read off the wire is checked against
//!   the configured maximum before anything is allocated for it.
//!
//! ```
//! use rtm_server_sdk::fpnn::codec::{encode_quest, Decoder, Frame};
//! use rmpv::Value;
//!
//! let payload = Value::Map(vec![(Value::from("k"), Value::from(1))]);
//! let mut bytes = Vec::new();
//! encode_quest(&mut bytes, Some(7), "demo", &payload).unwrap();
//!
//! let mut decoder = Decoder::new(1 << 20);
//! decoder.feed(&bytes[..5]); // any split works
//! assert!(decoder.next_frame().unwrap().is_none());
//! decoder.feed(&bytes[5..]);
//! match decoder.next_frame().unwrap() {
//!     Some(Frame::Quest(q)) => {
//!         assert_eq!(q.method, "demo");
//!         assert_eq!(q.seq, Some(7));
//!         assert_eq!(q.payload, payload);
//!     }
//!     other => panic!("unexpected {other:?}"),
//! }
//! ```

use byteorder::{ByteOrder, LittleEndian};
use rmpv::Value;

use crate::error::{Error, ProtocolError, Result};

/// The four magic bytes that start every frame.
pub(crate) const MAGIC: [u8; 4] = *b"FPNN";
/// The length of the fixed header.
pub(crate) const HEADER_LEN: usize = 12;
/// The protocol version this crate sends (any value is accepted on receive).
pub(crate) const VERSION: u8 = 1;
/// Flag bit: the payload is msgpack.
pub(crate) const FLAG_MSGPACK: u8 = 0x80;
/// Flag bit: the payload is JSON.
pub(crate) const FLAG_JSON: u8 = 0x40;
/// Message type of a one-way quest.
pub(crate) const MTYPE_ONEWAY: u8 = 0;
/// Message type of a two-way quest.
pub(crate) const MTYPE_TWOWAY: u8 = 1;
/// Message type of an answer.
pub(crate) const MTYPE_ANSWER: u8 = 2;
/// The longest method name the header can carry.
pub const MAX_METHOD_LEN: usize = 255;
/// The default largest payload accepted from the peer: 200 MiB, as the Go
/// SDK.
pub const DEFAULT_MAX_RECV_PAYLOAD: usize = 200 * 1024 * 1024;
/// The default largest payload sent: 8 MiB, the C++ server's default
/// package limit.
pub const DEFAULT_MAX_SEND_PAYLOAD: usize = 8 * 1024 * 1024;
/// The one-byte empty msgpack map, the smallest legal payload.
pub(crate) const EMPTY_MAP: u8 = 0x80;

/// A quest (a request) from either peer.
#[derive(Debug, Clone, PartialEq)]
pub struct Quest {
    /// `Some(seq)` for a two-way quest, `None` for a one-way quest.
    pub seq: Option<u32>,
    /// The method name.
    pub method: String,
    /// The payload, always a map with string keys.
    pub payload: Value,
}

/// An answer to a two-way quest.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The sequence number of the quest it answers.
    pub seq: u32,
    /// The status byte: 0 for OK, anything else for an exception.
    pub status: u8,
    /// The payload, always a map with string keys. For an exception it holds
    /// `code` and `ex`.
    pub payload: Value,
}

impl Answer {
    /// True when the status marks an exception.
    #[must_use]
    pub fn is_error(&self) -> bool {
        self.status != 0
    }

    /// Turns the answer into the OK payload or an [`Error::Server`] read from
    /// the exception's `code` (default 20001, unknown error) and `ex`
    /// (default empty).
    ///
    /// # Errors
    ///
    /// [`Error::Server`] for an exception answer.
    pub fn into_result(self) -> Result<Value> {
        if self.status == 0 {
            return Ok(self.payload);
        }
        let code = map_get(&self.payload, "code")
            .and_then(Value::as_i64)
            .unwrap_or(crate::codes::FPNN_EC_CORE_UNKNOWN_ERROR);
        let message = match map_get(&self.payload, "ex") {
            Some(Value::String(s)) => s.as_str().unwrap_or("").to_string(),
            Some(Value::Binary(b)) => String::from_utf8_lossy(b).into_owned(),
            _ => String::new(),
        };
        Err(Error::Server { code, message })
    }
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// A one-way or two-way quest.
    Quest(Quest),
    /// An answer.
    Answer(Answer),
}

/// Builds a msgpack map with string keys, the shape of every payload:
/// `map_of(vec![("rid", Value::from(1))])`.
#[must_use]
pub fn map_of<'a>(entries: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
    Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (Value::from(k), v))
            .collect(),
    )
}

/// Looks a key up in a msgpack map (`None` when `map` is not a map or has no
/// such key).
#[must_use]
pub fn map_get<'a>(map: &'a Value, key: &str) -> Option<&'a Value> {
    match map {
        Value::Map(entries) => entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v),
        _ => None,
    }
}

/// Checks that a payload can be sent: a map whose keys are all strings.
pub(crate) fn check_payload(payload: &Value) -> Result<()> {
    match payload {
        Value::Map(entries) => {
            if entries.iter().all(|(k, _)| k.is_str()) {
                Ok(())
            } else {
                Err(Error::InvalidArgument(
                    "payload map keys must all be strings".into(),
                ))
            }
        }
        _ => Err(Error::InvalidArgument(
            "payload must be a msgpack map".into(),
        )),
    }
}

fn check_method(method: &str) -> Result<()> {
    if method.is_empty() {
        return Err(Error::InvalidArgument("method name is empty".into()));
    }
    if method.len() > MAX_METHOD_LEN {
        return Err(Error::InvalidArgument(format!(
            "method name is {} bytes, the limit is {MAX_METHOD_LEN}",
            method.len()
        )));
    }
    Ok(())
}

/// Starts a quest frame in `out`: writes the header (with a zero payload
/// size), the sequence number placeholder for two-way quests, and the method.
/// Append the msgpack payload after it, then call [`finish_frame`].
///
/// Returns the offset of the frame start in `out`.
pub(crate) fn begin_quest(out: &mut Vec<u8>, two_way: bool, method: &str) -> Result<usize> {
    check_method(method)?;
    let start = out.len();
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(FLAG_MSGPACK);
    out.push(if two_way { MTYPE_TWOWAY } else { MTYPE_ONEWAY });
    out.push(method.len() as u8);
    out.extend_from_slice(&[0, 0, 0, 0]);
    if two_way {
        out.extend_from_slice(&[0, 0, 0, 0]);
    }
    out.extend_from_slice(method.as_bytes());
    Ok(start)
}

/// Completes a frame started at `start` whose payload now ends at
/// `out.len()`: writes the payload size into the header. `max_payload`
/// bounds the payload (an [`Error::InvalidArgument`] when over it, or when
/// the payload is empty).
pub(crate) fn finish_frame(out: &mut [u8], start: usize, max_payload: usize) -> Result<()> {
    let frame = &mut out[start..];
    let body_prefix = body_prefix_len(frame[6], frame[7]);
    let psize = frame.len() - HEADER_LEN - body_prefix;
    if psize == 0 {
        return Err(Error::InvalidArgument(
            "empty payload (send an empty map instead)".into(),
        ));
    }
    // The size field is 32 bits; an encrypted package also carries the
    // whole frame's length in 32 bits.
    let max_payload = max_payload.min(u32::MAX as usize - HEADER_LEN - 4 - MAX_METHOD_LEN);
    if psize > max_payload {
        return Err(Error::InvalidArgument(format!(
            "payload of {psize} bytes exceeds the send limit of {max_payload} bytes"
        )));
    }
    LittleEndian::write_u32(&mut frame[8..12], psize as u32);
    Ok(())
}

/// Writes the sequence number into a two-way quest or answer frame that
/// starts at `frame[0]`.
pub(crate) fn set_seq(frame: &mut [u8], seq: u32) {
    LittleEndian::write_u32(&mut frame[12..16], seq);
}

/// Bytes between the header and the payload: the seq (two-way quests and
/// answers) plus the method (quests).
fn body_prefix_len(mtype: u8, ss: u8) -> usize {
    match mtype {
        MTYPE_ONEWAY => ss as usize,
        MTYPE_TWOWAY => 4 + ss as usize,
        _ => 4,
    }
}

/// Encodes a whole quest frame (`seq` `None` for one-way) into `out`, with
/// the default send limit.
///
/// # Errors
///
/// [`Error::InvalidArgument`] for an empty or too long method name, a
/// payload that is not a map with string keys, or one over
/// [`DEFAULT_MAX_SEND_PAYLOAD`]; `out` is then left as it was.
pub fn encode_quest(
    out: &mut Vec<u8>,
    seq: Option<u32>,
    method: &str,
    payload: &Value,
) -> Result<()> {
    check_payload(payload)?;
    let start = begin_quest(out, seq.is_some(), method)?;
    write_value(out, payload);
    if let Err(e) = finish_frame(out, start, DEFAULT_MAX_SEND_PAYLOAD) {
        out.truncate(start);
        return Err(e);
    }
    if let Some(seq) = seq {
        set_seq(&mut out[start..], seq);
    }
    Ok(())
}

/// Encodes an OK answer frame into `out`.
///
/// # Errors
///
/// [`Error::InvalidArgument`] for a payload that is not a map with string
/// keys, or one over [`DEFAULT_MAX_SEND_PAYLOAD`].
pub fn encode_answer(out: &mut Vec<u8>, seq: u32, payload: &Value) -> Result<()> {
    check_payload(payload)?;
    encode_answer_raw(out, seq, 0, |out| write_value(out, payload))
}

/// The longest `ex` message sent in an exception answer; longer ones are
/// cut (at a character boundary).
pub const MAX_ERROR_MESSAGE: usize = 64 * 1024;

/// Encodes an exception answer `{code, ex}` into `out`. A message over
/// [`MAX_ERROR_MESSAGE`] bytes is cut to that length.
pub fn encode_error_answer(out: &mut Vec<u8>, seq: u32, code: i64, ex: &str) {
    let mut end = ex.len().min(MAX_ERROR_MESSAGE);
    while !ex.is_char_boundary(end) {
        end -= 1;
    }
    let payload = Value::Map(vec![
        (Value::from("code"), Value::from(code)),
        (Value::from("ex"), Value::from(&ex[..end])),
    ]);
    encode_answer_raw(out, seq, 1, |out| write_value(out, &payload))
        .expect("an error answer of at most 64 KiB of message is within the send limit");
}

fn encode_answer_raw(
    out: &mut Vec<u8>,
    seq: u32,
    status: u8,
    body: impl FnOnce(&mut Vec<u8>),
) -> Result<()> {
    let start = out.len();
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(FLAG_MSGPACK);
    out.push(MTYPE_ANSWER);
    out.push(status);
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&seq.to_le_bytes());
    body(out);
    if let Err(e) = finish_frame(out, start, DEFAULT_MAX_SEND_PAYLOAD) {
        out.truncate(start);
        return Err(e);
    }
    Ok(())
}

/// Appends the msgpack encoding of `value` to `out`.
pub(crate) fn write_value(out: &mut Vec<u8>, value: &Value) {
    // Writing into a Vec cannot fail.
    rmpv::encode::write_value(out, value).expect("writing msgpack to a Vec cannot fail");
}

/// A parsed 12-byte header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// The version byte (never checked).
    pub version: u8,
    /// The flag byte.
    pub flag: u8,
    /// The message type.
    pub mtype: u8,
    /// Method length for quests, status for answers.
    pub ss: u8,
    /// The payload size.
    pub psize: u32,
}

impl Header {
    /// Parses and validates a header: the magic, the message type and the
    /// flag. The payload size is checked by the caller against its limit.
    pub(crate) fn parse(bytes: &[u8; HEADER_LEN]) -> std::result::Result<Header, ProtocolError> {
        let mut magic = [0u8; 4];
        magic.copy_from_slice(&bytes[..4]);
        if magic != MAGIC {
            return Err(ProtocolError::BadMagic(magic));
        }
        let header = Header {
            version: bytes[4],
            flag: bytes[5],
            mtype: bytes[6],
            ss: bytes[7],
            psize: LittleEndian::read_u32(&bytes[8..12]),
        };
        if header.mtype > MTYPE_ANSWER {
            return Err(ProtocolError::UnknownMessageType(header.mtype));
        }
        let msgpack = header.flag & FLAG_MSGPACK != 0;
        let json = header.flag & FLAG_JSON != 0;
        if msgpack == json {
            return Err(ProtocolError::BadFlag(header.flag));
        }
        if json {
            return Err(ProtocolError::JsonNotSupported);
        }
        if header.mtype != MTYPE_ANSWER && header.ss == 0 {
            return Err(ProtocolError::EmptyMethod);
        }
        if header.psize == 0 {
            return Err(ProtocolError::EmptyPayload);
        }
        Ok(header)
    }

    /// The length of the whole frame, header included.
    pub(crate) fn frame_len(&self) -> u64 {
        HEADER_LEN as u64 + body_prefix_len(self.mtype, self.ss) as u64 + self.psize as u64
    }
}

/// Decodes a msgpack payload, which must be a map with string keys, nested
/// at most [`MAX_NESTING`] levels deep (see [`check_payload_bytes`]).
/// Bytes after the map are ignored (as the other FPNN implementations do).
pub(crate) fn decode_payload(bytes: &[u8]) -> std::result::Result<Value, ProtocolError> {
    check_payload_bytes(bytes)?;
    decode_checked(bytes)
}

/// Decodes a payload that [`check_payload_bytes`] accepted.
fn decode_checked(bytes: &[u8]) -> std::result::Result<Value, ProtocolError> {
    let mut rd = bytes;
    let value =
        rmpv::decode::read_value(&mut rd).map_err(|e| ProtocolError::Msgpack(e.to_string()))?;
    if value.as_map().is_none() {
        // Not expected after the check.
        return Err(ProtocolError::NotAMap);
    }
    Ok(value)
}

/// Decodes one complete frame (`bytes` holds exactly one frame).
#[cfg_attr(not(feature = "emulator"), allow(dead_code))]
pub(crate) fn decode_frame(
    bytes: &[u8],
    max_payload: usize,
) -> std::result::Result<Frame, ProtocolError> {
    let mut decoder = Decoder::new(max_payload);
    decoder.feed(bytes);
    match decoder.next_frame()? {
        Some(frame) if decoder.buffered() == 0 => Ok(frame),
        Some(_) => Err(ProtocolError::Other(
            "trailing bytes after the frame".into(),
        )),
        None => Err(ProtocolError::Other("incomplete frame".into())),
    }
}

/// An incremental frame decoder.
///
/// Feed it bytes as they arrive with [`feed`](Decoder::feed), then take
/// frames out with
/// [`next_frame`](Decoder::next_frame) until it returns `Ok(None)`.
/// After an error the stream is unusable (the connection must be closed).
#[derive(Debug)]
pub struct Decoder {
    buf: Vec<u8>,
    start: usize,
    max_payload: usize,
    /// The validated header of the frame being received, if any.
    pending: Option<Header>,
}

impl Decoder {
    /// A decoder that refuses payloads larger than `max_payload` bytes.
    #[must_use]
    pub fn new(max_payload: usize) -> Decoder {
        Decoder {
            buf: Vec::new(),
            start: 0,
            max_payload,
            pending: None,
        }
    }

    /// Appends received bytes.
    ///
    /// The buffer grows only as bytes arrive (never reserved from a
    /// header's length) and, while a frame is being received, never beyond
    /// that frame's end: a peer cannot make it allocate more than it sent,
    /// nor more than one frame within the limit.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.compact();
        let needed = self.buf.len() + bytes.len();
        if needed > self.buf.capacity() {
            let mut target = needed.max(self.buf.capacity().saturating_mul(2));
            if let Some(h) = self.pending {
                let frame_end = self.start + h.frame_len() as usize;
                target = target.min(frame_end.max(needed));
            }
            self.buf.reserve_exact(target - self.buf.len());
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The bytes the buffer holds allocated now.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Releases the room a large frame left behind: when the buffer holds
    /// more than 1 MiB and needs less than a quarter of it.
    pub fn shrink(&mut self) {
        const KEEP: usize = 1 << 20;
        if self.buf.capacity() <= KEEP {
            return;
        }
        let want = self
            .pending
            .map_or(0, |h| h.frame_len() as usize)
            .max(self.buffered());
        if want <= self.buf.capacity() / 4 {
            self.buf.drain(..self.start);
            self.start = 0;
            self.buf.shrink_to(want.max(64 * 1024));
        }
    }

    /// The number of received bytes not yet returned as frames.
    #[must_use]
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    fn compact(&mut self) {
        if self.start > 0 && (self.start == self.buf.len() || self.start > self.buf.capacity() / 2)
        {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }

    /// Takes the next complete frame out of the buffer.
    ///
    /// Returns `Ok(None)` when more bytes are needed. A header is validated
    /// (magic, message type, flag, payload size against the limit) as soon as
    /// its 12 bytes are in, before waiting for (or allocating room for) the
    /// body.
    ///
    /// # Errors
    ///
    /// A [`ProtocolError`] for anything that is not a well-formed frame
    /// within the limit (bad magic, type or flag, a payload over the limit,
    /// invalid msgpack, a root that is not a map with string keys, nesting
    /// deeper than [`MAX_NESTING`]). The stream is unusable after it.
    pub fn next_frame(&mut self) -> std::result::Result<Option<Frame>, ProtocolError> {
        let Some((header, body)) = self.peek_frame()? else {
            return Ok(None);
        };
        let decoded = match header.mtype {
            MTYPE_ANSWER => {
                let bytes = &self.buf[body];
                Frame::Answer(Answer {
                    seq: LittleEndian::read_u32(&bytes[..4]),
                    status: header.ss,
                    payload: decode_payload(&bytes[4..])?,
                })
            }
            _ => Frame::Quest(self.decode_quest(header, body)?),
        };
        self.consume(header);
        Ok(Some(decoded))
    }

    /// Like [`next_frame`](Decoder::next_frame), but an answer's payload is
    /// only checked (a well-formed msgpack map with string keys, nothing
    /// allocated), not decoded: the frame's bytes stay in the buffer at the
    /// returned range (valid until the next [`feed`](Decoder::feed)), for the
    /// thread that completes the call to decode.
    pub(crate) fn next_checked(&mut self) -> std::result::Result<Option<Checked>, ProtocolError> {
        let Some((header, body)) = self.peek_frame()? else {
            return Ok(None);
        };
        let checked = match header.mtype {
            MTYPE_ANSWER => {
                let bytes = &self.buf[body.clone()];
                check_payload_bytes(&bytes[4..])?;
                Checked::Answer {
                    seq: LittleEndian::read_u32(&bytes[..4]),
                    status: header.ss,
                    payload: body.start + 4..body.end,
                }
            }
            _ => Checked::Quest(self.decode_quest(header, body)?),
        };
        self.consume(header);
        Ok(Some(checked))
    }

    /// The received bytes (the ranges of [`Checked`] answers index them).
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// The header and body range of the complete frame at the front of the
    /// buffer, without taking it out.
    /// Like [`next_frame`](Decoder::next_frame), but a quest is offered to
    /// `gate` before its payload is decoded: `gate` gets the quest's seq, its
    /// method and its payload bytes (already checked to be a well-formed map
    /// with string keys, nothing allocated), and returns `None` to admit the
    /// quest (its payload is then decoded) or `Some(refusal)` to refuse it
    /// (nothing is decoded). Answers are not gated.
    ///
    /// A server uses this to check a quest's credentials before a peer can
    /// make it allocate anything for the payload.
    #[cfg_attr(not(feature = "emulator"), allow(dead_code))]
    pub(crate) fn next_gated<R>(
        &mut self,
        gate: impl FnOnce(Option<u32>, &str, &[u8]) -> Option<R>,
    ) -> std::result::Result<Option<Gated<R>>, ProtocolError> {
        let Some((header, body)) = self.peek_frame()? else {
            return Ok(None);
        };
        if header.mtype == MTYPE_ANSWER {
            return self.next_frame().map(|f| f.map(Gated::Frame));
        }
        let bytes = &self.buf[body.clone()];
        let (seq, rest) = if header.mtype == MTYPE_TWOWAY {
            (Some(LittleEndian::read_u32(&bytes[..4])), &bytes[4..])
        } else {
            (None, bytes)
        };
        let ss = header.ss as usize;
        let method = std::str::from_utf8(&rest[..ss]).map_err(|_| ProtocolError::MethodNotUtf8)?;
        let payload = &rest[ss..];
        check_payload_bytes(payload)?;
        if let Some(refusal) = gate(seq, method, payload) {
            self.consume(header);
            return Ok(Some(Gated::Refused { seq, refusal }));
        }
        // Checked above: decoded without checking again.
        let quest = Quest {
            seq,
            method: method.to_string(),
            payload: decode_checked(payload)?,
        };
        self.consume(header);
        Ok(Some(Gated::Frame(Frame::Quest(quest))))
    }

    fn peek_frame(
        &mut self,
    ) -> std::result::Result<Option<(Header, std::ops::Range<usize>)>, ProtocolError> {
        let avail = &self.buf[self.start..];
        let header = match self.pending {
            Some(h) => h,
            None => {
                if avail.len() < HEADER_LEN {
                    return Ok(None);
                }
                let mut raw = [0u8; HEADER_LEN];
                raw.copy_from_slice(&avail[..HEADER_LEN]);
                let h = Header::parse(&raw)?;
                if h.psize as u64 > self.max_payload as u64 {
                    return Err(ProtocolError::FrameTooLarge {
                        size: h.psize as u64,
                        max: self.max_payload as u64,
                    });
                }
                self.pending = Some(h);
                h
            }
        };
        let frame_len = header.frame_len() as usize;
        if avail.len() < frame_len {
            return Ok(None);
        }
        Ok(Some((
            header,
            self.start + HEADER_LEN..self.start + frame_len,
        )))
    }

    /// Takes the frame returned by `peek_frame` out of the buffer.
    fn consume(&mut self, header: Header) {
        self.start += header.frame_len() as usize;
        self.pending = None;
    }

    fn decode_quest(
        &self,
        header: Header,
        body: std::ops::Range<usize>,
    ) -> std::result::Result<Quest, ProtocolError> {
        let body = &self.buf[body];
        let (seq, rest) = if header.mtype == MTYPE_TWOWAY {
            (Some(LittleEndian::read_u32(&body[..4])), &body[4..])
        } else {
            (None, body)
        };
        let ss = header.ss as usize;
        let method = std::str::from_utf8(&rest[..ss])
            .map_err(|_| ProtocolError::MethodNotUtf8)?
            .to_string();
        let payload = decode_payload(&rest[ss..])?;
        Ok(Quest {
            seq,
            method,
            payload,
        })
    }
}

/// A frame taken out by [`Decoder::next_gated`].
#[derive(Debug)]
#[cfg_attr(not(feature = "emulator"), allow(dead_code))]
pub(crate) enum Gated<R> {
    /// An answer, or a quest the gate admitted (decoded).
    Frame(Frame),
    /// A quest the gate refused (or handled): its payload was not decoded.
    Refused { seq: Option<u32>, refusal: R },
}

/// Calls `f` with the bytes of each key of a payload's top-level map (the
/// check made sure they are UTF-8) and the encoded bytes of its value,
/// without decoding or allocating, until `f` breaks. `bytes` must have passed
/// [`check_payload_bytes`] (an error is returned otherwise).
#[cfg_attr(not(feature = "emulator"), allow(dead_code))]
pub(crate) fn for_each_raw_entry_bytes(
    bytes: &[u8],
    mut f: impl FnMut(&[u8], &[u8]) -> std::ops::ControlFlow<()>,
) -> std::result::Result<(), ProtocolError> {
    use rmp::Marker;
    let mut rd = bytes;
    let pairs = match Marker::from_u8(take(&mut rd, 1)?[0]) {
        Marker::FixMap(n) => n as u64,
        Marker::Map16 => take_len(&mut rd, 2)?,
        Marker::Map32 => take_len(&mut rd, 4)?,
        _ => return Err(ProtocolError::NotAMap),
    };
    for _ in 0..pairs {
        let len = match Marker::from_u8(take(&mut rd, 1)?[0]) {
            Marker::FixStr(n) => u64::from(n),
            Marker::Str8 => take_len(&mut rd, 1)?,
            Marker::Str16 => take_len(&mut rd, 2)?,
            Marker::Str32 => take_len(&mut rd, 4)?,
            _ => return Err(ProtocolError::NonStringKey),
        };
        let key = take(&mut rd, len)?;
        let before = rd;
        skip_value(&mut rd, MAX_NESTING - 1)?;
        if f(key, &before[..before.len() - rd.len()]).is_break() {
            break;
        }
    }
    Ok(())
}

/// A frame taken out by [`Decoder::next_checked`].
#[derive(Debug)]
pub(crate) enum Checked {
    /// An answer whose checked, still encoded payload is at `payload` in
    /// [`Decoder::bytes`].
    Answer {
        seq: u32,
        status: u8,
        payload: std::ops::Range<usize>,
    },
    /// A quest, decoded.
    Quest(Quest),
}

/// An answer whose payload has been checked but not decoded yet: the bytes
/// of one read are shared by the answers in it, and each answer is decoded
/// by the thread that completes its call (so the reader thread allocates
/// nothing per answer, and each value is built and dropped on one thread).
#[derive(Debug, Clone)]
pub(crate) struct RawAnswer {
    pub seq: u32,
    status: u8,
    bytes: std::sync::Arc<[u8]>,
    payload: std::ops::Range<usize>,
}

impl RawAnswer {
    /// `payload` indexes `bytes` and was checked by
    /// [`Decoder::next_checked`].
    pub(crate) fn new(
        seq: u32,
        status: u8,
        bytes: std::sync::Arc<[u8]>,
        payload: std::ops::Range<usize>,
    ) -> RawAnswer {
        RawAnswer {
            seq,
            status,
            bytes,
            payload,
        }
    }

    /// The size of the answer's frame: header, seq and payload.
    pub(crate) fn frame_len(&self) -> usize {
        HEADER_LEN + 4 + self.payload.len()
    }

    /// Decodes the answer: the OK payload, or the server's error (see
    /// [`Answer::into_result`]). The payload was checked when it was
    /// received, so decoding fails only in a case the check did not foresee;
    /// it then fails this call alone, with a protocol error.
    pub(crate) fn into_result(self) -> Result<Value> {
        let payload = decode_checked(&self.bytes[self.payload.clone()])?;
        Answer {
            seq: self.seq,
            status: self.status,
            payload,
        }
        .into_result()
    }
}

/// The deepest nesting of arrays and maps accepted in a received payload
/// (the root map is level 1). RTM payloads nest a few levels; the limit
/// keeps a hostile peer from exhausting a thread's stack with a deeply
/// nested payload (decoding recurses once or twice per level).
pub const MAX_NESTING: usize = 100;

/// Checks, without decoding or allocating, that `bytes` start with a
/// well-formed msgpack map whose keys are all (UTF-8) strings, nested at most
/// [`MAX_NESTING`] levels deep: the checks [`decode_payload`] makes.
pub(crate) fn check_payload_bytes(bytes: &[u8]) -> std::result::Result<(), ProtocolError> {
    use rmp::Marker;
    let mut rd = bytes;
    let pairs = match Marker::from_u8(take(&mut rd, 1)?[0]) {
        Marker::FixMap(n) => n as u64,
        Marker::Map16 => take_len(&mut rd, 2)?,
        Marker::Map32 => take_len(&mut rd, 4)?,
        _ => return Err(ProtocolError::NotAMap),
    };
    for _ in 0..pairs {
        let len = match Marker::from_u8(take(&mut rd, 1)?[0]) {
            Marker::FixStr(n) => u64::from(n),
            Marker::Str8 => take_len(&mut rd, 1)?,
            Marker::Str16 => take_len(&mut rd, 2)?,
            Marker::Str32 => take_len(&mut rd, 4)?,
            _ => return Err(ProtocolError::NonStringKey),
        };
        // A key that is not UTF-8 is not a string key either (ASCII, as
        // keys mostly are, is UTF-8).
        let key = take(&mut rd, len)?;
        if !key.is_ascii() {
            std::str::from_utf8(key).map_err(|_| ProtocolError::NonStringKey)?;
        }
        skip_value(&mut rd, MAX_NESTING - 1)?;
    }
    if !rd.is_empty() {
        log::debug!("ignoring {} bytes after the payload map", rd.len());
    }
    Ok(())
}

fn truncated() -> ProtocolError {
    ProtocolError::Msgpack("the payload ends inside a value".into())
}

/// Takes `n` bytes off the front of `rd`.
fn take<'a>(rd: &mut &'a [u8], n: u64) -> std::result::Result<&'a [u8], ProtocolError> {
    let n = usize::try_from(n).map_err(|_| truncated())?;
    if rd.len() < n {
        return Err(truncated());
    }
    let (head, rest) = rd.split_at(n);
    *rd = rest;
    Ok(head)
}

/// Takes a big-endian length of `width` bytes (1, 2 or 4).
fn take_len(rd: &mut &[u8], width: u64) -> std::result::Result<u64, ProtocolError> {
    Ok(take(rd, width)?
        .iter()
        .fold(0u64, |acc, b| acc << 8 | u64::from(*b)))
}

/// Skips one msgpack value; `levels` more levels of nesting are allowed.
fn skip_value(rd: &mut &[u8], levels: usize) -> std::result::Result<(), ProtocolError> {
    let marker = rmp::Marker::from_u8(take(rd, 1)?[0]);
    skip_after_marker(rd, marker, levels)
}

/// Skips the rest of a value whose marker was read.
fn skip_after_marker(
    rd: &mut &[u8],
    marker: rmp::Marker,
    levels: usize,
) -> std::result::Result<(), ProtocolError> {
    use rmp::Marker as M;
    let items = match marker {
        // The unused marker 0xc1 decodes as nil.
        M::Null | M::True | M::False | M::FixPos(_) | M::FixNeg(_) | M::Reserved => return Ok(()),
        M::U8 | M::I8 => return take(rd, 1).map(drop),
        M::U16 | M::I16 => return take(rd, 2).map(drop),
        M::U32 | M::I32 | M::F32 => return take(rd, 4).map(drop),
        M::U64 | M::I64 | M::F64 => return take(rd, 8).map(drop),
        M::FixStr(n) => return take(rd, u64::from(n)).map(drop),
        M::Str8 | M::Bin8 => return take_then(rd, 1, 0),
        M::Str16 | M::Bin16 => return take_then(rd, 2, 0),
        M::Str32 | M::Bin32 => return take_then(rd, 4, 0),
        M::FixExt1 => return take(rd, 2).map(drop),
        M::FixExt2 => return take(rd, 3).map(drop),
        M::FixExt4 => return take(rd, 5).map(drop),
        M::FixExt8 => return take(rd, 9).map(drop),
        M::FixExt16 => return take(rd, 17).map(drop),
        M::Ext8 => return take_then(rd, 1, 1),
        M::Ext16 => return take_then(rd, 2, 1),
        M::Ext32 => return take_then(rd, 4, 1),
        M::FixArray(n) => u64::from(n),
        M::Array16 => take_len(rd, 2)?,
        M::Array32 => take_len(rd, 4)?,
        M::FixMap(n) => 2 * u64::from(n),
        M::Map16 => 2 * take_len(rd, 2)?,
        M::Map32 => 2 * take_len(rd, 4)?,
    };
    let Some(levels) = levels.checked_sub(1) else {
        return Err(ProtocolError::Msgpack(format!(
            "the payload nests deeper than {MAX_NESTING} levels"
        )));
    };
    // Every item takes at least one byte: a count larger than what is left
    // fails on the first missing byte.
    for _ in 0..items {
        skip_value(rd, levels)?;
    }
    Ok(())
}

/// Reads a length of `width` bytes, then skips `extra` + that many bytes.
fn take_then(rd: &mut &[u8], width: u64, extra: u64) -> std::result::Result<(), ProtocolError> {
    let n = take_len(rd, width)?;
    take(rd, n + extra).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        let clean: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        hex::decode(clean).unwrap()
    }

    fn map(entries: Vec<(&str, Value)>) -> Value {
        map_of(entries)
    }

    #[test]
    fn worked_example_two_way_quest() {
        // docs/protocol.md, section 1: getVoiceRoomList, seq 1, 99 bytes.
        let expected = unhex(
            "46504e4e 01 80 01 10 43000000 01000000 676574566f696365526f6f6d4c697374
             84 a3706964 ce00a7d8c1
             a47369676e d920 4332313437374439 33433846463242433530453134414138 3146373031393546
             a473616c74 ce499602d2 a27473 ce5f5e1000",
        );
        let payload = map(vec![
            ("pid", Value::from(11000001u64)),
            ("sign", Value::from("C21477D93C8FF2BC50E14AA81F70195F")),
            ("salt", Value::from(1234567890u64)),
            ("ts", Value::from(1600000000u64)),
        ]);
        let mut out = Vec::new();
        encode_quest(&mut out, Some(1), "getVoiceRoomList", &payload).unwrap();
        assert_eq!(out.len(), 99);
        assert_eq!(hex::encode(&out), hex::encode(&expected));
        let frame = decode_frame(&expected, DEFAULT_MAX_RECV_PAYLOAD).unwrap();
        assert_eq!(
            frame,
            Frame::Quest(Quest {
                seq: Some(1),
                method: "getVoiceRoomList".into(),
                payload
            })
        );
    }

    #[test]
    fn worked_example_ok_answer() {
        let bytes = unhex("46504e4e 01 80 02 00 0d000000 01000000 81 a4 72696473 92 cd03e9 cd03ea");
        assert_eq!(bytes.len(), 29);
        let payload = map(vec![(
            "rids",
            Value::Array(vec![Value::from(1001), Value::from(1002)]),
        )]);
        let mut out = Vec::new();
        encode_answer(&mut out, 1, &payload).unwrap();
        assert_eq!(out, bytes);
        match decode_frame(&bytes, 1 << 20).unwrap() {
            Frame::Answer(a) => {
                assert_eq!(a.seq, 1);
                assert!(!a.is_error());
                assert_eq!(a.into_result().unwrap(), payload);
            }
            f => panic!("{f:?}"),
        }
    }

    #[test]
    fn worked_example_exception_answer() {
        let bytes = unhex(
            "46504e4e 01 80 02 01 18000000 01000000 82 a4 636f6465 ce 00030d46 a2 6578 a9 73616d65207369676e",
        );
        assert_eq!(bytes.len(), 40);
        let mut out = Vec::new();
        encode_error_answer(&mut out, 1, 200006, "same sign");
        assert_eq!(out, bytes);
        match decode_frame(&bytes, 1 << 20).unwrap() {
            Frame::Answer(a) => match a.into_result() {
                Err(Error::Server { code, message }) => {
                    assert_eq!(code, 200006);
                    assert_eq!(message, "same sign");
                }
                r => panic!("{r:?}"),
            },
            f => panic!("{f:?}"),
        }
    }

    #[test]
    fn worked_example_one_way_quest() {
        let bytes = unhex("46504e4e 01 80 00 06 04000000 6e6f74696679 81 a1 6b 01");
        assert_eq!(bytes.len(), 22);
        let payload = map(vec![("k", Value::from(1))]);
        let mut out = Vec::new();
        encode_quest(&mut out, None, "notify", &payload).unwrap();
        assert_eq!(out, bytes);
        assert_eq!(
            decode_frame(&bytes, 1 << 20).unwrap(),
            Frame::Quest(Quest {
                seq: None,
                method: "notify".into(),
                payload
            })
        );
    }

    #[test]
    fn worked_example_ping_and_server_ping() {
        let ping = unhex("46504e4e 01 80 01 05 01000000 02000000 2a70696e67 80");
        let mut out = Vec::new();
        encode_quest(&mut out, Some(2), "*ping", &Value::Map(vec![])).unwrap();
        assert_eq!(out, ping);
        let answer = unhex("46504e4e 01 80 02 00 0d000000 02000000 81 a2 7473 cf 00000174876e807b");
        match decode_frame(&answer, 1 << 20).unwrap() {
            Frame::Answer(a) => assert_eq!(
                map_get(&a.payload, "ts").and_then(Value::as_u64),
                Some(1600000000123)
            ),
            f => panic!("{f:?}"),
        }
        let server_ping = unhex("46504e4e 01 80 01 04 01000000 07000000 70696e67 80");
        assert!(matches!(
            decode_frame(&server_ping, 1 << 20).unwrap(),
            Frame::Quest(Quest { seq: Some(7), ref method, .. }) if method == "ping"
        ));
        let mut pong = Vec::new();
        encode_answer(&mut pong, 7, &Value::Map(vec![])).unwrap();
        assert_eq!(pong, unhex("46504e4e 01 80 02 00 01000000 07000000 80"));
    }

    #[test]
    fn json_frames_and_bad_headers_are_typed_errors() {
        let json = unhex(
            "46504e4e 01 40 02 00 14000000 01000000 7b2272696473223a5b313030312c313030325d7d",
        );
        assert_eq!(
            decode_frame(&json, 1 << 20),
            Err(ProtocolError::JsonNotSupported)
        );
        let mut bad = unhex("46504e4e 01 80 02 00 01000000 01000000 80");
        bad[0] = b'G';
        assert!(matches!(
            decode_frame(&bad, 1 << 20),
            Err(ProtocolError::BadMagic(_))
        ));
        let mut bad = unhex("46504e4e 01 80 02 00 01000000 01000000 80");
        bad[6] = 3;
        assert_eq!(
            decode_frame(&bad, 1 << 20),
            Err(ProtocolError::UnknownMessageType(3))
        );
        let mut bad = unhex("46504e4e 01 80 02 00 01000000 01000000 80");
        bad[5] = 0xC0;
        assert_eq!(
            decode_frame(&bad, 1 << 20),
            Err(ProtocolError::BadFlag(0xC0))
        );
        bad[5] = 0x00;
        assert_eq!(decode_frame(&bad, 1 << 20), Err(ProtocolError::BadFlag(0)));
        let empty = unhex("46504e4e 01 80 02 00 00000000 01000000");
        assert_eq!(
            decode_frame(&empty, 1 << 20),
            Err(ProtocolError::EmptyPayload)
        );
        let not_map = unhex("46504e4e 01 80 02 00 01000000 01000000 90");
        assert_eq!(decode_frame(&not_map, 1 << 20), Err(ProtocolError::NotAMap));
        let int_key = unhex("46504e4e 01 80 02 00 03000000 01000000 81 01 02");
        assert_eq!(
            decode_frame(&int_key, 1 << 20),
            Err(ProtocolError::NonStringKey)
        );
        let truncated = unhex("46504e4e 01 80 02 00 02000000 01000000 81 a1");
        assert!(matches!(
            decode_frame(&truncated, 1 << 20),
            Err(ProtocolError::Msgpack(_))
        ));
        // Any version byte is accepted.
        let v0 = unhex("46504e4e 00 80 02 00 01000000 01000000 80");
        assert!(decode_frame(&v0, 1 << 20).is_ok());
    }

    #[test]
    fn the_buffer_grows_with_the_bytes_and_never_beyond_the_frame() {
        // An 8 MiB frame arriving in 64 KiB reads.
        let payload = map(vec![("d", Value::Binary(vec![1u8; (8 << 20) - 64]))]);
        let mut frame = Vec::new();
        encode_quest(&mut frame, Some(1), "put", &payload).unwrap();
        let mut d = Decoder::new(16 << 20);
        let mut fed = 0;
        for chunk in frame.chunks(64 * 1024) {
            d.feed(chunk);
            fed += chunk.len();
            // Not reserved from the header: about what arrived.
            assert!(d.capacity() <= (2 * fed).max(64 * 1024), "{}", d.capacity());
            assert!(
                d.capacity() <= frame.len(),
                "{} > {}",
                d.capacity(),
                frame.len()
            );
            if fed < frame.len() {
                assert!(d.next_frame().unwrap().is_none());
            }
        }
        assert!(matches!(d.next_frame(), Ok(Some(Frame::Quest(_)))));
        // The room is released once the frame is out.
        d.feed(&frame[..100]);
        d.shrink();
        assert!(d.capacity() <= 64 * 1024, "{}", d.capacity());
    }

    #[test]
    fn oversized_header_is_refused_before_the_body_arrives() {
        // A header announcing a 4 GiB payload: refused from the 12 header
        // bytes alone, nothing allocated for the body.
        let header = unhex("46504e4e 01 80 02 00 ffffffff");
        let mut d = Decoder::new(DEFAULT_MAX_RECV_PAYLOAD);
        d.feed(&header);
        assert_eq!(
            d.next_frame(),
            Err(ProtocolError::FrameTooLarge {
                size: 0xFFFF_FFFF,
                max: DEFAULT_MAX_RECV_PAYLOAD as u64
            })
        );
        let mut d = Decoder::new(16);
        d.feed(&unhex("46504e4e 01 80 02 00 11000000"));
        assert!(matches!(
            d.next_frame(),
            Err(ProtocolError::FrameTooLarge { size: 17, max: 16 })
        ));
    }

    #[test]
    fn encoder_refuses_bad_input() {
        let mut out = Vec::new();
        let long = "m".repeat(256);
        assert!(matches!(
            encode_quest(&mut out, Some(1), &long, &Value::Map(vec![])),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            encode_quest(&mut out, Some(1), "", &Value::Map(vec![])),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            encode_quest(&mut out, Some(1), "m", &Value::from(1)),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            encode_quest(
                &mut out,
                Some(1),
                "m",
                &Value::Map(vec![(Value::from(1), Value::from(2))])
            ),
            Err(Error::InvalidArgument(_))
        ));
        let big = map(vec![(
            "b",
            Value::Binary(vec![0; DEFAULT_MAX_SEND_PAYLOAD]),
        )]);
        assert!(matches!(
            encode_quest(&mut out, Some(1), "m", &big),
            Err(Error::InvalidArgument(_))
        ));
        assert!(out.is_empty(), "nothing is left behind by a refused frame");
        // A huge error message is cut, not refused.
        let huge = "é".repeat(DEFAULT_MAX_SEND_PAYLOAD);
        encode_error_answer(&mut out, 1, 1, &huge);
        match decode_frame(&out, DEFAULT_MAX_RECV_PAYLOAD).unwrap() {
            Frame::Answer(a) => match a.into_result() {
                Err(Error::Server { message, .. }) => {
                    assert!(message.len() <= MAX_ERROR_MESSAGE && message.len() > 60_000)
                }
                r => panic!("{r:?}"),
            },
            f => panic!("{f:?}"),
        }
        out.clear();
        assert!(encode_quest(&mut out, Some(1), &"m".repeat(255), &Value::Map(vec![])).is_ok());
    }

    /// A small deterministic generator for the property tests.
    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }
    }

    fn random_value(rng: &mut XorShift, depth: u32) -> Value {
        match rng.below(if depth > 2 { 6 } else { 11 }) {
            8 => Value::F64(rng.next() as f64 / 3.0),
            9 => Value::Ext(
                rng.next() as i8,
                (0..[1, 2, 4, 8, 16, 3, 300][rng.below(7) as usize])
                    .map(|_| rng.next() as u8)
                    .collect(),
            ),
            10 => Value::from("x".repeat(rng.below(70_000) as usize)),
            0 => Value::from(rng.next() as i64),
            1 => Value::from(rng.below(300) as i64 - 150),
            2 => Value::from(format!("s{}", rng.next())),
            3 => Value::Binary((0..rng.below(40)).map(|_| rng.next() as u8).collect()),
            4 => Value::Boolean(rng.below(2) == 1),
            5 => Value::Nil,
            6 => Value::Array(
                (0..rng.below(5))
                    .map(|_| random_value(rng, depth + 1))
                    .collect(),
            ),
            _ => random_map(rng, depth + 1),
        }
    }

    fn random_map(rng: &mut XorShift, depth: u32) -> Value {
        Value::Map(
            (0..rng.below(6))
                .map(|i| (Value::from(format!("k{i}")), random_value(rng, depth)))
                .collect(),
        )
    }

    #[test]
    fn property_round_trip_with_random_splits() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        for _ in 0..300 {
            let mut frames = Vec::new();
            let mut bytes = Vec::new();
            for _ in 0..rng.below(8) + 1 {
                let payload = random_map(&mut rng, 0);
                let frame = match rng.below(3) {
                    0 => {
                        let seq = rng.next() as u32;
                        let method = format!("m{}", rng.below(1000));
                        encode_quest(&mut bytes, Some(seq), &method, &payload).unwrap();
                        Frame::Quest(Quest {
                            seq: Some(seq),
                            method,
                            payload,
                        })
                    }
                    1 => {
                        encode_quest(&mut bytes, None, "oneway", &payload).unwrap();
                        Frame::Quest(Quest {
                            seq: None,
                            method: "oneway".into(),
                            payload,
                        })
                    }
                    _ => {
                        let seq = rng.next() as u32;
                        encode_answer(&mut bytes, seq, &payload).unwrap();
                        Frame::Answer(Answer {
                            seq,
                            status: 0,
                            payload,
                        })
                    }
                };
                frames.push(frame);
            }
            let mut decoder = Decoder::new(1 << 20);
            let mut got = Vec::new();
            let mut pos = 0;
            while pos < bytes.len() {
                let n = (rng.below(40) as usize + 1).min(bytes.len() - pos);
                decoder.feed(&bytes[pos..pos + n]);
                pos += n;
                while let Some(f) = decoder.next_frame().unwrap() {
                    got.push(f);
                }
            }
            assert_eq!(got, frames);
            assert_eq!(decoder.buffered(), 0);
        }
    }

    #[test]
    fn property_random_bytes_never_panic() {
        let mut rng = XorShift(0xDEAD_BEEF_1234_5678);
        let valid = {
            let mut v = Vec::new();
            encode_answer(&mut v, 5, &random_map(&mut XorShift(3), 0)).unwrap();
            v
        };
        for round in 0..5000 {
            let mut bytes: Vec<u8> = match round % 3 {
                // Pure noise, sometimes behind a valid magic.
                0 => (0..rng.below(200)).map(|_| rng.next() as u8).collect(),
                1 => {
                    let mut b = b"FPNN".to_vec();
                    b.extend((0..rng.below(200)).map(|_| rng.next() as u8));
                    b
                }
                // A valid frame with a few bytes flipped.
                _ => {
                    let mut b = valid.clone();
                    for _ in 0..rng.below(4) + 1 {
                        let i = rng.below(b.len() as u64) as usize;
                        b[i] = rng.next() as u8;
                    }
                    b
                }
            };
            if round % 7 == 0 {
                bytes.truncate(rng.below(bytes.len() as u64 + 1) as usize);
            }
            let mut decoder = Decoder::new(1 << 16);
            let mut pos = 0;
            'feed: while pos < bytes.len() {
                let n = (rng.below(17) as usize + 1).min(bytes.len() - pos);
                decoder.feed(&bytes[pos..pos + n]);
                pos += n;
                loop {
                    match decoder.next_frame() {
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(_) => break 'feed,
                    }
                }
            }
        }
    }
    /// Decodes with `rmpv` alone, as `decode_payload` did before the check.
    fn rmpv_decode_map(bytes: &[u8]) -> Option<Value> {
        let v = rmpv::decode::read_value(&mut &bytes[..]).ok()?;
        let Value::Map(entries) = &v else { return None };
        entries.iter().all(|(k, _)| k.is_str()).then_some(v)
    }

    #[test]
    fn property_the_payload_check_agrees_with_decoding() {
        let mut rng = XorShift(0x0123_4567_89AB_CDEF);
        for _ in 0..300 {
            let value = random_map(&mut rng, 0);
            let mut bytes = Vec::new();
            write_value(&mut bytes, &value);
            assert_eq!(check_payload_bytes(&bytes), Ok(()));
            assert_eq!(decode_payload(&bytes).unwrap(), value);
            // Every cut short payload is refused, by both.
            for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
                if cut < bytes.len() {
                    assert!(check_payload_bytes(&bytes[..cut]).is_err());
                    assert!(rmpv_decode_map(&bytes[..cut]).is_none());
                }
            }
            // Flipped bytes: whatever the check passes, decoding accepts
            // (a raw answer is decoded later, on another thread, and must
            // not fail there); and it passes what decoding accepts.
            for _ in 0..20 {
                let mut b = bytes.clone();
                for _ in 0..rng.below(3) + 1 {
                    let i = rng.below(b.len() as u64) as usize;
                    b[i] = rng.next() as u8;
                }
                let checked = check_payload_bytes(&b).is_ok();
                assert_eq!(
                    checked,
                    rmpv_decode_map(&b).is_some(),
                    "{}",
                    hex::encode(&b)
                );
                if checked {
                    assert!(decode_checked(&b).is_ok());
                }
            }
        }
    }

    fn nested(levels: usize) -> Vec<u8> {
        // {"a": [[[ ... ]]]}: the map, then levels - 1 arrays.
        let mut bytes = vec![0x81, 0xa1, b'a'];
        bytes.extend(std::iter::repeat_n(0x91, levels - 2));
        bytes.push(0x90);
        bytes
    }

    #[test]
    fn payloads_nest_at_most_max_nesting_levels() {
        let ok = nested(MAX_NESTING);
        assert_eq!(check_payload_bytes(&ok), Ok(()));
        assert!(decode_payload(&ok).is_ok());
        let deep = nested(MAX_NESTING + 1);
        assert!(matches!(
            check_payload_bytes(&deep),
            Err(ProtocolError::Msgpack(m)) if m.contains("nests deeper")
        ));
        assert!(decode_payload(&deep).is_err());
        // A huge announced count with no items behind it fails at once.
        assert!(check_payload_bytes(&[0x81, 0xa1, b'a', 0xdd, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(check_payload_bytes(&[0xdf, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert_eq!(check_payload_bytes(&[0x90]), Err(ProtocolError::NotAMap));
        assert_eq!(
            check_payload_bytes(&[0x81, 0x01, 0x02]),
            Err(ProtocolError::NonStringKey)
        );
        assert!(check_payload_bytes(&[0x81, 0xa1, b'a', 0xd4]).is_err());
        assert_eq!(
            check_payload_bytes(&[0x81, 0xa1, 0xff, 0xc0]),
            Err(ProtocolError::NonStringKey)
        );
    }

    #[test]
    fn checked_answers_decode_like_next_frame() {
        let mut rng = XorShift(77);
        let mut bytes = Vec::new();
        let mut expected = Vec::new();
        for seq in 1..=20u32 {
            let payload = random_map(&mut rng, 0);
            if seq % 5 == 0 {
                encode_error_answer(&mut bytes, seq, 200000 + i64::from(seq), "bad");
            } else {
                encode_answer(&mut bytes, seq, &payload).unwrap();
            }
            encode_quest(&mut bytes, None, "push", &payload).unwrap();
            expected.push(seq);
        }
        let mut reference = Decoder::new(1 << 20);
        reference.feed(&bytes);
        let mut checked = Decoder::new(1 << 20);
        checked.feed(&bytes);
        let shared: std::sync::Arc<[u8]> = std::sync::Arc::from(&bytes[..]);
        while let Some(frame) = reference.next_frame().unwrap() {
            match (frame, checked.next_checked().unwrap().unwrap()) {
                (
                    Frame::Answer(a),
                    Checked::Answer {
                        seq,
                        status,
                        payload,
                    },
                ) => {
                    assert_eq!((a.seq, a.status), (seq, status));
                    let raw = RawAnswer::new(seq, status, shared.clone(), payload);
                    assert_eq!(
                        format!("{:?}", a.into_result()),
                        format!("{:?}", raw.into_result())
                    );
                }
                (Frame::Quest(a), Checked::Quest(b)) => assert_eq!(a, b),
                (a, b) => panic!("{a:?} vs {b:?}"),
            }
        }
        assert!(checked.next_checked().unwrap().is_none());
        assert_eq!(expected.len(), 20);
    }
}

/// Property tests of the answer reader: what the reader thread checks
/// without decoding and what the completing thread then decodes agree, on
/// any bytes.
#[cfg(test)]
mod props {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    /// Msgpack-ish bytes: valid encodings of nested values, spoiled.
    fn payload_bytes() -> impl Strategy<Value = Vec<u8>> {
        let leaf = prop_oneof![
            Just(Value::Nil),
            any::<i64>().prop_map(Value::from),
            any::<bool>().prop_map(Value::from),
            vec(any::<u8>(), 0..8).prop_map(Value::Binary),
            vec(any::<char>(), 0..8).prop_map(|c| Value::from(String::from_iter(c))),
        ];
        let value = leaf.prop_recursive(5, 40, 5, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..5).prop_map(Value::Array),
                vec((inner.clone(), inner), 0..5).prop_map(Value::Map),
            ]
        });
        (
            value,
            vec((any::<usize>(), any::<u8>()), 0..3),
            any::<usize>(),
        )
            .prop_map(|(v, flips, cut)| {
                let mut out = Vec::new();
                write_value(&mut out, &v);
                for (at, b) in flips {
                    let i = at % out.len();
                    out[i] ^= b;
                }
                if cut % 4 == 0 {
                    out.truncate(cut % (out.len() + 1));
                }
                out
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

        #[test]
        fn the_reader_check_and_the_answer_decode_agree(
            payload in payload_bytes(),
            seq in any::<u32>(),
            status in 0..2u8,
        ) {
            let mut frame = Vec::new();
            frame.extend_from_slice(&MAGIC);
            frame.extend_from_slice(&[VERSION, FLAG_MSGPACK, MTYPE_ANSWER, status]);
            frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            frame.extend_from_slice(&seq.to_le_bytes());
            frame.extend_from_slice(&payload);
            let mut full = Decoder::new(1 << 20);
            full.feed(&frame);
            let decoded = full.next_frame();
            let mut checked = Decoder::new(1 << 20);
            checked.feed(&frame);
            match (checked.next_checked(), decoded) {
                (Ok(Some(Checked::Answer { seq: s, status: st, payload: range })), Ok(Some(Frame::Answer(a)))) => {
                    prop_assert_eq!(s, a.seq);
                    let bytes: std::sync::Arc<[u8]> = std::sync::Arc::from(checked.bytes());
                    let raw = RawAnswer::new(s, st, bytes, range);
                    // Decoded on the completing thread: the same result,
                    // never a protocol error the check missed.
                    let got = raw.into_result();
                    let want = a.into_result();
                    prop_assert_eq!(format!("{got:?}"), format!("{want:?}"));
                }
                (Err(e1), Err(e2)) => prop_assert_eq!(e1, e2),
                (Ok(None), Ok(None)) => {}
                (c, d) => prop_assert!(false, "check {:?} but decode {:?}", c, d),
            }
        }
    }
}
