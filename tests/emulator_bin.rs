//! The standalone `rtm-emulator` program, started as a child process on a
//! free port and driven with the crate's client (plain and encrypted) and
//! with hand-made frames encoded the way other SDKs encode them.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{wait_until, watchdog};
use md5::{Digest, Md5};
use rmpv::Value;
use rtm_server_sdk::fpnn::codec::{map_get, Decoder, Frame};
use rtm_server_sdk::fpnn::crypto::{CipherMode, EncryptionConfig, KeyBits, ServerPublicKey};
use rtm_server_sdk::rtm::{
    ConversationType, FileOptions, MessageBody, RtcRoomOptions, RtcRoomType, SendOptions,
};
use rtm_server_sdk::{codes, ClientConfig, RtmServerClient};

const BIN: &str = env!("CARGO_BIN_EXE_rtm-emulator");
const PID: i64 = 11000001;
const SECRET: &str = "bin-test-secret";
/// Every flag of the program: `--help` and the README name each.
const FLAGS: &[&str] = &[
    "--pid",
    "--secret",
    "--listen",
    "--ecc-private-key",
    "--ecc-curve",
    "--generate-key",
    "--encrypted-only",
    "--state",
    "--save-every",
    "--max-clock-skew",
    "--delay",
    "--drop-after",
    "--refuse-connections",
    "--fail",
    "--max-connections",
    "--idle-timeout",
    "--authenticated-idle-timeout",
    "--frame-timeout",
    "--unauthenticated-buffer",
    "--remembered-signs",
    "--max-queued-pushes",
    "--max-queued-push-bytes",
    "--stats-every",
    "--verbose",
    "--quiet",
];

/// A running `rtm-emulator`; killed when dropped, so that no test leaves a
/// process behind.
struct Emu {
    child: Option<Child>,
    endpoint: String,
    /// The lines printed at start, up to `ready`.
    banner: Vec<String>,
    stdout: Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Emu {
    /// Starts the program with `args` on a free port of 127.0.0.1 (unless
    /// `args` has its own `--listen`) and waits until it is ready.
    fn start(args: &[&str]) -> Emu {
        let mut cmd = Command::new(BIN);
        if !args.contains(&"--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        // Even if this test process dies without dropping the guard (a
        // watchdog abort), the child goes with the thread that started it.
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: prctl is async-signal-safe; nothing else runs here.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
        }
        let mut child = cmd
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start rtm-emulator");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let mut err_pipe = child.stderr.take().unwrap();
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut emu = Emu {
            child: Some(child),
            endpoint: String::new(),
            banner: Vec::new(),
            stdout: rx,
            stderr,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match emu.stdout.recv_timeout(left) {
                Ok(line) => {
                    let ready = line.starts_with("ready");
                    emu.banner.push(line);
                    if ready {
                        break;
                    }
                }
                Err(_) => panic!(
                    "rtm-emulator did not get ready; stdout {:?}, stderr {}",
                    emu.banner,
                    emu.stderr()
                ),
            }
        }
        emu.endpoint = emu.banner_value("endpoint").expect("an endpoint line");
        emu
    }

    /// The value of a `name: value` line of the banner.
    fn banner_value(&self, name: &str) -> Option<String> {
        let prefix = format!("{name}: ");
        self.banner
            .iter()
            .find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until the log holds a line containing every one of `parts`.
    fn wait_log_line(&self, parts: &[&str]) -> String {
        let mut found = String::new();
        let ok = wait_until(Duration::from_secs(5), || {
            match self
                .stderr()
                .lines()
                .find(|l| parts.iter().all(|p| l.contains(p)))
            {
                Some(l) => {
                    found = l.to_string();
                    true
                }
                None => false,
            }
        });
        assert!(ok, "no log line with {parts:?} in:\n{}", self.stderr());
        found
    }

    fn client(&self) -> RtmServerClient {
        self.client_with(SECRET, ClientConfig::default())
    }

    fn client_with(&self, secret: &str, config: ClientConfig) -> RtmServerClient {
        let config = config
            .connect_timeout(Duration::from_secs(3))
            .quest_timeout(Duration::from_secs(5));
        RtmServerClient::with_config(PID, secret, self.endpoint.clone(), config).unwrap()
    }

    /// Stops the program with `signal` (SIGTERM, or SIGINT as Ctrl-C
    /// sends) and returns its exit status and the rest of its standard
    /// output.
    #[cfg(unix)]
    fn terminate(mut self, signal: i32) -> (ExitStatus, Vec<String>) {
        let mut child = self.child.take().unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        // SAFETY: sending a signal to our own child process.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("rtm-emulator did not stop on signal {signal}");
            }
            thread::sleep(Duration::from_millis(10));
        };
        let mut rest = Vec::new();
        while let Ok(line) = self.stdout.recv_timeout(Duration::from_secs(2)) {
            rest.push(line);
        }
        (status, rest)
    }

