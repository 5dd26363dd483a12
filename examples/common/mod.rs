//! What the examples share: choosing the server (a real one from the
//! environment, or the built-in emulator) and reporting a failure.

#![allow(dead_code)] // each example uses what it needs

use std::process::ExitCode;

use std::time::Duration;

use rtm_server_sdk::emulator::RtmEmulator;
use rtm_server_sdk::{ClientConfig, Result, RtmServerClient};

/// A non-empty environment variable.
pub fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A comma-separated list of ids from the environment, or the default.
pub fn ids(name: &str, default: &[i64]) -> Vec<i64> {
    env(name).map_or(default.to_vec(), |u| {
        u.split(',')
            .map(|x| {
                x.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("{name} is a list of numbers"))
            })
            .collect()
    })
}

/// One id from the environment, or the default.
pub fn id(name: &str, default: i64) -> i64 {
    env(name).map_or(default, |v| {
        v.parse().unwrap_or_else(|_| panic!("{name} is a number"))
    })
}

/// The server to talk to.
pub struct Target {
    pub endpoint: String,
    pub pid: i64,
    pub secret: String,
    /// The emulator, when one was started (kept running while this lives).
    pub emulator: Option<RtmEmulator>,
}

impl Target {
    /// A client of the target (5 s connect and 10 s quest timeouts),
    /// connected now so that a wrong endpoint fails fast.
    pub fn connect(&self) -> Result<RtmServerClient> {
        let config = ClientConfig::default()
            .connect_timeout(Duration::from_secs(5))
            .quest_timeout(Duration::from_secs(10));
        let client = RtmServerClient::with_config(
            self.pid,
            self.secret.clone(),
            self.endpoint.clone(),
            config,
        )?;
        client.connect()?;
        Ok(client)
    }
}

/// `RTM_ENDPOINT`, `RTM_PID` and `RTM_SECRET` when all are set; otherwise
/// the built-in emulator, started on 127.0.0.1.
pub fn target() -> Target {
    match (env("RTM_ENDPOINT"), env("RTM_PID"), env("RTM_SECRET")) {
        (Some(endpoint), Some(pid), Some(secret)) => {
            let pid = pid.parse().expect("RTM_PID is a number");
            println!("talking to the RTM server at {endpoint} (project {pid})");
            Target {
                endpoint,
                pid,
                secret,
                emulator: None,
            }
        }
        _ => {
            let (pid, secret) = (11000001, "emulator-secret".to_string());
            let emulator = RtmEmulator::start(pid, &secret).expect("the emulator starts");
            let endpoint = emulator.endpoint();
            println!(
                "RTM_ENDPOINT/RTM_PID/RTM_SECRET not set: started the built-in emulator at {endpoint}"
            );
            Target {
                endpoint,
                pid,
                secret,
                emulator: Some(emulator),
            }
        }
    }
}

/// Runs the example and turns its result into the exit code, printing a
/// failure's message and code.
pub fn run(example: impl FnOnce() -> Result<()>) -> ExitCode {
    env_logger::init();
    match example() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            match e.code() {
                Some(code) => eprintln!("error: {e} (code {code})"),
                None => eprintln!("error: {e}"),
            }
            ExitCode::FAILURE
        }
    }
}
