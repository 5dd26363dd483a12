//! The server side, run in a child process (`bench --server MODE`): it prints
//! its port on the first line of stdout and serves until its stdin closes
//! (so it dies with the parent).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};

use rmpv::Value;
use rtm_server_sdk::emulator::RtmEmulator;
use rtm_server_sdk::fpnn::codec::{encode_answer, encode_error_answer, Decoder, Frame};

/// The project id and secret of the `rtm` server.
pub const PID: i64 = 11000001;
pub const SECRET: &str = "bench-secret";

/// Entry point of the child process.
pub fn serve(mode: &str) -> ! {
    // Exit as soon as the parent goes away (its end of our stdin closes).
    std::thread::spawn(|| {
        let mut sink = [0u8; 64];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        std::process::exit(0);
    });
    match mode {
        "fpnn" => accept_loop(serve_fpnn),
        "hold" => accept_loop(serve_hold),
        "rtm" => {
            let emu = RtmEmulator::start(PID, SECRET).expect("start the RTM emulator");
            announce(emu.local_addr().port());
            loop {
                std::thread::park();
            }
        }
        m if m.starts_with("emu-") => {
            let n = m["emu-".len()..].parse().expect("emu-N: N messages");
            let emu = crate::emulator::start_filled(n);
            announce(emu.local_addr().port());
            loop {
                std::thread::park();
            }
        }
        other => {
            eprintln!("unknown server mode `{other}` (fpnn, hold, rtm, emu-N)");
            std::process::exit(2);
        }
    }
}

fn announce(port: u16) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{port}");
    let _ = out.flush();
}

fn accept_loop(handler: fn(TcpStream)) -> ! {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    announce(listener.local_addr().expect("local addr").port());
    loop {
        if let Ok((stream, _)) = listener.accept() {
            let _ = stream.set_nodelay(true);
            std::thread::spawn(move || handler(stream));
        }
    }
}

/// The fast FPNN server: reads big chunks, decodes every complete frame,
/// encodes all the answers into one buffer and writes it once per read.
/// It answers `bench` with `{ok: true}` and `getVoiceRoomMemberCount` with
/// `{count: 2}`.
fn serve_fpnn(mut stream: TcpStream) {
    let ok = Value::Map(vec![(Value::from("ok"), Value::Boolean(true))]);
    let empty = Value::Map(Vec::new());
    let count = Value::Map(vec![(Value::from("count"), Value::from(2))]);
    let mut decoder = Decoder::new(1 << 20);
    let mut buf = vec![0u8; 256 * 1024];
    let mut out = Vec::with_capacity(256 * 1024);
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        decoder.feed(&buf[..n]);
        loop {
            match decoder.next_frame() {
                Ok(Some(Frame::Quest(q))) => {
                    let Some(seq) = q.seq else { continue };
                    match q.method.as_str() {
                        "bench" => encode_answer(&mut out, seq, &ok).expect("encode"),
                        "*ping" => encode_answer(&mut out, seq, &empty).expect("encode"),
                        // The RTM method of the RTM rows, answered without
                        // checking the signature (the layer's cost at full
                        // speed).
                        "getVoiceRoomMemberCount" => {
                            encode_answer(&mut out, seq, &count).expect("encode")
                        }
                        m => encode_error_answer(
                            &mut out,
                            seq,
                            20004,
                            &format!("unknown method `{m}`"),
                        ),
                    }
                }
                Ok(Some(Frame::Answer(_))) => {}
                Ok(None) => break,
                Err(e) => {
                    eprintln!("bench server: bad frame: {e}");
                    return;
                }
            }
        }
        if !out.is_empty() {
            if stream.write_all(&out).is_err() {
                return;
            }
            out.clear();
        }
    }
}

/// Reads and discards everything: quests are never answered.
fn serve_hold(mut stream: TcpStream) {
    let mut buf = vec![0u8; 256 * 1024];
    while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
}

/// A server child process, killed when dropped.
pub struct ServerProc {
    child: Child,
    stdin: Option<ChildStdin>,
    pub port: u16,
}

impl ServerProc {
    pub fn spawn(mode: &str) -> std::io::Result<ServerProc> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .args(["--server", mode])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let port = line.trim().parse::<u16>().map_err(|_| {
            std::io::Error::other(format!("server `{mode}` printed {line:?}, not a port"))
        })?;
        Ok(ServerProc { child, stdin, port })
    }

    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