    /// Kills the program at once (a crash: nothing is saved).
    fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Emu {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A fresh directory under the system's temp directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!(
            "rtm-emulator-bin-{name}-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run_to_end(args: &[&str]) -> (ExitStatus, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run rtm-emulator");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs the program with `args` on a free port, for at most 10 s (a
/// program that should have refused its flags but started is killed):
/// its exit code (`None`: it was still running) and standard error.
fn run_bounded(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run rtm-emulator");
    let deadline = Instant::now() + Duration::from_secs(10);
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    (code, err)
}

// ---------------------------------------------------------------------------
// Help and startup
// ---------------------------------------------------------------------------

#[test]
fn help_and_readme_name_every_flag() {
    let (status, help, _) = run_to_end(&["--help"]);
    assert!(status.success());
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme
        .split("## Testing any RTM client against the emulator")
        .nth(1)
        .expect("the README has the section")
        .split("\n## ")
        .next()
        .unwrap();
    for flag in FLAGS {
        assert!(help.contains(flag), "--help does not mention {flag}");
        assert!(
            section.contains(flag),
            "the README section does not mention {flag}"
        );
    }
    for default in [
        "127.0.0.1:13315",
        "11000001",
        "3600",
        "30",
        "10000",
        "16MiB",
    ] {
        assert!(help.contains(default), "--help does not give {default}");
    }
    // How to build it, and the limits.
    assert!(help.contains("--features cli"), "{help}");
    assert!(help.contains("Limits"), "{help}");
    // A bad value is a usage error naming the flag.
    let (status, _, err) = run_to_end(&["--delay", "sendmsg"]);
    assert_eq!(status.code(), Some(2));
    assert!(
        err.contains("--delay") && err.contains("METHOD=VALUE"),
        "{err}"
    );
}

#[test]
fn generated_secret_is_printed_and_signs() {
    watchdog(Duration::from_secs(30), || {
        let emu = Emu::start(&["--pid", &PID.to_string()]);
        let secret = emu.banner_value("secret").expect("a generated secret");
        assert_eq!(secret.len(), 36, "{secret}");
        assert_eq!(emu.banner_value("pid").as_deref(), Some("11000001"));
        let gate = emu.banner_value("file gate").unwrap();
        assert!(
            gate.starts_with("127.0.0.1:") && gate != emu.endpoint,
            "{gate}"
        );
        assert!(emu.endpoint.starts_with("127.0.0.1:"), "{}", emu.endpoint);
        let client = emu.client_with(&secret, ClientConfig::default());
        assert!(client.get_voice_room_list().unwrap().is_empty());
        // A given secret is not printed.
        let emu2 = Emu::start(&["--secret", SECRET]);
        assert_eq!(emu2.banner_value("secret"), None);
        assert!(!emu2.banner.join("\n").contains(SECRET));
    });
}

#[test]
fn plain_client_and_one_log_line_per_quest() {
    watchdog(Duration::from_secs(30), || {
        let emu = Emu::start(&["--secret", SECRET]);
        let client = emu.client();
        client.pull_into_voice_room(10, &[1, 2]).unwrap();
        client
            .pull_into_rtc_room(20, &[5], RtcRoomType::Video, RtcRoomOptions::default())
            .unwrap();
        assert_eq!(client.get_voice_room_list().unwrap(), [10]);
        let e = client.get_voice_room_members(99).unwrap_err();
        assert_eq!(e.server_code(), Some(codes::RTM_EC_NOT_IN_ROOM));
        // A client with the wrong secret is refused.
        let wrong = emu.client_with("wrong", ClientConfig::default());
        let e = wrong.get_voice_room_list().unwrap_err();
        assert_eq!(e.server_code(), Some(codes::RTM_EC_INVALID_PID_OR_SIGN));

        let line = emu.wait_log_line(&["pullIntoVoiceRoom", "rid=10", "toUids=[1,2]", "-> 0 ok"]);
        assert!(line.contains(" INFO "), "{line}");
        assert!(line.contains(" ms)"), "the time taken: {line}");
        assert!(!line.contains("sign="), "{line}");
        emu.wait_log_line(&["pullIntoRTCRoom", "type=2", "-> 0 ok"]);
        emu.wait_log_line(&["getVoiceRoomMembers", "rid=99", "-> 200040"]);
        emu.wait_log_line(&["getVoiceRoomList", "-> 200002"]);
        let quests = emu.stderr().lines().filter(|l| l.contains("->")).count();
        assert_eq!(quests, 5, "{}", emu.stderr());
        // A file goes through the file gate, logged too.
        let options = FileOptions {
            name: Some("a.txt".into()),
            ..Default::default()
        };
        client.send_file(1, 2, b"file bytes", &options).unwrap();
        emu.wait_log_line(&["filetoken", "cmd=\"sendfile\"", "-> 0 ok"]);
        emu.wait_log_line(&[
            "file gate conn 1: sendfile",
            "file=<bin 10 bytes>",
            "-> 0 ok",
        ]);
        // The connections too.
        emu.wait_log_line(&["conn 1: connected from 127.0.0.1:"]);
        drop(wrong);
        emu.wait_log_line(&["conn 2: closed by the client"]);

        // -q: no line per quest or connection.
        let quiet = Emu::start(&["--secret", SECRET, "-q"]);
        quiet.client().get_voice_room_list().unwrap();
        thread::sleep(Duration::from_millis(100));
        assert!(quiet.stderr().is_empty(), "{}", quiet.stderr());
    });
}

// ---------------------------------------------------------------------------
// Encryption
// ---------------------------------------------------------------------------

#[test]
fn encrypted_in_each_mode_and_key_size_on_both_curves() {
    watchdog(Duration::from_secs(60), || {
        let dir = TempDir::new("keys");
        for curve in ["secp256k1", "secp256r1"] {
            let keys = dir.path(curve);
            let keys_arg = keys.to_str().unwrap();
            let (status, out, err) =
                run_to_end(&["--generate-key", keys_arg, "--ecc-curve", curve]);
            assert!(status.success(), "{err}");
            assert!(out.contains("server-public.pem"), "{out}");
            let private = keys.join("server-private.pem");
            let public = ServerPublicKey::from_pem_file(keys.join("server-public.pem")).unwrap();
            assert_eq!(public.curve().to_string(), curve);
            // Existing keys are never overwritten.
            let (status, _, err) = run_to_end(&["--generate-key", keys_arg]);
            assert!(!status.success());
            assert!(err.contains("not overwritten"), "{err}");

            let emu = Emu::start(&[
                "--secret",
                SECRET,
                "--ecc-private-key",
                private.to_str().unwrap(),
            ]);
            let encryption = emu.banner_value("encryption").unwrap();
            assert!(encryption.starts_with(curve), "{encryption}");
            let mut rid = 0;
            for mode in [CipherMode::Stream, CipherMode::Package] {
                for bits in [KeyBits::Aes128, KeyBits::Aes256] {
                    rid += 1;
                    let config = ClientConfig::default()
                        .encryption(EncryptionConfig::new(public.clone()).mode(mode).bits(bits));
                    let client = emu.client_with(SECRET, config);
                    client.pull_into_voice_room(rid, &[rid]).unwrap();
                    let members = client.get_voice_room_members(rid).unwrap();
                    assert_eq!(members.uids, [rid], "{curve} {mode:?} {bits:?}");
                }
            }
            emu.wait_log_line(&["getVoiceRoomMembers", "rid=4", "-> 0 ok"]);
            emu.wait_log_line(&["encrypted (stream mode, AES-256)"]);
            emu.wait_log_line(&["encrypted (package mode, AES-128)"]);
            // A plain client is served too, as by the gateway...
            assert_eq!(emu.client().get_voice_room_list().unwrap().len(), 4);
            // ... unless --encrypted-only; the log says why it was closed.
            let strict = Emu::start(&[
                "--secret",
                SECRET,
                "--ecc-private-key",
                private.to_str().unwrap(),
                "--encrypted-only",
            ]);
            let plain = strict.client();
            assert!(plain
                .get_voice_room_list()
                .unwrap_err()
                .is_connection_error());
            strict.wait_log_line(&["WARN", "closed by the emulator", "*key"]);
        }
    });
}

#[test]
fn a_raw_private_key_needs_its_curve() {
    watchdog(Duration::from_secs(30), || {
        let dir = TempDir::new("raw");
        let raw = dir.path("server.key");
        let scalar: Vec<u8> = (1..=32).collect();
        std::fs::write(&raw, &scalar).unwrap();
        let key = rtm_server_sdk::fpnn::crypto::ServerPrivateKey::from_bytes(
            rtm_server_sdk::fpnn::crypto::Curve::Secp256r1,
            &scalar,
        )
        .unwrap();
        let emu = Emu::start(&[
            "--secret",
            SECRET,
            "--ecc-private-key",
            raw.to_str().unwrap(),
            "--ecc-curve",
            "secp256r1",
        ]);
        let config = ClientConfig::default().encryption(EncryptionConfig::new(key.public_key()));
        let client = emu.client_with(SECRET, config);
        assert!(client.get_rtc_room_list().unwrap().is_empty());
        // A file that is no key is a clear error at start.
        std::fs::write(&raw, b"not a key").unwrap();
        let (status, _, err) = run_to_end(&[
            "--listen",
            "127.0.0.1:0",
            "--ecc-private-key",
            raw.to_str().unwrap(),
        ]);
        assert!(!status.success());
        assert!(
            err.contains("--ecc-private-key") && err.contains("not a private key"),
            "{err}"
        );
    });
}

// ---------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------

#[cfg(unix)]
#[test]
fn state_survives_a_restart() {
    watchdog(Duration::from_secs(30), || {
        let dir = TempDir::new("state");
        let file = dir.path("state.json");
        let state = file.to_str().unwrap();
        let args = ["--secret", SECRET, "--state", state, "--save-every", "0"];
        let emu = Emu::start(&args);
        assert!(emu.banner_value("state").unwrap().contains("(new)"));
        let client = emu.client();
        client.pull_into_voice_room(10, &[1, 2]).unwrap();
        client
            .pull_into_rtc_room(20, &[3, 4], RtcRoomType::Voice, RtcRoomOptions::default())
            .unwrap();
        client.set_rtc_room_mic_status(20, true).unwrap();
        // The other families' state too.
        client
            .set_user_info(5, Some("public"), Some("private"))
            .unwrap();
        client.add_friends(5, &[6, 7]).unwrap();
        client.set_data(5, "k", "v").unwrap();
        client.add_group_members(100, &[5, 6]).unwrap();
        client
            .add_group_ban(100, 6, Duration::from_secs(3600))
            .unwrap();
        client
            .add_project_black(8, Duration::from_secs(3600))
            .unwrap();
        client
            .send_file(5, 6, b"kept file", &FileOptions::default())
            .unwrap();
        let options = SendOptions {
            mid: Some(4242),
            ..Default::default()
        };
        client
            .send_message(5, 6, 30, "kept message", &options)
            .unwrap();
        drop(client);
        assert!(!file.exists(), "nothing is saved before the stop");
        let (status, rest) = emu.terminate(libc::SIGTERM);
        assert!(status.success(), "{status:?}");
        assert!(
            rest.iter().any(|l| l.starts_with("state saved to")),
            "{rest:?}"
        );
        // No temporary file is left beside the state; the file sent is in it.
        assert_eq!(std::fs::read_dir(&dir.0).unwrap().count(), 1);
        let saved = std::fs::read_to_string(&file).unwrap();
        assert!(saved.contains(&hex::encode(b"kept file")), "{saved}");

        let emu = Emu::start(&args);
        assert!(emu.banner_value("state").unwrap().contains("(loaded)"));
        let client = emu.client();
        assert_eq!(client.get_voice_room_list().unwrap(), [10]);
        assert_eq!(client.get_voice_room_members(10).unwrap().uids, [1, 2]);
        let rtc = client.get_rtc_room_members(20).unwrap();
        assert_eq!(rtc.uids, [3, 4]);
        assert_eq!(rtc.owner, Some(3));
        let info = client.get_user_info(5).unwrap();
        assert_eq!(
            (info.public.as_str(), info.private.as_str()),
            ("public", "private")
        );
        assert_eq!(client.get_friends(5).unwrap(), [6, 7]);
        assert_eq!(client.get_data(5, "k").unwrap().as_deref(), Some("v"));
        assert_eq!(client.get_group_members(100).unwrap(), [5, 6]);
        assert!(client.is_ban_of_group(100, 6).unwrap());
        assert!(client.is_project_black(8).unwrap());
        assert!(!client.is_project_black(9).unwrap());
        let m = client
            .get_message(4242, 5, 6, ConversationType::P2p)
            .unwrap();
        assert_eq!(m.body, MessageBody::Text("kept message".into()));
        assert_eq!(m.mtype, 30);
        // (The file is free once that emulator is gone.)
        drop(client);
        emu.kill();

        // The state of another project is refused.
        let (status, _, err) =
            run_to_end(&["--listen", "127.0.0.1:0", "--pid", "42", "--state", state]);
        assert!(!status.success());
        assert!(err.contains("belongs to project 11000001"), "{err}");
        // A state file in a directory that does not exist is refused at
        // start, not at the first save.
        let nowhere = dir.path("missing/state.json");
        let (status, _, err) = run_to_end(&[
            "--listen",
            "127.0.0.1:0",
            "--state",
            nowhere.to_str().unwrap(),
        ]);
        assert!(!status.success());
        assert!(err.contains("does not exist"), "{err}");
    });
}

/// One emulator per state file: a second one given the same file is
/// refused, naming the file and the holder's pid; a temporary file left by
/// a killed save is removed at start.
#[cfg(unix)]
#[test]
fn a_state_file_is_held_by_one_emulator() {
    watchdog(Duration::from_secs(30), || {
        let dir = TempDir::new("held");
        let file = dir.path("state.json");
        let state = file.to_str().unwrap();
        // A save killed mid-way by a process that is gone.
        let mut gone = Command::new("true").spawn().unwrap();
        let gone_pid = gone.id();
        gone.wait().unwrap();
        let stale = dir.path(&format!(".state.json.tmp-{gone_pid}"));
        std::fs::write(&stale, "{\"half\": ").unwrap();
        let args = ["--secret", SECRET, "--state", state, "--save-every", "0"];
        let emu = Emu::start(&args);
        assert!(!stale.exists(), "the stale temporary file is removed");
        let holder = emu.child.as_ref().unwrap().id();
        let (status, _, err) = run_to_end(&["--listen", "127.0.0.1:0", "--state", state]);
        assert!(!status.success());
        assert!(err.contains(state), "{err}");
        assert!(err.contains(&format!("pid {holder}")), "{err}");
        // Once the first has stopped, the file is free again.
        let (status, _) = emu.terminate(libc::SIGTERM);
        assert!(status.success(), "{status:?}");
        let emu = Emu::start(&args);
        assert!(emu.banner_value("state").unwrap().contains("(loaded)"));
    });
}

/// A hand-edited state whose message cursor went negative is refused at
/// start, naming the field.
#[test]
fn an_inconsistent_state_file_is_refused() {
    watchdog(Duration::from_secs(30), || {
        let dir = TempDir::new("inconsistent");
        let file = dir.path("state.json");
        std::fs::write(
            &file,
            r#"{"format": "rtm-emulator-state", "version": 1, "pid": 11000001,
                "state": {"messages": {"log": [], "last_id": -5}}}"#,
        )
        .unwrap();
        let (status, _, err) =
            run_to_end(&["--listen", "127.0.0.1:0", "--state", file.to_str().unwrap()]);
        assert!(!status.success());
        assert!(err.contains("`messages.last_id` is -5"), "{err}");
    });
}

#[test]
fn state_is_saved_periodically() {
    watchdog(Duration::from_secs(30), || {
        let dir = TempDir::new("periodic");
        let file = dir.path("state.json");
        let state = file.to_str().unwrap();
        let args = ["--secret", SECRET, "--state", state, "--save-every", "1"];
        let emu = Emu::start(&args);
        emu.client().pull_into_voice_room(77, &[7]).unwrap();
        assert!(wait_until(Duration::from_secs(5), || {
            std::fs::read_to_string(&file).is_ok_and(|s| s.contains("\"77\""))
        }));
        // A crash after a periodic save keeps what was saved.
        emu.kill();
        let emu = Emu::start(&args);
        let client = emu.client();
        assert_eq!(client.get_voice_room_list().unwrap(), [77]);
        // Ctrl-C (SIGINT) saves too, with a client still connected.
        client.pull_into_voice_room(78, &[8]).unwrap();
        #[cfg(unix)]
        {
            let (status, rest) = emu.terminate(libc::SIGINT);
            assert!(status.success(), "{status:?}");
            assert!(rest.iter().any(|l| l == "stopped"), "{rest:?}");
            let emu = Emu::start(&args);
            assert_eq!(emu.client().get_voice_room_list().unwrap(), [77, 78]);
        }
    });
}

// ---------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------

#[test]
fn delay_holds_back_only_the_delayed_method() {
    watchdog(Duration::from_secs(30), || {
        let emu = Emu::start(&["--secret", SECRET, "--delay", "getVoiceRoomList=2500"]);
        assert!(emu
            .banner_value("faults")
            .unwrap()
            .contains("--delay getVoiceRoomList=2500"));
        let slow_client = emu.client();
        let fast_client = emu.client();
        // Both connected first, so that connecting is not measured.
        slow_client.get_rtc_room_list().unwrap();
        fast_client.get_rtc_room_list().unwrap();
        let started = Instant::now();
        let slow = thread::spawn(move || {
            slow_client.get_voice_room_list().unwrap();
            started.elapsed()
        });
        thread::sleep(Duration::from_millis(50));
        // Another connection is answered at once meanwhile.
        let t = Instant::now();
        fast_client.get_rtc_room_list().unwrap();
        assert!(
            t.elapsed() < Duration::from_millis(2000),
            "{:?}",
            t.elapsed()
        );
        let slow = slow.join().unwrap();
        assert!(slow >= Duration::from_millis(2500), "{slow:?}");
        emu.wait_log_line(&["getVoiceRoomList", "+ 2500 ms delay"]);

        // `*` delays every method; the same connection keeps being served.
        let emu = Emu::start(&[
            "--secret",
            SECRET,
            "--delay",
            "*=2000",
            "--delay",
            "getRTCRoomList=0",
        ]);
        let client = emu.client();
        client.get_rtc_room_list().unwrap();
        let t = Instant::now();
        client.get_rtc_room_list().unwrap();
        assert!(
            t.elapsed() < Duration::from_millis(1500),
            "{:?}",
            t.elapsed()
        );
        let t = Instant::now();
        client.get_voice_room_list().unwrap();
        assert!(
            t.elapsed() >= Duration::from_millis(2000),
            "{:?}",
            t.elapsed()
        );
    });
}

#[test]
fn many_clients_at_once() {
    watchdog(Duration::from_secs(60), || {
        let emu = Emu::start(&["--secret", SECRET, "-q"]);
        let threads: Vec<_> = (0..16i64)
            .map(|t| {
                let client = emu.client();
                thread::spawn(move || {
                    let rid = 500 + t;
                    for uid in 0..20 {
                        client.pull_into_voice_room(rid, &[uid]).unwrap();
                    }
                    client.get_voice_room_member_count(rid).unwrap()
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap(), 20);
        }
        assert_eq!(emu.client().get_voice_room_list().unwrap().len(), 16);
    });
}

#[test]
fn fail_answers_the_given_code() {
    watchdog(Duration::from_secs(30), || {
        let emu = Emu::start(&[
            "--secret",
            SECRET,
            "--fail",
            "pullIntoVoiceRoom=200010",
            "--fail",
            "getRTCRoomList=30000",
        ]);
        let client = emu.client();
        let e = client.pull_into_voice_room(1, &[1]).unwrap_err();
        assert_eq!(e.server_code(), Some(200010));
        assert_eq!(
            client.get_rtc_room_list().unwrap_err().server_code(),
            Some(30000)
        );
        // Nothing was done, and other methods work.
        assert!(client.get_voice_room_list().unwrap().is_empty());
        emu.wait_log_line(&["pullIntoVoiceRoom", "-> 200010"]);
    });
}

#[test]
fn drop_after_closes_each_connection_and_the_client_recovers() {
    watchdog(Duration::from_secs(30), || {
        let emu = Emu::start(&["--secret", SECRET, "--drop-after", "2"]);
        // A raw connection gets two answers, then loses its connection.
        let mut raw = RawConn::connect(&emu.endpoint, 1);
        for _ in 0..2 {
            let a = raw.call("getVoiceRoomList", RawConn::plain_params);
            assert!(a.is_ok(), "{a:?}");
        }
        raw.send("getVoiceRoomList", RawConn::plain_params);
        raw.expect_closed();
        // The crate's client resends once on a new connection: every call
        // succeeds.
        let client = emu.client();
        for rid in 1..=5 {
            client.pull_into_voice_room(rid, &[1]).unwrap();
        }
        assert_eq!(client.get_voice_room_list().unwrap(), [1, 2, 3, 4, 5]);
        emu.wait_log_line(&["-> closed, not answered (--drop-after)"]);
    });
}

#[test]
fn refuse_connections_lets_no_client_in() {
    watchdog(Duration::from_secs(30), || {
        let emu = Emu::start(&["--secret", SECRET, "--refuse-connections"]);
        assert!(emu
            .banner_value("faults")
            .unwrap()
            .contains("--refuse-connections"));
        let e = emu.client().get_voice_room_list().unwrap_err();
        assert!(e.is_connection_error(), "{e:?}");
        let mut raw = RawConn::connect(&emu.endpoint, 1);
        raw.send("getVoiceRoomList", RawConn::plain_params);
        raw.expect_closed();
    });
}

// ---------------------------------------------------------------------------
// Raw frames, as other SDKs encode them
// ---------------------------------------------------------------------------

type Params = fn(&mut Vec<u8>, &RawConn, &str) -> usize;

/// Salt ranges for raw connections (never the same salt twice).
static NEXT_SALTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1000);

/// A hand-written FPNN client: header version of choice, payloads encoded
/// byte by byte.
struct RawConn {
    stream: TcpStream,
    decoder: Decoder,
    version: u8,
    seq: u32,
    salt: u64,
    /// The header version of every frame read that started a read.
    answer_versions: Vec<u8>,
}

impl RawConn {
    fn connect(endpoint: &str, version: u8) -> RawConn {
        let stream = TcpStream::connect(endpoint).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        RawConn {
            stream,
            decoder: Decoder::new(1 << 20),
            version,
            seq: 0,
            salt: NEXT_SALTS.fetch_add(1 << 20, std::sync::atomic::Ordering::SeqCst),
            answer_versions: Vec::new(),
        }
    }

    /// The four signature keys with the pid as uint32, the salt as uint64
    /// above `i64::MAX`, the ts as int32, `sign` last; returns how many.
    fn signature(&self, out: &mut Vec<u8>, method: &str, ts: i64) -> usize {
        let salt = u64::MAX - self.salt;
        let sign = hex::encode_upper(Md5::digest(format!("{PID}:{SECRET}:{salt}:{method}:{ts}")));
        rmp::encode::write_str(out, "ts").unwrap();
        rmp::encode::write_i32(out, i32::try_from(ts).unwrap()).unwrap();
        rmp::encode::write_str(out, "salt").unwrap();
        rmp::encode::write_u64(out, salt).unwrap();
        rmp::encode::write_str(out, "pid").unwrap();
        rmp::encode::write_u32(out, u32::try_from(PID).unwrap()).unwrap();
        rmp::encode::write_str(out, "sign").unwrap();
        // On a version-0 connection the sign goes as bin, as an SDK that
        // sends text as bytes would.
        if self.version == 0 {
            rmp::encode::write_bin(out, sign.as_bytes()).unwrap();
        } else {
            rmp::encode::write_str(out, &sign).unwrap();
        }
        4
    }

    fn plain_params(out: &mut Vec<u8>, conn: &RawConn, method: &str) -> usize {
        conn.signature(out, method, now_s())
    }

    /// Sends a two-way quest; `params` writes the map's entries and returns
    /// how many it wrote.
    fn send(&mut self, method: &str, params: Params) -> u32 {
        self.salt += 1;
        self.seq += 1;
        let mut body = Vec::new();
        let n = params(&mut body, self, method);
        let mut payload = Vec::new();
        rmp::encode::write_map_len(&mut payload, u32::try_from(n).unwrap()).unwrap();
        payload.extend_from_slice(&body);
        let mut frame = Vec::new();
        frame.extend_from_slice(b"FPNN");
        frame.push(self.version);
        frame.push(0x80); // msgpack
        frame.push(1); // two-way
        frame.push(u8::try_from(method.len()).unwrap());
        frame.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_le_bytes());
        frame.extend_from_slice(&self.seq.to_le_bytes());
        frame.extend_from_slice(method.as_bytes());
        frame.extend_from_slice(&payload);
        let _ = self.stream.write_all(&frame);
        self.seq
    }

    fn read_answer(&mut self) -> rtm_server_sdk::fpnn::codec::Answer {
        loop {
            if let Some(frame) = self.decoder.next_frame().unwrap() {
                match frame {
                    Frame::Answer(a) => return a,
                    Frame::Quest(q) => panic!("unexpected quest {}", q.method),
                }
            }
            let mut buf = [0u8; 4096];
            let n = self.stream.read(&mut buf).expect("an answer");
            assert!(n > 0, "the connection closed");
            if self.decoder.buffered() == 0 && n > 4 {
                self.answer_versions.push(buf[4]);
            }
            self.decoder.feed(&buf[..n]);
        }
    }

    fn call(&mut self, method: &str, params: Params) -> rtm_server_sdk::Result<Value> {
        let seq = self.send(method, params);
        let a = self.read_answer();
        assert_eq!(a.seq, seq);
        a.into_result()
    }

    /// Reads (and drops) whatever was sent until the connection closes.
    fn expect_closed_after_reading(&mut self) {
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
                Err(e) => panic!("expected the connection to close, got {e}"),
            }
        }
    }

    fn expect_closed(&mut self) {
        let mut buf = [0u8; 64];
        match self.stream.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("expected the connection to close, got {other:?}"),
        }
    }
}

