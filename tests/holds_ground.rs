//! The emulator's server holds its ground against peers that never sign
//! anything: bounded memory, descriptors, connections and time, and a
//! signed client always served.
//!
//! The memory and descriptor figures are read from a server in a child
//! process (this test binary run again with `HOLDS_GROUND_SERVE` set), so
//! that nothing else in this process disturbs them; Linux only
//! (`/proc/PID/status`).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{map, wait_until, watchdog};
use rmpv::Value;
use rtm_server_sdk::emulator::{
    EmulatorOptions, FpnnServer, Reply, RtmEmulator, ServerConn, ServerOptions, Service,
};
use rtm_server_sdk::fpnn::codec::{encode_quest, Quest};
use rtm_server_sdk::RtmServerClient;

const PID: i64 = 11000001;
const SECRET: &str = "holds-ground-secret";
const MIB: usize = 1024 * 1024;

// --- raw frames ---------------------------------------------------------------

/// A two-way quest frame around `payload` (raw msgpack bytes).
fn frame(method: &str, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(payload.len() + 32);
    f.extend_from_slice(b"FPNN");
    f.extend_from_slice(&[1, 0x80, 1, method.len() as u8]);
    f.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    f.extend_from_slice(&1u32.to_le_bytes());
    f.extend_from_slice(method.as_bytes());
    f.extend_from_slice(payload);
    f
}

/// A payload `{"data": <len bytes>}`.
fn bin_payload(len: usize) -> Vec<u8> {
    let v = map(vec![("data", Value::Binary(vec![7u8; len]))]);
    let mut q = Vec::new();
    encode_quest(&mut q, Some(1), "x", &v).unwrap();
    q[12 + 4 + 1..].to_vec()
}

/// A payload that is a map of `pairs` `""→nil` entries (2 bytes each on
/// the wire, a hundred times more once decoded).
fn huge_map_payload(pairs: u32) -> Vec<u8> {
    let mut p = vec![0xdf];
    p.extend_from_slice(&pairs.to_be_bytes());
    for _ in 0..pairs {
        p.extend_from_slice(&[0xa0, 0xc0]);
    }
    p
}

fn connect(endpoint: &str) -> TcpStream {
    let s = TcpStream::connect(endpoint).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Reads one answer frame; false when the connection closed first.
fn read_answer(s: &mut TcpStream) -> bool {
    let mut header = [0u8; 16];
    if s.read_exact(&mut header).is_err() {
        return false;
    }
    let len = u32::from_le_bytes(header[8..12].try_into().unwrap()) as usize;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).is_ok()
}

/// Whether the server closed `s` within `limit` (a read returns 0 or fails
/// other than by timing out).
fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 256];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

// --- services -------------------------------------------------------------------

/// Answers every quest with an empty map.
fn ok_service() -> impl Service {
    |_c: &ServerConn, _q: &Quest| Reply::ok()
}

/// Refuses every quest before decoding it, as the RTM service refuses an
/// unsigned one.
struct Refusing;

impl Service for Refusing {
    fn on_quest(&self, _: &ServerConn, _: &Quest) -> Reply {
        Reply::ok()
    }
    fn admit(&self, _: &ServerConn, _: &str, _: &[u8]) -> Result<(), Reply> {
        Err(Reply::error(200001, "unsigned"))
    }
}

/// Admits only `login`: the connection is then authenticated.
struct LoginFirst;

impl Service for LoginFirst {
    fn on_quest(&self, _: &ServerConn, _: &Quest) -> Reply {
        Reply::ok()
    }
    fn admit(&self, _: &ServerConn, method: &str, _: &[u8]) -> Result<(), Reply> {
        match method {
            "login" => Ok(()),
            _ => Err(Reply::error(200001, "unsigned")),
        }
    }
}

// --- a server in a child process ---------------------------------------------

/// The child side: when `HOLDS_GROUND_SERVE` is set, this "test" runs the
/// server it names, prints its port and serves until stdin closes.
#[test]
fn child_server() {
    let Ok(mode) = std::env::var("HOLDS_GROUND_SERVE") else {
        return;
    };
    let (port, _keep): (u16, Box<dyn std::any::Any>) = match mode.as_str() {
        "log" => {
            let s = FpnnServer::start(ok_service(), ServerOptions::new()).unwrap();
            (s.local_addr().port(), Box::new(s))
        }
        "refuse" => {
            let s = FpnnServer::start(Refusing, ServerOptions::new()).unwrap();
            (s.local_addr().port(), Box::new(s))
        }
        "rtm-low-fd" => {
            set_soft_fd_limit(256);
            let e = RtmEmulator::start(PID, SECRET).unwrap();
            (e.local_addr().port(), Box::new(e))
        }
        other => panic!("unknown mode {other}"),
    };
    println!("PORT {port}");
    let _ = std::io::stdout().flush();
    let mut sink = [0u8; 64];
    let mut stdin = std::io::stdin();
    while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
    std::process::exit(0);
}

