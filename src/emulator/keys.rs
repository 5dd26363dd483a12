//! Key files for an encrypted emulator: reading a server's ECC private key
//! (PEM or raw) and making a new key pair, as the `rtm-emulator` program
//! does for `--ecc-private-key` and `--generate-key`.
//!
//! A private key is accepted as
//! * a SEC1 PEM (`-----BEGIN EC PRIVATE KEY-----`, what
//!   `openssl ecparam -genkey -name secp256k1` writes; an
//!   `EC PARAMETERS` block before it is skipped),
//! * a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`, what `openssl genpkey`
//!   writes),
//! * the raw 32-byte scalar, as binary (the form of the FPNN server's
//!   `privateKey` file) or as 64 hex digits.
//!
//! A PEM names its curve; a raw key does not, so its curve is the one the
//! caller gives (secp256k1 when none). Only secp256k1 and secp256r1 are
//! supported, as on the client side.
//!
//! ```
//! use rtm_server_sdk::emulator::keys::{generate_key_pair, parse_private_key};
//! use rtm_server_sdk::fpnn::crypto::{Curve, ServerPublicKey};
//!
//! let pair = generate_key_pair(Curve::Secp256r1);
//! let key = parse_private_key(pair.private_pem.as_bytes(), None).unwrap();
//! let public = ServerPublicKey::from_pem(&pair.public_pem).unwrap();
//! assert_eq!(key.public_key(), public);
//! assert_eq!(public.curve(), Curve::Secp256r1);
//! ```

use std::fmt;
use std::path::Path;

use k256::pkcs8::der::pem::LineEnding;
use k256::pkcs8::DecodePrivateKey;
use rand_core::OsRng;

use crate::error::{Error, Result};
use crate::fpnn::crypto::{Curve, ServerPrivateKey};

fn enc_err(msg: impl Into<String>) -> Error {
    Error::Encryption(msg.into())
}

/// A new key pair, as PEM texts.
#[derive(Clone)]
#[non_exhaustive]
pub struct KeyPair {
    /// The curve.
    pub curve: Curve,
    /// The private key, `-----BEGIN EC PRIVATE KEY-----` (SEC1): give it to
    /// the emulator.
    pub private_pem: String,
    /// The public key, `-----BEGIN PUBLIC KEY-----`: give it to the clients
    /// (`ServerPublicKey::from_pem_file` here, the PEM key file of the
    /// official SDKs).
    pub public_pem: String,
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("curve", &self.curve)
            .field("public_pem", &self.public_pem)
            .finish_non_exhaustive()
    }
}

/// Makes a new random key pair on `curve`.
#[must_use]
pub fn generate_key_pair(curve: Curve) -> KeyPair {
    let (scalar, private_pem) = match curve {
        Curve::Secp256k1 => {
            let sk = k256::SecretKey::random(&mut OsRng);
            let pem = sk.to_sec1_pem(LineEnding::LF);
            (sk.to_bytes().to_vec(), pem)
        }
        Curve::Secp256r1 => {
            let sk = p256::SecretKey::random(&mut OsRng);
            let pem = sk.to_sec1_pem(LineEnding::LF);
            (sk.to_bytes().to_vec(), pem)
        }
    };
    let private_pem = private_pem
        .expect("encoding a valid EC private key as PEM cannot fail")
        .to_string();
    let key = ServerPrivateKey::from_bytes(curve, &scalar).expect("a freshly generated key");
    KeyPair {
        curve,
        private_pem,
        public_pem: key.public_key_pem(),
    }
}

/// Reads a private key file (see the [module docs](self) for the forms).
/// `curve` is the curve of a raw key (secp256k1 when `None`); for a PEM it
/// must match the PEM's curve when given.
///
/// # Errors
///
/// [`Error::Io`] when the file cannot be read, [`Error::Encryption`] when
/// it holds no usable key (the message says why).
pub fn read_private_key(path: impl AsRef<Path>, curve: Option<Curve>) -> Result<ServerPrivateKey> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::Io(e.into()))?;
    parse_private_key(&bytes, curve)
        .map_err(|e| enc_err(format!("{}: {}", path.display(), inner_message(&e))))
}

fn inner_message(e: &Error) -> String {
    match e {
        Error::Encryption(m) => m.clone(),
        other => other.to_string(),
    }
}

/// Parses a private key from a file's bytes (see
/// [`read_private_key`]).
///
/// # Errors
///
/// [`Error::Encryption`] when `bytes` hold no usable key.
pub fn parse_private_key(bytes: &[u8], curve: Option<Curve>) -> Result<ServerPrivateKey> {
    if let Ok(text) = std::str::from_utf8(bytes) {
        if text.contains("-----BEGIN") {
            return parse_pem(text, curve);
        }
        let hex_text = text.trim();
        if hex_text.len() == 64 && hex_text.bytes().all(|b| b.is_ascii_hexdigit()) {
            let d = hex::decode(hex_text).map_err(|e| enc_err(e.to_string()))?;
            return ServerPrivateKey::from_bytes(curve.unwrap_or(Curve::Secp256k1), &d);
        }
    }
    if bytes.len() == 32 {
        return ServerPrivateKey::from_bytes(curve.unwrap_or(Curve::Secp256k1), bytes);
    }
    Err(enc_err(format!(
        "not a private key: expected a PEM (`EC PRIVATE KEY` or `PRIVATE KEY`), \
         32 raw bytes or 64 hex digits, got {} bytes",
        bytes.len()
    )))
}

