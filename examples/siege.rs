//! Measures how the emulator holds up against peers that never sign
//! anything: each attack runs against a fresh emulator in a child process,
//! and the child's memory (`VmRSS`, `VmHWM` from `/proc/PID/status`) and
//! open descriptors are printed before and after. Linux only.
//!
//! ```text
//! cargo run --release --example siege              # every attack
//! cargo run --release --example siege -- big-quests  # one of them
//! ```
//!
//! Attacks: `big-quests` (200 unsigned 8 MiB quests on one connection),
//! `huge-maps` (4 connections, each one unsigned 7.8 MB quest whose payload
//! is a map of 3,900,000 `""→nil` pairs), `stalled` (50 connections each
//! stalled inside a 7.9 MiB frame), `idle` (2,000 idle sockets under a soft
//! descriptor limit of 1,024, then a signed call).
//!
//! `pipeline` is no attack: signed `getVoiceRoomMemberCount` quests
//! pipelined 10,000 deep from one connection, for `SIEGE_SECONDS` (default
//! 5); it prints the server's pid first (for `perf record -p`) and the rate.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rmpv::Value;
use rtm_server_sdk::emulator::RtmEmulator;
use rtm_server_sdk::fpnn::codec::encode_quest;
use rtm_server_sdk::RtmServerClient;

const PID: i64 = 11000001;
const SECRET: &str = "siege-secret";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--serve") {
        serve(args.get(2).map(String::as_str) == Some("low-fd"));
    }
    let which = args.get(1).cloned();
    if which.as_deref() == Some("pipeline") {
        let server = Server::start(false);
        pipeline(&server);
        return;
    }
    let attacks: [(&str, Attack); 4] = [
        ("big-quests", big_quests),
        ("huge-maps", huge_maps),
        ("stalled", stalled),
        ("idle", idle),
    ];
    for (name, attack) in attacks {
        if which.as_deref().is_some_and(|w| w != name) {
            continue;
        }
        let server = Server::start(name == "idle");
        let before = server.status();
        let t = Instant::now();
        attack(&server);
        let after = server.status();
        println!(
            "{name:<11} before: {before}\n{:<11} after:  {after}  ({:.1} s)",
            "",
            t.elapsed().as_secs_f64()
        );
    }
}

/// The child: an emulator with the library's defaults, its port on stdout,
/// serving until stdin closes.
fn serve(low_fd: bool) -> ! {
    if low_fd {
        set_soft_fd_limit(1024);
    }
    raise_fd_limit();
    let emu = RtmEmulator::start(PID, SECRET).expect("start the emulator");
    println!("{}", emu.local_addr().port());
    let _ = std::io::stdout().flush();
    let mut sink = [0u8; 64];
    let mut stdin = std::io::stdin();
    while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
    std::process::exit(0);
}

/// What the `rtm-emulator` program does at start.
fn raise_fd_limit() {
    let _ = rtm_server_sdk::emulator::raise_fd_limit();
}

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

/// One attack against a fresh server.
type Attack = fn(&Server);

struct Server {
    child: Child,
    endpoint: String,
}

