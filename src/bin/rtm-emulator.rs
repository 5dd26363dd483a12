//! `rtm-emulator`: the crate's RTM emulator as a standalone RTM gateway on
//! this machine, for testing any RTM server client (Go, Python, Java, C++,
//! Rust...) without the RTM service. Run `rtm-emulator --help`.
//!
//! Built with the crate's `cli` feature (the emulator plus the command
//! line): `cargo run --features cli --bin rtm-emulator -- --help`, or
//! `cargo install --path . --features cli --bin rtm-emulator`.

use std::io::Write as _;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{ArgAction, Parser, ValueEnum};
use log::{LevelFilter, Log, Metadata, Record};
use rand_core::{OsRng, RngCore};
use rtm_server_sdk::emulator::keys::{generate_key_pair, parse_private_key};
use rtm_server_sdk::emulator::persist::StateFile;
use rtm_server_sdk::emulator::rtm::{implemented_methods, DEFAULT_REMEMBERED_SIGNS};
use rtm_server_sdk::emulator::server::{
    raise_fd_limit, DEFAULT_FRAME_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
};
use rtm_server_sdk::emulator::{
    ConnEvent, EmulatorOptions, EmulatorStats, PushQueueLimits, QuestOutcome, QuestRecord,
    RtmEmulator, ServerOptions, DEFAULT_PUSH_QUEUE_PUSHES,
};
use rtm_server_sdk::fpnn::crypto::{CipherMode, Curve, KeyBits};

const ABOUT: &str = "A local RTM gateway for testing any RTM server client, in any language.";

const LONG_ABOUT: &str = "\
A local RTM gateway for testing any RTM server client, in any language.

It speaks the RTM Server-End API over FPNN like the real gateway: it checks
every quest's signature (pid, salt, ts, sign) against --pid and --secret,
keeps users, groups, rooms, messages and files in memory, answers the
gateway's error codes, and pushes messages to the connections that listen.
Point a client at the endpoint it prints, with the same pid and secret.

At start it prints `endpoint: HOST:PORT`, `pid: N`, `secret: ...` (only
when it made one up) and `file gate: ...` on standard output, then logs
each connection and each quest on standard error: the connection, the
method, a summary of the parameters, the answer's code and the time taken
(-q for less, -v for more). A client the emulator disconnects (a bad frame,
a refused encryption handshake) is a warning that says why. Ctrl-C or SIGTERM stops it cleanly (saving --state first).

It accepts what every official SDK sends: FPNN header version 0 or 1
(echoed in its answers), any msgpack integer width (fixint, uint8..uint64,
int8..int64), map keys in any order, text as str or bin.

Build it with the crate's `cli` feature:
  cargo install --path . --features cli --bin rtm-emulator";

const AFTER_LONG_HELP: &str = "\
Examples:
  # Plain, on the default endpoint 127.0.0.1:13315, with a known secret:
  rtm-emulator --pid 11000001 --secret my-secret

  # Encrypted: make a key pair once, give the public half to the clients:
  rtm-emulator --generate-key keys/
  rtm-emulator --secret my-secret --ecc-private-key keys/server-private.pem

  # Keep the data across restarts; a free port, printed at start:
  rtm-emulator --secret my-secret --state rtm-state.json --listen 127.0.0.1:0

  # Resilience tests: slow answers, failures, dropped connections:
  rtm-emulator --secret s --delay sendmsg=2000 --fail gettoken=200010 --drop-after 5

  # A log line of counters every 10 s:
  rtm-emulator --secret s --stats-every 10

