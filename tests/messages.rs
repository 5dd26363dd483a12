//! Messages, history, push, translation and moderation through the
//! emulator.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{wait_until, watchdog};
use rtm_server_sdk::emulator::RtmEmulator;
use rtm_server_sdk::rtm::{
    next_mid, AudioOptions, ChatQuery, ClearProjectTarget, ConversationType, HistoryMessage,
    HistoryPages, HistoryQuery, ListenTargets, MediaSource, MessageBody, MessageType,
    MsgCountOptions, P2pDirection, PagedQuery, ProfanityAction, PushHandler, PushMessage,
    SendOptions, Sent, TranslateOptions,
};
use rtm_server_sdk::{codes, ClientConfig, RtmServerClient};

const PID: i64 = 11000001;
const SECRET: &str = "secret";

fn setup() -> (RtmEmulator, RtmServerClient) {
    common::emulator_and_client(PID, SECRET, Duration::from_secs(10))
}

fn text(m: &HistoryMessage) -> &str {
    m.body.as_text().unwrap()
}

/// Reads every page of a query; checks that every page holds what it
/// says, that no page is longer than the emulator's cap of 20 (whatever
/// `num` asked for) and that paging stopped at the first empty page.
fn read_all<Q: PagedQuery>(
    pages: HistoryPages<
        impl FnMut(&Q) -> rtm_server_sdk::Result<rtm_server_sdk::rtm::HistoryPage>,
        Q,
    >,
) -> (Vec<HistoryMessage>, Vec<usize>) {
    let mut all = Vec::new();
    let mut sizes = Vec::new();
    for page in pages {
        let page = page.unwrap();
        assert_eq!(page.num as usize, page.messages.len());
        assert!(page.messages.len() <= 20, "the emulator caps pages at 20");
        sizes.push(page.messages.len());
        all.extend(page.messages);
    }
    assert_eq!(sizes.last(), Some(&0), "the last page is the empty one");
    assert!(sizes[..sizes.len() - 1].iter().all(|&s| s > 0));
    (all, sizes)
}

#[test]
fn history_pages_of_100_in_both_directions() {
    watchdog(Duration::from_secs(60), || {
        let (_emu, client) = setup();
        let mut mids = Vec::new();
        for i in 0..250 {
            let options = SendOptions::default().attrs(format!("a{i}"));
            let sent = client
                .send_group_message(1000 + i % 3, 7, 51, format!("m{i}"), &options)
                .unwrap();
            mids.push(sent.mid);
        }
        // Another group's messages are not in this history.
        client
            .send_group_chat(1, 8, "elsewhere", &SendOptions::default())
            .unwrap();

        let asc = HistoryQuery {
            desc: false,
            num: 20,
            ..Default::default()
        };
        let (all, sizes) = read_all(asc.pages(|q| client.get_group_message(7, 1000, q)));
        // Twelve pages of 20 (the server's cap, not `num`), 10, then empty.
        let mut want_sizes = vec![20; 12];
        want_sizes.extend([10, 0]);
        assert_eq!(sizes, want_sizes);
        let texts: Vec<&str> = all.iter().map(text).collect();
        let want: Vec<String> = (0..250).map(|i| format!("m{i}")).collect();
        assert_eq!(texts, want, "every message once, oldest first");
        assert_eq!(all.iter().map(|m| m.mid).collect::<Vec<_>>(), mids);
        assert!(all.windows(2).all(|w| w[0].id < w[1].id));
        assert_eq!(all[4].from, 1001);
        assert_eq!(all[4].attrs, "a4");
        assert_eq!(all[4].mtype, 51);
        assert!(all
            .iter()
            .all(|m| m.direction.is_none() && m.file.is_none()));

        // Newest first, with the loop written out.
        let mut query = HistoryQuery {
            num: 20,
            ..Default::default()
        };
        let mut desc = Vec::new();
        loop {
            let page = client.get_group_message(7, 1000, &query).unwrap();
            let next = query.next_page(&page);
            desc.extend(page.messages);
            match next {
                Some(q) => query = q,
                None => break,
            }
        }
        let mut texts: Vec<&str> = desc.iter().map(text).collect();
        texts.reverse();
        assert_eq!(texts, want, "every message once, newest first");
        let ids: HashSet<i64> = desc.iter().map(|m| m.id).collect();
        assert_eq!(ids.len(), 250);
        // And through `pages()`, newest first, and the chat form.
        let query = HistoryQuery {
            num: 100,
            ..Default::default()
        };
        let (desc, _) = read_all(query.pages(|q| client.get_group_message(7, 1000, q)));
        assert_eq!(desc.len(), 250);
        assert_eq!(text(&desc[0]), "m249");
        assert_eq!(text(&desc[249]), "m0");
        // The callback form reads the same first page.
        let (tx, rx) = std::sync::mpsc::channel();
        client.get_group_message_with_callback(7, 1000, &HistoryQuery::default(), move |r| {
            tx.send(r).unwrap();
        });
        let page = rx.recv().unwrap().unwrap();
        assert_eq!(page.messages.len(), 20);
        assert_eq!(text(&page.messages[0]), "m249");
        let chat = ChatQuery {
            num: 100,
            ..Default::default()
        };
        for i in 0..45 {
            client
                .send_group_chat(1, 7, format!("c{i}"), &SendOptions::default())
                .unwrap();
        }
        let (chats, sizes) = read_all(chat.pages(|q| client.get_group_chat(7, 1000, q)));
        assert_eq!(sizes, [20, 20, 5, 0]);
        assert_eq!(text(&chats[0]), "c44");
    })
}

