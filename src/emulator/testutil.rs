//! A tiny raw FPNN client for the emulator's own unit tests.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use rmpv::Value;

use crate::fpnn::codec::{
    encode_answer, encode_error_answer, encode_quest, Answer, Decoder, Frame, Quest,
};
use crate::fpnn::crypto::{
    CipherMode, Decryptor, EncryptionConfig, Encryptor, KeyBits, ServerPublicKey,
};

const MAX: usize = 16 << 20;
const TIMEOUT: Duration = Duration::from_secs(5);

/// A map with string keys.
pub(crate) fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (Value::from(k), v))
            .collect(),
    )
}

pub(crate) struct RawClient {
    stream: TcpStream,
    decoder: Decoder,
    encryptor: Option<Encryptor>,
    decryptor: Option<Decryptor>,
    seq: u32,
}

impl RawClient {
    pub(crate) fn connect(endpoint: &str) -> RawClient {
        let stream = TcpStream::connect(endpoint).expect("connect");
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        RawClient {
            stream,
            decoder: Decoder::new(MAX),
            encryptor: None,
            decryptor: None,
            seq: 0,
        }
    }

    fn next_seq(&mut self) -> u32 {
        self.seq += 1;
        self.seq
    }

    fn frame_bytes(&mut self, frame: &[u8]) -> Vec<u8> {
        match &mut self.encryptor {
            Some(enc) => {
                let mut out = Vec::new();
                enc.encrypt_frame(frame, &mut out);
                out
            }
            None => frame.to_vec(),
        }
    }

    fn write_frame(&mut self, frame: &[u8]) {
        let bytes = self.frame_bytes(frame);
        // The server may already have closed the connection.
        let _ = self.stream.write_all(&bytes);
    }

    pub(crate) fn write_raw(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    /// Sends a two-way quest; returns its seq.
    pub(crate) fn send(&mut self, method: &str, payload: &Value) -> u32 {
        let seq = self.next_seq();
        let mut frame = Vec::new();
        encode_quest(&mut frame, Some(seq), method, payload).unwrap();
        self.write_frame(&frame);
        seq
    }

    pub(crate) fn send_one_way(&mut self, method: &str, payload: &Value) {
        let mut frame = Vec::new();
        encode_quest(&mut frame, None, method, payload).unwrap();
        self.write_frame(&frame);
    }

    pub(crate) fn answer(&mut self, seq: u32, payload: &Value) {
        let mut frame = Vec::new();
        encode_answer(&mut frame, seq, payload).unwrap();
        self.write_frame(&frame);
    }

    pub(crate) fn answer_error(&mut self, seq: u32, code: i64, ex: &str) {
        let mut frame = Vec::new();
        encode_error_answer(&mut frame, seq, code, ex);
        self.write_frame(&frame);
    }

    /// Sends a quest and reads the next frame, which must be its answer.
    pub(crate) fn call(&mut self, method: &str, payload: &Value) -> Answer {
        let seq = self.send(method, payload);
        let a = self.read_answer();
        assert_eq!(a.seq, seq, "answer to another quest");
        a
    }

    fn fill(&mut self) -> io::Result<usize> {
        let mut buf = [0u8; 8192];
        let n = self.stream.read(&mut buf)?;
        match &mut self.decryptor {
            Some(dec) => {
                let mut plain = Vec::new();
                dec.decrypt(&buf[..n], &mut plain).unwrap();
                self.decoder.feed(&plain);
            }
            None => self.decoder.feed(&buf[..n]),
        }
        Ok(n)
    }

    pub(crate) fn read_frame(&mut self) -> Frame {
        loop {
            if let Some(f) = self.decoder.next_frame().expect("valid frame") {
                return f;
            }
            match self.fill() {
                Ok(0) => panic!("connection closed while waiting for a frame"),
                Ok(_) => {}
                Err(e) => panic!("read failed while waiting for a frame: {e}"),
            }
        }
    }

    pub(crate) fn read_answer(&mut self) -> Answer {
        match self.read_frame() {
            Frame::Answer(a) => a,
            Frame::Quest(q) => panic!("expected an answer, got quest {q:?}"),
        }
    }

    pub(crate) fn read_quest(&mut self) -> Quest {
        match self.read_frame() {
            Frame::Quest(q) => q,
            Frame::Answer(a) => panic!("expected a quest, got answer {a:?}"),
        }
    }

    /// Reads exactly `n` raw bytes, bypassing the decoder.
    pub(crate) fn read_raw(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0u8; n];
        self.stream.read_exact(&mut buf).unwrap();
        buf
    }

    /// Asserts that nothing arrives for `d`.
    pub(crate) fn expect_silence(&mut self, d: Duration) {
        self.stream.set_read_timeout(Some(d)).unwrap();
        let result = self.fill();
        self.stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        match result {
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Ok(0) => panic!("connection closed, expected silence"),
            Ok(n) => panic!("{n} bytes arrived, expected silence"),
            Err(e) => panic!("read error {e}, expected silence"),
        }
    }

