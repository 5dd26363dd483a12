//! Groups members, bans, public and private info,
//! counts.
//!
//! A group needs no creation: adding members makes it. A ban stops a user
//! from speaking in a group for a time; a ban with gid 0 applies to every
//! group.
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
//! client.add_group_members(7, &[1001, 1002])?;
//! assert_eq!(client.get_group_count(7)?, 2);
//! assert!(client.is_group_member(7, 1002)?);
//! assert_eq!(client.get_user_groups(1001)?, vec![7]);
//!
//! client.set_group_info(7, Some("Team chat"), None)?;
//! assert_eq!(client.get_group_info(7)?.public, "Team chat");
//!
//! client.add_group_ban(7, 1002, Duration::from_secs(60))?;
//! assert!(client.is_ban_of_group(7, 1002)?);
//! emulator.advance_clock(Duration::from_secs(61)); // the ban expires
//! assert!(!client.is_ban_of_group(7, 1002)?);
//! # Ok(()) }
//! ```

use std::time::Duration;

use super::client::rtm_methods;
use super::params::Seconds;
#[allow(unused_imports)]
use super::RtmServerClient;

/// The public and private info of a group (answered by
/// [`get_group_info`](RtmServerClient::get_group_info)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupInfo {
    /// The public info (`oinfo`), visible to the group's users.
    pub public: String,
    /// The private info (`pinfo`), visible to the server only.
    pub private: String,
}

rtm_methods! {
    /// Adds users to a group (creating the group when it has no members
    /// yet).
    fn add_group_members / add_group_members_with_callback (gid: i64, uids: &[i64]) -> () {
        method: "addgroupmembers",
        params: { "gid": gid, "uids": uids },
        answer: |_| Ok(()),
    }

    /// Removes users from a group.
    fn del_group_members / del_group_members_with_callback (gid: i64, uids: &[i64]) -> () {
        method: "delgroupmembers",
        params: { "gid": gid, "uids": uids },
        answer: |_| Ok(()),
    }

    /// Deletes a group: its members, info and bans.
    fn del_group / del_group_with_callback (gid: i64) -> () {
        method: "delgroup",
        params: { "gid": gid },
        answer: |_| Ok(()),
    }

    /// The members of a group.
    fn get_group_members / get_group_members_with_callback (gid: i64) -> Vec<i64> {
        method: "getgroupmembers",
        params: { "gid": gid },
        answer: |a| a.ints("uids"),
    }

    /// The number of members of a group.
    fn get_group_count / get_group_count_with_callback (gid: i64) -> i64 {
        method: "getgroupcount",
        params: { "gid": gid },
        answer: |a| a.int("cn"),
    }

    /// Whether `uid` is a member of the group.
    fn is_group_member / is_group_member_with_callback (gid: i64, uid: i64) -> bool {
        method: "isgroupmember",
        params: { "gid": gid, "uid": uid },
        answer: |a| a.bool("ok"),
    }

    /// The groups `uid` is a member of.
    fn get_user_groups / get_user_groups_with_callback (uid: i64) -> Vec<i64> {
        method: "getusergroups",
        params: { "uid": uid },
        answer: |a| a.ints("gids"),
    }

    /// Bans `uid` from speaking in group `gid` for `duration` (sent as whole
    /// seconds, a fraction rounded up). A `gid` of 0 (or less) bans the
    /// user in every group: `gid` is then not sent.
    fn add_group_ban / add_group_ban_with_callback (gid: i64, uid: i64, duration: Duration) -> () {
        method: "addgroupban",
        params: { "gid": (gid > 0).then_some(gid), "uid": uid, "btime": Seconds(duration) },
        answer: |_| Ok(()),
    }

    /// Lifts the ban of `uid` in group `gid`. A `gid` of 0 (or less) lifts
    /// the user's bans in every group: `gid` is then not sent.
    fn remove_group_ban / remove_group_ban_with_callback (gid: i64, uid: i64) -> () {
        method: "removegroupban",
        params: { "gid": (gid > 0).then_some(gid), "uid": uid },
        answer: |_| Ok(()),
    }

    /// Whether `uid` is banned in group `gid` now.
    fn is_ban_of_group / is_ban_of_group_with_callback (gid: i64, uid: i64) -> bool {
        method: "isbanofgroup",
        params: { "gid": gid, "uid": uid },
        answer: |a| a.bool("ok"),
    }

    /// Sets a group's public and private info; a `None` leaves that info
    /// unchanged (its key is not sent).
    fn set_group_info / set_group_info_with_callback
        (gid: i64, public_info: Option<&str>, private_info: Option<&str>) -> () {
        method: "setgroupinfo",
        params: { "gid": gid, "oinfo": public_info, "pinfo": private_info },
        answer: |_| Ok(()),
    }

    /// A group's public and private info.
    fn get_group_info / get_group_info_with_callback (gid: i64) -> GroupInfo {
        method: "getgroupinfo",
        params: { "gid": gid },
        answer: |a| Ok(GroupInfo { public: a.string("oinfo")?, private: a.string("pinfo")? }),
    }

    /// Deletes every group of the project.
    fn clear_project_group / clear_project_group_with_callback () -> () {
        method: "clearprojectgroup",
        params: {},
        answer: |_| Ok(()),
    }
}