Limits (every peer is bounded; a flag changes a default):
  limit                                          default         flag
  connections open at once, on each port         1024            --max-connections
    (at the limit, the oldest that never sent a signed quest makes room)
  descriptors (raised to the hard limit at start) soft limit - 64
  silence before any signed quest                60 s            --idle-timeout
  silence after a signed quest                   never           --authenticated-idle-timeout
  a frame not complete after its first byte      30 s            --frame-timeout
  payload of one quest                           8 MiB           (fixed)
  bytes buffered by unsigned connections, all    64 MiB          --unauthenticated-buffer
  signatures remembered against replays          500000          --remembered-signs
    (when full, quests older than the oldest remembered are refused)
  invalid file tokens on one file-gate connection 3 (then closed) (fixed)
  pushes waiting for one connection              10000           --max-queued-pushes
  bytes of pushes waiting for one connection     16 MiB          --max-queued-push-bytes
  a write to a client that stopped reading       10 s            (fixed)
  Pushes are written without waiting for the answers; a listener that
  stops reading falls behind, and when its push queue would go over a
  limit it is disconnected and logged as a warning.";

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CurveArg {
    /// secp256k1, the curve RTM servers normally use.
    Secp256k1,
    /// secp256r1 (NIST P-256, prime256v1).
    Secp256r1,
}

impl From<CurveArg> for Curve {
    fn from(c: CurveArg) -> Curve {
        match c {
            CurveArg::Secp256k1 => Curve::Secp256k1,
            CurveArg::Secp256r1 => Curve::Secp256r1,
        }
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "rtm-emulator",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_long_help = AFTER_LONG_HELP,
    max_term_width = 100
)]
struct Args {
    /// The project id the clients sign with.
    #[arg(long, default_value_t = 11000001, help_heading = "Project")]
    pid: i64,

    /// The project's secret key the clients sign with (not empty).
    /// Default: a random one, printed at start.
    #[arg(long, value_name = "KEY", value_parser = parse_secret, help_heading = "Project")]
    secret: Option<String>,

