//! Groups, rooms, devices and the IM records (A.5, A.7) through the
//! emulator: what was set is read back, bans expire on the emulator's
//! clock, counts follow members, bad input gets the gateway's errors, and
//! the callback forms give the same results.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use common::{map, watchdog};
use rmpv::Value;
use rtm_server_sdk::emulator::RtmEmulator;
use rtm_server_sdk::rtm::PushOptionType;
use rtm_server_sdk::{Error, Result, RtmServerClient};

const PID: i64 = 11000001;
const SECRET: &str = "groups-secret";
const LIMIT: Duration = Duration::from_secs(20);

fn setup() -> (RtmEmulator, RtmServerClient) {
    common::emulator_and_client(PID, SECRET, Duration::from_secs(5))
}

/// Calls the callback form `client.method_with_callback(args...)` and waits
/// for its result.
macro_rules! cb {
    ($c:ident . $m:ident ( $($a:expr),* $(,)? )) => {{
        let (tx, rx) = std::sync::mpsc::channel();
        $c.$m($($a,)* move |r| {
            let _ = tx.send(r);
        });
        rx.recv_timeout(Duration::from_secs(5))
            .expect("the callback ran")
    }};
}

fn sorted(mut v: Vec<i64>) -> Vec<i64> {
    v.sort_unstable();
    v
}