#[test]
fn p2p_history_holds_both_directions() {
    watchdog(Duration::from_secs(30), || {
        let (_emu, client) = setup();
        for i in 0..5 {
            client
                .send_chat(1, 2, format!("to 2: {i}"), &SendOptions::default())
                .unwrap();
            client
                .send_message(2, 1, 60, format!("to 1: {i}"), &SendOptions::default())
                .unwrap();
        }
        client
            .send_chat(1, 3, "to 3", &SendOptions::default())
            .unwrap();
        let query = HistoryQuery {
            desc: false,
            num: 3,
            ..Default::default()
        };
        let (all, sizes) = read_all(query.pages(|q| client.get_p2p_message(1, 2, q)));
        assert_eq!(sizes, [3, 3, 3, 1, 0]);
        assert_eq!(all.len(), 10);
        for (i, m) in all.iter().enumerate() {
            let sent = i % 2 == 0;
            assert_eq!(
                m.direction,
                Some(if sent {
                    P2pDirection::Sent
                } else {
                    P2pDirection::Received
                })
            );
            assert_eq!(m.from, if sent { 1 } else { 2 });
        }
        // Seen from the other side.
        let page = client
            .get_p2p_message(2, 1, &HistoryQuery::default())
            .unwrap();
        assert_eq!(page.messages[0].direction, Some(P2pDirection::Sent));
        assert_eq!(page.messages[0].from, 2);
        // The chat form: only the chat messages (mtype 30), sent by 1.
        let chat_query = ChatQuery {
            desc: false,
            num: 3,
            ..Default::default()
        };
        let (chat, _) = read_all(chat_query.pages(|q| client.get_p2p_chat(2, 1, q)));
        assert_eq!(chat.len(), 5);
        assert!(chat
            .iter()
            .all(|m| m.from == 1 && m.direction == Some(P2pDirection::Received)));
        assert!(chat
            .iter()
            .all(|m| MessageType::of(m.mtype) == MessageType::Chat));
    })
}

