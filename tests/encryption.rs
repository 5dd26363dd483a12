//! Encrypted connections against a misbehaving server: every failure is a
//! clear error and a closed connection, never a panic, and the client
//! recovers. (The whole transport and voice-room suites also run over every
//! encryption variant; see `for_each_variant!`.)

mod common;

use std::time::Duration;

use common::{map, wait_until, watchdog};
use crossbeam_channel::unbounded;
use rmpv::Value;
use rtm_server_sdk::emulator::{FpnnServer, Reply, RtmEmulator, ServerOptions};
use rtm_server_sdk::fpnn::crypto::{
    CipherMode, Curve, EncryptionConfig, KeyBits, ServerPrivateKey, ServerPublicKey,
};
use rtm_server_sdk::{ClientConfig, Error, FpnnClient, ProtocolError, RtmServerClient};

fn echo_server(options: ServerOptions) -> FpnnServer {
    FpnnServer::start(
        |_: &_, q: &rtm_server_sdk::fpnn::codec::Quest| match q.method.as_str() {
            "hold" => Reply::None,
            _ => Reply::Answer(map(vec![("ok", Value::Boolean(true))])),
        },
        options,
    )
    .unwrap()
}

fn encrypted_client(server: &FpnnServer, key: ServerPublicKey, mode: CipherMode) -> FpnnClient {
    let config = ClientConfig::default()
        .connect_timeout(Duration::from_secs(3))
        .encryption(EncryptionConfig::new(key).mode(mode).bits(KeyBits::Aes128));
    FpnnClient::new(server.endpoint(), config).unwrap()
}

fn empty() -> Value {
    Value::Map(vec![])
}

#[test]
fn a_server_that_answers_the_key_exchange_with_an_error() {
    watchdog(Duration::from_secs(20), || {
        // A server without encryption answers `*key` in clear, with an error.
        let server = echo_server(ServerOptions::default());
        let key = ServerPrivateKey::generate(Curve::Secp256k1).public_key();
        for mode in [CipherMode::Stream, CipherMode::Package] {
            let client = encrypted_client(&server, key.clone(), mode);
            let err = client.call("x", empty()).unwrap_err();
            match &err {
                Error::Encryption(text) => {
                    assert!(text.contains("unencrypted"), "{text}");
                    assert!(
                        text.contains("20004"),
                        "the server's error is named: {text}"
                    );
                }
                other => panic!("{other:?}"),
            }
            assert!(err.is_connection_error());
            assert!(!client.is_connected());
        }
    });
}

#[test]
fn a_wrong_server_key_fails_the_key_exchange() {
    watchdog(Duration::from_secs(20), || {
        let server = echo_server(
            ServerOptions::default().encryption(ServerPrivateKey::generate(Curve::Secp256k1)),
        );
        // The key of another server: the shared secrets differ, so the
        // server's answer decrypts to garbage.
        let other = ServerPrivateKey::generate(Curve::Secp256k1).public_key();
        for mode in [CipherMode::Stream, CipherMode::Package] {
            let client = encrypted_client(&server, other.clone(), mode);
            let err = client.connect().unwrap_err();
            assert!(matches!(err, Error::Encryption(_)), "{err:?}");
            assert!(!client.is_connected());
        }
        // A key on a curve the server does not use: the server closes the
        // connection without answering.
        let r1 = ServerPrivateKey::generate(Curve::Secp256r1).public_key();
        let client = encrypted_client(&server, r1, CipherMode::Stream);
        let err = client.connect().unwrap_err();
        assert!(matches!(err, Error::Encryption(_)), "{err:?}");
    });
}

#[test]
fn garbage_after_the_handshake_closes_the_connection_and_the_client_recovers() {
    watchdog(Duration::from_secs(20), || {
        let key = ServerPrivateKey::generate(Curve::Secp256r1);
        let public = key.public_key();
        let server = echo_server(ServerOptions::default().encryption(key));
        // (bytes sent unencrypted after the handshake, mode, expected error)
        type Check = fn(&Error) -> bool;
        let cases: [(Vec<u8>, CipherMode, Check); 4] = [
            // Stream mode: bytes that are not part of the cipher stream
            // decrypt to garbage.
            (
                b"this is not an encrypted FPNN frame".to_vec(),
                CipherMode::Stream,
                |e| matches!(e, Error::Protocol(ProtocolError::BadMagic(_))),
            ),
            // Package mode: a package length of zero.
            (vec![0, 0, 0, 0], CipherMode::Package, |e| {
                matches!(e, Error::Protocol(ProtocolError::Other(_)))
            }),
            // Package mode: a package length of 4 GiB.
            (vec![0xff, 0xff, 0xff, 0xff], CipherMode::Package, |e| {
                matches!(e, Error::Protocol(ProtocolError::FrameTooLarge { .. }))
            }),
            // Package mode: a package of garbage.
            (
                [&[20u8, 0, 0, 0][..], &[7u8; 20][..]].concat(),
                CipherMode::Package,
                |e| matches!(e, Error::Protocol(ProtocolError::BadMagic(_))),
            ),
        ];
        for (bytes, mode, check) in cases {
            let client = encrypted_client(&server, public.clone(), mode);
            assert!(client.call("x", empty()).is_ok());
            let (tx, rx) = unbounded();
            client.call_with_callback("hold", empty(), None, move |r| tx.send(r).unwrap());
            assert!(wait_until(Duration::from_secs(5), || client
                .pending_calls()
                == 1));
            for conn in server.connections() {
                conn.send_unencrypted(&bytes);
            }
            let err = rx
                .recv_timeout(Duration::from_secs(5))
                .unwrap()
                .unwrap_err();
            assert!(check(&err), "{mode:?} {bytes:?}: {err:?}");
            assert!(err.is_connection_error());
            // A new connection, with a new key exchange, works.
            assert!(client.call("x", empty()).is_ok());
        }
    });
}

#[test]
fn the_rtm_client_over_an_encrypted_connection_from_a_pem_key() {
    watchdog(Duration::from_secs(20), || {
        let key = ServerPrivateKey::generate(Curve::Secp256k1);
        let pem = key.public_key_pem();
        let dir = std::env::temp_dir().join(format!("rtm-sdk-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("server-public.pem");
        std::fs::write(&path, pem).unwrap();
        let emu =
            RtmEmulator::start_with(1, "s", ServerOptions::default().encryption(key)).unwrap();
        let public = ServerPublicKey::from_pem_file(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let config = ClientConfig::default().encryption(EncryptionConfig::new(public));
        let client = RtmServerClient::with_config(1, "s", emu.endpoint(), config).unwrap();
        client.pull_into_voice_room(5, &[1, 2]).unwrap();
        assert_eq!(client.get_voice_room_member_count(5).unwrap(), 2);
        assert!(emu.server().is_encrypted());
        // The default is stream mode with AES-256.
        let key_quest = emu
            .received()
            .into_iter()
            .find(|(m, _)| m == "*key")
            .expect("a key exchange");
        let p = &key_quest.1;
        let get = |k| rtm_server_sdk::fpnn::codec::map_get(p, k).cloned();
        assert_eq!(get("streamMode"), Some(Value::Boolean(true)));
        assert_eq!(get("bits").and_then(|v| v.as_i64()), Some(256));
        assert!(matches!(get("publicKey"), Some(Value::Binary(b)) if b.len() == 64));
    });
}
