//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use rmpv::Value;

/// Runs `body` on its own thread and fails the test if it has not finished
/// within `limit`: no test can hang CI.
pub fn watchdog<T: Send + 'static>(
    limit: Duration,
    body: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    let handle = thread::Builder::new()
        .name("test-body".into())
        .spawn(move || {
            let out = body();
            let _ = tx.send(());
            out
        })
        .unwrap();
    match rx.recv_timeout(limit) {
        Ok(()) => handle.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Ok(_) => unreachable!("the body finished without reporting"),
            Err(panic) => std::panic::resume_unwind(panic),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("watchdog: the test did not finish within {limit:?}")
        }
    }
}

/// Runs a callback-form call and waits for its one result, checking that
/// the callback ran exactly once.
pub fn via_callback<T: Send + 'static>(
    start: impl FnOnce(Box<dyn FnOnce(rtm_server_sdk::Result<T>) + Send>),
) -> rtm_server_sdk::Result<T> {
    let (tx, rx) = crossbeam_channel::bounded(2);
    start(Box::new(move |r| tx.send(r).unwrap()));
    let r = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the callback ran");
    assert!(
        rx.recv_timeout(Duration::from_millis(20)).is_err(),
        "the callback ran once"
    );
    r
}

/// An emulator for `pid`/`secret` and a client of it whose calls wait at
/// most `quest_timeout`.
pub fn emulator_and_client(
    pid: i64,
    secret: &str,
    quest_timeout: Duration,
) -> (
    rtm_server_sdk::emulator::RtmEmulator,
    rtm_server_sdk::RtmServerClient,
) {
    let emu = rtm_server_sdk::emulator::RtmEmulator::start(pid, secret).unwrap();
    let config = rtm_server_sdk::ClientConfig::default().quest_timeout(quest_timeout);
    let client =
        rtm_server_sdk::RtmServerClient::with_config(pid, secret, emu.endpoint(), config).unwrap();
    (emu, client)
}

/// A msgpack map from string keys.
pub fn map(entries: Vec<(&str, Value)>) -> Value {
    rtm_server_sdk::fpnn::codec::map_of(entries)
}

/// Reads an integer from a map.
pub fn get_i64(v: &Value, key: &str) -> Option<i64> {
    rtm_server_sdk::fpnn::codec::map_get(v, key).and_then(Value::as_i64)
}

/// The number of threads of this process.
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The names of this process's threads that start with one of `prefixes`
/// (the crate names its threads: `fpnn-...` for a client's, `emu-...` for
/// the emulator's), so that a test counts the threads it cares about and
/// not the test harness's own.
pub fn threads_named(prefixes: &[&str]) -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|name| name.trim_end().to_string())
        .filter(|name| prefixes.iter().any(|p| name.starts_with(p)))
        .collect()
}

/// Polls `cond` every 10 ms until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

use rtm_server_sdk::emulator::ServerOptions;
use rtm_server_sdk::fpnn::crypto::{
    CipherMode, Curve, EncryptionConfig, KeyBits, ServerPrivateKey,
};
use rtm_server_sdk::ClientConfig;

/// One way of connecting: plain, or encrypted with a curve, a mode and a
/// key size. Integration tests run once per variant (see
/// [`for_each_variant!`]).
#[derive(Debug, Clone, Copy)]
pub struct Variant {
    pub encryption: Option<(Curve, CipherMode, KeyBits)>,
}

impl Variant {
    pub const PLAIN: Variant = Variant { encryption: None };

    pub const fn encrypted(curve: Curve, mode: CipherMode, bits: KeyBits) -> Variant {
        Variant {
            encryption: Some((curve, mode, bits)),
        }
    }

    /// The server options (with a fresh server key for encrypted variants)
    /// and the [`Keys`] that configure clients for that server.
    pub fn setup(&self) -> (ServerOptions, Keys) {
        match self.encryption {
            None => (ServerOptions::default(), Keys(None)),
            Some((curve, mode, bits)) => {
                let key = ServerPrivateKey::generate(curve);
                let public = key.public_key();
                (
                    ServerOptions::default().encryption(key),
                    Keys(Some(EncryptionConfig::new(public).mode(mode).bits(bits))),
                )
            }
        }
    }
}

/// How clients reach a server of a [`Variant`].
#[derive(Debug, Clone)]
pub struct Keys(Option<EncryptionConfig>);

impl Keys {
    /// `base` with the variant's encryption.
    pub fn config(&self, base: ClientConfig) -> ClientConfig {
        match &self.0 {
            Some(enc) => base.encryption(enc.clone()),
            None => base,
        }
    }
}

/// Turns each `fn name(v: Variant) { body }` into a module `name` with one
/// test per connection variant: plain, and every curve / mode / key size.
#[macro_export]
macro_rules! for_each_variant {
    ($( $(#[$meta:meta])* fn $name:ident($v:ident: Variant) $body:block )*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;
                use rtm_server_sdk::fpnn::crypto::{CipherMode::*, Curve::*, KeyBits::*};
                use $crate::common::Variant;

                $(#[$meta])*
                fn run($v: Variant) $body

                #[test] fn plain() { run(Variant::PLAIN) }
                #[test] fn k1_stream_128() { run(Variant::encrypted(Secp256k1, Stream, Aes128)) }
                #[test] fn k1_stream_256() { run(Variant::encrypted(Secp256k1, Stream, Aes256)) }
                #[test] fn k1_package_128() { run(Variant::encrypted(Secp256k1, Package, Aes128)) }
                #[test] fn k1_package_256() { run(Variant::encrypted(Secp256k1, Package, Aes256)) }
                #[test] fn r1_stream_128() { run(Variant::encrypted(Secp256r1, Stream, Aes128)) }
                #[test] fn r1_stream_256() { run(Variant::encrypted(Secp256r1, Stream, Aes256)) }
                #[test] fn r1_package_128() { run(Variant::encrypted(Secp256r1, Package, Aes128)) }
                #[test] fn r1_package_256() { run(Variant::encrypted(Secp256r1, Package, Aes256)) }
            }
        )*
    };
}

/// An endpoint whose connects stall: a listener with a backlog of 1 whose
/// accept queue is filled and never accepted, so the kernel drops further
/// SYNs. Loopback only. Dropping it releases everything.
pub struct Stalled {
    _listener: socket2::Socket,
    _fillers: Vec<std::net::TcpStream>,
    /// `127.0.0.1:PORT`.
    pub endpoint: String,
}

/// Makes a [`Stalled`] endpoint.
pub fn stalled_endpoint() -> Stalled {
    use socket2::{Domain, Socket, Type};
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    listener.bind(&any.into()).unwrap();
    listener.listen(1).unwrap();
    let addr = listener.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..64 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(s) => fillers.push(s),
            Err(_) => {
                return Stalled {
                    _listener: listener,
                    _fillers: fillers,
                    endpoint: addr.to_string(),
                }
            }
        }
    }
    panic!("the accept queue never filled");
}