    /// The address to listen on. Port 0 picks a free port (the `endpoint:`
    /// line says which); 0.0.0.0 serves other machines too. The file gate
    /// listens on a free port of the same IP; `filetoken` tells each client
    /// the IP it came in on.
    #[arg(
        long,
        value_name = "HOST:PORT",
        default_value = "127.0.0.1:13315",
        help_heading = "Project"
    )]
    listen: String,

    /// Accepts encrypted connections (the `*key` handshake, package and
    /// stream mode, AES-128 and AES-256) with this ECC private key: a PEM
    /// (`EC PRIVATE KEY` or `PRIVATE KEY`, secp256k1 or secp256r1) or the
    /// raw 32-byte key (binary or 64 hex digits; its curve is --ecc-curve).
    /// Clients then need the matching public key (see --generate-key).
    /// Clients that do not start with `*key` are served unencrypted, as by
    /// the gateway, unless --encrypted-only.
    #[arg(long, value_name = "FILE", help_heading = "Encryption")]
    ecc_private_key: Option<PathBuf>,

    /// With --ecc-private-key: disconnects every client that does not
    /// start with the `*key` handshake (to check that your client really
    /// encrypts).
    #[arg(long, requires = "ecc_private_key", help_heading = "Encryption")]
    encrypted_only: bool,

    /// The curve of a raw --ecc-private-key, and of the key pair made by
    /// --generate-key. Default: secp256k1 (a PEM key names its own curve).
    #[arg(long, value_enum, value_name = "CURVE", help_heading = "Encryption")]
    ecc_curve: Option<CurveArg>,

    /// Writes a new key pair into DIR (created if missing) and exits:
    /// `server-private.pem` for --ecc-private-key and `server-public.pem`
    /// (a `PUBLIC KEY` PEM) for the clients. Existing files are not
    /// overwritten.
    #[arg(long, value_name = "DIR", help_heading = "Encryption")]
    generate_key: Option<PathBuf>,

    /// Loads the emulator's state (users, tokens, relations, groups, rooms,
    /// messages, files...) from FILE at start, if it exists, and saves it
    /// there (as JSON) every --save-every seconds and when stopped with
    /// Ctrl-C or SIGTERM. A file of another --pid is refused, and so is a
    /// file another emulator holds (its pid is named). A failed save is
    /// retried twice (100 ms, then 200 ms later) and logged.
    #[arg(long, value_name = "FILE", help_heading = "State")]
    state: Option<PathBuf>,

    /// How often --state is saved, in seconds; 0: only when stopped.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 30,
        help_heading = "State"
    )]
    save_every: u64,

    /// How far a quest's `ts` may be from this machine's clock, in seconds,
    /// before the answer is error 200008 (RTM_EC_INVALID_SERVER_TIME); 0:
    /// `ts` is not checked.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 3600,
        help_heading = "Checks"
    )]
    max_clock_skew: u64,

    /// Delays the answers to METHOD by MS milliseconds (`*=MS`: every
    /// method; a method's own delay wins). Repeatable. Other quests and
    /// other connections are answered meanwhile.
    #[arg(long, value_name = "METHOD=MS", value_parser = parse_delay, help_heading = "Faults")]
    delay: Vec<(String, u64)>,

    /// Closes each connection when it sends its (N+1)-th RTM quest, without
    /// answering it: every connection gets N answers, then loses its
    /// connection with a quest in flight. 0: off (the default).
    #[arg(long, value_name = "N", default_value_t = 0, help_heading = "Faults")]
    drop_after: u64,

    /// Accepts every connection and closes it at once, so that clients
    /// cannot connect.
    #[arg(long, help_heading = "Faults")]
    refuse_connections: bool,

    /// Answers METHOD with error CODE (`*=CODE`: every method) instead of
    /// running it, once the quest passed the signature check. Repeatable.
    #[arg(long, value_name = "METHOD=CODE", value_parser = parse_fail, help_heading = "Faults")]
    fail: Vec<(String, i64)>,

    /// The most connections open at once (the RTM port and the file gate
    /// each). At the limit, the oldest connection that never sent a signed
    /// quest is closed to make room (logged); when every one has, the
    /// newcomer is closed.
    #[arg(
        long,
        value_name = "N",
        default_value_t = DEFAULT_MAX_CONNECTIONS,
        value_parser = parse_limit,
        help_heading = "Limits"
    )]
    max_connections: usize,

    /// A connection that never sent a signed quest is closed after this
    /// many seconds without a complete frame; 0: never.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = DEFAULT_IDLE_TIMEOUT.as_secs(),
        help_heading = "Limits"
    )]
    idle_timeout: u64,

    /// A connection that has sent a signed quest is closed after this many
    /// seconds without a complete frame; 0 (the default): never (clients
    /// keep their connections between tests).
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 0,
        help_heading = "Limits"
    )]
    authenticated_idle_timeout: u64,

    /// A frame must be complete this many seconds after its first byte, or
    /// the connection is closed (a peer that stops half way, or trickles);
    /// 0: never.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = DEFAULT_FRAME_TIMEOUT.as_secs(),
        help_heading = "Limits"
    )]
    frame_timeout: u64,

    /// The bytes all connections that never sent a signed quest may hold in
    /// their read buffers together (a number, or with a KiB, MiB or GiB
    /// suffix); past it, the oldest of them holding bytes are closed.
    #[arg(
        long,
        value_name = "BYTES",
        default_value = "64MiB",
        value_parser = parse_bytes,
        help_heading = "Limits"
    )]
    unauthenticated_buffer: usize,

    /// How many signatures the replay memory holds (about 56 bytes each).
    /// When it is full, the one with the oldest `ts` is forgotten for each
    /// new one, and every quest with a `ts` at or below it is refused with
    /// 200006 (RTM_EC_SAME_SIGN): no captured quest can be replayed.
    #[arg(
        long,
        value_name = "N",
        default_value_t = DEFAULT_REMEMBERED_SIGNS,
        value_parser = parse_limit,
        help_heading = "Limits"
    )]
    remembered_signs: usize,

    /// The most pushes waiting for one connection: a listener whose queue
    /// would go over it is disconnected (logged as a warning).
    #[arg(
        long,
        value_name = "N",
        default_value_t = DEFAULT_PUSH_QUEUE_PUSHES,
        value_parser = parse_limit,
        help_heading = "Limits"
    )]
    max_queued_pushes: usize,

    /// The most bytes of pushes waiting for one connection (the memory
    /// their payloads hold; a number of bytes, or with a KiB, MiB or GiB
    /// suffix): a listener whose queue would go over it is disconnected.
    #[arg(
        long,
        value_name = "BYTES",
        default_value = "16MiB",
        value_parser = parse_bytes,
        help_heading = "Limits"
    )]
    max_queued_push_bytes: usize,

    /// Logs a line of counters every SECONDS: the quests of the interval
    /// by method, their answers by code, the connections open, the pushes
    /// and bytes waiting in push queues, the listeners dropped. 0: off.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 0,
        help_heading = "Output"
    )]
    stats_every: u64,

    /// More log: -v adds the emulator's debug lines (handshakes, why a
    /// quest failed), -vv everything.
    #[arg(short, long, action = ArgAction::Count, conflicts_with = "quiet", help_heading = "Output")]
    verbose: u8,

    /// Less log: -q only warnings (no line per quest or connection), -qq
    /// only errors, -qqq nothing.
    #[arg(short, long, action = ArgAction::Count, help_heading = "Output")]
    quiet: u8,
}