fn now_s() -> i64 {
    rtm_server_sdk::rtm::unix_seconds()
}

/// A message id of its own for each header version.
fn mid(c: &RawConn, n: u64) -> u64 {
    9_000_000_000 + u64::from(c.version) * 100 + n
}

fn ids(v: &Value, key: &str) -> Vec<i64> {
    map_get(v, key)
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("no `{key}` in {v}"))
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

#[test]
fn raw_frames_as_other_sdks_encode_them() {
    watchdog(Duration::from_secs(30), || {
        let emu = Emu::start(&["--secret", SECRET]);
        for version in [0u8, 1] {
            let mut c = RawConn::connect(&emu.endpoint, version);
            // Parameters first, signature keys after; every int width.
            fn pull(out: &mut Vec<u8>, c: &RawConn, method: &str) -> usize {
                rmp::encode::write_str(out, "toUids").unwrap();
                rmp::encode::write_array_len(out, 8).unwrap();
                rmp::encode::write_pfix(out, 1).unwrap(); // positive fixint
                rmp::encode::write_u8(out, 2).unwrap(); // uint8 (cc)
                rmp::encode::write_u16(out, 3).unwrap(); // uint16 (cd)
                rmp::encode::write_u32(out, 4).unwrap(); // uint32 (ce)
                rmp::encode::write_u64(out, 5).unwrap(); // uint64 (cf)
                rmp::encode::write_i8(out, 6).unwrap(); // int8 (d0)
                rmp::encode::write_i16(out, 7).unwrap(); // int16 (d1)
                rmp::encode::write_i32(out, 8).unwrap(); // int32 (d2)
                let n = c.signature(out, method, now_s());
                rmp::encode::write_str(out, "rid").unwrap();
                rmp::encode::write_i64(out, 300).unwrap(); // int64 (d3)
                n + 2
            }
            let a = c.call("pullIntoVoiceRoom", pull);
            assert!(a.is_ok(), "version {version}: {a:?}");
            fn pull_negative(out: &mut Vec<u8>, c: &RawConn, method: &str) -> usize {
                rmp::encode::write_str(out, "rid").unwrap();
                rmp::encode::write_i16(out, 300).unwrap();
                rmp::encode::write_str(out, "toUids").unwrap();
                rmp::encode::write_array_len(out, 3).unwrap();
                rmp::encode::write_nfix(out, -1).unwrap(); // negative fixint
                rmp::encode::write_i8(out, -100).unwrap();
                rmp::encode::write_i64(out, -(1 << 40)).unwrap();
                c.signature(out, method, now_s()) + 2
            }
            assert!(c.call("pullIntoVoiceRoom", pull_negative).is_ok());
            fn members(out: &mut Vec<u8>, c: &RawConn, method: &str) -> usize {
                let n = c.signature(out, method, now_s());
                rmp::encode::write_str(out, "rid").unwrap();
                rmp::encode::write_u16(out, 300).unwrap();
                n + 1
            }
            let m = c.call("getVoiceRoomMembers", members).unwrap();
            assert_eq!(
                ids(&m, "uids"),
                [-(1 << 40), -100, -1, 1, 2, 3, 4, 5, 6, 7, 8]
            );
            assert_eq!(ids(&m, "managers"), [1]);
            // Text as bin (`events` of addlisten) is taken like str.
            fn listen(out: &mut Vec<u8>, c: &RawConn, method: &str) -> usize {
                rmp::encode::write_str(out, "events").unwrap();
                rmp::encode::write_array_len(out, 2).unwrap();
                rmp::encode::write_bin(out, b"login").unwrap();
                rmp::encode::write_str(out, "logout").unwrap();
                c.signature(out, method, now_s()) + 1
            }
            assert!(c.call("addlisten", listen).is_ok());
            // A ts far from the clock: the gateway's time error.
            fn stale(out: &mut Vec<u8>, c: &RawConn, method: &str) -> usize {
                c.signature(out, method, now_s() - 7200)
            }
            let e = c.call("getVoiceRoomList", stale).unwrap_err();
            assert_eq!(e.server_code(), Some(codes::RTM_EC_INVALID_SERVER_TIME));
            // A uint64 above i64::MAX where an id is expected: a type error.
            fn huge(out: &mut Vec<u8>, c: &RawConn, method: &str) -> usize {
                rmp::encode::write_str(out, "rid").unwrap();
                rmp::encode::write_u64(out, u64::MAX).unwrap();
                c.signature(out, method, now_s()) + 1
            }
            let e = c.call("closeVoiceRoom", huge).unwrap_err();
            assert_eq!(e.server_code(), Some(codes::FPNN_EC_PROTO_TYPE_CONVERT));
            fn close(out: &mut Vec<u8>, c: &RawConn, method: &str) -> usize {
                rmp::encode::write_str(out, "rid").unwrap();
                rmp::encode::write_u32(out, 300).unwrap();
                c.signature(out, method, now_s()) + 1
            }
            assert!(c.call("closeVoiceRoom", close).is_ok());
            // `msg` as bin and as str: stored and read back as sent.
            fn send_bin(out: &mut Vec<u8>, c: &RawConn, method: &str) -> usize {
                rmp::encode::write_str(out, "msg").unwrap();
                rmp::encode::write_bin(out, b"\x00\xffbinary").unwrap();
                rmp::encode::write_str(out, "mid").unwrap();
                rmp::encode::write_u64(out, mid(c, 1)).unwrap();
                let n = c.signature(out, method, now_s());
                rmp::encode::write_str(out, "to").unwrap();
                rmp::encode::write_i16(out, 2).unwrap();
                rmp::encode::write_str(out, "mtype").unwrap();
                rmp::encode::write_u8(out, 30).unwrap();
                rmp::encode::write_str(out, "from").unwrap();
                rmp::encode::write_pfix(out, 1).unwrap();
                rmp::encode::write_str(out, "attrs").unwrap();
                rmp::encode::write_bin(out, b"{}").unwrap();
                n + 6
            }
            fn send_str(out: &mut Vec<u8>, c: &RawConn, method: &str) -> usize {
                rmp::encode::write_str(out, "from").unwrap();
                rmp::encode::write_i8(out, 1).unwrap();
                rmp::encode::write_str(out, "to").unwrap();
                rmp::encode::write_u32(out, 2).unwrap();
                rmp::encode::write_str(out, "mid").unwrap();
                rmp::encode::write_i64(out, i64::try_from(mid(c, 2)).unwrap()).unwrap();
                rmp::encode::write_str(out, "mtype").unwrap();
                rmp::encode::write_i32(out, 30).unwrap();
                rmp::encode::write_str(out, "msg").unwrap();
                rmp::encode::write_str(out, "text").unwrap();
                c.signature(out, method, now_s()) + 5
            }
            let sent = c.call("sendmsg", send_bin).unwrap();
            assert!(map_get(&sent, "mtime").and_then(Value::as_i64).unwrap() > 0);
            assert!(c.call("sendmsg", send_str).is_ok());
            fn get(out: &mut Vec<u8>, c: &RawConn, method: &str, mid: u64) -> usize {
                rmp::encode::write_str(out, "type").unwrap();
                rmp::encode::write_u8(out, 1).unwrap();
                rmp::encode::write_str(out, "xid").unwrap();
                rmp::encode::write_u16(out, 2).unwrap();
                rmp::encode::write_str(out, "mid").unwrap();
                rmp::encode::write_u64(out, mid).unwrap();
                rmp::encode::write_str(out, "from").unwrap();
                rmp::encode::write_i32(out, 1).unwrap();
                c.signature(out, method, now_s()) + 4
            }
            fn get_bin(out: &mut Vec<u8>, c: &RawConn, method: &str) -> usize {
                get(out, c, method, mid(c, 1))
            }
            fn get_str(out: &mut Vec<u8>, c: &RawConn, method: &str) -> usize {
                get(out, c, method, mid(c, 2))
            }
            let m = c.call("getmsg", get_bin).unwrap();
            assert_eq!(
                map_get(&m, "msg"),
                Some(&Value::Binary(b"\x00\xffbinary".to_vec()))
            );
            assert_eq!(map_get(&m, "mtype").and_then(Value::as_i64), Some(30));
            let m = c.call("getmsg", get_str).unwrap();
            assert_eq!(map_get(&m, "msg").and_then(Value::as_str), Some("text"));
            // Every answer echoes the quest's header version, as the C++
            // gateway's do.
            assert!(!c.answer_versions.is_empty());
            assert!(c.answer_versions.iter().all(|&v| v == version), "{version}");
        }
        // --max-clock-skew 0 turns the ts check off.
        let emu = Emu::start(&["--secret", SECRET, "--max-clock-skew", "0"]);
        assert_eq!(emu.banner_value("ts check").as_deref(), Some("off"));
        let mut c = RawConn::connect(&emu.endpoint, 0);
        fn stale(out: &mut Vec<u8>, c: &RawConn, method: &str) -> usize {
            c.signature(out, method, now_s() - 7200)
        }
        assert!(c.call("getVoiceRoomList", stale).is_ok());
    });
}

