//! FPNN connection encryption: ECDH key exchange and AES-CFB (`docs/protocol.md`, section 2).
//!
//! Encryption is optional. It is switched on by giving the client the RTM
//! server's **public key**, an ECC key in the usual
//! `-----BEGIN PUBLIC KEY-----` PEM form (an X.509 `SubjectPublicKeyInfo`).
//! Take it from the RTM console of your project, or ask whoever operates the
//! server for the PEM file of the server's public key. Build it into your
//! application (a file shipped with it, or a constant) rather than fetching it
//! over the network at run time: a key fetched at run time does not protect
//! against a man in the middle. Load it with [`ServerPublicKey::from_pem`] or
//! [`ServerPublicKey::from_pem_file`], and wrap it in an [`EncryptionConfig`].
//!
//! # How a connection is encrypted
//!
//! For every new connection the client makes a fresh (ephemeral) key pair on
//! the server's curve and sends its public half in the `*key` handshake quest,
//! which is the first frame on the connection and travels in clear. Both sides
//! then compute the same shared secret with ECDH (the X coordinate of the
//! shared point, 32 bytes). The AES key is taken from the secret and the IV is
//! `md5(secret)`. Everything after the `*key` frame, in both directions and
//! including the server's answer to `*key`, is encrypted with AES in CFB mode
//! (128-bit feedback, no padding, so the ciphertext is as long as the
//! plaintext). Each direction has its own cipher state; both start from the
//! same key and IV.
//!
//! # Curves
//!
//! The curve is read from the key itself (the named-curve OID of the PEM), so
//! there is nothing to configure. Two curves are supported, [`Curve::Secp256k1`]
//! (what RTM servers normally use) and [`Curve::Secp256r1`] (NIST P-256).
//! secp192r1 and secp224r1 keys are refused with a clear error: the official
//! SDKs cannot use them with a real server either.
//!
//! # Key sizes
//!
//! [`KeyBits::Aes256`] (the default) uses the whole 32-byte secret as an
//! AES-256 key; [`KeyBits::Aes128`] uses its first 16 bytes as an AES-128 key.
//!
//! # Modes
//!
//! * [`CipherMode::Stream`] (the default, as in the Go SDK): each direction is
//!   one continuous CFB stream from the handshake to the end of the connection.
//!   FPNN frames are sent as usual, just encrypted.
//! * [`CipherMode::Package`] (the default of the Python and C++ SDKs): each
//!   frame is encrypted on its own, starting again from the key and IV, and is
//!   preceded by its length as a clear little-endian `u32`.
//!
//! Both are equally supported by the server; stream mode never repeats
//! keystream, so prefer it unless something requires package mode.

use std::fmt;
use std::path::Path;

use aes::{Aes128, Aes256};
use cfb_mode::cipher::KeyIvInit;
use cfb_mode::{BufDecryptor, BufEncryptor};
use k256::elliptic_curve::sec1::{FromEncodedPoint, ModulusSize, ToEncodedPoint};
use k256::elliptic_curve::zeroize::Zeroize;
use k256::elliptic_curve::{AffinePoint, CurveArithmetic, FieldBytesSize};
use k256::pkcs8::der::pem::{self, LineEnding};
use k256::pkcs8::der::Decode;
use k256::pkcs8::spki::{ObjectIdentifier, SubjectPublicKeyInfoRef};
use k256::pkcs8::EncodePublicKey;
use md5::{Digest, Md5};
use rand_core::OsRng;

use crate::error::{Error, ProtocolError, Result};

/// Size in bytes of one coordinate (and of the shared secret) on the
/// supported curves.
const COORD_LEN: usize = 32;
/// Size in bytes of a raw public key `X || Y`.
const RAW_KEY_LEN: usize = 2 * COORD_LEN;
/// Size of the fixed FPNN header, the smallest possible frame.
const FPNN_HEADER_LEN: usize = 12;
/// A package-mode receive buffer larger than this is released after use.
const KEEP_BUFFER_CAPACITY: usize = 1 << 20;

const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_SECP256K1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.10");
const OID_SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");

fn enc_err(msg: impl Into<String>) -> Error {
    Error::Encryption(msg.into())
}

// ---------------------------------------------------------------------------
// Public configuration types
// ---------------------------------------------------------------------------

/// An elliptic curve that works with RTM servers and the official SDKs.
///
/// The curve of a [`ServerPublicKey`] read from PEM or DER comes from the
/// key's named-curve OID. secp192r1 and secp224r1 are refused with
/// [`Error::Encryption`] ("unsupported curve ..."), as are all other curves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Curve {
    /// secp256k1 (OID 1.3.132.0.10), the curve RTM servers normally use.
    Secp256k1,
    /// secp256r1, also known as NIST P-256 or prime256v1
    /// (OID 1.2.840.10045.3.1.7).
    Secp256r1,
}

impl Curve {
    fn name(self) -> &'static str {
        match self {
            Curve::Secp256k1 => "secp256k1",
            Curve::Secp256r1 => "secp256r1",
        }
    }
}

impl fmt::Display for Curve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The AES key size, sent as `bits` in the `*key` handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyBits {
    /// AES-128: the key is the first 16 bytes of the shared secret.
    Aes128,
    /// AES-256 (the default): the key is the whole 32-byte shared secret.
    #[default]
    Aes256,
}

impl KeyBits {
    /// The key size in bits, 128 or 256, as sent in the `*key` quest.
    #[must_use]
    pub const fn bits(self) -> u32 {
        match self {
            KeyBits::Aes128 => 128,
            KeyBits::Aes256 => 256,
        }
    }

    #[cfg_attr(not(feature = "emulator"), allow(dead_code))]
    fn from_bits(bits: u32) -> Result<Self> {
        match bits {
            128 => Ok(KeyBits::Aes128),
            256 => Ok(KeyBits::Aes256),
            other => Err(enc_err(format!(
                "unsupported AES key size of {other} bits (expected 128 or 256)"
            ))),
        }
    }
}

/// How frames are encrypted, sent as `streamMode` in the `*key` handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CipherMode {
    /// One continuous CFB stream per direction for the whole connection (the
    /// default).
    #[default]
    Stream,
    /// Every frame encrypted on its own from a fresh cipher state, preceded by
    /// its length as a clear little-endian `u32`.
    Package,
}

/// The public key of an RTM (FPNN) server: a point on one of the supported
/// [`Curve`]s.
///
/// Usually read from the server's PEM with [`from_pem`](Self::from_pem) or
/// [`from_pem_file`](Self::from_pem_file). Its `Debug` output shows the curve
/// and the coordinates in hex (it is public information).
#[derive(Clone, PartialEq, Eq)]
pub struct ServerPublicKey {
    curve: Curve,
    /// `X || Y`, big-endian, without the `04` prefix. Always a valid point.
    xy: [u8; RAW_KEY_LEN],
}

impl fmt::Debug for ServerPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerPublicKey")
            .field("curve", &self.curve)
            .field("x", &hex::encode(&self.xy[..COORD_LEN]))
            .field("y", &hex::encode(&self.xy[COORD_LEN..]))
            .finish()
    }
}

impl ServerPublicKey {
    /// Parses a PEM `-----BEGIN PUBLIC KEY-----` block (an X.509
    /// `SubjectPublicKeyInfo`) holding an uncompressed EC point.
    ///
    /// The curve is taken from the key's OID. The parser is lenient about
    /// layout (line lengths, CRLF, indentation, text around the block, a key
    /// pasted on one line), strict about content.
    ///
    /// # Errors
    ///
    /// [`Error::Encryption`] with a message saying what is wrong: no PEM
    /// block, a private key or certificate instead of a public key, invalid
    /// base64 or DER, a non-EC key (RSA, Ed25519, ...), an unsupported curve
    /// (secp192r1 and secp224r1 are named), a compressed point, or a point not
    /// on the curve.
    pub fn from_pem(pem: &str) -> Result<Self> {
        let blocks = pem_blocks(pem)?;
        let Some((_, body)) = blocks.iter().find(|(label, _)| label == "PUBLIC KEY") else {
            let labels: Vec<&str> = blocks.iter().map(|(l, _)| l.as_str()).collect();
            return Err(enc_err(wrong_pem_label_message(&labels)));
        };
        if body.is_empty() {
            return Err(enc_err("the PEM `PUBLIC KEY` block is empty"));
        }
        // Rewrap the base64 the way RFC 7468 wants it and let the PEM decoder
        // of the RustCrypto `der` crate do the decoding.
        let mut canonical = String::with_capacity(body.len() + body.len() / 64 + 64);
        canonical.push_str("-----BEGIN PUBLIC KEY-----\n");
        for line in body.as_bytes().chunks(64) {
            // `body` is ASCII base64 only (checked by `pem_blocks`).
            canonical.push_str(std::str::from_utf8(line).unwrap_or_default());
            canonical.push('\n');
        }
        canonical.push_str("-----END PUBLIC KEY-----\n");
        let (_, der) = pem::decode_vec(canonical.as_bytes()).map_err(|e| {
            enc_err(format!(
                "the server public key PEM does not contain valid base64: {e}"
            ))
        })?;
        Self::from_der(&der)
    }