/// The text of the first `-----BEGIN label-----` block, END line included.
fn pem_block<'a>(text: &'a str, label: &str) -> Option<&'a str> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)?;
    let stop = text[start..].find(&end)? + start + end.len();
    Some(&text[start..stop])
}

fn parse_pem(text: &str, curve: Option<Curve>) -> Result<ServerPrivateKey> {
    let curves = match curve {
        Some(c) => vec![c],
        None => vec![Curve::Secp256k1, Curve::Secp256r1],
    };
    let (block, pkcs8) = if let Some(b) = pem_block(text, "EC PRIVATE KEY") {
        (b, false)
    } else if let Some(b) = pem_block(text, "PRIVATE KEY") {
        (b, true)
    } else {
        return Err(enc_err(
            "no `EC PRIVATE KEY` or `PRIVATE KEY` PEM block found \
             (a public key cannot be used: the emulator needs the private half)",
        ));
    };
    // Each curve's decoder refuses a key whose PEM names another curve.
    for c in curves {
        let scalar: Option<Vec<u8>> = match (c, pkcs8) {
            (Curve::Secp256k1, false) => k256::SecretKey::from_sec1_pem(block)
                .ok()
                .map(|k| k.to_bytes().to_vec()),
            (Curve::Secp256k1, true) => k256::SecretKey::from_pkcs8_pem(block)
                .ok()
                .map(|k| k.to_bytes().to_vec()),
            (Curve::Secp256r1, false) => p256::SecretKey::from_sec1_pem(block)
                .ok()
                .map(|k| k.to_bytes().to_vec()),
            (Curve::Secp256r1, true) => p256::SecretKey::from_pkcs8_pem(block)
                .ok()
                .map(|k| k.to_bytes().to_vec()),
        };
        if let Some(d) = scalar {
            return ServerPrivateKey::from_bytes(c, &d);
        }
    }
    Err(enc_err(match curve {
        Some(c) => format!("the PEM private key is not a valid {c} key"),
        None => "the PEM private key is neither a secp256k1 nor a secp256r1 key".to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fpnn::crypto::ServerPublicKey;

    #[test]
    fn generated_pairs_read_back_on_both_curves() {
        for curve in [Curve::Secp256k1, Curve::Secp256r1] {
            let pair = generate_key_pair(curve);
            assert!(pair
                .private_pem
                .starts_with("-----BEGIN EC PRIVATE KEY-----"));
            let key = parse_private_key(pair.private_pem.as_bytes(), None).unwrap();
            let public = ServerPublicKey::from_pem(&pair.public_pem).unwrap();
            assert_eq!(key.public_key(), public);
            assert_eq!(public.curve(), curve);
            // The right curve given explicitly works, the wrong one does not.
            assert!(parse_private_key(pair.private_pem.as_bytes(), Some(curve)).is_ok());
            let other = match curve {
                Curve::Secp256k1 => Curve::Secp256r1,
                Curve::Secp256r1 => Curve::Secp256k1,
            };
            let e = parse_private_key(pair.private_pem.as_bytes(), Some(other)).unwrap_err();
            assert!(e.to_string().contains("not a valid"), "{e}");
            // An EC PARAMETERS block before the key (openssl ecparam) is skipped.
            let with_params = format!(
                "-----BEGIN EC PARAMETERS-----\nBgUrgQQACg==\n-----END EC PARAMETERS-----\n{}",
                pair.private_pem
            );
            assert_eq!(
                parse_private_key(with_params.as_bytes(), None)
                    .unwrap()
                    .public_key(),
                public
            );
        }
    }

    #[test]
    fn pkcs8_raw_and_hex_forms() {
        use k256::pkcs8::EncodePrivateKey;
        let sk = p256::SecretKey::random(&mut OsRng);
        let pkcs8 = sk.to_pkcs8_pem(LineEnding::LF).unwrap();
        let key = parse_private_key(pkcs8.as_bytes(), None).unwrap();
        assert_eq!(key.public_key().curve(), Curve::Secp256r1);
        let d = sk.to_bytes();
        let raw = parse_private_key(&d, Some(Curve::Secp256r1)).unwrap();
        assert_eq!(raw.public_key(), key.public_key());
        let hex_text = format!("{}\n", hex::encode(d));
        let from_hex = parse_private_key(hex_text.as_bytes(), Some(Curve::Secp256r1)).unwrap();
        assert_eq!(from_hex.public_key(), key.public_key());
        // A raw key defaults to secp256k1.
        assert_eq!(
            parse_private_key(&d, None).unwrap().public_key().curve(),
            Curve::Secp256k1
        );
    }

    #[test]
    fn useless_files_are_clear_errors() {
        let pair = generate_key_pair(Curve::Secp256k1);
        let e = parse_private_key(pair.public_pem.as_bytes(), None).unwrap_err();
        assert!(e.to_string().contains("private half"), "{e}");
        let e = parse_private_key(b"hello", None).unwrap_err();
        assert!(e.to_string().contains("5 bytes"), "{e}");
        let e = parse_private_key(&[0u8; 32], None).unwrap_err();
        assert!(matches!(e, Error::Encryption(_)), "{e}");
        let e = read_private_key("/nonexistent/key.pem", None).unwrap_err();
        assert!(matches!(e, Error::Io(_)), "{e}");
    }
}