fn split_pair(s: &str) -> Result<(&str, &str), String> {
    let (method, value) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not METHOD=VALUE"))?;
    if method.is_empty() {
        return Err(format!("`{s}` has no method (use `*` for every method)"));
    }
    Ok((method, value))
}

/// `method` when the emulator implements it (or `*`); otherwise an error
/// naming it (and the method of that name in another case, if any).
fn known_method(method: &str) -> Result<String, String> {
    let methods = implemented_methods();
    if method == "*" || methods.contains(&method) {
        return Ok(method.to_string());
    }
    let hint = match methods.iter().find(|m| m.eq_ignore_ascii_case(method)) {
        Some(m) => format!(" (did you mean `{m}`? method names are case-sensitive)"),
        None => " (`*` for every method; the emulator implements the RTM server \
                 methods, e.g. `sendmsg`, `gettoken`, `getVoiceRoomList`)"
            .to_string(),
    };
    Err(format!("the emulator has no method `{method}`{hint}"))
}

fn parse_secret(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("the secret must not be empty (leave --secret out for a random one)".into());
    }
    Ok(s.to_string())
}

fn parse_limit(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("a limit must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{s}` is not a number")),
    }
}

/// A number of bytes, with an optional KiB/MiB/GiB (or K/M/G) suffix.
fn parse_bytes(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" | "kb" => 10,
        "m" | "mib" | "mb" => 20,
        "g" | "gib" | "gb" => 30,
        _ => {
            return Err(format!(
                "`{s}` is not a number of bytes (e.g. 1048576, 512KiB, 16MiB)"
            ))
        }
    };
    let n: usize = number
        .parse()
        .map_err(|_| format!("`{s}` is not a number of bytes (e.g. 1048576, 512KiB, 16MiB)"))?;
    let n = n
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("`{s}` is too large"))?;
    if n == 0 {
        return Err("a limit must be at least 1 byte".into());
    }
    Ok(n)
}

fn parse_delay(s: &str) -> Result<(String, u64), String> {
    let (method, ms) = split_pair(s)?;
    let method = known_method(method)?;
    let ms = ms
        .parse()
        .map_err(|_| format!("`{ms}` is not a number of milliseconds"))?;
    Ok((method, ms))
}

fn parse_fail(s: &str) -> Result<(String, i64), String> {
    let (method, code) = split_pair(s)?;
    let method = known_method(method)?;
    let code = code
        .parse()
        .map_err(|_| format!("`{code}` is not an error code"))?;
    Ok((method, code))
}

// ---------------------------------------------------------------------------
// Logging
// ---------------------------------------------------------------------------

/// Log lines on standard error: `HH:MM:SS.mmm LEVEL message` (UTC).
struct StderrLogger;

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let day_ms = now.as_millis() % 86_400_000;
        let (h, m, s, ms) = (
            day_ms / 3_600_000,
            day_ms / 60_000 % 60,
            day_ms / 1000 % 60,
            day_ms % 1000,
        );
        let mut err = std::io::stderr().lock();
        let _ = writeln!(
            err,
            "{h:02}:{m:02}:{s:02}.{ms:03} {:<5} {}",
            record.level(),
            record.args()
        );
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