    /// Reads a PEM file and parses it with [`from_pem`](Self::from_pem).
    ///
    /// # Errors
    ///
    /// [`Error::Encryption`] when the file cannot be read or does not hold a
    /// usable public key.
    pub fn from_pem_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            enc_err(format!(
                "cannot read the server public key file {}: {e}",
                path.display()
            ))
        })?;
        Self::from_pem(&text).map_err(|e| match e {
            Error::Encryption(msg) => enc_err(format!("{}: {msg}", path.display())),
            other => other,
        })
    }

    /// Parses the DER of an X.509 `SubjectPublicKeyInfo` holding an
    /// uncompressed EC point. The curve is taken from the key's OID.
    ///
    /// # Errors
    ///
    /// [`Error::Encryption`], as for [`from_pem`](Self::from_pem).
    pub fn from_der(der: &[u8]) -> Result<Self> {
        let spki = SubjectPublicKeyInfoRef::from_der(der).map_err(|e| {
            enc_err(format!(
                "the server public key is not a valid SubjectPublicKeyInfo DER structure: {e}"
            ))
        })?;
        let alg = spki.algorithm.oid;
        if alg != OID_EC_PUBLIC_KEY {
            return Err(enc_err(format!(
                "the server public key is not an EC key (its algorithm is {}); \
                 the RTM server uses a secp256k1 or secp256r1 EC key",
                algorithm_name(alg)
            )));
        }
        let curve_oid = spki.algorithm.parameters_oid().map_err(|_| {
            enc_err(
                "the EC public key does not name its curve \
                 (missing or explicit curve parameters are not supported)",
            )
        })?;
        let curve = curve_from_oid(curve_oid)?;
        let point = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| enc_err("the EC public key's BIT STRING is malformed (unused bits)"))?;
        match point.first() {
            Some(0x04) if point.len() == 1 + RAW_KEY_LEN => Self::from_raw(curve, point),
            Some(0x02 | 0x03) => Err(compressed_point_error(curve)),
            _ => Err(enc_err(format!(
                "the {curve} public key is not an uncompressed point \
                 (expected 65 bytes starting with 04, got {} bytes)",
                point.len()
            ))),
        }
    }

    /// Builds a key from its raw point: `X || Y` (64 bytes) or `04 || X || Y`
    /// (65 bytes), big-endian.
    ///
    /// # Errors
    ///
    /// [`Error::Encryption`] for a compressed point (33 bytes starting with
    /// `02` or `03`), any other length or prefix, or a point that is not on the
    /// curve.
    pub fn from_raw(curve: Curve, bytes: &[u8]) -> Result<Self> {
        let raw = match bytes.len() {
            RAW_KEY_LEN => bytes,
            65 if bytes[0] == 0x04 => &bytes[1..],
            65 => {
                return Err(enc_err(format!(
                    "a 65-byte {curve} public key must start with 04 \
                     (uncompressed point), found {:02x}",
                    bytes[0]
                )))
            }
            33 if matches!(bytes[0], 0x02 | 0x03) => return Err(compressed_point_error(curve)),
            n => {
                return Err(enc_err(format!(
                    "a raw {curve} public key must be 64 bytes (X||Y) or 65 bytes \
                     (04||X||Y), got {n} bytes"
                )))
            }
        };
        let mut xy = [0u8; RAW_KEY_LEN];
        xy.copy_from_slice(raw);
        let valid = match curve {
            Curve::Secp256k1 => parse_point::<k256::Secp256k1>(&xy).is_some(),
            Curve::Secp256r1 => parse_point::<p256::NistP256>(&xy).is_some(),
        };
        if !valid {
            return Err(enc_err(format!(
                "the server public key is not a valid point on {curve}"
            )));
        }
        Ok(ServerPublicKey { curve, xy })
    }

    /// The curve of the key.
    #[must_use]
    pub fn curve(&self) -> Curve {
        self.curve
    }
}

/// The encryption settings of a client: the server's public key, the mode and
/// the AES key size.
///
/// [`EncryptionConfig::new`] gives stream mode with AES-256, the recommended
/// defaults. Change them with [`mode`](Self::mode) and [`bits`](Self::bits).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EncryptionConfig {
    /// The server's public key; it also decides the curve.
    pub server_key: ServerPublicKey,
    /// Stream or package mode ([`CipherMode::Stream`] by default).
    pub mode: CipherMode,
    /// The AES key size ([`KeyBits::Aes256`] by default).
    pub bits: KeyBits,
}

impl EncryptionConfig {
    /// Encryption with `server_key`, in stream mode with AES-256.
    #[must_use]
    pub fn new(server_key: ServerPublicKey) -> Self {
        EncryptionConfig {
            server_key,
            mode: CipherMode::default(),
            bits: KeyBits::default(),
        }
    }

    /// Sets the cipher mode.
    #[must_use]
    pub fn mode(mut self, mode: CipherMode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets the AES key size.
    #[must_use]
    pub fn bits(mut self, bits: KeyBits) -> Self {
        self.bits = bits;
        self
    }

    /// Prepares the handshake of one new connection, with a fresh random
    /// ephemeral key (from the operating system's RNG).
    ///
    /// `max_frame` is the largest package-mode length accepted from the
    /// server.
    pub(crate) fn handshake(&self, max_frame: usize) -> Result<ClientHandshake> {
        let secret = EcSecret::random(self.server_key.curve);
        self.handshake_with(&secret, max_frame)
    }

    /// [`handshake`](Self::handshake) with a fixed client private key (a
    /// 32-byte big-endian scalar), for known-answer tests.
    #[cfg(test)]
    pub(crate) fn handshake_with_secret_key(
        &self,
        client_private: &[u8; 32],
        max_frame: usize,
    ) -> Result<ClientHandshake> {
        let secret = EcSecret::from_bytes(self.server_key.curve, client_private)?;
        self.handshake_with(&secret, max_frame)
    }

    fn handshake_with(&self, secret: &EcSecret, max_frame: usize) -> Result<ClientHandshake> {
        let shared = secret.diffie_hellman(&self.server_key.xy)?;
        let keys = SessionKeys::derive(&shared, self.bits);
        let stream_mode = self.mode == CipherMode::Stream;
        log::debug!(
            "encryption handshake prepared: curve {}, {:?} mode, AES-{}",
            self.server_key.curve,
            self.mode,
            self.bits.bits()
        );
        Ok(ClientHandshake {
            public_key: secret.public_xy().to_vec(),
            stream_mode,
            bits: self.bits.bits(),
            encryptor: Encryptor::new(&keys, stream_mode),
            decryptor: Decryptor::new(&keys, stream_mode, max_frame),
        })
    }
}

/// The client side of one connection's key exchange: what to send in `*key`,
/// and the cipher pair to use once it is sent.
pub(crate) struct ClientHandshake {
    /// The client's ephemeral public key, `X || Y` (64 bytes, no `04`
    /// prefix); sent as msgpack `bin` in `publicKey`.
    pub public_key: Vec<u8>,
    /// Sent as `streamMode`.
    pub stream_mode: bool,
    /// Sent as `bits`: 128 or 256.
    pub bits: u32,
    /// Encrypts everything the client sends after the `*key` frame.
    pub encryptor: Encryptor,
    /// Decrypts everything the client receives (starting with the answer to
    /// `*key`).
    pub decryptor: Decryptor,
}

impl fmt::Debug for ClientHandshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientHandshake")
            .field("public_key", &hex::encode(&self.public_key))
            .field("stream_mode", &self.stream_mode)
            .field("bits", &self.bits)
            .finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------------------
// Server side (for the in-process emulator and tests)
// ---------------------------------------------------------------------------

/// The private key of a server, used by the in-process emulator to accept
/// encrypted connections.
///
/// Its `Debug` output shows only the curve, never the key. Public with the
/// `emulator` feature only.
#[cfg(feature = "emulator")]
pub struct ServerPrivateKey {
    secret: EcSecret,
}

/// The private key of a server (crate-internal without the `emulator`
/// feature: the crate's own tests use it).
#[cfg(not(feature = "emulator"))]
#[allow(dead_code)]
pub(crate) struct ServerPrivateKey {
    secret: EcSecret,
}

impl fmt::Debug for ServerPrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerPrivateKey")
            .field("curve", &self.secret.curve())
            .finish_non_exhaustive()
    }
}

