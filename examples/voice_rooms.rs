//! The main job: every room method of both API generations (the 2021 voice
//! rooms and the current RTC rooms, with room options, owner and
//! administrators, and administrator commands) and the listen API, each in
//! its blocking and its callback form.
//!
//! With `RTM_ENDPOINT`, `RTM_PID` and `RTM_SECRET` set, it talks to that
//! server; otherwise it starts the built-in emulator on 127.0.0.1 and talks
//! to it, so it runs anywhere:
//!
//! ```text
//! cargo run --example voice_rooms
//! RTM_ENDPOINT=host:port RTM_PID=11000001 RTM_SECRET=... cargo run --example voice_rooms
//! ```
//!
//! `RTM_ROOM` (default 900001) picks the room id used, and `RTM_UIDS`
//! (default `101,102,103`) the users, so that a run against a real project
//! touches only rooms you choose.

mod common;

use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

use rtm_server_sdk::rtm::{AdminCommand, ListenStatus, ListenTargets, RtcRoomOptions, RtcRoomType};
use rtm_server_sdk::{Result, RtmServerClient};

/// Runs a callback-form call and waits for its result, so that the two forms
/// can be shown side by side.
fn wait<T: Send + 'static>(start: impl FnOnce(Box<dyn FnOnce(Result<T>) + Send>)) -> Result<T> {
    let (tx, rx) = mpsc::channel();
    start(Box::new(move |result| {
        let _ = tx.send(result);
    }));
    rx.recv().expect("every callback runs exactly once")
}

fn main() -> ExitCode {
    common::run(run)
}

fn run() -> Result<()> {
    let rid = common::id("RTM_ROOM", 900001);
    let uids = common::ids("RTM_UIDS", &[101, 102, 103]);
    let target = common::target(); // keeps an emulator running until the end
    let (first, rest) = uids.split_first().expect("at least one uid");

    let client = target.connect()?;
    println!("connected\n");

    println!("-- voice rooms, blocking form --");
    client.pull_into_voice_room(rid, &[*first])?;
    println!("pull_into_voice_room({rid}, [{first}]): ok (creates the room)");
    client.invite_user_into_voice_room(rid, rest, *first)?;
    println!("invite_user_into_voice_room({rid}, {rest:?}, from {first}): ok");
    client.pull_into_voice_room(rid, rest)?;
    println!("pull_into_voice_room({rid}, {rest:?}): ok");
    println!("get_voice_room_list(): {:?}", client.get_voice_room_list()?);
    let members = client.get_voice_room_members(rid)?;
    println!(
        "get_voice_room_members({rid}): uids {:?}, managers {:?}",
        members.uids, members.managers
    );
    println!(
        "get_voice_room_member_count({rid}): {}",
        client.get_voice_room_member_count(rid)?
    );
    client.set_voice_room_mic_status(rid, true)?;
    println!("set_voice_room_mic_status({rid}, true): ok");
    if let Some(last) = rest.last() {
        client.kick_out_from_voice_room(rid, *last, *first)?;
        println!("kick_out_from_voice_room({rid}, {last}, from {first}): ok");
    }
    println!(
        "get_voice_room_member_count({rid}): {}",
        client.get_voice_room_member_count(rid)?
    );
    client.close_voice_room(rid)?;
    println!("close_voice_room({rid}): ok");

    println!("\n-- voice rooms, callback form (each with a 5 s per-call timeout) --");
    let c = client.with_timeout(Duration::from_secs(5));
    wait(|f| c.pull_into_voice_room_with_callback(rid, &[*first], f))?;
    println!("pull_into_voice_room_with_callback: ok");
    wait(|f| c.invite_user_into_voice_room_with_callback(rid, rest, *first, f))?;
    println!("invite_user_into_voice_room_with_callback: ok");
    wait(|f| c.pull_into_voice_room_with_callback(rid, rest, f))?;
    println!("pull_into_voice_room_with_callback: ok");
    println!(
        "get_voice_room_list_with_callback: {:?}",
        wait(|f| c.get_voice_room_list_with_callback(f))?
    );
    let members = wait(|f| c.get_voice_room_members_with_callback(rid, f))?;
    println!(
        "get_voice_room_members_with_callback: uids {:?}, managers {:?}",
        members.uids, members.managers
    );
    let count = wait(|f| c.get_voice_room_member_count_with_callback(rid, f))?;
    println!("get_voice_room_member_count_with_callback: {count}");
    wait(|f| c.set_voice_room_mic_status_with_callback(rid, false, f))?;
    println!("set_voice_room_mic_status_with_callback(false): ok");
    if let Some(last) = rest.last() {
        wait(|f| c.kick_out_from_voice_room_with_callback(rid, *last, *first, f))?;
        println!("kick_out_from_voice_room_with_callback({last}): ok");
    }
    wait(|f| c.close_voice_room_with_callback(rid, f))?;
    println!("close_voice_room_with_callback: ok");

    rtc_rooms(&client, rid + 1, &uids)?;
    listen(&client, rid)?;

    println!("\n-- errors are typed --");
    match client.close_voice_room(rid) {
        Err(e) => println!(
            "close_voice_room({rid}) again: {e} (code {})",
            e.code().map_or("none".to_string(), |c| c.to_string())
        ),
        Ok(()) => println!("close_voice_room({rid}) again: ok"),
    }
    client.close();
    println!("\ndone");
    Ok(())
}