fn level(args: &Args) -> LevelFilter {
    match (args.verbose, args.quiet) {
        (0, 0) => LevelFilter::Info,
        (1, _) => LevelFilter::Debug,
        (_, 0) => LevelFilter::Trace,
        (_, 1) => LevelFilter::Warn,
        (_, 2) => LevelFilter::Error,
        _ => LevelFilter::Off,
    }
}

/// The log line of one quest.
fn log_quest(r: &QuestRecord) {
    let answer = match &r.outcome {
        QuestOutcome::Ok => "0 ok".to_string(),
        QuestOutcome::Error { code, message } => format!("{code} {message}"),
        QuestOutcome::Closed => "closed, not answered (--drop-after)".to_string(),
        other => format!("{other:?}"),
    };
    let took = r.elapsed.as_secs_f64() * 1000.0;
    let delay = if r.delay.is_zero() {
        String::new()
    } else {
        format!(" + {} ms delay", r.delay.as_millis())
    };
    log::info!(
        "{}conn {}: {} {{{}}} -> {answer} ({took:.2} ms{delay})",
        if r.file_gate { "file gate " } else { "" },
        r.conn_id,
        r.method,
        r.params
    );
}

/// The log line of a connection opening or closing; a connection the
/// emulator closed because of the client (a bad frame, a refused
/// handshake) is a warning.
fn log_connection(e: &ConnEvent) {
    match e {
        ConnEvent::Opened { conn_id, peer } => {
            log::info!("conn {conn_id}: connected from {peer}");
        }
        ConnEvent::Encrypted {
            conn_id,
            mode,
            bits,
            ..
        } => {
            let mode = match mode {
                CipherMode::Stream => "stream",
                _ => "package",
            };
            let bits = match bits {
                KeyBits::Aes128 => 128,
                _ => 256,
            };
            log::info!("conn {conn_id}: encrypted ({mode} mode, AES-{bits})");
        }
        ConnEvent::Closed {
            conn_id, reason, ..
        } => match reason.as_deref() {
            None => log::info!("conn {conn_id}: closed by the client"),
            Some("closed by the server") => log::info!("conn {conn_id}: closed by the emulator"),
            Some(why) => log::warn!("conn {conn_id}: closed by the emulator: {why}"),
        },
        other => log::info!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------

/// A periodic task: due every `every`, if any.
struct Tick {
    every: Option<Duration>,
    next: Instant,
}

impl Tick {
    fn new(every: Option<Duration>) -> Tick {
        Tick {
            every,
            next: Instant::now() + every.unwrap_or_default(),
        }
    }

    /// The time left until it is due (`None`: never).
    fn left(&self) -> Option<Duration> {
        self.every
            .map(|_| self.next.saturating_duration_since(Instant::now()))
    }

    /// Whether it is due now; if so, the next time is set.
    fn due(&mut self) -> bool {
        match self.every {
            Some(every) if Instant::now() >= self.next => {
                self.next = Instant::now() + every;
                true
            }
            _ => false,
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    log::set_max_level(level(&args));
    let _ = log::set_logger(&StderrLogger);
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rtm-emulator: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A random secret in the usual RTM form (8-4-4-4-12 hex digits).
fn random_secret() -> String {
    let mut b = [0u8; 16];
    OsRng.fill_bytes(&mut b);
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn resolve(listen: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = listen.parse() {
        return Ok(addr);
    }
    listen
        .to_socket_addrs()
        .map_err(|e| format!("--listen {listen}: {e}"))?
        .next()
        .ok_or_else(|| format!("--listen {listen}: no address"))
}

fn generate_keys(dir: &Path, curve: Curve) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let private = dir.join("server-private.pem");
    let public = dir.join("server-public.pem");
    for p in [&private, &public] {
        if p.exists() {
            return Err(format!(
                "{} exists: not overwritten (remove it or choose another directory)",
                p.display()
            ));
        }
    }
    let pair = generate_key_pair(curve);
    write_private(&private, &pair.private_pem)
        .map_err(|e| format!("cannot write {}: {e}", private.display()))?;
    std::fs::write(&public, &pair.public_pem)
        .map_err(|e| format!("cannot write {}: {e}", public.display()))?;
    println!("curve: {curve}");
    println!("private key: {}", private.display());
    println!("public key: {}", public.display());
    println!(
        "Start the emulator with --ecc-private-key {} and give {} to the clients.",
        private.display(),
        public.display()
    );
    Ok(())
}

/// Writes a private key readable by its owner only (on Unix).
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(text.as_bytes())
}

fn run(args: Args) -> Result<(), String> {
    if let Some(dir) = &args.generate_key {
        let curve = args.ecc_curve.map_or(Curve::Secp256k1, Curve::from);
        return generate_keys(dir, curve);
    }
    let addr = resolve(&args.listen)?;
    let (secret, generated) = match &args.secret {
        Some(s) => (s.clone(), false),
        None => (random_secret(), true),
    };

    let seconds = |s: u64| (s > 0).then(|| Duration::from_secs(s));
    let mut server = ServerOptions::new()
        .addr(addr)
        .max_connections(args.max_connections)
        .idle_timeout(seconds(args.idle_timeout))
        .authenticated_idle_timeout(seconds(args.authenticated_idle_timeout))
        .frame_timeout(seconds(args.frame_timeout))
        .unauthenticated_buffer(args.unauthenticated_buffer)
        // Nothing reads the test log of received quests in the program.
        .received_log(0, 0);
    // One descriptor a connection: the soft limit up to the hard one, as
    // servers do at start.
    let descriptors = match raise_fd_limit() {
        Ok(u64::MAX) => "no limit".to_string(),
        Ok(n) => format!("{n} descriptors"),
        Err(e) => {
            log::warn!("cannot raise the descriptor limit: {e}");
            "descriptor limit unchanged".to_string()
        }
    };
    let mut encryption = "off".to_string();
    if let Some(path) = &args.ecc_private_key {
        let bytes = std::fs::read(path)
            .map_err(|e| format!("--ecc-private-key {}: {e}", path.display()))?;
        let key = parse_private_key(&bytes, args.ecc_curve.map(Curve::from))
            .map_err(|e| format!("--ecc-private-key {}: {e}", path.display()))?;
        encryption = format!(
            "{} key from {} (package and stream mode, AES-128 and AES-256; {})",
            key.public_key().curve(),
            path.display(),
            if args.encrypted_only {
                "plain clients disconnected"
            } else {
                "plain clients served too"
            }
        );
        server = server.encryption(key).allow_plain(!args.encrypted_only);
    }

    let push_limits = PushQueueLimits::new(args.max_queued_pushes, args.max_queued_push_bytes);
    let mut options = EmulatorOptions::new()
        .server(server)
        .push_queue(push_limits)
        .remembered_signs(args.remembered_signs);
    options.observer = Some(Arc::new(log_quest));
    options.connection_observer = Some(Arc::new(log_connection));
    if args.max_clock_skew > 0 {
        options = options.max_clock_skew(Duration::from_secs(args.max_clock_skew));
    }
    let mut state_line = "memory only (no --state)".to_string();
    let mut state_file = None;
    if let Some(path) = &args.state {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if !dir.is_dir() {
            return Err(format!(
                "--state {}: the directory {} does not exist",
                path.display(),
                dir.display()
            ));
        }
        // One emulator per file: a second one is refused here.
        let file = StateFile::lock(path).map_err(|e| format!("--state {}: {e}", path.display()))?;
        match file.read() {
            Ok(Some(json)) => {
                options = options.state_json(json);
                state_line = format!("{} (loaded)", path.display());
            }
            Ok(None) => state_line = format!("{} (new)", path.display()),
            Err(e) => return Err(format!("--state {}: {e}", path.display())),
        }
        state_file = Some(file);
        state_line.push_str(&if args.save_every > 0 {
            format!(", saved every {} s and when stopped", args.save_every)
        } else {
            ", saved when stopped".to_string()
        });
    }
    let mut faults = Vec::new();
    for (method, ms) in &args.delay {
        options.faults.set_delay(method, Duration::from_millis(*ms));
        faults.push(format!("--delay {method}={ms}"));
    }
    for (method, code) in &args.fail {
        options.faults.set_fail(method, *code);
        faults.push(format!("--fail {method}={code}"));
    }
    if args.drop_after > 0 {
        options.faults.set_drop_after(args.drop_after);
        faults.push(format!("--drop-after {}", args.drop_after));
    }

    let mut emu = RtmEmulator::start_with_options(args.pid, &secret, options).map_err(|e| {
        if e.kind() == std::io::ErrorKind::InvalidData {
            format!("--state: {e}")
        } else {
            format!("cannot listen on {addr}: {e}")
        }
    })?;
    if args.refuse_connections {
        emu.server().faults().set_refuse(true);
        faults.push("--refuse-connections".into());
    }

    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    ctrlc::set_handler(move || {
        let _ = stop_tx.send(());
    })
    .map_err(|e| format!("cannot handle Ctrl-C: {e}"))?;

    println!("rtm-emulator {}", env!("CARGO_PKG_VERSION"));
    println!("endpoint: {}", emu.endpoint());
    println!("pid: {}", args.pid);
    if generated {
        println!("secret: {secret}");
    }
    println!("file gate: {}", emu.file_gate_endpoint());
    println!("encryption: {encryption}");
    println!("state: {state_line}");
    println!(
        "ts check: {}",
        match emu.max_clock_skew() {
            Some(d) => format!("within {} s of this clock", d.as_secs()),
            None => "off".into(),
        }
    );
    let or_never = |s: u64| {
        if s == 0 {
            "never".to_string()
        } else {
            format!("{s} s")
        }
    };
    println!(
        "limits: {} connections ({descriptors}); idle {} (unsigned), {} (signed); \
         half a frame {}; {} signatures remembered; \
         {} pushes or {} bytes waiting per connection",
        args.max_connections,
        or_never(args.idle_timeout),
        or_never(args.authenticated_idle_timeout),
        or_never(args.frame_timeout),
        args.remembered_signs,
        push_limits.max_pushes,
        push_limits.max_bytes
    );
    println!(
        "faults: {}",
        if faults.is_empty() {
            "none".to_string()
        } else {
            faults.join(" ")
        }
    );
    println!("ready (Ctrl-C stops)");
    let _ = std::io::stdout().flush();

    // Saves the state (when --state is given); false when that failed.
    // A failed save is retried (`StateFile::save`), then logged; the next
    // tick tries again.
    let save = |emu: &RtmEmulator| match &state_file {
        Some(file) => match file.save(emu) {
            Ok(()) => {
                log::debug!("state saved to {}", file.path().display());
                true
            }
            Err(e) => {
                log::error!("cannot save the state to {}: {e}", file.path().display());
                false
            }
        },
        None => true,
    };
    let every = |secs: u64, on: bool| (on && secs > 0).then(|| Duration::from_secs(secs));
    let mut save_tick = Tick::new(every(args.save_every, args.state.is_some()));
    let mut stats_tick = Tick::new(every(args.stats_every, true));
    let mut last_stats = EmulatorStats::default();
    // Until Ctrl-C or SIGTERM, saving and logging the counters on time.
    loop {
        let wait = [save_tick.left(), stats_tick.left()]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(Duration::from_secs(3600));
        match stop_rx.recv_timeout(wait) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            _ => break,
        }
        if save_tick.due() {
            let _ = save(&emu);
        }
        if stats_tick.due() {
            let stats = emu.stats();
            log::info!(
                "stats (last {} s): {}",
                args.stats_every,
                stats.since(&last_stats)
            );
            last_stats = stats;
        }
    }
    log::info!("stopping");
    // Stopping first: no quest changes the state after the last save.
    emu.stop();
    if !save(&emu) {
        return Err("stopped, but the state could not be saved (see above)".into());
    }
    if let Some(path) = &args.state {
        println!("state saved to {}", path.display());
    }
    println!("stopped");
    Ok(())
}
