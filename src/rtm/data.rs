//! Key-value data per user (`dataget`,
//! `dataset`, `datadel`): small strings a backend keeps on the service
//! under a key of its choice.
//!
//! ```
//! use rtm_server_sdk::emulator::RtmEmulator;
//! use rtm_server_sdk::RtmServerClient;
//!
//! # fn main() -> rtm_server_sdk::Result<()> {
//! let emulator = RtmEmulator::start(11000001, "secret").unwrap();
//! let client = RtmServerClient::new(11000001, "secret", emulator.endpoint())?;
//!
//! client.set_data(1001, "level", "7")?;
//! assert_eq!(client.get_data(1001, "level")?.as_deref(), Some("7"));
//! client.del_data(1001, "level")?;
//! assert_eq!(client.get_data(1001, "level")?, None);
//! # Ok(())
//! # }
//! ```

use super::client::rtm_methods;
#[allow(unused_imports)]
use super::RtmServerClient;

rtm_methods! {
    /// The value stored for `uid` under `key`, or `None` when there is none.
    fn get_data / get_data_with_callback (uid: i64, key: &str) -> Option<String> {
        method: "dataget",
        params: { "uid": uid, "key": key },
        answer: |a| a.opt_string("val"),
    }

    /// Stores `val` for `uid` under `key`, replacing any previous value.
    fn set_data / set_data_with_callback (uid: i64, key: &str, val: &str) -> () {
        method: "dataset",
        params: { "uid": uid, "key": key, "val": val },
        answer: |_| Ok(()),
    }

    /// Deletes the value stored for `uid` under `key` (nothing happens when
    /// there is none).
    fn del_data / del_data_with_callback (uid: i64, key: &str) -> () {
        method: "datadel",
        params: { "uid": uid, "key": key },
        answer: |_| Ok(()),
    }
}
