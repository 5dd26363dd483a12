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

/// Stops the example on a setting it cannot use: prints `why` and exits
/// with status 2 (a usage error; 1 is a failed RTM call).
pub fn usage_error(why: &str) -> ! {
    eprintln!("error: {why}");
    std::process::exit(2)
}

/// Reads one number of the environment variable `name`, which should be
/// `what`.
fn number(name: &str, what: &str, text: &str) -> i64 {
    text.trim()
        .parse()
        .unwrap_or_else(|_| usage_error(&format!("{name} must be {what}, not {text:?}")))
}

/// A comma-separated list of ids from the environment, or the default.
pub fn ids(name: &str, default: &[i64]) -> Vec<i64> {
    let ids = env(name).map_or(default.to_vec(), |u| {
        u.split(',')
            .map(|x| number(name, "a comma-separated list of whole numbers", x))
            .collect()
    });
    if ids.is_empty() {
        usage_error(&format!("{name} must name at least one id"));
    }
    ids
}

/// One id from the environment, or the default.
pub fn id(name: &str, default: i64) -> i64 {
    env(name).map_or(default, |v| number(name, "a whole number", &v))
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

/// The variables that name a real server; all three or none.
const SERVER_VARS: [&str; 3] = ["RTM_ENDPOINT", "RTM_PID", "RTM_SECRET"];

/// `RTM_ENDPOINT`, `RTM_PID` and `RTM_SECRET` when all are set; the
/// built-in emulator, started on 127.0.0.1, when none is. Setting only
/// some of them, or an `RTM_PID` that is not a number, stops the example
/// with a message naming the variables (exit status 2), rather than
/// quietly running against the emulator.
pub fn target() -> Target {
    let set: Vec<&str> = SERVER_VARS
        .iter()
        .copied()
        .filter(|name| env(name).is_some())
        .collect();
    if !set.is_empty() && set.len() < SERVER_VARS.len() {
        let missing: Vec<&str> = SERVER_VARS
            .iter()
            .copied()
            .filter(|name| !set.contains(name))
            .collect();
        usage_error(&format!(
            "{} set but {} not: set all three to talk to a server, or none to use the \
             built-in emulator",
            set.join(" and "),
            missing.join(" and "),
        ));
    }
    match (env("RTM_ENDPOINT"), env("RTM_PID"), env("RTM_SECRET")) {
        (Some(endpoint), Some(pid), Some(secret)) => {
            let pid = number("RTM_PID", "a whole number (the project id)", &pid);
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
                "none of RTM_ENDPOINT/RTM_PID/RTM_SECRET set: started the built-in emulator at \
                 {endpoint}"
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