impl Server {
    fn start(low_fd: bool) -> Server {
        let exe = std::env::current_exe().expect("own path");
        // SIEGE_WRAP runs the server under a tool (e.g. "valgrind
        // --tool=callgrind"): its words come before the server's command.
        let wrap = std::env::var("SIEGE_WRAP").unwrap_or_default();
        let mut words = wrap.split_whitespace();
        let mut command = match words.next() {
            Some(tool) => {
                let mut c = Command::new(tool);
                c.args(words).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        let mut child = command
            .arg("--serve")
            .arg(if low_fd { "low-fd" } else { "default" })
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the server's port");
        let port: u16 = line.trim().parse().expect("a port");
        Server {
            child,
            endpoint: format!("127.0.0.1:{port}"),
        }
    }

    fn status(&self) -> String {
        let pid = self.child.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
                .map_or("?".to_string(), |kb| {
                    format!("{:.1} MB", kb as f64 / 1024.0)
                })
        };
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
        let threads = status
            .lines()
            .find(|l| l.starts_with("Threads:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("?")
            .to_string();
        format!(
            "VmRSS {} VmHWM {} fds {fds} threads {threads}",
            field("VmRSS:"),
            field("VmHWM:")
        )
    }

    /// utime + stime of the server, in clock ticks.
    fn cpu_ticks(&self) -> u64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        let rest = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |i: usize| fields.get(i - 3).and_then(|f| f.parse::<u64>().ok());
        field(14).unwrap_or(0) + field(15).unwrap_or(0)
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(&self.endpoint).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Closing stdin ends the server (so that a tool wrapping it can
        // write its report); killed if it takes more than 10 s.
        drop(self.child.stdin.take());
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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

/// Reads one answer frame (or fails after 30 s).
fn read_answer(s: &mut TcpStream) -> bool {
    let mut header = [0u8; 16];
    if s.read_exact(&mut header).is_err() {
        return false;
    }
    let len = u32::from_le_bytes(header[8..12].try_into().unwrap()) as usize;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).is_ok()
}

fn big_quests(server: &Server) {
    let mut payload = Vec::new();
    encode_map_with_bin(&mut payload, 8 * 1024 * 1024 - 64);
    let f = frame("nosuchmethod", &payload);
    let mut s = server.connect();
    let mut answered = 0;
    for _ in 0..200 {
        if s.write_all(&f).is_err() || !read_answer(&mut s) {
            break;
        }
        answered += 1;
    }
    println!("big-quests: {answered} of 200 answered");
    drop(s);
    std::thread::sleep(Duration::from_millis(500));
}

fn encode_map_with_bin(out: &mut Vec<u8>, len: usize) {
    let v = Value::Map(vec![(Value::from("data"), Value::Binary(vec![7u8; len]))]);
    let mut q = Vec::new();
    encode_quest(&mut q, Some(1), "x", &v).expect("encode");
    // The payload is what follows the 12-byte header, the seq and "x".
    out.extend_from_slice(&q[12 + 4 + 1..]);
}

fn huge_maps(server: &Server) {
    let pairs: u32 = 3_900_000;
    let mut payload = vec![0xdf];
    payload.extend_from_slice(&pairs.to_be_bytes());
    for _ in 0..pairs {
        payload.extend_from_slice(&[0xa0, 0xc0]);
    }
    let f = frame("nosuchmethod", &payload);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let f = f.clone();
            let mut s = server.connect();
            std::thread::spawn(move || s.write_all(&f).is_ok() && read_answer(&mut s))
        })
        .collect();
    let answered = threads
        .into_iter()
        .filter(|_| true)
        .map(|t| t.join().unwrap_or(false))
        .filter(|a| *a)
        .count();
    println!("huge-maps: {answered} of 4 answered");
}

fn stalled(server: &Server) {
    let mut payload = Vec::new();
    encode_map_with_bin(&mut payload, 7_900 * 1024);
    let f = frame("nosuchmethod", &payload);
    let part = &f[..f.len() - 1000];
    let socks: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut s = server.connect();
            s.write_all(part).expect("write");
            s
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    println!(
        "stalled: 50 connections hold {} MB",
        (part.len() * 50) >> 20
    );
    // Held while `after` is measured.
    std::mem::forget(socks);
}

fn idle(server: &Server) {
    set_soft_fd_limit(65_536);
    let mut socks = Vec::new();
    let mut refused = 0;
    for _ in 0..2000 {
        match TcpStream::connect_timeout(
            &server.endpoint.parse().unwrap(),
            Duration::from_millis(500),
        ) {
            Ok(s) => socks.push(s),
            Err(_) => refused += 1,
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let client = RtmServerClient::new(PID, SECRET, server.endpoint.clone()).expect("client");
    let client = client.with_timeout(Duration::from_secs(5));
    let t = Instant::now();
    let result = client.get_token(1);
    println!(
        "idle: {} sockets opened ({refused} failed); a signed call: {} in {:.2} s",
        socks.len(),
        match &result {
            Ok(_) => "served".to_string(),
            Err(e) => format!("failed ({e})"),
        },
        t.elapsed().as_secs_f64()
    );
    std::mem::forget(socks);
}

fn pipeline(server: &Server) {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;

    struct Pump {
        client: RtmServerClient,
        done: AtomicU64,
        stop: AtomicBool,
    }
    fn issue(p: Arc<Pump>) {
        let again = p.clone();
        p.client
            .get_voice_room_member_count_with_callback(1, move |_| {
                again.done.fetch_add(1, Ordering::Relaxed);
                if !again.stop.load(Ordering::Relaxed) {
                    issue(again.clone());
                }
            });
    }
    let secs: u64 = std::env::var("SIEGE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    println!("server pid {}", server.child.id());
    let pump = Arc::new(Pump {
        client: RtmServerClient::new(PID, SECRET, server.endpoint.clone()).expect("client"),
        done: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    pump.client
        .pull_into_voice_room(1, &[1])
        .expect("a room to count");
    for _ in 0..10_000 {
        issue(pump.clone());
    }
    std::thread::sleep(Duration::from_secs(1));
    let start = pump.done.load(Ordering::Relaxed);
    let cpu = server.cpu_ticks();
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let n = pump.done.load(Ordering::Relaxed) - start;
    let cpu = server.cpu_ticks() - cpu;
    pump.stop.store(true, Ordering::Relaxed);
    // Clock ticks are 10 ms (CLK_TCK 100 on Linux).
    println!(
        "pipelined 10000 in flight: {:.0} calls/s, server CPU {:.2} us/call",
        n as f64 / t.elapsed().as_secs_f64(),
        cpu as f64 * 10_000.0 / n.max(1) as f64
    );
    // Until the calls in flight are answered (slowly under a tool).
    let mut last = u64::MAX;
    let drain = Instant::now();
    while pump.done.load(Ordering::Relaxed) != last && drain.elapsed() < Duration::from_secs(60) {
        last = pump.done.load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(500));
    }
    // Every answered call, the room pull included (for instruction counts
    // per quest over the server's whole life).
    println!("answered in all: {}", pump.done.load(Ordering::Relaxed) + 1);
}