// ---------------------------------------------------------------------------
// Flags refused, limits and counters
// ---------------------------------------------------------------------------

#[test]
fn drop_after_zero_is_off_and_not_a_fault() {
    watchdog(Duration::from_secs(30), || {
        let emu = Emu::start(&["--secret", SECRET, "--drop-after", "0"]);
        assert_eq!(emu.banner_value("faults").as_deref(), Some("none"));
        let client = emu.client();
        for _ in 0..3 {
            assert!(client.get_voice_room_list().unwrap().is_empty());
        }
    });
}

#[test]
fn a_fault_for_an_unknown_method_is_refused_naming_it() {
    for flag in ["--fail", "--delay"] {
        let (code, err) = run_bounded(&[flag, "nosuchmethod=200010", "--secret", SECRET]);
        assert_eq!(code, Some(2), "{flag}: {err}");
        assert!(
            err.contains(flag) && err.contains("`nosuchmethod`"),
            "{flag}: {err}"
        );
        // A known method in the wrong case: the right name is suggested.
        let (code, err) = run_bounded(&[flag, "sendMsg=5"]);
        assert_eq!(code, Some(2), "{flag}: {err}");
        assert!(err.contains("did you mean `sendmsg`"), "{flag}: {err}");
    }
    // `*` and the methods the emulator implements are accepted.
    watchdog(Duration::from_secs(30), || {
        let emu = Emu::start(&[
            "--secret",
            SECRET,
            "--fail",
            "*=30000",
            "--delay",
            "getVoiceRoomList=1",
        ]);
        let faults = emu.banner_value("faults").unwrap();
        assert!(
            faults.contains("--fail *=30000") && faults.contains("--delay getVoiceRoomList=1"),
            "{faults}"
        );
    });
}

