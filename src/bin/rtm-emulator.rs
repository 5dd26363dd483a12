//! `rtm-emulator`: the crate's RTM emulator as a standalone RTM gateway on
//! this machine, for testing any RTM server client (Go, Python, Java, C++,
//! Rust...) without the RTM service. Run `rtm-emulator --help`.

use std::io::Write as _;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{ArgAction, Parser, ValueEnum};
use log::{LevelFilter, Log, Metadata, Record};
use rand_core::{OsRng, RngCore};
use rtm_server_sdk::emulator::keys::{generate_key_pair, read_private_key};
use rtm_server_sdk::emulator::persist::StateFile;
use rtm_server_sdk::emulator::{
    ConnEvent, EmulatorOptions, QuestOutcome, QuestRecord, RtmEmulator, ServerOptions,
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
int8..int64), map keys in any order, text as str or bin.";

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
  rtm-emulator --secret s --delay sendmsg=2000 --fail gettoken=200010 --drop-after 5";

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

    /// The project's secret key the clients sign with. Default: a random
    /// one, printed at start.
    #[arg(long, value_name = "KEY", help_heading = "Project")]
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
    /// connection with a quest in flight.
    #[arg(long, value_name = "N", help_heading = "Faults")]
    drop_after: Option<u64>,

    /// Accepts every connection and closes it at once, so that clients
    /// cannot connect.
    #[arg(long, help_heading = "Faults")]
    refuse_connections: bool,

    /// Answers METHOD with error CODE (`*=CODE`: every method) instead of
    /// running it, once the quest passed the signature check. Repeatable.
    #[arg(long, value_name = "METHOD=CODE", value_parser = parse_fail, help_heading = "Faults")]
    fail: Vec<(String, i64)>,

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

fn parse_delay(s: &str) -> Result<(String, u64), String> {
    let (method, ms) = split_pair(s)?;
    let ms = ms
        .parse()
        .map_err(|_| format!("`{ms}` is not a number of milliseconds"))?;
    Ok((method.to_string(), ms))
}

fn parse_fail(s: &str) -> Result<(String, i64), String> {
    let (method, code) = split_pair(s)?;
    let code = code
        .parse()
        .map_err(|_| format!("`{code}` is not an error code"))?;
    Ok((method.to_string(), code))
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

    let mut server = ServerOptions::new().addr(addr);
    let mut encryption = "off".to_string();
    if let Some(path) = &args.ecc_private_key {
        let key = read_private_key(path, args.ecc_curve.map(Curve::from))
            .map_err(|e| format!("--ecc-private-key: {e}"))?;
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

    let mut options = EmulatorOptions::new().server(server);
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
    if let Some(n) = args.drop_after {
        options.faults.set_drop_after(n);
        faults.push(format!("--drop-after {n}"));
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
    let tick = if args.state.is_some() && args.save_every > 0 {
        Duration::from_secs(args.save_every)
    } else {
        Duration::from_secs(3600)
    };
    // Until Ctrl-C or SIGTERM, saving at every tick.
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop_rx.recv_timeout(tick) {
        let _ = save(&emu);
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