#[cfg_attr(not(feature = "emulator"), allow(dead_code))]
impl ServerPrivateKey {
    /// A new random private key on `curve`.
    #[must_use]
    pub fn generate(curve: Curve) -> Self {
        ServerPrivateKey {
            secret: EcSecret::random(curve),
        }
    }

    /// A private key from its 32-byte big-endian scalar.
    ///
    /// # Errors
    ///
    /// [`Error::Encryption`] when `d` is not 32 bytes, is zero, or is not
    /// below the curve order.
    pub fn from_bytes(curve: Curve, d: &[u8]) -> Result<Self> {
        Ok(ServerPrivateKey {
            secret: EcSecret::from_bytes(curve, d)?,
        })
    }

    /// The matching public key, as a client would configure it.
    #[must_use]
    pub fn public_key(&self) -> ServerPublicKey {
        ServerPublicKey {
            curve: self.secret.curve(),
            xy: self.secret.public_xy(),
        }
    }

    /// The matching public key as a `-----BEGIN PUBLIC KEY-----` PEM
    /// (`SubjectPublicKeyInfo`, uncompressed point, LF line endings), which
    /// [`ServerPublicKey::from_pem`] reads back.
    #[must_use]
    pub fn public_key_pem(&self) -> String {
        let pem = match &self.secret {
            EcSecret::K256(sk) => sk.public_key().to_public_key_pem(LineEnding::LF),
            EcSecret::P256(sk) => sk.public_key().to_public_key_pem(LineEnding::LF),
        };
        pem.expect("encoding a valid EC public key as PEM cannot fail")
    }

    /// Accepts a client's `*key` quest: derives the server's cipher pair from
    /// the client's `publicKey` (`X || Y`, exactly 64 bytes), `streamMode` and
    /// `bits`. `max_frame` is the largest package-mode length accepted from
    /// the client.
    ///
    /// # Errors
    ///
    /// [`Error::Encryption`] when the client key is not 64 bytes or not a
    /// point on the curve, or `bits` is neither 128 nor 256.
    #[cfg_attr(not(feature = "emulator"), allow(dead_code))]
    pub(crate) fn accept(
        &self,
        client_public_key: &[u8],
        stream_mode: bool,
        bits: u32,
        max_frame: usize,
    ) -> Result<(Encryptor, Decryptor)> {
        let bits = KeyBits::from_bits(bits)?;
        let curve = self.secret.curve();
        let xy: &[u8; RAW_KEY_LEN] = client_public_key.try_into().map_err(|_| {
            enc_err(format!(
                "the client public key must be {RAW_KEY_LEN} bytes (X||Y on {curve}), got {} bytes",
                client_public_key.len()
            ))
        })?;
        let shared = self.secret.diffie_hellman(xy)?;
        let keys = SessionKeys::derive(&shared, bits);
        Ok((
            Encryptor::new(&keys, stream_mode),
            Decryptor::new(&keys, stream_mode, max_frame),
        ))
    }
}

// ---------------------------------------------------------------------------
// Encryptor / Decryptor
// ---------------------------------------------------------------------------

/// The send side of an encrypted connection.
pub(crate) struct Encryptor {
    bits: KeyBits,
    kind: EncKind,
}

enum EncKind {
    /// The one continuing CFB state of this direction.
    Stream(CfbEnc),
    /// The pristine state (key and IV, position 0), cloned for each frame.
    Package(CfbEnc),
}

impl fmt::Debug for Encryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.kind {
            EncKind::Stream(_) => CipherMode::Stream,
            EncKind::Package(_) => CipherMode::Package,
        };
        f.debug_struct("Encryptor")
            .field("mode", &mode)
            .field("bits", &self.bits.bits())
            .finish_non_exhaustive()
    }
}

impl Encryptor {
    fn new(keys: &SessionKeys, stream_mode: bool) -> Self {
        let state = CfbEnc::new(keys);
        Encryptor {
            bits: keys.bits(),
            kind: if stream_mode {
                EncKind::Stream(state)
            } else {
                EncKind::Package(state)
            },
        }
    }

    /// Appends to `out` the wire bytes of one complete plaintext FPNN frame.
    ///
    /// Stream mode: the frame encrypted, continuing this direction's stream.
    /// Package mode: the frame length as a little-endian `u32`, then the frame
    /// encrypted from a fresh state.
    ///
    /// # Panics
    ///
    /// In package mode, if `frame` is longer than `u32::MAX` bytes (callers
    /// enforce a far smaller send limit first).
    pub fn encrypt_frame(&mut self, frame: &[u8], out: &mut Vec<u8>) {
        match &mut self.kind {
            EncKind::Stream(state) => {
                let start = out.len();
                out.extend_from_slice(frame);
                state.apply(&mut out[start..]);
            }
            EncKind::Package(initial) => {
                let len = u32::try_from(frame.len())
                    .expect("an FPNN frame longer than u32::MAX bytes cannot be sent");
                out.reserve(4 + frame.len());
                out.extend_from_slice(&len.to_le_bytes());
                let start = out.len();
                out.extend_from_slice(frame);
                initial.clone().apply(&mut out[start..]);
            }
        }
    }
}

/// The receive side of an encrypted connection.
pub(crate) struct Decryptor {
    bits: KeyBits,
    kind: DecKind,
    /// Set after an error; the connection must be dropped.
    failed: bool,
}

enum DecKind {
    Stream(CfbDec),
    Package(PackageReceiver),
}

/// Reassembles length-prefixed packages from arbitrary chunks.
struct PackageReceiver {
    /// The pristine state (key and IV, position 0), cloned for each package.
    initial: CfbDec,
    max_frame: usize,
    /// The length prefix being read.
    len_buf: [u8; 4],
    len_have: usize,
    /// The announced length of the package being buffered, once known.
    want: Option<usize>,
    /// The ciphertext of the package being buffered.
    body: Vec<u8>,
}

impl fmt::Debug for Decryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.kind {
            DecKind::Stream(_) => CipherMode::Stream,
            DecKind::Package(_) => CipherMode::Package,
        };
        f.debug_struct("Decryptor")
            .field("mode", &mode)
            .field("bits", &self.bits.bits())
            .finish_non_exhaustive()
    }
}

impl Decryptor {
    fn new(keys: &SessionKeys, stream_mode: bool, max_frame: usize) -> Self {
        let state = CfbDec::new(keys);
        Decryptor {
            bits: keys.bits(),
            kind: if stream_mode {
                DecKind::Stream(state)
            } else {
                DecKind::Package(PackageReceiver {
                    initial: state,
                    max_frame,
                    len_buf: [0; 4],
                    len_have: 0,
                    want: None,
                    body: Vec::new(),
                })
            },
            failed: false,
        }
    }

