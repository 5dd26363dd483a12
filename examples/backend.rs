//! What a real backend does with RTM: at a user's login (a token, user
//! info, friends, saved data), when it sets up a group chat (a group
//! with members, a room, a message and a shared file, read back from
//! history and received as pushes), when a phone registers for offline
//! pushes (devices and push options), when it moderates what users send
//! (text checks, profanity, translation), and when it keeps IM groups on
//! the IM server (infos, grants, members).
//!
//! With `RTM_ENDPOINT`, `RTM_PID` and `RTM_SECRET` set, it talks to that
//! server; otherwise it starts the built-in emulator on 127.0.0.1:
//!
//! ```text
//! cargo run --example backend
//! RTM_ENDPOINT=host:port RTM_PID=11000001 RTM_SECRET=... cargo run --example backend
//! ```
//!
//! `RTM_UIDS` (default `201,202,203`) picks the users and `RTM_GROUP`
//! (default 700001) the group and room id it touches.

mod common;

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use rtm_server_sdk::rtm::{
    ChatQuery, FileOptions, ListenTargets, PushHandler, PushMessage, PushOptionType, SendOptions,
    TranslateOptions,
};
use rtm_server_sdk::{Result, RtmServerClient};

/// Prints the group messages the server pushes to this backend.
struct GroupPushes;

impl PushHandler for GroupPushes {
    fn on_group_message(&self, _client: &RtmServerClient, m: &PushMessage) {
        match &m.file {
            Some(file) => println!(
                "  (push) group {}: {} shared {:?} ({} bytes)",
                m.to, m.from, file.name, file.size
            ),
            None => println!(
                "  (push) group {}: {} says {:?}",
                m.to,
                m.from,
                m.body.as_text().unwrap_or("<binary>")
            ),
        }
    }
}

fn main() -> ExitCode {
    common::run(run)
}

fn run() -> Result<()> {
    let uids = common::ids("RTM_UIDS", &[201, 202, 203]);
    let gid = common::id("RTM_GROUP", 700001);
    let target = common::target(); // keeps an emulator running until the end
    let client = target.connect()?;

    let (me, others) = uids.split_first().expect("at least one uid");
    login(&client, *me, others)?;
    group_chat(&client, gid, &uids)?;
    devices(&client, *me, gid)?;
    moderation(&client, *me)?;
    im_server(&client, gid, &uids)?;
    client.close();
    println!("\ndone");
    Ok(())
}

/// A user logs in: hand their client a token, keep their profile, their
/// friends and their settings.
fn login(client: &RtmServerClient, uid: i64, friends: &[i64]) -> Result<()> {
    println!("\n-- user {uid} logs in --");
    let token = client.get_token(uid)?;
    println!("get_token({uid}): {token} (give it to the user's client)");
    client.set_user_info(uid, Some("Alice"), Some("plan=gold"))?;
    let info = client.get_user_info(uid)?;
    println!(
        "get_user_info({uid}): public {:?}, private {:?}",
        info.public, info.private
    );
    client.add_friends(uid, friends)?;
    println!("add_friends({uid}, {friends:?}): ok");
    println!("get_friends({uid}): {:?}", client.get_friends(uid)?);
    client.set_data(uid, "theme", "dark")?;
    println!(
        "get_data({uid}, \"theme\"): {:?}",
        client.get_data(uid, "theme")?
    );
    println!("is_project_ban({uid}): {}", client.is_project_ban(uid)?);
    Ok(())
}

/// A group chat is set up: a group with members, and a room for its live
/// voice, with a short ban for a troublemaker.
fn group_chat(client: &RtmServerClient, gid: i64, uids: &[i64]) -> Result<()> {
    println!("\n-- group {gid} --");
    client.add_group_members(gid, uids)?;
    println!("add_group_members({gid}, {uids:?}): ok");
    client.set_group_info(gid, Some("Book club"), None)?;
    println!(
        "get_group_members({gid}): {:?}, count {}",
        client.get_group_members(gid)?,
        client.get_group_count(gid)?
    );
    let added = client.add_room_members(gid, uids)?;
    println!("add_room_members({gid}, {uids:?}): added {added:?}");
    if let Some(last) = uids.last() {
        client.add_group_ban(gid, *last, Duration::from_secs(60))?;
        println!(
            "add_group_ban({gid}, {last}, 60 s): ok; is_ban_of_group: {}",
            client.is_ban_of_group(gid, *last)?
        );
        client.remove_group_ban(gid, *last)?;
        println!("remove_group_ban({gid}, {last}): ok");
    }
    println!(
        "get_room_count([{gid}]): {:?}",
        client.get_room_count(&[gid])?
    );

    println!("\n-- messages in group {gid} --");
    client.set_push_handler(GroupPushes);
    client.add_listen(&ListenTargets::new().groups([gid]))?;
    let from = uids[0];
    let sent = client.send_group_chat(
        from,
        gid,
        "Welcome to the book club!",
        &SendOptions::default(),
    )?;
    println!(
        "send_group_chat({from}, {gid}, ...): mid {}, mtime {}",
        sent.mid, sent.mtime
    );
    let notes = FileOptions {
        name: Some("reading-list.txt".into()),
        ..Default::default()
    };
    let sent = client.send_group_file(from, gid, b"1. Dune\n2. Emma\n", &notes)?;
    println!(
        "send_group_file({from}, {gid}, reading-list.txt): mid {}, mtime {}",
        sent.mid, sent.mtime
    );
    let page = client.get_group_chat(gid, from, &ChatQuery::default())?;
    println!(
        "get_group_chat({gid}): {} messages, newest first",
        page.messages.len()
    );
    for m in &page.messages {
        match &m.file {
            Some(file) => println!("  {} shared {:?} at {}", m.from, file.name, file.url),
            None => println!(
                "  {} said {:?}",
                m.from,
                m.body.as_text().unwrap_or("<binary>")
            ),
        }
    }
    // Give the pushes a moment to be printed before the client closes.
    std::thread::sleep(Duration::from_millis(200));
    Ok(())
}