#[test]
fn filters_windows_and_counts() {
    watchdog(Duration::from_secs(30), || {
        let (emu, client) = setup();
        let first = client
            .send_room_message(1, 5, 51, "early", &SendOptions::default())
            .unwrap()
            .mtime;
        client
            .send_room_chat(2, 5, "chat", &SendOptions::default())
            .unwrap();
        client
            .send_room_cmd(2, 5, "cmd", &SendOptions::default())
            .unwrap();
        emu.advance_clock(Duration::from_secs(60));
        let later = client
            .send_room_message(3, 5, 52, "late", &SendOptions::default())
            .unwrap()
            .mtime;
        assert!(later >= first + 60_000);

        let q = |mtypes: Vec<i64>, begin: i64, end: i64| HistoryQuery {
            desc: false,
            mtypes,
            begin,
            end,
            ..Default::default()
        };
        let texts = |query: &HistoryQuery| -> Vec<String> {
            client
                .get_room_message(5, 1, query)
                .unwrap()
                .messages
                .iter()
                .map(|m| text(m).to_string())
                .collect()
        };
        assert_eq!(texts(&q(vec![], 0, 0)), ["early", "chat", "cmd", "late"]);
        assert_eq!(texts(&q(vec![51, 52], 0, 0)), ["early", "late"]);
        assert_eq!(texts(&q(vec![], later, 0)), ["late"]);
        assert_eq!(texts(&q(vec![], 0, later - 1)), ["early", "chat", "cmd"]);
        assert_eq!(texts(&q(vec![51], 0, later - 1)), ["early"]);
        let chat_query = ChatQuery {
            desc: false,
            ..Default::default()
        };
        let chat = client.get_room_chat(5, 1, &chat_query).unwrap();
        let texts: Vec<&str> = chat.messages.iter().map(text).collect();
        assert_eq!(texts, ["chat", "cmd"], "the chat types only");

        let count = |options: &MsgCountOptions| {
            client
                .get_msg_count(ConversationType::Room, 5, options)
                .unwrap()
        };
        let all = count(&MsgCountOptions::default());
        assert_eq!((all.sender, all.num), (3, 4));
        let early = count(&MsgCountOptions {
            end: later - 1,
            ..Default::default()
        });
        assert_eq!((early.sender, early.num), (2, 3));
        let chats = count(&MsgCountOptions {
            mtypes: vec![30, 32],
            ..Default::default()
        });
        assert_eq!((chats.sender, chats.num), (1, 2));

        // A bad page size and a bad conversation type are refused.
        let err = client
            .get_room_message(
                5,
                1,
                &HistoryQuery {
                    num: 0,
                    ..Default::default()
                },
            )
            .unwrap_err();
        assert_eq!(err.code(), Some(codes::RTM_EC_INVALID_PARAMETER));
        let err = client
            .call(
                "getmsgnum",
                common::map(vec![("type", 9.into()), ("xid", 5.into())]),
            )
            .unwrap_err();
        assert_eq!(err.code(), Some(codes::RTM_EC_INVALID_PARAMETER));
        let err = client
            .call("getmsgnum", common::map(vec![("type", 2.into())]))
            .unwrap_err();
        assert_eq!(err.code(), Some(codes::FPNN_EC_PROTO_KEY_NOT_FOUND));
    })
}