#[cfg(not(unix))]
fn set_soft_fd_limit(_: u64) {}

#[cfg(unix)]
fn set_soft_fd_limit(n: u64) {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let lim = getrlimit(Resource::Nofile);
    let current = Some(lim.maximum.map_or(n, |max| n.min(max)));
    let _ = setrlimit(
        Resource::Nofile,
        Rlimit {
            current,
            maximum: lim.maximum,
        },
    );
}

struct ChildServer {
    child: Child,
    endpoint: String,
}

impl ChildServer {
    fn start(mode: &str) -> ChildServer {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["child_server", "--exact", "--nocapture", "--test-threads=1"])
            .env("HOLDS_GROUND_SERVE", mode)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let port = stdout
            .lines()
            .map_while(Result::ok)
            .find_map(|l| {
                // libtest prints `test child_server ... ` first.
                let at = l.find("PORT ")?;
                Some(l[at + 5..].trim().parse::<u16>().unwrap())
            })
            .expect("the child's port");
        ChildServer {
            child,
            endpoint: format!("127.0.0.1:{port}"),
        }
    }

    /// A field of `/proc/PID/status` in bytes (`VmRSS`, `VmHWM`).
    fn status_bytes(&self, field: &str) -> usize {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kb: usize = status
            .lines()
            .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse().ok())
            .unwrap_or_else(|| panic!("{field} in {status}"));
        kb * 1024
    }

    fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .unwrap()
            .count()
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// --- memory ------------------------------------------------------------------------

#[cfg(target_os = "linux")]
#[test]
fn the_test_log_is_bounded_in_bytes() {
    watchdog(Duration::from_secs(120), || {
        let server = ChildServer::start("log");
        let before = server.status_bytes("VmRSS");
        // 12 admitted 8 MiB quests: 96 MiB if all were kept.
        let f = frame("put", &bin_payload(8 * MIB - 64));
        let mut s = connect(&server.endpoint);
        for _ in 0..12 {
            s.write_all(&f).unwrap();
            assert!(read_answer(&mut s));
        }
        let grown = server.status_bytes("VmRSS").saturating_sub(before);
        // The log's 16 MiB, one frame's read buffer while it is read and
        // the allocator's slack.
        assert!(grown < 48 * MIB, "RSS grew by {} MiB", grown / MIB);
    });
}

#[cfg(target_os = "linux")]
#[test]
fn unsigned_big_quests_and_huge_maps_stay_within_one_frame_per_connection() {
    watchdog(Duration::from_secs(120), || {
        let server = ChildServer::start("refuse");
        let before = server.status_bytes("VmHWM");
        // 50 refused 8 MiB quests on one connection...
        let f = frame("nosuchmethod", &bin_payload(8 * MIB - 64));
        let mut s = connect(&server.endpoint);
        for _ in 0..50 {
            s.write_all(&f).unwrap();
            assert!(read_answer(&mut s));
        }
        // ... and 4 connections at once, each sending a map of 3,900,000
        // pairs (7.8 MB on the wire, ~700 MB once decoded).
        let f = Arc::new(frame("nosuchmethod", &huge_map_payload(3_900_000)));
        let senders: Vec<_> = (0..4)
            .map(|_| {
                let f = f.clone();
                let mut s = connect(&server.endpoint);
                thread::spawn(move || s.write_all(&f).is_ok() && read_answer(&mut s))
            })
            .collect();
        for t in senders {
            assert!(t.join().unwrap(), "refused and answered");
        }
        let peak = server.status_bytes("VmHWM").saturating_sub(before);
        // At most one frame (8 MiB) per connection, 4 at once.
        assert!(peak < 48 * MIB, "the peak grew by {} MiB", peak / MIB);
    });
}

#[cfg(target_os = "linux")]
#[test]
fn a_connection_costs_one_descriptor() {
    watchdog(Duration::from_secs(60), || {
        let server = ChildServer::start("refuse");
        let before = server.fds();
        let mut socks: Vec<TcpStream> = (0..50).map(|_| connect(&server.endpoint)).collect();
        // Each connection is served (so its thread and socket exist).
        let f = frame("x", &bin_payload(8));
        for s in &mut socks {
            s.write_all(&f).unwrap();
            assert!(read_answer(s));
        }
        let added = server.fds() - before;
        assert!(added <= 52, "50 connections took {added} descriptors");
    });
}