#[test]
fn an_empty_secret_is_refused() {
    let (code, err) = run_bounded(&["--secret", ""]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--secret") && err.contains("empty"), "{err}");
}

#[test]
fn a_missing_key_file_is_named() {
    let dir = TempDir::new("nokey");
    let missing = dir.path("no-such-key.pem");
    let (code, err) = run_bounded(&["--ecc-private-key", missing.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("--ecc-private-key") && err.contains(missing.to_str().unwrap()),
        "{err}"
    );
}

#[test]
fn push_queue_limits_are_flags() {
    for bad in [
        &["--max-queued-pushes", "0"][..],
        &["--max-queued-push-bytes", "0"],
        &["--max-queued-push-bytes", "16 parsecs"],
    ] {
        let (code, err) = run_bounded(bad);
        assert_eq!(code, Some(2), "{bad:?}: {err}");
        assert!(err.contains(bad[0]), "{bad:?}: {err}");
    }
    watchdog(Duration::from_secs(30), || {
        let emu = Emu::start(&["--secret", SECRET]);
        let limits = emu.banner_value("limits").unwrap();
        assert!(
            limits.starts_with("1024 connections (")
                && limits.contains(
                    "idle 60 s (unsigned), never (signed); half a frame 30 s; \
                     500000 signatures remembered;"
                )
                && limits.ends_with("; 10000 pushes or 16777216 bytes waiting per connection"),
            "{limits}"
        );
        let emu = Emu::start(&[
            "--secret",
            SECRET,
            "--max-queued-pushes",
            "5",
            "--max-queued-push-bytes",
            "512KiB",
        ]);
        let limits = emu.banner_value("limits").unwrap();
        assert!(
            limits.ends_with("; 5 pushes or 524288 bytes waiting per connection"),
            "{limits}"
        );
    });
}

#[test]
fn connection_limits_are_flags() {
    for bad in [
        &["--max-connections", "0"][..],
        &["--unauthenticated-buffer", "lots"],
        &["--idle-timeout", "soon"],
        &["--remembered-signs", "0"],
    ] {
        let (code, err) = run_bounded(bad);
        assert_eq!(code, Some(2), "{bad:?}: {err}");
        assert!(err.contains(bad[0]), "{bad:?}: {err}");
    }
    watchdog(Duration::from_secs(30), || {
        let emu = Emu::start(&[
            "--secret",
            SECRET,
            "--max-connections",
            "7",
            "--idle-timeout",
            "1",
            "--authenticated-idle-timeout",
            "0",
            "--frame-timeout",
            "0",
            "--remembered-signs",
            "1000",
        ]);
        let limits = emu.banner_value("limits").unwrap();
        assert!(
            limits.starts_with("7 connections (")
                && limits.contains(
                    "idle 1 s (unsigned), never (signed); half a frame never; \
                     1000 signatures remembered;"
                ),
            "{limits}"
        );
        // A connection that sends nothing is closed after the idle timeout.
        let t = Instant::now();
        let mut idle = TcpStream::connect(&emu.endpoint).unwrap();
        idle.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buf = [0u8; 16];
        let n = idle.read(&mut buf).unwrap_or(0);
        assert_eq!(n, 0);
        let waited = t.elapsed();
        assert!(
            waited >= Duration::from_millis(900) && waited < Duration::from_secs(8),
            "{waited:?}"
        );
        // A signed client is served meanwhile and after.
        assert!(emu.client().get_voice_room_list().unwrap().is_empty());
    });
}

#[test]
fn a_listener_that_stops_reading_is_disconnected_and_logged() {
    watchdog(Duration::from_secs(60), || {
        let emu = Emu::start(&["--secret", SECRET, "--max-queued-pushes", "5"]);
        let mut slow = RawConn::connect(&emu.endpoint, 1);
        fn listen_p2p(out: &mut Vec<u8>, conn: &RawConn, method: &str) -> usize {
            let n = conn.signature(out, method, now_s());
            rmp::encode::write_str(out, "p2p").unwrap();
            rmp::encode::write_bool(out, true).unwrap();
            n + 1
        }
        slow.call("setlisten", listen_p2p).unwrap();
        // Never read again: 64 KB messages fill its socket, then its queue.
        let client = emu.client();
        let body = "x".repeat(64 * 1024);
        let dropped = |emu: &Emu| emu.stderr().contains("falls behind");
        let mut sent = 0;
        while !dropped(&emu) && sent < 1000 {
            client
                .send_message(1, 2, 30, body.as_str(), &SendOptions::default())
                .unwrap();
            sent += 1;
        }
        let line = emu.wait_log_line(&["WARN", "disconnected", "falls behind", "5 pushes"]);
        assert!(line.contains("limits 5 pushes"), "{line}");
        slow.expect_closed_after_reading();
        // Everyone else is still served.
        assert!(client.get_voice_room_list().unwrap().is_empty());
    });
}

#[test]
fn stats_every_logs_the_counters() {
    watchdog(Duration::from_secs(30), || {
        let emu = Emu::start(&["--secret", SECRET, "--stats-every", "1"]);
        let client = emu.client();
        client.get_token(1001).unwrap();
        client.get_voice_room_list().unwrap();
        let line = emu.wait_log_line(&["INFO", "stats (last 1 s):", "gettoken 1"]);
        assert!(line.contains("getVoiceRoomList 1"), "{line}");
        assert!(line.contains("answers 0:2"), "{line}");
        assert!(line.contains("connections 1"), "{line}");
        assert!(line.contains("push queues 0 pushes, 0 B"), "{line}");
        // The next intervals count only their own quests.
        let quiet = emu.wait_log_line(&["stats (last 1 s): calls 0;"]);
        assert!(quiet.contains("answers none"), "{quiet}");
    });
}