    /// Asserts that the server closes the connection without sending
    /// anything (within the test timeout).
    pub(crate) fn expect_closed(&mut self) {
        let start = Instant::now();
        let mut buf = [0u8; 1024];
        match self.stream.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            Ok(n) => panic!("{n} bytes arrived, expected the connection to close"),
            Err(e) => panic!(
                "expected the connection to close, got {e} after {:?}",
                start.elapsed()
            ),
        }
    }

    /// Performs the `*key` handshake. With `combined`, the first encrypted
    /// quest (`echo {v: 7}`) goes out in the same write as `*key`, and its
    /// seq is returned (its answer follows the `*key` answer, which this
    /// reads). Otherwise returns 0.
    pub(crate) fn handshake(
        &mut self,
        server: &ServerPublicKey,
        mode: CipherMode,
        bits: KeyBits,
        combined: bool,
    ) -> u32 {
        let hs = EncryptionConfig::new(server.clone())
            .mode(mode)
            .bits(bits)
            .handshake(MAX)
            .unwrap();
        let key_seq = self.next_seq();
        let mut bytes = Vec::new();
        encode_quest(
            &mut bytes,
            Some(key_seq),
            "*key",
            &map(vec![
                ("publicKey", Value::Binary(hs.public_key.clone())),
                ("streamMode", hs.stream_mode.into()),
                ("bits", hs.bits.into()),
            ]),
        )
        .unwrap();
        self.encryptor = Some(hs.encryptor);
        self.decryptor = Some(hs.decryptor);
        let mut echo_seq = 0;
        if combined {
            echo_seq = self.next_seq();
            let mut frame = Vec::new();
            encode_quest(
                &mut frame,
                Some(echo_seq),
                "echo",
                &map(vec![("v", 7.into())]),
            )
            .unwrap();
            let enc = self.frame_bytes(&frame);
            bytes.extend_from_slice(&enc);
        }
        self.stream.write_all(&bytes).unwrap();
        let a = self.read_answer();
        assert_eq!(a.seq, key_seq);
        assert_eq!(a.into_result().unwrap(), map(vec![]));
        echo_seq
    }
}

// ---------------------------------------------------------------------------
// Signed RTM quests (shared by the families' unit tests)
// ---------------------------------------------------------------------------

/// The project of the unit tests' emulators.
pub(crate) const PID: i64 = 11000001;
/// The secret of the unit tests' emulators.
pub(crate) const SECRET: &str = "ef3617e5-e886-4a4e-9eef-7263c0320628";

static SALT: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(1);

/// The real clock in seconds.
pub(crate) fn now_s() -> i64 {
    super::server::now_ms() / 1000
}

/// The auth keys for `method` with a fresh salt, plus `params`.
pub(crate) fn signed_with(
    pid: i64,
    secret: &str,
    method: &str,
    params: Vec<(&str, Value)>,
) -> Value {
    let salt = SALT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let ts = now_s();
    let sign = super::rtm::rtm_sign(
        &pid.to_string(),
        secret,
        &salt.to_string(),
        method,
        &ts.to_string(),
    );
    let mut entries = vec![
        ("pid", Value::from(pid)),
        ("sign", Value::from(sign)),
        ("salt", Value::from(salt)),
        ("ts", Value::from(ts)),
    ];
    entries.extend(params);
    map(entries)
}

/// Calls `method` signed for [`PID`] and [`SECRET`].
pub(crate) fn call(
    c: &mut RawClient,
    method: &str,
    params: Vec<(&str, Value)>,
) -> Result<Value, crate::error::Error> {
    let p = signed_with(PID, SECRET, method, params);
    c.call(method, &p).into_result()
}

/// The server error code of a failed call.
pub(crate) fn code(r: Result<Value, crate::error::Error>) -> i64 {
    let e = r.expect_err("expected an error");
    e.server_code()
        .unwrap_or_else(|| panic!("not a server error: {e:?}"))
}

/// The server error code and message of a failed call.
pub(crate) fn err_msg(r: Result<Value, crate::error::Error>) -> (i64, String) {
    match r {
        Err(crate::error::Error::Server { code, message }) => (code, message),
        other => panic!("expected a server error, got {other:?}"),
    }
}

/// The int list at `key` of an answer.
pub(crate) fn ints(v: &Value, key: &str) -> Vec<i64> {
    crate::fpnn::codec::map_get(v, key)
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("no `{key}` in {v}"))
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

/// A msgpack array of ints.
pub(crate) fn arr(items: &[i64]) -> Value {
    Value::Array(items.iter().map(|&i| Value::from(i)).collect())
}

/// An emulator for [`PID`] and [`SECRET`] and a raw client connected to it.
pub(crate) fn setup() -> (super::RtmEmulator, RawClient) {
    let emu = super::RtmEmulator::start(PID, SECRET).unwrap();
    let c = RawClient::connect(&emu.endpoint());
    (emu, c)
}