// --- timeouts -------------------------------------------------------------------------

#[test]
fn a_frame_that_stops_half_way_is_closed_after_the_frame_timeout() {
    watchdog(Duration::from_secs(30), || {
        let options = ServerOptions::new()
            .frame_timeout(Duration::from_millis(300))
            .idle_timeout(None);
        let server = FpnnServer::start(ok_service(), options).unwrap();
        let f = frame("put", &bin_payload(100_000));
        // Stopped half way.
        let mut half = connect(&server.endpoint());
        half.write_all(&f[..50_000]).unwrap();
        // Trickling: a byte every 50 ms never completes the frame in time.
        let mut trickle = connect(&server.endpoint());
        let t = Instant::now();
        let mut closed = false;
        for b in &f[..40] {
            if trickle.write_all(&[*b]).is_err() {
                closed = true;
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
        assert!(closed || closed_within(&mut trickle, Duration::from_secs(5)));
        assert!(t.elapsed() < Duration::from_secs(5));
        assert!(closed_within(&mut half, Duration::from_secs(5)));
        // A frame that completes in time is answered.
        let mut fine = connect(&server.endpoint());
        fine.write_all(&f[..50_000]).unwrap();
        thread::sleep(Duration::from_millis(100));
        fine.write_all(&f[50_000..]).unwrap();
        assert!(read_answer(&mut fine));
    });
}

#[test]
fn an_idle_connection_is_closed_until_it_has_had_a_quest_admitted() {
    watchdog(Duration::from_secs(30), || {
        let options = ServerOptions::new().idle_timeout(Duration::from_millis(300));
        let server = FpnnServer::start(LoginFirst, options).unwrap();
        let login = frame("login", &bin_payload(1));
        let other = frame("other", &bin_payload(1));
        let mut idle = connect(&server.endpoint());
        // Refused quests are frames: they keep a connection from being
        // idle, not from being unauthenticated.
        let mut refused = connect(&server.endpoint());
        refused.write_all(&other).unwrap();
        assert!(read_answer(&mut refused));
        let mut signed = connect(&server.endpoint());
        signed.write_all(&login).unwrap();
        assert!(read_answer(&mut signed));
        assert!(closed_within(&mut idle, Duration::from_secs(5)));
        assert!(closed_within(&mut refused, Duration::from_secs(5)));
        // The authenticated connection stays (no idle timeout after).
        thread::sleep(Duration::from_millis(400));
        signed.write_all(&other).unwrap();
        assert!(read_answer(&mut signed), "still served");
        let conns = server.connections();
        assert_eq!(conns.len(), 1);
        assert!(conns[0].is_authenticated());
        assert!(conns[0].close_reason().is_none());
    });
}

// --- connection limit and budgets ----------------------------------------------

#[test]
fn the_connection_limit_sheds_unauthenticated_connections_oldest_first() {
    watchdog(Duration::from_secs(60), || {
        let options = ServerOptions::new().max_connections(8);
        let emu =
            RtmEmulator::start_with_options(PID, SECRET, EmulatorOptions::new().server(options))
                .unwrap();
        let mut idle: Vec<TcpStream> = (0..20).map(|_| connect(&emu.endpoint())).collect();
        assert!(wait_until(Duration::from_secs(5), || {
            emu.server().connections().len() <= 8
        }));
        // A signed client is served: it takes the room of an idle socket.
        let client = RtmServerClient::new(PID, SECRET, emu.endpoint()).unwrap();
        let client = client.with_timeout(Duration::from_secs(5));
        client.get_token(1).unwrap();
        client.get_token(2).unwrap();
        assert!(wait_until(Duration::from_secs(5), || {
            emu.server().connections().len() <= 8
        }));
        // The oldest idle sockets went first; the newest are still open.
        for s in &mut idle[..12] {
            assert!(closed_within(s, Duration::from_secs(5)));
        }
        for s in &mut idle[14..] {
            assert!(!closed_within(s, Duration::from_millis(50)));
        }
        let reasons: Vec<_> = emu
            .server()
            .connections()
            .iter()
            .map(|c| c.is_authenticated())
            .collect();
        assert_eq!(reasons.iter().filter(|a| **a).count(), 1, "{reasons:?}");
    });
}

#[test]
fn at_the_limit_with_every_connection_authenticated_the_newcomer_is_closed() {
    watchdog(Duration::from_secs(30), || {
        let server =
            FpnnServer::start(LoginFirst, ServerOptions::new().max_connections(2)).unwrap();
        let login = frame("login", &bin_payload(1));
        let mut signed: Vec<TcpStream> = (0..2)
            .map(|_| {
                let mut s = connect(&server.endpoint());
                s.write_all(&login).unwrap();
                assert!(read_answer(&mut s));
                s
            })
            .collect();
        let mut newcomer = connect(&server.endpoint());
        assert!(closed_within(&mut newcomer, Duration::from_secs(5)));
        for s in &mut signed {
            s.write_all(&login).unwrap();
            assert!(read_answer(s));
        }
    });
}

#[test]
fn unfinished_frames_of_unauthenticated_connections_share_one_budget() {
    watchdog(Duration::from_secs(30), || {
        let options = ServerOptions::new().unauthenticated_buffer(6 * MIB);
        let server = FpnnServer::start(LoginFirst, options).unwrap();
        let f = frame("other", &bin_payload(8 * MIB - 64));
        // Four connections each stalled 2 MiB into an 8 MiB frame: 8 MiB
        // together, over the budget of 6.
        let mut stalled: Vec<TcpStream> = Vec::new();
        for _ in 0..4 {
            let mut s = connect(&server.endpoint());
            s.write_all(&f[..2 * MIB]).unwrap();
            stalled.push(s);
            thread::sleep(Duration::from_millis(100));
        }
        // The oldest went first; the newest still waits for its frame.
        assert!(closed_within(&mut stalled[0], Duration::from_secs(5)));
        assert!(!closed_within(&mut stalled[3], Duration::from_millis(100)));
        // An authenticated connection is not held to it.
        let mut signed = connect(&server.endpoint());
        signed.write_all(&frame("login", &bin_payload(1))).unwrap();
        assert!(read_answer(&mut signed));
        signed.write_all(&f).unwrap();
        assert!(read_answer(&mut signed));
    });
}

#[cfg(target_os = "linux")]
#[test]
fn many_idle_sockets_never_lock_out_a_signed_client() {
    watchdog(Duration::from_secs(120), || {
        // The server's soft descriptor limit is 256; this process opens 600
        // idle sockets to it.
        set_soft_fd_limit(4096);
        let server = ChildServer::start("rtm-low-fd");
        let mut idle = Vec::new();
        for _ in 0..600 {
            let s = TcpStream::connect_timeout(
                &server.endpoint.parse().unwrap(),
                Duration::from_secs(2),
            );
            if let Ok(s) = s {
                idle.push(s);
            }
        }
        let client = RtmServerClient::new(PID, SECRET, server.endpoint.clone()).unwrap();
        let client = client.with_timeout(Duration::from_secs(5));
        let served = AtomicUsize::new(0);
        for uid in 0..5 {
            if client.get_token(uid).is_ok() {
                served.fetch_add(1, Ordering::SeqCst);
            }
        }
        assert_eq!(served.load(Ordering::SeqCst), 5);
        assert!(server.fds() < 256, "{} descriptors", server.fds());
    });
}

// --- what the log says -------------------------------------------------------------

/// Keeps every log record's level and text.
struct Capture(std::sync::Mutex<Vec<(log::Level, String)>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        if let Ok(mut v) = self.0.lock() {
            v.push((record.level(), record.args().to_string()));
        }
    }
    fn flush(&self) {}
}

static CAPTURE: Capture = Capture(std::sync::Mutex::new(Vec::new()));

fn captured(needle: &str) -> Vec<(log::Level, String)> {
    CAPTURE
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, m)| m.contains(needle))
        .cloned()
        .collect()
}

#[test]
fn an_encrypted_handshake_without_a_key_is_logged_as_a_warning() {
    watchdog(Duration::from_secs(30), || {
        if log::set_logger(&CAPTURE).is_ok() {
            log::set_max_level(log::LevelFilter::Debug);
        }
        let server = FpnnServer::start(ok_service(), ServerOptions::new()).unwrap();
        let mut s = connect(&server.endpoint());
        s.write_all(&frame("*key", &bin_payload(65))).unwrap();
        assert!(read_answer(&mut s), "answered (with an error)");
        let warned = captured("encrypted connection (`*key`), but");
        assert!(
            warned.iter().any(|(level, _)| *level == log::Level::Warn),
            "{warned:?}"
        );
    });
}
