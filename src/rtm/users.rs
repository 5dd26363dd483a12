//! Tokens and users login tokens, kicking
//! users out, online status, the project's black and ban lists, public and
//! private user info, clearing a user's messages, and sessions.
//!
//! ```
//! use std::time::Duration;
//! use rtm_server_sdk::emulator::RtmEmulator;
//! use rtm_server_sdk::RtmServerClient;
//!
//! # fn main() -> rtm_server_sdk::Result<()> {
//! let emulator = RtmEmulator::start(11000001, "secret").unwrap();
//! let client = RtmServerClient::new(11000001, "secret", emulator.endpoint())?;
//!
//! // A login token to hand to user 1001's client.
//! let token = client.get_token(1001)?;
//! assert!(emulator.is_token_valid(1001, &token));
//!
//! // Public info is visible to everyone, private info only to the backend.
//! client.set_user_info(1001, Some("Alice"), Some("alice@example.com"))?;
//! assert_eq!(client.get_user_info(1001)?.private, "alice@example.com");
//! assert_eq!(client.get_user_public_info(&[1001, 1002])?[&1001], "Alice");
//!
//! // A ban that ends by itself.
//! client.add_project_ban(1002, Duration::from_secs(600))?;
//! assert!(client.is_project_ban(1002)?);
//! emulator.advance_clock(Duration::from_secs(601));
//! assert!(!client.is_project_ban(1002)?);
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::time::Duration;

use super::client::rtm_methods;
use super::params::Seconds;
#[allow(unused_imports)]
use super::RtmServerClient;

/// A user's info, as [`get_user_info`](RtmServerClient::get_user_info)
/// answers it.
///
/// ```
/// use rtm_server_sdk::rtm::UserInfo;
/// let mut info = UserInfo::default();
/// info.public = "Alice".into();
/// assert!(info.private.is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserInfo {
    /// The public info (`oinfo`), readable by other users; empty when
    /// never set.
    pub public: String,
    /// The private info (`pinfo`), readable only by the server side; empty
    /// when never set.
    pub private: String,
}

rtm_methods! {
    /// A login token for `uid`, to hand to the user's client (which logs in
    /// to the RTM gateway with it).
    fn get_token / get_token_with_callback (uid: i64) -> String {
        method: "gettoken",
        params: { "uid": uid },
        answer: |a| a.string("token"),
    }

    /// Revokes the login tokens of `uid`.
    fn remove_token / remove_token_with_callback (uid: i64) -> () {
        method: "removetoken",
        params: { "uid": uid },
        answer: |_| Ok(()),
    }

    /// Disconnects every client connection of `uid`.
    fn kickout / kickout_with_callback (uid: i64) -> () {
        method: "kickout",
        params: { "uid": uid },
        answer: |_| Ok(()),
    }

    /// Those of `uids` who are online.
    fn get_online_users / get_online_users_with_callback (uids: &[i64]) -> Vec<i64> {
        method: "getonlineusers",
        params: { "uids": uids },
        answer: |a| a.ints("uids"),
    }

    /// Puts `uid` on the project's black list (the user cannot log in) for
    /// `btime`, sent as whole seconds (a fraction rounds up; a duration
    /// beyond what the wire carries is `Error::InvalidArgument`, before
    /// anything is sent).
    fn add_project_black / add_project_black_with_callback (uid: i64, btime: Duration) -> () {
        method: "addprojectblack",
        params: { "uid": uid, "btime": Seconds(btime) },
        answer: |_| Ok(()),
    }

    /// Takes `uid` off the project's black list.
    fn remove_project_black / remove_project_black_with_callback (uid: i64) -> () {
        method: "removeprojectblack",
        params: { "uid": uid },
        answer: |_| Ok(()),
    }

    /// Whether `uid` is on the project's black list.
    fn is_project_black / is_project_black_with_callback (uid: i64) -> bool {
        method: "isprojectblack",
        params: { "uid": uid },
        answer: |a| a.bool("ok"),
    }

    /// Bans `uid` from the whole project (the user cannot send) for
    /// `btime`, sent as whole seconds (a fraction rounds up; a duration
    /// beyond what the wire carries is `Error::InvalidArgument`, before
    /// anything is sent).
    fn add_project_ban / add_project_ban_with_callback (uid: i64, btime: Duration) -> () {
        method: "addprojectban",
        params: { "uid": uid, "btime": Seconds(btime) },
        answer: |_| Ok(()),
    }

    /// Lifts the project-wide ban of `uid`.
    fn remove_project_ban / remove_project_ban_with_callback (uid: i64) -> () {
        method: "removeprojectban",
        params: { "uid": uid },
        answer: |_| Ok(()),
    }

    /// Whether `uid` is banned from the project.
    fn is_project_ban / is_project_ban_with_callback (uid: i64) -> bool {
        method: "isprojectban",
        params: { "uid": uid },
        answer: |a| a.bool("ok"),
    }

    /// Sets the public and/or private info of `uid`; an info that is
    /// `None` is not sent and stays as it was.
    fn set_user_info / set_user_info_with_callback
        (uid: i64, public_info: Option<&str>, private_info: Option<&str>) -> () {
        method: "setuserinfo",
        params: { "uid": uid, "oinfo": public_info, "pinfo": private_info },
        answer: |_| Ok(()),
    }

    /// The public and private info of `uid`.
    fn get_user_info / get_user_info_with_callback (uid: i64) -> UserInfo {
        method: "getuserinfo",
        params: { "uid": uid },
        answer: |a| Ok(UserInfo {
            public: a.string("oinfo")?,
            private: a.string("pinfo")?,
        }),
    }

    /// The public info of those of `uids` who have one, by uid.
    fn get_user_public_info / get_user_public_info_with_callback
        (uids: &[i64]) -> HashMap<i64, String> {
        method: "getuseropeninfo",
        params: { "uids": uids },
        answer: |a| a.id_map("info", |r, k, v| r.str_of(k, v)),
    }

    /// Deletes the messages of `uid`.
    fn clear_user_message / clear_user_message_with_callback (uid: i64) -> () {
        method: "clearusermsg",
        params: { "uid": uid },
        answer: |_| Ok(()),
    }

    /// Adds conversations (sessions) with `uids` to the session list of
    /// `uid`.
    fn add_sessions / add_sessions_with_callback (uid: i64, uids: &[i64]) -> () {
        method: "addsessions",
        params: { "uid": uid, "uids": uids },
        answer: |_| Ok(()),
    }

    /// Removes the conversations (sessions) with `uids` from the session
    /// list of `uid`.
    fn remove_sessions / remove_sessions_with_callback (uid: i64, uids: &[i64]) -> () {
        method: "removesessions",
        params: { "uid": uid, "uids": uids },
        answer: |_| Ok(()),
    }
}
