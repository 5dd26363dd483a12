//! The public modules can be glob-imported together without an ambiguous
//! name: the emulator's listen state and connection events have names of
//! their own (`ConnListenState`, `ConnEvent`), apart from
//! `rtm::ListenState` and `fpnn::ConnectionEvent`.
#![cfg(feature = "emulator")]
#![deny(warnings)]

use rtm_server_sdk::emulator::*;
use rtm_server_sdk::fpnn::*;
use rtm_server_sdk::rtm::*;

#[test]
fn the_three_modules_glob_import_without_a_clash() {
    // One type from each module, the formerly clashing names first.
    let client_side: Option<ListenState> = None;
    let emulator_side = ConnListenState::default();
    let event: Option<ConnectionEvent> = None;
    let observed: Option<ConnEvent> = None;
    assert!(client_side.is_none() && event.is_none() && observed.is_none());
    assert_eq!(emulator_side.conn_id, 0);

    let emu = RtmEmulator::start(11000001, "secret").unwrap();
    let config = ClientConfig::default();
    let client = RtmServerClient::with_config(11000001, "secret", emu.endpoint(), config).unwrap();
    client
        .add_listen(&ListenTargets::new().groups([7]))
        .unwrap();
    let states: Vec<ConnListenState> = emu.listen_state();
    assert!(states[0].gids.contains(&7));
    let rooms: Rooms = emu.rooms();
    assert!(rooms.voice.is_empty());
}
