//! Sending messages to one user, to several, to a group,
//! to a room, and to everyone (broadcast).
//!
//! Every send takes the body as `impl Into<MessageBody>` (text goes out as
//! msgpack `str`, bytes as `bin`), and [`SendOptions`](super::SendOptions) (the `attrs`,
//! always sent, `""` by default, and an optional message id; a fresh one
//! from [`next_mid`](super::next_mid) otherwise). Every send returns
//! [`Sent`](super::Sent): the message id it was sent with and the server's
//! `mtime` of the message. [`Sent`](super::Sent#retrying-a-send-safely)
//! also shows how to retry a send without storing it twice.
//!
//! ```
//! # let emulator = rtm_server_sdk::emulator::RtmEmulator::start(1, "s").unwrap();
//! # let client = rtm_server_sdk::RtmServerClient::new(1, "s", emulator.endpoint()).unwrap();
//! use rtm_server_sdk::rtm::{ConversationType, SendOptions};
//! let sent = client.send_message(1001, 1002, 51, "hello", &SendOptions::default())?;
//! assert!(sent.mtime > 0);
//! let stored = client.get_message(sent.mid, 1001, 1002, ConversationType::P2p)?;
//! assert_eq!(stored.body.as_text(), Some("hello"));
//! // Binary content, attrs and a chosen message id.
//! let options = &SendOptions::default().attrs(r#"{"k":"v"}"#).mid(7);
//! client.send_group_message(1001, 42, 51, &[0u8, 1, 255][..], options)?;
//! # Ok::<(), rtm_server_sdk::Error>(())
//! ```

use super::message::send_methods;

send_methods! {
    /// Sends a message of type `mtype` from `from` to user `to`. Go's
    /// `SendMessage` and `SendMessageByBinary`.
    fn send_message / send_message_with_callback (from: i64, to: i64, mtype: i64) {
        method: "sendmsg",
        params: { "mtype": mtype, "from": from, "to": to },
    }

    /// Sends one message of type `mtype` from `from` to every user of
    /// `tos`. Go's `SendMessages` and `SendMessagesByBinary`.
    fn send_messages / send_messages_with_callback (from: i64, tos: &[i64], mtype: i64) {
        method: "sendmsgs",
        params: { "mtype": mtype, "from": from, "tos": tos },
    }

    /// Sends a message of type `mtype` from `from` to group `gid`. Go's
    /// `SendGroupMessage` and `SendGroupMessageByBinary`.
    fn send_group_message / send_group_message_with_callback (from: i64, gid: i64, mtype: i64) {
        method: "sendgroupmsg",
        params: { "mtype": mtype, "from": from, "gid": gid },
    }

    /// Sends a message of type `mtype` from `from` to room `rid`. Go's
    /// `SendRoomMessage` and `SendRoomMessageByBinary`.
    fn send_room_message / send_room_message_with_callback (from: i64, rid: i64, mtype: i64) {
        method: "sendroommsg",
        params: { "mtype": mtype, "from": from, "rid": rid },
    }

    /// Sends a message of type `mtype` from `from` to every user of the
    /// project. Go's `SendBroadcastMessage` and
    /// `SendBroadcastMessageByBinary`.
    fn send_broadcast_message / send_broadcast_message_with_callback (from: i64, mtype: i64) {
        method: "broadcastmsg",
        params: { "mtype": mtype, "from": from },
    }
}
