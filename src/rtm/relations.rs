//! Friends and black lists each user has a
//! friend list and a black list of its own.
//!
//! ```
//! use rtm_server_sdk::emulator::RtmEmulator;
//! use rtm_server_sdk::RtmServerClient;
//!
//! # fn main() -> rtm_server_sdk::Result<()> {
//! let emulator = RtmEmulator::start(11000001, "secret").unwrap();
//! let client = RtmServerClient::new(11000001, "secret", emulator.endpoint())?;
//!
//! client.add_friends(1001, &[1002, 1003])?;
//! assert_eq!(client.get_friends(1001)?, vec![1002, 1003]);
//! assert_eq!(client.is_friends(1001, &[1003, 1004])?, vec![1003]);
//!
//! // User 1001 blocks user 1005.
//! client.add_blacks(1001, &[1005])?;
//! assert!(client.is_black(1001, 1005)?);
//! client.del_blacks(1001, &[1005])?;
//! assert!(client.get_blacks(1001)?.is_empty());
//! # Ok(())
//! # }
//! ```

use super::client::rtm_methods;
#[allow(unused_imports)]
use super::RtmServerClient;

rtm_methods! {
    /// Makes `friends` friends of `uid` (the relation is two-way on the
    /// service: `uid` becomes their friend too).
    fn add_friends / add_friends_with_callback (uid: i64, friends: &[i64]) -> () {
        method: "addfriends",
        params: { "uid": uid, "friends": friends },
        answer: |_| Ok(()),
    }

    /// Ends the friendship of `uid` with `friends`.
    fn del_friends / del_friends_with_callback (uid: i64, friends: &[i64]) -> () {
        method: "delfriends",
        params: { "uid": uid, "friends": friends },
        answer: |_| Ok(()),
    }

    /// The friends of `uid`.
    fn get_friends / get_friends_with_callback (uid: i64) -> Vec<i64> {
        method: "getfriends",
        params: { "uid": uid },
        answer: |a| a.ints("uids"),
    }

    /// Whether `fuid` is a friend of `uid`.
    fn is_friend / is_friend_with_callback (uid: i64, fuid: i64) -> bool {
        method: "isfriend",
        params: { "uid": uid, "fuid": fuid },
        answer: |a| a.bool("ok"),
    }

    /// Those of `fuids` who are friends of `uid`.
    fn is_friends / is_friends_with_callback (uid: i64, fuids: &[i64]) -> Vec<i64> {
        method: "isfriends",
        params: { "uid": uid, "fuids": fuids },
        answer: |a| a.ints("fuids"),
    }

    /// Puts `blacks` on the black list of `uid` (`uid` blocks them).
    fn add_blacks / add_blacks_with_callback (uid: i64, blacks: &[i64]) -> () {
        method: "addblacks",
        params: { "uid": uid, "blacks": blacks },
        answer: |_| Ok(()),
    }

    /// Takes `blacks` off the black list of `uid`.
    fn del_blacks / del_blacks_with_callback (uid: i64, blacks: &[i64]) -> () {
        method: "delblacks",
        params: { "uid": uid, "blacks": blacks },
        answer: |_| Ok(()),
    }

    /// The black list of `uid`.
    fn get_blacks / get_blacks_with_callback (uid: i64) -> Vec<i64> {
        method: "getblacks",
        params: { "uid": uid },
        answer: |a| a.ints("uids"),
    }

    /// Whether `buid` is on the black list of `uid`.
    fn is_black / is_black_with_callback (uid: i64, buid: i64) -> bool {
        method: "isblack",
        params: { "uid": uid, "buid": buid },
        answer: |a| a.bool("ok"),
    }

    /// Those of `buids` who are on the black list of `uid`.
    fn is_blacks / is_blacks_with_callback (uid: i64, buids: &[i64]) -> Vec<i64> {
        method: "isblacks",
        params: { "uid": uid, "buids": buids },
        answer: |a| a.ints("buids"),
    }
}