/// The current generation of the room API: RTC rooms.
fn rtc_rooms(client: &RtmServerClient, rid: i64, uids: &[i64]) -> Result<()> {
    let (first, rest) = uids.split_first().expect("at least one uid");
    println!("\n-- RTC rooms, blocking form --");
    let options = RtcRoomOptions {
        voice_range: Some(50),
        ..Default::default()
    };
    client.pull_into_rtc_room(rid, &[*first], RtcRoomType::Voice, options)?;
    println!("pull_into_rtc_room({rid}, [{first}], Voice, voice range 50): ok (creates the room)");
    client.invite_user_into_rtc_room(rid, rest, *first)?;
    println!("invite_user_into_rtc_room({rid}, {rest:?}, from {first}): ok");
    client.pull_into_rtc_room(rid, rest, RtcRoomType::Voice, RtcRoomOptions::default())?;
    println!("pull_into_rtc_room({rid}, {rest:?}): ok");
    if let Some(second) = rest.first() {
        client.admin_command(rid, &[*second], AdminCommand::AppointAdministrator)?;
        println!("admin_command({rid}, [{second}], AppointAdministrator): ok");
        client.admin_command(rid, &[*second], AdminCommand::ForbidSendingAudio)?;
        println!("admin_command({rid}, [{second}], ForbidSendingAudio): ok");
    }
    let members = client.get_rtc_room_members(rid)?;
    println!(
        "get_rtc_room_members({rid}): uids {:?}, administrators {:?}, owner {:?}",
        members.uids, members.administrators, members.owner
    );
    println!("get_rtc_room_list(): {:?}", client.get_rtc_room_list()?);
    client.set_rtc_room_mic_status(rid, true)?;
    println!("set_rtc_room_mic_status({rid}, true): ok");

    println!("\n-- RTC rooms, callback form --");
    let count = wait(|f| client.get_rtc_room_member_count_with_callback(rid, f))?;
    println!("get_rtc_room_member_count_with_callback: {count}");
    if let Some(last) = rest.last() {
        wait(|f| client.kick_out_from_rtc_room_with_callback(rid, *last, *first, f))?;
        println!("kick_out_from_rtc_room_with_callback({last}): ok");
        wait(|f| {
            client.pull_into_rtc_room_with_callback(
                rid,
                &[*last],
                RtcRoomType::Video,
                RtcRoomOptions {
                    max_receive_streams: Some(4),
                    ..Default::default()
                },
                f,
            )
        })?;
        println!("pull_into_rtc_room_with_callback({last}, Video, 4 streams): ok");
    }
    let members = wait(|f| client.get_rtc_room_members_with_callback(rid, f))?;
    println!(
        "get_rtc_room_members_with_callback: uids {:?}, administrators {:?}, owner {:?}",
        members.uids, members.administrators, members.owner
    );
    wait(|f| client.close_rtc_room_with_callback(rid, f))?;
    println!("close_rtc_room_with_callback: ok");
    Ok(())
}

/// What the server pushes to this connection.
fn listen(client: &RtmServerClient, rid: i64) -> Result<()> {
    println!("\n-- listen, blocking form --");
    client.add_listen(
        &ListenTargets::new()
            .rooms([rid])
            .events(["login", "logout"]),
    )?;
    println!("add_listen(room {rid}, events login and logout): ok");
    client.set_listen_status(ListenStatus {
        p2p: true,
        ..Default::default()
    })?;
    println!("set_listen_status(every P2P message): ok");
    println!("\n-- listen, callback form --");
    wait(|f| client.remove_listen_with_callback(&ListenTargets::new().events(["logout"]), f))?;
    println!("remove_listen_with_callback(event logout): ok");
    let state = client.listen_state();
    println!(
        "listen_state(): rooms {:?}, events {:?}, all P2P {}",
        state.rids, state.events, state.all_p2p
    );
    Ok(())
}