    /// Turns raw received bytes, chunked in any way, into plaintext FPNN
    /// stream bytes appended to `out`.
    ///
    /// Stream mode decrypts everything in order. Package mode strips the
    /// length prefixes and appends each package's plaintext frame once the
    /// whole package has arrived.
    ///
    /// # Errors
    ///
    /// Package mode only: [`ProtocolError::FrameTooLarge`] for a length above
    /// `max_frame` (checked before anything is buffered), and
    /// [`ProtocolError::Other`] for a length below the 12-byte FPNN header.
    /// After an error the decryptor refuses further input.
    pub fn decrypt(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<()> {
        if self.failed {
            return Err(ProtocolError::Other(
                "the encrypted stream is unusable after an earlier error".into(),
            )
            .into());
        }
        match &mut self.kind {
            DecKind::Stream(state) => {
                let start = out.len();
                out.extend_from_slice(input);
                state.apply(&mut out[start..]);
                Ok(())
            }
            DecKind::Package(rx) => {
                let result = rx.feed(input, out);
                if result.is_err() {
                    self.failed = true;
                    rx.body = Vec::new();
                }
                result
            }
        }
    }
}

impl PackageReceiver {
    fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<()> {
        while !input.is_empty() {
            match self.want {
                None => {
                    let n = (4 - self.len_have).min(input.len());
                    self.len_buf[self.len_have..self.len_have + n].copy_from_slice(&input[..n]);
                    self.len_have += n;
                    input = &input[n..];
                    if self.len_have < 4 {
                        break;
                    }
                    self.len_have = 0;
                    let len = u32::from_le_bytes(self.len_buf);
                    if u64::from(len) > self.max_frame as u64 {
                        return Err(ProtocolError::FrameTooLarge {
                            size: u64::from(len),
                            max: self.max_frame as u64,
                        }
                        .into());
                    }
                    let len = len as usize;
                    if len < FPNN_HEADER_LEN {
                        return Err(ProtocolError::Other(format!(
                            "encrypted package shorter than a header: its length is {len} bytes, \
                             a frame has at least {FPNN_HEADER_LEN}"
                        ))
                        .into());
                    }
                    if input.len() >= len {
                        // The whole package is here: decrypt it in place.
                        self.emit(&input[..len], out);
                        input = &input[len..];
                    } else {
                        self.want = Some(len);
                    }
                }
                Some(len) => {
                    let n = (len - self.body.len()).min(input.len());
                    self.body.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    if self.body.len() == len {
                        let body = std::mem::take(&mut self.body);
                        self.emit(&body, out);
                        self.want = None;
                        if body.capacity() <= KEEP_BUFFER_CAPACITY {
                            self.body = body;
                            self.body.clear();
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn emit(&self, ciphertext: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(ciphertext);
        self.initial.clone().apply(&mut out[start..]);
    }
}

// ---------------------------------------------------------------------------
// Key derivation and cipher states
// ---------------------------------------------------------------------------

/// The AES key and IV of one connection (`docs/protocol.md`, section 2).
struct SessionKeys {
    key: AesKey,
    iv: [u8; 16],
}

enum AesKey {
    Aes128([u8; 16]),
    Aes256([u8; 32]),
}

impl SessionKeys {
    /// key = secret[..16] (128) or secret (256); iv = md5(secret).
    fn derive(secret: &[u8; COORD_LEN], bits: KeyBits) -> Self {
        let iv: [u8; 16] = Md5::digest(secret).into();
        let key = match bits {
            KeyBits::Aes128 => {
                let mut k = [0u8; 16];
                k.copy_from_slice(&secret[..16]);
                AesKey::Aes128(k)
            }
            KeyBits::Aes256 => AesKey::Aes256(*secret),
        };
        SessionKeys { key, iv }
    }

    fn bits(&self) -> KeyBits {
        match self.key {
            AesKey::Aes128(_) => KeyBits::Aes128,
            AesKey::Aes256(_) => KeyBits::Aes256,
        }
    }
}

impl Drop for SessionKeys {
    fn drop(&mut self) {
        match &mut self.key {
            AesKey::Aes128(k) => k.zeroize(),
            AesKey::Aes256(k) => k.zeroize(),
        }
        self.iv.zeroize();
    }
}

// One of these per direction and connection: the size difference between
// the AES-128 and AES-256 key schedules does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
enum CfbEnc {
    Aes128(BufEncryptor<Aes128>),
    Aes256(BufEncryptor<Aes256>),
}

impl CfbEnc {
    fn new(keys: &SessionKeys) -> Self {
        let iv = keys.iv.into();
        match &keys.key {
            AesKey::Aes128(k) => CfbEnc::Aes128(BufEncryptor::new(&(*k).into(), &iv)),
            AesKey::Aes256(k) => CfbEnc::Aes256(BufEncryptor::new(&(*k).into(), &iv)),
        }
    }

    fn apply(&mut self, data: &mut [u8]) {
        match self {
            CfbEnc::Aes128(c) => c.encrypt(data),
            CfbEnc::Aes256(c) => c.encrypt(data),
        }
    }
}

// One of these per direction and connection: the size difference between
// the AES-128 and AES-256 key schedules does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
enum CfbDec {
    Aes128(BufDecryptor<Aes128>),
    Aes256(BufDecryptor<Aes256>),
}

impl CfbDec {
    fn new(keys: &SessionKeys) -> Self {
        let iv = keys.iv.into();
        match &keys.key {
            AesKey::Aes128(k) => CfbDec::Aes128(BufDecryptor::new(&(*k).into(), &iv)),
            AesKey::Aes256(k) => CfbDec::Aes256(BufDecryptor::new(&(*k).into(), &iv)),
        }
    }

    fn apply(&mut self, data: &mut [u8]) {
        match self {
            CfbDec::Aes128(c) => c.decrypt(data),
            CfbDec::Aes256(c) => c.decrypt(data),
        }
    }
}

// ---------------------------------------------------------------------------
// Elliptic-curve helpers
// ---------------------------------------------------------------------------

/// A private scalar on one of the supported curves (zeroized on drop by the
/// RustCrypto types).
enum EcSecret {
    K256(k256::SecretKey),
    P256(p256::SecretKey),
}

impl EcSecret {
    fn random(curve: Curve) -> Self {
        match curve {
            Curve::Secp256k1 => EcSecret::K256(k256::SecretKey::random(&mut OsRng)),
            Curve::Secp256r1 => EcSecret::P256(p256::SecretKey::random(&mut OsRng)),
        }
    }

    fn from_bytes(curve: Curve, d: &[u8]) -> Result<Self> {
        if d.len() != COORD_LEN {
            return Err(enc_err(format!(
                "a {curve} private key must be {COORD_LEN} bytes, got {} bytes",
                d.len()
            )));
        }
        let invalid = |_| {
            enc_err(format!(
                "invalid {curve} private key (zero or not below the curve order)"
            ))
        };
        Ok(match curve {
            Curve::Secp256k1 => EcSecret::K256(k256::SecretKey::from_slice(d).map_err(invalid)?),
            Curve::Secp256r1 => EcSecret::P256(p256::SecretKey::from_slice(d).map_err(invalid)?),
        })
    }

    fn curve(&self) -> Curve {
        match self {
            EcSecret::K256(_) => Curve::Secp256k1,
            EcSecret::P256(_) => Curve::Secp256r1,
        }
    }

    /// The public key as `X || Y`.
    fn public_xy(&self) -> [u8; RAW_KEY_LEN] {
        match self {
            EcSecret::K256(sk) => point_xy(&sk.public_key()),
            EcSecret::P256(sk) => point_xy(&sk.public_key()),
        }
    }

    /// The X coordinate of `self * peer` (the FPNN shared secret).
    fn diffie_hellman(&self, peer_xy: &[u8; RAW_KEY_LEN]) -> Result<[u8; COORD_LEN]> {
        match self {
            EcSecret::K256(sk) => ecdh::<k256::Secp256k1>(sk, peer_xy),
            EcSecret::P256(sk) => ecdh::<p256::NistP256>(sk, peer_xy),
        }
        .ok_or_else(|| {
            enc_err(format!(
                "the peer's public key is not a valid point on {}",
                self.curve()
            ))
        })
    }
}

fn parse_point<C>(xy: &[u8; RAW_KEY_LEN]) -> Option<k256::elliptic_curve::PublicKey<C>>
where
    C: CurveArithmetic,
    AffinePoint<C>: FromEncodedPoint<C> + ToEncodedPoint<C>,
    FieldBytesSize<C>: ModulusSize,
{
    let mut sec1 = [0u8; 1 + RAW_KEY_LEN];
    sec1[0] = 0x04;
    sec1[1..].copy_from_slice(xy);
    k256::elliptic_curve::PublicKey::<C>::from_sec1_bytes(&sec1).ok()
}

fn point_xy<C>(pk: &k256::elliptic_curve::PublicKey<C>) -> [u8; RAW_KEY_LEN]
where
    C: CurveArithmetic,
    AffinePoint<C>: FromEncodedPoint<C> + ToEncodedPoint<C>,
    FieldBytesSize<C>: ModulusSize,
{
    let encoded = pk.to_encoded_point(false);
    let mut xy = [0u8; RAW_KEY_LEN];
    // An uncompressed SEC1 point on a 256-bit curve is 04 || X(32) || Y(32).
    xy.copy_from_slice(&encoded.as_bytes()[1..]);
    xy
}

fn ecdh<C>(
    secret: &k256::elliptic_curve::SecretKey<C>,
    peer_xy: &[u8; RAW_KEY_LEN],
) -> Option<[u8; COORD_LEN]>
where
    C: CurveArithmetic,
    AffinePoint<C>: FromEncodedPoint<C> + ToEncodedPoint<C>,
    FieldBytesSize<C>: ModulusSize,
{
    let peer = parse_point::<C>(peer_xy)?;
    let shared =
        k256::elliptic_curve::ecdh::diffie_hellman(secret.to_nonzero_scalar(), peer.as_affine());
    let x = shared.raw_secret_bytes();
    let mut out = [0u8; COORD_LEN];
    out.copy_from_slice(x.as_slice());
    Some(out)
}

// ---------------------------------------------------------------------------
// PEM and OID helpers
// ---------------------------------------------------------------------------

/// Finds every `-----BEGIN X----- ... -----END X-----` block, returning the
/// label and the base64 body with all whitespace (and literal `\n`, `\r`
/// escapes, as left by some configuration files) removed.
fn pem_blocks(text: &str) -> Result<Vec<(String, String)>> {
    const BEGIN: &str = "-----BEGIN ";
    const DASHES: &str = "-----";
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(pos) = rest.find(BEGIN) {
        let after = &rest[pos + BEGIN.len()..];
        let label_end = after
            .find(DASHES)
            .ok_or_else(|| enc_err("malformed PEM: unterminated BEGIN line"))?;
        let label = after[..label_end].trim().to_string();
        let body_start = &after[label_end + DASHES.len()..];
        let end_marker = format!("-----END {label}-----");
        let body_end = body_start.find(&end_marker).ok_or_else(|| {
            enc_err(format!(
                "malformed PEM: the `{label}` block has no `{end_marker}` line"
            ))
        })?;
        let body: String = body_start[..body_end]
            .replace("\\n", "")
            .replace("\\r", "")
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        if !body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        {
            return Err(enc_err(format!(
                "malformed PEM: the `{label}` block contains characters that are not base64"
            )));
        }
        blocks.push((label, body));
        rest = &body_start[body_end + end_marker.len()..];
    }
    if blocks.is_empty() {
        return Err(enc_err(
            "no PEM block found: expected the server public key as \
             `-----BEGIN PUBLIC KEY-----` ... `-----END PUBLIC KEY-----`",
        ));
    }
    Ok(blocks)
}

fn wrong_pem_label_message(labels: &[&str]) -> String {
    let what = if labels.iter().any(|l| l.contains("PRIVATE KEY")) {
        "a private key; the client needs the server's public key"
    } else if labels.contains(&"RSA PUBLIC KEY") {
        "an RSA key; the RTM server uses an EC (secp256k1 or secp256r1) key"
    } else if labels.contains(&"CERTIFICATE") {
        "a certificate; the client needs the server's bare public key"
    } else {
        "not a public key"
    };
    format!(
        "the PEM holds {} ({what}): expected `-----BEGIN PUBLIC KEY-----`",
        labels
            .iter()
            .map(|l| format!("`{l}`"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn algorithm_name(oid: ObjectIdentifier) -> String {
    let name = match oid.to_string().as_str() {
        "1.2.840.113549.1.1.1" => "RSA",
        "1.2.840.113549.1.1.10" => "RSA-PSS",
        "1.2.840.10040.4.1" => "DSA",
        "1.3.101.110" => "X25519",
        "1.3.101.111" => "X448",
        "1.3.101.112" => "Ed25519",
        "1.3.101.113" => "Ed448",
        _ => return format!("OID {oid}"),
    };
    format!("{name}, OID {oid}")
}

fn curve_from_oid(oid: ObjectIdentifier) -> Result<Curve> {
    if oid == OID_SECP256K1 {
        return Ok(Curve::Secp256k1);
    }
    if oid == OID_SECP256R1 {
        return Ok(Curve::Secp256r1);
    }
    let name = match oid.to_string().as_str() {
        "1.3.132.0.33" => "secp224r1",
        "1.2.840.10045.3.1.1" => "secp192r1",
        "1.3.132.0.34" => "secp384r1",
        "1.3.132.0.35" => "secp521r1",
        _ => "",
    };
    let what = if name.is_empty() {
        format!("OID {oid}")
    } else {
        format!("{name} (OID {oid})")
    };
    Err(enc_err(format!(
        "unsupported curve {what}: only secp256k1 and secp256r1 are supported \
         (secp192r1 and secp224r1 do not interoperate with the RTM SDKs)"
    )))
}

fn compressed_point_error(curve: Curve) -> Error {
    enc_err(format!(
        "the {curve} public key is a compressed point; FPNN needs the uncompressed \
         form (04||X||Y), e.g. `openssl ec -pubin -in key.pem -conv_form uncompressed -pubout`"
    ))
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    const D_S: &str = "9b9b12b818c0af66ba0701bf0710f68888ae97a9ddcf6a4ca5193cd6b71c8fbf";
    const D_C: &str = "02fe89f9413a37c6b607273254141c52ea2bd176f23582d2840989d668c410c4";
    const SERVER_PEM: &str = "-----BEGIN PUBLIC KEY-----
MFYwEAYHKoZIzj0CAQYFK4EEAAoDQgAEFsHnkYnypDwOcQdTWDHAJFCeaH9BeiHi
S4a1d/N8uEu9dove1EqPwZo56J0dI8Hc1d48tuFoUHcMMRzM0fkG4A==
-----END PUBLIC KEY-----
";
    const X: &str = "16c1e79189f2a43c0e7107535831c024509e687f417a21e24b86b577f37cb84b";
    const Y: &str = "bd768bded44a8fc19a39e89d1d23c1dcd5de3cb6e16850770c311cccd1f906e0";
    const CLIENT_PUB: &str = "27b51187e0bc1082012c849fef838c998d876edf6d8112762b55325793270f13\
                              8ec4b93b984b288e6fa148e5493c7661cb54a79ca9c0fa44748e42e8813dd59e";
    const SECRET: &str = "6621db6cf9a5a94de66f29735fab0c4a32df8531858d1a3cfcd924eed3a76422";
    const KEY128: &str = "6621db6cf9a5a94de66f29735fab0c4a";
    const IV: &str = "17744966b56ace977123570888d12ea9";
    const PING2: &str = "46504e4e0180010501000000020000002a70696e6780";
    const PING3: &str = "46504e4e0180010501000000030000002a70696e6780";
    const STREAM128_1: &str = "553ea04475b64f85a04d572dc992f46a4c9cea4c3d6a";
    const STREAM128_2: &str = "282f3f273db5fcef6bca0716c4a5719e9081b682bf1b";
    const STREAM256_1: &str = "ee735973650489a07826824f2c15a699d37adc007e04";
    const PACKAGE128_2: &str = "16000000553ea04475b64f85a04d572dc992f46a4c9cea4c3d6a";
    const PACKAGE128_3: &str = "16000000553ea04475b64f85a04d572dc892f46a2e9cd08616ea";
    const ANSWER: &str = "46504e4e01800200010000000100000080";
    const ANSWER_STREAM128: &str = "553ea04475b64c80a04d572dca92f46a1f";
    const ANSWER_PACKAGE128: &str = "11000000553ea04475b64c80a04d572dca92f46a1f";
    const MAX: usize = 200 << 20;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    fn d_c() -> [u8; 32] {
        h(D_C).try_into().unwrap()
    }

    fn server_key() -> ServerPublicKey {
        ServerPublicKey::from_pem(SERVER_PEM).unwrap()
    }

    fn encrypt(enc: &mut Encryptor, frame: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        enc.encrypt_frame(frame, &mut out);
        out
    }

    fn decrypt(dec: &mut Decryptor, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        dec.decrypt(input, &mut out).unwrap();
        out
    }

    fn encryption_message(r: Result<impl fmt::Debug>) -> String {
        match r {
            Err(Error::Encryption(msg)) => msg,
            other => panic!("expected Error::Encryption, got {other:?}"),
        }
    }

    /// xorshift64*: a small deterministic PRNG for the chunking tests.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next() as u8).collect()
        }
    }

    // --- known answers (the worked example of the FPNN security notes) ---

    #[test]
    fn kat_server_pem() {
        let key = server_key();
        assert_eq!(key.curve(), Curve::Secp256k1);
        assert_eq!(hex::encode(&key.xy[..32]), X);
        assert_eq!(hex::encode(&key.xy[32..]), Y);
        let dbg = format!("{key:?}");
        assert!(dbg.contains("Secp256k1") && dbg.contains(X), "{dbg}");

        let server = ServerPrivateKey::from_bytes(Curve::Secp256k1, &h(D_S)).unwrap();
        assert_eq!(server.public_key(), key);
        assert_eq!(server.public_key_pem(), SERVER_PEM);
    }

    #[test]
    fn kat_derivation() {
        let client = EcSecret::from_bytes(Curve::Secp256k1, &h(D_C)).unwrap();
        assert_eq!(hex::encode(client.public_xy()), CLIENT_PUB);
        let secret = client.diffie_hellman(&server_key().xy).unwrap();
        assert_eq!(hex::encode(secret), SECRET);

        let server = EcSecret::from_bytes(Curve::Secp256k1, &h(D_S)).unwrap();
        let client_xy: [u8; 64] = h(CLIENT_PUB).try_into().unwrap();
        assert_eq!(
            hex::encode(server.diffie_hellman(&client_xy).unwrap()),
            SECRET
        );

        let keys = SessionKeys::derive(&secret, KeyBits::Aes128);
        assert!(matches!(&keys.key, AesKey::Aes128(k) if hex::encode(k) == KEY128));
        assert_eq!(hex::encode(keys.iv), IV);
        let keys = SessionKeys::derive(&secret, KeyBits::Aes256);
        assert!(matches!(&keys.key, AesKey::Aes256(k) if hex::encode(k) == SECRET));
        assert_eq!(hex::encode(keys.iv), IV);
    }

    #[test]
    fn kat_client_stream_aes128() {
        let cfg = EncryptionConfig::new(server_key()).bits(KeyBits::Aes128);
        let mut hs = cfg.handshake_with_secret_key(&d_c(), MAX).unwrap();
        assert_eq!(hex::encode(&hs.public_key), CLIENT_PUB);
        assert!(hs.stream_mode);
        assert_eq!(hs.bits, 128);
        assert_eq!(
            hex::encode(encrypt(&mut hs.encryptor, &h(PING2))),
            STREAM128_1
        );
        assert_eq!(
            hex::encode(encrypt(&mut hs.encryptor, &h(PING3))),
            STREAM128_2
        );
        // The client's receive side is an independent stream starting at 0.
        assert_eq!(decrypt(&mut hs.decryptor, &h(ANSWER_STREAM128)), h(ANSWER));
    }

    #[test]
    fn kat_client_stream_aes256() {
        let cfg = EncryptionConfig::new(server_key());
        assert_eq!((cfg.mode, cfg.bits), (CipherMode::Stream, KeyBits::Aes256));
        let mut hs = cfg.handshake_with_secret_key(&d_c(), MAX).unwrap();
        assert_eq!(hs.bits, 256);
        assert!(hs.stream_mode);
        assert_eq!(
            hex::encode(encrypt(&mut hs.encryptor, &h(PING2))),
            STREAM256_1
        );
    }

    #[test]
    fn kat_client_package_aes128() {
        let cfg = EncryptionConfig::new(server_key())
            .mode(CipherMode::Package)
            .bits(KeyBits::Aes128);
        let mut hs = cfg.handshake_with_secret_key(&d_c(), MAX).unwrap();
        assert!(!hs.stream_mode);
        assert_eq!(hs.bits, 128);
        assert_eq!(
            hex::encode(encrypt(&mut hs.encryptor, &h(PING2))),
            PACKAGE128_2
        );
        assert_eq!(
            hex::encode(encrypt(&mut hs.encryptor, &h(PING3))),
            PACKAGE128_3
        );
        assert_eq!(decrypt(&mut hs.decryptor, &h(ANSWER_PACKAGE128)), h(ANSWER));
    }

    #[test]
    fn kat_server_side() {
        let server = ServerPrivateKey::from_bytes(Curve::Secp256k1, &h(D_S)).unwrap();

        let (mut enc, mut dec) = server.accept(&h(CLIENT_PUB), true, 128, MAX).unwrap();
        assert_eq!(hex::encode(encrypt(&mut enc, &h(ANSWER))), ANSWER_STREAM128);
        let mut wire = h(STREAM128_1);
        wire.extend(h(STREAM128_2));
        let mut plain = h(PING2);
        plain.extend(h(PING3));
        assert_eq!(decrypt(&mut dec, &wire), plain);

        let (mut enc, mut dec) = server.accept(&h(CLIENT_PUB), false, 128, MAX).unwrap();
        assert_eq!(
            hex::encode(encrypt(&mut enc, &h(ANSWER))),
            ANSWER_PACKAGE128
        );
        let mut wire = h(PACKAGE128_2);
        wire.extend(h(PACKAGE128_3));
        assert_eq!(decrypt(&mut dec, &wire), plain);

        let (_, mut dec) = server.accept(&h(CLIENT_PUB), true, 256, MAX).unwrap();
        assert_eq!(decrypt(&mut dec, &h(STREAM256_1)), h(PING2));

        // A client decryptor reads what this server sends.
        for (mode, expected) in [
            (CipherMode::Stream, ANSWER_STREAM128),
            (CipherMode::Package, ANSWER_PACKAGE128),
        ] {
            let (mut enc, _) = server
                .accept(&h(CLIENT_PUB), mode == CipherMode::Stream, 128, MAX)
                .unwrap();
            let wire = encrypt(&mut enc, &h(ANSWER));
            assert_eq!(hex::encode(&wire), expected);
            let cfg = EncryptionConfig::new(server.public_key())
                .mode(mode)
                .bits(KeyBits::Aes128);
            let mut hs = cfg.handshake_with_secret_key(&d_c(), MAX).unwrap();
            assert_eq!(decrypt(&mut hs.decryptor, &wire), h(ANSWER));
        }
    }

    // --- round trips ---

    fn round_trip(curve: Curve, mode: CipherMode, bits: KeyBits, seed: u64) {
        let mut rng = Rng(seed);
        let server = ServerPrivateKey::generate(curve);
        let cfg = EncryptionConfig::new(server.public_key())
            .mode(mode)
            .bits(bits);
        let hs = cfg.handshake(MAX).unwrap();
        assert_eq!(hs.public_key.len(), 64);
        assert_eq!(hs.stream_mode, mode == CipherMode::Stream);
        assert_eq!(hs.bits, bits.bits());
        let (s_enc, s_dec) = server
            .accept(&hs.public_key, hs.stream_mode, hs.bits, MAX)
            .unwrap();
        let pairs = [(hs.encryptor, s_dec), (s_enc, hs.decryptor)];
        for (mut enc, mut dec) in pairs {
            let mut plain = Vec::new();
            let mut wire = Vec::new();
            for i in 0..60 {
                let len = if i % 20 == 7 {
                    5000 + rng.below(3000)
                } else {
                    12 + rng.below(300)
                };
                let frame = rng.bytes(len);
                let before = wire.len();
                enc.encrypt_frame(&frame, &mut wire);
                let body_start = if mode == CipherMode::Package {
                    before + 4
                } else {
                    before
                };
                assert_eq!(wire.len() - body_start, frame.len());
                assert_ne!(&wire[body_start..], &frame[..]);
                plain.extend_from_slice(&frame);
            }
            let mut out = Vec::new();
            let mut rest = &wire[..];
            while !rest.is_empty() {
                let n = match rng.below(4) {
                    0 => 1,
                    1 => 1 + rng.below(8),
                    2 => 1 + rng.below(200),
                    _ => 1 + rng.below(10000),
                }
                .min(rest.len());
                dec.decrypt(&rest[..n], &mut out).unwrap();
                rest = &rest[n..];
            }
            assert_eq!(out, plain, "{curve:?} {mode:?} {bits:?}");
        }
    }

    #[test]
    fn round_trips_all_combinations() {
        let mut seed = 0x9E37_79B9_7F4A_7C15;
        for curve in [Curve::Secp256k1, Curve::Secp256r1] {
            for mode in [CipherMode::Stream, CipherMode::Package] {
                for bits in [KeyBits::Aes128, KeyBits::Aes256] {
                    round_trip(curve, mode, bits, seed);
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                }
            }
        }
    }

    #[test]
    fn handshakes_use_fresh_keys_and_stream_never_repeats() {
        let cfg = EncryptionConfig::new(server_key());
        let mut a = cfg.handshake(MAX).unwrap();
        let b = cfg.handshake(MAX).unwrap();
        assert_ne!(a.public_key, b.public_key);
        let frame = h(PING2);
        assert_ne!(
            encrypt(&mut a.encryptor, &frame),
            encrypt(&mut a.encryptor, &frame)
        );
    }

    #[test]
    fn package_length_split_inside_prefix() {
        let server = ServerPrivateKey::from_bytes(Curve::Secp256k1, &h(D_S)).unwrap();
        let (_, mut dec) = server.accept(&h(CLIENT_PUB), false, 128, MAX).unwrap();
        let mut wire = h(PACKAGE128_2);
        wire.extend(h(PACKAGE128_3));
        let mut out = Vec::new();
        for b in &wire {
            dec.decrypt(std::slice::from_ref(b), &mut out).unwrap();
            // Nothing is emitted before a package is complete.
            assert!(out.is_empty() || out.len() == 22 || out.len() == 44);
        }
        let mut plain = h(PING2);
        plain.extend(h(PING3));
        assert_eq!(out, plain);
    }

    // --- PEM generation ---

    #[test]
    fn secp256r1_pem_round_trip() {
        let server = ServerPrivateKey::generate(Curve::Secp256r1);
        let pem_text = server.public_key_pem();
        assert!(pem_text.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        let (label, der) = pem::decode_vec(pem_text.as_bytes()).unwrap();
        assert_eq!(label, "PUBLIC KEY");
        assert_eq!(der.len(), 91);
        assert_eq!(
            hex::encode(&der[..27]),
            "3059301306072a8648ce3d020106082a8648ce3d03010703420004"
        );
        let key = ServerPublicKey::from_pem(&pem_text).unwrap();
        assert_eq!(key.curve(), Curve::Secp256r1);
        assert_eq!(key, server.public_key());
        assert_eq!(&der[27..], &key.xy[..]);
        assert_eq!(ServerPublicKey::from_der(&der).unwrap(), key);
        assert_eq!(
            ServerPublicKey::from_raw(Curve::Secp256r1, &der[26..]).unwrap(),
            key
        );
    }

    #[test]
    fn lenient_pem_layouts() {
        let expected = server_key();
        let crlf = SERVER_PEM.replace('\n', "\r\n");
        let one_line = SERVER_PEM.replace('\n', " ");
        let escaped = SERVER_PEM.replace('\n', "\\n");
        let indented = format!(
            "key:\n    {}\ntrailing text",
            SERVER_PEM.replace('\n', "\n    ")
        );
        for text in [crlf, one_line, escaped, indented] {
            assert_eq!(
                ServerPublicKey::from_pem(&text).unwrap(),
                expected,
                "{text}"
            );
        }
        let dir = std::env::temp_dir().join(format!("rtm-crypto-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("server.pem");
        std::fs::write(&file, SERVER_PEM).unwrap();
        assert_eq!(ServerPublicKey::from_pem_file(&file).unwrap(), expected);
        std::fs::remove_dir_all(&dir).unwrap();
        let msg = encryption_message(ServerPublicKey::from_pem_file(dir.join("missing.pem")));
        assert!(msg.contains("cannot read"), "{msg}");
    }

    // --- bad input ---

    /// SubjectPublicKeyInfo DER for an EC key on the curve whose OID DER
    /// (tag, length, value) is `curve_oid`, with `point` as the key.
    fn ec_spki(curve_oid: &[u8], point: &[u8]) -> Vec<u8> {
        let mut alg = h("06072a8648ce3d0201");
        alg.extend_from_slice(curve_oid);
        let mut body = vec![0x30, alg.len() as u8];
        body.extend(alg);
        body.extend([0x03, (point.len() + 1) as u8, 0x00]);
        body.extend_from_slice(point);
        let mut der = vec![0x30, body.len() as u8];
        der.extend(body);
        der
    }

    #[test]
    fn rejects_non_ec_and_garbage_pem() {
        const RSA_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQCZjqjiMgO+8jLvTQ+vK8Z2/8i4
6A+6s/xGCrhWp1dp98S8sDhgGJxb2vhwj03AtTOC2qMrlUfyDjpz/1iy2gKu7/5b
KoOYzowSHY2ICiaivFOBu2fo8HQ0RPFKMOhWxI/KxtTCTYpDNOYNazaz6NAf2y+R
1c/BkJ/PBFxf2S8qqwIDAQAB
-----END PUBLIC KEY-----
";
        const ED25519_PEM: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAssG/ZA4t1/4Z5hNbZz39WIQ+8kYaZQVtK6R47OlfZ7g=
-----END PUBLIC KEY-----
";
        let msg = encryption_message(ServerPublicKey::from_pem(RSA_PEM));
        assert!(
            msg.contains("not an EC key") && msg.contains("RSA"),
            "{msg}"
        );
        let msg = encryption_message(ServerPublicKey::from_pem(ED25519_PEM));
        assert!(
            msg.contains("not an EC key") && msg.contains("Ed25519"),
            "{msg}"
        );

        let cases: &[(&str, &str)] = &[
            ("", "no PEM block"),
            ("hello world", "no PEM block"),
            (
                "-----BEGIN PUBLIC KEY-----\nMFYw",
                "no `-----END PUBLIC KEY-----`",
            ),
            ("-----BEGIN PUBLIC KEY", "unterminated"),
            (
                "-----BEGIN PUBLIC KEY-----\n!!!***\n-----END PUBLIC KEY-----",
                "not base64",
            ),
            (
                "-----BEGIN PUBLIC KEY-----\nAAAA=AAA\n-----END PUBLIC KEY-----",
                "base64",
            ),
            (
                "-----BEGIN PUBLIC KEY-----\naGVsbG8gd29ybGQ=\n-----END PUBLIC KEY-----",
                "SubjectPublicKeyInfo",
            ),
            (
                "-----BEGIN PUBLIC KEY-----\n\n-----END PUBLIC KEY-----",
                "empty",
            ),
            (
                "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----",
                "private key",
            ),
            (
                "-----BEGIN RSA PUBLIC KEY-----\nAAAA\n-----END RSA PUBLIC KEY-----",
                "RSA",
            ),
            (
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
                "certificate",
            ),
        ];
        for (text, needle) in cases {
            let msg = encryption_message(ServerPublicKey::from_pem(text));
            assert!(msg.contains(needle), "{text:?}: {msg}");
        }
        let mut rng = Rng(42);
        for len in 0..200 {
            let garbage = rng.bytes(len);
            assert!(matches!(
                ServerPublicKey::from_der(&garbage),
                Err(Error::Encryption(_))
            ));
        }
    }

    #[test]
    fn rejects_unsupported_curves() {
        let p192 = ec_spki(
            &h("06082a8648ce3d030101"),
            &[&[4u8][..], &[0x11; 48]].concat(),
        );
        assert_eq!(p192.len(), 75);
        let msg = encryption_message(ServerPublicKey::from_der(&p192));
        assert!(msg.contains("unsupported curve secp192r1"), "{msg}");
        let p224 = ec_spki(&h("06052b81040021"), &[&[4u8][..], &[0x11; 56]].concat());
        let pem_text = pem::encode_string("PUBLIC KEY", LineEnding::LF, &p224).unwrap();
        let msg = encryption_message(ServerPublicKey::from_pem(&pem_text));
        assert!(msg.contains("unsupported curve secp224r1"), "{msg}");
        let p384 = ec_spki(&h("06052b81040022"), &[&[4u8][..], &[0x11; 96]].concat());
        let msg = encryption_message(ServerPublicKey::from_der(&p384));
        assert!(msg.contains("unsupported curve secp384r1"), "{msg}");
        // The k1 key with its curve parameters missing.
        let mut no_params = h("304f300906072a8648ce3d0201034200");
        no_params.extend(h("04"));
        no_params.extend(server_key().xy);
        let msg = encryption_message(ServerPublicKey::from_der(&no_params));
        assert!(msg.contains("does not name its curve"), "{msg}");
    }

    #[test]
    fn rejects_compressed_wrong_length_and_off_curve_points() {
        let key =
            k256::PublicKey::from_sec1_bytes(&[&[4u8][..], &server_key().xy].concat()).unwrap();
        let compressed = key.to_encoded_point(true);
        assert_eq!(compressed.len(), 33);
        let der = ec_spki(&h("06052b8104000a"), compressed.as_bytes());
        let msg = encryption_message(ServerPublicKey::from_der(&der));
        assert!(msg.contains("compressed"), "{msg}");
        let msg = encryption_message(ServerPublicKey::from_raw(
            Curve::Secp256k1,
            compressed.as_bytes(),
        ));
        assert!(msg.contains("compressed"), "{msg}");

        for len in [0, 1, 32, 63, 66, 128] {
            let msg =
                encryption_message(ServerPublicKey::from_raw(Curve::Secp256k1, &vec![4; len]));
            assert!(msg.contains("64 bytes"), "{len}: {msg}");
        }
        let msg = encryption_message(ServerPublicKey::from_raw(Curve::Secp256r1, &[5; 65]));
        assert!(msg.contains("must start with 04"), "{msg}");

        let mut off_curve = [0u8; 64];
        off_curve[31] = 1;
        off_curve[63] = 1;
        for curve in [Curve::Secp256k1, Curve::Secp256r1] {
            let msg = encryption_message(ServerPublicKey::from_raw(curve, &off_curve));
            assert!(msg.contains("not a valid point"), "{msg}");
            let msg = encryption_message(ServerPublicKey::from_raw(curve, &[0; 64]));
            assert!(msg.contains("not a valid point"), "{msg}");
        }
        // An off-curve point in an otherwise valid SPKI.
        let der = ec_spki(&h("06052b8104000a"), &[&[4u8][..], &off_curve].concat());
        let msg = encryption_message(ServerPublicKey::from_der(&der));
        assert!(msg.contains("not a valid point"), "{msg}");
        // A k1 point is (almost surely) not on r1.
        let msg = encryption_message(ServerPublicKey::from_raw(
            Curve::Secp256r1,
            &server_key().xy,
        ));
        assert!(msg.contains("not a valid point on secp256r1"), "{msg}");
    }

    #[test]
    fn server_accept_rejects_bad_parameters() {
        let server = ServerPrivateKey::from_bytes(Curve::Secp256k1, &h(D_S)).unwrap();
        let client = h(CLIENT_PUB);
        for bits in [0, 64, 129, 192, 512] {
            let msg = encryption_message(server.accept(&client, true, bits, MAX));
            assert!(msg.contains("128 or 256"), "{msg}");
        }
        let msg = encryption_message(server.accept(&client[..63], true, 128, MAX));
        assert!(msg.contains("64 bytes"), "{msg}");
        let msg =
            encryption_message(server.accept(&[&[4u8][..], &client].concat(), true, 128, MAX));
        assert!(msg.contains("64 bytes"), "{msg}");
        let msg = encryption_message(server.accept(&[1; 64], true, 128, MAX));
        assert!(msg.contains("not a valid point"), "{msg}");

        for d in [vec![0u8; 32], vec![0xff; 32], vec![1; 31], vec![1; 33]] {
            encryption_message(ServerPrivateKey::from_bytes(Curve::Secp256r1, &d));
        }
        let cfg = EncryptionConfig::new(server_key());
        encryption_message(cfg.handshake_with_secret_key(&[0; 32], MAX));
    }

    fn package_decryptor(max_frame: usize) -> Decryptor {
        let server = ServerPrivateKey::from_bytes(Curve::Secp256k1, &h(D_S)).unwrap();
        server
            .accept(&h(CLIENT_PUB), false, 256, max_frame)
            .unwrap()
            .1
    }

    #[test]
    fn package_decryptor_rejects_bad_lengths() {
        let mut out = Vec::new();
        for len in [0u32, 1, 11] {
            let mut dec = package_decryptor(MAX);
            let err = dec.decrypt(&len.to_le_bytes(), &mut out).unwrap_err();
            match err {
                Error::Protocol(ProtocolError::Other(msg)) => {
                    assert!(msg.contains("shorter than a header"), "{msg}")
                }
                other => panic!("{other:?}"),
            }
            // The decryptor stays failed.
            assert!(dec.decrypt(&[0; 40], &mut out).is_err());
        }

        let mut dec = package_decryptor(MAX);
        let err = dec.decrypt(&[0xff; 4], &mut out).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Protocol(ProtocolError::FrameTooLarge { size: 0xFFFF_FFFF, max }) if max == MAX as u64
            ),
            "{err:?}"
        );

        // The limit is checked before anything is buffered, even when the
        // prefix arrives byte by byte.
        let mut dec = package_decryptor(100);
        for b in &101u32.to_le_bytes()[..3] {
            dec.decrypt(std::slice::from_ref(b), &mut out).unwrap();
        }
        let err = dec.decrypt(&[0, 1, 2, 3], &mut out).unwrap_err();
        assert!(matches!(
            err,
            Error::Protocol(ProtocolError::FrameTooLarge {
                size: 101,
                max: 100
            })
        ));
        let mut dec = package_decryptor(100);
        let mut wire = 100u32.to_le_bytes().to_vec();
        wire.extend([0; 100]);
        dec.decrypt(&wire, &mut out).unwrap();
        assert_eq!(out.len(), 100);
        assert!(out.iter().any(|&b| b != 0));
    }

    #[test]
    fn decryptors_survive_garbage() {
        let mut rng = Rng(7);
        for round in 0..200 {
            let mut dec = package_decryptor(1 << 16);
            let mut out = Vec::new();
            for _ in 0..5 {
                let n = rng.below(300);
                let chunk = rng.bytes(n);
                if dec.decrypt(&chunk, &mut out).is_err() {
                    break;
                }
            }
            assert!(out.len() <= 1 << 16 || round > 0);
        }
        let cfg = EncryptionConfig::new(server_key());
        let mut hs = cfg.handshake(MAX).unwrap();
        let garbage = rng.bytes(1000);
        assert_eq!(decrypt(&mut hs.decryptor, &garbage).len(), 1000);
    }

    #[test]
    fn debug_output_hides_keys() {
        let server = ServerPrivateKey::from_bytes(Curve::Secp256k1, &h(D_S)).unwrap();
        let dbg = format!("{server:?}");
        assert!(!dbg.contains(D_S) && !dbg.contains(&D_S[..8]), "{dbg}");
        assert!(dbg.contains("Secp256k1"), "{dbg}");

        for bits in [KeyBits::Aes128, KeyBits::Aes256] {
            let cfg = EncryptionConfig::new(server_key()).bits(bits);
            let hs = cfg.handshake_with_secret_key(&d_c(), MAX).unwrap();
            let all = format!("{:?} {:?} {:?} {:?}", hs, hs.encryptor, hs.decryptor, cfg);
            for secret in [SECRET, &SECRET[..8], IV, &IV[..8], D_C, &D_C[..8]] {
                assert!(!all.contains(secret), "{all}");
            }
            assert!(all.contains(&bits.bits().to_string()), "{all}");
            assert!(format!("{:?}", hs.encryptor).contains("Stream"));
        }
    }

    #[test]
    fn types_are_send() {
        fn assert_send<T: Send>() {}
        assert_send::<Encryptor>();
        assert_send::<Decryptor>();
        assert_send::<ClientHandshake>();
        assert_send::<ServerPrivateKey>();
        assert_send::<EncryptionConfig>();
    }
}