/// A user's phone registers for offline pushes, and the user mutes the
/// group's messages but keeps the chat texts of one friend.
fn devices(client: &RtmServerClient, uid: i64, gid: i64) -> Result<()> {
    println!("\n-- devices of user {uid} --");
    let token = format!("device-token-of-{uid}");
    client.add_device(uid, "fcm", &token)?;
    println!("add_device({uid}, \"fcm\", {token:?}): ok");
    client.add_device_push_option(uid, PushOptionType::Group, gid, &[])?;
    client.add_device_push_option(uid, PushOptionType::P2p, uid + 1, &[30])?;
    let options = client.get_device_push_option(uid)?;
    println!(
        "get_device_push_option({uid}): groups {:?}, peers {:?}",
        options.group, options.p2p
    );
    client.remove_device_push_option(uid, PushOptionType::Group, gid, &[])?;
    client.remove_device(uid, &token)?;
    println!("remove_device_push_option, remove_device: ok");
    Ok(())
}

/// What users send is checked before it is shown: a text check, the
/// profanity filter, and a translation for a reader of another language.
fn moderation(client: &RtmServerClient, uid: i64) -> Result<()> {
    println!("\n-- moderation --");
    let text = "that damn book was great";
    let check = client.text_check(text, uid)?;
    println!(
        "text_check({text:?}): result {}, text {:?}, tags {:?}",
        check.result, check.text, check.tags
    );
    let clean = client.profanity(text, true, uid)?;
    println!(
        "profanity({text:?}): {:?}, classes {:?}",
        clean.text, clean.classification
    );
    let t = client.translate(&clean.text, None, "fr", TranslateOptions::default(), uid)?;
    println!(
        "translate(.., \"fr\"): {:?} (from {:?})",
        t.target_text, t.source
    );
    Ok(())
}

/// The IM server keeps IM groups of its own: an owner, infos,
/// permissions, who may apply and invite, and the members.
fn im_server(client: &RtmServerClient, gid: i64, uids: &[i64]) -> Result<()> {
    println!("\n-- IM group {gid} --");
    let (owner, members) = (uids[0], &uids[1..]);
    let infos = HashMap::from([("name".to_string(), "Book club".to_string())]);
    let permissions = HashMap::from([("post".to_string(), "members".to_string())]);
    client.imserver_create_group(gid, owner, &infos, &permissions)?;
    println!("imserver_create_group({gid}, owner {owner}): ok");
    client.imserver_add_group_members(gid, members)?;
    println!("imserver_add_group_members({gid}, {members:?}): ok");
    // Who may apply to and invite into the group (`type` and the grant
    // values are the IM server's codes; no official source documents them,
    // so these are placeholders).
    client.imserver_set_apply_grant(2, gid, 1, None)?;
    client.imserver_set_invite_grant(2, gid, 1, 0)?;
    println!(
        "apply grant {}, invite grant {:?}",
        client.imserver_get_apply_grant(2, gid)?,
        client.imserver_get_invite_grant(2, gid)?
    );
    let user_infos = HashMap::from([("nickname".to_string(), "Alice".to_string())]);
    client.imserver_set_user_infos(owner, &user_infos)?;
    println!(
        "imserver_get_group_infos([{gid}]): {:?}",
        client.imserver_get_group_infos(&[gid])?
    );
    println!(
        "imserver_get_user_infos([{owner}]): {:?}",
        client.imserver_get_user_infos(&[owner])?
    );
    client.imserver_dismiss_group(gid)?;
    println!("imserver_dismiss_group({gid}): ok");
    Ok(())
}