#[test]
fn delete_edit_and_clean_are_visible_in_history() {
    watchdog(Duration::from_secs(30), || {
        let (emu, client) = setup();
        for mid in 1..=5 {
            client
                .send_group_chat(1, 9, format!("m{mid}"), &SendOptions::default().mid(mid))
                .unwrap();
        }
        let texts = || -> Vec<String> {
            let query = HistoryQuery {
                desc: false,
                ..Default::default()
            };
            client
                .get_group_message(9, 1, &query)
                .unwrap()
                .messages
                .iter()
                .map(|m| text(m).to_string())
                .collect()
        };
        // A reused mid is refused.
        let err = client
            .send_group_chat(1, 9, "again", &SendOptions::default().mid(3))
            .unwrap_err();
        assert_eq!(err.code(), Some(codes::RTM_EC_DUPLICATED_MID));

        client.del_group_message(2, 1, 9).unwrap();
        assert_eq!(texts(), ["m1", "m3", "m4", "m5"]);
        let err = client
            .get_message(2, 1, 9, ConversationType::Group)
            .unwrap_err();
        assert_eq!(err.code(), Some(codes::RTM_EC_MESSAGE_NOT_FOUND));
        let err = client.del_group_chat(2, 1, 9).unwrap_err();
        assert_eq!(err.code(), Some(codes::RTM_EC_MESSAGE_NOT_FOUND));

        client
            .edit_message(
                3,
                1,
                9,
                ConversationType::Group,
                "edited",
                "e",
                Duration::from_secs(60),
            )
            .unwrap();
        assert_eq!(texts(), ["m1", "edited", "m4", "m5"]);
        let m = client
            .get_message(3, 1, 9, ConversationType::Group)
            .unwrap();
        assert_eq!((m.body.as_text(), m.attrs.as_str()), (Some("edited"), "e"));
        // A binary body too.
        client
            .edit_message(
                5,
                1,
                9,
                ConversationType::Group,
                &[0u8, 159, 255][..],
                "",
                Duration::from_secs(60),
            )
            .unwrap();
        let m = client
            .get_message(5, 1, 9, ConversationType::Group)
            .unwrap();
        assert_eq!(m.body, MessageBody::Binary(vec![0, 159, 255]));
        client
            .edit_message(
                5,
                1,
                9,
                ConversationType::Group,
                "m5",
                "",
                Duration::from_secs(60),
            )
            .unwrap();
        let chat = client.get_chat(4, 1, 9, ConversationType::Group).unwrap();
        assert_eq!((chat.body.as_text(), chat.mtype), (Some("m4"), 30));
        emu.advance_clock(Duration::from_secs(61));
        let err = client
            .edit_message(
                4,
                1,
                9,
                ConversationType::Group,
                "late",
                "",
                Duration::from_secs(60),
            )
            .unwrap_err();
        assert_eq!(err.code(), Some(codes::RTM_EC_PERMISSION_DENIED));
        assert_eq!(texts(), ["m1", "edited", "m4", "m5"]);

        // Clean a window: only the new messages.
        let now = emu.now_ms();
        client
            .send_group_chat(1, 9, "new", &SendOptions::default())
            .unwrap();
        client.clean_group_message(9, now, 0).unwrap();
        assert_eq!(texts(), ["m1", "edited", "m4", "m5"]);
        client.clean_group_message(9, 0, 0).unwrap();
        assert!(texts().is_empty());

        // P2P: clean both directions; conversation delete; clear by kind.
        client
            .send_chat(1, 2, "a", &SendOptions::default())
            .unwrap();
        client
            .send_chat(2, 1, "b", &SendOptions::default())
            .unwrap();
        client
            .send_chat(1, 3, "c", &SendOptions::default())
            .unwrap();
        client.clean_p2p_message(2, 1, 0, 0).unwrap();
        assert!(client
            .get_p2p_message(1, 2, &HistoryQuery::default())
            .unwrap()
            .messages
            .is_empty());
        assert_eq!(
            client
                .get_p2p_message(1, 3, &HistoryQuery::default())
                .unwrap()
                .messages
                .len(),
            1
        );
        client
            .delete_conversation_messages(3, 1, ConversationType::P2p)
            .unwrap();
        assert_eq!(emu.message_count(), 0);

        client
            .send_room_chat(1, 4, "r", &SendOptions::default())
            .unwrap();
        client
            .send_group_chat(1, 4, "g", &SendOptions::default())
            .unwrap();
        client
            .send_broadcast_chat(1, "b", &SendOptions::default())
            .unwrap();
        client
            .send_chats(1, &[5, 6], "p", &SendOptions::default())
            .unwrap();
        assert_eq!(emu.message_count(), 5);
        // ClearProjectTarget::Room is wire 1, which is P2P for the other
        // enum: the room message goes, the P2P ones stay.
        client
            .clear_project_message(ClearProjectTarget::Room)
            .unwrap();
        assert!(client
            .get_room_message(4, 1, &HistoryQuery::default())
            .unwrap()
            .messages
            .is_empty());
        assert_eq!(emu.message_count(), 4);
        client
            .clear_project_message(ClearProjectTarget::P2p)
            .unwrap();
        assert_eq!(emu.message_count(), 2);
        let broadcast = client
            .get_broadcast_message(1, &HistoryQuery::default())
            .unwrap();
        assert_eq!(broadcast.messages.len(), 1);
        client
            .del_broadcast_message(broadcast.messages[0].mid, 1)
            .unwrap();
        client
            .clear_project_message(ClearProjectTarget::All)
            .unwrap();
        assert_eq!(emu.message_count(), 0);
    })
}