fn strs(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn code<T: std::fmt::Debug>(r: Result<T>) -> i64 {
    match r {
        Err(e) => e
            .server_code()
            .unwrap_or_else(|| panic!("expected a server error, got {e:?}")),
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}

#[test]
fn group_members_counts_and_user_groups() {
    watchdog(LIMIT, || {
        let (emu, client) = setup();
        client.add_group_members(7, &[1, 2, 3]).unwrap();
        client.add_group_members(8, &[1]).unwrap();
        assert_eq!(client.get_group_count(7).unwrap(), 3);
        assert_eq!(sorted(client.get_group_members(7).unwrap()), [1, 2, 3]);
        assert!(client.is_group_member(7, 2).unwrap());
        assert!(!client.is_group_member(7, 9).unwrap());
        assert_eq!(sorted(client.get_user_groups(1).unwrap()), [7, 8]);
        assert_eq!(client.get_user_groups(2).unwrap(), [7]);

        // Counts follow members, in both forms.
        client.del_group_members(7, &[2, 99]).unwrap();
        assert_eq!(client.get_group_count(7).unwrap(), 2);
        assert!(!client.is_group_member(7, 2).unwrap());
        cb!(client.add_group_members_with_callback(7, &[4, 5])).unwrap();
        assert_eq!(cb!(client.get_group_count_with_callback(7)).unwrap(), 4);
        assert_eq!(
            sorted(cb!(client.get_group_members_with_callback(7)).unwrap()),
            [1, 3, 4, 5]
        );
        assert!(cb!(client.is_group_member_with_callback(7, 4)).unwrap());
        assert_eq!(
            sorted(cb!(client.get_user_groups_with_callback(1)).unwrap()),
            [7, 8]
        );
        assert_eq!(emu.group(7).unwrap().members, BTreeSet::from([1, 3, 4, 5]));

        // A group never made reads as empty.
        assert_eq!(client.get_group_count(42).unwrap(), 0);
        assert!(client.get_group_members(42).unwrap().is_empty());
        assert!(emu.group(42).is_none());

        // Deleting a group, then every group.
        client.del_group(7).unwrap();
        assert!(emu.group(7).is_none());
        assert_eq!(client.get_group_count(7).unwrap(), 0);
        assert_eq!(client.get_user_groups(1).unwrap(), [8]);
        cb!(client.del_group_with_callback(8)).unwrap();
        assert!(client.get_user_groups(1).unwrap().is_empty());
        client.add_group_members(9, &[1]).unwrap();
        client.add_group_members(10, &[2]).unwrap();
        assert_eq!(emu.group_ids(), [9, 10]);
        client.clear_project_group().unwrap();
        assert!(emu.group_ids().is_empty());
        client.add_group_members(11, &[1]).unwrap();
        cb!(client.clear_project_group_with_callback()).unwrap();
        assert!(client.get_user_groups(1).unwrap().is_empty());
    })
}

#[test]
fn group_bans_expire_and_all_group_bans() {
    watchdog(LIMIT, || {
        let (emu, client) = setup();
        client.add_group_members(7, &[1, 2]).unwrap();
        client.add_group_ban(7, 1, Duration::from_secs(60)).unwrap();
        assert!(client.is_ban_of_group(7, 1).unwrap());
        assert!(!client.is_ban_of_group(8, 1).unwrap());
        assert!(!client.is_ban_of_group(7, 2).unwrap());
        assert!(emu.is_banned_in_group(7, 1));
        // A ban does not take the user out of the group.
        assert!(client.is_group_member(7, 1).unwrap());

        // The ban lasts 60 s on the emulator's clock.
        emu.advance_clock(Duration::from_secs(59));
        assert!(client.is_ban_of_group(7, 1).unwrap());
        emu.advance_clock(Duration::from_secs(2));
        assert!(!client.is_ban_of_group(7, 1).unwrap());
        assert!(emu.group(7).unwrap().bans.is_empty());

        // gid 0: every group. Lifting the ban in one group leaves it.
        client.add_group_ban(0, 2, Duration::from_secs(10)).unwrap();
        assert!(client.is_ban_of_group(7, 2).unwrap());
        assert!(client.is_ban_of_group(99, 2).unwrap());
        client.remove_group_ban(7, 2).unwrap();
        assert!(client.is_ban_of_group(7, 2).unwrap());
        client.remove_group_ban(0, 2).unwrap();
        assert!(!client.is_ban_of_group(7, 2).unwrap());
        assert!(!client.is_ban_of_group(99, 2).unwrap());

        // Lifting with gid 0 lifts the bans in every group too.
        client.add_group_ban(7, 3, Duration::from_secs(10)).unwrap();
        client.add_group_ban(8, 3, Duration::from_secs(10)).unwrap();
        client.remove_group_ban(0, 3).unwrap();
        assert!(!client.is_ban_of_group(7, 3).unwrap());
        assert!(!client.is_ban_of_group(8, 3).unwrap());

        // Callback forms; an all-groups ban also expires.
        cb!(client.add_group_ban_with_callback(0, 4, Duration::from_millis(1500))).unwrap();
        assert!(cb!(client.is_ban_of_group_with_callback(5, 4)).unwrap());
        emu.advance_clock(Duration::from_secs(2));
        assert!(!cb!(client.is_ban_of_group_with_callback(5, 4)).unwrap());
        cb!(client.add_group_ban_with_callback(7, 4, Duration::from_secs(5))).unwrap();
        assert_eq!(
            emu.group(7)
                .unwrap()
                .bans
                .keys()
                .copied()
                .collect::<Vec<_>>(),
            [4]
        );
        cb!(client.remove_group_ban_with_callback(7, 4)).unwrap();
        assert!(!client.is_ban_of_group(7, 4).unwrap());

        // Deleting the group forgets its bans.
        client.add_group_ban(7, 1, Duration::from_secs(10)).unwrap();
        client.del_group(7).unwrap();
        assert!(!client.is_ban_of_group(7, 1).unwrap());
    })
}

#[test]
fn group_info_is_read_back() {
    watchdog(LIMIT, || {
        let (emu, client) = setup();
        let info = client.get_group_info(7).unwrap();
        assert_eq!((info.public.as_str(), info.private.as_str()), ("", ""));
        client.set_group_info(7, Some("pub"), Some("priv")).unwrap();
        let info = client.get_group_info(7).unwrap();
        assert_eq!(
            (info.public.as_str(), info.private.as_str()),
            ("pub", "priv")
        );
        // `None` leaves an info as it is.
        client.set_group_info(7, None, Some("priv2")).unwrap();
        cb!(client.set_group_info_with_callback(7, Some("pub2"), None)).unwrap();
        let info = cb!(client.get_group_info_with_callback(7)).unwrap();
        assert_eq!(
            (info.public.as_str(), info.private.as_str()),
            ("pub2", "priv2")
        );
        let group = emu.group(7).unwrap();
        assert_eq!(
            (group.public_info.as_str(), group.private_info.as_str()),
            ("pub2", "priv2")
        );
        assert!(group.members.is_empty());
    })
}

#[test]
fn room_members_counts_and_user_rooms() {
    watchdog(LIMIT, || {
        let (emu, client) = setup();
        client.add_room_member(5, 1).unwrap();
        // Only the uids not yet in the room are added, each once.
        assert_eq!(client.add_room_members(5, &[1, 2, 3, 2]).unwrap(), [2, 3]);
        assert_eq!(sorted(client.get_room_members(5).unwrap()), [1, 2, 3]);
        // Only the members are removed.
        assert_eq!(client.del_room_members(5, &[3, 4]).unwrap(), [3]);
        client.del_room_member(5, 1).unwrap();
        assert_eq!(client.get_room_members(5).unwrap(), [2]);

        // User-room links; counts follow members.
        client.add_user_rooms(&[5, 6], 9).unwrap();
        let counts = client.get_room_count(&[5, 6, 7]).unwrap();
        assert_eq!(counts, HashMap::from([(5, 2), (6, 1), (7, 0)]));
        client.delete_user_rooms(&[5, 6], 9).unwrap();
        let counts = client.get_room_count(&[5, 6]).unwrap();
        assert_eq!(counts, HashMap::from([(5, 1), (6, 0)]));
        assert_eq!(emu.room(5).unwrap().members, BTreeSet::from([2]));
        // `cn` is keyed by decimal strings, each asked rid once.
        let raw = client
            .call(
                "getroomcount",
                map(vec![(
                    "rids",
                    Value::from(vec![Value::from(5), Value::from(5)]),
                )]),
            )
            .unwrap();
        let cn = rtm_server_sdk::fpnn::codec::map_get(&raw, "cn").unwrap();
        assert_eq!(cn, &map(vec![("5", Value::from(1))]));

        // The callback forms.
        cb!(client.add_room_member_with_callback(6, 1)).unwrap();
        assert_eq!(
            cb!(client.add_room_members_with_callback(6, &[1, 2])).unwrap(),
            [2]
        );
        assert_eq!(
            cb!(client.get_room_count_with_callback(&[6])).unwrap(),
            HashMap::from([(6, 2)])
        );
        assert_eq!(
            cb!(client.del_room_members_with_callback(6, &[2, 3])).unwrap(),
            [2]
        );
        cb!(client.del_room_member_with_callback(6, 1)).unwrap();
        cb!(client.add_user_rooms_with_callback(&[6, 8], 4)).unwrap();
        assert_eq!(cb!(client.get_room_members_with_callback(8)).unwrap(), [4]);
        cb!(client.delete_user_rooms_with_callback(&[6, 8], 4)).unwrap();
        assert!(client.get_room_members(6).unwrap().is_empty());
        assert_eq!(emu.room_ids(), [5, 6, 8]);
    })
}

#[test]
fn room_bans_expire_and_room_info() {
    watchdog(LIMIT, || {
        let (emu, client) = setup();
        client.add_room_ban(5, 1, Duration::from_secs(30)).unwrap();
        assert!(client.is_ban_of_room(5, 1).unwrap());
        assert!(!client.is_ban_of_room(6, 1).unwrap());
        assert!(emu.is_banned_in_room(5, 1));
        emu.advance_clock(Duration::from_secs(31));
        assert!(!client.is_ban_of_room(5, 1).unwrap());

        // rid 0: every room.
        cb!(client.add_room_ban_with_callback(0, 2, Duration::from_secs(30))).unwrap();
        assert!(cb!(client.is_ban_of_room_with_callback(77, 2)).unwrap());
        client.remove_room_ban(77, 2).unwrap();
        assert!(client.is_ban_of_room(77, 2).unwrap());
        cb!(client.remove_room_ban_with_callback(0, 2)).unwrap();
        assert!(!client.is_ban_of_room(77, 2).unwrap());
        client.add_room_ban(5, 3, Duration::from_secs(30)).unwrap();
        client.remove_room_ban(5, 3).unwrap();
        assert!(!client.is_ban_of_room(5, 3).unwrap());

        // Info.
        client
            .set_room_info(5, Some("lobby"), Some("secret"))
            .unwrap();
        cb!(client.set_room_info_with_callback(5, None, Some("secret2"))).unwrap();
        let info = client.get_room_info(5).unwrap();
        assert_eq!(
            (info.public.as_str(), info.private.as_str()),
            ("lobby", "secret2")
        );
        let info = cb!(client.get_room_info_with_callback(6)).unwrap();
        assert_eq!((info.public.as_str(), info.private.as_str()), ("", ""));
        assert_eq!(emu.room(5).unwrap().public_info, "lobby");
    })
}

#[test]
fn devices_and_push_options() {
    watchdog(LIMIT, || {
        let (emu, client) = setup();
        client.add_device(1, "fcm", "t1").unwrap();
        cb!(client.add_device_with_callback(1, "apns", "t2")).unwrap();
        assert_eq!(
            emu.devices(1),
            BTreeMap::from([
                ("t1".to_string(), "fcm".to_string()),
                ("t2".to_string(), "apns".to_string())
            ])
        );
        // A token belongs to one user.
        client.add_device(2, "fcm", "t1").unwrap();
        assert_eq!(emu.devices(1).keys().collect::<Vec<_>>(), ["t2"]);
        assert_eq!(emu.devices(2).keys().collect::<Vec<_>>(), ["t1"]);
        client.remove_device(1, "t2").unwrap();
        cb!(client.remove_device_with_callback(2, "t1")).unwrap();
        assert!(emu.devices(1).is_empty() && emu.devices(2).is_empty());

        // Push options: mtypes add up; an empty list is every mtype.
        let p2p = PushOptionType::P2p;
        let group = PushOptionType::Group;
        client.add_device_push_option(1, p2p, 2, &[30, 31]).unwrap();
        cb!(client.add_device_push_option_with_callback(1, p2p, 2, &[32])).unwrap();
        client.add_device_push_option(1, group, 7, &[]).unwrap();
        client.add_device_push_option(1, group, 7, &[5]).unwrap();
        let options = client.get_device_push_option(1).unwrap();
        assert_eq!(options.p2p, HashMap::from([(2, vec![30, 31, 32])]));
        assert_eq!(options.group, HashMap::from([(7, vec![])]));
        assert_eq!(emu.device_push_options(1), options);

        client.remove_device_push_option(1, p2p, 2, &[30]).unwrap();
        assert_eq!(
            cb!(client.get_device_push_option_with_callback(1))
                .unwrap()
                .p2p,
            HashMap::from([(2, vec![31, 32])])
        );
        cb!(client.remove_device_push_option_with_callback(1, p2p, 2, &[31, 32])).unwrap();
        client.remove_device_push_option(1, group, 7, &[]).unwrap();
        let options = client.get_device_push_option(1).unwrap();
        assert!(options.p2p.is_empty() && options.group.is_empty());
    })
}

#[test]
fn imserver_records() {
    watchdog(LIMIT, || {
        let (emu, client) = setup();
        // User infos: set key by key, read back.
        client
            .imserver_set_user_infos(1, &strs(&[("a", "1")]))
            .unwrap();
        cb!(client.imserver_set_user_infos_with_callback(1, &strs(&[("b", "2")]))).unwrap();
        let infos = client.imserver_get_user_infos(&[1, 2]).unwrap();
        assert_eq!(infos, HashMap::from([(1, strs(&[("a", "1"), ("b", "2")]))]));
        assert_eq!(emu.im_user_infos(1).len(), 2);
        assert_eq!(
            cb!(client.imserver_get_user_infos_with_callback(&[1])).unwrap()[&1]["b"],
            "2"
        );

        // Groups: created with owner, infos and permissions.
        client
            .imserver_create_group(7, 1, &strs(&[("name", "x")]), &strs(&[("p", "q")]))
            .unwrap();
        client.imserver_add_group_members(7, &[2, 3]).unwrap();
        cb!(client.imserver_add_group_members_with_callback(7, &[4])).unwrap();
        client
            .imserver_set_group_infos(7, &strs(&[("topic", "y")]))
            .unwrap();
        cb!(client.imserver_set_group_infos_with_callback(7, &strs(&[("name", "z")]))).unwrap();
        let group = emu.im_group(7).unwrap();
        assert_eq!(group.owner, 1);
        assert_eq!(group.members, BTreeSet::from([1, 2, 3, 4]));
        assert_eq!(group.permissions["p"], "q");
        assert!(!group.dismissed);
        let infos = client.imserver_get_group_infos(&[7, 8]).unwrap();
        assert_eq!(
            infos,
            HashMap::from([(7, strs(&[("name", "z"), ("topic", "y")]))])
        );

        // Dismissed: kept for inspection, gone for the service.
        client.imserver_dismiss_group(7).unwrap();
        assert!(emu.im_group(7).unwrap().dismissed);
        assert!(cb!(client.imserver_get_group_infos_with_callback(&[7]))
            .unwrap()
            .is_empty());
        assert_eq!(code(client.imserver_add_group_members(7, &[5])), 200034);
        // ... and it can be created again.
        cb!(client.imserver_create_group_with_callback(7, 9, &HashMap::new(), &HashMap::new()))
            .unwrap();
        assert_eq!(emu.im_group(7).unwrap().members, BTreeSet::from([9]));
        cb!(client.imserver_dismiss_group_with_callback(7)).unwrap();

        // Grants per (type, xid); never set reads as 0.
        client.imserver_set_apply_grant(1, 7, 2, Some("e")).unwrap();
        assert_eq!(client.imserver_get_apply_grant(1, 7).unwrap(), 2);
        assert_eq!(client.imserver_get_apply_grant(2, 7).unwrap(), 0);
        assert_eq!(
            emu.im_apply_grant(1, 7).unwrap().extra.as_deref(),
            Some("e")
        );
        cb!(client.imserver_set_apply_grant_with_callback(1, 7, 3, None)).unwrap();
        assert_eq!(
            cb!(client.imserver_get_apply_grant_with_callback(1, 7)).unwrap(),
            3
        );
        assert_eq!(emu.im_apply_grant(1, 7).unwrap().extra, None);

        client.imserver_set_invite_grant(1, 7, 3, 4).unwrap();
        cb!(client.imserver_set_invite_grant_with_callback(2, 7, 5, 6)).unwrap();
        let grant = client.imserver_get_invite_grant(1, 7).unwrap();
        assert_eq!((grant.invite_type, grant.invite_manage_type), (3, 4));
        let grant = cb!(client.imserver_get_invite_grant_with_callback(2, 7)).unwrap();
        assert_eq!((grant.invite_type, grant.invite_manage_type), (5, 6));
        let grant = client.imserver_get_invite_grant(1, 8).unwrap();
        assert_eq!((grant.invite_type, grant.invite_manage_type), (0, 0));
        assert_eq!(emu.im_invite_grant(2, 7).unwrap().invite_manage_type, 6);
        assert!(emu.im_invite_grant(1, 8).is_none());
    })
}

#[test]
fn bad_input_gets_the_gateways_errors() {
    watchdog(LIMIT, || {
        let (emu, client) = setup();
        let raw = |method: &str, params: Vec<(&str, Value)>| client.call(method, map(params));

        // A missing parameter: 10009.
        assert_eq!(code(raw("addgroupmembers", vec![("gid", 1.into())])), 10009);
        assert_eq!(code(raw("getroomcount", vec![])), 10009);
        assert_eq!(code(raw("addgroupban", vec![("uid", 1.into())])), 10009);
        assert_eq!(
            code(raw("imserver_setuserinfos", vec![("uid", 1.into())])),
            10009
        );
        assert_eq!(
            code(raw(
                "adddevice",
                vec![("uid", 1.into()), ("apptype", "fcm".into())]
            )),
            10009
        );

        // A wrong type: 10010.
        assert_eq!(code(raw("getgroupcount", vec![("gid", "x".into())])), 10010);
        assert_eq!(
            code(raw(
                "addroommembers",
                vec![("rid", 1.into()), ("uids", Value::from("1"))]
            )),
            10010
        );
        let options = vec![
            ("uid", 1.into()),
            ("type", 0.into()),
            ("xid", 2.into()),
            ("mtypes", "x".into()),
        ];
        assert_eq!(code(raw("addoption", options)), 10010);
        let infos = map(vec![("k", 1.into())]);
        assert_eq!(
            code(raw(
                "imserver_setuserinfos",
                vec![("uid", 1.into()), ("infos", infos)]
            )),
            10010
        );
        assert_eq!(
            code(raw(
                "setgroupinfo",
                vec![("gid", 1.into()), ("oinfo", 5.into())]
            )),
            10010
        );

        // An invalid value: 200034; an empty one: 200033.
        assert_eq!(code(client.add_group_ban(7, 1, Duration::ZERO)), 200034);
        assert_eq!(code(client.add_room_ban(0, 1, Duration::ZERO)), 200034);
        let options = vec![("uid", 1.into()), ("type", 2.into()), ("xid", 2.into())];
        assert_eq!(code(raw("addoption", options)), 200034);
        assert_eq!(code(client.add_device(1, "", "t")), 200033);
        assert_eq!(
            code(cb!(client.add_device_with_callback(1, "fcm", ""))),
            200033
        );

        // IM groups that do not exist: 200034.
        assert_eq!(code(client.imserver_add_group_members(99, &[1])), 200034);
        assert_eq!(code(client.imserver_dismiss_group(99)), 200034);
        assert_eq!(
            code(cb!(
                client.imserver_set_group_infos_with_callback(99, &HashMap::new())
            )),
            200034
        );
        client
            .imserver_create_group(5, 1, &HashMap::new(), &HashMap::new())
            .unwrap();
        assert_eq!(
            code(client.imserver_create_group(5, 2, &HashMap::new(), &HashMap::new())),
            200034
        );

        // A duration the wire cannot carry is refused before sending.
        emu.clear_received();
        let err = client.add_group_ban(7, 1, Duration::MAX).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
        assert!(emu.received().is_empty());

        // Nothing of the failed calls was recorded.
        assert!(emu.group(7).is_none());
        assert!(emu.devices(1).is_empty());
        assert!(emu.device_push_options(1).p2p.is_empty());
        assert_eq!(emu.im_group(5).unwrap().owner, 1);
    })
}