#[test]
fn binary_and_file_messages_round_trip() {
    watchdog(Duration::from_secs(30), || {
        let (_emu, client) = setup();
        let bytes = vec![0u8, 1, 254, 255];
        client
            .send_message(1, 2, 51, &bytes, &SendOptions::default().mid(10))
            .unwrap();
        let m = client.get_message(10, 1, 2, ConversationType::P2p).unwrap();
        assert_eq!(m.body, MessageBody::Binary(bytes.clone()));
        let page = client
            .get_p2p_message(1, 2, &HistoryQuery::default())
            .unwrap();
        assert_eq!(page.messages[0].body, MessageBody::Binary(bytes));

        // A file message as the file gate stores it: JSON msg and attrs.
        let msg = r#"{"url":"https://files.example/a.amr","size":2048}"#;
        let attrs = r#"{"custom":{"k":"v"},"rtm":{"codec":"amr-wb","duration":2000,"ext":"amr","filename":"a.amr","lang":"en","sign":"x","srate":16000,"type":"audiomsg"}}"#;
        client
            .send_group_message(1, 3, 41, msg, &SendOptions::default().attrs(attrs).mid(11))
            .unwrap();
        let page = client.get_group_chat(3, 1, &ChatQuery::default()).unwrap();
        let m = &page.messages[0];
        assert_eq!(MessageType::of(m.mtype), MessageType::Audio);
        assert_eq!(m.attrs, r#"{"k":"v"}"#);
        let file = m.file.as_ref().unwrap();
        assert_eq!(file.url, "https://files.example/a.amr");
        assert_eq!(file.size, 2048);
        assert_eq!((file.name.as_str(), file.ext.as_str()), ("a.amr", "amr"));
        assert!(file.rtm_audio);
        assert_eq!((file.duration, file.sample_rate), (2000, 16000));
        let got = client
            .get_message(11, 1, 3, ConversationType::Group)
            .unwrap();
        assert_eq!(got.file.as_ref(), Some(file));
    })
}

#[derive(Default)]
struct Inbox {
    group: Mutex<Vec<PushMessage>>,
    p2p: Mutex<Vec<PushMessage>>,
    /// What the handler read back through the client it was given.
    history: Mutex<Vec<usize>>,
}

struct Recorder(Arc<Inbox>);

impl PushHandler for Recorder {
    fn on_group_message(&self, client: &RtmServerClient, m: &PushMessage) {
        self.0.group.lock().unwrap().push(m.clone());
        let page = client
            .get_group_message(m.to, m.from, &HistoryQuery::default())
            .unwrap();
        self.0.history.lock().unwrap().push(page.messages.len());
    }
    fn on_message(&self, _client: &RtmServerClient, m: &PushMessage) {
        self.0.p2p.lock().unwrap().push(m.clone());
    }
}

#[test]
fn a_sent_message_arrives_once_as_a_push() {
    watchdog(Duration::from_secs(30), || {
        let (emu, client) = setup();
        let inbox = Arc::new(Inbox::default());
        client.set_push_handler(Recorder(inbox.clone()));
        client
            .add_listen(&ListenTargets::new().groups([7]).users([2]))
            .unwrap();
        let sent = client
            .send_group_message(1, 7, 51, "hello group", &SendOptions::default().attrs("x"))
            .unwrap();
        // Not listened to: no push.
        client
            .send_group_chat(1, 8, "other group", &SendOptions::default())
            .unwrap();
        client
            .send_message(1, 2, 51, &[9u8, 8][..], &SendOptions::default())
            .unwrap();
        assert!(wait_until(Duration::from_secs(5), || {
            inbox.history.lock().unwrap().len() == 1 && inbox.p2p.lock().unwrap().len() == 1
        }));
        std::thread::sleep(Duration::from_millis(200));
        let group = inbox.group.lock().unwrap();
        assert_eq!(group.len(), 1, "once, and only the listened group");
        let m = &group[0];
        assert_eq!(
            (m.from, m.to, m.mtype, m.mid, m.mtime),
            (1, 7, 51, sent.mid, sent.mtime)
        );
        assert_eq!(m.body, MessageBody::Text("hello group".into()));
        assert_eq!(m.attrs, "x");
        assert_eq!(*inbox.history.lock().unwrap(), [1]);
        assert_eq!(
            inbox.p2p.lock().unwrap()[0].body,
            MessageBody::Binary(vec![9, 8])
        );
        drop(group);

        // Dropping the client (its handler used the client it was given)
        // closes its connection.
        drop(client);
        assert!(wait_until(Duration::from_secs(5), || emu
            .server()
            .connections()
            .is_empty()));
    })
}

#[test]
fn a_million_mids_on_8_threads_are_unique_and_increasing() {
    watchdog(Duration::from_secs(60), || {
        let threads: Vec<_> = (0..8)
            .map(|_| {
                std::thread::spawn(|| {
                    let mut v = Vec::with_capacity(125_000);
                    for _ in 0..125_000 {
                        v.push(next_mid());
                    }
                    assert!(v.windows(2).all(|w| w[0] < w[1]), "increasing per thread");
                    v
                })
            })
            .collect();
        let mut all: Vec<i64> = Vec::with_capacity(1_000_000);
        for t in threads {
            all.extend(t.join().unwrap());
        }
        all.sort_unstable();
        assert_eq!(all.len(), 1_000_000);
        assert!(all.windows(2).all(|w| w[0] != w[1]), "no duplicate");
        assert!(all[0] > 0);
    })
}

#[test]
fn translation_and_moderation() {
    watchdog(Duration::from_secs(30), || {
        let (_emu, client) = setup();
        let t = client
            .translate(
                "hello damn world",
                Some("en"),
                "fr",
                TranslateOptions::default(),
                1,
            )
            .unwrap();
        assert_eq!((t.source.as_str(), t.target.as_str()), ("en", "fr"));
        assert_eq!(t.source_text, "hello damn world");
        assert_eq!(t.target_text, "[fr] hello damn world");
        let censor = TranslateOptions {
            profanity: Some(ProfanityAction::Censor),
            ..Default::default()
        };
        let t = client
            .translate("hello damn world", None, "de", censor, 0)
            .unwrap();
        assert_eq!(t.target_text, "[de] hello **** world");
        assert_eq!(t.source, "en");
        let t = client
            .translate("你好", None, "en", TranslateOptions::default(), 0)
            .unwrap();
        assert_eq!(t.source, "zh-CN");
        let stop = TranslateOptions {
            profanity: Some(ProfanityAction::Stop),
            ..Default::default()
        };
        let err = client.translate("damn", None, "en", stop, 0).unwrap_err();
        assert_eq!(err.code(), Some(codes::RTM_EC_PROFANITY_STOP));
        let err = client
            .translate("hi", None, "xx", TranslateOptions::default(), 0)
            .unwrap_err();
        assert_eq!(err.code(), Some(codes::RTM_EC_UNSUPPORTED_LANGUAGE));

        let p = client.profanity("Crap, that is crappy", true, 0).unwrap();
        assert_eq!(p.text, "****, that is crappy");
        assert_eq!(p.classification, ["profanity"]);
        let p = client.profanity("fine", false, 0).unwrap();
        assert_eq!((p.text.as_str(), p.classification.len()), ("fine", 0));

        let s = client
            .speech2text(
                "spoken words",
                MediaSource::Content,
                "en",
                &AudioOptions::default(),
                0,
            )
            .unwrap();
        assert_eq!((s.text.as_str(), s.lang.as_str()), ("spoken words", "en"));
        let s = client
            .speech2text(
                "http://a/b.amr",
                MediaSource::Url,
                "fr",
                &AudioOptions::default(),
                0,
            )
            .unwrap();
        assert_eq!(s.text, "transcript of http://a/b.amr");

        let c = client.text_check("a clean text", 0).unwrap();
        assert_eq!((c.result, c.text.as_deref(), c.tags.len()), (0, None, 0));
        let c = client.text_check("badword here", 5).unwrap();
        assert_eq!(c.result, 2);
        assert_eq!(c.text.as_deref(), Some("******* here"));
        assert_eq!(c.tags, ["1"], "int tags read as their decimal text");
        assert_eq!(c.wlist, ["badword"]);

        let c = client
            .image_check("http://a/nsfw.png", MediaSource::Url, 0)
            .unwrap();
        assert_eq!((c.result, c.tags.clone()), (2, vec!["nsfw".to_string()]));
        let c = client
            .image_check("http://a/cat.png", MediaSource::Url, 0)
            .unwrap();
        assert_eq!(c.result, 0);
        let c = client
            .audio_check(
                "damn",
                MediaSource::Content,
                "en",
                &AudioOptions::default(),
                0,
            )
            .unwrap();
        assert_eq!(
            (c.result, c.tags.clone()),
            (2, vec!["profanity".to_string()])
        );
        let c = client
            .video_check("http://v/ok.mp4", MediaSource::Url, "ok.mp4", 0)
            .unwrap();
        assert_eq!(c.result, 0);
        let err = client
            .call(
                "icheck",
                common::map(vec![("image", "x".into()), ("type", 3.into())]),
            )
            .unwrap_err();
        assert_eq!(err.code(), Some(codes::RTM_EC_INVALID_PARAMETER));
    })
}

#[test]
fn slow_moderation_waits_120_s_by_default() {
    watchdog(Duration::from_secs(30), || {
        let emu = RtmEmulator::start(PID, SECRET).unwrap();
        let client = RtmServerClient::with_config(
            PID,
            SECRET,
            emu.endpoint(),
            ClientConfig::default().quest_timeout(Duration::from_millis(300)),
        )
        .unwrap();
        client.connect().unwrap();
        emu.server()
            .faults()
            .set_answer_delay(Duration::from_millis(800));
        // The quick methods use the configured 300 ms...
        assert!(client.text_check("x", 0).unwrap_err().is_timeout());
        // ... the slow ones their own 120 s default ...
        assert_eq!(
            client.image_check("x", MediaSource::Url, 0).unwrap().result,
            0
        );
        let (tx, rx) = std::sync::mpsc::channel();
        client.video_check_with_callback("x", MediaSource::Url, "x", 0, move |r| {
            tx.send(r).unwrap();
        });
        assert_eq!(rx.recv().unwrap().unwrap().result, 0);
        // ... and a per-call timeout still wins.
        let err = client
            .with_timeout(Duration::from_millis(200))
            .speech2text("x", MediaSource::Content, "en", &AudioOptions::default(), 0)
            .unwrap_err();
        assert!(err.is_timeout());
    })
}

#[test]
fn the_emulator_refuses_bad_input() {
    watchdog(Duration::from_secs(30), || {
        let (_emu, client) = setup();
        let code = |method: &str, entries: Vec<(&str, rmpv::Value)>| {
            client
                .call(method, common::map(entries))
                .unwrap_err()
                .code()
                .unwrap()
        };
        let send = |mtype: i64, msg: rmpv::Value| {
            vec![
                ("mtype", mtype.into()),
                ("from", 1.into()),
                ("to", 2.into()),
                ("mid", 3.into()),
                ("msg", msg),
            ]
        };
        assert_eq!(
            code("sendmsg", vec![("mtype", 30.into())]),
            codes::FPNN_EC_PROTO_KEY_NOT_FOUND
        );
        assert_eq!(
            code("sendmsg", send(30, 5.into())),
            codes::FPNN_EC_PROTO_TYPE_CONVERT
        );
        assert_eq!(
            code("sendmsg", send(200, "x".into())),
            codes::RTM_EC_INVALID_MTYPE
        );
        let mut to_many = send(30, "x".into());
        to_many[2] = ("tos", rmpv::Value::Array(vec![]));
        assert_eq!(code("sendmsgs", to_many), codes::RTM_EC_EMPTY_PARAMETER);
        let mut bad_gid = send(30, "x".into());
        bad_gid[2] = ("gid", "seven".into());
        assert_eq!(
            code("sendgroupmsg", bad_gid),
            codes::FPNN_EC_PROTO_TYPE_CONVERT
        );
        let history = vec![
            ("gid", 1.into()),
            ("desc", true.into()),
            ("num", 10.into()),
            ("begin", 0.into()),
            ("end", 0.into()),
            ("lastid", 0.into()),
        ];
        assert_eq!(
            code("getgroupmsg", history),
            codes::FPNN_EC_PROTO_KEY_NOT_FOUND,
            "uid"
        );
        let err = client
            .edit_message(1, 1, 2, ConversationType::P2p, "x", "", Duration::ZERO)
            .unwrap_err();
        assert_eq!(err.code(), Some(codes::RTM_EC_MESSAGE_NOT_FOUND));
        client
            .send_chat(1, 2, "x", &SendOptions::default().mid(1))
            .unwrap();
        let edit = vec![
            ("mid", 1.into()),
            ("from", 1.into()),
            ("xid", 2.into()),
            ("type", 1.into()),
            ("msg", "y".into()),
            ("attrs", "".into()),
            ("timeLimit", (-1).into()),
        ];
        assert_eq!(code("editmsg", edit), codes::RTM_EC_INVALID_PARAMETER);
        assert_eq!(
            code("clearprojectmsg", vec![("type", 5.into())]),
            codes::RTM_EC_INVALID_PARAMETER
        );
        let s2t = vec![
            ("audio", "a".into()),
            ("type", 3.into()),
            ("lang", "en".into()),
        ];
        assert_eq!(
            code("speech2text", s2t),
            codes::RTM_EC_UNSUPPORTED_TRANSCRIBE_TYPE
        );
        let tr = vec![
            ("text", "hi".into()),
            ("dst", "en".into()),
            ("type", "memo".into()),
        ];
        assert_eq!(code("translate", tr), codes::RTM_EC_INVALID_PARAMETER);
        let tr = vec![("text", "".into()), ("dst", "en".into())];
        assert_eq!(code("translate", tr), codes::RTM_EC_EMPTY_PARAMETER);
        assert_eq!(
            code("profanity", vec![("text", "x".into())]),
            codes::FPNN_EC_PROTO_KEY_NOT_FOUND
        );
        // The message sent above is still there, unedited.
        let m = client.get_message(1, 1, 2, ConversationType::P2p).unwrap();
        assert_eq!(m.body.as_text(), Some("x"));
    })
}

#[test]
fn every_send_returns_the_mid_it_stored() {
    watchdog(Duration::from_secs(30), || {
        let (_emu, client) = setup();
        let none = SendOptions::default();
        let read = |sent: Sent, from: i64, xid: i64, kind: ConversationType, body: &str| {
            assert!(sent.mid > 0 && sent.mtime > 0, "{sent:?}");
            let m = client.get_message(sent.mid, from, xid, kind).unwrap();
            assert_eq!(m.body.as_text(), Some(body));
            assert_eq!(m.mtime, sent.mtime);
        };
        let s = client.send_message(1, 2, 51, "p2p", &none).unwrap();
        read(s, 1, 2, ConversationType::P2p, "p2p");
        let s = client.send_chat(1, 3, "chat", &none).unwrap();
        read(s, 1, 3, ConversationType::P2p, "chat");
        let s = client.send_cmds(1, &[4, 5], "cmds", &none).unwrap();
        read(s, 1, 4, ConversationType::P2p, "cmds");
        read(s, 1, 5, ConversationType::P2p, "cmds");
        let s = client.send_group_message(1, 7, 51, "group", &none).unwrap();
        read(s, 1, 7, ConversationType::Group, "group");
        let s = client.send_room_chat(1, 8, "room", &none).unwrap();
        read(s, 1, 8, ConversationType::Room, "room");
        let s = client.send_broadcast_cmd(1, "all", &none).unwrap();
        read(s, 1, 0, ConversationType::Broadcast, "all");
        // A chosen mid comes back as it was.
        let s = client
            .send_group_chat(1, 7, "chosen", &SendOptions::default().mid(77))
            .unwrap();
        assert_eq!(s.mid, 77);
        read(s, 1, 7, ConversationType::Group, "chosen");
        // The callback form too; each send draws its own mid.
        let s = common::via_callback(|cb| {
            client.send_room_message_with_callback(1, 8, 60, "callback", &none, cb)
        })
        .unwrap();
        read(s, 1, 8, ConversationType::Room, "callback");
        let t = common::via_callback(|cb| client.send_chats_with_callback(1, &[2], "x", &none, cb))
            .unwrap();
        assert_ne!(s.mid, t.mid);
        // The edit and delete methods find the message by the returned mid.
        client.del_room_message(s.mid, 1, 8).unwrap();
        let err = client
            .get_message(s.mid, 1, 8, ConversationType::Room)
            .unwrap_err();
        assert_eq!(err.code(), Some(codes::RTM_EC_MESSAGE_NOT_FOUND));
    })
}

#[test]
fn a_send_retried_with_its_mid_is_stored_once() {
    watchdog(Duration::from_secs(30), || {
        let (emu, client) = setup();
        let options = SendOptions::default().mid(next_mid());
        let first = client.send_group_chat(1, 7, "once", &options).unwrap();
        assert_eq!(Some(first.mid), options.mid);
        // The retry (say, after a timeout whose answer was lost) is refused
        // as a duplicate: the message is already stored.
        let err = client.send_group_chat(1, 7, "once", &options).unwrap_err();
        assert_eq!(err.code(), Some(codes::RTM_EC_DUPLICATED_MID));
        let err = common::via_callback(|cb| {
            client.send_group_chat_with_callback(1, 7, "once", &options, cb)
        })
        .unwrap_err();
        assert_eq!(err.code(), Some(codes::RTM_EC_DUPLICATED_MID));
        let page = client
            .get_group_message(7, 1, &HistoryQuery::default())
            .unwrap();
        assert_eq!(page.messages.len(), 1, "stored once");
        assert_eq!(page.messages[0].mid, first.mid);
        assert_eq!(emu.message_count(), 1);
    })
}

#[test]
fn the_automatic_resend_carries_the_same_mid() {
    watchdog(Duration::from_secs(30), || {
        let (emu, client) = setup();
        let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let sink = seen.clone();
        emu.set_quest_observer(Some(Arc::new(
            move |r: &rtm_server_sdk::emulator::QuestRecord| {
                sink.lock()
                    .unwrap()
                    .push((r.method.clone(), r.params.clone()));
            },
        )));
        // One quest served per connection; the connection closes under the
        // next, unanswered: the client resends it on a new connection.
        emu.faults().set_drop_after(1);
        client.get_voice_room_list().unwrap();
        let sent = client
            .send_message(1, 2, 51, "resent", &SendOptions::default())
            .unwrap();
        emu.faults().set_drop_after(0);
        let sends: Vec<String> = seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(method, _)| method == "sendmsg")
            .map(|(_, params)| params.clone())
            .collect();
        assert_eq!(sends.len(), 2, "sent, dropped, resent: {sends:?}");
        let mid = format!("mid={}", sent.mid);
        assert!(
            sends.iter().all(|p| p.split(' ').any(|kv| kv == mid)),
            "both carry {mid}: {sends:?}"
        );
        let m = client
            .get_message(sent.mid, 1, 2, ConversationType::P2p)
            .unwrap();
        assert_eq!(m.body.as_text(), Some("resent"));
        assert_eq!(emu.message_count(), 1);
    })
}
